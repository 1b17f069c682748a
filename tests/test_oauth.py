"""OAuth 2: app registration, the authorization form with PKCE, the token and revocation
endpoints, login throttling, and a real client (Mastodon.py) going through all of it."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from aiohttp import ClientSession, CookieJar, web
from conftest import _free_port, make_config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from crypto.tokens import digest
from server.app import create_app
from server.auth import require_user
from server.config import Config
from server.db import make_sessionmaker
from server.models import Account, OAuthApp, OAuthCode, OAuthToken, User
from server.web import json_response, now

CALLBACK = "https://client.example/callback"
PASSWORD = "correct horse battery"


# ---------------------------------------------------------------------------- helpers


def _whoami_app(config: Config, engine: AsyncEngine) -> web.Application:
    """The real app plus one user-only endpoint, to see what a token may do."""
    app = create_app(config, engine=engine)

    async def whoami(request: web.Request) -> web.Response:
        viewer = await require_user(request, "read:accounts")
        return json_response({"account_id": str(viewer.account_id), "scopes": sorted(viewer.scopes)})

    app.router.add_get("/test/whoami", whoami)
    return app


@pytest.fixture
async def client(aiohttp_client: Any, config: Config, engine: AsyncEngine) -> Any:
    return await aiohttp_client(_whoami_app(config, engine))


class _FormReader(HTMLParser):
    """Reads the authorization page the way a browser would: form action and fields."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.fields: dict[str, str] = {}
        self.buttons: dict[str, list[str]] = {}
        self.labels: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.action = a.get("action")
        elif tag == "input" and a.get("name"):
            self.fields[a["name"]] = a.get("value", "")
        elif tag == "button" and a.get("name"):
            self.buttons.setdefault(a["name"], []).append(a.get("value", ""))
        elif tag == "label" and a.get("for"):
            self.labels.add(a["for"])


def read_form(html: str) -> _FormReader:
    reader = _FormReader()
    reader.feed(html)
    return reader


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


async def register_app(
    client: Any, *, redirect_uris: Any = CALLBACK, scopes: str = "read write follow", name: str = "Test app"
) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/apps", data={"client_name": name, "redirect_uris": redirect_uris, "scopes": scopes}
    )
    assert response.status == 200, await response.text()
    return dict(await response.json())


async def open_form(client: Any, app: dict[str, Any], **extra: str) -> Any:
    query = {
        "response_type": "code",
        "client_id": app["client_id"],
        "redirect_uri": extra.pop("redirect_uri", CALLBACK),
        "scope": extra.pop("scope", "read write"),
        "state": "st-123",
        **extra,
    }
    return await client.get("/oauth/authorize?" + urlencode(query), allow_redirects=False)


async def submit_form(client: Any, html: str, *, username: str, password: str, decision: str = "authorize") -> Any:
    form = read_form(html)
    assert form.action == "/oauth/authorize"
    fields = dict(form.fields, username=username, password=password, decision=decision)
    return await client.post(form.action, data=fields, allow_redirects=False)


async def get_code(client: Any, app: dict[str, Any], user: Any, **extra: str) -> str:
    page = await open_form(client, app, **extra)
    assert page.status == 200, await page.text()
    answer = await submit_form(client, await page.text(), username=user.username, password=PASSWORD)
    assert answer.status == 302, await answer.text()
    location = urlsplit(answer.headers["Location"])
    query = parse_qs(location.query)
    assert query["state"] == ["st-123"]
    return query["code"][0]


async def exchange(client: Any, app: dict[str, Any], code: str, **extra: str) -> Any:
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "client_id": app["client_id"],
        "client_secret": app["client_secret"],
        "redirect_uri": CALLBACK,
        **extra,
    }
    return await client.post("/oauth/token", data=data)


