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

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from tradeforge.persistence.database import make_engine

BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of an empty database, once per backend (see the module docstring)."""
    if request.param == "sqlite":
        yield f"sqlite:///{(tmp_path / 'tradeforge.sqlite').as_posix()}"
        return
    yield request.getfixturevalue("postgres_schema_url")


@pytest.fixture
def db_engine(db_url: str) -> Iterator[Engine]:
    """An engine (tradeforge's `make_engine`) on the empty database of `db_url`; disposed afterwards."""
    engine = make_engine(db_url)
    yield engine
    engine.dispose()
