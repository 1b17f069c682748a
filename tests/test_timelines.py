"""Timelines: home, public, hashtag, group and account timelines; pagination; query counts."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event, update
from test_statuses import block, follow, join, make_group, mute, post, suspend

from server.db import make_sessionmaker
from server.models import Follow, Status


async def ids(response: Any) -> list[str]:
    assert response.status == 200, await response.text()
    return [s["id"] for s in await response.json()]


def links(response: Any) -> dict[str, dict[str, str]]:
    """The Link header's targets by rel, as their query parameters."""
    out = {}
    for part in response.headers.get("Link", "").split(","):
        if not part.strip():
            continue
        url, rel = part.split(";")
        query = parse_qs(urlsplit(url.strip()[1:-1]).query)
        out[rel.split("=")[1].strip('"')] = {k: v[0] for k, v in query.items()}
    return out


# ---------------------------------------------------------------------------- home


async def test_home__own_followed_and_group_posts(client: Any, make_user: Any, engine: Any) -> None:
    me = await make_user("me")
    friend = await make_user("friend")
    stranger = await make_user("stranger")
    pending = await make_user("pending")
    await follow(engine, me, friend)
    await follow(engine, me, pending, state="pending")
    group_id = await make_group(engine, stranger, "peers")
    await join(engine, group_id, me)
    own = await post(client, me, "mine", visibility="private")
    friends_private = await post(client, friend, "friends only", visibility="private")
    friends_public = await post(client, friend, "public")
    in_group = await post(client, stranger, "in @peers")
    await post(client, stranger, "not for me")
    await post(client, pending, "pending follow", visibility="private")
    response = await client.get("/api/v1/timelines/home", headers=me.headers)
    assert await ids(response) == [in_group["id"], friends_public["id"], friends_private["id"], own["id"]]


async def test_home__follows_boosts_but_not_replies_to_strangers(client: Any, make_user: Any, engine: Any) -> None:
    me = await make_user("me")
    friend = await make_user("friend")
    stranger = await make_user("stranger")
    await follow(engine, me, friend)
    original = await post(client, stranger, "worth sharing")
    boost = await (await client.post(f"/api/v1/statuses/{original['id']}/reblog", headers=friend.headers)).json()
    to_stranger = await post(client, friend, "reply to stranger", in_reply_to_id=original["id"])
    to_me = await post(client, friend, "@me hi", in_reply_to_id=(await post(client, me, "q"))["id"])
    body = await (await client.get("/api/v1/timelines/home", headers=me.headers)).json()
    got = [s["id"] for s in body]
    assert boost["id"] in got and to_me["id"] in got and to_stranger["id"] not in got
    shown = next(s for s in body if s["id"] == boost["id"])
    assert shown["reblog"]["id"] == original["id"]
    async with make_sessionmaker(engine)() as session:
        await session.execute(update(Follow).values(show_reblogs=False))
        await session.commit()
    assert boost["id"] not in await ids(await client.get("/api/v1/timelines/home", headers=me.headers))


async def test_home__muted_and_blocked_accounts_left_out(client: Any, make_user: Any, engine: Any) -> None:
    me = await make_user("me")
    muted = await make_user("muted")
    blocked = await make_user("blocked")
    blocker = await make_user("blocker")
    friend = await make_user("friend")
    for account in (muted, blocked, blocker, friend):
        await follow(engine, me, account)
    await mute(engine, me, muted)
    await block(engine, me, blocked)
    await block(engine, blocker, me)
    kept = await post(client, friend, "kept")
    for account in (muted, blocked, blocker):
        await post(client, account, "hidden")
    stranger_post = await post(client, muted, "boosted by a friend")
    await client.post(f"/api/v1/statuses/{stranger_post['id']}/reblog", headers=friend.headers)
    body = await (await client.get("/api/v1/timelines/home", headers=me.headers)).json()
    assert [s["id"] for s in body] == [kept["id"]]


