"""The client API for end-to-end encrypted messages (/api/v1/hearthside/e2ee, docs/e2ee.md) and
the devices/claim endpoints of the actor, against a live app on SQLite and PostgreSQL.

Members are played by real client devices: each device is a vodozemac Olm account
(``crypto.olm``) with its own OAuth token carrying the ``crypto`` scope; the first device of a
member holds the member's master key and signs the device list (``crypto.devicelist``).
Every security rule of the server side gets the forged, stale, injected or oversized request
and checks both the answer and that nothing was written (research/e2ee.md §8(d): test 9
concurrent claims, 19 device injection and rollback, 24 retention, 26 fuzz). Answers are
validated against the OpenAPI document, so it cannot drift from what the endpoints return.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import uuid
from collections.abc import Iterable
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from sqlalchemy import delete, func, select, update

from crypto.devicelist import DeviceEntry, MasterKey, one_time_key_payload, sign_device_list, verify_one_time_key
from crypto.encoding import b64decode, b64encode, canonical_json, parse_utc_time
from crypto.franking import franking_tag, new_franking_key, verify_stamp
from crypto.olm import OlmAccount, OlmCiphertext, OneTimeKey
from federation.e2ee import parse_encrypted_create
from server import e2ee
from server.accounts import new_account
from server.app import create_app
from server.config import with_overrides
from server.db import make_sessionmaker
from server.ids import new_id
from server.models import (
    Account,
    Delivery,
    E2EEDevice,
    E2EEIdentity,
    E2EEMessage,
    E2EEOneTimeKey,
    E2EEStampKey,
    OAuthToken,
    OutboxActivity,
    PlaintextMessage,
)
from server.openapi import build_document
from server.web import now

E = "/api/v1/hearthside/e2ee"
CRYPTO_SCOPES = "read write follow crypto"
DOCUMENT = build_document()
AP = {"Accept": "application/activity+json"}


def check_schema(instance: Any, name: str) -> None:
    """Validate ``instance`` against ``components.schemas[name]`` of the OpenAPI document."""
    schema = {"components": DOCUMENT["components"], "$ref": f"#/components/schemas/{name}"}
    Draft202012Validator(schema).validate(instance)


async def expect_error(response: Any, status: int, contains: str = "") -> str:
    assert response.status == status, await response.text()
    body = await response.json()
    assert set(body) == {"error"}, body
    assert contains in body["error"], body["error"]
    message: str = body["error"]
    return message


async def ok(response: Any, status: int = 200, schema: str | None = None) -> Any:
    assert response.status == status, await response.text()
    body = await response.json()
    if schema is not None:
        check_schema(body, schema)
    return body


async def count(engine: Any, model: Any, *where: Any) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(model).where(*where))).scalar_one())


async def new_token(engine: Any, user_id: int, scopes: str = CRYPTO_SCOPES) -> dict[str, str]:
    """Another OAuth token of a user (one device per token): its Authorization header."""
    from crypto.tokens import digest
    from crypto.tokens import new_token as make_token

    token = make_token()
    async with make_sessionmaker(engine)() as session:
        session.add(OAuthToken(id=new_id(), token_hash=digest(token), user_id=user_id, scopes=scopes, created_at=now()))
        await session.commit()
    return {"Authorization": f"Bearer {token}"}


# ---------------------------------------------------------------------------- members and their devices


class Device:
    """One client device: an Olm account and the token it registered with."""

    def __init__(self, member: Member, device_id: str, headers: dict[str, str]) -> None:
        self.member = member
        self.device_id = device_id
        self.headers = headers
        self.olm = OlmAccount.create()

    @property
    def entry(self) -> DeviceEntry:
        return DeviceEntry(self.device_id, self.olm.identity_key, self.olm.fingerprint_key)

    def signed_key(
        self, key: OneTimeKey, *, fallback: bool, key_id: str | None = None, device_id: str | None = None
    ) -> dict[str, str]:
        """A key signed as docs/e2ee.md says (by this device's fingerprint key)."""
        key_id = key_id or key.key_id
        payload = one_time_key_payload(
            actor=self.member.actor,
            device_id=device_id or self.device_id,
            key_id=key_id,
            key=key.key,
            fallback=fallback,
        )
        return {"key_id": key_id, "key": key.key, "signature": self.olm.sign(payload)}

    def keys(self, one_time: int = 5, *, fallback: bool = True) -> dict[str, Any]:
        """Fresh signed one-time keys and a fallback key. vodozemac numbers fallback keys from
        zero like one-time keys; the fallback key id is prefixed so a test can tell at a glance
        which kind a claim handed out (the server accepts both spellings)."""
        body: dict[str, Any] = {}
        if one_time:
            body["one_time_keys"] = [
                self.signed_key(k, fallback=False) for k in self.olm.generate_one_time_keys(one_time)
            ]
        if fallback:
            key = self.olm.generate_fallback_key()
            body["fallback_key"] = self.signed_key(key, fallback=True, key_id=f"fb-{key.key_id}")
        self.olm.mark_published()
        return body

    def registration(self, one_time: int = 5, **extra: Any) -> dict[str, Any]:
        return {
            "device_id": self.device_id,
            "identity_key": self.olm.identity_key,
            "fingerprint_key": self.olm.fingerprint_key,
            **self.keys(one_time),
            **extra,
        }

    async def register(self, one_time: int = 5, **extra: Any) -> dict[str, Any]:
        client = self.member.client
        response = await client.post(f"{E}/devices", json=self.registration(one_time, **extra), headers=self.headers)
        return await ok(response, 201, "Device")


class Member:
    """A local member with a master key and the devices of their signed list."""

    def __init__(self, client: Any, engine: Any, config: Any, user: Any) -> None:
        self.client = client
        self.engine = engine
        self.user = user
        self.actor = f"{config.base_url}/users/{user.username}"
        self.master = MasterKey.generate()
        self.version = 0
        self.listed: list[Device] = []
        self.document: dict[str, Any] | None = None  # the last list the server accepted

    async def new_device(self, device_id: str | None = None) -> Device:
        headers = await new_token(self.engine, self.user.user_id)
        return Device(self, device_id or uuid.uuid4().hex[:10].upper(), headers)

    def device_list(
        self,
        devices: Iterable[Device],
        *,
        version: int | None = None,
        master: MasterKey | None = None,
        actor: str | None = None,
        extra: Iterable[DeviceEntry] = (),
    ) -> dict[str, Any]:
        signed = sign_device_list(
            master or self.master,
            actor=actor or self.actor,
            version=self.version + 1 if version is None else version,
            devices=[d.entry for d in devices] + list(extra),
            signed_at=now(),
        )
        return signed.to_json()

    async def publish(self, by: Device, devices: list[Device], **kwargs: Any) -> Any:
        """PUT a new signed list naming ``devices`` (the answer, not yet checked)."""
        document = self.device_list(devices, **kwargs)
        response = await self.client.put(f"{E}/device_list", json={"device_list": document}, headers=by.headers)
        if response.status == 200:
            self.version = document["version"]
            self.listed = list(devices)
            self.document = document
        return response

    async def first_device(self, one_time: int = 5) -> Device:
        """The member's first device: registered with its list (version 1), so active at once."""
        device = await self.new_device()
        document = self.device_list([device])
        body = await device.register(one_time, device_list=document)
        assert body["state"] == "active"
        self.version, self.listed, self.document = document["version"], [device], document
        return device

    async def add_device(self, one_time: int = 5) -> Device:
        """Register another device (pending) and approve it from the first one."""
        device = await self.new_device()
        await device.register(one_time)
        await ok(await self.publish(self.listed[0], [*self.listed, device]), schema="PublishedDeviceList")
        return device


@pytest.fixture
def member(client: Any, engine: Any, config: Any, make_user: Any) -> Any:
    async def make(username: str, *, devices: int = 1, one_time: int = 5, policy: str | None = None) -> Member:
        user = await make_user(username, scopes=CRYPTO_SCOPES)
        person = Member(client, engine, config, user)
        if devices:
            await person.first_device(one_time)
            for _ in range(devices - 1):
                await person.add_device(one_time)
        if policy is not None:
            await ok(await client.patch(f"{E}/settings", json={"dm_policy": policy}, headers=user.headers))
        return person

    return make


def franked(sender: Member, recipient: Member, text: str = "hello") -> tuple[bytes, bytes]:
    """The franked message bytes and their tag (docs/e2ee.md "Messages")."""
    message = canonical_json(
        {
            "id": str(uuid.uuid4()),
            "from": sender.actor,
            "to": recipient.actor,
            "created": "2026-11-21T10:00:00Z",
            "expires": None,
            "body": {"type": "Note", "content": text},
        }
    )
    return message, franking_tag(new_franking_key(), message)


def ciphertext(device: Device, body: bytes = b"\x01" * 64, kind: int = 1) -> dict[str, Any]:
    return {"actor": device.member.actor, "device_id": device.device_id, "type": kind, "body": b64encode(body)}


def message_body(recipient: Member, targets: Iterable[Device], tag: bytes = b"\x07" * 32) -> dict[str, Any]:
    return {"to": recipient.actor, "franking_tag": b64encode(tag), "ciphertexts": [ciphertext(d) for d in targets]}


async def inbox(device: Device) -> list[dict[str, Any]]:
    body = await ok(await device.member.client.get(f"{E}/messages", headers=device.headers), schema="DeviceInbox")
    return body["messages"]


async def claim(client: Any, claimer: Any, target: Member, device_ids: list[str]) -> Any:
    return await client.post(
        f"{E}/keys/claim", json={"actor": target.actor, "device_ids": device_ids}, headers=claimer.headers
    )


async def follow(client: Any, follower: Member, target: Member) -> None:
    url = f"/api/v1/accounts/{target.user.account_id}/follow"
    assert (await client.post(url, headers=follower.user.headers)).status == 200


# ---------------------------------------------------------------------------- scope


async def test_scope__every_e2ee_route_needs_a_token_with_the_crypto_scope(client: Any, make_user: Any) -> None:
    """read/write/follow do not imply crypto: an ordinary Mastodon app never reaches E2EE."""
    plain = await make_user("plain", scopes="read write follow push")
    routes = sorted(
        (route.method, str(route.resource.canonical).replace("{_trailing_slash}", ""))
        for route in client.app.router.routes()
        if route.method not in ("HEAD", "OPTIONS") and str(route.resource.canonical).startswith(E)
    )
    known = {
        ("GET", f"{E}/settings"), ("PATCH", f"{E}/settings"), ("POST", f"{E}/devices"), ("GET", f"{E}/devices"),
        ("DELETE", f"{E}/devices/{{device_id}}"), ("PUT", f"{E}/device_list"), ("POST", f"{E}/keys/upload"),
        ("GET", f"{E}/keys/count"), ("GET", f"{E}/keys"), ("POST", f"{E}/keys/claim"), ("POST", f"{E}/messages"),
        ("GET", f"{E}/messages"), ("POST", f"{E}/messages/ack"),
    }  # fmt: skip
    assert known <= set(routes)
    for method, path in routes:
        url = path.replace("{device_id}", "ABCD1234").replace("{id}", "1").replace("{index}", "0")
        body = {"json": {}} if method in ("POST", "PUT", "PATCH") else {}
        await expect_error(await client.request(method, url, **body), 401)
        await expect_error(await client.request(method, url, headers=plain.headers, **body), 403, "scopes")


async def test_scope__crypto_alone_is_not_read(client: Any, make_user: Any) -> None:
    only_crypto = await make_user("only_crypto", scopes="crypto")
    await ok(await client.get(f"{E}/settings", headers=only_crypto.headers), schema="E2EESettings")
    await expect_error(await client.get("/api/v1/hearthside/plaintext_messages", headers=only_crypto.headers), 403)


async def test_scope__input_must_be_json(client: Any, make_user: Any) -> None:
    user = await make_user("former", scopes=CRYPTO_SCOPES)
    response = await client.patch(f"{E}/settings", data={"dm_policy": "everyone"}, headers=user.headers)
    await expect_error(response, 415, "application/json")
    response = await client.post(
        f"{E}/devices", data=b"[1, 2]", headers={**user.headers, "Content-Type": "application/json"}
    )
    await expect_error(response, 400, "JSON object")
    response = await client.post(
        f"{E}/devices", data=b"{", headers={**user.headers, "Content-Type": "application/json"}
    )
    await expect_error(response, 400, "not valid JSON")


# ---------------------------------------------------------------------------- register


async def test_register__pending_until_a_signed_list_names_it(
    client: Any, engine: Any, config: Any, make_user: Any
) -> None:
    user = await make_user("alice", scopes=CRYPTO_SCOPES)
    alice = Member(client, engine, config, user)
    device = await alice.new_device("PHONE1")
    body = await device.register(one_time=3)
    assert body == body | {"device_id": "PHONE1", "state": "pending", "current": True, "one_time_key_count": 3}
    assert body["identity_key"] == device.olm.identity_key
    listing = await ok(await client.get(f"{E}/devices", headers=device.headers), schema="DeviceListing")
    assert listing["master_key"] is None and listing["version"] == 0 and listing["device_list"] is None
    assert [d["state"] for d in listing["devices"]] == ["pending"]
    # A pending device cannot send, and nobody can find it.
    bob = Member(client, engine, config, await make_user("bob", scopes=CRYPTO_SCOPES))
    bob_device = await bob.first_device()
    await expect_error(
        await client.post(f"{E}/messages", json=message_body(bob, bob.listed), headers=device.headers), 403, "device"
    )
    await ok(await client.patch(f"{E}/settings", json={"dm_policy": "everyone"}, headers=user.headers))
    answer = await ok(await claim(client, bob_device, alice, ["PHONE1"]), schema="ClaimAnswer")
    assert answer == {"keys": {}, "failures": {"PHONE1": "unknown_device"}}
    # Its own list activates it.
    response = await alice.publish(device, [device])
    published = await ok(response, schema="PublishedDeviceList")
    assert published["version"] == 1
    listing = await ok(await client.get(f"{E}/devices", headers=device.headers), schema="DeviceListing")
    assert listing["master_key"] == alice.master.public_key and listing["version"] == 1
    assert [(d["device_id"], d["state"], d["current"]) for d in listing["devices"]] == [("PHONE1", "active", True)]


async def test_register__duplicate_device_id_is_refused(client: Any, engine: Any, member: Any) -> None:
    alice = await member("alice")
    again = await alice.new_device(alice.listed[0].device_id)
    response = await client.post(f"{E}/devices", json=again.registration(), headers=again.headers)
    await expect_error(response, 409, "device_id")
    assert await count(engine, E2EEDevice) == 1


async def test_register__one_device_per_token(client: Any, engine: Any, member: Any) -> None:
    alice = await member("alice")
    other = Device(alice, "SECOND", alice.listed[0].headers)
    response = await client.post(f"{E}/devices", json=other.registration(), headers=other.headers)
    await expect_error(response, 409, "already has a device")
    assert await count(engine, E2EEDevice) == 1
    assert await count(engine, E2EEOneTimeKey) == 6


SHORT_KEY = b64encode(b"\x01" * 31)


MALFORMED_REGISTRATIONS = [
    ({"device_id": "abc"}, "device_id"),
    ({"device_id": "has space"}, "device_id"),
    ({"device_id": "x" * 65}, "device_id"),
    ({"device_id": None}, "device_id"),
    ({"identity_key": SHORT_KEY}, "identity_key"),
    ({"fingerprint_key": SHORT_KEY}, "fingerprint_key"),
    ({"identity_key": b64encode(b"\x01" * 33)}, "identity_key"),
    ({"identity_key": "AQ==AQ=="}, "identity_key"),
    ({"identity_key": "-_" * 22}, "identity_key"),
    ({"one_time_keys": "nope"}, "one_time_keys"),
    ({"one_time_keys": ["nope"]}, "one_time_keys[0]"),
    ({"one_time_keys": [{"key_id": "", "key": "", "signature": ""}]}, "one_time_keys[0].key_id"),
    (
        {"one_time_keys": [{"key_id": "k", "key": SHORT_KEY, "signature": b64encode(b"\x00" * 64)}]},
        "one_time_keys[0].key",
    ),
    (
        {"one_time_keys": [{"key_id": "k", "key": b64encode(b"\x00" * 32), "signature": "AAAA"}]},
        "one_time_keys[0].signature",
    ),
    ({"fallback_key": 5}, "fallback_key"),
]


async def test_register__malformed_input_is_refused_naming_the_field(
    client: Any, engine: Any, config: Any, make_user: Any
) -> None:
    alice = Member(client, engine, config, await make_user("alice", scopes=CRYPTO_SCOPES))
    device = await alice.new_device()
    for change, field in MALFORMED_REGISTRATIONS:
        body = device.registration() | change
        message = await expect_error(await client.post(f"{E}/devices", json=body, headers=device.headers), 422)
        assert message.startswith(field), (change, message)
        assert await count(engine, E2EEDevice) == 0
        assert await count(engine, E2EEOneTimeKey) == 0


async def test_register__forged_one_time_key_signature_writes_nothing(
    client: Any, engine: Any, config: Any, make_user: Any
) -> None:
    alice = Member(client, engine, config, await make_user("alice", scopes=CRYPTO_SCOPES))
    device = await alice.new_device()
    impostor = await alice.new_device()
    body = device.registration(3)
    key = device.olm.generate_one_time_keys(1)[-1]
    # Exactly the right payload, signed by another device's fingerprint key.
    body["one_time_keys"].append(impostor.signed_key(key, fallback=False, key_id="forged", device_id=device.device_id))
    message = await expect_error(await client.post(f"{E}/devices", json=body, headers=device.headers), 422)
    assert message.startswith("one_time_keys") and "forged" in message
    assert await count(engine, E2EEDevice) == 0
    assert await count(engine, E2EEOneTimeKey) == 0


async def test_register__key_signed_for_something_else_is_refused(
    client: Any, engine: Any, config: Any, make_user: Any
) -> None:
    """The signature covers actor, device id, key id, key and the fallback flag: a key moved
    to another device, member or role does not verify."""
    alice = Member(client, engine, config, await make_user("alice", scopes=CRYPTO_SCOPES))
    device = await alice.new_device("REALID")
    key = OneTimeKey("moved", b64encode(b"\x05" * 32))
    elsewhere = Member(client, engine, config, alice.user)
    elsewhere.actor = "https://elsewhere.example/users/alice"
    moved = Device(elsewhere, "REALID", device.headers)
    moved.olm = device.olm
    for what, signed in (
        ("device id", device.signed_key(key, fallback=False, device_id="OTHERID")),
        ("fallback flag", device.signed_key(key, fallback=True)),
        ("actor", moved.signed_key(key, fallback=False)),
        ("key", device.signed_key(key, fallback=False) | {"key": b64encode(b"\x06" * 32)}),
        ("key id", device.signed_key(key, fallback=False) | {"key_id": "moved2"}),
    ):
        body = device.registration(2)
        body["one_time_keys"].append(signed)
        message = await expect_error(await client.post(f"{E}/devices", json=body, headers=device.headers), 422)
        assert message.startswith("one_time_keys") and "moved" in message, (what, message)
        assert await count(engine, E2EEDevice) == 0
        assert await count(engine, E2EEOneTimeKey) == 0


async def test_register__vodozemac_key_ids_as_they_come(client: Any, engine: Any, config: Any, make_user: Any) -> None:
    """A client that publishes vodozemac's own key ids (one-time and fallback keys are numbered
    from zero independently) can register."""
    alice = Member(client, engine, config, await make_user("alice", scopes=CRYPTO_SCOPES))
    device = await alice.new_device()
    otks = device.olm.generate_one_time_keys(2)
    fallback = device.olm.generate_fallback_key()
    assert fallback.key_id == otks[0].key_id  # the premise: vodozemac reuses the id
    body = {
        "device_id": device.device_id,
        "identity_key": device.olm.identity_key,
        "fingerprint_key": device.olm.fingerprint_key,
        "one_time_keys": [device.signed_key(k, fallback=False) for k in otks],
        "fallback_key": device.signed_key(fallback, fallback=True),
    }
    answer = await ok(await client.post(f"{E}/devices", json=body, headers=device.headers), 201)
    assert answer["one_time_key_count"] == 2
    assert await count(engine, E2EEOneTimeKey, E2EEOneTimeKey.key_id == fallback.key_id) == 2


async def test_upload__one_time_key_id_equal_to_the_stored_fallback_key_id_is_accepted(
    client: Any, engine: Any, config: Any, make_user: Any
) -> None:
    alice = Member(client, engine, config, await make_user("alice", scopes=CRYPTO_SCOPES))
    device = await alice.new_device()
    fallback = device.olm.generate_fallback_key()
    body = {
        "device_id": device.device_id,
        "identity_key": device.olm.identity_key,
        "fingerprint_key": device.olm.fingerprint_key,
        "fallback_key": device.signed_key(fallback, fallback=True),
    }
    await ok(await client.post(f"{E}/devices", json=body, headers=device.headers), 201)
    (first,) = device.olm.generate_one_time_keys(1)
    assert first.key_id == fallback.key_id
    upload = {"one_time_keys": [device.signed_key(first, fallback=False)]}
    answer = await ok(await client.post(f"{E}/keys/upload", json=upload, headers=device.headers))
    assert answer == {"one_time_key_count": 1}
    # The same id as a one-time key again is a reuse.
    await expect_error(await client.post(f"{E}/keys/upload", json=upload, headers=device.headers), 409, "key id")


# ---------------------------------------------------------------------------- keys


def _near_base64(size: int) -> st.SearchStrategy[str]:
    """Spellings of ``size`` bytes in base64, padded or not, and ones with a character replaced,
    removed or added."""
    padded = st.binary(min_size=size, max_size=size).map(lambda data: base64.b64encode(data).decode())
    spelled = padded | padded.map(lambda text: text.rstrip("="))

    def one_off(text: str) -> st.SearchStrategy[str]:
        edits = st.tuples(st.integers(0, len(text)), st.sampled_from(["", "A", "B", "Q", "R", "w", "x", "=", "=="]))
        return edits.map(lambda edit: text[: edit[0]] + edit[1] + text[edit[0] + 1 :])

    return spelled | spelled.flatmap(one_off)


@settings(max_examples=300, derandomize=True, database=None)
@given(data=st.data())
def test_document__key_and_signature_patterns_accept_what_the_decoder_accepts(data: st.DataObject) -> None:
    """Found by tests/test_e2ee_openapi_fuzz.py: keys and signatures were documented as any base64
    of 43-44 (86-88) characters, which admits spellings the server refuses (non-canonical last
    character, stray padding), and schemathesis could not generate one valid request body from it."""
    from server.openapi import KEY, SIGNATURE

    size, schema = data.draw(st.sampled_from([(32, KEY), (64, SIGNATURE)]))
    text = data.draw(_near_base64(size))
    try:
        b64decode(text, field="k", size=size)
        accepted = True
    except ValueError:
        accepted = False
    assert Draft202012Validator(schema).is_valid(text) == accepted, text


async def test_keys__upload_count_and_limits(client: Any, engine: Any, member: Any) -> None:
    alice = await member("alice", one_time=2)
    device = alice.listed[0]
    answer = await ok(await client.get(f"{E}/keys/count", headers=device.headers), schema="OneTimeKeyCount")
    assert answer == {"one_time_key_count": 2}
    answer = await ok(await client.post(f"{E}/keys/upload", json=device.keys(3), headers=device.headers))
    assert answer == {"one_time_key_count": 5}
    assert await count(engine, E2EEOneTimeKey, E2EEOneTimeKey.fallback.is_(True)) == 1  # replaced, not added
    # A key id is never reused.
    reused = {"one_time_keys": [device.signed_key(OneTimeKey("AAAAAAAAAAA", b64encode(b"\x09" * 32)), fallback=False)]}
    await expect_error(await client.post(f"{E}/keys/upload", json=reused, headers=device.headers), 409, "key id")
    # At most 100 per upload and 100 held.
    too_many = {"one_time_keys": [{"key_id": str(i), "key": "", "signature": ""} for i in range(101)]}
    await expect_error(await client.post(f"{E}/keys/upload", json=too_many, headers=device.headers), 422, "at most")
    for batch in (50, 45):
        await ok(await client.post(f"{E}/keys/upload", json=device.keys(batch, fallback=False), headers=device.headers))
    response = await client.post(f"{E}/keys/upload", json=device.keys(1, fallback=False), headers=device.headers)
    await expect_error(response, 422, "at most 100 unused keys")
    assert await count(engine, E2EEOneTimeKey, E2EEOneTimeKey.fallback.is_(False)) == 100


async def test_keys__upload_needs_a_device(client: Any, make_user: Any) -> None:
    user = await make_user("deviceless", scopes=CRYPTO_SCOPES)
    await expect_error(await client.post(f"{E}/keys/upload", json={}, headers=user.headers), 403, "no E2EE device")
    await expect_error(await client.get(f"{E}/keys/count", headers=user.headers), 403, "no E2EE device")
    await expect_error(await client.get(f"{E}/messages", headers=user.headers), 403, "no E2EE device")


async def test_keys__query_serves_the_signed_list_and_claim_urls(client: Any, member: Any) -> None:
    alice = await member("alice", devices=2)
    bob = await member("bob", policy="everyone")
    response = await client.get(f"{E}/keys", params={"actor": "bob"}, headers=alice.listed[0].headers)
    answer = await ok(response, schema="MemberDevices")
    assert answer["actor"] == bob.actor and answer["acct"] == "bob"
    assert answer["device_list"]["masterKey"] == bob.master.public_key
    assert answer["devices"] == [
        {"device_id": d, "claim": f"{bob.actor}/devices/{d}/claim"} for d in sorted(d.device_id for d in bob.listed)
    ]
    await expect_error(await client.get(f"{E}/keys", headers=alice.listed[0].headers), 400, "actor")
    response = await client.get(f"{E}/keys", params={"actor": "nobody_here"}, headers=alice.listed[0].headers)
    await expect_error(response, 404)


async def test_keys__query_with_the_longest_documented_actor_is_answered_in_json(client: Any, member: Any) -> None:
    """Found by tests/test_e2ee_openapi_fuzz.py: the document allowed a 2048-character actor, but
    percent-encoded (12 bytes for a 4-byte character) that overflows aiohttp's 8190-byte request
    target, and its parser answered a plain-text 400 the handler never saw."""
    alice = await member("alice")
    [parameter] = DOCUMENT["paths"][f"{E}/keys"]["get"]["parameters"]
    longest = "\U0001d11e" * parameter["schema"]["maxLength"]
    response = await client.get(f"{E}/keys", params={"actor": longest}, headers=alice.listed[0].headers)
    await expect_error(response, 404, "no person")


async def test_member_reference__nul_or_lone_surrogate_is_refused_naming_the_field(client: Any, member: Any) -> None:
    """Found by tests/test_e2ee_openapi_fuzz.py on PostgreSQL: an actor with a NUL reached the
    account lookup, and PostgreSQL text cannot hold one (500). No actor URI or handle holds a NUL
    or a lone surrogate (JSON "\\ud800"), for a key query, a claim or a send."""
    alice = await member("alice")
    bob = await member("bob", policy="everyone")
    headers = alice.listed[0].headers
    for ref in ("bob\x00", f"{bob.actor}\x00", "\x00"):
        response = await client.get(f"{E}/keys", params={"actor": ref}, headers=headers)
        await expect_error(response, 422, "actor: must not contain NUL")
        body: dict[str, Any] = {"actor": ref, "device_ids": [bob.listed[0].device_id]}
        await expect_error(await client.post(f"{E}/keys/claim", json=body, headers=headers), 422, "actor: must not")
        body = message_body(bob, bob.listed) | {"to": ref}
        await expect_error(await client.post(f"{E}/messages", json=body, headers=headers), 422, "to: must not")
    as_json = {**headers, "Content-Type": "application/json"}
    raw = b'{"actor": "bob\\ud800", "device_ids": ["ABCD"]}'
    response = await client.post(f"{E}/keys/claim", data=raw, headers=as_json)
    await expect_error(response, 422, "actor: is not valid UTF-8 text")


# ---------------------------------------------------------------------------- device list


async def test_device_list__forged_signature_is_refused(client: Any, engine: Any, member: Any) -> None:
    alice = await member("alice")
    document = alice.device_list(alice.listed)
    document["signature"] = MasterKey.generate().sign(b"something else")
    response = await client.put(f"{E}/device_list", json={"device_list": document}, headers=alice.listed[0].headers)
    await expect_error(response, 422, "device_list: signature does not verify")
    # A list signed by another key that claims alice's master key does not verify either.
    forged = sign_device_list(
        MasterKey.generate(), actor=alice.actor, version=2, devices=[alice.listed[0].entry], signed_at=now()
    ).to_json() | {"masterKey": alice.master.public_key}
    response = await client.put(f"{E}/device_list", json={"device_list": forged}, headers=alice.listed[0].headers)
    await expect_error(response, 422, "signature does not verify")
    async with engine.connect() as conn:
        assert (await conn.execute(select(E2EEIdentity.version))).scalar_one() == 1


async def test_device_list__for_another_actor_is_refused(client: Any, member: Any) -> None:
    alice = await member("alice")
    bob = await member("bob")
    response = await alice.publish(alice.listed[0], alice.listed, actor=bob.actor)
    await expect_error(response, 422, "device_list.actor")


async def test_device_list__rollback_is_refused(client: Any, engine: Any, member: Any) -> None:
    alice = await member("alice", devices=2)
    assert alice.version == 2
    for version in (1, 2):
        response = await alice.publish(alice.listed[0], alice.listed[:1], version=version)
        await expect_error(response, 409, "device_list.version")
    assert await count(engine, E2EEDevice, E2EEDevice.state == "active") == 2


async def test_device_list__another_master_key_needs_reset(client: Any, engine: Any, member: Any) -> None:
    alice = await member("alice", devices=2)
    usurper = MasterKey.generate()
    response = await alice.publish(alice.listed[0], alice.listed, master=usurper)
    await expect_error(response, 409, "device_list.masterKey")
    async with engine.connect() as conn:
        assert (await conn.execute(select(E2EEIdentity.master_key))).scalar_one() == alice.master.public_key
    # With reset (a member who lost the master key) the new key replaces it.
    fresh = MasterKey.generate()
    document = alice.device_list(alice.listed[1:], master=fresh)
    response = await client.put(
        f"{E}/device_list", json={"device_list": document, "reset": True}, headers=alice.listed[1].headers
    )
    await ok(response, schema="PublishedDeviceList")
    async with engine.connect() as conn:
        assert (await conn.execute(select(E2EEIdentity.master_key))).scalar_one() == fresh.public_key
    await expect_error(await client.get(f"{E}/settings", headers=alice.listed[0].headers), 401)


async def test_device_list__injected_device_is_refused(client: Any, engine: Any, member: Any) -> None:
    """A list naming a device that was never registered (or with other keys) is refused."""
    alice = await member("alice")
    stranger = OlmAccount.create()
    ghost = DeviceEntry("GHOST1", stranger.identity_key, stranger.fingerprint_key)
    response = await alice.publish(alice.listed[0], alice.listed, extra=[ghost])
    await expect_error(response, 422, "GHOST1 is not a registered device")
    pending = await alice.new_device("PENDING")
    await pending.register()
    swapped = DeviceEntry("PENDING", stranger.identity_key, pending.olm.fingerprint_key)
    response = await alice.publish(alice.listed[0], alice.listed, extra=[swapped])
    await expect_error(response, 422, "PENDING has other keys")
    assert await count(engine, E2EEDevice, E2EEDevice.state == "active") == 1
    async with engine.connect() as conn:
        assert (await conn.execute(select(E2EEIdentity.version))).scalar_one() == 1


async def test_device_list__a_device_of_another_member_cannot_be_listed(client: Any, member: Any) -> None:
    alice = await member("alice")
    bob = await member("bob")
    response = await alice.publish(alice.listed[0], [*alice.listed, bob.listed[0]])
    await expect_error(response, 422, "is not a registered device of yours")


async def test_device_list__dropping_a_device_revokes_it(client: Any, engine: Any, member: Any) -> None:
    alice = await member("alice", devices=2, policy="everyone")
    bob = await member("bob", policy="everyone")
    phone, laptop = alice.listed
    # A message waits in the laptop's inbox.
    await ok(
        await client.post(f"{E}/messages", json=message_body(alice, [phone, laptop]), headers=bob.listed[0].headers),
        202,
    )
    laptop_pk = await _device_pk(engine, laptop.device_id)
    assert await count(engine, E2EEMessage, E2EEMessage.device_pk == laptop_pk) == 1
    assert await count(engine, E2EEOneTimeKey, E2EEOneTimeKey.device_pk == laptop_pk) == 6
    await ok(await client.get(f"{E}/messages", headers=laptop.headers))  # cached as valid
    await ok(await alice.publish(phone, [phone]), schema="PublishedDeviceList")
    await expect_error(await client.get(f"{E}/messages", headers=laptop.headers), 401)
    await expect_error(await client.get("/api/v1/accounts/verify_credentials", headers=laptop.headers), 401)
    assert await count(engine, E2EEMessage, E2EEMessage.device_pk == laptop_pk) == 0
    assert await count(engine, E2EEOneTimeKey, E2EEOneTimeKey.device_pk == laptop_pk) == 0
    listing = await ok(await client.get(f"{E}/devices", headers=phone.headers), schema="DeviceListing")
    states = {d["device_id"]: (d["state"], d["revoked_at"] is not None) for d in listing["devices"]}
    assert states == {phone.device_id: ("active", False), laptop.device_id: ("revoked", True)}
    # A revoked device never comes back, and nobody can claim its keys.
    entry = laptop.entry
    response = await alice.publish(phone, [phone], extra=[entry])
    await expect_error(response, 422, "not a registered device")
    answer = await ok(await claim(client, bob.listed[0], alice, [laptop.device_id]))
    assert answer["failures"] == {laptop.device_id: "unknown_device"}


async def _device_pk(engine: Any, device_id: str) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(E2EEDevice.id).where(E2EEDevice.device_id == device_id))).scalar_one())


