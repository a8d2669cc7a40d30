"""Preset strategies: mixin compositions with sensible defaults, usable as `strategy: {preset: NAME}`
or imported and subclassed from Python."""

from __future__ import annotations

from tradeforge.strategies.base import Strategy
from tradeforge.strategies.mixins.entries import (
    BollingerReversionEntry,
    DonchianBreakoutEntry,
    EmaCrossEntry,
    MacdTrendEntry,
    RsiReversionEntry,
    SmaCrossEntry,
)
from tradeforge.strategies.mixins.exits import AtrStop, StopLoss, TakeProfit, TrailingStop
from tradeforge.strategies.mixins.filters import TrendFilter
from tradeforge.strategies.mixins.protections import Cooldown
from tradeforge.strategies.mixins.sizing import FixedFractionalRisk, PercentEquity


class SmaCross(SmaCrossEntry, PercentEquity, Strategy):
    """SMA(10)/SMA(30) crossover, long only, 95% of equity per trade; exits on the opposite cross."""


class EmaCross(EmaCrossEntry, StopLoss, PercentEquity, Strategy):
    """EMA(12)/EMA(26) crossover with a 2% stop-loss."""


class RsiReversion(RsiReversionEntry, StopLoss, TakeProfit, Cooldown, PercentEquity, Strategy):
    """Buy RSI(14) leaving oversold, sell when overbought; 2% stop, 5% take-profit, 3-bar cooldown."""


class BollingerReversion(BollingerReversionEntry, StopLoss, PercentEquity, Strategy):
    """Buy closes below the lower Bollinger band, exit at the middle band; 2% stop."""


class MacdTrend(MacdTrendEntry, TrailingStop, PercentEquity, Strategy):
    """MACD(12, 26, 9) signal-line crosses with a 1.5% trailing stop."""


class DonchianBreakout(DonchianBreakoutEntry, AtrStop, FixedFractionalRisk, Strategy):
    """20-bar channel breakout, 10-bar channel exit, 2×ATR stop, 1% of equity risked per trade."""


class MultiTimeframeTrend(EmaCrossEntry, TrendFilter, TrailingStop, PercentEquity, Strategy):
    """EMA crossover entries taken only in the direction of the 4h trend; 1.5% trailing stop."""


PRESETS: dict[str, type[Strategy]] = {
    "sma_cross": SmaCross,
    "ema_cross": EmaCross,
    "rsi_reversion": RsiReversion,
    "bollinger_reversion": BollingerReversion,
    "macd_trend": MacdTrend,
    "donchian_breakout": DonchianBreakout,
    "multi_timeframe_trend": MultiTimeframeTrend,
}
