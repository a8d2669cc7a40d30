"""The paper/live order journal over the trade repository, and how a restarted bot re-adopts its
own orders.

Recovery is replay: a restarted bot re-reads its candles (from its latest snapshot, see
engine/restart.py; without one, from the first candle it ever processed), and the strategy,
being deterministic, asks for the same orders in the same sequence. Each such
request is matched against the orders already stored (in creation order) and adopts the stored
client order id instead of writing a new intent; fills and status changes already stored are
no-ops. Only once every stored order has been adopted are new intents written. So a crash at any
point (between intent and fill, mid-candle) neither loses nor duplicates an order, and the
strategy's whole state (positions, stops, trailing levels, cooldowns) is rebuilt exactly.
"""

from __future__ import annotations

import datetime as dt
import os
from collections import deque
from decimal import Decimal

from tradeforge.engine.outage import Persist
from tradeforge.persistence.models import TERMINAL_ORDER_STATUSES, OrderStatus
from tradeforge.persistence.repository import FillReport, OrderIntent, RecordedIntent, Repository, StoredOrder
from tradeforge.resilience.errors import Fatal

CRASH_AFTER_INTENT_ENV = "TRADEFORGE_FAULT_CRASH_AFTER_INTENT"  # tests: die right after the Nth intent commit
CRASH_AFTER_FILL_ENV = "TRADEFORGE_FAULT_CRASH_AFTER_FILL"  # tests: die right after the Nth new fill commit


# Amounts are stored with 18 decimals (NUMERIC(36, 18) on PostgreSQL): a request for 0.0065969621513127085
# was stored as 0.006596962151312709, and is the same request.
AMOUNT_SCALE = Decimal("1e-18")


class Divergence(Fatal):
    """The strategy asked for something other than what the database says it asked for before."""


