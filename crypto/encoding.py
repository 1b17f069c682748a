"""Wire encodings of the end-to-end encrypted messages (docs/e2ee.md, "Encodings").

How it works:

- **base64**: we write the standard alphabet without padding (vodozemac's encoding) and read
  standard base64 with or without padding. The decoder refuses anything else: whitespace,
  the URL-safe alphabet, wrong padding, and non-canonical trailing bits (``QQ`` and ``QR`` would
  otherwise both decode to ``A``), so a byte string has one unpadded and at most one padded
  spelling, and bytes hidden in the slack bits cannot ride along. ``max_size`` is checked on
  the text's length, before any decoding work.
- **times**: RFC 3339, UTC, ``Z`` suffix, second precision (``2026-11-21T10:00:00Z``), and
  nothing else (no offsets, no fractions, no lower-case ``t``/``z``).
- **canonical JSON**: RFC 8785 (JCS) via ``rfc8785``.

Every refusal is a ``ValueError`` whose message names the field; the protocol modules turn it
into their own error class.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, datetime
from typing import Any

import rfc8785

_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
# Exactly the canonical spellings of 32 bytes (keys) and 64 bytes (signatures): 42 characters
# then one whose two low bits are zero (the slack after 256 bits) and at most one "=" of padding;
# 85 then one whose four low bits are zero (after 512 bits) and no or both "==". Public (and in
# the syntax JSON Schema shares with Python) so the OpenAPI document describes the same spellings.
KEY_BASE64 = r"[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=?"
SIGNATURE_BASE64 = r"[A-Za-z0-9+/]{85}[AQgw](?:==)?"
_FIXED_SIZES = {32: re.compile(KEY_BASE64), 64: re.compile(SIGNATURE_BASE64)}
_UTC_TIME = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})Z")


def b64encode(data: bytes) -> str:
    """``data`` as standard base64 without padding."""
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _encoded_length_limit(max_size: int) -> int:
    return 4 * ((max_size + 2) // 3)


def b64decode(text: str, *, field: str, size: int | None = None, max_size: int | None = None) -> bytes:
    """Decode strict standard base64 (padded or not); ``ValueError`` naming ``field`` otherwise.

    ``size`` is the exact decoded length required; ``max_size`` bounds it and is checked on the
    text before decoding.
    """
    if not isinstance(text, str):
        raise ValueError(f"{field}: expected a base64 string")
    fixed = _FIXED_SIZES.get(size) if size is not None and max_size is None else None
    if fixed is not None and fixed.fullmatch(text) is not None:
        # The common case, keys and signatures: one pattern says all the checks below would pass.
        return binascii.a2b_base64(text + "=" * (-len(text) % 4))
    limit = max_size if max_size is not None else size
    if limit is not None and len(text) > _encoded_length_limit(limit):
        raise ValueError(f"{field}: longer than {limit} bytes")
    if not text.isascii() or _BASE64.fullmatch(text) is None:
        raise ValueError(f"{field}: not standard base64")
    padded = "=" in text
    if (padded and len(text) % 4 != 0) or (not padded and len(text) % 4 == 1):
        raise ValueError(f"{field}: not standard base64")
    try:
        data = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{field}: not standard base64") from None
    canonical = base64.b64encode(data).decode("ascii")
    if text != (canonical if padded else canonical.rstrip("=")):
        raise ValueError(f"{field}: not canonical base64")
    if size is not None and len(data) != size:
        raise ValueError(f"{field}: expected {size} bytes, got {len(data)}")
    if max_size is not None and len(data) > max_size:
        raise ValueError(f"{field}: longer than {max_size} bytes")
    return data


def utc_time(moment: datetime) -> str:
    """``moment`` (timezone-aware) as ``YYYY-MM-DDTHH:MM:SSZ`` in UTC; fractions are dropped."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("time must be timezone-aware")
    m = moment.astimezone(UTC)
    return f"{m.year:04d}-{m.month:02d}-{m.day:02d}T{m.hour:02d}:{m.minute:02d}:{m.second:02d}Z"


def utc_second(moment: datetime) -> datetime:
    """``moment`` in UTC truncated to the second: the value ``parse_utc_time(utc_time(moment))``."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("time must be timezone-aware")
    return moment.astimezone(UTC).replace(microsecond=0)


def parse_utc_time(text: str, *, field: str) -> datetime:
    """Parse exactly ``YYYY-MM-DDTHH:MM:SSZ`` into an aware UTC ``datetime``."""
    match = _UTC_TIME.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"{field}: expected a UTC time like 2026-11-21T10:00:00Z")
    year, month, day, hour, minute, second = (int(part) for part in match.groups())
    try:
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:
        raise ValueError(f"{field}: not a valid date and time") from None


def canonical_json(value: Any) -> bytes:
    """RFC 8785 canonical JSON of ``value``; ``ValueError`` if it has no JCS form."""
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, TypeError, RecursionError) as exc:
        raise ValueError(f"value cannot be canonicalized with JCS (RFC 8785): {exc}") from None
