"""The trade repository: everything a bot does, stored so that it can stop at any instant and
carry on. Each public method is one transaction, committed before it returns: an order's intent is
durable before anyone sends it (DESIGN: order safety protocol). Positions are derived from fills.

What a running bot writes for every order and candle (record_intent, mark_order, record_fill,
checkpoint, heartbeat, log_event) are Core statements on the mapped tables, built once at import,
compiled once per database and run on the driver's cursor (prepared.py): the fewest round trips, no
unit of work, none of SQLAlchemy's per-execution work. The queries that hand rows to callers return
ORM objects as before."""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import gc
import hashlib
import os
import socket
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Context, Decimal
from typing import Any, NamedTuple, cast

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Float,
    Select,
    String,
    Table,
    and_,
    bindparam,
    func,
    insert,
    or_,
    select,
    type_coerce,
    update,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.dml import Insert
from sqlalchemy.sql.elements import ColumnElement

from tradeforge.persistence.models import (
    TERMINAL_ORDER_STATUSES,
    BotInstance,
    CandleCursor,
    EquitySnapshot,
    Event,
    Fill,
    Order,
    OrderStatus,
    Split,
    StrategySnapshot,
    Trade,
    TradeStatus,
)
from tradeforge.persistence.prepared import Cursor, Statements
from tradeforge.resilience.errors import Fatal, Problem, Rejected, Temporary

Clock = Callable[[], dt.datetime]
MAX_CLIENT_ID = 32
ADOPTED = "adopted"  # orders.reason of an order reconciliation found on the venue and took in
_ZERO = Decimal(0)


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
    order_id: int


class StoredOrder(NamedTuple):
    """What a restarted bot matches its replayed requests against, in creation order."""

    id: int
    client_order_id: str
    trade_id: int | None
    symbol: str
    side: str
    type: str
    role: str
    amount: Decimal
    status: OrderStatus


@dataclass(frozen=True)
class FillReport:
    venue_trade_id: str
    amount: Decimal
    price: Decimal
    time: dt.datetime
    fee: Decimal = Decimal(0)
    fee_currency: str | None = None


class _Kept(NamedTuple):
    """A thread's connection, kept between calls, with the driver's connection and a cursor on it."""

    connection: Connection
    driver: Any
    cursor: Cursor


class LockHeld(Fatal):
    """Another live process runs this bot against this database."""


class DatabaseUnavailable(Temporary):
    """A write that could not reach the database (connection lost, server down, file locked or
    full). Nothing of it was applied, except possibly a commit whose answer was lost."""


class IntegrityProblem(Rejected):
    """A report that would make the stored state inconsistent (e.g. overfilling an order)."""


def client_id_prefix(bot_name: str) -> str:
    """'tf' + 6 hex digits of the bot name: orders of different bots on one account never collide."""
    return "tf" + hashlib.sha1(bot_name.encode()).hexdigest()[:6]


# --- statements (Core, on the ORM's tables) ---------------------------------------------------------

_BOTS = cast(Table, BotInstance.__table__)
_CURSORS = cast(Table, CandleCursor.__table__)
_TRADES = cast(Table, Trade.__table__)
_ORDERS = cast(Table, Order.__table__)
_FILLS = cast(Table, Fill.__table__)
_EQUITY = cast(Table, EquitySnapshot.__table__)
_EVENTS = cast(Table, Event.__table__)

_INSERT_EVENT = insert(_EVENTS)
_EVENT_COLUMNS = ("bot_id", "time", "kind", "message", "data")
# record_intent's events in one statement: a new trade's and its first order's.
_INSERT_TWO_EVENTS = insert(_EVENTS).values(
    [{name: bindparam(f"{name}_{row}", type_=_EVENTS.c[name].type) for name in _EVENT_COLUMNS} for row in (0, 1)]
)
_INSERT_TRADE = insert(_TRADES).returning(_TRADES.c.id)
_INSERT_ORDER = insert(_ORDERS).returning(_ORDERS.c.id)
_INSERT_EQUITY = insert(_EQUITY)
# UPDATEs set the columns named in the parameters; the row is picked by a `row_id` parameter.
_UPDATE_BOT = update(_BOTS).where(_BOTS.c.id == bindparam("row_id"))
_UPDATE_OWNED_BOT = update(_BOTS).where(_BOTS.c.id == bindparam("row_id"), _BOTS.c.lock_owner == bindparam("owner"))
_UPDATE_TRADE = update(_TRADES).where(_TRADES.c.id == bindparam("row_id"))
_UPDATE_ORDER = update(_ORDERS).where(_ORDERS.c.id == bindparam("row_id"))

_THIS_ORDER = (_ORDERS.c.bot_id == bindparam("bot_id"), _ORDERS.c.client_order_id == bindparam("client_order_id"))
_ORDER_AND_TRADE = _ORDERS.outerjoin(_TRADES, _TRADES.c.id == _ORDERS.c.trade_id)

# record_intent on an existing trade: whose it is and how many orders it has, in one round trip.
_TRADE_FOR_INTENT = select(
    _TRADES.c.bot_id,
    select(func.count()).select_from(_ORDERS).where(_ORDERS.c.trade_id == _TRADES.c.id).scalar_subquery(),
).where(_TRADES.c.id == bindparam("trade_id"))

# mark_order: the order and whether its trade exists (`trades.id` is NULL when it does not).
_ORDER_FOR_STATUS = (
    select(_ORDERS.c.id, _ORDERS.c.status, _ORDERS.c.role, _TRADES.c.id, _ORDERS.c.venue_order_id, _ORDERS.c.raw)
    .select_from(_ORDER_AND_TRADE)
    .where(*_THIS_ORDER)
)
_TRADE_ORDERS_FILLED = select(_ORDERS.c.filled).where(_ORDERS.c.trade_id == bindparam("trade_id"))

