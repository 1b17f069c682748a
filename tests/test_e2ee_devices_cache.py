"""The remembered ``e2ee:devices`` URL of remote members (server/api/e2ee.py, DevicesUrlCache).

Two real instances (tests/federation_harness.py); requests are counted on the remote one from
its own per-application request metrics (``METRICS``, by route template), so nothing in the
code under test is patched. What is shown: the actor document is fetched once, not per send;
the devices collection is fetched on every send, so a revoked device disappears from the very
next keys query; a remembered URL that has gone stale is replaced within the same request; a
remembered URL on another host than the actor's is never requested.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from federation_harness import Instance, instances
from test_e2ee_e2e import device, handle, mutual_follow, receive_until, talking

from server.api.e2ee import DEVICES_URLS, DevicesUrlCache
from server.devdb import free_port
from server.metrics import METRICS

PASSPHRASE = "a passphrase for the devices cache tests"
ACTOR_ROUTE = "/users/{username}"
DEVICES_ROUTE = "/users/{username}/devices"


@pytest.fixture
async def pair(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[list[Instance]]:
    monkeypatch.setenv("HEARTHSIDE_DM_PASSPHRASE", PASSPHRASE)
    async for started in instances("sqlite", tmp_path, None):
        yield started


def served(inst: Instance, route: str, status: str | None = None) -> int:
    """GET requests ``inst`` has answered on ``route`` (a route template), read from its metrics."""
    assert inst.runner is not None
    total = 0.0
    for family in inst.runner.app[METRICS].registry.collect():
        for sample in family.samples:
            labels = sample.labels
            if (
                sample.name == "hearthside_http_requests_total"
                and labels.get("method") == "GET"
                and labels.get("route") == route
                and status in (None, labels.get("status"))
            ):
                total += sample.value
    return int(total)


def counts(inst: Instance) -> tuple[int, int]:
    return served(inst, ACTOR_ROUTE), served(inst, DEVICES_ROUTE)


def cache_of(inst: Instance) -> DevicesUrlCache:
    assert inst.runner is not None
    return inst.runner.app[DEVICES_URLS]


async def query_keys(inst: Instance, token: str, actor: str) -> dict[str, Any]:
    answer: dict[str, Any] = await inst.api(
        "GET",
        "/api/v1/hearthside/e2ee/keys",
        None,
        params={"actor": actor},
        headers={"Authorization": f"Bearer {token}"},
    )
    return answer


def test_devices_url_cache__expires_and_drops_the_oldest() -> None:
    cache = DevicesUrlCache(ttl=60.0, max_entries=2)
    cache.put("https://b.example/users/bob", "https://b.example/users/bob/devices", clock=100.0)
    assert cache.get("https://b.example/users/bob", clock=159.0) == "https://b.example/users/bob/devices"
    assert cache.get("https://b.example/users/bob", clock=160.0) is None  # expired, and removed
    assert len(cache) == 0
    cache.put("https://b.example/users/a", "https://b.example/users/a/devices", clock=200.0)
    cache.put("https://b.example/users/b", "https://b.example/users/b/devices", clock=201.0)
    cache.put("https://b.example/users/a", "https://b.example/users/a/devices2", clock=202.0)  # now the newest
    cache.put("https://b.example/users/c", "https://b.example/users/c/devices", clock=203.0)
    assert len(cache) == 2
    assert cache.get("https://b.example/users/b", clock=204.0) is None  # the oldest stored went first
    assert cache.get("https://b.example/users/a", clock=204.0) == "https://b.example/users/a/devices2"
    # A clock that went backwards is not trusted to mean "fresh".
    assert cache.get("https://b.example/users/c", clock=0.0) is None
    cache.put("https://b.example/users/c", "https://b.example/users/c/devices", clock=300.0)
    cache.forget("https://b.example/users/c")
    assert cache.get("https://b.example/users/c", clock=300.0) is None


async def test_send__actor_document_fetched_once_devices_on_every_send(pair: list[Instance]) -> None:
    async with talking(pair) as (a, b, alice1, bob1):
        actor_before, devices_before = counts(b)
        await alice1.send(handle(b, "bob"), "first")  # keys query + claim: the first message
        await alice1.send(handle(b, "bob"), "second")  # keys query only: a session exists
        assert sorted(m.content for m in await receive_until(bob1, 2)) == ["first", "second"]
        actor_after, devices_after = counts(b)
        assert actor_after - actor_before == 1
        assert devices_after - devices_before == 3
        assert cache_of(a).get(b.actor("bob"), clock=time.monotonic()) == b.actor("bob") + "/devices"

        # The control: with nothing remembered, each later message fetches the actor again.
        cache_of(a).ttl = 0.0
        await alice1.send(handle(b, "bob"), "third")
        assert [m.content for m in await receive_until(bob1)] == ["third"]
        assert counts(b) == (actor_after + 1, devices_after + 1)


async def test_keys_query__a_revoked_device_is_gone_from_the_next_answer(pair: list[Instance]) -> None:
    a, b = pair
    alice = await a.user("alice")
    bob = await b.user("bob")
    await mutual_follow(a, alice, b, bob)
    alice1, _ = await device(a, "alice")
    bob1, first = await device(b, "bob")
    bob2, _ = await device(b, "bob", recovery_code=first.recovery_code)
    try:
        token = alice1.profile.token
        before = await query_keys(a, token, b.actor("bob"))
        both = {bob1.device.device_id, bob2.device.device_id}
        assert {d["device_id"] for d in before["devices"]} == both
        assert cache_of(a).get(b.actor("bob"), clock=time.monotonic()) is not None
        actor_before, _devices = counts(b)

        await bob1.revoke(bob2.device.device_id)
        after = await query_keys(a, token, b.actor("bob"))
        assert [d["device_id"] for d in after["devices"]] == [bob1.device.device_id]
        signed = after["device_list"]
        assert [d["deviceId"] for d in signed["devices"]] == [bob1.device.device_id]
        assert signed["version"] > before["device_list"]["version"]
        # Served with the remembered URL: the actor was not refetched, the collection was.
        assert served(b, ACTOR_ROUTE) == actor_before
    finally:
        for client in (alice1, bob1, bob2):
            await client.close()


async def test_send__a_stale_remembered_url_is_replaced_in_the_same_request(pair: list[Instance]) -> None:
    async with talking(pair) as (a, b, alice1, bob1):
        stale = b.actor("bob") + "/nowhere"
        assert b.http is not None
        async with b.http.get(stale, headers={"Accept": "application/activity+json"}) as response:
            assert response.status == 404
        cache_of(a).put(b.actor("bob"), stale, clock=time.monotonic())
        actor_before, _devices = counts(b)
        missing_before = served(b, "unmatched", "404")

        await alice1.send(handle(b, "bob"), "after the move")
        assert [m.content for m in await receive_until(bob1)] == ["after the move"]
        assert served(b, "unmatched", "404") == missing_before + 1  # the stale URL was tried once
        assert served(b, ACTOR_ROUTE) == actor_before + 1  # then the actor, once for query and claim
        assert cache_of(a).get(b.actor("bob"), clock=time.monotonic()) == b.actor("bob") + "/devices"


async def test_send__a_remembered_url_on_another_host_is_never_requested(pair: list[Instance]) -> None:
    async with talking(pair) as (a, b, alice1, bob1):
        # A bystander on another address counts every request it gets (and answers 404, which
        # would only send A back to bob's actor document: the send works either way, so the count
        # is what shows the remembered URL was not followed).
        hits: list[str] = []

        async def bystander(request: web.Request) -> web.Response:
            hits.append(request.path)
            raise web.HTTPNotFound()

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", bystander)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.4", port).start()
        try:
            cache_of(a).put(b.actor("bob"), f"http://127.0.0.4:{port}/users/bob/devices", clock=time.monotonic())
            actor_before, _devices = counts(b)
            await alice1.send(handle(b, "bob"), "only from bob's own server")
            assert [m.content for m in await receive_until(bob1)] == ["only from bob's own server"]
            assert hits == []
            assert served(b, ACTOR_ROUTE) == actor_before + 1
            assert cache_of(a).get(b.actor("bob"), clock=time.monotonic()) == b.actor("bob") + "/devices"
        finally:
            await runner.cleanup()
