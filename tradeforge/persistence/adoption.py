"""Adopting an order the venue holds under this bot's client id prefix but the database lacks (a
database restored from an older backup, say): its row is written with the venue's data, in a trade,
so that its fills are recorded like any other order's (startup reconciliation, DESIGN step 3).

Client ids are `<prefix>-<trade id>-<sequence>`, and the repository mints the next order of a trade
as `sequence = orders in the trade + 1`. An adopted order therefore goes where that rule stays
collision-free: into its own trade when it is exactly that trade's next order, or into a new trade
carrying the id its client id names when no trade has that id yet (later trades get higher ids).
Anything else would let a future intent mint an id the venue already holds: `NotAdoptable`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import cast

from sqlalchemy import Connection, Table, func, insert, select, text

from tradeforge.persistence.models import Event, Order, OrderStatus, Trade
from tradeforge.persistence.repository import ADOPTED, Repository, utc_now
from tradeforge.resilience.errors import Rejected

_TRADES = cast(Table, Trade.__table__)
_ORDERS = cast(Table, Order.__table__)
_EVENTS = cast(Table, Event.__table__)


class NotAdoptable(Rejected):
    """The order carries this bot's prefix but cannot be written without risking a client id clash."""


@dataclass(frozen=True)
class AdoptedOrder:
    client_order_id: str
    trade_id: int
    role: str  # entry | exit
    new_trade: bool


def parse_client_id(prefix: str, client_order_id: str) -> tuple[int, int] | None:
    """(trade id, sequence) of one of this bot's client ids, None when it is not one."""
    found = re.fullmatch(rf"{re.escape(prefix)}-(\d+)-(\d+)", client_order_id)
    return (int(found[1]), int(found[2])) if found else None


def adopt_order(
    repository: Repository,
    client_order_id: str,
    *,
    symbol: str,
    side: str,
    type: str,
    amount: Decimal,
    price: Decimal | None,
    stop_price: Decimal | None,
    venue_order_id: str | None,
) -> AdoptedOrder:
    """Write the order (status open; the caller then syncs its fills) and, if needed, its trade, with a
    `reconcile` event saying what was decided, in one transaction."""
    parsed = parse_client_id(repository.prefix, client_order_id)
    if parsed is None:
        raise NotAdoptable(f"order {client_order_id}: not a client id this bot mints ({repository.prefix}-<trade>-<n>)")
    trade_id, sequence = parsed
    now = utc_now()
    with repository.engine.begin() as connection:
        trade = connection.execute(
            select(_TRADES.c.bot_id, _TRADES.c.symbol, _TRADES.c.side).where(_TRADES.c.id == trade_id)
        ).first()
        new_trade = trade is None
        if trade is None:
            # Its first order opened it; a later one (on a spot account) adds to or reduces a long.
            trade_side = ("long" if side == "buy" else "short") if sequence == 1 else "long"
            connection.execute(
                insert(_TRADES).values(id=trade_id, bot_id=repository.bot_id, symbol=symbol, side=trade_side, state={})
            )
            _advance_trade_ids(connection)
        else:
            owner, trade_symbol, trade_side = trade
            orders = connection.execute(
                select(func.count()).select_from(_ORDERS).where(_ORDERS.c.trade_id == trade_id)
            ).scalar_one()
            if owner != repository.bot_id or trade_symbol != symbol or sequence != orders + 1:
                raise NotAdoptable(
                    f"order {client_order_id} ({side} {amount} {symbol}) names trade {trade_id}, which "
                    + (
                        "belongs to another bot"
                        if owner != repository.bot_id
                        else f"is on {trade_symbol}"
                        if trade_symbol != symbol
                        else f"has {orders} orders here (so its next order would be number {orders + 1})"
                    )
                    + ": adopting it could clash with a future order id; cancel it on the exchange or "
                    "restore the database that placed it"
                )
        entry_side = "buy" if trade_side == "long" else "sell"
        role = "entry" if side == entry_side else "exit"
        connection.execute(
            insert(_ORDERS).values(
                bot_id=repository.bot_id,
                trade_id=trade_id,
                client_order_id=client_order_id,
                venue_order_id=venue_order_id,
                symbol=symbol,
                side=side,
                type=type,
                role=role,
                reason=ADOPTED,
                amount=amount,
                price=price,
                stop_price=stop_price,
                status=OrderStatus.OPEN,
                created_at=now,
                updated_at=now,
            )
        )
        connection.execute(
            insert(_EVENTS).values(
                bot_id=repository.bot_id,
                time=now,
                kind="reconcile",
                message=f"adopted {client_order_id} ({role} {side} {amount} {symbol} {type}) into "
                f"{'new ' if new_trade else ''}trade {trade_id}",
                data={
                    "decision": "adopted",
                    "client_order_id": client_order_id,
                    "venue_order_id": venue_order_id,
                    "trade_id": trade_id,
                    "new_trade": new_trade,
                },
            )
        )
    return AdoptedOrder(client_order_id, trade_id, role, new_trade)


def _advance_trade_ids(connection: Connection) -> None:
    """PostgreSQL's id sequence does not see an explicit id: move it past the highest (SQLite picks
    max(id) + 1 by itself)."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT setval(pg_get_serial_sequence('trades', 'id'), (SELECT max(id) FROM trades))"))
