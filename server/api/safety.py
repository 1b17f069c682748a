"""Member safety API (``server.safety``): the draft check, helplines and the country setting,
concern reports; for trained responders and admins, the crisis queue and safe-messaging
hides; for admins, the responder flag and the helpline review list.

The crisis queue is not ordinary staff work: a moderator without the trained-responder flag
gets 403 there, as does everyone else. Each write is one transaction with its audit entry.
"""

from __future__ import annotations

import logging

from aiohttp import web

from server import safety
from server.auth import require_staff, require_user
from server.errors import Forbidden, Unprocessable
from server.models import User
from server.web import CONFIG, SESSIONS, Routes, json_response, now, path_id, read_params

log = logging.getLogger(__name__)
routes = Routes()

MEMBER = "/api/v1/hearthside/safety"
CONCERNS = "/api/v1/hearthside/concerns"
ADMIN = "/api/v1/hearthside/admin"
ITEM = ADMIN + "/crisis/{id:[0-9]+}"
READ, WRITE = "admin:read:reports", "admin:write:reports"
MAX_DRAFT = 100_000


# ---------------------------------------------------------------------------- members


@routes.post(MEMBER + "/check")
async def check_draft(request: web.Request) -> web.Response:
    """A draft's check: the author's own support panel, or null. Nothing is stored."""
    viewer = await require_user(request, "write:statuses")
    params = await read_params(request)
    config = request.app[CONFIG]
    text = params.text("text", max_len=max(MAX_DRAFT, config.get("instance", "max_post_chars")))
    if text is None:
        raise Unprocessable("text: is required")
    language = params.text("language", None, max_len=16) or None
    async with request.app[SESSIONS]() as session:
        panel = await safety.check_draft(session, config, viewer.require_account(), text, language)
    return json_response({"support": panel})


@routes.get(MEMBER + "/helplines")
async def my_helplines(request: web.Request) -> web.Response:
    """The helplines for the caller's country and language, whenever they want them."""
    viewer = await require_user(request, "read:accounts")
    params = await read_params(request)
    config = request.app[CONFIG]
    account_id = viewer.require_account()
    async with request.app[SESSIONS]() as session:
        country = await safety.member_country(session, config, account_id)
        language = params.text("language", None, max_len=16) or await safety.member_locale(session, account_id)
    panel = safety.support_panel(config, kind="signpost", level="low", language=language, country=country)
    return json_response({"country": country, "helplines": panel["helplines"], "directory_url": panel["directory_url"]})


@routes.get(MEMBER + "/support_kit")
async def my_support_kit(request: web.Request) -> web.Response:
    """Everything a member's device needs to show support panels for encrypted messages by
    itself: the server never sees those messages, nor learns when a panel is shown."""
    viewer = await require_user(request, "read:accounts")
    config = request.app[CONFIG]
    async with request.app[SESSIONS]() as session:
        country = await safety.member_country(session, config, viewer.require_account())
    return json_response(safety.support_kit(config, country))


@routes.get(MEMBER + "/settings")
async def show_settings(request: web.Request) -> web.Response:
    viewer = await require_user(request, "read:accounts")
    async with request.app[SESSIONS]() as session:
        body = await safety.render_settings(session, request.app[CONFIG], viewer.require_account())
    return json_response(body)


@routes.patch(MEMBER + "/settings")
async def update_settings(request: web.Request) -> web.Response:
    viewer = await require_user(request, "write:accounts")
    params = await read_params(request)
    account_id = viewer.require_account()
    async with request.app[SESSIONS]() as session:
        if "country" in params:
            country = safety.check_country(params.raw("country"))
            user = await session.get(User, viewer.user_id)
            assert user is not None
            user.country = country
        body = await safety.render_settings(session, request.app[CONFIG], account_id)
        await session.commit()
    return json_response(body)


@routes.post(CONCERNS)
async def raise_concern(request: web.Request) -> web.Response:
    """ "I'm worried about this person": to trained responders only; nothing reaches the subject."""
    viewer = await require_user(request, "write:reports")
    params = await read_params(request)
    account_id = params.id("account_id")
    if account_id is None:
        raise Unprocessable("account_id: is required")
    status_id = params.id("status_id")
    comment = params.text("comment", "", max_len=safety.MAX_COMMENT) or ""
    async with request.app[SESSIONS]() as session:
        _item, body = await safety.file_concern(
            session,
            request.app[CONFIG],
            viewer.require_account(),
            account_id=account_id,
            status_id=status_id,
            comment=comment,
            at=now(),
        )
        await session.commit()
    return json_response(body)


# ---------------------------------------------------------------------------- responders