# record_fill: the order, its trade's side, every fill of the trade so far (one row per fill, in
# order-then-fill order; one row with NULL fill columns when there is none) and the id of the fill
# being reported if this bot already has it, in one round trip.
_SIBLING = _ORDERS.alias("sibling")
_REPORTED_FILL = _FILLS.alias("reported")
_ORDER_FOR_FILL = (
    select(
        _ORDERS.c.id,
        _ORDERS.c.symbol,
        _ORDERS.c.status,
        _ORDERS.c.amount,
        _ORDERS.c.filled,
        _ORDERS.c.average_price,
        _ORDERS.c.fees,
        _TRADES.c.id,
        _TRADES.c.side,
        _SIBLING.c.id,
        _SIBLING.c.side,
        _SIBLING.c.reason,
        _SIBLING.c.role,
        _FILLS.c.id,
        _FILLS.c.amount,
        _FILLS.c.price,
        _FILLS.c.fee,
        _FILLS.c.time,
        select(_REPORTED_FILL.c.id)
        .where(
            _REPORTED_FILL.c.bot_id == _ORDERS.c.bot_id,
            _REPORTED_FILL.c.symbol == _ORDERS.c.symbol,
            _REPORTED_FILL.c.venue_trade_id == bindparam("venue_trade_id"),
        )
        .scalar_subquery(),
    )
    .select_from(
        _ORDER_AND_TRADE.outerjoin(_SIBLING, _SIBLING.c.trade_id == _TRADES.c.id).outerjoin(
            _FILLS, _FILLS.c.order_id == _SIBLING.c.id
        )
    )
    .where(*_THIS_ORDER)
    .order_by(_SIBLING.c.id, _FILLS.c.id)
)
_THIS_CURSOR = (  # parameter names unlike the columns': UPDATE … SET takes column-named parameters
    _CURSORS.c.bot_id == bindparam("cursor_bot"),
    _CURSORS.c.symbol == bindparam("cursor_symbol"),
    _CURSORS.c.timeframe == bindparam("cursor_timeframe"),
)
_ADVANCE_CURSOR = (
    update(_CURSORS)
    .where(*_THIS_CURSOR, _CURSORS.c.last_open_time < bindparam("open_time"))
    .values(last_open_time=bindparam("open_time"))
)
_CURSOR_EXISTS = select(_CURSORS.c.id).where(*_THIS_CURSOR)
_SNAPSHOTS = cast(Table, StrategySnapshot.__table__)
_UPDATE_SNAPSHOT = update(_SNAPSHOTS).where(_SNAPSHOTS.c.bot_id == bindparam("row_id"))
_INSERT_SNAPSHOT = insert(_SNAPSHOTS)
_INSERT_CURSOR = insert(_CURSORS)
_EQUITY_EXISTS = select(_EQUITY.c.id).where(
    _EQUITY.c.bot_id == bindparam("bot_id"), _EQUITY.c.time == bindparam("time")
)


# integrity_problems reads a whole history: money as stored (Decimal() of it is what the column type
# would do, at a tenth of the cost per value), everything else as is; the arithmetic is Python's.
def _stored(column: ColumnElement[Any]) -> Any:
    return type_coerce(column, String())


def _nonzero(money: Column[Any]) -> Any:
    """Exact on both backends: a NUMERIC(36, 18) or decimal text value is 0 exactly when its double is."""
    return sql_cast(money, Float) != 0


# integrity_problems: the orders that are not plainly consistent, found by the database. Plainly
# consistent: in a trade, and either without fills with nothing filled, or with exactly one fill equal
# (as stored) to both its filled and its amount. "Equal as stored" is exact (NUMERIC on PostgreSQL,
# the same decimal text on SQLite); anything else is checked exactly in Python.
_FILL_COUNT = func.count(_FILLS.c.id)
_SUSPECT_ORDERS = (
    select(
        _ORDERS.c.id,
        _ORDERS.c.client_order_id,
        _ORDERS.c.trade_id,
        _stored(_ORDERS.c.amount),
        _stored(_ORDERS.c.filled),
        _stored(_ORDERS.c.status),
    )
    .select_from(_ORDERS.outerjoin(_FILLS, _FILLS.c.order_id == _ORDERS.c.id))
    .where(_ORDERS.c.bot_id == bindparam("bot_id"))
    .group_by(_ORDERS.c.id)
    .having(
        or_(
            _ORDERS.c.trade_id.is_(None),
            _FILL_COUNT > 1,
            and_(_FILL_COUNT == 0, _nonzero(_ORDERS.c.filled)),
            and_(
                _FILL_COUNT == 1,
                or_(func.min(_FILLS.c.amount) != _ORDERS.c.filled, _ORDERS.c.filled != _ORDERS.c.amount),
            ),
        )
    )
)
_STORED_ORDERS = (
    select(
        _ORDERS.c.id,
        _ORDERS.c.client_order_id,
        _ORDERS.c.trade_id,
        _ORDERS.c.symbol,
        _ORDERS.c.side,
        _ORDERS.c.type,
        _ORDERS.c.role,
        _stored(func.coalesce(_ORDERS.c.intent_amount, _ORDERS.c.amount)),  # as asked for, before any split
        _ORDERS.c.status,
    )
    .where(
        _ORDERS.c.bot_id == bindparam("bot_id"),
        _ORDERS.c.id > bindparam("after_id"),
        or_(_ORDERS.c.reason.is_(None), _ORDERS.c.reason != ADOPTED),
    )
    .order_by(_ORDERS.c.id)
)
_FILLS_OF_ORDERS = (
    select(_FILLS.c.order_id, _stored(_FILLS.c.amount), _FILLS.c.time)
    .where(_FILLS.c.order_id.in_(bindparam("order_ids", expanding=True)))
    .order_by(_FILLS.c.id)
)
_CLOSED_TRADES_NOT_FLAT = (
    select(_TRADES.c.id, _stored(_TRADES.c.amount))
    .where(
        _TRADES.c.bot_id == bindparam("bot_id"),
        _TRADES.c.status == TradeStatus.CLOSED,
        _nonzero(_TRADES.c.amount),
    )
    .order_by(_TRADES.c.id)
)
_SPLITS = cast(Table, Split.__table__)
_BOT_SPLITS = (
    select(_SPLITS.c.trade_id, _SPLITS.c.time, _SPLITS.c.ratio, _SPLITS.c.position_before, _SPLITS.c.position_after)
    .where(_SPLITS.c.bot_id == bindparam("bot_id"), _SPLITS.c.trade_id.is_not(None))
    .order_by(_SPLITS.c.time, _SPLITS.c.id)
)
# integrity_problems: each split's time, ratio and the orders it converted, oldest first.
_BOT_SPLIT_CONVERSIONS = (
    select(_SPLITS.c.time, _SPLITS.c.ratio, _SPLITS.c.converted_orders)
    .where(_SPLITS.c.bot_id == bindparam("bot_id"))
    .order_by(_SPLITS.c.time, _SPLITS.c.id)
)
# trade_records: every fill of the bot's trades with its order's side, in order-then-fill order.
_BOT_TRADE_FILLS = (
    select(_ORDERS.c.trade_id, _ORDERS.c.side, _FILLS.c.amount, _FILLS.c.time)
    .select_from(_ORDERS.join(_FILLS, _FILLS.c.order_id == _ORDERS.c.id))
    .where(_ORDERS.c.trade_id.in_(select(_TRADES.c.id).where(_TRADES.c.bot_id == bindparam("bot_id"))))
    .order_by(_ORDERS.c.id, _FILLS.c.id)
)


