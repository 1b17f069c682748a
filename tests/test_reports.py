"""Member reports, the staff queue (Mastodon's admin report API), moderator notes, server rules
and the audit log (research/moderation.md §6.c tests 25 and 26; docs/moderation.md)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import async_sessionmaker

from server.models import AuditEntry, ModerationNote, Notification, Report

STAFF = "read write follow admin:read admin:write"


async def count(engine: Any, model: Any, *where: Any) -> int:
    async with async_sessionmaker(engine)() as session:
        return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def post(client: Any, user: Any, text: str = "a post") -> str:
    response = await client.post("/api/v1/statuses", json={"status": text}, headers=user.headers)
    assert response.status == 200, await response.text()
    return str((await response.json())["id"])


async def setup(client: Any, make_user: Any) -> tuple[Any, Any, Any, Any]:
    reporter = await make_user("reporter")
    target = await make_user("target")
    mod = await make_user("mod", role="moderator", scopes=STAFF)
    admin = await make_user("boss", role="admin", scopes=STAFF)
    return reporter, target, mod, admin


async def add_rule(client: Any, admin: Any, text: str = "Be kind") -> str:
    response = await client.post(
        "/api/v1/hearthside/admin/rules", json={"text": text, "hint": "h"}, headers=admin.headers
    )
    assert response.status == 200, await response.text()
    return str((await response.json())["id"])


async def file(client: Any, reporter: Any, target: Any, **extra: Any) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/reports", json={"account_id": str(target.account_id), **extra}, headers=reporter.headers
    )
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def test_reports__member_files_a_report_staff_are_notified(client: Any, make_user: Any, engine: Any) -> None:
    reporter, target, mod, admin = await setup(client, make_user)
    rule_id = await add_rule(client, admin)
    status_id = await post(client, target, "offending")
    body = await file(
        client, reporter, target, status_ids=[status_id], comment="please look", category="violation",
        rule_ids=[rule_id], forward=True,
    )  # fmt: skip
    assert body["category"] == "violation" and body["rule_ids"] == [rule_id]
    assert body["status_ids"] == [status_id] and body["action_taken"] is False
    assert body["target_account"]["id"] == str(target.account_id)
    # each staff member gets Mastodon's admin.report notification
    for staff in (mod, admin):
        notes = await (await client.get("/api/v1/notifications", headers=staff.headers)).json()
        assert [n["type"] for n in notes] == ["admin.report"]
        assert notes[0]["report"]["id"] == body["id"] and notes[0]["report"]["comment"] == "please look"
    # a local target: nothing to forward, and nothing was queued
    report = (await (await client.get("/api/v1/admin/reports", headers=mod.headers)).json())[0]
    assert report["forward_requested"] is False and report["forwarded"] is False
    assert report["statuses"][0]["id"] == status_id and report["rules"][0]["text"] == "Be kind"
    assert report["account"]["id"] == str(reporter.account_id)


async def test_reports__bad_input_names_the_field_and_writes_nothing(client: Any, make_user: Any, engine: Any) -> None:
    reporter, target, _mod, admin = await setup(client, make_user)
    other = await make_user("other")
    others_post = await post(client, other)
    rule_id = await add_rule(client, admin)
    cases = [
        ({"category": "bogus"}, "category"),
        ({"category": "e2ee_message"}, "category"),  # Hearthside's, for revealed encrypted messages only
        ({"category": "violation"}, "rule_ids"),
        ({"category": "violation", "rule_ids": ["999"]}, "rule_ids"),
        ({"category": "spam", "rule_ids": [rule_id]}, "rule_ids"),
        ({"status_ids": [others_post]}, "status_ids"),
        ({"forward_to_domains": ["x.example"]}, "forward_to_domains"),
        ({"comment": "x" * 1001}, "comment"),
    ]
    for extra, field in cases:
        response = await client.post(
            "/api/v1/reports", json={"account_id": str(target.account_id), **extra}, headers=reporter.headers
        )
        assert response.status == 422, (extra, await response.text())
        assert (await response.json())["error"].startswith(field), extra
    response = await client.post(
        "/api/v1/reports", json={"account_id": str(reporter.account_id)}, headers=reporter.headers
    )
    assert response.status == 422
    assert (await client.post("/api/v1/reports", json={"account_id": "123"}, headers=reporter.headers)).status == 404
    assert await count(engine, Report) == 0
    assert await count(engine, Notification) == 0


async def test_reports__reporter_sees_outcome_never_notes(client: Any, make_user: Any, engine: Any) -> None:
    """§6.c test 25."""
    reporter, target, mod, _admin = await setup(client, make_user)
    report_id = (await file(client, reporter, target, comment="spam!", category="spam"))["id"]
    mine = await (await client.get("/api/v1/hearthside/reports", headers=reporter.headers)).json()
    assert [(r["id"], r["outcome"]) for r in mine] == [(report_id, "received")]
    # staff work on it: assign, a private note, then a warning tied to the report
    base = f"/api/v1/admin/reports/{report_id}"
    assigned = await (await client.post(base + "/assign_to_self", headers=mod.headers)).json()
    assert assigned["assigned_account"]["id"] == str(mod.account_id)
    secret = "the reporter is probably right, private"
    response = await client.post(
        f"/api/v1/hearthside/admin/reports/{report_id}/notes", json={"content": secret}, headers=mod.headers
    )
    assert response.status == 200
    response = await client.post(
        f"/api/v1/admin/accounts/{target.account_id}/action",
        json={"type": "none", "report_id": report_id, "text": "private action text"},
        headers=mod.headers,
    )
    assert response.status == 200, await response.text()
    shown = await (await client.get(f"/api/v1/hearthside/reports/{report_id}", headers=reporter.headers)).json()
    assert shown["outcome"] == "actioned"
    text = str(shown) + str(await (await client.get("/api/v1/hearthside/reports", headers=reporter.headers)).json())
    assert secret not in text and "private action text" not in text and "assigned" not in text
    notes = await (await client.get("/api/v1/notifications", headers=reporter.headers)).json()
    assert [n["type"] for n in notes] == ["hearthside.report_resolved"]
    assert notes[0]["report"]["outcome"] == "actioned" and notes[0]["report"]["id"] == report_id
    assert secret not in str(notes) and "private action text" not in str(notes)
    # another member cannot see it, nor the notes
    assert (await client.get(f"/api/v1/hearthside/reports/{report_id}", headers=target.headers)).status == 404
    response = await client.get(f"/api/v1/hearthside/admin/reports/{report_id}/notes", headers=reporter.headers)
    assert response.status == 403
    # a second report, declined
    second = (await file(client, reporter, target, comment="again"))["id"]
    resolved = await (await client.post(f"/api/v1/admin/reports/{second}/resolve", headers=mod.headers)).json()
    assert resolved["action_taken"] is True and resolved["outcome"] == "declined"
    shown = await (await client.get(f"/api/v1/hearthside/reports/{second}", headers=reporter.headers)).json()
    assert shown["outcome"] == "declined"
    assert (await client.post(f"/api/v1/admin/reports/{second}/resolve", headers=mod.headers)).status == 422
    reopened = await (await client.post(f"/api/v1/admin/reports/{second}/reopen", headers=mod.headers)).json()
    assert reopened["action_taken"] is False
    shown = await (await client.get(f"/api/v1/hearthside/reports/{second}", headers=reporter.headers)).json()
    assert shown["outcome"] == "received"


async def test_reports__queue_filters_update_and_unassign(client: Any, make_user: Any, engine: Any) -> None:
    reporter, target, mod, admin = await setup(client, make_user)
    other = await make_user("other")
    rule_id = await add_rule(client, admin)
    first = (await file(client, reporter, target))["id"]
    second = (await file(client, other, target))["id"]
    await client.post(f"/api/v1/admin/reports/{first}/resolve", headers=mod.headers)
    open_ = await (await client.get("/api/v1/admin/reports", headers=mod.headers)).json()
    assert [r["id"] for r in open_] == [second]
    done = await (await client.get("/api/v1/admin/reports?resolved=true", headers=mod.headers)).json()
    assert [r["id"] for r in done] == [first]
    by = await (await client.get(f"/api/v1/admin/reports?account_id={other.account_id}", headers=mod.headers)).json()
    assert [r["id"] for r in by] == [second]
    response = await client.put(
        f"/api/v1/admin/reports/{second}", json={"category": "violation", "rule_ids": [rule_id]}, headers=mod.headers
    )
    assert (await response.json())["rules"][0]["id"] == rule_id
    response = await client.put(f"/api/v1/admin/reports/{second}", json={"category": "nope"}, headers=mod.headers)
    assert response.status == 422 and (await response.json())["error"].startswith("category")
    await client.post(f"/api/v1/admin/reports/{second}/assign_to_self", headers=mod.headers)
    unassigned = await (await client.post(f"/api/v1/admin/reports/{second}/unassign", headers=mod.headers)).json()
    assert unassigned["assigned_account"] is None
    # members and tokens without the scope are refused
    assert (await client.get("/api/v1/admin/reports", headers=reporter.headers)).status == 403
    limited = await make_user("limited", role="moderator", scopes="read")
    assert (await client.post(f"/api/v1/admin/reports/{second}/resolve", headers=limited.headers)).status == 403
    actions = [e.action for e in await rows(engine, AuditEntry)]
    assert {"report.resolve", "report.update", "report.assign", "report.unassign"} <= set(actions)


async def rows(engine: Any, model: Any, *where: Any) -> list[Any]:
    async with async_sessionmaker(engine)() as session:
        return list(await session.scalars(select(model).where(*where)))


async def test_notes__staff_only_own_deletion_audit_without_text(client: Any, make_user: Any, engine: Any) -> None:
    reporter, target, mod, _admin = await setup(client, make_user)
    mod2 = await make_user("mod2", role="moderator", scopes=STAFF)
    report_id = (await file(client, reporter, target))["id"]
    url = f"/api/v1/hearthside/admin/reports/{report_id}/notes"
    note = await (await client.post(url, json={"content": "secret words"}, headers=mod.headers)).json()
    assert (await client.post(url, json={"content": "  "}, headers=mod.headers)).status == 422
    acct_url = f"/api/v1/hearthside/admin/accounts/{target.account_id}/notes"
    await client.post(acct_url, json={"content": "account note"}, headers=mod.headers)
    assert [n["content"] for n in await (await client.get(acct_url, headers=mod2.headers)).json()] == ["account note"]
    assert [n["content"] for n in await (await client.get(url, headers=mod2.headers)).json()] == ["secret words"]
    assert (await client.post(url, json={"content": "x"}, headers=reporter.headers)).status == 403
    assert (await client.delete(f"/api/v1/hearthside/admin/notes/{note['id']}", headers=mod2.headers)).status == 403
    assert (await client.delete(f"/api/v1/hearthside/admin/notes/{note['id']}", headers=mod.headers)).status == 200
    assert await count(engine, ModerationNote) == 1
    entries = await rows(engine, AuditEntry, AuditEntry.action.in_(("note.create", "note.delete")))
    assert len(entries) == 3
    assert all("secret" not in str(e.details) + e.reason for e in entries)


async def test_rules__crud_and_instance_documents(client: Any, make_user: Any, engine: Any) -> None:
    _reporter, _target, mod, admin = await setup(client, make_user)
    first = await add_rule(client, admin, "No harassment")
    response = await client.post(
        "/api/v1/hearthside/admin/rules", json={"text": "No spam", "position": 0}, headers=admin.headers
    )
    second = (await response.json())["id"]
    await client.put(
        f"/api/v1/hearthside/admin/rules/{first}", json={"position": 5, "hint": "none"}, headers=admin.headers
    )
    rules = await (await client.get("/api/v1/instance/rules")).json()
    assert rules == [
        {"id": second, "text": "No spam", "hint": "", "translations": {}},
        {"id": first, "text": "No harassment", "hint": "none", "translations": {}},
    ]
    assert (await (await client.get("/api/v1/instance")).json())["rules"] == rules
    assert (await (await client.get("/api/v2/instance")).json())["rules"] == rules
    assert (await client.post("/api/v1/hearthside/admin/rules", json={}, headers=admin.headers)).status == 422
    member = await make_user("member")
    assert (
        await client.post("/api/v1/hearthside/admin/rules", json={"text": "x"}, headers=member.headers)
    ).status == 403
    assert (await client.delete(f"/api/v1/hearthside/admin/rules/{second}", headers=mod.headers)).status == 200
    assert [r["id"] for r in await (await client.get("/api/v1/instance/rules")).json()] == [first]
    assert (
        await client.put(f"/api/v1/hearthside/admin/rules/{second}", json={"text": "y"}, headers=admin.headers)
    ).status == 404
    actions = [e.action for e in await rows(engine, AuditEntry)]
    assert actions.count("rule.create") == 2 and "rule.update" in actions and "rule.delete" in actions


async def test_audit__lists_every_entry_newest_first_with_filters(client: Any, make_user: Any, engine: Any) -> None:
    """§6.c test 26 (local part): actor, subject, action, time; others' entries too."""
    reporter, target, mod, admin = await setup(client, make_user)
    await client.post(
        "/api/v1/admin/domain_blocks", json={"domain": "bad.example", "severity": "suspend"}, headers=admin.headers
    )
    report_id = (await file(client, reporter, target))["id"]
    await client.post(f"/api/v1/admin/reports/{report_id}/resolve", headers=mod.headers)
    await client.post(
        f"/api/v1/admin/accounts/{target.account_id}/action",
        json={"type": "silence", "text": "why"},
        headers=mod.headers,
    )
    log = await (await client.get("/api/v1/hearthside/admin/audit", headers=mod.headers)).json()
    assert [e["action"] for e in log] == ["account.silence", "report.resolve", "domain_block.create"]
    silence = log[0]
    assert silence["account_id"] == str(mod.account_id) and silence["target_type"] == "account"
    assert silence["target"] == str(target.account_id) and silence["reason"] == "why" and silence["source"] == "api"
    assert silence["created_at"]
    filtered = await (await client.get("/api/v1/hearthside/admin/audit?target_type=report", headers=mod.headers)).json()
    assert [e["target"] for e in filtered] == [report_id]
    by_admin = await (
        await client.get(f"/api/v1/hearthside/admin/audit?account_id={admin.account_id}", headers=mod.headers)
    ).json()
    assert [e["action"] for e in by_admin] == ["domain_block.create"]
    page = await client.get("/api/v1/hearthside/admin/audit?limit=1", headers=mod.headers)
    assert len(await page.json()) == 1 and "next" in page.headers["Link"]
    assert (await client.get("/api/v1/hearthside/admin/audit", headers=reporter.headers)).status == 403


async def test_reports__staff_see_reported_private_and_deleted_posts(client: Any, make_user: Any) -> None:
    reporter, target, mod, _admin = await setup(client, make_user)
    assert (await client.post(f"/api/v1/accounts/{target.account_id}/follow", headers=reporter.headers)).status == 200
    response = await client.post(
        "/api/v1/statuses", json={"status": "followers only", "visibility": "private"}, headers=target.headers
    )
    private_id = str((await response.json())["id"])
    deleted_id = await post(client, target, "soon deleted")
    report = await file(client, reporter, target, status_ids=[private_id, deleted_id], comment="both")
    assert (await client.delete(f"/api/v1/statuses/{deleted_id}", headers=target.headers)).status == 200
    shown = await (await client.get(f"/api/v1/admin/reports/{report['id']}", headers=mod.headers)).json()
    assert sorted(s["id"] for s in shown["statuses"]) == sorted([private_id, deleted_id])
