"""What Hearthside serves over ActivityPub GET, on the live app (SQLite and PostgreSQL):
actors, notes and their activities, collections, negotiation, deletion, suspension, and who
may fetch non-public posts (research/federation.md §8.1, §8.2, §2.4, §5).

Signed fetches come from "remote" actors whose keys are put in the key cache directly (the
server then verifies without fetching anything), signed with ``federation.httpsig``.
"""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select

from crypto.keys import generate_rsa
from crypto.signing import PrivateKey, PublicKey
from federation.httpsig import sign_request
from server.accounts import new_account
from server.actor_keys import instance_keys, local_keys, rotate_keys
from server.db import make_sessionmaker
from server.ids import new_id
from server.models import Account, ActorKey, Follow, Status
from server.web import now

BASE = "http://127.0.0.1:8080"
DOMAIN = "127.0.0.1:8080"
AP = {"Accept": "application/activity+json"}
PUBLIC = "https://www.w3.org/ns/activitystreams#Public"
BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
STAFF_SCOPES = "read write follow admin:read admin:write"


async def get_ap(client: Any, path: str, *, status: int = 200, headers: dict[str, str] | None = None) -> Any:
    response = await client.get(path, headers=headers or AP)
    assert response.status == status, await response.text()
    assert response.headers["Content-Type"] == "application/activity+json"
    assert "Accept" in response.headers["Vary"] and "Signature" in response.headers["Vary"]
    return await response.json(content_type=None)


async def post(client: Any, user: Any, text: str, **fields: Any) -> dict[str, Any]:
    response = await client.post("/api/v1/statuses", json={"status": text, **fields}, headers=user.headers)
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def new_group(client: Any, owner: Any, name: str, **fields: Any) -> dict[str, Any]:
    response = await client.post("/api/v1/hearthside/groups", json={"name": name, **fields}, headers=owner.headers)
    assert response.status == 200, await response.text()
    group: dict[str, Any] = await response.json()
    return group


async def join(client: Any, user: Any, group_id: str) -> None:
    response = await client.post(f"/api/v1/hearthside/groups/{group_id}/join", headers=user.headers)
    assert response.status == 200, await response.text()


# ---------------------------------------------------------------------------- remote signers


class Remote:
    """A remote actor known to the server (account row and cached key), able to sign GETs."""

    def __init__(self, account_id: int, uri: str, key: PrivateKey) -> None:
        self.account_id = account_id
        self.uri = uri
        self.key_id = f"{uri}#main-key"
        self.key = key

    def sign(self, path: str, accept: str = "application/activity+json") -> dict[str, str]:
        return sign_request(
            "GET", BASE + path, headers={"Accept": accept}, body=None, key=self.key, key_id=self.key_id, now=now()
        )


_REMOTE_KEY = generate_rsa()


async def remote(engine: Any, username: str, domain: str) -> Remote:
    uri = f"https://{domain}/users/{username}"
    async with make_sessionmaker(engine)() as session:
        account = new_account(username)
        account.domain = domain
        account.uri = uri
        account.inbox_url = f"{uri}/inbox"
        session.add(account)
        await session.flush()
        session.add(
            ActorKey(
                id=new_id(),
                account_id=account.id,
                key_id=f"{uri}#main-key",
                kind="rsa",
                public_pem=_REMOTE_KEY.public_pem,
                private_pem=None,
                created_at=now(),
            )
        )
        await session.commit()
    return Remote(account.id, uri, PrivateKey.from_pem(_REMOTE_KEY.private_pem))


async def accepted_follow(engine: Any, follower_id: int, target_id: int) -> None:
    async with make_sessionmaker(engine)() as session:
        session.add(
            Follow(id=new_id(), account_id=follower_id, target_account_id=target_id, state="accepted", created_at=now())
        )
        await session.commit()


# ---------------------------------------------------------------------------- actors


ACTIVITYPUB_ACCEPTS = (
    "application/activity+json",
    'application/ld+json; profile="https://www.w3.org/ns/activitystreams"',
    "application/ld+json",
    "application/json",
    "application/activity+json, application/ld+json",
    "*/*",
)


