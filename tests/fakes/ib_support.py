"""Helpers for the IBKR tests: the fake TWS over a scripted one-minute market, the ibkr settings that
reach it, and orders placed as the live broker places them (check, commit the intent, send)."""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal

from fakes.ib import FakeIB
from tradeforge.brokers.ibkr import IbkrVenue
from tradeforge.config.schema import IbkrConfig
from tradeforge.persistence.repository import OrderIntent

ORIGIN = dt.datetime(2026, 3, 2, 14, 0, tzinfo=dt.UTC)
MINUTE = dt.timedelta(minutes=1)


def price_path(count: int = 2000) -> list[tuple[float, float, float, float, float]]:
    """A wavy, slowly rising market (so a moving-average cross trades), one bar per minute."""
    bars = []
    previous = 100.0
    for i in range(count):
        close = round(100 + 5 * math.sin(i / 12) + i * 0.01, 2)
        bars.append(
            (previous, round(max(previous, close) + 0.05, 2), round(min(previous, close) - 0.05, 2), close, 1000.0)
        )
        previous = close
    return bars


def make_fake(**kwargs: object) -> FakeIB:
    fake = FakeIB(
        origin=ORIGIN, bars=price_path(), bar_seconds=60, now=ORIGIN + 300 * MINUTE + dt.timedelta(seconds=30), **kwargs
    )  # type: ignore[arg-type]
    fake.list_contract("AAPL", primary_exchange="NASDAQ")
    fake.list_contract("EUR", "CASH", "IDEALPRO", "USD", min_tick=0.00005, size_increment=1)
    fake.list_contract("ES", "FUT", "CME", "USD", expiry="20260619", min_tick=0.25)
    fake.list_contract("XYZ", primary_exchange="NYSE")
    fake.list_contract("XYZ", primary_exchange="ARCA")
    return fake


def ibkr_settings(**overrides: object) -> IbkrConfig:
    return IbkrConfig.model_validate(
        {
            "port": 7497,
            "client_id": 7,
            "account": "DU1234567",
            "contracts": {
                "EURUSD": {"symbol": "EUR", "sec_type": "CASH", "exchange": "IDEALPRO", "currency": "USD"},
                "ES": {"symbol": "ES", "sec_type": "FUT", "exchange": "CME", "expiry": "202606"},
            },
            "poll_interval": 1.0,
            "grace": 2.0,
            "order_timeout": 5.0,
            "reconnect_wait_max": 30.0,
            "reconnect_give_up": 600.0,
            **overrides,
        }
    )


def intent(
    side: str = "buy",
    amount: str = "100",
    type: str = "market",
    price: str | None = None,
    stop: str | None = None,
    *,
    trade_id: int | None = None,
    role: str = "entry",
    symbol: str = "AAPL",
) -> OrderIntent:
    return OrderIntent(
        trade_id,
        symbol,
        side,
        type,
        role,
        Decimal(amount),
        price=None if price is None else Decimal(price),
        stop_price=None if stop is None else Decimal(stop),
    )


def place(venue: IbkrVenue, wanted: OrderIntent) -> str:
    """As the live broker does: check, commit the intent, then send."""
    checked = venue.check(wanted, Decimal("100"))
    client_id = venue.repository.record_intent(checked).client_order_id
    venue.send(wanted.symbol, client_id)
    return client_id
