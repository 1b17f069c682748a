"""``/api/v1/statuses``: post, show, edit, delete, thread context, favourites and boosts.

Every request is one transaction. A write that loses a race on a unique constraint (two
requests with one ``Idempotency-Key``, a tag created twice at once) is retried once in a
fresh transaction, where it finds the other request's row. Invisible posts are 404 whatever
the reason (private, members-only group, block, deletion), so nothing reveals they exist.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web
from sqlalchemy import Select, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from server import outbox, safety
from server import statuses as service
from server.auth import authenticate, require_user
from server.entities import render_account
from server.errors import Conflict, Forbidden, NotFound, Unprocessable
from server.models import Account, Favourite, Status
from server.pagination import link_header, order_newest_first, page_params, paginate
from server.status_entities import render_history, render_own, render_status, render_statuses
from server.topics import check_topics
from server.web import CONFIG, SESSIONS, Params, Routes, json_response, path_id, read_params

routes = Routes()
T = TypeVar("T")
MAX_IDEMPOTENCY_KEY = 1024


async def in_transaction(request: web.Request, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run ``work`` and commit; on a unique-constraint race, retry once from scratch."""
    for attempt in (1, 2):
        async with request.app[SESSIONS]() as session:
            try:
                result = await work(session)
                await session.commit()
                return result
            except IntegrityError:
                await session.rollback()
                if attempt == 2:
                    raise Conflict("the request conflicted with a simultaneous one; try again") from None
    raise AssertionError("unreachable")


def refuse_unsupported(params: Params) -> None:
    """Media, polls and scheduling are not supported: refuse rather than drop them silently."""
    if any(str(v).strip() for v in params.array("media_ids")):
        raise Unprocessable("media_ids: media attachments are not supported yet")
    if params.raw("poll") is not None or "poll[options]" in params or params.raw("poll[expires_in]") is not None:
        raise Unprocessable("poll: polls are not supported yet")
    if params.raw("scheduled_at"):
        raise Unprocessable("scheduled_at: scheduled posts are not supported yet")


def _draft(request: web.Request, params: Params) -> service.Draft:
    config = request.app[CONFIG]
    refuse_unsupported(params)
    text = params.text("status", "", max_len=config.get("instance", "max_post_chars"))
    visibility = params.text("visibility", "", max_len=64) or "public"
    service.check_visibility(visibility)
    return service.Draft(
        text=service.check_text(config, text),
        spoiler_text=params.text("spoiler_text", "", max_len=service.MAX_SPOILER_CHARS) or "",
        sensitive=bool(params.flag("sensitive", False)),
        visibility=visibility,
        language=service.check_language(params.text("language", None, max_len=16)),
        in_reply_to_id=params.id("in_reply_to_id"),
        group_id=params.id("group_id"),
        topics=tuple(check_topics(config, params.array("hearthside_topics"))),
    )


async def _author(session: AsyncSession, account_id: int) -> Account:
    account = await session.get(Account, account_id)
    if account is None:
        raise NotFound("Record not found")
    return account


@routes.post("/api/v1/statuses")
async def create(request: web.Request) -> web.Response:
    viewer = await require_user(request, "write:statuses")
    account_id = viewer.require_account()
    config = request.app[CONFIG]
    params = await read_params(request)
    draft = _draft(request, params)
    key = request.headers.get("Idempotency-Key", "").strip()[:MAX_IDEMPOTENCY_KEY]

    async def work(session: AsyncSession) -> bytes:
        # Rendered inside the transaction, so the author's counters are those right after this
        # post, by the timelines' row renderer (one prebuilt statement, no ORM objects); the
        # author may always see their own post (an idempotent replay returns their earlier one).
        if key:
            existing = await service.find_idempotent(session, account_id, key)
            if existing is not None:
                support = await safety.after_local_post(session, config, existing, queue=False)
                return safety.with_support(await render_own(session, config, existing.id, account_id), support)
        new = await service.create_status(
            session, config, author_id=account_id, draft=draft, application_id=viewer.app_id
        )
        if key:
            await service.remember_idempotent(session, account_id, key, new.status.id)
        await outbox.federate_post(session, config, new.status, new.author)
        # The author-only support panel (server/safety.py): in this answer only, never federated.
        support = await safety.after_local_post(session, config, new.status)
        return safety.with_support(await render_own(session, config, new.status.id, account_id), support)

    body = await in_transaction(request, work)
    return web.Response(body=body, content_type="application/json")


@routes.get("/api/v1/statuses")
async def show_many(request: web.Request) -> web.Response:
    """Several statuses at once (``id[]``); unknown or invisible ones are left out."""
    viewer = await authenticate(request, "read:statuses", required=False)
    viewer_id = viewer.account_id if viewer else None
    params = await read_params(request)
    ids = []
    for raw in params.array("id", max_items=20):
        try:
            ids.append(int(raw))
        except (TypeError, ValueError):
            raise Unprocessable("id: must be a list of ids") from None
    async with request.app[SESSIONS]() as session:
        rows = (
            await session.execute(select(Status).where(Status.id.in_(ids), service.visible_clause(viewer_id)))
        ).scalars()
        by_id = {s.id: s for s in rows}
        ordered = [by_id[i] for i in dict.fromkeys(ids) if i in by_id]
        body = await render_statuses(session, request.app[CONFIG], ordered, viewer_id)
    return json_response(body)