async def test_actor__person_served_for_every_activitypub_accept(client: Any, make_user: Any) -> None:
    await make_user("alice")
    for accept in ACTIVITYPUB_ACCEPTS:
        actor = await get_ap(client, "/users/alice", headers={"Accept": accept})
        assert actor["id"] == f"{BASE}/users/alice", accept
        assert actor["type"] == "Person"
        assert actor["preferredUsername"] == "alice"
        for name in ("inbox", "outbox", "followers", "following", "endpoints", "publicKey", "assertionMethod"):
            assert name in actor, name
        assert actor["endpoints"]["sharedInbox"] == f"{BASE}/inbox"
        key = actor["publicKey"]
        assert key["id"] == f"{BASE}/users/alice#main-key" and key["owner"] == actor["id"]
        assert PublicKey.from_pem(key["publicKeyPem"]).kind == "rsa"
        (multikey,) = actor["assertionMethod"]
        assert PublicKey.from_multibase(multikey["publicKeyMultibase"]).kind == "ed25519"


async def test_actor__browser_gets_escaped_html(client: Any, make_user: Any) -> None:
    alice = await make_user("alice")
    patched = await client.patch(
        "/api/v1/accounts/update_credentials",
        json={"display_name": "<script>alert(1)</script>"},
        headers=alice.headers,
    )
    assert patched.status == 200, await patched.text()
    response = await client.get("/users/alice", headers={"Accept": BROWSER})
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/html")
    assert response.headers["Content-Security-Policy"] == "default-src 'none'"
    page = await response.text()
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert f'<link rel="alternate" type="application/activity+json" href="{BASE}/users/alice">' in page


async def test_actor__group_document_and_path_kind_must_match(client: Any, make_user: Any) -> None:
    owner = await make_user("owner")
    await new_group(client, owner, "circle", join_policy="approval")
    group = await get_ap(client, "/groups/circle")
    assert group["type"] == "Group"
    assert group["attributedTo"] == f"{BASE}/groups/circle/moderators"
    assert group["manuallyApprovesFollowers"] is True
    assert group["postingRestrictedToMods"] is False
    assert group["publicKey"]["id"] == f"{BASE}/groups/circle#main-key"
    assert (await client.get("/users/circle", headers=AP)).status == 404
    assert (await client.get("/groups/owner", headers=AP)).status == 404
    assert (await client.get("/users/nobody", headers=AP)).status == 404


async def test_actor__open_group_does_not_require_approval(client: Any, make_user: Any) -> None:
    owner = await make_user("owner")
    await new_group(client, owner, "open_circle")
    assert (await get_ap(client, "/groups/open_circle"))["manuallyApprovesFollowers"] is False


async def test_actor__instance_actor_is_unsigned_and_uses_instance_key(client: Any, config: Any) -> None:
    actor = await get_ap(client, "/actor")
    assert actor["type"] == "Application"
    assert actor["id"] == f"{BASE}/actor"
    assert actor["preferredUsername"] == DOMAIN
    assert actor["publicKey"]["id"] == f"{BASE}/actor#main-key"
    assert actor["publicKey"]["publicKeyPem"] == instance_keys(config).rsa_public_pem
    outbox = await get_ap(client, "/actor/outbox")
    assert outbox["type"] == "OrderedCollection" and outbox["totalItems"] == 0


async def test_actor__deleted_account_is_410_tombstone(client: Any, make_user: Any) -> None:
    alice = await make_user("alice")
    deleted = await client.post(
        "/api/v1/hearthside/account/delete", json={"password": alice.password}, headers=alice.headers
    )
    assert deleted.status == 200, await deleted.text()
    stone = await get_ap(client, "/users/alice", status=410)
    assert stone["type"] == "Tombstone"
    assert stone["id"] == f"{BASE}/users/alice"
    assert stone["formerType"] == "Person"
    assert (await client.get("/users/alice/outbox", headers=AP)).status == 404


