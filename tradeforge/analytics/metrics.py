"""Backtest summary metrics as pure NumPy functions over an equity curve and a list of closed trades.

Conventions (kept compatible with empyrical/quantstats so later parity checks are like for like):

- ``values`` is the portfolio value per bar (float64); ``timestamps`` the bar open times as int64
  nanoseconds since the epoch, UTC (a ``datetime64`` array of any unit is accepted too).
- Returns are simple per-bar returns; drawdowns are negative fractions.
- ``risk_free`` is an *annual* rate, turned into a per-bar rate as ``(1 + rf) ** (1 / ppy) - 1``.
- Every metric returns a plain ``float`` (or ``int``), or ``None`` when it is undefined for the input
  (too few points, zero dispersion, no trades...). Nothing raises or divides by zero on such input.
- NaN or infinite returns/values are dropped before a metric is computed (empyrical's convention);
  a metric left with too few points is ``None``.
- VaR and CVaR are *returns* at the tail (a loss is negative, like ``max_drawdown``), not loss amounts.

The README section "Analytics and reports" documents every formula and where we differ from
empyrical-reloaded and quantstats.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from statistics import NormalDist
from typing import Any, Literal

import numpy as np

__all__ = [
    "METRIC_NAMES",
    "all_metrics",
    "annual_volatility",
    "average_trade",
    "best_trade",
    "cagr",
    "calmar",
    "conditional_value_at_risk",
    "deflated_sharpe_ratio",
    "drawdown_series",
    "expectancy",
    "exposure",
    "in_market_mask",
    "kelly_fraction",
    "longest_losing_streak",
    "longest_winning_streak",
    "max_drawdown",
    "max_drawdown_duration",
    "omega",
    "payoff_ratio",
    "periods_per_year",
    "probabilistic_sharpe_ratio",
    "profit_factor",
    "recovery_factor",
    "returns_from_equity",
    "sharpe",
    "sortino",
    "sqn",
    "summary",
    "tail_ratio",
    "total_return",
    "ulcer_index",
    "value_at_risk",
    "win_rate",
    "worst_trade",
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
    """Net pnl of each trade; trades may be mappings or objects with a ``pnl`` attribute.

    A trade whose pnl is missing or not finite is dropped (it cannot be counted as a win or a loss).
    """
    pnl = np.fromiter(
        (_num(t["pnl"] if isinstance(t, Mapping) else t.pnl) for t in trades), dtype=np.float64, count=len(trades)
    )
    return pnl[np.isfinite(pnl)]


def _num(value: Any) -> float:
    return math.nan if value is None else float(value)


def _finite(values: Any) -> np.ndarray:
    """Drop NaN and infinities: a missing observation is not a zero return."""
    v = _values(values)
    return v[np.isfinite(v)]


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
    v = _finite(values)
    if v.size == 0 or not v[0] > 0:
        return None
    return float(v[-1] / v[0] - 1.0)


def cagr(values: np.ndarray, timestamps: np.ndarray) -> float | None:
    """``(v[-1] / v[0]) ** (1 / years) - 1`` with years = elapsed time / 365.25 days.

    None if fewer than 2 points, less than one day elapsed, or the first value is not positive;
    -1.0 if the curve ends at or below zero. Absurd growth over a short span may give ``inf``.
    """
    v, ts = _values(values), _timestamps_ns(timestamps)
    if v.size == ts.size:
        keep = np.isfinite(v)
        v, ts = v[keep], ts[keep]
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
    v = _finite(values)
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
    r = _finite(returns)
    if r.size < 2:
        return None
    return float(np.std(r, ddof=1) * math.sqrt(ppy))


def sharpe(returns: np.ndarray, ppy: float, risk_free: float = 0.0) -> float | None:
    """``mean(e) / std(e, ddof=1) * sqrt(ppy)`` with ``e = r - rf_per_bar``.

    None if fewer than 2 returns or the excess returns do not vary (std == 0).
    """
    r = _finite(returns)
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
    r = _finite(returns)
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


# --------------------------------------------------------------------------- drawdown depth and time


def max_drawdown_duration(values: np.ndarray, timestamps: np.ndarray) -> float | None:
    """Longest time under water, in days: from a running peak to the first bar back at or above it
    (or to the last bar if the curve never recovered). 0.0 if the curve never falls; None if empty."""
    v, ts = _values(values), _timestamps_ns(timestamps)
    if v.size != ts.size:
        raise ValueError(f"equity has {v.size} values but {ts.size} timestamps; they must match bar for bar")
    keep = np.isfinite(v)
    v, ts = v[keep], ts[keep]
    if v.size == 0:
        return None
    peak = np.maximum.accumulate(v)
    at_peak = v >= peak
    # Time of the latest peak at or before each bar.
    peak_time = np.maximum.accumulate(np.where(at_peak, ts, np.iinfo(np.int64).min))
    if at_peak.all():
        return 0.0
    before = np.concatenate(([peak_time[0]], peak_time[:-1]))  # the peak in force on the bar before
    under = ~at_peak
    recovered = at_peak & np.concatenate(([False], under[:-1]))  # back at a peak after being under water
    spells = np.concatenate(((ts - peak_time)[under], (ts - before)[recovered]))
    return int(spells.max()) / NS_PER_DAY


def ulcer_index(values: np.ndarray) -> float | None:
    """Martin's Ulcer Index ``sqrt(mean(dd ** 2))`` over every bar, drawdowns as fractions. None if empty."""
    v = _finite(values)
    if v.size == 0:
        return None
    return float(math.sqrt(float(np.mean(drawdown_series(v) ** 2))))


