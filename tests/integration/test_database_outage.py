"""Specification of a bot whose database goes away while it runs: it stops trading and waits,
retrying with backoff, says so, never acts on state the database does not have, and carries on
when the database is back with exactly the results of a run without the outage.

Outages are real: on SQLite another connection holds the write lock; on PostgreSQL the bot's
role loses its login and its sessions are terminated (tests/integration/conftest.py's schema).
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tradeforge.config.schema import BotConfig
from tradeforge.engine.journal import RepositoryJournal
from tradeforge.engine.outage import Persist
from tradeforge.engine.runtime import RunOutcome, run_bot
from tradeforge.persistence.database import make_engine
from tradeforge.persistence.migrate import upgrade
from tradeforge.persistence.repository import DatabaseUnavailable, Repository

OUTAGE_SECONDS = 1.5


def bot_config(data_dir: Path, db_url: str, busy_timeout_ms: int = 10_000) -> BotConfig:
    return BotConfig.model_validate(
        {
            "name": "outage-bot",
            "data_dir": str(data_dir),
            "data": {
                "source": "replay",
                "symbols": ["BTC/USDT"],
                "timeframe": "1h",
                "speed": "max",
                "end": "2023-04-01",
            },
            "strategy": {
                "entry": {"name": "sma_cross", "fast": 5, "slow": 20},
                "exits": {"stop_loss": {"pct": 0.02}},
                "sizing": {"name": "percent_equity", "pct": 90},
            },
            "persistence": {"db_url": db_url, "busy_timeout_ms": busy_timeout_ms},
        }
    )


def fingerprint(outcome: RunOutcome) -> tuple[Any, ...]:
    result = outcome.result
    trades = [(t.entry_time, t.exit_time, t.size, t.entry_price, t.exit_price, t.pnl) for t in result.trades]
    return result.final_value, trades


def stored(db_url: str) -> tuple[list[tuple[Any, ...]], list[str]]:
    engine = make_engine(db_url)
    try:
        repository = Repository.attach(engine, "outage-bot", "", "paper")
        orders = [(o.client_order_id, o.status.value, o.filled) for o in repository.orders()]
        return orders, [e.message for e in repository.events("database_outage")]
    finally:
        engine.dispose()


def run_with_outage_on_first_trade(config: BotConfig, outage: Callable[[], Callable[[], None]]) -> tuple[Any, str]:
    """run_bot; when its first trade closes, `outage()` starts one; it ends OUTAGE_SECONDS later."""
    said: list[str] = []
    started = threading.Event()

    def say(line: str) -> None:
        said.append(line)
        if " closed " in line and not started.is_set():
            started.set()
            end = outage()
            threading.Timer(OUTAGE_SECONDS, end).start()

    outcome = run_bot(config, "bot.yaml", say=say)
    assert started.is_set(), "the run closed no trade: the outage never happened"
    return outcome, "\n".join(said)


def sqlite_write_lock(path: Path) -> Callable[[], None]:
    """Another connection takes SQLite's write lock; the returned function releases it."""
    holder = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")

    def release() -> None:
        holder.execute("COMMIT")
        holder.close()

    return release


def test_sqlite_locked_mid_run_the_bot_waits_and_ends_as_without_the_outage(tmp_path: Path) -> None:
    calm_url = f"sqlite:///{tmp_path}/calm.sqlite"
    upgrade(make_engine(calm_url))
    calm = run_bot(bot_config(tmp_path / "calm", calm_url), "bot.yaml", say=lambda _: None)

    path = tmp_path / "locked.sqlite"
    url = f"sqlite:///{path}"
    upgrade(make_engine(url))
    outcome, output = run_with_outage_on_first_trade(
        bot_config(tmp_path / "locked", url, busy_timeout_ms=50), lambda: sqlite_write_lock(path)
    )

    assert fingerprint(outcome) == fingerprint(calm)
    assert "database sqlite:///" in output and "is unavailable: database is locked" in output
    assert "no new orders until it is back" in output and "database back after" in output
    orders, outages = stored(url)
    assert orders == stored(calm_url)[0]
    assert len(outages) >= 1 and outages[0].startswith("database back after")


@pytest.fixture
def postgres_role(db_url: str) -> Iterator[tuple[str, Callable[[], Callable[[], None]]]]:
    """The test schema reached through a role of its own, and a way to cut that role off (sessions
    terminated, new logins refused) until the returned function restores it."""
    if not db_url.startswith("postgresql"):
        pytest.skip("a PostgreSQL outage")
    role = f"tf_outage_{uuid.uuid4().hex[:10]}"
    admin = create_engine(db_url, isolation_level="AUTOCOMMIT")
    schema = make_url(db_url).query["options"].split("=", 1)[1]  # type: ignore[union-attr]
    with admin.connect() as connection:
        connection.execute(text(f'CREATE ROLE "{role}" LOGIN'))
        connection.execute(text(f'GRANT USAGE, CREATE ON SCHEMA "{schema}" TO "{role}"'))

    def cut_off() -> Callable[[], None]:
        with admin.connect() as connection:
            connection.execute(text(f'ALTER ROLE "{role}" NOLOGIN'))
            connection.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = :r"), {"r": role}
            )

        def restore() -> None:
            with admin.connect() as connection:
                connection.execute(text(f'ALTER ROLE "{role}" LOGIN'))

        return restore

    try:
        yield make_url(db_url).set(username=role).render_as_string(hide_password=False), cut_off
    finally:
        with admin.connect() as connection:
            connection.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = :r"), {"r": role}
            )
            connection.execute(text(f'DROP OWNED BY "{role}" CASCADE'))
            connection.execute(text(f'DROP ROLE "{role}"'))
        admin.dispose()


