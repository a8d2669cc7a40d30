"""What every report format shows, computed once from an Analysis: series for the charts and the
formatted metrics table. The format modules only lay it out."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tradeforge.analytics import metrics as m
from tradeforge.analytics.analysis import Analysis
from tradeforge.analytics.loaders import parse_times
from tradeforge.resilience.errors import DataError

PERCENT_METRICS = frozenset(
    {
        "total_return",
        "cagr",
        "annual_volatility",
        "max_drawdown",
        "ulcer_index",
        "win_rate",
        "exposure",
        "kelly_fraction",
    }
)
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def is_percent(key: str) -> bool:
    return key in PERCENT_METRICS or key.startswith(("var_", "cvar_"))


def format_metric(key: str, value: float | int | None) -> str:
    """Human form of a metric: percentages for fractions, days for durations, n/a for None."""
    if value is None:
        return "n/a"
    if isinstance(value, int):
        return f"{value:,}"
    if is_percent(key):
        return f"{value * 100:,.2f} %"
    if key == "max_drawdown_duration":
        return f"{value:,.1f} days"
    if key in ("probabilistic_sharpe_ratio", "deflated_sharpe_ratio"):
        return f"{value:.3f}"
    return f"{value:,.4g}" if abs(value) < 1e4 else f"{value:,.2f}"


def label(key: str) -> str:
    return key.replace("_", " ")


@dataclass
class Prices:
    """Candle closes to draw trades on."""

    times: pd.DatetimeIndex
    close: np.ndarray


def load_prices(path: Path) -> Prices:
    """A candle CSV (`timestamp,...,close,...`), as tradeforge reads candles; errors name the file."""
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        frame = pd.read_csv(path)
    except (ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"{path}: not a readable CSV ({exc})") from None
    missing = [c for c in ("timestamp", "close") if c not in frame.columns]
    if missing:
        raise DataError(f"{path}:1: missing column(s) {', '.join(missing)}")
    raw = frame["timestamp"].tolist()
    ns = parse_times(raw, lambda i: f"{path}:{i + 2}")
    close = pd.to_numeric(frame["close"], errors="coerce").to_numpy(np.float64)
    bad = np.flatnonzero(~np.isfinite(close))
    if bad.size:
        raise DataError(f"{path}:{int(bad[0]) + 2}: close is not a number")
    return Prices(pd.to_datetime(ns, utc=True), close)


@dataclass
class ReportData:
    title: str
    subtitle: str
    metrics: list[tuple[str, str, str]]  # key, label, formatted value
    times: pd.DatetimeIndex | None
    equity: np.ndarray | None
    drawdown: np.ndarray | None
    monthly_years: list[int]
    monthly: np.ndarray  # (years, 12) returns, NaN where no data
    trades: list[dict[str, Any]]
    trade_pnl: np.ndarray
    prices: Prices | None
    mc: dict[str, Any] | None  # the JSON summary
    fan_x: np.ndarray | None = None  # trade (or bar) number
    fan: np.ndarray | None = None  # (5, len(fan_x))
    raw_metrics: dict[str, Any] = field(default_factory=dict)


def report_data(analysis: Analysis, prices: Prices | None = None) -> ReportData:
    p = analysis.performance
    doc = analysis.to_json()
    times = equity = drawdown = None
    if p.values is not None and p.timestamps is not None and p.values.size:
        times = pd.to_datetime(p.timestamps, utc=True)
        equity = p.values
        drawdown = m.drawdown_series(p.values)
    years = sorted({row["year"] for row in analysis.monthly})
    monthly = np.full((len(years), 12), np.nan)
    for row in analysis.monthly:
        if row["return"] is not None:
            monthly[years.index(row["year"]), row["month"] - 1] = row["return"]
    period = f"{doc['start'][:10]} to {doc['end'][:10]}" if doc["start"] else "trades only"
    subtitle = " · ".join(
        x
        for x in (
            p.strategy or "",
            ", ".join(p.symbols),
            p.timeframe or "",
            period,
            f"{len(p.trades)} trades",
        )
        if x
    )
    mc = analysis.monte_carlo
    return ReportData(
        title=f"tradeforge report: {p.name}",
        subtitle=subtitle,
        metrics=[(k, label(k), format_metric(k, v)) for k, v in analysis.metrics.items()],
        times=times,
        equity=equity,
        drawdown=drawdown,
        monthly_years=years,
        monthly=monthly,
        trades=p.trades,
        trade_pnl=np.array([t["pnl"] for t in p.trades], dtype=np.float64),
        prices=prices,
        mc=None if mc is None else mc.summary(),
        fan_x=None if mc is None else mc.fan_steps,
        fan=None if mc is None else mc.fan,
        raw_metrics=dict(analysis.metrics),
    )


def trade_points(data: ReportData) -> dict[str, dict[str, list[Any]]]:
    """Entry and exit markers per side: times and fill prices (trades without them are skipped)."""
    out: dict[str, dict[str, list[Any]]] = {}
    for trade in data.trades:
        if trade.get("entry_time") is None or trade.get("entry_price") is None:
            continue
        side = str(trade.get("side") or "long")
        bucket = out.setdefault(side, {"entry_t": [], "entry_p": [], "exit_t": [], "exit_p": [], "pnl": []})
        bucket["entry_t"].append(pd.Timestamp(trade["entry_time"]))
        bucket["entry_p"].append(trade["entry_price"])
        bucket["exit_t"].append(pd.Timestamp(trade["exit_time"]) if trade.get("exit_time") else None)
        bucket["exit_p"].append(trade.get("exit_price"))
        bucket["pnl"].append(trade["pnl"])
    return out
