"""`tradeforge download-data --source yahoo` as a user runs it: bad input and no network exit 2 with a
clear message, and the store is left as it was. (Successful downloads are covered in-process on recorded
answers, since the CLI's yfinance session would go to the internet.)"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np

from tradeforge.feeds.candles import Candles
from tradeforge.feeds.store import CandleStore

TRADEFORGE = str(Path(sys.executable).with_name("tradeforge"))


def closed_port() -> int:
    """A loopback port with nothing listening: every connection to it is refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    # No network: every request goes to a proxy on loopback that refuses, so nothing leaves the machine.
    proxy = f"http://127.0.0.1:{closed_port()}"
    env = {
        **os.environ,
        "COLUMNS": "200",
        "HTTPS_PROXY": proxy,
        "HTTP_PROXY": proxy,
        "ALL_PROXY": proxy,
        "https_proxy": proxy,
        "http_proxy": proxy,
        "NO_PROXY": "",
        "XDG_CACHE_HOME": str(cwd / "cache"),  # yfinance's cookie cache
    }
    return subprocess.run([TRADEFORGE, *args], cwd=cwd, capture_output=True, text=True, timeout=120, env=env)


def test_without_network_the_download_exits_2_with_a_clear_message_and_the_store_unchanged(tmp_path: Path):
    (tmp_path / "bot.yaml").write_text(
        "data_dir: user_data\nstrategy: {preset: sma_cross}\nyahoo: {retries: 2, retry_wait_max: 0.01}\n"
    )
    store = CandleStore(tmp_path / "user_data")
    one = np.array([1.0])
    store.save("yahoo", Candles("AAPL", "1d", np.array([1_420_416_000 * 10**9]), one, one, one, one, one))
    before = store.path_for("yahoo", "AAPL", "1d").read_bytes()
    args = ["download-data", "--source", "yahoo", "--symbols", "AAPL,MSFT", "--timeframe", "1d"]
    done = cli(*args, "--since", "2015-01-01", "--config", "bot.yaml", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "cannot reach Yahoo Finance" in done.stderr and "nothing was stored" in done.stderr
    assert "Traceback" not in done.stderr
    assert store.path_for("yahoo", "AAPL", "1d").read_bytes() == before
    assert not store.exists("yahoo", "MSFT", "1d")


def test_bad_input_is_named_and_refused_before_any_request(tmp_path: Path):
    args = ["download-data", "--source", "yahoo", "--symbols", "AAPL", "--since", "2015-01-01"]
    done = cli(*args, "--timeframe", "4h", "--adjust", "dividends", cwd=tmp_path)
    assert done.returncode == 2
    assert "--timeframe" in done.stderr and "1m, 5m, 15m, 30m, 1h, 1d" in done.stderr
    assert "--adjust" in done.stderr and "none, splits, all" in done.stderr
    too_far = cli(*args, "--timeframe", "1m", cwd=tmp_path)
    assert too_far.returncode == 2 and "last 30 days" in too_far.stderr and "--since" in too_far.stderr
    binance_adjust = cli("download-data", "--symbols", "BTC/USDT", "--timeframe", "1h", "--since", "2024-01-01",
                         "--adjust", "all", cwd=tmp_path)  # fmt: skip
    assert binance_adjust.returncode == 2 and "only for --source yahoo" in binance_adjust.stderr
    daily_prepost = cli(*args, "--timeframe", "1d", "--prepost", cwd=tmp_path)
    assert daily_prepost.returncode == 2 and "--prepost" in daily_prepost.stderr
    assert "intraday timeframes only" in daily_prepost.stderr
    assert not (tmp_path / "user_data").exists()


def test_a_paper_bot_on_yahoo_without_network_exits_2_saying_why(tmp_path: Path):
    (tmp_path / "bot.yaml").write_text(
        "name: yahoo-bot\nmode: paper\ndata_dir: user_data\nstrategy: {preset: sma_cross}\n"
        "data: {source: yahoo, symbols: [AAPL], timeframe: 1h}\nyahoo: {retries: 1}\n"
    )
    assert cli("db", "upgrade", "--config", "bot.yaml", cwd=tmp_path).returncode == 0
    done = cli("run", "--config", "bot.yaml", cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "cannot reach Yahoo Finance" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "user_data" / "live" / "yahoo-bot" / "yahoo").exists()
