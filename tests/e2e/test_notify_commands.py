"""Telegram control of a running paper bot (real python-telegram-bot, fake Bot API on loopback):
only the configured chats are obeyed; each command's effect; operator actions are in the event
log and a restarted bot re-applies them at the same candle, so its replay does not diverge."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fake_bot_api import FakeBotApi, running

from tradeforge.config.loader import load_config
from tradeforge.engine.runtime import RunOutcome, run_bot
from tradeforge.persistence.database import make_engine
from tradeforge.persistence.migrate import upgrade
from tradeforge.persistence.repository import Repository

BOT = """\
name: control-bot
mode: paper
data_dir: {root}/user_data
data: {{source: replay, symbols: [BTC/USDT], timeframe: 1h, speed: {speed}, end: 2023-03-01}}
strategy:
  entry: {{name: sma_cross, fast: 5, slow: 20}}
  sizing: {{name: percent_equity, pct: 90}}
notifications:
  telegram: {{chat_ids: [111], api_base_url: '{base_url}', per_chat_interval_s: 0.0, timeout_s: 2, events: [error]}}
"""


def bot(root: Path, api: FakeBotApi, speed: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    config = root / "bot.yaml"
    config.write_text(BOT.format(root=root, speed=speed, base_url=api.base_url))
    upgrade(make_engine(f"sqlite:///{root}/user_data/tradeforge.sqlite"))
    repository(config)  # the bot's row, before a test thread and the bot both try to create it
    return config


def repository(config: Path) -> Repository:
    return Repository.attach(
        make_engine(f"sqlite:///{config.parent}/user_data/tradeforge.sqlite"), "control-bot", "", ""
    )


@contextmanager
def running_bot(config: Path) -> Iterator[dict[str, Any]]:
    """run_bot on a thread; yields a dict that gets the outcome (or the error) when it ends."""
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["outcome"] = run_bot(load_config(config), str(config), say=lambda _text: None)
        except Exception as exc:
            result["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not repository(config).cursors() and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield result
    finally:
        thread.join(60)
        assert not thread.is_alive(), "the bot did not stop"


def ask(api: FakeBotApi, text: str, chat: int = 111, wait: float = 10) -> str:
    """Send a command from `chat`, return the bot's reply to it."""
    before = len(api.texts(chat))
    api.push_command(chat, text)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        replies = api.texts(chat)
        if len(replies) > before:
            return replies[before]
        time.sleep(0.02)
    raise AssertionError(f"no reply to {text!r}")


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeBotApi]:
    with running(FakeBotApi(chats={111, 666})) as server:
        monkeypatch.setenv("TRADEFORGE_TELEGRAM_TOKEN", server.token)
        yield server


def test_commands_from_other_chats_are_ignored_and_logged(
    tmp_path: Path, api: FakeBotApi, caplog: pytest.LogCaptureFixture
) -> None:
    config = bot(tmp_path, api, speed="36000")  # 0.1 s a candle
    api.push_command(111, "/stop", date=time.time() - 600)  # sent to the stopped bot ten minutes ago
    with running_bot(config) as result:
        api.push_command(666, "/stop")
        time.sleep(1.5)
        assert "outcome" not in result, "the bot is still running"
        assert api.texts(666) == []
        assert "ignored '/stop' from chat 666" in caplog.text
        assert "ignored '/stop': sent while the bot was not running" in caplog.text
        assert "stopping" in ask(api, "/stop")
    assert result["outcome"].stopped_early
    commands = [e.data["command"] for e in repository(config).events("operator_command")]
    assert commands == ["/stop", "stop"], "the chat command, then the stop it caused; nothing from chat 666"


