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
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crypto.signing import PrivateKey
from federation import delivery as policy
from federation.httpsig import sign_request
from server.db import after_commit
from server.domains import suspended_among
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
    base_url: str,
    *,
    actor_account_id: int | None,
    activity: Mapping[str, Any],
    inboxes: Iterable[str],
) -> OutboxActivity | None:
    """Record ``activity`` and one delivery per distinct remote inbox (the caller commits)."""
    local_host = host_of(base_url)
    targets: list[str] = []
    seen: set[str] = set()
    for inbox in inboxes:
        if inbox and inbox not in seen and host_of(inbox) != local_host:
            seen.add(inbox)
            targets.append(inbox)
    suspended = await suspended_among(session, {host_of(inbox) for inbox in targets})
    targets = [inbox for inbox in targets if host_of(inbox) not in suspended]
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
    if targets:
        # One executemany, not an ORM object per inbox: a group post may have thousands.
        await session.execute(
            insert(Delivery.__table__),  # type: ignore[arg-type]
            [
                {
                    "id": new_id(),
                    "activity_id": row.id,
                    "inbox_url": inbox,
                    "domain": host_of(inbox),
                    "state": "pending",
                    "attempts": 0,
                    "next_attempt_at": moment,
                    "created_at": moment,
                }
                for inbox in targets
            ],
        )
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
class _Outcome:
    """What one delivery attempt ended with, waiting to be written (see ``_Results``)."""

    row_id: int
    state: str  # delivered | failed | skipped | pending (a retry or a postponement)
    attempts: int
    status: int | None = None
    error: str | None = None
    next_attempt_at: datetime | None = None


class _Results:
    """Outcomes written in batches: one transaction for many deliveries instead of one each.

    A batch is written at most ``FLUSH_SECONDS`` after its first outcome. If the process dies
    before that, the rows keep their lease and are delivered again after it expires; receivers
    deduplicate by activity id (module note), so the effect still happens once.
    """

    FLUSH_SECONDS = 0.02

    def __init__(self, worker: DeliveryWorker) -> None:
        self.worker = worker
        self.pending: list[_Outcome] = []
        self.dirty_domains: set[str] = set()
        self._writer: asyncio.Task[None] | None = None

    def add(self, outcome: _Outcome) -> None:
        self.pending.append(outcome)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_soon())

    async def _write_soon(self) -> None:
        await asyncio.sleep(self.FLUSH_SECONDS)
        await self.flush()

    async def flush(self) -> None:
        while self.pending or self.dirty_domains:
            batch, self.pending = self.pending, []
            domains, self.dirty_domains = self.dirty_domains, set()
            moment = now()
            try:
                async with self.worker.fed.sessions() as session:
                    await _write_outcomes(session, batch, moment)
                    for domain in domains:
                        await _save_state(session, domain, self.worker.health_of(domain))
                    await session.commit()
            except Exception as exc:  # leases expire and the rows are retried: nothing lost
                log.warning("delivery outcomes not written (%s): %d rows", type(exc).__name__, len(batch))
                return


_FINISHED = (
    update(Delivery.__table__)  # type: ignore[arg-type]
    .where(Delivery.__table__.c.id == bindparam("b_id"))
    .values(
        state=bindparam("b_state"),
        attempts=bindparam("b_attempts"),
        last_status=bindparam("b_status"),
        last_error=bindparam("b_error"),
        locked_until=None,
        finished_at=bindparam("b_finished", type_=Delivery.__table__.c.finished_at.type),
    )
)
_RESCHEDULED = (
    update(Delivery.__table__)  # type: ignore[arg-type]
    .where(Delivery.__table__.c.id == bindparam("b_id"))
    .values(
        attempts=bindparam("b_attempts"),
        last_status=bindparam("b_status"),
        last_error=bindparam("b_error"),
        locked_until=None,
        next_attempt_at=bindparam("b_next", type_=Delivery.__table__.c.next_attempt_at.type),
    )
)


async def _write_outcomes(session: AsyncSession, batch: list[_Outcome], moment: datetime) -> None:
    finished = [
        {
            "b_id": o.row_id,
            "b_state": o.state,
            "b_attempts": o.attempts,
            "b_status": o.status,
            "b_error": o.error,
            "b_finished": moment,
        }
        for o in batch
        if o.state != "pending"
    ]
    rescheduled = [
        {
            "b_id": o.row_id,
            "b_attempts": o.attempts,
            "b_status": o.status,
            "b_error": o.error,
            "b_next": o.next_attempt_at,
        }
        for o in batch
        if o.state == "pending"
    ]
    if finished:
        await session.execute(_FINISHED, finished)
    if rescheduled:
        await session.execute(_RESCHEDULED, rescheduled)
    for o in batch:
        if o.state in ("failed", "skipped") or (o.state == "pending" and o.error):
            log.info("delivery %s: delivery=%s attempt=%d reason=%s", o.state, o.row_id, o.attempts, o.error)


