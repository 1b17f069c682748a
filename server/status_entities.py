"""Mastodon ``Status``, ``StatusEdit``, ``Notification`` and ``Tag`` entities, batch-loaded.

Design note
-----------
Rendering a page costs a fixed number of queries whatever its length: boosted originals
(through the visibility predicate), accounts, mentions, tags, the viewer's favourites and
boosts (one ``UNION ALL``), and applications — each one ``IN (...)`` query for the whole page,
and skipped when there is nothing to ask. Callers pass rows they already filtered for the
viewer; boosts whose original the viewer may not see are dropped here.

Viewer-specific flags (``favourited``, ``reblogged``, ``muted``, ``bookmarked``, ``pinned``,
``filtered``) appear only for a logged-in viewer, as on Mastodon. ``hearthside.group``
names the group a post belongs to (a Hearthside extension).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import String, literal, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from server.config import Config
from server.entities import account_url, acct, iso, render_account
from server.models import Account, Favourite, Mention, Notification, OAuthApp, Status, StatusEdit, StatusTag, Tag
from server.statuses import status_uri, status_url, tag_url, visible_clause

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


_NULLS = (literal(None, String()), literal(None, String()), literal(None, String()), literal(None, String()))


class _Batch:
    """Everything a page of statuses needs, loaded in a handful of queries."""

    def __init__(self, config: Config, viewer_id: int | None) -> None:
        self.config = config
        self.viewer_id = viewer_id
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
        uri)``; one round trip instead of four is most of a page's cost on SQLite.
        """
        ids = {s.id for s in content}
        text = String()
        parts: list[Any] = [
            select(
                literal("m", text),
                Mention.status_id,
                Account.id,
                Account.username,
                Account.domain,
                Account.actor_type,
                Account.url,
                Account.uri,
            )
            .join(Account, Account.id == Mention.account_id)
            .where(Mention.status_id.in_(ids)),
            select(literal("t", text), StatusTag.status_id, Tag.id, Tag.name, *_NULLS)
            .join(Tag, Tag.id == StatusTag.tag_id)
            .where(StatusTag.status_id.in_(ids)),
        ]
        if self.viewer_id is not None:
            parts.append(
                select(literal("f", text), Favourite.status_id, Favourite.id, literal(None, text), *_NULLS).where(
                    Favourite.account_id == self.viewer_id, Favourite.status_id.in_(ids)
                )
            )
            parts.append(
                select(literal("r", text), Status.reblog_of_id, Status.id, literal(None, text), *_NULLS).where(
                    # "+ 0" keeps SQLite on the reblog_of_id index: the account_id one would
                    # walk every post the viewer ever wrote.
                    Status.account_id + 0 == self.viewer_id,
                    Status.reblog_of_id.in_(ids),
                    Status.deleted_at.is_(None),
                )
            )
        app_ids = {s.application_id for s in content if s.application_id is not None}
        if app_ids:
            parts.append(
                select(
                    literal("a", text),
                    OAuthApp.id,
                    OAuthApp.id,
                    OAuthApp.name,
                    literal(None, text),
                    literal(None, text),
                    OAuthApp.website,
                    literal(None, text),
                ).where(OAuthApp.id.in_(app_ids))
            )
        rows = await session.execute(union_all(*parts))
        for kind, key, ref, name, domain, actor_type, url, uri in rows:
            if kind == "m":
                person = _Mentioned(name, domain, actor_type, url, uri)
                self.mentions.setdefault(key, []).append(
                    {
                        "id": str(ref),
                        "username": name,
                        "url": account_url(self.config, person),  # type: ignore[arg-type]
                        "acct": name if not domain else f"{name}@{domain}",
                    }
                )
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
        data: dict[str, Any] = {
            "id": str(s.id),
            "created_at": iso(s.created_at),
            "in_reply_to_id": str(s.in_reply_to_id) if s.in_reply_to_id is not None else None,
            "in_reply_to_account_id": (str(s.in_reply_to_account_id) if s.in_reply_to_account_id is not None else None),
            "sensitive": s.sensitive,
            "spoiler_text": s.spoiler_text,
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
) -> list[dict[str, Any]]:
    """Render ``statuses`` (already visible to the viewer) in order, in constant queries.

    Boosts whose original the viewer may not see, or whose original's author is in
    ``hidden_accounts`` (a timeline's mutes), are left out.
    """
    if not statuses:
        return []
    batch = _Batch(config, viewer_id)
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
    rendered = await render_statuses(session, config, [status], viewer_id, with_text=with_text)
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
    batch = _Batch(config, viewer_id)
    await batch.load(session, list(statuses.values()), ())
    missing = {n.from_account_id for n in notes} - batch.accounts.keys()
    if missing:
        senders = await session.execute(select(Account).where(Account.id.in_(missing)))
        batch.accounts.update({a.id: a for a in senders.scalars()})
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
        if note.type in STATUS_TYPES or note.status_id is not None:
            status = statuses.get(note.status_id) if note.status_id is not None else None
            rendered = batch.status(status) if status is not None else None
            if rendered is None:
                continue
            data["status"] = rendered
        out.append(data)
    return out
