"""Specification of the trade repository (tradeforge/persistence/repository.py) and of the journal
that re-adopts stored orders on restart (tradeforge/engine/journal.py), on SQLite and on PostgreSQL.

Every test runs on both backends through the `db_url` / `db_engine` fixtures of conftest.py. The
repository is the bot's memory across crashes (DESIGN: order safety protocol): an intent is durable
before it is sent, statuses only move forward, fills are recorded once and trades are derived from
them, two bots sharing a database never see each other's rows."""

from __future__ import annotations

import datetime as dt
import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, insert, select, update

from tradeforge.engine.journal import Divergence, RepositoryJournal
from tradeforge.persistence import migrate
from tradeforge.persistence.database import make_engine
from tradeforge.persistence.models import (
    BotInstance,
    CandleCursor,
    EquitySnapshot,
    Event,
    Fill,
    Order,
    OrderStatus,
    Trade,
    TradeStatus,
)
from tradeforge.persistence.repository import (
    FillReport,
    IntegrityProblem,
    LockHeld,
    OrderIntent,
    Repository,
    client_id_prefix,
)

T0 = dt.datetime(2024, 3, 1, 12, 0, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)
BTC = "BTC/USDT"
ETH = "ETH/USDT"
CLIENT_ID = re.compile(r"^(tf[0-9a-f]{6})-(\d+)-(\d+)$")
RECORD_KEYS = {
    "id",
    "symbol",
    "side",
    "entry_time",
    "exit_time",
    "size",
    "entry_price",
    "exit_price",
    "pnl",
    "pnl_pct",
    "fees",
    "exit_reason",
}


class FrozenClock:
    """A clock a test moves by hand."""

    def __init__(self, now: dt.datetime = T0) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> dt.datetime:
        self.now += dt.timedelta(**delta)
        return self.now


@pytest.fixture
def engine(db_engine: Engine) -> Engine:
    migrate.upgrade(db_engine)
    return db_engine


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def repo(engine: Engine, clock: FrozenClock) -> Repository:
    return Repository.attach(engine, "alpha", "hash-a", "paper", clock=clock)


@pytest.fixture
def fresh_engine(db_url: str) -> Iterator[Engine]:
    """A second, independent engine on the same database: what another process (or a restart) sees."""
    other = make_engine(db_url)
    yield other
    other.dispose()


def entry(
    symbol: str = BTC, side: str = "buy", amount: str = "1", *, reason: str | None = "signal", **kw: Any
) -> OrderIntent:
    return OrderIntent(None, symbol, side, kw.pop("type", "market"), "entry", Decimal(amount), reason=reason, **kw)


def exit_(
    trade_id: int,
    symbol: str = BTC,
    side: str = "sell",
    amount: str = "1",
    *,
    role: str = "exit",
    reason: str | None = "signal",
    **kw: Any,
) -> OrderIntent:
    return OrderIntent(trade_id, symbol, side, kw.pop("type", "market"), role, Decimal(amount), reason=reason, **kw)


def fill(venue_trade_id: str, amount: str, price: str, time: dt.datetime = T0, fee: str = "0") -> FillReport:
    return FillReport(venue_trade_id, Decimal(amount), Decimal(price), time, fee=Decimal(fee), fee_currency="USDT")


def order_of(repo: Repository, client_order_id: str) -> Order:
    (order,) = [o for o in repo.orders() if o.client_order_id == client_order_id]
    return order


def trade_of(repo: Repository, trade_id: int) -> Trade:
    (trade,) = [t for t in repo.trades() if t.id == trade_id]
    return trade


def count(engine: Engine, model: type[Any]) -> int:
    with engine.connect() as connection:
        return connection.scalar(select(func.count()).select_from(model)) or 0


def round_trip(repo: Repository, symbol: str = BTC, tag: str = "") -> tuple[int, str, str]:
    """A long trade entered at 100 and closed at 110 by a take-profit, as a broker reports it."""
    opened = repo.record_intent(entry(symbol))
    repo.mark_order(opened.client_order_id, OrderStatus.OPEN, venue_order_id=f"v{tag}1")
    repo.record_fill(opened.client_order_id, fill(f"1{tag}", "1", "100", T0, fee="0.1"))
    closing = repo.record_intent(exit_(opened.trade_id, symbol, reason="take_profit"))
    repo.mark_order(closing.client_order_id, OrderStatus.OPEN, venue_order_id=f"v{tag}2")
    repo.record_fill(closing.client_order_id, fill(f"2{tag}", "1", "110", T0 + HOUR, fee="0.11"))
    return opened.trade_id, opened.client_order_id, closing.client_order_id


# --- attaching a bot ------------------------------------------------------------------------------


def test_attach_creates_the_bot_once_and_finds_it_again_by_name(engine: Engine) -> None:
    first = Repository.attach(engine, "alpha", "hash-a", "paper")
    again = Repository.attach(engine, "alpha", "hash-a", "paper")
    other = Repository.attach(engine, "beta", "hash-b", "live")

    assert again.bot_id == first.bot_id and again.prefix == first.prefix
    assert other.bot_id != first.bot_id and other.prefix != first.prefix
    assert count(engine, BotInstance) == 2
    bot = first.instance()
    assert (bot.name, bot.config_hash, bot.mode, bot.status) == ("alpha", "hash-a", "paper", "stopped")
    assert bot.lock_owner is None
    assert first.prefix == client_id_prefix("alpha") and re.fullmatch(r"tf[0-9a-f]{6}", first.prefix)


