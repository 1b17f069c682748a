"""Timeline queries: home, public, hashtag, group and account timelines.

Design note
-----------
Every timeline is one paginated query over ``statuses.id`` (ids are time-ordered, so the
primary key is the order) that already applies :func:`server.statuses.visible_clause`; it
selects plain rows (``server.status_entities.page_select``: the post, its author, group,
application and the viewer's flags), which ``status_entities.render_page`` turns into JSON
in a constant number of further queries (often none). Boosts whose original the viewer may
not see are dropped after the page query, so a page can come back shorter than ``limit``;
the ``Link`` header is built from the ids the query returned, which keeps paging correct
(Mastodon behaves the same way).

The group timeline, the busiest read, runs statements built once at import with the viewer,
group, time and page bounds as parameters, so a request spends no time building SQL.

* home: own posts, accepted follows' posts (boosts too, unless ``show_reblogs`` is off) and
  posts in the viewer's groups; replies only when they answer someone the viewer follows
  (Mastodon's rule); muted and blocked accounts left out.
* public: ``public`` posts, no boosts, no replies to others, nothing from members-only groups,
  nothing by limited authors the viewer does not follow (:func:`not_limited`).
* hashtag: public posts carrying the tag (``any``/``all``/``none`` refine it), the same
  limited-author rule.
* group: posts in one group on the ``(group_id, id)`` index — the benchmarked path.
* account: one author's posts (for a group account: the group's posts).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC
from operator import itemgetter
from typing import Any

from sqlalchemy import (
    ColumnElement,
    CompoundSelect,
    Select,
    String,
    and_,
    bindparam,
    exists,
    literal,
    literal_column,
    null,
    or_,
    select,
    type_coerce,
    union_all,
)
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import BindParameter

from federation.content import normalize_hashtag
from server.db import InlineReadSession
from server.errors import NotFound
from server.models import Account, Follow, Group, Status, StatusTag, Tag
from server.pagination import Page, bound_params, bounded, paginate
from server.status_entities import PAGE_WIDTH, is_boost, page_select
from server.statuses import PUBLICISH, blocked_ids, followed_ids, muted_ids, visible_clause
from server.web import now

MAX_TAGS_PER_PARAM = 4
_first = itemgetter(0)


@dataclass(frozen=True, slots=True)
class TimelinePage:
    """A page's rows (``status_entities.page_select`` columns), newest first, and accounts
    whose boosted posts are to be hidden."""

    rows: Sequence[Any]
    hidden_accounts: frozenset[int] = frozenset()

    @property
    def ids(self) -> list[int]:
        return [row[0] for row in self.rows]


async def _run(session: AsyncSession, query: Select[Any], page: Page, viewer_id: int | None) -> TimelinePage:
    """The page of ``query`` (``SELECT statuses.id ... WHERE`` the timeline's rules) as page rows.

    The ids are chosen first, in a subquery: when the database must sort the matching posts
    (a home timeline's several indexes), it sorts ids rather than whole page rows, and the
    page columns are computed for the posts shown only.
    """
    chosen = paginate(query, Status.id, page).subquery()
    statement = page_select(viewer_id is not None).where(Status.__table__.c.id.in_(select(chosen.c.id)))
    params = {"viewer": viewer_id} if viewer_id is not None else None
    rows = (await session.execute(statement, params)).all()
    return TimelinePage(sorted(rows, key=_first, reverse=True))


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


def not_limited(viewer_id: int | None) -> ColumnElement[bool]:
    """The author is not limited (``silenced_at``: its own limit or its domain's), unless it is
    the viewer or the viewer follows it (Mastodon's rule for public and hashtag timelines,
    search and trends). A correlated ``NOT EXISTS`` on the author's primary key, part of the
    page's one query: an index probe per candidate row, nothing per limited account."""
    author = aliased(Account)
    rules: list[ColumnElement[bool]] = [author.id == Status.account_id, author.silenced_at.is_not(None)]
    if viewer_id is not None:
        rules += [author.id != viewer_id, author.id.not_in(followed_ids(viewer_id))]
    return ~exists().where(*rules)


def _no_replies_to_others() -> ColumnElement[bool]:
    return or_(Status.in_reply_to_id.is_(None), Status.in_reply_to_account_id == Status.account_id)


HOME_SOURCES_MAX = 200  # more follows than this: one OR query (SQLite compounds stop at 500)
HOME_SLACK = 10  # candidates fetched per source beyond the page size, for posts the rules drop
HOME_ROUNDS = 4  # passes over older candidates when the rules dropped too many


async def home(session: AsyncSession, viewer_id: int, page: Page) -> TimelinePage:
    followed = followed_ids(viewer_id)
    quiet_boosts = select(Follow.target_account_id).where(
        Follow.account_id == viewer_id, Follow.show_reblogs.is_(False)
    )
    query = select(Status.id).where(
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
    sources = (
        await session.execute(
            select(Account.id, Account.actor_type)
            .join(Follow, Follow.target_account_id == Account.id)
            .where(Follow.account_id == viewer_id, Follow.state == "accepted")
        )
    ).all()
    if len(sources) >= HOME_SOURCES_MAX:
        result = await _run(session, query, page, viewer_id)
    else:
        result = await _home_by_source(session, query, page, viewer_id, [(viewer_id, "Person"), *sources])
    if any(is_boost(row) for row in result.rows):  # hide boosts of muted accounts' posts
        result = replace(result, hidden_accounts=await _muted_set(session, viewer_id))
    return result


async def _home_by_source(
    session: AsyncSession, query: Select[Any], page: Page, viewer_id: int, sources: Sequence[tuple[int, str]]
) -> TimelinePage:
    """The home page without sorting every post of every source.

    One ``OR`` over follows and groups makes the database gather and sort all their posts
    (135 ms for a member of a group of 100,000 posts on SQLite). Instead each source (the
    viewer, each followed person, each joined group) gives its newest ``limit + slack`` ids
    inside the page bounds, each on its own ``(account_id, id)`` or ``(group_id, id)`` index
    range; the home rules then run on those candidates only. A source that filled its quota
    may hold older posts that were not looked at, so only candidates on the near side of the
    tightest such edge are eligible; if the rules leave the page short, the next pass starts
    at that edge. The result is the page the single query would give.
    """
    quota = page.limit + HOME_SLACK
    cursor = page
    rows: list[Any] = []
    for _round in range(HOME_ROUNDS):
        parts: list[Any] = []
        for index, (source_id, kind) in enumerate(sources):
            column = Status.group_id if kind == "Group" else Status.account_id
            part: Any = select(Status.id.label("id"), literal(index).label("source")).where(column == source_id)
            limited: Any = paginate(part, Status.id, replace(cursor, limit=quota)).subquery()
            parts.append(select(limited))
        found: dict[int, list[int]] = {}
        for status_id, source in (await session.execute(union_all(*parts))).all():
            found.setdefault(source, []).append(status_id)
        edges = [(max(ids) if page.ascending else min(ids)) for ids in found.values() if len(ids) >= quota]
        edge = (min(edges) if page.ascending else max(edges)) if edges else None
        candidates = {
            status_id
            for ids in found.values()
            for status_id in ids
            if edge is None or (status_id <= edge if page.ascending else status_id >= edge)
        }
        if candidates:
            wanted = replace(cursor, limit=page.limit - len(rows))
            rows.extend((await _run(session, query.where(Status.id.in_(candidates)), wanted, viewer_id)).rows)
        if len(rows) >= page.limit or edge is None:
            break
        # Everything on the near side of the edge has been judged: continue beyond it.
        cursor = replace(cursor, min_id=edge, since_id=None) if page.ascending else replace(cursor, max_id=edge)
    return TimelinePage(sorted(rows, key=_first, reverse=True))


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
    query = select(Status.id).where(
        Status.visibility == "public",
        Status.reblog_of_id.is_(None),
        visible_clause(viewer_id),
        _not_members_only(),
        _no_replies_to_others(),
        not_limited(viewer_id),
        *_not_muted(viewer_id),
    )
    return await _run(session, _origin(query, local=local, remote=remote), page, viewer_id)


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
    query = select(Status.id).where(
        Status.id.in_(select(StatusTag.status_id).where(StatusTag.tag_id.in_(wanted))),
        Status.visibility == "public",
        Status.reblog_of_id.is_(None),
        visible_clause(viewer_id),
        _not_members_only(),
        not_limited(viewer_id),
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
    return await _run(session, _origin(query, local=local, remote=remote), page, viewer_id)


# ---------------------------------------------------------------------------- group timeline

_ACCOUNTS = Account.__table__
_STATUSES = Status.__table__
_GROUPS = Group.__table__
_FOLLOWS = Follow.__table__
_GROUP_ID: BindParameter[Any] = bindparam("group_id")
_VIEWER: BindParameter[Any] = bindparam("viewer")


def _constant(value: str) -> ColumnElement[str]:
    """A fixed word written into the SQL (a parameter would be processed at each execution)."""
    assert value.isalpha()
    return literal_column(f"'{value}'", String())


# The shared block and mute rules, with the viewer and the time as parameters. (They are
# written on table columns: ORM attributes anywhere in a statement send its rows through the
# ORM's loading path, which costs more than this whole query.)
_BLOCKING, _BLOCKED_BY = blocked_ids(_VIEWER)
_MUTED = muted_ids(_VIEWER, bindparam("moment"))
_MEMBER = exists().where(
    _FOLLOWS.c.account_id == _VIEWER,
    _FOLLOWS.c.target_account_id == _GROUP_ID,
    _FOLLOWS.c.state == _constant("accepted"),
)


def _group_page(*, viewer: bool, ascending: bool) -> CompoundSelect[Any]:
    """The group's state and the viewer's membership, and a page of the group's posts.

    ``UNION ALL`` of one row for the group — NULL page columns, then ``suspended_at``,
    ``deleted_at``, ``members_only`` and the viewer's follow state; absent when there is no
    such group — and one row per post: ``page_columns()`` and NULLs. Posts come from the
    ``(group_id, id)`` index, authors available, not blocked either way nor muted; members
    see every post, others the public and unlisted ones. The caller answers 404 from the
    group's row before it uses any post.
    """
    posts = page_select(viewer, group_id=_GROUP_ID).where(
        _STATUSES.c.group_id == _GROUP_ID,
        _STATUSES.c.deleted_at.is_(None),
        _ACCOUNTS.c.suspended_at.is_(None),
        _ACCOUNTS.c.deleted_at.is_(None),
    )
    # "visibility IN (...)" with a list would be expanded into the SQL at every execution
    publicish = or_(*(_STATUSES.c.visibility == _constant(value) for value in PUBLICISH))
    if viewer:
        posts = posts.where(
            or_(publicish, _MEMBER),
            # hidden pending review (server/safety.py): only its author still sees it here
            or_(_STATUSES.c.hidden_at.is_(None), _STATUSES.c.account_id == _VIEWER),
            _STATUSES.c.account_id.not_in(_BLOCKING),
            _STATUSES.c.account_id.not_in(_BLOCKED_BY),
            _STATUSES.c.account_id.not_in(_MUTED),
        )
    else:
        posts = posts.where(publicish, _STATUSES.c.hidden_at.is_(None))
    page = bounded(posts, _STATUSES.c.id, ascending=ascending).subquery("page")
    group = _ACCOUNTS.alias("target_group")
    state = (
        select(
            *(null() for _ in range(PAGE_WIDTH)),
            type_coerce(group.c.suspended_at, String()),  # only compared with NULL
            type_coerce(group.c.deleted_at, String()),
            _GROUPS.c.members_only,
            _FOLLOWS.c.state,
        )
        .select_from(
            group.join(_GROUPS, _GROUPS.c.account_id == group.c.id).outerjoin(
                _FOLLOWS, and_(_FOLLOWS.c.target_account_id == group.c.id, _FOLLOWS.c.account_id == _VIEWER)
            )
        )
        .where(group.c.id == _GROUP_ID)
    )
    return union_all(state, select(*page.c, null(), null(), null(), null()))


class _Prepared:
    """A statement built once; on the inline SQLite read session it runs as its SQL text.

    SQLAlchemy hashes a statement's whole cache key every time it runs it, and a Session
    costs more again; for this union of two dozen columns and as many subqueries that was
    more than the query itself. On SQLite the compiled text goes straight to the query-only
    driver connection (``InlineReadSession.fetch_sql``) with the statement's own literal
    values as defaults; rows come back as the driver gives them, as they do from the
    statement (every column is plain text, integer or NULL: nothing needs result processing).
    """

    def __init__(self, statement: CompoundSelect[Any]) -> None:
        self.statement = statement
        compiled = statement.compile(dialect=sqlite.dialect(paramstyle="named"))
        self.sqlite_sql = str(compiled)
        self.sqlite_defaults = {
            name: (None if bind.required else bind.value) for bind, name in compiled.bind_names.items()
        }


# (logged in, ascending) -> statement
_GROUP_PAGES = {
    (viewer, ascending): _Prepared(_group_page(viewer=viewer, ascending=ascending))
    for viewer in (False, True)
    for ascending in (False, True)
}


async def group(session: AsyncSession, group_id: int, viewer_id: int | None, page: Page) -> TimelinePage:
    """Posts in a group, newest first. Members-only groups answer 404 to non-members.

    One query (``_group_page``) brings the group's state, the viewer's membership and the
    page with everything rendering needs. Group posts are never boosts, so rendering needs
    no originals.
    """
    params: dict[str, Any] = {"group_id": group_id, "viewer": viewer_id if viewer_id is not None else 0}
    params.update(bound_params(page))
    if viewer_id is not None:
        params["moment"] = now()
    state = None
    posts = []
    prepared = _GROUP_PAGES[(viewer_id is not None, page.ascending)]
    if isinstance(session, InlineReadSession):
        if "moment" in params:  # stored as naive UTC text on SQLite (models.UTCDateTime)
            params["moment"] = params["moment"].astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
        rows = await session.fetch_sql(prepared.sqlite_sql, {**prepared.sqlite_defaults, **params})
    else:
        rows = (await session.execute(prepared.statement, params)).all()
    for row in rows:
        if row[0] is None:
            state = row[PAGE_WIDTH:]
        else:
            posts.append(row)
    if state is None:
        raise NotFound("Record not found")
    suspended_at, deleted_at, members_only, follow_state = state
    if suspended_at is not None or deleted_at is not None:
        raise NotFound("Record not found")
    if members_only and not (viewer_id is not None and follow_state == "accepted"):
        raise NotFound("Record not found")
    posts.sort(key=_first, reverse=True)
    return TimelinePage(posts)


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
    query = select(Status.id)
    if target.is_group:
        query = query.where(Status.group_id == target.id)
    else:
        query = query.where(Status.account_id == target.id)
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
    return await _run(session, query, page, viewer_id)
