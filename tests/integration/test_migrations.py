"""Specification of the schema migrations (Alembic, shipped in tradeforge/persistence/migrations) and
of `tradeforge db`: on SQLite and on PostgreSQL (see conftest.py), from an empty database to the
newest schema and back, refusing an out-of-date database, and matching models.py exactly."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Column, Engine, MetaData, String, inspect, text
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from tradeforge.cli_db import db_app
from tradeforge.persistence import migrate
from tradeforge.persistence.database import make_engine
from tradeforge.persistence.models import Base
from tradeforge.persistence.repository import OrderIntent, Repository
from tradeforge.resilience.errors import Fatal

SCRIPT = Path(sys.executable).parent / "tradeforge"
MODEL_TABLES = set(Base.metadata.tables)
SHIPPED = ScriptDirectory.from_config(migrate.alembic_config())
EARLIER_REVISIONS = [
    "base",
    *(s.revision for s in SHIPPED.walk_revisions() if s.revision != SHIPPED.get_current_head()),
]

# A later migration that rebuilds bot_instances the way SQLite batch mode does (copy, drop, rename).
PROBE_MIGRATION = """
import sqlalchemy as sa
from alembic import op

revision = "9999_probe"
down_revision = {head!r}


def upgrade():
    recreate = "always" if op.get_bind().dialect.name == "sqlite" else "auto"
    with op.batch_alter_table("bot_instances", recreate=recreate) as batch:
        batch.add_column(sa.Column("probe", sa.String(8), nullable=True))


def downgrade():
    recreate = "always" if op.get_bind().dialect.name == "sqlite" else "auto"
    with op.batch_alter_table("bot_instances", recreate=recreate) as batch:
        batch.drop_column("probe")
"""


def _tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names()) - {"alembic_version"}


def _differences(engine: Engine, metadata: MetaData = Base.metadata) -> list[Any]:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))


@pytest.fixture
def probe_head(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Ship one more migration (in tmp_path) after the real head, as the next release would."""
    folder = tmp_path / "later_versions"
    folder.mkdir()
    (folder / "9999_probe.py").write_text(PROBE_MIGRATION.format(head=migrate.head_revision()), encoding="utf-8")
    shipped = migrate.alembic_config

    def with_probe(connection: Any = None) -> Config:
        config = shipped(connection)
        config.set_main_option(
            "version_locations", os.pathsep.join([str(migrate.MIGRATIONS_DIR / "versions"), str(folder)])
        )
        return config

    monkeypatch.setattr(migrate, "alembic_config", with_probe)
    yield "9999_probe"


def _add_bot_with_children(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO bot_instances (id, name, config_hash, mode, status, client_id_prefix, order_sequence)"
                " VALUES (1, 'probe-bot', 'h', 'paper', 'stopped', 'tf', 0)"
            )
        )
        connection.execute(
            text("INSERT INTO events (bot_id, time, kind, message) VALUES (1, '2024-01-01 00:00:00+00:00', 'k', 'm')")
        )


# --- upgrade and downgrade ---------------------------------------------------------------------------------------


def test_upgrade_from_empty_database_creates_every_table_at_head(db_engine: Engine) -> None:
    assert migrate.current_revision(db_engine) is None
    migrate.upgrade(db_engine)
    assert _tables(db_engine) == MODEL_TABLES
    assert migrate.current_revision(db_engine) == migrate.head_revision() == "0006_split_orders"


def test_upgrade_at_head_again_is_a_no_op(db_engine: Engine) -> None:
    migrate.upgrade(db_engine)
    migrate.upgrade(db_engine)
    assert migrate.current_revision(db_engine) == migrate.head_revision()


def test_downgrade_to_base_removes_every_table(db_engine: Engine) -> None:
    migrate.upgrade(db_engine)
    migrate.downgrade(db_engine, "base")
    assert _tables(db_engine) == set()
    assert migrate.current_revision(db_engine) is None