def test_two_bots_in_one_database_never_see_each_others_rows(engine: Engine) -> None:
    alpha = Repository.attach(engine, "alpha", "hash-a", "paper", clock=FrozenClock(T0))
    beta = Repository.attach(engine, "beta", "hash-b", "paper", clock=FrozenClock(T0 + HOUR))
    for bot, symbol_time in ((alpha, T0), (beta, T0 + 5 * HOUR)):
        owner = bot.acquire_lock()
        round_trip(bot)  # the same symbol and the same venue trade ids on purpose: unique per bot
        still_open = bot.record_intent(entry(ETH, amount="2"))
        bot.record_fill(still_open.client_order_id, fill("1", "2", "3000", symbol_time))
        bot.record_intent(entry(ETH, amount="3"))  # pending, never sent
        bot.checkpoint(symbol_time, [(BTC, "1h", symbol_time), (ETH, "1h", symbol_time)], Decimal(1000), Decimal(900))
        bot.log_event("operator", f"hello from {bot.instance().name}")
        bot.heartbeat(owner)

    for mine, theirs in ((alpha, beta), (beta, alpha)):
        assert {o.bot_id for o in mine.orders()} == {mine.bot_id} and len(mine.orders()) == 4
        assert not {o.id for o in mine.orders()} & {o.id for o in theirs.orders()}
        assert {o.bot_id for o in mine.open_orders()} == {mine.bot_id} and len(mine.open_orders()) == 1
        assert {f.bot_id for f in mine.fills()} == {mine.bot_id} and len(mine.fills()) == 3
        assert {t.bot_id for t in mine.trades()} == {mine.bot_id} and len(mine.trades()) == 3
        assert len(mine.trades(TradeStatus.CLOSED)) == 1 and len(mine.trades(TradeStatus.OPEN)) == 2
        assert {r["id"] for r in mine.trade_records()} == {t.id for t in mine.trades() if t.amount or t.pnl}
        assert not {r["id"] for r in mine.trade_records()} & {r["id"] for r in theirs.trade_records()}
        assert [e.bot_id for e in mine.equity()] == [mine.bot_id]
        assert {e.bot_id for e in mine.events()} == {mine.bot_id}
        assert [e.message for e in mine.events("operator")] == [f"hello from {mine.instance().name}"]
        assert mine.integrity_problems() == []
        assert mine.instance().lock_owner != theirs.instance().lock_owner
    assert alpha.cursors() == {(BTC, "1h"): T0, (ETH, "1h"): T0}
    assert beta.cursors() == {(BTC, "1h"): T0 + 5 * HOUR, (ETH, "1h"): T0 + 5 * HOUR}

    # Nothing of beta's can be touched through alpha.
    their_order = beta.orders()[0]
    before = (len(beta.events()), len(beta.fills()), [(o.status, o.filled) for o in beta.orders()])
    with pytest.raises(IntegrityProblem, match=their_order.client_order_id):
        alpha.mark_order(their_order.client_order_id, OrderStatus.CANCELED)
    with pytest.raises(IntegrityProblem, match=their_order.client_order_id):
        alpha.record_fill(their_order.client_order_id, fill("99", "0.1", "100"))
    with pytest.raises(IntegrityProblem, match=str(their_order.trade_id)):
        alpha.update_trade_state(their_order.trade_id or 0, {"stop": "1"})
    assert before == (len(beta.events()), len(beta.fills()), [(o.status, o.filled) for o in beta.orders()])


# --- intents --------------------------------------------------------------------------------------


def test_entry_intent_opens_a_trade_and_commits_a_pending_order_with_a_deterministic_client_id(
    repo: Repository,
) -> None:
    recorded = repo.record_intent(entry(BTC, "buy", "0.5", type="limit", price=Decimal("64000.5")))

    match = CLIENT_ID.fullmatch(recorded.client_order_id)
    assert match, recorded.client_order_id
    assert match.groups() == (repo.prefix, str(recorded.trade_id), "1")
    assert len(recorded.client_order_id) <= 32
    (order,) = repo.orders()
    assert order.client_order_id == recorded.client_order_id and order.trade_id == recorded.trade_id
    assert order.status == OrderStatus.PENDING_SUBMIT
    assert (order.symbol, order.side, order.type, order.role) == (BTC, "buy", "limit", "entry")
    assert (order.amount, order.price, order.filled) == (Decimal("0.5"), Decimal("64000.5"), 0)
    (trade,) = repo.trades()
    assert (trade.id, trade.side, trade.status, trade.amount) == (recorded.trade_id, "long", TradeStatus.OPEN, 0)
    assert [e.data["client_order_id"] for e in repo.events("order_intent")] == [recorded.client_order_id]


def test_a_sell_entry_opens_a_short_trade(repo: Repository) -> None:
    recorded = repo.record_intent(entry(BTC, "sell", "2"))
    assert trade_of(repo, recorded.trade_id).side == "short"


def test_later_orders_of_a_trade_take_the_next_sequence_numbers(repo: Repository) -> None:
    first = repo.record_intent(entry())
    stop = repo.record_intent(exit_(first.trade_id, role="protective", type="stop", stop_price=Decimal("95")))
    target = repo.record_intent(exit_(first.trade_id, type="limit", price=Decimal("120")))
    another = repo.record_intent(entry(ETH))

    assert [r.client_order_id for r in (first, stop, target)] == [
        f"{repo.prefix}-{first.trade_id}-{seq}" for seq in (1, 2, 3)
    ]
    assert stop.trade_id == target.trade_id == first.trade_id
    assert another.trade_id != first.trade_id
    assert another.client_order_id == f"{repo.prefix}-{another.trade_id}-1"
    assert [o.client_order_id for o in repo.orders()] == [r.client_order_id for r in (first, stop, target, another)]


def test_an_intent_is_committed_before_record_intent_returns(repo: Repository, fresh_engine: Engine) -> None:
    recorded = repo.record_intent(entry())

    # Another connection, as a restarted process would open, already sees the intent.
    with fresh_engine.connect() as connection:
        row = connection.execute(
            select(Order.client_order_id, Order.status, Order.trade_id).where(
                Order.client_order_id == recorded.client_order_id
            )
        ).one()
    assert tuple(row) == (recorded.client_order_id, OrderStatus.PENDING_SUBMIT, recorded.trade_id)
    restarted = Repository.attach(fresh_engine, "alpha", "hash-a", "paper")
    assert [o.client_order_id for o in restarted.open_orders()] == [recorded.client_order_id]


def commits_counted(db_url: str) -> tuple[Engine, list[str]]:
    """An engine whose connections note each commit the driver makes, in a list."""
    engine, commits = make_engine(db_url), []

    def instrument(dbapi_connection: Any, _record: Any) -> None:
        if hasattr(dbapi_connection, "set_trace_callback"):  # sqlite3: every statement SQLite runs
            dbapi_connection.set_trace_callback(lambda sql: commits.append(sql) if sql == "COMMIT" else None)
            return
        commit = dbapi_connection.commit  # psycopg

        def counted() -> None:
            commit()
            commits.append("COMMIT")

        dbapi_connection.commit = counted

    event.listen(engine, "connect", instrument)
    return engine, commits


def test_each_step_of_an_order_is_committed_by_itself_when_it_happens(engine: Engine, db_url: str) -> None:
    counted, commits = commits_counted(db_url)
    try:
        repo = Repository.attach(counted, "alpha", "hash-a", "paper")
        before = len(commits)
        opened = repo.record_intent(entry())
        steps = [("intent", len(commits))]
        repo.mark_order(opened.client_order_id, OrderStatus.OPEN)
        steps.append(("accepted", len(commits)))
        repo.record_fill(opened.client_order_id, fill("1", "1", "100"))
        steps.append(("filled", len(commits)))
        repo.close()
    finally:
        counted.dispose()
    assert steps == [("intent", before + 1), ("accepted", before + 2), ("filled", before + 3)]


