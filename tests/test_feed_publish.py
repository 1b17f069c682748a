"""Publishing the signed moderation decision feed (issue 5 item 4; research/moderation.md §6.b,
§6.c tests 7, 8, 10 (publisher side), 21/22 (publisher side); /tmp/feed-contract.md).

Everything is read back as a subscriber would: over HTTP from the live app, with
``moderation.feed.parse_dataset`` and ``verify_entry`` against the dataset's key set.
"""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import make_config
from remote_actor import KeyRing, RemoteServer
from sqlalchemy import select

from federation.httpsig import sign_request
from moderation.decisions import DomainDecision, Severity
from moderation.feed import SILENCE_FILTERS, FeedError, parse_dataset, parse_entry, verify_entry
from moderation.formats import import_mastodon_csv
from server import blocklists, feeds
from server.app import create_app
from server.db import make_sessionmaker
from server.models import AuditEntry, Delivery, FeedEntry, ModerationKey, OutboxActivity
from server.web import CONFIG, now

pytestmark = pytest.mark.timeout(60)

B = "/api/v1/admin/domain_blocks"
ADMIN_SCOPES = "read write admin:read admin:write"
PUBLIC = "/moderation/feeds/public"
PARTNERS = "/moderation/feeds/partners"


@pytest.fixture(scope="module")
def keys() -> KeyRing:
    return KeyRing.generate(rsa=2, ed25519=2)


async def admin(make_user: Any) -> Any:
    return await make_user("boss", role="admin", scopes=ADMIN_SCOPES)


async def get_json(client: Any, path: str, status: int = 200, **kwargs: Any) -> Any:
    response = await client.get(path, **kwargs)
    text = await response.text()
    assert response.status == status, text
    return json.loads(text) if text else None


async def all_changes(client: Any, feed: str = PUBLIC, headers: Any = None) -> list[dict[str, Any]]:
    """Every entry of the feed, following ``next`` links (as a subscriber pages)."""
    doc = await get_json(client, feed + "/changes", headers=headers)
    items = list(doc["orderedItems"])
    while "next" in doc:
        path = doc["next"].removeprefix("http://127.0.0.1:8080")
        doc = await get_json(client, path, headers=headers)
        items += doc["orderedItems"]
    return items


async def verified(client: Any, feed: str = PUBLIC, headers: Any = None) -> list[Any]:
    dataset = parse_dataset(await get_json(client, feed, headers=headers))
    return [
        verify_entry(doc, dataset.verification_keys(), now=now(), retired=dataset.retired_keys())
        for doc in await all_changes(client, feed, headers)
    ]


async def block(client: Any, boss: Any, **params: Any) -> dict[str, Any]:
    response = await client.post(B, json=params, headers=boss.headers)
    assert response.status == 200, await response.text()
    result: dict[str, Any] = await response.json()
    return result


# ---------------------------------------------------------------------------- decisions -> entries


async def test_feed_publish__admin_api_create_update_delete(client: Any, make_user: Any, engine: Any) -> None:
    boss = await admin(make_user)
    created = await block(client, boss, domain="bad.example", severity="suspend", public_comment="Spam")
    [first] = await verified(client)
    assert (first.type, first.entity_key, first.policy, first.filters) == ("Recommendation", "bad.example", "drop", ())
    assert first.reason == {"und": "Spam"} and first.review == "human"
    assert first.mastodon is not None and first.mastodon.severity == "suspend"

    # Unchanged: nothing new; then a new severity: a new Recommendation superseding the first.
    one = f"{B}/{created['id']}"
    assert (await client.put(one, json={"severity": "suspend"}, headers=boss.headers)).status == 200
    assert len(await verified(client)) == 1
    assert (await client.put(one, json={"severity": "silence"}, headers=boss.headers)).status == 200
    entries = await verified(client)
    assert len(entries) == 2
    assert entries[1].policy == "filter" and set(entries[1].filters) == SILENCE_FILTERS
    assert entries[1].supersedes == first.change_id

    # Removing the decision publishes a Retraction of the current entry.
    assert (await client.delete(one, headers=boss.headers)).status == 200
    entries = await verified(client)
    assert [e.type for e in entries] == ["Recommendation", "Recommendation", "Retraction"]
    assert entries[2].retracts == entries[1].change_id
    assert [e.change_id for e in entries] == sorted(e.change_id for e in entries)
    snapshot = await get_json(client, PUBLIC + "/snapshot")
    assert snapshot["orderedItems"] == [] and snapshot["totalItems"] == 0