@pytest.mark.parametrize("start", EARLIER_REVISIONS)
def test_upgrade_from_each_earlier_revision_reaches_head_and_matches_models(db_engine: Engine, start: str) -> None:
    migrate.upgrade(db_engine, start)
    assert migrate.current_revision(db_engine) == (None if start == "base" else start)
    migrate.upgrade(db_engine)
    assert migrate.current_revision(db_engine) == migrate.head_revision()
    assert _differences(db_engine) == []


@pytest.mark.parametrize("start", EARLIER_REVISIONS)
def test_downgrade_from_head_to_each_earlier_revision_and_up_again(db_engine: Engine, start: str) -> None:
    migrate.upgrade(db_engine)
    migrate.downgrade(db_engine, start)
    assert migrate.current_revision(db_engine) == (None if start == "base" else start)
    migrate.upgrade(db_engine)
    assert _differences(db_engine) == []


@pytest.mark.parametrize("target", ["0005_splits", "0004_strategy_snapshots", "base"])
def test_downgrade_below_the_splits_is_refused_while_splits_are_recorded(db_engine: Engine, target: str) -> None:
    # A split converted its orders in place: going back would drop its record and leave them converted.
    migrate.upgrade(db_engine)
    repository = Repository.attach(db_engine, "split-bot", "hash", "paper")
    entry = repository.record_intent(OrderIntent(None, "AAPL", "buy", "limit", "entry", Decimal(10), Decimal(400)))
    time = dt.datetime(2020, 8, 31, tzinfo=dt.UTC)
    assert repository.record_split("AAPL", time, Decimal(4), Decimal(0), {entry.client_order_id: Decimal(40)})
    with pytest.raises(Fatal, match=r"holds 1 recorded stock split.*Restore a backup") as raised:
        migrate.downgrade(db_engine, target)
    assert "taken before it was upgraded to 0006_split_orders" in str(raised.value)
    assert migrate.current_revision(db_engine) == migrate.head_revision()  # nothing was dropped
    assert _differences(db_engine) == []
    assert [(s.symbol, s.converted_orders) for s in repository.splits()] == [("AAPL", [entry.client_order_id])]
    order = repository.order(entry.client_order_id)
    assert order is not None and (order.amount, order.intent_amount) == (40, 10)


def test_downgrade_from_0005_is_refused_while_splits_are_recorded(db_engine: Engine) -> None:
    migrate.upgrade(db_engine, "0005_splits")
    with db_engine.begin() as connection:  # a split recorded by the tradeforge of 0005
        connection.execute(
            text(
                "INSERT INTO bot_instances (id, name, config_hash, mode, status, client_id_prefix, order_sequence) "
                "VALUES (1, 'split-bot', 'hash', 'paper', 'stopped', 'tf', 0)"
            )
        )
        connection.execute(
            text(
                "INSERT INTO splits (bot_id, symbol, time, ratio, position_before, position_after, recorded_at) "
                "VALUES (1, 'AAPL', :time, '4', '0', '0', :time)"
            ),
            {"time": dt.datetime(2020, 8, 31, tzinfo=dt.UTC)},
        )
    with pytest.raises(Fatal, match=r"holds 1 recorded stock split.*taken before it was upgraded to 0005_splits"):
        migrate.downgrade(db_engine, "0004_strategy_snapshots")
    assert migrate.current_revision(db_engine) == "0005_splits"
    assert "intent_amount" in {c["name"] for c in inspect(db_engine).get_columns("orders")}


def test_upgrade_to_an_unknown_revision_is_fatal_and_names_it(db_engine: Engine) -> None:
    with pytest.raises(Fatal) as raised:
        migrate.upgrade(db_engine, "no_such_revision")
    assert str(raised.value).startswith(
        f"cannot upgrade database {migrate.describe(db_engine)} to 'no_such_revision': "
    )


