"""Fixtures for the Yahoo tests: yfinance reaching the recorded answers through its `session=`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
import yfinance
from fakes.yahoo import FakeYahoo

from tradeforge.feeds.yahoo import YahooClient
from tradeforge.resilience.exchange import RetryPolicy


class Clock:
    """A settable UTC clock shared by the fake Yahoo and the code under test."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture(scope="session", autouse=True)
def _yfinance_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """yfinance keeps a cookie and time-zone cache on disk; tests keep theirs in a temporary folder."""
    yfinance.set_tz_cache_location(str(tmp_path_factory.mktemp("yfinance-cache")))


@pytest.fixture
def clock() -> Clock:
    return Clock(dt.datetime(2015, 1, 5, 12, tzinfo=dt.UTC))


@pytest.fixture
def yahoo(clock: Clock) -> Iterator[FakeYahoo]:
    yield FakeYahoo(clock)


@pytest.fixture
def client(yahoo: FakeYahoo) -> YahooClient:
    """yfinance's client on a session served by the fake; retries without real waiting."""
    return YahooClient(
        yahoo.session(), RetryPolicy(attempts=3, initial=0.0, maximum=0.0, jitter=0.0), sleep=lambda s: None
    )


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    return tmp_path / "user_data"
