"""The Strategy base: a Backtrader strategy that runs whatever mixins it is composed of.

Order of events on every bar (identical in backtest and paper mode): Backtrader's broker fills
pending orders (market orders at this bar's open, resting stop/limit exits intrabar); fills are
reported to `notify_order`/`notify_trade`; then `next` decides at the bar's close — exit first
(signal or per-bar rule), then entry — and submits market orders for the next bar's open. Stop,
take-profit and trailing exits are resting orders placed when the entry fills, active from the bar
after the fill, and cancelled together (one OCO group) when any of them or a signal exit closes the
trade.
"""

from __future__ import annotations

import datetime as dt
import logging
from array import array
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import backtrader as bt
import numpy as np

from tradeforge.feeds.arrays import bar_datetime, from_bt_dates
from tradeforge.resilience.errors import Fatal
from tradeforge.strategies.mixins.kinds import (
    Bars,
    EntryMixin,
    ExitMixin,
    FilterMixin,
    ProtectionMixin,
    ProtectiveOrder,
    Side,
    SizingMixin,
)
from tradeforge.strategies.params import Mixin, Param

log = logging.getLogger("tradeforge.strategy")

STREAMING_WINDOW_MIN = 500  # candles; see Strategy.start
LONG_ENTRY, SHORT_ENTRY = 1, 2
LONG_EXIT, SHORT_EXIT = 1, 2


@dataclass
class TradeRecord:
    """A round trip as the result file and the trade repository describe it."""

    symbol: str
    side: Side
    entry_time: dt.datetime
    exit_time: dt.datetime | None
    size: float
    entry_price: float
    exit_price: float | None
    pnl: float
    pnl_pct: float
    fees: float
    exit_reason: str

    def to_json(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "side": self.side,
            "entry_time": self.entry_time.isoformat(),
            "exit_time": self.exit_time.isoformat() if self.exit_time else None,
            "size": self.size,
            "entry_price": self.entry_price,
            "exit_price": self.exit_price,
            "pnl": self.pnl,
            "pnl_pct": self.pnl_pct,
            "fees": self.fees,
            "exit_reason": self.exit_reason,
        }


@dataclass(eq=False)
class SymbolBook:
    """Per-symbol state of a running strategy: precomputed signals, orders in flight, open trade."""

    data: Any
    symbol: str
    clock: Any = None  # the data's datetime line buffer
    entry_codes: bytes = b""
    exit_codes: bytes = b""
    bars: Bars | None = None
    arrays: dict[str, np.ndarray] = field(default_factory=dict)  # mixin-private precomputations
    offset: int = 0  # bar index of the arrays' first element (0 unless streaming; < 0 reading `history`)
    streaming: bool = False  # candles arrive one by one: arrays are recomputed over a trailing window
    history: dict[str, np.ndarray] = field(default_factory=dict)  # a restart's candles before its first bar
    history_bars: int = 0
    last_index: int = -1
    side: Side | None = None
    size: float = 0.0
    entry_index: int = -1
    entry_price: float = 0.0
    entry_order: Any = None
    exit_order: Any = None
    protective: list[Any] = field(default_factory=list)
    unprotected: bool = False  # entry filled, resting exits not placed yet
    last_exit_reason: str = ""
    last_exit_price: float = 0.0
    last_exit_index: int | None = None
    trades: list[TradeRecord] = field(default_factory=list)
    closing_size: float = 0.0  # size of the trade the last exit fill closed


@dataclass
class TradeStats:
    """Running totals of the closed trades' PnL, what Kelly sizing reads. Sums are left folds in
    trade order (Python's `sum` of the list on 3.11), so a restart from a snapshot of these five
    numbers continues bit for bit."""

    count: int = 0
    wins: int = 0
    win_sum: float = 0.0
    losses: int = 0
    loss_sum: float = 0.0  # of the losses' absolute values

    def add(self, pnl: float) -> None:
        self.count += 1
        if pnl > 0:
            self.wins += 1
            self.win_sum += pnl
        elif pnl < 0:
            self.losses += 1
            self.loss_sum += -pnl


