"""Specification of `cancel_open_orders_on_exit`: a graceful stop cancels the bot's open orders
(logged first, with the candle it follows); a restart replays the cancel at the same candle, so
its history re-reads without divergence, and open trades get their stops back on the next candle."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from tradeforge.config.schema import BotConfig
from tradeforge.engine.runtime import OPERATOR_CANCEL, run_bot
from tradeforge.persistence.database import make_engine
from tradeforge.persistence.migrate import upgrade
from tradeforge.persistence.models import OrderStatus
from tradeforge.persistence.repository import Repository


def bot_config(root: Path, speed: float | str, cancel: bool = True) -> BotConfig:
    return BotConfig.model_validate(
        {
            "name": "cancel-bot",
            "data_dir": str(root),
            "cancel_open_orders_on_exit": cancel,
            "data": {
                "source": "replay",
                "symbols": ["BTC/USDT"],
                "timeframe": "1h",
                "speed": speed,
                "end": "2023-03-01",
            },
            "strategy": {
                "entry": {"name": "sma_cross", "fast": 5, "slow": 20},
                "exits": {"stop_loss": {"pct": 0.03}},
                "sizing": {"name": "percent_equity", "pct": 90},
            },
        }
    )


def repository(root: Path) -> Repository:
    return Repository.attach(make_engine(f"sqlite:///{root}/tradeforge.sqlite"), "cancel-bot", "", "paper")


def stop_once_a_stop_loss_rests(root: Path, stop: threading.Event) -> None:
    """The operator presses Ctrl-C while the bot holds a position protected by a resting stop."""
    deadline = time.monotonic() + 60
    while not stop.is_set() and time.monotonic() < deadline:
        try:
            resting = [o for o in repository(root).open_orders() if o.role == "protective"]
        except Exception:  # the bot has not created its tables' rows yet
            resting = []
        if resting:
            stop.set()
        time.sleep(0.02)


def test_graceful_stop_cancels_open_orders_and_a_restart_protects_the_trade_again(tmp_path: Path) -> None:
    upgrade(make_engine(f"sqlite:///{tmp_path}/tradeforge.sqlite"))
    stop = threading.Event()
    watcher = threading.Thread(target=stop_once_a_stop_loss_rests, args=(tmp_path, stop))
    watcher.start()
    said: list[str] = []
    first = run_bot(bot_config(tmp_path, speed=360_000), "bot.yaml", stop=stop, say=said.append)  # 100 candles/s
    watcher.join()
    assert first.stopped_early

    stored = repository(tmp_path)
    assert stored.open_orders() == []
    [cancel] = stored.events(OPERATOR_CANCEL)
    canceled = cancel.data["client_order_ids"]
    assert canceled and any(line.startswith(f"canceled {len(canceled)} open orders on exit") for line in said)
    by_id = {o.client_order_id: o for o in stored.orders()}
    assert {by_id[c].status for c in canceled} == {OrderStatus.CANCELED}
    open_trade = by_id[canceled[0]].trade_id
    orders_before = orders_after_snapshot(stored)
    assert orders_before, "the cancel came after the bot's latest snapshot (a flat candle)"

    resumed: list[str] = []
    finished = run_bot(bot_config(tmp_path, speed="max"), "bot.yaml", say=resumed.append)
    assert not finished.stopped_early and finished.adopted_orders == orders_before
    assert any(
        line.startswith("recovered in ") and f"re-adopted {orders_before} stored orders" in line for line in resumed
    )
    assert [e.data["adopted_orders"] for e in repository(tmp_path).events("recovered")] == [orders_before]

    again = {o.client_order_id: o for o in repository(tmp_path).orders()}
    replaced = [o for o in again.values() if o.trade_id == open_trade and o.client_order_id not in by_id]
    assert replaced and replaced[0].role == "protective", "the open trade got its stop back after the restart"
    assert all(again[c].status == OrderStatus.CANCELED for c in canceled)

    # A third start re-reads both runs' history, the cancel included, without diverging: from the
    # start (no snapshot) or from the latest snapshot, it changes nothing.
    trades = repository(tmp_path).trade_records()
    expected = orders_after_snapshot(repository(tmp_path))
    third = run_bot(bot_config(tmp_path, speed="max"), "bot.yaml", say=lambda _: None)
    assert third.adopted_orders == expected
    assert repository(tmp_path).trade_records() == trades


def orders_after_snapshot(stored: Repository) -> int:
    """The orders a restart re-adopts: those placed after its latest snapshot (all without one)."""
    snapshot = stored.latest_snapshot()
    after = snapshot.last_order_id if snapshot else 0
    return sum(1 for order in stored.orders() if order.id > after)


def test_without_the_option_a_graceful_stop_leaves_orders_resting(tmp_path: Path) -> None:
    upgrade(make_engine(f"sqlite:///{tmp_path}/tradeforge.sqlite"))
    stop = threading.Event()
    watcher = threading.Thread(target=stop_once_a_stop_loss_rests, args=(tmp_path, stop))
    watcher.start()
    run_bot(bot_config(tmp_path, speed=360_000, cancel=False), "bot.yaml", stop=stop, say=lambda _: None)
    watcher.join()
    stored = repository(tmp_path)
    assert [o.role for o in stored.open_orders()] == ["protective"]
    assert stored.events(OPERATOR_CANCEL) == []
