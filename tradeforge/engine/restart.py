"""Restart points: how a paper bot on a replay feed resumes from its latest snapshot instead of
re-reading its whole history.

At the end of a quiet candle (nothing partly filled, no operator's cancel on its way; open positions,
their resting protective orders and orders submitted on the candle are fine, see Strategy.is_quiet),
the strategy's state (cash, positions and Backtrader's open trades, the open orders with their client
order ids and trailing levels, trade statistics, protections, last exits, the operator's pause) and
the journal's open trade per symbol are stored with the candle's cursor in one commit, at most every
`SNAPSHOT_EVERY` candles. A restart then re-reads only the `window` candles before the snapshot that
the strategy's trailing-window indicators need (a live strategy computes them over its last
`window` candles, see Strategy.start, so even recursive ones such as EMA or Wilder's RSI/ATR come
out bit for bit), skips the strategy's logic on them, restores the state on the snapshot's candle
(the resting orders go back into the broker without new intents: their intents are stored), and
re-adopts only the orders placed after it.

Only strategies composed of tradeforge's own mixins and presets restart from snapshots: a plugin's
mixin may keep state no snapshot knows about, so such a bot re-reads its whole history as before.
Exchange feeds (Binance, Yahoo) also re-read their whole stored history.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import backtrader as bt
import numpy as np

from tradeforge.config.schema import BotConfig
from tradeforge.feeds.arrays import to_bt_dates
from tradeforge.feeds.candles import Candles, to_ns
from tradeforge.persistence.models import StrategySnapshot
from tradeforge.persistence.repository import Repository
from tradeforge.strategies.base import Resume, Strategy
from tradeforge.strategies.library.presets import PRESETS
from tradeforge.strategies.mixins.entries import ENTRIES
from tradeforge.strategies.mixins.exits import EXITS
from tradeforge.strategies.mixins.filters import FILTERS
from tradeforge.strategies.mixins.kinds import MIXIN_KINDS
from tradeforge.strategies.mixins.protections import PROTECTIONS
from tradeforge.strategies.mixins.sizing import SIZINGS
from tradeforge.strategies.params import Mixin

SNAPSHOT_EVERY = 50  # candles between snapshots: a restart re-reads at most this many (+ the window)
SNAPSHOT_VERSION = 3  # bump when the state's shape changes: older snapshots are then ignored (full replay)
_BACKTRADER_BASES = frozenset(bt.Strategy.__mro__)
_COLUMNS = ("open", "high", "low", "close", "volume")
_BUILT_IN_MIXINS: frozenset[type] = frozenset((*ENTRIES, *EXITS, *SIZINGS, *FILTERS, *PROTECTIONS))


def snapshots_supported(config: BotConfig, strategy_class: type) -> bool:
    """Replay feeds and strategies built only from tradeforge's own parts (see module docstring)."""
    if config.data.source != "replay":
        return False
    for klass in strategy_class.__mro__:
        if klass is Strategy or klass in _BACKTRADER_BASES:
            continue
        if issubclass(klass, bt.Strategy):  # a composed class: a preset, or one the registry built
            if klass not in PRESETS.values() and not klass.__module__.startswith("tradeforge."):
                return False
        elif klass not in _BUILT_IN_MIXINS and klass is not Mixin and klass not in MIXIN_KINDS.values():
            return False
    return True


@dataclass(frozen=True)
class RestartPoint:
    """The snapshot a restart resumes from."""

    time: dt.datetime
    last_order_id: int
    state: dict[str, Any]
    # Per symbol, the candles before the snapshot's that the strategy's window reads (see first_rows).
    history: dict[str, dict[str, np.ndarray]] = field(default_factory=dict, compare=False)

    @property
    def strategy_state(self) -> dict[str, Any]:
        return self.state["strategy"]

    @property
    def open_trades(self) -> dict[str, int]:
        """The journal's open trade per symbol at the snapshot: exits placed after it link to them."""
        return {symbol: int(trade) for symbol, trade in self.state["journal"]["open_trades"].items()}

    @property
    def open_positions(self) -> int:
        return sum(1 for book in self.strategy_state["books"].values() if book["open"] is not None)

    @property
    def orders_in_flight(self) -> int:
        """Orders submitted on the snapshot's candle, accepted on the next."""
        orders = [o for b in self.strategy_state["books"].values() for o in (b["entry_order"], b["exit_order"])]
        orders += [o for b in self.strategy_state["books"].values() if b["open"] for o in b["open"]["protective"]]
        return sum(1 for order in orders if order is not None and order["queue"] == "submitted")

    def resume(self) -> Resume:
        return Resume(float(to_bt_dates(np.array([to_ns(self.time)]))[0]), self.strategy_state, self.history)

    def first_rows(self, candles: list[Candles]) -> list[Candles]:
        """Each series from the snapshot's candle on (what the feeds play), keeping in `history` the
        candles before it that the strategy's window needs for its first decisions after the snapshot:
        with W the window and r the snapshot candle's row, decisions from row r + 1 on read rows from
        r + 2 - W, exactly as in the uninterrupted run. The strategy reads those from `history`
        (Strategy._prepare) rather than Backtrader stepping through them one by one: with 100
        symbols that stepping was most of a restart."""
        window = int(self.strategy_state["window"])
        books = self.strategy_state["books"]
        sliced = []
        for series in candles:
            time = (books.get(series.symbol) or {}).get("time")
            if time is None or not len(series):
                sliced.append(series)
                continue
            row = int(np.searchsorted(series.timestamp, to_ns(dt.datetime.fromisoformat(time))))
            first = max(0, row + 2 - window)
            self.history[series.symbol] = {
                "datetime": to_bt_dates(series.timestamp[first:row]),
                **{name: np.asarray(getattr(series, name)[first:row], dtype=np.float64) for name in _COLUMNS},
            }
            sliced.append(series.between(dt.datetime.fromtimestamp(series.timestamp[row] / 1e9, dt.UTC), None))
        return sliced


def restart_point(repository: Repository, config: BotConfig, strategy_class: type) -> RestartPoint | None:
    """The bot's latest snapshot, when this bot can restart from one."""
    if not snapshots_supported(config, strategy_class):
        return None
    row: StrategySnapshot | None = repository.latest_snapshot()
    if row is None or row.state.get("version") != SNAPSHOT_VERSION:
        return None
    return RestartPoint(row.time, row.last_order_id, row.state)


class Snapshots:
    """Decides at the end of each new candle whether to take a snapshot, and what goes in it."""

    def __init__(self, paused: Any) -> None:
        self._paused = paused  # the operator's pause (engine/control.py), restored with the rest
        self._since = SNAPSHOT_EVERY  # candles since the last snapshot: the first quiet one is taken

    def due(self, strategy: Strategy) -> bool:
        self._since += 1
        return self._since >= SNAPSHOT_EVERY and strategy.is_quiet()

    def take(self, strategy: Strategy, open_trades: dict[str, int]) -> dict[str, Any]:
        """`open_trades`: the journal's (RepositoryJournal.open_trades)."""
        self._since = 0
        return snapshot_state(strategy, open_trades, bool(self._paused()))


def snapshot_state(strategy: Strategy, open_trades: dict[str, int], paused: bool) -> dict[str, Any]:
    """What a snapshot stores (the benchmark builds its snapshots with it too)."""
    return {
        "version": SNAPSHOT_VERSION,
        "paused": paused,
        "strategy": strategy.restart_state(),
        "journal": {"open_trades": open_trades},
    }
