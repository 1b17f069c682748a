"""``/api/v1/notifications``: list, show, dismiss and clear.

Notifications are created where things happen (``server.notify``). Reading them re-checks
what the viewer may see: one whose post is no longer visible (deleted, made members-only,
a block since) is left out, and so is one from an account the viewer now blocks or that is
suspended. There are no read markers yet, so ``unread_count`` counts every notification.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import Select, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.auth import require_user
from server.errors import NotFound
from server.models import Account, Block, Notification
from server.notify import TYPES
from server.pagination import link_header, order_newest_first, page_params, paginate
from server.status_entities import render_notifications
from server.web import CONFIG, SESSIONS, Routes, json_response, path_id, read_params

routes = Routes()
UNREAD_LIMIT = 1000


def _mine(viewer_id: int) -> Select[Any]:
    """The viewer's notifications, minus those from blocked or unavailable accounts."""
    return select(Notification).where(
        Notification.account_id == viewer_id,
        Notification.from_account_id.not_in(select(Block.target_account_id).where(Block.account_id == viewer_id)),
        Notification.from_account_id.not_in(
            select(Account.id).where((Account.suspended_at.is_not(None)) | (Account.deleted_at.is_not(None)))
        ),
    )


@routes.get("/api/v1/notifications/unread_count")
async def unread_count(request: web.Request) -> web.Response:
    viewer = await require_user(request, "read:notifications")
    viewer_id = viewer.require_account()
    params = await read_params(request)
    limit = params.integer("limit", 100, min=1) or 100
    async with request.app[SESSIONS]() as session:
        subquery = _mine(viewer_id).limit(min(limit, UNREAD_LIMIT)).subquery()
        count = (await session.execute(select(func.count()).select_from(subquery))).scalar_one()
    return json_response({"count": count})


@routes.post("/api/v1/notifications/clear")
async def clear(request: web.Request) -> web.Response:
    viewer = await require_user(request, "write:notifications")
    viewer_id = viewer.require_account()
    async with request.app[SESSIONS]() as session:
        await session.execute(delete(Notification).where(Notification.account_id == viewer_id))
        await session.commit()
    return json_response({})


@routes.get("/api/v1/notifications")
async def index(request: web.Request) -> web.Response:
    viewer = await require_user(request, "read:notifications")
    viewer_id = viewer.require_account()
    params = await read_params(request)
    page = page_params(params, default=40, maximum=80)
    types = {t for t in params.array("types") if isinstance(t, str)}
    excluded = {t for t in params.array("exclude_types") if isinstance(t, str)}
    from_account = params.id("account_id")
    query = _mine(viewer_id)
    if types:
        query = query.where(Notification.type.in_(types & set(TYPES) or {"none"}))
    if excluded:
        query = query.where(Notification.type.not_in(excluded))
    if from_account is not None:
        query = query.where(Notification.from_account_id == from_account)
    async with request.app[SESSIONS]() as session:
        rows = list((await session.execute(paginate(query, Notification.id, page))).scalars())
        rows = order_newest_first(rows, page, key=lambda n: n.id)
        body = await render_notifications(session, request.app[CONFIG], rows, viewer_id)
    return json_response(body, headers=link_header(request, [n.id for n in rows], page))


async def _load(session: AsyncSession, note_id: int, viewer_id: int) -> Notification:
    note: Notification | None = (
        await session.execute(_mine(viewer_id).where(Notification.id == note_id))
    ).scalar_one_or_none()
    if note is None:
        raise NotFound("Record not found")
    return note


@routes.get("/api/v1/notifications/{id}")
async def show(request: web.Request) -> web.Response:
    viewer = await require_user(request, "read:notifications")
    viewer_id = viewer.require_account()
    note_id = path_id(request)
    async with request.app[SESSIONS]() as session:
        note = await _load(session, note_id, viewer_id)
        rendered = await render_notifications(session, request.app[CONFIG], [note], viewer_id)
    if not rendered:
        raise NotFound("Record not found")
    return json_response(rendered[0])


@routes.post("/api/v1/notifications/{id}/dismiss")
async def dismiss(request: web.Request) -> web.Response:
    viewer = await require_user(request, "write:notifications")
    viewer_id = viewer.require_account()
    note_id = path_id(request)
    async with request.app[SESSIONS]() as session:
        result = await session.execute(
            delete(Notification).where(Notification.id == note_id, Notification.account_id == viewer_id)
        )
        if not result.rowcount:  # type: ignore[attr-defined]
            raise NotFound("Record not found")
        await session.commit()
    return json_response({})
