"""Mastodon ``Status``, ``StatusEdit``, ``Notification`` and ``Tag`` entities, batch-loaded.

Design note
-----------
Two renderers give the same ``Status`` entities.

``render_statuses`` turns ORM rows into dicts (single posts, threads, search, notifications).
Rendering costs a fixed number of queries whatever the number of posts: boosted originals
(through the visibility predicate), accounts, and mentions, tags, the viewer's favourites and
boosts and applications in one ``UNION ALL`` built once — each skipped when there is nothing
to ask.

``render_page`` writes timeline pages straight from plain rows into JSON text: ORM objects
and ``json.dumps`` of whole entities cost more than the queries. A page query selects
``page_columns()`` — the post, its author and group as one JSON-array text each
(``json_row``), its application and per-row flags (has mentions, has tags, favourited and
boosted by the viewer) — so a page of plain posts needs no other query; mentions and tags
cost one more only when a post has some, boosts one more for their originals. Bounded
per-process caches map values to JSON text: an author's ``Account`` and a group's summary
(keyed by their JSON-array text), an application's (name, website) and a post's own fields
(keyed by every column they are made from, content included). Keys are contents, so an entry is never stale — a changed
count, name or edit is another key — and who may see what is never cached: the page query
decides it on every request. ``tests/test_timeline_pages.py`` holds the two renderers to the
same text.

Both take rows the caller already filtered for the viewer; boosts whose original the viewer
may not see are dropped here. Viewer-specific flags (``favourited``, ``reblogged``,
``muted``, ``bookmarked``, ``pinned``, ``filtered``) appear only for a logged-in viewer, as on
Mastodon. ``hearthside.group`` names the group a post belongs to (a Hearthside extension).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from typing import cast as typed

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Integer,
    Select,
    String,
    Text,
    bindparam,
    case,
    exists,
    literal,
    literal_column,
    select,
    type_coerce,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import BindParameter
from sqlalchemy.sql.functions import FunctionElement

from server.config import Config
from server.entities import account_url, acct, iso, render_account
from server.errors import NotFound
from server.models import (
    Account,
    Favourite,
    Mention,
    Notification,
    OAuthApp,
    Status,
    StatusEdit,
    StatusTag,
    Tag,
    UTCDateTime,
)
from server.statuses import status_uri, status_url, tag_url, visible_clause
from server.topics import TopicView, load_view, stored_topics

STATUS_TYPES = frozenset({"mention", "status", "reblog", "favourite", "update", "poll"})


def render_tag(config: Config, name: str) -> dict[str, Any]:
    """The Mastodon ``Tag`` entity (no usage history is kept yet)."""
    return {"name": name, "url": tag_url(config, name), "history": [], "following": False}


@dataclass(frozen=True, slots=True)
class _Mentioned:
    """The columns of a mentioned account that its profile URL needs."""

    username: str
    domain: str
    actor_type: str
    url: str | None
    uri: str | None

    @property
    def local(self) -> bool:
        return self.domain == ""

    @property
    def is_group(self) -> bool:
        return self.actor_type == "Group"


def _mention(
    config: Config, account_id: int, username: str, domain: str, actor_type: str, url: str | None, uri: str | None
) -> dict[str, Any]:
    person = _Mentioned(username, domain, actor_type, url, uri)
    return {
        "id": str(account_id),
        "username": username,
        "url": account_url(config, person),  # type: ignore[arg-type]
        "acct": username if not domain else f"{username}@{domain}",
    }


# ---------------------------------------------------------------------------- statements built once
#
# Built at import (no I/O): executing a statement object SQLAlchemy has seen before skips
# building it and computing its cache key, which cost more than the queries themselves.
# Core table columns (not ORM attributes) keep execution off the ORM path.

_TEXT = String()
_NULLS = (literal(None, _TEXT), literal(None, _TEXT), literal(None, _TEXT), literal(None, _TEXT))
_STATUSES = Status.__table__
_ACCOUNTS = Account.__table__
_MENTIONS = Mention.__table__
_STATUS_TAGS = StatusTag.__table__
_TAGS = Tag.__table__
_FAVOURITES = Favourite.__table__
_APPS = OAuthApp.__table__
_IDS: BindParameter[Any] = bindparam("ids", expanding=True)
_VIEWER: BindParameter[Any] = bindparam("viewer")

_MENTION_ROWS = (
    select(
        literal("m", _TEXT),
        _MENTIONS.c.status_id,
        _ACCOUNTS.c.id,
        _ACCOUNTS.c.username,
        _ACCOUNTS.c.domain,
        _ACCOUNTS.c.actor_type,
        _ACCOUNTS.c.url,
        _ACCOUNTS.c.uri,
    )
    .join_from(_MENTIONS, _ACCOUNTS, _ACCOUNTS.c.id == _MENTIONS.c.account_id)
    .where(_MENTIONS.c.status_id.in_(_IDS))
)
_TAG_ROWS = (
    select(literal("t", _TEXT), _STATUS_TAGS.c.status_id, _TAGS.c.id, _TAGS.c.name, *_NULLS)
    .join_from(_STATUS_TAGS, _TAGS, _TAGS.c.id == _STATUS_TAGS.c.tag_id)
    .where(_STATUS_TAGS.c.status_id.in_(_IDS))
)
_FAVOURITE_ROWS = select(
    literal("f", _TEXT), _FAVOURITES.c.status_id, _FAVOURITES.c.id, literal(None, _TEXT), *_NULLS
).where(_FAVOURITES.c.account_id == _VIEWER, _FAVOURITES.c.status_id.in_(_IDS))
_BOOST_ROWS = select(
    literal("r", _TEXT), _STATUSES.c.reblog_of_id, _STATUSES.c.id, literal(None, _TEXT), *_NULLS
).where(
    # "+ 0" keeps SQLite on the reblog_of_id index: the account_id one would
    # walk every post the viewer ever wrote.
    _STATUSES.c.account_id + 0 == _VIEWER,
    _STATUSES.c.reblog_of_id.in_(_IDS),
    _STATUSES.c.deleted_at.is_(None),
)
_APP_ROWS = select(
    literal("a", _TEXT),
    _APPS.c.id,
    _APPS.c.id,
    _APPS.c.name,
    literal(None, _TEXT),
    literal(None, _TEXT),
    _APPS.c.website,
    literal(None, _TEXT),
).where(_APPS.c.id.in_(bindparam("app_ids", expanding=True)))
# (viewer logged in, page has applications) -> the extras statement
_EXTRAS = {
    (viewer, apps): union_all(
        _MENTION_ROWS,
        _TAG_ROWS,
        *((_FAVOURITE_ROWS, _BOOST_ROWS) if viewer else ()),
        *((_APP_ROWS,) if apps else ()),
    )
    for viewer in (False, True)
    for apps in (False, True)
}
_MENTIONS_AND_TAGS = union_all(_MENTION_ROWS, _TAG_ROWS)


class _Batch:
    """Everything a page of statuses needs, loaded in a handful of queries."""

    def __init__(
        self, config: Config, viewer_id: int | None, topics: TopicView | None = None, *, omit_hidden: bool = True
    ) -> None:
        self.config = config
        self.viewer_id = viewer_id
        self.topics = topics  # the viewer's trigger-topic choices (server.topics)
        self.omit_hidden = omit_hidden
        self.accounts: dict[int, Account] = {}
        self.account_json: dict[int, dict[str, Any]] = {}
        self.originals: dict[int, Status] = {}
        self.mentions: dict[int, list[dict[str, Any]]] = {}
        self.tags: dict[int, list[dict[str, Any]]] = {}
        self.favourited: set[int] = set()
        self.reblogged: set[int] = set()
        self.apps: dict[int, dict[str, Any]] = {}

    async def load(
        self,
        session: AsyncSession,
        statuses: Sequence[Status],
        hidden_accounts: Collection[int],
        known_accounts: Mapping[int, Account] | None = None,
    ) -> None:
        """Load what ``statuses`` need: at most three queries (originals, accounts, extras).

        ``known_accounts`` are accounts the caller already loaded with the page (fresh rows).
        """
        wanted = {s.reblog_of_id for s in statuses if s.reblog_of_id is not None}
        if wanted:
            original_rows = await session.execute(
                select(Status).where(Status.id.in_(wanted), visible_clause(self.viewer_id))
            )
            self.originals = {
                s.id: s
                for s in original_rows.scalars()
                if s.account_id not in hidden_accounts and s.reblog_of_id is None
            }
        content = [s for s in statuses if s.reblog_of_id is None] + list(self.originals.values())
        account_ids = {s.account_id for s in statuses} | {s.account_id for s in self.originals.values()}
        account_ids |= {s.group_id for s in content if s.group_id is not None}
        self.accounts = dict(known_accounts or {})
        missing = account_ids - self.accounts.keys()
        if missing:
            rows = await session.execute(
                select(Account).where(Account.id.in_(missing)).execution_options(populate_existing=True)
            )
            self.accounts.update({a.id: a for a in rows.scalars()})
        if content:
            await self._load_extras(session, content)

    async def _load_extras(self, session: AsyncSession, content: Sequence[Status]) -> None:
        """Mentions, tags, the viewer's favourites and boosts, and applications: one query.

        A ``UNION ALL`` of same-shaped rows ``(kind, key, ref, name, domain, actor_type, url,
        uri)``; one round trip instead of four is most of a page's cost on SQLite. The
        statements are built once (``_EXTRAS``); only the id lists change.
        """
        app_ids = {s.application_id for s in content if s.application_id is not None}
        statement = _EXTRAS[(self.viewer_id is not None, bool(app_ids))]
        params: dict[str, Any] = {"ids": [s.id for s in content], "viewer": self.viewer_id, "app_ids": list(app_ids)}
        rows = await session.execute(statement, params)
        for kind, key, ref, name, domain, actor_type, url, uri in rows:
            if kind == "m":
                self.mentions.setdefault(key, []).append(_mention(self.config, ref, name, domain, actor_type, url, uri))
            elif kind == "t":
                self.tags.setdefault(key, []).append({"name": name, "url": tag_url(self.config, name)})
            elif kind == "f":
                self.favourited.add(key)
            elif kind == "r":
                self.reblogged.add(key)
            else:
                self.apps[key] = {"name": name, "website": url}

    def account(self, account_id: int) -> dict[str, Any]:
        rendered = self.account_json.get(account_id)
        if rendered is None:
            rendered = render_account(self.config, self.accounts[account_id])
            self.account_json[account_id] = rendered
        return rendered

    def group(self, group_id: int | None) -> dict[str, Any] | None:
        if group_id is None or group_id not in self.accounts:
            return None
        group = self.accounts[group_id]
        return {
            "id": str(group.id),
            "acct": acct(group),
            "display_name": group.display_name,
            "url": account_url(self.config, group),
        }

    def status(self, s: Status, *, with_text: bool = False) -> dict[str, Any] | None:
        if s.account_id not in self.accounts:
            return None
        author = self.accounts[s.account_id]
        nested: dict[str, Any] | None = None
        flag_id = s.id
        if s.reblog_of_id is not None:
            original = self.originals.get(s.reblog_of_id)
            if original is None:
                return None
            nested = self.status(original)
            if nested is None:
                return None
            flag_id = original.id
        sensitive, spoiler_text = s.sensitive, s.spoiler_text
        if self.topics is not None and s.reblog_of_id is None:
            verdict, matched = self.topics.judge(s.account_id, s.topics, s.spoiler_text)
            if verdict == "hide" and self.omit_hidden:
                return None
            if verdict != "show":
                sensitive, spoiler_text = True, self.topics.spoiler(matched, s.spoiler_text)
        data: dict[str, Any] = {
            "id": str(s.id),
            "created_at": iso(s.created_at),
            "in_reply_to_id": str(s.in_reply_to_id) if s.in_reply_to_id is not None else None,
            "in_reply_to_account_id": (str(s.in_reply_to_account_id) if s.in_reply_to_account_id is not None else None),
            "sensitive": sensitive,
            "spoiler_text": spoiler_text,
            "visibility": s.visibility,
            "language": s.language,
            "uri": s.uri or status_uri(self.config, author, s.id, reblog=nested is not None),
            "url": s.url or (None if nested is not None else status_url(self.config, author, s.id)),
            "replies_count": s.replies_count,
            "reblogs_count": s.reblogs_count,
            "favourites_count": s.favourites_count,
            "edited_at": iso(s.edited_at),
            "content": s.content,
            "reblog": nested,
            "application": self.apps.get(s.application_id) if s.application_id is not None else None,
            "account": self.account(s.account_id),
            "media_attachments": [],
            "mentions": self.mentions.get(s.id, []),
            "tags": self.tags.get(s.id, []),
            "emojis": [],
            "card": None,
            "poll": None,
            "hearthside": {"group": self.group(s.group_id)},
            "hearthside_topics": stored_topics(s.topics),
        }
        if self.viewer_id is not None:
            data["favourited"] = flag_id in self.favourited
            data["reblogged"] = flag_id in self.reblogged
            data["muted"] = False
            data["bookmarked"] = False
            data["pinned"] = False
            data["filtered"] = []
        if with_text:
            data["text"] = s.text
        return data


async def render_statuses(
    session: AsyncSession,
    config: Config,
    statuses: Sequence[Status],
    viewer_id: int | None,
    *,
    hidden_accounts: Collection[int] = (),
    known_accounts: Mapping[int, Account] | None = None,
    with_text: bool = False,
    filter_topics: bool = True,
    omit_hidden: bool = True,
) -> list[dict[str, Any]]:
    """Render ``statuses`` (already visible to the viewer) in order, in constant queries.

    Boosts whose original the viewer may not see, or whose original's author is in
    ``hidden_accounts`` (a timeline's mutes), are left out, and so are posts on topics the
    viewer hides (``omit_hidden``; otherwise collapsed); ``filter_topics=False`` renders posts
    as written (moderation queues).
    """
    if not statuses:
        return []
    view = await load_view(session, config, viewer_id) if filter_topics else None
    batch = _Batch(config, viewer_id, view, omit_hidden=omit_hidden)
    await batch.load(session, statuses, hidden_accounts, known_accounts)
    out = []
    for s in statuses:
        rendered = batch.status(s, with_text=with_text)
        if rendered is not None:
            out.append(rendered)
    return out


async def render_status(
    session: AsyncSession, config: Config, status: Status, viewer_id: int | None, *, with_text: bool = False
) -> dict[str, Any]:
    # Opened by its id, a post on a hidden topic is collapsed rather than missing.
    rendered = await render_statuses(session, config, [status], viewer_id, with_text=with_text, omit_hidden=False)
    if not rendered:
        from server.errors import NotFound

        raise NotFound("Record not found")
    return rendered[0]


async def render_history(session: AsyncSession, config: Config, status: Status) -> list[dict[str, Any]]:
    """``StatusEdit`` entities, oldest first; an unedited post has one version: itself."""
    author = (
        await session.execute(
            select(Account).where(Account.id == status.account_id).execution_options(populate_existing=True)
        )
    ).scalar_one()
    account = render_account(config, author)
    edits = (
        (await session.execute(select(StatusEdit).where(StatusEdit.status_id == status.id).order_by(StatusEdit.id)))
        .scalars()
        .all()
    )
    versions: list[tuple[str, str, bool, Any]] = [(e.content, e.spoiler_text, e.sensitive, e.created_at) for e in edits]
    if not versions:
        versions = [(status.content, status.spoiler_text, status.sensitive, status.created_at)]
    return [
        {
            "content": content,
            "spoiler_text": spoiler,
            "sensitive": sensitive,
            "created_at": iso(created_at),
            "account": account,
            "poll": None,
            "media_attachments": [],
            "emojis": [],
        }
        for content, spoiler, sensitive, created_at in versions
    ]


async def _severance_events(session: AsyncSession, note_ids: list[int]) -> dict[int, dict[str, Any]]:
    """``severed_relationships`` notifications' events: the member's event shares the
    notification's id (``server.domains.sever_domain``)."""
    if not note_ids:
        return {}
    from server.entities import render_severance_event
    from server.models import AccountSeveranceEvent, RelationshipSeveranceEvent

    rows = await session.execute(
        select(AccountSeveranceEvent, RelationshipSeveranceEvent)
        .join(RelationshipSeveranceEvent, RelationshipSeveranceEvent.id == AccountSeveranceEvent.event_id)
        .where(AccountSeveranceEvent.id.in_(note_ids))
    )
    return {mine.id: render_severance_event(mine, event) for mine, event in rows.all()}


async def render_notifications(
    session: AsyncSession, config: Config, notes: Sequence[Notification], viewer_id: int
) -> list[dict[str, Any]]:
    """``Notification`` entities; ones whose post the viewer can no longer see are left out."""
    if not notes:
        return []
    status_ids = {n.status_id for n in notes if n.status_id is not None}
    statuses: dict[int, Status] = {}
    if status_ids:
        rows = await session.execute(select(Status).where(Status.id.in_(status_ids), visible_clause(viewer_id)))
        statuses = {s.id: s for s in rows.scalars()}
    batch = _Batch(config, viewer_id, await load_view(session, config, viewer_id) if statuses else None)
    await batch.load(session, list(statuses.values()), ())
    missing = {n.from_account_id for n in notes} - batch.accounts.keys()
    if missing:
        senders = await session.execute(select(Account).where(Account.id.in_(missing)))
        batch.accounts.update({a.id: a for a in senders.scalars()})
    events = await _severance_events(session, [n.id for n in notes if n.type == "severed_relationships"])
    from server.reports import notification_payloads  # late: server.reports renders through this module

    moderation = await notification_payloads(session, config, notes)
    out: list[dict[str, Any]] = []
    for note in notes:
        sender = batch.accounts.get(note.from_account_id)
        if sender is None or sender.suspended_at is not None or sender.deleted_at is not None:
            continue
        data: dict[str, Any] = {
            "id": str(note.id),
            "type": note.type,
            "created_at": iso(note.created_at),
            "group_key": f"ungrouped-{note.id}",
            "account": batch.account(note.from_account_id),
        }
        if note.id in events:
            data["event"] = events[note.id]
        data.update(moderation.get(note.id, {}))
        if note.type in STATUS_TYPES or note.status_id is not None:
            status = statuses.get(note.status_id) if note.status_id is not None else None
            rendered = batch.status(status) if status is not None else None
            if rendered is None:
                continue
            data["status"] = rendered
        out.append(data)
    return out


# ---------------------------------------------------------------------------- timeline pages

_STATUS_FIELDS = (  # row[0:13] (with the author's username) is a post's own fragment key
    "id",
    "reblog_of_id",
    "in_reply_to_id",
    "in_reply_to_account_id",
    "visibility",
    "content",
    "spoiler_text",
    "sensitive",
    "language",
    "uri",
    "url",
    "created_at",
    "edited_at",
    "replies_count",
    "reblogs_count",
    "favourites_count",
    "topics",
)
(
    _ID,
    _REBLOG_OF,
    _REPLY_TO,
    _REPLY_TO_ACCOUNT,
    _VISIBILITY,
    _CONTENT,
    _SPOILER,
    _SENSITIVE,
    _LANGUAGE,
    _URI,
    _URL,
    _CREATED,
    _EDITED,
    _REPLIES,
    _REBLOGS,
    _FAVOURITES_COUNT,
    _TOPICS,
    _AUTHOR_ID,
    _AUTHOR_USERNAME,
    _AUTHOR,
    _GROUP,
    _APP_NAME,
    _APP_WEBSITE,
    _FLAGS,
) = range(24)
PAGE_WIDTH = 24  # a page query may add columns after these
# Everything render_account reads, in the order _account_from_values takes them.
_AUTHOR_FIELDS = (
    "id",
    "username",
    "domain",
    "actor_type",
    "display_name",
    "note",
    "fields",
    "locked",
    "bot",
    "discoverable",
    "verified_professional",
    "uri",
    "url",
    "followers_count",
    "following_count",
    "statuses_count",
    "last_status_at",
    "created_at",
    "suspended_at",
)
_GROUP_FIELDS = ("id", "username", "domain", "actor_type", "display_name", "url", "uri")
_HAS_MENTIONS, _HAS_TAGS, _FAVOURITED, _REBLOGGED = 1, 2, 4, 8

GROUP_ACCOUNTS = Account.__table__.alias("group_account")
REBLOGS = Status.__table__.alias("reblogs")


class json_row(FunctionElement[str]):
    """Columns as the text of one JSON array (``json_array`` on SQLite, ``json_build_array``
    on PostgreSQL): one value to fetch instead of many, and an exact key — equal texts mean
    equal columns — for the cached JSON below."""

    type = Text()
    inherit_cache = True
    name = "json_row"


@compiles(json_row)
def _json_row(element: json_row, compiler: SQLCompiler, **kw: Any) -> str:
    return f"json_array({compiler.process(element.clauses, **kw)})"


@compiles(json_row, "postgresql")
def _json_row_postgresql(element: json_row, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CAST(json_build_array({compiler.process(element.clauses, **kw)}) AS TEXT)"


def _raw(column: Any) -> ColumnElement[Any]:
    """``column`` as the driver returns it: skips per-value conversion in Python."""
    if isinstance(column.type, Boolean):
        return type_coerce(column, Integer())  # 0/1 on SQLite, bool on PostgreSQL
    if isinstance(column.type, UTCDateTime):
        return type_coerce(column, _TEXT)  # text on SQLite, an aware datetime on PostgreSQL
    return typed(ColumnElement[Any], column)


def _bit(condition: ColumnElement[bool], bit: int) -> ColumnElement[int]:
    return case((condition, literal_column(str(bit), Integer())), else_=literal_column("0", Integer()))


def page_columns(viewer: bool, *, group_id: ColumnElement[Any] | None = None) -> list[ColumnElement[Any]]:
    """The columns of a page row; select them ``FROM page_from(...)`` (see ``page_select``).

    With ``viewer``, the statement takes a ``viewer`` parameter (the viewer's account id)
    for the favourited and boosted flags. ``group_id``: every post is in that group, whose
    summary is then looked up once rather than for each post.
    """
    statuses = Status.__table__
    flags = _bit(exists().where(_MENTIONS.c.status_id == statuses.c.id), _HAS_MENTIONS) + _bit(
        exists().where(_STATUS_TAGS.c.status_id == statuses.c.id), _HAS_TAGS
    )
    if viewer:
        favourited = exists().where(_FAVOURITES.c.account_id == _VIEWER, _FAVOURITES.c.status_id == statuses.c.id)
        boosted = exists().where(
            REBLOGS.c.account_id + literal_column("0", Integer()) == _VIEWER,  # "+ 0": see _BOOST_ROWS
            REBLOGS.c.reblog_of_id == statuses.c.id,
            REBLOGS.c.deleted_at.is_(None),
        )
        flags = flags + _bit(favourited, _FAVOURITED) + _bit(boosted, _REBLOGGED)
    group: ColumnElement[Any] = json_row(*(GROUP_ACCOUNTS.c[name] for name in _GROUP_FIELDS))
    if group_id is not None:
        group = select(group).where(GROUP_ACCOUNTS.c.id == group_id).scalar_subquery()
    return [
        *(_raw(statuses.c[name]).label(f"s_{name}") for name in _STATUS_FIELDS),
        _ACCOUNTS.c.id.label("author_id"),
        _ACCOUNTS.c.username.label("author_username"),
        json_row(*(_ACCOUNTS.c[name] for name in _AUTHOR_FIELDS)).label("author"),
        group.label("group"),
        _APPS.c.name.label("app_name"),
        _APPS.c.website.label("app_website"),
        flags.label("flags"),
    ]


def is_boost(row: Sequence[Any]) -> bool:
    """Whether a page row is a boost."""
    return row[_REBLOG_OF] is not None


def page_from(*, per_post_group: bool = True) -> Any:
    """Posts joined to their author (inner), group and application (outer)."""
    statuses = Status.__table__
    joined = statuses.join(_ACCOUNTS, _ACCOUNTS.c.id == statuses.c.account_id)
    if per_post_group:
        joined = joined.outerjoin(GROUP_ACCOUNTS, GROUP_ACCOUNTS.c.id == statuses.c.group_id)
    return joined.outerjoin(_APPS, _APPS.c.id == statuses.c.application_id)


def page_select(viewer: bool, *, group_id: ColumnElement[Any] | None = None) -> Select[Any]:
    """``SELECT page_columns() FROM page_from()``: add the timeline's conditions and bounds."""
    columns = page_columns(viewer, group_id=group_id)
    return select(*columns).select_from(page_from(per_post_group=group_id is None))


_quote = json.encoder.encode_basestring  # what json.dumps(ensure_ascii=False) uses for str
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_ACCOUNT_JSON: dict[tuple[str, str], str] = {}
_GROUP_JSON: dict[tuple[str, str], str] = {}
_APP_JSON: dict[tuple[str, str | None], str] = {}
ACCOUNT_CACHE_SIZE = 4096  # accounts, groups and applications each
_VIEWER_FLAGS = [
    f',"favourited":{"true" if flags & _FAVOURITED else "false"},'
    f'"reblogged":{"true" if flags & _REBLOGGED else "false"},'
    '"muted":false,"bookmarked":false,"pinned":false,"filtered":[]}'
    for flags in range(16)
]


def _remember(cache: dict[Any, Any], key: Any, value: Any, size: int) -> Any:
    if len(cache) >= size:
        # Start afresh rather than evict one by one: deleting a dict's first entry and asking
        # for the next first one degrades to a scan over deleted slots (CPython), and these
        # caches refill in a page or two.
        cache.clear()
    cache[key] = value
    return value


def _datetime(value: Any) -> datetime | None:
    """A raw timestamp (SQLite text, PostgreSQL datetime or JSON text) as UTCDateTime loads it."""
    if value is None:
        return None
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _iso(value: Any) -> str | None:
    """``iso()`` of a raw timestamp; SQLite's stored text is reformatted without parsing."""
    if type(value) is str and len(value) == 26 and value[10] == " " and value[19] == ".":
        return f"{value[:10]}T{value[11:23]}Z"  # "YYYY-MM-DD HH:MM:SS.ffffff", naive UTC
    return iso(_datetime(value))


def _id_or_null(value: int | None) -> str:
    return "null" if value is None else f'"{value}"'


def _str_or_null(value: str | None) -> str:
    return "null" if value is None else _quote(value)


def _account_from_values(values: Sequence[Any]) -> Account:
    (
        account_id,
        username,
        domain,
        actor_type,
        display_name,
        note,
        fields,
        locked,
        bot,
        discoverable,
        verified_professional,
        uri,
        url,
        followers,
        following,
        statuses,
        last_status_at,
        created_at,
        suspended_at,
    ) = values
    return Account(
        id=account_id,
        username=username,
        domain=domain,
        actor_type=actor_type,
        display_name=display_name,
        note=note,
        fields=json.loads(fields) if isinstance(fields, str) else fields,  # JSON text on SQLite
        locked=bool(locked),
        bot=bool(bot),
        discoverable=bool(discoverable),
        verified_professional=bool(verified_professional),
        uri=uri,
        url=url,
        followers_count=followers,
        following_count=following,
        statuses_count=statuses,
        last_status_at=_datetime(last_status_at),
        created_at=_datetime(created_at),
        suspended_at=_datetime(suspended_at),
    )


def _account_json(config: Config, base_url: str, author: str) -> str:
    """The author's ``Account`` JSON from its ``json_row`` text."""
    key = (base_url, author)
    found = _ACCOUNT_JSON.get(key)
    if found is None:
        account = _account_from_values(json.loads(author))
        found = _remember(_ACCOUNT_JSON, key, _dumps(render_account(config, account)), ACCOUNT_CACHE_SIZE)
    return found


def _group_json(config: Config, base_url: str, group: str) -> str:
    """``hearthside.group`` JSON from the group's ``json_row`` text (all nulls: no group)."""
    key = (base_url, group)
    found = _GROUP_JSON.get(key)
    if found is None:
        group_id, username, domain, actor_type, display_name, url, uri = json.loads(group)
        rendered = "null"
        if group_id is not None:
            person = _Mentioned(username, domain, actor_type, url, uri)
            summary = {
                "id": str(group_id),
                "acct": username if not domain else f"{username}@{domain}",
                "display_name": display_name,
                "url": account_url(config, person),  # type: ignore[arg-type]
            }
            rendered = _dumps(summary)
        found = _remember(_GROUP_JSON, key, rendered, ACCOUNT_CACHE_SIZE)
    return found


def _topics_json(value: Any) -> str:
    """``hearthside_topics`` from a raw ``statuses.topics`` value (JSON text or a list)."""
    if not value or value == "[]":
        return "[]"
    return _dumps(stored_topics(value))


def _app_json(name: str, website: str | None) -> str:
    key = (name, website)
    found = _APP_JSON.get(key)
    if found is None:
        found = _remember(_APP_JSON, key, _dumps({"name": name, "website": website}), ACCOUNT_CACHE_SIZE)
    return found


def _status_fragment(base_url: str, row: Sequence[Any], spoiler: str | None = None) -> tuple[str, str]:
    """A post's own fields as JSON text: (up to ``"replies_count":``, ``"edited_at"`` to
    ``"reblog":``). Same text ``_Batch.status`` gives through ``json.dumps``. ``spoiler``:
    the post is collapsed for the viewer (sensitive, with this content warning)."""
    status_id = row[_ID]
    username = row[_AUTHOR_USERNAME]
    if row[_REBLOG_OF] is None:
        uri = row[_URI] or f"{base_url}/users/{username}/statuses/{status_id}"  # statuses.status_uri
        url = row[_URL] or f"{base_url}/@{username}/{status_id}"  # statuses.status_url
    else:
        uri = row[_URI] or f"{base_url}/users/{username}/statuses/{status_id}/activity"
        url = row[_URL] or None
    head = (
        f'{{"id":"{status_id}","created_at":"{_iso(row[_CREATED])}",'
        f'"in_reply_to_id":{_id_or_null(row[_REPLY_TO])},'
        f'"in_reply_to_account_id":{_id_or_null(row[_REPLY_TO_ACCOUNT])},'
        f'"sensitive":{"true" if row[_SENSITIVE] or spoiler is not None else "false"},'
        f'"spoiler_text":{_quote(row[_SPOILER] if spoiler is None else spoiler)},'
        f'"visibility":{_quote(row[_VISIBILITY])},"language":{_str_or_null(row[_LANGUAGE])},'
        f'"uri":{_quote(uri)},"url":{_str_or_null(url)},"replies_count":'
    )
    middle = f',"edited_at":{_str_or_null(_iso(row[_EDITED]))},"content":{_quote(row[_CONTENT])},"reblog":'
    return head, middle


class _PageRenderer:
    """Turns page rows into the JSON text of Mastodon ``Status`` entities."""

    def __init__(self, config: Config, viewer: bool, topics: TopicView | None = None) -> None:
        self.config = config
        self.base_url = config.base_url
        self.viewer = viewer
        self.topics = topics
        self.mentions: dict[int, str] = {}
        self.tags: dict[int, str] = {}

    async def load_extras(self, session: AsyncSession, rows: Sequence[Any]) -> None:
        """Mentions and tags of the rows that have some: one query, or none."""
        wanted = [row[_ID] for row in rows if row[_FLAGS] & (_HAS_MENTIONS | _HAS_TAGS)]
        if not wanted:
            return
        mentions: dict[int, list[dict[str, Any]]] = {}
        tags: dict[int, list[dict[str, Any]]] = {}
        for kind, key, ref, name, domain, actor_type, url, uri in await session.execute(
            _MENTIONS_AND_TAGS, {"ids": wanted}
        ):
            if kind == "m":
                mentions.setdefault(key, []).append(_mention(self.config, ref, name, domain, actor_type, url, uri))
            else:
                tags.setdefault(key, []).append({"name": name, "url": tag_url(self.config, name)})
        self.mentions = {key: _dumps(value) for key, value in mentions.items()}
        self.tags = {key: _dumps(value) for key, value in tags.items()}

    def status(self, row: Sequence[Any], reblog: str = "null", flags: int | None = None) -> str | None:
        """One status; a boost gets its original's JSON as ``reblog`` and its flags. None: a
        post on a topic the viewer hides."""
        base_url = self.base_url
        spoiler = None
        if self.topics is not None and row[_REBLOG_OF] is None:
            verdict, matched = self.topics.judge(row[_AUTHOR_ID], row[_TOPICS], row[_SPOILER])
            if verdict == "hide":
                return None
            if verdict == "warn":
                spoiler = self.topics.spoiler(matched, row[_SPOILER])
        # A post's own fields are formatted afresh (under 2 us): a cache keyed by them cost more
        # to hash and look up than it saved, and random pages of a large group rarely hit it.
        head, middle = _status_fragment(base_url, row, spoiler)
        status_id = row[_ID]
        application = "null" if row[_APP_NAME] is None else _app_json(row[_APP_NAME], row[_APP_WEBSITE])
        text = (
            f'{head}{row[_REPLIES]},"reblogs_count":{row[_REBLOGS]},"favourites_count":{row[_FAVOURITES_COUNT]}'
            f'{middle}{reblog},"application":{application},'
            f'"account":{_account_json(self.config, base_url, row[_AUTHOR])},"media_attachments":[],'
            f'"mentions":{self.mentions.get(status_id, "[]")},"tags":{self.tags.get(status_id, "[]")},'
            f'"emojis":[],"card":null,"poll":null,'
            f'"hearthside":{{"group":{_group_json(self.config, base_url, row[_GROUP])}}},'
            f'"hearthside_topics":{_topics_json(row[_TOPICS])}'
        )
        if not self.viewer:
            return text + "}"
        return text + _VIEWER_FLAGS[row[_FLAGS] if flags is None else flags]


async def render_page(
    session: AsyncSession,
    config: Config,
    rows: Sequence[Any],
    viewer_id: int | None,
    *,
    hidden_accounts: Collection[int] = (),
    filter_topics: bool = True,
) -> bytes:
    """The JSON body for page ``rows`` (``page_select`` rows, already visible to the viewer).

    The same entities ``render_statuses`` gives, in the same order and with the same keys;
    boosts whose original the viewer may not see, or whose original's author is in
    ``hidden_accounts``, are left out, and so are posts on topics the viewer hides.
    """
    if not rows:
        return b"[]"
    view = await load_view(session, config, viewer_id) if filter_topics else None
    renderer = _PageRenderer(config, viewer_id is not None, view)
    originals: dict[int, Any] = {}
    boosted = {row[_REBLOG_OF] for row in rows if row[_REBLOG_OF] is not None}
    if boosted:
        query = page_select(viewer_id is not None).where(
            _STATUSES.c.id.in_(bindparam("ids", expanding=True)), visible_clause(viewer_id)
        )
        found = await session.execute(query, {"ids": list(boosted), "viewer": viewer_id})
        originals = {
            row[_ID]: row for row in found if row[_AUTHOR_ID] not in hidden_accounts and row[_REBLOG_OF] is None
        }
    await renderer.load_extras(session, [row for row in rows if row[_REBLOG_OF] is None] + list(originals.values()))
    parts: list[str] = []
    for row in rows:
        if row[_REBLOG_OF] is None:
            own = renderer.status(row)
            if own is not None:
                parts.append(own)
            continue
        original = originals.get(row[_REBLOG_OF])
        if original is not None:
            nested = renderer.status(original)
            if nested is not None:
                boost = renderer.status(row, reblog=nested, flags=original[_FLAGS])
                if boost is not None:
                    parts.append(boost)
    return f"[{','.join(parts)}]".encode()


_ONE_BY_ID = page_select(True).where(_STATUSES.c.id == bindparam("status_id"))


async def render_own(session: AsyncSession, config: Config, status_id: int, viewer_id: int) -> bytes:
    """The JSON of one status its own author just wrote (no visibility question to ask), through
    the same row renderer as the timelines: one prebuilt statement instead of the ORM path."""
    rows = (await session.execute(_ONE_BY_ID, {"status_id": status_id, "viewer": viewer_id})).all()
    if len(rows) != 1 or rows[0][_REBLOG_OF] is not None:
        raise NotFound("Record not found")
    return (await render_page(session, config, rows, viewer_id, filter_topics=False))[1:-1]
