"""Member safety: author-only signposting, the crisis queue, concern reports, safe messaging.

Design note
-----------
Crisis-language detection (``moderation.crisis``) is a triage aid for people, never an
automatic action. What it may cause, and what it may not:

* **Signposting, author only.** A draft check (``POST /api/v1/hearthside/safety/check``) and
  the answer to the author's own ``POST /api/v1/statuses`` carry ``hearthside_support`` (the
  latter only when something matched, so other answers stay Mastodon's): a
  supportive, non-clinical message and the helplines configured for the author's country
  (their setting, else ``[safety] default_country``) and language. It is computed for that
  one response and stored nowhere; other viewers, timelines, federation and exports never see
  it, and the post is published as written.
* **The crisis queue.** A published *local* post whose detection says ``crisis`` becomes a
  ``CrisisItem`` (remote posts are not queued: local responders cannot reach their authors
  and other instances' members are their moderators' care). Items are seen only by staff
  with the trained-responder flag and by admins, ordered by priority (method detail first,
  then high, then the rest) and due time (created + ``response_target_minutes``); an item
  still ``open`` past its due time is ``overdue``. States follow :data:`TRANSITIONS`;
  dismissing needs a reason; every step writes an audit entry (never the explanation, the
  matched words or a concern's reporter).
* **Concern reports** ("I'm worried about this person") become ``concern`` items for the
  responders and nothing else: the subject gets no notification, message or activity (the
  Reddit Cares abuse case, research/moderation.md §5.4); only a responder, deciding, makes
  contact. Rate-limited per reporter (``[safety] concerns_per_day``, default 3, and
  ``concerns_per_subject_per_day``, default 1).
* **Safe messaging.** A responder who confirms method detail or graphic self-harm hides the
  post pending review (``Status.hidden_at``; ``server.statuses.visible_clause`` then shows it
  to its author and staff only). Nothing is federated: a ``Delete`` would be final on other
  instances, and removal can isolate the author; remote copies stay. The author gets a
  private ``hearthside.safety_support`` notification with resources.

Logs carry ids and levels only, never text, explanations or matched words.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.auth import Viewer
from server.config import Config
from server.entities import iso, render_account
from server.errors import Forbidden, NotFound, TooManyRequests, Unprocessable
from server.ids import new_id
from server.models import (
    Account,
    CrisisItem,
    CrisisNotificationLink,
    Notification,
    Status,
    User,
)
from server.reports import audit
from server.web import now

if TYPE_CHECKING:
    from moderation.crisis import Detection, Detector

log = logging.getLogger(__name__)

# Notification types (rendered with payloads by :func:`notification_payloads`).
CRISIS_ALERT = "hearthside.admin.crisis"
SUPPORT = "hearthside.safety_support"
NOTIFICATION_TYPES = (CRISIS_ALERT, SUPPORT)

MESSAGE_LANGUAGES = ("en", "ru", "fr")
HIDE_REASONS = ("method_detail", "graphic_self_harm")
CONCERN_WINDOW = timedelta(hours=24)
MAX_COMMENT = 1000
MAX_REASON = 1000

# action -> (states it may start from, state it leads to)
TRANSITIONS: dict[str, tuple[frozenset[str], str]] = {
    "acknowledge": (frozenset({"open"}), "acknowledged"),
    "escalate": (frozenset({"open", "acknowledged"}), "escalated"),
    "resolve": (frozenset({"open", "acknowledged", "escalated"}), "resolved"),
    "dismiss": (frozenset({"open", "acknowledged", "escalated"}), "dismissed"),
}
STATES = ("open", "acknowledged", "escalated", "resolved", "dismissed")
ACTIVE_STATES = ("open", "acknowledged", "escalated")
assert {to for _from, to in TRANSITIONS.values()} | {"open"} == set(STATES)
assert all(start <= set(ACTIVE_STATES) for start, _to in TRANSITIONS.values())

# Priorities: smaller first.
PRIORITY_METHOD_DETAIL = 0
PRIORITY_HIGH = 1
PRIORITY_LOW = 2

# ---------------------------------------------------------------------------- messages

# Supportive, non-clinical texts (no diagnosis, no "detected"): what the author reads.
_SIGNPOST = {
    "en": "It sounds like things might be really hard right now. You don't have to go through this alone: if "
    "you'd like to talk to someone, these services are free and confidential. Only you can see this message.",
    "ru": "Похоже, сейчас вам может быть очень тяжело. Вы не обязаны справляться с этим в одиночку: если "
    "захотите с кем-нибудь поговорить, эти службы бесплатны и конфиденциальны. Это сообщение видите только вы.",
    "fr": "On dirait que les choses sont peut-être très difficiles en ce moment. Vous n'avez pas à traverser cela "
    "seul·e : si vous souhaitez parler à quelqu'un, ces services sont gratuits et confidentiels. Vous seul·e "
    "voyez ce message.",
}
_HIDDEN = {
    "en": "A moderator has hidden one of your posts while it is reviewed, because it included details that can "
    "hurt other people who are struggling. It has not been deleted, and you are not in trouble. We care about "
    "how you are doing: if you'd like to talk to someone, these services are free and confidential.",
    "ru": "Модератор временно скрыл один из ваших постов на время проверки: в нём были подробности, которые "
    "могут навредить другим людям, которым сейчас тяжело. Пост не удалён, и вы ни в чём не виноваты. Нам важно, "
    "как вы себя чувствуете: если захотите с кем-нибудь поговорить, эти службы бесплатны и конфиденциальны.",
    "fr": "Un·e modérateur·rice a masqué l'une de vos publications le temps de la relire, car elle contenait des "
    "détails qui peuvent faire du mal à d'autres personnes en difficulté. Elle n'a pas été supprimée et vous "
    "n'avez rien fait de mal. Nous tenons à savoir comment vous allez : si vous souhaitez parler à quelqu'un, "
    "ces services sont gratuits et confidentiels.",
}
_EMERGENCY = {
    "en": "If you are in immediate danger, please call your local emergency number.",
    "ru": "Если вам угрожает непосредственная опасность, позвоните в местную экстренную службу.",
    "fr": "Si vous êtes en danger immédiat, appelez le numéro d'urgence local.",
}
_CONCERN_RECEIVED = {
    "en": "Thank you for looking out for them. Trained responders will read this; nothing is sent to the person "
    "automatically, and they will not learn who raised it from us.",
    "ru": "Спасибо за вашу заботу. Это прочитают подготовленные модераторы; человеку ничего не отправляется "
    "автоматически, и от нас он не узнает, кто обратился.",
    "fr": "Merci de veiller sur cette personne. Des modérateur·rices formé·es vont lire ceci ; rien n'est envoyé "
    "automatiquement à la personne, et nous ne lui dirons pas qui s'en est inquiété.",
}


# For a member who receives a message that may indicate the sender is in crisis (shown on the
# member's own device by `hearthside dm`: the server never sees the message).
_SUPPORTER = {
    "en": "Someone you are talking with may be going through something very hard. You don't have to handle it "
    "alone: you can gently ask how they are and share these services with them, which are free and "
    "confidential. If you think they are in immediate danger, contact your local emergency number. Only you "
    "can see this message.",
    "ru": "Возможно, вашему собеседнику сейчас очень тяжело. Вам не нужно справляться с этим в одиночку: можно "
    "бережно спросить, как он, и поделиться с ним этими службами, они бесплатны и конфиденциальны. Если вы "
    "думаете, что ему угрожает непосредственная опасность, позвоните в местную экстренную службу. Это "
    "сообщение видите только вы.",
    "fr": "Une personne avec qui vous échangez traverse peut-être quelque chose de très difficile. Vous n'avez pas "
    "à gérer cela seul·e : vous pouvez lui demander doucement comment elle va et lui indiquer ces services, "
    "gratuits et confidentiels. Si vous pensez qu'elle est en danger immédiat, appelez le numéro d'urgence "
    "local. Vous seul·e voyez ce message.",
}


def message_language(language: str | None) -> str:
    base = (language or "").split("-")[0].lower()
    return base if base in MESSAGE_LANGUAGES else "en"


# ---------------------------------------------------------------------------- helplines

_HELPLINE_TEXT = ("name", "phone", "sms", "chat", "url", "hours", "notes", "source", "last_verified", "paired_with")
_HELPLINE_LISTS = ("languages", "countries")
_CONTACTS = ("phone", "sms", "chat", "url")


@dataclass(frozen=True, slots=True)
class Helpline:
    name: str
    phone: str
    sms: str
    chat: str
    url: str
    languages: tuple[str, ...]
    countries: tuple[str, ...]
    hours: str
    notes: str
    source: str
    last_verified: date | None  # None: "unverified"
    paired_with: str

    def member_view(self) -> dict[str, Any]:
        """What a member sees: how to reach the service (not our verification bookkeeping)."""
        return {
            "name": self.name,
            "phone": self.phone or None,
            "sms": self.sms or None,
            "chat": self.chat or None,
            "url": self.url or None,
            "hours": self.hours or None,
            "notes": self.notes or None,
            "languages": list(self.languages),
            "paired_with": self.paired_with or None,
        }


def _problem(entry: Any) -> str | None:
    if not isinstance(entry, dict):
        return "must be a table such as {name = ..., phone = ..., source = ...}"
    unknown = set(entry) - set(_HELPLINE_TEXT) - set(_HELPLINE_LISTS)
    if unknown:
        return f"unknown key {sorted(unknown)[0]!r} (known: {', '.join(_HELPLINE_TEXT + _HELPLINE_LISTS)})"
    for key in _HELPLINE_TEXT:
        if not isinstance(entry.get(key, ""), str):
            return f"{key} must be a string"
    for key in _HELPLINE_LISTS:
        value = entry.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            return f"{key} must be a list of strings"
    if not entry.get("name", "").strip():
        return "name is required"
    if not any(entry.get(k, "").strip() for k in _CONTACTS):
        return "needs at least one of phone, sms, chat, url"
    if not entry.get("source", "").startswith("https://"):
        return "source must be the https:// address of the official page the entry was checked against"
    if not entry.get("countries"):
        return "countries must name at least one country"
    for country in entry["countries"]:
        if not (len(country) == 2 and country.isascii() and country.isalpha() and country.isupper()):
            return f"countries: {country!r} is not an ISO 3166-1 alpha-2 code in capitals"
    verified = entry.get("last_verified", "unverified")
    if verified != "unverified":
        try:
            date.fromisoformat(verified)
        except ValueError:
            return f"last_verified must be a date (YYYY-MM-DD) or 'unverified', got {verified!r}"
    return None


def check_helplines(value: Any) -> str | None:
    """The config check for ``[safety] helplines`` (a problem description, or None)."""
    names: set[str] = set()
    for i, entry in enumerate(value):
        problem = _problem(entry)
        if problem:
            return f"[{i}]: {problem}"
        if entry["name"] in names:
            return f"[{i}]: name {entry['name']!r} appears twice"
        names.add(entry["name"])
    for i, entry in enumerate(value):
        partner = entry.get("paired_with", "")
        if partner and partner not in names:
            return f"[{i}]: paired_with names {partner!r}, which is not an entry"
        if partner == entry["name"]:
            return f"[{i}]: paired_with names the entry itself"
    return None


def _parse(entry: Mapping[str, Any]) -> Helpline:
    verified = entry.get("last_verified", "unverified")
    return Helpline(
        name=entry["name"],
        phone=entry.get("phone", ""),
        sms=entry.get("sms", ""),
        chat=entry.get("chat", ""),
        url=entry.get("url", ""),
        languages=tuple(v.lower() for v in entry.get("languages", [])),
        countries=tuple(entry.get("countries", [])),
        hours=entry.get("hours", ""),
        notes=entry.get("notes", ""),
        source=entry.get("source", ""),
        last_verified=None if verified == "unverified" else date.fromisoformat(verified),
        paired_with=entry.get("paired_with", ""),
    )


def helplines(config: Config) -> tuple[Helpline, ...]:
    """The configured directory, parsed once per configuration."""
    raw = config.values["safety"]["helplines"]
    cached = _PARSED.get(id(raw))
    if cached is None or cached[0] is not raw:
        cached = (raw, tuple(_parse(e) for e in raw))
        _PARSED.clear()
        _PARSED[id(raw)] = cached
    return cached[1]


_PARSED: dict[int, tuple[Any, tuple[Helpline, ...]]] = {}


def stale_reason(helpline: Helpline, today: date, period_days: int) -> str | None:
    """Why an entry needs checking again, or None while it is within the review period."""
    if helpline.last_verified is None:
        return "never verified"
    if today - helpline.last_verified > timedelta(days=period_days):
        return f"last verified {helpline.last_verified.isoformat()}, more than {period_days} days ago"
    return None


def helpline_warnings(config: Config, today: date | None = None) -> list[str]:
    """One line per helpline entry past its review period (for admins, ``hearthside doctor``)."""
    today = today or now().date()
    period = config.get("safety", "review_period_days")
    out = []
    for h in helplines(config):
        reason = stale_reason(h, today, period)
        if reason:
            out.append(f"helpline {h.name!r} needs checking at {h.source}: {reason}")
    return out


def warn_stale_helplines(config: Config) -> None:
    """Log (at startup) how many helplines are past their review period; names are config, not content."""
    for warning in helpline_warnings(config):
        log.warning("safety: %s", warning)


def render_admin_helplines(config: Config, today: date) -> list[dict[str, Any]]:
    period = config.get("safety", "review_period_days")
    out = []
    for h in helplines(config):
        reason = stale_reason(h, today, period)
        out.append(
            {
                **h.member_view(),
                "countries": list(h.countries),
                "source": h.source,
                "last_verified": h.last_verified.isoformat() if h.last_verified else "unverified",
                "stale": reason is not None,
                "stale_reason": reason,
            }
        )
    return out


def _pair_groups(entries: Sequence[Helpline]) -> list[list[Helpline]]:
    """Entries joined by ``paired_with`` (either direction, transitively), in config order."""
    by_name = {h.name: h for h in entries}
    parent = {h.name: h.name for h in entries}

    def root(name: str) -> str:
        while parent[name] != name:
            parent[name] = parent[parent[name]]
            name = parent[name]
        return name

    for h in entries:
        if h.paired_with in by_name:
            parent[root(h.name)] = root(h.paired_with)
    groups: dict[str, list[Helpline]] = {}
    for h in entries:
        groups.setdefault(root(h.name), []).append(h)
    return list(groups.values())


def select_helplines(config: Config, language: str | None, country: str | None) -> list[Helpline]:
    """The helplines for a member in ``country`` who writes in ``language``.

    Only services of the member's country (an unknown country: none; the panel then points
    to the directory). Paired services (e.g. one per official language) are shown together
    or not at all: a group appears only when every service in it serves the country. Groups
    with a service in the member's language come first.
    """
    if not country:
        return []
    lang = (language or "").split("-")[0].lower()
    chosen = [g for g in _pair_groups(helplines(config)) if all(country in h.countries for h in g)]
    chosen.sort(key=lambda g: 0 if any(lang in h.languages for h in g) else 1)  # stable: config order within
    return [h for g in chosen for h in g]


def support_panel(
    config: Config, *, kind: str, level: str, language: str | None, country: str | None
) -> dict[str, Any]:
    """The author-only panel: a supportive message and where to find someone to talk to."""
    lang = message_language(language)
    texts = _HIDDEN if kind == "post_hidden" else _SIGNPOST
    directory = config.get("safety", "helpline_directory_url") or None
    return {
        "kind": kind,
        "level": level,
        "language": lang,
        "country": country,
        "message": texts[lang],
        "emergency": _EMERGENCY[lang] if level == "high" or kind == "post_hidden" else None,
        "helplines": [h.member_view() for h in select_helplines(config, language, country)],
        "directory_url": directory,
    }


def support_kit(config: Config, country: str | None) -> dict[str, Any]:
    """What a member's own device needs to signpost encrypted messages without the server
    seeing them (docs/safety.md "Encrypted messages"): the panels for each message language
    and level, for the member writing and for a member receiving, and the instance's own
    lexicon changes so that the device reads messages as the instance reads posts. The same
    for every request of a member: fetching it says nothing about any message."""
    safety = config.values["safety"]
    panels: dict[str, Any] = {}
    for lang in MESSAGE_LANGUAGES:
        panels[lang] = {}
        for level in ("low", "high"):
            own = support_panel(config, kind="signpost", level=level, language=lang, country=country)
            received = {**own, "kind": "supporter", "message": _SUPPORTER[lang]}
            panels[lang][level] = {"sent": own, "received": received}
    return {
        "country": country,
        "crisis_additions": safety.get("crisis_additions") or {},
        "crisis_exclusions": safety.get("crisis_exclusions") or {},
        "panels": panels,
    }


async def member_country(session: AsyncSession, config: Config, account_id: int) -> str | None:
    user = (await session.execute(select(User).where(User.account_id == account_id))).scalar_one_or_none()
    if user is not None and user.country:
        return user.country
    return config.get("safety", "default_country") or None


async def member_locale(session: AsyncSession, account_id: int) -> str | None:
    return (await session.execute(select(User.locale).where(User.account_id == account_id))).scalar_one_or_none()


# ---------------------------------------------------------------------------- detection


def _detector_for(config: Config) -> Detector:
    from moderation.crisis import Detector  # late: the detector builds its tables on first use

    safety = config.values["safety"]
    additions, exclusions = safety.get("crisis_additions"), safety.get("crisis_exclusions")
    key = (repr(additions), repr(exclusions))
    found = _DETECTORS.get(key)
    if found is None:
        found = Detector(additions=additions, exclusions=exclusions) if additions or exclusions else Detector.default()
        _DETECTORS.clear()  # one configuration per process in practice
        _DETECTORS[key] = found
    return found


_DETECTORS: dict[tuple[str, str], Detector] = {}


def detect(config: Config, text: str, language: str | None) -> Detection | None:
    """The detector's reading of ``text``; None when this build has no detector module."""
    try:
        detector = _detector_for(config)
    except ModuleNotFoundError as exc:
        if exc.name != "moderation.crisis":
            raise
        return None
    return detector.detect(text, lang=language)