async def test_feed_publish__noop_flags_map_to_filters_and_bare_noop_publishes_nothing(
    client: Any, make_user: Any
) -> None:
    boss = await admin(make_user)
    await block(client, boss, domain="media.example", severity="noop", reject_media=True)
    await block(client, boss, domain="reports.example", severity="noop", reject_reports=True)
    await block(client, boss, domain="nothing.example", severity="noop")
    entries = {e.entity_key: e for e in await verified(client)}
    assert set(entries) == {"media.example", "reports.example"}
    assert entries["media.example"].filters == ("reject-media",)
    assert entries["reports.example"].filters == ("reject-reports",)


async def test_feed_publish__blocklist_import_schedules_publication_in_the_same_transaction(
    client: Any, make_user: Any, engine: Any
) -> None:
    from server.models import Job

    boss = await admin(make_user)
    await block(client, boss, domain="silenced.example", severity="silence")
    csv = "\n".join(
        [
            "#domain,#severity,#reject_media,#reject_reports,#public_comment,#obfuscate",
            "new-bad.example,suspend,false,false,harassment,false",
            "silenced.example,suspend,true,false,,false",
            "hidden.example,suspend,false,false,,true",
            "",
        ]
    )
    jobs = select(Job).where(Job.kind == feeds.PUBLISH_JOB)
    async with make_sessionmaker(engine)() as session:
        plan = await blocklists.preview(session, import_mastodon_csv(csv).rows)
        await blocklists.apply(session, plan, actor_account_id=None, source="import:x.csv", at=now())
        await session.rollback()  # nothing half-written: the promise to publish goes with the decisions
        assert list(await session.scalars(jobs)) == []
    assert [e.entity_key for e in await verified(client)] == ["silenced.example"]
    async with make_sessionmaker(engine)() as session:
        plan = await blocklists.preview(session, import_mastodon_csv(csv).rows)
        await blocklists.apply(session, plan, actor_account_id=None, source="import:x.csv", at=now())
        await session.commit()
        assert len(list(await session.scalars(jobs))) == 1  # a durable job for the worker
    # The job (whether the app's worker got to it first or not: it is idempotent) publishes them.
    await feeds.run_publish_job(make_sessionmaker(engine), client.server.app[CONFIG], at=now())
    entries = await verified(client)
    assert sorted((e.entity_key, e.policy) for e in entries[1:]) == [
        ("new-bad.example", "drop"),
        ("silenced.example", "drop"),
    ]
    [new_bad] = [e for e in entries if e.entity_key == "new-bad.example"]
    assert new_bad.reason == {"und": "harassment"}
    assert "hidden.example" not in json.dumps(await all_changes(client))  # obfuscated: never published


# ---------------------------------------------------------------------------- keys


async def test_feed_publish__rotation_keeps_old_entries_verifiable(client: Any, make_user: Any, engine: Any) -> None:
    boss = await admin(make_user)
    await block(client, boss, domain="old.example", severity="suspend")
    before = parse_dataset(await get_json(client, PUBLIC))
    assert len(before.keys) == 1 and before.keys[0].revoked is None
    config = client.server.app[CONFIG]
    async with make_sessionmaker(engine)() as session:
        await feeds.rotate_key(session, config, at=now())
        await session.commit()
    await block(client, boss, domain="new.example", severity="suspend")

    dataset = parse_dataset(await get_json(client, PUBLIC))
    assert len(dataset.keys) == 2
    old, new = dataset.keys
    assert old.id == before.keys[0].id and old.revoked is not None and new.revoked is None
    docs = await all_changes(client)
    assert [d["proof"]["verificationMethod"] for d in docs] == [old.id, new.id]
    entries = [verify_entry(d, dataset.verification_keys(), now=now(), retired=dataset.retired_keys()) for d in docs]
    assert [e.entity_key for e in entries] == ["old.example", "new.example"]
    # The pinned pre-rotation key set alone does not accept the new entry.
    with pytest.raises(FeedError, match="not in the publisher's key set"):
        verify_entry(docs[1], before.verification_keys(), now=now())
    # The old key lost its private half (it can never sign again); the rotation is audited.
    async with make_sessionmaker(engine)() as session:
        rows = list(await session.scalars(select(ModerationKey).order_by(ModerationKey.id)))
        assert rows[0].private_pem is None and rows[1].private_pem is not None
        audit = await session.scalar(select(AuditEntry).where(AuditEntry.action == "feed.rotate_key"))
        assert audit is not None and audit.target == new.id
    # The instance actor served over HTTP lists both moderation keys, the old one as revoked.
    response = await client.get("/actor", headers={"Accept": "application/activity+json"})
    methods = {m["id"]: m for m in (await response.json())["assertionMethod"]}
    assert "revoked" in methods[old.id] and "revoked" not in methods[new.id]
    assert methods[new.id]["publicKeyMultibase"] == new.public_key.to_multibase()


