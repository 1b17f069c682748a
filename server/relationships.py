"""Follows, follow requests, blocks and mutes between accounts: the rules behind Mastodon's
relationship endpoints.

Design note
-----------
A follow is a ``follows`` row: ``accepted`` counts towards both accounts' counters, ``pending``
is a follow request (a locked account, or a remote account until its server accepts). A
membership in a group is the same row towards the group's account, so following a group goes
through ``server.groups.join`` (join policy, bans, invites) and unfollowing it through
``server.groups.leave`` (a group keeps its only owner). Groups on other servers are followed
like any remote account: a pending row until their server accepts.

Rules this module guarantees, all within the caller's transaction:

* counters move only with accepted rows, in the same transaction, by SQL increments (no
  read-modify-write, so concurrent requests cannot lose an update);
* nobody follows themselves, a suspended or deleted account (404 for the latter two), or an
  account that blocks them or that they block (403);
* a block removes follows and follow requests in both directions, and their counters;
* unlocking an account accepts its pending requests (Mastodon's rule), except those from
  limited accounts;
* a follow from a limited account (``silenced_at``, its own or its domain's) is a request;
* a follow request's notification disappears when the request is accepted, rejected or
  withdrawn, as in Mastodon (the request is the notification's subject there);
* an expired mute counts as no mute.

Nothing here renders HTTP answers or commits; ``relationships`` computes Mastodon's
``Relationship`` facts for many targets in five queries.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from server import groups
from server.entities import render_relationship
from server.errors import Forbidden, NotFound
from server.ids import new_id
from server.models import Account, Block, Follow, Mute, Notification
from server.notify import notify

MAX_MUTE_SECONDS = 10 * 365 * 24 * 3600


async def load_account(session: AsyncSession, account_id: int, *, allow_suspended: bool = True) -> Account:
    """The account with this id; 404 when unknown or deleted (or suspended, if not allowed)."""
    account = await session.get(Account, account_id)
    if account is None or account.deleted_at is not None:
        raise NotFound("Record not found")
    if account.suspended_at is not None and not allow_suspended:
        raise NotFound("Record not found")
    return account


async def _follow_row(session: AsyncSession, follower_id: int, followed_id: int) -> Follow | None:
    return (
        await session.execute(
            select(Follow).where(Follow.account_id == follower_id, Follow.target_account_id == followed_id)
        )
    ).scalar_one_or_none()


async def is_blocking(session: AsyncSession, blocker_id: int, blocked_id: int) -> bool:
    found = await session.execute(
        select(Block.id).where(Block.account_id == blocker_id, Block.target_account_id == blocked_id)
    )
    return found.first() is not None


async def bump_follow_counters(session: AsyncSession, follower_id: int, followed_id: int, delta: int) -> None:
    """Move ``following_count`` of the follower and ``followers_count`` of the followed."""
    await session.execute(
        update(Account).where(Account.id == followed_id).values(followers_count=Account.followers_count + delta)
    )
    await session.execute(
        update(Account).where(Account.id == follower_id).values(following_count=Account.following_count + delta)
    )


async def _drop_request_notification(session: AsyncSession, follower_id: int, followed_id: int) -> None:
    await session.execute(
        delete(Notification).where(
            Notification.account_id == followed_id,
            Notification.from_account_id == follower_id,
            Notification.type == "follow_request",
        )
    )


async def sever_follow(session: AsyncSession, follower_id: int, followed_id: int) -> bool:
    """Delete a follow or follow request (with counters and its notification); True if any."""
    row = await _follow_row(session, follower_id, followed_id)
    if row is None:
        return False
    state = row.state
    await session.execute(delete(Follow).where(Follow.id == row.id))
    if state == "accepted":
        await bump_follow_counters(session, follower_id, followed_id, -1)
    else:
        await _drop_request_notification(session, follower_id, followed_id)
    return True


async def follow(
    session: AsyncSession,
    source: Account,
    target: Account,
    *,
    at: datetime,
    reblogs: bool | None = None,
    notify_posts: bool | None = None,
    invite_code: str | None = None,
) -> None:
    """Follow ``target`` (or join it, when it is a group). See the module note for the rules."""
    if target.id == source.id:
        raise Forbidden("You cannot follow yourself")
    if target.suspended_at is not None or target.deleted_at is not None:
        raise NotFound("Record not found")
    if await is_blocking(session, target.id, source.id) or await is_blocking(session, source.id, target.id):
        raise Forbidden("This action is not allowed")
    if target.is_group and target.local:
        view = await groups.load_group(session, target.id)
        await groups.join(session, view, source, invite_code=invite_code)
        return
    existing = await _follow_row(session, source.id, target.id)
    if existing is not None:
        if reblogs is not None:
            existing.show_reblogs = reblogs
        if notify_posts is not None:
            existing.notify = notify_posts
        return
    # A limited account's (or limited domain's) new follow is a request even to an unlocked
    # member, who approves or rejects it (Mastodon); existing follows stay.
    pending = target.locked or not target.local or source.silenced_at is not None
    session.add(
        Follow(
            id=new_id(),
            account_id=source.id,
            target_account_id=target.id,
            state="pending" if pending else "accepted",
            remote=not source.local,
            show_reblogs=True if reblogs is None else reblogs,
            notify=bool(notify_posts),
            created_at=at,
        )
    )
    await session.flush()
    if pending:
        await notify(session, recipient_id=target.id, from_account_id=source.id, type="follow_request")
    else:
        await bump_follow_counters(session, source.id, target.id, +1)
        await notify(session, recipient_id=target.id, from_account_id=source.id, type="follow")


async def follow_uri(session: AsyncSession, follower_id: int, followed_id: int) -> str | None:
    """The id of the ``Follow`` activity behind a follow (remote follows only)."""
    row = await _follow_row(session, follower_id, followed_id)
    return row.uri if row is not None else None


async def unfollow(session: AsyncSession, source: Account, target: Account) -> None:
    """Stop following (or withdraw a request); leaving a group follows the group's rules."""
    if target.is_group and target.local:
        view = await groups.load_group(session, target.id)
        await groups.leave(session, view, source.id)
        return
    await sever_follow(session, source.id, target.id)