async def test_actor__suspended_account_serves_identity_but_no_content(client: Any, make_user: Any) -> None:
    mod = await make_user("mod", role="moderator", scopes=STAFF_SCOPES)
    alice = await make_user("alice")
    status = await post(client, alice, "something personal")
    acted = await client.post(
        f"/api/v1/admin/accounts/{alice.account_id}/action", json={"type": "suspend"}, headers=mod.headers
    )
    assert acted.status == 200, await acted.text()
    actor = await get_ap(client, "/users/alice")
    assert actor["suspended"] is True
    assert actor["name"] == "" and actor["summary"] == ""
    assert "attachment" not in actor and "icon" not in actor
    assert actor["publicKey"]["id"] == f"{BASE}/users/alice#main-key"
    assert (await client.get(f"/users/alice/statuses/{status['id']}", headers=AP)).status == 404
    outbox = await get_ap(client, "/users/alice/outbox")
    assert outbox["totalItems"] == 0
    html = await (await client.get("/users/alice", headers={"Accept": BROWSER})).text()
    assert "suspended" in html


# ---------------------------------------------------------------------------- keys


async def test_keys__created_once_under_concurrent_first_fetches(client: Any, make_user: Any, engine: Any) -> None:
    await make_user("alice")
    documents = await asyncio.gather(*(get_ap(client, "/users/alice") for _ in range(5)))
    assert len({d["publicKey"]["publicKeyPem"] for d in documents}) == 1
    assert len({d["assertionMethod"][0]["publicKeyMultibase"] for d in documents}) == 1
    async with engine.connect() as conn:
        rows = (await conn.execute(select(ActorKey.kind, func.count()).group_by(ActorKey.kind))).all()
    assert dict(rows) == {"rsa": 1, "ed25519": 1}


async def test_keys__rotation_revokes_old_and_publishes_new(
    client: Any, make_user: Any, engine: Any, config: Any
) -> None:
    alice = await make_user("alice")
    before = await get_ap(client, "/users/alice")
    async with make_sessionmaker(engine)() as session:
        account = await session.get(Account, alice.account_id)
        assert account is not None
        rotated = await rotate_keys(session, config, account)
        await session.commit()
        again = await local_keys(session, config, account)
    assert again == rotated
    assert rotated.rsa_key_id == f"{BASE}/users/alice#main-key"
    after = await get_ap(client, "/users/alice")
    assert after["publicKey"]["publicKeyPem"] == rotated.rsa_public_pem
    assert after["publicKey"]["publicKeyPem"] != before["publicKey"]["publicKeyPem"]
    assert after["assertionMethod"][0]["publicKeyMultibase"] != before["assertionMethod"][0]["publicKeyMultibase"]
    async with engine.connect() as conn:
        rows = (await conn.execute(select(ActorKey.key_id, ActorKey.revoked_at))).all()
    revoked = [key_id for key_id, revoked_at in rows if revoked_at is not None]
    active = sorted(key_id for key_id, revoked_at in rows if revoked_at is None)
    assert active == [f"{BASE}/users/alice#ed25519-key", f"{BASE}/users/alice#main-key"]
    assert len(revoked) == 2 and all("-revoked-" in key_id for key_id in revoked)


async def test_keys__instance_keys_written_private_and_cached(config: Any) -> None:
    keys = instance_keys(config)
    path = config.data_dir / "keys" / "instance-rsa.pem"
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert instance_keys(config) is keys
    assert PrivateKey.from_pem(keys.ed25519_private_pem).kind == "ed25519"


# ---------------------------------------------------------------------------- statuses


