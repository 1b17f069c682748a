"""Safety numbers: what two members compare (in person or over a call) to verify each other.

How it works (research/e2ee.md §4, Signal's numeric fingerprints, libsignal
``rust/protocol/src/fingerprint.rs``): each member's half is a fingerprint of their **master
key** (the Ed25519 key that signs their device list, docs/e2ee.md) and their actor id:

    h = version (0x0000) ‖ key ‖ actor (UTF-8)
    repeat 5200 times: h = SHA-512(h ‖ key)

libsignal uses the same construction and 5200 iterations ("5200 > 112 bits" of work for an
attacker who must find a second key whose half matches). The first 30 bytes of ``h`` give six
5-byte big-endian chunks, each taken mod 100000 as five digits: 30 digits per member. The two
halves are sorted before they are joined, so both members see the same 60 digits, written as
12 groups of five.

What it guarantees: the number depends on both master keys and both actor ids, so a server
that substitutes a master key (for either side) changes it. Because the master key signs the
device list, one comparison covers every device the member adds later.

What it refuses: a master key that is not 32 bytes of standard base64 (``KeyFormatError``), and
an empty actor id (``ValueError``).

``short_fingerprint`` is for device and key listings, not for verification: the first 128 bits
of SHA-256 of a key as 8 groups of 4 hex digits.
"""

from __future__ import annotations

import hashlib

from crypto.encoding import b64decode
from crypto.errors import KeyFormatError

FINGERPRINT_VERSION = b"\x00\x00"
ITERATIONS = 5200
_KEY_SIZE = 32
_HALF_BYTES = 30
_CHUNK_BYTES = 5


def _master_key(value: str) -> bytes:
    try:
        return b64decode(value, field="master key", size=_KEY_SIZE)
    except ValueError as exc:
        raise KeyFormatError(str(exc)) from None


def _actor(value: str) -> bytes:
    if not isinstance(value, str) or not value:
        raise ValueError("actor id must be a non-empty string")
    return value.encode("utf-8")


def _fingerprint(key: bytes, identifier: bytes, iterations: int = ITERATIONS) -> bytes:
    """libsignal's iterated SHA-512 fingerprint of one party (64 bytes)."""
    digest = FINGERPRINT_VERSION + key + identifier
    for _ in range(iterations):
        digest = hashlib.sha512(digest + key).digest()
    return digest


def _digits(fingerprint: bytes) -> str:
    """30 decimal digits from the first 30 bytes: six 5-byte chunks, each mod 100000."""
    return "".join(
        f"{int.from_bytes(fingerprint[at : at + _CHUNK_BYTES], 'big') % 100_000:05d}"
        for at in range(0, _HALF_BYTES, _CHUNK_BYTES)
    )


def _display(local_half: str, remote_half: str) -> str:
    joined = "".join(sorted((local_half, remote_half)))
    return " ".join(joined[at : at + 5] for at in range(0, len(joined), 5))


def safety_number(local_actor: str, local_master_key: str, remote_actor: str, remote_master_key: str) -> str:
    """The 60-digit safety number of two members, identical from both sides
    (``"12345 67890 …"``, 12 groups of five digits)."""
    local = _digits(_fingerprint(_master_key(local_master_key), _actor(local_actor)))
    remote = _digits(_fingerprint(_master_key(remote_master_key), _actor(remote_actor)))
    return _display(local, remote)


def short_fingerprint(master_key: str) -> str:
    """A short label of a key for listings: 8 groups of 4 hex digits of its SHA-256."""
    digest = hashlib.sha256(_master_key(master_key)).hexdigest()
    return " ".join(digest[at : at + 4] for at in range(0, 32, 4))