@dataclass
class _Batch:
    """What a claimed batch of deliveries needs, loaded in one session."""

    suspended: set[str]
    bodies: dict[int, tuple[str, int | None]]
    signers: dict[int | None, tuple[PrivateKey, str]]


@dataclass
class _Signers:
    """Parsed private keys by actor. Each use checks (one indexed query) that the cached key is
    still the actor's active one, so a rotation — possibly by another process — takes effect
    on the next delivery; parsing a PEM is what is cached, not the decision."""

    fed: Federation
    keys: dict[int | None, tuple[int, PrivateKey, str]]
    locks: dict[int, asyncio.Lock] = field(default_factory=dict)

    async def get(self, session: AsyncSession, account_id: int | None) -> tuple[PrivateKey, str]:
        if account_id is None:
            cached = self.keys.get(None)
            if cached is None:
                cached = (
                    0,
                    PrivateKey.from_pem(self.fed.instance.rsa_private_pem, trusted=True),
                    self.fed.instance.rsa_key_id,
                )
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

        # One key creation per actor even when many deliveries start at once.
        async with self.locks.setdefault(account_id, asyncio.Lock()):
            account = await session.get(Account, account_id)
            if account is None:
                raise LookupError("actor of the activity is gone")
            keys = await local_keys(session, self.fed.config, account)
            await session.commit()
            row_id = await session.scalar(active)
        if len(self.keys) > 1000:
            self.keys.clear()
        entry = (row_id or 0, PrivateKey.from_pem(keys.rsa_private_pem, trusted=True), keys.rsa_key_id)
        self.keys[account_id] = entry
        return entry[1], entry[2]


