"""Federation flows beyond the basic round trip, between real instances on loopback:
thread stitching, account deletion, domain suspension, blocks, remote group moderation and
remote reports. SQLite here (the PostgreSQL path of the same code runs in
test_federation_e2e.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from federation_harness import Instance, eventually, instances, post_as, resolve

from server.ids import new_id
from server.models import Account, Block, Delivery, DomainBlock, Follow, GroupRole, Report, Status
from server.web import now

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[list[Instance]]:
    async for started in instances("sqlite", tmp_path, None):
        yield started


@pytest.fixture
async def trio(tmp_path: Path) -> AsyncIterator[list[Instance]]:
    async for started in instances("sqlite", tmp_path, None, hosts=("127.0.0.2", "127.0.0.3", "127.0.0.4")):
        yield started


async def make_remote_moderator(a: Instance, b: Instance, username: str, group_id: int) -> None:
    """Give ``username`` of instance ``b`` a moderator role in A's group (no API for remote roles)."""
    [remote] = await a.rows(Account, Account.uri == b.actor(username))
    async with a.session() as session:
        session.add(GroupRole(id=new_id(), group_id=group_id, account_id=remote.id, role="moderator", created_at=now()))
        await session.commit()


async def follow_remote(inst: Instance, user: Any, handle: str) -> dict[str, Any]:
    remote = await resolve(inst, user, handle)
    await inst.api("POST", f"/api/v1/accounts/{remote['id']}/follow", user)

    async def accepted() -> bool:
        rels = await inst.api("GET", "/api/v1/accounts/relationships", user, params={"id[]": remote["id"]})
        return bool(rels[0]["following"])

    await eventually(accepted, what=f"follow of {handle} accepted")
    return remote


async def status_on(inst: Instance, uri: str) -> Status | None:
    rows = await inst.rows(Status, Status.uri == uri)
    return rows[0] if rows else None


async def test_reply_to_an_unseen_post_fetches_and_stitches_the_thread(pair: list[Instance]) -> None:
    a, b = pair
    alice = await a.user("alice")
    dave = await a.user("dave")
    bob = await b.user("bob")
    await follow_remote(b, bob, f"@alice@{a.domain}")
    root = await a.api("POST", "/api/v1/statuses", dave, json={"status": "Does anyone else find mornings hard?"})
    reply = await a.api(
        "POST", "/api/v1/statuses", alice, json={"status": "Yes, every day.", "in_reply_to_id": root["id"]}
    )

    async def stitched() -> bool:
        child = await status_on(b, reply["uri"])
        parent = await status_on(b, root["uri"])
        return child is not None and parent is not None and child.in_reply_to_id == parent.id

    await eventually(stitched, what="the parent fetched and the reply stitched on B")
    child = await status_on(b, reply["uri"])
    assert child is not None
    thread = await b.api("GET", f"/api/v1/statuses/{child.id}/context", bob)
    assert [s["uri"] for s in thread["ancestors"]] == [root["uri"]]


async def test_account_deletion_reaches_followers(pair: list[Instance]) -> None:
    a, b = pair
    alice = await a.user("alice")
    bob = await b.user("bob")
    await follow_remote(b, bob, f"@alice@{a.domain}")
    post = await a.api("POST", "/api/v1/statuses", alice, json={"status": "Signing off for good."})

    async def arrived() -> Status | None:
        return await status_on(b, post["uri"])

    await eventually(arrived, what="post on B")
    await a.api("POST", "/api/v1/hearthside/account/delete", alice, json={"password": alice.password})

    async def gone() -> bool:
        [account] = await b.rows(Account, Account.uri == a.actor("alice"))
        copy = await status_on(b, post["uri"])
        return account.deleted_at is not None and copy is not None and copy.deleted_at is not None

    await eventually(gone, what="alice and her post deleted on B")
    assert not await b.rows(Follow)


