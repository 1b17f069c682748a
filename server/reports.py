"""The local moderation toolset: reports, account actions, strikes, appeals, rules, notes, audit.

Design note
-----------
Reports from members (``POST /api/v1/reports``) and from other instances' ``Flag``s land in
one queue (``reports``): ``open`` -> ``resolved`` with an ``outcome`` (``actioned`` when an
account action names the report or acts on its target, ``declined`` when a moderator resolves
it without one) and back to ``open`` on reopen. A member's ``forward`` is only a request kept
on the report: nothing leaves the instance until a moderator forwards, choosing the comment,
the posts and the domains (``forward_report``), and the ``Flag`` goes out from the instance
actor, never naming the reporter.

Account actions follow Mastodon's ``Admin::AccountAction``: ``none`` (a warning),
``sensitive``, ``disable`` (log-in frozen: the user's tokens are revoked), ``silence`` (limit),
``suspend``; Hearthside adds ``delete_statuses`` (remove a post, federated as the author's own
Delete) and ``ban_from_group``. Each creates a strike (``AccountWarning``) and a
``moderation_warning`` notification; the "un-" actions create none. A member appeals a strike
once, within 20 days; approving overrules the strike and undoes what can be undone (a
removed post stays removed: its Delete has already gone out).

Reports of end-to-end encrypted messages (category ``e2ee_message``, filed by
``server.api.e2ee`` or from a forwarded ``Flag`` in ``server.ingest``) go through the same
queue. Their revealed messages are kept sealed (``E2EEReportMessage``); the admin report entity
opens them for staff (``hearthside_encrypted_messages``, :func:`revealed_messages`), never
logging their text. ``e2ee_message`` is a stored category only: members file Mastodon's four,
and a moderator may keep it, change it to one of those and back, but never give it to a
report without revealed messages.

Every moderation change writes its ``AuditEntry`` in the same transaction (the caller
commits once). Audit details never hold note text, comments, post content or reporters.
Functions here take a session and never commit; handlers in ``server.api.reports`` and
``server.api.admin_reports`` own the transactions.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crypto.attachments import descriptors as attachment_descriptors
from crypto.encoding import b64decode
from crypto.envelope import decode_message
from crypto.errors import E2EEError, VerificationError
from crypto.sealing import unseal
from server.auth import Viewer
from server.config import Config
from server.e2ee import report_key
from server.entities import account_uri, iso, render_account, render_admin_account
from server.errors import Forbidden, NotFound, Unprocessable
from server.ids import new_id
from server.models import (
    Account,
    AccountWarning,
    Appeal,
    AuditEntry,
    E2EEReportMessage,
    ModerationNote,
    ModerationNotificationLink,
    Notification,
    OAuthToken,
    Report,
    Rule,
    Status,
    User,
)
from server.notify import MODERATION_TYPES
from server.web import now

log = logging.getLogger(__name__)

# What members file (Mastodon's four). Hearthside stores one more, for reports of revealed
# end-to-end encrypted messages: kept by an update, never chosen (see update_report).
CATEGORIES = ("spam", "legal", "violation", "other")
E2EE_CATEGORY = "e2ee_message"
ACTIONS = ("none", "sensitive", "disable", "silence", "suspend")
# Strike actions (Mastodon's AccountWarning#action values, plus Hearthside's group ban).
STRIKE_ACTIONS = {
    "none": "none",
    "sensitive": "sensitive",
    "disable": "disable",
    "silence": "silence",
    "suspend": "suspend",
    "delete_statuses": "delete_statuses",
    "ban_from_group": "ban_from_group",
}
APPEAL_WINDOW = timedelta(days=20)
MAX_COMMENT = 1000
MAX_STATUSES = 50
MAX_NOTE = 5000

# Notification types (server.notify.TYPES lists them for the notification filters).
ADMIN_REPORT = "admin.report"
MODERATION_WARNING = "moderation_warning"
REPORT_RESOLVED = "hearthside.report_resolved"
APPEAL_DECIDED = "hearthside.appeal_decided"
ADMIN_APPEAL = "hearthside.admin.appeal"


# ---------------------------------------------------------------------------- audit


def audit(
    session: AsyncSession,
    actor_account_id: int | None,
    action: str,
    target_type: str,
    target: object,
    *,
    reason: str = "",
    details: dict[str, Any] | None = None,
    source: str = "api",
) -> AuditEntry:
    """Add an audit entry to the caller's transaction."""
    entry = AuditEntry(
        id=new_id(),
        actor_account_id=actor_account_id,
        source=source,
        action=action,
        target_type=target_type,
        target=str(target),
        reason=reason,
        details=details or {},
        created_at=now(),
    )
    session.add(entry)
    return entry


def render_audit_entry(entry: AuditEntry) -> dict[str, Any]:
    return {
        "id": str(entry.id),
        "action": entry.action,
        "target_type": entry.target_type,
        "target": entry.target,
        "reason": entry.reason,
        "details": entry.details,
        "source": entry.source,
        "account_id": str(entry.actor_account_id) if entry.actor_account_id is not None else None,
        "created_at": iso(entry.created_at),
    }


# ---------------------------------------------------------------------------- notifications


async def _notify(
    session: AsyncSession,
    recipient_id: int,
    from_account_id: int,
    type: str,
    *,
    report_id: int | None = None,
    account_warning_id: int | None = None,
    appeal_id: int | None = None,
) -> None:
    """A moderation notification. Unlike ``server.notify.notify`` it may come "from" the
    recipient (Mastodon does this for strikes, which have no originating account)."""
    recipient = await session.get(Account, recipient_id)
    if recipient is None or not recipient.local or recipient.is_group:
        return
    note = Notification(
        id=new_id(), account_id=recipient_id, from_account_id=from_account_id, type=type, created_at=now()
    )
    session.add(note)
    await session.flush()
    session.add(
        ModerationNotificationLink(
            notification_id=note.id, report_id=report_id, account_warning_id=account_warning_id, appeal_id=appeal_id
        )
    )


async def staff_account_ids(session: AsyncSession) -> list[int]:
    rows = await session.scalars(
        select(Account.id)
        .join(User, User.account_id == Account.id)
        .where(
            User.role.in_(("admin", "moderator")),
            Account.suspended_at.is_(None),
            Account.deleted_at.is_(None),
            User.disabled.is_(False),
        )
    )
    return list(rows)


