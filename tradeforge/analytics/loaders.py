"""Read what analytics consumes (result files, equity CSVs, trade lists) into one validated shape.

Every problem is a :class:`DataError` naming the file and the line (CSV) or JSON path (JSON), so a
user can fix the input; nothing is silently dropped or guessed.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tradeforge.resilience.errors import DataError

__all__ = [
    "Performance",
    "from_records",
    "from_result_document",
    "load_equity_csv",
    "load_result",
    "load_trades",
    "parse_times",
]


@dataclass
class Performance:
    """One strategy's record as analytics sees it: an equity curve and/or closed trades, plain data."""

    name: str
    source: str
    timestamps: np.ndarray | None  # int64 UTC nanoseconds, strictly increasing
    values: np.ndarray | None  # portfolio value per timestamp
    trades: list[dict[str, Any]] = field(default_factory=list)  # closed trades, result-file shape
    open_trades: list[dict[str, Any]] = field(default_factory=list)
    start_value: float | None = None
    strategy: str | None = None
    symbols: list[str] = field(default_factory=list)
    timeframe: str | None = None
    trades_known: bool = True  # False for a bare equity curve: trade metrics are unknown, not zero

    @property
    def has_equity(self) -> bool:
        return self.values is not None and self.timestamps is not None and self.values.size > 0

    def initial_value(self) -> float | None:
        """The starting value: the result's start_value, else the first equity point."""
        if self.start_value is not None:
            return self.start_value
        return float(self.values[0]) if self.values is not None and self.values.size else None

    def trade_times_ns(self) -> tuple[list[int], list[int | None]]:
        """Entry and exit times (ns) of closed then open trades, for the exposure mask."""
        timed = [t for t in [*self.trades, *self.open_trades] if t.get("entry_time") is not None]
        entries = parse_times([t["entry_time"] for t in timed], f"{self.source}: trade {{}} entry_time").tolist()
        closed = [t["exit_time"] for t in timed if t.get("exit_time") is not None]
        parsed = iter(parse_times(closed, f"{self.source}: trade {{}} exit_time").tolist())
        exits = [None if t.get("exit_time") is None else next(parsed) for t in timed]
        return entries, exits


def parse_times(raw: Sequence[Any], where: str | Callable[[int], str], what: str = "timestamp") -> np.ndarray:
    """ISO-8601 strings (UTC unless they carry an offset) or epoch milliseconds -> int64 ns.

    Raises DataError naming the first bad entry: ``where`` is a format string given its index, or
    a function of it.
    """
    label: Callable[[int], str] = where.format if isinstance(where, str) else where
    if len(raw) == 0:
        return np.empty(0, dtype=np.int64)
    if all(isinstance(x, int | float) and not isinstance(x, bool) for x in raw):
        ms = np.asarray(raw, dtype=np.float64)
        bad = np.flatnonzero(~np.isfinite(ms))
        if bad.size:
            raise DataError(f"{label(int(bad[0]))}: {what} is not a number (got {raw[int(bad[0])]!r})")
        return (ms * 1_000_000).astype(np.int64)
    parsed = pd.to_datetime(pd.Series(list(raw), dtype=object), utc=True, errors="coerce", format="ISO8601")
    bad = np.flatnonzero(parsed.isna().to_numpy())
    if bad.size:
        i = int(bad[0])
        raise DataError(
            f"{label(i)}: {what} {raw[i]!r} is not an ISO-8601 time (e.g. 2024-01-31T00:00:00Z) or epoch milliseconds"
        )
    naive = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    return naive.to_numpy().astype("datetime64[ns]").view(np.int64)


def _check_increasing(times: np.ndarray, where: str) -> None:
    steps = np.diff(times)
    bad = np.flatnonzero(steps <= 0)
    if bad.size:
        i = int(bad[0]) + 1
        kind = "duplicate" if steps[i - 1] == 0 else "earlier than the one before"
        raise DataError(f"{where.format(i)}: timestamp is {kind}; equity times must strictly increase")


# --------------------------------------------------------------------------- files


def read_json(path: Path) -> Any:
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    text = path.read_text(encoding="utf-8")
    if not text.strip():
        raise DataError(f"{path}: the file is empty")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}:{exc.colno}: not valid JSON: {exc.msg}") from None


def load_result(path: Path) -> Performance:
    """A `tradeforge backtest --json` result file (README: "Result file")."""
    return from_result_document(read_json(path), path)


