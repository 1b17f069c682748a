"""Crash tests: ``kill -9`` a Hearthside process mid-work; after a restart every delivery and
every received activity completes, and its effect happens exactly once.

DESIGN.md "Storage and processes": workers claim rows with a lease (``server/workers.py``),
do network I/O outside transactions and survive ``kill -9`` without losing or doubling work.
A killed process leaves leases behind: its claimed rows stay ``pending`` with
``locked_until`` in the future, and after that moment any worker claims them again. A row
whose side effect happened just before the kill (an inbox answered 202; a transaction
committed) is therefore done a second time; what keeps that harmless is the receiver's
deduplication by activity id (``inbox_items.activity_id`` is unique; research/federation.md
§8.4 items 20-23) and idempotent effects.

What runs: the sender (or receiver) under test is a real ``hearthside serve`` /
``hearthside worker`` subprocess, set up with ``hearthside init`` on 127.0.0.2. Its peers are
real Hearthside instances in this process (tests/federation_harness.py) on 127.0.0.3 and
127.0.0.4, each with a recording middleware that counts every POST to an inbox by activity id
(the raw count that repeated deliveries would show).

Time: a lease lasts ``request_timeout_seconds + 30 s`` (deliveries) or 5 minutes (inbox
items). Instead of sleeping that long, the tests move the dead process's ``locked_until``
into the past once they have shown that the restarted process leaves those rows alone — the
same state the clock would reach, without minutes of waiting.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from conftest import PgServer, _pg_admin, create_user_with_token, drop_database, make_config, new_database
from conftest import TestUser as Member
from federation_harness import Instance, close_instance, eventually
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from server.app import create_app
from server.config import Config, load_config, render_toml
from server.db import make_engine, make_sessionmaker
from server.devdb import free_port
from server.models import Account, Delivery, InboxItem, Notification, OutboxActivity, Status
from server.web import now

pytestmark = pytest.mark.timeout(150)

HEARTHSIDE = [sys.executable, "-m", "server"]
CONCURRENCY = 4  # federation.delivery_concurrency of the process under test: at most this many in flight
SENDER_HOST = "127.0.0.2"
RECEIVER_HOSTS = ("127.0.0.3", "127.0.0.4")


# ---------------------------------------------------------------------------- the process under test


@dataclass
class Served:
    """An instance made by ``hearthside init`` and run as ``hearthside serve``/``worker``."""

    data: Path
    port: int
    config_path: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://{SENDER_HOST}:{self.port}"

    @property
    def domain(self) -> str:
        return f"{SENDER_HOST}:{self.port}"

    def configure(self, **sections: dict[str, Any]) -> Config:
        """Rewrite the config file with these settings on top of what it holds."""
        current = tomllib.loads(self.config_path.read_text())
        for section, values in sections.items():
            current.setdefault(section, {}).update(values)
        self.config_path.write_text(render_toml(current))
        self.config_path.chmod(0o600)
        return load_config(self.config_path)

    def spawn(self, command: str) -> subprocess.Popen[bytes]:
        with (self.data / f"{command}.log").open("ab") as log:
            proc = subprocess.Popen([*HEARTHSIDE, command, "--config", str(self.config_path)], stdout=log, stderr=log)
        self.procs[command] = proc
        return proc

    async def start(self, command: str = "serve") -> subprocess.Popen[bytes]:
        """Start ``hearthside serve`` (returns once /readyz answers) or ``hearthside worker``."""
        proc = self.spawn(command)
        if command == "serve":
            await wait_for_http(f"{self.base_url}/readyz", proc)
        return proc

    def kill9(self, command: str = "serve") -> None:
        proc = self.procs.pop(command)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        assert proc.returncode == -signal.SIGKILL

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self.procs.clear()


async def wait_for_http(url: str, proc: subprocess.Popen[bytes], within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"hearthside exited with {proc.returncode} before answering {url}")
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with http.get(url, timeout=aiohttp.ClientTimeout(total=2)) as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.05)
    raise AssertionError(f"nothing answered {url} within {within} s")


async def init_served(tmp_path: Path, kind: str, pg: PgServer | None) -> Served:
    """`hearthside init` on 127.0.0.2, then the settings a loopback federation test needs."""
    data = tmp_path / "served"
    port = free_port()
    extra: list[str] = []
    if kind == "postgres":
        assert pg is not None
        name = f"crash_{port}"
        await _pg_admin(pg, f"CREATE DATABASE {name}")
        extra = ["--database-url", pg.url(name)]
    args = ["init", "--data-dir", str(data), "--host", SENDER_HOST, "--port", str(port), "--registrations", "open"]
    result = await asyncio.to_thread(
        subprocess.run, [*HEARTHSIDE, *args, *extra], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    served = Served(data, port, data / "hearthside.toml")
    served.configure(
        federation={
            "allow_private_addresses": True,
            "request_timeout_seconds": 10,
            "delivery_concurrency": CONCURRENCY,
        },
        security={"argon2_memory_kib": 1024, "argon2_time_cost": 1},
    )
    return served


# ---------------------------------------------------------------------------- recording peers


@dataclass
class Recorder:
    """Counts POSTs to inboxes by activity id; can hold each one for ``delay`` seconds."""

    delay: float = 0.0
    arrivals: collections.Counter[str] = field(default_factory=collections.Counter)
    answers: collections.Counter[int] = field(default_factory=collections.Counter)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.method != "POST" or not request.path.endswith("/inbox"):
            return await handler(request)
        body = await request.read()  # cached: the inbox handler reads the same bytes
        with contextlib.suppress(ValueError, AttributeError):
            self.arrivals[str(json.loads(body).get("id"))] += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        response: web.StreamResponse = await handler(request)
        self.answers[response.status] += 1
        return response


async def recording_instance(
    name: str, host: str, kind: str, folder: Path, pg: PgServer | None, recorder: Recorder
) -> Instance:
    """A harness instance (tests/federation_harness.py) whose app counts inbox POSTs first."""
    os.makedirs(folder, exist_ok=True)
    url = await new_database(kind, folder, pg)
    port = free_port()
    config = make_config(
        folder,
        url,
        instance={"base_url": f"http://{host}:{port}", "name": name, "registrations": "open"},
        server={"host": host, "port": port, "workers": True},
        federation={"allow_private_addresses": True, "request_timeout_seconds": 10},
    )
    instance = Instance(name, host, port, config, make_engine(url), url)
    app = create_app(config, engine=instance.engine)
    app.middlewares.insert(0, recorder.middleware)  # outermost: sees every answer, errors included
    instance.runner = web.AppRunner(app, access_log=None)
    await instance.runner.setup()
    await web.TCPSite(instance.runner, host, port).start()
    instance.http = aiohttp.ClientSession()
    return instance


@dataclass
class World:
    served: Served
    peers: list[Instance]
    recorders: list[Recorder]
    engine: AsyncEngine  # the served instance's database, opened by this test process
    config: Config


@pytest.fixture
async def world(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[World]:
    """The instance under test and two recording peers, all on ``request.param``'s database."""
    kind = request.param
    pg: PgServer | None = request.getfixturevalue("pg_server") if kind == "postgres" else None
    served = await init_served(tmp_path, kind, pg)
    config = load_config(served.config_path)
    engine = make_engine(config.database_url)
    peers: list[Instance] = []
    recorders = [Recorder() for _ in RECEIVER_HOSTS]
    try:
        for i, (host, recorder) in enumerate(zip(RECEIVER_HOSTS, recorders, strict=True)):
            peers.append(await recording_instance(f"peer{i}", host, kind, tmp_path / f"peer{i}", pg, recorder))
        yield World(served, peers, recorders, engine, config)
    finally:
        served.stop_all()
        for peer in peers:
            await close_instance(peer, pg)
        await engine.dispose()
        await drop_database(config.database_url, pg)


