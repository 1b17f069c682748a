"""Random secrets and their stored digests.

Bearer tokens, authorization codes, client secrets and invite codes are random and
high-entropy, so a plain SHA-256 digest is the right thing to store (a slow hash adds nothing
against 256-bit secrets); lookups are by digest, comparisons in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets


def new_token(nbytes: int = 32) -> str:
    """A URL-safe random secret with ``nbytes`` bytes of entropy."""
    return secrets.token_urlsafe(nbytes)


def new_code(length: int = 10) -> str:
    """A short human-typable code (invites): letters and digits without look-alikes."""
    alphabet = "abcdefghjkmnpqrstuvwxyz23456789"
    return "".join(secrets.choice(alphabet) for _ in range(length))


def digest(secret: str) -> str:
    """Hex SHA-256 of a secret, for storage and lookup."""
    return hashlib.sha256(secret.encode()).hexdigest()


def same_digest(secret: str, stored_digest: str) -> bool:
    """Constant-time check that ``secret`` hashes to ``stored_digest``."""
    return hmac.compare_digest(digest(secret), stored_digest)
