"""Subscribing to other instances' moderation decisions: fetch, verify, merge, apply or draft.

Design note
-----------
A :class:`~server.models.Subscription` names a feed: a signed Hearthside/FIRES dataset
(``signed``), an unsigned FIRES dataset (``fires``) or a legacy list (Mastodon or FediBlockHole
CSV, Mastodon or GoToSocial JSON). A sync (:func:`sync_subscription`) has three steps, and only
the last writes decisions:

1. **Fetch** (no transaction open) with the instance's SSRF-safe client
   (:mod:`server.transport`; signed GET as the instance actor, so partner feeds answer),
   conditional on the stored ``ETag``/``Last-Modified`` of the URL polled last, with a body cap
   (:data:`MAX_DOCUMENT_BYTES`) and a content-type check. Any fetch or parse failure records a
   sync error on the subscription and changes nothing else.
2. **Opinions.** Signed feeds: the dataset is fetched, its keys checked against the keys pinned
   at subscribe time (a new key is accepted only from a dataset served from the publisher's own
   origin that still lists a pinned key; mirrors cannot rotate keys). The first sync reads the
   snapshot (a snapshot whose ``totalItems`` exceeds its items is truncated: error, nothing
   applied), later syncs read changes pages ``after=<cursor>``. Every entry goes through
   :func:`moderation.feed.verify_entry`; a tampered or unknown-key entry is rejected, logged
   (entry id and reason code only) and counted, the rest applies. Entries are applied in
   ``changeId`` order and only when newer than the stored opinion, so replaying a page is
   idempotent. A Recommendation becomes the opinion; Advisory, Retraction and Tombstone remove
   it (a Tombstone thereby deletes the stored reason). Absence from a snapshot never retracts.
   Legacy lists are fetched whole each time; an entity missing from two consecutive successful
   fetches is implicitly retracted (``absences`` counter); obfuscated rows are resolved against
   known peers (:func:`moderation.formats.resolve_obfuscated_entries`) or reported.
3. **Merge and apply** (:func:`merge_and_apply`, one transaction): every subscription's opinions
   go through :func:`moderation.merge.merge` with the local state (manual ``DomainBlock`` rows,
   subscription-managed ones, domain allows, domains members follow). Auto changes write
   ``DomainBlock`` rows with an audit entry each (source ``subscription:<id>``, details with
   supporters and reasons) and call ``server.feeds.record_decision`` when that module exists;
   the other changes become pending drafts. A tripped circuit breaker makes everything a
   draft and notifies staff; follow protection makes a draft and notifies the members whose
   follows it would cut.

What it refuses: unknown or revoked keys, entries out of order in a page, bodies over the cap,
HTML or other non-feed content, and ``accept`` results (allows are the domain-allow area's, so
a feed's ``accept`` is never applied here). Logs carry ids and reason codes only.

Two syncs of one subscription never run at once: a lease on the row (``sync_locked_until``)
is claimed in one UPDATE. Scheduled syncs are durable ``Job`` rows of kind
``subscription_sync`` (:func:`schedule_due`), and failures back off (:func:`server.workers.backoff`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crypto.errors import KeyFormatError
from crypto.signing import PublicKey
from moderation import merge as mm
from moderation.decisions import DomainDecision, Severity
from moderation.feed import (
    SILENCE_FILTERS,
    Dataset,
    Entry,
    FeedError,
    check_page_order,
    page_cursor,
    page_url,
    parse_changes_page,
    parse_dataset,
    parse_entry,
    parse_snapshot,
    verify_entry,
)
from moderation.fires import Decision as FiresDecision
from moderation.fires import policy_for_decision
from moderation.formats import (
    FormatError,
    ImportResult,
    decode_text,
    detect_format,
    import_fediblockhole_csv,
    import_json,
    import_mastodon_csv,
    resolve_obfuscated_entries,
)
from server.domains import bare_host
from server.ids import new_id
from server.models import (
    Account,
    AuditEntry,
    DomainBlock,
    Follow,
    Job,
    ModerationDraft,
    Subscription,
    SubscriptionOpinion,
    User,
)
from server.notify import notify_system
from server.transport import Fetched, FetchError, Transport
from server.web import now
from server.workers import backoff

log = logging.getLogger(__name__)

FORMATS = ("signed", "fires", "mastodon_csv", "fediblockhole_csv", "gotosocial_json", "mastodon_json")
LEGACY_FORMATS = frozenset(FORMATS[2:])
MODES = ("draft", "auto")
POLICIES = ("accept", "filter", "reject", "drop")
RETRACTION_MODES = ("remove", "orphan")
JOB_KIND = "subscription_sync"

#: Largest document a sync reads (a 20,000-row CSV or a large snapshot is several megabytes).
MAX_DOCUMENT_BYTES = 16 * 1024 * 1024
#: Most changes pages one sync reads (the rest waits for the next sync).
MAX_PAGES = 200
SYNC_LEASE = timedelta(minutes=10)
FEED_ACCEPT = (
    'application/ld+json; profile="https://www.w3.org/ns/activitystreams", application/activity+json, application/json'
)
FEED_TYPES = frozenset({"application/ld+json", "application/activity+json", "application/json"})
LIST_ACCEPT = "text/csv, application/json, text/plain;q=0.5"
LIST_TYPES = frozenset({"text/csv", "application/csv", "text/plain", "application/json", "application/octet-stream"})


class SyncError(Exception):
    """A sync could not run to the end; ``reason`` is a stable code, recorded on the subscription."""

    def __init__(self, reason: str, message: str = "") -> None:
        super().__init__(f"{reason}: {message}" if message else reason)
        self.reason = reason
        self.message = message or reason


class SyncBusy(SyncError):
    """Another sync of the same subscription holds the lease."""


@dataclass
class SyncResult:
    """What one sync did; stored as the subscription's ``last_result`` and returned by the API."""

    subscription_id: int
    status: str = "ok"  # ok | not_modified | error
    error: str | None = None
    entries: int = 0
    rejected: int = 0
    rejected_entries: list[dict[str, str]] = field(default_factory=list)
    updated_opinions: int = 0
    removed_opinions: int = 0
    problems: list[dict[str, Any]] = field(default_factory=list)
    applied: int = 0
    drafts: int = 0
    circuit_breaker: bool = False
    cursor: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "subscription_id": str(self.subscription_id),
            "status": self.status,
            "error": self.error,
            "entries": self.entries,
            "rejected": self.rejected,
            "rejected_entries": self.rejected_entries[:50],
            "updated_opinions": self.updated_opinions,
            "removed_opinions": self.removed_opinions,
            "problems": self.problems[:50],
            "applied": self.applied,
            "drafts": self.drafts,
            "circuit_breaker": self.circuit_breaker,
            "cursor": self.cursor,
        }


