"""The home timeline gathered source by source gives exactly the pages of the single query.

``timelines.home`` asks each followed person, joined group and the viewer for their newest
candidates and applies the home rules to those only; with follows beyond
``HOME_SOURCES_MAX`` it falls back to one ``OR`` query. The single query is the oracle here:
every page, in both directions, must match it, including when the rules drop most of one
source's posts (replies to strangers, boosts of a quiet-boosts follow, muted accounts) so
that several passes are needed.
"""

from __future__ import annotations

from typing import Any

import pytest

from server import timelines


async def _post(client: Any, user: Any, text: str, **extra: Any) -> str:
    response = await client.post("/api/v1/statuses", json={"status": text, **extra}, headers=user.headers)
    assert response.status == 200, await response.text()
    return str((await response.json())["id"])


async def _walk(client: Any, viewer: Any, *, ascending: bool) -> list[list[str]]:
    pages: list[list[str]] = []
    params: dict[str, str] = {"limit": "3"}
    if ascending:
        params["min_id"] = "1"
    for _ in range(40):
        response = await client.get("/api/v1/timelines/home", params=params, headers=viewer.headers)
        assert response.status == 200
        ids = [s["id"] for s in await response.json()]
        if not ids:
            break
        pages.append(ids)
        params = {
            "limit": "3",
            ("min_id" if ascending else "max_id"): max(ids, key=int) if ascending else min(ids, key=int),
        }
    return pages


@pytest.mark.parametrize("ascending", [False, True])
async def test_home__by_source_matches_the_single_query(
    client: Any, make_user: Any, monkeypatch: pytest.MonkeyPatch, ascending: bool
) -> None:
    viewer = await make_user("viewer")
    chatty, quiet, booster, muted, stranger = [
        await make_user(name) for name in ("chatty", "quiet", "booster", "muted", "stranger")
    ]
    for person in (chatty, quiet, booster, muted):
        response = await client.post(f"/api/v1/accounts/{person.account_id}/follow", headers=viewer.headers)
        assert response.status == 200
    await client.post(f"/api/v1/accounts/{booster.account_id}/follow", json={"reblogs": False}, headers=viewer.headers)
    await client.post(f"/api/v1/accounts/{muted.account_id}/mute", headers=viewer.headers)
    group = await (
        await client.post("/api/v1/hearthside/groups", json={"name": "circle"}, headers=chatty.headers)
    ).json()
    await client.post(f"/api/v1/hearthside/groups/{group['id']}/join", headers=viewer.headers)

    stranger_post = await _post(client, stranger, "hello from afar")
    await _post(client, quiet, "a quiet first post")
    for n in range(9):  # mostly dropped by the rules: replies to a stranger
        await _post(client, chatty, f"reply {n}", in_reply_to_id=stranger_post)
    await _post(client, muted, "muted words")
    await client.post(f"/api/v1/statuses/{stranger_post}/reblog", headers=booster.headers)
    await _post(client, chatty, "in the circle", group_id=group["id"])
    await _post(client, viewer, "my own")
    for n in range(4):
        await _post(client, chatty, f"chatty {n}")
    await _post(client, quiet, "a quiet second post")

    monkeypatch.setattr(timelines, "HOME_SLACK", 0)  # force several passes
    by_source = await _walk(client, viewer, ascending=ascending)
    monkeypatch.setattr(timelines, "HOME_SOURCES_MAX", 0)  # the single OR query
    single = await _walk(client, viewer, ascending=ascending)
    assert by_source == single
    flat = [status for page in single for status in page]
    # 2 quiet + the circle post + my own + 4 chatty; not: replies to the stranger, the muted
    # account, the boost by a follow whose boosts are turned off.
    assert len(flat) == 8
    assert len(set(flat)) == 8
