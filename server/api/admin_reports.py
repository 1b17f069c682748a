"""Staff side of moderation: Mastodon's admin report API (``/api/v1/admin/reports``) and
Hearthside's extensions (notes, forwarding, post removal, group bans, appeals, rules, audit).

Reports of end-to-end encrypted messages are worked here like any other: the admin report
entity shows the messages the reporter revealed (``hearthside_encrypted_messages``, opened by
``server.reports.revealed_messages``), so the queue needs no second endpoint.

Instance staff only (admins and moderators); scopes as Mastodon's (``admin:read:reports``,
``admin:write:reports``, ``admin:write:accounts``); rules and the audit log use
``admin:read`` / ``admin:write``. Each write is one transaction with its audit entry
(``server.reports``).
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server import reports
from server.api.accounts import admin_target
from server.auth import forget_tokens, require_staff
from server.errors import NotFound, Unprocessable
from server.ids import new_id
from server.models import Account, Appeal, AuditEntry, ModerationNote, Report, Rule, Status
from server.pagination import link_header, order_newest_first, page_params, paginate
from server.web import CONFIG, SESSIONS, Routes, json_response, now, path_id, read_params
from server.wellbeing import record_open

log = logging.getLogger(__name__)
routes = Routes()

BASE = "/api/v1/admin/reports"
ONE = BASE + "/{id:[0-9]+}"
HS = "/api/v1/hearthside/admin"
READ, WRITE = "admin:read:reports", "admin:write:reports"


async def _answer(request: web.Request, session: Any, viewer: Any, report: Report) -> web.Response:
    [body] = await reports.render_admin_reports(session, request.app[CONFIG], [report], viewer)
    await session.commit()  # who saw revealed messages is on record (render_admin_reports)
    return json_response(body)


@routes.get(BASE)
async def list_reports(request: web.Request) -> web.Response:
    """Mastodon's filters: ``resolved``, ``account_id`` (the reporter), ``target_account_id``."""
    viewer = await require_staff(request, READ)
    params = await read_params(request)
    page = page_params(params, default=100, maximum=200)
    query = select(Report)
    query = query.where(Report.state == ("resolved" if params.flag("resolved", False) else "open"))
    reporter = params.id("account_id")
    if reporter is not None:
        query = query.where(Report.reporter_account_id == reporter)
    target = params.id("target_account_id")
    if target is not None:
        query = query.where(Report.target_account_id == target)
    async with request.app[SESSIONS]() as session:
        rows = order_newest_first(
            list(await session.scalars(paginate(query, Report.id, page))), page, key=lambda r: r.id
        )
        body = await reports.render_admin_reports(session, request.app[CONFIG], rows, viewer)
        await session.commit()  # who saw revealed messages is on record
    return json_response(body, headers=link_header(request, [r.id for r in rows], page))


@routes.get(ONE)
async def show_report(request: web.Request) -> web.Response:
    viewer = await require_staff(request, READ)
    async with request.app[SESSIONS]() as session:
        report = await reports.load_report(session, path_id(request))
        record_open(session, viewer.require_account(), report)  # moderator exposure counts
        await session.commit()
        return await _answer(request, session, viewer, report)


@routes.put(ONE)
async def update_report(request: web.Request) -> web.Response:
    viewer = await require_staff(request, WRITE)
    params = await read_params(request)
    category = params.text("category", max_len=32)
    rule_ids = params.array("rule_ids") if "rule_ids" in params else None
    async with request.app[SESSIONS]() as session:
        report = await reports.load_report(session, path_id(request))
        await reports.update_report(session, report, viewer.require_account(), category=category, rule_ids=rule_ids)
        await session.commit()
        return await _answer(request, session, viewer, report)


