"""Backtrader's BackBroker without per-bar work that provably changes nothing for spot trading.

`BackBroker.next` walks every open position twice per bar: once to charge credit interest (which
converts the bar's timestamp to a datetime for each position) and once to settle futures-style
daily cash adjustments. With no interest configured and stock-like commissions, both always add
exactly 0.0, so `next` skips them (and, with no order in flight, goes straight to valuing the
portfolio); when either could matter it runs Backtrader's code unchanged.
Order matching, cash and value are Backtrader's own, so results are identical (tests prove it).
A restart from a snapshot holding positions puts them and their resting orders back as they were
(`restore_positions`, `restore_order`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

import backtrader as bt
from backtrader.brokers import BackBroker
from backtrader.position import Position


class SimulatedBroker(BackBroker):
    def __init__(self) -> None:
        super().__init__()
        # Called at the start of each bar's matching, once the feeds are on the bar (a split due on it).
        self.before_matching: list[Callable[[], object]] = []

    def start(self) -> None:
        super().start()
        self._position_pass_needed: bool | None = None

    def _needs_position_pass(self) -> bool:
        # Commission schemes are fixed once the run has started; decide on the first bar.
        if self._position_pass_needed is None:
            self._position_pass_needed = any(info.p.interest or not info._stocklike for info in self.comminfo.values())
        return self._position_pass_needed

    def next(self) -> None:
        for hook in self.before_matching:
            hook()
        if self._needs_position_pass():
            return super().next()
        if not (self.pending or self.submitted or self._toactivate or self._userhist):
            self._get_value()  # nothing to match: the only work left is valuing the portfolio
            return None
        while self._toactivate:
            self._toactivate.popleft().activate()
        if self.p.checksubmit:
            self.check_submitted()
        self._process_order_history()
        # From here on, BackBroker.next verbatim (minus the two position passes).
        self.pending.append(None)
        while True:
            order = self.pending.popleft()
            if order is None:
                break
            if order.expire():
                self.notify(order)
                self._ococheck(order)
                self._bracketize(order, cancel=True)
            elif not order.active():
                self.pending.append(order)
            else:
                self._try_exec(order)
                if order.alive():
                    self.pending.append(order)
                elif order.status == order.Completed:
                    self._bracketize(order)
        self._get_value()

    def apply_split(self, data: Any, ratio: float) -> list[Any]:
        """A stock split, at the first candle on the new basis before it is matched: the position's size
        times `ratio` and its price divided by it (cash and value unchanged), and every order still in
        flight on `data` (resting stops, limits, trailing stops, an entry not filled yet) converted the
        same way, as a broker adjusts open orders. Fractional shares are kept (paper trading). Returns
        the orders converted."""
        position = self.positions[data]
        position.size *= ratio
        position.price /= ratio
        position.price_orig = position.price
        position.adjbase = position.adjbase / ratio if position.adjbase else position.adjbase
        orders: dict[int, Any] = {}  # by ref: an order may be in two queues, and is converted once
        for order in (*self.pending, *self.submitted, *self._toactivate):
            if order is not None and order.data is data:
                orders[order.ref] = order
        for order in orders.values():
            for record in (order, order.created, order.executed):
                _scale(record, ("size", "remsize"), ratio)
                _scale(record, ("price", "pricelimit", "pclose", "trailamount"), 1 / ratio, divide=ratio)
            order._limitoffset /= ratio
        return list(orders.values())

    # --- restarts from a snapshot (engine/restart.py) -------------------------------------------

    def restore_positions(self, positions: list[tuple[Any, float, float, float | None]]) -> None:
        """Positions as (data, size, price, adjbase), in the order the snapshot's broker held them:
        the portfolio value is a float sum in that order, so a restart keeps it to stay bit for bit."""
        restored: defaultdict[Any, Position] = defaultdict(Position)
        for data, size, price, adjbase in positions:
            position = restored[data] = Position(size, price)
            position.adjbase = adjbase
        held: dict[Any, Position] = self.positions  # type: ignore[has-type]  # set in BackBroker.init
        for data, position in held.items():  # empty ones the re-read created: after the saved ones
            restored.setdefault(data, position)
        self.positions = restored
        self._get_value()

    def restore_order(self, order: bt.Order, oco: bt.Order | None, accepted: bool) -> None:
        """Put back an order that was in flight (submitted on the snapshot's candle, to be checked
        and accepted on the next) or resting (accepted, not filled) when the snapshot was taken, as
        `submit` (and `check_submitted`) left it then: in its OCO group, in its queue. It is not
        submitted again: no notification, and a paper broker writes no second intent."""
        self._ocoize(order, oco)
        self._pchildren[order.ref].append(order)  # what `_bracketize` pops when it completes
        order.submit()
        self.orders.append(order)
        if accepted:
            order.pannotated = None
            order.accept()
            self.pending.append(order)
        else:
            self.submitted.append(order)


def _scale(record: Any, names: tuple[str, ...], factor: float, divide: float | None = None) -> None:
    """Multiply (or, with `divide`, divide) the numeric attributes of an order's record that are set."""
    for name in names:
        value = getattr(record, name, None)
        if isinstance(value, int | float) and value:
            setattr(record, name, value / divide if divide is not None else value * factor)
