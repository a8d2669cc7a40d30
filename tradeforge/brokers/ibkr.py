"""The IBKR side of the live broker (`brokers.venue.Venue`) through ib_async, per the order safety protocol.

1. The caller committed the intent; `send` places it once, with our client order id in `orderRef`.
2. An ambiguous outcome (the connection lost after `placeOrder`, no acknowledgement in time) marks the
   order `unknown`; after reconnecting, it is looked up by `orderRef` in the open orders, the completed
   orders and the executions. It is never resent; "not found" repeated over the window makes it `lost`.
3. Fills come from execution reports, recorded once each by `execId` (a correction, the same id with its
   revision raised, counts once), with the commission of their commission report, which a sync waits for
   briefly; an execution whose commission has not arrived yet is recorded on a later sync, and keeps its
   order from being final until then. A stored fill is found by its execId without the revision, so
   an older revision seen after a newer one was recorded is never a new fill.
4. IB lists the current day's executions only: an order IB ended with more filled than is recorded and
   no executions to record (filled while the bot was down on an earlier day) is never taken for
   canceled; it stays `unknown` and reconciliation stops trading until a person brings the fills in.
5. A cancel returns only once IB shows a terminal state.

Exit orders of one trade that rest at IB (a stop and a target) share an OCA group, so IB itself
cancels (or reduces) one when the other fills: the strategy's stop/target pair as an IB bracket.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from typing import Any

from ib_async import ExecutionFilter, LimitOrder, MarketOrder, Order, StopLimitOrder, StopOrder

from tradeforge.brokers.orders import OrderRefused
from tradeforge.brokers.reconcile import DEFAULT_TOLERANCE, ReconcileReport
from tradeforge.brokers.reconcile import reconcile as reconcile_venue
from tradeforge.brokers.venue import OrderState, Settlement, VenueOrder
from tradeforge.persistence.models import TERMINAL_ORDER_STATUSES, OrderStatus
from tradeforge.persistence.repository import FillReport, OrderIntent, Repository
from tradeforge.resilience.errors import OutcomeUnknown, Rejected, Temporary
from tradeforge.resilience.ibkr import IbConnection, ResolvedContract

_ORDER_TYPES = frozenset({"market", "limit", "stop", "stop_limit"})
_PENDING = frozenset({"PendingSubmit", "ApiPending"})
_UNSET = 1e300  # IB's "no value" double (UNSET_DOUBLE is 1.797e308)
OCA_REDUCE_WITH_BLOCK = 2


def _logger() -> logging.Logger:
    return logging.getLogger("tradeforge.brokers.ibkr")


def _dec(value: float | Decimal) -> Decimal:
    """IB's float (or a database NUMERIC with trailing zeros) as the plain Decimal it stands for."""
    return Decimal(f"{Decimal(str(value)).normalize():f}")


