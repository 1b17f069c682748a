"""Start and stop the federation context and its workers (in ``serve`` or ``worker``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.config import Config
from server.federation import Federation

log = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def running_federation(
    config: Config, sessions: async_sessionmaker[AsyncSession], *, workers: bool
) -> AsyncIterator[Federation]:
    """A started ``Federation``; with ``workers``, the inbox, delivery and job workers run too.

    On exit the workers are asked to stop and given a moment to finish their current row;
    anything unfinished keeps its lease and is picked up again after it expires.
    """
    from server import feeds
    from server.delivery import DeliveryWorker
    from server.e2ee import RetentionWorker
    from server.ingest import InboxWorker
    from server.jobs import JobWorker

    feeds.use_config(sessions.kw["bind"], config)  # workers' decision changes are published too
    fed = Federation(config, sessions)
    await fed.start()
    stop = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []
    if workers and fed.enabled:
        from server.subscriptions import SubscriptionScheduler

        for worker in (InboxWorker(fed), DeliveryWorker(fed), JobWorker(fed), SubscriptionScheduler(sessions)):
            tasks.append(asyncio.create_task(worker.run(stop), name=f"hearthside-{type(worker).__name__}"))
    if workers:
        retention = RetentionWorker(sessions, config)
        tasks.append(asyncio.create_task(retention.run(stop), name="hearthside-RetentionWorker"))
    try:
        yield fed
    finally:
        stop.set()
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=5)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await fed.close()
