"""`tradeforge reconcile`: a live bot's database against its venue account (Binance or IBKR), while the
bot is stopped.

Everything that can be checked without writing is checked first (mode, keys, symbols and timeframe
on the exchange, the keys accepted by a signed call; IB reachable and every contract known), so bad
input leaves nothing behind. The bot's run lock is held throughout: a running bot reconciles by
itself at start-up and must not be raced.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING

from tradeforge.brokers.reconcile import ReconcileReport, Venue, accept_exchange_state, reconcile
from tradeforge.config.schema import BotConfig
from tradeforge.engine.runtime import open_repository
from tradeforge.persistence.repository import Repository
from tradeforge.resilience.errors import ConfigError, Problem

if TYPE_CHECKING:  # ib_async loads only for an IBKR bot
    from tradeforge.resilience.ibkr import IbFactory


def reconcile_bot(
    config: BotConfig,
    config_hint: str,
    *,
    accept_exchange: bool = False,
    by: str | None = None,
    environ: Mapping[str, str] | None = None,
    ibkr_factory: IbFactory | None = None,
) -> ReconcileReport:
    """Reconcile the bot named in `config` with its venue account; with `accept_exchange`, record a
    person's decision that the account's holdings are the truth (see brokers/reconcile.py)."""
    if config.mode != "live":
        raise ConfigError(
            [Problem("mode", "reconciliation compares a live bot's orders with its exchange account", config.mode)]
        )
    if config.data.source == "ibkr":
        return _reconcile_ibkr(config, config_hint, accept_exchange, by, ibkr_factory)
    if config.data.source != "binance":
        problem = Problem("data.source", "a live bot trades on its venue: use binance or ibkr", config.data.source)
        raise ConfigError([problem])
    from tradeforge.brokers.ccxt import OrderGateway
    from tradeforge.engine.feeds import check_symbols
    from tradeforge.resilience.exchange import ExchangeClient, load_credentials, require_credentials

    exchange = config.exchange
    credentials = load_credentials(exchange, environ)
    require_credentials(exchange, credentials)
    client = check_symbols(ExchangeClient.from_config(exchange, credentials), config)
    client.fetch_balance()  # the keys work (a refusal names where they come from) before anything is written
    return _locked(
        config,
        config_hint,
        lambda repository: OrderGateway(client, repository),
        Decimal(str(exchange.reconcile_tolerance)),
        accept_exchange,
        by,
    )


def _reconcile_ibkr(
    config: BotConfig, config_hint: str, accept_exchange: bool, by: str | None, factory: IbFactory | None
) -> ReconcileReport:
    from tradeforge.brokers.ibkr import IbkrVenue
    from tradeforge.engine.ibkr import account_of, connect, resolve_contracts

    connection = connect(config, factory)  # an unreachable TWS/Gateway names host:port
    try:
        contracts = resolve_contracts(connection, config.data.symbols)
        account_of(connection)  # which account's positions: known before anything is written
        return _locked(
            config,
            config_hint,
            lambda repository: IbkrVenue(connection, repository, contracts),
            Decimal(str(config.ibkr.reconcile_tolerance)),
            accept_exchange,
            by,
        )
    finally:
        connection.disconnect()


def _locked(
    config: BotConfig,
    config_hint: str,
    venue_for: Callable[[Repository], Venue],
    tolerance: Decimal,
    accept_exchange: bool,
    by: str | None,
) -> ReconcileReport:
    """Reconcile under the bot's run lock; accept the venue's holdings only when no order needs a person."""
    repository = open_repository(config, config_hint)
    owner = repository.acquire_lock()
    try:
        venue = venue_for(repository)
        report = reconcile(venue, list(config.data.symbols), tolerance)
        if accept_exchange and not report.orders_need_a_person:
            report = accept_exchange_state(venue, report, by)
        return report
    finally:
        repository.release_lock(owner)
        repository.close()
