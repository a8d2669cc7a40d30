"""The live Backtrader broker over IB (IbkrVenue, IbkrFeed and the fake TWS with real ib_async types, the
repository on SQLite and PostgreSQL): a scripted strategy buys, protects the position with a stop and a
target that rest at IB in one OCA group, and the stop's fill reaches it with IB's commissions charged in
cash, never in shares."""

from __future__ import annotations

import threading
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import backtrader as bt
import numpy as np
import pytest
from fakes.ib import FakeIB

from tradeforge.brokers.ibkr import IbkrVenue
from tradeforge.brokers.live import LiveBroker
from tradeforge.engine.journal import RepositoryJournal
from tradeforge.feeds.candles import Candles
from tradeforge.feeds.ibkr import IbkrFeed
from tradeforge.persistence.models import OrderStatus
from tradeforge.resilience.errors import Fatal

WARMUP = 25  # back-filled bars; the last one is the first the script acts on
CAPITAL = 50_000.0
Action = Callable[["Scripted"], None]


class Scripted(bt.Strategy):
    """Runs `script[bar]` at each bar (1-based) and records every order notification; stops once the
    order named `until` is done or after `bars` bars."""

    params = (("script", None), ("bars", 0), ("until", ""), ("stop", None))

    def __init__(self) -> None:
        self.seen: dict[str, list[str]] = {}
        self.orders: dict[str, bt.Order] = {}
        self.executed: dict[str, list[float]] = {}
        self.completed_at: dict[str, int] = {}  # the bar at which each order completed

    def notify_order(self, order: bt.Order) -> None:
        name = next(name for name, placed in self.orders.items() if placed.ref == order.ref)
        self.seen.setdefault(name, []).append(order.getstatusname())
        if order.status in (order.Partial, order.Completed):
            self.executed.setdefault(name, []).append(abs(order.executed.size))
        if order.status == order.Completed:
            self.completed_at[name] = len(self)

    def next(self) -> None:
        action = self.p.script.get(len(self))
        if action is not None:
            action(self)
        done = self.p.until in self.orders and not self.orders[self.p.until].alive()
        if done or len(self) >= self.p.bars:
            self.p.stop.set()


def run(
    fake: FakeIB, venue: IbkrVenue, script: dict[int, Action], until: str, bars: int
) -> tuple[Scripted, LiveBroker]:
    stop = threading.Event()
    empty = np.empty(0)
    history = Candles("AAPL", "1m", empty.astype(np.int64), empty, empty, empty, empty, empty)
    feed = IbkrFeed(
        venue.connection,
        venue.contracts["AAPL"],
        history,
        what_to_show="TRADES",
        on_closed=lambda page: None,
        poll_interval=1.0,
        grace=2.0,
        clock=lambda: fake.now,
        stop=stop,
    )
    feed.backfill(WARMUP)
    cerebro = bt.Cerebro(stdstats=False, preload=False, runonce=False)
    broker = LiveBroker(venue, RepositoryJournal(venue.repository), cash=CAPITAL, timeframe_seconds=60, stop=stop)
    cerebro.broker = broker
    cerebro.adddata(feed, name="AAPL")
    cerebro.addstrategy(Scripted, script=script, bars=bars, until=until, stop=stop)
    strategy = cerebro.run()[0]
    return strategy, broker


def place(name: str, **kwargs: Any) -> Action:
    def action(s: Scripted) -> None:
        side = kwargs.pop("side", "buy")
        oco = kwargs.pop("oco", None)
        s.orders[name] = (s.buy if side == "buy" else s.sell)(oco=s.orders[oco] if oco else None, **kwargs)

    return action


