"""Startup reconciliation against the fake Binance: what happened while the bot was down is recorded
once, intents caught by a crash are resolved without a resend, foreign orders are left alone, and a
position the account does not cover stops trading."""

from __future__ import annotations

from decimal import Decimal

import pytest
from fakes.binance import FakeBinance
from fakes.support import KEYS, fake_exchange_config, quick_retries
from sqlalchemy import Engine

from tradeforge.brokers.ccxt import LookupPolicy, OrderGateway
from tradeforge.brokers.reconcile import accept_exchange_state, reconcile
from tradeforge.persistence.migrate import upgrade
from tradeforge.persistence.models import OrderStatus
from tradeforge.persistence.repository import OrderIntent, Repository
from tradeforge.resilience.exchange import ExchangeClient

PRICE = Decimal("46216.93")


@pytest.fixture
def gateway(fake: FakeBinance, db_engine: Engine) -> OrderGateway:
    """On SQLite and on PostgreSQL (adoption writes a trade id of its own choosing)."""
    engine = db_engine
    upgrade(engine)
    repository = Repository.attach(engine, "live-bot", "hash", "live")
    client = quick_retries(ExchangeClient.from_config(fake_exchange_config(fake), KEYS, sleep=lambda s: None), 2)
    return OrderGateway(client, repository, lookup=LookupPolicy(wait=0.01, not_found=3, window=0.05))


def limit_buy(price: str, amount: str = "0.01") -> OrderIntent:
    return OrderIntent(None, "BTC/USDT", "buy", "limit", "entry", Decimal(amount), price=Decimal(price))


def status(gateway: OrderGateway, client_id: str) -> OrderStatus:
    return next(o.status for o in gateway.repository.orders() if o.client_order_id == client_id)


def test_fills_and_cancels_while_the_bot_was_down_are_recorded_once(fake: FakeBinance, gateway: OrderGateway):
    filled = gateway.place(limit_buy("40000"), PRICE).client_order_id
    canceled = gateway.place(limit_buy("39000"), PRICE).client_order_id
    fake.fill(filled)  # the bot is down
    fake.cancel(canceled)
    report = reconcile(gateway, ["BTC/USDT"])
    assert {s.client_order_id: s.status for s in report.updated} == {
        filled: OrderStatus.FILLED,
        canceled: OrderStatus.CANCELED,
    }
    assert len(gateway.repository.fills()) == 1
    again = reconcile(gateway, ["BTC/USDT"])
    assert again.updated == [] and len(gateway.repository.fills()) == 1
    assert report.can_trade


def test_an_intent_committed_just_before_a_crash_is_lost_not_resent(fake: FakeBinance, gateway: OrderGateway):
    client_id = gateway.repository.record_intent(limit_buy("40000")).client_order_id  # then the process died
    report = reconcile(gateway, ["BTC/USDT"])
    assert [(s.client_order_id, s.status) for s in report.updated] == [(client_id, OrderStatus.LOST)]
    assert fake.calls("POST", "/api/v3/order") == [] and fake.orders == []


def test_an_order_sent_just_before_a_crash_is_found_and_recorded(fake: FakeBinance, gateway: OrderGateway):
    client_id = gateway.repository.record_intent(limit_buy("40000")).client_order_id
    gateway.client.create_order("BTC/USDT", "limit", "buy", 0.01, 40000, client_id)  # answer never recorded
    report = reconcile(gateway, ["BTC/USDT"])
    assert [(s.client_order_id, s.status) for s in report.updated] == [(client_id, OrderStatus.OPEN)]
    assert status(gateway, client_id) == OrderStatus.OPEN and len(fake.calls("POST", "/api/v3/order")) == 1


def test_foreign_orders_are_reported_and_never_touched(fake: FakeBinance, gateway: OrderGateway):
    fake.place("BTC/USDT", "BUY", "LIMIT", "0.01", "30000", client_order_id="manual-1")
    report = reconcile(gateway, ["BTC/USDT"])
    assert report.foreign == ["manual-1"] and report.can_trade
    assert fake.order("manual-1").status == "NEW" and fake.calls("DELETE", "/api/v3/order") == []
    assert "foreign order manual-1" in report.summary()