# ---------------------------------------------------------------------------- fetching


async def fetch_document(
    fed: Any,
    url: str,
    *,
    accept: str,
    accept_types: frozenset[str],
    etag: str | None = None,
    last_modified: str | None = None,
    max_bytes: int = MAX_DOCUMENT_BYTES,
) -> Fetched:
    """GET ``url`` through the instance's transport (address checks, redirects, signed as the
    instance actor so partner feeds answer); conditional when ``etag``/``last_modified`` are
    given. Raises FetchError."""
    transport: Transport = fed.transport
    return await transport.fetch_document(
        url, accept=accept, accept_types=accept_types, etag=etag, last_modified=last_modified, max_body=max_bytes
    )


def _json(fetched: Fetched) -> Any:
    import json

    assert fetched.body is not None
    try:
        return json.loads(fetched.body.decode("utf-8"))
    except (ValueError, RecursionError):
        raise SyncError("bad_json", "the document is not UTF-8 JSON") from None


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


# ---------------------------------------------------------------------------- keys


def pinned_keys_of(dataset: Dataset) -> list[dict[str, str]]:
    """What a subscription pins: each key's id and public key (multibase)."""
    return [{"id": key.id, "publicKeyMultibase": key.public_key.to_multibase()} for key in dataset.keys]


def verification_keys(sub: Subscription, dataset: Dataset) -> tuple[dict[str, PublicKey], dict[str, datetime]]:
    """The keys entries may be verified with, and revocation times; updates ``sub.pinned_keys``
    when the publisher rotated (see the module note). Raises SyncError when no pinned key is left."""
    pinned = {item["id"]: item["publicKeyMultibase"] for item in sub.pinned_keys or []}
    offered = {key.id: key for key in dataset.keys}
    still_listed = [
        kid for kid, mb in pinned.items() if kid in offered and offered[kid].public_key.to_multibase() == mb
    ]
    if pinned and not still_listed:
        raise SyncError("keys", "the dataset lists none of the pinned publisher keys")
    own_origin = dataset.publisher is not None and origin(dataset.publisher) == origin(sub.url)
    if own_origin:
        for key in dataset.keys:  # rotation: new keys from the publisher's own dataset
            if key.id not in pinned:
                pinned[key.id] = key.public_key.to_multibase()
        sub.pinned_keys = [{"id": kid, "publicKeyMultibase": mb} for kid, mb in sorted(pinned.items())]
    keys: dict[str, PublicKey] = {}
    for kid, mb in pinned.items():
        if kid in offered and offered[kid].public_key.to_multibase() != mb:
            continue  # same id, other material: never trusted
        try:
            keys[kid] = PublicKey.from_multibase(mb)
        except KeyFormatError:
            continue
    retired = {k.id: k.revoked for k in dataset.keys if k.revoked is not None and k.id in keys}
    return keys, retired


# ---------------------------------------------------------------------------- opinions


@dataclass
class _Opinions:
    """The opinion rows of one subscription, keyed by entity, and what changed."""

    rows: dict[tuple[str, str], SubscriptionOpinion]
    result: SyncResult

    def apply_entry(self, sub_id: int, entry: Entry, at: datetime) -> None:
        entity = (entry.entity_kind, entry.entity_key)
        row = self.rows.get(entity)
        if row is not None and row.change_id is not None and row.change_id >= entry.change_id:
            return  # replayed or older: idempotent
        if entry.type != "Recommendation" or entry.policy is None:
            if row is not None:
                row.policy = ""  # marked for deletion (Advisory, Retraction, Tombstone)
                row.change_id = entry.change_id
                row.reason = {}
                self.result.removed_opinions += 1
            return
        if row is None:
            row = SubscriptionOpinion(
                id=new_id(), subscription_id=sub_id, entity_kind=entry.entity_kind, entity_key=entry.entity_key
            )
            self.rows[entity] = row
        row.policy = entry.policy
        row.filters = list(entry.filters)
        row.labels = list(entry.labels)
        row.entry_id = entry.id
        row.change_id = entry.change_id
        row.derived_from = list(entry.derived_from)
        row.expires = entry.expires
        row.reason = dict(entry.reason)
        row.absences = 0
        row.updated_at = at
        self.result.updated_opinions += 1


async def _load_opinions(session: AsyncSession, sub_id: int) -> dict[tuple[str, str], SubscriptionOpinion]:
    rows = await session.scalars(select(SubscriptionOpinion).where(SubscriptionOpinion.subscription_id == sub_id))
    return {(r.entity_kind, r.entity_key): r for r in rows}


async def _save_opinions(session: AsyncSession, rows: Iterable[SubscriptionOpinion]) -> None:
    for row in rows:
        if row.policy == "":
            if row in session:
                await session.delete(row)
        else:
            session.add(row)


