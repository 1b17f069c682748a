"""The inner plaintext of an encrypted private message (docs/e2ee.md "Messages").

How it works:

- The **message** is what the sender franks and every target device receives unchanged: the
  UTF-8 JSON object ``{"id": uuid4, "from", "to", "created", "expires", "body"}`` (times as
  whole Unix seconds), where ``body`` is a restricted ActivityStreams object
  (``{"type": "Note", "content": text, ...}``). Its **exact bytes** are what the franking tag
  commits to, what a reporter reveals and what a moderator's server checks: nobody
  re-serialises it, so no canonical form is needed (and no two JSON libraries can disagree
  about one). Receivers parse it strictly: exactly these keys, no duplicate keys anywhere.
  The disappearing-message time (``expires``) lives here, inside the ciphertext, so no server
  can change it.
- The **envelope** is what one target device decrypts, a small binary frame::

      0x02 | sender actor | sender device | sender Ed25519 (32) | recipient actor |
      recipient device | recipient Ed25519 (32) | franking key (32) | franking tag (32) |
      message | zero padding

  where actors and devices are UTF-8 with a 2-byte big-endian length and the message has a
  4-byte length. ``sender`` and ``recipient`` are in the plaintext because Olm does not bind
  identities to it (unknown-key-share: a message for Bob's device that Carol re-encrypts to
  Dave must not look to Dave as if Alice wrote to him; research/e2ee.md §3).
- **Padding** to :func:`padded_length`: at least 1,024 bytes (so every short message, the
  common case, looks the same), and above that Padmé (Nikitin et al., "Reducing Metadata
  Leakage from Encrypted Files and Communication with PURBs", PETS 2019): at most 12 %
  overhead, leaking O(log log n) bits of the length (research/e2ee.md §7.1).

Why binary, not the JSON envelope research/e2ee.md sketched: a JSON envelope must be parsed and
checked for a canonical form on every message, which cost ~94 % of client time against Olm's
own (bench/e2ee_bench.py); a fixed frame is read with a few slices, and the franked message
is still JSON, as the research asks, committed byte for byte.

What ``open_envelope`` refuses (``EnvelopeError`` naming the part): a malformed frame or
padding; an envelope whose recipient is not this device (actor, device id and key); a sender
that disagrees with the outer envelope or with the message's ``from``; a message involving
neither us as recipient nor us as sender (the sender's other devices get copies whose ``to``
is the peer); an inner franking tag that differs from the outer one or does not recompute
(``FrankingError``).

What it leaves to the caller (``crypto/messaging.py``): that the sender's device is in the
sender's signed device list with the returned ``sender.ed25519`` and the Olm session's identity
key, and that the message id was not seen before.
"""

from __future__ import annotations

import hmac
import json
import re
import struct
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any, NoReturn

from crypto.devicelist import DEVICE_ID, KEY_BYTES, valid_actor
from crypto.encoding import b64decode, b64encode, utc_second, utc_time
from crypto.errors import EnvelopeError, FrankingError
from crypto.franking import FRANKING_KEY_BYTES, TAG_BYTES, franking_tag

ENVELOPE_VERSION = 2
MIN_PADDED = 1024
MAX_ENVELOPE_BYTES = 65536
MAX_MESSAGE_BYTES = 60_000
MAX_CONTENT_CHARS = 20_000
MAX_BODY_DEPTH = 16
MAX_TIME = 253_402_300_800  # 10000-01-01T00:00:00Z in seconds: the first time datetime cannot hold

_VERSION_BYTE = bytes([ENVELOPE_VERSION])
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_UUID4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
_BODY_TYPE = re.compile(r"[A-Za-z][A-Za-z0-9_:-]{0,63}")
_MESSAGE_FIELDS = frozenset({"id", "from", "to", "created", "expires", "body"})
_SAFE_INTEGER = 2**53 - 1


@dataclass(frozen=True, slots=True)
class Party:
    """One end of a message: actor id, device id and the device's Ed25519 fingerprint key
    (base64, as device lists publish it)."""

    actor: str
    device: str
    ed25519: str
    key: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not valid_actor(self.actor):
            _fail("actor: must be an actor id")
        if not isinstance(self.device, str) or DEVICE_ID.fullmatch(self.device) is None:
            _fail(f"device: must match {DEVICE_ID.pattern}")
        try:
            key = b64decode(self.ed25519, field="ed25519", size=KEY_BYTES)
        except (ValueError, TypeError) as exc:
            raise EnvelopeError(str(exc)) from None
        object.__setattr__(self, "key", key)

    @classmethod
    def _from_frame(cls, actor: str, device: str, key: bytes) -> Party:
        """A party read from an envelope frame: the key is kept as read (32 bytes by the
        frame's layout); actor and device are checked by the caller's comparisons."""
        party = object.__new__(cls)
        object.__setattr__(party, "actor", actor)
        object.__setattr__(party, "device", device)
        object.__setattr__(party, "ed25519", b64encode(key))
        object.__setattr__(party, "key", key)
        return party

    def same(self, other: Party) -> bool:
        """Same actor, device and key (keys compared as bytes)."""
        return self.actor == other.actor and self.device == other.device and hmac.compare_digest(self.key, other.key)

    def to_json(self) -> dict[str, Any]:
        return {"actor": self.actor, "device": self.device, "ed25519": self.ed25519}