@routes.get("/api/v1/statuses/{id}")
async def show(request: web.Request) -> web.Response:
    viewer = await authenticate(request, "read:statuses", required=False)
    viewer_id = viewer.account_id if viewer else None
    status_id = path_id(request)
    async with request.app[SESSIONS]() as session:
        status = await service.load_visible(session, status_id, viewer_id)
        body = await render_status(session, request.app[CONFIG], status, viewer_id)
    return json_response(body)


async def _own(session: AsyncSession, status_id: int, account_id: int) -> Status:
    status = await service.load_visible(session, status_id, account_id)
    if status.account_id != account_id:
        raise Forbidden("This action is not allowed")
    return status


@routes.delete("/api/v1/statuses/{id}")
async def destroy(request: web.Request) -> web.Response:
    viewer = await require_user(request, "write:statuses")
    account_id = viewer.require_account()
    status_id = path_id(request)
    config = request.app[CONFIG]

    async def work(session: AsyncSession) -> dict[str, Any]:
        status = await _own(session, status_id, account_id)
        body = await render_status(session, config, status, account_id, with_text=True)
        await service.delete_status(session, status)
        await outbox.federate_delete(session, config, status, await _author(session, account_id))
        return body

    return json_response(await in_transaction(request, work))


@routes.put("/api/v1/statuses/{id}")
async def edit(request: web.Request) -> web.Response:
    viewer = await require_user(request, "write:statuses")
    account_id = viewer.require_account()
    status_id = path_id(request)
    config = request.app[CONFIG]
    params = await read_params(request)
    refuse_unsupported(params)
    text = params.text("status", "", max_len=config.get("instance", "max_post_chars")) or ""
    spoiler = params.text("spoiler_text", None, max_len=service.MAX_SPOILER_CHARS)
    sensitive = params.flag("sensitive", None)
    language = params.text("language", None, max_len=16)
    topics = check_topics(config, params.array("hearthside_topics")) if "hearthside_topics" in params else None
    service.check_text(config, text)
    service.check_language(language)

    async def work(session: AsyncSession) -> bytes:
        status = await _own(session, status_id, account_id)
        if status.reblog_of_id is not None:
            raise NotFound("Record not found")
        edited_before = status.edited_at
        await service.edit_status(
            session,
            config,
            status,
            text=text,
            spoiler_text=spoiler,
            sensitive=sensitive,
            language=language,
            topics=topics,
        )
        await session.flush()
        support = None
        if status.edited_at != edited_before:
            await outbox.federate_edit(session, config, status, await _author(session, account_id))
            # Scanned again (server/safety.py); the panel is in this answer only, as for a new post.
            support = await safety.after_local_edit(session, config, status)
        return safety.with_support(await render_own(session, config, status.id, account_id), support)

    body = await in_transaction(request, work)
    return web.Response(body=body, content_type="application/json")


async def _original(session: AsyncSession, status_id: int, viewer_id: int | None) -> Status:
    """The visible status, unwrapped when it is a boost (actions apply to the original)."""
    status = await service.load_visible(session, status_id, viewer_id)
    if status.reblog_of_id is not None:
        status = await service.load_visible(session, status.reblog_of_id, viewer_id)
    return status


@routes.get("/api/v1/statuses/{id}/context")
async def context(request: web.Request) -> web.Response:
    viewer = await authenticate(request, "read:statuses", required=False)
    viewer_id = viewer.account_id if viewer else None
    status_id = path_id(request)
    config = request.app[CONFIG]
    async with request.app[SESSIONS]() as session:
        status = await _original(session, status_id, viewer_id)
        ancestors, descendants = await service.thread_context(session, status, viewer_id)
        rendered = await render_statuses(session, config, [*ancestors, *descendants], viewer_id)
    by_id = {r["id"]: r for r in rendered}
    return json_response(
        {
            "ancestors": [by_id[str(s.id)] for s in ancestors if str(s.id) in by_id],
            "descendants": [by_id[str(s.id)] for s in descendants if str(s.id) in by_id],
        }
    )


@routes.post("/api/v1/statuses/{id}/favourite")
async def favourite(request: web.Request) -> web.Response:
    viewer = await require_user(request, "write:favourites")
    account_id = viewer.require_account()
    status_id = path_id(request)
    config = request.app[CONFIG]

    async def work(session: AsyncSession) -> dict[str, Any]:
        status = await _original(session, status_id, account_id)
        await service.favourite(session, account_id, status)
        await outbox.federate_like(session, config, await _author(session, account_id), status, undo=False)
        return await render_status(session, config, status, account_id)

    return json_response(await in_transaction(request, work))


