"""The stored ``e2ee:devices`` URL of remote members (``accounts.devices_url``; server/api/e2ee.py).

Two real instances (tests/federation_harness.py); requests are counted on the remote one from
its own per-application request metrics (``METRICS``, by route template), so nothing in the
code under test is patched. What is shown: messages to a known remote member fetch no actor
document; the devices collection is fetched on every send, so a revoked device disappears from
the very next keys query; a stored URL that has gone stale is replaced within the same request;
a stored URL on another host than the actor's is never requested; the actor's own ``Update``
refreshes the stored URL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from federation_harness import Instance, close_instance, eventually, instances, make_instance
from sqlalchemy import update
from test_e2ee_e2e import device, handle, mutual_follow, receive_until, talking

from server.api.e2ee import ACTOR_RECHECK
from server.devdb import free_port
from server.metrics import METRICS
from server.models import Account
from server.web import now

PASSPHRASE = "a passphrase for the devices URL tests"
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


async def stored_url(inst: Instance, actor: str) -> str | None:
    url: str | None = (await inst.one(Account, Account.uri == actor)).devices_url
    return url


async def store_url(inst: Instance, actor: str, url: str | None, **also: Any) -> None:
    async with inst.session() as session:
        await session.execute(update(Account).where(Account.uri == actor).values(devices_url=url, **also))
        await session.commit()


async def query_keys(inst: Instance, token: str, actor: str) -> dict[str, Any]:
    answer: dict[str, Any] = await inst.api(
        "GET",
        "/api/v1/hearthside/e2ee/keys",
        None,
        params={"actor": actor},
        headers={"Authorization": f"Bearer {token}"},
    )
    return answer


async def test_send__no_actor_fetch_the_devices_on_every_send(pair: list[Instance]) -> None:
    async with talking(pair) as (a, b, alice1, bob1):
        bob_actor = b.actor("bob")
        assert await stored_url(a, bob_actor) == bob_actor + "/devices"  # stored when bob was looked up
        actor_before, devices_before = counts(b)
        await alice1.send(handle(b, "bob"), "first")  # keys query + claim: the first message
        await alice1.send(handle(b, "bob"), "second")  # keys query only: a session exists
        assert sorted(m.content for m in await receive_until(bob1, 2)) == ["first", "second"]
        actor_after, devices_after = counts(b)
        assert actor_after == actor_before
        assert devices_after - devices_before == 3

        # The control: with no URL stored (an actor stored before its server offered E2EE), the
        # actor document is fetched (once: it is stored).
        await store_url(a, bob_actor, None, fetched_at=now() - ACTOR_RECHECK - timedelta(seconds=1))
        await alice1.send(handle(b, "bob"), "third")
        await alice1.send(handle(b, "bob"), "fourth")
        assert [m.content for m in await receive_until(bob1, 2)] == ["third", "fourth"]
        assert counts(b) == (actor_after + 1, devices_after + 2)
        assert await stored_url(a, bob_actor) == bob_actor + "/devices"


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
        actor_before, _devices = counts(b)

        await bob1.revoke(bob2.device.device_id)
        after = await query_keys(a, token, b.actor("bob"))
        assert [d["device_id"] for d in after["devices"]] == [bob1.device.device_id]
        signed = after["device_list"]
        assert [d["deviceId"] for d in signed["devices"]] == [bob1.device.device_id]
        assert signed["version"] > before["device_list"]["version"]
        # Served with the stored URL: the actor was not refetched, the collection was.
        assert served(b, ACTOR_ROUTE) == actor_before
    finally:
        for client in (alice1, bob1, bob2):
            await client.close()


async def test_send__a_stale_stored_url_is_replaced_in_the_same_request(pair: list[Instance]) -> None:
    async with talking(pair) as (a, b, alice1, bob1):
        stale = b.actor("bob") + "/nowhere"
        assert b.http is not None
        async with b.http.get(stale, headers={"Accept": "application/activity+json"}) as response:
            assert response.status == 404
        await store_url(a, b.actor("bob"), stale)
        actor_before, _devices = counts(b)
        missing_before = served(b, "unmatched", "404")

        await alice1.send(handle(b, "bob"), "after the move")
        assert [m.content for m in await receive_until(bob1)] == ["after the move"]
        assert served(b, "unmatched", "404") == missing_before + 1  # the stale URL was tried once
        assert served(b, ACTOR_ROUTE) == actor_before + 1  # then the actor, once for query and claim
        assert await stored_url(a, b.actor("bob")) == b.actor("bob") + "/devices"


async def test_send__a_stored_url_on_another_host_is_never_requested(pair: list[Instance]) -> None:
    async with talking(pair) as (a, b, alice1, bob1):
        # A bystander on another address counts every request it gets (and answers 404, which
        # would only send A back to bob's actor document: the send works either way, so the count
        # is what shows the stored URL was not followed).
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
            await store_url(a, b.actor("bob"), f"http://127.0.0.4:{port}/users/bob/devices")
            actor_before, _devices = counts(b)
            await alice1.send(handle(b, "bob"), "only from bob's own server")
            assert [m.content for m in await receive_until(bob1)] == ["only from bob's own server"]
            assert hits == []
            assert served(b, ACTOR_ROUTE) == actor_before + 1
            assert await stored_url(a, b.actor("bob")) == b.actor("bob") + "/devices"
        finally:
            await runner.cleanup()


async def test_actor_update__refreshes_the_stored_url(pair: list[Instance]) -> None:
    async with talking(pair) as (a, b, alice1, bob1):
        bob_actor = b.actor("bob")
        await store_url(a, bob_actor, bob_actor + "/nowhere")
        # Bob edits his profile: his server sends Update(Person) to his followers' servers, and
        # A takes the actor document from its origin (server/ingest.py on_update).
        bob = b.users["bob"]
        await b.api("PATCH", "/api/v1/accounts/update_credentials", bob, json={"display_name": "Bob B."})

        async def refreshed() -> bool:
            return await stored_url(a, bob_actor) == bob_actor + "/devices"

        await eventually(refreshed, what="bob's devices URL after his Update")
        actor_before, devices_before = counts(b)
        missing_before = served(b, "unmatched", "404")
        await alice1.send(handle(b, "bob"), "after the update")
        assert [m.content for m in await receive_until(bob1)] == ["after the update"]
        # The stale URL is never tried and no actor fetch is needed: the Update refreshed it.
        assert counts(b) == (actor_before, devices_before + 2)
        assert served(b, "unmatched", "404") == missing_before


async def test_keys_query__an_actor_without_e2ee_is_not_refetched_at_once(tmp_path: Path) -> None:
    """B runs without E2EE, so bob's actor document has no ``e2ee:devices``: A answers 422 from
    the document its own handle lookup just stored (one actor fetch, not two), answers the same
    without asking again for a few minutes, and looks again once the document is older."""
    a = await make_instance("a", "127.0.0.2", "sqlite", tmp_path / "a", None)
    b = await make_instance("b", "127.0.0.3", "sqlite", tmp_path / "b", None, e2ee={"enabled": False})
    try:
        alice = await a.user("alice", scopes="read write follow crypto")
        await b.user("bob")
        bob_actor = b.actor("bob")
        for expected_fetches in (1, 1):
            answer = await a.api("GET", "/api/v1/hearthside/e2ee/keys", alice, expect=422, params={"actor": bob_actor})
            assert "does not offer end-to-end encrypted messages" in answer["error"]
            assert served(b, ACTOR_ROUTE) == expected_fetches
        await store_url(a, bob_actor, None, fetched_at=now() - ACTOR_RECHECK - timedelta(seconds=1))
        await a.api("GET", "/api/v1/hearthside/e2ee/keys", alice, expect=422, params={"actor": bob_actor})
        assert served(b, ACTOR_ROUTE) == 2
        assert await stored_url(a, bob_actor) is None
    finally:
        for inst in (a, b):
            await close_instance(inst, None)
