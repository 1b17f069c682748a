"""Password hashing with Argon2id (RFC 9106) through argon2-cffi.

``verify`` returns nothing and raises ``VerificationError`` on any mismatch or malformed hash;
``needs_rehash`` tells the caller to store a new hash after a successful login when the
parameters have been raised since.
"""

from __future__ import annotations

from dataclasses import dataclass

import argon2
from argon2.exceptions import InvalidHashError, VerifyMismatchError
from argon2.exceptions import VerificationError as _Mismatch

from crypto.errors import VerificationError

MAX_PASSWORD_BYTES = 1024  # longer inputs are refused before hashing (a cheap DoS otherwise)


@dataclass(frozen=True, slots=True)
class PasswordPolicy:
    """Argon2id cost parameters. The defaults are RFC 9106's second recommended option."""

    time_cost: int = 3
    memory_kib: int = 65_536
    parallelism: int = 4


class PasswordHasher:
    def __init__(self, policy: PasswordPolicy | None = None) -> None:
        policy = policy or PasswordPolicy()
        self._hasher = argon2.PasswordHasher(
            time_cost=policy.time_cost,
            memory_cost=policy.memory_kib,
            parallelism=policy.parallelism,
            type=argon2.Type.ID,
        )

    def hash(self, password: str) -> str:
        if len(password.encode()) > MAX_PASSWORD_BYTES:
            raise ValueError(f"password longer than {MAX_PASSWORD_BYTES} bytes")
        return self._hasher.hash(password)

    def verify(self, stored_hash: str, password: str) -> None:
        """Raise ``VerificationError`` unless ``password`` matches ``stored_hash``."""
        if len(password.encode()) > MAX_PASSWORD_BYTES:
            raise VerificationError("password does not match")
        try:
            self._hasher.verify(stored_hash, password)
        except (VerifyMismatchError, _Mismatch, InvalidHashError):
            raise VerificationError("password does not match") from None

    def needs_rehash(self, stored_hash: str) -> bool:
        return self._hasher.check_needs_rehash(stored_hash)
