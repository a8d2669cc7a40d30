"""A 4:1 split while a paper bot runs on Yahoo's daily AAPL candles (July to September 2020, recording
AAPL_1d.json; the fake serves prices as traded until its clock passes the split of 31 August): the open
position and its resting stops are converted at the first candle on the new basis, the indicators read a
continuous history, the trade's PnL is right, and a restart ends exactly as an uninterrupted run."""

from __future__ import annotations

import datetime as dt
import json
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fakes.yahoo import RECORDINGS, Fault

from tradeforge.config.schema import BotConfig
from tradeforge.engine.feeds import live_store
from tradeforge.engine.runtime import RunOutcome, run_bot
from tradeforge.feeds.splits import SplitLog
from tradeforge.feeds.yahoo import YahooClient
from tradeforge.persistence.database import make_engine
from tradeforge.persistence.migrate import upgrade
from tradeforge.persistence.models import OrderStatus, TradeStatus
from tradeforge.persistence.repository import Repository
from tradeforge.resilience.errors import Temporary

UTC = dt.UTC
START = dt.datetime(2020, 8, 3, 12, tzinfo=UTC)  # a Monday, before the open
SPLIT = dt.datetime(2020, 8, 31, tzinfo=UTC)  # the first candle on the new basis
END = dt.datetime(2020, 10, 1, 12, tzinfo=UTC)
RECORDED = json.loads((RECORDINGS / "AAPL_1d.json").read_text())["chart"]["result"][0]  # after the split


def bot_config(root: Path, name: str, db_url: str | None, adjust: str = "splits", warmup: int = 5) -> BotConfig:
    return BotConfig.model_validate(
        {
            "name": name,
            "mode": "paper",
            "data_dir": str(root / "user_data"),
            "persistence": {"db_url": db_url},
            "data": {"source": "yahoo", "symbols": ["AAPL"], "timeframe": "1d"},
            "yahoo": {"adjust": adjust, "warmup_candles": warmup, "poll_interval": 60, "grace": 30, "retries": 2},
            "strategy": {
                "entry": {"name": "sma_cross", "fast": 2, "slow": 4},
                # Without the conversion, a 4:1 split takes the price 75 % down: through both stops.
                "exits": {"stop_loss": {"pct": 0.5}, "trailing_stop": {"pct": 0.3}},
                "sizing": {"name": "percent_equity", "pct": 90},
            },
        }
    )


def repository_of(config: BotConfig) -> Repository:
    return Repository.attach(make_engine(database_url(config)), config.name, "", "paper")


def database_url(config: BotConfig) -> str:
    return config.persistence.db_url or f"sqlite:///{config.data_dir}/tradeforge.sqlite"


def run_paper_bot(config: BotConfig, client: YahooClient, clock: Any, until: dt.datetime) -> RunOutcome:
    """run_bot on the simulated clock (the feed's sleeps move it); stopped, as by Ctrl-C, at `until`."""
    config.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(make_engine(database_url(config)))
    stop = threading.Event()

    def sleep(seconds: float) -> bool:
        clock.now += dt.timedelta(seconds=seconds)
        if clock.now >= until:
            stop.set()
        return stop.is_set()

    wiring = {"client": client, "clock": clock, "sleep": sleep}
    return run_bot(config, "bot.yaml", stop=stop, say=lambda s: None, yahoo=wiring)


def ledger(config: BotConfig) -> list[tuple[Any, ...]]:
    """Every order (by its number in its trade: bots sharing a database number trades apart), with what a
    split did to it."""
    return [
        (o.client_order_id.rsplit("-", 1)[1], o.role, o.side, o.type, o.amount, o.intent_amount, o.stop_price, o.status)
        for o in repository_of(config).orders()
    ]


def trades(config: BotConfig) -> list[tuple[Any, ...]]:
    return [
        (t.amount, t.entry_price, t.exit_price, t.pnl, t.fees, t.opened_at, t.closed_at, t.exit_reason, t.status)
        for t in repository_of(config).trades()
    ]


