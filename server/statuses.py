"""Posts: who may see them, and creating, editing, deleting, favouriting and boosting them.

Design note
-----------
Visibility is one SQL predicate, :func:`visible_clause`, used by every read path (show,
context, timelines, search, notifications), so a rule is written once. A status is visible
to a viewer when all of these hold:

* it is not deleted, and neither its author nor its group is suspended or deleted;
* it is ``public``/``unlisted``, or the viewer is its author, or (``private``) the viewer
  follows the author — for a group post: is a member of the group — or is mentioned in it;
* if it is in a ``members_only`` group, the viewer is a member (or the author). This rule
  beats the mention rule: a members-only post is never shown outside the group;
* neither the viewer nor the author blocks the other;
* it is not hidden pending review (``hidden_at``, server/safety.py), unless the viewer is its
  author or staff.

A boost (``reblog_of_id``) is visible when the boost row is and its original is.

Writes keep the denormalised counters (``statuses_count``, ``replies_count``,
``reblogs_count``, ``favourites_count``) in step with SQL ``UPDATE ... SET n = n + 1`` in the
same transaction, never read-modify-write in Python. Deleting is soft (``deleted_at``), so
threads keep their shape; boosts of a deleted post are deleted with it.

What it refuses: ``direct`` visibility (private messages are end-to-end encrypted only),
media and polls (not supported yet), posting in a group one is not an unbanned member of,
more than one group per post, and boosting anything that is not public or unlisted.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Select,
    and_,
    bindparam,
    case,
    delete,
    exists,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlalchemy.orm.attributes import set_committed_value

from federation.content import MentionTarget, RenderedContent, extract_mentions, render_markdown
from server import groups
from server.config import Config
from server.entities import account_url, acct
from server.errors import Forbidden, NotFound, Unprocessable
from server.ids import new_id
from server.models import (
    Account,
    Block,
    Favourite,
    Follow,
    Group,
    GroupBan,
    Mention,
    Mute,
    Notification,
    Status,
    StatusEdit,
    StatusIdempotencyKey,
    StatusTag,
    Tag,
    User,
)
from server.notify import notify
from server.web import now

VISIBILITIES = ("public", "unlisted", "private")
PUBLICISH = ("public", "unlisted")
MAX_SPOILER_CHARS = 1000
IDEMPOTENCY_SECONDS = 3600
DIRECT_REFUSED = (
    "Plaintext direct messages are not supported: Hearthside private messages are end-to-end "
    "encrypted (see the E2EE messaging feature)"
)
REPLY_NOT_FOUND = "The post you are trying to reply to does not appear to exist."
_LANGUAGE = re.compile(r"^[a-z]{2,3}(?:-[A-Za-z0-9]{2,8})?$")


# ---------------------------------------------------------------------------- visibility


def available(account_id: Any) -> ColumnElement[bool]:
    """``account_id`` names an account that is neither suspended nor deleted.

    A correlated ``NOT EXISTS`` on the primary key: one index probe per candidate row, so a
    page query stays cheap however many accounts exist (a ``NOT IN`` list would scan them).
    """
    other = aliased(Account)  # never auto-correlated with an Account the outer query joins
    return ~exists().where(other.id == account_id, or_(other.suspended_at.is_not(None), other.deleted_at.is_not(None)))


def followed_ids(viewer_id: int) -> Select[Any]:
    """Accounts (people and groups) ``viewer_id`` follows or is a member of: a subquery."""
    return select(Follow.target_account_id).where(Follow.account_id == viewer_id, Follow.state == "accepted")


def _members_only_groups() -> Select[Any]:
    return select(Group.account_id).where(Group.members_only.is_(True))


def blocked_ids(viewer_id: int | ColumnElement[Any]) -> tuple[Select[Any], Select[Any]]:
    """Subqueries of accounts the viewer blocks and accounts that block the viewer.

    ``viewer_id`` may be a bound parameter, for statements built once (the group timeline).
    Written on the tables' columns, not ORM attributes, so such statements stay Core-only.
    """
    blocks = Block.__table__.c
    return (
        select(blocks.target_account_id).where(blocks.account_id == viewer_id),
        select(blocks.account_id).where(blocks.target_account_id == viewer_id),
    )


def muted_ids(viewer_id: int | ColumnElement[Any], moment: datetime | ColumnElement[Any]) -> Select[Any]:
    """Subquery of accounts the viewer mutes (unexpired mutes); parameters allowed as above."""
    mutes = Mute.__table__.c
    return select(mutes.target_account_id).where(
        mutes.account_id == viewer_id, or_(mutes.expires_at.is_(None), mutes.expires_at > moment)
    )


def visible_clause(viewer_id: int | None) -> ColumnElement[bool]:
    """The predicate "this status row may be shown to ``viewer_id``" (see the module note).

    Boost rows are checked as rows; whether their original is visible is checked separately
    (:func:`load_visible`, and the renderer for pages).
    """
    s = Status
    conditions: list[ColumnElement[bool]] = [
        s.deleted_at.is_(None),
        available(s.account_id),
        or_(s.group_id.is_(None), available(s.group_id)),
    ]
    if viewer_id is None:
        conditions.append(s.hidden_at.is_(None))
        conditions.append(s.visibility.in_(PUBLICISH))
        conditions.append(or_(s.group_id.is_(None), s.group_id.not_in(_members_only_groups())))
        return and_(*conditions)
    followed = followed_ids(viewer_id)
    conditions.append(
        or_(
            s.account_id == viewer_id,
            s.visibility.in_(PUBLICISH),
            and_(s.group_id.is_(None), s.account_id.in_(followed)),
            s.group_id.in_(followed),
            exists().where(Mention.status_id == s.id, Mention.account_id == viewer_id),
        )
    )
    conditions.append(
        or_(
            s.group_id.is_(None),
            s.account_id == viewer_id,
            s.group_id.not_in(_members_only_groups()),
            s.group_id.in_(followed),
        )
    )
    # Hidden pending review (server/safety.py): its author and staff only.
    conditions.append(or_(s.hidden_at.is_(None), s.account_id == viewer_id, _is_staff(viewer_id)))
    blocking, blocked_by = blocked_ids(viewer_id)
    conditions.append(s.account_id.not_in(blocking))
    conditions.append(s.account_id.not_in(blocked_by))
    return and_(*conditions)


def _is_staff(viewer_id: int) -> ColumnElement[bool]:
    return exists().where(User.account_id == viewer_id, User.role.in_(("admin", "moderator")))


async def load_visible(session: AsyncSession, status_id: int, viewer_id: int | None) -> Status:
    """The status if ``viewer_id`` may see it (a boost: and its original); else 404."""
    status = (
        await session.execute(select(Status).where(Status.id == status_id, visible_clause(viewer_id)))
    ).scalar_one_or_none()
    if status is None:
        raise NotFound("Record not found")
    if status.reblog_of_id is not None:
        await load_visible(session, status.reblog_of_id, viewer_id)
    return status


# ---------------------------------------------------------------------------- content


@dataclass(frozen=True, slots=True)
class Draft:
    """What a client asked to post, validated for shape by the API layer."""

    text: str
    spoiler_text: str = ""
    sensitive: bool = False
    visibility: str = "public"
    language: str | None = None
    in_reply_to_id: int | None = None
    group_id: int | None = None
    topics: tuple[str, ...] = ()  # trigger topic ids, checked against the taxonomy (server.topics)


def check_visibility(value: str) -> str:
    if value == "direct":
        raise Unprocessable(DIRECT_REFUSED)
    if value not in VISIBILITIES:
        raise Unprocessable(f"visibility: must be one of {', '.join(VISIBILITIES)}")
    return value


def check_language(value: str | None) -> str | None:
    """An ISO 639 code (``en``, ``pt-BR``) or None; anything else is a 422."""
    if value is None or value == "":
        return None
    if not _LANGUAGE.match(value):
        raise Unprocessable("language: must be an ISO 639 language code such as en or pt-BR")
    return value


def check_text(config: Config, text: str | None) -> str:
    if text is None or not text.strip():
        raise Unprocessable("status: can't be blank (media attachments are not supported yet)")
    limit = config.get("instance", "max_post_chars")
    if len(text) > limit:
        raise Unprocessable(f"status: longer than {limit} characters")
    return text


def tag_url(config: Config, name: str) -> str:
    return f"{config.base_url}/tags/{quote(name, safe='')}"


def status_uri(config: Config, author: Account, status_id: int, *, reblog: bool = False) -> str:
    base = f"{config.base_url}/users/{author.username}/statuses/{status_id}"
    return base + "/activity" if reblog else base


def status_url(config: Config, author: Account, status_id: int) -> str:
    return f"{config.base_url}/@{author.username}/{status_id}"


def _is_local_domain(config: Config, domain: str | None) -> bool:
    if domain is None:
        return True
    host = config.domain.lower()
    return domain in (host, host.split(":")[0])


async def render_content(session: AsyncSession, config: Config, text: str) -> tuple[RenderedContent, list[Account]]:
    """Render member Markdown; mentions resolve to local, available accounts (one query)."""
    wanted: set[str] = set()
    if "@" in text or "&" in text:  # else no mention can exist ("&#64;" decodes to "@"): skip a parse
        wanted = {username.lower() for username, domain in extract_mentions(text) if _is_local_domain(config, domain)}
    found: dict[str, Account] = {}
    if wanted:
        rows = await session.execute(
            select(Account).where(
                Account.username_lower.in_(wanted),
                Account.domain == "",
                Account.suspended_at.is_(None),
                Account.deleted_at.is_(None),
            )
        )
        found = {a.username_lower: a for a in rows.scalars()}

    def resolve(username: str, domain: str | None) -> MentionTarget | None:
        if not _is_local_domain(config, domain):
            return None
        account = found.get(username.lower())
        if account is None:
            return None
        return MentionTarget(account.id, account.username, acct(account), account_url(config, account))

    rendered = render_markdown(text, resolve_mention=resolve, tag_url=lambda name: tag_url(config, name))
    by_id = {a.id: a for a in found.values()}
    return rendered, [by_id[m.account_id] for m in rendered.mentions]


async def _save_tags(session: AsyncSession, status_id: int, rendered: RenderedContent) -> None:
    # Tag names are at most 100 characters as written; NFKC can lengthen a few (ligatures).
    names = [name for name in rendered.tags if len(name) <= 100]
    if not names:
        return
    existing = {t.name: t.id for t in (await session.execute(select(Tag).where(Tag.name.in_(names)))).scalars()}
    created = False
    for name, display in zip(rendered.tags, rendered.tag_display, strict=True):
        if name not in existing and len(name) <= 100:
            existing[name] = new_id()
            session.add(Tag(id=existing[name], name=name, display_name=display[:100]))
            created = True
    if created:  # without relationships the unit of work does not order these inserts by FK
        await session.flush()
    session.add_all([StatusTag(status_id=status_id, tag_id=existing[name]) for name in names])
    await session.flush()


async def _bump(session: AsyncSession, model: type[Account] | type[Status], row_id: int, **deltas: int) -> None:
    """``UPDATE ... SET n = n + delta`` (never below zero) for counters on one row."""
    values = {
        name: case((getattr(model, name) + delta < 0, 0), else_=getattr(model, name) + delta)
        for name, delta in deltas.items()
    }
    await session.execute(update(model).where(model.id == row_id).values(**values))


async def refresh_counts(session: AsyncSession, status: Status) -> None:
    await session.refresh(status, ["replies_count", "reblogs_count", "favourites_count"])


async def _members_among(session: AsyncSession, group_id: int, account_ids: list[int]) -> set[int]:
    if not account_ids:
        return set()
    rows = await session.execute(
        select(Follow.account_id).where(
            Follow.target_account_id == group_id, Follow.state == "accepted", Follow.account_id.in_(account_ids)
        )
    )
    return {r[0] for r in rows}


async def _notify_mentioned(session: AsyncSession, status: Status, accounts: list[Account], members_only: bool) -> None:
    """Mention notifications for people who can see the post (a members-only post: members)."""
    people = [a for a in accounts if not a.is_group and a.id != status.account_id]
    if members_only and status.group_id is not None:
        allowed = await _members_among(session, status.group_id, [a.id for a in people])
        people = [a for a in people if a.id in allowed]
    for person in people:
        await notify(
            session, recipient_id=person.id, from_account_id=status.account_id, type="mention", status_id=status.id
        )


# ---------------------------------------------------------------------------- create


def _choose_group(draft: Draft, parent: Status | None, mentioned: list[Account]) -> int | None:
    """The one group a post goes to: its parent's, or the mentioned or named one."""
    if parent is not None:
        if draft.group_id is not None and draft.group_id != parent.group_id:
            raise Unprocessable("group_id: a reply stays in the group of the post it replies to")
        return parent.group_id
    chosen = {a.id for a in mentioned if a.is_group}
    if draft.group_id is not None:
        chosen.add(draft.group_id)
    if len(chosen) > 1:
        raise Unprocessable("status: a post can go to one group only, but it names several groups")
    return next(iter(chosen), None)


