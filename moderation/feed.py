"""The signed moderation decision feed: entries, their proofs, and the FIRES documents around them.

How it works (research/moderation.md §6.b, §2.6). A publisher's feed is a FIRES ``Dataset`` whose
``endpoints`` name a ``snapshot`` (the current state, one entry per entity) and a ``changes``
collection (every entry ever published, oldest first, paged by a UUIDv7 cursor). Each entry is a
FIRES change record (``Advisory``, ``Recommendation``, ``Retraction``, ``Tombstone``) with our
extensions, immutable once published, and carries its own FEP-8b32 ``eddsa-jcs-2022`` proof made
with the publisher's dedicated moderation key, so mirrors can serve entries verbatim and every
entry still proves who wrote it.

JSON shapes follow the FIRES reference server 0.8.0 (``fedimod/fires`` at ae42b954:
``components/fires-server/app/serializers/{change,dataset,snapshot}_serializer.ts``,
``app/utils/jsonld.ts``; context ``docs/public/context/fires.jsonld``; data model
``docs/reference/protocol/data-model/{changes,datasets}.md``):

- change: ``id``, ``type``, ``published`` (``yyyy-MM-ddTHH:mm:ssZ``), ``entityKind``
  (``domain`` | ``actor``), ``entityKey``; ``labels`` (URIs) on ``Advisory`` and
  ``Recommendation``; ``recommendedPolicy`` and ``recommendedFilters`` (always a list) on
  ``Recommendation``; ``comment`` (a string) on ``Retraction``. FIRES has no ``changeId``
  property: its change ``id`` ends in the UUIDv7, which :func:`parse_entry` uses when
  ``changeId`` is absent.
- dataset: ``type: Dataset``, ``id``, ``url``, ``name``/``summary`` (+ ``nameMap``/
  ``summaryMap``), ``published``, ``updated``, ``endpoints.snapshot``/``endpoints.changes``.
- snapshot: a ``Collection`` with ``orderedItems`` newest first, ``totalItems``, ``dataset``,
  ``updated`` and ``changes`` (the changes URL with the cursor of the newest entry).
- changes: an ``OrderedCollection``; pages are ``OrderedCollectionPage`` with ``partOf``,
  ``orderedItems`` (ascending), ``next``. FIRES names its cursor ``since``; §6.b names it
  ``after``. :func:`page_url` writes ``after``; :func:`page_cursor` reads either.

Our additions live in the inline ``urn:hearthside:moderation#`` context (the project's URN
namespace habit, as ``federation/documents.py``): ``changeId``, ``reason`` (a language map),
``review``, ``derivedFrom``, ``supersedes``, ``expires``, ``mastodon`` (a lossless CSV hint),
``retracts``, ``commentMap`` (the localised form of FIRES's ``comment``), and on the dataset
``publisher``, ``policyUrl``, ``appealsContact``, ``labelsVocabulary`` and ``keys``.
Unknown properties are ignored, as §6.b says; known ones are checked strictly.

What it guarantees. An :class:`Entry` cannot exist in a state §6.b forbids: its constructor
checks every field (normal-form entity key, policy only on a Recommendation, ``retracts`` only on a
Retraction, ``expires`` after ``published``, bounded lists and texts), so parsing is "normalise,
then construct". :func:`verify_entry` picks the key named by the proof's ``verificationMethod``
from the publisher's key set, historical keys included (rotation keeps old entries verifiable);
a key that is not in the set, a key used after its ``revoked`` time, a tampered byte or a
malformed proof all raise :class:`FeedError` with one opaque message per cause, and nothing about
which byte differed. An entry whose ``expires`` has passed still verifies but is inert:
``entry.active(now)`` is false and :func:`reduce_snapshot` drops it.

What it refuses to publish: :func:`check_publishable` applies the checkable part of §6.b
"Privacy & safety constraints" (see its docstring). The rest is structural: :class:`Entry` has no
field for evidence, reporter identity, private notes, post content or member state, so
``to_json`` cannot emit them.

Everything raises :class:`FeedError` (message ``"<field>: <why>"``); time is always passed in.
"""

from __future__ import annotations

import ipaddress
import itertools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any, Final, Literal, TypeAlias, cast, get_args
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from crypto.errors import KeyFormatError, VerificationError
from crypto.integrity import proof_method, sign_object, verify_object
from crypto.signing import PrivateKey, PublicKey
from moderation.decisions import DomainError
from moderation.decisions import normalize_domain as normalize_decision_domain
from moderation.uuid7 import Uuid7Error, canonical_uuid7

__all__ = [
    "AS_CONTEXT",
    "ENTRY_CONTEXT",
    "EXTENSION_CONTEXT",
    "FIRES_CONTEXT",
    "FIRES_FILTERS",
    "MODERATION_NS",
    "SILENCE_FILTERS",
    "ChangesPage",
    "Dataset",
    "Entry",
    "FeedError",
    "MastodonHint",
    "NotPublishableError",
    "PublisherKey",
    "Snapshot",
    "changes_collection_document",
    "changes_page_document",
    "check_page_order",
    "check_publishable",
    "dataset_document",
    "normalize_actor_uri",
    "normalize_domain",
    "normalize_entity_key",
    "page_cursor",
    "page_url",
    "parse_changes_page",
    "parse_dataset",
    "parse_entry",
    "parse_snapshot",
    "purge_tombstoned",
    "reduce_snapshot",
    "sign_entry",
    "snapshot_document",
    "verify_entry",
]

EntryType: TypeAlias = Literal["Advisory", "Recommendation", "Retraction", "Tombstone"]
EntityKind: TypeAlias = Literal["domain", "actor"]
Policy: TypeAlias = Literal["accept", "filter", "reject", "drop"]
Review: TypeAlias = Literal["human", "automated", "aggregated"]
MastodonSeverity: TypeAlias = Literal["suspend", "silence", "noop"]

ENTRY_TYPES: Final[tuple[str, ...]] = get_args(EntryType)
ENTITY_KINDS: Final[tuple[str, ...]] = get_args(EntityKind)
POLICIES: Final[tuple[str, ...]] = get_args(Policy)
REVIEWS: Final[tuple[str, ...]] = get_args(Review)
MASTODON_SEVERITIES: Final[tuple[str, ...]] = get_args(MastodonSeverity)
# Tuples, not sets: membership tests on untrusted JSON must not hash lists or objects.

AS_CONTEXT: Final = "https://www.w3.org/ns/activitystreams"
FIRES_CONTEXT: Final = "https://fires.fedimod.org/context/fires.jsonld"
DATA_INTEGRITY_CONTEXT: Final = "https://w3id.org/security/data-integrity/v2"
MULTIKEY_CONTEXT: Final = "https://w3id.org/security/multikey/v1"
MODERATION_NS: Final = "urn:hearthside:moderation#"