@dataclass(frozen=True)
class _Upserts:
    """INSERT … ON CONFLICT DO NOTHING as the dialect spells it; None where it has none (check, then insert)."""

    fill: Insert  # RETURNING the new fill's id; ON CONFLICT: no row when (bot, symbol, venue trade id) is stored
    cursor: Insert | None
    equity: Insert | None


def _ignoring_duplicates(dialect: str, table: Table, *key: Column[Any]) -> Insert | None:
    if dialect == "sqlite":
        from sqlalchemy.dialects import sqlite

        return sqlite.insert(table).on_conflict_do_nothing(index_elements=key)
    if dialect == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table).on_conflict_do_nothing(index_elements=key)
    return None


@functools.cache  # one set per dialect, shared by every repository: each statement compiles once
def _upserts(dialect: str) -> _Upserts:
    fill = _ignoring_duplicates(dialect, _FILLS, _FILLS.c.bot_id, _FILLS.c.symbol, _FILLS.c.venue_trade_id)
    return _Upserts(  # a plain INSERT and Nones on a database without INSERT … ON CONFLICT
        (fill if fill is not None else insert(_FILLS)).returning(_FILLS.c.id),
        _ignoring_duplicates(dialect, _CURSORS, _CURSORS.c.bot_id, _CURSORS.c.symbol, _CURSORS.c.timeframe),
        _ignoring_duplicates(dialect, _EQUITY, _EQUITY.c.bot_id, _EQUITY.c.time),
    )


