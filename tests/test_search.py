"""Search: accounts, statuses and hashtags, with visibility and wildcard escaping."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import update
from test_statuses import block, follow, join, make_group, post, suspend

from server.db import make_sessionmaker
from server.models import Account


async def search(client: Any, params: dict[str, Any], user: Any | None = None) -> dict[str, Any]:
    response = await client.get("/api/v2/search", params=params, headers=user.headers if user else {})
    assert response.status == 200, await response.text()
    return await response.json()  # type: ignore[no-any-return]


async def test_search__accounts_by_username_and_display_name(client: Any, make_user: Any, engine: Any) -> None:
    await make_user("river_song")
    await make_user("riverbank")
    await make_user("oakriver")
    gone = await make_user("rivergone")
    owner = await make_user("owner")
    await make_group(engine, owner, "riverside")
    async with make_sessionmaker(engine)() as session:
        await session.execute(update(Account).where(Account.username == "owner").values(display_name="River Keeper"))
        await session.commit()
    await suspend(engine, gone.account_id)
    found = await search(client, {"q": "River", "type": "accounts"})
    names = [a["username"] for a in found["accounts"]]
    assert set(names) == {"river_song", "riverbank", "oakriver", "riverside", "owner"}
    assert names.index("oakriver") > names.index("riverbank")  # prefix matches first
    assert any(a["group"] for a in found["accounts"])
    exact = await search(client, {"q": "@riverbank@127.0.0.1:8080", "type": "accounts"})
    assert exact["accounts"][0]["username"] == "riverbank"
    assert (await search(client, {"q": "@riverbank@elsewhere.example"}))["accounts"] == []


async def test_search__wildcards_are_literal(client: Any, make_user: Any) -> None:
    alice = await make_user("alice")
    await make_user("a_b")
    await post(client, alice, "100% sure")
    await post(client, alice, "100 percent")
    assert (await search(client, {"q": "%", "type": "accounts"}))["accounts"] == []
    assert [a["username"] for a in (await search(client, {"q": "a_", "type": "accounts"}))["accounts"]] == ["a_b"]
    found = await search(client, {"q": "100%", "type": "statuses"}, alice)
    assert [s["content"] for s in found["statuses"]] == ["<p>100% sure</p>"]


async def test_search__statuses_only_visible_ones_and_only_logged_in(client: Any, make_user: Any, engine: Any) -> None:
    alice = await make_user("alice")
    friend = await make_user("friend")
    stranger = await make_user("stranger")
    blocked = await make_user("blocked")
    await follow(engine, friend, alice)
    public = await post(client, alice, "Gardening helps me")
    private = await post(client, alice, "gardening with friends", visibility="private")
    await post(client, blocked, "gardening too")
    await block(engine, stranger, blocked)
    group_id = await make_group(engine, alice, "circle", members_only=True)
    await join(engine, group_id, friend)
    inside = await post(client, alice, "gardening in @circle")
    as_friend = await search(client, {"q": "GARDENING", "type": "statuses"}, friend)
    assert {s["id"] for s in as_friend["statuses"]} >= {public["id"], private["id"], inside["id"]}
    as_stranger = await search(client, {"q": "gardening", "type": "statuses"}, stranger)
    assert [s["id"] for s in as_stranger["statuses"]] == [public["id"]]
    assert (await search(client, {"q": "gardening"}))["statuses"] == []
    by_author = await search(client, {"q": "gardening", "account_id": str(alice.account_id)}, stranger)
    assert [s["id"] for s in by_author["statuses"]] == [public["id"]]
    assert by_author["accounts"] == [] and by_author["hashtags"] == []


async def test_search__hashtags_by_prefix(client: Any, make_user: Any) -> None:
    alice = await make_user("alice")
    await post(client, alice, "#selfcare #selfcompassion #sleep")
    found = await search(client, {"q": "#Self", "type": "hashtags"})
    assert [t["name"] for t in found["hashtags"]] == ["selfcare", "selfcompassion"]
    assert found["hashtags"][0]["url"] == "http://127.0.0.1:8080/tags/selfcare"


async def test_search__following_offset_and_limits(client: Any, make_user: Any, engine: Any) -> None:
    me = await make_user("me")
    sam1 = await make_user("sam1")
    await make_user("sam2")
    await follow(engine, me, sam1)
    found = await search(client, {"q": "sam", "type": "accounts", "following": "true"}, me)
    assert [a["username"] for a in found["accounts"]] == ["sam1"]
    paged = await search(client, {"q": "sam", "type": "accounts", "limit": "1", "offset": "1"}, me)
    assert len(paged["accounts"]) == 1
    assert (await client.get("/api/v2/search", params={"q": "sam", "offset": "1"})).status == 401
    long = await client.get("/api/v2/search", params={"q": "x" * 501})
    assert long.status == 422
    assert (await client.get("/api/v2/search", params={"q": "x" * 500})).status == 200
    assert (await client.get("/api/v2/search", params={"q": "x", "type": "people"})).status == 422
    assert (await client.get("/api/v2/search")).status == 400
    writer = await make_user("writer", scopes="write")
    assert (await client.get("/api/v2/search", params={"q": "x"}, headers=writer.headers)).status == 403


async def test_accounts_search__v1_endpoint(client: Any, make_user: Any, engine: Any) -> None:
    me = await make_user("me")
    target = await make_user("findme")
    await make_user("findyou")
    for path in ("/api/v1/accounts/search", "/api/v1/accounts/search/"):
        response = await client.get(path, params={"q": "find"})
        assert response.status == 200, await response.text()
        assert {a["username"] for a in await response.json()} == {"findme", "findyou"}
    await follow(engine, me, target)
    response = await client.get(
        "/api/v1/accounts/search", params={"q": "find", "following": "true"}, headers=me.headers
    )
    assert [a["username"] for a in await response.json()] == ["findme"]
    await block(engine, target, me)
    response = await client.get("/api/v1/accounts/search", params={"q": "find"}, headers=me.headers)
    assert [a["username"] for a in await response.json()] == ["findyou"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(q=st.text(max_size=60), kind=st.sampled_from([None, "accounts", "statuses", "hashtags"]))
async def test_search__random_queries_never_500(client: Any, make_user: Any, q: str, kind: str | None) -> None:
    user = getattr(client, "_fuzz_user", None)
    if user is None:
        user = await make_user("fuzzer")
        await post(client, user, "some #text to find")
        client._fuzz_user = user
    params = {"q": q} if kind is None else {"q": q, "type": kind}
    response = await client.get("/api/v2/search", params=params, headers=user.headers)
    assert response.status < 500, await response.text()
    body = await response.json()
    if response.status == 200:
        assert set(body) == {"accounts", "statuses", "hashtags"}
    else:
        assert set(body) == {"error"}