def equity(config: BotConfig) -> list[tuple[dt.datetime, Decimal, Decimal]]:
    return [(e.time, e.equity, e.cash) for e in repository_of(config).equity()]


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str | None:
    """None: the bot's own SQLite file; else a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        return None
    return str(request.getfixturevalue("postgres_schema_url"))


def near(a: Decimal, b: Decimal) -> bool:
    return abs(a - b) <= abs(b) * Decimal("1e-15")


def the_split_trade(repository: Repository) -> Any:
    (split,) = repository.splits()
    assert split.trade_id is not None, "the comparison needs a position through the split"
    trade = next(t for t in repository.trades() if t.id == split.trade_id)
    return split, trade, [o for o in repository.orders() if o.trade_id == trade.id]


def test_a_position_and_its_stops_are_converted_at_the_split_without_a_stop_out(client, clock, tmp_path, db_url):
    config = bot_config(tmp_path, "split", db_url)
    clock.now = START
    outcome = run_paper_bot(config, client, clock, END)
    repository = repository_of(config)
    split, trade, orders = the_split_trade(repository)

    assert (split.symbol, split.time, split.ratio) == ("AAPL", SPLIT, Decimal(4))
    entry = next(o for o in orders if o.role == "entry")
    # Sizes are Backtrader's floats: 4 x N as a float is within an ulp of 4 x N as a decimal.
    assert split.position_before == entry.amount and near(split.position_after, entry.amount * 4)
    protective = [o for o in orders if o.role == "protective"]
    assert {o.type for o in protective} == {"stop", "trailing_stop"}
    stop = next(o for o in protective if o.type == "stop")
    assert stop.intent_amount == entry.amount and stop.amount == split.position_after
    assert near(stop.stop_price, entry.average_price * Decimal("0.5") / 4)
    assert all(o.status == OrderStatus.CANCELED for o in protective)  # the signal exit canceled the group

    # No spurious stop-out: the trade ends on the strategy's own signal, days after the split, with the
    # exit selling the converted size; entry price on the new basis, PnL from what was paid and received.
    (exit_order,) = [o for o in orders if o.role == "exit"]
    assert trade.exit_reason == "signal" and trade.closed_at > SPLIT + dt.timedelta(days=3)
    assert exit_order.amount == split.position_after and trade.status == TradeStatus.CLOSED and trade.amount == 0
    paid, received = entry.amount * entry.average_price, exit_order.amount * exit_order.average_price
    assert near(trade.pnl, received - paid - trade.fees)  # PostgreSQL keeps 18 decimals
    assert near(trade.entry_price, entry.average_price / 4)
    assert repository.integrity_problems() == []

    # Backtrader's own trade agrees: size and entry price on the new basis, the same PnL.
    (record,) = [t for t in outcome.result.trades if t.entry_time < SPLIT < t.exit_time]
    assert record.size == pytest.approx(float(split.position_after))
    assert record.entry_price == pytest.approx(float(trade.entry_price))
    assert record.pnl == pytest.approx(float(trade.pnl), abs=1e-6)
    (listed,) = [t for t in repository.trade_records() if t["id"] == trade.id]  # `tradeforge trades`
    assert listed["size"] == float(split.position_after) and listed["entry_price"] == float(trade.entry_price)
    (event,) = repository.events("split")
    assert event.data["position_after"] == str(split.position_after) and len(event.data["orders"]) == 2

    # The stored history keeps the candles as the bot received them, with the split beside them.
    store = live_store(config)
    assert SplitLog.beside(store, "yahoo", "AAPL", "1d").splits[0].candle_ns == int(SPLIT.timestamp()) * 10**9
    candles = store.load("yahoo", "AAPL", "1d")
    served = dict(zip(RECORDED["timestamp"], RECORDED["indicators"]["quote"][0]["close"], strict=True))
    for stamp, close in zip(candles.timestamp // 10**9, candles.close, strict=True):
        day = dt.datetime.fromtimestamp(int(stamp), UTC).replace(hour=13, minute=30)
        assert close == served[int(day.timestamp())] * (4 if day < SPLIT else 1)


def test_a_restart_across_the_split_ends_as_an_uninterrupted_run(client, clock, tmp_path, db_url):
    straight = bot_config(tmp_path / "a", "straight", db_url)
    clock.now = START
    run_paper_bot(straight, client, clock, END)
    the_split_trade(repository_of(straight))

    restarted = bot_config(tmp_path / "b", "restarted", db_url)
    clock.now = START
    run_paper_bot(restarted, client, clock, dt.datetime(2020, 8, 27, 12, tzinfo=UTC))  # holding, before the split
    clock.now = dt.datetime(2020, 9, 2, 12, tzinfo=UTC)  # down over the split: it comes with the back-fill
    run_paper_bot(restarted, client, clock, dt.datetime(2020, 9, 4, 12, tzinfo=UTC))
    clock.now = dt.datetime(2020, 9, 4, 12, tzinfo=UTC)  # and once more after it: the split is re-read
    run_paper_bot(restarted, client, clock, END)

    assert ledger(restarted) == ledger(straight)
    assert trades(restarted) == trades(straight)
    assert equity(restarted) == equity(straight)
    splits = [(s.time, s.ratio, s.position_before, s.position_after) for s in repository_of(restarted).splits()]
    assert splits == [(s.time, s.ratio, s.position_before, s.position_after) for s in repository_of(straight).splits()]
    assert repository_of(restarted).integrity_problems() == []


def test_with_adjust_none_the_candles_are_as_traded_and_only_the_position_is_converted(client, clock, tmp_path):
    config = bot_config(tmp_path, "as-traded", None, adjust="none")
    clock.now = START
    run_paper_bot(config, client, clock, END)
    repository = repository_of(config)
    split, trade, orders = the_split_trade(repository)
    entry = next(o for o in orders if o.role == "entry")
    assert split.position_before == entry.amount and near(split.position_after, entry.amount * 4)

    # The strategy reads the 75 % drop as traded: its averages cross down on the split candle, and it
    # sells the converted position at the next open. The stops, converted too, were not hit.
    (exit_order,) = [o for o in orders if o.role == "exit"]
    assert (trade.exit_reason, trade.closed_at) == ("signal", SPLIT + dt.timedelta(days=1))
    assert exit_order.amount == split.position_after and trade.amount == 0
    paid, received = entry.amount * entry.average_price, exit_order.amount * exit_order.average_price
    assert near(trade.pnl, received - paid - trade.fees)  # PostgreSQL keeps 18 decimals
    protective = [o for o in orders if o.role == "protective"]
    assert all(o.status == OrderStatus.CANCELED and o.intent_amount == entry.amount for o in protective)
    assert repository.integrity_problems() == []

    candles = live_store(config).load("yahoo-none", "AAPL", "1d")
    served = dict(zip(RECORDED["timestamp"], RECORDED["indicators"]["quote"][0]["close"], strict=True))
    for stamp, close in zip(candles.timestamp // 10**9, candles.close, strict=True):
        day = dt.datetime.fromtimestamp(int(stamp), UTC).replace(hour=13, minute=30)
        assert close == served[int(day.timestamp())] * (4 if day < SPLIT else 1)


def test_a_split_while_flat_only_rebases_the_history(client, clock, tmp_path):
    """A bot flat through the split trades after it exactly as one that started after the split on
    Yahoo's split-adjusted history: the split changed no price it decides on."""
    through = bot_config(tmp_path / "a", "through", None)
    clock.now = dt.datetime(2020, 8, 26, 12, tzinfo=UTC)
    run_paper_bot(through, client, clock, END)
    (split,) = repository_of(through).splits()
    assert (split.trade_id, split.position_before, split.position_after) == (None, 0, 0)
    assert repository_of(through).events("split")[0].data["orders"] == []

    after = bot_config(tmp_path / "b", "after", None, warmup=30)
    clock.now = dt.datetime(2020, 9, 1, 12, tzinfo=UTC)
    run_paper_bot(after, client, clock, END)
    assert repository_of(after).splits() == []
    assert ledger(through), "the comparison needs orders to mean something"
    assert ledger(through) == ledger(after)


