"""The paper/live order journal over the trade repository, and how a restarted bot re-adopts its
own orders.

Recovery is replay: a restarted bot re-reads its candles from the first one it ever processed,
and the strategy, being deterministic, asks for the same orders in the same sequence. Each such
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

from tradeforge.persistence.models import OrderStatus
from tradeforge.persistence.repository import FillReport, OrderIntent, Repository
from tradeforge.resilience.errors import Fatal

CRASH_AFTER_INTENT_ENV = "TRADEFORGE_FAULT_CRASH_AFTER_INTENT"  # tests: die right after the Nth intent commit


class Divergence(Fatal):
    """The strategy asked for something other than what the database says it asked for before."""


class RepositoryJournal:
    def __init__(self, repository: Repository) -> None:
        self.repository = repository
        self._to_adopt = deque(repository.orders())
        self.adopted = 0
        self._open_trade: dict[str, int] = {}
        self._intents_written = 0
        crash_after = os.environ.get(CRASH_AFTER_INTENT_ENV, "")
        self._crash_after = int(crash_after) if crash_after.isdigit() else None

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
        recorded = self.repository.record_intent(
            OrderIntent(trade_id, symbol, side, type, role, amount, price=price, stop_price=stop_price, reason=reason)
        )
        self._open_trade[symbol] = recorded.trade_id
        client_id = recorded.client_order_id
        self._intents_written += 1
        if self._crash_after is not None and self._intents_written >= self._crash_after:
            os._exit(137)  # fault injection for the recovery tests: as if SIGKILLed after the commit
        return client_id

    def _adopt(self, symbol: str, side: str, type: str, role: str, amount: Decimal) -> str:
        stored = self._to_adopt.popleft()
        wanted = (symbol, side, type, role, amount)
        found = (stored.symbol, stored.side, stored.type, stored.role, stored.amount)
        if wanted != found:
            raise Divergence(
                f"restart replay diverged at order {stored.client_order_id} (row {stored.id}): the strategy now "
                f"asks for {_show(wanted)} but the database holds {_show(found)}. The config, the strategy code or "
                "the candles changed since that order was placed; run `tradeforge db check` and start this "
                "strategy under a new bot name (`name:`) or restore the previous setup."
            )
        if role == "entry" and stored.trade_id is not None:
            self._open_trade[symbol] = stored.trade_id
        self.adopted += 1
        return stored.client_order_id

    def accepted(self, client_order_id: str) -> None:
        self.repository.mark_order(client_order_id, OrderStatus.OPEN)

    def filled(
        self, client_order_id: str, fill_id: str, amount: Decimal, price: Decimal, fee: Decimal, time: dt.datetime
    ) -> None:
        self.repository.record_fill(client_order_id, FillReport(fill_id, amount, price, time, fee=fee))

    def closed(self, client_order_id: str, status: str) -> None:
        self.repository.mark_order(client_order_id, OrderStatus(status))


def _show(order: tuple[object, ...]) -> str:
    symbol, side, type_, role, amount = order
    return f"{role} {side} {amount} {symbol} ({type_})"
