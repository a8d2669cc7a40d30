"""A stock split while a paper bot runs on Yahoo candles, applied as a broker would.

The Yahoo feed notices the split; when the first candle on the new basis is the feed's current one, the
broker calls this before it matches that candle (feeds/yahoo.py, brokers/simulated.py). The position is
converted (size times the ratio, price divided by it; cash and value unchanged), so are the orders in flight
and the strategy's open trade, and the repository records the split with the converted order amounts (and
what of them had filled: the paper broker and the repository convert it alike), so that the derived trade
and `tradeforge db check` stay consistent when an exit fills the converted size. A restart re-reads the
stored split with the candles and does all of this again at the same candle; the repository's record is
then already there and stays as it was. The candles before the split are re-based for the indicators then
too (feeds/yahoo.py `due_split`), not when the split candle is loaded."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from typing import Any

from tradeforge.brokers.paper import amount_of
from tradeforge.brokers.simulated import SimulatedBroker
from tradeforge.engine.outage import Persist
from tradeforge.feeds.splits import Split
from tradeforge.persistence.repository import Repository, split_ratio
from tradeforge.resilience.errors import Fatal


class SplitHandler:
    """Converts the broker's position and orders and the strategy's trade at a split, then records the
    split (once: a replayed split finds its record)."""

    def __init__(self, repository: Repository, persist: Persist, say: Callable[[str], None]) -> None:
        self.repository = repository
        self.persist = persist
        self.say = say

    def __call__(self, feed: Any, split: Split) -> None:
        cerebro = feed._env
        broker: SimulatedBroker = cerebro.broker  # checked by watch_splits
        before = broker.getposition(feed).size
        orders = broker.apply_split(feed, split.ratio)
        for strategy in cerebro.runningstrats:
            strategy.apply_split(feed, split.ratio)
        after = broker.getposition(feed).size
        converted = {
            order.info.client_order_id: amount_of(order.size)
            for order in orders
            if order.info.get("client_order_id") is not None
        }
        time = dt.datetime.fromtimestamp(split.candle_ns // 1_000_000_000, dt.UTC)
        ratio = split_ratio(split.ratio)  # the decimal the paper broker converted with
        recorded = self.persist(
            lambda: self.repository.record_split(feed.symbol, time, ratio, amount_of(after), converted),
            f"recording the {feed.symbol} split",
        )
        if recorded:
            self.say(
                f"{feed.symbol}: {split.ratio:g}:1 split from the {time:%Y-%m-%d %H:%M} candle; position "
                f"{before:g} -> {after:g}, {len(converted)} orders converted"
            )


def watch_splits(feeds: Iterable[Any], broker: Any, handler: SplitHandler) -> None:
    """Before each bar's matching, apply the splits due on the feeds that report them (the Yahoo feeds)."""
    reporting = [feed for feed in feeds if hasattr(feed, "due_split")]
    if not reporting:
        return
    if not isinstance(broker, SimulatedBroker):
        raise Fatal("splits are applied by the paper broker only; Yahoo feeds run in paper mode")

    def apply_due() -> None:
        for feed in reporting:
            split = feed.due_split()
            if split is not None:
                handler(feed, split)

    broker.before_matching.append(apply_due)
