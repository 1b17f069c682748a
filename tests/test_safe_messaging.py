"""Safe messaging (research/moderation.md §6.c test 29): a post a trained responder confirms as
method detail or graphic self-harm is hidden pending review (not deleted, nothing federated),
its author gets a private supportive message with resources, and it can be shown again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_crisis_queue import CRISIS, QUEUE, STAFF, add_remote_follower, call, post, responder, rows, safety_config

from server.config import Config
from server.models import AuditEntry, CrisisItem, OutboxActivity, Status

SETTINGS = "/api/v1/hearthside/safety/settings"


@pytest.fixture
def config(tmp_path: Path, db_url: str) -> Config:
    return safety_config(tmp_path, db_url)


async def _queued(client: Any, make_user: Any, engine: Any, lang: str = "en") -> tuple[Any, Any, Any, Any, dict]:
    admin = await make_user("admin", role="admin", scopes=STAFF)
    trained = await responder(client, make_user, admin)
    author = await make_user("author")
    other = await make_user("other")
    await add_remote_follower(engine, author.account_id)
    status = await post(client, author, CRISIS[lang], language=lang)
    [item] = await call(client, "GET", QUEUE, trained)
    return admin, trained, author, other, {"item": item, "status": status}


async def test_safe_messaging__hidden_pending_review_and_author_supported(
    client: Any, make_user: Any, engine: Any
) -> None:
    admin, trained, author, other, found = await _queued(client, make_user, engine, "fr")
    await call(client, "PATCH", SETTINGS, author, json={"country": "FR"})
    status, item = found["status"], found["item"]
    outbox_before = len(await rows(engine, OutboxActivity))
    hidden = await call(client, "POST", f"{QUEUE}/{item['id']}/hide", trained, json={"reason": "method_detail"})
    assert hidden["status"]["hidden"] is True and hidden["status"]["hidden_reason"] == "method_detail"
    assert hidden["state"] == "acknowledged"

    # Hidden from everyone but its author and staff; not deleted.
    path = f"/api/v1/statuses/{status['id']}"
    await call(client, "GET", path, other, expect=404)
    assert (await client.get(path)).status == 404
    for viewer in (author, admin, trained):
        assert (await call(client, "GET", path, viewer))["id"] == status["id"]
    public = await (await client.get("/api/v1/timelines/public")).json()
    assert status["id"] not in [s["id"] for s in public]
    page = await call(client, "GET", f"/api/v1/accounts/{author.account_id}/statuses", other)
    assert status["id"] not in [s["id"] for s in page]
    [row] = await rows(engine, Status, Status.id == int(status["id"]))
    assert row.deleted_at is None and row.hidden_at is not None
    # Nothing federated: no Delete, no Update, nothing.
    assert len(await rows(engine, OutboxActivity)) == outbox_before

    # The author's private, supportive notice, with resources for their language and country.
    notes = await call(client, "GET", "/api/v1/notifications", author)
    [notice] = [n for n in notes if n["type"] == "hearthside.safety_support"]
    support = notice["hearthside_support"]
    assert support["kind"] == "post_hidden" and support["language"] == "fr"
    assert "n'a pas été supprimée" in support["message"] or "pas été supprimée" in support["message"]
    assert [h["phone"] for h in support["helplines"]] == ["3114"] and support["emergency"]
    assert notice["status"]["id"] == status["id"]
    assert all(
        n["type"] != "hearthside.safety_support" for n in await call(client, "GET", "/api/v1/notifications", other)
    )
    [entry] = await rows(engine, AuditEntry, AuditEntry.action == "status.hide")
    assert entry.actor_account_id == trained.account_id and entry.target == status["id"]

    # Shown again.
    shown = await call(client, "POST", f"{QUEUE}/{item['id']}/unhide", trained)
    assert shown["status"]["hidden"] is False
    assert (await call(client, "GET", path, other))["id"] == status["id"]
    assert len(await rows(engine, AuditEntry, AuditEntry.action == "status.unhide")) == 1
    await call(client, "POST", f"{QUEUE}/{item['id']}/unhide", trained, expect=422)
    assert len(await rows(engine, OutboxActivity)) == outbox_before


async def test_safe_messaging__hide_needs_a_responder_and_a_known_reason(
    client: Any, make_user: Any, engine: Any
) -> None:
    _admin, trained, author, other, found = await _queued(client, make_user, engine)
    hide = f"{QUEUE}/{found['item']['id']}/hide"
    for body in ({}, {"reason": "gross"}):
        error = await call(client, "POST", hide, trained, expect=422, json=body)
        assert error["error"].startswith("reason")
    untrained = await make_user("mod", role="moderator", scopes=STAFF)
    await call(client, "POST", hide, untrained, expect=403, json={"reason": "method_detail"})
    await call(client, "POST", hide, author, expect=403, json={"reason": "method_detail"})
    assert (await call(client, "GET", f"/api/v1/statuses/{found['status']['id']}", other))["id"]
    await call(client, "POST", hide, trained, json={"reason": "graphic_self_harm"})
    error = await call(client, "POST", hide, trained, expect=422, json={"reason": "graphic_self_harm"})
    assert error["error"].startswith("status")


async def test_safe_messaging__a_concern_without_a_post_has_nothing_to_hide(
    client: Any, make_user: Any, engine: Any
) -> None:
    admin = await make_user("admin", role="admin", scopes=STAFF)
    worried = await make_user("worried")
    subject = await make_user("subject")
    await call(client, "POST", "/api/v1/hearthside/concerns", worried, json={"account_id": str(subject.account_id)})
    [item] = await call(client, "GET", QUEUE, admin)
    error = await call(
        client, "POST", f"{QUEUE}/{item['id']}/hide", admin, expect=422, json={"reason": "method_detail"}
    )
    assert error["error"].startswith("status")
    assert (await rows(engine, CrisisItem))[0].state == "open"


async def test_safe_messaging__hidden_posts_leave_group_timelines_too(client: Any, make_user: Any, engine: Any) -> None:
    admin = await make_user("admin", role="admin", scopes=STAFF)
    trained = await responder(client, make_user, admin)
    author = await make_user("author")
    other = await make_user("other")
    group = await call(client, "POST", "/api/v1/hearthside/groups", author, json={"name": "calm_minds"})
    await call(client, "POST", f"/api/v1/hearthside/groups/{group['id']}/join", other)
    status = await post(client, author, f"@calm_minds {CRISIS['en']}")
    timeline = f"/api/v1/hearthside/groups/{group['id']}/timeline"
    assert status["id"] in [s["id"] for s in await call(client, "GET", timeline, other)]
    [item] = await call(client, "GET", QUEUE, trained)
    await call(client, "POST", f"{QUEUE}/{item['id']}/hide", trained, json={"reason": "method_detail"})
    assert status["id"] not in [s["id"] for s in await call(client, "GET", timeline, other)]
    anonymous = await client.get(timeline)
    assert status["id"] not in [s["id"] for s in await anonymous.json()]
    assert status["id"] in [s["id"] for s in await call(client, "GET", timeline, author)]