async def notify_staff_of_report(session: AsyncSession, report: Report) -> None:
    """Mastodon's ``admin.report`` notification, to every staff member but the reporter."""
    sender = report.reporter_account_id or report.target_account_id
    for staff_id in await staff_account_ids(session):
        if staff_id not in (report.reporter_account_id, report.target_account_id):
            await _notify(session, staff_id, sender, ADMIN_REPORT, report_id=report.id)


# ---------------------------------------------------------------------------- rules


async def active_rules(session: AsyncSession) -> list[Rule]:
    rows = await session.scalars(select(Rule).where(Rule.deleted_at.is_(None)).order_by(Rule.position, Rule.id))
    return list(rows)


def render_rule(rule: Rule) -> dict[str, Any]:
    """Mastodon's ``Rule`` entity."""
    return {"id": str(rule.id), "text": rule.text, "hint": rule.hint, "translations": {}}


async def _rules_by_id(session: AsyncSession, ids: Iterable[int]) -> dict[int, Rule]:
    wanted = set(ids)
    if not wanted:
        return {}
    return {r.id: r for r in await session.scalars(select(Rule).where(Rule.id.in_(wanted)))}


async def check_rule_ids(session: AsyncSession, raw: Sequence[Any], category: str) -> list[int]:
    """``rule_ids``: existing, not deleted rules; at least one when the category is violation."""
    from server.web import parse_id

    ids = list(dict.fromkeys(parse_id(v, "rule_ids") for v in raw))
    if category == "violation" and not ids:
        raise Unprocessable("rule_ids: name at least one rule for a violation report")
    if category != "violation" and ids:
        raise Unprocessable("rule_ids: only violation reports cite rules")
    found = await _rules_by_id(session, ids)
    if any(i not in found or found[i].deleted_at is not None for i in ids):
        raise Unprocessable("rule_ids: no such rule")
    return ids


# ---------------------------------------------------------------------------- reports


async def file_report(
    session: AsyncSession,
    config: Config,
    reporter: Account,
    *,
    target_id: int,
    status_ids: Sequence[Any],
    comment: str,
    category: str,
    rule_ids: Sequence[Any],
    forward: bool,
    forward_to_domains: Sequence[Any],
) -> Report:
    """A member's report (Mastodon's ``ReportService``): checked, filed, staff notified."""
    from server.web import parse_id

    if category not in CATEGORIES:
        raise Unprocessable(f"category: must be one of {', '.join(CATEGORIES)}")
    target = await session.get(Account, target_id)
    if target is None or target.deleted_at is not None:
        raise NotFound("Record not found")
    if target.id == reporter.id:
        raise Unprocessable("account_id: you cannot report yourself")
    ids = list(dict.fromkeys(parse_id(v, "status_ids") for v in status_ids))
    if len(ids) > MAX_STATUSES:
        raise Unprocessable(f"status_ids: at most {MAX_STATUSES} posts")
    if ids:
        found = set(
            await session.scalars(
                select(Status.id).where(Status.id.in_(ids), Status.account_id == target.id, Status.deleted_at.is_(None))
            )
        )
        if found != set(ids):
            raise Unprocessable("status_ids: every post must be one of the reported account's posts")
    rules = await check_rule_ids(session, rule_ids, category)
    domains = [str(d).strip().lower() for d in forward_to_domains if str(d).strip()]
    if domains and not forward:
        raise Unprocessable("forward_to_domains: needs forward=true")
    if forward and target.local:
        forward = False  # nothing to forward: our own member
    moment = now()
    report = Report(
        id=new_id(),
        reporter_account_id=reporter.id,
        origin_domain="",
        target_account_id=target.id,
        status_ids=ids,
        comment=comment,
        category=category,
        state="open",
        outcome="",
        rule_ids=rules,
        forward_requested=forward,
        forward_to_domains=domains[:20],
        forwarded_to=[],
        created_at=moment,
        updated_at=moment,
    )
    session.add(report)
    await session.flush()
    await notify_staff_of_report(session, report)
    return report


async def load_report(session: AsyncSession, report_id: int) -> Report:
    report = await session.get(Report, report_id)
    if report is None:
        raise NotFound("Record not found")
    return report


def outcome_of(report: Report) -> str:
    """What the reporter sees: ``received`` until resolved, then ``actioned`` or ``declined``."""
    if report.state != "resolved":
        return "received"
    return report.outcome or "declined"


def render_report(config: Config, report: Report, target: Account) -> dict[str, Any]:
    """Mastodon's ``Report`` entity (what the reporter gets back)."""
    return {
        "id": str(report.id),
        "action_taken": report.state == "resolved",
        "action_taken_at": iso(report.action_taken_at),
        "category": report.category,
        "comment": report.comment,
        "forwarded": report.forwarded_at is not None,
        "created_at": iso(report.created_at),
        "status_ids": [str(i) for i in report.status_ids] or None,
        "rule_ids": [str(i) for i in report.rule_ids] or None,
        "target_account": render_account(config, target),
    }


def render_member_report(config: Config, report: Report, target: Account) -> dict[str, Any]:
    """The reporter's view: the report and its outcome; never notes, assignee or action text."""
    return {
        "id": str(report.id),
        "outcome": outcome_of(report),
        "category": report.category,
        "comment": report.comment,
        "status_ids": [str(i) for i in report.status_ids],
        "rule_ids": [str(i) for i in report.rule_ids],
        "forward_requested": report.forward_requested,
        "created_at": iso(report.created_at),
        "resolved_at": iso(report.action_taken_at) if report.state == "resolved" else None,
        "target_account": render_account(config, target),
    }


# ---------------------------------------------------------------------------- revealed encrypted messages


CANNOT_BE_OPENED = "cannot be opened"


def _unsealed(key: bytes, row: E2EEReportMessage) -> dict[str, Any] | None:
    """The revealed message as it was kept (``server.e2ee.keep_revealed``), or ``None`` when
    the sealed copy does not open."""
    try:
        kept = json.loads(unseal(key, row.sealed))
    except (VerificationError, ValueError):
        return None
    return kept if isinstance(kept, dict) else None


