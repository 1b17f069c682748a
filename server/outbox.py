"""What local actions send to other instances: the activities and who receives them.

Every function here runs inside the caller's transaction and only writes rows
(``server.delivery.enqueue``): the action and its deliveries commit together. Recipients are
remote inboxes only, shared inboxes preferred, and only inboxes that serve someone allowed to
see the content (research/federation.md §8.3, §5):

- a post: the author's remote followers (not for members-only groups), remote accounts it
  mentions, the remote author it replies to; in a local group the group ``Announce``s the
  author's ``Create`` (with a FEP-8b32 proof by the author) to the group's remote members; in a
  remote group the ``Create`` goes to the group, which redistributes it (FEP-1b12);
- an edit or a deletion: the same recipients as the post;
- a favourite or boost of a remote post: its author (and its group, Lemmy-style);
- follows, their answers, blocks and account deletion: the actor concerned / every known
  remote follower and followee.

Nothing is recorded when no remote recipient exists, so a purely local instance pays one
indexed query per post.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import exists, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from crypto.integrity import sign_object
from crypto.signing import PrivateKey
from federation import documents as docs
from server.actor_keys import local_keys
from server.config import Config
from server.db import after_commit
from server.delivery import enqueue
from server.entities import account_uri
from server.federation import Federation
from server.ids import new_id
from server.models import Account, E2EEIdentity, Follow, Group, Job, Mention, Status
from server.notes import load_related, note_and_create
from server.statuses import status_uri
from server.web import now
from server.workers import WAKEUPS

JOBS = "jobs"


def activity_uri(config: Config, activity_id: int | None = None) -> str:
    return f"{config.base_url}/activities/{activity_id or new_id()}"


def derived_uri(actor: str, kind: str, source: Any) -> str:
    """A stable activity id for an answer to ``source`` (an Accept of a Follow, a group's
    Announce of an activity): the same source always yields the same id."""
    return f"{actor}/{kind}/{hashlib.sha256(str(source).encode()).hexdigest()[:32]}"


def _inbox(account: Account) -> str | None:
    return account.shared_inbox_url or account.inbox_url


async def remote_follower_inboxes(session: AsyncSession, account_ids: Sequence[int]) -> list[str]:
    """Shared (else personal) inboxes of the accepted remote followers of ``account_ids``."""
    if not account_ids:
        return []
    rows = await session.execute(
        select(func.coalesce(Account.shared_inbox_url, Account.inbox_url))
        .join(Follow, Follow.account_id == Account.id)
        .where(
            Follow.target_account_id.in_(account_ids),
            Follow.remote.is_(True),
            Follow.state == "accepted",
            Account.deleted_at.is_(None),
        )
        .distinct()
    )
    return [r[0] for r in rows if r[0]]


async def _remote_accounts(session: AsyncSession, ids: Iterable[int]) -> list[Account]:
    wanted = list(set(ids))
    if not wanted:
        return []
    rows = await session.scalars(select(Account).where(Account.id.in_(wanted), Account.domain != ""))
    return list(rows)


# ---------------------------------------------------------------------------- documents


def actor_id(config: Config, account: Account) -> str:
    return account_uri(config, account)


def followers_of(config: Config, account: Account) -> str:
    if account.local:
        return docs.ActorUrls.of(actor_id(config, account)).followers
    return account.followers_url or f"{account.uri}/followers"


async def note_for(session: AsyncSession, config: Config, status: Status, author: Account) -> dict[str, Any]:
    """The ``Note`` of a local post, addressed for its visibility and group (the same document
    a GET of its id serves: ``server.notes``)."""
    note, _create = note_and_create(config, status, author, await load_related(session, [status]))
    return note


async def _sign_proof(
    session: AsyncSession, config: Config, author: Account, activity: dict[str, Any]
) -> dict[str, Any]:
    """Add the author's FEP-8b32 ``eddsa-jcs-2022`` proof (the group redistributes it as is)."""
    keys = await local_keys(session, config, author)
    return sign_object(activity, PrivateKey.from_pem(keys.ed25519_private_pem), keys.ed25519_key_id, now())


# ---------------------------------------------------------------------------- posts