async def password_grant(client: Any, app: dict[str, Any], username: str, password: str, **extra: str) -> Any:
    data = {
        "grant_type": "password",
        "username": username,
        "password": password,
        "client_id": app["client_id"],
        "client_secret": app["client_secret"],
        **extra,
    }
    return await client.post("/oauth/token", data=data)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def set_account(engine: AsyncEngine, account_id: int, **values: Any) -> None:
    async with make_sessionmaker(engine)() as session:
        await session.execute(update(Account).where(Account.id == account_id).values(**values))
        await session.commit()


async def set_user(engine: AsyncEngine, user_id: int, **values: Any) -> None:
    async with make_sessionmaker(engine)() as session:
        await session.execute(update(User).where(User.id == user_id).values(**values))
        await session.commit()


# ---------------------------------------------------------------------------- apps


async def test_apps__registers_credential_application_with_hashed_secret(client: Any, engine: AsyncEngine) -> None:
    response = await client.post(
        "/api/v1/apps",
        data={
            "client_name": "Quiet Reader",
            "redirect_uris": f"{CALLBACK}\nurn:ietf:wg:oauth:2.0:oob",
            "scopes": "read write:statuses",
            "website": "https://reader.example",
        },
    )
    assert response.status == 200
    body = await response.json()
    assert body["name"] == "Quiet Reader"
    assert body["website"] == "https://reader.example"
    assert body["scopes"] == ["read", "write:statuses"]
    assert body["redirect_uris"] == [CALLBACK, "urn:ietf:wg:oauth:2.0:oob"]
    assert body["redirect_uri"] == f"{CALLBACK}\nurn:ietf:wg:oauth:2.0:oob"
    assert body["client_secret_expires_at"] == 0
    assert body["vapid_key"] == ""
    assert body["id"].isdigit()
    assert len(body["client_id"]) >= 32 and len(body["client_secret"]) >= 32
    async with make_sessionmaker(engine)() as session:
        row = (await session.execute(select(OAuthApp))).scalar_one()
    assert row.client_secret_hash == digest(body["client_secret"])
    assert body["client_secret"] not in (row.client_secret_hash, row.client_id)


async def test_apps__redirect_uris_as_json_array_and_default_scope(client: Any) -> None:
    response = await client.post(
        "/api/v1/apps", json={"client_name": "A", "redirect_uris": [CALLBACK, "myapp://oauth-callback"]}
    )
    assert response.status == 200
    body = await response.json()
    assert body["redirect_uris"] == [CALLBACK, "myapp://oauth-callback"]
    assert body["scopes"] == ["read"]
    assert body["website"] is None


@pytest.mark.parametrize(
    "uri",
    [
        "/relative/path",
        "javascript:alert(1)",
        "data:text/html,hi",
        "https://client.example/cb#fragment",
        "https:///no-host",
        "not a uri",
        "https://client.example:99999/",
    ],
)
async def test_apps__rejects_bad_redirect_uri(client: Any, uri: str) -> None:
    response = await client.post("/api/v1/apps", data={"client_name": "A", "redirect_uris": uri})
    assert response.status == 422
    assert "redirect_uris" in (await response.json())["error"]


async def test_apps__rejects_unknown_scope_and_missing_fields(client: Any) -> None:
    response = await client.post(
        "/api/v1/apps", data={"client_name": "A", "redirect_uris": CALLBACK, "scopes": "read admin:everything"}
    )
    assert response.status == 422
    assert "scopes" in (await response.json())["error"]
    response = await client.post("/api/v1/apps", data={"redirect_uris": CALLBACK})
    assert response.status == 422
    assert "client_name" in (await response.json())["error"]
    response = await client.post("/api/v1/apps", data={"client_name": "A"})
    assert response.status == 422
    assert "redirect_uris" in (await response.json())["error"]
    response = await client.post(
        "/api/v1/apps", data={"client_name": "A", "redirect_uris": CALLBACK, "website": "javascript:x"}
    )
    assert response.status == 422
    assert "website" in (await response.json())["error"]


