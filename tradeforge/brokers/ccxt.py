"""The exchange side of the live broker: every order through the order safety protocol (DESIGN.md).

1. Checked against the market's rules, then the intent is committed with its client order id, and
   only then sent (`newClientOrderId`).
2. An ambiguous answer (timeout, 5xx, lost response, "duplicate order") marks it `unknown` and looks
   it up by client id with backoff; it is never resent. Only "not found" answers repeated over longer
   than the receive window make it `lost`.
3. Fills are read from the exchange's trade list and recorded once each (by venue trade id), with
   their fees; partial fills are recorded as they come.
4. A cancel is done only when the exchange shows a terminal state.

`OrderGateway` is the `Venue` (brokers/venue.py) the live Backtrader broker (brokers/live.py) drives.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

import ccxt

from tradeforge.brokers.orders import MarketRules, OrderRefused, order_status
from tradeforge.brokers.venue import OrderState, Settlement, VenueOrder
from tradeforge.persistence.models import TERMINAL_ORDER_STATUSES, OrderStatus
from tradeforge.persistence.repository import FillReport, OrderIntent, Repository
from tradeforge.resilience.errors import OutcomeUnknown, Rejected, Temporary
from tradeforge.resilience.exchange import CircuitOpen, ExchangeClient

_TYPES = {"market": "market", "limit": "limit", "stop": "STOP_LOSS", "stop_limit": "STOP_LOSS_LIMIT"}
_HALTED = "no new entries while the exchange circuit is open"


def _logger() -> logging.Logger:
    return logging.getLogger("tradeforge.brokers.ccxt")


class EntriesHalted(Rejected):
    """A new entry refused because the exchange's circuit breaker is open."""


@dataclass(frozen=True)
class LookupPolicy:
    """How an order of unknown outcome is looked up: every `wait` seconds; `lost` only after at least
    `not_found` "does not exist" answers spread over more than `window` seconds (the receive window)."""

    wait: float = 1.0
    not_found: int = 3
    window: float = 10.0
    give_up_after: float = 600.0  # still unreachable after this long: leave it `unknown` for reconciliation