async def check_draft(
    session: AsyncSession, config: Config, account_id: int, text: str, language: str | None
) -> dict[str, Any] | None:
    """The draft check: a panel for the author, or None. Nothing is stored or logged but the level."""
    found = detect(config, text, language)
    if found is None or not found.crisis:
        return None
    lang = language or found.lang or await member_locale(session, account_id)
    log.info("safety: draft check by account %s: level %s", account_id, found.level)
    return support_panel(
        config,
        kind="signpost",
        level=found.level,
        language=lang,
        country=await member_country(session, config, account_id),
    )


async def after_local_post(
    session: AsyncSession, config: Config, status: Status, *, queue: bool = True
) -> dict[str, Any] | None:
    """Run the detector on a local post just created: queue it for responders when it may
    indicate a crisis, and return the author's panel (or None). ``queue=False`` for an
    idempotent replay, which must not queue the post twice."""
    if not status.local or not status.text:
        return None
    found = detect(config, status.text, status.language)
    if found is None or not found.crisis:
        return None
    if queue:
        priority = (
            PRIORITY_METHOD_DETAIL if found.method_detail else PRIORITY_HIGH if found.level == "high" else PRIORITY_LOW
        )
        item = await _create_item(
            session,
            config,
            kind="post",
            account_id=status.account_id,
            status_id=status.id,
            level=found.level,
            method_detail=bool(found.method_detail),
            priority=priority,
            explanation=found.explanation,
        )
        log.info("safety: post %s queued as crisis item %s (level %s)", status.id, item.id, found.level)
    lang = status.language or found.lang or await member_locale(session, status.account_id)
    return support_panel(
        config,
        kind="signpost",
        level=found.level,
        language=lang,
        country=await member_country(session, config, status.account_id),
    )


