"""Hearthside against a live Fedify peer: software nobody here wrote (issue 3, "How it is shown").

One Hearthside instance (SQLite, 127.0.0.2) and one Fedify 2.3.6 peer (127.0.0.7; see
tests/peers/fedify/README.md and research/interop-peers.md "Fedify") per test, for each of
Fedify's two first-knock settings where the scheme matters:

- the Fedify actor joins a public Hearthside group, receives the group's ``Announce`` of a
  member's post, posts into the group itself (``audience``, FEP-1b12) and gets a member's reply;
- a Hearthside member follows the Fedify actor (search ``resolve=true`` on its URL) and its
  posts reach the member's home timeline;
- a Fedify reply stitches into a member's thread, a Fedify Like counts, Undo(Follow) removes
  the follower;
- signatures alone, both ways: Fedify verifies Hearthside's draft-cavage and RFC 9421 signers
  (federation/httpsig.py) and refuses tampered or misattributed requests; Hearthside verifies
  Fedify's HTTP signatures with no proof in the body and refuses unsigned, tampered and
  misattributed ones.

How the scheme is read. Fedify authenticates an inbox POST by Linked Data signature, then
FEP-8b32 proof, and only then the HTTP signature (README "Fedify behaviour worth knowing"); its
``signature`` event field says which one it relied on. Hearthside signs with draft-cavage
``rsa-sha256``, and adds FEP-8b32 proofs to the activities its groups redistribute (Fedify
verifies those too: a test below sends one with no HTTP signature at all). The other way, Hearthside
always requires a valid HTTP signature (research/federation.md §8.4 item 20), so Fedify's
outbound log showing one attempt with the first knock, answered 2xx, means Hearthside verified
that scheme: RFC 9421 ``rsa-v1_5-sha256`` (research/federation.md §3.3) or draft-cavage.
"""

from __future__ import annotations

import asyncio
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


def inbox_event_of(kind: str, object_id: str) -> Callable[[Event], bool]:
    return lambda e: e["event"] == "inbox" and e["type"] == kind and e["object_id"] == object_id


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


def note_activity(actor: str, to: str, *, mention: str | None = None) -> dict[str, Any]:
    """A Create(Note) with no proof and no LD signature: only an HTTP signature can vouch for it."""
    base = f"{actor}/statuses/test-{uuid.uuid4().hex}"
    note: dict[str, Any] = {
        "id": base,
        "type": "Note",
        "attributedTo": actor,
        "to": [to],
        "content": "<p>signed by HTTP signature only</p>",
    }
    if mention:
        note["tag"] = [{"type": "Mention", "href": mention}]
    return {
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": f"{base}/activity",
        "type": "Create",
        "actor": actor,
        "to": [to],
        "object": note,
    }


