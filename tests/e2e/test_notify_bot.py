"""A paper bot with Telegram alerts (real python-telegram-bot, fake Bot API on loopback): every
order and trade is alerted, in order; a Telegram outage during the run changes no trading result
and loses no alert; replayed history after a restart is not alerted again."""

from __future__ import annotations

import datetime
import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from fake_bot_api import FakeBotApi, running

from tradeforge.config.loader import load_config
from tradeforge.engine.runtime import run_bot
from tradeforge.notifications.alerts import TRADING
from tradeforge.notifications.outbox import Outbox
from tradeforge.persistence.database import make_engine
from tradeforge.persistence.migrate import upgrade
from tradeforge.persistence.repository import Repository

BOT = """\
name: alert-bot
mode: paper
data_dir: {root}/user_data
data: {{source: replay, symbols: [BTC/USDT], timeframe: 1h, speed: {speed}, end: 2023-02-01}}
strategy:
  entry: {{name: sma_cross, fast: 5, slow: 20}}
  exits: {{stop_loss: {{pct: 0.02}}}}
  sizing: {{name: percent_equity, pct: 90}}
"""
ALERTS = """\
notifications:
  telegram: {{chat_ids: [111], api_base_url: '{base_url}', per_chat_interval_s: 0.0, timeout_s: 0.5}}
  delivery:
    {{backoff_initial_s: 0.05, backoff_max_s: 0.3, breaker_failures: 3, breaker_reset_s: 0.3, batch_window_s: 0.2}}
"""
CLIENT_ID = re.compile(r"order (tf[0-9a-f]{6}-\d+-\d+)")


def bot(root: Path, api: FakeBotApi | None = None, speed: str = "max") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    config = root / "bot.yaml"
    config.write_text(BOT.format(root=root, speed=speed) + (ALERTS.format(base_url=api.base_url) if api else ""))
    upgrade(make_engine(f"sqlite:///{root}/user_data/tradeforge.sqlite"))
    return config


def run(config: Path, stop: threading.Event | None = None) -> list[str]:
    said: list[str] = []
    run_bot(load_config(config), str(config), stop=stop, say=said.append)
    return said


def repository(config: Path) -> Repository:
    return Repository.attach(make_engine(f"sqlite:///{config.parent}/user_data/tradeforge.sqlite"), "alert-bot", "", "")


def outbox(config: Path) -> Outbox:
    repo = repository(config)
    return Outbox(repo.engine, repo.bot_id)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    config = bot(tmp_path_factory.mktemp("reference"))
    run(config)
    return repository(config).trade_records()