def crossing_level(fake: FakeIB, within: int = 40) -> float:
    """A sell-stop level that the market reaches within `within` bars from now (the fake trades at its path)."""
    now = int((fake.now - fake.origin).total_seconds() // fake.bar_seconds)
    return min(bar[3] for bar in fake.path[now + 2 : now + within]) + 0.01


def protect(s: Scripted, fake: FakeIB) -> None:
    place("stop", side="sell", size=300, exectype=bt.Order.Stop, price=crossing_level(fake), role="protective")(s)
    target = s.data.close[0] * 1.5  # never reached: IB cancels it when the stop fills
    place("target", side="sell", size=300, exectype=bt.Order.Limit, price=target, role="protective", oco="stop")(s)


def test_a_stop_and_target_rest_at_ib_in_one_oca_group_and_commissions_are_charged_in_cash(
    fake: FakeIB, venue: IbkrVenue
):
    ib_cash = fake.cash
    script: dict[int, Action] = {
        WARMUP: place("entry", size=300, role="entry"),
        WARMUP + 1: lambda s: protect(s, fake),
    }
    strategy, broker = run(fake, venue, script, until="stop", bars=WARMUP + 60)

    assert strategy.seen == {
        "entry": ["Submitted", "Accepted", "Completed"],
        "stop": ["Submitted", "Accepted", "Completed"],
        "target": ["Submitted", "Accepted", "Canceled"],
    }
    assert strategy.executed["entry"] == [300.0]  # the commission took no shares
    entry, stop, target = fake.placed
    assert (entry.orderType, stop.orderType, target.orderType) == ("MKT", "STP", "LMT")
    assert stop.ocaGroup == target.ocaGroup == stop.orderRef.rsplit("-", 1)[0] and not entry.ocaGroup
    statuses = {o.client_order_id: o.status for o in venue.repository.orders()}
    assert statuses[target.orderRef] == OrderStatus.CANCELED and statuses[stop.orderRef] == OrderStatus.FILLED
    bought, sold = venue.repository.fills()
    assert (bought.fee, sold.fee, bought.fee_currency) == (Decimal("1.5"), Decimal("1.5"), "USD")
    expected = CAPITAL - float(bought.amount * bought.price + bought.fee) + float(sold.amount * sold.price - sold.fee)
    assert broker.getcash() == pytest.approx(expected)
    assert broker.getcash() - CAPITAL == pytest.approx(fake.cash - ib_cash)  # the same money IB moved
    assert broker.getposition(strategy.data).size == 0


def test_a_commission_in_another_currency_is_not_taken_from_this_cash(fake: FakeIB, venue: IbkrVenue):
    fake.commission_currency = "EUR"  # e.g. a European account paying its broker in EUR
    strategy, broker = run(
        fake, venue, {WARMUP: place("entry", size=300, role="entry")}, until="entry", bars=WARMUP + 5
    )
    [bought] = venue.repository.fills()
    assert bought.fee_currency == "EUR" and strategy.executed["entry"] == [300.0]
    assert broker.getcash() == pytest.approx(CAPITAL - float(bought.amount * bought.price))


@pytest.mark.parametrize("delay", [None, 5.0])
def test_a_late_commission_report_is_waited_for_so_the_fill_reaches_the_strategy_at_the_same_candle(
    fake: FakeIB, venue: IbkrVenue, delay: float | None
):
    fake.commission_delay = delay  # seconds after the execution: the candle's sync waits for it
    strategy, broker = run(
        fake, venue, {WARMUP: place("entry", size=300, role="entry")}, until="entry", bars=WARMUP + 5
    )
    assert strategy.completed_at == {"entry": WARMUP + 1}  # sent after bar WARMUP closed, filled before the next
    [bought] = venue.repository.fills()
    assert bought.fee == Decimal("1.5")
    assert broker.getcash() == pytest.approx(CAPITAL - float(bought.amount * bought.price + bought.fee))


def test_a_fill_whose_commission_report_outlasts_the_cancel_reaches_the_strategy_before_the_cancel(
    fake: FakeIB, venue: IbkrVenue
):
    fake.partial_fill, fake.commission_delay = 100, 30.0  # the report comes long after ibkr.order_timeout (5 s)

    def buy_then_cancel(s: Scripted) -> None:
        place("entry", size=300, exectype=bt.Order.Limit, price=s.data.close[0] + 5, role="entry")(s)
        s.cancel(s.orders["entry"])  # 100 executed at IB by now; its commission report is on its way

    strategy, broker = run(fake, venue, {WARMUP: buy_then_cancel}, until="", bars=WARMUP + 4)
    assert strategy.seen["entry"] == ["Submitted", "Accepted", "Partial", "Canceled"]  # not canceled at once
    assert strategy.executed["entry"] == [100.0]
    [bought] = venue.repository.fills()
    assert venue.repository.order(bought_id(venue)).status == OrderStatus.CANCELED
    assert broker.getposition(strategy.data).size == 100
    assert broker.getcash() == pytest.approx(CAPITAL - float(bought.amount * bought.price + bought.fee))


def bought_id(venue: IbkrVenue) -> str:
    [order] = venue.repository.orders()
    return order.client_order_id


def test_a_fill_whose_commission_report_is_late_reaches_the_strategy_before_it_decides_again(
    fake: FakeIB, venue: IbkrVenue
):
    """The target fills at IB at once, but its commission report comes long after ibkr.order_timeout:
    the next candle waits for it, so the strategy's exit sees the position already closed and sells
    nothing twice."""

    def protect_with_a_marketable_target(s: Scripted) -> None:
        fake.commission_delay = 80.0  # after the next bar closed (60 s) and its sync and cancel waited (5 s each)
        place("stop", side="sell", size=300, exectype=bt.Order.Stop, price=s.data.close[0] * 0.5, role="protective")(s)
        target = s.data.close[0] * 0.9  # below the market: IB fills it at once
        place("target", side="sell", size=300, exectype=bt.Order.Limit, price=target, role="protective", oco="stop")(s)

    def exit_whatever_is_held(s: Scripted) -> None:
        s.cancel(s.orders["stop"])
        s.cancel(s.orders["target"])
        exit_order = s.close()  # sells only what the strategy still holds
        if exit_order is not None:
            s.orders["exit"] = exit_order

    script = {
        WARMUP: place("entry", size=300, role="entry"),
        WARMUP + 1: protect_with_a_marketable_target,
        WARMUP + 2: exit_whatever_is_held,
    }
    strategy, broker = run(fake, venue, script, until="", bars=WARMUP + 5)
    assert len(fake.placed) == 3  # entry, stop, target: no second sell
    assert sum(p.position for p in fake.positions()) == 0
    assert strategy.completed_at["target"] == WARMUP + 2  # delivered before the exit decided
    assert [o.orderRef for o in fake.placed] == [o.client_order_id for o in venue.repository.orders()]
    assert broker.getposition(strategy.data).size == 0


def test_a_target_filled_while_ib_was_down_across_midnight_stops_the_running_bot_naming_the_order(
    fake: FakeIB, venue: IbkrVenue
):
    """IB's execution list started over while the connection was down, so the target's fill cannot be
    recorded: the bot stops (it would otherwise re-protect shares it no longer holds)."""

    def protect_then_lose_ib(s: Scripted) -> None:
        target = s.data.close[0] + 1  # the market rises through it about 2 minutes later
        place("target", side="sell", size=300, exectype=bt.Order.Limit, price=target, role="protective")(s)
        fake.restart(down_for=300, new_day=True)

    script = {WARMUP: place("entry", size=300, role="entry"), WARMUP + 1: protect_then_lose_ib}
    with pytest.raises(Fatal, match="does not list the executions") as stopped:
        run(fake, venue, script, until="", bars=WARMUP + 20)
    [target] = [o for o in venue.repository.orders() if o.role == "protective"]
    assert str(stopped.value).startswith(f"order {target.client_order_id}: IB order")
    assert "tradeforge db record-fill" in str(stopped.value)
    assert target.status == OrderStatus.UNKNOWN
    assert len(fake.placed) == 2  # entry and target: nothing sent once IB's word was lost
    assert sum(p.position for p in fake.positions()) == 0
