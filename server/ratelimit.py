"""Security rate limits counted in the database, so they hold across every web process.

Design note
-----------
A security limit kept in process memory gives an attacker N times the limit when the
instance runs N web processes (``serve --processes N``, or several machines on one
PostgreSQL). Failed logins, password checks, one-time-key claims and encrypted sends are
therefore counted in the ``rate_limit_hits`` table, one row per (bucket, window, key).

* **Counting.** Time is cut into fixed 60-second windows (unix time, so every process
  agrees). An event is one atomic ``INSERT ... ON CONFLICT DO UPDATE SET hits = hits + 1
  RETURNING hits`` (SQLite >= 3.35 and PostgreSQL): concurrent events on any number of
  processes each get their own count, so exactly ``limit`` of them pass.
* **Sliding minute.** The limit is checked against an estimate of the last 60 seconds: the
  previous window's count, weighted by how much of it is still inside the minute, plus the
  current window's (``previous * (1 - elapsed / 60) + current``). That removes the burst of
  2x a fixed window allows at its edge. It is an estimate: every calendar window holds at
  most ``limit`` events, so the long-run rate is at most the limit, but hits packed at the
  very end of one window and spread over the next can put up to about 2x ``limit`` into one
  60-second span (never into a short burst).
* **Refusals write nothing.** ``hit`` first reads the two windows (``check``, which also
  serves as "check without counting") and refuses from that read, so a flood of refused
  requests costs one indexed read each and never takes SQLite's write lock. A request that
  passes the read but loses a race to the limit takes its increment back before refusing.
* **In-flight attempts count.** A password attempt is counted before the password is
  verified and taken back (``forgive``) only when it was right, so a burst of parallel
  guesses cannot pass while the first ones are still being hashed.
* **Transactions.** The count must survive the request failing (a wrong password answers
  400 and rolls the request back), so ``hit`` and ``forgive`` commit the session they are
  given. That session must not have written anything yet (checked: a ``RuntimeError``
  otherwise); handlers call them while they have only read. Using the caller's session, not
  a second one, matters on SQLite: the engine has one connection and a handler that opened a
  second session while holding the first would wait for itself.
* **Keys.** The table holds a SHA-256 digest of the bucket and the key's parts, never the
  login name, user id or actor URI, so a database dump does not list who tried to log in
  (nor a password typed into the login field). The digest is not keyed with the instance
  secret on purpose: processes that disagreed on the secret would count apart, which is the
  weakness this module removes. Someone holding a dump can still confirm a guessed name
  was tried in the last minutes by hashing it; nothing older is kept (next point).
* **Pruning.** Windows older than the previous one no longer count. Each process deletes a
  bucket's old windows after its first counted event in each new window (a range of the
  primary key), so while a bucket sees events it holds about two minutes of them, with no
  worker; after the last event its rows stay until the next one.

Refusals are ``TooManyRequests`` (429 with ``Retry-After``) with the bucket's own message.
Nothing about the keys is logged.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import cast

from sqlalchemy import Table, bindparam, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from server.db import conflict_insert, has_written
from server.errors import TooManyRequests
from server.models import RateLimitHits

WINDOW = 60  # seconds in a window; the limits are per minute

_HITS = cast(Table, RateLimitHits.__table__)  # Core statements: no ORM bookkeeping per event
_BUCKETS: set[str] = set()


# ---------------------------------------------------------------------------- the estimate (pure)


@dataclass(frozen=True, slots=True)
class Usage:
    """A key's counts at a moment: its previous and current window, and how far into the
    current window the moment is (seconds)."""

    previous: int
    current: int
    elapsed: float

    def estimate(self) -> float:
        """Events in the last 60 seconds, taking the previous window's as evenly spread."""
        return self.previous * (1 - self.elapsed / WINDOW) + self.current

    def allows(self, limit: int) -> bool:
        """True when one more event stays within ``limit``."""
        return self.estimate() < limit

    def retry_after(self, limit: int) -> int:
        """Whole seconds until one more event would be allowed, if nothing else is counted."""
        if self.current < limit:  # the previous window's share must fade below the room left
            wait = WINDOW * (1 - (limit - self.current) / self.previous) - self.elapsed
        else:  # this window is full: it must become the previous one and fade in turn
            wait = (WINDOW - self.elapsed) + WINDOW * (1 - limit / self.current)
        return max(1, min(WINDOW, math.floor(wait) + 1))