def test_a_migration_that_rebuilds_a_parent_table_keeps_its_children(db_engine: Engine, probe_head: str) -> None:
    """SQLite batch mode drops the old table; with foreign keys on, ON DELETE CASCADE would empty every child."""
    migrate.upgrade(db_engine, "0001_initial")
    _add_bot_with_children(db_engine)
    migrate.upgrade(db_engine)
    assert migrate.current_revision(db_engine) == probe_head
    with db_engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM events")).scalar_one() == 1
        assert connection.execute(text("SELECT name FROM bot_instances")).scalar_one() == "probe-bot"
        if db_engine.dialect.name == "sqlite":
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1, "keys back on after"


# --- the schema the migrations build is the schema in models.py ---------------------------------------------------


def test_migrations_at_head_match_the_models_exactly(db_engine: Engine) -> None:
    """Fails when models.py changes without a migration: add one (see migrations/env.py)."""
    migrate.upgrade(db_engine)
    assert _differences(db_engine) == []


def test_the_model_comparison_notices_a_model_change(db_engine: Engine) -> None:
    migrate.upgrade(db_engine)
    changed = MetaData(naming_convention=Base.metadata.naming_convention)
    for table in Base.metadata.tables.values():
        table.to_metadata(changed)
    changed.tables["orders"].append_column(Column("venue_tag", String(16)))
    changed.tables["fills"].c.symbol.type = String(40)
    found = _differences(db_engine, changed)
    assert ("add_column", None, "orders", changed.tables["orders"].c.venue_tag) in found
    assert any(d[0][0] == "modify_type" and d[0][2:4] == ("fills", "symbol") for d in found if isinstance(d, list))


# --- ensure_current: a bot refuses a database whose schema is not the one it was written for ----------------------


def _with_password(db_url: str) -> Engine:
    """On PostgreSQL, a URL with a password (trust auth ignores it) to check the message hides it."""
    url = make_url(db_url)
    if url.get_backend_name() == "postgresql":
        url = url.set(password="s3cret-pw")
    return make_engine(url.render_as_string(hide_password=False))


def test_ensure_current_refuses_an_empty_database_and_says_what_to_run(db_url: str) -> None:
    engine = _with_password(db_url)
    try:
        with pytest.raises(Fatal) as raised:
            migrate.ensure_current(engine, "bot.yaml")
    finally:
        engine.dispose()
    message = str(raised.value)
    assert migrate.describe(engine) in message
    assert "s3cret-pw" not in message
    assert "is at revision empty but tradeforge needs 0006_split_orders" in message
    assert message.endswith("run: tradeforge db upgrade --config bot.yaml")


def test_ensure_current_refuses_an_out_of_date_database(db_engine: Engine, probe_head: str) -> None:
    migrate.upgrade(db_engine, "0001_initial")
    with pytest.raises(Fatal) as raised:
        migrate.ensure_current(db_engine, "base.yaml --config live.yaml")
    assert str(raised.value) == (
        f"database {migrate.describe(db_engine)} is at revision 0001_initial but tradeforge needs {probe_head}; "
        "run: tradeforge db upgrade --config base.yaml --config live.yaml"
    )
    migrate.upgrade(db_engine)
    migrate.ensure_current(db_engine, "base.yaml")


def test_a_database_migrated_by_a_newer_tradeforge_is_refused_not_touched(db_engine: Engine) -> None:
    migrate.upgrade(db_engine)
    with db_engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0099_from_the_future'"))
    for refuse in (lambda: migrate.ensure_current(db_engine, "bot.yaml"), lambda: migrate.upgrade(db_engine)):
        with pytest.raises(Fatal, match=r"at revision 0099_from_the_future, which this version .* upgrade tradeforge$"):
            refuse()


def test_ensure_current_passes_an_upgraded_database(db_engine: Engine) -> None:
    migrate.upgrade(db_engine)
    migrate.ensure_current(db_engine, "bot.yaml")


# --- `tradeforge db` -------------------------------------------------------------------------------------------