def test_postgresql_lost_mid_run_the_bot_waits_and_ends_as_without_the_outage(
    tmp_path: Path, postgres_role: tuple[str, Callable[[], Callable[[], None]]]
) -> None:
    calm_url = f"sqlite:///{tmp_path}/calm.sqlite"
    upgrade(make_engine(calm_url))
    calm = run_bot(bot_config(tmp_path / "calm", calm_url), "bot.yaml", say=lambda _: None)

    url, cut_off = postgres_role
    upgrade(make_engine(url))
    outcome, output = run_with_outage_on_first_trade(bot_config(tmp_path / "pg", url), cut_off)

    assert fingerprint(outcome) == fingerprint(calm)
    assert "is unavailable" in output and "database back after" in output
    orders, outages = stored(url)
    assert orders == stored(calm_url)[0]
    assert outages


# A bot process that loses its database (another connection takes SQLite's write lock) after its
# first trade, and whose operator then stops it (as SIGINT would) while it waits.
STOPPED_DURING_OUTAGE = """
import json, sqlite3, sys, threading
from tradeforge.config.schema import BotConfig
from tradeforge.engine.outage import StoppedDuringOutage
from tradeforge.engine.runtime import run_bot

config = BotConfig.model_validate(json.loads(sys.argv[1]))
stop, holders = threading.Event(), []

def say(line):
    if " closed " in line and not holders:
        holders.append(sqlite3.connect(sys.argv[2], isolation_level=None))
        holders[0].execute("BEGIN EXCLUSIVE")
    if "no new orders until it is back" in line:
        stop.set()

try:
    run_bot(config, "bot.yaml", stop=stop, say=say)
except StoppedDuringOutage as exc:
    print(exc)
    sys.exit(2)
"""


def test_stop_requested_during_an_outage_exits_and_a_restart_ends_as_without_the_outage(tmp_path: Path) -> None:
    calm_url = f"sqlite:///{tmp_path}/calm.sqlite"
    upgrade(make_engine(calm_url))
    calm = run_bot(bot_config(tmp_path / "calm", calm_url), "bot.yaml", say=lambda _: None)

    path = tmp_path / "locked.sqlite"
    url = f"sqlite:///{path}"
    upgrade(make_engine(url))
    config = bot_config(tmp_path / "locked", url, busy_timeout_ms=50)
    stopped = subprocess.run(
        [sys.executable, "-c", STOPPED_DURING_OUTAGE, config.model_dump_json(by_alias=True), str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert stopped.returncode == 2, stopped.stderr
    assert stopped.stdout.startswith("stopped while the database was unavailable")

    resumed = run_bot(config, "bot.yaml", say=lambda _: None)
    assert fingerprint(resumed) == fingerprint(calm)
    assert stored(url)[0] == stored(calm_url)[0]


class LosesOneCommitAnswer(sqlite3.Connection):
    """A driver connection whose next commit goes through but reports a failure, as a connection
    that drops after the server committed would."""

    armed = False

    def commit(self) -> None:
        super().commit()
        if LosesOneCommitAnswer.armed:
            LosesOneCommitAnswer.armed = False
            raise sqlite3.OperationalError("disk I/O error")


def test_an_intent_whose_commit_answer_was_lost_is_adopted_not_written_twice(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path}/db.sqlite", connect_args={"factory": LosesOneCommitAnswer})
    upgrade(engine)
    repository = Repository.attach(engine, "outage-bot", "h", "paper")
    said: list[str] = []
    journal = RepositoryJournal(repository, Persist(repository, say=said.append, first_wait=0.01))
    request: dict[str, Any] = {"price": None, "stop_price": None, "reason": "sma"}
    journal.intent(symbol="BTC/USDT", side="buy", type="market", role="entry", amount=Decimal("0.5"), **request)

    LosesOneCommitAnswer.armed = True
    exit_id = journal.intent(
        symbol="BTC/USDT", side="sell", type="market", role="exit", amount=Decimal("0.5"), **request
    )

    orders = repository.orders()
    assert [o.client_order_id for o in orders] == [f"{repository.prefix}-1-1", f"{repository.prefix}-1-2"]
    assert exit_id == orders[1].client_order_id
    assert "disk I/O error" in said[0] and said[-1].startswith("database back after")
    assert len(repository.events("order_intent")) == 2


def test_a_write_that_cannot_reach_the_database_is_reported_as_unavailable_naming_it() -> None:
    engine = make_engine("postgresql://postgres:secret-pw@127.0.0.1:1/nowhere")
    repository = Repository(engine, bot_id=1, prefix="tf000000")
    with pytest.raises(DatabaseUnavailable) as raised:
        repository.log_event("probe", "never stored")
    assert str(raised.value).startswith(
        "database postgresql+psycopg://postgres:***@127.0.0.1:1/nowhere is unavailable: "
    )
    assert "secret-pw" not in str(raised.value)
