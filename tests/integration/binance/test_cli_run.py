"""`tradeforge run` as a user runs it on live candles from (the fake) Binance, stopped with Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from fakes.binance import FakeBinance
from fakes.support import HOUR, T0

from tradeforge.feeds.store import CandleStore

TRADEFORGE = str(Path(sys.executable).with_name("tradeforge"))


def test_run_paper_bot_on_binance_candles_until_interrupted(fake: FakeBinance, tmp_path: Path):
    urls = ", ".join(f"{k}: '{v}'" for k, v in fake.urls().items())
    config = tmp_path / "bot.yaml"
    config.write_text(
        f"name: cli-live\nmode: paper\ndata_dir: {tmp_path}/user_data\n"
        "data: {source: binance, symbols: [BTC/USDT, ETH/USDT], timeframe: 1h}\n"
        f"exchange: {{urls: {{{urls}}}, options: {{fetchCurrencies: false}}, poll_interval: 0.01, grace: 0,"
        " warmup_candles: 30}\n"
        "strategy: {entry: {name: sma_cross, fast: 5, slow: 20}, sizing: {name: percent_equity, pct: 45}}\n"
    )
    env = {**os.environ, "COLUMNS": "200"}
    subprocess.run([TRADEFORGE, "db", "upgrade", "--config", str(config)], check=True, env=env, capture_output=True)
    bot = subprocess.Popen(
        [TRADEFORGE, "run", "--config", str(config)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    assert bot.stdout is not None
    first = bot.stdout.readline()
    assert "cli-live: paper mode, BTC/USDT, ETH/USDT 1h" in first
    assert "back-filled" in bot.stdout.readline() and "back-filled" in bot.stdout.readline()
    fake.set_time(T0, speed=HOUR / 40)  # an hour of market time every 40 ms from now on
    time.sleep(2.0)
    bot.send_signal(signal.SIGINT)
    out, err = bot.communicate(timeout=60)
    assert bot.returncode == 0, err
    assert "stopped on request" in out
    stored = CandleStore(tmp_path / "user_data" / "live" / "cli-live").load("binance", "ETH/USDT", "1h")
    assert len(stored) > 30 + 10  # warm-up plus the live candles it decided on
    status = subprocess.run(
        [TRADEFORGE, "status", "--config", str(config)], capture_output=True, text=True, env=env, check=True
    )
    assert "cli-live paper - stopped" in status.stdout
