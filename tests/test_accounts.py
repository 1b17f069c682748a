"""Accounts on the Mastodon-compatible API: one's own profile (verify/update credentials),
showing and looking up accounts, and the followers/following lists, on SQLite and PostgreSQL.

The helpers at the top are shared with the relationship, registration and lifecycle tests.
"""

from __future__ import annotations

from typing import Any

import aiohttp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine
from yarl import URL

from server import groups
from server.db import make_sessionmaker
from server.ids import new_id
from server.models import Account, Follow, Status, StatusEdit, User
from server.web import now

API = "/api/v1/accounts"
STAFF_SCOPES = "read write follow admin:read admin:write"


# ---------------------------------------------------------------------------- shared helpers


async def expect_error(response: Any, status: int, contains: str = "") -> dict[str, Any]:
    """Assert Mastodon's error shape; return the body."""
    assert response.status == status, await response.text()
    body: dict[str, Any] = await response.json()
    assert isinstance(body.get("error"), str) and body["error"]
    assert set(body) <= {"error", "details"}
    assert contains in body["error"], body
    return body


async def ok(response: Any) -> Any:
    assert response.status == 200, await response.text()
    return await response.json()


async def set_account(engine: AsyncEngine, account_id: int, **values: Any) -> None:
    async with make_sessionmaker(engine)() as session:
        await session.execute(update(Account).where(Account.id == account_id).values(**values))
        await session.commit()


async def set_user(engine: AsyncEngine, user_id: int, **values: Any) -> None:
    async with make_sessionmaker(engine)() as session:
        await session.execute(update(User).where(User.id == user_id).values(**values))
        await session.commit()


async def load(engine: AsyncEngine, model: Any, row_id: int) -> Any:
    async with make_sessionmaker(engine)() as session:
        return await session.get(model, row_id)


async def make_group(
    engine: AsyncEngine, owner_account_id: int, name: str, *, join_policy: str = "open", members_only: bool = False
) -> int:
    """A local group owned (and joined) by the owner; returns the group's account id."""
    async with make_sessionmaker(engine)() as session:
        owner = await session.get(Account, owner_account_id)
        assert owner is not None
        view = await groups.create_group(
            session, owner=owner, name=name, join_policy=join_policy, members_only=members_only
        )
        await session.commit()
        return view.account.id


async def add_status(
    engine: AsyncEngine, account_id: int, text: str = "hello", *, edits: tuple[str, ...] = (), **values: Any
) -> int:
    """A post written straight into the database (with its counter), plus edit versions."""
    status_id = new_id()
    moment = now()
    async with make_sessionmaker(engine)() as session:
        session.add(
            Status(
                id=status_id,
                account_id=account_id,
                text=text,
                content=f"<p>{text}</p>",
                created_at=moment,
                **values,
            )
        )
        await session.flush()
        for version in (text, *edits):
            session.add(
                StatusEdit(
                    id=new_id(),
                    status_id=status_id,
                    account_id=account_id,
                    text=version,
                    content=f"<p>{version}</p>",
                    created_at=moment,
                )
            )
        await session.execute(
            update(Account).where(Account.id == account_id).values(statuses_count=Account.statuses_count + 1)
        )
        await session.commit()
    return status_id


async def follow_rows(engine: AsyncEngine, account_id: int) -> list[tuple[int, int, str]]:
    async with make_sessionmaker(engine)() as session:
        rows = await session.execute(
            select(Follow.account_id, Follow.target_account_id, Follow.state).where(
                (Follow.account_id == account_id) | (Follow.target_account_id == account_id)
            )
        )
        return [tuple(r) for r in rows.all()]


async def app_token(client: Any) -> dict[str, str]:
    """Headers with a client_credentials (app-only) token."""
    app = await ok(
        await client.post("/api/v1/apps", data={"client_name": "t", "redirect_uris": "urn:ietf:wg:oauth:2.0:oob"})
    )
    data = {"grant_type": "client_credentials", "client_id": app["client_id"], "client_secret": app["client_secret"]}
    grant = await ok(await client.post("/oauth/token", data=data))
    return {"Authorization": f"Bearer {grant['access_token']}"}


