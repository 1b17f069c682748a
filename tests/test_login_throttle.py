"""Login throttling that cannot be turned against the member (server/oauth.py LoginThrottle) and
the client address it counts by (server/clientaddr.py).

Counted per login name alone, ten wrong passwords a minute for someone else's name kept the
real member out. These tests send that attack and its variants through a live app on
127.0.0.1 (on SQLite and PostgreSQL): each client address is given in ``X-Forwarded-For``
through the loopback peer, which is the default trusted proxy, as nginx on the same machine
sends it. The handlers' clock is pinned to the middle of a rate-limit window so that a
window boundary during a test cannot fade the counts.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import make_config
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from test_oauth import PASSWORD, open_form, read_form, register_app

from server.app import create_app
from server.clientaddr import LOOPBACK, address_key, client_address, parse_address, parse_networks
from server.config import ConfigError, parse_config
from server.models import KnownLoginAddress, RateLimitHits
from server.oauth import LOGINS, LOGINS_PER_ADDRESS, LOGINS_PER_NAME
from server.ratelimit import WINDOW, Usage, window_of

A, B = "198.51.100.7", "203.0.113.9"
TRUSTED = parse_networks(LOOPBACK)


# ---------------------------------------------------------------------------- the client address (pure)


def addr(text: str) -> Any:
    return ipaddress.ip_address(text)


def test_client_address__header_from_an_untrusted_peer_is_ignored() -> None:
    assert client_address(A, [B], TRUSTED) == addr(A)
    assert client_address(A, [f"{B}, 127.0.0.1"], TRUSTED) == addr(A)  # naming a trusted proxy changes nothing
    assert client_address("127.0.0.1", [B], ()) == addr("127.0.0.1")  # nothing trusted: the peer


def test_client_address__missing_or_empty_header_is_the_peer() -> None:
    assert client_address("127.0.0.1", [], TRUSTED) == addr("127.0.0.1")
    assert client_address("127.0.0.1", [""], TRUSTED) == addr("127.0.0.1")
    assert client_address(A, [], TRUSTED) == addr(A)


def test_client_address__rightmost_address_that_is_not_a_trusted_proxy() -> None:
    # The client forged the left part; our proxy appended the address it saw.
    assert client_address("127.0.0.1", [f"10.9.9.9, {A}"], TRUSTED) == addr(A)
    # A chain of trusted proxies: the load balancer (10.0.0.5) told nginx (loopback) who it saw.
    chain = parse_networks([*LOOPBACK, "10.0.0.0/8"])
    assert client_address("127.0.0.1", [f"192.0.2.1, {B}, 10.0.0.5"], chain) == addr(B)
    # The same chain spread over several header lines, read in the order received.
    assert client_address("127.0.0.1", ["192.0.2.1", B, "10.0.0.5"], chain) == addr(B)
    # Without the load balancer trusted, its own address is the client.
    assert client_address("127.0.0.1", [f"192.0.2.1, {B}, 10.0.0.5"], TRUSTED) == addr("10.0.0.5")
    # Every entry a trusted proxy: the leftmost is as far as the proxies vouch.
    assert client_address("127.0.0.1", ["10.1.1.1, 10.0.0.5"], chain) == addr("10.1.1.1")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("garbage", "127.0.0.1"),
        ("unknown", "127.0.0.1"),
        (f"{A}, not-an-address", "127.0.0.1"),  # the walk stops at garbage; nothing left of it is read
        (f"{A},, ", "127.0.0.1"),
        (f"{A}:", "127.0.0.1"),
        ("999.1.1.1", "127.0.0.1"),
        ("x" * 5000, "127.0.0.1"),
        (f"garbage, {A}", A),  # garbage left of the client is never reached
        (f"{A}:51234", A),  # some proxies add the port
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("[2001:db8::1", "127.0.0.1"),
        ("[2001:db8::1]x", "127.0.0.1"),
    ],
)
def test_client_address__malformed_entries_are_never_trusted(header: str, expected: str) -> None:
    assert client_address("127.0.0.1", [header], TRUSTED) == addr(expected)


def test_client_address__ipv6() -> None:
    assert client_address("::1", ["2001:db8::5"], TRUSTED) == addr("2001:db8::5")
    assert client_address("2001:db8::7", ["2001:db8::5"], TRUSTED) == addr("2001:db8::7")  # untrusted peer
    # A dual-stack listener reports IPv4 peers as IPv4-mapped IPv6: still loopback, still trusted.
    assert client_address("::ffff:127.0.0.1", [A], TRUSTED) == addr(A)
    assert parse_address(f"::ffff:{A}") == addr(A)
    assert parse_address("fe80::1%eth0") == parse_address("fe80::1%eth1") == addr("fe80::1")
    assert client_address(None, [A], TRUSTED) is None  # not a TCP peer: no address, and no header read


def test_address_key__ipv6_counts_by_its_64() -> None:
    assert address_key(addr("2001:db8:1:2:aaaa::1")) == address_key(addr("2001:db8:1:2:bbbb::2")) == "2001:db8:1:2::/64"
    assert address_key(addr("2001:db8:1:3::1")) != address_key(addr("2001:db8:1:2::1"))
    assert address_key(addr(A)) == A
    assert address_key(None) == "unknown"


@pytest.mark.parametrize(
    ("entries", "problem"),
    [
        (["127.0.0.1/32", "10.0.0.1/8"], "entry 1 '10.0.0.1/8' is not an IP network in CIDR form"),
        (["localhost"], "entry 0 'localhost'"),
        (["::1/129"], "entry 0 '::1/129'"),
        ([""], "entry 0 ''"),
        ([42], "must be a string"),
        ("127.0.0.1/32", "must be a list"),
    ],
)
def test_config__bad_trusted_proxy_is_named(entries: Any, problem: str) -> None:
    with pytest.raises(ConfigError, match=r"^server\.trusted_proxies") as refused:
        parse_config({"server": {"trusted_proxies": entries}}, env={})
    assert problem in str(refused.value)


def test_config__trusted_proxies_default_to_loopback_and_may_be_empty() -> None:
    assert parse_config({}, env={}).get("server", "trusted_proxies") == ["127.0.0.1/32", "::1/128"]
    assert parse_config({"server": {"trusted_proxies": []}}, env={}).get("server", "trusted_proxies") == []
    security = parse_config({}, env={}).values["security"]
    assert security["login_attempts_per_minute"] == 10
    assert security["login_attempts_per_minute_per_name"] == 100
    assert security["login_attempts_per_minute_per_address"] == 30


# ---------------------------------------------------------------------------- through the server


@pytest.fixture(autouse=True)
def pinned_clock(monkeypatch: pytest.MonkeyPatch) -> datetime:
    """The handlers' clock, fixed mid-window: a boundary crossed mid-test would fade the counts."""
    moment = datetime.fromtimestamp(window_of(time.time()) + WINDOW / 2, UTC)
    monkeypatch.setattr("server.api.oauth.now", lambda: moment)
    return moment


