"""Protection mixins: halt new entries after bad outcomes. They never close open trades."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from tradeforge.strategies.mixins.kinds import Bars, ProtectionMixin
from tradeforge.strategies.params import Param

if TYPE_CHECKING:
    from tradeforge.strategies.base import SymbolBook, TradeRecord


class Cooldown(ProtectionMixin):
    """After a trade on a symbol closes, wait `bars` bars before entering that symbol again."""

    name: ClassVar[str] = "cooldown"
    param_specs: ClassVar[dict[str, Param]] = {
        "bars": Param(3, low=0, high=100_000, opt=(0, 48), step=1, doc="bars to wait after an exit"),
    }

    def entry_blocked(self, book: SymbolBook, index: int) -> str | None:
        bars = self.mixin_params(Cooldown)["bars"]
        if book.last_exit_index is not None and index - book.last_exit_index < bars:
            return f"cooling down for {bars} bars after the last exit"
        return None


class MaxDrawdown(ProtectionMixin):
    """Halt all new entries once equity has closed `pct` (fraction) below its running peak, even if
    it recovered since; with `lock_bars` > 0 entries resume that many bars after the breach (the
    peak starts afresh then), with 0 they stay halted for the run."""

    name: ClassVar[str] = "max_drawdown"
    param_specs: ClassVar[dict[str, Param]] = {
        "pct": Param(0.25, low=0.001, high=1.0, opt=(0.05, 0.5), doc="drawdown that halts entries"),
        "lock_bars": Param(0, low=0, high=1_000_000, doc="bars to halt (0 = rest of the run)"),
    }

    def prepare(self, book: SymbolBook, bars: Bars) -> None:
        # Kept across the per-candle prepares of a live run: the fold below is incremental.
        self.__dict__.setdefault("_max_drawdown_state", {"peak": 0.0, "seen": 0, "until": None})

    def saved_state(self, bars: int) -> dict[str, Any]:
        MaxDrawdown.entry_blocked(self, None, bars)  # type: ignore[arg-type]  # fold every close in
        state = self.__dict__["_max_drawdown_state"]
        until = state["until"]
        return {"peak": state["peak"], "seen": state["seen"] - bars, "until": None if until is None else until - bars}

    def load_state(self, state: dict[str, Any], bars: int) -> None:
        until = state["until"]
        self.__dict__["_max_drawdown_state"] = {
            "peak": state["peak"],
            "seen": bars + state["seen"],
            "until": None if until is None else bars + until,
        }

    def entry_blocked(self, book: SymbolBook, index: int) -> str | None:
        p = self.mixin_params(MaxDrawdown)
        state = self.__dict__["_max_drawdown_state"]
        equity = np.frombuffer(self.equity, dtype=np.float64)  # type: ignore[attr-defined]
        while True:
            if state["until"] is not None:
                if p["lock_bars"] == 0 or len(equity) < state["until"]:
                    return f"equity fell {p['pct']:.0%} below its peak"
                state.update(peak=float(equity[state["until"] - 1]), seen=state["until"], until=None)
            # Fold in the closes since the last check (O(n) over the whole run, vectorised).
            segment = equity[state["seen"] :]
            state["seen"] = len(equity)
            if not len(segment):
                return None
            peaks = np.maximum.accumulate(np.maximum(segment, state["peak"]))
            breaches = np.flatnonzero(segment <= peaks * (1 - p["pct"]))
            if not len(breaches):
                state["peak"] = float(peaks[-1])
                return None
            first = int(breaches[0])
            state["peak"] = float(peaks[first])
            state["until"] = len(equity) - len(segment) + first + 1 + p["lock_bars"]
            state["seen"] = len(equity) - len(segment) + first + 1


class StoplossGuard(ProtectionMixin):
    """After `trades` stop-loss exits (stop_loss, trailing_stop, atr_stop) within `window_bars`
    bars on any symbol, halt all entries for `lock_bars` bars."""

    name: ClassVar[str] = "stoploss_guard"
    param_specs: ClassVar[dict[str, Param]] = {
        "trades": Param(3, low=1, high=1000, opt=(1, 10), step=1, doc="stop-outs that trigger the guard"),
        "window_bars": Param(24, low=1, high=1_000_000, doc="window the stop-outs are counted in"),
        "lock_bars": Param(12, low=1, high=1_000_000, doc="bars entries stay halted"),
    }
    STOP_REASONS: ClassVar[frozenset[str]] = frozenset({"stop_loss", "trailing_stop", "atr_stop"})

    def prepare(self, book: SymbolBook, bars: Bars) -> None:
        self.__dict__.setdefault("_stoploss_guard_state", {"stops": [], "until": -1})

    def on_trade_closed(self, book: SymbolBook, trade: TradeRecord, index: int) -> None:
        if trade.exit_reason in StoplossGuard.STOP_REASONS:
            p = self.mixin_params(StoplossGuard)
            state = self.__dict__["_stoploss_guard_state"]
            bar = len(self.equity) + 1  # type: ignore[attr-defined]  # called before this close is recorded
            state["stops"] = [b for b in state["stops"] if bar - b < p["window_bars"]] + [bar]
            if len(state["stops"]) >= p["trades"]:
                state["until"] = bar + p["lock_bars"]
                state["stops"] = []

    def entry_blocked(self, book: SymbolBook, index: int) -> str | None:
        if len(self.equity) < self.__dict__["_stoploss_guard_state"]["until"]:  # type: ignore[attr-defined]
            return "too many stop-losses recently"
        return None

    def saved_state(self, bars: int) -> dict[str, Any]:
        state = self.__dict__["_stoploss_guard_state"]
        return {"stops": [bar - bars for bar in state["stops"]], "until": state["until"] - bars}

    def load_state(self, state: dict[str, Any], bars: int) -> None:
        self.__dict__["_stoploss_guard_state"] = {
            "stops": [bars + bar for bar in state["stops"]],
            "until": bars + state["until"],
        }


class DailyLossLimit(ProtectionMixin):
    """Halt new entries for the rest of the UTC day once equity has closed `pct` (fraction) below
    its value at the end of the previous day (or the start of the run), even if it recovered since."""

    name: ClassVar[str] = "daily_loss_limit"
    param_specs: ClassVar[dict[str, Param]] = {
        "pct": Param(0.05, low=0.001, high=1.0, opt=(0.01, 0.2), doc="loss within a day that halts entries"),
    }

    def entry_blocked(self, book: SymbolBook, index: int) -> str | None:
        state = DailyLossLimit._fold(self)
        limit = self.mixin_params(DailyLossLimit)["pct"]
        if state["low"] <= state["start"] * (1 - limit):
            return f"daily loss limit {limit:.0%} reached"
        return None

    def _fold(self) -> dict[str, Any]:
        """Today's (the latest close's UTC day) starting equity (the previous day's last close, or the
        first close of the run) and lowest close so far, folded in close by close."""
        state = self.__dict__.setdefault("_daily_loss_state", {"seen": 0, "day": None, "start": 0.0, "low": 0.0})
        equity = self.equity  # type: ignore[attr-defined]
        stamps = self.lines.datetime.array  # type: ignore[attr-defined]
        day, start, low = state["day"], state["start"], state["low"]
        for bar in range(state["seen"], len(equity)):
            value = equity[bar]
            today = int(stamps[bar])  # Backtrader day numbers: the integer part is the UTC day
            if today != day:
                day, start, low = today, equity[bar - 1] if bar else value, value
            elif value < low:
                low = value
        state.update(seen=len(equity), day=day, start=start, low=low)
        return state

    def saved_state(self, bars: int) -> dict[str, Any]:
        state = DailyLossLimit._fold(self)
        return {"day": state["day"], "start": state["start"], "low": state["low"]}

    def load_state(self, state: dict[str, Any], bars: int) -> None:
        self.__dict__["_daily_loss_state"] = {**state, "seen": bars}


PROTECTIONS: tuple[type[ProtectionMixin], ...] = (Cooldown, MaxDrawdown, StoplossGuard, DailyLossLimit)
