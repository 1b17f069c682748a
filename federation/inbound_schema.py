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

Speed. This runs for every inbox POST before the signature is checked, so it is kept cheap: the
schemas are compiled once at import with ``jsonschema_rs`` (Rust; the pure-Python ``jsonschema``
is only the independent cross-check in tests/test_inbound_speed_equivalence.py), a valid document
costs one ``is_valid`` call, and only a refused one is explained (all errors, then the same
choice of the one to report as ``jsonschema``'s ordering and ``best_match`` made). The limits
are checked in one walk over a document that keeps them; only a refused document is walked again,
in a fixed order, to name the same first problem as always. URLs are matched by one compiled
pattern for the usual ``scheme://host[:port]/...`` shape (results and origins cached); anything
else goes through ``urllib.parse.urlsplit`` exactly as before, so both give the same verdict.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Final
from urllib.parse import SplitResult, urlsplit

import jsonschema_rs

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


@lru_cache(maxsize=1024, typed=True)
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
# The usual shape, on which urlsplit cannot disagree with us: http(s)://host[:port] then nothing
# or "/", "?" or "#" and anything but controls, spaces and backslashes. The host is printable
# ASCII without "#%/:?@[\]" (no user info, brackets or zone ids), the port digits (empty means
# the default). Every other string takes the urlsplit path below, so what this pattern leaves
# out is still judged exactly as before.
_PLAIN_HTTP_URL = re.compile(
    r"(?P<scheme>[hH][tT][tT][pP][sS]?)://"
    r"(?P<host>[\x21\x22\x24\x26-\x2e\x30-\x39\x3b-\x3e\x41-\x5a\x5e-\x7e]+)"
    r"(?::(?P<port>[0-9]*))?"
    r"(?:[/?#][^\x00-\x20\x7f\\]*)?"
)
_MAX_PORT: Final = 65_535


def _split_http_url(value: str) -> SplitResult | None:
    """The general rule, with urlsplit: for the strings :data:`_PLAIN_HTTP_URL` does not match."""
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


def _plain_url_port(match: re.Match[str]) -> int | None:
    """The port of a plain URL: None when absent or empty, -1 when out of range (refused)."""
    port = match["port"]
    if not port:
        return None
    number = int(port)
    return number if number <= _MAX_PORT else -1


def is_http_url(value: object) -> bool:
    """True for an absolute http(s) URL with a host, no user info, spaces or backslashes."""
    return isinstance(value, str) and _is_http_url_text(value)


@lru_cache(maxsize=4096)
def _is_http_url_text(value: str) -> bool:
    # Cached: one activity names its actor, addressees and object several times over.
    if len(value) > MAX_URL_LENGTH:
        return False
    match = _PLAIN_HTTP_URL.fullmatch(value)
    if match is not None:
        return _plain_url_port(match) != -1
    return _split_http_url(value) is not None


@lru_cache(maxsize=4096)
def _origin(value: str) -> tuple[str, str, int] | None:
    """``(scheme, host, port)``; cached, as the inbox asks for the same few actors' origins."""
    if len(value) > MAX_URL_LENGTH:
        return None
    match = _PLAIN_HTTP_URL.fullmatch(value)
    if match is not None:
        port = _plain_url_port(match)
        if port == -1:
            return None
        scheme = match["scheme"].lower()
        # "or": port 0 means the default port, as urlsplit's falsy port did before.
        return scheme, match["host"].lower(), port or (443 if scheme == "https" else 80)
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

_EXTRA_FRACTION_DIGITS = re.compile(r"([.,][0-9]{6})[0-9]+")


@lru_cache(maxsize=1024)
def parse_datetime(value: str) -> datetime | None:
    """An RFC 3339 / ISO 8601 date-time as an aware datetime (UTC when no offset is given)."""
    if not _DATETIME_RE.fullmatch(value):
        return None
    # Python 3.11 reads at most 6 fractional digits; Go-based servers send 9.
    trimmed = _EXTRA_FRACTION_DIGITS.sub(r"\1", value)
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


# A field's place in the document, built only when a value is refused: None for the top level,
# else (the parent's place, the property name or list index).
_Place = tuple[Any, str | int] | None


def _path_of(place: _Place) -> str:
    parts: list[str | int] = []
    while place is not None:
        place, part = place
        parts.append(part)
    path = ""
    for part in reversed(parts):
        path = join_path(path, part)
    return path


def _has_unstorable(text: str) -> bool:
    # isascii() is O(1) on CPython's compact strings; an ASCII string can only hold a NUL.
    return "\x00" in text if text.isascii() else _UNSTORABLE_CHARS.search(text) is not None


def _check_string(text: str, max_string: int, place: _Place) -> None:
    if len(text) > max_string:
        raise InvalidActivity("too_large", _path_of(place), f"longer than {max_string} characters")
    if _has_unstorable(text):
        raise InvalidActivity("bad_value", _path_of(place), "contains a NUL character or an unpaired surrogate")


def _check_keys(value: Mapping[Any, Any], place: _Place) -> None:
    """Property names: strings, not too long, storable. All at once when they pass (the usual
    case); one by one, to report the first that fails, when they do not."""
    try:
        joined = "".join(value)
    except TypeError:
        pass  # a name that is not a string: found below
    else:
        if not _has_unstorable(joined) and (not value or max(map(len, value)) <= MAX_KEY_LENGTH):
            return
    for key in value:
        if not isinstance(key, str):
            raise InvalidActivity("bad_value", _path_of(place), "property names must be strings")
        if len(key) > MAX_KEY_LENGTH:
            raise InvalidActivity(
                "too_large", _path_of(place), f"a property name is longer than {MAX_KEY_LENGTH} characters"
            )
        if _has_unstorable(key):
            message = "a property name contains a NUL or an unpaired surrogate"
            raise InvalidActivity("bad_value", _path_of(place), message)


_JSON_SCALARS: Final = frozenset({int, float, bool, type(None)})
_CONTAINERS: Final = (dict, list, Mapping)
_Members = Iterator[tuple[str | int, Any]]


def _members(
    value: Mapping[Any, Any] | list[Any], depth: int, place: _Place, max_depth: int, max_items: int, max_keys: int
) -> _Members:
    """Check one array or object itself (depth, size, property names) and return its members
    last first: the order in which the stack-based walk this replaces visited them."""
    if depth > max_depth:
        raise InvalidActivity("too_deep", _path_of(place), f"JSON nested deeper than {max_depth} levels")
    if isinstance(value, list):
        if len(value) > max_items:
            raise InvalidActivity("too_large", _path_of(place), f"more than {max_items} items")
        return zip(range(len(value) - 1, -1, -1), reversed(value), strict=True)
    if len(value) > max_keys:
        raise InvalidActivity("too_large", _path_of(place), f"more than {max_keys} properties")
    _check_keys(value, place)
    if isinstance(value, dict):
        return reversed(value.items())
    pairs: list[tuple[str | int, Any]] = list(value.items())  # other Mappings' views need not reverse
    return iter(pairs[::-1])


def _within_limits(
    doc: dict[str, Any] | list[Any], max_depth: int, max_values: int, max_string: int, max_items: int, max_keys: int
) -> bool:
    """The verdict alone, for plain JSON (dicts, lists, str, int, float, bool, None), in any
    order: True means every limit holds. False also for anything unusual (a Mapping that is not a
    dict, a str subclass), which :func:`_first_refusal` then judges."""
    unstorable = _UNSTORABLE_CHARS.search
    scalars = _JSON_SCALARS
    seen = 1
    pending: list[tuple[Any, int]] = [(doc, 1)]
    while pending:
        value, depth = pending.pop()
        if depth > max_depth:
            return False
        seen += len(value)
        if type(value) is list:
            if len(value) > max_items:
                return False
            members: Any = value
        else:
            if len(value) > max_keys:
                return False
            try:
                joined = "".join(value)
            except TypeError:
                return False
            if _has_unstorable(joined) or (value and max(map(len, value)) > MAX_KEY_LENGTH):
                return False
            members = value.values()
        depth += 1
        for item in members:
            kind = type(item)
            if kind is str:
                if len(item) > max_string or ("\x00" in item if item.isascii() else unstorable(item) is not None):
                    return False
            elif kind is dict or kind is list:
                pending.append((item, depth))
            elif kind not in scalars:
                return False
    return seen <= max_values


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
    value is at depth 1. A document within the limits is walked once, in whatever order is
    quickest; one that is not is walked again in a fixed order (depth-first, each array's or
    object's members last first) to report the first problem, the same one as always.
    """
    kind = type(doc)
    if (kind is dict or kind is list) and _within_limits(doc, max_depth, max_values, max_string, max_items, max_keys):
        return
    _first_refusal(doc, max_depth, max_values, max_string, max_items, max_keys)


def _first_refusal(doc: Any, max_depth: int, max_values: int, max_string: int, max_items: int, max_keys: int) -> None:
    """Raise for the first value, in the walk's fixed order, that breaks a limit."""
    if max_values < 1:
        raise InvalidActivity("too_large", "", f"document has more than {max_values} values")
    if isinstance(doc, str):
        _check_string(doc, max_string, None)
        return
    if not isinstance(doc, _CONTAINERS):
        return
    seen = 1
    stack: list[tuple[_Members, int, _Place]] = [(_members(doc, 1, None, max_depth, max_items, max_keys), 2, None)]
    while stack:
        members, depth, place = stack[-1]
        for part, item in members:  # resumed after each nested array or object
            seen += 1
            if seen > max_values:
                raise InvalidActivity("too_large", "", f"document has more than {max_values} values")
            if isinstance(item, str):
                _check_string(item, max_string, (place, part))
            elif isinstance(item, _CONTAINERS):
                inner = (place, part)
                stack.append((_members(item, depth, inner, max_depth, max_items, max_keys), depth + 1, inner))
                break
        else:
            stack.pop()


def check_depth(doc: Any, limit: int = MAX_JSON_DEPTH) -> None:
    """Refuse JSON nested deeper than ``limit`` levels (the top-level value is level 1).

    Also refuses what every limits walk refuses (NUL, unpaired surrogates, bad property names).
    :func:`validate_activity` and :func:`validate_object` include this check: calling this first
    walks the document a second time for nothing.
    """
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


def _check_url(value: object) -> bool:
    return not isinstance(value, str) or is_http_url(value)


def _check_address(value: object) -> bool:
    return not isinstance(value, str) or value in PUBLIC_ALIASES or is_http_url(value)


def _check_datetime(value: object) -> bool:
    return not isinstance(value, str) or parse_datetime(value) is not None


# Our own string formats (format checks run only on strings; other types pass them).
FORMAT_CHECKS: Final[Mapping[str, Callable[[object], bool]]] = {
    "ap-url": _check_url,
    "ap-address": _check_address,
    "ap-datetime": _check_datetime,
}

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


_SCHEMA_BUILDERS: Final = {"activity": _activity_schema, "object": _object_schema, "actor": _actor_schema}


def schema(kind: str, *, top_level: bool) -> dict[str, Any]:
    """A copy of one of our JSON Schemas (``activity``, ``object``, ``actor``), as data."""
    return copy.deepcopy(_SCHEMAS[kind, top_level])


def _compile(document: dict[str, Any]) -> jsonschema_rs.Validator:
    jsonschema_rs.meta.validate(document)
    return jsonschema_rs.Draft202012Validator(document, formats=dict(FORMAT_CHECKS), validate_formats=True)


_SCHEMAS: Final = {
    (kind, top_level): build(top_level=top_level)
    for kind, build in _SCHEMA_BUILDERS.items()
    for top_level in (True, False)
}
_VALIDATORS: Final = {key: _compile(value) for key, value in _SCHEMAS.items()}


def _plain_json(value: Any) -> Any:
    """``value`` with every Mapping as a dict, for the validator (it reads only dicts and lists).

    Parsed views hand on read-only mappings (``MappingProxyType``), which are JSON objects too.
    Recursion is bounded: :func:`check_limits` has refused anything deeper than 32 levels.
    """
    if isinstance(value, Mapping):
        return {key: _plain_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain_json(item) for item in value]
    return value


# --- Explaining a refusal ---------------------------------------------------------------------
#
# Only for a document that failed: the validator lists every error, and the one reported is
# chosen as it was when the pure-Python ``jsonschema`` validated: the error nearest the top of
# the document, ties going to the keyword met first in the schema; an anyOf without a
# description reports the best of its alternatives by ``jsonschema.exceptions.best_match``'s
# relevance (deeper, then earlier, then not anyOf/oneOf, then one whose instance at least has
# the expected type). tests/test_inbound_speed_equivalence.py checks the two agree.

_Path = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class _Failure:
    keyword: str
    path: _Path  # where in the document (absolute)
    schema: Mapping[str, Any]  # the schema object whose keyword failed
    instance: Any  # the failing value, taken from the document itself
    order: tuple[int, ...]  # position of the keyword in the schema, as jsonschema visited it
    context: tuple[_Failure, ...]  # anyOf/oneOf: the alternatives' errors, in order

    @property
    def value(self) -> Any:
        return self.schema.get(self.keyword)


def _resolve(root: Mapping[str, Any], reference: str) -> Any:
    node: Any = root
    for part in reference.removeprefix("#/").split("/"):
        node = node[part]
    return node


def _schema_at(root: Mapping[str, Any], location: list[str | int]) -> Any:
    node: Any = root
    for part in location:
        node = node[part]
    return node


def _schema_order(root: Mapping[str, Any], evaluation_path: list[str | int]) -> tuple[int, ...]:
    """Each step of the keyword's evaluation path as its position in its schema object (key
    order) or array, following ``$ref``: the order in which jsonschema met the keywords."""
    order: list[int] = []
    node: Any = root
    for part in evaluation_path:
        if isinstance(node, list) and isinstance(part, int):
            order.append(part)
            node = node[part]
        elif isinstance(node, Mapping) and part in node:
            order.append(list(node).index(part))
            node = _resolve(root, node[part]) if part == "$ref" else node[part]
        else:  # not a place in our schemas: sort it last
            order.append(1 << 30)
            node = None
    return tuple(order)


def _instance_at(doc: Any, path: _Path) -> Any:
    node = doc
    for part in path:
        node = node[part]
    return node


def _failure(error: jsonschema_rs.ValidationError, root: Mapping[str, Any], doc: Any) -> _Failure:
    location = list(error.schema_path)
    keyword = str(location[-1]) if location else str(error.kind.name)
    context: list[_Failure] = []
    for branch in getattr(error.kind, "context", None) or []:
        context.extend(_ordered(_failure(inner, root, doc) for inner in branch))
    path = tuple(error.instance_path)
    return _Failure(
        keyword=keyword,
        path=path,
        schema=_schema_at(root, location[:-1]),
        instance=_instance_at(doc, path),
        order=_schema_order(root, list(error.evaluation_path)),
        context=tuple(context),
    )


def _ordered(failures: Iterator[_Failure] | list[_Failure]) -> list[_Failure]:
    return sorted(failures, key=lambda failure: failure.order)


_WEAK_KEYWORDS: Final = frozenset({"anyOf", "oneOf"})


# JSON Schema types as the validator saw them (any Mapping is an object).
_TYPE_CHECKS: Final[Mapping[str, Callable[[Any], bool]]] = {
    "object": lambda found: isinstance(found, Mapping),
    "array": lambda found: isinstance(found, list),
    "string": lambda found: isinstance(found, str),
    "null": lambda found: found is None,
    "boolean": lambda found: isinstance(found, bool),
    "number": lambda found: isinstance(found, int | float) and not isinstance(found, bool),
    "integer": lambda found: (
        (isinstance(found, int) and not isinstance(found, bool)) or (isinstance(found, float) and found.is_integer())
    ),
}


def _matches_type(failure: _Failure) -> bool:
    expected = failure.schema.get("type")
    if expected is None:
        return False
    names = [expected] if isinstance(expected, str) else expected
    return any(name in _TYPE_CHECKS and _TYPE_CHECKS[name](failure.instance) for name in names)


def _relevance(failure: _Failure) -> tuple[int, _Path, bool, bool, bool]:
    """jsonschema's ``relevance``: larger is a better match."""
    return (
        -len(failure.path),
        failure.path,
        failure.keyword not in _WEAK_KEYWORDS,
        False,  # jsonschema's "strong" keywords: none by default
        not _matches_type(failure),
    )


def _best_match(failures: list[_Failure]) -> _Failure:
    """jsonschema's ``best_match``: the most relevant, then down its context while one
    alternative stands out."""
    best = max(failures, key=_relevance)
    while best.context:
        smallest = sorted(best.context, key=_relevance)[:2]
        if len(smallest) == 2 and _relevance(smallest[0]) == _relevance(smallest[1]):
            return best
        best = smallest[0]
    return best


def _failure_to_invalid(failure: _Failure, prefix: str) -> InvalidActivity:
    path = prefix
    for part in failure.path:
        path = join_path(path, part)
    keyword = failure.keyword
    if keyword == "required":
        instance = failure.instance if isinstance(failure.instance, Mapping) else {}
        required = failure.value if isinstance(failure.value, list) else []
        missing = next((name for name in required if name not in instance), "")
        return InvalidActivity("missing", join_path(path, missing), "required")
    if failure.path and failure.path[0] == "@context":
        return InvalidActivity("bad_context", path, f"must include {AS_CONTEXT}")
    if keyword == "format":
        reason, message = _FORMAT_MESSAGES.get(str(failure.value), ("bad_value", "has the wrong format"))
        return InvalidActivity(reason, path, message)
    if keyword in ("maxLength", "maxItems", "maxProperties"):
        unit = {"maxLength": "characters", "maxItems": "items", "maxProperties": "properties"}[keyword]
        return InvalidActivity("too_large", path, f"more than {failure.value} {unit}")
    if keyword in _WEAK_KEYWORDS:
        description = failure.schema.get("description")
        if description:
            return InvalidActivity("bad_value", path, f"must be {description}")
        # An undescribed alternative is "null or X": report why it is not X.
        not_null = [sub for sub in failure.context if not (sub.keyword == "type" and sub.value == "null")]
        if not_null:
            return _failure_to_invalid(_best_match(not_null), prefix)
        return InvalidActivity("bad_value", path, "is not of an accepted shape")
    if keyword == "type":
        expected = failure.value
        names = " or ".join(expected) if isinstance(expected, list) else str(expected)
        return InvalidActivity("bad_value", path, f"must be of type {names}")
    if keyword == "minLength":
        return InvalidActivity("bad_value", path, "must not be empty")
    if keyword == "minItems":
        return InvalidActivity("bad_value", path, "must not be an empty list")
    return InvalidActivity("bad_value", path, f"failed the {keyword} check")


def _explain(kind: str, top_level: bool, doc: Any, prefix: str) -> InvalidActivity:
    """The error to report for a document the schema refused (refused it stays, whatever this
    finds: an error report it cannot read still gives a generic refusal)."""
    root = _SCHEMAS[kind, top_level]
    try:
        errors = _VALIDATORS[kind, top_level].iter_errors(doc)
        failures = _ordered([_failure(error, root, doc) for error in errors])
        first = min(failures, key=lambda failure: (len(failure.path), str(list(failure.path))))
        return _failure_to_invalid(first, prefix)
    except (LookupError, TypeError, ValueError):
        return InvalidActivity("bad_value", prefix, "does not match the schema")


def run_schema(kind: str, doc: Mapping[str, Any], *, top_level: bool, prefix: str = "") -> None:
    """Validate ``doc`` against one of our schemas, raising the first error by path.

    ``doc`` must already have passed :func:`check_limits` (which also bounds the validator's
    recursion).
    """
    instance: Any = doc
    validator = _VALIDATORS[kind, top_level]
    try:
        valid = validator.is_valid(instance)
    except ValueError:  # it reads only dicts and lists: a read-only mapping somewhere
        instance = _plain_json(doc)
        try:
            valid = validator.is_valid(instance)
        except ValueError:  # not JSON at all (bytes, a set, ...): never from json.loads
            raise InvalidActivity("bad_value", prefix, "holds a value that is not JSON") from None
    if not valid:
        raise _explain(kind, top_level, instance, prefix)


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
