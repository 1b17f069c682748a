"""Reports of end-to-end encrypted messages in the ordinary moderation queue (Mastodon's admin
report API; docs/moderation.md, docs/e2ee.md "Franking").

A member reveals received messages with ``POST /api/v1/hearthside/e2ee/reports``; the report
then lives its whole life in ``/api/v1/admin/reports``: the moderator reads the revealed
messages there (``hearthside_encrypted_messages``, each with whether its franking verified),
updates it, acts on the sender with the report named, and the reporter is told. Only what the
reporter revealed is ever shown, and no message text reaches the logs.

Members are played by the client devices of ``tests/test_e2ee_api.py`` (vodozemac accounts with
their own ``crypto`` tokens and a signed device list); messages are franked and stamped by the
real send endpoint. The ciphertexts are opaque bytes: the server never opens them.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import async_sessionmaker
from test_e2ee_api import CRYPTO_SCOPES, E, Member, ciphertext, inbox, ok

from crypto.encoding import b64encode
from crypto.envelope import new_message
from crypto.franking import franking_tag, new_franking_key
from crypto.sealing import new_sealing_key, seal
from server.config import ConfigError, parse_config
from server.entities import iso
from server.models import AuditEntry, E2EEReportMessage, Report
from server.openapi import build_document
from server.reports import REVEALED_EXPIRED, VIEWED_MESSAGES, expire_revealed
from server.web import now

STAFF = "read write follow admin:read admin:write"
ADMIN = "/api/v1/admin/reports"
ENTRY_FIELDS = {"object_id", "message_id", "type", "from", "to", "created", "content", "verified"}


def admin_report_schema() -> dict[str, Any]:
    """The admin report entity as the OpenAPI document describes it (the forward endpoint's
    answer), so the document cannot drift from what the queue returns."""
    document = build_document()
    operation = document["paths"]["/api/v1/hearthside/admin/reports/{id}/forward"]["post"]
    schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    return {"components": document["components"], **schema}


ADMIN_REPORT = Draft202012Validator(admin_report_schema())


async def e2ee_member(client: Any, engine: Any, config: Any, make_user: Any, name: str, **kwargs: Any) -> Member:
    """A member with one active device (its first, holding the master key)."""
    person = Member(client, engine, config, await make_user(name, scopes=CRYPTO_SCOPES, **kwargs))
    await person.first_device()
    return person


async def send(client: Any, sender: Member, recipient: Member, text: str) -> dict[str, Any]:
    """Send ``text`` (franked, stamped by the server) and return what the recipient's client
    keeps to reveal it later: the message bytes, franking key and tag, and the stamps from
    the recipient's device inbox."""
    message = new_message(sender=sender.actor, recipient=recipient.actor, content=text, now=now())
    key = new_franking_key()
    tag = franking_tag(key, message.encoded)
    body = {"to": recipient.actor, "franking_tag": b64encode(tag), "ciphertexts": [ciphertext(recipient.listed[0])]}
    sent = await ok(await client.post(f"{E}/messages", json=body, headers=sender.listed[0].headers), 202)
    [row] = [r for r in await inbox(recipient.listed[0]) if r["object_id"] == sent["id"]]
    return {
        "object_id": row["object_id"],
        "message": b64encode(message.encoded),
        "franking_key": b64encode(key),
        "franking_tag": row["franking_tag"],
        "stamp": row["stamp"],
        "sender_stamp": row["sender_stamp"],
        "stamped_at": row["stamped_at"],
    }


async def report(client: Any, reporter: Member, revealed: list[dict[str, Any]], comment: str = "") -> str:
    body = {"comment": comment, "messages": revealed}
    answer = await ok(await client.post(f"{E}/reports", json=body, headers=reporter.listed[0].headers), 201)
    return str(answer["id"])


async def get(client: Any, user: Any, path: str, status: int = 200) -> Any:
    response = await client.get(path, headers=user.headers)
    assert response.status == status, await response.text()
    return await response.json()


