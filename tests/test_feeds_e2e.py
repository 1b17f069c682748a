"""Issue 5 "How it is shown": Hearthside instances on distinct loopback addresses publish and
subscribe to signed decision feeds (server/feeds.py publishes, server/subscriptions.py subscribes).
A publishes, B subscribes in auto mode and follows A's additions and retractions; a fake mirror
serving a tampered entry is rejected and logged; C re-publishes A's decision (derivedFrom) and B,
subscribed to A and C, counts them once.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from federation_harness import Instance, instances
from sqlalchemy import select

from server.models import DomainBlock

SUBS = "/api/v1/hearthside/admin/subscriptions"
ACCEPT = 'application/ld+json; profile="https://www.w3.org/ns/activitystreams"'
STAFF = {"role": "admin", "scopes": "read write admin:read admin:write"}


@pytest.fixture
async def trio(tmp_path: Path) -> AsyncIterator[list[Instance]]:
    async for started in instances("sqlite", tmp_path, None, hosts=("127.0.0.2", "127.0.0.3", "127.0.0.4")):
        for inst in started:
            await inst.user("boss", **STAFF)
        yield started


async def sync(inst: Instance, sub_id: str) -> dict[str, Any]:
    for _ in range(50):  # the scheduled job may hold the subscription for a moment
        result = await inst.api("POST", f"{SUBS}/{sub_id}/sync", inst.users["boss"], expect=None)
        if isinstance(result, dict) and result.get("status") in ("ok", "not_modified", "error"):
            return result
        await asyncio.sleep(0.1)
    raise AssertionError("sync stayed busy")


async def blocked(inst: Instance) -> dict[str, str]:
    return {b.domain: b.severity for b in await inst.rows(DomainBlock)}


async def test_feeds_e2e__subscribe_apply_retract_mirror_and_republish(
    trio: list[Instance], aiohttp_server: Any, caplog: Any
) -> None:
    a, b, c = trio
    boss_a, boss_b, boss_c = a.users["boss"], b.users["boss"], c.users["boss"]
    feed_a = f"{a.base_url}/moderation/feeds/public"

    sub = await b.api("POST", SUBS, boss_b, json={"url": feed_a, "mode": "auto", "trust_weight": 3})
    assert sub["format"] == "signed" and sub["pinned_keys"]

    # A adds a decision; B applies it after one sync.
    block = await a.api(
        "POST", "/api/v1/admin/domain_blocks", boss_a, json={"domain": "bad.example", "severity": "suspend"}
    )
    result = await sync(b, sub["id"])
    assert result["status"] == "ok" and result["rejected"] == 0, result
    assert (await blocked(b)).get("bad.example") == "suspend"

    # A retracts; B removes it.
    await a.api("DELETE", f"/api/v1/admin/domain_blocks/{block['id']}", boss_a)
    result = await sync(b, sub["id"])
    assert result["status"] == "ok", result
    assert "bad.example" not in await blocked(b)

    # A fake mirror serves A's feed with one entry tampered: rejected and logged, nothing applied.
    await a.api("POST", "/api/v1/admin/domain_blocks", boss_a, json={"domain": "mirror.example", "severity": "suspend"})
    session = aiohttp.ClientSession()

    async def mirror(request: web.Request) -> web.Response:
        tail = request.match_info["tail"]
        upstream = feed_a + tail + (f"?{request.query_string}" if request.query_string else "")
        async with session.get(upstream, headers={"Accept": ACCEPT}) as resp:
            doc = await resp.json(content_type=None)
        text = json.dumps(doc).replace(feed_a, mirror_url)
        doc = json.loads(text)
        for item in doc.get("orderedItems", []):
            if item.get("entityKey") == "mirror.example":
                item["entityKey"] = "innocent.example"
        return web.Response(text=json.dumps(doc), content_type="application/ld+json")

    app = web.Application()
    app.router.add_get("/feed{tail:.*}", mirror)
    server = await aiohttp_server(app, host="127.0.0.1")
    mirror_url = f"http://127.0.0.1:{server.port}/feed"
    try:
        mirrored = await b.api("POST", SUBS, boss_b, json={"url": mirror_url, "mode": "auto", "trust_weight": 3})
        result = await sync(b, mirrored["id"])
    finally:
        await session.close()
    assert result["rejected"] >= 1, result
    assert "innocent.example" not in await blocked(b)
    assert any("rejected" in r.getMessage() for r in caplog.records)
    await b.api("DELETE", f"{SUBS}/{mirrored['id']}", boss_b)

    # C subscribes to A and re-publishes its decisions with derivedFrom; B follows A and C with
    # weight 1 each (filter needs 2): they are one origin, so nothing is applied.
    await b.api("PATCH", f"{SUBS}/{sub['id']}", boss_b, json={"trust_weight": 1})
    sub_ca = await c.api("POST", SUBS, boss_c, json={"url": feed_a, "mode": "auto", "trust_weight": 3})
    await a.api("POST", "/api/v1/admin/domain_blocks", boss_a, json={"domain": "worse.example", "severity": "suspend"})
    assert (await sync(c, sub_ca["id"]))["status"] == "ok"
    assert (await blocked(c)).get("worse.example") == "suspend"
    sub_bc = await b.api(
        "POST", SUBS, boss_b, json={"url": f"{c.base_url}/moderation/feeds/public", "mode": "auto", "trust_weight": 1}
    )
    await sync(b, sub["id"])
    result = await sync(b, sub_bc["id"])
    assert result["status"] == "ok" and result["rejected"] == 0, result
    assert "worse.example" not in await blocked(b)
    async with b.session() as s:
        from server.models import SubscriptionOpinion

        opinions = list(
            await s.scalars(select(SubscriptionOpinion).where(SubscriptionOpinion.entity_key == "worse.example"))
        )
    assert len(opinions) == 2
    from_c = next(o for o in opinions if o.subscription_id == int(sub_bc["id"]))
    from_a = next(o for o in opinions if o.subscription_id == int(sub["id"]))
    assert from_a.entry_id in from_c.derived_from


async def test_feeds_e2e__retraction_propagates_through_a_republisher(trio: list[Instance]) -> None:
    """§6.c 21: C re-publishes A; when A retracts, C's merged result drops the entity, C emits its
    own Retraction (derivedFrom A's retraction), and B, subscribed only to C, converges in one sync."""
    a, b, c = trio
    boss_a, boss_b, boss_c = a.users["boss"], b.users["boss"], c.users["boss"]
    sub_ca = await c.api(
        "POST", SUBS, boss_c, json={"url": f"{a.base_url}/moderation/feeds/public", "mode": "auto", "trust_weight": 3}
    )
    sub_bc = await b.api(
        "POST", SUBS, boss_b, json={"url": f"{c.base_url}/moderation/feeds/public", "mode": "auto", "trust_weight": 3}
    )
    block = await a.api(
        "POST", "/api/v1/admin/domain_blocks", boss_a, json={"domain": "chain.example", "severity": "suspend"}
    )
    assert (await sync(c, sub_ca["id"]))["status"] == "ok"
    assert (await sync(b, sub_bc["id"]))["status"] == "ok"
    assert (await blocked(b)).get("chain.example") == "suspend"

    await a.api("DELETE", f"/api/v1/admin/domain_blocks/{block['id']}", boss_a)
    assert (await sync(c, sub_ca["id"]))["status"] == "ok"
    assert "chain.example" not in await blocked(c)
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{c.base_url}/moderation/feeds/public/changes", headers={"Accept": ACCEPT}) as resp:
            collection = await resp.json(content_type=None)
    page = collection.get("first") if isinstance(collection.get("first"), dict) else collection
    items = [i for i in page.get("orderedItems", []) if i.get("entityKey") == "chain.example"]
    assert [i["type"] for i in items] == ["Recommendation", "Retraction"], items
    assert items[1].get("derivedFrom"), items[1]  # C's retraction says where it came from
    assert (await sync(b, sub_bc["id"]))["status"] == "ok"
    assert "chain.example" not in await blocked(b)  # converged within one sync


async def test_feeds_e2e__push_hint_makes_the_subscriber_sync(tmp_path: Path) -> None:
    """A sends an ActivityPub Update of its changes collection to B (``feed_push_to``); B only
    schedules a pull of the subscription with exactly that URL, and applies A's new decision
    without anyone asking it to sync."""
    from federation_harness import close_instance, eventually, make_instance, post_as

    b = await make_instance("b", "127.0.0.3", "sqlite", tmp_path / "b", None)
    a = await make_instance("a", "127.0.0.2", "sqlite", tmp_path / "a", None, moderation={"feed_push_to": [b.domain]})
    try:
        boss_a = await a.user("boss", **STAFF)
        boss_b = await b.user("boss", **STAFF)
        sub = await b.api(
            "POST",
            SUBS,
            boss_b,
            json={"url": f"{a.base_url}/moderation/feeds/public", "mode": "auto", "trust_weight": 3},
        )
        assert (await sync(b, sub["id"]))["status"] in ("ok", "not_modified")  # nothing published yet
        await a.api(
            "POST", "/api/v1/admin/domain_blocks", boss_a, json={"domain": "pushed.example", "severity": "suspend"}
        )

        async def applied() -> bool:
            return (await blocked(b)).get("pushed.example") == "suspend"

        await eventually(applied, within=20, what="B to pull after A's push hint")

        # A hint naming a feed on another origin than the sender's is ignored (no pull is ever
        # made to a URL someone else chose).
        from sqlalchemy import update

        from server.models import InboxItem, Subscription

        elsewhere = "http://127.0.0.9:9/moderation/feeds/public/changes"
        async with b.session() as s:
            await s.execute(update(Subscription).where(Subscription.id == int(sub["id"])).values(changes_url=elsewhere))
            await s.commit()
        hint = {
            "@context": "https://www.w3.org/ns/activitystreams",
            "id": f"{a.base_url}/hints/1",
            "type": "Update",
            "actor": a.actor("boss"),
            "object": elsewhere,
        }
        assert await post_as(a, "boss", f"{b.base_url}/inbox", hint) == 202

        async def ignored() -> list[str | None]:
            rows = await b.rows(InboxItem, InboxItem.activity_id == hint["id"], InboxItem.state != "pending")
            return [r.error for r in rows]

        assert await eventually(ignored, what="the hint to be processed") == ["feed_hint_from_another_origin"]
    finally:
        await close_instance(a, None)
        await close_instance(b, None)
