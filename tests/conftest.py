"""Shared fixtures: real databases (a SQLite file and a PostgreSQL server this test session
starts and stops itself), a live app on 127.0.0.1, and users with tokens.

Every test that takes ``db_url`` (directly or through ``app``/``client``) runs twice, once on
SQLite and once on PostgreSQL. Each test gets a fresh database copied from a migrated
template, so tests never see each other's rows.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import shutil
import socket
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from server import migrate
from server.accounts import create_local_user, password_hasher
from server.app import create_app
from server.config import Config, parse_config
from server.db import make_engine, make_sessionmaker
from server.devdb import DevPostgres, PostgresUnavailable, free_port

# ---------------------------------------------------------------------------- PostgreSQL


@dataclass
class PgServer:
    port: int
    admin_url: str
    data_dir: Path | None = None  # the cluster's files (for tests that grep what reached disk)

    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://hearthside@127.0.0.1:{self.port}/{database}"


_free_port = free_port


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """A throwaway PostgreSQL cluster on 127.0.0.1, started for this session and stopped after."""
    try:
        server = DevPostgres().start()
    except PostgresUnavailable as exc:
        pytest.fail(f"{exc} (the README test command installs them)")
    try:
        yield PgServer(port=server.port, admin_url=server.url(), data_dir=server.root / "data")
    finally:
        server.stop()


async def _pg_admin(pg: PgServer, *statements: str) -> None:
    engine = make_engine(pg.admin_url)
    try:
        async with engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            for statement in statements:
                await conn.execute(text(statement))
    finally:
        await engine.dispose()


_templates: dict[str, Any] = {}


async def _migrated(url: str) -> None:
    engine = make_engine(url)
    try:
        await migrate.upgrade(engine)
    finally:
        await engine.dispose()


async def new_database(kind: str, folder: Path, pg: PgServer | None) -> str:
    """A fresh, migrated database: a SQLite file in ``folder``, or a PostgreSQL database
    cloned from a template (the caller drops it with :func:`drop_database`)."""
    if kind == "sqlite":
        template = _templates.get("sqlite")
        if template is None:
            tmp = tempfile.mkdtemp(prefix="hearthside-sqlite-")
            atexit.register(shutil.rmtree, tmp, True)
            template = Path(tmp) / "template.sqlite3"
            await _migrated(f"sqlite+aiosqlite:///{template}")
            _templates["sqlite"] = template
        os.makedirs(folder, exist_ok=True)
        target = folder / "hearthside.sqlite3"
        shutil.copyfile(template, target)
        return f"sqlite+aiosqlite:///{target}"
    assert pg is not None
    if "postgres" not in _templates:
        await _pg_admin(pg, "CREATE DATABASE hearthside_template")
        await _migrated(pg.url("hearthside_template"))
        _templates["postgres"] = True
    name = "t_" + uuid.uuid4().hex[:16]
    await _pg_admin(pg, f"CREATE DATABASE {name} TEMPLATE hearthside_template")
    return pg.url(name)


async def drop_database(url: str, pg: PgServer | None) -> None:
    if pg is not None and url.startswith("postgresql"):
        name = url.rsplit("/", 1)[1]
        await _pg_admin(pg, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(params=["sqlite", "postgres"])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, migrated database: a SQLite file, or a PostgreSQL database cloned from a template."""
    pg: PgServer | None = request.getfixturevalue("pg_server") if request.param == "postgres" else None
    url = await new_database(request.param, tmp_path, pg)
    try:
        yield url
    finally:
        await drop_database(url, pg)


_INSTANCE_KEYS: dict[str, str] = {}


def install_instance_keys(data_dir: Path) -> None:
    """Give a test instance its keys without generating RSA for every test (one pair per run)."""
    from crypto.keys import generate_ed25519, generate_rsa

    if not _INSTANCE_KEYS:
        _INSTANCE_KEYS["instance-rsa.pem"] = generate_rsa().private_pem
        _INSTANCE_KEYS["instance-ed25519.pem"] = generate_ed25519().private_pem
    folder = data_dir / "keys"
    folder.mkdir(parents=True, exist_ok=True)
    for name, pem in _INSTANCE_KEYS.items():
        if not (folder / name).exists():
            (folder / name).write_text(pem)
            (folder / name).chmod(0o600)


def make_config(tmp_path: Path, db_url: str = "", **sections: dict[str, Any]) -> Config:
    install_instance_keys(tmp_path)
    raw: dict[str, dict[str, Any]] = {
        "instance": {"base_url": "http://127.0.0.1:8080", "registrations": "open"},
        "database": {"url": db_url},
        "storage": {"data_dir": str(tmp_path)},
        # Cheap Argon2 in tests: the hashing library is exercised, its cost is not the subject.
        "security": {"argon2_memory_kib": 1024, "argon2_time_cost": 1},
    }
    for section, values in sections.items():
        raw.setdefault(section, {}).update(values)
    return parse_config(raw, env={})


@pytest.fixture
def config(tmp_path: Path, db_url: str) -> Config:
    return make_config(tmp_path, db_url)


@pytest.fixture
async def engine(config: Config) -> AsyncIterator[AsyncEngine]:
    eng = make_engine(config.database_url)
    yield eng
    await eng.dispose()


@pytest.fixture
async def client(aiohttp_client: Any, config: Config, engine: AsyncEngine) -> Any:
    """A live app on 127.0.0.1 with an aiohttp test client."""
    return await aiohttp_client(create_app(config, engine=engine))


# ---------------------------------------------------------------------------- users


@dataclass
class TestUser:
    user_id: int
    account_id: int
    username: str
    password: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def create_user_with_token(
    engine: AsyncEngine,
    config: Config,
    username: str,
    *,
    role: str = "member",
    scopes: str = "read write follow",
    password: str = "correct horse battery",
) -> TestUser:
    """Create a user and an OAuth token for it directly in the database."""
    from crypto.tokens import digest, new_token
    from server.ids import new_id
    from server.models import OAuthToken
    from server.web import now

    async with make_sessionmaker(engine)() as session:
        user, account = await create_local_user(
            session, password_hasher(config), username=username, password=password, role=role
        )
        token = new_token()
        session.add(OAuthToken(id=new_id(), token_hash=digest(token), user_id=user.id, scopes=scopes, created_at=now()))
        await session.commit()
    return TestUser(user.id, account.id, username, password, token)


@pytest.fixture
def make_user(engine: AsyncEngine, config: Config) -> Any:
    async def make(username: str, **kwargs: Any) -> TestUser:
        return await create_user_with_token(engine, config, username, **kwargs)

    return make


def wait_for_port(port: int, host: str = "127.0.0.1", timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex((host, port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port}")


__all__ = ["TestUser", "asyncio", "create_user_with_token", "make_config", "wait_for_port"]