def window_of(at: float) -> int:
    """The start (unix seconds) of the window holding ``at``."""
    return int(at // WINDOW) * WINDOW


# ---------------------------------------------------------------------------- limits


@dataclass(frozen=True, slots=True)
class Hit:
    """One counted event: the window it was counted in, so ``forgive`` can take it back."""

    bucket: str
    key: str
    window_start: int


class RateLimit:
    """One named security limit (a *bucket*): at most ``limit`` events per key in a sliding
    minute, counted in the database (see the module note).

    ``refusal`` is the 429 message; ``{seconds}`` in it is replaced by the computed wait.
    ``retry_after`` fixes the ``Retry-After`` seconds instead (for messages that say "a
    minute"); by default it is computed from the counts.
    """

    def __init__(self, bucket: str, refusal: str, *, retry_after: int | None = None) -> None:
        if bucket in _BUCKETS or not 0 < len(bucket) <= 32:
            raise ValueError(f"rate limit bucket {bucket!r} is taken or malformed")
        _BUCKETS.add(bucket)
        self.bucket = bucket
        self.refusal = refusal
        self.fixed_retry_after = retry_after
        self._pruned_window = 0  # the newest window this process pruned before

    def key(self, *parts: str | int) -> str:
        """The stored key: a SHA-256 digest of the bucket and the parts (unambiguous JSON)."""
        return hashlib.sha256(json.dumps([self.bucket, *parts]).encode()).hexdigest()

    def _refuse(self, usage: Usage, limit: int) -> TooManyRequests:
        seconds = self.fixed_retry_after or usage.retry_after(limit)
        return TooManyRequests(self.refusal.format(seconds=seconds), retry_after=seconds)

    async def usage(self, session: AsyncSession, *parts: str | int, at: float) -> Usage:
        """The key's counts at ``at`` (unix seconds). Reads only."""
        return await session.run_sync(self._usage, self.key(*parts), at)

    async def check(self, session: AsyncSession, *parts: str | int, limit: int, at: float) -> Usage:
        """Raise ``TooManyRequests`` when the key's minute is used up; count nothing."""
        usage = await self.usage(session, *parts, at=at)
        if not usage.allows(limit):
            raise self._refuse(usage, limit)
        return usage

    async def hit(self, session: AsyncSession, *parts: str | int, limit: int, at: float) -> Hit:
        """Count one event for the key, or raise ``TooManyRequests`` (counting nothing).

        Commits ``session``, which must not have written anything (see the module note).
        """
        _require_unwritten(session)
        return await session.run_sync(self._hit, self.key(*parts), limit, at)

    async def forgive(self, session: AsyncSession, hit: Hit) -> None:
        """Take back a counted event (a password that turned out right). Commits ``session``,
        which must not have written anything."""
        _require_unwritten(session)
        await session.run_sync(_forgive, hit)

    async def prune(self, session: AsyncSession, *, at: float) -> int:
        """Delete this bucket's windows that can no longer count at ``at``; the caller commits."""
        return await session.run_sync(self._prune, at)

    # The work runs in one greenlet hop per call (``run_sync``), with statements built once at
    # import: per event that saves more time than the statements themselves take on SQLite.

    def _usage(self, session: Session, key: str, at: float) -> Usage:
        start = window_of(at)
        rows = session.connection().execute(
            _COUNTS, {"b": self.bucket, "k": key, "previous": start - WINDOW, "current": start}
        )
        counts = {int(window): int(hits) for window, hits in rows.all()}
        return Usage(counts.get(start - WINDOW, 0), counts.get(start, 0), at - start)

    def _hit(self, session: Session, key: str, limit: int, at: float) -> Hit:
        usage = self._usage(session, key, at)
        if not usage.allows(limit):
            raise self._refuse(usage, limit)
        hit = Hit(self.bucket, key, window_of(at))
        connection = session.connection()
        counted = connection.execute(_UPSERT[connection.dialect.name], _params(hit)).scalar_one()
        raced = Usage(usage.previous, int(counted) - 1, usage.elapsed)  # events counted before this one
        if not raced.allows(limit):  # others took the last room since the check: take this one back
            connection.execute(_TAKE_BACK, _params(hit))
        session.commit()
        if not raced.allows(limit):
            raise self._refuse(raced, limit)
        if hit.window_start > self._pruned_window:
            self._pruned_window = hit.window_start
            self._prune(session, at)
            session.commit()
        return hit

    def _prune(self, session: Session, at: float) -> int:
        result = session.connection().execute(_PRUNE, {"b": self.bucket, "before": window_of(at) - WINDOW})
        return int(result.rowcount or 0)


def _params(hit: Hit) -> dict[str, str | int]:
    return {"b": hit.bucket, "w": hit.window_start, "k": hit.key}


def _forgive(session: Session, hit: Hit) -> None:
    session.connection().execute(_TAKE_BACK, _params(hit))
    session.commit()


# Bound names differ from the column names: SQLAlchemy keeps those for VALUES and SET.
_COUNTS = select(_HITS.c.window_start, _HITS.c.hits).where(
    _HITS.c.bucket == bindparam("b"),
    _HITS.c.window_start.in_([bindparam("previous"), bindparam("current")]),
    _HITS.c.key == bindparam("k"),
)
_UPSERT = {
    name: conflict_insert(name)(_HITS)
    .values(bucket=bindparam("b"), window_start=bindparam("w"), key=bindparam("k"), hits=1)
    .on_conflict_do_update(index_elements=["bucket", "window_start", "key"], set_={"hits": _HITS.c.hits + 1})
    .returning(_HITS.c.hits)
    for name in ("sqlite", "postgresql")
}
_TAKE_BACK = (
    update(_HITS)
    .where(
        _HITS.c.bucket == bindparam("b"),
        _HITS.c.window_start == bindparam("w"),
        _HITS.c.key == bindparam("k"),
        _HITS.c.hits > 0,
    )
    .values(hits=_HITS.c.hits - 1)
)
_PRUNE = delete(_HITS).where(_HITS.c.bucket == bindparam("b"), _HITS.c.window_start < bindparam("before"))


def _require_unwritten(session: AsyncSession) -> None:
    """Committing the count must not commit half of the request's own writes."""
    sync = session.sync_session
    if has_written(session):
        raise RuntimeError("rate limits are counted before the request writes (the count commits the session)")
    if sync.expire_on_commit:
        raise RuntimeError("rate limits need a session that keeps its objects on commit (server.db.make_sessionmaker)")