# ---------------------------------------------------------------------------- helpers


async def rows(engine: AsyncEngine, model: Any, *where: Any) -> list[Any]:
    async with make_sessionmaker(engine)() as session:
        return list((await session.scalars(select(model).where(*where))).all())


async def count(engine: AsyncEngine, model: Any, *where: Any) -> int:
    async with make_sessionmaker(engine)() as session:
        return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def expire_leases(engine: AsyncEngine, model: Any) -> int:
    """Move the dead process's leases into the past: what the clock does after the lease
    (``request_timeout_seconds + 30 s`` for deliveries, 2 min for inbox items)."""
    async with make_sessionmaker(engine)() as session:
        moved = await session.execute(
            update(model)
            .where(model.state == "pending", model.locked_until.is_not(None))
            .values(locked_until=now() - timedelta(seconds=1))
        )
        await session.commit()
        return int(moved.rowcount)  # type: ignore[attr-defined]


async def api(
    base_url: str, method: str, path: str, user: Member | None = None, *, expect: int = 200, **kwargs: Any
) -> Any:
    headers = dict(user.headers) if user is not None else {}
    async with aiohttp.ClientSession() as http:
        async with http.request(method, base_url + path, headers=headers, **kwargs) as response:
            text = await response.text()
            assert response.status == expect, f"{method} {path}: {response.status} {text[:300]}"
            return json.loads(text) if text else None