class IbkrVenue:
    """Orders on IB for the contracts a bot trades (by data.symbols name), written to `repository`."""

    holds_oco_groups = True  # a trade's resting exits share an OCA group: IB cancels the rest on a fill

    def __init__(
        self,
        connection: IbConnection,
        repository: Repository,
        contracts: Mapping[str, ResolvedContract],
        *,
        order_timeout: float | None = None,
        lookup_wait: float = 1.0,
        not_found: int = 3,
        window: float = 10.0,
    ) -> None:
        self.connection = connection
        self.ib = connection.ib
        self.repository = repository
        self.contracts = dict(contracts)
        self.account = connection.config.account or ""
        self.order_timeout = order_timeout if order_timeout is not None else connection.config.order_timeout
        self.lookup_wait, self.not_found, self.window = lookup_wait, not_found, window
        self._corrections: set[str] = set()  # corrected execution ids already reported

    # --- checks -------------------------------------------------------------------------------------------

    def _resolved(self, symbol: str) -> ResolvedContract:
        if symbol not in self.contracts:
            raise OrderRefused(f"{symbol}: not a contract of this bot (data.symbols / ibkr.contracts)")
        return self.contracts[symbol]

    def settlement(self, symbol: str) -> Settlement:
        """A contract is held by its data.symbols name and paid in its currency; IB charges commissions
        in cash, never in shares."""
        return Settlement(symbol, self._resolved(symbol).contract.currency, fee_from_asset_bought=False)

    def supports(self, symbol: str, order_type: str) -> bool:
        return symbol in self.contracts and order_type in _ORDER_TYPES

    def check(self, intent: OrderIntent, reference_price: Decimal) -> OrderIntent:
        """Amount down to the contract's size increment, prices to its tick; refused before anything is written."""
        details = self._resolved(intent.symbol).details
        if intent.type not in _ORDER_TYPES:
            raise OrderRefused(
                f"{intent.side} {intent.amount} {intent.symbol}: {intent.type} orders are not sent to IB"
            )
        step = _dec(details.sizeIncrement or 1)
        amount = (intent.amount / step).to_integral_value(ROUND_DOWN) * step
        minimum = _dec(details.minSize or 0)
        if amount <= 0 or amount < minimum:
            raise OrderRefused(
                f"{intent.side} {intent.amount} {intent.symbol}: the amount rounds to {amount} at IB's size "
                f"increment {step} (minimum {minimum})"
            )
        tick = _dec(details.minTick or 0.01)

        def ticked(price: Decimal | None) -> Decimal | None:
            if price is None:
                return None
            value = (price / tick).to_integral_value(ROUND_HALF_UP) * tick
            if value <= 0:
                raise OrderRefused(f"{intent.symbol}: price {price} rounds to {value} at IB's tick {tick}")
            return value

        return replace(intent, amount=amount, price=ticked(intent.price), stop_price=ticked(intent.stop_price))

    # --- placing ------------------------------------------------------------------------------------------

    def _ib_order(self, stored: Any) -> Order:
        action = "BUY" if stored.side == "buy" else "SELL"
        quantity = float(stored.amount)
        common: dict[str, Any] = {"orderRef": stored.client_order_id, "tif": "GTC", "account": self.account}
        if stored.role != "entry" and stored.type != "market":
            # prefix-trade-sequence: the trade's resting exits form one OCA group.
            common.update(ocaGroup=stored.client_order_id.rsplit("-", 1)[0], ocaType=OCA_REDUCE_WITH_BLOCK)
        if stored.type == "market":
            return MarketOrder(action, quantity, **common)
        if stored.type == "limit":
            return LimitOrder(action, quantity, float(stored.price), **common)
        if stored.type == "stop":
            return StopOrder(action, quantity, float(stored.stop_price), **common)
        return StopLimitOrder(action, quantity, float(stored.price), float(stored.stop_price), **common)

    def send(self, symbol: str, client_order_id: str) -> OrderState:
        stored = self.repository.order(client_order_id)
        if stored is None:
            raise Rejected(f"order {client_order_id} is not in this bot's database: record the intent first")
        if stored.status != OrderStatus.PENDING_SUBMIT:  # sent before: never again
            return self.sync(symbol, client_order_id)
        contract = self._resolved(symbol).contract
        self.connection.ensure_connected()
        try:
            trade = self.ib.placeOrder(contract, self._ib_order(stored))
        except ConnectionError as exc:
            _logger().warning("%s: %s", client_order_id, exc)
            self.repository.mark_order(client_order_id, OrderStatus.UNKNOWN)
            return self.resolve(symbol, client_order_id)
        if not self._wait(lambda: trade.orderStatus.status not in _PENDING):
            _logger().warning("%s: no acknowledgement from IB (connection lost or timeout)", client_order_id)
            self.repository.mark_order(client_order_id, OrderStatus.UNKNOWN)
            return self.resolve(symbol, client_order_id)
        if trade.orderStatus.status in _DONE:  # a market order filled at once: record it whole
            self._await_reports(client_order_id, trade, [])
        return self._record(client_order_id, trade, raise_rejection=True)

    def _wait(self, done: Any) -> bool:
        """Let ib_async work until `done()` or the timeout; False on timeout or a lost connection."""
        waited = 0.0
        while not done():
            if not self.ib.isConnected() or waited >= self.order_timeout:
                return False
            self.connection.sleep(0.1)
            waited += 0.1
        return True

    def resolve(self, symbol: str, client_order_id: str) -> OrderState:
        """Find an order of unknown outcome by orderRef (reconnecting first); `lost` after repeated
        "not found" answers spread over more than the window."""
        missing, first_missing, elapsed = 0, None, 0.0
        while True:
            try:
                self.connection.ensure_connected()
                trade, fills = self._find(client_order_id)
            except Temporary as exc:  # IB unreachable past ibkr.reconnect_give_up
                raise OutcomeUnknown(f"{client_order_id}: still unknown, IB unreachable: {exc}") from exc
            except ConnectionError as exc:  # lost again during the look-up
                _logger().warning("%s: look-up failed: %s", client_order_id, exc)
            else:
                if trade is not None or fills:
                    return self._record(client_order_id, trade, fills)
                first_missing = elapsed if first_missing is None else first_missing
                missing += 1
                if missing >= self.not_found and elapsed - first_missing > self.window:
                    self.repository.mark_order(client_order_id, OrderStatus.LOST)
                    _logger().warning("%s: IB never received it; marked lost", client_order_id)
                    return OrderState(client_order_id, OrderStatus.LOST, Decimal(0))
            self.connection.sleep(self.lookup_wait)
            elapsed += self.lookup_wait

    def _find(self, client_order_id: str) -> tuple[Any, list[Any]]:
        """The order's Trade (open or completed) and its executions, by orderRef."""
        trade = next((t for t in self.ib.trades() if t.order.orderRef == client_order_id), None)
        if trade is None:
            candidates = [*self.ib.reqOpenOrders(), *self.ib.reqCompletedOrders(True)]
            trade = next((t for t in candidates if t.order.orderRef == client_order_id), None)
        fills = [f for f in self.ib.reqExecutions(ExecutionFilter()) if f.execution.orderRef == client_order_id]
        return trade, fills

    # --- steady state -------------------------------------------------------------------------------------

    def sync(self, symbol: str, client_order_id: str) -> OrderState:
        self.connection.ensure_connected()
        trade, fills = self._find(client_order_id)
        if trade is None and not fills:
            return self.resolve(symbol, client_order_id)
        self._await_reports(client_order_id, trade, fills)
        return self._record(client_order_id, trade, fills)

    def _await_reports(self, client_order_id: str, trade: Any, fills: list[Any]) -> None:
        """IB sends an order's status, its executions and their commission reports as separate messages:
        wait (up to `order_timeout`) until the executions of an ended order and their reports are in, so
        that the fills are recorded at this sync and reach the strategy at the same candle as on a re-read."""

        def complete() -> bool:
            executions = [*(trade.fills if trade is not None else []), *fills]
            return not _reports_pending(executions) and not _executions_behind(trade, executions)

        if not complete() and not self._wait(complete):
            _logger().warning(
                "%s: IB has not sent every execution and commission report within %.0f s; they are recorded "
                "when they come",
                client_order_id,
                self.order_timeout,
            )

    def cancel(self, symbol: str, client_order_id: str) -> OrderState:
        """Ask IB to cancel, and return once it shows a terminal state (canceled, or filled first)."""
        self.repository.mark_order(client_order_id, OrderStatus.CANCEL_PENDING)
        self.connection.ensure_connected()
        trade, fills = self._find(client_order_id)
        if trade is None:
            return self.resolve(symbol, client_order_id)
        if trade.orderStatus.status not in _DONE:
            self.ib.cancelOrder(trade.order)
            live = next((t for t in self.ib.trades() if t.order.orderRef == client_order_id), trade)
            if not self._wait(lambda: live.orderStatus.status in _DONE):
                state = self.sync(symbol, client_order_id)
                if state.status in TERMINAL_ORDER_STATUSES:
                    return state
                raise OutcomeUnknown(f"{client_order_id}: cancel not confirmed by IB within {self.order_timeout:.0f} s")
            trade = live
        self._await_reports(client_order_id, trade, fills)  # final only with every execution's commission
        return self._record(client_order_id, trade, fills)

    def open_orders(self, symbol: str) -> list[VenueOrder]:
        """Every open order at IB for `symbol`, ours (orderRef) and foreign (`ib-<permId>`)."""
        self.connection.ensure_connected()
        conid = self._resolved(symbol).contract.conId
        found = []
        for trade in self.ib.reqAllOpenOrders():
            if trade.contract.conId != conid:
                continue
            order, status = trade.order, trade.orderStatus
            kind = {"MKT": "market", "LMT": "limit", "STP": "stop", "STP LMT": "stop_limit"}.get(order.orderType, "")
            found.append(
                VenueOrder(
                    client_order_id=order.orderRef or f"ib-{order.permId}",
                    symbol=symbol,
                    side="buy" if order.action == "BUY" else "sell",
                    type=kind or order.orderType.lower(),
                    amount=_dec(order.totalQuantity),
                    filled=_dec(status.filled),
                    price=_dec(order.lmtPrice) if kind in ("limit", "stop_limit") else None,
                    stop_price=_dec(order.auxPrice) if kind in ("stop", "stop_limit") else None,
                    venue_order_id=str(order.permId or order.orderId),
                )
            )
        return found

    def holdings(self) -> dict[str, Decimal]:
        """Positions by data.symbols name (other contracts by IB's local symbol) and cash by currency."""
        self.connection.ensure_connected()
        names = {r.contract.conId: name for name, r in self.contracts.items()}
        held: dict[str, Decimal] = {}
        for position in self.ib.positions(self.account):
            if self.account and position.account != self.account:
                continue
            key = names.get(position.contract.conId) or position.contract.localSymbol or position.contract.symbol
            held[key] = held.get(key, Decimal(0)) + _dec(position.position)
        for value in self.ib.accountValues(self.account):
            if value.tag == "TotalCashBalance" and value.currency != "BASE":
                held[value.currency] = Decimal(value.value)
        return held

    # --- recording ----------------------------------------------------------------------------------------

    def _record(
        self, client_order_id: str, trade: Any, fills: list[Any] | None = None, *, raise_rejection: bool = False
    ) -> OrderState:
        """Store the order's new executions (once each, by execId) and its status."""
        stored = self.repository.order(client_order_id)
        if stored is None:
            raise Rejected(f"order {client_order_id} is not in this bot's database")
        executions = _by_exec_id([*(trade.fills if trade is not None else []), *(fills or [])])
        venue_id = None
        if trade is not None:
            venue_id = str(trade.order.permId or trade.orderStatus.permId or trade.order.orderId)
        elif executions:
            venue_id = str(next(iter(executions.values())).execution.permId)
        raw = _raw(trade, stored.raw, self._ib_now_ms)
        self.repository.mark_order(client_order_id, OrderStatus.OPEN, venue_order_id=venue_id, raw=raw)
        latest = _latest_revisions(executions.values())
        # Whatever revision this answer shows: one recorded first (.02) must not let an older one (.01) in.
        recorded = self._recorded_revisions(stored.id) if latest else {}
        new = waiting = 0
        for base, fill in sorted(latest.items(), key=lambda item: item[1].execution.time):
            exec_id = fill.execution.execId
            earlier = recorded.get(base)
            if earlier is not None and earlier != exec_id:
                if _revision(exec_id)[1] > _revision(earlier)[1]:
                    self._correction(client_order_id, earlier, fill)
                continue  # an older revision of a recorded execution: old news
            if not _has_report(fill):
                waiting += 1  # its commission report has not arrived: recorded on a later sync
                continue
            if self.repository.record_fill(client_order_id, _fill(fill)):
                new += 1
        stored = self.repository.order(client_order_id)
        assert stored is not None
        filled = Decimal(stored.filled or 0)
        ib_status = trade.orderStatus.status if trade is not None else ""
        unrecorded = None
        if filled >= stored.amount:
            status = OrderStatus.FILLED
        elif waiting:  # IB executed more than is recorded: not final until the commission reports are in
            status = OrderStatus.PARTIALLY_FILLED if filled > 0 else OrderStatus.OPEN
        elif ib_status in _DONE and _ib_filled(trade, stored.amount) > filled:
            # IB lists only the current day's executions: an order that filled while the bot was down
            # on an earlier day cannot be recorded here, and must never pass for canceled.
            status = OrderStatus.UNKNOWN
            unrecorded = (
                f"IB order {venue_id} is {ib_status} with {_dec(_ib_filled(trade, stored.amount))} filled, but "
                f"the database holds {_dec(filled)} and IB does not list the executions (it lists the current "
                "day's only): a person must record them from TWS's trade log or the account statement (`tradeforge "
                "db record-fill`), or restore a database backup that holds them; trading stays stopped until then"
            )
            _logger().warning("%s: %s", client_order_id, unrecorded)
        elif ib_status in _DONE:
            # ib_async shows a rejected new order as Cancelled with IB's error in the trade log
            refused = ib_status == "Inactive" or _rejection(trade) is not None
            status = OrderStatus.REJECTED if refused and not filled else OrderStatus.CANCELED
        else:
            status = OrderStatus.PARTIALLY_FILLED if filled > 0 else OrderStatus.OPEN
        self.repository.mark_order(client_order_id, status, venue_order_id=venue_id, raw=raw)
        if status == OrderStatus.REJECTED and raise_rejection:
            raise Rejected(f"{client_order_id}: IB rejected the order: {_last_message(trade)}")
        return OrderState(client_order_id, status, filled, venue_id, new, unrecorded, fills_pending=waiting > 0)

    def _ib_now_ms(self) -> int:
        return _ms(self.ib.reqCurrentTime())

    def _recorded_revisions(self, order_id: int) -> dict[str, str]:
        """The order's stored executions: IB's execution id without its revision -> the stored execId."""
        return {
            _revision(f.venue_trade_id)[0]: f.venue_trade_id for f in self.repository.fills() if f.order_id == order_id
        }

    def _correction(self, client_order_id: str, earlier: str, fill: Any) -> None:
        """IB corrected an execution already recorded: the stored fill (and what the strategy was told)
        stays, never counted twice; a person is told once per run, and reconciliation compares positions."""
        exec_id = fill.execution.execId
        if exec_id in self._corrections:
            return
        self._corrections.add(exec_id)
        report = fill.commissionReport
        commission = f", commission {_dec(report.commission)} {report.currency}" if _has_report(fill) else ""
        message = (
            f"{client_order_id}: IB corrected execution {earlier} as {exec_id} ({_dec(fill.execution.shares)} @ "
            f"{_dec(fill.execution.price)}{commission}); the recorded fill stays as it was: compare with the "
            "account (tradeforge reconcile)"
        )
        _logger().warning("%s", message)
        self.repository.log_event(
            CORRECTION_EVENT, message, {"client_order_id": client_order_id, "recorded": earlier, "corrected": exec_id}
        )


