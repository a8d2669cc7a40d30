"""`mode: live`: what run_bot needs beyond a paper bot. Refuse a config that is not explicitly
confirmed or has no keys, print the LIVE banner, fix the bot's starting capital once, build the
live broker over the venue (Binance through ccxt, IBKR through TWS/Gateway), and reconcile with it
(DESIGN protocol step 3) after the history re-read and before the first live decision, stopping
with the way out when it must.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from tradeforge.brokers.ccxt import LookupPolicy, OrderGateway
from tradeforge.brokers.live import JournalWithReplay, LiveBroker, OrderVenue
from tradeforge.brokers.reconcile import Venue as ReconcilableVenue
from tradeforge.brokers.reconcile import reconcile
from tradeforge.brokers.venue import Venue
from tradeforge.config.schema import BotConfig
from tradeforge.engine.feeds import BotFeeds
from tradeforge.feeds.polled import PolledFeed
from tradeforge.feeds.timeframes import timeframe_seconds
from tradeforge.persistence.models import TERMINAL_ORDER_STATUSES
from tradeforge.persistence.repository import Repository
from tradeforge.resilience.errors import ConfigError, Fatal, Problem
from tradeforge.resilience.exchange import ExchangeClient, load_credentials, require_credentials

if TYPE_CHECKING:  # ib_async loads only for an IBKR bot
    from tradeforge.brokers.ibkr import IbkrVenue
    from tradeforge.resilience.ibkr import IbConnection

CAPITAL_EVENT = "live_capital"  # the starting capital, fixed at the first live start
MISSED_EVENT = "missed_candles"  # candles that closed while the bot was down: no entries on them


def missed_candles(
    feeds: Sequence[PolledFeed], resume_after_ns: int | None, repository: Repository, say: Callable[[str], None]
) -> list[tuple[int, int]]:
    """The open-time ranges (ns) on which a live bot opens no trade: the candles that closed while it
    was down, back-filled at a restart. Their signals are old, and an entry on them would buy now at
    today's price; exits still go. The first candle after the last one processed is not among them (a
    crash may have cut it short after its orders were sent: the re-read must ask for them again), nor
    is the newest one (it is current). Each start records its range as an event, so that every later
    restart re-reading those candles blocks the same entries."""
    ranges = [(int(e.data["first"]), int(e.data["last"])) for e in repository.events(MISSED_EVENT) if e.data]
    if resume_after_ns is None:
        return ranges  # a first start: the warm-up candles are never traded on
    for feed in feeds:
        missed = [ns for ns in feed.queued_open_times() if ns > resume_after_ns][1:-1]
        if not missed:
            continue
        first, last = missed[0], missed[-1]
        message = (
            f"{feed._name}: {len(missed)} candles closed while the bot was down "
            f"({_at(first):%Y-%m-%d %H:%M} to {_at(last):%Y-%m-%d %H:%M} UTC): indicators read them, no entries on them"
        )
        repository.log_event(MISSED_EVENT, message, {"symbol": feed._name, "first": first, "last": last})
        say(message)
        ranges.append((first, last))
    return ranges


def _at(ns: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ns / 1e9, dt.UTC)


def check_live(config: BotConfig) -> None:
    """A live config must say so explicitly, trade on a venue's own feed (binance or ibkr), in one
    quote currency, with keys (Binance; IB's authentication is the TWS/Gateway login)."""
    if config.data.source == "ibkr":
        _check_ibkr(config)
        return
    problems = []
    if not config.exchange.live_confirmed:
        problems.append(
            Problem(
                "exchange.live_confirmed",
                "mode: live places real orders with real money; set exchange.live_confirmed: true to confirm "
                "(or use mode: paper)",
                False,
            )
        )
    if config.data.source != "binance":
        problems.append(Problem("data.source", "mode: live trades on the venue's own candles; use binance or ibkr"))
    if config.strategy.direction != "long":
        problems.append(
            Problem(
                "strategy.direction",
                "a live bot on Binance trades spot, which cannot hold a short position: use direction: long",
                config.strategy.direction,
            )
        )
    quotes = {symbol.split("/")[-1] for symbol in config.data.symbols}
    if len(quotes) > 1:
        problems.append(
            Problem("data.symbols", "a live bot trades symbols of one quote currency", ", ".join(sorted(quotes)))
        )
    if problems:
        raise ConfigError(problems)
    require_credentials(config.exchange, load_credentials(config.exchange))


def _check_ibkr(config: BotConfig) -> None:
    problems = []
    if not config.ibkr.live_confirmed:
        problems.append(
            Problem(
                "ibkr.live_confirmed",
                "mode: live places real orders on the account TWS/IB Gateway is logged in to; set "
                "ibkr.live_confirmed: true to confirm (or use mode: paper)",
                False,
            )
        )
    currencies = {config.ibkr.contract_for(symbol).currency for symbol in config.data.symbols}
    if len(currencies) > 1:
        problems.append(
            Problem("ibkr.contracts", "a live bot trades contracts of one currency", ", ".join(sorted(currencies)))
        )
    if problems:
        raise ConfigError(problems)


def cash_currency(config: BotConfig) -> str:
    """The one currency a live bot's cash is in (check_live made sure there is one)."""
    if config.data.source == "ibkr":
        return config.ibkr.contract_for(config.data.symbols[0]).currency
    return config.data.symbols[0].split("/")[-1]


def banner(config: BotConfig, where: str, capital: Decimal, quote: str) -> str:
    """What a person must see before real orders go out (no secret in it)."""
    line = "=" * 72
    return (
        f"{line}\nLIVE TRADING on {where}\n"
        f"bot {config.name}: {', '.join(config.data.symbols)} {config.data.timeframe}, "
        f"capital {capital} {quote}\n{line}"
    )


def binance_where(config: BotConfig, uid: object) -> str:
    exchange = config.exchange
    where = "TESTNET (sandbox)" if exchange.sandbox else "REAL MONEY"
    endpoint = f", endpoint {next(iter(exchange.urls.values()))}" if exchange.urls else ""
    who = f"account {uid}" if uid is not None else f"key from {exchange.api_key_file or exchange.api_key_env}"
    return f"{exchange.name} - {where}{endpoint}, {who}"


def binance_account(config: BotConfig, uid: object) -> str:
    """The account a Binance bot's history belongs to: the network, and the uid where Binance gives it."""
    network = "testnet" if config.exchange.sandbox else "mainnet"
    return f"{config.exchange.name} {network}" + (f" account {uid}" if uid is not None else "")


_IB_PORTS = {7497: "TWS paper", 7496: "TWS live", 4002: "Gateway paper", 4001: "Gateway live"}


def ibkr_where(connection: IbConnection) -> str:
    """IB paper accounts are the normal way to try a live bot: say which account and port this is."""
    from tradeforge.engine.ibkr import account_of

    port = connection.config.port
    usual = f" (usually {_IB_PORTS[port]})" if port in _IB_PORTS else ""
    return f"IBKR - account {account_of(connection)} via TWS/IB Gateway at {connection.address}{usual}"


def starting_capital(
    repository: Repository,
    held: Callable[[], Decimal],
    wanted: float,
    quote: str,
    account: str,
    what: str = "free balance",
) -> Decimal:
    """`broker.cash`, capped by what the account holds in `quote` at the bot's first live start, then
    stored with the account: every restart sizes its re-read orders from the same capital (a balance
    read now would diverge), and only on that account (another one holds none of its orders)."""
    stored = repository.events(CAPITAL_EVENT)
    if stored:
        first = stored[0].data or {}
        if first.get("account", account) != account:  # events written before accounts were stored pass
            raise Fatal(
                f"bot {repository.instance().name!r} has live history on {first['account']}, and this config "
                f"trades on {account}: a bot's orders and fills belong to one account. Give this setup a new "
                f"`name:`, or restore the setting that chose {first['account']}"
            )
        return Decimal(str(first["cash"]))
    balance = held()
    capital = min(Decimal(repr(float(wanted))), balance)
    if capital <= 0:
        raise Fatal(f"broker.cash: the account holds no {quote} to trade with ({what} {balance})")
    repository.log_event(
        CAPITAL_EVENT,
        f"starting capital {capital} {quote} on {account} (broker.cash {wanted}, {what} {balance})",
        {"cash": str(capital), "quote": quote, "account": account},
    )
    return capital


def binance_free(balance: dict[str, Any], quote: str) -> Callable[[], Decimal]:
    return lambda: Decimal(str((balance.get(quote) or {}).get("free") or 0))


def lookup_policy(client: ExchangeClient) -> LookupPolicy:
    """ "Lost" only after "not found" answers spread over longer than the exchange's receive window."""
    window_ms = float(client.exchange.options.get("recvWindow") or 10_000)
    return LookupPolicy(wait=min(1.0, window_ms / 4000), window=window_ms / 1000 + 1.0)


def live_broker(
    config: BotConfig,
    config_hint: str,
    feeds: BotFeeds,
    repository: Repository,
    journal: JournalWithReplay,
    rereading: Callable[[int], bool],
    stop: threading.Event,
    say: Callable[[str], None],
) -> LiveBroker:
    """The live broker over the bot's venue, after the banner; it reconciles on its first live candle."""
    quote = cash_currency(config)
    venue: Venue  # the whole protocol: the broker places through it, reconciliation reads it
    if config.data.source == "ibkr":
        from tradeforge.engine.ibkr import account_of, venue_over

        ib_venue = venue_over(feeds.feeds, repository)
        cash = ib_cash(ib_venue, quote)
        account = f"ibkr account {account_of(ib_venue.connection)}"
        capital = starting_capital(repository, cash, config.broker.cash, quote, account, "cash balance")
        say(banner(config, ibkr_where(ib_venue.connection), capital, quote))
        venue, symbols = ib_venue, list(ib_venue.contracts)
        tolerance = Decimal(str(config.ibkr.reconcile_tolerance))
    elif feeds.client is not None:
        client = feeds.client
        balance = client.fetch_balance()  # one read: the account's uid, and its free quote at the first start
        uid = (balance.get("info") or {}).get("uid")
        account = binance_account(config, uid)
        capital = starting_capital(repository, binance_free(balance, quote), config.broker.cash, quote, account)
        say(banner(config, binance_where(config, uid), capital, quote))
        gateway = OrderGateway(client, repository, lookup=lookup_policy(client))
        for symbol in config.data.symbols:
            gateway.rules(symbol)  # an unknown symbol stops here, before any order
        venue, symbols = gateway, list(config.data.symbols)
        tolerance = Decimal(str(config.exchange.reconcile_tolerance))
    else:  # check_live refuses such a config first; never fall back to paper fills
        raise Fatal("mode: live needs a venue's feed (data.source: binance or ibkr)")
    broker = LiveBroker(
        venue,
        journal,
        cash=float(capital),
        timeframe_seconds=timeframe_seconds(config.data.timeframe),
        rereading=rereading,
        before_live=lambda: reconcile_or_stop(venue, symbols, tolerance, config_hint, say),
        stop=stop,
    )
    broker.setcommission(commission=0.0)  # fees come from the fills
    return broker


def ib_cash(venue: IbkrVenue, currency: str) -> Callable[[], Decimal]:
    """The account's cash balance in `currency` (IB's TotalCashBalance)."""
    return lambda: venue.holdings().get(currency, Decimal(0))


def reconcile_or_stop(
    venue: ReconcilableVenue, symbols: list[str], tolerance: Decimal, config_hint: str, say: Callable[[str], None]
) -> None:
    """Startup reconciliation (it logs its own `reconcile` events); when it says trading cannot start,
    stop with its explanation and the way out."""
    report = reconcile(venue, symbols, tolerance)
    summary = report.summary()
    say(f"startup reconciliation: {summary}")
    if report.unrecorded:
        raise Fatal(
            f"startup reconciliation: trading cannot start.\n{summary}\n"
            f"Record the missing fills with `tradeforge db record-fill --config {config_hint} ...`, check with "
            f"`tradeforge reconcile --config {config_hint}`, then start again"
        )
    if not report.can_trade:
        raise Fatal(
            f"startup reconciliation: trading cannot start.\n{summary}\n"
            f"Inspect and decide with `tradeforge reconcile --config {config_hint}`; to take the exchange's state "
            f"as the truth run `tradeforge reconcile --config {config_hint} --accept-exchange-state`, then start again"
        )


def check_history(repository: Repository, has_history: bool) -> None:
    """A live bot never re-adopts a paper bot's orders: its history must be live history."""
    if has_history and repository.instance().mode != "live":
        raise Fatal(
            f"bot {repository.instance().name!r} has {repository.instance().mode} history in this database; "
            "a live bot must start with its own history: give it a new `name:`"
        )


def cancel_on_exit(venue: OrderVenue, say: Callable[[str], None]) -> list[str]:
    """A graceful stop with cancel_open_orders_on_exit: each open order canceled on the exchange,
    confirmed. A restart learns of the cancels from the stored orders, at the candle after them."""
    canceled = []
    for order in venue.repository.orders():
        if order.status not in TERMINAL_ORDER_STATUSES:
            venue.cancel(order.symbol, order.client_order_id)
            canceled.append(order.client_order_id)
    if canceled:
        say(f"canceled {len(canceled)} open orders on the exchange on exit: {', '.join(canceled)}")
    return canceled
