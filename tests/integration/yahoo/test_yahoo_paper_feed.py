"""The Yahoo paper feed on recorded NYSE hourly candles (1-9 July 2024: an early close on the 3rd, the
4 July holiday, a weekend), on a simulated clock: closed candles only, each once, in order; no request
while the market is closed; outages retried and caught up."""

from __future__ import annotations

import datetime as dt
import json
import threading
from pathlib import Path

import numpy as np
import pytest
from fakes.yahoo import RECORDINGS, FakeYahoo, Fault

from tradeforge.config.schema import BotConfig
from tradeforge.engine.feeds import live_store
from tradeforge.engine.runtime import run_bot
from tradeforge.feeds.candles import Candles
from tradeforge.feeds.sessions import MarketSessions, calendar_code
from tradeforge.feeds.yahoo import YahooClient, YahooFeed
from tradeforge.persistence.database import make_engine
from tradeforge.persistence.migrate import upgrade
from tradeforge.resilience.errors import ConfigError, DataError

UTC = dt.UTC
START = dt.datetime(2024, 7, 2, 12, tzinfo=UTC)  # 08:00 New York, before the open
END = dt.datetime(2024, 7, 10, 0, tzinfo=UTC)
GRACE, POLL = 30.0, 60.0
RECORDED = [
    dt.datetime.fromtimestamp(t, UTC)
    for t in json.loads((RECORDINGS / "SPY_1h.json").read_text())["chart"]["result"][0]["timestamp"]
]


class SimulatedTime:
    """The feed's sleep moves the shared clock instead of waiting; every sleep is recorded."""

    def __init__(self, clock) -> None:
        self.clock = clock
        self.sleeps: list[tuple[dt.datetime, float]] = []

    def __call__(self, seconds: float) -> bool:
        self.sleeps.append((self.clock.now, seconds))
        self.clock.now += dt.timedelta(seconds=seconds)
        return False


def empty(symbol: str = "SPY", timeframe: str = "1h") -> Candles:
    nothing = np.empty(0)
    return Candles(symbol, timeframe, nothing.astype(np.int64), nothing, nothing, nothing, nothing, nothing)


def make_feed(client: YahooClient, clock, emitted: list) -> tuple[YahooFeed, SimulatedTime]:
    time = SimulatedTime(clock)
    feed = YahooFeed(
        client,
        empty(),
        sessions=MarketSessions(calendar_code("SPY")),
        adjust="splits",
        on_closed=lambda page: emitted.extend((clock.now, t) for t in page_times(page)),
        poll_interval=POLL,
        grace=GRACE,
        clock=clock,
        sleep=time,
    )
    return feed, time


def page_times(page: Candles) -> list[dt.datetime]:
    return [dt.datetime.fromtimestamp(t / 1e9, UTC) for t in page.timestamp]


def run_until(feed: YahooFeed, clock, end: dt.datetime) -> None:
    while clock.now < end:
        feed._poll()


def chart_request_times(yahoo: FakeYahoo, times: list[dt.datetime]) -> list[dt.datetime]:
    return [t for t, (_, path, _) in zip(times, yahoo.calls, strict=True) if "/chart/" in path]


@pytest.fixture
def timed(yahoo: FakeYahoo, clock):
    """Record the clock at every HTTP request the fake receives."""
    times: list[dt.datetime] = []
    send = yahoo.send

    def timed_send(request, **kwargs):
        times.append(clock.now)
        return send(request, **kwargs)

    yahoo.send = timed_send  # type: ignore[method-assign]
    return times


def test_candles_are_emitted_once_in_order_only_after_they_close(yahoo, client, clock, timed):
    clock.now = START
    emitted: list[tuple[dt.datetime, dt.datetime]] = []
    feed, _ = make_feed(client, clock, emitted)
    assert feed.backfill(5) == 5
    assert [t for _, t in emitted] == RECORDED[2:7]  # the last five of 1 July
    run_until(feed, clock, END)
    assert [t for _, t in emitted] == RECORDED[2:]
    sessions = MarketSessions("XNYS")
    for at, opened in emitted[5:]:
        closes = sessions.candle_close(opened, dt.timedelta(hours=1), daily=False) + dt.timedelta(seconds=GRACE)
        assert closes <= at <= closes + dt.timedelta(seconds=POLL)  # never early, and promptly


