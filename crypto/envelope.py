"""The inner plaintext of an encrypted private message (docs/e2ee.md "Messages").

How it works:

- The **message** is what the sender franks and every target device receives unchanged:
  JCS of ``{"id": uuid4, "from", "to", "created", "expires", "body"}``, where ``body`` is a
  restricted ActivityStreams object (``{"type": "Note", "content": text, ...}``). The
  disappearing-message time (``expires``) lives here, inside the ciphertext, so no server can
  change it.
- The **envelope** is what one target device decrypts: JCS of ``{"v": 1, "sender",
  "recipient", "message", "frankingKey", "frankingTag", "pad"}``. ``sender`` and
  ``recipient`` name actor, device id and Ed25519 fingerprint key, because Olm itself does not
  bind identities to the plaintext (unknown-key-share: a message for Bob's device that Carol
  re-encrypts to Dave must not look to Dave as if Alice wrote to him).
- ``pad`` is a run of ``=`` that makes the envelope exactly one of ``BUCKETS`` bytes long, so
  ciphertext lengths reveal only the bucket (research e2ee.md §7.1).

What ``open_envelope`` refuses: a length that is not a bucket, anything but canonical JSON of
exactly this shape (``EnvelopeError`` naming the field); an envelope whose recipient is not
this device (actor, device id and key); a sender that disagrees with the outer envelope or
with the message's ``from``; a message that involves neither us as recipient nor us as sender
(the sender's other devices get copies whose ``to`` is the peer); an inner franking tag that
differs from the outer one or does not recompute (``FrankingError``).

What it leaves to the caller (``crypto/messaging.py``): that the sender's device is in the
sender's signed device list with the returned ``sender.ed25519`` and the Olm session's identity
key, and that the message id was not seen before.
"""

from __future__ import annotations

import copy
import hmac
import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any, NoReturn

from crypto.devicelist import DEVICE_ID, KEY_BYTES, valid_actor
from crypto.encoding import b64decode, b64encode, canonical_json, parse_utc_time, utc_second, utc_time
from crypto.errors import EnvelopeError, FrankingError
from crypto.franking import FRANKING_KEY_BYTES, TAG_BYTES, check_franking_tag, franking_tag

BUCKETS = (256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536)
MAX_ENVELOPE_BYTES = BUCKETS[-1]
MAX_CONTENT_CHARS = 20_000
ENVELOPE_VERSION = 1
MAX_BODY_DEPTH = 16

_UUID4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
_BODY_TYPE = re.compile(r"[A-Za-z][A-Za-z0-9_:-]{0,63}")
_MESSAGE_FIELDS = frozenset({"id", "from", "to", "created", "expires", "body"})
_ENVELOPE_FIELDS = frozenset({"v", "sender", "recipient", "message", "frankingKey", "frankingTag", "pad"})
_PARTY_FIELDS = frozenset({"actor", "device", "ed25519"})
_SAFE_INTEGER = 2**53 - 1


@dataclass(frozen=True, slots=True)
class Party:
    """One end of a message: actor id, device id and the device's Ed25519 fingerprint key."""

    actor: str
    device: str
    ed25519: str

    def to_json(self) -> dict[str, Any]:
        return {"actor": self.actor, "device": self.device, "ed25519": self.ed25519}


@dataclass(frozen=True, slots=True)
class PlainMessage:
    """The franked message. ``body`` is a read-only copy; times are UTC, whole seconds."""

    id: str
    sender: str
    recipient: str
    created: datetime
    expires: datetime | None
    body: Mapping[str, Any] = field(repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "created", utc_second(self.created))
        if self.expires is not None:
            object.__setattr__(self, "expires", utc_second(self.expires))
        object.__setattr__(self, "body", MappingProxyType(copy.deepcopy(dict(self.body))))

    @property
    def content(self) -> str:
        """The text of a ``Note`` (``""`` for a body without ``content``)."""
        content = self.body.get("content", "")
        return content if isinstance(content, str) else ""

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "from": self.sender,
            "to": self.recipient,
            "created": utc_time(self.created),
            "expires": None if self.expires is None else utc_time(self.expires),
            "body": copy.deepcopy(dict(self.body)),
        }

    def canonical(self) -> bytes:
        """The franked bytes: JCS of ``to_json()``."""
        return canonical_json(self.to_json())


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


