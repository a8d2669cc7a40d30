"""Backtest summary metrics as pure NumPy functions over an equity curve and a list of closed trades.

Conventions (kept compatible with empyrical/quantstats so later parity checks are like for like):

- ``values`` is the portfolio value per bar (float64); ``timestamps`` the bar open times as int64
  nanoseconds since the epoch, UTC (a ``datetime64`` array of any unit is accepted too).
- Returns are simple per-bar returns; drawdowns are negative fractions.
- ``risk_free`` is an *annual* rate, turned into a per-bar rate as ``(1 + rf) ** (1 / ppy) - 1``.
- Every metric returns a plain ``float`` (or ``int``), or ``None`` when it is undefined for the input
  (too few points, zero dispersion, no trades...). Nothing raises or divides by zero on such input.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

__all__ = [
    "annual_volatility",
    "cagr",
    "calmar",
    "drawdown_series",
    "expectancy",
    "exposure",
    "max_drawdown",
    "periods_per_year",
    "profit_factor",
    "returns_from_equity",
    "sharpe",
    "sortino",
    "summary",
    "total_return",
    "win_rate",
]

Calendar = Literal["auto", "24/7", "trading"]

NS_PER_DAY = 86_400 * 10**9
DAYS_PER_YEAR = 365.25  # elapsed-time years (CAGR, multi-day bars)
CALENDAR_DAYS_PER_YEAR = 365  # bars a year for 24/7 markets: 1d -> 365, 1h -> 8760
TRADING_DAYS_PER_YEAR = 252
# A dispersion below this is rounding noise on a flat or constant-growth curve, not risk.
_ZERO_DISPERSION = 1e-12


# --------------------------------------------------------------------------- inputs


def _values(values: Any) -> np.ndarray:
    return np.asarray(values, dtype=np.float64).ravel()


def _timestamps_ns(timestamps: Any) -> np.ndarray:
    ts = np.asarray(timestamps).ravel()
    if ts.dtype.kind == "M":
        return ts.astype("datetime64[ns]").view(np.int64)
    return ts.astype(np.int64, copy=False)


def _pnls(trades: Sequence[Any]) -> np.ndarray:
    """Net pnl of each trade; trades may be mappings or objects with a ``pnl`` attribute."""
    return np.fromiter((float(t["pnl"] if isinstance(t, Mapping) else t.pnl) for t in trades), dtype=np.float64)


def _per_bar_rate(risk_free: float, ppy: float) -> float:
    return (1.0 + risk_free) ** (1.0 / ppy) - 1.0 if risk_free else 0.0


# --------------------------------------------------------------------------- equity curve


def returns_from_equity(values: np.ndarray) -> np.ndarray:
    """Simple per-bar returns: ``r[i] = v[i+1] / v[i] - 1``; length n-1 (empty for < 2 points).

    A bar that starts from a value of 0 (a wiped-out account) has return 0.0 instead of inf/nan.
    """
    v = _values(values)
    if v.size < 2:
        return np.empty(0, dtype=np.float64)
    prev, nxt = v[:-1], v[1:]
    out = np.zeros(prev.size, dtype=np.float64)
    np.divide(nxt, prev, out=out, where=prev != 0)
    out[prev != 0] -= 1.0
    return out


def periods_per_year(timestamps: np.ndarray, *, calendar: Calendar = "auto") -> float | None:
    """Bars per year inferred from the median bar spacing ``dt``.

    - ``"24/7"`` (auto: any bar on a Saturday/Sunday UTC): ``365 days / dt`` (1h -> 8760, 1d -> 365);
    - ``"trading"`` (auto: weekday-only): daily bars -> 252; intraday -> ``252 * bars per session``,
      the session estimated as the median count of bars per UTC calendar day;
    - bars spaced more than 1.5 days apart (weekly, monthly) in either calendar:
      ``365.25 days / mean spacing`` (weekly -> 52.18, monthly -> ~12).

    None if there are fewer than 2 distinct increasing timestamps.
    """
    if calendar not in ("auto", "24/7", "trading"):
        raise ValueError(f"calendar must be 'auto', '24/7' or 'trading', got {calendar!r}")
    ts = _timestamps_ns(timestamps)
    steps = np.diff(ts)
    steps = steps[steps > 0]
    if steps.size == 0:
        return None
    dt = float(np.median(steps))
    if dt > 1.5 * NS_PER_DAY:
        return DAYS_PER_YEAR * NS_PER_DAY / (float(ts.max() - ts.min()) / (ts.size - 1))
    days = ts // NS_PER_DAY
    if calendar == "auto":
        weekday = (days + 3) % 7  # 1970-01-01 was a Thursday; Monday == 0
        calendar = "24/7" if bool(np.any(weekday >= 5)) else "trading"
    if calendar == "24/7":
        return CALENDAR_DAYS_PER_YEAR * NS_PER_DAY / dt
    if dt >= 0.75 * NS_PER_DAY:
        return float(TRADING_DAYS_PER_YEAR)
    _, bars_per_day = np.unique(days, return_counts=True)
    return TRADING_DAYS_PER_YEAR * float(np.median(bars_per_day))


def total_return(values: np.ndarray) -> float | None:
    """``v[-1] / v[0] - 1``. None if empty or the first value is not positive."""
    v = _values(values)
    if v.size == 0 or not v[0] > 0:
        return None
    return float(v[-1] / v[0] - 1.0)


def cagr(values: np.ndarray, timestamps: np.ndarray) -> float | None:
    """``(v[-1] / v[0]) ** (1 / years) - 1`` with years = elapsed time / 365.25 days.

    None if fewer than 2 points, less than one day elapsed, or the first value is not positive;
    -1.0 if the curve ends at or below zero. Absurd growth over a short span may give ``inf``.
    """
    v, ts = _values(values), _timestamps_ns(timestamps)
    if v.size < 2 or ts.size < 2 or not v[0] > 0:
        return None
    elapsed_ns = float(ts[-1] - ts[0])
    if elapsed_ns < NS_PER_DAY:
        return None
    if v[-1] <= 0:
        return -1.0
    years = elapsed_ns / (DAYS_PER_YEAR * NS_PER_DAY)
    with np.errstate(over="ignore"):
        return float(np.power(v[-1] / v[0], 1.0 / years) - 1.0)


def drawdown_series(values: np.ndarray) -> np.ndarray:
    """Per-bar drawdown from the running peak: ``dd[i] = v[i] / max(v[:i+1]) - 1`` (<= 0).

    Bars where the running peak is not positive get 0.0.
    """
    v = _values(values)
    peak = np.maximum.accumulate(v) if v.size else v
    out = np.zeros(v.size, dtype=np.float64)
    np.divide(v, peak, out=out, where=peak > 0)
    out[peak > 0] -= 1.0
    return out


def max_drawdown(values: np.ndarray) -> float | None:
    """Deepest drawdown ``min(v[i] / max(v[:i+1]) - 1)`` as a negative fraction; 0.0 for a curve
    that never falls. None if empty."""
    v = _values(values)
    if v.size == 0:
        return None
    return float(min(drawdown_series(v).min(), 0.0))


def calmar(values: np.ndarray, timestamps: np.ndarray) -> float | None:
    """``cagr / |max_drawdown|``. None if CAGR is undefined or there was no drawdown."""
    growth, mdd = cagr(values, timestamps), max_drawdown(values)
    if growth is None or mdd is None or mdd == 0:
        return None
    return float(growth / abs(mdd))


# --------------------------------------------------------------------------- return statistics


def annual_volatility(returns: np.ndarray, ppy: float) -> float | None:
    """``std(r, ddof=1) * sqrt(ppy)``. None if fewer than 2 returns."""
    r = _values(returns)
    if r.size < 2:
        return None
    return float(np.std(r, ddof=1) * math.sqrt(ppy))


def sharpe(returns: np.ndarray, ppy: float, risk_free: float = 0.0) -> float | None:
    """``mean(e) / std(e, ddof=1) * sqrt(ppy)`` with ``e = r - rf_per_bar``.

    None if fewer than 2 returns or the excess returns do not vary (std == 0).
    """
    r = _values(returns)
    if r.size < 2:
        return None
    excess = r - _per_bar_rate(risk_free, ppy)
    sd = float(np.std(excess, ddof=1))
    if sd <= _ZERO_DISPERSION:
        return None
    return float(np.mean(excess) / sd * math.sqrt(ppy))


def sortino(returns: np.ndarray, ppy: float, risk_free: float = 0.0) -> float | None:
    """``mean(e) / sqrt(mean(min(e, 0) ** 2)) * sqrt(ppy)`` with ``e = r - rf_per_bar``.

    None if there are no returns or no bar fell below the risk-free rate (downside deviation 0).
    """
    r = _values(returns)
    if r.size == 0:
        return None
    excess = r - _per_bar_rate(risk_free, ppy)
    downside = math.sqrt(float(np.mean(np.minimum(excess, 0.0) ** 2)))
    if downside <= _ZERO_DISPERSION:
        return None
    return float(np.mean(excess) / downside * math.sqrt(ppy))


# --------------------------------------------------------------------------- trades and positions


def win_rate(trades: Sequence[Any]) -> float | None:
    """``count(pnl > 0) / n_trades``; a break-even trade is not a win. None if there are no trades."""
    pnl = _pnls(trades)
    if pnl.size == 0:
        return None
    return float(np.count_nonzero(pnl > 0) / pnl.size)


def profit_factor(trades: Sequence[Any]) -> float | None:
    """``sum(winning pnl) / |sum(losing pnl)|``. None if no trade lost (incl. no trades);
    0.0 if every trade that closed away from break-even lost."""
    pnl = _pnls(trades)
    gross_loss = -float(pnl[pnl < 0].sum())
    if gross_loss == 0:
        return None
    return float(pnl[pnl > 0].sum()) / gross_loss


def expectancy(trades: Sequence[Any]) -> float | None:
    """Mean net pnl per trade, ``sum(pnl) / n_trades``. None if there are no trades."""
    pnl = _pnls(trades)
    if pnl.size == 0:
        return None
    return float(pnl.mean())


def exposure(in_market: np.ndarray) -> float | None:
    """Fraction of bars with an open position, ``count(in_market) / n_bars``. None if no bars."""
    flags = np.asarray(in_market, dtype=bool).ravel()
    if flags.size == 0:
        return None
    return float(np.count_nonzero(flags) / flags.size)


# --------------------------------------------------------------------------- summary


def summary(
    values: np.ndarray,
    timestamps: np.ndarray,
    trades: Sequence[Any],
    in_market: np.ndarray,
    *,
    risk_free: float = 0.0,
    periods: float | None = None,
) -> dict[str, float | int | None]:
    """The backtest summary, keys in display order. Sharpe, Sortino and volatility use per-bar
    returns annualised with ``periods`` (default: :func:`periods_per_year` of ``timestamps``);
    they are None when that cannot be inferred."""
    v, ts = _values(values), _timestamps_ns(timestamps)
    if v.size != ts.size:
        raise ValueError(f"equity has {v.size} values but {ts.size} timestamps; they must match bar for bar")
    ppy = periods if periods is not None else periods_per_year(ts)
    returns = returns_from_equity(v)
    vol: float | None = None
    shp: float | None = None
    srt: float | None = None
    if ppy is not None and ppy > 0:
        vol = annual_volatility(returns, ppy)
        shp = sharpe(returns, ppy, risk_free)
        srt = sortino(returns, ppy, risk_free)
    return {
        "total_return": total_return(v),
        "cagr": cagr(v, ts),
        "sharpe": shp,
        "sortino": srt,
        "max_drawdown": max_drawdown(v),
        "n_trades": len(trades),
        "win_rate": win_rate(trades),
        "profit_factor": profit_factor(trades),
        "exposure": exposure(in_market),
        "calmar": calmar(v, ts),
        "annual_volatility": vol,
        "expectancy": expectancy(trades),
    }