async def test_apps_verify_credentials__app_token_user_token_and_none(client: Any, make_user: Any) -> None:
    app = await register_app(client)
    response = await client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "client_id": app["client_id"], "client_secret": app["client_secret"]},
    )
    app_token = (await response.json())["access_token"]
    await make_user("alice")
    user_token = (await (await password_grant(client, app, "alice", PASSWORD)).json())["access_token"]
    for token in (app_token, user_token):
        response = await client.get("/api/v1/apps/verify_credentials", headers=bearer(token))
        assert response.status == 200
        body = await response.json()
        assert body["name"] == "Test app"
        assert body["id"] == app["id"]
        assert "client_secret" not in body and "client_id" not in body
    response = await client.get("/api/v1/apps/verify_credentials")
    assert response.status == 401


# ---------------------------------------------------------------------------- RFC 8414


async def test_metadata__rfc8414_document(client: Any) -> None:
    response = await client.get("/.well-known/oauth-authorization-server")
    assert response.status == 200
    body = await response.json()
    base = "http://127.0.0.1:8080"
    assert body["issuer"] == base
    assert body["authorization_endpoint"] == f"{base}/oauth/authorize"
    assert body["token_endpoint"] == f"{base}/oauth/token"
    assert body["revocation_endpoint"] == f"{base}/oauth/revoke"
    assert body["app_registration_endpoint"] == f"{base}/api/v1/apps"
    assert body["response_types_supported"] == ["code"]
    assert body["grant_types_supported"] == ["authorization_code", "password", "client_credentials"]
    assert body["code_challenge_methods_supported"] == ["S256"]
    assert "client_secret_post" in body["token_endpoint_auth_methods_supported"]
    assert "read:statuses" in body["scopes_supported"]
    assert body["service_documentation"].startswith("https://")


# ---------------------------------------------------------------------------- authorization code


