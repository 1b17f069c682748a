"""Apply received activities: the inbox worker.

Each ``inbox_items`` row was written by the inbox after its signature and origins were
checked (server/api/inbox.py). Here the worker claims it, does the remote fetches it needs
outside any transaction (the embedded object's origin copy when it had no proof, unknown
authors, parents of replies), then applies the effect in one transaction that also marks the
row done and clears its body. A failure leaves the row pending with a backoff; after
``MAX_ATTEMPTS`` it is marked failed with a reason code.

Effects by type (research/federation.md §2.3–2.5, §5, §8.4; FEP-1b12 for groups):

- Follow of a local person (pending when locked) or group (the group's join policy decides;
  refused joins get Reject), answered with Accept when accepted.
- Accept / Reject of our Follow; Undo of Follow, Like, Announce, Block.
- Create of Note/Page/Article/Question stored when it concerns someone here: posted to a
  local group by a member (then the group Announces the activity unchanged to its followers),
  replying to a local post, mentioning a local account, from an actor someone here follows, or
  announced by a remote group someone here is a member of.
- Update of a known post by its author (edit history kept) or of the actor itself.
- Delete of a post by its author, or of the actor (their posts go with them).
- Announce by a group: the inner activity is applied as if received from its own actor;
  Lemmy's ``Announce(Page)`` shape stores the page. Announce by a person is a boost.
- Like of a local post; Block of a local account; Move (checked against ``alsoKnownAs``);
  Flag becomes a report for moderators.
- Remove/Block/Undo(Block) in a local group from one of its listed moderators.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crypto.encoding import b64encode
from federation.content import html_to_text, normalize_hashtag
from federation.e2ee import is_encrypted_message, parse_encrypted_create
from federation.inbound import (
    AS_PUBLIC,
    Incoming,
    InvalidActivity,
    RemoteNote,
    parse_activity,
    parse_note,
    same_origin,
)
from server import groups, relationships, statuses
from server.delivery import note_inbound
from server.federation import Federation, host_of
from server.ids import new_id
from server.models import (
    Account,
    Block,
    Favourite,
    Follow,
    Group,
    GroupRole,
    InboxItem,
    Mention,
    Report,
    Status,
    StatusTag,
    Tag,
)
from server.notify import notify
from server.remote_actors import ActorUnavailable, account_by_uri, local_account_by_uri, resolve_actor
from server.topics import known_topics
from server.transport import FetchError
from server.web import now
from server.workers import backoff, claim, run_loop

log = logging.getLogger(__name__)

INBOX = "inbox"  # the worker's wake-up name
MAX_ATTEMPTS = 6
# A claimed batch is processed one item after another (order matters: a Create before its
# Update); each item may fetch a few documents (15 s each at worst), so batches stay small
# enough to finish well inside the lease.
LEASE = timedelta(minutes=5)
BATCH = 8
NOTE_TYPES = ("Note", "Page", "Article", "Question")


class Ignored(Exception):
    """The activity is valid but concerns nothing here (a reason code for the row)."""


@dataclass
class Context:
    """What applying one activity needs: the federation, the signer, the item's raw JSON."""

    fed: Federation
    item: InboxItem
    document: dict[str, Any]
    actor: Account
    announced_by: Account | None = None  # the group whose Announce carried this activity
    raw_inner: dict[str, Any] | None = None
    followups: list[Any] = field(default_factory=list)


# ---------------------------------------------------------------------------- worker


class InboxWorker:
    def __init__(self, fed: Federation) -> None:
        self.fed = fed

    async def run(self, stop: Any) -> None:
        await run_loop(INBOX, self.step, stop)

    async def step(self) -> int:
        rows = await claim(self.fed.sessions, InboxItem, limit=BATCH, lease=LEASE)
        for row in rows:
            await self.process(row)
        return len(rows)

    async def process(self, item: InboxItem) -> None:
        if item.attempts == 0:
            # A verified request from a domain shows it alive (Mastodon's unavailability rule).
            async with self.fed.sessions() as session:
                await note_inbound(session, host_of(item.actor_uri))
                await session.commit()
        try:
            await apply_item(self.fed, item)
        except Ignored as exc:
            await self._finish(item, "done", reason=str(exc))
        except (ActorUnavailable, FetchError) as exc:
            await self._retry(item, getattr(exc, "reason", "fetch_failed"))
        except InvalidActivity as exc:
            await self._finish(item, "failed", reason=exc.reason)
        except Exception as exc:
            log.exception("inbox item failed: item=%s type=%s", item.id, item.activity_type)
            await self._retry(item, type(exc).__name__)
        else:
            await self._finish(item, "done", reason=None)

    async def _finish(self, item: InboxItem, state: str, *, reason: str | None) -> None:
        async with self.fed.sessions() as session:
            await session.execute(
                update(InboxItem)
                .where(InboxItem.id == item.id, InboxItem.state == "pending")
                .values(state=state, body=None, locked_until=None, processed_at=now(), error=reason)
            )
            await session.commit()
        if reason and state == "failed":
            log.info("inbox item %s: item=%s type=%s reason=%s", state, item.id, item.activity_type, reason)

    async def _retry(self, item: InboxItem, reason: str) -> None:
        attempts = item.attempts + 1
        if attempts >= MAX_ATTEMPTS:
            await self._finish(item, "failed", reason=reason[:255])
            return
        async with self.fed.sessions() as session:
            await session.execute(
                update(InboxItem)
                .where(InboxItem.id == item.id)
                .values(
                    attempts=attempts,
                    next_attempt_at=now() + backoff(attempts),
                    locked_until=None,
                    error=reason[:255],
                )
            )
            await session.commit()
        log.info("inbox item retry: item=%s attempt=%d reason=%s", item.id, attempts, reason)


