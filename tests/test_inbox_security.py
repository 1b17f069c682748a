"""Every inbox security rule, proved by a request that breaks it (issue 3).

Set-up: a real Hearthside instance (``tests/federation_harness.py``) on 127.0.0.2 and one or two
simulated remote servers (``tests/remote_actor.py``) on 127.0.0.5/127.0.0.6 serving actor
documents with real RSA and Ed25519 keys; ``federation.allow_private_addresses`` lets Hearthside
fetch them. Deliveries are signed with ``federation.httpsig`` as a peer would sign them, and the
bad variants are crafted by hand (``sign_custom``).

Each refusal asserts three things: the status (research/federation.md §3.2: 401 for a missing or
bad signature, 403 for a suspended domain; 400 for a body that is not a valid activity, 413 over
the size cap, 415 for a wrong media type), a ``{"error": ...}`` body that names the problem, and
that nothing was written. "Nothing" is decided as follows: no ``inbox_items`` row and no row in
the tables an activity could affect (statuses, follows, favourites, notifications, blocks,
outbox, deliveries, jobs). The one thing a refused request may legitimately leave behind is the
signing actor's account and keys, cached when its key was fetched to check the signature
(Mastodon and Lemmy cache them too); refusals decided before any key is needed (structure,
time window, digest, domain) must not fetch anything at all, which the remote server's request
log proves.

Positive controls use the same builders with nothing broken, so no refusal can pass vacuously:
a member of a local group posts in it (draft-cavage and RFC 9421), and the inbox worker stores
the post in the group. The inbox worker is off in the other tests so that rows stay as the inbox
wrote them (the worker is the only code that applies an ``inbox_items`` row, so a refusal that
writes no row cannot have an effect).

Tests whose outcome depends on the database run on SQLite and PostgreSQL: the row a good
delivery writes, deduplication by the unique activity id (also under concurrent deliveries),
key caching and the refetch-once rule, domain blocks. The others run on SQLite only, to keep
the file fast: they differ from a positive control by a header or a field, not by storage.

Three tests guard holes this file found: signer ≠ actor must be refused (not stored for a
refetch), a refetched object must come from its author's origin, and a group cannot vouch for a
post it claims someone on another server wrote.
"""

from __future__ import annotations

import asyncio
import io
import json
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from federation_harness import Instance, close_instance, eventually, make_instance
from remote_actor import (
    ACTIVITY_JSON,
    AS_CONTEXT,
    AS_PUBLIC,
    KeyRing,
    RemoteActor,
    RemoteServer,
    content_digest_header,
    digest_header,
    http_date,
    sign_custom,
)
from sqlalchemy import func, select

from crypto.integrity import sign_object
from federation.httpsig import sign_request
from server import signatures
from server.db import make_sessionmaker
from server.ids import new_id
from server.models import (
    Account,
    ActorKey,
    Block,
    Delivery,
    DomainBlock,
    Favourite,
    Follow,
    InboxItem,
    Job,
    Notification,
    OutboxActivity,
    Status,
)

pytestmark = pytest.mark.timeout(60)

BOTH_DATABASES = pytest.mark.parametrize("kind", ["sqlite", "postgres"], indirect=True)

# Tables an applied activity could write to. Accounts and actor keys are watched separately:
# fetching a signer's key may cache them.
EFFECT_TABLES = (InboxItem, Status, Follow, Favourite, Notification, Block, OutboxActivity, Delivery, Job)


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def keys() -> KeyRing:
    """RSA and Ed25519 keys, generated once for the whole module."""
    return KeyRing.generate(rsa=4, ed25519=3)


@pytest.fixture
def kind(request: pytest.FixtureRequest) -> str:
    return str(getattr(request, "param", "sqlite"))


async def _hearth(request: pytest.FixtureRequest, kind: str, tmp_path: Path, workers: bool) -> AsyncIterator[Instance]:
    pg = request.getfixturevalue("pg_server") if kind == "postgres" else None
    instance = await make_instance("hearth", "127.0.0.2", kind, tmp_path / "hearth", pg, server={"workers": workers})
    try:
        yield instance
    finally:
        await close_instance(instance, pg)


@pytest.fixture
async def hearth(request: pytest.FixtureRequest, kind: str, tmp_path: Path) -> AsyncIterator[Instance]:
    """The instance under test, inbox worker off: rows stay exactly as the inbox wrote them."""
    async for instance in _hearth(request, kind, tmp_path, workers=False):
        yield instance


@pytest.fixture
async def live_hearth(request: pytest.FixtureRequest, kind: str, tmp_path: Path) -> AsyncIterator[Instance]:
    """The instance under test with its workers running (inbox, delivery, jobs)."""
    async for instance in _hearth(request, kind, tmp_path, workers=True):
        yield instance


async def _remote(host: str) -> AsyncIterator[RemoteServer]:
    server = RemoteServer(host)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def peer() -> AsyncIterator[RemoteServer]:
    """The remote server most tests' actors live on (127.0.0.5)."""
    async for server in _remote("127.0.0.5"):
        yield server


@pytest.fixture
async def other_peer() -> AsyncIterator[RemoteServer]:
    """A second remote origin (127.0.0.6), for cross-origin and replay cases."""
    async for server in _remote("127.0.0.6"):
        yield server


@pytest.fixture
def alice(peer: RemoteServer, keys: KeyRing) -> RemoteActor:
    return peer.actor("alice", keys.rsa[0], keys.ed25519[0])


@pytest.fixture
def bob(peer: RemoteServer, keys: KeyRing) -> RemoteActor:
    return peer.actor("bob", keys.rsa[1], keys.ed25519[1])


