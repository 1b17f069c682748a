"""Instance metadata: the v1 and v2 documents clients read before anything else."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import make_config
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from server.api import instance as instance_api
from server.app import create_app
from server.db import make_sessionmaker
from server.models import Account
from server.web import now


async def test_instance_v1__shape_with_and_without_trailing_slash(client: Any, make_user: Any) -> None:
    await make_user("alice")
    await make_user("bob")
    for path in ("/api/v1/instance", "/api/v1/instance/"):
        response = await client.get(path)
        assert response.status == 200
        body = await response.json()
        assert body["uri"] == "127.0.0.1:8080"
        assert body["title"] == "Hearthside"
        assert body["short_description"] == body["description"] == "A peer-support community."
        assert body["email"] == ""
        assert body["version"] == "4.3.0 (compatible; Hearthside 0.1.0)"
        assert body["urls"] == {"streaming_api": "ws://127.0.0.1:8080"}
        assert body["stats"] == {"user_count": 2, "status_count": 0, "domain_count": 0}
        assert body["thumbnail"].startswith("http://127.0.0.1:8080/")
        assert body["languages"] == ["en"]
        assert body["registrations"] is True  # the test config is open
        assert body["approval_required"] is False
        assert body["invites_enabled"] is False
        assert body["configuration"]["statuses"] == {
            "max_characters": 5000,
            "max_media_attachments": 0,
            "characters_reserved_per_url": 23,
        }
        assert body["configuration"]["accounts"] == {"max_featured_tags": 0}
        assert set(body["configuration"]["media_attachments"]) >= {"supported_mime_types", "image_size_limit"}
        assert set(body["configuration"]["polls"]) == {
            "max_options",
            "max_characters_per_option",
            "min_expiration",
            "max_expiration",
        }
        assert body["contact_account"] is None  # no admin yet
        assert body["rules"] == []


async def test_instance_v2__shape_mastodon_py_needs(client: Any) -> None:
    for path in ("/api/v2/instance", "/api/v2/instance/"):
        response = await client.get(path)
        assert response.status == 200
        body = await response.json()
        assert body["domain"] == "127.0.0.1:8080"
        assert body["title"] == "Hearthside"
        assert int(body["version"].split(".")[0]) >= 4
        assert body["api_versions"] == {"mastodon": 2}
        assert body["usage"] == {"users": {"active_month": 0}}
        assert body["thumbnail"]["url"].startswith("http://")
        assert body["languages"] == ["en"]
        config = body["configuration"]
        assert config["urls"]["streaming"] == "ws://127.0.0.1:8080"
        assert config["statuses"]["max_characters"] == 5000
        assert config["translation"] == {"enabled": False}
        assert {"accounts", "media_attachments", "polls"} <= set(config)
        assert body["registrations"]["enabled"] is True
        assert body["registrations"]["approval_required"] is False
        assert body["registrations"]["message"] is None
        assert body["contact"] == {"email": "", "account": None}
        assert body["rules"] == []


async def test_instance__contact_account_is_first_admin_in_good_standing(
    client: Any, make_user: Any, engine: AsyncEngine
) -> None:
    await make_user("member")
    first = await make_user("first_admin", role="admin")
    second = await make_user("second_admin", role="admin")
    v1 = await (await client.get("/api/v1/instance")).json()
    v2 = await (await client.get("/api/v2/instance")).json()
    assert v1["contact_account"]["id"] == str(first.account_id)
    assert v1["contact_account"]["username"] == "first_admin"
    assert v2["contact"]["account"]["id"] == str(first.account_id)
    async with make_sessionmaker(engine)() as session:
        await session.execute(update(Account).where(Account.id == first.account_id).values(suspended_at=now()))
        await session.commit()
    v1 = await (await client.get("/api/v1/instance")).json()
    assert v1["contact_account"]["id"] == str(second.account_id)  # not cached: changes at once
    assert v1["stats"]["user_count"] == 3  # counts are cached for a minute, as on Mastodon
    instance_api._stats_cache.clear()
    v1 = await (await client.get("/api/v1/instance")).json()
    assert v1["stats"]["user_count"] == 2  # the suspended admin is not counted


async def test_instance_v2__active_month_counts_recent_logins(client: Any, make_user: Any) -> None:
    await make_user("alice")
    await make_user("bob")
    registered = await (
        await client.post("/api/v1/apps", data={"client_name": "A", "redirect_uris": "urn:ietf:wg:oauth:2.0:oob"})
    ).json()
    login = await client.post(
        "/oauth/token",
        data={
            "grant_type": "password",
            "username": "alice",
            "password": "correct horse battery",
            "client_id": registered["client_id"],
            "client_secret": registered["client_secret"],
        },
    )
    assert login.status == 200
    body = await (await client.get("/api/v2/instance")).json()
    assert body["usage"]["users"]["active_month"] == 1


@pytest.mark.parametrize(
    ("mode", "v1", "v2"),
    [
        ("open", (True, False, False), (True, False)),
        ("approval", (True, True, False), (True, True)),
        ("invite", (False, False, True), (False, False)),
        ("closed", (False, False, False), (False, False)),
    ],
)
async def test_instance__registration_modes(
    aiohttp_client: Any,
    engine: AsyncEngine,
    tmp_path: Path,
    db_url: str,
    mode: str,
    v1: tuple[bool, bool, bool],
    v2: tuple[bool, bool],
) -> None:
    config = make_config(
        tmp_path,
        db_url,
        instance={
            "registrations": mode,
            "name": "Quiet Harbour",
            "contact_email": "ops@harbour.example",
            "max_post_chars": 800,
            "languages": ["en", "cy"],
        },
    )
    client = await aiohttp_client(create_app(config, engine=engine))
    one = await (await client.get("/api/v1/instance/")).json()
    two = await (await client.get("/api/v2/instance/")).json()
    assert (one["registrations"], one["approval_required"], one["invites_enabled"]) == v1
    assert (two["registrations"]["enabled"], two["registrations"]["approval_required"]) == v2
    assert one["title"] == two["title"] == "Quiet Harbour"
    assert one["email"] == two["contact"]["email"] == "ops@harbour.example"
    assert one["configuration"]["statuses"]["max_characters"] == 800
    assert two["configuration"]["statuses"]["max_characters"] == 800
    assert one["languages"] == two["languages"] == ["en", "cy"]


async def test_instance__rules_peers_and_extended_description(client: Any) -> None:
    for path in ("/api/v1/instance/rules", "/api/v1/instance/peers/"):
        response = await client.get(path)
        assert response.status == 200
        assert await response.json() == []
    response = await client.get("/api/v1/instance/extended_description")
    assert response.status == 200
    assert (await response.json())["content"] == "<p>A peer-support community.</p>"


async def test_instance__public_and_cors_open(client: Any) -> None:
    response = await client.get("/api/v1/instance", headers={"Authorization": "Bearer not-a-token"})
    assert response.status == 200  # an invalid token does not matter on a public document
    assert response.headers["Access-Control-Allow-Origin"] == "*"
