"""Bearer-token authentication and OAuth scopes for the client API.

Design note
-----------
Handlers call ``authenticate(request, scope)``; it returns a ``Viewer`` or raises:

* no/unknown/expired/revoked token on an endpoint that needs one: 401,
* a token whose user is suspended, disabled (a moderator's action), deleted or not yet approved: 403,
* a valid token without the scope the endpoint needs: 403 (Mastodon's answer).

Scopes follow Mastodon: ``read``/``write`` imply every ``read:*``/``write:*``; the legacy
``follow`` scope implies ``read:follows write:follows read:blocks write:blocks read:mutes
write:mutes``; ``admin:read`` implies ``admin:read:*``. Hearthside's group extension uses
``read:groups``/``write:groups``, implied by ``read``/``write``. End-to-end encrypted messages
need ``crypto`` (Mastodon's withdrawn E2EE scope), which nothing implies: a token must ask for it.

Token lookups are by SHA-256 digest. A small per-process cache keeps hot tokens for a few
seconds; revoking a token or suspending an account in this process drops the entries at once
(other processes see the change within ``CACHE_SECONDS``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from aiohttp import web
from sqlalchemy import select

from crypto.tokens import digest
from server.errors import Forbidden, Unauthorized
from server.models import Account, OAuthToken, User
from server.web import READ_SESSIONS, now

SCOPES_SUPPORTED = [
    "read", "write", "follow", "push", "profile",
    "read:accounts", "read:blocks", "read:bookmarks", "read:favourites", "read:filters",
    "read:follows", "read:lists", "read:mutes", "read:notifications", "read:search",
    "read:statuses", "read:groups",
    "write:accounts", "write:blocks", "write:bookmarks", "write:conversations",
    "write:favourites", "write:filters", "write:follows", "write:lists", "write:media",
    "write:mutes", "write:notifications", "write:reports", "write:statuses", "write:groups",
    "admin:read", "admin:write",
    "admin:read:accounts", "admin:read:reports", "admin:read:domain_allows",
    "admin:read:domain_blocks", "admin:write:accounts", "admin:write:reports",
    "admin:write:domain_allows", "admin:write:domain_blocks",
    "crypto",
]  # fmt: skip
_FOLLOW_IMPLIES = frozenset(
    {"read:follows", "write:follows", "read:blocks", "write:blocks", "read:mutes", "write:mutes"}
)
CACHE_SECONDS = 5.0


def scope_allows(granted: frozenset[str], required: str) -> bool:
    """True when a token with ``granted`` scopes may do what ``required`` names."""
    if required in granted:
        return True
    parts = required.split(":")
    # read:statuses <- read ; admin:read:accounts <- admin:read
    for i in range(1, len(parts)):
        if ":".join(parts[:i]) in granted and ":".join(parts[:i]) not in ("admin",):
            return True
    return "follow" in granted and required in _FOLLOW_IMPLIES


def parse_scopes(text: str) -> frozenset[str]:
    return frozenset(s for s in text.replace("+", " ").split() if s)


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who is calling: the token's user and account (absent for app-only tokens)."""

    token_id: int
    app_id: int | None
    user_id: int | None
    account_id: int | None
    role: str | None
    scopes: frozenset[str]

    def require_account(self) -> int:
        if self.account_id is None:
            raise Forbidden("This method requires an authenticated user")
        return self.account_id

    @property
    def is_staff(self) -> bool:
        return self.role in ("admin", "moderator")


# token digest -> (expiry on the monotonic clock, viewer or None, problem or None, user id or None)
_cache: dict[str, tuple[float, Viewer | None, str | None, int | None]] = {}
VIEWER: web.RequestKey[Viewer | None] = web.RequestKey("viewer")


def forget_tokens(*, user_id: int | None = None, token_digest: str | None = None) -> None:
    """Drop cached token lookups after a revocation, suspension or role change."""
    if token_digest is not None:
        _cache.pop(token_digest, None)
    if user_id is not None:
        for key, entry in list(_cache.items()):
            if entry[3] == user_id:  # successes and refusals (pending, suspended) alike
                _cache.pop(key, None)
    if user_id is None and token_digest is None:
        _cache.clear()


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer " and header[7:].strip():
        return header[7:].strip()
    token = request.query.get("access_token")  # Mastodon accepts it for streaming clients
    return token or None


async def _lookup(request: web.Request, token: str) -> tuple[Viewer | None, str | None]:
    """Return (viewer, None) or (None, problem) where problem is 'invalid' or 'disabled'."""
    key = digest(token)
    cached = _cache.get(key)
    clock = time.monotonic()
    if cached is not None and cached[0] > clock:
        return cached[1], cached[2]
    result: tuple[Viewer | None, str | None]
    owner: int | None = None
    async with request.app[READ_SESSIONS]() as session:
        row = (await session.execute(select(OAuthToken).where(OAuthToken.token_hash == key))).scalar_one_or_none()
        moment = now()
        if row is None or row.revoked_at is not None or (row.expires_at is not None and row.expires_at <= moment):
            result = (None, "invalid")
        elif (owner := row.user_id) is None:
            result = (Viewer(row.id, row.app_id, None, None, None, frozenset(row.scopes.split())), None)
        else:
            found = (
                await session.execute(
                    select(User, Account).join(Account, Account.id == User.account_id).where(User.id == row.user_id)
                )
            ).one_or_none()
            if found is None:
                result = (None, "invalid")
            else:
                user, account = found
                if account.deleted_at is not None:
                    result = (None, "invalid")
                elif account.suspended_at is not None or user.disabled:
                    result = (None, "disabled")
                elif not user.approved:
                    result = (None, "pending")
                else:
                    scopes = frozenset(row.scopes.split())
                    result = (Viewer(row.id, row.app_id, user.id, account.id, user.role, scopes), None)
    if len(_cache) > 50_000:
        _cache.clear()
    _cache[key] = (clock + CACHE_SECONDS, result[0], result[1], owner)
    return result


async def authenticate(request: web.Request, scope: str | None = None, *, required: bool = True) -> Viewer | None:
    """Resolve the request's bearer token; enforce ``scope``. See the module note."""
    if VIEWER in request:
        viewer: Viewer | None = request[VIEWER]
    else:
        token = bearer_token(request)
        viewer = None
        if token is not None:
            viewer, problem = await _lookup(request, token)
            if problem == "invalid":
                raise Unauthorized("The access token is invalid")
            if problem == "disabled":
                raise Forbidden("Your login is currently disabled")
            if problem == "pending":
                raise Forbidden("Your login is currently pending approval")
        request[VIEWER] = viewer
    if viewer is None:
        if required:
            raise Unauthorized("The access token is invalid")
        return None
    if scope is not None and not scope_allows(viewer.scopes, scope):
        raise Forbidden("This action is outside the authorized scopes")
    return viewer


async def require_user(request: web.Request, scope: str) -> Viewer:
    """Like ``authenticate`` but the token must belong to a user (not an app-only token)."""
    viewer = await authenticate(request, scope)
    assert viewer is not None
    if viewer.account_id is None:
        raise Unauthorized("This method requires an authenticated user")
    return viewer


async def require_staff(request: web.Request, scope: str) -> Viewer:
    """Like ``require_user``, for instance staff only (admins and moderators): 403 otherwise."""
    viewer = await require_user(request, scope)
    if not viewer.is_staff:
        raise Forbidden("This action is not allowed")
    return viewer