@dataclass(frozen=True, slots=True)
class NewStatus:
    """A post just added, with the accounts its rendering needs (fresh, counters included)."""

    status: Status
    author: Account
    group: Account | None


_GROUP_ID = bindparam("group_id", type_=BigInteger)
_AUTHOR_ID = bindparam("author_id", type_=BigInteger)
_Author = aliased(Account, name="author")
_GroupAccount = aliased(Account, name="posting_group")

# Statements of the create path are built once: building SQL expressions costs more Python
# than SQLite takes to run them, and each statement here replaced two or three queries.
_POSTING_CONTEXT = (
    select(
        _Author,
        _GroupAccount,
        Group,
        select(Follow.state)
        .where(Follow.account_id == _Author.id, Follow.target_account_id == _GROUP_ID)
        .scalar_subquery()
        .label("membership"),
        exists().where(GroupBan.group_id == _GROUP_ID, GroupBan.account_id == _Author.id).label("banned"),
    )
    .select_from(_Author)
    .outerjoin(_GroupAccount, _GroupAccount.id == _GROUP_ID)
    .outerjoin(Group, Group.account_id == _GroupAccount.id)
    .where(_Author.id == _AUTHOR_ID)
)
_INSERT_STATUS = insert(Status.metadata.tables["statuses"])
_accounts = Account.metadata.tables["accounts"].c
_COUNT_POST = (
    update(Account.metadata.tables["accounts"])
    .where(_accounts.id == _AUTHOR_ID)
    .values(
        statuses_count=_accounts.statuses_count + 1,
        last_status_at=bindparam("moment", type_=_accounts.last_status_at.type),
    )
    .returning(_accounts.statuses_count)
)


