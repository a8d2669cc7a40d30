"""A live Backtrader feed of IBKR bars: historical back-fill, then IB's keep-up-to-date bars, closed
bars only, de-duplicated, gaps back-filled after a reconnect.

IB keeps the last bar of a keep-up-to-date request moving until the next one starts, so a bar is
closed once IB has sent a newer one, or `grace` seconds after its close when IB sends none (a quiet
market). After a lost connection (TWS's nightly restart) or IB's "data lost" notice the subscription
is dead: the feed asks again from its last bar, which back-fills the gap. Every bar it keeps is
handed to `on_closed` (the bot's candle store) before Backtrader sees it.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import threading
from collections.abc import Callable
from typing import Any

from tradeforge.feeds.candles import Candles
from tradeforge.feeds.download import to_candles
from tradeforge.feeds.polled import PolledFeed, Row
from tradeforge.feeds.timeframes import timeframe_seconds
from tradeforge.resilience.errors import Temporary
from tradeforge.resilience.ibkr import IbConnection, ResolvedContract

_MS_NS = 1_000_000
_DAY_S = 86_400

BAR_SIZES = {
    "1m": "1 min",
    "3m": "3 mins",
    "5m": "5 mins",
    "15m": "15 mins",
    "30m": "30 mins",
    "1h": "1 hour",
    "2h": "2 hours",
    "4h": "4 hours",
    "8h": "8 hours",
    "1d": "1 day",
}
"""tradeforge timeframe -> IB bar size (IB has no 6h or 12h bars; its weeks do not start on our epoch)."""


def _logger() -> logging.Logger:
    return logging.getLogger("tradeforge.feeds.ibkr")


def bar_open_ms(date: dt.date | dt.datetime) -> int:
    """A bar's open time in ms since the epoch, UTC. Daily bars come as the exchange's date: stamped at
    that date's midnight UTC, so the day keeps its own date."""
    if isinstance(date, dt.datetime):
        moment = date if date.tzinfo is not None else date.replace(tzinfo=dt.UTC)
    else:
        moment = dt.datetime(date.year, date.month, date.day, tzinfo=dt.UTC)
    return int(moment.timestamp() * 1000)


def duration_for(seconds: float) -> str:
    """IB's duration string covering at least `seconds` of calendar time ('S' up to a day, else days/years)."""
    seconds = max(60, math.ceil(seconds))
    if seconds <= _DAY_S:
        return f"{seconds} S"
    days = math.ceil(seconds / _DAY_S)
    return f"{days} D" if days <= 365 else f"{math.ceil(days / 365)} Y"


class IbkrFeed(PolledFeed):
    """Backtrader pulls bars one at a time: first `history`, then closed bars from IB."""

    ROW_TIME_NS = _MS_NS

    def __init__(
        self,
        connection: IbConnection,
        resolved: ResolvedContract,
        history: Candles,
        *,
        what_to_show: str,
        on_closed: Callable[[Candles], object],
        poll_interval: float,
        grace: float,
        clock: Callable[[], dt.datetime],
        stop: threading.Event | None = None,
        calendar_factor: float = 3.0,
    ) -> None:
        super().__init__(history, _rows(history), stop)
        self.connection = connection
        self.resolved = resolved
        self.symbol = history.symbol
        self.timeframe = history.timeframe
        self.bar_size = BAR_SIZES[history.timeframe]
        self.what_to_show = what_to_show
        self.on_closed = on_closed
        self.poll_interval = poll_interval
        self.grace_ms = grace * 1000
        self.clock = clock
        self.step_ms = timeframe_seconds(history.timeframe) * 1000
        # Markets close (nights, weekends): ask for this many times the calendar time the bars span.
        self.calendar_factor = calendar_factor
        self._last_ms: int | None = int(history.timestamp[-1]) // _MS_NS if len(history) else None
        self._bars: Any = None  # the keep-up-to-date BarDataList
        self._generation = -1
        self._warmup: int | None = None

    # --- fetching ------------------------------------------------------------------------------------

    def backfill(self, warmup: int) -> int:
        """Subscribe, asking for what closed since the history ends (or enough for the last `warmup`
        bars when there is none). Returns how many bars were added."""
        self._warmup = warmup if self._last_ms is None else None
        return self._subscribe()

    def _subscribe(self) -> int:
        now_ms = self._now_ms()
        if self._last_ms is None:
            span = (self._warmup or 1) * self.step_ms / 1000 * self.calendar_factor
        else:
            span = (now_ms - self._last_ms) / 1000 + self.step_ms / 1000
        if self._bars is not None:
            self.connection.cancel_historical(self._bars)
            self._bars = None
        generation = self.connection.generation
        self._bars = self.connection.historical(
            self.resolved, duration_for(span), self.bar_size, self.what_to_show, keep_up_to_date=True
        )
        self._generation = generation
        return self._take_closed()

    def _now_ms(self) -> float:
        return self.clock().timestamp() * 1000

    def _take_closed(self) -> int:
        """Queue the closed bars IB has sent since the last one kept; count them."""
        bars = list(self._bars or [])
        now_ms = self._now_ms()
        rows: list[list[float]] = []
        for index, bar in enumerate(bars):
            open_ms = bar_open_ms(bar.date)
            if self._last_ms is not None and open_ms <= self._last_ms:
                continue  # already delivered (IB repeats the overlap after a reconnect)
            newer = index + 1 < len(bars) and bar_open_ms(bars[index + 1].date) > open_ms
            if not newer and open_ms + self.step_ms + self.grace_ms > now_ms:
                break  # still forming
            volume = bar.volume if bar.volume and bar.volume > 0 else 0.0  # IB sends -1 for FX midpoints
            rows.append([open_ms, bar.open, bar.high, bar.low, bar.close, volume])
        if self._warmup is not None:
            rows, self._warmup = rows[-self._warmup :], None
        if not rows:
            return 0
        page = to_candles(self.symbol, self.timeframe, rows, f"{self.symbol} {self.timeframe} ibkr")
        self.on_closed(page)
        self._pending.extend(_rows(page))
        self._last_ms = int(rows[-1][0])
        return len(rows)

    def _poll(self) -> None:
        """Let ib_async apply IB's updates for a moment, then queue what closed. After a reconnect (or
        IB's "data lost" notice) the subscription is renewed from the last bar, back-filling the gap."""
        try:
            self.connection.ensure_connected()
            stale = self._bars is None or self._generation != self.connection.generation
            if stale and self._subscribe():
                return
            self.connection.sleep(self.poll_interval)
            self._take_closed()
        except Temporary as exc:
            _logger().warning(
                "%s %s: IB unavailable, will back-fill when it answers: %s", self.symbol, self.timeframe, exc
            )
            self._bars = None
            self.stop_event.wait(self.poll_interval)

    # --- Backtrader ----------------------------------------------------------------------------------

    def delivered(self) -> Candles:
        """Every bar Backtrader received, as Candles (for the run's result)."""
        return to_candles(self.symbol, self.timeframe, self._delivered, f"{self.symbol} {self.timeframe} ibkr")


def _rows(candles: Candles) -> list[Row]:
    """(open ms, o, h, l, c, v) tuples of candles."""
    columns = (candles.timestamp // _MS_NS, candles.open, candles.high, candles.low, candles.close, candles.volume)
    return list(zip(*columns, strict=True))
