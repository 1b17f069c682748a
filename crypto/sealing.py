"""Server-side sealing of small secrets at rest (revealed report messages).

A report's revealed plaintext is the one place message content reaches a server, and only
because the reporter chose to show it (research/e2ee.md §7.6). It is kept encrypted with a
key held in the instance's data directory, not in the database, so a database dump or backup
alone does not show it. XSalsa20-Poly1305 (pynacl ``SecretBox``) with a random nonce.
"""

from __future__ import annotations

import base64
import secrets

import nacl.exceptions
import nacl.secret

from crypto.errors import VerificationError

KEY_BYTES = nacl.secret.SecretBox.KEY_SIZE


def new_sealing_key() -> bytes:
    return secrets.token_bytes(KEY_BYTES)


def seal(key: bytes, plaintext: bytes) -> str:
    """``plaintext`` encrypted under ``key`` (32 bytes), as base64 text."""
    return base64.b64encode(bytes(nacl.secret.SecretBox(key).encrypt(plaintext))).decode()


def unseal(key: bytes, sealed: str) -> bytes:
    """The plaintext of :func:`seal`; ``VerificationError`` if the key is wrong or it was altered."""
    try:
        return nacl.secret.SecretBox(key).decrypt(base64.b64decode(sealed, validate=True))
    except (nacl.exceptions.CryptoError, ValueError):
        raise VerificationError("sealed data does not open with this key") from None
