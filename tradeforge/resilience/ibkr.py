"""The ib_async boundary: one API connection to TWS or IB Gateway, reconnected with backoff, and IB's
answers (unknown or ambiguous contract, pacing violation, unreachable host) in our error taxonomy.

The `IB` object comes from a factory (the real `ib_async.IB`, or a test double with the same surface).
Everything runs on the caller's thread: `IB.sleep` runs ib_async's event loop, which is when IB's
messages (bar updates, order status, executions) are applied.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ib_async import Contract, ContractDetails
from ib_async.wrapper import RequestError
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from tradeforge.config.schema import IbkrConfig, IbkrContractConfig
from tradeforge.resilience.errors import ConfigError, Fatal, Problem, Temporary

IbFactory = Callable[[], Any]  # returns an ib_async.IB (or a double with its API surface)

NO_SECURITY = 200  # "No security definition has been found" / "... is ambiguous"
PACING = frozenset({162, 420})  # historical / real-time data pacing violation
RESTORED_DATA_LOST = 1101  # TWS reconnected to IB, market data subscriptions are gone


def _logger() -> logging.Logger:
    return logging.getLogger("tradeforge.ibkr")


class IbUnreachable(Fatal):
    """TWS or IB Gateway does not accept the API connection."""


class PacingViolation(Temporary):
    """IB refused a historical-data request for its pacing limits."""


@dataclass(frozen=True)
class ResolvedContract:
    """A config contract as IB knows it: exactly one match, with its order rules."""

    name: str  # as data.symbols names it
    contract: Contract
    details: ContractDetails


def ib_contract(spec: IbkrContractConfig) -> Contract:
    """The (unqualified) ib_async contract a config entry describes."""
    return Contract(
        secType=spec.sec_type,
        symbol=spec.symbol,
        exchange=spec.exchange,
        currency=spec.currency,
        lastTradeDateOrContractMonth=spec.expiry or "",
        primaryExchange=spec.primary_exchange or "",
    )


def _describe(contract: Contract) -> str:
    exchange = contract.exchange + (f"/{contract.primaryExchange}" if contract.primaryExchange else "")
    parts = [contract.secType, contract.symbol, contract.lastTradeDateOrContractMonth, exchange]
    return " ".join(p for p in parts if p) + f" {contract.currency}"


class IbConnection:
    """One API connection: connect at start (a clear error when nobody listens), reconnect with backoff
    after a TWS/Gateway restart, contract look-ups and historical data with IB's pacing rules."""

    def __init__(self, config: IbkrConfig, factory: IbFactory) -> None:
        self.config = config
        self.ib = factory()
        self.ib.RaiseRequestErrors = True  # a refused request raises RequestError instead of answering []
        self.generation = 0  # +1 at every (re)connection and data-loss notice: subscriptions must be renewed
        self.ib.errorEvent += self._on_error

    @property
    def address(self) -> str:
        return f"{self.config.host}:{self.config.port}"

    def _on_error(self, req_id: int, code: int, message: str, contract: Any = None) -> None:
        if code == RESTORED_DATA_LOST:
            _logger().warning("IB %s: %s; renewing data subscriptions", code, message)
            self.generation += 1

    def _attempt(self) -> None:
        settings = self.config
        self.ib.connect(
            settings.host,
            settings.port,
            clientId=settings.client_id,
            timeout=settings.connect_timeout,
            account=settings.account or "",
        )
        self.generation += 1

    def connect(self) -> None:
        """Connect once, at start: an unreachable TWS/Gateway is the user's to fix, not ours to wait for."""
        try:
            self._attempt()
        except (OSError, TimeoutError) as exc:  # ConnectionRefusedError, asyncio's TimeoutError
            raise IbUnreachable(
                f"cannot connect to TWS/IB Gateway at {self.address} (ibkr.host, ibkr.port): "
                f"{exc or type(exc).__name__}. "
                "Start TWS or IB Gateway, enable its API (API > Settings: 'Enable ActiveX and Socket Clients', "
                "and the socket port), and check that no other connection uses ibkr.client_id"
            ) from exc

    def disconnect(self) -> None:
        """Free the client id for the next run (TWS refuses a second connection with the same id)."""
        if self.ib.isConnected():
            self.ib.disconnect()

    def sleep(self, seconds: float) -> None:
        """Wait while ib_async applies IB's messages."""
        self.ib.sleep(seconds)

    def ensure_connected(self) -> bool:
        """Reconnect after a lost connection (TWS's nightly restart, a network cut), with exponential backoff
        up to `ibkr.reconnect_wait_max`, for up to `ibkr.reconnect_give_up` seconds. True if it reconnected."""
        if self.ib.isConnected():
            return False
        settings = self.config

        def log(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            _logger().warning("IB at %s: reconnect attempt %d failed: %s", self.address, state.attempt_number, exc)

        retrying = Retrying(
            retry=retry_if_exception_type((OSError, TimeoutError)),
            stop=lambda state: state.idle_for >= settings.reconnect_give_up,
            wait=wait_exponential(multiplier=1, max=settings.reconnect_wait_max),
            sleep=self.ib.sleep,
            before_sleep=log,
            reraise=True,
        )
        try:
            retrying(self._attempt)
        except (OSError, TimeoutError) as exc:
            raise Temporary(
                f"TWS/IB Gateway at {self.address} unreachable for {settings.reconnect_give_up:.0f} s: {exc}"
            ) from exc
        _logger().warning("IB at %s: reconnected", self.address)
        return True

    # --- contracts ------------------------------------------------------------------------------------

    def resolve(self, name: str) -> ResolvedContract:
        """The one contract `name` (a data.symbols entry) means; a ConfigError naming the config path when
        IB knows none, or more than one."""
        spec = self.config.contract_for(name)
        where = f"ibkr.contracts.{name}" if name in self.config.contracts else "data.symbols"
        wanted = ib_contract(spec)
        try:
            details = list(self.ib.reqContractDetails(wanted))
        except RequestError as exc:
            if exc.code != NO_SECURITY:
                raise Temporary(f"{name}: IB contract look-up failed: {exc.message}") from exc
            details = [] if "ambiguous" not in exc.message.lower() else [None, None]
        if not details:
            raise ConfigError(
                [
                    Problem(
                        where,
                        f"IB has no contract {_describe(wanted)} (check symbol, sec_type, exchange, currency"
                        + (", expiry" if spec.sec_type == "FUT" else "")
                        + "; a name missing from ibkr.contracts is looked up as a SMART-routed USD stock)",
                        name,
                    )
                ]
            )
        if len(details) > 1:
            found = sorted({_describe(d.contract) for d in details if d is not None and d.contract is not None})
            raise ConfigError(
                [
                    Problem(
                        where,
                        f"{_describe(wanted)} is ambiguous on IB"
                        + (f" ({len(found)} contracts: {'; '.join(found[:5])})" if found else "")
                        + f": describe it fully under ibkr.contracts.{name} (exchange, currency, primary_exchange "
                        "or expiry)",
                        name,
                    )
                ]
            )
        detail = details[0]
        assert detail is not None and detail.contract is not None
        return ResolvedContract(name, detail.contract, detail)

    # --- historical data ------------------------------------------------------------------------------

    def historical(
        self, resolved: ResolvedContract, duration: str, bar_size: str, what_to_show: str, *, keep_up_to_date: bool
    ) -> Any:
        """IB's bars (a BarDataList, kept up to date when asked). A pacing violation is waited out
        `ibkr.pacing_wait` s (doubling) up to `ibkr.pacing_retries` times, then reported."""
        settings = self.config

        def request() -> Any:
            try:
                return self.ib.reqHistoricalData(
                    resolved.contract,
                    "",
                    duration,
                    bar_size,
                    what_to_show,
                    settings.use_rth,
                    formatDate=2,
                    keepUpToDate=keep_up_to_date,
                )
            except RequestError as exc:
                if exc.code in PACING:
                    raise PacingViolation(f"{resolved.name}: IB error {exc.code}: {exc.message}") from exc
                if exc.code == NO_SECURITY:
                    raise ConfigError([Problem("data.symbols", f"IB: {exc.message}", resolved.name)]) from exc
                raise Temporary(f"{resolved.name}: IB historical data error {exc.code}: {exc.message}") from exc
            except ConnectionError as exc:
                raise Temporary(f"{resolved.name}: historical data: {exc}") from exc

        def log(state: RetryCallState) -> None:
            wait = state.next_action.sleep if state.next_action else 0
            exc = state.outcome.exception() if state.outcome else None
            _logger().warning("%s; waiting %.0f s before asking again (IB's pacing rules)", exc, wait)

        retrying = Retrying(
            retry=retry_if_exception_type(PacingViolation),
            stop=stop_after_attempt(settings.pacing_retries + 1),
            wait=wait_exponential(multiplier=settings.pacing_wait, min=settings.pacing_wait, max=600),
            sleep=self.ib.sleep,
            before_sleep=log,
            reraise=True,
        )
        try:
            return retrying(request)
        except PacingViolation as exc:
            raise PacingViolation(
                f"{exc}; still refused after {settings.pacing_retries} retries (ibkr.pacing_retries). IB allows "
                "at most 60 historical requests per 10 minutes and no identical request within 15 s: wait a "
                "few minutes, or lower ibkr.warmup_candles"
            ) from exc

    def cancel_historical(self, bars: Any) -> None:
        if self.ib.isConnected():
            self.ib.cancelHistoricalData(bars)