async def test_status__note_and_its_create(client: Any, make_user: Any) -> None:
    alice = await make_user("alice")
    await make_user("bob")
    status = await post(
        client, alice, "hello @bob #calm", spoiler_text="heavy topic", language="en", visibility="public"
    )
    path = f"/users/alice/statuses/{status['id']}"
    note = await get_ap(client, path)
    assert note["id"] == f"{BASE}{path}"
    assert note["type"] == "Note"
    assert note["attributedTo"] == f"{BASE}/users/alice"
    assert note["summary"] == "heavy topic" and note["sensitive"] is True
    assert note["contentMap"] == {"en": note["content"]}
    assert note["source"] == {"content": "hello @bob #calm", "mediaType": "text/markdown"}
    assert note["to"] == [PUBLIC]
    assert note["cc"] == [f"{BASE}/users/alice/followers", f"{BASE}/users/bob"]
    assert {"type": "Mention", "href": f"{BASE}/users/bob", "name": f"@bob@{DOMAIN}"} in note["tag"]
    assert any(t["type"] == "Hashtag" and t["name"] == "#calm" for t in note["tag"])
    create = await get_ap(client, path + "/activity")
    assert create["type"] == "Create"
    assert create["id"] == f"{BASE}{path}/activity"
    assert create["actor"] == f"{BASE}/users/alice"
    assert create["object"] == {k: v for k, v in note.items() if k != "@context"}


async def test_status__reply_and_group_post_shapes(client: Any, make_user: Any) -> None:
    alice = await make_user("alice")
    group = await new_group(client, alice, "circle")
    first = await post(client, alice, "in the circle", group_id=group["id"])
    reply = await post(client, alice, "a reply", in_reply_to_id=first["id"])
    note = await get_ap(client, f"/users/alice/statuses/{first['id']}")
    assert note["audience"] == f"{BASE}/groups/circle"
    assert note["to"] == [f"{BASE}/groups/circle", PUBLIC]
    replied = await get_ap(client, f"/users/alice/statuses/{reply['id']}")
    assert replied["inReplyTo"] == note["id"]
    assert replied["audience"] == f"{BASE}/groups/circle"
    create = await get_ap(client, f"/users/alice/statuses/{first['id']}/activity")
    assert create["audience"] == f"{BASE}/groups/circle"
    by_mention = await post(client, alice, "@circle hello")
    mentioned = await get_ap(client, f"/users/alice/statuses/{by_mention['id']}")
    assert mentioned["to"] == [f"{BASE}/groups/circle", PUBLIC]
    assert mentioned["cc"] == [f"{BASE}/users/alice/followers"]


async def test_status__served_note_equals_the_delivered_one(
    client: Any, make_user: Any, engine: Any, config: Any
) -> None:
    """What a fetch returns and what server.outbox delivers must be the same object."""
    from server.outbox import note_for

    alice = await make_user("alice")
    await make_user("bob")
    group = await new_group(client, alice, "circle")
    cases = [
        await post(client, alice, "hi @bob #calm", spoiler_text="cw", language="en"),
        await post(client, alice, "quiet @bob", visibility="unlisted"),
        await post(client, alice, "in the circle @bob", group_id=group["id"]),
    ]
    cases.append(await post(client, alice, "reply", in_reply_to_id=cases[2]["id"]))
    async with make_sessionmaker(engine)() as session:
        author = await session.get(Account, alice.account_id)
        for case in cases:
            status = await session.get(Status, int(case["id"]))
            assert author is not None and status is not None
            delivered = await note_for(session, config, status, author)
            served = await get_ap(client, f"/users/alice/statuses/{case['id']}")
            assert served == delivered, case["content"]


async def test_status__unlisted_is_served_with_public_in_cc(client: Any, make_user: Any) -> None:
    alice = await make_user("alice")
    status = await post(client, alice, "quiet", visibility="unlisted")
    note = await get_ap(client, f"/users/alice/statuses/{status['id']}")
    assert note["to"] == [f"{BASE}/users/alice/followers"] and PUBLIC in note["cc"]


async def test_status__deleted_is_410_tombstone(client: Any, make_user: Any) -> None:
    alice = await make_user("alice")
    status = await post(client, alice, "soon gone")
    deleted = await client.delete(f"/api/v1/statuses/{status['id']}", headers=alice.headers)
    assert deleted.status == 200
    stone = await get_ap(client, f"/users/alice/statuses/{status['id']}", status=410)
    assert stone == {
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": f"{BASE}/users/alice/statuses/{status['id']}",
        "type": "Tombstone",
        "formerType": "Note",
        "deleted": stone["deleted"],
    }
    activity = await get_ap(client, f"/users/alice/statuses/{status['id']}/activity", status=410)
    assert activity["type"] == "Tombstone"


