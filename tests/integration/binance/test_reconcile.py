"""Startup reconciliation against the fake Binance: what happened while the bot was down is recorded
once, intents caught by a crash are resolved without a resend, foreign orders are left alone, and a
position the account does not cover stops trading."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from fakes.binance import FakeBinance
from fakes.support import KEYS, fake_exchange_config, quick_retries

from tradeforge.brokers.ccxt import LookupPolicy, OrderGateway
from tradeforge.brokers.reconcile import reconcile
from tradeforge.persistence.database import make_engine
from tradeforge.persistence.migrate import upgrade
from tradeforge.persistence.models import OrderStatus
from tradeforge.persistence.repository import OrderIntent, Repository
from tradeforge.resilience.exchange import ExchangeClient

PRICE = Decimal("46216.93")


@pytest.fixture
def gateway(fake: FakeBinance, tmp_path: Path) -> OrderGateway:
    engine = make_engine(f"sqlite:///{tmp_path}/bot.sqlite")
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


def test_an_order_with_our_prefix_missing_from_the_database_stops_trading(fake: FakeBinance, gateway: OrderGateway):
    ours = f"{gateway.repository.prefix}-99-1"
    fake.place("BTC/USDT", "BUY", "LIMIT", "0.01", "30000", client_order_id=ours)
    report = reconcile(gateway, ["BTC/USDT"])
    assert report.unknown_ours == [ours] and not report.can_trade
    assert "needs a person" in report.summary()


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
