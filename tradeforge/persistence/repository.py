"""The trade repository: everything a bot does, stored so that it can stop at any instant and
carry on. Each public method is one transaction, committed before it returns: an order's intent is
durable before anyone sends it (DESIGN: order safety protocol). Positions are derived from fills."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from tradeforge.persistence.models import (
    TERMINAL_ORDER_STATUSES,
    BotInstance,
    CandleCursor,
    EquitySnapshot,
    Event,
    Fill,
    Order,
    OrderStatus,
    Trade,
    TradeStatus,
)
from tradeforge.resilience.errors import Fatal, Problem, Rejected

Clock = Callable[[], dt.datetime]
MAX_CLIENT_ID = 32


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class OrderIntent:
    """What the strategy wants, before anything is sent."""

    trade_id: int | None  # None: this order opens a new trade
    symbol: str
    side: str  # buy | sell
    type: str  # market | limit | stop | stop_limit | trailing_stop
    role: str  # entry | exit | protective
    amount: Decimal
    price: Decimal | None = None
    stop_price: Decimal | None = None
    reason: str | None = None


@dataclass(frozen=True)
class RecordedIntent:
    client_order_id: str
    trade_id: int


@dataclass(frozen=True)
class FillReport:
    venue_trade_id: str
    amount: Decimal
    price: Decimal
    time: dt.datetime
    fee: Decimal = Decimal(0)
    fee_currency: str | None = None


class LockHeld(Fatal):
    """Another live process runs this bot against this database."""


class IntegrityProblem(Rejected):
    """A report that would make the stored state inconsistent (e.g. overfilling an order)."""


def client_id_prefix(bot_name: str) -> str:
    """'tf' + 6 hex digits of the bot name: orders of different bots on one account never collide."""
    return "tf" + hashlib.sha1(bot_name.encode()).hexdigest()[:6]


class Repository:
    """One bot's view of the database. Construct with `Repository.attach`."""

    def __init__(self, engine: Engine, bot_id: int, prefix: str, clock: Clock = utc_now) -> None:
        self.engine = engine
        self.bot_id = bot_id
        self.prefix = prefix
        self.clock = clock
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @classmethod
    def attach(cls, engine: Engine, name: str, config_hash: str, mode: str, clock: Clock = utc_now) -> Repository:
        """The bot's row, created on first use; later runs of the same name find it again."""
        sessions = sessionmaker(engine, expire_on_commit=False)
        with sessions.begin() as session:
            bot = session.scalar(select(BotInstance).where(BotInstance.name == name))
            if bot is None:
                bot = BotInstance(
                    name=name,
                    config_hash=config_hash,
                    mode=mode,
                    status="stopped",
                    client_id_prefix=client_id_prefix(name),
                )
                session.add(bot)
                session.flush()
            bot_id, prefix = bot.id, bot.client_id_prefix
        return cls(engine, bot_id, prefix, clock)

    @contextmanager
    def _tx(self) -> Iterator[Session]:
        with self._sessions.begin() as session:
            yield session

    def _event(self, session: Session, kind: str, message: str, data: dict[str, Any] | None = None) -> None:
        session.add(Event(bot_id=self.bot_id, time=self.clock(), kind=kind, message=message, data=data))

    # --- lifecycle and run lock ------------------------------------------------------------------

    def acquire_lock(self, stale_after: dt.timedelta = dt.timedelta(seconds=30)) -> str:
        """Claim the bot for this process. A lock whose owner process is gone (same host) or whose
        heartbeat is older than `stale_after` is taken over; a live one raises LockHeld."""
        owner = f"{socket.gethostname()}:{os.getpid()}:{os.urandom(4).hex()}"
        now = self.clock()
        with self._tx() as session:
            bot = session.get(BotInstance, self.bot_id, with_for_update=True)
            assert bot is not None
            if bot.lock_owner and not _lock_is_stale(bot.lock_owner, bot.lock_heartbeat, now, stale_after):
                raise LockHeld(
                    f"bot {bot.name!r} is already running (owner {bot.lock_owner}, last heartbeat "
                    f"{bot.lock_heartbeat:%Y-%m-%d %H:%M:%S} UTC); stop it first or wait {stale_after.seconds}s "
                    "after it died"
                )
            taken_over = bot.lock_owner
            bot.lock_owner, bot.lock_heartbeat = owner, now
            bot.status, bot.started_at = "running", now
            self._event(session, "bot_started", f"{bot.name} started", {"owner": owner, "took_over": taken_over})
        return owner

    def set_config(self, config_hash: str, mode: str) -> None:
        """Record the config a run uses (after the caller checked it may)."""
        with self._tx() as session:
            session.execute(
                update(BotInstance).where(BotInstance.id == self.bot_id).values(config_hash=config_hash, mode=mode)
            )

    def heartbeat(self, owner: str) -> None:
        with self._tx() as session:
            session.execute(
                update(BotInstance)
                .where(BotInstance.id == self.bot_id, BotInstance.lock_owner == owner)
                .values(lock_heartbeat=self.clock())
            )

    def release_lock(self, owner: str, status: str = "stopped") -> None:
        now = self.clock()
        with self._tx() as session:
            session.execute(
                update(BotInstance)
                .where(BotInstance.id == self.bot_id, BotInstance.lock_owner == owner)
                .values(lock_owner=None, lock_heartbeat=None, status=status, stopped_at=now)
            )
            self._event(session, "bot_stopped", f"bot stopped ({status})")

    def instance(self) -> BotInstance:
        with self._tx() as session:
            bot = session.get(BotInstance, self.bot_id)
            assert bot is not None
            return bot

    # --- trades and orders -----------------------------------------------------------------------

    def record_intent(self, intent: OrderIntent) -> RecordedIntent:
        """Mint the client order id (prefix-trade-sequence) and commit the intent, opening its trade
        in the same transaction when `intent.trade_id` is None. Nothing may be sent to a venue
        before this returns."""
        with self._tx() as session:
            if intent.trade_id is None:
                opens_long = (intent.side == "buy") == (intent.role == "entry")
                trade = Trade(
                    bot_id=self.bot_id, symbol=intent.symbol, side="long" if opens_long else "short", state={}
                )
                session.add(trade)
                session.flush()
                self._event(
                    session, "trade_opened", f"{trade.side} {trade.symbol} trade {trade.id}", {"trade_id": trade.id}
                )
            else:
                found = session.get(Trade, intent.trade_id)
                if found is None or found.bot_id != self.bot_id:
                    raise IntegrityProblem(f"order intent for trade {intent.trade_id}, which this bot does not have")
                trade = found
            sequence = len(trade.orders) + 1
            client_id = f"{self.prefix}-{trade.id}-{sequence}"
            if len(client_id) > MAX_CLIENT_ID:
                raise IntegrityProblem(f"client order id {client_id!r} is longer than {MAX_CLIENT_ID} characters")
            now = self.clock()
            session.add(
                Order(
                    bot_id=self.bot_id,
                    trade_id=trade.id,
                    client_order_id=client_id,
                    symbol=intent.symbol,
                    side=intent.side,
                    type=intent.type,
                    role=intent.role,
                    reason=intent.reason,
                    amount=intent.amount,
                    price=intent.price,
                    stop_price=intent.stop_price,
                    status=OrderStatus.PENDING_SUBMIT,
                    created_at=now,
                    updated_at=now,
                )
            )
            self._event(
                session,
                "order_intent",
                f"{intent.role} {intent.side} {intent.amount} {intent.symbol} {intent.type} as {client_id}",
                {"client_order_id": client_id, "trade_id": trade.id, "reason": intent.reason},
            )
            return RecordedIntent(client_id, trade.id)

    def mark_order(
        self,
        client_order_id: str,
        status: OrderStatus,
        *,
        venue_order_id: str | None = None,
        raw: dict[str, Any] | None = None,
    ) -> None:
        """Move an order forward to a new status. Old news (a status the order has already passed,
        as when a restarted bot replays its history) changes nothing; a terminal order never
        becomes a different terminal status."""
        with self._tx() as session:
            order = self._order(session, client_order_id)
            if order.status in TERMINAL_ORDER_STATUSES and status in TERMINAL_ORDER_STATUSES:
                if order.status == status:
                    return
                raise IntegrityProblem(
                    f"order {client_order_id} is {order.status.value}; it cannot become {status.value}"
                )
            if _RANK[status] <= _RANK[order.status]:
                return
            previous = order.status
            never_opened = order.trade is not None and not any(o.filled for o in order.trade.orders)
            gave_up = status in TERMINAL_ORDER_STATUSES and status != OrderStatus.FILLED
            if gave_up and order.role == "entry" and order.trade and never_opened:
                order.trade.status = TradeStatus.CLOSED  # nothing to manage any more
                order.trade.exit_reason = f"entry_{status.value}"
            order.status = status
            order.venue_order_id = venue_order_id or order.venue_order_id
            order.raw = raw if raw is not None else order.raw
            order.updated_at = self.clock()
            self._event(
                session,
                "order_status",
                f"{client_order_id}: {previous.value} -> {status.value}",
                {"client_order_id": client_order_id, "from": previous.value, "to": status.value},
            )

    def record_fill(self, client_order_id: str, fill: FillReport) -> bool:
        """Store an execution once (idempotent by venue trade id), update the order and re-derive
        its trade from all of the trade's fills. Returns False for a fill already recorded."""
        with self._tx() as session:
            order = self._order(session, client_order_id)
            exists = session.scalar(
                select(Fill.id).where(
                    Fill.bot_id == self.bot_id,
                    Fill.symbol == order.symbol,
                    Fill.venue_trade_id == fill.venue_trade_id,
                )
            )
            if exists is not None:
                return False
            filled = order.filled + fill.amount
            if filled > order.amount:
                raise IntegrityProblem(
                    f"fill {fill.venue_trade_id} of {fill.amount} would overfill order {client_order_id} "
                    f"({order.filled} of {order.amount} filled)"
                )
            session.add(
                Fill(
                    bot_id=self.bot_id,
                    order_id=order.id,
                    symbol=order.symbol,
                    venue_trade_id=fill.venue_trade_id,
                    amount=fill.amount,
                    price=fill.price,
                    fee=fill.fee,
                    fee_currency=fill.fee_currency,
                    time=fill.time,
                )
            )
            previous_value = (order.average_price or Decimal(0)) * order.filled
            order.average_price = (previous_value + fill.price * fill.amount) / filled
            order.filled = filled
            order.fees += fill.fee
            if order.status not in TERMINAL_ORDER_STATUSES or filled == order.amount:
                # A fill healed after a cancel keeps the order canceled (the venue said so) unless it
                # completes the order.
                order.status = OrderStatus.FILLED if filled == order.amount else OrderStatus.PARTIALLY_FILLED
            order.updated_at = self.clock()
            session.flush()
            if order.trade is not None:
                _derive_trade(order.trade)
            self._event(
                session,
                "fill",
                f"{client_order_id} filled {fill.amount} @ {fill.price}",
                {"client_order_id": client_order_id, "venue_trade_id": fill.venue_trade_id},
            )
        return True

    def update_trade_state(self, trade_id: int, state: dict[str, Any]) -> None:
        """What exits need to keep working after a restart: stop and trailing levels, entry bar."""
        with self._tx() as session:
            trade = session.get(Trade, trade_id)
            if trade is None or trade.bot_id != self.bot_id:
                raise IntegrityProblem(f"trade {trade_id} does not belong to this bot")
            trade.state = {**(trade.state or {}), **state}

    def _order(self, session: Session, client_order_id: str) -> Order:
        order = session.scalar(
            select(Order).where(Order.bot_id == self.bot_id, Order.client_order_id == client_order_id)
        )
        if order is None:
            raise IntegrityProblem(f"order {client_order_id} is not in this bot's database")
        return order

    # --- feed cursor, equity, events -------------------------------------------------------------

    def set_cursor(self, symbol: str, timeframe: str, open_time: dt.datetime) -> None:
        with self._tx() as session:
            cursor = session.scalar(
                select(CandleCursor).where(
                    CandleCursor.bot_id == self.bot_id,
                    CandleCursor.symbol == symbol,
                    CandleCursor.timeframe == timeframe,
                )
            )
            if cursor is None:
                session.add(
                    CandleCursor(bot_id=self.bot_id, symbol=symbol, timeframe=timeframe, last_open_time=open_time)
                )
            elif open_time > cursor.last_open_time:
                cursor.last_open_time = open_time

    def checkpoint(
        self,
        time: dt.datetime,
        candles: list[tuple[str, str, dt.datetime]],
        equity: Decimal,
        cash: Decimal,
    ) -> None:
        """After a candle is decided: where the feed resumes, and the equity, in one commit."""
        with self._tx() as session:
            known = {
                (c.symbol, c.timeframe): c
                for c in session.scalars(select(CandleCursor).where(CandleCursor.bot_id == self.bot_id))
            }
            for symbol, timeframe, open_time in candles:
                cursor = known.get((symbol, timeframe))
                if cursor is None:
                    session.add(
                        CandleCursor(bot_id=self.bot_id, symbol=symbol, timeframe=timeframe, last_open_time=open_time)
                    )
                elif open_time > cursor.last_open_time:
                    cursor.last_open_time = open_time
            exists = session.scalar(
                select(EquitySnapshot.id).where(EquitySnapshot.bot_id == self.bot_id, EquitySnapshot.time == time)
            )
            if exists is None:
                session.add(EquitySnapshot(bot_id=self.bot_id, time=time, equity=equity, cash=cash))

    def cursors(self) -> dict[tuple[str, str], dt.datetime]:
        with self._tx() as session:
            rows = session.scalars(select(CandleCursor).where(CandleCursor.bot_id == self.bot_id))
            return {(r.symbol, r.timeframe): r.last_open_time for r in rows}

    def snapshot_equity(self, time: dt.datetime, equity: Decimal, cash: Decimal) -> None:
        try:
            with self._tx() as session:
                session.add(EquitySnapshot(bot_id=self.bot_id, time=time, equity=equity, cash=cash))
        except IntegrityError:  # the same candle's snapshot again after a restart: keep the first
            return

    def log_event(self, kind: str, message: str, data: dict[str, Any] | None = None) -> None:
        with self._tx() as session:
            self._event(session, kind, message, data)

    # --- queries -----------------------------------------------------------------------------------

    def orders(self, *, statuses: frozenset[OrderStatus] | None = None) -> list[Order]:
        with self._tx() as session:
            query = select(Order).where(Order.bot_id == self.bot_id).order_by(Order.id)
            if statuses is not None:
                query = query.where(Order.status.in_(statuses))
            return list(session.scalars(query))

    def open_orders(self) -> list[Order]:
        return self.orders(statuses=frozenset(OrderStatus) - TERMINAL_ORDER_STATUSES)

    def fills(self) -> list[Fill]:
        with self._tx() as session:
            return list(session.scalars(select(Fill).where(Fill.bot_id == self.bot_id).order_by(Fill.id)))

    def trades(self, status: TradeStatus | None = None) -> list[Trade]:
        with self._tx() as session:
            query = select(Trade).where(Trade.bot_id == self.bot_id).order_by(Trade.id)
            if status is not None:
                query = query.where(Trade.status == status)
            return list(session.scalars(query))

    def trade_records(self, status: TradeStatus | None = None) -> list[dict[str, Any]]:
        """Trades in the result file's `trades` shape (floats, ISO times), oldest first."""
        records = []
        with self._tx() as session:
            query = select(Trade).where(Trade.bot_id == self.bot_id).order_by(Trade.id)
            if status is not None:
                query = query.where(Trade.status == status)
            for trade in session.scalars(query):
                entry_side = "buy" if trade.side == "long" else "sell"
                size = sum((f.amount for o in trade.orders if o.side == entry_side for f in o.fills), Decimal(0))
                if not size:
                    continue  # an entry intent that never filled is not a trade
                notional = (trade.entry_price or Decimal(0)) * size
                records.append(
                    {
                        "id": trade.id,
                        "symbol": trade.symbol,
                        "side": trade.side,
                        "entry_time": trade.opened_at.isoformat() if trade.opened_at else None,
                        "exit_time": trade.closed_at.isoformat() if trade.closed_at else None,
                        "size": float(size),
                        "entry_price": _float(trade.entry_price),
                        "exit_price": _float(trade.exit_price),
                        "pnl": _float(trade.pnl),
                        "pnl_pct": float(trade.pnl / notional) if trade.pnl is not None and notional else None,
                        "fees": float(trade.fees),
                        "exit_reason": trade.exit_reason if trade.status == TradeStatus.CLOSED else "open",
                    }
                )
        return records

    def equity(self) -> list[EquitySnapshot]:
        with self._tx() as session:
            query = select(EquitySnapshot).where(EquitySnapshot.bot_id == self.bot_id).order_by(EquitySnapshot.time)
            return list(session.scalars(query))

    def events(self, kind: str | None = None) -> list[Event]:
        with self._tx() as session:
            query = select(Event).where(Event.bot_id == self.bot_id).order_by(Event.id)
            if kind is not None:
                query = query.where(Event.kind == kind)
            return list(session.scalars(query))

    def integrity_problems(self) -> list[Problem]:
        """Rows that cannot all be true at once; a bot refuses to trade while any exist."""
        problems = []
        with self._tx() as session:
            for order in session.scalars(select(Order).where(Order.bot_id == self.bot_id)):
                where = f"order {order.client_order_id} (row {order.id})"
                if order.trade_id is None:
                    problems.append(Problem(where, "belongs to no trade"))
                total = sum((f.amount for f in order.fills), Decimal(0))
                if total > order.amount:
                    problems.append(Problem(where, f"fills total {total}, more than its amount {order.amount}"))
                if total != order.filled:
                    problems.append(Problem(where, f"records {order.filled} filled but its fills total {total}"))
            for trade in session.scalars(select(Trade).where(Trade.bot_id == self.bot_id)):
                if trade.status == TradeStatus.CLOSED and trade.amount != 0:
                    problems.append(Problem(f"trade {trade.id}", f"closed with {trade.amount} still open"))
        return problems


