"""The inner plaintext of an encrypted private message (docs/e2ee.md "Messages").

How it works:

- The **message** is what the sender franks and every target device receives unchanged, a
  small binary record (version 3)::

      0x03 | from actor | to actor | id (16) | created (8) | expires (8) | kind (1) | body

  actors as UTF-8 after a 2-byte big-endian length; ``id`` a random UUID4 (version and variant
  bits checked); times whole Unix seconds, big-endian, ``expires`` 0 for "never"; ``kind`` 1
  means the body is the text of a ``Note`` (UTF-8, 1 to 20,000 characters), kind 2 means it is
  a JSON object with a ``type`` (a ``Note`` with more fields, or an in-band protocol message
  such as a verification step), parsed strictly: no duplicate keys anywhere, no NaN, depth at
  most 16. A plain ``Note`` is always kind 1, so one message has one spelling. Its **exact
  bytes** are what the franking tag commits to, what a reporter reveals and what a moderator's
  server checks; nobody re-serialises it. The disappearing-message time lives here, inside the
  ciphertext, so no server can change it.
- The **envelope** is what one target device decrypts, a binary frame (version 3)::

      0x03 | sender actor | sender device | sender Ed25519 (32) | recipient actor |
      recipient device | recipient Ed25519 (32) | franking key (32) | franking tag (32) |
      message | zero padding

  where actors and devices are UTF-8 with a 2-byte big-endian length and the message has a
  4-byte length. ``sender`` and ``recipient`` are in the plaintext because Olm does not bind
  identities to it (unknown-key-share: a message for Bob's device that Carol re-encrypts to
  Dave must not look to Dave as if Alice wrote to him; research/e2ee.md §3). Everything before
  the franking key depends only on the two devices: :class:`Link` computes it once per pair,
  and a receiver that knows which device sent a message compares it as one prefix.
- **Padding** to :func:`padded_length`: at least 1,024 bytes (so every short message, the
  common case, looks the same), and above that Padmé (Nikitin et al., "Reducing Metadata
  Leakage from Encrypted Files and Communication with PURBs", PETS 2019): at most 12 %
  overhead, leaking O(log log n) bits of the length (research/e2ee.md §7.1).

Why binary, not the JSON research/e2ee.md sketched: reading JSON strictly and writing it cost
more than Olm itself on every message (bench/e2ee_bench.py measured the JSON envelope at 6 % of
raw Olm's throughput, then the JSON message inside a binary frame at 30 %); fixed fields are
read with a few slices, and JSON remains only where a body needs structure.

What ``open_envelope`` refuses (``EnvelopeError`` naming the part): a malformed frame or
padding; an envelope whose recipient is not this device (actor, device id and key); a sender
that disagrees with the outer envelope or with the message's ``from``; a message involving
neither us as recipient nor us as sender (the sender's other devices get copies whose ``to``
is the peer); an inner franking tag that differs from the outer one or does not recompute
(``FrankingError``).

What it leaves to the caller (``crypto/messaging.py``): that the sender's device is in the
sender's signed device list with the returned ``sender.ed25519`` and the Olm session's identity
key (a :class:`Link` built from the pinned list checks the key as part of the prefix), and
that the message id was not seen before.
"""

from __future__ import annotations

import hmac
import json
import os
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any, NamedTuple, NoReturn

from crypto.devicelist import DEVICE_ID, KEY_BYTES, valid_actor
from crypto.encoding import b64decode, b64encode, utc_time
from crypto.errors import EnvelopeError, FrankingError
from crypto.franking import FRANKING_KEY_BYTES, TAG_BYTES, franking_tag

ENVELOPE_VERSION = 3
MESSAGE_VERSION = 3
KIND_NOTE = 1
KIND_JSON = 2
MIN_PADDED = 1024
MAX_ENVELOPE_BYTES = 65536
MAX_MESSAGE_BYTES = 60_000
MAX_CONTENT_CHARS = 20_000
MAX_BODY_DEPTH = 16
MAX_TIME = 253_402_300_800  # 10000-01-01T00:00:00Z in seconds: the first time datetime cannot hold