class ComposedMeta(type(bt.Strategy)):  # type: ignore[misc]
    """Merges the parameters every mixin base declares into the class's Backtrader `params`."""

    def __new__(mcs, name: str, bases: tuple[type, ...], namespace: dict[str, Any]) -> Any:
        declared = dict(namespace.get("params", ()))
        for base in bases:
            for klass in base.__mro__:
                if issubclass(klass, Mixin) and klass.name and "param_specs" in vars(klass):
                    for param, spec in klass.param_specs.items():
                        declared.setdefault(klass.bt_param(param), spec.default)
        namespace["params"] = tuple(declared.items())
        return super().__new__(mcs, name, bases, namespace)


M = TypeVar("M", bound=Mixin)


def mixins_of(strategy_class: type, kind: type[M]) -> list[type[M]]:
    """The concrete mixins of one kind a strategy class is composed of, in MRO order.

    A mixin subclassed to override a hook counts once, as its most derived class."""
    found = [
        k
        for k in strategy_class.__mro__
        if issubclass(k, kind) and k is not kind and k.name and not issubclass(k, bt.Strategy)
    ]
    return [k for k in found if not any(other is not k and issubclass(other, k) for other in found)]


DIRECTIONS = ("long", "short", "both")


class Strategy(bt.Strategy, metaclass=ComposedMeta):
    """Base for composed strategies: `class MyStrat(SmaCrossEntry, StopLoss, PercentEquity, Strategy)`."""

    params = (("direction", "long"), ("events", None), ("resume", None))
    strategy_param_specs: ClassVar[dict[str, Param]] = {
        "direction": Param("long", choices=DIRECTIONS, doc="which sides the strategy may trade"),
    }

    def __init__(self) -> None:
        cls = type(self)
        self.entry_mixin = _one_or_none(cls, EntryMixin)
        self.sizing_mixin = _one_or_none(cls, SizingMixin)
        self.exit_mixins = mixins_of(cls, ExitMixin)
        self.filter_mixins = mixins_of(cls, FilterMixin)
        self.protection_mixins = mixins_of(cls, ProtectionMixin)
        self.bar_exit_mixins = [m for m in self.exit_mixins if m.bar_exit is not ExitMixin.bar_exit]
        self.books = [
            SymbolBook(data=d, symbol=d._name or f"data{i}", clock=d.lines.datetime) for i, d in enumerate(self.datas)
        ]
        self._book_of = {id(book.data): book for book in self.books}
        self.closed_trades: list[TradeRecord] = []
        self.trade_stats = TradeStats()
        self.equity = array("d")
        self.window = 0
        self._on_bar = getattr(self.p.events, "on_bar", None)  # runtime hook after each decided candle
        self._entries_paused = getattr(self.p.events, "entries_paused", None)  # operator /pause (engine/control.py)
        self._resume: Resume | None = self.p.resume  # restart from a snapshot: skip bars up to it

    # --- set-up: signals computed over whole arrays ----------------------------------------------

    def start(self) -> None:
        """Preloaded feeds (backtests) get their signals once for the whole run. Feeds whose
        candles arrive one by one (paper, live) are recomputed at each candle over a trailing
        window long enough for every mixin's look-back, so a decision depends only on the last
        `window` candles: the same candles always give the same decision, restarts included."""
        feed_seconds = _timeframe_seconds(self.datas[0])
        mixins = [*self.exit_mixins, *self.filter_mixins, *self.protection_mixins]
        mixins += [m for m in (self.entry_mixin, self.sizing_mixin) if m is not None]
        lookback = max((m.lookback(self.mixin_params(m), feed_seconds) for m in mixins), default=0)
        self.window = max(STREAMING_WINDOW_MIN, 10 * lookback)
        history = self._resume.history if self._resume is not None else {}
        for book in self.books:
            book.streaming = len(book.data.lines.close.array) == 0
            if book.symbol in history:  # a restart's window before its snapshot (RestartPoint.first_rows)
                book.history = history[book.symbol]
                book.history_bars = len(book.history["close"])
            if not book.streaming:
                self._prepare(book, 0, None)

    def _prepare(self, book: SymbolBook, first: int, stop: int | None) -> None:
        """Mixin arrays over bars [first, stop); bars before 0 (first < 0) come from `book.history`."""
        data = book.data
        lines = data.lines

        def column(name: str) -> np.ndarray:
            values = np.array(getattr(lines, name).array[max(first, 0) : stop], dtype=np.float64)
            return values if first >= 0 else np.concatenate((book.history[name][first:], values))

        book.offset = first
        book.bars = Bars(
            timestamp=from_bt_dates(column("datetime")),
            open=column("open"),
            high=column("high"),
            low=column("low"),
            close=column("close"),
            volume=column("volume"),
            timeframe_seconds=_timeframe_seconds(data),
        )
        for mixin in (*self.exit_mixins, *self.filter_mixins, *self.protection_mixins):
            mixin.prepare(self, book, book.bars)
        if self.entry_mixin is None:
            return
        signals = self.entry_mixin.entry_signals(self, book.bars)
        allow_long = np.full(len(book.bars.close), self.p.direction in ("long", "both"))
        allow_short = np.full(len(book.bars.close), self.p.direction in ("short", "both"))
        for mixin in self.filter_mixins:
            long_ok, short_ok = mixin.entry_mask(self, book.bars)
            allow_long &= long_ok
            allow_short &= short_ok
        entries = np.where(signals.long_entry & allow_long, LONG_ENTRY, 0)
        entries = np.where((entries == 0) & signals.short_entry & allow_short, SHORT_ENTRY, entries)
        exits = np.where(signals.long_exit, LONG_EXIT, 0) | np.where(signals.short_exit, SHORT_EXIT, 0)
        book.entry_codes = entries.astype(np.uint8).tobytes()
        book.exit_codes = exits.astype(np.uint8).tobytes()

    # --- per bar -------------------------------------------------------------------------------

    def notify_cashvalue(self, cash: float, value: float) -> None:
        # Backtrader reports the value once per bar after the broker settled it: the equity curve.
        self.equity.append(value)

    def next(self) -> None:
        if self._resume is not None and self._resuming():
            return
        if self.entry_mixin is None:
            return
        for book in self.books:
            index = book.clock._idx  # == len(data) - 1 on a preloaded feed, without three method calls
            if index == book.last_index:  # this symbol has no new candle on this bar
                continue
            book.last_index = index
            if book.streaming:
                self._prepare(book, max(-book.history_bars, index + 1 - self.window), index + 1)
            side = book.side
            if side is None:
                code = book.entry_codes[index - book.offset]
                if code and book.entry_order is None:
                    self._enter(book, "long" if code == LONG_ENTRY else "short", index)
            elif book.exit_order is None and book.entry_order is None:
                self._manage_open_trade(book, side, index)
                if book.unprotected and book.exit_order is None:
                    # Placed here rather than on the fill so that an exit decided on the fill's bar
                    # never races resting orders Backtrader has not accepted (and cannot cancel) yet.
                    self._place_protective(book)
        if self._on_bar is not None:
            self._on_bar(self)

    def prenext(self) -> None:
        # Backtrader waits for every feed (and user indicator) before calling `next`; mixin signals
        # carry their own warm-up, so symbols that already have candles trade meanwhile. A feed that
        # has not started is skipped by the index check. Strategy.next, not self.next: a user's own
        # `next` keeps Backtrader's semantics.
        Strategy.next(self)

    def _manage_open_trade(self, book: SymbolBook, side: Side, index: int) -> None:
        code = book.exit_codes[index - book.offset]
        if code & (LONG_EXIT if side == "long" else SHORT_EXIT):
            self._exit(book, "signal")
            reverse = book.entry_codes[index - book.offset]
            if reverse == (SHORT_ENTRY if side == "long" else LONG_ENTRY):
                self._enter(book, "short" if side == "long" else "long", index)
            return
        for mixin in self.bar_exit_mixins:
            if mixin.bar_exit(self, book, index):
                self._exit(book, mixin.name)
                return

    def _enter(self, book: SymbolBook, side: Side, index: int) -> None:
        if self._entries_paused is not None and self._entries_paused():
            return
        for mixin in self.protection_mixins:
            reason = mixin.entry_blocked(self, book, index)
            if reason:
                log.debug("%s entry blocked by %s: %s", book.symbol, mixin.name, reason)
                self._emit("on_entry_blocked", book, mixin.name, reason)
                return
        if self.sizing_mixin is None:
            raise TypeError(f"{type(self).__name__} has an entry mixin but no sizing mixin")
        price = book.data.close[0]
        size = self.sizing_mixin.position_size(self, book, side, price)
        if not size > 0:
            return
        submit = self.buy if side == "long" else self.sell
        # Order info is passed at creation so the broker sees it when the order is submitted.
        book.entry_order = submit(data=book.data, size=size, role="entry", side=side)

    def force_exit(self, book: SymbolBook) -> None:
        """Close the book's position at the next open (an operator's /forceexit), like a signal exit."""
        if book.side is not None and book.exit_order is None and book.entry_order is None:
            self._exit(book, "force_exit")

    def _exit(self, book: SymbolBook, reason: str) -> None:
        self._cancel_protective(book)
        order = self.close(data=book.data, role="exit", reason=reason)
        if order is not None:
            book.exit_order = order

    def _cancel_protective(self, book: SymbolBook) -> None:
        resting, book.protective = book.protective, []
        for order in resting:
            if order.alive():
                self.cancel(order)

    def _place_protective(self, book: SymbolBook) -> None:
        side = book.side
        assert side is not None
        book.unprotected = False
        plans: list[ProtectiveOrder] = []
        for mixin in self.exit_mixins:
            plan = mixin.protective_order(self, book, side, book.entry_price)
            if plan is not None:
                plans.append(plan)
        submit = self.sell if side == "long" else self.buy
        first = None
        for plan in plans:
            kwargs: dict[str, Any] = {"data": book.data, "size": book.size, "oco": first}
            if plan.exectype == "stop":
                kwargs.update(exectype=bt.Order.Stop, price=plan.price)
            elif plan.exectype == "limit":
                kwargs.update(exectype=bt.Order.Limit, price=plan.price)
            else:
                kwargs.update(exectype=bt.Order.StopTrail, trailpercent=plan.trail_percent)
            order = submit(**kwargs, role="protective", reason=plan.reason)
            book.protective.append(order)
            first = first or order

    # --- notifications -------------------------------------------------------------------------

    def notify_order(self, order: bt.Order) -> None:
        if order.status in (order.Submitted, order.Accepted):
            return
        book = self._book_of[id(order.data)]
        role = order.info.get("role")
        if order.status == order.Partial and role == "entry":
            book.size = abs(order.executed.size)  # volume-limited fills build the position over candles
        elif order.status == order.Completed:
            if role == "entry":
                book.entry_order = None
                book.side = order.info.side
                book.size = abs(order.executed.size)
                book.entry_price = order.executed.price
                book.entry_index = len(book.data) - 1
                book.unprotected = True
            elif role in ("exit", "protective"):
                if role == "exit":
                    book.exit_order = None
                book.closing_size = book.size  # before a same-candle reversal entry replaces book.size
                book.side, book.size, book.unprotected = None, 0.0, False
                book.last_exit_reason = order.info.reason
                book.last_exit_price = order.executed.price
                book.last_exit_index = len(book.data) - 1
                self._cancel_protective(book)
        elif order.status in (order.Canceled, order.Margin, order.Rejected, order.Expired):
            if role == "entry":
                book.entry_order = None
                log.info("%s entry order %s: %s", book.symbol, order.ref, order.getstatusname())
            elif role == "exit":
                book.exit_order = None
            elif role == "protective" and order.status == order.Canceled and order in book.protective:
                # Canceled by an operator, not by the strategy (which forgets its orders before it
                # cancels them): the open trade gets its protective orders again on the next candle.
                book.protective = []
                book.unprotected = book.side is not None
        self._emit("on_order", book, order)

    def notify_trade(self, trade: bt.Trade) -> None:
        if not trade.isclosed:
            return
        book = self._book_of[id(trade.data)]
        size = book.closing_size
        record = TradeRecord(
            symbol=book.symbol,
            side="long" if trade.long else "short",
            entry_time=bar_datetime(trade.dtopen),
            exit_time=bar_datetime(trade.dtclose),
            size=size,
            entry_price=trade.price,
            exit_price=book.last_exit_price,
            pnl=trade.pnlcomm,
            pnl_pct=trade.pnlcomm / (trade.price * size) if size and trade.price else 0.0,
            fees=trade.commission,
            exit_reason=book.last_exit_reason or "unknown",
        )
        book.trades.append(record)
        self.closed_trades.append(record)
        self.trade_stats.add(record.pnl)
        for mixin in self.protection_mixins:
            mixin.on_trade_closed(self, book, record, len(book.data) - 1)
        self._emit("on_trade", book, record)

    def _emit(self, hook: str, *args: Any) -> None:
        listener = self.p.events
        if listener is not None and hasattr(listener, hook):
            getattr(listener, hook)(self, *args)

    # --- stock splits (Yahoo paper bots; engine/splits.py) ---------------------------------------

    def apply_split(self, data: Any, ratio: float) -> None:
        """A stock split converted the broker's position on `data` (size times `ratio`, price divided by
        it): the book's size and entry price, and Backtrader's open trade (so the closed trade's entry
        price and PnL come out on the new basis), follow."""
        book = self._book_of[id(data)]
        book.size *= ratio
        book.entry_price /= ratio
        for trade in self._trades[data][0]:
            if trade.isopen:
                trade.size *= ratio
                trade.price /= ratio

    # --- snapshots: restart from a quiet candle instead of from the first one ------------------

    def is_quiet(self) -> bool:
        """Can `restart_state` capture everything this strategy's future depends on (besides the
        candles)? Open positions, their resting stops, take-profits and trailing stops, and orders
        submitted on this candle (entries, exits, protective orders: checked and accepted on the
        next) are all fine, as long as nothing of any order has filled yet, every order the broker
        holds is one a book knows, and the notifications still to deliver change nothing (orders
        submitted, protective orders the strategy itself canceled). Not quiet: a partial fill, an
        operator's cancel not delivered yet, an order the broker holds for no book."""
        broker = self.broker
        if broker._toactivate or not all(self._inert(notification) for notification in broker.notifs):
            return False
        queued = _queue_positions(broker)
        known = 0
        for book in self.books:
            orders = [o for o in (book.entry_order, book.exit_order) if o is not None] + book.protective
            places = [queued.get(id(order)) for order in orders]
            if any(place is None or not _untouched(broker, order) for place, order in zip(places, orders, strict=True)):
                return False
            protective = places[len(places) - len(book.protective) :]
            if protective != sorted(protective, key=lambda place: place or ("", 0)):  # its OCO leader first
                return False
            known += len(orders)
            position = self.getposition(book.data).size
            if book.side is None:
                if position or book.protective:
                    return False
                continue
            if position != (book.size if book.side == "long" else -book.size):
                return False
            trades = self._trades[book.data][0]
            if not trades or not trades[-1].isopen or trades[-1].size != position:
                return False
        return known == len(queued)

    def _inert(self, notification: bt.Order) -> bool:
        """A notification `notify_order` will take as a no-op on the next candle."""
        if notification.status == notification.Submitted:
            return True
        if notification.status != notification.Canceled or notification.info.get("role") != "protective":
            return False
        return self._book_of[id(notification.data)].protective.count(notification) == 0

    def restart_state(self) -> dict[str, Any]:
        """The state a quiet strategy's next decisions depend on besides the candles (call at the end
        of a candle, when `is_quiet`). Bar positions are stored as distances from this candle, so a
        restart that re-reads fewer candles maps them onto its own bar numbers."""
        bars = len(self.equity)
        queued = _queue_positions(self.broker)
        return {
            "window": self.window,
            "cash": self.broker.getcash(),
            "equity": self.equity[-1] if bars else None,
            # In the broker's order, empty ones included: the portfolio value sums them in it.
            "positions": [
                [self._book_of[id(data)].symbol, position.size, position.price, position.adjbase]
                for data, position in self.broker.positions.items()
            ],
            "books": {
                book.symbol: {
                    "time": bar_datetime(book.clock[0]).isoformat() if book.clock._idx >= 0 else None,
                    "exit_bars_ago": None if book.last_exit_index is None else book.clock._idx - book.last_exit_index,
                    "exit_reason": book.last_exit_reason,
                    "exit_price": book.last_exit_price,
                    "entry_order": _order_state(book.entry_order, queued),
                    "exit_order": _order_state(book.exit_order, queued),
                    "unprotected": book.unprotected,
                    "open": None if book.side is None else self._open_trade_state(book, queued),
                }
                for book in self.books
            },
            "trade_stats": vars(self.trade_stats).copy(),
            "mixins": {
                m.name: state for m in self.protection_mixins if (state := m.saved_state(self, bars)) is not None
            },
        }

    def _open_trade_state(self, book: SymbolBook, queued: dict[int, tuple[str, int]]) -> dict[str, Any]:
        """An open trade: the book's side of it, Backtrader's `Trade` (what `notify_trade` reads when
        it closes, so the closed record comes out bit for bit) and its protective orders."""
        trade = self._trades[book.data][0][-1]
        return {
            "side": book.side,
            "size": book.size,
            "entry_price": book.entry_price,
            "entry_bars_ago": book.clock._idx - book.entry_index,
            "trade": {
                "size": trade.size,
                "price": trade.price,
                "value": trade.value,
                "commission": trade.commission,
                "pnl": trade.pnl,
                "pnlcomm": trade.pnlcomm,
                "dtopen": trade.dtopen,
                "bars_ago": len(book.data) - trade.baropen,
            },
            "protective": [_order_state(order, queued) for order in book.protective],
        }

    def _resuming(self) -> bool:
        """While re-reading the candles before the snapshot: only fill the feeds' lines (the windowed
        indicators need them). On the snapshot's own candle: restore the state. True = skip the bar."""
        resume = self._resume
        assert resume is not None
        now = self.datetime[0]
        if now < resume.at:
            return True
        if now > resume.at:
            raise Fatal(
                f"restart from a snapshot failed: its candle ({bar_datetime(resume.at):%Y-%m-%d %H:%M} UTC) "
                "was not in the re-read history, so the stored candles changed since it was taken; run "
                "`tradeforge db check` and start this strategy under a new bot name (`name:`) or restore "
                "the candles"
            )
        self._resume = None
        self._restore_state(resume.state)
        if self._on_bar is not None:
            self._on_bar(self)
        return True

    def _restore_state(self, state: dict[str, Any]) -> None:
        bars = len(self.equity)
        data_of = {book.symbol: book.data for book in self.books}
        self.broker.restore_positions(
            [(data_of[symbol], size, price, adjbase) for symbol, size, price, adjbase in state["positions"]]
        )
        if state["equity"] is not None:  # this candle's value as the snapshot's run saw it, positions included
            self.equity[-1] = state["equity"]
        orders: list[tuple[dict[str, Any], bt.Order, bt.Order | None]] = []  # (state, order, OCO leader)
        for book in self.books:
            book.last_index = book.clock._idx
            saved = state["books"].get(book.symbol)
            if saved is None:
                continue
            ago = saved["exit_bars_ago"]
            book.last_exit_index = None if ago is None else book.clock._idx - ago
            book.last_exit_reason, book.last_exit_price = saved["exit_reason"], saved["exit_price"]
            book.unprotected = saved["unprotected"]
            for role in ("entry_order", "exit_order"):
                if saved[role] is not None:
                    order = _restored_order(self, book.data, saved[role])
                    setattr(book, role, order)
                    orders.append((saved[role], order, None))
            if saved["open"] is not None:
                orders += self._restore_open_trade(book, saved["open"])
        for order_state, order, leader in sorted(orders, key=lambda item: (item[0]["queue"], item[0]["rank"])):
            self.broker.restore_order(order, leader, accepted=order_state["queue"] == "pending")
        self.trade_stats = TradeStats(**state["trade_stats"])
        for mixin in self.protection_mixins:
            saved = state["mixins"].get(mixin.name)
            if saved is not None:
                mixin.load_state(self, saved, bars)

    def _restore_open_trade(
        self, book: SymbolBook, saved: dict[str, Any]
    ) -> list[tuple[dict[str, Any], bt.Order, bt.Order | None]]:
        """The book and Backtrader's open `Trade` as they were; the protective orders to put back."""
        book.side, book.size, book.entry_price = saved["side"], saved["size"], saved["entry_price"]
        book.entry_index = book.clock._idx - saved["entry_bars_ago"]
        kept = saved["trade"]
        trade = bt.Trade(data=book.data, historyon=self._tradehistoryon, size=kept["size"], price=kept["price"])
        trade.value, trade.commission = kept["value"], kept["commission"]
        trade.pnl, trade.pnlcomm = kept["pnl"], kept["pnlcomm"]
        trade.dtopen, trade.baropen = kept["dtopen"], len(book.data) - kept["bars_ago"]
        trade.long, trade.isopen, trade.status = kept["size"] > 0, True, bt.Trade.Open
        self._trades[book.data][0] = [trade]
        placed = []
        leader = None
        for order_state in saved["protective"]:
            order = _restored_order(self, book.data, order_state)
            book.protective.append(order)
            placed.append((order_state, order, leader))
            leader = leader or order
        return placed

    # --- results -------------------------------------------------------------------------------

    def open_trades(self) -> list[TradeRecord]:
        """Positions still open at the end of the run, marked to the last close."""
        records = []
        for book in self.books:
            position = self.getposition(book.data)
            if not position.size:
                continue
            last = book.data.close[0]
            direction = 1.0 if position.size > 0 else -1.0
            pnl = (last - position.price) * position.size
            records.append(
                TradeRecord(
                    symbol=book.symbol,
                    side="long" if direction > 0 else "short",
                    entry_time=bar_datetime(self._trades[book.data][0][-1].dtopen),
                    exit_time=None,
                    size=abs(position.size),
                    entry_price=position.price,
                    exit_price=None,
                    pnl=pnl,
                    pnl_pct=pnl / (position.price * abs(position.size)) if position.price else 0.0,
                    fees=0.0,
                    exit_reason="open",
                )
            )
        return records

    def equity_curve(self) -> tuple[np.ndarray, np.ndarray]:
        """(UTC nanosecond timestamps, portfolio value at each bar's close)."""
        stamps = np.frombuffer(self.lines.datetime.array, dtype=np.float64)[: len(self.equity)]
        return from_bt_dates(stamps), np.frombuffer(self.equity, dtype=np.float64).copy()