async def test_status__private_is_404_unsigned_even_for_browsers(client: Any, make_user: Any) -> None:
    alice = await make_user("alice")
    status = await post(client, alice, "followers only", visibility="private")
    path = f"/users/alice/statuses/{status['id']}"
    assert (await client.get(path, headers=AP)).status == 404
    assert (await client.get(path + "/activity", headers=AP)).status == 404
    assert (await client.get(path, headers={"Accept": BROWSER})).status == 404
    deleted = await client.delete(f"/api/v1/statuses/{status['id']}", headers=alice.headers)
    assert deleted.status == 200
    assert (await client.get(path, headers=AP)).status == 404  # not 410: it never was public


async def test_status__members_only_group_post_is_404_unsigned(client: Any, make_user: Any) -> None:
    alice = await make_user("alice")
    group = await new_group(client, alice, "closed_circle", members_only=True, join_policy="approval")
    status = await post(client, alice, "members only", group_id=group["id"])
    assert (await client.get(f"/users/alice/statuses/{status['id']}", headers=AP)).status == 404
    outbox = await get_ap(client, "/groups/closed_circle/outbox")
    assert outbox["totalItems"] == 0
    page = await get_ap(client, "/groups/closed_circle/outbox?page=true")
    assert page["orderedItems"] == []


async def test_status__wrong_author_or_malformed_id_is_404(client: Any, make_user: Any) -> None:
    alice = await make_user("alice")
    await make_user("bob")
    status = await post(client, alice, "mine")
    assert (await client.get(f"/users/bob/statuses/{status['id']}", headers=AP)).status == 404
    assert (await client.get("/users/alice/statuses/12abc", headers=AP)).status == 404
    assert (await client.get("/users/alice/statuses/99999999999999999999", headers=AP)).status == 404


async def test_status__boost_activity_is_an_announce(client: Any, make_user: Any) -> None:
    alice = await make_user("alice")
    bob = await make_user("bob")
    original = await post(client, alice, "worth sharing")
    boosted = await client.post(f"/api/v1/statuses/{original['id']}/reblog", headers=bob.headers)
    assert boosted.status == 200, await boosted.text()
    boost_id = (await boosted.json())["id"]
    announce = await get_ap(client, f"/users/bob/statuses/{boost_id}/activity")
    assert announce["type"] == "Announce"
    assert announce["actor"] == f"{BASE}/users/bob"
    assert announce["object"] == f"{BASE}/users/alice/statuses/{original['id']}"
    assert (await client.get(f"/users/bob/statuses/{boost_id}", headers=AP)).status == 404


# ---------------------------------------------------------------------------- signed fetches


async def test_signed__follower_may_fetch_a_private_post(client: Any, make_user: Any, engine: Any) -> None:
    alice = await make_user("alice")
    status = await post(client, alice, "for my followers", visibility="private")
    path = f"/users/alice/statuses/{status['id']}"
    follower = await remote(engine, "friend", "friends.example")
    stranger = await remote(engine, "stranger", "strangers.example")
    await accepted_follow(engine, follower.account_id, alice.account_id)
    response = await client.get(path, headers=follower.sign(path))
    assert response.status == 200, await response.text()
    assert response.headers["Cache-Control"] == "private, no-store"
    note = await response.json(content_type=None)
    assert note["to"] == [f"{BASE}/users/alice/followers"] and PUBLIC not in note["cc"]
    assert (await client.get(path, headers=stranger.sign(path))).status == 404
    assert (await client.get(path + "/activity", headers=follower.sign(path + "/activity"))).status == 200


