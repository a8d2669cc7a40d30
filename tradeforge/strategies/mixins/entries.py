"""Entry mixins: each turns candles into long/short entry and exit signals evaluated at a bar's close.

Signals are acted on with market orders that fill at the next candle's open.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from tradeforge.strategies import indicators as ind
from tradeforge.strategies.mixins.kinds import Bars, EntryMixin, Signals
from tradeforge.strategies.params import Param


def _fast_below_slow(values: dict[str, Any]) -> list[tuple[str, str]]:
    if values["fast"] >= values["slow"]:
        return [("fast", f"must be smaller than slow ({values['slow']})")]
    return []


def _crossing_signals(cross: np.ndarray) -> Signals:
    up, down = cross > 0, cross < 0
    return Signals(long_entry=up, long_exit=down, short_entry=down, short_exit=up)


class SmaCrossEntry(EntryMixin):
    """Enter long when SMA(fast) of closes crosses above SMA(slow); exit (or enter short) when it
    crosses below. A cross is judged at a bar's close against the last bar on which the two averages
    differed; the market order fills at the next candle's open."""

    name: ClassVar[str] = "sma_cross"
    param_specs: ClassVar[dict[str, Param]] = {
        "fast": Param(10, low=1, high=1000, opt=(5, 50), step=1, doc="fast SMA period (bars)"),
        "slow": Param(30, low=2, high=5000, opt=(20, 200), step=5, doc="slow SMA period (bars)"),
    }
    check_params = staticmethod(_fast_below_slow)

    @classmethod
    def lookback(cls, params: dict[str, Any], feed_seconds: int) -> int:
        return int(params["slow"]) + 1

    def entry_signals(self, bars: Bars) -> Signals:
        p = self.mixin_params(SmaCrossEntry)
        return _crossing_signals(ind.crossover(ind.sma(bars.close, p["fast"]), ind.sma(bars.close, p["slow"])))


class EmaCrossEntry(EntryMixin):
    """Enter long when EMA(fast) of closes crosses above EMA(slow) (alpha = 2/(period+1), seeded with
    the SMA of the first period); exit (or enter short) when it crosses below. Fills at next open."""

    name: ClassVar[str] = "ema_cross"
    param_specs: ClassVar[dict[str, Param]] = {
        "fast": Param(12, low=1, high=1000, opt=(5, 50), step=1, doc="fast EMA period (bars)"),
        "slow": Param(26, low=2, high=5000, opt=(20, 200), step=5, doc="slow EMA period (bars)"),
    }
    check_params = staticmethod(_fast_below_slow)

    @classmethod
    def lookback(cls, params: dict[str, Any], feed_seconds: int) -> int:
        return int(params["slow"]) + 1

    def entry_signals(self, bars: Bars) -> Signals:
        p = self.mixin_params(EmaCrossEntry)
        return _crossing_signals(ind.crossover(ind.ema(bars.close, p["fast"]), ind.ema(bars.close, p["slow"])))


class RsiReversionEntry(EntryMixin):
    """Mean reversion on Wilder's RSI(period): enter long when RSI crosses back up through `lower`
    (leaving oversold) and exit when RSI crosses above `upper`; shorts mirror it (enter when RSI
    crosses back down through `upper`, exit when it crosses below `lower`). Fills at next open."""

    name: ClassVar[str] = "rsi_reversion"
    param_specs: ClassVar[dict[str, Param]] = {
        "period": Param(14, low=2, high=500, opt=(5, 30), step=1, doc="RSI period (bars)"),
        "lower": Param(30.0, low=0, high=100, opt=(10, 40), step=1, doc="oversold level"),
        "upper": Param(70.0, low=0, high=100, opt=(60, 90), step=1, doc="overbought level"),
    }

    @classmethod
    def check_params(cls, values: dict[str, Any]) -> list[tuple[str, str]]:
        if values["lower"] >= values["upper"]:
            return [("lower", f"must be below upper ({values['upper']})")]
        return []

    @classmethod
    def lookback(cls, params: dict[str, Any], feed_seconds: int) -> int:
        return int(params["period"]) + 2

    def entry_signals(self, bars: Bars) -> Signals:
        p = self.mixin_params(RsiReversionEntry)
        rsi = ind.rsi(bars.close, p["period"])
        prev = ind.shift(rsi)
        lower, upper = p["lower"], p["upper"]
        with np.errstate(invalid="ignore"):
            return Signals(
                long_entry=(prev <= lower) & (rsi > lower),
                long_exit=(prev <= upper) & (rsi > upper),
                short_entry=(prev >= upper) & (rsi < upper),
                short_exit=(prev >= lower) & (rsi < lower),
            )


