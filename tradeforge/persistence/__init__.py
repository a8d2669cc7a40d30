"""Persistence: the trade repository (SQLAlchemy), its schema migrations (Alembic) and recovery."""