@dataclass(frozen=True)
class Resume:
    """Where a restart from a snapshot picks up: the snapshot candle (a Backtrader day number, the
    strategy's clock) and the state `Strategy.restart_state` returned there."""

    at: float
    state: dict[str, Any]
    history: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # see RestartPoint.first_rows


def _queue_positions(broker: Any) -> dict[int, tuple[str, int]]:
    """Where each order the broker holds sits: ("pending", i) accepted and matched in that order,
    ("submitted", i) to be checked and accepted on the next candle in that order."""
    places = {id(order): ("pending", i) for i, order in enumerate(broker.pending)}
    places.update({id(order): ("submitted", i) for i, order in enumerate(broker.submitted)})
    return places


def _untouched(broker: Any, order: bt.Order) -> bool:
    """Submitted or accepted, nothing filled, and no operator's cancel waiting for its acceptance."""
    if order.status not in (order.Submitted, order.Accepted) or order.executed.size:
        return False
    cancels = getattr(broker, "cancels_on_acceptance", None)
    return cancels is None or not cancels(order.info.get("client_order_id"))


def _order_state(order: bt.Order | None, queued: dict[int, tuple[str, int]]) -> dict[str, Any] | None:
    """An order as a snapshot keeps it: where the broker holds it (fills, cancels and acceptance go
    in that order), what Backtrader matches it on (its `created` prices, a trailing stop's current
    level included) and its info (role, side or reason, the client order id the broker journalled
    it under)."""
    if order is None:
        return None
    queue, rank = queued[id(order)]
    created = order.created
    return {
        "queue": queue,
        "rank": rank,
        "buy": order.isbuy(),
        "exectype": order.exectype,
        "size": abs(order.size),
        "price": order.price,  # not order.p: a split (apply_split) converts the order's own attributes
        "trailamount": order.trailamount,
        "trailpercent": order.trailpercent,
        "created": {
            "dt": created.dt,
            "price": created.price,
            "pricelimit": created.pricelimit,
            "pclose": created.pclose,
        },
        "info": {key: value for key, value in order.info.items() if isinstance(value, str | int | float | None)},
    }


