"""`tradeforge run`: a bot in paper mode, persisting everything, resuming exactly after a crash.

Lifecycle: check the database (reachable, schema current, rows consistent) -> claim the run lock
-> replay the bot's candles from its latest snapshot (engine/restart.py), or from its first one
without a snapshot (history is re-read at full speed and its orders re-adopted, see
engine/journal.py) -> carry on with new candles -> on SIGINT/SIGTERM finish the
current candle, mark the bot stopped and release the lock. A second SIGINT exits at once; that
is safe because every step was committed when it happened.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import backtrader as bt

from tradeforge.brokers.live import LiveBroker
from tradeforge.brokers.paper import PaperBroker, money
from tradeforge.config.loader import redacted
from tradeforge.config.schema import BotConfig
from tradeforge.engine.alerts import BotAlerts
from tradeforge.engine.backtest import collect_result, configure_broker
from tradeforge.engine.control import BotControl
from tradeforge.engine.data import load_candles
from tradeforge.engine.feeds import BotFeeds, build_feeds, checked_client
from tradeforge.engine.journal import Divergence, RepositoryJournal
from tradeforge.engine.outage import Persist
from tradeforge.engine.restart import RestartPoint, Snapshots, restart_point, snapshots_supported
from tradeforge.engine.results import BacktestResult
from tradeforge.engine.splits import SplitHandler, watch_splits
from tradeforge.engine.validation import validate
from tradeforge.feeds.candles import Candles, to_ns
from tradeforge.persistence.database import check_reachable, default_url, make_engine
from tradeforge.persistence.migrate import ensure_current
from tradeforge.persistence.models import OrderStatus
from tradeforge.persistence.repository import DatabaseUnavailable, Repository
from tradeforge.resilience.errors import ConfigError, Fatal, InconsistentState, Problem
from tradeforge.strategies.base import Strategy, TradeRecord

HEARTBEAT_SECONDS = 5.0
OPERATOR_CANCEL = "operator_cancel"  # event kind: orders canceled by an operator, re-applied on replay


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
    if config.data.source == "yahoo":  # the adjustment changes every price the bot decided on
        relevant["yahoo"] = {"adjust": config.yahoo.adjust, "prepost": config.yahoo.prepost}
    if config.data.source == "ibkr":  # which contracts, and which prices of them
        relevant["ibkr"] = {key: document["ibkr"][key] for key in ("contracts", "what_to_show", "use_rth")}
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
        persist: Persist,
        timeframe: str,
        owner: str,
        resume_after_ns: int | None,
        say: Callable[[str], None],
        operator_cancels: dict[int, list[str]] | None = None,
        started: float | None = None,
        alerts: BotAlerts | None = None,
        snapshots: Snapshots | None = None,
        restart: RestartPoint | None = None,
    ) -> None:
        self.alerts = alerts
        self.snapshots = snapshots
        self.restart = restart
        self.repository = repository
        self.journal = journal
        self.persist = persist
        self.timeframe = timeframe
        self.owner = owner
        self.resume_after_ns = resume_after_ns
        self.say = say
        self.operator_cancels = operator_cancels or {}
        self._last_heartbeat = time.monotonic()
        self._started = started or self._last_heartbeat  # for the recovery's duration
        self._recovering = resume_after_ns is not None

    def _rereading(self, strategy: Strategy) -> bool:
        """Is the strategy on a candle it had already processed before this start?"""
        return self.resume_after_ns is not None and to_ns(_candle_time(strategy)) <= self.resume_after_ns

    def on_bar(self, strategy: Strategy) -> None:
        now = _candle_time(strategy)
        cancels = self.operator_cancels.get(to_ns(now))
        if cancels:  # history being re-read: cancel what an operator canceled after this candle
            strategy.broker.cancel_by_client_id(cancels)
        if self._rereading(strategy):
            return  # already recorded
        if self._recovering:
            self._recovered(now)
        candles = [
            (book.symbol, self.timeframe, bt.num2date(book.data.datetime[0]).replace(tzinfo=dt.UTC))
            for book in strategy.books
            if book.last_index >= 0
        ]
        equity, cash = money(strategy.equity[-1]) or Decimal(0), money(strategy.broker.getcash()) or Decimal(0)
        restart_point, what = None, f"recording the {now:%Y-%m-%d %H:%M} candle"
        snapshots = self.snapshots
        settled = self.alerts is None or self.alerts.settled()
        if snapshots is not None and not self.journal.catching_up and snapshots.due(strategy) and settled:
            state = snapshots.take(strategy, self.journal.open_trades())
            restart_point, what = (self.journal.last_order_id, state), f"{what} and a snapshot"
        self.persist(lambda: self.repository.checkpoint(now, candles, equity, cash, restart_point), what)
        if time.monotonic() - self._last_heartbeat > HEARTBEAT_SECONDS:
            self.persist(lambda: self.repository.heartbeat(self.owner), "renewing the run lock")
            self._last_heartbeat = time.monotonic()

    def _recovered(self, now: dt.datetime | None) -> None:
        """On the first new candle after a restart (None: the history ended first), every stored
        order must have been asked for again."""
        self._recovering = False
        if self.journal.catching_up:
            raise Divergence(
                f"restart replay diverged: {self.journal.to_adopt} stored orders were not asked for again "
                f"{f'by the {now:%Y-%m-%d %H:%M} candle' if now else 'by the end of the candles'}. The config, the "
                "strategy code or the candles changed since they were placed; run `tradeforge db check` and start "
                "this strategy under a new bot name (`name:`)"
            )
        assert self.resume_after_ns is not None
        after = dt.datetime.fromtimestamp(self.resume_after_ns / 1e9, dt.UTC)
        holding = self.restart.open_positions if self.restart else 0
        since = f" from the snapshot at {self.restart.time:%Y-%m-%d %H:%M} ({holding} open)" if self.restart else ""
        message = (
            f"recovered in {time.monotonic() - self._started:.1f} s: re-read history{since} up to "
            f"{after:%Y-%m-%d %H:%M}, re-adopted {self.journal.adopted} stored orders; "
            + (f"trading from the {now:%Y-%m-%d %H:%M} candle" if now else "no new candles")
        )
        data = {
            "resumed_after": after.isoformat(),
            "adopted_orders": self.journal.adopted,
            "snapshot": self.restart.time.isoformat() if self.restart else None,
            "snapshot_positions": holding,
            "snapshot_orders_in_flight": self.restart.orders_in_flight if self.restart else 0,
        }
        self.persist(lambda: self.repository.log_event("recovered", message, data), "logging the recovery")
        self.say(message)
        if self.alerts is not None:
            self.alerts.recovered(message)

    def finished(self, stopped: bool) -> None:
        """The run is over: a restart whose candles ended within the history it re-read has recovered
        too (unless it was stopped before it got there)."""
        if self._recovering and not stopped:
            self._recovered(None)

    def on_trade(self, strategy: Strategy, book: Any, trade: TradeRecord) -> None:
        if self.alerts is not None:
            self.alerts.trade_closed(trade)  # marked replayed while catching up: see engine/alerts.py
        if self._rereading(strategy):
            return
        self.say(
            f"{trade.exit_time:%Y-%m-%d %H:%M} closed {trade.side} {trade.symbol} {trade.size:.6g} "
            f"@ {trade.entry_price:.6g} -> {trade.exit_price:.6g} ({trade.exit_reason}) pnl {trade.pnl:+.2f}"
        )


def _candle_time(strategy: Strategy) -> dt.datetime:
    return bt.num2date(strategy.datetime[0]).replace(tzinfo=dt.UTC)


def run_bot(
    config: BotConfig,
    config_hint: str,
    *,
    stop: threading.Event | None = None,
    say: Callable[[str], None] = print,
    yahoo: Mapping[str, Any] | None = None,
    ibkr: Mapping[str, Any] | None = None,
) -> RunOutcome:
    """Run a paper bot until its feed ends or `stop` is set (`yahoo`: client, clock, sleep for its feeds;
    `ibkr`: IB factory and clock)."""
    started = time.monotonic()
    if config.mode == "live":
        from tradeforge.engine import live  # ccxt loads only for a bot that needs it

        live.check_live(config)
    if config.data.source not in ("replay", "binance", "yahoo", "ibkr"):
        raise ConfigError(
            [
                Problem(
                    "data.source",
                    "paper mode needs a live-style feed; use source: replay, binance, yahoo or ibkr",
                    config.data.source,
                )
            ]
        )
    resolved = validate(config)
    client = checked_client(config)  # symbols and timeframe on the exchange, before anything is written
    repository = open_repository(config, config_hint)
    problems, replay_candles = checked_while_loading(repository, config)
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

    def say_and_alert(message: str) -> None:
        say(message)
        alerts.problem(message)

    feeds: BotFeeds | None = None
    try:
        # Read the stored orders and cursors once, under the lock: nothing else writes them now.
        persist = Persist(repository, should_stop=stop.wait, say=say_and_alert)
        restart = restart_point(repository, config, resolved.cls)
        journal = (
            RepositoryJournal(repository, persist, restart.last_order_id, restart.open_trades)
            if restart
            else RepositoryJournal(repository, persist)
        )
        cursors = repository.cursors()
        has_history = journal.catching_up or bool(cursors)
        if has_history and repository.instance().config_hash != config_hash(config):
            raise Fatal(
                f"bot {config.name!r} has history in this database under a different config (strategy, broker "
                "or data changed); give the new setup a new `name:` or restore the old config"
            )
        if config.mode == "live":
            live.check_history(repository, has_history)
        repository.set_config(config_hash(config), config.mode)
        resume_after_ns = max((to_ns(t) for t in cursors.values()), default=None)
        feeds = build_feeds(
            config,
            stop=stop,
            resume_after_ns=resume_after_ns,
            say=say,
            yahoo=yahoo,
            ibkr=ibkr,
            client=client,
            restart=restart,
            replay_candles=replay_candles,
        )
        alerts.watch_exchange(feeds.client, repository)
        if resume_after_ns is not None:
            say(
                f"resuming {config.name}: re-reading history"
                + (f" from the snapshot at {restart.time:%Y-%m-%d %H:%M} UTC" if restart else "")
                + f" up to {dt.datetime.fromtimestamp(resume_after_ns / 1e9, dt.UTC):%Y-%m-%d %H:%M} UTC, "
                f"{journal.to_adopt} stored orders to re-adopt"
            )
        cerebro = bt.Cerebro(stdstats=False, preload=False, runonce=False)
        if config.mode == "live":
            cerebro.broker = live.live_broker(
                config,
                config_hint,
                feeds,
                repository,
                alerts.journal(journal, cerebro.datas),
                lambda candle_ns: resume_after_ns is not None and candle_ns <= resume_after_ns,
                stop,
                say,
            )
        else:
            cerebro.broker = PaperBroker(alerts.journal(journal, cerebro.datas))
            configure_broker(cerebro.broker, config)
        if restart is not None:  # the cash and the pause as they were on the snapshot's candle
            cerebro.broker.set_cash(restart.strategy_state["cash"])
            control.paused = bool(restart.state["paused"])
        for feed in feeds.feeds:
            cerebro.adddata(feed)
        watch_splits(feeds.feeds, cerebro.broker, SplitHandler(repository, persist, say))
        listener = BotListener(
            repository,
            journal,
            persist,
            config.data.timeframe,
            owner,
            resume_after_ns,
            say,
            operator_cancels(repository),
            started,
            alerts,
            Snapshots(control.entries_paused) if snapshots_supported(config, resolved.cls) else None,
            restart,
        )
        alerts.started(journal, resume_after_ns)
        no_entries = (
            live.missed_candles(feeds.feeds, resume_after_ns, repository, say_and_alert)
            if config.mode == "live"
            else ()
        )
        strategy_class = feeds.strategy(resolved.cls, no_entries)
        cerebro.addstrategy(
            strategy_class,
            **resolved.params,
            events=control.listen(listener, alerts),
            resume=restart.resume() if restart else None,
        )
        status = "crashed"  # until the run returns
        strategy: Strategy = cerebro.run()[0]
        listener.finished(stop.is_set())
        if stop.is_set() and config.cancel_open_orders_on_exit:
            if isinstance(cerebro.broker, LiveBroker):
                live.cancel_on_exit(cerebro.broker.venue, say)
            else:
                cancel_open_orders_on_exit(repository, persist, say)
        status = "stopped" if stop.is_set() else "finished"
        result = collect_result(config, feeds.delivered(), resolved, strategy, cerebro.broker.startingcash)
        return RunOutcome(result, journal.adopted, stop.is_set())
    except Exception as exc:
        alerts.failed(exc)
        raise
    finally:
        if feeds is not None:
            feeds.close()
        try:
            repository.release_lock(owner, status)
        except DatabaseUnavailable as exc:
            say(f"could not mark the bot {status}: {exc}; its run lock goes stale on its own")
        repository.close()
        alerts.stopped(status)
        alerts.close()


def checked_while_loading(repository: Repository, config: BotConfig) -> tuple[list[Problem], list[Candles] | None]:
    """The database's integrity problems, and a replay bot's candles read meanwhile. The check is the
    database's own work over the bot's whole history (done without Python's GIL), so on a long
    history its time hides behind the candle files' (a restart's cost, benchmarks/repository.py)."""
    with ThreadPoolExecutor(1, thread_name_prefix="integrity-check") as pool:
        checked = pool.submit(repository.integrity_problems)
        candles = load_candles(config) if config.data.source == "replay" else None
        return checked.result(), candles


def cancel_open_orders_on_exit(repository: Repository, persist: Persist, say: Callable[[str], None]) -> None:
    """Cancel every open order, logging the cancel first with the candle it follows: a restarted bot
    replays its history, and must cancel the same orders at the same point of it."""
    open_ids = [order.client_order_id for order in repository.open_orders()]
    if not open_ids:
        return
    candle = max(repository.cursors().values())
    persist(
        lambda: repository.log_event(
            OPERATOR_CANCEL,
            f"cancel {len(open_ids)} open orders on exit, after the {candle:%Y-%m-%d %H:%M} candle",
            {"candle": candle.isoformat(), "client_order_ids": open_ids},
        ),
        "logging the cancel of open orders on exit",
    )
    for client_id in open_ids:
        persist(functools.partial(repository.mark_order, client_id, OrderStatus.CANCELED), f"canceling {client_id}")
    say(f"canceled {len(open_ids)} open orders on exit: {', '.join(open_ids)}")


def operator_cancels(repository: Repository) -> dict[int, list[str]]:
    """Orders an operator canceled, by the open time (ns) of the candle after which it happened."""
    cancels: dict[int, list[str]] = {}
    for event in repository.events(OPERATOR_CANCEL):
        data = event.data or {}
        cancels.setdefault(to_ns(dt.datetime.fromisoformat(data["candle"])), []).extend(data["client_order_ids"])
    return cancels


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
