"""The signed moderation decision feed over HTTP (research/moderation.md §6.b "Transport";
/tmp/feed-contract.md; storage and signing in ``server.feeds``).

Design note
-----------
Routes (FIRES shapes): ``/moderation/feeds/{public|partners}`` (the Dataset), ``.../snapshot``
(the current state, newest first), ``.../changes`` (the collection with the first page of
entries embedded; ``?after=<changeId>`` gives the page after a cursor, at most 200 entries,
ascending, ``next`` while more follow) and ``/moderation/entries/{changeId}`` (one entry).
Any other feed name is 404; a malformed cursor is 400 naming ``after``.

Caching: every answer carries a strong ``ETag`` (SHA-256 of the body) and answers
``If-None-Match`` with 304; ``Cache-Control`` is short (60 s), ``private`` for the partner feed.

The partner feed is served only to a request with a valid HTTP signature (the inbox verifier,
``server.signatures``) whose signer's domain is listed in ``[moderation] feed_partners``:
unsigned is 401, anyone else 403. Its entries are the public ones plus account-level
entries; public routes never serve account-level entries (``/moderation/entries/{id}`` of a
partner entry is 404 unless asked by a partner).

Admins withdraw an entity with ``POST /api/v1/hearthside/feed/tombstones`` (``entity``: a
domain or an actor URI; 404 when the feed never mentioned it; 422 naming ``entity``).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from aiohttp import web

from moderation.feed import FeedError
from moderation.uuid7 import Uuid7Error, canonical_uuid7
from server import feeds
from server.auth import require_staff
from server.errors import BadRequest, Forbidden, NotFound, Unauthorized, Unprocessable
from server.federation import host_of
from server.signatures import fetch_signer
from server.web import CONFIG, SESSIONS, Routes, json_response, now, read_params


class _FeedRoutes(Routes):
    """Also registers the app's configuration for its database, so ``feeds.record_decision``
    (called from database code without a config at hand) knows the instance it publishes for."""

    def install(self, app: web.Application) -> None:
        super().install(app)
        config = app[CONFIG]

        async def register(app: web.Application) -> None:
            feeds.use_config(app[SESSIONS].kw["bind"], config)

        app.on_startup.append(register)


routes = _FeedRoutes()

FEED = "/moderation/feeds/{feed}"
MAX_AGE = 60


def _feed(request: web.Request) -> str:
    name = request.match_info["feed"]
    if name not in feeds.FEEDS:
        raise NotFound("no such feed (known: public, partners)")
    return name


async def _authorise(request: web.Request, feed: str) -> None:
    if feed != feeds.PARTNERS:
        return
    signer = await fetch_signer(request)
    if signer is None:
        raise Unauthorized("the partner feed needs an HTTP-signed request from a partner instance")
    partners = feeds.FeedSettings.of(request.app[CONFIG]).partners
    if host_of(signer) not in partners:
        raise Forbidden("this instance is not a partner of this feed")


def _respond(request: web.Request, data: Any, *, private: bool) -> web.Response:
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
    etag = '"' + hashlib.sha256(body).hexdigest()[:40] + '"'
    headers = {
        "ETag": etag,
        "Cache-Control": f"{'private' if private else 'public'}, max-age={MAX_AGE}",
        "Vary": "Accept, Signature" if private else "Accept",
    }
    wanted = request.headers.get("If-None-Match", "")
    if wanted and (wanted.strip() == "*" or etag in [tag.strip().removeprefix("W/") for tag in wanted.split(",")]):
        return web.Response(status=304, headers=headers)
    headers["Content-Type"] = feeds.MEDIA_TYPE
    return web.Response(body=body, headers=headers)


@routes.get(FEED)
async def get_dataset(request: web.Request) -> web.Response:
    feed = _feed(request)
    await _authorise(request, feed)
    async with request.app[SESSIONS]() as session:
        document = await feeds.dataset(session, request.app[CONFIG], feed)
        await session.commit()  # the first request may have made the moderation key
    return _respond(request, document, private=feed == feeds.PARTNERS)


@routes.get(FEED + "/snapshot")
async def get_snapshot(request: web.Request) -> web.Response:
    feed = _feed(request)
    await _authorise(request, feed)
    async with request.app[SESSIONS]() as session:
        document = await feeds.snapshot(session, request.app[CONFIG], feed, now=now())
    return _respond(request, document, private=feed == feeds.PARTNERS)


def _cursor(request: web.Request) -> str | None:
    values = request.query.getall("after", []) + request.query.getall("since", [])
    if not values:
        return None
    if len(values) > 1:
        raise BadRequest("after: give one cursor")
    try:
        return canonical_uuid7(values[0])
    except Uuid7Error as exc:
        raise BadRequest(f"after: must be a changeId (a UUIDv7) from this feed ({exc})") from None


@routes.get(FEED + "/changes")
async def get_changes(request: web.Request) -> web.Response:
    feed = _feed(request)
    after = _cursor(request)
    await _authorise(request, feed)
    async with request.app[SESSIONS]() as session:
        document = await feeds.changes(session, request.app[CONFIG], feed, after=after)
    return _respond(request, document, private=feed == feeds.PARTNERS)


@routes.get("/moderation/entries/{change_id}")
async def get_entry(request: web.Request) -> web.Response:
    try:
        change_id = canonical_uuid7(request.match_info["change_id"])
    except Uuid7Error:
        raise NotFound("Record not found") from None
    async with request.app[SESSIONS]() as session:
        found = await feeds.entry_document(session, change_id)
    if found is None:
        raise NotFound("Record not found")
    audience, document = found
    if audience == feeds.PARTNERS:
        try:
            await _authorise(request, feeds.PARTNERS)
        except (Unauthorized, Forbidden):
            raise NotFound("Record not found") from None
    return _respond(request, document, private=audience == feeds.PARTNERS)


# ---------------------------------------------------------------------------- admin: tombstones

TOMBSTONES = "/api/v1/hearthside/feed/tombstones"


@routes.post(TOMBSTONES)
async def create_tombstone(request: web.Request) -> web.Response:
    """Withdraw a domain or actor from the feed: a Tombstone entry, and every earlier stored
    entry about it (with its reasons) deleted. Admins only; audited."""
    viewer = await require_staff(request, "admin:write")
    if viewer.role != "admin":
        raise Forbidden("This action is not allowed")
    params = await read_params(request)
    entity = params.required_str("entity", max_len=2048).strip()
    kind = "actor" if entity.startswith(("https://", "http://")) else "domain"
    async with request.app[SESSIONS]() as session:
        try:
            published = await feeds.tombstone(
                session,
                request.app[CONFIG],
                kind=kind,
                key=entity,
                actor_account_id=viewer.account_id,
                source="api",
                at=now(),
            )
        except FeedError as exc:
            raise Unprocessable(f"entity: {str(exc).removeprefix('entityKey: ')}") from None
        if published is None:
            raise NotFound("the feed holds nothing about this entity")
        await session.commit()
    return json_response(
        {
            "change_id": published.change_id,
            "entity_kind": published.entity_kind,
            "entity_key": published.entity_key,
            "url": feeds.entry_url(request.app[CONFIG].base_url, published.change_id),
        }
    )
