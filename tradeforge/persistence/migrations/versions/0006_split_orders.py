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
from alembic.util.exc import CommandError

revision: str = "0006_split_orders"
down_revision: str | Sequence[str] | None = "0005_splits"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("splits") as batch:
        batch.add_column(sa.Column("converted_orders", sa.JSON(), nullable=True))


def downgrade() -> None:
    _refuse_with_splits()
    with op.batch_alter_table("splits") as batch:
        batch.drop_column("converted_orders")


def _refuse_with_splits() -> None:
    """A recorded split converted its orders' amounts, prices and filled amounts in place: dropping the
    list of the orders each split converted would leave `db check` unable to tell them apart. Only a
    database without splits goes back."""
    count = op.get_bind().execute(sa.text("SELECT count(*) FROM splits")).scalar_one()
    if count:
        raise CommandError(
            f"the splits table holds {count} recorded stock split(s) whose orders were converted in place; "
            "going below 0006_split_orders would drop the list of the orders they converted. Restore a backup of "
            "the database taken before it was upgraded to 0006_split_orders (below 0005_splits: before that "
            "upgrade) instead"
        )
