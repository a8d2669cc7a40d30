"""`tradeforge db …`: show the database's schema revision and migrate it to the one this code needs,
check a bot's rows, and record a fill the venue made that the bot could not (`record-fill`).
Mounted on the main app in cli.py; errors (bad config, unreachable database, a refused fill) propagate
to `main()`, which prints them and exits 2."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from sqlalchemy import Engine

from tradeforge.config.loader import load_config
from tradeforge.persistence import migrate
from tradeforge.persistence.audit import plain
from tradeforge.persistence.database import check_reachable, default_url, make_engine
from tradeforge.persistence.operator_fill import PlannedFill, parse_fill, plan_fill, record_planned_fill

db_app = typer.Typer(
    help="Database schema: show its revision (`current`), migrate it to the newest (`upgrade`); check a "
    "bot's rows (`check`); record a fill the bot missed (`record-fill`).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(soft_wrap=True, highlight=False)
EXIT_BEHIND = 2

ConfigOption = Annotated[
    list[Path],
    typer.Option("--config", "-c", help="Config file; repeat to overlay (later files win)."),
]


def _open(configs: list[Path]) -> Engine:
    """The bot's database engine (persistence.db_url, or the SQLite file under data_dir), checked reachable."""
    config = load_config(configs)
    url = config.persistence.db_url or default_url(config.data_dir)
    engine = make_engine(url, busy_timeout_ms=config.persistence.busy_timeout_ms)
    try:
        check_reachable(engine)
    except BaseException:
        engine.dispose()
        raise
    return engine


def _hint(configs: list[Path]) -> str:
    """What follows `--config` in a command we tell the user to run, overlays included."""
    return " --config ".join(shlex.quote(str(path)) for path in configs)


@db_app.command()
def upgrade(
    configs: ConfigOption,
    revision: Annotated[str, typer.Option("--revision", help="Target revision; default the newest.")] = "head",
) -> None:
    """Migrate the bot's database to the schema this tradeforge needs (safe to run again)."""
    engine = _open(configs)
    try:
        before = migrate.current_revision(engine)
        migrate.upgrade(engine, revision)
        after = migrate.current_revision(engine)
    finally:
        engine.dispose()
    note = " (already there, nothing to do)" if before == after else ""
    out.print(f"database {migrate.describe(engine)}: {before or 'empty'} → {after or 'empty'}{note}", markup=False)


@db_app.command()
def current(configs: ConfigOption) -> None:
    """Show the database's schema revision and whether it is up to date (exit 2 when it is not)."""
    engine = _open(configs)
    try:
        revision = migrate.current_revision(engine)
    finally:
        engine.dispose()
    head = migrate.head_revision()
    out.print(f"database  {migrate.describe(engine)}", markup=False)
    out.print(f"revision  {revision or 'empty'}", markup=False)
    out.print(f"needed    {head}", markup=False)
    if revision == head:
        out.print("status    up to date", markup=False)
        return
    if revision is not None and not migrate.is_known_revision(revision):
        out.print("status    ahead: migrated by a newer tradeforge; upgrade tradeforge", markup=False)
    else:
        out.print(f"status    behind; run: tradeforge db upgrade --config {_hint(configs)}", markup=False)
    raise typer.Exit(EXIT_BEHIND)


@db_app.command()
def check(configs: ConfigOption) -> None:
    """Check the bot's rows for inconsistencies (a bot refuses to trade while any exist); exit 2 if found."""
    from tradeforge.engine.runtime import open_repository
    from tradeforge.resilience.errors import InconsistentState

    repository = open_repository(load_config(configs), _hint(configs))
    problems = repository.integrity_problems()
    if problems:
        raise InconsistentState(
            problems,
            source=f"database {migrate.describe(repository.engine)}: repair or remove these rows, "
            "or start the strategy under a new bot name",
        )
    out.print(f"ok: {len(repository.orders())} orders, {len(repository.fills())} fills, no inconsistencies")


