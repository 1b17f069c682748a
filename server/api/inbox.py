"""ActivityPub inboxes: the shared inbox and each local actor's own.

The inbox fails closed. In order: the content type must be an ActivityPub one (else 415);
an unsigned request is refused before its body is read (401); the body is capped (413) and
must be JSON within the depth limit (400) that passes the activity schema (400); the
signature must verify with the key of the activity's actor, or the embedded object must carry
a valid FEP-8b32 proof, or it is marked to be refetched from its origin (FEP-fe34); requests
from suspended domains get 403. Only then is one ``inbox_items`` row written, deduplicated by
activity id, and the answer is 202: processing happens in the inbox worker, durably
(research/federation.md §8.4 items 20–23). A rejected request writes nothing.

``Delete``/``Update`` from an actor we have never seen is answered 202 without fetching
anything (Mastodon does the same: a deleted account's key can no longer be fetched, and an
unknown actor's update concerns nobody here; §8.4 item 22) — except a decision feed's push hint
(an ``Update`` of the changes collection of a feed we subscribe to, docs/moderation.md).
"""

from __future__ import annotations

import asyncio
import json
import logging
import weakref
from collections.abc import Mapping
from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from crypto.errors import CryptoError
from crypto.integrity import proof_method, verify_object
from federation.e2ee import is_encrypted_message, parse_encrypted_create
from federation.inbound import (
    Incoming,
    InvalidActivity,
    check_origins,
    parse_activity,
    same_origin,
    validate_activity,
)
from server.domains import suspended_among
from server.errors import ApiError, BadRequest, Forbidden, NotFound, Unauthorized
from server.federation import FEDERATION, Federation, host_of
from server.ids import new_id
from server.ingest import INBOX
from server.models import Account, InboxItem
from server.remote_actors import account_by_uri
from server.signatures import Signer, _cached_key, _fetched_key, authenticate, is_signed, read_pending
from server.web import Routes, json_response, now
from server.workers import WAKEUPS

log = logging.getLogger(__name__)
routes = Routes()

_AP_TYPES = ("application/activity+json", "application/ld+json", "application/json")


def _check_content_type(request: web.Request) -> None:
    kind = request.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
    if kind not in _AP_TYPES:
        raise ApiError(f"Content-Type must be application/activity+json, got {kind or 'none'}", status=415)


def _parse_body(body: bytes) -> dict[str, Any]:
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        raise BadRequest("body: not valid JSON") from None
    if not isinstance(document, dict):
        raise BadRequest("body: must be a JSON object")
    try:
        validate_activity(document)  # walks the limits (depth, sizes) first, then the schema
    except InvalidActivity as exc:
        raise BadRequest(f"activity: {exc}") from None
    return document


def _find_embedded(document: Mapping[str, Any], wanted: str) -> Mapping[str, Any] | None:
    """The embedded object or activity with id ``wanted`` (looks two levels deep)."""
    node: Any = document.get("object")
    for _ in range(3):
        if not isinstance(node, Mapping):
            return None
        if node.get("id") == wanted:
            return node
        node = node.get("object")
    return None


async def _has_valid_proof(fed: Federation, embedded: Mapping[str, Any]) -> bool:
    """FEP-8b32: the embedded object is signed by a key of its own actor/author."""
    try:
        method = proof_method(embedded)
    except CryptoError:
        return False
    author = embedded.get("actor") or embedded.get("attributedTo")
    if isinstance(author, Mapping):
        author = author.get("id")
    if not isinstance(author, str) or not same_origin(method, author):
        return False
    found = await _cached_key(fed, method)
    if found is None:
        try:
            found = await _fetched_key(fed, method)
        except ApiError:
            return False
    key, owner, _ = found
    if owner != author:
        return False
    try:
        verify_object(embedded, key)
    except CryptoError:
        return False
    return True


def _reads(fed: Federation) -> Any:
    """A read-only session: inline on SQLite (``server.db.ReadSessions``), else a normal one."""
    return fed.reads() if fed.reads is not None else fed.sessions()


async def _unknown_actor(fed: Federation, incoming: Incoming) -> bool:
    async with _reads(fed) as session:
        return await account_by_uri(session, incoming.actor) is None


async def _wanted_feed_hint(fed: Federation, document: Mapping[str, Any]) -> bool:
    """An ``Update`` naming (as a bare URL) the changes collection of a decision feed we
    subscribe to: a publisher's push hint, usually from an instance actor we have not stored."""
    url = document.get("object")
    if document.get("type") != "Update" or not isinstance(url, str):
        return False
    from server.models import Subscription

    async with _reads(fed) as session:
        found = await session.scalar(select(Subscription.id).where(Subscription.changes_url == url).limit(1))
    return found is not None


async def _recipient(fed: Federation, kind: str | None, username: str | None) -> int | None:
    if kind is None or username is None:
        return None
    async with _reads(fed) as session:
        account: Account | None = await session.scalar(
            select(Account).where(Account.username_lower == username.lower(), Account.domain == "")
        )
    if account is None or account.deleted_at is not None or account.is_group != (kind == "groups"):
        raise NotFound("Record not found")
    return account.id


