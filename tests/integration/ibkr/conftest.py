"""Fixtures for the IBKR tests: the fake TWS (tests/fakes/ib.py), reached through our IbConnection as
the real `ib_async.IB` would be, and the trade repository on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from fakes.ib import FakeIB
from fakes.ib_support import ibkr_settings, make_fake
from sqlalchemy import Engine

from tradeforge.brokers.ibkr import IbkrVenue
from tradeforge.persistence.migrate import upgrade
from tradeforge.persistence.repository import Repository
from tradeforge.resilience.ibkr import IbConnection


@pytest.fixture
def fake() -> FakeIB:
    return make_fake()


@pytest.fixture
def connection(fake: FakeIB) -> IbConnection:
    connection = IbConnection(ibkr_settings(), lambda: fake)
    connection.connect()
    return connection


@pytest.fixture
def repository(db_engine: Engine) -> Repository:
    """The trade repository, on SQLite and on PostgreSQL (`db_engine` runs each test on both)."""
    upgrade(db_engine)
    return Repository.attach(db_engine, "ib-bot", "hash", "live")


@pytest.fixture
def venue(connection: IbConnection, repository: Repository) -> IbkrVenue:
    contracts = {name: connection.resolve(name) for name in ("AAPL", "EURUSD")}
    return IbkrVenue(connection, repository, contracts, lookup_wait=1.0, not_found=3, window=5.0)