async def test_home__needs_a_user_token(client: Any, make_user: Any) -> None:
    assert (await client.get("/api/v1/timelines/home")).status == 401
    writer = await make_user("writer", scopes="write")
    assert (await client.get("/api/v1/timelines/home", headers=writer.headers)).status == 403


async def test_home__pagination_and_link_headers(client: Any, make_user: Any) -> None:
    me = await make_user("me")
    posted = [(await post(client, me, f"post {i}"))["id"] for i in range(7)]
    newest_first = posted[::-1]
    first = await client.get("/api/v1/timelines/home?limit=3", headers=me.headers)
    assert await ids(first) == newest_first[:3]
    rel = links(first)
    assert rel["next"]["max_id"] == newest_first[2] and rel["prev"]["min_id"] == newest_first[0]
    second = await client.get(f"/api/v1/timelines/home?limit=3&max_id={rel['next']['max_id']}", headers=me.headers)
    assert await ids(second) == newest_first[3:6]
    third = await client.get(f"/api/v1/timelines/home?limit=3&max_id={newest_first[5]}", headers=me.headers)
    assert await ids(third) == newest_first[6:]
    # min_id: the items just above, newest first
    above = await client.get(f"/api/v1/timelines/home?limit=2&min_id={posted[1]}", headers=me.headers)
    assert await ids(above) == [posted[3], posted[2]]
    # since_id: the newest items above
    since = await client.get(f"/api/v1/timelines/home?limit=2&since_id={posted[1]}", headers=me.headers)
    assert await ids(since) == [posted[6], posted[5]]
    empty = await client.get(f"/api/v1/timelines/home?max_id={posted[0]}", headers=me.headers)
    assert await ids(empty) == [] and "Link" not in empty.headers
    many = await client.get("/api/v1/timelines/home?limit=500", headers=me.headers)
    assert len(await ids(many)) == 7
    bad = await client.get("/api/v1/timelines/home?limit=0", headers=me.headers)
    assert bad.status == 422
    bad = await client.get("/api/v1/timelines/home?max_id=abc", headers=me.headers)
    assert bad.status == 422


# ---------------------------------------------------------------------------- public


async def test_public__public_posts_only_for_anyone(client: Any, make_user: Any, engine: Any) -> None:
    alice = await make_user("alice")
    bob = await make_user("bob")
    public = await post(client, alice, "public")
    await post(client, alice, "unlisted", visibility="unlisted")
    await post(client, alice, "private", visibility="private")
    await post(client, bob, "reply to alice", in_reply_to_id=public["id"])
    self_reply = await post(client, alice, "thread continues", in_reply_to_id=public["id"])
    await client.post(f"/api/v1/statuses/{public['id']}/reblog", headers=bob.headers)
    expected = [self_reply["id"], public["id"]]
    assert await ids(await client.get("/api/v1/timelines/public")) == expected
    assert await ids(await client.get("/api/v1/timelines/public?local=true")) == expected
    assert await ids(await client.get("/api/v1/timelines/public?remote=true")) == []
    assert await ids(await client.get("/api/v1/timelines/public?only_media=true")) == []


async def test_public__blocked_muted_suspended_and_members_only_left_out(
    client: Any, make_user: Any, engine: Any
) -> None:
    me = await make_user("me")
    blocked = await make_user("blocked")
    muted = await make_user("muted")
    gone = await make_user("gone")
    owner = await make_user("owner")
    kept = await post(client, owner, "kept")
    await post(client, blocked, "from blocked")
    await post(client, muted, "from muted")
    await post(client, gone, "from suspended")
    group_id = await make_group(engine, owner, "circle", members_only=True)
    await join(engine, group_id, me)
    members_post = await post(client, owner, "in @circle")
    # even a post made public before the group went members-only stays out
    async with make_sessionmaker(engine)() as session:
        await session.execute(update(Status).where(Status.id == int(members_post["id"])).values(visibility="public"))
        await session.commit()
    await block(engine, me, blocked)
    await mute(engine, me, muted)
    await suspend(engine, gone.account_id)
    assert await ids(await client.get("/api/v1/timelines/public", headers=me.headers)) == [kept["id"]]
    anonymous = await ids(await client.get("/api/v1/timelines/public"))
    assert members_post["id"] not in anonymous and kept["id"] in anonymous