@routes.post("/api/v1/statuses/{id}/unfavourite")
async def unfavourite(request: web.Request) -> web.Response:
    viewer = await require_user(request, "write:favourites")
    account_id = viewer.require_account()
    status_id = path_id(request)
    config = request.app[CONFIG]

    async def work(session: AsyncSession) -> dict[str, Any]:
        status = await _original(session, status_id, account_id)
        had = await service.has_favourited(session, account_id, status.id)
        await service.unfavourite(session, account_id, status)
        if had:
            await outbox.federate_like(session, config, await _author(session, account_id), status, undo=True)
        return await render_status(session, config, status, account_id)

    return json_response(await in_transaction(request, work))


@routes.post("/api/v1/statuses/{id}/reblog")
async def reblog(request: web.Request) -> web.Response:
    viewer = await require_user(request, "write:statuses")
    account_id = viewer.require_account()
    status_id = path_id(request)
    config = request.app[CONFIG]
    params = await read_params(request)
    visibility = params.text("visibility", "", max_len=64) or "public"

    async def work(session: AsyncSession) -> dict[str, Any]:
        original = await _original(session, status_id, account_id)
        booster = await _author(session, account_id)
        existing = await service.find_reblog(session, account_id, original.id)
        boost = await service.reblog(
            session, config, booster, original, visibility=visibility, application_id=viewer.app_id
        )
        if existing is None:
            await outbox.federate_boost(session, config, booster, boost, original)
        return await render_status(session, config, boost, account_id)

    return json_response(await in_transaction(request, work))


@routes.post("/api/v1/statuses/{id}/unreblog")
async def unreblog(request: web.Request) -> web.Response:
    viewer = await require_user(request, "write:statuses")
    account_id = viewer.require_account()
    status_id = path_id(request)
    config = request.app[CONFIG]

    async def work(session: AsyncSession) -> dict[str, Any]:
        original = await _original(session, status_id, account_id)
        boost = await service.find_reblog(session, account_id, original.id)
        if boost is not None:
            await outbox.federate_unboost(session, config, boost, await _author(session, account_id))
        await service.unreblog(session, account_id, original)
        return await render_status(session, config, original, account_id)

    return json_response(await in_transaction(request, work))


@routes.get("/api/v1/statuses/{id}/history")
async def history(request: web.Request) -> web.Response:
    viewer = await authenticate(request, "read:statuses", required=False)
    viewer_id = viewer.account_id if viewer else None
    status_id = path_id(request)
    async with request.app[SESSIONS]() as session:
        status = await _original(session, status_id, viewer_id)
        body = await render_history(session, request.app[CONFIG], status)
    return json_response(body)


@routes.get("/api/v1/statuses/{id}/source")
async def source(request: web.Request) -> web.Response:
    viewer = await require_user(request, "read:statuses")
    status_id = path_id(request)
    async with request.app[SESSIONS]() as session:
        status = await _original(session, status_id, viewer.account_id)
    return json_response({"id": str(status.id), "text": status.text, "spoiler_text": status.spoiler_text})


async def _accounts_page(request: web.Request, query: Select[int, Account], column: Any) -> web.Response:
    params = await read_params(request)
    page = page_params(params, default=40, maximum=80)
    paged: Select[int, Account] = paginate(query, column, page)  # type: ignore[arg-type]
    async with request.app[SESSIONS]() as session:
        rows: list[tuple[int, Account]] = [(key, account) for key, account in await session.execute(paged)]
    rows = order_newest_first(rows, page, key=lambda r: r[0])
    config = request.app[CONFIG]
    return json_response(
        [render_account(config, account) for _, account in rows],
        headers=link_header(request, [r[0] for r in rows], page),
    )


def _available() -> Any:
    return (Account.suspended_at.is_(None), Account.deleted_at.is_(None))


def _unblocked(query: Select[int, Account], viewer_id: int | None) -> Select[int, Account]:
    if viewer_id is None:
        return query
    blocking, blocked_by = service.blocked_ids(viewer_id)
    return query.where(Account.id.not_in(blocking), Account.id.not_in(blocked_by))


@routes.get("/api/v1/statuses/{id}/favourited_by")
async def favourited_by(request: web.Request) -> web.Response:
    viewer = await authenticate(request, "read:accounts", required=False)
    viewer_id = viewer.account_id if viewer else None
    status_id = path_id(request)
    async with request.app[SESSIONS]() as session:
        status = await _original(session, status_id, viewer_id)
    query = (
        select(Favourite.id, Account)
        .join(Account, Account.id == Favourite.account_id)
        .where(Favourite.status_id == status.id, *_available())
    )
    return await _accounts_page(request, _unblocked(query, viewer_id), Favourite.id)


@routes.get("/api/v1/statuses/{id}/reblogged_by")
async def reblogged_by(request: web.Request) -> web.Response:
    viewer = await authenticate(request, "read:accounts", required=False)
    viewer_id = viewer.account_id if viewer else None
    status_id = path_id(request)
    async with request.app[SESSIONS]() as session:
        status = await _original(session, status_id, viewer_id)
    query = (
        select(Status.id, Account)
        .join(Account, Account.id == Status.account_id)
        .where(Status.reblog_of_id == status.id, Status.deleted_at.is_(None), *_available())
    )
    return await _accounts_page(request, _unblocked(query, viewer_id), Status.id)
