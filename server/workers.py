"""Durable background work: rows with a state machine, claimed with a lease.

DESIGN.md "Storage and processes": a worker claims due rows (``state = 'pending'``,
``next_attempt_at <= now``, no live lease) by setting ``locked_until`` in one short
transaction — with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL so several workers never claim the
same row; SQLite has one writer, so its claim transaction is serialised anyway. Network I/O
happens outside any transaction; the outcome is written in a second short transaction that
also clears the lease. A worker killed with ``kill -9`` leaves leases that expire, and the rows
are claimed again: work is never lost. Work may be repeated after a crash between the network
call and the outcome write; every receiver deduplicates by activity id, so the effect happens
once (tests/test_federation_crash.py shows it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.models import Delivery, InboxItem, Job
from server.web import now

log = logging.getLogger(__name__)

Row = TypeVar("Row", Delivery, InboxItem, Job)

POLL_SECONDS = 1.0


async def claim(
    sessions: async_sessionmaker[AsyncSession], model: type[Row], *, limit: int, lease: timedelta
) -> list[Row]:
    """Claim up to ``limit`` due rows of ``model`` for ``lease``; returns detached rows.

    One ``UPDATE ... WHERE id IN (due rows) RETURNING id`` statement: atomic on SQLite (one
    writer) and, with ``FOR UPDATE SKIP LOCKED`` in the subquery, on PostgreSQL — two workers
    never hold the same row.
    """
    moment = now()
    until = moment + lease
    async with sessions() as session:
        due = (
            select(model.id)
            .where(
                model.state == "pending",
                model.next_attempt_at <= moment,
                or_(model.locked_until.is_(None), model.locked_until < moment),
            )
            .order_by(model.next_attempt_at, model.id)
            .limit(limit)
        )
        if session.get_bind().dialect.name == "postgresql":
            due = due.with_for_update(skip_locked=True)
        claimed = await session.execute(
            update(model)
            .where(model.id.in_(due.scalar_subquery()))
            .values(locked_until=until)
            .returning(model.id)
            .execution_options(synchronize_session=False)
        )
        ids = [r[0] for r in claimed]
        await session.commit()
        if not ids:
            return []
        rows = list((await session.scalars(select(model).where(model.id.in_(ids)).order_by(model.id))).all())
        await session.commit()
        return rows


class Wakeups:
    """Events that wake this process's workers; ``notify`` is safe to call from commit hooks."""

    def __init__(self) -> None:
        self._events: dict[str, set[asyncio.Event]] = {}

    def register(self, name: str) -> asyncio.Event:
        event = asyncio.Event()
        self._events.setdefault(name, set()).add(event)
        return event

    def unregister(self, name: str, event: asyncio.Event) -> None:
        self._events.get(name, set()).discard(event)

    def notify(self, name: str) -> None:
        for event in list(self._events.get(name, ())):
            event.set()


WAKEUPS = Wakeups()


async def run_loop(
    name: str,
    step: Callable[[], Awaitable[int]],
    stop: asyncio.Event,
    *,
    poll: float = POLL_SECONDS,
) -> None:
    """Call ``step`` until ``stop``; sleep until woken (or ``poll``) when it found nothing."""
    wake = WAKEUPS.register(name)
    try:
        while not stop.is_set():
            wake.clear()
            try:
                done = await step()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a worker must survive a bad row or a database hiccup
                log.exception("worker %s step failed: %s", name, type(exc).__name__)
                done = 0
            if done:
                continue
            with contextlib.suppress(TimeoutError):
                stopper = asyncio.ensure_future(stop.wait())
                waker = asyncio.ensure_future(wake.wait())
                try:
                    await asyncio.wait({stopper, waker}, timeout=poll, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    stopper.cancel()
                    waker.cancel()
    finally:
        WAKEUPS.unregister(name, wake)


def backoff(attempts: int, base: float = 10.0, cap: float = 6 * 3600.0) -> timedelta:
    """Retry delay for inbox items and jobs (not deliveries: those follow federation.delivery)."""
    return timedelta(seconds=min(cap, base * (4 ** max(0, attempts - 1))))
