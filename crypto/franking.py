"""Message franking: the sender's commitment and the servers' stamps (docs/e2ee.md "Franking").

How it works (research e2ee.md §7.2, §8(c); Facebook Messenger Secret Conversations, MIMI):

- The sender's client draws a fresh 32-byte franking key ``k_f`` per message and commits to
  the franked message bytes with ``tag = HMAC-SHA256(k_f, message)``. ``k_f`` and the tag
  travel inside the ciphertext, the tag also outside it.
- Each server that handles the message binds the tag to what it saw with
  ``HMAC-SHA256(K, tag, sender actor, recipient actor, object id, t)``. Every input is
  preceded by its length (4 bytes, big-endian) so no two input tuples give the same bytes.
  A stamp is ``"<key id>.<base64 hmac>"``; servers keep old keys to verify old stamps.
- A report reveals the message and ``k_f``: the recipient's server recomputes the tag and
  checks its own stamp, so it learns that this sender really sent exactly this message.
  Stamps are HMACs, so only the stamping server can check them (deniable to anyone else).

What it refuses (``FrankingError``): a tag that does not recompute, a franking key that is not
32 bytes, a malformed stamp, a stamp under an unknown key id, and a stamp that does not match
(compared in constant time).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from crypto.encoding import b64decode, b64encode, utc_time
from crypto.errors import FrankingError

FRANKING_KEY_BYTES = 32
TAG_BYTES = 32
STAMP_KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
MIN_STAMP_SECRET_BYTES = 32
_MAX_STAMP_CHARS = 64 + 1 + 44


# RFC 2104 for a key shorter than SHA-256's 64-byte block: the key, zero-filled to the block,
# XORed with 0x36 (inner) and 0x5c (outer). A 32-byte key's XOR is a byte translation, and the
# zero half of the block is the pad byte itself.
_INNER = bytes(b ^ 0x36 for b in range(256))
_OUTER = bytes(b ^ 0x5C for b in range(256))
_INNER_FILL = bytes([0x36]) * (64 - FRANKING_KEY_BYTES)
_OUTER_FILL = bytes([0x5C]) * (64 - FRANKING_KEY_BYTES)
_sha256 = hashlib.sha256


def new_franking_key() -> bytes:
    """A fresh random 32-byte franking key (one per message)."""
    return os.urandom(FRANKING_KEY_BYTES)


def franking_tag(key: bytes, message: bytes) -> bytes:
    """``HMAC-SHA256(key, message)``: the sender's commitment to ``message``.

    Computed from ``hashlib.sha256`` by RFC 2104's definition rather than with ``hmac.digest``:
    the same bytes (tests/test_franking.py compares the two on random keys and messages), a
    third less time, because OpenSSL's one-shot HMAC sets up a new context per call and this
    runs twice for every message (bench/e2ee_bench.py)."""
    if not isinstance(key, bytes) or len(key) != FRANKING_KEY_BYTES:
        raise ValueError("a franking key is 32 bytes")
    inner = _sha256(key.translate(_INNER) + _INNER_FILL)
    inner.update(message)
    return _sha256(key.translate(_OUTER) + _OUTER_FILL + inner.digest()).digest()


def check_franking_tag(key: bytes, message: bytes, tag: bytes) -> None:
    """Check that ``tag`` commits to ``message`` under ``key``; ``FrankingError`` otherwise."""
    if not isinstance(key, bytes) or len(key) != FRANKING_KEY_BYTES:
        raise FrankingError("the franking key is not 32 bytes")
    if not isinstance(tag, bytes) or not hmac.compare_digest(franking_tag(key, message), tag):
        raise FrankingError("the franking tag does not match the message")


@dataclass(frozen=True, slots=True)
class StampKey:
    """A server's stamping key and its id (the id is public, written in every stamp)."""

    key_id: str
    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.key_id, str) or STAMP_KEY_ID.fullmatch(self.key_id) is None:
            raise ValueError(f"a stamp key id must match {STAMP_KEY_ID.pattern}")
        if not isinstance(self.secret, bytes) or len(self.secret) < MIN_STAMP_SECRET_BYTES:
            raise ValueError(f"a stamp key is at least {MIN_STAMP_SECRET_BYTES} bytes")

    @classmethod
    def generate(cls, key_id: str) -> StampKey:
        """A new random 32-byte stamping key named ``key_id``."""
        return cls(key_id=key_id, secret=secrets.token_bytes(32))


def _stamp_input(*, tag: bytes, sender: str, recipient: str, object_id: str, at: datetime) -> bytes:
    parts = [tag, sender.encode("utf-8"), recipient.encode("utf-8"), object_id.encode("utf-8")]
    parts.append(utc_time(at).encode("ascii"))
    return b"".join(len(part).to_bytes(4, "big") + part for part in parts)


def stamp(key: StampKey, *, tag: bytes, sender: str, recipient: str, object_id: str, at: datetime) -> str:
    """The server stamp ``"<key id>.<base64 HMAC>"`` binding ``tag`` to sender, recipient,
    object id and time ``at`` (second precision)."""
    if not isinstance(tag, bytes) or len(tag) != TAG_BYTES:
        raise ValueError("a franking tag is 32 bytes")
    mac = hmac.digest(
        key.secret,
        _stamp_input(tag=tag, sender=sender, recipient=recipient, object_id=object_id, at=at),
        hashlib.sha256,
    )
    return f"{key.key_id}.{b64encode(mac)}"


def verify_stamp(
    keys: Mapping[str, bytes],
    stamp: str,
    *,
    tag: bytes,
    sender: str,
    recipient: str,
    object_id: str,
    at: datetime,
) -> None:
    """Check a stamp made by one of ``keys`` (key id -> secret, current and retired ones).

    ``FrankingError`` for a malformed stamp, an unknown key id, or a stamp that does not bind
    exactly this tag, sender, recipient, object id and time.
    """
    if not isinstance(stamp, str) or len(stamp) > _MAX_STAMP_CHARS or stamp.count(".") != 1:
        raise FrankingError("malformed franking stamp")
    key_id, _, encoded = stamp.partition(".")
    if STAMP_KEY_ID.fullmatch(key_id) is None:
        raise FrankingError("malformed franking stamp")
    try:
        mac = b64decode(encoded, field="stamp", size=32)
    except ValueError:
        raise FrankingError("malformed franking stamp") from None
    secret = keys.get(key_id)
    if secret is None:
        raise FrankingError("franking stamp made with an unknown key")
    if not isinstance(tag, bytes) or len(tag) != TAG_BYTES:
        raise FrankingError("a franking tag is 32 bytes")
    try:
        expected = hmac.digest(
            secret,
            _stamp_input(tag=tag, sender=sender, recipient=recipient, object_id=object_id, at=at),
            hashlib.sha256,
        )
    except ValueError:  # a naive time or text that is not UTF-8 (lone surrogates)
        raise FrankingError("franking stamp inputs are malformed") from None
    if not hmac.compare_digest(expected, mac):
        raise FrankingError("franking stamp does not match")