async def after_local_edit(session: AsyncSession, config: Config, status: Status) -> dict[str, Any] | None:
    """An edited local post is scanned again: when the new text may indicate a crisis and no
    item about this post is still being handled (open, acknowledged, escalated), a new item is
    queued; the author gets the panel in the edit's answer, as for a new post."""
    active = await session.scalar(
        select(CrisisItem.id).where(
            CrisisItem.status_id == status.id, CrisisItem.state.in_(("open", "acknowledged", "escalated"))
        )
    )
    return await after_local_post(session, config, status, queue=active is None)


def with_support(body: bytes, panel: dict[str, Any] | None) -> bytes:
    """A status's JSON (an object) with the author-only ``hearthside_support`` field added when
    there is a panel; absent otherwise, so an ordinary post's answer is exactly what GET shows."""
    import json

    if panel is None:
        return body
    assert body.endswith(b"}")
    extra = json.dumps(panel, ensure_ascii=False, separators=(",", ":")).encode()
    return body[:-1] + b',"hearthside_support":' + extra + b"}"


# ---------------------------------------------------------------------------- the queue


async def is_responder(session: AsyncSession, viewer: Viewer) -> bool:
    if viewer.role == "admin":
        return True
    if viewer.role != "moderator" or viewer.user_id is None:
        return False
    trained = (await session.execute(select(User.trained_responder).where(User.id == viewer.user_id))).scalar()
    return bool(trained)


