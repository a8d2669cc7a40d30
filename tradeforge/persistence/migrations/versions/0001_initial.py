"""Initial schema: bot instances, candle cursors, trades, orders, fills, equity snapshots, events.

Revision ID: 0001_initial
Revises: (none, first migration)
Create Date: 2026-11-24 09:46:58.424235
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001_initial"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# NUMERIC(36, 18) on PostgreSQL; exact decimal text on SQLite (models.DecimalText), whose NUMERIC is a float.
MONEY = sa.Numeric(precision=36, scale=18).with_variant(sa.String(length=64), "sqlite")


def upgrade() -> None:
    op.create_table(
        "bot_instances",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("config_hash", sa.String(length=64), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lock_owner", sa.String(length=128), nullable=True),
        sa.Column("lock_heartbeat", sa.DateTime(timezone=True), nullable=True),
        sa.Column("client_id_prefix", sa.String(length=8), nullable=False),
        sa.Column("order_sequence", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bot_instances")),
        sa.UniqueConstraint("name", name=op.f("uq_bot_instances_name")),
    )
    op.create_table(
        "candle_cursors",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("bot_id", sa.Integer(), nullable=False),
        sa.Column("symbol", sa.String(length=32), nullable=False),
        sa.Column("timeframe", sa.String(length=8), nullable=False),
        sa.Column("last_open_time", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["bot_id"], ["bot_instances.id"], name=op.f("fk_candle_cursors_bot_id_bot_instances"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_candle_cursors")),
        sa.UniqueConstraint("bot_id", "symbol", "timeframe", name=op.f("uq_candle_cursors_bot_id")),
    )
    op.create_table(
        "equity_snapshots",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("bot_id", sa.Integer(), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("equity", MONEY, nullable=False),
        sa.Column("cash", MONEY, nullable=False),
        sa.ForeignKeyConstraint(
            ["bot_id"], ["bot_instances.id"], name=op.f("fk_equity_snapshots_bot_id_bot_instances"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_equity_snapshots")),
        sa.UniqueConstraint("bot_id", "time", name=op.f("uq_equity_snapshots_bot_id")),
    )
    op.create_table(
        "events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("bot_id", sa.Integer(), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["bot_id"], ["bot_instances.id"], name=op.f("fk_events_bot_id_bot_instances"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
    )
    op.create_index("ix_events_bot_time", "events", ["bot_id", "time"], unique=False)

    op.create_table(
        "trades",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("bot_id", sa.Integer(), nullable=False),
        sa.Column("symbol", sa.String(length=32), nullable=False),
        sa.Column("side", sa.String(length=5), nullable=False),
        sa.Column(
            "status", sa.Enum("open", "closed", name="tradestatus", native_enum=False, length=20), nullable=False
        ),
        sa.Column("amount", MONEY, nullable=False),
        sa.Column("entry_price", MONEY, nullable=True),
        sa.Column("exit_price", MONEY, nullable=True),
        sa.Column("fees", MONEY, nullable=False),
        sa.Column("pnl", MONEY, nullable=True),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("exit_reason", sa.String(length=32), nullable=True),
        sa.Column("state", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["bot_id"], ["bot_instances.id"], name=op.f("fk_trades_bot_id_bot_instances"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trades")),
    )
    op.create_index("ix_trades_bot_status", "trades", ["bot_id", "status"], unique=False)

    op.create_table(
        "orders",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("bot_id", sa.Integer(), nullable=False),
        sa.Column("trade_id", sa.Integer(), nullable=True),
        sa.Column("client_order_id", sa.String(length=36), nullable=False),
        sa.Column("venue_order_id", sa.String(length=64), nullable=True),
        sa.Column("symbol", sa.String(length=32), nullable=False),
        sa.Column("side", sa.String(length=4), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=True),
        sa.Column("amount", MONEY, nullable=False),
        sa.Column("price", MONEY, nullable=True),
        sa.Column("stop_price", MONEY, nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "pending_submit",
                "open",
                "partially_filled",
                "filled",
                "cancel_pending",
                "canceled",
                "rejected",
                "expired",
                "unknown",
                "lost",
                name="orderstatus",
                native_enum=False,
                length=20,
            ),
            nullable=False,
        ),
        sa.Column("filled", MONEY, nullable=False),
        sa.Column("average_price", MONEY, nullable=True),
        sa.Column("fees", MONEY, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("raw", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["bot_id"], ["bot_instances.id"], name=op.f("fk_orders_bot_id_bot_instances"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["trade_id"], ["trades.id"], name=op.f("fk_orders_trade_id_trades"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_orders")),
        sa.UniqueConstraint("client_order_id", name=op.f("uq_orders_client_order_id")),
    )
    op.create_index("ix_orders_bot_status", "orders", ["bot_id", "status"], unique=False)

    op.create_table(
        "fills",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("bot_id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("symbol", sa.String(length=32), nullable=False),
        sa.Column("venue_trade_id", sa.String(length=64), nullable=False),
        sa.Column("amount", MONEY, nullable=False),
        sa.Column("price", MONEY, nullable=False),
        sa.Column("fee", MONEY, nullable=False),
        sa.Column("fee_currency", sa.String(length=16), nullable=True),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["bot_id"], ["bot_instances.id"], name=op.f("fk_fills_bot_id_bot_instances"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], name=op.f("fk_fills_order_id_orders"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fills")),
        sa.UniqueConstraint("bot_id", "symbol", "venue_trade_id", name=op.f("uq_fills_bot_id")),
    )


def downgrade() -> None:
    op.drop_table("fills")
    op.drop_table("orders")
    op.drop_table("trades")
    op.drop_table("events")
    op.drop_table("equity_snapshots")
    op.drop_table("candle_cursors")
    op.drop_table("bot_instances")
