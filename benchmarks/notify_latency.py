"""How long `Notifier.notify()` holds up the trading thread when every channel is down.

    .venv/bin/python benchmarks/notify_latency.py [--calls 20000] [--pace-us 200]

Set-up: a SQLite outbox in a temporary directory; a Telegram channel pointed at a loopback port
nothing listens on (every request: connection refused) and an e-mail channel at another one, so
the delivery thread keeps failing, backing off, probing and storing rows while we measure. The
trading thread then calls `notify()` with pre-built alerts, once back to back and once paced (a
busy-wait of `--pace-us` between calls, like a bot emitting events while the delivery thread works).
The baseline is a bare `queue.Queue.put` of the same alerts, measured in the same run and
conditions. Each call is timed with perf_counter_ns; p50, p99, p99.9 and max are printed. The target
(issue 8) is p99 ≤ 100 µs. Figures only: nothing is asserted.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import queue
import socket
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from pydantic import SecretStr

from tradeforge.config.schema import DeliveryConfig, EmailConfig, TelegramConfig
from tradeforge.notifications.alerts import Alert
from tradeforge.notifications.channels.email import EmailChannel
from tradeforge.notifications.channels.telegram import TelegramChannel
from tradeforge.notifications.manager import Notifier
from tradeforge.notifications.outbox import Outbox
from tradeforge.notifications.render import Renderer
from tradeforge.persistence.database import make_engine
from tradeforge.persistence.migrate import upgrade
from tradeforge.persistence.repository import Repository


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def alerts(count: int, offset: int) -> list[Alert]:
    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    return [
        Alert(
            "order_filled",
            f"order:bench-{offset + i}:filled",
            start + dt.timedelta(minutes=offset + i),
            {"side": "buy", "amount": 0.1, "symbol": "BTC/USDT", "price": 42000.0, "client_order_id": f"b{i}"},
        )
        for i in range(count)
    ]


def timed(call: Callable[[Alert], None], items: list[Alert], pace_ns: int) -> list[int]:
    samples = []
    clock = time.perf_counter_ns
    for item in items:
        start = clock()
        call(item)
        samples.append(clock() - start)
        if pace_ns:
            until = clock() + pace_ns
            while clock() < until:
                pass
    return samples


def show(label: str, samples: list[int]) -> None:
    ordered = sorted(samples)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))] / 1000

    print(
        f"{label:<34} n={len(samples):>6}  p50 {pct(0.50):7.2f} µs  p99 {pct(0.99):7.2f} µs  "
        f"p99.9 {pct(0.999):8.2f} µs  max {ordered[-1] / 1000:9.1f} µs  mean {statistics.fmean(samples) / 1000:6.2f} µs"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--pace-us", type=int, default=200)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # the breaker's open/close warnings are expected here
    with tempfile.TemporaryDirectory() as folder:
        engine = make_engine(f"sqlite:///{Path(folder) / 'bench.sqlite'}")
        upgrade(engine)
        outbox = Outbox(engine, Repository.attach(engine, "bench", "", "paper").bot_id)
        telegram = TelegramChannel(
            TelegramConfig(chat_ids=[1, 2], api_base_url=f"http://127.0.0.1:{closed_port()}/bot", timeout_s=1),
            SecretStr("123:bench"),
        )
        email = EmailChannel(
            EmailConfig.model_validate(
                {
                    "host": "127.0.0.1",
                    "port": closed_port(),
                    "security": "none",
                    "from": "bot@x.test",
                    "to": ["a@x.test"],
                }
            ),
            None,
        )
        email.min_level = 0  # route every alert to e-mail too: more work for the delivery thread
        delivery = DeliveryConfig(backoff_initial_s=0.05, backoff_max_s=0.5, breaker_failures=3, breaker_reset_s=0.5)
        notifier = Notifier(outbox, [telegram, email], Renderer("bench"), delivery)
        notifier.start()
        time.sleep(1.0)  # channels started and failing
        baseline: queue.Queue[Alert] = queue.Queue()
        print(f"{args.calls} calls per row; all channels down; SQLite outbox in {folder}")
        for pace in (0, args.pace_us * 1000):
            label = "back to back" if not pace else f"paced {args.pace_us} µs"
            show(f"queue.Queue.put ({label})", timed(baseline.put, alerts(args.calls, 0), pace))
            show(
                f"Notifier.notify ({label})", timed(notifier.notify, alerts(args.calls, args.calls * (2 + pace)), pace)
            )
        notifier.wait_idle(2)
        counts = outbox.counts()
        notifier.stop(timeout=0.5)
        print(f"outbox after the run: {counts} (every alert stored, none delivered: the channels are down)")


if __name__ == "__main__":
    main()
