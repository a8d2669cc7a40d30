"""Index the foreign keys the order path looks up by: orders.trade_id and fills.order_id.

Without them every fill re-derives its trade by scanning all orders and fills (PostgreSQL and SQLite
do not index foreign keys on their own), and recording slows down as history grows.

Revision ID: 0002_fk_indexes
Revises: 0001_initial
Create Date: 2026-11-24 12:15:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002_fk_indexes"
down_revision: str | Sequence[str] | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(op.f("ix_orders_trade_id"), "orders", ["trade_id"])
    op.create_index(op.f("ix_fills_order_id"), "fills", ["order_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_fills_order_id"), table_name="fills")
    op.drop_index(op.f("ix_orders_trade_id"), table_name="orders")
