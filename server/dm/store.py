"""The member's local E2EE store: encrypted at rest, written in parts.

The store holds the login (server URL, access token), the device's keys and sessions
(``crypto.messaging.DeviceState``), pinned contacts, and the message history with each
message's franking opening (so a message can be reported later). Every file is sealed with
``crypto.secretstore``: an Argon2id key from the member's passphrase and a SecretBox.

Design note (format 2)
----------------------
Writing everything into one file made every save cost the whole history: with 20,000 short
messages a 25 MB file was serialised, sealed, written and fsync'd before every send and every
page of received messages (0.4 s each here). So:

* the **main file** (``hearthside-dm.store``) holds everything but the history, plus the list
  of history parts: the SHA-256 of each part's sealed bytes, which is also its file's name;
* the history is cut into **parts** of ``PART_MIN``..``PART_MAX`` messages, each sealed into
  its own file under ``hearthside-dm.history/``. A part ends after a
  message whose id hashes, keyed with this store's salt, to a boundary (about one in
  ``PART_MEAN``): the cut does not move when messages are added or deleted elsewhere, and a
  sender, who chooses message ids but never sees the salt, cannot choose where parts end;
* a **save** serialises every part (orjson: fast), and seals and writes only the parts whose
  plaintext changed since the last save or load, each to a new file; then it replaces the
  main file (the commit point: written to a temporary file, fsync'd, renamed); then it deletes
  the parts no longer listed. A crash at any step leaves the previous main file and every part
  it lists, so the store opens as it was before the save, or as after it;
* a **load** checks each listed part against its digest before opening it: a part that is
  missing, altered, swapped with another or replaced by an older copy of itself is refused
  (``StoreError``), as an altered main file is (``WrongPassphraseError``).

* a **wipe** (``Store.wipe``, ``hearthside dm wipe``: research/e2ee.md §7.7's panic wipe for
  someone whose device may be taken from them) needs no passphrase and no network and waits
  for no other command: it overwrites every file of the store with random bytes, syncs, then
  deletes it, twice (catching a part a running command wrote meanwhile). A running command
  whose store was wiped refuses to save (``StoreWiped``) rather than write it back.

Format 1 stores (the history inside the one file) still open; their next save writes format 2.
What the parts reveal to someone who can read the folder but not the key: about how many
messages are kept (the one file's size did too), and which parts changed when (file times).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from crypto.errors import StoreError
from crypto.messaging import DeviceState
from crypto.secretstore import DEFAULT_PARAMS, KdfParams, StoreKey

STORE_NAME = "hearthside-dm.store"
LOCK_NAME = "hearthside-dm.lock"
LOCK_WAIT = 5.0  # seconds a command waits for another to finish with the store
HISTORY_DIR = "hearthside-dm.history"
STORE_VERSION = 2
PART_MIN = 32
PART_MEAN = 128
PART_MAX = 512
_DIGEST = re.compile(r"[0-9a-f]{64}")
_WIPED = "this profile was wiped while the command ran; nothing was saved"


class StoreMissing(Exception):
    """No store at this path yet (log in first)."""


class StoreBusy(Exception):
    """Another command holds this store (see ``Store.locked``)."""


class StoreWiped(StoreError):
    """The store was wiped while this command had it open: nothing is written back."""


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
    # Messages older than this many seconds are deleted from this device (``DmClient.keep``);
    # None keeps them until deleted.
    keep_seconds: int | None = None

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
            "keep_seconds": self.keep_seconds,
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
            keep_seconds=int(data["keep_seconds"]) if data.get("keep_seconds") else None,
        )


def _dumps(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError:  # orjson refuses what the json module escapes (a lone surrogate)
        return json.dumps(value, separators=(",", ":")).encode()


def _loads(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:  # a part _dumps wrote with the json module
        return json.loads(data)


def _part_name(digest: str) -> str:
    return f"{digest}.part"


def _write_file(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` whole or not at all: a temporary file, fsync'd, renamed. The
    temporary name is fixed (one command holds the store at a time, ``Store.locked``), so one
    that a crash left behind is overwritten by the next save, not kept forever."""
    temporary = path.with_name(f".{path.name}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        raise


def _shred(path: Path) -> bool:
    """Overwrite a regular file with random bytes, sync, delete it; True when there was one.
    Best effort: a file system that writes elsewhere (copy-on-write, flash wear levelling,
    snapshots) may keep old blocks until the space is reused. Never follows a symlink."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return False
    except OSError:  # a symlink (deleted, never written through) or not a file (left alone)
        if not path.is_symlink():
            return False
        path.unlink(missing_ok=True)
        return True
    try:
        remaining = os.fstat(descriptor).st_size
        while remaining > 0:
            remaining -= os.write(descriptor, os.urandom(min(remaining, 1 << 20)))
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    return True


def _sync_directory(path: Path) -> None:
    """Make the renames in ``path`` durable before anything refers to their results."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


class Store:
    """Open (or create) the encrypted store in ``directory``; derive the key once per run."""

    def __init__(self, directory: Path, passphrase: str, *, params: KdfParams = DEFAULT_PARAMS) -> None:
        self.path = Path(directory) / STORE_NAME
        self.parts_path = Path(directory) / HISTORY_DIR
        self._passphrase = passphrase
        self._params = params
        self._key: StoreKey | None = None
        # SHA-256 of a part's plaintext -> the SHA-256 of its sealed bytes (its file's name), for
        # the parts the main file on disk lists (what a save need not write again).
        self._parts: dict[bytes, str] = {}
        self._boundaries: dict[str, bool] = {}  # message id -> whether a part ends after it
        self._committed = False  # a main file was loaded or written by this instance

    def exists(self) -> bool:
        return self.path.exists()

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the store for one command, from load to last save. Two commands on one profile
        at once would each load the same ratchet state, each encrypt with the same message
        keys (the recipient refuses the second as a replay; equal keys also show which
        plaintexts start alike), and the later save would undo the other's. ``StoreBusy`` when
        another command still holds it after ``LOCK_WAIT`` seconds (an advisory ``flock``,
        released when the holder exits, even by a crash)."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        descriptor = os.open(self.path.parent / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            deadline = time.monotonic() + LOCK_WAIT
            while True:
                try:
                    fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise StoreBusy(
                            "another `hearthside dm` command is using this profile (a verification can wait for "
                            "minutes); try again when it has finished"
                        ) from None
                    time.sleep(0.05)
            yield
        finally:
            os.close(descriptor)

    def load(self) -> Profile:
        if not self.path.exists():
            raise StoreMissing(f"no store at {self.path}; run `hearthside dm login` first")
        key, plaintext = StoreKey.open(self._passphrase, self.path.read_bytes())
        self._key, self._committed = key, True
        data = json.loads(plaintext)
        self._parts, self._boundaries = {}, {}
        if "history_parts" in data:
            data["history"] = self._read_history(key, data.pop("history_parts"))
        return Profile.from_json(data)

    def _read_history(self, key: StoreKey, listed: Any) -> list[dict[str, Any]]:
        if not isinstance(listed, list):
            raise StoreError("the message store is damaged: its list of history parts is malformed")
        history: list[dict[str, Any]] = []
        for number, digest in enumerate(listed, 1):
            if not isinstance(digest, str) or _DIGEST.fullmatch(digest) is None:
                raise StoreError("the message store is damaged: its list of history parts is malformed")
            try:
                blob = (self.parts_path / _part_name(digest)).read_bytes()
            except FileNotFoundError:
                raise StoreError(f"the message store is damaged: history part {number} is missing") from None
            if not hmac.compare_digest(hashlib.sha256(blob).hexdigest(), digest):
                raise StoreError(f"the message store is damaged: history part {number} was altered or replaced")
            plaintext = key.unseal(blob)
            items = _loads(plaintext)
            if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
                raise StoreError(f"the message store is damaged: history part {number} is malformed")
            history.extend(items)
            self._parts[hashlib.sha256(plaintext).digest()] = digest
        return history

    def _cut(self, key: StoreKey, history: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
        """The history in parts; a part ends after a message whose id, hashed with this store's
        salt, falls on a boundary (see the module note), within PART_MIN..PART_MAX messages."""
        if len(self._boundaries) > 4 * len(history) + 1024:
            self._boundaries = {}  # ids long gone from the history
        boundaries = self._boundaries
        parts: list[list[dict[str, Any]]] = []
        current: list[dict[str, Any]] = []
        for item in history:
            current.append(item)
            size = len(current)
            if size < PART_MIN:
                continue
            if size < PART_MAX:
                name = str(item.get("id", ""))
                ends = boundaries.get(name)
                if ends is None:
                    digest = hashlib.blake2b(name.encode(), key=key.salt, digest_size=4).digest()
                    ends = boundaries[name] = int.from_bytes(digest) % PART_MEAN == 0
                if not ends:
                    continue
            parts.append(current)
            current = []
        if current:
            parts.append(current)
        return parts

    def _check_not_wiped(self) -> None:
        """A store this command loaded or saved that is gone now was wiped (``wipe``): writing
        it back would undo what the member asked for."""
        if self._committed and not self.path.exists():
            raise StoreWiped(_WIPED)

    def save(self, profile: Profile) -> None:
        self._check_not_wiped()
        if self._key is None:
            self._key = StoreKey.create(self._passphrase, self._params)
        key = self._key
        data = profile.to_json()
        history = data.pop("history")
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.parts_path.mkdir(exist_ok=True, mode=0o700)
        on_disk = set(os.listdir(self.parts_path))
        listed: list[str] = []
        kept: dict[bytes, str] = {}
        written: list[Path] = []
        try:
            for part in self._cut(key, history):
                plaintext = _dumps(part)
                fingerprint = hashlib.sha256(plaintext).digest()
                digest = self._parts.get(fingerprint) or kept.get(fingerprint)
                if digest is None or _part_name(digest) not in on_disk:
                    blob = key.seal(plaintext)
                    digest = hashlib.sha256(blob).hexdigest()
                    _write_file(self.parts_path / _part_name(digest), blob)
                    on_disk.add(_part_name(digest))
                    written.append(self.parts_path / _part_name(digest))
                kept[fingerprint] = digest
                listed.append(digest)
            if written:
                _sync_directory(self.parts_path)
            data["history_parts"] = listed
            sealed = key.seal(json.dumps(data, separators=(",", ":")).encode())
            self._check_not_wiped()  # again, just before the commit point: a wipe may have run meanwhile
        except (StoreWiped, FileNotFoundError):
            if not self._committed or self.path.exists():
                raise  # not a wipe
            for path in written:  # what this save wrote after the wipe goes as the wipe's did
                _shred(path)
            with contextlib.suppress(OSError):
                self.parts_path.rmdir()
            raise StoreWiped(_WIPED) from None
        _write_file(self.path, sealed)
        self._committed = True
        _sync_directory(self.path.parent)  # the new main file is durable before old parts go
        self._parts = kept
        # Parts the new main file does not list (and leftovers of a save a crash stopped).
        for name in on_disk - {_part_name(digest) for digest in listed}:
            with contextlib.suppress(FileNotFoundError):
                (self.parts_path / name).unlink()

    def wipe(self, *, settle: float = 0.2) -> int:
        """Panic wipe: overwrite and delete every file of this store (main file, its temporary
        file, the lock, every history part), without the passphrase and without waiting for a
        command that holds the store; then, after ``settle`` seconds, again, for a part such a
        command wrote meanwhile (its save then stops: ``StoreWiped``). Other files in the folder
        are left alone; the folder goes if nothing else is in it. Returns how many files went."""
        directory = self.path.parent
        removed = 0
        for round_ in range(2):
            if round_:
                time.sleep(settle)
            names = (self.path, self.path.with_name(f".{STORE_NAME}.tmp"), directory / LOCK_NAME)
            removed += sum(_shred(path) for path in names)
            with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                with os.scandir(self.parts_path) as entries:
                    removed += sum(_shred(Path(entry.path)) for entry in list(entries))
            with contextlib.suppress(OSError):
                self.parts_path.rmdir()
        with contextlib.suppress(OSError):
            directory.rmdir()  # only when empty
        self._parts, self._key, self._committed = {}, None, False
        return removed

    def destroy(self) -> None:
        """Delete the store: the main file and every history part."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        shutil.rmtree(self.parts_path, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            (self.path.parent / LOCK_NAME).unlink()
        self._parts, self._committed = {}, False
