"""The trade repository through a stock split (SQLite and PostgreSQL): the split's record converts the
resting orders as the broker did, the trade is derived on the new basis, an exit of the converted size
closes it exactly, `db check` finds nothing, and a restart replaying the split changes nothing."""

from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, event

from tradeforge.brokers.paper import amount_of
from tradeforge.persistence import migrate
from tradeforge.persistence.models import OrderStatus, TradeStatus
from tradeforge.persistence.repository import (
    FillReport,
    IntegrityProblem,
    OrderIntent,
    Repository,
    filled_after_split,
    split_ratio,
)

UTC = dt.UTC
BOUGHT, SPLIT, SOLD = (dt.datetime(2020, 8, day, tzinfo=UTC) for day in (20, 31, 31))
SOLD = SOLD.replace(hour=1)
# A float size from Backtrader: 4 x it as a float is 1.2000000000000002, 4 x it as a decimal 1.20000000000000016.
BEFORE, AFTER = Decimal("0.30000000000000004"), Decimal(repr(0.30000000000000004 * 4))


@pytest.fixture
def repo(db_engine: Engine) -> Repository:
    migrate.upgrade(db_engine)
    return Repository.attach(db_engine, "split-bot", "hash", "paper")


def holding_with_a_stop(repo: Repository) -> tuple[int, str]:
    """A long AAPL position bought at 400 with its stop at 200: (trade id, the stop's client order id)."""
    entry = repo.record_intent(OrderIntent(None, "AAPL", "buy", "market", "entry", BEFORE))
    repo.record_fill(entry.client_order_id, FillReport("f1", BEFORE, Decimal(400), BOUGHT, fee=Decimal("0.1")))
    stop = repo.record_intent(
        OrderIntent(entry.trade_id, "AAPL", "sell", "stop", "protective", BEFORE, stop_price=Decimal(200))
    )
    repo.mark_order(stop.client_order_id, OrderStatus.OPEN)
    return entry.trade_id, stop.client_order_id


def test_an_exit_of_the_converted_size_closes_the_trade_with_the_right_pnl(repo: Repository) -> None:
    trade_id, stop = holding_with_a_stop(repo)
    assert repo.record_split("AAPL", SPLIT, Decimal(4), AFTER, {stop: AFTER})

    (trade,) = repo.trades()
    assert (trade.amount, trade.status) == (AFTER, TradeStatus.OPEN)
    assert abs(trade.entry_price - 100) < Decimal("1e-14")  # what was paid over the shares held now
    converted = repo.order(stop)
    assert converted is not None
    assert (converted.amount, converted.intent_amount, converted.stop_price) == (AFTER, BEFORE, Decimal(50))
    # A restarted bot's replay asks for the stop as it asked for it before the split.
    assert [o.amount for o in repo.stored_orders() if o.client_order_id == stop] == [BEFORE]

    repo.record_fill(stop, FillReport("f2", AFTER, Decimal(90), SOLD, fee=Decimal("0.1")))
    (trade,) = repo.trades()
    assert (trade.amount, trade.status, trade.exit_price) == (0, TradeStatus.CLOSED, Decimal(90))
    assert trade.pnl == AFTER * 90 - BEFORE * 400 - Decimal("0.2")
    assert repo.integrity_problems() == []
    (record,) = repo.trade_records()
    assert record["size"] == float(AFTER) and record["entry_price"] == pytest.approx(100.0, rel=1e-15)

    (split,) = repo.splits()
    assert (split.trade_id, split.position_before, split.position_after) == (trade_id, BEFORE, AFTER)
    (event,) = repo.events("split")
    assert event.data is not None and event.data["orders"] == [stop]


def test_a_replayed_split_changes_nothing_and_a_different_one_is_refused(repo: Repository) -> None:
    _, stop = holding_with_a_stop(repo)
    assert repo.record_split("AAPL", SPLIT, Decimal(4), AFTER, {stop: AFTER})
    assert not repo.record_split("AAPL", SPLIT, Decimal(4), AFTER, {stop: AFTER})
    converted = repo.order(stop)
    assert converted is not None and (converted.amount, converted.intent_amount) == (AFTER, BEFORE)
    assert len(repo.events("split")) == 1
    with pytest.raises(IntegrityProblem, match="recorded as 4:1"):
        repo.record_split("AAPL", SPLIT, Decimal(4), AFTER * 2, {stop: AFTER * 2})


def test_a_split_while_flat_converts_nothing(repo: Repository) -> None:
    assert repo.record_split("AAPL", SPLIT, Decimal(4), Decimal(0), {})
    (split,) = repo.splits()
    assert (split.trade_id, split.position_before, split.position_after) == (None, 0, 0)
    assert repo.trades() == [] and repo.integrity_problems() == []


