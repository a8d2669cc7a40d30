"""The ccxt boundary: build the exchange client from config, and map ccxt's errors into our taxonomy.

Every call to the exchange goes through `ExchangeClient`, which knows whether a call is a read (safe
to repeat: retried with exponential backoff and jitter, honouring Retry-After) or a write (an order
placement or cancel: never repeated blind, an ambiguous failure becomes `OutcomeUnknown` so the
caller looks the order up by its client id). ccxt's own rate limiter stays on.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import ccxt
import pybreaker
from pydantic import SecretStr
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from tradeforge.config.schema import ExchangeConfig
from tradeforge.config.secrets import find_secret
from tradeforge.resilience.errors import Fatal, OutcomeUnknown, Rejected, Temporary, TradeforgeError

CallKind = Literal["read", "write"]
T = TypeVar("T")


def _logger() -> logging.Logger:
    return logging.getLogger("tradeforge.exchange")


class RateLimited(Temporary):
    """HTTP 429/418: the exchange asked us to slow down, possibly saying for how long."""

    def __init__(self, message: str, retry_after: float | None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class DuplicateClientOrderId(OutcomeUnknown):
    """The exchange already holds an order with this client id: an earlier attempt did arrive."""


class CircuitOpen(Temporary):
    """The exchange failed repeatedly: calls are not even tried until the circuit's reset time."""


class ClockSkew(Fatal):
    """Signed requests are outside the exchange's receive window: the local clock is off."""


@dataclass(frozen=True)
class Credentials:
    api_key: SecretStr | None
    secret: SecretStr | None

    @property
    def complete(self) -> bool:
        return self.api_key is not None and self.secret is not None


def load_credentials(config: ExchangeConfig, environ: Mapping[str, str] | None = None) -> Credentials:
    """API key and secret from the configured secret files, else environment variables (may be absent)."""
    environ = os.environ if environ is None else environ
    return Credentials(
        find_secret("exchange.api_key_file", config.api_key_env, config.api_key_file, environ),
        find_secret("exchange.api_secret_file", config.api_secret_env, config.api_secret_file, environ),
    )


def require_credentials(config: ExchangeConfig, credentials: Credentials) -> None:
    """Trading needs both keys; say where each one was looked for."""
    missing = []
    if credentials.api_key is None:
        missing.append(f"the API key (env {config.api_key_env} or exchange.api_key_file)")
    if credentials.secret is None:
        missing.append(f"the API secret (env {config.api_secret_env} or exchange.api_secret_file)")
    if missing:
        raise Fatal(f"{config.name}: missing {' and '.join(missing)}")


def key_sources(config: ExchangeConfig) -> str:
    """Where the keys are read from, for error messages (never the keys themselves)."""
    key = f"exchange.api_key_file {config.api_key_file}" if config.api_key_file else f"env {config.api_key_env}"
    secret = f"env {config.api_secret_env}"
    if config.api_secret_file:
        secret = f"exchange.api_secret_file {config.api_secret_file}"
    return f"key from {key}, secret from {secret}"


