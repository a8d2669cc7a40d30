"""The live feed against the fake Binance: warm-up back-fill, closed candles only, de-duplicated,
gaps back-filled after an outage, time kept on the exchange's clock."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator

import backtrader as bt
import numpy as np
import pytest
from fakes.binance import FakeBinance, Fault
from fakes.support import HOUR, T0, quick_retries

from tradeforge.feeds.candles import Candles
from tradeforge.feeds.ccxt import ExchangeClock, LiveFeed
from tradeforge.resilience.exchange import ExchangeClient


def empty(symbol: str = "BTC/USDT") -> Candles:
    nothing = np.empty(0)
    return Candles(symbol, "1h", nothing.astype(np.int64), nothing, nothing, nothing, nothing, nothing)


class Recorder(bt.Strategy):
    """Records every candle Backtrader gets, with the exchange's clock at that moment."""

    params = (("seen", None), ("fake", None), ("stop", None), ("count", 0))

    def next(self) -> None:
        stamp = bt.num2date(self.data.datetime[0]).replace(tzinfo=dt.UTC)
        ms = int(stamp.timestamp() * 1000)
        row = (ms, self.data.open[0], self.data.high[0], self.data.low[0], self.data.close[0], self.data.volume[0])
        self.p.seen.append((*row, self.p.fake.now_ms()))
        if len(self.p.seen) >= self.p.count:
            self.p.stop.set()


def run_feed(feed: LiveFeed, fake: FakeBinance, count: int) -> list[tuple]:
    seen: list[tuple] = []
    cerebro = bt.Cerebro(stdstats=False, preload=False, runonce=False)
    cerebro.adddata(feed)
    cerebro.addstrategy(Recorder, seen=seen, fake=fake, stop=feed.stop_event, count=count)
    cerebro.run()
    return seen


@pytest.fixture
def ticking(fake: FakeBinance) -> Iterator[threading.Event]:
    """The fake's market clock moves an hour every 20 ms of wall time until the test ends."""
    done = threading.Event()

    def tick() -> None:
        while not done.wait(0.02):
            fake.advance(HOUR)

    thread = threading.Thread(target=tick, daemon=True)
    thread.start()
    yield done
    done.set()
    thread.join()


def real_rows(fake: FakeBinance, first_ms: int, last_ms: int) -> list[tuple[float, ...]]:
    return [
        (r[0], *(float(v) for v in r[1:6])) for r in fake.series[("BTCUSDT", "1h")].rows if first_ms <= r[0] <= last_ms
    ]


def make_feed(client: ExchangeClient, history: Candles | None = None, saved: list | None = None) -> LiveFeed:
    return LiveFeed(
        client,
        history if history is not None else empty(),
        on_closed=(saved if saved is not None else []).append,
        poll_interval=0.005,
        grace=0.0,
    )


def test_first_start_back_fills_the_warm_up_from_closed_candles_only(fake: FakeBinance, client: ExchangeClient):
    saved: list[Candles] = []
    feed = make_feed(client, saved=saved)
    assert feed.backfill(50) == 50
    stamps = np.concatenate([c.timestamp for c in saved]) // 1_000_000
    assert stamps[-1] == T0 - HOUR  # the candle opening at T0 is still in progress on the exchange clock
    assert list(np.diff(stamps)) == [HOUR] * 49


def test_live_candles_arrive_closed_complete_in_order_and_once(
    fake: FakeBinance, client: ExchangeClient, ticking: threading.Event
):
    feed = make_feed(client)
    feed.backfill(5)
    seen = run_feed(feed, fake, count=30)
    rows = [s[:6] for s in seen]
    assert rows == real_rows(fake, T0 - 5 * HOUR, rows[-1][0])  # full candles, none skipped or repeated
    assert all(exchange_time >= s[0] + HOUR for *s, exchange_time in seen)  # closed when delivered


def test_overlapping_answers_are_de_duplicated_by_timestamp(
    fake: FakeBinance, client: ExchangeClient, ticking: threading.Event
):
    fake.klines_overlap = 3  # every answer repeats three candles the feed already has
    feed = make_feed(client)
    feed.backfill(5)
    seen = run_feed(feed, fake, count=20)
    stamps = [s[0] for s in seen]
    assert stamps == sorted(set(stamps)) and np.all(np.diff(stamps) == HOUR)


def test_a_network_outage_is_back_filled_when_the_exchange_answers_again(fake: FakeBinance, client: ExchangeClient):
    quick_retries(client, attempts=2)
    feed = make_feed(client)
    feed.backfill(3)
    fake.inject("GET", "/api/v3/time", Fault.server_error(503), times=20)  # ten failed polls
    fake.advance(6 * HOUR)  # six candles close while the exchange cannot be reached

    def recover() -> None:
        while fake._faults[("GET", "/api/v3/time")]:
            time.sleep(0.005)
        fake.advance(HOUR)

    threading.Thread(target=recover, daemon=True).start()
    seen = run_feed(feed, fake, count=3 + 7)
    assert [s[0] for s in seen] == [T0 + h * HOUR for h in range(-3, 7)]


def test_restart_resumes_after_the_stored_history_without_repeating_it(fake: FakeBinance, client: ExchangeClient):
    saved: list[Candles] = []
    first = make_feed(client, saved=saved)
    first.backfill(10)
    history = saved[0]
    fake.advance(4 * HOUR)  # the bot was down for four candles
    again: list[Candles] = []
    second = make_feed(client, history=history, saved=again)
    assert second.backfill(10) == 4
    assert [int(t) // 1_000_000 for t in again[0].timestamp] == [T0 + h * HOUR for h in range(4)]


def test_exchange_clock_is_measured_not_assumed(fake: FakeBinance, client: ExchangeClient):
    ticks = iter([100.0, 100.2, 500.0])  # local monotonic seconds: request sent, answer received, later
    clock = ExchangeClock(client, monotonic=lambda: next(ticks))
    assert clock.sync() == T0  # the fake's clock is years behind the local one: only the offset matters
    assert clock.now_ms() == pytest.approx(T0 + (500.0 - 100.1) * 1000)


def test_a_grace_period_holds_a_just_closed_candle_back(fake: FakeBinance, client: ExchangeClient):
    feed = LiveFeed(client, empty(), on_closed=lambda c: None, poll_interval=0.005, grace=30.0)
    fake.set_time(T0 + 10_000)  # T0-1h closed 10 s ago: inside the 30 s grace
    feed.backfill(2)
    assert [int(r[0]) for r in feed._pending] == [T0 - 3 * HOUR, T0 - 2 * HOUR]
