"""Encrypted attachments: a file encrypted on the sender's device, stored by servers as opaque bytes.

Design note
-----------
A file sent with an encrypted message is encrypted by the sending device with a fresh random
key, uploaded as ciphertext to the sender's own server, and named in the (end-to-end
encrypted, franked) message by its URL, key, digest, size, name and media type, as Signal and
Matrix do (research/e2ee.md §2: the message carries the capability; servers never hold a key).

* **Cipher.** XSalsa20-Poly1305 (libsodium's ``crypto_secretbox`` through pynacl) under a
  32-byte key used for this one file; the 24-byte random nonce is prepended. A key is never
  reused, so the nonce needs no counter.
* **Digest.** SHA-256 of the whole ciphertext travels in the message: the recipient checks it
  before decrypting, so a server that swaps or truncates the stored bytes is caught even
  before the MAC (and a digest mismatch names the server, not the sender, as the culprit).
* **Padding.** The plaintext is framed as an 8-byte big-endian length, the file, then zeros up
  to the Padmé length of the frame (Nikitin et al., "Reducing Metadata Leakage from Encrypted
  Files and Communication with PURBs", PETS 2019, §4): at most about 12 % larger, and a stored
  size reveals only O(log log n) bits of the file's length, so servers cannot tell files of
  similar sizes apart. Opening checks the length and that every padding byte is zero.

Everything here is pure (no I/O); errors are :class:`~crypto.errors.CryptoError` subclasses
with a message naming what is wrong.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Mapping
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import nacl.exceptions
import nacl.secret
import nacl.utils

from crypto.encoding import b64decode
from crypto.errors import CryptoError

KEY_BYTES = nacl.secret.SecretBox.KEY_SIZE  # 32
DIGEST_BYTES = 32
OVERHEAD = nacl.secret.SecretBox.NONCE_SIZE + nacl.secret.SecretBox.MACBYTES  # 40: nonce and tag
_LENGTH = struct.Struct(">Q")


MAX_PER_MESSAGE = 10
UPLOAD_PATH = "/e2ee/attachments/"  # where a Hearthside server keeps them (server/api/e2ee_ap.py)


class AttachmentError(CryptoError):
    """An attachment that cannot be opened (wrong digest, key, framing) or made."""


class SealedAttachment(NamedTuple):
    """What an upload sends (``ciphertext``) and what the message carries (key, digest, size)."""

    ciphertext: bytes
    key: bytes
    digest: bytes
    size: int  # of the file, before padding


def padme(length: int) -> int:
    """The Padmé length for ``length`` bytes (PURBs §4): the length rounded up so that only
    its top ``floor(log2(E)) + 1`` bits, E = floor(log2(length)), can be non-zero."""
    if length < 0:
        raise ValueError("length must not be negative")
    if length < 2:
        return length
    exponent = length.bit_length() - 1
    significant = exponent.bit_length()
    mask = (1 << (exponent - significant)) - 1
    return (length + mask) & ~mask


def sealed_size(size: int) -> int:
    """The ciphertext size a file of ``size`` bytes becomes (frame, Padmé, nonce and tag)."""
    return padme(_LENGTH.size + size) + OVERHEAD


def seal(data: bytes) -> SealedAttachment:
    """Encrypt ``data`` under a fresh key (padded as the module note says)."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise AttachmentError("attachment: must be bytes")
    data = bytes(data)
    frame = _LENGTH.pack(len(data)) + data
    padded = frame + bytes(padme(len(frame)) - len(frame))
    key = nacl.utils.random(KEY_BYTES)
    ciphertext = bytes(nacl.secret.SecretBox(key).encrypt(padded))
    return SealedAttachment(ciphertext, key, hashlib.sha256(ciphertext).digest(), len(data))


