"""One strategy's full analysis (metrics, monthly returns, optional Monte Carlo) as data and as the
documented JSON document that `analyze --json` and `report --format json` write."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from tradeforge.analytics import metrics as m
from tradeforge.analytics.loaders import Performance, parse_times
from tradeforge.analytics.montecarlo import Method, MonteCarloResult, simulate, trade_returns
from tradeforge.resilience.errors import DataError

__all__ = ["SCHEMA", "Analysis", "MonteCarloSpec", "analyze", "monthly_returns"]

SCHEMA = "tradeforge.analysis/1"
DEFAULT_START_VALUE = 10_000.0  # for a trade list without a starting value


@dataclass(frozen=True)
class MonteCarloSpec:
    simulations: int = 10_000
    method: Method = "trades"
    seed: int | None = None
    ruin_level: float = 0.5
    block_size: int | None = None


@dataclass
class Analysis:
    performance: Performance
    periods_per_year: float | None
    risk_free: float
    metrics: dict[str, float | int | None]
    monthly: list[dict[str, Any]]
    monte_carlo: MonteCarloResult | None

    def to_json(self) -> dict[str, Any]:
        """The analysis document (README: "JSON report schema")."""
        p = self.performance
        ts = p.timestamps
        return {
            "schema": SCHEMA,
            "name": p.name,
            "source": p.source,
            "strategy": p.strategy,
            "symbols": p.symbols,
            "timeframe": p.timeframe,
            "start": _iso(int(ts[0])) if ts is not None and ts.size else None,
            "end": _iso(int(ts[-1])) if ts is not None and ts.size else None,
            "n_bars": int(ts.size) if ts is not None else 0,
            "start_value": p.initial_value(),
            "final_value": float(p.values[-1]) if p.values is not None and p.values.size else None,
            "periods_per_year": self.periods_per_year,
            "risk_free": self.risk_free,
            "metrics": self.metrics,
            "monthly_returns": self.monthly,
            "monte_carlo": None if self.monte_carlo is None else self.monte_carlo.summary(),
        }


def _iso(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns / 1e9, tz=dt.UTC).isoformat()


def monthly_returns(values: np.ndarray, timestamps: np.ndarray) -> list[dict[str, Any]]:
    """Return of each calendar month (UTC): last value of the month over the last value of the
    month before (the first month starts from the first value)."""
    if values.size < 2:
        return []
    index = pd.DatetimeIndex(pd.to_datetime(timestamps, utc=True))
    series = pd.Series(values, index=index)
    month_end = series.groupby([index.year, index.month]).last()
    previous = np.concatenate(([values[0]], month_end.to_numpy()[:-1]))
    out = []
    for (year, month), last, prev in zip(month_end.index, month_end.to_numpy(), previous, strict=True):
        out.append({"year": int(year), "month": int(month), "return": float(last / prev - 1) if prev > 0 else None})
    return out


def _years(p: Performance) -> float | None:
    if p.timestamps is not None and p.timestamps.size >= 2:
        span = int(p.timestamps[-1] - p.timestamps[0])
    else:
        times = [t.get(k) for t in p.trades for k in ("entry_time", "exit_time") if t.get(k) is not None]
        if len(times) < 2:
            return None
        ns = parse_times(times, f"{p.source}: trade time {{}}")
        span = int(ns.max() - ns.min())
    if span < m.NS_PER_DAY:
        return None
    return span / (m.DAYS_PER_YEAR * m.NS_PER_DAY)


def run_monte_carlo(p: Performance, spec: MonteCarloSpec) -> MonteCarloResult:
    """Monte Carlo of a record, or a DataError saying what the method needs."""
    start = p.initial_value() or DEFAULT_START_VALUE
    if spec.method in ("trades", "bootstrap"):
        if not p.trades:
            raise DataError(f"{p.source}: Monte Carlo --method {spec.method} needs closed trades and there are none")
        try:
            returns = trade_returns(np.array([t["pnl"] for t in p.trades]), start)
        except ValueError as exc:
            raise DataError(f"{p.source}: {exc}") from None
    else:
        if not p.has_equity or p.values is None or p.values.size < 3:
            raise DataError(f"{p.source}: Monte Carlo --method block needs an equity curve of at least 3 points")
        returns = m.returns_from_equity(p.values)
    try:
        return simulate(
            returns,
            method=spec.method,
            simulations=spec.simulations,
            start_value=start,
            years=_years(p),
            seed=spec.seed,
            ruin_level=spec.ruin_level,
            block_size=spec.block_size,
        )
    except ValueError as exc:
        raise DataError(f"{p.source}: {exc}") from None


def analyze(
    p: Performance,
    *,
    periods: float | None = None,
    risk_free: float = 0.0,
    monte_carlo: MonteCarloSpec | None = None,
    n_trials: int = 1,
    trials_sharpe_variance: float | None = None,
) -> Analysis:
    """Every metric of ``p``; periods per year inferred from its timestamps unless given."""
    ppy = periods
    in_market = None
    if p.has_equity and p.timestamps is not None:
        if ppy is None:
            ppy = m.periods_per_year(p.timestamps)
        entries, exits = p.trade_times_ns()
        if entries:
            in_market = m.in_market_mask(p.timestamps, entries, exits)
    metrics = m.all_metrics(
        p.values if p.has_equity else None,
        p.timestamps if p.has_equity else None,
        p.trades,
        periods=ppy,
        risk_free=risk_free,
        in_market=in_market,
        n_trials=n_trials,
        trials_sharpe_variance=trials_sharpe_variance,
    )
    if not p.trades_known:
        metrics.update(dict.fromkeys(m.TRADE_METRIC_NAMES))
    elif p.has_equity and in_market is None:
        metrics["exposure"] = 0.0 if not p.trades and not p.open_trades else None
    monthly = monthly_returns(p.values, p.timestamps) if p.values is not None and p.timestamps is not None else []
    mc = run_monte_carlo(p, monte_carlo) if monte_carlo is not None else None
    return Analysis(p, ppy, risk_free, metrics, monthly, mc)
