"""Publishing this instance's signed moderation decision feed (issue 5 item 4, research/moderation.md §6.b).

Design note
-----------
The pure part (entries, proofs, documents, privacy checks) is ``moderation.feed``; this module
stores and serves it.

* **Keys.** Entries are signed with a dedicated Ed25519 *moderation key* (``moderation_keys``),
  not the HTTP-signature keys. It is made on first use; its private PEM is kept in the database
  as local actors' keys are (``server.actor_keys``). :func:`rotate_key` marks the current key
  revoked (time), drops its private half and makes a new one; revoked keys stay in the dataset's
  ``keys`` (and the instance actor's ``assertionMethod``) so entries signed before the rotation
  still verify, and ``verify_entry`` refuses anything the old key signs after its revocation.
* **Entries.** ``feed_entries`` is append-only: one signed JSON document per change, with a
  UUIDv7 ``changeId``. Writers first lock the single ``feed_state`` row (an UPDATE), then read the
  last change id and make the next one, so ids are handed out and committed in increasing order
  and a subscriber's ``after=`` cursor never skips an entry committed later.
* **What is published.** :func:`record_decision` runs in the transaction that changes a domain
  decision. ``suspend`` -> ``drop``; ``silence`` -> ``filter`` with Mastodon's silence set; ``noop``
  with ``reject_media``/``reject_reports`` -> ``filter`` with those filters; a lossless
  ``mastodon`` hint; the *public* comment as ``reason`` when :func:`moderation.feed.check_publishable`
  accepts it (otherwise the entry goes out without a reason). Private comments have no field to
  travel in. A decision that becomes "no opinion" (removed, bare ``noop``, or obfuscated) publishes
  a ``Retraction`` of the current entry; an unchanged decision publishes nothing. **Obfuscated
  blocks are never published** (the domain would be in clear in the feed).
* **Audiences.** Domain entries are ``public`` (in both feeds); account-level entries
  (:func:`record_account_decision`) are ``partners`` only, expire (at most a year) and rely on the
  dataset's appeals contact.
* **Tombstones** (:func:`tombstone`) delete every earlier stored entry about the entity (so its
  reasons are gone) and remember the decision's state, so reconciling does not re-publish it until
  the decision changes.
* **Reconciling** (:func:`publish_all`, ``hearthside feed publish``) compares the feed with the
  current ``domain_blocks`` and publishes what is missing: initial publication, and repair after a
  crash or after decisions written without a configuration at hand (see :func:`use_config`).
* **Push hint** (optional, ``[moderation] feed_push_to``): the first entry of a transaction
  queues an ``Update`` whose object is the changes collection, from the instance actor, through
  the delivery queue; receivers only schedule a pull.

Configuration reaches :func:`record_decision` without being passed (its callers are database
code): the web app, the workers (``server/runner.py``) and every CLI command register their
configuration for their engine (:func:`use_config`); a caller may also pass ``config=``. Without
one nothing is published and a warning says to run ``hearthside feed publish``.

Logs carry change ids, entity kinds and reason codes, never comments or reasons.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crypto.keys import generate_ed25519
from crypto.signing import PrivateKey, PublicKey
from federation.documents import instance_actor_url
from moderation.decisions import DomainDecision
from moderation.feed import (
    AS_CONTEXT,
    FIRES_CONTEXT,
    SILENCE_FILTERS,
    Entry,
    FeedError,
    MastodonHint,
    NotPublishableError,
    PublisherKey,
    Review,
    changes_page_document,
    check_publishable,
    dataset_document,
    normalize_actor_uri,
    normalize_domain,
    page_url,
    parse_entry,
    reduce_snapshot,
    sign_entry,
    snapshot_document,
)
from moderation.uuid7 import Uuid7Generator
from server.config import Config
from server.db import insert_ignoring_conflict
from server.ids import new_id
from server.models import Account, AuditEntry, DomainBlock, FeedEntry, FeedState, ModerationKey

log = logging.getLogger(__name__)

PUBLIC = "public"
PARTNERS = "partners"
FEEDS = (PUBLIC, PARTNERS)
PAGE_SIZE = 200
ACTOR_ENTRY_LIFETIME = timedelta(days=365)
MEDIA_TYPE = 'application/ld+json; profile="https://www.w3.org/ns/activitystreams"'
START_CURSOR = "00000000-0000-7000-a000-000000000000"  # FIRES's "from the beginning" cursor

_configs: dict[str, Config] = {}


# ---------------------------------------------------------------------------- configuration


def _engine_key(bind: Any) -> str:
    url = getattr(bind, "url", None)
    return url.render_as_string(hide_password=False) if url is not None else ""


def use_config(bind: Any, config: Config) -> None:
    """Remember ``config`` for sessions on ``bind`` (an engine), for :func:`record_decision`."""
    _configs[_engine_key(bind)] = config


def config_for(session: AsyncSession) -> Config | None:
    return _configs.get(_engine_key(session.bind))


@dataclass(frozen=True, slots=True)
class FeedSettings:
    enabled: bool
    base_url: str
    name: str
    policy_url: str
    appeals_contact: str
    partners: tuple[str, ...]
    push_to: tuple[str, ...]

    @classmethod
    def of(cls, config: Config) -> FeedSettings:
        base = config.base_url.rstrip("/")
        email = config.get("instance", "contact_email")
        appeals = config.get("moderation", "appeals_contact") or (f"mailto:{email}" if email else f"{base}/about")
        return cls(
            enabled=bool(config.get("moderation", "feed_enabled")),
            base_url=base,
            name=config.get("moderation", "feed_name") or f"{config.get('instance', 'name')} moderation decisions",
            policy_url=config.get("moderation", "policy_url") or f"{base}/about",
            appeals_contact=appeals,
            partners=tuple(d.lower() for d in config.get("moderation", "feed_partners")),
            push_to=tuple(d.lower() for d in config.get("moderation", "feed_push_to")),
        )


def feed_url(base_url: str, feed: str) -> str:
    return f"{base_url.rstrip('/')}/moderation/feeds/{feed}"


def snapshot_url(base_url: str, feed: str) -> str:
    return feed_url(base_url, feed) + "/snapshot"


def changes_url(base_url: str, feed: str) -> str:
    return feed_url(base_url, feed) + "/changes"


def entry_url(base_url: str, change_id: str) -> str:
    return f"{base_url.rstrip('/')}/moderation/entries/{change_id}"


def audiences(feed: str) -> tuple[str, ...]:
    """Which stored entries a feed serves: the partner feed is the public one plus actor entries."""
    return (PUBLIC, PARTNERS) if feed == PARTNERS else (PUBLIC,)


# ---------------------------------------------------------------------------- lock and ids


_LOCK = "hearthside.feed_lock"  # session.info: (transaction holding the lock, last change id)


async def _lock(session: AsyncSession, at: datetime) -> str:
    """Take the feed's writer lock (held until the transaction ends); the last change id.
    Taken once per transaction: a reconcile appends thousands of entries under one lock."""
    transaction = session.sync_session.get_transaction()
    held = session.info.get(_LOCK)
    if held is not None and held[0] is transaction:
        return str(held[1])
    last = await _take_lock(session, at)
    session.info[_LOCK] = (transaction, last)
    return last


async def _take_lock(session: AsyncSession, at: datetime) -> str:
    result: Any = await session.execute(
        update(FeedState).where(FeedState.id == 1).values(updated_at=at).execution_options(synchronize_session=False)
    )
    if not result.rowcount:
        await session.execute(
            insert_ignoring_conflict(session, FeedState, "id").values(id=1, last_change_id="", updated_at=at)
        )
        await session.execute(
            update(FeedState)
            .where(FeedState.id == 1)
            .values(updated_at=at)
            .execution_options(synchronize_session=False)
        )
    last = await session.scalar(select(FeedState.last_change_id).where(FeedState.id == 1))
    return last or ""


def _next_change_id(last: str, at: datetime) -> str:
    generator = Uuid7Generator(last=last or None)
    return generator.next(now_ms=int(max(at, datetime.now(UTC)).timestamp() * 1000), rand=os.urandom(10))


# ---------------------------------------------------------------------------- keys


async def _current_key_row(session: AsyncSession) -> ModerationKey | None:
    row: ModerationKey | None = await session.scalar(
        select(ModerationKey)
        .where(ModerationKey.revoked_at.is_(None), ModerationKey.private_pem.is_not(None))
        .order_by(ModerationKey.id.desc())
        .limit(1)
    )
    return row


_SIGNER = "hearthside.feed_signer"  # session.info: (key id, parsed private key) for a bulk publish


async def _signer(session: AsyncSession, settings: FeedSettings, at: datetime) -> tuple[str, PrivateKey]:
    """The current key, parsed once per session (a reconcile signs thousands of entries)."""
    cached: tuple[str, PrivateKey] | None = session.info.get(_SIGNER)
    if cached is not None:
        return cached
    row = await _current_key_row(session) or await _create_key(session, settings.base_url, at)
    assert row.private_pem is not None
    signer = (row.key_id, PrivateKey.from_pem(row.private_pem, trusted=True))
    session.info[_SIGNER] = signer
    return signer


async def _create_key(session: AsyncSession, base_url: str, at: datetime) -> ModerationKey:
    pair = generate_ed25519()
    row_id = new_id()
    row = ModerationKey(
        id=row_id,
        key_id=f"{instance_actor_url(base_url)}#moderation-key-{row_id}",
        public_multibase=PublicKey.from_pem(pair.public_pem).to_multibase(),
        private_pem=pair.private_pem,
        created_at=at,
    )
    session.add(row)
    await session.flush()
    log.info("moderation key created: %s", row.key_id)
    return row


async def signing_key(session: AsyncSession, config: Config, *, at: datetime | None = None) -> ModerationKey:
    """The current moderation key, created on first use (the caller commits). Takes the feed
    lock first, so two first uses end with one key."""
    row = await _current_key_row(session)
    if row is not None:
        return row
    moment = at or datetime.now(UTC)
    await _lock(session, moment)
    row = await _current_key_row(session)
    return row if row is not None else await _create_key(session, config.base_url, moment)


async def rotate_key(session: AsyncSession, config: Config, *, at: datetime) -> ModerationKey:
    """Revoke the current moderation key (kept, published, without its private half) and make a
    new one; the caller commits. Entries signed before ``at`` still verify with the old key."""
    await _lock(session, at)
    session.info.pop(_SIGNER, None)
    await session.execute(
        update(ModerationKey)
        .where(ModerationKey.revoked_at.is_(None))
        .values(revoked_at=at, private_pem=None)
        .execution_options(synchronize_session=False)
    )
    row = await _create_key(session, config.base_url, at)
    session.add(
        AuditEntry(
            id=new_id(),
            actor_account_id=None,
            source="cli",
            action="feed.rotate_key",
            target_type="moderation_key",
            target=row.key_id,
            reason="",
            details={},
            created_at=at,
        )
    )
    return row


def _publisher_key(row: ModerationKey) -> PublisherKey:
    return PublisherKey(
        id=row.key_id,
        public_key=PublicKey.from_multibase(row.public_multibase),
        created=row.created_at,
        revoked=row.revoked_at,
    )


async def publisher_keys(session: Any) -> list[PublisherKey]:
    """Every moderation key ever used, oldest first, revoked ones with their revocation time."""
    rows = await session.scalars(select(ModerationKey).order_by(ModerationKey.id))
    return [_publisher_key(row) for row in rows]


# ---------------------------------------------------------------------------- publishing


@dataclass(frozen=True, slots=True)
class Published:
    """What one publishing call appended (for the CLI and tests)."""

    change_id: str
    type: str
    entity_kind: str
    entity_key: str
    audience: str


@dataclass(frozen=True, slots=True)
class _Opinion:
    policy: str
    filters: tuple[str, ...]
    reason: str
    hint: MastodonHint | None
    expires: datetime | None = None

    def state(self) -> str:
        hint = None if self.hint is None else self.hint.to_json()
        data = [self.policy, sorted(self.filters), self.reason, hint]
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def opinion_of(decision: DomainDecision) -> _Opinion | None:
    """The Recommendation a domain decision publishes, or None (no opinion, or not publishable)."""
    if decision.obfuscate:
        return None
    severity = decision.severity.value
    filters: tuple[str, ...] = ()
    if severity == "suspend":
        policy = "drop"
    else:
        listed = sorted(SILENCE_FILTERS) if severity == "silence" else []
        if decision.reject_media:
            listed.append("reject-media")
        if decision.reject_reports:
            listed.append("reject-reports")
        if not listed:
            return None
        policy, filters = "filter", tuple(listed)
    hint = MastodonHint(
        severity=severity,  # type: ignore[arg-type]
        reject_media=decision.reject_media,
        reject_reports=decision.reject_reports,
    )
    return _Opinion(policy, filters, decision.public_comment.strip(), hint)


async def _latest(session: AsyncSession, kind: str, key: str) -> FeedEntry | None:
    row: FeedEntry | None = await session.scalar(
        select(FeedEntry)
        .where(FeedEntry.entity_kind == kind, FeedEntry.entity_key == key)
        .order_by(FeedEntry.change_id.desc())
        .limit(1)
    )
    return row


def _active_recommendation(row: FeedEntry | None, at: datetime) -> bool:
    return row is not None and row.entry_type == "Recommendation" and (row.expires_at is None or row.expires_at > at)


def _key_of(kind: str, key: str) -> str | None:
    try:
        return normalize_domain(key) if kind == "domain" else normalize_actor_uri(key)
    except FeedError:
        return None


async def _append(
    session: AsyncSession,
    settings: FeedSettings,
    *,
    last: str,
    build: Any,
    audience: str,
    state: str,
    source: str,
    at: datetime,
) -> Published | None:
    """Sign and store the entry ``build(change_id, entry_id)`` makes; None when it is refused."""
    change_id = _next_change_id(last, at)
    entry: Entry = build(change_id, entry_url(settings.base_url, change_id))
    try:
        check_publishable(entry, now=at, partner_only=audience == PARTNERS)
    except NotPublishableError as exc:
        if not entry.reason:
            log.warning("feed entry for a %s not published: %s", entry.entity_kind, str(exc).split(":")[0])
            return None
        log.info("feed entry published without its reason (%s)", str(exc).split(":")[0])
        entry = build(change_id, entry_url(settings.base_url, change_id), with_reason=False)
        try:
            check_publishable(entry, now=at, partner_only=audience == PARTNERS)
        except NotPublishableError as again:
            log.warning("feed entry for a %s not published: %s", entry.entity_kind, str(again).split(":")[0])
            return None
    key_id, private = await _signer(session, settings, at)
    document = sign_entry(entry, private, key_id, at)
    session.add(
        FeedEntry(
            id=new_id(),
            change_id=change_id,
            entry_id=entry.id,
            entity_kind=entry.entity_kind,
            entity_key=entry.entity_key,
            entry_type=entry.type,
            audience=audience,
            key_id=key_id,
            state=state,
            source=source[:64],
            document=json.dumps(document, ensure_ascii=False, separators=(",", ":")),
            created_at=at,
            expires_at=entry.expires,
        )
    )
    await session.execute(
        update(FeedState)
        .where(FeedState.id == 1)
        .values(last_change_id=change_id)
        .execution_options(synchronize_session=False)
    )
    held = session.info.get(_LOCK)
    if held is not None:
        session.info[_LOCK] = (held[0], change_id)
    await session.flush()
    log.info("feed entry %s published (%s, %s)", change_id, entry.type, entry.entity_kind)
    return Published(change_id, entry.type, entry.entity_kind, entry.entity_key, audience)


def _derived_from_of(row: FeedEntry) -> tuple[str, ...]:
    upstream = json.loads(row.document).get("derivedFrom") or ()
    if isinstance(upstream, str):
        upstream = (upstream,)
    return tuple(u for u in upstream if isinstance(u, str))


async def _publish_opinion(
    session: AsyncSession,
    settings: FeedSettings,
    *,
    kind: str,
    key: str,
    opinion: _Opinion | None,
    derived_from: Sequence[str],
    audience: str,
    source: str,
    at: datetime,
) -> Published | None:
    last = await _lock(session, at)
    latest = await _latest(session, kind, key)
    active = _active_recommendation(latest, at)
    review: Review = "aggregated" if derived_from else "human"
    if opinion is None:
        if not active:
            return None
        assert latest is not None
        retracts = latest.change_id
        if not derived_from:
            # A re-published decision whose upstream support ended: the Retraction points at
            # the same upstream entries as what it retracts (§6.c 21), so subscribers downstream
            # see where it came from.
            derived_from = _derived_from_of(latest)

        def retraction(change_id: str, entry_id: str, with_reason: bool = True) -> Entry:
            return Entry(
                id=entry_id,
                change_id=change_id,
                type="Retraction",
                published=at,
                entity_kind=kind,  # type: ignore[arg-type]
                entity_key=key,
                retracts=retracts,
                derived_from=tuple(derived_from),
            )

        published = await _append(
            session, settings, last=last, build=retraction, audience=latest.audience, state="", source=source, at=at
        )
    else:
        state = opinion.state()
        if latest is not None and latest.state == state and (active or latest.entry_type == "Tombstone"):
            return None  # unchanged (or tombstoned while unchanged)
        supersedes = latest.change_id if latest is not None and latest.entry_type != "Tombstone" else None

        def recommendation(change_id: str, entry_id: str, with_reason: bool = True) -> Entry:
            return Entry(
                id=entry_id,
                change_id=change_id,
                type="Recommendation",
                published=at,
                entity_kind=kind,  # type: ignore[arg-type]
                entity_key=key,
                policy=opinion.policy,  # type: ignore[arg-type]
                filters=opinion.filters,
                reason={"und": opinion.reason} if opinion.reason and with_reason else {},
                review=review,
                derived_from=tuple(derived_from),
                supersedes=supersedes,
                expires=opinion.expires,
                mastodon=opinion.hint,
            )

        published = await _append(
            session, settings, last=last, build=recommendation, audience=audience, state=state, source=source, at=at
        )
    if published is not None:
        await _push_hint(session, settings, published.audience)
    return published


async def record_decision(
    session: AsyncSession,
    *,
    kind: str,
    key: str,
    decision: DomainDecision | None,
    derived_from: Sequence[str] = (),
    source: str,
    at: datetime,
    config: Config | None = None,
) -> Published | None:
    """Publish what a change of a local domain decision means for the feed, in the caller's
    transaction (the caller commits): a Recommendation, a Retraction (``decision`` None, or no
    longer publishable), or nothing (unchanged, publishing disabled, obfuscated, or a key the
    feed cannot carry). ``derived_from``: upstream entry ids of a decision applied from
    subscriptions (then ``review`` is ``aggregated``)."""
    config = config or config_for(session)
    if config is None:
        log.warning("moderation feed not updated (no configuration for this database): run `hearthside feed publish`")
        return None
    settings = FeedSettings.of(config)
    if not settings.enabled:
        return None
    if kind != "domain":
        raise ValueError("record_decision: only domain decisions (see record_account_decision)")
    normal = _key_of(kind, key)
    if normal is None:
        log.info("domain decision not published: the key is not a feed entity key")
        return None
    opinion = None if decision is None else opinion_of(decision)
    return await _publish_opinion(
        session,
        settings,
        kind=kind,
        key=normal,
        opinion=opinion,
        derived_from=derived_from,
        audience=PUBLIC,
        source=source,
        at=at,
    )


_ACCOUNT_POLICIES = {
    "suspend": ("drop", ()),
    "drop": ("drop", ()),
    "reject": ("reject", ()),
    "silence": ("filter", tuple(sorted(SILENCE_FILTERS))),
    "limit": ("filter", tuple(sorted(SILENCE_FILTERS))),
}


async def record_account_decision(
    session: AsyncSession,
    *,
    actor_uri: str,
    policy: str | None,
    reason: str,
    expires: datetime | None,
    at: datetime,
    config: Config | None = None,
) -> Published | None:
    """Publish an account-level decision about a remote actor to the partner feed only (§6.b:
    abusive actors, partner-only, expiring, with the dataset's appeals contact). ``policy``:
    ``suspend``/``drop``, ``reject``, ``silence``/``limit``, or None/``none`` to retract.
    ``expires`` defaults to a year after ``at``. ``reason`` is public to partners: it is left
    out when it could identify someone. Call it in the transaction of the account action."""
    config = config or config_for(session)
    if config is None:
        log.warning("moderation feed not updated (no configuration for this database)")
        return None
    settings = FeedSettings.of(config)
    if not settings.enabled:
        return None
    normal = _key_of("actor", actor_uri)
    if normal is None:
        log.info("account decision not published: not an https actor URI")
        return None
    opinion: _Opinion | None = None
    if policy not in (None, "none", "noop"):
        if policy not in _ACCOUNT_POLICIES:
            raise ValueError(f"policy: must be one of {sorted(_ACCOUNT_POLICIES)} or None")
        chosen, filters = _ACCOUNT_POLICIES[policy]
        until = expires or at + ACTOR_ENTRY_LIFETIME
        opinion = _Opinion(chosen, filters, reason.strip(), None, until)
    return await _publish_opinion(
        session,
        settings,
        kind="actor",
        key=normal,
        opinion=opinion,
        derived_from=(),
        audience=PARTNERS,
        source="api",
        at=at,
    )


async def tombstone(
    session: AsyncSession,
    config: Config,
    *,
    kind: str,
    key: str,
    actor_account_id: int | None,
    source: str,
    at: datetime,
) -> Published | None:
    """Publish a Tombstone for an entity and delete every earlier stored entry about it (their
    reasons with them). None when the feed never said anything about it. Audited."""
    settings = FeedSettings.of(config)
    normal = _key_of(kind, key)
    if normal is None:
        raise FeedError("entityKey: not a domain or https actor URI the feed can carry")
    last = await _lock(session, at)
    latest = await _latest(session, kind, normal)
    if latest is None or latest.entry_type == "Tombstone":
        return None
    state = latest.state if _active_recommendation(latest, at) else ""

    def build(change_id: str, entry_id: str, with_reason: bool = True) -> Entry:
        return Entry(
            id=entry_id,
            change_id=change_id,
            type="Tombstone",
            published=at,
            entity_kind=kind,  # type: ignore[arg-type]
            entity_key=normal,
        )

    audience = PARTNERS if kind == "actor" else PUBLIC
    published = await _append(
        session, settings, last=last, build=build, audience=audience, state=state, source=source, at=at
    )
    if published is None:
        return None
    await session.execute(
        delete(FeedEntry).where(
            FeedEntry.entity_kind == kind,
            FeedEntry.entity_key == normal,
            FeedEntry.change_id < published.change_id,
        )
    )
    session.add(
        AuditEntry(
            id=new_id(),
            actor_account_id=actor_account_id,
            source=source[:64],
            action="feed.tombstone",
            target_type=kind,
            target=normal,
            reason="",
            details={"change_id": published.change_id},
            created_at=at,
        )
    )
    await _push_hint(session, settings, audience)
    return published


PUBLISH_JOB = "feed_publish"


async def schedule_publish(session: AsyncSession, *, at: datetime) -> None:
    """Publish the feed's pending changes later, durably: a ``feed_publish`` job written in the
    caller's transaction (so decisions and the promise to publish them commit together); the
    job worker runs :func:`publish_all`, which is idempotent. For bulk changes (imports)."""
    from server.db import after_commit
    from server.models import Job
    from server.outbox import JOBS
    from server.workers import WAKEUPS

    session.add(
        Job(
            id=new_id(),
            kind=PUBLISH_JOB,
            payload={},
            state="pending",
            attempts=0,
            next_attempt_at=at,
            created_at=at,
        )
    )
    after_commit(session, lambda: WAKEUPS.notify(JOBS))


async def run_publish_job(sessions: Any, config: Config, *, at: datetime) -> int:
    """The ``feed_publish`` job: reconcile and commit; how many entries were published."""
    async with sessions() as session:
        published = await publish_all(session, config, at=at)
        await session.commit()
    if published:
        log.info("feed reconciled by job: %d entries published", len(published))
    return len(published)


async def publish_all(session: AsyncSession, config: Config, *, at: datetime) -> list[Published]:
    """Reconcile the feed with the current domain decisions: publish what changed, retract what
    is gone (entries recorded from subscriptions are left to their owner). Idempotent."""
    settings = FeedSettings.of(config)
    if not settings.enabled:
        return []
    published: list[Published] = []
    from server.blocklists import decision_of

    blocks = list(await session.scalars(select(DomainBlock).order_by(DomainBlock.id)))
    present: set[str] = set()
    for block in blocks:
        normal = _key_of("domain", block.domain)
        if normal is None:
            continue
        present.add(normal)
        result = await _publish_opinion(
            session,
            settings,
            kind="domain",
            key=normal,
            opinion=opinion_of(decision_of(block)),
            derived_from=(),
            audience=PUBLIC,
            source="reconcile",
            at=at,
        )
        if result is not None:
            published.append(result)
    newest = (
        select(FeedEntry.entity_key, func.max(FeedEntry.change_id).label("change_id"))
        .where(FeedEntry.entity_kind == "domain")
        .group_by(FeedEntry.entity_key)
        .subquery()
    )
    rows = await session.execute(
        select(FeedEntry.entity_key, FeedEntry.source)
        .join(newest, FeedEntry.change_id == newest.c.change_id)
        .where(FeedEntry.entry_type == "Recommendation")
    )
    for entity_key, source in rows.all():
        if entity_key in present or source.startswith("subscription"):
            continue
        result = await _publish_opinion(
            session,
            settings,
            kind="domain",
            key=entity_key,
            opinion=None,
            derived_from=(),
            audience=PUBLIC,
            source="reconcile",
            at=at,
        )
        if result is not None:
            published.append(result)
    return published


# ---------------------------------------------------------------------------- push hint


def _origin_of(domain: str) -> str:
    host = domain.rsplit(":", 1)[0] if domain.count(":") == 1 else domain
    local = host in ("localhost", "::1") or host.startswith("127.") or host.endswith(".localhost")
    return f"{'http' if local else 'https'}://{domain}"


async def _push_hint(session: AsyncSession, settings: FeedSettings, audience: str) -> None:
    """Queue one ``Update`` of the changes collection per feed and transaction to the
    configured subscribers (``feed_push_to``); the partner feed only to partners."""
    if not settings.push_to:
        return
    transaction = session.sync_session.get_transaction()
    marker = ("feeds.hinted", id(transaction))
    hinted: set[str] = session.info.setdefault(marker, set())
    feeds = [PUBLIC, PARTNERS] if audience == PUBLIC else [PARTNERS]
    from server.delivery import enqueue

    for feed in feeds:
        targets = [d for d in settings.push_to if feed == PUBLIC or d in settings.partners]
        if feed in hinted or not targets:
            continue
        hinted.add(feed)
        inboxes: list[str] = []
        for domain in targets:
            known = await session.scalar(
                select(func.coalesce(Account.shared_inbox_url, Account.inbox_url))
                .where(Account.domain == domain, Account.inbox_url.is_not(None))
                .limit(1)
            )
            inboxes.append(known or _origin_of(domain) + "/inbox")
        collection = changes_url(settings.base_url, feed)
        activity = {
            "@context": AS_CONTEXT,
            "id": f"{collection}#update-{new_id()}",
            "type": "Update",
            "actor": instance_actor_url(settings.base_url),
            "object": collection,
            "to": [_origin_of(domain) + "/actor" for domain in targets],
        }
        await enqueue(session, settings.base_url, actor_account_id=None, activity=activity, inboxes=inboxes)


# ---------------------------------------------------------------------------- reading


async def dataset(session: AsyncSession, config: Config, feed: str) -> dict[str, Any]:
    """The Dataset document of ``feed`` (a key is made if none exists yet; the caller commits)."""
    settings = FeedSettings.of(config)
    await signing_key(session, config)
    keys = await publisher_keys(session)
    newest = await session.scalar(select(func.max(FeedEntry.created_at)).where(FeedEntry.audience.in_(audiences(feed))))
    first = await session.scalar(select(func.min(ModerationKey.created_at)))
    summary = (
        "Domain-level moderation decisions of this instance."
        if feed == PUBLIC
        else "Domain- and account-level moderation decisions, for partner instances only."
    )
    return dataset_document(
        id=feed_url(settings.base_url, feed),
        name=settings.name if feed == PUBLIC else f"{settings.name} (partners)",
        summary=summary,
        snapshot=snapshot_url(settings.base_url, feed),
        changes=changes_url(settings.base_url, feed),
        publisher=instance_actor_url(settings.base_url),
        policy_url=settings.policy_url,
        appeals_contact=settings.appeals_contact,
        keys=keys,
        published=first,
        updated=newest or first,
    )


async def snapshot(session: Any, config: Config, feed: str, *, now: datetime) -> dict[str, Any]:
    """The current state of ``feed``: for each entity its latest active entry, newest first."""
    settings = FeedSettings.of(config)
    rows = (
        await session.execute(
            select(FeedEntry.entity_kind, FeedEntry.entity_key, FeedEntry.change_id)
            .where(FeedEntry.audience.in_(audiences(feed)))
            .order_by(FeedEntry.change_id)
        )
    ).all()
    latest: dict[tuple[str, str], str] = {}
    newest = ""
    for kind, key, change_id in rows:
        latest[(kind, key)] = change_id
        newest = change_id
    documents: dict[str, dict[str, Any]] = {}
    wanted = sorted(latest.values())
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        for change_id, text in await session.execute(
            select(FeedEntry.change_id, FeedEntry.document).where(FeedEntry.change_id.in_(chunk))
        ):
            documents[change_id] = json.loads(text)
    current = reduce_snapshot((parse_entry(doc) for doc in documents.values()), now=now)
    ordered = sorted(current.values(), key=lambda entry: entry.change_id, reverse=True)
    collection = changes_url(settings.base_url, feed)
    return snapshot_document(
        id=snapshot_url(settings.base_url, feed),
        dataset=feed_url(settings.base_url, feed),
        entries=[documents[entry.change_id] for entry in ordered],
        changes=page_url(collection, after=newest) if newest else collection,
        updated=max((entry.published for entry in ordered), default=None),
    )


async def changes(session: Any, config: Config, feed: str, *, after: str | None) -> dict[str, Any]:
    """The changes collection (``after`` None: the first page embedded, from the start) or the
    page of at most :data:`PAGE_SIZE` entries after the cursor ``after`` (a canonical UUIDv7)."""
    settings = FeedSettings.of(config)
    collection = changes_url(settings.base_url, feed)
    where = FeedEntry.audience.in_(audiences(feed))
    total = int(await session.scalar(select(func.count()).select_from(FeedEntry).where(where)) or 0)
    query = select(FeedEntry.change_id, FeedEntry.document).where(where)
    if after is not None:
        query = query.where(FeedEntry.change_id > after)
    rows = (await session.execute(query.order_by(FeedEntry.change_id).limit(PAGE_SIZE + 1))).all()
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    entries = [json.loads(text) for _change_id, text in rows]
    next_url = page_url(collection, after=rows[-1][0]) if more and rows else None
    first = page_url(collection, after=START_CURSOR)
    if after is None:
        doc: dict[str, Any] = {
            "@context": [AS_CONTEXT, FIRES_CONTEXT],
            "id": collection,
            "type": "OrderedCollection",
            "dataset": feed_url(settings.base_url, feed),
            "totalItems": total,
            "first": first,
        }
        if next_url is not None:
            doc["next"] = next_url
        doc["orderedItems"] = entries
        return doc
    return changes_page_document(
        id=page_url(collection, after=after),
        part_of=collection,
        dataset=feed_url(settings.base_url, feed),
        entries=entries,
        total_items=total,
        next=next_url,
        first=first,
    )


async def entry_document(session: Any, change_id: str) -> tuple[str, dict[str, Any]] | None:
    """``(audience, signed document)`` of one stored entry, or None."""
    row = (
        await session.execute(select(FeedEntry.audience, FeedEntry.document).where(FeedEntry.change_id == change_id))
    ).first()
    return None if row is None else (row[0], json.loads(row[1]))
