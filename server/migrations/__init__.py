"""Alembic migrations: one history for SQLite and PostgreSQL (see server/migrate.py)."""