def test_an_intent_for_another_bots_trade_is_refused_and_writes_nothing(repo: Repository, engine: Engine) -> None:
    beta = Repository.attach(engine, "beta", "hash-b", "paper")
    theirs = beta.record_intent(entry())
    orders, events = count(engine, Order), count(engine, Event)

    with pytest.raises(IntegrityProblem, match=str(theirs.trade_id)):
        repo.record_intent(exit_(theirs.trade_id))
    with pytest.raises(IntegrityProblem):
        repo.record_intent(exit_(theirs.trade_id + 1000))  # no such trade at all

    assert (count(engine, Order), count(engine, Event)) == (orders, events)
    assert repo.orders() == [] and repo.trades() == []


# --- order statuses -------------------------------------------------------------------------------


def test_mark_order_moves_forward_and_records_every_change_as_an_event(repo: Repository, clock: FrozenClock) -> None:
    recorded = repo.record_intent(entry(type="limit", price=Decimal("90")))
    cid = recorded.client_order_id

    clock.advance(seconds=1)
    repo.mark_order(cid, OrderStatus.OPEN, venue_order_id="v-42", raw={"status": "NEW"})
    order = order_of(repo, cid)
    assert (order.status, order.venue_order_id, order.raw) == (OrderStatus.OPEN, "v-42", {"status": "NEW"})
    assert order.updated_at == T0 + dt.timedelta(seconds=1) and order.created_at == T0

    clock.advance(seconds=1)
    repo.mark_order(cid, OrderStatus.CANCEL_PENDING)
    repo.mark_order(cid, OrderStatus.CANCELED)
    order = order_of(repo, cid)
    assert order.status == OrderStatus.CANCELED
    assert order.venue_order_id == "v-42", "a later report without the venue id keeps it"
    assert [(e.data["client_order_id"], e.data["from"], e.data["to"]) for e in repo.events("order_status")] == [
        (cid, "pending_submit", "open"),
        (cid, "open", "cancel_pending"),
        (cid, "cancel_pending", "canceled"),
    ]


def test_old_news_about_an_order_changes_nothing_and_writes_no_event(repo: Repository, clock: FrozenClock) -> None:
    recorded = repo.record_intent(entry())
    cid = recorded.client_order_id
    repo.mark_order(cid, OrderStatus.OPEN, venue_order_id="v-1")
    repo.record_fill(cid, fill("1", "1", "100"))
    settled = order_of(repo, cid)
    events = len(repo.events())

    clock.advance(minutes=5)
    for stale in (OrderStatus.OPEN, OrderStatus.PENDING_SUBMIT, OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED):
        repo.mark_order(cid, stale, venue_order_id="v-other", raw={"replayed": True})

    order = order_of(repo, cid)
    assert order.status == OrderStatus.FILLED
    assert (order.venue_order_id, order.raw, order.updated_at) == (
        settled.venue_order_id,
        settled.raw,
        settled.updated_at,
    )
    assert len(repo.events()) == events
    assert trade_of(repo, recorded.trade_id).status == TradeStatus.OPEN


def test_open_is_old_news_for_an_order_already_partially_filled(repo: Repository) -> None:
    cid = repo.record_intent(entry(amount="2")).client_order_id
    repo.record_fill(cid, fill("1", "1", "100"))
    events = len(repo.events("order_status"))

    repo.mark_order(cid, OrderStatus.OPEN)
    repo.mark_order(cid, OrderStatus.PARTIALLY_FILLED)

    assert order_of(repo, cid).status == OrderStatus.PARTIALLY_FILLED
    assert len(repo.events("order_status")) == events


def test_a_send_or_cancel_whose_outcome_was_not_heard_is_unknown_until_the_venue_says(repo: Repository) -> None:
    sent = repo.record_intent(entry(type="limit", price=Decimal("90"), amount="2")).client_order_id
    repo.mark_order(sent, OrderStatus.UNKNOWN)  # the placement timed out
    repo.mark_order(sent, OrderStatus.OPEN)  # found by client order id
    repo.mark_order(sent, OrderStatus.UNKNOWN)  # a cancel timed out
    repo.record_fill(sent, fill("1", "1", "90"))
    repo.mark_order(sent, OrderStatus.CANCEL_PENDING)  # cancelling the rest
    repo.mark_order(sent, OrderStatus.OPEN)  # a poll from before the cancel: stale
    repo.mark_order(sent, OrderStatus.CANCELED)
    assert [(e.data["from"], e.data["to"]) for e in repo.events("order_status")] == [
        ("pending_submit", "unknown"),
        ("unknown", "open"),
        ("open", "unknown"),
        ("partially_filled", "cancel_pending"),
        ("cancel_pending", "canceled"),
    ]
    assert (order_of(repo, sent).status, order_of(repo, sent).filled) == (OrderStatus.CANCELED, Decimal(1))


def test_a_status_reported_on_every_poll_is_recorded_once(repo: Repository, clock: FrozenClock) -> None:
    cid = repo.record_intent(entry(type="limit", price=Decimal(90))).client_order_id
    repo.mark_order(cid, OrderStatus.OPEN, venue_order_id="v-1")
    clock.advance(seconds=5)

    repo.mark_order(cid, OrderStatus.OPEN, venue_order_id="v-1")
    repo.mark_order(cid, OrderStatus.OPEN)

    assert [e.data["to"] for e in repo.events("order_status")] == ["open"]
    assert order_of(repo, cid).updated_at == T0


@pytest.mark.parametrize(
    ("reached", "reported"),
    [
        (OrderStatus.FILLED, OrderStatus.CANCELED),
        (OrderStatus.CANCELED, OrderStatus.FILLED),
        (OrderStatus.REJECTED, OrderStatus.EXPIRED),
    ],
)
def test_a_terminal_order_never_becomes_a_different_terminal_status(
    repo: Repository, reached: OrderStatus, reported: OrderStatus
) -> None:
    cid = repo.record_intent(entry()).client_order_id
    if reached == OrderStatus.FILLED:
        repo.record_fill(cid, fill("1", "1", "100"))
    else:
        repo.mark_order(cid, reached)
    events = len(repo.events())

    with pytest.raises(IntegrityProblem, match=re.escape(cid)):
        repo.mark_order(cid, reported)

    assert order_of(repo, cid).status == reached
    assert len(repo.events()) == events
    repo.mark_order(cid, reached)  # the same terminal status again is just old news
    assert len(repo.events()) == events


def test_an_order_is_found_by_its_client_order_id_among_this_bots_orders_only(engine: Engine, repo: Repository) -> None:
    cid = repo.record_intent(entry()).client_order_id
    other = Repository.attach(engine, "other-bot", "h", "paper")
    found = repo.order(cid)
    assert found is not None and (found.client_order_id, found.status) == (cid, OrderStatus.PENDING_SUBMIT)
    assert other.order(cid) is None and repo.order("tf000000-9-9") is None


