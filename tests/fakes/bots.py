"""Paper bots on the fake Binance, driven hour by hour, for the runtime tests."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path
from typing import Any

from fakes.binance import FakeBinance
from fakes.support import HOUR
from tradeforge.config.schema import BotConfig
from tradeforge.engine.runtime import RunOutcome, run_bot
from tradeforge.persistence.database import make_engine
from tradeforge.persistence.migrate import upgrade
from tradeforge.persistence.repository import Repository

WARMUP = 60  # candles back-filled on first start


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
