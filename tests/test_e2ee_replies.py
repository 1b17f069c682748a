"""Replies and reactions in end-to-end encrypted conversations (``DmClient.reply``/``react``,
``hearthside dm reply``/``react``), between members of two real Hearthside instances.

A reply names the message it answers and each device quotes that message from its own copy;
a reaction is one emoji per member and message, the newest wins. Both travel encrypted and
franked like any message; what names a message of another conversation, an invalid emoji or
an older reaction than the one kept changes nothing.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from federation_harness import Instance, eventually, instances
from test_e2ee_e2e import PASSPHRASE, device, dm, handle, open_to_everyone, receive_until, run_dm, talking

from crypto.encoding import b64decode, b64encode
from crypto.envelope import new_control_message, new_message
from server.dm.client import DmClient, DmError, Incoming, valid_reaction
from server.dm.client import revealed as revealed_item
from server.dm.store import Store
from server.models import OutboxActivity, Report


@pytest.mark.parametrize(
    "emoji",
    [
        "💛",
        "👍🏽",  # skin tone modifier
        "👩\u200d❤️\u200d👩",  # a ZWJ sequence with a variation selector
        "🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f",  # a subdivision flag (tags)
        "1️⃣",  # a keycap
        "#️⃣",
        "‼️",
        "🇺🇦",  # a flag: two regional indicators
    ],
)
def test_a_reaction_is_one_emoji_however_it_is_composed(emoji: str) -> None:
    assert valid_reaction(emoji)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "a b",
        "👍\n",
        "💛" * 11,
        "\u202e👍",
        "\ue000",
        "\u200b",
        "👍\x00",
        None,
        1,
        ["👍"],
        "ok",
        "killyrslf",
        "нет",
        "死",
        "9",
        "1\u20e3x",
        "Ⅻ",
        "①",
        "👍no",
    ],
    ids=[
        "empty",
        "space",
        "newline",
        "too long",
        "bidi override",
        "private use",
        "zero width space",
        "nul",
        "none",
        "number",
        "list",
        "a word",
        "a longer word",
        "cyrillic",
        "han",
        "a digit",
        "keycap then letter",
        "roman numeral",
        "circled digit",
        "emoji and letters",
    ],
)
def test_a_reaction_refuses_spaces_controls_and_invisible_characters(value: Any) -> None:
    assert not valid_reaction(value)


@pytest.fixture(params=["sqlite", "postgres"])
async def pair(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[list[Instance]]:
    pg = request.getfixturevalue("pg_server") if request.param == "postgres" else None
    async for started in instances(request.param, tmp_path, pg):
        yield started


async def opened(client: DmClient, count: int = 1) -> tuple[list[Incoming], list[str]]:
    """Wait until ``count`` ciphertexts wait in the device's inbox, then receive: the messages
    handed over and the kept messages the other member reacted to meanwhile. (Each step below
    sends one thing and waits for it, so the order of arrival is the order of sending.)"""

    async def waiting() -> bool:
        page = await client._call("GET", "/api/v1/hearthside/e2ee/messages", params={"limit": str(count)})
        return len(page.get("messages", [])) >= count

    await eventually(waiting, what=f"a message for {client.profile.acct}", within=45)
    return await client.receive(), list(client.reacted)


async def test_replies_quote_the_readers_own_copy_and_reactions_keep_one_per_member(
    pair: list[Instance], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HEARTHSIDE_DM_PASSPHRASE", PASSPHRASE)
    async with talking(pair) as (a, b, alice1, bob1):
        alice2, _ = await device(a, "alice")
        await alice1.approve(alice2.device.device_id)
        await b.user("carol")
        carol1, _ = await device(b, "carol")
        await open_to_everyone(b, carol1)
        alice, bob = a.actor("alice"), b.actor("bob")
        bob_handle = handle(b, "bob")
        async with alice2, carol1:
            question = await alice1.send(bob_handle, "are you coming to the group tonight?")
            elsewhere = await alice1.send(handle(b, "carol"), "a message of another conversation")
            await receive_until(bob1)
            await receive_until(alice2, 2)

            # A reply: every device of both shows what it answers, quoted from its own copy.
            answer = await bob1.reply(question, "yes, I'll be there at 7")
            (got,) = await receive_until(alice1)
            assert (got.id, got.content, got.reply_to) == (answer, "yes, I'll be there at 7", question)
            assert alice1.quote(question) == "are you coming to the group tonight?"
            (copy,) = await receive_until(alice2)
            assert copy.reply_to == question
            assert next(i for i in bob1.profile.history if i["id"] == answer)["reply_to"] == question

            # A reply naming a message of another conversation, or one never sent, quotes nothing.
            for target in (elsewhere, "00000000-0000-4000-8000-000000000000"):
                forged = new_message(
                    sender=bob,
                    recipient=alice,
                    content="look what you said",
                    now=datetime.now(UTC),
                    extra={"in_reply_to": target},
                )
                await bob1._deliver(alice, forged, shown_as="alice")
                (shown,) = await receive_until(alice1)
                assert (shown.content, shown.reply_to) == ("look what you said", None)
                await receive_until(alice2)

            # An edit of a reply still answers the same message.
            thanks = await alice1.reply(answer, "great")
            await receive_until(bob1)
            corrected = await alice1.edit(thanks, "great, see you there")
            (edit,) = await receive_until(bob1)
            assert (edit.id, edit.edits, edit.reply_to) == (corrected, thanks, answer)
            await opened(alice2, 2)

            # Reactions: one per member and message; the other side is told once; the newest wins.
            assert await alice1.react(answer, "💛") == answer
            assert await opened(bob1) == ([], [answer])
            assert bob1.reactions(answer) == {alice: "💛"}
            assert await opened(alice2) == ([], [])  # our own reaction: kept, no notice
            assert alice2.reactions(answer) == {alice: "💛"}
            await alice2.react(answer, "🙏")
            await opened(bob1)
            await opened(alice1)
            assert bob1.reactions(answer) == alice1.reactions(answer) == {alice: "🙏"}
            await bob1.react(question, "👍")
            assert await opened(alice1) == ([], [question])
            assert alice1.reactions(question) == {bob: "👍"}
            await opened(alice2)
            # A reaction to a message not yet shown comes with it: no separate notice.
            unseen = await bob1.send(handle(a, "alice"), "one more thing")
            await bob1.react(unseen, "✨")
            (new,), reacted = await opened(alice1, 2)
            assert (new.id, reacted, alice1.reactions(unseen)) == (unseen, [], {bob: "✨"})
            await opened(alice2, 2)

            # What changes nothing: an older reaction than the one kept, an invalid emoji, a
            # reaction to a message of another conversation or to one that does not exist.
            undecryptable = alice1.profile.undecryptable
            stale = datetime.now(UTC) - timedelta(hours=1)
            for body, moment in (
                ({"type": "Reaction", "of": question, "emoji": "😡"}, stale),
                ({"type": "Reaction", "of": question, "emoji": "not one emoji"}, datetime.now(UTC)),
                ({"type": "Reaction", "of": question, "emoji": 5}, datetime.now(UTC)),
                ({"type": "Reaction", "of": elsewhere, "emoji": "😡"}, datetime.now(UTC)),
                ({"type": "Reaction", "of": "nothing", "emoji": "😡"}, datetime.now(UTC)),
            ):
                reaction = new_control_message(sender=bob, recipient=alice, body=body, now=moment)
                await bob1._deliver(alice, reaction, shown_as="alice")
                assert await opened(alice1) == ([], [])
                await opened(alice2)
            assert alice1.reactions(question) == {bob: "👍"} and alice1.reactions(elsewhere) == {}
            assert alice1.profile.undecryptable == undecryptable  # opened fine, then ignored

            # Taking a reaction back; refusals that send nothing.
            await alice1.react(answer, None)
            await opened(bob1)
            assert bob1.reactions(answer) == {}
            await opened(alice2)
            with pytest.raises(DmError, match="one emoji"):
                await alice1.react(answer, "two words")
            with pytest.raises(DmError, match="no message"):
                await alice1.react("not-kept", "👍")
            with pytest.raises(DmError, match="no message"):
                await alice1.reply("not-kept", "hello?")

            # A reply to an edited message answers its corrected text; the quote follows edits,
            # and a message its sender deleted is quoted as deleted.
            fixed = await alice1.edit(question, "are you coming to the group tomorrow?")
            await receive_until(bob1)
            assert bob1.quote(question) == "are you coming to the group tomorrow?"
            again = await bob1.reply(question, "tomorrow too")
            assert next(i for i in bob1.profile.history if i["id"] == again)["reply_to"] == fixed
            await receive_until(alice1)
            await alice1.delete_for_everyone(fixed)
            await opened(bob1)
            assert bob1.quote(fixed) == "(deleted by the sender)"
            with pytest.raises(DmError, match="deleted"):
                await bob1.react(fixed, "👍")

            # Searching this device's messages: in any case, by file name too; not the first
            # text of an edited message, nor one its sender deleted, nor requests.
            assert [i["id"] for i in bob1.search("THERE AT")] == [answer]
            assert bob1.search("tonight") == [] and bob1.search("tomorrow?") == []  # edited, then deleted
            assert [i["id"] for i in alice1.search("another conversation")] == [elsewhere]
            assert alice1.search("another conversation", peer=bob) == []
            with pytest.raises(DmError, match="some text"):
                bob1.search("  ")

            # The commands: a reply and a reaction from bob's device, shown by `read --all`.
            Store(tmp_path / "bob", PASSPHRASE).save(bob1.profile)
            out = await dm(tmp_path / "bob", "reply", answer, "see you then")
            assert f"answering {answer}" in out
            (shown,) = await receive_until(alice1)
            assert (shown.content, shown.reply_to) == ("see you then", answer)
            await dm(tmp_path / "bob", "react", answer, "🌻")
            await opened(alice1)
            assert alice1.reactions(answer) == {bob: "🌻"}
            out = await dm(tmp_path / "bob", "read", "--all")
            assert f"(answering {answer}: yes, I'll be there at 7) see you then" in out
            assert "yes, I'll be there at 7 [🌻 you]" in out
            found = await dm(tmp_path / "bob", "search", "see you", "--with", handle(a, "alice"))
            assert "see you then" in found and "great, see you there (edited)" in found
            assert "Nothing found" in await dm(tmp_path / "bob", "search", "tonight")
            await dm(tmp_path / "bob", "react", answer, "--undo")
            assert "🌻" not in await dm(tmp_path / "bob", "read", "--all")
            code, _, err = await run_dm(tmp_path / "bob", "react", answer)
            assert code == 2 and "one emoji, or --undo" in err


async def test_a_hurtful_reaction_can_be_reported_even_after_it_was_taken_back(
    pair: list[Instance], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reaction is encrypted and franked like a message, so the member it was sent to can
    reveal it to their moderators (and the sender's server) as they can a message: the one
    shown, and for a week one taken back or replaced, as a deleted message. Moderators see the
    emoji and which message it was on, verified; a reaction moved to another message does not
    verify; the member's own reactions are not the other's to report."""
    monkeypatch.setenv("HEARTHSIDE_DM_PASSPHRASE", PASSPHRASE)
    async with talking(pair) as (a, b, alice1, bob1):
        staff = "read write admin:read admin:write"
        moderator_a = await a.user("moda", role="moderator", scopes=staff)
        moderator_b = await b.user("modb", role="moderator", scopes=staff)
        bob = b.actor("bob")
        mine = await alice1.send(handle(b, "bob"), "I had a really hard day")
        await receive_until(bob1)
        theirs = await bob1.send(handle(a, "alice"), "tell me about it")
        await receive_until(alice1)
        await alice1.react(theirs, "💛")
        await opened(bob1)
        with pytest.raises(DmError, match=r"reactions to .* are not kept"):
            await alice1.report([], comment="", forward=False, reactions_on=[theirs])
        with pytest.raises(DmError, match="give the ids"):
            await alice1.report([], comment="", forward=False)

        await bob1.react(mine, "🔪")
        assert await opened(alice1) == ([], [mine])
        await bob1.react(mine, "🪦")
        await opened(alice1)
        await bob1.react(mine, None)
        await opened(alice1)
        assert alice1.reactions(mine) == {}  # taken back: no longer shown, still reportable

        # Moved to another message (its `of` rewritten): the franking tag no longer verifies.
        item = next(i for i in alice1.profile.history if i["id"] == mine)
        first = item["reaction_openings"][0]
        original = first["message_bytes"]
        first["message_bytes"] = b64encode(b64decode(original, field="m").replace(mine.encode(), theirs.encode()))
        with pytest.raises(DmError, match="422"):
            await alice1.report([], comment="moved", forward=False, reactions_on=[mine])
        first["message_bytes"] = original

        answer = await alice1.report([theirs], comment="hurtful", forward=True, reactions_on=[mine])
        assert answer["messages"] == 4 and answer["forwarded"] is True
        shown = await a.api("GET", f"/api/v1/hearthside/e2ee/reports/{answer['id']}", moderator_a)
        fields = ("type", "reaction", "reaction_to", "content", "verified")
        # The message the reactions were on (alice's own) is revealed with them, as context.
        assert [tuple(m.get(f) for f in fields) for m in shown["messages"]] == [
            ("Note", None, None, "I had a really hard day", True),
            ("Note", None, None, "tell me about it", True),
            ("Reaction", "🔪", mine, "", True),
            ("Reaction", "🪦", mine, "", True),
        ]
        assert [(m["message_id"], m["from"]) for m in shown["messages"][:2]] == [
            (mine, a.actor("alice")),
            (theirs, bob),
        ]
        assert shown["target"] == bob
        assert "💛" not in str(shown)  # alice's own reaction was not revealed

        # The sender's server gets the Flag and verifies its own stamps on the reactions too.
        async def forwarded() -> Any:
            rows = await b.rows(Report, Report.category == "e2ee_message")
            return rows[0] if rows else None

        report = await eventually(forwarded, what="the forwarded report on bob's server")
        there = await b.api("GET", f"/api/v1/hearthside/e2ee/reports/{report.id}", moderator_b)
        assert [(m.get("reaction"), m["verified"]) for m in there["messages"]] == [
            (None, True),
            ("🔪", True),
            ("🪦", True),
        ]
        assert "I had a really hard day" not in str(there)  # alice's own words are never forwarded

        # Reactions to a message and to its edits are reported together, by either id.
        edited = await alice1.edit(mine, "I had a really hard week")
        await receive_until(bob1)
        await bob1.react(mine, "😡")  # goes to the corrected text
        await opened(alice1)
        assert alice1.reactions(edited) == {bob: "😡"}
        for either in (mine, edited):
            assert [o["emoji"] for o in alice1.reportable_reactions(either)] == ["🔪", "🪦", "😡"]
        # A week after they were replaced, those two are gone; the one shown stays reportable.
        alice1.purge_expired(datetime.now(UTC) + timedelta(days=8))
        assert [o["emoji"] for o in alice1.reportable_reactions(mine)] == ["😡"]

        # The command: `report --reactions-on ID`, and nothing to report is refused.
        Store(tmp_path / "alice", PASSPHRASE).save(alice1.profile)
        out = await dm(tmp_path / "alice", "report", "--reactions-on", mine, "--comment", "again")
        assert "Reported 2 message(s) and reaction(s)" in out  # the message and 😡
        code, _, err = await run_dm(tmp_path / "alice", "report")
        assert code == 2 and "--reactions-on ID" in err
        # `read` shows a new reaction once, and says how to report it.
        await bob1.react(mine, "😢")
        notices: list[str] = []

        async def shown_once() -> bool:
            code, out, err = await run_dm(tmp_path / "alice", "read")
            notices.append(out + err)
            return code == 0 and "😢 them" in out

        await eventually(shown_once, what="bob's new reaction on alice's device")
        assert "dm report --reactions-on ID" in notices[-1]
        assert "😢" not in (await run_dm(tmp_path / "alice", "read"))[1]


