"""Behaviour of every strategy mixin, specified through full backtests.

Precise checks run on hand-made candles whose fills can be worked out on paper; invariants run on the
bundled samples (and on real candles when the shared data folder is present). Unless a test says
otherwise, commission and slippage are zero so that expected prices and PnLs are exact.

The hand-made series mostly use `CONTROL` as their entry: with SMA(1) against SMA(2), a long entry
signal fires on a bar whose close rises after a falling close, a long exit signal on a bar whose
close falls after a rising one (shorts the other way round), and unchanged closes signal nothing.
So "closes 100, 99, 100" is an entry signal on the third bar, and a market entry fills at the
fourth bar's open; wicks (high/low) move resting orders without touching the signals.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from candle_factory import Bar, at, candles, index_of, take

from tradeforge.config.catalog import list_templates
from tradeforge.config.loader import load_config
from tradeforge.config.schema import BotConfig
from tradeforge.engine.backtest import run_backtest
from tradeforge.engine.data import load_candles
from tradeforge.engine.results import BacktestResult
from tradeforge.feeds.candles import Candles, read_candles, to_ns
from tradeforge.feeds.samples import load_sample
from tradeforge.strategies.base import TradeRecord
from tradeforge.strategies.library.presets import PRESETS

CONTROL = {"name": "sma_cross", "fast": 1, "slow": 2}
STAKE = {"name": "fixed_stake", "stake": 1000.0}
HOUR_NS = 3600 * 1_000_000_000
DAY_NS = 24 * HOUR_NS


# --- helpers ------------------------------------------------------------------------------------


def backtest(
    series: Candles | list[Candles],
    *,
    entry: dict[str, Any] | None = None,
    exits: dict[str, Any] | None = None,
    sizing: dict[str, Any] | None = None,
    filters: dict[str, Any] | None = None,
    protections: dict[str, Any] | None = None,
    direction: str = "long",
    cash: float = 10_000.0,
    commission: float = 0.0,
) -> BacktestResult:
    """One full backtest of a strategy composed from config blocks, over the given candles."""
    data = series if isinstance(series, list) else [series]
    config = BotConfig.model_validate(
        {
            "data": {"symbols": [c.symbol for c in data], "timeframe": data[0].timeframe},
            "broker": {"cash": cash, "commission": commission, "slippage": 0.0},
            "strategy": {
                "entry": entry or CONTROL,
                "exits": exits or {},
                "sizing": sizing or STAKE,
                "filters": filters or {},
                "protections": protections or {},
                "direction": direction,
            },
        }
    )
    return run_backtest(config, candles=data)


def bar_of(series: Candles, moment: dt.datetime | None) -> int:
    assert moment is not None
    return index_of(series, moment)


def entries(series: Candles, result: BacktestResult) -> list[int]:
    """Bar indices of every entry fill, closed and still open, in order."""
    return sorted(bar_of(series, t.entry_time) for t in [*result.trades, *result.open_trades])


def round_trips(series: Candles, result: BacktestResult) -> list[tuple[int, int | None, str]]:
    """(entry bar, exit bar or None while open, side) of every trade, in entry order."""
    closed = [(bar_of(series, t.entry_time), bar_of(series, t.exit_time), t.side) for t in result.trades]
    still_open = [(bar_of(series, t.entry_time), None, t.side) for t in result.open_trades]
    return sorted([*closed, *still_open], key=lambda trip: trip[0])


def only(trades: list[TradeRecord]) -> TradeRecord:
    assert len(trades) == 1, f"expected exactly one trade, got {trades}"
    return trades[0]


def ns(moment: dt.datetime) -> int:
    return to_ns(moment)


@pytest.fixture(scope="module")
def btc() -> Candles:
    return load_sample("BTC/USDT", "1h")


@pytest.fixture(scope="module")
def eth() -> Candles:
    return load_sample("ETH/USDT", "1h")


# --- independent re-implementations of the documented indicators (plain loops / pandas) -------


def sma(values: np.ndarray, period: int) -> np.ndarray:
    return pd.Series(values).rolling(period).mean().to_numpy()


def smoothed(values: np.ndarray, period: int, alpha: float) -> np.ndarray:
    """Exponential smoothing seeded with the mean of the first `period` defined values."""
    out = np.full(len(values), np.nan)
    first = int(np.flatnonzero(~np.isnan(values))[0])
    seed = first + period - 1
    out[seed] = values[first : seed + 1].mean()
    for i in range(seed + 1, len(values)):
        out[i] = out[i - 1] * (1 - alpha) + values[i] * alpha
    return out


def ema(values: np.ndarray, period: int) -> np.ndarray:
    return smoothed(values, period, 2 / (period + 1))


def wilder_rsi(close: np.ndarray, period: int) -> np.ndarray:
    change = np.concatenate(([np.nan], np.diff(close)))
    up = smoothed(np.where(np.isnan(change), np.nan, np.maximum(change, 0)), period, 1 / period)
    down = smoothed(np.where(np.isnan(change), np.nan, np.maximum(-change, 0)), period, 1 / period)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(down == 0, 100.0, 100 - 100 / (1 + up / down))


def wilder_atr(high: np.ndarray, low: np.ndarray, close: np.ndarray, period: int) -> np.ndarray:
    previous = np.concatenate(([np.nan], close[:-1]))
    true_range = np.maximum(high, previous) - np.minimum(low, previous)
    return smoothed(true_range, period, 1 / period)


def previous(values: np.ndarray) -> np.ndarray:
    return np.concatenate(([np.nan], values[:-1]))


def crosses_above(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return (previous(a) < previous(b)) & (a > b)


def crosses_below(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return crosses_above(b, a)


def macd_lines(close: np.ndarray, fast: int, slow: int, signal: int) -> tuple[np.ndarray, np.ndarray]:
    macd = ema(close, fast) - ema(close, slow)
    return macd, ema(macd, signal)


SignalsFn = Callable[[Candles], tuple[np.ndarray, np.ndarray]]


def _sma_cross(c: Candles) -> tuple[np.ndarray, np.ndarray]:
    fast, slow = sma(c.close, 10), sma(c.close, 30)
    return crosses_above(fast, slow), crosses_below(fast, slow)


def _ema_cross(c: Candles) -> tuple[np.ndarray, np.ndarray]:
    fast, slow = ema(c.close, 12), ema(c.close, 26)
    return crosses_above(fast, slow), crosses_below(fast, slow)


def _rsi_reversion(c: Candles) -> tuple[np.ndarray, np.ndarray]:
    rsi = wilder_rsi(c.close, 14)
    with np.errstate(invalid="ignore"):
        return (previous(rsi) <= 30) & (rsi > 30), (previous(rsi) <= 70) & (rsi > 70)


def _bollinger_reversion(c: Candles) -> tuple[np.ndarray, np.ndarray]:
    middle = sma(c.close, 20)
    width = 2.0 * pd.Series(c.close).rolling(20).std(ddof=0).to_numpy()
    with np.errstate(invalid="ignore"):
        return c.close < middle - width, c.close > middle


def _macd_trend(c: Candles) -> tuple[np.ndarray, np.ndarray]:
    macd, signal = macd_lines(c.close, 12, 26, 9)
    return crosses_above(macd, signal), crosses_below(macd, signal)


def _donchian_breakout(c: Candles) -> tuple[np.ndarray, np.ndarray]:
    upper = previous(pd.Series(c.high).rolling(20).max().to_numpy())
    exit_low = previous(pd.Series(c.low).rolling(10).min().to_numpy())
    with np.errstate(invalid="ignore"):
        return c.close > upper, c.close < exit_low


ENTRY_SIGNALS: dict[str, SignalsFn] = {
    "sma_cross": _sma_cross,
    "ema_cross": _ema_cross,
    "rsi_reversion": _rsi_reversion,
    "bollinger_reversion": _bollinger_reversion,
    "macd_trend": _macd_trend,
    "donchian_breakout": _donchian_breakout,
}


def expected_round_trips(long_entry: np.ndarray, long_exit: np.ndarray) -> list[tuple[int, int | None]]:
    """What a long-only strategy acting on these signals must do: decide at a bar's close, fill at
    the next bar's open; exit signals count from the fill bar on; an entry may be decided on the bar
    an exit fills. (entry bar, exit bar or None when still open at the end)."""
    trips: list[tuple[int, int | None]] = []
    filled_at: int | None = None
    last = len(long_entry) - 1
    for i in range(len(long_entry)):
        if filled_at is None:
            if long_entry[i] and i < last:
                filled_at = i + 1
        elif i >= filled_at and long_exit[i] and i < last:
            trips.append((filled_at, i + 1))
            filled_at = None
    if filled_at is not None:
        trips.append((filled_at, None))
    return trips


# === entries ====================================================================================


@pytest.mark.parametrize("name", list(ENTRY_SIGNALS))
def test_entry_trades_exactly_where_its_documented_signals_say_filling_at_the_next_open(
    btc: Candles, name: str
) -> None:
    long_entry, long_exit = ENTRY_SIGNALS[name](btc)
    result = backtest(btc, entry={"name": name}, sizing={"name": "percent_equity", "pct": 95})

    assert len(result.trades) >= 5, f"{name} should trade on a year of hourly candles"
    expected = expected_round_trips(long_entry, long_exit)
    assert [(e, x) for e, x, _ in round_trips(btc, result)] == expected
    for trade in result.trades:
        entry, exit_ = bar_of(btc, trade.entry_time), bar_of(btc, trade.exit_time)
        assert long_entry[entry - 1], "the signal is on the bar before the fill"
        assert trade.entry_price == pytest.approx(btc.open[entry], rel=1e-12)
        assert trade.exit_reason == "signal"
        assert trade.exit_price == pytest.approx(btc.open[exit_], rel=1e-12)
        assert trade.side == "long"


def test_crossover_signal_on_hand_made_candles_fills_at_the_following_open() -> None:
    series = candles([100, 99, 100, Bar(101, open=100.5), 101, Bar(100, open=101.5), 99])
    trade = only(backtest(series).trades)
    # closes 99 -> 100: cross up on bar 2, bought at bar 3's open; 101 -> 100 on bar 5: sold at bar 6's open
    assert (bar_of(series, trade.entry_time), trade.entry_price) == (3, 100.5)
    assert (bar_of(series, trade.exit_time), trade.exit_price) == (6, 99.0)
    assert trade.exit_reason == "signal"
    assert trade.pnl == pytest.approx(trade.size * (99.0 - 100.5))


# === exits ======================================================================================


def test_stop_loss_fills_at_its_price_when_a_later_candle_trades_through_it() -> None:
    series = candles([100, 99, 100, 100, Bar(100, low=98.5), Bar(100, low=97), 100, 100])
    trade = only(backtest(series, exits={"stop_loss": {"pct": 0.02}}).trades)
    assert (bar_of(series, trade.entry_time), trade.entry_price) == (3, 100.0)
    assert bar_of(series, trade.exit_time) == 5
    assert trade.exit_price == pytest.approx(98.0)
    assert trade.exit_reason == "stop_loss"
    assert trade.pnl == pytest.approx(-0.02 * trade.size * 100)


def test_stop_loss_fills_at_the_open_when_the_candle_gaps_below_it() -> None:
    series = candles([100, 99, 100, 100, Bar(95, open=95.5, high=96, low=94), 95, 95])
    trade = only(backtest(series, exits={"stop_loss": {"pct": 0.02}}).trades)
    assert bar_of(series, trade.exit_time) == 4
    assert trade.exit_price == 95.5
    assert trade.exit_reason == "stop_loss"


def test_take_profit_fills_at_entry_times_one_plus_pct() -> None:
    series = candles([100, 99, 100, 100, Bar(100, high=104), Bar(100, high=106), 100])
    trade = only(backtest(series, exits={"take_profit": {"pct": 0.05}, "stop_loss": {"pct": 0.02}}).trades)
    assert bar_of(series, trade.exit_time) == 5
    assert trade.exit_price == pytest.approx(105.0)
    assert trade.exit_reason == "take_profit"
    assert trade.pnl == pytest.approx(trade.size * 5.0)


def test_take_profit_fills_at_the_better_open_when_the_candle_gaps_above_it() -> None:
    series = candles([100, 99, 100, 100, Bar(107, open=107, high=108, low=106.5), 107])
    trade = only(backtest(series, exits={"take_profit": {"pct": 0.05}}).trades)
    assert (bar_of(series, trade.exit_time), trade.exit_price, trade.exit_reason) == (4, 107.0, "take_profit")


def test_trailing_stop_trails_the_best_close_since_entry() -> None:
    # Entry 100 at bar 3; bar 4 closes at 110, lifting the 5 % trail to 104.5; bar 5's low of 104.6
    # does not reach it, bar 6's low of 104 does.
    series = candles([100, 99, 100, 100, 110, Bar(110, low=104.6), Bar(110, low=104), 110])
    trade = only(backtest(series, exits={"trailing_stop": {"pct": 0.05}}).trades)
    assert bar_of(series, trade.entry_time) == 3
    assert bar_of(series, trade.exit_time) == 6
    assert trade.exit_price == pytest.approx(110 * 0.95)
    assert trade.exit_reason == "trailing_stop"


def test_trailing_stop_never_moves_down() -> None:
    # After the 110 close the trail sits at 104.5; the wick bars close lower (still no exit signal:
    # the closes stay flat) but the stop stays where the best close put it.
    series = candles([100, 99, 100, 100, 110, Bar(110, low=104.7), Bar(110, low=104.6), Bar(110, low=100)])
    trade = only(backtest(series, exits={"trailing_stop": {"pct": 0.05}}).trades)
    assert bar_of(series, trade.exit_time) == 7
    assert trade.exit_price == pytest.approx(104.5)


# ATR(2) on the signal bar (bar 2): true ranges 2 (bar 1) and 4 (bar 2), seeded mean 3. The fill
# bar's huge range (which would widen a later ATR) must not move the stop.
ATR_SERIES_LONG = [
    Bar(100),
    Bar(99, high=100, low=98),
    Bar(100, high=102, low=98),
    Bar(100, high=130, low=96),
    Bar(100, low=95.6),
    Bar(100, low=95),
    Bar(100),
]


def test_atr_stop_sits_multiplier_atrs_of_the_signal_bar_below_the_entry() -> None:
    series = candles(ATR_SERIES_LONG)
    trade = only(backtest(series, exits={"atr_stop": {"period": 2, "multiplier": 1.5}}).trades)
    assert (bar_of(series, trade.entry_time), trade.entry_price) == (3, 100.0)
    assert bar_of(series, trade.exit_time) == 5
    assert trade.exit_price == pytest.approx(100 - 1.5 * 3)
    assert trade.exit_reason == "atr_stop"


def test_atr_stop_for_a_short_sits_above_the_entry() -> None:
    series = candles(
        [
            Bar(100),
            Bar(101, high=102, low=100),  # true range 2
            Bar(100, high=102, low=98),  # true range 4: ATR(2) = 3, short signal (close falls)
            Bar(100, high=104, low=70),
            Bar(100, high=104.4),
            Bar(100, high=105),
            Bar(100),
        ]
    )
    trade = only(backtest(series, exits={"atr_stop": {"period": 2, "multiplier": 1.5}}, direction="short").trades)
    assert (trade.side, bar_of(series, trade.entry_time)) == ("short", 3)
    assert bar_of(series, trade.exit_time) == 5
    assert trade.exit_price == pytest.approx(104.5)
    assert trade.exit_reason == "atr_stop"


def _flat_closes_with_distinct_opens(bars: int) -> list[Bar]:
    return [Bar(100, open=100 + i / 10, high=102, low=99) for i in range(bars)]


@pytest.mark.parametrize("bars", [1, 3, 5])
def test_time_exit_holds_the_trade_exactly_bars_bars_and_leaves_at_that_open(bars: int) -> None:
    # The rule is checked at each bar's close: once the trade has been open for `bars` bars (the fill
    # bar counts: bought at its open) it is closed by a market order at the next open.
    series = candles([100, 99, 100, *_flat_closes_with_distinct_opens(12)])
    trade = only(backtest(series, exits={"time_exit": {"bars": bars}}).trades)
    entry, exit_ = bar_of(series, trade.entry_time), bar_of(series, trade.exit_time)
    assert entry == 3
    assert exit_ - entry == bars, f"held {exit_ - entry} bars with time_exit bars={bars}"
    assert at(series, exit_) - at(series, entry) == dt.timedelta(hours=bars)
    assert trade.exit_price == series.open[exit_]
    assert trade.exit_reason == "time_exit"


@pytest.mark.parametrize(
    ("exits", "bars", "reason", "price"),
    [
        ({"stop_loss": {"pct": 0.02}}, [Bar(100, high=101.5), Bar(100, high=103)], "stop_loss", 102.0),
        ({"take_profit": {"pct": 0.05}}, [Bar(100, low=95.5), Bar(100, low=94)], "take_profit", 95.0),
        ({"stop_loss": {"pct": 0.02}}, [Bar(100, high=101), Bar(104, open=103.5, high=104.5)], "stop_loss", 103.5),
    ],
    ids=["stop_above", "target_below", "stop_gapped_through_fills_at_open"],
)
def test_short_exits_mirror_long_ones(exits: dict[str, Any], bars: list[Any], reason: str, price: float) -> None:
    # closes 100, 101, 100: a falling close after a rise is a short entry signal on bar 2
    series = candles([100, 101, 100, 100, *bars, 100])
    result = backtest(series, exits=exits, direction="short")
    trade = only(result.trades)
    assert (trade.side, bar_of(series, trade.entry_time), trade.entry_price) == ("short", 3, 100.0)
    assert bar_of(series, trade.exit_time) == 5
    assert trade.exit_reason == reason
    assert trade.exit_price == pytest.approx(price)
    assert trade.pnl == pytest.approx(trade.size * (100.0 - price))
    assert result.open_trades == []


def test_short_trailing_stop_trails_the_lowest_close() -> None:
    series = candles([100, 101, 100, 100, 90, Bar(90, high=94.4), Bar(90, high=95), 90])
    trade = only(backtest(series, exits={"trailing_stop": {"pct": 0.05}}, direction="short").trades)
    assert (trade.side, bar_of(series, trade.exit_time)) == ("short", 6)
    assert trade.exit_price == pytest.approx(90 * 1.05)
    assert trade.exit_reason == "trailing_stop"


def test_short_time_exit_closes_with_a_market_buy_at_the_next_open() -> None:
    series = candles([100, 101, 100, *_flat_closes_with_distinct_opens(10)])
    trade = only(backtest(series, exits={"time_exit": {"bars": 2}}, direction="short").trades)
    exit_ = bar_of(series, trade.exit_time)
    assert trade.side == "short"
    assert trade.exit_price == series.open[exit_]
    assert trade.exit_reason == "time_exit"


# --- resting exits and signal exits together ----------------------------------------------------


def test_resting_exits_are_not_active_on_the_entry_fill_bar() -> None:
    # Bar 3 (the fill bar) trades through both the stop (98) and the target (105): neither may fill.
    series = candles([100, 99, 100, Bar(100, high=120, low=80), Bar(100, high=104), Bar(100, low=97.5), 100])
    trade = only(backtest(series, exits={"stop_loss": {"pct": 0.02}, "take_profit": {"pct": 0.05}}).trades)
    assert bar_of(series, trade.entry_time) == 3
    assert (bar_of(series, trade.exit_time), trade.exit_reason) == (5, "stop_loss")
    assert trade.exit_price == pytest.approx(98.0)


@pytest.mark.parametrize("bars_after_fill", [0, 1], ids=["signal_on_fill_bar", "signal_one_bar_later"])
def test_exit_signal_leaves_no_resting_order_behind(bars_after_fill: int) -> None:
    # The close falls `bars_after_fill` bars after the fill: a signal exit at the next open. Later
    # candles trade through where the stop and the target were; a forgotten resting order would
    # fill there and open a position of the opposite sign.
    hold = [Bar(100)] * bars_after_fill
    series = candles(
        [100, 99, 100, *hold, Bar(99, open=100), Bar(99, low=80, high=120), Bar(99, low=60, high=140), 99, 99]
    )
    result = backtest(series, exits={"stop_loss": {"pct": 0.02}, "take_profit": {"pct": 0.01}})
    trade = only(result.trades)
    assert trade.exit_reason == "signal"
    assert bar_of(series, trade.exit_time) == 4 + bars_after_fill
    assert result.open_trades == []
    assert result.final_value == pytest.approx(10_000 + trade.pnl)


def test_first_resting_exit_to_fill_cancels_the_others() -> None:
    series = candles([100, 99, 100, 100, Bar(100, high=106), Bar(100, low=90), Bar(100, high=130), 100])
    result = backtest(
        series, exits={"stop_loss": {"pct": 0.02}, "take_profit": {"pct": 0.05}, "trailing_stop": {"pct": 0.03}}
    )
    trade = only(result.trades)
    assert (bar_of(series, trade.exit_time), trade.exit_reason) == (4, "take_profit")
    assert result.open_trades == []


def test_direction_both_reverses_on_the_opposite_signal_and_protects_the_new_side_only() -> None:
    # Long from bar 3 (stop 98); the close falls on bar 4: the long is sold and a short opened at bar 5's
    # open (99). The long's old stop must be gone (bar 6 dips to 90), the short's own stop at
    # 99 * 1.02 = 100.98 fills on bar 7.
    series = candles([100, 99, 100, 100, 99, 99, Bar(99, low=90), Bar(99, high=101.5), 99, 99])
    result = backtest(series, exits={"stop_loss": {"pct": 0.02}}, direction="both")
    long_, short = result.trades
    assert (long_.side, bar_of(series, long_.entry_time), bar_of(series, long_.exit_time)) == ("long", 3, 5)
    assert (long_.exit_reason, long_.exit_price) == ("signal", 99.0)
    assert (short.side, bar_of(series, short.entry_time), short.entry_price) == ("short", 5, 99.0)
    assert (bar_of(series, short.exit_time), short.exit_reason) == (7, "stop_loss")
    assert short.exit_price == pytest.approx(99 * 1.02)
    assert result.open_trades == []


# === sizing =====================================================================================


def test_fixed_stake_buys_stake_worth_at_the_signal_close() -> None:
    series = candles([100, 99, 100, 100, 100])
    (trade,) = backtest(series, sizing={"name": "fixed_stake", "stake": 2500}).open_trades
    assert trade.size == pytest.approx(25.0)


def test_fixed_stake_is_capped_by_free_cash() -> None:
    series = candles([100, 99, 100, 100, 100])
    (trade,) = backtest(series, sizing={"name": "fixed_stake", "stake": 50_000}, cash=10_000).open_trades
    assert trade.size * trade.entry_price <= 10_000 + 1e-6
    assert trade.size == pytest.approx(100.0)


def test_fixed_stake_notional_is_the_stake_on_the_sample(btc: Candles) -> None:
    result = backtest(
        btc,
        entry={"name": "ema_cross"},
        exits={"stop_loss": {"pct": 0.03}},
        sizing={"name": "fixed_stake", "stake": 777},
    )
    assert len(result.trades) > 20
    for trade in [*result.trades, *result.open_trades]:
        signal_close = btc.close[bar_of(btc, trade.entry_time) - 1]
        assert trade.size * signal_close == pytest.approx(777.0)
        assert trade.size * trade.entry_price == pytest.approx(777.0, rel=0.05)


def test_percent_equity_buys_pct_of_equity_at_the_signal_close() -> None:
    series = candles([100, 99, 100, 100, 100])
    (trade,) = backtest(series, sizing={"name": "percent_equity", "pct": 50}).open_trades
    assert trade.size == pytest.approx(50.0)


def test_percent_equity_tracks_equity_from_trade_to_trade_on_the_sample(btc: Candles) -> None:
    result = backtest(
        btc,
        entry={"name": "sma_cross"},
        exits={"stop_loss": {"pct": 0.02}},
        sizing={"name": "percent_equity", "pct": 40},
    )
    assert len(result.trades) > 20
    for trade in [*result.trades, *result.open_trades]:
        signal = bar_of(btc, trade.entry_time) - 1
        assert trade.size * btc.close[signal] == pytest.approx(0.40 * result.equity_values[signal])


def test_fixed_fractional_risk_loses_risk_pct_of_equity_when_stopped_out() -> None:
    # equity 10 000, risk 1 %, stop 2 % below 100: 100 / 2 = 50 units; stopped out at 98 loses 100.
    series = candles([100, 99, 100, 100, Bar(100, low=90), 100])
    trade = only(
        backtest(
            series, exits={"stop_loss": {"pct": 0.02}}, sizing={"name": "fixed_fractional_risk", "risk_pct": 1.0}
        ).trades
    )
    assert trade.size == pytest.approx(50.0)
    assert trade.exit_reason == "stop_loss"
    assert trade.pnl == pytest.approx(-100.0)


def test_fixed_fractional_risk_uses_the_tightest_stop_and_caps_the_notional() -> None:
    series = candles([100, 99, 100, 100, 100])
    tightest = backtest(
        series,
        exits={"stop_loss": {"pct": 0.05}, "trailing_stop": {"pct": 0.02}},
        sizing={"name": "fixed_fractional_risk", "risk_pct": 1.0},
    )
    assert only(tightest.open_trades).size == pytest.approx(50.0)  # 100 risked over a 2-point stop
    capped = backtest(
        series,
        exits={"stop_loss": {"pct": 0.02}},
        sizing={"name": "fixed_fractional_risk", "risk_pct": 10.0, "max_pct": 30.0},
    )
    assert only(capped.open_trades).size == pytest.approx(30.0)  # 30 % of 10 000 at 100


def test_fixed_fractional_risk_stop_outs_lose_risk_pct_of_equity_on_the_sample(btc: Candles) -> None:
    result = backtest(
        btc,
        entry={"name": "sma_cross"},
        exits={"stop_loss": {"pct": 0.02}},
        sizing={"name": "fixed_fractional_risk", "risk_pct": 1.0},
    )
    stopped = [t for t in result.trades if t.exit_reason == "stop_loss"]
    at_stop = [t for t in stopped if t.exit_price == pytest.approx(t.entry_price * 0.98, rel=1e-9)]
    assert len(at_stop) > 10
    for trade in at_stop:
        equity_at_signal = result.equity_values[bar_of(btc, trade.entry_time) - 1]
        assert trade.pnl == pytest.approx(-0.01 * equity_at_signal, rel=1e-6)
    # A stop the price gapped through (e.g. the fill bar already closed below it) fills lower: loses more.
    for trade in stopped:
        assert trade.exit_price is not None
        assert trade.exit_price <= trade.entry_price * 0.98 * (1 + 1e-9)


def _kelly_series(outcomes: str, tail_cycles: int = 0) -> Candles:
    """A cycle per outcome: fall, rise (signal), fill at 100, then 'w' (high 111: the 10 % target
    fills at 110) or 'l' (low 90: the 5 % stop fills at 95). Tail cycles give signals with no outcome."""
    bars: list[Any] = [100]
    for outcome in outcomes:
        bars += [99, 100, 100, Bar(100, high=111) if outcome == "w" else Bar(100, low=90)]
    bars += [99, 100, 100, 100] * tail_cycles
    return candles(bars)


KELLY_EXITS = {"take_profit": {"pct": 0.10}, "stop_loss": {"pct": 0.05}}


def _signal_equity(series: Candles, result: BacktestResult, trade: TradeRecord) -> float:
    return float(result.equity_values[bar_of(series, trade.entry_time) - 1])


def test_kelly_uses_default_pct_before_min_trades_then_the_capped_kelly_fraction() -> None:
    series = _kelly_series("www", tail_cycles=1)
    result = backtest(
        series,
        exits=KELLY_EXITS,
        sizing={"name": "kelly", "min_trades": 2, "default_pct": 10, "multiplier": 0.5, "cap_pct": 25},
    )
    trades = [*result.trades, *result.open_trades]
    assert len(trades) == 4
    first, second, third, fourth = trades
    assert first.size * 100 == pytest.approx(0.10 * 10_000)
    assert second.size * 100 == pytest.approx(0.10 * _signal_equity(series, result, second))
    # two wins and no loss: full Kelly is 1, half Kelly 50 %, capped at 25 %
    assert third.size * 100 == pytest.approx(0.25 * _signal_equity(series, result, third))
    assert fourth.size * 100 == pytest.approx(0.25 * _signal_equity(series, result, fourth))


def test_kelly_fraction_below_the_cap_is_multiplier_times_w_minus_loss_rate_over_payoff() -> None:
    series = _kelly_series("wlw", tail_cycles=1)
    result = backtest(
        series,
        exits=KELLY_EXITS,
        sizing={"name": "kelly", "min_trades": 3, "default_pct": 10, "multiplier": 0.5, "cap_pct": 40},
    )
    history, sized = result.trades[:3], only(result.open_trades)
    assert [t.exit_reason for t in history] == ["take_profit", "stop_loss", "take_profit"]
    wins = [t.pnl for t in history if t.pnl > 0]
    losses = [-t.pnl for t in history if t.pnl < 0]
    win_rate, payoff = 2 / 3, (sum(wins) / 2) / (sum(losses) / 1)
    fraction = 0.5 * (win_rate - (1 - win_rate) / payoff)
    assert 0 < fraction < 0.40
    assert sized.size * 100 == pytest.approx(fraction * _signal_equity(series, result, sized))


def test_kelly_with_a_negative_edge_stops_entering() -> None:
    series = _kelly_series("ll", tail_cycles=3)
    result = backtest(series, exits=KELLY_EXITS, sizing={"name": "kelly", "min_trades": 2, "default_pct": 10})
    assert [t.exit_reason for t in result.trades] == ["stop_loss", "stop_loss"]
    assert result.open_trades == []


# === filters ====================================================================================

SESSIONS = [
    {"start_hour": 8, "end_hour": 16, "days": "mon-fri"},
    {"start_hour": 22, "end_hour": 2, "days": "mon-sun"},
    {"start_hour": 0, "end_hour": 24, "days": "sat,sun"},
]


def _in_session(moment: dt.datetime, session: dict[str, Any]) -> bool:
    start, end = session["start_hour"], session["end_hour"]
    in_hours = start <= moment.hour < end if start < end else (moment.hour >= start or moment.hour < end)
    days = {"mon-fri": {0, 1, 2, 3, 4}, "mon-sun": set(range(7)), "sat,sun": {5, 6}}[session["days"]]
    return in_hours and moment.weekday() in days


@pytest.mark.parametrize("session", SESSIONS, ids=["office_hours_weekdays", "wrapping_midnight", "weekends"])
def test_session_filter_enters_only_on_candles_opening_inside_the_session(
    btc: Candles, session: dict[str, Any]
) -> None:
    strategy: dict[str, Any] = {"entry": {"name": "sma_cross", "fast": 3, "slow": 8}}
    unfiltered = backtest(btc, **strategy)
    result = backtest(btc, **strategy, filters={"session": session})
    opened = [*result.trades, *result.open_trades]
    assert 0 < len(opened) < len(unfiltered.trades) + len(unfiltered.open_trades)
    outside = [t.entry_time.isoformat() for t in opened if not _in_session(t.entry_time, session)]
    assert outside == [], f"{len(outside)} entries on candles opening outside {session}: {outside[:5]}"


def _completed_4h_trend(series: Candles, period: int) -> tuple[np.ndarray, np.ndarray]:
    """For every 1h bar: (last completed 4h close, its SMA) as known at that bar's close."""
    bins = series.timestamp // (4 * HOUR_NS)
    frame = pd.DataFrame({"bin": bins, "close": series.close})
    closes = frame.groupby("bin")["close"].last()
    sma4 = closes.rolling(period).mean()
    complete_at_close = (series.timestamp + HOUR_NS) % (4 * HOUR_NS) == 0
    visible_bin = np.where(complete_at_close, bins, bins - 1)
    last_close = closes.reindex(visible_bin).to_numpy()
    last_sma = sma4.reindex(visible_bin).to_numpy()
    return last_close, last_sma


