"""Other durable jobs: fetching the missing ancestors of remote replies (thread stitching).

A reply whose parent we do not have is stored with ``in_reply_to_uri``; one job per missing
URL fetches the parent from its origin (id checked), stores it when it is public, unlisted,
or otherwise visible to someone here, and schedules its own parent in turn, up to
``federation.thread_fetch_limit`` levels (Lemmy caps fetches per activity for the same reason,
research/federation.md §2.7 "Rate limits").
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update

from server.federation import Federation
from server.ingest import NOTE_TYPES, Ignored, store_note
from server.models import Job, Status
from server.outbox import JOBS, schedule_thread_fetch
from server.remote_actors import ActorUnavailable, resolve_actor
from server.transport import FetchError
from server.web import now
from server.workers import backoff, claim, run_loop

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
LEASE = timedelta(minutes=2)


class JobWorker:
    def __init__(self, fed: Federation) -> None:
        self.fed = fed

    async def run(self, stop: Any) -> None:
        await run_loop(JOBS, self.step, stop)

    async def step(self) -> int:
        rows = await claim(self.fed.sessions, Job, limit=20, lease=LEASE)
        for row in rows:
            await self.process(row)
        return len(rows)

    async def process(self, job: Job) -> None:
        try:
            if job.kind == "fetch_ancestor":
                await self.fetch_ancestor(job.payload)
            elif job.kind == "feed_publish":
                from server.feeds import run_publish_job

                await run_publish_job(self.fed.sessions, self.fed.config, at=now())
            elif job.kind == "subscription_sync":
                from server.subscriptions import run_sync_job

                await run_sync_job(self.fed, job.payload)
            else:
                raise Ignored(f"unknown_job_{job.kind[:20]}")
        except Ignored as exc:
            await self._end(job, "done", str(exc))
        except (FetchError, ActorUnavailable) as exc:
            attempts = job.attempts + 1
            if attempts >= MAX_ATTEMPTS or getattr(exc, "reason", "") in ("not_found", "gone"):
                await self._end(job, "failed", getattr(exc, "reason", "fetch_failed"))
                return
            async with self.fed.sessions() as session:
                await session.execute(
                    update(Job)
                    .where(Job.id == job.id)
                    .values(attempts=attempts, next_attempt_at=now() + backoff(attempts), locked_until=None)
                )
                await session.commit()
        except Exception as exc:
            log.exception("job failed: job=%s kind=%s", job.id, job.kind)
            await self._end(job, "failed", type(exc).__name__)
        else:
            await self._end(job, "done", None)

    async def _end(self, job: Job, state: str, reason: str | None) -> None:
        async with self.fed.sessions() as session:
            # Free the unique key so the same URL can be fetched again later.
            await session.execute(
                update(Job)
                .where(Job.id == job.id)
                .values(state=state, locked_until=None, error=reason, unique_key=None)
            )
            await session.commit()

    async def fetch_ancestor(self, payload: dict[str, Any]) -> None:
        from federation.inbound import parse_note

        uri = str(payload["uri"])
        depth = int(payload.get("depth", 0))
        async with self.fed.sessions() as session:
            if await session.scalar(select(Status.id).where(Status.uri == uri)) is not None:
                raise Ignored("already_known")
        document = await self.fed.transport.fetch_json(uri)
        if document.get("type") not in NOTE_TYPES:
            raise Ignored("not_a_post")
        note = parse_note(document)
        if note.attributed_to is None:
            raise Ignored("post_without_author")
        author = await resolve_actor(self.fed, note.attributed_to)
        async with self.fed.sessions() as session:
            status = await store_note(session, self.fed, note, author, group=None)
            await session.commit()
        if status is not None and status.in_reply_to_uri:
            await schedule_thread_fetch(self.fed, status.in_reply_to_uri, depth + 1)
