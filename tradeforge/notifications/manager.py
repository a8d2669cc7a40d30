"""The notifier: `notify()` on the trading thread only enqueues; an asyncio loop on its own thread
writes alerts to the outbox and delivers them, one ordered worker per destination.

Durability (why nothing is lost although `notify()` never touches the database): the trading
thread commits the state change (order intent, fill, cursor) *before* it calls `notify()`; the
alert is written to the outbox by the delivery thread a few milliseconds later. A SIGKILL inside
that window loses the queued alert, but not its cause: a restarted bot replays its history
(engine/journal.py) and so derives the same alerts again, with the same dedupe keys. Replayed
alerts older than the newest stored trading alert (the outbox high-water mark) are dropped in
`notify()` itself; newer ones are inserted ignoring duplicates: exactly the lost window comes
back, nothing is sent twice from history. A crash between sending and marking a row delivered
sends that row once more after the restart: at most twice, never zero times.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, cast

from tenacity import RetryCallState, wait_random_exponential

from tradeforge.config.schema import DeliveryConfig
from tradeforge.notifications.alerts import BATCHABLE, MAX_BATCH, Alert
from tradeforge.notifications.channels.base import Channel
from tradeforge.notifications.outbox import Outbox, OutboxRow
from tradeforge.notifications.render import Renderer
from tradeforge.resilience.breaker import CircuitBreaker
from tradeforge.resilience.errors import Fatal, RateLimited, Rejected, Temporary, TradeforgeError

log = logging.getLogger("tradeforge.notifications")
Clock = Callable[[], dt.datetime]


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def backoff_seconds(attempt: int, initial: float, maximum: float) -> float:
    """Exponential backoff with full jitter (tenacity's policy) for the `attempt`-th failure."""
    state = RetryCallState(cast(Any, None), None, (), {})
    state.attempt_number = max(attempt, 1)
    return float(wait_random_exponential(multiplier=initial, max=maximum)(state))


class Notifier:
    """Owns the delivery thread. Construct, `start()`, `notify()` from anywhere, `stop()` at the end."""

    def __init__(
        self,
        outbox: Outbox,
        channels: Sequence[Channel],
        renderer: Renderer,
        delivery: DeliveryConfig | None = None,
        *,
        clock: Clock = utc_now,
        warn: Callable[[str], None] | None = None,
        poll_interval: float = 0.05,
        background: Sequence[Callable[[Notifier], Any]] = (),
    ) -> None:
        self.outbox = outbox
        self.channels = list(channels)
        self.renderer = renderer
        self.delivery = delivery or DeliveryConfig()
        self.clock = clock
        self.warn = warn or log.warning
        self.poll_interval = poll_interval
        self.background = list(background)  # coroutine factories run on the loop (command polling, daily summary)
        self._queue: queue.SimpleQueue[Alert] = queue.SimpleQueue()
        self._enqueued = 0  # alerts notify() queued, and how many of them are in the outbox
        self._stored = 0
        # Replayed alerts older than this are dropped in notify(); None drops them all. The engine
        # refines it at start (engine/alerts.py: BotAlerts._mark_run).
        self.high_water = outbox.high_water()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: dict[str, asyncio.Event] = {}
        self._breakers = {
            c.name: CircuitBreaker(
                f"notifications.{c.name}",
                self.delivery.breaker_failures,
                self.delivery.breaker_reset_s,
                on_change=self._breaker_changed,
            )
            for c in self.channels
        }
        self._outages: set[str] = set()  # breakers open since their last close
        self._unstored: list[Alert] = []
        self._idle = threading.Event()
        self._drain_deadline = 0.0

    # --- the trading thread's side ----------------------------------------------------------------

    def notify(self, alert: Alert) -> None:
        """Enqueue only: no I/O, no lock held across anything slow. Safe from any thread."""
        if alert.replayed:
            high_water = self.high_water
            if high_water is None or alert.time < high_water:
                return  # history already in the outbox (or from before notifications were on)
        self._enqueued += 1
        self._queue.put(alert)

    def all_stored(self) -> bool:
        """Has every alert queued so far reached the outbox? Until it has, a SIGKILL would lose one,
        and only re-reading its history brings it back (so a restart must not skip that history)."""
        return self._stored == self._enqueued

    def _breaker_changed(self, name: str, state: str) -> None:
        """A channel's breaker opened or closed: an alert (other channels carry it while this one is down)."""
        if state == CircuitBreaker.HALF_OPEN or (state == CircuitBreaker.OPEN) == (name in self._outages):
            return  # a failed probe re-opening it is the same outage
        self._outages.symmetric_difference_update({name})
        now = self.clock()
        kind = "breaker_opened" if state == CircuitBreaker.OPEN else "breaker_closed"
        detail = (
            "deliveries paused after repeated failures; alerts wait in the outbox" if kind == "breaker_opened" else ""
        )
        channel = name.rsplit(".", 1)[-1]
        data = {"name": name, "detail": detail}
        self.notify(Alert(kind, f"breaker:{name}:{state}:{now.isoformat()}", now, data, skip_channel=channel))

    def start(self) -> None:
        self._thread = threading.Thread(target=self._thread_main, name="tradeforge-notifier", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Deliver what is pending for up to `timeout` seconds, then stop; the rest waits in the outbox."""
        if self._thread is None:
            return
        self._drain_deadline = time.monotonic() + timeout
        self._stopping.set()
        self._thread.join(timeout + 5)
        self._thread = None

    def wait_idle(self, timeout: float) -> bool:
        """True once every queued alert is stored and nothing deliverable is pending (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._queue.empty() and not self._unstored and self._idle.is_set() and not self._deliverable():
                return True
            time.sleep(0.02)
        return False

    def _deliverable(self) -> bool:
        enabled = {d for c in self.channels if c.enabled for d in c.destinations()}
        try:
            return bool(enabled & set(self.outbox.destinations()))
        except Exception:
            return True

    # --- the delivery thread --------------------------------------------------------------------

    def _thread_main(self) -> None:
        try:
            asyncio.run(self._main())
        except Exception:  # never let the notifier take anything else down
            log.exception("notifier thread crashed; undelivered alerts stay in the outbox")

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        touched = self._store()  # first: what was queued reaches the outbox before any network wait
        for channel in self.channels:
            try:
                await channel.start()
            except TradeforgeError as exc:
                channel.enabled = False
                self.warn(f"notifications.{channel.name} disabled: {exc} (alerts are kept in the outbox)")
        workers: dict[str, asyncio.Task[None]] = {}
        extras = [asyncio.create_task(factory(self)) for factory in self.background]
        try:
            try:
                touched |= set(self.outbox.destinations())  # left undelivered by an earlier run
            except Exception as exc:
                log.warning("cannot read the outbox: %s", exc)
            self._dispatch(workers, touched)
            while not self._stopping.is_set():
                self._dispatch(workers, self._store())
                await asyncio.sleep(self.poll_interval)
            self._dispatch(workers, self._store())
            while (
                time.monotonic() < self._drain_deadline
                and self._deliverable()
                and any(not w.done() for w in workers.values())
            ):
                await asyncio.sleep(self.poll_interval)
                self._dispatch(workers, self._store())
        finally:
            for task in [*workers.values(), *extras]:
                task.cancel()
            await asyncio.gather(*workers.values(), *extras, return_exceptions=True)
            for channel in self.channels:
                try:
                    await channel.close()
                except Exception:
                    log.exception("closing notifications.%s", channel.name)

    def _store(self) -> set[str]:
        """Write what is queued to the outbox in one transaction; returns the destinations touched."""
        while True:
            try:
                self._unstored.append(self._queue.get_nowait())
            except queue.Empty:
                break
        if not self._unstored:
            return set()
        entries = [
            (destination, alert)
            for alert in self._unstored
            for channel in self.channels
            if channel.accepts(alert) and channel.name != alert.skip_channel
            for destination in channel.destinations()
        ]
        try:
            self.outbox.add(entries, self.clock())
        except Exception as exc:  # database trouble: keep them and try again on the next tick
            log.warning("cannot store %d alerts in the outbox yet: %s", len(self._unstored), exc)
            return set()
        self._stored += len(self._unstored)
        self._unstored.clear()
        return {destination for destination, _ in entries}

    def _dispatch(self, workers: dict[str, asyncio.Task[None]], touched: set[str]) -> None:
        """Wake (or start) the worker of each touched destination of an enabled channel."""
        for channel in self.channels:
            if not channel.enabled:
                continue
            for destination in channel.destinations():
                if destination not in touched:
                    continue
                self._wake.setdefault(destination, asyncio.Event()).set()
                if destination not in workers or workers[destination].done():
                    workers[destination] = asyncio.create_task(self._deliver(destination, channel))
        self._idle.set()

    async def _deliver(self, destination: str, channel: Channel) -> None:
        """Deliver one destination's rows strictly in order; never raises."""
        wake = self._wake.setdefault(destination, asyncio.Event())
        breaker = self._breakers[channel.name]
        last_sent = 0.0
        window = dt.timedelta(seconds=self.delivery.batch_window_s)
        while True:
            try:
                rows = self.outbox.pending(destination)
            except Exception as exc:
                log.warning("cannot read the outbox for %s: %s", destination, exc)
                await asyncio.sleep(1.0)
                continue
            if not rows:
                wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), 1.0)
                continue
            now = self.clock()
            head = rows[0]
            if head.next_attempt_at is not None and head.next_attempt_at > now:
                await asyncio.sleep(min((head.next_attempt_at - now).total_seconds(), 0.5))
                continue
            group = _burst(rows, window)
            if head.kind in BATCHABLE and now - head.created_at < window and not self._stopping.is_set():
                await asyncio.sleep(min((head.created_at + window - now).total_seconds(), 0.5))
                continue  # let the burst gather, then send it as one message
            wait = max(breaker.wait_time(), channel.paused_until - time.monotonic())
            wait = max(wait, last_sent + channel.min_interval_s - time.monotonic())
            if wait > 0:
                await asyncio.sleep(min(wait, 0.5))
                continue
            await self._attempt(destination, channel, breaker, group)
            last_sent = time.monotonic()  # counted from the answer: the next request reaches the server later

    async def _attempt(
        self, destination: str, channel: Channel, breaker: CircuitBreaker, group: list[OutboxRow]
    ) -> None:
        ids = [row.id for row in group]
        head = group[0]
        message = self.renderer.render([(row.kind, row.data) for row in group])
        try:
            self.outbox.attempting(ids, self.clock())
            await channel.send(destination, message, [row.dedupe_key for row in group])
        except RateLimited as exc:
            channel.pause(exc.retry_after)  # flood control applies to the whole bot, every chat
            self._retry_later(group, destination, exc, exc.retry_after, may_give_up=False)
        except (Rejected, Fatal) as exc:
            log.error(
                "ALERT NOT DELIVERED to %s (%s, %d alert(s)): %s — dead-lettered, no retry; "
                "fix the cause, then `tradeforge notifications --retry`",
                destination,
                head.kind,
                len(group),
                exc,
            )
            self._safely(self.outbox.dead_letter, ids, f"{type(exc).__name__}: {exc}")
        except Temporary as exc:
            breaker.failure()
            delay = backoff_seconds(head.attempts + 1, self.delivery.backoff_initial_s, self.delivery.backoff_max_s)
            self._retry_later(group, destination, exc, delay)
        except Exception as exc:  # an unexpected error is treated as transient, and shown
            log.exception("unexpected error delivering to %s", destination)
            breaker.failure()
            delay = backoff_seconds(head.attempts + 1, self.delivery.backoff_initial_s, self.delivery.backoff_max_s)
            self._retry_later(group, destination, exc, delay)
        else:
            breaker.success()
            self._safely(self.outbox.delivered, ids, self.clock())

    def _retry_later(
        self, group: list[OutboxRow], destination: str, exc: Exception, delay: float, may_give_up: bool = True
    ) -> None:
        """Schedule the next attempt; dead-letter when out of attempts *and* time (a 429 never counts)."""
        now = self.clock()
        head = group[0]
        attempts = head.attempts + 1
        first = head.first_attempt_at or now
        ids = [row.id for row in group]
        error = f"{type(exc).__name__}: {exc}"
        out_of_time = (now - first).total_seconds() >= self.delivery.give_up_after_s
        if may_give_up and attempts >= self.delivery.max_attempts and out_of_time:
            log.error("alert to %s dead-lettered after %d attempts: %s", destination, attempts, error)
            self._safely(self.outbox.dead_letter, ids, error)
            return
        log.info("alert to %s failed (attempt %d, retry in %.1fs): %s", destination, attempts, delay, error)
        self._safely(self.outbox.postpone, ids, now + dt.timedelta(seconds=delay), error)

    @staticmethod
    def _safely(step: Callable[..., Any], *args: Any) -> None:
        try:
            step(*args)
        except Exception as exc:  # the row stays pending and is tried again: at most one extra send
            log.warning("outbox update failed: %s", exc)


def _burst(rows: list[OutboxRow], window: dt.timedelta) -> list[OutboxRow]:
    """The head row plus the following trading alerts (orders, trades, stops) created within the
    batch window after it, at most MAX_BATCH: a burst of similar alerts becomes one message."""
    head = rows[0]
    if head.kind not in BATCHABLE:
        return [head]
    group = [head]
    for row in rows[1:]:
        if (
            len(group) >= MAX_BATCH
            or row.kind not in BATCHABLE
            or row.created_at - head.created_at > window
            or row.next_attempt_at != head.next_attempt_at
        ):
            break
        group.append(row)
    return group