def test_processes_attaching_a_new_bot_at_once_share_one_row(db_url: str) -> None:
    engines = [make_engine(db_url) for _ in range(4)]
    migrate.upgrade(engines[0])
    barrier = threading.Barrier(len(engines))

    def attach(engine: Engine) -> int:
        barrier.wait()
        return Repository.attach(engine, "racing-bot", "h", "paper").bot_id

    with ThreadPoolExecutor(len(engines)) as pool:
        ids = list(pool.map(attach, engines))
    for engine in engines:
        engine.dispose()
    assert len(set(ids)) == 1


def test_marking_an_order_this_bot_does_not_have_names_it(repo: Repository) -> None:
    with pytest.raises(IntegrityProblem, match="tf000000-1-1"):
        repo.mark_order("tf000000-1-1", OrderStatus.OPEN)


@pytest.mark.parametrize("status", [OrderStatus.REJECTED, OrderStatus.CANCELED, OrderStatus.EXPIRED])
def test_an_entry_ending_without_fills_closes_its_never_opened_trade(repo: Repository, status: OrderStatus) -> None:
    recorded = repo.record_intent(entry())
    repo.mark_order(recorded.client_order_id, OrderStatus.OPEN)

    repo.mark_order(recorded.client_order_id, status)

    trade = trade_of(repo, recorded.trade_id)
    assert (trade.status, trade.exit_reason) == (TradeStatus.CLOSED, f"entry_{status.value}")
    assert trade.amount == 0 and trade.entry_price is None
    assert repo.trade_records() == [], "an entry that never filled is not a trade"
    assert repo.open_orders() == []
    assert repo.integrity_problems() == []


def test_canceling_a_partially_filled_entry_keeps_its_trade_open(repo: Repository) -> None:
    recorded = repo.record_intent(entry(amount="1"))
    repo.record_fill(recorded.client_order_id, fill("1", "0.4", "100"))

    repo.mark_order(recorded.client_order_id, OrderStatus.CANCELED)

    assert order_of(repo, recorded.client_order_id).status == OrderStatus.CANCELED
    trade = trade_of(repo, recorded.trade_id)
    assert (trade.status, trade.amount, trade.exit_reason) == (TradeStatus.OPEN, Decimal("0.4"), None)
    assert repo.integrity_problems() == []


def test_an_entry_reported_filled_before_its_fills_are_healed_keeps_its_trade_open(repo: Repository) -> None:
    """The venue's order status can say FILLED before the executions are fetched (DESIGN, steps 3-4)."""
    recorded = repo.record_intent(entry(amount="1"))
    repo.mark_order(recorded.client_order_id, OrderStatus.OPEN)

    repo.mark_order(recorded.client_order_id, OrderStatus.FILLED)
    assert trade_of(repo, recorded.trade_id).status == TradeStatus.OPEN, "a filled entry has opened its trade"

    repo.record_fill(recorded.client_order_id, fill("1", "1", "100"))
    trade = trade_of(repo, recorded.trade_id)
    assert (trade.status, trade.amount, trade.exit_reason) == (TradeStatus.OPEN, Decimal(1), None)
    assert repo.integrity_problems() == []


# --- fills ----------------------------------------------------------------------------------------


def test_the_same_fill_reported_twice_is_recorded_once(repo: Repository, clock: FrozenClock) -> None:
    recorded = repo.record_intent(entry(amount="1"))
    cid = recorded.client_order_id
    assert repo.record_fill(cid, fill("777", "0.5", "100", fee="0.05")) is True
    order, trade, events = order_of(repo, cid), trade_of(repo, recorded.trade_id), len(repo.events())

    clock.advance(minutes=1)
    assert repo.record_fill(cid, fill("777", "0.5", "100", fee="0.05")) is False
    assert repo.record_fill(cid, fill("777", "0.2", "101", fee="0.01")) is False, "the venue trade id decides"

    assert len(repo.fills()) == 1
    again = order_of(repo, cid)
    assert (again.filled, again.average_price, again.fees, again.status, again.updated_at) == (
        order.filled,
        order.average_price,
        order.fees,
        order.status,
        order.updated_at,
    )
    assert (trade_of(repo, recorded.trade_id).amount, len(repo.events())) == (trade.amount, events)


def test_a_venue_trade_id_is_unique_per_symbol_not_across_symbols(repo: Repository) -> None:
    btc = repo.record_intent(entry(BTC)).client_order_id
    eth = repo.record_intent(entry(ETH)).client_order_id
    assert repo.record_fill(btc, fill("1", "1", "100")) is True
    assert repo.record_fill(eth, fill("1", "1", "3000")) is True
    assert len(repo.fills()) == 2


def test_partial_fills_accumulate_until_the_order_is_filled(repo: Repository) -> None:
    recorded = repo.record_intent(entry(amount="1.5"))
    cid = recorded.client_order_id

    repo.record_fill(cid, fill("1", "0.5", "100", T0, fee="0.05"))
    order = order_of(repo, cid)
    assert (order.status, order.filled, order.average_price, order.fees) == (
        OrderStatus.PARTIALLY_FILLED,
        Decimal("0.5"),
        Decimal(100),
        Decimal("0.05"),
    )
    assert cid in {o.client_order_id for o in repo.open_orders()}

    repo.record_fill(cid, fill("2", "0.25", "104", T0 + HOUR, fee="0.026"))
    repo.record_fill(cid, fill("3", "0.75", "102", T0 + 2 * HOUR, fee="0.0765"))
    order = order_of(repo, cid)
    # By value: (0.5*100 + 0.25*104 + 0.75*102) / 1.5 = 152.5 / 1.5
    assert order.status == OrderStatus.FILLED
    assert order.filled == Decimal("1.5")
    assert abs(order.average_price - Decimal("152.5") / Decimal("1.5")) < Decimal("1e-15")
    assert order.fees == Decimal("0.1525")
    assert repo.open_orders() == []
    trade = trade_of(repo, recorded.trade_id)
    assert (trade.amount, trade.fees, trade.status) == (Decimal("1.5"), Decimal("0.1525"), TradeStatus.OPEN)
    assert [e.data["venue_trade_id"] for e in repo.events("fill")] == ["1", "2", "3"]