def _state_change(name: str) -> Any:
    async def handler(request: web.Request) -> web.Response:
        viewer = await require_staff(request, WRITE)
        me = viewer.require_account()
        async with request.app[SESSIONS]() as session:
            report = await reports.load_report(session, path_id(request))
            if name == "assign_to_self":
                reports.assign_report(session, report, me, me)
            elif name == "unassign":
                reports.assign_report(session, report, me, None)
            elif name == "resolve":
                if report.state == "resolved":
                    raise Unprocessable("state: the report is resolved already")
                await reports.resolve_report(session, report, me, outcome="declined")
            else:
                reports.reopen_report(session, report, me)
            await session.commit()
            log.info("report %s: %s by account %s", report.id, name, me)
            return await _answer(request, session, viewer, report)

    handler.__name__ = f"report_{name}"
    return handler


for _name in ("assign_to_self", "unassign", "resolve", "reopen"):
    routes.post(ONE + "/" + _name)(_state_change(_name))


# ---------------------------------------------------------------------------- notes


async def _notes(request: web.Request, **where: int) -> web.Response:
    config = request.app[CONFIG]
    async with request.app[SESSIONS]() as session:
        column = ModerationNote.report_id if "report_id" in where else ModerationNote.target_account_id
        rows = list(
            await session.scalars(
                select(ModerationNote).where(column == next(iter(where.values()))).order_by(ModerationNote.id)
            )
        )
        authors = {
            a.id: a
            for a in await session.scalars(
                select(Account).where(Account.id.in_({n.account_id for n in rows if n.account_id} or {0}))
            )
        }
    return json_response([reports.render_note(config, n, authors.get(n.account_id or 0)) for n in rows])


async def _add_note(
    request: web.Request, *, report_id: int | None = None, account_id: int | None = None
) -> web.Response:
    viewer = await require_staff(request, WRITE if report_id is not None else "admin:write:accounts")
    params = await read_params(request)
    content = params.text("content", max_len=reports.MAX_NOTE)
    if content is None:
        raise Unprocessable("content: is required")
    async with request.app[SESSIONS]() as session:
        if report_id is not None:
            await reports.load_report(session, report_id)
        else:
            account = await session.get(Account, account_id)
            if account is None or account.deleted_at is not None:
                raise NotFound("Record not found")
        note = reports.add_note(session, viewer.require_account(), content, report_id=report_id, account_id=account_id)
        await session.commit()
        author = await session.get(Account, viewer.require_account())
    return json_response(reports.render_note(request.app[CONFIG], note, author))


@routes.get(HS + "/reports/{id:[0-9]+}/notes")
async def report_notes(request: web.Request) -> web.Response:
    await require_staff(request, READ)
    return await _notes(request, report_id=path_id(request))


@routes.post(HS + "/reports/{id:[0-9]+}/notes")
async def add_report_note(request: web.Request) -> web.Response:
    return await _add_note(request, report_id=path_id(request))


@routes.get(HS + "/accounts/{id:[0-9]+}/notes")
async def account_notes(request: web.Request) -> web.Response:
    await require_staff(request, "admin:read:accounts")
    return await _notes(request, account_id=path_id(request))


@routes.post(HS + "/accounts/{id:[0-9]+}/notes")
async def add_account_note(request: web.Request) -> web.Response:
    return await _add_note(request, account_id=path_id(request))


@routes.delete(HS + "/notes/{id:[0-9]+}")
async def delete_note(request: web.Request) -> web.Response:
    viewer = await require_staff(request, WRITE)
    async with request.app[SESSIONS]() as session:
        await reports.delete_note(session, path_id(request), viewer)
        await session.commit()
    return json_response({})


# ---------------------------------------------------------------------------- forwarding


@routes.post(HS + "/reports/{id:[0-9]+}/forward")
async def forward_report(request: web.Request) -> web.Response:
    viewer = await require_staff(request, WRITE)
    params = await read_params(request)
    comment = params.text("comment", "", max_len=reports.MAX_COMMENT) or ""
    status_ids = params.array("status_ids") if "status_ids" in params else None
    domains = params.array("domains", max_items=20) if "domains" in params else None
    async with request.app[SESSIONS]() as session:
        report = await reports.load_report(session, path_id(request))
        await reports.forward_report(
            session, request.app[CONFIG], viewer, report, comment=comment, status_ids=status_ids, domains=domains
        )
        await session.commit()
        log.info("report %s forwarded by account %s", report.id, viewer.account_id)
        return await _answer(request, session, viewer, report)