async def authorize_request(session: AsyncSession, followed: Account, follower_id: int) -> None:
    """Accept a pending follow request from ``follower_id``; 404 when there is none."""
    row = await _follow_row(session, follower_id, followed.id)
    if row is None or row.state != "pending":
        raise NotFound("Record not found")
    row.state = "accepted"
    await bump_follow_counters(session, follower_id, followed.id, +1)
    await _drop_request_notification(session, follower_id, followed.id)


async def pending_request_ids(session: AsyncSession, followed_id: int) -> list[int]:
    """The pending requests an unlock accepts (:func:`authorize_all_requests`): all but those
    from limited accounts, which stay for the member to decide."""
    rows = await session.execute(
        select(Follow.account_id)
        .join(Account, Account.id == Follow.account_id)
        .where(Follow.target_account_id == followed_id, Follow.state == "pending", Account.silenced_at.is_(None))
    )
    return [r[0] for r in rows]


async def authorize_all_requests(session: AsyncSession, followed: Account) -> None:
    """Accept every pending request (an account that stops being locked, as Mastodon does)."""
    pending = await session.execute(
        select(Follow.account_id)
        .join(Account, Account.id == Follow.account_id)
        .where(Follow.target_account_id == followed.id, Follow.state == "pending", Account.silenced_at.is_(None))
    )
    for (follower_id,) in pending.all():
        await authorize_request(session, followed, follower_id)


async def reject_request(session: AsyncSession, followed: Account, follower_id: int) -> None:
    """Refuse a pending follow request; 404 when there is none."""
    row = await _follow_row(session, follower_id, followed.id)
    if row is None or row.state != "pending":
        raise NotFound("Record not found")
    await sever_follow(session, follower_id, followed.id)


async def remove_from_followers(session: AsyncSession, followed: Account, follower_id: int) -> None:
    """Make ``follower_id`` stop following ``followed`` (an accepted follow; no-op otherwise)."""
    row = await _follow_row(session, follower_id, followed.id)
    if row is not None and row.state == "accepted":
        await sever_follow(session, follower_id, followed.id)


async def drop_follows_of_suspended(session: AsyncSession, account: Account) -> int:
    """A remote account was suspended here: end its follows of local accounts (and its
    requests), as Mastodon's suspension does, so nothing addressed to followers reaches it.
    Not reversible (its server would have to follow again). Returns how many were ended."""
    if account.local:
        return 0
    targets = (await session.scalars(select(Follow.target_account_id).where(Follow.account_id == account.id))).all()
    ended = 0
    for target_id in targets:
        ended += await sever_follow(session, account.id, target_id)
    return ended