async def account_json(client: Any, account_id: int) -> dict[str, Any]:
    result: dict[str, Any] = await ok(await client.get(f"{API}/{account_id}"))
    return result


# ---------------------------------------------------------------------------- verify_credentials


async def test_verify_credentials__credential_account_with_source_and_role(client: Any, make_user: Any) -> None:
    alice = await make_user("alice", role="moderator")
    body = await ok(await client.get(f"{API}/verify_credentials", headers=alice.headers))
    assert body["id"] == str(alice.account_id)
    assert body["username"] == body["acct"] == "alice"
    assert body["source"]["note"] == ""
    assert body["source"]["fields"] == []
    assert body["source"]["follow_requests_count"] == 0
    assert body["role"]["name"] == "Moderator"
    assert body["group"] is False


async def test_verify_credentials__needs_a_token_and_a_read_or_profile_scope(client: Any, make_user: Any) -> None:
    await expect_error(await client.get(f"{API}/verify_credentials"), 401)
    writer = await make_user("writer", scopes="write")
    await expect_error(await client.get(f"{API}/verify_credentials", headers=writer.headers), 403, "scopes")
    profile = await make_user("profiler", scopes="profile")
    assert (await client.get(f"{API}/verify_credentials", headers=profile.headers)).status == 200
    app_only = await app_token(client)
    await expect_error(await client.get(f"{API}/verify_credentials", headers=app_only), 401, "authenticated user")
    bad = {"Authorization": "Bearer not-a-token"}
    await expect_error(await client.get(f"{API}/verify_credentials", headers=bad), 401)


async def test_verify_credentials__suspended_account_token_is_403(
    client: Any, make_user: Any, engine: AsyncEngine
) -> None:
    alice = await make_user("alice")
    await set_account(engine, alice.account_id, suspended_at=now())
    await expect_error(await client.get(f"{API}/verify_credentials", headers=alice.headers), 403, "disabled")


# ---------------------------------------------------------------------------- update_credentials


async def test_update_credentials__profile_fields_as_json(client: Any, make_user: Any) -> None:
    alice = await make_user("alice")
    response = await client.patch(
        f"{API}/update_credentials",
        json={
            "display_name": "  Alice 🌱  ",
            "note": "Hello **there** <script>x</script>\n\nSecond #calm",
            "locked": True,
            "bot": False,
            "discoverable": False,
            "fields_attributes": [
                {"name": "Pronouns", "value": "she/her"},
                {"name": "Site", "value": "https://example.org/a?b=1&c=<2>"},
                {"name": "", "value": ""},
            ],
        },
        headers=alice.headers,
    )
    body = await ok(response)
    assert body["display_name"] == "Alice 🌱"
    assert "<strong>there</strong>" in body["note"]
    assert "<script>" not in body["note"] and "&lt;script&gt;" in body["note"]
    assert body["note"].count("<p>") == 2
    assert body["source"]["note"] == "Hello **there** <script>x</script>\n\nSecond #calm"
    assert body["locked"] is True and body["discoverable"] is False
    assert [f["name"] for f in body["fields"]] == ["Pronouns", "Site"]
    assert body["fields"][0]["value"] == "she/her"
    site = body["fields"][1]["value"]
    assert '<a href="https://example.org/a?b=1&amp;c=' in site and "<2>" not in site
    assert body["source"]["fields"][1]["value"] == "https://example.org/a?b=1&c=<2>"
    shown = await account_json(client, alice.account_id)
    assert shown["display_name"] == "Alice 🌱" and shown["locked"] is True
    assert "source" not in shown


