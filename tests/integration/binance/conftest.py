"""Fixtures for the Binance tests: the fake exchange on loopback, and real ccxt pointed at it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fakes.binance import FakeBinance, candle_rows
from fakes.support import KEYS, T0, fake_exchange_config

from tradeforge.resilience.exchange import ExchangeClient


@pytest.fixture(scope="session")
def btc_1h(shared_data: Path) -> list[tuple[int, str, str, str, str, str]]:
    return candle_rows(shared_data / "binance_BTC-USDT_1h.csv")


@pytest.fixture(scope="session")
def eth_1h(shared_data: Path) -> list[tuple[int, str, str, str, str, str]]:
    return candle_rows(shared_data / "binance_ETH-USDT_1h.csv")


@pytest.fixture
def fake(btc_1h: list, eth_1h: list) -> Iterator[FakeBinance]:
    """A started fake Binance with BTC/USDT and ETH/USDT 1h real candles, its clock at T0."""
    exchange = FakeBinance(start_ms=T0)
    exchange.add_candles("BTC/USDT", "1h", btc_1h)
    exchange.add_candles("ETH/USDT", "1h", eth_1h)
    exchange.set_balance("USDT", "10000")
    exchange.start()
    yield exchange
    exchange.stop()


@pytest.fixture
def client(fake: FakeBinance) -> ExchangeClient:
    """Real ccxt.binance against the fake, signed with the fake's keys, retries without real waiting."""
    return ExchangeClient.from_config(fake_exchange_config(fake), KEYS, sleep=lambda s: None)