async def test_authorization_code__full_flow_with_pkce(client: Any, make_user: Any, engine: AsyncEngine) -> None:
    alice = await make_user("alice")
    app = await register_app(client)
    verifier, challenge = pkce_pair()
    page = await open_form(client, app, code_challenge=challenge, code_challenge_method="S256")
    assert page.status == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert page.headers["X-Frame-Options"] == "DENY"
    html = await page.text()
    form = read_form(html)
    assert {"username", "password"} <= form.labels  # every field has a label
    assert form.buttons["decision"] == ["authorize", "deny"]
    assert form.fields["code_challenge"] == challenge
    assert "Test app" in html

    answer = await submit_form(client, html, username="alice", password=PASSWORD)
    assert answer.status == 302
    location = urlsplit(answer.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == CALLBACK
    query = parse_qs(location.query)
    assert query["state"] == ["st-123"]
    code = query["code"][0]
    async with make_sessionmaker(engine)() as session:
        stored = (await session.execute(select(OAuthCode))).scalar_one()
    assert stored.code_hash == digest(code)  # only the digest is kept

    response = await exchange(client, app, code, code_verifier=verifier)
    assert response.status == 200, await response.text()
    body = await response.json()
    assert body["token_type"] == "Bearer"
    assert body["scope"] == "read write"
    assert isinstance(body["created_at"], int)
    whoami = await client.get("/test/whoami", headers=bearer(body["access_token"]))
    assert whoami.status == 200
    assert (await whoami.json())["account_id"] == str(alice.account_id)
    async with make_sessionmaker(engine)() as session:
        token_row = (
            await session.execute(select(OAuthToken).where(OAuthToken.token_hash == digest(body["access_token"])))
        ).scalar_one()
    assert token_row.expires_at is not None
    assert timedelta(days=364) < token_row.expires_at - token_row.created_at <= timedelta(days=365)


async def test_authorization_code__wrong_or_missing_pkce_verifier_rejected(client: Any, make_user: Any) -> None:
    alice = await make_user("alice")
    app = await register_app(client)
    _verifier, challenge = pkce_pair()
    code = await get_code(client, app, alice, code_challenge=challenge, code_challenge_method="S256")
    other_verifier, _ = pkce_pair()
    for extra in ({"code_verifier": other_verifier}, {}, {"code_verifier": "short"}):
        response = await exchange(client, app, code, **extra)
        assert response.status == 400
        assert (await response.json())["error"] == "invalid_grant"


async def test_authorization_code__verifier_without_challenge_rejected(client: Any, make_user: Any) -> None:
    alice = await make_user("alice")
    app = await register_app(client)
    code = await get_code(client, app, alice)
    verifier, _ = pkce_pair()
    response = await exchange(client, app, code, code_verifier=verifier)
    assert response.status == 400
    assert (await response.json())["error"] == "invalid_grant"


async def test_authorization_code__plain_pkce_method_refused(client: Any, make_user: Any) -> None:
    app = await register_app(client)
    verifier, _ = pkce_pair()
    page = await open_form(client, app, code_challenge=verifier, code_challenge_method="plain")
    assert page.status == 302
    query = parse_qs(urlsplit(page.headers["Location"]).query)
    assert query["error"] == ["invalid_request"]
    assert query["state"] == ["st-123"]


async def test_authorization_code__reuse_rejected_and_revokes_issued_token(client: Any, make_user: Any) -> None:
    alice = await make_user("alice")
    app = await register_app(client)
    code = await get_code(client, app, alice)
    first = await exchange(client, app, code)
    assert first.status == 200
    token = (await first.json())["access_token"]
    assert (await client.get("/test/whoami", headers=bearer(token))).status == 200
    second = await exchange(client, app, code)
    assert second.status == 400
    assert (await second.json())["error"] == "invalid_grant"
    assert (await client.get("/test/whoami", headers=bearer(token))).status == 401


async def test_authorization_code__redirect_uri_mismatch_rejected(client: Any, make_user: Any) -> None:
    alice = await make_user("alice")
    app = await register_app(client, redirect_uris=f"{CALLBACK} https://client.example/other")
    code = await get_code(client, app, alice)
    response = await exchange(client, app, code, redirect_uri="https://client.example/other")
    assert response.status == 400
    assert (await response.json())["error"] == "invalid_grant"
    assert (await exchange(client, app, code)).status == 200  # the failed try did not burn it


async def test_authorization_code__client_authentication(client: Any, make_user: Any) -> None:
    alice = await make_user("alice")
    app = await register_app(client)
    other = await register_app(client, name="Other app")
    code = await get_code(client, app, alice)
    wrong = await exchange(client, app, code, client_secret="not-the-secret")
    assert wrong.status == 401
    assert (await wrong.json())["error"] == "invalid_client"
    stolen = await exchange(client, other, code)  # another client's valid credentials
    assert stolen.status == 400
    assert (await stolen.json())["error"] == "invalid_grant"
    basic = base64.b64encode(f"{app['client_id']}:{app['client_secret']}".encode()).decode()
    response = await client.post(
        "/oauth/token",
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert response.status == 200, await response.text()


async def test_authorization_code__expired_code_rejected(client: Any, make_user: Any, engine: AsyncEngine) -> None:
    alice = await make_user("alice")
    app = await register_app(client)
    code = await get_code(client, app, alice)
    async with make_sessionmaker(engine)() as session:
        await session.execute(update(OAuthCode).values(expires_at=now() - timedelta(seconds=1)))
        await session.commit()
    response = await exchange(client, app, code)
    assert response.status == 400
    assert (await response.json())["error"] == "invalid_grant"


async def test_authorization_code__user_suspended_after_consent_gets_no_token(
    client: Any, make_user: Any, engine: AsyncEngine
) -> None:
    alice = await make_user("alice")
    app = await register_app(client)
    code = await get_code(client, app, alice)
    await set_account(engine, alice.account_id, suspended_at=now())
    response = await exchange(client, app, code)
    assert response.status == 400
    assert (await response.json())["error"] == "invalid_grant"


async def test_authorization_code__user_disabled_after_consent_gets_no_token(
    client: Any, make_user: Any, engine: AsyncEngine
) -> None:
    alice = await make_user("alice")
    app = await register_app(client)
    code = await get_code(client, app, alice)
    await set_user(engine, alice.user_id, disabled=True)
    response = await exchange(client, app, code)
    assert response.status == 400
    assert (await response.json())["error"] == "invalid_grant"


# ---------------------------------------------------------------------------- the authorization form


async def test_authorize__deny_redirects_with_access_denied(client: Any, engine: AsyncEngine) -> None:
    app = await register_app(client)
    page = await open_form(client, app)
    answer = await submit_form(client, await page.text(), username="", password="", decision="deny")
    assert answer.status == 302
    query = parse_qs(urlsplit(answer.headers["Location"]).query)
    assert query == {
        "error": ["access_denied"],
        "error_description": ["The user denied the request."],
        "state": ["st-123"],
    }
    async with make_sessionmaker(engine)() as session:
        assert (await session.execute(select(OAuthCode))).first() is None


async def test_authorize__post_without_csrf_cookie_refused(client: Any, make_user: Any) -> None:
    await make_user("alice")
    app = await register_app(client)
    page = await open_form(client, app)
    fields = dict(read_form(await page.text()).fields, username="alice", password=PASSWORD)
    client.session.cookie_jar.clear()  # a cross-site form carries no cookie of ours
    answer = await client.post("/oauth/authorize", data=fields, allow_redirects=False)
    assert answer.status == 403
    assert "Location" not in answer.headers
    forged = dict(fields, csrf_token="0" * 64)
    await open_form(client, app)  # fresh cookie, but the field is not its signature
    answer = await client.post("/oauth/authorize", data=forged, allow_redirects=False)
    assert answer.status == 403


async def test_authorize__unregistered_redirect_uri_is_a_page_not_a_redirect(client: Any) -> None:
    app = await register_app(client)
    page = await open_form(client, app, redirect_uri="https://attacker.example/steal")
    assert page.status == 400
    assert "Location" not in page.headers
    assert "redirect_uri" in await page.text()
    unknown = await client.get("/oauth/authorize?" + urlencode({"client_id": "nope", "response_type": "code"}))
    assert unknown.status == 400


async def test_authorize__scope_beyond_app_redirects_invalid_scope(client: Any) -> None:
    app = await register_app(client, scopes="read")
    page = await open_form(client, app, scope="read write")
    assert page.status == 302
    query = parse_qs(urlsplit(page.headers["Location"]).query)
    assert query["error"] == ["invalid_scope"]
    page = await open_form(client, app, response_type="token")
    assert parse_qs(urlsplit(page.headers["Location"]).query)["error"] == ["unsupported_response_type"]


async def test_authorize__wrong_password_shows_form_again(client: Any, make_user: Any) -> None:
    await make_user("alice")
    app = await register_app(client)
    page = await open_form(client, app)
    answer = await submit_form(client, await page.text(), username="alice", password="wrong password")
    assert answer.status == 401
    html = await answer.text()
    assert "Invalid username or password" in html
    assert 'role="alert"' in html
    retry = await submit_form(client, html, username="alice", password=PASSWORD)  # the form still works
    assert retry.status == 302


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"suspended_at": "now"}, "disabled"),
        ({"approved": False}, "pending approval"),
        ({"deleted_at": "now"}, "Invalid username or password"),
    ],
)
async def test_authorize__refuses_suspended_unapproved_deleted(
    client: Any, make_user: Any, engine: AsyncEngine, change: dict[str, Any], message: str
) -> None:
    alice = await make_user("alice")
    for key, value in change.items():
        if key == "approved":
            await set_user(engine, alice.user_id, approved=value)
        else:
            await set_account(engine, alice.account_id, **{key: now()})
    app = await register_app(client)
    page = await open_form(client, app)
    answer = await submit_form(client, await page.text(), username="alice", password=PASSWORD)
    assert answer.status in (401, 403)
    assert "Location" not in answer.headers
    assert message in await answer.text()