class OrderGateway:
    """Places, looks up, syncs and cancels orders on one exchange, writing every step to the repository."""

    holds_oco_groups = False  # a spot balance backs one resting order: the broker emulates the rest

    def __init__(
        self,
        client: ExchangeClient,
        repository: Repository,
        *,
        lookup: LookupPolicy | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.repository = repository
        self.lookup = lookup or LookupPolicy()
        self.monotonic = monotonic
        self.sleep = sleep
        self._rules: dict[str, MarketRules] = {}

    def rules(self, symbol: str) -> MarketRules:
        if symbol not in self._rules:
            # Essential: an exit must be checkable with the circuit open (ccxt answers from its cache).
            markets = self.client.read("load markets", self.client.exchange.load_markets, essential=True)
            if symbol not in markets:
                raise OrderRefused(f"{symbol}: the exchange does not list this symbol")
            self._rules[symbol] = MarketRules.from_market(markets[symbol])
        return self._rules[symbol]

    # --- placing --------------------------------------------------------------------------------------

    def check(self, intent: OrderIntent, reference_price: Decimal) -> OrderIntent:
        """The intent on the market's grid, or OrderRefused saying why (nothing written or sent)."""
        amount, price, stop_price = self.rules(intent.symbol).check(
            intent.side, intent.type, intent.amount, intent.price, intent.stop_price, reference_price
        )
        return replace(intent, amount=amount, price=price, stop_price=stop_price)

    def settlement(self, symbol: str) -> Settlement:
        """BASE/QUOTE: a buy adds to BASE, paid in QUOTE, its fee taken from the BASE bought."""
        base, _, quote = symbol.partition("/")
        return Settlement(base, quote, fee_from_asset_bought=True)

    def supports(self, symbol: str, order_type: str) -> bool:
        """Does the market take this order type itself (its `orderTypes`)? Trailing stops never."""
        wanted = _TYPES.get(order_type, "").upper()
        return bool(wanted) and wanted in self.rules(symbol).order_types

    def place(self, intent: OrderIntent, reference_price: Decimal) -> OrderState:
        """Check, commit the intent, send once; resolve an ambiguous outcome by client id. While the
        exchange's circuit is open, entries are refused up front and exits are still attempted."""
        if intent.role == "entry" and self.client.circuit_open:
            raise EntriesHalted(
                f"{intent.side} {intent.amount} {intent.symbol}: no new entries while the exchange circuit is open "
                "(repeated network or server failures)"
            )
        recorded = self.repository.record_intent(self.check(intent, reference_price))
        state = self.send(intent.symbol, recorded.client_order_id)
        if state.status == OrderStatus.REJECTED:
            raise self.rejection(recorded.client_order_id)
        return state

    def rejection(self, client_id: str) -> Rejected:
        """The stored reason an order was rejected, as the error `place` raises."""
        order = self.repository.order(client_id)
        error = str(((order.raw if order is not None else None) or {}).get("error", "rejected"))
        return EntriesHalted(error) if error.startswith(_HALTED) else Rejected(error)

    def send(self, symbol: str, client_order_id: str) -> OrderState:
        """Send the stored intent once (`newClientOrderId`). A refusal is stored (REJECTED, with the
        reason under raw["error"]) and returned; an ambiguous answer is resolved by client id."""
        order = self.repository.order(client_order_id)
        if order is None:
            raise Rejected(f"order {client_order_id} is not in this bot's database")
        entry = order.role == "entry"
        amount, price, stop_price = Decimal(order.amount), order.price, order.stop_price
        params = {"stopPrice": float(stop_price)} if stop_price is not None else {}
        try:
            answer = self.client.create_order(
                symbol,
                _TYPES[order.type],
                order.side,
                float(amount),
                None if price is None else float(price),
                client_order_id,
                params,
                essential=not entry,
            )
        except CircuitOpen as exc:  # open (or tripped since the caller looked): nothing was sent
            return self._rejected(client_order_id, f"{_HALTED}: {exc}")
        except OutcomeUnknown as exc:
            _logger().warning("%s: %s", client_order_id, exc)
            self.repository.mark_order(client_order_id, OrderStatus.UNKNOWN)
            return self.resolve(symbol, client_order_id, essential=not entry)
        except Rejected as exc:
            return self._rejected(client_order_id, str(exc))
        return self._record(symbol, client_order_id, answer, essential=not entry)

    def _rejected(self, client_id: str, reason: str) -> OrderState:
        _logger().warning("%s rejected: %s", client_id, reason)
        self.repository.mark_order(client_id, OrderStatus.REJECTED, raw={"error": reason})
        return OrderState(client_id, OrderStatus.REJECTED, Decimal(0))

    def resolve(self, symbol: str, client_id: str, *, essential: bool = False) -> OrderState:
        """Look up an order whose placement outcome is unknown until the exchange says where it is."""
        policy = self.lookup
        started = self.monotonic()
        first_missing: float | None = None
        missing = 0
        while True:
            try:
                found = self.client.fetch_order_by_client_id(symbol, client_id, essential=essential)
            except Temporary as exc:
                found = None
                if self.monotonic() - started > policy.give_up_after:
                    raise OutcomeUnknown(
                        f"{client_id}: still unknown after {policy.give_up_after:.0f} s: {exc}"
                    ) from exc
            else:
                if found is not None:
                    return self._record(symbol, client_id, found, essential=essential)
                now = self.monotonic()
                first_missing = now if first_missing is None else first_missing
                missing += 1
                if missing >= policy.not_found and now - first_missing > policy.window:
                    self.repository.mark_order(client_id, OrderStatus.LOST)
                    _logger().warning("%s: the exchange never received it; marked lost", client_id)
                    return OrderState(client_id, OrderStatus.LOST, Decimal(0))
            self.sleep(policy.wait)

    # --- steady state -----------------------------------------------------------------------------------

    def sync(self, symbol: str, client_id: str) -> OrderState:
        """Re-read an order from the exchange; record new fills and its status (idempotent)."""
        found = self.client.fetch_order_by_client_id(symbol, client_id)
        if found is None:
            return self.resolve(symbol, client_id)
        return self._record(symbol, client_id, found)

    def cancel(self, symbol: str, client_id: str) -> OrderState:
        """Cancel, then confirm: done only when the exchange shows the order in a terminal state
        (canceled, or filled before the cancel arrived)."""
        self.repository.mark_order(client_id, OrderStatus.CANCEL_PENDING)
        try:
            answer: dict[str, Any] | None = self.client.cancel_order(symbol, client_id)
        except OutcomeUnknown as exc:
            _logger().warning("%s: %s", client_id, exc)
            answer = None
        except Rejected as exc:
            if not isinstance(exc.__cause__, ccxt.OrderNotFound):
                raise
            answer = None  # already terminal (or never there): the lookup below says which
        started = self.monotonic()
        while True:
            state = self._record(symbol, client_id, answer, essential=True) if answer is not None else None
            if state is not None and state.status in TERMINAL_ORDER_STATUSES:
                return state
            if self.monotonic() - started > self.lookup.give_up_after:
                raise OutcomeUnknown(f"{client_id}: cancel not confirmed after {self.lookup.give_up_after:.0f} s")
            self.sleep(self.lookup.wait if answer is not None else 0)
            try:
                answer = self.client.fetch_order_by_client_id(symbol, client_id, essential=True)
            except Temporary:
                answer = None
                self.sleep(self.lookup.wait)
                continue
            if answer is None:
                return self.resolve(symbol, client_id, essential=True)

    # --- recording ----------------------------------------------------------------------------------------

    def _record(self, symbol: str, client_id: str, order: dict[str, Any], *, essential: bool = False) -> OrderState:
        """Store the order's fills (from the trade list, once each) and its status."""
        venue_id = str(order["id"]) if order.get("id") is not None else None
        filled = Decimal(str(order.get("filled") or 0))
        new = 0
        stored = self._stored_filled(client_id)
        # Accepted first, with the exchange's id: a fill recorded next moves the status past `open`.
        self.repository.mark_order(client_id, OrderStatus.OPEN, venue_order_id=venue_id, raw=_raw(order))
        if filled > stored and venue_id is not None:
            trades = self.client.fetch_my_trades(symbol, params={"orderId": venue_id}, essential=essential)
            rules = self.rules(symbol)
            for trade in sorted(trades, key=lambda t: int(t["id"])):
                if self.repository.record_fill(client_id, _fill(trade, rules)):
                    new += 1
        status = order_status(order)
        recorded = self._stored_filled(client_id)
        lagging = filled > recorded  # the exchange counts fills its trade list does not show yet
        if lagging and status in TERMINAL_ORDER_STATUSES:  # final only once its fills are in
            status = OrderStatus.PARTIALLY_FILLED if recorded > 0 else OrderStatus.OPEN
        self.repository.mark_order(client_id, status, venue_order_id=venue_id, raw=_raw(order))
        return OrderState(client_id, status, max(filled, recorded), venue_id, new, fills_pending=lagging)

    def _stored_filled(self, client_id: str) -> Decimal:
        order = self.repository.order(client_id)
        if order is None:
            raise Rejected(f"order {client_id} is not in this bot's database")
        return Decimal(order.filled or 0)

    # --- reconciliation (brokers/reconcile.py) ------------------------------------------------------

    def open_orders(self, symbol: str) -> list[VenueOrder]:
        """Every open order on the exchange for `symbol`, ours and foreign, as the exchange lists it."""
        return [_venue_order(symbol, order) for order in self.client.fetch_open_orders(symbol)]

    def holdings(self) -> dict[str, Decimal]:
        """The account's total per asset (free plus locked in open orders)."""
        totals = self.client.fetch_balance().get("total") or {}
        return {asset: Decimal(str(amount)) for asset, amount in totals.items() if amount is not None}


def _fill(trade: dict[str, Any], rules: MarketRules) -> FillReport:
    """A ccxt trade as a fill; the fee is valued in the quote currency (Binance takes a buy's fee in
    the base asset), so that trade PnL adds like with like."""
    info = trade.get("info") or {}
    amount = Decimal(str(info.get("qty", trade["amount"])))
    price = Decimal(str(info.get("price", trade["price"])))
    fee = trade.get("fee") or {}
    fee_cost = Decimal(str(info.get("commission", fee.get("cost") or 0)))
    fee_currency = info.get("commissionAsset", fee.get("currency"))
    if fee_currency == rules.base:
        fee_cost *= price
    return FillReport(
        venue_trade_id=str(trade["id"]),
        amount=amount,
        price=price,
        time=dt.datetime.fromtimestamp(int(trade["timestamp"]) / 1000, dt.UTC),
        fee=fee_cost,
        fee_currency=rules.quote if fee_currency == rules.base else fee_currency,
    )


def _raw(order: dict[str, Any]) -> dict[str, Any]:
    """The exchange's own payload, which ccxt keeps under `info` (JSON-able)."""
    info = order.get("info")
    return dict(info) if isinstance(info, dict) else {}


_OUR_TYPES = {exchange: ours for ours, exchange in _TYPES.items()} | {"LIMIT_MAKER": "limit"}


def _venue_order(symbol: str, order: dict[str, Any]) -> VenueOrder:
    """A ccxt open order in venue-neutral terms; order types we never send keep the exchange's name."""
    info = order.get("info") or {}
    kind = str(info.get("type") or order.get("type") or "").upper()
    stop = info.get("stopPrice", order.get("stopPrice"))
    return VenueOrder(
        client_order_id=str(order.get("clientOrderId") or info.get("clientOrderId") or ""),
        symbol=symbol,
        side=str(order.get("side") or str(info.get("side", "")).lower()),
        type=_OUR_TYPES.get(kind, kind.lower()),
        amount=Decimal(str(info.get("origQty", order.get("amount") or 0))),
        filled=Decimal(str(info.get("executedQty", order.get("filled") or 0))),
        price=Decimal(str(order["price"])) if order.get("price") else None,
        stop_price=Decimal(str(stop)) if stop and Decimal(str(stop)) else None,
        venue_order_id=str(order["id"]) if order.get("id") is not None else None,
    )
