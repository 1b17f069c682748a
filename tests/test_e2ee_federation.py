"""federation/e2ee.py: the ActivityPub side of encrypted messages (docs/e2ee.md).

Every document round-trips through its parser; every refusal rule gets the document it refuses
(research/e2ee.md §8(d): test 19 device injection, test 23 addressing, test 26 fuzz). Device
lists are really signed (crypto.devicelist); keys and ciphertexts are random bytes, as this
layer never decrypts.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crypto.devicelist import DeviceEntry, DeviceList, MasterKey, sign_device_list
from crypto.encoding import b64encode
from federation.documents import DocumentError
from federation.e2ee import (
    E2EE_CONTEXT,
    E2EE_CONTEXT_ENTRY,
    E2EE_NS,
    ENCRYPTED_MESSAGE,
    MAX_CIPHERTEXT_BYTES,
    MAX_CIPHERTEXTS,
    OLM_PROTOCOL,
    ActorE2EE,
    ClaimedKey,
    DeviceCiphertext,
    EncryptedMessage,
    InvalidActivity,
    RemoteDevices,
    actor_e2ee_properties,
    claim_request,
    device_document,
    devices_collection,
    encrypted_create,
    is_encrypted_message,
    one_time_key_document,
    parse_actor_e2ee_properties,
    parse_claim_request,
    parse_devices_collection,
    parse_encrypted_create,
    parse_one_time_key,
)
from federation.inbound_schema import validate_activity

AS = "https://www.w3.org/ns/activitystreams"
ALICE = "https://a.example/users/alice"
BOB = "https://b.example/users/bob"
MALLORY = "https://evil.example/users/mallory"
DEVICES = f"{ALICE}/devices"
SIGNED_AT = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
MASTER = MasterKey.generate()


def key_bytes(label: str, size: int = 32) -> bytes:
    """Deterministic stand-in key material: this layer never uses it as a key."""
    return hashlib.sha512(label.encode()).digest()[:size]


def b64(label: str, size: int = 32) -> str:
    return b64encode(key_bytes(label, size))


def entry(device_id: str) -> DeviceEntry:
    return DeviceEntry(device_id=device_id, identity_key=b64(f"id-{device_id}"), fingerprint_key=b64(f"fp-{device_id}"))


def signed_list(*device_ids: str, actor: str = ALICE, master: MasterKey = MASTER, version: int = 3) -> DeviceList:
    return sign_device_list(
        master, actor=actor, version=version, devices=[entry(d) for d in device_ids], signed_at=SIGNED_AT
    )


def reason_of(call: Callable[[], object]) -> tuple[str, str]:
    with pytest.raises(InvalidActivity) as caught:
        call()
    return caught.value.reason, caught.value.path


# --- Actors -----------------------------------------------------------------------------------


def test_actor_properties__master_key_only_when_set() -> None:
    assert actor_e2ee_properties(devices_url=DEVICES, master_key=None) == {"e2ee:devices": DEVICES}
    with_key = actor_e2ee_properties(devices_url=DEVICES, master_key=MASTER.public_key)
    assert with_key["e2ee:masterKey"] == {"type": "e2ee:Ed25519Key", "publicKeyBase64": MASTER.public_key}
    assert dict(E2EE_CONTEXT_ENTRY) == {"e2ee": E2EE_NS}
    assert E2EE_CONTEXT == [AS, {"e2ee": "urn:hearthside:e2ee#"}]


def test_actor_properties__round_trip() -> None:
    actor = {"id": ALICE, **actor_e2ee_properties(devices_url=DEVICES, master_key=MASTER.public_key)}
    assert parse_actor_e2ee_properties(actor, actor_uri=ALICE) == ActorE2EE(DEVICES, MASTER.public_key)
    assert parse_actor_e2ee_properties({"id": ALICE}, actor_uri=ALICE) is None


def test_actor_properties__rejects_devices_on_another_origin() -> None:
    actor = actor_e2ee_properties(devices_url=f"{MALLORY}/devices", master_key=None)
    assert reason_of(lambda: parse_actor_e2ee_properties(actor, actor_uri=ALICE)) == ("wrong_origin", "e2ee:devices")


def test_actor_properties__rejects_short_master_key() -> None:
    actor = actor_e2ee_properties(devices_url=DEVICES, master_key=b64("m", 31))
    reason, path = reason_of(lambda: parse_actor_e2ee_properties(actor, actor_uri=ALICE))
    assert (reason, path) == ("bad_base64", "e2ee:masterKey.publicKeyBase64")


# --- Devices ----------------------------------------------------------------------------------


def test_device_document__has_keys_and_claim_but_no_name() -> None:
    doc = device_document(devices_url=DEVICES, entry=entry("K7QX"))
    assert doc == {
        "type": "e2ee:Device",
        "id": f"{DEVICES}/K7QX",
        "e2ee:deviceId": "K7QX",
        "e2ee:identityKey": {"type": "e2ee:Curve25519Key", "publicKeyBase64": b64("id-K7QX")},
        "e2ee:fingerprintKey": {"type": "e2ee:Ed25519Key", "publicKeyBase64": b64("fp-K7QX")},
        "e2ee:claim": f"{DEVICES}/K7QX/claim",
        "e2ee:protocols": [OLM_PROTOCOL],
    }


def collection(device_list: DeviceList | None = None) -> dict[str, Any]:
    chosen = device_list if device_list is not None else signed_list("K7QX", "Q9RT")
    return devices_collection(actor_uri=ALICE, devices_url=DEVICES, device_list=chosen)


def parse_collection(doc: Any) -> RemoteDevices:
    return parse_devices_collection(doc, actor_uri=ALICE, devices_url=DEVICES)


def test_devices_collection__round_trip() -> None:
    device_list = signed_list("K7QX", "Q9RT")
    doc = collection(device_list)
    assert doc["@context"] == E2EE_CONTEXT and doc["totalItems"] == 2
    assert doc["e2ee:deviceList"] == device_list.to_json()
    parsed = parse_collection(doc)
    assert parsed.actor == ALICE
    assert parsed.device_list == device_list
    assert dict(parsed.claim_urls) == {"K7QX": f"{DEVICES}/K7QX/claim", "Q9RT": f"{DEVICES}/Q9RT/claim"}


def test_devices_collection__without_list_has_no_devices() -> None:
    doc = devices_collection(actor_uri=ALICE, devices_url=DEVICES, device_list=None)
    assert doc["items"] == [] and "e2ee:deviceList" not in doc
    assert parse_collection(doc) == RemoteDevices(actor=ALICE, device_list=None, claim_urls={})


def test_devices_collection__ignores_injected_device() -> None:
    doc = collection()
    injected = device_document(devices_url=DEVICES, entry=entry("EVIL"))
    doc["items"].append(injected)
    doc["totalItems"] = 3
    parsed = parse_collection(doc)
    assert parsed.device_list is not None
    assert [device.device_id for device in parsed.device_list.devices] == ["K7QX", "Q9RT"]
    assert "EVIL" not in parsed.claim_urls


def test_devices_collection__rejects_device_added_to_signed_list() -> None:
    doc = collection()
    doc["e2ee:deviceList"]["devices"].append(entry("ZZZZ").to_json())  # not re-signed
    assert reason_of(lambda: parse_collection(doc)) == ("bad_device_list", "e2ee:deviceList")


def test_devices_collection__rejects_list_signed_for_another_actor() -> None:
    doc = collection(signed_list("K7QX", actor=MALLORY))
    assert reason_of(lambda: parse_collection(doc)) == ("wrong_actor", "e2ee:deviceList.actor")


def test_devices_collection__rejects_claim_url_on_another_origin() -> None:
    doc = collection()
    doc["items"][0]["e2ee:claim"] = f"{MALLORY}/claim"
    assert reason_of(lambda: parse_collection(doc)) == ("wrong_origin", "items[0].e2ee:claim")


def test_devices_collection__rejects_claim_url_on_another_port() -> None:
    doc = collection()
    doc["items"][1]["e2ee:claim"] = "https://a.example:8443/users/alice/devices/Q9RT/claim"
    assert reason_of(lambda: parse_collection(doc)) == ("wrong_origin", "items[1].e2ee:claim")


def test_devices_collection__rejects_claim_url_that_is_not_http() -> None:
    doc = collection()
    doc["items"][0]["e2ee:claim"] = "ftp://a.example/claim"
    assert reason_of(lambda: parse_collection(doc)) == ("not_a_url", "items[0].e2ee:claim")


def test_devices_collection__rejects_published_key_that_differs_from_signed_one() -> None:
    doc = collection()
    doc["items"][0]["e2ee:identityKey"]["publicKeyBase64"] = b64("substituted")
    assert reason_of(lambda: parse_collection(doc)) == ("key_mismatch", "items[0].e2ee:identityKey")


def test_devices_collection__rejects_device_listed_twice() -> None:
    doc = collection()
    doc["items"].append(copy.deepcopy(doc["items"][0]))
    assert reason_of(lambda: parse_collection(doc)) == ("duplicate", "items[2].e2ee:deviceId")


def test_devices_collection__rejects_other_url_than_fetched() -> None:
    doc = collection()
    doc["id"] = f"{ALICE}/other"
    assert reason_of(lambda: parse_collection(doc)) == ("id_mismatch", "id")


def test_devices_collection__rejects_devices_url_on_another_origin() -> None:
    elsewhere = f"{MALLORY}/devices"
    doc = devices_collection(actor_uri=ALICE, devices_url=elsewhere, device_list=signed_list("K7QX"))
    reason = reason_of(lambda: parse_devices_collection(doc, actor_uri=ALICE, devices_url=elsewhere))
    assert reason == ("wrong_origin", "id")


def test_devices_collection__rejects_other_owner() -> None:
    doc = collection()
    doc["attributedTo"] = MALLORY
    assert reason_of(lambda: parse_collection(doc)) == ("wrong_actor", "attributedTo")


def test_devices_collection__rejects_unknown_e2ee_property() -> None:
    doc = collection()
    doc["e2ee:extraDevices"] = []
    assert reason_of(lambda: parse_collection(doc)) == ("unknown_property", "e2ee:extraDevices")


# --- Claims -----------------------------------------------------------------------------------


def test_claim_request__round_trip() -> None:
    doc = claim_request(actor_uri=BOB)
    assert doc == {"@context": E2EE_CONTEXT, "type": "e2ee:Claim", "actor": BOB}
    assert parse_claim_request(doc) == BOB


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"extra": 1}, ("bad_value", "extra")),
        ({"type": "Follow"}, ("unsupported_type", "type")),
        ({"actor": "bob"}, ("not_a_url", "actor")),
        ({"actor": {"id": BOB}}, ("bad_value", "actor")),
        ({"@context": AS}, ("bad_context", "@context")),
    ],
)
def test_claim_request__rejects_malformed(change: dict[str, Any], expected: tuple[str, str]) -> None:
    doc = {**claim_request(actor_uri=BOB), **change}
    assert reason_of(lambda: parse_claim_request(doc)) == expected


def one_time_key(**change: Any) -> dict[str, Any]:
    doc = one_time_key_document(key_id="AAAAAAAAAAE", key=b64("otk"), signature=b64("sig", 64), fallback=False)
    doc.update(change)
    return doc


def test_one_time_key__round_trip() -> None:
    doc = one_time_key()
    assert doc["signature"] == {"type": "e2ee:Ed25519Signature", "signatureValue": b64("sig", 64)}
    assert parse_one_time_key(doc) == ClaimedKey("AAAAAAAAAAE", b64("otk"), b64("sig", 64), False)
    assert parse_one_time_key(one_time_key(**{"e2ee:fallback": True})).fallback is True


def test_one_time_key__padded_base64_reads_as_the_signed_unpadded_text() -> None:
    padded = b64("otk") + "="
    assert parse_one_time_key(one_time_key(publicKeyBase64=padded)).key == b64("otk")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"publicKeyBase64": b64("otk", 31)}, ("bad_base64", "publicKeyBase64")),
        ({"publicKeyBase64": b64("otk", 33)}, ("bad_base64", "publicKeyBase64")),
        ({"publicKeyBase64": b64("otk").replace("A", "-").replace("+", "-") + "-"}, ("bad_base64", "publicKeyBase64")),
        ({"signature": {"type": "e2ee:Ed25519Signature", "signatureValue": b64("s", 63)}},
         ("bad_base64", "signature.signatureValue")),
        ({"signature": {"type": "RsaSignature2017", "signatureValue": b64("s", 64)}},
         ("unsupported_type", "signature.type")),
        ({"signature": b64("s", 64)}, ("bad_value", "signature")),
        ({"e2ee:fallback": "false"}, ("bad_value", "e2ee:fallback")),
        ({"e2ee:fallback": None}, ("missing", "e2ee:fallback")),
        ({"e2ee:reusable": True}, ("unknown_property", "e2ee:reusable")),
        ({"keyId": "a b"}, ("bad_value", "keyId")),
        ({"keyId": ""}, ("bad_value", "keyId")),
        ({"type": "e2ee:Ed25519Key"}, ("unsupported_type", "type")),
    ],
)  # fmt: skip
def test_one_time_key__rejects_malformed(change: dict[str, Any], expected: tuple[str, str]) -> None:
    assert reason_of(lambda: parse_one_time_key(one_time_key(**change))) == expected


# --- Encrypted messages -----------------------------------------------------------------------

STAMP = f"k2026.{b64('stamp')}"


def message(**change: Any) -> EncryptedMessage:
    fields: dict[str, Any] = {
        "id": "https://a.example/e2ee/messages/123",
        "actor": ALICE,
        "recipient": BOB,
        "sender_device": "K7QX",
        "published": datetime(2026, 11, 21, 10, 0, tzinfo=UTC),
        "ciphertexts": (
            DeviceCiphertext("P2ZM", 0, key_bytes("ct-bob", 64)),
            DeviceCiphertext("R4ND", 1, key_bytes("ct-bob-2", 48)),
        ),
        "franking_tag": key_bytes("tag"),
        "franking_stamp": STAMP,
        "stamped_at": datetime(2026, 11, 21, 10, 0, 1, tzinfo=UTC),
    }
    fields.update(change)
    return EncryptedMessage(**fields)


def activity() -> dict[str, Any]:
    return encrypted_create(message(), activity_id="https://a.example/e2ee/messages/123/activity")


def docs_example() -> dict[str, Any]:
    """docs/e2ee.md "Server -> server", verbatim but for real base64 in place of placeholders."""
    return {
        "@context": ["https://www.w3.org/ns/activitystreams", {"e2ee": "urn:hearthside:e2ee#"}],
        "type": "Create", "id": "https://a.example/e2ee/messages/123/activity",
        "actor": "https://a.example/users/alice", "to": ["https://b.example/users/bob"],
        "object": {"type": "e2ee:EncryptedMessage", "id": "https://a.example/e2ee/messages/123",
                   "attributedTo": "https://a.example/users/alice", "to": ["https://b.example/users/bob"],
                   "published": "2026-11-21T10:00:00Z",
                   "e2ee:senderDevice": "K7QX",
                   "mediaType": "application/vnd.hearthside.olm.v1", "encoding": "base64",
                   "e2ee:ciphertexts": [{"e2ee:deviceId": "P2ZM", "e2ee:messageType": 0,
                                         "content": b64("ct", 64)}],
                   "e2ee:frankingTag": b64("tag"),
                   "e2ee:frankingStamp": STAMP, "e2ee:stampedAt": "2026-11-21T10:00:00Z"}}  # fmt: skip


def test_encrypted_create__docs_example_passes_the_inbox_schema_and_the_parser() -> None:
    doc = docs_example()
    validate_activity(doc)
    parsed = parse_encrypted_create(doc)
    assert (parsed.actor, parsed.recipient, parsed.sender_device) == (ALICE, BOB, "K7QX")
    assert parsed.ciphertexts == (DeviceCiphertext("P2ZM", 0, key_bytes("ct", 64)),)
    assert parsed.franking_tag == key_bytes("tag") and parsed.franking_stamp == STAMP
    assert parsed.published == parsed.stamped_at == datetime(2026, 11, 21, 10, 0, tzinfo=UTC)


def test_encrypted_create__builds_the_docs_shape() -> None:
    built = encrypted_create(
        message(ciphertexts=(DeviceCiphertext("P2ZM", 0, key_bytes("ct", 64)),), stamped_at=message().published),
        activity_id="https://a.example/e2ee/messages/123/activity",
    )
    assert built == docs_example()


def test_encrypted_create__round_trip() -> None:
    doc = activity()
    validate_activity(doc)
    assert parse_encrypted_create(doc) == message()


def test_encrypted_create__largest_bucket_ciphertext_passes_the_inbox() -> None:
    # A 65,536-byte envelope (the largest padding bucket) plus Olm's pre-key overhead.
    body = key_bytes("big", 64) * (65_800 // 64)
    doc = encrypted_create(message(ciphertexts=(DeviceCiphertext("P2ZM", 0, body),)), activity_id=f"{ALICE}/a/1")
    validate_activity(doc)
    assert parse_encrypted_create(doc).ciphertexts[0].body == body


def test_encrypted_create__refuses_to_build_what_a_peer_would_refuse() -> None:
    with pytest.raises(DocumentError, match=r"to\[0\]"):
        encrypted_create(message(recipient=f"{ALICE}/followers"), activity_id=f"{ALICE}/a/1")
    with pytest.raises(DocumentError):
        encrypted_create(message(ciphertexts=()), activity_id=f"{ALICE}/a/1")
    with pytest.raises(DocumentError):
        encrypted_create(message(franking_stamp="no stamp"), activity_id=f"{ALICE}/a/1")


DELETE = object()


def changed(*edits: tuple[tuple[str | int, ...], Any]) -> dict[str, Any]:
    """The valid activity with each ``(path, value)`` set (``DELETE`` removes the key)."""
    doc = activity()
    for path, value in edits:
        node: Any = doc
        for part in path[:-1]:
            node = node[part]
        if value is DELETE:
            del node[path[-1]]
        else:
            node[path[-1]] = value
    return doc


def both(key: str, value: Any) -> tuple[tuple[tuple[str | int, ...], Any], ...]:
    return ((key,), value), (("object", key), value)


def ciphertext(device_id: str = "P2ZM", message_type: Any = 0, content: Any = None) -> dict[str, Any]:
    return {
        "e2ee:deviceId": device_id,
        "e2ee:messageType": message_type,
        "content": b64("c", 40) if content is None else content,
    }


CT = ("object", "e2ee:ciphertexts")
FOLLOWERS = f"{ALICE}/followers"

REFUSALS: list[tuple[str, tuple[tuple[tuple[str | int, ...], Any], ...], tuple[str, str]]] = [
    # Addressing (research §8(d) test 23): Public in every spelling, collections, more than one.
    ("to Public", both("to", ["https://www.w3.org/ns/activitystreams#Public"]), ("public", "to[0]")),
    ("to as:Public", both("to", ["as:Public"]), ("public", "to[0]")),
    ("to Public, short", both("to", ["Public"]), ("public", "to[0]")),
    ("to Public, http", both("to", ["http://www.w3.org/ns/activitystreams#Public"]), ("public", "to[0]")),
    ("to Public, bare string", both("to", "as:Public"), ("public", "to")),
    ("object to Public", ((("object", "to"), [BOB, "as:Public"]),), ("public", "object.to[1]")),
    ("to Public besides", both("to", [BOB, "https://www.w3.org/ns/activitystreams#Public"]), ("public", "to[1]")),
    ("cc Public", ((("cc",), ["as:Public"]),), ("public", "cc")),
    ("to followers", both("to", [FOLLOWERS]), ("bad_addressing", "to[0]")),
    ("cc followers", ((("cc",), [FOLLOWERS]),), ("bad_addressing", "cc")),
    ("object cc", ((("object", "cc"), [MALLORY]),), ("bad_addressing", "object.cc")),
    ("bto", ((("bto",), [MALLORY]),), ("bad_addressing", "bto")),
    ("bcc", ((("object", "bcc"), MALLORY),), ("bad_addressing", "object.bcc")),
    ("audience", ((("audience",), f"{MALLORY}/group"),), ("bad_addressing", "audience")),
    ("two recipients", both("to", [BOB, MALLORY]), ("bad_addressing", "to")),
    ("no recipient", both("to", []), ("bad_addressing", "to")),
    ("to not a list", both("to", BOB), ("bad_addressing", "to")),
    ("to missing", ((("to",), DELETE),), ("missing", "to")),
    ("to an object", both("to", [{"id": BOB}]), ("not_a_url", "to[0]")),
    ("object to another actor", ((("object", "to"), [MALLORY]),), ("bad_addressing", "object.to")),
    # Authorship and origins.
    ("attributedTo other", ((("object", "attributedTo"), MALLORY),), ("wrong_actor", "object.attributedTo")),
    ("attributedTo list", ((("object", "attributedTo"), [ALICE]),), ("bad_value", "object.attributedTo")),
    ("object id elsewhere", ((("object", "id"), f"{MALLORY}/m/1"),), ("wrong_origin", "object.id")),
    ("activity id elsewhere", ((("id",), f"{MALLORY}/a/1"),), ("wrong_origin", "id")),
    ("actor object", ((("actor",), {"id": ALICE}),), ("bad_value", "actor")),
    ("actor not a URL", ((("actor",), "alice"),), ("not_a_url", "actor")),
    # Types and contexts.
    ("Update", ((("type",), "Update"),), ("unsupported_type", "type")),
    ("Note inside", ((("object", "type"), "Note"),), ("unsupported_type", "object.type")),
    ("object by reference", ((("object",), "https://a.example/e2ee/messages/123"),), ("bad_value", "object")),
    ("no e2ee context", ((("@context",), [AS]),), ("bad_context", "@context")),
    ("e2ee remapped", ((("@context",), [AS, {"e2ee": E2EE_NS}, {"e2ee": "https://evil.example/ns#"}]),),
     ("bad_context", "@context")),
    ("no AS context", ((("@context",), [{"e2ee": E2EE_NS}]),), ("bad_context", "@context")),
    # Protocol.
    ("mediaType", ((("object", "mediaType"), "message/mls"),), ("unsupported_protocol", "object.mediaType")),
    ("mediaType missing", ((("object", "mediaType"), DELETE),), ("missing", "object.mediaType")),
    ("encoding", ((("object", "encoding"), "base64url"),), ("unsupported_protocol", "object.encoding")),
    # Ciphertexts.
    ("no ciphertexts", (((CT), []),), ("bad_value", "object.e2ee:ciphertexts")),
    ("ciphertexts missing", (((CT), DELETE),), ("missing", "object.e2ee:ciphertexts")),
    ("65 ciphertexts", ((CT, [ciphertext(f"dev{i:03d}") for i in range(MAX_CIPHERTEXTS + 1)]),),
     ("too_large", "object.e2ee:ciphertexts")),
    ("duplicate device", ((CT, [ciphertext("P2ZM"), ciphertext("Q9RT"), ciphertext("P2ZM")]),),
     ("duplicate", "object.e2ee:ciphertexts[2].e2ee:deviceId")),
    ("device id short", ((CT, [ciphertext("abc")]),), ("bad_value", "object.e2ee:ciphertexts[0].e2ee:deviceId")),
    ("device id long", ((CT, [ciphertext("a" * 65)]),), ("bad_value", "object.e2ee:ciphertexts[0].e2ee:deviceId")),
    ("device id spaces", ((CT, [ciphertext("ab cd")]),), ("bad_value", "object.e2ee:ciphertexts[0].e2ee:deviceId")),
    ("device id number", ((CT, [ciphertext(1234)]),), ("bad_value", "object.e2ee:ciphertexts[0].e2ee:deviceId")),
    ("sender device", ((("object", "e2ee:senderDevice"), "K7/X"),), ("bad_value", "object.e2ee:senderDevice")),
    ("sender device missing", ((("object", "e2ee:senderDevice"), DELETE),), ("missing", "object.e2ee:senderDevice")),
    ("message type 2", ((CT, [ciphertext(message_type=2)]),),
     ("bad_value", "object.e2ee:ciphertexts[0].e2ee:messageType")),
    ("message type true", ((CT, [ciphertext(message_type=True)]),),
     ("bad_value", "object.e2ee:ciphertexts[0].e2ee:messageType")),
    ("message type text", ((CT, [ciphertext(message_type="0")]),),
     ("bad_value", "object.e2ee:ciphertexts[0].e2ee:messageType")),
    ("message type float", ((CT, [ciphertext(message_type=1.0)]),),
     ("bad_value", "object.e2ee:ciphertexts[0].e2ee:messageType")),
    ("ciphertext not an object", ((CT, ["AAAA"]),), ("bad_value", "object.e2ee:ciphertexts[0]")),
    ("ciphertext extra key", ((CT, [{**ciphertext(), "mediaType": "text/plain"}]),),
     ("bad_value", "object.e2ee:ciphertexts[0].mediaType")),
    ("ciphertext e2ee key", ((CT, [{**ciphertext(), "e2ee:plaintext": "hi"}]),),
     ("unknown_property", "object.e2ee:ciphertexts[0].e2ee:plaintext")),
    ("content over 96 KiB", ((CT, [ciphertext(content=b64encode(bytes(MAX_CIPHERTEXT_BYTES + 1)))]),),
     ("too_large", "object.e2ee:ciphertexts[0].content")),
    ("content not base64", ((CT, [ciphertext(content="not base64!")]),),
     ("bad_base64", "object.e2ee:ciphertexts[0].content")),
    ("content url-safe", ((CT, [ciphertext(content="ab-_")]),), ("bad_base64", "object.e2ee:ciphertexts[0].content")),
    ("content whitespace", ((CT, [ciphertext(content="AAAA AAAA")]),),
     ("bad_base64", "object.e2ee:ciphertexts[0].content")),
    ("content non-canonical", ((CT, [ciphertext(content="QR")]),),
     ("bad_base64", "object.e2ee:ciphertexts[0].content")),
    ("content empty", ((CT, [ciphertext(content="")]),), ("bad_value", "object.e2ee:ciphertexts[0].content")),
    ("content number", ((CT, [ciphertext(content=12)]),), ("bad_value", "object.e2ee:ciphertexts[0].content")),
    # Franking.
    ("tag 31 bytes", ((("object", "e2ee:frankingTag"), b64("t", 31)),), ("bad_base64", "object.e2ee:frankingTag")),
    ("tag missing", ((("object", "e2ee:frankingTag"), DELETE),), ("missing", "object.e2ee:frankingTag")),
    ("stamp missing", ((("object", "e2ee:frankingStamp"), DELETE),), ("missing", "object.e2ee:frankingStamp")),
    ("stamp long", ((("object", "e2ee:frankingStamp"), f"{'k' * 150}.{b64('s', 48)}"),),
     ("too_large", "object.e2ee:frankingStamp")),
    ("stamp without key id", ((("object", "e2ee:frankingStamp"), b64("s")),),
     ("bad_value", "object.e2ee:frankingStamp")),
    ("stamp empty key id", ((("object", "e2ee:frankingStamp"), f".{b64('s')}"),),
     ("bad_value", "object.e2ee:frankingStamp")),
    ("stamp empty mac", ((("object", "e2ee:frankingStamp"), "k1."),), ("bad_value", "object.e2ee:frankingStamp")),
    ("stamp bad base64", ((("object", "e2ee:frankingStamp"), "k1.@@@@"),),
     ("bad_base64", "object.e2ee:frankingStamp")),
    ("stamp not text", ((("object", "e2ee:frankingStamp"), ["k1", b64("s")]),),
     ("bad_value", "object.e2ee:frankingStamp")),
    ("stampedAt missing", ((("object", "e2ee:stampedAt"), DELETE),), ("missing", "object.e2ee:stampedAt")),
    ("stampedAt offset", ((("object", "e2ee:stampedAt"), "2026-11-21T10:00:00+00:00"),),
     ("bad_value", "object.e2ee:stampedAt")),
    ("stampedAt fraction", ((("object", "e2ee:stampedAt"), "2026-11-21T10:00:00.5Z"),),
     ("bad_value", "object.e2ee:stampedAt")),
    ("published missing", ((("object", "published"), DELETE),), ("missing", "object.published")),
    ("published date only", ((("object", "published"), "2026-11-21"),), ("bad_value", "object.published")),
    ("published impossible", ((("object", "published"), "2026-02-30T10:00:00Z"),), ("bad_value", "object.published")),
    # Unknown e2ee terms.
    ("unknown object term", ((("object", "e2ee:replyTo"), "x"),), ("unknown_property", "object.e2ee:replyTo")),
    ("unknown activity term", ((("e2ee:relay",), True),), ("unknown_property", "e2ee:relay")),
    ("unknown term, full IRI", ((("object", f"{E2EE_NS}expires"), "x"),), ("unknown_property", "object.?")),
    # No plaintext on an encrypted message.
    ("content", ((("object", "content"), "<p>hello</p>"),), ("plaintext", "object.content")),
    ("name", ((("object", "name"), "hello"),), ("plaintext", "object.name")),
    ("summary", ((("object", "summary"), "CW"),), ("plaintext", "object.summary")),
    ("contentMap", ((("object", "contentMap"), {"en": "hello"}),), ("plaintext", "object.contentMap")),
    ("attachment", ((("object", "attachment"), [{"type": "Document", "url": BOB}]),),
     ("plaintext", "object.attachment")),
    ("activity content", ((("content",), "hello"),), ("plaintext", "content")),
]  # fmt: skip


@pytest.mark.parametrize(("edits", "expected"), [case[1:] for case in REFUSALS], ids=[case[0] for case in REFUSALS])
def test_parse_encrypted_create__refuses(
    edits: tuple[tuple[tuple[str | int, ...], Any], ...], expected: tuple[str, str]
) -> None:
    doc = changed(*edits)
    assert reason_of(lambda: parse_encrypted_create(doc)) == expected


def test_parse_encrypted_create__accepts_64_ciphertexts() -> None:
    many = [ciphertext(f"dev{i:03d}") for i in range(MAX_CIPHERTEXTS)]
    assert len(parse_encrypted_create(changed((CT, many))).ciphertexts) == MAX_CIPHERTEXTS


def test_parse_encrypted_create__accepts_96_kib_but_the_inbox_schema_caps_strings_lower() -> None:
    doc = changed((CT, [ciphertext(content=b64encode(bytes(MAX_CIPHERTEXT_BYTES)))]))
    assert len(parse_encrypted_create(doc).ciphertexts[0].body) == MAX_CIPHERTEXT_BYTES
    # validate_activity, which runs first, refuses any string over 100,000 characters (~73 KiB
    # of base64): stricter than docs/e2ee.md, yet above the largest padded envelope (see above).
    assert reason_of(lambda: validate_activity(doc)) == ("too_large", "object.e2ee:ciphertexts[0].content")


def test_parse_encrypted_create__accepts_padded_base64() -> None:
    padded = b64encode(b"12345") + "="
    parsed = parse_encrypted_create(changed((CT, [ciphertext(content=padded)])))
    assert parsed.ciphertexts[0].body == b"12345"


def test_parse_encrypted_create__tolerates_an_integrity_proof() -> None:
    # The outbox may add a FEP-8b32 proof; it is not an e2ee term and carries no plaintext.
    doc = changed((("proof",), {"type": "DataIntegrityProof", "proofValue": "z1"}))
    assert parse_encrypted_create(doc) == message()


@pytest.mark.parametrize("doc", [None, [], "Create", 1, {"type": "Create"}])
def test_parse_encrypted_create__refuses_non_documents(doc: Any) -> None:
    with pytest.raises(InvalidActivity):
        parse_encrypted_create(doc)


# --- Routing ----------------------------------------------------------------------------------


def test_is_encrypted_message__routes_every_e2ee_type() -> None:
    doc = activity()
    assert is_encrypted_message(doc)
    listed = changed((("object", "type"), ["Note", ENCRYPTED_MESSAGE]))
    assert is_encrypted_message(listed)
    full_iri = changed((("object", "type"), f"{E2EE_NS}EncryptedMessage"))
    assert is_encrypted_message(full_iri)
    other_term = changed((("object", "type"), "e2ee:SealedMessage"))
    assert is_encrypted_message(other_term)
    aliased = changed((("@context",), [AS, {"x": E2EE_NS}]), (("object", "type"), "x:EncryptedMessage"))
    assert is_encrypted_message(aliased)
    term = changed((("@context",), [AS, {"Sealed": f"{E2EE_NS}EncryptedMessage"}]), (("object", "type"), "Sealed"))
    assert is_encrypted_message(term)
    announced = {"@context": [AS], "type": "Announce", "id": f"{MALLORY}/a", "actor": MALLORY, "object": doc}
    assert is_encrypted_message(announced)
    updated = changed((("type",), "Update"))
    assert is_encrypted_message(updated)


def test_is_encrypted_message__leaves_other_activities_alone() -> None:
    note = {"type": "Create", "actor": ALICE, "object": {"type": "Note", "content": "hi"}}
    assert not is_encrypted_message(note)
    actor_update = {
        "@context": [AS, dict(E2EE_CONTEXT_ENTRY)],
        "type": "Update",
        "actor": ALICE,
        "object": {"type": "Person", "id": ALICE, **actor_e2ee_properties(devices_url=DEVICES, master_key=None)},
    }
    assert not is_encrypted_message(actor_update)
    assert not is_encrypted_message({"type": "Create", "object": "https://a.example/e2ee/messages/123"})


def test_is_encrypted_message__routed_shapes_are_refused_by_the_parser() -> None:
    assert reason_of(lambda: parse_encrypted_create(changed((("type",), "Update"))))[0] == "unsupported_type"
    listed = changed((("object", "type"), ["Note", ENCRYPTED_MESSAGE]))
    assert reason_of(lambda: parse_encrypted_create(listed)) == ("bad_value", "object.type")


# --- Fuzz (research §8(d) test 26) ------------------------------------------------------------

KEYS = sorted(
    {
        *activity(),
        *activity()["object"],
        *ciphertext(),
        *collection(),
        *collection()["items"][0],
        *one_time_key(),
        "id",
        "publicKeyBase64",
        "signatureValue",
    }
)
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=30)
    | st.sampled_from(
        [ALICE, BOB, FOLLOWERS, "as:Public", ENCRYPTED_MESSAGE, OLM_PROTOCOL, "base64", "K7QX", b64("x"), STAMP]
    )
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=15,
)
PARSERS: list[Callable[[Any], object]] = [
    parse_encrypted_create,
    parse_claim_request,
    parse_one_time_key,
    parse_collection,
    lambda doc: parse_actor_e2ee_properties(doc, actor_uri=ALICE),
]


def paths(value: Any, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    """Every place in a JSON document, the document itself included."""
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += paths(item, (*prefix, index))
    return found


def mutate(doc: Any, data: st.DataObject) -> Any:
    """``doc`` with one to three places deleted, replaced by any JSON, or duplicated."""
    doc = copy.deepcopy(doc)
    for _ in range(data.draw(st.integers(1, 3))):
        places = paths(doc)
        place = data.draw(st.sampled_from(places))
        if not place:
            doc = data.draw(json_values)
            continue
        parent: Any = doc
        for part in place[:-1]:
            parent = parent[part]
        action = data.draw(st.sampled_from(["delete", "replace", "duplicate"]))
        if action == "delete":
            del parent[place[-1]]
        elif action == "replace":
            parent[place[-1]] = data.draw(json_values)
        elif isinstance(parent, list):
            parent.append(copy.deepcopy(parent[place[-1]]))
        else:
            parent[data.draw(st.sampled_from(KEYS))] = copy.deepcopy(parent[place[-1]])
    return doc


def only_invalid_activity(parser: Callable[[Any], object], doc: Any) -> None:
    try:
        parser(doc)
    except InvalidActivity as exc:
        assert exc.reason and str(exc)


@settings(max_examples=300, deadline=None, database=None)
@given(doc=json_values)
def test_fuzz__arbitrary_json_only_raises_invalid_activity(doc: Any) -> None:
    for parser in PARSERS:
        only_invalid_activity(parser, doc)
    assert isinstance(is_encrypted_message(doc), bool)


@settings(max_examples=400, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fuzz__mutated_activity_only_raises_invalid_activity(data: st.DataObject) -> None:
    doc = mutate(activity(), data)
    only_invalid_activity(parse_encrypted_create, doc)
    assert isinstance(is_encrypted_message(doc), bool)


@settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fuzz__mutated_documents_only_raise_invalid_activity(data: st.DataObject) -> None:
    only_invalid_activity(parse_collection, mutate(collection(), data))
    only_invalid_activity(parse_one_time_key, mutate(one_time_key(), data))
    only_invalid_activity(parse_claim_request, mutate(claim_request(actor_uri=BOB), data))


@settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fuzz__an_accepted_mutation_is_still_one_recipient_and_no_plaintext(data: st.DataObject) -> None:
    doc = mutate(activity(), data)
    try:
        parsed = parse_encrypted_create(doc)
    except InvalidActivity:
        return
    assert doc["to"] == doc["object"]["to"] == [parsed.recipient]
    assert parsed.actor == doc["object"]["attributedTo"]
    assert not any(key in doc["object"] for key in ("content", "name", "summary"))
    assert not any(doc["object"].get(key) or doc.get(key) for key in ("cc", "bcc", "bto", "audience"))
    assert 1 <= len(parsed.ciphertexts) <= MAX_CIPHERTEXTS
