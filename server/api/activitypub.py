"""What Hearthside serves to other servers over ActivityPub ``GET``: actors, posts, the
activities that created them, and collections.

Design note
-----------
Routes: the instance actor ``/actor`` (``Application``) and its ``/actor/outbox``; people
``/users/{u}`` with ``/outbox``, ``/followers``, ``/following``, ``/statuses/{id}`` (the Note)
and ``/statuses/{id}/activity`` (its ``Create``; for a boost, the ``Announce``); groups
``/groups/{u}`` with ``/outbox``, ``/followers``, ``/following`` and ``/moderators``
(FEP-1b12). A path of the wrong kind (``/users/`` for a group) is 404.

Content negotiation (research/federation.md §8.2 items 6-7): ActivityStreams JSON for
``application/activity+json``, ``application/ld+json`` (any profile), ``application/json``
or no preference, with ``Content-Type: application/activity+json`` exactly (Lemmy compares
it verbatim) and ``Vary: Accept, Signature``. A browser (``text/html`` preferred) gets a
small static page with ``<link rel="alternate">`` to the JSON; every value in it is escaped
and a ``default-src 'none'`` CSP forbids anything active.

Who sees what. Public and unlisted posts are served to anyone, signed or not. Other posts are
served only to an authenticated signed fetch (``server.signatures.fetch_signer``; a bad
signature is 401) whose signer may see them: a ``private`` post when the signer follows the
author (for a group post: is a member of the group) or is mentioned — the rules of
``server.statuses.visible_clause``, so the client API and federation cannot disagree — and a
post in a members-only group when the signer's domain has at least one accepted member of the
group (Lemmy private communities, research/federation.md §2.4, §5). Everything else is 404,
never 403, so existence is not revealed. Instance actor and actor documents never need a
signature (§8.2 item 10).

Collections are privacy-first: ``followers`` and ``following`` give ``totalItems`` only,
never their members (members of a support group must not be listable; Lemmy and Mbin do the
same for groups, §2.2). ``moderators`` lists the group's owners and moderators, which
FEP-1b12 requires to check moderation activities. Outboxes page ``Create`` activities of
public and unlisted posts, newest first, 20 per page (``?page=true``, ``?max_id=``,
``?min_id=``); a members-only group's outbox is empty unless the fetch is authorised as above.

Deleted and suspended. A deleted account answers ``410 Gone`` with a ``Tombstone``. A
suspended account (suspension is reversible here) answers Mastodon's shape for it: identity,
collections and keys with ``suspended: true`` and no name, summary, images or fields, so
remote servers neither purge it nor show its content; its posts are 404. A deleted post that
anyone could see answers 410 with a ``Tombstone``; a deleted non-public post answers 404.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

from aiohttp import web
from sqlalchemy import ColumnElement, and_, exists, func, or_, select
from sqlalchemy.orm import aliased

from federation.content import html_to_text
from federation.documents import (
    ACTIVITY_JSON,
    PUBLIC,
    ActorUrls,
    announce_activity,
    instance_actor_url,
    ordered_collection,
    ordered_collection_page,
    prefers_html,
    tombstone,
)
from server import feeds
from server.actor_documents import actor_document, instance_actor_document
from server.actor_keys import existing_keys, instance_keys, local_keys
from server.config import Config
from server.entities import account_uri
from server.errors import BadRequest, NotFound
from server.federation import host_of
from server.models import Account, Delivery, E2EEIdentity, Follow, Group, GroupRole, OutboxActivity, Status
from server.notes import handle, load_related, note_and_create
from server.signatures import fetch_signer
from server.statuses import PUBLICISH, available, status_uri, visible_clause
from server.web import CONFIG, READ_SESSIONS, SESSIONS, Routes

routes = Routes()

PAGE_SIZE = 20
VARY = "Accept, Signature"
PRIVATE_CACHE = "private, no-store"
PERSON = "/users/{username}"
GROUP = "/groups/{username}"
_USERNAME = re.compile(r"^[A-Za-z0-9_]{1,64}$")
_ID = re.compile(r"^[0-9]{1,19}$")


# ---------------------------------------------------------------------------- responses


def _ap(data: Any, *, status: int = 200, private: bool = False) -> web.Response:
    """ActivityStreams JSON with exactly the media type Lemmy and Mastodon accept (§8.2 item 7)."""
    headers = {"Vary": VARY}
    if private:
        # Served because of who signed: no shared cache may keep it for anyone else.
        headers["Cache-Control"] = PRIVATE_CACHE
    return web.Response(
        body=json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode(),
        status=status,
        content_type=ACTIVITY_JSON,
        headers=headers,
    )


def _gone(document: dict[str, Any]) -> web.Response:
    return _ap(document, status=410)


def _html(title: str, lines: Sequence[str], alternate: str) -> web.Response:
    """A minimal page for browsers: escaped text and a link to the ActivityPub document."""
    paragraphs = "".join(f"<p>{escape(line)}</p>" for line in lines if line)
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="robots" content="noindex">'
        f"<title>{escape(title)}</title>"
        f'<link rel="alternate" type="{ACTIVITY_JSON}" href="{escape(alternate, quote=True)}">'
        f"</head><body><main><h1>{escape(title)}</h1>{paragraphs}"
        f'<p><a href="{escape(alternate, quote=True)}">ActivityPub document</a></p></main></body></html>\n'
    )
    return web.Response(
        text=page,
        content_type="text/html",
        headers={"Vary": VARY, "Content-Security-Policy": "default-src 'none'"},
    )


def _wants_html(request: web.Request) -> bool:
    return prefers_html(request.headers.get("Accept"))


# ---------------------------------------------------------------------------- the signer


@dataclass(frozen=True, slots=True)
class Viewer:
    """The authenticated signer of a GET: its account row (if known) and its domain
    (``host[:port]``, the form ``accounts.domain`` holds for remote actors)."""

    account_id: int | None
    domain: str


async def _viewer(request: web.Request) -> Viewer | None:
    """Who signed this request, or None when unsigned. A bad signature is 401 (raised)."""
    signer = await fetch_signer(request)
    if signer is None:
        return None
    async with request.app[READ_SESSIONS]() as session:
        account_id = (await session.execute(select(Account.id).where(Account.uri == signer))).scalar_one_or_none()
    return Viewer(account_id, host_of(signer))


def _members_only_group_ids() -> Any:
    return select(Group.account_id).where(Group.members_only.is_(True))


def _domain_has_member(group_id: Any, domain: str) -> ColumnElement[bool]:
    member = aliased(Account)
    return exists().where(
        Follow.target_account_id == group_id,
        Follow.state == "accepted",
        Follow.account_id == member.id,
        member.domain == domain,
    )


def visible_to(viewer: Viewer | None) -> ColumnElement[bool]:
    """The statuses this fetch may receive (see the module note)."""
    if viewer is None:
        return visible_clause(None)
    by_account = visible_clause(viewer.account_id) if viewer.account_id is not None else visible_clause(None)
    by_domain = and_(
        Status.deleted_at.is_(None),
        Status.hidden_at.is_(None),  # hidden pending review (server/safety.py): served to no one remote
        Status.group_id.is_not(None),
        Status.group_id.in_(_members_only_group_ids()),
        available(Status.account_id),
        available(Status.group_id),
        _domain_has_member(Status.group_id, viewer.domain),
    )
    return or_(by_account, by_domain)


# ---------------------------------------------------------------------------- loading


async def _local_account(session: Any, username: str, actor_type: str) -> Account:
    if not _USERNAME.match(username):
        raise NotFound("Record not found")
    account: Account | None = (
        await session.execute(select(Account).where(Account.username_lower == username.lower(), Account.domain == ""))
    ).scalar_one_or_none()
    if account is None or account.actor_type != actor_type:
        raise NotFound("Record not found")
    return account


async def _group_settings(session: Any, account: Account) -> Group:
    settings: Group | None = (
        await session.execute(select(Group).where(Group.account_id == account.id))
    ).scalar_one_or_none()
    if settings is None:
        raise NotFound("Record not found")
    return settings


# ---------------------------------------------------------------------------- actors


@routes.get("/actor")
async def instance_actor(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    actor = instance_actor_url(config.base_url)
    if _wants_html(request):
        return _html(config.get("instance", "name"), [f"The instance actor of {config.domain}."], actor)
    keys = await asyncio.to_thread(instance_keys, config)  # file reads (a key generated if missing) the first time
    async with request.app[READ_SESSIONS]() as session:
        moderation_keys = await feeds.publisher_keys(session)
    return _ap(instance_actor_document(config, keys, moderation_keys))


@routes.get("/actor/outbox")
async def instance_outbox(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    return _ap(ordered_collection(ActorUrls.of(instance_actor_url(config.base_url)).outbox, 0, items=[]))


async def _actor_document(request: web.Request, actor_type: str) -> web.Response:
    config = request.app[CONFIG]
    async with request.app[READ_SESSIONS]() as session:
        account = await _local_account(session, request.match_info["username"], actor_type)
        actor = account_uri(config, account)
        if account.deleted_at is not None:
            return _gone(tombstone(actor, actor_type, account.deleted_at))
        settings = await _group_settings(session, account) if account.is_group else None
        suspended = account.suspended_at is not None
        if _wants_html(request):
            if suspended:
                return _html(handle(config, account), ["This account is suspended."], actor)
            return _html(
                account.display_name or account.username,
                [handle(config, account), html_to_text(account.note)],
                actor,
            )
        keys = await existing_keys(session, config, account)
        identity = None if account.is_group else await session.get(E2EEIdentity, account.id)
    if keys is None:  # first use: create them (a write, so not on the read session)
        async with request.app[SESSIONS]() as session:
            keys = await local_keys(session, config, account)
            await session.commit()
    master_key = identity.master_key if identity is not None else None
    return _ap(actor_document(config, account, keys, settings, master_key=master_key))


@routes.get(PERSON)
async def person_actor(request: web.Request) -> web.Response:
    return await _actor_document(request, "Person")


@routes.get(GROUP)
async def group_actor(request: web.Request) -> web.Response:
    return await _actor_document(request, "Group")


# ---------------------------------------------------------------------------- notes


def _announce(config: Config, boost: Status, booster: Account, original: Status, original_author: Account) -> Any:
    booster_uri = account_uri(config, booster)
    original_id = original.uri or status_uri(config, original_author, original.id)
    return announce_activity(
        boost.uri or status_uri(config, booster, boost.id, reblog=True),
        booster_uri,
        original_id,
        [PUBLIC],
        [ActorUrls.of(booster_uri).followers, account_uri(config, original_author)],
        boost.created_at,
    )


def _was_public(status: Status, members_only_group: bool) -> bool:
    return status.visibility in PUBLICISH and not members_only_group


async def _status_response(request: web.Request, *, activity: bool) -> web.Response:
    config = request.app[CONFIG]
    raw_id = request.match_info["id"]
    if not _ID.match(raw_id) or int(raw_id) >= 2**63:
        raise NotFound("Record not found")
    viewer = await _viewer(request)  # before any session: verifying may fetch the signer's key
    async with request.app[READ_SESSIONS]() as session:
        author = await _local_account(session, request.match_info["username"], "Person")
        status = (
            await session.execute(select(Status).where(Status.id == int(raw_id), Status.account_id == author.id))
        ).scalar_one_or_none()
        if status is None or not status.local:
            raise NotFound("Record not found")
        members_only_group = status.group_id is not None and bool(
            (
                await session.execute(select(Group.members_only).where(Group.account_id == status.group_id))
            ).scalar_one_or_none()
        )
        if status.deleted_at is not None:
            if status.reblog_of_id is not None or not _was_public(status, members_only_group):
                raise NotFound("Record not found")
            note_id = status.uri or status_uri(config, author, status.id)
            if activity:
                return _gone(tombstone(f"{note_id}/activity", "Create", status.deleted_at))
            return _gone(tombstone(note_id, "Note", status.deleted_at))
        visible = (
            await session.execute(select(Status.id).where(Status.id == status.id, visible_to(viewer)))
        ).scalar_one_or_none()
        if visible is None:
            raise NotFound("Record not found")
        if status.reblog_of_id is not None:
            if not activity:
                raise NotFound("Record not found")  # a boost has an activity, not an object
            original = (
                await session.execute(select(Status).where(Status.id == status.reblog_of_id, visible_clause(None)))
            ).scalar_one_or_none()
            if original is None:
                raise NotFound("Record not found")
            original_author = await session.get(Account, original.account_id)
            if original_author is None:
                raise NotFound("Record not found")
            return _ap(_announce(config, status, author, original, original_author))
        related = await load_related(session, [status])
    note, create = note_and_create(config, status, author, related)
    private = not _was_public(status, members_only_group)
    if _wants_html(request) and not private:
        lines = [status.spoiler_text] if status.spoiler_text else []
        lines.append(html_to_text(status.content))
        return _html(f"A post by {handle(config, author)}", lines, note["id"])
    return _ap(create if activity else note, private=private)


@routes.get(PERSON + "/statuses/{id}")
async def status_object(request: web.Request) -> web.Response:
    return await _status_response(request, activity=False)


@routes.get(PERSON + "/statuses/{id}/activity")
async def status_activity(request: web.Request) -> web.Response:
    return await _status_response(request, activity=True)


# ---------------------------------------------------------------------------- collections


@dataclass(frozen=True, slots=True)
class _PageQuery:
    paged: bool
    max_id: int | None
    min_id: int | None


def _page_query(request: web.Request) -> _PageQuery:
    def bound(name: str) -> int | None:
        value = request.query.get(name)
        if value is None or value == "":
            return None
        if not _ID.match(value) or int(value) >= 2**63:
            raise BadRequest(f"{name}: must be a status id (a string of digits)")
        return int(value)

    max_id, min_id = bound("max_id"), bound("min_id")
    paged = request.query.get("page", "") not in ("", "false") or max_id is not None or min_id is not None
    return _PageQuery(paged, max_id, min_id)


async def _outbox(
    request: web.Request, session: Any, owner_uri: str, where: ColumnElement[bool] | None, *, private: bool = False
) -> web.Response:
    """An outbox of ``Create`` activities for the statuses matching ``where`` (None: empty)."""
    config = request.app[CONFIG]
    outbox = ActorUrls.of(owner_uri).outbox
    query = _page_query(request)
    if not query.paged:
        total = 0
        if where is not None:
            total = int((await session.execute(select(func.count(Status.id)).where(where))).scalar_one())
        return _ap(
            ordered_collection(outbox, total, first=f"{outbox}?page=true", last=f"{outbox}?min_id=0&page=true"),
            private=private,
        )
    rows: list[Status] = []
    if where is not None:
        statement = select(Status).where(where)
        if query.min_id is not None:
            statement = statement.where(Status.id > query.min_id).order_by(Status.id.asc())
        else:
            if query.max_id is not None:
                statement = statement.where(Status.id < query.max_id)
            statement = statement.order_by(Status.id.desc())
        rows = list((await session.execute(statement.limit(PAGE_SIZE))).scalars())
        if query.min_id is not None:
            rows.reverse()
    authors: dict[int, Account] = {}
    if rows:
        found = await session.execute(select(Account).where(Account.id.in_({s.account_id for s in rows})))
        authors = {a.id: a for a in found.scalars()}
    related = await load_related(session, rows)
    items = [note_and_create(config, s, authors[s.account_id], related)[1] for s in rows if s.account_id in authors]
    if query.max_id is not None:
        page_id = f"{outbox}?max_id={query.max_id}&page=true"
    elif query.min_id is not None:
        page_id = f"{outbox}?min_id={query.min_id}&page=true"
    else:
        page_id = f"{outbox}?page=true"
    next_page = f"{outbox}?max_id={rows[-1].id}&page=true" if len(rows) == PAGE_SIZE else None
    prev_page = f"{outbox}?min_id={rows[0].id}&page=true" if rows else None
    return _ap(ordered_collection_page(page_id, outbox, items, next=next_page, prev=prev_page), private=private)


def _original_posts_of(account_id: int) -> ColumnElement[bool]:
    return and_(
        Status.account_id == account_id, Status.reblog_of_id.is_(None), Status.local.is_(True), visible_clause(None)
    )


async def _existing_actor(session: Any, request: web.Request, actor_type: str) -> Account:
    """The account of a collection route; a deleted one's collections are gone (404)."""
    account = await _local_account(session, request.match_info["username"], actor_type)
    if account.deleted_at is not None:
        raise NotFound("Record not found")
    return account