_VERSION_BYTE = bytes([ENVELOPE_VERSION])
_MESSAGE_VERSION_BYTE = bytes([MESSAGE_VERSION])
_KIND_NOTE_BYTE = bytes([KIND_NOTE])
_KIND_JSON_BYTE = bytes([KIND_JSON])
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_TIMES = struct.Struct(">QQ")
_ID_BYTES = 16
# After the two actors: id, the two times and the kind byte.
_FIXED_AFTER_ACTORS = _ID_BYTES + _TIMES.size + 1
# After the frame header: franking key, tag and the message length.
_AFTER_HEADER = FRANKING_KEY_BYTES + TAG_BYTES + _U32.size
_BODY_TYPE = re.compile(r"[A-Za-z][A-Za-z0-9_:-]{0,63}")
_SAFE_INTEGER = 2**53 - 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND = timedelta(seconds=1)


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
        # One spelling (unpadded), as a party read from a frame has: equal keys, equal parties.
        object.__setattr__(self, "ed25519", b64encode(key))

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


def _short(text: str) -> bytes:
    data = text.encode("utf-8")
    return _U16.pack(len(data)) + data


def _frame_header(sender: Party, recipient: Party) -> bytes:
    return b"".join(
        (
            _VERSION_BYTE,
            _short(sender.actor),
            _short(sender.device),
            sender.key,
            _short(recipient.actor),
            _short(recipient.device),
            recipient.key,
        )
    )


@dataclass(frozen=True, slots=True)
class Link:
    """A sending and a receiving device, with the start of every frame between them (the
    version byte and both parties, the part of the layout that depends on nothing else).

    Senders seal with it; a receiver builds it from the sender's entry in the pinned device
    list and its own party, and an envelope that starts with exactly these bytes names that
    sender device, that key and this recipient."""

    sender: Party
    recipient: Party
    header: bytes = field(init=False, repr=False, compare=False)
    # How a message from the sender's actor to the recipient's begins (the common case; a copy
    # for the sender's own other device is addressed to someone else).
    message_prefix: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.sender, Party) or not isinstance(self.recipient, Party):
            raise TypeError("a link joins two parties")
        object.__setattr__(self, "header", _frame_header(self.sender, self.recipient))
        prefix = _MESSAGE_VERSION_BYTE + _short(self.sender.actor) + _short(self.recipient.actor)
        object.__setattr__(self, "message_prefix", prefix)


class PlainMessage(NamedTuple):
    """The franked message: its fields, and ``encoded``, the exact bytes the tag commits to.

    (A named tuple rather than a frozen dataclass: one is made on every send and every receipt,
    and building a tuple costs a fifth as much. The id and times are kept as they are written
    and turned into text and datetimes when asked for.)"""

    sender: str
    recipient: str
    raw_id: bytes
    created_at: int
    expires_at: int  # 0: never
    body: Mapping[str, Any]
    encoded: bytes

    def __repr__(self) -> str:  # never the text
        return f"PlainMessage(id={self.id!r}, sender={self.sender!r}, recipient={self.recipient!r})"

    @property
    def id(self) -> str:
        """The UUID4 as lower-case text."""
        return _uuid_text(self.raw_id)

    @property
    def created(self) -> datetime:
        return datetime.fromtimestamp(self.created_at, UTC)

    @property
    def expires(self) -> datetime | None:
        """The disappearing time, or ``None``."""
        return datetime.fromtimestamp(self.expires_at, UTC) if self.expires_at else None

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


class Envelope(NamedTuple):
    """A message as one device sends or receives it, with its franking opening."""

    sender: Party
    recipient: Party
    message: PlainMessage
    franking_key: bytes
    franking_tag: bytes

    def __repr__(self) -> str:  # neither the message nor the franking key
        return f"Envelope(sender={self.sender!r}, recipient={self.recipient!r}, franking_tag={self.franking_tag!r})"


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


def _check_content(content: object, where: str) -> str:
    if not isinstance(content, str) or not 0 < len(content) <= MAX_CONTENT_CHARS:
        _fail(f"{where}: must be text of 1 to {MAX_CONTENT_CHARS} characters")
    return content


def _check_body(body: object) -> dict[str, Any]:
    if not isinstance(body, dict):
        _fail("body: must be an object")
    kind = body.get("type")
    if not isinstance(kind, str) or _BODY_TYPE.fullmatch(kind) is None:
        _fail("body.type: must be a type name such as 'Note'")
    # A Note must have text; other types (in-band protocol messages) may go without.
    if kind == "Note" or "content" in body:
        content = _check_content(body.get("content"), "body.content")
        if not _is_utf8(content):
            _fail("body.content: not valid Unicode text (a lone surrogate)")
    _check_json_value(body, "body")
    return body


