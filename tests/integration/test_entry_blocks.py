"""Candles a strategy may read but not enter on (a live feed's warm-up, candles missed while a live bot
was down): blocking one candle's entry removes exactly the trade decided on it, nothing else moves."""

from __future__ import annotations

import dataclasses
import datetime as dt

from tradeforge.config.schema import BotConfig
from tradeforge.engine.backtest import build_cerebro
from tradeforge.engine.data import load_candles
from tradeforge.engine.feeds import BotFeeds
from tradeforge.engine.validation import validate
from tradeforge.feeds.candles import to_ns


def trades_with_entries_blocked(config: BotConfig, ranges: list[tuple[int, int]]) -> list[dt.datetime]:
    candles = load_candles(config)
    resolved = validate(config)
    blocked = BotFeeds([], lambda: candles).strategy(resolved.cls, ranges)
    strategy = build_cerebro(config, candles, dataclasses.replace(resolved, cls=blocked)).run()[0]
    return [t.entry_time for t in strategy.closed_trades]


def test_an_entry_decided_on_a_blocked_candle_is_not_opened_and_the_others_are():
    config = BotConfig.model_validate({"strategy": {"preset": "sma_cross"}, "data": {"source": "sample"}})
    entries = trades_with_entries_blocked(config, [])
    assert len(entries) >= 3, "the check needs trades to mean something"
    decided = entries[1] - dt.timedelta(hours=1)  # a market entry fills at the open after its candle
    blocked = trades_with_entries_blocked(config, [(to_ns(decided), to_ns(decided))])
    assert entries[1] not in blocked
    assert blocked[:1] == entries[:1]  # before the blocked candle, nothing changed
