"""Search: ``/api/v2/search`` (accounts, statuses, hashtags) and ``/api/v1/accounts/search``.

Matching is case-insensitive ``LIKE`` with the user's wildcards escaped, so ``%`` and ``_``
in a query are literal characters. Accounts: local people and groups, not suspended or
deleted, by username or display name (exact and prefix matches first). Statuses: a
substring of the post's source among posts the viewer may see, and only for a logged-in
viewer (as on Mastodon; anonymous searches get no statuses). Hashtags: by prefix.
With ``resolve=true`` and a logged-in viewer, a remote handle (``@name@host``) is looked up
through WebFinger and an ``https://`` URL is fetched (an actor or a post), as Mastodon does;
what was found is stored and answered like any known account or status. Known remote accounts
match by handle. Limited accounts (their own limit or their domain's) and their posts are left
out for viewers who do not follow them, except when asked for by full handle.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import Select, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from federation.content import normalize_hashtag
from server.auth import authenticate
from server.config import Config
from server.entities import render_account
from server.errors import Unauthorized, Unprocessable
from server.models import Account, Status, Tag
from server.status_entities import render_statuses, render_tag
from server.statuses import blocked_ids, followed_ids, visible_clause
from server.timelines import not_limited
from server.web import CONFIG, SESSIONS, Params, Routes, json_response, read_params

MAX_QUERY_CHARS = 500
MAX_OFFSET = 10_000
TYPES = ("accounts", "statuses", "hashtags")
ESCAPE = "!"


class _ExactRoutes(Routes):
    """Routes registered as exact paths, with and without a trailing slash.

    ``/api/v1/accounts/search`` shares its prefix with ``/api/v1/accounts/{id}``, which the
    accounts module registers earlier. aiohttp tries exact paths before walking up to the
    parametrised ones, so registering these exactly keeps "search" from being read as an id.
    """

    def install(self, app: web.Application) -> None:
        for method, path, handler in self:
            app.router.add_route(method, path, handler)
            app.router.add_route(method, path + "/", handler)


routes = _ExactRoutes()


def like_pattern(term: str, *, prefix: bool = False) -> str:
    """A LIKE pattern matching ``term`` literally (as a substring, or a prefix)."""
    escaped = term.replace(ESCAPE, ESCAPE * 2).replace("%", ESCAPE + "%").replace("_", ESCAPE + "_")
    return f"{escaped}%" if prefix else f"%{escaped}%"


def _query(params: Params) -> str:
    q = params.text("q", None, max_len=MAX_QUERY_CHARS, required=True)
    return (q or "").strip()


def _handle(config: Config, term: str) -> tuple[str, str]:
    """``@name``, ``name`` or ``name@our.domain`` → (name, ""); ``name@other`` → (name, other)."""
    term = term.lstrip("@")
    if "@" in term:
        name, _, domain = term.partition("@")
        host = config.domain.lower()
        if domain.lower() in (host, host.split(":")[0]):
            return name, ""
        return name, domain.lower()
    return term, ""


async def resolve_remote(request: web.Request, term: str) -> tuple[int | None, int | None]:
    """Look a remote handle or URL up over federation: (account id, status id) found."""
    from server.federation import FEDERATION
    from server.remote_actors import ActorUnavailable, resolve_handle

    fed = request.app[FEDERATION]
    if not fed.enabled:
        return None, None
    config = request.app[CONFIG]
    try:
        if term.startswith(("https://", "http://")):
            if fed.is_local(term):
                return None, None
            from server.resolve import resolve_url

            return await resolve_url(fed, term)
        name, domain = _handle(config, term)
        if domain and name and "/" not in domain:
            account = await resolve_handle(fed, name, domain)
            return account.id, None
    except ActorUnavailable:
        return None, None
    return None, None


async def search_accounts(
    session: AsyncSession,
    config: Config,
    term: str,
    viewer_id: int | None,
    *,
    limit: int,
    offset: int,
    following: bool,
) -> list[dict[str, Any]]:
    name, domain = _handle(config, term)
    if not name:
        return []
    lowered = name.lower()
    substring = like_pattern(lowered)
    query: Select[Any] = select(Account).where(
        Account.suspended_at.is_(None),
        Account.deleted_at.is_(None),
    )
    if domain:
        query = query.where(Account.domain == domain, Account.username_lower == lowered)
    else:
        query = query.where(
            or_(
                Account.username_lower.like(substring, escape=ESCAPE),
                Account.display_name.ilike(like_pattern(name), escape=ESCAPE),
            )
        )
        # Limited accounts are found by their full handle, or by those who follow them.
        limited = Account.silenced_at.is_not(None)
        if viewer_id is None:
            query = query.where(~limited)
        else:
            query = query.where(or_(~limited, Account.id == viewer_id, Account.id.in_(followed_ids(viewer_id))))
    if viewer_id is not None:
        blocking, blocked_by = blocked_ids(viewer_id)
        query = query.where(Account.id.not_in(blocking), Account.id.not_in(blocked_by))
        if following:
            query = query.where(Account.id.in_(followed_ids(viewer_id)))
    rank = case(
        (Account.username_lower == lowered, 0),
        (Account.username_lower.like(like_pattern(lowered, prefix=True), escape=ESCAPE), 1),
        else_=2,
    )
    query = query.order_by(rank, Account.followers_count.desc(), Account.id).offset(offset).limit(limit)
    accounts = (await session.execute(query)).scalars().all()
    return [render_account(config, a) for a in accounts]


async def search_statuses(
    session: AsyncSession,
    config: Config,
    term: str,
    viewer_id: int,
    *,
    limit: int,
    offset: int,
    account_id: int | None,
) -> list[dict[str, Any]]:
    if not term:
        return []
    query = select(Status).where(
        Status.reblog_of_id.is_(None),
        Status.text.ilike(like_pattern(term), escape=ESCAPE),
        visible_clause(viewer_id),
        not_limited(viewer_id),
    )
    if account_id is not None:
        query = query.where(Status.account_id == account_id)
    rows = (await session.execute(query.order_by(Status.id.desc()).offset(offset).limit(limit))).scalars().all()
    return await render_statuses(session, config, rows, viewer_id)


async def search_hashtags(
    session: AsyncSession, config: Config, term: str, *, limit: int, offset: int
) -> list[dict[str, Any]]:
    name = normalize_hashtag(term.lstrip("#"))
    if not name:
        return []
    query = (
        select(Tag.name)
        .where(Tag.name.like(like_pattern(name, prefix=True), escape=ESCAPE))
        .order_by(func.length(Tag.name), Tag.name)
        .offset(offset)
        .limit(limit)
    )
    return [render_tag(config, n) for n in (await session.execute(query)).scalars()]


def _common(params: Params, viewer_id: int | None) -> tuple[int, int, bool]:
    limit = min(params.integer("limit", 20, min=1) or 20, 40)
    offset = params.integer("offset", 0, min=0, max=MAX_OFFSET) or 0
    following = bool(params.flag("following", False))
    if viewer_id is None and offset:
        raise Unauthorized("Search queries pagination is not supported without authentication")
    if viewer_id is None and following:
        raise Unauthorized("following: requires an authenticated user")
    return limit, offset, following


@routes.get("/api/v2/search")
async def search(request: web.Request) -> web.Response:
    viewer = await authenticate(request, "read:search", required=False)
    viewer_id = viewer.account_id if viewer else None
    params = await read_params(request)
    term = _query(params)
    kind = params.text("type", None, max_len=32) or None
    if kind is not None and kind not in TYPES:
        raise Unprocessable(f"type: must be one of {', '.join(TYPES)}")
    limit, offset, following = _common(params, viewer_id)
    resolve = bool(params.flag("resolve", False))
    account_id = params.id("account_id")
    config = request.app[CONFIG]
    result: dict[str, list[dict[str, Any]]] = {"accounts": [], "statuses": [], "hashtags": []}
    if not term:
        return json_response(result)
    if resolve and viewer_id is not None:
        found_account, found_status = await resolve_remote(request, term)
        if found_status is not None:
            async with request.app[SESSIONS]() as session:
                rows = (
                    (await session.execute(select(Status).where(Status.id == found_status, visible_clause(viewer_id))))
                    .scalars()
                    .all()
                )
                result["statuses"] = await render_statuses(session, config, rows, viewer_id)
            return json_response(result)
        if found_account is not None and term.startswith(("https://", "http://")):
            async with request.app[SESSIONS]() as session:
                account = await session.get(Account, found_account)
                result["accounts"] = [render_account(config, account)] if account is not None else []
            return json_response(result)
    async with request.app[SESSIONS]() as session:
        if kind in (None, "accounts") and account_id is None:
            result["accounts"] = await search_accounts(
                session, config, term, viewer_id, limit=limit, offset=offset, following=following
            )
        if kind in (None, "statuses") and viewer_id is not None:
            result["statuses"] = await search_statuses(
                session, config, term, viewer_id, limit=limit, offset=offset, account_id=account_id
            )
        if kind in (None, "hashtags") and account_id is None:
            result["hashtags"] = await search_hashtags(session, config, term, limit=limit, offset=offset)
    return json_response(result)


@routes.get("/api/v1/accounts/search")
async def accounts_search(request: web.Request) -> web.Response:
    viewer = await authenticate(request, "read:accounts", required=False)
    viewer_id = viewer.account_id if viewer else None
    params = await read_params(request)
    term = _query(params)
    limit, offset, following = _common(params, viewer_id)
    if not term:
        return json_response([])
    if params.flag("resolve", False) and viewer_id is not None:
        await resolve_remote(request, term)
    async with request.app[SESSIONS]() as session:
        body = await search_accounts(
            session, request.app[CONFIG], term, viewer_id, limit=limit, offset=offset, following=following
        )
    return json_response(body)