async def block(session: AsyncSession, source: Account, target: Account, *, at: datetime) -> None:
    """Block ``target``: sever follows and requests both ways, then record the block."""
    if target.id == source.id:
        raise Forbidden("You cannot block yourself")
    if target.is_group and target.local:
        if await groups.membership(session, target.id, source.id) is not None:
            view = await groups.load_group(session, target.id)
            await groups.leave(session, view, source.id)
    else:
        await sever_follow(session, source.id, target.id)
    await sever_follow(session, target.id, source.id)
    if not await is_blocking(session, source.id, target.id):
        session.add(Block(id=new_id(), account_id=source.id, target_account_id=target.id, created_at=at))
        await session.flush()


async def unblock(session: AsyncSession, source: Account, target: Account) -> None:
    await session.execute(delete(Block).where(Block.account_id == source.id, Block.target_account_id == target.id))


async def mute(
    session: AsyncSession,
    source: Account,
    target: Account,
    *,
    notifications: bool,
    duration: int,
    at: datetime,
) -> None:
    """Mute ``target`` (``duration`` seconds, 0 = until unmuted); updates an existing mute."""
    if target.id == source.id:
        raise Forbidden("You cannot mute yourself")
    expires_at = at + timedelta(seconds=duration) if duration > 0 else None
    existing = (
        await session.execute(select(Mute).where(Mute.account_id == source.id, Mute.target_account_id == target.id))
    ).scalar_one_or_none()
    if existing is not None:
        existing.hide_notifications = notifications
        existing.expires_at = expires_at
        existing.created_at = at
        return
    session.add(
        Mute(
            id=new_id(),
            account_id=source.id,
            target_account_id=target.id,
            hide_notifications=notifications,
            expires_at=expires_at,
            created_at=at,
        )
    )
    await session.flush()


async def unmute(session: AsyncSession, source: Account, target: Account) -> None:
    await session.execute(delete(Mute).where(Mute.account_id == source.id, Mute.target_account_id == target.id))


def active_mute(at: datetime) -> Any:
    """SQL condition: a mute still in force at ``at``."""
    return or_(Mute.expires_at.is_(None), Mute.expires_at > at)


async def relationships(
    session: AsyncSession, viewer_id: int, target_ids: Iterable[int], *, at: datetime
) -> list[dict[str, Any]]:
    """Mastodon ``Relationship`` entities from ``viewer_id`` towards each of ``target_ids``."""
    ids = list(dict.fromkeys(target_ids))
    if not ids:
        return []
    outgoing = {
        row.target_account_id: row
        for row in (
            await session.execute(
                select(Follow).where(Follow.account_id == viewer_id, Follow.target_account_id.in_(ids))
            )
        ).scalars()
    }
    incoming = {
        account_id: state
        for account_id, state in (
            await session.execute(
                select(Follow.account_id, Follow.state).where(
                    Follow.target_account_id == viewer_id, Follow.account_id.in_(ids)
                )
            )
        ).all()
    }
    blocking = set(
        (
            await session.execute(
                select(Block.target_account_id).where(Block.account_id == viewer_id, Block.target_account_id.in_(ids))
            )
        ).scalars()
    )
    blocked_by = set(
        (
            await session.execute(
                select(Block.account_id).where(Block.target_account_id == viewer_id, Block.account_id.in_(ids))
            )
        ).scalars()
    )
    muting = {
        target: hide
        for target, hide in (
            await session.execute(
                select(Mute.target_account_id, Mute.hide_notifications).where(
                    Mute.account_id == viewer_id, Mute.target_account_id.in_(ids), active_mute(at)
                )
            )
        ).all()
    }
    result = []
    for target_id in ids:
        out = outgoing.get(target_id)
        result.append(
            render_relationship(
                target_id,
                following=out is not None and out.state == "accepted",
                requested=out is not None and out.state == "pending",
                showing_reblogs=out is not None and out.show_reblogs,
                notifying=out is not None and out.notify,
                followed_by=incoming.get(target_id) == "accepted",
                requested_by=incoming.get(target_id) == "pending",
                blocking=target_id in blocking,
                blocked_by=target_id in blocked_by,
                muting=target_id in muting,
                muting_notifications=muting.get(target_id, False),
            )
        )
    return result


async def relationship(session: AsyncSession, viewer_id: int, target_id: int, *, at: datetime) -> dict[str, Any]:
    return (await relationships(session, viewer_id, [target_id], at=at))[0]
