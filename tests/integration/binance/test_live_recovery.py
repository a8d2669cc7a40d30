"""A paper bot on live (fake) Binance candles, SIGKILLed at random moments and restarted each time,
ends with exactly the orders, fills and trades of a bot that ran straight through."""

from __future__ import annotations

import datetime as dt
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from fakes.binance import FakeBinance
from fakes.bots import WARMUP, bot_config, ledger, repository, run_until
from fakes.support import HOUR, T0

from tradeforge.persistence.database import make_engine
from tradeforge.persistence.migrate import upgrade

TRADEFORGE = str(Path(sys.executable).with_name("tradeforge"))
END = T0 + 160 * HOUR
KILLS = 20


def write_config(fake: FakeBinance, root: Path, name: str) -> Path:
    urls = ", ".join(f"{k}: '{v}'" for k, v in fake.urls().items())
    root.mkdir(parents=True, exist_ok=True)
    path = root / "bot.yaml"
    path.write_text(
        f"name: {name}\nmode: paper\ndata_dir: {root}/user_data\n"
        "data: {source: binance, symbols: [BTC/USDT], timeframe: 1h}\n"
        f"exchange: {{urls: {{{urls}}}, options: {{fetchCurrencies: false}}, poll_interval: 0.005, grace: 0,"
        f" warmup_candles: {WARMUP}, retries: 2}}\n"
        "strategy:\n  entry: {name: sma_cross, fast: 5, slow: 20}\n  exits: {stop_loss: {pct: 0.02}}\n"
        "  sizing: {name: percent_equity, pct: 90}\n"
    )
    return path


def start(config: Path) -> subprocess.Popen[str]:
    bot = subprocess.Popen(
        [TRADEFORGE, "run", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert bot.stdout is not None
    while "back-filled" not in (line := bot.stdout.readline()):  # the feed is live: the clock may move
        assert line, bot.stderr.read() if bot.stderr else "bot exited"
    return bot


def test_sigkill_at_random_moments_then_restart_ends_like_an_uninterrupted_bot(fake: FakeBinance, tmp_path: Path):
    straight = bot_config(fake, tmp_path / "straight", "straight")
    run_until(fake, straight, END)
    fake.set_time(T0)

    config = write_config(fake, tmp_path / "killed", "killed")
    upgrade(make_engine(f"sqlite:///{tmp_path}/killed/user_data/tradeforge.sqlite"))
    rng = random.Random(4)
    kill_hours = sorted(rng.sample(range(2, 150), KILLS))
    for hour in kill_hours:
        bot = start(config)
        while fake.now_ms() < T0 + hour * HOUR:
            fake.advance(HOUR)
            time.sleep(0.004)
        time.sleep(rng.uniform(0, 0.02))  # somewhere in the bot's handling of the latest candles
        bot.send_signal(signal.SIGKILL)
        bot.wait(30)
    bot = start(config)
    while fake.now_ms() < END:
        fake.advance(HOUR)
        time.sleep(0.004)
    killed = bot_config(fake, tmp_path / "killed", "killed")
    last = dt.datetime.fromtimestamp((END - HOUR) / 1000, dt.UTC)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        cursor = repository(killed).cursors().get(("BTC/USDT", "1h"))
        if cursor is not None and cursor.replace(tzinfo=dt.UTC) == last:
            break
        time.sleep(0.02)
    bot.send_signal(signal.SIGINT)
    out, err = bot.communicate(timeout=60)
    assert bot.returncode == 0, err
    assert "recovered:" in out
    assert ledger(killed) == ledger(straight)
    assert len(ledger(straight)["fills"]) >= 4, "the comparison needs trades to mean something"
