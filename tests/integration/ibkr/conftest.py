"""Fixtures for the IBKR tests: the fake TWS (tests/fakes/ib.py), reached through our IbConnection as
the real `ib_async.IB` would be, and the trade repository on SQLite."""

from __future__ import annotations

from pathlib import Path

import pytest
from fakes.ib import FakeIB
from fakes.ib_support import ibkr_settings, make_fake

from tradeforge.brokers.ibkr import IbkrVenue
from tradeforge.persistence.database import make_engine
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
def repository(tmp_path: Path) -> Repository:
    engine = make_engine(f"sqlite:///{tmp_path}/bot.sqlite")
    upgrade(engine)
    return Repository.attach(engine, "ib-bot", "hash", "live")


@pytest.fixture
def venue(connection: IbConnection, repository: Repository) -> IbkrVenue:
    contracts = {name: connection.resolve(name) for name in ("AAPL", "EURUSD")}
    return IbkrVenue(connection, repository, contracts, lookup_wait=1.0, not_found=3, window=5.0)
