"""Domain decisions between real instances on distinct loopback addresses (issue 5, "Federation
effects end to end"): after B suspends A's domain through the admin API, nothing from A reaches
B's members and nothing from B is delivered to A, and the follows between them are severed on B
with a notice to B's member; a limited domain's new follow becomes a follow request on B;
allowlist mode lets an allowed peer federate and refuses one that is not allowed. SQLite (the
PostgreSQL side of the same code runs in test_domain_effects.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from federation_harness import Instance, close_instance, eventually, instances, make_instance, resolve

from server.models import Account, Delivery, Follow, Status

pytestmark = pytest.mark.timeout(120)
ADMIN_SCOPES = "read write follow admin:read admin:write"


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[list[Instance]]:
    async for started in instances("sqlite", tmp_path, None):
        yield started


async def follow_remote(inst: Instance, user: Any, handle: str, *, accepted: bool = True) -> dict[str, Any]:
    remote = await resolve(inst, user, handle)
    await inst.api("POST", f"/api/v1/accounts/{remote['id']}/follow", user)
    if accepted:

        async def done() -> bool:
            rels = await inst.api("GET", "/api/v1/accounts/relationships", user, params={"id[]": remote["id"]})
            return bool(rels[0]["following"])

        await eventually(done, what=f"follow of {handle} accepted")
    return remote


async def test_e2e__suspending_a_domain_cuts_it_off_and_severs_follows(pair: list[Instance]) -> None:
    a, b = pair
    alice = await a.user("alice")
    bob = await b.user("bob")
    boss = await b.user("boss", role="admin", scopes=ADMIN_SCOPES)
    await follow_remote(b, bob, f"@alice@{a.domain}")
    await follow_remote(a, alice, f"@bob@{b.domain}")
    me = await b.api("GET", "/api/v1/accounts/verify_credentials", bob)
    assert (me["followers_count"], me["following_count"]) == (1, 1)

    await b.api("POST", "/api/v1/admin/domain_blocks", boss, data={"domain": a.host, "severity": "suspend"})

    # Severed on B, both directions, counters right, the member told once.
    assert await b.rows(Follow) == []
    me = await b.api("GET", "/api/v1/accounts/verify_credentials", bob)
    assert (me["followers_count"], me["following_count"]) == (0, 0)
    notes = await b.api("GET", "/api/v1/notifications", bob)
    assert [n["type"] for n in notes] == ["severed_relationships"]
    assert notes[0]["event"]["target_name"] == a.host
    assert (notes[0]["event"]["followers_count"], notes[0]["event"]["following_count"]) == (1, 1)
    events = await b.api("GET", "/api/v1/severed_relationships", bob)
    assert [e["id"] for e in events] == [notes[0]["event"]["id"]]
    [alice_on_b] = await b.rows(Account, Account.uri == a.actor("alice"))
    assert alice_on_b.suspended_at is not None

    # A's post does not reach B: refused at the inbox (403, final), not stored, not in bob's home.
    post = await a.api("POST", "/api/v1/statuses", alice, json={"status": "Hello from A"})

    async def refused() -> list[Delivery]:
        return await a.rows(Delivery, Delivery.state == "failed", Delivery.last_status == 403)

    await eventually(refused, what="A's delivery refused by B")
    assert await b.rows(Status, Status.uri == post["uri"]) == []
    assert all(s["uri"] != post["uri"] for s in await b.api("GET", "/api/v1/timelines/home", bob))

    # Nothing from B is queued for A, even a post addressed to A's (former) follower.
    before = {d.id for d in await b.rows(Delivery, Delivery.domain == a.domain)}  # follows and accepts, sent
    await b.api(
        "POST", "/api/v1/statuses", bob, json={"status": f"@alice@{a.domain} are you there?", "visibility": "public"}
    )
    assert {d.id for d in await b.rows(Delivery, Delivery.domain == a.domain)} == before
    # And B no longer fetches anything from A.
    found = await b.api("GET", "/api/v2/search", bob, params={"q": a.actor("alice"), "resolve": "true"})
    assert found["accounts"] == []


async def test_e2e__limited_domain_follow_becomes_a_request(pair: list[Instance]) -> None:
    a, b = pair
    alice = await a.user("alice")
    bob = await b.user("bob")  # unlocked
    boss = await b.user("boss", role="admin", scopes=ADMIN_SCOPES)
    await b.api("POST", "/api/v1/admin/domain_blocks", boss, data={"domain": a.host, "severity": "silence"})
    remote_bob = await follow_remote(a, alice, f"@bob@{b.domain}", accepted=False)

    async def requested() -> list[Any]:
        found: list[Any] = await b.api("GET", "/api/v1/follow_requests", bob)
        return found

    [asker] = await eventually(requested, what="a follow request on B")
    assert asker["acct"] == f"alice@{a.domain}"
    assert await b.rows(Follow, Follow.state == "accepted") == []
    rels = await a.api("GET", "/api/v1/accounts/relationships", alice, params={"id[]": remote_bob["id"]})
    assert rels[0]["requested"] and not rels[0]["following"]  # no Accept was sent

    await b.api("POST", f"/api/v1/follow_requests/{asker['id']}/authorize", bob)

    async def accepted() -> bool:
        rels = await a.api("GET", "/api/v1/accounts/relationships", alice, params={"id[]": remote_bob["id"]})
        return bool(rels[0]["following"])

    await eventually(accepted, what="the approved request accepted on A")


@pytest.fixture
async def allowlisted(tmp_path: Path) -> AsyncIterator[list[Instance]]:
    started: list[Instance] = []
    try:
        started.append(await make_instance("a", "127.0.0.2", "sqlite", tmp_path / "a", None))
        started.append(
            await make_instance("b", "127.0.0.3", "sqlite", tmp_path / "b", None, federation={"mode": "allowlist"})
        )
        started.append(await make_instance("c", "127.0.0.4", "sqlite", tmp_path / "c", None))
        yield started
    finally:
        for instance in started:
            await close_instance(instance, None)


async def test_e2e__allowlist_mode_federates_only_with_allowed_peers(allowlisted: list[Instance]) -> None:
    a, b, c = allowlisted
    alice = await a.user("alice")
    bob = await b.user("bob")
    carol = await c.user("carol")
    boss = await b.user("boss", role="admin", scopes=ADMIN_SCOPES)
    await b.api("POST", "/api/v1/admin/domain_allows", boss, data={"domain": a.host})

    # The allowed peer federates both ways.
    await follow_remote(a, alice, f"@bob@{b.domain}")
    await follow_remote(b, bob, f"@alice@{a.domain}")

    # The other is refused: its Follow is answered 403 at B's inbox and never stored.
    await follow_remote(c, carol, f"@bob@{b.domain}", accepted=False)

    async def refused() -> list[Delivery]:
        return await c.rows(Delivery, Delivery.state == "failed", Delivery.last_status == 403)

    await eventually(refused, what="C's Follow refused by B")
    assert await b.rows(Account, Account.uri == c.actor("carol")) == []
    # B fetches nothing from it either: the handle does not resolve.
    found = await b.api(
        "GET", "/api/v2/search", bob, params={"q": f"@carol@{c.domain}", "resolve": "true", "type": "accounts"}
    )
    assert found["accounts"] == []
