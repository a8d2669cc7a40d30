"""Live trading latency on loopback: from a candle closing on the (fake) Binance to the order request
the strategy makes on it arriving at the exchange.

    .venv/bin/python benchmarks/binance_live.py --candles 1000 --poll 0.001 --gap 0.1 [--rate-limit-ms 10]

The fake Binance (tests/fakes/binance.py) serves real BTC/USDT 1h candles from ../shared/data; its
clock jumps to the next candle's close every `--gap` seconds, and the moment of each jump is the close.
The whole live path runs: LiveFeed -> Backtrader -> a strategy that buys on one candle and sells on
the next -> LiveBroker (sync, delivery of fills from the database) -> journal (intent committed to a
SQLite file) -> OrderGateway -> real ccxt -> the fake, which stamps each order's arrival.

Reported in the same run: close -> candle received by Backtrader (the feed alone, the baseline), and
close -> order request at the exchange, p50/p99/max, and the REST calls per candle (feed and broker).
The poll interval is part of both figures (at most `--poll`); the broker's share is their difference.
ccxt's rate limiter stays on: it spaces requests by `rateLimit` ms per unit of the endpoint's weight
(ccxt's 50 ms for Binance is the old 1200-weight-per-minute limit; Binance now allows 6000, 10 ms),
and on the path from a close to the order there are the feed's time check and klines requests
before the order request, so the limiter, not tradeforge, sets most of the latency.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import backtrader as bt
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from fakes.binance import FakeBinance, candle_rows  # noqa: E402
from fakes.support import HOUR, KEYS, T0, fake_exchange_config  # noqa: E402

from tradeforge.brokers.ccxt import OrderGateway  # noqa: E402
from tradeforge.brokers.live import LiveBroker  # noqa: E402
from tradeforge.engine.journal import RepositoryJournal  # noqa: E402
from tradeforge.feeds.candles import Candles  # noqa: E402
from tradeforge.feeds.ccxt import LiveFeed  # noqa: E402
from tradeforge.persistence.database import make_engine  # noqa: E402
from tradeforge.persistence.migrate import upgrade  # noqa: E402
from tradeforge.persistence.repository import Repository  # noqa: E402
from tradeforge.resilience.exchange import ExchangeClient  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "binance_BTC-USDT_1h.csv"


class FlipFlop(bt.Strategy):
    """Buys on a live candle, sells what it bought on the next one its buy has filled by: an order
    request on every candle that has no order in flight."""

    params = (("count", 0), ("stop", None), ("decided", None), ("decided_on", None))

    def __init__(self) -> None:
        self.pending: bt.Order | None = None

    def notify_order(self, order: bt.Order) -> None:
        if not order.alive():
            self.pending = None

    def next(self) -> None:
        self.p.decided.append(len(self))
        if len(self.p.decided) > self.p.count:
            self.p.stop.set()
        if len(self) == 1 or self.pending is not None:
            return  # the back-filled candle, or an order in flight
        held = self.getposition(self.data).size
        if held > 0:
            self.pending = self.sell(size=held, role="exit")
        else:
            self.pending = self.buy(size=0.001, role="entry")
        opened = round(bt.num2date(self.data.datetime[0]).replace(tzinfo=dt.UTC).timestamp() * 1000)
        self.p.decided_on[self.pending.info.client_order_id] = opened


def percentile(values: list[float], share: float) -> float:
    return values[min(len(values) - 1, int(len(values) * share))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--candles", type=int, default=1000)
    parser.add_argument("--poll", type=float, default=0.001, help="longest sleep between polls (s)")
    parser.add_argument("--gap", type=float, default=0.1, help="wall time between two candle closes (s)")
    parser.add_argument(
        "--rate-limit-ms",
        type=float,
        default=None,
        help="ccxt's rateLimit (ms per unit of request weight); default: ccxt's own for Binance (50)",
    )
    args = parser.parse_args()
    if not DATA.is_file():
        sys.exit(f"needs the real candles at {DATA}")

    fake = FakeBinance(start_ms=T0)
    fake.add_candles("BTC/USDT", "1h", candle_rows(DATA))
    fake.set_balance("USDT", "1000000000")
    fake.start()
    client = ExchangeClient.from_config(fake_exchange_config(fake), KEYS)
    if args.rate_limit_ms is not None:
        client.exchange.rateLimit = args.rate_limit_ms
    folder = Path(tempfile.mkdtemp(prefix="binance-live-"))
    engine = make_engine(f"sqlite:///{folder}/bench.sqlite")
    upgrade(engine)
    repository = Repository.attach(engine, "bench", "", "live")
    nothing = np.empty(0)
    history = Candles("BTC/USDT", "1h", nothing.astype(np.int64), nothing, nothing, nothing, nothing, nothing)
    stop = threading.Event()
    feed = LiveFeed(client, history, on_closed=lambda c: None, poll_interval=args.poll, grace=0.0, stop=stop)
    feed.backfill(1)
    gateway = OrderGateway(client, repository)
    gateway.rules("BTC/USDT")
    broker = LiveBroker(gateway, RepositoryJournal(repository), cash=1e9, timeframe_seconds=3600, stop=stop)
    calls_before = client.calls
    closes: dict[int, float] = {}  # open ms -> perf_counter at its close (the fake stamps arrivals so)
    closes_mono: dict[int, float] = {}  # the same moment on the monotonic clock (the feed stamps so)

    def drive() -> None:
        time.sleep(0.2)
        for i in range(args.candles + 1):
            opened = T0 + i * HOUR
            fake.set_time(opened + HOUR)
            closes[opened], closes_mono[opened] = time.perf_counter(), time.monotonic()
            if stop.wait(args.gap):
                return

    cerebro = bt.Cerebro(stdstats=False, preload=False, runonce=False)
    cerebro.broker = broker
    cerebro.adddata(feed, name="BTC/USDT")
    decided_on: dict[str, int] = {}  # client order id -> open ms of the candle it was decided on
    cerebro.addstrategy(FlipFlop, count=args.candles, stop=stop, decided=[], decided_on=decided_on)
    driver = threading.Thread(target=drive, daemon=True)
    driver.start()
    cerebro.run()
    stop.set()
    driver.join()
    fake.stop()

    # Each order by its client id, back to the candle it was decided on (the bot may lag behind the clock).
    arrived = {client_id: at for at, client_id in fake.arrivals}
    to_order = sorted((arrived[cid] - closes[t]) * 1000 for cid, t in decided_on.items() if cid in arrived)
    received = sorted((feed.emitted_at[t] - closes_mono[t]) * 1000 for t in closes_mono if t in feed.emitted_at)
    calls = client.calls - calls_before
    print(
        f"candles received live: {len(received)}, orders timed: {len(to_order)} (poll <= {args.poll * 1000:g} ms, "
        f"a close every {args.gap * 1000:g} ms, ccxt rateLimit {client.exchange.rateLimit} ms per weight unit)"
    )
    for name, values in (("close -> candle received", received), ("close -> order at exchange", to_order)):
        print(
            f"{name}: p50 {statistics.median(values):.1f} ms, p99 {percentile(values, 0.99):.1f} ms, "
            f"max {values[-1]:.1f} ms"
        )
    feed_paths = ("/api/v3/time", "/api/v3/klines")
    broker_calls = sum(1 for r in fake.requests if r.path not in feed_paths and r.market_time > T0)
    candles = max(1, len(received))
    print(
        f"REST calls per candle: {calls / candles:.1f} in all; broker {broker_calls / candles:.1f} "
        f"(order, trades, syncs); the feed's time checks poll every --poll with this accelerated clock"
    )
    print(f"orders: {len(repository.orders())}, fills recorded: {len(repository.fills())}")


if __name__ == "__main__":
    main()
