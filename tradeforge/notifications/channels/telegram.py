"""Telegram through python-telegram-bot: HTML messages split to 4096 characters, PTB's
AIORateLimiter for the Bot API's overall (30/s) and per-group (20/min) limits, one message per
second per chat in the notifier, and `RetryAfter` honoured by pausing the whole channel."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from typing import Any

from pydantic import SecretStr
from telegram import error as tg
from telegram.constants import ParseMode
from telegram.ext import AIORateLimiter, ExtBot
from telegram.request import HTTPXRequest

from tradeforge.config.schema import TelegramConfig
from tradeforge.notifications.channels.base import Channel
from tradeforge.notifications.render import Rendered, split_message
from tradeforge.resilience.errors import Fatal, RateLimited, Rejected, Temporary

log = logging.getLogger("tradeforge.notifications.telegram")
DEFAULT_BASE_URL = "https://api.telegram.org/bot"


class TelegramChannel(Channel):
    name = "telegram"

    def __init__(self, config: TelegramConfig, token: SecretStr | None) -> None:
        super().__init__(config.events, config.min_level)
        self.config = config
        self.token = token
        self.min_interval_s = config.per_chat_interval_s
        self.bot: ExtBot[Any] | None = None

    def destinations(self) -> list[str]:
        return [f"telegram:{chat_id}" for chat_id in self.config.chat_ids]

    def make_bot(self, read_timeout: float | None = None) -> ExtBot[Any]:
        if self.token is None:
            raise Fatal(f"notifications.telegram: no bot token (set {self.config.token_env} or token_file)")
        timeout = self.config.timeout_s
        request = HTTPXRequest(
            connection_pool_size=8,
            connect_timeout=timeout,
            read_timeout=read_timeout or timeout,
            write_timeout=timeout,
            pool_timeout=timeout,
        )
        return ExtBot(
            self.token.get_secret_value(),
            base_url=self.config.api_base_url or DEFAULT_BASE_URL,
            request=request,
            get_updates_request=HTTPXRequest(connect_timeout=timeout, read_timeout=timeout + 30),
            # PTB waits out one RetryAfter itself, holding back every request of this bot meanwhile; a
            # second one in a row comes back to us as RateLimited: the channel pauses, the row is rescheduled.
            rate_limiter=AIORateLimiter(max_retries=1),
        )

    async def start(self) -> None:
        """Check the token with getMe: a refused token disables the channel (Fatal, alerts wait in the
        outbox); an unreachable server only warns, delivery retries later."""
        self.bot = self.make_bot()
        try:
            await call(self.bot.initialize(), self.token)
        except Temporary as exc:
            log.warning("notifications.telegram: Bot API unreachable at start (%s); alerts wait in the outbox", exc)

    async def send(self, destination: str, message: Rendered, keys: Sequence[str]) -> None:
        assert self.bot is not None
        chat_id = int(destination.split(":", 1)[1])
        for part in split_message(message.html):
            await call(
                self.bot.send_message(chat_id, part, parse_mode=ParseMode.HTML, disable_web_page_preview=True),
                self.token,
            )

    async def close(self) -> None:
        if self.bot is not None:
            await self.bot.shutdown()


async def call(request: Any, token: SecretStr | None = None) -> Any:
    """Await a PTB request, mapping its errors into the taxonomy, the token scrubbed from messages."""
    try:
        return await _mapped(request)
    except (Fatal, Rejected, Temporary) as exc:
        secret = token.get_secret_value() if token is not None else ""
        if secret and secret in str(exc):
            exc.args = (str(exc).replace(secret, "***"),)
        raise


async def _mapped(request: Any) -> Any:
    """Order matters: BadRequest and TimedOut are NetworkErrors."""
    try:
        return await request
    except tg.RetryAfter as exc:
        raise RateLimited(f"Telegram flood control: retry in {_seconds(exc)} s", _seconds(exc)) from None
    except tg.InvalidToken as exc:
        raise Fatal(f"Telegram rejected the bot token: {exc.message}") from None  # `call` scrubs the token
    except (tg.Forbidden, tg.BadRequest, tg.ChatMigrated) as exc:
        raise Rejected(f"Telegram refused the message: {exc.message}") from None
    except tg.TimedOut as exc:
        raise Temporary(f"Telegram timed out: {exc.message}") from None
    except tg.NetworkError as exc:
        raise Temporary(f"Telegram unreachable or failing: {exc.message}") from None
    except tg.TelegramError as exc:
        raise Temporary(f"Telegram error: {exc.message}") from None


def _seconds(exc: tg.RetryAfter) -> float:
    value = exc._retry_after  # the timedelta behind the (deprecated int) `retry_after` property
    return value.total_seconds() if isinstance(value, dt.timedelta) else float(value)