async def post_signed(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as session, session.post(url, data=body, headers=headers) as r:
        return r.status, await r.text()


# ------------------------------------------------------------------------------------ 1. Fedify joins a group


@pytest.mark.parametrize("first_knock", FIRST_KNOCKS)
async def test_fedify_joins_public_group__receives_signed_announces_and_posts_into_it(
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
    # Hearthside took Fedify's Follow on the first knock: it verified that scheme.
    assert deliveries(peer, follow["id"]) == [(first_knock, 202)]
    accept = await peer.wait_for(lambda e: e["event"] == "inbox" and e["type"] == "Accept")
    assert accept["actor"] == group_url and accept["object_id"] == follow["id"]
    # Hearthside signs with draft-cavage rsa-sha256 and puts no proof on an Accept: Fedify
    # verified the HTTP signature itself (research/federation.md §3.4).
    assert accept["http_signature"] == CAVAGE and accept["signature"] == CAVAGE

    alice_here = await account_row(hearth, peer.actor_url)
    membership = await hearth.one(
        Follow, Follow.account_id == alice_here.id, Follow.target_account_id == int(group["id"])
    )
    assert membership.state == "accepted" and membership.remote

    # A member posts in the group: the group announces the author's Create to alice.
    post = await hearth.api("POST", "/api/v1/statuses", owner, json={"status": "Welcome in.", "group_id": group["id"]})
    announce = await peer.wait_for(inbox_event_of("Announce", post["uri"] + "/activity"), timeout=15)
    assert announce["actor"] == group_url and announce["object_type"] == "Create"
    received = announce["received"]
    assert received["to"] == [AS_PUBLIC] and received["cc"] == [f"{group_url}/followers"]
    create = received["object"]
    assert create["actor"] == hearth.actor("owner") and create["object"]["id"] == post["uri"]
    assert create["object"]["content"] == "<p>Welcome in.</p>" and create["object"]["audience"] == group_url
    # The author's FEP-8b32 proof travels inside, unchanged (FEP-1b12); the Announce itself is
    # vouched for only by the group's HTTP signature, and that is what Fedify verified.
    assert create["proof"]["cryptosuite"] == "eddsa-jcs-2022"
    assert create["proof"]["verificationMethod"] == hearth.actor("owner") + "#ed25519-key"
    assert "proof" not in received and "signature" not in received
    assert announce["http_signature"] == CAVAGE and announce["signature"] == CAVAGE

    # alice posts into the group (``audience``, FEP-1b12): Hearthside takes it on the first knock,
    # files it in the group, and the group announces it to its members (alice included).
    mine = await peer.post("<p>First time here. Hi all.</p>", to="public", audience=group_url)

    async def stored() -> list[Status]:
        return await hearth.rows(Status, Status.uri == mine["object"])

    [copy] = await eventually(stored, what="alice's group post on Hearthside")
    assert copy.group_id == int(group["id"])
    timeline = await hearth.api("GET", f"/api/v1/hearthside/groups/{group['id']}/timeline", owner)
    assert mine["object"] in [s["uri"] for s in timeline]
    echoed = await peer.wait_for(inbox_event_of("Announce", mine["id"]), timeout=15)
    assert echoed["actor"] == group_url and echoed["signature"] == CAVAGE
    assert deliveries(peer, mine["id"]) == [(first_knock, 202)]

    # The owner replies: the reply stays in the group and reaches alice directly, as a Create
    # carrying the owner's proof, which Fedify checks before the HTTP signature.
    reply = await hearth.api(
        "POST", "/api/v1/statuses", owner, json={"status": "Welcome, glad you came.", "in_reply_to_id": str(copy.id)}
    )
    direct = await peer.wait_for(inbox_event(reply["uri"] + "/activity"), timeout=15)
    answer = direct["received"]
    assert answer["object"]["inReplyTo"] == mine["object"] and answer["object"]["audience"] == group_url
    assert answer["proof"]["verificationMethod"] == hearth.actor("owner") + "#ed25519-key"
    assert direct["http_signature"] == CAVAGE and direct["signature"] in (CAVAGE, "fep-8b32-proof")
    assert not [e for e in peer.events() if e["event"] in ("rejected", "inbox_error")]


async def test_fedify_verifies_proof_of_hearthside_group_post__without_http_signature(
    hearth: Instance, fedify: StartPeer
) -> None:
    """The Create Hearthside really sent (embedded in the group's Announce), POSTed again with no
    HTTP signature: Fedify checks a FEP-8b32 proof before any HTTP signature (README), so the
    author's proof alone must convince it; altered content must not."""
    peer = await fedify("127.0.0.7", RFC9421)
    owner = await hearth.user("owner")
    group = await make_group(hearth, owner, "circle")
    group_url = hearth.actor("circle", group=True)
    follow = await peer.follow(group_url)
    await peer.wait_for(lambda e: e["event"] == "follow_accepted" and e["follow"] == follow["id"])
    post = await hearth.api("POST", "/api/v1/statuses", owner, json={"status": "Check-in.", "group_id": group["id"]})
    announce = await peer.wait_for(inbox_event_of("Announce", post["uri"] + "/activity"), timeout=15)
    create = announce["received"]["object"]
    assert create["object"]["id"] == post["uri"] and create["proof"]["cryptosuite"] == "eddsa-jcs-2022"

    tampered = json.loads(json.dumps(create))
    tampered["id"] += "-tampered"  # its own id, so that no dedupe by id can hide the outcome
    tampered["object"]["content"] = "<p>words the owner never wrote</p>"
    status, text = await post_signed(peer.inbox_url, json.dumps(tampered).encode(), {"Content-Type": AP})
    assert status == 401, text

    status, text = await post_signed(peer.inbox_url, json.dumps(create).encode(), {"Content-Type": AP})
    assert status == 202, text
    event = await peer.wait_for(inbox_event(create["id"]))
    assert event["signature"] == "fep-8b32-proof" and event["http_signature"] == "none"


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

    # alice likes bob's post: Fedify looks it up with a signed GET (RFC 9421, accepted: Hearthside
    # verifies signed fetches, server/signatures.py fetch_signer), then sends the Like.
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


@pytest.mark.parametrize("spec", FIRST_KNOCKS)
async def test_hearthside_inbox__verifies_fedify_http_signature_alone__refuses_unsigned_tampered_misattributed(
    hearth: Instance, fedify: StartPeer, spec: str
) -> None:
    """Fedify's ``send-signed`` (HTTP signature only, no LD signature or proof) to bob's inbox."""
    peer = await fedify("127.0.0.7", spec)
    bob = await hearth.user("bob")
    inbox = hearth.actor("bob") + "/inbox"

    good = note_activity(peer.actor_url, AS_PUBLIC, mention=hearth.actor("bob"))
    answer = await peer.send_signed(inbox, good, spec=spec)
    assert answer["status"] == 202, answer
    [item] = await hearth.rows(InboxItem, InboxItem.activity_id == good["id"])
    assert item.signer_key_id == peer.actor_url + "#main-key" and item.actor_uri == peer.actor_url
    assert item.refetch_uri is None and item.recipient_account_id == bob.account_id

    async def applied() -> list[Status]:
        return await hearth.rows(Status, Status.uri == good["object"]["id"])

    [note] = await eventually(applied, what="the HTTP-signed note stored")
    assert note.account_id == (await account_row(hearth, peer.actor_url)).id

    unsigned = note_activity(peer.actor_url, AS_PUBLIC, mention=hearth.actor("bob"))
    answer = await peer.send_signed(inbox, unsigned, spec="none")
    assert answer["status"] == 401, answer

    tampered = note_activity(peer.actor_url, AS_PUBLIC, mention=hearth.actor("bob"))
    answer = await peer.send_signed(inbox, tampered, spec=spec, tamper="body")
    assert answer["status"] == 401, answer
    assert not await hearth.rows(InboxItem, InboxItem.activity_id.in_([unsigned["id"], tampered["id"]]))

    # alice's valid signature on a Create claiming to be by ``mallory`` of the same origin, with
    # no proof by mallory: only the actor's own proof could vouch for a relayed activity
    # (FEP-fe34, research/federation.md §8.4 item 23), so it is refused and nothing is fetched.
    mallory = f"{peer.origin}/users/mallory"
    forged = note_activity(mallory, AS_PUBLIC, mention=hearth.actor("bob"))
    answer = await peer.send_signed(inbox, forged, spec=spec)
    assert answer["status"] == 401, answer
    assert not await hearth.rows(InboxItem, InboxItem.activity_id == forged["id"])
    assert not await hearth.rows(Account, Account.uri == mallory)


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


async def test_hearthside_inbox__accepts_relayed_fedify_activity_by_its_proof__refuses_tampered(
    hearth: Instance, fedify: StartPeer
) -> None:
    """FEP-8b32 the other way: Fedify peer A's Create (with A's eddsa-jcs-2022 proof and RSA LD
    signature, as A sent it to B) relayed to Hearthside by peer B under B's own HTTP signature.
    The signer is not the actor, so only A's proof can vouch for it (FEP-fe34)."""
    a, b = await asyncio.gather(fedify("127.0.0.7", RFC9421), fedify("127.0.0.8", RFC9421))
    await hearth.user("bob")
    follow = await b.follow(a.actor_url)
    await b.wait_for(lambda e: e["event"] == "follow_accepted" and e["follow"] == follow["id"])
    post = await a.post("<p>Relayed, with its proof.</p>", to="public")
    original = (await b.wait_for(inbox_event(post["id"])))["received"]
    assert original["proof"]["verificationMethod"].startswith(a.actor_url + "#")

    tampered = json.loads(json.dumps(original))
    tampered["object"]["content"] = "<p>words A never wrote</p>"
    answer = await b.send_signed(hearth.base_url + "/inbox", tampered)
    assert answer["status"] == 401, answer
    assert not await hearth.rows(InboxItem, InboxItem.activity_id == post["id"])

    answer = await b.send_signed(hearth.base_url + "/inbox", original)
    assert answer["status"] == 202, answer
    [item] = await hearth.rows(InboxItem, InboxItem.activity_id == post["id"])
    assert item.actor_uri == a.actor_url and item.signer_key_id == b.actor_url + "#main-key"
    assert item.refetch_uri is None
