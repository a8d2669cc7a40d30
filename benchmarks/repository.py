"""Trade repository speed: how fast a bot records orders, how long a restart with a long history
takes before it can trade, and what persistence costs a replayed paper bot.

    .venv/bin/python benchmarks/repository.py                     # all three
    .venv/bin/python benchmarks/repository.py orders --orders 2000
    .venv/bin/python benchmarks/repository.py recovery --history 40000
    .venv/bin/python benchmarks/repository.py recovery --symbols 100 --history 420000
    .venv/bin/python benchmarks/repository.py restart --candles 20000
    .venv/bin/python benchmarks/repository.py paper

1. orders: N orders as N/2 paper round trips (entry intent, accepted, fill; exit intent, accepted,
   fill), each call its own committed transaction as in a running bot, on a SQLite file (WAL) in a
   temporary directory, then on PostgreSQL when it answers at 127.0.0.1:5432 (database `test`, in a
   temporary schema; another server: TRADEFORGE_TEST_POSTGRES_URL). --repeats runs of each; the
   statements and commits per order are counted at the driver (what SQLite or the server is asked
   to do), in a short run after the timed one.
2. recovery: a paper bot (sma_cross 1/2, 50 % of equity, on synthetic one-minute candles; no
   commission, which would bleed its equity to dust over 100,000 round trips) whose database holds
   what its first --history candles (default 400,000) left: ~100,000 closed trades,
   their orders and fills, its cursor and latest snapshot. The history is built quickly: the bot's
   own strategy and paper broker run over the candles preloaded (backtest speed) with the order
   journal in memory, then bulk-inserted; a restart that disagreed with it would stop with a
   divergence error, so the rows are what the bot itself would have written. Measured: seconds
   from spawning `tradeforge run` to its first new candle (its "recovered" line), against plain
   start-up (Python, import tradeforge's runtime) measured alongside. With --symbols N the history
   is spread over N synthetic symbols (0.9 % of equity each, a 5 % stop-loss resting on every trade),
   whose last 200 history candles rise steadily (see rising_tail) so that the bot ends holding every
   symbol and snapshots with N open trades: the issue's 100,000 closed and 100 open trades.
2b. restart: a real paper bot (sma_cross on synthetic one-minute candles) is stopped after --candles
   candles and started again; the seconds from spawning it to its first new candle (it resumes from
   its latest snapshot, see tradeforge/engine/restart.py).
3. paper: `run_bot` on the bundled BTC/USDT 1h candles replayed at full speed with the sma_cross
   preset, persisting to a SQLite file on disk, vs in-memory SQLite (the same run_bot, its engine
   factory swapped for one shared in-memory connection, StaticPool), vs a file on tmpfs (/dev/shm).

Each measurement runs in a fresh process. Figures only: nothing is asserted about timings (the
benchmark does check that what it recorded is consistent).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

POSTGRES_URL = os.environ.get("TRADEFORGE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
SYMBOL = "BTC/USDT"
START = dt.datetime(2015, 1, 1, tzinfo=dt.UTC)


# --- 1. orders/s ------------------------------------------------------------------------------------


def round_trips(repository: Any, trades: int, first: int = 0) -> dict[str, float]:
    """`trades` paper round trips; the seconds spent in each repository method."""
    from tradeforge.persistence.models import OrderStatus
    from tradeforge.persistence.repository import FillReport, OrderIntent

    spent = {"record_intent": 0.0, "mark_order": 0.0, "record_fill": 0.0}
    clock = time.perf_counter
    amount = Decimal("0.0125")

    def order(trade_id: int | None, side: str, role: str, price: Decimal, at: dt.datetime) -> int:
        t0 = clock()
        recorded = repository.record_intent(OrderIntent(trade_id, SYMBOL, side, "market", role, amount, reason="sma"))
        t1 = clock()
        repository.mark_order(recorded.client_order_id, OrderStatus.OPEN)
        t2 = clock()
        fee = (amount * price / 1000).quantize(Decimal("0.00000001"))
        repository.record_fill(
            recorded.client_order_id, FillReport(f"{recorded.client_order_id}-f1", amount, price, at, fee=fee)
        )
        t3 = clock()
        spent["record_intent"] += t1 - t0
        spent["mark_order"] += t2 - t1
        spent["record_fill"] += t3 - t2
        return int(recorded.trade_id)

    for i in range(first, first + trades):
        opened_at = START + dt.timedelta(hours=i)
        trade_id = order(None, "buy", "entry", Decimal(30_000 + i % 977) + Decimal("0.25"), opened_at)
        order(
            trade_id, "sell", "exit", Decimal(30_000 + i % 983) + Decimal("0.5"), opened_at + dt.timedelta(minutes=30)
        )
    return spent


def measure_orders(url: str, orders: int) -> dict[str, Any]:
    from tradeforge.persistence.database import make_engine
    from tradeforge.persistence.migrate import upgrade
    from tradeforge.persistence.models import TradeStatus
    from tradeforge.persistence.repository import Repository

    trades = orders // 2
    engine = make_engine(url)
    try:
        upgrade(engine)
        repository = Repository.attach(engine, "bench-orders", "bench", "paper")
        started, cpu = time.perf_counter(), time.process_time()
        spent = round_trips(repository, trades)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        closed = len(repository.trades(TradeStatus.CLOSED))
        problems = repository.integrity_problems()
        if closed != trades or problems:
            raise RuntimeError(f"the benchmark recorded something wrong: {closed} closed trades, {problems[:3]}")
        repository.close()
    finally:
        engine.dispose()
    counts = count_driver_calls(url, repository.bot_id, repository.prefix, first=trades)
    return {
        "orders": trades * 2,
        "seconds": elapsed,
        "orders_per_s": trades * 2 / elapsed,
        "cpu_us_per_order": cpu / (trades * 2) * 1e6,
        "us_per_call": {name: seconds / (trades * 2) * 1e6 for name, seconds in spent.items()},
        "statements_per_order": counts["statements"] / 200,
        "commits_per_order": counts["commits"] / 200,
    }


def count_driver_calls(url: str, bot_id: int, prefix: str, first: int) -> dict[str, int]:
    """Statements and commits the driver runs for 100 more round trips. Counted at the driver, not
    with SQLAlchemy's events: the repository runs its hot statements on the driver's own cursor."""
    from sqlalchemy import event

    from tradeforge.persistence.database import make_engine
    from tradeforge.persistence.repository import Repository

    counts = {"statements": 0, "commits": 0}

    def count(what: str) -> None:
        counts[what] += 1

    def instrument(dbapi_connection: Any, _record: Any) -> None:
        if hasattr(dbapi_connection, "set_trace_callback"):  # sqlite3: every statement SQLite runs
            dbapi_connection.set_trace_callback(
                lambda sql: None if sql.startswith("BEGIN") else count("commits" if sql == "COMMIT" else "statements")
            )
            return
        commit, base = dbapi_connection.commit, dbapi_connection.cursor_factory  # psycopg

        class Counted(base):  # type: ignore[misc, valid-type]
            def execute(self, *args: Any, **kwargs: Any) -> Any:
                count("statements")
                return super().execute(*args, **kwargs)

            def executemany(self, *args: Any, **kwargs: Any) -> Any:
                count("statements")
                return super().executemany(*args, **kwargs)

        def counted_commit() -> None:
            count("commits")
            commit()

        dbapi_connection.cursor_factory, dbapi_connection.commit = Counted, counted_commit

    engine = make_engine(url)
    event.listen(engine, "connect", instrument)
    try:
        repository = Repository(engine, bot_id, prefix)
        repository.log_event("count", "connected")  # the connection's own set-up is not counted
        counts.update(statements=0, commits=0)
        round_trips(repository, 100, first=first)
        repository.close()
    finally:
        engine.dispose()
    return counts


@contextlib.contextmanager
def postgres_schema() -> Iterator[str | None]:
    """A URL on a fresh schema of the PostgreSQL test database (dropped after), or None if unreachable."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import DBAPIError
    from sqlalchemy.pool import NullPool

    from tradeforge.persistence.database import normalise_url

    admin = create_engine(
        normalise_url(POSTGRES_URL),
        isolation_level="AUTOCOMMIT",
        poolclass=NullPool,
        connect_args={"connect_timeout": 3},
    )
    schema = f"tf_bench_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    except DBAPIError as exc:
        print(f"  PostgreSQL: skipped, {POSTGRES_URL} is unreachable ({str(exc.orig or exc).strip().splitlines()[0]})")
        yield None
        return
    try:
        yield (
            make_url(normalise_url(POSTGRES_URL))
            .update_query_dict({"options": f"-csearch_path={schema}"})
            .render_as_string(hide_password=False)
        )
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def bench_orders(orders: int, repeats: int) -> None:
    print(f"\n1. recording {orders:,} orders ({orders // 2:,} round trips: intent, accepted, fill; twice)")
    runs = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as folder:
            runs.append(in_child("measure_orders", f"sqlite:///{folder}/bench.sqlite", orders))
    show_orders("SQLite file (WAL)", runs)
    runs = []
    for _ in range(repeats):
        with postgres_schema() as url:
            if url is None:
                return
            runs.append(in_child("measure_orders", url, orders))
    show_orders("PostgreSQL", runs)