async def require_responder(session: AsyncSession, viewer: Viewer) -> None:
    if not await is_responder(session, viewer):
        raise Forbidden("This action is not allowed: trained responders and admins only")


async def responder_account_ids(session: AsyncSession) -> list[int]:
    rows = await session.scalars(
        select(Account.id)
        .join(User, User.account_id == Account.id)
        .where(
            (User.role == "admin") | ((User.role == "moderator") & User.trained_responder.is_(True)),
            Account.suspended_at.is_(None),
            Account.deleted_at.is_(None),
            User.disabled.is_(False),
        )
    )
    return list(rows)


async def _create_item(
    session: AsyncSession,
    config: Config,
    *,
    kind: str,
    account_id: int,
    level: str,
    priority: int,
    status_id: int | None = None,
    reporter_account_id: int | None = None,
    method_detail: bool = False,
    explanation: str = "",
    comment: str = "",
) -> CrisisItem:
    moment = now()
    item = CrisisItem(
        id=new_id(),
        kind=kind,
        account_id=account_id,
        status_id=status_id,
        reporter_account_id=reporter_account_id,
        level=level,
        method_detail=method_detail,
        priority=priority,
        explanation=explanation,
        comment=comment,
        state="open",
        state_reason="",
        created_at=moment,
        due_at=moment + timedelta(minutes=config.get("safety", "response_target_minutes")),
        updated_at=moment,
    )
    session.add(item)
    await session.flush()
    # Responders hear of it (never the member it is about, nor the reporter of a concern).
    for responder in await responder_account_ids(session):
        if responder in (account_id, reporter_account_id):
            continue
        note = Notification(
            id=new_id(), account_id=responder, from_account_id=responder, type=CRISIS_ALERT, created_at=moment
        )
        session.add(note)
        await session.flush()
        session.add(CrisisNotificationLink(notification_id=note.id, crisis_item_id=item.id))
    return item