async def resolve(peer: Instance, user: Member, query: str, kind: str = "accounts") -> dict[str, Any]:
    found = await peer.api("GET", "/api/v2/search", user, params={"q": query, "resolve": "true", "type": kind})
    assert found[kind], f"{query} did not resolve on {peer.name}: {found}"
    first: dict[str, Any] = found[kind][0]
    return first


async def until(check: Callable[[], Awaitable[Any]], *, within: float, what: str, every: float = 0.02) -> Any:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        result = await check()
        if result:
            return result
        await asyncio.sleep(every)
    raise AssertionError(f"timed out after {within} s waiting for {what}")


async def gather_limited(jobs: list[Callable[[], Awaitable[Any]]], limit: int) -> list[Any]:
    gate = asyncio.Semaphore(limit)

    async def one(job: Callable[[], Awaitable[Any]]) -> Any:
        async with gate:
            return await job()

    return await asyncio.gather(*(one(job) for job in jobs))


# ---------------------------------------------------------------------------- deliveries


POSTS = 40


# The embedded default: `hearthside serve` with its in-process workers, on SQLite (WAL).
@pytest.mark.parametrize("world", ["sqlite"], indirect=True)
async def test_crash__kill9_mid_delivery_then_every_delivery_completes_once_at_the_receivers(world: World) -> None:
    served, (peer_a, peer_b), (rec_a, rec_b) = world.served, world.peers, world.recorders
    await served.start()
    poster = await create_user_with_token(world.engine, world.config, "poster")
    poster_uri = f"{served.base_url}/users/poster"

    # Three remote followers on two domains (two share peer A's shared inbox): each post makes
    # exactly two deliveries (DESIGN.md "Delivery": shared inboxes deduplicated; AP §7.1.3).
    followers = [
        (peer_a, await peer_a.user("ada")),
        (peer_a, await peer_a.user("abe")),
        (peer_b, await peer_b.user("bo")),
    ]
    for peer, user in followers:
        remote = await resolve(peer, user, f"@poster@{served.domain}")
        await peer.api("POST", f"/api/v1/accounts/{remote['id']}/follow", user)

    async def all_following() -> bool:
        for peer, user in followers:
            remote = await resolve(peer, user, f"@poster@{served.domain}")
            rel = (await peer.api("GET", "/api/v1/accounts/relationships", user, params={"id[]": remote["id"]}))[0]
            if not rel["following"]:
                return False
        return True

    await eventually(all_following, within=20, what="three remote follows accepted")

    # Hold each delivery a second at the receivers while the posts are written, so a backlog
    # builds whatever the machine's speed (at most CONCURRENCY per second get through).
    rec_a.delay = rec_b.delay = 1.0
    texts = [f"crash test post {i}" for i in range(POSTS)]
    posted = await gather_limited(
        [lambda t=t: api(served.base_url, "POST", "/api/v1/statuses", poster, json={"status": t}) for t in texts], 8
    )
    post_uris = {p["uri"] for p in posted}
    assert len(post_uris) == POSTS
    creates = await rows(world.engine, OutboxActivity, OutboxActivity.activity_type == "Create")
    create_ids = {row.id for row in creates}
    create_uris = {row.uri for row in creates}
    assert len(create_ids) == POSTS

    def ours(*where: Any) -> tuple[Any, ...]:
        return (Delivery.activity_id.in_(create_ids), *where)

    total = await count(world.engine, Delivery, *ours())
    assert total == 2 * POSTS

    # Now let them flow (20 ms each) and kill -9 with part delivered, part pending.
    rec_a.delay = rec_b.delay = 0.02

    async def some_delivered() -> bool:
        return await count(world.engine, Delivery, *ours(Delivery.state == "delivered")) >= total // 4

    await until(some_delivered, within=60, what="a quarter of the deliveries done")
    served.kill9()
    await asyncio.sleep(0.3)  # let the receivers read whatever the dead process had sent
    at_kill = {row.id: row for row in await rows(world.engine, Delivery, *ours())}
    arrived_at_kill = rec_a.arrivals + rec_b.arrivals
    moment = now()
    delivered_at_kill = {i for i, row in at_kill.items() if row.state == "delivered"}
    leased_at_kill = {
        i for i, row in at_kill.items() if row.state == "pending" and row.locked_until and row.locked_until > moment
    }
    free_at_kill = {i for i, row in at_kill.items() if row.state == "pending"} - leased_at_kill
    assert 0 < len(delivered_at_kill) < total, "the kill must land mid-delivery"
    assert leased_at_kill, "the kill must leave claimed rows behind"
    assert {row.state for row in at_kill.values()} <= {"delivered", "pending"}, "no delivery failed"
    activity_uri = {row.id: row.uri for row in creates}

    def recorder_of(row: Delivery) -> Recorder:
        return rec_a if peer_a.host in row.inbox_url else rec_b

    # POSTs a receiver got for rows still pending: sent, but the outcome never recorded.
    in_flight: set[tuple[str, str]] = set()  # (activity uri, inbox)
    for i in leased_at_kill:
        row = at_kill[i]
        if recorder_of(row).arrivals[activity_uri[row.activity_id]] >= 1:
            in_flight.add((activity_uri[row.activity_id], row.inbox_url))
    # At most the POSTs in flight at the kill, plus those answered while their outcome waited
    # in the worker's write buffer (written at most _Results.FLUSH_SECONDS = 20 ms later; the
    # receivers here take 50 ms per POST, so one more round of CONCURRENCY at worst).
    assert len(in_flight) <= 2 * CONCURRENCY
    assert all(recorder_of(at_kill[i]).arrivals[activity_uri[at_kill[i].activity_id]] == 0 for i in free_at_kill)

    # Restart on the same data directory. Rows nobody had claimed go out at once; the dead
    # process's claims are left alone while their lease lasts (no double claim).
    await served.start()
    if free_at_kill:

        async def free_done() -> bool:
            got = await rows(world.engine, Delivery, Delivery.id.in_(free_at_kill))
            return all(row.state == "delivered" for row in got)

        await until(free_done, within=30, what="unclaimed deliveries sent after the restart")
    await asyncio.sleep(1.5)  # more than a worker's poll interval (server/workers.py POLL_SECONDS)
    still = await rows(world.engine, Delivery, Delivery.id.in_(leased_at_kill))
    assert all(row.state == "pending" for row in still), "a live lease of the dead process was taken over"
    sent_since = (rec_a.arrivals + rec_b.arrivals) - arrived_at_kill
    assert sent_since == collections.Counter(activity_uri[at_kill[i].activity_id] for i in free_at_kill)

    # The lease runs out (simulated: see the module docstring); the restarted worker resends.
    assert await expire_leases(world.engine, Delivery) == len(leased_at_kill)

    async def all_delivered() -> bool:
        return await count(world.engine, Delivery, Delivery.state != "delivered") == 0

    await until(all_delivered, within=60, what="every delivery delivered after the restart", every=0.1)
    final = {row.id: row for row in await rows(world.engine, Delivery, *ours())}
    assert len(final) == total
    assert all(row.attempts == 1 for i, row in final.items() if i in delivered_at_kill)

    # At each receiver: every activity stored once, and applied once (one status per post).
    for peer, recorder in ((peer_a, rec_a), (peer_b, rec_b)):

        async def applied(peer: Instance = peer) -> bool:
            return (
                await count(peer.engine, InboxItem, InboxItem.activity_id.in_(create_uris), InboxItem.state == "done")
                == POSTS
            )

        await eventually(applied, within=30, what=f"{peer.name} processed every Create")
        items = await peer.rows(InboxItem, InboxItem.activity_id.in_(create_uris))
        assert sorted(item.activity_id for item in items) == sorted(create_uris)
        statuses = await peer.rows(Status, Status.uri.in_(post_uris))
        assert sorted(s.uri for s in statuses) == sorted(post_uris)
        author = await peer.one(Account, Account.uri == poster_uri)
        assert author.statuses_count == POSTS
        # Raw POSTs: each activity at least once; repeats only for rows in flight at the kill.
        received = {uri: n for uri, n in recorder.arrivals.items() if uri in create_uris}
        assert set(received) == create_uris
        repeated = {uri for uri, n in received.items() if n > 1}
        expected_repeats = {uri for uri, inbox in in_flight if peer.host in inbox}
        assert repeated == expected_repeats, "only the POSTs in flight at the kill may be repeated"
        assert all(n <= 2 for n in received.values())
        assert set(recorder.answers) <= {202}
    print(
        f"\ncrash: {len(delivered_at_kill)}/{total} delivered at kill, {len(leased_at_kill)} leased, "
        f"{len(free_at_kill)} unclaimed; {len(in_flight)} POSTs repeated after restart, deduplicated by the receivers"
    )


