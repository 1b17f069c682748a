"""Signing keys for federation: the one module that touches the primitives behind them.

Two key types exist, and each has exactly one signature scheme, so no caller can pick a
weaker or different one by naming it:

- **RSA** (actor ``publicKey``, draft-cavage ``rsa-sha256``/``hs2019`` and RFC 9421
  ``rsa-v1_5-sha256``): RSASSA-PKCS1-v1_5 with SHA-256. Variants such as ``rsa-sha512`` or
  RSA-PSS are refused by the protocol layer (``federation/httpsig.py``) before a key is used;
  this module cannot be asked for them. Keys below 2048 bits are refused (research/federation.md
  §3.6: we send and expect RSA-2048); keys above 8192 bits are refused to bound the cost of a
  verification an attacker can trigger.
- **Ed25519** (FEP-521a ``assertionMethod`` Multikey, FEP-8b32 proofs, RFC 9421 ``ed25519``):
  pure Ed25519 (RFC 8032).

``PublicKey.verify`` returns ``None`` or raises ``VerificationError``: there is no boolean to
forget to check. Parsing problems raise ``KeyFormatError``.
"""

from __future__ import annotations

import hashlib
from typing import Literal, TypeAlias

import base58
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from crypto.errors import KeyFormatError, VerificationError

KeyKind: TypeAlias = Literal["rsa", "ed25519"]

RSA_MIN_BITS = 2048
RSA_MAX_BITS = 8192

# Multicodec varint prefixes used by FEP-521a Multikey values (multicodec table:
# ed25519-pub 0xed, rsa-pub 0x1205 with a PKCS#1 RSAPublicKey DER body).
_ED25519_PUB_PREFIX = b"\xed\x01"
_RSA_PUB_PREFIX = b"\x85\x24"

_RsaOrEdPublic: TypeAlias = rsa.RSAPublicKey | ed25519.Ed25519PublicKey
_RsaOrEdPrivate: TypeAlias = rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


def sha256(data: bytes) -> bytes:
    """The SHA-256 digest of ``data`` (for Digest / Content-Digest and FEP-8b32 hashing)."""
    return hashlib.sha256(data).digest()


def sha512(data: bytes) -> bytes:
    """The SHA-512 digest of ``data`` (an alternative RFC 3230 / RFC 9530 body digest)."""
    return hashlib.sha512(data).digest()


def _check_rsa_size(bits: int) -> None:
    if bits < RSA_MIN_BITS:
        raise KeyFormatError(f"RSA key of {bits} bits is too small (minimum {RSA_MIN_BITS})")
    if bits > RSA_MAX_BITS:
        raise KeyFormatError(f"RSA key of {bits} bits is too large (maximum {RSA_MAX_BITS})")


def _wrap_public(key: object) -> PublicKey:
    if isinstance(key, rsa.RSAPublicKey):
        _check_rsa_size(key.key_size)
        return PublicKey(_key=key, kind="rsa")
    if isinstance(key, ed25519.Ed25519PublicKey):
        return PublicKey(_key=key, kind="ed25519")
    raise KeyFormatError(f"unsupported public key type {type(key).__name__} (only RSA and Ed25519)")