async def test_feed_publish__tampered_entry_does_not_verify(client: Any, make_user: Any) -> None:
    boss = await admin(make_user)
    await block(client, boss, domain="bad.example", severity="suspend")
    dataset = parse_dataset(await get_json(client, PUBLIC))
    [doc] = await all_changes(client)
    verify_entry(doc, dataset.verification_keys(), now=now())
    for field, value in (("entityKey", "bbd.example"), ("recommendedPolicy", "filter"), ("published", None)):
        forged = copy.deepcopy(doc)
        if value is None:  # one second later (same format)
            moment = datetime.fromisoformat(forged[field].replace("Z", "+00:00")) + timedelta(seconds=1)
            forged[field] = moment.isoformat().replace("+00:00", "Z")
            assert forged[field] != doc[field]
        else:
            forged[field] = value
        with pytest.raises(FeedError, match=r"^proof: did not verify$"):
            verify_entry(forged, dataset.verification_keys(), now=now())


# ---------------------------------------------------------------------------- HTTP


async def test_feed_publish__paging_cursor_and_errors(client: Any, engine: Any) -> None:
    config = client.server.app[CONFIG]
    async with make_sessionmaker(engine)() as session:
        for i in range(205):
            decision = DomainDecision(domain=f"d{i:03}.example", severity=Severity.SUSPEND)
            await feeds.record_decision(
                session, kind="domain", key=decision.domain, decision=decision, source="api", at=now(), config=config
            )
        await session.commit()
    first = await get_json(client, PUBLIC + "/changes")
    assert first["type"] == "OrderedCollection" and first["totalItems"] == 205
    assert len(first["orderedItems"]) == 200 and first["next"].endswith(first["orderedItems"][-1]["changeId"])
    page = await get_json(client, first["next"].removeprefix("http://127.0.0.1:8080"))
    assert page["type"] == "OrderedCollectionPage" and len(page["orderedItems"]) == 5 and "next" not in page
    ids = [e["changeId"] for e in first["orderedItems"] + page["orderedItems"]]
    assert ids == sorted(ids) and len(set(ids)) == 205
    empty = await get_json(client, f"{PUBLIC}/changes?after={ids[-1]}")
    assert empty["orderedItems"] == []
    later = await get_json(client, f"{PUBLIC}/changes?after={ids[201]}")
    assert [e["changeId"] for e in later["orderedItems"]] == ids[202:]
    # Malformed cursors are a clear 400; unknown feeds 404.
    for bad in ("42", "not-a-uuid", "00000000-0000-4000-8000-000000000000", ids[0] + "&after=" + ids[1]):
        error = await get_json(client, f"{PUBLIC}/changes", 400, params={"after": bad})
        assert error["error"].startswith("after: ")
    for path in ("/moderation/feeds/secret", "/moderation/feeds/secret/changes", "/moderation/feeds/x/snapshot"):
        assert (await client.get(path)).status == 404
    snapshot = await get_json(client, PUBLIC + "/snapshot")
    assert snapshot["totalItems"] == 205 and snapshot["changes"].endswith(ids[-1])
    assert [e["changeId"] for e in snapshot["orderedItems"]] == ids[::-1]