def test_queries_answer_from_the_bots_database(tmp_path: Path, api: FakeBotApi) -> None:
    config = bot(tmp_path, api, speed="300000")  # 12 ms a candle
    with running_bot(config):
        time.sleep(2.0)  # some closed trades first
        replies = {command: ask(api, command) for command in ("/help", "/status", "/trades", "/profit", "/balance")}
        replies |= {command: ask(api, command) for command in ("/daily", "/performance", "/nonsense")}
        ask(api, "/stop")
    assert "/forceexit &lt;trade id|all&gt;" in replies["/help"]
    assert replies["/status"].startswith("<b>control-bot</b>: running")
    assert "BTC/USDT" in replies["/trades"] and "closed trades:" in replies["/profit"]
    assert "equity:" in replies["/balance"] and "cash:" in replies["/balance"]
    assert "2023-01-" in replies["/daily"] and replies["/performance"].startswith("BTC/USDT: ")
    assert replies["/nonsense"] == "unknown command /nonsense; /help lists them"
    logged = [e.data["command"] for e in repository(config).events("operator_command")]
    assert logged[:8] == ["/help", "/status", "/trades", "/profit", "/balance", "/daily", "/performance", "/nonsense"]


def test_pause_stops_new_entries_until_resume_and_a_restart_replays_it(tmp_path: Path, api: FakeBotApi) -> None:
    config = bot(tmp_path, api, speed="72000")  # 0.05 s a candle
    with running_bot(config):
        time.sleep(1.0)
        assert "no new entries" in ask(api, "/pause")
        time.sleep(3.0)  # ~60 candles: sma_cross would have entered in that time
        assert "resuming" in ask(api, "/resume")
        time.sleep(2.0)
        ask(api, "/stop")
    repo = repository(config)
    applied = {e.data["command"]: e.data["candle"] for e in repo.events("operator_command") if "candle" in e.data}
    # Applied at the end of a candle: an entry decided on that candle still fills at the next open.
    paused_at = dt.datetime.fromisoformat(applied["pause"]) + dt.timedelta(hours=1)
    resumed_at = dt.datetime.fromisoformat(applied["resume"])
    entries = [dt.datetime.fromisoformat(t["entry_time"]) for t in repo.trade_records()]
    assert resumed_at - paused_at > dt.timedelta(hours=20)
    assert not [t for t in entries if paused_at < t <= resumed_at], "no entry filled while paused"
    assert [t for t in entries if t > resumed_at], "entries again after /resume"
    snapshot = repo.latest_snapshot()  # a restart replays from the bot's latest flat candle
    after_snapshot = [o for o in repo.orders() if o.id > (snapshot.last_order_id if snapshot else 0)]
    before, orders_before = repo.trade_records(), len(after_snapshot)
    config.write_text(config.read_text().replace("speed: 72000", "speed: max"))
    outcome: RunOutcome = run_bot(load_config(config), str(config), say=lambda _text: None)
    assert outcome.adopted_orders == orders_before, "every stored order since the snapshot asked for again"
    after = repository(config).trade_records()
    assert after[: len(before) - 1] == before[:-1], "the replay re-applied the pause: history unchanged"


def test_forceexit_asks_for_confirmation_then_closes_the_trade(tmp_path: Path, api: FakeBotApi) -> None:
    config = bot(tmp_path, api, speed="36000")
    with running_bot(config):
        for _ in range(50):
            open_trades = [t for t in repository(config).trade_records() if t["exit_reason"] == "open"]
            if open_trades:
                question = ask(api, "/forceexit all")
                if question.startswith("close at the next candle?"):
                    assert "reply /confirm" in question
                    answer = ask(api, "/confirm")
                    if answer.startswith("closing"):
                        break
            time.sleep(0.1)
        else:
            raise AssertionError("never caught an open trade")
        time.sleep(1.0)
        assert ask(api, "/confirm") == "nothing to confirm (ask again with /forceexit)"
        ask(api, "/stop")
    reasons = [t["exit_reason"] for t in repository(config).trade_records()]
    assert "force_exit" in reasons
    config.write_text(config.read_text().replace("speed: 36000", "speed: max"))
    run_bot(load_config(config), str(config), say=lambda _text: None)  # replays the forced exit: no divergence
    assert "force_exit" in [t["exit_reason"] for t in repository(config).trade_records()]
