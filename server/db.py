"""Database engines and sessions for SQLite (embedded default) and PostgreSQL.

Read-only handlers use ``READ_SESSIONS`` (see ``InlineReadSession``); everything else uses
``SESSIONS``.

SQLite runs in WAL mode with ``synchronous=NORMAL`` and foreign keys on, set on every new
connection; PostgreSQL goes through asyncpg with a bounded pool.

Design note: the SQLite writer
------------------------------
SQLite admits one write transaction at a time, so an engine for SQLite has exactly one
connection (``pool_size=1``): a session holds it from its first statement until it commits,
rolls back or closes, and other sessions queue for it in asyncio (the pool's wait is an
``await``), which is far cheaper than SQLite's busy-wait sleeps. No two transactions ever
interleave on it.

That connection runs on the event loop's thread (``InlineSQLiteConnection``), not in
aiosqlite's worker thread. SQLite is a library in this process: an indexed statement costs
tens of microseconds in C, while handing each one to a thread and back cost 100-300 µs under
load and let other requests run between a transaction's statements while it held the
connection. Inline, a transaction that awaits nothing else runs start to finish without
yielding, so the connection is held for exactly its CPU time. SQLAlchemy still sees an
aiosqlite-shaped async driver, so ``AsyncSession``/``AsyncEngine`` and every API on them work
unchanged (the statements' awaits simply complete at once).

The trade-offs, and what keeps them safe:

* Nothing slow may run while a session holds the connection: every other writer waits for
  it. Password hashing goes through :func:`run_blocking`, which hands the connection back
  first (a read-only transaction is simply ended); a handler must never open a second
  ``SESSIONS`` session while it holds one (it would wait for itself until ``pool_timeout``).
* A statement blocks the loop while SQLite works. Statements here are indexed and small;
  WAL commits with ``synchronous=NORMAL`` do not fsync (the automatic checkpoint every
  ~1000 pages does, on the loop, for a few milliseconds).
* Another process (the CLI) may hold SQLite's write lock. The connection's busy timeout is 0
  and a statement that finds the database locked before its transaction has written
  anything is retried after an ``asyncio.sleep`` (up to ``BUSY_SECONDS``), so the loop never
  sleeps inside SQLite. Transactions keep pysqlite's usual shape (reads in autocommit, an
  implicit ``BEGIN`` before the first write), exactly as they were under aiosqlite.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any, TypeVar

from sqlalchemy import Table, create_engine, event
from sqlalchemy.dialects.postgresql import insert as _postgresql_insert
from sqlalchemy.dialects.sqlite import insert as _sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction, sessionmaker
from sqlalchemy.pool import StaticPool

T = TypeVar("T")
BUSY_SECONDS = 10.0  # how long a statement waits for another process's write lock


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=0")  # waits for other processes happen in asyncio
    cursor.close()


def make_engine(url: str, *, pool_size: int = 10, echo: bool = False) -> AsyncEngine:
    """Create an async engine for ``url`` with the settings our storage rules need."""
    if url.startswith("sqlite"):
        # One writer connection, run inline on the event loop: see the module note.
        async def connect() -> InlineSQLiteConnection:
            args, options = engine.dialect.create_connect_args(engine.url)  # the URL's file and options
            connect_sqlite: Callable[..., sqlite3.Connection] = sqlite3.connect
            return InlineSQLiteConnection(connect_sqlite(*args, **{**options, "timeout": 0}))

        engine = create_async_engine(
            url, echo=echo, pool_size=1, max_overflow=0, pool_timeout=30, async_creator=connect
        )
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(url, echo=echo, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, sync_session_class=TrackedSession)


# ---------------------------------------------------------------------------- inline SQLite driver


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    return getattr(exc, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_BUSY


class _Immediate:
    """Stands in for aiosqlite's job queue: runs the job at once (isolation-level changes)."""

    def put_nowait(self, job: tuple[asyncio.Future[Any], Callable[[], Any]]) -> None:
        future, function = job
        try:
            future.set_result(function())
        except Exception as exc:  # handed to the awaiting caller, as aiosqlite does
            future.set_exception(exc)


