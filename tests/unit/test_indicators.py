"""Specification of `tradeforge.strategies.indicators`: every function equals Backtrader's own
indicator bit for bit (NaN where Backtrader has no value yet), on real candles and on hand-made
edge cases. Backtrader's values come from a plain strategy in a default Cerebro (runonce) fed by
`PandasData`, copied out of the indicators' line buffers in `stop()`."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import backtrader as bt
import numpy as np
import pandas as pd
import pytest

from tradeforge.strategies import indicators as ind

ROWS = 5_000
FILES = ("binance_BTC-USDT_1h.csv", "yahoo_ORCL_1d.csv")
PERIODS = (2, 14, 30)
SMA_PAIRS = ((5, 20), (10, 30), (20, 50))
NAN = math.nan

Build = Callable[[Any], dict[str, Any]]


class _Collect(bt.Strategy):
    """Creates the indicators `build` returns and copies their line buffers when the run ends."""

    params = (("build", None),)

    def __init__(self) -> None:
        self._made = self.p.build(self.data)

    def stop(self) -> None:
        self.values = {name: np.array(made.array, dtype=np.float64) for name, made in self._made.items()}


def backtrader_values(frame: pd.DataFrame, build: Build) -> dict[str, np.ndarray]:
    cerebro = bt.Cerebro()  # default: runonce, preload
    cerebro.adddata(bt.feeds.PandasData(dataname=frame))
    cerebro.addstrategy(_Collect, build=build)
    values = cerebro.run()[0].values
    for name, line in values.items():
        # In runonce mode every line buffer spans the whole feed, warm-up bars included (as NaN).
        assert len(line) == len(frame), f"bt {name}: {len(line)} values for {len(frame)} bars"
    return values


def frame_of(close: list[float], open_: list[float] | None = None) -> pd.DataFrame:
    """A daily frame with the given closes (and opens, for two-line indicators)."""
    c = np.asarray(close, dtype=np.float64)
    o = c if open_ is None else np.asarray(open_, dtype=np.float64)
    index = pd.date_range("2020-01-01", periods=len(c), freq="D")
    return pd.DataFrame(
        {"open": o, "high": np.fmax(o, c), "low": np.fmin(o, c), "close": c, "volume": 1.0}, index=index
    )


def read_frame(path: Path, rows: int) -> pd.DataFrame:
    """The first `rows` candles of a shared-data CSV, indexed by naive UTC open times."""
    frame = pd.read_csv(path, nrows=rows)
    stamps = pd.to_datetime(frame.pop("timestamp"), utc=True, format="ISO8601")
    frame.index = pd.DatetimeIndex(stamps).tz_convert(None)
    return frame


def _reference_indicators(d: Any) -> dict[str, Any]:
    made: dict[str, Any] = {"true_range": bt.ind.TrueRange(d)}
    for p in PERIODS:
        made[f"sma-{p}"] = bt.ind.SMA(d.close, period=p)
        made[f"ema-{p}"] = bt.ind.EMA(d.close, period=p)
        made[f"smma-{p}"] = bt.ind.SmoothedMovingAverage(d.close, period=p)
        made[f"rsi-{p}"] = bt.ind.RSI(d.close, period=p)
        made[f"stddev-{p}"] = bt.ind.StdDev(d.close, period=p)
        made[f"atr-{p}"] = bt.ind.ATR(d, period=p)
        made[f"highest-{p}"] = bt.ind.Highest(d.high, period=p)
        made[f"lowest-{p}"] = bt.ind.Lowest(d.low, period=p)
    for fast, slow in SMA_PAIRS:
        made[f"crossover-{fast}-{slow}"] = bt.ind.CrossOver(
            bt.ind.SMA(d.close, period=fast), bt.ind.SMA(d.close, period=slow)
        )
    made["crossover-close-open"] = bt.ind.CrossOver(d.close, d.open)
    return made


@dataclass(frozen=True)
class Market:
    name: str
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    open: np.ndarray
    bt: dict[str, np.ndarray]


@pytest.fixture(scope="module", params=FILES)
def market(request: pytest.FixtureRequest, shared_data: Path) -> Market:
    """First 5,000 real candles of a file, plus every reference indicator Backtrader computed on them."""
    frame = read_frame(shared_data / request.param, ROWS)
    assert len(frame) == ROWS
    columns = {n: frame[n].to_numpy(dtype=np.float64) for n in ("open", "high", "low", "close")}
    return Market(request.param, bt=backtrader_values(frame, _reference_indicators), **columns)


OURS: dict[str, Callable[[Market, int], np.ndarray]] = {
    "sma": lambda m, p: ind.sma(m.close, p),
    "ema": lambda m, p: ind.ema(m.close, p),
    "smma": lambda m, p: ind.smma(m.close, p),
    "rsi": lambda m, p: ind.rsi(m.close, p),
    "stddev": lambda m, p: ind.stddev(m.close, p),
    "atr": lambda m, p: ind.atr(m.high, m.low, m.close, p),
    "highest": lambda m, p: ind.highest(m.high, p),
    "lowest": lambda m, p: ind.lowest(m.low, p),
}


# --- real candles -------------------------------------------------------------------------------


@pytest.mark.parametrize("period", PERIODS)
@pytest.mark.parametrize("name", list(OURS))
def test_indicator_equals_backtrader_bit_for_bit_on_real_candles(market: Market, name: str, period: int) -> None:
    ours = OURS[name](market, period)
    reference = market.bt[f"{name}-{period}"]
    assert len(ours) == len(reference)
    np.testing.assert_array_equal(ours, reference, err_msg=f"{name}({period}) on {market.name}", strict=True)


def test_true_range_equals_backtrader_bit_for_bit_on_real_candles(market: Market) -> None:
    ours = ind.true_range(market.high, market.low, market.close)
    np.testing.assert_array_equal(ours, market.bt["true_range"], strict=True)


def _assert_crossover_equal(ours: np.ndarray, reference: np.ndarray) -> None:
    """Equal wherever Backtrader has a value; 0 (no cross) during Backtrader's warm-up."""
    warm_up = np.isnan(reference)
    first_value = int(np.argmin(warm_up))
    assert not warm_up[first_value:].any(), "bt CrossOver has NaN after its warm-up"
    assert (ours[:first_value] == 0).all()
    np.testing.assert_array_equal(ours[first_value:].astype(np.float64), reference[first_value:], strict=True)


