"""Fixtures for the IBKR tests: the fake TWS (tests/fakes/ib.py) over a scripted one-minute market,
reached through our IbConnection as the real `ib_async.IB` would be, and the trade repository on SQLite."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import pytest
from fakes.ib import FakeIB

from tradeforge.brokers.ibkr import IbkrVenue
from tradeforge.config.schema import IbkrConfig
from tradeforge.persistence.database import make_engine
from tradeforge.persistence.migrate import upgrade
from tradeforge.persistence.repository import Repository
from tradeforge.resilience.ibkr import IbConnection

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


@pytest.fixture
def fake() -> FakeIB:
    return make_fake()


@pytest.fixture
def connection(fake: FakeIB) -> IbConnection:
    connection = IbConnection(ibkr_settings(), lambda: fake)
    connection.connect()
    return connection


@pytest.fixture
def repository(tmp_path: Path) -> Repository:
    engine = make_engine(f"sqlite:///{tmp_path}/bot.sqlite")
    upgrade(engine)
    return Repository.attach(engine, "ib-bot", "hash", "live")


@pytest.fixture
def venue(connection: IbConnection, repository: Repository) -> IbkrVenue:
    contracts = {name: connection.resolve(name) for name in ("AAPL", "EURUSD")}
    return IbkrVenue(connection, repository, contracts, lookup_wait=1.0, not_found=3, window=5.0)
