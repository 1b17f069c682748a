"""HTTP signatures for ActivityPub: draft-cavage-12 and RFC 9421, signing and verification.

Pure: no clock, no network, no key lookup. Every function takes ``now`` and the bytes it needs.

How verification works (research/federation.md §3.2, §3.3, §3.6, §8.4 item 20)
------------------------------------------------------------------------------
``read_signature`` parses the request's signature headers, checks everything that needs no key
(algorithm, covered components, time window, body digest recomputed from the received bytes)
and returns a ``PendingSignature`` that names the key (``key_id``). The caller resolves the key
and calls ``PendingSignature.verify``, which returns a ``VerifiedSignature`` or raises. Intended
use by the server::

    pending = read_signature(RequestToVerify(method, url, headers, body), now=now)
    key = await keys.cached(pending.key_id)          # server/: cache first
    try:
        verified = pending.verify(key)
    except SignatureError as error:
        if error.reason not in ("bad_signature", "key_mismatch"):
            raise
        key = await keys.refetch(pending.key_id)     # once: the actor may have rotated its key
        verified = pending.verify(key)
    # then: the key's owner must be the activity's actor (or a FEP-8b32 proof, or refetch)

``url`` is the full target URI as received, with the path and query in their raw (not decoded)
form: it is what ``(request-target)`` and ``@target-uri`` are rebuilt from.

Which scheme: ``Signature-Input`` present means RFC 9421, otherwise a ``Signature`` header means
draft-cavage; neither means ``SignatureError(reason="unsigned")``.

draft-cavage rules (Mastodon's, research §3.2): ``algorithm`` is ``rsa-sha256``, ``hs2019`` (the
key type decides: RSA means PKCS#1 v1.5 SHA-256) or ``ed25519``; absent means ``hs2019``; any
other value is refused (``rsa-sha512``, ``hmac-sha256``, ...). ``headers`` defaults to
``(created)`` for hs2019 and ``date`` otherwise. The signature must cover ``(request-target)``,
``host`` and ``date`` or ``(created)``; the signed ``Host`` must be the authority of ``url`` (a
request replayed to another server is refused); a POST must cover ``digest``;
``(created)``/``(expires)`` are refused with ``rsa-sha256``. ``(request-target)`` is tried with
the query string first, then without it (older senders, research §8.4 item 20). A leading
``Signature `` in the header value is tolerated as Mastodon does.

RFC 9421 rules (Mastodon 4.5+, research §3.3): exactly one signature: a ``Signature-Input`` with
several labels is refused (``multiple_signatures``) rather than guessing which one matters
(Mastodon accepts a single signature, research §3.3). ``created`` and ``keyid`` are required;
``@method`` and ``@target-uri`` must be covered, and ``content-digest`` on POST; ``alg`` is
``rsa-v1_5-sha256``, ``ed25519`` or absent (the key type decides); anything else is refused
(``rsa-pss-sha512``, ``hmac-sha256``, ``ecdsa-p256-sha256``). The signature base follows
RFC 9421 §2.5, the last line being ``"@signature-params"`` with the received inner list
re-serialized in received order (§3.2 step 7).

Both: the window is ``now ± window`` (one hour, research §8.3 item 15): a creation time after
``now + window`` or before ``now - window`` is refused, as is an ``expires`` in the past. A body
without a covered digest is refused; ``Digest`` (``SHA-256=``, also ``SHA-512=``, several allowed,
unknown algorithms ignored but at least one known needed) and ``Content-Digest`` (RFC 9530
``sha-256``/``sha-512``) are recomputed from the received bytes and every known member must match.

Errors: ``SignatureError`` with ``.reason`` (a short code, safe to log) and ``.status`` (400 for a
header that cannot be parsed, 401 for everything else). Reasons: ``unsigned``, ``malformed``,
``unsupported_algorithm``, ``missing_parameter``, ``missing_component``, ``missing_header``,
``unsupported_component``, ``invalid_pseudo_header``, ``host_mismatch``, ``multiple_signatures``,
``stale``, ``future``, ``expired``, ``digest_missing``, ``digest_mismatch``,
``digest_unsupported``, ``key_mismatch``, ``bad_signature``.

Signing: ``sign_request`` produces draft-cavage ``rsa-sha256`` exactly as Mastodon sends it
(research §3.4, §8.3 items 11-13); ``sign_request_rfc9421`` produces an RFC 9421 signature for
tests and a later double-knock (research §3.5).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any, Literal, TypeAlias
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import http_sf
from http_sf.innerlist import ser_item_or_inner_list
from http_sf.item import ser_item

from crypto.errors import VerificationError
from crypto.signing import PrivateKey, PublicKey, sha256, sha512

Scheme: TypeAlias = Literal["cavage", "rfc9421"]

DEFAULT_WINDOW = timedelta(hours=1)
ACTIVITY_JSON = "application/activity+json"
DEFAULT_ACCEPT = 'application/activity+json, application/ld+json; profile="https://www.w3.org/ns/activitystreams"'
RFC9421_LABEL = "sig1"

_CAVAGE_ALGORITHMS = frozenset({"rsa-sha256", "hs2019", "ed25519"})
_RFC9421_ALGORITHMS = frozenset({"rsa-v1_5-sha256", "ed25519"})
_DIGESTS: dict[str, Callable[[bytes], bytes]] = {"sha-256": sha256, "sha-512": sha512}
# Fields whose structured type http_sf does not know by name.
_DICTIONARY_FIELDS = frozenset({"content-digest", "repr-digest", "signature-input", "signature", "accept-signature"})
_DERIVED = frozenset({"@method", "@target-uri", "@authority", "@scheme", "@request-target", "@path", "@query"})


class SignatureError(Exception):
    """A request's HTTP signature is missing, malformed or not acceptable.

    ``reason`` is a short code (see the module docstring) that may be logged; ``status`` is the
    HTTP status to answer with (400 malformed header, 401 otherwise).
    """

    def __init__(self, message: str, *, reason: str, status: int = 401) -> None:
        super().__init__(message)
        self.reason = reason
        self.status = status


def _malformed(message: str) -> SignatureError:
    return SignatureError(message, reason="malformed", status=400)


@dataclass(frozen=True)
class RequestToVerify:
    """A received request as the signature sees it. Header names are case-insensitive."""

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes | None


@dataclass(frozen=True)
class VerifiedSignature:
    """The outcome of a verified signature: who signed (``key_id``), how and when.

    ``algorithm`` is the effective algorithm: ``rsa-sha256`` or ``ed25519`` (cavage, whatever the
    label), ``rsa-v1_5-sha256`` or ``ed25519`` (RFC 9421).
    """

    key_id: str
    scheme: Scheme
    algorithm: str
    created: datetime


@dataclass(frozen=True)
class PendingSignature:
    """A parsed signature whose structure, time window and digest have been checked.

    Not yet verified: call ``verify`` with the key named by ``key_id``. ``algorithm`` is the
    algorithm as declared (``hs2019``, ``rsa-sha256``, ``ed25519``, ``rsa-v1_5-sha256``, or
    ``""`` when an RFC 9421 signature leaves it to the key).
    """

    key_id: str
    scheme: Scheme
    algorithm: str
    created: datetime
    _signature: bytes = field(repr=False)
    # The signature base(s) to try, in order; two only for cavage with and without the query.
    _bases: tuple[bytes, ...] = field(repr=False)

    def verify(self, key: PublicKey) -> VerifiedSignature:
        """Check the signature with ``key``; return the verified signature or raise."""
        if self.algorithm in ("rsa-sha256", "rsa-v1_5-sha256") and key.kind != "rsa":
            raise SignatureError(f"algorithm {self.algorithm} needs an RSA key", reason="key_mismatch")
        if self.algorithm == "ed25519" and key.kind != "ed25519":
            raise SignatureError("algorithm ed25519 needs an Ed25519 key", reason="key_mismatch")
        for base in self._bases:
            try:
                key.verify(self._signature, base)
            except VerificationError:
                continue
            if self.scheme == "cavage":
                effective = "rsa-sha256" if key.kind == "rsa" else "ed25519"
            else:
                effective = "rsa-v1_5-sha256" if key.kind == "rsa" else "ed25519"
            return VerifiedSignature(key_id=self.key_id, scheme=self.scheme, algorithm=effective, created=self.created)
        raise SignatureError("signature did not verify", reason="bad_signature")


# --- request pieces -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Target:
    url: str  # without fragment
    scheme: str  # lower case
    authority: str  # lower case, default port removed, no userinfo
    path: str  # raw, "/" when empty
    query: str | None  # raw, None when the URL has no "?"

    @property
    def path_and_query(self) -> str:
        return self.path if self.query is None else f"{self.path}?{self.query}"


def _host_authority(host: str, scheme: str) -> str:
    """``host[:port]`` lower-cased, without userinfo and without the scheme's default port."""
    authority = host.rsplit("@", 1)[-1].lower()
    default_port = {"http": ":80", "https": ":443"}.get(scheme)
    if default_port and authority.endswith(default_port):
        authority = authority[: -len(default_port)]
    return authority