class RepositoryJournal:
    def __init__(
        self,
        repository: Repository,
        persist: Persist | None = None,
        after_order_id: int = 0,
        open_trades: dict[str, int] | None = None,
    ) -> None:
        """`after_order_id`: the orders up to this row were placed before the snapshot the bot
        resumes from (settled, or resting protective orders the snapshot puts back as they were);
        only later ones are asked for again. `open_trades`: the snapshot's open trade per symbol."""
        self.repository = repository
        self.persist = persist or Persist(repository)
        self._to_adopt = deque(repository.stored_orders(after_id=after_order_id))
        self._last_order_id = self._to_adopt[-1].id if self._to_adopt else after_order_id
        self.adopted = 0
        self._settled: dict[str, OrderStatus] = {}  # adopted orders already terminal in the database
        self._open_trade: dict[str, int] = dict(open_trades or {})
        self._intents_written = 0
        self._crash_after = _fault(CRASH_AFTER_INTENT_ENV)
        self._crash_after_fill = _fault(CRASH_AFTER_FILL_ENV)
        self._fills_written = 0

    @property
    def last_order_id(self) -> int:
        """Row id of the newest order this run wrote or adopted (what a snapshot counts)."""
        return self._last_order_id

    def open_trades(self) -> dict[str, int]:
        """Each symbol's latest trade (what an exit intent links to), for a snapshot."""
        return dict(self._open_trade)

    @property
    def catching_up(self) -> bool:
        return bool(self._to_adopt)

    @property
    def to_adopt(self) -> int:
        """Stored orders the strategy has not asked for again yet."""
        return len(self._to_adopt)

    def intent(
        self,
        *,
        symbol: str,
        side: str,
        type: str,
        role: str,
        amount: Decimal,
        price: Decimal | None,
        stop_price: Decimal | None,
        reason: str | None,
    ) -> str:
        if self._to_adopt:
            return self._adopt(symbol, side, type, role, amount)
        trade_id = None if role == "entry" else self._open_trade.get(symbol)
        intent = OrderIntent(
            trade_id, symbol, side, type, role, amount, price=price, stop_price=stop_price, reason=reason
        )
        tries = 0

        def record() -> RecordedIntent:
            nonlocal tries
            tries += 1
            # A commit whose answer was lost may have stored the intent: adopt it rather than mint a second order.
            stored = self._stored_by_a_lost_commit(intent) if tries > 1 else None
            return stored or self.repository.record_intent(intent)

        recorded = self.persist(record, f"recording the {role} intent ({side} {symbol})")
        self._last_order_id = recorded.order_id
        self._open_trade[symbol] = recorded.trade_id
        client_id = recorded.client_order_id
        self._intents_written += 1
        if self._crash_after is not None and self._intents_written >= self._crash_after:
            os._exit(137)  # fault injection for the recovery tests: as if SIGKILLed after the commit
        return client_id

    def _stored_by_a_lost_commit(self, intent: OrderIntent) -> RecordedIntent | None:
        later = self.repository.stored_orders(after_id=self._last_order_id)
        if not later:
            return None
        wanted = (intent.symbol, intent.side, intent.type, intent.role, intent.amount)
        found = later[0]
        if len(later) > 1 or not _same(_request(found), wanted) or found.trade_id is None:
            unexpected = ", ".join(order.client_order_id for order in later)
            raise Divergence(
                f"orders appeared in the database that this bot did not write ({unexpected}, after row "
                f"{self._last_order_id}): is another process running this bot? Stop it, then run "
                "`tradeforge db check`"
            )
        return RecordedIntent(found.client_order_id, found.trade_id, found.id)

    def _adopt(self, symbol: str, side: str, type: str, role: str, amount: Decimal) -> str:
        stored = self._to_adopt.popleft()
        wanted = (symbol, side, type, role, amount)
        found = _request(stored)
        if not _same(wanted, found):
            raise Divergence(
                f"restart replay diverged at order {stored.client_order_id} (row {stored.id}): the strategy now "
                f"asks for {_show(wanted)} but the database holds {_show(found)}. The config, the strategy code or "
                "the candles changed since that order was placed; run `tradeforge db check` and start this "
                "strategy under a new bot name (`name:`) or restore the previous setup."
            )
        if role == "entry" and stored.trade_id is not None:
            self._open_trade[symbol] = stored.trade_id
        self._last_order_id = stored.id
        if stored.status in TERMINAL_ORDER_STATUSES:
            self._settled[stored.client_order_id] = stored.status
        self.adopted += 1
        return stored.client_order_id

    # Status changes and fills are idempotent in the repository: retrying one after an outage is safe.
    # What a re-read history reports about an order that ended as the database says it did is
    # already stored, and skipped without a round trip (anything else still goes to the repository,
    # which rejects a contradiction).
    def accepted(self, client_order_id: str) -> None:
        if client_order_id in self._settled:
            return
        self.persist(
            lambda: self.repository.mark_order(client_order_id, OrderStatus.OPEN), f"accepting {client_order_id}"
        )

    def filled(
        self, client_order_id: str, fill_id: str, amount: Decimal, price: Decimal, fee: Decimal, time: dt.datetime
    ) -> None:
        if self._settled.get(client_order_id) == OrderStatus.FILLED:
            return
        fill = FillReport(fill_id, amount, price, time, fee=fee)
        new = self.persist(lambda: self.repository.record_fill(client_order_id, fill), f"recording fill {fill_id}")
        if new and self._crash_after_fill is not None:
            self._fills_written += 1
            if self._fills_written >= self._crash_after_fill:
                os._exit(137)  # fault injection: as if SIGKILLed after the fill's commit (OCO cancels not yet)

    def closed(self, client_order_id: str, status: str) -> None:
        if self._settled.get(client_order_id) == status:
            return
        self.persist(
            lambda: self.repository.mark_order(client_order_id, OrderStatus(status)), f"closing {client_order_id}"
        )


def _fault(variable: str) -> int | None:
    value = os.environ.get(variable, "")
    return int(value) if value.isdigit() else None


def _same(wanted: tuple[str, str, str, str, Decimal], stored: tuple[str, str, str, str, Decimal]) -> bool:
    return wanted[:4] == stored[:4] and abs(wanted[4] - stored[4]) <= AMOUNT_SCALE


def _request(order: StoredOrder) -> tuple[str, str, str, str, Decimal]:
    return (order.symbol, order.side, order.type, order.role, order.amount)


def _show(order: tuple[object, ...]) -> str:
    symbol, side, type_, role, amount = order
    return f"{role} {side} {amount} {symbol} ({type_})"