class PublicKey:
    """An RSA or Ed25519 public key. Immutable; equal when the keys are equal."""

    __slots__ = ("_key", "kind")
    kind: KeyKind
    _key: _RsaOrEdPublic

    def __init__(self, *, _key: _RsaOrEdPublic, kind: KeyKind) -> None:
        # Not for callers: use from_pem / from_multibase, which check type and size.
        object.__setattr__(self, "_key", _key)
        object.__setattr__(self, "kind", kind)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("PublicKey is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("PublicKey is immutable")

    def _spki_der(self) -> bytes:
        return self._key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PublicKey) and self._spki_der() == other._spki_der()

    def __hash__(self) -> int:
        return hash(self._spki_der())

    def __repr__(self) -> str:
        if isinstance(self._key, rsa.RSAPublicKey):
            return f"PublicKey(kind='rsa', bits={self._key.key_size})"
        return f"PublicKey(kind='ed25519', multibase={self.to_multibase()!r})"

    @classmethod
    def from_pem(cls, pem: str) -> PublicKey:
        """Parse a PEM public key (SubjectPublicKeyInfo; PKCS#1 ``RSA PUBLIC KEY`` is tolerated)."""
        try:
            key = serialization.load_pem_public_key(pem.strip().encode())
        except (ValueError, TypeError, UnsupportedAlgorithm):
            raise KeyFormatError("not a readable PEM public key") from None
        return _wrap_public(key)

    @classmethod
    def from_multibase(cls, value: str) -> PublicKey:
        """Parse a FEP-521a ``publicKeyMultibase``: ``z`` + base58btc(multicodec prefix + key).

        Ed25519 (``0xed01`` + 32 bytes) is the expected form; RSA (``0x1205`` + PKCS#1 DER) is
        accepted too.
        """
        if not value.startswith("z"):
            raise KeyFormatError("multibase key must use base58btc (prefix 'z')")
        try:
            raw = base58.b58decode(value[1:])
        except ValueError:
            raise KeyFormatError("multibase key is not valid base58btc") from None
        if raw.startswith(_ED25519_PUB_PREFIX):
            body = raw[len(_ED25519_PUB_PREFIX) :]
            if len(body) != 32:
                raise KeyFormatError(f"Ed25519 multikey has {len(body)} key bytes, expected 32")
            return PublicKey(_key=ed25519.Ed25519PublicKey.from_public_bytes(body), kind="ed25519")
        if raw.startswith(_RSA_PUB_PREFIX):
            try:
                key = serialization.load_der_public_key(raw[len(_RSA_PUB_PREFIX) :])
            except (ValueError, TypeError, UnsupportedAlgorithm):
                raise KeyFormatError("RSA multikey does not hold a readable DER public key") from None
            return _wrap_public(key)
        raise KeyFormatError("multikey uses an unsupported multicodec (expected ed25519-pub or rsa-pub)")

    def to_pem(self) -> str:
        """SubjectPublicKeyInfo PEM text (what ``publicKeyPem`` carries)."""
        return self._key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()

    def to_multibase(self) -> str:
        """FEP-521a ``publicKeyMultibase`` of an Ed25519 key."""
        if not isinstance(self._key, ed25519.Ed25519PublicKey):
            raise KeyFormatError("only Ed25519 keys are published as multibase")
        raw = self._key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return "z" + base58.b58encode(_ED25519_PUB_PREFIX + raw).decode()

    def verify(self, signature: bytes, message: bytes) -> None:
        """Check ``signature`` over ``message``; return nothing or raise ``VerificationError``.

        RSA: RSASSA-PKCS1-v1_5 with SHA-256. Ed25519: pure Ed25519.
        """
        try:
            if isinstance(self._key, rsa.RSAPublicKey):
                self._key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
            else:
                self._key.verify(signature, message)
        except InvalidSignature:
            raise VerificationError("signature did not verify") from None


class PrivateKey:
    """An RSA or Ed25519 private key, loaded from the PEM the server stores."""

    __slots__ = ("_key", "kind")
    kind: KeyKind
    _key: _RsaOrEdPrivate

    def __init__(self, *, _key: _RsaOrEdPrivate, kind: KeyKind) -> None:
        # Not for callers: use from_pem, which checks type and size.
        object.__setattr__(self, "_key", _key)
        object.__setattr__(self, "kind", kind)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("PrivateKey is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("PrivateKey is immutable")

    def __repr__(self) -> str:
        return f"PrivateKey(kind={self.kind!r})"

    @classmethod
    def from_pem(cls, pem: str, *, trusted: bool = False) -> PrivateKey:
        """Parse an unencrypted PEM private key (PKCS#8 or traditional RSA).

        ``trusted``: the key is one we generated and stored ourselves, so OpenSSL's RSA
        consistency check (tens of milliseconds per load) is skipped. Never for keys from
        elsewhere.
        """
        try:
            key = serialization.load_pem_private_key(
                pem.strip().encode(), password=None, unsafe_skip_rsa_key_validation=trusted
            )
        except (ValueError, TypeError, UnsupportedAlgorithm):
            raise KeyFormatError("not a readable unencrypted PEM private key") from None
        if isinstance(key, rsa.RSAPrivateKey):
            _check_rsa_size(key.key_size)
            return PrivateKey(_key=key, kind="rsa")
        if isinstance(key, ed25519.Ed25519PrivateKey):
            return PrivateKey(_key=key, kind="ed25519")
        raise KeyFormatError(f"unsupported private key type {type(key).__name__} (only RSA and Ed25519)")

    def public_key(self) -> PublicKey:
        return _wrap_public(self._key.public_key())

    def sign(self, message: bytes) -> bytes:
        """Sign ``message``: RSA PKCS#1 v1.5 with SHA-256, or pure Ed25519."""
        if isinstance(self._key, rsa.RSAPrivateKey):
            return self._key.sign(message, padding.PKCS1v15(), hashes.SHA256())
        return self._key.sign(message)
