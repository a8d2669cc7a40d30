"""What an alert is: a kind, a level, a dedupe key derived from its cause, and the facts to render."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

LEVELS = {"info": 20, "warning": 30, "error": 40, "critical": 50}

DEFAULT_LEVEL = {
    "bot_started": "info",
    "bot_stopped": "info",
    "bot_recovered": "warning",
    "order_placed": "info",
    "order_filled": "info",
    "order_cancelled": "info",
    "order_rejected": "warning",
    "trade_opened": "info",
    "trade_closed": "info",
    "stop_hit": "warning",
    "protection_triggered": "warning",
    "breaker_opened": "error",
    "breaker_closed": "info",
    "error": "error",
    "daily_summary": "info",
}

# Kinds caused by trading, stamped with the candle time: a restart re-derives them from replayed history.
TRADING = frozenset(
    {
        "order_placed",
        "order_filled",
        "order_cancelled",
        "order_rejected",
        "trade_opened",
        "trade_closed",
        "stop_hit",
        "protection_triggered",
    }
)

# Kinds whose bursts are merged into one message (e.g. 20 fills within the batch window, or the
# backlog after an outage): Telegram allows one message a second per chat, a replay makes hundreds.
BATCHABLE = TRADING
MAX_BATCH = 40  # alerts per merged message: about two Telegram messages of text at most


@dataclass(frozen=True, slots=True)
class Alert:
    """One thing worth telling the operator.

    `dedupe_key` is derived from the cause (client order id and status, trade and exit time, the run
    token for lifecycle alerts), so the same cause seen again after a restart is the same alert.
    `time` is in the bot's clock: candle time for trading alerts. `replayed` marks alerts derived
    while a restarted bot re-reads its history: only those missing from the outbox are kept."""

    kind: str
    dedupe_key: str
    time: dt.datetime
    data: dict[str, Any] = field(default_factory=dict)
    level: str = ""
    replayed: bool = False
    skip_channel: str = ""  # not for this channel (a channel's own breaker alerts go to the others)

    def __post_init__(self) -> None:
        if not self.level:
            object.__setattr__(self, "level", DEFAULT_LEVEL.get(self.kind, "info"))
