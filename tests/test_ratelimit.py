"""Security rate limits counted in the database (server/ratelimit.py), on SQLite and PostgreSQL.

The limiter itself is driven with an injected clock. The four limits it serves (failed logins,
password checks, one-time-key claims, encrypted sends) are driven through two application
instances with an engine each on one database, for their answers (status, Retry-After,
message), and through two real ``hearthside serve`` processes on one instance, each request
alternating between them. Only the real processes prove the limits hold across processes:
inside one test process the module-level counters the limits used to keep were shared by
every app (all but the login limit's), so a per-process limit would pass the app tests too.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from conftest import _free_port, create_user_with_token, make_config, wait_for_port
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine
from test_cli import init_instance
from test_e2ee_api import CRYPTO_SCOPES, Member, claim, count, expect_error, message_body, ok
from test_oauth import PASSWORD, open_form, password_grant, register_app, submit_form

from server.app import create_app
from server.config import Config, load_config, with_overrides
from server.db import make_engine, make_sessionmaker
from server.errors import TooManyRequests
from server.models import Account, E2EEMessage, E2EEOneTimeKey, RateLimitHits
from server.ratelimit import WINDOW, Hit, RateLimit, Usage

T0 = 1_800_000_000.0  # a window start (divisible by 60), far from the wall clock
H = "/api/v1/hearthside"


def limit_named(prefix: str = "t", **kwargs: Any) -> RateLimit:
    """A limiter with a bucket of its own (bucket names are unique per process)."""
    return RateLimit(f"{prefix}-{uuid.uuid4().hex[:12]}", "slow down; try again in {seconds} seconds", **kwargs)


async def rows(engine: AsyncEngine, bucket: str) -> list[tuple[int, str, int]]:
    async with engine.connect() as conn:
        found = await conn.execute(
            select(RateLimitHits.window_start, RateLimitHits.key, RateLimitHits.hits)
            .where(RateLimitHits.bucket == bucket)
            .order_by(RateLimitHits.window_start)
        )
        return [(int(w), str(k), int(h)) for w, k, h in found.all()]


async def hits(engine: AsyncEngine, limiter: RateLimit, *key: str | int, at: float) -> bool:
    """One event in a session of its own; False when refused."""
    async with make_sessionmaker(engine)() as session:
        try:
            await limiter.hit(session, *key, limit=3, at=at)
        except TooManyRequests:
            return False
        return True


# ---------------------------------------------------------------------------- the estimate


def test_usage__previous_window_fades_over_the_minute() -> None:
    assert Usage(previous=3, current=0, elapsed=0).estimate() == 3
    assert Usage(previous=3, current=1, elapsed=30).estimate() == 2.5
    assert Usage(previous=3, current=0, elapsed=1).allows(3)  # 2.95
    assert not Usage(previous=3, current=1, elapsed=1).allows(3)  # 3.95
    # Full window: wait for it to end and fade; previous share: wait until it fades enough.
    assert Usage(previous=0, current=3, elapsed=20).retry_after(3) == 41
    assert Usage(previous=3, current=1, elapsed=1).retry_after(3) == 20  # 3 * (1 - 21/60) + 1 < 3
    assert 1 <= Usage(previous=0, current=3, elapsed=59.99).retry_after(3) <= WINDOW


# ---------------------------------------------------------------------------- the limiter


async def test_hit__counts_to_the_limit_then_refuses_without_writing(engine: AsyncEngine) -> None:
    limiter = limit_named()
    assert [await hits(engine, limiter, "alice", at=T0 + 10 + i) for i in range(4)] == [True, True, True, False]
    [(window, _key, count_)] = await rows(engine, limiter.bucket)
    assert (window, count_) == (T0, 3)  # the refusal wrote nothing
    async with make_sessionmaker(engine)() as session:
        with pytest.raises(TooManyRequests) as refused:
            await limiter.hit(session, "alice", limit=3, at=T0 + 20)
    assert refused.value.retry_after == 41  # this window ends in 40 s, then a hair of fading
    assert refused.value.message == "slow down; try again in 41 seconds"


async def test_keys__are_digests_not_names(engine: AsyncEngine) -> None:
    limiter = limit_named()
    assert await hits(engine, limiter, "alice@example.org", at=T0)
    [(_window, key, _count)] = await rows(engine, limiter.bucket)
    expected = hashlib.sha256(json.dumps([limiter.bucket, "alice@example.org"]).encode()).hexdigest()
    assert key == expected and "alice" not in key


async def test_window__slides_and_the_limit_resets(engine: AsyncEngine) -> None:
    limiter = limit_named()
    for i in range(3):
        assert await hits(engine, limiter, "alice", at=T0 + 30 + i)
    assert not await hits(engine, limiter, "alice", at=T0 + 59)
    # A second into the next window the previous one weighs 2.95: room for one, no more.
    assert await hits(engine, limiter, "alice", at=T0 + WINDOW + 1)
    assert not await hits(engine, limiter, "alice", at=T0 + WINDOW + 2)
    async with make_sessionmaker(engine)() as session:
        with pytest.raises(TooManyRequests) as refused:
            await limiter.check(session, "alice", limit=3, at=T0 + WINDOW + 1)
    assert refused.value.retry_after == 20
    assert not await hits(engine, limiter, "alice", at=T0 + WINDOW + 19)  # 3 * 41/60 + 1 = 3.05
    assert await hits(engine, limiter, "alice", at=T0 + WINDOW + 22)  # 3 * 38/60 + 1 = 2.9
    # A minute without events: the older windows no longer count, the full limit again.
    for i in range(3):
        assert await hits(engine, limiter, "alice", at=T0 + 3 * WINDOW + i)
    assert not await hits(engine, limiter, "alice", at=T0 + 3 * WINDOW + 5)


async def test_keys_and_buckets__do_not_interfere(engine: AsyncEngine) -> None:
    first, second = limit_named(), limit_named()
    for i in range(3):
        assert await hits(engine, first, "alice", at=T0 + i)
    assert not await hits(engine, first, "alice", at=T0 + 5)
    assert await hits(engine, first, "bob", at=T0 + 5)  # another key
    assert await hits(engine, second, "alice", at=T0 + 5)  # the same key in another bucket
    assert await hits(engine, first, "alice", 7, at=T0 + 5)  # more parts: another key


async def test_check__refuses_without_counting(engine: AsyncEngine) -> None:
    limiter = limit_named()
    async with make_sessionmaker(engine)() as session:
        for _ in range(10):
            usage = await limiter.check(session, "alice", limit=3, at=T0 + 1)
        assert usage == Usage(0, 0, 1.0)
        await session.rollback()  # gives the connection back (SQLite has one)
        assert await rows(engine, limiter.bucket) == []
        for i in range(3):
            await limiter.hit(session, "alice", limit=3, at=T0 + 2 + i)
        with pytest.raises(TooManyRequests):
            await limiter.check(session, "alice", limit=3, at=T0 + 10)
        assert (await limiter.check(session, "alice", limit=4, at=T0 + 10)).current == 3


async def test_forgive__takes_one_back_and_never_below_zero(engine: AsyncEngine) -> None:
    limiter = limit_named()
    async with make_sessionmaker(engine)() as session:
        attempts = [await limiter.hit(session, "alice", limit=3, at=T0 + i) for i in range(3)]
        with pytest.raises(TooManyRequests):
            await limiter.hit(session, "alice", limit=3, at=T0 + 4)
        await limiter.forgive(session, attempts[0])
        await limiter.hit(session, "alice", limit=3, at=T0 + 5)  # room again
        for attempt in attempts:
            await limiter.forgive(session, attempt)
        await limiter.forgive(session, attempts[0])
    assert [count_ for _w, _k, count_ in await rows(engine, limiter.bucket)] == [0]


async def test_hit__refuses_a_session_that_has_written(engine: AsyncEngine) -> None:
    """Committing the count must never commit half of a request's own writes: neither an
    object waiting to be flushed nor a statement already executed."""
    limiter, written = limit_named(), limit_named()
    sessions = make_sessionmaker(engine)
    async with sessions() as session:
        session.add(RateLimitHits(bucket=written.bucket, window_start=0, key="pending", hits=1))
        with pytest.raises(RuntimeError, match="before the request writes"):
            await limiter.hit(session, "alice", limit=3, at=T0)
        await session.rollback()
    async with sessions() as session:
        await session.execute(insert(RateLimitHits).values(bucket=written.bucket, window_start=0, key="sent", hits=1))
        with pytest.raises(RuntimeError, match="before the request writes"):
            await limiter.forgive(session, Hit(limiter.bucket, limiter.key("alice"), int(T0)))
        await session.rollback()
    assert await rows(engine, limiter.bucket) == []
    assert await rows(engine, written.bucket) == []


async def test_prune__drops_windows_that_no_longer_count(engine: AsyncEngine) -> None:
    limiter, other = limit_named(), limit_named()
    async with make_sessionmaker(engine)() as session:
        for minute in range(3):
            session.add(RateLimitHits(bucket=limiter.bucket, window_start=T0 + minute * WINDOW, key="k", hits=1))
        session.add(RateLimitHits(bucket=other.bucket, window_start=T0, key="k", hits=1))
        await session.commit()
        assert await limiter.prune(session, at=T0 + 2 * WINDOW + 30) == 1
        await session.commit()
    assert [w for w, _k, _c in await rows(engine, limiter.bucket)] == [T0 + WINDOW, T0 + 2 * WINDOW]
    assert len(await rows(engine, other.bucket)) == 1  # another bucket's rows are its own
    # The first event of a new window prunes by itself (once per window and process).
    assert await hits(engine, limiter, "bob", at=T0 + 10 * WINDOW)
    assert [w for w, _k, _c in await rows(engine, limiter.bucket)] == [T0 + 10 * WINDOW]


async def test_hit__an_event_that_lost_the_race_is_taken_back(engine: AsyncEngine, monkeypatch: Any) -> None:
    """Another process took the last room between this event's read and its increment."""
    limiter = limit_named()
    for i in range(3):
        assert await hits(engine, limiter, "alice", at=T0 + i)
    monkeypatch.setattr(limiter, "_usage", lambda _session, _key, at: Usage(0, 0, at - T0))  # the stale read
    async with make_sessionmaker(engine)() as session:
        with pytest.raises(TooManyRequests) as refused:
            await limiter.hit(session, "alice", limit=3, at=T0 + 20)
    assert refused.value.retry_after == 41
    assert [c for _w, _k, c in await rows(engine, limiter.bucket)] == [3]


