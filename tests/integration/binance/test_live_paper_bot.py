"""A dry-run bot (`mode: paper`, `data.source: binance`) on the fake Binance's candles: it warms up
without trading, trades on live candles with paper fills, and a stopped-and-restarted bot ends with
exactly the orders, fills and trades of one that ran straight through."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from fakes.binance import FakeBinance
from fakes.bots import WARMUP, bot_config, ledger, repository, run_until
from fakes.support import HOUR, T0

from tradeforge.engine.feeds import live_store
from tradeforge.engine.runtime import run_bot
from tradeforge.persistence.database import make_engine
from tradeforge.persistence.migrate import upgrade
from tradeforge.resilience.errors import ConfigError


def test_paper_bot_warms_up_without_trading_then_trades_live_candles(fake: FakeBinance, tmp_path: Path):
    config = bot_config(fake, tmp_path, "live-paper")
    outcome = run_until(fake, config, T0 + 200 * HOUR)
    result = outcome.result
    assert result.start == dt.datetime.fromtimestamp((T0 - WARMUP * HOUR) / 1000, dt.UTC)
    assert result.end == dt.datetime.fromtimestamp((T0 + 199 * HOUR) / 1000, dt.UTC)
    orders = repository(config).orders()
    assert orders, "the strategy should have traded on 200 live candles"
    first_fill = min(f.time for f in repository(config).fills())
    assert first_fill.replace(tzinfo=dt.UTC) >= dt.datetime.fromtimestamp(T0 / 1000, dt.UTC)  # none in the warm-up
    stored = live_store(config).load("binance", "BTC/USDT", "1h")
    assert len(stored) == WARMUP + 200  # every candle it decided on is kept for a restart
    assert not fake.orders  # paper mode: nothing reaches the exchange


def test_stopped_and_restarted_bot_ends_exactly_like_an_uninterrupted_one(fake: FakeBinance, tmp_path: Path):
    straight = bot_config(fake, tmp_path / "a", "straight")
    restarted = bot_config(fake, tmp_path / "b", "restarted")
    run_until(fake, straight, T0 + 240 * HOUR)
    fake.set_time(T0)
    run_until(fake, restarted, T0 + 100 * HOUR)
    placed_before_stop = len(repository(restarted).orders())
    fake.set_time(T0 + 130 * HOUR)  # down for 30 candles: they are back-filled on restart
    second = run_until(fake, restarted, T0 + 240 * HOUR)
    assert placed_before_stop and second.adopted_orders == placed_before_stop  # re-adopted, none placed twice
    assert ledger(restarted) == ledger(straight)
    assert ledger(straight)["trades"], "the comparison needs trades to mean something"


def test_unknown_symbol_is_refused_before_the_bot_starts(fake: FakeBinance, tmp_path: Path):
    config = bot_config(fake, tmp_path, "bad-symbol", symbols=["BTC/USDT", "NOPE/USDT"])
    upgrade(make_engine(f"sqlite:///{config.data_dir}/tradeforge.sqlite"))
    with pytest.raises(ConfigError) as caught:
        run_bot(config, "bot.yaml", say=lambda text: None)
    assert "data.symbols" in str(caught.value) and "NOPE/USDT" in str(caught.value)
    assert not (tmp_path / "user_data" / "live").exists()