def test_a_retried_split_whose_first_commit_landed_still_counts_for_later_fills(repo: Repository) -> None:
    # The split's first attempt committed but its reply was lost (here: the same bot's row written through
    # a second repository); the retry finds the record. The later exit must still be derived on the new basis.
    trade_id, stop = holding_with_a_stop(repo)
    assert repo.trade_records()[0]["size"] == float(BEFORE)  # the bot's splits are read (none yet)
    first_attempt = Repository(repo.engine, repo.bot_id, repo.prefix)
    assert first_attempt.record_split("AAPL", SPLIT, Decimal(4), AFTER, {stop: AFTER})
    assert not repo.record_split("AAPL", SPLIT, Decimal(4), AFTER, {stop: AFTER})

    repo.record_fill(stop, FillReport("f2", AFTER, Decimal(90), SOLD, fee=Decimal("0.1")))
    (trade,) = repo.trades()
    assert (trade.id, trade.amount, trade.status) == (trade_id, 0, TradeStatus.CLOSED)
    assert repo.integrity_problems() == []


def test_an_order_partly_filled_before_the_split_fills_the_rest_on_the_new_basis(repo: Repository) -> None:
    # 40 of 100 bought at 400 before a 2:1 split: the order is for 200 after it, 80 of them filled; the 120
    # left fill after it. The order completes, the trade holds 200 and `db check` agrees with both.
    entry = repo.record_intent(OrderIntent(None, "AAPL", "buy", "market", "entry", Decimal(100)))
    repo.record_fill(entry.client_order_id, FillReport("f1", Decimal(40), Decimal(400), BOUGHT))
    assert repo.record_split("AAPL", SPLIT, Decimal(2), Decimal(80), {entry.client_order_id: Decimal(200)})
    converted = repo.order(entry.client_order_id)
    assert converted is not None
    assert (converted.amount, converted.filled, converted.average_price) == (200, 80, 200)
    assert (converted.intent_amount, converted.status) == (100, OrderStatus.PARTIALLY_FILLED)
    assert repo.integrity_problems() == []

    for fill_id in ("f2", "f3"):
        repo.record_fill(entry.client_order_id, FillReport(fill_id, Decimal(60), Decimal(200), SOLD))
    done = repo.order(entry.client_order_id)
    assert done is not None and (done.filled, done.status, done.average_price) == (200, OrderStatus.FILLED, 200)
    (trade,) = repo.trades()
    assert (trade.amount, trade.entry_price, trade.status) == (200, 200, TradeStatus.OPEN)
    assert repo.integrity_problems() == []
    (split,) = repo.splits()
    assert split.converted_orders == [entry.client_order_id]


def test_db_check_converts_only_the_fills_of_orders_the_split_converted(repo: Repository) -> None:
    # An exit that sold 10 of 20 before the split and was canceled then (not converted), and a stop partly
    # filled before it and converted: each order's fills are compared with its filled amount on its own basis.
    entry = repo.record_intent(OrderIntent(None, "AAPL", "buy", "market", "entry", Decimal(30)))
    repo.record_fill(entry.client_order_id, FillReport("f1", Decimal(30), Decimal(400), BOUGHT))
    exit_ = repo.record_intent(OrderIntent(entry.trade_id, "AAPL", "sell", "limit", "exit", Decimal(20), Decimal(420)))
    repo.record_fill(exit_.client_order_id, FillReport("f2", Decimal(10), Decimal(420), BOUGHT))
    repo.mark_order(exit_.client_order_id, OrderStatus.CANCELED)
    stop = repo.record_intent(
        OrderIntent(entry.trade_id, "AAPL", "sell", "stop", "protective", Decimal(20), stop_price=Decimal(300))
    )
    repo.record_fill(stop.client_order_id, FillReport("f3", Decimal(5), Decimal(300), BOUGHT))
    assert repo.record_split("AAPL", SPLIT, Decimal(3), Decimal(45), {stop.client_order_id: Decimal(60)})
    assert repo.integrity_problems() == []
    repo.record_fill(stop.client_order_id, FillReport("f4", Decimal(45), Decimal(100), SOLD))

    assert repo.integrity_problems() == []
    stored = {o.client_order_id: (o.amount, o.filled, o.status) for o in repo.orders()}
    assert stored[exit_.client_order_id] == (20, 10, OrderStatus.CANCELED)
    assert stored[stop.client_order_id] == (60, 60, OrderStatus.FILLED)
    (trade,) = repo.trades()
    assert (trade.amount, trade.status) == (0, TradeStatus.CLOSED)


