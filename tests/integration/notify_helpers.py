"""Shared set-up for the notification tests: a migrated SQLite (or PostgreSQL) outbox, fast timings."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import SecretStr

from tradeforge.config.schema import DeliveryConfig, TelegramConfig
from tradeforge.notifications.alerts import Alert
from tradeforge.notifications.channels.telegram import TelegramChannel
from tradeforge.notifications.manager import Notifier
from tradeforge.notifications.outbox import Outbox
from tradeforge.notifications.render import Renderer
from tradeforge.persistence.database import make_engine
from tradeforge.persistence.migrate import upgrade
from tradeforge.persistence.repository import Repository

FAST = DeliveryConfig(
    max_attempts=3,
    give_up_after_s=60,
    backoff_initial_s=0.05,
    backoff_max_s=0.2,
    breaker_failures=3,
    breaker_reset_s=0.3,
    batch_window_s=0.0,
)
T0 = dt.datetime(2023, 3, 1, tzinfo=dt.UTC)


def outbox_at(url: str, bot: str = "notify-bot") -> Outbox:
    engine = make_engine(url)
    upgrade(engine)
    return Outbox(engine, Repository.attach(engine, bot, "", "paper").bot_id)


def telegram(api: Any, chat_ids: list[int] | None = None, token: str | None = None, **extra: Any) -> TelegramChannel:
    config = TelegramConfig(
        chat_ids=chat_ids or [111],
        api_base_url=api.base_url,
        per_chat_interval_s=extra.pop("per_chat_interval_s", 0.0),
        timeout_s=extra.pop("timeout_s", 0.5),
        **extra,
    )
    return TelegramChannel(config, SecretStr(token or api.token))


def notifier(outbox: Outbox, *channels: Any, delivery: DeliveryConfig = FAST, **extra: Any) -> Notifier:
    return Notifier(outbox, list(channels), Renderer("notify-bot"), delivery, poll_interval=0.01, **extra)


def fill(n: int, symbol: str = "BTC/USDT", minutes: int | None = None) -> Alert:
    """The n-th fill alert, stamped n minutes (or `minutes`) after T0."""
    return Alert(
        "order_filled",
        f"order:tf-{n}:filled",
        T0 + dt.timedelta(minutes=n if minutes is None else minutes),
        {
            "side": "buy",
            "amount": 0.5,
            "symbol": symbol,
            "price": 27000.5,
            "role": "entry",
            "client_order_id": f"tf-{n}",
        },
    )


def error(n: int, message: str = "boom") -> Alert:
    return Alert("error", f"error:{n}", T0 + dt.timedelta(minutes=n), {"message": f"{message} #{n}"})
