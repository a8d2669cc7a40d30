"""Telegram control: long-polls getUpdates and answers commands from the configured chat ids only
(anything else is ignored and logged), through the engine's one control interface (any object
with BotControl's methods; see engine/control.py). Every command goes into the event log.
`/forceexit` asks for confirmation (`/confirm` within a minute)."""

from __future__ import annotations

import asyncio
import html
import logging
import time
from typing import Any, Protocol

from tradeforge.notifications.channels.telegram import TelegramChannel, call
from tradeforge.notifications.render import split_message
from tradeforge.resilience.errors import Fatal, Rejected, Temporary, TradeforgeError

log = logging.getLogger("tradeforge.notifications.commands")
CONFIRM_SECONDS = 60.0
STALE_SLACK_S = 2.0  # commands older than the poller's start (by more than this) were sent to a stopped bot
HELP = """<b>commands</b>
/status – bot state, open trades
/trades – the last 10 trades
/profit – closed trades, PnL, win rate
/balance – equity and cash
/daily – PnL per day (last 7)
/performance – PnL per symbol
/pause – no new entries (open trades are still managed)
/resume – allow entries again
/stop – finish the current candle and stop the bot
/forceexit &lt;trade id|all&gt; – close at the next candle (asks for /confirm)
/help – this list"""


class Control(Protocol):
    def status(self) -> dict[str, Any]: ...
    def trades(self, limit: int = 10) -> list[dict[str, Any]]: ...
    def profit(self) -> dict[str, Any]: ...
    def balance(self) -> dict[str, Any]: ...
    def daily(self, days: int = 7) -> list[tuple[str, float]]: ...
    def performance(self) -> list[tuple[str, int, float]]: ...
    def pause(self, who: str) -> str: ...
    def resume(self, who: str) -> str: ...
    def stop(self, who: str) -> str: ...
    def exit_targets(self, target: str) -> list[dict[str, Any]]: ...
    def force_exit(self, target: str, who: str) -> str: ...
    def log(self, who: str, command: str, result: str, data: dict[str, Any] | None = None) -> None: ...