def test_a_trade_list_read_before_a_split_does_not_hide_it_from_later_fills(repo: Repository) -> None:
    # A restarted bot (nothing read yet): the control thread lists trades, reading the bot's splits, while the
    # bot's thread records a split. The list's read, older than the split, must not become what the next
    # fill is derived with.
    _, stop = holding_with_a_stop(repo)
    restarted = Repository(repo.engine, repo.bot_id, repo.prefix)
    control, pending = threading.current_thread(), [True]

    def split_meanwhile(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if pending and threading.current_thread() is control and "FROM splits" in statement:
            pending.clear()
            split = ("AAPL", SPLIT, Decimal(4), AFTER, {stop: AFTER})
            bot = threading.Thread(target=restarted.record_split, args=split)
            bot.start()
            bot.join()

    event.listen(repo.engine, "after_cursor_execute", split_meanwhile)
    assert restarted.trade_records()[0]["size"] == float(BEFORE)  # as it was when it read
    assert not pending and len(restarted.splits()) == 1

    restarted.record_fill(stop, FillReport("f2", AFTER, Decimal(90), SOLD, fee=Decimal("0.1")))
    (trade,) = restarted.trades()
    assert (trade.amount, trade.status) == (0, TradeStatus.CLOSED)
    assert restarted.integrity_problems() == []


def test_a_reverse_split_replayed_after_a_restart_is_not_refused_and_db_check_agrees(repo: Repository) -> None:
    # 1:300: repr(1 / 300) has 19 decimals, one more than PostgreSQL's NUMERIC(36, 18) keeps. The ratio the run
    # converts with must be the one stored, or the restart's replay of the split is refused ("the candles or
    # the strategy changed") and `db check` converts the earlier fills with another ratio than the run did.
    ratio = split_ratio(1 / 300)
    assert ratio == Decimal("0.003333333333333334")
    entry = repo.record_intent(OrderIntent(None, "XYZ", "buy", "market", "entry", Decimal(300)))
    repo.record_fill(entry.client_order_id, FillReport("f1", Decimal(120), Decimal("0.5"), BOUGHT))
    after = amount_of(120 * (1 / 300))  # as the paper broker converts its float position
    converted = {entry.client_order_id: amount_of(300 * (1 / 300))}
    assert repo.record_split("XYZ", SPLIT, ratio, after, converted)
    assert repo.integrity_problems() == []

    restarted = Repository(repo.engine, repo.bot_id, repo.prefix)
    assert not restarted.record_split("XYZ", SPLIT, ratio, after, converted)  # the replay finds it as it was
    (split,) = restarted.splits()
    assert split.ratio == ratio
    order = restarted.order(entry.client_order_id)
    assert order is not None and order.filled == filled_after_split(Decimal(120), ratio)
    assert restarted.integrity_problems() == []
    rest = order.amount - order.filled
    restarted.record_fill(entry.client_order_id, FillReport("f2", rest, Decimal(150), SOLD))
    done = restarted.order(entry.client_order_id)
    assert done is not None and (done.filled, done.status) == (done.amount, OrderStatus.FILLED)
    assert restarted.integrity_problems() == []


def test_a_split_ratio_with_more_decimals_than_stored_is_refused(repo: Repository) -> None:
    with pytest.raises(ValueError, match="more than 18 decimals"):
        repo.record_split("XYZ", SPLIT, Decimal(repr(1 / 300)), Decimal(0), {})
    assert repo.splits() == []


def test_a_split_with_two_open_trades_on_the_symbol_is_refused_naming_them(repo: Repository) -> None:
    # Direction both: a long still partly open while a short entry has filled. One split row converts one
    # trade; converting only the first found would derive the other on the old basis.
    long = repo.record_intent(OrderIntent(None, "AAPL", "buy", "market", "entry", Decimal(10)))
    repo.record_fill(long.client_order_id, FillReport("f1", Decimal(10), Decimal(400), BOUGHT))
    short = repo.record_intent(OrderIntent(None, "AAPL", "sell", "market", "entry", Decimal(5)))
    repo.record_fill(short.client_order_id, FillReport("f2", Decimal(5), Decimal(410), BOUGHT))
    assert long.trade_id != short.trade_id
    with pytest.raises(IntegrityProblem, match=f"trades {long.trade_id}, {short.trade_id} all open on AAPL"):
        repo.record_split("AAPL", SPLIT, Decimal(4), Decimal(20), {})
    assert repo.splits() == [] and repo.events("split") == []
    assert sorted(t.amount for t in repo.trades()) == [5, 10]
