"""Shape checks for incoming ActivityPub JSON: limits, URLs, JSON Schemas, error messages.

How it works. Every document from another server goes through two gates before anything reads
it. :func:`check_limits` walks the parsed JSON once, without recursion, and refuses documents
that are too deep, have too many values, or hold a string, key, array or object over its cap
(research/federation.md §2.7: Mastodon rejects 1 MB documents and caps usernames, names and
notes; Akkoma caps remote posts at 100,000 characters). Then a JSON Schema (Draft 2020-12,
kept here as Python data and compiled once) checks the fields we read: ``@context``, ``id``,
``type``, ``actor``, ``object``, addressing, dates and text sizes.

What it guarantees. A document that passes has an ``@context`` that includes ActivityStreams
(research/federation.md §8.1 item 2: Mastodon drops documents without it; Lemmy's list form is
accepted), an absolute http(s) ``id``, a string ``type``, an ``actor`` that is a URL or an
object with one, and an ``object`` wherever the activity type needs one. Every failure raises
:class:`InvalidActivity` with a short ``reason`` code for logs and a message that names the
field, e.g. ``object.inReplyTo: must be a URL, an object with an id, or a Link``.

What it refuses. Relative, protocol-relative, credential-bearing and non-http(s) URLs in any
field we use as an identifier; documents without the ActivityStreams context; strings over
100,000 characters (summaries over 20,000, names and usernames over 2,048); arrays over 1,000
items; more than 50,000 values; JSON nested deeper than 32 levels; strings holding a NUL or an
unpaired surrogate.

The schemas stay permissive about everything we do not read: unknown properties, extension
contexts and ``null`` for optional fields (Mbin sends ``"inReplyTo": null``) pass.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import cache
from typing import Any, Final
from urllib.parse import SplitResult, urlsplit

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError, best_match
from jsonschema.validators import extend

__all__ = [
    "AS_CONTEXT",
    "AS_PUBLIC",
    "MAX_ARRAY_ITEMS",
    "MAX_JSON_DEPTH",
    "MAX_JSON_VALUES",
    "MAX_NAME_LENGTH",
    "MAX_STRING_LENGTH",
    "MAX_SUMMARY_LENGTH",
    "MAX_URL_LENGTH",
    "InvalidActivity",
    "check_depth",
    "check_limits",
    "is_http_url",
    "same_origin",
    "validate_activity",
    "validate_object",
]

AS_CONTEXT: Final = "https://www.w3.org/ns/activitystreams"
AS_PUBLIC: Final = "https://www.w3.org/ns/activitystreams#Public"
# The compact forms of the Public collection seen in the wild (fediverse-pasture
# public_addressing: Mastodon and others accept both).
PUBLIC_ALIASES: Final = frozenset({AS_PUBLIC, "as:Public", "Public"})

MAX_JSON_DEPTH: Final = 32
MAX_JSON_VALUES: Final = 50_000
MAX_STRING_LENGTH: Final = 100_000  # Akkoma's remote_limit (research/federation.md §2.7)
MAX_SUMMARY_LENGTH: Final = 20_000  # Mastodon's summary cap (research/federation.md §8.1 item 5)
MAX_NAME_LENGTH: Final = 2_048  # Mastodon: username and display name (research §2.7, §8.1 item 5)
MAX_URL_LENGTH: Final = 2_048
MAX_ARRAY_ITEMS: Final = 1_000
MAX_OBJECT_KEYS: Final = 1_000
MAX_KEY_LENGTH: Final = 1_024
MAX_TYPE_LENGTH: Final = 256
MAX_ALSO_KNOWN_AS: Final = 256  # Mastodon's alsoKnownAs cap (research/federation.md §2.7)
MAX_KEY_PEM_LENGTH: Final = 10_000


class InvalidActivity(Exception):
    """An incoming document that we refuse, with what is wrong with it.

    ``reason`` is a short code for logs and metrics: ``not_an_object``, ``too_deep``,
    ``too_large``, ``missing``, ``not_a_url``, ``bad_context``, ``bad_value``,
    ``unsupported_type``, ``id_mismatch``, ``key_owner``, ``key_origin``, ``no_self_link``.
    ``path`` is the field (``object.inReplyTo``, ``to[2]``; empty for the whole document), and
    the message always starts with it. Messages never include field values, so they are safe to
    log.
    """

    def __init__(self, reason: str, path: str, message: str) -> None:
        self.reason = reason
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)


_SAFE_KEY = re.compile(r"[@A-Za-z0-9_:\-]{1,64}")


def join_path(base: str, part: str | int) -> str:
    """``object`` + ``inReplyTo`` -> ``object.inReplyTo``; ``to`` + 2 -> ``to[2]``.

    Property names come from the sender, so one that is not a plain identifier is shown as
    ``?``: paths stay short and safe to log.
    """
    if isinstance(part, int):
        return f"{base}[{part}]"
    name = part if _SAFE_KEY.fullmatch(part) else "?"
    return f"{base}.{name}" if base else name


# --- URLs and origins -----------------------------------------------------------------------

_FORBIDDEN_URL_CHARS = re.compile(r"[\x00-\x20\x7f\\]")


def _split_http_url(value: str) -> SplitResult | None:
    if len(value) > MAX_URL_LENGTH or _FORBIDDEN_URL_CHARS.search(value):
        return None
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    if "@" in parts.netloc:
        return None  # user info in an id makes the origin ambiguous to humans and parsers
    return parts


def is_http_url(value: object) -> bool:
    """True for an absolute http(s) URL with a host, no user info, spaces or backslashes."""
    return isinstance(value, str) and _split_http_url(value) is not None


def _origin(value: str) -> tuple[str, str, int] | None:
    parts = _split_http_url(value)
    if parts is None or parts.hostname is None:
        return None
    scheme = parts.scheme.lower()
    return scheme, parts.hostname.lower(), parts.port or (443 if scheme == "https" else 80)


def same_origin(a: str, b: str) -> bool:
    """Same scheme, host and port (FEP-fe34 origins; research/federation.md §8.4 item 23).

    Anything that is not an absolute http(s) URL has no origin and matches nothing.
    """
    origin_a = _origin(a)
    return origin_a is not None and origin_a == _origin(b)


# --- Dates ------------------------------------------------------------------------------------

_DATETIME_RE = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:[.,][0-9]{1,12})?)?"
    r"(?:[Zz]|[+-][0-9]{2}:?[0-9]{2})?"
)


def parse_datetime(value: str) -> datetime | None:
    """An RFC 3339 / ISO 8601 date-time as an aware datetime (UTC when no offset is given)."""
    if not _DATETIME_RE.fullmatch(value):
        return None
    # Python 3.11 reads at most 6 fractional digits; Go-based servers send 9.
    trimmed = re.sub(r"([.,][0-9]{6})[0-9]+", r"\1", value)
    try:
        parsed = datetime.fromisoformat(trimmed)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


# --- Limits -----------------------------------------------------------------------------------

# JSON escapes can spell a NUL or half a surrogate pair. Neither is text: a NUL cannot be stored in
# PostgreSQL text and an unpaired surrogate cannot be encoded as UTF-8 (nh3 would raise on it), so
# a document holding one is refused here, once, rather than failing somewhere later.
_UNSTORABLE_CHARS = re.compile("[\x00\ud800-\udfff]")


def check_limits(
    doc: Any,
    *,
    max_depth: int = MAX_JSON_DEPTH,
    max_values: int = MAX_JSON_VALUES,
    max_string: int = MAX_STRING_LENGTH,
    max_items: int = MAX_ARRAY_ITEMS,
    max_keys: int = MAX_OBJECT_KEYS,
) -> None:
    """Refuse JSON that is too deep, too big, or holds an oversized string, array or object.

    Iterative, so a hostile nesting depth cannot exhaust the interpreter's stack. The top-level
    value is at depth 1.
    """
    stack: list[tuple[Any, int, str]] = [(doc, 1, "")]
    seen = 0
    while stack:
        value, depth, path = stack.pop()
        seen += 1
        if seen > max_values:
            raise InvalidActivity("too_large", "", f"document has more than {max_values} values")
        if isinstance(value, str):
            if len(value) > max_string:
                raise InvalidActivity("too_large", path, f"longer than {max_string} characters")
            if _UNSTORABLE_CHARS.search(value):
                raise InvalidActivity("bad_value", path, "contains a NUL character or an unpaired surrogate")
            continue
        if not isinstance(value, Mapping | list):
            continue
        if depth > max_depth:
            raise InvalidActivity("too_deep", path, f"JSON nested deeper than {max_depth} levels")
        if isinstance(value, list):
            if len(value) > max_items:
                raise InvalidActivity("too_large", path, f"more than {max_items} items")
            stack.extend((item, depth + 1, join_path(path, index)) for index, item in enumerate(value))
            continue
        if len(value) > max_keys:
            raise InvalidActivity("too_large", path, f"more than {max_keys} properties")
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidActivity("bad_value", path, "property names must be strings")
            if len(key) > MAX_KEY_LENGTH:
                raise InvalidActivity("too_large", path, f"a property name is longer than {MAX_KEY_LENGTH} characters")
            if _UNSTORABLE_CHARS.search(key):
                raise InvalidActivity("bad_value", path, "a property name contains a NUL or an unpaired surrogate")
            stack.append((item, depth + 1, join_path(path, key)))


def check_depth(doc: Any, limit: int = MAX_JSON_DEPTH) -> None:
    """Refuse JSON nested deeper than ``limit`` levels (the top-level value is level 1)."""
    check_limits(
        doc,
        max_depth=limit,
        max_values=2**63,
        max_string=2**63,
        max_items=2**63,
        max_keys=2**63,
    )


# --- JSON Schemas -----------------------------------------------------------------------------

# Activity types that mean nothing without an object (AS2 vocabulary; Lemmy/Mbin extensions
# Lock, Warn, Resolve from research/federation.md §2.4 and §8.4 item 24).
OBJECT_REQUIRED_TYPES: Final = (
    "Accept",
    "Add",
    "Announce",
    "Block",
    "Create",
    "Delete",
    "Dislike",
    "EmojiReact",
    "Flag",
    "Follow",
    "Like",
    "Lock",
    "Move",
    "Reject",
    "Remove",
    "Resolve",
    "TentativeAccept",
    "TentativeReject",
    "Undo",
    "Update",
    "Warn",
)
# The object of these is one thing, never a list (Flag may name several).
SINGLE_OBJECT_TYPES: Final = ("Accept", "Announce", "Create", "Delete", "Reject", "Undo", "Update")

_FORMATS = FormatChecker(formats=())


def _check_url(value: object) -> bool:
    return not isinstance(value, str) or is_http_url(value)


def _check_address(value: object) -> bool:
    return not isinstance(value, str) or value in PUBLIC_ALIASES or is_http_url(value)


def _check_datetime(value: object) -> bool:
    return not isinstance(value, str) or parse_datetime(value) is not None


_FORMATS.checks("ap-url")(_check_url)
_FORMATS.checks("ap-address")(_check_address)
_FORMATS.checks("ap-datetime")(_check_datetime)

_FORMAT_MESSAGES: Final = {
    "ap-url": ("not_a_url", "must be an absolute http(s) URL"),
    "ap-address": ("not_a_url", "must be an absolute http(s) URL or the Public collection"),
    "ap-datetime": ("bad_value", "must be an ISO 8601 date-time"),
}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [{"type": "null"}, schema]}


def _text(max_length: int) -> dict[str, Any]:
    return {"type": ["string", "null"], "maxLength": max_length}


def _language_map(max_length: int) -> dict[str, Any]:
    return {
        "type": ["object", "null"],
        "maxProperties": 100,
        "additionalProperties": {"type": ["string", "null"], "maxLength": max_length},
    }


_DEFS: Final[dict[str, Any]] = {
    "url": {"type": "string", "format": "ap-url"},
    "ref": {
        "description": "a URL or an object with an id URL",
        "anyOf": [
            {"type": "string", "format": "ap-url"},
            {"type": "object", "required": ["id"], "properties": {"id": {"$ref": "#/$defs/url"}}},
        ],
    },
    "refs": {
        "description": "a URL, an object with an id URL, or a list of those",
        "anyOf": [
            {"$ref": "#/$defs/ref"},
            {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/ref"}},
        ],
    },
    "address": {
        "description": "a URL, the Public collection, or an object with an id URL",
        "anyOf": [
            {"type": "string", "format": "ap-address"},
            {"type": "object", "required": ["id"], "properties": {"id": {"$ref": "#/$defs/url"}}},
        ],
    },
    "addressing": {
        "description": "a URL or a list of URLs",
        "anyOf": [
            {"type": "null"},
            {"$ref": "#/$defs/address"},
            {"type": "array", "items": {"$ref": "#/$defs/address"}},
        ],
    },
    "datetime": {"type": ["string", "null"], "format": "ap-datetime"},
    "context": {
        "description": f"a context that includes {AS_CONTEXT}",
        "anyOf": [{"const": AS_CONTEXT}, {"type": "array", "contains": {"const": AS_CONTEXT}}],
    },
    "in_reply_to": {
        "description": "a URL, an object with an id, or a Link",
        "anyOf": [
            {"type": "null"},
            {"$ref": "#/$defs/reply_target"},
            {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/reply_target"}},
        ],
    },
    "reply_target": {
        "anyOf": [
            {"type": "string", "format": "ap-url"},
            {"type": "object", "required": ["id"], "properties": {"id": {"$ref": "#/$defs/url"}}},
            {"type": "object", "required": ["href"], "properties": {"href": {"$ref": "#/$defs/url"}}},
        ],
    },
    "type": {
        "description": "a type name or a list of type names",
        "anyOf": [
            {"type": "string", "minLength": 1, "maxLength": MAX_TYPE_LENGTH},
            {
                "type": "array",
                "minItems": 1,
                "items": {"type": "string", "minLength": 1, "maxLength": MAX_TYPE_LENGTH},
            },
        ],
    },
}


def _activity_schema(*, top_level: bool) -> dict[str, Any]:
    """The envelope of an activity; nested activities (inside Announce, Undo) carry no context."""
    single_object = {"properties": {"object": {"$ref": "#/$defs/ref"}}}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$defs": _DEFS,
        "type": "object",
        "required": (["@context"] if top_level else []) + ["id", "type", "actor"],
        "properties": {
            "@context": {"$ref": "#/$defs/context"},
            "id": {"$ref": "#/$defs/url"},
            "type": {"type": "string", "minLength": 1, "maxLength": MAX_TYPE_LENGTH},
            "actor": {"$ref": "#/$defs/ref"},
            "object": {"$ref": "#/$defs/refs"},
            "target": _nullable({"$ref": "#/$defs/ref"}),
            "to": {"$ref": "#/$defs/addressing"},
            "cc": {"$ref": "#/$defs/addressing"},
            "audience": {"$ref": "#/$defs/addressing"},
            "published": {"$ref": "#/$defs/datetime"},
            "endTime": {"$ref": "#/$defs/datetime"},
            "summary": _text(MAX_SUMMARY_LENGTH),
            "content": _text(MAX_STRING_LENGTH),
            "removeData": {"type": ["boolean", "null"]},
        },
        "allOf": [
            {"if": {"properties": {"type": {"enum": list(OBJECT_REQUIRED_TYPES)}}}, "then": {"required": ["object"]}},
            {"if": {"properties": {"type": {"enum": list(SINGLE_OBJECT_TYPES)}}}, "then": single_object},
        ],
    }


def _object_schema(*, top_level: bool) -> dict[str, Any]:
    """A post-like object (Note, Page, Article, Question and Mastodon's converted types)."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$defs": _DEFS,
        "type": "object",
        "required": (["@context"] if top_level else []) + ["id", "type", "attributedTo"],
        "properties": {
            "@context": {"$ref": "#/$defs/context"},
            "id": {"$ref": "#/$defs/url"},
            "type": {"$ref": "#/$defs/type"},
            "attributedTo": {"$ref": "#/$defs/refs"},
            "content": _text(MAX_STRING_LENGTH),
            "contentMap": _language_map(MAX_STRING_LENGTH),
            "summary": _text(MAX_SUMMARY_LENGTH),
            "summaryMap": _language_map(MAX_SUMMARY_LENGTH),
            "name": _text(MAX_NAME_LENGTH),
            "nameMap": _language_map(MAX_NAME_LENGTH),
            "inReplyTo": {"$ref": "#/$defs/in_reply_to"},
            "to": {"$ref": "#/$defs/addressing"},
            "cc": {"$ref": "#/$defs/addressing"},
            "audience": {"$ref": "#/$defs/addressing"},
            "published": {"$ref": "#/$defs/datetime"},
            "updated": {"$ref": "#/$defs/datetime"},
            "sensitive": {"type": ["boolean", "null"]},
            "tag": {"type": ["object", "array", "null"]},
            "attachment": {"type": ["object", "array", "null"]},
        },
    }


