"""IBKR-backed services for the runtime: the connection to TWS/IB Gateway and the paper bot's live bars.

Kept apart from engine/exchange.py (ccxt) and engine/yahoo.py: IB is reached through a logged-in TWS or
Gateway, and its contracts are described in config rather than listed by the venue.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Sequence

from tradeforge.brokers.ibkr import IbkrVenue
from tradeforge.config.schema import BotConfig
from tradeforge.feeds.ibkr import BAR_SIZES, IbkrFeed
from tradeforge.feeds.store import CandleStore, StagedHistory
from tradeforge.persistence.repository import Repository
from tradeforge.resilience.errors import ConfigError, Fatal, Problem
from tradeforge.resilience.ibkr import IbConnection, IbFactory, ResolvedContract

STORE_FOLDER = "ibkr"


def default_factory() -> object:
    """ib_async's IB client (imported here: it sets up an event loop policy on import)."""
    from ib_async import IB

    return IB()


def connect(config: BotConfig, factory: IbFactory | None = None) -> IbConnection:
    """A connected IbConnection; an unreachable TWS/Gateway is a clear error naming host:port."""
    connection = IbConnection(config.ibkr, factory or default_factory)
    connection.connect()
    return connection


def resolve_contracts(connection: IbConnection, symbols: list[str]) -> dict[str, ResolvedContract]:
    """Every data.symbols entry as exactly one IB contract; all problems reported together."""
    resolved: dict[str, ResolvedContract] = {}
    problems: list[Problem] = []
    for symbol in symbols:
        try:
            resolved[symbol] = connection.resolve(symbol)
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    return resolved


def check_timeframe(timeframe: str) -> str:
    if timeframe not in BAR_SIZES:
        raise ConfigError(
            [Problem("data.timeframe", f"IB has no bars of this length; use one of {', '.join(BAR_SIZES)}", timeframe)]
        )
    return BAR_SIZES[timeframe]


def ibkr_feeds(
    config: BotConfig,
    stop: threading.Event,
    store: CandleStore,
    say: Callable[[str], None],
    *,
    factory: IbFactory | None = None,
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
) -> list[IbkrFeed]:
    """One feed per symbol over the bot's own bar history, each back-filled before it starts. Nothing is
    stored until every symbol's back-fill succeeded (an unknown contract or a pacing violation leaves
    the bot's history as it was)."""
    check_timeframe(config.data.timeframe)
    connection = connect(config, factory)
    try:
        return _backfilled(config, connection, stop, store, say, clock)
    except BaseException:
        connection.disconnect()  # nothing started: free the client id
        raise


def _backfilled(
    config: BotConfig,
    connection: IbConnection,
    stop: threading.Event,
    store: CandleStore,
    say: Callable[[str], None],
    clock: Callable[[], dt.datetime],
) -> list[IbkrFeed]:
    settings, data = config.ibkr, config.data
    contracts = resolve_contracts(connection, data.symbols)
    staged = StagedHistory(store, STORE_FOLDER)
    feeds = []
    for symbol in data.symbols:
        history = staged.history(symbol, data.timeframe)
        sec_type = settings.contract_for(symbol).sec_type
        feed = IbkrFeed(
            connection,
            contracts[symbol],
            history,
            what_to_show=settings.what_to_show or ("MIDPOINT" if sec_type == "CASH" else "TRADES"),
            on_closed=staged.keep,
            poll_interval=settings.poll_interval,
            grace=settings.grace,
            clock=clock,
            stop=stop,
        )
        added = feed.backfill(settings.warmup_candles)
        say(
            f"{symbol} {data.timeframe}: {len(history)} stored bars, {added} back-filled from IB at "
            f"{connection.address} ({contracts[symbol].contract.secType} {contracts[symbol].contract.exchange})"
        )
        feeds.append(feed)
    staged.commit()
    return feeds


def disconnect(feeds: list[IbkrFeed]) -> None:
    """End the run's API connection (shared by its feeds)."""
    for connection in {id(f.connection): f.connection for f in feeds}.values():
        connection.disconnect()


def venue_over(feeds: Sequence[object], repository: Repository) -> IbkrVenue:
    """The live broker's IB venue on the feeds' own API connection and contracts: one client id per
    run, and every IB call on the thread that runs ib_async's event loop (the one Backtrader runs on)."""
    ib_feeds = [f for f in feeds if isinstance(f, IbkrFeed)]
    if not ib_feeds:
        raise Fatal("mode: live on IBKR needs the IB feeds (data.source: ibkr)")
    return IbkrVenue(ib_feeds[0].connection, repository, {f.symbol: f.resolved for f in ib_feeds})


def account_of(connection: IbConnection) -> str:
    """The account orders go to: ibkr.account, or the login's only one."""
    if connection.config.account:
        return connection.config.account
    accounts = list(connection.ib.managedAccounts())
    if len(accounts) != 1:
        raise ConfigError(
            [
                Problem(
                    "ibkr.account",
                    f"the login at {connection.address} manages {len(accounts)} accounts ({', '.join(accounts)}): "
                    "name the one to trade",
                )
            ]
        )
    return str(accounts[0])
