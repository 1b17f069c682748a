"""Trigger topics: the instance's taxonomy, authors' tags and members' show/warn/hide choices.

Design note
-----------
The taxonomy lives in ``[safety] trigger_topics`` (``server.config``): an id (``a-z``, ``0-9``,
``-``) and a label per language. Authors tag posts with ids (``hearthside_topics`` on ``POST``
and ``PUT /api/v1/statuses``, stored in ``statuses.topics``; an unknown id is a 422 naming it).
Remote posts get their topics from our extension property ``hearthside:topics`` (ids we do not
know are dropped).

Members choose ``show`` (the default, not stored), ``warn`` or ``hide`` per topic
(``TopicPreference``). Rendering asks :class:`TopicView` about each post:

* a post matches a topic when it is tagged with it, or when its content warning
  (``spoiler_text``) names the topic's id or one of its labels as whole words, whoever wrote
  it and wherever it came from (remote content warnings count);
* ``hide`` wins over ``warn``: the post is left out of lists (timelines, threads, search,
  notifications, ``GET /api/v1/statuses?id[]``); opened by its id, it is collapsed instead;
* ``warn``: ``sensitive`` is forced and the content warning names the topics in the viewer's
  language, so every Mastodon client collapses the post;
* a member's own posts are never collapsed or hidden for them.

Leaving hidden posts out after the page query (as boosts of invisible posts already are) keeps
the timelines' queries, their prepared group statement and their indexes unchanged and covers
content-warning matches, which SQL on ``statuses.topics`` could not; a page may come back short
and the ``Link`` header stays correct.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.config import Config
from server.errors import Unprocessable
from server.models import TopicPreference, User
from server.web import now

MODES = ("show", "warn", "hide")
LANGUAGES = ("en", "ru", "fr")
MAX_TOPICS_PER_POST = 10
_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,47}$")
# What a collapsed post's content warning starts with, per viewer language.
_PREFIX = {"en": "Topics", "ru": "Темы", "fr": "Sujets"}


@dataclass(frozen=True, slots=True)
class Topic:
    id: str
    labels: Mapping[str, str]  # language -> label

    def label(self, language: str) -> str:
        return self.labels.get(language) or self.labels.get("en") or next(iter(self.labels.values()), self.id)

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "labels": dict(self.labels), "label": self.label("en")}


def parse_topic(entry: str) -> Topic:
    """``"id: en=Label; ru=Метка; fr=Libellé"`` as a :class:`Topic`; ``ValueError`` names the problem."""
    topic_id, sep, rest = entry.partition(":")
    topic_id = topic_id.strip()
    if not sep or not _ID.match(topic_id):
        raise ValueError(f"{entry!r} must start with an id (a-z, 0-9, '-') and a colon")
    labels: dict[str, str] = {}
    for part in rest.split(";"):
        if not part.strip():
            continue
        language, eq, label = part.partition("=")
        language, label = language.strip().lower(), label.strip()
        if not eq or not re.fullmatch(r"[a-z]{2,3}", language) or not label:
            raise ValueError(f"{entry!r}: labels are written 'en=Label' and separated by ';'")
        labels[language] = label
    if not labels:
        raise ValueError(f"{entry!r} has no label")
    return Topic(topic_id, labels)


@dataclass(frozen=True)
class Taxonomy:
    topics: tuple[Topic, ...]
    by_id: Mapping[str, Topic] = field(default_factory=dict)
    # topic id -> whole-word pattern over its id and labels, for content warnings (casefolded)
    patterns: Mapping[str, re.Pattern[str]] = field(default_factory=dict)


@lru_cache(maxsize=16)
def _taxonomy(entries: tuple[str, ...]) -> Taxonomy:
    topics = tuple(parse_topic(e) for e in entries)
    patterns = {}
    for topic in topics:
        words = {topic.id, topic.id.replace("-", " "), *topic.labels.values()}
        alternatives = "|".join(re.escape(w.casefold()) for w in sorted(words, key=len, reverse=True))
        patterns[topic.id] = re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)")
    return Taxonomy(topics, {t.id: t for t in topics}, patterns)


def taxonomy(config: Config) -> Taxonomy:
    """The instance's trigger topics (validated when the configuration was read)."""
    return _taxonomy(tuple(config.get("safety", "trigger_topics")))


def check_topics(config: Config, values: Iterable[Any], *, field_name: str = "hearthside_topics") -> list[str]:
    """Authors' topic ids, validated against the taxonomy, without duplicates, in order."""
    known = taxonomy(config).by_id
    out: list[str] = []
    for value in values:
        if not isinstance(value, str) or value not in known:
            raise Unprocessable(f"{field_name}: unknown trigger topic {str(value)[:64]!r}")
        if value not in out:
            out.append(value)
    if len(out) > MAX_TOPICS_PER_POST:
        raise Unprocessable(f"{field_name}: at most {MAX_TOPICS_PER_POST} topics")
    return out


