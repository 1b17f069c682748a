"""At-rest encryption of a client's key store (Olm account, sessions, pinned lists, messages).

How it works (research e2ee.md §7.7, §8(a)2): a 32-byte key is derived from the member's
passphrase with Argon2id (libsodium ``crypto_pwhash``, through pynacl) and a random 16-byte
salt; the store is sealed with that key in a pynacl ``SecretBox`` (XSalsa20-Poly1305, random
24-byte nonce). The file is::

    HEARTHSIDE-STORE-1\\n
    {"kdf":"argon2id13","memlimit":…,"opslimit":…,"salt":"<b64>"}\\n     (RFC 8785 JCS)
    nonce ‖ ciphertext ‖ MAC

The header is not under the MAC, but every value in it feeds the key derivation: changing any
of them derives another key, and the MAC then fails. Its bytes must be the canonical JSON, so
it has a single spelling. The passphrase is NFC-normalised first, so the same words typed on
two keyboards give the same key.

``StoreKey`` derives the key once and seals or opens many times with it (Argon2id is slow on
purpose; a command-line run pays it once).

What it refuses: an empty passphrase (``ValueError``); a file without the magic line, with a
malformed or non-canonical header, another KDF, or a ciphertext too short to hold nonce and MAC
(``StoreError``); Argon2 parameters above ``MAX_OPSLIMIT`` / ``MAX_MEMLIMIT``, or a memory size
that is not whole KiB (libsodium rounds it down, so two headers would name one key)
(``StoreError``, before any memory is allocated: a crafted file cannot make the client allocate
terabytes); and a ciphertext that does not authenticate: wrong passphrase or altered file
(``WrongPassphraseError``, one error for both, as neither can be told apart).
"""

from __future__ import annotations

import hmac
import json
import secrets
import unicodedata
from dataclasses import dataclass
from typing import Any, NoReturn

import nacl.exceptions
import nacl.pwhash.argon2id
import nacl.secret

from crypto.encoding import b64decode, b64encode, canonical_json
from crypto.errors import StoreError, WrongPassphraseError

MAGIC = b"HEARTHSIDE-STORE-1\n"
KDF_NAME = "argon2id13"
SALT_BYTES = nacl.pwhash.argon2id.SALTBYTES
KEY_BYTES = nacl.secret.SecretBox.KEY_SIZE
MAX_OPSLIMIT = 10
MAX_MEMLIMIT = 1024 * 1024 * 1024
_MAX_HEADER_BYTES = 256
_HEADER_FIELDS = frozenset({"kdf", "opslimit", "memlimit", "salt"})
_MIN_BOX_BYTES = nacl.secret.SecretBox.NONCE_SIZE + nacl.secret.SecretBox.MACBYTES


def _params_in_bounds(opslimit: object, memlimit: object) -> bool:
    return (
        type(opslimit) is int
        and type(memlimit) is int
        and nacl.pwhash.argon2id.OPSLIMIT_MIN <= opslimit <= MAX_OPSLIMIT
        and nacl.pwhash.argon2id.MEMLIMIT_MIN <= memlimit <= MAX_MEMLIMIT
        # libsodium counts memory in KiB: 8192 and 8193 would derive the same key, and the
        # header must have one spelling per key.
        and memlimit % 1024 == 0
    )


@dataclass(frozen=True, slots=True)
class KdfParams:
    """Argon2id cost: passes (``opslimit``) and memory in bytes (``memlimit``)."""

    opslimit: int
    memlimit: int

    def __post_init__(self) -> None:
        if not _params_in_bounds(self.opslimit, self.memlimit):
            raise ValueError(
                f"Argon2id parameters out of bounds (opslimit <= {MAX_OPSLIMIT}, "
                f"memlimit <= {MAX_MEMLIMIT} and a multiple of 1024)"
            )


DEFAULT_PARAMS = KdfParams(opslimit=3, memlimit=64 * 1024 * 1024)
TEST_PARAMS = KdfParams(nacl.pwhash.argon2id.OPSLIMIT_MIN, nacl.pwhash.argon2id.MEMLIMIT_MIN)


def _fail(message: str) -> NoReturn:
    raise StoreError(message)


def _passphrase_bytes(passphrase: str) -> bytes:
    if not isinstance(passphrase, str) or not passphrase:
        raise ValueError("the passphrase must not be empty")
    try:
        return unicodedata.normalize("NFC", passphrase).encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("the passphrase is not valid Unicode text") from None


def _header(salt: bytes, params: KdfParams) -> bytes:
    return canonical_json(
        {"kdf": KDF_NAME, "opslimit": params.opslimit, "memlimit": params.memlimit, "salt": b64encode(salt)}
    )


