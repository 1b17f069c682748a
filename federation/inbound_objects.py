"""The things an incoming activity carries: posts, actors, and WebFinger answers.

How it works. :func:`parse_note`, :func:`parse_actor` and :func:`parse_jrd` first check limits
and shape (see :mod:`federation.inbound_schema`), then read the fields we use into frozen
dataclasses. They accept the shapes peers really send (research/federation.md §2.5, §8.4 items
24-25; the fediverse-pasture inputs): a single value where a list is usual, ``tag`` as one
object, ``to``/``cc`` as one string, ``inReplyTo`` as a Link or a one-item list, ``url`` as a
list of Links, ``attributedTo`` as a list of actors, ``contentMap`` without ``content``, and
``null`` for anything optional.

What it guarantees. Every HTML string comes out of :func:`federation.content.sanitize_html`
(Mastodon's allowlist), so nothing here hands on a script, style or event handler. Every URL we
return is an absolute http(s) URL; a bad ``url``, ``icon`` or attachment link is dropped rather
than passed on. An actor's ``id`` equals the URL it was fetched from, and its signing key is
owned by it and lives on its origin.

What it refuses. Posts without ``id``, ``type`` or ``attributedTo``; actors whose ``id`` differs
from where they were fetched (research/federation.md §8.2 item 8), whose key belongs to someone
else or sits on another origin (FEP-fe34), or whose username is over 2,048 characters
(research/federation.md §8.1 item 5).
"""

from __future__ import annotations

import html
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal, NamedTuple
from urllib.parse import urlsplit

from federation.content import html_to_text, normalize_hashtag, sanitize_html
from federation.e2ee import parse_actor_e2ee_properties
from federation.inbound_schema import (
    ACTOR_TYPE_DESCRIPTION,
    ACTOR_TYPES,
    AS_CONTEXT,
    AS_PUBLIC,
    NOTE_TYPES,
    POST_TYPE_DESCRIPTION,
    PUBLIC_ALIASES,
    InvalidActivity,
    check_limits,
    check_type,
    is_http_url,
    join_path,
    parse_datetime,
    run_schema,
    same_origin,
    type_names,
)

__all__ = [
    "RemoteActor",
    "RemoteAttachment",
    "RemoteNote",
    "Visibility",
    "WebFingerAnswer",
    "parse_actor",
    "parse_jrd",
    "parse_note",
]

Visibility = Literal["public", "unlisted", "private", "direct", "limited"]

MAX_PROFILE_FIELDS: Final = 50  # Mastodon's cap (research/federation.md §2.7)
# Types whose ``name`` is a title shown above the content (Lemmy/Mbin posts, articles).
TITLED_TYPES: Final = frozenset({"Page", "Article", "Image", "Audio", "Video", "Event"})
_LANGUAGE_RE = re.compile(r"[A-Za-z]{2,3}(?:-[A-Za-z0-9]{1,8})*")


# --- Reading JSON values ----------------------------------------------------------------------


def as_list(value: Any) -> list[Any]:
    """ActivityStreams allows one value where a list is usual; ``null`` means none."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def ref_id(value: Any) -> str | None:
    """The id of a reference: a URL string, or an object's ``id``; None when it has none."""
    if isinstance(value, str):
        return value if is_http_url(value) else None
    if isinstance(value, Mapping):
        found = value.get("id")
        return found if isinstance(found, str) and is_http_url(found) else None
    return None


def link_href(value: Any) -> str | None:
    """A URL from a string, a Link (``href``) or an object (``url``, which may itself be a Link)."""
    if isinstance(value, str):
        return value if is_http_url(value) else None
    if isinstance(value, Mapping):
        for key in ("href", "url"):
            found = value.get(key)
            if isinstance(found, str) and is_http_url(found):
                return found
            if key == "url" and isinstance(found, Mapping | list):
                return first_url(found)
    return None


def first_url(value: Any) -> str | None:
    """The best http(s) URL among strings and Links: a ``text/html`` Link first, as Mastodon does."""
    candidates = as_list(value)
    for item in candidates:
        if isinstance(item, Mapping) and str(item.get("mediaType", "")).split(";")[0].strip() == "text/html":
            found = link_href(item)
            if found:
                return found
    for item in candidates:
        found = link_href(item)
        if found:
            return found
    return None


