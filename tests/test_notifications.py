"""Notifications: listing with filters, show, dismiss, clear, scopes and visibility."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_statuses import block, join, make_group, post, suspend


async def listing(client: Any, user: Any, query: str = "") -> list[dict[str, Any]]:
    response = await client.get(f"/api/v1/notifications{query}", headers=user.headers)
    assert response.status == 200, await response.text()
    return await response.json()  # type: ignore[no-any-return]


async def activity(client: Any, alice: Any, bob: Any) -> dict[str, Any]:
    """bob mentions, favourites and boosts alice's post: three notifications for alice."""
    status = await post(client, alice, "my post")
    await post(client, bob, "@alice hi")
    await client.post(f"/api/v1/statuses/{status['id']}/favourite", headers=bob.headers)
    await client.post(f"/api/v1/statuses/{status['id']}/reblog", headers=bob.headers)
    return status


async def test_notifications__list_types_and_entities(client: Any, make_user: Any) -> None:
    alice = await make_user("alice")
    bob = await make_user("bob")
    status = await activity(client, alice, bob)
    notes = await listing(client, alice)
    assert [n["type"] for n in notes] == ["reblog", "favourite", "mention"]
    reblog = notes[0]
    assert reblog["account"]["id"] == str(bob.account_id)
    assert reblog["status"]["id"] == status["id"]
    assert set(reblog) >= {"id", "type", "created_at", "account", "status"}
    assert notes[2]["status"]["content"].startswith("<p>")
    assert [n["type"] for n in await listing(client, alice, "?types[]=mention&types[]=favourite")] == [
        "favourite",
        "mention",
    ]
    assert [n["type"] for n in await listing(client, alice, "?exclude_types[]=mention")] == ["reblog", "favourite"]
    assert await listing(client, alice, f"?account_id={alice.account_id}") == []
    assert len(await listing(client, alice, f"?account_id={bob.account_id}")) == 3
    assert await listing(client, alice, "?types[]=nonsense") == []
    assert await listing(client, bob) == []


async def test_notifications__pagination(client: Any, make_user: Any) -> None:
    alice = await make_user("alice")
    bob = await make_user("bob")
    await activity(client, alice, bob)
    everything = [n["id"] for n in await listing(client, alice)]
    response = await client.get("/api/v1/notifications?limit=2", headers=alice.headers)
    assert [n["id"] for n in await response.json()] == everything[:2]
    assert f"max_id={everything[1]}" in response.headers["Link"]
    rest = await listing(client, alice, f"?max_id={everything[1]}")
    assert [n["id"] for n in rest] == everything[2:]
    newer = await listing(client, alice, f"?min_id={everything[2]}&limit=1")
    assert [n["id"] for n in newer] == [everything[1]]


async def test_notifications__show_dismiss_clear(client: Any, make_user: Any) -> None:
    alice = await make_user("alice")
    bob = await make_user("bob")
    await activity(client, alice, bob)
    notes = await listing(client, alice)
    first = notes[0]["id"]
    response = await client.get(f"/api/v1/notifications/{first}", headers=alice.headers)
    assert response.status == 200 and (await response.json())["id"] == first
    assert (await client.get(f"/api/v1/notifications/{first}", headers=bob.headers)).status == 404
    assert (await client.post(f"/api/v1/notifications/{first}/dismiss", headers=bob.headers)).status == 404
    assert (await client.post(f"/api/v1/notifications/{first}/dismiss", headers=alice.headers)).status == 200
    assert (await client.get(f"/api/v1/notifications/{first}", headers=alice.headers)).status == 404
    count = await (await client.get("/api/v1/notifications/unread_count", headers=alice.headers)).json()
    assert count == {"count": 2}
    assert (await client.post("/api/v1/notifications/clear", headers=alice.headers)).status == 200
    assert await listing(client, alice) == []


async def test_notifications__scopes(client: Any, make_user: Any) -> None:
    alice = await make_user("alice")
    reader = await make_user("reader", scopes="read:notifications")
    writer = await make_user("writer", scopes="write:statuses")
    assert (await client.get("/api/v1/notifications")).status == 401
    assert (await client.get("/api/v1/notifications", headers=writer.headers)).status == 403
    assert (await client.get("/api/v1/notifications", headers=reader.headers)).status == 200
    assert (await client.post("/api/v1/notifications/clear", headers=reader.headers)).status == 403
    assert (await client.post("/api/v1/notifications/1/dismiss", headers=reader.headers)).status == 403
    assert (await client.get("/api/v1/notifications", headers=alice.headers)).status == 200


async def test_notifications__left_out_when_post_or_sender_gone(client: Any, make_user: Any, engine: Any) -> None:
    alice = await make_user("alice")
    bob = await make_user("bob")
    carol = await make_user("carol")
    mention = await post(client, bob, "@alice hello")
    await post(client, carol, "@alice hey")
    assert len(await listing(client, alice)) == 2
    await client.delete(f"/api/v1/statuses/{mention['id']}", headers=bob.headers)
    assert [n["account"]["id"] for n in await listing(client, alice)] == [str(carol.account_id)]
    await suspend(engine, carol.account_id)
    assert await listing(client, alice) == []


async def test_notifications__blocked_sender_left_out(client: Any, make_user: Any, engine: Any) -> None:
    alice = await make_user("alice")
    bob = await make_user("bob")
    await post(client, bob, "@alice hello")
    await block(engine, alice, bob)
    assert await listing(client, alice) == []


async def test_notifications__members_only_post_not_leaked(client: Any, make_user: Any, engine: Any) -> None:
    owner = await make_user("owner")
    member = await make_user("member")
    outsider = await make_user("outsider")
    group_id = await make_group(engine, owner, "circle", members_only=True)
    await join(engine, group_id, member)
    inside = await post(client, owner, "@circle ping @member and @outsider")
    assert await listing(client, outsider) == []
    notes = await listing(client, member)
    assert [n["status"]["id"] for n in notes] == [inside["id"]]
    # after leaving the group, the notification goes with the access
    from server import groups as group_rules
    from server.db import make_sessionmaker

    async with make_sessionmaker(engine)() as session:
        await group_rules.remove_member(session, group_id, member.account_id)
        await session.commit()
    assert await listing(client, member) == []


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.sampled_from(["types[]", "exclude_types[]", "account_id", "limit", "max_id"]), value=st.text(max_size=30))
async def test_notifications__random_parameters_never_500(client: Any, make_user: Any, key: str, value: str) -> None:
    user = getattr(client, "_fuzz_user", None)
    if user is None:
        user = await make_user("fuzzer")
        client._fuzz_user = user
    response = await client.get("/api/v1/notifications", params={key: value}, headers=user.headers)
    assert response.status < 500, await response.text()
    if response.status >= 400:
        assert "error" in await response.json()
