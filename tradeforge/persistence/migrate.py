"""Schema migrations (Alembic) run from code: the scripts ship inside the package, the Alembic Config
is built here and the SQLAlchemy connection is handed to `migrations/env.py`, so no alembic.ini is
needed. A bot calls `ensure_current` at start; `tradeforge db upgrade` calls `upgrade`."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Connection, Engine

from tradeforge.resilience.errors import Fatal

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic Config pointing at the shipped migrations; `connection` is what env.py migrates."""
    config = Config()
    config.set_main_option("script_location", MIGRATIONS_DIR.as_posix())
    config.set_main_option("path_separator", "os")  # for version_locations, should anyone add some
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    """The revision the code expects the database to be at."""
    head = _scripts().get_current_head()
    if head is None:
        raise RuntimeError(f"no migrations found in {MIGRATIONS_DIR}: a broken installation")
    return head


def current_revision(engine: Engine) -> str | None:
    """The database's revision, or None when it has never been migrated (no alembic_version row)."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate the database forward to `revision` (default: the newest)."""
    current = current_revision(engine)
    if current is not None and not _known(current):
        raise Fatal(_newer_than_code(engine, current))
    _run(
        engine, lambda config: command.upgrade(config, revision), f"upgrade database {describe(engine)} to {revision!r}"
    )


def downgrade(engine: Engine, revision: str) -> None:
    """Migrate the database back to `revision` ("base" removes every table)."""
    _run(
        engine,
        lambda config: command.downgrade(config, revision),
        f"downgrade database {describe(engine)} to {revision!r}",
    )


def ensure_current(engine: Engine, config_hint: str) -> None:
    """Refuse to run on a database whose schema is not the one this code was written for.

    `config_hint` is what follows `--config` in the command the user is told to run, e.g.
    `bot.yaml` or `base.yaml --config live.yaml` for overlays."""
    current = current_revision(engine)
    head = head_revision()
    if current == head:
        return
    where = describe(engine)
    if current is not None and not _known(current):
        raise Fatal(_newer_than_code(engine, current))
    raise Fatal(
        f"database {where} is at revision {current or 'empty'} but tradeforge needs {head}; "
        f"run: tradeforge db upgrade --config {config_hint}"
    )


def is_known_revision(revision: str) -> bool:
    """Whether `revision` is one of the shipped migrations (False for one written by a newer tradeforge)."""
    return _known(revision)


def describe(engine: Engine) -> str:
    """The database URL as shown to a user: password hidden."""
    return engine.url.render_as_string(hide_password=True)


def _newer_than_code(engine: Engine, current: str) -> str:
    return (
        f"database {describe(engine)} is at revision {current}, which this version of tradeforge does not know "
        f"(it needs {head_revision()}); the database was migrated by a newer tradeforge: upgrade tradeforge"
    )


def _known(revision: str) -> bool:
    try:
        return _scripts().get_revision(revision) is not None
    except CommandError:
        return False


def _run(engine: Engine, step: Callable[[Config], None], what: str) -> None:
    try:
        with engine.connect() as connection, _sqlite_foreign_keys_off(connection), connection.begin():
            step(alembic_config(connection))
            _check_foreign_keys(connection)
    except CommandError as exc:
        raise Fatal(f"cannot {what}: {exc}") from None


@contextlib.contextmanager
def _sqlite_foreign_keys_off(connection: Connection) -> Iterator[None]:
    """On SQLite, batch migrations rebuild a table by copy, drop and rename; with foreign keys on,
    dropping the old parent table would cascade-delete (ON DELETE CASCADE) every child row. So keys
    are off while migrating (the pragma is ignored inside a transaction, hence before `begin`) and
    back on before the connection returns to the pool."""
    if connection.dialect.name != "sqlite":
        yield
        return
    connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
    connection.commit()
    try:
        yield
    finally:
        connection.rollback()
        connection.exec_driver_sql("PRAGMA foreign_keys=ON")
        connection.commit()


def _check_foreign_keys(connection: Connection) -> None:
    """With SQLite's keys off during a migration, check them once at the end instead."""
    if connection.dialect.name != "sqlite":
        return
    violations = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if violations:
        shown = ", ".join(f"{table} row {rowid} -> {parent}" for table, rowid, parent, _fk in violations[:10])
        raise Fatal(f"the migration left rows whose foreign keys point nowhere: {shown}")
