"""A finished backtest as data: the `--json` result file that analytics, reports and comparisons read."""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import tradeforge
from tradeforge.feeds.candles import Gap
from tradeforge.strategies.base import TradeRecord

_NS = 1_000_000_000


@dataclass
class BacktestResult:
    config: dict[str, Any]
    strategy: str
    symbols: list[str]
    timeframe: str
    start: dt.datetime
    end: dt.datetime
    start_value: float
    final_value: float
    metrics: dict[str, Any]
    trades: list[TradeRecord]
    open_trades: list[TradeRecord]
    equity_times: np.ndarray  # int64 UTC nanoseconds
    equity_values: np.ndarray
    gaps: dict[str, list[Gap]] = field(default_factory=dict)  # missing candles per symbol
    data: list[dict[str, Any]] = field(default_factory=list)  # which candles: per symbol, source and span

    def to_json(self) -> dict[str, Any]:
        """The documented result file (README: "Result file")."""
        times = np.datetime_as_string(self.equity_times.astype("datetime64[ns]"), unit="s")
        return {
            "tradeforge_version": tradeforge.__version__,
            "config": self.config,
            "strategy": self.strategy,
            "symbols": self.symbols,
            "timeframe": self.timeframe,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "start_value": self.start_value,
            "final_value": self.final_value,
            "metrics": self.metrics,
            "trades": [t.to_json() for t in self.trades],
            "open_trades": [t.to_json() for t in self.open_trades],
            "data": self.data,
            "data_gaps": [
                {"symbol": s, "after": g.after.isoformat(), "before": g.before.isoformat(), "missing": g.missing}
                for s, gaps in self.gaps.items()
                for g in gaps
            ],
            "equity": [[f"{t}+00:00", float(v)] for t, v in zip(times, self.equity_values, strict=True)],
        }

    def write_json(self, path: Path) -> None:
        """Atomically: a reader never sees half a file."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(self.to_json(), handle, allow_nan=False, default=_json_default)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def in_market_mask(times: np.ndarray, trades: list[TradeRecord]) -> np.ndarray:
    """True for every equity bar on which a position was open (entry fill up to the exit fill)."""
    marks = np.zeros(len(times) + 1, dtype=np.int64)
    for trade in trades:
        first = np.searchsorted(times, _ns(trade.entry_time), side="left")
        last = len(times) if trade.exit_time is None else np.searchsorted(times, _ns(trade.exit_time), side="left")
        marks[first] += 1
        marks[last] -= 1
    return np.cumsum(marks[:-1]) > 0


def _ns(moment: dt.datetime) -> int:
    return int(moment.timestamp()) * _NS + moment.microsecond * 1000
