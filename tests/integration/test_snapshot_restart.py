"""Restarts from strategy snapshots: a bot stopped at many points and restarted from its latest quiet
candle (reading only its indicator window before it) ends exactly as the same run left alone, even with
recursive indicators (EMA, Wilder's ATR), Kelly sizing and every protection in play."""

from __future__ import annotations

import random
import threading
from pathlib import Path
from typing import Any

import pytest
from restart_helpers import recorded, stop_after
from sqlalchemy import update

from tradeforge.config.schema import BotConfig
from tradeforge.engine.restart import snapshots_supported
from tradeforge.engine.runtime import run_bot
from tradeforge.feeds.candles import to_ns
from tradeforge.persistence.database import make_engine
from tradeforge.persistence.migrate import upgrade
from tradeforge.persistence.models import StrategySnapshot
from tradeforge.persistence.repository import Repository
from tradeforge.strategies.base import Strategy
from tradeforge.strategies.library.presets import PRESETS
from tradeforge.strategies.mixins.protections import Cooldown
from tradeforge.strategies.registry import Registry

STRATEGY = {
    "direction": "both",
    "entry": {"name": "ema_cross", "fast": 5, "slow": 21},
    "exits": {"atr_stop": {"period": 10, "multiplier": 1.5}, "take_profit": {"pct": 0.03}},
    "sizing": {"name": "kelly", "min_trades": 10, "multiplier": 1.0, "default_pct": 50, "cap_pct": 80},
    "protections": {
        "cooldown": {"bars": 2},
        "max_drawdown": {"pct": 0.05, "lock_bars": 30},
        "stoploss_guard": {"trades": 2, "window_bars": 40, "lock_bars": 10},
        "daily_loss_limit": {"pct": 0.02},
    },
}


def bot(url: str, data_dir: Path) -> BotConfig:
    upgrade(make_engine(url))
    return BotConfig.model_validate(
        {
            "name": "snapshot-bot",
            "data_dir": str(data_dir),
            "data": {
                "source": "replay",
                "symbols": ["BTC/USDT"],
                "timeframe": "1h",
                "speed": "max",
                "end": "2023-05-01",
            },
            "broker": {"cash": 10_000, "commission": 0.001},
            "strategy": STRATEGY,
            "persistence": {"db_url": url},
        }
    )


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("uninterrupted")
    url = f"sqlite:///{root / 'tradeforge.sqlite'}"
    outcome = run_bot(bot(url, root), "bot.yaml", say=lambda _: None)
    assert not outcome.stopped_early
    return recorded(url, "snapshot-bot")


def test_stopped_many_times_and_restarted_from_snapshots_ends_exactly_as_left_alone(
    db_url: str, tmp_path: Path, uninterrupted: dict[str, Any]
) -> None:
    config = bot(db_url, tmp_path)
    rng = random.Random(3)
    messages: list[str] = []
    repository = Repository.attach(make_engine(db_url), "snapshot-bot", "", "paper")
    for _ in range(60):
        stop = threading.Event()
        watcher = threading.Thread(target=stop_after, args=(repository, rng.randint(20, 160), stop))
        watcher.start()
        outcome = run_bot(config, "bot.yaml", stop=stop, say=messages.append)
        stop.set()
        watcher.join()
        if not outcome.stopped_early:
            break
    else:
        pytest.fail("the bot never reached the end of its candles")
    got = recorded(db_url, "snapshot-bot")
    from_snapshots = [r for r in got["recoveries"] if r["snapshot"] is not None]
    assert len(from_snapshots) >= 15, "restarts should have resumed from snapshots"
    assert any(r["adopted_orders"] > 0 for r in from_snapshots), "some resumed with orders to re-adopt"
    assert len(uninterrupted["trades"]) > 100
    for key in ("trades", "orders", "fills", "equity"):
        assert got[key] == uninterrupted[key], key


def test_a_restart_plays_candles_from_its_snapshot_on_with_the_window_before_it_read_at_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'tradeforge.sqlite'}"
    config = bot(url, tmp_path)
    run_bot(config, "bot.yaml", say=lambda _: None)
    snapshot = Repository.attach(make_engine(url), "snapshot-bot", "", "paper").latest_snapshot()
    assert snapshot is not None
    outcome = run_bot(config, "bot.yaml", say=lambda _: None)  # nothing new: re-reads and stops
    times = outcome.result.equity_times
    after = int((times > to_ns(snapshot.time)).sum())
    assert 0 < after < 50, "the snapshot is recent, not the last candle"
    # Backtrader steps from the snapshot's candle on; the strategy's window before it (its first
    # decisions read `window` candles) comes from the stored candles in one piece.
    assert len(times) == 1 + after
    assert times[0] == to_ns(snapshot.time)


def as_version_2(state: dict[str, Any]) -> dict[str, Any]:
    """A snapshot in the shape version 2 stored it: no entry or exit order per book, each resting order's
    place as a `rank` in the broker's one queue (no `queue`)."""
    books = {}
    for symbol, book in state["strategy"]["books"].items():
        old = {k: v for k, v in book.items() if k not in ("entry_order", "exit_order")}
        if old.get("open"):
            protective = [{k: v for k, v in o.items() if k != "queue"} for o in old["open"]["protective"]]
            old["open"] = {**old["open"], "protective": protective}
        books[symbol] = old
    return {**state, "version": 2, "strategy": {**state["strategy"], "books": books}}


def test_a_snapshot_of_another_version_is_ignored_and_the_restart_replays_everything(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'tradeforge.sqlite'}"
    config = bot(url, tmp_path)
    first = run_bot(config, "bot.yaml", say=lambda _: None)
    engine = make_engine(url)
    snapshot = Repository.attach(engine, "snapshot-bot", "", "paper").latest_snapshot()
    assert snapshot is not None
    with engine.begin() as connection:  # as a tradeforge before the shape changed left it
        connection.execute(
            update(StrategySnapshot)
            .where(StrategySnapshot.bot_id == snapshot.bot_id)
            .values(state=as_version_2(snapshot.state))
        )

    outcome = run_bot(config, "bot.yaml", say=lambda _: None)  # nothing new: re-reads every candle
    assert len(outcome.result.equity_times) == len(first.result.equity_times)
    assert recorded(url, "snapshot-bot")["recoveries"][-1]["snapshot"] is None


class Streak(Cooldown):
    """A plugin protection with state of its own, which no snapshot knows about."""

    name = "streak"


def test_snapshots_only_for_replay_bots_built_from_tradeforge_parts(tmp_path: Path) -> None:
    config = bot(f"sqlite:///{tmp_path / 'tradeforge.sqlite'}", tmp_path)
    composed = Registry.default().resolve(config.strategy).cls
    assert snapshots_supported(config, composed)
    assert snapshots_supported(config, PRESETS["rsi_reversion"])
    assert not snapshots_supported(config, type("WithPlugin", (Streak, composed), {}))
    assert not snapshots_supported(config, type("OwnNext", (Strategy,), {}))
    binance = config.model_copy(update={"data": config.data.model_copy(update={"source": "binance"})})
    assert not snapshots_supported(binance, composed)
