"""Hand-made candles for behaviour tests: every price is chosen so expected fills can be worked out
on paper. A bar is written as its close, or as (open, high, low, close); unspecified fields default
to a flat candle at the close."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tradeforge.feeds.candles import Candles, to_datetime, to_ns
from tradeforge.feeds.timeframes import timeframe_seconds

START = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)  # a Monday, 00:00 UTC
_NS = 1_000_000_000


@dataclass(frozen=True)
class Bar:
    """One candle; open/high/low default to a flat candle at `close` (widened to contain open/close)."""

    close: float
    open: float | None = None
    high: float | None = None
    low: float | None = None

    def ohlc(self) -> tuple[float, float, float, float]:
        o = self.close if self.open is None else self.open
        h = max(o, self.close) if self.high is None else self.high
        lo = min(o, self.close) if self.low is None else self.low
        assert lo <= min(o, self.close) <= max(o, self.close) <= h, f"inconsistent candle {self}"
        return o, h, lo, self.close


def candles(
    bars: Sequence[Bar | float],
    symbol: str = "TEST/USD",
    timeframe: str = "1h",
    start: dt.datetime = START,
) -> Candles:
    """Candles from bars (a float is a flat candle at that price), one `timeframe` apart from `start`."""
    rows = [(b if isinstance(b, Bar) else Bar(float(b))).ohlc() for b in bars]
    step = timeframe_seconds(timeframe) * _NS
    stamps = to_ns(start) + step * np.arange(len(rows), dtype=np.int64)
    o, h, lo, c = (np.array(col, dtype=np.float64) for col in zip(*rows, strict=True))
    return Candles(symbol, timeframe, stamps, o, h, lo, c, np.full(len(rows), 1.0))


def at(series: Candles, index: int) -> dt.datetime:
    """The (UTC) open time of bar `index`: what TradeRecord.entry_time/exit_time report."""
    return to_datetime(int(series.timestamp[index]))


def index_of(series: Candles, moment: dt.datetime) -> int:
    """The bar index whose open time is `moment` (asserting it is a bar of the series)."""
    ns = to_ns(moment)
    index = int(np.searchsorted(series.timestamp, ns))
    assert index < len(series) and series.timestamp[index] == ns, f"{moment} is not a bar of {series!r}"
    return index


def take(series: Candles, stop: int) -> Candles:
    """The first `stop` candles (what a run that ended at bar `stop` would have seen)."""
    return Candles(
        series.symbol,
        series.timeframe,
        series.timestamp[:stop],
        series.open[:stop],
        series.high[:stop],
        series.low[:stop],
        series.close[:stop],
        series.volume[:stop],
    )