async def load_item(session: AsyncSession, viewer: Viewer, item_id: int) -> CrisisItem:
    """An item the viewer (a responder) may handle: never one about themselves."""
    item = await session.get(CrisisItem, item_id)
    if item is None or item.account_id == viewer.account_id:
        raise NotFound("Record not found")
    return item


async def list_items(session: AsyncSession, viewer: Viewer, states: Iterable[str], limit: int) -> list[CrisisItem]:
    query = (
        select(CrisisItem)
        .where(CrisisItem.state.in_(list(states)), CrisisItem.account_id != viewer.account_id)
        .order_by(CrisisItem.priority, CrisisItem.due_at, CrisisItem.id)
        .limit(limit)
    )
    return list(await session.scalars(query))


def _status_for_responders(status: Status) -> dict[str, Any]:
    return {
        "id": str(status.id),
        "uri": status.uri,
        "url": status.url,
        "content": status.content,
        "spoiler_text": status.spoiler_text,
        "visibility": status.visibility,
        "language": status.language,
        "created_at": iso(status.created_at),
        "deleted": status.deleted_at is not None,
        "hidden": status.hidden_at is not None,
        "hidden_reason": status.hidden_reason,
    }


async def render_items(
    session: AsyncSession, config: Config, items: Sequence[CrisisItem], *, at: datetime
) -> list[dict[str, Any]]:
    account_ids = {i.account_id for i in items} | {
        a for i in items for a in (i.reporter_account_id, i.assignee_account_id) if a is not None
    }
    accounts = {a.id: a for a in await session.scalars(select(Account).where(Account.id.in_(account_ids or {0})))}
    status_ids = {i.status_id for i in items if i.status_id is not None}
    statuses = {s.id: s for s in await session.scalars(select(Status).where(Status.id.in_(status_ids or {0})))}
    runbook = config.get("safety", "escalation_runbook")

    def account(account_id: int | None) -> dict[str, Any] | None:
        found = accounts.get(account_id) if account_id is not None else None
        return render_account(config, found) if found is not None else None

    out = []
    for item in items:
        status = statuses.get(item.status_id) if item.status_id is not None else None
        out.append(
            {
                "id": str(item.id),
                "kind": item.kind,
                "state": item.state,
                "state_reason": item.state_reason or None,
                "level": item.level,
                "priority": item.priority,
                "method_detail": item.method_detail,
                "explanation": item.explanation,
                "comment": item.comment or None,
                "account": account(item.account_id),
                "reporter": account(item.reporter_account_id),
                "assignee": account(item.assignee_account_id),
                "status": _status_for_responders(status) if status is not None else None,
                "created_at": iso(item.created_at),
                "due_at": iso(item.due_at),
                "overdue": item.state == "open" and at > item.due_at,
                "runbook": runbook,
            }
        )
    return out