async def create_status(
    session: AsyncSession,
    config: Config,
    *,
    author_id: int,
    draft: Draft,
    application_id: int | None = None,
) -> NewStatus:
    """Validate and add a post (counters, mentions, tags, notifications); the caller commits.

    One query loads the author and, when the draft names a group, the group with the
    author's membership and ban; a post without mentions or tags then costs that query, the
    insert and the counter update.
    """
    text = check_text(config, draft.text)
    visibility = check_visibility(draft.visibility)
    language = check_language(draft.language)
    if len(draft.spoiler_text) > MAX_SPOILER_CHARS:
        raise Unprocessable(f"spoiler_text: longer than {MAX_SPOILER_CHARS} characters")
    context = (
        await session.execute(_POSTING_CONTEXT, {"author_id": author_id, "group_id": draft.group_id})
    ).one_or_none()
    if context is None:
        raise NotFound("Record not found")
    author, named_group, named_settings, membership, banned = context
    parent: Status | None = None
    if draft.in_reply_to_id is not None:
        try:
            parent = await load_visible(session, draft.in_reply_to_id, author.id)
            if parent.reblog_of_id is not None:
                parent = await load_visible(session, parent.reblog_of_id, author.id)
        except NotFound:
            raise NotFound(REPLY_NOT_FOUND) from None
        if parent.replies_locked:
            raise Forbidden("this thread is locked by the group's moderators")
    rendered, mentioned = await render_content(session, config, text)
    group_id = _choose_group(draft, parent, mentioned)
    members_only = False
    group: Account | None = None
    if group_id is not None:
        remote_group = named_group if group_id == draft.group_id else await session.get(Account, group_id)
        if remote_group is not None and not remote_group.local:
            # A remote group: membership is our follow, accepted by the group's server; its
            # closed groups approve followers manually and never address posts to Public.
            if remote_group.deleted_at is not None or not remote_group.is_group:
                raise NotFound("Record not found")
            if not await groups.is_member(session, group_id, author.id):
                raise Forbidden("join the group before posting in it")
            group = remote_group
            members_only = remote_group.locked
        else:
            if group_id == draft.group_id:
                view = groups.found_group(named_group, named_settings)
                groups.refuse_posting(view, banned=bool(banned), member=membership == "accepted")
            else:  # the group came from a mention or the parent post
                view = await groups.load_group(session, group_id)
                await groups.check_can_post(session, view, author.id)
            group = view.account
            members_only = view.group.members_only
        if members_only:
            visibility = "private"
    moment = now()
    status_id = new_id()
    row: dict[str, Any] = {
        "id": status_id,
        "account_id": author.id,
        "group_id": group_id,
        "in_reply_to_id": parent.id if parent else None,
        "in_reply_to_account_id": parent.account_id if parent else None,
        "thread_root_id": (parent.thread_root_id or parent.id) if parent else None,
        "reblog_of_id": None,
        "visibility": visibility,
        "text": text,
        "content": rendered.html,
        "spoiler_text": draft.spoiler_text,
        "topics": list(draft.topics),
        # An account a moderator marked sensitive posts sensitive (Mastodon's "sensitize").
        "sensitive": bool(draft.sensitive or draft.spoiler_text.strip() or author.sensitized_at is not None),
        "language": language,
        "uri": status_uri(config, author, status_id),
        "url": status_url(config, author, status_id),
        "local": True,
        "application_id": application_id,
        "replies_count": 0,
        "reblogs_count": 0,
        "favourites_count": 0,
        "replies_locked": False,
        "created_at": moment,
        "edited_at": None,
        "deleted_at": None,
    }
    await session.execute(_INSERT_STATUS, row)
    status = Status(**row)  # the row as inserted, for rendering (not added to the session)
    for account in mentioned:
        session.add(Mention(status_id=status_id, account_id=account.id))
    await _save_tags(session, status_id, rendered)
    counted = (await session.execute(_COUNT_POST, {"author_id": author.id, "moment": moment})).scalar_one()
    set_committed_value(author, "statuses_count", counted)
    set_committed_value(author, "last_status_at", moment)
    if parent is not None:
        await _bump(session, Status, parent.id, replies_count=1)
    await _notify_mentioned(session, status, mentioned, members_only)
    return NewStatus(status, author, group)