def addressing(value: Any, path: str) -> tuple[str, ...]:
    """``to``/``cc``/``audience`` as URLs, with every spelling of Public as :data:`AS_PUBLIC`."""
    result: list[str] = []
    for index, item in enumerate(as_list(value)):
        if isinstance(item, str) and item in PUBLIC_ALIASES:
            address: str | None = AS_PUBLIC
        else:
            address = ref_id(item)
        if address is None:
            raise InvalidActivity("not_a_url", join_path(path, index), "must be an absolute http(s) URL")
        if address not in result:
            result.append(address)
    return tuple(result)


def optional_text(value: Any, path: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidActivity("bad_value", path, "must be a string")
    return value


def first_map_value(value: Any) -> tuple[str | None, str | None]:
    """``(language, text)`` of the first entry of a ``contentMap``-style object."""
    if isinstance(value, Mapping):
        for language, text in value.items():
            if isinstance(text, str):
                return language, text
    return None, None


def datetime_field(value: Any, path: str) -> datetime | None:
    if value is None:
        return None
    parsed = parse_datetime(value) if isinstance(value, str) else None
    if parsed is None:
        raise InvalidActivity("bad_value", path, "must be an ISO 8601 date-time")
    return parsed


def plain_text(value: str | None) -> str | None:
    """HTML (or text) to plain text; empty becomes None."""
    if value is None:
        return None
    text = html_to_text(value)
    return text or None


def first_author(value: Any) -> str | None:
    """The author in ``attributedTo``: the first entry that is not a Group (PeerTube lists the
    account and its channel), else the first one."""
    entries = as_list(value)
    for entry in entries:
        if isinstance(entry, Mapping) and "Group" in type_names(entry.get("type")):
            continue
        found = ref_id(entry)
        if found:
            return found
    for entry in entries:
        found = ref_id(entry)
        if found:
            return found
    return None


def all_authors(value: Any) -> tuple[str, ...]:
    """Every id in ``attributedTo`` (a URL, an object, or a list of them)."""
    return tuple(found for entry in as_list(value) if (found := ref_id(entry)))


def primary_type(value: Any, accepted: Collection[str]) -> str | None:
    return next((name for name in type_names(value) if name in accepted), None)


# --- Posts ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RemoteAttachment:
    """A media attachment or link; ``url`` is http(s) (``data:`` and other schemes are dropped)."""

    type: str
    url: str
    media_type: str | None
    description: str | None


@dataclass(frozen=True, slots=True)
class RemoteNote:
    """A post from another server, normalised for storage and display.

    ``content_html`` is sanitized (Mastodon's allowlist) and, for titled types (Page, Article
    and Mastodon's converted types), starts with the title as ``<p><strong>…</strong></p>``;
    ``name`` keeps the title (or a poll vote's choice, for a Note) as plain text. ``summary`` is
    the content warning as plain text. ``language`` comes from the first ``contentMap`` key or
    Lemmy's ``language.identifier``. ``mentions`` are Mention ``href``\\s and ``hashtags`` are
    normalised names (:func:`federation.content.normalize_hashtag`), both without duplicates.
    """

    id: str
    type: str
    url: str | None
    attributed_to: str
    content_html: str
    text: str
    summary: str | None
    sensitive: bool
    name: str | None
    in_reply_to: str | None
    published: datetime | None
    updated: datetime | None
    to: tuple[str, ...]
    cc: tuple[str, ...]
    audience: str | None
    mentions: tuple[str, ...]
    hashtags: tuple[str, ...]
    language: str | None
    visibility: Visibility
    attachments: tuple[RemoteAttachment, ...]
    poll_options: tuple[str, ...]
    quote_of: str | None
    comments_enabled: bool
    topics: tuple[str, ...] = ()  # Hearthside trigger topic ids (``hearthside:topics``), unchecked


def _in_reply_to(value: Any, path: str) -> str | None:
    """``inReplyTo`` as one URL; a list takes its first entry (Mastodon reads one parent)."""
    entries = as_list(value)
    if not entries:
        return None
    first = entries[0]
    found = link_href(first) if isinstance(first, Mapping) and "href" in first else ref_id(first)
    if found is None:
        raise InvalidActivity("not_a_url", path, "must be a URL, an object with an id, or a Link")
    return found


def _tags(value: Any) -> tuple[tuple[str, ...], tuple[str, ...], str | None]:
    """Mention hrefs, hashtag names and a FEP-e232 quote link from ``tag``.

    Tags are auxiliary: an entry we cannot read is skipped rather than failing the post.
    """
    mentions: list[str] = []
    hashtags: list[str] = []
    quote: str | None = None
    for tag in as_list(value):
        if not isinstance(tag, Mapping):
            continue
        kinds = type_names(tag.get("type"))
        if "Mention" in kinds:
            href = tag.get("href")
            if isinstance(href, str) and is_http_url(href) and href not in mentions:
                mentions.append(href)
        elif "Hashtag" in kinds:
            name = tag.get("name")
            normalised = normalize_hashtag(name.removeprefix("#")) if isinstance(name, str) else ""
            if normalised and normalised not in hashtags:
                hashtags.append(normalised)
        elif "Link" in kinds and quote is None:
            rel = " ".join(str(item) for item in as_list(tag.get("rel")))
            if "_misskey_quote" in rel or "quote" in rel.split():
                quote = link_href(tag)
    return tuple(mentions), tuple(hashtags), quote


def _attachments(value: Any) -> tuple[RemoteAttachment, ...]:
    found: list[RemoteAttachment] = []
    for item in as_list(value):
        if not isinstance(item, Mapping):
            continue
        url = link_href(item)
        if url is None:
            continue
        kinds = type_names(item.get("type"))
        media_type = item.get("mediaType")
        description = item.get("name") if isinstance(item.get("name"), str) else item.get("summary")
        found.append(
            RemoteAttachment(
                type=kinds[0] if kinds else "Document",
                url=url,
                media_type=media_type if isinstance(media_type, str) else None,
                description=plain_text(description) if isinstance(description, str) else None,
            )
        )
    return tuple(found)


def _poll_options(obj: Mapping[str, Any]) -> tuple[str, ...]:
    options: list[str] = []
    for key in ("oneOf", "anyOf"):
        for option in as_list(obj.get(key)):
            if isinstance(option, Mapping) and isinstance(option.get("name"), str):
                options.append(option["name"])
    return tuple(options)


def _is_followers(address: str, followers_collections: Collection[str]) -> bool:
    # Mastodon, Lemmy, Mbin, Misskey, Pleroma and GoToSocial all name it ".../followers".
    return address in followers_collections or address.rstrip("/").endswith("/followers")


def visibility_of(
    to: tuple[str, ...],
    cc: tuple[str, ...],
    mentions: tuple[str, ...],
    followers_collections: Collection[str] = (),
) -> Visibility:
    """Mastodon's visibility from addressing (research/federation.md §2.5).

    Public in ``to`` is public; Public in ``cc`` is unlisted; a followers collection is private;
    otherwise direct when every addressee is mentioned, limited when some are not.
    """
    if AS_PUBLIC in to:
        return "public"
    if AS_PUBLIC in cc:
        return "unlisted"
    audience = to + cc
    if any(_is_followers(address, followers_collections) for address in audience):
        return "private"
    if all(address in mentions for address in audience):
        return "direct"
    return "limited"


def _language(obj: Mapping[str, Any], map_language: str | None) -> str | None:
    candidates: list[Any] = [map_language]
    lemmy_language = obj.get("language")
    if isinstance(lemmy_language, Mapping):
        candidates.append(lemmy_language.get("identifier"))
    for candidate in candidates:
        if isinstance(candidate, str) and _LANGUAGE_RE.fullmatch(candidate):
            return candidate
    return None


_TYPE_DESCRIPTIONS: Final = {"object": POST_TYPE_DESCRIPTION, "actor": ACTOR_TYPE_DESCRIPTION}


def _check_document(obj: Any, kind: str, *, top_level: bool, accepted_types: frozenset[str]) -> Mapping[str, Any]:
    """Limits, then the type, then the schema."""
    if not isinstance(obj, Mapping):
        raise InvalidActivity("not_an_object", "", "must be a JSON object")
    check_limits(obj)
    check_type(obj, accepted_types, _TYPE_DESCRIPTIONS[kind])
    run_schema(kind, obj, top_level=top_level)
    if primary_type(obj.get("type"), accepted_types) is None:
        raise InvalidActivity("unsupported_type", "type", f"must be {_TYPE_DESCRIPTIONS[kind]}")
    return obj


def parse_note(obj: Mapping[str, Any], *, followers_collections: Collection[str] = ()) -> RemoteNote:
    """Read a post-like object (Note, Question, Page, Article; Mastodon's converted types).

    ``obj`` is an embedded object or a fetched one that already passed
    :func:`~federation.inbound_schema.validate_object` (this function does not require
    ``@context``, but checks limits and shape itself). ``followers_collections`` are known
    followers-collection URLs (e.g. the author's), which make a post ``private``; URLs ending
    in ``/followers`` count too.
    """
    obj = _check_document(obj, "object", top_level=False, accepted_types=NOTE_TYPES)
    kind = primary_type(obj.get("type"), NOTE_TYPES)
    if kind is None:  # _check_document guarantees a post type; this keeps mypy honest
        raise InvalidActivity("unsupported_type", "type", "must be a post type")
    object_id = ref_id(obj.get("id"))
    author = first_author(obj.get("attributedTo"))
    if object_id is None or author is None:  # the schema guarantees both; this keeps mypy honest
        raise InvalidActivity("missing", "attributedTo" if object_id else "id", "required")

    map_language, map_content = first_map_value(obj.get("contentMap"))
    content = optional_text(obj.get("content"), "content") or map_content or ""
    summary = optional_text(obj.get("summary"), "summary") or first_map_value(obj.get("summaryMap"))[1]
    name = optional_text(obj.get("name"), "name") or first_map_value(obj.get("nameMap"))[1]
    title = " ".join(name.split()) if name else None
    if kind in TITLED_TYPES and title:
        content = f"<p><strong>{html.escape(title, quote=False)}</strong></p>{content}"
    content_html = sanitize_html(content)

    to = addressing(obj.get("to"), "to")
    cc = addressing(obj.get("cc"), "cc")
    audience = addressing(obj.get("audience"), "audience")
    mentions, hashtags, tag_quote = _tags(obj.get("tag"))
    quote = next(
        (found for key in ("quote", "quoteUri", "quoteUrl", "_misskey_quote") if (found := ref_id(obj.get(key)))),
        tag_quote,
    )
    return RemoteNote(
        id=object_id,
        type=kind,
        url=first_url(obj.get("url")),
        attributed_to=author,
        content_html=content_html,
        text=html_to_text(content_html),
        summary=plain_text(summary),
        sensitive=obj.get("sensitive") is True,
        name=title,
        in_reply_to=_in_reply_to(obj.get("inReplyTo"), "inReplyTo"),
        published=datetime_field(obj.get("published"), "published"),
        updated=datetime_field(obj.get("updated"), "updated"),
        to=to,
        cc=cc,
        audience=audience[0] if audience else None,
        mentions=mentions,
        hashtags=hashtags,
        language=_language(obj, map_language),
        visibility=visibility_of(to, cc, mentions, followers_collections),
        attachments=_attachments(obj.get("attachment")),
        poll_options=_poll_options(obj) if kind == "Question" else (),
        quote_of=quote,
        comments_enabled=obj.get("commentsEnabled") is not False,
        topics=_topics(obj.get("hearthside:topics", obj.get("urn:hearthside:ns#topics"))),
    )


_TOPIC_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,47}")


