"""End-to-end encrypted messages between members of two Hearthside instances.

Two real instances on 127.0.0.2 and 127.0.0.3 (SQLite and PostgreSQL), members on each using
the client library (``server.dm.client``) and the ``hearthside dm`` commands: messages in both
directions, a second device per member (one approved by the first device, one set up with the
recovery code), a revoked device that can read nothing more, and a canary that must never
reach either server's database files, logs or stored request bodies (issue 4, "How it is
shown"; research/e2ee.md §8(d) test 18).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import os
import secrets
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from federation_harness import Instance, eventually, instances, resolve
from sqlalchemy import text

from crypto.encoding import b64encode
from server.cli import main as cli_main
from server.dm.client import DmClient, DmError, Incoming, SetupResult
from server.dm.store import Store
from server.models import AuditEntry, E2EEDevice, E2EEMessage, Report

PASSPHRASE = "a long passphrase for the test store"


@pytest.fixture(params=["sqlite", "postgres"])
async def pair(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[list[Instance], Any]]:
    pg = request.getfixturevalue("pg_server") if request.param == "postgres" else None
    async for started in instances(request.param, tmp_path, pg):
        yield started, pg


def handle(inst: Instance, username: str) -> str:
    return f"{username}@{inst.domain}"


async def follow(inst: Instance, user: Any, target: str) -> None:
    account = await resolve(inst, user, target)
    await inst.api("POST", f"/api/v1/accounts/{account['id']}/follow", user)


async def mutual_follow(a: Instance, a_user: Any, b: Instance, b_user: Any) -> None:
    await follow(a, a_user, handle(b, b_user.username))
    await follow(b, b_user, handle(a, a_user.username))

    async def accepted() -> bool:
        for inst, user, other in ((a, a_user, handle(b, b_user.username)), (b, b_user, handle(a, a_user.username))):
            account = await resolve(inst, user, other)
            rel = await inst.api("GET", "/api/v1/accounts/relationships", user, params={"id[]": account["id"]})
            if not rel[0]["following"]:
                return False
        return True

    await eventually(accepted, what="mutual follows", within=45)  # generous: a loaded machine delivers slowly


async def device(inst: Instance, username: str, **setup: Any) -> tuple[DmClient, SetupResult]:
    profile = await DmClient.login(inst.base_url, username, inst.users[username].password)
    client = DmClient(profile)
    try:
        return client, await client.setup(**setup)
    except BaseException:
        await client.close()  # a failed setup must not leak its HTTP session into later tests
        raise


@contextlib.asynccontextmanager
async def talking(pair: list[Instance]) -> AsyncIterator[tuple[Instance, Instance, DmClient, DmClient]]:
    """Alice on A and Bob on B, following each other, each with one device set up."""
    a, b = pair
    alice = await a.user("alice")
    bob = await b.user("bob")
    await mutual_follow(a, alice, b, bob)
    alice1, _ = await device(a, "alice")
    bob1, _ = await device(b, "bob")
    try:
        yield a, b, alice1, bob1
    finally:
        await alice1.close()
        await bob1.close()


async def receive_until(client: DmClient, count: int = 1) -> list[Incoming]:
    got: list[Incoming] = []

    async def arrived() -> bool:
        got.extend(await client.receive())
        return len(got) >= count

    await eventually(arrived, what=f"{count} message(s) for {client.profile.acct}")
    return got


async def open_to_everyone(inst: Instance, client: DmClient) -> None:
    """The member behind ``client`` accepts messages from everyone (``dm_policy``)."""
    await inst.api(
        "PATCH",
        "/api/v1/hearthside/e2ee/settings",
        None,
        json={"dm_policy": "everyone"},
        headers={"Authorization": f"Bearer {client.profile.token}"},
    )


async def request_arrives(client: DmClient) -> None:
    """Wait until a message request (from someone the member does not know) is kept."""

    async def requested() -> bool:
        await client.fetch()
        return bool(client.requests())

    await eventually(requested, what=f"a message request for {client.profile.acct}")


def grep_files(folder: Path, needle: bytes) -> list[Path]:
    hits = []
    for path in folder.rglob("*"):
        if path.is_file():
            try:
                if needle in path.read_bytes():
                    hits.append(path)
            except OSError:
                continue
    return hits


async def test_members_on_two_instances_exchange_encrypted_messages(
    pair: tuple[list[Instance], Any], tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("HEARTHSIDE_DM_PASSPHRASE", PASSPHRASE)
    (a, b), pg = pair
    alice = await a.user("alice")
    bob = await b.user("bob")
    await mutual_follow(a, alice, b, bob)
    canary = "canary-" + secrets.token_hex(16)

    alice1, first_alice = await device(a, "alice")
    bob1, first_bob = await device(b, "bob")
    assert first_alice.state == first_bob.state == "active"
    assert first_bob.recovery_code is not None
    try:
        # A -> B and B -> A, first messages (pre-key) and replies (normal messages).
        await alice1.send(handle(b, "bob"), f"hello bob {canary}")
        first = await receive_until(bob1)
        assert [m.content for m in first] == [f"hello bob {canary}"]
        assert first[0].sender == a.actor("alice") and not first[0].own_copy
        await bob1.send(handle(a, "alice"), f"hi alice {canary}")
        assert [m.content for m in await receive_until(alice1)] == [f"hi alice {canary}"]
        await alice1.send(handle(b, "bob"), "second from alice")
        assert [m.content for m in await receive_until(bob1)] == ["second from alice"]

        # A second device for each: alice2 approved by alice1, bob2 joins with the recovery code.
        alice2, second = await device(a, "alice")
        assert second.state == "pending" and second.recovery_code is None
        with pytest.raises(DmError, match="not approved"):
            await alice2.send(handle(b, "bob"), "too early")
        await alice1.approve(alice2.device.device_id)
        bob2, joined = await device(b, "bob", recovery_code=first_bob.recovery_code)
        assert joined.state == "active"
        # A new device sees no history.
        assert await bob2.receive() == []

        await alice1.send(handle(b, "bob"), "to all of bob's devices")
        assert [m.content for m in await receive_until(bob1)] == ["to all of bob's devices"]
        assert [m.content for m in await receive_until(bob2)] == ["to all of bob's devices"]
        own = await receive_until(alice2)
        assert [(m.content, m.own_copy) for m in own] == [("to all of bob's devices", True)]

        await bob2.send(handle(a, "alice"), "from bob's second device")
        for client in (alice1, alice2, bob1):
            assert [m.content for m in await receive_until(client)] == ["from bob's second device"]

        # Revoke alice2: its token dies with it and nothing more is encrypted to it.
        revoked_id = alice2.device.device_id
        await alice1.revoke(revoked_id)
        with pytest.raises(DmError, match="401"):
            await alice2.receive()
        await bob1.send(handle(a, "alice"), "after the revocation")
        assert [m.content for m in await receive_until(alice1)] == ["after the revocation"]
        gone = await a.one(E2EEDevice, E2EEDevice.device_id == revoked_id)
        assert gone.state == "revoked" and gone.token_id is None
        assert await a.rows(E2EEMessage, E2EEMessage.device_pk == gone.id) == []

        # The hearthside dm commands: carol on B talks to alice on A.
        carol = await b.user("carol")
        await mutual_follow(a, alice, b, carol)
        profile = tmp_path / "carol-profile"
        out = await dm(profile, "login", b.base_url, "carol", "--password-stdin", stdin=carol.password + "\n")
        assert "carol" in out
        out = await dm(profile, "--json", "setup")
        assert json.loads(out)["state"] == "active"
        await dm(profile, "send", handle(a, "alice"), f"carol here {canary}")
        got = await receive_until(alice1)
        assert [m.content for m in got] == [f"carol here {canary}"]
        await alice1.send(handle(b, "carol"), "hello carol")

        async def carol_reads() -> list[dict[str, Any]]:
            lines = (await dm(profile, "--json", "read")).splitlines()
            return [json.loads(line) for line in lines if line.startswith("{")]

        read = await eventually(carol_reads, what="carol's CLI read")
        assert [r["message"]["body"]["content"] for r in read] == ["hello carol"]
        conversations = await dm(profile, "--json", "conversations")
        assert a.actor("alice") in conversations
        numbers = json.loads(await dm(profile, "--json", "verify", handle(a, "alice")))
        assert numbers["safety_number"] == await alice1.safety_number(handle(b, "carol"))
        listing = await dm(profile, "--json", "devices")
        assert json.loads(listing.splitlines()[0])["state"] == "active"
        # The store at rest is encrypted: the canary is not in it either.
        assert grep_files(profile, canary.encode()) == []
    finally:
        for client in (alice1, bob1):
            await client.close()
        for name in ("alice2", "bob2"):
            extra = locals().get(name)
            if extra is not None:
                await extra.close()

    # The canary never reached either server: database files, logs, stored request bodies.
    for inst in (a, b):
        if inst.db_url.startswith("sqlite"):
            folder = Path(inst.db_url.split("///", 1)[1]).parent
            assert grep_files(folder, canary.encode()) == [], f"canary found in {inst.name}'s files"
        async with inst.engine.connect() as conn:
            rows = await conn.execute(text("SELECT body FROM inbox_items WHERE body IS NOT NULL"))
            assert all(canary not in (r[0] or "") for r in rows)
            rows = await conn.execute(text("SELECT body FROM outbox_activities"))
            assert all(canary not in r[0] for r in rows)
    if pg is not None:
        async with a.engine.connect() as conn:
            await conn.execute(text("CHECKPOINT"))
        assert pg.data_dir is not None
        assert grep_files(pg.data_dir, canary.encode()) == [], "canary found in PostgreSQL's files"
    assert canary not in caplog.text


async def dm(profile: Path, *argv: str, stdin: str = "") -> str:
    """Run ``hearthside dm --profile PROFILE ARGV...`` as a member would; returns its stdout."""
    code, out, err = await run_dm(profile, *argv, stdin=stdin)
    assert code == 0, f"hearthside dm {' '.join(argv)} failed ({code}): {err}"
    return out


async def cli_login(profile: Path, inst: Instance, user: Any) -> None:
    """``hearthside dm login`` as ``user`` on ``inst`` into ``profile``."""
    await dm(profile, "login", inst.base_url, user.username, "--password-stdin", stdin=user.password + "\n")


async def run_dm(profile: Path, *argv: str, stdin: str = "") -> tuple[int, str, str]:
    """``hearthside dm --profile PROFILE ARGV...``: (exit code, stdout, stderr)."""

    def run() -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        old = sys.stdin, sys.stdout, sys.stderr
        sys.stdin, sys.stdout, sys.stderr = io.StringIO(stdin), out, err
        try:
            code = cli_main(["dm", "--profile", str(profile), *argv])
        finally:
            sys.stdin, sys.stdout, sys.stderr = old
        return code, out.getvalue(), err.getvalue()

    return await asyncio.to_thread(run)


async def test_hearthside_dm_commands__both_directions_second_device_and_revocation(
    pair: tuple[list[Instance], Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the commands, as members on each instance would use them."""
    monkeypatch.setenv("HEARTHSIDE_DM_PASSPHRASE", PASSPHRASE)
    (a, b), _pg = pair
    dave = await a.user("dave")
    erin = await b.user("erin")
    await mutual_follow(a, dave, b, erin)
    dave1, dave2, erin1 = tmp_path / "dave1", tmp_path / "dave2", tmp_path / "erin1"
    for profile, inst, user in ((dave1, a, dave), (dave2, a, dave), (erin1, b, erin)):
        await cli_login(profile, inst, user)
    first = json.loads(await dm(dave1, "--json", "setup"))
    assert first["state"] == "active" and first["recovery_code"]
    await dm(erin1, "setup")

    async def read(profile: Path, count: int) -> list[str]:
        got: list[str] = []

        async def arrived() -> bool:
            lines = (await dm(profile, "--json", "read")).splitlines()
            got.extend(json.loads(line)["message"]["body"]["content"] for line in lines if line.startswith("{"))
            return len(got) >= count

        await eventually(arrived, what=f"{count} message(s) in {profile.name}")
        return got

    await dm(erin1, "send", handle(a, "dave"), "erin to dave")
    assert await read(dave1, 1) == ["erin to dave"]
    await dm(dave1, "send", handle(b, "erin"), "dave to erin")
    assert await read(erin1, 1) == ["dave to erin"]

    # Dave's second device waits for approval from the first, then gets messages and copies.
    second = json.loads(await dm(dave2, "--json", "setup"))
    assert second["state"] == "pending" and second["recovery_code"] is None
    await dm(dave1, "devices", "approve", second["device_id"])
    await dm(erin1, "send", handle(a, "dave"), "to both of dave's devices")
    assert await read(dave1, 1) == ["to both of dave's devices"]
    assert await read(dave2, 1) == ["to both of dave's devices"]
    await dm(dave2, "send", handle(b, "erin"), "from dave's second device")
    assert await read(erin1, 1) == ["from dave's second device"]
    assert await read(dave1, 1) == ["from dave's second device"]  # the copy for dave's other device

    # Revoked from the first device: the second can read nothing more.
    listing = [
        json.loads(line) for line in (await dm(dave1, "--json", "devices", "revoke", second["device_id"])).splitlines()
    ]
    assert {d["device_id"]: d["state"] for d in listing}[second["device_id"]] == "revoked"
    await dm(erin1, "send", handle(a, "dave"), "after the revocation")
    assert await read(dave1, 1) == ["after the revocation"]
    code, _out, err = await run_dm(dave2, "read")
    assert code == 2 and "401" in err
    kept = Store(dave2, PASSPHRASE).load().history
    assert "after the revocation" not in json.dumps(kept) and "to both of dave's devices" in json.dumps(kept)