# ---------------------------------------------------------------------------- inbox items

REPLIES_EACH = 8


# The scale-out shape (DESIGN.md): web and worker processes on one PostgreSQL.
@pytest.mark.parametrize("world", ["postgres"], indirect=True)
async def test_crash__kill9_worker_mid_inbox_then_every_item_done_and_applied_once(world: World) -> None:
    """The scale-out shape: ``hearthside serve`` without workers answers the inboxes, and a
    ``hearthside worker`` process applies the items; the worker is killed mid-batch."""
    served, peers = world.served, world.peers
    world.config = served.configure(server={"workers": False})
    await served.start()
    host = await create_user_with_token(world.engine, world.config, "host")
    post = await api(served.base_url, "POST", "/api/v1/statuses", host, json={"status": "How is everyone today?"})

    # Two members on each peer find host's post, favourite it and reply to it; every Like and
    # Create lands in the served instance's inbox as a pending item (no worker runs yet).
    members = [(peer, await peer.user(name)) for peer in peers for name in (f"{peer.name}x", f"{peer.name}y")]
    parents: list[str] = []
    for peer, user in members:
        copy = await resolve(peer, user, post["uri"], kind="statuses")
        await peer.api("POST", f"/api/v1/statuses/{copy['id']}/favourite", user)
        parents.append(copy["id"])
    replies = await gather_limited(
        [
            lambda peer=peer, user=user, i=i, parent=parent: peer.api(
                "POST", "/api/v1/statuses", user, json={"status": f"reply {i}", "in_reply_to_id": parent}
            )
            for (peer, user), parent in zip(members, parents, strict=True)
            for i in range(REPLIES_EACH)
        ],
        8,
    )
    reply_uris = {reply["uri"] for reply in replies}
    expected = len(members) * (REPLIES_EACH + 1)

    async def all_received() -> bool:
        return await count(world.engine, InboxItem, InboxItem.activity_type.in_(("Create", "Like"))) == expected

    await eventually(all_received, within=30, what=f"{expected} inbox items at the served instance")
    assert await count(world.engine, InboxItem, InboxItem.state != "pending") == 0

    await served.start("worker")

    async def some_done() -> bool:
        return await count(world.engine, InboxItem, InboxItem.state == "done") >= 5

    await until(some_done, within=30, what="the worker to start on the items", every=0.005)
    served.kill9("worker")
    moment = now()
    at_kill = {row.id: row for row in await rows(world.engine, InboxItem)}
    done_at_kill = {i for i, row in at_kill.items() if row.state == "done"}
    leased_at_kill = {
        i for i, row in at_kill.items() if row.state == "pending" and row.locked_until and row.locked_until > moment
    }
    free_at_kill = {i for i, row in at_kill.items() if row.state == "pending"} - leased_at_kill
    assert 0 < len(done_at_kill) < expected, "the kill must land mid-processing"
    assert leased_at_kill, "the kill must leave claimed items behind"

    await served.start("worker")
    if free_at_kill:

        async def free_done() -> bool:
            got = await rows(world.engine, InboxItem, InboxItem.id.in_(free_at_kill))
            return all(row.state == "done" for row in got)

        await until(free_done, within=30, what="unclaimed items processed after the restart")
    await asyncio.sleep(1.5)  # more than a worker's poll interval
    still = await rows(world.engine, InboxItem, InboxItem.id.in_(leased_at_kill))
    assert all(row.state == "pending" for row in still), "a live lease of the dead worker was taken over"

    assert await expire_leases(world.engine, InboxItem) == len(leased_at_kill)

    async def all_done() -> bool:
        return await count(world.engine, InboxItem, InboxItem.state != "done") == 0

    await until(all_done, within=30, what="every inbox item done after the restart", every=0.1)
    items = await rows(world.engine, InboxItem)
    assert all(item.error is None and item.body is None for item in items)

    # Effects, once each: one status per reply, counted once on the parent and the authors;
    # one favourite per member, counted once, one notification each.
    stored = await rows(world.engine, Status, Status.uri.in_(reply_uris))
    assert sorted(s.uri for s in stored) == sorted(reply_uris)
    parent = (await rows(world.engine, Status, Status.id == int(post["id"])))[0]
    assert all(s.in_reply_to_id == parent.id for s in stored)
    assert parent.replies_count == len(reply_uris)
    assert parent.favourites_count == len(members)
    for _peer, user in members:
        [author] = await rows(world.engine, Account, Account.username == user.username, Account.domain != "")
        assert author.statuses_count == REPLIES_EACH
    host_account = (await rows(world.engine, Account, Account.username == "host", Account.domain == ""))[0]
    favourites = await rows(
        world.engine, Notification, Notification.account_id == host_account.id, Notification.type == "favourite"
    )
    assert len(favourites) == len(members)
    print(
        f"\ninbox crash: {len(done_at_kill)}/{expected} done at kill, {len(leased_at_kill)} leased, "
        f"{len(free_at_kill)} unclaimed"
    )


