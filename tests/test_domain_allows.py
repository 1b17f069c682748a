"""Mastodon's admin API for domain allows and the allowlist federation mode (research/moderation.md
§1.3, §1.7), on SQLite and PostgreSQL: entity shape, punycode, idempotent create, pagination,
staff-only access and scopes, 422 naming the field with nothing written, an audit entry per
write; in ``[federation] mode = "allowlist"`` only allowed domains (and subdomains) pass the
inbox and fetch checks and can be followed; in blocklist mode allows change nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import make_config
from sqlalchemy import select

from server.app import create_app
from server.config import ConfigError
from server.db import make_sessionmaker
from server.domains import allowed_domains, suspended_among, suspended_domain
from server.federation import Federation
from server.ids import new_id
from server.models import Account, AuditEntry, DomainAllow, DomainBlock, Follow
from server.transport import FetchError
from server.web import now

A = "/api/v1/admin/domain_allows"
ADMIN_SCOPES = "read write follow admin:read admin:write"


async def body(response: Any, status: int = 200) -> Any:
    data = await response.json()
    assert response.status == status, (response.status, data)
    return data


async def test_domain_allows__crud_entity_and_audit(client: Any, make_user: Any, engine: Any) -> None:
    boss = await make_user("boss", role="admin", scopes=ADMIN_SCOPES)
    created = await body(await client.post(A, json={"domain": "Bücher.Example."}, headers=boss.headers))
    assert set(created) == {"id", "domain", "created_at"}
    assert created["domain"] == "xn--bcher-kva.example"
    again = await body(await client.post(A, json={"domain": "xn--bcher-kva.example"}, headers=boss.headers))
    assert again == created  # Mastodon answers the existing allow
    second = await body(await client.post(A, data={"domain": "partner.example"}, headers=boss.headers))
    assert await body(await client.get(f"{A}/{created['id']}", headers=boss.headers)) == created
    page = await client.get(A, params={"limit": "1"}, headers=boss.headers)
    assert [a["id"] for a in await body(page)] == [second["id"]]  # newest first
    assert 'rel="next"' in page.headers["Link"]
    async with make_sessionmaker(engine)() as session:
        assert await allowed_domains(session) == {"xn--bcher-kva.example", "partner.example"}
    assert await body(await client.delete(f"{A}/{created['id']}", headers=boss.headers)) == {}
    await body(await client.get(f"{A}/{created['id']}", headers=boss.headers), 404)
    await body(await client.delete(f"{A}/{created['id']}", headers=boss.headers), 404)
    async with make_sessionmaker(engine)() as session:
        audit = [(e.action, e.target, e.actor_account_id) for e in await session.scalars(select(AuditEntry))]
    assert sorted(audit) == [
        ("domain_allow.create", "partner.example", boss.account_id),
        ("domain_allow.create", "xn--bcher-kva.example", boss.account_id),
        ("domain_allow.delete", "xn--bcher-kva.example", boss.account_id),
    ]


async def test_domain_allows__refusals_write_nothing(client: Any, make_user: Any, engine: Any) -> None:
    boss = await make_user("boss", role="admin", scopes=ADMIN_SCOPES)
    member = await make_user("member", scopes=ADMIN_SCOPES)
    reader = await make_user("reader", role="admin", scopes="read admin:read")
    await body(await client.get(A), 401)
    await body(await client.get(A, headers=member.headers), 403)
    await body(await client.post(A, json={"domain": "x.example"}, headers=member.headers), 403)
    await body(await client.post(A, json={"domain": "x.example"}, headers=reader.headers), 403)
    for bad in ("", "not a domain", "a..example", "x" * 400):
        answer = await body(await client.post(A, json={"domain": bad}, headers=boss.headers), 422)
        assert answer["error"].startswith("domain"), answer
    await body(await client.post(A, json={}, headers=boss.headers), 400)  # missing: Mastodon's 400
    async with make_sessionmaker(engine)() as session:
        assert list(await session.scalars(select(DomainAllow))) == []
        assert list(await session.scalars(select(AuditEntry))) == []


def test_config__federation_mode_is_checked(tmp_path: Path) -> None:
    assert make_config(tmp_path).get("federation", "mode") == "blocklist"
    with pytest.raises(ConfigError, match=r"federation\.mode"):
        make_config(tmp_path, federation={"mode": "whitelist"})


async def _allow(engine: Any, *domains: str) -> None:
    async with make_sessionmaker(engine)() as session:
        for domain in domains:
            session.add(DomainAllow(id=new_id(), domain=domain, created_at=now()))
        await session.commit()


async def test_allowlist_mode__only_allowed_domains_and_subdomains_federate(
    tmp_path: Path, db_url: str, engine: Any
) -> None:
    config = make_config(tmp_path, db_url, federation={"mode": "allowlist"})
    fed = Federation(config, make_sessionmaker(engine))
    await _allow(engine, "partner.example", "127.0.0.9")
    async with make_sessionmaker(engine)() as session:
        moment = now()
        session.add(
            DomainBlock(
                id=new_id(), domain="bad.partner.example", severity="suspend", created_at=moment, updated_at=moment
            )
        )
        await session.commit()
    assert not await suspended_domain(fed, "partner.example")
    assert not await suspended_domain(fed, "a.partner.example")
    assert not await suspended_domain(fed, "127.0.0.9:8080")
    assert await suspended_domain(fed, "other.example")
    assert await suspended_domain(fed, "notpartner.example")
    assert await suspended_domain(fed, "bad.partner.example")  # a block still applies
    async with make_sessionmaker(engine)() as session:  # the inbox's and the delivery queue's check
        assert await suspended_among(session, {"partner.example", "x.partner.example", "other.example"}) == {
            "other.example"
        }
    with pytest.raises(FetchError) as refused:  # nothing fetched from others
        await fed.refuse_domain("other.example")
    assert refused.value.reason == "refused_domain"
    await fed.refuse_domain("a.partner.example")


async def test_blocklist_mode__allows_change_nothing(tmp_path: Path, db_url: str, engine: Any) -> None:
    fed = Federation(make_config(tmp_path, db_url), make_sessionmaker(engine))
    await _allow(engine, "partner.example")
    assert not await suspended_domain(fed, "other.example")
    async with make_sessionmaker(engine)() as session:
        assert await suspended_among(session, {"other.example", "partner.example"}) == set()


async def test_allowlist_mode__follow_of_a_non_allowed_account_is_refused(
    aiohttp_client: Any, tmp_path: Path, db_url: str, engine: Any, make_user: Any
) -> None:
    config = make_config(tmp_path, db_url, federation={"mode": "allowlist"})
    client = await aiohttp_client(create_app(config, engine=engine))
    alice = await make_user("alice")
    await _allow(engine, "partner.example")
    ids = {}
    async with make_sessionmaker(engine)() as session:
        for name, domain in (("far", "other.example"), ("near", "a.partner.example")):
            moment = now()
            row = Account(
                id=new_id(),
                username=name,
                username_lower=name,
                domain=domain,
                uri=f"https://{domain}/users/{name}",
                inbox_url=f"https://{domain}/users/{name}/inbox",
                created_at=moment,
                updated_at=moment,
            )
            session.add(row)
            ids[name] = row.id
        await session.commit()
    answer = await body(await client.post(f"/api/v1/accounts/{ids['far']}/follow", headers=alice.headers), 403)
    assert answer["error"] == "other.example does not federate with this instance"
    relation = await body(await client.post(f"/api/v1/accounts/{ids['near']}/follow", headers=alice.headers))
    assert relation["requested"] is True
    async with make_sessionmaker(engine)() as session:
        assert [f.target_account_id for f in await session.scalars(select(Follow))] == [ids["near"]]
