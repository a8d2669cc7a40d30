"""`tradeforge run`: a bot in paper mode, persisting everything, resuming exactly after a crash.

Lifecycle: check the database (reachable, schema current, rows consistent) -> claim the run lock
-> replay the bot's candles from its first one (history is re-read at full speed and its orders
re-adopted, see engine/journal.py) -> carry on with new candles -> on SIGINT/SIGTERM finish the
current candle, mark the bot stopped and release the lock. A second SIGINT exits at once; that
is safe because every step was committed when it happened.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import backtrader as bt

from tradeforge.brokers.paper import PaperBroker, money
from tradeforge.config.loader import redacted
from tradeforge.config.schema import BotConfig
from tradeforge.engine.alerts import BotAlerts
from tradeforge.engine.backtest import collect_result, configure_broker
from tradeforge.engine.control import BotControl
from tradeforge.engine.data import load_candles
from tradeforge.engine.journal import RepositoryJournal
from tradeforge.engine.results import BacktestResult
from tradeforge.engine.validation import validate
from tradeforge.feeds.candles import to_ns
from tradeforge.feeds.replay import ReplayFeed
from tradeforge.persistence.database import check_reachable, default_url, make_engine
from tradeforge.persistence.migrate import ensure_current
from tradeforge.persistence.repository import Repository
from tradeforge.resilience.errors import ConfigError, Fatal, InconsistentState, Problem
from tradeforge.strategies.base import Strategy, TradeRecord

HEARTBEAT_SECONDS = 5.0


@dataclass
class RunOutcome:
    result: BacktestResult
    adopted_orders: int
    stopped_early: bool


def config_hash(config: BotConfig) -> str:
    """What must not change under a bot with history: strategy, broker and data (the pace aside)."""
    document = redacted(config)
    document["data"].pop("speed", None)
    relevant = {key: document[key] for key in ("strategy", "broker", "data")}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True, default=str).encode()).hexdigest()


def database_url(config: BotConfig) -> str:
    return config.persistence.db_url or default_url(config.data_dir)


def open_repository(config: BotConfig, config_hint: str) -> Repository:
    """The bot's repository, after checking the database is reachable and its schema current."""
    engine = make_engine(database_url(config), busy_timeout_ms=config.persistence.busy_timeout_ms)
    check_reachable(engine)
    ensure_current(engine, config_hint)
    return Repository.attach(engine, config.name, config_hash(config), config.mode)


class BotListener:
    """Strategy events -> the repository (cursor, equity) and the user's terminal (trades)."""

    def __init__(
        self,
        repository: Repository,
        journal: RepositoryJournal,
        timeframe: str,
        owner: str,
        resume_after_ns: int | None,
        say: Callable[[str], None],
        alerts: BotAlerts | None = None,
    ) -> None:
        self.alerts = alerts
        self.repository = repository
        self.journal = journal
        self.timeframe = timeframe
        self.owner = owner
        self.resume_after_ns = resume_after_ns
        self.say = say
        self._last_heartbeat = time.monotonic()

    def on_bar(self, strategy: Strategy) -> None:
        now = bt.num2date(strategy.datetime[0]).replace(tzinfo=dt.UTC)
        if self.resume_after_ns is not None and to_ns(now) <= self.resume_after_ns:
            return  # history being re-read: already recorded
        candles = [
            (book.symbol, self.timeframe, bt.num2date(book.data.datetime[0]).replace(tzinfo=dt.UTC))
            for book in strategy.books
            if book.last_index >= 0
        ]
        self.repository.checkpoint(
            now, candles, money(strategy.equity[-1]) or Decimal(0), money(strategy.broker.getcash()) or Decimal(0)
        )
        if time.monotonic() - self._last_heartbeat > HEARTBEAT_SECONDS:
            self.repository.heartbeat(self.owner)
            self._last_heartbeat = time.monotonic()

    def on_trade(self, strategy: Strategy, book: Any, trade: TradeRecord) -> None:
        if self.alerts is not None:
            self.alerts.trade_closed(trade)  # marked replayed while catching up: see engine/alerts.py
        if self.journal.catching_up:
            return
        self.say(
            f"{trade.exit_time:%Y-%m-%d %H:%M} closed {trade.side} {trade.symbol} {trade.size:.6g} "
            f"@ {trade.entry_price:.6g} -> {trade.exit_price:.6g} ({trade.exit_reason}) pnl {trade.pnl:+.2f}"
        )


