"""Database engines and sessions for SQLite (embedded default) and PostgreSQL.

Read-only handlers use ``READ_SESSIONS`` (see ``InlineReadSession``); everything else uses
``SESSIONS``.

SQLite runs in WAL mode with ``synchronous=NORMAL`` and foreign keys on, set on every new
connection; PostgreSQL goes through asyncpg with a bounded pool.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def make_engine(url: str, *, pool_size: int = 10, echo: bool = False) -> AsyncEngine:
    """Create an async engine for ``url`` with the settings our storage rules need."""
    if url.startswith("sqlite"):
        # One writer connection: SQLite admits one write transaction at a time anyway, and
        # queueing for the connection in asyncio is far cheaper than SQLite's busy-wait sleeps
        # (which stretched p99 to seconds under concurrent posting). Reads that matter for
        # latency go through ReadSessions, which never waits for this connection.
        engine = create_async_engine(url, echo=echo, pool_size=1, max_overflow=0, pool_timeout=30)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(url, echo=echo, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


class InlineReadSession:
    """The read half of ``AsyncSession``'s API over a synchronous ``Session``.

    Used for SQLite reads only (``READ_SESSIONS``). SQLite is a library in this process: an
    indexed read of a page takes tens of microseconds in C, far less than handing each
    statement to aiosqlite's thread and back, so read-only handlers run their queries inline on
    the event loop. The connection is query-only (``PRAGMA query_only``); in WAL mode
    readers never wait for writers, so nothing here blocks on a lock. Writes keep going through
    the async engine.
    """

    def __init__(self, session: Session) -> None:
        self._session = session

    async def __aenter__(self) -> InlineReadSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._session.close()

    async def execute(self, statement: Any, params: Any = None, **kw: Any) -> Any:
        return self._session.execute(statement, params, **kw)

    async def scalar(self, statement: Any, params: Any = None, **kw: Any) -> Any:
        return self._session.scalar(statement, params, **kw)

    async def scalars(self, statement: Any, params: Any = None, **kw: Any) -> Any:
        return self._session.scalars(statement, params, **kw)

    async def get(self, entity: Any, ident: Any, **kw: Any) -> Any:
        return self._session.get(entity, ident, **kw)

    async def commit(self) -> None:
        self._session.rollback()  # nothing to commit: ends the read transaction

    async def rollback(self) -> None:
        self._session.rollback()

    async def close(self) -> None:
        self._session.close()


class ReadSessions:
    """Factory of sessions for read-only handlers (``READ_SESSIONS``).

    On SQLite: ``InlineReadSession`` over one query-only connection used from the event loop
    thread. On PostgreSQL: the ordinary async sessions (asyncpg is already asynchronous).
    """

    def __init__(self, url: str, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self._engine = None
        self._factory: sessionmaker[Session] | None = None
        if url.startswith("sqlite"):
            path = url.split(":///", 1)[1]
            self._engine = create_engine(
                "sqlite://",
                creator=lambda: sqlite3.connect(path, check_same_thread=False),
                poolclass=StaticPool,
            )
            event.listen(self._engine, "connect", _query_only)
            self._factory = sessionmaker(self._engine, expire_on_commit=False)

    def __call__(self) -> Any:
        if self._factory is None:
            return self._sessions()
        return InlineReadSession(self._factory())

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()


def _query_only(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA query_only=ON")  # this connection can never write
    cursor.execute("PRAGMA busy_timeout=1000")
    cursor.close()