async def live(aiohttp_client: Any, engine: AsyncEngine, tmp_path: Path, db_url: str, **sections: Any) -> Any:
    config = make_config(tmp_path, db_url, **sections)
    return await aiohttp_client(create_app(config, engine=engine))


async def login(client: Any, app: dict[str, Any], name: str, password: str, *, via: str | None) -> int:
    """A password grant from the client at ``via`` (through the loopback proxy); its status."""
    headers = {"X-Forwarded-For": via} if via else {}
    data = {
        "grant_type": "password",
        "username": name,
        "password": password,
        "client_id": app["client_id"],
        "client_secret": app["client_secret"],
    }
    response = await client.post("/oauth/token", data=data, headers=headers)
    body = await response.json()
    if response.status == 429:
        assert body["error_description"].startswith("Too many failed login attempts; try again in ")
        assert 1 <= int(response.headers["Retry-After"]) <= WINDOW
    return int(response.status)


async def form_login(client: Any, app: dict[str, Any], name: str, password: str, *, via: str) -> int:
    """The authorization form, submitted from the client at ``via``; its status."""
    page = await open_form(client, app)
    fields = dict(read_form(await page.text()).fields, username=name, password=password, decision="authorize")
    response = await client.post(
        "/oauth/authorize", data=fields, headers={"X-Forwarded-For": via}, allow_redirects=False
    )
    return int(response.status)