async def test_update_credentials__form_encoded_fields_as_mastodon_py_sends_them(client: Any, make_user: Any) -> None:
    alice = await make_user("alice")
    form = {
        "display_name": "A",
        "locked": "1",
        "fields_attributes[0][name]": "Likes",
        "fields_attributes[0][value]": "tea",
        "fields_attributes[1][name]": "Dislikes",
        "fields_attributes[1][value]": "noise",
    }
    body = await ok(await client.patch(f"{API}/update_credentials", data=form, headers=alice.headers))
    assert [(f["name"], f["value"]) for f in body["fields"]] == [("Likes", "tea"), ("Dislikes", "noise")]
    assert body["locked"] is True
    # JSON object keyed by index (Rails-style) works too, and an empty list clears the fields
    body = await ok(
        await client.patch(
            f"{API}/update_credentials",
            json={"fields_attributes": {"1": {"name": "b", "value": "2"}, "0": {"name": "a", "value": "1"}}},
            headers=alice.headers,
        )
    )
    assert [f["name"] for f in body["fields"]] == ["a", "b"]
    body = await ok(
        await client.patch(f"{API}/update_credentials", json={"fields_attributes": []}, headers=alice.headers)
    )
    assert body["fields"] == []


async def test_update_credentials__mentions_in_note_link_local_accounts(client: Any, make_user: Any) -> None:
    alice = await make_user("alice")
    await make_user("bob")
    body = await ok(
        await client.patch(
            f"{API}/update_credentials", json={"note": "friend of @bob and @nobody"}, headers=alice.headers
        )
    )
    assert '<a href="http://127.0.0.1:8080/@bob" class="u-url mention"' in body["note"]
    assert "and @nobody</p>" in body["note"]  # unknown: left as text


async def test_update_credentials__validation_failures_name_the_field(client: Any, make_user: Any) -> None:
    alice = await make_user("alice")
    cases = [
        ({"display_name": "x" * 101}, "display_name", "ERR_TOO_LONG"),
        ({"note": "x" * 501}, "note", "ERR_TOO_LONG"),
        ({"display_name": "bell\x07"}, "display_name", "ERR_INVALID"),
        (
            {"fields_attributes": [{"name": str(i), "value": "v"} for i in range(5)]},
            "fields_attributes",
            "ERR_TOO_LONG",
        ),
        ({"fields_attributes": [{"name": "n" * 256, "value": "v"}]}, "fields_attributes", "ERR_TOO_LONG"),
        ({"fields_attributes": ["not an object"]}, "fields_attributes", "ERR_INVALID"),
    ]
    for payload, field, code in cases:
        body = await expect_error(
            await client.patch(f"{API}/update_credentials", json=payload, headers=alice.headers), 422
        )
        assert body["error"].startswith("Validation failed: ")
        assert body["details"][field][0]["error"] == code
    shown = await account_json(client, alice.account_id)
    assert shown["display_name"] == "" and shown["fields"] == []  # nothing half-written


async def test_update_credentials__media_uploads_refused(client: Any, make_user: Any) -> None:
    alice = await make_user("alice")
    form = aiohttp.FormData()
    form.add_field("display_name", "Alice")
    form.add_field("avatar", b"\x89PNG....", filename="a.png", content_type="image/png")
    await expect_error(
        await client.patch(f"{API}/update_credentials", data=form, headers=alice.headers),
        422,
        "media uploads are not supported yet",
    )
    await expect_error(
        await client.patch(f"{API}/update_credentials", json={"header": "data:..."}, headers=alice.headers),
        422,
        "media uploads are not supported yet",
    )
    assert (await account_json(client, alice.account_id))["display_name"] == ""


async def test_update_credentials__needs_write_accounts_scope(client: Any, make_user: Any) -> None:
    reader = await make_user("reader", scopes="read")
    await expect_error(
        await client.patch(f"{API}/update_credentials", json={"display_name": "x"}, headers=reader.headers),
        403,
        "scopes",
    )
    await expect_error(await client.patch(f"{API}/update_credentials", json={"display_name": "x"}), 401)