async def test_feed_publish__etag_and_304(client: Any, make_user: Any) -> None:
    boss = await admin(make_user)
    await block(client, boss, domain="bad.example", severity="suspend")
    for path in (PUBLIC, PUBLIC + "/snapshot", PUBLIC + "/changes"):
        response = await client.get(path)
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("application/ld+json")
        assert "max-age=60" in response.headers["Cache-Control"]
        etag = response.headers["ETag"]
        again = await client.get(path, headers={"If-None-Match": etag})
        assert again.status == 304 and await again.read() == b""
        assert (await client.get(path, headers={"If-None-Match": '"other"'})).status == 200
    etag = (await client.get(PUBLIC + "/snapshot")).headers["ETag"]
    await block(client, boss, domain="worse.example", severity="suspend")
    assert (await client.get(PUBLIC + "/snapshot", headers={"If-None-Match": etag})).status == 200


async def test_feed_publish__dataset_names_publisher_policy_appeals_and_endpoints(client: Any) -> None:
    doc = await get_json(client, PUBLIC)
    dataset = parse_dataset(doc)
    assert dataset.publisher == "http://127.0.0.1:8080/actor"
    assert dataset.changes == "http://127.0.0.1:8080/moderation/feeds/public/changes"
    assert dataset.snapshot == "http://127.0.0.1:8080/moderation/feeds/public/snapshot"
    assert dataset.appeals_contact and dataset.policy_url
    assert [k.public_key.kind for k in dataset.keys] == ["ed25519"]


# ---------------------------------------------------------------------------- privacy


def _strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (k, *_strings(v))]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return [str(value)]


async def test_feed_publish__private_comments_and_obfuscated_domains_never_appear(
    client: Any, make_user: Any, engine: Any
) -> None:
    boss = await admin(make_user)
    await block(client, boss, domain="plain.example", severity="suspend", private_comment="SECRET-NOTE-1")
    created = await block(
        client, boss, domain="hushed.example", severity="suspend", obfuscate=True, private_comment="SECRET-NOTE-2"
    )
    await block(client, boss, domain="mail.example", severity="suspend", public_comment="ask bob@mail.example")
    await client.put(f"{B}/{created['id']}", json={"severity": "silence"}, headers=boss.headers)
    documents: list[Any] = [
        await get_json(client, path) for path in (PUBLIC, PUBLIC + "/snapshot", PUBLIC + "/changes")
    ]
    documents += [await get_json(client, f"/moderation/entries/{e['changeId']}") for e in documents[2]["orderedItems"]]
    async with make_sessionmaker(engine)() as session:
        documents += [json.loads(text) for text in await session.scalars(select(FeedEntry.document))]
    text = "\n".join(s for doc in documents for s in _strings(doc))
    assert "plain.example" in text and "mail.example" in text
    for secret in ("SECRET-NOTE", "hushed", "bob@"):
        assert secret not in text
    mail = [parse_entry(d) for d in documents[2]["orderedItems"] if d["entityKey"] == "mail.example"]
    assert mail and not mail[0].reason  # a reason that names a person is left out


# ---------------------------------------------------------------------------- partners


@pytest.fixture
async def partner() -> AsyncIterator[RemoteServer]:
    server = RemoteServer("127.0.0.5")
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def stranger() -> AsyncIterator[RemoteServer]:
    server = RemoteServer("127.0.0.6")
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def signed_get(actor: Any, path: str) -> dict[str, str]:
    return sign_request(
        "GET",
        "http://127.0.0.1:8080" + path,
        headers={"Accept": "application/ld+json"},
        body=None,
        key=actor.rsa,
        key_id=actor.key_id,
        now=datetime.now(UTC),
    )


