"""Live feed latency on loopback: from a candle closing on the (fake) Binance to Backtrader receiving it.

    .venv/bin/python benchmarks/binance_feed.py --candles 1000 --poll 0.001 --gap 0.1

The fake Binance (tests/fakes/binance.py) serves real BTC/USDT 1h candles from ../shared/data. Its
clock jumps to the next candle's close every `--gap` seconds; the moment of each jump is the close.
The feed (LiveFeed over ExchangeClient over real ccxt) polls every `--poll` seconds at most, with no
grace period, and a trivial strategy receives the candles. Reported: p50/p99/max of close -> received,
and the REST calls the feed made per candle. With an accelerated clock the feed cannot sleep until
the estimated close, so the call count here is the worst case (polling every `--poll`); in real time
the feed sleeps until the close and makes one time check plus one klines request per candle.

This measures the feed only. The issue's full figure (close -> order request at the exchange) needs
the live broker, which is not built yet.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

import backtrader as bt
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from fakes.binance import FakeBinance, candle_rows  # noqa: E402
from fakes.support import HOUR, KEYS, T0, fake_exchange_config  # noqa: E402

from tradeforge.feeds.candles import Candles  # noqa: E402
from tradeforge.feeds.ccxt import LiveFeed  # noqa: E402
from tradeforge.resilience.exchange import ExchangeClient  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "binance_BTC-USDT_1h.csv"


class Sink(bt.Strategy):
    params = (("count", 0), ("stop", None), ("seen", None))

    def next(self) -> None:
        self.p.seen.append(1)
        if len(self.p.seen) >= self.p.count:
            self.p.stop.set()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--candles", type=int, default=1000)
    parser.add_argument("--poll", type=float, default=0.001, help="longest sleep between polls (s)")
    parser.add_argument("--gap", type=float, default=0.1, help="wall time between two candle closes (s)")
    args = parser.parse_args()
    if not DATA.is_file():
        sys.exit(f"needs the real candles at {DATA}")

    fake = FakeBinance(start_ms=T0)
    fake.add_candles("BTC/USDT", "1h", candle_rows(DATA))
    fake.start()
    client = ExchangeClient.from_config(fake_exchange_config(fake), KEYS)
    nothing = np.empty(0)
    history = Candles("BTC/USDT", "1h", nothing.astype(np.int64), nothing, nothing, nothing, nothing, nothing)
    stop = threading.Event()
    feed = LiveFeed(client, history, on_closed=lambda c: None, poll_interval=args.poll, grace=0.0, stop=stop)
    feed.backfill(1)
    calls_before = client.calls
    closes: dict[int, float] = {}

    def drive() -> None:
        time.sleep(0.2)
        for i in range(args.candles):
            opened = T0 + i * HOUR
            fake.set_time(opened + HOUR)
            closes[opened] = time.monotonic()
            if stop.wait(args.gap):
                return

    seen: list[int] = []
    cerebro = bt.Cerebro(stdstats=False, preload=False, runonce=False)
    cerebro.adddata(feed)
    cerebro.addstrategy(Sink, count=args.candles + 1, stop=stop, seen=seen)
    driver = threading.Thread(target=drive, daemon=True)
    driver.start()
    cerebro.run()
    driver.join()
    fake.stop()

    latencies = sorted((feed.emitted_at[t] - closes[t]) * 1000 for t in closes if t in feed.emitted_at)
    calls = client.calls - calls_before
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    spacing = f"poll <= {args.poll * 1000:g} ms, a close every {args.gap * 1000:g} ms"
    print(f"candles received live: {len(latencies)} ({spacing}, ccxt rate limiter on: {client.exchange.rateLimit} ms)")
    print(f"close -> received: p50 {statistics.median(latencies):.1f} ms, p99 {p99:.1f} ms, max {latencies[-1]:.1f} ms")
    print(f"REST calls per candle: {calls / max(1, len(latencies)):.1f} (time checks and klines)")


if __name__ == "__main__":
    main()