def recovery_factor(values: np.ndarray) -> float | None:
    """``total_return / |max_drawdown|``. None if there was no drawdown or the return is undefined."""
    growth, mdd = total_return(values), max_drawdown(values)
    if growth is None or mdd is None or mdd == 0:
        return None
    return float(growth / abs(mdd))


# --------------------------------------------------------------------------- distribution of returns


def omega(returns: np.ndarray, threshold: float = 0.0) -> float | None:
    """``sum(max(r - t, 0)) / sum(max(t - r, 0))`` for a per-bar threshold ``t``. None if no return
    fell below the threshold."""
    r = _finite(returns)
    if r.size == 0:
        return None
    excess = r - threshold
    loss = -float(excess[excess < 0].sum())
    if loss <= 0:
        return None
    return float(excess[excess > 0].sum()) / loss


def tail_ratio(returns: np.ndarray) -> float | None:
    """``|95th percentile| / |5th percentile|`` of returns (linear interpolation). None if fewer
    than 2 returns or the 5th percentile is 0."""
    r = _finite(returns)
    if r.size < 2:
        return None
    low = abs(float(np.percentile(r, 5)))
    if low == 0:
        return None
    return abs(float(np.percentile(r, 95))) / low


VarMethod = Literal["historical", "parametric", "cornish_fisher"]
VAR_LEVELS = (0.95, 0.99)
VAR_METHODS: tuple[VarMethod, ...] = ("historical", "parametric", "cornish_fisher")
_NORMAL = NormalDist()
_CF_GRID = 2_000  # quantile points averaged for the Cornish-Fisher expected shortfall


def _moments(r: np.ndarray) -> tuple[float, float, float, float] | None:
    """Mean, sample std (ddof 1), skewness G1 and excess kurtosis G2, both bias-corrected (the
    adjusted Fisher-Pearson estimators pandas and Excel use). None if fewer than 4 points or no
    dispersion."""
    n = r.size
    if n < 4:
        return None
    mu = float(np.mean(r))
    sd = float(np.std(r, ddof=1))
    centred = r - mu
    m2 = float(np.mean(centred**2))
    if sd <= _ZERO_DISPERSION or m2 <= _ZERO_DISPERSION**2:
        return None
    g1 = float(np.mean(centred**3)) / m2**1.5
    g2 = float(np.mean(centred**4)) / m2**2 - 3.0
    skew = g1 * math.sqrt(n * (n - 1)) / (n - 2)
    excess_kurtosis = ((n + 1) * g2 + 6) * (n - 1) / ((n - 2) * (n - 3))
    return mu, sd, skew, excess_kurtosis


def _cornish_fisher_z(z: np.ndarray | float, skew: float, kurt: float) -> Any:
    """Cornish-Fisher expansion of the standard normal quantile ``z`` for skew S and excess kurtosis K."""
    return z + (z**2 - 1) * skew / 6 + (z**3 - 3 * z) * kurt / 24 - (2 * z**3 - 5 * z) * skew**2 / 36