async def _revealed_rows(session: AsyncSession, report_ids: set[int]) -> list[E2EEReportMessage]:
    """The revealed messages kept with these reports, in one query, report by report in order."""
    if not report_ids:
        return []
    return list(
        await session.scalars(
            select(E2EEReportMessage)
            .where(E2EEReportMessage.report_id.in_(report_ids))
            .order_by(E2EEReportMessage.report_id, E2EEReportMessage.id)
        )
    )


#: One audit entry per staff member, report (or reported file) and hour for looking at revealed
#: encrypted content: who saw members' private words is on record (research/e2ee.md §7.6),
#: without an entry per page refresh.
VIEW_AUDIT_WINDOW = timedelta(hours=1)
VIEWED_MESSAGES = "report.e2ee_viewed"
VIEWED_FILE = "report.e2ee_file_viewed"  # a greyscale, blurred preview
DOWNLOADED_FILE = "report.e2ee_file_downloaded"  # the file itself, after both reveals
REVEALED_EXPIRED = "report.e2ee_expired"


async def audit_revealed_views(
    session: AsyncSession, viewer_id: int | None, action: str, targets: Mapping[str, dict[str, Any]]
) -> None:
    """Record that ``viewer_id`` saw revealed content: an audit entry (``action``) per target
    (a report id, or ``"<report id>/<file index>"``) with its details, unless one was written
    for the same viewer, action and target within VIEW_AUDIT_WINDOW. The caller commits.
    Never the content; the log line names ids only."""
    if not targets:
        return
    since = now() - VIEW_AUDIT_WINDOW
    recent = set(
        await session.scalars(
            select(AuditEntry.target).where(
                AuditEntry.actor_account_id == viewer_id,
                AuditEntry.action == action,
                AuditEntry.target.in_(list(targets)),
                AuditEntry.created_at > since,
            )
        )
    )
    for target, details in targets.items():
        if target not in recent:
            audit(session, viewer_id, action, "report_file" if "/" in target else "report", target, details=details)
        log.info("e2ee report %s: revealed content seen by moderator account %s", target, viewer_id)


async def expired_revealed(session: AsyncSession, report_ids: Iterable[int]) -> dict[int, datetime]:
    """When the revealed messages of these reports were deleted by retention, by report id."""
    ids = [str(i) for i in report_ids]
    if not ids:
        return {}
    rows = await session.execute(
        select(AuditEntry.target, AuditEntry.created_at).where(
            AuditEntry.action == REVEALED_EXPIRED, AuditEntry.target_type == "report", AuditEntry.target.in_(ids)
        )
    )
    return {int(target): at for target, at in rows.all()}


async def expire_revealed(session: AsyncSession, config: Config, at: datetime) -> int:
    """Delete the messages revealed in reports resolved more than ``[e2ee]
    revealed_retention_days`` ago (open reports keep theirs, however old), each report's
    deletion on record as an audit entry with the count (never the content). Returns the
    number of messages deleted; the caller commits."""
    days = int(config.get("e2ee", "revealed_retention_days"))
    cutoff = at - timedelta(days=days)
    due = (
        await session.execute(
            select(E2EEReportMessage.report_id, func.count())
            .join(Report, Report.id == E2EEReportMessage.report_id)
            .where(Report.state == "resolved", Report.action_taken_at <= cutoff)
            .group_by(E2EEReportMessage.report_id)
        )
    ).all()
    if not due:
        return 0
    await session.execute(delete(E2EEReportMessage).where(E2EEReportMessage.report_id.in_([r for r, _ in due])))
    for report_id, count in due:
        audit(
            session,
            None,
            REVEALED_EXPIRED,
            "report",
            report_id,
            source="retention",
            details={"messages": int(count), "retention_days": days},
        )
    return sum(int(count) for _, count in due)


def open_revealed(key: bytes, row: E2EEReportMessage) -> dict[str, Any]:
    """One revealed message as staff see it: who wrote it to whom, when, its text, and whether
    its franking tag and stamp verified when it was filed. A row that does not open (another
    key, altered, or not a message) says so rather than hiding that something was revealed."""
    kept = _unsealed(key, row)
    try:
        if kept is None:
            raise ValueError("sealed copy does not open")
        message = decode_message(b64decode(kept["message"], field="message"))
    except (E2EEError, ValueError, KeyError, TypeError):
        return {"object_id": row.object_uri, "verified": False, "error": CANNOT_BE_OPENED}
    shown = message.to_json()
    body = shown["body"]
    files = [{k: a[k] for k in ("name", "size", "media_type")} for a in attachment_descriptors(shown)]
    kind = body.get("type") if isinstance(body.get("type"), str) else ""
    # What the message says about other messages (a reply's, an edit's, a reaction's target),
    # named by message id, so a moderator can match it with others revealed.
    related = {
        field: body[key] for field, key in _RELATED.get(kind, ()) if isinstance(body.get(key), str) and body[key]
    }
    return {
        "object_id": row.object_uri,
        "message_id": shown["id"],
        "type": kind,
        "from": shown["from"],
        "to": shown["to"],
        "created": shown["created"],
        "content": body.get("content", "") if isinstance(body.get("content", ""), str) else "",
        **related,
        "verified": row.verified,
        **({"attachments": files} if files else {}),
    }


#: Per message type: (field shown to moderators, key of the message body) naming other messages
#: or what a reaction was (research/e2ee.md; server/dm/client.py writes them).
_RELATED = {
    "Note": (("in_reply_to", "in_reply_to"), ("edit_of", "edit_of")),
    "Reaction": (("reaction", "emoji"), ("reaction_to", "of")),
}


