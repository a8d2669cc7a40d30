"""Strategy snapshots: a restarted bot replays from its latest flat candle instead of its first.

Revision ID: 0004_strategy_snapshots
Revises: 0003_notification_outbox
Create Date: 2026-11-24 15:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_strategy_snapshots"
down_revision: str | Sequence[str] | None = "0003_notification_outbox"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "strategy_snapshots",
        sa.Column("bot_id", sa.Integer(), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_order_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("state", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["bot_id"],
            ["bot_instances.id"],
            name=op.f("fk_strategy_snapshots_bot_id_bot_instances"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("bot_id", name=op.f("pk_strategy_snapshots")),
    )


def downgrade() -> None:
    op.drop_table("strategy_snapshots")