def _plain_note(body: Mapping[str, Any]) -> bool:
    """A body written as kind 1: exactly a Note's type and text."""
    return len(body) == 2 and body.get("type") == "Note" and isinstance(body.get("content"), str)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate key")
    return result


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


_DECODER = json.JSONDecoder(object_pairs_hook=_unique_keys, parse_constant=_reject_constant)
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _uuid_text(raw: bytes) -> str:
    digits = raw.hex()
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"


_ACTOR_FIELDS: dict[str, bytes] = {}


def _actor_field(actor: str) -> bytes | None:
    """``actor`` as written in a message (2-byte length, UTF-8), or ``None`` when it is not an
    actor id. Remembered: a device writes to the same few actors again and again."""
    written = _ACTOR_FIELDS.get(actor) if isinstance(actor, str) else None
    if written is None:
        if not valid_actor(actor):
            return None
        if len(_ACTOR_FIELDS) >= 10_000:
            _ACTOR_FIELDS.clear()
        written = _ACTOR_FIELDS[actor] = _short(actor)
    return written


def _actor_at(encoded: bytes, offset: int, where: str, trusted: tuple[str, ...]) -> tuple[str, int]:
    (size,) = _U16.unpack_from(encoded, offset)
    end = offset + 2 + size
    if end > len(encoded):
        _fail("message: truncated")
    try:
        actor = encoded[offset + 2 : end].decode("utf-8")
    except UnicodeDecodeError:
        _fail(f"{where}: not UTF-8")
    if actor not in trusted and not valid_actor(actor):
        _fail(f"{where}: must be an actor id")
    return actor, end


def decode_message(encoded: bytes) -> PlainMessage:
    """Parse a message from its exact bytes (a received envelope's, or a revealed one in a
    report); ``EnvelopeError`` naming the part otherwise."""
    if not isinstance(encoded, bytes) or len(encoded) > MAX_MESSAGE_BYTES:
        _fail(f"message: must be bytes, at most {MAX_MESSAGE_BYTES}")
    return _decode_message(encoded, (), None)


def _decode_message(encoded: bytes, trusted: tuple[str, ...], link: Link | None) -> PlainMessage:
    """``decode_message`` for bytes already bounded. Actors in ``trusted`` were checked before
    (the receiving device's and the pinned sender's), so only their equality is needed; a
    message that starts with ``link.message_prefix`` is from and to exactly its two actors."""
    if link is not None and encoded.startswith(link.message_prefix):
        sender, recipient, offset = link.sender.actor, link.recipient.actor, len(link.message_prefix)
    else:
        if not encoded or encoded[0] != MESSAGE_VERSION:
            _fail(f"message: not a version {MESSAGE_VERSION} message")
        try:
            sender, offset = _actor_at(encoded, 1, "from", trusted)
            recipient, offset = _actor_at(encoded, offset, "to", trusted)
        except struct.error:
            _fail("message: truncated")
    if len(encoded) < offset + _FIXED_AFTER_ACTORS:
        _fail("message: truncated")
    raw_id = encoded[offset : offset + _ID_BYTES]
    if raw_id[6] >> 4 != 4 or raw_id[8] >> 6 != 2:
        _fail("id: must be a UUID4")
    created_at, expires_at = _TIMES.unpack_from(encoded, offset + _ID_BYTES)
    if created_at >= MAX_TIME:
        _fail("created: must be whole Unix seconds before the year 10000")
    if expires_at and not created_at < expires_at < MAX_TIME:
        _fail("expires: must be after created and before the year 10000")
    offset += _FIXED_AFTER_ACTORS
    kind = encoded[offset - 1]
    if kind not in (KIND_NOTE, KIND_JSON):
        _fail(f"kind: must be {KIND_NOTE} (a Note's text) or {KIND_JSON} (a JSON body)")
    try:
        text = encoded[offset:].decode("utf-8")
    except UnicodeDecodeError:
        _fail("body: not UTF-8")
    body: dict[str, Any]
    if kind == KIND_NOTE:
        if not 0 < len(text) <= MAX_CONTENT_CHARS:
            _fail(f"body.content: must be text of 1 to {MAX_CONTENT_CHARS} characters")
        body = {"type": "Note", "content": text}
    else:
        try:
            doc = _DECODER.decode(text)
        except (ValueError, RecursionError):
            _fail("body: is not JSON with unique keys")
        body = _check_body(doc)
        if _plain_note(body):
            _fail("body: a Note with only its text is written as kind 1")
    return PlainMessage(sender, recipient, raw_id, created_at, expires_at, MappingProxyType(body), encoded)