async def test_signed__members_only_post_for_domains_with_a_member(client: Any, make_user: Any, engine: Any) -> None:
    alice = await make_user("alice")
    group = await new_group(client, alice, "closed_circle", members_only=True, join_policy="approval")
    status = await post(client, alice, "members only", group_id=group["id"])
    path = f"/users/alice/statuses/{status['id']}"
    member = await remote(engine, "member", "partner.example")
    # The partner's instance actor signs the fetch: authorised by its domain's member.
    partner_instance = await remote(engine, "instance", "partner.example")
    outsider = await remote(engine, "outsider", "elsewhere.example")
    await accepted_follow(engine, member.account_id, int(group["id"]))
    response = await client.get(path, headers=partner_instance.sign(path))
    assert response.status == 200, await response.text()
    note = await response.json(content_type=None)
    assert PUBLIC not in note["to"] + note["cc"]
    assert note["to"] == [f"{BASE}/groups/closed_circle", f"{BASE}/groups/closed_circle/followers"]
    assert (await client.get(path, headers=outsider.sign(path))).status == 404
    outbox_path = "/groups/closed_circle/outbox?page=true"
    page = await (await client.get(outbox_path, headers=partner_instance.sign(outbox_path))).json(content_type=None)
    assert [item["object"]["id"] for item in page["orderedItems"]] == [note["id"]]
    empty = await (await client.get(outbox_path, headers=outsider.sign(outbox_path))).json(content_type=None)
    assert empty["orderedItems"] == []


async def test_signed__pending_member_domain_is_not_authorised(client: Any, make_user: Any, engine: Any) -> None:
    alice = await make_user("alice")
    group = await new_group(client, alice, "closed_circle", members_only=True, join_policy="approval")
    status = await post(client, alice, "members only", group_id=group["id"])
    path = f"/users/alice/statuses/{status['id']}"
    asking = await remote(engine, "asking", "pending.example")
    async with make_sessionmaker(engine)() as session:
        session.add(
            Follow(
                id=new_id(),
                account_id=asking.account_id,
                target_account_id=int(group["id"]),
                state="pending",
                created_at=now(),
            )
        )
        await session.commit()
    assert (await client.get(path, headers=asking.sign(path))).status == 404


async def test_signed__tampered_signature_is_401(client: Any, make_user: Any, engine: Any) -> None:
    alice = await make_user("alice")
    status = await post(client, alice, "public")
    path = f"/users/alice/statuses/{status['id']}"
    signer = await remote(engine, "friend", "friends.example")
    headers = signer.sign(path)
    # Signed for another path: the (request-target) no longer matches.
    assert (await client.get(path + "/activity", headers=headers)).status == 401
    forged = signer.sign(path)
    forged["Signature"] = forged["Signature"].replace('signature="', 'signature="AAAA')
    assert (await client.get(path, headers=forged)).status == 401
    stale = sign_request(
        "GET",
        BASE + path,
        headers=None,
        body=None,
        key=signer.key,
        key_id=signer.key_id,
        now=datetime(2020, 1, 1, tzinfo=UTC),
    )
    assert (await client.get(path, headers=stale)).status == 401


# ---------------------------------------------------------------------------- collections


async def test_outbox__pages_public_and_unlisted_creates_newest_first(client: Any, make_user: Any) -> None:
    alice = await make_user("alice")
    posted = [await post(client, alice, f"post {i}") for i in range(21)]
    unlisted = await post(client, alice, "unlisted one", visibility="unlisted")
    await post(client, alice, "private one", visibility="private")
    expected = [s["id"] for s in [*posted, unlisted]][::-1]  # newest first
    outbox = await get_ap(client, "/users/alice/outbox")
    assert outbox["type"] == "OrderedCollection"
    assert outbox["totalItems"] == 22
    assert outbox["first"] == f"{BASE}/users/alice/outbox?page=true"
    first = await get_ap(client, "/users/alice/outbox?page=true")
    assert first["type"] == "OrderedCollectionPage"
    assert first["partOf"] == f"{BASE}/users/alice/outbox"
    assert all(item["type"] == "Create" for item in first["orderedItems"])
    ids = [item["object"]["id"].rsplit("/", 1)[1] for item in first["orderedItems"]]
    assert ids == expected[:20]
    second = await get_ap(client, first["next"].removeprefix(BASE))
    assert [item["object"]["id"].rsplit("/", 1)[1] for item in second["orderedItems"]] == expected[20:]
    assert "next" not in second
    back = await get_ap(client, second["prev"].removeprefix(BASE))
    assert [item["object"]["id"].rsplit("/", 1)[1] for item in back["orderedItems"]] == expected[:20]
    assert (await client.get("/users/alice/outbox?max_id=abc", headers=AP)).status == 400


