"""Fill the candle store from an exchange: only the missing ranges, page by page, resumable.

Each page is merged into the store as soon as it arrives (the store writes atomically), so an
interrupted download keeps everything fetched so far and the next run starts where it stopped.
Only closed candles are stored. Symbols and the timeframe are checked against the exchange before
anything is fetched, so bad input leaves the store untouched.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from tradeforge.feeds.candles import Candles, Gap, find_gaps, to_ns
from tradeforge.feeds.store import CandleStore
from tradeforge.feeds.timeframes import TIMEFRAMES, timeframe_seconds
from tradeforge.resilience.errors import ConfigError, DataError, Problem

_MS = 1_000_000  # ns per ms
PAGE_LIMIT = 1000  # Binance's largest klines page


class CandleSource(Protocol):
    """What the download needs from an exchange client (tradeforge.resilience.exchange.ExchangeClient)."""

    def load_markets(self) -> dict[str, Any]: ...

    def fetch_time(self) -> int: ...

    def fetch_ohlcv(
        self, symbol: str, timeframe: str, since: int | None = None, limit: int | None = None
    ) -> list[list[Any]]: ...


Progress = Callable[[str, int, int], None]
"""(symbol, candles done, candles expected) after every page."""


@dataclass
class DownloadReport:
    """What one symbol's download did, and the gaps left in its stored range."""

    symbol: str
    added: int = 0
    pages: int = 0
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    rows: int = 0
    gaps: list[Gap] = field(default_factory=list)


def check_request(
    markets: dict[str, Any],
    exchange_timeframes: dict[str, Any],
    symbols: Sequence[str],
    timeframe: str,
    where: tuple[str, str] = ("--symbols", "--timeframe"),
) -> None:
    """Unknown symbols or timeframes, all reported at once, before anything is fetched. `where` names
    the (symbols, timeframe) settings in the messages: CLI options or config paths."""
    problems = []
    if timeframe not in TIMEFRAMES or timeframe not in exchange_timeframes:
        offered = [t for t in TIMEFRAMES if t in exchange_timeframes]
        problems.append(
            Problem(where[1], f"not a timeframe of this exchange; use one of {', '.join(offered)}", timeframe)
        )
    for symbol in symbols:
        if symbol not in markets:
            near = [s for s in markets if s.split("/")[0] == symbol.split("/")[0]][:5]
            hint = f"; did you mean {', '.join(near)}?" if near else ""
            problems.append(Problem(where[0], f"the exchange does not list {symbol}{hint}", symbol))
    if problems:
        raise ConfigError(problems)


def missing_ranges(stored: np.ndarray, first_ns: int, last_ns: int, step_ns: int) -> list[tuple[int, int]]:
    """[start, end] open-time ranges (inclusive, ns) within [first, last] that the stored stamps lack."""
    if first_ns > last_ns:
        return []
    inside = stored[(stored >= first_ns) & (stored <= last_ns)]
    if not len(inside):
        return [(first_ns, last_ns)]
    ranges = []
    if inside[0] > first_ns:
        ranges.append((first_ns, int(inside[0]) - step_ns))
    jumps = np.flatnonzero(np.diff(inside) > step_ns)
    ranges += [(int(inside[i]) + step_ns, int(inside[i + 1]) - step_ns) for i in jumps]
    if inside[-1] < last_ns:
        ranges.append((int(inside[-1]) + step_ns, last_ns))
    return ranges


def to_candles(symbol: str, timeframe: str, rows: Sequence[Sequence[Any]], source: str) -> Candles:
    """ccxt OHLCV rows ([ms, o, h, l, c, v]) as Candles."""
    table = np.array([[float(v) for v in r[1:6]] for r in rows], dtype=np.float64).reshape(-1, 5)
    stamps = np.array([int(r[0]) for r in rows], dtype=np.int64) * _MS
    opens, highs, lows, closes, volumes = table.T
    return Candles(symbol, timeframe, stamps, opens, highs, lows, closes, volumes, source=source)


def download(
    client: CandleSource,
    store: CandleStore,
    folder: str,
    symbols: Sequence[str],
    timeframe: str,
    since: dt.datetime,
    until: dt.datetime | None = None,
    *,
    exchange_timeframes: dict[str, Any],
    progress: Progress | None = None,
    page_limit: int = PAGE_LIMIT,
) -> list[DownloadReport]:
    """Fetch every closed candle of [since, until] the store lacks, for each symbol; report gaps left."""
    check_request(client.load_markets(), exchange_timeframes, symbols, timeframe)
    step_ns = timeframe_seconds(timeframe) * 1_000_000_000
    now_ns = client.fetch_time() * _MS
    first_ns = -(-to_ns(since) // step_ns) * step_ns  # the first candle opening at or after `since`
    last_closed_ns = (now_ns // step_ns - 1) * step_ns
    last_ns = min(last_closed_ns, to_ns(until) // step_ns * step_ns) if until else last_closed_ns
    reports = []
    for symbol in symbols:
        report = DownloadReport(symbol)
        stored = _stored_stamps(store, folder, symbol, timeframe)
        ranges = missing_ranges(stored, first_ns, last_ns, step_ns)
        expected = sum((end - start) // step_ns + 1 for start, end in ranges)
        done = 0
        if progress:
            progress(symbol, 0, expected)
        for start, end in ranges:
            cursor = start
            while cursor <= end:
                rows = client.fetch_ohlcv(symbol, timeframe, cursor // _MS, page_limit)
                report.pages += 1
                rows = [r for r in rows if cursor <= int(r[0]) * _MS <= end]
                if not rows:
                    break  # the exchange has nothing more in this range (an outage, or before listing)
                page = to_candles(symbol, timeframe, rows, f"{folder} {symbol} {timeframe}")
                store.save(folder, page)
                report.added += len(page)
                done += min(len(page), expected - done)
                cursor = int(page.timestamp[-1]) + step_ns
                if progress:
                    progress(symbol, done, expected)
        if progress:
            progress(symbol, expected, expected)
        _describe(report, store, folder, symbol, timeframe, first_ns, last_ns)
        reports.append(report)
    return reports


def _stored_stamps(store: CandleStore, folder: str, symbol: str, timeframe: str) -> np.ndarray:
    if not store.exists(folder, symbol, timeframe):
        return np.empty(0, dtype=np.int64)
    return store.load(folder, symbol, timeframe).timestamp


def _describe(
    report: DownloadReport, store: CandleStore, folder: str, symbol: str, timeframe: str, first_ns: int, last_ns: int
) -> None:
    """Continuity of the stored range: every stamp on the timeframe grid, and the gaps left."""
    if not store.exists(folder, symbol, timeframe):
        return
    candles = store.load(folder, symbol, timeframe)
    step_ns = timeframe_seconds(timeframe) * 1_000_000_000
    off_grid = np.flatnonzero(candles.timestamp % step_ns)
    if len(off_grid):
        raise DataError(
            f"{store.path_for(folder, symbol, timeframe)}: candle {candles.timestamp[off_grid[0]]} is not on the "
            f"{timeframe} grid; the file mixes timeframes"
        )
    window = candles.between(_dt(first_ns), _dt(last_ns))
    report.rows = len(window)
    if len(window):
        report.start, report.end = window.start, window.end
        report.gaps = find_gaps(window)


def _dt(ns: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ns / 1e9, dt.UTC)