# ---------------------------------------------------------------------------- idempotency


def _key_digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


async def find_idempotent(session: AsyncSession, account_id: int, key: str) -> Status | None:
    """The live status an earlier request with this key created within the hour, if any."""
    since = now() - timedelta(seconds=IDEMPOTENCY_SECONDS)
    row = (
        await session.execute(
            select(Status)
            .join(StatusIdempotencyKey, StatusIdempotencyKey.status_id == Status.id)
            .where(
                StatusIdempotencyKey.account_id == account_id,
                StatusIdempotencyKey.key_digest == _key_digest(key),
                StatusIdempotencyKey.created_at > since,
                Status.deleted_at.is_(None),
            )
        )
    ).scalar_one_or_none()
    return row


async def remember_idempotent(session: AsyncSession, account_id: int, key: str, status_id: int) -> None:
    """Record the key (dropping this account's expired or stale ones); the caller commits.

    Two concurrent requests with one key collide on the unique constraint; the API layer
    retries the loser, which then finds the winner's status. Only a key that
    :func:`find_idempotent` would ignore (expired, or its post deleted) is replaced: deleting
    a live one would let a loser that looked before the winner committed post twice.
    """
    digest = _key_digest(key)
    since = now() - timedelta(seconds=IDEMPOTENCY_SECONDS)
    keys = StatusIdempotencyKey
    post_deleted = exists().where(Status.id == keys.status_id, Status.deleted_at.is_not(None))
    await session.execute(
        delete(keys).where(
            keys.account_id == account_id,
            or_(keys.created_at <= since, and_(keys.key_digest == digest, post_deleted)),
        )
    )
    session.add(
        StatusIdempotencyKey(
            id=new_id(), account_id=account_id, key_digest=digest, status_id=status_id, created_at=now()
        )
    )