async def test_hearthside_dm_verify_sas__against_the_library_on_the_other_instance(
    pair: tuple[list[Instance], Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HEARTHSIDE_DM_PASSPHRASE", PASSPHRASE)
    (a, b), _pg = pair
    alice = await a.user("alice")
    frank = await b.user("frank")
    await mutual_follow(a, alice, b, frank)
    alice1, _ = await device(a, "alice")
    profile = tmp_path / "frank"
    await cli_login(profile, b, frank)
    await dm(profile, "setup")
    shown: list[Any] = []

    async def confirm(emoji: Any, decimals: Any) -> bool:
        shown.append((emoji, decimals))
        return True

    try:
        ours, (code, out, err) = await asyncio.gather(
            alice1.verify_sas(handle(b, "frank"), confirm, within=60),
            run_dm(profile, "verify", handle(a, "alice"), "--sas", stdin="y\n"),
        )
    finally:
        await alice1.close()
    assert ours is True and code == 0, err
    ((emoji, decimals),) = shown
    # The command printed the same 7 emoji and 3 numbers the library showed alice.
    assert "  ".join(f"{symbol} {name}" for symbol, name in emoji) in out
    assert "  ".join(f"{n:04d}" for n in decimals) in out
    assert "Verified" in out
    numbers = json.loads(await dm(profile, "--json", "verify", handle(a, "alice")))
    assert numbers["verified"] is True


async def test_a_crash_loses_no_message_and_reuses_no_message_key(
    pair: tuple[list[Instance], Any], tmp_path: Path
) -> None:
    """The client keeps its store before the server can act on what only the device holds
    (``DmClient._persist``). A device that dies right after acknowledging, or right after
    posting, comes back from its store with every message it acknowledged, and its next message
    still opens (restored to an older state, it would use the same message keys again)."""
    async with talking(pair[0]) as (_a, b, alice1, bob1):
        alice_store, bob_store = Store(tmp_path / "alice", PASSPHRASE), Store(tmp_path / "bob", PASSPHRASE)
        alice_store.save(alice1.profile)
        bob_store.save(bob1.profile)
        alice1._persist_hook = alice_store.save
        bob1._persist_hook = bob_store.save
        bob_handle = handle(b, "bob")

        # Bob's device dies between keeping a message and acknowledging it.
        await alice1.send(bob_handle, "kept before the acknowledgement")
        real_call = bob1._call

        async def dies_at_ack(method: str, path: str, **kwargs: Any) -> Any:
            if path.endswith("/messages/ack"):
                raise ConnectionError("the device died here")
            return await real_call(method, path, **kwargs)

        bob1._call = dies_at_ack  # type: ignore[method-assign]
        with pytest.raises(ConnectionError):
            await receive_until(bob1)
        async with DmClient(bob_store.load(), persist=bob_store.save) as bob_again:
            assert [item["message"]["body"]["content"] for item in bob_again.profile.history] == [
                "kept before the acknowledgement"
            ]
            # Delivered again, recognised and acknowledged; handed to bob once, now (it was
            # opened and kept, but never shown, before the crash).
            assert [m.content for m in await bob_again.receive()] == ["kept before the acknowledgement"]
            assert await bob_again.receive() == []
            assert bob_again.profile.undecryptable == 0
            assert await b.rows(E2EEMessage) == []

            # Alice's device dies right after the server took a message: its store holds the
            # ratchet steps that message used, so the next one opens. (Saved once before, as each
            # `hearthside dm` command does when it ends, so the session with Bob is in the store.)
            alice_store.save(alice1.profile)
            await alice1.send(bob_handle, "posted just before the crash")
            async with DmClient(alice_store.load(), persist=alice_store.save) as alice_again:
                await alice_again.send(bob_handle, "sent after coming back")
                got = await receive_until(bob_again, 2)
                assert [m.content for m in got] == ["posted just before the crash", "sent after coming back"]
                assert bob_again.profile.undecryptable == 0


async def test_a_crash_right_after_uploading_one_time_keys_keeps_their_private_halves(
    pair: tuple[list[Instance], Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One-time keys are kept in the store before they are uploaded: a device that dies right
    after the server took new keys can still open the session someone starts with one of them.
    (One key at a time, so the next claim gets exactly the key uploaded before the crash.)"""
    monkeypatch.setattr("server.dm.client.ONE_TIME_KEYS", 1)
    monkeypatch.setattr("server.dm.client.REPLENISH_BELOW", 1)
    a = pair[0][0]
    carol = await a.user("carol")
    async with talking(pair[0]) as (_a, b, alice1, bob1):
        bob_store = Store(tmp_path / "bob", PASSPHRASE)
        bob1._persist_hook = bob_store.save
        await alice1.send(handle(b, "bob"), "this claim took bob's only key")

        async def delivered() -> bool:
            return len(await b.rows(E2EEMessage)) == 1

        await eventually(delivered, what="alice's message on bob's server")
        real_call = bob1._call

        async def dies_after_upload(method: str, path: str, **kwargs: Any) -> Any:
            answer = await real_call(method, path, **kwargs)
            if path.endswith("/keys/upload"):
                raise ConnectionError("the device died here, the server has the new key")
            return answer

        bob1._call = dies_after_upload  # type: ignore[method-assign]
        with pytest.raises(ConnectionError):
            await bob1.receive()  # opens alice's message, acknowledges it, tops up the key, dies
        assert await b.rows(E2EEMessage) == []
        bob_user = b.users["bob"]
        await mutual_follow(a, carol, b, bob_user)
        carol1, _ = await device(a, "carol")
        async with carol1, DmClient(bob_store.load(), persist=bob_store.save) as bob_again:
            await carol1.send(handle(b, "bob"), "opened with the key uploaded before the crash")
            got = await receive_until(bob_again, 2)
            assert [m.content for m in got] == [
                "this claim took bob's only key",  # kept before the crash, shown now
                "opened with the key uploaded before the crash",
            ]
            assert bob_again.profile.undecryptable == 0


@pytest.mark.parametrize("lost", ["request", "answer"])
async def test_a_setup_that_stopped_midway_is_finished_by_running_it_again(
    pair: tuple[list[Instance], Any], tmp_path: Path, lost: str
) -> None:
    """The first device's keys (and its master key) are kept before the registration is sent:
    whether the request or only its answer was lost, ``setup`` again finishes the job with the
    same keys and shows the recovery code again; the device then receives messages."""
    a, b = pair[0]
    alice = await a.user("alice")
    bob = await b.user("bob")
    await mutual_follow(a, alice, b, bob)
    store = Store(tmp_path / "alice", PASSPHRASE)
    store.save(await DmClient.login(a.base_url, "alice", alice.password))
    async with DmClient(store.load(), persist=store.save) as first_try:
        real_call = first_try._call

        async def broken(method: str, path: str, **kwargs: Any) -> Any:
            registering = method == "POST" and path.endswith("/e2ee/devices")
            if registering and lost == "request":
                raise ConnectionError("the connection broke before the server had it")
            answer = await real_call(method, path, **kwargs)
            if registering:
                raise ConnectionError("the device died before the answer came")
            return answer

        first_try._call = broken  # type: ignore[method-assign]
        with pytest.raises(ConnectionError):
            await first_try.setup()
    registered = await a.rows(E2EEDevice)
    assert len(registered) == (1 if lost == "answer" else 0)
    async with DmClient(store.load(), persist=store.save) as again:
        kept = again.device
        assert kept.master is not None
        result = await again.setup()
        assert (result.device_id, result.state) == (kept.device_id, "active")
        assert result.recovery_code == kept.master.recovery_code()
        assert [d.device_id for d in await a.rows(E2EEDevice)] == [kept.device_id]
        with pytest.raises(DmError, match="already set up"):
            await again.setup()
        bob1, _ = await device(b, "bob")
        async with bob1:
            await bob1.send(handle(a, "alice"), "hello after an interrupted setup")
            got = await receive_until(again)
            assert [m.content for m in got] == ["hello after an interrupted setup"]


@pytest.mark.parametrize("lost", ["request", "refused"])
async def test_a_device_list_the_server_did_not_take_leaves_the_device_working(
    pair: tuple[list[Instance], Any], lost: str
) -> None:
    """Approving a device signs a new list: it is pinned here only once the server took it. A
    list pinned before (as it was) and then lost or refused left this device a version ahead
    of its server, so every later send and approval refused the server's own list as a
    rollback."""
    async with talking(pair[0]) as (a, b, alice1, bob1):
        alice2, setup = await device(a, "alice")
        assert setup.state == "pending"
        real_call = alice1._call

        async def publish_fails(method: str, path: str, **kwargs: Any) -> Any:
            if method == "PUT" and path.endswith("/device_list"):
                if lost == "request":
                    raise ConnectionError("the connection broke before the server had it")
                raise DmError("PUT device_list: 503 Service Unavailable")
            return await real_call(method, path, **kwargs)

        alice1._call = publish_fails  # type: ignore[method-assign]
        with pytest.raises((ConnectionError, DmError)):
            await alice1.approve(alice2.device.device_id)
        alice1._call = real_call  # type: ignore[method-assign]
        await alice1.send(handle(b, "bob"), "still sending")
        assert [m.content for m in await receive_until(bob1)] == ["still sending"]
        await alice1.approve(alice2.device.device_id)
        await alice1.send(handle(b, "bob"), "to bob and my new device")
        assert [m.content for m in await receive_until(alice2)] == ["to bob and my new device"]
        await alice2.close()


class Chaos:
    """Alice on A and Bob on B, each with a device kept in a store (written when the client
    says so, as the CLI's is), and a way to break one HTTP call of theirs and then "crash": the
    client object is thrown away and a new one is made from what its store holds."""

    def __init__(self, tmp_path: Path, alice: DmClient, bob: DmClient, bob_handle: str, alice_handle: str) -> None:
        self.stores = {"alice": Store(tmp_path / "alice", PASSPHRASE), "bob": Store(tmp_path / "bob", PASSPHRASE)}
        self.clients = {"alice": alice, "bob": bob}
        self.handles = {"alice": alice_handle, "bob": bob_handle}
        for name, client in self.clients.items():
            self.stores[name].save(client.profile)
            client._persist_hook = self.stores[name].save
        self.shown: list[str] = []  # every message either member was shown, in order

    def other(self, name: str) -> str:
        return "bob" if name == "alice" else "alice"

    async def break_call(
        self, name: str, operation: Any, number: int, lost: str, counts: Any = lambda method, path: True
    ) -> bool:
        """Run ``operation(client)`` with its ``number``-th HTTP call (of those ``counts``
        accepts) broken (its request lost, or its answer lost after the server acted), then crash
        and restart ``name``. Whether the operation made that many calls."""
        client = self.clients[name]
        real_call = client._call
        calls = 0

        async def broken(method: str, path: str, **kwargs: Any) -> Any:
            nonlocal calls
            if not counts(method, path):
                return await real_call(method, path, **kwargs)
            calls += 1
            if calls == number and lost == "request":
                raise ConnectionError(f"call {number} never reached the server")
            answer = await real_call(method, path, **kwargs)
            if calls == number:
                raise ConnectionError(f"the answer to call {number} never came back")
            return answer

        client._call = broken  # type: ignore[method-assign]
        try:
            result = await operation(client)
        except ConnectionError:
            pass  # and the device dies here: nothing more is saved
        else:
            if isinstance(result, list):
                self.shown += [m.content for m in result if isinstance(m, Incoming)]
            self.stores[name].save(client.profile)  # the command ended normally
        await client.close()
        self.clients[name] = DmClient(self.stores[name].load(), persist=self.stores[name].save)
        return calls >= number

    async def exchange(self, tag: str) -> None:
        """A message each way must arrive (after whatever a broken call left waiting), and
        nothing may fail to decrypt."""
        for sender in ("alice", "bob"):
            receiver = self.other(sender)
            text = f"probe {tag} from {sender}"
            await self.clients[sender].send(self.handles[receiver], text)

            self.stores[sender].save(self.clients[sender].profile)  # as a command does when it ends

            async def arrived(receiver: str = receiver, text: str = text) -> bool:
                self.shown += [m.content for m in await self.clients[receiver].receive()]
                self.stores[receiver].save(self.clients[receiver].profile)
                return text in self.shown

            await eventually(arrived, what=f"{text!r}")
        for name, client in self.clients.items():
            assert client.profile.undecryptable == 0, (tag, name)
        assert len(self.shown) == len(set(self.shown)), f"{tag}: a message was shown twice"


async def test_any_broken_call_then_a_crash_leaves_both_members_talking(
    pair: tuple[list[Instance], Any], tmp_path: Path
) -> None:
    """Failure injection over whole client operations: for sending and receiving, every HTTP
    call the operation makes is broken in turn, once before the server gets the request and
    once after it acted (the answer lost), and the device then crashes and restarts from its
    store. After each, both members must still exchange messages, none shown twice and none
    undecryptable (a lost message key, a reused one, or a device wedged by its own state)."""
    async with talking(pair[0]) as (a, b, alice1, bob1):
        chaos = Chaos(tmp_path, alice1, bob1, handle(b, "bob"), handle(a, "alice"))
        await chaos.exchange("start")
        sent = 0

        async def send(client: DmClient) -> None:
            nonlocal sent
            sent += 1
            await client.send(chaos.handles["bob"], f"broken send {sent}")

        async def receive(client: DmClient) -> list[Incoming]:
            return await client.receive()

        broken = 0
        waiting_sent: list[str] = []
        for lost in ("request", "answer"):
            number = 1
            while await chaos.break_call("alice", send, number, lost):
                broken += 1
                await chaos.exchange(f"alice send, call {number}, {lost} lost")
                number += 1
            number = 1
            while True:
                waiting_sent.append(f"waiting {lost} {number}")
                await chaos.clients["alice"].send(chaos.handles["bob"], waiting_sent[-1])

                async def waiting() -> bool:
                    return len(await b.rows(E2EEMessage)) > 0

                await eventually(waiting, what="a message waiting for bob")
                if not await chaos.break_call("bob", receive, number, lost):
                    break
                broken += 1
                await chaos.exchange(f"bob receive, call {number}, {lost} lost")
                number += 1
        assert broken >= 8  # sends make 3+ calls and receives 4+; each broken both ways
        # Every message bob's server took was shown to him once, even those his device opened
        # and kept just before it crashed (shown by the next receive, not lost in the history).
        await chaos.exchange("end")
        waiting = [t for t in chaos.shown if t.startswith("waiting ")]
        assert sorted(waiting) == sorted(waiting_sent)
        for client in chaos.clients.values():
            await client.close()


async def yes(emoji: Any, decimals: Any) -> bool:
    return True


async def test_steps_and_refused_ciphertexts_opened_before_a_crash_are_not_opened_again(
    pair: tuple[list[Instance], Any], tmp_path: Path
) -> None:
    """A device that died between opening its inbox and the server taking the acknowledgement
    gets the same ciphertexts again. Opening one again fails (its ratchet step is spent), so
    every ciphertext opened is kept by object id with the profile before the acknowledgement
    (``Profile.unacknowledged``): a verification step is not counted as undecryptable then,
    and a refused ciphertext is counted once."""
    async with talking(pair[0]) as (_a, b, alice1, bob1):
        bob_store = Store(tmp_path / "bob", PASSPHRASE)
        bob_store.save(bob1.profile)
        bob1._persist_hook = bob_store.save
        bob_actor = await alice1.resolve(handle(b, "bob"))
        await alice1.send(handle(b, "bob"), "a message")
        await alice1._send_control(bob_actor, {"type": "SasCancel", "txn": "none", "reason": "test"})
        await alice1._call(
            "POST",
            "/api/v1/hearthside/e2ee/messages",
            json_body={
                "to": bob_actor,
                "franking_tag": b64encode(os.urandom(32)),
                "ciphertexts": [
                    {
                        "actor": bob_actor,
                        "device_id": bob1.device.device_id,
                        "type": 1,
                        "body": b64encode(os.urandom(300)),
                    }
                ],
            },
        )

        async def all_three() -> bool:
            return len(await b.rows(E2EEMessage)) == 3

        await eventually(all_three, what="three ciphertexts waiting for bob")
        real_call = bob1._call

        async def dies_at_ack(method: str, path: str, **kwargs: Any) -> Any:
            if path.endswith("/messages/ack"):
                raise ConnectionError("the device died here")
            return await real_call(method, path, **kwargs)

        bob1._call = dies_at_ack  # type: ignore[method-assign]
        with pytest.raises(ConnectionError):
            await bob1.receive()
        assert bob1.profile.undecryptable == 1
        async with DmClient(bob_store.load(), persist=bob_store.save) as bob_again:
            assert len(bob_again.profile.unacknowledged) == 3
            assert [m.content for m in await bob_again.receive()] == ["a message"]
            assert bob_again.profile.undecryptable == 1  # the refused one, once
            assert bob_again.profile.unacknowledged == []
            assert await b.rows(E2EEMessage) == []
            await alice1.send(handle(b, "bob"), "and the next one")
            assert [m.content for m in await receive_until(bob_again)] == ["and the next one"]
            assert bob_again.profile.undecryptable == 1


async def test_messages_opened_while_listing_or_verifying_are_still_shown_as_new(
    pair: tuple[list[Instance], Any],
) -> None:
    """Listing conversations and a verification waiting for its next step open what is waiting
    (they must: the steps arrive there) but hand nothing over: the next ``receive`` shows
    those messages as new. Before, both marked them read without showing them."""
    async with talking(pair[0]) as (a, b, alice1, bob1):

        async def waiting(count: int) -> None:
            async def there() -> bool:
                return len(await b.rows(E2EEMessage)) == count

            await eventually(there, what=f"{count} message(s) waiting for bob")

        await alice1.send(handle(b, "bob"), "before the listing")
        await waiting(1)
        await bob1.fetch()
        assert [(c["messages"], c["unread"]) for c in bob1.conversations()] == [(1, 1)]
        await alice1.send(handle(b, "bob"), "before the verification")
        await waiting(1)
        verified = await asyncio.gather(
            alice1.verify_sas(handle(b, "bob"), yes, within=30),
            bob1.verify_sas(handle(a, "alice"), yes, within=30),
        )
        assert verified == [True, True]
        assert [m.content for m in await bob1.receive()] == ["before the listing", "before the verification"]
        assert [(c["messages"], c["unread"]) for c in bob1.conversations()] == [(2, 0)]
        assert await bob1.receive() == []


async def test_a_broken_call_then_a_crash_in_approve_revoke_or_report_leaves_it_done_once(
    pair: tuple[list[Instance], Any], tmp_path: Path
) -> None:
    """Failure injection over approving and revoking a device and reporting a message: every
    HTTP call of each is broken in turn (its request lost, or its answer lost after the server
    acted), the device crashes and restarts from its store, and the member runs the same
    command again. It must then be done exactly once: an approval or revocation that landed is
    reported as done already, a report is filed once; and the two members still talk."""
    async with talking(pair[0]) as (a, b, alice1, bob1):
        chaos = Chaos(tmp_path, alice1, bob1, handle(b, "bob"), handle(a, "alice"))
        await chaos.exchange("start")
        broken = 0

        async def new_device() -> DmClient:
            newcomer, setup = await device(a, "alice")
            assert setup.state == "pending"
            return newcomer

        async def can_read(newcomer: DmClient, text: str) -> None:
            await chaos.clients["alice"].send(chaos.handles["bob"], text)
            assert text in [m.content for m in await receive_until(newcomer)]

        for lost in ("request", "answer"):
            number = 1
            while True:  # approving: every call broken in turn, then approved again
                newcomer = await new_device()
                device_id = newcomer.device.device_id
                reached = await chaos.break_call("alice", lambda c, d=device_id: c.approve(d), number, lost)
                again = await chaos.clients["alice"].approve(device_id)
                states = {d["device_id"]: d["state"] for d in (await chaos.clients["alice"].devices())["devices"]}
                assert states[device_id] == "active"
                await can_read(newcomer, f"to the approved device, {lost} {number}")
                await chaos.clients["alice"].revoke(device_id)
                await newcomer.close()
                if not reached:
                    assert again is False  # approved by the unbroken run
                    break
                broken += 1
                await chaos.exchange(f"approve, call {number}, {lost} lost")
                number += 1
            number = 1
            while True:  # revoking
                newcomer = await new_device()
                device_id = newcomer.device.device_id
                assert await chaos.clients["alice"].approve(device_id)
                reached = await chaos.break_call("alice", lambda c, d=device_id: c.revoke(d), number, lost)
                again = await chaos.clients["alice"].revoke(device_id)
                states = {d["device_id"]: d["state"] for d in (await chaos.clients["alice"].devices())["devices"]}
                assert states[device_id] == "revoked"
                await chaos.clients["alice"].send(chaos.handles["bob"], f"after revoking, {lost} {number}")
                with pytest.raises(DmError, match="401"):
                    await newcomer.receive()
                await newcomer.close()
                if not reached:
                    assert again is False
                    break
                broken += 1
                await chaos.exchange(f"revoke, call {number}, {lost} lost")
                number += 1
            # Reporting: one call; with the answer lost, the second run gets the first report.
            reported = next(i["id"] for i in chaos.clients["bob"].profile.history if i["direction"] == "in")
            comment = f"reported, {lost} lost"

            async def report(client: DmClient, comment: str = comment, reported: str = reported) -> None:
                await client.report([reported], comment=comment, forward=False)

            assert await chaos.break_call("bob", report, 1, lost)
            broken += 1
            filed = await chaos.clients["bob"].report([reported], comment=comment, forward=False)
            rows = await b.rows(Report, Report.comment == comment)
            assert [str(r.id) for r in rows] == [filed["id"]]
            await chaos.exchange(f"report, {lost} lost")
        assert broken == 10  # approve and revoke make two calls each, report one; each broken both ways
        for client in chaos.clients.values():
            await client.close()


@pytest.mark.parametrize("pair", ["sqlite"], indirect=True)  # the client's logic; the server's database plays no part
@pytest.mark.parametrize(
    ("call", "number"),
    [("step", 1), ("step", 2), ("step", 3), ("ack", 1)],
    ids=["commitment", "key", "mac", "first-ack"],
)
@pytest.mark.parametrize("lost", ["request", "answer"])
@pytest.mark.timeout(240)
async def test_a_verification_broken_by_a_crash_succeeds_when_both_run_it_again(
    pair: tuple[list[Instance], Any], tmp_path: Path, call: str, number: int, lost: str
) -> None:
    """Alice's device crashes in the middle of an SAS verification: posting her commitment,
    key or MAC, or acknowledging the steps it opened (request or answer lost). Bob's side gives
    up or finishes; then both run it again and both end verified. Steps the crash left behind
    (delivered again, or from the abandoned attempt) are neither mistaken for the new
    attempt's nor counted as undecryptable."""

    def counts(method: str, path: str) -> bool:
        if call == "ack":
            return path.endswith("/messages/ack")
        return method == "POST" and path.endswith("/e2ee/messages")

    async with talking(pair[0]) as (a, b, alice1, bob1):
        chaos = Chaos(tmp_path, alice1, bob1, handle(b, "bob"), handle(a, "alice"))
        await chaos.exchange("start")

        async def alice_verifies(client: DmClient) -> None:
            await client.verify_sas(chaos.handles["bob"], yes, within=30)

        reached, bob_first = await asyncio.gather(
            chaos.break_call("alice", alice_verifies, number, lost, counts),
            chaos.clients["bob"].verify_sas(chaos.handles["alice"], yes, within=4),
            return_exceptions=True,
        )
        assert reached is True
        assert bob_first is True or isinstance(bob_first, DmError), bob_first
        again = await asyncio.gather(
            chaos.clients["alice"].verify_sas(chaos.handles["bob"], yes, within=30),
            chaos.clients["bob"].verify_sas(chaos.handles["alice"], yes, within=30),
        )
        assert again == [True, True]
        await chaos.exchange("after")  # also: nothing undecryptable on either side
        for client in chaos.clients.values():
            await client.close()


async def test_support_panels_are_chosen_on_the_device_and_change_nothing_a_server_sees(
    pair: tuple[list[Instance], Any],
) -> None:
    """A message that may show someone is struggling gets a support panel on the member's own
    device (docs/safety.md "Encrypted messages"): the writer sees the signpost a post would
    get, the reader the supporter's panel, each with their own helplines. The devices make the
    same requests whatever the message says (the kit is fetched once, before any message),
    and a member who turns the panels off sees none."""
    from test_crisis_queue import CRISIS

    async with talking(pair[0]) as (_a, b, alice1, bob1):
        await b.api("PATCH", "/api/v1/hearthside/safety/settings", b.users["bob"], json={"country": "FR"})
        calls: dict[str, list[tuple[str, str]]] = {"alice": [], "bob": []}
        for name, client in (("alice", alice1), ("bob", bob1)):
            real = client._call

            async def recorded(method: str, path: str, _real: Any = real, _name: str = name, **kw: Any) -> Any:
                calls[_name].append((method, path))
                return await _real(method, path, **kw)

            client._call = recorded  # type: ignore[method-assign]
        bob_handle = handle(b, "bob")
        sends = []
        for text in ("see you at the group tomorrow", "the weather was nice today", CRISIS["en"], CRISIS["fr"]):
            before = len(calls["alice"])
            await alice1.send(bob_handle, text)
            sends.append(calls["alice"][before:])
        kit_fetches = [c for c in calls["alice"] if c[1].endswith("/safety/support_kit")]
        assert kit_fetches == [("GET", "/api/v1/hearthside/safety/support_kit")]
        assert kit_fetches[0] in sends[0]
        assert sends[1] == sends[2] == sends[3]  # a crisis message costs no request of its own
        assert [(p["kind"], p["language"]) for p in alice1.support] == [("signpost", "en"), ("signpost", "fr")]
        assert alice1.support[0]["message"].startswith("It sounds like")

        got = await receive_until(bob1, 4)
        panels = {m.content: m.support for m in got}
        assert panels["see you at the group tomorrow"] is None and panels["the weather was nice today"] is None
        for lang in ("en", "fr"):
            panel = panels[CRISIS[lang]]
            assert panel is not None and (panel["kind"], panel["language"]) == ("supporter", lang)
            assert [h["phone"] for h in panel["helplines"]] == ["3114"]  # bob's country, not alice's
        assert len(bob1.support) == 2
        assert [c for c in calls["bob"] if "safety" in c[1]] == [("GET", "/api/v1/hearthside/safety/support_kit")]

        bob1.profile.support_panels = False
        await alice1.send(bob_handle, CRISIS["en"])
        (again,) = await receive_until(bob1)
        assert again.support is None and len(bob1.support) == 2


async def test_hearthside_dm_support__shown_after_send_and_read_and_turned_off(
    pair: tuple[list[Instance], Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from test_crisis_queue import CRISIS

    monkeypatch.setenv("HEARTHSIDE_DM_PASSPHRASE", PASSPHRASE)
    (a, b), _pg = pair
    gina = await a.user("gina")
    hal = await b.user("hal")
    await mutual_follow(a, gina, b, hal)
    profiles = {"gina": tmp_path / "gina", "hal": tmp_path / "hal"}
    for name, inst, user in (("gina", a, gina), ("hal", b, hal)):
        await cli_login(profiles[name], inst, user)
        await dm(profiles[name], "setup")
    sent = await dm(profiles["gina"], "send", handle(b, "hal"), CRISIS["en"])
    assert "It sounds like things might be really hard" in sent and "support off" in sent
    assert "It sounds like" not in await dm(profiles["gina"], "send", handle(b, "hal"), "hello again")

    async def read_all() -> str:
        out: list[str] = []

        async def arrived() -> bool:
            out.append(await dm(profiles["hal"], "read"))
            return "hello again" in "".join(out)

        await eventually(arrived, what="hal's messages")
        return "".join(out)

    shown = await read_all()
    assert "Someone you are talking with may be going through something very hard" in shown
    assert json.loads(await dm(profiles["hal"], "--json", "support", "off")) == {"support_panels": False}
    assert json.loads(await dm(profiles["hal"], "--json", "support"))["support_panels"] is False
    await dm(profiles["gina"], "send", handle(b, "hal"), CRISIS["en"] + ", again")
    await dm(profiles["gina"], "send", handle(b, "hal"), "hello again")
    assert "Someone you are talking with" not in await read_all()


async def test_hearthside_dm_block__neither_can_message_the_other_until_unblocked(
    pair: tuple[list[Instance], Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Blocking from the messaging tool, as a member facing harassment would: the blocked
    contact's messages are refused by the servers, and the member cannot write to them
    either; unblocking (with an open message policy, since a block ends follows) lets them
    talk again. Only an exact match of the name is blocked, never a search's nearest hit."""
    monkeypatch.setenv("HEARTHSIDE_DM_PASSPHRASE", PASSPHRASE)
    async with talking(pair[0]) as (a, b, alice1, bob1):
        await b.user("bobby")  # a similar name on the same server: must never be the one blocked
        profile = tmp_path / "alice-cli"
        alice_user = a.users["alice"]
        await cli_login(profile, a, alice_user)
        await dm(profile, "setup")
        await alice1.approve(Store(profile, PASSPHRASE).load().device.device_id)  # type: ignore[union-attr]
        code, _out, err = await run_dm(profile, "block", handle(b, "bob") + "x")
        assert code == 2 and "was not found" in err
        blocked = json.loads(await dm(profile, "--json", "block", handle(b, "bob")))
        assert blocked == {"contact": handle(b, "bob"), "blocked": True}
        # Refused by bob's own server once alice's Block reached it, by alice's before that.
        with pytest.raises(DmError, match=r"403 you cannot message this account|their server refused: they may have"):
            await bob1.send(handle(a, "alice"), "you can't block me")
        with pytest.raises(DmError, match="403 you cannot message this account"):
            await alice1.send(handle(b, "bob"), "nor can I write to you")
        relationships = await a.api(
            "GET",
            "/api/v1/accounts/relationships",
            alice_user,
            params={"id[]": (await resolve(a, alice_user, "bobby@" + b.domain))["id"]},
        )
        assert relationships[0]["blocking"] is False
        code, _out, err = await run_dm(profile, "block", "--undo", handle(b, "bobby"))
        assert code == 2 and "not in your block list" in err
        await dm(profile, "block", "--undo", handle(b, "bob"))
        await open_to_everyone(a, alice1)

        async def sent() -> bool:  # once alice's Undo of the Block reached bob's server
            try:
                await bob1.send(handle(a, "alice"), "thank you for unblocking me")
            except DmError as exc:
                assert "403" in str(exc)
                return False
            return True

        await eventually(sent, what="bob's server taking the unblock")
        await request_arrives(alice1)  # the block ended their follows: bob is a stranger now
        await alice1.accept(handle(b, "bob"))
        assert "thank you for unblocking me" in [m.content for m in await alice1.receive()]


async def test_deleting_a_message_for_everyone__only_its_author_within_a_day_and_still_reportable(
    pair: tuple[list[Instance], Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``delete --everyone``: the message leaves the recipient's view (unread: never shown;
    read: shown as deleted) and the author's other device drops it. Only its author can do it
    (each device checks the Delete came from the message's sender) and only within 24 hours;
    the recipient can still report it for a week, then it is gone from their device."""
    from datetime import UTC, datetime, timedelta

    from crypto.envelope import new_control_message

    monkeypatch.setenv("HEARTHSIDE_DM_PASSPHRASE", PASSPHRASE)
    async with talking(pair[0]) as (a, b, alice1, bob1):
        alice2, _ = await device(a, "alice")
        await alice1.approve(alice2.device.device_id)
        bob_handle, bob_actor = handle(b, "bob"), b.actor("bob")
        seen_id = await alice1.send(bob_handle, "something I regret")
        assert [m.content for m in await receive_until(bob1)] == ["something I regret"]
        assert [m.content for m in await receive_until(alice2)] == ["something I regret"]
        unseen_id = await alice1.send(bob_handle, "something I regret at once")

        async def waiting() -> bool:
            return len(await b.rows(E2EEMessage)) == 1

        await eventually(waiting, what="the second message waiting for bob")
        # Bob cannot delete alice's message (on her devices or his own).
        forged = new_control_message(
            sender=bob_actor, recipient=a.actor("alice"), body={"type": "Delete", "id": seen_id}, now=datetime.now(UTC)
        )
        await bob1._deliver(a.actor("alice"), forged, shown_as="alice")
        # Nor can alice, once the day has passed (her device refuses; a forged late Delete is ignored).
        late = new_control_message(
            sender=a.actor("alice"),
            recipient=bob_actor,
            body={"type": "Delete", "id": seen_id},
            now=datetime.now(UTC) + timedelta(hours=25),
        )
        await alice1._deliver(bob_actor, late, shown_as=bob_handle)

        async def both_there() -> bool:  # the unseen message and the late Delete
            return len(await b.rows(E2EEMessage)) == 2

        await eventually(both_there, what="the late Delete waiting for bob")
        assert [m.content for m in await bob1.receive()] == ["something I regret at once"]
        assert not any(i.get("deleted_at") for i in bob1.profile.history)
        await receive_until(alice2)  # her own copy of the unseen one; bob's forged Delete did nothing
        await alice1.receive()
        for client in (alice1, alice2):
            assert {seen_id, unseen_id} <= {i["id"] for i in client.profile.history}
            assert not any(i.get("deleted_at") for i in client.profile.history)
        bob1.profile.history[-1]["unread"] = True  # as if bob had not read it yet
        await alice1.delete_for_everyone(unseen_id)
        await alice1.delete_for_everyone(seen_id)
        assert [i["id"] for i in alice1.profile.history] == []

        async def all_there() -> bool:  # the two Deletes
            return len(await b.rows(E2EEMessage)) == 2

        await eventually(all_there, what="everything alice sent, waiting for bob")
        assert await bob1.receive() == []  # the unseen one is never shown
        deleted = {i["id"]: i for i in bob1.profile.history}
        assert set(deleted) == {seen_id, unseen_id} and all(i.get("deleted_at") for i in deleted.values())
        await alice2.receive()
        assert [i["id"] for i in alice2.profile.history] == []
        await alice1.receive()
        assert alice1.profile.undecryptable == bob1.profile.undecryptable == alice2.profile.undecryptable == 0
        # Alice still sees hers (bob's forged Delete was for a message that is not his).
        # Bob can still report what was deleted, for a week.
        report = await bob1.report([seen_id], comment="sent then deleted", forward=False)
        shown = await b.api(
            "GET",
            f"/api/v1/hearthside/e2ee/reports/{report['id']}",
            await b.user("modb", role="moderator", scopes="read write admin:read admin:write"),
        )
        assert [m["content"] for m in shown["messages"]] == ["something I regret"]
        assert bob1.purge_expired(datetime.now(UTC) + timedelta(days=6)) == 0
        assert bob1.purge_expired(datetime.now(UTC) + timedelta(days=8)) == 2
        await alice2.close()

        # The commands: a message shown as deleted, the 24-hour limit named.
        store = Store(tmp_path / "bob", PASSPHRASE)
        again_id = await alice1.send(bob_handle, "once more")
        await receive_until(bob1)
        await alice1.delete_for_everyone(again_id)
        await bob1.fetch()
        store.save(bob1.profile)
        out = await dm(tmp_path / "bob", "read", "--all")
        assert "(deleted by the sender)" in out and "once more" not in out
        listed = [json.loads(line) for line in (await dm(tmp_path / "bob", "--json", "read", "--all")).splitlines()]
        assert [(m["id"], m["message"]["body"]["content"]) for m in listed] == [(again_id, "")]
        alice_store = Store(tmp_path / "alice", PASSPHRASE)
        old_id = await alice1.send(bob_handle, "an old message")
        old = next(i for i in alice1.profile.history if i["id"] == old_id)
        old["message"]["created"] = "2000-01-01T00:00:00Z"
        alice_store.save(alice1.profile)
        code, _out, err = await run_dm(tmp_path / "alice", "delete", "--everyone", old_id)
        assert code == 2 and "within 24 hours" in err
        assert "Deleted" in await dm(tmp_path / "alice", "delete", old_id)
        assert old_id not in json.dumps(Store(tmp_path / "alice", PASSPHRASE).load().history)


async def test_a_conversation_timer_reaches_both_sides_and_every_device(
    pair: tuple[list[Instance], Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Disappearing messages for a whole conversation (Signal's timer): set by either member,
    it travels encrypted to the other's devices and the setter's others; from then on both
    sides' messages carry it, and every device deletes them when it passes. An older change
    arriving late does not undo a newer one; either side can turn it off."""
    from datetime import UTC, datetime, timedelta

    from crypto.envelope import new_control_message

    monkeypatch.setenv("HEARTHSIDE_DM_PASSPHRASE", PASSPHRASE)
    async with talking(pair[0]) as (a, b, alice1, bob1):
        alice2, _ = await device(a, "alice")
        await alice1.approve(alice2.device.device_id)
        alice_actor, bob_actor = a.actor("alice"), b.actor("bob")
        assert await alice1.set_timer(handle(b, "bob"), timedelta(hours=1)) == bob_actor
        # A change made before it, delivered after it, is ignored.
        stale = new_control_message(
            sender=alice_actor,
            recipient=bob_actor,
            body={"type": "Timer", "seconds": 0},
            now=datetime.now(UTC) - timedelta(minutes=10),
        )
        await alice1._deliver(bob_actor, stale, shown_as="bob")

        async def both_there() -> bool:
            return len(await b.rows(E2EEMessage)) == 2

        await eventually(both_there, what="the timer changes waiting for bob")
        await bob1.receive()
        assert bob1.timer(alice_actor) == timedelta(hours=1)
        assert any("disappear 1 hour after sending" in n for n in bob1.notices)
        await alice2.receive()
        assert alice2.timer(bob_actor) == timedelta(hours=1)

        await bob1.send(handle(a, "alice"), "this one disappears")
        (got,) = await receive_until(alice1)
        item = next(i for i in alice1.profile.history if i["id"] == got.id)
        created = datetime.fromisoformat(item["message"]["created"].replace("Z", "+00:00"))
        assert item["message"]["expires"] == (created + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert alice1.purge_expired(datetime.now(UTC) + timedelta(minutes=59)) == 0
        assert alice1.purge_expired(datetime.now(UTC) + timedelta(minutes=61)) == 1
        assert [c["timer_seconds"] for c in bob1.conversations()] == [3600]

        await bob1.set_timer(handle(a, "alice"), None)

        async def turned_off() -> bool:
            for client in (alice1, alice2):
                await client.receive()
            return alice1.timer(bob_actor) is None and alice2.timer(bob_actor) is None

        await eventually(turned_off, what="bob's 'off' on both of alice's devices")
        await alice1.send(handle(b, "bob"), "this one stays")
        (kept,) = await receive_until(bob1)
        assert next(i for i in bob1.profile.history if i["id"] == kept.id)["message"]["expires"] is None
        with pytest.raises(DmError, match="between 1 second and 365 days"):
            await alice1.set_timer(handle(b, "bob"), timedelta(days=400))
        await alice2.close()

        Store(tmp_path / "alice", PASSPHRASE).save(alice1.profile)
        code, _out, err = await run_dm(tmp_path / "alice", "timer", handle(b, "bob"), "2x")
        assert code == 2 and "timer: give a duration" in err
        said = json.loads(await dm(tmp_path / "alice", "--json", "timer", handle(b, "bob"), "8h"))
        assert said["timer_seconds"] == 8 * 3600


async def test_messages_from_strangers_wait_as_message_requests(
    pair: tuple[list[Instance], Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A member open to messages from everyone sees those from people they don't know (no
    follow, no shared group, never written to) only as message requests, until they accept
    them; declined requests are deleted unseen. Contacts' messages, and replies from someone
    the member wrote to first, arrive as usual. The server says who is known (``known``)."""
    monkeypatch.setenv("HEARTHSIDE_DM_PASSPHRASE", PASSPHRASE)
    async with talking(pair[0]) as (a, b, alice1, bob1):
        await open_to_everyone(b, bob1)
        for name in ("carol", "dave", "erin"):
            await a.user(name)
        carol1, _ = await device(a, "carol")
        dave1, _ = await device(a, "dave")
        erin1, _ = await device(a, "erin")
        bob_handle = handle(b, "bob")
        async with carol1, dave1, erin1:
            await open_to_everyone(a, erin1)  # so bob may write to her first
            await bob1.send(handle(a, "erin"), "hello erin, I wrote first")
            await request_arrives(erin1)  # bob is a stranger to erin, too
            assert await erin1.accept(handle(b, "bob")) == 1
            assert [m.content for m in await erin1.receive()] == ["hello erin, I wrote first"]
            await carol1.send(bob_handle, "hi, we haven't met")
            await dave1.send(bob_handle, "you don't know me")
            await erin1.send(bob_handle, "hello bob")
            await alice1.send(bob_handle, "from a contact")

            async def waiting() -> bool:
                return len(await b.rows(E2EEMessage)) == 4

            await eventually(waiting, what="four messages for bob")
            inbox = await b.api(
                "GET",
                "/api/v1/hearthside/e2ee/messages",
                None,
                headers={"Authorization": f"Bearer {bob1.profile.token}"},
            )
            known = {m["sender"]["actor"]: m["sender"]["known"] for m in inbox["messages"]}
            assert known == {
                a.actor("carol"): False,
                a.actor("dave"): False,
                a.actor("erin"): False,
                a.actor("alice"): True,
            }
            shown = await bob1.receive()
            assert sorted(m.content for m in shown) == ["from a contact", "hello bob"]
            assert [(r["peer"], [i["message"]["body"]["content"] for i in r["messages"]]) for r in bob1.requests()] == [
                (a.actor("carol"), ["hi, we haven't met"]),
                (a.actor("dave"), ["you don't know me"]),
            ]
            assert a.actor("carol") not in [c["peer"] for c in bob1.conversations()]

            assert await bob1.accept(handle(a, "carol")) == 1
            assert [m.content for m in await bob1.receive()] == ["hi, we haven't met"]
            await carol1.send(bob_handle, "thanks for accepting")
            assert [m.content for m in await receive_until(bob1)] == ["thanks for accepting"]

            assert await bob1.decline(a.actor("dave")) == 1
            assert bob1.requests() == [] and "you don't know me" not in json.dumps(bob1.profile.history)
            await dave1.send(bob_handle, "still me")

            async def one_waiting() -> bool:
                return len(await b.rows(E2EEMessage)) == 1

            await eventually(one_waiting, what="dave's second message")
            assert await bob1.receive() == [] and [r["peer"] for r in bob1.requests()] == [a.actor("dave")]
            with pytest.raises(DmError, match="no message requests from"):
                await bob1.accept(handle(a, "erin"))

            # The commands: the notice on read, the list, accepting.
            store = Store(tmp_path / "bob", PASSPHRASE)
            store.save(bob1.profile)
            code, _out, err = await run_dm(tmp_path / "bob", "read")
            assert code == 0 and "message requests from 1 sender(s)" in err
            listed = await dm(tmp_path / "bob", "requests")
            assert "still me" in listed and a.actor("dave") in listed
            assert "Accepted" in await dm(tmp_path / "bob", "requests", "accept", handle(a, "dave"))
            assert "still me" in await dm(tmp_path / "bob", "read")


async def test_hearthside_dm_logout__revokes_this_device_or_forgets_it_here(
    pair: tuple[list[Instance], Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``logout`` on a device holding the master key (with another device left) revokes it
    and deletes its store; a device without the master key cannot revoke itself and says how,
    and ``--forget-here`` deletes its store anyway. Either way the login's token is revoked."""
    monkeypatch.setenv("HEARTHSIDE_DM_PASSPHRASE", PASSPHRASE)
    (a, _b), _pg = pair
    kim = await a.user("kim")
    first, second, third = tmp_path / "kim1", tmp_path / "kim2", tmp_path / "kim3"
    for profile in (first, second, third):
        await cli_login(profile, a, kim)
    await dm(first, "setup")
    ids = {}
    for profile in (second, third):
        ids[profile] = json.loads(await dm(profile, "--json", "setup"))["device_id"]
        await dm(first, "devices", "approve", ids[profile])
    tokens = {p: Store(p, PASSPHRASE).load().token for p in (first, second, third)}

    async def token_works(profile: Path) -> bool:
        headers = {"Authorization": f"Bearer {tokens[profile]}"}
        answer = await a.api("GET", "/api/v1/hearthside/e2ee/devices", None, expect=None, headers=headers)
        return isinstance(answer, dict) and "devices" in answer

    code, _out, err = await run_dm(second, "logout")
    assert code == 2 and f"devices revoke {ids[second]}" in err and Store(second, PASSPHRASE).exists()
    said = json.loads(await dm(second, "--json", "logout", "--forget-here"))
    assert said == {"device_id": ids[second], "revoked": False, "store_deleted": True}
    assert not Store(second, PASSPHRASE).exists() and not await token_works(second)

    first_id = Store(first, PASSPHRASE).load().device.device_id  # type: ignore[union-attr]
    assert json.loads(await dm(first, "--json", "logout"))["revoked"] is True
    assert not Store(first, PASSPHRASE).exists() and not await token_works(first)
    states = {d.device_id: d.state for d in await a.rows(E2EEDevice)}
    assert states[first_id] == "revoked" and states[ids[third]] == "active"
    assert await token_works(third)


async def test_a_concern_from_the_messaging_tool_reaches_responders_and_never_the_messages(
    pair: tuple[list[Instance], Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Worried about someone they talk with, a member tells their instance's trained
    responders: a concern item naming who (and the member's comment), nothing from the
    encrypted conversation, nothing sent to the person. Only for members of the same instance
    (concerns are local); the refusal says so."""
    from server.models import CrisisItem

    monkeypatch.setenv("HEARTHSIDE_DM_PASSPHRASE", PASSPHRASE)
    async with talking(pair[0]) as (a, b, alice1, _bob1):
        carol = await a.user("carol")
        carol1, _ = await device(a, "carol")
        async with carol1:
            await open_to_everyone(a, alice1)
            await carol1.send(handle(a, "alice"), "a private message that stays private")
            answer = await alice1.concern(handle(a, "carol"), "she seemed very low tonight")
            assert answer["message"].startswith("Thank you for looking out for them")
            (item,) = await a.rows(CrisisItem, CrisisItem.kind == "concern")
            assert item.account_id == carol.account_id and item.comment == "she seemed very low tonight"
            assert "stays private" not in json.dumps([str(v) for v in vars(item).values()])
            with pytest.raises(DmError, match="members of this instance only"):
                await alice1.concern(handle(b, "bob"))
            Store(tmp_path / "alice", PASSPHRASE).save(alice1.profile)
            code, _out, err = await run_dm(tmp_path / "alice", "concern", handle(a, "carol"))
            assert code == 2 and "429" in err  # one concern a day about the same member


@pytest.mark.parametrize("pair", ["sqlite"], indirect=True)  # the client's logic only
async def test_sas_verification_with_a_contact_whose_clock_runs_behind(pair: tuple[list[Instance], Any]) -> None:
    """The steps carry the sender's clock; a contact whose clock is 7 minutes behind is still
    taken as the current attempt (commitments older than the attempt window minus 10 minutes
    of clock skew are the ones dropped as left over)."""
    from datetime import UTC, datetime, timedelta

    from crypto.envelope import new_control_message

    async with talking(pair[0]) as (a, b, alice1, bob1):

        async def behind(actor: str, body: dict[str, Any]) -> None:
            late = datetime.now(UTC) - timedelta(minutes=7)
            message = new_control_message(sender=bob1.profile.actor, recipient=actor, body=body, now=late)
            await bob1._deliver(actor, message, shown_as=actor)

        bob1._send_control = behind  # type: ignore[method-assign]
        verified = await asyncio.gather(
            alice1.verify_sas(handle(b, "bob"), yes, within=20),
            bob1.verify_sas(handle(a, "alice"), yes, within=20),
        )
        assert verified == [True, True]


def test_queued_verification_steps_are_bounded() -> None:
    """Steps nobody waits for (a long-lived client, a contact flooding them) do not pile up:
    older than an hour plus the clock-skew allowance they go, and at most 100 stay, newest."""
    from datetime import UTC, datetime, timedelta

    from server.dm.client import MAX_QUEUED_CONTROL, Control
    from server.dm.store import Profile

    client = DmClient(Profile(server="http://127.0.0.1:9", token="t", actor="https://a.example/users/x", acct="x"))
    now = int(datetime.now(UTC).timestamp())
    stale = now - int(timedelta(hours=1, minutes=11).total_seconds())
    client._queue_control(Control("https://b.example/users/y", "D1", {"type": "SasCommit", "txn": "old"}, stale))
    for i in range(150):
        client._queue_control(Control("https://b.example/users/y", "D1", {"type": "SasKey", "txn": str(i)}, now))
        if i == 0:
            assert [c.body["txn"] for c in client._control] == ["0"]  # the stale one went
    assert len(client._control) == MAX_QUEUED_CONTROL == 100
    assert [c.body["txn"] for c in client._control] == [str(i) for i in range(50, 150)]


async def test_hearthside_dm_report_block__files_the_report_then_blocks_the_sender(
    pair: tuple[list[Instance], Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HEARTHSIDE_DM_PASSPHRASE", PASSPHRASE)
    async with talking(pair[0]) as (a, b, alice1, bob1):
        await bob1.send(handle(a, "alice"), "something hurtful")
        (got,) = await receive_until(alice1)
        Store(tmp_path / "alice", PASSPHRASE).save(alice1.profile)
        answer = json.loads(await dm(tmp_path / "alice", "--json", "report", got.id, "--block", "--comment", "hurt"))
        assert answer["blocked"] == b.actor("bob") and answer["messages"] == 1
        (report,) = await a.rows(Report, Report.category == "e2ee_message")
        assert str(report.id) == answer["id"]
        blocked = await a.api("GET", "/api/v1/blocks", a.users["alice"])
        assert [account["uri"] for account in blocked] == [b.actor("bob")]


async def test_editing_a_message__shown_in_its_place_only_by_its_author_and_the_first_text_reportable(
    pair: tuple[list[Instance], Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``edit``: the corrected text travels as a new franked message naming the one it
    replaces; every device shows it in its place, marked edited. Only the author's edit of
    their own message within a day replaces anything (anyone else's shows as a message of its
    own); the recipient can still report the first text for a week."""
    from datetime import UTC, datetime, timedelta

    from crypto.envelope import new_message

    monkeypatch.setenv("HEARTHSIDE_DM_PASSPHRASE", PASSPHRASE)
    async with talking(pair[0]) as (a, b, alice1, bob1):
        alice2, _ = await device(a, "alice")
        await alice1.approve(alice2.device.device_id)
        bob_handle = handle(b, "bob")
        first = await alice1.send(bob_handle, "see you at 6")
        assert [m.content for m in await receive_until(bob1)] == ["see you at 6"]
        await receive_until(alice2)
        # Bob's "edit" of alice's message replaces nothing anywhere.
        forged = new_message(
            sender=b.actor("bob"),
            recipient=a.actor("alice"),
            content="see you never",
            now=datetime.now(UTC),
            extra={"edit_of": first},
        )
        await bob1._deliver(a.actor("alice"), forged, shown_as="alice")
        shown = await receive_until(alice1)
        assert [(m.content, m.edits) for m in shown] == [("see you never", None)]
        second = await alice1.edit(first, "see you at 7")
        (corrected,) = await receive_until(bob1)
        assert (corrected.id, corrected.content, corrected.edits) == (second, "see you at 7", first)
        for client in (alice2,):
            got = await receive_until(client, 2)
            assert ("see you at 7", first) in [(m.content, m.edits) for m in got]
        assert [c["messages"] for c in bob1.conversations()] == [1]
        assert "see you at 6" not in json.dumps([i for i in alice1.profile.history])
        # The first text stays reportable on bob's device for a week.
        report = await bob1.report([first], comment="the first version", forward=False)
        assert report["messages"] == 1
        assert bob1.purge_expired(datetime.now(UTC) + timedelta(days=8)) == 1
        # An edit made more than a day after the message replaces nothing either.
        late = new_message(
            sender=a.actor("alice"),
            recipient=b.actor("bob"),
            content="a late correction",
            now=datetime.now(UTC) + timedelta(hours=25),
            extra={"edit_of": second},
        )
        await alice1._deliver(b.actor("bob"), late, shown_as=bob_handle)
        (late_shown,) = await receive_until(bob1)
        assert (late_shown.content, late_shown.edits) == ("a late correction", None)
        with pytest.raises(DmError, match="not a message you sent"):
            await alice1.edit(first, "again")  # already replaced: edit the new one
        old = next(i for i in alice1.profile.history if i["id"] == second)
        old["message"]["created"] = "2000-01-01T00:00:00Z"
        with pytest.raises(DmError, match="within 24 hours"):
            await alice1.edit(second, "too late")
        await alice2.close()

        Store(tmp_path / "bob", PASSPHRASE).save(bob1.profile)
        out = await dm(tmp_path / "bob", "read", "--all")
        assert "see you at 7 (edited)" in out and "see you at 6" not in out and "a late correction" in out


async def test_attachments__sent_encrypted_fetched_through_the_readers_server_and_checked(
    pair: tuple[list[Instance], Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file travels as ciphertext to the sender's server; the message carries its key. Bob's
    device fetches it through his own server (alice's never sees his address), checks the
    digest and decrypts; alice's other device can too. Neither server's files hold the file.
    A message naming a file on another server than its sender's is not followed; bytes changed
    on the server are caught; deleting the message for everyone deletes the upload."""
    from datetime import UTC, datetime

    from crypto.envelope import new_message
    from server.models import E2EEAttachment

    monkeypatch.setenv("HEARTHSIDE_DM_PASSPHRASE", PASSPHRASE)
    from PIL import Image, PngImagePlugin

    canary = b"ATTACHMENT-CANARY-" + secrets.token_hex(8).encode()
    original = tmp_path / "drawing.png"
    metadata = PngImagePlugin.PngInfo()
    metadata.add_text("Comment", canary.decode())  # the file's metadata: the canary, in clear
    Image.frombytes("RGB", (64, 48), os.urandom(64 * 48 * 3)).save(original, "PNG", pnginfo=metadata)
    assert canary in original.read_bytes()
    async with talking(pair[0]) as (a, b, alice1, bob1):
        alice2, _ = await device(a, "alice")
        await alice1.approve(alice2.device.device_id)
        sent = await alice1.send(handle(b, "bob"), "", files=[original])
        (got,) = await receive_until(bob1)
        assert got.content == "📎 drawing.png"
        assert got.attachments == ({"name": "drawing.png", "size": original.stat().st_size, "media_type": "image/png"},)
        (saved,) = await bob1.save_attachments(sent, tmp_path / "bob-files")
        assert saved.name == "drawing.png" and saved.read_bytes() == original.read_bytes()
        assert oct(saved.stat().st_mode & 0o777) == "0o600"
        (again,) = await bob1.save_attachments(sent, tmp_path / "bob-files")
        assert again.name == "drawing (1).png"  # never over an existing file
        await receive_until(alice2)
        (own,) = await alice2.save_attachments(sent, tmp_path / "alice2-files")
        assert own.read_bytes() == original.read_bytes()
        for inst in (a, b):  # the data folders, the SQLite files, PostgreSQL's files
            assert grep_files(inst.config.data_dir, canary) == [], inst.domain
            if inst.db_url.startswith("sqlite"):
                assert grep_files(Path(inst.db_url.split("///", 1)[1]).parent, canary) == [], inst.domain
        pg = pair[1]
        if pg is not None:
            async with a.engine.connect() as conn:
                await conn.execute(text("CHECKPOINT"))
            assert grep_files(pg.data_dir, canary) == [], "the file is in PostgreSQL's files"

        # A message naming a file stored elsewhere than on its sender's server is not followed.
        stored = (await a.rows(E2EEAttachment))[0]
        item = next(i for i in bob1.profile.history if i["id"] == sent)
        foreign = dict(item["message"]["body"]["attachments"][0])
        foreign["url"] = foreign["url"].replace(a.base_url, b.base_url)
        odd = new_message(
            sender=a.actor("alice"),
            recipient=b.actor("bob"),
            content="look",
            now=datetime.now(UTC),
            extra={"attachments": [foreign]},
        )
        await alice1._deliver(b.actor("bob"), odd, shown_as="bob")
        (looked,) = await receive_until(bob1)
        assert looked.attachments == () and bob1.attachments(looked.id) == []
        with pytest.raises(DmError, match="no attachments this device can fetch"):
            await bob1.save_attachments(looked.id, tmp_path / "bob-files")

        # Deleted for everyone, the message can still be reported for a week, and bob's
        # moderators open the file (fetched from alice's server, decrypted with the revealed key).
        await alice1.delete_for_everyone(sent)

        async def deleted() -> bool:
            await bob1.receive()
            return [i.get("deleted_at") is not None for i in bob1.profile.history if i["id"] == sent] == [True]

        await eventually(deleted, what="alice's Delete on bob's device")
        report = await bob1.report([sent], comment="an image I did not want", forward=False)
        moderator = await b.user("modb", role="moderator", scopes="read write admin:read admin:write")
        view = await b.api("GET", f"/api/v1/hearthside/e2ee/reports/{report['id']}", moderator)
        (shown_message,) = view["messages"]
        hidden = {"blur": True, "greyscale": True, "muted": True}
        assert shown_message["attachments"] == [
            {
                "index": 0,
                "name": "drawing.png",
                "size": original.stat().st_size,
                "media_type": "image/png",
                "hearthside_media_display": hidden,
            }
        ]
        path = f"/api/v1/hearthside/e2ee/reports/{report['id']}/attachments/0"

        async def opened_file(path: str) -> tuple[int, Any, bytes]:
            async with b.http.get(b.base_url + path, headers=moderator.headers) as opened:  # type: ignore[union-attr]
                return opened.status, opened.headers, await opened.read()

        # Until the moderator reveals it: a greyscale, blurred preview, without the file's metadata.
        status, headers, body = await opened_file(path)
        assert status == 200 and headers["Content-Type"] == "image/png" and canary not in body
        assert headers["Content-Disposition"] == "inline; filename=preview.png"
        assert headers["Hearthside-Media-Display"] == "blur, greyscale"
        assert headers["X-Content-Type-Options"] == "nosniff" and headers["Cache-Control"] == "no-store"
        with Image.open(io.BytesIO(body)) as preview:
            assert (preview.format, preview.mode, preview.size) == ("PNG", "L", (64, 48))
        reveal = "/api/v1/hearthside/admin/media_reveal"
        answer = await b.api(
            "POST", reveal, moderator, json={"report_id": report["id"], "attachment": 0, "reveal": "unblur"}
        )
        assert answer == {
            "report_id": report["id"],
            "attachment": 0,
            "hearthside_media_display": {**hidden, "blur": False},
        }
        status, headers, body = await opened_file(path)
        assert status == 200 and headers["Hearthside-Media-Display"] == "greyscale"
        # Reveals are the moderator's own: another moderator still gets the blurred preview.
        other = await b.user("modb2", role="moderator", scopes="read write admin:read admin:write")
        async with b.http.get(b.base_url + path, headers=other.headers) as opened:  # type: ignore[union-attr]
            assert opened.headers["Hearthside-Media-Display"] == "blur, greyscale"
        await b.api("POST", reveal, moderator, json={"report_id": report["id"], "attachment": 0, "reveal": "colour"})
        status, headers, body = await opened_file(path)
        assert status == 200 and body == original.read_bytes()
        assert headers["Content-Disposition"] == "attachment; filename*=UTF-8''drawing.png"
        assert headers["Content-Type"] == "application/octet-stream" and "Hearthside-Media-Display" not in headers
        view = await b.api("GET", f"/api/v1/hearthside/e2ee/reports/{report['id']}", moderator)
        shown_display = view["messages"][0]["attachments"][0]["hearthside_media_display"]
        assert shown_display == {"blur": False, "greyscale": False, "muted": True}
        exposure = await b.api("GET", "/api/v1/hearthside/admin/exposure", moderator)
        (mine,) = [m for m in exposure["moderators"] if m["username"] == "modb"]
        assert mine["by_kind"] == {"unblur": 1, "colour": 1}
        # Who looked at the file, and when they took the file itself, is on record (not what it is).
        seen = await b.rows(AuditEntry, AuditEntry.target_type == "report_file")
        assert sorted((e.action, e.actor_account_id, e.target) for e in seen) == sorted(
            [
                ("report.e2ee_file_viewed", moderator.account_id, f"{report['id']}/0"),
                ("report.e2ee_file_viewed", other.account_id, f"{report['id']}/0"),
                ("report.e2ee_file_downloaded", moderator.account_id, f"{report['id']}/0"),
            ]
        )
        # Refused: a file the report does not have, both or neither of a post and a file, members.
        for body_, expect in (
            ({"report_id": report["id"], "attachment": 1, "reveal": "unblur"}, "no such file"),
            ({"report_id": report["id"], "reveal": "unblur"}, "exactly one"),
            ({"report_id": report["id"], "attachment": 0, "status_id": "1", "reveal": "unblur"}, "exactly one"),
            ({"report_id": report["id"], "attachment": -1, "reveal": "unblur"}, "at least 0"),
        ):
            refused_ = await b.api("POST", reveal, moderator, json=body_, expect=422)
            assert expect in refused_["error"]
        await b.api("POST", reveal, b.users["bob"], json={"report_id": report["id"], "attachment": 0}, expect=403)
        await b.api("GET", path, b.users["bob"], expect=403)  # members may not
        await b.api("GET", path.replace("/attachments/0", "/attachments/1"), moderator, expect=404)

        # Bytes changed on the sender's server: the digest names it, to bob and to moderators.
        async with a.session() as session:
            row = await session.get(E2EEAttachment, stored.id)
            row.data = row.data[:-1] + bytes([row.data[-1] ^ 1])
            await session.commit()
        with pytest.raises(DmError, match="digest mismatch"):
            await bob1.save_attachments(sent, tmp_path / "bob-files")
        refused = await b.api("GET", path, moderator, expect=422)
        assert "digest mismatch" in refused["error"]

        # A message its server refused leaves no upload behind.
        before = len(await a.rows(E2EEAttachment))
        real_deliver = alice1._deliver

        async def refused(*args: Any, **kwargs: Any) -> Any:
            raise DmError("POST /api/v1/hearthside/e2ee/messages: 422 refused")

        alice1._deliver = refused  # type: ignore[method-assign]
        with pytest.raises(DmError, match="422 refused"):
            await alice1.send(handle(b, "bob"), "hi", files=[original, original])
        alice1._deliver = real_deliver  # type: ignore[method-assign]
        assert len(await a.rows(E2EEAttachment)) == before
        await alice2.close()

        # The commands: send --attach, read shows the file, save --to writes it.
        Store(tmp_path / "alice", PASSPHRASE).save(alice1.profile)
        Store(tmp_path / "bob", PASSPHRASE).save(bob1.profile)
        note = tmp_path / "note.txt"
        note.write_text("for you")
        said = json.loads(
            await dm(tmp_path / "alice", "--json", "send", handle(b, "bob"), "a note", "--attach", str(note))
        )

        async def shown() -> bool:
            return "[file: note.txt, 7 bytes]" in await dm(tmp_path / "bob", "read")

        await eventually(shown, what="the attachment in bob's read")
        out = await dm(tmp_path / "bob", "save", said["id"], "--to", str(tmp_path / "cli-files"))
        assert (tmp_path / "cli-files" / "note.txt").read_text() == "for you" and "Saved" in out

        # A file that cannot be shown blurred (text) reaches a moderator only once revealed.
        filed = json.loads(await dm(tmp_path / "bob", "--json", "report", said["id"], "--comment", "a file"))
        path = f"/api/v1/hearthside/e2ee/reports/{filed['id']}/attachments/0"
        held = await b.api("GET", path, moderator, expect=409)
        assert "reveal it first (unblur" in held["error"] and "attachment=0" in held["error"]
        await b.api("POST", reveal, moderator, json={"report_id": filed["id"], "attachment": 0, "reveal": "unblur"})
        status, _, body = await opened_file(path)
        assert (status, body) == (200, b"for you")
