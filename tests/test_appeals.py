"""Strikes and appeals: one appeal per strike within 20 days, approve (overrule and undo) or
reject, the member told of the decision (research/moderation.md §6.c test 26)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import async_sessionmaker

from server.models import Account, AccountWarning, Appeal, AuditEntry, Status
from server.web import now

STAFF = "read write follow admin:read admin:write"


async def rows(engine: Any, model: Any, *where: Any) -> list[Any]:
    async with async_sessionmaker(engine)() as session:
        return list(await session.scalars(select(model).where(*where)))


async def strike(client: Any, mod: Any, member: Any, kind: str) -> str:
    response = await client.post(
        f"/api/v1/admin/accounts/{member.account_id}/action", json={"type": kind, "text": "t"}, headers=mod.headers
    )
    assert response.status == 200, await response.text()
    strikes = await (await client.get("/api/v1/hearthside/strikes", headers=member.headers)).json()
    return str(strikes[0]["id"])


async def appeal(client: Any, member: Any, strike_id: str, text: str = "I disagree") -> Any:
    return await client.post(
        f"/api/v1/hearthside/strikes/{strike_id}/appeal", json={"text": text}, headers=member.headers
    )


async def test_appeals__once_per_strike_then_approved_undoes_the_action(
    client: Any, make_user: Any, engine: Any
) -> None:
    mod = await make_user("mod", role="moderator", scopes=STAFF)
    member = await make_user("member")
    strike_id = await strike(client, mod, member, "silence")
    response = await appeal(client, member, strike_id)
    assert response.status == 200, await response.text()
    assert (await response.json())["state"] == "pending"
    second = await appeal(client, member, strike_id, "again")
    assert second.status == 422 and (await second.json())["error"].startswith("account_warning_id")
    assert len(await rows(engine, Appeal)) == 1
    pending = await (await client.get("/api/v1/hearthside/admin/appeals?state=pending", headers=mod.headers)).json()
    assert [a["account_warning"]["id"] for a in pending] == [strike_id]
    assert (await client.get("/api/v1/hearthside/admin/appeals", headers=member.headers)).status == 403
    appeal_id = pending[0]["id"]
    response = await client.post(f"/api/v1/hearthside/admin/appeals/{appeal_id}/approve", headers=mod.headers)
    assert response.status == 200, await response.text()
    assert (await response.json())["state"] == "approved"
    [account] = await rows(engine, Account, Account.id == member.account_id)
    assert account.silenced_at is None
    [warning] = await rows(engine, AccountWarning)
    assert warning.overruled_at is not None
    again = await client.post(f"/api/v1/hearthside/admin/appeals/{appeal_id}/reject", headers=mod.headers)
    assert again.status == 422
    notes = await (await client.get("/api/v1/notifications", headers=member.headers)).json()
    assert [n["type"] for n in notes] == ["hearthside.appeal_decided", "moderation_warning"]
    decided = notes[0]["moderation_warning"]
    assert decided["id"] == strike_id and decided["appeal"]["state"] == "approved" and decided["overruled_at"]
    strikes = await (await client.get("/api/v1/hearthside/strikes", headers=member.headers)).json()
    assert strikes[0]["appeal"]["state"] == "approved" and strikes[0]["overruled_at"]
    [entry] = await rows(engine, AuditEntry, AuditEntry.action == "appeal.approve")
    assert entry.actor_account_id == mod.account_id and entry.details["undone"] == "silence"


async def test_appeals__rejected_keeps_the_action(client: Any, make_user: Any, engine: Any) -> None:
    mod = await make_user("mod", role="moderator", scopes=STAFF)
    member = await make_user("member")
    strike_id = await strike(client, mod, member, "sensitive")
    await appeal(client, member, strike_id)
    [row] = await rows(engine, Appeal)
    response = await client.post(f"/api/v1/hearthside/admin/appeals/{row.id}/reject", headers=mod.headers)
    assert (await response.json())["state"] == "rejected"
    [account] = await rows(engine, Account, Account.id == member.account_id)
    assert account.sensitized_at is not None
    assert [e.action for e in await rows(engine, AuditEntry, AuditEntry.action.like("appeal.%"))] == ["appeal.reject"]


async def test_appeals__window_ownership_and_input(client: Any, make_user: Any, engine: Any) -> None:
    mod = await make_user("mod", role="moderator", scopes=STAFF)
    member = await make_user("member")
    other = await make_user("other")
    strike_id = await strike(client, mod, member, "none")
    assert (await appeal(client, other, strike_id)).status == 404
    response = await client.post(f"/api/v1/hearthside/strikes/{strike_id}/appeal", json={}, headers=member.headers)
    assert response.status == 422 and (await response.json())["error"].startswith("text")
    async with async_sessionmaker(engine)() as session:
        await session.execute(update(AccountWarning).values(created_at=now() - timedelta(days=21)))
        await session.commit()
    late = await appeal(client, member, strike_id)
    assert late.status == 422 and "20 days" in (await late.json())["error"]
    assert await rows(engine, Appeal) == []


async def test_appeals__removed_post_stays_removed(client: Any, make_user: Any, engine: Any) -> None:
    mod = await make_user("mod", role="moderator", scopes=STAFF)
    member = await make_user("member")
    response = await client.post("/api/v1/statuses", json={"status": "x"}, headers=member.headers)
    status_id = (await response.json())["id"]
    await client.post(
        f"/api/v1/hearthside/admin/statuses/{status_id}/remove", json={"reason": "r"}, headers=mod.headers
    )
    strikes = await (await client.get("/api/v1/hearthside/strikes", headers=member.headers)).json()
    await appeal(client, member, strikes[0]["id"])
    [row] = await rows(engine, Appeal)
    response = await client.post(f"/api/v1/hearthside/admin/appeals/{row.id}/approve", headers=mod.headers)
    assert (await response.json())["account_warning"]["overruled_at"]
    [status] = await rows(engine, Status, Status.id == int(status_id))
    assert status.deleted_at is not None