async def revealed_messages(
    session: AsyncSession, config: Config, report_ids: Iterable[int], viewer_id: int | None
) -> dict[int, list[dict[str, Any]]]:
    """The messages revealed in these reports, opened, by report id (absent: none), in one
    query. Staff only: this is message content. The sealing key is read only when some report
    has revealed messages (``GET /api/v1/hearthside/e2ee/reports/{id}`` shows the same). Each
    file carries ``hearthside_media_display``: what ``viewer_id`` has revealed of it."""
    from server.wellbeing import attachment_display, hidden_display  # late: it audits through this module

    rows = await _revealed_rows(session, set(report_ids))
    if not rows:
        return {}
    key = report_key(config)
    display = await attachment_display(session, viewer_id, {row.report_id for row in rows})
    out: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        shown = open_revealed(key, row)
        numbered = out.setdefault(row.report_id, [])
        first = sum(len(m.get("attachments", ())) for m in numbered)
        for offset, file in enumerate(shown.get("attachments", ())):
            file["index"] = first + offset  # GET .../e2ee/reports/{id}/attachments/{index}
            file["hearthside_media_display"] = display.get((row.report_id, file["index"]), hidden_display())
        numbered.append(shown)
    return out


async def revealed_attachment(
    session: AsyncSession, config: Config, report_id: int, index: int
) -> dict[str, Any] | None:
    """The ``index``-th attachment (across the report's revealed messages, in order) as its
    message describes it, key included; None when there is no such attachment. Staff only."""
    rows = await _revealed_rows(session, {report_id})
    if not rows:
        return None
    key = report_key(config)
    found: list[dict[str, Any]] = []
    for row in rows:
        kept = _unsealed(key, row)
        try:
            if kept is None:
                continue
            found += attachment_descriptors(decode_message(b64decode(kept["message"], field="message")).to_json())
        except (E2EEError, ValueError, KeyError, TypeError):
            continue
    return found[index] if 0 <= index < len(found) else None


async def render_admin_reports(
    session: AsyncSession, config: Config, reports: Sequence[Report], viewer: Viewer
) -> list[dict[str, Any]]:
    """Mastodon's ``Admin::Report`` entities, in a handful of queries. For staff only: they
    carry the revealed encrypted messages, and each report showing some is put on record as
    seen by the viewer (``audit_revealed_views``; never the text), as the E2EE report view
    does: the caller commits."""
    from server.status_entities import render_statuses

    account_ids = {
        i
        for r in reports
        for i in (r.reporter_account_id, r.target_account_id, r.assigned_account_id, r.action_taken_by_account_id)
        if i is not None
    }
    people: dict[int, tuple[Account, User | None]] = {}
    if account_ids:
        rows = await session.execute(
            select(Account, User).outerjoin(User, User.account_id == Account.id).where(Account.id.in_(account_ids))
        )
        people = {a.id: (a, u) for a, u in rows.all()}
    show_email = viewer.role == "admin"

    def admin_account(account_id: int | None) -> dict[str, Any] | None:
        if account_id is None or account_id not in people:
            return None
        account, user = people[account_id]
        return render_admin_account(config, account, user, show_email=show_email)

    status_ids = {i for r in reports for i in r.status_ids}
    statuses: dict[int, dict[str, Any]] = {}
    if status_ids:
        rows_ = list(await session.scalars(select(Status).where(Status.id.in_(status_ids))))
        # As written: a moderator's own trigger-topic choices never hide reported posts.
        rendered = await render_statuses(session, config, rows_, viewer.account_id, filter_topics=False)
        statuses = {int(s["id"]): s for s in rendered}
    from server.wellbeing import hidden_display, media_display  # late: it audits through this module

    revealed = await media_display(session, viewer.account_id, [r.id for r in reports])
    rules = await _rules_by_id(session, {i for r in reports for i in r.rule_ids})
    encrypted = await revealed_messages(session, config, [r.id for r in reports], viewer.account_id)
    expired = await expired_revealed(session, [r.id for r in reports if r.category == E2EE_CATEGORY])
    seen = {str(i): {"messages": len(m), "via": "admin_reports"} for i, m in encrypted.items()}
    await audit_revealed_views(session, viewer.account_id, VIEWED_MESSAGES, seen)
    out = []
    for r in reports:
        out.append(
            {
                "id": str(r.id),
                "action_taken": r.state == "resolved",
                "action_taken_at": iso(r.action_taken_at),
                "category": r.category,
                "comment": r.comment,
                "forwarded": r.forwarded_at is not None,
                "created_at": iso(r.created_at),
                "updated_at": iso(r.updated_at or r.created_at),
                "account": admin_account(r.reporter_account_id),
                "target_account": admin_account(r.target_account_id),
                "assigned_account": admin_account(r.assigned_account_id),
                "action_taken_by_account": admin_account(r.action_taken_by_account_id),
                # Moderator wellbeing: each reported post's media blurred, greyscale and muted
                # until this staff member reveals it (server/wellbeing.py).
                "statuses": [
                    {**statuses[i], "hearthside_media_display": revealed.get((r.id, i), hidden_display())}
                    for i in r.status_ids
                    if i in statuses
                ],
                "rules": [render_rule(rules[i]) for i in r.rule_ids if i in rules],
                # Hearthside additions
                "state": r.state,
                "outcome": r.outcome or None,
                "origin_domain": r.origin_domain or None,
                "forward_requested": r.forward_requested,
                "forward_to_domains": list(r.forward_to_domains),
                "forwarded_at": iso(r.forwarded_at),
                "forwarded_to": list(r.forwarded_to),
                # The end-to-end encrypted messages the reporter revealed (docs/e2ee.md).
                "hearthside_encrypted_messages": encrypted.get(r.id, []),
                # When retention deleted them ([e2ee] revealed_retention_days after resolving).
                "hearthside_encrypted_messages_deleted_at": iso(expired.get(r.id)),
            }
        )
    return out


def _touch(report: Report) -> None:
    report.updated_at = now()


async def resolve_report(
    session: AsyncSession, report: Report, actor_id: int | None, *, outcome: str, reason: str = ""
) -> None:
    """Close a report with its outcome; the reporter is told. A resolved report stays as it is."""
    if report.state == "resolved":
        return
    moment = now()
    report.state = "resolved"
    report.outcome = outcome
    report.action_taken_at = moment
    report.action_taken_by_account_id = actor_id
    _touch(report)
    audit(session, actor_id, "report.resolve", "report", report.id, reason=reason, details={"outcome": outcome})
    if report.reporter_account_id is not None:
        await _notify(
            session, report.reporter_account_id, report.reporter_account_id, REPORT_RESOLVED, report_id=report.id
        )