async def test_suspended_domain_gets_nothing_and_is_refused(pair: list[Instance]) -> None:
    a, b = pair
    alice = await a.user("alice")
    bob = await b.user("bob")
    await follow_remote(b, bob, f"@alice@{a.domain}")
    await follow_remote(a, alice, f"@bob@{b.domain}")
    async with b.session() as session:
        session.add(DomainBlock(id=new_id(), domain=a.host, severity="suspend", created_at=now(), updated_at=now()))
        await session.commit()

    # A's delivery to B is refused (403): a final answer, not retried.
    post = await a.api("POST", "/api/v1/statuses", alice, json={"status": "Hello from A"})

    async def refused() -> list[Delivery]:
        rows = await a.rows(Delivery, Delivery.state == "failed", Delivery.last_status == 403)
        return rows

    await eventually(refused, what="A's delivery refused by B")
    assert await status_on(b, post["uri"]) is None
    # B sends nothing to A any more, even to a follower there.
    before = len(await b.rows(Delivery))
    await b.api("POST", "/api/v1/statuses", bob, json={"status": "Hello from B"})
    assert len(await b.rows(Delivery)) == before


async def test_block_federates_and_severs_follows(pair: list[Instance]) -> None:
    a, b = pair
    alice = await a.user("alice")
    bob = await b.user("bob")
    await follow_remote(b, bob, f"@alice@{a.domain}")
    [bob_on_a] = await a.rows(Account, Account.uri == b.actor("bob"))
    await a.api("POST", f"/api/v1/accounts/{bob_on_a.id}/block", alice)

    async def blocked_on_b() -> bool:
        blocks = await b.rows(Block)
        return bool(blocks) and not await b.rows(Follow)

    await eventually(blocked_on_b, what="block recorded and follow severed on B")


async def test_remote_moderator_removes_a_post_in_a_local_group(pair: list[Instance]) -> None:
    a, b = pair
    alice = await a.user("alice")
    carol = await a.user("carol")
    bob = await b.user("bob")
    dan = await b.user("dan")
    group = await a.api("POST", "/api/v1/hearthside/groups", alice, json={"name": "support"})
    await a.api("POST", f"/api/v1/hearthside/groups/{group['id']}/join", carol)
    await follow_remote(b, bob, f"@support@{a.domain}")
    await follow_remote(b, dan, f"@support@{a.domain}")
    await make_remote_moderator(a, b, "bob", int(group["id"]))
    post = await a.api("POST", "/api/v1/statuses", carol, json={"status": "A post to remove", "group_id": group["id"]})
    group_actor = a.actor("support", group=True)

    def remove_by(who: str) -> dict[str, Any]:
        return {
            "@context": "https://www.w3.org/ns/activitystreams",
            "id": f"{b.actor(who)}/activities/remove-{new_id()}",
            "type": "Remove",
            "actor": b.actor(who),
            "object": post["uri"],
            "target": group_actor,
            "audience": group_actor,
        }

    # A member who is not a moderator: accepted by the inbox, ignored by the group.
    assert await post_as(b, "dan", f"{a.base_url}/inbox", remove_by("dan")) == 202
    # The listed moderator: the post goes, and the group announces the removal.
    assert await post_as(b, "bob", f"{a.base_url}/inbox", remove_by("bob")) == 202

    async def removed() -> bool:
        row = await status_on(a, post["uri"])
        return row is not None and row.deleted_at is not None

    await eventually(removed, what="post removed by the remote moderator")
    async with a.session() as session:
        from sqlalchemy import select

        from server.models import InboxItem

        errors = {i.actor_uri: i.error for i in (await session.scalars(select(InboxItem))).all()}
    assert errors.get(b.actor("dan")) == "moderation_by_non_moderator"