def from_result_document(doc: Any, path: Path) -> Performance:
    """A result document already in memory (``BacktestResult.to_json()``), validated like a file."""
    if not isinstance(doc, dict):
        raise DataError(f"{path}: a result file is a JSON object, got {type(doc).__name__}")
    missing = [key for key in ("equity", "trades", "start_value") if key not in doc]
    if missing:
        raise DataError(
            f"{path}: missing {', '.join(repr(k) for k in missing)}; is this a `tradeforge backtest --json` file?"
        )
    equity = doc["equity"]
    if not isinstance(equity, list) or not equity:
        raise DataError(f"{path}: 'equity' must be a non-empty list of [time, value] pairs")
    for i, point in enumerate(equity):
        if not (isinstance(point, list) and len(point) == 2):
            raise DataError(f"{path}: equity[{i}]: expected [time, value], got {point!r}")
    times = parse_times([p[0] for p in equity], f"{path}: equity[{{}}]")
    values = _numbers([p[1] for p in equity], f"{path}: equity[{{}}]", "value")
    _check_increasing(times, f"{path}: equity[{{}}]")
    start_value = _number(doc["start_value"], f"{path}: start_value")
    trades = _trades(doc["trades"], path, "trades")
    open_trades = _trades(doc.get("open_trades") or [], path, "open_trades", closed=False)
    _check_trades_within(trades, times, f"{path}: trades")
    name = str((doc.get("config") or {}).get("name") or path.stem) if isinstance(doc.get("config"), dict) else path.stem
    return Performance(
        name=name,
        source=str(path),
        timestamps=times,
        values=values,
        trades=trades,
        open_trades=open_trades,
        start_value=start_value,
        strategy=doc.get("strategy"),
        symbols=list(doc.get("symbols") or []),
        timeframe=doc.get("timeframe"),
    )


def load_equity_csv(path: Path) -> Performance:
    """A CSV with a header ``timestamp,equity`` (extra columns ignored); times ISO-8601 or epoch ms."""
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        raise DataError(f"{path}: the file is empty; expected a header `timestamp,equity` and one row per bar")
    header = [h.strip().lower() for h in rows[0]]
    missing = [c for c in ("timestamp", "equity") if c not in header]
    if missing:
        raise DataError(f"{path}:1: missing column(s) {', '.join(missing)}; the header must name timestamp,equity")
    t_col, v_col = header.index("timestamp"), header.index("equity")
    body = [(n, r) for n, r in enumerate(rows[1:], start=2) if any(cell.strip() for cell in r)]
    if not body:
        raise DataError(f"{path}: no data rows after the header")
    lines = [n for n, _ in body]
    for n, r in body:
        if len(r) <= max(t_col, v_col):
            raise DataError(f"{path}:{n}: expected {len(header)} columns, got {len(r)}")
    raw_times: list[Any] = [r[t_col].strip() for _, r in body]
    if all(_is_int(t) for t in raw_times):
        raw_times = [int(t) for t in raw_times]
    where = f"{path}:{{}}"
    times = parse_times(raw_times, lambda i: f"{path}:{lines[i]}")
    values = np.empty(len(body), dtype=np.float64)
    for i, (n, r) in enumerate(body):
        values[i] = _number(r[v_col].strip(), where.format(n) + " equity")
    steps = np.diff(times)
    bad = np.flatnonzero(steps <= 0)
    if bad.size:
        n = lines[int(bad[0]) + 1]
        raise DataError(f"{path}:{n}: timestamp is not after the previous row's; equity times must strictly increase")
    return Performance(
        name=path.stem, source=str(path), timestamps=times, values=values, start_value=None, trades_known=False
    )


def load_trades(path: Path) -> Performance:
    """A JSON list of closed trades (the result file's `trades` shape, as `tradeforge trades --json`
    writes), or an object with a `trades` list. Only `pnl` is required."""
    doc = read_json(path)
    if isinstance(doc, dict):
        if "trades" not in doc:
            raise DataError(f"{path}: expected a list of trades or an object with a 'trades' list")
        doc = doc["trades"]
    if not isinstance(doc, list):
        raise DataError(f"{path}: expected a list of trades, got {type(doc).__name__}")
    closed = [t for t in doc if not (isinstance(t, dict) and t.get("exit_reason") == "open")]
    trades = _trades(closed, path, "trades")
    if trades and all(t.get("exit_time") is not None for t in trades):  # streaks follow the order trades closed
        order = np.argsort(parse_times([t["exit_time"] for t in trades], f"{path}: trades[{{}}]"), kind="stable")
        trades = [trades[int(i)] for i in order]
    return Performance(name=path.stem, source=str(path), timestamps=None, values=None, trades=trades)