# ---------------------------------------------------------------------------- no window between effect and "done"
#
# The inbox worker commits an activity's effect and its item's "done" mark in one transaction
# (server/ingest.py commit_applied): a kill -9 either loses both (the item is applied again
# after its lease, from scratch) or keeps both. These tests step the worker by hand: after one
# application the item is already done, and nothing can apply it a second time. Answers a
# group sends (its Announce of an activity, an Accept) have ids derived from what they answer,
# so even a repeated application would send nothing new.


@pytest.fixture(params=["sqlite", "postgres"])
async def stepped(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[Instance, Instance]]:
    """Instance A without workers (this test steps them), instance B with workers."""
    from federation_harness import make_instance

    kind = request.param
    pg: PgServer | None = request.getfixturevalue("pg_server") if kind == "postgres" else None
    started: list[Instance] = []
    try:
        started.append(await make_instance("a", "127.0.0.2", kind, tmp_path / "a", pg, server={"workers": False}))
        started.append(await make_instance("b", "127.0.0.3", kind, tmp_path / "b", pg))
        yield started[0], started[1]
    finally:
        for instance in started:
            await close_instance(instance, pg)


def federation_of(instance: Instance) -> Any:
    from server.federation import FEDERATION

    assert instance.runner is not None
    return instance.runner.app[FEDERATION]


