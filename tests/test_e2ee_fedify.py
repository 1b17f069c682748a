"""A real peer without E2EE (Fedify) sends a plaintext direct message to a Hearthside member.

Issue 4, item 3: plaintext direct messages from other software are refused by default; an
instance setting keeps them in a separate box labelled "not end-to-end encrypted". The Fedify
peer posts with Mastodon's ``direct`` addressing (the mentioned actor only, no Public, no
followers), signed as it signs everything.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from federation_harness import close_instance, eventually, make_instance
from peers.fedify import StartPeer, fedify_peers

from server.models import Account, InboxItem, PlaintextMessage, Status


@pytest.fixture
async def fedify(tmp_path: Path) -> AsyncIterator[StartPeer]:
    async with fedify_peers(tmp_path / "fedify") as start:
        yield start


@pytest.mark.parametrize("accept", [False, True], ids=["refused", "kept_apart"])
async def test_fedify_direct_message__refused_or_kept_in_the_labelled_box(
    tmp_path: Path, fedify: StartPeer, accept: bool
) -> None:
    hearth = await make_instance(
        "h", "127.0.0.2", "sqlite", tmp_path / "h", None, e2ee={"accept_plaintext_dms": accept}
    )
    try:
        peer = await fedify("127.0.0.8")
        alice = await hearth.user("alice", scopes="read write follow crypto")
        await hearth.api("PATCH", "/api/v1/hearthside/e2ee/settings", alice, json={"dm_policy": "everyone"})
        await peer.post("<p>psst, plaintext</p>", to="direct", mentions=[hearth.actor("alice")])

        async def processed() -> list[InboxItem]:
            rows = await hearth.rows(
                InboxItem, InboxItem.actor_uri == peer.actor_url, InboxItem.activity_type == "Create"
            )
            return [r for r in rows if r.state != "pending"]

        items = await eventually(processed, within=20, what="the peer's Create processed")
        assert await hearth.rows(Status, Status.account_id.isnot(None), Status.local.is_(False)) == []
        box = await hearth.api("GET", "/api/v1/hearthside/plaintext_messages", alice)
        assert box["label"] == "not end-to-end encrypted"
        kept = await hearth.rows(PlaintextMessage)
        if accept:
            assert len(kept) == 1 and "psst, plaintext" in kept[0].content
            assert [m["end_to_end_encrypted"] for m in box["messages"]] == [False]
        else:
            assert kept == [] and box["messages"] == []
            assert items[0].error == "direct_message_refused"
    finally:
        await close_instance(hearth, None)


async def test_fedify_actor__keys_query_says_it_offers_no_encrypted_messages(tmp_path: Path, fedify: StartPeer) -> None:
    """An actor document without ``e2ee:devices`` (every other fediverse server): the keys
    query answers 422 with the reason, stores no devices URL, and asks the peer for nothing
    but its actor document (no devices URL is guessed)."""
    hearth = await make_instance("h", "127.0.0.2", "sqlite", tmp_path / "h", None)
    try:
        peer = await fedify("127.0.0.8")
        alice = await hearth.user("alice", scopes="read write follow crypto")
        answer = await hearth.api(
            "GET", "/api/v1/hearthside/e2ee/keys", alice, expect=422, params={"actor": peer.actor_url}
        )
        assert "does not offer end-to-end encrypted messages" in answer["error"]
        (account,) = await hearth.rows(Account, Account.uri == peer.actor_url)
        assert account.devices_url is None and account.inbox_url is not None
    finally:
        await close_instance(hearth, None)