def value_at_risk(returns: np.ndarray, level: float = 0.95, method: VarMethod = "historical") -> float | None:
    """The per-bar return that is undercut with probability ``1 - level`` (negative for a loss).

    - historical: ``percentile(r, 100 (1 - level))`` (linear interpolation, as empyrical);
    - parametric: ``mu + sigma z`` with ``z = Phi^-1(1 - level)`` and the sample sigma (as quantstats);
    - cornish_fisher: ``mu + sigma z_cf``, z corrected for skewness and excess kurtosis.

    None if fewer than 2 returns; parametric with zero dispersion is ``mu``; Cornish-Fisher needs
    4 returns and dispersion (None otherwise).
    """
    r = _finite(returns)
    if r.size < 2 or not 0 < level < 1:
        return None
    alpha = 1.0 - level
    if method == "historical":
        return float(np.percentile(r, 100 * alpha))
    z = _NORMAL.inv_cdf(alpha)
    if method == "parametric":
        return float(np.mean(r) + float(np.std(r, ddof=1)) * z)
    if method == "cornish_fisher":
        moments = _moments(r)
        if moments is None:
            return None
        mu, sd, skew, kurt = moments
        return float(mu + sd * _cornish_fisher_z(z, skew, kurt))
    raise ValueError(f"method must be one of {VAR_METHODS}, got {method!r}")


def conditional_value_at_risk(
    returns: np.ndarray, level: float = 0.95, method: VarMethod = "historical"
) -> float | None:
    """Expected shortfall: the mean return in the worst ``1 - level`` of outcomes (negative for a loss).

    - historical: mean of the ``k = floor((n - 1)(1 - level)) + 1`` worst returns (as empyrical);
    - parametric: ``mu - sigma phi(z) / (1 - level)`` (normal expected shortfall, as quantstats);
    - cornish_fisher: ``mu + sigma mean(z_cf(p))`` over p uniform in (0, 1 - level): the mean of the
      Cornish-Fisher quantile function over the tail.

    None under the same conditions as :func:`value_at_risk`.
    """
    r = _finite(returns)
    if r.size < 2 or not 0 < level < 1:
        return None
    alpha = 1.0 - level
    if method == "historical":
        k = int((r.size - 1) * alpha)
        return float(np.mean(np.partition(r, k)[: k + 1]))
    z = _NORMAL.inv_cdf(alpha)
    if method == "parametric":
        return float(np.mean(r) - float(np.std(r, ddof=1)) * _NORMAL.pdf(z) / alpha)
    if method == "cornish_fisher":
        moments = _moments(r)
        if moments is None:
            return None
        mu, sd, skew, kurt = moments
        grid = (np.arange(_CF_GRID) + 0.5) / _CF_GRID * alpha  # midpoints of (0, alpha)
        zs = np.array([_NORMAL.inv_cdf(float(p)) for p in grid])
        return float(mu + sd * float(np.mean(_cornish_fisher_z(zs, skew, kurt))))
    raise ValueError(f"method must be one of {VAR_METHODS}, got {method!r}")


# --------------------------------------------------------------------------- Sharpe ratio inference

EULER_GAMMA = 0.5772156649015329


def sharpe_ratio_variance(returns: np.ndarray) -> float | None:
    """Variance of the per-bar Sharpe estimate (Mertens / Bailey & Lopez de Prado):
    ``(1 - S SR + (K + 2) / 4 SR^2) / (n - 1)`` with skew S and excess kurtosis K (so K + 2 is
    ``kurtosis - 1``). None if fewer than 4 returns, no dispersion, or a non-positive variance."""
    r = _finite(returns)
    moments = _moments(r)
    if moments is None:
        return None
    mu, sd, skew, kurt = moments
    sr = mu / sd
    variance = (1.0 - skew * sr + (kurt + 2.0) / 4.0 * sr**2) / (r.size - 1)
    return variance if variance > 0 else None


def probabilistic_sharpe_ratio(returns: np.ndarray, benchmark: float = 0.0) -> float | None:
    """P(true per-bar Sharpe > ``benchmark``): ``Phi((SR - SR*) / sqrt(var(SR)))`` with SR the
    non-annualised Sharpe of the returns (Bailey & Lopez de Prado 2012). None when undefined."""
    r = _finite(returns)
    variance = sharpe_ratio_variance(r)
    if variance is None:
        return None
    sr = float(np.mean(r) / np.std(r, ddof=1))
    return float(_NORMAL.cdf((sr - benchmark) / math.sqrt(variance)))


def expected_max_sharpe(n_trials: int, trials_sharpe_variance: float) -> float:
    """Expected maximum of ``n_trials`` per-bar Sharpe ratios under the null of no skill:
    ``sqrt(V) ((1 - g) Phi^-1(1 - 1/N) + g Phi^-1(1 - 1/(N e)))`` with g Euler's constant."""
    if n_trials < 2:
        return 0.0
    return math.sqrt(trials_sharpe_variance) * (
        (1 - EULER_GAMMA) * _NORMAL.inv_cdf(1 - 1 / n_trials)
        + EULER_GAMMA * _NORMAL.inv_cdf(1 - 1 / (n_trials * math.e))
    )