async def counts(engine: AsyncEngine) -> dict[tuple[str, str], int]:
    """Every login count in the database, by (bucket, key digest)."""
    buckets = (LOGINS.bucket, LOGINS_PER_NAME.bucket, LOGINS_PER_ADDRESS.bucket)
    async with engine.connect() as conn:
        found = await conn.execute(
            select(RateLimitHits.bucket, RateLimitHits.key, RateLimitHits.hits).where(RateLimitHits.bucket.in_(buckets))
        )
        return {(str(b), str(k)): int(h) for b, k, h in found.all()}


def counted(table: dict[tuple[str, str], int], limiter: Any, *parts: str) -> int:
    return table.get((limiter.bucket, limiter.key(*parts)), 0)


async def test_lockout__wrong_passwords_from_one_address_do_not_lock_the_member_out(
    aiohttp_client: Any, make_user: Any, engine: AsyncEngine, tmp_path: Path, db_url: str
) -> None:
    client = await live(aiohttp_client, engine, tmp_path, db_url)  # the default limits: 10, 100, 30
    await make_user("alice")
    app = await register_app(client)
    attacks = [await login(client, app, "alice", f"guess {i}", via=A) for i in range(12)]
    assert attacks == [400] * 10 + [429] * 2
    assert await login(client, app, "alice", PASSWORD, via=B) == 200  # the member, from home
    assert await form_login(client, app, "ALICE", PASSWORD, via=B) == 302  # the form counts the same way
    assert await login(client, app, "alice", PASSWORD, via=A) == 429  # the attacker's address stays refused
    assert await form_login(client, app, "alice", PASSWORD, via=A) == 429


async def test_per_name__ceiling_holds_across_addresses(
    aiohttp_client: Any, make_user: Any, engine: AsyncEngine, tmp_path: Path, db_url: str
) -> None:
    limits = {"login_attempts_per_minute": 2, "login_attempts_per_minute_per_name": 5}
    client = await live(aiohttp_client, engine, tmp_path, db_url, security=limits)
    await make_user("alice")
    await make_user("bob")
    app = await register_app(client)
    spread = [await login(client, app, "Alice", "wrong", via=f"192.0.2.{i}") for i in range(1, 8)]
    assert spread == [400] * 5 + [429] * 2  # one attempt per address, five for the name in all
    assert await login(client, app, "alice", PASSWORD, via="192.0.2.200") == 429  # every address, even right
    assert await login(client, app, "alice", PASSWORD, via="[2001:db8::1]:443") == 429
    assert await login(client, app, "bob", PASSWORD, via="192.0.2.1") == 200  # other names are their own


async def test_per_address__ceiling_holds_across_names(
    aiohttp_client: Any, make_user: Any, engine: AsyncEngine, tmp_path: Path, db_url: str
) -> None:
    client = await live(aiohttp_client, engine, tmp_path, db_url, security={"login_attempts_per_minute_per_address": 4})
    await make_user("alice")
    app = await register_app(client)
    stuffing = [await login(client, app, name, "password1", via=A) for name in ("ann", "ben", "cat", "dan", "eve")]
    assert stuffing == [400] * 4 + [429]  # unknown names count too
    assert await login(client, app, "alice", PASSWORD, via=A) == 429  # the address is refused for every name
    assert await login(client, app, "alice", PASSWORD, via=B) == 200
    # An IPv6 client counts by its /64: moving within it gives no fresh count.
    v6 = [await login(client, app, f"n{i}", "password1", via=f"2001:db8:0:1::{i + 1:x}") for i in range(5)]
    assert v6 == [400] * 4 + [429]
    assert await login(client, app, "alice", "wrong", via="2001:db8:0:2::1") == 400  # another /64


async def test_right_password__is_forgiven_in_every_bucket(
    aiohttp_client: Any, make_user: Any, engine: AsyncEngine, tmp_path: Path, db_url: str
) -> None:
    limits = {
        "login_attempts_per_minute": 2,
        "login_attempts_per_minute_per_name": 2,
        "login_attempts_per_minute_per_address": 2,
    }
    client = await live(aiohttp_client, engine, tmp_path, db_url, security=limits)
    await make_user("alice")
    app = await register_app(client)
    assert [await login(client, app, "alice", PASSWORD, via=A) for _ in range(5)] == [200] * 5
    table = await counts(engine)
    key = address_key(addr(A))
    assert counted(table, LOGINS, "alice", key) == 0
    assert counted(table, LOGINS_PER_NAME, "alice") == 0
    assert counted(table, LOGINS_PER_ADDRESS, key) == 0
    assert [await login(client, app, "alice", "wrong", via=A) for _ in range(3)] == [400, 400, 429]  # still limited


