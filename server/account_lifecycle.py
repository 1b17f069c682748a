"""The life of a local account: sign-up, approval, password changes, suspension, export and
self-deletion.

Design note
-----------
Sign-up follows Mastodon's ``POST /api/v1/accounts`` and the instance's ``registrations`` mode:

* ``closed``: refused (403) before anything is read.
* ``invite``: a valid invite code (known, not revoked, not expired, not used up) is required;
  a missing or bad one is refused with 403, as Mastodon refuses sign-ups it does not allow.
* ``approval``: the account exists at once but cannot use its token (the auth layer answers
  403) until staff approve it; staff get an ``admin.sign_up`` notification. A valid invite
  skips the queue, as in Mastodon.
* ``open``: active at once.

The new token carries the scopes of the app whose client_credentials token made the request
(Mastodon's rule, and what Mastodon.py checks), or ``read write follow`` when no token was
sent. An invite code given in any mode must be valid (fail closed). Field problems are collected and
answered together as Mastodon's 422 ``{"error": "Validation failed: ...", "details": {...}}``;
nothing is written unless every check passes, and an invite's use is counted by a guarded
``UPDATE`` so two sign-ups racing for its last use cannot both win.

Pseudonymity: email is optional and never required; the admin API shows it to admins only.

Self-deletion keeps the account row (``deleted_at``) so the username stays reserved and
nobody can take over a name people knew, but scrubs everything the person wrote or chose:
profile, posts (soft-deleted with their text blanked, edit history removed), follows both
ways, blocks, mutes, favourites, group roles, notifications, tokens, email and password hash.
Counters of the other accounts and posts involved move in the same transaction.

Password checks made with a valid token (delete, change password) are limited per user
(``security.login_attempts_per_minute``, counted in the database so the limit holds across
every web process), so a stolen token cannot be used to guess the password behind it.
"""

from __future__ import annotations

import re
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crypto.errors import VerificationError
from crypto.passwords import MAX_PASSWORD_BYTES, PasswordHasher
from crypto.tokens import digest, new_code, new_token
from federation.content import html_to_text
from server import relationships
from server.accounts import MIN_PASSWORD_CHARS, RESERVED, USERNAME, create_local_user
from server.config import Config
from server.db import run_blocking
from server.entities import acct, iso, render_account
from server.errors import Forbidden, ValidationFailed
from server.ids import new_id
from server.models import (
    Account,
    Block,
    Favourite,
    Follow,
    GroupInvite,
    GroupRole,
    Invite,
    Mention,
    Mute,
    Notification,
    OAuthCode,
    OAuthToken,
    Status,
    StatusEdit,
    StatusTag,
    User,
)
from server.notify import notify
from server.ratelimit import RateLimit

REGISTRATION_SCOPES = "read write follow"
MAX_REASON_CHARS = 1000
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_LOCALE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")

_HUMAN = {"username": "Username", "password": "Password", "email": "Email", "agreement": "Agreement"}


class Problems:
    """Field problems collected before answering Mastodon's 422 with ``details``."""

    def __init__(self) -> None:
        self.details: dict[str, list[dict[str, str]]] = {}

    def add(self, field: str, code: str, description: str) -> None:
        self.details.setdefault(field, []).append({"error": code, "description": description})

    def __contains__(self, field: str) -> bool:
        return field in self.details

    def raise_if_any(self) -> None:
        if not self.details:
            return
        parts = [
            f"{_HUMAN.get(field, field.replace('_', ' ').capitalize())} {problem['description']}"
            for field, problems in self.details.items()
            for problem in problems
        ]
        raise ValidationFailed("Validation failed: " + ", ".join(parts), self.details)


# ---------------------------------------------------------------------------- passwords


# Failed password checks per user in a sliding minute, counted in the database so the limit
# holds across every web process (server.ratelimit).
PASSWORDS = RateLimit("password", "Too many wrong passwords; try again in a minute", retry_after=60)