def test_a_fill_that_would_overfill_its_order_is_refused_and_writes_nothing(repo: Repository, engine: Engine) -> None:
    recorded = repo.record_intent(entry(amount="1"))
    cid = recorded.client_order_id
    repo.record_fill(cid, fill("1", "0.7", "100"))
    order, trade = order_of(repo, cid), trade_of(repo, recorded.trade_id)
    fills, events = count(engine, Fill), count(engine, Event)

    with pytest.raises(IntegrityProblem, match=rf"(?=.*\b2\b)(?=.*{re.escape(cid)})"):
        repo.record_fill(cid, fill("2", "0.4", "100"))

    assert (count(engine, Fill), count(engine, Event)) == (fills, events)
    again = order_of(repo, cid)
    assert (again.filled, again.status, again.average_price) == (order.filled, order.status, order.average_price)
    assert trade_of(repo, recorded.trade_id).amount == trade.amount
    assert repo.record_fill(cid, fill("2", "0.3", "100")) is True, "the refused fill id was not stored"


def test_a_long_trade_is_derived_from_all_its_fills(repo: Repository) -> None:
    opened = repo.record_intent(entry(amount="1"))
    repo.record_fill(opened.client_order_id, fill("1", "0.25", "100", T0, fee="0.1"))
    repo.record_fill(opened.client_order_id, fill("2", "0.75", "104", T0 + HOUR, fee="0.3"))
    trade = trade_of(repo, opened.trade_id)
    assert (trade.status, trade.amount, trade.entry_price, trade.opened_at) == (
        TradeStatus.OPEN,
        Decimal(1),
        Decimal(103),  # (25 + 78) / 1
        T0,
    )
    assert trade.pnl is None and trade.closed_at is None and trade.exit_price is None

    stop = repo.record_intent(exit_(opened.trade_id, role="protective", type="stop", stop_price=Decimal(90)))
    take = repo.record_intent(exit_(opened.trade_id, type="limit", price=Decimal(120), reason="take_profit"))
    repo.record_fill(take.client_order_id, fill("3", "0.5", "120", T0 + 2 * HOUR, fee="0.2"))
    trade = trade_of(repo, opened.trade_id)
    assert (trade.status, trade.amount, trade.exit_price) == (TradeStatus.OPEN, Decimal("0.5"), Decimal(120))

    repo.record_fill(take.client_order_id, fill("4", "0.5", "121", T0 + 3 * HOUR, fee="0.2"))
    trade = trade_of(repo, opened.trade_id)
    assert trade.status == TradeStatus.CLOSED
    assert trade.amount == 0
    assert trade.entry_price == Decimal(103)
    assert trade.exit_price == Decimal("120.5")
    assert trade.fees == Decimal("0.8")
    assert trade.pnl == (Decimal("120.5") - Decimal(103)) * 1 * 1 - Decimal("0.8")
    assert trade.exit_reason == "take_profit"
    assert (trade.opened_at, trade.closed_at) == (T0, T0 + 3 * HOUR)
    assert order_of(repo, stop.client_order_id).status == OrderStatus.PENDING_SUBMIT
    assert repo.integrity_problems() == []


def test_a_short_trade_is_derived_from_all_its_fills(repo: Repository) -> None:
    opened = repo.record_intent(entry(ETH, "sell", "2"))
    repo.record_fill(opened.client_order_id, fill("1", "2", "3000", T0, fee="1.5"))
    covered = repo.record_intent(exit_(opened.trade_id, ETH, "buy", "2", role="protective", reason="stop_loss"))
    repo.record_fill(covered.client_order_id, fill("2", "1.5", "3100", T0 + HOUR, fee="1"))
    repo.record_fill(covered.client_order_id, fill("3", "0.5", "3140", T0 + 2 * HOUR, fee="0.5"))

    trade = trade_of(repo, opened.trade_id)
    assert trade.side == "short"
    assert (trade.status, trade.amount) == (TradeStatus.CLOSED, 0)
    assert (trade.entry_price, trade.exit_price) == (Decimal(3000), Decimal(3110))
    assert trade.fees == Decimal(3)
    assert trade.pnl == (Decimal(3110) - Decimal(3000)) * 2 * -1 - Decimal(3) == Decimal(-223)
    assert (trade.exit_reason, trade.closed_at) == ("stop_loss", T0 + 2 * HOUR)


def test_fills_healed_out_of_order_still_date_the_trade_by_its_earliest_entry_fill(repo: Repository) -> None:
    """Positions are derived from all fills, never incrementally (DESIGN: money)."""
    opened = repo.record_intent(entry(amount="1"))
    repo.record_fill(opened.client_order_id, fill("2", "0.5", "101", T0 + HOUR))
    repo.record_fill(opened.client_order_id, fill("1", "0.5", "99", T0))

    trade = trade_of(repo, opened.trade_id)
    assert trade.entry_price == Decimal(100)
    assert trade.opened_at == T0


def test_a_fill_healed_after_the_cancel_leaves_the_order_canceled(repo: Repository) -> None:
    """A venue cancels a partly executed order; the execution is fetched on the next poll (DESIGN, step 4)."""
    opened = repo.record_intent(entry(amount="1"))
    repo.record_fill(opened.client_order_id, fill("1", "1", "100"))
    closing = repo.record_intent(exit_(opened.trade_id, amount="1", type="limit", price=Decimal(110)))
    repo.mark_order(closing.client_order_id, OrderStatus.OPEN)
    repo.mark_order(closing.client_order_id, OrderStatus.CANCELED)

    assert repo.record_fill(closing.client_order_id, fill("2", "0.4", "110")) is True

    order = order_of(repo, closing.client_order_id)
    assert (order.status, order.filled) == (OrderStatus.CANCELED, Decimal("0.4")), "terminal stays terminal"
    assert closing.client_order_id not in {o.client_order_id for o in repo.open_orders()}
    assert trade_of(repo, opened.trade_id).amount == Decimal("0.6")


def test_a_fill_healed_after_its_entry_was_canceled_reopens_the_trade(repo: Repository) -> None:
    opened = repo.record_intent(entry(amount="1"))
    repo.mark_order(opened.client_order_id, OrderStatus.OPEN)
    repo.mark_order(opened.client_order_id, OrderStatus.CANCELED)  # no fill known yet: trade closed

    repo.record_fill(opened.client_order_id, fill("1", "0.4", "100"))

    trade = trade_of(repo, opened.trade_id)
    assert (trade.status, trade.amount, trade.entry_price) == (TradeStatus.OPEN, Decimal("0.4"), Decimal(100))
    assert repo.integrity_problems() == []


