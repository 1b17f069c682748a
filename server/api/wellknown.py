"""Discovery: WebFinger, host-meta and NodeInfo (research/federation.md §2.1, §8.1 item 1).

Design note
-----------
Everything here is public, unauthenticated and cross-origin readable
(``Access-Control-Allow-Origin: *``, as Mastodon serves it), and answers from the documents
built in ``federation.documents``.

WebFinger (RFC 7033) answers people and groups by ``acct:`` handle or actor/profile URL, and
the instance actor by ``https://host/`` (FEP-d556) or ``acct:host@host``. A missing or
non-URI ``resource`` is 400; a well-formed resource this server does not hold (another host,
another scheme such as ``mailto:``, an unknown name) is 404, so Mastodon falls back to
host-meta as it should; a deleted account is 410. A suspended account still resolves: its
actor document then carries identity and keys only (see ``server.api.activitypub``).

NodeInfo serves schema 2.0 and 2.1 with their profile ``Content-Type``; its counts are
recomputed at most once a minute per database, like ``/api/v1/instance``.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Any

from aiohttp import web
from sqlalchemy import or_, select

from federation.documents import (
    BadResource,
    NodeInfoVersion,
    UnknownResource,
    host_meta_json,
    host_meta_xml,
    instance_webfinger_document,
    nodeinfo,
    nodeinfo_content_type,
    nodeinfo_links,
    parse_webfinger_resource,
    webfinger_document,
)
from server.api.instance import HEARTHSIDE_VERSION, SOURCE_URL, _active_users, _stats
from server.entities import account_uri, account_url
from server.models import Account, User
from server.web import CONFIG, READ_SESSIONS, Routes, now

routes = Routes()

CORS = {"Access-Control-Allow-Origin": "*"}
JRD = "application/jrd+json"
# WebFinger answers change rarely; a short public cache spares repeated lookups (Lemmy
# caches for days, research/federation.md §2.1), short enough for a deletion to show soon.
JRD_CACHE = "public, max-age=600"


def _json_body(data: Any) -> bytes:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


def _jrd(data: Any) -> web.Response:
    return web.Response(
        body=_json_body(data), content_type=JRD, headers={**CORS, "Cache-Control": JRD_CACHE, "Vary": "Accept"}
    )


def _error(status: int, message: str) -> web.Response:
    return web.Response(
        body=_json_body({"error": message}), status=status, content_type="application/json", headers=CORS
    )


@routes.get("/.well-known/webfinger")
async def webfinger(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    resources = request.query.getall("resource", [])
    if len(resources) > 1:
        return _error(400, "resource: give exactly one")
    try:
        query = parse_webfinger_resource(
            resources[0] if resources else None, domain=config.domain, base_url=config.base_url
        )
    except BadResource as exc:
        return _error(400, str(exc))
    except UnknownResource as exc:
        return _error(404, str(exc))
    if query.kind == "instance":
        return _jrd(instance_webfinger_document(config.base_url, config.domain))
    assert query.username is not None
    async with request.app[READ_SESSIONS]() as session:
        account = (
            await session.execute(
                select(Account).where(Account.username_lower == query.username.lower(), Account.domain == "")
            )
        ).scalar_one_or_none()
    if account is None or (query.actor_type is not None and account.actor_type != query.actor_type):
        return _error(404, "resource: no such account")
    if account.deleted_at is not None:
        return _error(410, "resource: this account was deleted")
    return _jrd(
        webfinger_document(
            f"acct:{account.username}@{config.domain}",
            account_uri(config, account),
            account_url(config, account),
            actor_type="Group" if account.is_group else "Person",
        )
    )


@routes.get("/.well-known/host-meta")
async def host_meta(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    return web.Response(text=host_meta_xml(config.base_url), content_type="application/xrd+xml", headers=CORS)


@routes.get("/.well-known/host-meta.json")
async def host_meta_as_json(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    return web.Response(body=_json_body(host_meta_json(config.base_url)), content_type="application/json", headers=CORS)


@routes.get("/.well-known/nodeinfo")
async def nodeinfo_index(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    return web.Response(body=_json_body(nodeinfo_links(config.base_url)), content_type="application/json", headers=CORS)


STATS_SECONDS = 60.0
_halfyear_cache: dict[str, tuple[float, int]] = {}


async def _active_halfyear(request: web.Request) -> int:
    config = request.app[CONFIG]
    cached = _halfyear_cache.get(config.database_url)
    if cached is not None and cached[0] > time.monotonic():
        return cached[1]
    since = now() - timedelta(days=180)
    async with request.app[READ_SESSIONS]() as session:
        count = int(
            (
                await session.execute(
                    _active_users().where(or_(User.last_login_at >= since, Account.last_status_at >= since))
                )
            ).scalar_one()
        )
    _halfyear_cache[config.database_url] = (time.monotonic() + STATS_SECONDS, count)
    return count


async def _nodeinfo(request: web.Request, version: NodeInfoVersion) -> web.Response:
    config = request.app[CONFIG]
    stats = await _stats(request)
    document = nodeinfo(
        version,
        software_version=HEARTHSIDE_VERSION,
        open_registrations=config.get("instance", "registrations") in ("open", "approval"),
        users_total=stats["user_count"],
        users_active_month=stats["active_month"],
        users_active_halfyear=await _active_halfyear(request),
        local_posts=stats["status_count"],
        node_name=config.get("instance", "name"),
        node_description=config.get("instance", "description"),
        repository=SOURCE_URL or None,
    )
    response = web.Response(body=_json_body(document), headers=CORS)
    # Set after construction: aiohttp's content_type argument would not take the profile.
    response.headers["Content-Type"] = nodeinfo_content_type(version)
    return response


@routes.get("/nodeinfo/2.0")
async def nodeinfo_20(request: web.Request) -> web.Response:
    return await _nodeinfo(request, "2.0")


@routes.get("/nodeinfo/2.1")
async def nodeinfo_21(request: web.Request) -> web.Response:
    return await _nodeinfo(request, "2.1")
