"""E2EE across two instances: the signed claim endpoint, the inbox rules for encrypted
messages, message policy across servers, reports (local verification and a forwarded
``Flag`` the sender's server verifies), and plaintext direct messages from other software.

Negative tests send what Hearthside's own client and outbox never send (unsigned, forged,
tampered, mis-addressed), signed as a real remote server would (research/e2ee.md §8(b), (c)).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from federation_harness import Instance, close_instance, eventually, instances, make_instance, post_as, signed_post
from test_e2ee_e2e import device, handle, mutual_follow, receive_until, talking

from crypto.encoding import b64decode, b64encode
from server.dm.client import DmError
from server.models import E2EEReportMessage, PlaintextMessage, Report, Status

PASSPHRASE = "another passphrase for the test store"


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[list[Instance]]:
    async for started in instances("sqlite", tmp_path, None):
        yield started


def claim_body(actor: str) -> bytes:
    return json.dumps(
        {
            "@context": ["https://www.w3.org/ns/activitystreams", {"e2ee": "urn:hearthside:e2ee#"}],
            "type": "e2ee:Claim",
            "actor": actor,
        }
    ).encode()


async def test_claim_endpoint__signed_by_the_claimant_and_policy_bound(pair: list[Instance], monkeypatch: Any) -> None:
    monkeypatch.setenv("HEARTHSIDE_DM_PASSPHRASE", PASSPHRASE)
    a, b = pair
    alice = await a.user("alice")
    bob = await b.user("bob")
    await b.user("mallory")
    await mutual_follow(a, alice, b, bob)
    alice1, _ = await device(a, "alice")
    try:
        url = f"{a.actor('alice')}/devices/{alice1.device.device_id}/claim"
        bob_uri = b.actor("bob")
        # Unsigned: 401 before anything is read.
        assert a.http is not None
        async with a.http.post(
            url, data=claim_body(bob_uri), headers={"Content-Type": "application/activity+json"}
        ) as r:
            assert r.status == 401
        # Signed by bob, naming bob: one one-time key, each handed out once.
        status, first = await signed_post(b, "bob", url, claim_body(bob_uri))
        assert status == 200, first
        status, second = await signed_post(b, "bob", url, claim_body(bob_uri))
        assert status == 200 and second["keyId"] != first["keyId"] and second["e2ee:fallback"] is False
        # Signed by bob but naming someone else, or a body changed after signing: refused.
        status, _ = await signed_post(b, "bob", url, claim_body(b.actor("mallory")))
        assert status == 401
        status, _ = await signed_post(b, "bob", url, claim_body(bob_uri), tamper=claim_body(bob_uri) + b" ")
        assert status in (400, 401)
        # Mallory does not follow alice and shares no group: the default policy refuses her.
        status, answer = await signed_post(b, "mallory", url, claim_body(b.actor("mallory")))
        assert status == 403, answer
        # A device that does not exist.
        status, _ = await signed_post(b, "bob", f"{a.actor('alice')}/devices/NOSUCHDEVICE/claim", claim_body(bob_uri))
        assert status == 404
    finally:
        await alice1.close()


async def test_claim_endpoint__rate_limited_per_claimant(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("HEARTHSIDE_DM_PASSPHRASE", PASSPHRASE)
    a = await make_instance("a", "127.0.0.2", "sqlite", tmp_path / "a", None, e2ee={"claims_per_minute": 3})
    b = await make_instance("b", "127.0.0.3", "sqlite", tmp_path / "b", None)
    try:
        alice = await a.user("alice")
        bob = await b.user("bob")
        await mutual_follow(a, alice, b, bob)
        alice1, _ = await device(a, "alice")
        url = f"{a.actor('alice')}/devices/{alice1.device.device_id}/claim"
        statuses = [(await signed_post(b, "bob", url, claim_body(b.actor("bob"))))[0] for _ in range(5)]
        assert statuses == [200, 200, 200, 429, 429]
        await alice1.close()
    finally:
        await close_instance(a, None)
        await close_instance(b, None)


def encrypted_create(sender: Instance, username: str, to: list[str], **changes: Any) -> dict[str, Any]:
    actor = sender.actor(username)
    object_id = f"{sender.base_url}/e2ee/messages/{secrets.randbelow(10**12)}"
    obj: dict[str, Any] = {
        "type": "e2ee:EncryptedMessage",
        "id": object_id,
        "attributedTo": actor,
        "to": to,
        "published": "2026-11-21T10:00:00Z",
        "e2ee:senderDevice": "DEVICE01",
        "mediaType": "application/vnd.hearthside.olm.v1",
        "encoding": "base64",
        "e2ee:ciphertexts": [{"e2ee:deviceId": "DEVICE02", "e2ee:messageType": 0, "content": b64encode(b"x" * 64)}],
        "e2ee:frankingTag": b64encode(b"t" * 32),
        "e2ee:frankingStamp": "k1." + b64encode(b"s" * 32),
        "e2ee:stampedAt": "2026-11-21T10:00:00Z",
    }
    activity: dict[str, Any] = {
        "@context": ["https://www.w3.org/ns/activitystreams", {"e2ee": "urn:hearthside:e2ee#"}],
        "type": "Create",
        "id": object_id + "/activity",
        "actor": actor,
        "to": to,
        "object": obj,
    }
    for key, value in changes.items():
        target, _, name = key.partition("__")
        (obj if target == "object" else activity)[name] = value
    return activity


@pytest.mark.parametrize(
    "case",
    ["public", "followers", "two_recipients", "cc", "plaintext_content", "wrong_attributed_to"],
)
async def test_inbox__refuses_misaddressed_encrypted_messages(pair: list[Instance], case: str) -> None:
    a, b = pair
    await a.user("alice")
    await b.user("bob")
    alice_uri = a.actor("alice")
    public = "https://www.w3.org/ns/activitystreams#Public"
    activity = {
        "public": lambda: encrypted_create(b, "bob", [public], object__to=[public]),
        "followers": lambda: encrypted_create(
            b, "bob", [b.actor("bob") + "/followers"], object__to=[b.actor("bob") + "/followers"]
        ),
        "two_recipients": lambda: encrypted_create(
            b, "bob", [alice_uri, a.actor("carol")], object__to=[alice_uri, a.actor("carol")]
        ),
        "cc": lambda: encrypted_create(b, "bob", [alice_uri], object__to=[alice_uri], object__cc=[public]),
        "plaintext_content": lambda: encrypted_create(
            b, "bob", [alice_uri], object__to=[alice_uri], object__content="hi"
        ),
        "wrong_attributed_to": lambda: encrypted_create(
            b, "bob", [alice_uri], object__to=[alice_uri], object__attributedTo=b.actor("mallory")
        ),
    }[case]()
    status = await post_as(b, "bob", a.actor("alice") + "/inbox", activity)
    assert status in (400, 401), f"{case}: {status}"


async def test_policy__a_stranger_cannot_reach_a_member(pair: list[Instance], monkeypatch: Any) -> None:
    monkeypatch.setenv("HEARTHSIDE_DM_PASSPHRASE", PASSPHRASE)
    a, b = pair
    await a.user("alice")
    await b.user("mallory")
    alice1, _ = await device(a, "alice")
    mallory1, _ = await device(b, "mallory")
    try:
        with pytest.raises(DmError):
            await mallory1.send(handle(a, "alice"), "let me in")
        # Alice opens up to everyone: now mallory's message arrives, as a message request.
        await a.api(
            "PATCH",
            "/api/v1/hearthside/e2ee/settings",
            None,
            json={"dm_policy": "everyone"},
            headers={"Authorization": f"Bearer {alice1.profile.token}"},
        )
        await mallory1.send(handle(a, "alice"), "hello from a stranger")

        async def requested() -> bool:
            await alice1.fetch()
            return bool(alice1.requests())

        await eventually(requested, what="mallory's message request")
        assert await alice1.receive() == []
        assert await alice1.accept(handle(b, "mallory")) == 1
        assert [m.content for m in await alice1.receive()] == ["hello from a stranger"]
    finally:
        await alice1.close()
        await mallory1.close()


async def test_report__verified_locally_and_by_the_senders_server(pair: list[Instance], monkeypatch: Any) -> None:
    monkeypatch.setenv("HEARTHSIDE_DM_PASSPHRASE", PASSPHRASE)
    a, b = pair
    alice = await a.user("alice")
    bob = await b.user("bob")
    moderator_b = await b.user("modb", role="moderator", scopes="read write admin:read admin:write")
    moderator_a = await a.user("moda", role="moderator", scopes="read write admin:read admin:write")
    await mutual_follow(a, alice, b, bob)
    alice1, _ = await device(a, "alice")
    bob1, _ = await device(b, "bob")
    try:
        await alice1.send(handle(b, "bob"), "something abusive")
        await alice1.send(handle(b, "bob"), "something harmless")
        got = await receive_until(bob1, 2)
        abusive = next(m for m in got if m.content == "something abusive")
        # A report whose revealed text was altered does not verify: nothing is filed.
        item = next(i for i in bob1.profile.history if i["id"] == abusive.id)
        original = json.loads(json.dumps(item))
        item["message_bytes"] = b64encode(
            b64decode(item["message_bytes"], field="m").replace(b"something abusive", b"something else!!")
        )

        with pytest.raises(DmError, match="422"):
            await bob1.report([abusive.id], comment="abuse", forward=False)
        item.clear()
        item.update(original)
        # A stamp from another key (or instance) does not verify either.
        item["stamp"] = "other." + b64encode(b"x" * 32)
        with pytest.raises(DmError, match="422"):
            await bob1.report([abusive.id], comment="abuse", forward=False)
        item.clear()
        item.update(original)
        answer = await bob1.report([abusive.id], comment="please look", forward=True)
        assert answer["forwarded"] is True
        # The same report again (an answer lost, a second press) files nothing new.
        assert await bob1.report([abusive.id], comment="please look", forward=True) == answer
        (filed,) = await b.rows(Report, Report.category == "e2ee_message")
        assert str(filed.id) == answer["id"] and filed.forward_requested
        assert filed.forwarded_to == [a.domain] and filed.forwarded_at is not None
        # Another comment is another report (and so is another choice of messages).
        other = await bob1.report([abusive.id], comment="more context", forward=False)
        assert other["id"] != answer["id"] and other["forwarded"] is False
        shown = await b.api("GET", f"/api/v1/hearthside/e2ee/reports/{answer['id']}", moderator_b)
        assert [(m["content"], m["verified"]) for m in shown["messages"]] == [("something abusive", True)]
        # Only what was revealed: the harmless message is not in the report.
        assert "something harmless" not in json.dumps(shown)
        # Members may not read reports.
        await b.api("GET", f"/api/v1/hearthside/e2ee/reports/{answer['id']}", bob, expect=403)

        async def forwarded() -> Any:
            rows = await a.rows(Report, Report.category == "e2ee_message")
            return rows[0] if rows else None

        report = await eventually(forwarded, what="the forwarded report on alice's server")
        assert report.reporter_account_id is None and report.origin_domain == b.domain
        messages = await a.rows(E2EEReportMessage, E2EEReportMessage.report_id == report.id)
        assert [m.verified for m in messages] == [True]
        shown = await a.api("GET", f"/api/v1/hearthside/e2ee/reports/{report.id}", moderator_a)
        assert [m["content"] for m in shown["messages"]] == ["something abusive"]
        # The revealed text is sealed at rest, not stored in clear.
        assert "something abusive" not in messages[0].sealed

        # A forged Flag (altered content, our stamp reused) is kept but marked unverified.
        revealed = {
            "object_id": item["object_id"],
            "message": b64encode(
                b64decode(item["message_bytes"], field="m").replace(b"something abusive", b"words alice never wrote")
            ),
            "franking_key": item["franking_key"],
            "franking_tag": item["franking_tag"],
            "stamp": item["sender_stamp"],
            "stamped_at": item["stamped_at"],
        }
        flag = {
            "@context": "https://www.w3.org/ns/activitystreams",
            "type": "Flag",
            "id": f"{b.actor('bob')}#flags/{secrets.token_hex(4)}",
            "actor": b.actor("bob"),
            "object": [a.actor("alice")],
            "content": "forged",
            "e2ee:revealed": [revealed],
        }
        assert await post_as(b, "bob", a.base_url + "/inbox", flag) == 202

        async def forged() -> Any:
            rows = await a.rows(Report, Report.uri == flag["id"])
            return rows[0] if rows else None

        forged_report = await eventually(forged, what="the forged report")
        rows = await a.rows(E2EEReportMessage, E2EEReportMessage.report_id == forged_report.id)
        assert [r.verified for r in rows] == [False]
    finally:
        await alice1.close()
        await bob1.close()


async def test_report__forwarded_later_by_a_moderator_carries_the_senders_stamp(
    pair: list[Instance], monkeypatch: Any
) -> None:
    """A member files without forwarding; a moderator forwards from the queue afterwards. The
    Flag carries the revealed message with the sending server's stamp (kept, sealed, with the
    report), so that server verifies its own stamp as it does for a member's forward."""
    monkeypatch.setenv("HEARTHSIDE_DM_PASSPHRASE", PASSPHRASE)
    moderator_b = await pair[1].user("modb", role="moderator", scopes="read write admin:read admin:write")
    async with talking(pair) as (a, b, alice1, bob1):
        await alice1.send(handle(b, "bob"), "words to forward later")
        (got,) = await receive_until(bob1)
        answer = await bob1.report([got.id], comment="please look", forward=False)
        assert answer["forwarded"] is False
        forwarded = await b.api(
            "POST",
            f"/api/v1/hearthside/admin/reports/{answer['id']}/forward",
            moderator_b,
            json={"comment": "forwarded by our moderators"},
        )
        assert forwarded["forwarded"] is True

        async def arrived() -> Any:
            rows = await a.rows(Report, Report.category == "e2ee_message")
            return rows[0] if rows else None

        report = await eventually(arrived, what="the moderator-forwarded report on alice's server")
        assert report.reporter_account_id is None and report.origin_domain == b.domain
        assert report.comment == "forwarded by our moderators"
        messages = await a.rows(E2EEReportMessage, E2EEReportMessage.report_id == report.id)
        assert [m.verified for m in messages] == [True]


