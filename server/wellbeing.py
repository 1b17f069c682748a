"""Wellbeing: moderators' exposure to reported media, and members' break reminders and quiet mode.

Design note
-----------
**Moderators.** Hearthside stores no media for posts (remote attachments are never stored, and
local posts cannot carry any yet), so the display flags apply to each reported *status* in a
moderation queue: ``hearthside_media_display`` = ``{"blur", "greyscale", "muted"}``, all true
until that staff member reveals that item with a separate action (``unblur``, ``colour``,
``unmute``). Reveals are per staff member and per (report, status), recorded as
``MediaExposure`` rows and audited; opening a report (``GET /api/v1/admin/reports/{id}``)
records an ``open``. Exposure counts are those rows since the start of the ISO week (UTC).
Files revealed in E2EE reports are the exception: the server decrypts them for moderators, so it
shows them blurred and greyscale itself (``server.media_preview``); their reveals are per
(report, attachment index).

**Members.** The break reminder counts a crude activity session: authenticated API requests
(recorded at most once a minute per account and process) extend it; a gap of more than ten
minutes starts a new one. ``take_a_break`` is true once the session is longer than the chosen
reminder. Quiet mode holds new notifications back (``QuietNotification``) instead of adding
them to ``GET /api/v1/notifications`` and its unread count; when quiet mode ends (turned off,
or ``quiet_until`` passed and the member's next request, wellbeing read or notification comes)
they are added as notifications, newest ids, their original times kept.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.config import Config
from server.entities import iso
from server.errors import Unprocessable
from server.ids import new_id
from server.models import Account, MediaExposure, Notification, QuietNotification, Report, WellbeingSetting
from server.web import now

log = logging.getLogger(__name__)

REVEALS = {"unblur": "blur", "colour": "greyscale", "unmute": "muted"}
SESSION_GAP = timedelta(minutes=10)
MIN_REMINDER, MAX_REMINDER = 15, 480
RECORD_EVERY_SECONDS = 60.0
_last_recorded: dict[int, float] = {}  # account id -> monotonic time of its last recorded request


# ---------------------------------------------------------------------------- moderators


def hidden_display() -> dict[str, bool]:
    return {"blur": True, "greyscale": True, "muted": True}


async def media_display(
    session: AsyncSession, viewer_id: int | None, report_ids: Iterable[int]
) -> dict[tuple[int, int], dict[str, bool]]:
    """(report id, status id) -> the viewer's display flags for items they revealed; any
    other item shows ``hidden_display()``."""
    return await _display(session, viewer_id, report_ids, MediaExposure.status_id)


async def attachment_display(
    session: AsyncSession, viewer_id: int | None, report_ids: Iterable[int]
) -> dict[tuple[int, int], dict[str, bool]]:
    """(report id, attachment index) -> the viewer's display flags for the files revealed in
    E2EE reports that they revealed; any other file shows ``hidden_display()``."""
    return await _display(session, viewer_id, report_ids, MediaExposure.attachment)


async def _display(
    session: AsyncSession, viewer_id: int | None, report_ids: Iterable[int], item: Any
) -> dict[tuple[int, int], dict[str, bool]]:
    """(report id, ``item`` column's value) -> the viewer's display flags, from their reveals."""
    ids = list(set(report_ids))
    if viewer_id is None or not ids:
        return {}
    rows = await session.execute(
        select(MediaExposure.report_id, item, MediaExposure.kind).where(
            MediaExposure.account_id == viewer_id,
            MediaExposure.report_id.in_(ids),
            item.is_not(None),
            MediaExposure.kind.in_(list(REVEALS)),
        )
    )
    out: dict[tuple[int, int], dict[str, bool]] = {}
    for report_id, key, kind in rows.all():
        out.setdefault((report_id, key), hidden_display())[REVEALS[kind]] = False
    return out


async def reveal(
    session: AsyncSession,
    config: Config,
    staff_id: int,
    report_id: int,
    kind: str,
    *,
    status_id: int | None = None,
    attachment: int | None = None,
) -> None:
    """Record one reveal by one staff member (audited): of a reported post's media
    (``status_id``), or of a file revealed in an E2EE report (``attachment``, its index)."""
    from server.reports import audit, revealed_attachment  # late: server.reports -> server.notify -> this module

    if kind not in REVEALS:
        raise Unprocessable("reveal: must be one of unblur, colour, unmute")
    if (status_id is None) == (attachment is None):
        raise Unprocessable("status_id or attachment: give exactly one (a reported post, or a reported file's index)")
    report = await session.get(Report, report_id)
    if report is None:
        raise Unprocessable("report_id: no such report")
    if status_id is not None and status_id not in [int(i) for i in report.status_ids]:
        raise Unprocessable("status_id: not one of the report's posts")
    if attachment is not None and await revealed_attachment(session, config, report_id, attachment) is None:
        raise Unprocessable("attachment: this report has no such file")
    session.add(
        MediaExposure(
            id=new_id(),
            account_id=staff_id,
            report_id=report_id,
            status_id=status_id,
            attachment=attachment,
            kind=kind,
            created_at=now(),
        )
    )
    item = {"status_id": str(status_id)} if status_id is not None else {"attachment": str(attachment)}
    audit(session, staff_id, f"media.{kind}", "report", report_id, details=item)
    log.info("report %s: %s media %s by account %s", report_id, item, kind, staff_id)


def record_open(session: AsyncSession, staff_id: int, report: Report) -> None:
    session.add(
        MediaExposure(
            id=new_id(), account_id=staff_id, report_id=report.id, status_id=None, kind="open", created_at=now()
        )
    )


def week_start(at: datetime) -> datetime:
    """Monday 00:00 UTC of ``at``'s ISO week."""
    day = at.replace(hour=0, minute=0, second=0, microsecond=0)
    return day - timedelta(days=day.weekday())


async def exposure(session: AsyncSession, *, account_id: int | None, at: datetime) -> dict[str, Any]:
    """Per staff member since the start of the week: reports opened, reveals, and distinct
    reported items (report, post) revealed. ``account_id``: only that member."""
    since = week_start(at)
    query = (
        select(
            MediaExposure.account_id,
            Account.username,
            MediaExposure.kind,
            func.count(),
            func.count(func.distinct(MediaExposure.report_id)),
        )
        .join(Account, Account.id == MediaExposure.account_id)
        .where(MediaExposure.created_at >= since)
        .group_by(MediaExposure.account_id, Account.username, MediaExposure.kind)
    )
    if account_id is not None:
        query = query.where(MediaExposure.account_id == account_id)
    people: dict[int, dict[str, Any]] = {}
    for who, username, kind, count, reports in (await session.execute(query)).all():
        entry = people.setdefault(
            who,
            {"account_id": str(who), "username": username, "reports_opened": 0, "reveals": 0, "by_kind": {}},
        )
        entry["by_kind"][kind] = count
        if kind == "open":
            entry["reports_opened"] = reports
        else:
            entry["reveals"] += count
    return {"since": iso(since), "moderators": sorted(people.values(), key=lambda e: -e["reveals"])}


# ---------------------------------------------------------------------------- members


def advance(setting: WellbeingSetting, at: datetime) -> None:
    """Extend the activity session to ``at``, or start a new one after a long gap."""
    if (
        setting.last_active_at is None
        or setting.session_started_at is None
        or at - setting.last_active_at > SESSION_GAP
    ):
        setting.session_started_at = at
    setting.last_active_at = max(at, setting.last_active_at or at)


def active_minutes(setting: WellbeingSetting | None, at: datetime) -> int:
    if setting is None or setting.session_started_at is None or setting.last_active_at is None:
        return 0
    if at - setting.last_active_at > SESSION_GAP:
        return 0
    return int((setting.last_active_at - setting.session_started_at).total_seconds() // 60)


def is_quiet(setting: WellbeingSetting | None, at: datetime) -> bool:
    return setting is not None and setting.quiet_mode and (setting.quiet_until is None or at < setting.quiet_until)


async def _setting(session: AsyncSession, account_id: int, at: datetime) -> WellbeingSetting:
    setting = await session.get(WellbeingSetting, account_id)
    if setting is None:
        setting = WellbeingSetting(account_id=account_id, quiet_mode=False, updated_at=at)
        session.add(setting)
    return setting


def render(setting: WellbeingSetting | None, at: datetime) -> dict[str, Any]:
    minutes = active_minutes(setting, at)
    current = setting is not None and setting.last_active_at is not None and at - setting.last_active_at <= SESSION_GAP
    reminder = setting.break_reminder_minutes if setting is not None else None
    return {
        "break_reminder_minutes": reminder,
        "quiet_mode": is_quiet(setting, at),
        "quiet_until": iso(setting.quiet_until) if setting is not None and setting.quiet_mode else None,
        "active_minutes": minutes,
        "session_started_at": iso(setting.session_started_at) if current and setting is not None else None,
        "take_a_break": reminder is not None and minutes >= reminder,
    }


async def touch(session: AsyncSession, account_id: int, at: datetime) -> WellbeingSetting:
    """Record activity now; release held notifications if quiet mode has run out."""
    setting = await _setting(session, account_id, at)
    advance(setting, at)
    if setting.quiet_mode and not is_quiet(setting, at):
        await end_quiet(session, setting)
    return setting


async def update(
    session: AsyncSession,
    account_id: int,
    *,
    break_reminder_minutes: int | str | None,
    quiet_mode: bool | None,
    quiet_until: datetime | str | None,
    at: datetime,
) -> WellbeingSetting:
    """Change the settings given (``"keep"``: unchanged)."""
    setting = await _setting(session, account_id, at)
    if break_reminder_minutes != "keep":
        if break_reminder_minutes is not None and not (
            isinstance(break_reminder_minutes, int) and MIN_REMINDER <= break_reminder_minutes <= MAX_REMINDER
        ):
            raise Unprocessable(f"break_reminder_minutes: must be null or from {MIN_REMINDER} to {MAX_REMINDER}")
        setting.break_reminder_minutes = break_reminder_minutes
    if quiet_until != "keep":
        if quiet_until is not None and (not isinstance(quiet_until, datetime) or quiet_until <= at):
            raise Unprocessable("quiet_until: must be a time in the future")
        setting.quiet_until = quiet_until
    if quiet_mode is not None:
        setting.quiet_mode = quiet_mode
        if not quiet_mode:
            await end_quiet(session, setting)
    setting.updated_at = at
    return setting


async def hold_if_quiet(
    session: AsyncSession, *, recipient_id: int, from_account_id: int, type: str, status_id: int | None
) -> bool:
    """Hold a new notification back when its recipient is in quiet mode (True: held)."""
    setting = await session.get(WellbeingSetting, recipient_id)
    if setting is None or not setting.quiet_mode:
        return False
    moment = now()
    if not is_quiet(setting, moment):
        await end_quiet(session, setting)
        return False
    session.add(
        QuietNotification(
            id=new_id(),
            account_id=recipient_id,
            from_account_id=from_account_id,
            type=type,
            status_id=status_id,
            created_at=moment,
        )
    )
    return True


async def end_quiet(session: AsyncSession, setting: WellbeingSetting) -> int:
    """Leave quiet mode and turn held notifications into notifications; how many."""
    setting.quiet_mode = False
    setting.quiet_until = None
    held: Sequence[QuietNotification] = list(
        await session.scalars(
            select(QuietNotification)
            .where(QuietNotification.account_id == setting.account_id)
            .order_by(QuietNotification.id)
        )
    )
    for item in held:
        session.add(
            Notification(
                id=new_id(),
                account_id=item.account_id,
                from_account_id=item.from_account_id,
                type=item.type,
                status_id=item.status_id,
                created_at=item.created_at,
            )
        )
    if held:
        await session.flush()
        await session.execute(delete(QuietNotification).where(QuietNotification.id.in_([h.id for h in held])))
    return len(held)


def due_for_recording(account_id: int) -> bool:
    """At most one activity write a minute per account (and process)."""
    clock = time.monotonic()
    last = _last_recorded.get(account_id)
    if last is not None and clock - last < RECORD_EVERY_SECONDS:
        return False
    if len(_last_recorded) > 100_000:
        _last_recorded.clear()
    _last_recorded[account_id] = clock
    return True
