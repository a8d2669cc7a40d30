"""The order safety protocol on IBKR, against the fake TWS with the real trade repository on SQLite:
orderRef carries the committed client order id, one order per intent whatever the connection does,
executions recorded once by execId with their commissions, cancels confirmed, OCA exits."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from fakes.ib import FakeIB
from fakes.ib_support import intent, place

from tradeforge.brokers.ibkr import CORRECTION_EVENT, IbkrVenue
from tradeforge.brokers.orders import OrderRefused
from tradeforge.persistence.models import OrderStatus
from tradeforge.persistence.repository import Repository
from tradeforge.resilience.errors import Rejected


def test_a_market_order_carries_its_client_id_in_order_ref_and_its_fill_and_commission_are_recorded_once(
    fake: FakeIB, venue: IbkrVenue, repository: Repository
):
    client_id = place(venue, intent())
    state = venue.sync("AAPL", client_id)
    assert state.status == OrderStatus.FILLED and state.filled == Decimal(100)
    assert [o.orderRef for o in fake.placed] == [client_id]
    venue.sync("AAPL", client_id)  # a second look records nothing new
    [fill] = repository.fills()
    execution = fake.executions()[0].execution
    assert fill.venue_trade_id == execution.execId and fill.amount == Decimal(100)
    assert fill.fee == Decimal("1") and fill.fee_currency == "USD"  # IB's minimum per order, from its report
    assert repository.order(client_id).venue_order_id == str(execution.permId)


def test_an_order_not_in_the_database_is_never_sent(fake: FakeIB, venue: IbkrVenue):
    with pytest.raises(Rejected, match="record the intent first"):
        venue.send("AAPL", "ib-bot-99-1")
    assert not fake.placed


def test_sending_an_intent_twice_places_it_once(fake: FakeIB, venue: IbkrVenue):
    client_id = place(venue, intent())
    venue.send("AAPL", client_id)
    assert len(fake.placed) == 1


def test_partial_fills_are_recorded_as_they_come_then_the_order_is_filled(
    fake: FakeIB, venue: IbkrVenue, repository: Repository
):
    fake.partial_fill = 30
    client_id = place(venue, intent())
    first = venue.sync("AAPL", client_id)
    assert first.status == OrderStatus.PARTIALLY_FILLED and Decimal(0) < first.filled < Decimal(100)
    fake.sleep(5)
    final = venue.sync("AAPL", client_id)
    assert final.status == OrderStatus.FILLED and final.filled == Decimal(100)
    fills = repository.fills()
    assert [f.amount for f in fills] == [Decimal(30), Decimal(30), Decimal(30), Decimal(10)]
    assert len({f.venue_trade_id for f in fills}) == 4
    assert repository.order(client_id).fees == Decimal(4)  # one commission report per execution


def test_a_resting_limit_order_is_canceled_only_when_ib_confirms(
    fake: FakeIB, venue: IbkrVenue, repository: Repository
):
    client_id = place(venue, intent(type="limit", price="50"))
    assert venue.sync("AAPL", client_id).status == OrderStatus.OPEN
    state = venue.cancel("AAPL", client_id)
    assert state.status == OrderStatus.CANCELED
    assert not fake.reqAllOpenOrders()
    assert repository.order(client_id).status == OrderStatus.CANCELED


def test_a_rejected_order_is_marked_rejected_with_ibs_reason(fake: FakeIB, venue: IbkrVenue, repository: Repository):
    fake.reject_next_order = "Insufficient buying power"
    checked = venue.check(intent(), Decimal(100))
    client_id = repository.record_intent(checked).client_order_id
    with pytest.raises(Rejected, match="Insufficient buying power"):
        venue.send("AAPL", client_id)
    assert repository.order(client_id).status == OrderStatus.REJECTED


def test_connection_lost_after_place_order_is_resolved_by_order_ref_and_never_resent(
    fake: FakeIB, venue: IbkrVenue, repository: Repository
):
    fake.drop_after_place = True
    client_id = place(venue, intent(type="limit", price="50"))
    stored = repository.order(client_id)
    assert stored.status == OrderStatus.OPEN and stored.venue_order_id == str(fake.placed[0].permId)
    assert len(fake.placed) == 1 and fake.connections == 2  # reconnected, looked it up, did not resend


def test_an_order_lost_with_the_connection_is_marked_lost_after_the_window_and_never_resent(
    fake: FakeIB, venue: IbkrVenue, repository: Repository
):
    fake.lose_next_order = True
    client_id = place(venue, intent())
    assert repository.order(client_id).status == OrderStatus.LOST
    assert not fake.placed and not repository.fills()


def test_fill_during_tws_restart_is_recorded_once_after_reconnecting(
    fake: FakeIB, venue: IbkrVenue, repository: Repository
):
    price = fake.price()
    client_id = place(venue, intent("sell", type="limit", price=f"{price + 1:.2f}"))
    assert venue.sync("AAPL", client_id).status == OrderStatus.OPEN
    fake.restart(down_for=600)  # the nightly restart; the market rises through the limit meanwhile
    fake.sleep(1800)
    assert not fake.connected and fake.executions()[0].execution.orderRef == client_id
    state = venue.sync("AAPL", client_id)
    assert state.status == OrderStatus.FILLED and state.new_fills == 1
    assert venue.sync("AAPL", client_id).new_fills == 0
    assert len(repository.fills()) == 1


def test_sync_during_tws_restart_reconnects_with_backoff_then_records_the_fill(
    fake: FakeIB, venue: IbkrVenue, repository: Repository
):
    client_id = place(venue, intent("sell", type="limit", price=f"{fake.price() + 1:.2f}"))
    fake.restart(down_for=300)
    down_since = fake.now
    venue.sync("AAPL", client_id)  # waits (backoff: 1, 2, 4 ... s) until TWS is back
    assert fake.now - down_since >= dt.timedelta(seconds=300) and fake.connections == 2
    fake.sleep(1800)
    assert venue.sync("AAPL", client_id).status == OrderStatus.FILLED
    assert len(repository.fills()) == 1 and len(fake.placed) == 1


def test_exits_of_one_trade_share_an_oca_group_so_ib_cancels_the_stop_when_the_target_fills(
    fake: FakeIB, venue: IbkrVenue, repository: Repository
):
    entry = place(venue, intent(amount="10"))
    venue.sync("AAPL", entry)
    trade_id = repository.order(entry).trade_id
    price = fake.price()
    stop = place(venue, intent("sell", "10", "stop", stop=f"{price - 50:.2f}", trade_id=trade_id, role="protective"))
    target = place(venue, intent("sell", "10", "limit", price=f"{price - 0.5:.2f}", trade_id=trade_id, role="exit"))
    fake.sleep(3)
    assert {o.ocaGroup for o in fake.placed[1:]} == {f"{repository.prefix}-{trade_id}"}
    assert venue.sync("AAPL", target).status == OrderStatus.FILLED
    assert venue.sync("AAPL", stop).status == OrderStatus.CANCELED


def test_check_rounds_to_the_contracts_increment_and_tick_and_refuses_what_ib_would(venue: IbkrVenue):
    checked = venue.check(intent(amount="10.7", type="limit", price="100.004"), Decimal(100))
    assert checked.amount == Decimal(10) and checked.price == Decimal("100.00")
    with pytest.raises(OrderRefused, match="rounds to 0"):
        venue.check(intent(amount="0.5"), Decimal(100))
    with pytest.raises(OrderRefused, match="MSFT: not a contract of this bot"):
        venue.check(intent(symbol="MSFT"), Decimal(100))
    assert venue.supports("AAPL", "stop") and not venue.supports("AAPL", "trailing_stop")


def test_holdings_are_positions_by_symbol_and_cash_by_currency(fake: FakeIB, venue: IbkrVenue):
    client_id = place(venue, intent(amount="10"))
    venue.sync("AAPL", client_id)
    held = venue.holdings()
    assert held["AAPL"] == Decimal(10)
    assert held["USD"] == Decimal(f"{fake.cash:.2f}") and "BASE" not in held


def test_open_orders_lists_ours_by_order_ref_and_foreign_ones_by_perm_id(fake: FakeIB, venue: IbkrVenue):
    client_id = place(venue, intent(type="limit", price="50"))
    foreign = fake.add_foreign_order(venue.contracts["AAPL"].contract, "SELL", 5, 500)
    listed = {o.client_order_id: o for o in venue.open_orders("AAPL")}
    assert set(listed) == {client_id, f"ib-{foreign.permId}"}
    assert listed[client_id].price == Decimal(50) and listed[client_id].type == "limit"


def test_an_execution_whose_commission_report_comes_late_is_recorded_once_when_it_arrives(
    fake: FakeIB, venue: IbkrVenue, repository: Repository
):
    fake.commission_delay = 3600  # sent below
    client_id = place(venue, intent())
    fake.sleep(2)
    waiting = venue.sync("AAPL", client_id)
    assert fake.trades()[0].orderStatus.status == "Filled"  # IB is done with it ...
    assert waiting.status == OrderStatus.OPEN and not repository.fills()  # ... but not final here without its fee
    fake.send_commission_reports()
    final = venue.sync("AAPL", client_id)
    venue.sync("AAPL", client_id)
    assert final.status == OrderStatus.FILLED and final.new_fills == 1
    [fill] = repository.fills()
    assert (fill.amount, fill.fee, fill.fee_currency) == (Decimal(100), Decimal(1), "USD")


def test_a_correction_before_the_execution_was_recorded_is_recorded_instead_of_it(
    fake: FakeIB, venue: IbkrVenue, repository: Repository
):
    fake.commission_delay = 3600  # sent below
    client_id = place(venue, intent())
    fake.sleep(2)
    [original] = fake.executions()
    corrected = fake.correct_execution(original.execution.execId, original.execution.price + 0.01, 1.25)
    venue.sync("AAPL", client_id)
    fake.send_commission_reports()  # the original's report, late: it changes nothing now
    state = venue.sync("AAPL", client_id)
    [fill] = repository.fills()
    assert state.status == OrderStatus.FILLED and fill.venue_trade_id == corrected.execution.execId
    assert corrected.execution.execId.endswith(".02") and original.execution.execId.endswith(".01")
    assert (fill.price, fill.fee) == (Decimal(str(corrected.execution.price)), Decimal("1.25"))


def test_a_correction_of_a_recorded_execution_is_never_counted_twice_and_is_reported_once(
    fake: FakeIB, venue: IbkrVenue, repository: Repository
):
    client_id = place(venue, intent())
    venue.sync("AAPL", client_id)
    [original] = fake.executions()
    corrected = fake.correct_execution(original.execution.execId, original.execution.price + 0.01, 1.25)
    venue.sync("AAPL", client_id)
    state = venue.sync("AAPL", client_id)
    [fill] = repository.fills()
    assert state.status == OrderStatus.FILLED and fill.venue_trade_id == original.execution.execId
    [event] = repository.events(CORRECTION_EVENT)
    assert f"IB corrected execution {original.execution.execId} as {corrected.execution.execId}" in event.message
    assert "commission 1.25 USD" in event.message


def test_a_cancel_after_a_partial_fill_waits_for_its_commission_report_before_it_is_final(
    fake: FakeIB, venue: IbkrVenue, repository: Repository
):
    fake.commission_delay, fake.partial_fill = 3, 30
    client_id = place(venue, intent())
    state = venue.cancel("AAPL", client_id)
    assert state.status == OrderStatus.CANCELED and state.filled == Decimal(30)
    [fill] = repository.fills()
    assert (fill.amount, fill.fee) == (Decimal(30), Decimal(1))


def test_an_order_filled_at_once_is_recorded_with_the_commission_report_on_its_way(
    fake: FakeIB, venue: IbkrVenue, repository: Repository
):
    fake.commission_delay = 2  # well within ibkr.order_timeout
    client_id = place(venue, intent())
    assert repository.order(client_id).status == OrderStatus.FILLED
    assert [f.fee for f in repository.fills()] == [Decimal(1)]


def test_a_sync_waits_briefly_for_a_commission_report_that_is_on_its_way(
    fake: FakeIB, venue: IbkrVenue, repository: Repository
):
    fake.commission_delay, fake.partial_fill = 2, 60  # well within ibkr.order_timeout
    client_id = repository.record_intent(venue.check(intent(), Decimal(100))).client_order_id
    sent = venue.send("AAPL", client_id)
    assert sent.status == OrderStatus.OPEN and sent.fills_pending  # 60 executed, the report not in yet
    state = venue.sync("AAPL", client_id)
    assert state.status == OrderStatus.FILLED and not state.fills_pending
    assert [(f.amount, f.fee) for f in repository.fills()] == [(Decimal(60), Decimal(1)), (Decimal(40), Decimal(1))]