def show_orders(label: str, runs: list[dict[str, Any]]) -> None:
    """The median run, and the range of all of them."""
    rates = sorted(run["orders_per_s"] for run in runs)
    figures = min(runs, key=lambda run: abs(run["orders_per_s"] - statistics.median(rates)))
    calls = ", ".join(f"{name} {us:.0f} us" for name, us in figures["us_per_call"].items())
    print(
        f"  {label}: {statistics.median(rates):,.0f} orders/s (median of {len(runs)}: "
        f"{', '.join(f'{rate:,.0f}' for rate in rates)}); per order {figures['statements_per_order']:.1f} "
        f"statements in {figures['commits_per_order']:.0f} commits; median run: "
        f"{figures['cpu_us_per_order']:.0f} us CPU per order (this process), per call {calls}"
    )


# --- 2. restart recovery ----------------------------------------------------------------------------


def bot_config(data_dir: str, db_url: str) -> Any:
    from tradeforge.config.schema import BotConfig

    return BotConfig.model_validate(
        {
            "name": "bench-bot",
            "mode": "paper",
            "data_dir": data_dir,
            "data": {"source": "replay", "symbols": [SYMBOL], "timeframe": "1h", "speed": "max"},
            "strategy": {"preset": "sma_cross"},
            "persistence": {"db_url": db_url},
        }
    )