async def test_device__revoke_pending_but_not_active(client: Any, engine: Any, member: Any) -> None:
    alice = await member("alice")
    pending = await alice.new_device("WAITING")
    await pending.register()
    phone = alice.listed[0]
    await expect_error(await client.delete(f"{E}/devices/{phone.device_id}", headers=phone.headers), 409)
    answer = await ok(await client.delete(f"{E}/devices/WAITING", headers=phone.headers), schema="RevokedDevice")
    assert answer == {"device_id": "WAITING", "state": "revoked"}
    await expect_error(await client.get(f"{E}/keys/count", headers=pending.headers), 401)
    assert await count(engine, E2EEOneTimeKey, E2EEOneTimeKey.device_pk == await _device_pk(engine, "WAITING")) == 0
    await expect_error(await client.delete(f"{E}/devices/WAITING", headers=phone.headers), 404)
    await expect_error(await client.delete(f"{E}/devices/NOSUCH", headers=phone.headers), 404)
    await expect_error(await client.delete(f"{E}/devices/no", headers=phone.headers), 422, "device_id")


# ---------------------------------------------------------------------------- federation documents


async def test_actor__names_devices_and_master_key_once_set_up(
    client: Any, engine: Any, config: Any, member: Any
) -> None:
    carol = await member("carol", devices=0)
    actor = await ok(await client.get("/users/carol", headers=AP))
    assert actor["e2ee:devices"] == f"{carol.actor}/devices"
    assert "e2ee:masterKey" not in actor
    empty = await ok(await client.get("/users/carol/devices", headers=AP))
    assert empty["totalItems"] == 0 and "e2ee:deviceList" not in empty
    await carol.first_device()
    actor = await ok(await client.get("/users/carol", headers=AP))
    assert actor["e2ee:masterKey"] == {"type": "e2ee:Ed25519Key", "publicKeyBase64": carol.master.public_key}
    assert any(isinstance(c, dict) and c.get("e2ee") == "urn:hearthside:e2ee#" for c in actor["@context"])


