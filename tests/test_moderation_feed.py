"""The signed moderation decision feed (moderation/feed.py, moderation/fires.py, moderation/uuid7.py).

research/moderation.md §6.c tests 6 (FIRES mapping), 7 (tampering), 8 (key set and rotation),
9 (JCS), 22 (expiry and Tombstones), plus UUIDv7 change ids, strict parsing and the privacy rules
of §6.b. Vectors: tests/vectors/moderation/feed/ (provenance in its README). Oracle for the
proofs: apsig's ProofVerifier (an independent FEP-8b32 implementation).
"""

from __future__ import annotations

import copy
import csv
import io
import json
import os
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from apsig import ProofVerifier
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto.keys import generate_ed25519
from crypto.signing import PrivateKey, PublicKey
from moderation.feed import (
    FIRES_CONTEXT,
    Entry,
    FeedError,
    MastodonHint,
    NotPublishableError,
    PublisherKey,
    changes_collection_document,
    changes_page_document,
    check_page_order,
    check_publishable,
    dataset_document,
    normalize_actor_uri,
    normalize_domain,
    page_cursor,
    page_url,
    parse_changes_page,
    parse_dataset,
    parse_entry,
    parse_snapshot,
    purge_tombstoned,
    reduce_snapshot,
    sign_entry,
    snapshot_document,
    verify_entry,
)
from moderation.fires import (
    DENYLIST_HEADER,
    MAX_CSV_ROWS,
    Decision,
    Removal,
    decisions_from_entries,
    export_fires_csv_set,
    import_fires_snapshot,
    policy_for_decision,
)
from moderation.uuid7 import MAX_MS, Uuid7Error, Uuid7Generator, canonical_uuid7, parse_uuid7, uuid7

VECTORS = Path(__file__).parent / "vectors" / "moderation" / "feed"
METHOD = "https://hearth-a.example/actor#moderation-2026-01"
FEED = "https://hearth-a.example/moderation/feeds/partners"
NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
SILENCE = ("auto-unlisted", "prevent-trending", "require-follow-requests")
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def load(name: str) -> Any:
    return json.loads((VECTORS / name).read_text(encoding="utf-8"))


@cache
def vector_key() -> PrivateKey:
    return PrivateKey.from_pem((VECTORS / "publisher-test-key.pem").read_text())


@cache
def fresh_key(n: int) -> PrivateKey:
    return PrivateKey.from_pem(generate_ed25519().private_pem)


def vector_keys() -> dict[str, PublicKey]:
    return {METHOD: vector_key().public_key()}


def signed_recommendation() -> dict[str, Any]:
    doc: dict[str, Any] = load("signed-recommendation.json")
    return doc


_ids = Uuid7Generator()


def next_id(at: datetime = T0) -> str:
    return _ids.next(now_ms=int(at.timestamp() * 1000), rand=os.urandom(10))


def entry(**changes: Any) -> Entry:
    """A valid domain Recommendation with ``changes`` applied."""
    change_id = changes.pop("change_id", None) or next_id(changes.get("published", T0))
    fields: dict[str, Any] = {
        "id": f"{FEED}/changes/{change_id}",
        "change_id": change_id,
        "type": "Recommendation",
        "published": T0,
        "entity_kind": "domain",
        "entity_key": "bad.example",
        "policy": "drop",
        "reason": {"en": "Harassment of members."},
        "review": "human",
    }
    fields.update(changes)
    return Entry(**fields)


def retraction(of: Entry, **changes: Any) -> Entry:
    change_id = changes.pop("change_id", None) or next_id(changes.get("published", of.published))
    fields: dict[str, Any] = {
        "id": f"{FEED}/changes/{change_id}",
        "change_id": change_id,
        "type": "Retraction",
        "published": of.published,
        "entity_kind": of.entity_kind,
        "entity_key": of.entity_key,
        "retracts": of.change_id,
    }
    fields.update(changes)
    return Entry(**fields)


# =========================================================================== UUIDv7


RFC_9562_EXAMPLE = "017f22e2-79b0-7cc3-98c4-dc0c0c07398f"  # RFC 9562 Appendix A.6


def test_uuid7__reproduces_the_rfc_9562_example() -> None:
    rand74 = (0xCC3 << 62) | 0x18C4DC0C0C07398F
    assert uuid7(now_ms=0x017F22E279B0, rand=(rand74 << 6).to_bytes(10, "big")) == RFC_9562_EXAMPLE
    assert parse_uuid7(RFC_9562_EXAMPLE.upper()) == (0x017F22E279B0, 0xCC3, 0x18C4DC0C0C07398F)
    assert canonical_uuid7(RFC_9562_EXAMPLE.upper()) == RFC_9562_EXAMPLE


@settings(max_examples=200, deadline=None)
@given(
    st.integers(0, MAX_MS),
    st.binary(min_size=10, max_size=10),
    st.integers(0, MAX_MS),
    st.binary(min_size=10, max_size=10),
)
def test_uuid7__string_order_is_time_order(ms_a: int, rand_a: bytes, ms_b: int, rand_b: bytes) -> None:
    a, b = uuid7(now_ms=ms_a, rand=rand_a), uuid7(now_ms=ms_b, rand=rand_b)
    assert parse_uuid7(a).ms == ms_a
    if ms_a < ms_b:
        assert a < b
    if ms_a > ms_b:
        assert a > b
    assert a[14] == "7" and a[19] in "89ab"  # version and RFC 9562 variant