async def verify_password(
    session: AsyncSession,
    config: Config,
    hasher: PasswordHasher,
    user: User,
    password: str | None,
    *,
    field: str = "password",
) -> None:
    """Raise 422 (naming ``field``) unless ``password`` is the user's; 429 after many misses.

    Call it before the session writes: the attempt is counted (and committed) before the hash
    is checked off the database connection, and forgiven when the password is right, so
    parallel guesses cannot pass while the first ones are being hashed.
    """
    limit = int(config.get("security", "login_attempts_per_minute"))
    at = time.time()
    problems = Problems()
    if not password:  # not a guess: refused when the minute is used up, but not counted
        await PASSWORDS.check(session, user.id, limit=limit, at=at)
        problems.add(field, "ERR_BLANK", "can't be blank")
        problems.raise_if_any()
    assert password is not None
    attempt = await PASSWORDS.hit(session, user.id, limit=limit, at=at)
    try:
        await run_blocking(session, hasher.verify, user.password_hash, password)
    except VerificationError:
        problems.add(field, "ERR_INVALID", "is invalid")
        problems.raise_if_any()
    await PASSWORDS.forgive(session, attempt)


def _check_new_password(problems: Problems, field: str, password: str | None) -> None:
    if not password:
        problems.add(field, "ERR_BLANK", "can't be blank")
    elif len(password) < MIN_PASSWORD_CHARS:
        problems.add(field, "ERR_TOO_SHORT", f"is too short (minimum is {MIN_PASSWORD_CHARS} characters)")
    elif len(password.encode()) > MAX_PASSWORD_BYTES:
        problems.add(field, "ERR_TOO_LONG", f"is too long (maximum is {MAX_PASSWORD_BYTES} bytes)")


async def revoke_tokens(session: AsyncSession, user_id: int, *, at: datetime, keep_token_id: int | None = None) -> None:
    """Revoke every live token of the user (but ``keep_token_id``) and drop unused codes.

    The caller must call ``server.auth.forget_tokens(user_id=...)`` after committing.
    """
    query = update(OAuthToken).where(OAuthToken.user_id == user_id, OAuthToken.revoked_at.is_(None))
    if keep_token_id is not None:
        query = query.where(OAuthToken.id != keep_token_id)
    await session.execute(query.values(revoked_at=at))
    await session.execute(delete(OAuthCode).where(OAuthCode.user_id == user_id))


async def change_password(
    session: AsyncSession,
    hasher: PasswordHasher,
    user: User,
    new_password: str | None,
    *,
    keep_token_id: int,
    at: datetime,
) -> None:
    """Store a new password, clear ``must_change_password``, revoke the user's other tokens."""
    problems = Problems()
    _check_new_password(problems, "new_password", new_password)
    problems.raise_if_any()
    assert new_password is not None
    user.password_hash = await run_blocking(session, hasher.hash, new_password)
    user.must_change_password = False
    await revoke_tokens(session, user.id, at=at, keep_token_id=keep_token_id)


# ---------------------------------------------------------------------------- sign-up


@dataclass(frozen=True, slots=True)
class SignUp:
    """What ``POST /api/v1/accounts`` sent, before validation."""

    username: str | None
    password: str | None
    email: str | None
    agreement: bool | None
    locale: str | None
    reason: str | None
    invite_code: str | None


@dataclass(frozen=True, slots=True)
class Registered:
    user: User
    account: Account
    token: str
    scopes: str
    created_at: datetime


def _invite_usable(invite: Invite | None, at: datetime) -> bool:
    return (
        invite is not None
        and invite.revoked_at is None
        and (invite.expires_at is None or invite.expires_at > at)
        and (invite.max_uses is None or invite.uses < invite.max_uses)
    )


async def _usable_invite(session: AsyncSession, code: str | None, at: datetime) -> Invite | None:
    if not code:
        return None
    invite = (await session.execute(select(Invite).where(Invite.code == code))).scalar_one_or_none()
    return invite if _invite_usable(invite, at) else None


