"""The crisis queue (research/moderation.md §6.c test 28): a published local post that may
indicate a crisis becomes a high-priority item with a visible response-time target, seen only
by trained responders and admins; acknowledge / escalate / resolve / dismiss (a reason
required), every step audited; responders are told of new items."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import make_config
from sqlalchemy import select

from server.config import Config
from server.db import make_sessionmaker
from server.ids import new_id
from server.models import Account, AuditEntry, CrisisItem, Follow, Notification, OutboxActivity
from server.web import now

STAFF = "read write follow admin:read admin:write"
RUNBOOK = "Call the on-call lead on the staff line; emergency services if life is at risk."
CRISIS = {"en": "I want to kill myself", "ru": "я хочу покончить с собой", "fr": "je veux me suicider"}
HARMLESS = "this exam is killing me, see you at the library"
QUEUE = "/api/v1/hearthside/admin/crisis"


def safety_config(tmp_path: Path, db_url: str, **safety: Any) -> Config:
    values = {"response_target_minutes": 30, "escalation_runbook": RUNBOOK, **safety}
    return make_config(tmp_path, db_url, safety=values, server={"workers": False})


@pytest.fixture
def config(tmp_path: Path, db_url: str) -> Config:
    return safety_config(tmp_path, db_url)


# ---------------------------------------------------------------------------- helpers (shared by the safety tests)


async def rows(engine: Any, model: Any, *where: Any) -> list[Any]:
    async with make_sessionmaker(engine)() as session:
        return list(await session.scalars(select(model).where(*where)))


async def post(client: Any, user: Any, text: str, **extra: Any) -> dict[str, Any]:
    response = await client.post("/api/v1/statuses", json={"status": text, **extra}, headers=user.headers)
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def call(client: Any, method: str, path: str, user: Any, expect: int = 200, **kwargs: Any) -> Any:
    response = await client.request(method, path, headers=user.headers, **kwargs)
    assert response.status == expect, (path, response.status, await response.text())
    return await response.json()


async def responder(client: Any, make_user: Any, admin: Any, name: str = "responder") -> Any:
    """A moderator with the trained-responder flag, set by an admin through the API."""
    user = await make_user(name, role="moderator", scopes=STAFF)
    path = f"/api/v1/hearthside/admin/accounts/{user.account_id}/responder"
    body = await call(client, "POST", path, admin, json={"trained": True})
    assert body["trained_responder"] is True
    return user


async def add_remote_follower(engine: Any, account_id: int) -> None:
    """A follower on another instance, so anything the post federates is really written."""
    async with make_sessionmaker(engine)() as session:
        moment = now()
        remote = Account(
            id=new_id(), username="far", username_lower="far", domain="remote.example",
            uri="https://remote.example/users/far", inbox_url="https://remote.example/users/far/inbox",
            shared_inbox_url="https://remote.example/inbox", created_at=moment, updated_at=moment,
        )  # fmt: skip
        session.add(remote)
        await session.flush()
        session.add(
            Follow(id=new_id(), account_id=remote.id, target_account_id=account_id, remote=True, created_at=moment)
        )
        await session.commit()


# ---------------------------------------------------------------------------- tests


@pytest.mark.parametrize("lang", ["en", "ru", "fr"])
async def test_crisis_queue__crisis_post_is_a_high_priority_item_with_a_target(
    client: Any, make_user: Any, engine: Any, lang: str
) -> None:
    admin = await make_user("admin", role="admin", scopes=STAFF)
    trained = await responder(client, make_user, admin)
    author = await make_user("author")
    before = now()
    status = await post(client, author, CRISIS[lang], language=lang)
    assert status["hearthside_support"] is not None  # the post stays up: it was published
    [item] = await call(client, "GET", QUEUE, trained)
    assert item["kind"] == "post" and item["state"] == "open"
    assert item["status"]["id"] == status["id"] and item["account"]["id"] == str(author.account_id)
    assert item["level"] in ("low", "high") and item["priority"] in (0, 1, 2)
    assert item["explanation"]  # for responders
    assert item["runbook"] == RUNBOOK
    assert item["overdue"] is False
    created = before.replace(microsecond=0)
    due_minutes = (
        (await rows(engine, CrisisItem))[0].due_at - (await rows(engine, CrisisItem))[0].created_at
    ) / timedelta(minutes=1)
    assert due_minutes == 30 and item["due_at"] > created.isoformat()[:19]
    # Responders (and admins) are told, with the item; the author is not.
    for user in (trained, admin):
        notes = await call(client, "GET", "/api/v1/notifications", user)
        [alert] = [n for n in notes if n["type"] == "hearthside.admin.crisis"]
        assert alert["hearthside_crisis_item"]["id"] == item["id"]
    author_notes = await call(client, "GET", "/api/v1/notifications", author)
    assert all(n["type"] != "hearthside.admin.crisis" for n in author_notes)


async def test_crisis_queue__ordinary_posts_and_hyperbole_make_no_item(
    client: Any, make_user: Any, engine: Any
) -> None:
    author = await make_user("author")
    for text in ("Lovely walk by the river today", HARMLESS):
        status = await post(client, author, text, language="en")
        assert "hearthside_support" not in status
    assert await rows(engine, CrisisItem) == []


async def test_crisis_queue__only_trained_responders_and_admins_see_it(client: Any, make_user: Any) -> None:
    admin = await make_user("admin", role="admin", scopes=STAFF)
    untrained = await make_user("mod", role="moderator", scopes=STAFF)
    member = await make_user("member", scopes=STAFF)
    author = await make_user("author")
    await post(client, author, CRISIS["en"], language="en")
    await call(client, "GET", QUEUE, untrained, expect=403)
    await call(client, "GET", QUEUE, member, expect=403)
    assert len(await call(client, "GET", QUEUE, admin)) == 1
    # No notification for the untrained moderator either.
    notes = await call(client, "GET", "/api/v1/notifications", untrained)
    assert all(n["type"] != "hearthside.admin.crisis" for n in notes)
    # Only admins set the flag, and only on staff.
    path = f"/api/v1/hearthside/admin/accounts/{untrained.account_id}/responder"
    await call(client, "POST", path, untrained, expect=403, json={"trained": True})
    error = await call(
        client, "POST", f"/api/v1/hearthside/admin/accounts/{member.account_id}/responder", admin, expect=422,
        json={"trained": True},
    )  # fmt: skip
    assert error["error"].startswith("trained")
    await call(client, "POST", path, admin, expect=422, json={})
    await call(client, "POST", path, admin, json={"trained": True})
    assert len(await call(client, "GET", QUEUE, untrained)) == 1
    await call(client, "POST", path, admin, json={"trained": False})
    await call(client, "GET", QUEUE, untrained, expect=403)


async def test_crisis_queue__steps_are_audited_and_dismissing_needs_a_reason(
    client: Any, make_user: Any, engine: Any
) -> None:
    admin = await make_user("admin", role="admin", scopes=STAFF)
    trained = await responder(client, make_user, admin)
    author = await make_user("author")
    await post(client, author, CRISIS["en"], language="en")
    await post(client, author, CRISIS["fr"], language="fr")
    first, second = await call(client, "GET", QUEUE, trained)
    one = f"{QUEUE}/{first['id']}"
    acked = await call(client, "POST", one + "/acknowledge", trained)
    assert acked["state"] == "acknowledged" and acked["assignee"]["id"] == str(trained.account_id)
    error = await call(client, "POST", one + "/acknowledge", trained, expect=422)
    assert error["error"].startswith("state")
    assert (await call(client, "POST", one + "/escalate", trained, json={"reason": "runbook step 2"}))[
        "state"
    ] == "escalated"
    assert (await call(client, "POST", one + "/resolve", trained))["state"] == "resolved"
    await call(client, "POST", one + "/dismiss", trained, expect=422, json={"reason": "late"})  # from resolved

    two = f"{QUEUE}/{second['id']}"
    for body in ({}, {"reason": "   "}):
        error = await call(client, "POST", two + "/dismiss", trained, expect=422, json=body)
        assert error["error"].startswith("reason")
    dismissed = await call(client, "POST", two + "/dismiss", trained, json={"reason": "song lyrics, checked"})
    assert dismissed["state"] == "dismissed" and dismissed["state_reason"] == "song lyrics, checked"
    assert await call(client, "GET", QUEUE, trained) == []  # only active items by default
    assert len(await call(client, "GET", QUEUE + "?state=dismissed", trained)) == 1
    await call(client, "GET", QUEUE + "?state=whatever", trained, expect=422)

    entries = await rows(engine, AuditEntry, AuditEntry.target_type == "crisis_item")
    actions = sorted(e.action for e in entries)
    assert actions == ["crisis.acknowledge", "crisis.dismiss", "crisis.escalate", "crisis.resolve"]
    assert all(e.actor_account_id == trained.account_id for e in entries)
    # Audit entries never hold what matched.
    for entry in entries:
        assert first["explanation"] not in str(entry.details) and "kill" not in str(entry.details)
    api = await call(client, "GET", "/api/v1/hearthside/admin/audit?target_type=crisis_item", admin)
    assert len(api) == 4
    # An untrained moderator cannot act.
    mod = await make_user("mod", role="moderator", scopes=STAFF)
    await call(client, "POST", two + "/resolve", mod, expect=403)


async def test_crisis_queue__ordered_by_priority_then_due_time_with_overdue(
    client: Any, make_user: Any, engine: Any
) -> None:
    admin = await make_user("admin", role="admin", scopes=STAFF)
    author = await make_user("author")
    moment = now()
    async with make_sessionmaker(engine)() as session:
        for priority, due in ((2, -50), (1, 30), (0, 45), (1, -5)):
            session.add(
                CrisisItem(
                    id=new_id(), kind="post", account_id=author.account_id, level="high", priority=priority,
                    created_at=moment, due_at=moment + timedelta(minutes=due), updated_at=moment,
                )
            )  # fmt: skip
        await session.commit()
    items = await call(client, "GET", QUEUE, admin)
    assert [(i["priority"], i["overdue"]) for i in items] == [(0, False), (1, True), (1, False), (2, True)]
    # Acknowledging stops the clock.
    await call(client, "POST", f"{QUEUE}/{items[1]['id']}/acknowledge", admin)
    assert [i["overdue"] for i in await call(client, "GET", QUEUE, admin)] == [False, False, False, True]


async def test_crisis_queue__a_responder_never_sees_an_item_about_themselves(client: Any, make_user: Any) -> None:
    admin = await make_user("admin", role="admin", scopes=STAFF)
    trained = await responder(client, make_user, admin)
    await post(client, trained, CRISIS["en"], language="en")
    assert await call(client, "GET", QUEUE, trained) == []
    [item] = await call(client, "GET", QUEUE, admin)
    await call(client, "GET", f"{QUEUE}/{item['id']}", trained, expect=404)
    notes = await call(client, "GET", "/api/v1/notifications", trained)
    assert all(n["type"] != "hearthside.admin.crisis" for n in notes)


async def test_crisis_queue__nothing_about_it_is_federated(client: Any, make_user: Any, engine: Any) -> None:
    author = await make_user("author")
    await add_remote_follower(engine, author.account_id)
    status = await post(client, author, CRISIS["en"], language="en")
    [create] = await rows(engine, OutboxActivity, OutboxActivity.activity_type == "Create")
    assert status["content"] and "kill myself" in create.body  # the post itself federates, as written
    for word in ("hearthside_support", "crisis", "explanation", status["hearthside_support"]["message"][:30]):
        assert word not in create.body
    [item] = await rows(engine, CrisisItem)
    assert item.explanation not in create.body
    assert await rows(engine, Notification, Notification.account_id != author.account_id) == []


async def test_crisis_queue__method_detail_is_marked_and_comes_first(client: Any, make_user: Any) -> None:
    admin = await make_user("admin", role="admin", scopes=STAFF)
    author = await make_user("author")
    await post(client, author, "I want to die", language="en")
    await post(client, author, CRISIS["en"], language="en")
    await post(client, author, "I have been stockpiling pills to overdose tonight", language="en")
    items = await call(client, "GET", QUEUE, admin)
    assert [(i["method_detail"], i["priority"]) for i in items] == [(True, 0), (False, 1), (False, 2)]
    assert [i["level"] for i in items] == ["high", "high", "low"]


async def test_crisis_queue__edits_are_scanned_again_without_duplicate_items(client: Any, make_user: Any) -> None:
    admin = await make_user("admin", role="admin", scopes=STAFF)
    author = await make_user("author")
    status = await post(client, author, HARMLESS)
    assert "hearthside_support" not in status and await call(client, "GET", QUEUE, admin) == []
    url = f"/api/v1/statuses/{status['id']}"
    edited = await call(client, "PUT", url, author, json={"status": CRISIS["en"]})
    assert edited["hearthside_support"]["helplines"] is not None  # the author's panel, in this answer
    [item] = await call(client, "GET", QUEUE, admin)
    assert item["status"]["id"] == status["id"]
    # still being handled: another matching edit adds no second item
    await call(client, "PUT", url, author, json={"status": CRISIS["en"] + " tonight"})
    assert len(await call(client, "GET", QUEUE, admin)) == 1
    # a harmless edit answers without the panel, as GET shows it
    calm = await call(client, "PUT", url, author, json={"status": HARMLESS})
    assert "hearthside_support" not in calm
    assert calm == await call(client, "GET", url, author)
