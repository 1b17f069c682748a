"""Follows, follow requests, blocks, mutes and group joins through Mastodon's account
endpoints, with their counters and notifications, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from test_accounts import API, account_json, expect_error, follow_rows, make_group, ok, set_account

from server.db import make_sessionmaker
from server.models import Mute, Notification
from server.web import now


async def notifications_of(engine: AsyncEngine, account_id: int) -> list[tuple[str, int]]:
    async with make_sessionmaker(engine)() as session:
        rows = await session.execute(
            select(Notification.type, Notification.from_account_id).where(Notification.account_id == account_id)
        )
        return [(t, f) for t, f in rows.all()]


async def relationship(client: Any, viewer: Any, target_id: int) -> dict[str, Any]:
    body = await ok(await client.get(f"{API}/relationships", params={"id[]": str(target_id)}, headers=viewer.headers))
    assert len(body) == 1
    result: dict[str, Any] = body[0]
    return result


RELATIONSHIP_KEYS = {
    "id", "following", "showing_reblogs", "notifying", "languages", "followed_by", "blocking", "blocked_by",
    "muting", "muting_notifications", "requested", "requested_by", "domain_blocking", "endorsed", "note",
}  # fmt: skip


# ---------------------------------------------------------------------------- follow


async def test_follow__unlocked_account_followed_at_once_with_counters_and_notification(
    client: Any, make_user: Any, engine: AsyncEngine
) -> None:
    alice = await make_user("alice")
    bob = await make_user("bob")
    body = await ok(
        await client.post(
            f"{API}/{alice.account_id}/follow", json={"reblogs": False, "notify": True}, headers=bob.headers
        )
    )
    assert set(body) == RELATIONSHIP_KEYS
    assert body["id"] == str(alice.account_id)
    assert body["following"] is True and body["requested"] is False
    assert body["showing_reblogs"] is False and body["notifying"] is True
    assert (await account_json(client, alice.account_id))["followers_count"] == 1
    assert (await account_json(client, bob.account_id))["following_count"] == 1
    assert await notifications_of(engine, alice.account_id) == [("follow", bob.account_id)]
    seen_by_alice = await relationship(client, alice, bob.account_id)
    assert seen_by_alice["followed_by"] is True and seen_by_alice["following"] is False
    # following again is idempotent (no double count) and can change the options
    body = await ok(await client.post(f"{API}/{alice.account_id}/follow", json={"reblogs": True}, headers=bob.headers))
    assert body["showing_reblogs"] is True and body["notifying"] is True
    assert (await account_json(client, alice.account_id))["followers_count"] == 1


async def test_follow__pending_for_locked_account_then_authorized(
    client: Any, make_user: Any, engine: AsyncEngine
) -> None:
    alice = await make_user("alice")
    bob = await make_user("bob")
    await set_account(engine, alice.account_id, locked=True)
    body = await ok(await client.post(f"{API}/{alice.account_id}/follow", headers=bob.headers))
    assert body["following"] is False and body["requested"] is True
    assert (await account_json(client, alice.account_id))["followers_count"] == 0
    assert await notifications_of(engine, alice.account_id) == [("follow_request", bob.account_id)]
    requests = await ok(await client.get("/api/v1/follow_requests", headers=alice.headers))
    assert [a["username"] for a in requests] == ["bob"]
    me = await ok(await client.get(f"{API}/verify_credentials", headers=alice.headers))
    assert me["source"]["follow_requests_count"] == 1
    assert (await relationship(client, alice, bob.account_id))["requested_by"] is True

    body = await ok(await client.post(f"/api/v1/follow_requests/{bob.account_id}/authorize", headers=alice.headers))
    assert body["followed_by"] is True and body["requested_by"] is False
    assert (await relationship(client, bob, alice.account_id))["following"] is True
    assert (await account_json(client, alice.account_id))["followers_count"] == 1
    assert (await account_json(client, bob.account_id))["following_count"] == 1
    assert await ok(await client.get("/api/v1/follow_requests", headers=alice.headers)) == []
    assert await notifications_of(engine, alice.account_id) == []  # the request's notification is gone
    # nothing left to authorize
    await expect_error(
        await client.post(f"/api/v1/follow_requests/{bob.account_id}/authorize", headers=alice.headers), 404
    )


async def test_follow_request__rejected_and_withdrawn(client: Any, make_user: Any, engine: AsyncEngine) -> None:
    alice = await make_user("alice")
    bob = await make_user("bob")
    carol = await make_user("carol")
    await set_account(engine, alice.account_id, locked=True)
    await ok(await client.post(f"{API}/{alice.account_id}/follow", headers=bob.headers))
    await ok(await client.post(f"{API}/{alice.account_id}/follow", headers=carol.headers))
    body = await ok(await client.post(f"/api/v1/follow_requests/{bob.account_id}/reject", headers=alice.headers))
    assert body["requested_by"] is False and body["followed_by"] is False
    assert (await relationship(client, bob, alice.account_id))["requested"] is False
    # carol withdraws her request by unfollowing: the notification goes with it
    body = await ok(await client.post(f"{API}/{alice.account_id}/unfollow", headers=carol.headers))
    assert body["requested"] is False
    assert await notifications_of(engine, alice.account_id) == []
    assert (await account_json(client, alice.account_id))["followers_count"] == 0


async def test_follow_request__only_the_followed_account_can_answer_it(
    client: Any, make_user: Any, engine: AsyncEngine
) -> None:
    alice = await make_user("alice")
    bob = await make_user("bob")
    mallory = await make_user("mallory")
    await set_account(engine, alice.account_id, locked=True)
    await ok(await client.post(f"{API}/{alice.account_id}/follow", headers=bob.headers))
    for action in ("authorize", "reject"):
        await expect_error(
            await client.post(f"/api/v1/follow_requests/{bob.account_id}/{action}", headers=mallory.headers), 404
        )
    assert (await relationship(client, bob, alice.account_id))["requested"] is True
    assert await ok(await client.get("/api/v1/follow_requests", headers=mallory.headers)) == []


async def test_follow__read_only_token_cannot_follow(client: Any, make_user: Any) -> None:
    alice = await make_user("alice")
    reader = await make_user("reader", scopes="read")
    await expect_error(await client.post(f"{API}/{alice.account_id}/follow", headers=reader.headers), 403, "scopes")
    await expect_error(await client.post(f"{API}/{alice.account_id}/follow"), 401)
    granular = await make_user("granular", scopes="write:follows read:follows")
    assert (await client.post(f"{API}/{alice.account_id}/follow", headers=granular.headers)).status == 200
    await expect_error(await client.post(f"{API}/{alice.account_id}/block", headers=granular.headers), 403, "scopes")
    await expect_error(await client.get("/api/v1/blocks", headers=granular.headers), 403, "scopes")


async def test_follow__self_unknown_suspended_and_deleted(client: Any, make_user: Any, engine: AsyncEngine) -> None:
    alice = await make_user("alice")
    bob = await make_user("bob")
    carol = await make_user("carol")
    await expect_error(await client.post(f"{API}/{alice.account_id}/follow", headers=alice.headers), 403)
    await expect_error(await client.post(f"{API}/1/follow", headers=alice.headers), 404)
    await set_account(engine, bob.account_id, suspended_at=now())
    await set_account(engine, carol.account_id, deleted_at=now())
    await expect_error(await client.post(f"{API}/{bob.account_id}/follow", headers=alice.headers), 404)
    await expect_error(await client.post(f"{API}/{carol.account_id}/follow", headers=alice.headers), 404)
    assert await follow_rows(engine, alice.account_id) == []


async def test_follow__blocked_by_target_is_403(client: Any, make_user: Any, engine: AsyncEngine) -> None:
    alice = await make_user("alice")
    bob = await make_user("bob")
    await ok(await client.post(f"{API}/{bob.account_id}/block", headers=alice.headers))
    await expect_error(await client.post(f"{API}/{alice.account_id}/follow", headers=bob.headers), 403)
    await expect_error(await client.post(f"{API}/{bob.account_id}/follow", headers=alice.headers), 403)  # blocker too
    assert await follow_rows(engine, bob.account_id) == []
    seen = await relationship(client, bob, alice.account_id)
    assert seen["blocked_by"] is True and seen["blocking"] is False


async def test_follow__suspended_viewer_token_is_403(client: Any, make_user: Any, engine: AsyncEngine) -> None:
    alice = await make_user("alice")
    bob = await make_user("bob")
    await set_account(engine, bob.account_id, suspended_at=now())
    await expect_error(await client.post(f"{API}/{alice.account_id}/follow", headers=bob.headers), 403, "disabled")


# ---------------------------------------------------------------------------- block / mute


async def test_block__severs_follows_both_ways_and_updates_counters(
    client: Any, make_user: Any, engine: AsyncEngine
) -> None:
    alice = await make_user("alice")
    bob = await make_user("bob")
    carol = await make_user("carol")
    await ok(await client.post(f"{API}/{bob.account_id}/follow", headers=alice.headers))
    await ok(await client.post(f"{API}/{alice.account_id}/follow", headers=bob.headers))
    await ok(await client.post(f"{API}/{alice.account_id}/follow", headers=carol.headers))
    assert (await account_json(client, alice.account_id))["followers_count"] == 2
    body = await ok(await client.post(f"{API}/{bob.account_id}/block", headers=alice.headers))
    assert body["blocking"] is True and body["following"] is False and body["followed_by"] is False
    alice_now = await account_json(client, alice.account_id)
    bob_now = await account_json(client, bob.account_id)
    assert (alice_now["followers_count"], alice_now["following_count"]) == (1, 0)
    assert (bob_now["followers_count"], bob_now["following_count"]) == (0, 0)
    assert sorted(await follow_rows(engine, bob.account_id)) == []
    blocks = await ok(await client.get("/api/v1/blocks", headers=alice.headers))
    assert [a["username"] for a in blocks] == ["bob"]
    # blocking is idempotent; unblocking restores nothing but the ability to follow
    await ok(await client.post(f"{API}/{bob.account_id}/block", headers=alice.headers))
    body = await ok(await client.post(f"{API}/{bob.account_id}/unblock", headers=alice.headers))
    assert body["blocking"] is False and body["followed_by"] is False
    assert await ok(await client.get("/api/v1/blocks", headers=alice.headers)) == []
    assert (await client.post(f"{API}/{alice.account_id}/follow", headers=bob.headers)).status == 200


async def test_block__removes_pending_requests_and_their_notifications(
    client: Any, make_user: Any, engine: AsyncEngine
) -> None:
    alice = await make_user("alice")
    bob = await make_user("bob")
    await set_account(engine, alice.account_id, locked=True)
    await ok(await client.post(f"{API}/{alice.account_id}/follow", headers=bob.headers))
    await ok(await client.post(f"{API}/{bob.account_id}/block", headers=alice.headers))
    assert await follow_rows(engine, alice.account_id) == []
    assert await notifications_of(engine, alice.account_id) == []
    await expect_error(await client.post(f"{API}/{alice.account_id}/block", headers=alice.headers), 403)


async def test_mute__with_duration_and_notification_choice(client: Any, make_user: Any, engine: AsyncEngine) -> None:
    alice = await make_user("alice")
    bob = await make_user("bob")
    carol = await make_user("carol")
    body = await ok(
        await client.post(
            f"{API}/{bob.account_id}/mute", json={"notifications": False, "duration": 3600}, headers=alice.headers
        )
    )
    assert body["muting"] is True and body["muting_notifications"] is False
    await ok(await client.post(f"{API}/{carol.account_id}/mute", headers=alice.headers))
    assert (await relationship(client, alice, carol.account_id))["muting_notifications"] is True
    mutes = await ok(await client.get("/api/v1/mutes", headers=alice.headers))
    assert [a["username"] for a in mutes] == ["carol", "bob"]
    assert mutes[0]["mute_expires_at"] is None and mutes[1]["mute_expires_at"].endswith("Z")
    # an expired mute is no mute
    async with make_sessionmaker(engine)() as session:
        row = (await session.execute(select(Mute).where(Mute.target_account_id == bob.account_id))).scalar_one()
        row.expires_at = now() - timedelta(seconds=1)
        await session.commit()
    assert (await relationship(client, alice, bob.account_id))["muting"] is False
    assert [a["username"] for a in await ok(await client.get("/api/v1/mutes", headers=alice.headers))] == ["carol"]
    body = await ok(await client.post(f"{API}/{carol.account_id}/unmute", headers=alice.headers))
    assert body["muting"] is False
    await expect_error(
        await client.post(f"{API}/{bob.account_id}/mute", json={"duration": -5}, headers=alice.headers), 422, "duration"
    )
    await expect_error(
        await client.post(f"{API}/{bob.account_id}/mute", json={"duration": 10**12}, headers=alice.headers), 422
    )
    await expect_error(await client.post(f"{API}/{alice.account_id}/mute", headers=alice.headers), 403)
    reader = await make_user("reader", scopes="read")
    await expect_error(await client.post(f"{API}/{bob.account_id}/mute", headers=reader.headers), 403, "scopes")


async def test_remove_from_followers(client: Any, make_user: Any) -> None:
    alice = await make_user("alice")
    bob = await make_user("bob")
    await ok(await client.post(f"{API}/{alice.account_id}/follow", headers=bob.headers))
    body = await ok(await client.post(f"{API}/{bob.account_id}/remove_from_followers", headers=alice.headers))
    assert body["followed_by"] is False
    assert (await account_json(client, alice.account_id))["followers_count"] == 0
    assert (await account_json(client, bob.account_id))["following_count"] == 0


# ---------------------------------------------------------------------------- relationships


async def test_relationships__many_ids_in_order_skipping_unknown_and_suspended(
    client: Any, make_user: Any, engine: AsyncEngine
) -> None:
    alice = await make_user("alice")
    bob = await make_user("bob")
    carol = await make_user("carol")
    await ok(await client.post(f"{API}/{bob.account_id}/follow", headers=alice.headers))
    await set_account(engine, carol.account_id, suspended_at=now())
    ids = [str(carol.account_id), "1", str(bob.account_id), str(bob.account_id)]
    body = await ok(await client.get(f"{API}/relationships", params=[("id[]", i) for i in ids], headers=alice.headers))
    assert [(r["id"], r["following"]) for r in body] == [(str(bob.account_id), True)]
    body = await ok(
        await client.get(
            f"{API}/relationships",
            params=[("id[]", str(carol.account_id)), ("with_suspended", "true")],
            headers=alice.headers,
        )
    )
    assert [r["id"] for r in body] == [str(carol.account_id)]
    assert await ok(await client.get(f"{API}/relationships", headers=alice.headers)) == []
    await expect_error(await client.get(f"{API}/relationships", params={"id[]": "abc"}, headers=alice.headers), 422)
    await expect_error(await client.get(f"{API}/relationships", params={"id[]": "1"}), 401)


# ---------------------------------------------------------------------------- groups


async def test_follow_group__open_joins_at_once(client: Any, make_user: Any, engine: AsyncEngine) -> None:
    owner = await make_user("owner")
    bob = await make_user("bob")
    group_id = await make_group(engine, owner.account_id, "open_door")
    body = await ok(await client.post(f"{API}/{group_id}/follow", headers=bob.headers))
    assert body["following"] is True
    assert (await account_json(client, group_id))["followers_count"] == 2
    assert (await account_json(client, bob.account_id))["following_count"] == 1
    body = await ok(await client.post(f"{API}/{group_id}/unfollow", headers=bob.headers))
    assert body["following"] is False
    assert (await account_json(client, group_id))["followers_count"] == 1
    assert (await account_json(client, bob.account_id))["following_count"] == 0
    # the only owner cannot leave (the group's own rule)
    await expect_error(await client.post(f"{API}/{group_id}/unfollow", headers=owner.headers), 422, "owner")


async def test_follow_group__approval_policy_makes_a_pending_request(
    client: Any, make_user: Any, engine: AsyncEngine
) -> None:
    owner = await make_user("owner")
    bob = await make_user("bob")
    group_id = await make_group(engine, owner.account_id, "by_request", join_policy="approval")
    body = await ok(await client.post(f"{API}/{group_id}/follow", headers=bob.headers))
    assert body["following"] is False and body["requested"] is True
    assert (await account_json(client, group_id))["followers_count"] == 1


async def test_follow_group__invite_only_refused_without_invite(
    client: Any, make_user: Any, engine: AsyncEngine
) -> None:
    owner = await make_user("owner")
    bob = await make_user("bob")
    group_id = await make_group(engine, owner.account_id, "invited_only", join_policy="invite")
    await expect_error(await client.post(f"{API}/{group_id}/follow", headers=bob.headers), 403, "invite")
    assert await follow_rows(engine, bob.account_id) == []


async def test_block_group__ends_membership(client: Any, make_user: Any, engine: AsyncEngine) -> None:
    owner = await make_user("owner")
    bob = await make_user("bob")
    group_id = await make_group(engine, owner.account_id, "leaving_soon")
    await ok(await client.post(f"{API}/{group_id}/follow", headers=bob.headers))
    body = await ok(await client.post(f"{API}/{group_id}/block", headers=bob.headers))
    assert body["blocking"] is True and body["following"] is False
    assert (await account_json(client, group_id))["followers_count"] == 1


# ---------------------------------------------------------------------------- property


_property_state: dict[str, Any] = {}
ACTIONS = ["follow", "unfollow", "block", "unblock", "mute", "unmute", "remove_from_followers"]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    action=st.sampled_from(ACTIONS),
    target=st.one_of(st.sampled_from(["self", "other", "group"]), st.from_regex(r"[0-9]{1,19}", fullmatch=True)),
    params=st.dictionaries(
        st.sampled_from(["reblogs", "notify", "notifications", "duration", "invite_code", "languages[]"]),
        st.one_of(
            st.none(), st.booleans(), st.integers(-(2**66), 2**66), st.text(max_size=20), st.lists(st.text(max_size=3))
        ),
        max_size=4,
    ),
)
async def test_relationship_actions__random_input_never_a_server_error(
    client: Any, make_user: Any, engine: AsyncEngine, action: str, target: str, params: dict[str, Any]
) -> None:
    if _property_state.get("client") is not client:
        me = await make_user("prop_me")
        other = await make_user("prop_other")
        group_id = await make_group(engine, other.account_id, "prop_group", join_policy="invite")
        _property_state.update(
            client=client, me=me, ids={"self": me.account_id, "other": other.account_id, "group": group_id}
        )
    me = _property_state["me"]
    target_id = _property_state["ids"].get(target, target)
    response = await client.post(f"{API}/{target_id}/{action}", json=params, headers=me.headers)
    assert response.status in (200, 400, 403, 404, 422), await response.text()
    body = await response.json()
    if response.status == 200:
        assert set(body) == RELATIONSHIP_KEYS
    else:
        assert set(body) == {"error"}


async def test_unlocking_an_account_accepts_its_pending_requests(
    client: Any, make_user: Any, engine: AsyncEngine
) -> None:
    alice = await make_user("alice")
    bob = await make_user("bob")
    await set_account(engine, alice.account_id, locked=True)
    await ok(await client.post(f"{API}/{alice.account_id}/follow", headers=bob.headers))
    body = await ok(await client.patch(f"{API}/update_credentials", json={"locked": False}, headers=alice.headers))
    assert body["locked"] is False and body["followers_count"] == 1
    assert (await relationship(client, bob, alice.account_id))["following"] is True
    assert await notifications_of(engine, alice.account_id) == []


async def test_follow__remote_accounts_and_groups_stay_pending_until_their_server_accepts(
    client: Any, make_user: Any, engine: AsyncEngine
) -> None:
    from server.accounts import new_account

    bob = await make_user("bob")
    ids = []
    async with make_sessionmaker(engine)() as session:
        for name, kind in (("faraway", "Person"), ("faraway_group", "Group")):
            remote = new_account(name, actor_type=kind)
            remote.domain = "remote.example"
            remote.uri = f"https://remote.example/{name}"
            session.add(remote)
            ids.append(remote.id)
        await session.commit()
    for remote_id in ids:
        body = await ok(await client.post(f"{API}/{remote_id}/follow", headers=bob.headers))
        assert body["requested"] is True and body["following"] is False
        assert (await ok(await client.get(f"{API}/{remote_id}/followers"))) == []
        body = await ok(await client.post(f"{API}/{remote_id}/unfollow", headers=bob.headers))
        assert body["requested"] is False
    found = await ok(await client.get(f"{API}/lookup", params={"acct": "FarAway@Remote.Example"}))
    assert found["acct"] == "faraway@remote.example"
