"""The live broker through Backtrader against the fake Binance (real ccxt, real repository on SQLite):
a small scripted strategy places, partially fills, fills and cancels orders; stops are held by the
exchange where the market takes them and emulated where it does not; a lost response still gives
exactly one order."""

from __future__ import annotations

import threading
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import backtrader as bt
import numpy as np
import pytest
from fakes.binance import FakeBinance, Fault
from fakes.support import HOUR, KEYS, T0, fake_exchange_config, quick_retries

from tradeforge.brokers.ccxt import LookupPolicy, OrderGateway
from tradeforge.brokers.live import LiveBroker
from tradeforge.engine.journal import RepositoryJournal
from tradeforge.feeds.candles import Candles
from tradeforge.feeds.ccxt import LiveFeed
from tradeforge.persistence.database import make_engine
from tradeforge.persistence.migrate import upgrade
from tradeforge.persistence.models import OrderStatus
from tradeforge.persistence.repository import Repository
from tradeforge.resilience.exchange import ExchangeClient

WARMUP = 3  # back-filled candles; the last one is the first the script acts on
Action = Callable[["Scripted"], None]


class Scripted(bt.Strategy):
    """Runs `script[bar]` at each bar (1-based), records every order notification, and moves the fake's
    clock an hour after each decision so the next candle closes."""

    params = (("script", None), ("fake", None), ("bars", 0), ("stop", None))

    def __init__(self) -> None:
        self.seen: dict[str, list[str]] = {}
        self.orders: dict[str, bt.Order] = {}
        self.executed: dict[str, list[float]] = {}

    def name_of(self, order: bt.Order) -> str:
        return next(name for name, placed in self.orders.items() if placed.ref == order.ref)

    def notify_order(self, order: bt.Order) -> None:
        name = self.name_of(order)
        self.seen.setdefault(name, []).append(order.getstatusname())
        if order.status in (order.Partial, order.Completed):
            self.executed.setdefault(name, []).append(abs(order.executed.size))

    def next(self) -> None:
        bar = len(self)
        action = self.p.script.get(bar)
        if action is not None:
            action(self)
        if bar >= WARMUP:
            self.p.fake.advance(HOUR)
        if bar >= self.p.bars:
            self.p.stop.set()


@pytest.fixture
def repository(tmp_path: Path) -> Repository:
    engine = make_engine(f"sqlite:///{tmp_path}/bot.sqlite")
    upgrade(engine)
    return Repository.attach(engine, "live-bt", "hash", "live")


@pytest.fixture
def gateway(fake: FakeBinance, repository: Repository) -> OrderGateway:
    client = ExchangeClient.from_config(fake_exchange_config(fake, timeout_ms=1000), KEYS, sleep=lambda s: None)
    quick_retries(client, attempts=2)
    return OrderGateway(client, repository, lookup=LookupPolicy(wait=0.01, not_found=3, window=0.05))


def run(gateway: OrderGateway, fake: FakeBinance, script: dict[int, Action], bars: int) -> tuple[Scripted, LiveBroker]:
    stop = threading.Event()
    empty = np.empty(0)
    history = Candles("BTC/USDT", "1h", empty.astype(np.int64), empty, empty, empty, empty, empty)
    feed = LiveFeed(gateway.client, history, on_closed=lambda page: None, poll_interval=0.005, grace=0, stop=stop)
    feed.backfill(WARMUP)
    cerebro = bt.Cerebro(stdstats=False, preload=False, runonce=False)
    broker = LiveBroker(gateway, RepositoryJournal(gateway.repository), cash=10_000, timeframe_seconds=3600, stop=stop)
    cerebro.broker = broker
    cerebro.adddata(feed, name="BTC/USDT")
    cerebro.addstrategy(Scripted, script=script, fake=fake, bars=bars, stop=stop)
    timer = threading.Timer(60, stop.set)  # a broken script must not hang the suite
    timer.start()
    try:
        strategy = cerebro.run()[0]
    finally:
        timer.cancel()
    return strategy, broker


def place(name: str, **kwargs: Any) -> Action:
    def action(s: Scripted) -> None:
        side = kwargs.pop("side", "buy")
        s.orders[name] = (s.buy if side == "buy" else s.sell)(**kwargs)

    return action


def both(*actions: Action) -> Action:
    def action(s: Scripted) -> None:
        for each in actions:
            each(s)

    return action


def client_id(s: Scripted, name: str) -> str:
    return str(s.orders[name].info.client_order_id)


def note_completion(name: str, bars: dict[str, int]) -> Action:
    """Notes in `bars["completed"]` the bar at which the strategy first sees order `name` completed."""

    def action(s: Scripted) -> None:
        if s.orders[name].status == bt.Order.Completed:
            bars.setdefault("completed", len(s))

    return action


