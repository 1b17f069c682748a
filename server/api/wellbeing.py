"""Wellbeing: members' break reminders and quiet mode; moderators' media reveals and exposure
counts (``server.wellbeing``)."""

from __future__ import annotations

import logging
from datetime import datetime

from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from server import wellbeing
from server.auth import VIEWER, require_staff, require_user
from server.errors import Unprocessable
from server.web import CONFIG, SESSIONS, Routes, json_response, now, read_params

log = logging.getLogger(__name__)

MINE = "/api/v1/hearthside/wellbeing"
REVEAL = "/api/v1/hearthside/admin/media_reveal"
EXPOSURE = "/api/v1/hearthside/admin/exposure"


class _Routes(Routes):
    """These routes, and the activity hook the break reminder counts with."""

    def install(self, app: web.Application) -> None:
        super().install(app)
        app.on_response_prepare.append(_record_activity)


routes = _Routes()


async def _record_activity(request: web.Request, response: web.StreamResponse) -> None:
    """An authenticated API request extends the member's activity session (throttled)."""
    viewer = request.get(VIEWER)
    if viewer is None or viewer.account_id is None or response.status >= 400:
        return
    if request.path.startswith(MINE) or not wellbeing.due_for_recording(viewer.account_id):
        return
    try:
        async with request.app[SESSIONS]() as session:
            await wellbeing.touch(session, viewer.account_id, now())
            await session.commit()
    except SQLAlchemyError as exc:  # a missed minute of activity must not fail the request
        log.warning("wellbeing: activity of account %s not recorded (%s)", viewer.account_id, type(exc).__name__)


@routes.get(MINE)
async def show(request: web.Request) -> web.Response:
    viewer = await require_user(request, "read:accounts")
    moment = now()
    async with request.app[SESSIONS]() as session:
        setting = await wellbeing.touch(session, viewer.require_account(), moment)
        await session.commit()
        return json_response(wellbeing.render(setting, moment))


def _when(value: object) -> datetime | str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise Unprocessable("quiet_until: must be an ISO 8601 time")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise Unprocessable("quiet_until: must be an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise Unprocessable("quiet_until: must include a time zone")
    return moment


@routes.put(MINE)
async def update(request: web.Request) -> web.Response:
    viewer = await require_user(request, "write:accounts")
    params = await read_params(request)
    reminder: int | str | None = "keep"
    if "break_reminder_minutes" in params:
        raw = params.raw("break_reminder_minutes")
        reminder = None if raw in (None, "", "null") else params.integer("break_reminder_minutes")
    quiet = params.flag("quiet_mode", None)
    until = _when(params.raw("quiet_until")) if "quiet_until" in params else "keep"
    moment = now()
    async with request.app[SESSIONS]() as session:
        setting = await wellbeing.update(
            session,
            viewer.require_account(),
            break_reminder_minutes=reminder,
            quiet_mode=quiet,
            quiet_until=until,
            at=moment,
        )
        await session.commit()
        return json_response(wellbeing.render(setting, moment))


@routes.post(REVEAL)
async def reveal(request: web.Request) -> web.Response:
    """Reveal, for this staff member, one reported post's media (``status_id``) or one file of
    an E2EE report (``attachment``, its index): ``unblur``, ``colour`` or ``unmute`` (each a
    separate, audited action)."""
    viewer = await require_staff(request, "admin:write:reports")
    params = await read_params(request)
    report_id = params.id("report_id")
    status_id = params.id("status_id")
    attachment = params.integer("attachment", min=0, max=9999)
    if report_id is None:
        raise Unprocessable("report_id: is required")
    kind = params.text("reveal", max_len=16) or ""
    me = viewer.require_account()
    async with request.app[SESSIONS]() as session:
        await wellbeing.reveal(
            session, request.app[CONFIG], me, report_id, kind, status_id=status_id, attachment=attachment
        )
        await session.commit()
        item: dict[str, int | str]
        if attachment is not None:
            shown = (await wellbeing.attachment_display(session, me, [report_id])).get((report_id, attachment))
            item = {"attachment": attachment}
        else:
            shown = (await wellbeing.media_display(session, me, [report_id])).get((report_id, status_id or 0))
            item = {"status_id": str(status_id)}
    return json_response(
        {"report_id": str(report_id), **item, "hearthside_media_display": shown or wellbeing.hidden_display()}
    )


@routes.get(EXPOSURE)
async def exposure(request: web.Request) -> web.Response:
    """This week's exposure counts: a moderator's own; an admin's, everyone's."""
    viewer = await require_staff(request, "admin:read:reports")
    async with request.app[SESSIONS]() as session:
        body = await wellbeing.exposure(
            session, account_id=None if viewer.role == "admin" else viewer.require_account(), at=now()
        )
    return json_response(body)