# ---------------------------------------------------------------------------- activities


def now() -> datetime:
    return datetime.now(UTC)


def _fresh(actor: RemoteActor, what: str) -> str:
    return f"{actor.uri}/{what}/{uuid.uuid4().hex[:12]}"


def note(author: RemoteActor, audience: str, text: str = "Checking in: today was hard but OK.") -> dict[str, Any]:
    return {
        "id": _fresh(author, "statuses"),
        "type": "Note",
        "attributedTo": author.uri,
        "content": f"<p>{text}</p>",
        "to": [AS_PUBLIC],
        "cc": [audience],
        "audience": audience,
        "published": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def create(actor: RemoteActor, obj: dict[str, Any]) -> dict[str, Any]:
    return {
        "@context": AS_CONTEXT,
        "id": f"{obj['id']}/activity",
        "type": "Create",
        "actor": actor.uri,
        "to": obj["to"],
        "cc": obj["cc"],
        "audience": obj.get("audience"),
        "published": obj["published"],
        "object": obj,
    }


def announce(group: RemoteActor, obj: dict[str, Any]) -> dict[str, Any]:
    return {
        "@context": AS_CONTEXT,
        "id": _fresh(group, "activities"),
        "type": "Announce",
        "actor": group.uri,
        "to": [AS_PUBLIC],
        "cc": [f"{group.uri}/followers"],
        "object": obj,
    }


def encode(document: dict[str, Any]) -> bytes:
    return json.dumps(document).encode()


def group_uri(hearth: Instance) -> str:
    return hearth.actor("circle", group=True)


def post_in_group(hearth: Instance, author: RemoteActor) -> dict[str, Any]:
    """The base activity of most tests: ``author`` posts in the local group ``circle``."""
    return create(author, note(author, group_uri(hearth)))


# ---------------------------------------------------------------------------- deliveries


@dataclass
class Answer:
    status: int
    body: Any

    @property
    def error(self) -> str:
        assert isinstance(self.body, dict) and isinstance(self.body.get("error"), str), self.body
        return str(self.body["error"])


async def deliver(hearth: Instance, body: bytes, headers: dict[str, str], path: str = "/inbox") -> Answer:
    assert hearth.http is not None
    # A BytesIO payload: aiohttp warns about (and blocks the loop on) large raw bytes bodies.
    async with hearth.http.post(hearth.base_url + path, data=io.BytesIO(body), headers=headers) as response:
        text = await response.text()
        try:
            parsed = json.loads(text) if text else None
        except ValueError:
            parsed = text
        return Answer(response.status, parsed)


async def deliver_signed(
    hearth: Instance, actor: RemoteActor, document: dict[str, Any], path: str = "/inbox", **sign: Any
) -> Answer:
    body = encode(document)
    return await deliver(hearth, body, actor.sign(hearth.base_url + path, body, **sign), path)


# ---------------------------------------------------------------------------- storage


@dataclass(frozen=True)
class Snapshot:
    effects: dict[str, int]
    remote_accounts: frozenset[str]
    actor_keys: frozenset[str]


async def snapshot(hearth: Instance) -> Snapshot:
    async with make_sessionmaker(hearth.engine)() as session:
        effects = {
            model.__tablename__: int(await session.scalar(select(func.count()).select_from(model)) or 0)
            for model in EFFECT_TABLES
        }
        accounts = (await session.scalars(select(Account.uri).where(Account.domain != ""))).all()
        key_ids = (await session.scalars(select(ActorKey.key_id))).all()
    return Snapshot(effects, frozenset(a or "" for a in accounts), frozenset(key_ids))


async def assert_refused(
    hearth: Instance,
    answer: Answer,
    before: Snapshot,
    *,
    status: int,
    names: Iterable[str],
    may_cache: Iterable[RemoteActor] = (),
) -> None:
    """``answer`` is a refusal with ``status`` whose error names every word of ``names``, and
    nothing was stored except, for actors in ``may_cache``, their account and keys."""
    assert answer.status == status, f"expected {status}, got {answer.status}: {answer.body}"
    message = answer.error.lower()
    for word in names:
        assert word.lower() in message, f"error {answer.error!r} does not mention {word!r}"
    after = await snapshot(hearth)
    assert after.effects == before.effects, "a refused request wrote rows"
    cached = {actor.uri for actor in may_cache}
    assert after.remote_accounts - before.remote_accounts <= cached
    new_keys = after.actor_keys - before.actor_keys
    assert all(key.split("#", 1)[0] in cached for key in new_keys), new_keys


async def inbox_rows(hearth: Instance, activity_id: str | None = None) -> list[InboxItem]:
    where = [] if activity_id is None else [InboxItem.activity_id == activity_id]
    return await hearth.rows(InboxItem, *where)


async def assert_accepted(hearth: Instance, answer: Answer, document: dict[str, Any]) -> InboxItem:
    assert answer.status == 202, answer.body
    [row] = await inbox_rows(hearth, document["id"])
    assert row.actor_uri == document["actor"] and row.activity_type == document["type"]
    assert row.state == "pending" and json.loads(row.body or "{}") == document
    return row


async def suspend(hearth: Instance, domain: str, severity: str = "suspend") -> None:
    moment = datetime.now(UTC)
    async with make_sessionmaker(hearth.engine)() as session:
        session.add(DomainBlock(id=new_id(), domain=domain, severity=severity, created_at=moment, updated_at=moment))
        await session.commit()


def no_requests(*servers: RemoteServer) -> None:
    for server in servers:
        assert server.requests == [], f"{server.host} was asked {server.requests}"


# ============================================================================ positive controls


async def make_group(hearth: Instance) -> dict[str, Any]:
    owner = await hearth.user("owner")
    body = {"name": "circle", "display_name": "Circle"}
    group: dict[str, Any] = await hearth.api("POST", "/api/v1/hearthside/groups", owner, json=body)
    assert group_uri(hearth) == hearth.actor(group["name"], group=True)
    return group


async def test_inbox__member_post_in_local_group_is_accepted_and_applied(
    live_hearth: Instance, peer: RemoteServer, alice: RemoteActor
) -> None:
    """The end-to-end control: alice joins the local group, posts in it, and the post lands."""
    hearth = live_hearth
    await make_group(hearth)
    group = group_uri(hearth)
    follow = {
        "@context": AS_CONTEXT,
        "id": _fresh(alice, "follows"),
        "type": "Follow",
        "actor": alice.uri,
        "object": group,
    }
    answer = await deliver_signed(hearth, alice, follow, path="/groups/circle/inbox")
    assert answer.status == 202, answer.body

    async def member() -> bool:
        rows = await hearth.rows(Follow, Follow.state == "accepted")
        return any(row.remote for row in rows)

    await eventually(member, what="alice's membership accepted")

    activity = post_in_group(hearth, alice)
    answer = await deliver_signed(hearth, alice, activity)
    assert answer.status == 202, answer.body
    [row] = await inbox_rows(hearth, activity["id"])
    assert row.signer_key_id == alice.key_id and row.refetch_uri is None

    async def stored() -> list[Status]:
        return await hearth.rows(Status, Status.uri == activity["object"]["id"])

    [status] = await eventually(stored, what="alice's post stored in the group")
    circle = await hearth.one(Account, Account.username == "circle", Account.domain == "")
    assert status.group_id == circle.id and status.text.startswith("Checking in")

    # FEP-1b12: the group redistributes the activity exactly as received, to its members.
    async def announced() -> list[dict[str, Any]]:
        return [d for d in peer.received if d.get("type") == "Announce" and d.get("object") == activity]

    [redistributed] = await eventually(announced, what="the group's Announce delivered to alice")
    assert redistributed["actor"] == group


@BOTH_DATABASES
@pytest.mark.parametrize("scheme", ["cavage", "rfc9421"])
async def test_inbox__accepts_correctly_signed_create(
    hearth: Instance, peer: RemoteServer, alice: RemoteActor, scheme: str
) -> None:
    activity = post_in_group(hearth, alice)
    answer = await deliver_signed(hearth, alice, activity, rfc9421=scheme == "rfc9421")
    row = await assert_accepted(hearth, answer, activity)
    assert row.signer_key_id == alice.key_id and row.refetch_uri is None
    assert peer.gets(alice.path) == 1  # the key was fetched once, and is now cached
    [cached] = await hearth.rows(ActorKey, ActorKey.key_id == alice.key_id)
    assert cached.public_pem == alice.rsa.public_key().to_pem()


async def test_inbox__accepts_rfc9421_ed25519_signature_with_assertion_key(
    hearth: Instance, peer: RemoteServer, alice: RemoteActor
) -> None:
    """Ed25519 via the FEP-521a key (Mastodon 4.7 verifies these, research/federation.md §2.6)."""
    activity = post_in_group(hearth, alice)
    answer = await deliver_signed(
        hearth, alice, activity, rfc9421=True, key=alice.ed25519, key_id=alice.assertion_key_id
    )
    row = await assert_accepted(hearth, answer, activity)
    assert row.signer_key_id == alice.assertion_key_id


@pytest.mark.parametrize(
    "content_type",
    [
        "application/activity+json; charset=utf-8",
        'application/ld+json; profile="https://www.w3.org/ns/activitystreams"',
    ],
)
async def test_inbox__accepts_activitypub_media_type_variants(
    hearth: Instance, peer: RemoteServer, alice: RemoteActor, content_type: str
) -> None:
    """research/federation.md §8.4 item 21 (GoToSocial's list)."""
    activity = post_in_group(hearth, alice)
    body = encode(activity)
    url = hearth.base_url + "/inbox"
    headers = sign_request(
        "POST", url, headers={"Content-Type": content_type}, body=body, key=alice.rsa, key_id=alice.key_id, now=now()
    )
    await assert_accepted(hearth, await deliver(hearth, body, headers), activity)


async def test_inbox__accepts_signature_fifty_minutes_old(
    hearth: Instance, peer: RemoteServer, alice: RemoteActor
) -> None:
    """The window is ±1 hour (research/federation.md §8.3 item 15), not narrower."""
    activity = post_in_group(hearth, alice)
    answer = await deliver_signed(hearth, alice, activity, now=now() - timedelta(minutes=50))
    await assert_accepted(hearth, answer, activity)


# ============================================================================ request shape


async def test_inbox__rejects_unsigned_request(hearth: Instance, peer: RemoteServer, alice: RemoteActor) -> None:
    before = await snapshot(hearth)
    body = encode(post_in_group(hearth, alice))
    answer = await deliver(hearth, body, {"Content-Type": ACTIVITY_JSON, "Digest": digest_header(body)})
    await assert_refused(hearth, answer, before, status=401, names=["not signed"])
    no_requests(peer)


async def test_inbox__rejects_wrong_content_type(hearth: Instance, peer: RemoteServer, alice: RemoteActor) -> None:
    before = await snapshot(hearth)
    body = encode(post_in_group(hearth, alice))
    url = hearth.base_url + "/inbox"
    headers = sign_request(
        "POST", url, headers={"Content-Type": "text/plain"}, body=body, key=alice.rsa, key_id=alice.key_id, now=now()
    )
    answer = await deliver(hearth, body, headers)
    await assert_refused(hearth, answer, before, status=415, names=["Content-Type", "text/plain"])
    no_requests(peer)


async def test_inbox__rejects_oversized_body(hearth: Instance, peer: RemoteServer, alice: RemoteActor) -> None:
    """Bodies over ``server.max_body_bytes`` (1 MiB, Mastodon's cap, research §2.7) are 413."""
    before = await snapshot(hearth)
    limit = hearth.config.get("server", "max_body_bytes")
    activity = post_in_group(hearth, alice)
    activity["object"]["content"] = "<p>" + "x" * limit + "</p>"
    answer = await deliver_signed(hearth, alice, activity)
    await assert_refused(hearth, answer, before, status=413, names=["too large"])
    no_requests(peer)


async def test_inbox__rejects_malformed_json(hearth: Instance, peer: RemoteServer, alice: RemoteActor) -> None:
    before = await snapshot(hearth)
    body = encode(post_in_group(hearth, alice))[:-7]  # cut off: a signed but broken document
    answer = await deliver(hearth, body, alice.sign(hearth.base_url + "/inbox", body))
    await assert_refused(hearth, answer, before, status=400, names=["JSON"])
    no_requests(peer)


async def test_inbox__rejects_json_that_is_not_an_object(
    hearth: Instance, peer: RemoteServer, alice: RemoteActor
) -> None:
    before = await snapshot(hearth)
    body = encode([post_in_group(hearth, alice)])  # type: ignore[arg-type]
    answer = await deliver(hearth, body, alice.sign(hearth.base_url + "/inbox", body))
    await assert_refused(hearth, answer, before, status=400, names=["object"])
    no_requests(peer)


async def test_inbox__rejects_json_nested_too_deep(hearth: Instance, peer: RemoteServer, alice: RemoteActor) -> None:
    before = await snapshot(hearth)
    activity = post_in_group(hearth, alice)
    deep: Any = "bottom"
    for _ in range(40):
        deep = {"nested": deep}
    activity["object"]["extension"] = deep
    answer = await deliver_signed(hearth, alice, activity)
    await assert_refused(hearth, answer, before, status=400, names=["deep"])
    no_requests(peer)


def _without_context(doc: dict[str, Any]) -> None:
    del doc["@context"]


def _without_actor(doc: dict[str, Any]) -> None:
    del doc["actor"]


def _relative_id(doc: dict[str, Any]) -> None:
    doc["id"] = "/statuses/1/activity"


def _create_without_object(doc: dict[str, Any]) -> None:
    del doc["object"]


def _numeric_type(doc: dict[str, Any]) -> None:
    doc["type"] = 7


@pytest.mark.parametrize(
    ("breaks", "field"),
    [
        (_without_context, "@context"),
        (_without_actor, "actor"),
        (_relative_id, "id"),
        (_create_without_object, "object"),
        (_numeric_type, "type"),
    ],
)
async def test_inbox__rejects_schema_violation(
    hearth: Instance, peer: RemoteServer, alice: RemoteActor, breaks: Any, field: str
) -> None:
    before = await snapshot(hearth)
    activity = post_in_group(hearth, alice)
    breaks(activity)
    answer = await deliver_signed(hearth, alice, activity)
    await assert_refused(hearth, answer, before, status=400, names=["activity", field])
    no_requests(peer)


# ============================================================================ signatures


async def test_inbox__rejects_unknown_key_of_unknown_actor(
    hearth: Instance, peer: RemoteServer, alice: RemoteActor
) -> None:
    """The keyId names an actor its server does not know (404)."""
    before = await snapshot(hearth)
    ghost = f"{peer.base_url}/users/ghost"
    activity = post_in_group(hearth, alice)
    activity["actor"] = activity["object"]["attributedTo"] = ghost
    answer = await deliver_signed(hearth, alice, activity, key_id=f"{ghost}#main-key")
    await assert_refused(hearth, answer, before, status=401, names=[ghost, "could not be fetched"])
    assert peer.gets("/users/ghost") == 1


async def test_inbox__rejects_key_id_the_actor_does_not_publish(
    hearth: Instance, peer: RemoteServer, alice: RemoteActor
) -> None:
    before = await snapshot(hearth)
    activity = post_in_group(hearth, alice)
    answer = await deliver_signed(hearth, alice, activity, key_id=f"{alice.uri}#other-key")
    await assert_refused(hearth, answer, before, status=401, names=["other-key", "not a key"], may_cache=[alice])
    assert peer.gets(alice.path) == 1


async def test_inbox__rejects_signature_made_with_wrong_key(
    hearth: Instance, peer: RemoteServer, alice: RemoteActor, keys: KeyRing
) -> None:
    before = await snapshot(hearth)
    activity = post_in_group(hearth, alice)
    answer = await deliver_signed(hearth, alice, activity, key=keys.rsa[3])
    await assert_refused(hearth, answer, before, status=401, names=["did not verify"], may_cache=[alice])
    assert peer.gets(alice.path) == 1


async def test_inbox__rejects_tampered_body_with_recomputed_digest(
    hearth: Instance, peer: RemoteServer, alice: RemoteActor
) -> None:
    """The attacker fixes the Digest after editing the body; only the signature catches it."""
    before = await snapshot(hearth)
    activity = post_in_group(hearth, alice)
    headers = alice.sign(hearth.base_url + "/inbox", encode(activity))
    activity["object"]["content"] = "<p>Something alice never wrote.</p>"
    tampered = encode(activity)
    headers["Digest"] = digest_header(tampered)
    answer = await deliver(hearth, tampered, headers)
    await assert_refused(hearth, answer, before, status=401, names=["did not verify"], may_cache=[alice])


@pytest.mark.parametrize("scheme", ["cavage", "rfc9421"])
async def test_inbox__rejects_tampered_digest(
    hearth: Instance, peer: RemoteServer, alice: RemoteActor, scheme: str
) -> None:
    """The body no longer matches the signed Digest / Content-Digest: refused before any key fetch."""
    before = await snapshot(hearth)
    activity = post_in_group(hearth, alice)
    headers = alice.sign(hearth.base_url + "/inbox", encode(activity), rfc9421=scheme == "rfc9421")
    activity["object"]["content"] = "<p>Something alice never wrote.</p>"
    answer = await deliver(hearth, encode(activity), headers)
    header = "Content-Digest" if scheme == "rfc9421" else "Digest"
    await assert_refused(hearth, answer, before, status=401, names=[header, "does not match"])
    no_requests(peer)


def _cavage_params(actor: RemoteActor, covered: str, algorithm: str = "rsa-sha256") -> str:
    return f'keyId="{actor.key_id}",algorithm="{algorithm}",headers="{covered}"'


def _cavage_headers(url_host: str, body: bytes, moment: datetime) -> dict[str, str]:
    return {
        "Host": url_host,
        "Date": http_date(moment),
        "Digest": digest_header(body),
        "Content-Type": ACTIVITY_JSON,
    }


@pytest.mark.parametrize(
    ("covered", "missing"),
    [
        ("(request-target) host date content-type", "digest"),
        ("host date digest content-type", "(request-target)"),
        ("(request-target) date digest content-type", "host"),
        ("(request-target) host digest content-type", "date"),
    ],
)
async def test_inbox__rejects_cavage_signature_missing_covered_component(
    hearth: Instance, peer: RemoteServer, alice: RemoteActor, covered: str, missing: str
) -> None:
    before = await snapshot(hearth)
    body = encode(post_in_group(hearth, alice))
    url = hearth.base_url + "/inbox"
    headers = sign_custom(
        "POST",
        url,
        _cavage_headers(hearth.domain, body, now()),
        body,
        key=alice.rsa,
        signature_params=_cavage_params(alice, covered),
    )
    answer = await deliver(hearth, body, headers)
    await assert_refused(hearth, answer, before, status=401, names=["must cover", missing])
    no_requests(peer)


def _rfc9421_headers(hearth: Instance, body: bytes) -> dict[str, str]:
    return {
        "Host": hearth.domain,
        "Date": http_date(now()),
        "Content-Type": ACTIVITY_JSON,
        "Content-Digest": content_digest_header(body),
    }


@pytest.mark.parametrize(
    ("components", "missing"),
    [
        ('"@method" "@target-uri" "content-type"', "content-digest"),
        ('"@method" "content-type" "content-digest"', "@target-uri"),
        ('"@target-uri" "content-type" "content-digest"', "@method"),
    ],
)
async def test_inbox__rejects_rfc9421_signature_missing_covered_component(
    hearth: Instance, peer: RemoteServer, alice: RemoteActor, components: str, missing: str
) -> None:
    """Mastodon's RFC 9421 rules (research/federation.md §3.3): @method, @target-uri and, on a
    POST, content-digest must be covered."""
    before = await snapshot(hearth)
    body = encode(post_in_group(hearth, alice))
    params = f'({components});created={int(now().timestamp())};keyid="{alice.key_id}";alg="rsa-v1_5-sha256"'
    headers = sign_custom(
        "POST",
        hearth.base_url + "/inbox",
        _rfc9421_headers(hearth, body),
        body,
        key=alice.rsa,
        signature_params=params,
        rfc9421=True,
    )
    answer = await deliver(hearth, body, headers)
    await assert_refused(hearth, answer, before, status=401, names=["must cover", missing])
    no_requests(peer)


@pytest.mark.parametrize("scheme", ["cavage", "rfc9421"])
@pytest.mark.parametrize(
    ("shift", "word"),
    [pytest.param(-timedelta(hours=2), "old", id="stale"), pytest.param(timedelta(hours=2), "future", id="future")],
)
async def test_inbox__rejects_stale_or_future_signature(
    hearth: Instance, peer: RemoteServer, alice: RemoteActor, scheme: str, shift: timedelta, word: str
) -> None:
    """Outside now ± 1 hour (research/federation.md §3.2, §8.3 item 15): 401, before any key fetch."""
    before = await snapshot(hearth)
    activity = post_in_group(hearth, alice)
    answer = await deliver_signed(hearth, alice, activity, rfc9421=scheme == "rfc9421", now=now() + shift)
    await assert_refused(hearth, answer, before, status=401, names=["signature creation time", word])
    no_requests(peer)


@pytest.mark.parametrize("algorithm", ["hmac-sha256", "rsa-sha512"])
async def test_inbox__rejects_unsupported_cavage_algorithm(
    hearth: Instance, peer: RemoteServer, alice: RemoteActor, algorithm: str
) -> None:
    before = await snapshot(hearth)
    body = encode(post_in_group(hearth, alice))
    headers = sign_custom(
        "POST",
        hearth.base_url + "/inbox",
        _cavage_headers(hearth.domain, body, now()),
        body,
        key=alice.rsa,
        signature_params=_cavage_params(alice, "(request-target) host date digest content-type", algorithm),
    )
    answer = await deliver(hearth, body, headers)
    await assert_refused(hearth, answer, before, status=401, names=["algorithm", algorithm])
    no_requests(peer)


async def test_inbox__rejects_cavage_signature_made_for_another_host(
    hearth: Instance, peer: RemoteServer, other_peer: RemoteServer, alice: RemoteActor
) -> None:
    """A delivery to another server, replayed here with its headers: the signed Host is not ours."""
    before = await snapshot(hearth)
    activity = post_in_group(hearth, alice)
    body = encode(activity)
    headers = alice.sign(other_peer.base_url + "/inbox", body)
    assert headers["Host"] == f"{other_peer.host}:{other_peer.port}"
    answer = await deliver(hearth, body, headers)
    await assert_refused(hearth, answer, before, status=401, names=["host", other_peer.host])
    no_requests(peer, other_peer)


async def test_inbox__rejects_rfc9421_signature_made_for_another_target(
    hearth: Instance, peer: RemoteServer, other_peer: RemoteServer, alice: RemoteActor
) -> None:
    """RFC 9421 binds @target-uri: a replay to our inbox rebuilds another base and fails."""
    before = await snapshot(hearth)
    body = encode(post_in_group(hearth, alice))
    headers = alice.sign(other_peer.base_url + "/inbox", body, rfc9421=True)
    headers["Host"] = hearth.domain
    answer = await deliver(hearth, body, headers)
    await assert_refused(hearth, answer, before, status=401, names=["did not verify"], may_cache=[alice])
    no_requests(other_peer)


async def test_inbox__rejects_forged_signature_claiming_a_local_key(
    hearth: Instance, peer: RemoteServer, alice: RemoteActor, keys: KeyRing
) -> None:
    """A request claiming one of our own members' keys never verifies with another key, and
    never makes us fetch anything."""
    await hearth.user("carol")
    before = await snapshot(hearth)
    carol = hearth.actor("carol")
    activity = post_in_group(hearth, alice)
    activity["actor"] = activity["object"]["attributedTo"] = carol
    activity["id"] = f"{carol}/statuses/1/activity"
    activity["object"]["id"] = f"{carol}/statuses/1"
    answer = await deliver_signed(hearth, alice, activity, key=keys.rsa[3], key_id=f"{carol}#main-key")
    await assert_refused(hearth, answer, before, status=401, names=[f"{carol}#main-key"])
    no_requests(peer)


# ============================================================================ who may say what


async def test_inbox__rejects_activity_whose_signer_is_not_its_actor(
    hearth: Instance, peer: RemoteServer, alice: RemoteActor, bob: RemoteActor
) -> None:
    """bob signs an activity that claims to be alice's (research/federation.md §8.3 item 14)."""
    before = await snapshot(hearth)
    activity = post_in_group(hearth, alice)
    answer = await deliver_signed(hearth, bob, activity)
    await assert_refused(hearth, answer, before, status=401, names=["actor"], may_cache=[bob])


async def test_inbox__rejects_create_of_object_from_another_origin(
    hearth: Instance, peer: RemoteServer, other_peer: RemoteServer, alice: RemoteActor
) -> None:
    """FEP-fe34: alice cannot create an object whose id lives on another server."""
    before = await snapshot(hearth)
    activity = post_in_group(hearth, alice)
    activity["object"]["id"] = f"{other_peer.base_url}/notes/1"
    answer = await deliver_signed(hearth, alice, activity)
    await assert_refused(hearth, answer, before, status=401, names=["refused", "object_origin"], may_cache=[alice])


async def test_inbox__rejects_create_attributed_to_someone_else(
    hearth: Instance, peer: RemoteServer, alice: RemoteActor, bob: RemoteActor
) -> None:
    before = await snapshot(hearth)
    activity = post_in_group(hearth, alice)
    activity["object"]["attributedTo"] = bob.uri
    answer = await deliver_signed(hearth, alice, activity)
    await assert_refused(hearth, answer, before, status=401, names=["refused", "attribution"], may_cache=[alice])


# ============================================================================ domains


@BOTH_DATABASES
async def test_inbox__rejects_activity_from_suspended_domain(
    hearth: Instance, peer: RemoteServer, alice: RemoteActor
) -> None:
    """research/federation.md §3.2: a signature from a blocked domain is 403, and its key is not
    even fetched."""
    await suspend(hearth, peer.host)
    before = await snapshot(hearth)
    answer = await deliver_signed(hearth, alice, post_in_group(hearth, alice))
    await assert_refused(hearth, answer, before, status=403, names=[peer.host, "refused"])
    no_requests(peer)


async def test_inbox__accepts_activity_from_silenced_domain(
    hearth: Instance, peer: RemoteServer, alice: RemoteActor
) -> None:
    """Only ``suspend`` refuses requests; ``silence`` is applied later, to what is shown."""
    await suspend(hearth, peer.host, severity="silence")
    activity = post_in_group(hearth, alice)
    await assert_accepted(hearth, await deliver_signed(hearth, alice, activity), activity)


# ============================================================================ Delete, duplicates, key rotation


@pytest.mark.parametrize("verb", ["Delete", "Update"])
async def test_inbox__delete_or_update_of_unknown_actor_is_202_without_fetch(
    hearth: Instance, peer: RemoteServer, keys: KeyRing, verb: str
) -> None:
    """Mastodon's rule (research/federation.md §8.4 item 22): a deleted account's key cannot
    be fetched any more, and nothing here concerns an actor we never saw."""
    ghost = peer.actor("ghost", keys.rsa[2], keys.ed25519[2])
    before = await snapshot(hearth)
    obj: Any = ghost.uri if verb == "Delete" else ghost.document()
    activity = {
        "@context": AS_CONTEXT,
        "id": f"{ghost.uri}#{verb.lower()}",
        "type": verb,
        "actor": ghost.uri,
        "object": obj,
    }
    if verb == "Delete":
        activity["to"] = [AS_PUBLIC]
    answer = await deliver_signed(hearth, ghost, activity)
    assert answer.status == 202, answer.body
    no_requests(peer)
    after = await snapshot(hearth)
    assert after == before


async def test_inbox__delete_from_known_actor_with_bad_signature_is_refused(
    hearth: Instance, peer: RemoteServer, alice: RemoteActor, keys: KeyRing
) -> None:
    """The unknown-actor shortcut must not excuse a forged Delete of an actor we know."""
    first = post_in_group(hearth, alice)
    await assert_accepted(hearth, await deliver_signed(hearth, alice, first), first)
    before = await snapshot(hearth)
    delete = {
        "@context": AS_CONTEXT,
        "id": f"{alice.uri}#delete",
        "type": "Delete",
        "actor": alice.uri,
        "object": alice.uri,
    }
    answer = await deliver_signed(hearth, alice, delete, key=keys.rsa[3])
    await assert_refused(hearth, answer, before, status=401, names=["did not verify"], may_cache=[alice])
    [account] = await hearth.rows(Account, Account.uri == alice.uri)
    assert account.deleted_at is None


@BOTH_DATABASES
async def test_inbox__duplicate_delivery_stores_one_row(
    hearth: Instance, peer: RemoteServer, alice: RemoteActor
) -> None:
    """Dedupe by activity id (research/federation.md §8.4 item 22): retried, concurrent, and
    sent to both the shared and a personal inbox, the activity is stored once."""
    carol = await hearth.user("carol")
    activity = post_in_group(hearth, alice)
    await assert_accepted(hearth, await deliver_signed(hearth, alice, activity), activity)
    again = await deliver_signed(hearth, alice, activity)
    personal = await deliver_signed(hearth, alice, activity, path=f"/users/{carol.username}/inbox")
    concurrent = await asyncio.gather(*(deliver_signed(hearth, alice, activity) for _ in range(4)))
    assert [a.status for a in (again, personal, *concurrent)] == [202] * 6
    assert len(await inbox_rows(hearth, activity["id"])) == 1
    assert len(await inbox_rows(hearth)) == 1


@BOTH_DATABASES
async def test_inbox__refetches_rotated_key_exactly_once(
    hearth: Instance, peer: RemoteServer, alice: RemoteActor, keys: KeyRing
) -> None:
    """research/federation.md §2.6, §3.6: a signature that fails with the cached key makes us
    fetch the actor once more; if the fresh key fails too, the answer is 401."""
    first = post_in_group(hearth, alice)
    await assert_accepted(hearth, await deliver_signed(hearth, alice, first), first)
    assert peer.gets(alice.path) == 1

    alice.rsa = keys.rsa[2]  # alice rotates her key; our cache still holds the old one
    rotated = post_in_group(hearth, alice)
    await assert_accepted(hearth, await deliver_signed(hearth, alice, rotated), rotated)
    assert peer.gets(alice.path) == 2
    [cached] = await hearth.rows(ActorKey, ActorKey.key_id == alice.key_id)
    assert cached.public_pem == keys.rsa[2].public_key().to_pem()

    before = await snapshot(hearth)
    forged = post_in_group(hearth, alice)
    answer = await deliver_signed(hearth, alice, forged, key=keys.rsa[3])
    await assert_refused(hearth, answer, before, status=401, names=["did not verify"], may_cache=[alice])
    # The key was refetched moments ago: within the cooldown a bad signature costs no fetch
    # (a flood of forged requests must not become a flood of fetches).
    assert peer.gets(alice.path) == 2

    signatures._last_refetch.clear()  # the cooldown has passed
    before = await snapshot(hearth)
    forged = post_in_group(hearth, alice)
    answer = await deliver_signed(hearth, alice, forged, key=keys.rsa[3])
    await assert_refused(hearth, answer, before, status=401, names=["did not verify"], may_cache=[alice])
    assert peer.gets(alice.path) == 3  # one refetch for the failing request, not more

    # With the fresh key cached again, a good signature needs no fetch at all.
    later = post_in_group(hearth, alice)
    await assert_accepted(hearth, await deliver_signed(hearth, alice, later), later)
    assert peer.gets(alice.path) == 3


# ============================================================================ cross-origin objects


@pytest.fixture
def lemmy_group(other_peer: RemoteServer, keys: KeyRing) -> RemoteActor:
    """A group on another origin that redistributes alice's post (FEP-1b12, Lemmy's shape)."""
    return other_peer.actor("gardening", keys.rsa[3], keys.ed25519[2], kind="Group")


async def test_inbox__cross_origin_announce_without_proof_is_marked_for_refetch(
    hearth: Instance, peer: RemoteServer, alice: RemoteActor, lemmy_group: RemoteActor
) -> None:
    """research/federation.md §8.4 item 23: the Announce is genuine, its content only a claim,
    so the worker must fetch the object from its own origin before using it."""
    post = note(alice, lemmy_group.uri)
    activity = announce(lemmy_group, post)
    row = await assert_accepted(hearth, await deliver_signed(hearth, lemmy_group, activity), activity)
    assert row.refetch_uri == post["id"]


async def test_inbox__cross_origin_announce_with_valid_proof_is_trusted(
    hearth: Instance, peer: RemoteServer, alice: RemoteActor, lemmy_group: RemoteActor
) -> None:
    """A FEP-8b32 proof by the author's FEP-521a key vouches for the object: no refetch."""
    post = sign_object(note(alice, lemmy_group.uri), alice.ed25519, alice.assertion_key_id, now())
    activity = announce(lemmy_group, post)
    row = await assert_accepted(hearth, await deliver_signed(hearth, lemmy_group, activity), activity)
    assert row.refetch_uri is None
    assert peer.gets(alice.path) == 1  # the author's assertion key was fetched to check the proof


def _tampered_after_signing(post: dict[str, Any], alice: RemoteActor, bob: RemoteActor) -> dict[str, Any]:
    signed = sign_object(post, alice.ed25519, alice.assertion_key_id, now())
    signed["content"] = "<p>Something alice never wrote.</p>"
    return signed


def _signed_by_another_actor(post: dict[str, Any], alice: RemoteActor, bob: RemoteActor) -> dict[str, Any]:
    return sign_object(post, bob.ed25519, bob.assertion_key_id, now())


def _signed_with_unpublished_key(post: dict[str, Any], alice: RemoteActor, bob: RemoteActor) -> dict[str, Any]:
    return sign_object(post, bob.ed25519, alice.assertion_key_id, now())


@pytest.mark.parametrize("forge", [_tampered_after_signing, _signed_by_another_actor, _signed_with_unpublished_key])
async def test_inbox__cross_origin_announce_with_invalid_proof_is_marked_for_refetch(
    hearth: Instance, peer: RemoteServer, alice: RemoteActor, bob: RemoteActor, lemmy_group: RemoteActor, forge: Any
) -> None:
    """A proof that does not verify, or is not the author's, vouches for nothing."""
    post = forge(note(alice, lemmy_group.uri), alice, bob)
    activity = announce(lemmy_group, post)
    row = await assert_accepted(hearth, await deliver_signed(hearth, lemmy_group, activity), activity)
    assert row.refetch_uri == post["id"]


def mentioning(note_id: str, author: str, local: str) -> dict[str, Any]:
    """A public Note by ``author`` that mentions the local account ``local`` (so it concerns us)."""
    return {
        "id": note_id,
        "type": "Note",
        "attributedTo": author,
        "content": "<p>Words of the author.</p>",
        "to": [AS_PUBLIC],
        "cc": [local],
        "tag": [{"type": "Mention", "href": local, "name": "@carol"}],
        "published": now().strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


async def all_processed(hearth: Instance, answers: Iterable[Answer]) -> None:
    """Wait until the inbox worker has finished every stored row (when anything was stored)."""
    if any(answer.status == 202 for answer in answers):

        async def processed() -> bool:
            return all(row.state != "pending" for row in await inbox_rows(hearth))

        await eventually(processed, what="inbox rows processed")


async def test_inbox__signer_not_actor_cannot_forge_a_post_through_refetch(
    live_hearth: Instance,
    peer: RemoteServer,
    other_peer: RemoteServer,
    alice: RemoteActor,
    keys: KeyRing,
) -> None:
    """mallory (another origin) signs a Create claiming to be alice's, whose object id is the
    activity id on mallory's server; mallory serves the "original" there. Nothing may end up
    stored as alice's post, and the inbox should refuse the delivery outright.

    Control: mallory's own post, built the same way, is stored (so the forged one is not
    dropped for some unrelated reason)."""
    hearth = live_hearth
    carol = hearth.actor((await hearth.user("carol")).username)
    mallory = other_peer.actor("mallory", keys.rsa[3], keys.ed25519[2])

    own = mentioning(f"{mallory.uri}/statuses/1", mallory.uri, carol)
    control = await deliver_signed(hearth, mallory, create(mallory, own))

    forged_id = f"{other_peer.base_url}/forged/1"
    forged_note = mentioning(forged_id, alice.uri, carol)
    other_peer.objects["/forged/1"] = {"@context": AS_CONTEXT, **forged_note}
    forged = {**create(alice, forged_note), "id": forged_id}  # the object id is the activity id
    answer = await deliver_signed(hearth, mallory, forged)

    await all_processed(hearth, [control, answer])
    assert control.status == 202 and await hearth.rows(Status, Status.uri == own["id"])
    assert await hearth.rows(Status, Status.uri == forged_id) == [], "a post forged as alice's was stored"
    assert answer.status == 401, answer.body


async def test_inbox__group_cannot_forge_a_post_by_announcing_it_from_its_own_origin(
    live_hearth: Instance,
    peer: RemoteServer,
    other_peer: RemoteServer,
    alice: RemoteActor,
    lemmy_group: RemoteActor,
    keys: KeyRing,
) -> None:
    """A group announces a Note that lives on the group's origin but claims alice (another
    origin) as its author. Only alice's origin or alice's FEP-8b32 proof can vouch for that
    (FEP-fe34); nothing may be stored as alice's post.

    Control: the group's announce of a post by one of its own server's members is stored."""
    hearth = live_hearth
    carol = hearth.actor((await hearth.user("carol")).username)
    gardener = other_peer.actor("gardener", keys.rsa[1], keys.ed25519[1])

    own = mentioning(f"{other_peer.base_url}/notes/1", gardener.uri, carol)
    other_peer.objects["/notes/1"] = {"@context": AS_CONTEXT, **own}
    control = await deliver_signed(hearth, lemmy_group, announce(lemmy_group, own))

    forged = mentioning(f"{other_peer.base_url}/notes/2", alice.uri, carol)
    other_peer.objects["/notes/2"] = {"@context": AS_CONTEXT, **forged}
    answer = await deliver_signed(hearth, lemmy_group, announce(lemmy_group, forged))

    await all_processed(hearth, [control, answer])
    assert control.status == 202 and await hearth.rows(Status, Status.uri == own["id"])
    assert await hearth.rows(Status, Status.uri == forged["id"]) == [], "a post forged as alice's was stored"
