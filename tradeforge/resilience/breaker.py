"""A small circuit breaker for asyncio callers.

Written here because pybreaker has no native asyncio support (its `call_async` needs Tornado) and
the notifier needs only three states: closed (calls go through), open (no calls until
`reset_timeout` has passed), half-open (one probe; success closes, failure re-opens)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

log = logging.getLogger("tradeforge.resilience.breaker")


class CircuitBreaker:
    CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"

    def __init__(
        self,
        name: str,
        failure_threshold: int,
        reset_timeout: float,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[str, str], None] | None = None,
    ) -> None:
        self.name = name
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self.clock = clock
        self.on_change = on_change
        self.state = self.CLOSED
        self.failures = 0
        self._opened_at = 0.0

    def wait_time(self) -> float:
        """Seconds until a call may be made (0: now). An open breaker past its timeout turns half-open."""
        if self.state != self.OPEN:
            return 0.0
        left = self._opened_at + self.reset_timeout - self.clock()
        if left <= 0:
            self._set(self.HALF_OPEN)
            return 0.0
        return left

    def success(self) -> None:
        self.failures = 0
        if self.state != self.CLOSED:
            self._set(self.CLOSED)

    def failure(self) -> None:
        self.failures += 1
        if self.state == self.HALF_OPEN or (self.state == self.CLOSED and self.failures >= self.failure_threshold):
            self._opened_at = self.clock()
            self._set(self.OPEN)

    def _set(self, state: str) -> None:
        previous, self.state = self.state, state
        level = logging.DEBUG if state == self.HALF_OPEN else logging.WARNING
        log.log(level, "circuit breaker %s: %s -> %s", self.name, previous, state)
        if self.on_change is not None:
            self.on_change(self.name, state)
