"""ActivityPub documents of end-to-end encrypted private messages (docs/e2ee.md).

Design note
-----------
Servers relay public keys and ciphertext only; this module is the wire format between them,
with no I/O and no cryptography of its own (keys and signatures are checked by ``crypto/``):

* the actor's ``e2ee:devices`` link and ``e2ee:masterKey`` (:func:`actor_e2ee_properties`);
* the devices collection: one ``e2ee:Device`` per active device plus the master-key-signed
  device list (:func:`devices_collection` / :func:`parse_devices_collection`);
* the claim of a one-time key: an ``e2ee:Claim`` request answered by one signed
  ``e2ee:Curve25519Key`` (:func:`claim_request`, :func:`one_time_key_document` and parsers);
* the ``Create`` of an ``e2ee:EncryptedMessage``, one per recipient actor, one ciphertext per
  target device (:func:`encrypted_create` / :func:`parse_encrypted_create`).

Terms use prefixed keys (``"e2ee:deviceId"``) in the ``urn:hearthside:e2ee#`` namespace, and
every document carries ``{"e2ee": "urn:hearthside:e2ee#"}`` in its ``@context``. Bytes travel
as standard base64 without padding (``crypto.encoding``); times as ``2026-11-21T10:00:00Z``.

What it guarantees. The parsers turn JSON into frozen dataclasses or raise
:class:`~federation.inbound_schema.InvalidActivity` (the inbox's 400), and nothing else, for any
input: ``reason`` is a short code, ``path`` names the field, and messages never hold values. A
parsed devices collection keeps only devices the actor's master key signed for *this* actor
(an item outside the signed list is ignored: device injection), with claim URLs on the
actor's own origin. A parsed encrypted message is addressed to exactly one actor on another
server, by its own author, in the one protocol we speak, within the size limits, and holds no
plaintext. The builders emit exactly these shapes, and :func:`encrypted_create` runs its own
output through the parser so a server never sends what a peer would refuse.

What it refuses (reason codes): a non-object (``not_an_object``); documents over the inbox
limits (``too_deep``, ``too_large``); a missing field (``missing``); a wrong type or malformed
value (``bad_value``), base64 (``bad_base64``) or context (``bad_context``); another document
type (``unsupported_type``); non-http(s) URLs (``not_a_url``); the Public collection in any
spelling (``public``); anything but one recipient in ``to``, the same in the activity and its
object, or any ``cc``/``bto``/``bcc``/``audience`` (``bad_addressing``); ``attributedTo`` other
than ``actor``, or a device list signed for another actor (``wrong_actor``); ids and claim URLs
off the actor's origin (``wrong_origin``); a collection whose ``id`` is not the URL fetched
(``id_mismatch``); another ``mediaType`` or ``encoding`` (``unsupported_protocol``); more than
64 ciphertexts or one over 96 KiB (``too_large``); a device listed twice (``duplicate``); a
device list that does not verify (``bad_device_list``); a device whose published keys differ
from its signed ones (``key_mismatch``); ``content``, ``name``, ``summary`` and the other
plaintext-bearing fields on a message (``plaintext``); ``e2ee:`` properties we do not define
(``unknown_property``).

What it does not do: check the HTTP signature's actor against ``actor``, that the recipient is
one of the receiving server's own actors (which refuses every other server's collections), the
sender's right to message the recipient, stamps, rollback of device lists or pinned master
keys. Those need state or keys and belong to ``server/`` and ``crypto/``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any, Final

from crypto.devicelist import DEVICE_ID, KEY_ID, OLM_PROTOCOL, DeviceEntry, DeviceList, parse_device_list
from crypto.encoding import b64decode, b64encode, parse_utc_time, utc_time
from crypto.errors import DeviceListError
from federation.documents import DocumentError
from federation.inbound_schema import (
    AS_CONTEXT,
    MAX_STRING_LENGTH,
    MAX_WRAPPED,
    PUBLIC_ALIASES,
    InvalidActivity,
    check_limits,
    is_http_url,
    join_path,
    same_origin,
)

__all__ = [
    "E2EE_CONTEXT",
    "E2EE_CONTEXT_ENTRY",
    "E2EE_NS",
    "ENCRYPTED_MESSAGE",
    "MAX_CIPHERTEXTS",
    "MAX_CIPHERTEXT_BYTES",
    "OLM_PROTOCOL",
    "ActorE2EE",
    "ClaimedKey",
    "DeviceCiphertext",
    "EncryptedMessage",
    "InvalidActivity",
    "RemoteDevices",
    "actor_e2ee_properties",
    "claim_request",
    "device_document",
    "devices_collection",
    "encrypted_create",
    "is_encrypted_message",
    "one_time_key_document",
    "parse_actor_e2ee_properties",
    "parse_claim_request",
    "parse_devices_collection",
    "parse_encrypted_create",
    "parse_one_time_key",
]

JSON = dict[str, Any]

E2EE_NS: Final = "urn:hearthside:e2ee#"
E2EE_PREFIX: Final = "e2ee"
E2EE_CONTEXT_ENTRY: Final[Mapping[str, str]] = MappingProxyType({E2EE_PREFIX: E2EE_NS})
# The documents' @context. Builders hand out fresh copies (see _context), so a caller that
# edits one document cannot change the next.
E2EE_CONTEXT: Final[list[Any]] = [AS_CONTEXT, {E2EE_PREFIX: E2EE_NS}]

ENCRYPTED_MESSAGE: Final = "e2ee:EncryptedMessage"
DEVICE: Final = "e2ee:Device"
CLAIM: Final = "e2ee:Claim"
CURVE25519_KEY: Final = "e2ee:Curve25519Key"
ED25519_KEY: Final = "e2ee:Ed25519Key"
ED25519_SIGNATURE: Final = "e2ee:Ed25519Signature"
ENCODING: Final = "base64"

MAX_CIPHERTEXTS: Final = 64
MAX_CIPHERTEXT_BYTES: Final = 96 * 1024
MAX_STAMP_LENGTH: Final = 200
MESSAGE_TYPES: Final = frozenset({0, 1})  # Olm: 0 = pre-key message, 1 = normal message
KEY_BYTES: Final = 32
SIGNATURE_BYTES: Final = 64
FRANKING_TAG_BYTES: Final = 32

_STAMP_KEY_ID = re.compile(r"[A-Za-z0-9_.:-]{1,100}")
# Base64 of at most MAX_CIPHERTEXT_BYTES: checked before decoding, so an oversized field costs
# nothing to refuse.
_MAX_CIPHERTEXT_TEXT: Final = 4 * ((MAX_CIPHERTEXT_BYTES + 2) // 3)

# Fields that carry human-readable text: an encrypted message has none outside its ciphertexts.
PLAINTEXT_FIELDS: Final = (
    "content",
    "contentMap",
    "name",
    "nameMap",
    "summary",
    "summaryMap",
    "source",
    "attachment",
    "tag",
)
ADDRESSING_FIELDS: Final = ("cc", "bto", "bcc", "audience")

_ACTIVITY_E2EE_KEYS: Final[frozenset[str]] = frozenset()
_MESSAGE_E2EE_KEYS: Final = frozenset(
    {
        "e2ee:senderDevice",
        "e2ee:ciphertexts",
        "e2ee:frankingTag",
        "e2ee:frankingStamp",
        "e2ee:stampedAt",
    }
)
_CIPHERTEXT_KEYS: Final = frozenset({"e2ee:deviceId", "e2ee:messageType", "content"})
_COLLECTION_E2EE_KEYS: Final = frozenset({"e2ee:deviceList"})
_DEVICE_E2EE_KEYS: Final = frozenset(
    {"e2ee:deviceId", "e2ee:identityKey", "e2ee:fingerprintKey", "e2ee:claim", "e2ee:protocols"}
)
_ACTOR_E2EE_KEYS: Final = frozenset({"e2ee:devices", "e2ee:masterKey"})


# --- Reading JSON values ----------------------------------------------------------------------


def _context() -> list[Any]:
    return [AS_CONTEXT, dict(E2EE_CONTEXT_ENTRY)]


def _document(doc: Any, *, max_string: int = MAX_STRING_LENGTH) -> Mapping[str, Any]:
    """A JSON object within the inbox's size limits (depth, strings, arrays, values)."""
    if not isinstance(doc, Mapping):
        raise InvalidActivity("not_an_object", "", "must be a JSON object")
    check_limits(doc, max_string=max_string)
    return doc


