"""The ``Note`` of a local post and the ``Create`` carrying it: one builder for what GET serves
(``server/api/activitypub.py``) and what deliveries carry (``server/outbox.py``), so a post
fetched and a post delivered are the same document.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from federation.documents import ActorUrls, HashtagTag, MentionTag, addressing, create_activity, note_document
from server.config import Config
from server.entities import account_uri
from server.models import Account, Group, Mention, Status, StatusTag, Tag
from server.statuses import status_uri, tag_url
from server.topics import federated_warning


def handle(config: Config, account: Account) -> str:
    return f"@{account.username}@{config.domain if account.local else account.domain}"


@dataclass(frozen=True, slots=True)
class Related:
    """What rendering a batch of statuses needs besides their rows (a few queries per batch)."""

    mentions: dict[int, list[Account]]
    tags: dict[int, list[Tag]]
    parents: dict[int, str]
    groups: dict[int, tuple[Account, Group | None]]  # a remote group has no settings row


async def load_related(session: Any, statuses: Sequence[Status]) -> Related:
    ids = [s.id for s in statuses]
    mentions: dict[int, list[Account]] = defaultdict(list)
    tags: dict[int, list[Tag]] = defaultdict(list)
    parents: dict[int, str] = {}
    groups: dict[int, tuple[Account, Group | None]] = {}
    if not ids:
        return Related(mentions, tags, parents, groups)
    for status_id, account in await session.execute(
        select(Mention.status_id, Account)
        .join(Account, Account.id == Mention.account_id)
        .where(Mention.status_id.in_(ids))
    ):
        mentions[status_id].append(account)
    for status_id, tag in await session.execute(
        select(StatusTag.status_id, Tag).join(Tag, Tag.id == StatusTag.tag_id).where(StatusTag.status_id.in_(ids))
    ):
        tags[status_id].append(tag)
    parent_ids = {s.in_reply_to_id for s in statuses if s.in_reply_to_id is not None}
    if parent_ids:
        found = dict((await session.execute(select(Status.id, Status.uri).where(Status.id.in_(parent_ids)))).all())
        for s in statuses:
            uri = found.get(s.in_reply_to_id)
            if uri:
                parents[s.id] = uri
    for s in statuses:
        if s.id not in parents and s.in_reply_to_uri:
            parents[s.id] = s.in_reply_to_uri
    group_ids = {s.group_id for s in statuses if s.group_id is not None}
    if group_ids:
        for account, settings in await session.execute(
            select(Account, Group).outerjoin(Group, Group.account_id == Account.id).where(Account.id.in_(group_ids))
        ):
            groups[account.id] = (account, settings)
    return Related(mentions, tags, parents, groups)


def note_and_create(
    config: Config, status: Status, author: Account, related: Related
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The Note for a local status and the ``Create`` that carries it."""
    author_uri = account_uri(config, author)
    group_uri: str | None = None
    group_followers: str | None = None
    members_only = False
    if status.group_id is not None and status.group_id in related.groups:
        group_account, settings = related.groups[status.group_id]
        group_uri = account_uri(config, group_account)
        if settings is not None:
            group_followers = ActorUrls.of(group_uri).followers
            members_only = settings.members_only
        else:  # a remote group: what its actor document said (as server.outbox addresses it)
            group_followers = group_account.followers_url or f"{group_uri}/followers"
            members_only = group_account.locked
    mentioned = related.mentions.get(status.id, [])
    to, cc = addressing(
        status.visibility,
        author_followers=ActorUrls.of(author_uri).followers,
        group=group_uri,
        group_followers=group_followers,
        group_members_only=members_only,
        # A mentioned group is the post's group (server.statuses), addressed as such above.
        mentions=[account_uri(config, a) for a in mentioned if not a.is_group],
    )
    tags: list[MentionTag | HashtagTag] = [MentionTag(account_uri(config, a), handle(config, a)) for a in mentioned]
    tags += [HashtagTag(tag_url(config, t.name), t.display_name or t.name) for t in related.tags.get(status.id, [])]
    note_id = status.uri or status_uri(config, author, status.id)
    topics = list(status.topics or [])  # trigger topics: a content warning and hearthside:topics
    note = note_document(
        id=note_id,
        attributed_to=author_uri,
        content=status.content,
        published=status.created_at,
        to=to,
        cc=cc,
        url=status.url,
        source=status.text,
        language=status.language,
        summary=federated_warning(config, topics, status.spoiler_text, status.language) or None,
        sensitive=status.sensitive or bool(topics),
        updated=status.edited_at,
        in_reply_to=related.parents.get(status.id),
        tags=tags,
        audience=group_uri,
        topics=topics,
    )
    create = create_activity(f"{note_id}/activity", author_uri, note, to, cc, status.created_at)
    return note, create