# ---------------------------------------------------------------------------- dispatch


def _replace_embedded(document: dict[str, Any], wanted: str, fresh: dict[str, Any]) -> bool:
    node: Any = document
    for _ in range(3):
        inner = node.get("object") if isinstance(node, dict) else None
        if isinstance(inner, dict) and inner.get("id") == wanted:
            node["object"] = fresh
            return True
        if isinstance(inner, str) and inner == wanted:
            node["object"] = fresh
            return True
        node = inner
    return False


async def apply_item(fed: Federation, item: InboxItem) -> None:
    if item.body is None:
        raise Ignored("no_body")
    document = json.loads(item.body)
    if item.refetch_uri:
        # No FEP-8b32 proof on a cross-origin object: trust only its origin's copy (FEP-fe34).
        if item.refetch_uri == document.get("id"):
            raise Ignored("refetch_of_the_activity_itself")
        fresh = await fed.transport.fetch_json(item.refetch_uri)  # id == final URL is checked
        claimed = fresh.get("actor") or fresh.get("attributedTo")
        authors = claimed if isinstance(claimed, list) else [claimed]
        for author in authors:
            author_id = author.get("id") if isinstance(author, dict) else author
            if not isinstance(author_id, str) or not same_origin(author_id, item.refetch_uri):
                raise Ignored("refetched_object_not_from_its_author_origin")
        if not _replace_embedded(document, item.refetch_uri, fresh):
            raise Ignored("refetch_target_missing")
    actor = await resolve_actor(fed, item.actor_uri)
    incoming = parse_activity(document)
    ctx = Context(fed=fed, item=item, document=document, actor=actor)
    await apply(ctx, incoming, document)


async def apply(ctx: Context, incoming: Incoming, raw: dict[str, Any]) -> None:
    handler = HANDLERS.get(incoming.type)
    if handler is None:
        raise Ignored(f"unsupported_type_{incoming.type[:20]}")
    if ctx.actor.suspended_at is not None:
        # A remote account suspended here (on its own or with its domain): its activities,
        # also when a group announces them, are ignored.
        raise Ignored("actor_suspended")
    await handler(ctx, incoming, raw)


# ---------------------------------------------------------------------------- helpers


async def _local_by_uri(session: AsyncSession, fed: Federation, uri: str | None) -> Account | None:
    if not uri or not fed.is_local(uri):
        return None
    return await local_account_by_uri(session, fed.config.base_url, uri)


async def _status_by_uri(session: AsyncSession, fed: Federation, uri: str | None) -> Status | None:
    if not uri:
        return None
    status = await session.scalar(select(Status).where(Status.uri == uri))
    if status is None and fed.is_local(uri):
        # Local statuses may carry no stored uri: /users/{name}/statuses/{id}
        tail = uri.rstrip("/").rsplit("/statuses/", 1)
        if len(tail) == 2 and tail[1].isdigit():
            status = await session.get(Status, int(tail[1]))
    return status


def _object_uri(incoming: Incoming) -> str | None:
    return incoming.object_id


async def commit_applied(ctx: Context, session: AsyncSession) -> None:
    """Commit an activity's effect together with its item's ``done`` mark: a crash can never
    leave an effect applied but its item pending (which would apply it twice)."""
    await session.execute(
        update(InboxItem)
        .where(InboxItem.id == ctx.item.id, InboxItem.state == "pending")
        .values(state="done", body=None, locked_until=None, processed_at=now(), error=None)
    )
    await session.commit()


# ---------------------------------------------------------------------------- follows


async def on_follow(ctx: Context, incoming: Incoming, raw: dict[str, Any]) -> None:
    from server import outbox

    fed = ctx.fed
    async with fed.sessions() as session:
        target = await _local_by_uri(session, fed, _object_uri(incoming))
        if target is None:
            raise Ignored("follow_target_unknown")
        source = await session.get(Account, ctx.actor.id)
        assert source is not None
        state: str | None
        row: Follow | None
        try:
            if target.is_group:
                if source.is_group:
                    raise Ignored("group_follows_group")
                view = await groups.load_group(session, target.id)
                row = await groups.join(session, view, source)
                state = row.state
            else:
                await relationships.follow(session, source, target, at=now())
                row = await session.scalar(
                    select(Follow).where(Follow.account_id == source.id, Follow.target_account_id == target.id)
                )
                state = row.state if row is not None else None
        except Ignored:
            raise
        except Exception as exc:  # refused by policy: banned, blocked, invite-only
            if not _is_refusal(exc):
                raise
            await session.rollback()
            await outbox.send_reject(session, fed, target, ctx.actor, raw)
            await commit_applied(ctx, session)
            return
        if row is not None:
            row.uri = incoming.id
        if state == "accepted":
            await outbox.send_accept(session, fed, target, ctx.actor, raw)
        await commit_applied(ctx, session)


def _is_refusal(exc: Exception) -> bool:
    from server.errors import ApiError

    return isinstance(exc, ApiError) and exc.status in (403, 404, 422)