def test_trend_filter_enters_only_with_the_last_completed_4h_candle_trend(btc: Candles) -> None:
    strategy: dict[str, Any] = {"entry": {"name": "ema_cross", "fast": 5, "slow": 20}, "direction": "both"}
    unfiltered = backtest(btc, **strategy)
    result = backtest(btc, **strategy, filters={"trend": {"timeframe": "4h", "period": 20}})
    last_close, last_sma = _completed_4h_trend(btc, 20)
    opened = [*result.trades, *result.open_trades]
    assert {t.side for t in opened} == {"long", "short"}
    assert len(opened) < len(unfiltered.trades) + len(unfiltered.open_trades)
    for trade in opened:
        decided = bar_of(btc, trade.entry_time) - 1
        if trade.side == "long":
            assert last_close[decided] > last_sma[decided], trade
        else:
            assert last_close[decided] < last_sma[decided], trade


def test_trend_filter_does_not_look_ahead(btc: Candles) -> None:
    """Crashing every candle after bar k (inside a 4h candle) changes no entry decided up to bar k."""
    strategy: dict[str, Any] = {
        "entry": {"name": "ema_cross", "fast": 5, "slow": 20},
        "filters": {"trend": {"timeframe": "4h", "period": 20}},
    }
    baseline = backtest(btc, **strategy)
    decisions = [bar_of(btc, t.entry_time) - 1 for t in baseline.trades]
    mid_bin = [d for d in decisions if (btc.timestamp[d] // HOUR_NS) % 4 in (0, 1, 2) and d > 1000]
    assert len(mid_bin) >= 3
    for k in mid_bin[:3]:

        def crash(column: np.ndarray, k: int = k) -> np.ndarray:
            return np.concatenate((column[: k + 1], column[k + 1 :] * 0.5))

        crashed = Candles(
            btc.symbol,
            btc.timeframe,
            btc.timestamp,
            open=crash(btc.open),
            high=crash(btc.high),
            low=crash(btc.low),
            close=crash(btc.close),
            volume=btc.volume,
        )
        rerun = backtest(crashed, **strategy)
        upto = ns(at(btc, k + 1))
        assert [t.entry_time for t in rerun.trades if ns(t.entry_time) <= upto] == [
            t.entry_time for t in baseline.trades if ns(t.entry_time) <= upto
        ]


def test_volatility_filter_enters_only_while_atr_pct_is_within_bounds(btc: Candles) -> None:
    bounds = {"period": 14, "min_pct": 0.65, "max_pct": 0.9}
    strategy: dict[str, Any] = {"entry": {"name": "sma_cross", "fast": 3, "slow": 8}}
    unfiltered = backtest(btc, **strategy)
    result = backtest(btc, **strategy, filters={"volatility": bounds})
    atr_pct = wilder_atr(btc.high, btc.low, btc.close, 14) / btc.close * 100
    opened = [*result.trades, *result.open_trades]
    assert 0 < len(opened) < len(unfiltered.trades) / 2
    for trade in opened:
        decided = bar_of(btc, trade.entry_time) - 1
        assert 0.65 - 1e-9 <= atr_pct[decided] <= 0.9 + 1e-9, (trade, atr_pct[decided])


def test_filters_never_block_exits(btc: Candles) -> None:
    result = backtest(
        btc,
        entry={"name": "sma_cross", "fast": 3, "slow": 8},
        filters={"session": {"start_hour": 8, "end_hour": 9, "days": "mon"}},
    )
    exits_outside = [t for t in result.trades if t.exit_time is not None and t.exit_time.hour != 8]
    assert exits_outside, "signal exits happen whenever the signal says, session or not"


# === protections ================================================================================


def _stairs(count: int, wicks: set[int]) -> Candles:
    """Closes 100, 101, 102, ... (a Donchian(2) breakout signal on every bar, never an exit signal);
    bars in `wicks` dip to 50, through any 2 % stop."""
    return candles([Bar(100.0 + i, open=99.5 + i, low=50.0 if i in wicks else 99.5 + i) for i in range(count)])


BREAKOUT = {"name": "donchian_breakout", "period": 2, "exit_period": 5}
STOP = {"stop_loss": {"pct": 0.02}}


def test_stairs_without_protection_reenter_on_the_bar_after_a_stop_out() -> None:
    series = _stairs(20, wicks={6})
    assert round_trips(series, backtest(series, entry=BREAKOUT, exits=STOP)) == [(3, 6, "long"), (7, None, "long")]


@pytest.mark.parametrize("bars", [1, 2, 3, 5])
def test_cooldown_waits_bars_bars_after_an_exit_before_entering_again(bars: int) -> None:
    series = _stairs(20, wicks={6})
    result = backtest(series, entry=BREAKOUT, exits=STOP, protections={"cooldown": {"bars": bars}})
    assert round_trips(series, result) == [(3, 6, "long"), (6 + bars + 1, None, "long")]


def _reentry_gaps(trips: list[tuple[int, int | None, str]]) -> list[int]:
    """Bars from each exit fill to the next entry fill."""
    gaps = []
    for (_, exit_, _), (entry, _, _) in itertools.pairwise(trips):
        assert exit_ is not None
        gaps.append(entry - exit_)
    return gaps


def test_cooldown_on_the_sample_keeps_every_reentry_more_than_bars_after_the_exit(btc: Candles) -> None:
    strategy: dict[str, Any] = {"entry": {"name": "sma_cross", "fast": 3, "slow": 8}, "exits": STOP}
    loose = round_trips(btc, backtest(btc, **strategy))
    cooled = round_trips(btc, backtest(btc, **strategy, protections={"cooldown": {"bars": 6}}))
    assert min(_reentry_gaps(loose)) <= 6, "the unprotected strategy re-enters quickly somewhere"
    assert min(_reentry_gaps(cooled)) > 6


@pytest.mark.parametrize("lock_bars", [1, 2, 3])
def test_stoploss_guard_halts_entries_for_lock_bars_bars_after_the_triggering_stop_out(lock_bars: int) -> None:
    series = _stairs(20, wicks={6})
    guard = {"stoploss_guard": {"trades": 1, "window_bars": 10, "lock_bars": lock_bars}}
    result = backtest(series, entry=BREAKOUT, exits=STOP, protections=guard)
    # Like a cooldown of lock_bars: bars 7 .. 6 + lock_bars are halted, entries resume right after.
    assert round_trips(series, result) == [(3, 6, "long"), (6 + lock_bars + 1, None, "long")]


def test_stoploss_guard_counts_stop_outs_within_the_window_before_locking() -> None:
    series = _stairs(30, wicks={6, 12})
    guard = {"stoploss_guard": {"trades": 2, "window_bars": 10, "lock_bars": 4}}
    trips = round_trips(series, backtest(series, entry=BREAKOUT, exits=STOP, protections=guard))
    assert trips[0] == (3, 6, "long")
    assert trips[1][0] == 7, "one stop-out is below the threshold: no halt"
    assert trips[1][1] == 12
    assert trips[2][0] > 13, "the second stop-out within 10 bars halts entries (for how long: see above)"


def test_stoploss_guard_ignores_stop_outs_older_than_the_window() -> None:
    series = _stairs(40, wicks={6, 25})
    guard = {"stoploss_guard": {"trades": 2, "window_bars": 10, "lock_bars": 5}}
    trips = round_trips(series, backtest(series, entry=BREAKOUT, exits=STOP, protections=guard))
    assert [t[0] for t in trips] == [3, 7, 26]


def test_stoploss_guard_ignores_signal_and_take_profit_exits() -> None:
    series = candles([100, 99, 100, 100, Bar(100, high=110), 99, 100, 100, 100])
    guard = {"stoploss_guard": {"trades": 1, "window_bars": 50, "lock_bars": 50}}
    result = backtest(series, exits={"take_profit": {"pct": 0.05}}, protections=guard)
    assert entries(series, result) == [3, 7]


def _dip_and_recover(day_two: bool) -> Candles:
    """Bought at 101 on bar 3 (half the equity), a gap to 80 on bar 4 puts equity 10.4 % under its
    peak, the close is back at 101 on bar 5 and the 10 % target fills on bar 6 for a new equity high;
    bar 6 closes at a breakout (a new entry signal). With `day_two`, flat candles run to the next UTC
    day, where bar 25 is the next breakout."""
    bars: list[Any] = [Bar(100, low=1), 100, 101, 101, 80, 101, Bar(115, open=101, high=115)]
    bars += [115] * (18 if day_two else 3)
    if day_two:
        bars += [116, 116, 116]
    return candles(bars)


ANCHORED_BREAKOUT = {"name": "donchian_breakout", "period": 2, "exit_period": 50}  # bar 0's low anchors exits
HALF = {"name": "percent_equity", "pct": 50}


def test_dip_and_recover_series_trades_again_without_protection() -> None:
    series = _dip_and_recover(day_two=False)
    result = backtest(series, entry=ANCHORED_BREAKOUT, exits={"take_profit": {"pct": 0.10}}, sizing=HALF)
    assert round_trips(series, result) == [(3, 6, "long"), (7, None, "long")]
    peak = np.maximum.accumulate(result.equity_values)
    assert result.equity_values[4] <= 0.9 * peak[4]


def test_max_drawdown_halts_entries_for_the_run_once_equity_fell_pct_below_its_peak() -> None:
    series = _dip_and_recover(day_two=False)
    result = backtest(
        series,
        entry=ANCHORED_BREAKOUT,
        exits={"take_profit": {"pct": 0.10}},
        sizing=HALF,
        protections={"max_drawdown": {"pct": 0.10}},
    )
    assert round_trips(series, result) == [(3, 6, "long")], "equity was 10.4 % under its peak on bar 4"


def _first_breach(equity: np.ndarray, pct: float) -> int:
    breached = np.flatnonzero(equity <= np.maximum.accumulate(equity) * (1 - pct))
    assert len(breached), "the scenario must reach the drawdown"
    return int(breached[0])


def test_max_drawdown_on_the_sample_no_entry_is_decided_after_the_first_breach(btc: Candles) -> None:
    strategy: dict[str, Any] = {"entry": {"name": "sma_cross"}, "sizing": {"name": "percent_equity", "pct": 95}}
    loose = backtest(btc, **strategy)
    result = backtest(btc, **strategy, protections={"max_drawdown": {"pct": 0.25}})
    breach = _first_breach(result.equity_values, 0.25)
    assert max(entries(btc, loose)) - 1 > breach
    late = [at(btc, e) for e in entries(btc, result) if e - 1 >= breach]
    assert late == [], f"equity first fell 25 % below its peak at {at(btc, breach)}; entries after: {late}"


def test_max_drawdown_with_lock_bars_halts_that_many_bars_then_resumes(btc: Candles) -> None:
    strategy: dict[str, Any] = {
        "entry": {"name": "sma_cross"},
        "exits": STOP,
        "sizing": {"name": "percent_equity", "pct": 95},
    }
    halted = backtest(btc, **strategy, protections={"max_drawdown": {"pct": 0.10}})
    locked = backtest(btc, **strategy, protections={"max_drawdown": {"pct": 0.10, "lock_bars": 200}})
    breach = _first_breach(locked.equity_values, 0.10)
    assert all(e - 1 < breach for e in entries(btc, halted)), "lock_bars 0: halted for the rest of the run"
    decided = [e - 1 for e in entries(btc, locked)]
    assert not [d for d in decided if breach <= d < breach + 200]
    assert [d for d in decided if d >= breach + 200], "entries resume after the lock"


def test_daily_loss_limit_halts_entries_for_the_rest_of_the_utc_day_and_resumes_the_next() -> None:
    # Bought 90 units at 100 on Monday 03:00; the 5 % stop fills on bar 4 (a 4.5 % loss of equity);
    # a new signal on bar 6 is refused (still Monday); the breakout on Tuesday 01:00 is taken.
    bars: list[Any] = [100, 99, 100, 100, Bar(100, low=90), 99, 100] + [100] * 17 + [99, 100, 100, 100]
    series = candles(bars)
    result = backtest(
        series,
        exits={"stop_loss": {"pct": 0.05}},
        sizing={"name": "percent_equity", "pct": 90},
        protections={"daily_loss_limit": {"pct": 0.03}},
    )
    assert at(series, 24).weekday() == 1 and at(series, 24).hour == 0
    assert round_trips(series, result) == [(3, 4, "long"), (26, None, "long")]


def test_daily_loss_limit_stays_halted_after_equity_recovers_within_the_day() -> None:
    series = _dip_and_recover(day_two=True)
    assert at(series, 25).date() > at(series, 6).date()
    result = backtest(
        series,
        entry=ANCHORED_BREAKOUT,
        exits={"take_profit": {"pct": 0.10}},
        sizing=HALF,
        protections={"daily_loss_limit": {"pct": 0.05}},
    )
    # bar 4 left equity 10.4 % under the previous day's close: no more entries that Monday
    assert round_trips(series, result) == [(3, 6, "long"), (26, None, "long")]


def test_daily_loss_limit_on_the_sample_no_entry_after_the_days_equity_fell_below_the_limit(btc: Candles) -> None:
    strategy: dict[str, Any] = {
        "entry": {"name": "sma_cross", "fast": 3, "slow": 8},
        "sizing": {"name": "percent_equity", "pct": 100},
    }
    loose = backtest(btc, **strategy)
    result = backtest(btc, **strategy, protections={"daily_loss_limit": {"pct": 0.015}})
    assert len(result.trades) < len(loose.trades)
    equity, days = result.equity_values, btc.timestamp // DAY_NS
    violations = []
    for entry in entries(btc, result):
        decided = entry - 1
        if days[decided] != days[entry]:
            continue  # decided at 23:00, filled on the next day
        first = int(np.searchsorted(days, days[decided]))
        start_value = equity[first - 1] if first > 0 else result.start_value
        if equity[first : decided + 1].min() <= start_value * (1 - 0.015):
            violations.append(at(btc, entry).isoformat())
    assert violations == [], f"entries after that day's equity fell 1.5 % below its start: {violations[:5]}"


def test_protections_never_close_open_trades() -> None:
    series = _stairs(20, wicks=set())
    guard = {"cooldown": {"bars": 5}, "max_drawdown": {"pct": 0.01}, "daily_loss_limit": {"pct": 0.01}}
    result = backtest(series, entry=BREAKOUT, protections=guard)
    assert round_trips(series, result) == [(3, None, "long")]


# === invariants over every preset and template ==================================================


def _preset_config(name: str) -> BotConfig:
    return BotConfig.model_validate({"strategy": {"preset": name}})


RUNS: dict[str, Callable[[], BotConfig]] = {
    **{f"preset:{name}": functools.partial(_preset_config, name) for name in PRESETS},
    **{f"template:{t.name}": functools.partial(load_config, t.path, environ={}) for t in list_templates()},
}


@functools.cache
def _run(name: str) -> tuple[BotConfig, list[Candles], BacktestResult]:
    config = RUNS[name]()
    data = load_candles(config)
    return config, data, run_backtest(config, candles=data)


def _key(trade: TradeRecord) -> tuple[Any, ...]:
    return (
        trade.symbol,
        trade.side,
        trade.entry_time,
        trade.exit_time,
        trade.size,
        trade.entry_price,
        trade.exit_price,
        trade.pnl,
        trade.exit_reason,
    )


def check_invariants(config: BotConfig, data: list[Candles], result: BacktestResult) -> None:
    by_symbol = {c.symbol: c for c in data}
    every = [*result.trades, *result.open_trades]
    assert result.trades, "a year of sample candles gives at least one trade"
    assert result.metrics["n_trades"] == len(result.trades)
    if config.strategy.direction == "long":
        assert {t.side for t in every} == {"long"}
    # Closed PnL (net of fees) plus open PnL (marked to the last close, entry fee not deducted)
    # is the change in portfolio value.
    open_entry_fees = sum(t.size * t.entry_price for t in result.open_trades) * config.broker.commission
    accounted = sum(t.pnl for t in every) - open_entry_fees
    assert result.final_value - result.start_value == pytest.approx(accounted, abs=1e-6 * result.start_value)
    for trade in every:
        series = by_symbol[trade.symbol]
        entry = bar_of(series, trade.entry_time)
        assert entry >= 1, "an entry is decided on an earlier bar"
        assert series.start <= trade.entry_time <= series.end
        assert trade.size > 0
        if config.broker.slippage == 0:
            assert trade.entry_price == pytest.approx(series.open[entry], rel=1e-12)
        if trade.exit_time is not None:
            assert trade.entry_time < trade.exit_time <= series.end
            exit_ = bar_of(series, trade.exit_time)
            assert series.low[exit_] - 1e-9 <= trade.exit_price <= series.high[exit_] + 1e-9
            assert trade.fees >= 0
    symbols_open = [t.symbol for t in result.open_trades]
    assert len(symbols_open) == len(set(symbols_open)), "at most one open position per symbol"


@pytest.mark.parametrize("name", list(RUNS))
def test_every_preset_and_template_keeps_the_backtest_invariants(name: str) -> None:
    check_invariants(*_run(name))


def _closed_before(trades: list[TradeRecord], moment_ns: int) -> list[tuple[Any, ...]]:
    return [_key(t) for t in trades if t.exit_time is not None and ns(t.exit_time) < moment_ns]


@pytest.mark.parametrize("name", list(RUNS))
def test_every_preset_and_template_has_no_lookahead(name: str) -> None:
    """Cutting the data at bar k leaves every trade that closed before bar k - 1 unchanged."""
    config, data, full = _run(name)
    for fraction in (0.35, 0.7):
        cut_ns = int(data[0].timestamp[int(len(data[0]) * fraction)])
        cut = [take(c, int(np.searchsorted(c.timestamp, cut_ns))) for c in data]
        before_ns = int(data[0].timestamp[int(len(data[0]) * fraction) - 1])
        short = run_backtest(config, candles=cut)
        expected = _closed_before(full.trades, before_ns)
        assert expected, "the cut leaves trades to compare"
        assert _closed_before(short.trades, before_ns) == expected


@pytest.fixture(scope="module")
def real_btc(shared_data: Path) -> Candles:
    return read_candles(shared_data / "binance_BTC-USDT_1h.csv", "BTC/USDT", "1h")


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_keeps_the_invariants_on_real_candles(real_btc: Candles, name: str) -> None:
    config = _preset_config(name)
    check_invariants(config, [real_btc], run_backtest(config, candles=[real_btc]))


# === several symbols in one account ==============================================================

MULTI: dict[str, Any] = {
    "entry": {"name": "sma_cross", "fast": 5, "slow": 20},
    "exits": {"stop_loss": {"pct": 0.02}, "take_profit": {"pct": 0.04}},
    "sizing": {"name": "fixed_stake", "stake": 100},
    "cash": 1_000_000,
}


def _per_symbol(result: BacktestResult, symbol: str) -> list[tuple[Any, ...]]:
    return [_key(t) for t in [*result.trades, *result.open_trades] if t.symbol == symbol]


def _slice(series: Candles, keep: np.ndarray | slice) -> Candles:
    return Candles(
        series.symbol,
        series.timeframe,
        series.timestamp[keep],
        series.open[keep],
        series.high[keep],
        series.low[keep],
        series.close[keep],
        series.volume[keep],
    )


def test_two_symbols_in_one_run_trade_as_they_would_alone(btc: Candles, eth: Candles) -> None:
    together = backtest([btc, eth], **MULTI)
    assert {t.symbol for t in together.trades} == {"BTC/USDT", "ETH/USDT"}
    for series in (btc, eth):
        alone = backtest(series, **MULTI)
        assert _per_symbol(together, series.symbol) == _per_symbol(alone, series.symbol)


def test_a_symbol_with_missing_candles_does_not_disturb_the_other(btc: Candles, eth: Candles) -> None:
    keep = np.ones(len(eth), dtype=bool)
    keep[1000:1010] = False
    keep[3000:3003] = False
    gappy = _slice(eth, keep)
    together = backtest([btc, gappy], **MULTI)
    assert _per_symbol(together, "BTC/USDT") == _per_symbol(backtest(btc, **MULTI), "BTC/USDT")
    assert _per_symbol(together, "ETH/USDT") == _per_symbol(backtest(gappy, **MULTI), "ETH/USDT")


def test_a_symbol_listed_later_does_not_silence_the_other_until_it_starts(btc: Candles, eth: Candles) -> None:
    late = _slice(eth, slice(500, None))
    together = backtest([btc, late], **MULTI)
    btc_alone = _per_symbol(backtest(btc, **MULTI), "BTC/USDT")
    assert any(ns(key[2]) < int(late.timestamp[0]) for key in btc_alone), "BTC trades before ETH starts"
    assert _per_symbol(together, "BTC/USDT") == btc_alone
    assert _per_symbol(together, "ETH/USDT") == _per_symbol(backtest(late, **MULTI), "ETH/USDT")
