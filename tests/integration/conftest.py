"""Database fixtures for integration tests: the same test runs on SQLite and on PostgreSQL.

`db_url` is parametrized over two backends, so a test that asks for it runs twice:

- `sqlite`: a fresh database file in the test's `tmp_path`;
- `postgresql`: a fresh, uniquely named schema in the `test` database of the PostgreSQL server on
  127.0.0.1:5432, created before the test and dropped (CASCADE) after it. The URL selects it with
  `?options=-csearch_path%3D<schema>`, so every engine and connection made from the URL (SQLAlchemy,
  Alembic, Optuna) creates and finds its tables there without naming the schema.

The URL is a plain string for `tradeforge.persistence.database.make_engine` or a config's
`persistence.db_url`; the database starts empty (no tables: call `migrate.upgrade(engine)`).
`db_engine` is an engine on it, disposed after the test.

When PostgreSQL cannot be reached the `postgresql` variant is skipped with the reason, except on CI
(`CI=true`), where it fails: CI must never go green without having run against PostgreSQL. Point
the tests at another server with `TRADEFORGE_TEST_POSTGRES_URL` (a database the user may create
schemas in).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from tradeforge.persistence.database import make_engine, normalise_url

POSTGRES_URL = os.environ.get("TRADEFORGE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[Engine]:
    """An autocommit engine on the PostgreSQL test database; skips (fails on CI) when unreachable."""
    engine = create_engine(
        normalise_url(POSTGRES_URL),
        isolation_level="AUTOCOMMIT",
        poolclass=NullPool,
        connect_args={"connect_timeout": 5},
    )
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except DBAPIError as exc:
        engine.dispose()
        where = make_url(normalise_url(POSTGRES_URL)).render_as_string(hide_password=True)
        reason = f"PostgreSQL at {where} is unreachable ({str(exc.orig or exc).strip().splitlines()[0]})"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI must run the database tests against PostgreSQL", pytrace=False)
        pytest.skip(f"{reason}; set TRADEFORGE_TEST_POSTGRES_URL to use another server")
    yield engine
    engine.dispose()


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of an empty database, once per backend (see the module docstring)."""
    if request.param == "sqlite":
        yield f"sqlite:///{(tmp_path / 'tradeforge.sqlite').as_posix()}"
        return
    admin: Engine = request.getfixturevalue("postgres_admin")
    schema = f"tf_test_{uuid.uuid4().hex[:16]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        url = make_url(normalise_url(POSTGRES_URL)).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            # An engine left "idle in transaction" by the test would make DROP wait forever: fail instead.
            connection.execute(text("SET lock_timeout = '15s'"))
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


@pytest.fixture
def db_engine(db_url: str) -> Iterator[Engine]:
    """An engine (tradeforge's `make_engine`) on the empty database of `db_url`; disposed afterwards."""
    engine = make_engine(db_url)
    yield engine
    engine.dispose()