def test_uuid7_generator__strictly_increasing_within_one_millisecond() -> None:
    generator = Uuid7Generator()
    ids = [generator.next(now_ms=1_767_225_600_000, rand=os.urandom(10)) for _ in range(2000)]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert {parse_uuid7(i).ms for i in ids} <= {1_767_225_600_000, 1_767_225_600_001}


def test_uuid7_generator__clock_stepping_back_still_increases() -> None:
    generator = Uuid7Generator()
    first = generator.next(now_ms=2_000, rand=os.urandom(10))
    second = generator.next(now_ms=1_000, rand=os.urandom(10))
    assert second > first and parse_uuid7(second).ms == 2_000
    assert generator.next(now_ms=3_000, rand=bytes(10)) == uuid7(now_ms=3_000, rand=bytes(10))


def test_uuid7_generator__resumes_after_the_feeds_last_id() -> None:
    last = uuid7(now_ms=5_000, rand=b"\xff" * 10)
    generator = Uuid7Generator(last=last)
    assert generator.last == last
    following = generator.next(now_ms=4_000, rand=bytes(10))
    assert following > last


def test_uuid7_generator__random_field_overflow_carries_into_the_timestamp() -> None:
    generator = Uuid7Generator(last=uuid7(now_ms=7_000, rand=b"\xff" * 10))
    following = generator.next(now_ms=7_000, rand=os.urandom(10))
    assert parse_uuid7(following).ms == 7_001


@pytest.mark.parametrize(
    "text",
    [
        "550e8400-e29b-41d4-a716-446655440000",  # version 4
        "017f22e2-79b0-7cc3-18c4-dc0c0c07398f",  # NCS variant
        "017f22e2-79b0-7cc3-e8c4-dc0c0c07398f",  # Microsoft variant
        "017f22e279b07cc398c4dc0c0c07398f",  # no hyphens
        "{017f22e2-79b0-7cc3-98c4-dc0c0c07398f}",
        "017f22e2-79b0-7cc3-98c4-dc0c0c07398f0",
        "017f22e2-79b0-7cc3-98c4-dc0c0c07398g",
        "",
    ],
)
def test_parse_uuid7__refuses_anything_but_a_v7(text: str) -> None:
    with pytest.raises(Uuid7Error):
        parse_uuid7(text)


@pytest.mark.parametrize(("ms", "rand"), [(-1, bytes(10)), (MAX_MS + 1, bytes(10)), (0, bytes(9)), (True, bytes(10))])
def test_uuid7__refuses_out_of_range_time_and_short_randomness(ms: int, rand: bytes) -> None:
    with pytest.raises(Uuid7Error):
        uuid7(now_ms=ms, rand=rand)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_fuzz__parse_uuid7_raises_only_uuid7_error(text: str) -> None:
    try:
        parse_uuid7(text)
    except Uuid7Error:
        pass


# =========================================================================== entity keys


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("Bücher.Example.", "xn--bcher-kva.example"),
        (" EXAMPLE.com ", "example.com"),
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
        ("ＥＸＡＭＰＬＥ.org", "example.org"),
        ("127.0.0.3", "127.0.0.3"),
    ],
)
def test_normalize_domain__punycode_lower_case_no_trailing_dot(raw: str, normal: str) -> None:
    assert normalize_domain(raw) == normal
    assert normalize_domain(normal) == normal


@pytest.mark.parametrize("raw", ["", ".", "localhost", "b*****.example", "a_b.example", "-a.example", "a..example"])
def test_normalize_domain__refuses_what_is_not_a_domain_entity(raw: str) -> None:
    with pytest.raises(FeedError, match=r"^entityKey: "):
        normalize_domain(raw)


def test_normalize_actor_uri__canonical_https_form() -> None:
    assert normalize_actor_uri("https://Bücher.Example:443/users/ä") == "https://xn--bcher-kva.example/users/%C3%A4"
    assert normalize_actor_uri("https://EX.com") == "https://ex.com/"
    assert normalize_actor_uri("http://127.0.0.2:8080/users/a") == "http://127.0.0.2:8080/users/a"


@pytest.mark.parametrize(
    "raw",
    [
        "http://ex.com/users/a",
        "https://u:p@ex.com/users/a",
        "ex.com/users/a",
        "https://ex.com:99999/",
        "https://ex.com/a b",
    ],
)
def test_normalize_actor_uri__refuses_non_canonical_actors(raw: str) -> None:
    with pytest.raises(FeedError, match=r"^entityKey: "):
        normalize_actor_uri(raw)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_fuzz__entity_key_normalisation_is_idempotent_or_refuses(text: str) -> None:
    for normalize in (normalize_domain, normalize_actor_uri):
        try:
            once = normalize(text)
        except FeedError:
            continue
        assert normalize(once) == once


# =========================================================================== entries: shape and strict parsing


def test_parse_entry__reads_the_fires_reference_server_shape() -> None:
    items = load("fires-snapshot.json")["orderedItems"]
    parsed = [parse_entry(item) for item in items]
    actor, silenced = parsed[0], parsed[1]
    assert actor.entity == ("actor", "https://bad.example/users/troll")
    assert actor.policy == "drop" and actor.labels == (items[0]["labels"][0],)
    # FIRES has no changeId property: it is the UUIDv7 at the end of the change URL.
    assert actor.change_id == items[0]["id"].rsplit("/", 1)[1]
    assert silenced.policy == "filter" and silenced.filters == ()
    retracted = next(e for e in parsed if e.type == "Retraction")
    assert dict(retracted.comment) == {"und": "Resolved with the admins"}
    assert retracted.to_json()["comment"] == "Resolved with the admins" and "commentMap" not in retracted.to_json()