def test_decimal_amounts_and_prices_round_trip_exactly(repo: Repository, fresh_engine: Engine) -> None:
    amount, price, fee = Decimal("0.123456789012345678"), Decimal("65432.10"), Decimal("0.000000000000000001")
    equity, cash = Decimal("98765432109876543.210987654321098765"), Decimal("0.000000000000000001")
    recorded = repo.record_intent(
        entry(amount=str(amount), type="stop_limit", price=Decimal("65432.10"), stop_price=Decimal("65000.01"))
    )
    repo.record_fill(recorded.client_order_id, fill("1", str(amount), str(price), fee=str(fee)))
    repo.checkpoint(T0, [], equity, cash)

    for reader in (repo, Repository.attach(fresh_engine, "alpha", "hash-a", "paper")):
        (order,) = reader.orders()
        assert (order.amount, order.price, order.stop_price) == (amount, price, Decimal("65000.01"))
        assert (order.filled, order.average_price, order.fees) == (amount, price, fee)
        (stored,) = reader.fills()
        assert (stored.amount, stored.price, stored.fee) == (amount, price, fee)
        assert all(isinstance(v, Decimal) for v in (stored.amount, stored.price, stored.fee, order.filled))
        (trade,) = reader.trades()
        assert (trade.amount, trade.entry_price, trade.fees) == (amount, price, fee)
        (snapshot,) = reader.equity()
        assert (snapshot.equity, snapshot.cash) == (equity, cash)


def test_every_datetime_comes_back_timezone_aware_utc(repo: Repository, clock: FrozenClock) -> None:
    paris = dt.timezone(dt.timedelta(hours=2))
    at = dt.datetime(2024, 6, 1, 14, 30, 15, 123456, tzinfo=paris)
    clock.now = at
    owner = repo.acquire_lock()
    trade_id, _, _ = round_trip(repo)
    repo.record_fill(repo.record_intent(entry(ETH)).client_order_id, fill("9", "1", "3000", at))
    repo.checkpoint(at, [(ETH, "1h", at)], Decimal(1), Decimal(1))
    repo.release_lock(owner)
    repo.acquire_lock()

    bot = repo.instance()
    stamps: list[dt.datetime | None] = [bot.started_at, bot.stopped_at, bot.lock_heartbeat]
    stamps += [t for o in repo.orders() for t in (o.created_at, o.updated_at)]
    stamps += [f.time for f in repo.fills()]
    stamps += [t for tr in repo.trades() for t in (tr.opened_at, tr.closed_at)]
    stamps += [e.time for e in repo.events()] + [s.time for s in repo.equity()] + list(repo.cursors().values())
    assert None not in stamps[:3] and len(stamps) > 20
    for stamp in stamps:
        if stamp is not None:
            assert stamp.tzinfo is not None and stamp.utcoffset() == dt.timedelta(0), stamp
    assert repo.cursors()[(ETH, "1h")] == at and repo.cursors()[(ETH, "1h")].hour == 12
    assert [f.time for f in repo.fills()][-1] == at
    assert trade_of(repo, trade_id).closed_at == T0 + HOUR


def test_naive_datetimes_are_refused(repo: Repository, engine: Engine) -> None:
    naive = dt.datetime(2024, 3, 1, 12, 0)
    cid = repo.record_intent(entry()).client_order_id
    rows = {model: count(engine, model) for model in (Fill, CandleCursor, EquitySnapshot, Event)}

    with pytest.raises(Exception, match="naive"):
        repo.record_fill(cid, fill("1", "1", "100", naive))
    with pytest.raises(Exception, match="naive"):
        repo.checkpoint(naive, [(BTC, "1h", T0)], Decimal(1), Decimal(1))
    with pytest.raises(Exception, match="naive"):
        repo.set_cursor(BTC, "1h", naive)
    with pytest.raises(Exception, match="naive"):
        repo.snapshot_equity(naive, Decimal(1), Decimal(1))

    assert {model: count(engine, model) for model in rows} == rows
    assert order_of(repo, cid).filled == 0
    repo.set_cursor(BTC, "1h", T0)
    with pytest.raises(Exception, match="naive"):
        repo.set_cursor(BTC, "1h", naive + HOUR)
    assert repo.cursors() == {(BTC, "1h"): T0}


# --- checkpoint, cursors, equity ------------------------------------------------------------------


def test_cursors_only_move_forward(repo: Repository) -> None:
    repo.set_cursor(BTC, "1h", T0 + 2 * HOUR)
    repo.set_cursor(BTC, "1h", T0 + HOUR)
    repo.checkpoint(T0 + HOUR, [(BTC, "1h", T0), (ETH, "4h", T0)], Decimal(100), Decimal(100))
    assert repo.cursors() == {(BTC, "1h"): T0 + 2 * HOUR, (ETH, "4h"): T0}

    repo.checkpoint(T0 + 3 * HOUR, [(BTC, "1h", T0 + 3 * HOUR), (ETH, "4h", T0 + 4 * HOUR)], Decimal(1), Decimal(1))
    repo.set_cursor(BTC, "15m", T0)
    assert repo.cursors() == {(BTC, "1h"): T0 + 3 * HOUR, (ETH, "4h"): T0 + 4 * HOUR, (BTC, "15m"): T0}


def test_the_same_candles_equity_snapshot_is_stored_once(repo: Repository) -> None:
    repo.checkpoint(T0 + HOUR, [(BTC, "1h", T0 + HOUR)], Decimal("1010.5"), Decimal(500))
    repo.checkpoint(T0, [(BTC, "1h", T0)], Decimal(1000), Decimal(1000))
    repo.checkpoint(T0 + HOUR, [(BTC, "1h", T0 + HOUR)], Decimal(999), Decimal(999))  # replayed after a restart
    repo.snapshot_equity(T0 + HOUR, Decimal(998), Decimal(998))
    repo.snapshot_equity(T0 + 2 * HOUR, Decimal(1020), Decimal(400))

    assert [(s.time, s.equity, s.cash) for s in repo.equity()] == [
        (T0, Decimal(1000), Decimal(1000)),
        (T0 + HOUR, Decimal("1010.5"), Decimal(500)),
        (T0 + 2 * HOUR, Decimal(1020), Decimal(400)),
    ]
    assert repo.cursors() == {(BTC, "1h"): T0 + HOUR}


# --- run lock -------------------------------------------------------------------------------------


def test_a_second_process_cannot_take_a_held_lock(engine: Engine, clock: FrozenClock) -> None:
    first = Repository.attach(engine, "alpha", "hash-a", "paper", clock=clock)
    second = Repository.attach(engine, "alpha", "hash-a", "paper", clock=FrozenClock(T0 + dt.timedelta(seconds=29)))
    owner = first.acquire_lock()
    assert owner.startswith(f"{socket.gethostname()}:{os.getpid()}:")

    with pytest.raises(LockHeld) as held:
        second.acquire_lock()

    assert "alpha" in str(held.value) and owner in str(held.value)
    bot = second.instance()
    assert (bot.status, bot.lock_owner, bot.lock_heartbeat, bot.started_at) == ("running", owner, T0, T0)
    assert len(second.events("bot_started")) == 1