async def test_actor__devices_collection_serves_the_signed_list_without_names(client: Any, member: Any) -> None:
    alice = await member("alice", devices=2)
    pending = await alice.new_device("NOTYET")
    await pending.register()
    response = await client.get("/users/alice/devices", headers=AP)
    assert response.headers["Content-Type"] == "application/activity+json"
    collection = await ok(response)
    assert collection["e2ee:deviceList"] == alice.document
    ids = sorted(d.device_id for d in alice.listed)
    assert [item["e2ee:deviceId"] for item in collection["items"]] == ids  # the pending one is not published
    for item in collection["items"]:
        assert "name" not in item and "nameMap" not in item
        assert item["e2ee:claim"] == f"{alice.actor}/devices/{item['e2ee:deviceId']}/claim"
    await expect_error(await client.get("/users/nobody/devices", headers=AP), 404)


async def test_actor__claim_endpoint_refuses_unsigned_requests(client: Any, engine: Any, member: Any) -> None:
    alice = await member("alice")
    device_id = alice.listed[0].device_id
    body = {"@context": ["https://www.w3.org/ns/activitystreams"], "type": "e2ee:Claim", "actor": "https://x.example/u"}
    response = await client.post(f"/users/alice/devices/{device_id}/claim", json=body)
    await expect_error(response, 401, "not signed")
    assert await count(engine, E2EEOneTimeKey) == 6


