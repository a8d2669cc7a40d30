"""Weekly candles, pre/post-market candles and the circuit breaker on Yahoo, on recorded chart answers:
weeks labelled by their Monday and closed with their last session; extended-hours candles only when
asked for, in a folder of their own, and emitted as their extended session runs; repeated failures stop
requests for a while instead of hammering Yahoo."""

from __future__ import annotations

import datetime as dt
import time
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from fakes.yahoo import FakeYahoo
from test_yahoo_paper_feed import POLL, SimulatedTime, empty, page_times, run_until

from tradeforge.feeds.sessions import ExtendedSessions, MarketSessions
from tradeforge.feeds.store import CandleStore
from tradeforge.feeds.yahoo import YahooClient, YahooFeed, download
from tradeforge.resilience.errors import ConfigError, Temporary
from tradeforge.resilience.exchange import CircuitOpen, RetryPolicy, make_breaker

UTC = dt.UTC
SINCE = dt.datetime(2014, 1, 1, tzinfo=UTC)
NEW_YORK = ZoneInfo("America/New_York")
NO_WAIT = RetryPolicy(attempts=3, initial=0.0, maximum=0.0, jitter=0.0)


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


def simulated_feed(client, clock, emitted, history, sessions, poll, grace, prepost=False) -> YahooFeed:
    """A feed on the simulated clock recording (when, candle open) for every candle it emits."""
    return YahooFeed(
        client,
        history,
        sessions=sessions,
        adjust="splits",
        prepost=prepost,
        on_closed=lambda page: emitted.extend((clock.now, t) for t in page_times(page)),
        poll_interval=poll,
        grace=grace,
        clock=clock,
        sleep=SimulatedTime(clock),
    )


# --- weekly candles --------------------------------------------------------------------------------------


def test_weekly_candles_are_labelled_by_their_monday_and_the_week_in_progress_is_not_stored(client, clock, store_dir):
    clock.now = at("2014-12-31 18:00")  # a Wednesday: the last week of 2014 is still trading
    store = CandleStore(store_dir)
    [report] = download(client, store, ["ORCL"], "1w", SINCE, now=clock)
    weeks = store.load("yahoo", "ORCL", "1w")
    mondays = [dt.datetime.fromtimestamp(t / 1e9, UTC) for t in weeks.timestamp]
    assert all(m.weekday() == 0 and m.time() == dt.time() for m in mondays)
    # The week of Thursday 2 January began on Monday 30 December, before --since: it is not stored.
    assert mondays[0] == at("2014-01-06")
    assert mondays[-1] == at("2014-12-22")  # the week of 29 December is not over
    assert report.added == len(weeks) == 51
    # Split-adjusted as Yahoo serves them: the weeks before the 2:1 split of 2 September are halved.
    split_week = mondays.index(at("2014-09-01"))
    assert weeks.close[split_week - 1] < 25 < weeks.close[split_week]


def test_adjust_none_undoes_the_split_for_the_weeks_before_it_only(client, clock, store_dir):
    clock.now = at("2015-01-05 12:00")
    download(client, CandleStore(store_dir), ["ORCL"], "1w", SINCE, now=clock)
    download(client, CandleStore(store_dir), ["ORCL"], "1w", SINCE, now=clock, adjust="none")
    served = CandleStore(store_dir).load("yahoo", "ORCL", "1w")
    traded = CandleStore(store_dir).load("yahoo-none", "ORCL", "1w")
    split_week = int(np.searchsorted(served.timestamp, int(at("2014-09-01").timestamp()) * 10**9))
    assert np.allclose(traded.close[:split_week], served.close[:split_week] * 2)
    assert np.allclose(traded.volume[:split_week], served.volume[:split_week] / 2)
    assert np.array_equal(traded.close[split_week:], served.close[split_week:])


def test_a_weekly_candle_closes_with_the_last_session_of_its_week(client, clock):
    """Good Friday 2014 (18 April): the week of 14 April ends with Thursday's close, 20:00 UTC."""
    clock.now = at("2014-04-10 12:00")
    emitted: list[tuple[dt.datetime, dt.datetime]] = []
    feed = simulated_feed(client, clock, emitted, empty("ORCL", "1w"), MarketSessions("XNYS"), POLL, 30.0)
    assert feed.backfill(3) == 3
    assert [t for _, t in emitted] == [at("2014-03-17"), at("2014-03-24"), at("2014-03-31")]
    run_until(feed, clock, at("2014-04-26 00:00"))
    live = dict((week, when) for when, week in emitted[3:])
    assert list(live) == [at("2014-04-07"), at("2014-04-14"), at("2014-04-21")]
    assert live[at("2014-04-07")] == at("2014-04-11 20:00:30")  # Friday's close + grace
    assert live[at("2014-04-14")] == at("2014-04-17 20:00:30")  # Thursday: Good Friday is a holiday


# --- pre- and post-market candles -------------------------------------------------------------------------


