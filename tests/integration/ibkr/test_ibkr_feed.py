"""The IBKR bars feed against the fake TWS: back-filled warm-up, closed bars only (never the one IB
keeps moving), each bar once, gaps back-filled after TWS's nightly restart, pacing violations waited
out per IB's rules and then reported."""

from __future__ import annotations

import datetime as dt
import threading

import numpy as np
import pytest
from fakes.ib import FakeIB
from fakes.ib_support import MINUTE, ORIGIN, ibkr_settings, price_path

from tradeforge.feeds.candles import Candles
from tradeforge.feeds.ibkr import IbkrFeed, bar_open_ms, duration_for
from tradeforge.resilience.ibkr import IbConnection, PacingViolation

PATH = price_path()


def empty_history(symbol: str = "AAPL") -> Candles:
    empty = np.empty(0)
    return Candles(symbol, "1m", empty.astype(np.int64), empty, empty, empty, empty, empty)


def make_feed(fake: FakeIB, connection: IbConnection, kept: list[Candles], history: Candles | None = None) -> IbkrFeed:
    return IbkrFeed(
        connection,
        connection.resolve("AAPL"),
        history if history is not None else empty_history(),
        what_to_show="TRADES",
        on_closed=kept.append,
        poll_interval=1.0,
        grace=2.0,
        clock=lambda: fake.now,
        stop=threading.Event(),
    )


def delivered_until(feed: IbkrFeed, fake: FakeIB, until: dt.datetime) -> list[tuple[float, ...]]:
    """Let Backtrader's pulls run (each poll lets the fake's time pass) until the fake's clock reaches `until`."""
    rows = []
    while fake.now < until:
        while not feed._pending:
            feed._poll()
            if fake.now >= until:
                return rows
        rows.append(feed._pending.popleft())
    return rows


def expected(index: int) -> tuple[float, ...]:
    o, h, low, c, v = PATH[index]
    return (bar_open_ms(ORIGIN + index * MINUTE), o, h, low, c, v)


def test_backfill_warms_up_with_closed_bars_only_stamped_at_their_utc_open(fake: FakeIB, connection: IbConnection):
    kept: list[Candles] = []
    feed = make_feed(fake, connection, kept)
    assert feed.backfill(50) == 50
    rows = list(feed._pending)
    assert rows == [expected(i) for i in range(250, 300)]  # the bar forming at 300:30 is not among them
    assert kept[0].start == ORIGIN + 250 * MINUTE and kept[0].start.tzinfo == dt.UTC


def test_live_bars_are_emitted_once_each_with_their_final_values_after_they_close(
    fake: FakeIB, connection: IbConnection
):
    kept: list[Candles] = []
    feed = make_feed(fake, connection, kept)
    feed.backfill(5)
    feed._pending.clear()
    emitted_at: dict[float, dt.datetime] = {}
    until = ORIGIN + 320 * MINUTE
    while fake.now < until:
        feed._poll()
        while feed._pending:
            row = feed._pending.popleft()
            emitted_at[row[0]] = fake.now
            assert row == expected(int((row[0] - bar_open_ms(ORIGIN)) // 60_000))  # final values, never a forming bar
    assert sorted(emitted_at) == [bar_open_ms(ORIGIN + i * MINUTE) for i in range(300, 320)]
    for open_ms, at in emitted_at.items():
        close = dt.datetime.fromtimestamp(open_ms / 1000, dt.UTC) + MINUTE
        assert close <= at <= close + dt.timedelta(seconds=2)  # IB sent the next bar: closed, emitted at once


def test_gap_after_tws_restart_is_back_filled_and_every_bar_delivered_once(fake: FakeIB, connection: IbConnection):
    kept: list[Candles] = []
    feed = make_feed(fake, connection, kept)
    feed.backfill(5)
    rows = delivered_until(feed, fake, ORIGIN + 310 * MINUTE)
    fake.restart(down_for=900)  # TWS's nightly restart: 15 minutes without a connection
    rows += delivered_until(feed, fake, ORIGIN + 340 * MINUTE)
    assert rows == [expected(i) for i in range(295, 339)]  # contiguous, none twice
    assert fake.connections >= 2 and len(fake.history_requests) == 2  # resubscribed once, from its last bar
    assert fake.history_requests[1]["duration"].endswith(" S")


def test_a_restart_of_the_bot_continues_from_its_stored_bars(fake: FakeIB, connection: IbConnection):
    first: list[Candles] = []
    feed = make_feed(fake, connection, first)
    feed.backfill(20)
    fake.sleep(600)  # the bot is down for ten bars
    stored = first[0]
    resumed = make_feed(fake, connection, [], history=stored)
    assert resumed.backfill(20) == 10
    assert list(resumed._pending)[-10:] == [expected(i) for i in range(300, 310)]


def test_pacing_violations_are_waited_out_then_the_backfill_succeeds(fake: FakeIB, connection: IbConnection):
    fake.pacing_violations = 2
    feed = make_feed(fake, connection, [])
    started = fake.now
    assert feed.backfill(10) == 10
    waited = [r["at"] - started for r in fake.history_requests]
    assert waited == [dt.timedelta(0), dt.timedelta(seconds=15), dt.timedelta(seconds=45)]  # 15 s, then 30 s


def test_persistent_pacing_violations_end_in_a_clear_error(fake: FakeIB, connection: IbConnection):
    fake.pacing_violations = 10
    with pytest.raises(PacingViolation, match=r"pacing violation.*ibkr.pacing_retries.*60 historical requests"):
        make_feed(fake, connection, []).backfill(10)
    assert len(fake.history_requests) == 4


def test_durations_ask_for_enough_calendar_time():
    assert duration_for(30) == "60 S" and duration_for(86_400) == "86400 S"
    assert duration_for(86_401) == "2 D" and duration_for(400 * 86_400) == "2 Y"
    assert bar_open_ms(dt.date(2026, 3, 2)) == bar_open_ms(dt.datetime(2026, 3, 2, tzinfo=dt.UTC))


def test_without_a_newer_bar_a_bar_counts_as_closed_grace_seconds_after_its_close():
    fake = FakeIB(origin=ORIGIN, bars=PATH[:305], now=ORIGIN + 300 * MINUTE + dt.timedelta(seconds=30))
    fake.list_contract("AAPL")
    connection = IbConnection(ibkr_settings(), lambda: fake)
    connection.connect()
    feed = make_feed(fake, connection, [])
    feed.backfill(5)
    feed._pending.clear()
    emitted_at = {}
    while fake.now < ORIGIN + 310 * MINUTE:  # after bar 304, IB sends nothing new (a quiet market)
        feed._poll()
        while feed._pending:
            emitted_at[feed._pending.popleft()[0]] = fake.now
    last_close = ORIGIN + 305 * MINUTE
    assert emitted_at[bar_open_ms(ORIGIN + 304 * MINUTE)] == last_close + dt.timedelta(seconds=2)
    assert len(emitted_at) == 5