def _topics(value: Any) -> tuple[str, ...]:
    """Hearthside's ``hearthside:topics``: up to 10 well-formed ids; anything else is ignored
    (whether the ids mean anything here is the receiving instance's question)."""
    items = value if isinstance(value, list) else [value]
    out: list[str] = []
    for item in items[:10]:
        if isinstance(item, str) and _TOPIC_ID.fullmatch(item) and item not in out:
            out.append(item)
    return tuple(out)


# --- Actors -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RemoteActor:
    """An actor document from another server, checked against where it was fetched.

    ``public_key_*`` describe the key whose ``owner`` is this actor (None when the actor
    publishes none); ``assertion_keys`` are FEP-521a ``(id, publicKeyMultibase)`` pairs
    controlled by this actor on its origin. ``moderators`` is a Group's moderators collection
    (Lemmy's ``attributedTo``, Mbin's ``moderators``). ``fields`` are profile fields as
    ``(name, sanitized value HTML)``, at most 50. ``devices`` is the actor's end-to-end
    encrypted devices collection (``e2ee:devices``, on the actor's origin; docs/e2ee.md), None
    when it offers none or the e2ee properties are malformed (they never make the actor fail).
    """

    id: str
    type: str
    preferred_username: str
    name: str | None
    summary_html: str
    url: str | None
    inbox: str
    shared_inbox: str | None
    outbox: str | None
    followers: str | None
    following: str | None
    moderators: str | None
    manually_approves_followers: bool
    discoverable: bool | None
    icon_url: str | None
    image_url: str | None
    public_key_id: str | None
    public_key_pem: str | None
    public_key_owner: str | None
    assertion_keys: tuple[tuple[str, str], ...]
    also_known_as: tuple[str, ...]
    moved_to: str | None
    published: datetime | None
    fields: tuple[tuple[str, str], ...]
    posting_restricted_to_mods: bool
    devices: str | None = None