async def receive(request: web.Request, kind: str | None = None) -> web.Response:
    fed = request.app[FEDERATION]
    if not fed.enabled:
        raise NotFound("federation is disabled on this instance")
    recipient_id = await _recipient(fed, kind, request.match_info.get("username"))
    _check_content_type(request)
    if not is_signed(request):
        raise Unauthorized("request is not signed (HTTP Signatures required)")
    body = await request.read()
    document = _parse_body(body)
    try:
        incoming = parse_activity(document)
        if is_encrypted_message(document):
            # Strict rules before anything is stored: actors only, never Public or a
            # collection, ciphertext only, sizes bounded (docs/e2ee.md).
            parse_encrypted_create(document)
    except InvalidActivity as exc:
        raise BadRequest(f"activity: {exc}") from None
    if (
        incoming.type in ("Delete", "Update")
        and await _unknown_actor(fed, incoming)
        and not await _wanted_feed_hint(fed, document)
    ):
        return json_response({}, status=202)
    pending = read_pending(fed, request, body)
    signer: Signer = await authenticate(fed, pending, domain_checked_later=True)
    refetch: str | None = None
    verdict = check_origins(incoming, signer.actor_uri)
    if not verdict.ok and verdict.reason == "signer_not_actor":
        # Relayed by someone else: only the actor's own FEP-8b32 proof on the activity itself
        # vouches for it (FEP-fe34); a refetch of an activity id proves nothing.
        if not await _has_valid_proof(fed, document):
            raise Unauthorized(f"activity refused: signed by {signer.actor_uri}, but its actor is {incoming.actor}")
        verdict = check_origins(incoming, incoming.actor)
    if not verdict.ok and not verdict.moderator_action:
        if verdict.needs_proof_or_fetch is None:
            raise Unauthorized(f"activity refused: {verdict.reason}")
        embedded = _find_embedded(document, verdict.needs_proof_or_fetch)
        if embedded is None or not await _has_valid_proof(fed, embedded):
            refetch = verdict.needs_proof_or_fetch
    moment = now()
    await recorder(fed).record(
        {host_of(pending.key_id), host_of(incoming.actor)},
        {
            "id": new_id(),
            "activity_id": incoming.id,
            "activity_type": incoming.type[:32],
            "actor_uri": incoming.actor,
            "signer_key_id": signer.key_id,
            "recipient_account_id": recipient_id,
            "refetch_uri": refetch,
            "body": body.decode(),
            "state": "pending",
            "attempts": 0,
            "next_attempt_at": moment,
            "received_at": moment,
        },
    )
    return json_response({}, status=202)


class InboxRecorder:
    """Group commit for inbox rows: requests arriving while a write is in progress are written
    together in the next one. Each request still answers only after its own row is committed
    (the 202 promise), but concurrent deliveries share one transaction — on SQLite, one
    writer and one fsync — instead of queueing for the writer one by one. A duplicate activity
    id is skipped by the database (``ON CONFLICT DO NOTHING``): the first copy wins.
    """

    MAX_BATCH = 500

    def __init__(self, fed: Federation) -> None:
        self.fed = fed
        self._waiting: list[tuple[dict[str, Any], set[str], asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def record(self, domains: set[str], row: dict[str, Any]) -> None:
        """Store ``row`` unless one of ``domains`` (signer's, actor's) is suspended (403)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((row, domains, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write())
        await future

    async def _write(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting[: self.MAX_BATCH], self._waiting[self.MAX_BATCH :]
            try:
                async with self.fed.sessions() as session:
                    # The suspended-domain rule for the whole batch, in the storing transaction.
                    suspended = await suspended_among(session, set().union(*(d for _, d, _ in batch)))
                    kept = []
                    for row, domains, future in batch:
                        refused = sorted(domains & suspended)
                        if refused:
                            future.set_exception(
                                Forbidden(f"activities from {refused[0]} are refused by this instance")
                            )
                        else:
                            kept.append((row, future))
                    if kept:
                        dialect = session.get_bind().dialect.name
                        insert = sqlite_insert if dialect == "sqlite" else postgresql_insert
                        statement = insert(InboxItem).on_conflict_do_nothing(index_elements=["activity_id"])
                        await session.execute(statement, [row for row, _ in kept])
                    await session.commit()
            except Exception as exc:  # every request of the batch answers the error (nothing stored)
                for _row, _domains, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for _row, future in kept:
                if not future.done():
                    future.set_result(None)
            WAKEUPS.notify(INBOX)


_RECORDERS: weakref.WeakKeyDictionary[Federation, InboxRecorder] = weakref.WeakKeyDictionary()


def recorder(fed: Federation) -> InboxRecorder:
    found = _RECORDERS.get(fed)
    if found is None:
        found = _RECORDERS[fed] = InboxRecorder(fed)
    return found


@routes.post("/inbox")
async def shared_inbox(request: web.Request) -> web.Response:
    return await receive(request)


@routes.post("/actor/inbox")
async def instance_inbox(request: web.Request) -> web.Response:
    return await receive(request)


@routes.post("/users/{username}/inbox")
async def person_inbox(request: web.Request) -> web.Response:
    return await receive(request, "users")


@routes.post("/groups/{username}/inbox")
async def group_inbox(request: web.Request) -> web.Response:
    return await receive(request, "groups")