def test_an_open_order_with_our_prefix_missing_from_the_database_is_adopted_with_its_fills(
    fake: FakeBinance, gateway: OrderGateway
):
    ours = f"{gateway.repository.prefix}-99-1"
    fake.place("BTC/USDT", "BUY", "LIMIT", "0.02", "30000", client_order_id=ours)
    fake.fill(ours, qty="0.005")  # part of it filled while the bot was down
    report = reconcile(gateway, ["BTC/USDT"])
    assert [(a.client_order_id, a.trade_id, a.role, a.new_trade) for a in report.adopted] == [(ours, 99, "entry", True)]
    order = gateway.repository.order(ours)
    assert order is not None and (order.status, order.filled, order.reason) == (
        OrderStatus.PARTIALLY_FILLED,
        Decimal("0.005"),
        "adopted",
    )
    assert order.venue_order_id == str(fake.order(ours).order_id) and order.price == Decimal(30000)
    assert [f.venue_trade_id for f in gateway.repository.fills()] == [str(t.id) for t in fake.trades]
    assert report.can_trade and report.positions[0].shortfall == 0
    assert fake.calls("DELETE", "/api/v3/order") == []
    decisions = [e.data["decision"] for e in gateway.repository.events("reconcile")]
    assert decisions == ["adopted", "summary"]
    # Later trades never take the adopted trade's id, so no future order id can clash with it.
    later = gateway.place(limit_buy("39000"), PRICE)
    assert int(later.client_order_id.split("-")[1]) > 99
    again = reconcile(gateway, ["BTC/USDT"])
    assert again.adopted == [] and len(gateway.repository.fills()) == 1
    # The strategy never asked for the adopted order, so a restarted strategy is not expected to ask again.
    assert [o.client_order_id for o in gateway.repository.stored_orders()] == [later.client_order_id]


def test_an_order_of_ours_that_would_clash_with_a_future_order_id_needs_a_person(
    fake: FakeBinance, gateway: OrderGateway
):
    placed = gateway.place(limit_buy("30000"), PRICE).client_order_id  # trade 1 has one order: its next is -2
    clash = placed.rsplit("-", 1)[0] + "-3"
    fake.set_balance("BTC", "0.01")
    fake.place("BTC/USDT", "SELL", "LIMIT", "0.01", "90000", client_order_id=clash)
    report = reconcile(gateway, ["BTC/USDT"])
    assert report.unknown_ours == [clash] and not report.can_trade and report.adopted == []
    assert "needs a person" in report.summary() and "next order would be number 2" in report.summary()
    assert gateway.repository.order(clash) is None and fake.order(clash).status == "NEW"


def test_positions_from_fills_are_checked_against_balances(fake: FakeBinance, gateway: OrderGateway):
    gateway.place(OrderIntent(None, "BTC/USDT", "buy", "market", "entry", Decimal("0.01")), PRICE)
    report = reconcile(gateway, ["BTC/USDT"])
    [btc] = report.positions
    assert (btc.asset, btc.from_fills, btc.balance) == ("BTC", Decimal("0.00999"), Decimal("0.00999"))
    assert report.can_trade
    fake.set_balance("BTC", "0.005")  # someone withdrew half of it
    short = reconcile(gateway, ["BTC/USDT"])
    assert not short.can_trade and short.mismatches[0].shortfall == Decimal("0.00499")
    assert "trading stays stopped" in short.summary()


def test_a_cancel_after_a_partial_fill_while_down_heals_the_fill_once(fake: FakeBinance, gateway: OrderGateway):
    entry = gateway.place(OrderIntent(None, "BTC/USDT", "buy", "market", "entry", Decimal("0.01")), PRICE)
    trade_id = gateway.repository.order(entry.client_order_id).trade_id  # type: ignore[union-attr]
    fake.set_balance("BTC", "0.02")
    exit_ = gateway.place(
        OrderIntent(trade_id, "BTC/USDT", "sell", "limit", "exit", Decimal("0.00999"), price=Decimal("60000")), PRICE
    ).client_order_id
    # The bot saw the cancel (a crash lost the partial fill that came just before it).
    fake.fill(exit_, qty="0.004")
    fake.cancel(exit_)
    gateway.repository.mark_order(exit_, OrderStatus.CANCELED)
    report = reconcile(gateway, ["BTC/USDT"])
    assert report.updated == [] and report.healed_fills == 1
    assert gateway.repository.order(exit_).filled == Decimal("0.004")  # type: ignore[union-attr]
    assert status(gateway, exit_) == OrderStatus.CANCELED
    assert reconcile(gateway, ["BTC/USDT"]).healed_fills == 0 and len(gateway.repository.fills()) == 2