async def test_refused_attempt__counts_in_no_bucket(
    aiohttp_client: Any, make_user: Any, engine: AsyncEngine, tmp_path: Path, db_url: str
) -> None:
    limits = {"login_attempts_per_minute": 2, "login_attempts_per_minute_per_address": 3}
    client = await live(aiohttp_client, engine, tmp_path, db_url, security=limits)
    await make_user("alice")
    await make_user("bob")
    app = await register_app(client)
    assert [await login(client, app, "alice", "wrong", via=A) for _ in range(5)] == [400, 400, 429, 429, 429]
    table = await counts(engine)
    assert counted(table, LOGINS_PER_NAME, "alice") == 2
    assert counted(table, LOGINS_PER_ADDRESS, address_key(addr(A))) == 2
    assert await login(client, app, "bob", "wrong", via=A) == 400  # the address still had room for one
    assert await login(client, app, "bob", PASSWORD, via=A) == 429  # and now has none
    table = await counts(engine)
    assert counted(table, LOGINS, "bob", address_key(addr(A))) == 1  # the refusal by the last bucket
    assert counted(table, LOGINS_PER_NAME, "bob") == 1  # left the earlier ones as they were
    assert counted(table, LOGINS_PER_ADDRESS, address_key(addr(A))) == 3
    assert await login(client, app, "carol", "wrong", via=A) == 429  # a refusal writes nothing at all:
    table = await counts(engine)
    assert (LOGINS.bucket, LOGINS.key("carol", address_key(addr(A)))) not in table  # no row, not even a 0
    assert (LOGINS_PER_NAME.bucket, LOGINS_PER_NAME.key("carol")) not in table


async def test_refused_attempt__a_lost_race_takes_back_the_buckets_already_counted(
    aiohttp_client: Any, make_user: Any, engine: AsyncEngine, tmp_path: Path, db_url: str, monkeypatch: Any
) -> None:
    """The address bucket filled up (another process) between this attempt's read and its increment."""
    client = await live(aiohttp_client, engine, tmp_path, db_url, security={"login_attempts_per_minute_per_address": 2})
    await make_user("alice")
    app = await register_app(client)
    assert [await login(client, app, name, "wrong", via=A) for name in ("ann", "ben")] == [400, 400]

    async def stale_read(_session: Any, *_parts: Any, limit: int, at: float) -> Usage:
        return Usage(0, 0, 0.0)

    monkeypatch.setattr(LOGINS_PER_ADDRESS, "check", stale_read)
    assert await login(client, app, "alice", "wrong", via=A) == 429
    table = await counts(engine)
    assert counted(table, LOGINS, "alice", address_key(addr(A))) == 0
    assert counted(table, LOGINS_PER_NAME, "alice") == 0
    assert counted(table, LOGINS_PER_ADDRESS, address_key(addr(A))) == 2


@pytest.mark.parametrize("trusted", [[], ["10.0.0.0/8"]])
async def test_forwarded_for__from_an_untrusted_peer_gives_no_fresh_count(
    aiohttp_client: Any, make_user: Any, engine: AsyncEngine, tmp_path: Path, db_url: str, trusted: list[str]
) -> None:
    client = await live(
        aiohttp_client,
        engine,
        tmp_path,
        db_url,
        server={"trusted_proxies": trusted},
        security={"login_attempts_per_minute": 2},
    )
    await make_user("alice")
    app = await register_app(client)
    forged = [await login(client, app, "alice", "wrong", via=f"192.0.2.{i}") for i in range(1, 4)]
    assert forged == [400, 400, 429]  # every forged address is the peer, 127.0.0.1
    assert await login(client, app, "alice", PASSWORD, via=B) == 429
    assert await form_login(client, app, "alice", PASSWORD, via=B) == 429


