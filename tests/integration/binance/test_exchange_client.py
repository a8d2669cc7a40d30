"""The ccxt boundary: the client is built from config, and every ccxt error class on every call type
ends in the taxonomy with the expected number of attempts."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fakes.binance import FakeBinance, Fault
from fakes.support import KEYS, fake_exchange_config, quick_retries

from tradeforge.config.loader import load_config, redacted
from tradeforge.config.schema import ExchangeConfig
from tradeforge.resilience.errors import Fatal, OutcomeUnknown, Rejected, Temporary
from tradeforge.resilience.exchange import (
    ClockSkew,
    ExchangeClient,
    RateLimited,
    load_credentials,
    make_exchange,
    require_credentials,
)


def test_urls_and_options_are_merged_into_ccxts_and_the_rate_limiter_stays_on():
    config = ExchangeConfig(urls={"public": "http://127.0.0.1:9/api/v3"}, options={"recvWindow": 7000})
    exchange = make_exchange(config)
    assert exchange.urls["api"]["public"] == "http://127.0.0.1:9/api/v3"
    assert exchange.urls["api"]["private"].startswith("https://api.binance.com")  # the rest is kept
    assert exchange.options["recvWindow"] == 7000 and exchange.options["defaultType"] == "spot"
    assert exchange.enableRateLimit is True


def test_sandbox_uses_the_testnet_and_urls_still_win():
    assert "testnet" in make_exchange(ExchangeConfig(sandbox=True)).urls["api"]["public"]
    proxied = make_exchange(ExchangeConfig(sandbox=True, urls={"public": "http://127.0.0.1:9/api/v3"}))
    assert proxied.urls["api"]["public"] == "http://127.0.0.1:9/api/v3"


def test_keys_come_from_the_environment_or_secret_files_and_never_show(tmp_path: Path):
    config = ExchangeConfig(api_key_env="MY_KEY", api_secret_file=tmp_path / "secret")
    (tmp_path / "secret").write_text("s3cr3t-value\n")
    credentials = load_credentials(config, {"MY_KEY": "k3y-value"})
    assert credentials.api_key is not None and credentials.api_key.get_secret_value() == "k3y-value"
    assert credentials.secret is not None and credentials.secret.get_secret_value() == "s3cr3t-value"
    assert "s3cr3t-value" not in repr(credentials) and "k3y-value" not in str(credentials)


def test_default_key_variables_and_missing_keys_are_named(tmp_path: Path):
    config = ExchangeConfig()
    found = load_credentials(config, {"TRADEFORGE_BINANCE_API_KEY": "k", "TRADEFORGE_BINANCE_API_SECRET": "s"})
    assert found.complete
    with pytest.raises(Fatal, match="TRADEFORGE_BINANCE_API_SECRET"):
        require_credentials(config, load_credentials(config, {"TRADEFORGE_BINANCE_API_KEY": "k"}))
    with pytest.raises(Fatal, match="cannot read the secret file"):
        load_credentials(ExchangeConfig(api_key_file=tmp_path / "absent"), {})


def test_exchange_config_is_strict_and_show_config_hides_nothing_secret(tmp_path: Path):
    bot = tmp_path / "bot.yaml"
    bot.write_text("strategy: {preset: sma_cross}\nexchange: {sandbox: true, urls: {public: 'ftp://x'}}\n")
    with pytest.raises(Exception, match="must be an http"):
        load_config(bot)
    bot.write_text("strategy: {preset: sma_cross}\nexchange: {sandbox: true, api_keyy: x}\n")
    with pytest.raises(Exception, match="did you mean 'api_key_env'"):
        load_config(bot)
    bot.write_text("strategy: {preset: sma_cross}\nexchange: {sandbox: true}\n")
    shown = redacted(load_config(bot, environ={"TRADEFORGE_BINANCE_API_SECRET": "zzz"}))
    assert shown["exchange"]["sandbox"] is True and "zzz" not in str(shown)


# --- the error matrix -------------------------------------------------------------------------------

READS: dict[str, tuple[str, str, Callable[[ExchangeClient], Any]]] = {
    "fetch_ohlcv": ("GET", "/api/v3/klines", lambda c: c.fetch_ohlcv("BTC/USDT", "1h", None, 5)),
    "fetch_balance": ("GET", "/api/v3/account", lambda c: c.fetch_balance()),
    "fetch_order": ("GET", "/api/v3/order", lambda c: c.fetch_order_by_client_id("BTC/USDT", "tf-m-0")),
}
WRITES: dict[str, tuple[str, str, Callable[[ExchangeClient], Any]]] = {
    "create_order": (
        "POST",
        "/api/v3/order",
        lambda c: c.create_order("BTC/USDT", "limit", "buy", 0.01, 30000, "tf-m-1"),
    ),
    "cancel_order": ("DELETE", "/api/v3/order", lambda c: c.cancel_order("BTC/USDT", "tf-m-0")),
}
TRANSIENT = {
    "429 RateLimitExceeded": Fault.rate_limited(retry_after=0),
    "418 DDoSProtection": Fault.banned(retry_after=0),
    "503 ExchangeNotAvailable": Fault.server_error(503),
    "502 ExchangeNotAvailable": Fault.server_error(502),
    "504 RequestTimeout": Fault.error(504, -1007, "Timeout waiting for response from backend server."),
    "hang RequestTimeout": Fault.timeout(1.0),
}
DEFINITIVE = {
    # -2015 is not used here: once a key has worked, ccxt reads -2015 as a temporary ban (DDoSProtection).
    "401 AuthenticationError": (Fault.error(401, -2014, "API-key format invalid."), Fatal),
    "-1022 bad signature": (Fault.error(400, -1022, "Signature for this request is not valid."), Fatal),
    "-1021 clock skew": (
        Fault.error(400, -1021, "Timestamp for this request is outside of the recvWindow."),
        ClockSkew,
    ),
    "InsufficientFunds": (
        Fault.error(400, -2010, "Account has insufficient balance for requested action."),
        Rejected,
    ),
    "InvalidOrder": (Fault.error(400, -1013, "Filter failure: LOT_SIZE"), Rejected),
}


@pytest.fixture
def matrix_client(fake: FakeBinance) -> ExchangeClient:
    """A client with an open order tf-m-0 to query and cancel; short timeouts; 3 attempts per read."""
    client = ExchangeClient.from_config(fake_exchange_config(fake, timeout_ms=300), KEYS, sleep=lambda s: None)
    client.load_markets()
    client.create_order("BTC/USDT", "limit", "buy", 0.01, 30000, "tf-m-0")
    return quick_retries(client, attempts=3)


@pytest.mark.parametrize("fault", TRANSIENT.values(), ids=TRANSIENT.keys())
@pytest.mark.parametrize("call", READS, ids=READS.keys())
def test_transient_failure_on_a_read_is_retried_until_it_succeeds(
    fake: FakeBinance, matrix_client: ExchangeClient, call: str, fault: Fault
):
    method, path, run = READS[call]
    before = len(fake.calls(method, path))
    fake.inject(method, path, fault, times=2)
    assert run(matrix_client) is not None
    assert len(fake.calls(method, path)) - before == 3  # two failures, one success


@pytest.mark.parametrize("call", READS, ids=READS.keys())
def test_a_read_that_keeps_failing_gives_up_after_the_configured_attempts_as_temporary(
    fake: FakeBinance, matrix_client: ExchangeClient, call: str
):
    method, path, run = READS[call]
    before = len(fake.calls(method, path))
    fake.inject(method, path, Fault.server_error(503), times=10)
    with pytest.raises(Temporary):
        run(matrix_client)
    assert len(fake.calls(method, path)) - before == 3


@pytest.mark.parametrize("fault", TRANSIENT.values(), ids=TRANSIENT.keys())
@pytest.mark.parametrize("call", WRITES, ids=WRITES.keys())
def test_transient_failure_on_a_write_is_outcome_unknown_and_never_resent(
    fake: FakeBinance, matrix_client: ExchangeClient, call: str, fault: Fault
):
    method, path, run = WRITES[call]
    before = len(fake.calls(method, path))
    fake.inject(method, path, fault)
    with pytest.raises(OutcomeUnknown, match="tf-m-"):
        run(matrix_client)
    assert len(fake.calls(method, path)) - before == 1


# The exchange never answers a read with an order rejection, so those pairs are left out.
DEFINITIVE_CASES = [
    pytest.param(call, fault, expected, id=f"{call}-{name}")
    for name, (fault, expected) in DEFINITIVE.items()
    for call in [*READS, *WRITES]
    if not (expected is Rejected and call in READS)
]


@pytest.mark.parametrize(("call", "fault", "expected"), DEFINITIVE_CASES)
def test_definitive_answers_are_not_retried(
    fake: FakeBinance, matrix_client: ExchangeClient, call: str, fault: Fault, expected: type[Exception]
):
    method, path, run = {**READS, **WRITES}[call]
    before = len(fake.calls(method, path))
    fake.inject(method, path, fault)
    with pytest.raises(expected):
        run(matrix_client)
    assert len(fake.calls(method, path)) - before == 1


def test_retry_after_from_a_429_is_the_floor_of_the_wait(fake: FakeBinance):
    waits: list[float] = []
    client = ExchangeClient.from_config(fake_exchange_config(fake), KEYS, sleep=waits.append)
    fake.inject("GET", "/api/v3/time", Fault.rate_limited(retry_after=7))
    client.fetch_time()
    assert len(waits) == 1 and waits[0] >= 7


def test_retries_are_logged_with_the_call_and_attempt(fake: FakeBinance, caplog: pytest.LogCaptureFixture):
    client = quick_retries(ExchangeClient.from_config(fake_exchange_config(fake), KEYS, sleep=lambda s: None))
    fake.inject("GET", "/api/v3/time", Fault.server_error(503))
    with caplog.at_level(logging.WARNING, "tradeforge.exchange"):
        client.fetch_time()
    assert "fetch exchange time failed (attempt 1 of 3)" in caplog.text
    assert KEYS.secret is not None and KEYS.secret.get_secret_value() not in caplog.text


def test_a_response_lost_after_acceptance_leaves_exactly_one_order_found_by_client_id(
    fake: FakeBinance, matrix_client: ExchangeClient
):
    fake.inject("POST", "/api/v3/order", Fault.lost_response(hang=1.0))
    with pytest.raises(OutcomeUnknown):
        matrix_client.create_order("BTC/USDT", "limit", "buy", 0.01, 31000, "tf-lost-1")
    found = matrix_client.fetch_order_by_client_id("BTC/USDT", "tf-lost-1")
    assert found is not None and found["status"] == "open"
    assert [o.client_order_id for o in fake.orders].count("tf-lost-1") == 1


def test_clock_skew_beyond_the_receive_window_names_the_settings(fake: FakeBinance, matrix_client: ExchangeClient):
    fake.skew_ms = 60_000
    with pytest.raises(ClockSkew, match=r"recvWindow.*adjustForTimeDifference"):
        matrix_client.fetch_balance()


def test_rate_limited_keeps_the_retry_after_it_was_given(fake: FakeBinance):
    client = ExchangeClient.from_config(fake_exchange_config(fake), KEYS, sleep=lambda s: None)
    quick_retries(client, attempts=1)
    fake.inject("GET", "/api/v3/time", Fault.rate_limited(retry_after=3))
    with pytest.raises(RateLimited) as caught:
        client.fetch_time()
    assert caught.value.retry_after == 3