def _verify(
    docs: Sequence[Mapping[str, Any]],
    keys: Mapping[str, PublicKey] | None,
    retired: Mapping[str, datetime],
    result: SyncResult,
    sub_id: int,
    at: datetime,
) -> list[Entry]:
    """Verified (or, for unsigned feeds, parsed) entries; the others are counted and logged."""
    entries: list[Entry] = []
    for doc in docs:
        try:
            entry = parse_entry(doc) if keys is None else verify_entry(doc, keys, now=at, retired=retired)
        except FeedError as exc:
            entry_id = doc.get("id") if isinstance(doc.get("id"), str) else "-"
            reason = str(exc).split(":", 1)[0]
            log.warning("subscription %s: entry %s rejected: %s", sub_id, str(entry_id)[:200], reason)
            result.rejected += 1
            result.rejected_entries.append({"id": str(entry_id)[:2048], "reason": str(exc)[:200]})
            continue
        entries.append(entry)
    result.entries += len(docs)
    return entries


async def _sync_feed(fed: Any, session: AsyncSession, sub: Subscription, result: SyncResult, at: datetime) -> bool:
    """Read a FIRES/Hearthside feed into the opinions table. Returns False when nothing changed."""
    fetched = await fetch_document(fed, sub.url, accept=FEED_ACCEPT, accept_types=FEED_TYPES)
    try:
        dataset = parse_dataset(_json(fetched))
    except FeedError as exc:
        raise SyncError("bad_dataset", str(exc)) from None
    keys: dict[str, PublicKey] | None = None
    retired: dict[str, datetime] = {}
    if sub.format == "signed":
        keys, retired = verification_keys(sub, dataset)
        if not keys:
            raise SyncError("keys", "no usable publisher key")
    sub.feed_id, sub.publisher = dataset.id, dataset.publisher
    sub.snapshot_url, sub.changes_url = dataset.snapshot, dataset.changes
    opinions = _Opinions(await _load_opinions(session, sub.id), result)
    cursor = original = sub.cursor
    if cursor is None:
        snap_fetch = await fetch_document(fed, dataset.snapshot, accept=FEED_ACCEPT, accept_types=FEED_TYPES)
        try:
            snapshot = parse_snapshot(_json(snap_fetch))
        except FeedError as exc:
            raise SyncError("bad_snapshot", str(exc)) from None
        if snapshot.total_items > len(snapshot.entry_documents):
            raise SyncError("truncated", "the snapshot holds fewer entries than its totalItems")
        entries = _verify(snapshot.entry_documents, keys, retired, result, sub.id, at)
        for entry in sorted(entries, key=lambda e: e.change_id):
            opinions.apply_entry(sub.id, entry, at)
        newest = [e.change_id for e in entries]
        try:
            cursor = page_cursor(snapshot.changes) if snapshot.changes else None
        except FeedError:
            cursor = None
        cursor = max([c for c in (cursor, *newest) if c], default=None)
    url = page_url(dataset.changes, after=cursor) if cursor else dataset.changes
    for _page in range(MAX_PAGES):
        conditional = url == sub.etag_url
        page_fetch = await fetch_document(
            fed,
            url,
            accept=FEED_ACCEPT,
            accept_types=FEED_TYPES,
            etag=sub.etag if conditional else None,
            last_modified=sub.last_modified if conditional else None,
        )
        if page_fetch.body is None:
            break  # 304: nothing new after the cursor
        try:
            page = parse_changes_page(_json(page_fetch))
            if not page.entry_documents and page.first and page.part_of is None and url == dataset.changes:
                url = page.first  # the collection itself: start at its first page
                continue
            entries = _verify(page.entry_documents, keys, retired, result, sub.id, at)
            check_page_order(entries, after=cursor)
        except FeedError as exc:
            raise SyncError("bad_page", str(exc)) from None
        for entry in entries:
            opinions.apply_entry(sub.id, entry, at)
        if entries:
            cursor = entries[-1].change_id
        sub.etag_url, sub.etag, sub.last_modified = url, page_fetch.etag, page_fetch.last_modified
        following = page.next
        if not page.entry_documents or following is None or following == url:
            if cursor is not None and entries:
                sub.etag_url = None  # the next poll asks for after=<new cursor>
            break
        url = following
    await _save_opinions(session, opinions.rows.values())
    sub.cursor = cursor
    result.cursor = cursor
    return cursor != original or bool(result.updated_opinions or result.removed_opinions)


_LEGACY_IMPORTERS = {
    "mastodon_csv": import_mastodon_csv,
    "fediblockhole_csv": import_fediblockhole_csv,
    "gotosocial_json": import_json,
    "mastodon_json": import_json,
}


def _policy_of(decision: DomainDecision) -> tuple[str, tuple[str, ...]] | None:
    mapped = policy_for_decision(
        FiresDecision(
            domain=decision.domain,
            severity=decision.severity.value,
            reject_media=decision.reject_media,
            reject_reports=decision.reject_reports,
        )
    )
    return None if mapped is None else (mapped[0], tuple(mapped[1]))


async def known_peers(session: AsyncSession) -> set[str]:
    """Domains of remote accounts we know: candidates for obfuscated list entries."""
    rows = await session.scalars(select(Account.domain).where(Account.domain != "").distinct())
    return {bare_host(d) for d in rows}