@dataclass(frozen=True, slots=True)
class PlainMessage:
    """The franked message: its fields, and ``encoded``, the exact bytes the tag commits to."""

    id: str
    sender: str
    recipient: str
    created: datetime
    expires: datetime | None
    body: Mapping[str, Any] = field(repr=False)
    encoded: bytes = field(repr=False)

    @property
    def content(self) -> str:
        """The text of a ``Note`` (``""`` for a body without ``content``)."""
        content = self.body.get("content", "")
        return content if isinstance(content, str) else ""

    def to_json(self) -> dict[str, Any]:
        """For display and history (times as RFC 3339); not the committed form."""
        return {
            "id": self.id,
            "from": self.sender,
            "to": self.recipient,
            "created": utc_time(self.created),
            "expires": None if self.expires is None else utc_time(self.expires),
            "body": json.loads(json.dumps(dict(self.body))),
        }


@dataclass(frozen=True, slots=True)
class Envelope:
    """A message as one device sends or receives it, with its franking opening."""

    sender: Party
    recipient: Party
    message: PlainMessage = field(repr=False)
    franking_key: bytes = field(repr=False)
    franking_tag: bytes


def _fail(message: str) -> NoReturn:
    raise EnvelopeError(message)


# ---------------------------------------------------------------------------- the message


def _check_json_value(value: object, where: str, depth: int = 0) -> None:
    if depth > MAX_BODY_DEPTH:
        _fail(f"{where}: nested deeper than {MAX_BODY_DEPTH}")
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, str):
        if not _is_utf8(value):
            _fail(f"{where}: not valid Unicode text (a lone surrogate)")
        return
    if isinstance(value, int):
        if abs(value) > _SAFE_INTEGER:
            _fail(f"{where}: integer out of the JSON-safe range")
        return
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            _fail(f"{where}: not a finite number")
        return
    if isinstance(value, list):
        for item in value:
            _check_json_value(item, where, depth + 1)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not _is_utf8(key):
                _fail(f"{where}: a key is not valid Unicode text")
            _check_json_value(item, where, depth + 1)
        return
    _fail(f"{where}: not a JSON value")


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_body(body: object) -> dict[str, Any]:
    if not isinstance(body, dict):
        _fail("body: must be an object")
    kind = body.get("type")
    if not isinstance(kind, str) or _BODY_TYPE.fullmatch(kind) is None:
        _fail("body.type: must be a type name such as 'Note'")
    # A Note must have text; other types (in-band protocol messages) may go without.
    if kind == "Note" or "content" in body:
        content = body.get("content")
        if not isinstance(content, str) or not 0 < len(content) <= MAX_CONTENT_CHARS:
            _fail(f"body.content: must be text of 1 to {MAX_CONTENT_CHARS} characters")
        if not _is_utf8(content):
            _fail("body.content: not valid Unicode text (a lone surrogate)")
    if body.keys() - {"type", "content"}:  # the common {"type", "content"} needs no walk
        _check_json_value(body, "body")
    return body


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate key")
    return result


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


_DECODER = json.JSONDecoder(object_pairs_hook=_unique_keys, parse_constant=_reject_constant)
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _seconds(value: object, where: str) -> datetime:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < MAX_TIME:
        _fail(f"{where}: must be whole Unix seconds")
    return datetime.fromtimestamp(value, UTC)


def decode_message(encoded: bytes) -> PlainMessage:
    """Parse a message from its exact bytes (a received envelope's, or a revealed one in a
    report); ``EnvelopeError`` naming the field otherwise."""
    if not isinstance(encoded, bytes) or len(encoded) > MAX_MESSAGE_BYTES:
        _fail(f"message: must be at most {MAX_MESSAGE_BYTES} bytes")
    try:
        doc = _DECODER.decode(encoded.decode("utf-8"))
    except (ValueError, RecursionError):
        _fail("message: is not UTF-8 JSON with unique keys")
    if not isinstance(doc, dict) or doc.keys() != _MESSAGE_FIELDS:
        _fail(f"message: must be an object with exactly {', '.join(sorted(_MESSAGE_FIELDS))}")
    message_id = doc["id"]
    if not isinstance(message_id, str) or _UUID4.fullmatch(message_id) is None:
        _fail("id: must be a lower-case UUID4")
    sender, recipient = doc["from"], doc["to"]
    if not valid_actor(sender):
        _fail("from: must be an actor id")
    if not valid_actor(recipient):
        _fail("to: must be an actor id")
    created = _seconds(doc["created"], "created")
    expires = None if doc["expires"] is None else _seconds(doc["expires"], "expires")
    if expires is not None and expires <= created:
        _fail("expires: must be after created")
    body = _check_body(doc["body"])
    return PlainMessage(
        id=message_id,
        sender=sender,
        recipient=recipient,
        created=created,
        expires=expires,
        body=MappingProxyType(body),
        encoded=encoded,
    )


