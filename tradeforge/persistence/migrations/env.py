"""Alembic environment for tradeforge. `tradeforge.persistence.migrate` builds the Alembic Config in
code and hands over an open SQLAlchemy connection in `config.attributes["connection"]`, so no
alembic.ini is needed. Offline (`--sql`) runs take `sqlalchemy.url` from the Config instead.

A new migration after a change to models.py: autogenerate it against a scratch SQLite database at
head, then read it, tidy it and run `ruff format` on it (the comparison test fails until it matches):

    from alembic import command
    from tradeforge.persistence import migrate
    from tradeforge.persistence.database import make_engine
    engine = make_engine("sqlite:////tmp/scratch.sqlite")
    migrate.upgrade(engine)
    with engine.connect() as connection:
        command.revision(migrate.alembic_config(connection), "what changed", autogenerate=True, rev_id="0002_...")
"""

from __future__ import annotations

from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy import Connection, TypeDecorator

from tradeforge.persistence.models import Base

config = context.config
target_metadata = Base.metadata


def _render_item(kind: str, obj: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    """Render our TypeDecorators (UtcDateTime) as their plain SQLAlchemy type, so a migration never
    imports tradeforge code that may change after the migration was written."""
    if kind == "type" and isinstance(obj, TypeDecorator):
        return f"sa.{obj.impl_instance!r}"
    return False


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things: batch mode copies the table into a new one instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        render_item=_render_item,
    )


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        raise RuntimeError(
            "tradeforge migrations run through tradeforge.persistence.migrate "
            "(or `tradeforge db upgrade`), which hands over a connection in config.attributes['connection']"
        )
    _configure(connection)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    url = config.get_main_option("sqlalchemy.url")
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=bool(url and url.startswith("sqlite")),
        dialect_opts={"paramstyle": "named"},
        render_item=_render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