async def run_workers(instance: Instance) -> None:
    """One pass of A's inbox worker, then of its delivery worker."""
    from server.delivery import DeliveryWorker
    from server.ingest import InboxWorker

    fed = federation_of(instance)
    while await InboxWorker(fed).step():
        pass
    while await DeliveryWorker(fed).step():
        pass


async def apply_then_die(instance: Instance, activity_type: str) -> InboxItem:
    """Claim A's pending item of ``activity_type`` and apply it, as a worker about to die
    would; the item is done in the very transaction that applied it."""
    from server.ingest import LEASE, apply_item
    from server.workers import claim

    fed = federation_of(instance)
    pending = await instance.rows(InboxItem, InboxItem.state == "pending")
    assert [item.activity_type for item in pending] == [activity_type]
    [item] = await claim(fed.sessions, InboxItem, limit=10, lease=LEASE)
    await apply_item(fed, item)  # the process "dies" right after this commit
    [left] = await instance.rows(InboxItem, InboxItem.id == item.id)
    assert left.state == "done" and left.body is None  # effect and mark committed together
    await expire_leases(instance.engine, InboxItem)
    assert await claim(fed.sessions, InboxItem, limit=10, lease=LEASE) == []  # nothing to redo
    return item


async def joined(a: Instance, b: Instance, bob: Member, group_name: str) -> dict[str, Any]:
    remote = await resolve(b, bob, f"@{group_name}@{a.domain}")
    await b.api("POST", f"/api/v1/accounts/{remote['id']}/follow", bob)

    async def follow_arrived() -> bool:
        return bool(await a.rows(InboxItem, InboxItem.activity_type == "Follow"))

    await eventually(follow_arrived, what="bob's Follow at A")
    await run_workers(a)

    async def member() -> bool:
        rel = (await b.api("GET", "/api/v1/accounts/relationships", bob, params={"id[]": remote["id"]}))[0]
        return bool(rel["following"])

    await eventually(member, what="bob's membership accepted on B")
    return remote