# ---------------------------------------------------------------------------- edit


async def edit_status(
    session: AsyncSession,
    config: Config,
    status: Status,
    *,
    text: str,
    spoiler_text: str | None,
    sensitive: bool | None,
    language: str | None,
    topics: list[str] | None = None,
) -> Status:
    """Apply an edit by the author, keeping every version in ``status_edits``. ``topics``
    (already checked, None: unchanged) are replaced without making a version of their own."""
    if topics is not None and topics != list(status.topics or []):
        status.topics = topics
        status.edited_at = now()
    text = check_text(config, text)
    new_spoiler = status.spoiler_text if spoiler_text is None else spoiler_text
    if len(new_spoiler) > MAX_SPOILER_CHARS:
        raise Unprocessable(f"spoiler_text: longer than {MAX_SPOILER_CHARS} characters")
    new_language = status.language if language is None else check_language(language)
    new_sensitive = status.sensitive if sensitive is None else sensitive
    new_sensitive = bool(new_sensitive or new_spoiler.strip())
    if status.local:
        author = await session.get(Account, status.account_id)
        new_sensitive = new_sensitive or (author is not None and author.sensitized_at is not None)
    if (text, new_spoiler, new_sensitive, new_language) == (
        status.text,
        status.spoiler_text,
        status.sensitive,
        status.language,
    ):
        return status
    rendered, mentioned = await render_content(session, config, text)
    moment = now()
    await record_version(
        session, status, text=text, content=rendered.html, spoiler_text=new_spoiler, sensitive=new_sensitive, at=moment
    )
    status.text = text
    status.content = rendered.html
    status.spoiler_text = new_spoiler
    status.sensitive = new_sensitive
    status.language = new_language
    status.edited_at = moment

    before = {r[0] for r in await session.execute(select(Mention.account_id).where(Mention.status_id == status.id))}
    after = {a.id for a in mentioned}
    if before - after:
        await session.execute(
            delete(Mention).where(Mention.status_id == status.id, Mention.account_id.in_(before - after))
        )
    for account_id in after - before:
        session.add(Mention(status_id=status.id, account_id=account_id))
    await session.execute(delete(StatusTag).where(StatusTag.status_id == status.id))
    await session.flush()
    await _save_tags(session, status.id, rendered)

    members_only = False
    if status.group_id is not None:
        members_only = bool(
            (
                await session.execute(select(Group.members_only).where(Group.account_id == status.group_id))
            ).scalar_one_or_none()
        )
    await _notify_mentioned(session, status, [a for a in mentioned if a.id not in before], members_only)
    boosters = await session.execute(
        select(Status.account_id).where(Status.reblog_of_id == status.id, Status.deleted_at.is_(None)).distinct()
    )
    for (booster_id,) in boosters:
        await notify(
            session, recipient_id=booster_id, from_account_id=status.account_id, type="update", status_id=status.id
        )
    return status