async def test_feed_publish__partner_feed_needs_a_partner_signature(
    aiohttp_client: Any,
    tmp_path: Path,
    db_url: str,
    engine: Any,
    partner: RemoteServer,
    stranger: RemoteServer,
    keys: KeyRing,
) -> None:
    config = make_config(
        tmp_path,
        db_url,
        federation={"allow_private_addresses": True},
        moderation={"feed_partners": [f"127.0.0.5:{partner.port}"], "appeals_contact": "mailto:appeals@example.org"},
    )
    client = await aiohttp_client(create_app(config, engine=engine))
    friend = partner.actor("mod", keys.rsa[0], keys.ed25519[0])
    other = stranger.actor("mod", keys.rsa[1], keys.ed25519[1])
    actor_uri = "https://bad.example/users/troll"
    async with make_sessionmaker(engine)() as session:
        decision = DomainDecision(domain="bad.example", severity=Severity.SUSPEND)
        await feeds.record_decision(
            session, kind="domain", key="bad.example", decision=decision, source="api", at=now()
        )
        await feeds.record_account_decision(
            session, actor_uri=actor_uri, policy="suspend", reason="Harassment", expires=None, at=now()
        )
        await session.commit()

    for path in (PARTNERS, PARTNERS + "/snapshot", PARTNERS + "/changes"):
        assert (await client.get(path)).status == 401
        assert (await client.get(path, headers=signed_get(other, path))).status == 403
    headers = signed_get(friend, PARTNERS)
    response = await client.get(PARTNERS, headers=headers)
    assert response.status == 200 and response.headers["Cache-Control"].startswith("private")
    dataset = parse_dataset(await response.json(content_type=None))
    assert dataset.appeals_contact == "mailto:appeals@example.org"
    changes = await get_json(client, PARTNERS + "/changes", headers=signed_get(friend, PARTNERS + "/changes"))
    entries = [verify_entry(d, dataset.verification_keys(), now=now()) for d in changes["orderedItems"]]
    assert [(e.entity_kind, e.entity_key) for e in entries] == [("domain", "bad.example"), ("actor", actor_uri)]
    assert entries[1].expires is not None and entries[1].expires <= now() + timedelta(days=366)
    snap = await get_json(client, PARTNERS + "/snapshot", headers=signed_get(friend, PARTNERS + "/snapshot"))
    assert snap["totalItems"] == 2
    # The public feed and public entry URLs never show account-level entries.
    public = await get_json(client, PUBLIC + "/changes")
    assert [d["entityKind"] for d in public["orderedItems"]] == ["domain"]
    assert "troll" not in json.dumps(await get_json(client, PUBLIC + "/snapshot"))
    actor_entry = changes["orderedItems"][1]["changeId"]
    assert (await client.get(f"/moderation/entries/{actor_entry}")).status == 404


# ---------------------------------------------------------------------------- tombstone, reconcile, push


async def test_feed_publish__tombstone_deletes_reasons_and_reconcile_keeps_it(
    client: Any, make_user: Any, engine: Any
) -> None:
    boss = await admin(make_user)
    await block(client, boss, domain="bad.example", severity="suspend", public_comment="Spam")
    await block(client, boss, domain="kept.example", severity="suspend")
    config = client.server.app[CONFIG]
    async with make_sessionmaker(engine)() as session:
        stone = await feeds.tombstone(
            session, config, kind="domain", key="bad.example", actor_account_id=None, source="cli", at=now()
        )
        await session.commit()
    assert stone is not None
    entries = await verified(client)
    assert [(e.type, e.entity_key) for e in entries] == [
        ("Recommendation", "kept.example"),
        ("Tombstone", "bad.example"),
    ]
    assert "Spam" not in json.dumps(await all_changes(client))
    async with make_sessionmaker(engine)() as session:
        assert await feeds.publish_all(session, config, at=now()) == []  # the tombstone is respected
        assert await session.scalar(select(AuditEntry).where(AuditEntry.action == "feed.tombstone")) is not None


async def test_feed_publish__reconcile_publishes_what_is_missing(client: Any, engine: Any) -> None:
    from server.ids import new_id
    from server.models import DomainBlock

    config = client.server.app[CONFIG]
    async with make_sessionmaker(engine)() as session:  # decisions written with no feed at hand
        for domain in ("a.example", "b.example"):
            session.add(DomainBlock(id=new_id(), domain=domain, severity="suspend", created_at=now(), updated_at=now()))
        await session.commit()
    assert await all_changes(client) == []
    async with make_sessionmaker(engine)() as session:
        published = await feeds.publish_all(session, config, at=now())
        await session.commit()
    assert sorted(p.entity_key for p in published) == ["a.example", "b.example"]
    async with make_sessionmaker(engine)() as session:
        assert await feeds.publish_all(session, config, at=now()) == []
        await session.execute(DomainBlock.__table__.delete().where(DomainBlock.domain == "a.example"))
        published = await feeds.publish_all(session, config, at=now())
        await session.commit()
    assert [(p.type, p.entity_key) for p in published] == [("Retraction", "a.example")]


