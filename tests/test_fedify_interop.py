"""Hearthside against a live Fedify peer: software nobody here wrote (issue 3, "How it is shown").

One Hearthside instance (SQLite, 127.0.0.2) and one Fedify 2.3.6 peer (127.0.0.7; see
tests/peers/fedify/README.md and research/interop-peers.md "Fedify"), for each of Fedify's two
first-knock settings:

- the Fedify actor joins a public Hearthside group and receives the group's ``Announce`` of a
  member's post; Fedify's log says what it verified (the Announce carries no proof of its own,
  so Fedify relies on Hearthside's draft-cavage ``rsa-sha256`` HTTP signature);
- a Hearthside member follows the Fedify actor and receives its posts; Fedify's outbound log
  shows each delivery accepted on the first knock, i.e. Hearthside verified Fedify's RFC 9421
  signature (``rsa-v1_5-sha256``, research/federation.md §3.3) or its draft-cavage one;
- a Fedify reply stitches into the member's thread, a Fedify Like counts, Undo(Follow) removes
  the follower; Hearthside's Create reaches Fedify with a FEP-8b32 proof that Fedify verifies;
- signatures alone, both ways: Fedify verifies Hearthside's draft-cavage and RFC 9421 signers
  and refuses tampered or misattributed ones; Hearthside verifies Fedify's HTTP signatures
  without the body's proofs and refuses unsigned, tampered and misattributed ones.

Fedify authenticates an inbox POST by Linked Data signature, then FEP-8b32 proof, and only then
the HTTP signature (README "Fedify behaviour worth knowing"); its ``signature`` event field says
which one it relied on. Hearthside always requires a valid HTTP signature (research/federation.md
§8.4 item 20), so a 202 on the first knock means Hearthside verified that scheme.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from federation_harness import Instance, eventually, instances
from peers.fedify import FIRST_KNOCKS, Event, FedifyPeer, StartPeer, fedify_peers

from crypto.integrity import sign_object
from crypto.signing import PrivateKey
from federation.httpsig import sign_request, sign_request_rfc9421
from server.actor_keys import LocalKeys, local_keys
from server.db import make_sessionmaker
from server.models import Account, Favourite, Follow, InboxItem, Notification, Status

pytestmark = pytest.mark.timeout(60)

CAVAGE = "draft-cavage-http-signatures-12"
RFC9421 = "rfc9421"
AS_PUBLIC = "https://www.w3.org/ns/activitystreams#Public"
AP = "application/activity+json"
FORGED_LOCAL_ACTOR = (
    "server/api/inbox.py receive(): federation.inbound.check_origins returns OriginVerdict(False, "
    "'signer_not_actor', needs_proof_or_fetch=<activity id>) when the HTTP signer is not the activity's actor; "
    "receive() then looks for that id only inside `object` (_find_embedded), finds nothing, sets refetch_uri = "
    "the activity id and answers 202 with an inbox_items row, even when the claimed actor is local. The worker "
    "(server/ingest.py apply_item) then GETs the activity id from this very instance (404, retried) and could "
    "never apply it anyway: _replace_embedded only replaces nodes under `object`, not the root "
    "(refetch_target_missing)."
)


@pytest.fixture
async def hearth(tmp_path: Path) -> AsyncIterator[Instance]:
    async for started in instances("sqlite", tmp_path / "hearthside", None, hosts=("127.0.0.2",)):
        yield started[0]


@pytest.fixture
async def fedify(tmp_path: Path) -> AsyncIterator[StartPeer]:
    async with fedify_peers(tmp_path / "fedify") as start:
        yield start


# ------------------------------------------------------------------------------------ helpers


def inbox_event(activity_id: str) -> Callable[[Event], bool]:
    return lambda e: e["event"] == "inbox" and e["id"] == activity_id


def rejected_event(activity_id: str) -> Callable[[Event], bool]:
    return lambda e: e["event"] == "rejected" and e["id"] == activity_id


def deliveries(peer: FedifyPeer, activity_id: str) -> list[tuple[str, int | str]]:
    """Fedify's POST attempts of one activity: (signature scheme, status or error), in order."""
    return [
        (e["http_signature"], e.get("status", e.get("error")))
        for e in peer.events()
        if e["event"] == "outbound" and e["method"] == "POST" and e.get("activity_id") == activity_id
    ]