def apply_action(session: AsyncSession, viewer: Viewer, item: CrisisItem, action: str, reason: str) -> None:
    """Move an item along :data:`TRANSITIONS`, with its audit entry."""
    starts, target = TRANSITIONS[action]
    if item.state not in starts:
        raise Unprocessable(f"state: cannot {action} an item that is {item.state}")
    if action == "dismiss" and not reason.strip():
        raise Unprocessable("reason: is required to dismiss an item (say why it needs no response)")
    item.state = target
    item.state_reason = reason
    item.updated_at = now()
    if item.assignee_account_id is None or action == "acknowledge":
        item.assignee_account_id = viewer.account_id
    audit(
        session,
        viewer.account_id,
        f"crisis.{action}",
        "crisis_item",
        item.id,
        reason=reason,
        details={"kind": item.kind, "state": target},
    )
    log.info("safety: crisis item %s %s by account %s", item.id, target, viewer.account_id)


# ---------------------------------------------------------------------------- safe messaging


async def _item_status(session: AsyncSession, item: CrisisItem) -> Status:
    status = await session.get(Status, item.status_id) if item.status_id is not None else None
    if status is None or status.deleted_at is not None:
        raise Unprocessable("status: this item has no post to hide (it is a concern without one, or deleted)")
    return status


