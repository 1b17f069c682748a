"""Domain and account decisions taking effect (research/moderation.md §1.1, §1.4; issue 5 item 2),
on SQLite and PostgreSQL: a limit (``silence``, or an account's own ``silenced_at``) hides the
author from public and hashtag timelines and search for non-followers, filters its
notifications and turns its follows into requests; a suspension severs follows both ways with
a ``severed_relationships`` notice and hides the domain's posts; lifting a block lifts only what
it imposed; ``reject_media`` drops remote avatars and headers; a suspended remote account's
activities are ignored."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update

from federation.inbound import parse_activity
from federation.inbound_objects import parse_actor
from server import blocklists, ingest, relationships
from server.db import make_sessionmaker
from server.ids import new_id
from server.models import (
    Account,
    AuditEntry,
    DomainBlock,
    Follow,
    Notification,
    Status,
    StatusTag,
    Tag,
)
from server.notify import notify
from server.remote_actors import store_actor
from server.web import now

B = "/api/v1/admin/domain_blocks"
ADMIN_SCOPES = "read write follow admin:read admin:write"


async def body(response: Any, status: int = 200) -> Any:
    data = await response.json()
    assert response.status == status, (response.status, data)
    return data


async def remote(engine: Any, username: str, domain: str, **values: Any) -> int:
    moment = now()
    async with make_sessionmaker(engine)() as session:
        account = Account(
            id=new_id(),
            username=username,
            username_lower=username.lower(),
            domain=domain,
            uri=f"https://{domain}/users/{username}",
            inbox_url=f"https://{domain}/users/{username}/inbox",
            created_at=moment,
            updated_at=moment,
            **values,
        )
        session.add(account)
        await session.commit()
        return account.id


async def post(engine: Any, account_id: int, text: str, tag: str | None = None) -> int:
    """A public remote post (as ingest stores one), optionally with a hashtag."""
    async with make_sessionmaker(engine)() as session:
        status = Status(
            id=new_id(),
            account_id=account_id,
            visibility="public",
            text=text,
            content=f"<p>{text}</p>",
            uri=f"https://remote.invalid/{new_id()}",
            local=False,
            created_at=now(),
        )
        session.add(status)
        if tag is not None:
            found = await session.scalar(select(Tag).where(Tag.name == tag))
            if found is None:
                found = Tag(id=new_id(), name=tag, display_name=tag)
                session.add(found)
                await session.flush()
            session.add(StatusTag(status_id=status.id, tag_id=found.id))
        await session.commit()
        return status.id


async def follow(engine: Any, follower: int, followed: int, state: str = "accepted") -> None:
    async with make_sessionmaker(engine)() as session:
        remote_follower = (await session.get(Account, follower)).domain != ""  # type: ignore[union-attr]
        session.add(
            Follow(
                id=new_id(),
                account_id=follower,
                target_account_id=followed,
                state=state,
                remote=remote_follower,
                created_at=now(),
            )
        )
        if state == "accepted":
            await relationships.bump_follow_counters(session, follower, followed, +1)
        await session.commit()


async def account(engine: Any, account_id: int) -> Account:
    async with make_sessionmaker(engine)() as session:
        found = await session.get(Account, account_id)
        assert found is not None
        return found


async def ids(client: Any, path: str, user: Any = None, **params: str) -> set[str]:
    headers = user.headers if user is not None else {}
    data = await body(await client.get(path, params=params, headers=headers))
    if isinstance(data, dict):
        data = data["statuses"]
    return {s["id"] for s in data}


async def block(client: Any, boss: Any, domain: str, severity: str, **extra: Any) -> dict[str, Any]:
    created: dict[str, Any] = await body(
        await client.post(B, json={"domain": domain, "severity": severity, **extra}, headers=boss.headers)
    )
    return created


# ---------------------------------------------------------------------------- limit


async def test_limit__domain_hidden_from_public_hashtag_and_search_for_non_followers(
    client: Any, make_user: Any, engine: Any
) -> None:
    boss = await make_user("boss", role="admin", scopes=ADMIN_SCOPES)
    alice = await make_user("alice")  # follows nobody
    bob = await make_user("bob")  # follows the limited author
    author = await remote(engine, "loud", "lim.example")
    sub_author = await remote(engine, "sub", "a.lim.example:8443")  # subdomain, with a port
    other = await remote(engine, "fine", "notlim.example")
    await follow(engine, bob.account_id, author)
    limited_post = str(await post(engine, author, "findme hello", tag="topic"))
    sub_post = str(await post(engine, sub_author, "findme sub", tag="topic"))
    fine_post = str(await post(engine, other, "findme fine", tag="topic"))
    everything = {limited_post, sub_post, fine_post}
    assert await ids(client, "/api/v1/timelines/public", alice) == everything  # before: all shown

    await block(client, boss, "lim.example", "silence")

    assert (await account(engine, author)).silenced_at is not None
    assert (await account(engine, sub_author)).silenced_at is not None
    assert (await account(engine, other)).silenced_at is None
    for viewer in (None, alice):
        assert await ids(client, "/api/v1/timelines/public", viewer) == {fine_post}
        assert await ids(client, "/api/v1/timelines/tag/topic", viewer) == {fine_post}
    assert await ids(client, "/api/v1/timelines/public", bob) == {limited_post, fine_post}
    assert await ids(client, "/api/v1/timelines/tag/topic", bob) == {limited_post, fine_post}
    assert await ids(client, "/api/v2/search", alice, q="findme", type="statuses") == {fine_post}
    assert await ids(client, "/api/v2/search", bob, q="findme", type="statuses") == {limited_post, fine_post}
    found = await body(await client.get("/api/v2/search", params={"q": "loud"}, headers=alice.headers))
    assert found["accounts"] == []  # not found by name by a non-follower
    found = await body(await client.get("/api/v2/search", params={"q": "loud"}, headers=bob.headers))
    assert [a["username"] for a in found["accounts"]] == ["loud"]
    # The post itself stays reachable (Mastodon: "hidden", not removed).
    await body(await client.get(f"/api/v1/statuses/{limited_post}", headers=alice.headers))


async def test_limit__account_level_silence_hides_a_local_author_too(client: Any, make_user: Any, engine: Any) -> None:
    alice = await make_user("alice")
    carol = await make_user("carol")
    made = await body(
        await client.post("/api/v1/statuses", json={"status": "hi all", "visibility": "public"}, headers=carol.headers)
    )
    assert made["id"] in await ids(client, "/api/v1/timelines/public", alice)
    async with make_sessionmaker(engine)() as session:
        await session.execute(update(Account).where(Account.id == carol.account_id).values(silenced_at=now()))
        await session.commit()
    assert made["id"] not in await ids(client, "/api/v1/timelines/public", alice)
    assert made["id"] in await ids(client, "/api/v1/timelines/public", carol)  # the author still sees it


async def test_limit__lifting_clears_only_what_the_block_imposed(client: Any, make_user: Any, engine: Any) -> None:
    boss = await make_user("boss", role="admin", scopes=ADMIN_SCOPES)
    earlier = now()
    own = await remote(engine, "own", "lim.example", silenced_at=earlier)  # limited on its own
    plain = await remote(engine, "plain", "x.lim.example")
    created = await block(client, boss, "lim.example", "silence")
    assert (await account(engine, plain)).silenced_at is not None
    # Raising to suspend, lowering back, deleting: each step lifts only its own stamps.
    await body(await client.put(f"{B}/{created['id']}", json={"severity": "suspend"}, headers=boss.headers))
    assert (await account(engine, plain)).suspended_at is not None
    assert (await account(engine, own)).suspended_at is not None
    await body(await client.put(f"{B}/{created['id']}", json={"severity": "silence"}, headers=boss.headers))
    assert (await account(engine, plain)).suspended_at is None
    assert (await account(engine, plain)).silenced_at is not None
    await body(await client.delete(f"{B}/{created['id']}", headers=boss.headers))
    assert (await account(engine, plain)).silenced_at is None
    assert (await account(engine, plain)).suspended_at is None
    assert (await account(engine, own)).silenced_at == earlier  # its own limit stays


async def test_limit__a_more_specific_block_wins_for_its_subdomain(client: Any, make_user: Any, engine: Any) -> None:
    boss = await make_user("boss", role="admin", scopes=ADMIN_SCOPES)
    inner = await remote(engine, "inner", "ok.lim.example")
    outer = await remote(engine, "outer", "lim.example")
    await block(client, boss, "ok.lim.example", "noop", reject_media=True)
    await block(client, boss, "lim.example", "silence")
    assert (await account(engine, outer)).silenced_at is not None
    assert (await account(engine, inner)).silenced_at is None  # its own noop rule governs it
    # The other order (a milder rule under a limited parent) is refused, as in Mastodon.
    answer = await body(
        await client.post(B, json={"domain": "x.lim.example", "severity": "noop"}, headers=boss.headers), 422
    )
    assert answer["error"] == "You have already imposed stricter limits on lim.example."


async def test_limit__new_follow_from_limited_account_is_a_request(client: Any, make_user: Any, engine: Any) -> None:
    alice = await make_user("alice")  # unlocked
    limited = await remote(engine, "loud", "lim.example", silenced_at=now())
    old_friend = await remote(engine, "old", "lim.example")
    await follow(engine, old_friend, alice.account_id)  # an existing follow
    async with make_sessionmaker(engine)() as session:
        await session.execute(update(Account).where(Account.id == old_friend).values(silenced_at=now()))
        source = await session.get(Account, limited)
        target = await session.get(Account, alice.account_id)
        assert source is not None and target is not None
        await relationships.follow(session, source, target, at=now())
        await session.commit()
    async with make_sessionmaker(engine)() as session:
        found = await session.scalars(select(Follow).where(Follow.target_account_id == alice.account_id))
        rows = {f.account_id: f.state for f in found}
    assert rows == {limited: "pending", old_friend: "accepted"}  # existing follows stay
    requests = await body(await client.get("/api/v1/follow_requests", headers=alice.headers))
    assert [a["id"] for a in requests] == [str(limited)]
    notes = await body(await client.get("/api/v1/notifications", headers=alice.headers))
    assert [n["type"] for n in notes] == ["follow_request"]  # the member has to decide
    # Unlocking nothing: alice is not locked; approving works as for any request.
    await body(await client.post(f"/api/v1/follow_requests/{limited}/authorize", headers=alice.headers))
    assert (await account(engine, alice.account_id)).followers_count == 2


async def test_limit__notifications_from_limited_non_followed_accounts_are_filtered(
    make_user: Any, engine: Any
) -> None:
    alice = await make_user("alice")
    bob = await make_user("bob")
    limited = await remote(engine, "loud", "lim.example", silenced_at=now())
    await follow(engine, bob.account_id, limited)
    async with make_sessionmaker(engine)() as session:
        for kind in ("mention", "favourite", "follow", "reblog"):
            assert await notify(session, recipient_id=alice.account_id, from_account_id=limited, type=kind) is None
            assert await notify(session, recipient_id=bob.account_id, from_account_id=limited, type=kind) is not None
        assert (
            await notify(session, recipient_id=alice.account_id, from_account_id=limited, type="follow_request")
            is not None
        )
        await session.commit()


# ---------------------------------------------------------------------------- suspend


async def test_suspend__severs_follows_both_ways_notifies_and_hides(client: Any, make_user: Any, engine: Any) -> None:
    boss = await make_user("boss", role="admin", scopes=ADMIN_SCOPES)
    alice = await make_user("alice")
    bob = await make_user("bob")  # no relation to the domain
    followed = await remote(engine, "followed", "bad.example")
    follower = await remote(engine, "follower", "sub.bad.example")
    asker = await remote(engine, "asker", "bad.example")
    safe = await remote(engine, "safe", "good.example")
    await follow(engine, alice.account_id, followed)
    await follow(engine, follower, alice.account_id)
    await follow(engine, asker, alice.account_id, state="pending")
    await follow(engine, alice.account_id, safe)
    await follow(engine, bob.account_id, alice.account_id)
    shown = str(await post(engine, followed, "from bad"))
    assert shown in await ids(client, "/api/v1/timelines/home", alice)
    before = await account(engine, alice.account_id)
    assert (before.followers_count, before.following_count) == (2, 2)

    await block(client, boss, "bad.example", "suspend")

    async with make_sessionmaker(engine)() as session:
        left = {(f.account_id, f.target_account_id) for f in await session.scalars(select(Follow))}
        assert left == {(alice.account_id, safe), (bob.account_id, alice.account_id)}
        audit = [e.action for e in await session.scalars(select(AuditEntry))]
        assert audit == ["domain_block.create"]
    after = await account(engine, alice.account_id)
    assert (after.followers_count, after.following_count) == (1, 1)
    assert (await account(engine, followed)).suspended_at is not None
    assert shown not in await ids(client, "/api/v1/timelines/home", alice)
    await body(await client.get(f"/api/v1/statuses/{shown}", headers=alice.headers), 404)

    notes = await body(await client.get("/api/v1/notifications", headers=alice.headers))
    assert [n["type"] for n in notes] == ["severed_relationships"]  # the request's notice went too
    event = notes[0]["event"]
    assert {k: v for k, v in event.items() if k not in ("id", "created_at")} == {
        "type": "domain_block",
        "purged": False,
        "target_name": "bad.example",
        "followers_count": 1,
        "following_count": 1,
    }
    assert notes[0]["account"]["id"] == str(alice.account_id)
    listed = await body(await client.get("/api/v1/severed_relationships", headers=alice.headers))
    assert listed == [event]
    # Only one's own events (Mastodon's CVE-2026-22246 was the opposite); none for bob.
    assert await body(await client.get("/api/v1/severed_relationships", headers=bob.headers)) == []
    assert await body(await client.get("/api/v1/notifications", headers=bob.headers)) == []
    await body(await client.get("/api/v1/severed_relationships"), 401)


async def test_suspend__raising_by_update_or_import_severs(client: Any, make_user: Any, engine: Any) -> None:
    boss = await make_user("boss", role="admin", scopes=ADMIN_SCOPES)
    alice = await make_user("alice")
    one = await remote(engine, "one", "one.example")
    two = await remote(engine, "two", "two.example")
    await follow(engine, alice.account_id, one)
    await follow(engine, two, alice.account_id)
    created = await block(client, boss, "one.example", "silence")
    assert (await account(engine, alice.account_id)).following_count == 1  # a limit severs nothing
    await body(await client.put(f"{B}/{created['id']}", json={"severity": "suspend"}, headers=boss.headers))
    assert (await account(engine, alice.account_id)).following_count == 0
    from moderation.decisions import DomainDecision, Severity

    async with make_sessionmaker(engine)() as session:
        plan = await blocklists.preview(session, [DomainDecision(domain="two.example", severity=Severity.SUSPEND)])
        assert plan.severed_follows == {"two.example": 1}
        await blocklists.apply(session, plan, actor_account_id=boss.account_id, source="import:x.csv", at=now())
        await session.commit()
    assert (await account(engine, alice.account_id)).followers_count == 0
    assert (await account(engine, two)).suspended_at is not None
    listed = await body(await client.get("/api/v1/severed_relationships", headers=alice.headers))
    assert sorted((e["target_name"], e["followers_count"], e["following_count"]) for e in listed) == [
        ("one.example", 0, 1),
        ("two.example", 1, 0),
    ]


async def test_suspend__refused_block_writes_nothing(client: Any, make_user: Any, engine: Any) -> None:
    boss = await make_user("boss", role="admin", scopes=ADMIN_SCOPES)
    member = await make_user("member")
    alice = await make_user("alice")
    friend = await remote(engine, "friend", "bad.example")
    await follow(engine, alice.account_id, friend)
    await body(await client.post(B, json={"domain": "bad.example", "severity": "suspend"}, headers=member.headers), 403)
    await body(await client.post(B, json={"domain": "bad.example", "severity": "nuke"}, headers=boss.headers), 422)
    async with make_sessionmaker(engine)() as session:
        assert list(await session.scalars(select(DomainBlock))) == []
        assert len(list(await session.scalars(select(Follow)))) == 1
        assert list(await session.scalars(select(Notification))) == []
    assert (await account(engine, friend)).suspended_at is None


async def test_suspended_remote_account__activities_ignored_and_follows_dropped(make_user: Any, engine: Any) -> None:
    alice = await make_user("alice")
    gone = await remote(engine, "gone", "some.example")
    await follow(engine, gone, alice.account_id)
    async with make_sessionmaker(engine)() as session:
        actor = await session.get(Account, gone)
        assert actor is not None
        actor.suspended_at = now()
        assert await relationships.drop_follows_of_suspended(session, actor) == 1
        await session.commit()
    assert (await account(engine, alice.account_id)).followers_count == 0
    like = {
        "id": "https://some.example/likes/1",
        "type": "Like",
        "actor": "https://some.example/users/gone",
        "object": "http://127.0.0.1:8080/users/alice/statuses/1",
    }
    ctx = ingest.Context(fed=None, item=None, document=like, actor=actor)  # type: ignore[arg-type]
    try:
        await ingest.apply(ctx, parse_activity(like), like)
    except ingest.Ignored as exc:
        assert str(exc) == "actor_suspended"
    else:
        raise AssertionError("a suspended actor's activity was applied")


# ---------------------------------------------------------------------------- reject_media


def _actor_document(domain: str, username: str) -> dict[str, Any]:
    uri = f"https://{domain}/users/{username}"
    return {
        "@context": ["https://www.w3.org/ns/activitystreams", "https://w3id.org/security/v1"],
        "id": uri,
        "type": "Person",
        "preferredUsername": username,
        "inbox": uri + "/inbox",
        "outbox": uri + "/outbox",
        "icon": {"type": "Image", "url": f"https://{domain}/avatar.png"},
        "image": {"type": "Image", "url": f"https://{domain}/header.png"},
    }


async def test_reject_media__avatars_and_headers_not_kept_and_new_accounts_stamped(
    client: Any, make_user: Any, engine: Any
) -> None:
    boss = await make_user("boss", role="admin", scopes=ADMIN_SCOPES)
    await block(client, boss, "pics.example", "silence", reject_media=True)
    async with make_sessionmaker(engine)() as session:
        rejected = await store_actor(
            session,
            parse_actor(_actor_document("cdn.pics.example", "p"), fetched_from="https://cdn.pics.example/users/p"),
        )
        kept = await store_actor(
            session, parse_actor(_actor_document("fine.example", "f"), fetched_from="https://fine.example/users/f")
        )
        await session.commit()
        assert (rejected.avatar_remote_url, rejected.header_remote_url) == (None, None)
        assert rejected.silenced_at is not None  # a new account of a limited domain starts limited
        assert kept.avatar_remote_url == "https://fine.example/avatar.png"
        assert kept.silenced_at is None
