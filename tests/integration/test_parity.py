"""The core promise: for the same data, parameters, commission and sizing, a tradeforge backtest
produces exactly the trades and final value of a plain hand-written Backtrader strategy (default
Cerebro with its observers, `PandasData`, `PercentSizer`), on real candles.

Also: the simulated broker tradeforge uses behaves exactly like `bt.brokers.BackBroker`, and the
NumPy feed hands Backtrader exactly the lines `PandasData` would.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import backtrader as bt
import numpy as np
import pandas as pd
import pytest

from tradeforge.brokers.simulated import SimulatedBroker
from tradeforge.config.schema import BotConfig
from tradeforge.engine.backtest import build_cerebro, run_backtest
from tradeforge.feeds.arrays import ArrayFeed, to_bt_dates
from tradeforge.feeds.candles import Candles, read_candles, to_datetime, to_ns
from tradeforge.strategies.base import TradeRecord
from tradeforge.strategies.registry import Registry

CASH = 10_000.0
COMMISSION = 0.001
PERCENTS = 95.0
COLUMNS = ("open", "high", "low", "close", "volume")

# name -> (file, symbol, timeframe, rows used (None: all))
DATASETS = {
    "btc-1h": ("binance_BTC-USDT_1h.csv", "BTC/USDT", "1h", None),
    "btc-5m": ("binance_BTC-USDT_5m.csv", "BTC/USDT", "5m", 50_000),
    "orcl-1d": ("yahoo_ORCL_1d.csv", "ORCL", "1d", None),
}

Trade = tuple[dt.datetime, dt.datetime, float, float]  # entry time, exit time, pnl net of commission, size


@dataclass(frozen=True)
class Dataset:
    candles: Candles  # what tradeforge reads
    frame: pd.DataFrame  # what a plain Backtrader user would feed PandasData: naive-UTC index


@pytest.fixture(scope="module")
def dataset(shared_data: Path) -> Callable[[str], Dataset]:
    @functools.cache
    def load(name: str) -> Dataset:
        file, symbol, timeframe, rows = DATASETS[name]
        candles = read_candles(shared_data / file, symbol, timeframe)
        if rows is not None:
            candles = candles.between(None, to_datetime(candles.timestamp[rows - 1]))
        frame = pd.read_csv(shared_data / file, nrows=rows)
        stamps = pd.to_datetime(frame.pop("timestamp"), utc=True, format="ISO8601")
        frame.index = pd.DatetimeIndex(stamps).tz_convert(None)
        assert len(frame) == len(candles) == (rows or len(frame))
        for column in COLUMNS:  # both sides start from the same numbers
            np.testing.assert_array_equal(frame[column].to_numpy(), getattr(candles, column))
        return Dataset(candles, frame)

    return load


# --- the plain side -------------------------------------------------------------------------------


def _utc(number: float) -> dt.datetime:
    return bt.num2date(number).replace(tzinfo=dt.UTC)


class PlainRecorder(bt.Strategy):
    """Records closed round trips exactly as a Backtrader user would, from notify_trade."""

    def __init__(self) -> None:
        self.trades: list[Trade] = []
        self._opening_size: dict[int, float] = {}

    def notify_trade(self, trade: bt.Trade) -> None:
        if trade.justopened:
            self._opening_size[trade.ref] = abs(trade.size)
        if trade.isclosed:
            size = self._opening_size.pop(trade.ref)
            self.trades.append((_utc(trade.dtopen), _utc(trade.dtclose), trade.pnlcomm, size))


class PlainSmaCross(PlainRecorder):
    params = (("fast", 10), ("slow", 30))

    def __init__(self) -> None:
        super().__init__()
        self.cross = bt.ind.CrossOver(bt.ind.SMA(period=self.p.fast), bt.ind.SMA(period=self.p.slow))

    def next(self) -> None:
        if not self.position:
            if self.cross[0] > 0:
                self.buy()
        elif self.cross[0] < 0:
            self.close()


class PlainDonchian(PlainRecorder):
    params = (("period", 20), ("exit_period", 10))

    def __init__(self) -> None:
        super().__init__()
        self.upper = bt.ind.Highest(self.data.high, period=self.p.period)(-1)
        self.exit_low = bt.ind.Lowest(self.data.low, period=self.p.exit_period)(-1)

    def next(self) -> None:
        if not self.position:
            if self.data.close[0] > self.upper[0]:
                self.buy()
        elif self.data.close[0] < self.exit_low[0]:
            self.close()


class PlainSmaCrossStopLoss(PlainSmaCross):
    """A stop `pct` below the entry fill, submitted in the next() of the fill's bar (so active from
    the bar after); the crossover exit cancels it and closes at the next open."""

    params = (("pct", 0.02),)

    def __init__(self) -> None:
        super().__init__()
        self.entry_order: bt.Order | None = None
        self.stop_order: bt.Order | None = None
        self.unprotected = False
        self.entry_fill = 0.0

    def notify_order(self, order: bt.Order) -> None:
        # Backtrader notifies clones of orders: match by ref, not identity.
        entry = self.entry_order
        if order.status == order.Completed and entry is not None and order.ref == entry.ref:
            self.entry_order = None
            self.unprotected = True
            self.entry_fill = order.executed.price

    def next(self) -> None:
        if not self.position:
            if self.cross[0] > 0:
                self.entry_order = self.buy()
            return
        if self.cross[0] < 0:
            if self.stop_order is not None and self.stop_order.alive():
                self.cancel(self.stop_order)
            self.unprotected = False
            self.close()
        elif self.unprotected:
            self.unprotected = False
            self.stop_order = self.sell(
                exectype=bt.Order.Stop, price=self.entry_fill * (1 - self.p.pct), size=self.position.size
            )


class PlainSmaCrossReverse(PlainSmaCross):
    """Stop and reverse: a down-cross closes a long and opens a short on the same bar, and vice versa.
    With `stake` set, every entry spends min(stake, cash) / close (tradeforge's fixed_stake);
    otherwise the cerebro's sizer decides."""

    params = (("stake", None),)

    def _size(self) -> float | None:
        if self.p.stake is None:
            return None
        return min(self.p.stake, self.broker.getcash()) / self.data.close[0]

    def next(self) -> None:
        held = self.position.size
        if self.cross[0] > 0 and held <= 0:
            if held < 0:
                self.close()
            self.buy(size=self._size())
        elif self.cross[0] < 0 and held >= 0:
            if held > 0:
                self.close()
            self.sell(size=self._size())


def run_plain(frame: pd.DataFrame, strategy: type[bt.Strategy], **params: Any) -> tuple[float, list[Trade]]:
    cerebro = bt.Cerebro()
    cerebro.adddata(bt.feeds.PandasData(dataname=frame))
    cerebro.broker.setcash(CASH)
    cerebro.broker.setcommission(commission=COMMISSION)
    cerebro.addsizer(bt.sizers.PercentSizer, percents=PERCENTS)
    cerebro.addstrategy(strategy, **params)
    plain = cerebro.run()[0]
    return cerebro.broker.getvalue(), plain.trades


# --- the tradeforge side --------------------------------------------------------------------------


def config_for(strategy: dict[str, Any]) -> BotConfig:
    return BotConfig(mode="backtest", broker={"cash": CASH, "commission": COMMISSION}, strategy=strategy)


def run_tradeforge(candles: Candles, strategy: dict[str, Any]) -> tuple[float, list[Trade], list[TradeRecord]]:
    result = run_backtest(config_for(strategy), candles=[candles])
    trades = [(t.entry_time, t.exit_time, t.pnl, t.size) for t in result.trades]
    return result.final_value, trades, result.trades


def assert_same_backtest(plain: tuple[float, list[Trade]], ours: tuple[float, list[Trade], Any]) -> None:
    plain_value, plain_trades = plain
    value, trades, _ = ours
    assert len(plain_trades) > 10, "too few trades for a meaningful comparison"
    first_difference = next((i for i, (a, b) in enumerate(zip(plain_trades, trades, strict=False)) if a != b), None)
    assert first_difference is None, (
        f"trade {first_difference} differs: plain {plain_trades[first_difference]} "
        f"!= tradeforge {trades[first_difference]}"
    )
    assert len(trades) == len(plain_trades)
    assert trades == plain_trades
    assert value == plain_value


# --- parity cases ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("fast", "slow"), [(10, 30), (20, 50)], ids=["10-30", "20-50"])
@pytest.mark.parametrize("data", list(DATASETS))
def test_sma_cross_preset_matches_plain_backtrader(
    dataset: Callable[[str], Dataset], data: str, fast: int, slow: int
) -> None:
    d = dataset(data)
    plain = run_plain(d.frame, PlainSmaCross, fast=fast, slow=slow)
    ours = run_tradeforge(
        d.candles, {"preset": "sma_cross", "params": {"sma_cross_fast": fast, "sma_cross_slow": slow}}
    )
    assert_same_backtest(plain, ours)


@pytest.mark.parametrize(
    ("data", "period", "exit_period"), [("btc-1h", 20, 10), ("btc-1h", 55, 20), ("orcl-1d", 20, 10)]
)
def test_donchian_breakout_with_percent_equity_matches_plain_backtrader(
    dataset: Callable[[str], Dataset], data: str, period: int, exit_period: int
) -> None:
    d = dataset(data)
    plain = run_plain(d.frame, PlainDonchian, period=period, exit_period=exit_period)
    ours = run_tradeforge(
        d.candles,
        {
            "entry": {"name": "donchian_breakout", "period": period, "exit_period": exit_period},
            "sizing": {"name": "percent_equity", "pct": PERCENTS},
        },
    )
    assert_same_backtest(plain, ours)


@pytest.mark.parametrize(("data", "pct"), [("btc-1h", 0.02), ("btc-1h", 0.01), ("orcl-1d", 0.02)])
def test_sma_cross_with_stop_loss_matches_plain_backtrader(
    dataset: Callable[[str], Dataset], data: str, pct: float
) -> None:
    d = dataset(data)
    plain = run_plain(d.frame, PlainSmaCrossStopLoss, pct=pct)
    ours = run_tradeforge(
        d.candles,
        {
            "entry": {"name": "sma_cross", "fast": 10, "slow": 30},
            "exits": {"stop_loss": {"pct": pct}},
            "sizing": {"name": "percent_equity", "pct": PERCENTS},
        },
    )
    assert_same_backtest(plain, ours)
    reasons = {t.exit_reason for t in ours[2]}
    assert reasons == {"signal", "stop_loss"}, "both exits must actually occur for this case to mean anything"


REVERSE_WITH_PERCENT_SIZER_SKIP = (
    "bt.sizers.PercentSizer cannot express tradeforge's percent_equity on a reversal: with a position "
    "open it returns that position's size, while percent_equity sizes the new side from "
    "the cash the pending close releases; stop-and-reverse order flow is covered with "
    "fixed_stake instead"
)


@pytest.mark.parametrize(
    "sizing",
    [
        pytest.param("percent_equity", marks=pytest.mark.skip(reason=REVERSE_WITH_PERCENT_SIZER_SKIP)),
        "fixed_stake",
    ],
)
def test_sma_cross_in_both_directions_matches_plain_stop_and_reverse(
    dataset: Callable[[str], Dataset], sizing: str
) -> None:
    d = dataset("btc-1h")
    stake = 2_000.0
    plain = run_plain(d.frame, PlainSmaCrossReverse, stake=stake if sizing == "fixed_stake" else None)
    ours = run_tradeforge(
        d.candles,
        {
            "direction": "both",
            "entry": {"name": "sma_cross", "fast": 10, "slow": 30},
            "sizing": {"name": sizing, "stake": stake} if sizing == "fixed_stake" else {"name": sizing},
        },
    )
    assert_same_backtest(plain, ours)
    sides = [t.side for t in ours[2]]
    assert sides.count("short") > 10 and sides.count("long") > 10


def test_stop_and_reverse_commits_the_same_share_of_equity_to_either_side(
    dataset: Callable[[str], Dataset],
) -> None:
    """percent_equity promises `pct` percent of equity per trade. A reversal decides the new side's
    size while the old position is still open; a short opened by reversing a long must still be
    ~95 % of equity, like every long (and like a short opened from flat)."""
    d = dataset("btc-1h")
    result = run_backtest(config_for({"preset": "sma_cross", "direction": "both"}), candles=[d.candles])
    shares = {"long": [], "short": []}
    for trade in result.trades:
        decided = int(np.searchsorted(result.equity_times, to_ns(trade.entry_time))) - 1  # the signal bar
        shares[trade.side].append(trade.size * trade.entry_price / result.equity_values[decided])
    for side, values in shares.items():
        assert len(values) > 10
        low, high = min(values), max(values)
        assert low >= 0.9 and high <= 1.0, f"{side} entries commit {low:.1%}..{high:.1%} of equity, expected ~95%"


# --- the simulated broker is Backtrader's BackBroker ------------------------------------------------


PROTECTED_BOTH_WAYS = {
    "direction": "both",
    "entry": {"name": "sma_cross", "fast": 10, "slow": 30},
    "exits": {"stop_loss": {"pct": 0.02}, "take_profit": {"pct": 0.05}, "trailing_stop": {"pct": 0.015}},
    "sizing": {"name": "percent_equity", "pct": PERCENTS},
}


def run_with_broker(
    candles: Candles, broker: type[bt.brokers.BackBroker] | None, interest: float | None = None
) -> tuple[float, list[TradeRecord], Any]:
    """build_cerebro's Cerebro, optionally with its broker swapped (cash and commission re-applied)."""
    config = config_for(PROTECTED_BOTH_WAYS)
    cerebro = build_cerebro(config, [candles], Registry.default().resolve(config.strategy))
    if broker is not None:
        cerebro.broker = broker()
        cerebro.broker.setcash(config.broker.cash)
    extra = {} if interest is None else {"interest": interest}
    cerebro.broker.setcommission(commission=config.broker.commission, **extra)
    strategy = cerebro.run()[0]
    return cerebro.broker.getvalue(), strategy.closed_trades, cerebro.broker


def test_simulated_broker_matches_backbroker_with_resting_exits_in_both_directions(
    dataset: Callable[[str], Dataset],
) -> None:
    candles = dataset("btc-1h").candles
    value, trades, broker = run_with_broker(candles, None)
    assert type(broker) is SimulatedBroker
    reference_value, reference_trades, _ = run_with_broker(candles, bt.brokers.BackBroker)
    assert {t.exit_reason for t in trades} == {"signal", "stop_loss", "take_profit", "trailing_stop"}
    assert {t.side for t in trades} == {"long", "short"}
    assert trades == reference_trades
    assert value == reference_value


def test_simulated_broker_steps_aside_for_interest_bearing_commission(
    dataset: Callable[[str], Dataset],
) -> None:
    candles = dataset("orcl-1d").candles  # interest accrues per calendar day: daily bars, 20 years
    value, trades, broker = run_with_broker(candles, None, interest=0.05)
    assert type(broker) is SimulatedBroker
    reference_value, reference_trades, _ = run_with_broker(candles, bt.brokers.BackBroker, interest=0.05)
    assert trades == reference_trades
    assert value == reference_value
    without_interest, _, _ = run_with_broker(candles, bt.brokers.BackBroker)
    assert value != without_interest, "interest on shorts must change the result, or this case proves nothing"


# --- the NumPy feed is PandasData -------------------------------------------------------------------


class _GrabLines(bt.Strategy):
    def stop(self) -> None:
        lines = self.data.lines
        self.lines_seen = {n: np.array(getattr(lines, n).array) for n in ("datetime", *COLUMNS)}


def preloaded_lines(feed: bt.feeds.DataBase) -> dict[str, np.ndarray]:
    cerebro = bt.Cerebro()
    cerebro.adddata(feed)
    cerebro.addstrategy(_GrabLines)
    return cerebro.run()[0].lines_seen


@pytest.mark.parametrize("data", ["btc-1h", "orcl-1d"])  # 5m: PandasData alone would take ~5 s more
def test_array_feed_gives_backtrader_the_same_lines_as_pandas_data(
    dataset: Callable[[str], Dataset], data: str
) -> None:
    d = dataset(data)
    ours = preloaded_lines(ArrayFeed(d.candles))
    reference = preloaded_lines(bt.feeds.PandasData(dataname=d.frame))
    for name, line in reference.items():
        assert len(line) == len(d.candles), name
        np.testing.assert_array_equal(ours[name], line, err_msg=name, strict=True)


@pytest.mark.parametrize("data", list(DATASETS))
def test_to_bt_dates_equals_bt_date2num_for_every_timestamp(dataset: Callable[[str], Dataset], data: str) -> None:
    d = dataset(data)
    expected = np.array([bt.date2num(moment) for moment in d.frame.index.to_pydatetime()])
    np.testing.assert_array_equal(to_bt_dates(d.candles.timestamp), expected, strict=True)