def _fields(value: object, expected: frozenset[str], where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        _fail(f"{where}: must be an object")
    for name in value:
        if name not in expected:
            shown = name if isinstance(name, str) and len(name) <= 64 else "?"
            _fail(f"{where}: unknown field {shown!r}")
    for name in sorted(expected):
        if name not in value:
            _fail(f"{where}: missing field {name!r}")
    return value


def _check_json_value(value: object, where: str, depth: int = 0) -> None:
    if depth > MAX_BODY_DEPTH:
        _fail(f"{where}: nested deeper than {MAX_BODY_DEPTH}")
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, int):
        if abs(value) > _SAFE_INTEGER:
            _fail(f"{where}: integer out of the JSON-safe range")
        return
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            _fail(f"{where}: not a finite number")
        return
    if isinstance(value, str):
        if not _is_utf8(value):
            _fail(f"{where}: not valid Unicode text")
        return
    if isinstance(value, list):
        for item in value:
            _check_json_value(item, where, depth + 1)
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str) or not _is_utf8(key):
                _fail(f"{where}: object keys must be text")
            _check_json_value(item, where, depth + 1)
        return
    _fail(f"{where}: not a JSON value")


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _time(value: object, where: str) -> datetime:
    if not isinstance(value, str):
        _fail(f"{where}: must be a time string")
    try:
        return parse_utc_time(value, field=where)
    except ValueError as exc:
        raise EnvelopeError(str(exc)) from None


def _check_body(body: object) -> Mapping[str, Any]:
    if not isinstance(body, Mapping):
        _fail("body: must be an object")
    _check_json_value(body, "body")
    kind = body.get("type")
    if not isinstance(kind, str) or _BODY_TYPE.fullmatch(kind) is None:
        _fail("body.type: must be a type name such as 'Note'")
    # A Note must have text; other types (in-band protocol messages) may go without.
    if kind == "Note" or "content" in body:
        content = body.get("content")
        if not isinstance(content, str) or not 0 < len(content) <= MAX_CONTENT_CHARS:
            _fail(f"body.content: must be text of 1 to {MAX_CONTENT_CHARS} characters")
    return body


def parse_message(data: Any) -> PlainMessage:
    """Parse an untrusted message object; ``EnvelopeError`` naming the field otherwise."""
    doc = _fields(data, _MESSAGE_FIELDS, "message")
    message_id = doc["id"]
    if not isinstance(message_id, str) or _UUID4.fullmatch(message_id) is None:
        _fail("id: must be a lower-case UUID4")
    for name in ("from", "to"):
        if not valid_actor(doc[name]):
            _fail(f"{name}: must be an actor id")
    created = _time(doc["created"], "created")
    expires = None if doc["expires"] is None else _time(doc["expires"], "expires")
    if expires is not None and expires <= created:
        _fail("expires: must be after created")
    body = _check_body(doc["body"])
    message = PlainMessage(
        id=message_id, sender=doc["from"], recipient=doc["to"], created=created, expires=expires, body=body
    )
    try:
        size = len(message.canonical())
    except ValueError:
        _fail("body: has no canonical JSON form")
    if size > MAX_ENVELOPE_BYTES:
        _fail(f"message: longer than {MAX_ENVELOPE_BYTES} bytes")
    return message


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
    created = utc_second(now)
    expires = None if expires_in is None else utc_second(created + expires_in)
    return parse_message(
        {
            "id": str(uuid.uuid4()),
            "from": sender,
            "to": recipient,
            "created": utc_time(created),
            "expires": None if expires is None else utc_time(expires),
            "body": {"type": "Note", "content": content, **extra},
        }
    )


def make_envelope(*, sender: Party, recipient: Party, message: PlainMessage, franking_key: bytes) -> Envelope:
    """The envelope of ``message`` for one target device, with its franking tag computed.

    ``EnvelopeError`` for a malformed party (the receiver would refuse it)."""
    if not isinstance(franking_key, bytes) or len(franking_key) != FRANKING_KEY_BYTES:
        raise ValueError("a franking key is 32 bytes")
    _parse_party(sender.to_json(), "sender")
    _parse_party(recipient.to_json(), "recipient")
    return Envelope(
        sender=sender,
        recipient=recipient,
        message=message,
        franking_key=franking_key,
        franking_tag=franking_tag(franking_key, message.canonical()),
    )


def padded_length(size: int) -> int:
    """The smallest bucket that holds ``size`` bytes; ``EnvelopeError`` above the largest."""
    if size < 0:
        raise ValueError("size must not be negative")
    for bucket in BUCKETS:
        if size <= bucket:
            return bucket
    _fail(f"envelope of {size} bytes is longer than {MAX_ENVELOPE_BYTES} bytes")


