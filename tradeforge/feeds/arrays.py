"""A Backtrader data feed that hands Backtrader whole NumPy arrays instead of row-by-row lookups.

`PandasData` pays a pandas `.iloc` call per field per bar while preloading, and Backtrader's generic
tick bookkeeping loops over line names with getattr/setattr on every bar. This feed bulk-copies the
arrays into the line buffers and replaces the per-bar bookkeeping with direct attribute access. What
Backtrader sees (line values, lengths, tick prices) is identical, so results are identical.
"""

from __future__ import annotations

import datetime as dt
from array import array
from typing import Any

import backtrader as bt
import numpy as np

from tradeforge.feeds.candles import Candles
from tradeforge.feeds.timeframes import timeframe_seconds

_NS_PER_DAY = 86_400_000_000_000
_UNIX_EPOCH_ORDINAL = 719_163  # date(1970, 1, 1).toordinal()


def to_bt_dates(timestamps_ns: np.ndarray) -> np.ndarray:
    """Backtrader's float day numbers, computed exactly as `bt.date2num` does, for a whole array."""
    ns = timestamps_ns.astype(np.int64)
    days, rest = np.divmod(ns, _NS_PER_DAY)
    micros = rest // 1000
    hour, micros = np.divmod(micros, 3_600_000_000)
    minute, micros = np.divmod(micros, 60_000_000)
    second, micros = np.divmod(micros, 1_000_000)
    base = (days + _UNIX_EPOCH_ORDINAL).astype(np.float64)
    fraction = hour / 24.0 + minute / 1440.0 + second / 86400.0 + micros / 86400000000.0
    return base + fraction


def from_bt_dates(numbers: np.ndarray) -> np.ndarray:
    """Int64 UTC nanoseconds for Backtrader day numbers, rounded to the millisecond."""
    millis = np.rint((np.asarray(numbers, dtype=np.float64) - _UNIX_EPOCH_ORDINAL) * 86_400_000.0)
    return millis.astype(np.int64) * 1_000_000


def bt_timeframe(timeframe: str) -> tuple[int, int]:
    """(Backtrader TimeFrame, compression) for a timeframe name such as '15m' or '1d'."""
    seconds = timeframe_seconds(timeframe)
    if seconds % 604_800 == 0:
        return bt.TimeFrame.Weeks, seconds // 604_800
    if seconds % 86_400 == 0:
        return bt.TimeFrame.Days, seconds // 86_400
    return bt.TimeFrame.Minutes, seconds // 60


_FIELDS = ("open", "high", "low", "close", "volume")


class ArrayFeed(bt.feeds.DataBase):
    """Candles from a `Candles` object; timestamps reach Backtrader as naive UTC open times."""

    def __init__(self, candles: Candles) -> None:
        super().__init__()
        # Backtrader copies these params into _timeframe/_compression/_name right after __init__.
        self.p.timeframe, self.p.compression = bt_timeframe(candles.timeframe)
        self.p.name = self.p.name or candles.symbol
        self.candles = candles
        self._columns = {name: getattr(candles, name) for name in _FIELDS}
        self._columns["datetime"] = to_bt_dates(candles.timestamp)
        self._columns["openinterest"] = np.zeros(len(candles))
        self._row = -1

    def start(self) -> None:
        super().start()
        self._row = -1

    def preload(self) -> None:
        """Copy every column into its line buffer in one call instead of one bar at a time."""
        lines = self.lines
        for name, values in self._columns.items():
            buffer = getattr(lines, name).array
            if isinstance(buffer, array):
                buffer.frombytes(np.ascontiguousarray(values, dtype=np.float64).tobytes())
            else:  # a bounded (exactbars) buffer: fall back to the generic path
                return super().preload()
        self._row = len(self.candles) - 1
        self._last()
        self.home()
        self._line_buffers = tuple(lines)
        self._tick_arrays = tuple(
            getattr(lines, name).array for name in ("open", "high", "low", "close", "volume", "openinterest")
        )

    def _load(self) -> bool:
        """Row-by-row loading for non-preloaded runs (exactbars, live-style replays)."""
        self._row += 1
        if self._row >= len(self.candles):
            return False
        lines = self.lines
        for name, values in self._columns.items():
            getattr(lines, name)[0] = float(values[self._row])
        return True

    # --- per-bar bookkeeping, specialised for a plain OHLCV feed ------------------------------

    def _tick_nullify(self) -> None:
        self.tick_open = self.tick_high = self.tick_low = self.tick_close = None
        self.tick_volume = self.tick_openinterest = self.tick_last = None

    def _tick_fill(self, force: bool = False) -> None:
        if force or self.tick_close is None:
            lines = self.lines
            self.tick_open = lines.open[0]
            self.tick_high = lines.high[0]
            self.tick_low = lines.low[0]
            self.tick_close = self.tick_last = lines.close[0]
            self.tick_volume = lines.volume[0]
            self.tick_openinterest = lines.openinterest[0]

    def advance(self, size: int = 1, datamaster: Any = None, ticks: bool = True) -> None:
        buffers = getattr(self, "_line_buffers", None)
        if buffers is None or datamaster is not None or size != 1 or not ticks:
            return super().advance(size=size, datamaster=datamaster, ticks=ticks)
        for buffer in buffers:  # LineBuffer.advance without the method-call overhead
            buffer._idx += 1
            buffer.lencount += 1
        self._tick_nullify()
        if buffers[0].lencount < buffers[0].buflen():  # Backtrader leaves the last bar's ticks empty
            array_index = buffers[0]._idx
            columns = self._tick_arrays
            self.tick_open = columns[0][array_index]
            self.tick_high = columns[1][array_index]
            self.tick_low = columns[2][array_index]
            self.tick_close = self.tick_last = columns[3][array_index]
            self.tick_volume = columns[4][array_index]
            self.tick_openinterest = columns[5][array_index]

    def advance_peek(self) -> float:
        buffer = self.lines.datetime
        if buffer.lencount < buffer.buflen():
            return buffer.array[buffer._idx + 1]
        return float("inf")


def bar_datetime(number: float) -> dt.datetime:
    """A Backtrader day number as a timezone-aware UTC datetime."""
    return bt.num2date(number).replace(tzinfo=dt.UTC)