@routes.get(ADMIN + "/crisis")
async def list_crisis(request: web.Request) -> web.Response:
    """Open, acknowledged and escalated items (or ``state``), by priority then due time."""
    viewer = await require_staff(request, READ)
    params = await read_params(request)
    wanted = params.text("state", None, max_len=32)
    if wanted is not None and wanted not in safety.STATES:
        raise Unprocessable(f"state: must be one of {', '.join(safety.STATES)}")
    limit = params.integer("limit", 100, min=1, max=200) or 100
    config = request.app[CONFIG]
    async with request.app[SESSIONS]() as session:
        await safety.require_responder(session, viewer)
        items = await safety.list_items(session, viewer, [wanted] if wanted else safety.ACTIVE_STATES, limit)
        body = await safety.render_items(session, config, items, at=now())
    return json_response(body)


@routes.get(ITEM)
async def show_crisis(request: web.Request) -> web.Response:
    viewer = await require_staff(request, READ)
    async with request.app[SESSIONS]() as session:
        await safety.require_responder(session, viewer)
        item = await safety.load_item(session, viewer, path_id(request))
        [body] = await safety.render_items(session, request.app[CONFIG], [item], at=now())
    return json_response(body)


def _action_handler(action: str) -> None:
    async def handler(request: web.Request) -> web.Response:
        viewer = await require_staff(request, WRITE)
        params = await read_params(request)
        reason = params.text("reason", "", max_len=safety.MAX_REASON) or ""
        config = request.app[CONFIG]
        async with request.app[SESSIONS]() as session:
            await safety.require_responder(session, viewer)
            item = await safety.load_item(session, viewer, path_id(request))
            safety.apply_action(session, viewer, item, action, reason)
            await session.flush()
            [body] = await safety.render_items(session, config, [item], at=now())
            await session.commit()
        return json_response(body)

    handler.__name__ = f"crisis_{action}"
    routes.post(f"{ITEM}/{action}")(handler)


for _action in safety.TRANSITIONS:
    _action_handler(_action)


@routes.post(ITEM + "/hide")
async def hide(request: web.Request) -> web.Response:
    """Hide the item's post pending review (method detail, graphic self-harm); its author gets
    a private supportive notice. Nothing is federated."""
    viewer = await require_staff(request, WRITE)
    params = await read_params(request)
    reason = params.text("reason", None, max_len=64)
    if reason is None:
        raise Unprocessable(f"reason: is required ({' or '.join(safety.HIDE_REASONS)})")
    comment = params.text("comment", "", max_len=safety.MAX_REASON) or ""
    config = request.app[CONFIG]
    async with request.app[SESSIONS]() as session:
        await safety.require_responder(session, viewer)
        item = await safety.load_item(session, viewer, path_id(request))
        await safety.hide_status(session, config, viewer, item, reason, comment)
        await session.flush()
        [body] = await safety.render_items(session, config, [item], at=now())
        await session.commit()
    return json_response(body)


@routes.post(ITEM + "/unhide")
async def unhide(request: web.Request) -> web.Response:
    viewer = await require_staff(request, WRITE)
    config = request.app[CONFIG]
    async with request.app[SESSIONS]() as session:
        await safety.require_responder(session, viewer)
        item = await safety.load_item(session, viewer, path_id(request))
        await safety.unhide_status(session, viewer, item)
        await session.flush()
        [body] = await safety.render_items(session, config, [item], at=now())
        await session.commit()
    return json_response(body)


# ---------------------------------------------------------------------------- admins


@routes.post(ADMIN + "/accounts/{id:[0-9]+}/responder")
async def set_responder(request: web.Request) -> web.Response:
    viewer = await require_staff(request, "admin:write:accounts")
    params = await read_params(request)
    trained = params.flag("trained", None)
    if trained is None:
        raise Unprocessable("trained: is required (true or false)")
    account_id = path_id(request)
    async with request.app[SESSIONS]() as session:
        user = await safety.set_responder(session, viewer, account_id, trained)
        body = {"account_id": str(account_id), "role": user.role, "trained_responder": user.trained_responder}
        await session.commit()
    log.info("safety: responder flag of account %s set to %s", account_id, trained)
    return json_response(body)


@routes.get(ADMIN + "/safety/helplines")
async def admin_helplines(request: web.Request) -> web.Response:
    """Every configured helpline with ``stale`` when it is past the review period."""
    viewer = await require_staff(request, "admin:read")
    if viewer.role != "admin":
        raise Forbidden("This action is not allowed: admins only")
    config = request.app[CONFIG]
    return json_response(
        {
            "review_period_days": config.get("safety", "review_period_days"),
            "helplines": safety.render_admin_helplines(config, now().date()),
        }
    )