# ---------------------------------------------------------------------------- claims


async def unused_keys(engine: Any, *devices: Device) -> int:
    """One-time keys (not fallback keys) the server still holds for ``devices``."""
    pks = [await _device_pk(engine, d.device_id) for d in devices]
    return await count(engine, E2EEOneTimeKey, E2EEOneTimeKey.device_pk.in_(pks), E2EEOneTimeKey.fallback.is_(False))


def _check_claimed(key: dict[str, Any], owner: Member, device: Device) -> None:
    verify_one_time_key(
        device.olm.fingerprint_key,
        actor=owner.actor,
        device_id=device.device_id,
        key_id=key["key_id"],
        key=key["key"],
        fallback=key["fallback"],
        signature=key["signature"],
    )


async def test_claim__each_one_time_key_is_handed_out_once_then_the_fallback(
    client: Any, engine: Any, member: Any
) -> None:
    alice = await member("alice")
    bob = await member("bob", devices=2, one_time=2, policy="everyone")
    ids = [d.device_id for d in bob.listed]
    seen: list[str] = []
    for _ in range(2):
        answer = await ok(await claim(client, alice.listed[0], bob, [*ids, ids[0]]), schema="ClaimAnswer")
        assert set(answer["keys"]) == set(ids) and answer["failures"] == {}
        for device in bob.listed:
            key = answer["keys"][device.device_id]
            _check_claimed(key, bob, device)
            assert key["fallback"] is False
            seen.append(key["key"])
    assert len(set(seen)) == 4
    assert await unused_keys(engine, *bob.listed) == 0
    for _ in range(2):
        answer = await ok(await claim(client, alice.listed[0], bob, ids))
        for device in bob.listed:
            key = answer["keys"][device.device_id]
            _check_claimed(key, bob, device)
            assert key["fallback"] is True and key["key_id"].startswith("fb-")
    # A device that has neither says so.
    async with make_sessionmaker(engine)() as session:
        await session.execute(delete(E2EEOneTimeKey))
        await session.commit()
    answer = await ok(await claim(client, alice.listed[0], bob, [*ids[:1], "NOSUCHDEVICE"]))
    assert answer == {"keys": {}, "failures": {ids[0]: "no_keys", "NOSUCHDEVICE": "unknown_device"}}