async def test_crash__effect_and_done_commit_together_so_reply_and_like_count_once(
    stepped: tuple[Instance, Instance],
) -> None:
    a, b = stepped
    alice = await a.user("alice")
    bob = await b.user("bob")
    post = await a.api("POST", "/api/v1/statuses", alice, json={"status": "Anyone around tonight?"})
    copy = await resolve(b, bob, post["uri"], kind="statuses")

    await b.api("POST", f"/api/v1/statuses/{copy['id']}/favourite", bob)
    await eventually(lambda: a.rows(InboxItem, InboxItem.activity_type == "Like"), what="bob's Like at A")
    await apply_then_die(a, "Like")
    await run_workers(a)

    reply = await b.api("POST", "/api/v1/statuses", bob, json={"status": "I am.", "in_reply_to_id": copy["id"]})
    await eventually(lambda: a.rows(InboxItem, InboxItem.activity_type == "Create"), what="bob's reply at A")
    await apply_then_die(a, "Create")
    await run_workers(a)

    assert {item.state for item in await a.rows(InboxItem)} == {"done"}
    [parent] = await a.rows(Status, Status.id == int(post["id"]))
    assert (parent.favourites_count, parent.replies_count) == (1, 1)
    assert len(await a.rows(Status, Status.uri == reply["uri"])) == 1
    alice_account = await a.one(Account, Account.username == "alice", Account.domain == "")
    kinds = sorted(n.type for n in await a.rows(Notification, Notification.account_id == alice_account.id))
    assert kinds == ["favourite"]  # one, not two (a plain reply notifies nobody: no mention)
    bob_on_a = await a.one(Account, Account.uri == b.actor("bob"))
    assert bob_on_a.statuses_count == 1


async def test_crash__group_post_is_announced_once_even_if_announced_again(
    stepped: tuple[Instance, Instance],
) -> None:
    a, b = stepped
    alice = await a.user("alice")
    bob = await b.user("bob")
    await a.api("POST", "/api/v1/hearthside/groups", alice, json={"name": "circle", "display_name": "Circle"})
    remote_group = await joined(a, b, bob, "circle")

    post = await b.api(
        "POST", "/api/v1/statuses", bob, json={"status": "First time here.", "group_id": remote_group["id"]}
    )
    await eventually(lambda: a.rows(InboxItem, InboxItem.activity_type == "Create"), what="bob's group post at A")
    create = await apply_then_die(a, "Create")
    await run_workers(a)

    assert {item.state for item in await a.rows(InboxItem)} == {"done"}
    [stored] = await a.rows(Status, Status.uri == post["uri"])  # the post itself is stored once
    assert stored.group_id is not None
    announces = [
        row
        for row in await a.rows(OutboxActivity, OutboxActivity.activity_type == "Announce")
        if create.activity_id in row.body
    ]
    assert len(announces) == 1, f"{len(announces)} Announces of one Create"
    # Announcing the same activity again (what a repeated application would do) adds nothing:
    # the Announce's id is derived from the Create's.
    from server import outbox

    fed = federation_of(a)
    deliveries_before = len(await a.rows(Delivery))
    async with fed.sessions() as session:
        group = await session.get(Account, stored.group_id)
        assert group is not None
        await outbox.group_announce(session, fed, group, json.loads(announces[0].body)["object"], members_only=False)
        await session.commit()
    again = [
        row
        for row in await a.rows(OutboxActivity, OutboxActivity.activity_type == "Announce")
        if create.activity_id in row.body
    ]
    assert len(again) == 1 and len(await a.rows(Delivery)) == deliveries_before