async def _our_follow(session: AsyncSession, fed: Federation, incoming: Incoming, remote: Account) -> Follow | None:
    """The Follow of ours that an Accept/Reject from ``remote`` answers."""
    follow_id = incoming.inner.id if incoming.inner is not None else incoming.object_id
    row = None
    if follow_id:
        row = await session.scalar(select(Follow).where(Follow.uri == follow_id))
    if row is None and incoming.inner is not None and incoming.inner.actor:
        follower = await _local_by_uri(session, fed, incoming.inner.actor)
        if follower is not None:
            row = await session.scalar(
                select(Follow).where(Follow.account_id == follower.id, Follow.target_account_id == remote.id)
            )
    if row is None or row.target_account_id != remote.id:
        return None
    return row


async def on_accept(ctx: Context, incoming: Incoming, raw: dict[str, Any]) -> None:
    async with ctx.fed.sessions() as session:
        row = await _our_follow(session, ctx.fed, incoming, ctx.actor)
        if row is None:
            raise Ignored("accept_unknown_follow")
        if row.state != "accepted":
            row.state = "accepted"
            await relationships.bump_follow_counters(session, row.account_id, row.target_account_id, +1)
        await commit_applied(ctx, session)


async def on_reject(ctx: Context, incoming: Incoming, raw: dict[str, Any]) -> None:
    async with ctx.fed.sessions() as session:
        row = await _our_follow(session, ctx.fed, incoming, ctx.actor)
        if row is None:
            raise Ignored("reject_unknown_follow")
        await relationships.sever_follow(session, row.account_id, row.target_account_id)
        await commit_applied(ctx, session)


async def on_undo(ctx: Context, incoming: Incoming, raw: dict[str, Any]) -> None:
    inner = incoming.inner
    if inner is None:
        raise Ignored("undo_without_activity")
    if inner.actor != ctx.actor.uri:
        raise Ignored("undo_of_another_actor")
    fed = ctx.fed
    async with fed.sessions() as session:
        if inner.type == "Follow":
            target = await _local_by_uri(session, fed, inner.object_id)
            if target is None:
                raise Ignored("undo_follow_unknown")
            if target.is_group:
                await groups.remove_member(session, target.id, ctx.actor.id)
            else:
                await relationships.sever_follow(session, ctx.actor.id, target.id)
        elif inner.type == "Like":
            row = await session.scalar(select(Favourite).where(Favourite.uri == inner.id))
            status = await _status_by_uri(session, fed, inner.object_id)
            if row is None and status is not None:
                row = await session.scalar(
                    select(Favourite).where(Favourite.account_id == ctx.actor.id, Favourite.status_id == status.id)
                )
            if row is None or row.account_id != ctx.actor.id:
                raise Ignored("undo_like_unknown")
            target_status = await session.get(Status, row.status_id)
            if target_status is not None:
                await statuses.unfavourite(session, ctx.actor.id, target_status)
        elif inner.type == "Announce":
            boost = await session.scalar(select(Status).where(Status.uri == inner.id))
            if boost is None or boost.account_id != ctx.actor.id or boost.reblog_of_id is None:
                raise Ignored("undo_announce_unknown")
            await statuses.delete_status(session, boost)
        elif inner.type == "Lock":
            await _set_lock(session, ctx, inner, raw, locked=False)
        elif inner.type == "Block":
            target = await _local_by_uri(session, fed, inner.object_id)
            if target is not None:
                await session.execute(
                    delete(Block).where(Block.account_id == ctx.actor.id, Block.target_account_id == target.id)
                )
            else:
                await _group_moderation_undo_block(session, ctx, inner)
        else:
            raise Ignored(f"undo_unsupported_{inner.type[:20]}")
        await commit_applied(ctx, session)


# ---------------------------------------------------------------------------- posts


def _addresses(value: Any) -> list[str]:
    items = value if isinstance(value, list) else [value]
    return [i for i in items if isinstance(i, str)]


async def _group_of(
    session: AsyncSession, fed: Federation, obj: Mapping[str, Any], incoming: Incoming
) -> Account | None:
    """The group a post is addressed to: ``audience`` first, else a group among to/cc (read
    from the raw object, before it is parsed and sanitized once)."""
    candidates = [
        *_addresses(obj.get("audience")),
        incoming.audience,
        *_addresses(obj.get("to")),
        *_addresses(obj.get("cc")),
        *incoming.to,
        *incoming.cc,
    ]
    for uri in candidates:
        if not uri or uri == AS_PUBLIC:
            continue
        account = await _local_by_uri(session, fed, uri)
        if account is None:
            account = await account_by_uri(session, uri)
        if account is not None and account.is_group:
            return account
    return None


async def _concerns_us(session: AsyncSession, fed: Federation, author: Account, note: RemoteNote) -> bool:
    follows = await session.scalar(
        select(Follow.id)
        .join(Account, Account.id == Follow.account_id)
        .where(Follow.target_account_id == author.id, Follow.state == "accepted", Account.domain == "")
        .limit(1)
    )
    if follows is not None:
        return True
    for uri in note.mentions:
        if await _local_by_uri(session, fed, uri) is not None:
            return True
    parent = await _status_by_uri(session, fed, note.in_reply_to)
    return parent is not None and parent.local


async def _save_remote_tags(session: AsyncSession, status_id: int, names: tuple[str, ...]) -> None:
    wanted = [n for n in dict.fromkeys(normalize_hashtag(n) for n in names) if n and len(n) <= 100][:30]
    if not wanted:
        return
    existing = {t.name: t.id for t in (await session.scalars(select(Tag).where(Tag.name.in_(wanted))))}
    for name in wanted:
        if name not in existing:
            existing[name] = new_id()
            session.add(Tag(id=existing[name], name=name, display_name=name))
    await session.flush()
    session.add_all([StatusTag(status_id=status_id, tag_id=existing[name]) for name in wanted])