async def _post_recipients(
    session: AsyncSession, config: Config, status: Status, author: Account
) -> tuple[list[str], Account | None, bool]:
    """(inboxes for the author's own activity, the post's group, whether it is a local
    members-only group)."""
    group = await session.get(Account, status.group_id) if status.group_id is not None else None
    members_only = False
    if group is not None and group.local:
        members_only = bool(await session.scalar(select(Group.members_only).where(Group.account_id == group.id)))
    inboxes: list[str] = []
    if group is None or not members_only:
        if status.visibility in ("public", "unlisted", "private") and group is None:
            inboxes += await remote_follower_inboxes(session, [author.id])
    mentioned_ids = [
        r[0] for r in await session.execute(select(Mention.account_id).where(Mention.status_id == status.id))
    ]
    people = await _remote_accounts(session, mentioned_ids)
    if members_only and group is not None:
        members = set(
            r[0]
            for r in await session.execute(
                select(Follow.account_id).where(
                    Follow.target_account_id == group.id,
                    Follow.state == "accepted",
                    Follow.account_id.in_([p.id for p in people] or [0]),
                )
            )
        )
        people = [p for p in people if p.id in members]
    inboxes += [i for i in (_inbox(p) for p in people if not p.is_group) if i]
    if status.in_reply_to_account_id is not None and not members_only:
        parents = await _remote_accounts(session, [status.in_reply_to_account_id])
        inboxes += [i for i in (_inbox(p) for p in parents) if i]
    if group is not None and not group.local and group.inbox_url:
        inboxes.append(group.inbox_url)
    return inboxes, group, members_only


async def _group_inboxes(session: AsyncSession, group: Account) -> list[str]:
    return await remote_follower_inboxes(session, [group.id])


async def _anyone_remote(session: AsyncSession, status: Status, author: Account) -> bool:
    """One query: could this post have any remote recipient at all? (Most posts on a
    small instance have none, and then federating costs nothing more.)"""
    targets = [author.id] + ([status.group_id] if status.group_id is not None else [])
    remote_follower = exists().where(
        Follow.target_account_id.in_(targets), Follow.remote.is_(True), Follow.state == "accepted"
    )
    remote_mention = exists().where(
        Mention.status_id == status.id, Mention.account_id == Account.id, Account.domain != ""
    )
    remote_context = exists().where(
        Account.id.in_([i for i in (status.group_id, status.in_reply_to_account_id) if i is not None] or [0]),
        Account.domain != "",
    )
    found = await session.scalar(select(or_(remote_follower, remote_mention, remote_context)))
    return bool(found)


async def _send_about_post(
    session: AsyncSession,
    config: Config,
    status: Status,
    author: Account,
    build: Callable[[Account | None], Awaitable[dict[str, Any]]],
) -> None:
    """Send the author's activity about a post (``build(group)`` makes it) to the post's
    remote recipients and, for a post in a local group, have the group ``Announce`` it; a
    group post's activity carries the author's FEP-8b32 proof, so it can be redistributed."""
    inboxes, group, members_only = await _post_recipients(session, config, status, author)
    group_inboxes = await _group_inboxes(session, group) if group is not None and group.local else []
    if not inboxes and not group_inboxes:
        return
    activity = await build(group)
    if group is not None:
        activity = await _sign_proof(session, config, author, activity)
    if inboxes:
        await enqueue(session, config.base_url, actor_account_id=author.id, activity=activity, inboxes=inboxes)
    if group_inboxes and group is not None:
        await _announce(session, config, group, activity, group_inboxes, members_only=members_only)


async def federate_post(session: AsyncSession, config: Config, status: Status, author: Account) -> None:
    """Send the ``Create`` of a new local post (and its group's ``Announce``)."""
    if not config.get("federation", "enabled") or status.reblog_of_id is not None:
        return
    if not await _anyone_remote(session, status, author):
        return

    async def create(_group: Account | None) -> dict[str, Any]:
        note = await note_for(session, config, status, author)
        return docs.create_activity(
            f"{note['id']}/activity", actor_id(config, author), note, note["to"], note["cc"], status.created_at
        )

    await _send_about_post(session, config, status, author, create)