REAL_HISTORY_BOT = """\
name: bench-bot
data_dir: {root}/user_data
data: {{source: replay, path: "{root}/candles/{{symbol}}.csv", symbols: {symbols}, timeframe: 1m, speed: max}}
broker: {{cash: 10000, commission: 0}}
strategy:
  entry: {{name: sma_cross, fast: 1, slow: 2}}
  sizing: {{name: percent_equity, pct: {pct}}}
{exits}"""
HOLD_CANDLES = 200  # with several symbols: the history's last candles rise steadily (see rising_tail)
NEW_CANDLES = 1_000  # after the history: what the restarted bot trades on


class CollectingJournal:
    """The order journal of a paper bot, kept in memory: what the bot asked for and what filled."""

    def __init__(self) -> None:
        self.orders: list[dict[str, Any]] = []
        self.fills: list[dict[str, Any]] = []
        self._by_id: dict[str, dict[str, Any]] = {}
        self._open: dict[str, tuple[int, int]] = {}  # symbol -> (trade id, orders so far)
        self.trades = 0

    def intent(self, *, symbol: str, side: str, type: str, role: str, amount: Decimal, **rest: Any) -> str:
        if role == "entry":
            self.trades += 1
            trade, sequence = self.trades, 1
        else:
            trade, sequence = self._open[symbol][0], self._open[symbol][1] + 1
        self._open[symbol] = (trade, sequence)
        order = {"trade": trade, "client_order_id": f"P-{trade}-{sequence}", "symbol": symbol, "side": side}
        order.update(type=type, role=role, amount=amount, status="pending_submit", filled=Decimal(0), **rest)
        self.orders.append(order)
        self._by_id[order["client_order_id"]] = order
        return str(order["client_order_id"])

    def accepted(self, client_order_id: str) -> None:
        self._by_id[client_order_id]["status"] = "open"

    def filled(
        self, client_order_id: str, fill_id: str, amount: Decimal, price: Decimal, fee: Decimal, time: Any
    ) -> None:
        order = self._by_id[client_order_id]
        order["filled"] += amount
        order["status"] = "filled" if order["filled"] == order["amount"] else "partially_filled"
        self.fills.append(
            {"order": order, "fill_id": fill_id, "amount": amount, "price": price, "fee": fee, "time": time}
        )

    def closed(self, client_order_id: str, status: str) -> None:
        self._by_id[client_order_id]["status"] = status

    def open_trades(self) -> dict[str, int]:
        return {symbol: trade for symbol, (trade, _) in self._open.items()}