async def store_note(
    session: AsyncSession,
    fed: Federation,
    note: RemoteNote,
    author: Account,
    *,
    group: Account | None,
) -> Status | None:
    """Insert a remote post (idempotent by uri); None when its visibility is not stored."""
    existing = await session.scalar(select(Status).where(Status.uri == note.id))
    if existing is not None:
        return existing
    if author.uri is None or not same_origin(note.id, author.uri):
        # A post lives on its author's server; anything else is someone else's claim.
        raise Ignored("post_not_on_its_author_origin")
    if note.visibility not in ("public", "unlisted", "private"):
        # Plaintext direct messages are refused: private messages are end-to-end encrypted.
        raise Ignored("direct_message_refused")
    parent = await _status_by_uri(session, fed, note.in_reply_to)
    if parent is not None and parent.replies_locked:
        raise Ignored("thread_locked")
    moment = now()
    status = Status(
        id=new_id(),
        account_id=author.id,
        group_id=group.id if group is not None else (parent.group_id if parent is not None else None),
        in_reply_to_id=parent.id if parent is not None else None,
        in_reply_to_account_id=parent.account_id if parent is not None else None,
        in_reply_to_uri=None if parent is not None else note.in_reply_to,
        thread_root_id=(parent.thread_root_id or parent.id) if parent is not None else None,
        visibility=note.visibility,
        text=note.text,
        content=note.content_html,
        spoiler_text=note.summary or "",
        sensitive=bool(note.sensitive or (note.summary or "").strip()),
        topics=known_topics(fed.config, note.topics),
        language=note.language,
        uri=note.id,
        url=note.url or note.id,
        local=False,
        replies_count=0,
        reblogs_count=0,
        favourites_count=0,
        created_at=note.published or moment,
    )
    session.add(status)
    await session.flush()
    mentioned: list[Account] = []
    for uri in dict.fromkeys(note.mentions):
        account = await _local_by_uri(session, fed, uri)
        if account is not None and not account.is_group:
            mentioned.append(account)
            session.add(Mention(status_id=status.id, account_id=account.id))
    await _save_remote_tags(session, status.id, note.hashtags)
    await session.execute(
        update(Account)
        .where(Account.id == author.id)
        .values(statuses_count=Account.statuses_count + 1, last_status_at=moment)
    )
    if parent is not None:
        await session.execute(
            update(Status).where(Status.id == parent.id).values(replies_count=Status.replies_count + 1)
        )
    # Stitch children that arrived before this parent.
    stitched = await session.execute(
        update(Status)
        .where(Status.in_reply_to_uri == note.id)
        .values(
            in_reply_to_id=status.id,
            in_reply_to_account_id=author.id,
            in_reply_to_uri=None,
            thread_root_id=status.thread_root_id or status.id,
        )
        .returning(Status.id, Status.deleted_at)
    )
    children = sum(1 for _id, deleted_at in stitched if deleted_at is None)
    if children:
        status.replies_count += children
    members_only = False
    if status.group_id is not None:
        members_only = bool(await session.scalar(select(Group.members_only).where(Group.account_id == status.group_id)))
    for person in mentioned:
        if members_only and not await groups.is_member(session, status.group_id or 0, person.id):
            continue
        await notify(session, recipient_id=person.id, from_account_id=author.id, type="mention", status_id=status.id)
    return status


async def on_encrypted_message(ctx: Context, raw: dict[str, Any]) -> None:
    """Queue an ``e2ee:EncryptedMessage`` in the recipient's devices' inboxes (docs/e2ee.md):
    ciphertext only, stamped by us; devices not in the member's active list are skipped."""
    from server import e2ee
    from server.entities import account_uri

    fed = ctx.fed
    try:
        message = parse_encrypted_create(raw)
    except InvalidActivity as exc:
        raise Ignored(f"bad_encrypted_message:{exc.reason}") from None
    async with fed.sessions() as session:
        recipient = await local_account_by_uri(session, fed.config.base_url, message.recipient)
        sender = await session.get(Account, ctx.actor.id)
        assert sender is not None
        if not fed.config.get("e2ee", "enabled") or recipient is None:
            raise Ignored("encrypted_message_for_nobody_here")
        if message.actor != sender.uri:
            raise Ignored("author_is_not_actor")
        if await e2ee.refusal(session, sender, recipient) is not None:
            raise Ignored("encrypted_message_refused")
        devices = {d.device_id: d for d in await e2ee.devices_of(session, recipient.id)}
        ciphertexts = [
            e2ee.Ciphertext(devices[c.device_id], c.message_type, b64encode(c.body))
            for c in message.ciphertexts
            if c.device_id in devices
        ]
        if not ciphertexts:
            raise Ignored("encrypted_message_for_no_active_device")
        moment = now()
        recipient_uri = account_uri(fed.config, recipient)
        ours = await e2ee.make_stamp(
            session,
            tag=message.franking_tag,
            sender=message.actor,
            recipient=recipient_uri,
            object_id=message.id,
            at=message.stamped_at,
        )
        await e2ee.store_ciphertexts(
            session,
            fed.config,
            object_uri=message.id,
            sender_actor=message.actor,
            sender_device=message.sender_device,
            recipient_actor=recipient_uri,
            ciphertexts=ciphertexts,
            franking_tag=b64encode(message.franking_tag),
            sender_stamp=message.franking_stamp,
            stamp_value=ours,
            stamped_at=message.stamped_at,
            at=moment,
            refuse_when_full=False,
        )
        await commit_applied(ctx, session)