def _object(value: Any, path: str) -> Mapping[str, Any]:
    if value is None:
        raise InvalidActivity("missing", path, "required")
    if not isinstance(value, Mapping):
        raise InvalidActivity("bad_value", path, "must be a JSON object")
    return value


def _string(doc: Mapping[str, Any], key: str, path: str) -> str:
    value = doc.get(key)
    field = join_path(path, key)
    if value is None:
        raise InvalidActivity("missing", field, "required")
    if not isinstance(value, str):
        raise InvalidActivity("bad_value", field, "must be a string")
    return value


def _url(doc: Mapping[str, Any], key: str, path: str) -> str:
    value = _string(doc, key, path)
    if not is_http_url(value):
        raise InvalidActivity("not_a_url", join_path(path, key), "must be an absolute http(s) URL")
    return value


def _type(doc: Mapping[str, Any], expected: str, path: str) -> None:
    if _string(doc, "type", path) != expected:
        raise InvalidActivity("unsupported_type", join_path(path, "type"), f"must be {expected}")


def _device_id(value: Any, path: str) -> str:
    if value is None:
        raise InvalidActivity("missing", path, "required")
    if not isinstance(value, str) or not DEVICE_ID.fullmatch(value):
        raise InvalidActivity("bad_value", path, "must be a device id ([A-Za-z0-9_-]{4,64})")
    return value


