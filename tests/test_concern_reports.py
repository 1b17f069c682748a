"""Concern reports (research/moderation.md §6.c test 30): "I'm worried about this person" goes
to trained responders only and never sends anything to the person (the Reddit Cares abuse
case); the reporter is visible to responders only; repeated concerns are rate-limited."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_crisis_queue import QUEUE, STAFF, add_remote_follower, call, post, responder, rows, safety_config

from server.config import Config
from server.models import AuditEntry, CrisisItem, Notification, OutboxActivity, PlaintextMessage

CONCERNS = "/api/v1/hearthside/concerns"


@pytest.fixture
def config(tmp_path: Path, db_url: str, request: pytest.FixtureRequest) -> Config:
    marker = request.node.get_closest_marker("safety")
    return safety_config(tmp_path, db_url, **(marker.kwargs if marker else {}))


async def test_concerns__reach_responders_only_and_nothing_reaches_the_subject(
    client: Any, make_user: Any, engine: Any
) -> None:
    admin = await make_user("admin", role="admin", scopes=STAFF)
    trained = await responder(client, make_user, admin)
    untrained = await make_user("mod", role="moderator", scopes=STAFF)
    worried = await make_user("worried")
    subject = await make_user("subject")
    await add_remote_follower(engine, subject.account_id)
    status = await post(client, subject, "Quiet week, not much to say")
    outbox_before = len(await rows(engine, OutboxActivity))

    body = await call(
        client, "POST", CONCERNS, worried,
        json={"account_id": str(subject.account_id), "status_id": status["id"], "comment": "she has been quiet"},
    )  # fmt: skip
    assert body["message"].startswith("Thank you") and "nothing is sent" in body["message"]
    [item] = await call(client, "GET", QUEUE, trained)
    assert item["kind"] == "concern" and item["level"] == "concern" and item["status"]["id"] == status["id"]
    assert item["reporter"]["id"] == str(worried.account_id) and item["comment"] == "she has been quiet"
    assert item["account"]["id"] == str(subject.account_id)
    await call(client, "GET", QUEUE, untrained, expect=403)

    # The subject: no notification, no message, nothing federated.
    assert await rows(engine, Notification, Notification.account_id == subject.account_id) == []
    assert await call(client, "GET", "/api/v1/notifications", subject) == []
    assert await rows(engine, PlaintextMessage) == []
    assert len(await rows(engine, OutboxActivity)) == outbox_before
    # Only responders are notified: not the untrained moderator, not the reporter.
    notified = {n.account_id for n in await rows(engine, Notification)}
    assert notified == {trained.account_id, admin.account_id}
    # A responder's step is audited without the reporter.
    await call(client, "POST", f"{QUEUE}/{item['id']}/acknowledge", trained)
    [entry] = await rows(engine, AuditEntry, AuditEntry.target_type == "crisis_item")
    assert str(worried.account_id) not in str(entry.details) + entry.reason + entry.target


async def test_concerns__rate_limited_per_reporter(client: Any, make_user: Any, engine: Any) -> None:
    worried = await make_user("worried")
    subjects = [await make_user(f"subject{i}") for i in range(4)]
    first = {"account_id": str(subjects[0].account_id)}
    await call(client, "POST", CONCERNS, worried, json=first)
    response = await client.post(CONCERNS, json=first, headers=worried.headers)
    assert response.status == 429
    assert "about this member" in (await response.json())["error"]
    assert 0 < int(response.headers["Retry-After"]) <= 24 * 3600
    for subject in subjects[1:3]:
        await call(client, "POST", CONCERNS, worried, json={"account_id": str(subject.account_id)})
    response = await client.post(CONCERNS, json={"account_id": str(subjects[3].account_id)}, headers=worried.headers)
    assert response.status == 429 and "in total" in (await response.json())["error"]
    assert len(await rows(engine, CrisisItem)) == 3
    # Another member may still raise a concern about the same person.
    other = await make_user("other")
    await call(client, "POST", CONCERNS, other, json=first)


async def test_concerns__bad_input_names_the_field(client: Any, make_user: Any, engine: Any) -> None:
    worried = await make_user("worried")
    subject = await make_user("subject")
    someone = await make_user("someone")
    others_post = await post(client, someone, "a post")
    cases = [
        ({}, "account_id"),
        ({"account_id": str(worried.account_id)}, "account_id"),
        ({"account_id": str(subject.account_id), "status_id": others_post["id"]}, "status_id"),
        ({"account_id": str(subject.account_id), "comment": "x" * 1001}, "comment"),
    ]
    for body, field in cases:
        error = await call(client, "POST", CONCERNS, worried, expect=422, json=body)
        assert error["error"].startswith(field), error
    await call(client, "POST", CONCERNS, worried, expect=404, json={"account_id": "123456789"})
    response = await client.post(CONCERNS, json={"account_id": str(subject.account_id)})
    assert response.status == 401
    assert await rows(engine, CrisisItem) == []


@pytest.mark.safety(concerns_per_day=1, concerns_per_subject_per_day=1)
async def test_concerns__limits_come_from_the_configuration(client: Any, make_user: Any, engine: Any) -> None:
    worried = await make_user("worried")
    one, two = await make_user("one"), await make_user("two")
    await call(client, "POST", CONCERNS, worried, json={"account_id": str(one.account_id)})
    response = await client.post(CONCERNS, json={"account_id": str(two.account_id)}, headers=worried.headers)
    assert response.status == 429 and "in total" in (await response.json())["error"]
    assert len(await rows(engine, CrisisItem)) == 1
