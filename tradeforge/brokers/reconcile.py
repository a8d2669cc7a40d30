"""Startup reconciliation against the venue, before the first new order (DESIGN protocol step 3).

1. Every order the database holds as not finished is re-read by its client id: fills and cancels
   that happened while the bot was down are recorded once; an intent committed just before a crash
   is found (it was sent) or, after repeated "not found" answers over the receive window, marked
   lost (it was not), and never resent.
2. Fills are healed since the oldest open trade: finished orders from then on that may have filled
   more than stored (canceled or expired after a partial fill) are re-read too; fills are unique by
   (symbol, venue trade id), so a fill seen twice is recorded once.
3. Open orders on the venue are sorted: ours (our client id prefix) that the database lacks are
   adopted (persistence/adoption.py) and their fills recorded; foreign ones are reported, logged and
   never touched.
4. Positions recomputed from the recorded fills are compared with the account's holdings, plus the
   offsets a person accepted with `tradeforge reconcile --accept-exchange-state` (an audited event;
   history is never rewritten). A shortfall beyond the tolerance stops trading until a person decides
   (for a short position, expected or held, any difference: a short bought back is not "other holdings").

Each decision is a `reconcile` event; so is the summary, which the caller also alerts.
Written against the Venue protocol (sync, open_orders, holdings), so any venue reconciles the same way.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any, Protocol, cast

from sqlalchemy import Select, Table, bindparam, func, select

from tradeforge.brokers.venue import OrderState, Settlement, VenueOrder
from tradeforge.persistence.adoption import AdoptedOrder, NotAdoptable, adopt_order
from tradeforge.persistence.audit import operator, plain
from tradeforge.persistence.models import TERMINAL_ORDER_STATUSES, Fill, Order, OrderStatus, Trade, TradeStatus
from tradeforge.persistence.repository import Repository

EVENT = "reconcile"  # event-log kind of every reconciliation decision and summary
ACCEPT_EVENT = "reconcile_accept"  # a person took the exchange's balances as the truth
DEFAULT_TOLERANCE = Decimal("0.00000001")
_ORDERS = cast(Table, Order.__table__)
_TRADES = cast(Table, Trade.__table__)
_FILLS = cast(Table, Fill.__table__)
_THIS_BOT = _ORDERS.c.bot_id == bindparam("bot_id")
# Core queries, not the ORM: a bot with a long history reconciles without loading all of it.
_UNFINISHED = (
    select(_ORDERS.c.symbol, _ORDERS.c.client_order_id)
    .where(_THIS_BOT, _ORDERS.c.status.not_in(list(TERMINAL_ORDER_STATUSES)))
    .order_by(_ORDERS.c.id)
)
_OLDEST_OPEN_TRADE = (
    select(func.min(_ORDERS.c.created_at))
    .select_from(_ORDERS.join(_TRADES, _TRADES.c.id == _ORDERS.c.trade_id))
    .where(_THIS_BOT, _TRADES.c.status == TradeStatus.OPEN)
    .scalar_subquery()
)
# Finished orders since the oldest open trade's first order that reached the venue and may hold fills
# the database has not seen (canceled or expired after a partial fill; filled short of their amount).
_HEALABLE = (
    select(_ORDERS.c.symbol, _ORDERS.c.client_order_id, _ORDERS.c.status, _ORDERS.c.filled, _ORDERS.c.amount)
    .where(
        _THIS_BOT,
        _ORDERS.c.status.in_([OrderStatus.CANCELED, OrderStatus.EXPIRED, OrderStatus.FILLED]),
        _ORDERS.c.venue_order_id.is_not(None),
        _ORDERS.c.created_at >= _OLDEST_OPEN_TRADE,
    )
    .order_by(_ORDERS.c.id)
)
_FILLS_OF = (
    select(_FILLS.c.symbol, _ORDERS.c.side, _FILLS.c.amount, _FILLS.c.price, _FILLS.c.fee, _FILLS.c.fee_currency)
    .select_from(_FILLS.join(_ORDERS, _ORDERS.c.id == _FILLS.c.order_id))
    .where(_FILLS.c.bot_id == bindparam("bot_id"), _FILLS.c.symbol.in_(bindparam("symbols", expanding=True)))
    .order_by(_FILLS.c.id)
)


class Venue(Protocol):
    """The part of the venue protocol (brokers/venue.py) that reconciliation uses."""

    repository: Repository

    def sync(self, symbol: str, client_order_id: str) -> OrderState: ...

    def open_orders(self, symbol: str) -> list[VenueOrder]: ...

    def holdings(self) -> dict[str, Decimal]: ...

    def settlement(self, symbol: str) -> Settlement: ...


@dataclass(frozen=True)
class PositionCheck:
    """One asset: what the recorded fills say the bot holds, the accepted offset, and what the account holds."""

    asset: str
    from_fills: Decimal
    balance: Decimal
    offset: Decimal = Decimal(0)

    @property
    def expected(self) -> Decimal:
        return self.from_fills + self.offset

    @property
    def short_side(self) -> bool:
        """Is a short position involved (expected or held)? Then every difference is the bot's."""
        return self.expected < 0 or self.balance < 0

    @property
    def shortfall(self) -> Decimal:
        """How far the account is from what the bot expects. For a long, only how much less it holds
        (more is not ours to judge: other holdings); once either side is short, any difference: a short
        bought back (or a bigger one) would turn the bot's next order into a position it never meant."""
        if self.short_side:
            return abs(self.expected - self.balance)
        return max(Decimal(0), self.expected - self.balance)