class TelegramCommands:
    def __init__(self, channel: TelegramChannel, control: Control, poll_timeout: int = 10) -> None:
        self.channel = channel
        self.control = control
        self.allowed = frozenset(channel.config.chat_ids)
        self.poll_timeout = poll_timeout
        self._confirm: dict[int, tuple[str, float]] = {}  # chat -> (forceexit target, asked at)
        self._stop_after_reply = ""
        self._started = time.time()

    async def run(self, _notifier: Any = None) -> None:
        """The polling loop (a notifier background task); returns only on a refused token."""
        bot = self.channel.make_bot()
        self._started = time.time()
        offset: int | None = None
        delay = 1.0
        while True:
            try:
                updates = await call(
                    bot.get_updates(offset=offset, timeout=self.poll_timeout, allowed_updates=["message"]),
                    self.channel.token,
                )
                delay = 1.0
            except Fatal as exc:
                log.error("Telegram commands off: %s", exc)
                return
            except (Temporary, Rejected) as exc:
                log.info("getUpdates failed (%s); retrying in %.0f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 60.0)
                continue
            for update in updates:
                offset = update.update_id + 1
                try:
                    await self.handle(bot, update)
                except TradeforgeError as exc:
                    log.warning("could not answer a command: %s", exc)

    async def handle(self, bot: Any, update: Any) -> None:
        message, chat = update.effective_message, update.effective_chat
        if message is None or chat is None or not message.text:
            return
        if chat.id not in self.allowed:
            log.warning(
                "ignored %r from chat %s, which is not in notifications.telegram.chat_ids", message.text[:40], chat.id
            )
            return
        if message.date is not None and message.date.timestamp() < self._started - STALE_SLACK_S:
            log.warning("ignored %r: sent while the bot was not running", message.text[:40])
            return
        user = message.from_user
        who = f"telegram:{chat.id}" + (f" ({user.username or user.first_name})" if user else "")
        reply = await asyncio.to_thread(self.dispatch, chat.id, message.text, who)
        try:
            for part in split_message(reply):
                await call(bot.send_message(chat.id, part, parse_mode="HTML"), self.channel.token)
        finally:
            if self._stop_after_reply:
                await asyncio.to_thread(self.control.stop, self._stop_after_reply)
                self._stop_after_reply = ""

    def dispatch(self, chat_id: int, text: str, who: str) -> str:
        """The HTML reply to one command; the command and its outcome go into the event log."""
        words = text.strip().split()
        command = words[0].split("@")[0].lower() if words else ""
        args = words[1:]
        try:
            reply = self._answer(chat_id, command, args, who)
        except TradeforgeError as exc:
            reply = f"⚠️ {html.escape(str(exc), quote=False)}"
        self.control.log(who, " ".join(words)[:200], _plain(reply)[:200])
        return reply

    def _answer(self, chat_id: int, command: str, args: list[str], who: str) -> str:
        c = self.control
        if command in ("/help", "/start"):
            return HELP
        if command == "/status":
            status = c.status()
            lines = [
                f"<b>{_e(status['bot'])}</b>: {_e(status['status'])}"
                + (" (entries paused)" if status["paused"] else "")
            ]
            lines += [_trade_line(t) for t in status["open_trades"]] or ["no open trades"]
            return "\n".join(lines)
        if command == "/trades":
            return "\n".join(_trade_line(t) for t in c.trades()) or "no trades yet"
        if command == "/profit":
            p = c.profit()
            rate = "n/a" if p["win_rate"] is None else f"{p['win_rate'] * 100:.0f} %"
            return f"closed trades: {p['closed']}\nPnL: {p['pnl']:+,.2f}\nwin rate: {rate}"
        if command == "/balance":
            b = c.balance()
            if b["equity"] is None:
                return "no balance yet"
            return f"equity: {b['equity']:,.2f}\ncash: {b['cash']:,.2f}\nas of {b['time']:%Y-%m-%d %H:%M} UTC"
        if command == "/daily":
            return "\n".join(f"{day}: {pnl:+,.2f}" for day, pnl in c.daily()) or "no closed trades yet"
        if command == "/performance":
            rows = c.performance()
            return "\n".join(f"{_e(s)}: {n} trades, {pnl:+,.2f}" for s, n, pnl in rows) or "no closed trades yet"
        if command == "/pause":
            return c.pause(who)
        if command == "/resume":
            return c.resume(who)
        if command == "/stop":
            self._stop_after_reply = who  # stopping tears this loop down: answer first
            return "stopping: finishing the current candle, then the bot stops"
        if command == "/forceexit":
            if len(args) != 1:
                return "usage: /forceexit &lt;trade id|all&gt;"
            trades = c.exit_targets(args[0])
            self._confirm[chat_id] = (args[0], time.monotonic())
            shown = "\n".join(_trade_line(t) for t in trades)
            return f"close at the next candle?\n{shown}\nreply /confirm within {CONFIRM_SECONDS:.0f} s"
        if command == "/confirm":
            target, asked = self._confirm.pop(chat_id, ("", 0.0))
            if not target or time.monotonic() - asked > CONFIRM_SECONDS:
                return "nothing to confirm (ask again with /forceexit)"
            return _e(c.force_exit(target, who))
        return f"unknown command {_e(command)}; /help lists them"


def _e(value: Any) -> str:
    return html.escape(str(value), quote=False)


def _plain(text: str) -> str:
    return html.unescape(text.replace("<b>", "").replace("</b>", ""))


def _trade_line(t: dict[str, Any]) -> str:
    pnl = "" if t.get("pnl") is None else f" PnL {t['pnl']:+,.2f}"
    state = "open" if t["exit_reason"] == "open" else _e(t["exit_reason"])
    return f"#{t['id']} {_e(t['side'])} {_e(t['symbol'])} {t['size']:.6g} @ {t['entry_price']:.8g} ({state}){pnl}"