def new_message(
    *,
    sender: str,
    recipient: str,
    content: str,
    now: datetime,
    expires_in: timedelta | None = None,
    extra: Mapping[str, Any] | None = None,
) -> PlainMessage:
    """A new ``Note`` from ``sender`` to ``recipient`` created at ``now`` with a random UUID4 id.

    ``expires_in`` sets the disappearing time; ``extra`` adds body fields (not ``type`` or
    ``content``). ``EnvelopeError`` for empty or over-long content or a malformed part.
    """
    if not isinstance(content, str) or not 0 < len(content) <= MAX_CONTENT_CHARS:
        _fail(f"content: must be text of 1 to {MAX_CONTENT_CHARS} characters")
    extra = dict(extra or {})
    if "type" in extra or "content" in extra:
        _fail("extra: may not set type or content")
    if expires_in is not None and expires_in <= timedelta(0):
        _fail("expires_in: must be positive")
    if not valid_actor(sender) or not valid_actor(recipient):
        _fail("from/to: must be actor ids")
    created = utc_second(now)
    expires = None if expires_in is None else utc_second(created + expires_in)
    if expires is not None and expires <= created:
        _fail("expires_in: must be at least one second")
    body = {"type": "Note", "content": content, **extra}
    if extra:
        _check_body(body)
    return _encode_message(sender, recipient, body, created, expires, copy_body=bool(extra))


def new_control_message(*, sender: str, recipient: str, body: Mapping[str, Any], now: datetime) -> PlainMessage:
    """A message that is not a ``Note`` (an in-band protocol step such as key verification):
    ``body`` has its own ``type``; clients act on it and never show it as text."""
    if not valid_actor(sender) or not valid_actor(recipient):
        _fail("from/to: must be actor ids")
    checked = _check_body(dict(body))
    if checked.get("type") == "Note":
        _fail("body.type: a control message is not a Note")
    return _encode_message(sender, recipient, checked, utc_second(now), None, copy_body=True)


def _encode_message(
    sender: str, recipient: str, body: dict[str, Any], created: datetime, expires: datetime | None, *, copy_body: bool
) -> PlainMessage:
    message_id = str(uuid.uuid4())
    try:
        encoded = _ENCODER.encode(
            {
                "id": message_id,
                "from": sender,
                "to": recipient,
                "created": int(created.timestamp()),
                "expires": None if expires is None else int(expires.timestamp()),
                "body": body,
            }
        ).encode("utf-8")
    except (TypeError, ValueError, UnicodeEncodeError):
        _fail("message: has no JSON form (non-JSON values or unpaired surrogates)")
    if len(encoded) > MAX_MESSAGE_BYTES:
        _fail(f"message: longer than {MAX_MESSAGE_BYTES} bytes")
    # What the receivers will parse from these bytes (a fresh copy when the caller gave parts
    # of the body, so they cannot change the message afterwards).
    return PlainMessage(
        id=message_id,
        sender=sender,
        recipient=recipient,
        created=created,
        expires=expires,
        body=MappingProxyType(_DECODER.decode(encoded.decode("utf-8"))["body"] if copy_body else body),
        encoded=encoded,
    )


# ---------------------------------------------------------------------------- the envelope


def make_envelope(*, sender: Party, recipient: Party, message: PlainMessage, franking_key: bytes) -> Envelope:
    """The envelope of ``message`` for one target device, with its franking tag computed."""
    if not isinstance(franking_key, bytes) or len(franking_key) != FRANKING_KEY_BYTES:
        raise ValueError("a franking key is 32 bytes")
    return Envelope(
        sender=sender,
        recipient=recipient,
        message=message,
        franking_key=franking_key,
        franking_tag=franking_tag(franking_key, message.encoded),
    )