def test_place_partial_fill_fill_and_cancel_reach_the_strategy_from_the_database(
    fake: FakeBinance, gateway: OrderGateway, repository: Repository
):
    def fill(name: str, qty: str | None = None) -> Action:
        return lambda s: fake.fill(client_id(s, name), qty)

    script = {
        WARMUP: place("entry", size=0.01, role="entry"),
        WARMUP + 1: both(
            place("take", side="sell", size=0.01, exectype=bt.Order.Limit, price=90_000.0, role="exit"),
            place("bid", size=0.005, exectype=bt.Order.Limit, price=20_000.0, role="entry"),
            fill("take", "0.004"),
        ),
        WARMUP + 2: both(fill("take"), lambda s: s.cancel(s.orders["bid"])),
    }
    strategy, broker = run(gateway, fake, script, WARMUP + 3)

    assert strategy.seen == {
        "entry": ["Submitted", "Accepted", "Completed"],
        "take": ["Submitted", "Accepted", "Partial", "Completed"],
        "bid": ["Submitted", "Accepted", "Canceled"],
    }
    # The buy's fee was taken in BTC: the position is what the account holds, and the exit sells exactly that.
    assert strategy.executed["entry"] == [pytest.approx(0.00999)]
    assert strategy.executed["take"] == [pytest.approx(0.004), pytest.approx(0.00999)]
    assert [o.client_order_id for o in fake.orders] == [client_id(strategy, n) for n in ("entry", "take", "bid")]
    assert fake.order(client_id(strategy, "take")).qty == Decimal("0.00999")
    assert fake.order(client_id(strategy, "bid")).status == "CANCELED"
    assert {o.client_order_id: o.status for o in repository.orders()} == {
        client_id(strategy, "entry"): OrderStatus.FILLED,
        client_id(strategy, "take"): OrderStatus.FILLED,
        client_id(strategy, "bid"): OrderStatus.CANCELED,
    }
    fills = repository.fills()
    assert len(fills) == 3
    bought, *sold = fills
    expected = 10_000 - float(bought.amount * bought.price) + sum(float(f.amount * f.price - f.fee) for f in sold)
    assert broker.getcash() == pytest.approx(expected)
    assert broker.getposition(strategy.data).size == pytest.approx(0.0, abs=1e-12)


def test_a_fill_is_delivered_at_the_first_candle_closing_after_it(
    fake: FakeBinance, gateway: OrderGateway, repository: Repository
):
    bars: dict[str, int] = {}
    note = note_completion("entry", bars)
    script = {WARMUP: place("entry", size=0.01, role="entry")}
    script |= {bar: note for bar in range(WARMUP + 1, WARMUP + 4)}
    run(gateway, fake, script, WARMUP + 3)
    # Sent after the candle closed, filled at the market clock then: the next candle delivers it.
    assert bars == {"completed": WARMUP + 1}
    assert repository.fills()[0].time.timestamp() * 1000 == T0


def test_a_fill_the_trade_list_does_not_show_yet_is_waited_for_before_the_strategy_decides(
    fake: FakeBinance, gateway: OrderGateway, repository: Repository
):
    """Binance says FILLED, but its trade list lags: the order is not final, and the next candle waits
    until the fill can be recorded, so the strategy never trades on a position it lacks."""
    fake.inject("GET", "/api/v3/myTrades", Fault(status=200, body=[]), times=2)
    bars: dict[str, int] = {}
    note = note_completion("entry", bars)
    script = {WARMUP: place("entry", size=0.01, role="entry")}
    script |= {bar: note for bar in range(WARMUP + 1, WARMUP + 3)}
    strategy, broker = run(gateway, fake, script, WARMUP + 2)
    assert bars == {"completed": WARMUP + 1}
    assert strategy.seen["entry"] == ["Submitted", "Accepted", "Completed"]
    [bought] = repository.fills()
    assert repository.order(client_id(strategy, "entry")).status == OrderStatus.FILLED
    assert broker.getposition(strategy.data).size == pytest.approx(float(bought.amount) - 0.00001)


def protected_entry(stop: float) -> dict[int, Action]:
    return {
        WARMUP: place("entry", size=0.01, role="entry"),
        WARMUP + 1: place("stop", side="sell", size=0.00999, exectype=bt.Order.Stop, price=stop, role="protective"),
    }


def crossing_stop(fake: FakeBinance) -> float:
    """A stop level that one of the ten candles after the stop is placed crosses (the fake matches a
    resting order against the candles that open after it)."""
    at = {row[0]: row for row in fake.series[("BTCUSDT", "1h")].rows}
    return min(float(at[T0 + i * HOUR][3]) for i in range(2, 12)) + 1.0


