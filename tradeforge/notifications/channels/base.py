"""What the notifier needs from a channel. A channel maps its library's errors into the taxonomy
(resilience/errors.py) at this boundary: `RateLimited`/`Temporary` are retried with backoff,
`Rejected`/`Fatal` (bad token, chat not found, message refused) are dead-lettered at once."""

from __future__ import annotations

import time
from collections.abc import Sequence

from tradeforge.notifications.alerts import LEVELS, Alert
from tradeforge.notifications.render import Rendered


class Channel:
    """Base for channels: routing by kind and level, a channel-wide pause (Telegram's flood wait)."""

    name = "channel"
    min_interval_s = 0.0  # at least this long between two messages to one destination

    def __init__(self, events: Sequence[str] | None, min_level: str) -> None:
        self.events = frozenset(events) if events is not None else None
        self.min_level = LEVELS[min_level]
        self.enabled = True  # False when it cannot work at all (no token): rows wait in the outbox
        self.paused_until = 0.0  # time.monotonic(); set by a RetryAfter

    def destinations(self) -> list[str]:
        raise NotImplementedError

    def accepts(self, alert: Alert) -> bool:
        return LEVELS.get(alert.level, 20) >= self.min_level and (self.events is None or alert.kind in self.events)

    def pause(self, seconds: float) -> None:
        self.paused_until = max(self.paused_until, time.monotonic() + seconds)

    async def start(self) -> None:
        """Prepare (credentials, connections). Raising a TradeforgeError disables the channel with a warning."""

    async def send(self, destination: str, message: Rendered, keys: Sequence[str]) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        """Release connections."""
