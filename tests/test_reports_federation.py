"""Reports across instances (research/moderation.md §6.c tests 23 and 24), between real
Hearthside instances on loopback: a member's report about a remote account leaves only when a
moderator forwards it (instance actor, moderator's comment, chosen posts, no reporter); an
incoming Flag becomes one report per local account named, unless reports are rejected."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from federation_harness import Instance, eventually, instances, post_as, resolve

from server.ids import new_id
from server.models import Account, InboxItem, OutboxActivity, Report

pytestmark = pytest.mark.timeout(120)
STAFF = "read write follow admin:read admin:write"


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[list[Instance]]:
    async for started in instances("sqlite", tmp_path, None):
        yield started


async def test_flag_out__only_after_a_moderator_forwards(pair: list[Instance]) -> None:
    """§6.c test 23."""
    a, b = pair
    alice = await a.user("alice")
    mod = await a.user("mod", role="moderator", scopes=STAFF)
    bob = await b.user("bob")
    kept = await b.api("POST", "/api/v1/statuses", bob, json={"status": "first bad post"})
    dropped = await b.api("POST", "/api/v1/statuses", bob, json={"status": "second post"})
    remote_bob = await resolve(a, alice, f"@bob@{b.domain}")
    ids = []
    for uri in (kept["uri"], dropped["uri"]):
        found = await a.api("GET", "/api/v2/search", alice, params={"q": uri, "resolve": "true", "type": "statuses"})
        ids.append(found["statuses"][0]["id"])
    report = await a.api(
        "POST", "/api/v1/reports", alice,
        json={"account_id": remote_bob["id"], "status_ids": ids, "comment": "alice's private words", "forward": True},
    )  # fmt: skip
    await asyncio.sleep(0.5)
    assert await a.rows(OutboxActivity, OutboxActivity.activity_type == "Flag") == []
    assert await b.rows(Report) == []
    [queued] = await a.api("GET", "/api/v1/admin/reports", mod)
    assert queued["forward_requested"] is True and queued["forwarded"] is False

    url = f"/api/v1/hearthside/admin/reports/{report['id']}/forward"
    answer = await a.api("POST", url, mod, expect=422, json={"comment": "c", "domains": ["elsewhere.example"]})
    assert answer["error"].startswith("domains")
    answer = await a.api("POST", url, mod, expect=422, json={"comment": "c", "status_ids": ["12345"]})
    assert answer["error"].startswith("status_ids")
    assert await a.rows(OutboxActivity, OutboxActivity.activity_type == "Flag") == []
    member_try = await a.api("POST", url, alice, expect=403, json={"comment": "c"})
    assert "error" in member_try

    forwarded = await a.api(
        "POST", url, mod, json={"comment": "Moderator summary", "status_ids": [ids[0]], "domains": [b.domain]}
    )
    assert forwarded["forwarded"] is True and forwarded["forwarded_to"] == [b.domain]
    [sent] = await a.rows(OutboxActivity, OutboxActivity.activity_type == "Flag")
    assert sent.account_id is None  # the instance actor
    assert "alice" not in sent.body and "private words" not in sent.body

    async def reported() -> list[Report]:
        return await b.rows(Report)

    [remote_report] = await eventually(reported, what="the forwarded report on B")
    [bob_account] = await b.rows(Account, Account.username == "bob", Account.domain == "")
    assert remote_report.target_account_id == bob_account.id
    assert remote_report.status_ids == [int(kept["id"])]
    assert remote_report.comment == "Moderator summary"
    assert remote_report.reporter_account_id is None and remote_report.origin_domain == a.domain
    log = await a.api("GET", "/api/v1/hearthside/admin/audit", mod, params={"action": "report.forward"})
    assert [e["target"] for e in log] == [report["id"]]


async def test_flag_out__local_targets_cannot_be_forwarded(pair: list[Instance]) -> None:
    a, _b = pair
    alice = await a.user("alice")
    carol = await a.user("carol")
    mod = await a.user("mod", role="moderator", scopes=STAFF)
    report = await a.api("POST", "/api/v1/reports", alice, json={"account_id": str(carol.account_id)})
    url = f"/api/v1/hearthside/admin/reports/{report['id']}/forward"
    answer = await a.api("POST", url, mod, expect=422, json={"comment": "x"})
    assert answer["error"].startswith("report")


async def test_flag_in__one_report_per_local_target_unless_rejected(pair: list[Instance]) -> None:
    """§6.c test 24."""
    a, b = pair
    alice = await a.user("alice")
    carol = await a.user("carol")
    mod = await a.user("mod", role="moderator", scopes=STAFF)
    await b.user("bob")
    alice_post = await a.api("POST", "/api/v1/statuses", alice, json={"status": "one"})
    carol_post = await a.api("POST", "/api/v1/statuses", carol, json={"status": "two"})
    carol_other = await a.api("POST", "/api/v1/statuses", carol, json={"status": "three"})

    def flag(objects: list[str]) -> dict[str, Any]:
        return {
            "@context": "https://www.w3.org/ns/activitystreams",
            "id": f"{b.actor('bob')}/flags/{new_id()}",
            "type": "Flag",
            "actor": b.actor("bob"),
            "object": objects,
            "content": "Please look",
        }

    first = flag([a.actor("alice"), alice_post["uri"], carol_post["uri"], carol_other["uri"]])
    assert await post_as(b, "bob", f"{a.base_url}/inbox", first) == 202

    async def two_reports() -> list[Report]:
        found = await a.rows(Report)
        return found if len(found) == 2 else []

    reports = await eventually(two_reports, what="two reports on A")
    by_target = {r.target_account_id: r for r in reports}
    assert by_target[alice.account_id].status_ids == [int(alice_post["id"])]
    assert by_target[carol.account_id].status_ids == [int(carol_post["id"]), int(carol_other["id"])]
    assert all(r.reporter_account_id is None and r.origin_domain == b.domain for r in reports)
    notes = await a.api("GET", "/api/v1/notifications", mod)
    assert [n["type"] for n in notes] == ["admin.report", "admin.report"]

    await a.api(
        "POST", "/api/v1/admin/domain_blocks", mod,
        json={"domain": b.host, "severity": "noop", "reject_reports": True},
    )  # fmt: skip
    second = flag([a.actor("alice")])
    assert await post_as(b, "bob", f"{a.base_url}/inbox", second) == 202

    async def processed() -> list[InboxItem]:
        return [i for i in await a.rows(InboxItem, InboxItem.activity_id == second["id"]) if i.state != "pending"]

    [item] = await eventually(processed, what="the second Flag processed")
    assert item.error == "reports_rejected_from_domain"
    assert len(await a.rows(Report)) == 2