def test_parse_entry__normalises_a_fires_key_it_can_read() -> None:
    item = copy.deepcopy(load("fires-snapshot.json")["orderedItems"][1])
    item["entityKey"] = "Bücher.EXAMPLE"
    assert parse_entry(item).entity_key == "xn--bcher-kva.example"


def test_parse_entry__ignores_unknown_properties() -> None:
    doc = signed_recommendation()
    doc["futureExtension"] = {"anything": [1, 2]}
    doc["evidence"] = "ignored, never modelled"
    assert parse_entry(doc) == parse_entry(signed_recommendation())


def test_entry__to_json_round_trips_every_field() -> None:
    first = entry(
        policy="filter",
        filters=("reject-media", "urn:hearthside:moderation#hold-for-review"),
        labels=("https://hearth-a.example/labels/spam",),
        reason={"en": "Spam.", "fr": "Pourriel.", "ru": "Спам."},
        derived_from=("https://hearth-b.example/feed/changes/1",),
        expires=T0 + timedelta(days=30),
        mastodon=MastodonHint(severity="noop", reject_media=True),
    )
    later = entry(supersedes=first.change_id, published=T0 + timedelta(seconds=1, microseconds=250))
    withdrawn = retraction(first, comment={"en": "Fixed.", "fr": "Réglé."}, derived_from=first.derived_from)
    for value in (first, later, withdrawn):
        assert parse_entry(json.loads(json.dumps(value.to_json()))) == value
    doc = first.to_json()
    assert doc["recommendedPolicy"] == "filter" and doc["entityKind"] == "domain"
    assert FIRES_CONTEXT in doc["@context"]


def test_entry__constructor_refuses_a_key_not_in_normal_form() -> None:
    with pytest.raises(FeedError, match=r"^entityKey: "):
        entry(entity_key="BAD.example")


def _valid_doc() -> dict[str, Any]:
    doc = signed_recommendation()
    del doc["proof"]
    return doc


def _retraction_doc() -> dict[str, Any]:
    doc: dict[str, Any] = load("signed-retraction.json")
    del doc["proof"]
    return doc


@pytest.mark.parametrize(
    ("base", "change", "field"),
    [
        (_valid_doc, {"type": "Block"}, "type"),
        (_valid_doc, {"type": None}, "type"),
        (_valid_doc, {"id": "not a uri"}, "id"),
        (_valid_doc, {"id": "urn:x:1"}, "id"),
        (_valid_doc, {"changeId": "550e8400-e29b-41d4-a716-446655440000"}, "changeId"),
        (_valid_doc, {"changeId": None}, "changeId"),
        (_valid_doc, {"published": "2026-01-15T12:00:00"}, "published"),
        (_valid_doc, {"published": "15 Jan 2026"}, "published"),
        (_valid_doc, {"entityKind": "emailDomain"}, "entityKind"),
        (_valid_doc, {"entityKey": None}, "entityKey"),
        (_valid_doc, {"entityKey": "*.example"}, "entityKey"),
        (_valid_doc, {"entityKey": "example"}, "entityKey"),
        (_valid_doc, {"entityKind": "actor", "entityKey": "http://bad.example/u"}, "entityKey"),
        (_valid_doc, {"recommendedPolicy": None}, "recommendedPolicy"),
        (_valid_doc, {"recommendedPolicy": "block"}, "recommendedPolicy"),
        (_valid_doc, {"recommendedPolicy": "accept"}, "recommendedFilters"),
        (_valid_doc, {"recommendedFilters": "reject-media"}, "recommendedFilters"),
        (_valid_doc, {"recommendedFilters": ["not a filter"]}, "recommendedFilters[0]"),
        (_valid_doc, {"recommendedFilters": ["reject-media", "reject-media"]}, "recommendedFilters"),
        (_valid_doc, {"labels": ["harassment"]}, "labels[0]"),
        (_valid_doc, {"labels": [f"https://l.example/{i}" for i in range(65)]}, "labels"),
        (_valid_doc, {"reason": "plain text"}, "reason"),
        (_valid_doc, {"reason": {"english": "x"}}, "reason"),
        (_valid_doc, {"reason": {"en": ""}}, "reason.en"),
        (_valid_doc, {"reason": {"en": "x" * 2001}}, "reason.en"),
        (_valid_doc, {"review": "machine"}, "review"),
        (_valid_doc, {"derivedFrom": ["ftp://x.example/1"]}, "derivedFrom[0]"),
        (_valid_doc, {"supersedes": "019bc186-de00-7313-84c4-c4c4c4c4c4c4"}, "supersedes"),
        (_valid_doc, {"expires": "2025-01-01T00:00:00Z"}, "expires"),
        (_valid_doc, {"mastodon": {"severity": "limit"}}, "mastodon.severity"),
        (_valid_doc, {"mastodon": {"severity": "noop", "rejectMedia": "yes"}}, "mastodon.rejectMedia"),
        (_valid_doc, {"retracts": "019bc186-de00-7313-84c4-c4c4c4c4c4c4"}, "retracts"),
        (_valid_doc, {"comment": "only on retractions"}, "comment"),
        (_valid_doc, {"@context": "https://www.w3.org/ns/activitystreams"}, "@context"),
        (_retraction_doc, {"recommendedPolicy": "drop"}, "recommendedPolicy"),
        (_retraction_doc, {"labels": ["https://l.example/1"]}, "labels"),
        (_retraction_doc, {"reason": {"en": "x"}}, "reason"),
        (_retraction_doc, {"expires": "2027-01-01T00:00:00Z"}, "expires"),
        (_retraction_doc, {"comment": 5, "commentMap": None}, "comment"),
        (_retraction_doc, {"retracts": "019c1912-fa00-7323-88c8-c8c8c8c8c8c9"}, "retracts"),
    ],
)
def test_parse_entry__refuses_and_names_the_field(base: Any, change: dict[str, Any], field: str) -> None:
    doc = base()
    doc.update(change)
    with pytest.raises(FeedError) as caught:
        parse_entry(doc)
    assert str(caught.value).startswith(f"{field}: "), str(caught.value)