async def _validate_sign_up(session: AsyncSession, form: SignUp) -> Problems:
    problems = Problems()
    username = form.username or ""
    if not username:
        problems.add("username", "ERR_BLANK", "can't be blank")
    elif len(username) > 30:
        problems.add("username", "ERR_TOO_LONG", "is too long (maximum is 30 characters)")
    elif not USERNAME.match(username):
        problems.add("username", "ERR_INVALID", "must contain only letters, numbers and underscores")
    elif username.lower() in RESERVED:
        problems.add("username", "ERR_RESERVED", "is reserved")
    else:
        taken = await session.execute(
            select(Account.id).where(Account.username_lower == username.lower(), Account.domain == "")
        )
        if taken.first() is not None:
            problems.add("username", "ERR_TAKEN", "has already been taken")
    _check_new_password(problems, "password", form.password)
    if form.agreement is not True:
        problems.add("agreement", "ERR_ACCEPTED", "must be accepted")
    email = (form.email or "").strip().lower()
    if email:
        if len(email) > 320 or not _EMAIL.match(email):
            problems.add("email", "ERR_INVALID", "is invalid")
        elif (await session.execute(select(User.id).where(User.email == email))).first() is not None:
            problems.add("email", "ERR_TAKEN", "has already been taken")
    if form.locale and not _LOCALE.match(form.locale):
        problems.add("locale", "ERR_INCLUSION", "is not included in the list")
    if form.reason and len(form.reason) > MAX_REASON_CHARS:
        problems.add("reason", "ERR_TOO_LONG", f"is too long (maximum is {MAX_REASON_CHARS} characters)")
    return problems


async def register(
    session: AsyncSession,
    hasher: PasswordHasher,
    config: Config,
    form: SignUp,
    *,
    app_id: int | None,
    scopes: str = REGISTRATION_SCOPES,
    at: datetime,
) -> Registered:
    """Create the account, its login and a token, per the module note; the caller commits."""
    mode = config.get("instance", "registrations")
    if mode == "closed":
        raise Forbidden("Registrations are closed")
    code = (form.invite_code or "").strip()
    invite = await _usable_invite(session, code, at)
    if mode == "invite" and not code:
        raise Forbidden("Registrations on this instance need an invite code")
    if code and invite is None:
        raise Forbidden("This invite code is not valid (unknown, revoked, expired or used up)")
    problems = await _validate_sign_up(session, form)
    problems.raise_if_any()
    assert form.username is not None and form.password is not None
    password_hash = await run_blocking(session, hasher.hash, form.password)  # before any write
    if invite is not None:
        claimed = await session.execute(
            update(Invite)
            .where(Invite.id == invite.id, or_(Invite.max_uses.is_(None), Invite.uses < Invite.max_uses))
            .values(uses=Invite.uses + 1)
        )
        if getattr(claimed, "rowcount", 0) != 1:
            raise Forbidden("This invite code is not valid (unknown, revoked, expired or used up)")
    approved = mode != "approval" or invite is not None
    user, account = await create_local_user(
        session,
        hasher,
        username=form.username,
        password=form.password,
        email=(form.email or "").strip() or None,
        approved=approved,
        reason=(form.reason or "").strip(),
        invite_id=invite.id if invite is not None else None,
        locale=form.locale or "en",
        password_hash=password_hash,
    )
    token = new_token()
    days = int(config.get("security", "oauth_token_days"))
    session.add(
        OAuthToken(
            id=new_id(),
            token_hash=digest(token),
            app_id=app_id,
            user_id=user.id,
            scopes=scopes,
            created_at=at,
            expires_at=at + timedelta(days=days),
        )
    )
    staff = await session.execute(
        select(User.account_id)
        .join(Account, Account.id == User.account_id)
        .where(User.role.in_(("admin", "moderator")), Account.deleted_at.is_(None), Account.suspended_at.is_(None))
    )
    for (staff_account_id,) in staff.all():
        await notify(session, recipient_id=staff_account_id, from_account_id=account.id, type="admin.sign_up")
    await session.flush()
    return Registered(user, account, token, scopes, at)


# ---------------------------------------------------------------------------- staff actions


async def create_invite(
    session: AsyncSession, *, by_account_id: int, max_uses: int | None, expires_in: int | None, at: datetime
) -> Invite:
    invite = Invite(
        id=new_id(),
        code=new_code(),
        created_by_account_id=by_account_id,
        max_uses=max_uses,
        uses=0,
        expires_at=at + timedelta(seconds=expires_in) if expires_in else None,
        created_at=at,
    )
    session.add(invite)
    await session.flush()
    return invite


def render_invite(config: Config, invite: Invite) -> dict[str, Any]:
    return {
        "id": str(invite.id),
        "code": invite.code,
        "url": f"{config.base_url}/invite/{invite.code}",
        "max_uses": invite.max_uses,
        "uses": invite.uses,
        "expires_at": iso(invite.expires_at),
        "revoked_at": iso(invite.revoked_at),
        "created_at": iso(invite.created_at),
    }


