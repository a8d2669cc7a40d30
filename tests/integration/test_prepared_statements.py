"""Specification of prepared statements (tradeforge/persistence/prepared.py), on SQLite and on
PostgreSQL: a statement run on the driver's cursor gives the driver exactly what SQLAlchemy gives it
(so stored money, times, enums and JSON are byte for byte what the ORM stores) and reads rows back as
SQLAlchemy reads them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from psycopg.types.json import Json
from sqlalchemy import Connection, Engine, bindparam, event, insert, select, update
from sqlalchemy.exc import IntegrityError, StatementError

from tradeforge.persistence import migrate
from tradeforge.persistence.models import Base, OrderStatus
from tradeforge.persistence.prepared import Prepared, Statements
from tradeforge.persistence.repository import FillReport, OrderIntent, Repository

ORDERS, TRADES, FILLS, EVENTS = (Base.metadata.tables[name] for name in ("orders", "trades", "fills", "events"))
PARIS = dt.timezone(dt.timedelta(hours=2))
T0 = dt.datetime(2024, 3, 1, 14, 0, 0, 123456, tzinfo=PARIS)  # stored as 12:00:00.123456 UTC
TINY, HUGE = Decimal("0.000000000000000001"), Decimal("123456789012345678.123456789012345678")


@pytest.fixture
def engine(db_engine: Engine) -> Engine:
    migrate.upgrade(db_engine)
    return db_engine


@pytest.fixture
def repository(engine: Engine) -> Iterator[Repository]:
    repository = Repository.attach(engine, "prepared-bot", "h", "paper")
    intent = OrderIntent(None, "BTC/USDT", "buy", "limit", "entry", Decimal("0.5"), price=Decimal("100.25"))
    recorded = repository.record_intent(intent)
    repository.record_fill(recorded.client_order_id, FillReport("v-1", Decimal("0.5"), Decimal("100.25"), T0))
    yield repository
    repository.close()


def order_values(bot_id: int) -> dict[str, Any]:
    return {
        "bot_id": bot_id,
        "trade_id": 1,
        "client_order_id": "tf000000-1-9",
        "symbol": "BTC/USDT",
        "side": "sell",
        "type": "stop",
        "role": "protective",
        "reason": None,
        "amount": HUGE,
        "price": None,
        "stop_price": TINY,
        "status": OrderStatus.PENDING_SUBMIT,
        "filled": Decimal(0),
        "fees": Decimal("-0.0"),
        "created_at": T0,
        "updated_at": T0 + dt.timedelta(microseconds=1),
        "raw": {"clientOrderId": "tf000000-1-9", "price": "1e-18", "nested": [1, None, True]},
    }


def sent_by_sqlalchemy(connection: Connection, statement: Any, values: dict[str, Any]) -> tuple[str, Any]:
    """The SQL and parameters SQLAlchemy hands the driver to run `statement` with `values`."""
    sent: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, sql: str, parameters: Any, _context: Any, _many: bool) -> None:
        sent.append((sql, parameters))

    event.listen(connection, "before_cursor_execute", capture)
    try:
        connection.execute(statement, values)
    finally:
        event.remove(connection, "before_cursor_execute", capture)
    (only,) = sent
    return only


def as_sent(parameters: Any) -> Any:
    """Comparable parameters: psycopg's JSON wrapper (what SQLAlchemy sends PostgreSQL) compares by
    identity, so it becomes what it wraps and how it will be dumped."""
    if isinstance(parameters, list | tuple):
        return [as_sent(value) for value in parameters]
    if isinstance(parameters, dict):
        return {key: as_sent(value) for key, value in parameters.items()}
    if isinstance(parameters, Json):
        return ("json", parameters.obj, parameters.dumps)
    return parameters


def statements_and_values(bot_id: int) -> list[tuple[Any, dict[str, Any]]]:
    events = {"bot_id_0": bot_id, "time_0": T0, "kind_0": "a", "message_0": "ünïcode ✓", "data_0": {"trade_id": 1}}
    events |= {"bot_id_1": bot_id, "time_1": T0, "kind_1": "b", "message_1": "", "data_1": None}
    two_events = insert(EVENTS).values(
        [
            {name: bindparam(f"{name}_{row}", type_=EVENTS.c[name].type) for name in EVENTS.c.keys()[1:]}
            for row in (0, 1)
        ]
    )
    return [
        (insert(ORDERS).returning(ORDERS.c.id), order_values(bot_id)),
        (
            update(ORDERS).where(ORDERS.c.id == bindparam("row_id")),
            {"row_id": 1, "status": OrderStatus.CANCELED, "average_price": HUGE, "updated_at": T0, "raw": None},
        ),
        (two_events, events),
        (
            select(TRADES.c.id).where(TRADES.c.bot_id == bindparam("bot_id"), TRADES.c.side == "long"),
            {"bot_id": bot_id},
        ),
    ]


@pytest.mark.parametrize("case", range(4), ids=["insert", "update", "multi-row insert", "select"])
def test_the_driver_gets_the_sql_and_parameters_sqlalchemy_gives_it(
    engine: Engine, repository: Repository, case: int
) -> None:
    statement, values = statements_and_values(repository.bot_id)[case]
    with engine.connect() as connection, connection.begin() as transaction:
        sql, parameters = sent_by_sqlalchemy(connection, statement, values)
        transaction.rollback()
    prepared = Prepared(statement, engine.dialect, None if case == 3 else tuple(values))
    assert prepared.sql == sql
    assert as_sent(prepared.parameters(values)) == as_sent(parameters)


def test_rows_come_back_as_sqlalchemy_reads_them(engine: Engine, repository: Repository) -> None:
    query = (
        select(ORDERS.c.id, ORDERS.c.status, ORDERS.c.amount, ORDERS.c.created_at, ORDERS.c.raw, FILLS.c.price)
        .select_from(ORDERS.outerjoin(FILLS, FILLS.c.order_id == ORDERS.c.id))
        .where(ORDERS.c.bot_id == bindparam("bot_id"))
        .order_by(ORDERS.c.id)
    )
    repository.record_intent(OrderIntent(1, "BTC/USDT", "sell", "stop", "protective", TINY, stop_price=HUGE))
    repository.mark_order(f"{repository.prefix}-1-2", OrderStatus.OPEN, raw={"price": "1e-18", "list": [1, None]})
    with engine.connect() as connection:
        expected = [tuple(row) for row in connection.execute(query, {"bot_id": repository.bot_id})]
        cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        rows = Prepared(query, engine.dialect).run(cursor, {"bot_id": repository.bot_id})
    assert rows == expected
    assert rows[1][1] is OrderStatus.OPEN and rows[1][2] == TINY and rows[1][4] == {"price": "1e-18", "list": [1, None]}
    assert rows[0][3].tzinfo is not None and rows[0][3].utcoffset() == dt.timedelta(0)


def test_a_statement_that_needs_column_defaults_is_refused_naming_the_columns(engine: Engine) -> None:
    with pytest.raises(ValueError, match="status, filled, fees"):
        Prepared(insert(ORDERS), engine.dialect, ("bot_id", "trade_id", "client_order_id", "amount"))


def test_errors_are_sqlalchemys_naming_the_statement(engine: Engine, repository: Repository) -> None:
    statements = Statements(engine.dialect)
    values = order_values(repository.bot_id) | {"client_order_id": f"{repository.prefix}-1-1"}  # taken
    with engine.connect() as connection:
        cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        with pytest.raises(IntegrityError, match="INSERT INTO orders"):
            statements(insert(ORDERS), tuple(values)).run(cursor, values)
        connection.connection.driver_connection.rollback()  # type: ignore[union-attr]
        naive = values | {"created_at": dt.datetime(2024, 3, 1)}
        with pytest.raises(StatementError, match="naive datetime"):
            statements(insert(ORDERS), tuple(values)).run(cursor, naive)


def test_each_statement_compiles_once_per_set_of_columns(engine: Engine) -> None:
    statements = Statements(engine.dialect)
    changes = update(ORDERS).where(ORDERS.c.id == bindparam("row_id"))
    status = statements(changes, ("row_id", "status"))
    assert statements(changes, ("row_id", "status")) is status
    assert statements(changes, ("row_id", "status", "raw")) is not status