async def keep_plaintext_dm(ctx: Context, session: AsyncSession, note: RemoteNote, author: Account) -> None:
    """A direct message from software without E2EE: refused, unless the instance keeps them in
    the separate "not end-to-end encrypted" box (``[e2ee] accept_plaintext_dms``)."""
    from server import e2ee
    from server.models import PlaintextMessage

    fed = ctx.fed
    if not fed.config.get("e2ee", "accept_plaintext_dms"):
        raise Ignored("direct_message_refused")
    recipients: list[Account] = []
    for uri in dict.fromkeys([*note.to, *note.cc, *note.mentions]):
        account = await local_account_by_uri(session, fed.config.base_url, uri)
        if account is not None and not account.is_group and account not in recipients:
            recipients.append(account)
    kept = 0
    for recipient in recipients:
        if await e2ee.refusal(session, author, recipient) is not None:
            continue
        exists = await session.scalar(
            select(PlaintextMessage.id).where(PlaintextMessage.uri == f"{note.id}#{recipient.id}")
        )
        if exists is None:
            session.add(
                PlaintextMessage(
                    id=new_id(),
                    uri=f"{note.id}#{recipient.id}",
                    recipient_account_id=recipient.id,
                    sender_account_id=author.id,
                    content=note.content_html,
                    created_at=note.published or now(),
                )
            )
            kept += 1
    if not kept:
        raise Ignored("direct_message_refused")
    await commit_applied(ctx, session)


async def on_create(ctx: Context, incoming: Incoming, raw: dict[str, Any]) -> None:
    from server import outbox

    if is_encrypted_message(raw):
        await on_encrypted_message(ctx, raw)
        return
    obj = incoming.object
    if obj is None or obj.get("type") not in NOTE_TYPES:
        raise Ignored("create_of_unsupported_object")
    fed = ctx.fed
    async with fed.sessions() as session:
        group = await _group_of(session, fed, obj, incoming)
        followers = [group.followers_url] if group is not None and group.followers_url else []
        note = parse_note(
            obj, followers_collections=[*followers, *([ctx.actor.followers_url] if ctx.actor.followers_url else [])]
        )
        author = await session.get(Account, ctx.actor.id)
        assert author is not None
        if note.attributed_to != author.uri:
            raise Ignored("author_is_not_actor")
        if note.visibility == "direct" and group is None:
            await keep_plaintext_dm(ctx, session, note, author)
            return
        if group is not None and group.local:
            view = await groups.load_group(session, group.id)
            if await groups.is_banned(session, group.id, author.id) or not await groups.is_member(
                session, group.id, author.id
            ):
                raise Ignored("not_a_member_of_group")
            if view.group.members_only and note.visibility == "public":
                raise Ignored("public_post_in_members_only_group")
            status = await store_note(session, fed, note, author, group=group)
            # FEP-1b12: the group announces the activity exactly as received.
            await outbox.group_announce(session, fed, group, ctx.raw_inner or raw, members_only=view.group.members_only)
            await commit_applied(ctx, session)
            return
        if group is not None and not group.local:
            if ctx.announced_by is None or ctx.announced_by.id != group.id:
                # Posts to a remote group reach us through its Announce; a copy sent directly
                # by the author is still kept when it concerns us (mentions, replies).
                if not await _concerns_us(session, fed, author, note):
                    raise Ignored("group_post_not_announced")
            elif not await _has_local_member(session, group.id):
                raise Ignored("group_without_local_members")
        elif not await _concerns_us(session, fed, author, note):
            raise Ignored("not_addressed_to_anyone_here")
        status = await store_note(session, fed, note, author, group=group)
        await commit_applied(ctx, session)
    if status is not None and status.in_reply_to_uri:
        await outbox.schedule_thread_fetch(fed, status.in_reply_to_uri)


async def _has_local_member(session: AsyncSession, group_id: int) -> bool:
    found = await session.scalar(
        select(Follow.id)
        .join(Account, Account.id == Follow.account_id)
        .where(Follow.target_account_id == group_id, Follow.state == "accepted", Account.domain == "")
        .limit(1)
    )
    return found is not None


async def _feed_push_hint(ctx: Context, url: str) -> None:
    """A publisher's ``Update`` of its decision feed's changes collection (docs/moderation.md,
    push hint): subscriptions with exactly that changes URL sync soon. Nothing is fetched here,
    and only a URL on the sender's own origin counts (no one can make us pull elsewhere)."""
    from server import subscriptions

    if host_of(url) != host_of(ctx.actor.uri or "") or not url.startswith(("https://", "http://")):
        raise Ignored("feed_hint_from_another_origin")
    if not await subscriptions.push_hint(ctx.fed.sessions, url):
        raise Ignored("feed_hint_for_no_subscription")