def gets(peer: FedifyPeer, url: str) -> list[tuple[str, int | str]]:
    """Fedify's signed GET attempts of ``url``: (signature scheme, status or error), in order."""
    return [
        (e["http_signature"], e.get("status", e.get("error")))
        for e in peer.events()
        if e["event"] == "outbound" and e["method"] == "GET" and e["url"] == url
    ]


async def make_group(inst: Instance, owner: Any, name: str) -> dict[str, Any]:
    body = {"name": name, "display_name": name.title()}
    group: dict[str, Any] = await inst.api("POST", "/api/v1/hearthside/groups", owner, json=body)
    return group


async def resolve_url(inst: Instance, user: Any, url: str) -> dict[str, Any]:
    """Search with resolve=true on an actor URL (Fedify's WebFinger is https-only, README)."""
    found = await inst.api("GET", "/api/v2/search", user, params={"q": url, "resolve": "true", "type": "accounts"})
    assert [a["uri"] for a in found["accounts"]] == [url], found
    account: dict[str, Any] = found["accounts"][0]
    return account


async def account_row(inst: Instance, uri: str) -> Account:
    row: Account = await inst.one(Account, Account.uri == uri)
    return row


async def keys_of(inst: Instance, username: str) -> LocalKeys:
    async with make_sessionmaker(inst.engine)() as session:
        account = await session.get(Account, inst.users[username].account_id)
        assert account is not None
        keys = await local_keys(session, inst.config, account)
        await session.commit()
    return keys


def note_activity(actor: str, to: str, content: str = "<p>signed by HTTP signature only</p>") -> dict[str, Any]:
    """A Create(Note) with no proof and no LD signature: only an HTTP signature can vouch for it."""
    base = f"{actor}/statuses/test-{uuid.uuid4().hex}"
    return {
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": f"{base}/activity",
        "type": "Create",
        "actor": actor,
        "to": [to],
        "object": {"id": base, "type": "Note", "attributedTo": actor, "to": [to], "content": content},
    }


