"""The notification outbox: every alert is stored per destination before delivery, marked when
delivered, dead-lettered after repeated failures (`tradeforge notifications --failed/--retry`).

Revision ID: 0003_notification_outbox
Revises: 0002_fk_indexes
Create Date: 2026-11-24 12:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_notification_outbox"
down_revision: str | Sequence[str] | None = "0002_fk_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "notification_outbox",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("bot_id", sa.Integer(), nullable=False),
        sa.Column("destination", sa.String(length=64), nullable=False),
        sa.Column("dedupe_key", sa.String(length=160), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("level", sa.String(length=8), nullable=False),
        sa.Column("event_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column(
            "status",
            sa.Enum("pending", "delivered", "failed", name="outboxstatus", native_enum=False, length=20),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("first_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["bot_id"],
            ["bot_instances.id"],
            name=op.f("fk_notification_outbox_bot_id_bot_instances"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_outbox")),
        sa.UniqueConstraint("bot_id", "destination", "dedupe_key", name=op.f("uq_notification_outbox_bot_id")),
    )
    op.create_index(
        "ix_notification_outbox_bot_status", "notification_outbox", ["bot_id", "status", "destination"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_notification_outbox_bot_status", table_name="notification_outbox")
    op.drop_table("notification_outbox")
