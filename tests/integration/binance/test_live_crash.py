"""A live bot (`tradeforge run`, a subprocess) against the fake Binance in this process, SIGKILLed at
random moments with orders in flight, and some runs killed right after an intent commit, before its
request: after every restart, no order reached the exchange twice, every fill is recorded once, and
the position the fills add up to is what the account holds."""

from __future__ import annotations

import datetime as dt
import os
import random
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

from fakes.binance import API_KEY, API_SECRET, FakeBinance
from fakes.bots import repository
from fakes.support import HOUR

from tradeforge.config.schema import BotConfig
from tradeforge.engine.journal import CRASH_AFTER_INTENT_ENV
from tradeforge.persistence.database import make_engine
from tradeforge.persistence.migrate import upgrade

TRADEFORGE = str(Path(sys.executable).with_name("tradeforge"))
KILLS = 20
ENV = {
    **os.environ,
    "COLUMNS": "200",
    "TRADEFORGE_BINANCE_API_KEY": API_KEY,
    "TRADEFORGE_BINANCE_API_SECRET": API_SECRET,
}


def write_config(fake: FakeBinance, root: Path) -> tuple[Path, BotConfig]:
    urls = ", ".join(f"{k}: '{v}'" for k, v in fake.urls().items())
    root.mkdir(parents=True, exist_ok=True)
    path = root / "bot.yaml"
    path.write_text(
        f"name: crashy\nmode: live\ndata_dir: {root}/user_data\n"
        "data: {source: binance, symbols: [BTC/USDT], timeframe: 1h}\n"
        "broker: {cash: 5000}\n"
        f"exchange: {{urls: {{{urls}}}, options: {{fetchCurrencies: false, recvWindow: 1500}}, poll_interval: 0.005,"
        f" grace: 0, warmup_candles: 30, retries: 2, live_confirmed: true}}\n"
        # Fast crosses and a tight stop: many orders, protective stops resting on the exchange.
        "strategy:\n  entry: {name: sma_cross, fast: 2, slow: 5}\n  exits: {stop_loss: {pct: 0.004}}\n"
        "  sizing: {name: percent_equity, pct: 90}\n"
    )
    upgrade(make_engine(f"sqlite:///{root}/user_data/tradeforge.sqlite"))
    config = BotConfig.model_validate(
        {
            "name": "crashy",
            "mode": "live",
            "data_dir": str(root / "user_data"),
            "data": {"source": "binance", "symbols": ["BTC/USDT"], "timeframe": "1h"},
            "strategy": {"entry": {"name": "sma_cross"}, "sizing": {"name": "percent_equity"}},
        }
    )
    return path, config


def start(config: Path, crash_after_intent: bool) -> subprocess.Popen[str]:
    env = {**ENV, CRASH_AFTER_INTENT_ENV: "1"} if crash_after_intent else ENV
    bot = subprocess.Popen(
        [TRADEFORGE, "run", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert bot.stdout is not None
    while "back-filled" not in (line := bot.stdout.readline()):
        assert line, bot.stderr.read() if bot.stderr else "bot exited"
    return bot


def decided(config: BotConfig, fake: FakeBinance) -> bool:
    """Has the bot checkpointed the last closed candle?"""
    cursor = repository(config).cursors().get(("BTC/USDT", "1h"))
    return cursor is not None and cursor.replace(tzinfo=dt.UTC).timestamp() * 1000 >= fake.now_ms() - HOUR


def step(fake: FakeBinance, config: BotConfig, bot: subprocess.Popen[str], hours: int) -> None:
    """Move the market `hours` candles on, each once the bot has decided on the previous one."""
    for _ in range(hours):
        deadline = time.monotonic() + 30
        while not decided(config, fake) and bot.poll() is None:
            assert time.monotonic() < deadline, "the bot stopped deciding"
            time.sleep(0.003)
        if bot.poll() is not None:
            return  # died on purpose (crash after intent)
        fake.advance(HOUR)


def test_sigkill_at_random_moments_of_a_live_bot_never_duplicates_an_order_or_a_fill(fake: FakeBinance, tmp_path: Path):
    path, config = write_config(fake, tmp_path)
    rng = random.Random(7)
    crashed_after_intent = 0
    for kill in range(KILLS):
        intent_fault = kill % 4 == 3
        bot = start(path, intent_fault)
        step(fake, config, bot, rng.randint(2, 7))
        time.sleep(rng.uniform(0, 0.03))  # somewhere in the bot's handling of the latest candle
        if bot.poll() is None:
            bot.send_signal(signal.SIGKILL)
        bot.wait(30)
        assert bot.returncode in (-signal.SIGKILL, 137), bot.stderr.read() if bot.stderr else bot.returncode
        crashed_after_intent += bot.returncode == 137
    bot = start(path, False)
    step(fake, config, bot, 6)
    deadline = time.monotonic() + 30
    while not decided(config, fake):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    bot.send_signal(signal.SIGINT)
    out, err = bot.communicate(timeout=60)
    assert bot.returncode == 0, err

    repo = repository(config)
    orders = repo.orders()
    sent = [r.params["newClientOrderId"] for r in fake.calls("POST", "/api/v3/order")]
    assert len(sent) == len(set(sent)), "a client order id was sent twice"
    on_exchange = {o.client_order_id for o in fake.orders}
    assert on_exchange == {o.client_order_id for o in orders if o.status.value != "lost"}
    assert len(orders) >= 10 and crashed_after_intent >= 1, "the harness must have exercised orders and crashes"
    fills = repo.fills()
    assert sorted(f.venue_trade_id for f in fills) == sorted(str(t.id) for t in fake.trades)
    side = {o.id: o.side for o in orders}
    held = sum((f.amount - f.fee / f.price if side[f.order_id] == "buy" else -f.amount for f in fills), Decimal(0))
    assert held == sum(fake.balances["BTC"])
    assert "LIVE TRADING on binance" in out