class InlineSQLiteConnection:
    """The part of ``aiosqlite.Connection`` SQLAlchemy's adapter uses, run on the caller's thread.

    Every coroutine here completes without suspending, except a wait for another process's
    write lock (see the module note).
    """

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._conn = connection
        self._connection: sqlite3.Connection | None = connection  # aiosqlite's "is open"
        self._tx = _Immediate()

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level

    @property
    def in_transaction(self) -> bool:
        return self._conn.in_transaction

    def cursor(self) -> InlineSQLiteCursor:
        return InlineSQLiteCursor(self)

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """Call ``function``; if the database is locked before this transaction wrote, wait."""
        if self._conn.in_transaction:
            return function(*args)  # this connection holds the write lock: nothing to wait for
        loop = asyncio.get_running_loop()
        deadline = loop.time() + BUSY_SECONDS
        delay = 0.001
        while True:
            try:
                return function(*args)
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or loop.time() >= deadline:
                    raise
                if self._conn.in_transaction:
                    self._conn.rollback()  # only the implicit BEGIN of this statement: nothing written
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)

    async def commit(self) -> None:
        self._conn.commit()

    async def rollback(self) -> None:
        self._conn.rollback()

    async def create_function(self, *args: Any, **kw: Any) -> None:
        self._conn.create_function(*args, **kw)

    async def close(self) -> None:
        self.stop()

    def stop(self) -> None:
        if self._connection is not None:
            self._connection = None
            self._conn.close()


class InlineSQLiteCursor:
    """The part of ``aiosqlite.Cursor`` SQLAlchemy's adapter uses (see the connection)."""

    def __init__(self, owner: InlineSQLiteConnection) -> None:
        self._owner = owner
        self._cursor = owner._conn.cursor()

    async def __aenter__(self) -> InlineSQLiteCursor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._cursor.close()

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value

    async def execute(self, sql: str, parameters: Any = ()) -> InlineSQLiteCursor:
        await self._owner.run(self._cursor.execute, sql, parameters)
        return self

    async def executemany(self, sql: str, parameters: Sequence[Any]) -> InlineSQLiteCursor:
        await self._owner.run(self._cursor.executemany, sql, parameters)
        return self

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._rows()

    async def _rows(self) -> AsyncIterator[Any]:
        while (row := self._cursor.fetchone()) is not None:
            yield row

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(self._cursor.arraysize if size is None else size)

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def close(self) -> None:
        self._cursor.close()


# ---------------------------------------------------------------------------- slow work


_WROTE = "hearthside.wrote"


class TrackedSession(Session):
    """A ``Session`` that remembers whether its transaction has written (see ``run_blocking``)."""


@event.listens_for(TrackedSession, "after_flush")
def _flushed(session: Session, _context: Any) -> None:
    session.info[_WROTE] = True


@event.listens_for(TrackedSession, "do_orm_execute")
def _executed(state: ORMExecuteState) -> None:
    if state.is_insert or state.is_update or state.is_delete:
        state.session.info[_WROTE] = True


_AFTER_COMMIT = "hearthside.after_commit"


def after_commit(session: AsyncSession, callback: Callable[[], None]) -> None:
    """Run ``callback`` once the session's current transaction commits (not on rollback).

    Used to wake workers when the rows they wait for become visible.
    """
    callbacks: list[Callable[[], None]] = session.sync_session.info.setdefault(_AFTER_COMMIT, [])
    if callback not in callbacks:
        callbacks.append(callback)


@event.listens_for(TrackedSession, "after_commit")
def _committed(session: Session) -> None:
    for callback in session.info.pop(_AFTER_COMMIT, []):
        callback()


@event.listens_for(TrackedSession, "after_soft_rollback")
def _rolled_back(session: Session, _previous: SessionTransaction) -> None:
    if not session.in_transaction():
        session.info.pop(_AFTER_COMMIT, None)