@pytest.mark.parametrize(("fast", "slow"), SMA_PAIRS)
def test_crossover_of_two_smas_equals_backtrader_on_real_candles(market: Market, fast: int, slow: int) -> None:
    ours = ind.crossover(ind.sma(market.close, fast), ind.sma(market.close, slow))
    _assert_crossover_equal(ours, market.bt[f"crossover-{fast}-{slow}"])
    assert (ours == 1).any() and (ours == -1).any()


def test_crossover_of_lines_that_often_touch_equals_backtrader_on_real_candles(market: Market) -> None:
    # Close == open happens on real candles (hundreds of times in ORCL): equality handling matters.
    assert (market.close == market.open).any()
    ours = ind.crossover(market.close, market.open)
    _assert_crossover_equal(ours, market.bt["crossover-close-open"])


# --- hand-made edge cases -----------------------------------------------------------------------


CROSS_CASES = {
    # a touches b, then continues to the other side: one cross, on the bar the sides change
    "touch-then-continue-up": ([1, 2, 3, 4], [2, 2, 2, 2], [0, 0, 1, 0]),
    "touch-then-continue-down": ([3, 2, 2, 2, 1], [2] * 5, [0, 0, 0, 0, -1]),
    # touching and falling back is no cross; the later real cross is judged from the last difference
    "touch-then-back": ([1, 2, 1, 2, 3], [2] * 5, [0, 0, 0, 0, 1]),
    "touches-around-a-cross": ([1, 2, 2, 1, 2, 3, 3, 2], [2] * 8, [0, 0, 0, 0, 0, 1, 0, 0]),
    # equal from the first bar: there is no earlier side, so the first departure is not a cross
    "equal-at-start": ([2, 2, 3, 1], [2, 2, 2, 2], [0, 0, 0, -1]),
    # NaN warm-up: bars without both values never count
    "nan-warm-up": ([NAN, NAN, 1, 2, 3], [NAN, 2, 2, 2, 2], [0, 0, 0, 0, 1]),
    "nan-warm-up-then-equal": ([NAN, 2, 2, 3, 1], [NAN, 2, 2, 2, 2], [0, 0, 0, 0, -1]),
    "cross-right-after-warm-up": ([NAN, 1, 3, 1], [NAN, 2, 2, 2], [0, 0, 1, -1]),
}


