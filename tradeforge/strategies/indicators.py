"""Indicators precomputed over whole arrays, bit-for-bit equal to Backtrader's own definitions.

Backtrader recomputes indicators bar by bar through its line machinery; computing them once here and
letting the strategy read one number per bar is where most of the backtest speed comes from. Each
function reproduces Backtrader's arithmetic (same summation, seeding and operation order) so that
trades match a plain Backtrader run exactly. Values before the warm-up period are NaN.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

NAN = math.nan


def sma(values: np.ndarray, period: int) -> np.ndarray:
    """Simple moving average like bt.ind.SMA: math.fsum of the window (correctly rounded) / period."""
    out = np.full(len(values), NAN)
    if len(values) >= period:
        out[period - 1 :] = window_sums(values, period) / period
    return out


_EXTENDED_BITS = np.finfo(np.longdouble).nmant + 1


def window_sums(values: np.ndarray, period: int) -> np.ndarray:
    """Correctly rounded sums of every `period`-long window, equal to math.fsum of each window.

    Fast path: when every partial sum fits the extended-precision mantissa (it does for prices
    spanning a few powers of two), summing in np.longdouble is exact and one rounding to float64
    gives the correctly rounded result. Otherwise (wide ranges, platforms without an 80-bit long
    double) fall back to math.fsum window by window.
    """
    finite = values[np.isfinite(values) & (values != 0)]
    if len(finite) == len(values) and len(finite):
        largest = float(np.abs(finite).max()) * period
        smallest_ulp_exp = int(np.frexp(np.abs(finite))[1].min()) - 53
        if math.frexp(largest)[1] - smallest_ulp_exp <= _EXTENDED_BITS - 1:
            windows = np.lib.stride_tricks.sliding_window_view(values.astype(np.longdouble), period)
            return windows.sum(axis=1).astype(np.float64)
    src = values.tolist()
    fsum = math.fsum
    return np.array([fsum(src[i - period + 1 : i + 1]) for i in range(period - 1, len(src))], dtype=np.float64)


def _smooth(values: np.ndarray, period: int, alpha: float) -> np.ndarray:
    """Exponential smoothing seeded with the SMA of the first `period` valid values (bt's scheme)."""
    out = np.full(len(values), NAN)
    valid = np.flatnonzero(~np.isnan(values))
    if len(valid) < period:
        return out
    first = int(valid[0])
    src = values.tolist()
    seed_end = first + period - 1
    prev = math.fsum(src[first : seed_end + 1]) / period  # bt seeds with its SMA
    out[seed_end] = prev
    alpha1 = 1.0 - alpha
    res = [NAN] * len(src)
    for i in range(seed_end + 1, len(src)):
        prev = prev * alpha1 + src[i] * alpha
        res[i] = prev
    out[seed_end + 1 :] = res[seed_end + 1 :]
    return out


def ema(values: np.ndarray, period: int) -> np.ndarray:
    """Exponential moving average with alpha = 2 / (period + 1), like bt.ind.EMA."""
    return _smooth(values, period, 2.0 / (1 + period))


def smma(values: np.ndarray, period: int) -> np.ndarray:
    """Wilder's smoothed moving average with alpha = 1 / period, like bt.ind.SmoothedMovingAverage."""
    return _smooth(values, period, 1.0 / period)


def rsi(close: np.ndarray, period: int) -> np.ndarray:
    """Wilder's RSI like bt.ind.RSI: SMMA of up and down moves; 100 when there were no down moves."""
    diff = np.diff(close, prepend=NAN)
    up = np.where(np.isnan(diff), NAN, np.maximum(diff, 0.0))
    down = np.where(np.isnan(diff), NAN, np.maximum(-diff, 0.0))
    maup, madown = smma(up, period), smma(down, period)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = 100.0 - 100.0 / (1.0 + maup / madown)
    return np.where((madown == 0.0) & ~np.isnan(maup), 100.0, out)


def stddev(values: np.ndarray, period: int) -> np.ndarray:
    """Population standard deviation like bt.ind.StdDev: abs(mean(x**2) - mean(x)**2) ** 0.5.

    Computed with Python float powers, as Backtrader does: NumPy's x*x and power(.., 0.5) differ
    from them in the last bit on some inputs.
    """
    squares = np.array([x**2 for x in values.tolist()], dtype=np.float64)
    meansq = sma(squares, period).tolist()
    mean = sma(values, period).tolist()
    return np.array([abs(ms - m**2) ** 0.5 for ms, m in zip(meansq, mean, strict=True)], dtype=np.float64)


def true_range(high: np.ndarray, low: np.ndarray, close: np.ndarray) -> np.ndarray:
    """max(high, previous close) - min(low, previous close); undefined on the first bar (bt.ind.TR)."""
    prev = np.concatenate(([NAN], close[:-1]))
    return np.maximum(high, prev) - np.minimum(low, prev)


def atr(high: np.ndarray, low: np.ndarray, close: np.ndarray, period: int) -> np.ndarray:
    """Average true range: Wilder smoothing of the true range, like bt.ind.ATR."""
    return smma(true_range(high, low, close), period)


def highest(values: np.ndarray, period: int) -> np.ndarray:
    """Highest value of the last `period` bars including the current one (bt.ind.Highest)."""
    out = np.full(len(values), NAN)
    if len(values) >= period:
        out[period - 1 :] = sliding_window_view(values, period).max(axis=1)
    return out


def lowest(values: np.ndarray, period: int) -> np.ndarray:
    """Lowest value of the last `period` bars including the current one (bt.ind.Lowest)."""
    out = np.full(len(values), NAN)
    if len(values) >= period:
        out[period - 1 :] = sliding_window_view(values, period).min(axis=1)
    return out


def shift(values: np.ndarray, bars: int = 1) -> np.ndarray:
    """Values as of `bars` bars ago (NaN where unknown): what a strategy may see without look-ahead."""
    out = np.full(len(values), NAN)
    out[bars:] = values[:-bars]
    return out


def crossover(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """+1 where a crosses above b, -1 where it crosses below, else 0 (bt.ind.CrossOver semantics).

    Like Backtrader, equality does not end a move: the side is taken from the last bar on which
    a and b differed, so a touch followed by a continuation still counts as one cross.
    """
    diff = a - b
    valid = ~np.isnan(diff)
    nonzero = np.where(valid & (diff != 0.0), diff, NAN)
    # Forward-fill the last non-zero difference; bt seeds it with the first valid difference.
    idx = np.where(~np.isnan(nonzero), np.arange(len(diff)), -1)
    np.maximum.accumulate(idx, out=idx)
    last_nonzero = np.where(idx >= 0, nonzero[np.maximum(idx, 0)], NAN)
    first_valid = int(np.argmax(valid)) if valid.any() else len(diff)
    if first_valid < len(diff) and diff[first_valid] == 0.0:
        # bt seeds the "non-zero difference" with the first value even when it is zero
        zeros_until = first_valid
        while zeros_until < len(diff) and diff[zeros_until] == 0.0:
            zeros_until += 1
        last_nonzero[first_valid:zeros_until] = 0.0
    before = shift(last_nonzero, 1)
    with np.errstate(invalid="ignore"):
        up = (before < 0.0) & (a > b)
        down = (before > 0.0) & (a < b)
    out = np.zeros(len(diff), dtype=np.int8)
    out[up] = 1
    out[down] = -1
    return out
