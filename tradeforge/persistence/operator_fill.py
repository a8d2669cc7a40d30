"""A fill recorded by a person (`tradeforge db record-fill`): the venue filled one of the bot's orders
while the bot was down and no longer lists the execution (IB lists the current day's only), so
reconciliation cannot heal it and keeps the bot stopped.

Everything is checked before anything is written; the fill then goes in through
`Repository.record_fill`, exactly as a venue's report would (the order's filled amount and status, its
trade re-derived), and the person's decision is an `operator_fill` event naming who made it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from typing import Any, cast

from sqlalchemy import Table, bindparam, select

from tradeforge.persistence.audit import operator, plain
from tradeforge.persistence.models import TERMINAL_ORDER_STATUSES, Fill, Order, OrderStatus
from tradeforge.persistence.repository import ADOPTED, FillReport, Repository
from tradeforge.resilience.errors import ConfigError, Problem

EVENT = "operator_fill"  # event-log kind of a fill a person recorded
_FILLS = cast(Table, Fill.__table__)
_ORDERS = cast(Table, Order.__table__)
_MAX_TRADE_ID = 64  # the columns' lengths (models.Fill)
_MAX_CURRENCY = 16
_STORED_FILL = select(
    _FILLS.c.order_id, _FILLS.c.amount, _FILLS.c.price, _FILLS.c.fee, _FILLS.c.fee_currency, _FILLS.c.time
).where(
    _FILLS.c.bot_id == bindparam("bot_id"),
    _FILLS.c.symbol == bindparam("symbol"),
    _FILLS.c.venue_trade_id == bindparam("venue_trade_id"),
)


class FillRefused(ConfigError):
    """A fill that cannot be recorded as given; nothing was written."""

    headline = "fill not recorded"


@dataclass(frozen=True)
class PlannedFill:
    """A checked fill and what it will make of its order."""

    order: Order
    fill: FillReport
    filled_after: Decimal
    status_after: OrderStatus


def parse_fill(
    *,
    trade_id: str,
    amount: str,
    price: str,
    fee: str,
    fee_currency: str | None,
    time: str,
    now: dt.datetime,
) -> FillReport:
    """The fill as typed, checked without the database: every problem at once (FillRefused)."""
    problems: list[Problem] = []
    trade_id = trade_id.strip()
    if not trade_id:
        problems.append(Problem("--trade-id", "give the venue's trade id (IB: the execution id)"))
    elif len(trade_id) > _MAX_TRADE_ID:
        problems.append(Problem("--trade-id", f"is longer than {_MAX_TRADE_ID} characters", trade_id))
    quantity = _decimal(problems, "--amount", amount, "must be more than 0", strictly_positive=True)
    cost = _decimal(problems, "--price", price, "must be more than 0", strictly_positive=True)
    charged = _decimal(problems, "--fee", fee, "must be 0 or more", strictly_positive=False)
    currency = fee_currency.strip().upper() if fee_currency else None
    if fee_currency is not None and (not currency or len(currency) > _MAX_CURRENCY):
        problems.append(
            Problem("--fee-currency", f"give a currency code of at most {_MAX_CURRENCY} letters", fee_currency)
        )
    when = _time(problems, time, now)
    if problems:
        raise FillRefused(problems)
    assert quantity is not None and cost is not None and charged is not None and when is not None
    return FillReport(trade_id, quantity, cost, when, charged, currency)


def plan_fill(repository: Repository, client_order_id: str, fill: FillReport) -> PlannedFill | None:
    """Check the fill against the bot's order; None when exactly this fill is recorded already
    (a re-run changes nothing). FillRefused names what stands in the way."""
    order = repository.order(client_order_id)
    if order is None:
        if client_order_id.startswith(f"{repository.prefix}-"):
            why = "is not in this bot's database"
        else:
            why = f"is not this bot's (its orders' client ids start with {repository.prefix}-)"
        raise FillRefused([Problem("--order", why, client_order_id)])
    if fill.fee_currency is None and "/" in order.symbol:  # BASE/QUOTE: the fee is valued in QUOTE
        fill = replace(fill, fee_currency=order.symbol.partition("/")[2])
    stored = _stored_fill(repository, order.symbol, fill.venue_trade_id)
    if stored is not None:
        if stored == (order.id, fill.amount, fill.price, fill.fee, fill.fee_currency, fill.time):
            return None
        _, amount, price, fee, currency, time = stored
        holder = "this order" if stored[0] == order.id else _client_id_of(repository, stored[0])
        raise FillRefused(
            [
                Problem(
                    "--trade-id",
                    f"is already recorded for {holder} ({plain(amount)} @ {plain(price)}, fee {plain(fee)}"
                    f"{f' {currency}' if currency else ''}, at {time.isoformat()}), unlike what was given: "
                    "nothing changed",
                    fill.venue_trade_id,
                )
            ]
        )
    filled, amount = Decimal(order.filled), Decimal(order.amount)
    if order.status == OrderStatus.FILLED:
        raise FillRefused(
            [Problem("--order", f"is filled already ({plain(filled)} of {plain(amount)} recorded)", client_order_id)]
        )
    after = filled + fill.amount
    if after > amount:
        raise FillRefused(
            [
                Problem(
                    "--amount",
                    f"would fill order {client_order_id} {plain(after - amount)} more than its amount "
                    f"{plain(amount)} ({plain(filled)} recorded already, at most {plain(amount - filled)} missing)",
                    plain(fill.amount),
                )
            ]
        )
    # An adopted order's row is as old as its adoption, not the order: it may have filled before.
    if order.reason != ADOPTED and fill.time < order.created_at:
        raise FillRefused(
            [
                Problem(
                    "--time",
                    f"is before order {client_order_id} was created ({order.created_at.isoformat()})",
                    fill.time.isoformat(),
                )
            ]
        )
    # What record_fill does with the status: a fill healed after a cancel keeps the order canceled
    # unless it completes it.
    status: OrderStatus = order.status
    if status not in TERMINAL_ORDER_STATUSES or after == amount:
        status = OrderStatus.FILLED if after == amount else OrderStatus.PARTIALLY_FILLED
    return PlannedFill(order, fill, after, status)


def record_planned_fill(repository: Repository, planned: PlannedFill, by: str | None = None) -> Order | None:
    """Record the fill as a venue's report would be, then the audited `operator_fill` event; the order
    as it is now, or None when another writer recorded this fill since it was planned."""
    client_order_id, fill = planned.order.client_order_id, planned.fill
    if not repository.record_fill(client_order_id, fill):
        return None
    order = repository.order(client_order_id)
    assert order is not None
    by = by or operator()
    currency = f" {fill.fee_currency}" if fill.fee_currency else ""
    repository.log_event(
        EVENT,
        f"{by} recorded fill {fill.venue_trade_id} of {client_order_id} by hand: {plain(fill.amount)} @ "
        f"{plain(fill.price)}, fee {plain(fill.fee)}{currency}, at {fill.time.isoformat()}; the order has "
        f"{plain(Decimal(order.filled))} of {plain(Decimal(order.amount))} filled ({order.status.value})",
        {
            "by": by,
            "client_order_id": client_order_id,
            "venue_trade_id": fill.venue_trade_id,
            "amount": plain(fill.amount),
            "price": plain(fill.price),
            "fee": plain(fill.fee),
            "fee_currency": fill.fee_currency,
            "time": fill.time.isoformat(),
            "status_before": planned.order.status.value,
            "filled_before": plain(Decimal(planned.order.filled)),
            "status_after": order.status.value,
            "filled_after": plain(Decimal(order.filled)),
        },
    )
    return order


def _decimal(problems: list[Problem], option: str, text: str, rule: str, *, strictly_positive: bool) -> Decimal | None:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        problems.append(Problem(option, "is not a number", text))
        return None
    if not value.is_finite() or (value <= 0 if strictly_positive else value < 0):
        problems.append(Problem(option, rule, text))
        return None
    return value


def _time(problems: list[Problem], text: str, now: dt.datetime) -> dt.datetime | None:
    """An ISO 8601 time with its timezone, in UTC; not after `now`."""
    try:
        when = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        problems.append(Problem("--time", "is not an ISO 8601 time (e.g. 2024-05-02T14:30:00Z)", text))
        return None
    if when.tzinfo is None or when.utcoffset() is None:
        problems.append(
            Problem("--time", "has no timezone: add Z for UTC or the offset the venue shows, e.g. +02:00", text)
        )
        return None
    when = when.astimezone(dt.UTC)
    if when > now:
        problems.append(Problem("--time", f"is in the future (now is {now.isoformat(timespec='seconds')})", text))
        return None
    return when


def _stored_fill(repository: Repository, symbol: str, venue_trade_id: str) -> tuple[Any, ...] | None:
    """(order row id, amount, price, fee, fee currency, time) of the bot's fill with this trade id."""
    with repository.engine.connect() as connection:
        row = connection.execute(
            _STORED_FILL, {"bot_id": repository.bot_id, "symbol": symbol, "venue_trade_id": venue_trade_id}
        ).first()
    if row is None:
        return None
    order_id, amount, price, fee, currency, time = row
    return order_id, Decimal(amount), Decimal(price), Decimal(fee), currency, time


def _client_id_of(repository: Repository, order_row: int) -> str:
    with repository.engine.connect() as connection:
        found = connection.execute(select(_ORDERS.c.client_order_id).where(_ORDERS.c.id == order_row)).scalar()
    return f"order {found}" if found else f"order row {order_row}"