async def on_update(ctx: Context, incoming: Incoming, raw: dict[str, Any]) -> None:
    obj = incoming.object
    fed = ctx.fed
    if obj is None and isinstance(raw.get("object"), str):
        await _feed_push_hint(ctx, raw["object"])
        return
    if obj is None:
        raise Ignored("update_without_object")
    if obj.get("id") == ctx.actor.uri:
        await resolve_actor(fed, ctx.actor.uri or "", refresh=True)
        return
    if obj.get("type") not in NOTE_TYPES:
        raise Ignored("update_of_unsupported_object")
    async with fed.sessions() as session:
        status = await _status_by_uri(session, fed, str(obj.get("id")))
        if status is None or status.local or status.account_id != ctx.actor.id:
            raise Ignored("update_of_unknown_post")
        note = parse_note(obj)
        if status.deleted_at is not None:
            raise Ignored("update_of_deleted_post")
        moment = note.updated or now()
        await statuses.record_version(
            session,
            status,
            text=note.text,
            content=note.content_html,
            spoiler_text=note.summary or "",
            sensitive=bool(note.sensitive),
            at=moment,
        )
        status.text, status.content = note.text, note.content_html
        status.spoiler_text = note.summary or ""
        status.sensitive = bool(note.sensitive or status.spoiler_text.strip())
        status.topics = known_topics(fed.config, note.topics)
        status.edited_at = moment
        if ctx.announced_by is None and status.group_id is not None:
            await _reannounce_if_local_group(session, ctx, status.group_id, raw)
        await commit_applied(ctx, session)


async def _reannounce_if_local_group(session: AsyncSession, ctx: Context, group_id: int, raw: dict[str, Any]) -> None:
    from server import outbox

    group = await session.get(Account, group_id)
    if group is not None and group.local:
        members_only = bool(await session.scalar(select(Group.members_only).where(Group.account_id == group.id)))
        await outbox.group_announce(session, ctx.fed, group, raw, members_only=members_only)


async def on_delete(ctx: Context, incoming: Incoming, raw: dict[str, Any]) -> None:
    fed = ctx.fed
    target = incoming.object_id
    async with fed.sessions() as session:
        if target == ctx.actor.uri:
            account = await session.get(Account, ctx.actor.id)
            assert account is not None
            account.deleted_at = now()
            for key_id in [k for k, v in fed.keys.items() if v[2] == account.id]:
                fed.keys.pop(key_id, None)
            await session.execute(
                update(Status)
                .where(Status.account_id == account.id, Status.deleted_at.is_(None))
                .values(deleted_at=now())
            )
            await session.execute(
                delete(Follow).where((Follow.account_id == account.id) | (Follow.target_account_id == account.id))
            )
            await commit_applied(ctx, session)
            return
        status = await _status_by_uri(session, fed, target)
        if status is None or status.deleted_at is not None:
            raise Ignored("delete_of_unknown_post")
        group_id = status.group_id
        if status.account_id != ctx.actor.id:
            # Lemmy moderators delete others' posts in a group (research §2.4, Moderators).
            group = await session.get(Account, group_id) if group_id is not None else None
            if group is None or not group.local:
                raise Ignored("delete_by_non_author")
            await _require_moderator(session, group, ctx.actor)
        await statuses.delete_status(session, status)
        if ctx.announced_by is None and group_id is not None:
            await _reannounce_if_local_group(session, ctx, group_id, raw)
        await commit_applied(ctx, session)


async def on_like(ctx: Context, incoming: Incoming, raw: dict[str, Any]) -> None:
    fed = ctx.fed
    async with fed.sessions() as session:
        status = await _status_by_uri(session, fed, incoming.object_id)
        if status is None or status.deleted_at is not None:
            raise Ignored("like_of_unknown_post")
        if not status.local and ctx.announced_by is None:
            group = await session.get(Account, status.group_id) if status.group_id is not None else None
            if group is None or not group.local:
                raise Ignored("like_of_remote_post")
        await statuses.favourite(session, ctx.actor.id, status)
        row = await session.scalar(
            select(Favourite).where(Favourite.account_id == ctx.actor.id, Favourite.status_id == status.id)
        )
        if row is not None:
            row.uri = incoming.id
        if ctx.announced_by is None and status.group_id is not None:
            await _reannounce_if_local_group(session, ctx, status.group_id, raw)
        await commit_applied(ctx, session)


