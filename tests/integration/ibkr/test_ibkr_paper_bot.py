"""A paper bot (`mode: paper`, `data.source: ibkr`) on IB bars from the fake TWS, end to end through
`run_bot`: warm-up from the back-fill without trading, trades on live bars, every bar stored for a
restart; and the bad input a user meets at start (unknown or ambiguous contract, no TWS listening)."""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from fakes.bots import ledger, repository
from fakes.ib import FakeIB
from fakes.ib_support import MINUTE, ORIGIN, make_fake

from tradeforge.config.schema import BotConfig
from tradeforge.engine.backtest import run_backtest
from tradeforge.engine.feeds import live_store
from tradeforge.engine.runtime import RunOutcome, run_bot
from tradeforge.persistence.database import make_engine
from tradeforge.persistence.migrate import upgrade
from tradeforge.resilience.errors import ConfigError

TRADEFORGE = str(Path(sys.executable).with_name("tradeforge"))
WARMUP = 40


def bot_config(root: Path, name: str = "ib-paper", symbols: list[str] | None = None, **ibkr: Any) -> BotConfig:
    return BotConfig.model_validate(
        {
            "name": name,
            "mode": "paper",
            "data_dir": str(root / "user_data"),
            "data": {"source": "ibkr", "symbols": symbols or ["AAPL"], "timeframe": "1m"},
            "ibkr": {"client_id": 3, "warmup_candles": WARMUP, "poll_interval": 1.0, **ibkr},
            "strategy": {
                "entry": {"name": "sma_cross", "fast": 5, "slow": 20},
                "sizing": {"name": "percent_equity", "pct": 90},
            },
        }
    )


def run_until(fake: FakeIB, config: BotConfig, until: dt.datetime) -> RunOutcome:
    upgrade(make_engine(f"sqlite:///{config.data_dir}/tradeforge.sqlite"))
    stop = threading.Event()
    fake.alarms.append((until, stop))
    return run_bot(
        config, "bot.yaml", stop=stop, say=lambda text: None, ibkr={"factory": lambda: fake, "clock": lambda: fake.now}
    )


def test_paper_bot_on_ib_bars_warms_up_without_trading_then_trades_live_bars(fake: FakeIB, tmp_path: Path):
    config = bot_config(tmp_path)
    started = fake.now
    outcome = run_until(fake, config, ORIGIN + 500 * MINUTE)
    assert outcome.result.start == ORIGIN + (300 - WARMUP) * MINUTE
    assert outcome.result.end >= ORIGIN + 498 * MINUTE
    fills = repository(config).fills()
    assert fills, "the strategy should have traded on 200 live bars"
    assert min(f.time for f in fills) >= started - dt.timedelta(minutes=1)  # none on the warm-up bars
    stored = live_store(config).load("ibkr", "AAPL", "1m")
    assert stored.start == outcome.result.start and stored.end >= outcome.result.end  # kept for a restart
    assert not fake.placed  # paper mode: nothing reaches IB
    assert not fake.connected  # the client id is free for the next run


def test_stopped_and_restarted_bot_ends_exactly_like_an_uninterrupted_one(tmp_path: Path):
    straight, restarted = bot_config(tmp_path / "a", "straight"), bot_config(tmp_path / "b", "restarted")
    run_until(make_fake(), straight, ORIGIN + 460 * MINUTE)
    fake = make_fake()
    first = run_until(fake, restarted, ORIGIN + 380 * MINUTE)
    placed_before_stop = len(ledger(restarted)["orders"])
    fake.sleep(900)  # down for 15 bars: back-filled from IB on restart
    second = run_until(fake, restarted, ORIGIN + 460 * MINUTE)
    assert placed_before_stop and second.adopted_orders == placed_before_stop  # re-adopted, none placed twice
    assert first.result.end < second.result.end
    assert ledger(restarted) == ledger(straight)
    assert ledger(straight)["trades"], "the comparison needs trades to mean something"


def test_unknown_and_ambiguous_contracts_are_refused_naming_the_config_path(fake: FakeIB, tmp_path: Path):
    config = bot_config(
        tmp_path,
        symbols=["AAPL", "NOPE", "XYZ", "ES"],
        contracts={"ES": {"symbol": "ES", "sec_type": "FUT", "exchange": "CME", "expiry": "202609"}},
    )
    with pytest.raises(ConfigError) as caught:
        run_until(fake, config, ORIGIN + 400 * MINUTE)
    message = str(caught.value)
    assert "data.symbols: IB has no contract STK NOPE SMART USD" in message
    assert "data.symbols: STK XYZ SMART USD is ambiguous on IB (2 contracts: STK XYZ SMART/ARCA USD; " in message
    assert "ibkr.contracts.XYZ" in message  # where to describe it fully
    assert "ibkr.contracts.ES: IB has no contract FUT ES 202609 CME USD" in message
    assert not (tmp_path / "user_data" / "live").exists()  # nothing half-done
    assert not fake.connected


def test_a_futures_contract_without_expiry_is_a_config_error_naming_its_path(tmp_path: Path):
    with pytest.raises(ValueError, match=r"ibkr\.contracts\.ES[\s\S]*needs `expiry`"):
        bot_config(tmp_path, contracts={"ES": {"symbol": "ES", "sec_type": "FUT", "exchange": "CME"}})


def test_fx_and_futures_contracts_resolve_from_config(tmp_path: Path):
    fake = make_fake()
    config = bot_config(
        tmp_path,
        symbols=["EURUSD"],
        contracts={"EURUSD": {"symbol": "EUR", "sec_type": "CASH", "exchange": "IDEALPRO", "currency": "USD"}},
    )
    outcome = run_until(fake, config, ORIGIN + 320 * MINUTE)
    assert outcome.result.end >= ORIGIN + 318 * MINUTE
    assert fake.history_requests and all(r["bar_size"] == "1 min" for r in fake.history_requests)


def test_run_against_a_closed_port_exits_2_naming_host_and_port(tmp_path: Path):
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = tmp_path / "bot.yaml"
    config.write_text(
        f"name: ib-cli\nmode: paper\ndata_dir: {tmp_path}/user_data\n"
        "data: {source: ibkr, symbols: [AAPL], timeframe: 1m}\n"
        f"ibkr: {{host: 127.0.0.1, port: {port}, connect_timeout: 3}}\n"
        "strategy: {entry: {name: sma_cross, fast: 5, slow: 20}}\n"
    )
    env = {**os.environ, "COLUMNS": "200"}
    subprocess.run([TRADEFORGE, "db", "upgrade", "--config", str(config)], check=True, env=env, capture_output=True)
    done = subprocess.run(
        [TRADEFORGE, "run", "--config", str(config)], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 2, done.stderr
    assert f"cannot connect to TWS/IB Gateway at 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_backtest_of_an_ibkr_config_asks_for_a_candle_file(tmp_path: Path):
    with pytest.raises(ConfigError, match=r"data.source: ibkr bars are live only: backtest on a candle file"):
        run_backtest(bot_config(tmp_path))