async def reject_sign_up(session: AsyncSession, user: User, account: Account) -> None:
    """Delete a pending account outright (its username is free again, as in Mastodon)."""
    await session.execute(delete(OAuthToken).where(OAuthToken.user_id == user.id))
    await session.execute(delete(OAuthCode).where(OAuthCode.user_id == user.id))
    await session.execute(
        delete(Notification).where(
            or_(Notification.account_id == account.id, Notification.from_account_id == account.id)
        )
    )
    await session.execute(
        delete(Follow).where(or_(Follow.account_id == account.id, Follow.target_account_id == account.id))
    )
    await session.execute(delete(User).where(User.account_id == account.id))
    await session.execute(delete(Account).where(Account.id == account.id))


# ---------------------------------------------------------------------------- self-deletion


async def _bump_statuses(session: AsyncSession, column: Any, counts: dict[int, int]) -> None:
    for status_id, n in counts.items():
        await session.execute(update(Status).where(Status.id == status_id).values({column: column - n}))


async def _soft_delete_statuses(session: AsyncSession, status_ids: list[int], *, at: datetime) -> None:
    """Blank and mark deleted; fix reply and boost counters of the posts they pointed to."""
    if not status_ids:
        return
    rows = (
        await session.execute(select(Status.in_reply_to_id, Status.reblog_of_id).where(Status.id.in_(status_ids)))
    ).all()
    replies: dict[int, int] = defaultdict(int)
    boosts: dict[int, int] = defaultdict(int)
    for parent, original in rows:
        if parent is not None:
            replies[parent] += 1
        if original is not None:
            boosts[original] += 1
    await _bump_statuses(session, Status.replies_count, replies)
    await _bump_statuses(session, Status.reblogs_count, boosts)
    await session.execute(delete(StatusEdit).where(StatusEdit.status_id.in_(status_ids)))
    await session.execute(delete(Mention).where(Mention.status_id.in_(status_ids)))
    await session.execute(delete(StatusTag).where(StatusTag.status_id.in_(status_ids)))
    await session.execute(delete(Favourite).where(Favourite.status_id.in_(status_ids)))
    await session.execute(delete(Notification).where(Notification.status_id.in_(status_ids)))
    await session.execute(
        update(Status)
        .where(Status.id.in_(status_ids))
        .values(text="", content="", spoiler_text="", deleted_at=at, favourites_count=0)
    )