CORRECTION_EVENT = "ib_execution_correction"


def _revision(exec_id: str) -> tuple[str, int]:
    """IB's execution id and its revision: a correction repeats the id with the last part raised (.01 -> .02)."""
    base, _, revision = exec_id.rpartition(".")
    return (base, int(revision)) if base and revision.isdigit() else (exec_id, 0)


def _latest_revisions(fills: Any) -> dict[str, Any]:
    """Each execution once: its latest revision, by execution id without the revision."""
    latest: dict[str, Any] = {}
    for fill in fills:
        base, revision = _revision(fill.execution.execId)
        if base not in latest or revision > _revision(latest[base].execution.execId)[1]:
            latest[base] = fill
    return latest


def _by_exec_id(fills: list[Any]) -> dict[str, Any]:
    """Each execution once, preferring the Fill that holds its commission report: ib_async answers
    reqExecutions for an execution it knows with a new Fill whose report stays empty."""
    found: dict[str, Any] = {}
    for fill in fills:
        exec_id = fill.execution.execId
        if exec_id not in found or (_has_report(fill) and not _has_report(found[exec_id])):
            found[exec_id] = fill
    return found


def _reports_pending(fills: list[Any]) -> bool:
    return not all(_has_report(fill) for fill in _latest_revisions(_by_exec_id(fills).values()).values())


