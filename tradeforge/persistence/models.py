"""The database schema. Every row belongs to one bot instance, so several bots share a database
without seeing each other's rows. Money and amounts are Numeric (Decimal in Python); times are
timezone-aware UTC. Changing this file means adding an Alembic migration (a test compares)."""

from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class DecimalText(TypeDecorator[Decimal]):
    """Exact decimals on SQLite, which would otherwise round NUMERIC through a binary float."""

    impl = String(64)
    cache_ok = True

    def process_bind_param(self, value: Decimal | None, dialect: Any) -> str | None:
        return None if value is None else str(Decimal(value))

    def process_result_value(self, value: str | None, dialect: Any) -> Decimal | None:
        return None if value is None else Decimal(value)


# Crypto amounts need 18 decimals, prices up to 1e18: NUMERIC(36, 18) on PostgreSQL, exact text on SQLite.
MONEY = Numeric(36, 18, asdecimal=True).with_variant(DecimalText(), "sqlite")


class UtcDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC in, timezone-aware UTC out, on SQLite (which stores no zone) too."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: tradeforge stores timezone-aware UTC only")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


class OrderStatus(enum.StrEnum):
    PENDING_SUBMIT = "pending_submit"  # intent committed, not yet sent
    OPEN = "open"  # the venue (or paper broker) accepted it
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCEL_PENDING = "cancel_pending"
    CANCELED = "canceled"
    REJECTED = "rejected"
    EXPIRED = "expired"
    UNKNOWN = "unknown"  # outcome of a send or cancel is unknown: reconcile by client id
    LOST = "lost"  # the venue says it never saw it, repeatedly, past its receive window


TERMINAL_ORDER_STATUSES = frozenset(
    {OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED, OrderStatus.EXPIRED, OrderStatus.LOST}
)


class TradeStatus(enum.StrEnum):
    OPEN = "open"
    CLOSED = "closed"


naming = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=naming)


def _enum(cls: type[enum.Enum]) -> Enum:
    return Enum(cls, values_callable=lambda e: [m.value for m in e], native_enum=False, length=20)


class BotInstance(Base):
    """One bot (by name) in this database: what it runs and whether it is running."""

    __tablename__ = "bot_instances"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    config_hash: Mapped[str] = mapped_column(String(64))
    mode: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="stopped")
    started_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    stopped_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    lock_owner: Mapped[str | None] = mapped_column(String(128))  # "host:pid:token" of the running process
    lock_heartbeat: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    client_id_prefix: Mapped[str] = mapped_column(String(8))
    order_sequence: Mapped[int] = mapped_column(BigInteger, default=0)  # last sequence minted


