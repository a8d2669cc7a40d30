"""The feeds a running bot reads, built from its config: a replay of stored candles, or live
candles from an exchange. Keeps run_bot free of per-source details."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import backtrader as bt
import numpy as np

from tradeforge.config.schema import BotConfig
from tradeforge.engine.data import load_candles
from tradeforge.engine.restart import RestartPoint
from tradeforge.feeds.candles import Candles, to_ns
from tradeforge.feeds.replay import ReplayFeed
from tradeforge.feeds.store import CandleStore

if TYPE_CHECKING:  # ccxt loads only for a bot on an exchange feed
    from tradeforge.feeds.ccxt import LiveFeed
    from tradeforge.resilience.exchange import ExchangeClient


@dataclass
class BotFeeds:
    """Backtrader feeds for a bot, the candles they delivered, and the warm-up that must not trade."""

    feeds: list[bt.feeds.DataBase]
    delivered: Callable[[], list[Candles]]
    warmup: int = 0
    client: ExchangeClient | None = field(default=None, repr=False)
    close: Callable[[], None] = field(default=lambda: None, repr=False)  # ends the feeds' connections

    def strategy(self, cls: type, no_entries: Sequence[tuple[int, int]] = ()) -> type:
        """The strategy class, blocked from entering on warm-up candles and on candles whose open time
        (ns) falls in one of the `no_entries` ranges: a live feed's back-filled history is for
        indicators, not for trading in the past."""
        if not self.warmup and not no_entries:
            return cls
        return _entries_limited(cls, self.warmup, tuple(no_entries))


def _entries_limited(cls: type, warmup: int, no_entries: tuple[tuple[int, int], ...]) -> type:
    class EntriesLimited(cls):
        def _enter(self, book: Any, side: Any, index: int) -> None:
            if index < warmup:
                return
            if no_entries:
                now = to_ns(bt.num2date(book.data.datetime[0]).replace(tzinfo=dt.UTC))
                if any(first <= now <= last for first, last in no_entries):
                    return
            super()._enter(book, side, index)

    EntriesLimited.__name__ = EntriesLimited.__qualname__ = cls.__name__
    return EntriesLimited


def live_store(config: BotConfig) -> CandleStore:
    """The bot's own candle history (what it decided on), re-read from its first candle on restart.
    Kept apart from `download-data`'s store so that a download never changes what a restart replays."""
    return CandleStore(config.data_dir / "live" / config.name)


def checked_client(config: BotConfig) -> ExchangeClient | None:
    """For `data.source: binance`, the exchange client, once the exchange has confirmed the symbols and
    the timeframe (a ConfigError naming data.symbols / data.timeframe otherwise): called before a bot
    writes anything, then handed to build_feeds. None for other sources (ccxt is not even imported)."""
    if config.data.source != "binance":
        return None
    from tradeforge.engine.exchange import exchange_client

    return check_symbols(exchange_client(config.exchange), config)


def check_symbols(client: ExchangeClient, config: BotConfig) -> ExchangeClient:
    """`client`, once its exchange lists every symbol of `data.symbols` and the timeframe."""
    from tradeforge.feeds.download import check_request

    check_request(
        client.load_markets(),
        dict(client.exchange.timeframes),
        config.data.symbols,
        config.data.timeframe,
        where=("data.symbols", "data.timeframe"),
    )
    return client


def build_feeds(
    config: BotConfig,
    *,
    stop: threading.Event,
    resume_after_ns: int | None,
    say: Callable[[str], None] = print,
    client: ExchangeClient | None = None,
    yahoo: Mapping[str, Any] | None = None,
    ibkr: Mapping[str, Any] | None = None,
    restart: RestartPoint | None = None,
    replay_candles: list[Candles] | None = None,
) -> BotFeeds:
    """Replay feeds for `data.source: replay` (from what a `restart` snapshot needs), live exchange
    feeds for `data.source: binance`, Yahoo's delayed candles for `data.source: yahoo` (`yahoo` passes
    a client, clock and sleep to its feeds), IB's bars for `data.source: ibkr` (`ibkr` passes an IB
    factory and a clock). `replay_candles`: a replay's candles when the caller has read them already."""
    if config.data.source == "binance":
        return _live_feeds(config, stop, say, client)
    if config.data.source == "yahoo":
        from tradeforge.engine.yahoo import yahoo_feeds

        polled = yahoo_feeds(config, stop, live_store(config), say, **(yahoo or {}))
        return BotFeeds(list(polled), lambda: [f.delivered() for f in polled], config.yahoo.warmup_candles)
    if config.data.source == "ibkr":
        from tradeforge.engine.ibkr import disconnect, ibkr_feeds

        bars = ibkr_feeds(config, stop, live_store(config), say, **(ibkr or {}))
        return BotFeeds(
            list(bars),
            lambda: [f.delivered() for f in bars],
            config.ibkr.warmup_candles,
            close=lambda: disconnect(bars),
        )
    candles = replay_candles if replay_candles is not None else load_candles(config)
    if restart is not None:
        candles = restart.first_rows(candles)
    speed = None if config.data.speed == "max" else float(config.data.speed)
    feeds: list[bt.feeds.DataBase] = [
        ReplayFeed(series, speed=speed, stop=stop, catch_up_until_ns=resume_after_ns) for series in candles
    ]
    return BotFeeds(feeds, lambda: candles)


def _live_feeds(
    config: BotConfig, stop: threading.Event, say: Callable[[str], None], client: ExchangeClient | None
) -> BotFeeds:
    from tradeforge.engine.exchange import store_folder
    from tradeforge.feeds.ccxt import LiveFeed

    exchange = config.exchange
    client = client or checked_client(config)
    assert client is not None  # data.source is binance here
    store, folder = live_store(config), store_folder(exchange)
    feeds: list[LiveFeed] = []
    for symbol in config.data.symbols:
        if store.exists(folder, symbol, config.data.timeframe):
            history = store.load(folder, symbol, config.data.timeframe)
        else:
            empty = np.empty(0)
            history = Candles(symbol, config.data.timeframe, empty.astype(np.int64), empty, empty, empty, empty, empty)
        feed = LiveFeed(
            client,
            history,
            on_closed=lambda page: store.save(folder, page),
            poll_interval=exchange.poll_interval,
            grace=exchange.grace,
            stop=stop,
        )
        added = feed.backfill(exchange.warmup_candles)
        say(
            f"{symbol} {config.data.timeframe}: {len(history)} stored candles, {added} back-filled from "
            f"{exchange.name}{' testnet' if exchange.sandbox else ''}"
        )
        feeds.append(feed)
    return BotFeeds(list(feeds), lambda: [f.delivered() for f in feeds], exchange.warmup_candles, client)
