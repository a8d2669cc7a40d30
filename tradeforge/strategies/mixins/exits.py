"""Exit mixins. Price exits are resting orders placed when the entry fills (intrabar, like a venue's
stop order: a stop fills at its price, or at the open if the candle gaps through it); rule exits
are checked at each bar's close and leave with a market order at the next open."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from tradeforge.strategies import indicators as ind
from tradeforge.strategies.mixins.kinds import Bars, ExitMixin, ProtectiveOrder, Side
from tradeforge.strategies.params import Param

if TYPE_CHECKING:
    from tradeforge.strategies.base import SymbolBook


class StopLoss(ExitMixin):
    """Stop order `pct` (fraction) below a long's entry fill price (above a short's)."""

    name: ClassVar[str] = "stop_loss"
    param_specs: ClassVar[dict[str, Param]] = {
        "pct": Param(0.02, low=0.0001, high=0.99, opt=(0.005, 0.1), doc="distance from entry, fraction"),
    }

    def protective_order(self, book: SymbolBook, side: Side, entry_price: float) -> ProtectiveOrder:
        pct = self.mixin_params(StopLoss)["pct"]
        price = entry_price * (1 - pct) if side == "long" else entry_price * (1 + pct)
        return ProtectiveOrder(reason="stop_loss", exectype="stop", price=price)

    def stop_distance(self, book: SymbolBook, side: Side, price: float) -> float:
        return price * self.mixin_params(StopLoss)["pct"]


class TakeProfit(ExitMixin):
    """Limit order `pct` (fraction) above a long's entry fill price (below a short's)."""

    name: ClassVar[str] = "take_profit"
    param_specs: ClassVar[dict[str, Param]] = {
        "pct": Param(0.05, low=0.0001, high=10.0, opt=(0.01, 0.2), doc="distance from entry, fraction"),
    }

    def protective_order(self, book: SymbolBook, side: Side, entry_price: float) -> ProtectiveOrder:
        pct = self.mixin_params(TakeProfit)["pct"]
        price = entry_price * (1 + pct) if side == "long" else entry_price * (1 - pct)
        return ProtectiveOrder(reason="take_profit", exectype="limit", price=price)


class TrailingStop(ExitMixin):
    """Stop `pct` (fraction) below the highest close since entry (above the lowest for shorts),
    ratcheted at each close and filled intrabar like stop_loss."""

    name: ClassVar[str] = "trailing_stop"
    param_specs: ClassVar[dict[str, Param]] = {
        "pct": Param(0.015, low=0.0001, high=0.99, opt=(0.005, 0.1), doc="trail distance, fraction"),
    }

    def protective_order(self, book: SymbolBook, side: Side, entry_price: float) -> ProtectiveOrder:
        return ProtectiveOrder(
            reason="trailing_stop", exectype="trail", trail_percent=self.mixin_params(TrailingStop)["pct"]
        )

    def stop_distance(self, book: SymbolBook, side: Side, price: float) -> float:
        return price * self.mixin_params(TrailingStop)["pct"]


class AtrStop(ExitMixin):
    """Stop order `multiplier` × ATR(period) away from the entry fill price, ATR taken at the entry
    signal's bar (Wilder's ATR)."""

    name: ClassVar[str] = "atr_stop"
    param_specs: ClassVar[dict[str, Param]] = {
        "period": Param(14, low=1, high=500, opt=(7, 50), step=1, doc="ATR period (bars)"),
        "multiplier": Param(2.0, low=0.1, high=20, opt=(1.0, 5.0), step=0.25, doc="stop distance in ATRs"),
    }

    @classmethod
    def lookback(cls, params: dict[str, Any], feed_seconds: int) -> int:
        return int(params["period"]) + 1

    def prepare(self, book: SymbolBook, bars: Bars) -> None:
        book.arrays["atr"] = ind.atr(bars.high, bars.low, bars.close, self.mixin_params(AtrStop)["period"])

    def _distance(self, book: SymbolBook, index: int) -> float | None:
        value = float(book.arrays["atr"][index - book.offset])
        if value != value:  # ATR not warmed up yet: no stop rather than a wrong one
            return None
        return value * self.mixin_params(AtrStop)["multiplier"]

    def protective_order(self, book: SymbolBook, side: Side, entry_price: float) -> ProtectiveOrder | None:
        distance = self._distance(book, book.entry_index - 1)
        if distance is None:
            return None
        price = entry_price - distance if side == "long" else entry_price + distance
        return ProtectiveOrder(reason="atr_stop", exectype="stop", price=price)

    def stop_distance(self, book: SymbolBook, side: Side, price: float) -> float | None:
        return self._distance(book, len(book.data) - 1)


class TimeExit(ExitMixin):
    """Close the trade with a market order once it has been open for `bars` bars."""

    name: ClassVar[str] = "time_exit"
    param_specs: ClassVar[dict[str, Param]] = {
        "bars": Param(48, low=1, high=100_000, opt=(6, 200), step=1, doc="bars in the trade"),
    }

    def bar_exit(self, book: SymbolBook, index: int) -> bool:
        # The entry filled at the open of bar `entry_index`; at this close it has been open for
        # index - entry_index + 1 bars.
        return index - book.entry_index + 1 >= self.mixin_params(TimeExit)["bars"]


EXITS: tuple[type[ExitMixin], ...] = (StopLoss, TakeProfit, TrailingStop, AtrStop, TimeExit)