async def test_hit__concurrent_events_on_several_engines_count_exactly(config: Config, engine: AsyncEngine) -> None:
    """Four engines (as four processes) with ten concurrent events each: exactly the limit passes,
    and without a limit every event is counted once."""
    engines = [make_engine(config.database_url, pool_size=5) for _ in range(4)]
    capped, uncapped = limit_named(), limit_named()

    async def one(eng: AsyncEngine, limiter: RateLimit, limit: int) -> bool:
        async with make_sessionmaker(eng)() as session:
            try:
                await limiter.hit(session, "alice", limit=limit, at=T0 + 30)
            except TooManyRequests:
                return False
            return True

    try:
        results = await asyncio.gather(*(one(e, capped, 25) for e in engines for _ in range(10)))
        assert results.count(True) == 25
        assert [c for _w, _k, c in await rows(engine, capped.bucket)] == [25]
        results = await asyncio.gather(*(one(e, uncapped, 1000) for e in engines for _ in range(10)))
        assert all(results)
        assert [c for _w, _k, c in await rows(engine, uncapped.bucket)] == [40]
    finally:
        for eng in engines:
            await eng.dispose()


# ---------------------------------------------------------------------------- two app instances


async def two_instances(aiohttp_client: Any, config: Config) -> tuple[Any, Any]:
    """Two apps on one database, each with its own engine and connections, as two processes have."""
    return await aiohttp_client(create_app(config)), await aiohttp_client(create_app(config))


