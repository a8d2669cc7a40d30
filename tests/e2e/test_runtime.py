"""`tradeforge run` as a user runs it: paper replay, graceful stop, run lock, status and trades."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

from tradeforge.persistence.database import make_engine
from tradeforge.persistence.migrate import upgrade
from tradeforge.persistence.repository import Repository

TRADEFORGE = str(Path(sys.executable).with_name("tradeforge"))
BOT = """\
name: paper-bot
mode: {mode}
data_dir: {root}/user_data
data: {{source: replay, symbols: [BTC/USDT], timeframe: 1h, speed: {speed}, end: 2023-03-01}}
strategy:
  entry: {{name: sma_cross, fast: 5, slow: 20}}
  exits: {{stop_loss: {{pct: 0.02}}}}
  sizing: {{name: percent_equity, pct: 90}}
"""


def bot(root: Path, speed: str = "max", mode: str = "paper", migrate: bool = True) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    config = root / "bot.yaml"
    config.write_text(BOT.format(root=root, speed=speed, mode=mode))
    if migrate:
        upgrade(make_engine(f"sqlite:///{root}/user_data/tradeforge.sqlite"))
    return config


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TRADEFORGE, *args], cwd=cwd, capture_output=True, text=True, timeout=180, env={**os.environ, "COLUMNS": "200"}
    )


def spawn(config: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [TRADEFORGE, "run", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )


def repo(config: Path) -> Repository:
    engine = make_engine(f"sqlite:///{config.parent}/user_data/tradeforge.sqlite")
    return Repository.attach(engine, "paper-bot", "", "paper")


def wait_for_candles(config: Path, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if repo(config).cursors():
            return
        time.sleep(0.2)
    raise AssertionError("the bot never processed a candle")


def test_paper_replay_prints_trades_and_matches_the_backtest(tmp_path: Path) -> None:
    config = bot(tmp_path)
    run = cli("run", "--config", str(config), cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "closed long BTC/USDT" in run.stdout and "replay finished" in run.stdout
    backtest = cli("backtest", "--config", str(config), cwd=tmp_path)
    final = next(line for line in backtest.stdout.splitlines() if "final value" in line)
    assert final in run.stdout, "paper fills on replayed candles are the backtest's fills"
    trades = cli("trades", "--config", str(config), "--closed", "--json", "t.json", cwd=tmp_path)
    assert trades.returncode == 0, trades.stderr
    rows = json.loads((tmp_path / "t.json").read_text())
    assert rows and set(rows[0]) == {
        "symbol",
        "side",
        "entry_time",
        "exit_time",
        "size",
        "entry_price",
        "exit_price",
        "pnl",
        "pnl_pct",
        "fees",
        "exit_reason",
    }
    assert repo(config).instance().status == "finished"
    assert cli("db", "check", "--config", str(config), cwd=tmp_path).returncode == 0


def test_sigint_finishes_the_candle_releases_the_lock_and_a_restart_carries_on(tmp_path: Path) -> None:
    reference = bot(tmp_path / "reference")
    assert cli("run", "--config", str(reference), cwd=tmp_path).returncode == 0
    config = bot(tmp_path / "paced", speed="20000")  # an hour of candles in 0.18 s
    process = spawn(config)
    wait_for_candles(config)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "stopped on request" in out
    instance = repo(config).instance()
    assert instance.status == "stopped" and instance.lock_owner is None
    stopped_at = max(repo(config).cursors().values())
    assert stopped_at < max(repo(reference).cursors().values()), "it stopped before the end"
    status = cli("status", "--config", str(config), cwd=tmp_path)
    assert status.returncode == 0 and "stopped" in status.stdout and "today's PnL" in status.stdout
    config.write_text(config.read_text().replace("speed: 20000", "speed: max"))  # the pace is not the strategy
    assert cli("run", "--config", str(config), cwd=tmp_path).returncode == 0
    assert repo(config).trade_records() == repo(reference).trade_records()


def test_a_second_sigint_exits_at_once(tmp_path: Path) -> None:
    config = bot(tmp_path, speed="2000")
    process = spawn(config)
    wait_for_candles(config)
    process.send_signal(signal.SIGINT)
    time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=30)
    # 130: our second-interrupt exit; 0 or -SIGINT: the first one had already stopped the bot and the
    # interpreter was finishing (Python restores the default handler while it shuts down).
    assert process.returncode in (0, 130, -signal.SIGINT)
    assert repo(config).integrity_problems() == []


def test_run_lock_refuses_a_second_process_for_the_same_bot(tmp_path: Path) -> None:
    config = bot(tmp_path, speed="500")
    first = spawn(config)
    try:
        wait_for_candles(config)
        second = cli("run", "--config", str(config), cwd=tmp_path)
        assert second.returncode == 2
        assert "already running" in second.stderr and "Traceback" not in second.stderr
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=60)
    assert first.returncode == 0


def test_run_refuses_live_mode_an_old_schema_and_an_unreachable_database(tmp_path: Path) -> None:
    live = cli("run", "--config", str(bot(tmp_path / "live", mode="live")), cwd=tmp_path)
    assert live.returncode == 2 and "exchange.live_confirmed" in live.stderr and "data.source" in live.stderr
    fresh = bot(tmp_path / "fresh", migrate=False)
    old = cli("run", "--config", str(fresh), cwd=tmp_path)
    assert old.returncode == 2 and "tradeforge db upgrade --config" in old.stderr
    assert cli("db", "upgrade", "--config", str(fresh), cwd=tmp_path).returncode == 0
    gone = tmp_path / "gone.yaml"
    gone.write_text(fresh.read_text() + "persistence: {db_url: 'postgresql://postgres@127.0.0.1:1/test'}\n")
    unreachable = cli("run", "--config", str(gone), cwd=tmp_path)
    assert unreachable.returncode == 2 and "unreachable" in unreachable.stderr
    assert "Traceback" not in unreachable.stderr


def test_volume_limited_fills_build_positions_over_several_candles_and_survive_a_restart(tmp_path: Path) -> None:
    config = bot(tmp_path)
    config.write_text(
        config.read_text() + "broker: {cash: 10000000, commission: 0.001, max_fill_fraction_of_volume: 0.002}\n"
    )
    assert cli("run", "--config", str(config), cwd=tmp_path).returncode == 0
    repository = repo(config)
    fills: dict[int, list[object]] = {}
    for fill in repository.fills():
        fills.setdefault(fill.order_id, []).append(fill.amount)
    assert any(len(amounts) > 1 for amounts in fills.values()), "a big order fills across candles"
    for order in repository.orders():
        assert order.filled == sum(fills.get(order.id, []), Decimal(0)) <= order.amount
    closed = [t for t in repository.trade_records() if t["exit_reason"] != "open"]
    assert closed and all(t["size"] > 1 for t in closed)
    before = (repository.trade_records(), [(f.venue_trade_id, f.amount) for f in repository.fills()])
    again = cli("run", "--config", str(config), cwd=tmp_path)
    assert again.returncode == 0 and "re-adopted" in again.stdout
    assert (repository.trade_records(), [(f.venue_trade_id, f.amount) for f in repository.fills()]) == before
    assert cli("db", "check", "--config", str(config), cwd=tmp_path).returncode == 0