@event.listens_for(TrackedSession, "after_transaction_end")
def _ended(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        session.info.pop(_WROTE, None)


# ---------------------------------------------------------------------------- ON CONFLICT

_CONFLICT_INSERTS: dict[str, Callable[..., Any]] = {"sqlite": _sqlite_insert, "postgresql": _postgresql_insert}


def conflict_insert(dialect: str) -> Callable[..., Any]:
    """``insert`` with ``ON CONFLICT`` clauses for the database named (``sqlite`` or
    ``postgresql``: the same SQL on both, built by each dialect's own construct)."""
    return _CONFLICT_INSERTS[dialect]


def insert_ignoring_conflict(session: AsyncSession, model: Any, *columns: str) -> Any:
    """``INSERT INTO model ... ON CONFLICT (columns) DO NOTHING`` for the session's database."""
    insert = conflict_insert(session.get_bind().dialect.name)
    return insert(model).on_conflict_do_nothing(index_elements=list(columns))


def has_written(session: AsyncSession) -> bool:
    """Whether the session's transaction holds writes of this request (statements run through
    it, or objects added, changed or deleted and not yet flushed)."""
    sync = session.sync_session
    return bool(sync.info.get(_WROTE) or sync.new or sync.dirty or sync.deleted)


async def run_blocking(session: AsyncSession, function: Callable[..., T], *args: Any) -> T:
    """Run slow blocking ``function`` (password hashing) in a thread, off the database.

    When the session has only read so far, its transaction is ended first (a commit that
    writes nothing; loaded objects stay usable), so the connection — on SQLite, the one
    writer — is free for other requests while the thread works; the session begins a new
    transaction at its next statement. A session that has already written keeps its
    transaction (it cannot be split), so callers hash before they write; so does a session
    that expires its objects on commit (they would have to be loaded again).
    """
    sync = session.sync_session
    if not has_written(session) and not sync.expire_on_commit and session.in_transaction():
        await session.commit()
    return await asyncio.to_thread(function, *args)


# ---------------------------------------------------------------------------- inline reads


class InlineReadSession:
    """The read half of ``AsyncSession``'s API over a synchronous ``Session``.

    Used for SQLite reads only (``READ_SESSIONS``). SQLite is a library in this process: an
    indexed read of a page takes tens of microseconds in C, far less than handing each
    statement to aiosqlite's thread and back, so read-only handlers run their queries inline on
    the event loop. The connection is query-only (``PRAGMA query_only``); in WAL mode
    readers never wait for writers, so nothing here blocks on a lock. Writes keep going through
    the async engine.

    The ORM session is created on first use only; ``fetch_sql`` runs prepared SQL text straight
    on the query-only connection, for the hottest read (the group timeline) whose statement is
    compiled once at import.
    """

    def __init__(self, factory: sessionmaker[Session], raw: sqlite3.Connection) -> None:
        self._factory = factory
        self._session: Session | None = None
        self._raw = raw

    @property
    def _orm(self) -> Session:
        if self._session is None:
            self._session = self._factory()
        return self._session

    async def __aenter__(self) -> InlineReadSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            self._session.close()

    async def fetch_sql(self, sql: str, params: dict[str, Any]) -> list[Any]:
        """Rows of a prepared SQL text (named parameters already in driver form)."""
        return self._raw.execute(sql, params).fetchall()

    async def execute(self, statement: Any, params: Any = None, **kw: Any) -> Any:
        return self._orm.execute(statement, params, **kw)

    async def scalar(self, statement: Any, params: Any = None, **kw: Any) -> Any:
        return self._orm.scalar(statement, params, **kw)

    async def scalars(self, statement: Any, params: Any = None, **kw: Any) -> Any:
        return self._orm.scalars(statement, params, **kw)

    async def get(self, entity: Any, ident: Any, **kw: Any) -> Any:
        return self._orm.get(entity, ident, **kw)

    async def commit(self) -> None:
        if self._session is not None:
            self._session.rollback()  # nothing to commit: ends the read transaction

    async def rollback(self) -> None:
        if self._session is not None:
            self._session.rollback()

    async def close(self) -> None:
        if self._session is not None:
            self._session.close()


class ReadSessions:
    """Factory of sessions for read-only handlers (``READ_SESSIONS``).

    On SQLite: ``InlineReadSession`` over query-only connections used from the event loop
    thread (one for the ORM, one for prepared SQL text). On PostgreSQL: the ordinary async
    sessions (asyncpg is already asynchronous).
    """

    def __init__(self, url: str, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self._engine = None
        self._factory: sessionmaker[Session] | None = None
        self._raw: sqlite3.Connection | None = None
        if url.startswith("sqlite"):
            path = url.split(":///", 1)[1]
            self._engine = create_engine(
                "sqlite://",
                creator=lambda: sqlite3.connect(path, check_same_thread=False),
                poolclass=StaticPool,
            )
            event.listen(self._engine, "connect", _query_only)
            self._factory = sessionmaker(self._engine, expire_on_commit=False)
            # Autocommit mode: every SELECT sees the newest commit, no read transaction lingers.
            self._raw = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            _query_only(self._raw, None)

    def __call__(self) -> Any:
        if self._factory is None or self._raw is None:
            return self._sessions()
        return InlineReadSession(self._factory, self._raw)

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
        if self._raw is not None:
            self._raw.close()


def _query_only(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA query_only=ON")  # this connection can never write
    cursor.execute("PRAGMA busy_timeout=1000")
    cursor.close()


async def bulk_insert(session: AsyncSession, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert many rows in the session's transaction, binding each column's values with the
    column type's own processor once per value, and handing the driver one ``executemany``.

    ``insert(table)`` with a list of dicts does the same through SQLAlchemy's generic per-row
    parameter machinery, which costs about 20 µs a row; a 20,000-domain import writes 40,000
    rows (blocks and their audit entries). Every row must give the same columns; columns left
    out take their Python-side defaults (SQL-expression defaults are refused).
    """
    if not rows:
        return
    connection = await session.connection()
    dialect = connection.dialect
    names = list(rows[0])
    given = set(names)
    constants: dict[str, Any] = {}  # columns left out: their default, bound once
    for column in table.columns:
        if column.name in given or column.default is None:
            continue
        default: Any = column.default
        if not (default.is_scalar or default.is_callable):
            raise ValueError(f"bulk_insert: {table.name}.{column.name} has a SQL default")
        value = default.arg(None) if default.is_callable else default.arg
        processor = column.type.dialect_impl(dialect).bind_processor(dialect)
        constants[column.name] = processor(value) if processor is not None else value
    # A TypeDecorator's dialect_impl chains its process_bind_param before the driver's processor.
    binders = [(name, table.columns[name].type.dialect_impl(dialect).bind_processor(dialect)) for name in names]
    columns: list[list[Any]] = []
    for name, processor in binders:
        raw = [row[name] for row in rows]
        if processor is None:
            columns.append(raw)
            continue
        bound: list[Any] = []
        last: Any = object()
        done: Any = None
        for value in raw:
            if value is not last:  # a value repeated as the same object (a timestamp) binds once
                last, done = value, processor(value)
            bound.append(done)
        columns.append(bound)
    names += list(constants)
    columns += [[value] * len(rows) for value in constants.values()]
    values = list(zip(*columns, strict=True))
    quoted = ", ".join(dialect.identifier_preparer.quote(name) for name in names)
    if dialect.paramstyle == "qmark":  # sqlite3
        marks = ", ".join("?" for _ in names)
    elif dialect.paramstyle == "numeric_dollar":  # asyncpg
        marks = ", ".join(f"${i + 1}" for i in range(len(names)))
    else:
        raise ValueError(f"bulk_insert: unsupported paramstyle {dialect.paramstyle}")
    # Table and column names come from our own models, quoted by the dialect; values are bound.
    sql = f"INSERT INTO {dialect.identifier_preparer.format_table(table)} ({quoted}) VALUES ({marks})"  # noqa: S608
    await connection.exec_driver_sql(sql, values)
    session.sync_session.info[_WROTE] = True