async def _sync_legacy(fed: Any, session: AsyncSession, sub: Subscription, result: SyncResult, at: datetime) -> bool:
    conditional = sub.etag_url == sub.url
    fetched = await fetch_document(
        fed,
        sub.url,
        accept=LIST_ACCEPT,
        accept_types=LIST_TYPES,
        etag=sub.etag if conditional else None,
        last_modified=sub.last_modified if conditional else None,
    )
    if fetched.body is None:
        return False
    try:
        detect_format(fetched.body, fetched.content_type)  # refuses HTML and non-list types
        parsed: ImportResult = _LEGACY_IMPORTERS[sub.format](decode_text(fetched.body))
    except FormatError as exc:
        raise SyncError("bad_list", str(exc)) from None
    parsed = resolve_obfuscated_entries(parsed, await known_peers(session))
    result.problems = [{"line": p.line, "message": p.message} for p in parsed.problems]
    for problem in parsed.problems:
        log.info("subscription %s: list line %s skipped", sub.id, problem.line)
    result.entries = len(parsed.rows)
    rows = await _load_opinions(session, sub.id)
    seen: set[tuple[str, str]] = set()
    for decision in parsed.rows:
        mapped = _policy_of(decision)
        if mapped is None:
            continue
        entity = ("domain", decision.domain)
        seen.add(entity)
        policy, filters = mapped
        row = rows.get(entity)
        if row is None:
            row = SubscriptionOpinion(
                id=new_id(), subscription_id=sub.id, entity_kind="domain", entity_key=decision.domain
            )
            rows[entity] = row
        elif row.policy == policy and sorted(row.filters) == sorted(filters) and row.absences == 0:
            continue
        row.policy, row.filters, row.labels = policy, list(filters), []
        row.entry_id = f"{sub.url}#{decision.domain}"
        row.derived_from, row.expires, row.absences = [], None, 0
        row.reason = {"und": decision.public_comment} if decision.public_comment else {}
        row.updated_at = at
        result.updated_opinions += 1
    for entity, row in rows.items():
        if entity in seen:
            continue
        row.absences += 1  # implicit retraction at the second consecutive absence
        row.updated_at = at
        if row.absences >= 2:
            row.policy = ""
            result.removed_opinions += 1
    await _save_opinions(session, rows.values())
    sub.etag_url, sub.etag, sub.last_modified = sub.url, fetched.etag, fetched.last_modified
    return True


# ---------------------------------------------------------------------------- merging


def merge_subscription(sub: Subscription) -> mm.Subscription:
    return mm.Subscription(
        id=str(sub.id),
        trust_weight=sub.trust_weight,
        mode=mm.Mode(sub.mode),
        max_policy=mm.Policy(sub.max_policy),
        priority=sub.priority,
        retraction_mode=mm.RetractionMode(sub.retraction_mode),
        independence_group=sub.independence_group or None,
        feed_id=sub.feed_id or None,
    )


def policy_of_block(block: DomainBlock) -> mm.Policy:
    """A manual block as a feed policy (for the merge's local precedence)."""
    if block.severity == "suspend":
        return mm.Policy.DROP
    if block.severity == "silence" or block.reject_media or block.reject_reports:
        return mm.Policy.FILTER
    return mm.Policy.ACCEPT


def block_values(policy: str, filters: Iterable[str]) -> dict[str, Any]:
    """The Mastodon severity and flags a merged feed result is enforced with."""
    wanted = set(filters)
    if policy in ("drop", "reject"):
        severity = "suspend"
    elif not wanted or SILENCE_FILTERS <= wanted:
        severity = "silence"
    else:
        severity = "noop"
    return {
        "severity": severity,
        "reject_media": "reject-media" in wanted,
        "reject_reports": bool(wanted & {"reject-reports", "ignore-reports"}),
    }


async def _allowed_domains(session: AsyncSession) -> frozenset[str]:
    try:
        from server.domains import allowed_domains
    except ImportError:
        return frozenset()
    return frozenset(await allowed_domains(session))


async def _followed(session: AsyncSession) -> tuple[frozenset[str], frozenset[str], dict[str, set[int]]]:
    """Remote domains and actors local members follow or are followed by, and the members per domain."""
    remote = Account.__table__.alias("remote")
    local = Account.__table__.alias("local")
    domains: set[str] = set()
    actors: set[str] = set()
    members: dict[str, set[int]] = {}
    for follower, target in (
        (local, remote),
        (remote, local),
    ):
        query = (
            select(remote.c.domain, remote.c.uri, local.c.id)
            .select_from(Follow.__table__)
            .join(follower, follower.c.id == Follow.account_id)
            .join(target, target.c.id == Follow.target_account_id)
            .where(remote.c.domain != "", local.c.domain == "")
        )
        for domain, uri, member in await session.execute(query):
            host = bare_host(domain)
            domains.add(host)
            members.setdefault(host, set()).add(member)
            if uri:
                actors.add(uri)
    return frozenset(domains), frozenset(actors), members


def _supporters(change: mm.Change) -> list[dict[str, Any]]:
    return [
        {"subscription_id": s.subscription_id, "entry_id": s.entry_id, "counted": s.counted, "policy": s.policy.value}
        for s in change.supporters
    ]


