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
    # Why a person must decide about it (the venue says it filled more than the database can record):
    # reconciliation, and a running bot, stop trading with this explanation.
    needs_person: str | None = None
    # The venue executed more than is recorded yet (IB: a commission report still to come): acting
    # before those fills are in would trade on a position the account no longer has.
    fills_pending: bool = False


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


@dataclass(frozen=True)
class Settlement:
    """How one symbol's fills move the account: the holding a buy adds to, the currency that pays for it,
    and where a buy's fee goes. Binance spot takes a buy's fee from the asset bought (stored valued in
    the quote currency); IB charges commissions in cash and never reduces the shares bought."""

    asset: str  # what the account holds after a buy (Binance: the base asset; IB: the contract's name)
    currency: str  # what pays for it (Binance: the quote asset; IB: the contract's currency)
    fee_from_asset_bought: bool

    def fee_in_cash(self, fee_currency: str | None) -> bool:
        """Is a fee in `fee_currency` this symbol's cash (a fee in a third asset, BNB, is not)?"""
        return fee_currency is None or fee_currency == self.currency

    def held(self, side: str, amount: Decimal, price: Decimal, fee: Decimal, fee_currency: str | None) -> Decimal:
        """The signed change a fill makes to the holding of `asset`."""
        if side != "buy":
            return -amount
        if self.fee_from_asset_bought and self.fee_in_cash(fee_currency) and price:
            return amount - fee / price
        return amount


class Venue(Protocol):
    """One trading venue, writing every step to `repository`."""

    repository: Repository
    # Can every exit of one trade rest on the venue at once, the venue canceling the rest when one
    # fills (IB's OCA groups)? If not (a spot balance backs one resting order), the broker emulates
    # all but the first.
    holds_oco_groups: bool

    def settlement(self, symbol: str) -> Settlement:
        """Which holding and currency the symbol's fills move, and the venue's fee rule."""
        ...

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
