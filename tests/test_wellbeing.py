"""Wellbeing (issue 6 items 7 and 8; research/moderation.md §6.c test 32): reported media
blurred, greyscale and muted by default with separate, audited reveals per moderator and
weekly exposure counts; members' break reminders and quiet mode."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select, update

from server.db import make_sessionmaker
from server.models import AuditEntry, WellbeingSetting
from server.web import now

STAFF = "read write follow admin:read admin:write"
API = "/api/v1"
REVEAL = "/api/v1/hearthside/admin/media_reveal"
EXPOSURE = "/api/v1/hearthside/admin/exposure"
MINE = "/api/v1/hearthside/wellbeing"
HIDDEN = {"blur": True, "greyscale": True, "muted": True}


async def _post(client: Any, user: Any, text: str) -> str:
    response = await client.post(f"{API}/statuses", json={"status": text}, headers=user.headers)
    assert response.status == 200, await response.text()
    return str((await response.json())["id"])


async def _reported(client: Any, make_user: Any) -> tuple[Any, Any, Any, str, str]:
    reporter = await make_user("reporter")
    target = await make_user("target")
    mod = await make_user("mod", role="moderator", scopes=STAFF)
    admin = await make_user("boss", role="admin", scopes=STAFF)
    status_id = await _post(client, target, "a picture post")
    response = await client.post(
        f"{API}/reports",
        json={"account_id": str(target.account_id), "status_ids": [status_id], "comment": "graphic"},
        headers=reporter.headers,
    )
    assert response.status == 200, await response.text()
    return mod, admin, reporter, str((await response.json())["id"]), status_id


async def _report(client: Any, user: Any, report_id: str) -> dict[str, Any]:
    response = await client.get(f"{API}/admin/reports/{report_id}", headers=user.headers)
    assert response.status == 200, await response.text()
    return dict(await response.json())


async def test_media_display__reported_posts_are_blurred_greyscale_and_muted_by_default(
    client: Any, make_user: Any
) -> None:
    mod, admin, _reporter, report_id, status_id = await _reported(client, make_user)
    for staff in (mod, admin):
        report = await _report(client, staff, report_id)
        assert [s["id"] for s in report["statuses"]] == [status_id]
        assert report["statuses"][0]["hearthside_media_display"] == HIDDEN
    listed = await (await client.get(f"{API}/admin/reports", headers=mod.headers)).json()
    assert listed[0]["statuses"][0]["hearthside_media_display"] == HIDDEN


async def test_media_reveal__separate_actions_per_moderator_and_audited(
    client: Any, make_user: Any, engine: Any
) -> None:
    mod, admin, _reporter, report_id, status_id = await _reported(client, make_user)
    body = {"report_id": report_id, "status_id": status_id, "reveal": "unblur"}
    response = await client.post(REVEAL, json=body, headers=mod.headers)
    assert response.status == 200, await response.text()
    assert (await response.json())["hearthside_media_display"] == {"blur": False, "greyscale": True, "muted": True}
    shown = (await _report(client, mod, report_id))["statuses"][0]["hearthside_media_display"]
    assert shown == {"blur": False, "greyscale": True, "muted": True}  # unblurring is not colouring
    # Another moderator's view is unchanged.
    assert (await _report(client, admin, report_id))["statuses"][0]["hearthside_media_display"] == HIDDEN
    await client.post(REVEAL, json={**body, "reveal": "colour"}, headers=mod.headers)
    await client.post(REVEAL, json={**body, "reveal": "unmute"}, headers=mod.headers)
    shown = (await _report(client, mod, report_id))["statuses"][0]["hearthside_media_display"]
    assert shown == {"blur": False, "greyscale": False, "muted": False}
    async with make_sessionmaker(engine)() as session:
        actions = sorted(
            (await session.scalars(select(AuditEntry.action).where(AuditEntry.action.like("media.%")))).all()
        )
    assert actions == ["media.colour", "media.unblur", "media.unmute"]


async def test_media_reveal__refuses_unknown_actions_foreign_posts_and_members(client: Any, make_user: Any) -> None:
    mod, _admin, reporter, report_id, status_id = await _reported(client, make_user)
    other = await _post(client, reporter, "not reported")
    cases = [
        ({"report_id": report_id, "status_id": status_id, "reveal": "everything"}, "reveal"),
        ({"report_id": report_id, "status_id": other, "reveal": "unblur"}, "status_id"),
        ({"report_id": "999", "status_id": status_id, "reveal": "unblur"}, "report_id"),
        ({"status_id": status_id, "reveal": "unblur"}, "report_id"),
    ]
    for body, field in cases:
        response = await client.post(REVEAL, json=body, headers=mod.headers)
        assert response.status == 422, body
        assert (await response.json())["error"].startswith(field)
    member = await client.post(
        REVEAL, json={"report_id": report_id, "status_id": status_id, "reveal": "unblur"}, headers=reporter.headers
    )
    assert member.status == 403


async def test_exposure__counts_opened_reports_and_reveals_this_week(client: Any, make_user: Any) -> None:
    mod, admin, reporter, report_id, status_id = await _reported(client, make_user)
    await _report(client, mod, report_id)
    await _report(client, mod, report_id)  # the same report twice: one report opened
    await client.post(
        REVEAL, json={"report_id": report_id, "status_id": status_id, "reveal": "unblur"}, headers=mod.headers
    )
    await _report(client, admin, report_id)
    own = await (await client.get(EXPOSURE, headers=mod.headers)).json()
    assert [m["username"] for m in own["moderators"]] == ["mod"]  # a moderator sees their own only
    assert own["moderators"][0]["reports_opened"] == 1 and own["moderators"][0]["reveals"] == 1
    everyone = await (await client.get(EXPOSURE, headers=admin.headers)).json()
    counts = {m["username"]: (m["reports_opened"], m["reveals"]) for m in everyone["moderators"]}
    assert counts == {"mod": (1, 1), "boss": (1, 0)}
    assert (await client.get(EXPOSURE, headers=reporter.headers)).status == 403


async def _set_activity(engine: Any, account_id: int, *, started: timedelta, last: timedelta) -> None:
    moment = now()
    async with make_sessionmaker(engine)() as session:
        await session.execute(
            update(WellbeingSetting)
            .where(WellbeingSetting.account_id == account_id)
            .values(session_started_at=moment - started, last_active_at=moment - last)
        )
        await session.commit()


async def test_break_reminder__due_after_the_chosen_time_and_reset_by_a_long_gap(
    client: Any, make_user: Any, engine: Any
) -> None:
    member = await make_user("member")
    for bad in (10, 481, "soon"):
        response = await client.put(MINE, json={"break_reminder_minutes": bad}, headers=member.headers)
        assert response.status == 422, bad
        assert (await response.json())["error"].startswith("break_reminder_minutes")
    response = await client.put(MINE, json={"break_reminder_minutes": 15}, headers=member.headers)
    assert response.status == 200
    state = await response.json()
    assert state["break_reminder_minutes"] == 15 and state["take_a_break"] is False
    # Twenty minutes of requests with no long gap: time for a break.
    await _set_activity(engine, member.account_id, started=timedelta(minutes=20), last=timedelta(minutes=1))
    state = await (await client.get(MINE, headers=member.headers)).json()
    assert state["take_a_break"] is True and state["active_minutes"] >= 19
    # An eleven-minute gap ends the session.
    await _set_activity(engine, member.account_id, started=timedelta(minutes=40), last=timedelta(minutes=11))
    state = await (await client.get(MINE, headers=member.headers)).json()
    assert state["take_a_break"] is False and state["active_minutes"] == 0
    # No reminder chosen: never a reminder.
    await client.put(MINE, json={"break_reminder_minutes": None}, headers=member.headers)
    await _set_activity(engine, member.account_id, started=timedelta(minutes=300), last=timedelta(minutes=1))
    state = await (await client.get(MINE, headers=member.headers)).json()
    assert state["break_reminder_minutes"] is None and state["take_a_break"] is False


async def test_break_reminder__authenticated_requests_are_recorded_as_activity(
    client: Any, make_user: Any, engine: Any
) -> None:
    member = await make_user("walker")
    assert (await client.get(f"{API}/timelines/home", headers=member.headers)).status == 200
    async with make_sessionmaker(engine)() as session:
        setting = await session.get(WellbeingSetting, member.account_id)
    assert setting is not None and setting.last_active_at is not None
    assert now() - setting.last_active_at < timedelta(minutes=1)
    anonymous = await make_user("other")
    await client.get(f"{API}/timelines/public")  # no token: nobody's activity
    async with make_sessionmaker(engine)() as session:
        assert await session.get(WellbeingSetting, anonymous.account_id) is None


async def _notifications(client: Any, user: Any) -> tuple[list[Any], int]:
    listed = await (await client.get(f"{API}/notifications", headers=user.headers)).json()
    count = (await (await client.get(f"{API}/notifications/unread_count", headers=user.headers)).json())["count"]
    return listed, count


async def test_quiet_mode__holds_notifications_until_it_ends(client: Any, make_user: Any, engine: Any) -> None:
    quiet = await make_user("quiet")
    friend = await make_user("friend")
    await _post(client, friend, "@quiet before quiet mode")
    response = await client.put(MINE, json={"quiet_mode": True}, headers=quiet.headers)
    assert response.status == 200 and (await response.json())["quiet_mode"] is True
    await _post(client, friend, "@quiet are you there?")
    listed, count = await _notifications(client, quiet)
    assert len(listed) == 1 and count == 1  # only the one from before
    response = await client.put(MINE, json={"quiet_mode": False}, headers=quiet.headers)
    assert (await response.json())["quiet_mode"] is False
    listed, count = await _notifications(client, quiet)
    assert len(listed) == 2 and count == 2
    assert listed[0]["status"]["content"].endswith("are you there?</p>")


async def test_quiet_mode__ends_by_itself_at_quiet_until(client: Any, make_user: Any, engine: Any) -> None:
    quiet = await make_user("quiet")
    friend = await make_user("friend")
    until = (now() + timedelta(hours=1)).isoformat()
    response = await client.put(MINE, json={"quiet_mode": True, "quiet_until": until}, headers=quiet.headers)
    assert response.status == 200
    await _post(client, friend, "@quiet held")
    assert (await _notifications(client, quiet))[1] == 0
    async with make_sessionmaker(engine)() as session:
        await session.execute(
            update(WellbeingSetting)
            .where(WellbeingSetting.account_id == quiet.account_id)
            .values(quiet_until=now() - timedelta(minutes=1))
        )
        await session.commit()
    state = await (await client.get(MINE, headers=quiet.headers)).json()
    assert state["quiet_mode"] is False
    assert (await _notifications(client, quiet))[1] == 1
    past = await client.put(
        MINE, json={"quiet_mode": True, "quiet_until": "2000-01-01T00:00:00Z"}, headers=quiet.headers
    )
    assert past.status == 422 and (await past.json())["error"].startswith("quiet_until")
    naive = await client.put(MINE, json={"quiet_until": "2999-01-01T00:00:00"}, headers=quiet.headers)
    assert naive.status == 422
