"""The live Backtrader broker: a strategy's orders go to a `Venue` (brokers/venue.py) through the
order journal, and what the venue did comes back to the strategy from the database.

One code path for trading and for re-reading history after a restart (engine/journal.py):

- `submit`: the venue checks the order (a refusal is local, before anything is written), the
  journal commits the intent (or, while history is re-read, re-adopts the stored order), and only a
  new intent is sent. An entry while the exchange circuit is open is written and rejected, so that a
  re-read meets the same refusal at the same candle.
- At each candle the open orders are synced with the venue (live candles only: a re-read trusts the
  database), then the stored fills of our orders whose fill time is before the candle's close are
  delivered to Backtrader, followed by each order's final status once its fills are in. The same
  rule over the same rows gives the same notifications at the same candles on every restart.
- A cancel the venue has not confirmed as final (IB: an execution still waiting for its commission
  report) keeps the order tracked until the venue says it ended, so its late fills still arrive.
- Cash and positions come from the starting capital and the delivered fills, never from a balance
  read, so a re-read sizes its orders exactly as the first run did. Balances are for reconciliation.
- Emulated (see README "Live trading"): stops and stop-limits on markets without `STOP_LOSS`,
  trailing stops always, and every member of an OCO group but the first one the venue holds (a spot
  balance can back one resting order only) unless the venue holds the group itself (IB's OCA
  groups). The broker watches closed candles and sends a market order when one crosses the level;
  the fill comes at the market after that candle closed.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

import backtrader as bt

from tradeforge.brokers.orders import OrderRefused
from tradeforge.brokers.paper import OrderJournal, money
from tradeforge.brokers.venue import OrderState, Settlement
from tradeforge.persistence.models import TERMINAL_ORDER_STATUSES, OrderStatus
from tradeforge.persistence.repository import OrderIntent, Repository
from tradeforge.resilience.errors import Fatal, Temporary

_NS_PER_S = 1_000_000_000
_SYNC_RETRY_SECONDS = 1.0


def _logger() -> logging.Logger:
    return logging.getLogger("tradeforge.brokers.live")


class OrderVenue(Protocol):
    """The part of `Venue` (brokers/venue.py) the broker uses: placing, syncing, canceling, and how a
    fill moves cash and position."""

    repository: Repository
    holds_oco_groups: bool

    def settlement(self, symbol: str) -> Settlement: ...

    def check(self, intent: OrderIntent, reference_price: Decimal) -> OrderIntent: ...

    def supports(self, symbol: str, order_type: str) -> bool: ...

    def send(self, symbol: str, client_order_id: str) -> OrderState: ...

    def sync(self, symbol: str, client_order_id: str) -> OrderState: ...

    def cancel(self, symbol: str, client_order_id: str) -> OrderState: ...


class JournalWithReplay(OrderJournal, Protocol):
    """The order journal as the live broker needs it: it also says whether it is re-adopting."""

    @property
    def catching_up(self) -> bool: ...


@dataclass(eq=False)
class _Tracked:
    """One Backtrader order and what of it has reached the strategy."""

    order: bt.Order
    symbol: str
    client_order_id: str | None = None  # None: emulated, not triggered yet
    delivered: set[str] = field(default_factory=set)  # venue trade ids executed into Backtrader
    done: bool = False
    cancel_requested: bool = False  # the venue was asked to cancel; tracked until it says the order ended
    group: list[_Tracked] = field(default_factory=list)  # its OCO group, itself included
    emulated: str | None = None  # stop | limit | trailing: watched on candles by the broker
    level: float = 0.0  # emulated trigger level
    seen_bars: int = 0  # len(data) when submitted or last watched


@dataclass(frozen=True)
class _StoredFill:
    venue_trade_id: str
    amount: Decimal
    price: Decimal
    fee: Decimal
    fee_currency: str | None
    time_ns: int


class LiveBroker(bt.BrokerBase):
    """Backtrader's broker interface over a venue and the order journal."""

    def __init__(
        self,
        venue: OrderVenue,
        journal: JournalWithReplay,
        *,
        cash: float,
        timeframe_seconds: int,
        rereading: Callable[[int], bool] = lambda candle_ns: False,
        before_live: Callable[[], None] | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        super().__init__()
        self.venue = venue
        self.journal = journal
        self.repository = venue.repository
        self.startingcash = self.cash = float(cash)
        self.step_ns = timeframe_seconds * _NS_PER_S
        self.rereading = rereading
        self.before_live = before_live
        self.stop_event = stop or threading.Event()
        self.positions: dict[Any, bt.Position] = {}
        self.notifs: list[bt.Order] = []
        self._tracked: list[_Tracked] = []  # orders not done yet, in submission order
        self._by_ref: dict[int, _Tracked] = {}
        self._live = False
        self._fills: dict[str, list[_StoredFill]] = {}  # client order id -> its stored fills
        self._fills_stale = True  # a venue call may have recorded fills since they were read
        self._last_fill_id = 0
        self._client_ids: dict[int, str] = {}  # order row id -> client order id
        self.value = self.cash

    # --- Backtrader's broker interface -----------------------------------------------------------

    def start(self) -> None:
        super().start()
        self.cash = self.startingcash

    def getcash(self) -> float:
        return self.cash

    get_cash = getcash

    def getvalue(self, datas: Any = None) -> float:
        value = self.cash
        for data, position in self.positions.items():
            if (datas is None or data in datas) and position.size and len(data):
                value += position.size * data.close[0]
        self.value = value
        return value

    get_value = getvalue

    def getposition(self, data: Any) -> bt.Position:
        return self.positions.setdefault(data, bt.Position())

    def get_notification(self) -> bt.Order | None:
        return self.notifs.pop(0) if self.notifs else None

    def notify(self, order: bt.Order) -> None:
        self.notifs.append(order.clone())

    def buy(self, owner: Any, data: Any, size: float, **kwargs: Any) -> bt.Order:
        return self._create(bt.BuyOrder, owner, data, size, **kwargs)

    def sell(self, owner: Any, data: Any, size: float, **kwargs: Any) -> bt.Order:
        return self._create(bt.SellOrder, owner, data, size, **kwargs)

    def _create(
        self,
        kind: type[bt.Order],
        owner: Any,
        data: Any,
        size: float,
        price: float | None = None,
        plimit: float | None = None,
        exectype: int | None = None,
        valid: Any = None,
        tradeid: int = 0,
        oco: bt.Order | None = None,
        trailamount: float | None = None,
        trailpercent: float | None = None,
        parent: bt.Order | None = None,
        transmit: bool = True,
        **info: Any,
    ) -> bt.Order:
        if parent is not None or not transmit:
            raise Fatal("the live broker does not take Backtrader bracket orders (parent/transmit); use oco groups")
        order = kind(
            owner=owner, data=data, size=size, price=price, pricelimit=plimit, exectype=exectype, valid=valid,
            tradeid=tradeid, oco=oco, trailamount=trailamount, trailpercent=trailpercent,
        )  # fmt: skip
        order.addinfo(**info)
        order.addcomminfo(self.getcommissioninfo(data))
        return self.submit(order, oco)

    def submit(self, order: bt.Order, oco: bt.Order | None = None) -> bt.Order:
        order.submit(self)
        self.notify(order)
        tracked = _Tracked(order, order.data._name, seen_bars=len(order.data))
        self._tracked.append(tracked)
        self._by_ref[order.ref] = tracked
        partner = self._by_ref.get(oco.ref) if oco is not None else None
        group = tracked.group = partner.group if partner is not None else []
        group.append(tracked)
        kind = _KINDS.get(order.exectype, "market")
        if kind == "trailing" or (
            kind in ("stop", "stop_limit", "limit")
            and order.info.get("role") == "protective"
            and (self._partner_rests(tracked) or not self._venue_holds(tracked, kind))
        ):
            self._emulate(tracked, kind)
            return order
        self._place(tracked, kind, order.price, order.pricelimit)
        return order

    def cancel(self, order: bt.Order) -> None:
        tracked = self._by_ref.get(order.ref)
        if tracked is None or tracked.done:
            return
        self._cancel(tracked)
        for other in self._partners(tracked):
            self._cancel(other)

    def next(self) -> None:
        """Once per candle, before the strategy decides on it: sync, deliver, watch emulated orders."""
        stamps = [data.datetime[0] for data in self._datas() if len(data)]
        if not stamps:
            return
        candle_ns = _to_ns(max(stamps))
        close_ns = candle_ns + self.step_ns
        if not self.rereading(candle_ns):
            if not self._live:
                self._live = True
                if self.before_live is not None:
                    self.before_live()  # startup reconciliation, before the first live decision
            self._sync_open_orders()
        self._deliver(close_ns)
        self._watch_emulated()
        self._tracked = [t for t in self._tracked if not t.done]
        self._by_ref = {t.order.ref: t for t in self._tracked}
        self.getvalue()

    def _datas(self) -> list[Any]:
        cerebro = getattr(self, "cerebro", None)
        return list(cerebro.datas) if cerebro is not None else list(self.positions)

    # --- placing ----------------------------------------------------------------------------------

    def _venue_holds(self, tracked: _Tracked, kind: str) -> bool:
        return self.venue.supports(tracked.symbol, kind)

    def _partner_rests(self, tracked: _Tracked) -> bool:
        """Does another member of its OCO group rest on a venue that cannot hold the group together?"""
        sent = any(m.client_order_id for m in tracked.group if m is not tracked)
        return sent and not self.venue.holds_oco_groups

    def _emulate(self, tracked: _Tracked, kind: str) -> None:
        order = tracked.order
        tracked.emulated = "stop" if kind == "stop_limit" else kind
        if kind == "trailing":
            tracked.level = _trail(order, order.data.close[0], None)
        else:
            tracked.level = float(order.price)
        order.accept(self)
        self.notify(order)

    def _place(self, tracked: _Tracked, kind: str, price: float | None, limit: float | None) -> None:
        """Check -> journal (new or re-adopted) -> send if new. Ends with the order accepted or refused."""
        order = tracked.order
        role = order.info.get("role") or "manual"
        amount = money(abs(order.size)) or Decimal(0)
        if order.issell() and role in ("exit", "protective"):
            held = money(max(self.getposition(order.data).size, 0.0)) or Decimal(0)
            amount = min(amount, held)  # never sell more than the fills bought (fees taken in the asset)
        limit_price = stop_price = None
        if kind in ("stop", "stop_limit"):
            stop_price, limit_price = money(price), money(limit) if kind == "stop_limit" else None
        elif kind == "limit":
            limit_price = money(price)
        intent = OrderIntent(
            None, tracked.symbol, "sell" if order.issell() else "buy", kind, role, amount,
            price=limit_price, stop_price=stop_price, reason=order.info.get("reason"),
        )  # fmt: skip
        try:
            checked = self.venue.check(intent, money(order.data.close[0]) or Decimal(0))
        except OrderRefused as exc:
            _logger().warning("%s %s order refused: %s", tracked.symbol, role, exc)
            order.addinfo(refused=str(exc))
            tracked.done = True
            order.reject(self)
            self.notify(order)
            return
        adopting = self.journal.catching_up
        client_id = self.journal.intent(
            symbol=checked.symbol, side=checked.side, type=checked.type, role=role, amount=checked.amount,
            price=checked.price, stop_price=checked.stop_price, reason=checked.reason,
        )  # fmt: skip
        tracked.client_order_id = client_id
        order.addinfo(client_order_id=client_id)
        if not adopting:
            self.venue.send(checked.symbol, client_id)
            self._fills_stale = True  # the answer may have carried fills
        stored = self.repository.order(client_id)
        if stored is not None:
            self._client_ids[stored.id] = client_id
        status = stored.status if stored is not None else OrderStatus.LOST
        if status in (OrderStatus.REJECTED, OrderStatus.LOST):
            tracked.done = True
            self._refuse(order, stored)
            return
        if order.status != order.Accepted:  # an emulated order was accepted when it was placed
            order.accept(self)
            self.notify(order)
        if status != OrderStatus.PENDING_SUBMIT:
            self.journal.accepted(client_id)

    def _refuse(self, order: bt.Order, stored: Any) -> None:
        """Rejected (Margin when the venue said the funds were insufficient), or lost on the way."""
        reason = _reason(stored)
        order.addinfo(refused=reason)
        if "insufficient" in reason.lower():
            order.margin()
        else:
            order.reject(self)
        self.notify(order)
        if stored is not None:
            self.journal.closed(stored.client_order_id, stored.status.value)

    # --- canceling --------------------------------------------------------------------------------

    def _cancel(self, tracked: _Tracked) -> None:
        """Cancel with the venue's confirmation; deliver every fill it had, then its final status."""
        if tracked.done:
            return
        client_id = tracked.client_order_id
        if client_id is None:  # emulated, never triggered: nothing is on the venue
            tracked.done = True
            tracked.order.cancel()
            self.notify(tracked.order)
            return
        stored = self.repository.order(client_id)
        if stored is not None and stored.status not in TERMINAL_ORDER_STATUSES and not tracked.cancel_requested:
            state = self.venue.cancel(tracked.symbol, client_id)
            tracked.cancel_requested = True
            self._fills_stale = True  # the confirmation may have recorded fills
            self._synced(tracked, state)
        self._settle(tracked, None)
        # Without a terminal answer the order stays tracked: the candles' syncs deliver its end.

    @staticmethod
    def _partners(tracked: _Tracked) -> list[_Tracked]:
        return [m for m in tracked.group if m is not tracked and not m.done]

    # --- what the venue did, delivered from the database -----------------------------------------

    def _sync_open_orders(self) -> None:
        for tracked in self._tracked:
            if tracked.done or tracked.client_order_id is None:
                continue
            stored = self.repository.order(tracked.client_order_id)
            if stored is None or stored.status in TERMINAL_ORDER_STATUSES:
                continue
            state = self._synced(tracked)
            if state.new_fills or state.status != stored.status:
                self._fills_stale = True

    def _synced(self, tracked: _Tracked, state: OrderState | None = None) -> OrderState:
        """The venue's answer (`state`, else a new sync) once it has every fill of the order recorded. Until
        then the candle waits: delivering without them would let a re-read diverge, and an exit would sell
        what is sold. An order a person must sort out (the venue filled more than can be recorded) stops
        trading."""
        assert tracked.client_order_id is not None
        while state is None or state.fills_pending:
            if state is not None:
                self._retry_after(tracked, "the venue executed more than it has reported yet")
            try:
                state = self.venue.sync(tracked.symbol, tracked.client_order_id)
            except Temporary as exc:
                self._retry_after(tracked, f"sync failed: {exc}")
                state = None
        if state.needs_person is not None:
            raise Fatal(f"order {state.client_order_id}: {state.needs_person}")
        return state

    def _retry_after(self, tracked: _Tracked, problem: str) -> None:
        _logger().warning("%s: %s; retrying", tracked.client_order_id, problem)
        if self.stop_event.wait(_SYNC_RETRY_SECONDS):
            raise Temporary(f"{tracked.client_order_id}: stopped while waiting ({problem})")

    def _stored_fills(self) -> dict[str, list[_StoredFill]]:
        """Stored fills by client order id, read incrementally (only rows newer than the last read)."""
        if self._fills_stale:
            for fill in self.repository.fills(after_id=self._last_fill_id):
                if fill.order_id not in self._client_ids:
                    self._client_ids = {o.id: o.client_order_id for o in self.repository.orders()}
                self._fills.setdefault(self._client_ids[fill.order_id], []).append(
                    _StoredFill(
                        fill.venue_trade_id,
                        Decimal(fill.amount),
                        Decimal(fill.price),
                        Decimal(fill.fee or 0),
                        fill.fee_currency,
                        _to_ns_time(fill.time),
                    )
                )
                self._last_fill_id = fill.id
            self._fills_stale = False
        return self._fills

    def _deliver(self, close_ns: int) -> None:
        for tracked in list(self._tracked):
            if not tracked.done and tracked.client_order_id is not None:
                self._settle(tracked, close_ns)

    def _settle(self, tracked: _Tracked, close_ns: int | None) -> None:
        """Execute the order's stored fills before `close_ns` (None: all of them); when all are in and
        the stored status is final (and, for a cancel, older than the close), notify it."""
        assert tracked.client_order_id is not None
        stored = self.repository.order(tracked.client_order_id)
        if stored is None:
            return
        fills = self._stored_fills().get(tracked.client_order_id, [])
        pending = [f for f in fills if f.venue_trade_id not in tracked.delivered]
        due = [f for f in pending if close_ns is None or f.time_ns < close_ns]
        final = stored.status in TERMINAL_ORDER_STATUSES and len(due) == len(pending)
        for i, fill in enumerate(due):
            last = final and i == len(due) - 1 and stored.status == OrderStatus.FILLED
            self._execute(tracked, fill, last)
        if due:
            for other in self._partners(tracked):  # a fill of one cancels the rest of its OCO group
                self._cancel(other)
        if not final or tracked.done:
            return
        if stored.status == OrderStatus.FILLED:
            return  # completed by its last fill
        ended_ns = _ended_ns(stored.raw)
        if close_ns is not None and ended_ns is not None and ended_ns >= close_ns:
            return  # canceled on the venue after this candle closed: the next candle tells
        tracked.done = True
        order = tracked.order
        if stored.status in (OrderStatus.REJECTED, OrderStatus.LOST):
            self._refuse(order, stored)
            return
        if stored.status == OrderStatus.EXPIRED:
            order.expire()
        else:
            order.cancel()
        self.notify(order)
        self.journal.closed(tracked.client_order_id, stored.status.value)

    def _execute(self, tracked: _Tracked, fill: _StoredFill, last: bool) -> None:
        """One fill into Backtrader's position, cash and the order's execution bits."""
        order = tracked.order
        data = order.data
        buy = order.isbuy()
        amount, price, fee = float(fill.amount), float(fill.price), float(fill.fee)
        settlement = self.venue.settlement(tracked.symbol)
        in_cash = settlement.fee_in_cash(fill.fee_currency)
        commission = fee if in_cash else 0.0  # a fee paid in a third asset (BNB) is not cash here
        size = amount
        cash_flow = -amount * price if buy else amount * price - commission
        if buy and settlement.fee_from_asset_bought and in_cash and price:
            size -= fee / price  # the venue took a buy's fee from the asset bought (stored valued in cash)
        elif buy:
            cash_flow -= commission  # charged in cash (IB): the shares bought are all held
        size = size if buy else -size
        position = self.getposition(data)
        closing = order.info.get("role") in ("exit", "protective")
        if last and closing and position.size and (position.size + size) * position.size > 0:
            cash_flow -= (position.size + size) * price  # dust the lot step left: counted at this fill's price
            size = -position.size
        self.cash += cash_flow
        before = position.price
        psize, pprice, opened, closed = position.update(size, price)
        comminfo = self.getcommissioninfo(data)
        pnl = comminfo.profitandloss(-closed, before, price) if closed else 0.0
        share = abs(closed) / abs(size) if size else 0.0
        order.execute(
            _bt_time(fill.time_ns), size, price,
            closed, comminfo.getoperationcost(closed, before), commission * share,
            opened, comminfo.getoperationcost(opened, price), commission * (1 - share),
            0.0, pnl, psize, pprice,
        )  # fmt: skip
        tracked.delivered.add(fill.venue_trade_id)
        if last:
            tracked.done = True
            order.status = order.Completed
        else:
            order.status = order.Partial
        self.notify(order)
        self.journal.filled(
            tracked.client_order_id or "", fill.venue_trade_id, fill.amount, fill.price, fill.fee,
            dt.datetime.fromtimestamp(fill.time_ns / _NS_PER_S, dt.UTC),
        )  # fmt: skip

    # --- emulated orders ----------------------------------------------------------------------------

    def _watch_emulated(self) -> None:
        for tracked in list(self._tracked):
            if tracked.done or tracked.emulated is None or tracked.client_order_id is not None:
                continue
            data = tracked.order.data
            if len(data) <= tracked.seen_bars:
                continue  # active from the candle after it was placed
            tracked.seen_bars = len(data)
            if _crossed(tracked, data.high[0], data.low[0]):
                self._trigger(tracked)
            elif tracked.emulated == "trailing":
                tracked.level = _trail(tracked.order, data.close[0], tracked.level)

    def _trigger(self, tracked: _Tracked) -> None:
        """Crossed: cancel the rest of the OCO group (confirmed), then send a market order, unless a
        partner turned out to have filled meanwhile."""
        for other in self._partners(tracked):
            self._cancel(other)
            if other.order.status == bt.Order.Completed:
                tracked.done = True
                tracked.order.cancel()
                self.notify(tracked.order)
                return
        tracked.order.addinfo(emulated=tracked.emulated, triggered_at=tracked.level)
        self._place(tracked, "market", None, None)


_KINDS = {
    bt.Order.Market: "market",
    bt.Order.Close: "market",
    bt.Order.Limit: "limit",
    bt.Order.Stop: "stop",
    bt.Order.StopLimit: "stop_limit",
    bt.Order.StopTrail: "trailing",
    bt.Order.StopTrailLimit: "trailing",
}


def _crossed(tracked: _Tracked, high: float, low: float) -> bool:
    sell = tracked.order.issell()
    if tracked.emulated == "limit":
        return high >= tracked.level if sell else low <= tracked.level
    return low <= tracked.level if sell else high >= tracked.level


def _trail(order: bt.Order, close: float, level: float | None) -> float:
    """A trailing stop's level after a candle closing at `close` (it only ever tightens)."""
    distance = order.trailamount or close * (order.trailpercent or 0.0)
    candidate = close - distance if order.issell() else close + distance
    if level is None:
        return candidate
    return max(level, candidate) if order.issell() else min(level, candidate)


def _reason(stored: Any) -> str:
    if stored is None:
        return "not in the database"
    return str((stored.raw or {}).get("error") or stored.status.value)


def _ended_ns(raw: dict[str, Any] | None) -> int | None:
    """When the venue ended an order (its own clock), from the stored payload (Binance: updateTime;
    IB: ended_ms, from its trade log)."""
    raw = raw or {}
    stamp = raw.get("ended_ms") or raw.get("updateTime") or raw.get("transactTime")
    return int(stamp) * 1_000_000 if stamp is not None else None


def _to_ns(bt_time: float) -> int:
    return round(bt.num2date(bt_time).replace(tzinfo=dt.UTC).timestamp() * 1000) * 1_000_000


def _to_ns_time(time: dt.datetime) -> int:
    aware = time if time.tzinfo is not None else time.replace(tzinfo=dt.UTC)
    return round(aware.timestamp() * 1000) * 1_000_000


def _bt_time(ns: int) -> float:
    return float(bt.date2num(dt.datetime.fromtimestamp(ns / _NS_PER_S, dt.UTC).replace(tzinfo=None)))