def _key_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["id", "publicKeyPem"],
        "properties": {
            "id": {"$ref": "#/$defs/url"},
            "owner": {"$ref": "#/$defs/url"},
            "publicKeyPem": {"type": "string", "minLength": 1, "maxLength": MAX_KEY_PEM_LENGTH},
        },
    }


def _actor_schema(*, top_level: bool) -> dict[str, Any]:
    """An actor document (research/federation.md §8.1 items 3-5)."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$defs": _DEFS,
        "type": "object",
        "required": (["@context"] if top_level else []) + ["id", "type", "preferredUsername", "inbox"],
        "properties": {
            "@context": {"$ref": "#/$defs/context"},
            "id": {"$ref": "#/$defs/url"},
            "type": {"$ref": "#/$defs/type"},
            "preferredUsername": {"type": "string", "minLength": 1, "maxLength": MAX_NAME_LENGTH},
            "name": _text(MAX_NAME_LENGTH),
            "summary": _text(MAX_SUMMARY_LENGTH),
            "inbox": {"$ref": "#/$defs/url"},
            "outbox": _nullable({"$ref": "#/$defs/url"}),
            "followers": _nullable({"$ref": "#/$defs/url"}),
            "following": _nullable({"$ref": "#/$defs/url"}),
            "endpoints": {
                "type": ["object", "null"],
                "properties": {"sharedInbox": _nullable({"$ref": "#/$defs/url"})},
            },
            "publicKey": {
                "description": "a key object or a list of key objects",
                "anyOf": [
                    {"type": "null"},
                    _key_schema(),
                    {"type": "array", "items": _key_schema()},
                ],
            },
            "alsoKnownAs": {
                "description": "a URL or a list of URLs",
                "anyOf": [
                    {"type": "null"},
                    {"$ref": "#/$defs/url"},
                    {"type": "array", "maxItems": MAX_ALSO_KNOWN_AS, "items": {"$ref": "#/$defs/url"}},
                ],
            },
            "movedTo": _nullable({"$ref": "#/$defs/url"}),
            "manuallyApprovesFollowers": {"type": ["boolean", "null"]},
            "discoverable": {"type": ["boolean", "null"]},
            "published": {"$ref": "#/$defs/datetime"},
        },
    }


# Parsed views hand on read-only mappings (MappingProxyType), which are JSON objects too.
_Validator = extend(
    Draft202012Validator,
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine(
        "object", lambda _checker, instance: isinstance(instance, Mapping)
    ),
)


@cache
def _validator(kind: str, top_level: bool) -> Any:
    builders = {"activity": _activity_schema, "object": _object_schema, "actor": _actor_schema}
    schema = builders[kind](top_level=top_level)
    Draft202012Validator.check_schema(schema)
    return _Validator(schema, format_checker=_FORMATS)


def _error_to_invalid(error: ValidationError, prefix: str) -> InvalidActivity:
    path = prefix
    for part in error.absolute_path:
        path = join_path(path, part)
    keyword = error.validator
    if keyword == "required":
        instance = error.instance if isinstance(error.instance, Mapping) else {}
        required = error.validator_value if isinstance(error.validator_value, list) else []
        missing = next((name for name in required if name not in instance), "")
        return InvalidActivity("missing", join_path(path, missing), "required")
    if error.absolute_path and error.absolute_path[0] == "@context":
        return InvalidActivity("bad_context", path, f"must include {AS_CONTEXT}")
    if keyword == "format":
        reason, message = _FORMAT_MESSAGES.get(str(error.validator_value), ("bad_value", "has the wrong format"))
        return InvalidActivity(reason, path, message)
    if keyword in ("maxLength", "maxItems", "maxProperties"):
        unit = {"maxLength": "characters", "maxItems": "items", "maxProperties": "properties"}[str(keyword)]
        return InvalidActivity("too_large", path, f"more than {error.validator_value} {unit}")
    if keyword in ("anyOf", "oneOf"):
        description = error.schema.get("description") if isinstance(error.schema, dict) else None
        if description:
            return InvalidActivity("bad_value", path, f"must be {description}")
        # An undescribed alternative is "null or X": report why it is not X.
        not_null = [
            sub for sub in error.context or [] if not (sub.validator == "type" and sub.validator_value == "null")
        ]
        if not_null:
            return _error_to_invalid(best_match(not_null), prefix)
        return InvalidActivity("bad_value", path, "is not of an accepted shape")
    if keyword == "type":
        expected = error.validator_value
        names = " or ".join(expected) if isinstance(expected, list) else str(expected)
        return InvalidActivity("bad_value", path, f"must be of type {names}")
    if keyword == "minLength":
        return InvalidActivity("bad_value", path, "must not be empty")
    if keyword == "minItems":
        return InvalidActivity("bad_value", path, "must not be an empty list")
    return InvalidActivity("bad_value", path, f"failed the {keyword} check")


def run_schema(kind: str, doc: Mapping[str, Any], *, top_level: bool, prefix: str = "") -> None:
    """Validate ``doc`` against one of our schemas, raising the first error by path."""
    errors = list(_validator(kind, top_level).iter_errors(doc))
    if errors:
        first = min(errors, key=lambda error: (len(error.absolute_path), str(list(error.absolute_path))))
        raise _error_to_invalid(first, prefix)


# --- Public entry points ----------------------------------------------------------------------

# Types that parse_note accepts: Mastodon's first-class and converted types (research
# /federation.md §2.3; Mastodon documentation "Payloads").
NOTE_TYPES: Final = frozenset({"Note", "Question", "Article", "Page", "Image", "Audio", "Video", "Event"})
ACTOR_TYPES: Final = frozenset({"Person", "Service", "Organization", "Application", "Group"})
POST_TYPE_DESCRIPTION: Final = "a post type (Note, Page, Article, Question, …)"
ACTOR_TYPE_DESCRIPTION: Final = "an actor type (Person, Group, Service, Organization, Application)"
# Activities that wrap another activity (research/federation.md §8.4 item 24).
WRAPPER_TYPES: Final = frozenset({"Announce", "Undo", "Accept", "Reject"})
MAX_WRAPPED: Final = 3  # Announce(Undo(Like)) is the deepest shape peers send


def type_names(value: Any) -> tuple[str, ...]:
    """The ``type`` of a JSON-LD node as short names (``as:Note`` and full IRIs -> ``Note``)."""
    raw = value if isinstance(value, list) else [value]
    names = []
    for name in raw:
        if isinstance(name, str):
            names.append(name.removeprefix("as:").removeprefix(AS_CONTEXT + "#"))
    return tuple(names)


def wraps_activity(kind: Any, embedded: Mapping[str, Any]) -> bool:
    """Whether ``embedded``, the object of an activity of type ``kind``, is itself an activity
    to parse as the wrapper's inner activity (an Announce's Create; not an Announce's Page)."""
    return (
        kind in WRAPPER_TYPES and "actor" in embedded and not NOTE_TYPES.intersection(type_names(embedded.get("type")))
    )


