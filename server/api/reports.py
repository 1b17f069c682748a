"""Members' side of moderation: filing reports (Mastodon's ``POST /api/v1/reports``), seeing
the outcome of one's own reports, one's strikes, and appealing a strike.

The reporter sees ``received`` / ``actioned`` / ``declined`` and nothing else the moderators
wrote (notes, assignee, action text). Rules and transactions live in ``server.reports``.
"""

from __future__ import annotations

import logging

from aiohttp import web
from sqlalchemy import select

from server import reports
from server.auth import require_user
from server.errors import NotFound, Unprocessable
from server.models import Account, AccountWarning, Report
from server.pagination import link_header, order_newest_first, page_params, paginate
from server.web import CONFIG, SESSIONS, Routes, json_response, now, path_id, read_params

log = logging.getLogger(__name__)
routes = Routes()

MINE = "/api/v1/hearthside/reports"
STRIKES = "/api/v1/hearthside/strikes"


@routes.post("/api/v1/reports")
async def create_report(request: web.Request) -> web.Response:
    viewer = await require_user(request, "write:reports")
    params = await read_params(request)
    target_id = params.id("account_id")
    if target_id is None:
        raise Unprocessable("account_id: is required")
    comment = params.text("comment", "", max_len=reports.MAX_COMMENT) or ""
    category = params.text("category", max_len=32)
    rule_ids = params.array("rule_ids")
    if category is None:
        category = "violation" if rule_ids else "other"  # Mastodon's default
    forward = bool(params.flag("forward", False))
    status_ids = params.array("status_ids")
    domains = params.array("forward_to_domains", max_items=20)
    config = request.app[CONFIG]
    async with request.app[SESSIONS]() as session:
        me = await session.get(Account, viewer.require_account())
        assert me is not None
        report = await reports.file_report(
            session,
            config,
            me,
            target_id=target_id,
            status_ids=status_ids,
            comment=comment,
            category=category,
            rule_ids=rule_ids,
            forward=forward,
            forward_to_domains=domains,
        )
        target = await session.get(Account, report.target_account_id)
        assert target is not None
        body = reports.render_report(config, report, target)
        await session.commit()
    log.info("report %s filed by account %s", report.id, viewer.account_id)
    return json_response(body)


@routes.get(MINE)
async def my_reports(request: web.Request) -> web.Response:
    viewer = await require_user(request, "write:reports")
    me = viewer.require_account()
    page = page_params(await read_params(request), default=20, maximum=40)
    config = request.app[CONFIG]
    async with request.app[SESSIONS]() as session:
        query = select(Report).where(Report.reporter_account_id == me)
        rows = order_newest_first(
            list(await session.scalars(paginate(query, Report.id, page))), page, key=lambda r: r.id
        )
        targets = {
            a.id: a
            for a in await session.scalars(
                select(Account).where(Account.id.in_({r.target_account_id for r in rows} or {0}))
            )
        }
    body = [reports.render_member_report(config, r, targets[r.target_account_id]) for r in rows]
    return json_response(body, headers=link_header(request, [r.id for r in rows], page))


@routes.get(MINE + "/{id:[0-9]+}")
async def my_report(request: web.Request) -> web.Response:
    viewer = await require_user(request, "write:reports")
    async with request.app[SESSIONS]() as session:
        report = await session.get(Report, path_id(request))
        if report is None or report.reporter_account_id != viewer.require_account():
            raise NotFound("Record not found")
        target = await session.get(Account, report.target_account_id)
        assert target is not None
        return json_response(reports.render_member_report(request.app[CONFIG], report, target))


@routes.get(STRIKES)
async def my_strikes(request: web.Request) -> web.Response:
    viewer = await require_user(request, "read:accounts")
    me = viewer.require_account()
    page = page_params(await read_params(request), default=20, maximum=40)
    config = request.app[CONFIG]
    async with request.app[SESSIONS]() as session:
        query = select(AccountWarning).where(AccountWarning.target_account_id == me)
        rows = order_newest_first(
            list(await session.scalars(paginate(query, AccountWarning.id, page))), page, key=lambda w: w.id
        )
        appeals = await reports.appeals_of(session, [w.id for w in rows])
        account = await session.get(Account, me)
        assert account is not None
    body = [reports.render_strike(config, w, account, appeals.get(w.id)) for w in rows]
    return json_response(body, headers=link_header(request, [w.id for w in rows], page))


@routes.post(STRIKES + "/{id:[0-9]+}/appeal")
async def appeal_strike(request: web.Request) -> web.Response:
    viewer = await require_user(request, "write:accounts")
    params = await read_params(request)
    text = params.text("text", max_len=reports.MAX_COMMENT * 2)
    if text is None:
        raise Unprocessable("text: is required")
    async with request.app[SESSIONS]() as session:
        appeal = await reports.file_appeal(session, viewer.require_account(), path_id(request), text, at=now())
        body = reports.render_appeal(appeal)
        await session.commit()
    log.info("strike %s appealed (appeal %s)", appeal.account_warning_id, appeal.id)
    return json_response(body)