@pytest.mark.parametrize(("a", "b", "expected"), list(CROSS_CASES.values()), ids=list(CROSS_CASES))
def test_crossover_hand_made_cases(a: list[float], b: list[float], expected: list[int]) -> None:
    ours = ind.crossover(np.array(a, dtype=np.float64), np.array(b, dtype=np.float64))
    assert ours.tolist() == expected
    reference = backtrader_values(frame_of(a, b), lambda d: {"x": bt.ind.CrossOver(d.close, d.open)})["x"]
    _assert_crossover_equal(ours, reference)


def test_rsi_without_down_moves_is_100_like_backtrader_safediv() -> None:
    close = np.arange(1.0, 41.0)  # rises on every bar
    ours = ind.rsi(close, 14)
    assert np.isnan(ours[:14]).all()
    assert (ours[14:] == 100.0).all()
    # bt's default RSI divides by zero here; with safediv it reports its safehigh, 100.
    reference = backtrader_values(
        frame_of(close.tolist()), lambda d: {"rsi": bt.ind.RSI(d.close, period=14, safediv=True)}
    )["rsi"]
    np.testing.assert_array_equal(ours, reference, strict=True)


def test_stddev_of_a_constant_series_equals_backtrader() -> None:
    # mean(x^2) - mean(x)^2 rounds to a tiny negative number for 0.1: bt.ind.StdDev (safepow=True,
    # its default) takes the square root of its absolute value.
    close = [0.1] * 6
    reference = backtrader_values(frame_of(close), lambda d: {"sd": bt.ind.StdDev(d.close, period=3)})["sd"]
    np.testing.assert_array_equal(ind.stddev(np.array(close), 3), reference, strict=True)


def test_indicators_leave_warm_up_bars_nan() -> None:
    values = np.arange(1.0, 11.0)
    for name, result, warm_up in [
        ("sma", ind.sma(values, 4), 3),
        ("ema", ind.ema(values, 4), 3),
        ("smma", ind.smma(values, 4), 3),
        ("rsi", ind.rsi(values, 4), 4),
        ("stddev", ind.stddev(values, 4), 3),
        ("true_range", ind.true_range(values + 1, values - 1, values), 1),
        ("atr", ind.atr(values + 1, values - 1, values, 4), 4),
        ("highest", ind.highest(values, 4), 3),
        ("lowest", ind.lowest(values, 4), 3),
    ]:
        assert np.isnan(result[:warm_up]).all(), name
        assert not np.isnan(result[warm_up:]).any(), name


SMA_CASES = {
    # tenths are inexact in binary: a plain running sum drifts, a correctly rounded one does not
    "tenths": [0.1 * k for k in range(1, 60)],
    # magnitudes far apart: only an exact (fsum-like) window sum gets these right
    "cancellation": [1e16, 1.0, -1e16, 1.0, 3.0, 1e-3, 2e16, -2e16, 7.0, 0.5],
    "tiny-and-huge": [1e-300, 1e300, 1.0, -1e300, 5e-324, 2.0, 3.0, 1e-10],
}


@pytest.mark.parametrize("values", list(SMA_CASES.values()), ids=list(SMA_CASES))
@pytest.mark.parametrize("period", [2, 3, 7])
def test_sma_sums_each_window_exactly_like_backtrader(values: list[float], period: int) -> None:
    reference = backtrader_values(frame_of(values), lambda d: {"sma": bt.ind.SMA(d.close, period=period)})["sma"]
    np.testing.assert_array_equal(ind.sma(np.array(values), period), reference, strict=True)