async def test_followers_and_following__counts_without_items(client: Any, make_user: Any) -> None:
    alice = await make_user("alice")
    bob = await make_user("bob")
    followed = await client.post(f"/api/v1/accounts/{alice.account_id}/follow", headers=bob.headers)
    assert followed.status == 200, await followed.text()
    followers = await get_ap(client, "/users/alice/followers")
    assert followers["totalItems"] == 1
    assert followers["id"] == f"{BASE}/users/alice/followers"
    for leaked in ("orderedItems", "items", "first"):
        assert leaked not in followers
    following = await get_ap(client, "/users/bob/following")
    assert following["totalItems"] == 1 and "orderedItems" not in following and "first" not in following
    assert (await get_ap(client, "/users/bob/followers?page=true"))["totalItems"] == 0


async def test_group_collections__members_counted_moderators_listed(client: Any, make_user: Any) -> None:
    owner = await make_user("owner")
    helper = await make_user("helper")
    member = await make_user("member")
    group = await new_group(client, owner, "circle")
    await join(client, helper, group["id"])
    await join(client, member, group["id"])
    appointed = await client.post(
        f"/api/v1/hearthside/groups/{group['id']}/moderators",
        json={"account_id": str(helper.account_id)},
        headers=owner.headers,
    )
    assert appointed.status == 200, await appointed.text()
    moderators = await get_ap(client, "/groups/circle/moderators")
    assert moderators["type"] == "OrderedCollection"
    assert moderators["orderedItems"] == [f"{BASE}/users/owner", f"{BASE}/users/helper"]
    assert moderators["totalItems"] == 2
    followers = await get_ap(client, "/groups/circle/followers")
    assert followers["totalItems"] == 3 and "orderedItems" not in followers
    assert (await get_ap(client, "/groups/circle/following"))["totalItems"] == 0
    assert (await client.get("/users/owner/moderators", headers=AP)).status == 404


async def test_group_outbox__public_group_posts_as_creates(client: Any, make_user: Any) -> None:
    owner = await make_user("owner")
    group = await new_group(client, owner, "circle")
    in_group = await post(client, owner, "hello circle", group_id=group["id"])
    await post(client, owner, "on my profile")
    outbox = await get_ap(client, "/groups/circle/outbox")
    assert outbox["totalItems"] == 1
    page = await get_ap(client, "/groups/circle/outbox?page=true")
    (item,) = page["orderedItems"]
    assert item["type"] == "Create"
    assert item["object"]["id"] == f"{BASE}/users/owner/statuses/{in_group['id']}"
    assert item["audience"] == f"{BASE}/groups/circle"


async def test_profile_and_status_urls__redirect_to_the_negotiating_ids(client: Any, make_user: Any) -> None:
    """The ``url`` fields Hearthside publishes (``/@name``, ``/@name/id``, ``/g/name``) resolve."""
    alice = await make_user("alice")
    post = await (await client.post("/api/v1/statuses", json={"status": "hello"}, headers=alice.headers)).json()
    for url, target in (
        ("/@alice", "/users/alice"),
        (f"/@alice/{post['id']}", f"/users/alice/statuses/{post['id']}"),
        ("/g/circle", "/groups/circle"),
    ):
        answer = await client.get(url, allow_redirects=False)
        assert answer.status == 302, url
        assert answer.headers["Location"].endswith(target)
    # (The test server is not at the configured base_url: follow the path by hand.)
    location = (await client.get(f"/@alice/{post['id']}", allow_redirects=False)).headers["Location"]
    path = "/" + location.split("/", 3)[3]
    followed = await client.get(path, headers={"Accept": "application/activity+json"})
    assert followed.status == 200 and (await followed.json())["id"] == post["uri"]
    assert (await client.get("/@not-a-name!", allow_redirects=False)).status == 404
