"""Storage: migrations match the models on both databases, and the basics round-trip."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from server import migrate
from server.db import make_sessionmaker
from server.errors import Unprocessable
from server.models import Account


async def test_alembic_check__models_and_migrations_agree(engine: Any) -> None:
    await migrate.check(engine)  # raises when autogenerate would produce a new migration


async def test_migrations__downgrade_to_base_and_up_again(engine: Any) -> None:
    await migrate.downgrade(engine, "base")
    await migrate.upgrade(engine)
    await migrate.check(engine)


async def test_timestamps__come_back_timezone_aware_utc(engine: Any, make_user: Any) -> None:
    user = await make_user("alice")
    async with make_sessionmaker(engine)() as session:
        account = await session.get(Account, user.account_id)
        assert account is not None
        assert account.created_at.tzinfo is not None
        assert abs((datetime.now(UTC) - account.created_at).total_seconds()) < 60


async def test_usernames__unique_without_regard_to_case(engine: Any, config: Any) -> None:
    from server.accounts import create_local_user, password_hasher

    async with make_sessionmaker(engine)() as session:
        await create_local_user(session, password_hasher(config), username="Robin", password="long enough pw")
        await session.commit()
        with pytest.raises(Unprocessable, match="username: is already taken"):
            await create_local_user(session, password_hasher(config), username="robin", password="long enough pw")
        await session.rollback()
        count = len((await session.execute(select(Account).where(Account.username_lower == "robin"))).all())
        assert count == 1
