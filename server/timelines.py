"""Timeline queries: home, public, hashtag, group and account timelines.

Design note
-----------
Every timeline is one paginated query over ``statuses.id`` (ids are time-ordered, so the
primary key is the order) that already applies :func:`server.statuses.visible_clause`; the
page is then rendered in a constant number of queries (``server.status_entities``). Boosts
whose original the viewer may not see are dropped after the page query, so a page can come
back shorter than ``limit``; the ``Link`` header is built from the ids the query returned,
which keeps paging correct (Mastodon behaves the same way).

* home: own posts, accepted follows' posts (boosts too, unless ``show_reblogs`` is off) and
  posts in the viewer's groups; replies only when they answer someone the viewer follows
  (Mastodon's rule); muted and blocked accounts left out.
* public: ``public`` posts, no boosts, no replies to others, nothing from members-only groups.
* hashtag: public posts carrying the tag (``any``/``all``/``none`` refine it).
* group: posts in one group on the ``(group_id, id)`` index — the benchmarked path.
* account: one author's posts (for a group account: the group's posts).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from federation.content import normalize_hashtag
from server.errors import NotFound
from server.models import Account, Follow, Group, Status, StatusTag, Tag
from server.pagination import Page, order_newest_first, paginate
from server.statuses import PUBLICISH, blocked_ids, followed_ids, muted_ids, visible_clause
from server.web import now

MAX_TAGS_PER_PARAM = 4


@dataclass(frozen=True, slots=True)
class TimelinePage:
    """A page's rows, newest first, and accounts whose boosted posts are to be hidden."""

    statuses: Sequence[Status]
    hidden_accounts: frozenset[int] = frozenset()
    accounts: Mapping[int, Account] = field(default_factory=dict)

    @property
    def ids(self) -> list[int]:
        return [s.id for s in self.statuses]


async def _run(session: AsyncSession, query: Select[Any], page: Page) -> TimelinePage:
    """Run a page query over ``Status``, fetching each author in the same query."""
    query = query.add_columns(Account).join(Account, Account.id == Status.account_id)
    query = query.execution_options(populate_existing=True)
    rows = [(status, author) for status, author in await session.execute(paginate(query, Status.id, page))]
    rows = order_newest_first(rows, page, key=lambda row: row[0].id)
    return TimelinePage([status for status, _ in rows], accounts={author.id: author for _, author in rows})


async def _muted_set(session: AsyncSession, viewer_id: int | None) -> frozenset[int]:
    if viewer_id is None:
        return frozenset()
    rows = await session.execute(muted_ids(viewer_id, now()))
    return frozenset(r[0] for r in rows)


def _not_muted(viewer_id: int | None) -> list[ColumnElement[bool]]:
    if viewer_id is None:
        return []
    return [Status.account_id.not_in(muted_ids(viewer_id, now()))]


def _not_members_only() -> ColumnElement[bool]:
    return or_(Status.group_id.is_(None), Status.group_id.not_in(select(Group.account_id).where(Group.members_only)))


def _no_replies_to_others() -> ColumnElement[bool]:
    return or_(Status.in_reply_to_id.is_(None), Status.in_reply_to_account_id == Status.account_id)


async def home(session: AsyncSession, viewer_id: int, page: Page) -> TimelinePage:
    followed = followed_ids(viewer_id)
    quiet_boosts = select(Follow.target_account_id).where(
        Follow.account_id == viewer_id, Follow.show_reblogs.is_(False)
    )
    query = select(Status).where(
        or_(Status.account_id == viewer_id, Status.account_id.in_(followed), Status.group_id.in_(followed)),
        visible_clause(viewer_id),
        *_not_muted(viewer_id),
        or_(
            Status.in_reply_to_account_id.is_(None),
            Status.account_id == viewer_id,
            Status.group_id.in_(followed),
            Status.in_reply_to_account_id == viewer_id,
            Status.in_reply_to_account_id == Status.account_id,
            Status.in_reply_to_account_id.in_(followed),
        ),
        or_(Status.reblog_of_id.is_(None), Status.account_id.not_in(quiet_boosts)),
    )
    result = await _run(session, query, page)
    if any(s.reblog_of_id for s in result.statuses):
        result = replace(result, hidden_accounts=await _muted_set(session, viewer_id))
    return result


def _origin(query: Select[Any], *, local: bool, remote: bool) -> Select[Any]:
    if local and not remote:
        query = query.where(Status.local.is_(True))
    elif remote and not local:
        query = query.where(Status.local.is_(False))
    return query


async def public(
    session: AsyncSession, viewer_id: int | None, page: Page, *, local: bool, remote: bool, only_media: bool
) -> TimelinePage:
    if only_media:  # no media attachments exist yet
        return TimelinePage([])
    query = select(Status).where(
        Status.visibility == "public",
        Status.reblog_of_id.is_(None),
        visible_clause(viewer_id),
        _not_members_only(),
        _no_replies_to_others(),
        *_not_muted(viewer_id),
    )
    return await _run(session, _origin(query, local=local, remote=remote), page)


