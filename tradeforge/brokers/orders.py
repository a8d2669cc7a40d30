"""Order rules of a market (precision, minimums, order types) and the exchange's order states in ours.

An order the exchange would refuse for its size or price is refused here first, with the reason, so
nothing half-done (an intent row, a request) is left behind by an order that could never be placed.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from typing import Any

from tradeforge.persistence.models import OrderStatus
from tradeforge.resilience.errors import Rejected


class OrderRefused(Rejected):
    """Refused locally, before anything was written or sent: the exchange would reject it."""


def _dec(value: Any) -> Decimal | None:
    """ccxt's float as the plain Decimal it stands for (5.0 -> 5, 1e-05 -> 0.00001)."""
    return None if value is None else Decimal(f"{Decimal(str(value)).normalize():f}")


@dataclass(frozen=True)
class MarketRules:
    """What one market accepts, from ccxt's market structure (Binance: LOT_SIZE, PRICE_FILTER, NOTIONAL)."""

    symbol: str
    base: str
    quote: str
    amount_step: Decimal
    price_tick: Decimal
    min_amount: Decimal
    min_notional: Decimal
    order_types: frozenset[str]  # the exchange's names: MARKET, LIMIT, STOP_LOSS, STOP_LOSS_LIMIT, ...

    @classmethod
    def from_market(cls, market: dict[str, Any]) -> MarketRules:
        precision, limits = market["precision"], market["limits"]
        return cls(
            symbol=market["symbol"],
            base=market["base"],
            quote=market["quote"],
            amount_step=_dec(precision.get("amount")) or Decimal("1e-8"),
            price_tick=_dec(precision.get("price")) or Decimal("1e-8"),
            min_amount=_dec(limits.get("amount", {}).get("min")) or Decimal(0),
            min_notional=_dec(limits.get("cost", {}).get("min")) or Decimal(0),
            order_types=frozenset((market.get("info") or {}).get("orderTypes") or ("MARKET", "LIMIT")),
        )

    def check(
        self,
        side: str,
        type: str,
        amount: Decimal,
        price: Decimal | None,
        stop_price: Decimal | None,
        reference: Decimal,
    ) -> tuple[Decimal, Decimal | None, Decimal | None]:
        """(amount, price, stop price) on the exchange's grid, or OrderRefused saying why. Amounts round
        down (never spend more than decided); prices round to the nearest tick."""
        wanted = {"market": "MARKET", "limit": "LIMIT", "stop": "STOP_LOSS", "stop_limit": "STOP_LOSS_LIMIT"}.get(type)
        if wanted is None or wanted not in self.order_types:
            raise OrderRefused(
                f"{side} {amount} {self.symbol}: {type} orders are not supported on this market "
                f"(it takes {', '.join(sorted(self.order_types))}); "
                "the live broker emulates a strategy's protective stops on such markets"
            )
        rounded = (amount / self.amount_step).to_integral_value(ROUND_DOWN) * self.amount_step
        if rounded <= 0 or rounded < self.min_amount:
            raise OrderRefused(
                f"{side} {amount} {self.symbol}: the amount rounds to {rounded} at step {self.amount_step}, "
                f"below the exchange's minimum of {self.min_amount} {self.base}"
            )
        price, stop_price = self._tick(price), self._tick(stop_price)
        notional = rounded * (price or stop_price or reference)
        if notional < self.min_notional:
            raise OrderRefused(
                f"{side} {rounded} {self.symbol}: notional {notional:.8f} {self.quote} is below the exchange's "
                f"minimum of {self.min_notional} {self.quote}"
            )
        return rounded, price, stop_price

    def _tick(self, price: Decimal | None) -> Decimal | None:
        if price is None:
            return None
        ticked = (price / self.price_tick).to_integral_value(ROUND_HALF_UP) * self.price_tick
        if ticked <= 0:
            raise OrderRefused(f"{self.symbol}: price {price} rounds to {ticked} at tick {self.price_tick}")
        return ticked


_STATUSES = {
    "closed": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELED,
    "cancelled": OrderStatus.CANCELED,
    "rejected": OrderStatus.REJECTED,
    "expired": OrderStatus.EXPIRED,
}


def order_status(order: dict[str, Any]) -> OrderStatus:
    """A ccxt order's status as ours (an open order with fills is partially filled)."""
    status = order.get("status")
    if status in _STATUSES:
        return _STATUSES[status]
    return OrderStatus.PARTIALLY_FILLED if (order.get("filled") or 0) > 0 else OrderStatus.OPEN