async def record_version(
    session: AsyncSession, status: Status, *, text: str, content: str, spoiler_text: str, sensitive: bool, at: datetime
) -> None:
    """Keep an edit in ``status_edits``: the original first (version 0) if this is the first
    edit, then the new version. Local edits and remote ``Update``s share it."""
    has_history = (
        await session.execute(select(StatusEdit.id).where(StatusEdit.status_id == status.id).limit(1))
    ).first() is not None
    if not has_history:
        session.add(
            StatusEdit(
                id=new_id(),
                status_id=status.id,
                account_id=status.account_id,
                text=status.text,
                content=status.content,
                spoiler_text=status.spoiler_text,
                sensitive=status.sensitive,
                created_at=status.created_at,
            )
        )
    session.add(
        StatusEdit(
            id=new_id(),
            status_id=status.id,
            account_id=status.account_id,
            text=text,
            content=content,
            spoiler_text=spoiler_text,
            sensitive=sensitive,
            created_at=at,
        )
    )


# ---------------------------------------------------------------------------- delete


async def delete_status(session: AsyncSession, status: Status) -> None:
    """Soft-delete a post (or undo a boost); counters follow. The caller commits."""
    if status.reblog_of_id is not None:
        await _remove_reblog(session, status)
        return
    moment = now()
    status.deleted_at = moment
    await _bump(session, Account, status.account_id, statuses_count=-1)
    if status.in_reply_to_id is not None:
        await _bump(session, Status, status.in_reply_to_id, replies_count=-1)
    boosts = (
        await session.execute(select(Status).where(Status.reblog_of_id == status.id, Status.deleted_at.is_(None)))
    ).scalars()
    for boost in boosts:
        boost.deleted_at = moment
        await _bump(session, Account, boost.account_id, statuses_count=-1)
    await session.execute(delete(Notification).where(Notification.status_id == status.id))
    await session.flush()