def deflated_sharpe_ratio(
    returns: np.ndarray, n_trials: int, trials_sharpe_variance: float | None = None
) -> float | None:
    """PSR against the Sharpe the best of ``n_trials`` skill-less strategies would show (Bailey &
    Lopez de Prado 2014). ``trials_sharpe_variance`` is the variance of the per-bar Sharpe ratios
    across the trials; unknown, the estimator's own variance stands in. None if n_trials < 2."""
    if n_trials < 2:
        return None
    variance = trials_sharpe_variance if trials_sharpe_variance is not None else sharpe_ratio_variance(returns)
    if variance is None or variance < 0:
        return None
    return probabilistic_sharpe_ratio(returns, expected_max_sharpe(n_trials, variance))


# --------------------------------------------------------------------------- trades


def payoff_ratio(trades: Sequence[Any]) -> float | None:
    """``mean(winning pnl) / |mean(losing pnl)|``. None without a win and a loss."""
    pnl = _pnls(trades)
    wins, losses = pnl[pnl > 0], pnl[pnl < 0]
    if wins.size == 0 or losses.size == 0:
        return None
    return float(wins.mean() / abs(losses.mean()))


def kelly_fraction(trades: Sequence[Any]) -> float | None:
    """Fixed-odds Kelly ``W - (1 - W) / R`` with W the win rate and R the payoff ratio.

    1.0 when trades won and none lost (the limit as R grows); None without trades, without a
    winning trade (the formula tends to minus infinity: the answer is "do not trade") or when
    every trade broke even."""
    pnl = _pnls(trades)
    wins, losses = pnl[pnl > 0], pnl[pnl < 0]
    if wins.size == 0:
        return None
    if losses.size == 0:
        return 1.0
    w = wins.size / pnl.size
    ratio = float(wins.mean() / abs(losses.mean()))
    return float(w - (1 - w) / ratio)


def sqn(trades: Sequence[Any]) -> float | None:
    """Van Tharp's System Quality Number ``sqrt(n) mean(pnl) / std(pnl, ddof=1)``. None if fewer
    than 2 trades or all pnl equal."""
    pnl = _pnls(trades)
    if pnl.size < 2:
        return None
    sd = float(np.std(pnl, ddof=1))
    if sd <= _ZERO_DISPERSION:
        return None
    return float(math.sqrt(pnl.size) * pnl.mean() / sd)


def average_trade(trades: Sequence[Any]) -> float | None:
    """Mean net pnl per trade (the same number as :func:`expectancy`). None without trades."""
    return expectancy(trades)


def best_trade(trades: Sequence[Any]) -> float | None:
    """Largest net pnl of a trade. None without trades."""
    pnl = _pnls(trades)
    return float(pnl.max()) if pnl.size else None


def worst_trade(trades: Sequence[Any]) -> float | None:
    """Smallest net pnl of a trade. None without trades."""
    pnl = _pnls(trades)
    return float(pnl.min()) if pnl.size else None


def _longest_run(flags: np.ndarray) -> int:
    if flags.size == 0 or not flags.any():
        return 0
    padded = np.concatenate(([0], flags.astype(np.int8), [0]))
    edges = np.flatnonzero(np.diff(padded))
    return int((edges[1::2] - edges[::2]).max())


def longest_winning_streak(trades: Sequence[Any]) -> int | None:
    """Most consecutive trades (in the given order) with pnl > 0; a break-even trade ends a streak."""
    pnl = _pnls(trades)
    return _longest_run(pnl > 0) if pnl.size else None


def longest_losing_streak(trades: Sequence[Any]) -> int | None:
    """Most consecutive trades with pnl < 0; a break-even trade ends a streak."""
    pnl = _pnls(trades)
    return _longest_run(pnl < 0) if pnl.size else None


def in_market_mask(timestamps: np.ndarray, entries_ns: Sequence[int], exits_ns: Sequence[int | None]) -> np.ndarray:
    """True for each bar from a trade's entry up to (not including) its exit; an open trade
    (exit None) runs to the last bar. Same rule as the backtest result's exposure."""
    ts = _timestamps_ns(timestamps)
    marks = np.zeros(ts.size + 1, dtype=np.int64)
    for entry, exit_ in zip(entries_ns, exits_ns, strict=True):
        first = int(np.searchsorted(ts, entry, side="left"))
        last = ts.size if exit_ is None else int(np.searchsorted(ts, exit_, side="left"))
        marks[first] += 1
        marks[last] -= 1
    return np.cumsum(marks[:-1]) > 0


