"""Remote actors: fetch, parse, store, and keep their keys (the remote key cache).

A remote actor is a row of ``accounts`` with a non-empty ``domain`` plus its keys in
``actor_keys``. Actor documents come from ``Transport.fetch_json`` (signed by the instance
actor, id checked against the final URL) and are parsed by ``federation.inbound.parse_actor``
(id, origin and key-ownership rules live there).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from crypto.errors import KeyFormatError
from crypto.signing import PublicKey
from federation.content import html_to_text
from federation.inbound import InvalidActivity, RemoteActor, parse_actor, parse_jrd
from server.domains import domain_block, stamp_new_account
from server.federation import Federation, host_of
from server.ids import new_id
from server.models import Account, ActorKey
from server.transport import FetchError
from server.web import now

log = logging.getLogger(__name__)

ACTOR_TTL = timedelta(hours=24)  # Lemmy refetches actors daily (research/federation.md §2.6)
MAX_USERNAME = 64


class ActorUnavailable(Exception):
    """The actor could not be fetched, parsed or stored; ``reason`` is a short code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def strip_fragment(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, parts.query, ""))


async def account_by_uri(session: AsyncSession, uri: str) -> Account | None:
    return await session.scalar(select(Account).where(Account.uri == uri))


def _apply(account: Account, actor: RemoteActor, moment: datetime) -> None:
    account.actor_type = actor.type
    account.display_name = (actor.name or "")[:100]
    account.note = actor.summary_html or ""
    account.note_source = html_to_text(actor.summary_html or "")
    account.fields = [{"name": name[:255], "value": value} for name, value in actor.fields][:50]
    account.locked = bool(actor.manually_approves_followers)
    account.bot = actor.type in ("Service", "Application")
    account.discoverable = bool(actor.discoverable)
    account.url = actor.url or actor.id
    account.inbox_url = actor.inbox
    account.shared_inbox_url = actor.shared_inbox
    account.outbox_url = actor.outbox
    account.followers_url = actor.followers
    account.following_url = actor.following
    account.moderators_url = actor.moderators
    account.devices_url = actor.devices
    account.avatar_remote_url = actor.icon_url
    account.header_remote_url = actor.image_url
    account.also_known_as = list(actor.also_known_as)[:256]
    account.fetched_at = moment
    account.updated_at = moment


async def _store_keys(session: AsyncSession, account: Account, actor: RemoteActor, moment: datetime) -> None:
    wanted: dict[str, tuple[str, str]] = {}
    if actor.public_key_id and actor.public_key_pem:
        try:
            key = PublicKey.from_pem(actor.public_key_pem)
            wanted[actor.public_key_id] = (key.kind, key.to_pem())
        except KeyFormatError:
            log.info("actor key refused: account=%s reason=key_format", account.id)
    for key_id, multibase in actor.assertion_keys:
        try:
            key = PublicKey.from_multibase(multibase)
            wanted[key_id] = (key.kind, key.to_pem())
        except KeyFormatError:
            log.info("assertion key refused: account=%s reason=key_format", account.id)
    existing = {
        row.key_id: row for row in (await session.scalars(select(ActorKey).where(ActorKey.account_id == account.id)))
    }
    for key_id, (kind, pem) in wanted.items():
        row = existing.get(key_id)
        if row is None:
            taken = await session.scalar(select(ActorKey).where(ActorKey.key_id == key_id))
            if taken is not None:  # a key id claimed by another actor: never reassign it
                log.warning("key id claimed by two actors: account=%s other=%s", account.id, taken.account_id)
                continue
            session.add(
                ActorKey(
                    id=new_id(), account_id=account.id, key_id=key_id, kind=kind, public_pem=pem, created_at=moment
                )
            )
        else:
            row.kind, row.public_pem, row.revoked_at = kind, pem, None
    for key_id, row in existing.items():
        if key_id not in wanted and row.revoked_at is None:
            row.revoked_at = moment


async def store_actor(session: AsyncSession, actor: RemoteActor) -> Account:
    """Insert or refresh the account for ``actor`` and its keys (caller commits)."""
    moment = now()
    domain = host_of(actor.id)
    username = actor.preferred_username or ""
    if not username or len(username) > MAX_USERNAME:
        raise ActorUnavailable("bad_username", f"actor {actor.id}: preferredUsername missing or over {MAX_USERNAME}")
    account = await account_by_uri(session, actor.id)
    if account is None:
        clash = await session.scalar(
            select(Account).where(Account.username_lower == username.lower(), Account.domain == domain)
        )
        if clash is not None:
            # Same handle, different actor: Lemmy users and communities may share a name
            # (research/federation.md §8.1 item 1). The older actor keeps the handle when it
            # still exists; a stale row whose actor moved its id is taken over.
            raise ActorUnavailable("handle_taken", f"@{username}@{domain} already names another actor")
        account = Account(
            id=new_id(),
            username=username,
            username_lower=username.lower(),
            domain=domain,
            uri=actor.id,
            verified_professional=False,
            followers_count=0,
            following_count=0,
            statuses_count=0,
            created_at=moment,
        )
        _apply(account, actor, moment)
        # A limited or suspended domain's new accounts start limited or suspended (server.domains).
        block = await stamp_new_account(session, account)
        session.add(account)
        await session.flush()
    else:
        _apply(account, actor, moment)
        block = await domain_block(session, domain)
    if block is not None and block.reject_media:
        # reject_media: no files from this domain are processed, avatars and headers included
        # (attachments of remote posts are not stored at all yet).
        account.avatar_remote_url = account.header_remote_url = None
    await _store_keys(session, account, actor, moment)
    return account