def test_the_early_close_candle_closes_with_the_session(client, clock, timed):
    clock.now = START
    emitted: list[tuple[dt.datetime, dt.datetime]] = []
    feed, _ = make_feed(client, clock, emitted)
    feed.backfill(5)
    run_until(feed, clock, dt.datetime(2024, 7, 3, 18, tzinfo=UTC))
    last_at, last = emitted[-1]
    assert last == dt.datetime(2024, 7, 3, 16, 30, tzinfo=UTC)  # 12:30-13:00 New York, 3 July
    assert last_at == dt.datetime(2024, 7, 3, 17, 0, 30, tzinfo=UTC)


def test_no_request_while_the_market_is_closed_and_a_wake_up_for_the_next_open(yahoo, client, clock, timed):
    clock.now = START
    feed, time = make_feed(client, clock, [])
    feed.backfill(5)
    run_until(feed, clock, END)
    requests = chart_request_times(yahoo, timed)
    holiday = [
        t
        for t in requests
        if dt.datetime(2024, 7, 3, 17, 1, tzinfo=UTC) < t < dt.datetime(2024, 7, 5, 14, 30, tzinfo=UTC)
    ]
    weekend = [
        t
        for t in requests
        if dt.datetime(2024, 7, 5, 20, 1, tzinfo=UTC) < t < dt.datetime(2024, 7, 8, 14, 30, tzinfo=UTC)
    ]
    assert holiday == [] and weekend == []
    assert len(requests) == 1 + (len(RECORDED) - 7)  # the back-fill, then one request per candle
    # Between sessions the feed sleeps in long stretches, never in poll-interval steps.
    overnight = [
        s
        for at, s in time.sleeps
        if dt.datetime(2024, 7, 3, 17, 1, tzinfo=UTC) < at < dt.datetime(2024, 7, 5, 14, tzinfo=UTC)
    ]
    assert all(s != POLL for s in overnight)  # not polling: nothing is due
    assert len(overnight) <= 2 + (46 * 3600) // 900  # woken at most every 15 minutes, with no request


def test_an_outage_is_retried_and_every_candle_caught_up_in_order(yahoo, client, clock, timed):
    clock.now = START
    emitted: list[tuple[dt.datetime, dt.datetime]] = []
    feed, _ = make_feed(client, clock, emitted)
    feed.backfill(5)
    yahoo.inject("/v8/finance/chart/", Fault.rate_limited(), times=4)
    yahoo.inject("/v8/finance/chart/", Fault.server_error(502), times=4)
    run_until(feed, clock, dt.datetime(2024, 7, 2, 16, tzinfo=UTC))
    yahoo.offline = True
    run_until(feed, clock, dt.datetime(2024, 7, 2, 19, tzinfo=UTC))
    yahoo.offline = False
    run_until(feed, clock, END)
    assert [t for _, t in emitted] == RECORDED[2:]


def bot_config(root: Path, name: str, **data: object) -> BotConfig:
    return BotConfig.model_validate(
        {
            "name": name,
            "mode": "paper",
            "data_dir": str(root / "user_data"),
            "data": {"source": "yahoo", "symbols": ["SPY"], "timeframe": "1h", **data},
            "yahoo": {"warmup_candles": 5, "poll_interval": POLL, "grace": GRACE, "retries": 2},
            "strategy": {
                "entry": {"name": "sma_cross", "fast": 2, "slow": 4},
                "sizing": {"name": "percent_equity", "pct": 90},
            },
        }
    )


def run_paper_bot(config: BotConfig, client: YahooClient, clock, until: dt.datetime):
    """run_bot on the simulated clock; stopped (as by Ctrl-C) once the clock reaches `until`."""
    upgrade(make_engine(f"sqlite:///{config.data_dir}/tradeforge.sqlite"))
    stop = threading.Event()
    time = SimulatedTime(clock)

    def sleep(seconds: float) -> bool:
        time(seconds)
        if clock.now >= until:
            stop.set()
        return stop.is_set()

    wiring = {"client": client, "clock": clock, "sleep": sleep}
    return run_bot(config, "bot.yaml", stop=stop, say=lambda s: None, yahoo=wiring)