def reopen_report(session: AsyncSession, report: Report, actor_id: int | None) -> None:
    if report.state != "resolved":
        raise Unprocessable("state: the report is not resolved")
    report.state = "open"
    report.outcome = ""
    report.action_taken_at = None
    report.action_taken_by_account_id = None
    _touch(report)
    audit(session, actor_id, "report.reopen", "report", report.id)


def assign_report(session: AsyncSession, report: Report, actor_id: int, assignee: int | None) -> None:
    report.assigned_account_id = assignee
    _touch(report)
    audit(
        session,
        actor_id,
        "report.assign" if assignee is not None else "report.unassign",
        "report",
        report.id,
        details={"assigned_account_id": str(assignee) if assignee is not None else None},
    )


async def update_report(
    session: AsyncSession, report: Report, actor_id: int, *, category: str | None, rule_ids: Sequence[Any] | None
) -> None:
    """Mastodon's ``PUT /api/v1/admin/reports/:id``: change the category and cited rules.

    ``e2ee_message`` stays when the moderator leaves it (or names it again); it can be changed
    to one of Mastodon's four and back again, but only a report that has revealed encrypted
    messages kept with it can be (a report of public posts never becomes one)."""
    new_category = category if category is not None else report.category
    if new_category not in CATEGORIES and not (new_category == report.category == E2EE_CATEGORY):
        revealed = bool(await _revealed_rows(session, {report.id}))
        if new_category != E2EE_CATEGORY or not revealed:
            allowed = [*CATEGORIES, E2EE_CATEGORY] if revealed else CATEGORIES
            raise Unprocessable(f"category: must be one of {', '.join(allowed)}")
    if rule_ids is None:
        rule_ids = report.rule_ids if new_category == "violation" else []
    report.rule_ids = await check_rule_ids(session, rule_ids, new_category)
    report.category = new_category
    _touch(report)
    audit(
        session,
        actor_id,
        "report.update",
        "report",
        report.id,
        details={"category": report.category, "rule_ids": [str(i) for i in report.rule_ids]},
    )


# ---------------------------------------------------------------------------- notes


def add_note(
    session: AsyncSession, author_id: int, content: str, *, report_id: int | None = None, account_id: int | None = None
) -> ModerationNote:
    content = content.strip()
    if not content:
        raise Unprocessable("content: must not be empty")
    if len(content) > MAX_NOTE:
        raise Unprocessable(f"content: longer than {MAX_NOTE} characters")
    note = ModerationNote(
        id=new_id(),
        report_id=report_id,
        target_account_id=account_id,
        account_id=author_id,
        content=content,
        created_at=now(),
    )
    session.add(note)
    # The audit entry says a note was written, never what it says.
    target_type, target = ("report", report_id) if report_id is not None else ("account", account_id)
    audit(session, author_id, "note.create", target_type, target, details={"note_id": str(note.id)})
    return note


async def delete_note(session: AsyncSession, note_id: int, viewer: Viewer) -> None:
    """Delete a note: its author may; admins may delete anyone's."""
    note = await session.get(ModerationNote, note_id)
    if note is None:
        raise NotFound("Record not found")
    if note.account_id != viewer.account_id and viewer.role != "admin":
        raise Forbidden("You can only delete your own notes")
    target_type, target = (
        ("report", note.report_id) if note.report_id is not None else ("account", note.target_account_id)
    )
    audit(session, viewer.account_id, "note.delete", target_type, target, details={"note_id": str(note.id)})
    await session.delete(note)


def render_note(config: Config, note: ModerationNote, author: Account | None) -> dict[str, Any]:
    return {
        "id": str(note.id),
        "content": note.content,
        "report_id": str(note.report_id) if note.report_id is not None else None,
        "target_account_id": str(note.target_account_id) if note.target_account_id is not None else None,
        "account": render_account(config, author) if author is not None else None,
        "created_at": iso(note.created_at),
    }


# ---------------------------------------------------------------------------- account actions


def check_may_act_on(viewer: Viewer, account: Account, user: User | None) -> None:
    """No acting on yourself, on admins, or on moderators unless you are an admin."""
    if account.id == viewer.account_id:
        raise Forbidden("You cannot take moderation actions against your own account")
    if user is not None and user.role == "admin":
        raise Forbidden("Admins cannot be suspended; change their role first")
    if user is not None and user.role == "moderator" and viewer.role != "admin":
        raise Forbidden("Only admins may act on moderators")


async def _revoke_tokens(session: AsyncSession, user: User) -> None:
    """What suspension relies on the token check for, done outright: every token of the user
    stops working now (the caller calls ``forget_tokens`` after committing)."""
    await session.execute(
        update(OAuthToken)
        .where(OAuthToken.user_id == user.id, OAuthToken.revoked_at.is_(None))
        .values(revoked_at=now())
    )


async def strike(
    session: AsyncSession,
    actor_id: int | None,
    target: Account,
    action: str,
    *,
    text: str = "",
    status_ids: Sequence[int] = (),
    report: Report | None = None,
    details: dict[str, Any] | None = None,
) -> AccountWarning:
    """Record a strike and tell the member (``moderation_warning``)."""
    warning = AccountWarning(
        id=new_id(),
        target_account_id=target.id,
        account_id=actor_id,
        action=STRIKE_ACTIONS[action],
        text=text,
        status_ids=list(status_ids),
        report_id=report.id if report is not None else None,
        details=details or {},
        created_at=now(),
    )
    session.add(warning)
    await session.flush()
    await _notify(session, target.id, target.id, MODERATION_WARNING, account_warning_id=warning.id)
    return warning


async def _resolve_for_action(
    session: AsyncSession, actor_id: int | None, target: Account, kind: str, report: Report | None
) -> None:
    """Mastodon: an action other than a warning resolves every open report against the
    account; a warning resolves only the report it names. Both count as actioned."""
    reports: list[Report] = [report] if report is not None else []
    if kind != "none":
        reports += list(
            await session.scalars(select(Report).where(Report.target_account_id == target.id, Report.state == "open"))
        )
    seen: set[int] = set()
    for r in reports:
        if r.id not in seen:
            seen.add(r.id)
            await resolve_report(session, r, actor_id, outcome="actioned")


