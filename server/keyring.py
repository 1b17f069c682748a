"""Keys derived from the instance secret, one per purpose.

The secret is ``security.secret_key`` (best from ``HEARTHSIDE_SECRET_KEY``), else the
``secret_key`` file ``hearthside init`` writes into the data directory. Every use gets its own
key, SHA-256 of a purpose label and the secret, so no two uses can be played against each
other. Without a secret, a process makes a random key per purpose: whatever it keys then holds
only in that process (a form must be posted back to the process that served it, a remembered
login address is known only to the process that remembered it), which fails safe.
"""

from __future__ import annotations

import hashlib
import secrets

from server.config import Config


def instance_secret(config: Config) -> str:
    """The configured secret, else the data directory's ``secret_key`` file, else ``""``."""
    secret = str(config.get("security", "secret_key"))
    if secret:
        return secret
    try:
        return (config.data_dir / "secret_key").read_text(encoding="utf-8").strip()
    except OSError:
        return ""


def purpose_key(config: Config, purpose: str) -> bytes:
    """A 32-byte key for ``purpose`` (a fixed label); random per call without a secret."""
    secret = instance_secret(config)
    if not secret:
        return secrets.token_bytes(32)
    return hashlib.sha256(purpose.encode() + b"\x00" + secret.encode()).digest()
