"""Restarts from snapshots that hold open positions: a multi-symbol bot that nearly always holds
something (frequent entries; stop-loss, take-profit, trailing stop and time exit on every trade)
snapshots on quiet candles with its positions, Backtrader's open trades and the resting protective
orders (trailing levels included), and a restart from such a snapshot, stopped or killed at many
points, ends exactly as the same run left alone."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml
from candle_factory import START
from restart_helpers import recorded, stop_after

from tradeforge.config.schema import BotConfig
from tradeforge.engine.journal import CRASH_AFTER_FILL_ENV
from tradeforge.engine.restart import SNAPSHOT_VERSION
from tradeforge.engine.runtime import run_bot
from tradeforge.feeds.synthetic import csv_text, generate
from tradeforge.persistence.database import make_engine
from tradeforge.persistence.migrate import upgrade
from tradeforge.persistence.repository import Repository

SYMBOLS = ("AAA/USDT", "BBB/USDT", "CCC/USDT")
CANDLES = 1_200
STRATEGY = {
    "direction": "both",
    "entry": {"name": "sma_cross", "fast": 3, "slow": 8},
    "exits": {
        "stop_loss": {"pct": 0.02},
        "take_profit": {"pct": 0.03},
        "trailing_stop": {"pct": 0.012},
        "time_exit": {"bars": 6},
    },
    "sizing": {"name": "percent_equity", "pct": 30},
    "protections": {"cooldown": {"bars": 1}, "stoploss_guard": {"trades": 4, "window_bars": 30, "lock_bars": 5}},
}
NAME = "positions-bot"


def write_candles(folder: Path) -> str:
    """Synthetic one-hour candles per symbol (volatile enough for every exit to fire); the path template."""
    folder.mkdir(parents=True, exist_ok=True)
    for seed, symbol in enumerate(SYMBOLS, start=7):
        series = generate(symbol, "1h", START, CANDLES, seed=seed, start_price=100.0 * seed, annual_vol=0.9)
        (folder / f"{symbol.replace('/', '-')}.csv").write_text(csv_text(series), encoding="utf-8")
    return str(folder / "{symbol}.csv")


def bot_document(url: str, data_dir: Path) -> dict[str, Any]:
    return {
        "name": NAME,
        "data_dir": str(data_dir),
        "data": {
            "source": "replay",
            "path": write_candles(data_dir / "candles"),
            "symbols": list(SYMBOLS),
            "timeframe": "1h",
            "speed": "max",
        },
        "broker": {"cash": 10_000, "commission": 0.001},
        "strategy": STRATEGY,
        "persistence": {"db_url": url},
    }


def bot(url: str, data_dir: Path) -> BotConfig:
    upgrade(make_engine(url))
    return BotConfig.model_validate(bot_document(url, data_dir))


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("uninterrupted")
    url = f"sqlite:///{root / 'tradeforge.sqlite'}"
    outcome = run_bot(bot(url, root), "bot.yaml", say=lambda _: None)
    assert not outcome.stopped_early
    repository = Repository.attach(make_engine(url), NAME, "", "paper")
    snapshot = repository.latest_snapshot()
    assert snapshot is not None and snapshot.state["version"] == SNAPSHOT_VERSION
    return recorded(url, NAME)


def test_the_bot_nearly_always_holds_positions_and_every_exit_fires(uninterrupted: dict[str, Any]) -> None:
    trades = uninterrupted["trades"]
    assert len(trades) > 150
    reasons = {t["exit_reason"] for t in trades}
    assert {"stop_loss", "take_profit", "trailing_stop", "time_exit", "signal"} <= reasons
    assert {t["symbol"] for t in trades} == set(SYMBOLS)


def test_stopped_many_times_resumes_from_snapshots_with_open_positions_and_ends_as_left_alone(
    db_url: str, tmp_path: Path, uninterrupted: dict[str, Any]
) -> None:
    config = bot(db_url, tmp_path)
    rng = random.Random(11)
    repository = Repository.attach(make_engine(db_url), NAME, "", "paper")
    for _ in range(80):
        stop = threading.Event()
        watcher = threading.Thread(target=stop_after, args=(repository, rng.randint(5, 60), stop))
        watcher.start()
        outcome = run_bot(config, "bot.yaml", stop=stop, say=lambda _: None)
        stop.set()
        watcher.join()
        if not outcome.stopped_early:
            break
    else:
        pytest.fail("the bot never reached the end of its candles")
    got = recorded(db_url, NAME)
    holding = [r for r in got["recoveries"] if r["snapshot"] is not None and r["snapshot_positions"] > 0]
    assert len(holding) >= 15, "restarts should have resumed from snapshots holding open positions"
    assert any(r["snapshot_positions"] >= 2 for r in holding), "some with several symbols open"
    assert any(r["snapshot_orders_in_flight"] for r in holding), "some with orders submitted on the snapshot's candle"
    for key in ("trades", "orders", "fills", "equity"):
        assert got[key] == uninterrupted[key], key


def test_a_snapshot_holds_positions_trades_and_resting_orders(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'tradeforge.sqlite'}"
    config = bot(url, tmp_path)
    repository = Repository.attach(make_engine(url), NAME, "", "paper")
    seen: list[Any] = []
    stop = threading.Event()

    def watch() -> None:  # stop at the first snapshot with every symbol open
        while not stop.wait(0.002):
            snapshot = repository.latest_snapshot()
            if snapshot is not None and all(b["open"] for b in snapshot.state["strategy"]["books"].values()):
                seen.append(snapshot)
                stop.set()

    watcher = threading.Thread(target=watch)
    watcher.start()
    run_bot(config, "bot.yaml", stop=stop, say=lambda _: None)
    stop.set()
    watcher.join()
    assert seen, "a snapshot with every symbol open was taken"
    state = seen[0].state
    books = state["strategy"]["books"]
    placed = {o.client_order_id: o for o in repository.stored_orders() if o.id <= seen[0].last_order_id}
    for symbol, book in books.items():
        position = next(p for p in state["strategy"]["positions"] if p[0] == symbol)
        assert position[1] == (book["open"]["size"] if book["open"]["side"] == "long" else -book["open"]["size"])
        assert book["open"]["trade"]["size"] == position[1]
        resting = book["open"]["protective"]
        assert [o["info"]["reason"] for o in resting] == ["stop_loss", "take_profit", "trailing_stop"]
        for order in resting:  # placed before the snapshot: their intents are stored, linked to the open trade
            stored = placed[order["info"]["client_order_id"]]
            kind = {"stop_loss": "stop", "take_profit": "limit", "trailing_stop": "trailing_stop"}[
                order["info"]["reason"]
            ]
            assert (stored.role, stored.symbol, stored.type) == ("protective", symbol, kind)
            assert stored.trade_id == state["journal"]["open_trades"][symbol]
    # Each order's place in the broker's queues (accepted and resting, or submitted on the candle):
    # every place of each queue once.
    orders = [o for b in books.values() for o in (b["entry_order"], b["exit_order"], *b["open"]["protective"]) if o]
    for queue in ("pending", "submitted"):
        ranks = sorted(o["rank"] for o in orders if o["queue"] == queue)
        assert ranks == list(range(len(ranks)))


TRADEFORGE = str(Path(sys.executable).with_name("tradeforge"))


@pytest.mark.parametrize("part", [1, 2, 3])
def test_killed_right_after_a_protective_fill_then_restarted_from_a_snapshot_with_positions(
    tmp_path: Path, uninterrupted: dict[str, Any], part: int
) -> None:
    """The kill lands after a stop, take-profit or trailing stop's fill was committed and before its
    OCO siblings were canceled and the candle recorded; the restart resumes from a snapshot holding
    positions (the first such kill in the `part`-th quarter of the run) and replays that fill
    without recording it twice."""
    for attempt, fill in enumerate(protective_fills(uninterrupted, part)[:8]):
        url = f"sqlite:///{tmp_path / f'tradeforge{attempt}.sqlite'}"
        upgrade(make_engine(url))
        config = tmp_path / f"bot{attempt}.yaml"
        config.write_text(yaml.safe_dump(bot_document(url, tmp_path)), encoding="utf-8")
        crashed = run(config, {CRASH_AFTER_FILL_ENV: str(fill)})
        assert crashed.returncode == 137, crashed.stderr
        repository = Repository.attach(make_engine(url), NAME, "", "paper")
        assert len(repository.fills()) == fill
        snapshot = repository.latest_snapshot()
        assert snapshot is not None
        if any(book["open"] for book in snapshot.state["strategy"]["books"].values()):
            break
    else:
        pytest.fail("no kill after a protective fill found a snapshot holding positions to resume from")
    finished = run(config)
    assert finished.returncode == 0, finished.stderr
    got = recorded(url, NAME)
    assert got["recoveries"][0]["snapshot_positions"] > 0
    for key in ("trades", "orders", "fills", "equity"):
        assert got[key] == uninterrupted[key], key


def protective_fills(reference: dict[str, Any], part: int) -> list[int]:
    """1-based numbers of the fills of protective orders, from the `part`-th quarter of the run on."""
    roles = {o[0]: o[3] for o in reference["orders"]}
    numbers = [n for n, f in enumerate(reference["fills"], start=1) if roles[f[0].rsplit("-f", 1)[0]] == "protective"]
    return numbers[part * len(numbers) // 4 :]


def run(config: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TRADEFORGE, "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
        check=False,
    )