async def test_logins__limit_holds_in_total_across_two_apps(
    aiohttp_client: Any, make_user: Any, tmp_path: Path, db_url: str
) -> None:
    config = make_config(tmp_path, db_url, security={"login_attempts_per_minute": 3})
    one, two = await two_instances(aiohttp_client, config)
    await make_user("alice")
    app = await register_app(one)
    statuses = [(await password_grant(c, app, "alice", "wrong password")).status for c in (one, two, one, two)]
    assert statuses == [400, 400, 400, 429]
    limited = await password_grant(one, app, "alice", PASSWORD)  # even the right password waits
    assert limited.status == 429
    assert 1 <= int(limited.headers["Retry-After"]) <= WINDOW
    page = await open_form(two, app)
    answer = await submit_form(two, await page.text(), username="ALICE", password=PASSWORD)
    assert answer.status == 429
    assert "Too many failed login attempts" in await answer.text()
    await make_user("bob")
    assert (await password_grant(two, app, "bob", PASSWORD)).status == 200  # another name is not limited


async def test_logins__right_passwords_are_forgiven_across_two_apps(
    aiohttp_client: Any, make_user: Any, tmp_path: Path, db_url: str
) -> None:
    config = make_config(tmp_path, db_url, security={"login_attempts_per_minute": 2})
    one, two = await two_instances(aiohttp_client, config)
    await make_user("alice")
    app = await register_app(one)
    for client in (one, two, one, two):
        assert (await password_grant(client, app, "alice", PASSWORD)).status == 200
    assert (await password_grant(one, app, "alice", "wrong")).status == 400
    assert (await password_grant(two, app, "alice", "wrong")).status == 400
    assert (await password_grant(one, app, "alice", "wrong")).status == 429


