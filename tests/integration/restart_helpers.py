"""What the snapshot-restart suites compare and how they stop a bot part way."""

from __future__ import annotations

import threading
from typing import Any

from tradeforge.persistence.database import make_engine
from tradeforge.persistence.repository import Repository


def recorded(url: str, name: str) -> dict[str, Any]:
    """Everything a restarted run must reproduce exactly, and its recovery events."""
    repository = Repository.attach(make_engine(url), name, "", "paper")
    return {
        "trades": repository.trade_records(),
        "orders": [
            (o.client_order_id, o.side, o.type, o.role, o.amount, o.status, o.filled) for o in repository.orders()
        ],
        "fills": [(f.venue_trade_id, f.amount, f.price, f.fee, f.time) for f in repository.fills()],
        "equity": [(s.time, s.equity, s.cash) for s in repository.equity()],
        "recoveries": [e.data for e in repository.events("recovered")],
    }


def stop_after(repository: Repository, candles: int, stop: threading.Event) -> None:
    """Set `stop` once the bot has recorded about `candles` new one-hour candles (or was stopped otherwise)."""
    start = max(repository.cursors().values(), default=None)
    while not stop.wait(0.005):
        now = max(repository.cursors().values(), default=None)
        if now is not None and (start is None or (now - start).total_seconds() >= candles * 3600):
            stop.set()
