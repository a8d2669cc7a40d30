"""Helpers for tests that talk to the fake Binance through tradeforge's exchange client."""

from __future__ import annotations

from pydantic import SecretStr

from fakes.binance import API_KEY, API_SECRET, FakeBinance
from tradeforge.config.schema import ExchangeConfig
from tradeforge.resilience.exchange import Credentials, ExchangeClient, RetryPolicy

HOUR = 3_600_000
# The fake's market clock starts here: 2022-01-01T00:00Z, inside the real 1h candles of shared/data.
T0 = 1_640_995_200_000
KEYS = Credentials(SecretStr(API_KEY), SecretStr(API_SECRET))


def fake_exchange_config(fake: FakeBinance, **overrides: object) -> ExchangeConfig:
    """What a user writes to point tradeforge at a self-hosted endpoint, here the fake."""
    settings: dict[str, object] = {
        "urls": fake.urls(),
        "options": {"fetchCurrencies": False},
        "timeout_ms": 1500,
        "poll_interval": 0.02,
        "grace": 0.0,
        "breaker_reset": 0.2,  # an open circuit lets a trial call through quickly
    }
    return ExchangeConfig.model_validate(settings | overrides)


def quick_retries(client: ExchangeClient, attempts: int = 3) -> ExchangeClient:
    """Retries without waiting, so fault tests stay fast."""
    client.retry = RetryPolicy(attempts=attempts, initial=0.0, maximum=0.0, jitter=0.0)
    return client