async def test_password_checks__limit_holds_in_total_across_two_apps(
    aiohttp_client: Any, make_user: Any, engine: AsyncEngine, tmp_path: Path, db_url: str
) -> None:
    config = make_config(tmp_path, db_url, security={"login_attempts_per_minute": 2})
    one, two = await two_instances(aiohttp_client, config)
    alice = await make_user("alice")
    for client in (one, two):
        response = await client.post(f"{H}/account/delete", json={"password": "no"}, headers=alice.headers)
        assert response.status == 422
    limited = await one.post(f"{H}/account/delete", json={"password": PASSWORD}, headers=alice.headers)
    assert limited.status == 429
    assert limited.headers["Retry-After"] == "60"
    assert (await limited.json())["error"] == "Too many wrong passwords; try again in a minute"
    async with make_sessionmaker(engine)() as session:
        account = await session.get(Account, alice.account_id)
        assert account is not None and account.deleted_at is None


async def crypto_members(client: Any, engine: AsyncEngine, config: Config, make_user: Any, *names: str) -> list[Member]:
    members = []
    for name in names:
        person = Member(client, engine, config, await make_user(name, scopes=CRYPTO_SCOPES))
        await person.first_device()
        members.append(person)
    return members


async def test_key_claims__limit_holds_in_total_across_two_apps(
    aiohttp_client: Any, engine: AsyncEngine, config: Config, make_user: Any
) -> None:
    one, two = await two_instances(aiohttp_client, with_overrides(config, e2ee={"claims_per_minute": 3}))
    alice, bob, carol = await crypto_members(one, engine, config, make_user, "alice", "bob", "carol")
    await ok(await one.patch(f"{H}/e2ee/settings", json={"dm_policy": "everyone"}, headers=bob.user.headers))
    ids = [bob.listed[0].device_id]
    statuses = [(await claim(c, alice.listed[0], bob, ids)).status for c in (one, two, one)]
    assert statuses == [200, 200, 200]
    refused = await claim(two, alice.listed[0], bob, ids)
    await expect_error(refused, 429, "too many key claims")
    assert refused.headers["Retry-After"] == "60"
    await ok(await claim(two, carol.listed[0], bob, ids))  # another claimer has its own budget
    assert await count(engine, E2EEOneTimeKey, E2EEOneTimeKey.fallback.is_(False)) == 5 + 5 + 1


async def test_sends__limit_holds_in_total_across_two_apps(
    aiohttp_client: Any, engine: AsyncEngine, config: Config, make_user: Any
) -> None:
    one, two = await two_instances(aiohttp_client, with_overrides(config, e2ee={"messages_per_minute": 2}))
    alice, bob = await crypto_members(one, engine, config, make_user, "alice", "bob")
    for person in (alice, bob):
        await ok(await one.patch(f"{H}/e2ee/settings", json={"dm_policy": "everyone"}, headers=person.user.headers))
    sent = alice.listed[0].headers
    for client in (one, two):
        await ok(await client.post(f"{H}/e2ee/messages", json=message_body(bob, bob.listed), headers=sent), 202)
    refused = await one.post(f"{H}/e2ee/messages", json=message_body(bob, bob.listed), headers=sent)
    await expect_error(refused, 429, "too many messages")
    assert refused.headers["Retry-After"] == "60"
    assert await count(engine, E2EEMessage) == 2
    # Bob's own budget is untouched.
    await ok(
        await two.post(f"{H}/e2ee/messages", json=message_body(alice, alice.listed), headers=bob.listed[0].headers), 202
    )