EXTENSION_CONTEXT: Final[Mapping[str, Any]] = MappingProxyType(
    {
        # Our terms (changeId, review, supersedes, expires, retracts, mastodon, publisher,
        # policyUrl, appealsContact, keys, ...) all expand in our namespace through @vocab (FIRES's
        # context replaces AS2's @vocab with "_:"; ours comes last). Only terms whose values are
        # not plain literals need a definition. Kept small: it is repeated in every entry's proof.
        "@vocab": MODERATION_NS,
        "reason": {"@container": "@language"},
        "commentMap": {"@id": "https://fires.fedimod.org/context/fires.jsonld#comment", "@container": "@language"},
        "derivedFrom": {"@type": "@id"},
    }
)
"""Our extension context, inline (nothing to dereference), listed after the FIRES context."""

ENTRY_CONTEXT: Final = (AS_CONTEXT, DATA_INTEGRITY_CONTEXT, FIRES_CONTEXT)
"""URL part of an entry's ``@context``; :func:`_entry_context` appends :data:`EXTENSION_CONTEXT`."""

FIRES_FILTERS: Final = frozenset(
    {
        "auto-unlisted",
        "auto-cw",
        "auto-sensitive",
        "age-restrict",
        "auto-label",
        "prevent-trending",
        "prevent-recommendations",
        "require-follow-requests",
        "reject-non-public",
        "ignore-non-public",
        "reject-replies",
        "ignore-replies",
        "reject-media",
        "reject-profile-avatars",
        "reject-profile-media",
        "reject-reports",
        "ignore-reports",
        "reject-moderation-notes",
        "roadblock-disable-links",
        "roadblock-warn-links",
        "reject-signups",
    }
)
"""FIRES predefined filters (docs/concepts/filters.md). FIRES has not fixed their URIs yet and its
context types ``recommendedFilters`` as plain strings, so they travel as these bare identifiers;
our own filters are URIs in :data:`MODERATION_NS` (e.g. ``urn:hearthside:moderation#hold-for-review``)."""

SILENCE_FILTERS: Final = frozenset({"auto-unlisted", "require-follow-requests", "prevent-trending"})
"""Mastodon's ``silence`` decomposed into FIRES filters (§6.b "Interop")."""

# Bounds on what one entry may hold: far above honest use, low enough that a hostile feed cannot
# make us store or canonicalise megabytes per entry.
MAX_URI: Final = 2048
MAX_LIST: Final = 64
MAX_TEXT: Final = 2000
MAX_LOCALES: Final = 16
MAX_PAGE_ITEMS: Final = 1000
MAX_SNAPSHOT_ITEMS: Final = 200_000

# check_publishable: §6.b "short" public reasons; account-level entries expire within a year.
MAX_PUBLIC_TEXT: Final = 500
MAX_ACTOR_ENTRY_LIFETIME: Final = timedelta(days=366)
SAFETY_LABEL_PREFIX: Final = "urn:hearthside:safety"


class FeedError(Exception):
    """A feed document, entry or proof is malformed, unverifiable or not allowed.

    The message starts with the JSON field it concerns (``"entityKey: ..."``). Verification
    failures say only that the proof did not verify, never why.
    """


class NotPublishableError(FeedError):
    """An entry breaks §6.b's privacy and safety rules and must not leave the instance."""


# --------------------------------------------------------------------------- small value checks

_CONTROL_OR_SPACE = re.compile(r"[\x00-\x20\x7f-\x9f]")
_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*")
_LANGUAGE_TAG = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*")  # BCP 47, common forms
_FILTER_TOKEN = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})")
_UUID_TAIL = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_PERCENT = re.compile(r"%[0-9a-fA-F]{2}")


def _fail(name: str, why: str) -> FeedError:
    return FeedError(f"{name}: {why}")


def _check_uri(value: object, name: str, *, schemes: frozenset[str] | None = None) -> str:
    """An absolute URI (with a host for http/https), bounded, without spaces or controls."""
    if not isinstance(value, str) or not value:
        raise _fail(name, "must be a non-empty string")
    if len(value) > MAX_URI:
        raise _fail(name, f"longer than {MAX_URI} characters")
    if _CONTROL_OR_SPACE.search(value):
        raise _fail(name, "contains spaces or control characters")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError:
        raise _fail(name, "is not a valid URI") from None
    if not _SCHEME.fullmatch(parts.scheme):
        raise _fail(name, "is not an absolute URI")
    if schemes is not None and parts.scheme not in schemes:
        raise _fail(name, f"scheme must be one of {sorted(schemes)}")
    if parts.scheme in ("http", "https") and not parts.hostname:
        raise _fail(name, "has no host")
    return value


_HTTP: Final = frozenset({"http", "https"})


