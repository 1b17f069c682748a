"""Timeline pages written straight from rows (``status_entities.render_page``) and the group
timeline's one-statement query (``timelines.group``).

The page renderer must give exactly the entities the single-status endpoint gives (same
keys, same order, same values), and its per-process JSON caches must never show anything
stale: an edit, a deletion, a block, a mute, a suspension, a new display name or count shows
on the very next page.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import update
from test_statuses import block, follow, join, make_group, mute, post, suspend

from crypto.tokens import digest, new_token
from server.db import make_sessionmaker
from server.ids import new_id
from server.models import Account, Mute, OAuthApp, OAuthToken
from server.web import now


async def page(client: Any, url: str, user: Any | None = None) -> list[dict[str, Any]]:
    response = await client.get(url, headers=user.headers if user else {})
    assert response.status == 200, await response.text()
    assert response.content_type == "application/json"
    return await response.json()  # type: ignore[no-any-return]


async def assert_same_as_single(client: Any, entities: list[dict[str, Any]], user: Any | None) -> None:
    """Each entity is, key for key and in the same order, what GET /api/v1/statuses/:id says."""
    assert entities
    for entity in entities:
        response = await client.get(f"/api/v1/statuses/{entity['id']}", headers=user.headers if user else {})
        assert response.status == 200, await response.text()
        single = await response.json()
        assert json.dumps(entity) == json.dumps(single)


async def app_token(engine: Any, user: Any) -> dict[str, str]:
    """Headers for a token issued to an application, so posts carry ``application``."""
    token = new_token()
    async with make_sessionmaker(engine)() as session:
        app = OAuthApp(
            id=new_id(),
            name='Tusky "beta"',
            website="https://tusky.app",
            client_id=f"cid-{new_id()}",
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
                user_id=user.user_id,
                scopes="read write",
                created_at=now(),
            )
        )
        await session.commit()
    return {"Authorization": f"Bearer {token}"}


async def test_pages__same_entities_as_the_status_endpoint(client: Any, make_user: Any, engine: Any) -> None:
    alice = await make_user("alice")
    bob = await make_user("bob")
    carol = await make_user("carol")
    group_id = await make_group(engine, alice, "circle")
    for member in (bob, carol):
        await join(engine, group_id, member)
    await follow(engine, carol, bob)
    await follow(engine, carol, alice)
    async with make_sessionmaker(engine)() as session:
        await session.execute(
            update(Account)
            .where(Account.id == bob.account_id)
            .values(
                display_name='Bob "the \\ builder" ✨\tok',
                note="<p>Peer supporter</p>",
                fields=[{"name": "Pronouns", "value": "he/him", "verified_at": None}],
                verified_professional=True,
                locked=True,
            )
        )
        await session.commit()
    first = await post(client, alice, "Hello @circle and @bob #Calm #sleep", spoiler_text="cw: feelings")
    reply = await post(client, bob, 'Thanks "friend" — 💛\nsecond line', in_reply_to_id=first["id"])
    private = await post(client, bob, "members only in @circle", visibility="private")
    response = await client.post(
        "/api/v1/statuses",
        json={"status": "from an app in @circle", "language": "pt-BR"},
        headers=await app_token(engine, carol),
    )
    assert response.status == 200, await response.text()
    edited = await post(client, carol, "typo in @circle")
    response = await client.put(
        f"/api/v1/statuses/{edited['id']}", json={"status": "fixed in @circle"}, headers=carol.headers
    )
    assert response.status == 200
    outside = await post(client, bob, "on my profile #calm")
    boost = await (await client.post(f"/api/v1/statuses/{outside['id']}/reblog", headers=alice.headers)).json()
    assert (await client.post(f"/api/v1/statuses/{first['id']}/favourite", headers=carol.headers)).status == 200
    assert (await client.post(f"/api/v1/statuses/{outside['id']}/reblog", headers=carol.headers)).status == 200

    group_url = f"/api/v1/hearthside/groups/{group_id}/timeline"
    as_carol = await page(client, group_url, carol)
    assert {reply["id"], private["id"], edited["id"]} <= {s["id"] for s in as_carol}
    flagged = next(s for s in as_carol if s["id"] == first["id"])
    assert flagged["favourited"] is True and flagged["favourites_count"] == 1
    assert flagged["mentions"] and flagged["tags"] and flagged["hearthside"]["group"]["id"] == str(group_id)
    await assert_same_as_single(client, as_carol, carol)
    as_anyone = await page(client, group_url)
    assert private["id"] not in {s["id"] for s in as_anyone} and "favourited" not in as_anyone[0]
    await assert_same_as_single(client, as_anyone, None)

    home = await page(client, "/api/v1/timelines/home", carol)
    shown = next(s for s in home if s["id"] == boost["id"])
    assert shown["reblog"]["id"] == outside["id"] and shown["reblogged"] is True
    await assert_same_as_single(client, home, carol)
    for url, user in (
        ("/api/v1/timelines/public", carol),
        ("/api/v1/timelines/public", None),
        ("/api/v1/timelines/tag/calm", None),
        (f"/api/v1/accounts/{alice.account_id}/statuses", carol),
        (f"/api/v1/accounts/{alice.account_id}/statuses", None),  # with a boost
        (f"/api/v1/accounts/{bob.account_id}/statuses", None),
        (f"/api/v1/accounts/{group_id}/statuses", bob),
    ):
        await assert_same_as_single(client, await page(client, url, user), user)


async def test_pages__edits_deletes_and_profile_changes_show_at_once(client: Any, make_user: Any, engine: Any) -> None:
    owner = await make_user("owner")
    member = await make_user("member")
    group_id = await make_group(engine, owner, "steady")
    await join(engine, group_id, member)
    kept = await post(client, member, "kept @steady")
    changing = await post(client, member, "before the edit @steady")
    going = await post(client, member, "about to go @steady")
    url = f"/api/v1/hearthside/groups/{group_id}/timeline"
    await page(client, url, owner)  # fill the caches

    response = await client.put(
        f"/api/v1/statuses/{changing['id']}",
        json={"status": "after the edit", "spoiler_text": "cw"},
        headers=member.headers,
    )
    assert response.status == 200
    assert (await client.delete(f"/api/v1/statuses/{going['id']}", headers=member.headers)).status == 200
    response = await client.patch(
        "/api/v1/accounts/update_credentials", json={"display_name": "A new name"}, headers=member.headers
    )
    assert response.status == 200, await response.text()

    shown = {s["id"]: s for s in await page(client, url, owner)}
    assert list(shown) == [changing["id"], kept["id"]]
    assert shown[changing["id"]]["content"] == "<p>after the edit</p>"
    assert shown[changing["id"]]["spoiler_text"] == "cw" and shown[changing["id"]]["edited_at"] is not None
    for status in shown.values():
        assert status["account"]["display_name"] == "A new name"
        assert status["account"]["statuses_count"] == 2
    newest = await post(client, member, "one more @steady")
    shown = {s["id"]: s for s in await page(client, url, owner)}
    assert list(shown) == [newest["id"], changing["id"], kept["id"]]
    assert [s["account"]["statuses_count"] for s in shown.values()] == [3, 3, 3]
    await assert_same_as_single(client, list(shown.values()), owner)


async def test_pages__blocks_mutes_and_suspensions_hide_at_once(client: Any, make_user: Any, engine: Any) -> None:
    me = await make_user("me")
    blocked = await make_user("blocked")
    blocker = await make_user("blocker")
    muted = await make_user("muted")
    briefly = await make_user("briefly")
    suspended = await make_user("suspended")
    group_id = await make_group(engine, me, "hearth")
    people = (blocked, blocker, muted, briefly, suspended)
    for person in people:
        await join(engine, group_id, person)
    posts = {person.username: (await post(client, person, "hi @hearth"))["id"] for person in people}
    url = f"/api/v1/hearthside/groups/{group_id}/timeline"
    assert {s["id"] for s in await page(client, url, me)} == set(posts.values())

    await block(engine, me, blocked)
    await block(engine, blocker, me)
    await mute(engine, me, muted)
    async with make_sessionmaker(engine)() as session:  # an expired mute hides nothing
        session.add(
            Mute(
                id=new_id(),
                account_id=me.account_id,
                target_account_id=briefly.account_id,
                expires_at=now() - timedelta(minutes=1),
                created_at=now(),
            )
        )
        await session.commit()
    await suspend(engine, suspended.account_id)
    assert [s["id"] for s in await page(client, url, me)] == [posts["briefly"]]
    # others still see everything but the suspended author's post
    assert len(await page(client, url, blocked)) == 4
    assert len(await page(client, url)) == 4


async def test_group_timeline__who_may_read_and_paging(client: Any, make_user: Any, engine: Any) -> None:
    owner = await make_user("owner")
    member = await make_user("member")
    outsider = await make_user("outsider")
    pending = await make_user("pending")
    open_id = await make_group(engine, owner, "open")
    closed_id = await make_group(engine, owner, "closed", members_only=True)
    for group_id in (open_id, closed_id):
        await join(engine, group_id, member)
    await follow(engine, pending, as_target(closed_id), state="pending")
    ids = [(await post(client, member, f"post {i} @open"))["id"] for i in range(5)]
    private = await post(client, member, "members see this @open", visibility="private")
    open_url = f"/api/v1/hearthside/groups/{open_id}/timeline"
    closed_url = f"/api/v1/hearthside/groups/{closed_id}/timeline"

    assert [s["id"] for s in await page(client, open_url, member)] == [private["id"], *reversed(ids)]
    assert [s["id"] for s in await page(client, open_url, outsider)] == list(reversed(ids))
    assert await page(client, closed_url, member) == []  # a group with no posts: empty, not 404
    for user in (outsider, pending, None):
        response = await client.get(closed_url, headers=user.headers if user else {})
        assert response.status == 404
        assert await response.json() == {"error": "Record not found"}
    for missing in (f"/api/v1/hearthside/groups/{member.account_id}/timeline", "/api/v1/hearthside/groups/7/timeline"):
        assert (await client.get(missing, headers=member.headers)).status == 404

    def query(**bounds: str) -> str:
        return open_url + "?" + "&".join(f"{k}={v}" for k, v in bounds.items())

    assert [s["id"] for s in await page(client, query(limit="2", max_id=ids[3]), outsider)] == [ids[2], ids[1]]
    assert [s["id"] for s in await page(client, query(limit="2", min_id=ids[0]), outsider)] == [ids[2], ids[1]]
    assert [s["id"] for s in await page(client, query(limit="2", since_id=ids[0]), outsider)] == [ids[4], ids[3]]
    both = query(since_id=ids[0], min_id=ids[2], max_id=ids[4])
    assert [s["id"] for s in await page(client, both, outsider)] == [ids[3]]
    response = await client.get(query(limit="2", max_id=ids[3]), headers=outsider.headers)
    assert response.headers["Link"] == (
        f'<http://{response.url.host}:{response.url.port}{open_url}?limit=2&max_id={ids[1]}>; rel="next", '
        f'<http://{response.url.host}:{response.url.port}{open_url}?limit=2&min_id={ids[2]}>; rel="prev"'
    )

    await suspend(engine, open_id)
    assert (await client.get(open_url, headers=member.headers)).status == 404


def as_target(account_id: int) -> Any:
    """A stand-in user for ``follow`` whose account is ``account_id``."""
    return type("Target", (), {"account_id": account_id})()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    key=st.sampled_from(["limit", "max_id", "min_id", "since_id", "id"]),
    value=st.text(max_size=30),
    logged_in=st.booleans(),
)
async def test_group_timeline__random_parameters_never_500(
    client: Any, make_user: Any, engine: Any, key: str, value: str, logged_in: bool
) -> None:
    state = getattr(client, "_group_fuzz", None)
    if state is None:
        user = await make_user("fuzzer")
        group_id = await make_group(engine, user, "fuzz")
        await post(client, user, "hello @fuzz")
        state = client._group_fuzz = (user, group_id)
    user, group_id = state
    path = f"/api/v1/hearthside/groups/{value if key == 'id' else group_id}/timeline"
    params = {} if key == "id" else {key: value}
    response = await client.get(path, params=params, headers=user.headers if logged_in else {})
    assert response.status < 500, await response.text()
    if response.status >= 400:
        assert "error" in await response.json()