async def federate_edit(session: AsyncSession, config: Config, status: Status, author: Account) -> None:
    if not config.get("federation", "enabled"):
        return

    async def update(_group: Account | None) -> dict[str, Any]:
        note = await note_for(session, config, status, author)
        return docs.update_activity(
            activity_uri(config), actor_id(config, author), note, note["to"], note["cc"], status.edited_at or now()
        )

    await _send_about_post(session, config, status, author, update)


async def federate_delete(session: AsyncSession, config: Config, status: Status, author: Account) -> None:
    if not config.get("federation", "enabled"):
        return
    if status.reblog_of_id is not None:
        await federate_unboost(session, config, status, author)
        return

    async def delete(group: Account | None) -> dict[str, Any]:
        followers = followers_of(config, author)
        public = status.visibility in ("public", "unlisted")
        return docs.delete_activity(
            activity_uri(config),
            actor_id(config, author),
            status.uri or status_uri(config, author, status.id),
            [docs.PUBLIC] if public else [followers],
            [followers] if public else [],
            audience=actor_id(config, group) if group is not None else None,
            published=now(),
        )

    await _send_about_post(session, config, status, author, delete)


async def _announce(
    session: AsyncSession,
    config: Config,
    group: Account,
    inner: Mapping[str, Any],
    inboxes: Sequence[str],
    *,
    members_only: bool,
) -> None:
    followers = followers_of(config, group)
    to, cc = ([followers], []) if members_only else ([docs.PUBLIC], [followers])
    inner_id = inner.get("id") if isinstance(inner, Mapping) else None
    # One Announce per inner activity, whatever happens: re-applying it (after a crash)
    # finds the same id and sends nothing new.
    announce_id = derived_uri(actor_id(config, group), "announces", inner_id) if inner_id else activity_uri(config)
    announce = docs.announce_activity(announce_id, actor_id(config, group), inner, to, cc, now())
    await enqueue(session, config.base_url, actor_account_id=group.id, activity=announce, inboxes=inboxes)


async def group_announce(
    session: AsyncSession, fed: Federation, group: Account, inner: Mapping[str, Any], *, members_only: bool
) -> None:
    """FEP-1b12: a local group redistributes an accepted activity, unchanged, to its members."""
    inboxes = await _group_inboxes(session, group)
    if inboxes:
        await _announce(session, fed.config, group, inner, inboxes, members_only=members_only)


# ---------------------------------------------------------------------------- interactions


async def _status_author(session: AsyncSession, status: Status) -> Account | None:
    return await session.get(Account, status.account_id)


async def federate_like(session: AsyncSession, config: Config, liker: Account, status: Status, *, undo: bool) -> None:
    if not config.get("federation", "enabled") or status.local:
        return
    author = await _status_author(session, status)
    if author is None or not author.inbox_url or not status.uri:
        return
    inboxes = [author.inbox_url]
    audience = None
    if status.group_id is not None:
        group = await session.get(Account, status.group_id)
        if group is not None and not group.local and group.inbox_url:
            inboxes.append(group.inbox_url)
            audience = group.uri
    like = docs.like_activity(
        f"{actor_id(config, liker)}#likes/{status.id}",
        actor_id(config, liker),
        status.uri,
        to=[author.uri or ""],
        audience=audience,
    )
    activity = docs.undo_activity(activity_uri(config), actor_id(config, liker), like) if undo else like
    await enqueue(session, config.base_url, actor_account_id=liker.id, activity=activity, inboxes=inboxes)


async def federate_boost(
    session: AsyncSession, config: Config, booster: Account, boost: Status, original: Status
) -> None:
    if not config.get("federation", "enabled"):
        return
    inboxes = await remote_follower_inboxes(session, [booster.id])
    author = await _status_author(session, original)
    if author is not None and not author.local and author.inbox_url:
        inboxes.append(author.inbox_url)
    if not inboxes:
        return
    original_uri = original.uri or (status_uri(config, author, original.id) if author else "")
    announce = docs.announce_activity(
        boost.uri or status_uri(config, booster, boost.id, reblog=True),
        actor_id(config, booster),
        original_uri,
        [docs.PUBLIC],
        [followers_of(config, booster)]
        + ([author.uri] if author is not None and author.uri and not author.local else []),
        boost.created_at,
    )
    await enqueue(session, config.base_url, actor_account_id=booster.id, activity=announce, inboxes=inboxes)