async def test_claim__a_claimed_key_starts_a_working_olm_session(client: Any, member: Any) -> None:
    alice = await member("alice")
    bob = await member("bob", policy="everyone")
    (bob_device,) = bob.listed
    answer = await ok(await claim(client, alice.listed[0], bob, [bob_device.device_id]))
    key = answer["keys"][bob_device.device_id]
    session = alice.listed[0].olm.outbound_session(bob_device.olm.identity_key, key["key"])
    sealed = session.encrypt(b"hello bob")
    _, plaintext = bob_device.olm.inbound_session(alice.listed[0].olm.identity_key, sealed)
    assert plaintext == b"hello bob"


async def test_claim__concurrent_claims_of_the_last_keys_give_each_key_once(
    client: Any, engine: Any, member: Any
) -> None:
    """research/e2ee.md §8(d) test 9: 20 claims at once for a device holding 5 one-time keys
    give exactly those 5, once each; the other 15 get the signed fallback key."""
    alice = await member("alice")
    bob = await member("bob", one_time=5, policy="everyone")
    (target,) = bob.listed
    responses = await asyncio.gather(*(claim(client, alice.listed[0], bob, [target.device_id]) for _ in range(20)))
    keys = []
    for response in responses:
        answer = await ok(response)
        keys.append(answer["keys"][target.device_id])
    one_time = [k for k in keys if not k["fallback"]]
    fallback = [k for k in keys if k["fallback"]]
    assert len(one_time) == 5 and len({k["key_id"] for k in one_time}) == 5
    assert len(fallback) == 15 and len({k["key"] for k in fallback}) == 1
    for key in keys:
        _check_claimed(key, bob, target)
    assert await unused_keys(engine, target) == 0


async def test_claim__refused_by_policy_and_blocks(client: Any, engine: Any, member: Any) -> None:
    alice = await member("alice")
    bob = await member("bob")  # default policy: following_and_groups
    ids = [bob.listed[0].device_id]
    await expect_error(await claim(client, alice.listed[0], bob, ids), 403, "does not accept messages")
    await ok(await client.patch(f"{E}/settings", json={"dm_policy": "everyone"}, headers=bob.user.headers))
    await ok(await claim(client, alice.listed[0], bob, ids))
    await ok(await client.post(f"/api/v1/accounts/{alice.user.account_id}/block", headers=bob.user.headers))
    await expect_error(await claim(client, alice.listed[0], bob, ids), 403, "cannot message")
    await ok(await client.post(f"/api/v1/accounts/{alice.user.account_id}/unblock", headers=bob.user.headers))
    await ok(await client.post(f"/api/v1/accounts/{bob.user.account_id}/block", headers=alice.user.headers))
    await expect_error(await claim(client, alice.listed[0], bob, ids), 403, "cannot message")
    await expect_error(await client.get(f"{E}/keys", params={"actor": bob.actor}, headers=alice.listed[0].headers), 403)
    assert await count(engine, E2EEOneTimeKey, E2EEOneTimeKey.fallback.is_(False)) == 5 + 4


async def test_claim__rate_limited_per_claimer_and_member(
    aiohttp_client: Any, engine: Any, config: Any, make_user: Any
) -> None:
    limited = await aiohttp_client(create_app(with_overrides(config, e2ee={"claims_per_minute": 3}), engine=engine))
    alice = Member(limited, engine, config, await make_user("alice", scopes=CRYPTO_SCOPES))
    bob = Member(limited, engine, config, await make_user("bob", scopes=CRYPTO_SCOPES))
    carol = Member(limited, engine, config, await make_user("carol", scopes=CRYPTO_SCOPES))
    for person in (alice, bob, carol):
        await person.first_device()
    await ok(await limited.patch(f"{E}/settings", json={"dm_policy": "everyone"}, headers=bob.user.headers))
    ids = [bob.listed[0].device_id]
    for _ in range(3):
        await ok(await claim(limited, alice.listed[0], bob, ids))
    await expect_error(await claim(limited, alice.listed[0], bob, ids), 429, "too many key claims")
    await ok(await claim(limited, carol.listed[0], bob, ids))  # another claimer has its own budget
    assert await count(engine, E2EEOneTimeKey, E2EEOneTimeKey.fallback.is_(False)) == 5 + 5 + 1


async def test_claim__malformed_requests(client: Any, engine: Any, member: Any) -> None:
    alice = await member("alice")
    await member("bob", policy="everyone")
    for body, status, field in (
        ({"device_ids": ["ABCD"]}, 422, "actor"),
        ({"actor": "", "device_ids": ["ABCD"]}, 422, "actor"),
        ({"actor": "bob"}, 422, "device_ids"),
        ({"actor": "bob", "device_ids": "ABCD"}, 422, "device_ids"),
        ({"actor": "bob", "device_ids": []}, 422, "device_ids"),
        ({"actor": "bob", "device_ids": ["ABCD"] * 65}, 422, "device_ids"),
        ({"actor": "bob", "device_ids": ["a b"]}, 422, "device_ids"),
        ({"actor": "bob", "device_ids": [7]}, 422, "device_ids"),
        ({"actor": "nobody_here", "device_ids": ["ABCD"]}, 404, "no person"),
        ({"actor": "@", "device_ids": ["ABCD"]}, 422, "actor"),
    ):
        response = await client.post(f"{E}/keys/claim", json=body, headers=alice.listed[0].headers)
        message = await expect_error(response, status)
        assert message.startswith(field), (body, message)
    assert await count(engine, E2EEOneTimeKey, E2EEOneTimeKey.fallback.is_(False)) == 10


# ---------------------------------------------------------------------------- who may message whom


async def test_settings__default_and_validation(client: Any, engine: Any, make_user: Any) -> None:
    user = await make_user("alice", scopes=CRYPTO_SCOPES)
    settings_ = await ok(await client.get(f"{E}/settings", headers=user.headers), schema="E2EESettings")
    assert settings_["dm_policy"] == "following_and_groups"
    assert set(settings_["dm_policies"]) == {"everyone", "following", "following_and_groups", "nobody"}
    for bad in ({"dm_policy": "friends"}, {"dm_policy": None}, {"dm_policy": ["everyone"]}, {}):
        await expect_error(await client.patch(f"{E}/settings", json=bad, headers=user.headers), 422, "dm_policy")
    async with engine.connect() as conn:
        stored = await conn.execute(select(Account.dm_policy).where(Account.id == user.account_id))
        assert stored.scalar_one() == "following_and_groups"
    changed = await ok(await client.patch(f"{E}/settings", json={"dm_policy": "nobody"}, headers=user.headers))
    assert changed["dm_policy"] == "nobody"
    assert (await ok(await client.get(f"{E}/settings", headers=user.headers)))["dm_policy"] == "nobody"


async def _send(client: Any, sender: Member, recipient: Member) -> Any:
    return await client.post(
        f"{E}/messages", json=message_body(recipient, recipient.listed), headers=sender.listed[0].headers
    )