def _deep_merge(base: dict[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


# Spot only: without this, ccxt's load_markets also asks the futures APIs for their markets.
_DEFAULT_OPTIONS: dict[str, Any] = {"defaultType": "spot", "fetchMarkets": {"types": ["spot"]}, "fetchMargins": False}


def make_exchange(config: ExchangeConfig, credentials: Credentials | None = None) -> ccxt.Exchange:
    """A ccxt client for the configured exchange: sandbox first, then `urls` merged into urls['api']
    and `options` into options, rate limiter on. Keys only when given (public data needs none)."""
    credentials = credentials or Credentials(None, None)
    settings: dict[str, Any] = {"enableRateLimit": True, "timeout": config.timeout_ms}
    if credentials.api_key is not None and credentials.secret is not None:
        settings["apiKey"] = credentials.api_key.get_secret_value()
        settings["secret"] = credentials.secret.get_secret_value()
    exchange = getattr(ccxt, config.name)(settings)
    if config.sandbox:
        exchange.set_sandbox_mode(True)
    if config.urls:
        exchange.urls["api"] = {**exchange.urls["api"], **config.urls}
    exchange.options = _deep_merge(_deep_merge(exchange.options, _DEFAULT_OPTIONS), config.options)
    return exchange


def map_error(
    exc: Exception, kind: CallKind, what: str, exchange: ccxt.Exchange | None = None, keys: str = ""
) -> TradeforgeError:
    """A ccxt exception as what the caller must do. `what` names the call (and order) for the message,
    `keys` where the API keys come from (see key_sources)."""
    name = type(exc).__name__
    text = f"{what}: {name}: {exc}"
    if isinstance(exc, ccxt.InvalidNonce):
        return ClockSkew(
            f"{what}: the exchange refused the request time (clock skew beyond the receive window). "
            "Synchronise the system clock (NTP), or set exchange.options.recvWindow / "
            f"exchange.options.adjustForTimeDifference: true. ({exc})"
        )
    if isinstance(exc, ccxt.AuthenticationError):
        return Fatal(
            f"{what}: the exchange refused the API key ({name}): check the key and the secret"
            f"{f' ({keys})' if keys else ''}, their permissions and the IP whitelist. ({exc})"
        )
    if isinstance(exc, ccxt.NetworkError):
        if kind == "write":
            return OutcomeUnknown(f"{text} (outcome unknown: look the order up by its client id, never resend)")
        if isinstance(exc, ccxt.DDoSProtection):
            return RateLimited(text, _retry_after(exchange))
        return Temporary(text)
    if isinstance(exc, ccxt.InvalidOrder) and "Duplicate order" in str(exc):
        return DuplicateClientOrderId(f"{text} (an earlier attempt with this client id reached the exchange)")
    if isinstance(exc, ccxt.BadSymbol):
        return Fatal(f"{what}: the exchange does not list this symbol ({exc})")
    if isinstance(exc, ccxt.InsufficientFunds | ccxt.InvalidOrder | ccxt.BadRequest | ccxt.NotSupported):
        return Rejected(text)
    if isinstance(exc, ccxt.ExchangeError):
        return Rejected(text) if kind == "write" else Temporary(text)
    return Temporary(text) if kind == "read" else OutcomeUnknown(text)


def _retry_after(exchange: ccxt.Exchange | None) -> float | None:
    headers = getattr(exchange, "last_response_headers", None) or {}
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class _BreakerWatch(pybreaker.CircuitBreakerListener):
    """Calls `notify(opened, detail)` once when the circuit opens and once when it closes again (a
    failed trial call re-opening it is the same outage); a failing `notify` is logged, never raised
    into the exchange call that changed the state."""

    def __init__(self, notify: Callable[[bool, str], None]) -> None:
        self.notify = notify
        self.open = False

    def state_change(self, cb: pybreaker.CircuitBreaker, old_state: Any, new_state: Any) -> None:
        name = new_state.name if new_state is not None else None
        if name not in (pybreaker.STATE_OPEN, pybreaker.STATE_CLOSED) or (name == pybreaker.STATE_OPEN) == self.open:
            return
        opened = self.open = name == pybreaker.STATE_OPEN
        detail = (
            f"{cb.fail_max} failed calls in a row: no new entries for {cb.reset_timeout:g} s, exits are still attempted"
            if opened
            else "the exchange answers again: entries resume"
        )
        try:
            self.notify(opened, detail)
        except Exception:
            _logger().exception("reporting the exchange circuit %s failed", "opening" if opened else "closing")


class _BreakerLog(pybreaker.CircuitBreakerListener):
    def state_change(self, cb: pybreaker.CircuitBreaker, old_state: Any, new_state: Any) -> None:
        if new_state.name == pybreaker.STATE_OPEN:
            consequence = "no new entries" if cb.name == "exchange" else "no requests"
            _logger().error(
                "%s circuit open after %d failed calls: %s for %g s%s",
                cb.name,
                cb.fail_max,
                consequence,
                cb.reset_timeout,
                "; exits are still attempted" if cb.name == "exchange" else "",
            )
        elif new_state.name == pybreaker.STATE_CLOSED:
            _logger().warning("%s circuit closed again: it answers", cb.name)


def make_breaker(failures: int = 5, reset_seconds: float = 60.0, name: str = "exchange") -> pybreaker.CircuitBreaker:
    """A circuit breaker on an external service (the exchange by default). Only failures that say it is
    unwell count (network, 5xx, timeouts, rate limits); a definitive answer, even a refusal, shows that it is up."""
    return pybreaker.CircuitBreaker(
        name=name,
        fail_max=failures,
        reset_timeout=reset_seconds,
        exclude=[lambda exc: not isinstance(exc, Temporary | OutcomeUnknown)],
        listeners=[_BreakerLog()],
        throw_new_error_on_trip=False,  # the call that trips it still reports its own outcome
    )


@dataclass(frozen=True)
class RetryPolicy:
    """Reads that fail temporarily: `attempts` tries, exponential backoff from `initial` s up to `maximum`,
    plus up to `jitter` s of random jitter; a Retry-After from the exchange is a floor for the wait."""

    attempts: int = 5
    initial: float = 0.5
    maximum: float = 30.0
    jitter: float = 0.5

    def retrying(self, what: str, sleep: Callable[[float], None]) -> Retrying:
        """A tenacity Retrying for Temporary failures of `what` under this policy, each retry logged."""
        backoff = wait_exponential(multiplier=self.initial, max=self.maximum) + wait_random(0, self.jitter)

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            floor = exc.retry_after if isinstance(exc, RateLimited) and exc.retry_after else 0.0
            return max(floor, backoff(state))

        def log(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            _logger().warning(
                "%s failed (attempt %d of %d), retrying: %s", what, state.attempt_number, self.attempts, exc
            )

        return Retrying(
            retry=retry_if_exception_type(Temporary),
            stop=stop_after_attempt(self.attempts),
            wait=wait,
            sleep=sleep,
            before_sleep=log,
            reraise=True,
        )


class ExchangeClient:
    """ccxt calls, classified and retried per the taxonomy. The exchange object is passed in (tests:
    real ccxt pointed at the loopback fake), and so is `sleep`."""

    def __init__(
        self,
        exchange: ccxt.Exchange,
        retry: RetryPolicy | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        breaker: pybreaker.CircuitBreaker | None = None,
    ) -> None:
        self.exchange = exchange
        self.retry = retry or RetryPolicy()
        self.sleep = sleep
        self.breaker = breaker
        self.calls = 0  # REST calls made (each attempt counts), for the benchmarks
        self.keys = ""  # where the API keys come from, named in authentication errors (key_sources)

    def watch_circuit(self, notify: Callable[[bool, str], None]) -> None:
        """Call `notify(opened, detail)` whenever the exchange circuit opens or closes (alerts)."""
        if self.breaker is not None:
            self.breaker.add_listener(_BreakerWatch(notify))

    @property
    def circuit_open(self) -> bool:
        """True while the breaker keeps calls away from the exchange (new entries must wait)."""
        return self.breaker is not None and self.breaker.current_state == pybreaker.STATE_OPEN

    @classmethod
    def from_config(
        cls,
        config: ExchangeConfig,
        credentials: Credentials | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> ExchangeClient:
        retry = RetryPolicy(attempts=config.retries, maximum=config.retry_wait_max)
        breaker = make_breaker(config.breaker_failures, config.breaker_reset)
        client = cls(make_exchange(config, credentials), retry, sleep=sleep, breaker=breaker)
        client.keys = key_sources(config)
        return client

    def _once(
        self, kind: CallKind, what: str, fn: Callable[..., T], *args: Any, essential: bool = False, **kwargs: Any
    ) -> T:
        def call() -> T:
            self.calls += 1
            try:
                return fn(*args, **kwargs)
            except ccxt.InvalidNonce as exc:
                skewed = exc
            except ccxt.BaseError as exc:
                raise map_error(exc, kind, what, self.exchange, self.keys) from exc
            return self._after_time_sync(kind, what, skewed, fn, *args, **kwargs)

        if self.breaker is None or essential:  # exits and cancels are attempted even with the circuit open
            return call()
        try:
            return self.breaker.call(call)
        except pybreaker.CircuitBreakerError:
            raise CircuitOpen(f"{what}: not tried, the exchange circuit is open after repeated failures") from None

    def _after_time_sync(
        self, kind: CallKind, what: str, skewed: ccxt.InvalidNonce, fn: Callable[..., T], *args: Any, **kwargs: Any
    ) -> T:
        """The exchange refused the request time (Binance -1021, checked before anything is done, so a
        second try is safe even for an order): measure the clock difference (ccxt's
        load_time_difference, which later requests' timestamps then follow) and try once more; a
        refusal after that is ClockSkew."""
        try:
            difference = self.exchange.load_time_difference()
        except ccxt.BaseError:
            raise map_error(skewed, kind, what, self.exchange, self.keys) from skewed
        _logger().warning(
            "%s: the exchange refused the request time; the local clock is %d ms off the exchange's, "
            "adjusted and trying once more",
            what,
            difference,
        )
        self.calls += 1
        try:
            return fn(*args, **kwargs)
        except ccxt.InvalidNonce as exc:
            raise ClockSkew(
                f"{what}: the exchange still refuses the request time after adjusting for the measured clock "
                f"difference ({difference} ms): synchronise the system clock (NTP), or widen "
                f"exchange.options.recvWindow ({exc})"
            ) from exc
        except ccxt.BaseError as exc:
            raise map_error(exc, kind, what, self.exchange, self.keys) from exc

    def read(self, what: str, fn: Callable[..., T], *args: Any, essential: bool = False, **kwargs: Any) -> T:
        """A call that is safe to repeat: Temporary failures are retried, the last one re-raised.
        `essential` (following up an exit or a cancel) bypasses an open circuit."""
        retrying = self.retry.retrying(what, self.sleep)
        return retrying(self._once, "read", what, fn, *args, essential=essential, **kwargs)

    def write(self, what: str, fn: Callable[..., T], *args: Any, essential: bool = False, **kwargs: Any) -> T:
        """An order placement or cancel: tried exactly once; an ambiguous failure is OutcomeUnknown.
        `essential` (exits, cancels) bypasses an open circuit."""
        return self._once("write", what, fn, *args, essential=essential, **kwargs)

    # --- the calls tradeforge makes ---------------------------------------------------------------

    def load_markets(self) -> dict[str, Any]:
        return self.read("load markets", self.exchange.load_markets)

    def fetch_time(self) -> int:
        return int(self.read("fetch exchange time", self.exchange.fetch_time))

    def fetch_ohlcv(
        self, symbol: str, timeframe: str, since: int | None = None, limit: int | None = None
    ) -> list[list[Any]]:
        return self.read(
            f"fetch {timeframe} candles for {symbol}", self.exchange.fetch_ohlcv, symbol, timeframe, since, limit
        )

    def fetch_ticker(self, symbol: str) -> dict[str, Any]:
        return self.read(f"fetch ticker for {symbol}", self.exchange.fetch_ticker, symbol)

    def fetch_balance(self) -> dict[str, Any]:
        return self.read("fetch balance", self.exchange.fetch_balance)

    def fetch_open_orders(self, symbol: str | None = None) -> list[dict[str, Any]]:
        return self.read(
            f"fetch open orders{f' for {symbol}' if symbol else ''}", self.exchange.fetch_open_orders, symbol
        )

    def fetch_my_trades(
        self, symbol: str, since: int | None = None, params: dict[str, Any] | None = None, *, essential: bool = False
    ) -> list[dict[str, Any]]:
        return self.read(
            f"fetch fills for {symbol}",
            self.exchange.fetch_my_trades,
            symbol,
            since,
            None,
            params or {},
            essential=essential,
        )

    def fetch_order_by_client_id(
        self, symbol: str, client_order_id: str, *, essential: bool = False
    ) -> dict[str, Any] | None:
        """The order with this client id, or None when the exchange says it does not exist."""
        try:
            return self.read(
                f"look up order {client_order_id} ({symbol})",
                self.exchange.fetch_order,
                None,
                symbol,
                {"origClientOrderId": client_order_id},
                essential=essential,
            )
        except Rejected as exc:
            if isinstance(exc.__cause__, ccxt.OrderNotFound):
                return None
            raise

    def create_order(
        self,
        symbol: str,
        type: str,
        side: str,
        amount: float,
        price: float | None,
        client_order_id: str,
        params: dict[str, Any] | None = None,
        *,
        essential: bool = False,
    ) -> dict[str, Any]:
        return self.write(
            f"place order {client_order_id} ({side} {amount} {symbol} {type})",
            self.exchange.create_order,
            symbol,
            type,
            side,
            amount,
            price,
            {**(params or {}), "newClientOrderId": client_order_id},
            essential=essential,
        )

    def cancel_order(self, symbol: str, client_order_id: str) -> dict[str, Any]:
        return self.write(
            f"cancel order {client_order_id} ({symbol})",
            self.exchange.cancel_order,
            None,
            symbol,
            {"origClientOrderId": client_order_id},
            essential=True,
        )
