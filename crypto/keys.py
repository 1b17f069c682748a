"""Actor and instance signing keys: RSA-2048 (draft-cavage HTTP signatures, Mastodon's
``publicKey``) and Ed25519 (FEP-521a ``assertionMethod``, FEP-8b32 proofs).

Keys travel as PEM text; private PEMs are written by the server with mode 0600.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from crypto.errors import KeyFormatError


@dataclass(frozen=True, slots=True)
class KeyPairPem:
    private_pem: str
    public_pem: str


def generate_rsa(bits: int = 2048) -> KeyPairPem:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return KeyPairPem(
        private_pem=key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode(),
        public_pem=key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode(),
    )


def generate_ed25519() -> KeyPairPem:
    key = ed25519.Ed25519PrivateKey.generate()
    return KeyPairPem(
        private_pem=key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode(),
        public_pem=key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode(),
    )


def describe_private_key(pem: str) -> str:
    """Name the type and size of a private key (``RSA-2048``, ``Ed25519``) or raise."""
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):
        raise KeyFormatError("not a readable unencrypted PEM private key") from None
    if isinstance(key, rsa.RSAPrivateKey):
        return f"RSA-{key.key_size}"
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "Ed25519"
    raise KeyFormatError(f"unsupported key type {type(key).__name__}")