def from_records(
    name: str,
    source: str,
    trades: list[dict[str, Any]],
    equity: list[tuple[Any, float]],
    start_value: float | None = None,
) -> Performance:
    """Plain data handed over by the engine (a bot's database): validated like a file."""
    closed = [t for t in trades if t.get("exit_reason") != "open"]
    opened = [t for t in trades if t.get("exit_reason") == "open"]
    times = parse_times([t for t, _ in equity], f"{source}: equity[{{}}]") if equity else None
    values = np.array([float(v) for _, v in equity], dtype=np.float64) if equity else None
    if times is not None:
        _check_increasing(times, f"{source}: equity[{{}}]")
    return Performance(
        name=name,
        source=source,
        timestamps=times,
        values=values,
        trades=_trades(closed, Path(source), "trades"),
        open_trades=_trades(opened, Path(source), "open_trades", closed=False),
        start_value=start_value,
    )


# --------------------------------------------------------------------------- fields


def _is_int(text: str) -> bool:
    return text.lstrip("-").isdigit()


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool):
        raise DataError(f"{where}: expected a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise DataError(f"{where}: expected a number, got {value!r}") from None
    if not math.isfinite(number):
        raise DataError(f"{where}: expected a finite number, got {value!r}")
    return number


def _numbers(raw: Sequence[Any], where: str, what: str) -> np.ndarray:
    out = np.empty(len(raw), dtype=np.float64)
    for i, value in enumerate(raw):
        out[i] = _number(value, f"{where.format(i)} {what}")
    return out


def _trades(raw: Any, path: Path, key: str, *, closed: bool = True) -> list[dict[str, Any]]:
    if not isinstance(raw, list):
        raise DataError(f"{path}: '{key}' must be a list of trades")
    out: list[dict[str, Any]] = []
    for i, trade in enumerate(raw):
        where = f"{path}: {key}[{i}]"
        if not isinstance(trade, dict):
            raise DataError(f"{where}: a trade is an object with at least 'pnl', got {trade!r}")
        clean = dict(trade)
        if trade.get("pnl") is not None:
            clean["pnl"] = _number(trade["pnl"], f"{where}.pnl")
        elif closed:
            raise DataError(f"{where}: missing 'pnl' (net profit of the trade)")
        # An open trade may have no pnl yet (a bot's database marks nothing to market).
        for optional in ("pnl_pct", "entry_price", "exit_price", "size", "fees"):
            if trade.get(optional) is not None:
                clean[optional] = _number(trade[optional], f"{where}.{optional}")
        entry = exit_ = None
        if trade.get("entry_time") is not None:
            entry = int(parse_times([trade["entry_time"]], where + ".entry_time", "entry_time")[0])
        if trade.get("exit_time") is not None:
            exit_ = int(parse_times([trade["exit_time"]], where + ".exit_time", "exit_time")[0])
        if entry is not None and exit_ is not None and exit_ < entry:
            raise DataError(f"{where}: exit_time {trade['exit_time']} is before entry_time {trade['entry_time']}")
        out.append(clean)
    return out


def _check_trades_within(trades: list[dict[str, Any]], times: np.ndarray, where: str) -> None:
    """A trade outside the equity curve's span means the two do not belong together."""
    if times.size < 2:
        return
    slack = int(np.median(np.diff(times)))
    first, last = int(times[0]) - slack, int(times[-1]) + slack
    for key in ("entry_time", "exit_time"):
        which = [i for i, t in enumerate(trades) if t.get(key) is not None]
        moments = parse_times([trades[i][key] for i in which], lambda k, w=which: f"{where}[{w[k]}]", key)  # type: ignore[misc]
        outside = np.flatnonzero((moments < first) | (moments > last))
        if outside.size:
            i = which[int(outside[0])]
            raise DataError(
                f"{where}[{i}]: {key} {trades[i][key]} lies outside the equity curve "
                f"({pd.Timestamp(int(times[0]), tz='UTC')} to {pd.Timestamp(int(times[-1]), tz='UTC')}); "
                "the trades and the equity do not match"
            )