def test_accepting_the_exchange_state_records_offsets_and_lets_the_bot_start(fake: FakeBinance, gateway: OrderGateway):
    gateway.place(OrderIntent(None, "BTC/USDT", "buy", "market", "entry", Decimal("0.01")), PRICE)
    fake.set_balance("BTC", "0.004")  # someone sold part of it by hand
    short = reconcile(gateway, ["BTC/USDT"])
    assert not short.can_trade
    accepted = accept_exchange_state(gateway, short, by="alice@desk")
    assert accepted.can_trade and accepted.positions[0].offset == Decimal("-0.00599")
    [event] = gateway.repository.events("reconcile_accept")
    assert event.data["by"] == "alice@desk" and event.data["offsets"] == {"BTC": "-0.00599"}
    assert "alice@desk accepted" in event.message and "BTC -0.00599" in event.message
    assert len(gateway.repository.fills()) == 1 and len(gateway.repository.orders()) == 1  # history kept
    later = reconcile(gateway, ["BTC/USDT"])  # the offset applies from now on
    assert later.can_trade and later.accepted_at is not None
    fake.set_balance("BTC", "0.001")  # and a new shortfall is still caught
    assert not reconcile(gateway, ["BTC/USDT"]).can_trade


def test_every_decision_and_the_summary_are_logged_as_reconcile_events(fake: FakeBinance, gateway: OrderGateway):
    fake.place("BTC/USDT", "BUY", "LIMIT", "0.01", "30000", client_order_id="manual-7")
    report = reconcile(gateway, ["BTC/USDT"])
    foreign, summary = gateway.repository.events("reconcile")
    assert foreign.data["decision"] == "foreign" and "manual-7" in foreign.message
    assert summary.data["decision"] == "summary" and summary.data["can_trade"] is True
    assert summary.data["foreign"] == ["manual-7"] and summary.message == report.summary().splitlines()[0]


def test_an_exit_of_ours_the_database_lacks_joins_its_trade_as_that_trades_next_order(
    fake: FakeBinance, gateway: OrderGateway
):
    entry = gateway.place(OrderIntent(None, "BTC/USDT", "buy", "market", "entry", Decimal("0.01")), PRICE)
    trade_id = gateway.repository.order(entry.client_order_id).trade_id  # type: ignore[union-attr]
    take_profit = f"{gateway.repository.prefix}-{trade_id}-2"  # its intent was lost with a restored backup
    fake.place("BTC/USDT", "SELL", "LIMIT", "0.00999", "60000", client_order_id=take_profit)
    report = reconcile(gateway, ["BTC/USDT"])
    assert [(a.trade_id, a.role, a.new_trade) for a in report.adopted] == [(trade_id, "exit", False)]
    fake.fill(take_profit)
    reconcile(gateway, ["BTC/USDT"])
    [trade] = gateway.repository.trades()
    assert status(gateway, take_profit) == OrderStatus.FILLED
    assert trade.amount == Decimal("0.00001")  # the entry's fee, which Binance took in BTC, is what is left
    assert gateway.place(
        OrderIntent(trade_id, "BTC/USDT", "buy", "limit", "entry", Decimal("0.01"), price=Decimal(30000)), PRICE
    ).client_order_id.endswith(f"-{trade_id}-3")


def test_an_adopted_stop_keeps_the_exchanges_type_and_stop_price(fake: FakeBinance, gateway: OrderGateway):
    fake.set_balance("BTC", "0.01")
    stop = f"{gateway.repository.prefix}-7-1"
    fake.place("BTC/USDT", "SELL", "STOP_LOSS", "0.01", client_order_id=stop, stop_price="40000")
    [adopted] = reconcile(gateway, ["BTC/USDT"]).adopted
    order = gateway.repository.order(stop)
    assert order is not None and (order.type, order.side, order.stop_price, order.price) == (
        "stop",
        "sell",
        Decimal(40000),
        None,
    )
    assert (adopted.role, order.role) == ("entry", "entry")  # a sell opening trade 7: short, as its id says
    assert gateway.repository.trades()[0].side == "short"


def test_an_order_open_on_the_exchange_that_the_database_holds_as_finished_needs_a_person(
    fake: FakeBinance, gateway: OrderGateway
):
    client_id = gateway.place(limit_buy("30000"), PRICE).client_order_id
    gateway.repository.mark_order(client_id, OrderStatus.CANCELED)  # e.g. a database restored wrongly
    report = reconcile(gateway, ["BTC/USDT"])
    assert report.unknown_ours == [client_id] and not report.can_trade
    assert "the database says canceled, but the exchange lists it open" in report.summary()
    assert fake.order(client_id).status == "NEW"