def test_a_lock_with_a_stale_heartbeat_is_taken_over(engine: Engine, clock: FrozenClock) -> None:
    crashed = Repository.attach(engine, "alpha", "hash-a", "paper", clock=clock)
    old_owner = crashed.acquire_lock()
    later = FrozenClock(T0 + dt.timedelta(seconds=31))
    successor = Repository.attach(engine, "alpha", "hash-a", "paper", clock=later)

    new_owner = successor.acquire_lock()

    assert new_owner != old_owner
    bot = successor.instance()
    assert (bot.lock_owner, bot.lock_heartbeat, bot.status, bot.started_at) == (
        new_owner,
        later.now,
        "running",
        later.now,
    )
    started = successor.events("bot_started")
    assert [e.data["took_over"] for e in started] == [None, old_owner]
    assert started[-1].data["owner"] == new_owner


def test_a_lock_of_a_dead_process_on_this_host_is_taken_over(engine: Engine, repo: Repository) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    dead_owner = f"{socket.gethostname()}:{gone.pid}:deadbeef"
    with engine.begin() as connection:
        connection.execute(
            update(BotInstance)
            .where(BotInstance.id == repo.bot_id)
            .values(lock_owner=dead_owner, lock_heartbeat=T0, status="running")
        )

    owner = repo.acquire_lock()  # the heartbeat is fresh, but its process is gone

    assert repo.instance().lock_owner == owner
    assert repo.events("bot_started")[-1].data["took_over"] == dead_owner


def test_a_fresh_lock_of_a_process_on_another_host_is_respected(engine: Engine, repo: Repository) -> None:
    remote_owner = "some-other-host:1:cafe"
    with engine.begin() as connection:
        connection.execute(
            update(BotInstance).where(BotInstance.id == repo.bot_id).values(lock_owner=remote_owner, lock_heartbeat=T0)
        )
    with pytest.raises(LockHeld, match=remote_owner):
        repo.acquire_lock()
    assert repo.instance().lock_owner == remote_owner


def test_release_marks_the_bot_stopped_and_frees_the_lock(engine: Engine, repo: Repository, clock: FrozenClock) -> None:
    owner = repo.acquire_lock()
    clock.advance(minutes=10)

    repo.release_lock(owner)

    bot = repo.instance()
    assert (bot.status, bot.lock_owner, bot.lock_heartbeat, bot.stopped_at) == ("stopped", None, None, clock.now)
    assert [e.kind for e in repo.events() if e.kind.startswith("bot_")] == ["bot_started", "bot_stopped"]
    successor = Repository.attach(engine, "alpha", "hash-a", "paper", clock=FrozenClock(clock.now))
    assert successor.acquire_lock() != owner, "a released lock is free at once"


def test_release_with_a_status_records_it(repo: Repository) -> None:
    repo.release_lock(repo.acquire_lock(), status="halted")
    assert repo.instance().status == "halted"
    assert "halted" in repo.events("bot_stopped")[-1].message


def test_heartbeat_only_updates_the_owners_lock(engine: Engine, clock: FrozenClock) -> None:
    first = Repository.attach(engine, "alpha", "hash-a", "paper", clock=clock)
    owner = first.acquire_lock()
    clock.advance(seconds=20)
    first.heartbeat(owner)
    assert first.instance().lock_heartbeat == clock.now

    clock.advance(seconds=20)
    first.heartbeat("someone-else:1:0000")
    assert first.instance().lock_heartbeat == T0 + dt.timedelta(seconds=20)

    # Past its staleness another process takes over; the old owner's heartbeat and release touch nothing.
    successor_clock = FrozenClock(clock.advance(seconds=31))
    successor = Repository.attach(engine, "alpha", "hash-a", "paper", clock=successor_clock)
    new_owner = successor.acquire_lock()
    clock.advance(seconds=5)
    first.heartbeat(owner)
    first.release_lock(owner)
    bot = successor.instance()
    assert (bot.lock_owner, bot.lock_heartbeat, bot.status) == (new_owner, successor_clock.now, "running")
    successor_clock.advance(seconds=1)
    successor.heartbeat(new_owner)
    assert successor.instance().lock_heartbeat == successor_clock.now


# --- integrity problems ---------------------------------------------------------------------------


def test_healthy_data_has_no_integrity_problems(repo: Repository) -> None:
    assert repo.integrity_problems() == []
    round_trip(repo)
    partly = repo.record_intent(entry(ETH, amount="2"))
    repo.record_fill(partly.client_order_id, fill("5", "0.5", "3000"))
    rejected = repo.record_intent(entry(ETH))
    repo.mark_order(rejected.client_order_id, OrderStatus.REJECTED)
    repo.record_intent(exit_(partly.trade_id, ETH, amount="0.5", role="protective", type="stop"))
    assert repo.integrity_problems() == []


def _problems_about(repo: Repository, text: str) -> list[str]:
    return [str(p) for p in repo.integrity_problems() if text in p.where]


def test_integrity_problems_name_an_order_without_a_trade(repo: Repository, engine: Engine) -> None:
    round_trip(repo)
    orphan = f"{repo.prefix}-orphan-1"
    with engine.begin() as connection:
        row_id = connection.execute(
            insert(Order)
            .values(
                bot_id=repo.bot_id,
                trade_id=None,
                client_order_id=orphan,
                symbol=BTC,
                side="buy",
                type="market",
                role="entry",
                amount=Decimal(1),
                status=OrderStatus.OPEN,
                filled=Decimal(0),
                fees=Decimal(0),
                created_at=T0,
                updated_at=T0,
            )
            .returning(Order.id)
        ).scalar_one()

    (problem,) = repo.integrity_problems()
    assert orphan in problem.where and str(row_id) in problem.where
    assert "no trade" in problem.message


def test_integrity_problems_name_an_order_whose_fills_exceed_its_amount(repo: Repository, engine: Engine) -> None:
    recorded = repo.record_intent(entry(amount="1"))
    repo.record_fill(recorded.client_order_id, fill("1", "1", "100"))
    order = order_of(repo, recorded.client_order_id)
    with engine.begin() as connection:
        connection.execute(
            insert(Fill).values(
                bot_id=repo.bot_id,
                order_id=order.id,
                symbol=BTC,
                venue_trade_id="sneaked-in",
                amount=Decimal("0.5"),
                price=Decimal(100),
                fee=Decimal(0),
                time=T0,
            )
        )

    problems = _problems_about(repo, recorded.client_order_id)
    assert any("1.5" in p and "more than" in p for p in problems), problems
    assert all(str(order.id) in p for p in problems)