async def _tag_ids(session: AsyncSession, names: Sequence[str]) -> list[int]:
    normalised = {normalize_hashtag(n.lstrip("#")) for n in names if isinstance(n, str)}
    normalised.discard("")
    if not normalised:
        return []
    rows = await session.execute(select(Tag.id).where(Tag.name.in_(normalised)))
    return [r[0] for r in rows]


async def hashtag(
    session: AsyncSession,
    viewer_id: int | None,
    page: Page,
    name: str,
    *,
    any_of: Sequence[str] = (),
    all_of: Sequence[str] = (),
    none_of: Sequence[str] = (),
    local: bool = False,
    remote: bool = False,
    only_media: bool = False,
) -> TimelinePage:
    if only_media:
        return TimelinePage([])
    wanted = await _tag_ids(session, [name, *any_of[:MAX_TAGS_PER_PARAM]])
    if not wanted:
        return TimelinePage([])
    query = select(Status).where(
        Status.id.in_(select(StatusTag.status_id).where(StatusTag.tag_id.in_(wanted))),
        Status.visibility == "public",
        Status.reblog_of_id.is_(None),
        visible_clause(viewer_id),
        _not_members_only(),
        *_not_muted(viewer_id),
    )
    for required in all_of[:MAX_TAGS_PER_PARAM]:
        ids = await _tag_ids(session, [required])
        if not ids:
            return TimelinePage([])
        query = query.where(Status.id.in_(select(StatusTag.status_id).where(StatusTag.tag_id == ids[0])))
    excluded = await _tag_ids(session, list(none_of[:MAX_TAGS_PER_PARAM]))
    if excluded:
        query = query.where(Status.id.not_in(select(StatusTag.status_id).where(StatusTag.tag_id.in_(excluded))))
    return await _run(session, _origin(query, local=local, remote=remote), page)


async def group(session: AsyncSession, group_id: int, viewer_id: int | None, page: Page) -> TimelinePage:
    """Posts in a group, newest first. Members-only groups answer 404 to non-members.

    One query for the group and the viewer's membership, one on the ``(group_id, id)``
    index that also brings the authors; members see every post, others the public and
    unlisted ones. Group posts are never boosts, so rendering needs no originals.
    """
    viewer = viewer_id if viewer_id is not None else 0
    found = (
        await session.execute(
            select(Account, Group.members_only, Follow.state)
            .join(Group, Group.account_id == Account.id)
            .outerjoin(Follow, and_(Follow.target_account_id == Account.id, Follow.account_id == viewer))
            .where(Account.id == group_id)
        )
    ).one_or_none()
    if found is None:
        raise NotFound("Record not found")
    group_account, members_only, state = found
    if group_account.suspended_at is not None or group_account.deleted_at is not None:
        raise NotFound("Record not found")
    member = viewer_id is not None and state == "accepted"
    if members_only and not member:
        raise NotFound("Record not found")
    query = select(Status).where(
        Status.group_id == group_id,
        Status.deleted_at.is_(None),
        Account.suspended_at.is_(None),
        Account.deleted_at.is_(None),
    )
    if not member:
        query = query.where(Status.visibility.in_(PUBLICISH))
    if viewer_id is not None:
        blocking, blocked_by = blocked_ids(viewer_id)
        query = query.where(
            Status.account_id.not_in(blocking),
            Status.account_id.not_in(blocked_by),
            *_not_muted(viewer_id),
        )
    result = await _run(session, query, page)
    return replace(result, accounts={**result.accounts, group_account.id: group_account})


async def account_statuses(
    session: AsyncSession,
    target: Account,
    viewer_id: int | None,
    page: Page,
    *,
    exclude_replies: bool = False,
    exclude_reblogs: bool = False,
    tagged: str | None = None,
    only_media: bool = False,
    pinned: bool = False,
) -> TimelinePage:
    """One account's posts as the viewer may see them (a group account: the group's posts)."""
    if only_media or pinned:  # no media, no pins yet
        return TimelinePage([])
    if target.is_group:
        query = select(Status).where(Status.group_id == target.id)
    else:
        query = select(Status).where(Status.account_id == target.id)
    query = query.where(visible_clause(viewer_id))
    if exclude_replies:
        query = query.where(_no_replies_to_others())
    if exclude_reblogs or target.is_group:
        query = query.where(Status.reblog_of_id.is_(None))
    if tagged is not None:
        ids = await _tag_ids(session, [tagged])
        if not ids:
            return TimelinePage([])
        query = query.where(Status.id.in_(select(StatusTag.status_id).where(StatusTag.tag_id == ids[0])))
    return await _run(session, query, page)
