"""What a running bot does when its database goes away: it waits.

Every order's intent must be committed before the order is sent, and every fill and candle is
recorded before the bot moves on, so a write that cannot reach the database blocks the trading
thread, retried with exponential backoff and jitter until the database is back. While it waits no
new order is opened (nor anything else decided on state the database does not have); the outage is
reported when it starts, every few retries while it lasts, and in the event log once it is over.
A stop request (SIGINT/SIGTERM) ends the wait: the bot exits with everything up to the last
successful write stored, and a restart replays from there.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import tenacity

from tradeforge.persistence.repository import DatabaseUnavailable, Repository
from tradeforge.resilience.errors import Fatal

T = TypeVar("T")


def _never_stop(seconds: float) -> bool:
    time.sleep(seconds)
    return False


class StoppedDuringOutage(Fatal):
    """The bot was asked to stop while waiting for its database."""


class Persist:
    """Runs repository writes for the trading thread, waiting out database outages."""

    def __init__(
        self,
        repository: Repository,
        *,
        should_stop: Callable[[float], bool] | None = None,
        say: Callable[[str], None] = print,
        first_wait: float = 0.5,
        longest_wait: float = 30.0,
    ) -> None:
        """`should_stop(seconds)` waits up to `seconds` and says whether a stop was requested
        (a threading.Event's `wait` does both)."""
        self.repository = repository
        self.should_stop = should_stop or _never_stop
        self.say = say
        self.backoff = tenacity.wait_exponential(multiplier=first_wait, max=longest_wait) + tenacity.wait_random(
            0, first_wait
        )

    def __call__(self, write: Callable[[], T], what: str) -> T:
        try:
            return write()  # the database is there nearly always: no retry machinery on that path
        except DatabaseUnavailable as exc:
            first_failure = exc
        started = time.monotonic()
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(DatabaseUnavailable),
            wait=self.backoff,
            sleep=lambda seconds: self._wait(seconds, what),
            before_sleep=lambda state: self._report(state, what),
            reraise=True,
        )
        self._report_first(first_failure, what)
        result = retrying(write)
        self._recovered(what, retrying.statistics.get("attempt_number", 1) + 1, time.monotonic() - started)
        return result

    def _report_first(self, error: DatabaseUnavailable, what: str) -> None:
        self.say(
            f"{error} (while {what}); no new orders until it is back, retrying with backoff "
            "(Ctrl-C stops the bot with everything so far stored)"
        )

    def _report(self, state: tenacity.RetryCallState, what: str) -> None:
        attempt = state.attempt_number + 1  # the first failure came before the retrying started
        if attempt % 5 == 0:
            error = state.outcome.exception() if state.outcome else None
            wait = state.next_action.sleep if state.next_action else 0.0
            self.say(f"still waiting for the database (attempt {attempt}, {error}); retrying in {wait:.1f} s")

    def _wait(self, seconds: float, what: str) -> None:
        if self.should_stop(seconds):
            raise StoppedDuringOutage(
                f"stopped while the database was unavailable ({what}); everything before that is stored, "
                "and the bot carries on from there when started again"
            )

    def _recovered(self, what: str, attempts: int, seconds: float) -> None:
        message = f"database back after {seconds:.1f} s ({attempts - 1} failed attempts while {what}); carrying on"
        self.say(message)
        self(lambda: self.repository.log_event("database_outage", message, {"seconds": round(seconds, 3)}), what)