def direct_note(sender: Instance, username: str, to: str, content: str) -> dict[str, Any]:
    actor = sender.actor(username)
    note_id = f"{actor}/statuses/{secrets.randbelow(10**12)}"
    note = {
        "type": "Note",
        "id": note_id,
        "attributedTo": actor,
        "to": [to],
        "cc": [],
        "content": f"<p>{content}</p>",
        "published": "2026-11-21T10:00:00Z",
        "tag": [{"type": "Mention", "href": to}],
    }
    return {
        "@context": "https://www.w3.org/ns/activitystreams",
        "type": "Create",
        "id": note_id + "/activity",
        "actor": actor,
        "to": [to],
        "cc": [],
        "object": note,
    }


@pytest.mark.parametrize("accept", [False, True])
async def test_plaintext_direct_messages__refused_or_kept_apart(tmp_path: Path, accept: bool) -> None:
    a = await make_instance("a", "127.0.0.2", "sqlite", tmp_path / "a", None, e2ee={"accept_plaintext_dms": accept})
    b = await make_instance("b", "127.0.0.3", "sqlite", tmp_path / "b", None)
    try:
        alice = await a.user("alice", scopes="read write follow crypto")
        await b.user("bob")
        # The member's message policy applies to plaintext messages too: strangers need "everyone".
        await a.api("PATCH", "/api/v1/hearthside/e2ee/settings", alice, json={"dm_policy": "everyone"})
        activity = direct_note(b, "bob", a.actor("alice"), "a plaintext hello")
        assert await post_as(b, "bob", a.actor("alice") + "/inbox", activity) == 202

        async def processed() -> bool:
            from server.models import InboxItem

            rows = await a.rows(InboxItem, InboxItem.activity_id == activity["id"])
            return bool(rows) and rows[0].state != "pending"

        await eventually(processed, what="the inbox item processed")
        # Never a status: direct messages are never shown as posts.
        assert await a.rows(Status, Status.uri == activity["object"]["id"]) == []
        kept = await a.rows(PlaintextMessage)
        box = await a.api("GET", "/api/v1/hearthside/plaintext_messages", alice)
        assert box["label"] == "not end-to-end encrypted"
        if accept:
            assert len(kept) == 1
            assert [m["content"] for m in box["messages"]] == ["<p>a plaintext hello</p>"]
            assert box["messages"][0]["end_to_end_encrypted"] is False
        else:
            assert kept == [] and box["messages"] == []
    finally:
        await close_instance(a, None)
        await close_instance(b, None)