class Repository:
    """One bot's view of the database. Construct with `Repository.attach`."""

    def __init__(self, engine: Engine, bot_id: int, prefix: str, clock: Clock = utc_now) -> None:
        self.engine = engine
        self.bot_id = bot_id
        self.prefix = prefix
        self.clock = clock
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._upserts = _upserts(engine.dialect.name)
        self._statements = Statements(engine.dialect)
        self._held = threading.local()  # this thread's _Kept connection
        # Each trade's splits, read once and dropped when a split is recorded (the next reader reads them
        # again); a read only fills the cache if no split was recorded while it ran (the control thread lists
        # trades while the bot's thread records a split).
        self._trade_splits: dict[int, list[SplitBasis]] | None = None
        self._splits_dropped = 0  # how many times the cache was dropped
        self._splits_lock = threading.Lock()

    @classmethod
    def attach(cls, engine: Engine, name: str, config_hash: str, mode: str, clock: Clock = utc_now) -> Repository:
        """The bot's row, created on first use; later runs of the same name find it again."""
        sessions = sessionmaker(engine, expire_on_commit=False)
        for attempt in range(2):
            try:
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
                    return cls(engine, bot.id, bot.client_id_prefix, clock)
            except IntegrityError:
                if attempt:  # another process created the row first: the second look finds it
                    raise
        raise AssertionError("unreachable")

    def _kept(self) -> _Kept:
        """This thread's own connection, kept between calls: the per-order and per-candle writes
        skip the pool's checkout, reset and check-in (~15 % of their cost)."""
        kept: _Kept | None = getattr(self._held, "kept", None)
        if kept is None or kept.connection.closed or kept.connection.invalidated:
            connection = self.engine.connect()
            driver = connection.connection.driver_connection
            assert driver is not None
            kept = self._held.kept = _Kept(connection, driver, Cursor(driver.cursor(), self._statements))
        return kept

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        """A SQLAlchemy transaction on this thread's kept connection."""
        try:
            connection = self._kept().connection
            with connection.begin():
                yield connection
        except (OperationalError, InterfaceError) as exc:
            self.close()  # a fresh connection next time
            raise self._unavailable(exc) from exc

    @contextmanager
    def _writing(self) -> Iterator[Cursor]:
        """A transaction on this thread's kept connection whose statements run on the driver's
        cursor (prepared.py): committed when the block ends, rolled back if it raises."""
        try:
            kept = self._kept()
            try:
                yield kept.cursor
            except BaseException:
                try:
                    kept.driver.rollback()
                except Exception:
                    with contextlib.suppress(Exception):
                        kept.connection.invalidate()  # whatever it holds must never be committed
                raise
            try:
                kept.driver.commit()
            except self.engine.dialect.loaded_dbapi.Error as exc:
                raise DBAPIError.instance(None, None, exc, self.engine.dialect.loaded_dbapi.Error) from exc
        except (OperationalError, InterfaceError) as exc:
            self.close()  # a fresh connection next time
            raise self._unavailable(exc) from exc

    def _unavailable(self, exc: DBAPIError) -> DatabaseUnavailable:
        where = self.engine.url.render_as_string(hide_password=True)
        reason = str(exc.orig or exc).strip().splitlines()[0]
        return DatabaseUnavailable(f"database {where} is unavailable: {reason}")

    def close(self) -> None:
        """Give this thread's kept connection back to the pool (a broken one is discarded)."""
        kept: _Kept | None = getattr(self._held, "kept", None)
        self._held.kept = None
        if kept is not None:
            with contextlib.suppress(Exception):
                kept.cursor.cursor.close()
            with contextlib.suppress(Exception):
                kept.connection.close()

    @contextmanager
    def _tx(self) -> Iterator[Session]:
        with self._sessions.begin() as session:
            yield session

    def _event_row(self, kind: str, message: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
        return {"bot_id": self.bot_id, "time": self.clock(), "kind": kind, "message": message, "data": data}

    def _event(self, cursor: Cursor, kind: str, message: str, data: dict[str, Any] | None = None) -> None:
        cursor.write(_INSERT_EVENT, self._event_row(kind, message, data))

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
            session.add(
                Event(
                    bot_id=self.bot_id,
                    time=self.clock(),
                    kind="bot_started",
                    message=f"{bot.name} started",
                    data={"owner": owner, "took_over": taken_over},
                )
            )
        return owner

    def set_config(self, config_hash: str, mode: str) -> None:
        """Record the config a run uses (after the caller checked it may)."""
        with self.engine.begin() as connection:
            connection.execute(_UPDATE_BOT, {"row_id": self.bot_id, "config_hash": config_hash, "mode": mode})

    def heartbeat(self, owner: str) -> None:
        with self._writing() as cursor:
            cursor.write(_UPDATE_OWNED_BOT, {"row_id": self.bot_id, "owner": owner, "lock_heartbeat": self.clock()})

    def release_lock(self, owner: str, status: str = "stopped") -> None:
        now = self.clock()
        with self._writing() as cursor:
            cursor.write(
                _UPDATE_OWNED_BOT,
                {
                    "row_id": self.bot_id,
                    "owner": owner,
                    "lock_owner": None,
                    "lock_heartbeat": None,
                    "status": status,
                    "stopped_at": now,
                },
            )
            self._event(cursor, "bot_stopped", f"bot stopped ({status})")

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
        with self._writing() as cursor:
            events = []
            if intent.trade_id is None:
                opens_long = (intent.side == "buy") == (intent.role == "entry")
                side = "long" if opens_long else "short"
                new_trade = {
                    "bot_id": self.bot_id,
                    "symbol": intent.symbol,
                    "side": side,
                    "status": TradeStatus.OPEN,
                    "amount": _ZERO,
                    "fees": _ZERO,
                    "state": {},
                }
                ((trade_id,),) = cursor.write(_INSERT_TRADE, new_trade)
                events.append(
                    self._event_row("trade_opened", f"{side} {intent.symbol} trade {trade_id}", {"trade_id": trade_id})
                )
                sequence = 1
            else:
                found = cursor.read(_TRADE_FOR_INTENT, {"trade_id": intent.trade_id})
                if not found or found[0][0] != self.bot_id:
                    raise IntegrityProblem(f"order intent for trade {intent.trade_id}, which this bot does not have")
                trade_id, sequence = intent.trade_id, found[0][1] + 1
            client_id = f"{self.prefix}-{trade_id}-{sequence}"
            if len(client_id) > MAX_CLIENT_ID:
                raise IntegrityProblem(f"client order id {client_id!r} is longer than {MAX_CLIENT_ID} characters")
            now = self.clock()
            ((order_id,),) = cursor.write(
                _INSERT_ORDER,
                {
                    "bot_id": self.bot_id,
                    "trade_id": trade_id,
                    "client_order_id": client_id,
                    "symbol": intent.symbol,
                    "side": intent.side,
                    "type": intent.type,
                    "role": intent.role,
                    "reason": intent.reason,
                    "amount": intent.amount,
                    "price": intent.price,
                    "stop_price": intent.stop_price,
                    "status": OrderStatus.PENDING_SUBMIT,
                    "filled": _ZERO,
                    "fees": _ZERO,
                    "created_at": now,
                    "updated_at": now,
                },
            )
            events.append(
                self._event_row(
                    "order_intent",
                    f"{intent.role} {intent.side} {intent.amount} {intent.symbol} {intent.type} as {client_id}",
                    {"client_order_id": client_id, "trade_id": trade_id, "reason": intent.reason},
                )
            )
            if len(events) == 2:
                cursor.write(
                    _INSERT_TWO_EVENTS,
                    {f"{key}_{row}": value for row, event in enumerate(events) for key, value in event.items()},
                )
            else:
                cursor.write(_INSERT_EVENT, events[0])
            return RecordedIntent(client_id, trade_id, order_id)

    def mark_order(
        self,
        client_order_id: str,
        status: OrderStatus,
        *,
        venue_order_id: str | None = None,
        raw: dict[str, Any] | None = None,
    ) -> None:
        """Move an order to a new status (see _LIVE_MOVES). Old news (a status the order has
        already passed, as when a restarted bot replays its history) changes nothing; a terminal
        order never becomes a different terminal status."""
        with self._writing() as cursor:
            rows = cursor.read(_ORDER_FOR_STATUS, {"bot_id": self.bot_id, "client_order_id": client_order_id})
            if not rows:
                raise IntegrityProblem(f"order {client_order_id} is not in this bot's database")
            order_id, previous, role, trade_id, stored_venue_id, stored_raw = rows[0]
            if previous in TERMINAL_ORDER_STATUSES and status in TERMINAL_ORDER_STATUSES:
                if previous == status:
                    return
                raise IntegrityProblem(f"order {client_order_id} is {previous.value}; it cannot become {status.value}")
            if status not in _MOVES.get(previous, frozenset()):
                return
            gave_up = status in TERMINAL_ORDER_STATUSES and status != OrderStatus.FILLED
            if gave_up and role == "entry" and trade_id is not None:
                filled = cursor.read(_TRADE_ORDERS_FILLED, {"trade_id": trade_id})
                if not any(amount for (amount,) in filled):  # the trade never opened: nothing to manage any more
                    cursor.write(
                        _UPDATE_TRADE,
                        {"row_id": trade_id, "status": TradeStatus.CLOSED, "exit_reason": f"entry_{status.value}"},
                    )
            changes: dict[str, Any] = {"row_id": order_id, "status": status}
            if venue_order_id and venue_order_id != stored_venue_id:
                changes["venue_order_id"] = venue_order_id
            if raw is not None and raw != stored_raw:
                changes["raw"] = raw
            changes["updated_at"] = self.clock()
            cursor.write(_UPDATE_ORDER, changes)
            self._event(
                cursor,
                "order_status",
                f"{client_order_id}: {previous.value} -> {status.value}",
                {"client_order_id": client_order_id, "from": previous.value, "to": status.value},
            )

    def record_fill(self, client_order_id: str, fill: FillReport) -> bool:
        """Store an execution once (idempotent by venue trade id), update the order and re-derive
        its trade from all of the trade's fills. Returns False for a fill already recorded."""
        with self._writing() as cursor:
            splits = self._trade_splits
            if splits is None:  # read in this transaction: a fill is one commit
                dropped = self._splits_dropped
                splits = self._keep_splits(dropped, _by_trade(cursor.read(_BOT_SPLITS, {"bot_id": self.bot_id})))
            rows = cursor.read(
                _ORDER_FOR_FILL,
                {"bot_id": self.bot_id, "client_order_id": client_order_id, "venue_trade_id": fill.venue_trade_id},
            )
            if not rows:
                raise IntegrityProblem(f"order {client_order_id} is not in this bot's database")
            order_id, symbol, status, amount, filled, average_price, fees, trade_id, trade_side = rows[0][:9]
            if rows[0][18] is not None:  # this bot has it already (a restart replays every fill)
                return False
            order = (client_order_id, status, amount, filled, average_price, fees)
            try:
                fill_id = self._insert_fill(cursor, order_id, symbol, fill)
            except Exception:
                # The ORM checked for an overfill and read the clock before it wrote anything: a fill
                # the database refuses (a naive time, say) still fails after those, as it did.
                _filled_order(*order, fill, self.clock)
                raise
            if fill_id is None:  # stored by another writer since the look above
                return False
            # An overfill raises here, which rolls the fill's insert back.
            cursor.write(_UPDATE_ORDER, {"row_id": order_id, **_filled_order(*order, fill, self.clock)})
            if trade_id is not None:
                # The stored fills and the new one (as reported: PostgreSQL's NUMERIC(36, 18) rounds), in
                # order-then-fill order.
                stored = [(row[9], row[13], *row[10:13], *row[14:18]) for row in rows if row[13] is not None]
                this_order = next(row for row in rows if row[9] == order_id)
                added = (order_id, fill_id, *this_order[10:13], fill.amount, fill.price, fill.fee, fill.time)
                fills = [entry[2:] for entry in sorted([*stored, added], key=lambda entry: (entry[0], entry[1]))]
                derived = _derive_trade(trade_side, fills, splits.get(trade_id, ()))
                cursor.write(_UPDATE_TRADE, {"row_id": trade_id, **derived})
            self._event(
                cursor,
                "fill",
                f"{client_order_id} filled {fill.amount} @ {fill.price}",
                {"client_order_id": client_order_id, "venue_trade_id": fill.venue_trade_id},
            )
        return True

    def _insert_fill(self, cursor: Cursor, order_id: int, symbol: str, fill: FillReport) -> int | None:
        """The new fill's row id, or None (and nothing written) when this bot already has it. The
        caller looked first (PostgreSQL draws a sequence value even for a row that ON CONFLICT then
        drops, and a restart replays every fill: looking first keeps replays from wearing out the
        32-bit ids); ON CONFLICT still, as another writer may have stored it since."""
        inserted = cursor.write(
            self._upserts.fill,
            {
                "bot_id": self.bot_id,
                "order_id": order_id,
                "symbol": symbol,
                "venue_trade_id": fill.venue_trade_id,
                "amount": fill.amount,
                "price": fill.price,
                "fee": fill.fee,
                "fee_currency": fill.fee_currency,
                "time": fill.time,
            },
        )
        return int(inserted[0][0]) if inserted else None

    def record_split(
        self,
        symbol: str,
        time: dt.datetime,
        ratio: Decimal,
        position_after: Decimal,
        converted_orders: dict[str, Decimal],
    ) -> bool:
        """A stock split applied at the candle opened at `time`: the split row and a `split` event, the
        resting orders' amounts as the broker converted them (`converted_orders`: client order id -> new
        amount; the amount first asked for is kept in `intent_amount`, their prices divided by `ratio`, what of
        them had filled converted by `filled_after_split`, as the paper broker converts what it journalled),
        and the open trade re-derived on the new basis. Idempotent: a restart replaying the split changes
        nothing (False). `ratio` comes from `split_ratio` (at most 18 decimals, as stored)."""
        if ratio != ratio.quantize(_PRICE_SCALE, context=_WIDE):
            raise ValueError(f"split ratio {ratio} has more than 18 decimals: pass it through split_ratio")
        known = self._splits_by_trade()
        with self._tx() as session:
            stored = session.scalar(select(Split).where(*_this_split(self.bot_id, symbol, time)))
            if stored is not None:
                if (stored.ratio, stored.position_after) != (ratio, position_after):
                    raise IntegrityProblem(
                        f"the {symbol} split at {time:%Y-%m-%d %H:%M} was recorded as {stored.ratio.normalize():f}:1 "
                        f"with a position of {stored.position_after.normalize():f} after it; replayed, it is "
                        f"{ratio.normalize():f}:1 with {position_after.normalize():f}: the candles or the strategy "
                        "changed"
                    )
                self._drop_splits()  # recorded by an attempt whose reply was lost: the cache may not know it
                return False
            open_trades = session.scalars(
                select(Trade)
                .where(
                    Trade.bot_id == self.bot_id,
                    Trade.symbol == symbol,
                    Trade.status == TradeStatus.OPEN,
                    _nonzero(_TRADES.c.amount),
                )
                .order_by(Trade.id)
            ).all()
            if len(open_trades) > 1:
                # The record converts one trade's position; converting only one would derive the other on
                # the old basis, and the broker's one net position cannot be split between them.
                ids = ", ".join(str(t.id) for t in open_trades)
                raise IntegrityProblem(
                    f"the {symbol} split at the {time:%Y-%m-%d %H:%M} candle finds trades {ids} all open on {symbol}; "
                    "a split converts the one open trade of a symbol, so nothing was recorded or converted and the "
                    "bot stops. A split with two open trades on a symbol (direction both, an exit partly filled when "
                    "the next entry filled) is not supported: the bot cannot go on past this candle"
                )
            trade = open_trades[0] if open_trades else None
            before = abs(trade.amount) if trade is not None else _ZERO
            now = self.clock()
            split = Split(
                bot_id=self.bot_id,
                symbol=symbol,
                time=time,
                ratio=ratio,
                trade_id=trade.id if trade is not None else None,
                position_before=before,
                position_after=position_after,
                recorded_at=now,
                converted_orders=sorted(converted_orders),
            )
            session.add(split)
            orders = session.scalars(
                select(Order).where(Order.bot_id == self.bot_id, Order.client_order_id.in_(list(converted_orders)))
            ).all()
            for order in orders:
                if order.intent_amount is None:
                    order.intent_amount = order.amount
                order.amount = converted_orders[order.client_order_id]
                order.price = _divided(order.price, ratio)
                order.stop_price = _divided(order.stop_price, ratio)
                if order.filled:  # partly filled: its later fills count on the new basis
                    order.filled = filled_after_split(order.filled, ratio)
                    order.average_price = _divided(order.average_price, ratio)
                order.updated_at = now
            session.flush()
            if trade is not None:
                basis = SplitBasis(time, ratio, before, position_after)
                fills = [
                    (o.side, o.reason, o.role, f.amount, f.price, f.fee, f.time)
                    for o in sorted(trade.orders, key=lambda o: o.id)
                    for f in o.fills
                ]
                for key, value in _derive_trade(trade.side, fills, [*known.get(trade.id, []), basis]).items():
                    setattr(trade, key, value)
            data = {
                "symbol": symbol,
                "candle": time.isoformat(),
                "ratio": str(ratio),
                "trade_id": trade.id if trade is not None else None,
                "position_before": str(before),
                "position_after": str(position_after),
                "orders": sorted(converted_orders),
            }
            message = (
                f"{symbol} split {ratio}:1 at the {time:%Y-%m-%d %H:%M} candle: position {before} -> {position_after}"
                f", {len(orders)} resting orders converted"
            )
            session.add(Event(bot_id=self.bot_id, time=now, kind="split", message=message, data=data))
        self._drop_splits()
        return True

    def splits(self) -> list[Split]:
        """The stock splits applied to this bot, oldest first."""
        return self._all(select(Split).where(Split.bot_id == self.bot_id).order_by(Split.time, Split.id))

    def _splits_by_trade(self) -> dict[int, list[SplitBasis]]:
        splits = self._trade_splits
        if splits is None:
            dropped = self._splits_dropped
            with self._transaction() as connection:
                rows = connection.execute(_BOT_SPLITS, {"bot_id": self.bot_id}).all()
            splits = self._keep_splits(dropped, _by_trade(rows))
        return splits

    def _keep_splits(self, dropped: int, splits: dict[int, list[SplitBasis]]) -> dict[int, list[SplitBasis]]:
        """`splits`, read after the cache was dropped `dropped` times, become the cache unless a split was
        recorded since (then the read may predate it: the next reader reads again)."""
        with self._splits_lock:
            if self._splits_dropped == dropped and self._trade_splits is None:
                self._trade_splits = splits
        return splits

    def _drop_splits(self) -> None:
        """A split was recorded (or found recorded): the next reader reads the bot's splits again."""
        with self._splits_lock:
            self._splits_dropped += 1
            self._trade_splits = None

    def update_trade_state(self, trade_id: int, state: dict[str, Any]) -> None:
        """What exits need to keep working after a restart: stop and trailing levels, entry bar."""
        with self._tx() as session:
            trade = session.get(Trade, trade_id)
            if trade is None or trade.bot_id != self.bot_id:
                raise IntegrityProblem(f"trade {trade_id} does not belong to this bot")
            trade.state = {**(trade.state or {}), **state}

    # --- feed cursor, equity, events -------------------------------------------------------------

    def set_cursor(self, symbol: str, timeframe: str, open_time: dt.datetime) -> None:
        with self._writing() as cursor:
            self._advance_cursor(cursor, symbol, timeframe, open_time)

    def checkpoint(
        self,
        time: dt.datetime,
        candles: list[tuple[str, str, dt.datetime]],
        equity: Decimal,
        cash: Decimal,
        restart_point: tuple[int, dict[str, Any]] | None = None,
    ) -> None:
        """After a candle is decided: where the feed resumes, and the equity, in one commit. With a
        `restart_point` (the last order id and the strategy's state at this flat candle), also the
        bot's snapshot to restart from, in the same commit: it is never ahead of the cursor, nor of
        the orders it counts."""
        with self._writing() as cursor:
            for symbol, timeframe, open_time in candles:
                self._advance_cursor(cursor, symbol, timeframe, open_time)
            point = {"bot_id": self.bot_id, "time": time, "equity": equity, "cash": cash}
            if self._upserts.equity is not None:
                cursor.write(self._upserts.equity, point)
            elif not cursor.read(_EQUITY_EXISTS, {"bot_id": self.bot_id, "time": time}):
                cursor.write(_INSERT_EQUITY, point)
            if restart_point is not None:
                last_order_id, state = restart_point
                row = {"time": time, "last_order_id": last_order_id, "state": state}
                cursor.write(_UPDATE_SNAPSHOT, {"row_id": self.bot_id, **row})
                if not cursor.rowcount:
                    cursor.write(_INSERT_SNAPSHOT, {"bot_id": self.bot_id, **row})

    def _advance_cursor(self, cursor: Cursor, symbol: str, timeframe: str, open_time: dt.datetime) -> None:
        """Move the cursor forward, or create it; a cursor never moves back. Update first: an upsert
        would draw a new id from PostgreSQL's sequence for every candle."""
        key = {"cursor_bot": self.bot_id, "cursor_symbol": symbol, "cursor_timeframe": timeframe}
        cursor.write(_ADVANCE_CURSOR, {**key, "open_time": open_time})
        if cursor.rowcount:
            return
        row = {"bot_id": self.bot_id, "symbol": symbol, "timeframe": timeframe, "last_open_time": open_time}
        if self._upserts.cursor is not None:  # new, or already at or past open_time (then a no-op)
            cursor.write(self._upserts.cursor, row)
        elif not cursor.read(_CURSOR_EXISTS, key):
            cursor.write(_INSERT_CURSOR, row)

    def cursors(self) -> dict[tuple[str, str], dt.datetime]:
        with self._tx() as session:
            rows = session.scalars(select(CandleCursor).where(CandleCursor.bot_id == self.bot_id))
            return {(r.symbol, r.timeframe): r.last_open_time for r in rows}

    def snapshot_equity(self, time: dt.datetime, equity: Decimal, cash: Decimal) -> None:
        try:
            with self.engine.begin() as connection:
                connection.execute(
                    _INSERT_EQUITY, {"bot_id": self.bot_id, "time": time, "equity": equity, "cash": cash}
                )
        except IntegrityError:  # the same candle's snapshot again after a restart: keep the first
            return

    def log_event(self, kind: str, message: str, data: dict[str, Any] | None = None) -> None:
        with self._writing() as cursor:
            self._event(cursor, kind, message, data)

    # --- queries -----------------------------------------------------------------------------------

    def _all(self, query: Select[Any]) -> list[Any]:
        with self._tx() as session, _collector_paused():
            return list(session.scalars(query))

    def orders(self, *, statuses: frozenset[OrderStatus] | None = None) -> list[Order]:
        query = select(Order).where(Order.bot_id == self.bot_id).order_by(Order.id)
        if statuses is not None:
            query = query.where(Order.status.in_(statuses))
        return self._all(query)

    def stored_orders(self, *, after_id: int = 0) -> list[StoredOrder]:
        """The identity and request of every order the strategy asked for (those with a row id above
        `after_id`), oldest first; orders adopted by reconciliation were never asked for, so a
        restarted strategy does not ask for them again. 0.2 s for 200,000 orders (ORM: 2.6 s)."""
        with self._transaction() as connection, _collector_paused():
            rows = connection.execute(_STORED_ORDERS, {"bot_id": self.bot_id, "after_id": after_id})
            return [StoredOrder(*row[:7], Decimal(row[7]), row[8]) for row in rows]

    def order(self, client_order_id: str) -> Order | None:
        """One of this bot's orders by its client order id (None when the bot has no such order)."""
        found = self._all(select(Order).where(Order.bot_id == self.bot_id, Order.client_order_id == client_order_id))
        return found[0] if found else None

    def open_orders(self) -> list[Order]:
        return self.orders(statuses=frozenset(OrderStatus) - TERMINAL_ORDER_STATUSES)

    def fills(self, *, after_id: int = 0) -> list[Fill]:
        """The bot's fills (those with a row id above `after_id`: what a poller has not seen yet), oldest first."""
        return self._all(select(Fill).where(Fill.bot_id == self.bot_id, Fill.id > after_id).order_by(Fill.id))

    def trades(self, status: TradeStatus | None = None) -> list[Trade]:
        query = select(Trade).where(Trade.bot_id == self.bot_id).order_by(Trade.id)
        if status is not None:
            query = query.where(Trade.status == status)
        return self._all(query)

    def trade_records(self, status: TradeStatus | None = None) -> list[dict[str, Any]]:
        """Trades in the result file's `trades` shape (floats, ISO times), oldest first."""
        query = select(_TRADES).where(_TRADES.c.bot_id == self.bot_id).order_by(_TRADES.c.id)
        if status is not None:
            query = query.where(_TRADES.c.status == status)
        with self.engine.connect() as connection, _collector_paused():
            trades = connection.execute(query).all()
            fills = connection.execute(_BOT_TRADE_FILLS, {"bot_id": self.bot_id}).all()
        entry_sides = {trade.id: "buy" if trade.side == "long" else "sell" for trade in trades}
        sizes: dict[int, Decimal] = {}
        splits = self._splits_by_trade()
        for trade_id, side, amount, time in fills:  # summed in order-then-fill order, as the ORM summed them
            if entry_sides.get(trade_id) == side:
                amount = _on_current_basis(amount, time, splits.get(trade_id, ()))
                sizes[trade_id] = sizes.get(trade_id, Decimal(0)) + amount
        for trade_id, trade_splits in splits.items():
            if trade_id in sizes:
                sizes[trade_id] += _split_corrections(trade_splits)
        records = []
        for trade in trades:
            size = sizes.get(trade.id, Decimal(0))
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
        return self._all(
            select(EquitySnapshot).where(EquitySnapshot.bot_id == self.bot_id).order_by(EquitySnapshot.time)
        )

    def events(self, kind: str | None = None) -> list[Event]:
        query = select(Event).where(Event.bot_id == self.bot_id).order_by(Event.id)
        if kind is not None:
            query = query.where(Event.kind == kind)
        return self._all(query)

    def integrity_problems(self) -> list[Problem]:
        """Rows that cannot all be true at once; a bot refuses to trade while any exist."""
        with self.engine.connect() as connection, _collector_paused():
            orders = connection.execute(_SUSPECT_ORDERS, {"bot_id": self.bot_id}).all()
            fills: list[Any] = []
            for first in range(0, len(orders), 1000):
                ids = [order[0] for order in orders[first : first + 1000]]
                fills += connection.execute(_FILLS_OF_ORDERS, {"order_ids": ids}).all()
            closed_trades = connection.execute(_CLOSED_TRADES_NOT_FLAT, {"bot_id": self.bot_id}).all()
            conversions = _conversions(connection.execute(_BOT_SPLIT_CONVERSIONS, {"bot_id": self.bot_id}).all())
        client_ids = {order[0]: order[1] for order in orders}
        totals: dict[int, Decimal] = {}
        converted: dict[int, list[tuple[dt.datetime, Decimal]]] = {}
        for order_id, amount, time in fills:  # summed in fill order, as the ORM summed `order.fills`
            pending = conversions.get(client_ids[order_id])
            if pending:  # on the new basis from the first fill at or after a split that converted the order
                splits = converted.setdefault(order_id, list(pending))
                while splits and splits[0][0] <= time:
                    totals[order_id] = filled_after_split(totals.get(order_id, Decimal(0)), splits.pop(0)[1])
            totals[order_id] = totals.get(order_id, Decimal(0)) + Decimal(amount)
        for order_id, splits in converted.items():  # splits after its last fill
            for _, ratio in splits:
                totals[order_id] = filled_after_split(totals[order_id], ratio)
        problems = []
        # In the order SQLite's (bot_id, status) index lists a bot's orders, as they were always reported.
        for order_id, client_order_id, trade_id, raw_amount, raw_filled, _status in sorted(orders, key=_by_status):
            where = f"order {client_order_id} (row {order_id})"
            if trade_id is None:
                problems.append(Problem(where, "belongs to no trade"))
            total, amount, filled = totals.get(order_id, Decimal(0)), Decimal(raw_amount), Decimal(raw_filled)
            if total > amount:
                problems.append(Problem(where, f"fills total {total}, more than its amount {amount}"))
            if total != filled:
                problems.append(Problem(where, f"records {filled} filled but its fills total {total}"))
        for trade_id, amount in closed_trades:
            if Decimal(amount) != 0:
                problems.append(Problem(f"trade {trade_id}", f"closed with {Decimal(amount)} still open"))
        return problems

    # --- strategy snapshots: restart points (engine/runtime.py) -----------------------------------

    def latest_snapshot(self) -> StrategySnapshot | None:
        """The bot's restart point, if it has had a quiet candle (nothing in flight) since snapshots exist."""
        with self._tx() as session:
            return session.get(StrategySnapshot, self.bot_id)


_S = OrderStatus
# The moves mark_order makes; any other report about a live order is old news (a restarted bot
# replays its history; a venue poll repeats itself) and changes nothing. UNKNOWN is the outcome of a
# send or a cancel that was not heard, left for what the venue says when asked by client order id; a
# requested cancel stays pending ("open" is then a stale poll) until the venue reports an end.
_LIVE_MOVES: dict[OrderStatus, frozenset[OrderStatus]] = {
    _S.PENDING_SUBMIT: frozenset({_S.UNKNOWN, _S.OPEN, _S.PARTIALLY_FILLED, _S.CANCEL_PENDING}),
    _S.UNKNOWN: frozenset({_S.OPEN, _S.PARTIALLY_FILLED, _S.CANCEL_PENDING}),
    _S.OPEN: frozenset({_S.UNKNOWN, _S.PARTIALLY_FILLED, _S.CANCEL_PENDING}),
    _S.PARTIALLY_FILLED: frozenset({_S.UNKNOWN, _S.CANCEL_PENDING}),
    _S.CANCEL_PENDING: frozenset({_S.UNKNOWN, _S.PARTIALLY_FILLED}),
}
_MOVES = {status: moves | TERMINAL_ORDER_STATUSES for status, moves in _LIVE_MOVES.items()}


def _filled_order(
    client_order_id: str,
    status: OrderStatus,
    amount: Decimal,
    filled: Decimal,
    average_price: Decimal | None,
    fees: Decimal,
    fill: FillReport,
    clock: Clock,
) -> dict[str, Any]:
    """The order's columns after `fill`; IntegrityProblem if it would overfill the order."""
    now_filled = filled + fill.amount
    if now_filled > amount:
        raise IntegrityProblem(
            f"fill {fill.venue_trade_id} of {fill.amount} would overfill order {client_order_id} "
            f"({filled} of {amount} filled)"
        )
    previous_value = (average_price or Decimal(0)) * filled
    changes: dict[str, Any] = {
        "average_price": (previous_value + fill.price * fill.amount) / now_filled,
        "filled": now_filled,
        "fees": fees + fill.fee,
    }
    if status not in TERMINAL_ORDER_STATUSES or now_filled == amount:
        # A fill healed after a cancel keeps the order canceled (the venue said so) unless it
        # completes the order.
        changes["status"] = OrderStatus.FILLED if now_filled == amount else OrderStatus.PARTIALLY_FILLED
    changes["updated_at"] = clock()
    return changes


class SplitBasis(NamedTuple):
    """A split an open trade went through: fills before `time` are on the old basis."""

    time: dt.datetime
    ratio: Decimal
    before: Decimal  # the position just before, on the old basis
    after: Decimal  # the position just after, as the broker converted it


_WIDE = Context(prec=60)
_PRICE_SCALE = Decimal("1e-18")


def _this_split(bot_id: int, symbol: str, time: dt.datetime) -> tuple[Any, ...]:
    return (Split.bot_id == bot_id, Split.symbol == symbol, Split.time == time)


def _by_trade(rows: Iterable[Any]) -> dict[int, list[SplitBasis]]:
    """_BOT_SPLITS rows as each trade's splits, oldest first."""
    found: dict[int, list[SplitBasis]] = {}
    for trade_id, time, ratio, before, after in rows:
        found.setdefault(trade_id, []).append(SplitBasis(time, Decimal(ratio), Decimal(before), Decimal(after)))
    return found


def split_ratio(ratio: float) -> Decimal:
    """A split's ratio (a float from Yahoo) as the decimal the paper broker, `record_split` and
    `filled_after_split` all use: 18 decimals, as NUMERIC(36, 18) stores it (repr(1 / 300) has 19, which
    PostgreSQL would round, so that a replay or `db check` met another ratio than the run used)."""
    return Decimal(repr(float(ratio))).quantize(_PRICE_SCALE, context=_WIDE)


def filled_after_split(filled: Decimal, ratio: Decimal) -> Decimal:
    """What of an order had filled, on a split's new basis (18 decimals, as stored): the repository stores
    this and a paper broker journals on from it, so that the fills after the split add up exactly to the
    order's converted amount."""
    return _WIDE.multiply(filled, ratio).quantize(_PRICE_SCALE, context=_WIDE)


def _conversions(rows: Iterable[Any]) -> dict[str, list[tuple[dt.datetime, Decimal]]]:
    """_BOT_SPLIT_CONVERSIONS rows as the splits (time, ratio) that converted each order, oldest first."""
    found: dict[str, list[tuple[dt.datetime, Decimal]]] = {}
    for time, ratio, orders in rows:
        for client_order_id in orders or ():
            found.setdefault(client_order_id, []).append((time, Decimal(ratio)))
    return found


def _divided(price: Decimal | None, ratio: Decimal) -> Decimal | None:
    return None if price is None else _WIDE.divide(price, ratio).quantize(_PRICE_SCALE, context=_WIDE)


def _on_current_basis(amount: Decimal, time: dt.datetime, splits: Iterable[SplitBasis]) -> Decimal:
    """A fill's amount in shares of today: times the ratio of every split after it."""
    for split in splits:
        if time < split.time:
            amount = _WIDE.multiply(amount, split.ratio)
    return amount


def _split_corrections(splits: Sequence[SplitBasis]) -> Decimal:
    """What the broker's conversion of the position differs from the old position times the ratio by
    (fractions of a share a float size rounds away), on today's basis: added to the entered amount so that
    the trade's position is exactly the broker's."""
    total = _ZERO
    for i, split in enumerate(splits):
        correction = split.after - _WIDE.multiply(split.before, split.ratio)
        for later in splits[i + 1 :]:
            correction = _WIDE.multiply(correction, later.ratio)
        total += correction
    return total


def _derive_trade(
    side: str,
    fills: Iterable[tuple[str, str | None, str, Decimal, Decimal, Decimal, dt.datetime]],
    splits: Sequence[SplitBasis] = (),
) -> dict[str, Any]:
    """Position, prices, fees, PnL, times and status of a trade recomputed from all its fills (never
    incrementally), so fills healed late or out of order give the same trade as fills in order: the
    trade columns to set, given (order side, reason, role, amount, price, fee, time) per fill, in
    order-then-fill order. A fill before a split the trade went through counts in today's shares (its
    value, amount times price, is what it was): entry and exit prices are on today's basis."""
    entry_side = "buy" if side == "long" else "sell"
    entered = Decimal(0)
    entry_value = Decimal(0)
    exited = Decimal(0)
    exit_value = Decimal(0)
    fees = Decimal(0)
    closing_reason = None
    first_entry: dt.datetime | None = None
    last_fill: dt.datetime | None = None
    for order_side, reason, role, amount, price, fee, time in fills:
        fees += fee
        last_fill = time if last_fill is None else max(last_fill, time)
        value = amount * price
        if splits:
            amount = _on_current_basis(amount, time, splits)
        if order_side == entry_side:
            entered += amount
            entry_value += value
            first_entry = time if first_entry is None else min(first_entry, time)
        else:
            exited += amount
            exit_value += value
            closing_reason = reason or role
    if splits and entered:
        entered += _split_corrections(splits)
    position = entered - exited
    changes: dict[str, Any] = {
        "amount": position,
        "fees": fees,
        "entry_price": entry_value / entered if entered else None,
        "exit_price": exit_value / exited if exited else None,
    }
    if not entered:
        return changes
    changes["opened_at"] = first_entry
    if position == 0:
        direction = 1 if side == "long" else -1
        changes |= {"status": TradeStatus.CLOSED, "closed_at": last_fill, "exit_reason": closing_reason}
        changes["pnl"] = (exit_value - entry_value) * direction - fees
    else:  # open, or reopened by a fill healed after its entry was given up
        changes |= {"status": TradeStatus.OPEN, "closed_at": None, "exit_reason": None, "pnl": None}
    return changes


def _by_status(order: Any) -> tuple[str, int]:
    order_id, _client_order_id, _trade_id, _amount, _filled, status = order
    return status, order_id


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Loading a whole history makes hundreds of thousands of objects at once, and Python's cycle
    collector runs full passes over them again and again while they are made (40 % of the time it
    takes to load 200,000 orders). It pauses for the load and resumes after it, as it was."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


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