async def test_logs__hold_no_addresses_login_names_or_passwords(
    aiohttp_client: Any, make_user: Any, engine: AsyncEngine, tmp_path: Path, db_url: str, caplog: Any
) -> None:
    caplog.set_level(logging.DEBUG)
    client = await live(aiohttp_client, engine, tmp_path, db_url, security={"login_attempts_per_minute": 1})
    await make_user("alice")
    app = await register_app(client)
    statuses = [
        await login(client, app, "alice", "hunter2-guess", via=A),
        await login(client, app, "alice", "hunter2-guess", via=A),
        await login(client, app, "nobody-by-this-name", "hunter2-guess", via=B),
        await login(client, app, "alice", PASSWORD, via="2001:db8::77"),
        await form_login(client, app, "alice", PASSWORD, via=B),
    ]
    assert statuses == [400, 429, 400, 200, 302]
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("server"))
    assert "reason=throttled" in ours and "reason=bad_credentials" in ours
    for secret in ("alice", "nobody-by-this-name", "hunter2", PASSWORD, A, B, "2001:db8", "X-Forwarded-For"):
        assert secret.lower() not in ours.lower()


# ---------------------------------------------------------------------------- known addresses


async def known_rows(engine: AsyncEngine) -> list[tuple[str, datetime]]:
    async with engine.connect() as conn:
        found = await conn.execute(select(KnownLoginAddress.key, KnownLoginAddress.last_login_at))
        return [(str(k), at) for k, at in found.all()]


async def fill_name(client: Any, app: dict[str, Any], name: str, attempts: int) -> list[int]:
    """Wrong passwords for ``name``, one from each of many addresses (none the member's)."""
    return [await login(client, app, name, "wrong", via=f"192.0.2.{i}") for i in range(1, attempts + 1)]


SMALL = {"login_attempts_per_minute": 2, "login_attempts_per_minute_per_name": 5}


async def test_known_address__the_member_still_logs_in_from_where_they_did_lately(
    aiohttp_client: Any, make_user: Any, engine: AsyncEngine, tmp_path: Path, db_url: str
) -> None:
    """Filling the per-name bucket from many addresses no longer locks the member out of the
    places they logged in from; it still refuses the name everywhere else."""
    client = await live(aiohttp_client, engine, tmp_path, db_url, security=SMALL)
    await make_user("alice")
    app = await register_app(client)
    assert await login(client, app, "alice", PASSWORD, via=B) == 200  # B is now known for alice
    assert await fill_name(client, app, "alice", 7) == [400] * 5 + [429] * 2
    assert await login(client, app, "alice", PASSWORD, via=B) == 200
    assert await form_login(client, app, "Alice", PASSWORD, via=B) == 302  # the same name, as the form reads it
    assert await login(client, app, "alice", PASSWORD, via="198.51.100.99") == 429  # not known: the name is full
    assert await login(client, app, "alice", PASSWORD, via="2001:db8::1") == 429
    # Someone else behind the member's own address still meets the per-name-and-address limit.
    assert [await login(client, app, "alice", "wrong", via=B) for _ in range(3)] == [400, 400, 429]
    # Known means this name: another member from B is held to the per-name limit as before.
    await make_user("bob")
    assert await fill_name(client, app, "bob", 6) == [400] * 5 + [429]
    assert await login(client, app, "bob", PASSWORD, via=B) == 429


async def test_known_address__only_a_right_password_makes_one(
    aiohttp_client: Any, make_user: Any, engine: AsyncEngine, tmp_path: Path, db_url: str
) -> None:
    client = await live(aiohttp_client, engine, tmp_path, db_url, security=SMALL)
    await make_user("alice")
    app = await register_app(client)
    assert await login(client, app, "alice", "wrong", via=B) == 400
    assert await login(client, app, "mallory", "wrong", via=B) == 400  # unknown names too
    assert await known_rows(engine) == []
    assert await fill_name(client, app, "alice", 4) == [400] * 4  # with B's failure: five for the name
    assert await login(client, app, "alice", PASSWORD, via=B) == 429


