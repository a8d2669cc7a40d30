"""The circuit breaker on the exchange: repeated failures open it; while open no call is tried and
no new entry is placed, but exits and cancels still are; a good answer after the reset closes it."""

from __future__ import annotations

import logging
import time
from decimal import Decimal
from pathlib import Path

import pytest
from fakes.binance import FakeBinance, Fault
from fakes.support import KEYS, fake_exchange_config, quick_retries

from tradeforge.brokers.ccxt import EntriesHalted, LookupPolicy, OrderGateway
from tradeforge.persistence.database import make_engine
from tradeforge.persistence.migrate import upgrade
from tradeforge.persistence.models import OrderStatus
from tradeforge.persistence.repository import OrderIntent, Repository
from tradeforge.resilience.errors import Rejected, Temporary
from tradeforge.resilience.exchange import CircuitOpen, ExchangeClient

PRICE = Decimal("46216.93")


@pytest.fixture
def gateway(fake: FakeBinance, tmp_path: Path) -> OrderGateway:
    engine = make_engine(f"sqlite:///{tmp_path}/bot.sqlite")
    upgrade(engine)
    repository = Repository.attach(engine, "live-bot", "hash", "live")
    config = fake_exchange_config(fake, breaker_failures=3, breaker_reset=0.3)
    client = quick_retries(ExchangeClient.from_config(config, KEYS, sleep=lambda s: None), attempts=1)
    return OrderGateway(client, repository, lookup=LookupPolicy(wait=0.01, not_found=3, window=0.05))


def trip(fake: FakeBinance, client: ExchangeClient) -> None:
    fake.inject("GET", "/api/v3/ticker/24hr", Fault.server_error(503), times=3)
    for _ in range(3):
        with pytest.raises(Temporary):
            client.fetch_ticker("BTC/USDT")


def test_repeated_failures_open_the_circuit_and_calls_are_not_tried(
    fake: FakeBinance, gateway: OrderGateway, caplog: pytest.LogCaptureFixture
):
    with caplog.at_level(logging.WARNING, "tradeforge.exchange"):
        trip(fake, gateway.client)
    assert gateway.client.circuit_open and "exchange circuit open after 3 failed calls" in caplog.text
    before = len(fake.requests)
    with pytest.raises(CircuitOpen):
        gateway.client.fetch_ticker("BTC/USDT")
    assert len(fake.requests) == before


def test_while_open_entries_are_refused_and_exits_still_go_out(fake: FakeBinance, gateway: OrderGateway):
    entry = gateway.place(OrderIntent(None, "BTC/USDT", "buy", "market", "entry", Decimal("0.01")), PRICE)
    trip(fake, gateway.client)
    with pytest.raises(EntriesHalted, match="no new entries while the exchange circuit is open"):
        gateway.place(OrderIntent(None, "BTC/USDT", "buy", "market", "entry", Decimal("0.01")), PRICE)
    assert len(gateway.repository.orders()) == 1  # the refused entry left no intent behind
    trade_id = gateway.repository.orders()[0].trade_id
    exit_ = gateway.place(OrderIntent(trade_id, "BTC/USDT", "sell", "market", "exit", Decimal("0.00999")), PRICE)
    assert exit_.status == OrderStatus.FILLED and entry.status == OrderStatus.FILLED
    assert [o.side for o in fake.orders] == ["BUY", "SELL"]


def test_a_good_answer_after_the_reset_time_closes_it(fake: FakeBinance, gateway: OrderGateway):
    trip(fake, gateway.client)
    time.sleep(0.35)
    gateway.client.fetch_ticker("BTC/USDT")  # the trial call succeeds
    assert not gateway.client.circuit_open
    assert gateway.place(OrderIntent(None, "BTC/USDT", "buy", "market", "entry", Decimal("0.01")), PRICE)


def test_refusals_show_the_exchange_is_up_and_do_not_open_it(fake: FakeBinance, gateway: OrderGateway):
    fake.set_balance("USDT", "1")
    for _ in range(5):
        with pytest.raises(Rejected):
            gateway.place(OrderIntent(None, "BTC/USDT", "buy", "market", "entry", Decimal("0.01")), PRICE)
    assert not gateway.client.circuit_open