def run_history(data_dir: str, history: int) -> Any:
    """The bot's first `history` candles (per symbol) through the paper bot's strategy and broker,
    preloaded (as fast as a backtest) with the journal in memory; the snapshot at its last quiet candle."""
    import backtrader as bt

    from tradeforge.brokers.paper import PaperBroker
    from tradeforge.config.loader import load_config
    from tradeforge.engine.backtest import configure_broker
    from tradeforge.engine.data import load_candles
    from tradeforge.engine.restart import snapshot_state
    from tradeforge.engine.validation import validate
    from tradeforge.feeds.arrays import ArrayFeed

    config = load_config(Path(data_dir).parent / "bot.yaml")
    loaded = load_candles(config)
    journal = CollectingJournal()
    snapshot: dict[str, Any] = {}

    class Events:
        def on_bar(self, strategy: Any) -> None:
            if strategy.is_quiet():
                snapshot.update(
                    time=bt.num2date(strategy.datetime[0]).replace(tzinfo=dt.UTC),
                    orders=len(journal.orders),
                    state=snapshot_state(strategy, journal.open_trades(), paused=False),
                )

    resolved = validate(config)
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.broker = PaperBroker(journal)
    configure_broker(cerebro.broker, config)
    for candles in loaded:
        last = dt.datetime.fromtimestamp(candles.timestamp[history - 1] / 1e9, dt.UTC)
        cerebro.adddata(ArrayFeed(candles.between(None, last)), name=candles.symbol)
    cerebro.addstrategy(resolved.cls, **resolved.params, events=Events())
    cerebro.run()
    return config, journal, snapshot, loaded[0]


def rising_tail(candles: Any, bars: int) -> Any:
    """`candles` with its last `bars` candles replaced by a steady rise of 0.01 % a candle from the
    close before them: sma_cross 1/2 then enters once and holds, its stop resting, so that the bot
    ends its history holding every symbol (on random candles about half of them are open at a time)."""
    import numpy as np

    from tradeforge.feeds.candles import Candles

    start = len(candles) - bars
    close = candles.close.copy()
    close[start:] = close[start - 1] * 1.0001 ** np.arange(1, bars + 1)
    open_ = candles.open.copy()
    open_[start:] = close[start - 1 : -1]
    high, low = candles.high.copy(), candles.low.copy()
    high[start:], low[start:] = close[start:] * 1.0002, open_[start:] * 0.9998
    return Candles(candles.symbol, candles.timeframe, candles.timestamp, open_, high, low, close, candles.volume)