async def report_for_action(session: AsyncSession, report_id: int | None, target: Account) -> Report | None:
    if report_id is None:
        return None
    report = await session.get(Report, report_id)
    if report is None or report.target_account_id != target.id:
        raise Unprocessable("report_id: no such report about this account")
    return report


async def publish_account_state(session: AsyncSession, account: Account, kind: str, on: bool) -> None:
    """A remote account suspended or limited here (or no longer) goes into the partner feed
    (issue 5 item 4: account-level entries for partners only, expiring). The moderator's text is
    not published: it is written for the member and may name people."""
    if account.local or not account.uri or kind not in ("suspend", "silence"):
        return
    from server import feeds

    await feeds.record_account_decision(
        session, actor_uri=account.uri, policy=kind if on else None, reason="", expires=None, at=now()
    )


def apply_state(account: Account, user: User | None, kind: str, on: bool) -> None:
    """Set or clear the state an action stands for (``none`` has none)."""
    moment = now() if on else None
    if kind == "suspend":
        account.suspended_at = moment if on and account.suspended_at is None else (account.suspended_at if on else None)
    elif kind == "silence":
        account.silenced_at = moment if on and account.silenced_at is None else (account.silenced_at if on else None)
    elif kind == "sensitive":
        account.sensitized_at = (
            moment if on and account.sensitized_at is None else (account.sensitized_at if on else None)
        )
    elif kind == "disable":
        if user is None:
            raise Unprocessable("type: disable applies to local accounts only")
        user.disabled = on


async def take_action(
    session: AsyncSession,
    viewer: Viewer,
    account: Account,
    user: User | None,
    kind: str,
    *,
    text: str = "",
    report_id: int | None = None,
) -> AccountWarning:
    """Mastodon's ``POST /api/v1/admin/accounts/:id/action``. The caller commits, then calls
    ``forget_tokens(user_id=...)`` so cached logins see the change."""
    if kind not in ACTIONS:
        raise Unprocessable(f"type: must be one of {', '.join(ACTIONS)}")
    check_may_act_on(viewer, account, user)
    if kind in ("none", "disable") and user is None:
        raise Unprocessable(f"type: {kind} applies to local accounts only")
    report = await report_for_action(session, report_id, account)
    apply_state(account, user, kind, True)
    await publish_account_state(session, account, kind, True)
    if kind == "suspend" and not account.local:
        from server.relationships import drop_follows_of_suspended

        await drop_follows_of_suspended(session, account)  # nothing for followers reaches it
    if kind == "disable" and user is not None:
        await _revoke_tokens(session, user)
    warning = await strike(
        session, viewer.account_id, account, kind, text=text, report=report,
        status_ids=list(report.status_ids) if report is not None else [],
    )  # fmt: skip
    audit(
        session,
        viewer.account_id,
        f"account.{kind}",
        "account",
        account.id,
        reason=text,
        details={"strike_id": str(warning.id), "report_id": str(report.id) if report is not None else None},
    )
    await _resolve_for_action(session, viewer.account_id, account, kind, report)
    return warning


STATE_WORDS = {"suspend": "suspended", "silence": "limited", "sensitive": "marked sensitive", "disable": "disabled"}
UNDO = {"unsuspend": "suspend", "unsilence": "silence", "unsensitive": "sensitive", "enable": "disable"}


def is_in_state(account: Account, user: User | None, kind: str) -> bool:
    return {
        "suspend": account.suspended_at is not None,
        "silence": account.silenced_at is not None,
        "sensitive": account.sensitized_at is not None,
        "disable": user is not None and user.disabled,
    }[kind]


async def undo_action(session: AsyncSession, viewer: Viewer, account: Account, user: User | None, verb: str) -> None:
    """``/unsuspend``, ``/unsilence``, ``/unsensitive``, ``/enable``: no strike, an audit entry."""
    kind = UNDO[verb]
    if not is_in_state(account, user, kind):
        raise Forbidden(f"This account is not {STATE_WORDS[kind]}")
    check_may_act_on(viewer, account, user)
    apply_state(account, user, kind, False)
    await publish_account_state(session, account, kind, False)
    audit(session, viewer.account_id, f"account.{verb}", "account", account.id)


async def remove_status(
    session: AsyncSession, config: Config, viewer: Viewer, status: Status, *, reason: str, report_id: int | None
) -> AccountWarning:
    """Remove a post as its author's own delete does (federated Delete), with a strike."""
    from server import outbox
    from server import statuses as service

    author = await session.get(Account, status.account_id)
    if author is None:
        raise NotFound("Record not found")
    user = await session.scalar(select(User).where(User.account_id == author.id))
    check_may_act_on(viewer, author, user)
    report = await report_for_action(session, report_id, author)
    await service.delete_status(session, status)
    if author.local:
        await outbox.federate_delete(session, config, status, author)
    warning = await strike(
        session, viewer.account_id, author, "delete_statuses", text=reason, status_ids=[status.id], report=report
    )
    audit(
        session,
        viewer.account_id,
        "status.remove",
        "status",
        status.id,
        reason=reason,
        details={"account_id": str(author.id), "strike_id": str(warning.id)},
    )
    if report is not None:
        await resolve_report(session, report, viewer.account_id, outcome="actioned")
    return warning


async def ban_from_group(
    session: AsyncSession,
    config: Config,
    viewer: Viewer,
    account: Account,
    user: User | None,
    *,
    group_id: int,
    reason: str,
    report_id: int | None,
) -> AccountWarning:
    """Instance staff ban an account from a local group (``server.groups.ban``), with a strike."""
    from server import groups, outbox

    check_may_act_on(viewer, account, user)
    try:
        view = await groups.load_group(session, group_id)
    except NotFound:
        raise Unprocessable("group_id: no such group") from None
    if not view.account.local:
        raise Unprocessable("group_id: only groups of this instance")
    if account.is_group:
        raise Unprocessable("account_id: a group cannot be banned from a group")
    report = await report_for_action(session, report_id, account)
    moderator = await session.get(Account, viewer.require_account())
    assert moderator is not None
    await outbox.answer_follow(session, config, view.account, account.id, accepted=False)
    await groups.ban(session, view, account, by=moderator, reason=reason)
    warning = await strike(
        session,
        viewer.account_id,
        account,
        "ban_from_group",
        text=reason,
        report=report,
        details={"group_id": str(group_id)},
    )
    audit(
        session,
        viewer.account_id,
        "account.ban_from_group",
        "account",
        account.id,
        reason=reason,
        details={"group_id": str(group_id), "strike_id": str(warning.id)},
    )
    if report is not None:
        await resolve_report(session, report, viewer.account_id, outcome="actioned")
    return warning


