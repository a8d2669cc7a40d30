"""Telegram alerts through the real python-telegram-bot against a fake Bot API server on loopback:
order kept, nothing lost through 429 storms, 5xx and hangs, permanent errors dead-lettered at once."""

from __future__ import annotations

import itertools
import logging
import re
import time
from pathlib import Path

import pytest
from fake_bot_api import FakeBotApi, running
from notify_helpers import FAST, T0, Alert, error, fill, notifier, outbox_at, telegram

from tradeforge.persistence.models import OutboxStatus


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'tradeforge.sqlite'}"


def test_alerts_arrive_in_order_with_symbols_escaped(url: str) -> None:
    outbox = outbox_at(url)
    with running() as api:
        n = notifier(outbox, telegram(api))
        n.start()
        n.notify(error(1, "price <0 for BTC/USDT & ETH_USDT *bold*"))
        for i in range(2, 6):
            n.notify(error(i))
        assert n.wait_idle(10)
        n.stop()
    texts = api.texts(111)
    assert len(texts) == 5
    assert "price &lt;0 for BTC/USDT &amp; ETH_USDT *bold* #1" in texts[0]
    assert [t.rsplit("#", 1)[1] for t in texts] == ["1", "2", "3", "4", "5"]
    assert {r.status for r in outbox.rows()} == {"delivered"}


def test_a_429_storm_is_waited_out_and_nothing_is_lost(url: str) -> None:
    outbox = outbox_at(url)
    with running(FakeBotApi(fail_next=4, fail_with="429", retry_after=1)) as api:
        n = notifier(outbox, telegram(api))
        n.start()
        for i in range(1, 11):
            n.notify(error(i))
        assert n.wait_idle(30)
        n.stop()
    assert [t.rsplit("#", 1)[1] for t in api.texts()] == [str(i) for i in range(1, 11)]
    sends = [at for method, at in api.calls if method == "sendMessage"]
    gaps = [b - a for a, b in itertools.pairwise(sends)]
    assert all(gap >= 0.9 for gap in gaps[:4]), f"each 429 paused the channel for retry_after=1 s: {gaps[:4]}"


def test_server_errors_are_retried_with_backoff_until_delivered(url: str) -> None:
    outbox = outbox_at(url)
    with running(FakeBotApi(fail_next=2, fail_with="5xx")) as api:
        n = notifier(outbox, telegram(api))
        n.start()
        n.notify(error(1))
        assert n.wait_idle(10)
        n.stop()
    assert len(api.texts()) == 1
    [row] = outbox.rows()
    assert row.status == "delivered" and row.attempts == 3


def test_a_hanging_server_times_out_and_the_alert_follows_once_it_answers(url: str) -> None:
    outbox = outbox_at(url)
    with running(FakeBotApi(mode="hang")) as api:
        n = notifier(outbox, telegram(api, timeout_s=0.3))
        n.start()
        n.notify(error(1))
        time.sleep(1.0)
        assert api.texts() == []
        api.mode = "ok"
        assert n.wait_idle(10)
        n.stop()
    assert len(api.texts()) == 1


def test_the_breaker_opens_after_repeated_failures_and_probes_half_open(url: str) -> None:
    outbox = outbox_at(url)
    with running(FakeBotApi(mode="5xx")) as api:
        n = notifier(outbox, telegram(api))
        n.start()
        n.notify(error(1))
        time.sleep(1.5)
        calls = len([m for m, _ in api.calls if m == "sendMessage"])
        # 3 failures open it; then one probe per 0.3 s reset: far fewer than backoff alone would make (~15)
        assert 3 <= calls <= 9, calls
        api.mode = "ok"
        assert n.wait_idle(10)
        n.stop()
    assert len(api.texts()) == 1