# ---------------------------------------------------------------------------- post removal, group bans


@routes.post(HS + "/statuses/{id:[0-9]+}/remove")
async def remove_status(request: web.Request) -> web.Response:
    viewer = await require_staff(request, "admin:write:accounts")
    params = await read_params(request)
    reason = params.text("reason", "", max_len=5000) or ""
    report_id = params.id("report_id")
    async with request.app[SESSIONS]() as session:
        status = await session.get(Status, path_id(request))
        if status is None or status.deleted_at is not None:
            raise NotFound("Record not found")
        warning = await reports.remove_status(
            session, request.app[CONFIG], viewer, status, reason=reason, report_id=report_id
        )
        await session.commit()
        author = await session.get(Account, warning.target_account_id)
        assert author is not None
    log.info("status %s removed by account %s", status.id, viewer.account_id)
    return json_response(reports.render_strike(request.app[CONFIG], warning, author, None))


@routes.post(HS + "/accounts/{id:[0-9]+}/group_ban")
async def group_ban(request: web.Request) -> web.Response:
    viewer = await require_staff(request, "admin:write:accounts")
    params = await read_params(request)
    group_id = params.id("group_id")
    if group_id is None:
        raise Unprocessable("group_id: is required")
    reason = params.text("reason", "", max_len=1000) or ""
    report_id = params.id("report_id")
    async with request.app[SESSIONS]() as session:
        account, user = await admin_target(session, path_id(request))
        warning = await reports.ban_from_group(
            session, request.app[CONFIG], viewer, account, user, group_id=group_id, reason=reason, report_id=report_id
        )
        await session.commit()
    log.info("account %s banned from group %s by account %s", account.id, group_id, viewer.account_id)
    return json_response(reports.render_strike(request.app[CONFIG], warning, account, None))


# ---------------------------------------------------------------------------- appeals


@routes.get(HS + "/appeals")
async def list_appeals(request: web.Request) -> web.Response:
    """Appeals, newest first; ``state`` filters (pending, approved, rejected)."""
    await require_staff(request, "admin:read:accounts")
    params = await read_params(request)
    page = page_params(params, default=40, maximum=80)
    query = select(Appeal)
    state = params.text("state", max_len=16)
    if state is not None:
        if state not in ("pending", "approved", "rejected"):
            raise Unprocessable("state: must be pending, approved or rejected")
        query = query.where(Appeal.state == state)
    async with request.app[SESSIONS]() as session:
        rows = order_newest_first(
            list(await session.scalars(paginate(query, Appeal.id, page))), page, key=lambda a: a.id
        )
        body = await reports.render_admin_appeals(session, request.app[CONFIG], rows)
    return json_response(body, headers=link_header(request, [a.id for a in rows], page))


def _decide(approve: bool) -> Any:
    async def handler(request: web.Request) -> web.Response:
        viewer = await require_staff(request, "admin:write:accounts")
        async with request.app[SESSIONS]() as session:
            forget = await reports.decide_appeal(session, viewer, path_id(request), approve=approve)
            await session.commit()
            appeal = await session.get(Appeal, path_id(request))
            assert appeal is not None
            [body] = await reports.render_admin_appeals(session, request.app[CONFIG], [appeal])
        for user_id in forget:
            forget_tokens(user_id=user_id)
        return json_response(body)

    handler.__name__ = "approve_appeal" if approve else "reject_appeal"
    return handler


routes.post(HS + "/appeals/{id:[0-9]+}/approve")(_decide(True))
routes.post(HS + "/appeals/{id:[0-9]+}/reject")(_decide(False))


