"""Mastodon's admin API for domain allows (``/api/v1/admin/domain_allows``), and the member's
list of relationships cut by moderation (``/api/v1/severed_relationships``).

Design note
-----------
Domain allows follow Mastodon (docs.joinmastodon.org/methods/admin/domain_allows;
research/moderation.md §1.3, §1.7): the ``Admin::DomainAllow`` entity ``{id, domain,
created_at}``; list (paginated with ``Link``, ``limit`` default 100, at most 200), show, create
(``domain``, normalised to lower-case punycode; an already allowed domain answers the existing
allow, as Mastodon does), delete; no update. Instance staff only, with
``admin:read:domain_allows`` / ``admin:write:domain_allows``; every write is one transaction
with its audit entry (source ``api``).

An allow covers the domain and its subdomains. It matters in allowlist mode (``[federation]
mode = "allowlist"``: only allowed domains federate, see ``server.domains``); in blocklist
mode it means "never block this" to subscriptions (``server.domains.allowed_domains``).
Deleting an allow in allowlist mode stops federation with the domain at once (inbox, fetches,
deliveries); unlike Mastodon, nothing already stored is purged.

``GET /api/v1/severed_relationships`` (Mastodon 4.3, scope ``read:follows``) lists the viewer's
own ``RelationshipSeveranceEvent``s, newest first, paginated like the other lists. It lives here
because domain decisions are what create the events (``server.domains.sever_domain``).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from moderation.decisions import DomainError, normalize_domain
from server.auth import Viewer, require_staff, require_user
from server.entities import iso, render_severance_event
from server.errors import NotFound, Unprocessable
from server.ids import new_id
from server.models import AccountSeveranceEvent, AuditEntry, DomainAllow, RelationshipSeveranceEvent
from server.pagination import link_header, order_newest_first, page_params, paginate
from server.web import SESSIONS, Routes, json_response, now, path_id, read_params

routes = Routes()

BASE = "/api/v1/admin/domain_allows"
ONE = BASE + "/{id:[0-9]+}"


def render_domain_allow(allow: DomainAllow) -> dict[str, Any]:
    """Mastodon's ``Admin::DomainAllow`` entity."""
    return {"id": str(allow.id), "domain": allow.domain, "created_at": iso(allow.created_at)}


def _audit(session: AsyncSession, viewer: Viewer, action: str, allow: DomainAllow) -> None:
    session.add(
        AuditEntry(
            id=new_id(),
            actor_account_id=viewer.account_id,
            source="api",
            action=action,
            target_type="domain",
            target=allow.domain,
            reason="",
            details={},
            created_at=now(),
        )
    )


async def _allow(session: AsyncSession, allow_id: int) -> DomainAllow:
    allow = await session.get(DomainAllow, allow_id)
    if allow is None:
        raise NotFound("Record not found")
    return allow


@routes.get(BASE)
async def list_domain_allows(request: web.Request) -> web.Response:
    await require_staff(request, "admin:read:domain_allows")
    page = page_params(await read_params(request), default=100, maximum=200)
    async with request.app[SESSIONS]() as session:
        rows = list(await session.scalars(paginate(select(DomainAllow), DomainAllow.id, page)))
    rows = order_newest_first(rows, page, key=lambda a: a.id)
    return json_response(
        [render_domain_allow(a) for a in rows], headers=link_header(request, [a.id for a in rows], page)
    )


@routes.get(ONE)
async def show_domain_allow(request: web.Request) -> web.Response:
    await require_staff(request, "admin:read:domain_allows")
    async with request.app[SESSIONS]() as session:
        return json_response(render_domain_allow(await _allow(session, path_id(request))))


@routes.post(BASE)
async def create_domain_allow(request: web.Request) -> web.Response:
    viewer = await require_staff(request, "admin:write:domain_allows")
    params = await read_params(request)
    try:
        domain = normalize_domain(params.required_str("domain", max_len=300))
    except DomainError as exc:
        raise Unprocessable(f"domain: {exc}") from None
    async with request.app[SESSIONS]() as session:
        existing = await session.scalar(select(DomainAllow).where(DomainAllow.domain == domain))
        if existing is not None:  # Mastodon answers the existing allow
            return json_response(render_domain_allow(existing))
        allow = DomainAllow(id=new_id(), domain=domain, created_at=now())
        session.add(allow)
        _audit(session, viewer, "domain_allow.create", allow)
        await session.commit()
        return json_response(render_domain_allow(allow))


@routes.delete(ONE)
async def delete_domain_allow(request: web.Request) -> web.Response:
    viewer = await require_staff(request, "admin:write:domain_allows")
    async with request.app[SESSIONS]() as session:
        allow = await _allow(session, path_id(request))
        _audit(session, viewer, "domain_allow.delete", allow)
        await session.delete(allow)
        await session.commit()
    return json_response({})


@routes.get("/api/v1/severed_relationships")
async def severed_relationships(request: web.Request) -> web.Response:
    viewer = await require_user(request, "read:follows")
    viewer_id = viewer.require_account()
    page = page_params(await read_params(request), default=40, maximum=80)
    query: Any = (
        select(AccountSeveranceEvent, RelationshipSeveranceEvent)
        .join(RelationshipSeveranceEvent, RelationshipSeveranceEvent.id == AccountSeveranceEvent.event_id)
        .where(AccountSeveranceEvent.account_id == viewer_id)
    )
    async with request.app[SESSIONS]() as session:
        rows: list[Any] = list((await session.execute(paginate(query, AccountSeveranceEvent.id, page))).all())
    rows = order_newest_first(rows, page, key=lambda row: row[0].id)
    return json_response(
        [render_severance_event(mine, event) for mine, event in rows],
        headers=link_header(request, [row[0].id for row in rows], page),
    )
