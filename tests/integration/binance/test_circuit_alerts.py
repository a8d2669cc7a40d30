"""The exchange's circuit breaker as the operator sees it: one logged event and one Telegram alert
(real python-telegram-bot, fake Bot API on loopback) when it opens, and again when it closes."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pytest
from fake_bot_api import running
from fakes import bots
from fakes.binance import FakeBinance, Fault
from fakes.support import HOUR, KEYS, T0, fake_exchange_config, quick_retries

from tradeforge.config.schema import BotConfig
from tradeforge.engine.alerts import CIRCUIT_EVENT, BotAlerts
from tradeforge.persistence.database import make_engine
from tradeforge.persistence.migrate import upgrade
from tradeforge.persistence.repository import Repository
from tradeforge.resilience.errors import Temporary
from tradeforge.resilience.exchange import CircuitOpen, ExchangeClient


def fail(fake: FakeBinance, client: ExchangeClient, times: int) -> None:
    fake.inject("GET", "/api/v3/ticker/24hr", Fault.server_error(503), times=times)
    for _ in range(times):
        with pytest.raises(Temporary):
            client.fetch_ticker("BTC/USDT")


def test_the_exchange_circuit_is_logged_and_alerted_once_when_it_opens_and_once_when_it_closes(
    fake: FakeBinance, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    engine = make_engine(f"sqlite:///{tmp_path}/bot.sqlite")
    upgrade(engine)
    repository = Repository.attach(engine, "breaker-bot", "", "paper")
    config = fake_exchange_config(fake, breaker_failures=3, breaker_reset=0.3)
    client = quick_retries(ExchangeClient.from_config(config, KEYS, sleep=lambda s: None), attempts=1)
    with running() as api:
        monkeypatch.setenv("TRADEFORGE_TELEGRAM_TOKEN", api.token)
        bot = BotConfig.model_validate(
            {
                "name": "breaker-bot",
                "strategy": {"preset": "sma_cross"},
                "notifications": {
                    "telegram": {"chat_ids": [111], "api_base_url": api.base_url, "per_chat_interval_s": 0.0},
                    "delivery": {"batch_window_s": 0.0, "backoff_initial_s": 0.05},
                },
            }
        )
        alerts = BotAlerts.start(bot, repository, "owner-1", say=lambda text: None)
        try:
            alerts.watch_exchange(client, repository)
            fail(fake, client, 3)
            assert client.circuit_open
            with pytest.raises(CircuitOpen):
                client.fetch_ticker("BTC/USDT")
            time.sleep(0.35)
            fail(fake, client, 1)  # the trial call fails: still the same outage
            time.sleep(0.35)
            client.fetch_ticker("BTC/USDT")  # the trial call succeeds
            assert not client.circuit_open
            deadline = time.monotonic() + 10
            while len(api.texts()) < 2 and time.monotonic() < deadline:
                time.sleep(0.02)
        finally:
            alerts.close(5)
        texts = api.texts()
    assert len(texts) == 2, texts
    assert "circuit breaker exchange opened" in texts[0] and "no new entries for 0.3 s" in texts[0]
    assert "exits are still attempted" in texts[0]
    assert "circuit breaker exchange closed" in texts[1]
    events = repository.events(CIRCUIT_EVENT)
    assert [e.data["state"] for e in events] == ["opened", "closed"]
    assert "3 failed calls in a row" in events[0].message


def test_a_bot_without_notifications_still_logs_the_circuit(fake: FakeBinance, tmp_path: Path):
    engine = make_engine(f"sqlite:///{tmp_path}/bot.sqlite")
    upgrade(engine)
    repository = Repository.attach(engine, "quiet-bot", "", "paper")
    config = fake_exchange_config(fake, breaker_failures=2, breaker_reset=60)
    client = quick_retries(ExchangeClient.from_config(config, KEYS, sleep=lambda s: None), attempts=1)
    bot = BotConfig.model_validate({"name": "quiet-bot", "strategy": {"preset": "sma_cross"}})
    alerts = BotAlerts.start(bot, repository, "owner-2", say=lambda text: None)
    alerts.watch_exchange(client, repository)
    fail(fake, client, 2)
    assert [e.data["state"] for e in repository.events(CIRCUIT_EVENT)] == ["opened"]


def test_a_running_bot_logs_its_exchange_circuit_and_trades_on_after_it_closes(fake: FakeBinance, tmp_path: Path):
    config = bots.bot_config(fake, tmp_path, "circuit-bot")
    exchange = config.exchange.model_copy(update={"breaker_failures": 2, "breaker_reset": 0.2})
    config = config.model_copy(update={"exchange": exchange})
    fake.inject("GET", "/api/v3/klines", Fault.server_error(503), times=2, skip=3)  # once the bot polls live
    bots.run_until(fake, config, T0 + 60 * HOUR)
    events = bots.repository(config).events(CIRCUIT_EVENT)
    assert [e.data["state"] for e in events] == ["opened", "closed"]
    assert bots.repository(config).cursors()[("BTC/USDT", "1h")].replace(tzinfo=dt.UTC) == dt.datetime.fromtimestamp(
        (T0 + 59 * HOUR) / 1000, dt.UTC
    )