def run_bot(
    config: BotConfig, config_hint: str, *, stop: threading.Event | None = None, say: Callable[[str], None] = print
) -> RunOutcome:
    """Run a paper bot until its feed ends or `stop` is set."""
    if config.mode == "live":
        raise ConfigError(
            [
                Problem(
                    "mode",
                    "live trading needs a live broker, which this version does not have yet "
                    "(Binance support is coming); use mode: paper",
                    "live",
                )
            ]
        )
    if config.data.source != "replay":
        raise ConfigError(
            [
                Problem(
                    "data.source",
                    "paper mode needs a live-style feed; use source: replay (live exchange feeds are coming)",
                    config.data.source,
                )
            ]
        )
    resolved = validate(config)
    repository = open_repository(config, config_hint)
    problems = repository.integrity_problems()
    if problems:
        raise InconsistentState(
            problems,
            source=f"database {repository.engine.url.render_as_string(hide_password=True)} "
            "(inspect with `tradeforge db check`)",
        )
    stop = stop or threading.Event()
    owner = repository.acquire_lock()
    status = "stopped"
    control = BotControl(repository, stop, config.name)
    alerts = BotAlerts.start(config, repository, owner, say, control)
    try:
        # Read the stored orders and cursors once, under the lock: nothing else writes them now.
        journal = RepositoryJournal(repository)
        cursors = repository.cursors()
        has_history = journal.catching_up or bool(cursors)
        if has_history and repository.instance().config_hash != config_hash(config):
            raise Fatal(
                f"bot {config.name!r} has history in this database under a different config (strategy, broker "
                "or data changed); give the new setup a new `name:` or restore the old config"
            )
        repository.set_config(config_hash(config), config.mode)
        status = "crashed"
        resume_after_ns = max((to_ns(t) for t in cursors.values()), default=None)
        candles = load_candles(config)
        if resume_after_ns is not None:
            say(
                f"resuming {config.name}: re-reading history up to "
                f"{dt.datetime.fromtimestamp(resume_after_ns / 1e9, dt.UTC):%Y-%m-%d %H:%M} UTC, "
                f"{journal.to_adopt} stored orders to re-adopt"
            )
        speed = None if config.data.speed == "max" else float(config.data.speed)
        cerebro = bt.Cerebro(stdstats=False, preload=False, runonce=False)
        cerebro.broker = PaperBroker(alerts.journal(journal, cerebro.datas))
        configure_broker(cerebro.broker, config)
        for series in candles:
            cerebro.adddata(ReplayFeed(series, speed=speed, stop=stop, catch_up_until_ns=resume_after_ns))
        listener = BotListener(repository, journal, config.data.timeframe, owner, resume_after_ns, say, alerts)
        alerts.started(journal, resume_after_ns)
        cerebro.addstrategy(resolved.cls, **resolved.params, events=control.listen(listener, alerts))
        strategy: Strategy = cerebro.run()[0]
        status = "stopped" if stop.is_set() else "finished"
        result = collect_result(config, candles, resolved, strategy, config.broker.cash)
        return RunOutcome(result, journal.adopted, stop.is_set())
    except Exception as exc:
        alerts.failed(exc)
        raise
    finally:
        repository.release_lock(owner, status)
        alerts.stopped(status)
        alerts.close()


def bot_status(config: BotConfig, config_hint: str) -> dict[str, Any]:
    """What `tradeforge status` shows, read from the database (the bot may be running)."""
    repository = open_repository(config, config_hint)
    bot = repository.instance()
    snapshots = repository.equity()
    pnl_today = None
    if snapshots:
        # "Today" is the bot's today: the UTC day of its latest candle (a replay lives in the past).
        today = snapshots[-1].time.replace(hour=0, minute=0, second=0, microsecond=0)
        before_today = [s for s in snapshots if s.time < today]
        base = before_today[-1].equity if before_today else snapshots[0].equity
        pnl_today = float(snapshots[-1].equity - base)
    return {
        "bot": {
            "name": bot.name,
            "mode": bot.mode,
            "status": bot.status,
            "started_at": f"{bot.started_at:%Y-%m-%d %H:%M:%S} UTC" if bot.started_at else None,
            "stopped_at": f"{bot.stopped_at:%Y-%m-%d %H:%M:%S} UTC" if bot.stopped_at else None,
        },
        "open_trades": [t for t in repository.trade_records() if t["exit_reason"] == "open"],
        "open_orders": [
            {
                "client_order_id": o.client_order_id,
                "symbol": o.symbol,
                "side": o.side,
                "type": o.type,
                "amount": str(o.amount),
                "price": str(o.price or o.stop_price) if (o.price or o.stop_price) else None,
                "status": o.status.value,
            }
            for o in repository.open_orders()
        ],
        "pnl_today": pnl_today,
    }


def bot_trades(config: BotConfig, config_hint: str, status: str | None) -> list[dict[str, Any]]:
    repository = open_repository(config, config_hint)
    rows = repository.trade_records()
    if status == "open":
        return [t for t in rows if t["exit_reason"] == "open"]
    if status == "closed":
        return [t for t in rows if t["exit_reason"] != "open"]
    return rows


def install_stop_signals(stop: threading.Event, say: Callable[[str], None]) -> None:
    """First SIGINT/SIGTERM: finish the current candle and stop. Second SIGINT: exit now."""

    def first(signum: int, _frame: Any) -> None:
        if stop.is_set():
            say("second interrupt: exiting now (everything done so far is committed)")
            os._exit(130)
        say(f"{signal.Signals(signum).name}: finishing the current candle, then stopping")
        stop.set()

    signal.signal(signal.SIGINT, first)
    signal.signal(signal.SIGTERM, first)
