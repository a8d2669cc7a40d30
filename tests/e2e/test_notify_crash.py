"""Alerts survive SIGKILL: a paper bot (the real `tradeforge run` process) alerting to Telegram is
killed at random moments, while the Bot API is down and while it is up, then restarted: every
order's alerts arrive, none more than twice, and trading ends exactly as an uninterrupted run."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from fake_bot_api import FakeBotApi, running

from tradeforge.notifications.outbox import Outbox
from tradeforge.persistence.database import make_engine
from tradeforge.persistence.migrate import upgrade
from tradeforge.persistence.repository import Repository

TRADEFORGE = str(Path(sys.executable).with_name("tradeforge"))
BOT = """\
name: crash-alerts
mode: paper
data_dir: {root}/user_data
data: {{source: replay, symbols: [BTC/USDT], timeframe: 1h, speed: max, end: 2023-03-15}}
broker: {{cash: 10000, commission: 0.001}}
strategy:
  direction: both
  entry: {{name: sma_cross, fast: 5, slow: 20}}
  exits: {{stop_loss: {{pct: 0.01}}, take_profit: {{pct: 0.02}}}}
  sizing: {{name: percent_equity, pct: 90}}
notifications:
  telegram: {{chat_ids: [111], api_base_url: '{base_url}', per_chat_interval_s: 0.0, timeout_s: 0.5, commands: false}}
  delivery:
    {{backoff_initial_s: 0.05, backoff_max_s: 0.2, breaker_failures: 3, breaker_reset_s: 0.2, batch_window_s: 0.1}}
"""


def make_bot(root: Path, api: FakeBotApi) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    config = root / "bot.yaml"
    config.write_text(BOT.format(root=root, base_url=api.base_url))
    upgrade(make_engine(f"sqlite:///{root}/user_data/tradeforge.sqlite"))
    return config


def start(config: Path, api: FakeBotApi) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [TRADEFORGE, "run", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "TRADEFORGE_TELEGRAM_TOKEN": api.token},
    )


def repository(config: Path) -> Repository:
    return Repository.attach(
        make_engine(f"sqlite:///{config.parent}/user_data/tradeforge.sqlite"), "crash-alerts", "", ""
    )


def kill_repeatedly(config: Path, api: FakeBotApi, kills: int, seed: int) -> int:
    rng = random.Random(seed)
    done = 0
    while done < kills:
        process = start(config, api)
        time.sleep(rng.uniform(0.8, 1.8))  # start-up ~0.9 s, then the replay
        if process.poll() is not None:
            break
        process.send_signal(signal.SIGKILL)
        process.wait()
        done += 1
    return done


def alert_lines(api: FakeBotApi) -> Counter[str]:
    """Each line of each message is one trading alert (a burst merges several); title lines and the
    per-run lifecycle alerts (started, recovered, stopped: a new alert each run) left out."""
    return Counter(
        line
        for text in api.texts(111)
        for line in text.split("\n")[1:]
        if line and not line.startswith(("▶️", "♻️", "⏹"))
    )


def check_every_order_alerted_at_most_twice(config: Path, api: FakeBotApi) -> dict[str, Any]:
    repo = repository(config)
    rows = Outbox(repo.engine, repo.bot_id).rows()
    assert rows and {r.status for r in rows} == {"delivered"}
    lines = alert_lines(api)
    assert max(lines.values()) <= 2, [line for line, n in lines.items() if n > 2]
    text = "\n".join(lines)
    for order in repo.orders():
        assert re.search(rf"^📝 .* order {order.client_order_id}$", text, re.M), f"placed {order.client_order_id}"
        if order.status.value == "filled":
            assert re.search(rf"^✅ filled .* order {order.client_order_id}$", text, re.M), order.client_order_id
    closed = [t for t in repo.trade_records() if t["exit_reason"] != "open"]
    assert sum(1 for line in lines if line.startswith("🔴 closed")) == len(closed)
    return {"trades": repo.trade_records(), "duplicates": sum(1 for n in lines.values() if n == 2)}


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    with running() as api:
        config = make_bot(tmp_path_factory.mktemp("reference"), api)
        process = start(config, api)
        _, err = process.communicate(timeout=120)
        assert process.returncode == 0, err.decode()
        return check_every_order_alerted_at_most_twice(config, api)["trades"]


def test_sigkill_with_the_bot_api_down_then_restart_delivers_every_alert(
    tmp_path: Path, reference: list[dict[str, Any]]
) -> None:
    with running(FakeBotApi(mode="5xx")) as api:
        config = make_bot(tmp_path, api)
        assert kill_repeatedly(config, api, kills=4, seed=8) >= 3
        api.mode = "ok"
        process = start(config, api)
        _, err = process.communicate(timeout=120)
        assert process.returncode == 0, err.decode()
        result = check_every_order_alerted_at_most_twice(config, api)
    assert result["trades"] == reference


def test_sigkill_while_delivering_sends_an_alert_at_most_twice(tmp_path: Path, reference: list[dict[str, Any]]) -> None:
    with running() as api:
        config = make_bot(tmp_path, api)
        assert kill_repeatedly(config, api, kills=5, seed=20261124) >= 3
        process = start(config, api)
        _, err = process.communicate(timeout=120)
        assert process.returncode == 0, err.decode()
        result = check_every_order_alerted_at_most_twice(config, api)
    assert result["trades"] == reference