def test_every_order_and_trade_is_alerted_in_order_and_trading_is_unchanged(
    tmp_path: Path, reference: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    with running() as api:
        monkeypatch.setenv("TRADEFORGE_TELEGRAM_TOKEN", api.token)
        config = bot(tmp_path, api)
        run(config)
    assert repository(config).trade_records() == reference
    texts = api.texts(111)
    assert "alert-bot started at" in texts[0] and "replay finished" in texts[-1]
    rows = outbox(config).rows()
    assert {r.status for r in rows} == {"delivered"}
    trading = [r for r in rows if r.kind in TRADING]
    assert {r.event_time.year for r in trading} == {2023}, "trading alerts carry the candle's time, not the clock's"
    closed = [t for t in reference if t["exit_reason"] != "open"]
    assert sum(t.count("🔴 closed") for t in texts) == len(closed) > 3
    sent_ids = CLIENT_ID.findall("\n".join(texts))
    stored_ids = [r.data["client_order_id"] for r in rows if r.kind.startswith("order_")]
    assert sent_ids == stored_ids, "alerts went out in the order they happened"
    assert {o.client_order_id for o in repository(config).orders()} <= set(sent_ids)


def test_a_telegram_outage_during_the_run_changes_nothing_and_every_alert_follows_in_order(
    tmp_path: Path, reference: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The 10-minute outage, shortened: Bot API down (502) from the start for 1.5 s of a ~3 s paced run."""
    with running(FakeBotApi(mode="5xx")) as api:
        monkeypatch.setenv("TRADEFORGE_TELEGRAM_TOKEN", api.token)
        config = bot(tmp_path, api, speed="1000000")  # 3.6 ms a candle: a ~3 s run
        recover = threading.Timer(1.5, lambda: setattr(api, "mode", "ok"))
        recover.start()
        started = time.monotonic()
        run(config)
        recover.join()
    assert time.monotonic() - started > 1.5, "the outage happened during the run"
    assert repository(config).trade_records() == reference
    rows = outbox(config).rows()
    assert {r.status for r in rows} == {"delivered"}
    assert any(r.attempts > 1 for r in rows), "some alerts waited out the outage"
    texts = api.texts(111)
    assert CLIENT_ID.findall("\n".join(texts)) == [
        r.data["client_order_id"] for r in rows if r.kind.startswith("order_")
    ]


def test_a_restart_does_not_alert_replayed_history_again(
    tmp_path: Path, reference: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    with running() as api:
        monkeypatch.setenv("TRADEFORGE_TELEGRAM_TOKEN", api.token)
        config = bot(tmp_path, api)
        run(config)
        first = len(api.texts())
        said = run(config)
    assert any("resuming alert-bot" in line for line in said)
    again = api.texts()[first:]
    assert len(again) == 3, again
    assert "started" in again[0] and "recovered after a restart" in again[1] and "stopped" in again[2]
    assert repository(config).trade_records() == reference


def test_missing_token_warns_and_the_bot_trades_as_usual(
    tmp_path: Path, reference: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TRADEFORGE_TELEGRAM_TOKEN", raising=False)
    config = bot(tmp_path, FakeBotApi(port=9))
    said = run(config)
    assert any("TRADEFORGE_TELEGRAM_TOKEN is not set" in line for line in said)
    assert repository(config).trade_records() == reference
    assert {r.status for r in outbox(config).rows()} == {"pending"}, "kept for a start with a token"


def test_notifications_failed_lists_dead_letters_and_retry_resends_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from tradeforge.cli import app
    from tradeforge.notifications.alerts import Alert

    with running() as api:
        monkeypatch.setenv("TRADEFORGE_TELEGRAM_TOKEN", api.token)
        monkeypatch.setenv("COLUMNS", "200")
        config = bot(tmp_path, api)
        box = outbox(config)
        moment = datetime.datetime(2023, 1, 5, tzinfo=datetime.UTC)
        box.add([("telegram:111", Alert("error", "e1", moment, {"message": "feed stalled on BTC/USDT"}))], moment)
        box.dead_letter([box.rows()[0].id], "Rejected: Telegram refused the message: chat not found")
        runner = CliRunner()
        listed = runner.invoke(app, ["notifications", "--config", str(config), "--failed"])
        assert listed.exit_code == 0, listed.output
        assert "chat not found" in listed.output and "telegram:111" in listed.output
        assert "0 pending, 0 delivered, 1 failed" in listed.output
        retried = runner.invoke(app, ["notifications", "--config", str(config), "--retry", "--wait", "10"])
        assert retried.exit_code == 0, retried.output
        assert "1 dead-lettered alerts back in the queue" in retried.output
        assert "0 pending, 1 delivered, 0 failed" in retried.output
    assert ["feed stalled on BTC/USDT" in t for t in api.texts()] == [True]


def test_a_429_storm_during_the_run_is_waited_out_and_nothing_is_lost(
    tmp_path: Path, reference: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    with running(FakeBotApi(fail_every=3, fail_with="429", retry_after=1)) as api:
        monkeypatch.setenv("TRADEFORGE_TELEGRAM_TOKEN", api.token)
        config = bot(tmp_path, api)
        config.write_text(
            config.read_text().replace("batch_window_s: 0.2}", "batch_window_s: 0.2, drain_on_stop_s: 60}")
        )
        run(config)
    assert repository(config).trade_records() == reference
    rows = outbox(config).rows()
    assert {r.status for r in rows} == {"delivered"}
    assert CLIENT_ID.findall("\n".join(api.texts(111))) == [
        r.data["client_order_id"] for r in rows if r.kind.startswith("order_")
    ]
    calls = [at for method, at in api.calls if method == "sendMessage"]
    storms = [i for i in range(len(calls)) if (i + 1) % 3 == 0 and i + 1 < len(calls)]
    assert storms and all(calls[i + 1] - calls[i] >= 0.95 for i in storms), "retry_after honoured every time"


def test_a_protection_blocking_an_entry_is_alerted_and_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def guarded(config: Path) -> Path:
        config.write_text(config.read_text().replace("  sizing:", "  protections: {cooldown: {bars: 24}}\n  sizing:"))
        return config

    quiet = guarded(bot(tmp_path / "quiet"))
    run(quiet)
    with running() as api:
        monkeypatch.setenv("TRADEFORGE_TELEGRAM_TOKEN", api.token)
        loud = guarded(bot(tmp_path / "loud", api))
        run(loud)
    assert repository(loud).trade_records() == repository(quiet).trade_records()
    blocked = [line for text in api.texts() for line in text.split("\n") if "protection cooldown" in line]
    assert blocked and all("on BTC/USDT: entry blocked, cooling down for 24 bars" in line for line in blocked)