def test_parse_entry__fires_change_without_change_id_needs_a_uuid7_url() -> None:
    doc = _valid_doc()
    del doc["changeId"]
    doc["id"] = f"{FEED}/changes/42"
    with pytest.raises(FeedError, match=r"^changeId: "):
        parse_entry(doc)


def test_parse_entry__tombstone_must_name_its_entity() -> None:
    doc = {"id": f"{FEED}/changes/{next_id()}", "type": "Tombstone", "published": "2026-01-01T00:00:00Z"}
    with pytest.raises(FeedError, match=r"^entityKind: "):
        parse_entry(doc)


def test_parse_entry__refuses_non_objects() -> None:
    for value in (None, [], "entry", 3):
        with pytest.raises(FeedError, match=r"^entry: "):
            parse_entry(value)


# =========================================================================== signatures (§6.c tests 7, 8, 9)


def test_signed_vector__signing_the_parsed_entry_reproduces_it() -> None:
    for name in ("signed-recommendation.json", "signed-retraction.json"):
        doc = load(name)
        created = datetime.fromisoformat(doc["proof"]["created"])
        assert sign_entry(parse_entry(doc), vector_key(), METHOD, created) == doc


def test_7__valid_entry_verifies_and_apsig_agrees() -> None:
    doc = signed_recommendation()
    verified = verify_entry(doc, vector_keys(), now=NOW)
    assert verified.entity == ("domain", "xn--bcher-kva.example") and verified.active(NOW)
    oracle = ProofVerifier(vector_key().public_key().to_multibase())
    assert oracle.verify_proof(copy.deepcopy(doc), raise_on_fail=True) == METHOD


def _string_paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, dict):
        return [p for key, item in value.items() if key != "proof" for p in _string_paths(item, (*path, key))]
    if isinstance(value, list):
        return [p for index, item in enumerate(value) for p in _string_paths(item, (*path, index))]
    return [path] if isinstance(value, str | bool) else []


def _set(doc: Any, path: tuple[Any, ...], value: Any) -> None:
    for step in path[:-1]:
        doc = doc[step]
    doc[path[-1]] = value


def _get(doc: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        doc = doc[step]
    return doc


def test_7__changing_any_value_of_a_signed_entry_fails() -> None:
    for name in ("signed-recommendation.json", "signed-retraction.json"):
        paths = _string_paths(load(name))
        assert ("entityKey",) in paths and len(paths) > 10
        for path in paths:
            doc = load(name)
            old = _get(doc, path)
            _set(doc, path, (not old) if isinstance(old, bool) else old[:-1] + chr(ord(old[-1]) ^ 1))
            with pytest.raises(FeedError, match=r"^proof: did not verify$"):
                verify_entry(doc, vector_keys(), now=NOW)


def test_7__added_or_removed_property_fails() -> None:
    added = signed_recommendation()
    added["recommendedFilters"].append("reject-reports")
    removed = signed_recommendation()
    del removed["expires"]
    extra = signed_recommendation()
    extra["note"] = "an unknown property is still covered by the proof"
    for doc in (added, removed, extra):
        with pytest.raises(FeedError, match=r"^proof: did not verify$"):
            verify_entry(doc, vector_keys(), now=NOW)


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d.pop("proof"), "proof"),
        (lambda d: d["proof"].update(cryptosuite="eddsa-rdfc-2022"), "proof"),
        (lambda d: d["proof"].update(proofValue="zzz"), "proof"),
        (lambda d: d.update(proof=[d["proof"], d["proof"]]), "proof"),
    ],
)
def test_7__malformed_proof_refused(mutate: Any, field: str) -> None:
    doc = signed_recommendation()
    mutate(doc)
    with pytest.raises(FeedError, match=rf"^{field}: "):
        verify_entry(doc, vector_keys(), now=NOW)


def test_8__key_not_in_the_publishers_set_is_refused() -> None:
    doc = signed_recommendation()
    with pytest.raises(FeedError, match=r"^proof\.verificationMethod: key is not in the publisher's key set$"):
        verify_entry(doc, {"https://hearth-a.example/actor#other": vector_key().public_key()}, now=NOW)
    # Same key id, different key (a mirror that swapped the key): the signature fails.
    with pytest.raises(FeedError, match=r"^proof: did not verify$"):
        verify_entry(doc, {METHOD: fresh_key(1).public_key()}, now=NOW)
    # An entry signed by someone else with a method id they chose: not in the set either.
    forged = sign_entry(parse_entry(doc), fresh_key(2), "https://evil.example/actor#key", T0)
    with pytest.raises(FeedError, match=r"^proof\.verificationMethod: "):
        verify_entry(forged, vector_keys(), now=NOW)


