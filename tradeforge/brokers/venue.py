"""What the live Backtrader broker needs from a venue, whichever it is (Binance through ccxt, IBKR
through ib_async). A venue adapter follows the order safety protocol (DESIGN.md) itself: it sends
an intent the repository already holds, resolves an ambiguous outcome by client order id and never
resends, records every fill once (by venue trade id) with its fee, and confirms cancels.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from tradeforge.persistence.models import OrderStatus
from tradeforge.persistence.repository import OrderIntent, Repository


@dataclass(frozen=True)
class OrderState:
    """Where an order stands after the venue's last answer, as stored."""

    client_order_id: str
    status: OrderStatus
    filled: Decimal
    venue_order_id: str | None = None
    new_fills: int = 0


@dataclass(frozen=True)
class VenueOrder:
    """An open order as the venue lists it (ours by client id prefix, or somebody else's)."""

    client_order_id: str
    symbol: str
    side: str  # buy | sell
    type: str  # market | limit | stop | stop_limit
    amount: Decimal
    filled: Decimal
    price: Decimal | None = None
    stop_price: Decimal | None = None
    venue_order_id: str | None = None


class Venue(Protocol):
    """One trading venue, writing every step to `repository`."""

    repository: Repository

    def check(self, intent: OrderIntent, reference_price: Decimal) -> OrderIntent:
        """The intent rounded to the venue's precision; raises `OrderRefused` (before anything is
        written or sent) when the venue would reject it for its symbol, size, price or type."""
        ...

    def supports(self, symbol: str, order_type: str) -> bool:
        """Can the venue hold this order type (`stop`, `stop_limit`, ...) itself? If not, the
        broker emulates it (watches candles, sends a market order when crossed)."""
        ...

    def send(self, symbol: str, client_order_id: str) -> OrderState:
        """Send the intent stored under `client_order_id`, once. An ambiguous answer is resolved by
        looking the order up by client id (`unknown` until found, `lost` after repeated "not
        found" over the receive window)."""
        ...

    def sync(self, symbol: str, client_order_id: str) -> OrderState:
        """Re-read one order from the venue; record its new fills and status (idempotent)."""
        ...

    def cancel(self, symbol: str, client_order_id: str) -> OrderState:
        """Cancel, and return only once the venue shows a terminal state."""
        ...

    def open_orders(self, symbol: str) -> list[VenueOrder]:
        """Every open order on the venue for `symbol`, ours and foreign."""
        ...

    def holdings(self) -> dict[str, Decimal]:
        """What the account holds: asset or contract symbol -> total (cash by currency included)."""
        ...