async def federate_unboost(session: AsyncSession, config: Config, boost: Status, booster: Account) -> None:
    if not config.get("federation", "enabled") or boost.reblog_of_id is None:
        return
    original = await session.get(Status, boost.reblog_of_id)
    inboxes = await remote_follower_inboxes(session, [booster.id])
    author = await _status_author(session, original) if original is not None else None
    if author is not None and not author.local and author.inbox_url:
        inboxes.append(author.inbox_url)
    if not inboxes or original is None:
        return
    original_uri = original.uri or (status_uri(config, author, original.id) if author else "")
    announce = docs.announce_activity(
        boost.uri or status_uri(config, booster, boost.id, reblog=True),
        actor_id(config, booster),
        original_uri,
        [docs.PUBLIC],
        [followers_of(config, booster)],
        boost.created_at,
    )
    undo = docs.undo_activity(activity_uri(config), actor_id(config, booster), announce)
    await enqueue(session, config.base_url, actor_account_id=booster.id, activity=undo, inboxes=inboxes)


# ---------------------------------------------------------------------------- follows


async def federate_follow(session: AsyncSession, config: Config, follower: Account, target: Account) -> None:
    """A local account follows (or asks to join) a remote actor: send ``Follow``."""
    if not config.get("federation", "enabled") or target.local or not target.inbox_url or not target.uri:
        return
    row = await session.scalar(
        select(Follow).where(Follow.account_id == follower.id, Follow.target_account_id == target.id)
    )
    if row is None:
        return
    if row.uri is None:
        row.uri = f"{actor_id(config, follower)}/follows/{row.id}"
    follow = docs.follow_activity(row.uri, actor_id(config, follower), target.uri)
    await enqueue(session, config.base_url, actor_account_id=follower.id, activity=follow, inboxes=[target.inbox_url])


async def federate_unfollow(
    session: AsyncSession, config: Config, follower: Account, target: Account, follow_uri: str | None
) -> None:
    if not config.get("federation", "enabled") or target.local or not target.inbox_url or not target.uri:
        return
    follow = docs.follow_activity(follow_uri or activity_uri(config), actor_id(config, follower), target.uri)
    undo = docs.undo_activity(activity_uri(config), actor_id(config, follower), follow, to=[target.uri])
    await enqueue(session, config.base_url, actor_account_id=follower.id, activity=undo, inboxes=[target.inbox_url])


def _their_follow(config: Config, follower: Account, target: Account, follow: Follow) -> dict[str, Any]:
    return docs.follow_activity(follow.uri or activity_uri(config), follower.uri or "", actor_id(config, target))


async def _answer(
    session: AsyncSession,
    fed: Federation | Config,
    target: Account,
    follower: Account,
    follow: Mapping[str, Any],
    kind: str,
) -> None:
    config = fed.config if isinstance(fed, Federation) else fed
    if not follower.inbox_url:
        return
    build = docs.accept_activity if kind == "accepts" else docs.reject_activity
    answer = build(
        derived_uri(actor_id(config, target), kind, follow.get("id") or activity_uri(config)),
        actor_id(config, target),
        follow,
    )
    await enqueue(session, config.base_url, actor_account_id=target.id, activity=answer, inboxes=[follower.inbox_url])


async def send_accept(
    session: AsyncSession, fed: Federation | Config, target: Account, follower: Account, follow: Mapping[str, Any]
) -> None:
    await _answer(session, fed, target, follower, follow, "accepts")


async def send_reject(
    session: AsyncSession, fed: Federation | Config, target: Account, follower: Account, follow: Mapping[str, Any]
) -> None:
    await _answer(session, fed, target, follower, follow, "rejects")