def _unix_seconds(moment: datetime, where: str) -> int:
    """An aware time as whole Unix seconds (fractions dropped), before the year 10000."""
    if not isinstance(moment, datetime) or moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{where}: time must be timezone-aware")
    seconds = (moment - _EPOCH) // _SECOND  # exact, unlike a float timestamp
    if not 0 <= seconds < MAX_TIME:
        _fail(f"{where}: must be between 1970 and the year 10000")
    return seconds


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
    _check_content(content, "content")
    if extra:
        extra = dict(extra)
        if "type" in extra or "content" in extra:
            _fail("extra: may not set type or content")
    if expires_in is not None and (not isinstance(expires_in, timedelta) or expires_in <= timedelta(0)):
        _fail("expires_in: must be positive")
    created_at = _unix_seconds(now, "now")
    expires_at = 0
    if expires_in is not None:
        expires_at = created_at + expires_in // _SECOND
        if expires_at <= created_at:
            _fail("expires_in: must be at least one second")
    if extra:
        body = _check_body({"type": "Note", "content": content, **extra})
        return _encode_message(sender, recipient, body, created_at, expires_at)
    try:
        text = content.encode("utf-8")
    except UnicodeEncodeError:
        _fail("content: not valid Unicode text (a lone surrogate)")
    return _encode_message(sender, recipient, {"type": "Note", "content": content}, created_at, expires_at, text)


def new_control_message(*, sender: str, recipient: str, body: Mapping[str, Any], now: datetime) -> PlainMessage:
    """A message that is not a ``Note`` (an in-band protocol step such as key verification):
    ``body`` has its own ``type``; clients act on it and never show it as text."""
    checked = _check_body(dict(body))
    if checked.get("type") == "Note":
        _fail("body.type: a control message is not a Note")
    return _encode_message(sender, recipient, checked, _unix_seconds(now, "now"), 0)


def _encode_message(
    sender: str, recipient: str, body: dict[str, Any], created_at: int, expires_at: int, text: bytes | None = None
) -> PlainMessage:
    """The message's bytes: ``text`` is a plain Note's content, already UTF-8; without it the
    body is written as JSON (kind 2)."""
    sender_field, recipient_field = _actor_field(sender), _actor_field(recipient)
    if sender_field is None or recipient_field is None:
        _fail("from/to: must be actor ids")
    if expires_at >= MAX_TIME:
        _fail("expires: must be before the year 10000")
    if text is None:
        try:
            payload = _ENCODER.encode(body).encode("utf-8")
        except (TypeError, ValueError, UnicodeEncodeError):
            _fail("message: has no JSON form (non-JSON values or unpaired surrogates)")
        # A fresh copy of a structured body, so the caller cannot change the message afterwards.
        body = _DECODER.decode(payload.decode("utf-8"))
    raw = bytearray(os.urandom(_ID_BYTES))
    raw[6] = raw[6] & 0x0F | 0x40  # version 4
    raw[8] = raw[8] & 0x3F | 0x80  # variant 10xx (RFC 9562)
    raw_id = bytes(raw)
    encoded = b"".join(
        (
            _MESSAGE_VERSION_BYTE,
            sender_field,
            recipient_field,
            raw_id,
            _TIMES.pack(created_at, expires_at),
            _KIND_JSON_BYTE if text is None else _KIND_NOTE_BYTE,
            payload if text is None else text,
        )
    )
    if len(encoded) > MAX_MESSAGE_BYTES:
        _fail(f"message: longer than {MAX_MESSAGE_BYTES} bytes")
    return PlainMessage(sender, recipient, raw_id, created_at, expires_at, MappingProxyType(body), encoded)


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


def seal_envelope(envelope: Envelope) -> bytes:
    """The plaintext to encrypt for one device: the frame, zero-padded to ``padded_length``."""
    return seal(
        Link(envelope.sender, envelope.recipient), envelope.message, envelope.franking_key, envelope.franking_tag
    )


