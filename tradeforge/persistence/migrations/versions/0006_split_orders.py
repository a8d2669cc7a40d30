"""The orders a stock split converted, named on its record: an order partly filled before the split has
fills on the old basis and its filled amount on the new one, and `tradeforge db check` converts exactly
the fills of the orders the split converted (an order that had ended before it keeps its basis).

Revision ID: 0006_split_orders
Revises: 0005_splits
Create Date: 2026-11-24 19:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_split_orders"
down_revision: str | Sequence[str] | None = "0005_splits"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("splits") as batch:
        batch.add_column(sa.Column("converted_orders", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("splits") as batch:
        batch.drop_column("converted_orders")