async def test_disappearing_messages__timer_inside_the_ciphertext(pair: list[Instance], monkeypatch: Any) -> None:
    from datetime import timedelta

    monkeypatch.setenv("HEARTHSIDE_DM_PASSPHRASE", PASSPHRASE)
    async with talking(pair) as (_a, b, alice1, bob1):
        await alice1.send(handle(b, "bob"), "gone in ten minutes", expires_in=timedelta(minutes=10))
        await alice1.send(handle(b, "bob"), "kept")
        got = await receive_until(bob1, 2)
        assert sorted(m.content for m in got) == ["gone in ten minutes", "kept"]
        kept = {i["message"]["body"]["content"]: i["message"]["expires"] for i in bob1.profile.history}
        assert kept["kept"] is None and kept["gone in ten minutes"] is not None
        later = datetime.now(UTC) + timedelta(minutes=11)
        assert bob1.purge_expired(later) == 1 and alice1.purge_expired(later) == 1
        assert [i["message"]["body"]["content"] for i in bob1.profile.history] == ["kept"]


async def test_sas_verification__both_sides_see_the_same_emoji_and_verify(
    pair: list[Instance], monkeypatch: Any, tmp_path: Path
) -> None:
    """Interactive SAS over the encrypted channel (research/e2ee.md §7.4): commit, reveal,
    the same 7 emoji and numbers on both sides, MACs over the master keys, both verified.
    A member who says they differ cancels it for both, and nobody is marked verified."""
    import asyncio

    monkeypatch.setenv("HEARTHSIDE_DM_PASSPHRASE", PASSPHRASE)
    a, b = pair
    alice = await a.user("alice")
    bob = await b.user("bob")
    await mutual_follow(a, alice, b, bob)
    alice1, _ = await device(a, "alice")
    bob1, _ = await device(b, "bob")
    try:
        await alice1.send(handle(b, "bob"), "hi")  # sessions exist already, as in real use
        await receive_until(bob1)
        seen: dict[str, Any] = {}

        def confirming(name: str, answer: bool) -> Any:
            async def confirm(emoji: Any, decimals: Any) -> bool:
                seen[name] = (emoji, decimals)
                return answer

            return confirm

        results = await asyncio.gather(
            alice1.verify_sas(handle(b, "bob"), confirming("alice", True), within=30),
            bob1.verify_sas(handle(a, "alice"), confirming("bob", True), within=30),
        )
        assert results == [True, True]
        assert seen["alice"] == seen["bob"] and len(seen["alice"][0]) == 7 and len(seen["alice"][1]) == 3
        assert alice1.device.is_verified(b.actor("bob")) and bob1.device.is_verified(a.actor("alice"))
        # Verification messages are never shown as conversation.
        assert all(i["message"]["body"]["type"] == "Note" for i in bob1.profile.history)

        # A second round where bob says the emoji differ: both sides end, neither newly verified.
        carol = await b.user("carol")
        await mutual_follow(a, alice, b, carol)
        carol1, _ = await device(b, "carol")
        try:
            outcome = await asyncio.gather(
                alice1.verify_sas(handle(b, "carol"), confirming("alice2", True), within=30),
                carol1.verify_sas(handle(a, "alice"), confirming("carol", False), within=30),
                return_exceptions=True,
            )
            assert outcome[1] is False
            assert isinstance(outcome[0], DmError) and "cancelled" in str(outcome[0])
            assert not alice1.device.is_verified(b.actor("carol")) and not carol1.device.is_verified(a.actor("alice"))
        finally:
            await carol1.close()
    finally:
        await alice1.close()
        await bob1.close()


