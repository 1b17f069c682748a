"""Sign-up (``POST /api/v1/accounts``) in every registration mode, Mastodon's validation
answers, approval by staff and instance invites, on SQLite and PostgreSQL. Mastodon.py's own
``create_account`` is one of the clients."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import make_config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mastodon import Mastodon
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine
from test_accounts import API, STAFF_SCOPES, expect_error, load, ok

from server.app import create_app
from server.db import make_sessionmaker
from server.ids import new_id
from server.models import Account, Invite, Notification, OAuthToken, User
from server.web import now

PASSWORD = "a long enough password"
INVITES = "/api/v1/hearthside/admin/invites"


@pytest.fixture
def signup(aiohttp_client: Any, engine: AsyncEngine, tmp_path: Path, db_url: str) -> Any:
    """A client on an instance with the given registrations mode (same database as make_user)."""

    async def make(mode: str) -> Any:
        config = make_config(tmp_path, db_url, instance={"registrations": mode})
        return await aiohttp_client(create_app(config, engine=engine))

    return make


def form(username: str, **extra: Any) -> dict[str, Any]:
    return {"username": username, "password": PASSWORD, "agreement": True, "locale": "en", **extra}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def count(engine: AsyncEngine, model: Any, *where: Any) -> int:
    async with make_sessionmaker(engine)() as session:
        return int((await session.execute(select(func.count()).select_from(model).where(*where))).scalar_one())


async def add_invite(engine: AsyncEngine, code: str, **values: Any) -> int:
    invite_id = new_id()
    async with make_sessionmaker(engine)() as session:
        session.add(Invite(id=invite_id, code=code, uses=values.pop("uses", 0), created_at=now(), **values))
        await session.commit()
    return invite_id


async def user_of(engine: AsyncEngine, username: str) -> User:
    async with make_sessionmaker(engine)() as session:
        row = (
            await session.execute(
                select(User).join(Account, Account.id == User.account_id).where(Account.username_lower == username)
            )
        ).scalar_one()
        return row


# ---------------------------------------------------------------------------- open


async def test_register__open_without_token_returns_a_working_token(signup: Any, engine: AsyncEngine) -> None:
    client = await signup("open")
    body = await ok(await client.post(API, json=form("newcomer")))
    assert set(body) == {"access_token", "token_type", "scope", "created_at"}
    assert body["token_type"] == "Bearer" and body["scope"] == "read write follow"
    assert isinstance(body["created_at"], int)
    me = await ok(await client.get(f"{API}/verify_credentials", headers=bearer(body["access_token"])))
    assert me["username"] == "newcomer" and me["role"]["id"] == "member"
    user = await user_of(engine, "newcomer")
    assert user.email is None and user.approved is True  # pseudonymous: no email needed


async def test_register__form_encoded_with_email(signup: Any, engine: AsyncEngine) -> None:
    client = await signup("open")
    data = {"username": "formy", "password": PASSWORD, "agreement": "1", "email": " Formy@Example.org "}
    await ok(await client.post(API, data=data))
    assert (await user_of(engine, "formy")).email == "formy@example.org"


async def test_register__app_token_gives_the_apps_scopes(signup: Any) -> None:
    client = await signup("open")
    app = await ok(
        await client.post(
            "/api/v1/apps",
            data={"client_name": "signup-app", "redirect_uris": "urn:ietf:wg:oauth:2.0:oob", "scopes": "read write"},
        )
    )
    grant = await ok(
        await client.post(
            "/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": app["client_id"],
                "client_secret": app["client_secret"],
                "scope": "read write",
            },
        )
    )
    body = await ok(await client.post(API, json=form("via_app"), headers=bearer(grant["access_token"])))
    assert body["scope"] == "read write"
    await expect_error(await client.post(API, json=form("bad_token"), headers=bearer("nonsense")), 401)


async def test_register__mastodon_py_create_account(signup: Any) -> None:
    client = await signup("open")
    base = str(client.make_url("")).rstrip("/")

    def run() -> tuple[str, Any, Any]:
        client_id, client_secret = Mastodon.create_app(
            "signup-e2e",
            api_base_url=base,
            scopes=["read", "write", "follow"],
            redirect_uris="urn:ietf:wg:oauth:2.0:oob",
        )
        api = Mastodon(client_id=client_id, client_secret=client_secret, api_base_url=base, version_check_mode="none")
        api.create_account("pyuser", PASSWORD, None, agreement=True, scopes=["read", "write", "follow"])
        me = api.account_verify_credentials()
        again = Mastodon(client_id=client_id, client_secret=client_secret, api_base_url=base, version_check_mode="none")
        token, error = again.create_account(
            "PYUSER", PASSWORD, None, agreement=True, scopes=["read", "write", "follow"], return_detailed_error=True
        )
        return me.username, token, error

    username, token, error = await asyncio.to_thread(run)
    assert username == "pyuser"
    assert token is None
    assert error.details.username[0].error == "ERR_TAKEN"


# ---------------------------------------------------------------------------- validation


async def test_register__422_details_shape_for_several_problems(
    signup: Any, make_user: Any, engine: AsyncEngine
) -> None:
    client = await signup("open")
    await make_user("Taken_Name")
    before = await count(engine, Account)
    response = await client.post(
        API, json={"username": "taken_NAME", "password": "short", "email": "not-an-email", "locale": "xx_bad!"}
    )
    body = await expect_error(response, 422, "Validation failed: ")
    assert set(body) == {"error", "details"}
    details = body["details"]
    assert details["username"] == [{"error": "ERR_TAKEN", "description": "has already been taken"}]
    assert details["password"][0]["error"] == "ERR_TOO_SHORT"
    assert details["agreement"][0]["error"] == "ERR_ACCEPTED"
    assert details["email"][0]["error"] == "ERR_INVALID"
    assert details["locale"][0]["error"] == "ERR_INCLUSION"
    assert "Username has already been taken" in body["error"]
    assert "Agreement must be accepted" in body["error"]
    assert await count(engine, Account) == before  # nothing written


@pytest.mark.parametrize(
    ("fields", "field", "code"),
    [
        ({"username": ""}, "username", "ERR_BLANK"),
        ({"username": "has space"}, "username", "ERR_INVALID"),
        ({"username": "ünïcode"}, "username", "ERR_INVALID"),
        ({"username": "x" * 31}, "username", "ERR_TOO_LONG"),
        ({"username": "Instance"}, "username", "ERR_RESERVED"),
        ({"username": "well_known"}, "username", "ERR_RESERVED"),
        ({"password": ""}, "password", "ERR_BLANK"),
        ({"password": "x" * 2000}, "password", "ERR_TOO_LONG"),
        ({"agreement": False}, "agreement", "ERR_ACCEPTED"),
        ({"reason": "r" * 1001}, "reason", "ERR_TOO_LONG"),
    ],
)
async def test_register__single_field_problems(signup: Any, fields: dict[str, Any], field: str, code: str) -> None:
    client = await signup("open")
    body = await expect_error(await client.post(API, json={**form("valid_name"), **fields}), 422)
    assert list(body["details"]) == [field]
    assert body["details"][field][0]["error"] == code


async def test_register__username_taken_case_insensitively_and_groups_share_the_namespace(
    signup: Any, make_user: Any, engine: AsyncEngine
) -> None:
    from test_accounts import make_group

    client = await signup("open")
    owner = await make_user("owner")
    await make_group(engine, owner.account_id, "Support_Group")
    for name in ("OWNER", "support_group"):
        body = await expect_error(await client.post(API, json=form(name)), 422)
        assert body["details"]["username"][0]["error"] == "ERR_TAKEN"


async def test_register__email_taken(signup: Any) -> None:
    client = await signup("open")
    await ok(await client.post(API, json=form("first", email="same@example.org")))
    body = await expect_error(await client.post(API, json=form("second", email="SAME@example.org")), 422)
    assert body["details"]["email"][0]["error"] == "ERR_TAKEN"


# ---------------------------------------------------------------------------- modes


async def test_register__closed(signup: Any, engine: AsyncEngine) -> None:
    client = await signup("closed")
    await expect_error(await client.post(API, json=form("nobody")), 403, "Registrations are closed")
    assert await count(engine, Account) == 0


async def test_register__approval_mode_account_waits_for_staff(
    signup: Any, make_user: Any, engine: AsyncEngine
) -> None:
    client = await signup("approval")
    admin = await make_user("boss", role="admin", scopes=STAFF_SCOPES)
    body = await ok(await client.post(API, json=form("waiting", reason="I run a local peer group")))
    token = body["access_token"]
    await expect_error(await client.get(f"{API}/verify_credentials", headers=bearer(token)), 403, "pending")
    # the password login is refused too
    app = await ok(
        await client.post("/api/v1/apps", data={"client_name": "x", "redirect_uris": "urn:ietf:wg:oauth:2.0:oob"})
    )
    login = {
        "grant_type": "password",
        "username": "waiting",
        "password": PASSWORD,
        "client_id": app["client_id"],
        "client_secret": app["client_secret"],
    }
    refused = await client.post("/oauth/token", data=login)
    assert refused.status == 400 and "pending" in (await refused.json())["error_description"]
    # staff are told, and see the reason
    async with make_sessionmaker(engine)() as session:
        kinds = (
            await session.execute(select(Notification.type).where(Notification.account_id == admin.account_id))
        ).scalars()
        assert list(kinds) == ["admin.sign_up"]
    pending = await ok(await client.get("/api/v1/admin/accounts", params={"pending": "true"}, headers=admin.headers))
    assert [(a["username"], a["approved"], a["invite_request"]) for a in pending] == [
        ("waiting", False, "I run a local peer group")
    ]
    account_id = pending[0]["id"]
    approved = await ok(await client.post(f"/api/v1/admin/accounts/{account_id}/approve", headers=admin.headers))
    assert approved["approved"] is True
    assert (await client.get(f"{API}/verify_credentials", headers=bearer(token))).status == 200
    assert (await client.post("/oauth/token", data=login)).status == 200
    # approving twice is refused
    await expect_error(await client.post(f"/api/v1/admin/accounts/{account_id}/approve", headers=admin.headers), 403)


async def test_register__rejected_sign_up_is_deleted_and_name_freed(
    signup: Any, make_user: Any, engine: AsyncEngine
) -> None:
    client = await signup("approval")
    admin = await make_user("boss", role="admin", scopes=STAFF_SCOPES)
    body = await ok(await client.post(API, json=form("unwanted")))
    user = await user_of(engine, "unwanted")
    rejected = await ok(await client.post(f"/api/v1/admin/accounts/{user.account_id}/reject", headers=admin.headers))
    assert rejected["username"] == "unwanted"
    assert await load(engine, Account, user.account_id) is None
    assert await count(engine, OAuthToken, OAuthToken.user_id == user.id) == 0
    await expect_error(await client.get(f"{API}/verify_credentials", headers=bearer(body["access_token"])), 401)
    await ok(await client.post(API, json=form("unwanted")))  # Mastodon frees a rejected name


async def test_admin_approve__members_and_wrong_scopes_refused(
    signup: Any, make_user: Any, engine: AsyncEngine
) -> None:
    client = await signup("approval")
    member = await make_user("member", scopes=STAFF_SCOPES)
    plain_admin = await make_user("boss", role="admin")  # no admin scopes on the token
    await ok(await client.post(API, json=form("waiting")))
    user = await user_of(engine, "waiting")
    url = f"/api/v1/admin/accounts/{user.account_id}/approve"
    await expect_error(await client.post(url, headers=member.headers), 403, "not allowed")
    await expect_error(await client.post(url, headers=plain_admin.headers), 403, "scopes")
    await expect_error(await client.post(url), 401)
    assert (await load(engine, User, user.id)).approved is False


# ---------------------------------------------------------------------------- invites


async def test_register__invite_mode_refuses_missing_wrong_expired_revoked_and_used_up_codes(
    signup: Any, engine: AsyncEngine
) -> None:
    client = await signup("invite")
    await add_invite(engine, "expiredcode", expires_at=now() - timedelta(minutes=1))
    await add_invite(engine, "revokedcode", revoked_at=now())
    await add_invite(engine, "usedupcode", max_uses=2, uses=2)
    await expect_error(await client.post(API, json=form("a_name")), 403, "invite code")
    for code in ("wrongcode", "expiredcode", "revokedcode", "usedupcode", ""):
        await expect_error(await client.post(API, json=form("a_name", invite_code=code)), 403, "invite")
    assert await count(engine, Account) == 0
    async with make_sessionmaker(engine)() as session:
        uses = (await session.execute(select(Invite.code, Invite.uses).order_by(Invite.code))).all()
    assert [tuple(u) for u in uses] == [("expiredcode", 0), ("revokedcode", 0), ("usedupcode", 2)]


async def test_register__invite_from_admin_api_counts_its_uses(
    signup: Any, make_user: Any, engine: AsyncEngine
) -> None:
    client = await signup("invite")
    admin = await make_user("boss", role="admin", scopes=STAFF_SCOPES)
    invite = await ok(await client.post(INVITES, json={"max_uses": 1, "expires_in": 3600}, headers=admin.headers))
    assert invite["url"].endswith("/invite/" + invite["code"]) and invite["uses"] == 0
    assert invite["expires_at"].endswith("Z")
    # a validation failure does not spend the invite
    await expect_error(await client.post(API, json=form("boss", invite_code=invite["code"])), 422)
    await ok(await client.post(API, json=form("invited", invite_code=invite["code"])))
    await expect_error(await client.post(API, json=form("second", invite_code=invite["code"])), 403)
    listed = await ok(await client.get(INVITES, headers=admin.headers))
    assert [(i["code"], i["uses"]) for i in listed] == [(invite["code"], 1)]
    user = await user_of(engine, "invited")
    assert user.invite_id is not None and user.approved is True
    shown = await ok(await client.get(f"/api/v1/admin/accounts/{user.account_id}", headers=admin.headers))
    assert shown["invited_by_account_id"] == str(admin.account_id)


async def test_register__approval_mode_invite_skips_the_queue_and_open_mode_rejects_bad_codes(
    signup: Any, engine: AsyncEngine
) -> None:
    await add_invite(engine, "goodcode")
    approval = await signup("approval")
    body = await ok(await approval.post(API, json=form("fast_track", invite_code="goodcode")))
    assert (await approval.get(f"{API}/verify_credentials", headers=bearer(body["access_token"]))).status == 200
    open_mode = await signup("open")
    await expect_error(await open_mode.post(API, json=form("typo", invite_code="nosuchcode")), 403, "invite")


async def test_admin_invites__staff_only(signup: Any, make_user: Any) -> None:
    client = await signup("invite")
    member = await make_user("member", scopes=STAFF_SCOPES)
    moderator = await make_user("mod", role="moderator", scopes=STAFF_SCOPES)
    await expect_error(await client.post(INVITES, headers=member.headers), 403)
    await expect_error(await client.get(INVITES, headers=member.headers), 403)
    await expect_error(await client.post(INVITES, json={"max_uses": 0}, headers=moderator.headers), 422, "max_uses")
    invite = await ok(await client.post(INVITES, headers=moderator.headers))
    assert invite["max_uses"] is None and invite["expires_at"] is None


# ---------------------------------------------------------------------------- property


_property_state: dict[str, Any] = {}
sign_up_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.text(max_size=50),
    st.text(alphabet="abcXYZ_019", min_size=1, max_size=35),
    st.lists(st.text(max_size=5), max_size=3),
)


@settings(max_examples=35, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    payload=st.dictionaries(
        st.sampled_from(["username", "password", "email", "agreement", "locale", "reason", "invite_code"]),
        sign_up_values,
        max_size=7,
    ),
    as_form=st.booleans(),
)
async def test_register__random_input_never_a_server_error(signup: Any, payload: dict[str, Any], as_form: bool) -> None:
    if "client" not in _property_state or _property_state["signup"] is not signup:
        _property_state.update(signup=signup, client=await signup("open"))
    client = _property_state["client"]
    if as_form:
        data = {k: str(v) for k, v in payload.items() if v is not None and not isinstance(v, list)}
        response = await client.post(API, data=data)
    else:
        response = await client.post(API, json=payload)
    assert response.status in (200, 400, 403, 422), await response.text()
    body = await response.json()
    if response.status == 200:
        assert body["token_type"] == "Bearer"
    else:
        assert "error" in body and set(body) <= {"error", "details"}