async def test_remote_flag_becomes_a_report(pair: list[Instance]) -> None:
    a, b = pair
    alice = await a.user("alice")
    await b.user("bob")
    post = await a.api("POST", "/api/v1/statuses", alice, json={"status": "something reported"})
    flag = {
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": f"{b.actor('bob')}/flags/{new_id()}",
        "type": "Flag",
        "actor": b.actor("bob"),
        "object": [a.actor("alice"), post["uri"]],
        "content": "Please look at this",
    }
    assert await post_as(b, "bob", f"{a.base_url}/inbox", flag) == 202

    async def reported() -> list[Report]:
        return await a.rows(Report)

    [report] = await eventually(reported, what="a report on A")
    [alice_account] = await a.rows(Account, Account.username == "alice", Account.domain == "")
    assert report.target_account_id == alice_account.id
    assert report.status_ids == [int(post["id"])]
    assert report.origin_domain == b.domain and report.reporter_account_id is None
    assert report.comment == "Please look at this"


async def test_profile_edit_and_key_rotation_are_announced_with_update(pair: list[Instance]) -> None:
    from server import outbox
    from server.actor_keys import rotate_keys
    from server.models import ActorKey

    a, b = pair
    alice = await a.user("alice")
    bob = await b.user("bob")
    await follow_remote(b, bob, f"@alice@{a.domain}")
    await a.api("PATCH", "/api/v1/accounts/update_credentials", alice, json={"display_name": "Alice (she/her)"})

    async def renamed() -> bool:
        [copy] = await b.rows(Account, Account.uri == a.actor("alice"))
        return copy.display_name == "Alice (she/her)"

    await eventually(renamed, what="profile Update applied on B")

    key_id = f"{a.actor('alice')}#main-key"
    [old] = await b.rows(ActorKey, ActorKey.key_id == key_id)
    async with a.session() as session:
        [account] = await a.rows(Account, Account.username == "alice", Account.domain == "")
        account = await session.get(Account, account.id)
        fresh = await rotate_keys(session, a.config, account)
        await session.flush()
        await outbox.federate_profile(session, a.config, account)
        await session.commit()
    assert fresh.rsa_public_pem != old.public_pem

    async def rotated() -> bool:
        [row] = await b.rows(ActorKey, ActorKey.key_id == key_id)
        return row.public_pem.strip() == fresh.rsa_public_pem.strip()

    await eventually(rotated, what="B holds alice's new key after the Update")
    post = await a.api("POST", "/api/v1/statuses", alice, json={"status": "Signed with my new key"})

    async def arrived() -> Status | None:
        return await status_on(b, post["uri"])

    await eventually(arrived, what="a post signed with the new key accepted on B")


async def test_members_only_objects_only_for_instances_with_a_member(trio: list[Instance]) -> None:
    """A members-only group's post is served to a signed fetch from an instance with an
    approved member, and to nobody else: not unsigned, not to a non-member instance."""
    from server.federation import FEDERATION
    from server.transport import FetchError

    a, b, c = trio
    alice = await a.user("alice")
    bob = await b.user("bob")
    group = await a.api(
        "POST",
        "/api/v1/hearthside/groups",
        alice,
        json={"name": "circle", "join_policy": "approval", "members_only": True},
    )
    remote = await resolve(b, bob, f"@circle@{a.domain}")
    await b.api("POST", f"/api/v1/accounts/{remote['id']}/follow", bob)

    async def requested() -> list[Any]:
        return await a.api("GET", f"/api/v1/hearthside/groups/{group['id']}/requests", alice)

    [request] = await eventually(requested, what="bob's request on A")
    await a.api("POST", f"/api/v1/hearthside/groups/{group['id']}/requests/{request['id']}/approve", alice)
    post = await a.api("POST", "/api/v1/statuses", alice, json={"status": "For members", "group_id": group["id"]})

    assert c.runner is not None and b.runner is not None
    member_instance = b.runner.app[FEDERATION]
    stranger = c.runner.app[FEDERATION]

    async def served_to_member() -> bool:
        try:
            document = await member_instance.transport.fetch_json(post["uri"])
        except FetchError:
            return False
        return document["id"] == post["uri"]

    await eventually(served_to_member, what="members-only post served to the member's instance")
    with pytest.raises(FetchError) as refused:
        await stranger.transport.fetch_json(post["uri"])
    assert refused.value.reason == "not_found"
    assert c.http is not None
    async with c.http.get(post["uri"], headers={"Accept": "application/activity+json"}) as answer:
        assert answer.status == 404