async def test_feed_publish__push_hint_queues_one_update_per_transaction(
    aiohttp_client: Any, tmp_path: Path, db_url: str, engine: Any, make_user: Any
) -> None:
    config = make_config(tmp_path, db_url, moderation={"feed_push_to": ["friend.example"]})
    client = await aiohttp_client(create_app(config, engine=engine))
    boss = await make_user("boss", role="admin", scopes=ADMIN_SCOPES)
    response = await client.post(B, json={"domain": "bad.example", "severity": "suspend"}, headers=boss.headers)
    assert response.status == 200
    async with make_sessionmaker(engine)() as session:
        [activity] = list(await session.scalars(select(OutboxActivity)))
        body = json.loads(activity.body)
        assert body["type"] == "Update" and body["actor"] == "http://127.0.0.1:8080/actor"
        assert body["object"] == "http://127.0.0.1:8080/moderation/feeds/public/changes"
        [delivery] = list(await session.scalars(select(Delivery)))
        assert delivery.inbox_url == "https://friend.example/inbox"


async def test_feed_publish__disabled_publishes_nothing(
    aiohttp_client: Any, tmp_path: Path, db_url: str, engine: Any, make_user: Any
) -> None:
    config = make_config(tmp_path, db_url, moderation={"feed_enabled": False})
    client = await aiohttp_client(create_app(config, engine=engine))
    boss = await make_user("boss", role="admin", scopes=ADMIN_SCOPES)
    assert (await client.post(B, json={"domain": "bad.example"}, headers=boss.headers)).status == 200
    async with make_sessionmaker(engine)() as session:
        assert list(await session.scalars(select(FeedEntry))) == []


async def test_feed_publish__tombstone_api_is_for_admins(client: Any, make_user: Any, engine: Any) -> None:
    boss = await admin(make_user)
    moderator = await make_user("mod", role="moderator", scopes=ADMIN_SCOPES)
    member = await make_user("member", scopes=ADMIN_SCOPES)
    await block(client, boss, domain="bad.example", severity="suspend", public_comment="Spam")
    url = "/api/v1/hearthside/feed/tombstones"
    for someone in (member, moderator):
        response = await client.post(url, json={"entity": "bad.example"}, headers=someone.headers)
        assert response.status == 403
    assert (await client.post(url, json={"entity": "bad.example"})).status == 401
    error = await client.post(url, json={"entity": "*.example"}, headers=boss.headers)
    assert error.status == 422 and (await error.json())["error"].startswith("entity: ")
    assert (await client.post(url, json={"entity": "never.example"}, headers=boss.headers)).status == 404
    assert len(await all_changes(client)) == 1  # nothing written by the refused calls
    response = await client.post(url, json={"entity": "bad.example"}, headers=boss.headers)
    assert response.status == 200
    answer = await response.json()
    assert [e.type for e in await verified(client)] == ["Tombstone"]
    assert answer["entity_key"] == "bad.example"
    async with make_sessionmaker(engine)() as session:
        audit = await session.scalar(select(AuditEntry).where(AuditEntry.action == "feed.tombstone"))
        assert audit is not None and audit.actor_account_id == boss.account_id and audit.target == "bad.example"


def test_feed_publish__instance_actor_lists_moderation_keys(tmp_path: Path) -> None:
    from crypto.keys import generate_ed25519
    from crypto.signing import PublicKey
    from moderation.feed import PublisherKey
    from server.actor_documents import instance_actor_document
    from server.actor_keys import instance_keys

    config = make_config(tmp_path)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    published = [
        PublisherKey(
            id=f"http://127.0.0.1:8080/actor#moderation-key-{i}",
            public_key=PublicKey.from_pem(generate_ed25519().public_pem),
            created=t0,
            revoked=t0 + timedelta(days=1) if i == 0 else None,
        )
        for i in range(2)
    ]
    document = instance_actor_document(config, instance_keys(config), published)
    methods = document["assertionMethod"]
    assert methods[0]["id"].endswith("#ed25519-key")
    assert [m["id"] for m in methods[1:]] == [k.id for k in published]
    assert all(m["type"] == "Multikey" and m["controller"] == document["id"] for m in methods)
    assert "revoked" in methods[1] and "revoked" not in methods[2]