def _bytes(value: Any, path: str, *, size: int | None = None) -> bytes:
    """Standard base64 (padded or not) of ``size`` bytes when given."""
    if value is None:
        raise InvalidActivity("missing", path, "required")
    if not isinstance(value, str):
        raise InvalidActivity("bad_value", path, "must be a base64 string")
    try:
        return b64decode(value, field=path, size=size)
    except ValueError:
        expected = f"of {size} bytes" if size is not None else "bytes"
        raise InvalidActivity("bad_base64", path, f"must be standard base64 {expected}") from None


def _canonical_b64(value: Any, path: str, *, size: int) -> str:
    """A base64 field re-encoded the one way we sign and compare it (unpadded)."""
    return b64encode(_bytes(value, path, size=size))


def _time(value: Any, path: str) -> datetime:
    if value is None:
        raise InvalidActivity("missing", path, "required")
    if not isinstance(value, str):
        raise InvalidActivity("bad_value", path, "must be a string")
    try:
        return parse_utc_time(value, field=path)
    except ValueError:
        raise InvalidActivity("bad_value", path, "must be an RFC 3339 UTC time like 2026-11-21T10:00:00Z") from None


def _is_e2ee_key(key: str) -> bool:
    return key.startswith((f"{E2EE_PREFIX}:", E2EE_NS))


def _known_e2ee_keys(doc: Mapping[str, Any], known: frozenset[str], path: str) -> None:
    """Refuse ``e2ee:`` properties we do not define: a newer peer's field we would silently
    drop could change what the message means."""
    for key in doc:
        if _is_e2ee_key(key) and key not in known:
            raise InvalidActivity("unknown_property", join_path(path, key), "is not an e2ee property we know")


def _context_check(doc: Mapping[str, Any], path: str) -> None:
    """``@context`` includes ActivityStreams and maps ``e2ee`` to our namespace, nowhere else."""
    field = join_path(path, "@context")
    context = doc.get("@context")
    entries = context if isinstance(context, list) else [context]
    if AS_CONTEXT not in entries:
        raise InvalidActivity("bad_context", field, f"must include {AS_CONTEXT}")
    prefixes = [entry[E2EE_PREFIX] for entry in entries if isinstance(entry, Mapping) and E2EE_PREFIX in entry]
    if not prefixes or any(prefix != E2EE_NS for prefix in prefixes):
        raise InvalidActivity("bad_context", field, f'must map "e2ee" to {E2EE_NS}')


def _same_origin_url(doc: Mapping[str, Any], key: str, path: str, owner: str) -> str:
    url = _url(doc, key, path)
    if not same_origin(url, owner):
        raise InvalidActivity("wrong_origin", join_path(path, key), "must be on the actor's origin")
    return url


def _key_object(doc: Mapping[str, Any], key: str, path: str, key_type: str) -> str:
    """``{"type": key_type, "publicKeyBase64": ...}`` as canonical base64 of 32 bytes."""
    field = join_path(path, key)
    value = _object(doc.get(key), field)
    _type(value, key_type, field)
    return _canonical_b64(value.get("publicKeyBase64"), join_path(field, "publicKeyBase64"), size=KEY_BYTES)


# --- Actors -----------------------------------------------------------------------------------