async def test_a_report_shows_the_reporters_own_messages_as_context_verified_and_never_forwarded(
    pair: list[Instance],
) -> None:
    """A hurtful answer is read against what it answers: a report may reveal the reporter's own
    messages to the reported member, which their server verifies by the stamp it made when
    they were sent. Every item must be between the two of them, at least one theirs; only
    theirs are forwarded (now, or later by a moderator); altered words of one's own do not
    verify."""
    async with talking(pair) as (a, b, alice1, bob1):
        staff = "read write admin:read admin:write"
        moderator_a = await a.user("moda", role="moderator", scopes=staff)
        moderator_b = await b.user("modb", role="moderator", scopes=staff)
        alice, bob = a.actor("alice"), b.actor("bob")
        alice2, _ = await device(a, "alice")  # her phone: it gets a copy of what she sends
        await alice1.approve(alice2.device.device_id)  # type: ignore[union-attr]
        mine = await alice1.send(handle(b, "bob"), "I relapsed last night")
        await receive_until(bob1)
        theirs = await bob1.send(handle(a, "alice"), "nobody is surprised")
        await receive_until(alice1)
        later = await alice1.send(handle(b, "bob"), "that hurt")
        await receive_until(bob1)
        await receive_until(alice2, 3)

        # Own messages alone are context for nothing; unknown ids are named.
        with pytest.raises(DmError, match="context only"):
            await alice1.report([mine, later], comment="", forward=False)
        with pytest.raises(DmError, match="no message nope on this device"):
            await alice1.report([theirs, "nope"], comment="", forward=False)

        def revealed(message_id: str) -> dict[str, Any]:
            return revealed_item(next(i for i in alice1.profile.history if i["id"] == message_id))

        async def refused(messages: list[dict[str, Any]], reason: str) -> None:
            with pytest.raises(DmError, match=f"422 {reason}"):
                await alice1._call("POST", "/api/v1/hearthside/e2ee/reports", json_body={"messages": messages})

        # The server applies the same rules, whatever the client does.
        await refused([revealed(mine)], "messages: reveal at least one message or reaction from the member")

        def forged(sender: str, recipient: str) -> dict[str, Any]:
            message = new_message(sender=sender, recipient=recipient, content="x", now=datetime.now(UTC))
            return {**revealed(mine), "message": b64encode(message.encoded)}

        carol = a.actor("carol")
        # One conversation per report, on the device too.
        elsewhere = {**next(i for i in alice1.profile.history if i["id"] == later), "id": "to-carol", "peer": carol}
        alice1.profile.history.append(elsewhere)
        with pytest.raises(DmError, match="one conversation"):
            await alice1.report([theirs, "to-carol"], comment="", forward=False)
        alice1.profile.history.remove(elsewhere)
        await refused([revealed(theirs), forged(alice, carol)], "messages: report one conversation at a time")
        await refused(
            [revealed(theirs), forged(bob, carol)], r"messages\[1\]: you can only report messages sent to you"
        )
        await refused([revealed(theirs), forged(alice, alice)], r"messages\[1\]: you can only report")
        altered = revealed(mine)
        words = b64decode(altered["message"], field="m").replace(b"relapsed", b"laughed  ")
        await refused([revealed(theirs), {**altered, "message": b64encode(words)}], r"messages\[1\]: the franking tag")
        # bob's stamp is not ours: alice's message with the stamp bob's server put on it fails too.
        bobs = next(i for i in bob1.profile.history if i["id"] == mine)
        await refused([revealed(theirs), {**revealed(mine), "stamp": bobs["stamp"]}], r"messages\[1\]: the franking")
        assert await a.rows(Report) == []  # nothing refused was half-filed

        answer = await alice1.report([mine, theirs, later], comment="cruel", forward=True)
        assert answer["messages"] == 3 and answer["forwarded"] is True
        shown = await a.api("GET", f"/api/v1/hearthside/e2ee/reports/{answer['id']}", moderator_a)
        assert [(m["from"], m["content"], m["verified"]) for m in shown["messages"]] == [
            (alice, "I relapsed last night", True),
            (bob, "nobody is surprised", True),
            (alice, "that hurt", True),
        ]
        assert shown["target"] == bob

        async def forwarded(comment: str) -> Any:
            rows = await b.rows(Report, Report.category == "e2ee_message", Report.comment == comment)
            return rows[0] if rows else None

        async def seen_there(comment: str) -> list[tuple[str, bool]]:
            report = await eventually(lambda: forwarded(comment), what=f"the report {comment!r} on bob's server")
            there = await b.api("GET", f"/api/v1/hearthside/e2ee/reports/{report.id}", moderator_b)
            return [(m["content"], m["verified"]) for m in there["messages"]]

        assert await seen_there("cruel") == [("nobody is surprised", True)]
        # Filed without forwarding, then forwarded by a moderator: bob's message only, too.
        answer = await alice1.report([mine, theirs], comment="for later", forward=False)
        assert answer["forwarded"] is False
        path = f"/api/v1/hearthside/admin/reports/{answer['id']}/forward"
        done = await a.api("POST", path, moderator_a, json={"comment": "forwarded by moderators"})
        assert done["forwarded"] is True
        assert await seen_there("forwarded by moderators") == [("nobody is surprised", True)]
        # From her other device: the copy of her own message carries the same stamp and verifies.
        answer = await alice2.report([mine, theirs], comment="from my phone", forward=False)
        from_phone = await a.api("GET", f"/api/v1/hearthside/e2ee/reports/{answer['id']}", moderator_a)
        assert [(m["from"], m["content"], m["verified"]) for m in from_phone["messages"]] == [
            (alice, "I relapsed last night", True),
            (bob, "nobody is surprised", True),
        ]
        await alice2.close()
        # What left alice's server: both Flags carry bob's message and nothing of alice's.
        flags = [json.loads(row.body) for row in await a.rows(OutboxActivity, OutboxActivity.activity_type == "Flag")]
        sent = [[m["object_id"] for m in flag["e2ee:revealed"]] for flag in flags]
        assert sent == [[revealed(theirs)["object_id"]]] * 2
        assert not any("I relapsed" in str(flag) or revealed(mine)["message"] in str(flag) for flag in flags)