_property_state: dict[str, Any] = {}
profile_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.text(max_size=600),
    st.lists(st.dictionaries(st.sampled_from(["name", "value", "x"]), st.text(max_size=300)), max_size=6),
    st.dictionaries(st.text(max_size=3), st.text(max_size=10), max_size=3),
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    payload=st.dictionaries(
        st.sampled_from(
            ["display_name", "note", "locked", "bot", "discoverable", "fields_attributes", "avatar", "source[privacy]"]
        ),
        profile_values,
        max_size=5,
    ),
    as_form=st.booleans(),
)
async def test_update_credentials__random_input_never_a_server_error(
    client: Any, make_user: Any, payload: dict[str, Any], as_form: bool
) -> None:
    if _property_state.get("client") is not client:
        _property_state.update(client=client, user=await make_user("fuzzed"))
    user = _property_state["user"]
    if as_form:
        data = {k: str(v) for k, v in payload.items() if v is not None and not isinstance(v, list | dict)}
        response = await client.patch(f"{API}/update_credentials", data=data, headers=user.headers)
    else:
        response = await client.patch(f"{API}/update_credentials", json=payload, headers=user.headers)
    assert response.status in (200, 400, 422), await response.text()
    body = await response.json()
    if response.status != 200:
        assert "error" in body
    else:
        assert len(body["display_name"]) <= 100 and len(body["fields"]) <= 4


# ---------------------------------------------------------------------------- show, lookup


async def test_show__public_without_token_404_for_unknown_and_deleted(
    client: Any, make_user: Any, engine: AsyncEngine
) -> None:
    alice = await make_user("alice")
    body = await account_json(client, alice.account_id)
    assert body["username"] == "alice" and body["url"].endswith("/@alice")
    for bad in ("1", "abc", "99999999999999999999", "-5"):
        await expect_error(await client.get(f"{API}/{bad}"), 404, "Record not found")
    await set_account(engine, alice.account_id, deleted_at=now())
    await expect_error(await client.get(f"{API}/{alice.account_id}"), 404)
    await expect_error(await client.get(f"{API}/lookup", params={"acct": "alice"}), 404)


async def test_show__suspended_account_shown_with_flag_and_no_profile_text(
    client: Any, make_user: Any, engine: AsyncEngine
) -> None:
    alice = await make_user("alice")
    await set_account(engine, alice.account_id, suspended_at=now(), display_name="Alice", note="<p>hi</p>")
    body = await account_json(client, alice.account_id)
    assert body["suspended"] is True
    assert body["display_name"] == "" and body["note"] == ""


async def test_show_many__in_order_skipping_unknown(client: Any, make_user: Any) -> None:
    alice = await make_user("alice")
    bob = await make_user("bob")
    body = await ok(
        await client.get(API, params=[("id[]", str(bob.account_id)), ("id[]", "1"), ("id[]", str(alice.account_id))])
    )
    assert [a["username"] for a in body] == ["bob", "alice"]
    await expect_error(await client.get(API, params={"id[]": "x"}), 422)


async def test_lookup__local_forms_and_unknown(client: Any, make_user: Any, config: Any) -> None:
    alice = await make_user("Alice")
    for handle in ("alice", "@ALICE", f"alice@{config.domain}", f"@Alice@{config.domain.upper()}"):
        body = await ok(await client.get(f"{API}/lookup", params={"acct": handle}))
        assert body["id"] == str(alice.account_id), handle
    for handle in ("bob", "alice@elsewhere.example", "@", "a@b@c", ""):
        response = await client.get(f"{API}/lookup", params={"acct": handle})
        assert response.status in (400, 404), handle
    await expect_error(await client.get(f"{API}/lookup"), 400, "acct")


async def test_lookup__group_is_an_account_with_group_true(client: Any, make_user: Any, engine: AsyncEngine) -> None:
    alice = await make_user("alice")
    await make_group(engine, alice.account_id, "night_owls")
    body = await ok(await client.get(f"{API}/lookup", params={"acct": "night_owls"}))
    assert body["group"] is True and body["followers_count"] == 1


# ---------------------------------------------------------------------------- followers / following