def test_integrity_problems_name_an_order_whose_filled_disagrees_with_its_fills(
    repo: Repository, engine: Engine
) -> None:
    recorded = repo.record_intent(entry(amount="1"))
    repo.record_fill(recorded.client_order_id, fill("1", "0.4", "100"))
    with engine.begin() as connection:
        connection.execute(
            update(Order).where(Order.client_order_id == recorded.client_order_id).values(filled=Decimal("0.3"))
        )

    (problem,) = repo.integrity_problems()
    assert recorded.client_order_id in problem.where
    assert "0.3" in problem.message and "0.4" in problem.message


def test_integrity_problems_name_a_closed_trade_with_an_amount_left(repo: Repository, engine: Engine) -> None:
    recorded = repo.record_intent(entry(amount="1"))
    repo.record_fill(recorded.client_order_id, fill("1", "1", "100"))
    with engine.begin() as connection:
        connection.execute(update(Trade).where(Trade.id == recorded.trade_id).values(status=TradeStatus.CLOSED))

    (problem,) = repo.integrity_problems()
    assert problem.where == f"trade {recorded.trade_id}"
    assert "closed" in problem.message


# --- trade records --------------------------------------------------------------------------------


def test_trade_records_have_the_result_file_shape(repo: Repository) -> None:
    closed_id, _, _ = round_trip(repo)
    short = repo.record_intent(entry(ETH, "sell", "2"))
    repo.record_fill(short.client_order_id, fill("7", "2", "3000", T0 + 2 * HOUR, fee="1.2"))
    repo.record_intent(entry(ETH, amount="1"))  # pending: no fill yet
    rejected = repo.record_intent(entry(BTC, amount="1"))
    repo.mark_order(rejected.client_order_id, OrderStatus.REJECTED)

    records = repo.trade_records()

    assert [r["id"] for r in records] == [closed_id, short.trade_id]
    assert all(set(r) == RECORD_KEYS for r in records)
    closed, still_open = records
    pnl = (110 - 100) * 1 - 0.21
    assert closed == {
        "id": closed_id,
        "symbol": BTC,
        "side": "long",
        "entry_time": T0.isoformat(),
        "exit_time": (T0 + HOUR).isoformat(),
        "size": 1.0,
        "entry_price": 100.0,
        "exit_price": 110.0,
        "pnl": pytest.approx(pnl),
        "pnl_pct": pytest.approx(pnl / 100),
        "fees": pytest.approx(0.21),
        "exit_reason": "take_profit",
    }
    assert still_open == {
        "id": short.trade_id,
        "symbol": ETH,
        "side": "short",
        "entry_time": (T0 + 2 * HOUR).isoformat(),
        "exit_time": None,
        "size": 2.0,
        "entry_price": 3000.0,
        "exit_price": None,
        "pnl": None,
        "pnl_pct": None,
        "fees": 1.2,
        "exit_reason": "open",
    }
    assert all(type(r[k]) is float for r in records for k in ("size", "entry_price", "fees"))
    assert [r["id"] for r in repo.trade_records(TradeStatus.CLOSED)] == [closed_id]
    assert [r["id"] for r in repo.trade_records(TradeStatus.OPEN)] == [short.trade_id]


# --- the journal: adopting stored orders on restart -----------------------------------------------


def _ask(journal: RepositoryJournal, role: str, side: str, amount: str, symbol: str = BTC, **kw: Any) -> str:
    return journal.intent(
        symbol=symbol,
        side=side,
        type=kw.get("type", "market"),
        role=role,
        amount=Decimal(amount),
        price=kw.get("price"),
        stop_price=kw.get("stop_price"),
        reason=kw.get("reason"),
    )


def _first_run(journal: RepositoryJournal) -> list[str]:
    """Enter, protect with a stop, exit: what a deterministic strategy asks for, with the broker's reports."""
    entry_id = _ask(journal, "entry", "buy", "0.5")
    journal.accepted(entry_id)
    journal.filled(entry_id, f"{entry_id}-f1", Decimal("0.5"), Decimal(100), Decimal("0.05"), T0)
    stop_id = _ask(journal, "protective", "sell", "0.5", type="stop", stop_price=Decimal(95), reason="stop_loss")
    journal.accepted(stop_id)
    exit_id = _ask(journal, "exit", "sell", "0.5", reason="signal")
    journal.accepted(exit_id)
    journal.filled(exit_id, f"{exit_id}-f1", Decimal("0.5"), Decimal(105), Decimal("0.05"), T0 + HOUR)
    journal.closed(stop_id, "canceled")
    return [entry_id, stop_id, exit_id]


def test_a_new_journal_adopts_the_stored_orders_in_order_and_writes_nothing(
    repo: Repository, engine: Engine, fresh_engine: Engine
) -> None:
    first = _first_run(RepositoryJournal(repo))
    written = {model: count(engine, model) for model in (Order, Fill, Trade, Event)}
    restarted_repo = Repository.attach(fresh_engine, "alpha", "hash-a", "paper")

    journal = RepositoryJournal(restarted_repo)
    assert journal.catching_up
    replayed = _first_run(journal)

    assert replayed == first
    assert journal.adopted == 3 and not journal.catching_up
    assert {model: count(engine, model) for model in written} == written
    (trade,) = restarted_repo.trades()
    assert (trade.status, trade.exit_reason, trade.pnl) == (TradeStatus.CLOSED, "signal", Decimal("2.4"))

    # Caught up: the next request is new and written as such.
    next_entry = _ask(journal, "entry", "buy", "0.25")
    assert next_entry not in first
    assert restarted_repo.orders()[-1].client_order_id == next_entry
    assert count(engine, Order) == written[Order] + 1


def test_a_journal_adopts_an_open_trade_and_attaches_later_exits_to_it(repo: Repository) -> None:
    entry_id = _ask(RepositoryJournal(repo), "entry", "buy", "1")
    (trade,) = repo.trades()

    journal = RepositoryJournal(repo)
    assert _ask(journal, "entry", "buy", "1") == entry_id
    exit_id = _ask(journal, "exit", "sell", "1")

    assert exit_id == f"{repo.prefix}-{trade.id}-2"
    assert len(repo.trades()) == 1


def test_a_replay_asking_for_something_else_raises_divergence_naming_the_stored_order(
    repo: Repository, engine: Engine
) -> None:
    first = _first_run(RepositoryJournal(repo))
    orders = count(engine, Order)
    journal = RepositoryJournal(repo)
    assert _ask(journal, "entry", "buy", "0.5") == first[0]

    with pytest.raises(Divergence, match=re.escape(first[1])) as diverged:
        _ask(journal, "protective", "sell", "0.75", type="stop", stop_price=Decimal(95))

    assert "0.75" in str(diverged.value) and "0.5" in str(diverged.value)
    assert count(engine, Order) == orders