async def test_authorize__oob_shows_the_code(client: Any, make_user: Any) -> None:
    await make_user("alice")
    app = await register_app(client, redirect_uris="urn:ietf:wg:oauth:2.0:oob")
    page = await open_form(client, app, redirect_uri="urn:ietf:wg:oauth:2.0:oob")
    answer = await submit_form(client, await page.text(), username="alice", password=PASSWORD)
    assert answer.status == 200
    code = read_form(await answer.text()).fields["code"]
    response = await exchange(client, app, code, redirect_uri="urn:ietf:wg:oauth:2.0:oob")
    assert response.status == 200


async def test_authorize__escapes_everything_it_echoes(client: Any) -> None:
    app = await register_app(client, name='<script>alert("x")</script>')
    page = await open_form(client, app, state='"><img src=x onerror=alert(1)>')
    html = await page.text()
    assert "<script>alert" not in html
    assert "<img src=x" not in html
    assert read_form(html).fields["state"] == '"><img src=x onerror=alert(1)>'


# ---------------------------------------------------------------------------- password grant


async def test_password_grant__by_username_or_email(client: Any, make_user: Any, engine: AsyncEngine) -> None:
    alice = await make_user("alice")
    await set_user(engine, alice.user_id, email="alice@example.org")
    app = await register_app(client)
    for login in ("alice", "ALICE", "alice@example.org"):
        response = await password_grant(client, app, login, PASSWORD, scope="read")
        assert response.status == 200, await response.text()
        body = await response.json()
        assert body["scope"] == "read"
        whoami = await client.get("/test/whoami", headers=bearer(body["access_token"]))
        assert (await whoami.json())["account_id"] == str(alice.account_id)