def actor_e2ee_properties(*, devices_url: str, master_key: str | None) -> dict[str, Any]:
    """The properties an actor document adds (with :data:`E2EE_CONTEXT_ENTRY` in its
    ``@context``): its devices collection and, once set up, its master key."""
    properties: JSON = {"e2ee:devices": devices_url}
    if master_key is not None:
        properties["e2ee:masterKey"] = {"type": ED25519_KEY, "publicKeyBase64": master_key}
    return properties


@dataclass(frozen=True, slots=True)
class ActorE2EE:
    """What a remote actor document says about its encrypted messaging."""

    devices_url: str
    master_key: str | None  # canonical unpadded base64; None when not set up yet


def parse_actor_e2ee_properties(doc: Any, *, actor_uri: str) -> ActorE2EE | None:
    """The e2ee properties of an actor document (already checked as an actor), or None when it
    has none: the actor cannot receive encrypted messages. The devices URL must be on the
    actor's origin; the master key is only a hint, trusted on first use by the client."""
    mapping = _document(doc)
    _known_e2ee_keys(mapping, _ACTOR_E2EE_KEYS, "")
    if mapping.get("e2ee:devices") is None:
        return None
    devices_url = _same_origin_url(mapping, "e2ee:devices", "", actor_uri)
    master_key = None
    if mapping.get("e2ee:masterKey") is not None:
        master_key = _key_object(mapping, "e2ee:masterKey", "", ED25519_KEY)
    return ActorE2EE(devices_url=devices_url, master_key=master_key)


# --- Devices ----------------------------------------------------------------------------------


def _device_url(devices_url: str, device_id: str) -> str:
    return f"{devices_url}/{device_id}"


def device_document(*, devices_url: str, entry: DeviceEntry) -> dict[str, Any]:
    """One ``e2ee:Device``: its keys, its claim endpoint and protocols. Never its name (names
    stay on the device)."""
    url = _device_url(devices_url, entry.device_id)
    return {
        "type": DEVICE,
        "id": url,
        "e2ee:deviceId": entry.device_id,
        "e2ee:identityKey": {"type": CURVE25519_KEY, "publicKeyBase64": entry.identity_key},
        "e2ee:fingerprintKey": {"type": ED25519_KEY, "publicKeyBase64": entry.fingerprint_key},
        "e2ee:claim": f"{url}/claim",
        "e2ee:protocols": list(entry.protocols),
    }


def devices_collection(*, actor_uri: str, devices_url: str, device_list: DeviceList | None) -> dict[str, Any]:
    """The devices collection: every device of the signed list, and the list itself. Without a
    list (no master key yet) it is empty: nobody can encrypt to unsigned devices."""
    entries = device_list.devices if device_list is not None else ()
    items = [device_document(devices_url=devices_url, entry=entry) for entry in entries]
    doc: JSON = {
        "@context": _context(),
        "type": "Collection",
        "id": devices_url,
        "attributedTo": actor_uri,
        "totalItems": len(items),
        "items": items,
    }
    if device_list is not None:
        doc["e2ee:deviceList"] = device_list.to_json()
    return doc


@dataclass(frozen=True, slots=True)
class RemoteDevices:
    """An actor's verified device list and the claim URL of each of its devices."""

    actor: str
    device_list: DeviceList | None  # None: the actor has no devices (yet)
    claim_urls: Mapping[str, str]  # device id -> claim URL; only devices of the signed list


def _signed_list(value: Any, actor_uri: str) -> DeviceList:
    try:
        device_list = parse_device_list(value)
    except DeviceListError:
        raise InvalidActivity(
            "bad_device_list", "e2ee:deviceList", "is malformed or its master-key signature does not verify"
        ) from None
    if device_list.actor != actor_uri:
        raise InvalidActivity("wrong_actor", "e2ee:deviceList.actor", "is signed for another actor")
    return device_list


def _claim_url(item: Mapping[str, Any], entry: DeviceEntry, path: str, actor_uri: str) -> str:
    """The claim URL of a device item that names a signed device, whose keys must agree."""
    _type(item, DEVICE, path)
    _known_e2ee_keys(item, _DEVICE_E2EE_KEYS, path)
    published = (
        ("e2ee:identityKey", CURVE25519_KEY, entry.identity_key),
        ("e2ee:fingerprintKey", ED25519_KEY, entry.fingerprint_key),
    )
    for key, key_type, signed in published:
        if _key_object(item, key, path, key_type) != b64encode(b64decode(signed, field=key)):
            raise InvalidActivity("key_mismatch", join_path(path, key), "differs from the signed device list")
    return _same_origin_url(item, "e2ee:claim", path, actor_uri)