def test_with_two_symbols_the_history_is_rebased_when_the_split_candle_is_current(client, yahoo, clock, tmp_path):
    """AAPL without a candle on the split day (the first on the new basis is 1 September's) next to SHV, whose
    price does not move: on 31 August Backtrader loads AAPL's split candle a step early and holds it back for
    SHV's. Until that candle is current the position is in old shares, and so must the prices it is valued at:
    a day on which nothing moved leaves the equity as it was, and the split converts the position as ever."""
    yahoo.as_of["AAPL"] = "split_day_missing"
    config = bot_config(tmp_path, "two-symbols", None)
    config.data.symbols = ["AAPL", "SHV"]
    clock.now = START
    run_paper_bot(config, client, clock, END)
    repository = repository_of(config)
    split, trade, orders = the_split_trade(repository)

    first_on_new_basis = dt.datetime(2020, 9, 1, tzinfo=UTC)
    assert (split.symbol, split.time, split.ratio) == ("AAPL", first_on_new_basis, Decimal(4))
    entry = next(o for o in orders if o.role == "entry")
    assert split.position_before == entry.amount and near(split.position_after, entry.amount * 4)
    curve = {time: (value, cash) for time, value, cash in equity(config)}
    friday, monday = dt.datetime(2020, 8, 28, tzinfo=UTC), dt.datetime(2020, 8, 31, tzinfo=UTC)
    assert curve[monday] == curve[friday]  # no AAPL candle, SHV unchanged, nothing filled
    served = dict(zip(RECORDED["timestamp"], RECORDED["indicators"]["quote"][0]["close"], strict=True))
    value, cash = curve[first_on_new_basis]
    close = Decimal(repr(served[int(first_on_new_basis.replace(hour=13, minute=30).timestamp())]))
    assert near(value, cash + split.position_after * close)

    # The trade goes on through the split on the strategy's own signal, as in the one-symbol run.
    (exit_order,) = [o for o in orders if o.role == "exit"]
    assert trade.exit_reason == "signal" and trade.closed_at > first_on_new_basis + dt.timedelta(days=3)
    assert exit_order.amount == split.position_after and trade.status == TradeStatus.CLOSED
    paid, received = entry.amount * entry.average_price, exit_order.amount * exit_order.average_price
    assert near(trade.pnl, received - paid - trade.fees)
    assert repository.integrity_problems() == []