async def test_password_grant__wrong_password_same_answer_as_unknown_user(client: Any, make_user: Any) -> None:
    await make_user("alice")
    app = await register_app(client)
    wrong = await password_grant(client, app, "alice", "not the password")
    unknown = await password_grant(client, app, "nobody", "not the password")
    assert wrong.status == unknown.status == 400
    assert await wrong.json() == await unknown.json()
    assert (await wrong.json())["error"] == "invalid_grant"


async def test_password_grant__rate_limited_per_username(
    aiohttp_client: Any, make_user: Any, engine: AsyncEngine, tmp_path: Path, db_url: str
) -> None:
    config = make_config(tmp_path, db_url, security={"login_attempts_per_minute": 3})
    client = await aiohttp_client(create_app(config, engine=engine))
    await make_user("alice")
    await make_user("bob")
    app = await register_app(client)
    for _ in range(3):
        assert (await password_grant(client, app, "alice", "wrong password")).status == 400
    limited = await password_grant(client, app, "Alice", PASSWORD)  # even the right password, any case
    assert limited.status == 429
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert (await password_grant(client, app, "bob", PASSWORD)).status == 200  # others unaffected
    page = await open_form(client, app)  # the form shares the limit
    answer = await submit_form(client, await page.text(), username="alice", password=PASSWORD)
    assert answer.status == 429
    assert "Retry-After" in answer.headers


async def test_password_grant__suspended_and_pending_users_refused(
    client: Any, make_user: Any, engine: AsyncEngine
) -> None:
    alice = await make_user("alice")
    bob = await make_user("bob")
    carol = await make_user("carol")
    await set_account(engine, alice.account_id, suspended_at=now())
    await set_user(engine, bob.user_id, approved=False)
    await set_user(engine, carol.user_id, disabled=True)  # a moderator's "disable" action
    app = await register_app(client)
    for name, words in (("alice", "disabled"), ("bob", "pending"), ("carol", "disabled")):
        response = await password_grant(client, app, name, PASSWORD)
        assert response.status == 400
        body = await response.json()
        assert body["error"] == "invalid_grant"
        assert words in body["error_description"]


