"""The database writer: concurrent posting, slow password work, and SQLite's inline connection.

On SQLite every write goes through one connection run on the event loop (server/db.py); these
tests check what that must never cost: a lost, doubled or miscounted post under concurrent
clients, a login or sign-up holding every poster up while it hashes, or the whole process
freezing while another process holds SQLite's write lock. Each runs on both databases unless
it is about SQLite's connection itself.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine
from test_oauth import password_grant, register_app
from test_statuses import join, make_group

from server import db
from server.accounts import HASHER
from server.config import Config
from server.db import make_sessionmaker, run_blocking
from server.ids import new_id
from server.models import Account, Invite, Status
from server.web import now

WAIT = 20.0  # seconds before a test gives up on something that should not be stuck at all


def on_sqlite(config: Config) -> bool:
    return config.database_url.startswith("sqlite")


class Gate:
    """Holds the app's password hashing in its worker thread until the test opens the gate."""

    def __init__(self, hasher: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        self.entered = threading.Event()
        self.open = threading.Event()
        for name in ("hash", "verify"):
            monkeypatch.setattr(hasher, name, self._held(getattr(hasher, name)))

    def _held(self, work: Any) -> Any:
        def held(*args: Any) -> Any:
            self.entered.set()
            self.open.wait(WAIT)
            return work(*args)

        return held


# ---------------------------------------------------------------------------- concurrent posting


async def test_concurrent_posting__every_post_lands_once_with_exact_counters(
    client: Any, make_user: Any, engine: AsyncEngine
) -> None:
    owner = await make_user("owner")
    group_id = await make_group(engine, owner, "peers")
    members = [await make_user(f"member{i}") for i in range(6)]
    for member in members:
        await join(engine, group_id, member)
    per_member = 8

    async def create(user: Any, text: str, key: str | None = None) -> dict[str, Any]:
        headers = {**user.headers, **({"Idempotency-Key": key} if key else {})}
        response = await client.post(
            "/api/v1/statuses", data={"status": text, "group_id": str(group_id)}, headers=headers
        )
        body = await response.json()
        assert response.status == 200, body
        return dict(body)

    calls = [create(m, f"post {i} by {m.username}") for m in members for i in range(per_member)]
    calls += [create(m, "sent twice", key=f"retry-{m.username}") for m in members for _ in range(2)]
    bodies = await asyncio.gather(*calls)

    plain, retried = bodies[: len(members) * per_member], bodies[len(members) * per_member :]
    assert len({b["id"] for b in plain}) == len(plain)
    for first, second in zip(retried[::2], retried[1::2], strict=True):
        assert first["id"] == second["id"]  # one post per Idempotency-Key, however the requests raced
    async with make_sessionmaker(engine)() as session:
        rows = await session.execute(
            select(Status.account_id, func.count()).where(Status.group_id == group_id).group_by(Status.account_id)
        )
        stored = dict(rows.all())
        counters = dict(
            (await session.execute(select(Account.id, Account.statuses_count).where(Account.id.in_(stored)))).all()
        )
    for member in members:
        assert stored[member.account_id] == per_member + 1
        assert counters[member.account_id] == per_member + 1
        # Each new post's response shows the author's count right after its own increment.
        shown = {b["account"]["statuses_count"] for b in plain if b["account"]["id"] == str(member.account_id)}
        assert len(shown) == per_member and shown <= set(range(1, per_member + 2))


# ---------------------------------------------------------------------------- slow password work


async def _sign_up_with_invite(client: Any, engine: AsyncEngine, gated_user: Any) -> Any:
    async with make_sessionmaker(engine)() as session:
        session.add(Invite(id=new_id(), code="welcome-code", uses=0, max_uses=5, created_at=now()))
        await session.commit()
    form = {
        "username": "newcomer",
        "password": "a long enough password",
        "agreement": "true",
        "invite_code": "welcome-code",
    }
    return await client.post("/api/v1/accounts", data=form)


async def _log_in(client: Any, engine: AsyncEngine, gated_user: Any) -> Any:
    app = await register_app(client)
    return await password_grant(client, app, gated_user.username, gated_user.password)


async def _change_password(client: Any, engine: AsyncEngine, gated_user: Any) -> Any:
    form = {"current_password": gated_user.password, "new_password": "another long password"}
    return await client.post("/api/v1/hearthside/account/change_password", data=form, headers=gated_user.headers)


@pytest.mark.parametrize("slow_request", [_log_in, _sign_up_with_invite, _change_password])
async def test_password_hashing__does_not_hold_up_posting(
    client: Any, make_user: Any, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch, slow_request: Any
) -> None:
    poster = await make_user("poster")
    gated_user = await make_user("gated")
    gate = Gate(client.app[HASHER], monkeypatch)
    slow = asyncio.create_task(slow_request(client, engine, gated_user))
    try:
        assert await asyncio.to_thread(gate.entered.wait, WAIT)
        # The slow request is inside its hash now; posting must not wait for it to finish.
        response = await asyncio.wait_for(
            client.post("/api/v1/statuses", json={"status": "still here"}, headers=poster.headers), WAIT
        )
        assert response.status == 200
        assert not slow.done()
    finally:
        gate.open.set()
    answer = await slow
    assert answer.status == 200, await answer.text()


async def test_run_blocking__hands_the_connection_back_only_before_a_write(engine: AsyncEngine, make_user: Any) -> None:
    alice = await make_user("alice")
    sessions = make_sessionmaker(engine)
    started, release = threading.Event(), threading.Event()

    def slow() -> str:
        started.set()
        release.wait(WAIT)
        return "hashed"

    async with sessions() as reader:
        await reader.execute(select(Account.id).where(Account.id == alice.account_id))
        work = asyncio.create_task(run_blocking(reader, slow))
        try:
            assert await asyncio.to_thread(started.wait, WAIT)
            async with sessions() as writer:  # on SQLite: the one connection, free again
                await writer.execute(update(Account).where(Account.id == alice.account_id).values(note="seen"))
                await asyncio.wait_for(writer.commit(), WAIT)
        finally:
            release.set()
        assert await work == "hashed"

    async with sessions() as session:
        await session.execute(update(Account).where(Account.id == alice.account_id).values(note="uncommitted"))
        await run_blocking(session, lambda: None)
        assert session.in_transaction()  # a transaction that wrote is never split
        await session.rollback()
        note = (await session.execute(select(Account.note).where(Account.id == alice.account_id))).scalar_one()
        assert note == "seen"


# ---------------------------------------------------------------------------- SQLite's inline connection


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # SQLite's own write lock
async def test_sqlite_writer__waits_for_another_process_without_freezing(
    client: Any, make_user: Any, config: Config
) -> None:
    assert on_sqlite(config)
    alice = await make_user("alice")
    other = sqlite3.connect(str(make_url(config.database_url).database), isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holding the write lock, as the CLI may
    try:
        posting = asyncio.create_task(
            client.post("/api/v1/statuses", json={"status": "patient"}, headers=alice.headers)
        )
        await asyncio.sleep(0.2)
        assert (await client.get("/healthz")).status == 200  # the event loop keeps serving
        assert not posting.done()
    finally:
        other.execute("COMMIT")
        other.close()
    response = await posting
    assert response.status == 200
    assert (await response.json())["account"]["statuses_count"] == 1


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # SQLite's own write lock
async def test_sqlite_writer__gives_up_on_a_lock_held_too_long(
    engine: AsyncEngine, config: Config, make_user: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert on_sqlite(config)
    alice = await make_user("alice")
    monkeypatch.setattr(db, "BUSY_SECONDS", 0.2)
    other = sqlite3.connect(str(make_url(config.database_url).database), isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        async with make_sessionmaker(engine)() as session:
            with pytest.raises(OperationalError, match="database is locked"):
                await session.execute(update(Account).where(Account.id == alice.account_id).values(note="late"))
            await session.rollback()
    finally:
        other.execute("COMMIT")
        other.close()
    async with make_sessionmaker(engine)() as session:  # the connection is fine afterwards
        await session.execute(update(Account).where(Account.id == alice.account_id).values(note="on time"))
        await session.commit()
        note = (await session.execute(select(Account.note).where(Account.id == alice.account_id))).scalar_one()
    assert note == "on time"


async def test_writer__streams_results_like_any_driver(engine: AsyncEngine, make_user: Any) -> None:
    for name in ("ann", "ben", "cat"):
        await make_user(name)
    async with engine.connect() as conn:
        result = await conn.stream(select(Account.username).order_by(Account.username))
        names = [row.username async for row in result]
    assert names == ["ann", "ben", "cat"]