def _write_config(tmp_path: Path, db_url: str | None, name: str = "bot.yaml") -> Path:
    document: dict[str, Any] = {
        "name": "migration-bot",
        "data_dir": str(tmp_path / "user_data"),
        "data": {"source": "sample"},
        "strategy": {"preset": "sma_cross"},
    }
    if db_url is not None:
        document["persistence"] = {"db_url": db_url}
    path = tmp_path / name
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


def _db(*args: str) -> Any:
    return CliRunner().invoke(db_app, list(args))


def test_db_upgrade_then_current_reports_up_to_date(db_url: str, tmp_path: Path) -> None:
    config = _write_config(tmp_path, db_url)
    behind = _db("current", "--config", str(config))
    assert behind.exit_code == 2, behind.output
    assert "revision  empty" in behind.stdout
    assert f"behind; run: tradeforge db upgrade --config {config}" in behind.stdout

    upgraded = _db("upgrade", "--config", str(config))
    assert upgraded.exit_code == 0, upgraded.output
    assert "empty → 0006_split_orders" in upgraded.stdout

    again = _db("upgrade", "--config", str(config))
    assert again.exit_code == 0, again.output
    assert "0006_split_orders → 0006_split_orders (already there, nothing to do)" in again.stdout

    current = _db("current", "--config", str(config))
    assert current.exit_code == 0, current.output
    assert "revision  0006_split_orders" in current.stdout
    assert "status    up to date" in current.stdout


def test_db_upgrade_without_db_url_uses_the_sqlite_file_in_data_dir(tmp_path: Path) -> None:
    config = _write_config(tmp_path, None)
    result = _db("upgrade", "--config", str(config), "--revision", "head")
    assert result.exit_code == 0, result.output
    database = tmp_path / "user_data" / "tradeforge.sqlite"
    assert database.is_file()
    assert str(database) in result.stdout
    engine = make_engine(f"sqlite:///{database}")
    try:
        assert migrate.current_revision(engine) == migrate.head_revision()
    finally:
        engine.dispose()


def test_db_current_on_an_unreachable_database_is_fatal_and_names_it(tmp_path: Path) -> None:
    config = _write_config(tmp_path, "postgresql://postgres:pw@127.0.0.1:1/nowhere")
    for command in ("current", "upgrade"):
        result = _db(command, "--config", str(config))
        assert isinstance(result.exception, Fatal), result.output
        message = str(result.exception)
        assert "postgresql+psycopg://postgres:***@127.0.0.1:1/nowhere is unreachable" in message
        assert ":pw@" not in message


def _db_mounted() -> bool:
    from tradeforge.cli import app

    return any(group.name == "db" for group in app.registered_groups)


@pytest.mark.skipif(not _db_mounted(), reason="db_app is not mounted in tradeforge/cli.py yet")
def test_console_script_db_upgrade_then_current(db_url: str, tmp_path: Path) -> None:
    config = _write_config(tmp_path, db_url)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, cwd=tmp_path, timeout=120)

    behind = run("db", "current", "--config", str(config))
    assert behind.returncode == 2, behind.stderr
    upgraded = run("db", "upgrade", "--config", str(config))
    assert upgraded.returncode == 0, upgraded.stderr
    assert "empty → 0006_split_orders" in upgraded.stdout
    current = run("db", "current", "--config", str(config))
    assert current.returncode == 0, current.stderr
    assert "up to date" in current.stdout


@pytest.mark.skipif(not _db_mounted(), reason="db_app is not mounted in tradeforge/cli.py yet")
def test_console_script_db_upgrade_on_unreachable_database_exits_2(tmp_path: Path) -> None:
    config = _write_config(tmp_path, "postgresql://postgres@127.0.0.1:1/nowhere")
    result = subprocess.run(
        [str(SCRIPT), "db", "upgrade", "--config", str(config)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2
    assert "127.0.0.1:1/nowhere is unreachable" in " ".join(result.stderr.split())  # rich wraps at 80 columns
    assert "Traceback" not in result.stderr