_RANK = {
    OrderStatus.PENDING_SUBMIT: 0,
    OrderStatus.UNKNOWN: 1,
    OrderStatus.OPEN: 2,
    OrderStatus.CANCEL_PENDING: 3,
    OrderStatus.PARTIALLY_FILLED: 3,
    **{status: 4 for status in TERMINAL_ORDER_STATUSES},
}


def _derive_trade(trade: Trade) -> None:
    """Position, prices, fees, PnL, times and status of a trade recomputed from all its fills (never
    incrementally), so fills healed late or out of order give the same trade as fills in order."""
    entry_side = "buy" if trade.side == "long" else "sell"
    entered = Decimal(0)
    entry_value = Decimal(0)
    exited = Decimal(0)
    exit_value = Decimal(0)
    fees = Decimal(0)
    closing_reason = None
    first_entry: dt.datetime | None = None
    last_fill: dt.datetime | None = None
    for order in trade.orders:
        for fill in order.fills:
            fees += fill.fee
            last_fill = fill.time if last_fill is None else max(last_fill, fill.time)
            if order.side == entry_side:
                entered += fill.amount
                entry_value += fill.amount * fill.price
                first_entry = fill.time if first_entry is None else min(first_entry, fill.time)
            else:
                exited += fill.amount
                exit_value += fill.amount * fill.price
                closing_reason = order.reason or order.role
    trade.amount = entered - exited
    trade.fees = fees
    trade.entry_price = entry_value / entered if entered else None
    trade.exit_price = exit_value / exited if exited else None
    if not entered:
        return
    trade.opened_at = first_entry
    if trade.amount == 0:
        direction = 1 if trade.side == "long" else -1
        trade.status = TradeStatus.CLOSED
        trade.closed_at = last_fill
        trade.exit_reason = closing_reason
        trade.pnl = (exit_value - entry_value) * direction - fees
    else:  # open, or reopened by a fill healed after its entry was given up
        trade.status = TradeStatus.OPEN
        trade.closed_at = trade.exit_reason = trade.pnl = None


def _float(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def _lock_is_stale(owner: str, heartbeat: dt.datetime | None, now: dt.datetime, stale_after: dt.timedelta) -> bool:
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host == socket.gethostname() and pid.isdigit() and not _process_alive(int(pid)):
        return True
    return heartbeat is None or now - heartbeat > stale_after


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