async def test_password_grant__scopes_must_be_within_the_app(client: Any, make_user: Any) -> None:
    await make_user("alice")
    app = await register_app(client, scopes="read")
    for scope in ("read write", "admin:read", "made-up"):
        response = await password_grant(client, app, "alice", PASSWORD, scope=scope)
        assert response.status == 400
        assert (await response.json())["error"] == "invalid_scope"
    narrow = await password_grant(client, app, "alice", PASSWORD, scope="read:statuses")
    assert narrow.status == 200
    assert (await narrow.json())["scope"] == "read:statuses"
    whoami = await client.get("/test/whoami", headers=bearer((await narrow.json())["access_token"]))
    assert whoami.status == 403  # read:statuses does not cover read:accounts


# ---------------------------------------------------------------------------- client credentials, revocation


async def test_client_credentials__app_token_is_not_a_user(client: Any) -> None:
    app = await register_app(client)
    response = await client.post(
        "/oauth/token",
        json={"grant_type": "client_credentials", "client_id": app["client_id"], "client_secret": app["client_secret"]},
    )
    assert response.status == 200
    token = (await response.json())["access_token"]
    assert (await client.get("/api/v1/apps/verify_credentials", headers=bearer(token))).status == 200
    assert (await client.get("/test/whoami", headers=bearer(token))).status == 401


async def test_revoke__takes_effect_immediately(client: Any, make_user: Any) -> None:
    await make_user("alice")
    app = await register_app(client)
    token = (await (await password_grant(client, app, "alice", PASSWORD)).json())["access_token"]
    assert (await client.get("/api/v1/apps/verify_credentials", headers=bearer(token))).status == 200  # now cached
    response = await client.post(
        "/oauth/revoke", data={"token": token, "client_id": app["client_id"], "client_secret": app["client_secret"]}
    )
    assert response.status == 200
    assert await response.json() == {}
    assert (await client.get("/api/v1/apps/verify_credentials", headers=bearer(token))).status == 401


async def test_revoke__unknown_token_ok_other_clients_token_refused(client: Any, make_user: Any) -> None:
    await make_user("alice")
    app = await register_app(client)
    other = await register_app(client, name="Other")
    token = (await (await password_grant(client, app, "alice", PASSWORD)).json())["access_token"]
    creds = {"client_id": other["client_id"], "client_secret": other["client_secret"]}
    unknown = await client.post("/oauth/revoke", data={"token": "no-such-token", **creds})
    assert unknown.status == 200
    refused = await client.post("/oauth/revoke", data={"token": token, **creds})
    assert refused.status == 400
    assert (await refused.json())["error"] == "unauthorized_client"
    assert (await client.get("/test/whoami", headers=bearer(token))).status == 200
    bad_client = await client.post(
        "/oauth/revoke", data={"token": token, "client_id": app["client_id"], "client_secret": "wrong"}
    )
    assert bad_client.status == 401
    assert (await client.get("/test/whoami", headers=bearer(token))).status == 200


async def test_token__grant_type_errors(client: Any) -> None:
    app = await register_app(client)
    creds = {"client_id": app["client_id"], "client_secret": app["client_secret"]}
    missing = await client.post("/oauth/token", data=creds)
    assert missing.status == 400
    assert (await missing.json())["error"] == "invalid_request"
    for grant in ("refresh_token", "implicit", "urn:ietf:params:oauth:grant-type:device_code"):
        response = await client.post("/oauth/token", data={"grant_type": grant, **creds})
        assert response.status == 400
        assert (await response.json())["error"] == "unsupported_grant_type"
    nested = await client.post("/oauth/token", json={"grant_type": {"a": 1}, **creds})
    assert nested.status == 400
    assert (await nested.json())["error"] == "invalid_request"


# ---------------------------------------------------------------------------- properties