async def test_policy__default_is_people_followed_and_shared_groups(client: Any, member: Any) -> None:
    bob = await member("bob")
    stranger = await member("stranger")
    friend = await member("friend")
    neighbour = await member("neighbour")
    await expect_error(await _send(client, stranger, bob), 403, "does not accept messages from you")
    # Someone bob follows may write; following bob is not enough.
    await follow(client, bob, friend)
    await follow(client, stranger, bob)
    await ok(await _send(client, friend, bob), 202, "SentMessage")
    await expect_error(await _send(client, stranger, bob), 403)
    # A member of a group bob is in may write.
    group = await ok(
        await client.post("/api/v1/hearthside/groups", json={"name": "calm"}, headers=neighbour.user.headers)
    )
    await ok(await client.post(f"/api/v1/hearthside/groups/{group['id']}/join", headers=bob.user.headers))
    await ok(await _send(client, neighbour, bob), 202)
    # "following" leaves group members out.
    await ok(await client.patch(f"{E}/settings", json={"dm_policy": "following"}, headers=bob.user.headers))
    await expect_error(await _send(client, neighbour, bob), 403)
    await ok(await _send(client, friend, bob), 202)


async def test_policy__everyone_and_nobody(client: Any, engine: Any, member: Any) -> None:
    bob = await member("bob", policy="everyone")
    stranger = await member("stranger")
    friend = await member("friend")
    await follow(client, bob, friend)
    await ok(await _send(client, stranger, bob), 202)
    await ok(await client.patch(f"{E}/settings", json={"dm_policy": "nobody"}, headers=bob.user.headers))
    await expect_error(await _send(client, stranger, bob), 403)
    await expect_error(await _send(client, friend, bob), 403)
    await expect_error(await claim(client, friend.listed[0], bob, [bob.listed[0].device_id]), 403)
    assert await count(engine, E2EEMessage) == 1


async def test_policy__blocks_either_way_refuse_sending(client: Any, engine: Any, member: Any) -> None:
    alice = await member("alice", policy="everyone")
    bob = await member("bob", policy="everyone")
    await ok(await client.post(f"/api/v1/accounts/{bob.user.account_id}/block", headers=alice.user.headers))
    await expect_error(await _send(client, bob, alice), 403, "cannot message")
    await expect_error(await _send(client, alice, bob), 403, "cannot message")
    assert await count(engine, E2EEMessage) == 0


# ---------------------------------------------------------------------------- send and the device inbox


async def test_send__lands_once_in_each_device_inbox_franked_and_stamped(
    client: Any, engine: Any, config: Any, member: Any
) -> None:
    alice = await member("alice", devices=2)
    bob = await member("bob", devices=2, policy="everyone")
    phone, laptop = alice.listed
    _message, tag = franked(alice, bob)
    body = {
        "to": bob.actor,
        "franking_tag": b64encode(tag),
        "ciphertexts": [ciphertext(d, f"for {d.device_id}".encode()) for d in [*bob.listed, laptop]],
    }
    sent = await ok(await client.post(f"{E}/messages", json=body, headers=phone.headers), 202, "SentMessage")
    assert sent["id"].startswith(f"{config.base_url}/e2ee/messages/")
    async with engine.connect() as conn:
        rows = await conn.execute(select(E2EEStampKey.key_id, E2EEStampKey.secret))
        stamp_keys = {key_id: base64.b64decode(secret) for key_id, secret in rows}
    verify_stamp(
        stamp_keys,
        sent["stamp"],
        tag=tag,
        sender=alice.actor,
        recipient=bob.actor,
        object_id=sent["id"],
        at=parse_utc_time(sent["stamped_at"], field="stamped_at"),
    )
    for device in [*bob.listed, laptop]:
        (row,) = await inbox(device)
        assert row["object_id"] == sent["id"]
        # known: bob does not follow alice (a message request for his devices); her own copy is known
        assert row["sender"] == {"actor": alice.actor, "device_id": phone.device_id, "known": device is laptop}
        assert row["recipient_actor"] == bob.actor
        assert b64decode(row["body"], field="body") == f"for {device.device_id}".encode()
        assert row["franking_tag"] == b64encode(tag)
        assert row["stamp"] == row["sender_stamp"] == sent["stamp"]
        assert row["stamped_at"] == sent["stamped_at"]
    assert await inbox(phone) == []
    await follow(client, bob, alice)  # now alice is someone bob knows
    assert [r["sender"]["known"] for d in bob.listed for r in await inbox(d)] == [True, True]
    # A stamp for other parties or another object does not verify.
    from crypto.errors import FrankingError

    with pytest.raises(FrankingError):
        verify_stamp(
            stamp_keys,
            sent["stamp"],
            tag=tag,
            sender=bob.actor,
            recipient=alice.actor,
            object_id=sent["id"],
            at=parse_utc_time(sent["stamped_at"], field="stamped_at"),
        )
    # Acknowledging deletes from that device's inbox only.
    first, second = bob.listed
    (row,) = await inbox(first)
    answer = await ok(await client.post(f"{E}/messages/ack", json={"ids": [row["id"]]}, headers=second.headers))
    assert answer == {"deleted": 0}
    answer = await ok(
        await client.post(f"{E}/messages/ack", json={"ids": [row["id"]]}, headers=first.headers), schema="Acknowledged"
    )
    assert answer == {"deleted": 1}
    assert await inbox(first) == []
    assert len(await inbox(second)) == 1
    assert await count(engine, E2EEMessage) == 2


async def test_send__a_real_olm_message_reaches_the_recipient(client: Any, member: Any) -> None:
    alice = await member("alice")
    bob = await member("bob", policy="everyone")
    (sender,), (receiver,) = alice.listed, bob.listed
    key = (await ok(await claim(client, sender, bob, [receiver.device_id])))["keys"][receiver.device_id]
    sealed = sender.olm.outbound_session(receiver.olm.identity_key, key["key"]).encrypt(b"are you ok?")
    body = {
        "to": "bob",
        "franking_tag": b64encode(b"\x02" * 32),
        "ciphertexts": [ciphertext(receiver, sealed.body, sealed.message_type)],
    }
    await ok(await client.post(f"{E}/messages", json=body, headers=sender.headers), 202)
    (row,) = await inbox(receiver)
    received = OlmCiphertext(row["type"], b64decode(row["body"], field="body"))
    _, plaintext = receiver.olm.inbound_session(sender.olm.identity_key, received)
    assert plaintext == b"are you ok?"


async def _nothing_stored(engine: Any) -> None:
    assert await count(engine, E2EEMessage) == 0


async def test_send__ciphertext_for_an_unknown_or_revoked_device_is_refused(
    client: Any, engine: Any, member: Any
) -> None:
    alice = await member("alice")
    bob = await member("bob", devices=2, policy="everyone")
    body = message_body(bob, bob.listed)
    body["ciphertexts"].append({**body["ciphertexts"][0], "device_id": "UNKNOWN1"})
    response = await client.post(f"{E}/messages", json=body, headers=alice.listed[0].headers)
    await expect_error(response, 422, "ciphertexts[2].device_id")
    await _nothing_stored(engine)
    first, second = bob.listed
    await ok(await bob.publish(first, [first]))
    response = await client.post(
        f"{E}/messages", json=message_body(bob, [first, second]), headers=alice.listed[0].headers
    )
    await expect_error(response, 422, "ciphertexts[1].device_id")
    await _nothing_stored(engine)
    pending = await bob.new_device("PENDINGX")
    await pending.register()
    response = await client.post(
        f"{E}/messages", json=message_body(bob, [first, pending]), headers=alice.listed[0].headers
    )
    await expect_error(response, 422, "ciphertexts[1].device_id")
    await _nothing_stored(engine)


async def test_send__ciphertext_for_the_sending_device_or_a_third_party_is_refused(
    client: Any, engine: Any, member: Any
) -> None:
    alice = await member("alice", devices=2)
    bob = await member("bob", policy="everyone")
    carol = await member("carol")
    phone = alice.listed[0]
    for targets, where in (
        ([*bob.listed, phone], "ciphertexts[1].device_id"),
        ([*bob.listed, carol.listed[0]], "ciphertexts[1].actor"),
    ):
        response = await client.post(f"{E}/messages", json=message_body(bob, targets), headers=phone.headers)
        await expect_error(response, 422, where)
    response = await client.post(f"{E}/messages", json=message_body(bob, alice.listed[1:]), headers=phone.headers)
    await expect_error(response, 422, "none is for the recipient")
    response = await client.post(f"{E}/messages", json=message_body(alice, alice.listed[1:]), headers=phone.headers)
    await expect_error(response, 422, "to:")
    await _nothing_stored(engine)


MALFORMED_CIPHERTEXTS = [
    ({"body": "not base64!"}, "ciphertexts[0].body"),
    ({"body": "QQ="}, "ciphertexts[0].body"),
    ({"body": "QR"}, "ciphertexts[0].body"),  # non-canonical trailing bits
    ({"body": "-_-_"}, "ciphertexts[0].body"),  # the URL-safe alphabet
    ({"body": "AAAA AAAA"}, "ciphertexts[0].body"),
    ({"body": 12}, "ciphertexts[0].body"),
    ({"body": b64encode(b"\x00" * (96 * 1024 + 1))}, "ciphertexts[0].body"),
    ({"type": 2}, "ciphertexts[0].type"),
    ({"type": True}, "ciphertexts[0].type"),
    ({"type": "1"}, "ciphertexts[0].type"),
    ({"type": None}, "ciphertexts[0].type"),
    ({"device_id": "no"}, "ciphertexts[0].device_id"),
    ({"actor": ""}, "ciphertexts[0].actor"),
]
MALFORMED_MESSAGES = [
    ({"franking_tag": b64encode(b"\x01" * 31)}, "franking_tag"),
    ({"franking_tag": "not base64!"}, "franking_tag"),
    ({"franking_tag": None}, "franking_tag"),
    ({"to": ""}, "to"),
    ({"to": None}, "to"),
    ({"ciphertexts": []}, "ciphertexts"),
    ({"ciphertexts": {"a": 1}}, "ciphertexts"),
    ({"ciphertexts": [1]}, "ciphertexts[0]"),
]