def parse_devices_collection(doc: Any, *, actor_uri: str, devices_url: str) -> RemoteDevices:
    """Read an actor's devices collection, fetched from ``devices_url``.

    The signed list decides which devices exist: an item for a device it does not list is
    ignored (device injection by the server), one that contradicts its keys is refused.
    Rollback and master-key pinning are the client's checks (``crypto.devicelist``).
    """
    mapping = _document(doc)
    _context_check(mapping, "")
    _type(mapping, "Collection", "")
    if _string(mapping, "id", "") != devices_url:
        raise InvalidActivity("id_mismatch", "id", "must be the URL the collection was fetched from")
    if not same_origin(devices_url, actor_uri):
        raise InvalidActivity("wrong_origin", "id", "must be on the actor's origin")
    if _string(mapping, "attributedTo", "") != actor_uri:
        raise InvalidActivity("wrong_actor", "attributedTo", "must be the actor")
    _known_e2ee_keys(mapping, _COLLECTION_E2EE_KEYS, "")
    items = mapping.get("items", [])
    if not isinstance(items, list):
        raise InvalidActivity("bad_value", "items", "must be a list")
    if mapping.get("e2ee:deviceList") is None:
        return RemoteDevices(actor=actor_uri, device_list=None, claim_urls=MappingProxyType({}))
    device_list = _signed_list(mapping["e2ee:deviceList"], actor_uri)
    signed = {entry.device_id: entry for entry in device_list.devices}
    claim_urls: dict[str, str] = {}
    for index, item in enumerate(items):
        path = join_path("items", index)
        if not isinstance(item, Mapping):
            raise InvalidActivity("bad_value", path, "must be a JSON object")
        device_id = item.get("e2ee:deviceId")
        if not isinstance(device_id, str) or device_id not in signed:
            continue  # not in the signed list: nobody may encrypt to it
        if device_id in claim_urls:
            raise InvalidActivity("duplicate", join_path(path, "e2ee:deviceId"), "names a device listed before")
        claim_urls[device_id] = _claim_url(item, signed[device_id], path, actor_uri)
    return RemoteDevices(actor=actor_uri, device_list=device_list, claim_urls=MappingProxyType(claim_urls))


# --- Claims of one-time keys ------------------------------------------------------------------


def claim_request(*, actor_uri: str) -> dict[str, Any]:
    """The body of the HTTP-signed POST to a device's claim URL."""
    return {"@context": _context(), "type": CLAIM, "actor": actor_uri}


def parse_claim_request(doc: Any) -> str:
    """The claiming actor (the server must check it is the HTTP signature's actor)."""
    mapping = _document(doc)
    extra = set(mapping) - {"@context", "type", "actor"}
    if extra:
        raise InvalidActivity("bad_value", join_path("", min(extra)), "is not part of a claim")
    _context_check(mapping, "")
    _type(mapping, CLAIM, "")
    return _url(mapping, "actor", "")


def one_time_key_document(*, key_id: str, key: str, signature: str, fallback: bool) -> dict[str, Any]:
    """The answer to a claim: one one-time key (or the fallback key when none is left), signed
    by the device's fingerprint key."""
    return {
        "@context": _context(),
        "type": CURVE25519_KEY,
        "keyId": key_id,
        "publicKeyBase64": key,
        "signature": {"type": ED25519_SIGNATURE, "signatureValue": signature},
        "e2ee:fallback": fallback,
    }


@dataclass(frozen=True, slots=True)
class ClaimedKey:
    """A claimed key, not yet verified: ``crypto.devicelist`` checks ``signature`` against the
    device's signed fingerprint key. ``key`` and ``signature`` are canonical unpadded base64."""

    key_id: str
    key: str
    signature: str
    fallback: bool