def _url_field(doc: Mapping[str, Any], key: str) -> str | None:
    value = doc.get(key)
    return value if isinstance(value, str) and is_http_url(value) else None


def _hosts_related(a: str, b: str) -> bool:
    """Same host, or one a subdomain of the other."""
    return a == b or a.endswith("." + b) or b.endswith("." + a)


def _shared_inbox(doc: Mapping[str, Any], actor_id: str) -> str | None:
    """``endpoints.sharedInbox`` (Misskey also puts it at top level), trusted only on the actor's
    own host or a related subdomain, as GoToSocial does (research/federation.md §2.2)."""
    endpoints = doc.get("endpoints")
    candidates = [endpoints.get("sharedInbox") if isinstance(endpoints, Mapping) else None, doc.get("sharedInbox")]
    for candidate in candidates:
        if isinstance(candidate, str) and is_http_url(candidate):
            shared, actor = urlsplit(candidate), urlsplit(actor_id)
            if shared.scheme == actor.scheme and _hosts_related(shared.hostname or "", actor.hostname or ""):
                return candidate
    return None


def _public_key(doc: Mapping[str, Any], actor_id: str) -> tuple[str | None, str | None, str | None]:
    """The key owned by this actor: ``(id, pem, owner)``.

    ``publicKey`` may be one object (Mastodon, Lemmy) or a list; we take the entry whose owner
    is the actor. A key owned by someone else, or whose id is on another origin, is refused:
    accepting it would let one actor's document vouch for another's signatures (FEP-fe34).
    """
    keys = as_list(doc.get("publicKey"))
    if not keys:
        return None, None, None
    owned = [key for key in keys if isinstance(key, Mapping) and key.get("owner") == actor_id]
    if not owned:
        raise InvalidActivity("key_owner", "publicKey.owner", "must be the actor's id")
    key = owned[0]
    key_id = key.get("id")
    pem = key.get("publicKeyPem")
    if not isinstance(key_id, str) or not isinstance(pem, str):
        raise InvalidActivity("missing", "publicKey", "must have an id and a publicKeyPem")
    if not same_origin(key_id, actor_id):
        raise InvalidActivity("key_origin", "publicKey.id", "must be on the actor's origin")
    return key_id, pem, actor_id


