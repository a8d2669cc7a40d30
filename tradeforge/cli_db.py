"""`tradeforge db …`: show the database's schema revision and migrate it to the one this code needs.
Mounted on the main app in cli.py; errors (bad config, unreachable database) propagate to `main()`,
which prints them and exits 2."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from sqlalchemy import Engine

from tradeforge.config.loader import load_config
from tradeforge.persistence import migrate
from tradeforge.persistence.database import check_reachable, default_url, make_engine

db_app = typer.Typer(
    help="Database schema: show its revision (`current`), migrate it to the newest (`upgrade`).",
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