def test_an_entry_partly_filled_at_the_split_fills_the_rest_on_the_new_basis(client, clock, tmp_path):
    """Fills limited to a tiny share of each candle's volume: the entry has bought 4 of its 22.5 shares when the
    4:1 split comes, and buys the rest, converted, after it. Each later fill is journalled as what it bought on
    the new basis: the order completes at its converted amount, the trade holds what the broker holds."""
    config = bot_config(tmp_path, "partial", None)
    config.broker.max_fill_fraction_of_volume = 1e-7
    clock.now = START
    run_paper_bot(config, client, clock, END)
    repository = repository_of(config)
    split, trade, orders = the_split_trade(repository)

    entry = next(o for o in orders if o.role == "entry")
    fills = [f for f in repository.fills() if f.order_id == entry.id]
    before = sum(f.amount for f in fills if f.time < split.time)
    assert (split.position_before, split.position_after) == (before, before * 4) and before == 4
    assert entry.intent_amount is not None and entry.amount == Decimal(repr(float(entry.intent_amount) * 4))
    assert split.converted_orders is not None and entry.client_order_id in split.converted_orders
    assert (entry.status, entry.filled) == (OrderStatus.FILLED, entry.amount)
    assert before * 4 + sum(f.amount for f in fills if f.time >= split.time) == entry.amount
    sold = sum((o.filled for o in orders if o.side == "sell"), Decimal(0))
    assert sold, "the comparison needs the position sold from after the split"
    assert trade.amount == entry.amount - sold  # no phantom shares
    assert repository.integrity_problems() == []


def test_a_split_noted_by_a_start_that_failed_is_applied_once_at_the_candle_kept(client, yahoo, clock, tmp_path):
    """A start whose back-fill of AAPL noted the split (Yahoo then without the split-day candle: at 1 September)
    fails on SHV's back-fill, so AAPL's candles are not kept. The next start, Yahoo serving the split-day candle
    again, notes the same split at 31 August: it replaces the first note, and the position is converted once."""
    config = bot_config(tmp_path, "failed-start", None)
    config.data.symbols = ["AAPL", "SHV"]
    clock.now = START
    run_paper_bot(config, client, clock, dt.datetime(2020, 8, 27, 12, tzinfo=UTC))  # before the split

    clock.now = dt.datetime(2020, 9, 2, 12, tzinfo=UTC)
    yahoo.as_of["AAPL"] = "split_day_missing"
    yahoo.inject("/SHV", Fault.server_error(), times=10)
    with pytest.raises(Temporary):
        run_paper_bot(config, client, clock, dt.datetime(2020, 9, 4, 12, tzinfo=UTC))
    log = SplitLog.beside(live_store(config), "yahoo", "AAPL", "1d")
    assert [s.candle_ns for s in log.splits] == [int(dt.datetime(2020, 9, 1, tzinfo=UTC).timestamp()) * 10**9]

    yahoo.as_of.clear()
    yahoo._faults.clear()
    run_paper_bot(config, client, clock, END)
    log = SplitLog.beside(live_store(config), "yahoo", "AAPL", "1d")
    assert [s.candle_ns for s in log.splits] == [int(SPLIT.timestamp()) * 10**9]
    repository = repository_of(config)
    split, trade, orders = the_split_trade(repository)
    assert (split.time, split.ratio) == (SPLIT, Decimal(4))
    entry = next(o for o in orders if o.role == "entry")
    assert split.position_before == entry.amount and near(split.position_after, entry.amount * 4)
    assert trade.status == TradeStatus.CLOSED and trade.amount == 0
    assert repository.integrity_problems() == []