# ---------------------------------------------------------------------------- favourites


async def favourite(session: AsyncSession, viewer_id: int, status: Status) -> None:
    """Favourite ``status`` (an original, never a boost row); idempotent. Caller commits."""
    found = await session.execute(
        select(Favourite.id).where(Favourite.account_id == viewer_id, Favourite.status_id == status.id)
    )
    if found.first() is not None:
        return
    session.add(Favourite(id=new_id(), account_id=viewer_id, status_id=status.id, created_at=now()))
    await session.flush()
    await _bump(session, Status, status.id, favourites_count=1)
    await notify(
        session, recipient_id=status.account_id, from_account_id=viewer_id, type="favourite", status_id=status.id
    )
    await refresh_counts(session, status)


async def has_favourited(session: AsyncSession, viewer_id: int, status_id: int) -> bool:
    found = await session.execute(
        select(Favourite.id).where(Favourite.account_id == viewer_id, Favourite.status_id == status_id)
    )
    return found.first() is not None


async def unfavourite(session: AsyncSession, viewer_id: int, status: Status) -> None:
    removed = await session.execute(
        delete(Favourite).where(Favourite.account_id == viewer_id, Favourite.status_id == status.id)
    )
    if removed.rowcount:  # type: ignore[attr-defined]
        await _bump(session, Status, status.id, favourites_count=-1)
        await session.execute(
            delete(Notification).where(
                Notification.type == "favourite",
                Notification.from_account_id == viewer_id,
                Notification.status_id == status.id,
            )
        )
    await refresh_counts(session, status)


# ---------------------------------------------------------------------------- boosts


async def find_reblog(session: AsyncSession, viewer_id: int, status_id: int) -> Status | None:
    return (
        await session.execute(
            select(Status)
            .where(Status.account_id == viewer_id, Status.reblog_of_id == status_id, Status.deleted_at.is_(None))
            .limit(1)
        )
    ).scalar_one_or_none()