def _int_or_none(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdigit() else None


@dataclass
class ApplyOutcome:
    applied: int = 0
    drafts: int = 0
    circuit_breaker: bool = False


def _settings(session: AsyncSession, given: mm.Thresholds | None) -> tuple[mm.Thresholds, int]:
    """Thresholds and the circuit breaker's size from ``[moderation]`` (the instance's
    configuration, registered for this database: ``server.feeds.use_config``), else defaults."""
    from server import feeds

    config = feeds.config_for(session)
    if config is None:
        return given or mm.Thresholds(), mm.DEFAULT_MAX_CHANGES
    if given is None:
        given = mm.Thresholds(
            drop=config.get("moderation", "threshold_drop"),
            reject=config.get("moderation", "threshold_reject"),
            filter=config.get("moderation", "threshold_filter"),
            accept=config.get("moderation", "threshold_accept"),
        )
    return given, config.get("moderation", "circuit_breaker_changes")


async def merge_and_apply(
    session: AsyncSession,
    *,
    at: datetime,
    exclude_opinions_of: int | None = None,
    thresholds: mm.Thresholds | None = None,
) -> ApplyOutcome:
    """Merge every subscription's opinions and apply the result (the caller commits).

    ``exclude_opinions_of``: a subscription being deleted: it stays in the merge (its retraction
    mode decides what happens to what it alone supported) without opinions.
    """
    subs = list(await session.scalars(select(Subscription).order_by(Subscription.id)))
    if not subs and not await session.scalar(select(DomainBlock.id).where(DomainBlock.managed_by.is_not(None))):
        return ApplyOutcome()
    opinions: list[mm.Opinion] = []
    rows = await session.scalars(
        select(SubscriptionOpinion).order_by(SubscriptionOpinion.subscription_id, SubscriptionOpinion.id)
    )
    known = {sub.id for sub in subs if sub.enabled}  # a disabled subscription supports nothing
    for row in rows:
        if row.subscription_id == exclude_opinions_of or row.subscription_id not in known:
            continue
        if row.policy not in POLICIES:
            continue
        opinions.append(
            mm.Opinion(
                subscription_id=str(row.subscription_id),
                entity_kind=row.entity_kind,
                entity_key=row.entity_key,
                policy=mm.Policy(row.policy),
                entry_id=row.entry_id,
                filters=frozenset(row.filters),
                labels=frozenset(row.labels),
                derived_from=tuple(row.derived_from),
                expires=row.expires,
            )
        )
    blocks = {b.domain: b for b in await session.scalars(select(DomainBlock))}
    manual: dict[mm.Entity, mm.Policy] = {}
    managed: dict[mm.Entity, mm.ManagedDecision] = {}
    for block in blocks.values():
        entity = mm.Entity("domain", block.domain)
        if block.managed_by is None:
            manual[entity] = policy_of_block(block)
        else:
            managed[entity] = mm.ManagedDecision(
                policy=mm.Policy(block.managed_policy or "drop"),
                owner=str(block.managed_by),
                filters=frozenset(block.managed_filters or ()),
                labels=frozenset(block.managed_labels or ()),
            )
    followed_domains, followed_actors, members = await _followed(session)
    local = mm.LocalState(
        allows=await _allowed_domains(session),
        manual=manual,
        followed_domains=followed_domains,
        followed_actors=followed_actors,
        managed=managed,
    )
    thresholds, max_changes = _settings(session, thresholds)
    result = mm.merge(
        opinions, [merge_subscription(s) for s in subs], thresholds, local, now=at, max_changes=max_changes
    )
    outcome = ApplyOutcome(circuit_breaker=result.circuit_breaker)
    proposed: set[tuple[str, str]] = set()
    for change in result.changes:
        kind, key = change.entity
        if kind != "domain":
            continue  # account-level decisions are not applied from subscriptions
        if change.policy is mm.Policy.ACCEPT and change.action in (mm.Action.ADD, mm.Action.UPDATE):
            continue  # allows belong to the domain-allow area
        if change.draft:
            proposed.add((kind, key))
            if await _upsert_draft(session, change, at, members.get(key, set())):
                outcome.drafts += 1
        else:
            await apply_change(session, change_values(change), blocks, at=at, actor_account_id=None)
            if change.action is not mm.Action.KEEP:
                outcome.applied += 1
    # Pending drafts no longer proposed are superseded.
    for draft in await session.scalars(select(ModerationDraft).where(ModerationDraft.state == "pending")):
        if (draft.entity_kind, draft.entity_key) not in proposed:
            draft.state, draft.updated_at = "superseded", at
    if result.circuit_breaker:
        await alert_staff(session)
    return outcome


def change_values(change: mm.Change) -> dict[str, Any]:
    """A merge change as plain values (what a draft stores and :func:`apply_change` takes)."""
    return {
        "entity_kind": change.entity.kind,
        "entity_key": change.entity.key,
        "action": change.action.value,
        "policy": None if change.policy is None else change.policy.value,
        "filters": sorted(change.filters),
        "labels": sorted(change.labels),
        "previous_policy": None if change.previous_policy is None else change.previous_policy.value,
        "owner": _int_or_none(change.owner),
        "previous_owner": _int_or_none(change.previous_owner),
        "supporters": _supporters(change),
        "reasons": [r.value for r in change.reasons],
        "review": [r.value for r in change.review],
    }


def draft_values(draft: ModerationDraft) -> dict[str, Any]:
    return {
        "entity_kind": draft.entity_kind,
        "entity_key": draft.entity_key,
        "action": draft.action,
        "policy": draft.policy,
        "filters": list(draft.filters),
        "labels": list(draft.labels),
        "previous_policy": draft.previous_policy,
        "owner": draft.owner_subscription_id,
        "previous_owner": draft.previous_owner_subscription_id,
        "supporters": list(draft.supporters),
        "reasons": list(draft.reasons),
        "review": list(draft.review),
    }


async def _upsert_draft(session: AsyncSession, change: mm.Change, at: datetime, members: set[int]) -> bool:
    """Record a proposed change as a pending draft; True when it is new (not seen or rejected before)."""
    values = change_values(change)
    same = (
        ModerationDraft.entity_kind == values["entity_kind"],
        ModerationDraft.entity_key == values["entity_key"],
    )
    existing = list(await session.scalars(select(ModerationDraft).where(*same, ModerationDraft.state != "superseded")))
    for draft in existing:
        matches = (draft.action, draft.policy, sorted(draft.filters)) == (
            values["action"],
            values["policy"],
            values["filters"],
        )
        if draft.state == "rejected" and matches:
            return False  # a moderator said no to exactly this; do not ask again
        if draft.state == "pending":
            if matches:
                draft.supporters, draft.reasons, draft.review = (
                    values["supporters"],
                    values["reasons"],
                    values["review"],
                )
                draft.updated_at = at
                return False
            draft.state, draft.updated_at = "superseded", at
    session.add(
        ModerationDraft(
            id=new_id(),
            entity_kind=values["entity_kind"],
            entity_key=values["entity_key"],
            action=values["action"],
            policy=values["policy"],
            filters=values["filters"],
            labels=values["labels"],
            previous_policy=values["previous_policy"],
            owner_subscription_id=values["owner"],
            previous_owner_subscription_id=values["previous_owner"],
            supporters=values["supporters"],
            reasons=values["reasons"],
            review=values["review"],
            state="pending",
            created_at=at,
            updated_at=at,
        )
    )
    if change.affects_follows or mm.Review.FOLLOWS in change.review:
        for member in sorted(members):
            notify_system(session, recipient_id=member, type="moderation.follows_at_risk")
    return True


async def alert_staff(session: AsyncSession) -> int:
    """Notify every admin and moderator (a sync tripped the circuit breaker)."""
    staff = list(
        await session.scalars(
            select(User.account_id).where(User.role.in_(("admin", "moderator")), User.disabled.is_(False))
        )
    )
    for account_id in staff:
        notify_system(session, recipient_id=account_id, type="admin.moderation_alert")
    return len(staff)


class ApplyConflict(Exception):
    """The decision changed since the draft was made (a moderator decided it meanwhile)."""


async def apply_change(
    session: AsyncSession,
    values: Mapping[str, Any],
    blocks: dict[str, DomainBlock] | None,
    *,
    at: datetime,
    actor_account_id: int | None,
    draft_id: int | None = None,
) -> None:
    """Write one change to ``domain_blocks`` with its audit entry (and feed record)."""
    domain = values["entity_key"]
    if blocks is None:
        block = await session.scalar(select(DomainBlock).where(DomainBlock.domain == domain))
    else:
        block = blocks.get(domain)
    action = values["action"]
    owner = values["owner"]
    source_id = owner if owner is not None else values["previous_owner"]
    if action in ("add", "update"):
        if block is not None and block.managed_by is None:
            raise ApplyConflict(f"{domain} has a moderator's own decision")
        if action == "update" and block is None:
            raise ApplyConflict(f"{domain} has no decision to update any more")
        flags = block_values(values["policy"], values["filters"])
        if block is None:
            block = DomainBlock(id=new_id(), domain=domain, created_at=at, private_comment="", public_comment="")
            session.add(block)
            if blocks is not None:
                blocks[domain] = block
            audit_action = "domain_block.create"
        else:
            audit_action = "domain_block.update"
        block.severity = flags["severity"]
        block.reject_media, block.reject_reports = flags["reject_media"], flags["reject_reports"]
        block.obfuscate = block.obfuscate or False
        block.managed_by = owner
        block.managed_policy = values["policy"]
        block.managed_filters = list(values["filters"])
        block.managed_labels = list(values["labels"])
        block.updated_at = at
    elif action == "remove":
        if block is None or block.managed_by is None:
            raise ApplyConflict(f"{domain} has no subscription-managed decision to remove")
        audit_action = "domain_block.delete"
    elif action == "orphan":
        if block is None or block.managed_by is None:
            raise ApplyConflict(f"{domain} has no subscription-managed decision to orphan")
        audit_action = "domain_block.orphan"
    else:  # keep: ownership moved (or a pin held)
        if block is None or block.managed_by is None:
            return
        audit_action = "domain_block.owner_changed"
        block.managed_by = owner
        block.updated_at = at
    details: dict[str, Any] = {
        "entity_kind": values["entity_kind"],
        "policy": values["policy"],
        "filters": list(values["filters"]),
        "labels": list(values["labels"]),
        "previous_policy": values["previous_policy"],
        "owner": None if owner is None else str(owner),
        "previous_owner": None if values["previous_owner"] is None else str(values["previous_owner"]),
        "supporters": list(values["supporters"]),
        "reasons": list(values["reasons"]),
    }
    if block is not None:
        details.update(severity=block.severity, reject_media=block.reject_media, reject_reports=block.reject_reports)
    if draft_id is not None:
        details["draft_id"] = str(draft_id)
    session.add(
        AuditEntry(
            id=new_id(),
            actor_account_id=actor_account_id,
            source=f"subscription:{source_id}" if source_id is not None else "subscription",
            action=audit_action,
            target_type="domain",
            target=domain,
            reason=",".join(values["reasons"])[:500],
            details=details,
            created_at=at,
        )
    )
    decision: DomainDecision | None = None
    if action == "remove":
        assert block is not None
        await session.delete(block)
        if blocks is not None:
            blocks.pop(domain, None)
    elif action == "orphan":
        assert block is not None
        block.managed_by = None
        block.managed_policy = None
        block.managed_filters, block.managed_labels = [], []
        block.private_comment = block.private_comment or "Kept after its subscription retracted it"
        block.updated_at = at
        return  # still enforced, as before: nothing new to publish
    if action == "keep":
        return
    if block is not None and action != "remove":
        decision = DomainDecision(
            domain=domain,
            severity=Severity(block.severity),
            reject_media=block.reject_media,
            reject_reports=block.reject_reports,
        )
    await _record(session, domain, decision, values, at)


async def _record(
    session: AsyncSession, domain: str, decision: DomainDecision | None, values: Mapping[str, Any], at: datetime
) -> None:
    """Tell the publishing side (server/feeds.py, when present) so it re-publishes with provenance."""
    try:
        from server import feeds
    except ImportError:
        return
    record = getattr(feeds, "record_decision", None)
    if record is None:
        return
    derived = [s["entry_id"] for s in values["supporters"] if s["entry_id"].startswith(("http://", "https://"))]
    owner = values["owner"] if values["owner"] is not None else values["previous_owner"]
    await record(
        session,
        kind="domain",
        key=domain,
        decision=decision,
        derived_from=derived,
        source=f"subscription:{owner}",
        at=at,
    )


# ---------------------------------------------------------------------------- syncing


async def _claim(sessions: async_sessionmaker[AsyncSession], sub_id: int, at: datetime) -> bool:
    async with sessions() as session:
        claimed = await session.execute(
            update(Subscription)
            .where(
                Subscription.id == sub_id,
                or_(Subscription.sync_locked_until.is_(None), Subscription.sync_locked_until < at),
            )
            .values(sync_locked_until=at + SYNC_LEASE)
            .execution_options(synchronize_session=False)
        )
        await session.commit()
        return bool(claimed.rowcount)  # type: ignore[attr-defined]


async def sync_subscription(fed: Any, sub_id: int, *, at: datetime | None = None) -> SyncResult:
    """Fetch one subscription, update its opinions, merge everything and apply, in one transaction.

    A failure (network, format, keys) is recorded on the subscription (``last_error``, backoff
    for the next scheduled sync) and returned as a result with status ``error``; nothing else
    changes. Raises :class:`SyncBusy` while another sync of it runs, LookupError if it is gone.
    """
    at = at or now()
    sessions = fed.sessions
    async with sessions() as session:
        if await session.get(Subscription, sub_id) is None:
            raise LookupError(sub_id)
    if not await _claim(sessions, sub_id, at):
        raise SyncBusy("busy", "another sync of this subscription is running")
    result = SyncResult(subscription_id=sub_id)
    try:
        async with sessions() as session:
            sub = await session.get(Subscription, sub_id)
            if sub is None:
                raise LookupError(sub_id)
            try:
                if sub.format in LEGACY_FORMATS:
                    changed = await _sync_legacy(fed, session, sub, result, at)
                else:
                    changed = await _sync_feed(fed, session, sub, result, at)
                if changed:
                    await session.flush()
                    outcome = await merge_and_apply(session, at=at)
                    result.applied, result.drafts = outcome.applied, outcome.drafts
                    result.circuit_breaker = outcome.circuit_breaker
                else:
                    result.status = "not_modified"
            except (FetchError, SyncError) as exc:
                await session.rollback()
                reason = getattr(exc, "reason", "error")
                log.warning("subscription %s: sync failed: %s", sub_id, reason)
                result = SyncResult(subscription_id=sub_id, status="error", error=str(exc)[:250])
                result.rejected, result.rejected_entries = 0, []
                await _record_failure(session, sub_id, result, at)
                return result
            sub.last_sync_at = sub.last_success_at = at
            sub.last_error = None
            sub.consecutive_failures = 0
            sub.next_sync_at = at + timedelta(seconds=sub.interval_seconds)
            sub.last_result = result.to_json()
            sub.updated_at = at
            await session.commit()
        return result
    finally:
        async with sessions() as session:
            await session.execute(update(Subscription).where(Subscription.id == sub_id).values(sync_locked_until=None))
            await session.commit()


async def _record_failure(session: AsyncSession, sub_id: int, result: SyncResult, at: datetime) -> None:
    sub = await session.get(Subscription, sub_id)
    if sub is None:
        return
    sub.consecutive_failures += 1
    sub.last_sync_at = at
    sub.last_error = (result.error or "error")[:255]
    sub.last_result = result.to_json()
    sub.next_sync_at = at + min(
        backoff(sub.consecutive_failures, base=60.0), timedelta(seconds=max(sub.interval_seconds, 60) * 8)
    )
    sub.updated_at = at
    await session.commit()


async def delete_subscription(session: AsyncSession, sub: Subscription, *, at: datetime) -> ApplyOutcome:
    """Remove a subscription; what it alone supported is retracted per its retraction mode (the
    caller commits). Runs the merge with the subscription present but silent, then deletes it."""
    outcome = await merge_and_apply(session, at=at, exclude_opinions_of=sub.id)
    await session.execute(delete(SubscriptionOpinion).where(SubscriptionOpinion.subscription_id == sub.id))
    await session.execute(delete(Job).where(Job.unique_key == f"{JOB_KIND}:{sub.id}"))
    await session.delete(sub)
    return outcome


async def decide_draft(
    session: AsyncSession, draft: ModerationDraft, *, accept: bool, actor_account_id: int | None, at: datetime
) -> None:
    """Accept (apply, with an audit entry naming the moderator and the provenance) or reject a
    pending draft (the caller commits). Raises ApplyConflict when it no longer applies."""
    if draft.state != "pending":
        raise ApplyConflict(f"the draft is {draft.state}, not pending")
    if accept:
        await apply_change(
            session, draft_values(draft), None, at=at, actor_account_id=actor_account_id, draft_id=draft.id
        )
    else:
        session.add(
            AuditEntry(
                id=new_id(),
                actor_account_id=actor_account_id,
                source=f"subscription:{draft.owner_subscription_id or draft.previous_owner_subscription_id}",
                action="moderation_draft.reject",
                target_type="domain",
                target=draft.entity_key,
                reason="",
                details={"draft_id": str(draft.id), **draft_values(draft)},
                created_at=at,
            )
        )
    draft.state = "accepted" if accept else "rejected"
    draft.decided_by_account_id = actor_account_id
    draft.decided_at = draft.updated_at = at


# ---------------------------------------------------------------------------- subscribing


@dataclass
class Settings:
    """Validated subscription settings (API and CLI)."""

    format: str | None = None
    name: str = ""
    mode: str = "draft"
    trust_weight: int = 1
    max_policy: str = "drop"
    retraction_mode: str = "remove"
    independence_group: str | None = None
    priority: int = 0
    enabled: bool = True
    interval_seconds: int = 3600


def check_url(url: str) -> str:
    """A subscribable URL (http(s), host, no userinfo or fragment); ValueError naming the field."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("url: must be an http or https URL")
    if "@" in parts.netloc or parts.fragment:
        raise ValueError("url: must not carry userinfo or a fragment")
    if len(url) > 2048:
        raise ValueError("url: longer than 2048 characters")
    return url.strip()


async def discover(fed: Any, url: str, fmt: str | None) -> tuple[str, Dataset | None]:
    """Fetch a URL once to find its format (when not given) and, for feeds, its dataset (keys)."""
    if fmt in LEGACY_FORMATS:
        return fmt, None
    accept = FEED_ACCEPT if fmt else f"{FEED_ACCEPT}, {LIST_ACCEPT}"
    fetched = await fetch_document(fed, url, accept=accept, accept_types=FEED_TYPES | LIST_TYPES)
    assert fetched.body is not None
    try:
        detected = detect_format(fetched.body, fetched.content_type)
    except FormatError as exc:
        raise SyncError("format", str(exc)) from None
    if detected == "json" and fetched.body.lstrip()[:1] == b"{":
        try:
            dataset = parse_dataset(_json(fetched))
        except FeedError as exc:
            raise SyncError("bad_dataset", str(exc)) from None
        if fmt is None:
            fmt = "signed" if dataset.keys else "fires"
        if fmt == "signed" and not dataset.keys:
            raise SyncError("keys", "the dataset lists no publisher keys (subscribe with format fires)")
        return fmt, dataset
    if fmt in ("signed", "fires"):
        raise SyncError("format", "not a FIRES dataset")
    return {"json": "mastodon_json", "plain": "mastodon_csv"}.get(detected, detected), None


async def create_subscription(
    fed: Any, session: AsyncSession, url: str, settings: Settings, *, at: datetime
) -> Subscription:
    """Check the URL, fetch it once (format, keys to pin) and add the subscription (caller commits)."""
    url = check_url(url)
    fmt, dataset = await discover(fed, url, settings.format)
    sub = Subscription(
        id=new_id(),
        url=url,
        format=fmt,
        name=settings.name or (dataset.name if dataset is not None else urlsplit(url).hostname or url),
        mode=settings.mode,
        trust_weight=settings.trust_weight,
        max_policy=settings.max_policy,
        retraction_mode=settings.retraction_mode,
        independence_group=settings.independence_group,
        priority=settings.priority,
        enabled=settings.enabled,
        interval_seconds=settings.interval_seconds,
        pinned_keys=pinned_keys_of(dataset) if dataset is not None and fmt == "signed" else [],
        feed_id=dataset.id if dataset is not None else None,
        publisher=dataset.publisher if dataset is not None else None,
        snapshot_url=dataset.snapshot if dataset is not None else None,
        changes_url=dataset.changes if dataset is not None else None,
        next_sync_at=at,
        last_result={},
        created_at=at,
        updated_at=at,
    )
    session.add(sub)
    return sub


# ---------------------------------------------------------------------------- scheduling


async def schedule_due(sessions: async_sessionmaker[AsyncSession], *, at: datetime | None = None) -> int:
    """Enqueue a ``subscription_sync`` job for every enabled subscription that is due (one per
    subscription at a time: the job's unique key). Returns how many were enqueued."""
    at = at or now()
    async with sessions() as session:
        due = list(
            await session.scalars(
                select(Subscription.id).where(
                    Subscription.enabled.is_(True),
                    or_(Subscription.next_sync_at.is_(None), Subscription.next_sync_at <= at),
                )
            )
        )
    added = 0
    for sub_id in due:
        async with sessions() as session:
            session.add(
                Job(
                    id=new_id(),
                    kind=JOB_KIND,
                    unique_key=f"{JOB_KIND}:{sub_id}",
                    payload={"subscription_id": str(sub_id)},
                    state="pending",
                    attempts=0,
                    next_attempt_at=at,
                    created_at=at,
                )
            )
            try:
                await session.commit()
                added += 1
            except IntegrityError:
                await session.rollback()  # already queued
    if added:
        from server.outbox import JOBS
        from server.workers import WAKEUPS

        WAKEUPS.notify(JOBS)
    return added


async def run_sync_job(fed: Any, payload: Mapping[str, Any]) -> None:
    """The ``subscription_sync`` job: one sync; failures are recorded on the subscription (its
    ``next_sync_at`` backs off), so the job itself always ends."""
    sub_id = int(str(payload.get("subscription_id", "0")))
    try:
        await sync_subscription(fed, sub_id)
    except SyncBusy:
        log.info("subscription %s: sync skipped, another one is running", sub_id)
    except LookupError:
        log.info("subscription %s: gone", sub_id)


async def push_hint(sessions: async_sessionmaker[AsyncSession], changes_url: str) -> int:
    """A publisher's ``Update`` of its changes collection: make the subscriptions with exactly
    that changes URL due now (never fetches the URL it was given)."""
    at = now()
    async with sessions() as session:
        updated = await session.execute(
            update(Subscription)
            .where(Subscription.changes_url == changes_url, Subscription.enabled.is_(True))
            .values(next_sync_at=at)
            .execution_options(synchronize_session=False)
        )
        await session.commit()
    count = int(updated.rowcount or 0)  # type: ignore[attr-defined]
    if count:
        await schedule_due(sessions, at=at)
    return count


class SubscriptionScheduler:
    """Enqueues due syncs every ``poll`` seconds (in the worker process)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], poll: float = 30.0) -> None:
        self.sessions = sessions
        self.poll = poll

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await schedule_due(self.sessions)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the scheduler must survive a database hiccup
                log.warning("subscription scheduler: %s", type(exc).__name__)
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.poll)
            except TimeoutError:
                pass