def stored_topics(value: Any) -> list[str]:
    """A ``statuses.topics`` value as fetched: a list, or JSON text from raw SQLite rows."""
    if not value or value == "[]":
        return []
    if isinstance(value, str):
        import json

        value = json.loads(value)
    return [v for v in value if isinstance(v, str)]


@dataclass(frozen=True, slots=True)
class TopicView:
    """What one viewer chose: which topics to warn about and which to hide."""

    viewer_id: int
    language: str
    warn: frozenset[str]
    hide: frozenset[str]
    taxonomy: Taxonomy

    def judge(self, author_id: int, topics: Any, spoiler_text: str) -> tuple[str, list[str]]:
        """``("show"|"warn"|"hide", matched topic ids in taxonomy order)`` for one post."""
        if author_id == self.viewer_id:
            return "show", []
        tagged = set(stored_topics(topics))
        folded = spoiler_text.casefold() if spoiler_text else ""
        matched = [
            t.id
            for t in self.taxonomy.topics
            if (t.id in self.warn or t.id in self.hide)
            and (t.id in tagged or (folded and self.taxonomy.patterns[t.id].search(folded)))
        ]
        if not matched:
            return "show", []
        return ("hide" if any(m in self.hide for m in matched) else "warn"), matched

    def spoiler(self, matched: Sequence[str], existing: str) -> str:
        return content_warning(self.taxonomy, matched, existing, self.language)


def content_warning(known: Taxonomy, topic_ids: Sequence[str], existing: str, language: str) -> str:
    """A content warning naming ``topic_ids`` in ``language``, then the author's own warning
    (kept alone when it already names every topic)."""
    topic_ids = [t for t in topic_ids if t in known.by_id]
    if not topic_ids or (existing.strip() and all(known.patterns[t].search(existing.casefold()) for t in topic_ids)):
        return existing
    names = ", ".join(known.by_id[t].label(language) for t in topic_ids)
    text = f"{_PREFIX.get(language, _PREFIX['en'])}: {names}"
    return f"{text} — {existing}" if existing.strip() else text


def federated_warning(config: Config, topic_ids: Sequence[str], spoiler_text: str, language: str | None) -> str:
    """The ``summary`` of an outgoing Note: the author's content warning, naming the post's
    topics in its language (English when we have no label in it)."""
    lang = (language or "en").split("-")[0].lower()
    return content_warning(taxonomy(config), topic_ids, spoiler_text, lang if lang in _PREFIX else "en")


def known_topics(config: Config, topic_ids: Iterable[str]) -> list[str]:
    """The ids of a remote post's ``hearthside:topics`` that our taxonomy has."""
    known = taxonomy(config).by_id
    return [t for t in topic_ids if t in known]


async def load_choices(session: AsyncSession, account_id: int) -> dict[str, str]:
    row = await session.get(TopicPreference, account_id)
    return dict(row.choices) if row is not None else {}


async def load_view(session: AsyncSession, config: Config, viewer_id: int | None) -> TopicView | None:
    """The viewer's choices, or None when there is nothing to change (anonymous viewers, or
    every topic shown): one primary-key query."""
    if viewer_id is None:
        return None
    row = (
        await session.execute(
            select(TopicPreference.choices, User.locale)
            .outerjoin(User, User.account_id == TopicPreference.account_id)
            .where(TopicPreference.account_id == viewer_id)
        )
    ).first()
    if row is None or not row[0]:
        return None
    choices, locale = row
    known = taxonomy(config)
    warn = frozenset(k for k, v in choices.items() if v == "warn" and k in known.by_id)
    hide = frozenset(k for k, v in choices.items() if v == "hide" and k in known.by_id)
    if not warn and not hide:
        return None
    language = (locale or "en").split("-")[0].lower()
    return TopicView(viewer_id, language, warn, hide, known)


def render_preferences(config: Config, choices: Mapping[str, str]) -> dict[str, Any]:
    return {"preferences": {t.id: choices.get(t.id, "show") for t in taxonomy(config).topics}}


async def save_preferences(
    session: AsyncSession, config: Config, account_id: int, wanted: Mapping[str, Any]
) -> dict[str, str]:
    """Merge ``wanted`` (topic id -> mode) into the member's choices; unknown ids or modes are
    a 422 naming them."""
    known = taxonomy(config).by_id
    choices = await load_choices(session, account_id)
    for topic_id, mode in wanted.items():
        if topic_id not in known:
            raise Unprocessable(f"preferences: unknown trigger topic {str(topic_id)[:64]!r}")
        if mode not in MODES:
            raise Unprocessable(f"preferences.{topic_id}: must be one of show, warn, hide")
        if mode == "show":
            choices.pop(topic_id, None)
        else:
            choices[topic_id] = mode
    row = await session.get(TopicPreference, account_id)
    if row is None:
        session.add(TopicPreference(account_id=account_id, choices=choices, updated_at=now()))
    else:
        row.choices = choices
        row.updated_at = now()
    return choices