# ---------------------------------------------------------------------------- hashtags


async def test_tag__public_posts_with_any_all_none(client: Any, make_user: Any, engine: Any) -> None:
    alice = await make_user("alice")
    outsider = await make_user("outsider")
    both = await post(client, alice, "#Calm and #sleep")
    calm = await post(client, alice, "just #calm")
    sleep = await post(client, alice, "just #sleep")
    await post(client, alice, "#calm but unlisted", visibility="unlisted")
    await post(client, alice, "#calm but private", visibility="private")
    group_id = await make_group(engine, alice, "circle", members_only=True)
    await join(engine, group_id, alice)
    await post(client, alice, "#calm in @circle")
    assert await ids(await client.get("/api/v1/timelines/tag/calm")) == [calm["id"], both["id"]]
    assert await ids(await client.get("/api/v1/timelines/tag/CALM", headers=outsider.headers)) == [
        calm["id"],
        both["id"],
    ]
    assert await ids(await client.get("/api/v1/timelines/tag/calm?any[]=sleep")) == [
        sleep["id"],
        calm["id"],
        both["id"],
    ]
    assert await ids(await client.get("/api/v1/timelines/tag/calm?all[]=sleep")) == [both["id"]]
    assert await ids(await client.get("/api/v1/timelines/tag/calm?none[]=sleep")) == [calm["id"]]
    assert await ids(await client.get("/api/v1/timelines/tag/unknown")) == []
    assert await ids(await client.get("/api/v1/timelines/tag/calm?all[]=unknown")) == []


# ---------------------------------------------------------------------------- groups


async def test_group_timeline__members_only_hidden_from_outsiders(client: Any, make_user: Any, engine: Any) -> None:
    owner = await make_user("owner")
    member = await make_user("member")
    outsider = await make_user("outsider")
    group_id = await make_group(engine, owner, "circle", members_only=True)
    await join(engine, group_id, member)
    first = await post(client, owner, "one @circle")
    second = await post(client, member, "two", group_id=str(group_id))
    url = f"/api/v1/hearthside/groups/{group_id}/timeline"
    assert await ids(await client.get(url, headers=member.headers)) == [second["id"], first["id"]]
    for headers in (outsider.headers, {}):
        response = await client.get(url, headers=headers)
        assert response.status == 404
        assert await response.json() == {"error": "Record not found"}
    assert (await client.get(f"/api/v1/hearthside/groups/{owner.account_id}/timeline")).status == 404
    assert (await client.get("/api/v1/hearthside/groups/999/timeline")).status == 404
    # the members-only posts stay out of the outsider's views everywhere
    assert (await client.get(f"/api/v1/accounts/{group_id}/statuses", headers=outsider.headers)).status == 200
    assert await ids(await client.get(f"/api/v1/accounts/{group_id}/statuses", headers=outsider.headers)) == []
    assert await ids(await client.get(f"/api/v1/accounts/{owner.account_id}/statuses", headers=outsider.headers)) == []
    await follow(engine, outsider, owner)
    assert await ids(await client.get("/api/v1/timelines/home", headers=outsider.headers)) == []


async def test_group_timeline__public_group_shows_public_posts_to_all(client: Any, make_user: Any, engine: Any) -> None:
    owner = await make_user("owner")
    member = await make_user("member")
    blocked = await make_user("blocked")
    group_id = await make_group(engine, owner, "peers")
    await join(engine, group_id, member)
    await join(engine, group_id, blocked)
    public = await post(client, owner, "hello @peers")
    private = await post(client, member, "members see this @peers", visibility="private")
    from_blocked = await post(client, blocked, "@peers hi")
    url = f"/api/v1/hearthside/groups/{group_id}/timeline"
    assert await ids(await client.get(url)) == [from_blocked["id"], public["id"]]
    assert await ids(await client.get(url, headers=member.headers)) == [from_blocked["id"], private["id"], public["id"]]
    await block(engine, member, blocked)
    assert await ids(await client.get(url, headers=member.headers)) == [private["id"], public["id"]]
    page = await client.get(url + "?limit=1", headers=member.headers)
    assert await ids(page) == [private["id"]]
    assert links(page)["next"]["max_id"] == private["id"]


