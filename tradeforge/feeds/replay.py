"""Stored candles played back as if live: one closed candle at a time, paced by a replay clock.

A candle is delivered only once it has closed on the replay clock (its open time plus the
timeframe), exactly like a live feed delivers closed candles. `speed=None` plays as fast as the
strategy consumes candles; `speed=60` makes an hour of market time pass in a minute. Candles up to
`catch_up_until` are always delivered at once: they are history a restarted bot re-reads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from tradeforge.feeds.arrays import ArrayFeed
from tradeforge.feeds.candles import Candles
from tradeforge.feeds.timeframes import timeframe_seconds

_NS = 1_000_000_000


class ReplayFeed(ArrayFeed):
    """An `ArrayFeed` that is never preloaded: Backtrader pulls candles one by one, as from a venue."""

    def __init__(
        self,
        candles: Candles,
        *,
        speed: float | None = None,
        stop: threading.Event | None = None,
        catch_up_until_ns: int | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(candles)
        self.speed = speed
        self.stop_event = stop or threading.Event()
        self.catch_up_until_ns = catch_up_until_ns
        self._monotonic = monotonic
        self._closes_ns = candles.timestamp + timeframe_seconds(candles.timeframe) * _NS
        self._anchor: tuple[float, int] | None = None  # (wall clock, replay time) when pacing began

    def preload(self) -> None:  # pragma: no cover - Cerebro never preloads a live-style run
        raise RuntimeError("a ReplayFeed delivers candles one at a time; run Cerebro with preload=False")

    def _load(self) -> bool:
        if self.stop_event.is_set():
            return False  # graceful stop: the previous candle was fully processed
        row = self._row + 1
        if row >= len(self.candles):
            return False
        if not self._wait_until_closed(row):
            return False
        return super()._load()

    def _wait_until_closed(self, row: int) -> bool:
        close_ns = int(self._closes_ns[row])
        if self.speed is None or (
            self.catch_up_until_ns is not None and self.candles.timestamp[row] <= self.catch_up_until_ns
        ):
            return True
        if self._anchor is None:
            self._anchor = (self._monotonic(), close_ns)
            return True
        wall, replay = self._anchor
        due = wall + (close_ns - replay) / _NS / self.speed
        delay = due - self._monotonic()
        if delay > 0:
            return not self.stop_event.wait(delay)
        return True