def test_a_stop_on_a_market_that_takes_stops_rests_on_the_exchange(
    fake: FakeBinance, gateway: OrderGateway, repository: Repository
):
    level = crossing_stop(fake)
    strategy, broker = run(gateway, fake, protected_entry(level), WARMUP + 13)
    stop = fake.order(client_id(strategy, "stop"))
    assert stop.type == "STOP_LOSS" and stop.status == "FILLED"
    assert strategy.seen["stop"][-1] == "Completed"
    assert [o.type for o in fake.orders] == ["MARKET", "STOP_LOSS"]
    assert broker.getposition(strategy.data).size == pytest.approx(0.0, abs=1e-12)


def test_a_stop_on_a_market_without_stop_orders_is_emulated_with_a_market_order(
    fake: FakeBinance, gateway: OrderGateway, repository: Repository
):
    fake.markets["BTCUSDT"].order_types = ("LIMIT", "MARKET")
    level = crossing_stop(fake)
    strategy, broker = run(gateway, fake, protected_entry(level), WARMUP + 13)
    assert [o.type for o in fake.orders] == ["MARKET", "MARKET"]  # no stop ever reached the exchange
    assert strategy.seen["stop"][-1] == "Completed"
    assert strategy.orders["stop"].info.emulated == "stop"
    stop = fake.order(client_id(strategy, "stop"))
    assert stop.side == "SELL" and stop.status == "FILLED"
    assert broker.getposition(strategy.data).size == pytest.approx(0.0, abs=1e-12)


def test_a_response_lost_after_acceptance_gives_exactly_one_order_and_one_fill(
    fake: FakeBinance, gateway: OrderGateway, repository: Repository
):
    fake.inject("POST", "/api/v3/order", Fault.lost_response(status=502))
    strategy, _ = run(gateway, fake, {WARMUP: place("entry", size=0.01, role="entry")}, WARMUP + 2)
    assert len(fake.calls("POST", "/api/v3/order")) == 1 and len(fake.orders) == 1
    assert strategy.seen["entry"] == ["Submitted", "Accepted", "Completed"]
    assert len(repository.fills()) == 1


def test_an_order_below_the_minimum_is_refused_before_anything_is_written(
    fake: FakeBinance, gateway: OrderGateway, repository: Repository
):
    strategy, _ = run(gateway, fake, {WARMUP: place("dust", size=0.000001, role="entry")}, WARMUP + 1)
    assert strategy.seen["dust"] == ["Submitted", "Rejected"]
    assert "below the exchange's minimum" in strategy.orders["dust"].info.refused
    assert repository.orders() == [] and fake.calls("POST", "/api/v3/order") == []


def test_an_oco_take_profit_emulated_beside_an_exchange_stop_cancels_the_stop_before_it_sells(
    fake: FakeBinance, gateway: OrderGateway, repository: Repository
):
    at = {row[0]: row for row in fake.series[("BTCUSDT", "1h")].rows}
    target = max(float(at[T0 + i * HOUR][2]) for i in range(2, 12)) - 1.0

    def protect(s: Scripted) -> None:
        stop = s.sell(size=0.00999, exectype=bt.Order.Stop, price=30_000.0, role="protective")
        take = s.sell(size=0.00999, exectype=bt.Order.Limit, price=target, oco=stop, role="protective")
        s.orders |= {"stop": stop, "take": take}

    script = {WARMUP: place("entry", size=0.01, role="entry"), WARMUP + 1: protect}
    strategy, broker = run(gateway, fake, script, WARMUP + 13)
    # Spot: one balance backs one resting sell, so the exchange holds the stop and the bot watches the target.
    assert strategy.orders["take"].info.emulated == "limit"
    assert fake.order(client_id(strategy, "stop")).type == "STOP_LOSS"
    assert fake.order(client_id(strategy, "stop")).status == "CANCELED"
    assert fake.order(client_id(strategy, "take")).type == "MARKET"
    assert strategy.seen["stop"] == ["Submitted", "Accepted", "Canceled"]
    assert strategy.seen["take"] == ["Submitted", "Accepted", "Completed"]
    assert broker.getposition(strategy.data).size == pytest.approx(0.0, abs=1e-12)


def test_a_trailing_stop_is_emulated_and_follows_the_close_up(
    fake: FakeBinance, gateway: OrderGateway, repository: Repository
):
    def trail(s: Scripted) -> None:
        s.orders["trail"] = s.sell(size=0.00999, exectype=bt.Order.StopTrail, trailpercent=0.002, role="protective")

    script = {WARMUP: place("entry", size=0.01, role="entry"), WARMUP + 1: trail}
    strategy, _ = run(gateway, fake, script, WARMUP + 30)
    order = strategy.orders["trail"]
    assert order.info.emulated == "trailing" and strategy.seen["trail"][-1] == "Completed"
    assert [o.type for o in fake.orders] == ["MARKET", "MARKET"]
    first_close = float(strategy.data.close.array[WARMUP])  # the close it was placed on
    assert order.info.triggered_at > first_close * 0.998  # it had moved up before it was hit
