"""Outgoing activities: enqueue (one row per activity and inbox) and the delivery worker.

``enqueue`` writes one ``outbox_activities`` row holding the exact JSON and one ``deliveries``
row per destination inbox, shared inboxes first (research/federation.md §8.3; AP §7.1.3),
never to a suspended domain, never to ourselves; the caller's transaction commits them with
the change that caused them, so a post and its deliveries exist together or not at all.

The worker claims due deliveries (``server.workers.claim``), signs each POST with the key of
the activity's actor (§8.3 item 14), and applies the pure rules of ``federation.delivery``:
which answers are final, when to retry (``RETRY_DELAYS``, about 2–3 days), ``Retry-After``,
the per-domain circuit breaker, and the 7-distinct-days unavailability rule.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crypto.signing import PrivateKey
from federation import delivery as policy
from federation.httpsig import sign_request
from server.db import after_commit
from server.domains import bare_host, is_suspended
from server.federation import Federation, host_of
from server.ids import new_id
from server.models import Account, ActorKey, Delivery, DomainHealth, OutboxActivity
from server.web import now
from server.workers import POLL_SECONDS, WAKEUPS, claim

log = logging.getLogger(__name__)

DELIVERY = "delivery"
LEASE_MARGIN = timedelta(seconds=30)
BATCH = 200


def wake_delivery() -> None:
    WAKEUPS.notify(DELIVERY)


async def enqueue(
    session: AsyncSession,
    fed_config_base_url: str,
    *,
    actor_account_id: int | None,
    activity: Mapping[str, Any],
    inboxes: Iterable[str],
) -> OutboxActivity | None:
    """Record ``activity`` and one delivery per distinct remote inbox (the caller commits)."""
    local_host = host_of(fed_config_base_url)
    targets: list[str] = []
    seen: set[str] = set()
    suspended: dict[str, bool] = {}
    for inbox in inboxes:
        if not inbox or inbox in seen:
            continue
        seen.add(inbox)
        domain = host_of(inbox)
        if domain == local_host:
            continue
        if domain not in suspended:
            suspended[domain] = await is_suspended(session, domain)
        if suspended[domain]:
            continue
        targets.append(inbox)
    existing = await session.scalar(select(OutboxActivity).where(OutboxActivity.uri == str(activity["id"])))
    if existing is not None:
        return existing  # sent already (an activity re-applied after a crash): nothing new
    moment = now()
    row = OutboxActivity(
        id=new_id(),
        uri=str(activity["id"]),
        account_id=actor_account_id,
        activity_type=str(activity.get("type", ""))[:32],
        body=json.dumps(activity, ensure_ascii=False, separators=(",", ":")),
        created_at=moment,
    )
    session.add(row)
    await session.flush()
    for inbox in targets:
        session.add(
            Delivery(
                id=new_id(),
                activity_id=row.id,
                inbox_url=inbox,
                domain=host_of(inbox),
                state="pending",
                attempts=0,
                next_attempt_at=moment,
                created_at=moment,
            )
        )
    if targets:
        after_commit(session, wake_delivery)
    return row


# ---------------------------------------------------------------------------- domain health


def _state(row: DomainHealth | None) -> policy.DomainState:
    if row is None:
        return policy.DomainState()
    return policy.DomainState(
        failure_days=frozenset(date.fromisoformat(day) for day in row.failure_days),
        consecutive_failures=row.consecutive_failures,
        circuit_open_until=row.circuit_open_until,
        unavailable_since=row.unavailable_since,
        last_success_at=row.last_success_at,
    )


async def _save_state(session: AsyncSession, domain: str, state: policy.DomainState) -> None:
    row = await session.get(DomainHealth, domain)
    if row is None:
        row = DomainHealth(domain=domain)
        session.add(row)
    row.failure_days = sorted(day.isoformat() for day in state.failure_days)
    row.consecutive_failures = state.consecutive_failures
    row.circuit_open_until = state.circuit_open_until
    row.unavailable_since = state.unavailable_since
    row.last_success_at = state.last_success_at


async def note_inbound(session: AsyncSession, domain: str) -> None:
    """A signed request arrived from ``domain``: it is reachable again (Mastodon's rule)."""
    row = await session.get(DomainHealth, domain)
    if row is not None and (row.unavailable_since is not None or row.failure_days):
        await _save_state(session, domain, policy.after_inbound(_state(row), now()))


# ---------------------------------------------------------------------------- worker


@dataclass
class _Signers:
    """Parsed private keys by actor. Each use checks (one indexed query) that the cached key is
    still the actor's active one, so a rotation — possibly by another process — takes effect
    on the next delivery; parsing a PEM is what is cached, not the decision."""

    fed: Federation
    keys: dict[int | None, tuple[int, PrivateKey, str]]

    async def get(self, session: AsyncSession, account_id: int | None) -> tuple[PrivateKey, str]:
        if account_id is None:
            cached = self.keys.get(None)
            if cached is None:
                cached = (0, PrivateKey.from_pem(self.fed.instance.rsa_private_pem), self.fed.instance.rsa_key_id)
                self.keys[None] = cached
            return cached[1], cached[2]
        active = (
            select(ActorKey.id)
            .where(
                ActorKey.account_id == account_id,
                ActorKey.kind == "rsa",
                ActorKey.private_pem.is_not(None),
                ActorKey.revoked_at.is_(None),
            )
            .limit(1)
        )
        row_id = await session.scalar(active)
        cached = self.keys.get(account_id)
        if cached is not None and cached[0] == row_id:
            return cached[1], cached[2]
        from server.actor_keys import local_keys

        account = await session.get(Account, account_id)
        if account is None:
            raise LookupError("actor of the activity is gone")
        keys = await local_keys(session, self.fed.config, account)
        row_id = await session.scalar(active)
        if len(self.keys) > 1000:
            self.keys.clear()
        entry = (row_id or 0, PrivateKey.from_pem(keys.rsa_private_pem), keys.rsa_key_id)
        self.keys[account_id] = entry
        return entry[1], entry[2]


class DeliveryWorker:
    def __init__(self, fed: Federation) -> None:
        self.fed = fed
        self.signers = _Signers(fed, {})
        self.concurrency = int(fed.config.get("federation", "delivery_concurrency"))
        self.lease = timedelta(seconds=fed.config.get("federation", "request_timeout_seconds")) + LEASE_MARGIN
        self._bodies: dict[int, tuple[str, int | None]] = {}

    async def run(self, stop: asyncio.Event) -> None:
        """Keep up to ``delivery_concurrency`` deliveries in flight, claiming one row per free
        slot: every claimed row starts at once, so each finishes well inside its lease (a
        batch waiting behind slow peers could outlive its lease and be sent twice)."""
        wake = WAKEUPS.register(DELIVERY)
        in_flight: set[asyncio.Task[None]] = set()
        try:
            while not stop.is_set():
                wake.clear()
                free = self.concurrency - len(in_flight)
                claimed: list[Delivery] = []
                if free > 0:
                    try:
                        claimed = await claim(self.fed.sessions, Delivery, limit=min(free, BATCH), lease=self.lease)
                    except Exception as exc:  # the database may be restarting: retry after a pause
                        log.warning("delivery claim failed: %s", type(exc).__name__)
                for row in claimed:
                    task = asyncio.create_task(self._deliver_logged(row))
                    in_flight.add(task)
                    task.add_done_callback(in_flight.discard)
                if claimed and len(in_flight) < self.concurrency:
                    continue  # there may be more due rows
                waiters: set[asyncio.Future[Any]] = {
                    asyncio.ensure_future(stop.wait()),
                    asyncio.ensure_future(wake.wait()),
                    *in_flight,
                }
                timeout = None if len(in_flight) >= self.concurrency else POLL_SECONDS
                await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                for waiter in waiters:
                    if waiter not in in_flight and not waiter.done():
                        waiter.cancel()
        finally:
            WAKEUPS.unregister(DELIVERY, wake)
            if in_flight:
                # Give running POSTs a moment; what is cut off keeps its lease and is retried.
                _done, pending = await asyncio.wait(in_flight, timeout=3)
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)

    async def _deliver_logged(self, row: Delivery) -> None:
        try:
            await self.deliver(row)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # one bad row must not stop the worker; its lease expires
            log.exception("delivery failed unexpectedly: delivery=%s (%s)", row.id, type(exc).__name__)

    async def step(self) -> int:
        """Claim and deliver one batch, waiting for all of it (tests use this directly)."""
        rows = await claim(self.fed.sessions, Delivery, limit=BATCH, lease=self.lease)
        if not rows:
            return 0
        semaphore = asyncio.Semaphore(self.concurrency)

        async def one(row: Delivery) -> None:
            async with semaphore:
                await self.deliver(row)

        await asyncio.gather(*(one(row) for row in rows))
        return len(rows)

    async def _activity(self, session: AsyncSession, activity_id: int) -> tuple[str, int | None]:
        cached = self._bodies.get(activity_id)
        if cached is None:
            row = await session.get(OutboxActivity, activity_id)
            if row is None:
                raise LookupError("activity is gone")
            cached = (row.body, row.account_id)
            if len(self._bodies) > 500:
                self._bodies.clear()
            self._bodies[activity_id] = cached
        return cached

    async def deliver(self, row: Delivery) -> None:
        moment = now()
        async with self.fed.sessions() as session:
            if await is_suspended(session, row.domain):
                await self._finish(session, row, "skipped", error="domain_suspended")
                return
            health = await session.get(DomainHealth, row.domain)
            decision = policy.may_attempt(_state(health), moment)
            if decision.kind == "unavailable":
                await self._finish(session, row, "skipped", error="domain_unavailable")
                return
            if decision.kind == "wait":
                await session.execute(
                    update(Delivery)
                    .where(Delivery.id == row.id)
                    .values(next_attempt_at=decision.until, locked_until=None)
                )
                await session.commit()
                return
            try:
                body, account_id = await self._activity(session, row.activity_id)
                key, key_id = await self.signers.get(session, account_id)
            except LookupError:
                await self._finish(session, row, "failed", error="activity_gone")
                return
            await session.commit()  # nothing is held open across the network call

        def signer(method: str, url: str, headers: Mapping[str, str], payload: bytes | None) -> dict[str, str]:
            return sign_request(
                method, url, headers=headers, body=payload, key=key, key_id=key_id, now=datetime.now(UTC)
            )

        result = await self.fed.transport.post_activity(row.inbox_url, body.encode(), signer=signer)
        outcome = policy.classify(result.status, error=result.error)
        moment = now()
        async with self.fed.sessions() as session:
            state = _state(await session.get(DomainHealth, row.domain))
            # An answer (2xx, or a final 4xx) shows the server alive; a retryable one counts as
            # a failure; refusing before contacting anyone changes nothing.
            await _save_state(
                session, row.domain, policy.after_attempt(state, moment, status=result.status, outcome=outcome)
            )
            if outcome is policy.Outcome.DELIVERED:
                await self._finish(session, row, "delivered", status=result.status)
                return
            if outcome is policy.Outcome.PERMANENT:
                error = result.error or f"http_{result.status}"
                await self._finish(session, row, "failed", status=result.status, error=error)
                return
            attempts = row.attempts + 1
            retry_after = policy.parse_retry_after(result.retry_after, moment)
            jitter = random.random()  # noqa: S311 - spreads retries; not a secret
            when = policy.next_attempt(attempts, moment, jitter=jitter, retry_after=retry_after)
            if when is None:
                await self._finish(session, row, "failed", status=result.status, error="retries_exhausted")
                return
            await session.execute(
                update(Delivery)
                .where(Delivery.id == row.id)
                .values(
                    attempts=attempts,
                    next_attempt_at=when,
                    locked_until=None,
                    last_status=result.status,
                    last_error=(result.error or f"http_{result.status}")[:255],
                )
            )
            await session.commit()
        log.info(
            "delivery retry scheduled: delivery=%s domain=%s attempt=%d reason=%s",
            row.id,
            bare_host(row.domain),
            attempts,
            result.error or result.status,
        )

    async def _finish(
        self, session: AsyncSession, row: Delivery, state: str, *, status: int | None = None, error: str | None = None
    ) -> None:
        await session.execute(
            update(Delivery)
            .where(Delivery.id == row.id)
            .values(
                state=state,
                locked_until=None,
                finished_at=now(),
                attempts=row.attempts + (0 if state == "skipped" else 1),
                last_status=status,
                last_error=error,
            )
        )
        await session.commit()
        if state != "delivered":
            log.info("delivery %s: delivery=%s domain=%s reason=%s", state, row.id, bare_host(row.domain), error)
