"""The outbox table on SQLite and PostgreSQL: duplicates ignored by dedupe key, order kept, the
high-water mark of trading alerts, dead letters and their retry."""

from __future__ import annotations

import datetime as dt

from notify_helpers import T0, error, fill, outbox_at

from tradeforge.persistence.models import OutboxStatus


def test_alerts_are_stored_once_per_destination_in_order_and_dead_letters_can_be_retried(db_url: str) -> None:
    outbox = outbox_at(db_url)
    now = dt.datetime(2026, 11, 24, 12, tzinfo=dt.UTC)
    entries = [(d, a) for a in (fill(1), fill(2), error(3)) for d in ("telegram:1", "email")]
    assert outbox.add(entries, now) == 6
    assert outbox.add([("telegram:1", fill(2)), ("telegram:1", fill(4))], now) == 1, "fill 2 again is a no-op"
    assert [r.dedupe_key for r in outbox.pending("telegram:1")] == [
        "order:tf-1:filled",
        "order:tf-2:filled",
        "error:3",
        "order:tf-4:filled",
    ]
    assert outbox.high_water() == T0 + dt.timedelta(minutes=4), "the newest trading alert; errors do not count"
    first = outbox.pending("email")[0]
    outbox.attempting([first.id], now)
    outbox.dead_letter([first.id], "Rejected: refused")
    outbox.delivered([r.id for r in outbox.pending("telegram:1")], now)
    assert outbox.counts() == {"pending": 2, "delivered": 4, "failed": 1}
    [dead] = outbox.rows(OutboxStatus.FAILED)
    assert (dead.attempts, dead.last_error) == (1, "Rejected: refused")
    assert outbox.retry() == 1
    assert [r.dedupe_key for r in outbox.pending("email")] == ["order:tf-1:filled", "order:tf-2:filled", "error:3"]
    assert outbox.pending("email")[0].attempts == 0
    assert outbox.destinations() == ["email"]
