"""Mastodon's admin API for domain blocks (research/moderation.md §1.1, §1.3), on SQLite and
PostgreSQL: shapes, defaults, the "stricter limits" answer, parent-domain rules, punycode,
staff-only access and scopes, and an audit entry for every write."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from moderation.decisions import domain_digest
from server.models import AuditEntry, DomainBlock

B = "/api/v1/admin/domain_blocks"
ADMIN_SCOPES = "read write admin:read admin:write"


async def admin(make_user: Any, name: str = "boss", role: str = "admin", scopes: str = ADMIN_SCOPES) -> Any:
    return await make_user(name, role=role, scopes=scopes)


async def body(response: Any, status: int = 200) -> Any:
    data = await response.json()
    assert response.status == status, (response.status, data)
    return data


async def test_create__mastodon_entity_and_defaults(client: Any, make_user: Any, engine: Any) -> None:
    boss = await admin(make_user)
    created = await body(await client.post(B, json={"domain": "Spam.Example."}, headers=boss.headers))
    assert created["domain"] == "spam.example"
    assert created["severity"] == "silence"  # Mastodon's API default
    assert created["digest"] == domain_digest("spam.example")
    assert {k: created[k] for k in ("reject_media", "reject_reports", "obfuscate")} == {
        "reject_media": False,
        "reject_reports": False,
        "obfuscate": False,
    }
    assert created["private_comment"] is None and created["public_comment"] is None
    shown = await body(await client.get(f"{B}/{created['id']}", headers=boss.headers))
    assert shown == created
    listed = await body(await client.get(B, headers=boss.headers))
    assert [b["id"] for b in listed] == [created["id"]]
    async with engine.connect() as conn:
        entries = (await conn.execute(select(AuditEntry.action, AuditEntry.target, AuditEntry.actor_account_id))).all()
    assert entries == [("domain_block.create", "spam.example", boss.account_id)]


async def test_create__idn_is_stored_as_punycode(client: Any, make_user: Any) -> None:
    boss = await admin(make_user)
    created = await body(
        await client.post(B, json={"domain": "bücher.example", "severity": "suspend"}, headers=boss.headers)
    )
    assert created["domain"] == "xn--bcher-kva.example"


async def test_create__refused_when_already_stricter_or_covered_by_a_parent(
    client: Any, make_user: Any, engine: Any
) -> None:
    boss = await admin(make_user)
    parent = await body(
        await client.post(B, json={"domain": "bad.example", "severity": "suspend"}, headers=boss.headers)
    )
    refused = await client.post(B, json={"domain": "sub.bad.example", "severity": "silence"}, headers=boss.headers)
    answer = await body(refused, 422)
    assert answer["error"] == "You have already imposed stricter limits on bad.example."
    assert answer["existing_domain_block"]["id"] == parent["id"]
    again = await client.post(B, json={"domain": "bad.example", "severity": "suspend"}, headers=boss.headers)
    await body(again, 422)
    # A stricter block on a subdomain of a silenced domain is allowed (Mastodon's rule).
    await body(await client.post(B, json={"domain": "meh.example", "severity": "silence"}, headers=boss.headers))
    await body(await client.post(B, json={"domain": "worse.meh.example", "severity": "suspend"}, headers=boss.headers))
    async with engine.connect() as conn:
        domains = sorted(r[0] for r in await conn.execute(select(DomainBlock.domain)))
    assert domains == ["bad.example", "meh.example", "worse.meh.example"]


async def test_update_and_delete__audited(client: Any, make_user: Any, engine: Any) -> None:
    boss = await admin(make_user)
    created = await body(await client.post(B, json={"domain": "x.example"}, headers=boss.headers))
    updated = await body(
        await client.put(
            f"{B}/{created['id']}",
            json={"severity": "suspend", "reject_media": True, "public_comment": "spam, harassment"},
            headers=boss.headers,
        )
    )
    assert (updated["severity"], updated["reject_media"], updated["public_comment"]) == (
        "suspend",
        True,
        "spam, harassment",
    )
    assert await body(await client.delete(f"{B}/{created['id']}", headers=boss.headers)) == {}
    await body(await client.get(f"{B}/{created['id']}", headers=boss.headers), 404)
    async with engine.connect() as conn:
        actions = [r[0] for r in await conn.execute(select(AuditEntry.action).order_by(AuditEntry.id))]
    assert actions == ["domain_block.create", "domain_block.update", "domain_block.delete"]


async def test_bad_input__names_the_field_and_writes_nothing(client: Any, make_user: Any, engine: Any) -> None:
    boss = await admin(make_user)
    for payload, field in (
        ({}, "domain"),
        ({"domain": "not a domain"}, "domain"),
        ({"domain": "https://x.example/path"}, "domain"),
        ({"domain": "ok.example", "severity": "obliterate"}, "severity"),
    ):
        response = await client.post(B, json=payload, headers=boss.headers)
        assert response.status in (400, 422)
        assert field in (await response.json())["error"]
    async with engine.connect() as conn:
        assert (await conn.execute(select(DomainBlock.id))).all() == []
        assert (await conn.execute(select(AuditEntry.id))).all() == []


async def test_access__staff_with_admin_scopes_only(client: Any, make_user: Any) -> None:
    member = await make_user("member", scopes=ADMIN_SCOPES)
    await body(await client.get(B, headers=member.headers), 403)
    reader = await admin(make_user, "reader", scopes="read admin:read:domain_blocks")
    await body(await client.get(B, headers=reader.headers))
    await body(await client.post(B, json={"domain": "x.example"}, headers=reader.headers), 403)
    moderator = await admin(make_user, "mod", role="moderator")
    await body(await client.post(B, json={"domain": "x.example"}, headers=moderator.headers))
    response = await client.get(B)
    assert response.status == 401


async def test_list__paginated_with_link_headers(client: Any, make_user: Any) -> None:
    boss = await admin(make_user)
    for i in range(5):
        await body(await client.post(B, json={"domain": f"d{i}.example"}, headers=boss.headers))
    first = await client.get(B, params={"limit": "2"}, headers=boss.headers)
    page = await body(first)
    assert [b["domain"] for b in page] == ["d4.example", "d3.example"]
    assert 'rel="next"' in first.headers["Link"]