def _has_report(fill: Any) -> bool:
    report = fill.commissionReport
    return report is not None and report.execId == fill.execution.execId and report.commission < _UNSET


_DONE = frozenset({"Filled", "Cancelled", "ApiCancelled", "Inactive"})


def _executions_behind(trade: Any, executions: list[Any]) -> bool:
    """An ended order of this session whose status counts more filled than the executions listed so
    far (IB sends them as separate messages). Executions IB no longer lists (an earlier day's) look
    the same: the wait for them ends at `order_timeout`."""
    if trade is None or trade.orderStatus.status not in _DONE:
        return False
    listed = sum(
        (_dec(f.execution.shares) for f in _latest_revisions(_by_exec_id(executions).values()).values()), Decimal(0)
    )
    return _ib_filled(trade, _dec(trade.order.totalQuantity)) > listed


def _ib_filled(trade: Any, amount: Decimal) -> Decimal:
    """How much IB says the order filled: all of it once Filled; else its status's count, or (a completed
    order read after a restart, whose status carries none) the order's filledQuantity."""
    if trade.orderStatus.status == "Filled":
        return amount
    counts = [trade.orderStatus.filled or 0.0, trade.order.filledQuantity]
    return max(_dec(count) for count in counts if count < _UNSET)


_CANCEL_CONFIRMED = 202  # "Order Canceled - reason:"