class DeliveryWorker:
    HEALTH_TTL = 30.0  # seconds a domain's health is trusted from memory

    def __init__(self, fed: Federation) -> None:
        self.fed = fed
        self.signers = _Signers(fed, {})
        self.concurrency = int(fed.config.get("federation", "delivery_concurrency"))
        self.lease = timedelta(seconds=fed.config.get("federation", "request_timeout_seconds")) + LEASE_MARGIN
        self._bodies: dict[int, tuple[str, int | None]] = {}
        self._health: dict[str, tuple[policy.DomainState, float]] = {}
        self.results = _Results(self)

    def health_of(self, domain: str) -> policy.DomainState:
        cached = self._health.get(domain)
        return cached[0] if cached is not None else policy.DomainState()

    async def run(self, stop: asyncio.Event) -> None:
        """Keep up to ``delivery_concurrency`` deliveries in flight. Rows are claimed in
        batches as slots free up; every claimed row starts at once, so each finishes well
        inside its lease (a batch waiting behind slow peers could outlive it and be sent twice).
        """
        wake = WAKEUPS.register(DELIVERY)
        in_flight: set[asyncio.Task[None]] = set()
        refill = max(1, self.concurrency // 4)
        try:
            while not stop.is_set():
                wake.clear()
                free = self.concurrency - len(in_flight)
                claimed: list[Delivery] = []
                if free >= refill or not in_flight:
                    try:
                        claimed = await claim(self.fed.sessions, Delivery, limit=min(free, BATCH), lease=self.lease)
                        batch = await self._prepare(claimed) if claimed else None
                    except Exception as exc:  # the database may be restarting: retry after a pause
                        log.warning("delivery claim failed: %s", type(exc).__name__)
                        claimed, batch = [], None
                    for row in claimed:
                        assert batch is not None
                        task = asyncio.create_task(self._deliver_logged(row, batch))
                        in_flight.add(task)
                        task.add_done_callback(in_flight.discard)
                if claimed and len(in_flight) < self.concurrency:
                    continue  # there may be more due rows
                waiters: set[asyncio.Future[Any]] = {
                    asyncio.ensure_future(stop.wait()),
                    asyncio.ensure_future(wake.wait()),
                    *in_flight,
                }
                timeout = None if len(in_flight) >= refill else POLL_SECONDS
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
            await self.results.flush()

    async def _deliver_logged(self, row: Delivery, batch: _Batch) -> None:
        try:
            await self.deliver(row, batch)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # one bad row must not stop the worker; its lease expires
            log.exception("delivery failed unexpectedly: delivery=%s (%s)", row.id, type(exc).__name__)

    async def step(self) -> int:
        """Claim and deliver one batch, waiting for all of it (tests use this directly)."""
        rows = await claim(self.fed.sessions, Delivery, limit=BATCH, lease=self.lease)
        if not rows:
            return 0
        batch = await self._prepare(rows)
        semaphore = asyncio.Semaphore(self.concurrency)

        async def one(row: Delivery) -> None:
            async with semaphore:
                await self.deliver(row, batch)

        await asyncio.gather(*(one(row) for row in rows))
        await self.results.flush()
        return len(rows)

    async def _prepare(self, rows: list[Delivery]) -> _Batch:
        """One session for the whole batch: blocks, domain health, bodies and signing keys."""
        domains = {row.domain for row in rows}
        moment = time.monotonic()
        async with self.fed.sessions() as session:
            suspended = await suspended_among(session, domains)
            stale = [d for d in domains if d not in self._health or self._health[d][1] < moment]
            if stale:
                found = {
                    h.domain: h
                    for h in await session.scalars(select(DomainHealth).where(DomainHealth.domain.in_(stale)))
                }
                for domain in stale:
                    self._health[domain] = (_state(found.get(domain)), moment + self.HEALTH_TTL)
            if len(self._health) > 50_000:
                self._health.clear()
            missing = [row.activity_id for row in rows if row.activity_id not in self._bodies]
            if missing:
                if len(self._bodies) > 500:
                    self._bodies.clear()
                for activity in await session.scalars(select(OutboxActivity).where(OutboxActivity.id.in_(missing))):
                    self._bodies[activity.id] = (activity.body, activity.account_id)
            bodies = {row.activity_id: self._bodies[row.activity_id] for row in rows if row.activity_id in self._bodies}
            signers: dict[int | None, tuple[PrivateKey, str]] = {}
            for account_id in {body[1] for body in bodies.values()}:
                try:
                    signers[account_id] = await self.signers.get(session, account_id)
                except LookupError:
                    continue
            await session.commit()
        return _Batch(suspended, bodies, signers)

    async def deliver(self, row: Delivery, batch: _Batch) -> None:
        moment = now()
        if row.domain in batch.suspended:
            self.results.add(_Outcome(row.id, "skipped", row.attempts, error="domain_suspended"))
            return
        decision = policy.may_attempt(self.health_of(row.domain), moment)
        if decision.kind == "unavailable":
            self.results.add(_Outcome(row.id, "skipped", row.attempts, error="domain_unavailable"))
            return
        if decision.kind == "wait":
            self.results.add(_Outcome(row.id, "pending", row.attempts, next_attempt_at=decision.until))
            return
        found = batch.bodies.get(row.activity_id)
        signing = batch.signers.get(found[1]) if found is not None else None
        if found is None or signing is None:
            self.results.add(_Outcome(row.id, "failed", row.attempts + 1, error="activity_gone"))
            return
        body, key_pair = found[0], signing
        key, key_id = key_pair

        def signer(method: str, url: str, headers: Mapping[str, str], payload: bytes | None) -> dict[str, str]:
            return sign_request(
                method, url, headers=headers, body=payload, key=key, key_id=key_id, now=datetime.now(UTC)
            )

        result = await self.fed.transport.post_activity(row.inbox_url, body.encode(), signer=signer)
        outcome = policy.classify(result.status, error=result.error)
        moment = now()
        before = self.health_of(row.domain)
        # An answer (2xx, or a final 4xx) shows the server alive; a retryable one counts as a
        # failure; refusing before contacting anyone changes nothing.
        after = policy.after_attempt(before, moment, status=result.status, outcome=outcome)
        if after != before:
            self._health[row.domain] = (after, time.monotonic() + self.HEALTH_TTL)
            if _worth_saving(before, after):
                self.results.dirty_domains.add(row.domain)
        attempts = row.attempts + 1
        if outcome is policy.Outcome.DELIVERED:
            self.results.add(_Outcome(row.id, "delivered", attempts, status=result.status))
            return
        error = (result.error or f"http_{result.status}")[:255]
        if outcome is policy.Outcome.PERMANENT:
            self.results.add(_Outcome(row.id, "failed", attempts, status=result.status, error=error))
            return
        retry_after = policy.parse_retry_after(result.retry_after, moment)
        jitter = random.random()  # noqa: S311 - spreads retries; not a secret
        when = policy.next_attempt(attempts, moment, jitter=jitter, retry_after=retry_after)
        if when is None:
            self.results.add(_Outcome(row.id, "failed", attempts, status=result.status, error="retries_exhausted"))
            return
        self.results.add(_Outcome(row.id, "pending", attempts, status=result.status, error=error, next_attempt_at=when))


def _worth_saving(before: policy.DomainState, after: policy.DomainState) -> bool:
    """Persist health changes that matter across processes and restarts: failures, recovery
    from failures; not the success timestamp of an already healthy domain."""
    healthy_before = not before.failure_days and before.consecutive_failures == 0 and before.unavailable_since is None
    healthy_after = not after.failure_days and after.consecutive_failures == 0 and after.unavailable_since is None
    return not (healthy_before and healthy_after)
