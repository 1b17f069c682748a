"""UUIDv7 change ids (RFC 9562 §5.7) for the moderation decision feed.

How it works. A feed's ``changeId`` is a UUIDv7 (research/moderation.md §2.6: FIRES
``change_id``; §6.b "Entry contents"): 48 bits of Unix time in milliseconds, the version nibble
``7``, 12 bits ``rand_a``, the variant bits ``10`` and 62 bits ``rand_b``. Because the time comes
first and the text form is fixed-width lower-case hex, comparing two canonical ids as strings
orders them as their times do, so the id doubles as the ``after=`` cursor of the changes feed.

:func:`uuid7` builds one id from a given time and given random bytes. :class:`Uuid7Generator`
keeps the ids of one feed strictly increasing even when many are made in the same millisecond,
or when the clock steps back: RFC 9562 §6.2 method 2 ("monotonic random"). When the time has not
moved past the last id's, the 74 random bits of the last id are incremented by a random amount
(1 to 2**32) instead of being drawn afresh, and the last id's timestamp is kept; if the random
field would overflow, the timestamp is advanced by one millisecond (§6.2 allows this). A
generator can be seeded with the feed's last stored id, so ids stay increasing across restarts.

What it refuses (``Uuid7Error``, a ``ValueError``): times outside 0..2**48-1, fewer than 10
random bytes, and, when parsing, anything that is not the 8-4-4-4-12 hex form, a version other
than 7 or a variant other than RFC 9562's. Parsing accepts upper-case hex (RFC 9562 §4: input is
case-insensitive); :func:`canonical_uuid7` gives the lower-case form that ids are compared in.

Time and randomness are parameters: nothing here reads a clock or an entropy source.
"""

from __future__ import annotations

import re
from typing import NamedTuple

__all__ = ["MAX_MS", "Uuid7Error", "Uuid7Fields", "Uuid7Generator", "canonical_uuid7", "parse_uuid7", "uuid7"]

MAX_MS = (1 << 48) - 1
"""The largest timestamp a UUIDv7 can hold (year 10889)."""

RAND_BYTES = 10
"""Random bytes a new id consumes: the first 74 of their 80 bits fill rand_a and rand_b."""

_RAND_BITS = 74
_RAND_MASK = (1 << _RAND_BITS) - 1
_UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


class Uuid7Error(ValueError):
    """A UUIDv7 could not be made or parsed; the message says why."""


class Uuid7Fields(NamedTuple):
    """The fields of a parsed UUIDv7: ``(ms, rand_a, rand_b)``."""

    ms: int
    rand_a: int
    rand_b: int


def _format(ms: int, rand74: int) -> str:
    rand_a = rand74 >> 62
    rand_b = rand74 & ((1 << 62) - 1)
    value = (ms << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b
    text = f"{value:032x}"
    return f"{text[0:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:32]}"


def _check_ms(now_ms: int) -> None:
    if isinstance(now_ms, bool) or not isinstance(now_ms, int) or not 0 <= now_ms <= MAX_MS:
        raise Uuid7Error(f"now_ms must be an integer in 0..{MAX_MS}")


def _rand74(rand: bytes) -> int:
    if not isinstance(rand, bytes | bytearray) or len(rand) < RAND_BYTES:
        raise Uuid7Error(f"rand must hold at least {RAND_BYTES} bytes")
    return int.from_bytes(rand[:RAND_BYTES], "big") >> (8 * RAND_BYTES - _RAND_BITS)


def uuid7(*, now_ms: int, rand: bytes) -> str:
    """A UUIDv7 in canonical lower-case text for Unix time ``now_ms`` and ``rand`` (≥ 10 bytes)."""
    _check_ms(now_ms)
    return _format(now_ms, _rand74(rand))


def parse_uuid7(text: str) -> Uuid7Fields:
    """Split a UUIDv7 into ``(ms, rand_a, rand_b)``; ``Uuid7Error`` for anything else."""
    if not isinstance(text, str) or not _UUID_RE.fullmatch(text):
        raise Uuid7Error("not a UUID in 8-4-4-4-12 hex form")
    value = int(text.replace("-", ""), 16)
    if (value >> 76) & 0xF != 7:
        raise Uuid7Error(f"UUID version is {(value >> 76) & 0xF}, expected 7")
    if (value >> 62) & 0b11 != 0b10:
        raise Uuid7Error("UUID variant is not the RFC 9562 variant")
    return Uuid7Fields(ms=value >> 80, rand_a=(value >> 64) & 0xFFF, rand_b=value & ((1 << 62) - 1))


def canonical_uuid7(text: str) -> str:
    """The lower-case form of a valid UUIDv7 (the form ids are stored and compared in)."""
    parse_uuid7(text)
    return text.lower()


class Uuid7Generator:
    """Makes strictly increasing UUIDv7s for one feed (RFC 9562 §6.2 method 2).

    Not a value object: it remembers the last id it made (or was seeded with). One generator per
    feed; callers that share one between tasks must serialise calls themselves.
    """

    __slots__ = ("_last_ms", "_last_rand")

    def __init__(self, *, last: str | None = None) -> None:
        """``last``: the newest id already published in the feed, so new ids sort after it."""
        if last is None:
            self._last_ms = -1
            self._last_rand = 0
        else:
            fields = parse_uuid7(last)
            self._last_ms = fields.ms
            self._last_rand = (fields.rand_a << 62) | fields.rand_b

    @property
    def last(self) -> str | None:
        """The last id made or seeded, or ``None``."""
        return None if self._last_ms < 0 else _format(self._last_ms, self._last_rand)

    def next(self, *, now_ms: int, rand: bytes) -> str:
        """The next id: greater than every earlier one, using ``now_ms`` unless the clock lags."""
        _check_ms(now_ms)
        fresh = _rand74(rand)
        if now_ms > self._last_ms:
            ms, value = now_ms, fresh
        else:
            # Same millisecond or a clock that stepped back: keep the last timestamp and step the
            # random field forward by 1..2**32, unpredictable but never backwards.
            ms, value = self._last_ms, self._last_rand + 1 + (fresh & 0xFFFFFFFF)
            if value > _RAND_MASK:
                ms, value = self._last_ms + 1, fresh >> 1  # room to count on after the carry
                if ms > MAX_MS:
                    raise Uuid7Error("UUIDv7 timestamp space exhausted")
        self._last_ms, self._last_rand = ms, value
        return _format(ms, value)