def _envelope_json(envelope: Envelope, pad: str) -> dict[str, Any]:
    return {
        "v": ENVELOPE_VERSION,
        "sender": envelope.sender.to_json(),
        "recipient": envelope.recipient.to_json(),
        "message": envelope.message.to_json(),
        "frankingKey": b64encode(envelope.franking_key),
        "frankingTag": b64encode(envelope.franking_tag),
        "pad": pad,
    }


def seal_envelope(envelope: Envelope) -> bytes:
    """The plaintext to encrypt for one device: JCS, padded to exactly a bucket's length."""
    unpadded = len(canonical_json(_envelope_json(envelope, "")))
    # "=" is written as itself in JCS, so each pad character adds exactly one byte.
    sealed = canonical_json(_envelope_json(envelope, "=" * (padded_length(unpadded) - unpadded)))
    if len(sealed) not in BUCKETS:  # pragma: no cover - guards the arithmetic above
        _fail("padding failed")
    return sealed


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


def _parse_party(value: object, where: str) -> Party:
    doc = _fields(value, _PARTY_FIELDS, where)
    if not valid_actor(doc["actor"]):
        _fail(f"{where}.actor: must be an actor id")
    device = doc["device"]
    if not isinstance(device, str) or DEVICE_ID.fullmatch(device) is None:
        _fail(f"{where}.device: must match {DEVICE_ID.pattern}")
    _bytes(doc["ed25519"], f"{where}.ed25519", KEY_BYTES)
    return Party(actor=doc["actor"], device=device, ed25519=doc["ed25519"])


def _bytes(value: object, where: str, size: int) -> bytes:
    if not isinstance(value, str):
        _fail(f"{where}: must be a base64 string")
    try:
        return b64decode(value, field=where, size=size)
    except ValueError as exc:
        raise EnvelopeError(str(exc)) from None


def _same_party(a: Party, b: Party) -> bool:
    try:
        key_a = b64decode(a.ed25519, field="ed25519", size=KEY_BYTES)
        key_b = b64decode(b.ed25519, field="ed25519", size=KEY_BYTES)
    except ValueError:
        return False
    return a.actor == b.actor and a.device == b.device and hmac.compare_digest(key_a, key_b)


def open_envelope(plaintext: bytes, *, me: Party, sender_actor: str, sender_device: str, outer_tag: bytes) -> Envelope:
    """Parse and check a decrypted envelope received by device ``me``.

    ``sender_actor``/``sender_device`` and ``outer_tag`` come from the outer (server-visible)
    envelope. Raises ``EnvelopeError`` or ``FrankingError`` as the module note describes.
    """
    if not isinstance(plaintext, bytes) or len(plaintext) not in BUCKETS:
        _fail("envelope length is not one of the padding buckets")
    try:
        doc = json.loads(plaintext.decode("utf-8"), parse_constant=_reject_constant)
        canonical = canonical_json(doc)
    except (ValueError, RecursionError):
        _fail("envelope is not JSON")
    if canonical != plaintext:
        _fail("envelope is not canonical JSON (RFC 8785)")
    fields = _fields(doc, _ENVELOPE_FIELDS, "envelope")
    version = fields["v"]
    if type(version) is not int or version != ENVELOPE_VERSION:
        _fail(f"v: must be {ENVELOPE_VERSION}")
    pad = fields["pad"]
    if not isinstance(pad, str) or pad.strip("=") != "":
        _fail("pad: must be '=' characters only")
    sender = _parse_party(fields["sender"], "sender")
    recipient = _parse_party(fields["recipient"], "recipient")
    message = parse_message(fields["message"])
    franking_key = _bytes(fields["frankingKey"], "frankingKey", FRANKING_KEY_BYTES)
    inner_tag = _bytes(fields["frankingTag"], "frankingTag", TAG_BYTES)

    if not _same_party(recipient, me):
        _fail("not addressed to this device")
    if sender.actor != sender_actor or sender.device != sender_device:
        _fail("sender does not match the outer envelope")
    if message.sender != sender.actor:
        _fail("from: does not match the sending actor")
    if me.actor not in (message.recipient, message.sender):
        _fail("to: the message is not for this member")
    if not isinstance(outer_tag, bytes) or not hmac.compare_digest(inner_tag, outer_tag):
        raise FrankingError("the inner franking tag differs from the outer one")
    check_franking_tag(franking_key, message.canonical(), inner_tag)
    return Envelope(
        sender=sender, recipient=recipient, message=message, franking_key=franking_key, franking_tag=inner_tag
    )
