"""Startup reconciliation against the exchange, before the first new order (DESIGN protocol step 3).

Every order the database holds as not finished is re-read by its client id: fills and cancels that
happened while the bot was down are recorded once; an intent committed just before a crash is found
(it was sent) or, after repeated "not found" answers over the receive window, marked lost (it was
not), and never resent. Open orders on the exchange are sorted into ours (carrying the bot's client
id prefix) and foreign ones, which are reported and never touched. Positions recomputed from the
recorded fills are compared with the balances.

Not done yet: adopting an open order with our prefix that the database lacks (it is reported), the
`tradeforge reconcile` command, and running this from `tradeforge run` (live mode is still refused).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from tradeforge.brokers.ccxt import OrderGateway
from tradeforge.brokers.venue import OrderState
from tradeforge.persistence.models import TERMINAL_ORDER_STATUSES


@dataclass(frozen=True)
class PositionCheck:
    """One base asset: what the recorded fills say the bot holds, and what the account holds."""

    asset: str
    from_fills: Decimal
    balance: Decimal

    @property
    def shortfall(self) -> Decimal:
        """How much less the account holds than the bot's fills say (other holdings are not ours to judge)."""
        return max(Decimal(0), self.from_fills - self.balance)


@dataclass
class ReconcileReport:
    updated: list[OrderState] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)  # client ids of open orders that are not ours
    unknown_ours: list[str] = field(default_factory=list)  # ours on the exchange, missing from the database
    positions: list[PositionCheck] = field(default_factory=list)
    tolerance: Decimal = Decimal(0)

    @property
    def mismatches(self) -> list[PositionCheck]:
        return [p for p in self.positions if p.shortfall > self.tolerance]

    @property
    def can_trade(self) -> bool:
        """Trading may start only when every position is covered and no order of ours is unaccounted for."""
        return not self.mismatches and not self.unknown_ours

    def summary(self) -> str:
        lines = [
            f"reconciled {len(self.updated)} unfinished orders; {len(self.foreign)} foreign open orders left alone"
        ]
        lines += [f"  {s.client_order_id}: {s.status.value}, filled {s.filled}" for s in self.updated]
        lines += [f"  foreign order {cid} (not ours: never touched)" for cid in self.foreign]
        lines += [
            f"  order {cid} carries this bot's prefix but is not in its database: needs a person"
            for cid in self.unknown_ours
        ]
        for p in self.mismatches:
            lines.append(
                f"  {p.asset}: fills say {p.from_fills}, the account holds {p.balance} "
                f"(short by {p.shortfall}, tolerance {self.tolerance}): trading stays stopped"
            )
        return "\n".join(lines)


def reconcile(gateway: OrderGateway, symbols: list[str], tolerance: Decimal = Decimal("0.00000001")) -> ReconcileReport:
    """Bring the database in line with the exchange; report what a person must decide."""
    repository = gateway.repository
    report = ReconcileReport(tolerance=tolerance)
    for order in repository.orders():
        if order.status not in TERMINAL_ORDER_STATUSES:
            report.updated.append(gateway.sync(order.symbol, order.client_order_id))
    known = {o.client_order_id for o in repository.orders()}
    for symbol in symbols:
        for open_order in gateway.client.fetch_open_orders(symbol):
            client_id = str(open_order.get("clientOrderId") or "")
            if client_id in known:
                continue
            if client_id.startswith(f"{repository.prefix}-"):
                report.unknown_ours.append(client_id)
            else:
                report.foreign.append(client_id)
    report.positions = _positions(gateway, symbols)
    return report


def _positions(gateway: OrderGateway, symbols: list[str]) -> list[PositionCheck]:
    repository = gateway.repository
    side_of = {o.id: o.side for o in repository.orders()}
    held: dict[str, Decimal] = {}
    for fill in repository.fills():
        rules = gateway.rules(fill.symbol)
        if fill.symbol not in symbols:
            continue
        amount = fill.amount if side_of[fill.order_id] == "buy" else -fill.amount
        if side_of[fill.order_id] == "buy" and fill.fee_currency == rules.quote and fill.price:
            amount -= fill.fee / fill.price  # Binance took a buy's fee in the base asset (stored valued in quote)
        held[rules.base] = held.get(rules.base, Decimal(0)) + amount
    balances = gateway.client.fetch_balance()
    return [
        PositionCheck(asset, amount, Decimal(str((balances.get(asset) or {}).get("total") or 0)))
        for asset, amount in sorted(held.items())
    ]
