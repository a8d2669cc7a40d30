"""One control interface for a running bot, shared by Telegram commands and, later, a REST API.

Reads (status, trades, profit, balance, daily, performance) come from the database and are safe
from any thread. Actions that change trading (pause, resume, force exit) are *requests*: the
trading thread applies them at the end of its current candle, and records each in the event log
(`operator_command`) with that candle's time. A restarted bot re-reads its history, and re-applies
each recorded action at the same candle, so its replay asks for the very orders it asked for
before (engine/journal.py) instead of diverging. `stop` sets the run's stop event at once.
"""

from __future__ import annotations

import datetime as dt
import queue
import threading
from collections import defaultdict
from decimal import Decimal
from typing import Any

import backtrader as bt

from tradeforge.feeds.candles import to_ns
from tradeforge.persistence.models import TradeStatus
from tradeforge.persistence.repository import Repository
from tradeforge.resilience.errors import Rejected

ACTIONS = ("pause", "resume", "force_exit")


class ControlError(Rejected):
    """A command that cannot be carried out as asked (unknown trade id, nothing open)."""


class BotControl:
    def __init__(self, repository: Repository, stop: threading.Event, name: str) -> None:
        self.repository = repository
        self.stop_event = stop
        self.name = name
        self.paused = False  # the trading thread's view: no new entries while True
        self._requests: queue.SimpleQueue[tuple[str, list[str], str]] = queue.SimpleQueue()
        self._recorded: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for event in repository.events("operator_command"):
            data = event.data or {}
            if data.get("command") in ACTIONS and data.get("candle"):
                self._recorded[data["candle"]].append(data)

    # --- any thread: what a chat command or an API call does ----------------------------------------

    def pause(self, who: str) -> str:
        self._requests.put(("pause", [], who))
        return "pausing: no new entries from the next candle (open trades are still managed); /resume to undo"

    def resume(self, who: str) -> str:
        self._requests.put(("resume", [], who))
        return "resuming entries from the next candle"

    def stop(self, who: str) -> str:
        self.stop_event.set()
        self.log(who, "stop", "finishing the current candle, then stopping")
        return "stopping: finishing the current candle, then the bot stops"

    def exit_targets(self, target: str) -> list[dict[str, Any]]:
        """The open trades `target` ("all" or a trade id) names; ControlError when none."""
        open_trades = [t for t in self.repository.trade_records(TradeStatus.OPEN) if t["exit_reason"] == "open"]
        if target == "all":
            if not open_trades:
                raise ControlError("no open trades")
            return open_trades
        if not target.isdigit():
            raise ControlError(f"{target!r} is not a trade id; use /forceexit <trade id> or /forceexit all")
        chosen = [t for t in open_trades if t["id"] == int(target)]
        if not chosen:
            raise ControlError(f"trade {target} is not open (see /trades)")
        return chosen

    def force_exit(self, target: str, who: str) -> str:
        trades = self.exit_targets(target)
        symbols = sorted({t["symbol"] for t in trades})
        self._requests.put(("force_exit", symbols, who))
        shown = ", ".join(f"trade {t['id']} {t['side']} {t['symbol']}" for t in trades)
        return f"closing {shown} at the next candle"

    def log(self, who: str, command: str, result: str, data: dict[str, Any] | None = None) -> None:
        """Every operator command goes into the event log."""
        self.repository.log_event(
            "operator_command", f"{who}: {command} -> {result}", {"who": who, "command": command, **(data or {})}
        )

    # --- reads ---------------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        bot = self.repository.instance()
        return {
            "bot": self.name,
            "status": bot.status,
            "paused": self.paused,
            "open_trades": [t for t in self.repository.trade_records(TradeStatus.OPEN) if t["exit_reason"] == "open"],
        }

    def trades(self, limit: int = 10) -> list[dict[str, Any]]:
        return self.repository.trade_records()[-limit:]

    def profit(self) -> dict[str, Any]:
        closed = [t for t in self.repository.trade_records() if t["exit_reason"] != "open"]
        wins = [t for t in closed if (t["pnl"] or 0) > 0]
        return {
            "closed": len(closed),
            "pnl": sum(t["pnl"] or 0.0 for t in closed),
            "win_rate": len(wins) / len(closed) if closed else None,
        }

    def balance(self) -> dict[str, Any]:
        equity = self.repository.equity()
        if not equity:
            return {"equity": None, "cash": None, "time": None}
        last = equity[-1]
        return {"equity": float(last.equity), "cash": float(last.cash), "time": last.time}

    def daily(self, days: int = 7) -> list[tuple[str, float]]:
        """PnL per UTC day of the bot's clock (its last candle's day backwards)."""
        per_day: dict[str, float] = defaultdict(float)
        for t in self.repository.trade_records():
            if t["exit_time"] and t["pnl"] is not None:
                per_day[t["exit_time"][:10]] += t["pnl"]
        return sorted(per_day.items())[-days:]

    def performance(self) -> list[tuple[str, int, float]]:
        """(symbol, closed trades, PnL), best first."""
        stats: dict[str, list[float]] = defaultdict(list)
        for t in self.repository.trade_records():
            if t["exit_reason"] != "open" and t["pnl"] is not None:
                stats[t["symbol"]].append(t["pnl"])
        return sorted(((s, len(p), sum(p)) for s, p in stats.items()), key=lambda row: -row[2])

    # --- the trading thread ----------------------------------------------------------------------------

    def entries_paused(self) -> bool:
        return self.paused

    def on_bar(self, strategy: Any, candle: dt.datetime, history: bool) -> None:
        """End of a candle: re-apply what was recorded at this candle (history), or apply new requests."""
        stamp = candle.isoformat()
        for data in self._recorded.pop(stamp, []):
            self._apply(strategy, data["command"], data.get("symbols", []))
        if history:
            return
        while True:
            try:
                command, symbols, who = self._requests.get_nowait()
            except queue.Empty:
                return
            # Logged before it is applied: a crash in between re-applies it on the replay, never skips it.
            self.log(who, command, "applied at the end of this candle", {"candle": stamp, "symbols": symbols})
            self._apply(strategy, command, symbols)

    def _apply(self, strategy: Any, command: str, symbols: list[str]) -> None:
        if command in ("pause", "resume"):
            self.paused = command == "pause"
            return
        for book in strategy.books:
            if book.symbol in symbols:
                strategy.force_exit(book)

    def listen(self, listener: Any, alerts: Any = None) -> ControlledListener:
        """The strategy's event listener with this control in front (pause gate, end-of-candle actions)
        and, given `alerts` (engine/alerts.py BotAlerts), protection alerts."""
        return ControlledListener(listener, self, alerts)


