"""The bot's alerts: the notifier built from `notifications:`, and the engine events turned into
alerts — lifecycle (started, recovered, stopped, errors), orders (through a journal wrapper that
sees every intent, fill and close right after it is committed), trades and stops (from the
strategy), a daily summary. Alerts derived while a restarted bot re-reads its history are marked
`replayed`: the notifier keeps only those missing from the outbox (see notifications/manager.py)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import backtrader as bt
from sqlalchemy import select

from tradeforge.config.schema import BotConfig
from tradeforge.engine.journal import RepositoryJournal
from tradeforge.notifications.alerts import Alert
from tradeforge.persistence.models import Fill
from tradeforge.persistence.repository import Repository
from tradeforge.resilience.errors import Fatal

if TYPE_CHECKING:  # the channels' clients (python-telegram-bot, aiosmtplib) load only for a bot that alerts
    from tradeforge.notifications.channels.base import Channel
    from tradeforge.notifications.commands import Control
    from tradeforge.notifications.manager import Notifier
    from tradeforge.resilience.exchange import ExchangeClient

log = logging.getLogger("tradeforge.alerts")
RUN_EVENT = "alerts_run"  # event-log kind: a run's start candle and whether it alerted
CIRCUIT_EVENT = "exchange_circuit"  # event-log kind: the exchange circuit breaker opened or closed
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
STOP_REASONS = frozenset({"stop_loss", "take_profit", "trailing_stop"})


def build_channels(config: BotConfig, warn: Callable[[str], None]) -> list[Channel]:
    """The configured channels; a missing secret is a warning (the channel is disabled, its alerts kept)."""
    from tradeforge.config.secrets import read_secret
    from tradeforge.notifications.channels.email import EmailChannel
    from tradeforge.notifications.channels.telegram import TelegramChannel

    settings = config.notifications
    channels: list[Channel] = []
    if settings.telegram is not None:
        tg = settings.telegram
        try:
            token = read_secret("notifications.telegram", tg.token_env, tg.token_file)
        except Fatal as exc:
            warn(f"{exc}: Telegram alerts are kept in the outbox until a token is given")
            token = None
        channels.append(TelegramChannel(tg, token))
    if settings.email is not None:
        mail = settings.email
        password = None
        if mail.user:
            try:
                password = read_secret("notifications.email", mail.password_env, mail.password_file)
            except Fatal as exc:
                warn(f"{exc}: e-mail alerts are kept in the outbox until a password is given")
        channels.append(EmailChannel(mail, password))
    return channels


class BotAlerts:
    """What run_bot and BotListener call; every method is a cheap enqueue (or nothing when off)."""

    def __init__(self, notifier: Notifier | None, config: BotConfig, owner: str) -> None:
        self.notifier = notifier
        self.config = config
        self.owner = owner
        self.catching_up: Callable[[], bool] = lambda: False
        self.resume_after: dt.datetime | None = None

    def settled(self) -> bool:
        """Is every alert so far in the outbox? A restart snapshot waits for it: the alerts of the
        candles before a snapshot are never derived again."""
        return self.notifier is None or self.notifier.all_stored()

    @classmethod
    def start(
        cls,
        config: BotConfig,
        repository: Repository,
        owner: str,
        say: Callable[[str], None],
        control: Control | None = None,
    ) -> BotAlerts:
        """Start delivery (and Telegram commands, given a control) when a channel is configured; bad
        credentials warn, trading goes on."""
        if config.notifications.telegram is None and config.notifications.email is None:
            return cls(None, config, owner)

        def warn(text: str) -> None:
            log.warning(text)
            say(f"warning: {text}")

        from tradeforge.notifications.channels.telegram import TelegramChannel
        from tradeforge.notifications.commands import TelegramCommands
        from tradeforge.notifications.manager import Notifier
        from tradeforge.notifications.outbox import Outbox
        from tradeforge.notifications.render import Renderer

        channels = build_channels(config, warn)
        outbox = Outbox(repository.engine, repository.bot_id)
        extra: list[Callable[[Notifier], Any]] = []
        for channel in channels:
            if isinstance(channel, TelegramChannel) and channel.token and channel.config.commands and control:
                extra.append(TelegramCommands(channel, control).run)
        if config.notifications.daily_summary_at is not None:
            extra.append(daily_summary(repository, config.notifications.daily_summary_at))
        notifier = Notifier(
            outbox,
            channels,
            Renderer(config.name, {str(kind): text for kind, text in config.notifications.templates.items()}),
            config.notifications.delivery,
            warn=warn,
            background=extra,
        )
        notifier.start()
        return cls(notifier, config, owner)

    def send(self, alert: Alert) -> None:
        if self.notifier is not None:
            self.notifier.notify(alert)

    def guarded(self, build: Callable[[], None]) -> None:
        """Build and send alerts on the trading thread; a bug in that never reaches trading."""
        try:
            build()
        except Exception:
            log.exception("building an alert failed; trading goes on")

    def journal(self, inner: RepositoryJournal, feeds: Sequence[Any]) -> RepositoryJournal:
        """`inner`, or a wrapper that also alerts on each intent, fill and close after it is committed."""
        self.catching_up = lambda: inner.catching_up
        if self.notifier is None:
            return inner
        return AlertingJournal(inner, self, feeds)  # type: ignore[return-value]

    # --- lifecycle -----------------------------------------------------------------------------------

    def started(self, journal: RepositoryJournal, resume_after_ns: int | None) -> None:
        """Before the first candle: decide which replayed alerts to keep, then bot_started."""
        resume_after = None if resume_after_ns is None else dt.datetime.fromtimestamp(resume_after_ns / 1e9, dt.UTC)
        self.resume_after = resume_after
        self._mark_run(journal.repository, resume_after)
        if self.notifier is None:
            return
        now = dt.datetime.now(dt.UTC)
        config = self.config
        self.send(
            Alert(
                "bot_started",
                f"run:{self.owner}:started",
                now,
                {"mode": config.mode, "symbols": ", ".join(config.data.symbols), "at": f"{now:%Y-%m-%d %H:%M:%S} UTC"},
            )
        )

    def recovered(self, summary: str) -> None:
        """On the first new candle after a restart (engine/runtime.py), with the recovery summary."""
        self.send(Alert("bot_recovered", f"run:{self.owner}:recovered", dt.datetime.now(dt.UTC), {"summary": summary}))

    def problem(self, message: str) -> None:
        """Something the operator must know while the bot runs (the database lost, and back)."""
        now = dt.datetime.now(dt.UTC)
        self.send(Alert("error", f"run:{self.owner}:problem:{now.timestamp():.6f}", now, {"message": message}))

    def _mark_run(self, repository: Repository, resume_after: dt.datetime | None) -> None:
        """Which replayed alerts may have been lost in a crash: those newer than the newest trading
        alert in the outbox (alerts are stored in the order they happen), but not from before the
        unbroken streak of alerting runs that ends with the previous run (their alerts were never
        wanted). None when the previous run did not alert. Every run, notifications on or off,
        records its start candle in the event log for the next one."""
        streak = []
        for event in reversed(repository.events(RUN_EVENT)):
            if not (event.data or {}).get("notifications"):
                break
            streak.append(event.data or {})
        if self.notifier is not None:
            if streak:
                first = streak[-1].get("since")
                since = dt.datetime.fromisoformat(first) if first else EPOCH
                stored = self.notifier.outbox.high_water()
                self.notifier.high_water = max(stored or since, since)
            else:
                self.notifier.high_water = None
        repository.log_event(
            RUN_EVENT,
            f"run {self.owner}: alerts {'on' if self.notifier else 'off'}",
            {"since": resume_after.isoformat() if resume_after else None, "notifications": self.notifier is not None},
        )

    def watch_exchange(self, client: ExchangeClient | None, repository: Repository) -> None:
        """Log and alert each opening and closing of the exchange's circuit breaker (while it is open,
        new entries are refused and exits still attempted: brokers/ccxt.py)."""
        if client is None:
            return

        def changed(opened: bool, detail: str) -> None:
            state = "opened" if opened else "closed"
            now = dt.datetime.now(dt.UTC)
            repository.log_event(CIRCUIT_EVENT, f"exchange circuit {state}: {detail}", {"state": state})
            key = f"run:{self.owner}:breaker:exchange:{now.timestamp():.6f}:{state}"
            self.send(Alert(f"breaker_{state}", key, now, {"name": "exchange", "detail": detail}))

        client.watch_circuit(changed)

    def failed(self, error: BaseException) -> None:
        """The run ends with an error: say what it was (the bot_stopped alert follows)."""
        now = dt.datetime.now(dt.UTC)
        self.send(Alert("error", f"run:{self.owner}:error", now, {"message": f"{type(error).__name__}: {error}"}))

    def stopped(self, status: str) -> None:
        now = dt.datetime.now(dt.UTC)
        reason = {"finished": "replay finished", "stopped": "stopped on request"}.get(status, status)
        data = {"reason": reason, "at": f"{now:%Y-%m-%d %H:%M:%S} UTC"}
        self.send(Alert("bot_stopped", f"run:{self.owner}:stopped", now, data))

    def close(self, timeout: float | None = None) -> None:
        """Deliver what is pending for up to `timeout` s (default delivery.drain_on_stop_s); the rest
        goes out at the next start."""
        if self.notifier is not None:
            self.notifier.stop(self.config.notifications.delivery.drain_on_stop_s if timeout is None else timeout)

    # --- from the strategy ---------------------------------------------------------------------------

    def trade_closed(self, record: Any) -> None:
        """A closed TradeRecord: trade_closed, plus stop_hit when a stop or take-profit closed it."""
        if self.notifier is not None:
            self.guarded(lambda: self._trade_closed(record))

    def _trade_closed(self, record: Any) -> None:
        exit_time: dt.datetime = record.exit_time
        replayed = self.catching_up() or (self.resume_after is not None and exit_time <= self.resume_after)
        key = f"trade:{record.symbol}:{exit_time:%Y%m%dT%H%M}:{record.side}"
        data = {
            "symbol": record.symbol,
            "side": record.side,
            "size": round(record.size, 8),
            "entry_price": round(record.entry_price, 8),
            "exit_price": round(record.exit_price, 8) if record.exit_price is not None else None,
            "exit_reason": record.exit_reason,
            "pnl": f"{record.pnl:+.2f} ({record.pnl_pct * 100:+.2f} %)",
        }
        self.send(Alert("trade_closed", f"{key}:closed", exit_time, data, replayed=replayed))
        if record.exit_reason in STOP_REASONS:
            self.send(Alert("stop_hit", f"{key}:stop", exit_time, data, replayed=replayed))

    def protection(self, name: str, symbol: str, detail: str, time: dt.datetime) -> None:
        """A protection mixin blocked an entry signal (one alert per blocked signal, on its candle)."""
        if self.notifier is not None:
            self.guarded(lambda: self._protection(name, symbol, detail, time))

    def _protection(self, name: str, symbol: str, detail: str, time: dt.datetime) -> None:
        replayed = self.catching_up() or (self.resume_after is not None and time <= self.resume_after)
        self.send(
            Alert(
                "protection_triggered",
                f"protection:{name}:{symbol}:{time:%Y%m%dT%H%M}",
                time,
                {"protection": name, "symbol": symbol, "detail": f"entry blocked, {detail}"},
                replayed=replayed,
            )
        )


class AlertingJournal:
    """RepositoryJournal plus alerts: each call first commits (the inner journal), then enqueues.
    Whether it is history is decided exactly: an adopted intent, a fill already stored."""

    def __init__(self, inner: RepositoryJournal, alerts: BotAlerts, feeds: Sequence[Any]) -> None:
        self.inner = inner
        self.alerts = alerts
        self.feeds = feeds  # cerebro.datas itself: filled after this wrapper is made
        self._orders: dict[str, dict[str, Any]] = {}
        self._replayed: set[str] = set()
        self._stored_fills = stored_fill_ids(inner.repository)  # fills from before this run: history

    def __getattr__(self, name: str) -> Any:  # catching_up, to_adopt, adopted, repository …
        return getattr(self.inner, name)

    def _now(self) -> dt.datetime:
        stamps = [feed.datetime[0] for feed in self.feeds if len(feed)]
        if not stamps:
            return dt.datetime.now(dt.UTC)
        return bt.num2date(max(stamps)).replace(tzinfo=dt.UTC)

    def intent(self, **order: Any) -> str:
        replayed = self.inner.catching_up
        client_id = self.inner.intent(**order)
        self.alerts.guarded(lambda: self._placed(client_id, order, replayed))
        return client_id

    def _placed(self, client_id: str, order: dict[str, Any], replayed: bool) -> None:
        info = {
            "client_order_id": client_id,
            "symbol": order["symbol"],
            "side": order["side"],
            "type": order["type"],
            "role": order["role"],
            "amount": _plain(order["amount"]),
            "reason": order.get("reason"),
        }
        self._orders[client_id] = info
        if replayed:
            self._replayed.add(client_id)
        self.alerts.send(Alert("order_placed", f"order:{client_id}:placed", self._now(), info, replayed=replayed))

    def accepted(self, client_order_id: str) -> None:
        self.inner.accepted(client_order_id)

    def filled(
        self, client_order_id: str, fill_id: str, amount: Decimal, price: Decimal, fee: Decimal, time: dt.datetime
    ) -> None:
        stored_before = fill_id in self._stored_fills
        self.inner.filled(client_order_id, fill_id, amount, price, fee, time)
        self.alerts.guarded(lambda: self._filled(client_order_id, fill_id, amount, price, fee, time, stored_before))

    def _filled(
        self,
        client_order_id: str,
        fill_id: str,
        amount: Decimal,
        price: Decimal,
        fee: Decimal,
        time: dt.datetime,
        stored_before: bool,
    ) -> None:
        info = self._orders.get(client_order_id, {"client_order_id": client_order_id})
        data = {**info, "amount": _plain(amount), "price": _plain(price), "fee": _plain(fee)}
        self.alerts.send(Alert("order_filled", f"fill:{fill_id}", time, data, replayed=stored_before))
        if info.get("role") == "entry" and fill_id.endswith("-f1"):
            opened = {
                "symbol": info.get("symbol"),
                "side": _position_side(info),
                "size": data["amount"],
                "price": data["price"],
            }
            self.alerts.send(
                Alert("trade_opened", f"order:{client_order_id}:opened", time, opened, replayed=stored_before)
            )

    def closed(self, client_order_id: str, status: str) -> None:
        self.inner.closed(client_order_id, status)
        self.alerts.guarded(lambda: self._closed(client_order_id, status))

    def _closed(self, client_order_id: str, status: str) -> None:
        info = self._orders.get(client_order_id, {"client_order_id": client_order_id})
        kind = "order_cancelled" if status in ("canceled", "expired") else "order_rejected"
        self.alerts.send(
            Alert(
                kind,
                f"order:{client_order_id}:{status}",
                self._now(),
                {**info, "status": status},
                replayed=client_order_id in self._replayed,
            )
        )


def stored_fill_ids(repository: Repository) -> set[str]:
    table = Fill.__table__
    query = select(table.c.venue_trade_id).where(table.c.bot_id == repository.bot_id)
    with repository.engine.connect() as connection:
        return set(connection.execute(query).scalars())


def _plain(value: Decimal | float | None) -> str | None:
    return None if value is None else format(Decimal(str(value)).normalize(), "f")


def _position_side(info: dict[str, Any]) -> str:
    return "long" if info.get("side") == "buy" else "short"


def daily_summary(repository: Repository, at: dt.time) -> Callable[[Notifier], Any]:
    """A background task for the notifier's loop: at `at` (UTC) each day, summarise the bot's day."""

    async def run(notifier: Notifier) -> None:
        while True:
            now = dt.datetime.now(dt.UTC)
            due = now.replace(hour=at.hour, minute=at.minute, second=at.second, microsecond=0)
            if due <= now:
                due += dt.timedelta(days=1)
            await asyncio.sleep((due - now).total_seconds())
            try:
                data = await asyncio.to_thread(summary_of_day, repository, due)
            except Exception as exc:  # a database hiccup skips one summary, never the loop
                log.warning("daily summary failed: %s", exc)
                continue
            notifier.notify(Alert("daily_summary", f"daily:{due:%Y-%m-%d}", due, data))

    return run


def summary_of_day(repository: Repository, until: dt.datetime) -> dict[str, Any]:
    """PnL, closed trades and equity over the 24 hours before `until`."""
    since = until - dt.timedelta(days=1)
    closed = [t for t in repository.trades() if t.closed_at is not None and since < t.closed_at <= until]
    pnl = sum((t.pnl or Decimal(0) for t in closed), Decimal(0))
    equity = repository.equity()
    return {
        "day": f"{since:%Y-%m-%d %H:%M} → {until:%H:%M} UTC",
        "pnl": f"{pnl:+.2f}",
        "trades": len(closed),
        "equity": f"{equity[-1].equity:.2f}" if equity else "n/a",
    }