@routes.get(PERSON + "/outbox")
async def person_outbox(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    async with request.app[READ_SESSIONS]() as session:
        account = await _existing_actor(session, request, "Person")
        return await _outbox(request, session, account_uri(config, account), _original_posts_of(account.id))


@routes.get(GROUP + "/outbox")
async def group_outbox(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    viewer = await _viewer(request)
    async with request.app[READ_SESSIONS]() as session:
        account = await _existing_actor(session, request, "Group")
        settings = await _group_settings(session, account)
        in_group = and_(Status.group_id == account.id, Status.reblog_of_id.is_(None), Status.local.is_(True))
        where: ColumnElement[bool] | None
        if not settings.members_only:
            where = and_(in_group, visible_clause(None))
        elif viewer is not None:
            # Authorised fetches only; unauthorised ones see an empty outbox, not a count.
            allowed = (await session.execute(select(_domain_has_member(account.id, viewer.domain)))).scalar_one()
            where = and_(in_group, visible_to(viewer)) if allowed else None
        else:
            where = None
        return await _outbox(request, session, account_uri(config, account), where, private=settings.members_only)


async def _counted(request: web.Request, actor_type: str, which: str) -> web.Response:
    """``followers`` / ``following``: ``totalItems`` only, deliberately without items — the
    members of a support group, and who follows whom, must not be listable."""
    config = request.app[CONFIG]
    async with request.app[READ_SESSIONS]() as session:
        account = await _existing_actor(session, request, actor_type)
    urls = ActorUrls.of(account_uri(config, account))
    if which == "followers":
        return _ap(ordered_collection(urls.followers, account.followers_count))
    return _ap(ordered_collection(urls.following, account.following_count))


@routes.get(PERSON + "/followers")
async def person_followers(request: web.Request) -> web.Response:
    return await _counted(request, "Person", "followers")


@routes.get(PERSON + "/following")
async def person_following(request: web.Request) -> web.Response:
    return await _counted(request, "Person", "following")


@routes.get(GROUP + "/followers")
async def group_followers(request: web.Request) -> web.Response:
    return await _counted(request, "Group", "followers")


@routes.get(GROUP + "/following")
async def group_following(request: web.Request) -> web.Response:
    return await _counted(request, "Group", "following")


@routes.get(GROUP + "/moderators")
async def group_moderators(request: web.Request) -> web.Response:
    """Owners and moderators (FEP-1b12: the collection in the group's ``attributedTo``)."""
    config = request.app[CONFIG]
    async with request.app[READ_SESSIONS]() as session:
        group = await _existing_actor(session, request, "Group")
        rows = (
            await session.execute(
                select(Account)
                .join(GroupRole, GroupRole.account_id == Account.id)
                .where(
                    GroupRole.group_id == group.id,
                    Account.deleted_at.is_(None),
                    Account.suspended_at.is_(None),
                )
                .order_by((GroupRole.role == "owner").desc(), GroupRole.id)
            )
        ).scalars()
        moderators = [account_uri(config, account) for account in rows]
    collection_id = ActorUrls.of(account_uri(config, group)).moderators
    return _ap(ordered_collection(collection_id, len(moderators), items=moderators))


# ---------------------------------------------------------------------------- profile URLs


def _see_other(location: str) -> web.Response:
    return web.Response(status=302, headers={"Location": location, "Vary": "Accept"})


@routes.get("/@{username}")
async def profile_url(request: web.Request) -> web.Response:
    """``url`` of a person (Mastodon's ``/@name``): the actor, which negotiates HTML or JSON."""
    username = request.match_info["username"]
    if not _USERNAME.match(username):
        raise NotFound("Record not found")
    return _see_other(f"{request.app[CONFIG].base_url}/users/{username}")


@routes.get("/@{username}/{id}")
async def status_url(request: web.Request) -> web.Response:
    """``url`` of a post: the post's id, which negotiates HTML or JSON (and checks access)."""
    username, raw_id = request.match_info["username"], request.match_info["id"]
    if not _USERNAME.match(username) or not _ID.match(raw_id):
        raise NotFound("Record not found")
    return _see_other(f"{request.app[CONFIG].base_url}/users/{username}/statuses/{raw_id}")


@routes.get("/g/{username}")
async def group_url(request: web.Request) -> web.Response:
    """``url`` of a group: its actor."""
    username = request.match_info["username"]
    if not _USERNAME.match(username):
        raise NotFound("Record not found")
    return _see_other(f"{request.app[CONFIG].base_url}/groups/{username}")


# ---------------------------------------------------------------------------- sent activities


async def _sent_activity(request: web.Request) -> web.Response:
    """An activity Hearthside sent (a Follow, an Accept, a group's Announce, ...), by its id.

    Some servers dereference activity ids before trusting them (Fedify refetches objects from
    their origin; FEP-fe34). A public activity is served to anyone; any other only to a signed
    fetch from a domain it was delivered to, so follows, blocks and members-only traffic are
    never shown to third parties. Everything else: 404.
    """
    config = request.app[CONFIG]
    uri = config.base_url + request.path
    signer = await fetch_signer(request)
    async with request.app[READ_SESSIONS]() as session:
        row = await session.scalar(select(OutboxActivity).where(OutboxActivity.uri == uri))
        if row is None:
            raise NotFound("Record not found")
        activity = json.loads(row.body)
        addressed = [*_as_list(activity.get("to")), *_as_list(activity.get("cc"))]
        public = PUBLIC in addressed and activity.get("type") not in ("Block", "Flag")
        if not public:
            if signer is None:
                raise NotFound("Record not found")
            delivered = await session.scalar(
                select(Delivery.id).where(Delivery.activity_id == row.id, Delivery.domain == host_of(signer)).limit(1)
            )
            if delivered is None:
                raise NotFound("Record not found")
    return _ap(activity, private=not public)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value] if value is not None else []


for _path in (
    "/activities/{id:[0-9]{1,19}}",
    "/users/{username}/follows/{id:[0-9]{1,19}}",
    "/users/{username}/{kind:announces|accepts|rejects}/{hash:[0-9a-f]{32}}",
    "/groups/{username}/{kind:announces|accepts|rejects}/{hash:[0-9a-f]{32}}",
):
    routes.get(_path)(_sent_activity)