_ANY_TEXT = st.text(max_size=80)
_TOKEN_FIELDS = st.dictionaries(
    st.sampled_from(
        [
            "grant_type",
            "client_id",
            "client_secret",
            "code",
            "redirect_uri",
            "code_verifier",
            "scope",
            "username",
            "password",
        ]
    ),
    st.one_of(_ANY_TEXT, st.sampled_from(["authorization_code", "password", "client_credentials", "read", ""])),
    max_size=9,
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fields=_TOKEN_FIELDS, as_json=st.booleans())
async def test_token__random_input_never_500(client: Any, fields: dict[str, str], as_json: bool) -> None:
    fields = {k: v.replace("\x00", "") if not as_json else v for k, v in fields.items()}
    response = await (client.post("/oauth/token", json=fields) if as_json else client.post("/oauth/token", data=fields))
    assert response.status in (400, 401, 429)
    body = await response.json()
    assert set(body) == {"error", "error_description"}


_APP_FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "client_name": st.one_of(_ANY_TEXT, st.integers(), st.none(), st.lists(_ANY_TEXT, max_size=2)),
        "redirect_uris": st.one_of(
            _ANY_TEXT,
            st.lists(st.one_of(_ANY_TEXT, st.just(CALLBACK), st.integers()), max_size=3),
            st.sampled_from([CALLBACK, "urn:ietf:wg:oauth:2.0:oob", "app://x", "http://[::1"]),
        ),
        "scopes": st.one_of(_ANY_TEXT, st.sampled_from(["read write", "read+follow", "push", ""])),
        "website": st.one_of(_ANY_TEXT, st.just("https://example.org")),
    },
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fields=_APP_FIELDS)
async def test_apps__random_input_never_500(client: Any, fields: dict[str, Any]) -> None:
    response = await client.post("/api/v1/apps", json=fields)
    assert response.status in (200, 400, 422), await response.text()
    body = await response.json()
    if response.status == 200:
        assert body["client_secret"] and body["redirect_uris"]
    else:
        assert set(body) == {"error"}


# ---------------------------------------------------------------------------- a real client


async def test_mastodon_py__code_flow_password_flow_and_revocation(
    aiohttp_server: Any, make_user: Any, engine: AsyncEngine, tmp_path: Path, db_url: str
) -> None:
    """Mastodon.py 2.3.3, unmodified, against a live server: both login flows and revocation."""
    from mastodon import Mastodon

    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    config = make_config(tmp_path, db_url, instance={"base_url": base})
    await aiohttp_server(create_app(config, engine=engine), port=port)
    await make_user("alice")
    scopes = ["read", "write"]

    def register() -> tuple[Mastodon, str]:
        client_id, client_secret = Mastodon.create_app("Mastodon.py test", api_base_url=base, scopes=scopes)
        api = Mastodon(client_id=client_id, client_secret=client_secret, api_base_url=base)
        return api, api.auth_request_url(scopes=scopes, allow_http=True)

    api, url = await asyncio.to_thread(register)
    async with ClientSession(cookie_jar=CookieJar(unsafe=True)) as browser:  # the person's browser
        page = await browser.get(url)
        assert page.status == 200, await page.text()
        form = read_form(await page.text())
        answer = await browser.post(
            f"{base}/oauth/authorize", data=dict(form.fields, username="alice", password=PASSWORD)
        )
        assert answer.status == 200
        code = read_form(await answer.text()).fields["code"]

    def use(code: str) -> tuple[Any, Any, Any]:
        api.log_in(code=code, scopes=scopes, allow_http=True)
        app_info = api.app_verify_credentials()
        api.revoke_access_token(allow_http=True)
        api.log_in("alice", PASSWORD, scopes=scopes, allow_http=True)
        return app_info, api.instance(), api.app_verify_credentials()

    app_info, instance, again = await asyncio.to_thread(use, code)
    assert app_info["name"] == again["name"] == "Mastodon.py test"
    assert instance["version"].startswith("4.3.0")
    async with make_sessionmaker(engine)() as session:
        tokens = (
            (await session.execute(select(OAuthToken).where(OAuthToken.app_id.is_not(None)).order_by(OAuthToken.id)))
            .scalars()
            .all()
        )
    assert [t.revoked_at is not None for t in tokens] == [True, False]
    assert tokens[0].code_id is not None and tokens[1].code_id is None
