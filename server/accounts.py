"""Local accounts: creating people and groups, with the naming rules both share.

Usernames follow Mastodon: ASCII letters, digits and underscores, at most 30 characters,
unique without regard to case among local accounts (people and groups share one namespace,
because both are addressed as ``@name@domain``).
"""

from __future__ import annotations

import re

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crypto.passwords import MAX_PASSWORD_BYTES, PasswordHasher, PasswordPolicy
from server.config import Config
from server.db import run_blocking
from server.errors import Unprocessable
from server.ids import new_id
from server.models import Account, User
from server.web import now

USERNAME = re.compile(r"^[A-Za-z0-9_]{1,30}$")
MIN_PASSWORD_CHARS = 8
RESERVED = frozenset(
    {
        "instance",
        "actor",
        "relay",
        "inbox",
        "outbox",
        "api",
        "oauth",
        "well_known",
        "nodeinfo",
        "hearthside",
        "static",
        "users",
        "groups",
        "about",
    }
)
HASHER = web.AppKey("password_hasher", PasswordHasher)


def password_hasher(config: Config) -> PasswordHasher:
    return PasswordHasher(
        PasswordPolicy(
            time_cost=config.get("security", "argon2_time_cost"),
            memory_kib=config.get("security", "argon2_memory_kib"),
        )
    )


def check_username(username: str) -> None:
    if not USERNAME.match(username):
        raise Unprocessable("username: must be 1-30 letters, digits or underscores")
    if username.lower() in RESERVED:
        raise Unprocessable("username: is reserved")


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_CHARS:
        raise Unprocessable(f"password: must be at least {MIN_PASSWORD_CHARS} characters")
    if len(password.encode()) > MAX_PASSWORD_BYTES:
        raise Unprocessable(f"password: must be at most {MAX_PASSWORD_BYTES} bytes")


async def username_taken(session: AsyncSession, username: str) -> bool:
    found = await session.execute(
        select(Account.id).where(Account.username_lower == username.lower(), Account.domain == "")
    )
    return found.first() is not None


def new_account(username: str, *, actor_type: str = "Person", display_name: str = "") -> Account:
    moment = now()
    return Account(
        id=new_id(),
        username=username,
        username_lower=username.lower(),
        domain="",
        actor_type=actor_type,
        display_name=display_name,
        note="",
        note_source="",
        fields=[],
        locked=False,
        bot=False,
        discoverable=True,
        verified_professional=False,
        followers_count=0,
        following_count=0,
        statuses_count=0,
        created_at=moment,
        updated_at=moment,
    )


async def create_local_user(
    session: AsyncSession,
    hasher: PasswordHasher,
    *,
    username: str,
    password: str,
    email: str | None = None,
    role: str = "member",
    approved: bool = True,
    reason: str = "",
    invite_id: int | None = None,
    locale: str = "en",
    reserved_ok: bool = False,
    password_hash: str | None = None,
) -> tuple[User, Account]:
    """Add a person account with its login to ``session`` (the caller commits).

    Raises ``Unprocessable`` naming the field for a bad or taken username, a weak password or
    a used email; nothing is added in that case. ``password_hash``, when given, is
    ``hasher.hash(password)`` computed by a caller that has to hash before it writes
    (``server.db.run_blocking``).
    """
    if not (reserved_ok and USERNAME.match(username)):
        check_username(username)
    check_password(password)
    if role not in ("admin", "moderator", "member"):
        raise Unprocessable("role: must be admin, moderator or member")
    if await username_taken(session, username):
        raise Unprocessable("username: is already taken")
    if email is not None:
        email = email.strip().lower() or None
    if email is not None:
        if len(email) > 320 or not re.match(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", email):
            raise Unprocessable("email: is not a valid address")
        if (await session.execute(select(User.id).where(User.email == email))).first() is not None:
            raise Unprocessable("email: is already in use")
    account = new_account(username)
    user = User(
        id=new_id(),
        account_id=account.id,
        email=email,
        password_hash=password_hash or await run_blocking(session, hasher.hash, password),
        role=role,
        approved=approved,
        registration_reason=reason,
        invite_id=invite_id,
        locale=locale,
        must_change_password=False,
        created_at=account.created_at,
    )
    session.add(account)
    await session.flush()
    session.add(user)
    await session.flush()
    return user, account
