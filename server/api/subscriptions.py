"""Staff endpoints for subscriptions to other instances' decisions and the drafts they propose
(Hearthside extension; described in server/openapi_subscriptions.py).

Design note
-----------
``/api/v1/hearthside/admin/subscriptions``: list, create (the URL is checked and fetched once
to detect the format and pin the publisher's keys; 422 naming ``url`` when it cannot be read),
show, change, delete (what the subscription alone supported is retracted per its retraction
mode, via a merge, in the same transaction), and ``POST {id}/sync`` (runs now and returns the
sync result; 409 while another sync of it runs). ``/api/v1/hearthside/admin/moderation_drafts``:
list (``state``, default pending), accept (applies it with an audit entry naming the moderator
and the provenance) and reject. Instance staff only, with the domain-block admin scopes: a
subscription is a way of writing domain blocks.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import func, select

from moderation.merge import MergeInputError
from server.auth import require_staff
from server.entities import iso
from server.errors import Conflict, NotFound, Unprocessable
from server.federation import FEDERATION
from server.models import ModerationDraft, Subscription, SubscriptionOpinion
from server.pagination import link_header, page_params, paginate
from server.subscriptions import (
    FORMATS,
    MODES,
    POLICIES,
    RETRACTION_MODES,
    ApplyConflict,
    Settings,
    SyncBusy,
    SyncError,
    create_subscription,
    decide_draft,
    delete_subscription,
    draft_values,
    merge_and_apply,
    sync_subscription,
)
from server.transport import FetchError
from server.web import SESSIONS, Params, Routes, json_response, now, path_id, read_params

routes = Routes()

SUBS = "/api/v1/hearthside/admin/subscriptions"
SUB = SUBS + "/{id:[0-9]+}"
DRAFTS = "/api/v1/hearthside/admin/moderation_drafts"
DRAFT = DRAFTS + "/{id:[0-9]+}"
READ = "admin:read:domain_blocks"
WRITE = "admin:write:domain_blocks"
DRAFT_STATES = ("pending", "accepted", "rejected", "superseded")


def render_subscription(sub: Subscription, opinions: int = 0) -> dict[str, Any]:
    return {
        "id": str(sub.id),
        "url": sub.url,
        "format": sub.format,
        "name": sub.name,
        "mode": sub.mode,
        "trust_weight": sub.trust_weight,
        "max_policy": sub.max_policy,
        "retraction_mode": sub.retraction_mode,
        "independence_group": sub.independence_group,
        "priority": sub.priority,
        "enabled": sub.enabled,
        "interval_seconds": sub.interval_seconds,
        "feed_id": sub.feed_id,
        "publisher": sub.publisher,
        "pinned_keys": [key["id"] for key in sub.pinned_keys or []],
        "cursor": sub.cursor,
        "opinions_count": opinions,
        "last_sync_at": iso(sub.last_sync_at) if sub.last_sync_at else None,
        "last_success_at": iso(sub.last_success_at) if sub.last_success_at else None,
        "last_error": sub.last_error,
        "last_result": sub.last_result or None,
        "next_sync_at": iso(sub.next_sync_at) if sub.next_sync_at else None,
        "created_at": iso(sub.created_at),
    }


def render_draft(draft: ModerationDraft) -> dict[str, Any]:
    values = draft_values(draft)
    owner, previous = values.pop("owner"), values.pop("previous_owner")
    return {
        "id": str(draft.id),
        **values,
        "subscription_id": None if owner is None else str(owner),
        "previous_subscription_id": None if previous is None else str(previous),
        "state": draft.state,
        "decided_by": None if draft.decided_by_account_id is None else str(draft.decided_by_account_id),
        "decided_at": iso(draft.decided_at) if draft.decided_at else None,
        "created_at": iso(draft.created_at),
    }


def _choice(params: Params, name: str, choices: tuple[str, ...], default: str | None) -> str | None:
    value = params.text(name, max_len=32)
    if value is None:
        return default
    if value not in choices:
        raise Unprocessable(f"{name}: must be one of {', '.join(choices)}")
    return value


def _apply_settings(params: Params, settings: Settings) -> Settings:
    """Read the changeable settings from ``params`` over ``settings``; 422 naming the field."""
    settings.name = params.text("name", settings.name, max_len=200) or settings.name
    settings.mode = _choice(params, "mode", MODES, settings.mode) or settings.mode
    settings.max_policy = _choice(params, "max_policy", POLICIES, settings.max_policy) or settings.max_policy
    settings.retraction_mode = (
        _choice(params, "retraction_mode", RETRACTION_MODES, settings.retraction_mode) or settings.retraction_mode
    )
    weight = params.integer("trust_weight", settings.trust_weight, min=1, max=100)
    settings.trust_weight = settings.trust_weight if weight is None else weight
    priority = params.integer("priority", settings.priority, min=-1000, max=1000)
    settings.priority = settings.priority if priority is None else priority
    interval = params.integer("interval_seconds", settings.interval_seconds, min=60, max=7 * 86400)
    settings.interval_seconds = settings.interval_seconds if interval is None else interval
    if "independence_group" in params:
        settings.independence_group = params.text("independence_group", max_len=200) or None
    enabled = params.flag("enabled", settings.enabled)
    settings.enabled = settings.enabled if enabled is None else enabled
    return settings


async def _opinion_counts(session: Any, ids: list[int]) -> dict[int, int]:
    if not ids:
        return {}
    rows = await session.execute(
        select(SubscriptionOpinion.subscription_id, func.count())
        .where(SubscriptionOpinion.subscription_id.in_(ids))
        .group_by(SubscriptionOpinion.subscription_id)
    )
    return {sub_id: int(count) for sub_id, count in rows}


async def _subscription(session: Any, sub_id: int) -> Subscription:
    sub: Subscription | None = await session.get(Subscription, sub_id)
    if sub is None:
        raise NotFound("Record not found")
    return sub


@routes.get(SUBS)
async def list_subscriptions(request: web.Request) -> web.Response:
    await require_staff(request, READ)
    page = page_params(await read_params(request), default=40, maximum=200)
    async with request.app[SESSIONS]() as session:
        rows = list(await session.scalars(paginate(select(Subscription), Subscription.id, page)))
        if page.ascending:
            rows.reverse()
        counts = await _opinion_counts(session, [s.id for s in rows])
    return json_response(
        [render_subscription(s, counts.get(s.id, 0)) for s in rows],
        headers=link_header(request, [s.id for s in rows], page),
    )


@routes.post(SUBS)
async def create(request: web.Request) -> web.Response:
    await require_staff(request, WRITE)
    params = await read_params(request)
    url = params.required_str("url", max_len=2048)
    settings = _apply_settings(params, Settings(format=_choice(params, "format", FORMATS, None)))
    fed = request.app[FEDERATION]
    async with request.app[SESSIONS]() as session:
        try:
            sub = await create_subscription(fed, session, url, settings, at=now())
        except ValueError as exc:
            raise Unprocessable(str(exc)) from None
        except (FetchError, SyncError) as exc:
            raise Unprocessable(f"url: could not be read as a feed or block list ({exc})") from None
        await session.commit()
        return json_response(render_subscription(sub))


@routes.get(SUB)
async def show(request: web.Request) -> web.Response:
    await require_staff(request, READ)
    async with request.app[SESSIONS]() as session:
        sub = await _subscription(session, path_id(request))
        counts = await _opinion_counts(session, [sub.id])
        return json_response(render_subscription(sub, counts.get(sub.id, 0)))


@routes.patch(SUB)
async def change(request: web.Request) -> web.Response:
    await require_staff(request, WRITE)
    params = await read_params(request)
    async with request.app[SESSIONS]() as session:
        sub = await _subscription(session, path_id(request))
        current = Settings(
            format=sub.format,
            name=sub.name,
            mode=sub.mode,
            trust_weight=sub.trust_weight,
            max_policy=sub.max_policy,
            retraction_mode=sub.retraction_mode,
            independence_group=sub.independence_group,
            priority=sub.priority,
            enabled=sub.enabled,
            interval_seconds=sub.interval_seconds,
        )
        settings = _apply_settings(params, current)
        for name in (
            "name",
            "mode",
            "trust_weight",
            "max_policy",
            "retraction_mode",
            "independence_group",
            "priority",
            "enabled",
            "interval_seconds",
        ):
            setattr(sub, name, getattr(settings, name))
        moment = now()
        sub.updated_at = moment
        await session.flush()
        try:
            await merge_and_apply(session, at=moment)  # new weights or caps apply at once
        except MergeInputError as exc:
            raise Unprocessable(str(exc)) from None
        await session.commit()
        counts = await _opinion_counts(session, [sub.id])
        return json_response(render_subscription(sub, counts.get(sub.id, 0)))


@routes.delete(SUB)
async def remove(request: web.Request) -> web.Response:
    await require_staff(request, WRITE)
    async with request.app[SESSIONS]() as session:
        sub = await _subscription(session, path_id(request))
        await delete_subscription(session, sub, at=now())
        await session.commit()
    return json_response({})


@routes.post(SUB + "/sync")
async def sync_now(request: web.Request) -> web.Response:
    await require_staff(request, WRITE)
    sub_id = path_id(request)
    try:
        result = await sync_subscription(request.app[FEDERATION], sub_id)
    except LookupError:
        raise NotFound("Record not found") from None
    except SyncBusy:
        raise Conflict("another sync of this subscription is running") from None
    return json_response(result.to_json())


@routes.get(DRAFTS)
async def list_drafts(request: web.Request) -> web.Response:
    await require_staff(request, READ)
    params = await read_params(request)
    state = _choice(params, "state", DRAFT_STATES, "pending")
    page = page_params(params, default=40, maximum=200)
    async with request.app[SESSIONS]() as session:
        query = select(ModerationDraft).where(ModerationDraft.state == state)
        rows = list(await session.scalars(paginate(query, ModerationDraft.id, page)))
    if page.ascending:
        rows.reverse()
    return json_response([render_draft(d) for d in rows], headers=link_header(request, [d.id for d in rows], page))


async def _decide(request: web.Request, *, accept: bool) -> web.Response:
    viewer = await require_staff(request, WRITE)
    async with request.app[SESSIONS]() as session:
        draft = await session.get(ModerationDraft, path_id(request))
        if draft is None:
            raise NotFound("Record not found")
        try:
            await decide_draft(session, draft, accept=accept, actor_account_id=viewer.require_account(), at=now())
        except ApplyConflict as exc:
            await session.rollback()
            raise Conflict(str(exc)) from None
        await session.commit()
        return json_response(render_draft(draft))


@routes.post(DRAFT + "/accept")
async def accept_draft(request: web.Request) -> web.Response:
    return await _decide(request, accept=True)


@routes.post(DRAFT + "/reject")
async def reject_draft(request: web.Request) -> web.Response:
    return await _decide(request, accept=False)