def build_real_history(folder: str, candles: int, symbols: int = 1) -> dict[str, Any]:
    """A paper bot's database after `candles` one-minute candles (on each of `symbols` symbols), built
    in bulk from `run_history`: its orders, fills, trades, cursors and latest snapshot, consistent
    with the candles (a restart that disagreed would stop with a divergence error)."""
    from sqlalchemy import insert

    from tradeforge.engine.runtime import config_hash
    from tradeforge.feeds.synthetic import csv_text, generate
    from tradeforge.persistence.database import make_engine
    from tradeforge.persistence.migrate import upgrade
    from tradeforge.persistence.models import Base
    from tradeforge.persistence.repository import Repository

    root = Path(folder)
    names = [SYMBOL] if symbols == 1 else [f"S{number:03d}/USDT" for number in range(symbols)]
    (root / "candles").mkdir()
    for seed, name in enumerate(names, start=5):
        series = generate(name, "1m", START, candles + NEW_CANDLES, seed=seed, start_price=30_000.0)
        if symbols > 1:
            series = rising_tail(series, HOLD_CANDLES + NEW_CANDLES)
        (root / "candles" / f"{name.replace('/', '-')}.csv").write_text(csv_text(series), encoding="utf-8")
    document = REAL_HISTORY_BOT.format(
        root=root,
        symbols=json.dumps(names),
        pct=50 if symbols == 1 else 0.9,  # each symbol's entry: a share of equity all of them can hold at once
        exits="" if symbols == 1 else "  exits: {stop_loss: {pct: 0.05}}\n",
    )
    (root / "bot.yaml").write_text(document, encoding="utf-8")
    (root / "user_data").mkdir()
    config, journal, snapshot, loaded = run_history(str(root / "user_data"), candles)
    db_url = f"sqlite:///{root}/user_data/tradeforge.sqlite"
    engine = make_engine(db_url)
    upgrade(engine)
    repository = Repository.attach(engine, config.name, config_hash(config), config.mode)
    bot, prefix = repository.bot_id, repository.prefix
    at = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    orders, fills, trades = [], [], {}
    for row, order in enumerate(journal.orders, start=1):
        trade = trades.setdefault(
            order["trade"],
            {
                "id": order["trade"],
                "bot_id": bot,
                "symbol": order["symbol"],
                "status": "open",
                "state": {},
                "side": "long" if order["side"] == "buy" else "short",
                "amount": Decimal(0),
                "fees": Decimal(0),
                "entry_price": None,
                "exit_price": None,
                "pnl": None,
                "opened_at": None,
                "closed_at": None,
                "exit_reason": None,
            },
        )
        client_id = order["client_order_id"].replace("P-", f"{prefix}-", 1)
        order["row"] = row
        orders.append(
            {
                "id": row,
                "bot_id": bot,
                "trade_id": trade["id"],
                "client_order_id": client_id,
                "symbol": order["symbol"],
                "side": order["side"],
                "type": order["type"],
                "role": order["role"],
                "reason": order["reason"],
                "amount": order["amount"],
                "price": order["price"],
                "stop_price": order["stop_price"],
                "status": order["status"],
                "filled": order["filled"],
                "fees": Decimal(0),
                "average_price": None,
                "created_at": at,
                "updated_at": at,
            }
        )
    for fill in journal.fills:
        order, row = fill["order"], orders[fill["order"]["row"] - 1]
        trade = trades[order["trade"]]
        row["fees"] += fill["fee"]
        row["average_price"] = fill["price"]
        entering = order["role"] == "entry"
        trade["amount"] += fill["amount"] if entering else -fill["amount"]
        trade["fees"] += fill["fee"]
        if entering:
            trade.update(entry_price=fill["price"], opened_at=fill["time"])
        else:
            trade.update(exit_price=fill["price"], closed_at=fill["time"], exit_reason=order["reason"])
        if trade["amount"] == 0:
            trade["status"] = "closed"
            trade["pnl"] = (trade["exit_price"] - trade["entry_price"]) * order["amount"] - trade["fees"]
        fills.append(
            {
                "bot_id": bot,
                "order_id": row["id"],
                "symbol": order["symbol"],
                "venue_trade_id": fill["fill_id"].replace("P-", f"{prefix}-", 1),
                "amount": fill["amount"],
                "price": fill["price"],
                "fee": fill["fee"],
                "fee_currency": "USDT",
                "time": fill["time"],
            }
        )
    last = dt.datetime.fromtimestamp(loaded.timestamp[candles - 1] / 1e9, dt.UTC)
    for book in snapshot["state"]["strategy"]["books"].values():  # resting orders: their ids as stored
        for order in (book["open"] or {}).get("protective", []):
            order["info"]["client_order_id"] = order["info"]["client_order_id"].replace("P-", f"{prefix}-", 1)
    tables = Base.metadata.tables
    with engine.begin() as connection:
        connection.execute(insert(tables["trades"]), list(trades.values()))
        connection.execute(insert(tables["orders"]), orders)
        connection.execute(insert(tables["fills"]), fills)
        connection.execute(
            insert(tables["candle_cursors"]),
            [{"bot_id": bot, "symbol": name, "timeframe": "1m", "last_open_time": last} for name in names],
        )
        connection.execute(
            insert(tables["strategy_snapshots"]),
            [
                {
                    "bot_id": bot,
                    "time": snapshot["time"],
                    "last_order_id": snapshot["orders"],
                    "state": snapshot["state"],
                }
            ],
        )
    engine.dispose()
    closed = sum(1 for t in trades.values() if t["status"] == "closed")
    holding = sum(1 for t in trades.values() if t["amount"])
    books = snapshot["state"]["strategy"]["books"].values()
    return {
        "closed": closed,
        "open": holding,
        "snapshot_open": sum(1 for book in books if book["open"]),
        "unfilled": len(trades) - closed - holding,
        "orders": len(orders),
        "fills": len(fills),
        "snapshot": snapshot["time"].isoformat(),
        "last": last.isoformat(),
        "config": str(root / "bot.yaml"),
    }