def _parse(blob: bytes) -> tuple[bytes, KdfParams, bytes]:
    """Split a store file into (salt, params, nonce‖ciphertext) without deriving anything."""
    if not isinstance(blob, bytes) or not blob.startswith(MAGIC):
        _fail("not a Hearthside key store (magic line missing)")
    end = blob.find(b"\n", len(MAGIC), len(MAGIC) + _MAX_HEADER_BYTES + 1)
    if end < 0:
        _fail("key store header is missing or too long")
    raw = blob[len(MAGIC) : end]
    try:
        header: Any = json.loads(raw.decode("utf-8"))
        canonical = canonical_json(header)
    except (ValueError, RecursionError):
        _fail("key store header is not JSON")
    if canonical != raw:
        _fail("key store header is not canonical JSON")
    if not isinstance(header, dict) or set(header) != _HEADER_FIELDS:
        _fail(f"key store header must have exactly the fields {sorted(_HEADER_FIELDS)}")
    if header["kdf"] != KDF_NAME:
        _fail(f"key store uses an unsupported KDF (expected {KDF_NAME})")
    if not _params_in_bounds(header["opslimit"], header["memlimit"]):
        _fail(
            f"key store Argon2id parameters out of bounds (opslimit <= {MAX_OPSLIMIT}, "
            f"memlimit <= {MAX_MEMLIMIT} and a multiple of 1024)"
        )
    salt_text = header["salt"]
    if not isinstance(salt_text, str):
        _fail("key store salt must be base64")
    try:
        salt = b64decode(salt_text, field="salt", size=SALT_BYTES)
    except ValueError as exc:
        raise StoreError(str(exc)) from None
    box = blob[end + 1 :]
    if len(box) < _MIN_BOX_BYTES:
        _fail("key store is truncated")
    return salt, KdfParams(opslimit=header["opslimit"], memlimit=header["memlimit"]), box


class StoreKey:
    """A key derived from a passphrase, with the salt and parameters that derived it.

    ``repr`` never shows the key.
    """

    __slots__ = ("_box", "params", "salt")
    salt: bytes
    params: KdfParams
    _box: nacl.secret.SecretBox

    def __init__(self, *, _key: bytes, salt: bytes, params: KdfParams) -> None:
        # Not for callers: use derive, create or open.
        self._box = nacl.secret.SecretBox(_key)
        self.salt = salt
        self.params = params

    @classmethod
    def derive(cls, passphrase: str, salt: bytes, params: KdfParams = DEFAULT_PARAMS) -> StoreKey:
        """Derive the key for ``passphrase`` with ``salt`` (16 bytes) and ``params`` (slow)."""
        secret = _passphrase_bytes(passphrase)
        if not isinstance(salt, bytes) or len(salt) != SALT_BYTES:
            raise ValueError(f"the salt is {SALT_BYTES} bytes")
        if not isinstance(params, KdfParams):
            raise TypeError("params must be KdfParams")
        key = nacl.pwhash.argon2id.kdf(KEY_BYTES, secret, salt, opslimit=params.opslimit, memlimit=params.memlimit)
        return cls(_key=key, salt=salt, params=params)

    @classmethod
    def create(cls, passphrase: str, params: KdfParams = DEFAULT_PARAMS) -> StoreKey:
        """The key of a new store: a fresh random salt."""
        return cls.derive(passphrase, secrets.token_bytes(SALT_BYTES), params)

    @classmethod
    def open(cls, passphrase: str, blob: bytes) -> tuple[StoreKey, bytes]:
        """Derive the key a store file names and decrypt it: (key, plaintext).

        ``StoreError`` for a malformed file, ``WrongPassphraseError`` if it does not decrypt.
        """
        salt, params, _ = _parse(blob)
        key = cls.derive(passphrase, salt, params)
        return key, key.unseal(blob)

    def seal(self, plaintext: bytes) -> bytes:
        """A store file holding ``plaintext`` under this key (fresh nonce each time)."""
        if not isinstance(plaintext, bytes):
            raise TypeError("plaintext must be bytes")
        return MAGIC + _header(self.salt, self.params) + b"\n" + bytes(self._box.encrypt(plaintext))

    def unseal(self, blob: bytes) -> bytes:
        """Decrypt a store file sealed under this key (same salt and parameters)."""
        salt, params, box = _parse(blob)
        if not hmac.compare_digest(salt, self.salt) or params != self.params:
            _fail("this store was sealed under another key (different salt or parameters)")
        try:
            return self._box.decrypt(box)
        except nacl.exceptions.CryptoError:
            raise WrongPassphraseError("wrong passphrase, or the key store was altered") from None

    def __repr__(self) -> str:
        return f"StoreKey(params={self.params!r})"


def seal_store(passphrase: str, plaintext: bytes, *, params: KdfParams = DEFAULT_PARAMS) -> bytes:
    """Encrypt ``plaintext`` under ``passphrase`` with a fresh salt (derives a key: slow)."""
    return StoreKey.create(passphrase, params).seal(plaintext)


def open_store(passphrase: str, blob: bytes) -> bytes:
    """Decrypt a store file; ``StoreError`` if malformed, ``WrongPassphraseError`` if it does
    not authenticate under ``passphrase``."""
    return StoreKey.open(passphrase, blob)[1]
