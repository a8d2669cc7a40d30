"""A live Backtrader feed over ccxt REST polling: closed candles only, de-duplicated, gaps back-filled.

A candle is closed once `open_time + timeframe <= exchange_time - grace`. Time is the exchange's:
the feed measures the offset between the local monotonic clock and the exchange's clock at every
poll, so a skewed local clock neither emits a candle early nor waits too long. The feed first plays
the history it is given (the bot's stored candles, re-read on restart), then back-fills from the
exchange everything that closed since (after an outage or a restart), then waits for each new close.
Every candle it fetches is handed to `on_closed` (the runtime appends it to the bot's candle store)
before Backtrader sees it, so a restarted bot re-reads exactly what it decided on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from tradeforge.feeds.candles import Candles
from tradeforge.feeds.download import PAGE_LIMIT, to_candles
from tradeforge.feeds.polled import PolledFeed, Row
from tradeforge.feeds.timeframes import timeframe_seconds
from tradeforge.resilience.errors import Temporary

_MS_NS = 1_000_000
_OVERDUE_RETRY = 1.0  # s between polls while a candle that should have closed is not served yet


def _logger() -> logging.Logger:
    return logging.getLogger("tradeforge.feeds.ccxt")


class PollingSource(Protocol):
    """What the feed needs from the exchange client (tradeforge.resilience.exchange.ExchangeClient)."""

    def fetch_time(self) -> int: ...

    def fetch_ohlcv(
        self, symbol: str, timeframe: str, since: int | None = None, limit: int | None = None
    ) -> list[list[Any]]: ...


class ExchangeClock:
    """The exchange's time, estimated between polls from the local monotonic clock and the last offset."""

    def __init__(self, source: PollingSource, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.source = source
        self.monotonic = monotonic
        self.offset_ms: float | None = None

    def sync(self) -> int:
        """Ask the exchange for its time; returns it (ms) and remembers the offset."""
        before = self.monotonic()
        server = self.source.fetch_time()
        after = self.monotonic()
        self.offset_ms = server - (before + after) / 2 * 1000
        return server

    def now_ms(self) -> float:
        if self.offset_ms is None:
            return self.sync()
        return self.monotonic() * 1000 + self.offset_ms


class LiveFeed(PolledFeed):
    """Backtrader pulls candles one at a time: first `history`, then closed candles from the exchange."""

    ROW_TIME_NS = _MS_NS  # rows carry open times in ms, as ccxt does

    def __init__(
        self,
        source: PollingSource,
        history: Candles,
        *,
        on_closed: Callable[[Candles], object],
        poll_interval: float,
        grace: float,
        stop: threading.Event | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        page_limit: int = PAGE_LIMIT,
    ) -> None:
        super().__init__(history, _rows(history), stop)
        self.source = source
        self.symbol = history.symbol
        self.timeframe = history.timeframe
        self.on_closed = on_closed
        self.poll_interval = poll_interval
        self.grace_ms = grace * 1000
        self.clock = ExchangeClock(source, monotonic)
        self.page_limit = page_limit
        self.step_ms = timeframe_seconds(history.timeframe) * 1000
        self._last_ms: int | None = int(history.timestamp[-1]) // _MS_NS if len(history) else None
        self.emitted_at: dict[int, float] = {}  # open ms of each live candle -> monotonic time Backtrader got it

    # --- fetching ------------------------------------------------------------------------------------

    def backfill(self, warmup: int) -> int:
        """Fetch what closed since the history ends (or the last `warmup` candles when there is none).
        Returns how many candles were added."""
        now = self.clock.sync()
        if self._last_ms is None:
            last_closed = (int(now - self.grace_ms) // self.step_ms - 1) * self.step_ms
            since = last_closed - (warmup - 1) * self.step_ms
        else:
            since = self._last_ms + self.step_ms
        return self._fetch_closed(since, now)

    def _fetch_closed(self, since: int, now: float) -> int:
        """Page through closed candles from `since`, keep the new ones, hand them on; count them."""
        added = 0
        while True:
            rows = self.source.fetch_ohlcv(self.symbol, self.timeframe, since, self.page_limit)
            fresh = [
                r
                for r in rows
                if (self._last_ms is None or int(r[0]) > self._last_ms)
                and int(r[0]) + self.step_ms <= now - self.grace_ms
            ]
            if not fresh:
                return added
            page = to_candles(self.symbol, self.timeframe, fresh, f"{self.symbol} {self.timeframe} live")
            self.on_closed(page)
            self._pending.extend(_rows(page))
            self._last_ms = int(page.timestamp[-1]) // _MS_NS
            added += len(page)
            if len(rows) < self.page_limit:
                return added
            since = self._last_ms + self.step_ms

    def _poll(self) -> None:
        """Wait for the next candle to close on the exchange clock, then fetch it (and any gap before it).
        At most two requests per poll interval: the exchange time, and the candles once one is due."""
        next_open = (
            self._last_ms + self.step_ms
            if self._last_ms is not None
            else int(self.clock.now_ms()) // self.step_ms * self.step_ms
        )
        due = next_open + self.step_ms + self.grace_ms
        delay = (due - self.clock.now_ms()) / 1000
        if delay > 0 and self.stop_event.wait(min(delay, self.poll_interval)):
            return
        try:
            now = self.clock.sync()
            if now >= due and self._fetch_closed(next_open, now):
                return
        except Temporary as exc:
            _logger().warning(
                "%s %s: exchange unreachable, will back-fill when it answers: %s", self.symbol, self.timeframe, exc
            )
            self.stop_event.wait(self.poll_interval)
            return
        # Not closed on the exchange clock yet, or closed but not served yet: ask again shortly.
        self.stop_event.wait(min(self.poll_interval, (due - now) / 1000 if now < due else _OVERDUE_RETRY))

    # --- Backtrader ----------------------------------------------------------------------------------

    def _delivered_row(self, row: Row) -> None:
        self.emitted_at[int(row[0])] = self.clock.monotonic()

    def delivered(self) -> Candles:
        """Every candle Backtrader received, as Candles (for the run's result)."""
        return to_candles(self.symbol, self.timeframe, self._delivered, f"{self.symbol} {self.timeframe} live")


def _rows(candles: Candles) -> list[tuple[float, ...]]:
    """(open ms, o, h, l, c, v) tuples of candles."""
    columns = (candles.timestamp // _MS_NS, candles.open, candles.high, candles.low, candles.close, candles.volume)
    return list(zip(*columns, strict=True))
