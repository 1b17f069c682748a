"""Two (or three) Hearthside instances on distinct loopback addresses federate end to end.

Each step is asserted on both sides: a remote member follows a public group and a
members-only group (approved, then rejected for another), posts, replies, favourites, edits,
deletes; a non-member instance cannot fetch members-only objects. Runs on SQLite and on
PostgreSQL (the ``kind`` parameter).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from federation_harness import Instance, eventually, instances, resolve

from server.models import Account, Delivery, Favourite, Follow, InboxItem, Notification, Status

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(params=["sqlite", "postgres"])
async def pair(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[list[Instance]]:
    pg = request.getfixturevalue("pg_server") if request.param == "postgres" else None
    async for started in instances(request.param, tmp_path, pg):
        yield started


async def make_group(inst: Instance, owner: Any, name: str, **settings: Any) -> dict[str, Any]:
    body = {"name": name, "display_name": name.title(), **settings}
    return await inst.api("POST", "/api/v1/hearthside/groups", owner, json=body)


async def relationship(inst: Instance, user: Any, account_id: str) -> dict[str, Any]:
    rels = await inst.api("GET", "/api/v1/accounts/relationships", user, params={"id[]": account_id})
    rel: dict[str, Any] = rels[0]
    return rel


async def statuses_by_uri(inst: Instance, uri: str) -> list[Status]:
    return await inst.rows(Status, Status.uri == uri)


async def test_remote_member_joins_public_group_and_posts_both_ways(pair: list[Instance]) -> None:
    a, b = pair
    alice = await a.user("alice")
    bob = await b.user("bob")
    group = await make_group(a, alice, "support")
    assert group

    # bob finds the group by handle (WebFinger on A) and follows (joins) it.
    remote_group = await resolve(b, bob, f"@support@{a.domain}")
    assert remote_group["group"] is True
    assert remote_group["acct"] == f"support@{a.domain}"
    await b.api("POST", f"/api/v1/accounts/{remote_group['id']}/follow", bob)

    async def joined() -> bool:
        return bool((await relationship(b, bob, remote_group["id"]))["following"])

    await eventually(joined, what="bob's membership accepted on B")
    bob_on_a = await a.one(Account, Account.uri == b.actor("bob"))
    group_row = await a.one(Account, Account.username == "support", Account.domain == "")
    membership = await a.one(Follow, Follow.account_id == bob_on_a.id, Follow.target_account_id == group_row.id)
    assert membership.state == "accepted" and membership.remote

    # alice posts in the group: A's group announces it to B; bob sees it at home.
    post = await a.api(
        "POST",
        "/api/v1/statuses",
        alice,
        json={"status": "Welcome, everyone. Take your time.", "group_id": group["id"]},
    )
    post_uri = post["uri"]

    async def arrived_on_b() -> list[Status]:
        return await statuses_by_uri(b, post_uri)

    [copy] = await eventually(arrived_on_b, what="alice's group post on B")
    group_on_b = await b.one(Account, Account.uri == a.actor("support", group=True))
    assert copy.group_id == group_on_b.id
    home = await b.api("GET", "/api/v1/timelines/home", bob)
    assert post_uri in [s["uri"] for s in home]

    # bob replies, addressing the group: A stores it in the group and alice is notified.
    reply = await b.api(
        "POST",
        "/api/v1/statuses",
        bob,
        json={"status": "Thank you, glad to be here.", "in_reply_to_id": str(copy.id)},
    )

    async def reply_on_a() -> list[Status]:
        return await statuses_by_uri(a, reply["uri"])

    [reply_a] = await eventually(reply_on_a, what="bob's reply on A")
    assert reply_a.group_id == group_row.id
    assert reply_a.in_reply_to_id == int(post["id"])
    alice_account = await a.one(Account, Account.username == "alice", Account.domain == "")

    # alice favourites bob's reply: B counts it.
    await a.api("POST", f"/api/v1/statuses/{reply_a.id}/favourite", alice)

    async def favourited_on_b() -> bool:
        rows = await b.rows(Favourite)
        return bool(rows)

    await eventually(favourited_on_b, what="alice's favourite on B")
    reply_b = (await statuses_by_uri(b, reply["uri"]))[0]
    assert reply_b.favourites_count == 1

    # bob edits his reply: A keeps the new text.
    await b.api("PUT", f"/api/v1/statuses/{reply['id']}", bob, json={"status": "Thank you, really glad."})

    async def edited_on_a() -> bool:
        [row] = await statuses_by_uri(a, reply["uri"])
        return row.edited_at is not None and "really glad" in row.content

    await eventually(edited_on_a, what="bob's edit on A")

    # bob deletes it: gone on A.
    await b.api("DELETE", f"/api/v1/statuses/{reply['id']}", bob)

    async def deleted_on_a() -> bool:
        [row] = await statuses_by_uri(a, reply["uri"])
        return row.deleted_at is not None

    await eventually(deleted_on_a, what="bob's deletion on A")
    assert alice_account is not None


async def test_members_only_group_approval_and_rejection(pair: list[Instance]) -> None:
    a, b = pair
    alice = await a.user("alice")
    bob = await b.user("bob")
    carol = await b.user("carol")
    group = await make_group(a, alice, "circle", join_policy="approval", members_only=True)

    remote = await resolve(b, bob, f"@circle@{a.domain}")
    assert remote["locked"] is True
    await b.api("POST", f"/api/v1/accounts/{remote['id']}/follow", bob)
    await b.api("POST", f"/api/v1/accounts/{remote['id']}/follow", carol)

    async def two_requests() -> list[Any]:
        found = await a.api("GET", f"/api/v1/hearthside/groups/{group['id']}/requests", alice)
        return found if len(found) == 2 else []

    pending = await eventually(two_requests, what="two join requests on A")
    by_name = {entry["username"]: entry for entry in pending}
    assert set(by_name) == {"bob", "carol"}
    assert (await relationship(b, bob, remote["id"]))["requested"] is True

    await a.api("POST", f"/api/v1/hearthside/groups/{group['id']}/requests/{by_name['bob']['id']}/approve", alice)
    await a.api("POST", f"/api/v1/hearthside/groups/{group['id']}/requests/{by_name['carol']['id']}/reject", alice)

    async def bob_in() -> bool:
        return bool((await relationship(b, bob, remote["id"]))["following"])

    async def carol_refused() -> bool:
        rel = await relationship(b, carol, remote["id"])
        return not rel["requested"] and not rel["following"]

    await eventually(bob_in, what="bob accepted")
    await eventually(carol_refused, what="carol rejected")

    # A members-only post reaches the member's instance, addressed without Public.
    post = await a.api(
        "POST", "/api/v1/statuses", alice, json={"status": "Members only: tonight's check-in", "group_id": group["id"]}
    )

    async def arrived() -> list[Status]:
        return await statuses_by_uri(b, post["uri"])

    [copy] = await eventually(arrived, what="members-only post on B")
    assert copy.visibility == "private"
    bob_home = await b.api("GET", "/api/v1/timelines/home", bob)
    assert post["uri"] in [s["uri"] for s in bob_home]
    carol_home = await b.api("GET", "/api/v1/timelines/home", carol)
    assert post["uri"] not in [s["uri"] for s in carol_home]
    await b.api("GET", f"/api/v1/statuses/{copy.id}", carol, expect=404)

    # Nothing was addressed to Public in what A sent for that post.
    from server.models import OutboxActivity

    sent = [row.body for row in await a.rows(OutboxActivity) if post["uri"] in row.body]
    assert sent and all("#Public" not in body for body in sent)


async def test_follow_remote_person_and_receive_posts(pair: list[Instance]) -> None:
    a, b = pair
    alice = await a.user("alice")
    bob = await b.user("bob")
    remote_alice = await resolve(b, bob, f"@alice@{a.domain}")
    await b.api("POST", f"/api/v1/accounts/{remote_alice['id']}/follow", bob)

    async def following() -> bool:
        return bool((await relationship(b, bob, remote_alice["id"]))["following"])

    await eventually(following, what="bob follows alice")
    post = await a.api("POST", "/api/v1/statuses", alice, json={"status": "Hello #wellbeing folks"})

    async def on_home() -> bool:
        home = await b.api("GET", "/api/v1/timelines/home", bob)
        return post["uri"] in [s["uri"] for s in home]

    await eventually(on_home, what="alice's post on bob's home")
    # bob boosts it; alice is notified on A.
    [copy] = await statuses_by_uri(b, post["uri"])
    await b.api("POST", f"/api/v1/statuses/{copy.id}/reblog", bob)

    async def boost_notified() -> list[Notification]:
        return await a.rows(Notification, Notification.type == "reblog")

    await eventually(boost_notified, what="reblog notification on A")
    # bob unfollows: A drops the follow.
    await b.api("POST", f"/api/v1/accounts/{remote_alice['id']}/unfollow", bob)
    bob_on_a = await a.one(Account, Account.uri == b.actor("bob"))

    async def unfollowed() -> bool:
        return not await a.rows(Follow, Follow.account_id == bob_on_a.id)

    await eventually(unfollowed, what="follow removed on A")


async def test_deliveries_and_inbox_items_settle(pair: list[Instance]) -> None:
    """After a follow round trip, no delivery or inbox item is left pending or failed."""
    a, b = pair
    await a.user("alice")
    bob = await b.user("bob")
    remote_alice = await resolve(b, bob, f"@alice@{a.domain}")
    await b.api("POST", f"/api/v1/accounts/{remote_alice['id']}/follow", bob)

    async def settled() -> bool:
        for inst in (a, b):
            if any(d.state != "delivered" for d in await inst.rows(Delivery)):
                return False
            if any(i.state != "done" for i in await inst.rows(InboxItem)):
                return False
        return bool(await a.rows(InboxItem)) and bool(await b.rows(InboxItem))

    await eventually(settled, what="all deliveries delivered and inbox items done")