def entity(reports: list[dict[str, Any]], report_id: str) -> dict[str, Any]:
    [found] = [r for r in reports if r["id"] == report_id]
    errors = [e.message for e in ADMIN_REPORT.iter_errors(found)]
    assert not errors, errors
    return found


@pytest.fixture
def people(client: Any, engine: Any, config: Any, make_user: Any) -> Any:
    """alice writes to bob (bob accepts everyone); mod is a moderator."""

    async def make() -> tuple[Member, Member, Any]:
        alice = await e2ee_member(client, engine, config, make_user, "alice")
        bob = await e2ee_member(client, engine, config, make_user, "bob")
        await ok(await client.patch(f"{E}/settings", json={"dm_policy": "everyone"}, headers=bob.user.headers))
        mod = await make_user("mod", role="moderator", scopes=STAFF)
        return alice, bob, mod

    return make


async def test_admin_reports__show_only_the_revealed_messages_to_staff(
    client: Any, people: Any, make_user: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    alice, bob, mod = await people()
    revealed_text = f"the words bob revealed {uuid.uuid4().hex}"
    kept_text = f"the words bob kept to himself {uuid.uuid4().hex}"
    shown = await send(client, alice, bob, revealed_text)
    await send(client, alice, bob, kept_text)
    e2ee_id = await report(client, bob, [shown], comment="please look")
    # An ordinary report next to it, from another member.
    carol = await make_user("carol")
    response = await client.post(
        "/api/v1/reports", json={"account_id": str(alice.user.account_id), "category": "spam"}, headers=carol.headers
    )
    assert response.status == 200, await response.text()
    plain_id = str((await response.json())["id"])

    listed = await get(client, mod, ADMIN)
    one = entity(listed, e2ee_id)
    assert one["category"] == "e2ee_message"
    assert one["target_account"]["id"] == str(alice.user.account_id)
    assert one["account"]["id"] == str(bob.user.account_id)
    [message] = one["hearthside_encrypted_messages"]
    assert set(message) == ENTRY_FIELDS
    assert message["object_id"] == shown["object_id"]
    assert (message["from"], message["to"]) == (alice.actor, bob.actor)
    assert message["content"] == revealed_text and message["verified"] is True
    assert entity(listed, plain_id)["hearthside_encrypted_messages"] == []
    single = await get(client, mod, f"{ADMIN}/{e2ee_id}")
    assert single["hearthside_encrypted_messages"] == [message]
    assert (await get(client, mod, f"{ADMIN}/{plain_id}"))["hearthside_encrypted_messages"] == []
    # The same view the separate E2EE endpoint gives.
    separate = await get(client, mod, f"{E}/reports/{e2ee_id}")
    assert separate["messages"] == [message]

    # Members (the reporter included) cannot read the queue.
    for member in (bob.user, carol):
        await get(client, member, ADMIN, 403)
        await get(client, member, f"{ADMIN}/{e2ee_id}", 403)
    reporter_view = await get(client, bob.user, "/api/v1/hearthside/reports")
    assert [r["id"] for r in reporter_view] == [e2ee_id]

    # Only what was revealed, in every answer; no message text in the logs.
    answers = f"{listed}{single}{separate}{reporter_view}"
    assert kept_text not in answers
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert revealed_text not in logged and kept_text not in logged
    opened = [r for r in caplog.records if r.name == "server.reports" and "revealed content seen" in r.getMessage()]
    assert opened and all(e2ee_id in r.getMessage() and plain_id not in r.getMessage() for r in opened)
    assert all(str(mod.account_id) in r.getMessage() for r in opened)


async def test_admin_reports__e2ee_report_through_its_whole_life(
    client: Any, people: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    alice, bob, mod = await people()
    text = f"something abusive {uuid.uuid4().hex}"
    report_id = await report(client, bob, [await send(client, alice, bob, text)])
    one = f"{ADMIN}/{report_id}"

    # Update without changing the category keeps Hearthside's category.
    for body in ({}, {"category": "e2ee_message"}, {"rule_ids": []}):
        response = await client.put(one, json=body, headers=mod.headers)
        assert response.status == 200, (body, await response.text())
        assert (await response.json())["category"] == "e2ee_message"
    # Assignment and the queue's filters treat it as any report.
    assigned = await (await client.post(f"{one}/assign_to_self", headers=mod.headers)).json()
    assert assigned["assigned_account"]["id"] == str(mod.account_id)
    assert [m["content"] for m in assigned["hearthside_encrypted_messages"]] == [text]
    for query in (f"target_account_id={alice.user.account_id}", f"account_id={bob.user.account_id}", ""):
        assert [r["id"] for r in await get(client, mod, f"{ADMIN}?{query}")] == [report_id], query
    assert await get(client, mod, f"{ADMIN}?resolved=true") == []

    # A warning to the sender naming the report resolves it as actioned.
    response = await client.post(
        f"/api/v1/admin/accounts/{alice.user.account_id}/action",
        json={"type": "none", "report_id": report_id, "text": "about your messages"},
        headers=mod.headers,
    )
    assert response.status == 200, await response.text()
    resolved = await get(client, mod, one)
    assert resolved["action_taken"] is True and resolved["outcome"] == "actioned"
    assert resolved["action_taken_by_account"]["id"] == str(mod.account_id)
    assert [r["id"] for r in await get(client, mod, f"{ADMIN}?resolved=true")] == [report_id]
    assert await get(client, mod, ADMIN) == []
    # The reporter sees the outcome and is told; the sender gets the strike.
    mine = await get(client, bob.user, f"/api/v1/hearthside/reports/{report_id}")
    assert mine["outcome"] == "actioned" and mine["category"] == "e2ee_message"
    notes = await get(client, bob.user, "/api/v1/notifications")
    assert [(n["type"], n["report"]["id"], n["report"]["outcome"]) for n in notes] == [
        ("hearthside.report_resolved", report_id, "actioned")
    ]
    assert "about your messages" not in str(notes) and text not in str(notes)
    assert [n["type"] for n in await get(client, alice.user, "/api/v1/notifications")] == ["moderation_warning"]

    # Reopened, then recategorised as a violation of a rule: the messages stay with it.
    reopened = await (await client.post(f"{one}/reopen", headers=mod.headers)).json()
    assert reopened["action_taken"] is False
    assert (await get(client, bob.user, f"/api/v1/hearthside/reports/{report_id}"))["outcome"] == "received"
    response = await client.post("/api/v1/hearthside/admin/rules", json={"text": "Be kind"}, headers=mod.headers)
    rule_id = (await response.json())["id"]
    response = await client.put(one, json={"category": "violation", "rule_ids": [rule_id]}, headers=mod.headers)
    assert response.status == 200, await response.text()
    updated = await response.json()
    assert updated["category"] == "violation" and [r["id"] for r in updated["rules"]] == [rule_id]
    assert [m["content"] for m in updated["hearthside_encrypted_messages"]] == [text]
    # A report with revealed messages can be set back to e2ee_message (the rules go with
    # "violation"); a report of anything else never becomes one.
    response = await client.put(one, json={"category": "e2ee_message"}, headers=mod.headers)
    assert response.status == 200, await response.text()
    back = await response.json()
    assert back["category"] == "e2ee_message" and back["rules"] == []
    assert [m["content"] for m in back["hearthside_encrypted_messages"]] == [text]
    response = await client.post(
        "/api/v1/reports", json={"account_id": str(alice.user.account_id)}, headers=bob.user.headers
    )
    plain_id = (await response.json())["id"]
    response = await client.put(f"{ADMIN}/{plain_id}", json={"category": "e2ee_message"}, headers=mod.headers)
    assert response.status == 422, await response.text()
    error = (await response.json())["error"]
    assert error.startswith("category") and "e2ee_message" not in error
    assert (await get(client, mod, f"{ADMIN}/{plain_id}"))["category"] == "other"

    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert text not in logged


async def test_admin_reports__a_message_that_cannot_be_opened_is_marked_not_dropped(
    client: Any, engine: Any, people: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    alice, bob, mod = await people()
    texts = [f"first {uuid.uuid4().hex}", f"second {uuid.uuid4().hex}"]
    revealed = [await send(client, alice, bob, t) for t in texts]
    report_id = await report(client, bob, revealed)
    # The second row sealed under another key (a lost or replaced key file, say).
    async with async_sessionmaker(engine)() as session:
        rows = list(
            await session.scalars(
                select(E2EEReportMessage)
                .where(E2EEReportMessage.report_id == int(report_id))
                .order_by(E2EEReportMessage.id)
            )
        )
        await session.execute(
            update(E2EEReportMessage)
            .where(E2EEReportMessage.id == rows[1].id)
            .values(sealed=seal(new_sealing_key(), b"{}"))
        )
        await session.commit()
    shown = await get(client, mod, f"{ADMIN}/{report_id}")
    assert shown["hearthside_encrypted_messages"] == [
        {
            "object_id": revealed[0]["object_id"],
            "message_id": shown["hearthside_encrypted_messages"][0]["message_id"],
            "type": "Note",
            "from": alice.actor,
            "to": bob.actor,
            "created": shown["hearthside_encrypted_messages"][0]["created"],
            "content": texts[0],
            "verified": True,
        },
        {"object_id": revealed[1]["object_id"], "verified": False, "error": "cannot be opened"},
    ]
    entity([shown], report_id)
    assert (await get(client, mod, f"{E}/reports/{report_id}"))["messages"] == shown["hearthside_encrypted_messages"]
    assert not any(t in r.getMessage() for r in caplog.records for t in texts)


async def test_admin_reports__staff_are_notified_of_an_e2ee_report(client: Any, people: Any) -> None:
    alice, bob, mod = await people()
    report_id = await report(client, bob, [await send(client, alice, bob, "hello")])
    notes = await get(client, mod, "/api/v1/notifications")
    assert [(n["type"], n["report"]["id"]) for n in notes] == [("admin.report", report_id)]


async def test_e2ee_report__comment_with_a_nul_is_refused_naming_the_field(
    client: Any, engine: Any, people: Any
) -> None:
    """PostgreSQL text cannot hold a NUL: the comment is refused (422), not a 500 at the insert,
    and nothing is filed (the class of input tests/test_e2ee_openapi_fuzz.py found in actors)."""
    alice, bob, _mod = await people()
    body = {"comment": "look\x00", "messages": [await send(client, alice, bob, "hello")]}
    response = await client.post(f"{E}/reports", json=body, headers=bob.listed[0].headers)
    assert response.status == 422, await response.text()
    assert (await response.json())["error"].startswith("comment: must not contain NUL")
    async with engine.connect() as conn:
        assert (await conn.execute(select(E2EEReportMessage.id))).all() == []


async def audit_rows(engine: Any, action: str) -> list[AuditEntry]:
    async with async_sessionmaker(engine)() as session:
        return list(
            await session.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id))
        )


async def test_who_saw_revealed_messages_is_on_record_once_an_hour_and_never_what(
    client: Any, engine: Any, make_user: Any, people: Any
) -> None:
    """research/e2ee.md §7.6: revealed private messages are read with an access audit log. Every
    view that shows them (the admin queue's list and entity, the E2EE report view) puts the
    viewer on record: one entry per moderator, report and hour, with ids and counts only."""
    alice, bob, mod = await people()
    other = await make_user("mod2", role="moderator", scopes=STAFF)
    text = f"words only bob was meant to read {uuid.uuid4().hex}"
    report_id = await report(client, bob, [await send(client, alice, bob, text)])
    plain = await ok(
        await client.post("/api/v1/reports", json={"account_id": str(alice.user.account_id)}, headers=bob.user.headers),
        200,
    )
    assert await audit_rows(engine, VIEWED_MESSAGES) == []  # filing is not seeing

    await get(client, mod, f"{ADMIN}/{report_id}")
    await get(client, mod, ADMIN)
    await get(client, mod, f"/api/v1/hearthside/e2ee/reports/{report_id}")
    await get(client, mod, f"{ADMIN}/{plain['id']}")  # nothing revealed there: nothing to record
    [entry] = await audit_rows(engine, VIEWED_MESSAGES)
    assert (entry.actor_account_id, entry.target_type, entry.target) == (mod.account_id, "report", report_id)
    assert entry.details == {"messages": 1, "via": "admin_reports"}
    # Another moderator is on record too; an hour later the first is again.
    await get(client, other, f"/api/v1/hearthside/e2ee/reports/{report_id}")
    async with async_sessionmaker(engine)() as session:
        await session.execute(
            update(AuditEntry).where(AuditEntry.id == entry.id).values(created_at=now() - timedelta(minutes=61))
        )
        await session.commit()
    await get(client, mod, ADMIN)
    rows = await audit_rows(engine, VIEWED_MESSAGES)
    assert [(r.actor_account_id, r.details["via"]) for r in rows] == [
        (mod.account_id, "admin_reports"),
        (other.account_id, "e2ee_report"),
        (mod.account_id, "admin_reports"),
    ]
    # Staff read the record through the audit API; it never holds the words.
    listed = await get(client, mod, "/api/v1/hearthside/admin/audit")
    assert text not in str(listed) and text not in str([r.details for r in rows])


async def test_revealed_messages_are_deleted_after_retention_once_resolved(
    client: Any, engine: Any, config: Any, people: Any
) -> None:
    """``[e2ee] revealed_retention_days`` (90) after a report is resolved, the retention worker
    deletes the messages revealed in it; open reports keep theirs however old, and so do
    reports resolved more recently. The deletion is on record, and the views say when."""
    alice, bob, mod = await people()
    old = await report(client, bob, [await send(client, alice, bob, "resolved long ago")], "old")
    recent = await report(client, bob, [await send(client, alice, bob, "resolved lately")], "recent")
    still_open = await report(client, bob, [await send(client, alice, bob, "still open")], "open")
    for report_id in (old, recent):
        await ok(await client.post(f"{ADMIN}/{report_id}/resolve", headers=mod.headers), 200)
    moment = now()
    async with async_sessionmaker(engine)() as session:
        for report_id, days in ((old, 91), (recent, 89)):
            await session.execute(
                update(Report).where(Report.id == int(report_id)).values(action_taken_at=moment - timedelta(days=days))
            )
        await session.execute(
            update(Report).where(Report.id == int(still_open)).values(created_at=moment - timedelta(days=400))
        )
        await session.commit()

    async with async_sessionmaker(engine)() as session:
        assert await expire_revealed(session, config, moment) == 1
        await session.commit()
        assert await expire_revealed(session, config, moment) == 0  # nothing twice
    async with async_sessionmaker(engine)() as session:
        kept = {r.report_id for r in await session.scalars(select(E2EEReportMessage))}
    assert kept == {int(recent), int(still_open)}
    [entry] = await audit_rows(engine, REVEALED_EXPIRED)
    assert (entry.actor_account_id, entry.source, entry.target) == (None, "retention", old)
    assert entry.details == {"messages": 1, "retention_days": 90}

    shown = entity([await get(client, mod, f"{ADMIN}/{old}")], old)
    assert shown["hearthside_encrypted_messages"] == []
    assert shown["hearthside_encrypted_messages_deleted_at"] == iso(entry.created_at)
    view = await get(client, mod, f"/api/v1/hearthside/e2ee/reports/{old}")
    assert view["messages"] == [] and view["messages_deleted_at"] == iso(entry.created_at)
    kept_view = await get(client, mod, f"/api/v1/hearthside/e2ee/reports/{recent}")
    assert [m["content"] for m in kept_view["messages"]] == ["resolved lately"] and kept_view[
        "messages_deleted_at"
    ] is None


def test_revealed_retention_is_at_least_thirty_days() -> None:
    """Appeals of a strike come within 20 days; the evidence must outlast them."""
    with pytest.raises(ConfigError, match=r"e2ee\.revealed_retention_days: must be at least 30"):
        parse_config({"e2ee": {"revealed_retention_days": 10}}, env={})
    assert parse_config({"e2ee": {"revealed_retention_days": 30}}, env={}).get("e2ee", "revealed_retention_days") == 30
