"""Sizing mixins: how much to buy or sell when an entry fires. Sizes are in base units, computed
from the signal bar's close (the order fills at the next open) and never exceed the free cash."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from tradeforge.strategies.mixins.kinds import Side, SizingMixin
from tradeforge.strategies.params import Param

if TYPE_CHECKING:
    from tradeforge.strategies.base import SymbolBook, TradeStats


def _equity_and_cash(strategy: Any, book: SymbolBook) -> tuple[float, float]:
    """Equity and the cash an entry may use. When the entry reverses a position whose closing
    order is already submitted for the same open, the cash that close releases counts too."""
    broker = strategy.broker
    cash = broker.getcash()
    if book.exit_order is not None:
        cash += strategy.getposition(book.data).size * book.data.close[0]
    return broker.getvalue(), cash


class FixedStake(SizingMixin):
    """Spend a fixed `stake` in quote currency per trade (capped by the free cash)."""

    name: ClassVar[str] = "fixed_stake"
    param_specs: ClassVar[dict[str, Param]] = {
        "stake": Param(1000.0, low=0.0, opt=(100, 10_000), doc="quote currency per trade"),
    }

    def position_size(self, book: SymbolBook, side: Side, price: float) -> float:
        _, cash = _equity_and_cash(self, book)
        return min(self.mixin_params(FixedStake)["stake"], cash) / price


class PercentEquity(SizingMixin):
    """Spend `pct` percent of equity per trade, never more than the free cash: size = min(equity,
    cash) / price × pct / 100 (when flat this is exactly bt.sizers.PercentSizer's arithmetic; on a
    stop-and-reverse the cash released by the closing order counts)."""

    name: ClassVar[str] = "percent_equity"
    param_specs: ClassVar[dict[str, Param]] = {
        "pct": Param(95.0, low=0.01, high=100.0, opt=(10, 100), step=5, doc="percent of equity"),
    }

    def position_size(self, book: SymbolBook, side: Side, price: float) -> float:
        equity, cash = _equity_and_cash(self, book)
        return min(equity, cash) / price * (self.mixin_params(PercentEquity)["pct"] / 100)


class FixedFractionalRisk(SizingMixin):
    """Risk `risk_pct` percent of equity per trade: size = equity × risk / stop distance, where the
    distance comes from the strategy's stop exit (stop_loss, trailing_stop or atr_stop; the
    tightest wins). The notional is capped at `max_pct` percent of equity and by the free cash."""

    name: ClassVar[str] = "fixed_fractional_risk"
    param_specs: ClassVar[dict[str, Param]] = {
        "risk_pct": Param(1.0, low=0.01, high=100.0, opt=(0.25, 5.0), step=0.25, doc="percent of equity at risk"),
        "max_pct": Param(100.0, low=0.01, high=100.0, doc="cap on notional, percent of equity"),
    }

    def position_size(self, book: SymbolBook, side: Side, price: float) -> float:
        p = self.mixin_params(FixedFractionalRisk)
        distances = [
            d
            for mixin in self.exit_mixins  # type: ignore[attr-defined]
            if (d := mixin.stop_distance(self, book, side, price)) is not None and d > 0
        ]
        if not distances:
            return 0.0  # no stop yet (e.g. ATR still warming up): no risk can be sized
        equity, cash = _equity_and_cash(self, book)
        size = equity * p["risk_pct"] / 100 / min(distances)
        cap = min(equity * p["max_pct"] / 100, cash) / price
        return min(size, cap)


class Kelly(SizingMixin):
    """Capped Kelly fraction from the strategy's own closed trades: f = W - (1 - W) / R, with W the
    win rate and R the average win over the average loss, scaled by `multiplier` (0.5 = half
    Kelly) and capped at `cap_pct` percent of equity. Before `min_trades` trades (or when f ≤ 0
    with no history), `default_pct` percent is used; a negative edge sizes to zero."""

    name: ClassVar[str] = "kelly"
    param_specs: ClassVar[dict[str, Param]] = {
        "multiplier": Param(0.5, low=0.01, high=1.0, opt=(0.1, 1.0), step=0.1, doc="fraction of full Kelly"),
        "cap_pct": Param(25.0, low=0.01, high=100.0, opt=(5, 50), step=5, doc="maximum percent of equity"),
        "min_trades": Param(20, low=1, high=10_000, doc="closed trades before Kelly applies"),
        "default_pct": Param(10.0, low=0.0, high=100.0, doc="percent of equity until then"),
    }

    def position_size(self, book: SymbolBook, side: Side, price: float) -> float:
        p = self.mixin_params(Kelly)
        fraction = kelly_fraction(self.trade_stats, p["min_trades"])  # type: ignore[attr-defined]
        pct = p["default_pct"] if fraction is None else min(fraction * p["multiplier"] * 100, p["cap_pct"])
        equity, cash = _equity_and_cash(self, book)
        return max(min(equity * pct / 100, cash), 0.0) / price


def kelly_fraction(stats: TradeStats, min_trades: int) -> float | None:
    """W - (1 - W) / R from the closed trades' PnL totals; None with too little history; 0 when
    there is no edge."""
    if stats.count < min_trades:
        return None
    if not stats.losses:
        return 1.0
    if not stats.wins:
        return 0.0
    win_rate = stats.wins / stats.count
    payoff = (stats.win_sum / stats.wins) / (stats.loss_sum / stats.losses)
    return max(win_rate - (1 - win_rate) / payoff, 0.0)


SIZINGS: tuple[type[SizingMixin], ...] = (FixedStake, PercentEquity, FixedFractionalRisk, Kelly)
