"""The order safety protocol against the fake Binance, with the real trade repository on SQLite:
intent before request, one order per intent whatever the network does, fills recorded once with
their fees, cancels confirmed, and orders the exchange would refuse refused locally."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from fakes.binance import FakeBinance, Fault
from fakes.support import HOUR, KEYS, fake_exchange_config, quick_retries

from tradeforge.brokers.ccxt import LookupPolicy, OrderGateway
from tradeforge.brokers.orders import MarketRules, OrderRefused
from tradeforge.persistence.database import make_engine
from tradeforge.persistence.migrate import upgrade
from tradeforge.persistence.models import OrderStatus
from tradeforge.persistence.repository import OrderIntent, Repository
from tradeforge.resilience.errors import Rejected
from tradeforge.resilience.exchange import ExchangeClient

PRICE = Decimal("46216.93")  # BTC/USDT's open at the fake's clock (T0)


@pytest.fixture
def repository(tmp_path: Path) -> Repository:
    engine = make_engine(f"sqlite:///{tmp_path}/bot.sqlite")
    upgrade(engine)
    return Repository.attach(engine, "live-bot", "hash", "live")


@pytest.fixture
def gateway(fake: FakeBinance, repository: Repository) -> OrderGateway:
    client = ExchangeClient.from_config(fake_exchange_config(fake, timeout_ms=300), KEYS, sleep=lambda s: None)
    quick_retries(client, attempts=2)
    return OrderGateway(client, repository, lookup=LookupPolicy(wait=0.01, not_found=3, window=0.05))


def buy(amount: str, type: str = "market", price: str | None = None, stop: str | None = None) -> OrderIntent:
    return OrderIntent(
        None,
        "BTC/USDT",
        "buy",
        type,
        "entry",
        Decimal(amount),
        price=None if price is None else Decimal(price),
        stop_price=None if stop is None else Decimal(stop),
    )


def stored(repository: Repository, client_id: str):
    return next(o for o in repository.orders() if o.client_order_id == client_id)


def test_the_intent_is_committed_before_the_request_reaches_the_exchange(
    fake: FakeBinance, gateway: OrderGateway, repository: Repository, tmp_path: Path
):
    seen: list[tuple[str, str]] = []
    reader = Repository.attach(make_engine(f"sqlite:///{tmp_path}/bot.sqlite"), "live-bot", "hash", "live")

    def check(params: dict[str, str]) -> None:
        row = stored(reader, params["newClientOrderId"])
        seen.append((row.client_order_id, row.status.value))

    fake.on_order_request = check
    state = gateway.place(buy("0.01"), PRICE)
    assert seen == [(state.client_order_id, "pending_submit")]


def test_a_market_order_fills_and_its_fill_and_fee_are_recorded_once(
    fake: FakeBinance, gateway: OrderGateway, repository: Repository
):
    state = gateway.place(buy("0.01"), PRICE)
    assert state.status == OrderStatus.FILLED and state.filled == Decimal("0.01")
    assert fake.order(state.client_order_id).client_order_id == state.client_order_id  # newClientOrderId used
    gateway.sync("BTC/USDT", state.client_order_id)  # a second look changes nothing
    [fill] = repository.fills()
    assert fill.venue_trade_id == str(fake.trades[0].id) and fill.price == PRICE and fill.amount == Decimal("0.01")
    assert fill.fee == Decimal("0.00001") * PRICE and fill.fee_currency == "USDT"  # BTC fee valued in USDT
    order = stored(repository, state.client_order_id)
    assert order.status == OrderStatus.FILLED and order.venue_order_id == str(fake.orders[0].order_id)


def test_a_response_lost_after_acceptance_gives_exactly_one_order(
    fake: FakeBinance, gateway: OrderGateway, repository: Repository
):
    fake.inject("POST", "/api/v3/order", Fault.lost_response(hang=1.0))
    state = gateway.place(buy("0.01", "limit", price="40000"), PRICE)
    assert state.status == OrderStatus.OPEN
    assert len(fake.calls("POST", "/api/v3/order")) == 1 and len(fake.orders) == 1
    assert stored(repository, state.client_order_id).venue_order_id == str(fake.orders[0].order_id)


def test_a_lost_response_on_a_filled_market_order_records_the_fill(
    fake: FakeBinance, gateway: OrderGateway, repository: Repository
):
    fake.inject("POST", "/api/v3/order", Fault.lost_response(status=502))
    state = gateway.place(buy("0.01"), PRICE)
    assert state.status == OrderStatus.FILLED and len(repository.fills()) == 1 and len(fake.orders) == 1


def test_an_order_the_exchange_never_received_is_lost_after_the_window_and_not_resent(
    fake: FakeBinance, gateway: OrderGateway, repository: Repository
):
    fake.inject("POST", "/api/v3/order", Fault.timeout(1.0))  # the request dies before the matching engine
    state = gateway.place(buy("0.01", "limit", price="40000"), PRICE)
    assert state.status == OrderStatus.LOST and stored(repository, state.client_order_id).status == OrderStatus.LOST
    assert fake.orders == [] and len(fake.calls("POST", "/api/v3/order")) == 1
    assert len(fake.calls("GET", "/api/v3/order")) >= 3  # "does not exist", repeatedly, over the window


def test_lookups_keep_going_through_temporary_failures(fake: FakeBinance, gateway: OrderGateway):
    fake.inject("POST", "/api/v3/order", Fault.lost_response(status=503))
    fake.inject("GET", "/api/v3/order", Fault.server_error(503), times=4)
    state = gateway.place(buy("0.01", "limit", price="40000"), PRICE)
    assert state.status == OrderStatus.OPEN and len(fake.orders) == 1


def test_a_rejection_is_recorded_and_raised_without_retry(
    fake: FakeBinance, gateway: OrderGateway, repository: Repository
):
    fake.set_balance("USDT", "10")
    with pytest.raises(Rejected, match="insufficient balance"):
        gateway.place(buy("0.01"), PRICE)
    [order] = repository.orders()
    assert order.status == OrderStatus.REJECTED and len(fake.calls("POST", "/api/v3/order")) == 1


@pytest.mark.parametrize(
    ("amount", "price", "reason"),
    [
        (
            "0.000001",
            None,
            r"the amount rounds to 0\.00000 at step 0\.00001, below the exchange's minimum of 0\.00001 BTC",
        ),
        ("0.0001", None, r"notional 4\.62169300 USDT is below the exchange's minimum of 5 USDT"),
        ("0.0002", "20000", r"notional 4\.00000000 USDT is below"),
    ],
)
def test_orders_the_exchange_would_refuse_are_refused_locally_with_the_reason(
    fake: FakeBinance, gateway: OrderGateway, repository: Repository, amount: str, price: str | None, reason: str
):
    with pytest.raises(OrderRefused, match=reason):
        gateway.place(buy(amount, "limit" if price else "market", price=price), PRICE)
    assert repository.orders() == [] and fake.calls("POST", "/api/v3/order") == []


def test_amounts_round_down_and_prices_to_the_tick(fake: FakeBinance, gateway: OrderGateway, repository: Repository):
    state = gateway.place(buy("0.0123456", "limit", price="40000.006"), PRICE)
    order = fake.order(state.client_order_id)
    assert (order.qty, order.price) == (Decimal("0.01234"), Decimal("40000.01"))
    assert stored(repository, state.client_order_id).amount == Decimal("0.01234")


def test_stop_loss_orders_rest_on_the_exchange(fake: FakeBinance, gateway: OrderGateway, repository: Repository):
    gateway.place(buy("0.01"), PRICE)
    trade_id = repository.orders()[0].trade_id
    stop = OrderIntent(
        trade_id, "BTC/USDT", "sell", "stop", "protective", Decimal("0.00999"), stop_price=Decimal("45000")
    )
    state = gateway.place(stop, PRICE)
    assert state.status == OrderStatus.OPEN and fake.order(state.client_order_id).type == "STOP_LOSS"
    assert fake.order(state.client_order_id).stop_price == Decimal("45000")


def test_partial_fills_are_recorded_as_they_come_and_a_cancel_is_confirmed(
    fake: FakeBinance, gateway: OrderGateway, repository: Repository
):
    fake.partial_fill_fraction = Decimal("0.25")
    state = gateway.place(buy("0.02", "limit", price="60000"), PRICE)  # marketable: a quarter fills at once
    assert state.status == OrderStatus.PARTIALLY_FILLED and len(repository.fills()) == 1
    fake.advance(HOUR)
    assert gateway.sync("BTC/USDT", state.client_order_id).new_fills == 1
    assert gateway.sync("BTC/USDT", state.client_order_id).new_fills == 0
    canceled = gateway.cancel("BTC/USDT", state.client_order_id)
    assert canceled.status == OrderStatus.CANCELED and canceled.filled == Decimal("0.01")
    order = stored(repository, state.client_order_id)
    assert order.status == OrderStatus.CANCELED and order.filled == Decimal("0.01") and len(repository.fills()) == 2


def test_a_cancel_whose_answer_is_lost_is_confirmed_by_lookup(
    fake: FakeBinance, gateway: OrderGateway, repository: Repository
):
    state = gateway.place(buy("0.01", "limit", price="40000"), PRICE)
    fake.inject("DELETE", "/api/v3/order", Fault.lost_response(hang=1.0))
    assert gateway.cancel("BTC/USDT", state.client_order_id).status == OrderStatus.CANCELED
    assert fake.order(state.client_order_id).status == "CANCELED"


def test_a_cancel_that_races_a_fill_ends_filled(fake: FakeBinance, gateway: OrderGateway, repository: Repository):
    state = gateway.place(buy("0.01", "limit", price="40000"), PRICE)
    fake.fill(state.client_order_id)  # filled on the exchange before our cancel arrives
    assert gateway.cancel("BTC/USDT", state.client_order_id).status == OrderStatus.FILLED
    assert stored(repository, state.client_order_id).status == OrderStatus.FILLED and len(repository.fills()) == 1


def test_a_fill_while_the_bot_was_down_is_recorded_once_on_the_next_sync(
    fake: FakeBinance, gateway: OrderGateway, repository: Repository
):
    state = gateway.place(buy("0.01", "limit", price="40000"), PRICE)
    fake.fill(state.client_order_id, "0.004", "39990")
    fake.fill(state.client_order_id, "0.006", "39980")
    for _ in range(2):
        gateway.sync("BTC/USDT", state.client_order_id)
    assert [(f.amount, f.price) for f in repository.fills()] == [
        (Decimal("0.004"), Decimal("39990")),
        (Decimal("0.006"), Decimal("39980")),
    ]
    assert stored(repository, state.client_order_id).status == OrderStatus.FILLED


def test_market_rules_come_from_the_exchange_info(gateway: OrderGateway):
    rules = gateway.rules("BTC/USDT")
    assert rules == MarketRules(
        "BTC/USDT",
        "BTC",
        "USDT",
        Decimal("0.00001"),
        Decimal("0.01"),
        Decimal("0.00001"),
        Decimal("5"),
        frozenset({"LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS", "STOP_LOSS_LIMIT"}),
    )
    with pytest.raises(OrderRefused, match="trailing_stop orders are not supported"):
        rules.check("sell", "trailing_stop", Decimal(1), None, None, PRICE)