def ledger(config: BotConfig) -> list[tuple]:
    from tradeforge.persistence.repository import Repository

    repo = Repository.attach(make_engine(f"sqlite:///{config.data_dir}/tradeforge.sqlite"), config.name, "", "paper")
    return [(o.client_order_id.split("-", 1)[1], o.side, o.amount, o.status.value) for o in repo.orders()]


def test_a_paper_bot_on_yahoo_candles_restarts_exactly_where_it_stopped(client, clock, tmp_path):
    straight = bot_config(tmp_path / "a", "straight")
    clock.now = START
    outcome = run_paper_bot(straight, client, clock, END)
    assert outcome.result.start == RECORDED[2] and outcome.result.end == RECORDED[-1]
    assert page_times(live_store(straight).load("yahoo", "SPY", "1h")) == RECORDED[2:]
    assert ledger(straight), "the comparison needs orders to mean something"

    restarted = bot_config(tmp_path / "b", "restarted")
    clock.now = START
    run_paper_bot(restarted, client, clock, dt.datetime(2024, 7, 3, 18, tzinfo=UTC))
    clock.now = dt.datetime(2024, 7, 8, 15, tzinfo=UTC)  # down over the holiday and the weekend
    run_paper_bot(restarted, client, clock, END)
    assert page_times(live_store(restarted).load("yahoo", "SPY", "1h")) == RECORDED[2:]
    assert ledger(restarted) == ledger(straight)


def test_a_symbol_without_a_known_calendar_is_refused_before_the_bot_starts(client, clock, tmp_path):
    config = bot_config(tmp_path, "odd", symbols=["SPY", "WEIRD.XX"])
    upgrade(make_engine(f"sqlite:///{config.data_dir}/tradeforge.sqlite"))
    with pytest.raises(ConfigError) as caught:
        run_bot(config, "bot.yaml", say=lambda s: None, yahoo={"client": client, "clock": clock})
    assert "WEIRD.XX" in str(caught.value) and "yahoo.calendar" in str(caught.value)


def test_an_unknown_symbol_stops_the_start_with_the_bot_history_untouched(yahoo, client, clock, tmp_path):
    config = bot_config(tmp_path, "unknown", symbols=["SPY", "NOPE"])
    upgrade(make_engine(f"sqlite:///{config.data_dir}/tradeforge.sqlite"))
    clock.now = START
    with pytest.raises(DataError, match="does not know NOPE"):
        run_bot(config, "bot.yaml", say=lambda s: None, yahoo={"client": client, "clock": clock})
    assert not live_store(config).exists("yahoo", "SPY", "1h")  # SPY's back-fill was not kept either


def test_daily_candles_are_emitted_when_their_session_closes_holidays_skipped(yahoo, client, clock, timed):
    clock.now = dt.datetime(2014, 12, 1, tzinfo=UTC)
    emitted: list[tuple[dt.datetime, dt.datetime]] = []
    history = empty("ORCL")
    feed = YahooFeed(
        client,
        Candles(
            "ORCL", "1d", history.timestamp, history.open, history.high, history.low, history.close, history.volume
        ),
        sessions=MarketSessions("XNYS"),
        adjust="splits",
        on_closed=lambda page: emitted.extend((clock.now, t) for t in page_times(page)),
        poll_interval=POLL,
        grace=GRACE,
        clock=clock,
        sleep=SimulatedTime(clock),
    )
    feed.backfill(5)
    assert emitted[-1][1] == dt.datetime(2014, 11, 28, tzinfo=UTC)  # the Friday after Thanksgiving
    run_until(feed, clock, dt.datetime(2014, 12, 31, 23, tzinfo=UTC))
    live = emitted[5:]
    assert len(live) == 22 and dt.datetime(2014, 12, 25, tzinfo=UTC) not in [t for _, t in live]
    at = dict((t, a) for a, t in live)
    assert at[dt.datetime(2014, 12, 24, tzinfo=UTC)] == dt.datetime(2014, 12, 24, 18, 0, 30, tzinfo=UTC)  # early close
    assert at[dt.datetime(2014, 12, 31, tzinfo=UTC)] == dt.datetime(2014, 12, 31, 21, 0, 30, tzinfo=UTC)
    requests = chart_request_times(yahoo, timed)
    assert not [
        t for t in requests if t.date() in (dt.date(2014, 12, 25), dt.date(2014, 12, 27), dt.date(2014, 12, 28))
    ]
