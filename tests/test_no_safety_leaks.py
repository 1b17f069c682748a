"""Nothing about crisis detection leaves the instance (issue 6 item 9; research/moderation.md
§6.c test 34).

Members post texts the crisis detector matches (English, Russian, French, method detail), a
concern report is filed, and then every outgoing path is collected: the federated activities
(Create, Update, Announce, Delete, and the Flag a moderator forwards), every stored outbox body
and delivery row, the ActivityPub documents and outbox collection, the signed decision feeds
(public over HTTP; every stored entry, partner audience included), the member's account export,
the blocklist CSV export and the FIRES CSV set. None may carry a crisis flag, level, lexicon
match, explanation, support panel or queue data: JSON keys are checked structurally, and the
serialized text for the markers the crisis state really holds (explanations, the support
message, helpline names, and the word "crisis", which no post here contains).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import make_config
from sqlalchemy import select

from server.config import Config
from server.db import make_sessionmaker
from server.ids import new_id
from server.models import Account, Delivery, FeedEntry, Follow, OutboxActivity, Status
from server.web import now

STAFF = "read write follow admin:read admin:write"
API = "/api/v1"
CRISIS = {
    "en": "I want to kill myself tonight",
    "ru": "я хочу покончить с собой",
    "fr": "je veux me suicider",
}
METHOD = "I have been stockpiling pills to overdose"
FORBIDDEN_KEYS = {
    "crisis",
    "crisis_level",
    "hearthside_support",
    "hearthside_crisis",
    "level",
    "explanation",
    "matched",
    "matches",
    "method_detail",
    "lexicon",
    "classifier",
    "risk",
}


@pytest.fixture
def config(tmp_path: Path, db_url: str) -> Config:
    # No delivery workers: every federated activity stays in the tables to be read.
    return make_config(tmp_path, db_url, server={"workers": False})


async def _remote(engine: Any, name: str, *, follows: int | None = None) -> int:
    async with make_sessionmaker(engine)() as session:
        moment = now()
        remote = Account(
            id=new_id(),
            username=name,
            username_lower=name,
            domain="remote.example",
            uri=f"https://remote.example/users/{name}",
            inbox_url=f"https://remote.example/users/{name}/inbox",
            shared_inbox_url="https://remote.example/inbox",
            created_at=moment,
            updated_at=moment,
        )
        session.add(remote)
        await session.flush()
        if follows is not None:
            session.add(
                Follow(id=new_id(), account_id=remote.id, target_account_id=follows, remote=True, created_at=moment)
            )
        await session.commit()
        return remote.id


async def _remote_post(engine: Any, account_id: int, text: str) -> int:
    async with make_sessionmaker(engine)() as session:
        status = Status(
            id=new_id(),
            account_id=account_id,
            visibility="public",
            text=text,
            content=f"<p>{text}</p>",
            uri=f"https://remote.example/notes/{new_id()}",
            local=False,
            created_at=now(),
        )
        session.add(status)
        await session.commit()
        return status.id


async def _ok(response: Any) -> Any:
    assert response.status == 200, (str(response.url), response.status, await response.text())
    return await response.read()


def _keys(value: Any) -> set[str]:
    """Every object key anywhere in a JSON value, lower-cased."""
    found: set[str] = set()
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            found |= {str(k).lower() for k in item}
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def _check(where: str, text: str, markers: set[str]) -> None:
    folded = text.casefold()
    for marker in markers:
        assert marker.casefold() not in folded, f"{where} carries {marker!r}"
    try:
        document = json.loads(text)
    except ValueError:
        return  # CSV
    leaked = _keys(document) & FORBIDDEN_KEYS
    assert not leaked, f"{where} has keys {sorted(leaked)}"


async def test_no_safety_leaks__no_outgoing_path_carries_crisis_data(
    client: Any, make_user: Any, engine: Any, config: Config
) -> None:
    from server import blocklists
    from server.models import CrisisItem

    admin = await make_user("boss", role="admin", scopes=STAFF)
    author = await make_user("author")
    booster = await make_user("booster")
    worried = await make_user("worried")
    await _remote(engine, "follower", follows=author.account_id)
    await _remote(engine, "follower2", follows=booster.account_id)

    # Crisis posts in three languages, one with method detail; an edit; a boost; a deletion.
    support_messages: set[str] = set()
    posted: list[str] = []
    for lang, text in [*CRISIS.items(), ("en", METHOD)]:
        response = await client.post(f"{API}/statuses", json={"status": text, "language": lang}, headers=author.headers)
        body = await response.json()
        assert response.status == 200, body
        posted.append(body["id"])
        support = body.get("hearthside_support")
        assert support, f"the detector did not match {lang}: the test would prove nothing"
        support_messages.add(json.dumps(support, ensure_ascii=False))
        support_messages.add(str(support.get("message", ""))[:40])
        for line in support.get("helplines", []):
            support_messages.add(str(line.get("name", "")))
    edit = await client.put(
        f"{API}/statuses/{posted[0]}", json={"status": "I want to end my life, nothing helps"}, headers=author.headers
    )
    assert edit.status == 200
    assert (await client.post(f"{API}/statuses/{posted[1]}/reblog", headers=booster.headers)).status == 200
    assert (await client.delete(f"{API}/statuses/{posted[2]}", headers=author.headers)).status == 200
    # A concern report about the author (responders only).
    concern = await client.post(
        "/api/v1/hearthside/concerns",
        json={"account_id": str(author.account_id), "comment": "worried about them"},
        headers=worried.headers,
    )
    assert concern.status in (200, 201), await concern.text()

    # A remote account's crisis-like post, reported and forwarded as a Flag.
    far = await _remote(engine, "faraway")
    far_post = await _remote_post(engine, far, CRISIS["en"])
    report = await client.post(
        f"{API}/reports",
        json={"account_id": str(far), "status_ids": [str(far_post)], "comment": "please look", "forward": True},
        headers=worried.headers,
    )
    report_id = (await report.json())["id"]
    forwarded = await client.post(
        f"/api/v1/hearthside/admin/reports/{report_id}/forward",
        json={"comment": "reported by a member", "status_ids": [str(far_post)]},
        headers=admin.headers,
    )
    assert forwarded.status == 200, await forwarded.text()
    # Feed entries: a domain block (public) and a suspended remote account (partners).
    block = await client.post(
        f"{API}/admin/domain_blocks",
        json={"domain": "bad.example", "severity": "suspend", "public_comment": "spam"},
        headers=admin.headers,
    )
    assert block.status == 200, await block.text()
    suspended = await client.post(
        f"{API}/admin/accounts/{far}/action", json={"type": "suspend", "text": "harm"}, headers=admin.headers
    )
    assert suspended.status == 200, await suspended.text()

    async with make_sessionmaker(engine)() as session:
        items = list(await session.scalars(select(CrisisItem)))
        outbox = list(await session.scalars(select(OutboxActivity)))
        deliveries = list(await session.scalars(select(Delivery)))
        entries = list(await session.scalars(select(FeedEntry)))
    assert len([i for i in items if i.kind == "post"]) >= 3, "no crisis items: the test would prove nothing"
    markers = {m for m in support_messages if len(m) >= 6}
    markers |= {i.explanation for i in items if len(i.explanation) >= 6}
    markers |= {"crisis", "hearthside_support"}
    explanations = [i.explanation for i in items if i.explanation]
    assert explanations, "no explanations recorded: the markers would prove nothing"
    # The checks can fail: a Create carrying an explanation, or a "level" key, is caught.
    create = json.loads(next(a.body for a in outbox if a.activity_type == "Create"))
    with pytest.raises(AssertionError):
        _check("planted", json.dumps({**create, "summary": explanations[0]}), markers)
    with pytest.raises(AssertionError):
        _check("planted", json.dumps({**create, "object": {**create["object"], "level": "high"}}), set())

    # Federated activities: every kind the scenario makes is there, and clean.
    kinds = {a.activity_type for a in outbox}
    assert {"Create", "Update", "Announce", "Delete", "Flag"} <= kinds, kinds
    for activity in outbox:
        _check(f"outbox {activity.activity_type}", activity.body, markers)
    for delivery in deliveries:
        row = {c.name: getattr(delivery, c.name) for c in Delivery.__table__.columns}
        _check("delivery row", json.dumps(row, default=str), markers)
    # Signed decision feeds: every stored entry (both audiences), and the public feed over HTTP.
    assert {e.audience for e in entries} >= {"public", "partners"}, {e.audience for e in entries}
    for entry in entries:
        _check(f"feed entry {entry.entry_type}", entry.document, markers)
    dataset = json.loads(await _ok(await client.get("/moderation/feeds/public")))
    _check("feed dataset", json.dumps(dataset), markers)
    _check("feed snapshot", (await _ok(await client.get("/moderation/feeds/public/snapshot"))).decode(), markers)
    _check("feed changes", (await _ok(await client.get("/moderation/feeds/public/changes"))).decode(), markers)
    # ActivityPub documents served to anyone.
    ap = {"Accept": "application/activity+json"}
    for status_id in (posted[0], posted[3]):
        note = await client.get(f"/users/author/statuses/{status_id}", headers=ap)
        _check("Note document", (await _ok(note)).decode(), markers)
    outbox_page = await client.get("/users/author/outbox?page=true", headers=ap)
    _check("outbox collection", (await _ok(outbox_page)).decode(), markers)
    # Exports: the member's own archive, the blocklist CSV, the FIRES CSV set.
    archive = await client.get("/api/v1/hearthside/account/export", headers=author.headers)
    _check("account export", (await _ok(archive)).decode(), markers)
    async with make_sessionmaker(engine)() as session:
        csv_text = await blocklists.export(session)
        decisions = await blocklists.current(session)
    _check("blocklist CSV", csv_text, markers)
    from moderation.fires import Decision, export_fires_csv_set

    fires = export_fires_csv_set(
        Decision(d.domain, d.severity, d.reject_media, d.reject_reports, public_comment=d.public_comment)
        for d in decisions.values()
    )
    for name, text in fires.items():
        _check(f"FIRES {name}", text, markers)
    assert "bad.example" in csv_text and "bad.example" in fires["domain-denylist.csv"]
