"""Backtrader's BackBroker without per-bar work that provably changes nothing for spot trading.

`BackBroker.next` walks every open position twice per bar: once to charge credit interest (which
converts the bar's timestamp to a datetime for each position) and once to settle futures-style
daily cash adjustments. With no interest configured and stock-like commissions, both always add
exactly 0.0, so `next` skips them (and, with no order in flight, goes straight to valuing the
portfolio); when either could matter it runs Backtrader's code unchanged.
Order matching, cash and value are Backtrader's own, so results are identical (tests prove it).
A restart from a snapshot holding positions puts them and their resting orders back as they were
(`restore_positions`, `restore_resting`).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import backtrader as bt
from backtrader.brokers import BackBroker
from backtrader.position import Position


class SimulatedBroker(BackBroker):
    def start(self) -> None:
        super().start()
        self._position_pass_needed: bool | None = None

    def _needs_position_pass(self) -> bool:
        # Commission schemes are fixed once the run has started; decide on the first bar.
        if self._position_pass_needed is None:
            self._position_pass_needed = any(info.p.interest or not info._stocklike for info in self.comminfo.values())
        return self._position_pass_needed

    def next(self) -> None:
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