class BollingerReversionEntry(EntryMixin):
    """Mean reversion on Bollinger bands (SMA(period) ± devs × population stddev of closes): enter
    long when the close falls below the lower band, exit when it closes back above the middle band;
    shorts mirror it at the upper band. Fills at next open."""

    name: ClassVar[str] = "bollinger_reversion"
    param_specs: ClassVar[dict[str, Param]] = {
        "period": Param(20, low=2, high=1000, opt=(10, 50), step=1, doc="band period (bars)"),
        "devs": Param(2.0, low=0.1, high=10, opt=(1.5, 3.0), step=0.1, doc="band width in std devs"),
    }

    @classmethod
    def lookback(cls, params: dict[str, Any], feed_seconds: int) -> int:
        return int(params["period"])

    def entry_signals(self, bars: Bars) -> Signals:
        p = self.mixin_params(BollingerReversionEntry)
        mid = ind.sma(bars.close, p["period"])
        width = ind.stddev(bars.close, p["period"]) * p["devs"]
        close = bars.close
        with np.errstate(invalid="ignore"):
            return Signals(
                long_entry=close < mid - width,
                long_exit=close > mid,
                short_entry=close > mid + width,
                short_exit=close < mid,
            )


class MacdTrendEntry(EntryMixin):
    """Trend following on MACD: MACD = EMA(fast) - EMA(slow) of closes, signal = EMA(signal) of MACD.
    Enter long when MACD crosses above its signal line while MACD > 0 (`zero_filter`), exit when it
    crosses below; shorts mirror it. Fills at next open."""

    name: ClassVar[str] = "macd_trend"
    param_specs: ClassVar[dict[str, Param]] = {
        "fast": Param(12, low=1, high=500, opt=(6, 20), step=1, doc="fast EMA period"),
        "slow": Param(26, low=2, high=1000, opt=(20, 60), step=1, doc="slow EMA period"),
        "signal": Param(9, low=1, high=200, opt=(5, 15), step=1, doc="signal EMA period"),
        "zero_filter": Param(False, doc="only enter long above zero (short below)"),
    }
    check_params = staticmethod(_fast_below_slow)

    @classmethod
    def lookback(cls, params: dict[str, Any], feed_seconds: int) -> int:
        return int(params["slow"]) + int(params["signal"])

    def entry_signals(self, bars: Bars) -> Signals:
        p = self.mixin_params(MacdTrendEntry)
        macd = ind.ema(bars.close, p["fast"]) - ind.ema(bars.close, p["slow"])
        cross = ind.crossover(macd, ind.ema(macd, p["signal"]))
        signals = _crossing_signals(cross)
        if p["zero_filter"]:
            with np.errstate(invalid="ignore"):
                signals.long_entry &= macd > 0
                signals.short_entry &= macd < 0
        return signals


class DonchianBreakoutEntry(EntryMixin):
    """Breakout: enter long when the close exceeds the highest high of the previous `period` bars;
    exit when the close falls below the lowest low of the previous `exit_period` bars. Shorts
    mirror it (close below the previous lowest low; exit above the previous `exit_period` high).
    Fills at next open."""

    name: ClassVar[str] = "donchian_breakout"
    param_specs: ClassVar[dict[str, Param]] = {
        "period": Param(20, low=2, high=1000, opt=(10, 100), step=5, doc="entry channel (bars)"),
        "exit_period": Param(10, low=1, high=1000, opt=(5, 50), step=5, doc="exit channel (bars)"),
    }

    @classmethod
    def lookback(cls, params: dict[str, Any], feed_seconds: int) -> int:
        return int(max(params["period"], params["exit_period"])) + 1

    def entry_signals(self, bars: Bars) -> Signals:
        p = self.mixin_params(DonchianBreakoutEntry)
        upper = ind.shift(ind.highest(bars.high, p["period"]))
        lower = ind.shift(ind.lowest(bars.low, p["period"]))
        exit_low = ind.shift(ind.lowest(bars.low, p["exit_period"]))
        exit_high = ind.shift(ind.highest(bars.high, p["exit_period"]))
        close = bars.close
        with np.errstate(invalid="ignore"):
            return Signals(
                long_entry=close > upper,
                long_exit=close < exit_low,
                short_entry=close < lower,
                short_exit=close > exit_high,
            )


ENTRIES: tuple[type[EntryMixin], ...] = (
    SmaCrossEntry,
    EmaCrossEntry,
    RsiReversionEntry,
    BollingerReversionEntry,
    MacdTrendEntry,
    DonchianBreakoutEntry,
)
