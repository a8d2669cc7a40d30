"""A fake TWS/IB Gateway at ib_async's boundary: an object with the `IB` methods tradeforge uses, answering
with ib_async's own types (Contract, ContractDetails, BarDataList, Trade, OrderStatus, Execution,
CommissionReport, Fill, Position, AccountValue, RequestError) and emitting the same events.

Time is the fake's: `sleep` advances it (as `IB.sleep` lets ib_async's loop run), and on every second the
market moves along a scripted bar path, keep-up-to-date bar subscriptions are updated (the last bar
moves until the next one starts), and resting orders are matched. The server side (orders, executions)
survives a lost connection, as IB's does; the client's view (`trades()`, subscriptions) does not.

Faults: `restart(down_for)` (TWS's nightly restart), `partial_fill` (at most this many per match),
`drop_after_place` (the connection drops right after TWS took an order, before its acknowledgement),
`lose_next_order` (the connection drops and the order never reaches TWS), `pacing_violations` (the
next N historical requests answer error 162), `reject_next_order`, unknown contracts (error 200) and
ambiguous ones (several matches), and foreign open orders (`add_foreign_order`).
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import threading
from dataclasses import dataclass, field
from typing import Any

from eventkit import Event
from ib_async import (
    AccountValue,
    BarData,
    BarDataList,
    CommissionReport,
    Contract,
    ContractDetails,
    Execution,
    ExecutionFilter,
    Fill,
    Order,
    OrderStatus,
    Position,
    Trade,
)
from ib_async.objects import TradeLogEntry
from ib_async.wrapper import RequestError

PACING_MESSAGE = "Historical Market Data Service error message:Historical data request pacing violation"
NO_SECURITY = "No security definition has been found for the request"
_BAR_SIZES = {"1 min": 60, "5 mins": 300, "15 mins": 900, "1 hour": 3600, "1 day": 86_400}


@dataclass
class _ServerOrder:
    """An order as TWS holds it, whatever the client sees."""

    contract: Contract
    order: Order
    status: str = OrderStatus.PreSubmitted
    filled: float = 0.0
    avg_price: float = 0.0
    fills: list[Fill] = field(default_factory=list)
    acknowledged: bool = False
    cancel_requested: bool = False
    reject_reason: str | None = None

    @property
    def remaining(self) -> float:
        return self.order.totalQuantity - self.filled

    @property
    def done(self) -> bool:
        return self.status in OrderStatus.DoneStates


class FakeIB:
    """The `IB` API surface tradeforge uses, over a scripted market."""

    def __init__(
        self,
        *,
        origin: dt.datetime,
        bars: list[tuple[float, float, float, float, float]],
        bar_seconds: int = 60,
        now: dt.datetime | None = None,
        account: str = "DU1234567",
        cash: float = 100_000.0,
        commission_per_share: float = 0.005,
        min_commission: float = 1.0,
    ) -> None:
        self.origin = origin
        self.path = bars
        self.bar_seconds = bar_seconds
        self.now = now or origin + dt.timedelta(seconds=bar_seconds * 10)
        self.account = account
        self.cash = cash
        self.commission_per_share = commission_per_share
        self.min_commission = min_commission
        self.commission_currency: str | None = None  # default: the contract's currency
        # Commission reports this many seconds after their execution (None: with it); send_commission_reports()
        # releases them at once.
        self.commission_delay: float | None = None
        self._held_reports: list[tuple[dt.datetime, Fill, CommissionReport]] = []
        self.RaiseRequestErrors = False
        for name in (
            "connectedEvent",
            "disconnectedEvent",
            "errorEvent",
            "orderStatusEvent",
            "execDetailsEvent",
            "commissionReportEvent",
            "barUpdateEvent",
            "newOrderEvent",
        ):
            setattr(self, name, Event(name))
        self.contracts: list[ContractDetails] = []
        self.listening = True  # TWS accepts connections
        self.connected = False
        self.client_id = 0
        self.connections = 0
        self.loop_thread = threading.get_ident()
        self._up_at: dt.datetime | None = None
        self._new_day_when_up = False
        self._subscriptions: list[BarDataList] = []
        self._orders: list[_ServerOrder] = []
        self._session: dict[int, Trade] = {}  # permId -> the client's Trade
        self._next_order_id = 1
        self._next_perm_id = 900_000_001
        self._next_req_id = 1
        self._executions = 0
        # TWS lists the current day's executions only (new_day() starts one); withheld: revisions the client
        # never sees again (a correction not re-sent to a later session).
        self._day_started: dt.datetime | None = None
        self._withheld: set[str] = set()
        # fault injection
        self.partial_fill: float | None = None
        self.drop_after_place = False
        self.lose_next_order = False
        self.reject_next_order: str | None = None
        self.pacing_violations = 0
        self.history_requests: list[dict[str, Any]] = []
        self.placed: list[Order] = []  # every order that reached TWS, in order
        self.alarms: list[tuple[dt.datetime, threading.Event]] = []  # set each event once the clock gets there

    # --- set-up ---------------------------------------------------------------------------------------

    def list_contract(
        self,
        symbol: str,
        sec_type: str = "STK",
        exchange: str = "SMART",
        currency: str = "USD",
        *,
        expiry: str = "",
        primary_exchange: str = "",
        min_tick: float = 0.01,
        size_increment: float = 1.0,
    ) -> Contract:
        conid = 10_000 + len(self.contracts)
        contract = Contract(
            secType=sec_type,
            conId=conid,
            symbol=symbol,
            exchange=exchange,
            primaryExchange=primary_exchange,
            currency=currency,
            lastTradeDateOrContractMonth=expiry,
            localSymbol=symbol if sec_type != "CASH" else f"{symbol}.{currency}",
        )
        self.contracts.append(
            ContractDetails(contract=contract, minTick=min_tick, minSize=size_increment, sizeIncrement=size_increment)
        )
        return contract

    def add_foreign_order(self, contract: Contract, action: str, quantity: float, price: float) -> Order:
        """An order placed by hand in TWS (client id 0, no orderRef): resting, never ours."""
        order = Order(
            action=action, totalQuantity=quantity, orderType="LMT", lmtPrice=price, clientId=0, permId=self._perm_id()
        )
        self._orders.append(_ServerOrder(contract, order, OrderStatus.Submitted, acknowledged=True))
        return order

    def cancel_all_by_hand(self) -> None:
        """A person cancels every working order in TWS (done at the next tick)."""
        for server in self._orders:
            if not server.done:
                server.cancel_requested = True

    # --- clock and market -----------------------------------------------------------------------------

    def price(self, at: dt.datetime | None = None) -> float:
        """The market price: each scripted bar moves linearly from its open to its close."""
        at = at or self.now
        elapsed = (at - self.origin).total_seconds()
        index = min(int(elapsed // self.bar_seconds), len(self.path) - 1)
        o, _h, _l, c, _v = self.path[index]
        fraction = min(1.0, (elapsed - index * self.bar_seconds) / self.bar_seconds)
        return round(o + (c - o) * fraction, 4)

    def _bar(self, index: int, at: dt.datetime) -> BarData:
        """Bar `index` as IB shows it at `at`: final once closed, still moving while it forms."""
        start = self.origin + dt.timedelta(seconds=index * self.bar_seconds)
        o, h, low, c, v = self.path[index]
        fraction = (at - start).total_seconds() / self.bar_seconds
        if fraction < 1:
            now = self.price(at)
            h, low, c, v = max(o, now), min(o, now), now, round(v * fraction, 2)
        date: dt.date | dt.datetime = start if self.bar_seconds < 86_400 else start.date()
        return BarData(date=date, open=o, high=h, low=low, close=c, volume=v, average=c, barCount=1)

    def _current_index(self) -> int:
        return min(int((self.now - self.origin).total_seconds() // self.bar_seconds), len(self.path) - 1)

    def sleep(self, seconds: float = 0.02) -> bool:
        """Let time pass, a second at a time: the market moves, orders match, subscriptions update."""
        target = self.now + dt.timedelta(seconds=seconds)
        while self.now < target:
            self.now = min(target, self.now + dt.timedelta(seconds=1))
            self._tick()
        return True

    def _tick(self) -> None:
        for when, event in self.alarms:
            if self.now >= when:
                event.set()
        if self._up_at is not None and self.now >= self._up_at:
            self.listening, self._up_at = True, None
            if self._new_day_when_up:
                self.new_day()
        for server in list(self._orders):
            self._work(server)
        if self._held_reports:
            self.send_commission_reports(self.now)
        if self.connected:
            for bars in list(self._subscriptions):
                self._update(bars)

    def _update(self, bars: BarDataList) -> None:
        index = self._current_index()
        last = bars[-1] if bars else None
        last_index = int((_as_datetime(last.date) - self.origin).total_seconds() // self.bar_seconds) if last else -1
        new_bar = index > last_index
        for i in range(max(last_index, 0), index + 1):
            bar = self._bar(i, self.now)
            if i == last_index:
                bars[-1] = bar
            else:
                bars.append(bar)
        bars.updateEvent.emit(bars, new_bar)
        self.barUpdateEvent.emit(bars, new_bar)

    # --- connection ------------------------------------------------------------------------------------

    def connect(
        self, host: str = "127.0.0.1", port: int = 7497, clientId: int = 1, timeout: float = 4, **_: Any
    ) -> FakeIB:
        if not self.listening:
            raise ConnectionRefusedError(111, f"Connect call failed ('{host}', {port})")
        self.connected, self.client_id = True, clientId
        self.loop_thread = threading.get_ident()  # ib_async's event loop runs on the connecting thread
        self.connections += 1
        # ib_async syncs open orders and executions on connect.
        self._session = {s.order.permId: self._client_trade(s) for s in self._orders if not s.done and self._mine(s)}
        self.connectedEvent.emit()
        return self

    def isConnected(self) -> bool:
        return self.connected

    def disconnect(self) -> None:
        if self.connected:
            self._drop()

    def _drop(self) -> None:
        self.connected = False
        self._subscriptions.clear()
        self._session = {}
        self.disconnectedEvent.emit()

    def restart(self, down_for: float, *, new_day: bool = False) -> None:
        """TWS/Gateway goes away (its nightly restart) and accepts connections again after `down_for` s;
        with `new_day`, its execution list has started over by then (a restart across midnight)."""
        self._drop()
        self.listening = False
        self._up_at = self.now + dt.timedelta(seconds=down_for)
        self._new_day_when_up = new_day

    def _require_connection(self) -> None:
        if threading.get_ident() != self.loop_thread:  # the real client fails: no event loop in this thread
            raise RuntimeError("ib_async called from a thread other than its event loop's")
        if not self.connected:
            raise ConnectionError("Not connected")

    def _req_id(self) -> int:
        self._next_req_id += 1
        return self._next_req_id

    def _fail(self, code: int, message: str, contract: Contract | None = None) -> None:
        req_id = self._req_id()
        self.errorEvent.emit(req_id, code, message, contract)
        if self.RaiseRequestErrors:
            raise RequestError(req_id, code, message)

    # --- contracts and data ----------------------------------------------------------------------------

    def reqContractDetails(self, contract: Contract) -> list[ContractDetails]:
        self._require_connection()
        wanted = (
            ("symbol", contract.symbol),
            ("secType", contract.secType),
            ("currency", contract.currency),
            ("exchange", contract.exchange),
            ("primaryExchange", contract.primaryExchange),
        )
        found = [
            d
            for d in self.contracts
            if all(not value or getattr(d.contract, key) == value for key, value in wanted)
            and d.contract.lastTradeDateOrContractMonth.startswith(contract.lastTradeDateOrContractMonth)
        ]
        if not found:
            self._fail(200, NO_SECURITY, contract)
        return found

    def reqHistoricalData(
        self,
        contract: Contract,
        endDateTime: Any,
        durationStr: str,
        barSizeSetting: str,
        whatToShow: str,
        useRTH: bool,
        formatDate: int = 1,
        keepUpToDate: bool = False,
        chartOptions: Any = (),
        timeout: float = 60,
    ) -> BarDataList:
        self._require_connection()
        self.history_requests.append({"duration": durationStr, "bar_size": barSizeSetting, "at": self.now})
        if self.pacing_violations:
            self.pacing_violations -= 1
            self._fail(162, PACING_MESSAGE, contract)
            return BarDataList()
        if _BAR_SIZES.get(barSizeSetting) != self.bar_seconds:
            raise AssertionError(f"the fake serves {self.bar_seconds} s bars, not {barSizeSetting!r}")
        amount, unit = durationStr.split()
        seconds = int(amount) * {"S": 1, "D": 86_400, "W": 7 * 86_400, "Y": 365 * 86_400}[unit]
        first = max(0, int(((self.now - self.origin).total_seconds() - seconds) // self.bar_seconds))
        bars = BarDataList(self._bar(i, self.now) for i in range(first, self._current_index() + 1))
        bars.reqId, bars.contract, bars.barSizeSetting = self._req_id(), contract, barSizeSetting
        bars.durationStr, bars.whatToShow, bars.useRTH = durationStr, whatToShow, useRTH
        bars.formatDate, bars.keepUpToDate, bars.endDateTime, bars.chartOptions = formatDate, keepUpToDate, "", []
        if keepUpToDate:
            self._subscriptions.append(bars)
        return bars

    def cancelHistoricalData(self, bars: BarDataList) -> None:
        if bars in self._subscriptions:
            self._subscriptions.remove(bars)

    # --- orders ------------------------------------------------------------------------------------------

    def _perm_id(self) -> int:
        self._next_perm_id += 1
        return self._next_perm_id

    def _mine(self, server: _ServerOrder) -> bool:
        return server.order.clientId == self.client_id

    def _client_trade(self, server: _ServerOrder) -> Trade:
        """A fresh client-side Trade for a server order, as ib_async builds from openOrder and
        completedOrder messages: without a status log (no end time, no error messages)."""
        status = OrderStatus(
            orderId=server.order.orderId,
            status=server.status,
            filled=server.filled,
            remaining=server.remaining,
            avgFillPrice=server.avg_price,
            permId=server.order.permId,
            clientId=server.order.clientId,
        )
        fills = [f for f in server.fills if f.execution.execId not in self._withheld]
        return Trade(copy.copy(server.contract), copy.copy(server.order), status, fills, [])

    def placeOrder(self, contract: Contract, order: Order) -> Trade:
        self._require_connection()
        if not order.orderId:
            order.orderId = self._next_order_id
            self._next_order_id += 1
        order.clientId, order.permId = self.client_id, self._perm_id()
        trade = Trade(
            contract,
            order,
            OrderStatus(orderId=order.orderId, status=OrderStatus.PendingSubmit, remaining=order.totalQuantity),
            [],
            [TradeLogEntry(self.now, OrderStatus.PendingSubmit)],
        )
        if self.lose_next_order:  # the connection dropped before the order left the client
            self.lose_next_order = False
            self._drop()
            return trade
        server = _ServerOrder(copy.copy(contract), copy.copy(order))
        if self.reject_next_order:
            server.reject_reason, self.reject_next_order = self.reject_next_order, None
        self._orders.append(server)
        self.placed.append(copy.copy(order))
        if self.drop_after_place:  # TWS has it; the client never hears back
            self.drop_after_place = False
            self._drop()
            return trade
        self._session[order.permId] = trade
        self.newOrderEvent.emit(trade)
        return trade

    def cancelOrder(self, order: Order, manualCancelOrderTime: str = "") -> Trade | None:
        self._require_connection()
        server = next((s for s in self._orders if s.order.permId == order.permId and order.permId), None)
        if server is None:
            server = next(
                (s for s in self._orders if s.order.orderId == order.orderId and s.order.clientId == order.clientId),
                None,
            )
        if server is None or server.done:
            self._fail(10147, f"OrderId {order.orderId} that needs to be cancelled is not found.")
            return None
        server.cancel_requested = True
        trade = self._session.get(server.order.permId)
        if trade is not None:
            trade.orderStatus.status = OrderStatus.PendingCancel
        return trade

    def _work(self, server: _ServerOrder) -> None:
        """Acknowledge, reject, match or cancel one server order (one step per second)."""
        if server.done:
            return
        if not server.acknowledged:
            server.acknowledged = True
            if server.reject_reason:
                server.status = OrderStatus.Inactive
                self._publish(server, error=(201, f"Order rejected - reason:{server.reject_reason}"))
                return
            server.status = OrderStatus.Submitted
            self._publish(server)
        if server.cancel_requested:
            server.status = OrderStatus.Cancelled
            self._publish(server, error=(202, "Order Canceled - reason:"))
            return
        price = self.price()
        order = server.order
        buy = order.action == "BUY"
        kind = order.orderType
        if kind in ("STP", "STP LMT") and not (price >= order.auxPrice if buy else price <= order.auxPrice):
            return
        if kind in ("LMT", "STP LMT") and not (price <= order.lmtPrice if buy else price >= order.lmtPrice):
            return
        quantity = min(server.remaining, self.partial_fill or server.remaining)
        self._execute(server, quantity, price)

    def _execute(self, server: _ServerOrder, quantity: float, price: float) -> None:
        self._executions += 1
        order = server.order
        execution = Execution(
            execId=f"{order.permId:08x}.{self._executions:08x}.01.01",
            time=self.now,
            acctNumber=order.account or self.account,
            exchange="ISLAND",
            side="BOT" if order.action == "BUY" else "SLD",
            shares=quantity,
            price=price,
            permId=order.permId,
            clientId=order.clientId,
            orderId=order.orderId,
            cumQty=server.filled + quantity,
            avgPrice=(server.avg_price * server.filled + price * quantity) / (server.filled + quantity),
            orderRef=order.orderRef,
        )
        commission = round(max(self.min_commission, self.commission_per_share * quantity), 4)
        report = CommissionReport(
            execId=execution.execId,
            commission=commission,
            currency=self.commission_currency or server.contract.currency,
        )
        late = self.commission_delay is not None
        fill = Fill(server.contract, execution, CommissionReport() if late else report, self.now)
        if self.commission_delay is not None:
            self._held_reports.append((self.now + dt.timedelta(seconds=self.commission_delay), fill, report))
        server.fills.append(fill)
        server.avg_price, server.filled = execution.avgPrice, execution.cumQty
        sign = -1 if order.action == "BUY" else 1
        self.cash += sign * quantity * price - commission
        server.status = OrderStatus.Filled if server.remaining <= 1e-9 else OrderStatus.Submitted
        self._publish(server, fill=fill)
        if order.ocaGroup:
            self._one_cancels_all(server, quantity)

    def send_commission_reports(self, until: dt.datetime | None = None) -> None:
        """The held-back commission reports due by `until` (all: None) arrive; ib_async updates each fill's
        report in place."""
        due = [held for held in self._held_reports if until is None or held[0] <= until]
        self._held_reports = [held for held in self._held_reports if held not in due]
        for _, fill, report in due:
            for attribute in dataclasses.fields(report):
                setattr(fill.commissionReport, attribute.name, getattr(report, attribute.name))
            trade = self._session.get(fill.execution.permId)
            if self.connected and trade is not None:
                self.commissionReportEvent.emit(trade, fill, fill.commissionReport)

    def correct_execution(self, exec_id: str, price: float, commission: float) -> Fill:
        """IB corrects an execution: the same execId with its revision raised (.01 -> .02), a new price
        and its own commission report; the corrected one replaces the original in positions and cash."""
        server, original = next((s, f) for s in self._orders for f in s.fills if f.execution.execId == exec_id)
        base, _, revision = exec_id.rpartition(".")
        execution = dataclasses.replace(original.execution, execId=f"{base}.{int(revision) + 1:02d}", price=price)
        report = dataclasses.replace(original.commissionReport, execId=execution.execId, commission=commission)
        fill = Fill(server.contract, execution, report, self.now)
        sign = -1 if execution.side == "BOT" else 1
        self.cash += sign * execution.shares * (price - original.execution.price)
        self.cash -= commission - original.commissionReport.commission
        server.fills.append(fill)
        self._publish(server, fill=fill)
        return fill

    def _one_cancels_all(self, filled: _ServerOrder, quantity: float) -> None:
        for other in self._orders:
            if other is filled or other.done or other.order.ocaGroup != filled.order.ocaGroup:
                continue
            if other.order.ocaType == 1 or other.remaining - quantity <= 1e-9:
                other.status = OrderStatus.Cancelled
                self._publish(other, error=(202, "Order Canceled - reason:OCA group"))
            else:
                other.order.totalQuantity -= quantity

    def _publish(self, server: _ServerOrder, *, fill: Fill | None = None, error: tuple[int, str] | None = None) -> None:
        """What the client sees: only while connected, and only for orders in its session."""
        trade = self._session.get(server.order.permId)
        if not self.connected or trade is None:
            return
        status = trade.orderStatus
        status.status, status.filled, status.remaining = server.status, server.filled, server.remaining
        status.avgFillPrice, status.permId = server.avg_price, server.order.permId
        trade.order.totalQuantity = server.order.totalQuantity
        if error is not None:  # ib_async marks the client's trade Cancelled on an order error, whatever TWS says
            status.status = OrderStatus.Cancelled
            trade.log.append(TradeLogEntry(self.now, status.status, error[1], error[0]))
            self.errorEvent.emit(server.order.orderId, error[0], error[1], server.contract)
        if fill is not None:
            trade.fills.append(fill)
            self.execDetailsEvent.emit(trade, fill)
            self.commissionReportEvent.emit(trade, fill, fill.commissionReport)
        self.orderStatusEvent.emit(trade)

    # --- queries -------------------------------------------------------------------------------------------

    def trades(self) -> list[Trade]:
        return list(self._session.values())

    def openTrades(self) -> list[Trade]:
        return [t for t in self._session.values() if t.orderStatus.status not in OrderStatus.DoneStates]

    def reqOpenOrders(self) -> list[Trade]:
        self._require_connection()
        for server in self._orders:
            if not server.done and self._mine(server) and server.acknowledged:
                self._session.setdefault(server.order.permId, self._client_trade(server))
        return self.openTrades()

    def reqAllOpenOrders(self) -> list[Trade]:
        self._require_connection()
        return [self._client_trade(s) for s in self._orders if not s.done and s.acknowledged]

    def reqCompletedOrders(self, apiOnly: bool) -> list[Trade]:
        """As ib_async builds them from completedOrder messages: the status only (filled 0) and no fills;
        how much was filled is the order's `filledQuantity`; no status log, so no end time."""
        self._require_connection()
        completed = []
        for server in self._orders:
            if server.done and (server.order.clientId or not apiOnly):
                trade = self._client_trade(server)
                trade.order.filledQuantity = server.filled
                trade.orderStatus = OrderStatus(orderId=server.order.orderId, status=server.status)
                trade.fills = []
                completed.append(trade)
        return completed

    def new_day(self) -> None:
        """TWS's execution list starts over: reqExecutions no longer returns earlier executions."""
        self._day_started = self.now

    def withhold_execution(self, exec_id: str) -> None:
        """This execution revision is never shown to the client again (a later session sees the others)."""
        self._withheld.add(exec_id)
        for trade in self._session.values():
            trade.fills = [f for f in trade.fills if f.execution.execId != exec_id]

    def executions(self) -> list[Fill]:
        """Every execution TWS holds (for tests: no connection needed)."""
        return sorted((f for s in self._orders for f in s.fills), key=lambda f: f.execution.execId)

    def reqExecutions(self, execFilter: ExecutionFilter | None = None) -> list[Fill]:
        self._require_connection()
        fills = [
            f
            for f in self.executions()
            if f.execution.execId not in self._withheld and (self._day_started is None or f.time >= self._day_started)
        ]
        if execFilter is not None and execFilter.clientId:
            fills = [f for f in fills if f.execution.clientId == execFilter.clientId]
        # As ib_async answers: an execution the session already knows comes back as a new Fill with an empty
        # commission report (the report TWS sends again updates the Fill the session holds).
        known = {f.execution.execId for trade in self._session.values() for f in trade.fills}
        return [
            Fill(f.contract, f.execution, CommissionReport(), f.time) if f.execution.execId in known else f
            for f in fills
        ]

    def positions(self, account: str = "") -> list[Position]:
        held: dict[int, tuple[Contract, float, float]] = {}
        for server in self._orders:
            for fill in _latest(server.fills):
                contract, amount, cost = held.get(fill.contract.conId, (fill.contract, 0.0, 0.0))
                signed = fill.execution.shares if fill.execution.side == "BOT" else -fill.execution.shares
                held[fill.contract.conId] = (contract, amount + signed, cost + signed * fill.execution.price)
        return [
            Position(self.account, contract, amount, cost / amount if amount else 0.0)
            for contract, amount, cost in held.values()
            if abs(amount) > 1e-9
        ]

    def reqPositions(self) -> list[Position]:
        self._require_connection()
        return self.positions()

    def accountValues(self, account: str = "") -> list[AccountValue]:
        return [
            AccountValue(self.account, "TotalCashBalance", f"{self.cash:.2f}", "USD", ""),
            AccountValue(self.account, "TotalCashBalance", f"{self.cash:.2f}", "BASE", ""),
            AccountValue(self.account, "NetLiquidation", f"{self.cash:.2f}", "USD", ""),
        ]

    def managedAccounts(self) -> list[str]:
        return [self.account]

    def reqCurrentTime(self) -> dt.datetime:
        self._require_connection()
        return self.now


def _as_datetime(date: dt.date | dt.datetime) -> dt.datetime:
    if isinstance(date, dt.datetime):
        return date
    return dt.datetime(date.year, date.month, date.day, tzinfo=dt.UTC)


def _latest(fills: list[Fill]) -> list[Fill]:
    """Each execution once, in its latest revision (IB's corrections raise the execId's last part)."""
    latest: dict[str, Fill] = {}
    for fill in fills:
        latest[fill.execution.execId.rpartition(".")[0]] = fill  # revisions come in order
    return list(latest.values())