def _split_target(url: str) -> _Target:
    without_fragment = url.split("#", 1)[0]
    parts = urlsplit(without_fragment)
    if not parts.scheme or not parts.netloc:
        raise ValueError(f"request URL must be absolute, got {url!r}")
    scheme = parts.scheme.lower()
    authority = _host_authority(parts.netloc, scheme)
    query = parts.query if "?" in without_fragment else None
    return _Target(without_fragment, scheme, authority, parts.path or "/", query)


def _normalise_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Lower-case names; repeated fields (a multidict's items) joined with ", " (RFC 9110 §5.3)."""
    combined: dict[str, list[str]] = {}
    for name, value in headers.items():
        combined.setdefault(name.lower(), []).append(value.strip())
    return {name: ", ".join(values) for name, values in combined.items()}


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if value is None:
        raise SignatureError(f"covered header {name!r} is absent", reason="missing_header")
    if "\n" in value or "\r" in value:
        raise _malformed(f"header {name!r} contains a line break")
    return value


def _check_now(now: datetime) -> None:
    if now.tzinfo is None:
        raise ValueError("now must be a timezone-aware datetime")


def _check_window(created: datetime, now: datetime, window: timedelta, what: str) -> None:
    if created > now + window:
        raise SignatureError(f"{what} is more than {window} in the future", reason="future")
    if created < now - window:
        raise SignatureError(f"{what} is more than {window} old", reason="stale")


def _timestamp(value: int | float, what: str) -> datetime:
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        raise _malformed(f"{what} is not a usable timestamp") from None


def _http_date(value: str) -> datetime:
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        raise _malformed("Date header is not an HTTP date") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _b64decode(value: str, what: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise _malformed(f"{what} is not valid base64") from None


def _check_digests(found: dict[str, bytes], body: bytes | None, header: str) -> None:
    """Every known digest must match the received bytes; at least one must be known."""
    known = {name: value for name, value in found.items() if name in _DIGESTS}
    if not known:
        names = ", ".join(sorted(found)) or "none"
        raise SignatureError(
            f"{header}: no supported algorithm (sha-256, sha-512) among: {names}", reason="digest_unsupported"
        )
    for name, value in known.items():
        if not hmac.compare_digest(value, _DIGESTS[name](body or b"")):
            raise SignatureError(
                f"{header}: {name.upper()} of the body does not match the {header} header", reason="digest_mismatch"
            )


def _check_cavage_digest(value: str, body: bytes | None) -> None:
    found: dict[str, bytes] = {}
    for member in value.split(","):
        name, sep, encoded = member.strip().partition("=")
        if not sep or not name:
            raise _malformed("Digest header is not a list of algorithm=value pairs")
        found[name.strip().lower()] = _b64decode(encoded.strip(), "Digest value")
    _check_digests(found, body, "Digest")


# Fast paths for the structured fields every RFC 9421 request carries, in the shapes senders
# write them (RFC 8941 keys, byte sequences, plain strings without escapes, integers). A value
# they do not match exactly, or a duplicate key, goes to http_sf, which gives the same result or
# names the error; tests/test_inbound_speed_equivalence.py checks both ways agree.
_SF_KEY = r"[a-z*][a-z0-9_\-.*]*"
_SF_PLAIN_STRING = r'"[\x20\x21\x23-\x5b\x5d-\x7e]*"'
_SF_PLAIN_STRING_CONTENT = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]*")
_SF_BYTES_MEMBER = rf"{_SF_KEY}=:[A-Za-z0-9+/]*=*:"
_SF_BYTES_DICTIONARY = re.compile(rf"{_SF_BYTES_MEMBER}(?:[ \t]*,[ \t]*{_SF_BYTES_MEMBER})*")
_SF_BYTES_MEMBERS = re.compile(rf"({_SF_KEY})=:([A-Za-z0-9+/]*=*):")
_SF_SIMPLE_INNER_LIST = re.compile(
    rf"({_SF_KEY})=\(((?:{_SF_PLAIN_STRING}(?: {_SF_PLAIN_STRING})*)?)\)"
    rf"((?:;{_SF_KEY}=(?:-?[0-9]{{1,15}}|{_SF_PLAIN_STRING}))*)"
)
_SF_STRINGS = re.compile(r'"([^"]*)"')
_SF_PARAMS = re.compile(rf';({_SF_KEY})=(?:(-?[0-9]+)|"([^"]*)")')
_SF_MAX_INTEGER = 999_999_999_999_999
_SF_KEY_PATTERN = re.compile(_SF_KEY)


def _byte_sequence(content: str) -> bytes | None:
    """An RFC 8941 byte sequence's bytes as http_sf reads them (padding optional, at most two
    "=" after at least one character), or None to leave the verdict to http_sf."""
    unpadded = content.rstrip("=")
    padding = len(content) - len(unpadded)
    if padding > 2 or (padding and not unpadded):
        return None
    try:
        return base64.b64decode(unpadded + "=" * (-len(unpadded) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None


def _simple_dictionary(value: str) -> dict[str, Any] | None:
    """The common shapes: byte-sequence members (``Signature``, ``Content-Digest``) or one inner
    list of plain strings with integer and string parameters (``Signature-Input``)."""
    parsed: dict[str, Any] = {}
    if _SF_BYTES_DICTIONARY.fullmatch(value):
        for key, content in _SF_BYTES_MEMBERS.findall(value):
            decoded = _byte_sequence(content)
            if decoded is None or key in parsed:
                return None
            parsed[key] = (decoded, {})
        return parsed
    match = _SF_SIMPLE_INNER_LIST.fullmatch(value)
    if match is None:
        return None
    label, items, raw_params = match.groups()
    params: dict[str, Any] = {}
    for key, number, text in _SF_PARAMS.findall(raw_params):
        if key in params:
            return None
        params[key] = int(number) if number else text
    parsed[label] = ([(name, {}) for name in _SF_STRINGS.findall(items)], params)
    return parsed


def _parse_dictionary(value: str, what: str) -> dict[str, Any]:
    def refuse_duplicate(key: str, context: str) -> None:
        raise ValueError(f"duplicate key {key!r}")

    simple = _simple_dictionary(value)
    if simple is not None:
        return simple
    try:
        parsed = http_sf.parse(value.encode(), tltype="dictionary", on_duplicate_key=refuse_duplicate)
    except (ValueError, KeyError, UnicodeError):
        raise _malformed(f"{what} is not a valid structured-field dictionary") from None
    assert isinstance(parsed, dict)
    return parsed


def _is_plain_string(value: object) -> bool:
    return type(value) is str and _SF_PLAIN_STRING_CONTENT.fullmatch(value) is not None


def _ser_params(params: Mapping[str, Any]) -> str | None:
    """RFC 8941 parameters that are all plain strings or in-range integers; else None."""
    parts = []
    for key, value in params.items():
        if not (isinstance(key, str) and _SF_KEY_PATTERN.fullmatch(key)):
            return None
        if _is_plain_string(value):
            parts.append(f';{key}="{value}"')
        elif type(value) is int and -_SF_MAX_INTEGER <= value <= _SF_MAX_INTEGER:
            parts.append(f";{key}={value}")
        else:
            return None
    return "".join(parts)


def _ser_component(component: tuple[str, dict[str, Any]]) -> str:
    """``ser_item`` for a covered component; the usual parameterless name written directly."""
    name, params = component
    return f'"{name}"' if not params and _is_plain_string(name) else ser_item(component)


def _ser_signature_params(member: Any) -> str:
    """``ser_item_or_inner_list`` for a Signature-Input member (the ``@signature-params`` value);
    the usual inner list of plain names with plain parameters written directly."""
    if isinstance(member, tuple) and len(member) == 2 and type(member[0]) is list:
        items, params = member
        names = [f'"{name}"' for name, item_params in items if not item_params and _is_plain_string(name)]
        written_params = _ser_params(params) if isinstance(params, Mapping) else None
        if len(names) == len(items) and written_params is not None:
            return f"({' '.join(names)}){written_params}"
    return ser_item_or_inner_list(member)


def _check_content_digest(value: str, body: bytes | None) -> None:
    found: dict[str, bytes] = {}
    for name, (member, _params) in _parse_dictionary(value, "Content-Digest").items():
        if not isinstance(member, bytes):
            raise _malformed(f"Content-Digest member {name!r} is not a byte sequence")
        found[name] = member
    _check_digests(found, body, "Content-Digest")


# --- draft-cavage ---------------------------------------------------------------------------

_CAVAGE_PREFIX = re.compile(r"\s*signature\s+(?=[A-Za-z0-9_-]+\s*=)", re.IGNORECASE)
_PARAM_NAME = re.compile(r"[A-Za-z0-9_-]+")
_CAVAGE_NUMBER = re.compile(r"\d+(\.\d+)?")


# One well-formed parameter: name, "=", then a quoted string (backslash escapes any character) or
# a bare value up to the next comma; spaces and tabs around. Possessive quantifiers: a bare value
# can never be re-read as the tail of a quoted one that failed.
_CAVAGE_PARAM = re.compile(
    r'[ \t]*+([A-Za-z0-9_-]++)[ \t]*+=[ \t]*+(?:"([^"\\]*+(?:\\.[^"\\]*+)*+)"[ \t]*+|([^,"][^,]*+)?)',
    re.DOTALL,
)
_CAVAGE_ESCAPE = re.compile(r"\\(.)", re.DOTALL)


def _parse_cavage_params(value: str) -> dict[str, str]:
    """``keyId="...",algorithm="...",...`` into a dict; quoted strings may hold commas.

    One compiled pattern per parameter for well-formed headers; anything it does not take (a
    malformed or duplicated parameter) is read again by :func:`_scan_cavage_params`, the
    character-by-character reader, which gives the same result or raises the precise error.
    """
    prefix = _CAVAGE_PREFIX.match(value)
    text = value[prefix.end() :] if prefix else value
    params: dict[str, str] = {}
    pos, end = 0, len(text)
    while True:
        match = _CAVAGE_PARAM.match(text, pos)
        if match is None:
            return _scan_cavage_params(text)
        name, quoted, bare = match.groups()
        if name in params:
            return _scan_cavage_params(text)
        if quoted is not None:
            params[name] = _CAVAGE_ESCAPE.sub(r"\1", quoted) if "\\" in quoted else quoted
        else:
            params[name] = bare.strip() if bare is not None else ""
        pos = match.end()
        if pos == end:
            return params
        if text[pos] != ",":
            return _scan_cavage_params(text)
        pos += 1


def _scan_cavage_params(text: str) -> dict[str, str]:
    """The Signature parameters read one character at a time (after any ``Signature `` prefix):
    the reference reading, and the one that names what is wrong with a malformed header."""
    params: dict[str, str] = {}
    pos, end = 0, len(text)
    while True:
        while pos < end and text[pos] in " \t":
            pos += 1
        name_match = _PARAM_NAME.match(text, pos)
        if name_match is None:
            raise _malformed("Signature header is not a list of name=value parameters")
        name, pos = name_match.group(), name_match.end()
        while pos < end and text[pos] in " \t":
            pos += 1
        if pos >= end or text[pos] != "=":
            raise _malformed(f"Signature parameter {name!r} has no value")
        pos += 1
        while pos < end and text[pos] in " \t":
            pos += 1
        if pos < end and text[pos] == '"':
            pos += 1
            chars: list[str] = []
            while pos < end and text[pos] != '"':
                if text[pos] == "\\" and pos + 1 < end:
                    pos += 1
                chars.append(text[pos])
                pos += 1
            if pos >= end:
                raise _malformed(f"Signature parameter {name!r} has an unterminated quoted value")
            pos += 1
            item = "".join(chars)
        else:
            stop = text.find(",", pos)
            stop = end if stop == -1 else stop
            item, pos = text[pos:stop].strip(), stop
        if name in params:
            raise _malformed(f"Signature parameter {name!r} appears twice")
        params[name] = item
        while pos < end and text[pos] in " \t":
            pos += 1
        if pos >= end:
            return params
        if text[pos] != ",":
            raise _malformed("Signature parameters must be separated by commas")
        pos += 1


def _cavage_lines(
    covered: list[str], method: str, target: _Target, headers: Mapping[str, str], params: Mapping[str, str]
) -> tuple[list[str], list[str]]:
    """The signing string's lines with the query in ``(request-target)``, and without it."""
    with_query: list[str] = []
    without_query: list[str] = []
    for name in covered:
        if name == "(request-target)":
            with_query.append(f"(request-target): {method.lower()} {target.path_and_query}")
            without_query.append(f"(request-target): {method.lower()} {target.path}")
            continue
        if name in ("(created)", "(expires)"):
            line = f"{name}: {params[name[1:-1]]}"
        else:
            line = f"{name}: {_header(headers, name)}"
        with_query.append(line)
        without_query.append(line)
    return with_query, without_query


def _parse_cavage(headers: Mapping[str, str]) -> tuple[dict[str, str], str, list[str]]:
    """The Signature header's parameters, its (lower-cased) algorithm and covered headers."""
    params = _parse_cavage_params(headers["signature"])
    algorithm = params.get("algorithm", "hs2019").lower()
    covered = params.get("headers", "(created)" if algorithm == "hs2019" else "date").lower().split()
    if not covered:
        raise _malformed("Signature headers parameter is empty")
    for name in ("created", "expires"):
        if f"({name})" in covered and name not in params:
            raise _malformed(f"({name}) is covered but the {name} parameter is absent")
        if name in params and not _CAVAGE_NUMBER.fullmatch(params[name]):
            raise _malformed(f"Signature parameter {name} is not a timestamp")
    return params, algorithm, covered


def _read_cavage(
    request: RequestToVerify, headers: Mapping[str, str], target: _Target, now: datetime, window: timedelta
) -> PendingSignature:
    params, algorithm, covered = _parse_cavage(headers)
    key_id = params.get("keyId")
    if not key_id:
        raise _malformed("Signature header has no keyId")
    if "signature" not in params:
        raise _malformed("Signature header has no signature")
    signature = _b64decode(params["signature"], "signature")
    if algorithm not in _CAVAGE_ALGORITHMS:
        raise SignatureError(
            f"signature algorithm {algorithm!r} is not supported (rsa-sha256, hs2019, ed25519)",
            reason="unsupported_algorithm",
        )
    for pseudo in ("(created)", "(expires)"):
        if pseudo in covered and algorithm == "rsa-sha256":
            raise SignatureError(f"{pseudo} cannot be used with rsa-sha256", reason="invalid_pseudo_header")

    for required in ("(request-target)", "host"):
        if required not in covered:
            raise SignatureError(f"signature must cover {required}", reason="missing_component")
    if "date" not in covered and "(created)" not in covered:
        raise SignatureError("signature must cover date or (created)", reason="missing_component")
    if request.method.upper() == "POST" and "digest" not in covered:
        raise SignatureError("a POST signature must cover digest", reason="missing_component")
    if request.body and "digest" not in covered:
        raise SignatureError("request has a body but the signature does not cover digest", reason="digest_missing")

    host = _host_authority(_header(headers, "host"), target.scheme)
    if host != target.authority:
        # A signed request replayed to another server keeps its Host; it must be ours.
        raise SignatureError(
            f"signed Host {host!r} is not the request URL's authority {target.authority!r}", reason="host_mismatch"
        )

    times: list[datetime] = []
    if "(created)" in covered:
        times.append(_timestamp(float(params["created"]), "created"))
    if "date" in covered:
        times.append(_http_date(_header(headers, "date")))
    for moment in times:
        _check_window(moment, now, window, "signature creation time")
    if "expires" in params and _timestamp(float(params["expires"]), "expires") < now:
        raise SignatureError("signature has expired", reason="expired")

    if "digest" in covered:
        _check_cavage_digest(_header(headers, "digest"), request.body)

    with_query, without_query = _cavage_lines(covered, request.method, target, headers, params)
    bases = ["\n".join(with_query)]
    if without_query != with_query:
        bases.append("\n".join(without_query))
    return PendingSignature(
        key_id=key_id,
        scheme="cavage",
        algorithm=algorithm,
        created=times[0],
        _signature=signature,
        _bases=tuple(base.encode("utf-8", "surrogateescape") for base in bases),
    )


# --- RFC 9421 -------------------------------------------------------------------------------


def _query_param(target: _Target, name: object) -> str:
    """RFC 9421 §2.2.8: the single value of a named query parameter, re-encoded."""
    if not isinstance(name, str):
        raise _malformed('"@query-param" needs a string name parameter')
    values = [value for key, value in parse_qsl(target.query or "", keep_blank_values=True) if key == unquote(name)]
    if len(values) != 1:
        raise SignatureError(
            f"query parameter {name!r} must appear exactly once, found {len(values)}", reason="missing_component"
        )
    return quote(values[0], safe="*").replace("~", "%7E")


def _component_value(
    name: str, params: Mapping[str, Any], method: str, target: _Target, headers: Mapping[str, str]
) -> str:
    """The RFC 9421 §2 value of one covered component of a request."""
    if name.startswith("@"):
        if name == "@query-param" and set(params) == {"name"}:
            return _query_param(target, params["name"])
        if params:
            raise SignatureError(f"component {name} takes no parameters here", reason="unsupported_component")
        derived = {
            "@method": method,
            "@target-uri": target.url,
            "@authority": target.authority,
            "@scheme": target.scheme,
            "@request-target": target.path_and_query,
            "@path": target.path,
            "@query": "?" + (target.query or ""),
        }
        if name not in derived:
            raise SignatureError(f"component {name} is not supported in a request", reason="unsupported_component")
        return derived[name]
    if name != name.lower():
        raise _malformed(f"component {name!r} must be lower case")
    value = _header(headers, name)
    if not params:
        return value
    if set(params) - {"sf", "key"} or params.get("sf", True) is not True:
        raise SignatureError(f"component {name!r} has unsupported parameters", reason="unsupported_component")
    try:
        parsed = http_sf.parse(
            value.encode(), name=name, tltype="dictionary" if name in _DICTIONARY_FIELDS or "key" in params else None
        )
    except KeyError:
        raise SignatureError(f"{name!r} is not a known structured field", reason="unsupported_component") from None
    except (ValueError, UnicodeError):
        raise _malformed(f"header {name!r} is not a valid structured field") from None
    if "key" not in params:
        return http_sf.ser(parsed)
    assert isinstance(parsed, dict)
    member = parsed.get(str(params["key"]))
    if member is None:
        raise SignatureError(f"header {name!r} has no member {params['key']!r}", reason="missing_header")
    return ser_item_or_inner_list(member)


def _rfc9421_base(
    components: list[tuple[str, dict[str, Any]]],
    signature_params: str,
    method: str,
    target: _Target,
    headers: Mapping[str, str],
) -> bytes:
    lines = []
    for name, params in components:
        lines.append(f"{_ser_component((name, params))}: {_component_value(name, params, method, target, headers)}")
    lines.append(f'"@signature-params": {signature_params}')
    return "\n".join(lines).encode("utf-8", "surrogateescape")


def _covers_content_digest(components: list[tuple[str, dict[str, Any]]]) -> bool:
    """Whole field (plain or ``sf``) or the member of a known algorithm: each binds the body."""
    for name, params in components:
        if name != "content-digest":
            continue
        if "key" not in params or params["key"] in _DIGESTS:
            return True
    return False


def _parse_components(member: Any) -> tuple[list[tuple[str, dict[str, Any]]], dict[str, Any]]:
    if not (isinstance(member, tuple) and isinstance(member[0], list)):
        raise _malformed("Signature-Input member is not an inner list")
    items, params = member
    components: list[tuple[str, dict[str, Any]]] = []
    for name, item_params in items:
        if not isinstance(name, str):
            raise _malformed("covered components must be strings")
        if name == "@signature-params" or "req" in item_params:
            raise _malformed(f"component {name!r} cannot be covered by a request signature")
        if (name, item_params) in components:
            raise _malformed(f"component {name!r} is covered twice")
        components.append((name, dict(item_params)))
    return components, dict(params)


def _parse_rfc9421(headers: Mapping[str, str]) -> tuple[Any, list[tuple[str, dict[str, Any]]], dict[str, Any], bytes]:
    """The single signature's Signature-Input member, its components and parameters, and its bytes."""
    if "signature" not in headers:
        raise _malformed("Signature-Input is present but Signature is absent")
    inputs = _parse_dictionary(headers["signature-input"], "Signature-Input")
    signatures = _parse_dictionary(headers["signature"], "Signature")
    if not inputs:
        raise _malformed("Signature-Input is empty")
    if len(inputs) > 1:
        raise SignatureError(
            f"only one signature is accepted, found labels {', '.join(inputs)}", reason="multiple_signatures"
        )
    (label, member), *_ = inputs.items()
    signed = signatures.get(label)
    if signed is None or not isinstance(signed[0], bytes):
        raise _malformed(f"Signature has no byte-sequence member for label {label!r}")
    components, params = _parse_components(member)
    return member, components, params, signed[0]


def _read_rfc9421(
    request: RequestToVerify, headers: Mapping[str, str], target: _Target, now: datetime, window: timedelta
) -> PendingSignature:
    member, components, params, signature = _parse_rfc9421(headers)
    created, key_id, algorithm = params.get("created"), params.get("keyid"), params.get("alg", "")
    if not isinstance(created, int) or isinstance(created, bool):
        raise SignatureError("signature parameter created is missing or not an integer", reason="missing_parameter")
    if not isinstance(key_id, str) or not key_id:
        raise SignatureError("signature parameter keyid is missing or not a string", reason="missing_parameter")
    if not isinstance(algorithm, str) or (algorithm and algorithm not in _RFC9421_ALGORITHMS):
        raise SignatureError(
            f"signature algorithm {algorithm!r} is not supported (rsa-v1_5-sha256, ed25519)",
            reason="unsupported_algorithm",
        )

    names = {name for name, _params in components}
    for required in ("@method", "@target-uri"):
        if required not in names:
            raise SignatureError(f"signature must cover {required}", reason="missing_component")
    digest_covered = _covers_content_digest(components)
    if request.method.upper() == "POST" and not digest_covered:
        raise SignatureError("a POST signature must cover content-digest", reason="missing_component")
    if request.body and not digest_covered:
        raise SignatureError(
            "request has a body but the signature does not cover content-digest", reason="digest_missing"
        )

    created_at = _timestamp(created, "created")
    _check_window(created_at, now, window, "signature creation time")
    expires = params.get("expires")
    if expires is not None:
        if not isinstance(expires, int) or isinstance(expires, bool):
            raise _malformed("signature parameter expires is not an integer")
        if _timestamp(expires, "expires") < now:
            raise SignatureError("signature has expired", reason="expired")

    if digest_covered:
        _check_content_digest(_header(headers, "content-digest"), request.body)

    base = _rfc9421_base(components, _ser_signature_params(member), request.method, target, headers)
    return PendingSignature(
        key_id=key_id,
        scheme="rfc9421",
        algorithm=algorithm,
        created=created_at,
        _signature=signature,
        _bases=(base,),
    )


# --- public entry points --------------------------------------------------------------------


def read_signature(request: RequestToVerify, *, now: datetime, window: timedelta = DEFAULT_WINDOW) -> PendingSignature:
    """Parse and check the request's signature without a key; see the module docstring."""
    _check_now(now)
    headers = _normalise_headers(request.headers)
    target = _split_target(request.url)
    if "signature-input" in headers:
        return _read_rfc9421(request, headers, target, now, window)
    if "signature" in headers:
        return _read_cavage(request, headers, target, now, window)
    raise SignatureError("request is not signed (no Signature or Signature-Input header)", reason="unsigned")


def signature_base(request: RequestToVerify) -> bytes:
    """The bytes the request's signature was made over, rebuilt with no policy check at all.

    For diagnostics and test vectors only (draft-cavage: the query-string form of
    ``(request-target)``; RFC 9421: the single signature's §2.5 base). Never a substitute for
    ``read_signature``: algorithm, coverage, time and digest are not looked at.
    """
    headers = _normalise_headers(request.headers)
    target = _split_target(request.url)
    if "signature-input" in headers:
        member, components, _params, _signature = _parse_rfc9421(headers)
        return _rfc9421_base(components, _ser_signature_params(member), request.method, target, headers)
    if "signature" in headers:
        params, _algorithm, covered = _parse_cavage(headers)
        lines, _ = _cavage_lines(covered, request.method, target, headers, params)
        return "\n".join(lines).encode("utf-8", "surrogateescape")
    raise SignatureError("request is not signed (no Signature or Signature-Input header)", reason="unsigned")


def _outgoing(headers: Mapping[str, str] | None, replaced: set[str]) -> tuple[dict[str, str], dict[str, str]]:
    """The caller's headers minus those we set, and a lower-cased view for lookups."""
    given = dict(headers or {})
    lowered = {name.lower(): value for name, value in given.items()}
    kept = {name: value for name, value in given.items() if name.lower() not in replaced}
    return kept, lowered


def _check_key_id(key_id: str) -> None:
    if not key_id or any(char in key_id for char in '"\\\r\n'):
        raise ValueError("key_id must be non-empty and hold no quotes, backslashes or line breaks")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def sign_request(
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None,
    body: bytes | None,
    key: PrivateKey,
    key_id: str,
    now: datetime,
) -> dict[str, str]:
    """Sign a request with draft-cavage-12 as Mastodon does; return all headers to send.

    With a body (and on any POST): ``(request-target) host date digest content-type`` (no
    ``content-type`` on a bodiless POST), ``Digest: SHA-256=...`` and ``Content-Type:
    application/activity+json`` unless the caller gave one. Without: ``(request-target) host date
    accept`` with the ActivityPub ``Accept`` unless the caller gave one. ``algorithm`` is
    ``rsa-sha256`` for RSA keys, ``hs2019`` for Ed25519; never ``(created)``/``(expires)``
    (research §8.3 item 13). Other caller headers are passed through unsigned.
    """
    _check_now(now)
    _check_key_id(key_id)
    target = _split_target(url)
    sends_body = body is not None or method.upper() == "POST"
    replaced = {"host", "date", "signature", "digest", "content-type", "accept"}
    out, given = _outgoing(headers, replaced)
    out["Host"] = target.authority
    out["Date"] = format_datetime(now.astimezone(UTC), usegmt=True)
    covered = ["(request-target)", "host", "date"]
    if sends_body:
        out["Digest"] = "SHA-256=" + _b64(sha256(body or b""))
        covered.append("digest")
        if body is not None:
            out["Content-Type"] = given.get("content-type", ACTIVITY_JSON)
            covered.append("content-type")
    else:
        out["Accept"] = given.get("accept", DEFAULT_ACCEPT)
        covered.append("accept")
    lowered = _normalise_headers(out)
    lines, _ = _cavage_lines(covered, method, target, lowered, {})
    signature = key.sign("\n".join(lines).encode("utf-8", "surrogateescape"))
    algorithm = "rsa-sha256" if key.kind == "rsa" else "hs2019"
    out["Signature"] = (
        f'keyId="{key_id}",algorithm="{algorithm}",headers="{" ".join(covered)}",signature="{_b64(signature)}"'
    )
    return out


def sign_request_rfc9421(
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None,
    body: bytes | None,
    key: PrivateKey,
    key_id: str,
    now: datetime,
) -> dict[str, str]:
    """Sign a request with RFC 9421; return all headers to send.

    Covers ``@method @target-uri`` plus ``content-type content-digest`` with a body (and a
    ``content-digest`` of the empty body on a bodiless POST), or ``accept`` without one.
    Parameters ``created``, ``keyid``, ``alg`` (``rsa-v1_5-sha256`` or ``ed25519``); label
    ``sig1``; ``Content-Digest: sha-256=:...:`` (RFC 9530). ``Host`` and ``Date`` are sent too.
    """
    _check_now(now)
    _check_key_id(key_id)
    target = _split_target(url)
    sends_body = body is not None or method.upper() == "POST"
    replaced = {"host", "date", "signature", "signature-input", "content-digest", "content-type", "accept"}
    out, given = _outgoing(headers, replaced)
    out["Host"] = target.authority
    out["Date"] = format_datetime(now.astimezone(UTC), usegmt=True)
    names = ["@method", "@target-uri"]
    if sends_body:
        if body is not None:
            out["Content-Type"] = given.get("content-type", ACTIVITY_JSON)
            names.append("content-type")
        out["Content-Digest"] = f"sha-256=:{_b64(sha256(body or b''))}:"
        names.append("content-digest")
    else:
        out["Accept"] = given.get("accept", DEFAULT_ACCEPT)
        names.append("accept")
    components: list[tuple[str, dict[str, Any]]] = [(name, {}) for name in names]
    algorithm = "rsa-v1_5-sha256" if key.kind == "rsa" else "ed25519"
    member: Any = ([(name, {}) for name in names], {"created": int(now.timestamp()), "keyid": key_id, "alg": algorithm})
    signature_params = _ser_signature_params(member)
    base = _rfc9421_base(components, signature_params, method, target, _normalise_headers(out))
    out["Signature-Input"] = f"{RFC9421_LABEL}={signature_params}"
    out["Signature"] = f"{RFC9421_LABEL}=:{_b64(key.sign(base))}:"
    return out