async def on_announce(ctx: Context, incoming: Incoming, raw: dict[str, Any]) -> None:
    fed = ctx.fed
    if ctx.actor.is_group:
        inner_raw = raw.get("object")
        if isinstance(inner_raw, str):
            # Announce by id (Mbin boosts): the object comes from its own origin, id checked.
            inner_raw = await fed.transport.fetch_json(inner_raw)
        if isinstance(inner_raw, dict) and inner_raw.get("type") in NOTE_TYPES:
            # Lemmy's Announce(Page): the group redistributes the object itself.
            author_uri = inner_raw.get("attributedTo")
            if isinstance(author_uri, list):
                author_uri = next((a for a in author_uri if isinstance(a, str)), None)
            if not isinstance(author_uri, str):
                raise Ignored("announced_object_without_author")
            author = await resolve_actor(fed, author_uri)
            if author.suspended_at is not None:
                raise Ignored("actor_suspended")
            wrapped = {
                "id": f"{inner_raw.get('id')}#create",
                "type": "Create",
                "actor": author_uri,
                "object": inner_raw,
            }
            sub = Context(fed=fed, item=ctx.item, document=ctx.document, actor=author, announced_by=ctx.actor)
            sub.raw_inner = wrapped
            await on_create(sub, parse_activity_loose(wrapped, incoming), wrapped)
            return
        if not isinstance(inner_raw, dict):
            raise Ignored("announce_without_object")
        inner = parse_activity(inner_raw)
        inner_actor_uri = inner.actor
        inner_actor = await resolve_actor(fed, inner_actor_uri)
        sub = Context(fed=fed, item=ctx.item, document=ctx.document, actor=inner_actor, announced_by=ctx.actor)
        sub.raw_inner = inner_raw
        await apply(sub, inner, inner_raw)
        return
    # A person's boost.
    async with fed.sessions() as session:
        booster_followed = await session.scalar(
            select(Follow.id)
            .join(Account, Account.id == Follow.account_id)
            .where(Follow.target_account_id == ctx.actor.id, Follow.state == "accepted", Account.domain == "")
            .limit(1)
        )
        original = await _status_by_uri(session, fed, incoming.object_id)
        if original is None and booster_followed is None:
            raise Ignored("boost_not_relevant")
    if original is None:
        if incoming.object_id is None:
            raise Ignored("boost_without_object")
        document = await fed.transport.fetch_json(incoming.object_id)
        if document.get("type") not in NOTE_TYPES:
            raise Ignored("boost_of_unsupported_object")
        note = parse_note(document)
        if note.attributed_to is None:
            raise Ignored("boost_object_without_author")
        author = await resolve_actor(fed, note.attributed_to)
        async with fed.sessions() as session:
            original = await store_note(session, fed, note, author, group=None)
            await session.commit()
    if original is None or original.visibility not in ("public", "unlisted"):
        raise Ignored("boost_of_private_post")
    async with fed.sessions() as session:
        if await session.scalar(select(Status.id).where(Status.uri == incoming.id)) is not None:
            return
        moment = now()
        session.add(
            Status(
                id=new_id(),
                account_id=ctx.actor.id,
                reblog_of_id=original.id,
                visibility="public" if AS_PUBLIC in incoming.to else "unlisted",
                uri=incoming.id,
                local=False,
                replies_count=0,
                reblogs_count=0,
                favourites_count=0,
                created_at=moment,
            )
        )
        await session.execute(
            update(Status).where(Status.id == original.id).values(reblogs_count=Status.reblogs_count + 1)
        )
        if original.local:
            await notify(
                session,
                recipient_id=original.account_id,
                from_account_id=ctx.actor.id,
                type="reblog",
                status_id=original.id,
            )
        await commit_applied(ctx, session)


def parse_activity_loose(wrapped: dict[str, Any], outer: Incoming) -> Incoming:
    """Parse a synthesised Create around an announced object, keeping the outer addressing."""
    try:
        return parse_activity(wrapped)
    except InvalidActivity:
        raise Ignored("announced_object_unparsable") from None


async def on_block(ctx: Context, incoming: Incoming, raw: dict[str, Any]) -> None:
    fed = ctx.fed
    async with fed.sessions() as session:
        target = await _local_by_uri(session, fed, incoming.object_id)
        if target is not None and incoming.target is None:
            # A remote person blocks a local one: sever follows both ways, remember the block.
            await relationships.sever_follow(session, ctx.actor.id, target.id)
            await relationships.sever_follow(session, target.id, ctx.actor.id)
            exists = await session.scalar(
                select(Block.id).where(Block.account_id == ctx.actor.id, Block.target_account_id == target.id)
            )
            if exists is None:
                session.add(Block(id=new_id(), account_id=ctx.actor.id, target_account_id=target.id, created_at=now()))
            await commit_applied(ctx, session)
            return
        group = await _local_by_uri(session, fed, incoming.target)
        if group is None or not group.is_group:
            raise Ignored("block_not_concerning_us")
        await _require_moderator(session, group, ctx.actor)
        victim = await account_by_uri(session, incoming.object_id or "")
        if victim is None:
            raise Ignored("block_of_unknown_account")
        view = await groups.load_group(session, group.id)
        await groups.ban(session, view, victim, by=ctx.actor, reason=(incoming.summary or "")[:1000])
        await _announce_moderation(session, ctx, group, raw)
        await commit_applied(ctx, session)


async def _require_moderator(session: AsyncSession, group: Account, actor: Account) -> None:
    role = await session.scalar(
        select(GroupRole.role).where(GroupRole.group_id == group.id, GroupRole.account_id == actor.id)
    )
    if role is None:
        raise Ignored("moderation_by_non_moderator")


async def _announce_moderation(session: AsyncSession, ctx: Context, group: Account, raw: dict[str, Any]) -> None:
    from server import outbox

    members_only = bool(await session.scalar(select(Group.members_only).where(Group.account_id == group.id)))
    await outbox.group_announce(session, ctx.fed, group, raw, members_only=members_only)


async def _group_moderation_undo_block(session: AsyncSession, ctx: Context, inner: Incoming) -> None:
    from server.models import GroupBan

    group = await _local_by_uri(session, ctx.fed, inner.target)
    if group is None or not group.is_group:
        raise Ignored("undo_block_not_concerning_us")
    await _require_moderator(session, group, ctx.actor)
    victim = await account_by_uri(session, inner.object_id or "")
    if victim is None:
        raise Ignored("undo_block_unknown_account")
    await session.execute(delete(GroupBan).where(GroupBan.group_id == group.id, GroupBan.account_id == victim.id))


async def on_remove(ctx: Context, incoming: Incoming, raw: dict[str, Any]) -> None:
    """Lemmy/FEP-1b12 moderation: a moderator removes a post from a group."""
    fed = ctx.fed
    async with fed.sessions() as session:
        status = await _status_by_uri(session, fed, incoming.object_id)
        if status is None or status.group_id is None or status.deleted_at is not None:
            raise Ignored("remove_of_unknown_post")
        group = await session.get(Account, status.group_id)
        assert group is not None
        if group.local:
            await _require_moderator(session, group, ctx.actor)
        elif ctx.announced_by is None or ctx.announced_by.id != group.id:
            raise Ignored("remove_not_announced_by_group")
        await statuses.delete_status(session, status)
        if group.local:
            await _announce_moderation(session, ctx, group, raw)
        await commit_applied(ctx, session)