# ---------------------------------------------------------------------------- strikes and appeals


def render_strike(config: Config, warning: AccountWarning, target: Account, appeal: Appeal | None) -> dict[str, Any]:
    """Mastodon's ``AccountWarning`` entity (4.3), with ``overruled_at``."""
    return {
        "id": str(warning.id),
        "action": warning.action,
        "text": warning.text,
        "status_ids": [str(i) for i in warning.status_ids],
        "target_account": render_account(config, target),
        "appeal": render_appeal(appeal) if appeal is not None else None,
        "created_at": iso(warning.created_at),
        "overruled_at": iso(warning.overruled_at),
        "appeal_deadline": iso(warning.created_at + APPEAL_WINDOW),
    }


def render_appeal(appeal: Appeal) -> dict[str, Any]:
    """Mastodon's ``Appeal`` entity plus its id and dates."""
    return {
        "id": str(appeal.id),
        "text": appeal.text,
        "state": appeal.state,
        "created_at": iso(appeal.created_at),
        "decided_at": iso(appeal.decided_at),
    }


async def appeals_of(session: AsyncSession, warning_ids: Iterable[int]) -> dict[int, Appeal]:
    ids = set(warning_ids)
    if not ids:
        return {}
    rows = await session.scalars(select(Appeal).where(Appeal.account_warning_id.in_(ids)))
    return {a.account_warning_id: a for a in rows}


async def file_appeal(session: AsyncSession, member_id: int, warning_id: int, text: str, *, at: datetime) -> Appeal:
    """One appeal per strike, within 20 days of it (Mastodon's rule)."""
    warning = await session.get(AccountWarning, warning_id)
    if warning is None or warning.target_account_id != member_id:
        raise NotFound("Record not found")
    text = text.strip()
    if not text:
        raise Unprocessable("text: must not be empty")
    if len(text) > MAX_COMMENT * 2:
        raise Unprocessable(f"text: longer than {MAX_COMMENT * 2} characters")
    if warning.overruled_at is not None:
        raise Unprocessable("account_warning_id: this strike has been overruled already")
    if at - warning.created_at > APPEAL_WINDOW:
        raise Unprocessable("account_warning_id: appeals are accepted within 20 days of the decision")
    if await session.scalar(select(Appeal.id).where(Appeal.account_warning_id == warning.id)) is not None:
        raise Unprocessable("account_warning_id: this strike has already been appealed")
    appeal = Appeal(
        id=new_id(), account_warning_id=warning.id, account_id=member_id, text=text, state="pending", created_at=at
    )
    session.add(appeal)
    await session.flush()
    for staff_id in await staff_account_ids(session):
        if staff_id != member_id:
            await _notify(session, staff_id, member_id, ADMIN_APPEAL, appeal_id=appeal.id)
    return appeal


async def decide_appeal(session: AsyncSession, viewer: Viewer, appeal_id: int, *, approve: bool) -> list[int]:
    """Approve (overrule the strike and undo its action) or reject a pending appeal. Returns the
    user ids whose cached logins must be forgotten after commit."""
    from server import groups

    appeal = await session.get(Appeal, appeal_id)
    if appeal is None:
        raise NotFound("Record not found")
    if appeal.state != "pending":
        raise Unprocessable(f"state: this appeal was {appeal.state} already")
    warning = await session.get(AccountWarning, appeal.account_warning_id)
    assert warning is not None
    target = await session.get(Account, warning.target_account_id)
    assert target is not None
    user = await session.scalar(select(User).where(User.account_id == target.id))
    if target.id == viewer.account_id:
        raise Forbidden("You cannot decide your own appeal")
    moment = now()
    appeal.state = "approved" if approve else "rejected"
    appeal.decided_by_account_id = viewer.account_id
    appeal.decided_at = moment
    undone: str | None = None
    forget: list[int] = []
    if approve:
        warning.overruled_at = moment
        if warning.action in ("suspend", "silence", "sensitive", "disable"):
            if is_in_state(target, user, warning.action):
                apply_state(target, user, warning.action, False)
                undone = warning.action
                if user is not None:
                    forget.append(user.id)
        elif warning.action == "ban_from_group":
            group_id = int(warning.details.get("group_id", 0) or 0)
            if group_id and await groups.unban(session, group_id, target.id):
                undone = "ban_from_group"
        # delete_statuses: a removed post stays removed (its Delete has gone out); none: nothing.
    audit(
        session,
        viewer.account_id,
        "appeal.approve" if approve else "appeal.reject",
        "account",
        target.id,
        details={
            "appeal_id": str(appeal.id),
            "strike_id": str(warning.id),
            "strike_action": warning.action,
            "undone": undone,
        },
    )
    await _notify(session, target.id, target.id, APPEAL_DECIDED, appeal_id=appeal.id, account_warning_id=warning.id)
    return forget


async def render_admin_appeals(
    session: AsyncSession, config: Config, appeals: Sequence[Appeal]
) -> list[dict[str, Any]]:
    warnings = {
        w.id: w
        for w in await session.scalars(
            select(AccountWarning).where(AccountWarning.id.in_({a.account_warning_id for a in appeals} or {0}))
        )
    }
    accounts = {
        a.id: a
        for a in await session.scalars(select(Account).where(Account.id.in_({a.account_id for a in appeals} or {0})))
    }
    out = []
    for appeal in appeals:
        warning = warnings[appeal.account_warning_id]
        out.append(
            {
                **render_appeal(appeal),
                "account_warning": render_strike(config, warning, accounts[appeal.account_id], None),
                "account": render_account(config, accounts[appeal.account_id]),
            }
        )
    return out


# ---------------------------------------------------------------------------- forwarding


