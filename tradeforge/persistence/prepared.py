"""Statements compiled once and run on the driver's own cursor, for the repository's per-order and
per-candle writes. SQLAlchemy spends ~35 µs on every execution (compiled-cache lookup, execution
context, events, result objects), more than SQLite takes to run the statement; a Prepared statement
keeps only what the driver needs: the SQL text, the order of its parameters and the bind and result
processors of their types. These are SQLAlchemy's own, so what is stored, and what is read back, is
exactly what SQLAlchemy would store and read (Decimal text on SQLite, NUMERIC on PostgreSQL, UTC
times, enum values, JSON)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from sqlalchemy import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

Processor = Callable[[Any], Any] | None


class Prepared:
    """One Core statement compiled for one dialect. Statements that would fill a column from its
    Python-side default are refused: SQLAlchemy computes those per execution, and this does not."""

    def __init__(self, statement: ClauseElement, dialect: Dialect, keys: Sequence[str] | None = None) -> None:
        compiled = cast(SQLCompiler, statement.compile(dialect=dialect, column_keys=list(keys) if keys else None))
        prefetched = [*compiled.insert_prefetch, *compiled.update_prefetch]
        if prefetched:
            names = ", ".join(column.key for column in prefetched)
            raise ValueError(f"give every column a value, defaults are not applied here: {names} ({compiled})")
        self.sql = compiled.string
        self.dialect = dialect
        self._error = dialect.loaded_dbapi.Error
        escaped = compiled.escaped_bind_names
        binds = {name: bind for bind, name in compiled.bind_names.items()}
        order = compiled.positiontup if compiled.positional else list(binds)
        assert order is not None
        self._positional = compiled.positional
        # (name, the driver's name for it, the type's bind processor), in the driver's order
        self._binds: list[tuple[str, str, Processor]] = []
        self._constants: dict[str, Any] = {}  # values written into the statement (a literal, say)
        for name in order:
            bind = binds[name]
            self._binds.append((name, escaped.get(name, name), bind.type.dialect_impl(dialect).bind_processor(dialect)))
            if not bind.required:
                self._constants[name] = bind.effective_value
        returned = getattr(statement, "exported_columns", ())  # a SELECT's columns, or RETURNING's, or none
        self._result_types = [column.type.dialect_impl(dialect) for column in returned]
        self._result_processors: list[Processor] | None = None  # known at the first result's description

    def parameters(self, values: Mapping[str, Any]) -> list[Any] | dict[str, Any]:
        """What the driver is given for `values`, in the dialect's paramstyle."""
        if self._constants:
            values = {**self._constants, **values}
        if self._positional:
            return [values[name] if process is None else process(values[name]) for name, _, process in self._binds]
        return {key: values[name] if process is None else process(values[name]) for name, key, process in self._binds}

    def run(self, cursor: Any, values: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """Execute on a DBAPI cursor; the rows it returns (all of them, so no statement is left
        open), as SQLAlchemy would have converted them. Errors are SQLAlchemy's exceptions."""
        try:
            parameters = self.parameters(values)
        except Exception as exc:  # a value a type refuses (a naive datetime, say), as SQLAlchemy reports it
            raise DBAPIError.instance(self.sql, dict(values), exc, self._error) from exc
        try:
            cursor.execute(self.sql, parameters)
            if not self._result_types:
                return []
            rows = cursor.fetchall()
        except self._error as exc:
            raise DBAPIError.instance(self.sql, parameters, exc, self._error) from exc
        processors = self._result_processors
        if processors is None:
            processors = self._result_processors = [
                kind.result_processor(self.dialect, column[1])
                for kind, column in zip(self._result_types, cursor.description, strict=True)
            ]
        if not any(processors):  # ids, counts, text
            return list(rows)
        return [
            tuple(process(value) if process else value for process, value in zip(processors, row, strict=True))
            for row in rows
        ]


class Statements:
    """The prepared statements of one database, each compiled on its first use."""

    def __init__(self, dialect: Dialect) -> None:
        self._dialect = dialect
        self._prepared: dict[tuple[ClauseElement, tuple[str, ...] | None], Prepared] = {}

    def __call__(self, statement: ClauseElement, keys: Sequence[str] | None = None) -> Prepared:
        key = (statement, tuple(keys) if keys is not None else None)
        prepared = self._prepared.get(key)
        if prepared is None:
            prepared = self._prepared[key] = Prepared(statement, self._dialect, keys)
        return prepared


class Cursor:
    """A driver cursor and the statements of its database: what a transaction's statements run on."""

    def __init__(self, cursor: Any, statements: Statements) -> None:
        self.cursor = cursor
        self._statements = statements

    def read(self, statement: ClauseElement, values: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """A SELECT's rows."""
        return self._statements(statement).run(self.cursor, values)

    def write(self, statement: ClauseElement, values: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """An INSERT or UPDATE of the columns named in `values` (RETURNING's rows, if any)."""
        return self._statements(statement, tuple(values)).run(self.cursor, values)

    @property
    def rowcount(self) -> int:
        """Rows the last statement changed."""
        return int(self.cursor.rowcount)