def parse_one_time_key(doc: Any) -> ClaimedKey:
    """Read a claim's answer: a 32-byte Curve25519 key and a 64-byte Ed25519 signature."""
    mapping = _document(doc)
    _context_check(mapping, "")
    _type(mapping, CURVE25519_KEY, "")
    _known_e2ee_keys(mapping, frozenset({"e2ee:fallback"}), "")
    key_id = _string(mapping, "keyId", "")
    if not KEY_ID.fullmatch(key_id):
        raise InvalidActivity("bad_value", "keyId", "must be a key id ([A-Za-z0-9+/=_-]{1,64})")
    key = _canonical_b64(mapping.get("publicKeyBase64"), "publicKeyBase64", size=KEY_BYTES)
    signature_object = _object(mapping.get("signature"), "signature")
    _type(signature_object, ED25519_SIGNATURE, "signature")
    signature = _canonical_b64(signature_object.get("signatureValue"), "signature.signatureValue", size=SIGNATURE_BYTES)
    fallback = mapping.get("e2ee:fallback")
    if fallback is None:
        raise InvalidActivity("missing", "e2ee:fallback", "required")
    if not isinstance(fallback, bool):
        raise InvalidActivity("bad_value", "e2ee:fallback", "must be true or false")
    return ClaimedKey(key_id=key_id, key=key, signature=signature, fallback=fallback)


# --- Encrypted messages -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeviceCiphertext:
    """One Olm message for one device: ``message_type`` 0 (pre-key) or 1 (normal)."""

    device_id: str
    message_type: int
    body: bytes


@dataclass(frozen=True, slots=True)
class EncryptedMessage:
    """An ``e2ee:EncryptedMessage`` from ``actor``'s device ``sender_device`` to ``recipient``,
    with the sending server's franking stamp (docs/e2ee.md, Franking)."""

    id: str
    actor: str
    recipient: str
    sender_device: str
    published: datetime
    ciphertexts: tuple[DeviceCiphertext, ...]
    franking_tag: bytes
    franking_stamp: str
    stamped_at: datetime


def encrypted_create(message: EncryptedMessage, *, activity_id: str) -> dict[str, Any]:
    """The ``Create`` a server sends to the recipient's server (docs/e2ee.md, Server -> server).

    Raises :class:`~federation.documents.DocumentError` for a message a peer would refuse
    (the document is checked with :func:`parse_encrypted_create`).
    """
    to = [message.recipient]
    doc: JSON = {
        "@context": _context(),
        "type": "Create",
        "id": activity_id,
        "actor": message.actor,
        "to": list(to),
        "object": {
            "type": ENCRYPTED_MESSAGE,
            "id": message.id,
            "attributedTo": message.actor,
            "to": list(to),
            "published": utc_time(message.published),
            "e2ee:senderDevice": message.sender_device,
            "mediaType": OLM_PROTOCOL,
            "encoding": ENCODING,
            "e2ee:ciphertexts": [
                {
                    "e2ee:deviceId": ciphertext.device_id,
                    "e2ee:messageType": ciphertext.message_type,
                    "content": b64encode(ciphertext.body),
                }
                for ciphertext in message.ciphertexts
            ],
            "e2ee:frankingTag": b64encode(message.franking_tag),
            "e2ee:frankingStamp": message.franking_stamp,
            "e2ee:stampedAt": utc_time(message.stamped_at),
        },
    }
    try:
        parse_encrypted_create(doc)
    except InvalidActivity as exc:
        raise DocumentError(f"encrypted_create: {exc}") from None
    return doc


def _e2ee_type_names(context: Any) -> tuple[tuple[str, ...], frozenset[str], bool]:
    """From an ``@context``: the prefixes bound to our namespace, the terms bound inside it,
    and whether ``@vocab`` is our namespace (so a bare type name could be ours)."""
    prefixes = [f"{E2EE_PREFIX}:", E2EE_NS]
    terms: set[str] = set()
    vocab = False
    for entry in context if isinstance(context, list) else [context]:
        if not isinstance(entry, Mapping):
            continue
        for term, definition in entry.items():
            iri = definition.get("@id") if isinstance(definition, Mapping) else definition
            if not isinstance(term, str) or not isinstance(iri, str) or not iri.startswith(E2EE_NS):
                continue
            if term == "@vocab":
                vocab = True
            elif iri == E2EE_NS:
                prefixes.append(f"{term}:")
            else:
                terms.add(term)
    return tuple(prefixes), frozenset(terms), vocab