async def test_keep_messages__older_ones_are_deleted_from_this_device_only(
    pair: list[Instance], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``keep``: a device keeps messages for a chosen time after they were written, sent and
    received alike (Signal's "keep messages"); the other side and the member's other devices
    keep their own setting."""
    monkeypatch.setenv("HEARTHSIDE_DM_PASSPHRASE", PASSPHRASE)
    async with talking(pair) as (a, b, alice1, bob1):
        alice, bob = a.actor("alice"), b.actor("bob")
        await alice1.resolve(handle(b, "bob"))  # pins bob's devices for the hand-made message
        old = new_message(
            sender=alice, recipient=bob, content="written three days ago", now=datetime.now(UTC) - timedelta(days=3)
        )
        await alice1._deliver(bob, old, shown_as="bob")
        await receive_until(bob1)
        await alice1.send(handle(b, "bob"), "written today")
        await receive_until(bob1)
        await bob1.send(handle(a, "alice"), "an answer from today")
        with pytest.raises(DmError, match="between 1 day and 10 years"):
            bob1.keep(timedelta(hours=2))

        Store(tmp_path / "bob", PASSPHRASE).save(bob1.profile)
        out = await dm(tmp_path / "bob", "keep")
        assert "kept until you delete them" in out
        out = await dm(tmp_path / "bob", "keep", "2d")
        assert "deleted 2 days after they were written (1 deleted now)" in out
        shown = await dm(tmp_path / "bob", "read", "--all")
        assert "written three days ago" not in shown and "written today" in shown and "an answer from today" in shown
        # Kept with the store, and applied from then on.
        kept = Store(tmp_path / "bob", PASSPHRASE).load()
        assert kept.keep_seconds == 2 * 86400
        client = DmClient(kept)
        assert client.purge_expired(datetime.now(UTC) + timedelta(days=3)) == 2
        assert "forever" not in await dm(tmp_path / "bob", "keep", "forever")
        assert Store(tmp_path / "bob", PASSPHRASE).load().keep_seconds is None
        # Alice's device has no such setting: it keeps what it had, and what comes.
        (answer,) = await receive_until(alice1)
        assert answer.content == "an answer from today"
        assert alice1.purge_expired(datetime.now(UTC) + timedelta(days=3)) == 0


async def test_two_commands_at_once_on_one_profile_take_turns(
    pair: list[Instance], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two `hearthside dm send` at the same moment on one profile: without the store's lock
    both would encrypt from the same ratchet state and the recipient would refuse one as a
    replay; with it they take turns and both arrive."""
    from server.dm import store as store_module

    monkeypatch.setattr(store_module, "LOCK_WAIT", 60.0)  # generous: a loaded machine is slow
    monkeypatch.setenv("HEARTHSIDE_DM_PASSPHRASE", PASSPHRASE)
    async with talking(pair) as (a, _, alice1, bob1):
        await bob1.send(handle(a, "alice"), "hello")  # the session exists: both sends use it
        await receive_until(alice1)
        Store(tmp_path / "bob", PASSPHRASE).save(bob1.profile)
        to = handle(a, "alice")
        await asyncio.gather(
            dm(tmp_path / "bob", "send", to, "first at once"), dm(tmp_path / "bob", "send", to, "second at once")
        )
        got = await receive_until(alice1, 2)
        assert sorted(m.content for m in got) == ["first at once", "second at once"]
        assert alice1.profile.undecryptable == 0