async def test_send__malformed_input_is_refused_naming_the_field(client: Any, engine: Any, member: Any) -> None:
    alice = await member("alice")
    bob = await member("bob", policy="everyone")
    cases = [({"ciphertexts": [ciphertext(bob.listed[0]) | change]}, field) for change, field in MALFORMED_CIPHERTEXTS]
    for change, field in [*cases, *MALFORMED_MESSAGES]:
        body = message_body(bob, bob.listed) | change
        response = await client.post(f"{E}/messages", json=body, headers=alice.listed[0].headers)
        message = await expect_error(response, 422)
        assert message.startswith(field), (change, message)
    # A second ciphertext for one device is refused too.
    body = message_body(bob, [bob.listed[0], bob.listed[0]])
    await expect_error(await client.post(f"{E}/messages", json=body, headers=alice.listed[0].headers), 422, "second")
    await _nothing_stored(engine)


async def test_send__oversized_and_too_many_ciphertexts(client: Any, engine: Any, member: Any) -> None:
    alice = await member("alice")
    bob = await member("bob", policy="everyone")
    body = message_body(bob, bob.listed)
    body["ciphertexts"] = [{**body["ciphertexts"][0], "device_id": f"DEV{i:04d}"} for i in range(65)]
    response = await client.post(f"{E}/messages", json=body, headers=alice.listed[0].headers)
    await expect_error(response, 422, "ciphertexts: must be a list of 1-64")
    body = message_body(bob, bob.listed)
    body["padding"] = "x" * (1024 * 1024)
    raw = io.BytesIO(json.dumps(body).encode())
    headers = {**alice.listed[0].headers, "Content-Type": "application/json"}
    response = await client.post(f"{E}/messages", data=raw, headers=headers)
    assert response.status == 413
    await _nothing_stored(engine)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        pytest.param(
            {"type": 1.0},
            "ciphertexts[0].type",
        ),
        pytest.param(
            {"body": ""},
            "ciphertexts[0].body",
        ),
    ],
)
async def test_send__what_a_peer_would_refuse_is_refused_for_every_recipient(
    client: Any, engine: Any, member: Any, change: dict[str, Any], field: str
) -> None:
    """The client API refuses what the recipient's inbox would (federation/e2ee.py), for a
    local recipient as for a remote one: never a 202 for a message that cannot arrive."""
    alice = await member("alice")
    bob = await member("bob", policy="everyone")
    remote = await remote_person(engine, "bob")
    for where, body in (("local", message_body(bob, bob.listed)), ("remote", remote_message(remote, ["REMOTE1"]))):
        body["ciphertexts"][0].update(change)
        response = await client.post(f"{E}/messages", json=body, headers=alice.listed[0].headers)
        message = await expect_error(response, 422)
        assert message.startswith(field), (where, message)
    await _nothing_stored(engine)
    assert await count(engine, OutboxActivity) == 0


async def remote_person(engine: Any, username: str, domain: str = "remote.example") -> str:
    """A remote person the server already fetched (no network needed); their actor URI."""
    uri = f"https://{domain}/users/{username}"
    async with make_sessionmaker(engine)() as session:
        account = new_account(username)
        account.domain = domain
        account.uri = uri
        account.inbox_url = f"{uri}/inbox"
        account.fetched_at = now()
        session.add(account)
        await session.commit()
    return uri


def remote_message(actor: str, device_ids: list[str]) -> dict[str, Any]:
    return {
        "to": actor,
        "franking_tag": b64encode(b"\x03" * 32),
        "ciphertexts": [
            {"actor": actor, "device_id": d, "type": 0, "body": b64encode(d.encode() * 8)} for d in device_ids
        ],
    }


async def test_send__to_a_remote_member_queues_one_create_and_copies_for_own_devices(
    client: Any, engine: Any, config: Any, member: Any
) -> None:
    alice = await member("alice", devices=2)
    phone, laptop = alice.listed
    bob = await remote_person(engine, "bob")
    body = remote_message(bob, ["REMOTE1", "REMOTE2"])
    body["ciphertexts"].append(ciphertext(laptop, b"copy for the laptop"))
    sent = await ok(await client.post(f"{E}/messages", json=body, headers=phone.headers), 202, "SentMessage")
    async with engine.connect() as conn:
        (raw,) = (await conn.execute(select(OutboxActivity.body))).scalars().all()
        (inbox_url,) = (await conn.execute(select(Delivery.inbox_url))).scalars().all()
    assert inbox_url == f"{bob}/inbox"
    parsed = parse_encrypted_create(json.loads(raw))
    assert (parsed.id, parsed.actor, parsed.recipient) == (sent["id"], alice.actor, bob)
    assert parsed.sender_device == phone.device_id and parsed.franking_stamp == sent["stamp"]
    assert [(c.device_id, c.body) for c in parsed.ciphertexts] == [(d, d.encode() * 8) for d in ("REMOTE1", "REMOTE2")]
    assert "copy for the laptop" not in raw
    (row,) = await inbox(laptop)
    assert row["object_id"] == sent["id"] and row["recipient_actor"] == bob
    assert await count(engine, E2EEMessage) == 1


async def test_send__the_sending_device_must_be_active(client: Any, engine: Any, member: Any) -> None:
    alice = await member("alice")
    bob = await member("bob", policy="everyone")
    pending = await alice.new_device()
    await pending.register()
    response = await client.post(f"{E}/messages", json=message_body(bob, bob.listed), headers=pending.headers)
    await expect_error(response, 403, "not yet in your signed device list")
    without_crypto = await new_token(engine, alice.user.user_id, "read write follow")
    response = await client.post(f"{E}/messages", json=message_body(bob, bob.listed), headers=without_crypto)
    await expect_error(response, 403, "scopes")
    await _nothing_stored(engine)


async def test_ack__validation(client: Any, member: Any) -> None:
    alice = await member("alice")
    headers = alice.listed[0].headers
    for bad in ({}, {"ids": "1"}, {"ids": ["x"]}, {"ids": [None]}, {"ids": ["1"] * 1001}):
        await expect_error(await client.post(f"{E}/messages/ack", json=bad, headers=headers), 422, "ids")
    assert (await ok(await client.post(f"{E}/messages/ack", json={"ids": []}, headers=headers))) == {"deleted": 0}


async def test_ack__out_of_range_id_is_not_a_500(client: Any, member: Any) -> None:
    alice = await member("alice")
    response = await client.post(
        f"{E}/messages/ack", json={"ids": ["99999999999999999999"]}, headers=alice.listed[0].headers
    )
    assert response.status < 500, await response.text()


async def test_inbox__limit_and_expiry(client: Any, engine: Any, member: Any) -> None:
    alice = await member("alice")
    bob = await member("bob", policy="everyone")
    for _ in range(3):
        await ok(await _send(client, alice, bob), 202)
    receiver = bob.listed[0]
    page = await ok(await client.get(f"{E}/messages", params={"limit": "2"}, headers=receiver.headers))
    assert len(page["messages"]) == 2 and int(page["messages"][0]["id"]) < int(page["messages"][1]["id"])
    await expect_error(await client.get(f"{E}/messages", params={"limit": "x"}, headers=receiver.headers), 400)
    async with make_sessionmaker(engine)() as session:
        await session.execute(update(E2EEMessage).values(expires_at=now() - timedelta(seconds=1)))
        await session.commit()
    assert await inbox(receiver) == []  # hidden at once, deleted by the retention worker


# ---------------------------------------------------------------------------- retention


async def test_retention__prune_deletes_expired_ciphertexts_only(
    client: Any, engine: Any, config: Any, member: Any
) -> None:
    alice = await member("alice")
    bob = await member("bob", policy="everyone")
    old = await ok(await _send(client, alice, bob), 202)
    fresh = await ok(await _send(client, alice, bob), 202)
    async with make_sessionmaker(engine)() as session:
        await session.execute(
            update(E2EEMessage)
            .where(E2EEMessage.object_uri == old["id"])
            .values(expires_at=now() - timedelta(minutes=1))
        )
        await session.commit()
    async with make_sessionmaker(engine)() as session:
        removed = await e2ee.prune(session, config, now())
        await session.commit()
    assert removed >= 1
    async with engine.connect() as conn:
        left = (await conn.execute(select(E2EEMessage.object_uri))).scalars().all()
    assert left == [fresh["id"]]
    # Stored with the configured lifetime.
    async with engine.connect() as conn:
        expires = (await conn.execute(select(E2EEMessage.expires_at))).scalar_one()
    days = config.get("e2ee", "message_ttl_days")
    assert abs((expires.replace(tzinfo=None) - now().replace(tzinfo=None)) - timedelta(days=days)) < timedelta(
        minutes=5
    )


# ---------------------------------------------------------------------------- the plaintext box


async def test_plaintext_box__labelled_not_end_to_end_encrypted(client: Any, engine: Any, make_user: Any) -> None:
    bob = await make_user("bob")
    sender = await make_user("mastodon_user")
    empty = await ok(await client.get("/api/v1/hearthside/plaintext_messages", headers=bob.headers))
    assert empty == {"label": "not end-to-end encrypted", "messages": []}
    async with make_sessionmaker(engine)() as session:
        session.add(
            PlaintextMessage(
                id=new_id(),
                uri="https://m.example/statuses/1",
                recipient_account_id=bob.account_id,
                sender_account_id=sender.account_id,
                content="<p>hi</p>",
                created_at=now(),
            )
        )
        await session.commit()
    box = await ok(
        await client.get("/api/v1/hearthside/plaintext_messages", headers=bob.headers), schema="PlaintextMessageBox"
    )
    (message,) = box["messages"]
    assert message["from"] == "mastodon_user" and message["end_to_end_encrypted"] is False
    other = await ok(await client.get("/api/v1/hearthside/plaintext_messages", headers=sender.headers))
    assert other["messages"] == []
    await expect_error(await client.get("/api/v1/hearthside/plaintext_messages"), 401)