def is_encrypted_message(activity: Mapping[str, Any]) -> bool:
    """Whether the inbox must hand ``activity`` to :func:`parse_encrypted_create`: any type in
    our namespace, however spelled, on the activity or an object it embeds (wrapped or not),
    so no e2ee object reaches the ordinary inbox. Never raises."""
    if not isinstance(activity, Mapping):
        return False
    prefixes, terms, vocab = _e2ee_type_names(activity.get("@context"))
    node: Any = activity
    for _ in range(MAX_WRAPPED + 2):
        if not isinstance(node, Mapping):
            return False
        kinds = node.get("type")
        for kind in kinds if isinstance(kinds, list) else [kinds]:
            if isinstance(kind, str) and (kind.startswith(prefixes) or kind in terms or (vocab and ":" not in kind)):
                return True
        node = node.get("object")
    return False


def _recipient(doc: Mapping[str, Any], path: str) -> str:
    """``to``: a list of exactly one actor URL, never the Public collection."""
    field = join_path(path, "to")
    value = doc.get("to")
    if value is None:
        raise InvalidActivity("missing", field, "required")
    addresses = value if isinstance(value, list) else [value]
    for index, address in enumerate(addresses):
        if isinstance(address, str) and _is_public(address):
            place = join_path(field, index) if isinstance(value, list) else field
            raise InvalidActivity("public", place, "an encrypted message is never public")
    if not isinstance(value, list) or len(value) != 1:
        raise InvalidActivity("bad_addressing", field, "must be a list of exactly one actor")
    if not isinstance(value[0], str) or not is_http_url(value[0]):
        raise InvalidActivity("not_a_url", join_path(field, 0), "must be an absolute http(s) URL")
    return value[0]


def _is_public(address: str) -> bool:
    # Every spelling: the full IRI (http or https, any case), "as:Public" and "Public".
    return address in PUBLIC_ALIASES or address.lower().endswith("/ns/activitystreams#public")


def _no_other_addressing(doc: Mapping[str, Any], path: str) -> None:
    for key in ADDRESSING_FIELDS:
        value = doc.get(key)
        if value is None or value == []:
            continue
        addresses = value if isinstance(value, list) else [value]
        if any(isinstance(address, str) and _is_public(address) for address in addresses):
            raise InvalidActivity("public", join_path(path, key), "an encrypted message is never public")
        raise InvalidActivity("bad_addressing", join_path(path, key), "must be absent: one recipient, in to")


def _no_plaintext(doc: Mapping[str, Any], path: str) -> None:
    for key in PLAINTEXT_FIELDS:
        if key in doc:
            raise InvalidActivity("plaintext", join_path(path, key), "an encrypted message carries no plaintext")


def _ciphertext(value: Any, path: str) -> DeviceCiphertext:
    item = _object(value, path)
    extra = set(item) - _CIPHERTEXT_KEYS
    if extra:
        key = min(extra)
        reason = "unknown_property" if _is_e2ee_key(key) else "bad_value"
        raise InvalidActivity(reason, join_path(path, key), "is not part of a ciphertext")
    device_id = _device_id(item.get("e2ee:deviceId"), join_path(path, "e2ee:deviceId"))
    message_type = item.get("e2ee:messageType")
    type_path = join_path(path, "e2ee:messageType")
    if message_type is None:
        raise InvalidActivity("missing", type_path, "required")
    if type(message_type) is not int or message_type not in MESSAGE_TYPES:
        raise InvalidActivity("bad_value", type_path, "must be 0 (pre-key) or 1 (normal)")
    content = item.get("content")
    content_path = join_path(path, "content")
    if isinstance(content, str) and len(content) > _MAX_CIPHERTEXT_TEXT:
        raise InvalidActivity("too_large", content_path, f"more than {MAX_CIPHERTEXT_BYTES} bytes")
    body = _bytes(content, content_path)
    if not body:
        raise InvalidActivity("bad_value", content_path, "must not be empty")
    if len(body) > MAX_CIPHERTEXT_BYTES:
        raise InvalidActivity("too_large", content_path, f"more than {MAX_CIPHERTEXT_BYTES} bytes")
    return DeviceCiphertext(device_id=device_id, message_type=message_type, body=body)


