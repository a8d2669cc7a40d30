"""`mode: live`: what run_bot needs beyond a paper bot. Refuse a config that is not explicitly
confirmed or has no keys, print the LIVE banner, fix the bot's starting capital once, build the
live broker over the exchange, and reconcile with the exchange (DESIGN protocol step 3) after the
history re-read and before the first live decision, stopping with the way out when it must.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Sequence
from decimal import Decimal

from tradeforge.brokers.ccxt import LookupPolicy, OrderGateway
from tradeforge.brokers.live import JournalWithReplay, LiveBroker, OrderVenue
from tradeforge.brokers.reconcile import reconcile
from tradeforge.config.schema import BotConfig
from tradeforge.feeds.polled import PolledFeed
from tradeforge.feeds.timeframes import timeframe_seconds
from tradeforge.persistence.models import TERMINAL_ORDER_STATUSES
from tradeforge.persistence.repository import Repository
from tradeforge.resilience.errors import ConfigError, Fatal, Problem
from tradeforge.resilience.exchange import ExchangeClient, load_credentials, require_credentials

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
    """A live config must say so explicitly, trade on an exchange feed, in one quote currency, with keys."""
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
        problems.append(Problem("data.source", "mode: live trades on the exchange's own candles; use binance"))
    quotes = {symbol.split("/")[-1] for symbol in config.data.symbols}
    if len(quotes) > 1:
        problems.append(
            Problem("data.symbols", "a live bot trades symbols of one quote currency", ", ".join(sorted(quotes)))
        )
    if problems:
        raise ConfigError(problems)
    require_credentials(config.exchange, load_credentials(config.exchange))


def banner(config: BotConfig, client: ExchangeClient, capital: Decimal, quote: str) -> str:
    """What a person must see before real orders go out (no secret in it)."""
    exchange = config.exchange
    where = "TESTNET (sandbox)" if exchange.sandbox else "REAL MONEY"
    endpoint = f", endpoint {next(iter(exchange.urls.values()))}" if exchange.urls else ""
    balance = client.fetch_balance()
    account = (balance.get("info") or {}).get("uid")
    who = f"account {account}" if account is not None else f"key from {exchange.api_key_file or exchange.api_key_env}"
    line = "=" * 72
    return (
        f"{line}\nLIVE TRADING on {exchange.name} - {where}{endpoint}\n"
        f"bot {config.name}: {', '.join(config.data.symbols)} {config.data.timeframe}, {who}, "
        f"capital {capital} {quote}\n{line}"
    )


def starting_capital(repository: Repository, client: ExchangeClient, wanted: float, quote: str) -> Decimal:
    """`broker.cash`, capped by the quote balance at the bot's first live start, then stored: every
    restart sizes its re-read orders from the same capital (a balance read now would diverge)."""
    stored = repository.events(CAPITAL_EVENT)
    if stored:
        return Decimal(str((stored[0].data or {})["cash"]))
    balance = client.fetch_balance()
    held = Decimal(str((balance.get(quote) or {}).get("free") or 0))
    capital = min(Decimal(repr(float(wanted))), held)
    if capital <= 0:
        raise Fatal(f"broker.cash: the account holds no {quote} to trade with (free balance {held})")
    repository.log_event(
        CAPITAL_EVENT,
        f"starting capital {capital} {quote} (broker.cash {wanted}, free balance {held})",
        {"cash": str(capital), "quote": quote},
    )
    return capital


def lookup_policy(client: ExchangeClient) -> LookupPolicy:
    """ "Lost" only after "not found" answers spread over longer than the exchange's receive window."""
    window_ms = float(client.exchange.options.get("recvWindow") or 10_000)
    return LookupPolicy(wait=min(1.0, window_ms / 4000), window=window_ms / 1000 + 1.0)


def live_broker(
    config: BotConfig,
    config_hint: str,
    client: ExchangeClient | None,
    repository: Repository,
    journal: JournalWithReplay,
    rereading: Callable[[int], bool],
    stop: threading.Event,
    say: Callable[[str], None],
) -> LiveBroker:
    """The live broker, after the banner; it reconciles on its first live candle."""
    if client is None:  # check_live refuses such a config first; never fall back to paper fills
        raise Fatal("mode: live needs an exchange feed (data.source: binance)")
    quote = config.data.symbols[0].split("/")[-1]
    capital = starting_capital(repository, client, config.broker.cash, quote)
    say(banner(config, client, capital, quote))
    gateway = OrderGateway(client, repository, lookup=lookup_policy(client))
    for symbol in config.data.symbols:
        gateway.rules(symbol)  # an unknown symbol stops here, before any order
    broker = LiveBroker(
        gateway,
        journal,
        cash=float(capital),
        timeframe_seconds=timeframe_seconds(config.data.timeframe),
        rereading=rereading,
        before_live=lambda: reconcile_or_stop(gateway, config, config_hint, say),
        stop=stop,
    )
    broker.setcommission(commission=0.0)  # fees come from the fills
    return broker


def reconcile_or_stop(gateway: OrderGateway, config: BotConfig, config_hint: str, say: Callable[[str], None]) -> None:
    """Startup reconciliation (it logs its own `reconcile` events); when it says trading cannot start,
    stop with its explanation and the way out."""
    tolerance = Decimal(str(config.exchange.reconcile_tolerance))
    report = reconcile(gateway, list(config.data.symbols), tolerance)
    summary = report.summary()
    say(f"startup reconciliation: {summary}")
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