def _require_mapping(doc: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(doc, Mapping):
        raise InvalidActivity("not_an_object", path, "must be a JSON object")
    return doc


def _validate_activity_at(doc: Mapping[str, Any], *, top_level: bool, prefix: str, wrapped: int) -> None:
    run_schema("activity", doc, top_level=top_level, prefix=prefix)
    inner = doc.get("object")
    if not isinstance(inner, Mapping):
        return
    inner_path = join_path(prefix, "object")
    inner_types = type_names(inner.get("type"))
    if wraps_activity(doc.get("type"), inner):
        if wrapped >= MAX_WRAPPED:
            raise InvalidActivity("too_deep", inner_path, f"more than {MAX_WRAPPED} wrapped activities")
        _validate_activity_at(inner, top_level=False, prefix=inner_path, wrapped=wrapped + 1)
    elif NOTE_TYPES.intersection(inner_types) and doc.get("type") in ("Create", "Update", "Announce"):
        run_schema("object", inner, top_level=False, prefix=inner_path)


def validate_activity(doc: Any) -> None:
    """Check an incoming activity's shape and size; raise :class:`InvalidActivity` if wrong.

    Checks the limits, the envelope schema, and the embedded object: a post-like object inside
    ``Create``/``Update``/``Announce`` against the object schema, an activity inside
    ``Announce``/``Undo``/``Accept``/``Reject`` against the envelope schema (no ``@context``
    needed there; at most three levels of wrapping).
    """
    mapping = _require_mapping(doc, "")
    check_limits(mapping)
    _validate_activity_at(mapping, top_level=True, prefix="", wrapped=0)


def check_type(doc: Mapping[str, Any], accepted: frozenset[str], description: str) -> None:
    """Refuse a document whose ``type`` names none of ``accepted`` (a Tombstone where a post was
    expected is ``unsupported_type``, not "missing attributedTo"). A missing or malformed
    ``type`` is left for the schema to name."""
    names = type_names(doc.get("type"))
    if names and not accepted.intersection(names):
        raise InvalidActivity("unsupported_type", "type", f"must be {description}")


def validate_object(doc: Any) -> None:
    """Check a post-like object fetched on its own (so it needs its own ``@context``)."""
    mapping = _require_mapping(doc, "")
    check_limits(mapping)
    check_type(mapping, NOTE_TYPES, POST_TYPE_DESCRIPTION)
    run_schema("object", mapping, top_level=True)