class ControlledListener:
    """Forwards the strategy's events to the bot's listener; at each candle's end applies operator
    actions first (so they are logged and applied before the candle's checkpoint commits)."""

    def __init__(self, inner: Any, control: BotControl, alerts: Any = None) -> None:
        self.inner = inner
        self.control = control
        self.alerts = alerts
        self.entries_paused = control.entries_paused

    def __getattr__(self, name: str) -> Any:  # on_trade, on_order …
        return getattr(self.inner, name)

    def on_entry_blocked(self, strategy: Any, book: Any, protection: str, reason: str) -> None:
        if self.alerts is not None:
            candle = bt.num2date(strategy.datetime[0]).replace(tzinfo=dt.UTC)
            self.alerts.protection(protection, book.symbol, reason, candle)

    def on_bar(self, strategy: Any) -> None:
        control = self.control
        if not control._recorded and control._requests.empty():  # the usual candle: nothing to apply
            self.inner.on_bar(strategy)
            return
        candle = bt.num2date(strategy.datetime[0]).replace(tzinfo=dt.UTC)
        resume_after_ns = getattr(self.inner, "resume_after_ns", None)
        history = resume_after_ns is not None and to_ns(candle) <= resume_after_ns
        self.control.on_bar(strategy, candle, history)
        self.inner.on_bar(strategy)


def money_text(value: float | Decimal | None) -> str:
    return "n/a" if value is None else f"{float(value):,.2f}"