async def delete_account(session: AsyncSession, user: User, account: Account, *, at: datetime) -> None:
    """Scrub a local account as the module note describes; the caller commits, then calls
    ``forget_tokens(user_id=...)``. The only active admin cannot delete themselves (403)."""
    if user.role == "admin":
        others = await session.execute(
            select(func.count())
            .select_from(User)
            .join(Account, Account.id == User.account_id)
            .where(
                User.role == "admin",
                User.id != user.id,
                Account.deleted_at.is_(None),
                Account.suspended_at.is_(None),
            )
        )
        if others.scalar_one() == 0:
            raise Forbidden("You are the only admin: make someone else an admin before deleting your account")
    me = account.id
    # Posts: the account's own, and others' boosts of them.
    own = list((await session.execute(select(Status.id).where(Status.account_id == me))).scalars())
    if own:
        boosts_of_own = (
            await session.execute(
                select(Status.id, Status.account_id).where(Status.reblog_of_id.in_(own), Status.deleted_at.is_(None))
            )
        ).all()
        boosted_by: dict[int, int] = defaultdict(int)
        boost_ids = []
        for boost_id, booster in boosts_of_own:
            if booster != me:
                boost_ids.append(boost_id)
                boosted_by[booster] += 1
        await _soft_delete_statuses(session, boost_ids, at=at)
        for booster, n in boosted_by.items():
            await session.execute(
                update(Account).where(Account.id == booster).values(statuses_count=Account.statuses_count - n)
            )
        live = list(
            (await session.execute(select(Status.id).where(Status.id.in_(own), Status.deleted_at.is_(None)))).scalars()
        )
        await _soft_delete_statuses(session, live, at=at)
        # Already-deleted posts may still hold text if another path only flagged them.
        await session.execute(update(Status).where(Status.id.in_(own)).values(text="", content="", spoiler_text=""))
    # Favourites given.
    faved = list((await session.execute(select(Favourite.status_id).where(Favourite.account_id == me))).scalars())
    await _bump_statuses(session, Status.favourites_count, dict.fromkeys(faved, 1))
    await session.execute(delete(Favourite).where(Favourite.account_id == me))
    # Follows both ways (group memberships included), with the other side's counters.
    for follower, followed in (
        await session.execute(
            select(Follow.account_id, Follow.target_account_id).where(
                or_(Follow.account_id == me, Follow.target_account_id == me)
            )
        )
    ).all():
        await relationships.sever_follow(session, follower, followed)
    await session.execute(delete(Block).where(or_(Block.account_id == me, Block.target_account_id == me)))
    await session.execute(delete(Mute).where(or_(Mute.account_id == me, Mute.target_account_id == me)))
    await session.execute(delete(GroupRole).where(GroupRole.account_id == me))
    await session.execute(delete(GroupInvite).where(GroupInvite.account_id == me))
    await session.execute(
        delete(Notification).where(or_(Notification.account_id == me, Notification.from_account_id == me))
    )
    await session.execute(
        update(Invite)
        .where(and_(Invite.created_by_account_id == me, Invite.revoked_at.is_(None)))
        .values(revoked_at=at)
    )
    from server.e2ee import forget_member

    await forget_member(session, me, at)
    await revoke_tokens(session, user.id, at=at)
    await session.execute(
        update(User).where(User.id == user.id).values(email=None, password_hash="!deleted", registration_reason="")  # noqa: S106 (no hash verifies)
    )
    await session.execute(
        update(Account)
        .where(Account.id == me)
        .values(
            display_name="",
            note="",
            note_source="",
            fields=[],
            locked=False,
            bot=False,
            discoverable=False,
            verified_professional=False,
            followers_count=0,
            following_count=0,
            statuses_count=0,
            last_status_at=None,
            updated_at=at,
            deleted_at=at,
        )
    )


# ---------------------------------------------------------------------------- export


async def _handles(session: AsyncSession, ids: set[int]) -> dict[int, Account]:
    if not ids:
        return {}
    return {a.id: a for a in (await session.execute(select(Account).where(Account.id.in_(ids)))).scalars()}


