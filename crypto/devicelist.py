"""The per-member master key, the signed device list, and one-time-key signatures.

How it works (docs/e2ee.md "The signed device list", "One-time and fallback keys"; research
e2ee.md §7.3, §8(b)):

- Each member has an Ed25519 **master key** (pynacl). It signs the member's **device list**:
  RFC 8785 JCS of ``{"actor", "version", "signedAt", "masterKey", "devices": [...]}`` (the
  document without ``signature``). Devices are sorted by ``deviceId``; each names its Olm
  identity key (Curve25519), its fingerprint key (Ed25519) and its protocols.
- The master key's 32-byte seed can be written down as a **recovery code**: seed plus a
  2-byte checksum (the first two bytes of SHA-256(seed)), in Crockford base32, in dash-
  separated groups of four. Reading it forgives case, spaces and dashes (and Crockford's
  O/I/L look-alikes); a typo is caught by the checksum with probability 1 - 2**-16.
- A client pins an actor's first list it sees (trust on first use) and accepts a later list
  only through ``check_successor``: never an older version (rollback), never a different list
  under the same version (equivocation), never another master key unless the caller says the
  member accepted it (a "safety number changed" notice).
- One-time and fallback keys are signed by the device's fingerprint key over JCS of
  ``{"actor", "deviceId", "keyId", "key", "fallback"}``, so a server cannot hand out a key of
  its own, move a key to another device or member, or pass a fallback key off as one-time.

What it refuses: ``parse_device_list`` takes untrusted JSON and refuses unknown or missing
fields, wrong types, more than ``MAX_DEVICES`` devices, keys that are not exactly 32 bytes of
strict base64, versions outside 1..2**53-1 (what JCS can write), badly formed times, unsorted or duplicate device
ids, and any signature that does not verify under the document's own ``masterKey`` (whether
that master key is the right one is ``check_successor``'s question). Every refusal is a
``DeviceListError`` naming the field; the signature failure is deliberately one message.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeGuard

from nacl.exceptions import BadSignatureError
from nacl.exceptions import ValueError as NaclValueError
from nacl.signing import SigningKey, VerifyKey

from crypto import olm
from crypto.encoding import b64decode, b64encode, canonical_json, parse_utc_time, utc_second, utc_time
from crypto.errors import DeviceListError, KeyFormatError, MasterKeyChangedError, RollbackError, VerificationError

OLM_PROTOCOL = "application/vnd.hearthside.olm.v1"
DEVICE_ID = re.compile(r"[A-Za-z0-9_-]{4,64}")
KEY_ID = re.compile(r"[A-Za-z0-9_+/=-]{1,64}")
PROTOCOL = re.compile(r"[!-~]{1,128}")

MAX_DEVICES = 100
MAX_PROTOCOLS = 8
MAX_ACTOR_CHARS = 2048
MAX_VERSION = 2**53 - 1  # the largest integer RFC 8785 (I-JSON) can write
KEY_BYTES = 32
SIGNATURE_BYTES = 64

_WHITESPACE = re.compile(r"\s")
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_CROCKFORD_READ = {char: value for value, char in enumerate(_CROCKFORD)} | {"O": 0, "I": 1, "L": 1}
_SEED_BYTES = 32
_CHECKSUM_BYTES = 2
_CODE_BITS = 8 * (_SEED_BYTES + _CHECKSUM_BYTES)
_CODE_CHARS = -(-_CODE_BITS // 5)
_CODE_PAD_BITS = 5 * _CODE_CHARS - _CODE_BITS

_LIST_FIELDS = frozenset({"actor", "version", "signedAt", "masterKey", "devices", "signature"})
_DEVICE_FIELDS = frozenset({"deviceId", "identityKey", "fingerprintKey", "protocols"})


def valid_actor(value: object) -> TypeGuard[str]:
    """Whether ``value`` can be an actor id here: a printable string of 1..2048 characters
    without whitespace (the protocol layer checks that it is the right URL)."""
    return (
        isinstance(value, str)
        and 0 < len(value) <= MAX_ACTOR_CHARS
        and value.isprintable()
        and _WHITESPACE.search(value) is None
    )


def verify_ed25519(public_key: str, message: bytes, signature: str) -> None:
    """Check an Ed25519 ``signature`` (base64) of ``message`` by ``public_key`` (base64).

    ``KeyFormatError`` if the key is not 32 bytes of strict base64; ``VerificationError`` for a
    malformed or wrong signature.
    """
    try:
        key = VerifyKey(b64decode(public_key, field="public key", size=KEY_BYTES))
    except (ValueError, NaclValueError):
        raise KeyFormatError("an Ed25519 public key must be 32 bytes of base64") from None
    try:
        raw = b64decode(signature, field="signature", size=SIGNATURE_BYTES)
        key.verify(message, raw)
    except (ValueError, BadSignatureError):
        raise VerificationError("signature does not verify") from None


class MasterKey:
    """A member's Ed25519 master signing key. Its ``repr`` shows only the public key."""

    __slots__ = ("_key",)
    _key: SigningKey

    def __init__(self, *, _key: SigningKey) -> None:
        # Not for callers: use generate, from_seed or from_recovery_code.
        self._key = _key

    @classmethod
    def generate(cls) -> MasterKey:
        """A new random master key."""
        return cls(_key=SigningKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> MasterKey:
        """The master key with this 32-byte seed (``KeyFormatError`` otherwise)."""
        if not isinstance(seed, bytes) or len(seed) != _SEED_BYTES:
            raise KeyFormatError("a master key seed is 32 bytes")
        return cls(_key=SigningKey(seed))

    @property
    def seed(self) -> bytes:
        """The 32-byte secret seed. Handle as the secret it is."""
        return bytes(self._key)

    @property
    def public_key(self) -> str:
        """The Ed25519 public key, base64."""
        return b64encode(bytes(self._key.verify_key))

    def sign(self, message: bytes) -> str:
        """The Ed25519 signature of ``message``, base64."""
        return b64encode(self._key.sign(message).signature)

    def recovery_code(self) -> str:
        """The seed and its checksum in Crockford base32, e.g. ``7K2M-...``: 55 characters."""
        data = self.seed + _checksum(self.seed)
        number = int.from_bytes(data, "big") << _CODE_PAD_BITS
        chars = [_CROCKFORD[(number >> (5 * index)) & 31] for index in reversed(range(_CODE_CHARS))]
        return "-".join("".join(chars[start : start + 4]) for start in range(0, _CODE_CHARS, 4))

    @classmethod
    def from_recovery_code(cls, code: str) -> MasterKey:
        """The master key written as ``code``; ``KeyFormatError`` for a mistyped code."""
        if not isinstance(code, str) or len(code) > 4 * _CODE_CHARS:
            raise KeyFormatError("not a recovery code")
        compact = "".join(char for char in code.upper() if char not in " -\t\n")
        if len(compact) != _CODE_CHARS:
            raise KeyFormatError(f"a recovery code has {_CODE_CHARS} characters, this one has {len(compact)}")
        number = 0
        for char in compact:
            value = _CROCKFORD_READ.get(char)
            if value is None:
                raise KeyFormatError("a recovery code uses only the digits 0-9 and letters A-Z except U")
            number = (number << 5) | value
        if number & ((1 << _CODE_PAD_BITS) - 1):
            raise KeyFormatError("the recovery code is mistyped (checksum does not match)")
        data = (number >> _CODE_PAD_BITS).to_bytes(_SEED_BYTES + _CHECKSUM_BYTES, "big")
        seed, checksum = data[:_SEED_BYTES], data[_SEED_BYTES:]
        if not hmac.compare_digest(checksum, _checksum(seed)):
            raise KeyFormatError("the recovery code is mistyped (checksum does not match)")
        return cls.from_seed(seed)

    def __repr__(self) -> str:
        return f"MasterKey(public_key={self.public_key!r})"


def _checksum(seed: bytes) -> bytes:
    return hashlib.sha256(seed).digest()[:_CHECKSUM_BYTES]


@dataclass(frozen=True, slots=True)
class DeviceEntry:
    """One device in a signed list: its Olm identity key and its Ed25519 fingerprint key."""

    device_id: str
    identity_key: str
    fingerprint_key: str
    protocols: tuple[str, ...] = (OLM_PROTOCOL,)

    def to_json(self) -> dict[str, Any]:
        return {
            "deviceId": self.device_id,
            "identityKey": self.identity_key,
            "fingerprintKey": self.fingerprint_key,
            "protocols": list(self.protocols),
        }


@dataclass(frozen=True, slots=True)
class DeviceList:
    """A member's device list as signed by the master key (obtain one from ``sign_device_list``
    or ``parse_device_list``, which verify it)."""

    actor: str
    version: int
    signed_at: datetime
    master_key: str
    devices: tuple[DeviceEntry, ...]
    signature: str

    def payload(self) -> dict[str, Any]:
        """The signed object: the document without ``signature``."""
        return {
            "actor": self.actor,
            "version": self.version,
            "signedAt": utc_time(self.signed_at),
            "masterKey": self.master_key,
            "devices": [device.to_json() for device in self.devices],
        }

    def to_json(self) -> dict[str, Any]:
        """The document of docs/e2ee.md."""
        return {**self.payload(), "signature": self.signature}

    def device(self, device_id: str) -> DeviceEntry | None:
        """The entry of ``device_id``, or ``None`` when the list does not name it."""
        for entry in self.devices:
            if entry.device_id == device_id:
                return entry
        return None

    def same_content(self, other: DeviceList) -> bool:
        """Whether both lists sign exactly the same payload."""
        return canonical_json(self.payload()) == canonical_json(other.payload())


def _key(value: object, field: str) -> bytes:
    if not isinstance(value, str):
        raise DeviceListError(f"{field}: must be a base64 string")
    try:
        return b64decode(value, field=field, size=KEY_BYTES)
    except ValueError as exc:
        raise DeviceListError(str(exc)) from None


def _check_entry(entry: DeviceEntry, field: str) -> None:
    if not isinstance(entry, DeviceEntry):
        raise DeviceListError(f"{field}: not a device entry")
    if not isinstance(entry.device_id, str) or DEVICE_ID.fullmatch(entry.device_id) is None:
        raise DeviceListError(f"{field}.deviceId: must match {DEVICE_ID.pattern}")
    _key(entry.identity_key, f"{field}.identityKey")
    _key(entry.fingerprint_key, f"{field}.fingerprintKey")
    protocols = entry.protocols
    if not isinstance(protocols, tuple) or not 0 < len(protocols) <= MAX_PROTOCOLS:
        raise DeviceListError(f"{field}.protocols: 1 to {MAX_PROTOCOLS} protocols")
    for protocol in protocols:
        if not isinstance(protocol, str) or PROTOCOL.fullmatch(protocol) is None:
            raise DeviceListError(f"{field}.protocols: a protocol is a printable ASCII token")
    if len(set(protocols)) != len(protocols):
        raise DeviceListError(f"{field}.protocols: duplicate protocol")


def _check_devices(devices: tuple[DeviceEntry, ...]) -> None:
    if len(devices) > MAX_DEVICES:
        raise DeviceListError(f"devices: at most {MAX_DEVICES} devices")
    for index, entry in enumerate(devices):
        _check_entry(entry, f"devices[{index}]")
    ids = [entry.device_id for entry in devices]
    if len(set(ids)) != len(ids):
        raise DeviceListError("devices: duplicate deviceId")
    if ids != sorted(ids):
        raise DeviceListError("devices: not sorted by deviceId")


def _check_header(actor: object, version: object) -> None:
    if not valid_actor(actor):
        raise DeviceListError("actor: must be an actor id")
    if type(version) is not int or not 1 <= version <= MAX_VERSION:
        raise DeviceListError(f"version: must be an integer from 1 to {MAX_VERSION}")


def sign_device_list(
    master: MasterKey, *, actor: str, version: int, devices: Iterable[DeviceEntry], signed_at: datetime
) -> DeviceList:
    """Sign a device list. Devices are sorted by id and their keys written unpadded; duplicate
    or malformed ids and keys are refused (``DeviceListError``)."""
    _check_header(actor, version)
    entries = tuple(devices)
    for index, entry in enumerate(entries):
        _check_entry(entry, f"devices[{index}]")
    normalized = tuple(
        sorted(
            (
                DeviceEntry(
                    device_id=entry.device_id,
                    identity_key=b64encode(_key(entry.identity_key, "identityKey")),
                    fingerprint_key=b64encode(_key(entry.fingerprint_key, "fingerprintKey")),
                    protocols=entry.protocols,
                )
                for entry in entries
            ),
            key=lambda entry: entry.device_id,
        )
    )
    _check_devices(normalized)
    unsigned = DeviceList(
        actor=actor,
        version=version,
        signed_at=utc_second(signed_at),
        master_key=master.public_key,
        devices=normalized,
        signature="",
    )
    signature = master.sign(canonical_json(unsigned.payload()))
    return DeviceList(
        actor=unsigned.actor,
        version=unsigned.version,
        signed_at=unsigned.signed_at,
        master_key=unsigned.master_key,
        devices=unsigned.devices,
        signature=signature,
    )


def _fields(value: object, expected: frozenset[str], field: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise DeviceListError(f"{field}: must be an object")
    for name in value:
        if name not in expected:
            shown = name if isinstance(name, str) and len(name) <= 64 else "?"
            raise DeviceListError(f"{field}: unknown field {shown!r}")
    for name in sorted(expected):
        if name not in value:
            raise DeviceListError(f"{field}: missing field {name!r}")
    return value


def _parse_entry(value: object, field: str) -> DeviceEntry:
    doc = _fields(value, _DEVICE_FIELDS, field)
    protocols = doc["protocols"]
    if not isinstance(protocols, list) or len(protocols) > MAX_PROTOCOLS:
        raise DeviceListError(f"{field}.protocols: must be a list of 1 to {MAX_PROTOCOLS} protocols")
    for name in ("deviceId", "identityKey", "fingerprintKey"):
        if not isinstance(doc[name], str):
            raise DeviceListError(f"{field}.{name}: must be a string")
    entry = DeviceEntry(
        device_id=doc["deviceId"],
        identity_key=doc["identityKey"],
        fingerprint_key=doc["fingerprintKey"],
        protocols=tuple(protocols),
    )
    _check_entry(entry, field)
    return entry


def parse_device_list(doc: Any) -> DeviceList:
    """Parse an untrusted device-list document and verify it under its own ``masterKey``.

    Raises ``DeviceListError`` (naming the field) for any malformed part and
    ``DeviceListError("signature does not verify")`` for a bad signature. The caller decides
    whether that master key is the member's one (``check_successor``).
    """
    fields = _fields(doc, _LIST_FIELDS, "device list")
    _check_header(fields["actor"], fields["version"])
    signed_at_text = fields["signedAt"]
    try:
        signed_at = parse_utc_time(signed_at_text, field="signedAt")
    except ValueError as exc:
        raise DeviceListError(str(exc)) from None
    master_key = fields["masterKey"]
    _key(master_key, "masterKey")
    raw_devices = fields["devices"]
    if not isinstance(raw_devices, list):
        raise DeviceListError("devices: must be a list")
    if len(raw_devices) > MAX_DEVICES:
        raise DeviceListError(f"devices: at most {MAX_DEVICES} devices")
    devices = tuple(_parse_entry(entry, f"devices[{index}]") for index, entry in enumerate(raw_devices))
    _check_devices(devices)
    signature = fields["signature"]
    if not isinstance(signature, str):
        raise DeviceListError("signature: must be a string")
    parsed = DeviceList(
        actor=fields["actor"],
        version=fields["version"],
        signed_at=signed_at,
        master_key=master_key,
        devices=devices,
        signature=signature,
    )
    # The parsed payload re-serialises to what was received: every field was checked to be
    # of its one type, and the time format has a single spelling.
    try:
        verify_ed25519(master_key, canonical_json(parsed.payload()), signature)
    except (VerificationError, KeyFormatError, ValueError):
        raise DeviceListError("signature does not verify") from None
    return parsed


def check_successor(pinned: DeviceList | None, new: DeviceList, *, accept_new_master_key: bool = False) -> None:
    """Check that ``new`` may replace the ``pinned`` list of the same actor.

    ``None`` as ``pinned`` is trust on first use. Raises ``DeviceListError`` for another actor,
    ``MasterKeyChangedError`` for another master key (unless ``accept_new_master_key``; an
    accepted new key starts a new history, so its versions are not compared with the old
    key's), ``RollbackError`` for an older version or a different list under the same version.
    """
    if pinned is None:
        return
    if new.actor != pinned.actor:
        raise DeviceListError("actor: the list belongs to another actor")
    if not hmac.compare_digest(_key(new.master_key, "masterKey"), _key(pinned.master_key, "masterKey")):
        if accept_new_master_key:
            return
        raise MasterKeyChangedError("masterKey: differs from the pinned master key")
    if new.version < pinned.version:
        raise RollbackError(f"version: {new.version} is older than the pinned version {pinned.version}")
    if new.version == pinned.version and not new.same_content(pinned):
        raise RollbackError(f"version: a different list under the pinned version {pinned.version}")


def one_time_key_payload(*, actor: str, device_id: str, key_id: str, key: str, fallback: bool) -> bytes:
    """The bytes a device's fingerprint key signs for a one-time or fallback key (JCS).

    ``ValueError`` if any part is malformed.
    """
    if not valid_actor(actor):
        raise ValueError("actor: must be an actor id")
    if not isinstance(device_id, str) or DEVICE_ID.fullmatch(device_id) is None:
        raise ValueError(f"deviceId: must match {DEVICE_ID.pattern}")
    if not isinstance(key_id, str) or KEY_ID.fullmatch(key_id) is None:
        raise ValueError(f"keyId: must match {KEY_ID.pattern}")
    b64decode(key, field="key", size=KEY_BYTES)
    if not isinstance(fallback, bool):
        raise ValueError("fallback: must be a boolean")
    # The JCS form (RFC 8785) of this one shape, written directly, as it is made and checked for
    # every session: the members in JCS order, every value but the actor limited to characters
    # JSON writes unchanged (the patterns above, base64), and json.dumps writes a string exactly
    # as JCS does (escaping only '"', '\\' and control characters, as \b \t \n \f \r or lower-case
    # \u00xx). tests/test_devicelist.py compares it with rfc8785 on arbitrary values.
    return b'{"actor":%s,"deviceId":"%s","fallback":%s,"key":"%s","keyId":"%s"}' % (
        _json_string(actor),
        device_id.encode("ascii"),
        b"true" if fallback else b"false",
        key.encode("ascii"),
        key_id.encode("ascii"),
    )


@functools.lru_cache(maxsize=1024)
def _json_string(text: str) -> bytes:
    return json.dumps(text, ensure_ascii=False).encode("utf-8")


def verify_one_time_key(
    fingerprint_key: str, *, actor: str, device_id: str, key_id: str, key: str, fallback: bool, signature: str
) -> None:
    """Check a claimed one-time (or fallback) key's signature by the device's fingerprint key.

    ``VerificationError`` if the key is malformed or the signature does not cover exactly this
    actor, device, key id, key and fallback flag; ``KeyFormatError`` for a bad fingerprint key.
    """
    try:
        payload = one_time_key_payload(actor=actor, device_id=device_id, key_id=key_id, key=key, fallback=fallback)
    except ValueError:
        raise VerificationError("the claimed one-time key is malformed") from None
    try:
        b64decode(fingerprint_key, field="fingerprint key", size=KEY_BYTES)
    except ValueError:
        raise KeyFormatError("an Ed25519 public key must be 32 bytes of base64") from None
    # vodozemac's strict verification (the same Wycheproof results as pynacl's, in
    # tests/test_e2ee_primitives.py), a third faster: it runs once for every session set up.
    olm.verify_ed25519(fingerprint_key, payload, signature)