class CandleCursor(Base):
    """The last candle a bot has fully processed, per symbol: where a restart resumes the feed."""

    __tablename__ = "candle_cursors"
    __table_args__ = (UniqueConstraint("bot_id", "symbol", "timeframe"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    bot_id: Mapped[int] = mapped_column(ForeignKey("bot_instances.id", ondelete="CASCADE"))
    symbol: Mapped[str] = mapped_column(String(32))
    timeframe: Mapped[str] = mapped_column(String(8))
    last_open_time: Mapped[dt.datetime] = mapped_column(UtcDateTime)


class Trade(Base):
    """A position from entry to exit, derived from fills; `state` holds what exits need (stop levels)."""

    __tablename__ = "trades"
    __table_args__ = (Index("ix_trades_bot_status", "bot_id", "status"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    bot_id: Mapped[int] = mapped_column(ForeignKey("bot_instances.id", ondelete="CASCADE"))
    symbol: Mapped[str] = mapped_column(String(32))
    side: Mapped[str] = mapped_column(String(5))  # long | short
    status: Mapped[TradeStatus] = mapped_column(_enum(TradeStatus), default=TradeStatus.OPEN)
    amount: Mapped[Decimal] = mapped_column(MONEY, default=Decimal(0))
    entry_price: Mapped[Decimal | None] = mapped_column(MONEY)
    exit_price: Mapped[Decimal | None] = mapped_column(MONEY)
    fees: Mapped[Decimal] = mapped_column(MONEY, default=Decimal(0))
    pnl: Mapped[Decimal | None] = mapped_column(MONEY)
    opened_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    closed_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    exit_reason: Mapped[str | None] = mapped_column(String(32))
    state: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    orders: Mapped[list[Order]] = relationship(back_populates="trade", order_by="Order.id")


class Order(Base):
    """An order from intent to terminal state. The row exists, committed, before the order is sent."""

    __tablename__ = "orders"
    __table_args__ = (Index("ix_orders_bot_status", "bot_id", "status"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    bot_id: Mapped[int] = mapped_column(ForeignKey("bot_instances.id", ondelete="CASCADE"))
    trade_id: Mapped[int | None] = mapped_column(ForeignKey("trades.id", ondelete="SET NULL"), index=True)
    client_order_id: Mapped[str] = mapped_column(String(36), unique=True)
    venue_order_id: Mapped[str | None] = mapped_column(String(64))
    symbol: Mapped[str] = mapped_column(String(32))
    side: Mapped[str] = mapped_column(String(4))  # buy | sell
    type: Mapped[str] = mapped_column(String(16))  # market | limit | stop | stop_limit | trailing_stop
    role: Mapped[str] = mapped_column(String(16))  # entry | exit | protective
    reason: Mapped[str | None] = mapped_column(String(32))
    amount: Mapped[Decimal] = mapped_column(MONEY)
    # The amount as first asked for, when a stock split converted `amount` while the order rested (null
    # otherwise): a restarted bot's replay asks for it again as it was asked for then.
    intent_amount: Mapped[Decimal | None] = mapped_column(MONEY)
    price: Mapped[Decimal | None] = mapped_column(MONEY)
    stop_price: Mapped[Decimal | None] = mapped_column(MONEY)
    status: Mapped[OrderStatus] = mapped_column(_enum(OrderStatus), default=OrderStatus.PENDING_SUBMIT)
    filled: Mapped[Decimal] = mapped_column(MONEY, default=Decimal(0))
    average_price: Mapped[Decimal | None] = mapped_column(MONEY)
    fees: Mapped[Decimal] = mapped_column(MONEY, default=Decimal(0))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    raw: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    trade: Mapped[Trade | None] = relationship(back_populates="orders")
    fills: Mapped[list[Fill]] = relationship(back_populates="order", order_by="Fill.id")


class Fill(Base):
    """One execution. Unique per (bot, symbol, venue trade id), so healing a fill twice is a no-op."""

    __tablename__ = "fills"
    __table_args__ = (UniqueConstraint("bot_id", "symbol", "venue_trade_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    bot_id: Mapped[int] = mapped_column(ForeignKey("bot_instances.id", ondelete="CASCADE"))
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    symbol: Mapped[str] = mapped_column(String(32))
    venue_trade_id: Mapped[str] = mapped_column(String(64))
    amount: Mapped[Decimal] = mapped_column(MONEY)
    price: Mapped[Decimal] = mapped_column(MONEY)
    fee: Mapped[Decimal] = mapped_column(MONEY, default=Decimal(0))
    fee_currency: Mapped[str | None] = mapped_column(String(16))
    time: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    order: Mapped[Order] = relationship(back_populates="fills")


class Split(Base):
    """A stock split applied to a running bot at the first candle on the new basis: its position (in the
        trade `trade_id`, none when flat) went from `position_before` to `position_after`, its resting orders'
        amounts (and what of them had filled) were converted with it. Fills before `time` are on the old basis:
    trades are derived with it."""

    __tablename__ = "splits"
    __table_args__ = (UniqueConstraint("bot_id", "symbol", "time"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    bot_id: Mapped[int] = mapped_column(ForeignKey("bot_instances.id", ondelete="CASCADE"))
    symbol: Mapped[str] = mapped_column(String(32))
    time: Mapped[dt.datetime] = mapped_column(UtcDateTime)  # open time of the first candle on the new basis
    ratio: Mapped[Decimal] = mapped_column(MONEY)  # new shares per old share (4 for a 4:1 split)
    trade_id: Mapped[int | None] = mapped_column(ForeignKey("trades.id", ondelete="SET NULL"), index=True)
    position_before: Mapped[Decimal] = mapped_column(MONEY)
    position_after: Mapped[Decimal] = mapped_column(MONEY)
    recorded_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    # The client order ids of the orders it converted (null before migration 0006): their fills before
    # `time` are on the old basis, their `filled` on the new one.
    converted_orders: Mapped[list[str] | None] = mapped_column(JSON)


class EquitySnapshot(Base):
    __tablename__ = "equity_snapshots"
    __table_args__ = (UniqueConstraint("bot_id", "time"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    bot_id: Mapped[int] = mapped_column(ForeignKey("bot_instances.id", ondelete="CASCADE"))
    time: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    equity: Mapped[Decimal] = mapped_column(MONEY)
    cash: Mapped[Decimal] = mapped_column(MONEY)


class Event(Base):
    """Append-only audit trail: order intents, state changes, recovery decisions, operator commands."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_bot_time", "bot_id", "time"),)
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    bot_id: Mapped[int] = mapped_column(ForeignKey("bot_instances.id", ondelete="CASCADE"))
    time: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    kind: Mapped[str] = mapped_column(String(32))
    message: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class OutboxStatus(enum.StrEnum):
    PENDING = "pending"  # written, not yet delivered (or failed transiently: see attempts)
    DELIVERED = "delivered"
    FAILED = "failed"  # dead letter: permanently refused, or out of attempts; `tradeforge notifications --retry`


class NotificationOutbox(Base):
    """One alert for one destination (a Telegram chat, the e-mail recipients), written before it is
    delivered and marked when it was. Unique per (bot, destination, dedupe key): an alert derived
    again from replayed history is a no-op, so a restart neither loses nor repeats one."""

    __tablename__ = "notification_outbox"
    __table_args__ = (
        UniqueConstraint("bot_id", "destination", "dedupe_key"),
        Index("ix_notification_outbox_bot_status", "bot_id", "status", "destination"),
    )
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    bot_id: Mapped[int] = mapped_column(ForeignKey("bot_instances.id", ondelete="CASCADE"))
    destination: Mapped[str] = mapped_column(String(64))  # "telegram:<chat id>" | "email"
    dedupe_key: Mapped[str] = mapped_column(String(160))
    kind: Mapped[str] = mapped_column(String(32))
    level: Mapped[str] = mapped_column(String(8))
    event_time: Mapped[dt.datetime] = mapped_column(UtcDateTime)  # in the bot's clock (candle time when trading)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[OutboxStatus] = mapped_column(_enum(OutboxStatus), default=OutboxStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    first_attempt_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)


class StrategySnapshot(Base):
    """A bot's latest restart point: the state of its strategy at the end of a candle on which it was
    flat (no position, no order), committed with that candle's cursor. A restart replays only from
    here (engine/runtime.py); one row per bot, replaced as the bot moves on."""

    __tablename__ = "strategy_snapshots"
    bot_id: Mapped[int] = mapped_column(ForeignKey("bot_instances.id", ondelete="CASCADE"), primary_key=True)
    time: Mapped[dt.datetime] = mapped_column(UtcDateTime)  # open time of the candle it was taken after
    last_order_id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))  # 0: none yet
    state: Mapped[dict[str, Any]] = mapped_column(JSON)