def time_to_first_candle(config: str, marker: str) -> tuple[float, str]:
    """Seconds from spawning `tradeforge run` to the line starting with `marker`; the line."""
    import signal

    tradeforge = str(Path(sys.executable).with_name("tradeforge"))
    spawned = time.perf_counter()
    process = subprocess.Popen([tradeforge, "run", "--config", config], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    line = next((line for line in process.stdout if line.startswith(marker)), "")
    seconds = time.perf_counter() - spawned
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=300)
    if not line:
        raise RuntimeError(f"`tradeforge run` never printed {marker!r} (exit code {process.returncode})")
    return seconds, line.strip()


def bench_recovery(candles: int, repeats: int, symbols: int = 1) -> None:
    """A paper bot (sma_cross 1/2 on synthetic one-minute candles) whose database holds the orders,
    fills and trades of its first `candles` candles (spread over `symbols` symbols), and its latest
    snapshot: seconds from spawning `tradeforge run` to its first new candle, against plain start-up
    (Python, import tradeforge's runtime) in the same run."""
    per_symbol = candles // symbols
    print(
        f"\n2. restart of a paper bot after {candles:,} one-minute candles (SQLite file, WAL)"
        + (f": {per_symbol:,} on each of {symbols} symbols" if symbols > 1 else "")
    )
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        built = in_child("build_real_history", folder, per_symbol, symbols)
        size = Path(folder, "user_data", "tradeforge.sqlite").stat().st_size / 1e6
        print(
            f"  built {built['closed']:,} closed and {built['open']} open trades ({built['unfilled']:,} entries "
            f"never filled), {built['orders']:,} orders, "
            f"{built['fills']:,} fills ({size:.0f} MB) in {time.perf_counter() - started:.1f} s; "
            f"latest snapshot {built['snapshot']} holding {built['snapshot_open']} open trades, "
            f"last candle {built['last']}"
        )
        database = Path(folder, "user_data", "tradeforge.sqlite")
        shutil.copy(database, Path(folder, "built.sqlite"))
        plain, restart, lines = [], [], []
        for _ in range(repeats):  # each restart from the same database
            spawned, out = timed_process(["-c", PLAIN])
            plain.append(float(out) - spawned)
            shutil.copy(Path(folder, "built.sqlite"), database)
            seconds, line = time_to_first_candle(built["config"], "recovered in")
            restart.append(seconds)
            lines.append(line)
    plain_s, restart_s = statistics.median(plain), statistics.median(restart)
    print(f"  plain start-up (python, import tradeforge.engine.runtime): {plain_s:.2f} s (median of {repeats})")
    print(f"  restart to its first new candle:                          {restart_s:.2f} s (median of {repeats})")
    beyond = restart_s - plain_s
    print(f"  recovery costs {beyond:.2f} s beyond plain start-up; the bot said: {lines[0]}")
    print(f"  target <= 1 s beyond plain start-up: {'met' if beyond <= 1 else 'missed'} by {abs(1 - beyond):.2f} s")


