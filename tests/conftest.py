"""Fixtures shared by every test layer."""

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

from tradeforge.persistence.database import normalise_url

# The repo is <work>/main and the real market data lives next to it in <work>/shared/data.
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of real candle files (see its README); tests using it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not present at {SHARED_DATA}")
    return SHARED_DATA


POSTGRES_URL = os.environ.get("TRADEFORGE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


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


@pytest.fixture
def postgres_schema_url(postgres_admin: Engine) -> Iterator[str]:
    """A URL on a fresh, uniquely named schema of the PostgreSQL test database (selected through
    `?options=-csearch_path%3D<schema>`), dropped with everything in it after the test."""
    schema = f"tf_test_{uuid.uuid4().hex[:16]}"
    with postgres_admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        url = make_url(normalise_url(POSTGRES_URL)).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with postgres_admin.connect() as connection:
            # An engine left "idle in transaction" by the test would make DROP wait forever: fail instead.
            connection.execute(text("SET lock_timeout = '15s'"))
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
