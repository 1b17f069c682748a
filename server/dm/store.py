"""The member's local E2EE store: one file, encrypted at rest.

The file holds the login (server URL, access token), the device's keys and sessions
(``crypto.messaging.DeviceState``), pinned contacts, and the message history with each
message's franking opening (so a message can be reported later). It is sealed with
``crypto.secretstore``: an Argon2id key from the member's passphrase and a SecretBox. Writes go
to a temporary file that replaces the old one, so a crash leaves the previous state whole.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crypto.messaging import DeviceState
from crypto.secretstore import DEFAULT_PARAMS, KdfParams, StoreKey

STORE_NAME = "hearthside-dm.store"
STORE_VERSION = 1


class StoreMissing(Exception):
    """No store at this path yet (log in first)."""


@dataclass
class Profile:
    """What the store holds, in memory."""

    server: str
    token: str
    actor: str
    acct: str
    device: DeviceState | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    undecryptable: int = 0
    # Object ids of ciphertexts opened and not yet known to be acknowledged (see
    # ``DmClient.fetch``); empty whenever the inbox was last seen empty.
    unacknowledged: list[str] = field(default_factory=list)
    # On-device support panels (``DmClient.support``): the member's switch, and the kit the
    # server gives every member alike (panels, helplines) with when it was fetched.
    support_panels: bool = True
    # Disappearing-message timers per conversation (peer actor -> [seconds, set at (unix)]),
    # kept in step with the peer's and our other devices (``DmClient.set_timer``).
    timers: dict[str, list[int]] = field(default_factory=dict)
    # Senders whose message requests the member accepted (``DmClient.accept``).
    accepted: list[str] = field(default_factory=list)
    # The OAuth app the token belongs to, so ``logout`` can revoke the token (RFC 7009).
    client_id: str | None = None
    client_secret: str | None = None
    support_kit: dict[str, Any] | None = None
    support_kit_at: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "v": STORE_VERSION,
            "server": self.server,
            "token": self.token,
            "actor": self.actor,
            "acct": self.acct,
            "device": self.device.to_json() if self.device is not None else None,
            "history": self.history,
            "undecryptable": self.undecryptable,
            "unacknowledged": self.unacknowledged,
            "support_panels": self.support_panels,
            "timers": self.timers,
            "accepted": self.accepted,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "support_kit": self.support_kit,
            "support_kit_at": self.support_kit_at,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Profile:
        device = data.get("device")
        return cls(
            server=data["server"],
            token=data["token"],
            actor=data["actor"],
            acct=data["acct"],
            device=DeviceState.from_json(device) if device else None,
            history=list(data.get("history", [])),
            undecryptable=int(data.get("undecryptable", 0)),
            unacknowledged=[str(o) for o in data.get("unacknowledged", [])],
            support_panels=bool(data.get("support_panels", True)),
            timers={str(k): [int(v[0]), int(v[1])] for k, v in dict(data.get("timers", {})).items()},
            accepted=[str(a) for a in data.get("accepted", [])],
            client_id=data.get("client_id"),
            client_secret=data.get("client_secret"),
            support_kit=data.get("support_kit"),
            support_kit_at=data.get("support_kit_at"),
        )


class Store:
    """Open (or create) the encrypted store in ``directory``; derive the key once per run."""

    def __init__(self, directory: Path, passphrase: str, *, params: KdfParams = DEFAULT_PARAMS) -> None:
        self.path = Path(directory) / STORE_NAME
        self._passphrase = passphrase
        self._params = params
        self._key: StoreKey | None = None

    def exists(self) -> bool:
        return self.path.exists()

    def load(self) -> Profile:
        if not self.path.exists():
            raise StoreMissing(f"no store at {self.path}; run `hearthside dm login` first")
        key, plaintext = StoreKey.open(self._passphrase, self.path.read_bytes())
        self._key = key
        return Profile.from_json(json.loads(plaintext))

    def save(self, profile: Profile) -> None:
        if self._key is None:
            self._key = StoreKey.create(self._passphrase, self._params)
        blob = self._key.seal(json.dumps(profile.to_json(), separators=(",", ":")).encode())
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        temporary = self.path.with_suffix(".tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(blob)
                handle.flush()
                os.fsync(handle.fileno())
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()
            raise
        os.replace(temporary, self.path)
