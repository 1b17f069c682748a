"""Several Hearthside instances in one test, each on its own loopback address.

research/interop-peers.md: give each instance its own address (127.0.0.2, 127.0.0.3, ...) so
their domains differ as real ones do. Each instance is the real app (``create_app``) served by
aiohttp on a real socket, with its own database and data directory, and its workers running
(inbox, delivery, jobs). Outbound requests go over real HTTP between them;
``federation.allow_private_addresses`` is set because loopback is private.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from conftest import PgServer, TestUser, create_user_with_token, drop_database, make_config, new_database
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from server.app import create_app
from server.config import Config
from server.db import make_engine, make_sessionmaker
from server.devdb import free_port


@dataclass
class Instance:
    name: str
    host: str
    port: int
    config: Config
    engine: AsyncEngine
    db_url: str
    runner: web.AppRunner | None = None
    http: aiohttp.ClientSession | None = None
    users: dict[str, TestUser] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def domain(self) -> str:
        return f"{self.host}:{self.port}"

    def actor(self, username: str, *, group: bool = False) -> str:
        return f"{self.base_url}/{'groups' if group else 'users'}/{username}"

    async def start(self) -> None:
        app = create_app(self.config, engine=self.engine)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, self.host, self.port).start()
        self.http = aiohttp.ClientSession()

    async def stop(self) -> None:
        if self.http is not None:
            await self.http.close()
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    async def user(self, username: str, **kwargs: Any) -> TestUser:
        created = await create_user_with_token(self.engine, self.config, username, **kwargs)
        self.users[username] = created
        return created

    async def api(
        self, method: str, path: str, user: TestUser | None = None, *, expect: int | None = 200, **kwargs: Any
    ) -> Any:
        assert self.http is not None
        headers = dict(kwargs.pop("headers", {}))
        if user is not None:
            headers.update(user.headers)
        async with self.http.request(method, self.base_url + path, headers=headers, **kwargs) as response:
            text = await response.text()
            if expect is not None:
                assert response.status == expect, f"{method} {path}: {response.status} {text[:500]}"
            return json.loads(text) if text and response.content_type.endswith("json") else text

    def session(self) -> Any:
        return make_sessionmaker(self.engine)()

    async def rows(self, model: Any, *where: Any) -> list[Any]:
        async with make_sessionmaker(self.engine)() as session:
            return list((await session.scalars(select(model).where(*where))).all())

    async def one(self, model: Any, *where: Any) -> Any:
        rows = await self.rows(model, *where)
        assert len(rows) == 1, f"expected one {model.__name__}, found {len(rows)}"
        return rows[0]


async def resolve(inst: Instance, user: Any, handle: str) -> dict[str, Any]:
    """Find ``handle`` (``@name@host`` or a URL) through ``inst``'s search with ``resolve=true``."""
    found = await inst.api("GET", "/api/v2/search", user, params={"q": handle, "resolve": "true", "type": "accounts"})
    assert found["accounts"], f"{handle} did not resolve: {found}"
    account: dict[str, Any] = found["accounts"][0]
    return account


async def eventually(check: Callable[[], Awaitable[Any]], *, within: float = 15.0, what: str = "condition") -> Any:
    """Poll ``check`` until it returns something truthy (federation is asynchronous)."""
    deadline = time.monotonic() + within
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


async def make_instance(
    name: str, host: str, kind: str, folder: Path, pg: PgServer | None, **sections: dict[str, Any]
) -> Instance:
    os.makedirs(folder, exist_ok=True)
    url = await new_database(kind, folder, pg)
    port = free_port()
    overrides: dict[str, dict[str, Any]] = {
        "instance": {"base_url": f"http://{host}:{port}", "name": name, "registrations": "open"},
        "server": {"host": host, "port": port, "workers": True},
        "federation": {"allow_private_addresses": True, "request_timeout_seconds": 5},
    }
    for section, values in sections.items():
        overrides.setdefault(section, {}).update(values)
    config = make_config(folder, url, **overrides)
    instance = Instance(name, host, port, config, make_engine(url), url)
    await instance.start()
    return instance


async def close_instance(instance: Instance, pg: PgServer | None) -> None:
    await instance.stop()
    await instance.engine.dispose()
    await drop_database(instance.db_url, pg)


async def instances(
    kind: str, tmp_path: Path, pg: PgServer | None, hosts: tuple[str, ...] = ("127.0.0.2", "127.0.0.3")
) -> AsyncIterator[list[Instance]]:
    started: list[Instance] = []
    try:
        for i, host in enumerate(hosts):
            started.append(await make_instance(f"inst{i}", host, kind, tmp_path / f"i{i}", pg))
        yield started
    finally:
        for instance in started:
            await close_instance(instance, pg)


async def post_as(
    inst: Instance, username: str, inbox_url: str, activity: dict[str, Any], *, prove: bool = False
) -> int:
    """POST ``activity`` to ``inbox_url`` signed (draft-cavage) with the key of ``username``
    on ``inst`` — to send what Hearthside's own outbox never sends (moderation activities,
    reports), exactly as a remote server would."""
    if prove:  # the actor's FEP-8b32 proof, so a group can redistribute it verifiably
        from datetime import UTC, datetime

        from crypto.integrity import sign_object
        from crypto.signing import PrivateKey

        keys = await _keys_of(inst, username)
        activity = sign_object(
            activity, PrivateKey.from_pem(keys.ed25519_private_pem), keys.ed25519_key_id, datetime.now(UTC)
        )
    status, _answer = await signed_post(inst, username, inbox_url, json.dumps(activity).encode())
    return status


async def _keys_of(inst: Instance, username: str) -> Any:
    from server.actor_keys import local_keys
    from server.models import Account

    async with make_sessionmaker(inst.engine)() as session:
        account = await session.scalar(select(Account).where(Account.username == username, Account.domain == ""))
        assert account is not None, username
        keys = await local_keys(session, inst.config, account)
        await session.commit()
    return keys


async def signed_post(
    inst: Instance, username: str, url: str, body: bytes, *, tamper: bytes | None = None
) -> tuple[int, Any]:
    """POST ``body`` to ``url`` signed (draft-cavage) with ``username``'s key on ``inst``;
    ``tamper`` replaces the body after signing (the Digest then no longer matches). Returns the
    status and the JSON answer (None when the answer is not JSON)."""
    from datetime import UTC, datetime

    from crypto.signing import PrivateKey
    from federation.httpsig import sign_request

    keys = await _keys_of(inst, username)
    headers = sign_request(
        "POST",
        url,
        headers={"Content-Type": "application/activity+json"},
        body=body,
        key=PrivateKey.from_pem(keys.rsa_private_pem),
        key_id=keys.rsa_key_id,
        now=datetime.now(UTC),
    )
    assert inst.http is not None
    async with inst.http.post(url, data=tamper if tamper is not None else body, headers=headers) as response:
        try:
            answer = await response.json(content_type=None)
        except ValueError:
            answer = None
        return response.status, answer