def _restored_order(strategy: Strategy, data: Any, saved: dict[str, Any]) -> bt.Order:
    """An order rebuilt from `_order_state`, not submitted (see SimulatedBroker.restore_order)."""
    kind = bt.BuyOrder if saved["buy"] else bt.SellOrder
    order = kind(
        owner=strategy,
        data=data,
        size=saved["size"],
        price=saved["price"],
        exectype=saved["exectype"],
        trailamount=saved["trailamount"],
        trailpercent=saved["trailpercent"],
    )
    created = saved["created"]
    order.created.dt, order.created.price = created["dt"], created["price"]
    order.created.pricelimit, order.created.pclose = created["pricelimit"], created["pclose"]
    order.addinfo(**saved["info"])
    return order


def _one_or_none(cls: type, kind: type[M]) -> type[M] | None:
    found = mixins_of(cls, kind)
    if len(found) > 1:  # the registry refuses such classes before a run; this guards direct use
        names = ", ".join(k.name for k in found)
        raise TypeError(f"{cls.__name__} combines several {kind.kind} mixins ({names}); use exactly one")
    return found[0] if found else None


def _timeframe_seconds(data: Any) -> int:
    unit = {
        bt.TimeFrame.Seconds: 1,
        bt.TimeFrame.Minutes: 60,
        bt.TimeFrame.Days: 86_400,
        bt.TimeFrame.Weeks: 604_800,
    }.get(data._timeframe, 86_400)
    return unit * max(int(data._compression), 1)
