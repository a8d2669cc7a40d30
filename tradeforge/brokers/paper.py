"""The paper broker: Backtrader's simulated matching (identical to backtests) behind the same
order path as a live broker. Every order's intent is written to a journal, with its client order
id, before the broker accepts it; every status change and fill is journalled as it happens."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from decimal import Context, Decimal
from typing import Any, Protocol

import backtrader as bt

from tradeforge.brokers.simulated import SimulatedBroker
from tradeforge.persistence.repository import filled_after_split, split_ratio

_TYPES = {
    bt.Order.Market: "market",
    bt.Order.Close: "market",
    bt.Order.Limit: "limit",
    bt.Order.Stop: "stop",
    bt.Order.StopLimit: "stop_limit",
    bt.Order.StopTrail: "trailing_stop",
    bt.Order.StopTrailLimit: "trailing_stop",
}


def money(value: float | None) -> Decimal | None:
    """A float from Backtrader as the Decimal with the same shortest decimal representation."""
    return None if value is None else Decimal(repr(float(value)))


_AMOUNT_SCALE, _WIDE = Decimal("1e-18"), Context(prec=60)


def amount_of(size: float) -> Decimal:
    """An order or fill amount as the database stores it: 18 decimals (NUMERIC(36, 18) on PostgreSQL
    would round a 19th away, so that a fill of the unrounded amount overfilled its own order)."""
    return Decimal(repr(abs(float(size)))).quantize(_AMOUNT_SCALE, context=_WIDE)


class OrderJournal(Protocol):
    """Where a broker records orders (implemented over the trade repository by the engine)."""

    def intent(
        self,
        *,
        symbol: str,
        side: str,
        type: str,
        role: str,
        amount: Decimal,
        price: Decimal | None,
        stop_price: Decimal | None,
        reason: str | None,
    ) -> str:
        """Persist the intent; return its client order id. Must be durable when it returns."""
        ...

    def accepted(self, client_order_id: str) -> None: ...

    def filled(
        self, client_order_id: str, fill_id: str, amount: Decimal, price: Decimal, fee: Decimal, time: dt.datetime
    ) -> None: ...

    def closed(self, client_order_id: str, status: str) -> None:
        """canceled | rejected | expired"""
        ...


_CLOSED = {
    bt.Order.Canceled: "canceled",
    bt.Order.Margin: "rejected",
    bt.Order.Rejected: "rejected",
    bt.Order.Expired: "expired",
}


class PaperBroker(SimulatedBroker):
    """Simulated fills on the feed's candles (market orders at the next open, stops and limits
    when a candle crosses them), journalled like a venue's."""

    def __init__(self, journal: OrderJournal) -> None:
        super().__init__()
        self.journal = journal
        self._cancel_when_accepted: set[str] = set()

    def cancel_by_client_id(self, client_order_ids: Iterable[str]) -> None:
        """An operator's cancel. Backtrader cannot cancel an order it has not accepted yet (one
        submitted on this candle): such an order is canceled the moment it is accepted, before it
        can fill."""
        wanted = set(client_order_ids)
        for order in [o for o in self.pending if o is not None and o.info.get("client_order_id") in wanted]:
            wanted.discard(order.info.client_order_id)
            self.cancel(order)
        self._cancel_when_accepted |= wanted

    def submit(self, order: bt.Order, check: bool = True) -> bt.Order:
        info = order.info
        price, stop_price = _prices(order)
        client_id = self.journal.intent(
            symbol=order.data._name,
            side="buy" if order.isbuy() else "sell",
            type=_TYPES.get(order.exectype, "market"),
            role=info.get("role") or "manual",
            amount=amount_of(order.size),
            price=price,
            stop_price=stop_price,
            reason=info.get("reason"),
        )
        order.addinfo(client_order_id=client_id, journalled=Decimal(0), fills=0)
        return super().submit(order, check)

    def restore_order(self, order: bt.Order, oco: bt.Order | None, accepted: bool) -> None:
        """An order open at a snapshot keeps the client order id its intent got when it was first
        submitted (in its info); nothing of it had filled (see Strategy.is_quiet)."""
        if order.info.get("client_order_id") is not None:
            order.addinfo(journalled=Decimal(0), fills=0)
        super().restore_order(order, oco, accepted)

    def apply_split(self, data: Any, ratio: float) -> list[Any]:
        """The split as SimulatedBroker applies it; what an order had journalled as filled goes to the new
        basis with it, as the repository converts the order's filled amount, so that its next fills are
        journalled as the difference on the new basis."""
        orders = super().apply_split(data, ratio)
        factor = split_ratio(ratio)  # as the repository records it
        for order in orders:
            if order.info.get("journalled"):
                order.info.journalled = filled_after_split(order.info.journalled, factor)
        return orders

    def cancels_on_acceptance(self, client_order_id: str) -> bool:
        """Will this order be canceled the moment it is accepted (an operator's cancel)?"""
        return client_order_id in self._cancel_when_accepted

    def notify(self, order: bt.Order) -> None:
        super().notify(order)
        client_id = order.info.get("client_order_id")
        if client_id is None:
            return
        if order.status == order.Accepted:
            self.journal.accepted(client_id)
            if client_id in self._cancel_when_accepted:
                self._cancel_when_accepted.discard(client_id)
                self.cancel(order)
        elif order.status in (order.Partial, order.Completed):
            self._journal_fill(order, client_id)
        elif order.status in _CLOSED:
            self.journal.closed(client_id, _CLOSED[order.status])

    def _journal_fill(self, order: bt.Order, client_id: str) -> None:
        # Amounts are Decimals that add up exactly to the intent's amount: Backtrader's running float
        # total may be an ulp off the order size, so a completed order takes exactly what is left.
        amount = amount_of(order.size)
        total = amount if order.status == order.Completed else min(amount_of(order.executed.size) or amount, amount)
        delta = total - order.info.journalled
        if delta <= 0:
            return
        bit = order.executed.exbits[-1] if order.executed.exbits else None
        price = bit.price if bit is not None else order.executed.price
        fee = bit.comm if bit is not None else order.executed.comm
        order.info.fills += 1
        order.info.journalled = total
        self.journal.filled(
            client_id,
            f"{client_id}-f{order.info.fills}",
            delta,
            money(price) or Decimal(0),
            money(fee) or Decimal(0),
            bt.num2date(order.executed.dt).replace(tzinfo=dt.UTC),
        )


def _prices(order: bt.Order) -> tuple[Decimal | None, Decimal | None]:
    if order.exectype == bt.Order.Limit:
        return money(order.price), None
    if order.exectype in (bt.Order.Stop, bt.Order.StopTrail):
        return None, money(order.price)
    if order.exectype in (bt.Order.StopLimit, bt.Order.StopTrailLimit):
        return money(order.pricelimit), money(order.price)
    return None, None