def test_pre_and_post_market_candles_are_fetched_only_when_asked_and_stored_apart(yahoo, client, clock, store_dir):
    clock.now = at("2024-07-01 12:00")
    store = CandleStore(store_dir)
    since = at("2024-06-17")
    download(client, store, ["MSFT"], "1m", since, now=clock)
    regular_requests = len(yahoo.chart_calls("MSFT"))
    download(client, store, ["MSFT"], "1m", since, now=clock, prepost=True)
    flags = [q["includePrePost"] for q in yahoo.chart_calls("MSFT")]
    assert set(flags[:regular_requests]) == {"false"} and set(flags[regular_requests:]) == {"true"}
    regular = store.load("yahoo", "MSFT", "1m")
    extended = store.load("yahoo-prepost", "MSFT", "1m")
    assert len(regular) == 90 and len(extended) == 90 + 9 * 10  # nine sessions before 1 July

    def new_york(candles):
        return {dt.datetime.fromtimestamp(t / 1e9, UTC).astimezone(NEW_YORK).time() for t in candles.timestamp}

    assert min(new_york(regular)) == dt.time(9, 30) and max(new_york(regular)) == dt.time(9, 39)
    assert min(new_york(extended)) == dt.time(9, 20) and max(new_york(extended)) == dt.time(16, 4)


def test_post_market_candles_are_emitted_as_the_extended_session_runs(client, clock):
    clock.now = at("2024-06-25 13:00")  # 09:00 New York: pre-market
    emitted: list[tuple[dt.datetime, dt.datetime]] = []
    feed = simulated_feed(client, clock, emitted, empty("MSFT", "1m"), ExtendedSessions("XNAS"), 5.0, 1.0, True)
    feed.backfill(5)
    run_until(feed, clock, at("2024-06-25 20:10"))
    today = {t: when for when, t in emitted if t.date() == dt.date(2024, 6, 25)}
    assert at("2024-06-25 13:20") in today  # 09:20 New York, pre-market
    last = at("2024-06-25 20:04")  # 16:04 New York, post-market
    assert last + dt.timedelta(minutes=1, seconds=1) <= today[last] <= last + dt.timedelta(minutes=1, seconds=7)


def test_extended_hours_are_refused_for_daily_candles_and_for_markets_without_them(client, clock, store_dir):
    with pytest.raises(ConfigError, match=r"--prepost.*intraday timeframes only"):
        download(client, CandleStore(store_dir), ["MSFT"], "1d", SINCE, now=clock, prepost=True)
    with pytest.raises(ConfigError, match=r"yahoo\.prepost.*XLON"):
        ExtendedSessions("XLON")


def test_extended_sessions_run_from_four_in_the_morning_to_eight_in_the_evening_new_york_time():
    sessions = ExtendedSessions("XNYS")
    assert not sessions.is_open(at("2024-07-02 07:59")) and sessions.is_open(at("2024-07-02 08:00"))
    assert sessions.close_of(at("2024-07-02 12:00")) == at("2024-07-03 00:00")  # 20:00 New York
    assert sessions.close_of(at("2024-07-03 12:00")) == at("2024-07-03 21:00")  # early close 13:00, post until 17:00
    assert sessions.next_open(at("2024-07-03 22:00")) == at("2024-07-05 08:00")  # 4 July is a holiday


# --- the circuit breaker -------------------------------------------------------------------------------


def test_repeated_failures_open_the_circuit_and_no_request_is_made_until_it_resets(yahoo: FakeYahoo, clock, store_dir):
    breaker = make_breaker(failures=2, reset_seconds=0.2, name="Yahoo Finance")
    client = YahooClient(yahoo.session(), NO_WAIT, sleep=lambda s: None, breaker=breaker)
    yahoo.offline = True
    for _ in range(2):
        with pytest.raises(Temporary, match="cannot reach Yahoo Finance"):
            download(client, CandleStore(store_dir), ["ORCL"], "1d", SINCE, now=clock)
    asked = len(yahoo.chart_calls())
    with pytest.raises(CircuitOpen, match="Yahoo Finance circuit is open after 2 failed requests"):
        client.chart("ORCL", "1d", SINCE, clock.now)
    assert len(yahoo.chart_calls()) == asked  # nothing sent while the circuit is open
    yahoo.offline = False
    time.sleep(0.25)
    assert client.chart("ORCL", "1d", SINCE, clock.now)["meta"]["symbol"] == "ORCL"  # half-open probe answered
    assert breaker.current_state == "closed"


def test_a_refusal_does_not_count_toward_opening_the_circuit(yahoo: FakeYahoo, clock):
    breaker = make_breaker(failures=1, reset_seconds=60, name="Yahoo Finance")
    client = YahooClient(yahoo.session(), NO_WAIT, sleep=lambda s: None, breaker=breaker)
    for _ in range(3):
        with pytest.raises(Exception, match="does not know NOPE"):
            client.chart("NOPE", "1d", SINCE, clock.now)
    assert breaker.current_state == "closed"