async def fetch_actor_document(fed: Federation, uri: str) -> RemoteActor:
    try:
        document = await fed.transport.fetch_json(uri)
        return parse_actor(document, fetched_from=uri)
    except FetchError as exc:
        raise ActorUnavailable(exc.reason, f"actor {uri}: {exc}") from None
    except InvalidActivity as exc:
        raise ActorUnavailable(exc.reason, f"actor {uri}: {exc}") from None


async def local_account_by_uri(session: AsyncSession, base_url: str, uri: str | None) -> Account | None:
    """The local account whose actor URI is ``uri`` (people at /users/, groups at /groups/);
    local rows store no ``uri``: theirs derive from ``base_url``."""
    if not uri:
        return None
    for prefix, is_group in (("/users/", False), ("/groups/", True)):
        if uri.startswith(base_url + prefix):
            name = uri[len(base_url + prefix) :]
            if "/" in name or "#" in name or not name:
                return None
            account = await session.scalar(
                select(Account).where(Account.username_lower == name.lower(), Account.domain == "")
            )
            if account is None or account.is_group != is_group or account.deleted_at is not None:
                return None
            return account
    return None


async def resolve_actor(fed: Federation, uri: str, *, refresh: bool = False) -> Account:
    """The account for actor ``uri``: from the database, fetched when unknown or stale."""
    uri = strip_fragment(uri)
    if fed.is_local(uri):
        async with fed.sessions() as session:
            local = await local_account_by_uri(session, fed.config.base_url, uri)
        if local is None:
            raise ActorUnavailable("not_found", f"no local actor {uri}")
        return local
    async with fed.sessions() as session:
        account = await account_by_uri(session, uri)
        if account is not None and (account.local or account.deleted_at is not None):
            return account
        fresh = account is not None and account.fetched_at is not None and now() - account.fetched_at < ACTOR_TTL
        if account is not None and fresh and not refresh:
            return account
    if fed.is_local(uri):
        raise ActorUnavailable("not_found", f"no local actor {uri}")
    actor = await fetch_actor_document(fed, uri)
    async with fed.sessions() as session:
        try:
            account = await store_actor(session, actor)
            await session.commit()
            for key_id in [k for k, v in fed.keys.items() if v[2] == account.id]:
                fed.keys.pop(key_id, None)  # the verified-key cache follows the fresh document
        except IntegrityError:  # a concurrent fetch stored it first
            await session.rollback()
            account = await account_by_uri(session, actor.id)
            if account is None:
                raise ActorUnavailable("store_failed", f"actor {uri} could not be stored") from None
        return account


async def resolve_handle(fed: Federation, username: str, domain: str) -> Account:
    """``@username@domain`` through WebFinger (research/federation.md §8.1 item 1)."""
    async with fed.sessions() as session:
        known = await session.scalar(
            select(Account).where(Account.username_lower == username.lower(), Account.domain == domain.lower())
        )
        if known is not None and known.fetched_at is not None and now() - known.fetched_at < ACTOR_TTL:
            return known
    scheme = (
        urlsplit(fed.config.base_url).scheme if fed.config.get("federation", "allow_private_addresses") else "https"
    )
    url = f"{scheme}://{domain}/.well-known/webfinger?resource=acct:{username}@{domain}"
    try:
        jrd = await fed.transport.fetch_json(url, sign=False, check_id=False, accept="application/jrd+json")
        _subject, actor_url = parse_jrd(jrd)
    except FetchError as exc:
        raise ActorUnavailable(exc.reason, f"webfinger {username}@{domain}: {exc}") from None
    except InvalidActivity as exc:
        raise ActorUnavailable(exc.reason, f"webfinger {username}@{domain}: {exc}") from None
    account = await resolve_actor(fed, actor_url, refresh=True)
    if account.username_lower != username.lower() or account.domain != domain.lower():
        # The actor must round-trip to the handle asked for (Mastodon's check, §8.1 item 1).
        raise ActorUnavailable("handle_mismatch", f"{actor_url} does not answer to @{username}@{domain}")
    return account


async def mark_actor_deleted(session: AsyncSession, account: Account) -> None:
    await session.execute(update(Account).where(Account.id == account.id).values(deleted_at=now()))
