"""Stock splits applied to running bots: the split record, and the amount an order was asked for before a
split converted it.

Revision ID: 0005_splits
Revises: 0004_strategy_snapshots
Create Date: 2026-11-24 18:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from alembic.util.exc import CommandError

revision: str = "0005_splits"
down_revision: str | Sequence[str] | None = "0004_strategy_snapshots"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MONEY = sa.Numeric(precision=36, scale=18).with_variant(sa.String(length=64), "sqlite")


def upgrade() -> None:
    op.create_table(
        "splits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("bot_id", sa.Integer(), nullable=False),
        sa.Column("symbol", sa.String(length=32), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ratio", MONEY, nullable=False),
        sa.Column("trade_id", sa.Integer(), nullable=True),
        sa.Column("position_before", MONEY, nullable=False),
        sa.Column("position_after", MONEY, nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["bot_id"], ["bot_instances.id"], name=op.f("fk_splits_bot_id_bot_instances"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["trade_id"], ["trades.id"], name=op.f("fk_splits_trade_id_trades"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_splits")),
        sa.UniqueConstraint("bot_id", "symbol", "time", name=op.f("uq_splits_bot_id")),
    )
    op.create_index(op.f("ix_splits_trade_id"), "splits", ["trade_id"], unique=False)
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("intent_amount", MONEY, nullable=True))


def downgrade() -> None:
    _refuse_with_splits()
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("intent_amount")
    op.drop_index(op.f("ix_splits_trade_id"), table_name="splits")
    op.drop_table("splits")


def _refuse_with_splits() -> None:
    """A recorded split converted its orders' amounts, prices and filled amounts in place: dropping the
    splits table and `intent_amount` would leave them converted with nothing saying so. Only a database
    without splits goes back."""
    count = op.get_bind().execute(sa.text("SELECT count(*) FROM splits")).scalar_one()
    if count:
        raise CommandError(
            f"the splits table holds {count} recorded stock split(s) whose orders were converted in place; "
            "going below 0005_splits would drop them and leave those orders converted. Restore a backup of the "
            "database taken before it was upgraded to 0005_splits instead"
        )