def _fill(fill: Any) -> FillReport:
    execution, report = fill.execution, fill.commissionReport
    return FillReport(
        venue_trade_id=execution.execId,
        amount=_dec(execution.shares),
        price=_dec(execution.price),
        time=execution.time,
        fee=_dec(report.commission),
        fee_currency=report.currency or None,
    )


def _rejection(trade: Any) -> str | None:
    """IB's error that ended the order, unless it is the confirmation of a cancel (202)."""
    errors = [entry for entry in trade.log if entry.errorCode and entry.errorCode != _CANCEL_CONFIRMED]
    return f"{errors[-1].errorCode}: {errors[-1].message}" if errors else None


def _last_message(trade: Any) -> str:
    messages = [entry.message for entry in (trade.log if trade is not None else []) if entry.message]
    return _rejection(trade) or (messages[-1] if messages else "no reason given")


def _raw(trade: Any, stored: dict[str, Any] | None, now_ms: Callable[[], int]) -> dict[str, Any] | None:
    """What IB last said of the order, and when it ended it (`ended_ms`, kept once known): the live
    broker tells the strategy of a cancel only at the candle after it, on every re-read alike. An order
    that ended while the bot was down comes without its status log (ib_async's completed orders): its
    end is when it is first seen ended, IB's time now, so its cancel never reaches the strategy before
    the fill of its OCA partner that caused it."""
    if trade is None:
        return stored
    status = trade.orderStatus
    raw: dict[str, Any] = {
        "status": status.status,
        "filled": status.filled,
        "permId": trade.order.permId,
        "orderId": trade.order.orderId,
    }
    ended = (stored or {}).get("ended_ms")
    if ended is None and status.status in _DONE:
        times = [entry.time for entry in trade.log if entry.status in _DONE and entry.time is not None]
        ended = _ms(times[0]) if times else now_ms()
    if ended is not None:
        raw["ended_ms"] = ended
    return raw


def _ms(time: dt.datetime) -> int:
    aware = time if time.tzinfo is not None else time.replace(tzinfo=dt.UTC)
    return round(aware.timestamp() * 1000)


# --- restart reconciliation ------------------------------------------------------------------------------


def reconcile(venue: IbkrVenue, tolerance: Decimal = DEFAULT_TOLERANCE) -> ReconcileReport:
    """Bring the database in line with IB before the first new order (DESIGN protocol step 3), the same
    way as on any venue (brokers/reconcile.py): every unfinished order re-read by orderRef (fills while
    the bot was down recorded once, an intent that never reached IB marked lost), IB's open orders
    sorted into ours (adopted) and foreign (left alone), and the positions the recorded fills add up to
    compared with IB's, plus the offsets a person accepted."""
    return reconcile_venue(venue, list(venue.contracts), tolerance)