async def test_known_address__is_stored_as_a_keyed_hash_shared_by_processes_with_one_secret(
    aiohttp_client: Any, make_user: Any, engine: AsyncEngine, tmp_path: Path, db_url: str
) -> None:
    secret = {**SMALL, "secret_key": "one secret for every process of this instance"}
    first = await live(aiohttp_client, engine, tmp_path, db_url, security=secret)
    second = await live(aiohttp_client, engine, tmp_path, db_url, security=secret)
    await make_user("alice")
    app = await register_app(first)
    assert await login(first, app, "alice", PASSWORD, via=B) == 200
    ((key, _at),) = await known_rows(engine)
    assert len(key) == 64 and "alice" not in key and B not in key
    for plain in ("alice", B, f'["alice", "{B}"]'):  # not an unkeyed digest of what it stands for
        assert hashlib.sha256(plain.encode()).hexdigest() != key
    assert await fill_name(second, app, "alice", 6) == [400] * 5 + [429]
    assert await login(second, app, "alice", PASSWORD, via=B) == 200  # the other process knows B too
    # A process with another secret cannot read the row: B is unknown there (fails safe).
    other = await live(aiohttp_client, engine, tmp_path, db_url, security={**SMALL, "secret_key": "another"})
    assert await login(other, app, "alice", PASSWORD, via=B) == 429


async def test_known_address__is_forgotten_after_the_configured_days(
    aiohttp_client: Any,
    make_user: Any,
    engine: AsyncEngine,
    tmp_path: Path,
    db_url: str,
    pinned_clock: datetime,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = await live(aiohttp_client, engine, tmp_path, db_url, security={**SMALL, "known_login_address_days": 3})
    await make_user("alice")
    app = await register_app(client)
    assert await login(client, app, "alice", PASSWORD, via=B) == 200
    assert await login(client, app, "alice", PASSWORD, via=A) == 200
    later = pinned_clock + timedelta(days=2)  # still known (whole days keep the clock mid-window)
    monkeypatch.setattr("server.api.oauth.now", lambda: later)
    assert await login(client, app, "alice", PASSWORD, via=A) == 200  # A is seen again: known from now on
    assert len(await known_rows(engine)) == 2
    much_later = pinned_clock + timedelta(days=4)
    monkeypatch.setattr("server.api.oauth.now", lambda: much_later)
    assert await fill_name(client, app, "alice", 6) == [400] * 5 + [429]
    assert await login(client, app, "alice", PASSWORD, via=B) == 429  # B: last seen four days ago
    assert await login(client, app, "alice", PASSWORD, via=A) == 200  # A: two days ago
    assert [at for _key, at in await known_rows(engine)] == [much_later]  # B's row went with that login


async def test_known_address__zero_days_remembers_nothing(
    aiohttp_client: Any, make_user: Any, engine: AsyncEngine, tmp_path: Path, db_url: str
) -> None:
    client = await live(aiohttp_client, engine, tmp_path, db_url, security={**SMALL, "known_login_address_days": 0})
    await make_user("alice")
    app = await register_app(client)
    assert await login(client, app, "alice", PASSWORD, via=B) == 200
    assert await known_rows(engine) == []
    assert await fill_name(client, app, "alice", 6) == [400] * 5 + [429]
    assert await login(client, app, "alice", PASSWORD, via=B) == 429


def test_config__known_login_address_days_is_checked() -> None:
    with pytest.raises(ConfigError, match="known_login_address_days"):
        parse_config({"security": {"known_login_address_days": -1}}, env={})
    assert parse_config({}, env={}).get("security", "known_login_address_days") == 30


async def test_known_address__logins_at_once_from_one_address_make_one_row(
    aiohttp_client: Any, make_user: Any, engine: AsyncEngine, tmp_path: Path, db_url: str
) -> None:
    """Several apps logging the member in at once: every login succeeds and one row is kept.
    (The row is written with INSERT ... ON CONFLICT so that two such logins cannot collide on
    its key; this run does not reliably interleave them closely enough to show the race.)"""
    client = await live(aiohttp_client, engine, tmp_path, db_url)
    await make_user("alice")
    app = await register_app(client)
    statuses = await asyncio.gather(*(login(client, app, "alice", PASSWORD, via=B) for _ in range(4)))
    assert statuses == [200] * 4
    assert len(await known_rows(engine)) == 1