async def reblog(
    session: AsyncSession,
    config: Config,
    booster: Account,
    original: Status,
    *,
    visibility: str = "public",
    application_id: int | None = None,
) -> Status:
    """Boost ``original`` (public or unlisted only); boosting twice returns the first boost."""
    visibility = check_visibility(visibility)
    if original.visibility not in PUBLICISH:
        raise Forbidden("This action is not allowed: only public and unlisted posts can be boosted")
    if original.group_id is not None:
        members_only = (
            await session.execute(select(Group.members_only).where(Group.account_id == original.group_id))
        ).scalar_one_or_none()
        if members_only:
            raise Forbidden("This action is not allowed: posts in a members-only group cannot be boosted")
    existing = await find_reblog(session, booster.id, original.id)
    if existing is not None:
        return existing
    moment = now()
    boost = Status(
        id=new_id(),
        account_id=booster.id,
        reblog_of_id=original.id,
        visibility=visibility,
        local=True,
        application_id=application_id,
        replies_count=0,
        reblogs_count=0,
        favourites_count=0,
        created_at=moment,
    )
    boost.uri = status_uri(config, booster, boost.id, reblog=True)
    session.add(boost)
    await session.flush()
    await _bump(session, Status, original.id, reblogs_count=1)
    await session.execute(
        update(Account)
        .where(Account.id == booster.id)
        .values(statuses_count=Account.statuses_count + 1, last_status_at=moment)
    )
    await notify(
        session, recipient_id=original.account_id, from_account_id=booster.id, type="reblog", status_id=original.id
    )
    await refresh_counts(session, original)
    return boost


async def _remove_reblog(session: AsyncSession, boost: Status) -> None:
    assert boost.reblog_of_id is not None
    original_id = boost.reblog_of_id
    await session.execute(delete(Status).where(Status.id == boost.id))
    await _bump(session, Status, original_id, reblogs_count=-1)
    await _bump(session, Account, boost.account_id, statuses_count=-1)
    await session.execute(
        delete(Notification).where(
            Notification.type == "reblog",
            Notification.from_account_id == boost.account_id,
            Notification.status_id == original_id,
        )
    )


async def unreblog(session: AsyncSession, viewer_id: int, original: Status) -> None:
    boost = await find_reblog(session, viewer_id, original.id)
    if boost is not None:
        await _remove_reblog(session, boost)
    await refresh_counts(session, original)


# ---------------------------------------------------------------------------- threads


MAX_THREAD = 4096


async def thread_context(
    session: AsyncSession, status: Status, viewer_id: int | None
) -> tuple[list[Status], list[Status]]:
    """Ancestors (root first) and descendants (depth first) the viewer may see."""
    root_id = status.thread_root_id or status.id
    rows = (
        await session.execute(
            select(Status)
            .where(
                or_(Status.thread_root_id == root_id, Status.id == root_id),
                Status.reblog_of_id.is_(None),
                visible_clause(viewer_id),
            )
            .order_by(Status.id)
            .limit(MAX_THREAD)
        )
    ).scalars()
    by_id = {s.id: s for s in rows}
    # Hidden posts still link the thread: walk parent pointers over all rows, then filter.
    links = await session.execute(
        select(Status.id, Status.in_reply_to_id)
        .where(or_(Status.thread_root_id == root_id, Status.id == root_id))
        .limit(MAX_THREAD)
    )
    parents: dict[int, int | None] = {child: parent for child, parent in links}
    ancestors: list[Status] = []
    seen = {status.id}
    cursor = status.in_reply_to_id
    while cursor is not None and cursor not in seen:
        seen.add(cursor)
        if cursor in by_id:
            ancestors.append(by_id[cursor])
        cursor = parents.get(cursor)
    ancestors.reverse()
    children: dict[int, list[int]] = {}
    for child, parent in parents.items():
        if parent is not None:
            children.setdefault(parent, []).append(child)
    descendants: list[Status] = []
    stack = sorted(children.get(status.id, []), reverse=True)
    visited = {status.id}
    while stack:
        current = stack.pop()
        if current in visited:
            continue
        visited.add(current)
        if current in by_id:
            descendants.append(by_id[current])
        stack.extend(sorted(children.get(current, []), reverse=True))
    return ancestors, descendants