def seal(link: Link, message: PlainMessage, franking_key: bytes, tag: bytes) -> bytes:
    """``seal_envelope`` for a message already franked with ``franking_key`` and ``tag``."""
    encoded = message.encoded
    size = len(link.header) + _AFTER_HEADER + len(encoded)
    if len(franking_key) != FRANKING_KEY_BYTES or len(tag) != TAG_BYTES:
        raise ValueError("a franking key and a tag are 32 bytes each")
    return b"".join(
        (link.header, franking_key, tag, _U32.pack(len(encoded)), encoded, bytes(padded_length(size) - size))
    )


def _read_frame(data: bytes) -> tuple[str, str, bytes, str, str, bytes, int]:
    """The two parties and the offset where the franking key starts; ``EnvelopeError`` when a
    part runs past the end or is not UTF-8 (the layout is in the module note)."""
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
    except struct.error:
        _fail("envelope: truncated")
    except UnicodeDecodeError:
        _fail("envelope: a party is not UTF-8")
    if any(len(k) != KEY_BYTES for k in keys):
        _fail("envelope: truncated")
    return texts[0], texts[1], keys[0], texts[2], texts[3], keys[1], offset


def open_envelope(
    plaintext: bytes,
    *,
    me: Party,
    sender_actor: str,
    sender_device: str,
    outer_tag: bytes,
    link: Link | None = None,
) -> Envelope:
    """Parse and check a decrypted envelope received by device ``me``.

    ``sender_actor``/``sender_device`` and ``outer_tag`` come from the outer (server-visible)
    envelope. ``link``: the expected sender device (from the pinned list) to ``me``; a frame
    that starts with its header is read without parsing the parties again, and anything else
    is parsed and refused part by part. Raises ``EnvelopeError`` or ``FrankingError`` as the
    module note describes.
    """
    if not isinstance(plaintext, bytes) or not plaintext or plaintext[0] != ENVELOPE_VERSION:
        _fail(f"envelope: not a version {ENVELOPE_VERSION} envelope")
    sender: Party
    if (
        link is not None
        and plaintext.startswith(link.header)
        and link.sender.actor == sender_actor
        and link.sender.device == sender_device
        and (link.recipient is me or link.recipient.same(me))
    ):
        sender, offset = link.sender, len(link.header)
        trusted: tuple[str, ...] = (me.actor, sender.actor)  # both checked when their Party was made
    else:
        from_actor, from_device, from_key, to_actor, to_device, to_key, offset = _read_frame(plaintext)
        # Unknown-key-share: the envelope must name this very device as its recipient.
        if to_actor != me.actor or to_device != me.device or not hmac.compare_digest(to_key, me.key):
            _fail("envelope: not addressed to this device")
        if from_actor != sender_actor or from_device != sender_device:
            _fail("envelope: the sender disagrees with the outer envelope")
        if DEVICE_ID.fullmatch(from_device) is None:
            _fail("envelope: the sender device id is malformed")
        sender = Party._from_frame(from_actor, from_device, from_key)
        trusted = (me.actor,)  # the sender's actor id is only what the frame says: checked below
    key = plaintext[offset : offset + FRANKING_KEY_BYTES]
    tag = plaintext[offset + FRANKING_KEY_BYTES : offset + FRANKING_KEY_BYTES + TAG_BYTES]
    try:
        (size,) = _U32.unpack_from(plaintext, offset + FRANKING_KEY_BYTES + TAG_BYTES)
    except struct.error:
        _fail("envelope: truncated")
    if size > MAX_MESSAGE_BYTES:
        _fail("envelope: message too long")
    start = offset + _AFTER_HEADER
    end = start + size
    encoded = plaintext[start:end]
    if len(encoded) != size:
        _fail("envelope: truncated")
    if len(plaintext) != padded_length(end) or plaintext.count(0, end) != len(plaintext) - end:
        _fail("envelope: padding is not zeros to the padded length")
    if not hmac.compare_digest(tag, outer_tag if isinstance(outer_tag, bytes) else b""):
        raise FrankingError("the inner franking tag differs from the outer one")
    if not hmac.compare_digest(franking_tag(key, encoded), tag):
        raise FrankingError("the franking tag does not recompute")
    message = _decode_message(encoded, trusted, link)
    if message.sender != sender.actor:
        _fail("message.from: is not the sender")
    if me.actor not in (message.recipient, message.sender):
        _fail("message: neither from nor to this device's actor")
    return Envelope(sender=sender, recipient=me, message=message, franking_key=key, franking_tag=tag)
