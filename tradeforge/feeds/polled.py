"""What the live feeds (exchange REST polling, Yahoo) share with Backtrader: candles queued as they
close are handed over one at a time, in order, until a stop is requested."""

from __future__ import annotations

import threading
from collections import deque

import numpy as np

from tradeforge.feeds.arrays import ArrayFeed, to_bt_dates
from tradeforge.feeds.candles import Candles

Row = tuple[float, ...]  # (open time, open, high, low, close, volume)


class PolledFeed(ArrayFeed):
    """Base of the live feeds: a subclass queues closed candles in `_pending` from `_poll`."""

    ROW_TIME_NS = 1  # a row's open time times this is nanoseconds

    def __init__(self, history: Candles, rows: list[Row], stop: threading.Event | None) -> None:
        super().__init__(history)
        self.stop_event = stop or threading.Event()
        self._pending: deque[Row] = deque(rows)
        self._delivered: list[Row] = []

    def queued_open_times(self) -> list[int]:
        """Open times (ns) of the candles queued for Backtrader and not delivered yet, oldest first."""
        return [int(row[0]) * self.ROW_TIME_NS for row in self._pending]

    def preload(self) -> None:  # pragma: no cover - Cerebro never preloads a live run
        raise RuntimeError(f"a {type(self).__name__} delivers candles one at a time; run Cerebro with preload=False")

    def _poll(self) -> None:
        """Wait for and queue the next closed candle(s); return early when a stop is requested."""
        raise NotImplementedError

    def _delivered_row(self, row: Row) -> None:
        """Hook: Backtrader has just received `row`."""

    def _load(self) -> bool:
        while not self._pending:
            if self.stop_event.is_set():
                return False
            self._poll()
        if self.stop_event.is_set():
            return False  # graceful stop: the previous candle was fully processed
        row = self._pending.popleft()
        lines = self.lines
        lines.datetime[0] = float(to_bt_dates(np.array([int(row[0]) * self.ROW_TIME_NS], dtype=np.int64))[0])
        lines.open[0], lines.high[0], lines.low[0], lines.close[0], lines.volume[0] = (float(v) for v in row[1:6])
        lines.openinterest[0] = 0.0
        self._delivered.append(row)
        self._delivered_row(row)
        return True