async def queue_flag(
    session: AsyncSession,
    config: Config,
    objects: Sequence[str],
    comment: str,
    inboxes: Sequence[str],
    *,
    extra: dict[str, Any] | None = None,
) -> None:
    """Queue a ``Flag`` from the instance actor (``object`` = the account, then posts) to
    ``inboxes``. Shared by moderator forwarding and E2EE reports; the reporter is never named."""
    from federation.documents import flag_activity, instance_actor_url
    from server.delivery import enqueue
    from server.outbox import activity_uri

    flag = flag_activity(activity_uri(config), instance_actor_url(config.base_url), list(objects), comment)
    if extra:
        flag.update(extra)
    await enqueue(session, config.base_url, actor_account_id=None, activity=flag, inboxes=inboxes)


async def _forwardable_revealed(session: AsyncSession, config: Config, report: Report) -> list[dict[str, Any]]:
    """A member's revealed encrypted messages as a forwarded ``Flag`` carries them: each with
    the sending server's stamp in ``stamp`` (what that server checks; docs/e2ee.md
    "Franking"), never ours. Messages kept without the sender's stamp, or that do not open,
    are left out."""
    rows = await _revealed_rows(session, {report.id})
    if not rows:
        return []
    key = report_key(config)
    out = []
    for row in rows:
        kept = _unsealed(key, row)
        if kept is None:
            continue
        sender_stamp = kept.pop("sender_stamp", None)
        if isinstance(sender_stamp, str) and sender_stamp:
            out.append({**kept, "stamp": sender_stamp})
    return out


async def forward_report(
    session: AsyncSession,
    config: Config,
    viewer: Viewer,
    report: Report,
    *,
    comment: str,
    status_ids: Sequence[Any] | None,
    domains: Sequence[Any] | None,
) -> None:
    """A moderator forwards a report to the target's instance: their comment, their chosen
    subset of the report's posts. Only the target's own domain is accepted (422 otherwise)."""
    from server.web import parse_id

    target = await session.get(Account, report.target_account_id)
    if target is None or target.local:
        raise Unprocessable("report: only reports about remote accounts can be forwarded")
    if not config.get("federation", "enabled"):
        raise Unprocessable("report: federation is disabled on this instance")
    chosen = (
        list(report.status_ids)
        if status_ids is None
        else list(dict.fromkeys(parse_id(v, "status_ids") for v in status_ids))
    )
    if any(i not in report.status_ids for i in chosen):
        raise Unprocessable("status_ids: choose among the report's posts")
    wanted = [str(d).strip().lower() for d in (domains or [target.domain]) if str(d).strip()]
    for domain in wanted:
        if domain != target.domain:
            raise Unprocessable(f"domains: {domain} is not the reported account's domain")
    if not wanted:
        raise Unprocessable("domains: choose the reported account's domain")
    inbox = target.shared_inbox_url or target.inbox_url
    if not inbox:
        raise Unprocessable("report: the reported account's inbox is unknown")
    uris: list[str] = []
    if chosen:
        rows = await session.scalars(select(Status).where(Status.id.in_(chosen)))
        uris = [s.uri for s in rows if s.uri]
    revealed = await _forwardable_revealed(session, config, report)
    extra = {"e2ee:revealed": revealed} if revealed else None
    await queue_flag(session, config, [account_uri(config, target), *uris], comment, [inbox], extra=extra)
    report.forwarded_at = now()
    report.forwarded_to = sorted(set(report.forwarded_to) | set(wanted))
    _touch(report)
    audit(
        session,
        viewer.account_id,
        "report.forward",
        "report",
        report.id,
        details={"domains": wanted, "status_ids": [str(i) for i in chosen]},
    )


async def notification_payloads(
    session: AsyncSession, config: Config, notes: Sequence[Notification]
) -> dict[int, dict[str, Any]]:
    """What moderation notifications carry besides their type, by notification id: Mastodon's
    ``report`` (``admin.report``; the reporter's outcome view for ``hearthside.report_resolved``)
    and ``moderation_warning`` (strikes, and appeals decided or filed)."""
    from server.safety import notification_payloads as safety_payloads  # late: server.safety imports this module

    safety = await safety_payloads(session, config, notes)
    ids = [n.id for n in notes if n.type in MODERATION_TYPES]
    if not ids:
        return safety
    links = {
        link.notification_id: link
        for link in await session.scalars(
            select(ModerationNotificationLink).where(ModerationNotificationLink.notification_id.in_(ids))
        )
    }
    report_ids = {link.report_id for link in links.values() if link.report_id is not None}
    warning_ids = {link.account_warning_id for link in links.values() if link.account_warning_id is not None}
    appeal_ids = {link.appeal_id for link in links.values() if link.appeal_id is not None}
    reports = {r.id: r for r in await session.scalars(select(Report).where(Report.id.in_(report_ids)))}
    if appeal_ids:
        for appeal in await session.scalars(select(Appeal).where(Appeal.id.in_(appeal_ids))):
            warning_ids.add(appeal.account_warning_id)
    found = await session.scalars(select(AccountWarning).where(AccountWarning.id.in_(warning_ids)))
    warnings = {w.id: w for w in found}
    appeals = await appeals_of(session, warnings.keys())
    account_ids = {r.target_account_id for r in reports.values()} | {w.target_account_id for w in warnings.values()}
    accounts = {a.id: a for a in await session.scalars(select(Account).where(Account.id.in_(account_ids)))}
    by_appeal = {a.id: a.account_warning_id for a in appeals.values()}
    out: dict[int, dict[str, Any]] = safety
    kinds = {n.id: n.type for n in notes}
    for note_id, link in links.items():
        payload: dict[str, Any] = {}
        report = reports.get(link.report_id) if link.report_id is not None else None
        if report is not None and (target := accounts.get(report.target_account_id)) is not None:
            reporter_view = kinds[note_id] == "hearthside.report_resolved"
            payload["report"] = (
                render_member_report(config, report, target) if reporter_view else render_report(config, report, target)
            )
        warning_id = link.account_warning_id or (by_appeal.get(link.appeal_id) if link.appeal_id else None)
        warning = warnings.get(warning_id) if warning_id is not None else None
        if warning is not None and (target := accounts.get(warning.target_account_id)) is not None:
            payload["moderation_warning"] = render_strike(config, warning, target, appeals.get(warning.id))
        if payload:
            out[note_id] = payload
    return out