def _check_uuid7(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise _fail(name, "must be a UUIDv7 string")
    try:
        return canonical_uuid7(value)
    except Uuid7Error as exc:
        raise _fail(name, str(exc)) from None


def _utc(value: object, name: str) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise _fail(name, "must be a timezone-aware datetime")
    return value.astimezone(UTC)


def _parse_datetime(value: object, name: str) -> datetime:
    """RFC 3339 date-time with an offset (``Z`` or ``±hh:mm``), returned in UTC."""
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise _fail(name, "must be an RFC 3339 date-time such as 2026-01-31T12:00:00Z")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise _fail(name, "is not a valid date-time") from None
    return parsed.astimezone(UTC)


def _format_datetime(moment: datetime) -> str:
    moment = moment.astimezone(UTC)
    if moment.microsecond:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _check_text_map(value: object, name: str) -> Mapping[str, str]:
    if not isinstance(value, Mapping):
        raise _fail(name, "must be a map of language tag to text")
    if len(value) > MAX_LOCALES:
        raise _fail(name, f"more than {MAX_LOCALES} languages")
    checked: dict[str, str] = {}
    for tag, text in value.items():
        if not isinstance(tag, str) or not (tag == "und" or _LANGUAGE_TAG.fullmatch(tag)):
            raise _fail(name, f"{str(tag)[:40]!r} is not a language tag")
        if not isinstance(text, str) or not text.strip():
            raise _fail(f"{name}.{tag}", "must be non-empty text")
        if len(text) > MAX_TEXT:
            raise _fail(f"{name}.{tag}", f"longer than {MAX_TEXT} characters")
        checked[tag] = text
    return MappingProxyType(checked)


def _check_uri_list(value: object, name: str, *, schemes: frozenset[str] | None = None) -> tuple[str, ...]:
    if not isinstance(value, tuple | list):
        raise _fail(name, "must be a list")
    if len(value) > MAX_LIST:
        raise _fail(name, f"more than {MAX_LIST} items")
    items = tuple(_check_uri(item, f"{name}[{i}]", schemes=schemes) for i, item in enumerate(value))
    if len(set(items)) != len(items):
        raise _fail(name, "has duplicates")
    return items


def _check_filters(value: object, name: str) -> tuple[str, ...]:
    if not isinstance(value, tuple | list):
        raise _fail(name, "must be a list")
    if len(value) > MAX_LIST:
        raise _fail(name, f"more than {MAX_LIST} items")
    items: list[str] = []
    for i, item in enumerate(value):
        if isinstance(item, str) and _FILTER_TOKEN.fullmatch(item) and len(item) <= 64:
            items.append(item)
        else:
            items.append(_check_uri(item, f"{name}[{i}]"))
    if len(set(items)) != len(items):
        raise _fail(name, "has duplicates")
    return tuple(items)


def _preferred_text(texts: Mapping[str, str], locale: str = "en") -> str:
    """The text in ``locale``, else ``und``, else the first language in sorted order."""
    for tag in (locale, "und", *sorted(texts)):
        if tag in texts:
            return texts[tag]
    return ""


# --------------------------------------------------------------------------- entity keys


def normalize_domain(text: str, *, name: str = "entityKey") -> str:
    """A domain as a feed stores it: IDNA 2008 (UTS 46) punycode, lower case, no trailing dot.

    IP literals are kept in their canonical text form. Wildcards (``*``, obfuscated Mastodon
    entries) and single-label names are refused, as FIRES 0.8.0 refuses them.
    """
    if not isinstance(text, str):
        raise _fail(name, "a domain must be a string")
    value = text.strip()
    if value.endswith("."):
        value = value[:-1]
    if not value or len(value) > 253 * 4:
        raise _fail(name, "empty or overlong domain")
    if "*" in value:
        raise _fail(name, "an obfuscated (wildcard) domain is not an entity key")
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        pass
    try:
        encoded = normalize_decision_domain(value)  # the one domain rule, shared with blocklists
    except DomainError as exc:
        raise _fail(name, str(exc).removeprefix("domain: ")) from None
    if any(label.startswith("-") or label.endswith("-") for label in encoded.split(".")):
        # IDNA's hyphen rule, which FIRES keys follow (Mastodon's blocklists allow such labels).
        raise _fail(name, f"{value[:80]!r} is not a valid domain name")
    if "." not in encoded:
        raise _fail(name, "a domain needs at least two labels")
    return encoded


def _loopback_host(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _quote_component(text: str, safe: str) -> str:
    quoted = quote(text, safe=safe + "%")
    # Escapes in upper case (RFC 3986 §6.2.2.1); a lone "%" not starting an escape is encoded.
    quoted = re.sub(r"%(?![0-9a-fA-F]{2})", "%25", quoted)
    return _PERCENT.sub(lambda m: m.group(0).upper(), quoted)


def normalize_actor_uri(text: str, *, name: str = "entityKey") -> str:
    """An actor URI as a feed stores it (FIRES 0.8.0): https, punycode lower-case host, no
    credentials, no default port, path/query/fragment percent-encoded with upper-case escapes.

    Plain ``http`` is accepted only for loopback IP hosts (test deployments).
    """
    if not isinstance(text, str):
        raise _fail(name, "an actor must be a URI string")
    value = text.strip()
    if not value or len(value) > MAX_URI or _CONTROL_OR_SPACE.search(value):
        raise _fail(name, "empty, overlong, or containing spaces or control characters")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise _fail(name, "is not a valid URI") from None
    scheme = parts.scheme.lower()
    host = parts.hostname
    if not host:
        raise _fail(name, "an actor URI needs a host")
    if parts.username is not None or parts.password is not None:
        raise _fail(name, "an actor URI must not carry credentials")
    if scheme != "https" and not (scheme == "http" and _loopback_host(host)):
        raise _fail(name, "an actor URI must use https")
    host = normalize_domain(host, name=name) if not _loopback_host(host) else str(ipaddress.ip_address(host))
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port != (443 if scheme == "https" else 80):
        netloc = f"{netloc}:{port}"
    path = _quote_component(parts.path or "/", "/:@!$&'()*+,;=-._~")
    query = _quote_component(parts.query, "/?:@!$&'()*+,;=-._~")
    fragment = _quote_component(parts.fragment, "/?:@!$&'()*+,;=-._~")
    normalized = urlunsplit((scheme, netloc, path, query, fragment))
    if len(normalized) > MAX_URI:
        raise _fail(name, f"longer than {MAX_URI} characters once normalised")
    return normalized


def normalize_entity_key(kind: str, key: str) -> str:
    """The normal form of ``key`` for an entity of ``kind`` (``domain`` or ``actor``)."""
    if kind == "domain":
        return normalize_domain(key)
    if kind == "actor":
        return normalize_actor_uri(key)
    raise _fail("entityKind", f"must be one of {sorted(ENTITY_KINDS)}")


# --------------------------------------------------------------------------- entries


@dataclass(frozen=True, slots=True)
class MastodonHint:
    """How the publisher would write this decision in a Mastodon CSV (lossless export)."""

    severity: MastodonSeverity
    reject_media: bool = False
    reject_reports: bool = False
    obfuscate: bool = False

    def __post_init__(self) -> None:
        if self.severity not in MASTODON_SEVERITIES:
            raise _fail("mastodon.severity", f"must be one of {sorted(MASTODON_SEVERITIES)}")
        for name in ("reject_media", "reject_reports", "obfuscate"):
            if not isinstance(getattr(self, name), bool):
                raise _fail(f"mastodon.{name}", "must be a boolean")

    def to_json(self) -> dict[str, Any]:
        return {
            "severity": self.severity,
            "rejectMedia": self.reject_media,
            "rejectReports": self.reject_reports,
            "obfuscate": self.obfuscate,
        }


def _empty_texts() -> Mapping[str, str]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Entry:
    """One change record of a feed (§6.b "Entry contents"), checked when built.

    ``reason`` and ``comment`` are read-only language maps (``{"en": ..., "fr": ...}``); entries
    therefore compare by value but are not hashable. Build entries with normalised keys
    (:func:`normalize_entity_key`); a key not in normal form is refused rather than rewritten.
    """

    id: str
    change_id: str
    type: EntryType
    published: datetime
    entity_kind: EntityKind
    entity_key: str
    policy: Policy | None = None
    filters: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    reason: Mapping[str, str] = field(default_factory=_empty_texts)
    review: Review | None = None
    derived_from: tuple[str, ...] = ()
    supersedes: str | None = None
    expires: datetime | None = None
    mastodon: MastodonHint | None = None
    retracts: str | None = None
    comment: Mapping[str, str] = field(default_factory=_empty_texts)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        _check_uri(self.id, "id", schemes=_HTTP)
        set_(self, "change_id", _check_uuid7(self.change_id, "changeId"))
        if self.type not in ENTRY_TYPES:
            raise _fail("type", f"must be one of {sorted(ENTRY_TYPES)}")
        set_(self, "published", _utc(self.published, "published"))
        if self.entity_kind not in ENTITY_KINDS:
            raise _fail("entityKind", f"must be one of {sorted(ENTITY_KINDS)}")
        if normalize_entity_key(self.entity_kind, self.entity_key) != self.entity_key:
            raise _fail("entityKey", "is not in normal form (see normalize_entity_key)")
        judgement = self.type in ("Advisory", "Recommendation")

        if self.type == "Recommendation":
            if self.policy not in POLICIES:
                raise _fail("recommendedPolicy", f"a Recommendation needs one of {sorted(POLICIES)}")
        elif self.policy is not None:
            raise _fail("recommendedPolicy", "only a Recommendation carries a policy")
        set_(self, "filters", _check_filters(self.filters, "recommendedFilters"))
        if self.filters and self.type != "Recommendation":
            raise _fail("recommendedFilters", "only a Recommendation carries filters")
        if self.filters and self.policy == "accept":
            raise _fail("recommendedFilters", "an accept policy takes no filters (use filter)")
        set_(self, "labels", _check_uri_list(self.labels, "labels"))
        if self.labels and not judgement:
            raise _fail("labels", "only an Advisory or a Recommendation carries labels")
        set_(self, "reason", _check_text_map(self.reason, "reason"))
        if self.reason and not judgement:
            raise _fail("reason", "only an Advisory or a Recommendation carries a reason (a Retraction has comment)")
        if self.review is not None and self.review not in REVIEWS:
            raise _fail("review", f"must be one of {sorted(REVIEWS)}")
        set_(self, "derived_from", _check_uri_list(self.derived_from, "derivedFrom", schemes=_HTTP))
        if self.supersedes is not None:
            set_(self, "supersedes", _check_uuid7(self.supersedes, "supersedes"))
            if self.supersedes >= self.change_id:
                raise _fail("supersedes", "must name an earlier changeId")
            if self.type == "Tombstone":
                raise _fail("supersedes", "a Tombstone supersedes everything already")
        if self.expires is not None:
            set_(self, "expires", _utc(self.expires, "expires"))
            if not judgement:
                raise _fail("expires", "only an Advisory or a Recommendation can expire")
            if self.expires <= self.published:
                raise _fail("expires", "must be after published")
        if self.mastodon is not None:
            if not isinstance(self.mastodon, MastodonHint):
                raise _fail("mastodon", "must be a MastodonHint")
            if self.type != "Recommendation" or self.entity_kind != "domain":
                raise _fail("mastodon", "only a domain Recommendation carries a Mastodon hint")
        if self.retracts is not None:
            set_(self, "retracts", _check_uuid7(self.retracts, "retracts"))
            if self.type != "Retraction":
                raise _fail("retracts", "only a Retraction retracts")
            if self.retracts >= self.change_id:
                raise _fail("retracts", "must name an earlier changeId")
        set_(self, "comment", _check_text_map(self.comment, "comment"))
        if self.comment and self.type != "Retraction":
            raise _fail("comment", "only a Retraction carries a comment")

    @property
    def entity(self) -> tuple[EntityKind, str]:
        """The ``(entityKind, entityKey)`` pair entries are reduced by."""
        return (self.entity_kind, self.entity_key)

    def active(self, now: datetime) -> bool:
        """False once ``expires`` has passed: an expired entry is inert (like atproto ``exp``)."""
        return self.expires is None or _utc(now, "now") < self.expires

    def to_json(self) -> dict[str, Any]:
        """The entry as JSON-LD: FIRES property names where FIRES has them, ours otherwise."""
        doc: dict[str, Any] = {
            "@context": _entry_context(),
            "id": self.id,
            "type": self.type,
            "published": _format_datetime(self.published),
            "changeId": self.change_id,
            "entityKind": self.entity_kind,
            "entityKey": self.entity_key,
        }
        if self.type in ("Advisory", "Recommendation"):
            doc["labels"] = list(self.labels)  # FIRES always sends the list, even empty
        if self.type == "Recommendation":
            doc["recommendedPolicy"] = self.policy
            doc["recommendedFilters"] = list(self.filters)
        if self.reason:
            doc["reason"] = dict(self.reason)
        if self.review is not None:
            doc["review"] = self.review
        if self.derived_from:
            doc["derivedFrom"] = list(self.derived_from)
        if self.supersedes is not None:
            doc["supersedes"] = self.supersedes
        if self.expires is not None:
            doc["expires"] = _format_datetime(self.expires)
        if self.mastodon is not None:
            doc["mastodon"] = self.mastodon.to_json()
        if self.retracts is not None:
            doc["retracts"] = self.retracts
        if self.comment:
            doc["comment"] = _preferred_text(self.comment)
            if set(self.comment) != {"und"}:
                doc["commentMap"] = dict(self.comment)
        return doc


def _entry_context() -> list[Any]:
    return [*ENTRY_CONTEXT, dict(EXTENSION_CONTEXT)]


def _context_names_fires(value: object) -> bool:
    items = value if isinstance(value, list) else [value]
    return FIRES_CONTEXT in [item for item in items if isinstance(item, str)]


def _optional(doc: Mapping[str, Any], name: str) -> Any:
    return doc.get(name)


def _or(doc: Mapping[str, Any], name: str, default: object) -> Any:
    """``doc[name]``, or ``default`` when absent or null (but not when merely falsy)."""
    value = doc.get(name)
    return default if value is None else value


def _string(doc: Mapping[str, Any], name: str) -> str:
    value = doc.get(name)
    if not isinstance(value, str):
        raise _fail(name, "missing or not a string")
    return value


def _labels(value: object) -> list[object]:
    """FIRES labels are URIs, or (rarely) embedded ``Label`` objects whose ``id`` we keep."""
    if not isinstance(value, list):
        raise _fail("labels", "must be a list")
    return [item.get("id") if isinstance(item, Mapping) else item for item in value]


def _change_id_from(doc: Mapping[str, Any], entry_id: str) -> str:
    if "changeId" in doc:
        return _check_uuid7(doc["changeId"], "changeId")
    tail = urlsplit(entry_id).path.rstrip("/").rsplit("/", 1)[-1]
    if not _UUID_TAIL.fullmatch(tail):
        raise _fail("changeId", "missing, and the id does not end in a UUIDv7 (FIRES change URL)")
    return _check_uuid7(tail, "changeId")


def _mastodon_hint(value: object) -> MastodonHint:
    if not isinstance(value, Mapping):
        raise _fail("mastodon", "must be an object")
    severity = value.get("severity")
    if severity not in MASTODON_SEVERITIES:
        raise _fail("mastodon.severity", f"must be one of {sorted(MASTODON_SEVERITIES)}")
    flags: dict[str, bool] = {}
    names = (("rejectMedia", "reject_media"), ("rejectReports", "reject_reports"), ("obfuscate", "obfuscate"))
    for json_name, attr in names:
        flag = value.get(json_name, False)
        if not isinstance(flag, bool):
            raise _fail(f"mastodon.{json_name}", "must be a boolean")
        flags[attr] = flag
    return MastodonHint(severity=cast(MastodonSeverity, severity), **flags)


def _comment(doc: Mapping[str, Any]) -> Mapping[str, str]:
    if "commentMap" in doc and doc["commentMap"] is not None:
        return _check_text_map(doc["commentMap"], "commentMap")
    text = doc.get("comment")
    if text is None or text == "":
        return MappingProxyType({})
    if not isinstance(text, str):
        raise _fail("comment", "must be a string")
    return _check_text_map({"und": text}, "comment")


def parse_entry(doc: object) -> Entry:
    """Turn one change record (ours or FIRES's) into an :class:`Entry`, or raise ``FeedError``.

    The entity key is normalised before the entry is built, so a FIRES key in upper case still
    reads. ``proof`` is not looked at here (see :func:`verify_entry`); unknown properties are
    ignored; known properties in the wrong place (a policy on a Retraction) are refused.
    """
    if not isinstance(doc, Mapping):
        raise _fail("entry", "must be a JSON object")
    if "@context" in doc and not _context_names_fires(doc["@context"]):
        raise _fail("@context", f"must include {FIRES_CONTEXT}")
    entry_id = _check_uri(doc.get("id"), "id", schemes=_HTTP)
    entry_type = doc.get("type")
    if entry_type not in ENTRY_TYPES:
        raise _fail("type", f"must be one of {sorted(ENTRY_TYPES)}")
    kind = doc.get("entityKind")
    if kind not in ENTITY_KINDS:
        raise _fail("entityKind", f"must be one of {sorted(ENTITY_KINDS)}")
    key = _string(doc, "entityKey")
    policy = _optional(doc, "recommendedPolicy")
    if policy is not None and policy not in POLICIES:
        raise _fail("recommendedPolicy", f"must be one of {sorted(POLICIES)}")
    review = _optional(doc, "review")
    if review is not None and review not in REVIEWS:
        raise _fail("review", f"must be one of {sorted(REVIEWS)}")
    supersedes = _optional(doc, "supersedes")
    retracts = _optional(doc, "retracts")
    expires = _optional(doc, "expires")
    mastodon = _optional(doc, "mastodon")
    return Entry(
        id=entry_id,
        change_id=_change_id_from(doc, entry_id),
        type=cast(EntryType, entry_type),
        published=_parse_datetime(doc.get("published"), "published"),
        entity_kind=cast(EntityKind, kind),
        entity_key=normalize_entity_key(cast(str, kind), key),
        policy=cast(Policy | None, policy),
        filters=_check_filters(_or(doc, "recommendedFilters", []), "recommendedFilters"),
        labels=_check_uri_list(_labels(_or(doc, "labels", [])), "labels"),
        reason=_check_text_map(_or(doc, "reason", {}), "reason"),
        review=cast(Review | None, review),
        derived_from=_check_uri_list(_or(doc, "derivedFrom", []), "derivedFrom", schemes=_HTTP),
        supersedes=None if supersedes is None else _check_uuid7(supersedes, "supersedes"),
        expires=None if expires is None else _parse_datetime(expires, "expires"),
        mastodon=None if mastodon is None else _mastodon_hint(mastodon),
        retracts=None if retracts is None else _check_uuid7(retracts, "retracts"),
        comment=_comment(doc),
    )


# --------------------------------------------------------------------------- signing


def sign_entry(entry: Entry, key: PrivateKey, verification_method: str, created: datetime) -> dict[str, Any]:
    """``entry.to_json()`` with an ``eddsa-jcs-2022`` proof by the publisher's moderation key.

    Signing is not publishing: run :func:`check_publishable` before an entry leaves the instance.
    """
    _check_uri(verification_method, "verificationMethod")
    try:
        return sign_object(entry.to_json(), key, verification_method, _utc(created, "created"))
    except KeyFormatError as exc:
        raise _fail("key", str(exc)) from None


def verify_entry(
    doc: object,
    keys: Mapping[str, PublicKey],
    *,
    now: datetime,
    retired: Mapping[str, datetime] | None = None,
) -> Entry:
    """Verify a signed entry against the publisher's key set and return it parsed.

    ``keys`` maps verification-method ids to keys and must include historical keys so entries
    signed before a rotation still verify (:meth:`Dataset.verification_keys`). ``retired`` maps
    key ids to the time they were revoked (:meth:`Dataset.retired_keys`): a proof made with such a
    key after that time is refused. An entry that verifies but has expired is returned; it is
    inert (``entry.active(now)`` is false).
    """
    if not isinstance(doc, Mapping):
        raise _fail("entry", "must be a JSON object")
    now = _utc(now, "now")
    try:
        method = proof_method(doc)
    except VerificationError:
        raise _fail("proof", "missing or malformed") from None
    key = keys.get(method)
    if key is None:
        raise _fail("proof.verificationMethod", "key is not in the publisher's key set")
    proof = doc["proof"]
    proof = proof[0] if isinstance(proof, list) else proof
    created = _parse_datetime(proof.get("created"), "proof.created") if "created" in proof else None
    revoked = (retired or {}).get(method)
    if revoked is not None and (created is None or created > _utc(revoked, "revoked")):
        raise _fail("proof.created", "made with a key after it was revoked")
    try:
        verify_object(doc, key, now=now)
    except VerificationError:
        raise _fail("proof", "did not verify") from None
    return parse_entry(doc)


# --------------------------------------------------------------------------- reduction


def _ascending_unique(entries: Sequence[Entry]) -> list[Entry]:
    ordered = sorted(entries, key=lambda entry: entry.change_id)
    for before, after in itertools.pairwise(ordered):
        if before.change_id == after.change_id and before != after:
            raise _fail("changeId", f"{after.change_id} names two different entries")
    return ordered


def reduce_snapshot(entries: Iterable[Entry], *, now: datetime) -> dict[tuple[EntityKind, str], Entry]:
    """The current state by entity: for each ``(entityKind, entityKey)`` the entry with the
    greatest ``changeId``, unless that entry is a Retraction or a Tombstone, or has expired.

    The latest entry decides (FIRES reduction): an expired or retracted latest entry does not
    bring an older one back. Replaying the same entry twice is harmless; two different entries
    with one ``changeId`` raise ``FeedError``. Absence from the input is never a retraction.
    """
    latest: dict[tuple[EntityKind, str], Entry] = {}
    for entry in _ascending_unique(list(entries)):
        latest[entry.entity] = entry
    return {
        entity: entry
        for entity, entry in latest.items()
        if entry.type in ("Advisory", "Recommendation") and entry.active(now)
    }


def purge_tombstoned(entries: Iterable[Entry]) -> list[Entry]:
    """Drop every stored entry about an entity from before its newest Tombstone (FIRES: a
    Tombstone applies retroactively to all changes for the entity); the Tombstone stays so
    the purge propagates. Order of the rest is kept."""
    items = list(entries)
    tombstoned: dict[tuple[EntityKind, str], str] = {}
    for entry in items:
        if entry.type == "Tombstone" and entry.change_id > tombstoned.get(entry.entity, ""):
            tombstoned[entry.entity] = entry.change_id
    return [entry for entry in items if entry.entity not in tombstoned or entry.change_id >= tombstoned[entry.entity]]


def check_page_order(entries: Sequence[Entry], *, after: str | None) -> None:
    """A changes page must be strictly ascending and start after the cursor it was asked for."""
    previous = None if after is None else _check_uuid7(after, "after")
    for index, entry in enumerate(entries):
        if previous is not None and entry.change_id <= previous:
            raise _fail(f"orderedItems[{index}].changeId", "not after the previous changeId or the cursor")
        previous = entry.change_id


# --------------------------------------------------------------------------- privacy rules

_MEMBER_DATA_PATTERNS: Final = (
    ("a web address", re.compile(r"(?i)\b(?:https?|ftp)://|\bwww\.")),
    ("a handle or e-mail address", re.compile(r"@[\w.-]*\w|\w@")),
    ("a phone number", re.compile(r"\+?\d(?:[\s().-]?\d){6,}")),
    ("an IP address", re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}\b")),
)


def _check_public_text(texts: Mapping[str, str], name: str) -> None:
    for tag, text in texts.items():
        if len(text) > MAX_PUBLIC_TEXT:
            raise NotPublishableError(f"{name}.{tag}: longer than {MAX_PUBLIC_TEXT} characters")
        for what, pattern in _MEMBER_DATA_PATTERNS:
            if pattern.search(text):
                raise NotPublishableError(f"{name}.{tag}: contains {what}; public reasons must not identify people")


def check_publishable(entry: Entry, *, now: datetime, partner_only: bool = False) -> None:
    """Refuse an entry that §6.b "Privacy & safety constraints" keeps inside the instance.

    Checked here: an Advisory or Recommendation needs ``review`` of ``human`` or ``aggregated``
    (automated results stay internal); an actor entry only goes to a partner-only feed and must
    expire in the future, within :data:`MAX_ACTOR_ENTRY_LIFETIME` of publication; a reason or
    comment is at most :data:`MAX_PUBLIC_TEXT` characters per language and contains no web
    address, handle, e-mail address, phone number or IP address (anything that could point at a
    person); no label from the member-safety namespace (:data:`SAFETY_LABEL_PREFIX`) or naming a
    crisis. Not checkable and so held by construction or by the caller: :class:`Entry` has no
    evidence, reporter, note, post-content or member-state field; the feed's appeals contact is
    required by :func:`dataset_document`; whether a feed is public at all is the caller's setting.
    """
    now = _utc(now, "now")
    if entry.type in ("Advisory", "Recommendation") and entry.review not in ("human", "aggregated"):
        raise NotPublishableError("review: a published decision needs human or aggregated review")
    if entry.entity_kind == "actor":
        if not partner_only:
            raise NotPublishableError("entityKind: account-level entries go to partner-only feeds")
        if entry.type in ("Advisory", "Recommendation"):
            if entry.expires is None:
                raise NotPublishableError("expires: an account-level entry must expire")
            if entry.expires <= now:
                raise NotPublishableError("expires: already in the past")
            if entry.expires - entry.published > MAX_ACTOR_ENTRY_LIFETIME:
                raise NotPublishableError("expires: an account-level entry lasts at most a year")
    _check_public_text(entry.reason, "reason")
    _check_public_text(entry.comment, "comment")
    for index, label in enumerate(entry.labels):
        if label.startswith(SAFETY_LABEL_PREFIX) or "crisis" in label.lower():
            raise NotPublishableError(f"labels[{index}]: member-safety labels never leave the instance")


# --------------------------------------------------------------------------- datasets and keys


@dataclass(frozen=True, slots=True)
class PublisherKey:
    """One moderation key of a publisher; ``revoked`` set once it has been rotated out."""

    id: str
    public_key: PublicKey
    created: datetime
    revoked: datetime | None = None

    def __post_init__(self) -> None:
        _check_uri(self.id, "keys.id")
        if not isinstance(self.public_key, PublicKey) or self.public_key.kind != "ed25519":
            raise _fail("keys.publicKeyMultibase", "moderation keys are Ed25519")
        object.__setattr__(self, "created", _utc(self.created, "keys.created"))
        if self.revoked is not None:
            object.__setattr__(self, "revoked", _utc(self.revoked, "keys.revoked"))
            if self.revoked < self.created:
                raise _fail("keys.revoked", "before the key was created")

    def to_json(self, controller: str | None) -> dict[str, Any]:
        doc: dict[str, Any] = {"id": self.id, "type": "Multikey"}
        if controller is not None:
            doc["controller"] = controller
        doc["publicKeyMultibase"] = self.public_key.to_multibase()
        doc["created"] = _format_datetime(self.created)
        if self.revoked is not None:
            doc["revoked"] = _format_datetime(self.revoked)
        return doc


def _texts_or_empty(value: Mapping[str, str] | None, name: str) -> Mapping[str, str]:
    return _check_text_map(value or {}, name)


@dataclass(frozen=True, slots=True)
class Dataset:
    """A feed's description (FIRES ``Dataset`` plus §6.b's publisher, policy, appeals and keys)."""

    id: str
    name: str
    snapshot: str
    changes: str
    url: str | None = None
    name_map: Mapping[str, str] = field(default_factory=_empty_texts)
    summary: str | None = None
    summary_map: Mapping[str, str] = field(default_factory=_empty_texts)
    publisher: str | None = None
    policy_url: str | None = None
    appeals_contact: str | None = None
    labels_vocabulary: tuple[str, ...] = ()
    keys: tuple[PublisherKey, ...] = ()
    published: datetime | None = None
    updated: datetime | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        _check_uri(self.id, "id", schemes=_HTTP)
        if not isinstance(self.name, str) or not self.name.strip() or len(self.name) > MAX_TEXT:
            raise _fail("name", "must be non-empty text")
        _check_uri(self.snapshot, "endpoints.snapshot", schemes=_HTTP)
        _check_uri(self.changes, "endpoints.changes", schemes=_HTTP)
        for name, value in (("url", self.url), ("publisher", self.publisher), ("policyUrl", self.policy_url)):
            if value is not None:
                _check_uri(value, name, schemes=_HTTP)
        if self.appeals_contact is not None:
            _check_uri(self.appeals_contact, "appealsContact", schemes=frozenset({"https", "http", "mailto"}))
        set_(self, "name_map", _texts_or_empty(self.name_map, "nameMap"))
        if self.summary is not None and (not isinstance(self.summary, str) or len(self.summary) > MAX_TEXT):
            raise _fail("summary", f"must be text of at most {MAX_TEXT} characters")
        set_(self, "summary_map", _texts_or_empty(self.summary_map, "summaryMap"))
        set_(self, "labels_vocabulary", _check_uri_list(self.labels_vocabulary, "labelsVocabulary"))
        if not isinstance(self.keys, tuple) or not all(isinstance(key, PublisherKey) for key in self.keys):
            raise _fail("keys", "must be a tuple of PublisherKey")
        if len(self.keys) > MAX_LIST:
            raise _fail("keys", f"more than {MAX_LIST} keys")
        if len({key.id for key in self.keys}) != len(self.keys):
            raise _fail("keys", "two keys share an id")
        for name, moment in (("published", self.published), ("updated", self.updated)):
            if moment is not None:
                set_(self, name, _utc(moment, name))

    def verification_keys(self) -> dict[str, PublicKey]:
        """Every key, current and historical, by id: what :func:`verify_entry` takes."""
        return {key.id: key.public_key for key in self.keys}

    def retired_keys(self) -> dict[str, datetime]:
        """Revocation time by key id, for :func:`verify_entry`'s ``retired``."""
        return {key.id: key.revoked for key in self.keys if key.revoked is not None}

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "@context": [AS_CONTEXT, FIRES_CONTEXT, MULTIKEY_CONTEXT, dict(EXTENSION_CONTEXT)],
            "type": "Dataset",
            "id": self.id,
        }
        if self.url is not None:
            doc["url"] = self.url
        doc["name"] = self.name
        if self.name_map:
            doc["nameMap"] = dict(self.name_map)
        if self.summary is not None:
            doc["summary"] = self.summary
        if self.summary_map:
            doc["summaryMap"] = dict(self.summary_map)
        if self.published is not None:
            doc["published"] = _format_datetime(self.published)
        if self.updated is not None:
            doc["updated"] = _format_datetime(self.updated)
        doc["endpoints"] = {"changes": self.changes, "snapshot": self.snapshot}
        for name, value in (
            ("publisher", self.publisher),
            ("policyUrl", self.policy_url),
            ("appealsContact", self.appeals_contact),
        ):
            if value is not None:
                doc[name] = value
        if self.labels_vocabulary:
            doc["labelsVocabulary"] = list(self.labels_vocabulary)
        if self.keys:
            doc["keys"] = [key.to_json(self.publisher) for key in self.keys]
        return doc


def dataset_document(
    *,
    id: str,
    name: str,
    snapshot: str,
    changes: str,
    publisher: str,
    policy_url: str,
    appeals_contact: str,
    keys: Sequence[PublisherKey],
    url: str | None = None,
    name_map: Mapping[str, str] | None = None,
    summary: str | None = None,
    summary_map: Mapping[str, str] | None = None,
    labels_vocabulary: Sequence[str] = (),
    published: datetime | None = None,
    updated: datetime | None = None,
) -> dict[str, Any]:
    """The Dataset document of one of our feeds. Unlike a FIRES dataset, ours must name its
    publisher, policy and appeals contact and list at least one key that is not revoked."""
    if not any(key.revoked is None for key in keys):
        raise _fail("keys", "a published feed needs a current (not revoked) key")
    return Dataset(
        id=id,
        name=name,
        snapshot=snapshot,
        changes=changes,
        url=url,
        name_map=name_map or {},
        summary=summary,
        summary_map=summary_map or {},
        publisher=publisher,
        policy_url=policy_url,
        appeals_contact=appeals_contact,
        labels_vocabulary=tuple(labels_vocabulary),
        keys=tuple(keys),
        published=published,
        updated=updated,
    ).to_json()


def _parse_key(value: object, index: int, publisher: str | None) -> PublisherKey:
    name = f"keys[{index}]"
    if not isinstance(value, Mapping):
        raise _fail(name, "must be an object")
    multibase = value.get("publicKeyMultibase")
    if not isinstance(multibase, str):
        raise _fail(f"{name}.publicKeyMultibase", "missing or not a string")
    try:
        public_key = PublicKey.from_multibase(multibase)
    except KeyFormatError as exc:
        raise _fail(f"{name}.publicKeyMultibase", str(exc)) from None
    controller = value.get("controller")
    if controller is not None and publisher is not None and controller != publisher:
        raise _fail(f"{name}.controller", "is not the dataset's publisher")
    revoked = value.get("revoked")
    return PublisherKey(
        id=_check_uri(value.get("id"), f"{name}.id"),
        public_key=public_key,
        created=_parse_datetime(value.get("created"), f"{name}.created"),
        revoked=None if revoked is None else _parse_datetime(revoked, f"{name}.revoked"),
    )


def _check_context(doc: Mapping[str, Any]) -> None:
    if not _context_names_fires(doc.get("@context")):
        raise _fail("@context", f"must include {FIRES_CONTEXT}")


def parse_dataset(doc: object) -> Dataset:
    """Read a FIRES Dataset (ours or anyone's). FIRES datasets have no keys: such a feed can be
    consumed only as an unsigned source."""
    if not isinstance(doc, Mapping):
        raise _fail("dataset", "must be a JSON object")
    _check_context(doc)
    if doc.get("type") != "Dataset":
        raise _fail("type", "must be Dataset")
    endpoints = doc.get("endpoints")
    if not isinstance(endpoints, Mapping):
        raise _fail("endpoints", "missing or not an object")
    name_map = _check_text_map(_or(doc, "nameMap", {}), "nameMap")
    name = doc.get("name")
    if name is None and name_map:
        name = _preferred_text(name_map)
    if not isinstance(name, str):
        raise _fail("name", "missing or not a string")
    publisher = doc.get("publisher")
    keys = _or(doc, "keys", [])
    if not isinstance(keys, list):
        raise _fail("keys", "must be a list")
    if len(keys) > MAX_LIST:
        raise _fail("keys", f"more than {MAX_LIST} keys")
    publisher_id = publisher if isinstance(publisher, str) else None
    labels_vocabulary = _or(doc, "labelsVocabulary", [])
    published = doc.get("published")
    updated = doc.get("updated")
    return Dataset(
        id=_check_uri(doc.get("id"), "id", schemes=_HTTP),
        name=name,
        snapshot=_check_uri(endpoints.get("snapshot"), "endpoints.snapshot", schemes=_HTTP),
        changes=_check_uri(endpoints.get("changes"), "endpoints.changes", schemes=_HTTP),
        url=_optional(doc, "url"),
        name_map=name_map,
        summary=_optional(doc, "summary"),
        summary_map=_check_text_map(_or(doc, "summaryMap", {}), "summaryMap"),
        publisher=publisher,
        policy_url=_optional(doc, "policyUrl"),
        appeals_contact=_optional(doc, "appealsContact"),
        labels_vocabulary=_check_uri_list(labels_vocabulary, "labelsVocabulary"),
        keys=tuple(_parse_key(key, index, publisher_id) for index, key in enumerate(keys)),
        published=None if published is None else _parse_datetime(published, "published"),
        updated=None if updated is None else _parse_datetime(updated, "updated"),
    )


# --------------------------------------------------------------------------- snapshot and changes


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A snapshot document. ``entry_documents`` stay JSON: each is verified on its own
    (:func:`verify_entry`) or, for unsigned FIRES sources, parsed (:func:`parse_entry`)."""

    id: str
    dataset: str | None
    total_items: int
    changes: str | None
    updated: datetime | None
    entry_documents: tuple[Mapping[str, Any], ...]


@dataclass(frozen=True, slots=True)
class ChangesPage:
    """The changes collection (no items, only ``first``/``last``) or one of its pages."""

    id: str
    part_of: str | None
    dataset: str | None
    total_items: int | None
    first: str | None
    last: str | None
    next: str | None
    prev: str | None
    entry_documents: tuple[Mapping[str, Any], ...]


def page_url(collection_url: str, *, after: str) -> str:
    """The changes URL for entries after ``after`` (§6.b ``?after=<changeId>``)."""
    _check_uri(collection_url, "collection", schemes=_HTTP)
    parts = urlsplit(collection_url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in ("after", "since")]
    query.append(("after", _check_uuid7(after, "after")))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))


def page_cursor(url: str) -> str | None:
    """The cursor in a changes URL: ``after`` (ours) or ``since`` (FIRES), or ``None``."""
    _check_uri(url, "url", schemes=_HTTP)
    values = [v for k, v in parse_qsl(urlsplit(url).query, keep_blank_values=True) if k in ("after", "since")]
    if not values:
        return None
    if len(values) > 1:
        raise _fail("url", "more than one cursor")
    return _check_uuid7(values[0], "after")


def _items(doc: Mapping[str, Any], limit: int) -> tuple[Mapping[str, Any], ...]:
    if "orderedItems" in doc and "items" in doc:
        raise _fail("orderedItems", "both items and orderedItems are present")
    name = "orderedItems" if "orderedItems" in doc else "items"
    items = doc.get(name)
    if items is None:
        return ()
    if not isinstance(items, list):
        raise _fail(name, "must be a list")
    if len(items) > limit:
        raise _fail(name, f"more than {limit} items")
    for index, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise _fail(f"{name}[{index}]", "must be an embedded entry object (links are not fetched)")
    return tuple(items)


def _total(doc: Mapping[str, Any]) -> int | None:
    total = doc.get("totalItems")
    if total is None:
        return None
    if isinstance(total, bool) or not isinstance(total, int) or total < 0:
        raise _fail("totalItems", "must be a non-negative integer")
    return total


def _optional_uri(doc: Mapping[str, Any], name: str) -> str | None:
    value = doc.get(name)
    return None if value is None else _check_uri(value, name, schemes=_HTTP)


def parse_snapshot(doc: object) -> Snapshot:
    """Read a snapshot (a FIRES ``Collection`` with ``orderedItems``, newest first)."""
    if not isinstance(doc, Mapping):
        raise _fail("snapshot", "must be a JSON object")
    _check_context(doc)
    if doc.get("type") not in ("Collection", "OrderedCollection"):
        raise _fail("type", "must be Collection or OrderedCollection")
    items = _items(doc, MAX_SNAPSHOT_ITEMS)
    total = _total(doc)
    updated = doc.get("updated")
    return Snapshot(
        id=_check_uri(doc.get("id"), "id", schemes=_HTTP),
        dataset=_optional_uri(doc, "dataset"),
        total_items=len(items) if total is None else total,
        changes=_optional_uri(doc, "changes"),
        updated=None if updated is None else _parse_datetime(updated, "updated"),
        entry_documents=items,
    )


def parse_changes_page(doc: object) -> ChangesPage:
    """Read the changes ``OrderedCollection`` or an ``OrderedCollectionPage`` (ascending)."""
    if not isinstance(doc, Mapping):
        raise _fail("changes", "must be a JSON object")
    _check_context(doc)
    kind = doc.get("type")
    if kind not in ("OrderedCollection", "OrderedCollectionPage"):
        raise _fail("type", "must be OrderedCollection or OrderedCollectionPage")
    part_of = _optional_uri(doc, "partOf")
    if kind == "OrderedCollectionPage" and part_of is None:
        raise _fail("partOf", "a page must name its collection")
    page = ChangesPage(
        id=_check_uri(doc.get("id"), "id", schemes=_HTTP),
        part_of=part_of,
        dataset=_optional_uri(doc, "dataset"),
        total_items=_total(doc),
        first=_optional_uri(doc, "first"),
        last=_optional_uri(doc, "last"),
        next=_optional_uri(doc, "next"),
        prev=_optional_uri(doc, "prev"),
        entry_documents=_items(doc, MAX_PAGE_ITEMS),
    )
    for name in ("first", "last", "next", "prev"):
        link = getattr(page, name)
        if link is not None and page_cursor(link) is None and kind == "OrderedCollectionPage" and name != "first":
            raise _fail(name, "a page link must carry an after (or since) cursor")
    return page


def _collection_context() -> list[Any]:
    return [AS_CONTEXT, FIRES_CONTEXT]  # embedded entries carry their own full context


def snapshot_document(
    *,
    id: str,
    dataset: str,
    entries: Sequence[Mapping[str, Any]],
    changes: str | None,
    updated: datetime | None,
    summary: str | None = None,
) -> dict[str, Any]:
    """A snapshot: the signed entry documents of the current state, newest first (FIRES order);
    ``changes`` is the changes URL with the newest ``changeId`` as cursor."""
    doc: dict[str, Any] = {
        "@context": _collection_context(),
        "id": _check_uri(id, "id", schemes=_HTTP),
        "type": "Collection",
    }
    if summary is not None:
        doc["summary"] = summary
    doc["dataset"] = _check_uri(dataset, "dataset", schemes=_HTTP)
    doc["totalItems"] = len(entries)
    if updated is not None:
        doc["updated"] = _format_datetime(_utc(updated, "updated"))
    if changes is not None:
        doc["changes"] = _check_uri(changes, "changes", schemes=_HTTP)
    doc["orderedItems"] = [dict(entry) for entry in entries]
    return doc


def changes_collection_document(
    *, id: str, dataset: str, total_items: int, first: str | None, last: str | None
) -> dict[str, Any]:
    """The changes ``OrderedCollection`` itself: counts and links, no items (FIRES shape)."""
    doc: dict[str, Any] = {
        "@context": _collection_context(),
        "id": _check_uri(id, "id", schemes=_HTTP),
        "type": "OrderedCollection",
        "dataset": _check_uri(dataset, "dataset", schemes=_HTTP),
        "totalItems": total_items,
    }
    if first is not None:
        doc["first"] = first
        doc["next"] = first
    if last is not None:
        doc["last"] = last
    return doc


def changes_page_document(
    *,
    id: str,
    part_of: str,
    dataset: str,
    entries: Sequence[Mapping[str, Any]],
    total_items: int,
    next: str | None = None,
    prev: str | None = None,
    first: str | None = None,
    last: str | None = None,
) -> dict[str, Any]:
    """One ``OrderedCollectionPage`` of signed entry documents in ascending ``changeId`` order."""
    doc: dict[str, Any] = {
        "@context": _collection_context(),
        "id": _check_uri(id, "id", schemes=_HTTP),
        "partOf": _check_uri(part_of, "partOf", schemes=_HTTP),
        "type": "OrderedCollectionPage",
        "dataset": _check_uri(dataset, "dataset", schemes=_HTTP),
        "totalItems": total_items,
    }
    for name, link in (("first", first), ("last", last), ("next", next), ("prev", prev)):
        if link is not None:
            doc[name] = _check_uri(link, name, schemes=_HTTP)
    doc["orderedItems"] = [dict(entry) for entry in entries]
    return doc
