"""The ccxt boundary: the client is built from config, and every ccxt error class on every call type
ends in the taxonomy with the expected number of attempts."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ccxt
import pytest
from fakes.binance import FakeBinance, Fault
from fakes.support import KEYS, fake_exchange_config, quick_retries

from tradeforge.config.loader import load_config, redacted
from tradeforge.config.schema import ExchangeConfig
from tradeforge.resilience.errors import Fatal, OutcomeUnknown, Rejected, Temporary
from tradeforge.resilience.exchange import (
    ClockSkew,
    DuplicateClientOrderId,
    ExchangeClient,
    RateLimited,
    load_credentials,
    make_exchange,
    map_error,
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
    "fetch_ticker": ("GET", "/api/v3/ticker/24hr", lambda c: c.fetch_ticker("BTC/USDT")),
    "fetch_open_orders": ("GET", "/api/v3/openOrders", lambda c: c.fetch_open_orders("BTC/USDT")),
    "fetch_my_trades": ("GET", "/api/v3/myTrades", lambda c: c.fetch_my_trades("BTC/USDT")),
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
    "reset NetworkError": Fault.connection_reset(),
    "-1006 OperationFailed": Fault.error(
        400, -1006, "An unexpected response was received from the message bus. Execution status unknown."
    ),
}
DEFINITIVE = {
    # -2015 is not used here: once a key has worked, ccxt reads -2015 as a temporary ban (DDoSProtection).
    "401 AuthenticationError": (Fault.error(401, -2014, "API-key format invalid."), Fatal),
    "-1022 bad signature": (Fault.error(400, -1022, "Signature for this request is not valid."), Fatal),
    "-1121 BadSymbol": (Fault.error(400, -1121, "Invalid symbol."), Fatal),
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


SKEWED = Fault.error(400, -1021, "Timestamp for this request is outside of the recvWindow.")


@pytest.mark.parametrize("call", [*READS, *WRITES])
def test_a_request_time_refused_once_is_retried_once_after_syncing_the_clock(
    fake: FakeBinance, matrix_client: ExchangeClient, call: str
):
    method, path, run = {**READS, **WRITES}[call]
    fake.wall_clock_time = True
    before, syncs = len(fake.calls(method, path)), len(fake.calls("GET", "/api/v3/time"))
    fake.inject(method, path, SKEWED)
    run(matrix_client)
    assert len(fake.calls(method, path)) - before == 2
    assert len(fake.calls("GET", "/api/v3/time")) - syncs == 1


@pytest.mark.parametrize("call", [*READS, *WRITES])
def test_a_request_time_still_refused_after_syncing_is_clock_skew_naming_the_settings(
    fake: FakeBinance, matrix_client: ExchangeClient, call: str
):
    method, path, run = {**READS, **WRITES}[call]
    fake.wall_clock_time = True
    before = len(fake.calls(method, path))
    fake.inject(method, path, SKEWED, times=2)
    with pytest.raises(ClockSkew, match=r"after adjusting.*NTP.*exchange\.options\.recvWindow"):
        run(matrix_client)
    assert len(fake.calls(method, path)) - before == 2


def test_a_local_clock_a_minute_off_is_measured_and_followed(fake: FakeBinance, matrix_client: ExchangeClient):
    fake.wall_clock_time = True
    fake.skew_ms = 60_000  # the exchange's clock is a minute ahead of ours
    assert matrix_client.fetch_balance()["USDT"] is not None
    assert abs(matrix_client.exchange.options["timeDifference"] + 60_000) < 2_000
    before = len(fake.calls("GET", "/api/v3/time"))
    matrix_client.fetch_open_orders("BTC/USDT")  # later requests follow the measured difference
    assert len(fake.calls("GET", "/api/v3/time")) == before


def test_an_order_the_exchange_does_not_hold_is_none_on_lookup_and_rejected_on_cancel(
    fake: FakeBinance, matrix_client: ExchangeClient
):
    assert matrix_client.fetch_order_by_client_id("BTC/USDT", "tf-m-404") is None
    with pytest.raises(Rejected, match="tf-m-404") as caught:
        matrix_client.cancel_order("BTC/USDT", "tf-m-404")
    assert isinstance(caught.value.__cause__, ccxt.OrderNotFound)
    assert len(fake.calls("GET", "/api/v3/order")) == 1 and len(fake.calls("DELETE", "/api/v3/order")) == 1


def test_a_duplicate_client_id_on_placement_means_an_earlier_attempt_arrived(
    fake: FakeBinance, matrix_client: ExchangeClient
):
    before = len(fake.calls("POST", "/api/v3/order"))
    with pytest.raises(DuplicateClientOrderId, match="tf-m-0"):
        matrix_client.create_order("BTC/USDT", "limit", "buy", 0.01, 30000, "tf-m-0")
    assert len(fake.calls("POST", "/api/v3/order")) - before == 1


# ccxt classes the fake's spot endpoints cannot provoke (Binance sends them from other APIs): their
# mapping, per call kind, at the boundary itself.
UNREACHABLE = {
    "PermissionDenied": (ccxt.PermissionDenied("binance -2015"), Fatal, Fatal),
    "AccountSuspended": (ccxt.AccountSuspended("binance account suspended"), Fatal, Fatal),
    "OnMaintenance": (ccxt.OnMaintenance("binance system maintenance"), Temporary, OutcomeUnknown),
    "NotSupported": (ccxt.NotSupported("binance does not support that"), Rejected, Rejected),
    "ExchangeError": (ccxt.ExchangeError("binance something odd"), Temporary, Rejected),
}


@pytest.mark.parametrize(("error", "on_read", "on_write"), UNREACHABLE.values(), ids=UNREACHABLE.keys())
def test_errors_the_fake_cannot_send_are_mapped_by_what_the_caller_must_do(
    error: Exception, on_read: type[Exception], on_write: type[Exception]
):
    assert type(map_error(error, "read", "fetch balance")) is on_read
    assert type(map_error(error, "write", "place order tf-1-1")) is on_write
    assert "tf-1-1" in str(map_error(error, "write", "place order tf-1-1"))


def test_a_refused_key_names_where_the_keys_come_from_never_the_keys(fake: FakeBinance, tmp_path: Path):
    (tmp_path / "secret").write_text("not-the-secret")
    config = fake_exchange_config(fake, api_key_env="MY_BINANCE_KEY", api_secret_file=tmp_path / "secret")
    credentials = load_credentials(config, {"MY_BINANCE_KEY": "not-the-key"})
    client = quick_retries(ExchangeClient.from_config(config, credentials, sleep=lambda s: None))
    with pytest.raises(Fatal) as caught:
        client.fetch_balance()
    message = str(caught.value)
    assert "env MY_BINANCE_KEY" in message and f"exchange.api_secret_file {tmp_path / 'secret'}" in message
    assert "not-the-key" not in message and "not-the-secret" not in message
    assert len(fake.calls("GET", "/api/v3/account")) == 1


def test_no_keys_at_all_is_fatal_naming_the_environment_variables(fake: FakeBinance):
    client = ExchangeClient.from_config(fake_exchange_config(fake), None, sleep=lambda s: None)
    with pytest.raises(Fatal, match=r"TRADEFORGE_BINANCE_API_KEY.*TRADEFORGE_BINANCE_API_SECRET"):
        client.fetch_balance()


def test_rate_limited_keeps_the_retry_after_it_was_given(fake: FakeBinance):
    client = ExchangeClient.from_config(fake_exchange_config(fake), KEYS, sleep=lambda s: None)
    quick_retries(client, attempts=1)
    fake.inject("GET", "/api/v3/time", Fault.rate_limited(retry_after=3))
    with pytest.raises(RateLimited) as caught:
        client.fetch_time()
    assert caught.value.retry_after == 3