def test_8__after_rotation_old_entries_verify_with_the_historical_key_and_new_with_the_new() -> None:
    old_key, new_key = fresh_key(10), fresh_key(11)
    old_id, new_id = f"{METHOD}-old", f"{METHOD}-new"
    rotated_at = datetime(2026, 2, 1, tzinfo=UTC)
    before = sign_entry(entry(), old_key, old_id, datetime(2026, 1, 10, tzinfo=UTC))
    after = sign_entry(entry(entity_key="worse.example"), new_key, new_id, datetime(2026, 2, 2, tzinfo=UTC))
    late_with_old = sign_entry(entry(entity_key="late.example"), old_key, old_id, datetime(2026, 2, 3, tzinfo=UTC))
    document = dataset_document(
        id=FEED,
        name="Partner decisions",
        snapshot=f"{FEED}/snapshot",
        changes=f"{FEED}/changes",
        publisher="https://hearth-a.example/actor",
        policy_url="https://hearth-a.example/about",
        appeals_contact="mailto:appeals@hearth-a.example",
        keys=[
            PublisherKey(id=old_id, public_key=old_key.public_key(), created=T0, revoked=rotated_at),
            PublisherKey(id=new_id, public_key=new_key.public_key(), created=rotated_at),
        ],
    )
    dataset = parse_dataset(json.loads(json.dumps(document)))
    keys, retired = dataset.verification_keys(), dataset.retired_keys()
    assert set(keys) == {old_id, new_id} and retired == {old_id: rotated_at}
    assert verify_entry(before, keys, now=NOW, retired=retired).entity_key == "bad.example"
    assert verify_entry(after, keys, now=NOW, retired=retired).entity_key == "worse.example"
    with pytest.raises(FeedError, match=r"^proof\.created: made with a key after it was revoked$"):
        verify_entry(late_with_old, keys, now=NOW, retired=retired)
    # Pinning only the new key (historical keys dropped) would orphan the old entry: refused.
    with pytest.raises(FeedError, match=r"^proof\.verificationMethod: "):
        verify_entry(before, {new_id: new_key.public_key()}, now=NOW)


def test_9__different_key_order_whitespace_and_escapes_verify_identically() -> None:
    text = (VECTORS / "signed-recommendation.json").read_text(encoding="utf-8")
    original = json.loads(text)

    def reversed_keys(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: reversed_keys(value[key]) for key in reversed(list(value))}
        if isinstance(value, list):
            return [reversed_keys(item) for item in value]
        return value

    variants = [
        json.dumps(reversed_keys(original), ensure_ascii=True, separators=(",", ":")),
        json.dumps(original, indent=7, sort_keys=True, ensure_ascii=False),
        "\n\t " + json.dumps(reversed_keys(original), indent="\t") + " \r\n",
    ]
    expected = verify_entry(original, vector_keys(), now=NOW)
    for variant in variants:
        assert variant != text
        assert verify_entry(json.loads(variant), vector_keys(), now=NOW) == expected


# =========================================================================== expiry and tombstones (§6.c test 22)


def test_22__expired_entry_verifies_but_is_inert() -> None:
    expiring = entry(expires=T0 + timedelta(days=10))
    signed = sign_entry(expiring, vector_key(), METHOD, T0)
    during, after = T0 + timedelta(days=9), T0 + timedelta(days=10)
    assert verify_entry(signed, vector_keys(), now=during).active(during)
    verified = verify_entry(signed, vector_keys(), now=after)
    assert verified == expiring and not verified.active(after)
    assert reduce_snapshot([verified], now=during) == {("domain", "bad.example"): verified}
    assert reduce_snapshot([verified], now=after) == {}


def test_22__tombstone_removes_the_entity_and_purges_its_stored_reasons() -> None:
    first = entry(reason={"en": "First reason."})
    second = entry(policy="filter", filters=("reject-media",), reason={"en": "Second reason."})
    other = entry(entity_key="other.example")
    tombstone = Entry(
        id=f"{FEED}/changes/t",
        change_id=next_id(),
        type="Tombstone",
        published=T0,
        entity_kind="domain",
        entity_key="bad.example",
    )
    state = reduce_snapshot([first, second, other, tombstone], now=NOW)
    assert state == {("domain", "other.example"): other}
    kept = purge_tombstoned([first, second, other, tombstone])
    assert kept == [other, tombstone]
    assert not any(e.reason for e in kept if e.entity_key == "bad.example")
    # Something published about the entity after the Tombstone is kept.
    again = entry(reason={"en": "New judgement."})
    assert purge_tombstoned([first, tombstone, again]) == [tombstone, again]


def test_reduce_snapshot__latest_change_id_wins_whatever_the_input_order() -> None:
    drop = entry()
    relaxed = entry(policy="filter", filters=("reject-media",), supersedes=drop.change_id)
    assert reduce_snapshot([relaxed, drop], now=NOW)[("domain", "bad.example")] == relaxed
    withdrawn = retraction(relaxed)
    assert reduce_snapshot([withdrawn, drop, relaxed], now=NOW) == {}


def test_reduce_snapshot__expired_latest_entry_does_not_bring_an_older_one_back() -> None:
    drop = entry()
    short = entry(policy="filter", filters=("reject-media",), expires=T0 + timedelta(days=1))
    assert reduce_snapshot([drop, short], now=T0 + timedelta(days=2)) == {}


def test_reduce_snapshot__replay_is_idempotent_but_a_reused_change_id_is_refused() -> None:
    drop = entry()
    assert reduce_snapshot([drop, drop, drop], now=NOW) == reduce_snapshot([drop], now=NOW)
    impostor = entry(change_id=drop.change_id, entity_key="innocent.example")
    with pytest.raises(FeedError, match=r"^changeId: "):
        reduce_snapshot([drop, impostor], now=NOW)


def test_reduce_snapshot__absence_is_not_a_retraction() -> None:
    a, b = entry(), entry(entity_key="other.example")
    full = reduce_snapshot([a, b], now=NOW)
    truncated = reduce_snapshot([b], now=NOW)
    assert set(full) - set(truncated) == {("domain", "bad.example")}  # caller keeps its old state