@db_app.command("record-fill")
def record_fill(
    configs: ConfigOption,
    order: Annotated[str, typer.Option("--order", help="The order's client order id (tf…-<trade>-<n>).")],
    trade_id: Annotated[str, typer.Option("--trade-id", help="The venue's trade id (IB: the execution id).")],
    amount: Annotated[str, typer.Option("--amount", help="Amount filled, in the order's units.")],
    price: Annotated[str, typer.Option("--price", help="Price of the fill.")],
    fee: Annotated[
        str,
        typer.Option("--fee", help="Fee charged, valued in the quote currency unless --fee-currency says otherwise."),
    ],
    time: Annotated[
        str, typer.Option("--time", help="When it filled: ISO 8601 with a timezone, e.g. 2024-05-02T14:30:00Z.")
    ],
    fee_currency: Annotated[
        str | None, typer.Option("--fee-currency", help="Currency of the fee; default the symbol's quote currency.")
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Record without asking.")] = False,
) -> None:
    """Record a fill the venue made that a stopped live bot's database lacks; audited.

    For fills the bot cannot fetch itself (IB lists the current day's executions only). Exit 0 also when
    exactly this fill is recorded already; 1 when the answer to the prompt is no (nothing written)."""
    import datetime as dt

    from tradeforge.engine.runtime import open_repository
    from tradeforge.resilience.errors import ConfigError, Fatal, Problem

    fill = parse_fill(
        trade_id=trade_id,
        amount=amount,
        price=price,
        fee=fee,
        fee_currency=fee_currency,
        time=time,
        now=dt.datetime.now(dt.UTC),
    )
    config = load_config(configs)
    if config.mode != "live":
        raise ConfigError([Problem("mode", "record-fill records a live bot's venue fills", config.mode)])
    repository = open_repository(config, _hint(configs))
    try:
        owner = repository.acquire_lock()  # a running bot refuses: it heals fills itself and must not be raced
        try:
            planned = plan_fill(repository, order, fill)
            if planned is None:
                out.print(
                    f"fill {fill.venue_trade_id} of order {order} is recorded already: nothing changed", markup=False
                )
                return
            _show(config.name, planned)
            if not yes and not typer.confirm("record this fill?", default=False):
                out.print("nothing recorded")
                raise typer.Exit(1)
            repository.heartbeat(owner)  # still ours after the prompt (a slow answer lets the lock go stale)?
            if repository.instance().lock_owner != owner:
                raise Fatal(f"bot {config.name!r} was started while you decided: nothing recorded; stop it first")
            stored = record_planned_fill(repository, planned)
        finally:
            repository.release_lock(owner)
    finally:
        repository.close()
        repository.engine.dispose()
    if stored is None:
        out.print(
            f"fill {fill.venue_trade_id} was recorded by another process meanwhile: nothing changed", markup=False
        )
        return
    out.print(
        f"recorded: order {order} now has {plain(stored.filled)} of {plain(stored.amount)} filled, "
        f"status {stored.status.value}",
        markup=False,
    )
    out.print(f"next: tradeforge reconcile --config {_hint(configs)}", markup=False)


def _show(bot: str, planned: PlannedFill) -> None:
    """What record-fill is about to write, for the person to confirm."""
    order, fill = planned.order, planned.fill
    trade = f"trade {order.trade_id}" if order.trade_id is not None else "no trade"
    currency = f" {fill.fee_currency}" if fill.fee_currency else ""
    rows = [
        ("bot", bot),
        (
            "order",
            f"{order.client_order_id}: {order.role} {order.side} {plain(order.amount)} {order.symbol} "
            f"{order.type} ({trade})",
        ),
        ("now", f"{order.status.value}, {plain(order.filled)} of {plain(order.amount)} filled"),
        (
            "fill",
            f"trade id {fill.venue_trade_id}: {plain(fill.amount)} @ {plain(fill.price)}, "
            f"fee {plain(fill.fee)}{currency}, at {fill.time.isoformat()}",
        ),
        ("after", f"{planned.status_after.value}, {plain(planned.filled_after)} of {plain(order.amount)} filled"),
    ]
    for label, text in rows:
        out.print(f"{label:<6} {text}", markup=False)