def padded_length(size: int) -> int:
    """The length an envelope of ``size`` bytes is padded to (see the module note);
    ``EnvelopeError`` above ``MAX_ENVELOPE_BYTES``."""
    if size < 0:
        raise ValueError("size must not be negative")
    if size <= MIN_PADDED:
        return MIN_PADDED
    exponent = size.bit_length() - 1  # floor(log2(size))
    low_bits = exponent - exponent.bit_length()  # E - (floor(log2 E) + 1)
    mask = (1 << low_bits) - 1
    padded = (size + mask) & ~mask
    if padded > MAX_ENVELOPE_BYTES:
        _fail(f"envelope of {size} bytes is longer than {MAX_ENVELOPE_BYTES} bytes")
    return padded


def _short(text: str) -> bytes:
    data = text.encode("utf-8")
    return _U16.pack(len(data)) + data


def seal_envelope(envelope: Envelope) -> bytes:
    """The plaintext to encrypt for one device: the frame, zero-padded to ``padded_length``."""
    sender, recipient, message = envelope.sender, envelope.recipient, envelope.message.encoded
    frame = b"".join(
        (
            _VERSION_BYTE,
            _short(sender.actor),
            _short(sender.device),
            sender.key,
            _short(recipient.actor),
            _short(recipient.device),
            recipient.key,
            envelope.franking_key,
            envelope.franking_tag,
            _U32.pack(len(message)),
            message,
        )
    )
    return frame + bytes(padded_length(len(frame)) - len(frame))


def _read_frame(data: bytes) -> tuple[str, str, bytes, str, str, bytes, bytes, bytes, bytes, int]:
    """The frame's fields and the offset where padding starts; ``EnvelopeError`` when any part
    runs past the end or is not UTF-8 (the layout is in the module note)."""
    try:
        offset = 1
        texts: list[str] = []
        keys: list[bytes] = []
        for _party in range(2):
            for _name in range(2):
                (size,) = _U16.unpack_from(data, offset)
                offset += 2
                chunk = data[offset : offset + size]
                if len(chunk) != size:
                    _fail("envelope: truncated")
                texts.append(chunk.decode("utf-8"))
                offset += size
            keys.append(data[offset : offset + KEY_BYTES])
            offset += KEY_BYTES
        franking_key = data[offset : offset + FRANKING_KEY_BYTES]
        tag = data[offset + FRANKING_KEY_BYTES : offset + FRANKING_KEY_BYTES + TAG_BYTES]
        offset += FRANKING_KEY_BYTES + TAG_BYTES
        (size,) = _U32.unpack_from(data, offset)
        offset += 4
    except struct.error:
        _fail("envelope: truncated")
    except UnicodeDecodeError:
        _fail("envelope: a party is not UTF-8")
    if size > MAX_MESSAGE_BYTES:
        _fail("envelope: message too long")
    encoded = data[offset : offset + size]
    if len(encoded) != size or any(len(k) != KEY_BYTES for k in keys) or len(tag) != TAG_BYTES:
        _fail("envelope: truncated")
    return texts[0], texts[1], keys[0], texts[2], texts[3], keys[1], franking_key, tag, encoded, offset + size


def open_envelope(plaintext: bytes, *, me: Party, sender_actor: str, sender_device: str, outer_tag: bytes) -> Envelope:
    """Parse and check a decrypted envelope received by device ``me``.

    ``sender_actor``/``sender_device`` and ``outer_tag`` come from the outer (server-visible)
    envelope. Raises ``EnvelopeError`` or ``FrankingError`` as the module note describes.
    """
    if not isinstance(plaintext, bytes) or not plaintext or plaintext[0] != ENVELOPE_VERSION:
        _fail("envelope: not a version 2 envelope")
    from_actor, from_device, from_key, to_actor, to_device, to_key, key, tag, encoded, end = _read_frame(plaintext)
    if len(plaintext) != padded_length(end) or plaintext.count(0, end) != len(plaintext) - end:
        _fail("envelope: padding is not zeros to the padded length")
    # Unknown-key-share: the envelope must name this very device as its recipient.
    if to_actor != me.actor or to_device != me.device or not hmac.compare_digest(to_key, me.key):
        _fail("envelope: not addressed to this device")
    if from_actor != sender_actor or from_device != sender_device:
        _fail("envelope: the sender disagrees with the outer envelope")
    if not hmac.compare_digest(tag, outer_tag if isinstance(outer_tag, bytes) else b""):
        raise FrankingError("the inner franking tag differs from the outer one")
    if not hmac.compare_digest(franking_tag(key, encoded), tag):
        raise FrankingError("the franking tag does not recompute")
    message = decode_message(encoded)
    if message.sender != from_actor:
        _fail("message.from: is not the sender")
    if me.actor not in (message.recipient, message.sender):
        _fail("message: neither from nor to this device's actor")
    if DEVICE_ID.fullmatch(from_device) is None:
        _fail("envelope: the sender device id is malformed")
    sender = Party._from_frame(from_actor, from_device, from_key)
    return Envelope(sender=sender, recipient=me, message=message, franking_key=key, franking_tag=tag)