# =========================================================================== dataset, snapshot, changes pages


def test_dataset__our_document_parses_back_with_its_keys() -> None:
    doc = load("hearthside-dataset.json")
    dataset = parse_dataset(doc)
    assert dataset.publisher == "https://hearth-a.example/actor"
    assert dataset.appeals_contact == "mailto:appeals@hearth-a.example"
    assert dataset.verification_keys() == vector_keys()
    assert dict(dataset.name_map)["fr"] == "Décisions partenaires"
    assert dataset.to_json() == doc
    assert doc["endpoints"] == {"changes": f"{FEED}/changes", "snapshot": f"{FEED}/snapshot"}


def test_dataset__reads_a_fires_reference_dataset_as_unsigned() -> None:
    dataset = parse_dataset(load("fires-dataset.json"))
    assert dataset.name == "DNI List" and dataset.keys == ()
    assert dataset.changes.endswith("/changes") and dataset.snapshot.endswith("/snapshot")


def test_dataset_document__needs_a_current_key() -> None:
    key = PublisherKey(id=METHOD, public_key=vector_key().public_key(), created=T0, revoked=T0 + timedelta(days=1))
    with pytest.raises(FeedError, match=r"^keys: "):
        dataset_document(
            id=FEED,
            name="x",
            snapshot=f"{FEED}/snapshot",
            changes=f"{FEED}/changes",
            publisher="https://hearth-a.example/actor",
            policy_url="https://hearth-a.example/about",
            appeals_contact="mailto:a@hearth-a.example",
            keys=[key],
        )


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"@context": "https://www.w3.org/ns/activitystreams"}, "@context"),
        ({"type": "Collection"}, "type"),
        ({"endpoints": None}, "endpoints"),
        ({"endpoints": {"changes": f"{FEED}/changes"}}, "endpoints.snapshot"),
        ({"name": None, "nameMap": None}, "name"),
        ({"keys": [{"id": METHOD, "publicKeyMultibase": "zBAD", "created": "2026-01-01T00:00:00Z"}]}, "keys[0]"),
        ({"publisher": "https://hearth-b.example/actor"}, "keys[0].controller"),
        ({"appealsContact": "tel:+123"}, "appealsContact"),
        ({"keys": "none"}, "keys"),
    ],
)
def test_parse_dataset__refuses_and_names_the_field(change: dict[str, Any], field: str) -> None:
    doc = load("hearthside-dataset.json")
    doc.update(change)
    with pytest.raises(FeedError) as caught:
        parse_dataset(doc)
    assert str(caught.value).startswith(f"{field}"), str(caught.value)


def test_snapshot__reads_the_fires_shape() -> None:
    snapshot = parse_snapshot(load("fires-snapshot.json"))
    assert snapshot.total_items == 7 == len(snapshot.entry_documents)
    assert snapshot.changes is not None and page_cursor(snapshot.changes) == "019a62e8-9100-7080-a020-202020202020"


def test_changes__reads_the_fires_collection_and_page() -> None:
    collection = parse_changes_page(load("fires-changes-collection.json"))
    assert collection.entry_documents == () and collection.total_items == 8
    assert collection.first is not None and page_cursor(collection.first) == "00000000-0000-7000-a000-000000000000"
    page = parse_changes_page(load("fires-changes-page.json"))
    entries = [parse_entry(doc) for doc in page.entry_documents]
    check_page_order(entries, after="00000000-0000-7000-A000-000000000000")
    assert page.next is not None and page_cursor(page.next) == entries[-1].change_id


def test_changes__our_documents_round_trip_through_the_parsers() -> None:
    docs = [sign_entry(entry(entity_key=f"d{i}.example"), vector_key(), METHOD, T0) for i in range(3)]
    collection_url = f"{FEED}/changes"
    page_doc = changes_page_document(
        id=page_url(collection_url, after="00000000-0000-7000-a000-000000000000"),
        part_of=collection_url,
        dataset=FEED,
        entries=docs,
        total_items=3,
        next=page_url(collection_url, after=docs[-1]["changeId"]),
    )
    page = parse_changes_page(json.loads(json.dumps(page_doc)))
    entries = [verify_entry(doc, vector_keys(), now=NOW) for doc in page.entry_documents]
    check_page_order(entries, after=None)
    assert page.next is not None and page_cursor(page.next) == entries[-1].change_id
    assert "after=" in page.next
    root = parse_changes_page(
        changes_collection_document(
            id=collection_url, dataset=FEED, total_items=3, first=page_doc["id"], last=page.next
        )
    )
    assert root.first == page_doc["id"] and root.entry_documents == ()
    snap = parse_snapshot(
        snapshot_document(id=f"{FEED}/snapshot", dataset=FEED, entries=docs[::-1], changes=page.next, updated=T0)
    )
    assert [verify_entry(d, vector_keys(), now=NOW) for d in snap.entry_documents] == entries[::-1]


def test_page_url__replaces_an_existing_cursor_and_keeps_other_parameters() -> None:
    url = page_url(f"{FEED}/changes?limit=50&since=00000000-0000-7000-a000-000000000000", after=RFC_9562_EXAMPLE)
    assert url == f"{FEED}/changes?limit=50&after={RFC_9562_EXAMPLE}"
    assert page_cursor(f"{FEED}/changes") is None
    with pytest.raises(FeedError, match=r"^url: more than one cursor"):
        page_cursor(f"{FEED}/changes?after={RFC_9562_EXAMPLE}&since={RFC_9562_EXAMPLE}")
    with pytest.raises(FeedError, match=r"^after: "):
        page_cursor(f"{FEED}/changes?after=42")