def _ciphertexts(value: Any, path: str) -> tuple[DeviceCiphertext, ...]:
    if value is None:
        raise InvalidActivity("missing", path, "required")
    if not isinstance(value, list):
        raise InvalidActivity("bad_value", path, "must be a list")
    if not value:
        raise InvalidActivity("bad_value", path, "must not be an empty list")
    if len(value) > MAX_CIPHERTEXTS:
        raise InvalidActivity("too_large", path, f"more than {MAX_CIPHERTEXTS} items")
    result: list[DeviceCiphertext] = []
    seen: set[str] = set()
    for index, item in enumerate(value):
        ciphertext = _ciphertext(item, join_path(path, index))
        if ciphertext.device_id in seen:
            field = join_path(join_path(path, index), "e2ee:deviceId")
            raise InvalidActivity("duplicate", field, "names a device listed before")
        seen.add(ciphertext.device_id)
        result.append(ciphertext)
    return tuple(result)


def _stamp(value: Any, path: str) -> str:
    """``"<key id>.<base64 HMAC>"``; verified later, by the server that made it."""
    if value is None:
        raise InvalidActivity("missing", path, "required")
    if not isinstance(value, str):
        raise InvalidActivity("bad_value", path, "must be a string")
    if len(value) > MAX_STAMP_LENGTH:
        raise InvalidActivity("too_large", path, f"longer than {MAX_STAMP_LENGTH} characters")
    key_id, dot, mac = value.rpartition(".")
    if not dot or not _STAMP_KEY_ID.fullmatch(key_id) or not _bytes(mac, path):
        raise InvalidActivity("bad_value", path, "must be a stamp: <key id>.<base64>")
    return value


def parse_encrypted_create(activity: Any) -> EncryptedMessage:
    """Read a ``Create(e2ee:EncryptedMessage)`` from another server, refusing every shape
    docs/e2ee.md refuses (see the module's design note). Run after
    :func:`~federation.inbound_schema.validate_activity`; the caller still checks the HTTP
    signature's actor against ``actor`` and that the recipient is one of its own actors."""
    # Strings up to a whole 96 KiB ciphertext: this parser's own limit, whatever the inbox's.
    mapping = _document(activity, max_string=max(_MAX_CIPHERTEXT_TEXT, MAX_STRING_LENGTH))
    _context_check(mapping, "")
    _type(mapping, "Create", "")
    _known_e2ee_keys(mapping, _ACTIVITY_E2EE_KEYS, "")
    _no_plaintext(mapping, "")
    actor = _url(mapping, "actor", "")
    _same_origin_url(mapping, "id", "", actor)
    recipient = _recipient(mapping, "")
    _no_other_addressing(mapping, "")

    obj = _object(mapping.get("object"), "object")
    _type(obj, ENCRYPTED_MESSAGE, "object")
    _known_e2ee_keys(obj, _MESSAGE_E2EE_KEYS, "object")
    _no_plaintext(obj, "object")
    object_id = _same_origin_url(obj, "id", "object", actor)
    if _string(obj, "attributedTo", "object") != actor:
        raise InvalidActivity("wrong_actor", "object.attributedTo", "must be the activity's actor")
    if _recipient(obj, "object") != recipient:
        raise InvalidActivity("bad_addressing", "object.to", "must be the activity's recipient")
    _no_other_addressing(obj, "object")
    if same_origin(recipient, actor):
        # Never federated: a member of the sender's own server is served locally, so an address
        # there is the sender's followers or another of its collections.
        raise InvalidActivity("bad_addressing", "to[0]", "must be an actor on another server")
    if _string(obj, "mediaType", "object") != OLM_PROTOCOL:
        raise InvalidActivity("unsupported_protocol", "object.mediaType", f"must be {OLM_PROTOCOL}")
    if _string(obj, "encoding", "object") != ENCODING:
        raise InvalidActivity("unsupported_protocol", "object.encoding", f"must be {ENCODING}")

    return EncryptedMessage(
        id=object_id,
        actor=actor,
        recipient=recipient,
        sender_device=_device_id(obj.get("e2ee:senderDevice"), "object.e2ee:senderDevice"),
        published=_time(obj.get("published"), "object.published"),
        ciphertexts=_ciphertexts(obj.get("e2ee:ciphertexts"), "object.e2ee:ciphertexts"),
        franking_tag=_bytes(obj.get("e2ee:frankingTag"), "object.e2ee:frankingTag", size=FRANKING_TAG_BYTES),
        franking_stamp=_stamp(obj.get("e2ee:frankingStamp"), "object.e2ee:frankingStamp"),
        stamped_at=_time(obj.get("e2ee:stampedAt"), "object.e2ee:stampedAt"),
    )
