"""One error taxonomy, classified by what the caller must do (see DESIGN.md)."""

from __future__ import annotations

from dataclasses import dataclass


class TradeforgeError(Exception):
    """Base of every error tradeforge raises on purpose."""


class Temporary(TradeforgeError):
    """A transient failure (network, rate limit, 5xx on a read): retry with backoff and jitter."""


class OutcomeUnknown(TradeforgeError):
    """An order placement or cancel whose result is unknown: never resend, reconcile by client id."""


class Rejected(TradeforgeError):
    """The venue definitively refused (insufficient funds, invalid order): do not retry."""


class Fatal(TradeforgeError):
    """Bad credentials, broken config or input: stop and tell the user why (CLI exit code 2)."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with user input: where (dotted config path or file:row), what, and the bad value."""

    where: str
    message: str
    value: object = None

    def __str__(self) -> str:
        shown = "" if self.value is None else f" (got {self.value!r})"
        return f"{self.where}: {self.message}{shown}"


class ConfigError(Fatal):
    """A configuration that cannot be used; lists every problem found, not just the first."""

    headline = "invalid configuration"

    def __init__(self, problems: list[Problem], source: str | None = None) -> None:
        self.problems = problems
        self.source = source
        head = f"{self.headline}{f' in {source}' if source else ''}"
        super().__init__(head + "".join(f"\n  - {p}" for p in problems))


class InconsistentState(ConfigError):
    """Stored rows that cannot all be true (an order without its trade, fills above the amount)."""

    headline = "inconsistent rows"


class DataError(Fatal):
    """Candles that cannot be used: missing file, bad columns, bad rows. Names the file and row."""


class RateLimited(Temporary):
    """The remote asked us to slow down: retry no sooner than `retry_after` seconds."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after