@dataclass
class ReconcileReport:
    updated: list[OrderState] = field(default_factory=list)  # unfinished orders re-read
    adopted: list[AdoptedOrder] = field(default_factory=list)  # ours on the venue, missing from the database
    foreign: list[str] = field(default_factory=list)  # client ids of open orders that are not ours
    # ours, open on the venue, but not adoptable or finished in the database: needs a person
    unknown_ours: list[str] = field(default_factory=list)
    reasons: dict[str, str] = field(default_factory=dict)  # why, per client id in unknown_ours
    # ours, done on the venue with more filled than the database holds and no executions to record: why, by client id
    unrecorded: dict[str, str] = field(default_factory=dict)
    healed_fills: int = 0  # fills of finished orders recorded only now
    positions: list[PositionCheck] = field(default_factory=list)
    tolerance: Decimal = DEFAULT_TOLERANCE
    accepted_at: str | None = None  # when the offsets applied were accepted

    @property
    def mismatches(self) -> list[PositionCheck]:
        return [p for p in self.positions if p.shortfall > self.tolerance]

    @property
    def orders_need_a_person(self) -> bool:
        return bool(self.unknown_ours or self.unrecorded)

    @property
    def can_trade(self) -> bool:
        """Trading may start only when every position is covered and no order of ours is unaccounted for."""
        return not self.mismatches and not self.orders_need_a_person

    def summary(self) -> str:
        lines = [
            f"reconciled {len(self.updated)} unfinished orders; adopted {len(self.adopted)}; "
            f"{len(self.foreign)} foreign open orders left alone; {self.healed_fills} missed fills recorded"
        ]
        lines += [f"  {s.client_order_id}: {s.status.value}, filled {plain(s.filled)}" for s in self.updated]
        lines += [
            f"  adopted {a.client_order_id} ({a.role}) into {'new ' if a.new_trade else ''}trade {a.trade_id}"
            for a in self.adopted
        ]
        lines += [f"  foreign order {cid} (not ours: never touched)" for cid in self.foreign]
        lines += [
            f"  order {cid} is open on the exchange with this bot's prefix: needs a person ({self.reasons[cid]})"
            for cid in self.unknown_ours
        ]
        lines += [f"  order {cid}: needs a person ({reason})" for cid, reason in self.unrecorded.items()]
        for p in self.mismatches:
            offset = f" with the accepted offset {_signed(p.offset)}" if p.offset else ""
            lines.append(
                f"  {p.asset}: fills say {plain(p.from_fills)}{offset}, the account holds {plain(p.balance)} "
                f"({'off' if p.short_side else 'short'} by {plain(p.shortfall)}, tolerance {plain(self.tolerance)}): "
                "trading stays stopped"
            )
        if self.unrecorded:
            lines.append(
                "  a person must record the fills the exchange no longer lists, from its trade log or statement "
                "(`tradeforge db record-fill --config <bot.yaml> --order ID ...`), or restore a database backup that "
                "holds them; accepting the exchange's state cannot, since the bot would trade on a position it never "
                "received"
            )
        elif not self.can_trade:
            lines.append(
                "  a person must decide: fix the account, or run `tradeforge reconcile --config <bot.yaml> "
                "--accept-exchange-state` to take the exchange's balances as the truth (recorded, history kept)"
            )
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able, for the event log and `tradeforge reconcile --json`."""
        return {
            "can_trade": self.can_trade,
            "updated": [
                {"client_order_id": s.client_order_id, "status": s.status.value, "filled": plain(s.filled)}
                for s in self.updated
            ],
            "adopted": [
                {"client_order_id": a.client_order_id, "trade_id": a.trade_id, "role": a.role, "new_trade": a.new_trade}
                for a in self.adopted
            ],
            "foreign": list(self.foreign),
            "unknown_ours": [{"client_order_id": c, "reason": self.reasons[c]} for c in self.unknown_ours],
            "unrecorded": [{"client_order_id": c, "reason": reason} for c, reason in self.unrecorded.items()],
            "healed_fills": self.healed_fills,
            "positions": [
                {
                    "asset": p.asset,
                    "from_fills": plain(p.from_fills),
                    "offset": plain(p.offset),
                    "balance": plain(p.balance),
                    "shortfall": plain(p.shortfall),
                    "mismatch": p in self.mismatches,
                }
                for p in self.positions
            ],
            "tolerance": plain(self.tolerance),
            "accepted_at": self.accepted_at,
        }


def reconcile(venue: Venue, symbols: list[str], tolerance: Decimal = DEFAULT_TOLERANCE) -> ReconcileReport:
    """Bring the database in line with the venue; report what a person must decide."""
    repository = venue.repository
    report = ReconcileReport(tolerance=tolerance)
    for symbol, client_id in _rows(repository, _UNFINISHED):
        state = venue.sync(symbol, client_id)
        report.updated.append(state)
        _unless_accounted_for(report, repository, state)
    for symbol, client_id, status, filled, amount in _rows(repository, _HEALABLE):
        if status != OrderStatus.FILLED or filled < amount:
            state = venue.sync(symbol, client_id)
            report.healed_fills += state.new_fills
            _unless_accounted_for(report, repository, state)
    for symbol in symbols:
        for open_order in venue.open_orders(symbol):
            client_id = open_order.client_order_id or f"venue order {open_order.venue_order_id}"
            stored = repository.order(client_id)
            if stored is not None:
                if stored.status in TERMINAL_ORDER_STATUSES:  # the database cannot take it back: a person must
                    reason = f"the database says {stored.status.value}, but the exchange lists it open"
                    _needs_a_person(report, repository, client_id, f"order {client_id}: {reason}")
                continue
            if not client_id.startswith(f"{repository.prefix}-"):
                report.foreign.append(client_id)
                repository.log_event(
                    EVENT,
                    f"foreign open order {client_id} ({open_order.side} {open_order.amount} {symbol}): left alone",
                    {"decision": "foreign", "client_order_id": client_id, "venue_order_id": open_order.venue_order_id},
                )
                continue
            try:
                adopted = adopt_order(
                    repository,
                    client_id,
                    symbol=symbol,
                    side=open_order.side,
                    type=open_order.type,
                    amount=open_order.amount,
                    price=open_order.price,
                    stop_price=open_order.stop_price,
                    venue_order_id=open_order.venue_order_id,
                )
            except NotAdoptable as exc:
                _needs_a_person(report, repository, client_id, str(exc))
                continue
            report.adopted.append(adopted)
            report.healed_fills += venue.sync(symbol, client_id).new_fills
    offsets, report.accepted_at = accepted_offsets(repository)
    report.positions = [replace(p, offset=offsets.get(p.asset, Decimal(0))) for p in positions(venue, symbols)]
    repository.log_event(
        EVENT,
        report.summary().splitlines()[0] + ("" if report.can_trade else "; trading stays stopped"),
        {"decision": "summary", **report.to_dict()},
    )
    return report


def accept_exchange_state(venue: Venue, report: ReconcileReport, by: str | None = None) -> ReconcileReport:
    """A person's decision: from now on the account's holdings are the truth. The offset per asset
    (holdings minus what the fills say) is recorded as an audited event and applied to every later
    comparison; no fill, order or trade is changed."""
    repository = venue.repository
    by = by or operator()
    offsets = {p.asset: p.balance - p.from_fills for p in report.positions}
    previous, _ = accepted_offsets(repository)
    repository.log_event(
        ACCEPT_EVENT,
        f"{by} accepted the exchange's balances as the truth: "
        + (", ".join(f"{asset} {_signed(offset)}" for asset, offset in sorted(offsets.items())) or "no positions"),
        {
            "by": by,
            "offsets": {asset: plain(offset) for asset, offset in offsets.items()},
            "previous_offsets": {asset: plain(offset) for asset, offset in previous.items()},
            "positions": {
                p.asset: {"from_fills": plain(p.from_fills), "balance": plain(p.balance)} for p in report.positions
            },
        },
    )
    _, accepted_at = accepted_offsets(repository)
    return replace(
        report,
        positions=[replace(p, offset=offsets[p.asset]) for p in report.positions],
        accepted_at=accepted_at,
    )


def accepted_offsets(repository: Repository) -> tuple[dict[str, Decimal], str | None]:
    """The offsets of the latest acceptance (each one replaces the previous), and when it was made."""
    accepted = repository.events(ACCEPT_EVENT)
    if not accepted:
        return {}, None
    latest = accepted[-1]
    offsets = {asset: Decimal(value) for asset, value in ((latest.data or {}).get("offsets") or {}).items()}
    return offsets, _iso(latest.time)


def positions(venue: Venue, symbols: list[str]) -> list[PositionCheck]:
    """Per held asset of `symbols` (Binance: the base asset; IB: the contract): the position the
    recorded fills add up to (with the venue's fee rule), and the holding."""
    held: dict[str, Decimal] = {}
    settlements = {symbol: venue.settlement(symbol) for symbol in symbols}
    for symbol, side, amount, price, fee, fee_currency in _rows(venue.repository, _FILLS_OF, {"symbols": symbols}):
        settlement = settlements[symbol]
        held[settlement.asset] = held.get(settlement.asset, Decimal(0)) + settlement.held(
            side, amount, price, fee, fee_currency
        )
    for settlement in settlements.values():  # with no fills too: the account may be short it already
        held.setdefault(settlement.asset, Decimal(0))
    holdings = venue.holdings()
    return [PositionCheck(asset, amount, holdings.get(asset, Decimal(0))) for asset, amount in sorted(held.items())]


def _unless_accounted_for(report: ReconcileReport, repository: Repository, state: OrderState) -> None:
    """The venue says the order filled more than the database holds, and the fills cannot be had."""
    if state.needs_person is not None and state.client_order_id not in report.unrecorded:
        report.unrecorded[state.client_order_id] = state.needs_person
        repository.log_event(
            EVENT,
            f"order {state.client_order_id}: {state.needs_person}",
            {"decision": "needs_a_person", "client_order_id": state.client_order_id},
        )


def _needs_a_person(report: ReconcileReport, repository: Repository, client_id: str, reason: str) -> None:
    report.unknown_ours.append(client_id)
    report.reasons[client_id] = reason
    repository.log_event(EVENT, reason, {"decision": "needs_a_person", "client_order_id": client_id})


def _rows(repository: Repository, query: Select[Any], parameters: dict[str, Any] | None = None) -> list[Any]:
    with repository.engine.connect() as connection:
        return list(connection.execute(query, {"bot_id": repository.bot_id, **(parameters or {})}))


def _signed(amount: Decimal) -> str:
    return ("+" if amount >= 0 else "") + plain(amount)


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat()