# ---------------------------------------------------------------------------- remote members


async def test_remote__unknown_remote_actor_is_404_without_holding_the_database(
    request: pytest.FixtureRequest, client: Any, engine: Any, config: Any, member: Any
) -> None:
    """Naming a remote actor the server does not know yet (and cannot reach) is a 404, for a
    key query, a claim and a send. The pool's wait is cut from 30 s to 2 s here, so a handler
    that waits for the connection it holds itself shows up as a 500 at once instead of
    stalling the suite."""
    alice = await member("alice")
    bob = await member("bob", policy="everyone")
    engine.sync_engine.pool._timeout = 2
    stranger = "https://unreachable.invalid/users/someone"
    headers = alice.listed[0].headers
    await expect_error(await client.get(f"{E}/keys", params={"actor": stranger}, headers=headers), 404, "no person")
    body = {"actor": stranger, "device_ids": ["ABCD"]}
    await expect_error(await client.post(f"{E}/keys/claim", json=body, headers=headers), 404, "no person")
    body = message_body(bob, bob.listed) | {"to": stranger}
    await expect_error(await client.post(f"{E}/messages", json=body, headers=headers), 404, "no person")


# ---------------------------------------------------------------------------- fuzz


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=10,
)
# Values that pass the outer checks (base64 of any size, device-id-shaped text, Olm message
# types, a local handle), so mutations reach the inner ones.
plausible = st.one_of(
    st.binary(max_size=80).map(b64encode),
    st.from_regex(r"[A-Za-z0-9_-]{1,70}", fullmatch=True),
    st.sampled_from([0, 1, -1, 2**63 - 1, "fuzz_bob", "fuzz_alice", "@fuzz_bob", "AAAAAAAAAAA"]),
)
leaf_values = st.one_of(json_values, plausible)
_FIELDS = [
    "device_id", "identity_key", "fingerprint_key", "one_time_keys", "fallback_key", "device_list", "reset",
    "actor", "device_ids", "to", "franking_tag", "ciphertexts", "ids", "key_id", "key", "signature", "type", "body",
]  # fmt: skip
_ENDPOINTS = [
    ("POST", f"{E}/devices"),
    ("POST", f"{E}/keys/claim"),
    ("POST", f"{E}/messages"),
    ("POST", f"{E}/messages/ack"),
    ("PUT", f"{E}/device_list"),
    ("POST", f"{E}/keys/upload"),
    ("PATCH", f"{E}/settings"),
]
_fuzz_state: dict[str, Any] = {}


def _mutate(template: Any, data: st.DataObject) -> Any:
    """``template`` with one value somewhere inside replaced by arbitrary JSON (deep ones
    preferred: they get past the outer checks)."""
    deeper = data.draw(st.integers(0, 4)) > 0
    if isinstance(template, dict) and template and deeper:
        key = data.draw(st.sampled_from(sorted(template)))
        return {**template, key: _mutate(template[key], data)}
    if isinstance(template, list) and template and deeper:
        index = data.draw(st.integers(0, len(template) - 1))
        return [*template[:index], _mutate(template[index], data), *template[index + 1 :]]
    return data.draw(leaf_values)


def _remote_ref(value: Any, base_url: str) -> bool:
    """Whether ``value`` names a remote actor (URI or handle), which the server would fetch."""
    if not isinstance(value, str):
        return False
    if value.startswith(("https://", "http://")):
        return not value.startswith(base_url + "/")
    _name, _, domain = value.lstrip("@").partition("@")
    return bool(domain) and domain.lower() != urlsplit(base_url).netloc.lower()


def _known_bug(path: str, body: Any, base_url: str) -> bool:
    """Inputs kept out of the fuzz: a remote actor (its lookup would send the fuzz to the
    network; test_remote__unknown_remote_actor_is_404_without_holding_the_database covers it)."""
    if not isinstance(body, dict):
        return False
    if _remote_ref(body.get("actor"), base_url) or _remote_ref(body.get("to"), base_url):
        return True
    return False


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
async def test_fuzz__arbitrary_json_never_gives_a_5xx(
    client: Any, engine: Any, config: Any, make_user: Any, data: st.DataObject
) -> None:
    """research/e2ee.md §8(d) test 26: arbitrary bodies, and valid bodies with one value
    replaced anywhere inside, answer 2xx-4xx with Mastodon's error shape."""
    if _fuzz_state.get("client") is not client:
        alice = Member(client, engine, config, await make_user("fuzz_alice", scopes=CRYPTO_SCOPES))
        bob = Member(client, engine, config, await make_user("fuzz_bob", scopes=CRYPTO_SCOPES))
        await alice.first_device(20)
        await bob.first_device(20)
        await ok(await client.patch(f"{E}/settings", json={"dm_policy": "everyone"}, headers=bob.user.headers))
        spare = await alice.new_device("SPARE1")
        templates = {
            f"{E}/devices": spare.registration(2),
            f"{E}/keys/claim": {"actor": bob.actor, "device_ids": [bob.listed[0].device_id]},
            f"{E}/messages": message_body(bob, bob.listed),
            f"{E}/messages/ack": {"ids": ["1", "2"]},
            f"{E}/device_list": {"device_list": alice.device_list(alice.listed)},
            f"{E}/keys/upload": alice.listed[0].keys(1),
            f"{E}/settings": {"dm_policy": "everyone"},
        }
        _fuzz_state.update(client=client, alice=alice, templates=templates)
    alice, templates = _fuzz_state["alice"], _fuzz_state["templates"]
    method, path = data.draw(st.sampled_from(_ENDPOINTS))
    kind = data.draw(st.sampled_from(["fields", "mutated", "mutated", "mutated", "any"]))
    if kind == "fields":
        body = data.draw(st.dictionaries(st.sampled_from(_FIELDS) | st.text(max_size=10), leaf_values, max_size=5))
    elif kind == "mutated":
        body = _mutate(templates[path], data)
    else:
        body = data.draw(json_values)
    assume(not _known_bug(path, body, config.base_url))
    # Registration needs a token without a device: a fresh one each time.
    headers = (await alice.new_device()).headers if path == f"{E}/devices" else alice.listed[0].headers
    raw = json.dumps(body).encode()
    response = await client.request(method, path, data=raw, headers={**headers, "Content-Type": "application/json"})
    assert response.status < 500, (method, path, body, await response.text())
    payload = await response.json()
    if response.status >= 400:
        assert set(payload) == {"error"}


async def test_account_deletion__forgets_devices_keys_and_waiting_ciphertext(
    client: Any, engine: Any, config: Any, member: Any
) -> None:
    alice = await member("alice", policy="everyone")
    bob = await member("bob")
    _message, tag = franked(bob, alice)
    body = {"to": alice.actor, "franking_tag": b64encode(tag), "ciphertexts": [ciphertext(alice.listed[0])]}
    await ok(await client.post(f"{E}/messages", json=body, headers=bob.listed[0].headers), 202, "SentMessage")
    await ok(
        await client.post(
            "/api/v1/hearthside/account/delete", json={"password": alice.user.password}, headers=alice.user.headers
        )
    )
    async with engine.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(E2EEMessage))).scalar() == 0
        owners = (
            await conn.execute(
                select(E2EEDevice.account_id).join(E2EEOneTimeKey, E2EEOneTimeKey.device_pk == E2EEDevice.id).distinct()
            )
        ).all()
        assert owners == [(bob.user.account_id,)]
        assert (await conn.execute(select(E2EEIdentity.account_id))).all() == [(bob.user.account_id,)]
        states = dict((await conn.execute(select(E2EEDevice.account_id, E2EEDevice.state))).all())
    assert states[alice.user.account_id] == "revoked"
    response = await client.get("/users/alice/devices", headers={"Accept": "application/activity+json"})
    assert response.status == 404
    claim = {"actor": alice.actor, "device_ids": [alice.listed[0].device_id]}
    response = await client.post(f"{E}/keys/claim", json=claim, headers=bob.listed[0].headers)
    assert response.status in (403, 404)


async def test_send__rate_limited_per_sender(aiohttp_client: Any, engine: Any, config: Any, make_user: Any) -> None:
    limited = await aiohttp_client(create_app(with_overrides(config, e2ee={"messages_per_minute": 2}), engine=engine))
    alice = Member(limited, engine, config, await make_user("alice", scopes=CRYPTO_SCOPES))
    bob = Member(limited, engine, config, await make_user("bob", scopes=CRYPTO_SCOPES))
    for person in (alice, bob):
        await person.first_device()
    await ok(await limited.patch(f"{E}/settings", json={"dm_policy": "everyone"}, headers=bob.user.headers))
    for _ in range(2):
        await ok(
            await limited.post(f"{E}/messages", json=message_body(bob, bob.listed), headers=alice.listed[0].headers),
            202,
        )
    refused = await limited.post(f"{E}/messages", json=message_body(bob, bob.listed), headers=alice.listed[0].headers)
    await expect_error(refused, 429, "too many messages")
    assert refused.headers["Retry-After"] == "60"
    assert await count(engine, E2EEMessage) == 2