async def hide_status(
    session: AsyncSession, config: Config, viewer: Viewer, item: CrisisItem, reason: str, comment: str
) -> Status:
    """Hide the item's post pending review and send its author a private supportive notice."""
    if reason not in HIDE_REASONS:
        raise Unprocessable(f"reason: must be one of {', '.join(HIDE_REASONS)}")
    status = await _item_status(session, item)
    if status.hidden_at is not None:
        raise Unprocessable("status: is already hidden")
    moment = now()
    status.hidden_at = moment
    status.hidden_reason = reason
    if item.state == "open":
        item.state = "acknowledged"
        item.assignee_account_id = item.assignee_account_id or viewer.account_id
    item.updated_at = moment
    audit(
        session,
        viewer.account_id,
        "status.hide",
        "status",
        status.id,
        reason=reason,
        details={"crisis_item": str(item.id), "comment": bool(comment)},
    )
    if status.local:
        session.add(
            Notification(
                id=new_id(),
                account_id=status.account_id,
                from_account_id=status.account_id,
                type=SUPPORT,
                status_id=status.id,
                created_at=moment,
            )
        )
    log.info("safety: post %s hidden pending review (item %s)", status.id, item.id)
    return status


async def unhide_status(session: AsyncSession, viewer: Viewer, item: CrisisItem) -> Status:
    status = await _item_status(session, item)
    if status.hidden_at is None:
        raise Unprocessable("status: is not hidden")
    status.hidden_at = None
    status.hidden_reason = None
    item.updated_at = now()
    audit(session, viewer.account_id, "status.unhide", "status", status.id, details={"crisis_item": str(item.id)})
    log.info("safety: post %s shown again (item %s)", status.id, item.id)
    return status


# ---------------------------------------------------------------------------- concerns