async def test_new_identity__old_devices_revoked_contacts_warned_verified_ones_stop(
    pair: list[Instance], monkeypatch: Any
) -> None:
    """A member who lost every device and the recovery code starts over: their old devices are
    revoked; an unverified contact keeps writing (with a notice); a contact who had verified
    them cannot send until accepting the new key, and is then no longer verified."""
    monkeypatch.setenv("HEARTHSIDE_DM_PASSPHRASE", PASSPHRASE)
    a, b = pair
    alice = await a.user("alice")
    bob = await b.user("bob")
    carol = await b.user("carol")
    await mutual_follow(a, alice, b, bob)
    await mutual_follow(a, alice, b, carol)
    old_alice, _ = await device(a, "alice")
    bob1, _ = await device(b, "bob")
    carol1, _ = await device(b, "carol")
    new_alice = None
    try:
        await bob1.send(handle(a, "alice"), "before")
        await carol1.send(handle(a, "alice"), "before")
        await receive_until(old_alice, 2)
        await carol1.mark_verified(handle(a, "alice"))

        new_alice, started = await device(a, "alice", new_identity=True)
        assert started.state == "active" and started.recovery_code
        with pytest.raises(DmError, match="401"):
            await old_alice.receive()

        await bob1.send(handle(a, "alice"), "to the new alice")
        assert any("safety number" in n for n in bob1.notices)
        assert [m.content for m in await receive_until(new_alice)] == ["to the new alice"]

        with pytest.raises(DmError, match="accept-new-key"):
            await carol1.send(handle(a, "alice"), "blocked until accepted")
        await carol1.safety_number(handle(a, "alice"), accept_new_key=True)
        assert not carol1.device.is_verified(a.actor("alice"))
        await carol1.send(handle(a, "alice"), "accepted")
        assert [m.content for m in await receive_until(new_alice)] == ["accepted"]
    finally:
        for client in (old_alice, bob1, carol1, new_alice):
            if client is not None:
                await client.close()