async def test_group_timeline__constant_number_of_queries(client: Any, make_user: Any, engine: Any) -> None:
    owner = await make_user("owner")
    group_id = await make_group(engine, owner, "busy")
    people = [owner]
    for i in range(4):
        person = await make_user(f"member{i}")
        await join(engine, group_id, person)
        people.append(person)
    for i in range(3):
        await post(client, people[i], f"#tag{i} @busy hello @owner")
    url = f"/api/v1/hearthside/groups/{group_id}/timeline"
    await client.get(url, headers=owner.headers)  # warm the token cache

    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        await client.get(url, headers=owner.headers)
        few = len(statements)
        for i in range(20):
            await post(client, people[i % 5], f"#tag{i} @busy post {i} @member{i % 4}")
        statements.clear()
        response = await client.get(url, headers=owner.headers)
        many = len(statements)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)
    assert len(await ids(response)) == 20
    assert many == few, statements
    assert many <= 10, many


# ---------------------------------------------------------------------------- account statuses


async def test_account_statuses__filters(client: Any, make_user: Any, engine: Any) -> None:
    alice = await make_user("alice")
    bob = await make_user("bob")
    stranger = await make_user("stranger")
    await follow(engine, bob, alice)
    top = await post(client, alice, "top #news")
    private = await post(client, alice, "friends", visibility="private")
    self_reply = await post(client, alice, "more", in_reply_to_id=top["id"])
    bobs = await post(client, bob, "bob's")
    reply_to_bob = await post(client, alice, "reply", in_reply_to_id=bobs["id"])
    boost = await (await client.post(f"/api/v1/statuses/{bobs['id']}/reblog", headers=alice.headers)).json()
    url = f"/api/v1/accounts/{alice.account_id}/statuses"
    everything = [boost["id"], reply_to_bob["id"], self_reply["id"], private["id"], top["id"]]
    assert await ids(await client.get(url, headers=bob.headers)) == everything
    public_only = [boost["id"], reply_to_bob["id"], self_reply["id"], top["id"]]
    assert await ids(await client.get(url, headers=stranger.headers)) == public_only
    assert await ids(await client.get(url)) == public_only
    no_replies = await client.get(url + "?exclude_replies=true", headers=bob.headers)
    assert await ids(no_replies) == [boost["id"], self_reply["id"], private["id"], top["id"]]
    no_boosts = await client.get(url + "?exclude_reblogs=true", headers=bob.headers)
    assert boost["id"] not in await ids(no_boosts)
    assert await ids(await client.get(url + "?tagged=news")) == [top["id"]]
    assert await ids(await client.get(url + "?pinned=true")) == []
    assert await ids(await client.get(url + "?only_media=true")) == []
    assert (await client.get("/api/v1/accounts/424242/statuses")).status == 404
    await block(engine, alice, stranger)
    assert await ids(await client.get(url, headers=stranger.headers)) == []


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    path=st.sampled_from(
        ["/api/v1/timelines/public", "/api/v1/timelines/tag/x", "/api/v1/timelines/home", "/api/v1/accounts/1/statuses"]
    ),
    key=st.sampled_from(["limit", "max_id", "min_id", "since_id", "local", "any[]", "tagged", "only_media"]),
    value=st.text(max_size=30),
)
async def test_timelines__random_parameters_never_500(
    client: Any, make_user: Any, path: str, key: str, value: str
) -> None:
    user = getattr(client, "_fuzz_user", None)
    if user is None:
        user = await make_user("fuzzer")
        client._fuzz_user = user
    response = await client.get(path, params={key: value}, headers=user.headers)
    assert response.status < 500, await response.text()
    if response.status >= 400:
        assert "error" in await response.json()