def test_check_page_order__refuses_out_of_order_or_replayed_pages() -> None:
    a, b = entry(), entry()
    with pytest.raises(FeedError, match=r"^orderedItems\[1\]\.changeId: "):
        check_page_order([b, a], after=None)
    with pytest.raises(FeedError, match=r"^orderedItems\[0\]\.changeId: "):
        check_page_order([a, b], after=b.change_id)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"type": "Collection"}, "type"),
        ({"partOf": None}, "partOf"),
        ({"orderedItems": ["https://fires.example/changes/1"]}, "orderedItems[0]"),
        ({"orderedItems": {"id": "x"}}, "orderedItems"),
        ({"orderedItems": [{}] * 1001}, "orderedItems"),
        ({"items": []}, "orderedItems"),
        ({"totalItems": -1}, "totalItems"),
        ({"next": "https://fires.example/changes"}, "next"),
        ({"@context": None}, "@context"),
    ],
)
def test_parse_changes_page__refuses_and_names_the_field(change: dict[str, Any], field: str) -> None:
    doc = load("fires-changes-page.json")
    doc.update(change)
    with pytest.raises(FeedError) as caught:
        parse_changes_page(doc)
    assert str(caught.value).startswith(f"{field}: "), str(caught.value)


# =========================================================================== privacy and safety (§6.b)


def test_check_publishable__a_reviewed_domain_decision_passes() -> None:
    check_publishable(parse_entry(signed_recommendation()), now=NOW)
    check_publishable(parse_entry(load("signed-retraction.json")), now=NOW)


def test_check_publishable__automated_or_unreviewed_decisions_stay_internal() -> None:
    for review in ("automated", None):
        with pytest.raises(NotPublishableError, match=r"^review: "):
            check_publishable(entry(review=review), now=NOW)


def test_check_publishable__account_entries_only_for_partners_with_expiry() -> None:
    actor = {"entity_kind": "actor", "entity_key": "https://bad.example/users/troll"}
    good = entry(**actor, published=NOW, expires=NOW + timedelta(days=365))
    check_publishable(good, now=NOW, partner_only=True)
    with pytest.raises(NotPublishableError, match=r"^entityKind: "):
        check_publishable(good, now=NOW)
    with pytest.raises(NotPublishableError, match=r"^expires: an account-level entry must expire"):
        check_publishable(entry(**actor), now=NOW, partner_only=True)
    with pytest.raises(NotPublishableError, match=r"^expires: already in the past"):
        check_publishable(good, now=NOW + timedelta(days=366), partner_only=True)
    with pytest.raises(NotPublishableError, match=r"^expires: an account-level entry lasts at most a year"):
        check_publishable(entry(**actor, published=NOW, expires=NOW + timedelta(days=400)), now=NOW, partner_only=True)


@pytest.mark.parametrize(
    "text",
    [
        "Posted by @alice@members.example in the group",
        "see https://hearth-a.example/notes/123",
        "www.screenshots.example has the details",
        "reporter bob@example.org",
        "call +33 6 12 34 56 78",
        "from 192.0.2.14",
        "x" * 501,
    ],
)
def test_check_publishable__reasons_must_not_point_at_people(text: str) -> None:
    with pytest.raises(NotPublishableError, match=r"^reason\.en: "):
        check_publishable(entry(reason={"en": text}), now=NOW)
    with pytest.raises(NotPublishableError, match=r"^comment\.fr: "):
        check_publishable(retraction(entry(), comment={"fr": text}), now=NOW)


@pytest.mark.parametrize("label", ["urn:hearthside:safety#crisis-flag", "https://labels.example/possible-crisis"])
def test_check_publishable__member_safety_labels_never_leave(label: str) -> None:
    with pytest.raises(NotPublishableError, match=r"^labels\[0\]: "):
        check_publishable(entry(labels=(label,)), now=NOW)


def test_entry__has_no_field_for_member_data() -> None:
    fields = set(Entry.__dataclass_fields__)
    assert not fields & {"evidence", "reporter", "notes", "private_comment", "content", "crisis"}


# =========================================================================== FIRES mapping (§6.c test 6)


def test_6__fires_snapshot_imports_to_suspend_noop_reject_media_allow_and_removal() -> None:
    results = import_fires_snapshot(load("fires-snapshot.json"))
    assert results == [
        Decision(domain="bad.example", severity="suspend"),
        Decision(domain="friendly.example", severity="noop", allow=True),
        Decision(domain="media.example", severity="noop", reject_media=True),
        Removal(domain="retracted.example", comment="Resolved with the admins"),
        Decision(domain="silenced.example", severity="silence"),
    ]  # watch.example is an Advisory and the actor entry is not a domain: neither is a decision


def test_6__exporting_back_yields_the_fires_three_file_set() -> None:
    files = export_fires_csv_set(import_fires_snapshot(load("fires-snapshot.json")))
    expected = {path.name: path.read_text() for path in (VECTORS / "fires-export").iterdir()}
    assert files == expected
    assert files["domain-denylist.csv"].split("\n", 1)[0] == ",".join(DENYLIST_HEADER)