async def answer_follow(
    session: AsyncSession, config: Config, target: Account, follower_id: int, *, accepted: bool
) -> None:
    """A local person or group decided on a remote follow request: send Accept or Reject.

    Called before the local change is made (a rejected request's row is about to go).
    """
    if not config.get("federation", "enabled"):
        return
    follower = await session.get(Account, follower_id)
    if follower is None or follower.local:
        return
    row = await session.scalar(
        select(Follow).where(Follow.account_id == follower_id, Follow.target_account_id == target.id)
    )
    if row is None:
        return
    follow = _their_follow(config, follower, target, row)
    if accepted:
        await send_accept(session, config, target, follower, follow)
    else:
        await send_reject(session, config, target, follower, follow)


async def federate_block(
    session: AsyncSession, config: Config, blocker: Account, target: Account, *, undo: bool
) -> None:
    """Mastodon sends ``Block`` to the blocked actor so its server hides the blocker's posts."""
    if not config.get("federation", "enabled") or target.local or not target.inbox_url or not target.uri:
        return
    block = docs.block_activity(
        f"{actor_id(config, blocker)}#blocks/{target.id}", actor_id(config, blocker), target.uri
    )
    activity = docs.undo_activity(activity_uri(config), actor_id(config, blocker), block) if undo else block
    await enqueue(session, config.base_url, actor_account_id=blocker.id, activity=activity, inboxes=[target.inbox_url])


async def federate_actor_update(
    session: AsyncSession, config: Config, account: Account, document: Mapping[str, Any]
) -> None:
    """``Update`` of the actor (profile change, key rotation) to every remote follower."""
    if not config.get("federation", "enabled"):
        return
    inboxes = await remote_follower_inboxes(session, [account.id])
    if not inboxes:
        return
    update = docs.update_activity(
        activity_uri(config), actor_id(config, account), document, [docs.PUBLIC], [followers_of(config, account)], now()
    )
    await enqueue(session, config.base_url, actor_account_id=account.id, activity=update, inboxes=inboxes)


async def federate_profile(session: AsyncSession, config: Config, account: Account) -> None:
    """Send the current actor document to remote followers (profile edit, key rotation)."""
    if not config.get("federation", "enabled") or not account.local:
        return
    if not await remote_follower_inboxes(session, [account.id]):
        return
    from server.actor_documents import actor_document

    keys = await local_keys(session, config, account)
    settings = await session.get(Group, account.id) if account.is_group else None
    identity = None if account.is_group else await session.get(E2EEIdentity, account.id)
    master_key = identity.master_key if identity is not None else None
    await federate_actor_update(
        session, config, account, actor_document(config, account, keys, settings, master_key=master_key)
    )


async def federate_account_deleted(session: AsyncSession, config: Config, account: Account) -> None:
    """``Delete`` of the actor to every remote follower and followee (before rows go)."""
    if not config.get("federation", "enabled"):
        return
    followers = await remote_follower_inboxes(session, [account.id])
    followees = await session.execute(
        select(func.coalesce(Account.shared_inbox_url, Account.inbox_url))
        .join(Follow, Follow.target_account_id == Account.id)
        .where(Follow.account_id == account.id, Account.domain != "")
        .distinct()
    )
    inboxes = [*followers, *(r[0] for r in followees if r[0])]
    if not inboxes:
        return
    me = actor_id(config, account)
    delete = docs.delete_activity(
        activity_uri(config), me, me, [docs.PUBLIC], [followers_of(config, account)], published=now()
    )
    await enqueue(session, config.base_url, actor_account_id=account.id, activity=delete, inboxes=inboxes)


# ---------------------------------------------------------------------------- thread fetches


async def schedule_thread_fetch(fed: Federation, uri: str, depth: int = 0) -> None:
    """Fetch a missing ancestor later (a durable job; one per URL in flight)."""
    if depth >= int(fed.config.get("federation", "thread_fetch_limit")):
        return
    async with fed.sessions() as session:
        session.add(
            Job(
                id=new_id(),
                kind="fetch_ancestor",
                unique_key=f"fetch_ancestor:{uri}",
                payload={"uri": uri, "depth": depth},
                state="pending",
                attempts=0,
                next_attempt_at=now(),
                created_at=now(),
            )
        )
        after_commit(session, lambda: WAKEUPS.notify(JOBS))
        try:
            await session.commit()
        except IntegrityError:
            await session.rollback()
