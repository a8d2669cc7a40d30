"""`tradeforge run` refuses a live config it must not trade with: exit code 2, the setting named,
nothing written and no request made (the exchange URL points nowhere that answers)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TRADEFORGE = str(Path(sys.executable).with_name("tradeforge"))
NOWHERE = "http://127.0.0.1:9"  # discard port: any request would fail, so none may be needed


def run_live(tmp_path: Path, exchange: str, **env: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "bot.yaml"
    config.write_text(
        f"name: live-cli\nmode: live\ndata_dir: {tmp_path}/user_data\n"
        "data: {source: binance, symbols: [BTC/USDT], timeframe: 1h}\n"
        f"exchange: {{urls: {{public: '{NOWHERE}/api/v3', private: '{NOWHERE}/api/v3'}}, {exchange}}}\n"
        "strategy: {entry: {name: sma_cross}, sizing: {name: percent_equity}}\n"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TRADEFORGE_BINANCE_")}
    return subprocess.run(
        [TRADEFORGE, "run", "--config", str(config)],
        capture_output=True,
        text=True,
        env={**clean, "COLUMNS": "200", **env},
        timeout=120,
    )


def test_live_mode_without_confirmation_exits_2_naming_the_setting(tmp_path: Path):
    done = run_live(
        tmp_path, "live_confirmed: false", TRADEFORGE_BINANCE_API_KEY="k", TRADEFORGE_BINANCE_API_SECRET="s"
    )
    assert done.returncode == 2, done.stderr
    assert "exchange.live_confirmed" in done.stderr and "real money" in done.stderr
    assert not (tmp_path / "user_data" / "tradeforge.sqlite").exists()


def test_live_mode_without_a_secret_exits_2_saying_where_it_was_looked_for(tmp_path: Path):
    done = run_live(tmp_path, "live_confirmed: true", TRADEFORGE_BINANCE_API_KEY="a-key")
    assert done.returncode == 2, done.stderr
    assert "TRADEFORGE_BINANCE_API_SECRET" in done.stderr and "exchange.api_secret_file" in done.stderr
    assert "a-key" not in done.stderr + done.stdout


def test_live_mode_with_an_unreadable_secret_file_exits_2_naming_it(tmp_path: Path):
    done = run_live(
        tmp_path,
        f"live_confirmed: true, api_key_file: {tmp_path}/key.txt, api_secret_file: {tmp_path}/secret.txt",
    )
    assert done.returncode == 2, done.stderr
    assert "exchange.api_key_file" in done.stderr and "key.txt" in done.stderr
