"""Account actions (Mastodon's ``POST /api/v1/admin/accounts/:id/action`` and the "un-" actions),
strikes with ``moderation_warning`` notifications, post removal and group bans by staff."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker

from server.models import Account, AccountWarning, AuditEntry, Follow, OAuthToken, Status, User

STAFF = "read write follow admin:read admin:write"


async def rows(engine: Any, model: Any, *where: Any) -> list[Any]:
    async with async_sessionmaker(engine)() as session:
        return list(await session.scalars(select(model).where(*where)))


async def act(client: Any, mod: Any, target: Any, expect: int = 200, **params: Any) -> Any:
    response = await client.post(f"/api/v1/admin/accounts/{target.account_id}/action", json=params, headers=mod.headers)
    assert response.status == expect, await response.text()
    return await response.json()


async def admin_view(client: Any, mod: Any, target: Any) -> dict[str, Any]:
    body: dict[str, Any] = await (
        await client.get(f"/api/v1/admin/accounts/{target.account_id}", headers=mod.headers)
    ).json()
    return body


async def test_account_actions__each_type_sets_state_strikes_and_notifies(
    client: Any, make_user: Any, engine: Any
) -> None:
    mod = await make_user("mod", role="moderator", scopes=STAFF)
    member = await make_user("member")
    for kind, field in (("none", None), ("sensitive", "sensitized"), ("silence", "silenced"), ("disable", "disabled")):
        await act(
            client, mod, member, type=kind, text=f"because {kind}", warning_preset_id="7", send_email_notification=True
        )
        if field:
            assert (await admin_view(client, mod, member))[field] is True
    [account] = await rows(engine, Account, Account.id == member.account_id)
    assert account.silenced_at is not None and account.sensitized_at is not None
    listed = await (await client.get("/api/v1/admin/accounts?silenced=true", headers=mod.headers)).json()
    assert [a["id"] for a in listed] == [str(member.account_id)]
    listed = await (await client.get("/api/v1/admin/accounts?disabled=true", headers=mod.headers)).json()
    assert [a["id"] for a in listed] == [str(member.account_id)]
    # disable: every token of the member stopped working, without a suspension
    assert (await client.get("/api/v1/accounts/verify_credentials", headers=member.headers)).status == 401
    assert all(t.revoked_at is not None for t in await rows(engine, OAuthToken, OAuthToken.user_id == member.user_id))
    assert account.suspended_at is None
    warnings = await rows(engine, AccountWarning, AccountWarning.target_account_id == member.account_id)
    assert sorted(w.action for w in warnings) == ["disable", "none", "sensitive", "silence"]
    # undo each: no new strike, audit entries
    for verb, field in (("unsensitive", "sensitized"), ("unsilence", "silenced"), ("enable", "disabled")):
        response = await client.post(f"/api/v1/admin/accounts/{member.account_id}/{verb}", headers=mod.headers)
        assert response.status == 200, await response.text()
        assert (await response.json())[field] is False
        assert (
            await client.post(f"/api/v1/admin/accounts/{member.account_id}/{verb}", headers=mod.headers)
        ).status == 403
    assert len(await rows(engine, AccountWarning)) == 4
    actions = {e.action for e in await rows(engine, AuditEntry)}
    assert {"account.none", "account.silence", "account.unsilence", "account.enable", "account.unsensitive"} <= actions


async def test_account_actions__member_gets_moderation_warning_and_sees_strikes(client: Any, make_user: Any) -> None:
    mod = await make_user("mod", role="moderator", scopes=STAFF)
    member = await make_user("member")
    await act(client, mod, member, type="silence", text="please calm down")
    notes = await (await client.get("/api/v1/notifications", headers=member.headers)).json()
    assert [n["type"] for n in notes] == ["moderation_warning"]
    warning = notes[0]["moderation_warning"]  # Mastodon 4.3's shape
    assert (warning["action"], warning["text"], warning["appeal"]) == ("silence", "please calm down", None)
    assert warning["target_account"]["id"] == str(member.account_id)
    strikes = await (await client.get("/api/v1/hearthside/strikes", headers=member.headers)).json()
    assert len(strikes) == 1
    assert strikes[0]["action"] == "silence" and strikes[0]["text"] == "please calm down"
    assert strikes[0]["appeal"] is None and strikes[0]["target_account"]["id"] == str(member.account_id)


async def test_account_actions__suspend_and_unsuspend(client: Any, make_user: Any, engine: Any) -> None:
    mod = await make_user("mod", role="moderator", scopes=STAFF)
    member = await make_user("member")
    await act(client, mod, member, type="suspend")
    assert (await client.get("/api/v1/accounts/verify_credentials", headers=member.headers)).status == 403
    assert (await admin_view(client, mod, member))["suspended"] is True
    response = await client.post(f"/api/v1/admin/accounts/{member.account_id}/unsuspend", headers=mod.headers)
    assert (await response.json())["suspended"] is False
    assert (await client.get("/api/v1/accounts/verify_credentials", headers=member.headers)).status == 200


async def test_account_actions__refusals_write_nothing(client: Any, make_user: Any, engine: Any) -> None:
    mod = await make_user("mod", role="moderator", scopes=STAFF)
    mod2 = await make_user("mod2", role="moderator", scopes=STAFF)
    admin = await make_user("boss", role="admin", scopes=STAFF)
    member = await make_user("member")
    other = await make_user("other")
    await act(client, mod, mod, 403, type="silence")  # yourself
    await act(client, mod, admin, 403, type="silence")  # an admin
    await act(client, mod, mod2, 403, type="silence")  # a moderator, unless admin
    await act(client, member, other, 403, type="silence")  # members
    body = await act(client, mod, member, 422, type="explode")
    assert body["error"].startswith("type")
    response = await client.post("/api/v1/reports", json={"account_id": str(other.account_id)}, headers=member.headers)
    others_report = (await response.json())["id"]
    body = await act(client, mod, member, 422, type="silence", report_id=others_report)
    assert body["error"].startswith("report_id")
    assert await rows(engine, AccountWarning) == []
    assert [a for a in await rows(engine, Account) if a.silenced_at is not None] == []
    assert not [e for e in await rows(engine, AuditEntry) if e.action.startswith("account.")]
    await act(client, admin, mod2, type="silence")  # admins may act on moderators


async def test_account_actions__action_with_report_resolves_reports(client: Any, make_user: Any, engine: Any) -> None:
    mod = await make_user("mod", role="moderator", scopes=STAFF)
    reporter = await make_user("reporter")
    member = await make_user("member")
    ids = []
    for comment in ("one", "two"):
        response = await client.post(
            "/api/v1/reports", json={"account_id": str(member.account_id), "comment": comment}, headers=reporter.headers
        )
        ids.append((await response.json())["id"])
    await act(client, mod, member, type="sensitive", report_id=ids[0])
    for report_id in ids:  # Mastodon: an action other than a warning settles every open report
        report = await (await client.get(f"/api/v1/admin/reports/{report_id}", headers=mod.headers)).json()
        assert report["action_taken"] is True and report["outcome"] == "actioned"
        assert report["action_taken_by_account"]["id"] == str(mod.account_id)
    [warning] = await rows(engine, AccountWarning)
    assert warning.report_id == int(ids[0])


async def test_remove_post__deleted_like_the_authors_own_with_a_strike(
    client: Any, make_user: Any, engine: Any
) -> None:
    mod = await make_user("mod", role="moderator", scopes=STAFF)
    member = await make_user("member")
    response = await client.post("/api/v1/statuses", json={"status": "bad post"}, headers=member.headers)
    status_id = (await response.json())["id"]
    url = f"/api/v1/hearthside/admin/statuses/{status_id}/remove"
    assert (await client.post(url, json={"reason": "x"}, headers=member.headers)).status == 403
    response = await client.post(url, json={"reason": "hateful"}, headers=mod.headers)
    assert response.status == 200, await response.text()
    strike = await response.json()
    assert strike["action"] == "delete_statuses" and strike["status_ids"] == [status_id]
    assert (await client.get(f"/api/v1/statuses/{status_id}", headers=member.headers)).status == 404
    [status] = await rows(engine, Status, Status.id == int(status_id))
    assert status.deleted_at is not None
    assert (await client.post(url, json={"reason": "again"}, headers=mod.headers)).status == 404
    assert [e.action for e in await rows(engine, AuditEntry)] == ["status.remove"]


async def test_group_ban__uses_the_group_ban_with_a_strike(client: Any, make_user: Any, engine: Any) -> None:
    mod = await make_user("mod", role="moderator", scopes=STAFF)
    owner = await make_user("owner")
    member = await make_user("member")
    response = await client.post("/api/v1/hearthside/groups", json={"name": "circle"}, headers=owner.headers)
    group_id = (await response.json())["id"]
    await client.post(f"/api/v1/hearthside/groups/{group_id}/join", headers=member.headers)
    url = f"/api/v1/hearthside/admin/accounts/{member.account_id}/group_ban"
    response = await client.post(url, json={"group_id": "999"}, headers=mod.headers)
    assert response.status == 422 and (await response.json())["error"].startswith("group_id")
    assert (await client.post(url, json={}, headers=mod.headers)).status == 422
    response = await client.post(url, json={"group_id": group_id, "reason": "abuse"}, headers=mod.headers)
    assert response.status == 200, await response.text()
    assert (await response.json())["action"] == "ban_from_group"
    bans = await (await client.get(f"/api/v1/hearthside/groups/{group_id}/bans", headers=owner.headers)).json()
    assert [b["account"]["id"] for b in bans] == [str(member.account_id)]
    response = await client.post(f"/api/v1/hearthside/groups/{group_id}/join", headers=member.headers)
    assert response.status == 403
    [user] = await rows(engine, User, User.id == member.user_id)
    assert not user.disabled


async def test_account_actions__remote_suspension_goes_to_the_partner_feed_only(
    client: Any, make_user: Any, engine: Any
) -> None:
    from server.ids import new_id
    from server.models import FeedEntry
    from server.web import now

    mod = await make_user("mod", role="moderator", scopes=STAFF)
    moment = now()
    async with async_sessionmaker(engine)() as session:
        troll = Account(
            id=new_id(), username="troll", username_lower="troll", domain="bad.example",
            uri="https://bad.example/users/troll", created_at=moment, updated_at=moment,
        )  # fmt: skip
        session.add(troll)
        troll_id, troll_uri = troll.id, troll.uri
        await session.commit()

    class Target:
        account_id = troll_id

    member = await make_user("member")
    async with async_sessionmaker(engine)() as session:
        session.add(Follow(id=new_id(), account_id=troll_id, target_account_id=member.account_id, created_at=moment))
        await session.commit()
    await act(client, mod, Target, type="suspend", text="names the reporter: never published")
    assert await rows(engine, Follow, Follow.account_id == troll_id) == []  # its follows of members end
    [entry] = await rows(engine, FeedEntry, FeedEntry.entity_kind == "actor")
    assert (entry.entry_type, entry.audience, entry.entity_key) == ("Recommendation", "partners", troll_uri)
    assert entry.expires_at is not None and "reporter" not in entry.document
    response = await client.post(f"/api/v1/admin/accounts/{troll_id}/unsuspend", headers=mod.headers)
    assert response.status == 200, await response.text()
    entries = await rows(engine, FeedEntry, FeedEntry.entity_kind == "actor")
    assert sorted(e.entry_type for e in entries) == ["Recommendation", "Retraction"]
    assert {e.audience for e in entries} == {"partners"}


async def test_account_actions__sensitized_member_posts_sensitive_until_unsensitized(
    client: Any, make_user: Any
) -> None:
    mod = await make_user("mod", role="moderator", scopes=STAFF)
    member = await make_user("member")

    async def posted(text: str) -> bool:
        response = await client.post("/api/v1/statuses", json={"status": text}, headers=member.headers)
        assert response.status == 200, await response.text()
        return bool((await response.json())["sensitive"])

    assert await posted("before") is False
    await act(client, mod, member, type="sensitive", text="please use content warnings")
    assert await posted("while sensitized") is True
    response = await client.post(f"/api/v1/admin/accounts/{member.account_id}/unsensitive", headers=mod.headers)
    assert response.status == 200
    assert await posted("after") is False
