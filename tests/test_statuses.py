"""Statuses: posting, visibility, groups, edits, deletes, favourites and boosts.

The helpers at the top (follow, block, mute, groups, suspension, posting) are shared with
the timeline, notification and search tests. They write relationship rows directly so these
tests do not depend on the follow/block endpoints.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from server import groups
from server.db import make_sessionmaker
from server.ids import new_id
from server.models import Account, Block, Follow, Mute, Notification, Status, StatusEdit
from server.web import now

DIRECT_MESSAGE = (
    "Plaintext direct messages are not supported: Hearthside private messages are end-to-end "
    "encrypted (see the E2EE messaging feature)"
)

# ---------------------------------------------------------------------------- helpers


async def follow(engine: AsyncEngine, follower: Any, target: Any, *, state: str = "accepted") -> None:
    async with make_sessionmaker(engine)() as session:
        session.add(
            Follow(
                id=new_id(),
                account_id=follower.account_id,
                target_account_id=target.account_id,
                state=state,
                created_at=now(),
            )
        )
        await session.commit()


async def block(engine: AsyncEngine, blocker: Any, target: Any) -> None:
    async with make_sessionmaker(engine)() as session:
        session.add(
            Block(id=new_id(), account_id=blocker.account_id, target_account_id=target.account_id, created_at=now())
        )
        await session.commit()


async def mute(engine: AsyncEngine, muter: Any, target: Any) -> None:
    async with make_sessionmaker(engine)() as session:
        session.add(
            Mute(id=new_id(), account_id=muter.account_id, target_account_id=target.account_id, created_at=now())
        )
        await session.commit()


async def suspend(engine: AsyncEngine, account_id: int) -> None:
    async with make_sessionmaker(engine)() as session:
        await session.execute(update(Account).where(Account.id == account_id).values(suspended_at=now()))
        await session.commit()


async def make_group(engine: AsyncEngine, owner: Any, name: str, *, members_only: bool = False) -> int:
    async with make_sessionmaker(engine)() as session:
        account = await session.get(Account, owner.account_id)
        assert account is not None
        view = await groups.create_group(session, owner=account, name=name, members_only=members_only)
        await session.commit()
        return view.account.id


async def join(engine: AsyncEngine, group_id: int, member: Any) -> None:
    async with make_sessionmaker(engine)() as session:
        group = await session.get(Account, group_id)
        account = await session.get(Account, member.account_id)
        assert group is not None and account is not None
        await groups.add_member(session, group, account)
        await session.commit()


async def ban(engine: AsyncEngine, group_id: int, member: Any, by: Any) -> None:
    async with make_sessionmaker(engine)() as session:
        view = await groups.load_group(session, group_id)
        target = await session.get(Account, member.account_id)
        moderator = await session.get(Account, by.account_id)
        assert target is not None and moderator is not None
        await groups.ban(session, view, target, by=moderator)
        await session.commit()


async def account_row(engine: AsyncEngine, account_id: int) -> Account:
    async with make_sessionmaker(engine)() as session:
        account = await session.get(Account, account_id)
        assert account is not None
        return account


async def notifications_of(engine: AsyncEngine, user: Any) -> list[tuple[str, int, int | None]]:
    async with make_sessionmaker(engine)() as session:
        rows = await session.execute(
            select(Notification.type, Notification.from_account_id, Notification.status_id)
            .where(Notification.account_id == user.account_id)
            .order_by(Notification.id)
        )
        return [tuple(r) for r in rows]  # type: ignore[misc]


async def post(client: Any, user: Any, text: str = "hello", **params: Any) -> dict[str, Any]:
    response = await client.post("/api/v1/statuses", json={"status": text, **params}, headers=user.headers)
    body = await response.json()
    assert response.status == 200, body
    return body  # type: ignore[no-any-return]


async def get_status(client: Any, status_id: str, user: Any | None = None) -> Any:
    return await client.get(f"/api/v1/statuses/{status_id}", headers=user.headers if user else {})


# ---------------------------------------------------------------------------- create


async def test_create__renders_markdown_and_updates_counters(client: Any, make_user: Any, engine: Any) -> None:
    alice = await make_user("alice")
    status = await post(client, alice, "Hello **world**\n\nsecond paragraph", language="en")
    assert status["content"] == "<p>Hello <strong>world</strong></p><p>second paragraph</p>"
    assert status["visibility"] == "public"
    assert status["language"] == "en"
    assert status["account"]["id"] == str(alice.account_id)
    assert status["account"]["statuses_count"] == 1
    assert status["favourited"] is False and status["reblogged"] is False
    assert status["media_attachments"] == [] and status["poll"] is None and status["card"] is None
    assert status["hearthside"] == {"group": None}
    assert status["uri"].endswith(f"/users/alice/statuses/{status['id']}")
    assert status["url"].endswith(f"/@alice/{status['id']}")
    assert "text" not in status
    row = await account_row(engine, alice.account_id)
    assert row.statuses_count == 1 and row.last_status_at is not None


async def test_create__script_in_text_is_never_markup(client: Any, make_user: Any) -> None:
    alice = await make_user("alice")
    status = await post(
        client, alice, "<script>alert(1)</script> <img src=x onerror=alert(2)> [x](javascript:alert(3))"
    )
    assert "<script" not in status["content"]
    assert "<img" not in status["content"]
    assert 'href="javascript' not in status["content"]
    assert "&lt;script&gt;" in status["content"]


async def test_create__direct_visibility_refused_with_e2ee_pointer(client: Any, make_user: Any) -> None:
    alice = await make_user("alice")
    response = await client.post(
        "/api/v1/statuses", json={"status": "secret", "visibility": "direct"}, headers=alice.headers
    )
    assert response.status == 422
    assert await response.json() == {"error": DIRECT_MESSAGE}


async def test_create__validation_failures_are_422_and_write_nothing(
    client: Any, make_user: Any, engine: Any, config: Any
) -> None:
    alice = await make_user("alice")
    limit = config.get("instance", "max_post_chars")
    cases = [
        ({"status": ""}, "status"),
        ({"status": "   \n "}, "status"),
        ({"status": "x" * (limit + 1)}, "status"),
        ({"status": "ok", "spoiler_text": "c" * 1001}, "spoiler_text"),
        ({"status": "ok", "visibility": "everyone"}, "visibility"),
        ({"status": "ok", "language": "not a language"}, "language"),
        ({"status": "ok", "media_ids": ["1"]}, "media attachments are not supported yet"),
        ({"status": "ok", "poll": {"options": ["a", "b"], "expires_in": 600}}, "poll"),
        ({"status": "ok", "in_reply_to_id": "abc"}, "in_reply_to_id"),
        ({}, "status"),
    ]
    for body, needle in cases:
        response = await client.post("/api/v1/statuses", json=body, headers=alice.headers)
        assert response.status == 422, (body, await response.text())
        assert needle in (await response.json())["error"]
    form = await client.post(
        "/api/v1/statuses", data={"status": "ok", "poll[options][]": ["a", "b"]}, headers=alice.headers
    )
    assert form.status == 422
    row = await account_row(engine, alice.account_id)
    assert row.statuses_count == 0


async def test_create__exactly_max_chars_accepted(client: Any, make_user: Any, config: Any) -> None:
    alice = await make_user("alice")
    limit = config.get("instance", "max_post_chars")
    await post(client, alice, "y" * limit)


async def test_create__needs_write_statuses_scope_and_a_token(client: Any, make_user: Any) -> None:
    reader = await make_user("reader", scopes="read")
    response = await client.post("/api/v1/statuses", json={"status": "hi"}, headers=reader.headers)
    assert response.status == 403
    response = await client.post("/api/v1/statuses", json={"status": "hi"})
    assert response.status == 401
    granular = await make_user("granular", scopes="write:statuses")
    await post(client, granular, "hi")


async def test_create__spoiler_text_implies_sensitive(client: Any, make_user: Any) -> None:
    alice = await make_user("alice")
    status = await post(client, alice, "heavy day", spoiler_text="self-harm mention")
    assert status["sensitive"] is True and status["spoiler_text"] == "self-harm mention"
    plain = await post(client, alice, "fine day", sensitive=False)
    assert plain["sensitive"] is False
    flagged = await post(client, alice, "flagged", sensitive=True)
    assert flagged["sensitive"] is True


async def test_create__form_encoding_works_like_mastodon_py(client: Any, make_user: Any) -> None:
    alice = await make_user("alice")
    response = await client.post(
        "/api/v1/statuses", data={"status": "form post", "visibility": "unlisted"}, headers=alice.headers
    )
    assert response.status == 200
    assert (await response.json())["visibility"] == "unlisted"


async def test_create__idempotency_key_returns_the_same_status(client: Any, make_user: Any, engine: Any) -> None:
    alice = await make_user("alice")
    bob = await make_user("bob")
    headers = {**alice.headers, "Idempotency-Key": "retry-1"}
    first = await client.post("/api/v1/statuses", json={"status": "once"}, headers=headers)
    second = await client.post("/api/v1/statuses", json={"status": "once"}, headers=headers)
    assert first.status == second.status == 200
    assert (await first.json())["id"] == (await second.json())["id"]
    other_key = await client.post(
        "/api/v1/statuses", json={"status": "once"}, headers={**alice.headers, "Idempotency-Key": "retry-2"}
    )
    assert (await other_key.json())["id"] != (await first.json())["id"]
    other_user = await client.post(
        "/api/v1/statuses", json={"status": "once"}, headers={**bob.headers, "Idempotency-Key": "retry-1"}
    )
    assert (await other_user.json())["account"]["id"] == str(bob.account_id)
    assert (await account_row(engine, alice.account_id)).statuses_count == 2


async def test_create__application_is_shown(client: Any, make_user: Any, engine: Any) -> None:
    from crypto.tokens import digest, new_token
    from server.models import OAuthApp, OAuthToken

    alice = await make_user("alice")
    token = new_token()
    async with make_sessionmaker(engine)() as session:
        app = OAuthApp(
            id=new_id(),
            name="Tusky",
            website="https://tusky.app",
            client_id="cid",
            client_secret_hash="x" * 64,
            created_at=now(),
        )
        session.add(app)
        await session.flush()
        session.add(
            OAuthToken(
                id=new_id(),
                token_hash=digest(token),
                app_id=app.id,
                user_id=alice.user_id,
                scopes="read write",
                created_at=now(),
            )
        )
        await session.commit()
    response = await client.post(
        "/api/v1/statuses", json={"status": "from an app"}, headers={"Authorization": f"Bearer {token}"}
    )
    assert (await response.json())["application"] == {"name": "Tusky", "website": "https://tusky.app"}


# ---------------------------------------------------------------------------- replies, mentions, tags


async def test_reply__counts_threads_and_notifies_mentions(client: Any, make_user: Any, engine: Any) -> None:
    alice = await make_user("alice")
    bob = await make_user("bob")
    root = await post(client, alice, "root #Support")
    reply = await post(client, bob, "@alice I hear you #support", in_reply_to_id=root["id"])
    assert reply["in_reply_to_id"] == root["id"]
    assert reply["in_reply_to_account_id"] == str(alice.account_id)
    assert reply["mentions"] == [
        {"id": str(alice.account_id), "username": "alice", "url": "http://127.0.0.1:8080/@alice", "acct": "alice"}
    ]
    assert reply["tags"] == [{"name": "support", "url": "http://127.0.0.1:8080/tags/support"}]
    assert 'class="u-url mention"' in reply["content"]
    nested = await post(client, alice, "thanks", in_reply_to_id=reply["id"])
    async with make_sessionmaker(engine)() as session:
        row = await session.get(Status, int(nested["id"]))
        assert row is not None and row.thread_root_id == int(root["id"])
    shown = await (await get_status(client, root["id"], alice)).json()
    assert shown["replies_count"] == 1
    assert ("mention", bob.account_id, int(reply["id"])) in await notifications_of(engine, alice)


async def test_mention__blocked_author_does_not_notify(client: Any, make_user: Any, engine: Any) -> None:
    alice = await make_user("alice")
    bob = await make_user("bob")
    await block(engine, alice, bob)
    await post(client, bob, "hey @alice")
    assert await notifications_of(engine, alice) == []


async def test_reply__to_invisible_post_is_404(client: Any, make_user: Any) -> None:
    alice = await make_user("alice")
    bob = await make_user("bob")
    private = await post(client, alice, "followers only", visibility="private")
    response = await client.post(
        "/api/v1/statuses", json={"status": "reply", "in_reply_to_id": private["id"]}, headers=bob.headers
    )
    assert response.status == 404
    response = await client.post(
        "/api/v1/statuses", json={"status": "reply", "in_reply_to_id": "999999"}, headers=bob.headers
    )
    assert response.status == 404


# ---------------------------------------------------------------------------- groups


async def test_group__mention_posts_to_the_group(client: Any, make_user: Any, engine: Any) -> None:
    owner = await make_user("owner")
    group_id = await make_group(engine, owner, "peers")
    status = await post(client, owner, "Hello @peers friends")
    assert status["hearthside"]["group"] == {
        "id": str(group_id),
        "acct": "peers",
        "display_name": "peers",
        "url": "http://127.0.0.1:8080/g/peers",
    }
    assert status["visibility"] == "public"
    by_param = await post(client, owner, "via extension", group_id=str(group_id), visibility="unlisted")
    assert by_param["hearthside"]["group"]["id"] == str(group_id)
    assert by_param["visibility"] == "unlisted"
    reply = await post(client, owner, "a reply", in_reply_to_id=status["id"])
    assert reply["hearthside"]["group"]["id"] == str(group_id)


async def test_group__members_only_posts_are_private(client: Any, make_user: Any, engine: Any) -> None:
    owner = await make_user("owner")
    group_id = await make_group(engine, owner, "circle", members_only=True)
    status = await post(client, owner, "inside @circle", visibility="public")
    assert status["visibility"] == "private"
    assert status["hearthside"]["group"]["id"] == str(group_id)


async def test_group__non_member_and_banned_member_cannot_post(client: Any, make_user: Any, engine: Any) -> None:
    owner = await make_user("owner")
    stranger = await make_user("stranger")
    member = await make_user("member")
    group_id = await make_group(engine, owner, "peers")
    await join(engine, group_id, member)
    await post(client, member, "I belong in @peers")
    response = await client.post("/api/v1/statuses", json={"status": "hi @peers"}, headers=stranger.headers)
    assert response.status == 403
    await ban(engine, group_id, member, owner)
    for body in ({"status": "again @peers"}, {"status": "again", "group_id": str(group_id)}):
        response = await client.post("/api/v1/statuses", json=body, headers=member.headers)
        assert response.status == 403
        assert "banned" in (await response.json())["error"]
    assert (await account_row(engine, member.account_id)).statuses_count == 1


async def test_group__banned_member_cannot_reply_in_group(client: Any, make_user: Any, engine: Any) -> None:
    owner = await make_user("owner")
    member = await make_user("member")
    group_id = await make_group(engine, owner, "peers")
    await join(engine, group_id, member)
    root = await post(client, owner, "thread in @peers")
    await ban(engine, group_id, member, owner)
    response = await client.post(
        "/api/v1/statuses", json={"status": "reply", "in_reply_to_id": root["id"]}, headers=member.headers
    )
    assert response.status == 403


async def test_group__one_group_per_post(client: Any, make_user: Any, engine: Any) -> None:
    owner = await make_user("owner")
    first = await make_group(engine, owner, "first")
    await make_group(engine, owner, "second")
    response = await client.post("/api/v1/statuses", json={"status": "@first and @second"}, headers=owner.headers)
    assert response.status == 422
    response = await client.post(
        "/api/v1/statuses", json={"status": "@second", "group_id": str(first)}, headers=owner.headers
    )
    assert response.status == 422
    root = await post(client, owner, "in @first")
    response = await client.post(
        "/api/v1/statuses",
        json={"status": "moving", "in_reply_to_id": root["id"], "group_id": "12345"},
        headers=owner.headers,
    )
    assert response.status == 422


async def test_group__unknown_group_id_is_404(client: Any, make_user: Any) -> None:
    alice = await make_user("alice")
    response = await client.post(
        "/api/v1/statuses", json={"status": "x", "group_id": str(alice.account_id)}, headers=alice.headers
    )
    assert response.status == 404


async def test_group__suspended_deleted_or_pending_group_refuses_group_id_posts(
    client: Any, make_user: Any, engine: Any
) -> None:
    owner = await make_user("owner")
    hopeful = await make_user("hopeful")
    pending = await make_group(engine, owner, "pending")
    await follow(engine, hopeful, SimpleNamespace(account_id=pending), state="pending")
    response = await client.post(
        "/api/v1/statuses", json={"status": "x", "group_id": str(pending)}, headers=hopeful.headers
    )
    assert response.status == 403
    assert "join the group" in (await response.json())["error"]
    suspended = await make_group(engine, owner, "quiet")
    await suspend(engine, suspended)
    response = await client.post(
        "/api/v1/statuses", json={"status": "x", "group_id": str(suspended)}, headers=owner.headers
    )
    assert response.status == 403
    assert "suspended" in (await response.json())["error"]
    gone = await make_group(engine, owner, "gone")
    async with make_sessionmaker(engine)() as session:
        await session.execute(update(Account).where(Account.id == gone).values(deleted_at=now()))
        await session.commit()
    response = await client.post("/api/v1/statuses", json={"status": "x", "group_id": str(gone)}, headers=owner.headers)
    assert response.status == 404
    assert (await account_row(engine, owner.account_id)).statuses_count == 0


async def test_create__response_is_what_show_returns(client: Any, make_user: Any, engine: Any) -> None:
    owner = await make_user("owner")
    bob = await make_user("bob")
    group_id = await make_group(engine, owner, "peers")
    await post(client, owner, "an earlier one")
    created = await post(client, owner, "Hi @bob, see #Rest", group_id=str(group_id), spoiler_text="cw")
    shown = await (await get_status(client, created["id"], owner)).json()
    assert created == shown
    assert created["account"]["statuses_count"] == 2
    assert created["hearthside"]["group"]["id"] == str(group_id)
    assert [m["id"] for m in created["mentions"]] == [str(bob.account_id)]
    assert [t["name"] for t in created["tags"]] == ["rest"]


async def test_create__idempotency_key_of_a_deleted_post_posts_again(client: Any, make_user: Any) -> None:
    alice = await make_user("alice")
    headers = {**alice.headers, "Idempotency-Key": "again"}
    first = await (await client.post("/api/v1/statuses", json={"status": "one"}, headers=headers)).json()
    assert (await client.delete(f"/api/v1/statuses/{first['id']}", headers=alice.headers)).status == 200
    second = await (await client.post("/api/v1/statuses", json={"status": "one"}, headers=headers)).json()
    assert second["id"] != first["id"]
    third = await (await client.post("/api/v1/statuses", json={"status": "one"}, headers=headers)).json()
    assert third["id"] == second["id"]


# ---------------------------------------------------------------------------- show


async def test_show__private_post_visibility(client: Any, make_user: Any, engine: Any) -> None:
    alice = await make_user("alice")
    follower = await make_user("follower")
    pending = await make_user("pending")
    stranger = await make_user("stranger")
    mentioned = await make_user("mentioned")
    await follow(engine, follower, alice)
    await follow(engine, pending, alice, state="pending")
    status = await post(client, alice, "for friends and @mentioned", visibility="private")
    assert (await get_status(client, status["id"])).status == 404
    assert (await get_status(client, status["id"], stranger)).status == 404
    assert (await get_status(client, status["id"], pending)).status == 404
    for viewer in (alice, follower, mentioned):
        response = await get_status(client, status["id"], viewer)
        assert response.status == 200, viewer.username
    missing = await get_status(client, status["id"], stranger)
    assert await missing.json() == {"error": "Record not found"}


async def test_show__public_and_unlisted_visible_to_anonymous(client: Any, make_user: Any) -> None:
    alice = await make_user("alice")
    public = await post(client, alice, "public")
    unlisted = await post(client, alice, "unlisted", visibility="unlisted")
    for status in (public, unlisted):
        response = await get_status(client, status["id"])
        assert response.status == 200
        body = await response.json()
        assert "favourited" not in body  # viewer flags only for a logged-in viewer
    assert (await client.get("/api/v1/statuses/abc")).status == 404
    assert (await client.get("/api/v1/statuses/99999999999999999999")).status == 404


async def test_show__blocks_either_way_hide_posts(client: Any, make_user: Any, engine: Any) -> None:
    alice = await make_user("alice")
    bob = await make_user("bob")
    carol = await make_user("carol")
    status = await post(client, alice, "public")
    await block(engine, alice, bob)
    await block(engine, carol, alice)
    assert (await get_status(client, status["id"], bob)).status == 404
    assert (await get_status(client, status["id"], carol)).status == 404


async def test_show__suspended_author_hides_posts(client: Any, make_user: Any, engine: Any) -> None:
    alice = await make_user("alice")
    bob = await make_user("bob")
    status = await post(client, alice, "public")
    await suspend(engine, alice.account_id)
    assert (await get_status(client, status["id"], bob)).status == 404
    assert (await get_status(client, status["id"])).status == 404


async def test_show__members_only_group_post_only_for_members(client: Any, make_user: Any, engine: Any) -> None:
    owner = await make_user("owner")
    member = await make_user("member")
    outsider = await make_user("outsider")
    follower = await make_user("follower")
    group_id = await make_group(engine, owner, "circle", members_only=True)
    await join(engine, group_id, member)
    await follow(engine, follower, owner)
    status = await post(client, owner, "@circle inside, also @outsider")
    assert (await get_status(client, status["id"], member)).status == 200
    for viewer in (outsider, follower, None):
        assert (await get_status(client, status["id"], viewer)).status == 404
    # mentioning an outsider in a members-only post neither shows it nor notifies them
    assert await notifications_of(engine, outsider) == []
    context = await client.get(f"/api/v1/statuses/{status['id']}/context", headers=outsider.headers)
    assert context.status == 404


async def test_show_many__leaves_out_invisible(client: Any, make_user: Any) -> None:
    alice = await make_user("alice")
    public = await post(client, alice, "public")
    private = await post(client, alice, "private", visibility="private")
    response = await client.get(f"/api/v1/statuses?id[]={public['id']}&id[]={private['id']}")
    assert [s["id"] for s in await response.json()] == [public["id"]]


# ---------------------------------------------------------------------------- delete


async def test_delete__author_gets_source_back_and_counters_drop(client: Any, make_user: Any, engine: Any) -> None:
    alice = await make_user("alice")
    bob = await make_user("bob")
    root = await post(client, alice, "root")
    reply = await post(client, bob, "*reply*", in_reply_to_id=root["id"])
    await client.post(f"/api/v1/statuses/{reply['id']}/reblog", headers=alice.headers)
    response = await client.delete(f"/api/v1/statuses/{reply['id']}", headers=bob.headers)
    assert response.status == 200
    body = await response.json()
    assert body["text"] == "*reply*" and body["id"] == reply["id"]
    assert (await get_status(client, reply["id"], bob)).status == 404
    assert (await (await get_status(client, root["id"], alice)).json())["replies_count"] == 0
    assert (await account_row(engine, bob.account_id)).statuses_count == 0
    assert (await account_row(engine, alice.account_id)).statuses_count == 1  # the boost went with it
    again = await client.delete(f"/api/v1/statuses/{reply['id']}", headers=bob.headers)
    assert again.status == 404


async def test_delete__someone_elses_post_is_refused(client: Any, make_user: Any) -> None:
    alice = await make_user("alice")
    bob = await make_user("bob")
    status = await post(client, alice, "mine")
    private = await post(client, alice, "mine too", visibility="private")
    assert (await client.delete(f"/api/v1/statuses/{status['id']}", headers=bob.headers)).status == 403
    assert (await client.delete(f"/api/v1/statuses/{private['id']}", headers=bob.headers)).status == 404
    reader = await make_user("reader", scopes="read")
    assert (await client.delete(f"/api/v1/statuses/{status['id']}", headers=reader.headers)).status == 403
    assert (await get_status(client, status["id"])).status == 200


# ---------------------------------------------------------------------------- edit


async def test_edit__keeps_history_oldest_first(client: Any, make_user: Any, engine: Any) -> None:
    alice = await make_user("alice")
    status = await post(client, alice, "first version")
    history = await (await client.get(f"/api/v1/statuses/{status['id']}/history")).json()
    assert [h["content"] for h in history] == ["<p>first version</p>"]
    for text in ("second version", "third **version**"):
        response = await client.put(
            f"/api/v1/statuses/{status['id']}", json={"status": text, "spoiler_text": "cw"}, headers=alice.headers
        )
        assert response.status == 200, await response.text()
    edited = await response.json()
    assert edited["content"] == "<p>third <strong>version</strong></p>"
    assert edited["edited_at"] is not None and edited["sensitive"] is True
    history = await (await client.get(f"/api/v1/statuses/{status['id']}/history")).json()
    assert [h["content"] for h in history] == [
        "<p>first version</p>",
        "<p>second version</p>",
        "<p>third <strong>version</strong></p>",
    ]
    assert [h["spoiler_text"] for h in history] == ["", "cw", "cw"]
    assert history[0]["created_at"] == status["created_at"]
    assert history[0]["account"]["id"] == str(alice.account_id)
    source = await (await client.get(f"/api/v1/statuses/{status['id']}/source", headers=alice.headers)).json()
    assert source == {"id": status["id"], "text": "third **version**", "spoiler_text": "cw"}
    async with make_sessionmaker(engine)() as session:
        count = len((await session.execute(select(StatusEdit).where(StatusEdit.status_id == int(status["id"])))).all())
    assert count == 3


async def test_edit__notifies_boosters_and_new_mentions(client: Any, make_user: Any, engine: Any) -> None:
    alice = await make_user("alice")
    bob = await make_user("bob")
    carol = await make_user("carol")
    status = await post(client, alice, "original")
    await client.post(f"/api/v1/statuses/{status['id']}/reblog", headers=bob.headers)
    await client.put(f"/api/v1/statuses/{status['id']}", json={"status": "now with @carol"}, headers=alice.headers)
    assert ("update", alice.account_id, int(status["id"])) in await notifications_of(engine, bob)
    assert ("mention", alice.account_id, int(status["id"])) in await notifications_of(engine, carol)


async def test_edit__only_the_author(client: Any, make_user: Any) -> None:
    alice = await make_user("alice")
    bob = await make_user("bob")
    status = await post(client, alice, "mine")
    response = await client.put(f"/api/v1/statuses/{status['id']}", json={"status": "yours"}, headers=bob.headers)
    assert response.status == 403
    response = await client.put(f"/api/v1/statuses/{status['id']}", json={"status": ""}, headers=alice.headers)
    assert response.status == 422
    shown = await (await get_status(client, status["id"])).json()
    assert shown["content"] == "<p>mine</p>" and shown["edited_at"] is None


# ---------------------------------------------------------------------------- favourites and boosts


async def test_favourite__counts_notifies_and_lists(client: Any, make_user: Any, engine: Any) -> None:
    alice = await make_user("alice")
    bob = await make_user("bob")
    status = await post(client, alice, "like me")
    for _ in range(2):  # idempotent
        response = await client.post(f"/api/v1/statuses/{status['id']}/favourite", headers=bob.headers)
        assert response.status == 200
    body = await response.json()
    assert body["favourited"] is True and body["favourites_count"] == 1
    assert await notifications_of(engine, alice) == [("favourite", bob.account_id, int(status["id"]))]
    by = await (await client.get(f"/api/v1/statuses/{status['id']}/favourited_by")).json()
    assert [a["id"] for a in by] == [str(bob.account_id)]
    response = await client.post(f"/api/v1/statuses/{status['id']}/unfavourite", headers=bob.headers)
    body = await response.json()
    assert body["favourited"] is False and body["favourites_count"] == 0
    assert await notifications_of(engine, alice) == []


async def test_favourite__needs_scope_and_visibility(client: Any, make_user: Any) -> None:
    alice = await make_user("alice")
    bob = await make_user("bob")
    reader = await make_user("reader", scopes="read write:statuses")
    status = await post(client, alice, "private", visibility="private")
    assert (await client.post(f"/api/v1/statuses/{status['id']}/favourite", headers=bob.headers)).status == 404
    public = await post(client, alice, "public")
    assert (await client.post(f"/api/v1/statuses/{public['id']}/favourite", headers=reader.headers)).status == 403


async def test_reblog__wraps_counts_and_notifies(client: Any, make_user: Any, engine: Any) -> None:
    alice = await make_user("alice")
    bob = await make_user("bob")
    status = await post(client, alice, "boost me")
    response = await client.post(f"/api/v1/statuses/{status['id']}/reblog", headers=bob.headers)
    assert response.status == 200
    boost = await response.json()
    assert boost["reblog"]["id"] == status["id"]
    assert boost["account"]["id"] == str(bob.account_id)
    assert boost["reblog"]["reblogs_count"] == 1 and boost["reblog"]["reblogged"] is True
    again = await (await client.post(f"/api/v1/statuses/{status['id']}/reblog", headers=bob.headers)).json()
    assert again["id"] == boost["id"]
    assert await notifications_of(engine, alice) == [("reblog", bob.account_id, int(status["id"]))]
    by = await (await client.get(f"/api/v1/statuses/{status['id']}/reblogged_by")).json()
    assert [a["id"] for a in by] == [str(bob.account_id)]
    shown = await (await get_status(client, boost["id"], alice)).json()
    assert shown["reblog"]["id"] == status["id"]
    # favouriting the boost favourites the original
    fav = await (await client.post(f"/api/v1/statuses/{boost['id']}/favourite", headers=alice.headers)).json()
    assert fav["id"] == status["id"]
    undone = await (await client.post(f"/api/v1/statuses/{status['id']}/unreblog", headers=bob.headers)).json()
    assert undone["reblogs_count"] == 0 and undone["reblogged"] is False
    assert (await get_status(client, boost["id"], alice)).status == 404
    assert (await account_row(engine, bob.account_id)).statuses_count == 0


async def test_reblog__private_and_members_only_refused(client: Any, make_user: Any, engine: Any) -> None:
    alice = await make_user("alice")
    bob = await make_user("bob")
    await follow(engine, bob, alice)
    private = await post(client, alice, "friends", visibility="private")
    assert (await client.post(f"/api/v1/statuses/{private['id']}/reblog", headers=bob.headers)).status == 403
    assert (await client.post(f"/api/v1/statuses/{private['id']}/reblog", headers=alice.headers)).status == 403
    group_id = await make_group(engine, alice, "circle", members_only=True)
    await join(engine, group_id, bob)
    inside = await post(client, alice, "inside @circle")
    assert (await client.post(f"/api/v1/statuses/{inside['id']}/reblog", headers=bob.headers)).status == 403
    response = await client.post(
        f"/api/v1/statuses/{(await post(client, alice, 'x'))['id']}/reblog",
        json={"visibility": "direct"},
        headers=bob.headers,
    )
    assert response.status == 422


async def test_reblog__of_deleted_post_disappears(client: Any, make_user: Any) -> None:
    alice = await make_user("alice")
    bob = await make_user("bob")
    status = await post(client, alice, "short-lived")
    boost = await (await client.post(f"/api/v1/statuses/{status['id']}/reblog", headers=bob.headers)).json()
    await client.delete(f"/api/v1/statuses/{status['id']}", headers=alice.headers)
    assert (await get_status(client, boost["id"], bob)).status == 404


# ---------------------------------------------------------------------------- context


async def test_context__ancestors_and_descendants_for_the_viewer(client: Any, make_user: Any, engine: Any) -> None:
    alice = await make_user("alice")
    bob = await make_user("bob")
    stranger = await make_user("stranger")
    await follow(engine, bob, alice)
    root = await post(client, alice, "root")
    one = await post(client, bob, "one", in_reply_to_id=root["id"])
    two = await post(client, alice, "two", in_reply_to_id=one["id"])
    hidden = await post(client, alice, "hidden", in_reply_to_id=one["id"], visibility="private")
    under_hidden = await post(client, bob, "under hidden", in_reply_to_id=hidden["id"])
    context = await (await client.get(f"/api/v1/statuses/{one['id']}/context", headers=stranger.headers)).json()
    assert [s["id"] for s in context["ancestors"]] == [root["id"]]
    assert [s["id"] for s in context["descendants"]] == [two["id"], under_hidden["id"]]
    context = await (await client.get(f"/api/v1/statuses/{two['id']}/context", headers=alice.headers)).json()
    assert [s["id"] for s in context["ancestors"]] == [root["id"], one["id"]]
    assert context["descendants"] == []
    context = await (await client.get(f"/api/v1/statuses/{root['id']}/context", headers=alice.headers)).json()
    assert [s["id"] for s in context["descendants"]] == [one["id"], two["id"], hidden["id"], under_hidden["id"]]


# ---------------------------------------------------------------------------- property


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    text=st.text(max_size=300),
    spoiler=st.one_of(st.none(), st.text(max_size=40)),
    visibility=st.one_of(st.none(), st.sampled_from(["public", "unlisted", "private", "direct", "", "x"])),
    language=st.one_of(st.none(), st.text(max_size=8)),
    reply=st.one_of(st.none(), st.text(max_size=25)),
    sensitive=st.one_of(st.none(), st.booleans(), st.text(max_size=5)),
)
async def test_create__random_input_never_500_nor_script(
    client: Any,
    make_user: Any,
    text: str,
    spoiler: str | None,
    visibility: str | None,
    language: str | None,
    reply: str | None,
    sensitive: Any,
) -> None:
    user = getattr(client, "_fuzz_user", None)
    if user is None:
        user = await make_user("fuzzer")
        client._fuzz_user = user
    body: dict[str, Any] = {"status": text + " <script>alert(1)</script>"}
    for key, value in (
        ("spoiler_text", spoiler),
        ("visibility", visibility),
        ("language", language),
        ("in_reply_to_id", reply),
        ("sensitive", sensitive),
    ):
        if value is not None:
            body[key] = value
    response = await client.post("/api/v1/statuses", json=body, headers=user.headers)
    assert response.status < 500, await response.text()
    data = await response.json()
    if response.status == 200:
        assert "<script" not in data["content"].lower()
    else:
        assert set(data) == {"error"}