async def test_followers__paginated_by_follow_with_link_header(client: Any, make_user: Any) -> None:
    alice = await make_user("alice")
    fans = [await make_user(f"fan{i}") for i in range(5)]
    for fan in fans:
        await ok(await client.post(f"{API}/{alice.account_id}/follow", headers=fan.headers))
    page1 = await client.get(f"{API}/{alice.account_id}/followers", params={"limit": "2"})
    names = [a["username"] for a in await ok(page1)]
    assert names == ["fan4", "fan3"]  # newest follow first
    link = page1.headers["Link"]
    assert 'rel="next"' in link and 'rel="prev"' in link
    next_url = URL(link.split(";")[0].strip("<>"))
    page2 = await ok(await client.get(next_url.path_qs))
    assert [a["username"] for a in page2] == ["fan2", "fan1"]
    following = await ok(await client.get(f"{API}/{fans[0].account_id}/following"))
    assert [a["username"] for a in following] == ["alice"]
    assert (await account_json(client, alice.account_id))["followers_count"] == 5


async def test_followers__pending_requests_not_listed(client: Any, make_user: Any, engine: AsyncEngine) -> None:
    alice = await make_user("alice")
    bob = await make_user("bob")
    await set_account(engine, alice.account_id, locked=True)
    await ok(await client.post(f"{API}/{alice.account_id}/follow", headers=bob.headers))
    assert await ok(await client.get(f"{API}/{alice.account_id}/followers")) == []
    assert await ok(await client.get(f"{API}/{bob.account_id}/following")) == []


async def test_followers__hidden_from_someone_the_account_blocks(client: Any, make_user: Any) -> None:
    alice = await make_user("alice")
    bob = await make_user("bob")
    carol = await make_user("carol")
    await ok(await client.post(f"{API}/{alice.account_id}/follow", headers=carol.headers))
    await ok(await client.post(f"{API}/{bob.account_id}/block", headers=alice.headers))
    assert await ok(await client.get(f"{API}/{alice.account_id}/followers", headers=bob.headers)) == []
    assert len(await ok(await client.get(f"{API}/{alice.account_id}/followers", headers=carol.headers))) == 1


async def test_followers__members_only_group_members_hidden_from_outsiders(
    client: Any, make_user: Any, engine: AsyncEngine
) -> None:
    owner = await make_user("owner")
    outsider = await make_user("outsider")
    staff = await make_user("staff", role="moderator")
    group_id = await make_group(engine, owner.account_id, "closed_circle", members_only=True)
    assert await ok(await client.get(f"{API}/{group_id}/followers")) == []
    assert await ok(await client.get(f"{API}/{group_id}/followers", headers=outsider.headers)) == []
    members = await ok(await client.get(f"{API}/{group_id}/followers", headers=owner.headers))
    assert [a["username"] for a in members] == ["owner"]
    assert len(await ok(await client.get(f"{API}/{group_id}/followers", headers=staff.headers))) == 1
    # and the group does not show up in the owner's following list for others
    assert await ok(await client.get(f"{API}/{owner.account_id}/following", headers=outsider.headers)) == []
    mine = await ok(await client.get(f"{API}/{owner.account_id}/following", headers=owner.headers))
    assert [a["username"] for a in mine] == ["closed_circle"]
    open_id = await make_group(engine, owner.account_id, "open_circle")
    theirs = await ok(await client.get(f"{API}/{owner.account_id}/following", headers=outsider.headers))
    assert [a["id"] for a in theirs] == [str(open_id)]


async def test_followers__suspended_account_lists_are_empty(client: Any, make_user: Any, engine: AsyncEngine) -> None:
    alice = await make_user("alice")
    bob = await make_user("bob")
    await ok(await client.post(f"{API}/{alice.account_id}/follow", headers=bob.headers))
    await set_account(engine, alice.account_id, suspended_at=now())
    assert await ok(await client.get(f"{API}/{alice.account_id}/followers")) == []
    # and a suspended follower disappears from other lists
    assert await ok(await client.get(f"{API}/{bob.account_id}/following")) == []