def test_fires_import__our_mastodon_hint_wins_and_silence_set_maps_to_silence() -> None:
    results = import_fires_snapshot(
        snapshot_document(
            id=f"{FEED}/snapshot",
            dataset=FEED,
            entries=[load("signed-recommendation.json")],
            changes=None,
            updated=None,
        )
    )
    assert results == [
        Decision(
            domain="xn--bcher-kva.example",
            severity="silence",
            reject_media=True,
            public_comment="Repeated harassment of support-group members; moderators unresponsive.",
        )
    ]
    plain = entry(
        policy="filter", filters=tuple(sorted({"auto-unlisted", "prevent-trending", "require-follow-requests"}))
    )
    assert decisions_from_entries([plain]) == [
        Decision(domain="bad.example", severity="silence", public_comment="Harassment of members.")
    ]
    reports = entry(policy="filter", filters=("ignore-reports", "auto-cw"))
    assert decisions_from_entries([reports])[0] == Decision(
        domain="bad.example", severity="noop", reject_reports=True, public_comment="Harassment of members."
    )


def test_fires_import__expired_entry_becomes_a_removal_when_now_is_given() -> None:
    short = entry(expires=T0 + timedelta(days=1))
    assert decisions_from_entries([short], now=T0 + timedelta(days=2)) == [Removal(domain="bad.example")]
    assert decisions_from_entries([short])[0] == Decision(
        domain="bad.example", severity="suspend", public_comment="Harassment of members."
    )


def test_fires_import__one_bad_change_fails_the_import_naming_it() -> None:
    doc = load("fires-snapshot.json")
    doc["orderedItems"][2]["entityKey"] = "*.example"
    with pytest.raises(FeedError, match=r"^orderedItems\[2\]\.entityKey: "):
        import_fires_snapshot(doc)


def test_fires_export__quotes_comments_and_round_trips_through_a_csv_reader() -> None:
    comment = 'Spam, "crypto" scams\nand more'
    files = export_fires_csv_set(
        [Decision(domain="a.example", severity="suspend", public_comment=comment), Removal("b.example", comment)]
    )
    rows = list(csv.reader(io.StringIO(files["domain-denylist.csv"])))
    assert rows[1] == ["a.example", "suspend", "false", "false", comment, "false"]
    assert list(csv.reader(io.StringIO(files["domain-retractions.csv"])))[1] == ["b.example", comment]
    assert files["domain-allowlist.csv"] == "#domain\n"


def test_fires_export__refuses_duplicates_and_more_than_the_mastodon_row_limit() -> None:
    with pytest.raises(FeedError, match=r"^domain: a\.example appears twice"):
        export_fires_csv_set([Decision("a.example", "suspend"), Removal("a.example")])
    too_many = [Decision(f"d{i}.example", "suspend") for i in range(MAX_CSV_ROWS + 1)]
    with pytest.raises(FeedError, match=r"^domain-denylist\.csv: 20001 rows"):
        export_fires_csv_set(too_many)


def test_fires_decision__refuses_a_domain_not_in_normal_form() -> None:
    with pytest.raises(FeedError, match=r"^domain: "):
        Decision(domain="Bücher.example", severity="suspend")


@pytest.mark.parametrize(
    ("decision", "policy"),
    [
        (Decision("a.example", "suspend", reject_media=True), ("drop", ())),
        (
            Decision("a.example", "silence"),
            ("filter", ("auto-unlisted", "prevent-trending", "require-follow-requests")),
        ),
        (Decision("a.example", "noop", reject_media=True), ("filter", ("reject-media",))),
        (Decision("a.example", "noop", reject_reports=True), ("filter", ("reject-reports",))),
        (Decision("a.example", "noop"), None),
        (Decision("a.example", "noop", allow=True), ("accept", ())),
    ],
)
def test_policy_for_decision__follows_the_interop_table_and_maps_back(
    decision: Decision, policy: tuple[str, tuple[str, ...]] | None
) -> None:
    assert policy_for_decision(decision) == policy
    if policy is not None and decision.severity != "suspend":
        back = decisions_from_entries([entry(entity_key="a.example", policy=policy[0], filters=policy[1], reason={})])
        assert back == [decision]


# =========================================================================== fuzz: parsers raise only FeedError

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)

ENTRY_FIELDS = [*sorted(_valid_doc()), "proof", "commentMap", "derivedFrom", "supersedes", "retracts"]


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_fuzz__parsers_on_arbitrary_json_raise_only_feed_error(value: Any) -> None:
    for parser in (parse_entry, parse_snapshot, parse_changes_page, parse_dataset, import_fires_snapshot):
        try:
            parser(value)
        except FeedError:
            pass
    try:
        verify_entry(value, vector_keys(), now=NOW)
    except FeedError:
        pass


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(ENTRY_FIELDS), json_values, st.booleans())
def test_fuzz__one_field_of_a_signed_entry_replaced_raises_only_feed_error(name: str, value: Any, proof: bool) -> None:
    doc = signed_recommendation()
    target, key = (doc["proof"], name if name in doc["proof"] else "created") if proof else (doc, name)
    if key in target and target[key] == value:
        return  # not a change
    target[key] = value
    try:
        parse_entry(doc)
    except FeedError:
        pass
    with pytest.raises(FeedError):
        verify_entry(doc, vector_keys(), now=NOW)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(load("hearthside-dataset.json"))), json_values)
def test_fuzz__one_field_of_a_dataset_replaced_raises_only_feed_error(name: str, value: Any) -> None:
    doc = load("hearthside-dataset.json")
    doc[name] = value
    try:
        parse_dataset(doc)
    except FeedError:
        pass


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["id", "type", "entityKind", "entityKey", "recommendedPolicy", "recommendedFilters", "labels"]),
    json_values,
)
def test_fuzz__one_field_of_a_fires_change_replaced_raises_only_feed_error(name: str, value: Any) -> None:
    doc = load("fires-snapshot.json")
    doc["orderedItems"][0][name] = value
    try:
        import_fires_snapshot(doc)
    except FeedError:
        pass
