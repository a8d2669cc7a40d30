"""The outbox table: one row per alert and destination, written before delivery, marked after.

Rows are inserted ignoring duplicates on (bot, destination, dedupe key), so an alert derived again
(replayed history after a crash, a retried enqueue) is a no-op. Delivery follows row id order per
destination. All methods are one short transaction each; the delivery thread is the only writer."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Engine, Table, and_, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from tradeforge.notifications.alerts import TRADING, Alert
from tradeforge.persistence.models import NotificationOutbox, OutboxStatus

_OUTBOX = cast(Table, NotificationOutbox.__table__)


@dataclass(frozen=True)
class OutboxRow:
    id: int
    destination: str
    dedupe_key: str
    kind: str
    level: str
    event_time: dt.datetime
    created_at: dt.datetime
    data: dict[str, Any]
    status: str
    attempts: int
    first_attempt_at: dt.datetime | None
    next_attempt_at: dt.datetime | None
    last_error: str | None


class Outbox:
    """One bot's outbox rows."""

    def __init__(self, engine: Engine, bot_id: int) -> None:
        self.engine = engine
        self.bot_id = bot_id
        self._insert = _ignoring_duplicates(engine.dialect.name)

    def add(self, entries: Iterable[tuple[str, Alert]], now: dt.datetime) -> int:
        """Store (destination, alert) pairs; returns how many were new."""
        rows = [
            {
                "bot_id": self.bot_id,
                "destination": destination,
                "dedupe_key": alert.dedupe_key[:160],
                "kind": alert.kind,
                "level": alert.level,
                "event_time": alert.time,
                "created_at": now,
                "data": alert.data,
                "status": OutboxStatus.PENDING,
                "attempts": 0,
            }
            for destination, alert in entries
        ]
        if not rows:
            return 0
        with self.engine.begin() as connection:
            if self._insert is not None:
                # RETURNING, not rowcount: psycopg reports -1 for INSERT … ON CONFLICT DO NOTHING
                return sum(len(connection.execute(self._insert, row).all()) for row in rows)
        added = 0
        for row in rows:  # a database without INSERT … ON CONFLICT: one transaction per row
            try:
                with self.engine.begin() as connection:
                    connection.execute(insert(_OUTBOX), row)
                    added += 1
            except IntegrityError:
                continue
        return added

    def high_water(self) -> dt.datetime | None:
        """The newest trading alert's candle time: replayed alerts older than this were all stored."""
        query = select(func.max(_OUTBOX.c.event_time)).where(
            _OUTBOX.c.bot_id == self.bot_id, _OUTBOX.c.kind.in_(sorted(TRADING))
        )
        with self.engine.connect() as connection:
            value = connection.execute(query).scalar()
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return cast("dt.datetime | None", value)

    def destinations(self) -> list[str]:
        """Destinations with pending rows."""
        query = (
            select(_OUTBOX.c.destination)
            .where(_OUTBOX.c.bot_id == self.bot_id, _OUTBOX.c.status == OutboxStatus.PENDING)
            .distinct()
        )
        with self.engine.connect() as connection:
            return sorted(connection.execute(query).scalars())

    def pending(self, destination: str, limit: int = 100) -> list[OutboxRow]:
        """The destination's undelivered rows, oldest first."""
        query = (
            select(NotificationOutbox)
            .where(
                NotificationOutbox.bot_id == self.bot_id,
                NotificationOutbox.destination == destination,
                NotificationOutbox.status == OutboxStatus.PENDING,
            )
            .order_by(NotificationOutbox.id)
            .limit(limit)
        )
        return self._rows(query)

    def rows(self, status: OutboxStatus | None = None) -> list[OutboxRow]:
        query = select(NotificationOutbox).where(NotificationOutbox.bot_id == self.bot_id)
        if status is not None:
            query = query.where(NotificationOutbox.status == status)
        return self._rows(query.order_by(NotificationOutbox.id))

    def _rows(self, query: Any) -> list[OutboxRow]:
        from sqlalchemy.orm import Session

        with Session(self.engine) as session:
            return [
                OutboxRow(
                    r.id,
                    r.destination,
                    r.dedupe_key,
                    r.kind,
                    r.level,
                    r.event_time,
                    r.created_at,
                    r.data,
                    r.status.value,
                    r.attempts,
                    r.first_attempt_at,
                    r.next_attempt_at,
                    r.last_error,
                )
                for r in session.scalars(query)
            ]

    def attempting(self, ids: Sequence[int], now: dt.datetime) -> None:
        """Count the attempt before sending: a crash mid-send still shows it was tried."""
        with self.engine.begin() as connection:
            connection.execute(
                update(_OUTBOX)
                .where(_OUTBOX.c.id.in_(ids))
                .values(
                    attempts=_OUTBOX.c.attempts + 1,
                    first_attempt_at=func.coalesce(_OUTBOX.c.first_attempt_at, now),
                )
            )

    def delivered(self, ids: Sequence[int], now: dt.datetime) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                update(_OUTBOX)
                .where(_OUTBOX.c.id.in_(ids))
                .values(status=OutboxStatus.DELIVERED, delivered_at=now, next_attempt_at=None, last_error=None)
            )

    def postpone(self, ids: Sequence[int], until: dt.datetime, error: str) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                update(_OUTBOX).where(_OUTBOX.c.id.in_(ids)).values(next_attempt_at=until, last_error=error[:2000])
            )

    def dead_letter(self, ids: Sequence[int], error: str) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                update(_OUTBOX)
                .where(_OUTBOX.c.id.in_(ids))
                .values(status=OutboxStatus.FAILED, next_attempt_at=None, last_error=error[:2000])
            )

    def retry(self, ids: Sequence[int] | None = None) -> int:
        """Dead-lettered rows (all, or these ids) back to pending with fresh attempts; returns how many."""
        condition = and_(_OUTBOX.c.bot_id == self.bot_id, _OUTBOX.c.status == OutboxStatus.FAILED)
        if ids is not None:
            condition = and_(condition, _OUTBOX.c.id.in_(ids))
        with self.engine.begin() as connection:
            result = connection.execute(
                update(_OUTBOX)
                .where(condition)
                .values(status=OutboxStatus.PENDING, attempts=0, first_attempt_at=None, next_attempt_at=None)
            )
        return max(result.rowcount, 0)

    def counts(self) -> dict[str, int]:
        query = select(_OUTBOX.c.status, func.count()).where(_OUTBOX.c.bot_id == self.bot_id).group_by(_OUTBOX.c.status)
        with self.engine.connect() as connection:
            return {str(status): count for status, count in connection.execute(query)}


def _ignoring_duplicates(dialect: str) -> Any:
    key = (_OUTBOX.c.bot_id, _OUTBOX.c.destination, _OUTBOX.c.dedupe_key)
    if dialect == "sqlite":
        from sqlalchemy.dialects import sqlite

        return sqlite.insert(_OUTBOX).on_conflict_do_nothing(index_elements=key).returning(_OUTBOX.c.id)
    if dialect == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(_OUTBOX).on_conflict_do_nothing(index_elements=key).returning(_OUTBOX.c.id)
    return None