def test_a_token_refused_at_start_disables_telegram_and_keeps_the_alerts(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    outbox = outbox_at(url)
    warnings: list[str] = []
    with running() as api:
        n = notifier(outbox, telegram(api, token="999:wrong"), warn=warnings.append)
        n.start()
        n.notify(error(1))
        assert n.wait_idle(10)
        n.stop()
    assert [m for m, _ in api.calls] == ["getMe"], "no message is even tried with a refused token"
    assert "notifications.telegram disabled: Telegram rejected the bot token" in warnings[0]
    assert [r.status for r in outbox.rows()] == ["pending"], "kept for the next start with a good token"
    assert "999:wrong" not in " ".join(warnings) + caplog.text


def test_a_token_refused_mid_run_is_not_retried_and_is_logged_loudly(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    outbox = outbox_at(url)
    with running() as api, caplog.at_level(logging.ERROR):
        n = notifier(outbox, telegram(api))
        n.start()
        time.sleep(0.2)
        api.mode = "bad_token"
        n.notify(error(1))
        n.notify(error(2))
        assert n.wait_idle(10)
        n.stop()
    assert api.texts() == []
    assert [m for m, _ in api.calls].count("sendMessage") == 2, "one try each, no retries"
    assert [r.status for r in outbox.rows()] == ["failed", "failed"]
    assert "ALERT NOT DELIVERED" in caplog.text and "bot token" in caplog.text


def test_an_unknown_chat_dead_letters_there_and_other_chats_still_get_it(url: str) -> None:
    outbox = outbox_at(url)
    with running() as api:
        n = notifier(outbox, telegram(api, chat_ids=[111, 333]))
        n.start()
        n.notify(error(1))
        assert n.wait_idle(10)
        n.stop()
    assert len(api.texts(111)) == 1
    status = {r.destination: r.status for r in outbox.rows()}
    assert status == {"telegram:111": "delivered", "telegram:333": "failed"}
    assert "chat not found" in (outbox.rows(OutboxStatus.FAILED)[0].last_error or "").lower()


def test_dead_letters_are_resent_by_retry(url: str) -> None:
    outbox = outbox_at(url)
    with running(FakeBotApi(mode="5xx")) as api:
        n = notifier(outbox, telegram(api), delivery=FAST.model_copy(update={"give_up_after_s": 0}))
        n.start()
        n.notify(error(1))
        assert n.wait_idle(10), "out of attempts (max_attempts=3, give_up_after_s=0): dead-lettered"
        n.stop()
        assert [r.status for r in outbox.rows()] == ["failed"]
        api.mode = "ok"
        assert outbox.retry() == 1
        n = notifier(outbox, telegram(api))
        n.start()
        assert n.wait_idle(10)
        n.stop()
    assert len(api.texts()) == 1


def test_an_outage_shorter_than_give_up_after_never_dead_letters(url: str) -> None:
    outbox = outbox_at(url)
    with running(FakeBotApi(mode="5xx")) as api:
        n = notifier(outbox, telegram(api))
        n.start()
        n.notify(error(1))
        time.sleep(1.5)
        assert outbox.rows()[0].attempts > FAST.max_attempts
        api.mode = "ok"
        assert n.wait_idle(10)
        n.stop()
    assert [r.status for r in outbox.rows()] == ["delivered"]


def test_an_over_long_alert_is_split_under_telegram_limit(url: str) -> None:
    outbox = outbox_at(url)
    with running() as api:
        n = notifier(outbox, telegram(api))
        n.start()
        n.notify(Alert("error", "long", T0, {"message": "\n".join(f"line {i} BTC/USDT <x>" for i in range(600))}))
        assert n.wait_idle(10)
        n.stop()
    texts = api.texts()
    assert 2 <= len(texts) <= 5 and all(len(t) <= 4096 for t in texts)
    assert "line 0 BTC/USDT" in texts[0] and "line 599" in texts[-1]


def test_a_burst_of_fills_is_merged_into_one_message(url: str) -> None:
    outbox = outbox_at(url)
    with running() as api:
        n = notifier(outbox, telegram(api), delivery=FAST.model_copy(update={"batch_window_s": 0.5}))
        n.start()
        for i in range(20):
            n.notify(fill(i))
        n.notify(error(99))
        assert n.wait_idle(10)
        n.stop()
    texts = api.texts()
    assert len(texts) == 2
    assert texts[0].startswith("<b>[notify-bot] 20 × order filled</b>") and texts[0].count("filled buy") == 20
    assert "#99" in texts[1]


def test_messages_to_one_chat_are_spaced_by_the_per_chat_interval(url: str) -> None:
    outbox = outbox_at(url)
    with running() as api:
        n = notifier(outbox, telegram(api, chat_ids=[111, 222], per_chat_interval_s=0.2))
        n.start()
        for i in range(4):
            n.notify(error(i))
        assert n.wait_idle(10)
        n.stop()
    for chat in (111, 222):
        times = [s.at for s in api.sent if s.chat_id == chat]
        assert len(times) == 4
        assert all(b - a >= 0.19 for a, b in itertools.pairwise(times))


def test_replayed_history_is_kept_only_past_the_outbox_high_water_mark(url: str) -> None:
    outbox = outbox_at(url)
    with running() as api:
        n = notifier(outbox, telegram(api))
        n.start()
        for i in range(1, 6):
            n.notify(error(i) if i == 1 else fill(i))
        assert n.wait_idle(10)
        n.stop()
        # A restart re-derives fills 1…8 from replayed history; 2…5 were stored, 6…8 were lost in the crash.
        n = notifier(outbox, telegram(api))
        n.start()
        for i in range(1, 9):
            n.notify(_replayed(fill(i)))
        assert n.wait_idle(10)
        n.stop()
    assert re.findall(r"order (tf-\d+)", "\n".join(api.texts())) == [f"tf-{i}" for i in range(2, 9)]


def _replayed(alert: Alert) -> Alert:
    return Alert(alert.kind, alert.dedupe_key, alert.time, alert.data, alert.level, replayed=True)


def test_the_daily_summary_goes_out_at_its_time(url: str) -> None:
    import datetime as dt

    from tradeforge.engine.alerts import daily_summary
    from tradeforge.persistence.repository import Repository

    outbox = outbox_at(url)
    repository = Repository.attach(outbox.engine, "notify-bot", "", "paper")
    at = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1.5)).time()
    with running() as api:
        n = notifier(outbox, telegram(api), background=[daily_summary(repository, at)])
        n.start()
        deadline = time.monotonic() + 10
        while not api.texts() and time.monotonic() < deadline:
            time.sleep(0.05)
        n.stop()
    [text] = api.texts()
    assert text.startswith("<b>[notify-bot] Daily summary</b>\n📊 daily summary ")
    assert "PnL +0.00, 0 trades closed, equity n/a" in text


def test_all_stored_says_whether_every_queued_alert_has_reached_the_outbox(url: str) -> None:
    """A restart snapshot waits for this: alerts of the candles before a snapshot are never derived again."""
    outbox = outbox_at(url)
    with running() as api:
        n = notifier(outbox, telegram(api))
        assert n.all_stored()
        n.notify(error(1))
        assert not n.all_stored()  # queued on the trading thread, not in the outbox until the notifier runs
        n.start()
        assert n.wait_idle(10)
        assert n.all_stored() and len(outbox.rows()) == 1
        n.stop()