# ---------------------------------------------------------------------------- real processes


def limited_config_text(text: str) -> str:
    """The configuration ``init`` wrote, with small limits and cheap password hashes."""
    for default, value in (
        ("# login_attempts_per_minute = 10", "login_attempts_per_minute = 3"),
        ("# argon2_memory_kib = 65536", "argon2_memory_kib = 1024"),
        ("# argon2_time_cost = 3", "argon2_time_cost = 1"),
        ("# claims_per_minute = 30", "claims_per_minute = 3"),
        ("# messages_per_minute = 60", "messages_per_minute = 2"),
    ):
        assert default in text
        text = text.replace(default, value)
    return text


def serve(config_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = int(config_path.read_text().split("\nport = ")[1].split("\n")[0])
    with config_path.with_suffix(".log").open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "server", "serve", "--config", str(config_path)], stdout=log, stderr=log
        )
    wait_for_port(port)
    return process, f"http://127.0.0.1:{port}"


@pytest.fixture(params=["sqlite", "postgres"])
async def two_processes(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[Config, list[str]]]:
    """An initialised instance served by two real ``hearthside serve`` processes on two ports,
    sharing its data directory and database (the second without workers, as ``serve
    --processes`` runs it). Yields the configuration and both origins."""
    first, _password = await init_instance(request, tmp_path)
    text = limited_config_text(first.read_text())
    first.write_text(text)
    port = int(text.split("\nport = ")[1].split("\n")[0])
    second = first.with_name("second.toml")
    assert "\n# workers = true\n" in text
    text = text.replace(f"\nport = {port}\n", f"\nport = {_free_port()}\n")
    second.write_text(text.replace("\n# workers = true\n", "\nworkers = false\n"))
    processes: list[subprocess.Popen[bytes]] = []
    origins: list[str] = []
    try:
        for path in (first, second):
            process, origin = serve(path)
            processes.append(process)
            origins.append(origin)
        yield load_config(first), origins
    finally:
        for process in processes:
            process.send_signal(signal.SIGINT)
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def status(response: Any) -> int:
    await response.read()
    return int(response.status)


async def test_serve__two_real_processes_share_every_limit(two_processes: tuple[Config, list[str]]) -> None:
    """Each request alternates between the two processes. Counted per process, every limit
    let twice its setting through; counted in the database, the setting holds in total."""
    config, (first, second) = two_processes
    engine = make_engine(config.database_url)
    try:
        users = {
            name: await create_user_with_token(engine, config, name, scopes=CRYPTO_SCOPES)
            for name in ("alice", "bob", "carol", "dave")
        }
        async with aiohttp.ClientSession(base_url=first) as one, aiohttp.ClientSession(base_url=second) as two:
            both = (one, two) * 3
            app = await register_app(one)
            logins = [await status(await password_grant(c, app, "alice", "wrong password")) for c in both]
            assert logins == [400, 400, 400, 429, 429, 429]  # login_attempts_per_minute = 3

            wrong = {"password": "wrong password"}
            headers = users["bob"].headers
            checks = [await status(await c.post(f"{H}/account/delete", json=wrong, headers=headers)) for c in both]
            assert checks == [422, 422, 422, 429, 429, 429]  # the same setting, per user

            carol, dave = (Member(one, engine, config, users[name]) for name in ("carol", "dave"))
            for person in (carol, dave):
                await person.first_device(one_time=10)
                await ok(
                    await one.patch(f"{H}/e2ee/settings", json={"dm_policy": "everyone"}, headers=person.user.headers)
                )
            ids = [dave.listed[0].device_id]
            claims = [await status(await claim(c, carol.listed[0], dave, ids)) for c in both]
            assert claims == [200, 200, 200, 429, 429, 429]  # claims_per_minute = 3

            sent = carol.listed[0].headers
            body = message_body(dave, dave.listed)
            sends = [await status(await c.post(f"{H}/e2ee/messages", json=body, headers=sent)) for c in both]
            assert sends == [202, 202, 429, 429, 429, 429]  # messages_per_minute = 2
    finally:
        await engine.dispose()
