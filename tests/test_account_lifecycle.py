"""Self-deletion, data export and password changes (Hearthside extensions), and the admin
account API (suspension, roles, verified professionals, listing), on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from conftest import make_config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from test_accounts import (
    API,
    STAFF_SCOPES,
    account_json,
    add_status,
    expect_error,
    follow_rows,
    load,
    make_group,
    ok,
    set_user,
)

from server.app import create_app
from server.db import make_sessionmaker
from server.ids import new_id
from server.models import Account, Favourite, Notification, OAuthToken, Status, StatusEdit, User
from server.web import now

H = "/api/v1/hearthside"
ADMIN = "/api/v1/admin/accounts"
PASSWORD = "correct horse battery"  # conftest's default


async def favourite(engine: AsyncEngine, account_id: int, status_id: int) -> None:
    async with make_sessionmaker(engine)() as session:
        session.add(Favourite(id=new_id(), account_id=account_id, status_id=status_id, created_at=now()))
        status = await session.get(Status, status_id)
        assert status is not None
        status.favourites_count += 1
        await session.commit()


# ---------------------------------------------------------------------------- delete


async def test_delete__needs_the_password(client: Any, make_user: Any, engine: AsyncEngine) -> None:
    alice = await make_user("alice")
    body = await expect_error(await client.post(f"{H}/account/delete", json={}, headers=alice.headers), 422)
    assert body["details"]["password"][0]["error"] == "ERR_BLANK"
    body = await expect_error(
        await client.post(f"{H}/account/delete", json={"password": "wrong"}, headers=alice.headers), 422
    )
    assert body["details"]["password"][0]["error"] == "ERR_INVALID"
    reader = await make_user("reader", scopes="read")
    await expect_error(
        await client.post(f"{H}/account/delete", json={"password": PASSWORD}, headers=reader.headers), 403, "scopes"
    )
    assert (await load(engine, Account, alice.account_id)).deleted_at is None


async def test_delete__scrubs_everything_and_revokes_tokens(
    client: Any, make_user: Any, engine: AsyncEngine, tmp_path: Path, db_url: str, aiohttp_client: Any
) -> None:
    alice = await make_user("alice")
    bob = await make_user("bob")
    await ok(
        await client.patch(
            f"{API}/update_credentials",
            json={"display_name": "Alice", "note": "about me", "fields_attributes": [{"name": "a", "value": "b"}]},
            headers=alice.headers,
        )
    )
    second_token = await make_second_token(engine, alice.user_id)
    post = await add_status(engine, alice.account_id, "my private thoughts", edits=("edited thoughts",))
    bobs_post = await add_status(engine, bob.account_id, "bob's post")
    reply = await add_status(engine, alice.account_id, "reply to bob", in_reply_to_id=bobs_post)
    await set_status(engine, bobs_post, replies_count=1)
    await favourite(engine, alice.account_id, bobs_post)
    await favourite(engine, bob.account_id, post)
    await ok(await client.post(f"{API}/{bob.account_id}/follow", headers=alice.headers))
    await ok(await client.post(f"{API}/{alice.account_id}/follow", headers=bob.headers))
    group_id = await make_group(engine, bob.account_id, "shared_space")
    await ok(await client.post(f"{API}/{group_id}/follow", headers=alice.headers))

    await ok(await client.post(f"{H}/account/delete", json={"password": PASSWORD}, headers=alice.headers))

    for token in (alice.token, second_token):
        await expect_error(await client.get(f"{API}/verify_credentials", headers=bearer(token)), 401)
    await expect_error(await client.get(f"{API}/{alice.account_id}"), 404)
    account = await load(engine, Account, alice.account_id)
    assert account.deleted_at is not None
    assert (account.display_name, account.note, account.note_source, account.fields) == ("", "", "", [])
    user = await load(engine, User, alice.user_id)
    assert user.email is None and user.password_hash == "!deleted"
    for status_id in (post, reply):
        status = await load(engine, Status, status_id)
        assert status.deleted_at is not None and status.text == status.content == ""
    async with make_sessionmaker(engine)() as session:
        edits = (await session.execute(select(StatusEdit).where(StatusEdit.status_id == post))).scalars().all()
        assert edits == []
        favs = (await session.execute(select(Favourite))).scalars().all()
        assert favs == []
        notes = (
            await session.execute(select(Notification).where(Notification.from_account_id == alice.account_id))
        ).all()
        assert notes == []
    bobs = await load(engine, Status, bobs_post)
    assert (bobs.replies_count, bobs.favourites_count) == (0, 0)
    assert await follow_rows(engine, alice.account_id) == []
    bob_now = await account_json(client, bob.account_id)
    assert (bob_now["followers_count"], bob_now["following_count"]) == (0, 1)  # 1: his own group
    assert (await account_json(client, group_id))["followers_count"] == 1
    # the username stays reserved
    config = make_config(tmp_path, db_url, instance={"registrations": "open"})
    signup = await aiohttp_client(create_app(config, engine=engine))
    body = await expect_error(
        await signup.post(API, json={"username": "ALICE", "password": "another password", "agreement": True}), 422
    )
    assert body["details"]["username"][0]["error"] == "ERR_TAKEN"


async def test_delete__the_only_admin_cannot_delete_themselves(client: Any, make_user: Any) -> None:
    boss = await make_user("boss", role="admin")
    await expect_error(
        await client.post(f"{H}/account/delete", json={"password": PASSWORD}, headers=boss.headers), 403, "only admin"
    )
    await make_user("deputy", role="admin")
    await ok(await client.post(f"{H}/account/delete", json={"password": PASSWORD}, headers=boss.headers))


async def test_delete__wrong_passwords_are_rate_limited(
    aiohttp_client: Any, make_user: Any, engine: AsyncEngine, tmp_path: Path, db_url: str
) -> None:
    config = make_config(tmp_path, db_url, security={"login_attempts_per_minute": 2})
    client = await aiohttp_client(create_app(config, engine=engine))
    alice = await make_user("alice")
    for _ in range(2):
        await expect_error(
            await client.post(f"{H}/account/delete", json={"password": "no"}, headers=alice.headers), 422
        )
    limited = await client.post(f"{H}/account/delete", json={"password": PASSWORD}, headers=alice.headers)
    await expect_error(limited, 429)
    assert limited.headers["Retry-After"] == "60"
    assert (await load(engine, Account, alice.account_id)).deleted_at is None


# ---------------------------------------------------------------------------- export


async def test_export__own_data_and_nobody_elses_secrets(client: Any, make_user: Any, engine: AsyncEngine) -> None:
    alice = await make_user("alice")
    bob = await make_user("bob")
    carol = await make_user("carol")
    await set_user(engine, alice.user_id, email="alice@example.org")
    await set_user(engine, bob.user_id, email="bob-secret@example.org")
    post = await add_status(engine, alice.account_id, "first draft", edits=("second draft",), visibility="private")
    bobs_post = await add_status(engine, bob.account_id, "bob's private words", visibility="private")
    await favourite(engine, alice.account_id, bobs_post)
    await ok(await client.post(f"{API}/{bob.account_id}/follow", headers=alice.headers))
    await ok(await client.post(f"{API}/{alice.account_id}/follow", headers=carol.headers))
    await ok(await client.post(f"{API}/{carol.account_id}/mute", json={"duration": 60}, headers=alice.headers))
    await ok(await client.post(f"{API}/{bob.account_id}/block", headers=carol.headers))
    group_id = await make_group(engine, alice.account_id, "alices_group")

    response = await client.get(f"{H}/account/export", headers=alice.headers)
    archive = await ok(response)
    assert response.headers["Content-Disposition"].startswith('attachment; filename="hearthside-export-alice-')
    assert archive["profile"]["username"] == "alice" and archive["login"]["email"] == "alice@example.org"
    [status] = archive["statuses"]
    assert status["id"] == str(post) and status["text"] == "first draft" and status["visibility"] == "private"
    assert [e["text"] for e in status["edits"]] == ["first draft", "second draft"]
    assert [f["acct"] for f in archive["following"]] == ["bob@127.0.0.1:8080"]
    assert [f["acct"] for f in archive["followers"]] == ["carol@127.0.0.1:8080"]
    assert [m["acct"] for m in archive["mutes"]] == ["carol@127.0.0.1:8080"]
    assert archive["blocks"] == []  # carol's block of bob is carol's
    assert [(f["status_id"], f["account"]) for f in archive["favourites"]] == [(str(bobs_post), "bob@127.0.0.1:8080")]
    assert archive["groups"] == [
        {
            "acct": "alices_group@127.0.0.1:8080",
            "state": "accepted",
            "role": "owner",
            "created_at": archive["groups"][0]["created_at"],
        }
    ]
    assert group_id
    assert archive["notifications_count"] == 1  # carol's follow
    text = json.dumps(archive)
    for secret in ("argon2", "password", alice.token, "bob-secret", "bob's private words", "token"):
        assert secret not in text, secret


async def test_export__needs_read_accounts(client: Any, make_user: Any) -> None:
    writer = await make_user("writer", scopes="write")
    await expect_error(await client.get(f"{H}/account/export", headers=writer.headers), 403, "scopes")
    await expect_error(await client.get(f"{H}/account/export"), 401)


# ---------------------------------------------------------------------------- change password


async def test_change_password__revokes_other_tokens_and_clears_the_flag(
    client: Any, make_user: Any, engine: AsyncEngine
) -> None:
    alice = await make_user("alice")
    other = await make_second_token(engine, alice.user_id)
    await set_user(engine, alice.user_id, must_change_password=True)
    assert (await client.get(f"{API}/verify_credentials", headers=bearer(other))).status == 200  # cached as valid
    body = await expect_error(
        await client.post(
            f"{H}/account/change_password",
            json={"current_password": "wrong", "new_password": "a brand new password"},
            headers=alice.headers,
        ),
        422,
    )
    assert body["details"]["current_password"][0]["error"] == "ERR_INVALID"
    body = await expect_error(
        await client.post(
            f"{H}/account/change_password",
            json={"current_password": PASSWORD, "new_password": "short"},
            headers=alice.headers,
        ),
        422,
    )
    assert body["details"]["new_password"][0]["error"] == "ERR_TOO_SHORT"
    await ok(
        await client.post(
            f"{H}/account/change_password",
            json={"current_password": PASSWORD, "new_password": "a brand new password"},
            headers=alice.headers,
        )
    )
    assert (await client.get(f"{API}/verify_credentials", headers=alice.headers)).status == 200
    await expect_error(await client.get(f"{API}/verify_credentials", headers=bearer(other)), 401)
    user = await load(engine, User, alice.user_id)
    assert user.must_change_password is False
    # the new password is the one that works now
    await expect_error(
        await client.post(f"{H}/account/delete", json={"password": PASSWORD}, headers=alice.headers), 422
    )
    await ok(await client.post(f"{H}/account/delete", json={"password": "a brand new password"}, headers=alice.headers))


# ---------------------------------------------------------------------------- admin: suspension


async def test_admin_suspend__token_refused_until_unsuspended(client: Any, make_user: Any) -> None:
    mod = await make_user("mod", role="moderator", scopes=STAFF_SCOPES)
    alice = await make_user("alice")
    assert (await client.get(f"{API}/verify_credentials", headers=alice.headers)).status == 200  # cached
    await ok(await client.post(f"{ADMIN}/{alice.account_id}/action", json={"type": "suspend"}, headers=mod.headers))
    await expect_error(await client.get(f"{API}/verify_credentials", headers=alice.headers), 403, "disabled")
    shown = await account_json(client, alice.account_id)
    assert shown["suspended"] is True
    admin_view = await ok(await client.get(f"{ADMIN}/{alice.account_id}", headers=mod.headers))
    assert admin_view["suspended"] is True
    listed = await ok(await client.get(ADMIN, params={"suspended": "true"}, headers=mod.headers))
    assert [a["username"] for a in listed] == ["alice"]
    restored = await ok(await client.post(f"{ADMIN}/{alice.account_id}/unsuspend", headers=mod.headers))
    assert restored["suspended"] is False
    assert (await client.get(f"{API}/verify_credentials", headers=alice.headers)).status == 200
    await expect_error(await client.post(f"{ADMIN}/{alice.account_id}/unsuspend", headers=mod.headers), 403)


async def test_admin_action__who_may_act_on_whom(client: Any, make_user: Any) -> None:
    admin = await make_user("boss", role="admin", scopes=STAFF_SCOPES)
    mod = await make_user("mod", role="moderator", scopes=STAFF_SCOPES)
    mod2 = await make_user("mod2", role="moderator", scopes=STAFF_SCOPES)
    member = await make_user("member", scopes=STAFF_SCOPES)
    suspend = {"type": "suspend"}
    await expect_error(await client.post(f"{ADMIN}/{admin.account_id}/action", json=suspend, headers=mod.headers), 403)
    await expect_error(await client.post(f"{ADMIN}/{mod2.account_id}/action", json=suspend, headers=mod.headers), 403)
    await expect_error(await client.post(f"{ADMIN}/{mod.account_id}/action", json=suspend, headers=mod.headers), 403)
    await expect_error(await client.post(f"{ADMIN}/{mod.account_id}/action", json=suspend, headers=member.headers), 403)
    await ok(await client.post(f"{ADMIN}/{member.account_id}/action", json={"type": "silence"}, headers=admin.headers))
    await expect_error(
        await client.post(f"{ADMIN}/{member.account_id}/action", json={"type": "explode"}, headers=admin.headers), 422
    )
    await ok(await client.post(f"{ADMIN}/{member.account_id}/action", json={"type": "none"}, headers=admin.headers))
    await ok(await client.post(f"{ADMIN}/{mod2.account_id}/action", json=suspend, headers=admin.headers))
    await expect_error(await client.post(f"{ADMIN}/1/action", json=suspend, headers=admin.headers), 404)


async def test_admin_accounts__list_filters_and_email_for_admins_only(
    client: Any, make_user: Any, engine: AsyncEngine
) -> None:
    admin = await make_user("boss", role="admin", scopes=STAFF_SCOPES)
    mod = await make_user("mod", role="moderator", scopes=STAFF_SCOPES)
    alice = await make_user("alice")
    await set_user(engine, alice.user_id, email="alice@example.org")
    everyone = await ok(await client.get(ADMIN, headers=admin.headers))
    assert [a["username"] for a in everyone] == ["alice", "mod", "boss"]
    assert everyone[0]["email"] == "alice@example.org" and everyone[0]["account"]["username"] == "alice"
    assert everyone[0]["role"]["id"] == "member" and everyone[0]["domain"] is None
    as_mod = await ok(await client.get(f"{ADMIN}/{alice.account_id}", headers=mod.headers))
    assert as_mod["email"] is None
    await expect_error(await client.get(ADMIN, params={"email": "alice@example.org"}, headers=mod.headers), 403)
    found = await ok(await client.get(ADMIN, params={"email": "ALICE@example.org"}, headers=admin.headers))
    assert [a["username"] for a in found] == ["alice"]
    staff = await ok(await client.get(ADMIN, params={"staff": "true"}, headers=admin.headers))
    assert sorted(a["username"] for a in staff) == ["boss", "mod"]
    named = await ok(await client.get(ADMIN, params={"username": "AL"}, headers=admin.headers))
    assert [a["username"] for a in named] == ["alice"]
    assert await ok(await client.get(ADMIN, params={"remote": "true"}, headers=admin.headers)) == []
    page = await client.get(ADMIN, params={"limit": "1"}, headers=admin.headers)
    assert len(await ok(page)) == 1 and 'rel="next"' in page.headers["Link"]
    await expect_error(await client.get(ADMIN, headers=alice.headers), 403)


# ---------------------------------------------------------------------------- admin: roles, verification


async def test_admin_role__admins_only_and_takes_effect_at_once(client: Any, make_user: Any) -> None:
    admin = await make_user("boss", role="admin", scopes=STAFF_SCOPES)
    mod = await make_user("mod", role="moderator", scopes=STAFF_SCOPES)
    alice = await make_user("alice", scopes=STAFF_SCOPES)
    url = f"{H}/admin/accounts/{alice.account_id}/role"
    await expect_error(await client.post(url, json={"role": "admin"}, headers=mod.headers), 403, "Only admins")
    await expect_error(await client.post(url, json={"role": "admin"}, headers=alice.headers), 403)
    await expect_error(await client.post(url, json={"role": "owner"}, headers=admin.headers), 422, "role")
    await expect_error(
        await client.post(
            f"{H}/admin/accounts/{admin.account_id}/role", json={"role": "member"}, headers=admin.headers
        ),
        403,
        "own role",
    )
    await expect_error(await client.get(ADMIN, headers=alice.headers), 403)  # cached as a member
    body = await ok(await client.post(url, json={"role": "moderator"}, headers=admin.headers))
    assert body["role"]["id"] == "moderator"
    assert (await client.get(ADMIN, headers=alice.headers)).status == 200
    me = await ok(await client.get(f"{API}/verify_credentials", headers=alice.headers))
    assert me["role"]["id"] == "moderator"


async def test_admin_verify__badge_on_and_off(client: Any, make_user: Any, engine: AsyncEngine) -> None:
    mod = await make_user("mod", role="moderator", scopes=STAFF_SCOPES)
    therapist = await make_user("therapist")
    member = await make_user("member", scopes=STAFF_SCOPES)
    url = f"{H}/admin/accounts/{therapist.account_id}/verify"
    await expect_error(await client.post(url, headers=member.headers), 403)
    body = await ok(await client.post(url, headers=mod.headers))
    assert body["account"]["hearthside"]["verified_professional"] is True
    shown = await account_json(client, therapist.account_id)
    assert shown["roles"][0]["id"] == "verified_professional"
    await ok(await client.post(url, json={"verified": False}, headers=mod.headers))
    assert (await account_json(client, therapist.account_id))["roles"] == []
    group_id = await make_group(engine, therapist.account_id, "a_group")
    await expect_error(await client.post(f"{H}/admin/accounts/{group_id}/verify", headers=mod.headers), 422)


# ---------------------------------------------------------------------------- property


_property_state: dict[str, Any] = {}


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    path=st.sampled_from(
        [
            f"{H}/account/change_password",
            f"{H}/account/delete",
            f"{ADMIN}/{{id}}/action",
            f"{H}/admin/accounts/{{id}}/role",
            f"{H}/admin/accounts/{{id}}/verify",
            f"{H}/admin/invites",
        ]
    ),
    payload=st.dictionaries(
        st.sampled_from(
            [
                "current_password",
                "new_password",
                "password",
                "type",
                "role",
                "verified",
                "max_uses",
                "expires_in",
                "text",
            ]
        ),
        st.one_of(st.none(), st.booleans(), st.integers(-(2**66), 2**66), st.text(max_size=30)),
        max_size=4,
    ),
)
async def test_lifecycle_and_admin__random_input_never_a_server_error(
    client: Any, make_user: Any, path: str, payload: dict[str, Any]
) -> None:
    if _property_state.get("client") is not client:
        admin = await make_user("prop_admin", role="admin", scopes=STAFF_SCOPES)
        target = await make_user("prop_target")
        _property_state.update(client=client, admin=admin, target=target)
    admin, target = _property_state["admin"], _property_state["target"]
    if path.endswith("/delete") and payload.get("password") == PASSWORD:
        payload["password"] = "not it"
    response = await client.post(path.replace("{id}", str(target.account_id)), json=payload, headers=admin.headers)
    assert response.status in (200, 400, 403, 422, 429), await response.text()
    body = await response.json()
    if response.status >= 400:
        assert "error" in body


# ---------------------------------------------------------------------------- helpers


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def make_second_token(engine: AsyncEngine, user_id: int) -> str:
    from crypto.tokens import digest, new_token

    token = new_token()
    async with make_sessionmaker(engine)() as session:
        session.add(
            OAuthToken(id=new_id(), token_hash=digest(token), user_id=user_id, scopes="read write", created_at=now())
        )
        await session.commit()
    return token


async def set_status(engine: AsyncEngine, status_id: int, **values: Any) -> None:
    async with make_sessionmaker(engine)() as session:
        status = await session.get(Status, status_id)
        assert status is not None
        for key, value in values.items():
            setattr(status, key, value)
        await session.commit()


async def test_admin_invites__revoked_code_no_longer_signs_up(client: Any, make_user: Any, config: Any) -> None:
    admin = await make_user("inviter", role="admin", scopes="read write admin:read:accounts admin:write:accounts")
    member = await make_user("plain", scopes="read write admin:write:accounts")
    created = await (await client.post("/api/v1/hearthside/admin/invites", json={}, headers=admin.headers)).json()
    assert (
        await client.delete(f"/api/v1/hearthside/admin/invites/{created['id']}", headers=member.headers)
    ).status == 403
    response = await client.delete(f"/api/v1/hearthside/admin/invites/{created['id']}", headers=admin.headers)
    assert response.status == 200
    assert (await response.json())["revoked_at"] is not None
    assert (await client.delete("/api/v1/hearthside/admin/invites/123", headers=admin.headers)).status == 404
    signup = await client.post(
        "/api/v1/accounts",
        json={"username": "late", "password": "long enough pw", "agreement": True, "invite_code": created["code"]},
    )
    assert signup.status in (403, 422)
