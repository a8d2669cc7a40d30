"""The five mixin kinds and the hooks the strategy base calls on each.

Signal-style hooks (entries, filters) work on whole arrays and are computed once per run; order-style
hooks (exits, sizing, protections) run only on the bars where something happens, which keeps the
per-bar cost of a composed strategy close to that of a hand-written one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np

from tradeforge.strategies.params import Kind, Mixin

if TYPE_CHECKING:
    from tradeforge.strategies.base import SymbolBook, TradeRecord

Side = Literal["long", "short"]


@dataclass(frozen=True)
class Bars:
    """One symbol's candles as float64 arrays (timestamps in UTC nanoseconds) plus its timeframe."""

    timestamp: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    timeframe_seconds: int


@dataclass
class Signals:
    """Boolean arrays, one value per bar, evaluated at the bar's close."""

    long_entry: np.ndarray
    long_exit: np.ndarray
    short_entry: np.ndarray
    short_exit: np.ndarray


@dataclass(frozen=True)
class ProtectiveOrder:
    """A resting exit order placed when an entry fills: 'stop', 'limit' or 'trail' (percent)."""

    reason: str
    exectype: Literal["stop", "limit", "trail"]
    price: float | None = None
    trail_percent: float | None = None


class EntryMixin(Mixin):
    """Decides when to open (and signal-close) positions. Exactly one per strategy."""

    kind: ClassVar[Kind] = "entry"

    def entry_signals(self, bars: Bars) -> Signals:
        raise NotImplementedError


class ExitMixin(Mixin):
    """Closes positions: with a resting order placed at entry, or by a per-bar rule, or both."""

    kind: ClassVar[Kind] = "exit"

    def protective_order(self, book: SymbolBook, side: Side, entry_price: float) -> ProtectiveOrder | None:
        return None

    def bar_exit(self, book: SymbolBook, index: int) -> bool:
        return False

    def stop_distance(self, book: SymbolBook, side: Side, price: float) -> float | None:
        """Distance from `price` to where this exit would stop the trade out, for risk-based sizing."""
        return None


class SizingMixin(Mixin):
    """Turns an entry signal into a position size. Exactly one per strategy."""

    kind: ClassVar[Kind] = "sizing"

    def position_size(self, book: SymbolBook, side: Side, price: float) -> float:
        raise NotImplementedError


class FilterMixin(Mixin):
    """Vetoes entries on bars where the market does not suit the strategy."""

    kind: ClassVar[Kind] = "filter"

    def entry_mask(self, bars: Bars) -> tuple[np.ndarray, np.ndarray]:
        """(long allowed, short allowed) boolean arrays."""
        raise NotImplementedError


class ProtectionMixin(Mixin):
    """Halts new entries after bad outcomes (losses, stop-outs, drawdown)."""

    kind: ClassVar[Kind] = "protection"

    def entry_blocked(self, book: SymbolBook, index: int) -> str | None:
        """A reason why entries are blocked now, or None."""
        return None

    def on_trade_closed(self, book: SymbolBook, trade: TradeRecord, index: int) -> None:
        """Called once per closed trade, before the next entry decision."""

    def saved_state(self, bars: int) -> dict[str, Any] | None:
        """The protection's state at the end of bar number `bars` (the equity curve's length), as
        JSON, with bar numbers stored relative to `bars`; None when it keeps none."""
        return None

    def load_state(self, state: dict[str, Any], bars: int) -> None:
        """Take back what `saved_state` returned, on the same candle, now bar number `bars`."""


MIXIN_KINDS: dict[str, type[Mixin]] = {
    "entry": EntryMixin,
    "exit": ExitMixin,
    "sizing": SizingMixin,
    "filter": FilterMixin,
    "protection": ProtectionMixin,
}