async def file_concern(
    session: AsyncSession,
    config: Config,
    reporter_id: int,
    *,
    account_id: int,
    status_id: int | None,
    comment: str,
    at: datetime,
) -> tuple[CrisisItem, dict[str, Any]]:
    """A member's concern about another: a ``concern`` item for responders, nothing else."""
    from server.statuses import load_visible

    if account_id == reporter_id:
        raise Unprocessable("account_id: is you; the draft check and your helplines are at /api/v1/hearthside/safety")
    subject = await session.get(Account, account_id)
    if subject is None or subject.deleted_at is not None or subject.suspended_at is not None:
        raise NotFound("Record not found")
    if not subject.local or subject.is_group:
        raise Unprocessable("account_id: concerns can be raised about members of this instance only")
    if status_id is not None:
        status = await load_visible(session, status_id, reporter_id)
        if status.account_id != account_id:
            raise Unprocessable("status_id: is not a post by this account")
    since = at - CONCERN_WINDOW
    recent = (
        await session.execute(
            select(CrisisItem.account_id, CrisisItem.created_at).where(
                CrisisItem.kind == "concern",
                CrisisItem.reporter_account_id == reporter_id,
                CrisisItem.created_at > since,
            )
        )
    ).all()
    same = [created for subject_id, created in recent if subject_id == account_id]
    per_day = int(config.get("safety", "concerns_per_day"))
    per_subject = int(config.get("safety", "concerns_per_subject_per_day"))
    if len(same) >= per_subject or len(recent) >= per_day:
        oldest = min(same) if len(same) >= per_subject else min(c for _s, c in recent)
        retry = max(1, int((oldest + CONCERN_WINDOW - at).total_seconds()))
        which = "about this member" if same and len(same) >= per_subject else "in total"
        raise TooManyRequests(
            f"You have already raised the concerns allowed {which} in the last 24 hours; responders have them. "
            "If someone is in immediate danger, call your local emergency number.",
            retry_after=retry,
        )
    item = await _create_item(
        session,
        config,
        kind="concern",
        account_id=account_id,
        status_id=status_id,
        reporter_account_id=reporter_id,
        level="concern",
        priority=PRIORITY_HIGH,
        comment=comment,
    )
    lang = message_language(await member_locale(session, reporter_id))
    log.info("safety: concern item %s filed", item.id)
    return item, {"id": str(item.id), "created_at": iso(item.created_at), "message": _CONCERN_RECEIVED[lang]}


# ---------------------------------------------------------------------------- responders, settings


async def set_responder(session: AsyncSession, viewer: Viewer, account_id: int, trained: bool) -> User:
    if viewer.role != "admin":
        raise Forbidden("This action is not allowed: admins only")
    user = (await session.execute(select(User).where(User.account_id == account_id))).scalar_one_or_none()
    if user is None:
        raise NotFound("Record not found")
    if trained and user.role not in ("admin", "moderator"):
        raise Unprocessable("trained: only moderators and admins can be trained responders")
    user.trained_responder = trained
    audit(session, viewer.account_id, "account.responder", "account", account_id, details={"trained": trained})
    return user


def check_country(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not (isinstance(value, str) and len(value) == 2 and value.isascii() and value.isalpha()):
        raise Unprocessable("country: must be an ISO 3166-1 alpha-2 code such as FR, or empty")
    return value.upper()


async def render_settings(session: AsyncSession, config: Config, account_id: int) -> dict[str, Any]:
    user = (await session.execute(select(User).where(User.account_id == account_id))).scalar_one()
    return {"country": user.country, "default_country": config.get("safety", "default_country") or None}


# ---------------------------------------------------------------------------- notifications


async def notification_payloads(
    session: AsyncSession, config: Config, notes: Sequence[Notification]
) -> dict[int, dict[str, Any]]:
    """What safety notifications carry: the author's panel for ``hearthside.safety_support``,
    the item (id, kind, due time) for a responder's ``hearthside.admin.crisis``."""
    out: dict[int, dict[str, Any]] = {}
    alerts = [n.id for n in notes if n.type == CRISIS_ALERT]
    if alerts:
        rows = await session.execute(
            select(CrisisNotificationLink.notification_id, CrisisItem)
            .join(CrisisItem, CrisisItem.id == CrisisNotificationLink.crisis_item_id)
            .where(CrisisNotificationLink.notification_id.in_(alerts))
        )
        for note_id, item in rows:
            out[note_id] = {
                "hearthside_crisis_item": {"id": str(item.id), "kind": item.kind, "due_at": iso(item.due_at)}
            }
    for note in notes:
        if note.type != SUPPORT or note.status_id is None:
            continue
        status = await session.get(Status, note.status_id)
        if status is None:
            continue
        language = status.language or await member_locale(session, note.account_id)
        out[note.id] = {
            "hearthside_support": support_panel(
                config,
                kind="post_hidden",
                level="high",
                language=language,
                country=await member_country(session, config, note.account_id),
            )
        }
    return out