async def post_signed(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as session, session.post(url, data=body, headers=headers) as r:
        return r.status, await r.text()


# ------------------------------------------------------------------------------------ 1. Fedify joins a group


@pytest.mark.parametrize("first_knock", FIRST_KNOCKS)
async def test_fedify_joins_public_group__accepted_and_receives_signed_announce(
    hearth: Instance, fedify: StartPeer, first_knock: str
) -> None:
    peer = await fedify("127.0.0.7", first_knock)
    owner = await hearth.user("owner")
    group = await make_group(hearth, owner, "circle")
    group_url = hearth.actor("circle", group=True)

    follow = await peer.follow(group_url)
    assert follow["target"] == group_url
    accepted = await peer.wait_for(lambda e: e["event"] == "follow_accepted" and e["follow"] == follow["id"])
    assert accepted["target"] == group_url and accepted["matched_by"] == "follow-id"
    # Hearthside took Fedify's Follow on the first knock (it verified that scheme).
    assert deliveries(peer, follow["id"]) == [(first_knock, 202)]
    accept = await peer.wait_for(lambda e: e["event"] == "inbox" and e["type"] == "Accept")
    assert accept["actor"] == group_url and accept["object_id"] == follow["id"]
    # Hearthside signs with draft-cavage rsa-sha256 and puts no proof on an Accept: Fedify
    # verified the HTTP signature itself (research/federation.md §3.4).
    assert accept["http_signature"] == CAVAGE and accept["signature"] == CAVAGE

    alice_here = await account_row(hearth, peer.actor_url)
    group_row = await hearth.one(Account, Account.username == "circle", Account.domain == "")
    membership = await hearth.one(Follow, Follow.account_id == alice_here.id, Follow.target_account_id == group_row.id)
    assert membership.state == "accepted" and membership.remote

    post = await hearth.api("POST", "/api/v1/statuses", owner, json={"status": "Welcome in.", "group_id": group["id"]})
    announce = await peer.wait_for(
        lambda e: e["event"] == "inbox" and e["type"] == "Announce" and e["actor"] == group_url, timeout=15
    )
    assert announce["object_type"] == "Create" and announce["object_id"] == post["uri"] + "/activity"
    received = announce["received"]
    assert received["to"] == [AS_PUBLIC] and received["cc"] == [f"{group_url}/followers"]
    create = received["object"]
    assert create["actor"] == hearth.actor("owner") and create["object"]["id"] == post["uri"]
    assert create["object"]["content"] == "<p>Welcome in.</p>" and create["object"]["audience"] == group_url
    # The author's FEP-8b32 proof travels inside; the Announce itself is vouched for only by the
    # group's HTTP signature, which is what Fedify verified.
    assert create["proof"]["cryptosuite"] == "eddsa-jcs-2022"
    assert create["proof"]["verificationMethod"] == hearth.actor("owner") + "#ed25519-key"
    assert "proof" not in received and "signature" not in received
    assert announce["http_signature"] == CAVAGE and announce["signature"] == CAVAGE
    assert not [e for e in peer.events() if e["event"] in ("rejected", "inbox_error")]


# ------------------------------------------------------------------------------------ 2. a member follows Fedify


@pytest.mark.parametrize("first_knock", FIRST_KNOCKS)
async def test_member_follows_fedify_actor__receives_posts_signed_with_first_knock(
    hearth: Instance, fedify: StartPeer, first_knock: str
) -> None:
    peer = await fedify("127.0.0.7", first_knock)
    bob = await hearth.user("bob")
    alice = await resolve_url(hearth, bob, peer.actor_url)
    assert alice["username"] == "alice" and alice["acct"] == f"alice@127.0.0.7:{peer.port}"
    await hearth.api("POST", f"/api/v1/accounts/{alice['id']}/follow", bob)

    added = await peer.wait_for(lambda e: e["event"] == "follower_added")
    assert added["actor"] == hearth.actor("bob")
    follow_in = await peer.wait_for(inbox_event(added["follow"]))
    assert follow_in["type"] == "Follow" and follow_in["signature"] == CAVAGE
    assert (await peer.state())["followers"] == [hearth.actor("bob")]

    async def following() -> bool:
        rels = await hearth.api("GET", "/api/v1/accounts/relationships", bob, params={"id[]": alice["id"]})
        return bool(rels[0]["following"])

    await eventually(following, what="bob's follow of alice accepted on Hearthside")
    # Fedify's Accept went to bob's inbox signed with the first knock, and Hearthside took it.
    assert deliveries(peer, added["accept"]) == [(first_knock, 202)]

    post = await peer.post("<p>Hello from Fedify, with care.</p>", to="followers")

    async def on_home() -> list[dict[str, Any]]:
        home = await hearth.api("GET", "/api/v1/timelines/home", bob)
        return [s for s in home if s["uri"] == post["object"]]

    [status] = await eventually(on_home, what="Fedify's post in bob's home timeline")
    assert status["account"]["uri"] == peer.actor_url
    assert status["content"] == "<p>Hello from Fedify, with care.</p>"
    assert status["visibility"] == "private"  # addressed to alice's followers only
    # The point: one attempt, on the first knock, answered 202 — Hearthside verified Fedify's
    # RFC 9421 (or draft-cavage) signature as sent; no fall-back to the other scheme.
    assert deliveries(peer, post["id"]) == [(first_knock, 202)]
    [item] = await hearth.rows(InboxItem, InboxItem.activity_id == post["id"])
    assert item.signer_key_id == peer.actor_url + "#main-key" and item.recipient_account_id is None
    assert item.state == "done"


# ------------------------------------------------------------------------------------ 3. reply, like, unfollow


async def test_fedify_follows_member__reply_stitches_like_counts_undo_follow_removes(
    hearth: Instance, fedify: StartPeer
) -> None:
    peer = await fedify("127.0.0.7", RFC9421)
    bob = await hearth.user("bob")
    bob_url = hearth.actor("bob")

    follow = await peer.follow(bob_url)
    await peer.wait_for(lambda e: e["event"] == "follow_accepted" and e["follow"] == follow["id"])
    alice_here = await account_row(hearth, peer.actor_url)
    [row] = await hearth.rows(Follow, Follow.account_id == alice_here.id, Follow.target_account_id == bob.account_id)
    assert row.state == "accepted"

    # bob posts; his Create reaches alice. Outside groups Hearthside adds no FEP-8b32 proof
    # (server/outbox.py federate_post), so Fedify verified the draft-cavage HTTP signature.
    post = await hearth.api("POST", "/api/v1/statuses", bob, json={"status": "Rough day, but I made it."})
    create = await peer.wait_for(inbox_event(post["uri"] + "/activity"), timeout=15)
    assert create["object_id"] == post["uri"] and create["received"]["object"]["content"] == post["content"]
    assert create["signature"] == CAVAGE and create["http_signature"] == CAVAGE

    # alice replies, mentioning bob: the reply threads under bob's post.
    reply = await peer.post("<p>Proud of you.</p>", to="public", in_reply_to=post["uri"], mentions=[bob_url])
    assert deliveries(peer, reply["id"]) in ([], [(RFC9421, 202)])

    async def descendants() -> list[dict[str, Any]]:
        thread = await hearth.api("GET", f"/api/v1/statuses/{post['id']}/context", bob)
        return [s for s in thread["descendants"] if s["uri"] == reply["object"]]

    [threaded] = await eventually(descendants, what="alice's reply in bob's thread")
    assert threaded["in_reply_to_id"] == post["id"] and threaded["account"]["uri"] == peer.actor_url
    assert deliveries(peer, reply["id"]) == [(RFC9421, 202)]
    mention = await eventually(
        lambda: hearth.rows(Notification, Notification.type == "mention", Notification.account_id == bob.account_id),
        what="bob's mention notification",
    )
    assert len(mention) == 1

    # alice likes bob's post: Fedify looks it up with a signed GET, then sends the Like.
    like = await peer.like(post["uri"])

    async def favourites() -> int:
        shown = await hearth.api("GET", f"/api/v1/statuses/{post['id']}", bob)
        return int(shown["favourites_count"])

    assert await eventually(favourites, what="favourites_count of bob's post") == 1
    assert deliveries(peer, like["id"]) == [(RFC9421, 202)]
    assert gets(peer, post["uri"]) == [(RFC9421, 200)]
    [favourite] = await hearth.rows(Favourite)
    assert favourite.account_id == alice_here.id and favourite.status_id == int(post["id"])

    # alice unfollows: Undo(Follow) removes her from bob's followers.
    undo = await peer.unfollow(bob_url)

    async def unfollowed() -> bool:
        return not await hearth.rows(Follow, Follow.target_account_id == bob.account_id)

    await eventually(unfollowed, what="alice's follow removed on Hearthside")
    assert deliveries(peer, undo["id"]) == [(RFC9421, 202)]
    shown = await hearth.api("GET", f"/api/v1/accounts/{bob.account_id}", bob)
    assert shown["followers_count"] == 0
    assert not [e for e in peer.events() if e["event"] in ("rejected", "inbox_error")]


# ------------------------------------------------------------------------------------ 4. signatures alone


@pytest.mark.parametrize("scheme", [CAVAGE, RFC9421])
async def test_fedify_verifies_hearthside_signature__refuses_tampered_and_misattributed(
    hearth: Instance, fedify: StartPeer, scheme: str
) -> None:
    """Hearthside's own signers (federation/httpsig.py) with bob's real key, against Fedify's
    verifier; the activity has no proof, so the HTTP signature is all Fedify can rely on."""
    peer = await fedify("127.0.0.7", RFC9421)
    await hearth.user("bob")
    await hearth.user("carol")
    keys = await keys_of(hearth, "bob")
    key = PrivateKey.from_pem(keys.rsa_private_pem)
    sign = sign_request if scheme == CAVAGE else sign_request_rfc9421

    def signed(activity: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
        body = json.dumps(activity).encode()
        headers = sign("POST", peer.inbox_url, headers=None, body=body, key=key, key_id=keys.rsa_key_id, now=now())
        return body, headers

    def now() -> datetime:
        return datetime.now(UTC)

    good = note_activity(hearth.actor("bob"), peer.actor_url)
    status, text = await post_signed(peer.inbox_url, *signed(good))
    assert status == 202, text
    event = await peer.wait_for(inbox_event(good["id"]))
    assert event["http_signature"] == scheme and event["signature"] == scheme
    assert event["actor"] == hearth.actor("bob")

    tampered = note_activity(hearth.actor("bob"), peer.actor_url)
    body, headers = signed(tampered)
    status, text = await post_signed(peer.inbox_url, body.replace(b"signed by", b"forged by"), headers)
    assert status == 401, text
    refused = await peer.wait_for(rejected_event(tampered["id"]))
    assert refused["reason"] == "invalidSignature" and refused["key_id"] == keys.rsa_key_id

    # Signed by bob's key but claiming to be carol: Fedify refuses the mismatch.
    misattributed = note_activity(hearth.actor("carol"), peer.actor_url)
    status, text = await post_signed(peer.inbox_url, *signed(misattributed))
    assert status == 401, text
    assert (await peer.wait_for(rejected_event(misattributed["id"])))["reason"] == "actorKeyMismatch"
    assert not [e for e in peer.events() if e["event"] == "inbox" and e["id"] in (tampered["id"], misattributed["id"])]


async def test_fedify_verifies_hearthside_fep8b32_proof_without_http_signature__refuses_tampered(
    hearth: Instance, fedify: StartPeer
) -> None:
    """crypto/integrity.py's eddsa-jcs-2022 proof by bob's Ed25519 key (FEP-521a Multikey in his
    ``assertionMethod``), POSTed with no HTTP signature: Fedify checks a proof before any HTTP
    signature (README), so the proof alone must convince it; altered content must not."""
    peer = await fedify("127.0.0.7", RFC9421)
    await hearth.user("bob")
    keys = await keys_of(hearth, "bob")
    key = PrivateKey.from_pem(keys.ed25519_private_pem)
    headers = {"Content-Type": AP}

    unsigned_doc = note_activity(hearth.actor("bob"), peer.actor_url)
    import os

    if os.environ.get("DI"):
        unsigned_doc["@context"] = [
            "https://www.w3.org/ns/activitystreams",
            "https://w3id.org/security/data-integrity/v1",
        ]
    good = sign_object(unsigned_doc, key, keys.ed25519_key_id, datetime.now(UTC))
    if os.environ.get("DUMP"):
        actor_doc = await hearth.api("GET", "/users/bob", headers={"Accept": AP})
        Path("/tmp/fi-actor.json").write_text(
            json.dumps(actor_doc if isinstance(actor_doc, dict) else json.loads(actor_doc))
        )
        Path("/tmp/fi-doc.json").write_text(json.dumps(good))
    status, text = await post_signed(peer.inbox_url, json.dumps(good).encode(), headers)
    assert status == 202, text
    event = await peer.wait_for(inbox_event(good["id"]))
    assert event["signature"] == "fep-8b32-proof" and event["http_signature"] == "none"
    assert event["received"]["proof"]["verificationMethod"] == hearth.actor("bob") + "#ed25519-key"

    tampered = sign_object(
        note_activity(hearth.actor("bob"), peer.actor_url), key, keys.ed25519_key_id, datetime.now(UTC)
    )
    tampered["object"]["content"] = "<p>words bob never wrote</p>"
    status, text = await post_signed(peer.inbox_url, json.dumps(tampered).encode(), headers)
    assert status == 401, text
    refused = await peer.wait_for(rejected_event(tampered["id"]))
    assert refused["reason"] == "noSignature" and refused["http_signature"] == "none"


@pytest.mark.parametrize("spec", FIRST_KNOCKS)
async def test_hearthside_inbox__verifies_fedify_http_signature_alone__refuses_unsigned_and_tampered(
    hearth: Instance, fedify: StartPeer, spec: str
) -> None:
    """Fedify's ``send-signed`` (HTTP signature only, no LD signature or proof) to bob's inbox."""
    peer = await fedify("127.0.0.7", spec)
    await hearth.user("bob")
    inbox = hearth.actor("bob") + "/inbox"

    good = note_activity(peer.actor_url, hearth.actor("bob"))
    answer = await peer.send_signed(inbox, good, spec=spec)
    assert answer["status"] == 202, answer
    [item] = await hearth.rows(InboxItem, InboxItem.activity_id == good["id"])
    assert item.signer_key_id == peer.actor_url + "#main-key" and item.actor_uri == peer.actor_url
    assert item.refetch_uri is None

    unsigned = note_activity(peer.actor_url, hearth.actor("bob"))
    answer = await peer.send_signed(inbox, unsigned, spec="none")
    assert answer["status"] == 401, answer

    tampered = note_activity(peer.actor_url, hearth.actor("bob"))
    answer = await peer.send_signed(inbox, tampered, spec=spec, tamper="body")
    assert answer["status"] == 401, answer
    assert not await hearth.rows(InboxItem, InboxItem.activity_id.in_([unsigned["id"], tampered["id"]]))


async def test_hearthside_inbox__never_applies_activity_signed_by_another_actor(
    hearth: Instance, fedify: StartPeer
) -> None:
    """alice's valid signature on a Create claiming to be by ``mallory`` of the same origin: at
    most it is refetched from its origin (FEP-fe34), which has no such activity; nothing is stored."""
    peer = await fedify("127.0.0.7", RFC9421)
    await hearth.user("bob")
    mallory = f"{peer.origin}/users/mallory"
    forged = note_activity(mallory, hearth.actor("bob"))
    forged["object"]["tag"] = [{"type": "Mention", "href": hearth.actor("bob")}]
    answer = await peer.send_signed(hearth.actor("bob") + "/inbox", forged)
    assert answer["status"] in (202, 401), answer
    if answer["status"] == 202:

        async def tried() -> bool:
            [item] = await hearth.rows(InboxItem, InboxItem.activity_id == forged["id"])
            return item.state != "pending" or item.attempts > 0

        await eventually(tried, what="the forged item processed once")
    assert not await hearth.rows(Status, Status.uri == forged["object"]["id"])
    assert not await hearth.rows(Account, Account.uri == mallory)


@pytest.mark.xfail(strict=True, reason=FORGED_LOCAL_ACTOR)
async def test_hearthside_inbox__refuses_remote_signature_on_activity_of_local_actor(
    hearth: Instance, fedify: StartPeer
) -> None:
    """alice's valid key, but the activity claims to come from Hearthside's own bob: no remote
    key may speak for a local actor, so this is refused at once and nothing is stored."""
    peer = await fedify("127.0.0.7", RFC9421)
    await hearth.user("bob")
    forged = note_activity(hearth.actor("bob"), hearth.actor("bob"))
    answer = await peer.send_signed(hearth.actor("bob") + "/inbox", forged)
    assert not await hearth.rows(InboxItem, InboxItem.activity_id == forged["id"])
    assert answer["status"] == 401, answer