# ---------------------------------------------------------------------------- rules


def _rule_fields(params: Any, rule: Rule | None) -> tuple[str, str, int]:
    text = params.text("text", max_len=1000)
    if text is None:
        if rule is None:
            raise Unprocessable("text: is required")
        text = rule.text
    if not text.strip():
        raise Unprocessable("text: must not be empty")
    hint = params.text("hint", max_len=2000)
    position = params.integer("position", None, min=0, max=10_000)
    return (
        text.strip(),
        hint.strip() if hint is not None else (rule.hint if rule else ""),
        position if position is not None else (rule.position if rule else 0),
    )


@routes.get(HS + "/rules")
async def list_rules(request: web.Request) -> web.Response:
    await require_staff(request, "admin:read")
    async with request.app[SESSIONS]() as session:
        rows = await reports.active_rules(session)
    return json_response([reports.render_rule(r) for r in rows])


@routes.post(HS + "/rules")
async def create_rule(request: web.Request) -> web.Response:
    viewer = await require_staff(request, "admin:write")
    text, hint, position = _rule_fields(await read_params(request), None)
    moment = now()
    async with request.app[SESSIONS]() as session:
        rule = Rule(id=new_id(), text=text, hint=hint, position=position, created_at=moment, updated_at=moment)
        session.add(rule)
        reports.audit(session, viewer.account_id, "rule.create", "rule", rule.id, details={"position": position})
        await session.commit()
    return json_response(reports.render_rule(rule))


async def _rule(session: AsyncSession, rule_id: int) -> Rule:
    rule = await session.get(Rule, rule_id)
    if rule is None or rule.deleted_at is not None:
        raise NotFound("Record not found")
    return rule


@routes.put(HS + "/rules/{id:[0-9]+}")
async def update_rule(request: web.Request) -> web.Response:
    viewer = await require_staff(request, "admin:write")
    params = await read_params(request)
    async with request.app[SESSIONS]() as session:
        rule = await _rule(session, path_id(request))
        rule.text, rule.hint, rule.position = _rule_fields(params, rule)
        rule.updated_at = now()
        reports.audit(session, viewer.account_id, "rule.update", "rule", rule.id, details={"position": rule.position})
        await session.commit()
        return json_response(reports.render_rule(rule))


@routes.delete(HS + "/rules/{id:[0-9]+}")
async def delete_rule(request: web.Request) -> web.Response:
    """Soft delete: reports citing the rule keep it."""
    viewer = await require_staff(request, "admin:write")
    async with request.app[SESSIONS]() as session:
        rule = await _rule(session, path_id(request))
        rule.deleted_at = now()
        reports.audit(session, viewer.account_id, "rule.delete", "rule", rule.id)
        await session.commit()
    return json_response({})


# ---------------------------------------------------------------------------- audit log


@routes.get(HS + "/audit")
async def audit_log(request: web.Request) -> web.Response:
    """Every audit entry (this module's and others': domain blocks, imports, subscriptions),
    newest first; filters ``action``, ``target_type``, ``target``, ``account_id``."""
    await require_staff(request, "admin:read")
    params = await read_params(request)
    page = page_params(params, default=40, maximum=200)
    query = select(AuditEntry)
    for name, column in (
        ("action", AuditEntry.action),
        ("target_type", AuditEntry.target_type),
        ("target", AuditEntry.target),
    ):
        value = params.text(name, max_len=2048)
        if value:
            query = query.where(column == value)
    actor = params.id("account_id")
    if actor is not None:
        query = query.where(AuditEntry.actor_account_id == actor)
    async with request.app[SESSIONS]() as session:
        rows = order_newest_first(
            list(await session.scalars(paginate(query, AuditEntry.id, page))), page, key=lambda e: e.id
        )
    return json_response(
        [reports.render_audit_entry(e) for e in rows], headers=link_header(request, [e.id for e in rows], page)
    )
