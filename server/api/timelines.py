"""Timelines: home, public, hashtag, a group's posts and an account's posts.

All are paginated with ``max_id``/``since_id``/``min_id``/``limit`` (default 20, at most 40)
and answer with a ``Link`` header. The queries and their rules live in ``server.timelines``;
the JSON is written by ``server.status_entities.render_page``.
"""

from __future__ import annotations

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from server import timelines
from server.auth import authenticate, require_user
from server.errors import NotFound
from server.models import Account
from server.pagination import Page, link_header, page_params
from server.status_entities import render_page
from server.web import CONFIG, READ_SESSIONS, Params, Routes, path_id, read_params

routes = Routes()


async def _respond(
    request: web.Request, session: AsyncSession, result: timelines.TimelinePage, viewer_id: int | None, page: Page
) -> web.Response:
    # render_page writes the JSON text itself (the same text json_response would send).
    body = await render_page(
        session, request.app[CONFIG], result.rows, viewer_id, hidden_accounts=result.hidden_accounts
    )
    return web.Response(body=body, content_type="application/json", headers=link_header(request, result.ids, page))


def _origin(params: Params) -> dict[str, bool]:
    return {
        "local": bool(params.flag("local", False)),
        "remote": bool(params.flag("remote", False)),
        "only_media": bool(params.flag("only_media", False)),
    }


@routes.get("/api/v1/timelines/home")
async def home(request: web.Request) -> web.Response:
    viewer = await require_user(request, "read:statuses")
    viewer_id = viewer.require_account()
    params = await read_params(request)
    page = page_params(params)
    async with request.app[READ_SESSIONS]() as session:
        result = await timelines.home(session, viewer_id, page)
        return await _respond(request, session, result, viewer_id, page)


@routes.get("/api/v1/timelines/public")
async def public(request: web.Request) -> web.Response:
    viewer = await authenticate(request, "read:statuses", required=False)
    viewer_id = viewer.account_id if viewer else None
    params = await read_params(request)
    page = page_params(params)
    async with request.app[READ_SESSIONS]() as session:
        result = await timelines.public(session, viewer_id, page, **_origin(params))
        return await _respond(request, session, result, viewer_id, page)


def _names(params: Params, name: str) -> list[str]:
    return [v for v in params.array(name, max_items=timelines.MAX_TAGS_PER_PARAM * 4) if isinstance(v, str)][
        : timelines.MAX_TAGS_PER_PARAM
    ]


@routes.get("/api/v1/timelines/tag/{hashtag}")
async def hashtag(request: web.Request) -> web.Response:
    viewer = await authenticate(request, "read:statuses", required=False)
    viewer_id = viewer.account_id if viewer else None
    name = request.match_info["hashtag"]
    if len(name) > 200:
        raise NotFound("Record not found")
    params = await read_params(request)
    page = page_params(params)
    async with request.app[READ_SESSIONS]() as session:
        result = await timelines.hashtag(
            session,
            viewer_id,
            page,
            name,
            any_of=_names(params, "any"),
            all_of=_names(params, "all"),
            none_of=_names(params, "none"),
            **_origin(params),
        )
        return await _respond(request, session, result, viewer_id, page)


@routes.get("/api/v1/hearthside/groups/{id}/timeline")
async def group(request: web.Request) -> web.Response:
    """A group's posts, newest first. Members-only groups: members only (404 otherwise)."""
    viewer = await authenticate(request, "read:statuses", required=False)
    viewer_id = viewer.account_id if viewer else None
    group_id = path_id(request)
    params = await read_params(request)
    page = page_params(params)
    async with request.app[READ_SESSIONS]() as session:
        result = await timelines.group(session, group_id, viewer_id, page)
        return await _respond(request, session, result, viewer_id, page)


@routes.get("/api/v1/accounts/{id}/statuses")
async def account_statuses(request: web.Request) -> web.Response:
    viewer = await authenticate(request, "read:statuses", required=False)
    viewer_id = viewer.account_id if viewer else None
    account_id = path_id(request)
    params = await read_params(request)
    page = page_params(params)
    tagged = params.text("tagged", None, max_len=200)
    async with request.app[READ_SESSIONS]() as session:
        target = await session.get(Account, account_id)
        if target is None or target.deleted_at is not None:
            raise NotFound("Record not found")
        result = await timelines.account_statuses(
            session,
            target,
            viewer_id,
            page,
            exclude_replies=bool(params.flag("exclude_replies", False)),
            exclude_reblogs=bool(params.flag("exclude_reblogs", False)),
            tagged=tagged or None,
            only_media=bool(params.flag("only_media", False)),
            pinned=bool(params.flag("pinned", False)),
        )
        return await _respond(request, session, result, viewer_id, page)