def open_sealed(ciphertext: bytes, *, key: bytes, digest: bytes, size: int) -> bytes:
    """The file, after checking the digest, the MAC, the framing, the padding and that its
    length is the ``size`` the message promised."""
    if not isinstance(key, bytes) or len(key) != KEY_BYTES:
        raise AttachmentError(f"attachment key: must be {KEY_BYTES} bytes")
    if not isinstance(digest, bytes) or len(digest) != DIGEST_BYTES:
        raise AttachmentError(f"attachment digest: must be {DIGEST_BYTES} bytes")
    if not hmac.compare_digest(hashlib.sha256(ciphertext).digest(), digest):
        raise AttachmentError("attachment: the stored bytes are not the ones sent (digest mismatch)")
    try:
        padded = nacl.secret.SecretBox(key).decrypt(ciphertext)
    except (nacl.exceptions.CryptoError, ValueError, TypeError):
        raise AttachmentError("attachment: does not decrypt under the message's key") from None
    if len(padded) < _LENGTH.size:
        raise AttachmentError("attachment: malformed frame")
    (length,) = _LENGTH.unpack_from(padded)
    end = _LENGTH.size + length
    if length != size or end > len(padded) or padme(end) != len(padded):
        raise AttachmentError("attachment: its length is not the one the message gave")
    if padded.count(0, end) != len(padded) - end:
        raise AttachmentError("attachment: padding is not all zeros")
    return bytes(padded[_LENGTH.size : end])


def safe_name(name: str) -> str:
    """A file name safe to show and to write: no directories, control characters or leading
    dots; at most 200 characters; "attachment" when nothing is left."""
    last = name.replace("\\", "/").rsplit("/", 1)[-1]
    kept = "".join(c for c in last if c.isprintable() and c not in '<>:"|?*').strip().lstrip(".")[:200]
    return kept or "attachment"


def upload_host(url: object) -> str | None:
    """The host (and port) of an attachment URL, ``http(s)://host/e2ee/attachments/TOKEN`` and
    nothing more (no user, query, fragment, or token characters but letters, digits, - and _);
    None for anything else. The one rule for what a reader's server may be asked to fetch."""
    if not isinstance(url, str) or not url or len(url) > 2048:
        return None
    parts = urlsplit(url)
    token = parts.path.removeprefix(UPLOAD_PATH)
    if (
        parts.scheme not in ("https", "http")
        or not parts.hostname
        or parts.username is not None
        or parts.query
        or parts.fragment
        or not parts.path.startswith(UPLOAD_PATH)
        or not token
        or not all(c.isalnum() or c in "-_" for c in token)
    ):
        return None
    return parts.netloc.lower()


def descriptors(message: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The attachments a message (``PlainMessage.to_json()``) names that may be followed:
    well-formed (URL, base64 key and digest, size, name, media type), at most
    ``MAX_PER_MESSAGE``, and stored on the sender's own server (where the sender's device
    uploads them). Others are left out, never fetched: a message must not make its reader's
    server fetch from anywhere its sender chooses."""
    body = message.get("body")
    raw = body.get("attachments") if isinstance(body, Mapping) else None
    if not isinstance(raw, list):
        return []
    sender_host = urlsplit(str(message.get("from", ""))).netloc.lower()
    kept = []
    for entry in raw[:MAX_PER_MESSAGE]:
        if not isinstance(entry, Mapping):
            continue
        name, size = entry.get("name"), entry.get("size")
        if (
            not sender_host
            or upload_host(entry.get("url")) != sender_host
            or not isinstance(name, str)
            or not isinstance(size, int)
            or isinstance(size, bool)
            or size < 0
            or not all(isinstance(entry.get(k), str) for k in ("key", "digest", "media_type"))
        ):
            continue
        kept.append({**entry, "name": safe_name(name), "media_type": str(entry["media_type"])[:255]})
    return kept


def open_described(ciphertext: bytes, descriptor: Mapping[str, Any]) -> bytes:
    """:func:`open_sealed` with the key, digest and size a message's descriptor gives (base64
    text for the first two), refusing a malformed one the same way."""
    try:
        key = b64decode(descriptor["key"], field="key", size=KEY_BYTES)
        digest = b64decode(descriptor["digest"], field="digest", size=DIGEST_BYTES)
    except (KeyError, TypeError, ValueError) as exc:
        raise AttachmentError(f"attachment: {exc}") from None
    return open_sealed(ciphertext, key=key, digest=digest, size=descriptor.get("size", -1))