PLAIN = "import time, tradeforge.engine.runtime; print(time.time())"


# --- 2b. a real restart: time to the first new candle ------------------------------------------------

REAL_BOT = """\
name: restart-bench
data_dir: {root}/user_data
data: {{source: replay, path: {candles}, symbols: [BTC/USDT], timeframe: 1m, speed: max}}
strategy: {{preset: sma_cross}}
"""


def bench_real_restart(candles: int) -> None:
    """A paper bot replays `candles` one-minute candles, is stopped (SIGINT) near the end and started
    again: seconds from spawning the second process to its first new candle (its "recovered" line)."""
    import signal

    from tradeforge.feeds.synthetic import csv_text, generate
    from tradeforge.persistence.database import make_engine
    from tradeforge.persistence.migrate import upgrade
    from tradeforge.persistence.repository import Repository

    print(f"\n2b. restart of a paper bot (sma_cross, 1m candles) stopped after ~{candles:,} candles")
    tradeforge = str(Path(sys.executable).with_name("tradeforge"))
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        series = generate("BTC/USDT", "1m", START, candles + 1_000, seed=11, start_price=30_000.0)
        (root / "candles.csv").write_text(csv_text(series), encoding="utf-8")
        config = root / "bot.yaml"
        config.write_text(REAL_BOT.format(root=root, candles=root / "candles.csv"), encoding="utf-8")
        db_url = f"sqlite:///{root}/user_data/tradeforge.sqlite"
        upgrade(make_engine(db_url))
        repository = Repository.attach(make_engine(db_url), "restart-bench", "", "paper")

        first = subprocess.Popen([tradeforge, "run", "--config", str(config)], stdout=subprocess.DEVNULL)
        stop_at = START + dt.timedelta(minutes=candles)
        started = time.perf_counter()
        while first.poll() is None and max(repository.cursors().values(), default=START) < stop_at:
            time.sleep(0.2)
        first.send_signal(signal.SIGINT)
        first.wait(timeout=120)
        first_seconds = time.perf_counter() - started
        done = max(repository.cursors().values())
        orders = len(repository.stored_orders())
        spawned = time.perf_counter()
        second = subprocess.Popen([tradeforge, "run", "--config", str(config)], stdout=subprocess.PIPE, text=True)
        assert second.stdout is not None
        recovered_line = next(line for line in second.stdout if line.startswith("recovered in"))
        recovered = time.perf_counter() - spawned
        second.send_signal(signal.SIGINT)
        second.communicate(timeout=120)
    history = (done - START) / dt.timedelta(minutes=1) + 1
    spawned, out = timed_process(["-c", PLAIN])
    plain = float(out) - spawned
    print(f"  first run: {history:,.0f} candles, {orders:,} orders in {first_seconds:.1f} s")
    print(f"  restart: {recovered:.2f} s from spawning to the first new candle (plain start-up {plain:.2f} s)")
    print(f"  its report: {recovered_line.strip()}")


# --- 3. persistence overhead of a replayed paper bot ------------------------------------------------


