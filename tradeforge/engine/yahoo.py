"""Yahoo-backed services for the CLI and the runtime: the candle download and the paper feeds.

Kept apart from engine/exchange.py (the ccxt venues): Yahoo has no markets list, no keys and no orders.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tradeforge.config.schema import BotConfig, YahooConfig
from tradeforge.engine.exchange import Format, export_csv
from tradeforge.feeds.sessions import ExtendedSessions, MarketSessions, calendar_code
from tradeforge.feeds.splits import SplitLog
from tradeforge.feeds.store import CandleStore, StagedHistory
from tradeforge.feeds.yahoo import YahooClient, YahooFeed, YahooReport, check_request, download, store_folder
from tradeforge.resilience.errors import Temporary
from tradeforge.resilience.exchange import RetryPolicy, make_breaker


def yahoo_client(
    config: YahooConfig, session: Any = None, *, sleep: Callable[[float], None] | None = None
) -> YahooClient:
    """yfinance's client (its own browser-like session unless one is given), retried per the config."""
    retry = RetryPolicy(attempts=config.retries, maximum=config.retry_wait_max)
    breaker = make_breaker(config.breaker_failures, config.breaker_reset, "Yahoo Finance")
    if sleep is None:
        return YahooClient(session, retry, timeout=config.timeout, breaker=breaker)
    return YahooClient(session, retry, sleep=sleep, timeout=config.timeout, breaker=breaker)


def download_yahoo(
    config: YahooConfig,
    data_dir: Path,
    symbols: Sequence[str],
    timeframe: str,
    since: dt.datetime,
    until: dt.datetime | None = None,
    *,
    fmt: Format = "parquet",
    progress: Callable[[str, int, int], None] | None = None,
    client: YahooClient | None = None,
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
) -> list[YahooReport]:
    """Fill `<data_dir>/yahoo[-adjust]/` with the missing candles; with fmt csv also export each series."""
    client = client or yahoo_client(config)
    store = CandleStore(data_dir)
    try:
        reports = download(
            client,
            store,
            symbols,
            timeframe,
            since,
            until,
            adjust=config.adjust,
            prepost=config.prepost,
            now=now,
            progress=progress,
        )
    except Temporary as exc:
        raise Temporary(f"{exc}; gave up after {client.retry.attempts} attempts, nothing was stored") from exc
    if fmt == "csv":
        folder = store_folder(config.adjust, config.prepost)
        for report in reports:
            if store.exists(folder, report.symbol, timeframe):
                export_csv(store, folder, report.symbol, timeframe)
    return reports


def yahoo_feeds(
    config: BotConfig,
    stop: threading.Event,
    store: CandleStore,
    say: Callable[[str], None],
    *,
    client: YahooClient | None = None,
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    sleep: Callable[[float], object] | None = None,
) -> list[YahooFeed]:
    """One polling feed per symbol over the bot's own candle history, each back-filled before it starts."""
    settings, data = config.yahoo, config.data
    now = clock()
    where = ("data.symbols", "data.timeframe", "data.start", "yahoo.adjust", "yahoo.prepost")
    check_request(data.symbols, data.timeframe, now, now, settings.adjust, where=where, prepost=settings.prepost)
    hours = ExtendedSessions if settings.prepost else MarketSessions
    sessions = {s: hours(calendar_code(s, settings.calendar)) for s in data.symbols}
    client = client or yahoo_client(settings)
    folder = store_folder(settings.adjust, settings.prepost)
    # Back-filled candles are kept until every symbol's back-fill succeeded: an unknown symbol or an
    # unreachable Yahoo stops the start with the bot's history as it was.
    staged = StagedHistory(store, folder)
    feeds = []
    for symbol in data.symbols:
        history = staged.history(symbol, data.timeframe)
        feed = YahooFeed(
            client,
            history,
            sessions=sessions[symbol],
            adjust=settings.adjust,
            prepost=settings.prepost,
            on_closed=staged.keep,
            splits=SplitLog.beside(store, folder, symbol, data.timeframe),
            poll_interval=settings.poll_interval,
            grace=settings.grace,
            stop=stop,
            clock=clock,
            sleep=sleep,
        )
        added = feed.backfill(settings.warmup_candles)
        say(
            f"{symbol} {data.timeframe}: {len(history)} stored candles, {added} back-filled from Yahoo Finance "
            f"({sessions[symbol].code} sessions{' with pre/post-market hours' if settings.prepost else ''}, "
            f"adjust: {settings.adjust})"
        )
        feeds.append(feed)
    staged.commit()
    return feeds