def _assertion_keys(doc: Mapping[str, Any], actor_id: str) -> tuple[tuple[str, str], ...]:
    """FEP-521a Multikeys controlled by this actor on its own origin; others are ignored."""
    found: list[tuple[str, str]] = []
    for method in as_list(doc.get("assertionMethod")):
        if not isinstance(method, Mapping) or "Multikey" not in type_names(method.get("type")):
            continue
        key_id, multibase = method.get("id"), method.get("publicKeyMultibase")
        if (
            isinstance(key_id, str)
            and isinstance(multibase, str)
            and multibase.startswith("z")
            and method.get("controller") == actor_id
            and same_origin(key_id, actor_id)
        ):
            found.append((key_id, multibase))
    return tuple(found)


def _profile_fields(doc: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    fields: list[tuple[str, str]] = []
    for item in as_list(doc.get("attachment")):
        if len(fields) >= MAX_PROFILE_FIELDS:
            break
        if not isinstance(item, Mapping) or "PropertyValue" not in type_names(item.get("type")):
            continue
        name, value = item.get("name"), item.get("value")
        if isinstance(name, str) and isinstance(value, str):
            fields.append((html_to_text(name), sanitize_html(value)))
    return tuple(fields)


def _image_url(value: Any) -> str | None:
    for item in as_list(value):
        found = link_href(item)
        if found:
            return found
    return None


def parse_actor(doc: Mapping[str, Any], *, fetched_from: str, require_context: bool = True) -> RemoteActor:
    """Read an actor document fetched from ``fetched_from``.

    ``id`` must equal ``fetched_from`` exactly (research/federation.md §8.2 item 8: Mastodon's
    ``compare_id``, Lemmy's refetch). ``require_context=False`` reads an actor embedded in an
    activity (``Update(Person)``), which carries no ``@context`` of its own.
    """
    doc = _check_document(doc, "actor", top_level=require_context, accepted_types=ACTOR_TYPES)
    kind = primary_type(doc.get("type"), ACTOR_TYPES)
    if kind is None:  # _check_document guarantees an actor type; this keeps mypy honest
        raise InvalidActivity("unsupported_type", "type", "must be an actor type")
    actor_id = doc.get("id")
    if actor_id != fetched_from or not isinstance(actor_id, str):
        raise InvalidActivity("id_mismatch", "id", "must equal the URL the document was fetched from")
    inbox = _url_field(doc, "inbox")
    username = doc.get("preferredUsername")
    if inbox is None or not isinstance(username, str):  # guaranteed by the schema
        raise InvalidActivity("missing", "inbox", "required")
    key_id, key_pem, key_owner = _public_key(doc, actor_id)
    moderators = _url_field(doc, "moderators")
    if kind == "Group" and moderators is None:
        moderators = _url_field(doc, "attributedTo")
    return RemoteActor(
        id=actor_id,
        type=kind,
        preferred_username=username,
        name=optional_text(doc.get("name"), "name") or None,
        summary_html=sanitize_html(optional_text(doc.get("summary"), "summary") or ""),
        url=first_url(doc.get("url")),
        inbox=inbox,
        shared_inbox=_shared_inbox(doc, actor_id),
        outbox=_url_field(doc, "outbox"),
        followers=_url_field(doc, "followers"),
        following=_url_field(doc, "following"),
        moderators=moderators,
        manually_approves_followers=doc.get("manuallyApprovesFollowers") is True,
        discoverable=doc.get("discoverable") if isinstance(doc.get("discoverable"), bool) else None,
        icon_url=_image_url(doc.get("icon")),
        image_url=_image_url(doc.get("image")),
        public_key_id=key_id,
        public_key_pem=key_pem,
        public_key_owner=key_owner,
        assertion_keys=_assertion_keys(doc, actor_id),
        also_known_as=tuple(url for url in as_list(doc.get("alsoKnownAs")) if isinstance(url, str)),
        moved_to=_url_field(doc, "movedTo"),
        published=datetime_field(doc.get("published"), "published"),
        fields=_profile_fields(doc),
        posting_restricted_to_mods=doc.get("postingRestrictedToMods") is True,
        devices=_devices_url(doc, actor_id),
    )


def _devices_url(doc: Mapping[str, Any], actor_id: str) -> str | None:
    """The actor's ``e2ee:devices`` URL; malformed e2ee properties only mean "no encrypted
    messages with this actor", never a refused actor."""
    try:
        found = parse_actor_e2ee_properties(doc, actor_uri=actor_id)
    except InvalidActivity:
        return None
    return found.devices_url if found is not None else None


# --- WebFinger --------------------------------------------------------------------------------


class WebFingerAnswer(NamedTuple):
    """``(subject, actor_url)`` from a WebFinger JRD."""

    subject: str
    actor_url: str


def _is_activitypub_media_type(value: str) -> bool:
    """``application/activity+json`` or ``application/ld+json`` with the ActivityStreams profile."""
    main, *params = (part.strip() for part in value.split(";"))
    main = main.lower()
    if main == "application/activity+json":
        return True
    if main != "application/ld+json":
        return False
    for param in params:
        key, _, raw = param.partition("=")
        if key.strip().lower() == "profile" and AS_CONTEXT in raw.strip().strip('"').split():
            return True
    return False


def parse_jrd(doc: Any) -> WebFingerAnswer:
    """The subject and the ActivityPub actor URL of a WebFinger answer.

    Mastodon's rules (research/federation.md §2.1, §8.1 item 1): ``subject`` is required, and the
    actor is the first ``rel="self"`` link typed ``application/activity+json`` or
    ``application/ld+json; profile="https://www.w3.org/ns/activitystreams"``.
    """
    if not isinstance(doc, Mapping):
        raise InvalidActivity("not_an_object", "", "must be a JSON object")
    check_limits(doc)
    subject = doc.get("subject")
    if not isinstance(subject, str) or not subject:
        raise InvalidActivity("missing", "subject", "required")
    if len(subject) > 2 * 1024:
        raise InvalidActivity("too_large", "subject", "longer than 2048 characters")
    links = doc.get("links")
    for index, link in enumerate(links if isinstance(links, list) else []):
        if not isinstance(link, Mapping) or link.get("rel") != "self":
            continue
        media_type = link.get("type")
        if not isinstance(media_type, str) or not _is_activitypub_media_type(media_type):
            continue
        href = link.get("href")
        if not (isinstance(href, str) and is_http_url(href)):
            raise InvalidActivity("not_a_url", f"links[{index}].href", "must be an absolute http(s) URL")
        return WebFingerAnswer(subject, href)
    raise InvalidActivity("no_self_link", "links", "has no rel=self link of an ActivityPub type")