def paper_run(where: str) -> dict[str, Any]:
    """One run_bot with its database `where` (disk, tmpfs or memory); seconds inside run_bot."""
    from unittest import mock

    from sqlalchemy import create_engine, event
    from sqlalchemy.pool import StaticPool

    from tradeforge.engine import runtime
    from tradeforge.persistence.database import make_engine
    from tradeforge.persistence.migrate import upgrade

    with tempfile.TemporaryDirectory(dir="/dev/shm" if where == "tmpfs" else None) as folder:
        if where == "memory":
            url = "sqlite://"
            engine = create_engine(url, poolclass=StaticPool, connect_args={"check_same_thread": False})
            event.listen(engine, "connect", lambda dbapi, _: dbapi.execute("PRAGMA foreign_keys=ON"))
            factory: Any = mock.patch.object(runtime, "make_engine", lambda *_, **__: engine)
        else:
            url = f"sqlite:///{folder}/tradeforge.sqlite"
            engine = make_engine(url)
            factory = contextlib.nullcontext()
        upgrade(engine)
        with factory:
            started = time.perf_counter()
            outcome = runtime.run_bot(bot_config(folder, url), "bench.yaml", say=lambda _: None)
            seconds = time.perf_counter() - started
        engine.dispose()
    result = outcome.result
    return {"seconds": seconds, "trades": len(result.trades), "candles": len(result.equity_times)}


def bench_paper(repeats: int) -> None:
    print(f"\n3. paper bot: run_bot, {SYMBOL} 1h sample replayed at full speed, sma_cross preset")
    runs: dict[str, list[float]] = {}
    trades = candles = 0
    for _ in range(repeats):
        for where in ("memory", "tmpfs", "disk"):
            figures = in_child("paper_run", where)
            runs.setdefault(where, []).append(figures["seconds"])
            trades, candles = figures["trades"], figures["candles"]
    memory = statistics.median(runs["memory"])
    for where, label in (("memory", "in-memory SQLite"), ("tmpfs", "SQLite file on tmpfs"), ("disk", "SQLite file")):
        seconds = statistics.median(runs[where])
        print(
            f"  {label:22s} {seconds:.2f} s, {candles / seconds:,.0f} candles/s (median of {repeats}, {trades} trades)"
            + ("" if where == "memory" else f": {100 * (seconds / memory - 1):+.1f} % vs in-memory")
        )


# --- plumbing ---------------------------------------------------------------------------------------


def in_child(function: str, *args: Any) -> Any:
    """`function(*args)` of this module in a fresh Python process; its JSON result."""
    code = textwrap.dedent(
        f"""
        import json, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        import repository
        print(json.dumps(repository.{function}(*json.loads(sys.argv[1]))))
        """
    )
    done = subprocess.run([sys.executable, "-c", code, json.dumps(args)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{function}{args} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def timed_process(arguments: list[str]) -> tuple[float, str]:
    """Run Python with `arguments`: the wall-clock time it was spawned at, and its output."""
    spawned = time.time()
    done = subprocess.run([sys.executable, *arguments], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"python {' '.join(arguments)[:60]}... failed:\n{done.stderr}")
    return spawned, done.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "sections", nargs="*", metavar="orders|recovery|restart|paper", help="what to measure (default: all)"
    )
    parser.add_argument("--orders", type=int, default=10_000, help="orders to record (default 10000)")
    parser.add_argument(
        "--history", type=int, default=400_000, help="one-minute candles of the restarted bot in section 2"
    )
    parser.add_argument(
        "--symbols", type=int, default=1, help="symbols the section 2 bot trades (--history is spread over them)"
    )
    parser.add_argument("--repeats", type=int, default=3, help="runs per measurement in sections 1, 2 and 3")
    parser.add_argument("--candles", type=int, default=100_000, help="history of the restarted bot in section 2b")
    options = parser.parse_args()
    sections = options.sections or ["orders", "recovery", "restart", "paper"]
    unknown = set(sections) - {"orders", "recovery", "restart", "paper"}
    if unknown:
        parser.error(f"unknown section {', '.join(sorted(unknown))}: choose from orders, recovery, restart, paper")
    print(f"tradeforge repository benchmark (Python {sys.version.split()[0]}, {os.cpu_count()} CPUs)")
    if "orders" in sections:
        bench_orders(options.orders, options.repeats)
    if "recovery" in sections:
        bench_recovery(options.history, options.repeats, options.symbols)
    if "restart" in sections:
        bench_real_restart(options.candles)
    if "paper" in sections:
        bench_paper(options.repeats)


if __name__ == "__main__":
    main()