async def test_remote_moderator_locks_and_unlocks_a_thread(pair: list[Instance]) -> None:
    """Lemmy's Lock: a listed moderator on another instance closes a thread to replies; the group
    announces it, so the member instance closes its copy too; Undo(Lock) opens it again."""
    a, b = pair
    alice = await a.user("alice")
    bob = await b.user("bob")
    group = await a.api("POST", "/api/v1/hearthside/groups", alice, json={"name": "support"})
    await follow_remote(b, bob, f"@support@{a.domain}")
    await make_remote_moderator(a, b, "bob", int(group["id"]))
    post = await a.api("POST", "/api/v1/statuses", alice, json={"status": "A heated thread", "group_id": group["id"]})
    group_actor = a.actor("support", group=True)
    lock = {
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": f"{b.actor('bob')}/activities/lock-{new_id()}",
        "type": "Lock",
        "actor": b.actor("bob"),
        "object": post["uri"],
        "audience": group_actor,
    }
    assert await post_as(b, "bob", f"{a.base_url}/inbox", lock, prove=True) == 202

    async def locked_on_both() -> bool:
        mine, theirs = await status_on(a, post["uri"]), await status_on(b, post["uri"])
        return bool(mine and mine.replies_locked and theirs and theirs.replies_locked)

    await eventually(locked_on_both, what="thread locked on A and, through the group's Announce, on B")
    answer = await a.api(
        "POST", "/api/v1/statuses", alice, json={"status": "one more", "in_reply_to_id": post["id"]}, expect=403
    )
    assert "locked" in answer["error"]
    undo = {
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": f"{b.actor('bob')}/activities/unlock-{new_id()}",
        "type": "Undo",
        "actor": b.actor("bob"),
        "object": lock,
        "audience": group_actor,
    }
    assert await post_as(b, "bob", f"{a.base_url}/inbox", undo, prove=True) == 202

    async def unlocked() -> bool:
        mine = await status_on(a, post["uri"])
        return bool(mine and not mine.replies_locked)

    await eventually(unlocked, what="thread unlocked on A")
    await a.api("POST", "/api/v1/statuses", alice, json={"status": "thanks", "in_reply_to_id": post["id"]})


async def test_sent_activities_are_served_only_where_they_were_delivered(trio: list[Instance]) -> None:
    """A Follow (a membership, for a group) is dereferenceable by the server it was sent to and
    by nobody else; a public group Announce by anyone."""
    from server.federation import FEDERATION
    from server.models import OutboxActivity
    from server.transport import FetchError

    a, b, c = trio
    alice = await a.user("alice")
    bob = await b.user("bob")
    await a.api("POST", "/api/v1/hearthside/groups", alice, json={"name": "support"})
    await follow_remote(b, bob, f"@support@{a.domain}")
    [follow] = await b.rows(OutboxActivity, OutboxActivity.activity_type == "Follow")
    assert a.runner is not None and c.runner is not None
    fetched = await a.runner.app[FEDERATION].transport.fetch_json(follow.uri)
    assert fetched["type"] == "Follow" and fetched["object"] == a.actor("support", group=True)
    with pytest.raises(FetchError) as refused:
        await c.runner.app[FEDERATION].transport.fetch_json(follow.uri)
    assert refused.value.reason == "not_found"
    assert c.http is not None
    async with c.http.get(follow.uri, headers={"Accept": "application/activity+json"}) as answer:
        assert answer.status == 404

    post = await a.api("POST", "/api/v1/statuses", alice, json={"status": "in the group @support"})
    assert post["uri"]

    async def announced() -> list[OutboxActivity]:
        return await a.rows(OutboxActivity, OutboxActivity.activity_type == "Announce")

    [announce] = await eventually(announced, what="the group's Announce recorded on A")
    async with c.http.get(announce.uri, headers={"Accept": "application/activity+json"}) as answer:
        assert answer.status == 200 and (await answer.json())["type"] == "Announce"
