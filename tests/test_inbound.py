"""federation/inbound.py: every rule gets the forged, malformed or oversized document it refuses.

Documents here are built from small templates in the shapes Mastodon and Lemmy send
(tests/test_vectors.py runs the captured real ones); each test changes the one thing it is
about.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from federation.inbound import (
    AS_PUBLIC,
    Incoming,
    InvalidActivity,
    check_depth,
    check_origins,
    parse_activity,
    parse_actor,
    parse_jrd,
    parse_note,
    same_origin,
    validate_activity,
    validate_object,
)

AS = "https://www.w3.org/ns/activitystreams"
ALICE = "https://social.example/users/alice"
BOB = "https://social.example/users/bob"
MALLORY = "https://evil.example/users/mallory"
GROUP = "https://groups.example/c/peers"


def note(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": f"{ALICE}/statuses/1",
        "type": "Note",
        "attributedTo": ALICE,
        "content": "<p>hello</p>",
        "to": [AS_PUBLIC],
        "cc": [f"{ALICE}/followers"],
        "published": "2024-05-01T10:00:00Z",
    }
    base.update(changes)
    return base


def create(obj: Any = None, **changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "@context": [AS, "https://w3id.org/security/v1"],
        "id": f"{ALICE}/statuses/1/activity",
        "type": "Create",
        "actor": ALICE,
        "to": [AS_PUBLIC],
        "object": note() if obj is None else obj,
    }
    base.update(changes)
    return base


def person(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "@context": [AS, "https://w3id.org/security/v1"],
        "id": ALICE,
        "type": "Person",
        "preferredUsername": "alice",
        "inbox": f"{ALICE}/inbox",
        "outbox": f"{ALICE}/outbox",
        "followers": f"{ALICE}/followers",
        "endpoints": {"sharedInbox": "https://social.example/inbox"},
        "publicKey": {
            "id": f"{ALICE}#main-key",
            "owner": ALICE,
            "publicKeyPem": "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----\n",
        },
    }
    base.update(changes)
    return base


def refused(call: Any, *args: Any, **kwargs: Any) -> InvalidActivity:
    with pytest.raises(InvalidActivity) as raised:
        call(*args, **kwargs)
    return raised.value


def parsed(doc: dict[str, Any]) -> Incoming:
    validate_activity(doc)
    return parse_activity(doc)


def nested_lists(levels: int) -> Any:
    """``levels`` lists, one inside the other, around a string."""
    value: Any = "leaf"
    for _ in range(levels):
        value = [value]
    return value


# --- Envelope: shape ----------------------------------------------------------------------------


def test_validate_activity__accepts_the_template() -> None:
    incoming = parsed(create())
    assert (incoming.type, incoming.actor, incoming.object_id) == ("Create", ALICE, f"{ALICE}/statuses/1")


@pytest.mark.parametrize("doc", [[], "Create", None, 3])
def test_validate_activity__rejects_a_document_that_is_not_an_object(doc: Any) -> None:
    assert refused(validate_activity, doc).reason == "not_an_object"


def test_validate_activity__rejects_missing_id() -> None:
    doc = create()
    del doc["id"]
    error = refused(validate_activity, doc)
    assert (error.reason, error.path, str(error)) == ("missing", "id", "id: required")


@pytest.mark.parametrize(
    "bad_id",
    [
        "urn:uuid:0d3b0f38-4b43-4a4e-9a47-7d0c6b9b7b1f",  # not a URL we can fetch
        "/users/alice/statuses/1",  # relative
        "//social.example/users/alice",  # protocol-relative
        "javascript:alert(1)",
        "ftp://social.example/x",
        "https://",  # no host
        "https://user:secret@social.example/x",  # credentials make the origin ambiguous
        "https://social.example/a b",  # whitespace
        "https://social.example:99999/x",  # port out of range
        "",
    ],
)
def test_validate_activity__rejects_an_id_that_is_not_an_absolute_http_url(bad_id: str) -> None:
    error = refused(validate_activity, create(id=bad_id))
    assert (error.reason, error.path) == ("not_a_url", "id")
    assert str(error) == "id: must be an absolute http(s) URL"


@pytest.mark.parametrize("field", ["actor", "object"])
def test_validate_activity__rejects_relative_urls_in_references(field: str) -> None:
    error = refused(validate_activity, create(**{field: "/users/alice"}))
    assert (error.reason, error.path) == ("bad_value", field)


def test_validate_activity__rejects_a_relative_addressee() -> None:
    error = refused(validate_activity, create(to=[AS_PUBLIC, "/users/bob"]))
    assert error.path == "to" and error.reason == "bad_value"


def test_validate_activity__rejects_a_missing_context() -> None:
    doc = create()
    del doc["@context"]
    error = refused(validate_activity, doc)
    assert (error.reason, error.path) == ("missing", "@context")


@pytest.mark.parametrize(
    "context",
    [
        "https://example.com/context.json",
        ["https://join-lemmy.org/context.json"],
        "http://www.w3.org/ns/activitystreams",  # http, not the IRI Mastodon compares with
        {"@vocab": AS},
        None,
    ],
)
def test_validate_activity__rejects_a_context_without_activitystreams(context: Any) -> None:
    error = refused(validate_activity, create(**{"@context": context}))
    assert (error.reason, error.path) == ("bad_context", "@context")
    assert str(error) == f"@context: must include {AS}"


@pytest.mark.parametrize("context", [AS, [AS], ["https://join-lemmy.org/context.json", AS], [AS, {"toot": "x"}]])
def test_validate_activity__accepts_activitystreams_as_string_or_in_a_list(context: Any) -> None:
    validate_activity(create(**{"@context": context}))


@pytest.mark.parametrize("bad_type", [5, ["Create"], None, "", {"id": "Create"}])
def test_validate_activity__rejects_a_type_that_is_not_a_string(bad_type: Any) -> None:
    error = refused(validate_activity, create(type=bad_type))
    assert (error.reason, error.path) == ("bad_value", "type")


@pytest.mark.parametrize("kind", ["Create", "Update", "Delete", "Follow", "Like", "Announce", "Undo", "Block", "Flag"])
def test_validate_activity__rejects_an_activity_without_the_object_its_type_needs(kind: str) -> None:
    doc = create(type=kind)
    del doc["object"]
    error = refused(validate_activity, doc)
    assert (error.reason, error.path) == ("missing", "object")


def test_validate_activity__rejects_a_list_of_objects_where_one_is_meant() -> None:
    error = refused(validate_activity, create(obj=[note(), note(id=f"{ALICE}/statuses/2")]))
    assert (error.reason, error.path) == ("bad_value", "object")


def test_validate_activity__names_the_bad_field_of_the_embedded_object() -> None:
    error = refused(validate_activity, create(obj=note(inReplyTo="not a url")))
    assert str(error) == "object.inReplyTo: must be a URL, an object with an id, or a Link"


def test_validate_activity__rejects_a_malformed_date() -> None:
    error = refused(validate_activity, create(obj=note(published="yesterday")))
    assert (error.reason, str(error)) == ("bad_value", "object.published: must be an ISO 8601 date-time")


# --- Envelope: sizes ----------------------------------------------------------------------------


def test_validate_activity__rejects_oversized_content() -> None:
    error = refused(validate_activity, create(obj=note(content="x" * 100_001)))
    assert (error.reason, error.path) == ("too_large", "object.content")


def test_validate_activity__accepts_content_at_the_limit() -> None:
    validate_activity(create(obj=note(content="x" * 100_000)))


def test_validate_activity__rejects_an_oversized_summary() -> None:
    error = refused(validate_activity, create(obj=note(summary="w" * 20_001)))
    assert (error.reason, error.path) == ("too_large", "object.summary")


@pytest.mark.parametrize("field", ["to", "cc"])
def test_validate_activity__rejects_more_than_a_thousand_addressees(field: str) -> None:
    addressees = [f"https://social.example/users/u{number}" for number in range(1001)]
    error = refused(validate_activity, create(**{field: addressees}))
    assert (error.reason, error.path) == ("too_large", field)


def test_validate_activity__rejects_more_than_a_thousand_tags() -> None:
    tags = [{"type": "Hashtag", "name": f"#t{number}"} for number in range(1001)]
    error = refused(validate_activity, create(obj=note(tag=tags)))
    assert (error.reason, error.path) == ("too_large", "object.tag")


def test_validate_activity__rejects_a_document_with_too_many_values() -> None:
    many = [[0] * 1000 for _ in range(51)]
    error = refused(validate_activity, create(extra=many))
    assert error.reason == "too_large"


def test_validate_activity__rejects_a_huge_property_name() -> None:
    assert refused(validate_activity, create(**{"k" * 1025: 1})).reason == "too_large"


@pytest.mark.parametrize("bad", ["a\x00b", "\ud800"])
def test_validate_activity__rejects_unstorable_characters(bad: str) -> None:
    error = refused(validate_activity, create(obj=note(content=bad)))
    assert (error.reason, error.path) == ("bad_value", "object.content")


def test_validate_activity__rejects_json_nested_deeper_than_32_levels() -> None:
    error = refused(validate_activity, create(extra=nested_lists(32)))  # 1 (document) + 32
    assert error.reason == "too_deep"
    validate_activity(create(extra=nested_lists(31)))


def test_check_depth__is_iterative_and_honours_its_limit() -> None:
    check_depth(nested_lists(32))
    assert refused(check_depth, nested_lists(33)).reason == "too_deep"
    assert refused(check_depth, nested_lists(5), limit=4).reason == "too_deep"
    assert refused(check_depth, nested_lists(100_000)).reason == "too_deep"  # no RecursionError


def test_validate_activity__rejects_activities_wrapped_more_than_three_deep() -> None:
    doc: dict[str, Any] = {"id": f"{GROUP}/like", "type": "Like", "actor": GROUP, "object": f"{ALICE}/statuses/1"}
    for level in range(4):
        doc = {"id": f"{GROUP}/announce/{level}", "type": "Announce", "actor": GROUP, "object": doc}
    error = refused(validate_activity, {"@context": AS, **doc})
    assert error.reason == "too_deep"


# --- Parsing ------------------------------------------------------------------------------------


def test_parse_activity__normalises_single_values_and_public_spellings() -> None:
    incoming = parsed(create(to="as:Public", cc=f"{ALICE}/followers", actor={"id": ALICE, "type": "Person"}))
    assert incoming.to == (AS_PUBLIC,)
    assert incoming.cc == (f"{ALICE}/followers",)
    assert incoming.actor == ALICE
    assert incoming.object is not None and incoming.object["content"] == "<p>hello</p>"
    with pytest.raises(TypeError):
        incoming.object["content"] = "changed"  # type: ignore[index]


def test_parse_activity__lemmy_announce_of_a_page_gives_the_page_not_an_inner_activity() -> None:
    page = note(id=f"{GROUP}/post/1", type="Page", attributedTo=f"{GROUP.rsplit('/c/', 1)[0]}/u/ann", name="Title")
    announce = {"@context": AS, "id": f"{GROUP}/activities/announce/1", "type": "Announce", "actor": GROUP}
    incoming = parsed({**announce, "object": page, "audience": GROUP})
    assert (incoming.inner, incoming.object_type, incoming.audience) == (None, "Page", GROUP)
    assert incoming.object is not None
    assert parse_note(incoming.object).content_html == "<p><strong>Title</strong></p><p>hello</p>"
    same_origin_verdict = check_origins(incoming, GROUP)  # the page is on the group's origin
    assert (same_origin_verdict.ok, same_origin_verdict.needs_proof_or_fetch) == (True, None)

    remote_page = {**page, "id": "https://elsewhere.example/post/9", "attributedTo": "https://elsewhere.example/u/x"}
    verdict = check_origins(parsed({**announce, "object": remote_page}), GROUP)
    assert (verdict.ok, verdict.reason) == (False, "object_unverified")
    assert verdict.needs_proof_or_fetch == "https://elsewhere.example/post/9"


def test_parse_activity__refuses_a_non_url_in_an_object_list() -> None:
    flag = {"@context": AS, "id": f"{ALICE}/flag/1", "type": "Flag", "actor": ALICE, "object": [BOB, 7]}
    assert refused(validate_activity, flag).path == "object"


def test_parse_activity__never_trusts_a_caller_that_skipped_validation() -> None:
    assert refused(parse_activity, {"type": "Create"}).reason == "missing"
    assert refused(parse_activity, {"id": f"{ALICE}/x", "type": 5, "actor": ALICE}).path == "type"


# --- Origins (FEP-fe34; research/federation.md §8.3 item 14, §8.4 item 23) -----------------------


def test_same_origin__compares_scheme_host_and_port() -> None:
    assert same_origin("https://Social.Example/a", "https://social.example:443/b")
    assert same_origin("http://social.example/a", "http://social.example:80/b")
    assert not same_origin("https://social.example/a", "http://social.example/a")
    assert not same_origin("https://social.example/a", "https://social.example:8443/a")
    assert not same_origin("https://social.example/a", "https://sub.social.example/a")
    assert not same_origin("https://social.example/a", "https://social.example.evil.example/a")
    assert not same_origin("/relative", "/relative")
    assert not same_origin("https://user@social.example/a", "https://social.example/a")


def test_check_origins__accepts_an_activity_signed_by_its_actor() -> None:
    verdict = check_origins(parsed(create()), ALICE)
    assert (verdict.ok, verdict.reason, verdict.needs_proof_or_fetch) == (True, "ok", None)


def test_check_origins__a_signer_other_than_the_actor_needs_proof_or_refetch() -> None:
    incoming = parsed(create())
    verdict = check_origins(incoming, MALLORY)
    assert (verdict.ok, verdict.reason, verdict.needs_proof_or_fetch) == (False, "signer_not_actor", incoming.id)


def test_check_origins__rejects_an_activity_id_on_another_origin_than_its_actor() -> None:
    verdict = check_origins(parsed(create(id="https://evil.example/activities/1")), ALICE)
    assert (verdict.ok, verdict.reason) == (False, "id_origin")


def test_check_origins__rejects_create_attributed_to_someone_else_on_the_same_server() -> None:
    verdict = check_origins(parsed(create(obj=note(attributedTo=BOB))), ALICE)
    assert (verdict.ok, verdict.reason) == (False, "attribution")


def test_check_origins__accepts_create_listing_the_actor_among_several_authors_only() -> None:
    channel = {"type": "Group", "id": "https://social.example/channels/1"}
    assert check_origins(parsed(create(obj=note(attributedTo=[ALICE, channel]))), ALICE).ok
    verdict = check_origins(parsed(create(obj=note(attributedTo=[BOB, channel]))), ALICE)
    assert (verdict.ok, verdict.reason) == (False, "attribution")


def test_check_origins__rejects_create_of_an_object_on_another_origin() -> None:
    verdict = check_origins(parsed(create(obj=note(id="https://evil.example/notes/1"))), ALICE)
    assert (verdict.ok, verdict.reason) == (False, "object_origin")


@pytest.mark.parametrize("kind", ["Update", "Delete"])
def test_check_origins__rejects_update_or_delete_of_a_cross_origin_object(kind: str) -> None:
    doc = {"@context": AS, "id": f"{MALLORY}/activities/1", "type": kind, "actor": MALLORY}
    verdict = check_origins(parsed({**doc, "object": f"{ALICE}/statuses/1"}), MALLORY)
    assert (verdict.ok, verdict.reason, verdict.moderator_action) == (False, "object_origin", True)
    embedded = note()
    verdict = check_origins(parsed({**doc, "object": embedded}), MALLORY)
    assert (verdict.ok, verdict.reason) == (False, "object_origin")


def test_check_origins__rejects_update_of_a_same_origin_post_by_another_author() -> None:
    doc = {"@context": AS, "id": f"{BOB}/updates/1", "type": "Update", "actor": BOB, "object": note()}
    verdict = check_origins(parsed(doc), BOB)
    assert (verdict.ok, verdict.reason) == (False, "attribution")


def test_check_origins__accepts_deleting_oneself_and_refuses_deleting_another_server_account() -> None:
    doc = {"@context": AS, "id": f"{ALICE}#delete", "type": "Delete", "actor": ALICE, "object": ALICE}
    assert check_origins(parsed(doc), ALICE).ok
    forged = {**doc, "id": f"{MALLORY}#delete", "actor": MALLORY}
    assert not check_origins(parsed(forged), MALLORY).ok


def test_check_origins__announce_by_a_group_of_a_remote_members_create_needs_proof_or_fetch() -> None:
    member = "https://members.example/u/ann"
    inner = create(id=f"{member}/create/1", actor=member, obj=note(id=f"{member}/notes/1", attributedTo=member))
    del inner["@context"]
    announce = {"@context": AS, "id": f"{GROUP}/announce/1", "type": "Announce", "actor": GROUP, "object": inner}
    incoming = parsed(announce)
    assert incoming.inner is not None and incoming.inner.type == "Create"
    verdict = check_origins(incoming, GROUP)
    assert (verdict.ok, verdict.reason, verdict.needs_proof_or_fetch) == (
        False,
        "inner_unverified",
        f"{member}/create/1",
    )


def test_check_origins__announce_of_a_same_origin_create_needs_nothing_more() -> None:
    member = "https://groups.example/u/ann"
    inner = create(id=f"{member}/create/1", actor=member, obj=note(id=f"{member}/notes/1", attributedTo=member))
    announce = {"@context": AS, "id": f"{GROUP}/announce/1", "type": "Announce", "actor": GROUP, "object": inner}
    verdict = check_origins(parsed(announce), GROUP)
    assert (verdict.ok, verdict.needs_proof_or_fetch) == (True, None)


def test_check_origins__announce_wrapping_a_forged_create_is_refused_outright() -> None:
    member = "https://members.example/u/ann"
    forged = create(id=f"{member}/create/1", actor=member, obj=note(id=f"{member}/notes/1", attributedTo=ALICE))
    announce = {"@context": AS, "id": f"{GROUP}/announce/1", "type": "Announce", "actor": GROUP, "object": forged}
    verdict = check_origins(parsed(announce), GROUP)
    assert (verdict.ok, verdict.reason) == (False, "inner.attribution")


def test_check_origins__announce_of_a_remote_moderators_removal_is_a_moderator_claim_to_verify() -> None:
    moderator = "https://mods.example/u/mo"
    removal = {"id": f"{moderator}/delete/1", "type": "Delete", "actor": moderator, "object": f"{ALICE}/statuses/1"}
    announce = {"@context": AS, "id": f"{GROUP}/announce/2", "type": "Announce", "actor": GROUP, "object": removal}
    verdict = check_origins(parsed(announce), GROUP)
    assert (verdict.ok, verdict.reason, verdict.moderator_action) == (False, "inner.object_origin", True)
    assert verdict.needs_proof_or_fetch == f"{moderator}/delete/1"


def test_check_origins__announce_signed_by_someone_else_than_the_group_is_refused() -> None:
    announce = {"@context": AS, "id": f"{GROUP}/announce/1", "type": "Announce", "actor": GROUP, "object": BOB}
    assert check_origins(parsed(announce), MALLORY).reason == "signer_not_actor"


def test_check_origins__rejects_undo_of_someone_elses_activity() -> None:
    like = {"id": f"{BOB}/likes/1", "type": "Like", "actor": BOB, "object": f"{ALICE}/statuses/1"}
    undo = {"@context": AS, "id": f"{ALICE}/undo/1", "type": "Undo", "actor": ALICE, "object": like}
    verdict = check_origins(parsed(undo), ALICE)
    assert (verdict.ok, verdict.reason) == (False, "undo_actor")


def test_check_origins__rejects_a_move_of_another_account() -> None:
    move = {"@context": AS, "id": f"{ALICE}#moves/1", "type": "Move", "actor": ALICE, "object": BOB, "target": MALLORY}
    verdict = check_origins(parsed(move), ALICE)
    assert (verdict.ok, verdict.reason) == (False, "move_object")


# --- Posts ---------------------------------------------------------------------------------------


def test_parse_note__sanitizes_scripts_styles_handlers_and_javascript_links() -> None:
    hostile = (
        '<p onclick="steal()">hi</p><style>p{color:red}</style><script>alert(1)</script>'
        '<a href="javascript:alert(1)">x</a><img src="https://evil.example/x" onerror="alert(1)">'
    )
    result = parse_note(note(content=hostile, summary="<b>cw</b><script>x()</script>"))
    assert result.content_html == '<p>hi</p><a rel="nofollow noopener noreferrer">x</a>'
    assert (result.text, result.summary) == ("hi\n\nx", "cw")


def test_parse_note__visibility_from_addressing() -> None:
    assert parse_note(note()).visibility == "public"
    assert parse_note(note(to=[f"{ALICE}/followers"], cc=[AS_PUBLIC])).visibility == "unlisted"
    assert parse_note(note(to=[f"{ALICE}/followers"], cc=[])).visibility == "private"
    mention = {"type": "Mention", "href": BOB, "name": "@bob"}
    assert parse_note(note(to=[BOB], cc=[], tag=[mention])).visibility == "direct"
    assert parse_note(note(to=[BOB, MALLORY], cc=[], tag=mention)).visibility == "limited"


def test_parse_note__known_followers_collections_make_a_post_private() -> None:
    custom = "https://social.example/collections/alice-fans"
    assert parse_note(note(to=[custom], cc=[])).visibility == "limited"
    assert parse_note(note(to=[custom], cc=[]), followers_collections={custom}).visibility == "private"


def test_parse_note__drops_urls_that_are_not_http() -> None:
    result = parse_note(
        note(url="javascript:alert(1)", attachment={"type": "Image", "url": "data:image/png;base64,AA"})
    )
    assert (result.url, result.attachments) == (None, ())


@pytest.mark.parametrize("missing", ["id", "attributedTo", "type"])
def test_parse_note__requires_id_author_and_type(missing: str) -> None:
    doc = note()
    del doc[missing]
    error = refused(parse_note, doc)
    assert (error.reason, error.path) == ("missing", missing)


def test_parse_note__refuses_non_post_types() -> None:
    assert refused(parse_note, note(type="Tombstone")).reason == "unsupported_type"
    assert refused(parse_note, note(type="Person")).reason == "unsupported_type"


def test_validate_object__needs_its_own_context_when_fetched() -> None:
    assert refused(validate_object, note()).path == "@context"
    validate_object({"@context": AS, **note()})


# --- Actors --------------------------------------------------------------------------------------


def test_parse_actor__reads_the_template() -> None:
    actor = parse_actor(person(), fetched_from=ALICE)
    assert (actor.inbox, actor.shared_inbox, actor.public_key_id) == (
        f"{ALICE}/inbox",
        "https://social.example/inbox",
        f"{ALICE}#main-key",
    )


@pytest.mark.parametrize("fetched_from", [f"{ALICE}/", "https://social.example/users/Alice", MALLORY])
def test_parse_actor__refuses_an_id_other_than_where_it_was_fetched(fetched_from: str) -> None:
    error = refused(parse_actor, person(), fetched_from=fetched_from)
    assert (error.reason, error.path) == ("id_mismatch", "id")


def test_parse_actor__refuses_a_key_owned_by_someone_else() -> None:
    key = {"id": f"{ALICE}#main-key", "owner": BOB, "publicKeyPem": "pem"}
    error = refused(parse_actor, person(publicKey=key), fetched_from=ALICE)
    assert (error.reason, error.path) == ("key_owner", "publicKey.owner")


def test_parse_actor__refuses_a_key_id_on_another_origin() -> None:
    key = {"id": f"{MALLORY}#main-key", "owner": ALICE, "publicKeyPem": "pem"}
    error = refused(parse_actor, person(publicKey=key), fetched_from=ALICE)
    assert (error.reason, error.path) == ("key_origin", "publicKey.id")


def test_parse_actor__takes_the_actors_own_key_from_a_list() -> None:
    keys = [
        {"id": f"{BOB}#main-key", "owner": BOB, "publicKeyPem": "bob"},
        {"id": f"{ALICE}#main-key", "owner": ALICE, "publicKeyPem": "alice"},
    ]
    actor = parse_actor(person(publicKey=keys), fetched_from=ALICE)
    assert (actor.public_key_id, actor.public_key_pem) == (f"{ALICE}#main-key", "alice")


def test_parse_actor__refuses_a_username_over_2048_characters() -> None:
    error = refused(parse_actor, person(preferredUsername="a" * 2049), fetched_from=ALICE)
    assert (error.reason, error.path) == ("too_large", "preferredUsername")
    parse_actor(person(preferredUsername="a" * 2048), fetched_from=ALICE)


def test_parse_actor__requires_an_inbox_and_an_actor_type() -> None:
    doc = person()
    del doc["inbox"]
    assert refused(parse_actor, doc, fetched_from=ALICE).path == "inbox"
    assert refused(parse_actor, person(type="Note"), fetched_from=ALICE).reason == "unsupported_type"


def test_parse_actor__ignores_a_shared_inbox_on_an_unrelated_host() -> None:
    actor = parse_actor(person(endpoints={"sharedInbox": "https://evil.example/inbox"}), fetched_from=ALICE)
    assert actor.shared_inbox is None


def test_parse_actor__keeps_only_multikeys_the_actor_controls_on_its_origin() -> None:
    methods = [
        {"id": f"{ALICE}#ed25519-key", "type": "Multikey", "controller": ALICE, "publicKeyMultibase": "z6MkA"},
        {"id": f"{ALICE}#other", "type": "Multikey", "controller": BOB, "publicKeyMultibase": "z6MkB"},
        {"id": f"{MALLORY}#key", "type": "Multikey", "controller": ALICE, "publicKeyMultibase": "z6MkC"},
    ]
    actor = parse_actor(person(assertionMethod=methods), fetched_from=ALICE)
    assert actor.assertion_keys == ((f"{ALICE}#ed25519-key", "z6MkA"),)


def test_parse_actor__sanitizes_the_summary_and_caps_profile_fields() -> None:
    fields = [{"type": "PropertyValue", "name": f"f{n}", "value": "<script>x</script>v"} for n in range(60)]
    actor = parse_actor(person(summary='<p onclick="x()">bio</p>', attachment=fields), fetched_from=ALICE)
    assert actor.summary_html == "<p>bio</p>"
    assert len(actor.fields) == 50 and actor.fields[0] == ("f0", "v")


def test_parse_actor__group_moderators_come_from_attributed_to() -> None:
    group = person(id=GROUP, type="Group", attributedTo=f"{GROUP}/moderators", inbox=f"{GROUP}/inbox")
    group["publicKey"] = {"id": f"{GROUP}#main-key", "owner": GROUP, "publicKeyPem": "pem"}
    actor = parse_actor(group, fetched_from=GROUP)
    assert (actor.type, actor.moderators, actor.shared_inbox) == ("Group", f"{GROUP}/moderators", None)


# --- WebFinger -----------------------------------------------------------------------------------


def test_parse_jrd__accepts_the_ld_json_profile_form() -> None:
    link = {
        "rel": "self",
        "type": 'application/ld+json; profile="https://www.w3.org/ns/activitystreams"',
        "href": ALICE,
    }
    assert parse_jrd({"subject": "acct:alice@social.example", "links": [link]}) == ("acct:alice@social.example", ALICE)


def test_parse_jrd__refuses_answers_without_subject_or_activitypub_self_link() -> None:
    html_link = {"rel": "self", "type": "text/html", "href": ALICE}
    assert refused(parse_jrd, {"links": [html_link]}).path == "subject"
    assert refused(parse_jrd, {"subject": "acct:a@b", "links": [html_link]}).reason == "no_self_link"
    relative = {"rel": "self", "type": "application/activity+json", "href": "/users/alice"}
    assert refused(parse_jrd, {"subject": "acct:a@b", "links": [relative]}).reason == "not_a_url"
    assert refused(parse_jrd, ["subject"]).reason == "not_an_object"


# --- Property: nothing but InvalidActivity escapes ------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=30,
)
urls = st.sampled_from([ALICE, BOB, MALLORY, GROUP, f"{ALICE}/statuses/1", AS_PUBLIC, "as:Public"])
field_values = json_values | urls | st.lists(urls, max_size=3)
activity_types = st.sampled_from(["Create", "Update", "Delete", "Announce", "Undo", "Follow", "Accept", "Move", "Flag"])


DELETE = object()
ENVELOPE_KEYS = ["@context", "id", "type", "actor", "object", "to", "cc", "audience", "target", "published"]
NOTE_KEYS = [*note(), "inReplyTo", "tag", "attachment", "url", "summary", "name", "contentMap", "sensitive"]


@st.composite
def near_activities(draw: st.DrawFn) -> Any:
    """Valid activities of several shapes with zero to three fields replaced or removed, so that
    most examples get past validation and reach the parsers and the origin checks."""
    shape = draw(st.sampled_from(["Create", "Update", "Announce", "Undo", "Follow", "Flag"]))
    doc = create()
    if shape == "Update":
        doc["type"] = "Update"
    elif shape == "Announce":
        inner = create()
        del inner["@context"]
        doc = {"@context": AS, "id": f"{GROUP}/announce/1", "type": "Announce", "actor": GROUP, "object": inner}
    elif shape == "Undo":
        like = {"id": f"{ALICE}/likes/1", "type": "Like", "actor": ALICE, "object": f"{BOB}/statuses/1"}
        doc = {"@context": AS, "id": f"{ALICE}/undo/1", "type": "Undo", "actor": ALICE, "object": like}
    elif shape in ("Follow", "Flag"):
        doc = {"@context": AS, "id": f"{ALICE}/x/1", "type": shape, "actor": ALICE, "object": [BOB]}
    target = doc["object"]["object"] if shape == "Announce" else doc["object"]
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        in_note = isinstance(target, dict) and draw(st.booleans())
        where = target if in_note else doc
        key = draw(st.sampled_from(NOTE_KEYS if in_note else ENVELOPE_KEYS))
        value = draw(st.just(DELETE) | field_values)
        if value is DELETE:
            where.pop(key, None)
        else:
            where[key] = value
    return doc


def exercise(doc: Any) -> None:
    try:
        validate_activity(doc)
        incoming = parse_activity(doc)
        check_origins(incoming, incoming.actor)
        if incoming.object is not None:
            parse_note(incoming.object)
    except InvalidActivity:
        pass
    for parser, kwargs in ((parse_note, {}), (parse_actor, {"fetched_from": ALICE}), (parse_jrd, {})):
        try:
            parser(copy.deepcopy(doc), **kwargs)
        except InvalidActivity:
            pass


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_inbound__random_json_raises_nothing_but_invalid_activity(doc: Any) -> None:
    exercise(doc)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(near_activities())
def test_inbound__mutated_activities_raise_nothing_but_invalid_activity(doc: Any) -> None:
    exercise(doc)
    exercise(json.loads(json.dumps(doc, allow_nan=True)))