async def _set_lock(
    session: AsyncSession, ctx: Context, incoming: Incoming, raw: dict[str, Any], *, locked: bool
) -> None:
    """Lemmy's Lock / Undo(Lock) of a post in a group, by one of the group's moderators."""
    status = await _status_by_uri(session, ctx.fed, incoming.object_id)
    if status is None or status.group_id is None or status.deleted_at is not None:
        raise Ignored("lock_of_unknown_post")
    group = await session.get(Account, status.group_id)
    assert group is not None
    if group.local:
        await _require_moderator(session, group, ctx.actor)
    elif ctx.announced_by is None or ctx.announced_by.id != group.id:
        raise Ignored("lock_not_announced_by_group")
    status.replies_locked = locked
    if group.local:
        await _announce_moderation(session, ctx, group, raw)


async def on_lock(ctx: Context, incoming: Incoming, raw: dict[str, Any]) -> None:
    async with ctx.fed.sessions() as session:
        await _set_lock(session, ctx, incoming, raw, locked=True)
        await commit_applied(ctx, session)


async def on_move(ctx: Context, incoming: Incoming, raw: dict[str, Any]) -> None:
    """Mastodon's Move: valid only if the new actor lists the old one in ``alsoKnownAs``."""
    fed = ctx.fed
    if incoming.object_id != ctx.actor.uri or not incoming.target:
        raise Ignored("move_of_another_actor")
    new = await resolve_actor(fed, incoming.target, refresh=True)
    if ctx.actor.uri not in (new.also_known_as or []):
        raise Ignored("move_target_does_not_alias")
    async with fed.sessions() as session:
        await session.execute(update(Account).where(Account.id == ctx.actor.id).values(moved_to_account_id=new.id))
        await commit_applied(ctx, session)


async def on_flag(ctx: Context, incoming: Incoming, raw: dict[str, Any]) -> None:
    """A remote report: one report per local account it names, each with that account's posts
    (Mastodon's rule), unless reports from the sender's domain are rejected."""
    from server.reports import notify_staff_of_report

    fed = ctx.fed
    objects = raw.get("object")
    uris = [objects] if isinstance(objects, str) else [o for o in objects or [] if isinstance(o, str)]
    async with fed.sessions() as session:
        from server.domains import domain_block

        block = await domain_block(session, host_of(ctx.actor.uri or ""))
        if block is not None and block.reject_reports:
            raise Ignored("reports_rejected_from_domain")
        targets: dict[int, Account] = {}
        grouped: dict[int, list[int]] = {}
        for uri in uris[:50]:
            account = await _local_by_uri(session, fed, uri)
            if account is not None:
                targets.setdefault(account.id, account)
                grouped.setdefault(account.id, [])
                continue
            status = await _status_by_uri(session, fed, uri)
            if status is not None and status.local:
                author = targets.get(status.account_id) or await session.get(Account, status.account_id)
                if author is not None:
                    targets.setdefault(author.id, author)
                    ids = grouped.setdefault(author.id, [])
                    if status.id not in ids:
                        ids.append(status.id)
        if not targets:
            raise Ignored("flag_of_nothing_here")
        comment = raw.get("content")
        revealed = raw.get("e2ee:revealed")
        has_revealed = isinstance(revealed, list) and bool(revealed)
        moment = now()
        for n, (account_id, target) in enumerate(targets.items()):
            report = Report(
                id=new_id(),
                uri=incoming.id if n == 0 else f"{incoming.id}#{account_id}",
                reporter_account_id=None,
                origin_domain=host_of(ctx.actor.uri or ""),
                target_account_id=target.id,
                status_ids=grouped[account_id],
                comment=html_to_text(comment)[:5000] if isinstance(comment, str) else "",
                category="e2ee_message" if has_revealed else "other",
                state="open",
                created_at=moment,
                updated_at=moment,
            )
            session.add(report)
            await session.flush()
            if has_revealed:
                assert isinstance(revealed, list)
                await _file_revealed(session, fed, report, target, revealed)
            await notify_staff_of_report(session, report)
        await commit_applied(ctx, session)


async def _file_revealed(
    session: AsyncSession, fed: Federation, report: Report, target: Account, revealed: list[Any]
) -> None:
    """Messages a remote reporter revealed about our member (a forwarded E2EE report): each is
    checked against our own stamp, made when our member sent it; kept sealed, with the result."""
    from server import e2ee
    from server.entities import account_uri
    from server.errors import Unprocessable

    target_uri = account_uri(fed.config, target)
    for i, item in enumerate(revealed[:20]):
        try:
            parsed, franking_key, tag, at = e2ee.parse_revealed(item, f"e2ee:revealed[{i}]")
        except Unprocessable:
            continue
        if parsed.message.sender != target_uri:
            continue  # only messages our reported member sent can carry our stamp
        verified = await e2ee.verify_revealed(session, parsed, franking_key, tag, at)
        e2ee.keep_revealed(session, fed.config, report.id, parsed, verified=verified, at=now())


HANDLERS: Mapping[str, Any] = {
    "Follow": on_follow,
    "Accept": on_accept,
    "Reject": on_reject,
    "Undo": on_undo,
    "Create": on_create,
    "Update": on_update,
    "Delete": on_delete,
    "Announce": on_announce,
    "Like": on_like,
    "Block": on_block,
    "Remove": on_remove,
    "Lock": on_lock,
    "Move": on_move,
    "Flag": on_flag,
}
