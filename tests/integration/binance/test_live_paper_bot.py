"""A dry-run bot (`mode: paper`, `data.source: binance`) on the fake Binance's candles: it warms up
without trading, trades on live candles with paper fills, and a stopped-and-restarted bot ends with
exactly the orders, fills and trades of one that ran straight through."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path
from typing import Any

import pytest
from fakes.binance import FakeBinance
from fakes.support import HOUR, T0

from tradeforge.config.schema import BotConfig
from tradeforge.engine.feeds import live_store
from tradeforge.engine.runtime import RunOutcome, run_bot
from tradeforge.persistence.database import make_engine
from tradeforge.persistence.migrate import upgrade
from tradeforge.persistence.repository import Repository
from tradeforge.resilience.errors import ConfigError

WARMUP = 60


def bot_config(fake: FakeBinance, root: Path, name: str, **data: Any) -> BotConfig:
    return BotConfig.model_validate(
        {
            "name": name,
            "mode": "paper",
            "data_dir": str(root / "user_data"),
            "data": {"source": "binance", "symbols": ["BTC/USDT"], "timeframe": "1h", **data},
            "exchange": {
                "urls": fake.urls(),
                "options": {"fetchCurrencies": False},
                "poll_interval": 0.005,
                "grace": 0,
                "warmup_candles": WARMUP,
                "retries": 2,
            },
            "strategy": {
                "entry": {"name": "sma_cross", "fast": 5, "slow": 20},
                "exits": {"stop_loss": {"pct": 0.02}},
                "sizing": {"name": "percent_equity", "pct": 90},
            },
        }
    )


def repository(config: BotConfig) -> Repository:
    return Repository.attach(make_engine(f"sqlite:///{config.data_dir}/tradeforge.sqlite"), config.name, "", "paper")


def run_until(fake: FakeBinance, config: BotConfig, until_ms: int) -> RunOutcome:
    """Run the bot while the fake's clock moves an hour at a time up to `until_ms`; stop it once it has
    decided on the last closed candle."""
    upgrade(make_engine(f"sqlite:///{config.data_dir}/tradeforge.sqlite"))
    stop = threading.Event()
    started = threading.Event()  # the feeds have back-filled: the clock may move
    failure: list[BaseException] = []

    def say(text: str) -> None:
        if "back-filled" in text:
            started.set()

    def drive() -> None:
        try:
            started.wait(30)
            while fake.now_ms() < until_ms and not stop.is_set():
                fake.advance(HOUR)
                stop.wait(0.003)
            last = dt.datetime.fromtimestamp((until_ms - HOUR) / 1000, dt.UTC)
            reader = repository(config)
            while not stop.wait(0.01):
                cursor = reader.cursors().get(("BTC/USDT", "1h"))
                if cursor is not None and cursor.replace(tzinfo=dt.UTC) == last:
                    stop.set()
        except BaseException as exc:  # pragma: no cover - reported by the test
            failure.append(exc)
            stop.set()

    driver = threading.Thread(target=drive, daemon=True)
    driver.start()
    outcome = run_bot(config, "bot.yaml", stop=stop, say=say)
    stop.set()
    driver.join(10)
    assert not failure, failure
    return outcome


def ledger(config: BotConfig) -> dict[str, Any]:
    repo = repository(config)
    return {
        "orders": [
            (o.client_order_id.split("-", 1)[1], o.side, o.type, o.amount, o.status.value) for o in repo.orders()
        ],
        "fills": [(f.amount, f.price, f.time) for f in repo.fills()],
        "trades": [{k: v for k, v in t.items() if k != "id"} for t in repo.trade_records()],
    }


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
