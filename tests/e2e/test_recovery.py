"""Crash-proof restarts: a replayed paper bot killed (SIGKILL) at random moments and restarted
(from its latest strategy snapshot, see engine/restart.py) ends with exactly the trades, orders,
fills and equity of the same run left alone."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tradeforge.engine.journal import CRASH_AFTER_INTENT_ENV
from tradeforge.persistence.database import make_engine
from tradeforge.persistence.migrate import upgrade
from tradeforge.persistence.repository import Repository

TRADEFORGE = str(Path(sys.executable).with_name("tradeforge"))
BOT = """\
name: crash-test
mode: paper
data_dir: {data_dir}
data: {{source: replay, symbols: [BTC/USDT], timeframe: 1h, speed: max, end: 2023-04-15}}
broker: {{cash: 10000, commission: 0.001}}
strategy:
  direction: both
  entry: {{name: sma_cross, fast: 5, slow: 20}}
  exits: {{stop_loss: {{pct: 0.01}}, take_profit: {{pct: 0.02}}, trailing_stop: {{pct: 0.015}}}}
  sizing: {{name: percent_equity, pct: 90}}
  protections: {{cooldown: {{bars: 2}}}}
"""


def make_bot(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    config = root / "bot.yaml"
    config.write_text(BOT.format(data_dir=root / "user_data"))
    upgrade(make_engine(f"sqlite:///{root / 'user_data' / 'tradeforge.sqlite'}"))
    return config


def start(config: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [TRADEFORGE, "run", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )


def finish(config: Path, env: dict[str, str] | None = None) -> str:
    process = start(config, env)
    out, err = process.communicate(timeout=240)
    assert process.returncode == 0, err.decode()
    return out.decode()


def repository(config: Path) -> Repository:
    engine = make_engine(f"sqlite:///{config.parent / 'user_data' / 'tradeforge.sqlite'}")
    return Repository.attach(engine, "crash-test", "", "paper")


def snapshot(config: Path) -> dict[str, object]:
    repo = repository(config)
    orders = repo.orders()
    return {
        "trades": repo.trade_records(),
        "orders": [(o.client_order_id, o.side, o.type, o.role, o.amount, o.status, o.filled) for o in orders],
        "fills": [(f.venue_trade_id, f.amount, f.price, f.fee, f.time) for f in repo.fills()],
        "equity": [(s.time, s.equity, s.cash) for s in repo.equity()],
    }


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    config = make_bot(tmp_path_factory.mktemp("reference"))
    finish(config)
    return snapshot(config)


def test_uninterrupted_paper_run_records_every_order_with_its_intent_first(reference: dict[str, object]) -> None:
    assert len(reference["trades"]) > 20
    assert len(reference["orders"]) > 60
    statuses = {o[5].value for o in reference["orders"]}
    assert statuses <= {"filled", "canceled", "rejected", "open"}, "nothing left pending or unknown"
    assert {"filled", "canceled"} <= statuses


def test_sigkill_at_twenty_random_moments_then_restart_changes_nothing(
    tmp_path: Path, reference: dict[str, object]
) -> None:
    config = make_bot(tmp_path / "crashy")
    rng = random.Random(20261124)
    watched = repository(config)
    kills = 0
    while kills < 20:
        process = start(config)
        # Killed a random number of candles into its run (start-up time varies with the machine's load).
        if not wait_for_candles(watched, process, rng.randint(1, 150)):
            break  # it finished before we could kill it: the history is complete
        process.send_signal(signal.SIGKILL)
        process.wait()
        kills += 1
    finish(config)
    assert kills >= 15, "the bot should have been killed mid-run many times"
    assert snapshot(config) == reference
    check_event_log(config)
    resumed = [e.data for e in repository(config).events("recovered")]
    assert sum(1 for r in resumed if r["snapshot"] is not None) >= 10, "restarts resumed from strategy snapshots"
    assert any(r["snapshot"] and r["snapshot_positions"] for r in resumed), "some from snapshots holding a position"


def wait_for_candles(repo: Repository, process: subprocess.Popen[bytes], candles: int) -> bool:
    """Wait until the bot has recorded `candles` more candles (one-hour ones); False if it ended first."""
    start_at = max(repo.cursors().values(), default=None)
    deadline = time.monotonic() + 120
    while process.poll() is None and time.monotonic() < deadline:
        now = max(repo.cursors().values(), default=None)
        if now is not None and (start_at is None or (now - start_at).total_seconds() >= candles * 3600):
            return True
        time.sleep(0.005)
    return process.poll() is None


@pytest.mark.parametrize("nth_intent", [1, 7, 23])
def test_crash_right_after_an_intent_commit_neither_loses_nor_repeats_the_order(
    tmp_path: Path, reference: dict[str, object], nth_intent: int
) -> None:
    config = make_bot(tmp_path / f"intent{nth_intent}")
    crashed = start(config, {CRASH_AFTER_INTENT_ENV: str(nth_intent)})
    crashed.communicate(timeout=120)
    assert crashed.returncode == 137, "the fault hook kills the bot right after committing an intent"
    orders = repository(config).orders()
    assert len(orders) == nth_intent
    assert orders[-1].status.value == "pending_submit", "the intent was committed before anything was sent"
    finish(config)
    assert snapshot(config) == reference
    check_event_log(config)


def check_event_log(config: Path) -> None:
    repo = repository(config)
    intents = [e.data["client_order_id"] for e in repo.events("order_intent")]
    fills = [e.data["venue_trade_id"] for e in repo.events("fill")]
    assert sorted(intents) == sorted(o.client_order_id for o in repo.orders()), "one intent event per order"
    assert len(set(intents)) == len(intents), "no client order id was ever used twice"
    assert sorted(fills) == sorted(f.venue_trade_id for f in repo.fills()), "one fill event per fill"
    assert repo.integrity_problems() == []