async def export_account(
    session: AsyncSession, config: Config, user: User, account: Account, *, at: datetime
) -> dict[str, Any]:
    """One's own data as a JSON-ready archive. Other people appear by handle only."""
    me = account.id
    statuses = list(
        (
            await session.execute(
                select(Status).where(Status.account_id == me, Status.deleted_at.is_(None)).order_by(Status.id)
            )
        ).scalars()
    )
    status_ids = [s.id for s in statuses]
    edits: dict[int, list[dict[str, Any]]] = defaultdict(list)
    if status_ids:
        for edit in (
            await session.execute(
                select(StatusEdit).where(StatusEdit.status_id.in_(status_ids)).order_by(StatusEdit.id)
            )
        ).scalars():
            edits[edit.status_id].append(
                {
                    "created_at": iso(edit.created_at),
                    "text": edit.text,
                    "content": edit.content,
                    "spoiler_text": edit.spoiler_text,
                    "sensitive": edit.sensitive,
                }
            )
    originals: dict[int, Status] = {}
    reblog_ids = {s.reblog_of_id for s in statuses if s.reblog_of_id is not None}
    if reblog_ids:
        originals = {
            s.id: s for s in (await session.execute(select(Status).where(Status.id.in_(reblog_ids)))).scalars()
        }
    follows_out = list((await session.execute(select(Follow).where(Follow.account_id == me))).scalars())
    follows_in = list((await session.execute(select(Follow).where(Follow.target_account_id == me))).scalars())
    blocks = list((await session.execute(select(Block).where(Block.account_id == me))).scalars())
    mutes = list((await session.execute(select(Mute).where(Mute.account_id == me))).scalars())
    favourite_rows = (
        await session.execute(
            select(Favourite, Status)
            .join(Status, Status.id == Favourite.status_id)
            .where(Favourite.account_id == me)
            .order_by(Favourite.id)
        )
    ).all()
    favourites = list(favourite_rows)
    roles = {
        group_id: role
        for group_id, role in (
            await session.execute(select(GroupRole.group_id, GroupRole.role).where(GroupRole.account_id == me))
        ).all()
    }
    people = await _handles(
        session,
        {f.target_account_id for f in follows_out}
        | {f.account_id for f in follows_in}
        | {b.target_account_id for b in blocks}
        | {m.target_account_id for m in mutes}
        | {s.account_id for _f, s in favourites}
        | {s.account_id for s in originals.values()}
        | {s.group_id for s in statuses if s.group_id is not None}
        | {s.in_reply_to_account_id for s in statuses if s.in_reply_to_account_id is not None}
        | set(roles),
    )

    def handle(account_id: int | None) -> str | None:
        found = people.get(account_id) if account_id is not None else None
        return _full_acct(config, found) if found is not None else None

    notifications = await session.execute(
        select(func.count()).select_from(Notification).where(Notification.account_id == me)
    )
    profile = render_account(config, account, source=True, role=user.role)
    profile["source"]["fields"] = plain_fields(account)
    return {
        "format": "hearthside-account-export",
        "version": 1,
        "exported_at": iso(at),
        "instance": config.base_url,
        "profile": profile,
        "login": {
            "email": user.email,
            "locale": user.locale,
            "role": user.role,
            "created_at": iso(user.created_at),
            "last_login_at": iso(user.last_login_at),
        },
        "statuses": [
            {
                "id": str(s.id),
                "created_at": iso(s.created_at),
                "edited_at": iso(s.edited_at),
                "visibility": s.visibility,
                "language": s.language,
                "text": s.text,
                "content": s.content,
                "spoiler_text": s.spoiler_text,
                "sensitive": s.sensitive,
                "url": s.url,
                "group": handle(s.group_id),
                "in_reply_to_id": str(s.in_reply_to_id) if s.in_reply_to_id is not None else None,
                "in_reply_to_account": handle(s.in_reply_to_account_id),
                "reblog_of": _reblog_ref(originals.get(s.reblog_of_id) if s.reblog_of_id else None, handle),
                "edits": edits.get(s.id, []),
            }
            for s in statuses
        ],
        "following": [
            {
                "acct": handle(f.target_account_id),
                "state": f.state,
                "show_reblogs": f.show_reblogs,
                "notify": f.notify,
                "created_at": iso(f.created_at),
            }
            for f in follows_out
            if not _is_group(people, f.target_account_id)
        ],
        "followers": [
            {"acct": handle(f.account_id), "created_at": iso(f.created_at)} for f in follows_in if f.state == "accepted"
        ],
        "follow_requests": [
            {"acct": handle(f.account_id), "created_at": iso(f.created_at)} for f in follows_in if f.state == "pending"
        ],
        "blocks": [{"acct": handle(b.target_account_id), "created_at": iso(b.created_at)} for b in blocks],
        "mutes": [
            {
                "acct": handle(m.target_account_id),
                "hide_notifications": m.hide_notifications,
                "expires_at": iso(m.expires_at),
                "created_at": iso(m.created_at),
            }
            for m in mutes
        ],
        "favourites": [
            {
                "status_id": str(s.id),
                "status_url": s.url or s.uri,
                "account": handle(s.account_id),
                "created_at": iso(f.created_at),
            }
            for f, s in favourites
        ],
        "groups": [
            {
                "acct": handle(f.target_account_id),
                "state": f.state,
                "role": roles.get(f.target_account_id),
                "created_at": iso(f.created_at),
            }
            for f in follows_out
            if _is_group(people, f.target_account_id)
        ],
        "notifications_count": notifications.scalar_one(),
    }


def plain_fields(account: Account) -> list[dict[str, Any]]:
    """Profile fields as their author typed them (stored values are HTML)."""
    return [
        {"name": f.get("name", ""), "value": html_to_text(f.get("value", "")), "verified_at": f.get("verified_at")}
        for f in account.fields or []
        if isinstance(f, dict)
    ]


def _is_group(people: dict[int, Account], account_id: int) -> bool:
    found = people.get(account_id)
    return found is not None and found.is_group


def _full_acct(config: Config, account: Account) -> str:
    return f"{acct(account)}@{config.domain}" if account.local else acct(account)


def _reblog_ref(original: Status | None, handle: Any) -> dict[str, Any] | None:
    if original is None:
        return None
    return {"id": str(original.id), "url": original.url or original.uri, "account": handle(original.account_id)}
