"""`tradeforge reconcile`: a live bot's database against its exchange account, while the bot is stopped.

Everything that can be checked without writing is checked first (mode, keys, symbols and timeframe
on the exchange, the keys accepted by a signed call), so bad input leaves nothing behind. The bot's
run lock is held throughout: a running bot reconciles by itself at start-up and must not be raced.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from tradeforge.brokers.ccxt import OrderGateway
from tradeforge.brokers.reconcile import ReconcileReport, accept_exchange_state, reconcile
from tradeforge.config.schema import BotConfig
from tradeforge.engine.feeds import check_symbols
from tradeforge.engine.runtime import open_repository
from tradeforge.resilience.errors import ConfigError, Problem
from tradeforge.resilience.exchange import ExchangeClient, load_credentials, require_credentials


def reconcile_bot(
    config: BotConfig,
    config_hint: str,
    *,
    accept_exchange: bool = False,
    by: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> ReconcileReport:
    """Reconcile the bot named in `config` with its exchange account; with `accept_exchange`, record a
    person's decision that the account's balances are the truth (see brokers/reconcile.py)."""
    if config.mode != "live":
        raise ConfigError(
            [Problem("mode", "reconciliation compares a live bot's orders with its exchange account", config.mode)]
        )
    if config.data.source != "binance":
        problem = Problem("data.source", "a live bot trades on its exchange: use binance", config.data.source)
        raise ConfigError([problem])
    exchange = config.exchange
    credentials = load_credentials(exchange, environ)
    require_credentials(exchange, credentials)
    client = check_symbols(ExchangeClient.from_config(exchange, credentials), config)
    client.fetch_balance()  # the keys work (a refusal names where they come from) before anything is written
    repository = open_repository(config, config_hint)
    owner = repository.acquire_lock()
    try:
        gateway = OrderGateway(client, repository)
        report = reconcile(gateway, config.data.symbols, Decimal(str(exchange.reconcile_tolerance)))
        if accept_exchange and not report.unknown_ours:
            report = accept_exchange_state(gateway, report, by)
        return report
    finally:
        repository.release_lock(owner)
        repository.close()