# --------------------------------------------------------------------------- everything at once

TRADE_METRIC_NAMES: tuple[str, ...] = (  # the metrics that need closed trades
    "n_trades",
    "profit_factor",
    "win_rate",
    "expectancy",
    "payoff_ratio",
    "kelly_fraction",
    "sqn",
    "exposure",
    "average_trade",
    "best_trade",
    "worst_trade",
    "longest_winning_streak",
    "longest_losing_streak",
)
METRIC_NAMES: tuple[str, ...] = (
    "total_return",
    "cagr",
    "annual_volatility",
    "sharpe",
    "sortino",
    "calmar",
    "omega",
    "tail_ratio",
    "max_drawdown",
    "max_drawdown_duration",
    "ulcer_index",
    *(f"var_{round(lv * 100)}_{m}" for m in VAR_METHODS for lv in VAR_LEVELS),
    *(f"cvar_{round(lv * 100)}_{m}" for m in VAR_METHODS for lv in VAR_LEVELS),
    "recovery_factor",
    *TRADE_METRIC_NAMES,
    "probabilistic_sharpe_ratio",
    "deflated_sharpe_ratio",
)


def all_metrics(
    values: np.ndarray | None,
    timestamps: np.ndarray | None,
    trades: Sequence[Any],
    *,
    periods: float | None = None,
    risk_free: float = 0.0,
    in_market: np.ndarray | None = None,
    n_trials: int = 1,
    trials_sharpe_variance: float | None = None,
) -> dict[str, float | int | None]:
    """Every metric in :data:`METRIC_NAMES` order. Without an equity curve (``values`` None) the
    curve metrics are None; without ``periods`` (and not inferable) the annualised ones are."""
    out: dict[str, float | int | None] = dict.fromkeys(METRIC_NAMES)
    if values is not None and timestamps is not None:
        v, ts = _values(values), _timestamps_ns(timestamps)
        if v.size != ts.size:
            raise ValueError(f"equity has {v.size} values but {ts.size} timestamps; they must match bar for bar")
        keep = np.isfinite(v)
        v, ts = v[keep], ts[keep]
        ppy = periods if periods is not None else periods_per_year(ts)
        r = returns_from_equity(v)
        per_bar = _per_bar_rate(risk_free, ppy) if ppy else 0.0
        if ppy is not None and ppy > 0:
            out["annual_volatility"] = annual_volatility(r, ppy)
            out["sharpe"] = sharpe(r, ppy, risk_free)
            out["sortino"] = sortino(r, ppy, risk_free)
        out["total_return"] = total_return(v)
        out["cagr"] = cagr(v, ts)
        out["calmar"] = calmar(v, ts)
        out["omega"] = omega(r, per_bar)
        out["tail_ratio"] = tail_ratio(r)
        out["max_drawdown"] = max_drawdown(v)
        out["max_drawdown_duration"] = max_drawdown_duration(v, ts)
        out["ulcer_index"] = ulcer_index(v)
        for method in VAR_METHODS:
            for level in VAR_LEVELS:
                out[f"var_{round(level * 100)}_{method}"] = value_at_risk(r, level, method)
                out[f"cvar_{round(level * 100)}_{method}"] = conditional_value_at_risk(r, level, method)
        out["recovery_factor"] = recovery_factor(v)
        excess = r - per_bar
        out["probabilistic_sharpe_ratio"] = probabilistic_sharpe_ratio(excess)
        out["deflated_sharpe_ratio"] = deflated_sharpe_ratio(excess, n_trials, trials_sharpe_variance)
        if in_market is not None:
            out["exposure"] = exposure(in_market[keep] if len(in_market) == keep.size else in_market)
    out["n_trades"] = len(trades)
    out["profit_factor"] = profit_factor(trades)
    out["win_rate"] = win_rate(trades)
    out["expectancy"] = expectancy(trades)
    out["payoff_ratio"] = payoff_ratio(trades)
    out["kelly_fraction"] = kelly_fraction(trades)
    out["sqn"] = sqn(trades)
    out["average_trade"] = average_trade(trades)
    out["best_trade"] = best_trade(trades)
    out["worst_trade"] = worst_trade(trades)
    out["longest_winning_streak"] = longest_winning_streak(trades)
    out["longest_losing_streak"] = longest_losing_streak(trades)
    return {key: _plain(value) for key, value in out.items()}


def _plain(value: float | int | None) -> float | int | None:
    """JSON-safe: NaN and infinities become None (documented: never infinity or NaN)."""
    if value is None or isinstance(value, int):
        return value
    return float(value) if math.isfinite(value) else None
