"""federation.documents: the shapes Mastodon, Lemmy and the NodeInfo schemas require
(research/federation.md §8.1, §8.2, §2.4, §5), checked without a server.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import base58
import pytest
from jsonschema import Draft4Validator

from crypto.keys import generate_ed25519, generate_rsa
from crypto.signing import PublicKey
from federation.documents import (
    ACTOR_CONTEXT,
    AS_CONTEXT,
    DATA_INTEGRITY_CONTEXT,
    DID_CONTEXT,
    MULTIKEY_CONTEXT,
    PUBLIC,
    SECURITY_CONTEXT,
    ActorKeys,
    ActorProfile,
    BadResource,
    DocumentError,
    HashtagTag,
    MentionTag,
    UnknownResource,
    WebFingerQuery,
    accept_activity,
    addressing,
    announce_activity,
    application_document,
    block_activity,
    create_activity,
    delete_activity,
    flag_activity,
    follow_activity,
    format_time,
    group_document,
    host_meta_json,
    host_meta_xml,
    instance_webfinger_document,
    like_activity,
    nodeinfo,
    nodeinfo_content_type,
    nodeinfo_links,
    note_document,
    ordered_collection,
    ordered_collection_page,
    parse_webfinger_resource,
    person_document,
    prefers_html,
    reject_activity,
    tombstone,
    undo_activity,
    update_activity,
    webfinger_document,
)

BASE = "https://hearth.example"
DOMAIN = "hearth.example"
ALICE = f"{BASE}/users/alice"
GROUP = f"{BASE}/groups/circle"
MOMENT = datetime(2025, 3, 4, 5, 6, 7, 890000, tzinfo=UTC)

_RSA = generate_rsa()
_ED = generate_ed25519()


def multikey_of(public_pem: str) -> str:
    """FEP-521a by hand, independently of crypto.signing: "z" + base58btc(0xed01 + raw key).

    The raw 32 bytes are the tail of the 44-byte Ed25519 SubjectPublicKeyInfo DER.
    """
    import base64

    body = "".join(line for line in public_pem.strip().splitlines() if not line.startswith("-----"))
    der = base64.b64decode(body)
    assert len(der) == 44
    return "z" + base58.b58encode(b"\xed\x01" + der[-32:]).decode()


def keys_for(actor: str) -> ActorKeys:
    return ActorKeys(
        rsa_key_id=f"{actor}#main-key",
        rsa_public_pem=_RSA.public_pem,
        ed25519_key_id=f"{actor}#ed25519-key",
        ed25519_multibase=multikey_of(_ED.public_pem),
    )


def profile_for(actor: str, username: str, **overrides: Any) -> ActorProfile:
    values: dict[str, Any] = {
        "id": actor,
        "username": username,
        "name": "Alice <b>",
        "summary": "<p>Hello</p>",
        "url": f"{BASE}/@{username}",
        "shared_inbox": f"{BASE}/inbox",
        "published": MOMENT,
        "icon_url": f"{BASE}/static/avatar.png",
        "image_url": f"{BASE}/static/header.png",
        "fields": [("Pronouns", "she/her")],
        "discoverable": True,
    }
    values.update(overrides)
    return ActorProfile(**values)


# ---------------------------------------------------------------------------- actors

REQUIRED_ACTOR_FIELDS = (
    "@context",
    "id",
    "type",
    "preferredUsername",
    "name",
    "summary",
    "url",
    "inbox",
    "outbox",
    "followers",
    "following",
    "endpoints",
    "published",
    "discoverable",
    "manuallyApprovesFollowers",
    "icon",
    "image",
    "attachment",
    "publicKey",
    "assertionMethod",
)


def check_keys(doc: dict[str, Any], actor: str) -> None:
    key = doc["publicKey"]
    assert isinstance(key, dict), "publicKey must be ONE object (Lemmy's struct, §8.1 item 4)"
    assert key == {"id": f"{actor}#main-key", "owner": actor, "publicKeyPem": _RSA.public_pem}
    assert PublicKey.from_pem(key["publicKeyPem"]).kind == "rsa"
    (method,) = doc["assertionMethod"]
    assert method["type"] == "Multikey"
    assert method["id"] == f"{actor}#ed25519-key"
    assert method["controller"] == actor
    assert method["publicKeyMultibase"].startswith("z6Mk")
    parsed = PublicKey.from_multibase(method["publicKeyMultibase"])
    assert parsed == PublicKey.from_pem(_ED.public_pem)


def test_person_document__has_every_field_mastodon_and_lemmy_need() -> None:
    doc = person_document(profile_for(ALICE, "alice"), keys_for(ALICE), verified_professional=True)
    for name in REQUIRED_ACTOR_FIELDS:
        assert name in doc, name
    # did/v1 defines assertionMethod for JSON-LD consumers (Fedify drops the key without it).
    assert doc["@context"][:5] == [AS_CONTEXT, SECURITY_CONTEXT, DATA_INTEGRITY_CONTEXT, DID_CONTEXT, MULTIKEY_CONTEXT]
    assert isinstance(doc["@context"][5], dict) and doc["@context"][5]["postingRestrictedToMods"]
    assert doc["type"] == "Person"
    assert doc["id"] == ALICE
    assert doc["preferredUsername"] == "alice"
    assert doc["inbox"] == f"{ALICE}/inbox"
    assert doc["outbox"] == f"{ALICE}/outbox"
    assert doc["followers"] == f"{ALICE}/followers"
    assert doc["following"] == f"{ALICE}/following"
    assert doc["endpoints"] == {"sharedInbox": f"{BASE}/inbox"}
    assert doc["published"] == "2025-03-04T05:06:07Z"
    assert doc["attachment"] == [{"type": "PropertyValue", "name": "Pronouns", "value": "she/her"}]
    assert doc["icon"]["url"] == f"{BASE}/static/avatar.png"
    assert doc["verifiedProfessional"] is True
    check_keys(doc, ALICE)


def test_person_document__bot_is_a_service() -> None:
    assert person_document(profile_for(ALICE, "alice"), keys_for(ALICE), bot=True)["type"] == "Service"


def test_person_document__suspended_shows_identity_and_keys_only() -> None:
    doc = person_document(profile_for(ALICE, "alice"), keys_for(ALICE), suspended=True)
    assert doc["suspended"] is True
    assert doc["name"] == "" and doc["summary"] == ""
    for hidden in ("icon", "image", "attachment", "verifiedProfessional"):
        assert hidden not in doc
    check_keys(doc, ALICE)


@pytest.mark.parametrize(
    ("join_policy", "members_only", "approves"),
    [("open", False, False), ("approval", False, True), ("invite", False, True), ("open", True, True)],
)
def test_group_document__lemmy_community_shape(join_policy: str, members_only: bool, approves: bool) -> None:
    doc = group_document(
        profile_for(GROUP, "circle", discoverable=False),
        keys_for(GROUP),
        join_policy=join_policy,
        members_only=members_only,
    )
    for name in REQUIRED_ACTOR_FIELDS:
        assert name in doc, name
    assert doc["type"] == "Group"
    assert doc["attributedTo"] == f"{GROUP}/moderators"
    assert doc["manuallyApprovesFollowers"] is approves
    assert doc["postingRestrictedToMods"] is False
    assert doc["sensitive"] is False
    assert doc["membersOnly"] is members_only
    check_keys(doc, GROUP)


def test_application_document__instance_actor() -> None:
    actor = f"{BASE}/actor"
    doc = application_document(base_url=BASE, domain=DOMAIN, name="Hearth", summary="<p>x</p>", keys=keys_for(actor))
    assert doc["type"] == "Application"
    assert doc["id"] == actor
    assert doc["preferredUsername"] == DOMAIN
    assert doc["inbox"] == f"{actor}/inbox" and doc["outbox"] == f"{actor}/outbox"
    assert doc["endpoints"]["sharedInbox"] == f"{BASE}/inbox"
    assert doc["manuallyApprovesFollowers"] is True
    assert AS_CONTEXT in doc["@context"] and SECURITY_CONTEXT in doc["@context"]
    check_keys(doc, actor)


def test_actor_context__is_the_shared_constant() -> None:
    assert ACTOR_CONTEXT[0] == AS_CONTEXT


# ---------------------------------------------------------------------------- addressing

FOLLOWERS = f"{ALICE}/followers"
GROUP_FOLLOWERS = f"{GROUP}/followers"
BOB = "https://other.example/users/bob"


@pytest.mark.parametrize(
    ("visibility", "group", "members_only", "to", "cc"),
    [
        ("public", None, False, [PUBLIC], [FOLLOWERS, BOB]),
        ("unlisted", None, False, [FOLLOWERS], [PUBLIC, BOB]),
        ("private", None, False, [FOLLOWERS, BOB], []),
        ("public", GROUP, False, [GROUP, PUBLIC], [FOLLOWERS, BOB]),
        ("unlisted", GROUP, False, [GROUP], [PUBLIC, FOLLOWERS, BOB]),
        ("private", GROUP, False, [GROUP, GROUP_FOLLOWERS, BOB], []),
        ("public", GROUP, True, [GROUP, GROUP_FOLLOWERS], []),
        ("unlisted", GROUP, True, [GROUP, GROUP_FOLLOWERS], []),
        ("private", GROUP, True, [GROUP, GROUP_FOLLOWERS], []),
    ],
)
def test_addressing__table(
    visibility: str, group: str | None, members_only: bool, to: list[str], cc: list[str]
) -> None:
    got = addressing(
        visibility,
        author_followers=FOLLOWERS,
        group=group,
        group_followers=GROUP_FOLLOWERS if group else None,
        group_members_only=members_only,
        mentions=[BOB],
    )
    assert got == (to, cc)


@pytest.mark.parametrize("visibility", ["public", "unlisted", "private"])
def test_addressing__members_only_never_public_nor_outsiders(visibility: str) -> None:
    to, cc = addressing(
        visibility,
        author_followers=FOLLOWERS,
        group=GROUP,
        group_followers=GROUP_FOLLOWERS,
        group_members_only=True,
        mentions=[BOB, PUBLIC],
    )
    assert PUBLIC not in to + cc
    assert BOB not in to + cc
    assert FOLLOWERS not in to + cc


def test_addressing__refuses_direct_and_unknown() -> None:
    with pytest.raises(DocumentError, match="end-to-end"):
        addressing("direct", author_followers=FOLLOWERS)
    with pytest.raises(DocumentError, match="unknown visibility"):
        addressing("everyone", author_followers=FOLLOWERS)
    with pytest.raises(DocumentError, match="followers collection"):
        addressing("public", author_followers=FOLLOWERS, group=GROUP)


def test_addressing__deduplicates_mentions() -> None:
    _to, cc = addressing("public", author_followers=FOLLOWERS, mentions=[BOB, BOB, FOLLOWERS])
    assert cc == [FOLLOWERS, BOB]


# ---------------------------------------------------------------------------- notes


def test_note_document__mastodon_shape() -> None:
    note = note_document(
        id=f"{ALICE}/statuses/1",
        attributed_to=ALICE,
        content="<p>hi @bob #calm</p>",
        source="hi @bob@other.example #calm",
        language="en",
        summary="grief",
        published=MOMENT,
        updated=MOMENT + timedelta(minutes=1),
        in_reply_to="https://other.example/notes/9",
        url=f"{BASE}/@alice/1",
        to=[GROUP, PUBLIC],
        cc=[FOLLOWERS],
        tags=[MentionTag(BOB, "@bob@other.example"), HashtagTag(f"{BASE}/tags/calm", "calm")],
        audience=GROUP,
    )
    assert note["type"] == "Note"
    assert note["@context"][0] == AS_CONTEXT
    assert note["contentMap"] == {"en": "<p>hi @bob #calm</p>"}
    assert note["source"] == {"content": "hi @bob@other.example #calm", "mediaType": "text/markdown"}
    assert note["summary"] == "grief" and note["sensitive"] is True
    assert note["published"] == "2025-03-04T05:06:07Z"
    assert note["updated"] == "2025-03-04T05:07:07Z"
    assert note["inReplyTo"] == "https://other.example/notes/9"
    assert note["tag"] == [
        {"type": "Mention", "href": BOB, "name": "@bob@other.example"},
        {"type": "Hashtag", "href": f"{BASE}/tags/calm", "name": "#calm"},
    ]
    assert note["audience"] == GROUP


def test_note_document__plain_post_omits_optional_fields() -> None:
    note = note_document(
        id=f"{ALICE}/statuses/1", attributed_to=ALICE, content="<p>x</p>", published=MOMENT, to=[PUBLIC], cc=[]
    )
    for absent in ("summary", "updated", "contentMap", "audience", "source"):
        assert absent not in note
    assert note["sensitive"] is False
    assert note["inReplyTo"] is None


def test_format_time__utc_and_refuses_naive() -> None:
    assert format_time(datetime(2025, 1, 1, 2, 0, tzinfo=timezone(timedelta(hours=2)))) == "2025-01-01T00:00:00Z"
    with pytest.raises(DocumentError, match="naive"):
        format_time(datetime(2025, 1, 1))


# ---------------------------------------------------------------------------- activities


def note() -> dict[str, Any]:
    return note_document(
        id=f"{ALICE}/statuses/1",
        attributed_to=ALICE,
        content="<p>x</p>",
        published=MOMENT,
        to=[GROUP, PUBLIC],
        cc=[],
        audience=GROUP,
    )


def test_create_activity__embeds_object_without_context_and_keeps_audience() -> None:
    activity = create_activity(f"{ALICE}/statuses/1/activity", ALICE, note(), [GROUP, PUBLIC], [], MOMENT)
    assert activity["@context"][0] == AS_CONTEXT
    assert activity["type"] == "Create"
    assert activity["actor"] == ALICE
    assert "@context" not in activity["object"]
    assert activity["object"]["id"] == f"{ALICE}/statuses/1"
    assert activity["audience"] == GROUP
    assert activity["to"] == [GROUP, PUBLIC]
    assert activity["published"] == "2025-03-04T05:06:07Z"


def test_update_activity() -> None:
    activity = update_activity(f"{BASE}/activities/2", ALICE, note(), [PUBLIC], [], MOMENT)
    assert activity["type"] == "Update" and activity["audience"] == GROUP


def test_delete_activity__tombstone_and_self_delete() -> None:
    activity = delete_activity(f"{BASE}/activities/3", ALICE, f"{ALICE}/statuses/1", [PUBLIC], [], audience=GROUP)
    assert activity["object"] == {"id": f"{ALICE}/statuses/1", "type": "Tombstone"}
    assert activity["audience"] == GROUP
    assert delete_activity(f"{BASE}/activities/4", ALICE, ALICE, [PUBLIC], [])["object"] == ALICE


def test_announce_activity__inner_unchanged_including_context_and_proof() -> None:
    inner = create_activity(f"{ALICE}/statuses/1/activity", ALICE, note(), [GROUP, PUBLIC], [], MOMENT)
    inner["proof"] = {"type": "DataIntegrityProof", "proofValue": "z..."}
    announce = announce_activity(f"{BASE}/activities/5", GROUP, inner, [PUBLIC], [GROUP_FOLLOWERS], MOMENT)
    assert announce["object"] == inner
    assert announce["object"]["@context"] == inner["@context"]
    assert announce["audience"] == GROUP
    assert announce_activity(f"{BASE}/activities/6", ALICE, f"{ALICE}/statuses/1", [PUBLIC], [], MOMENT)["object"] == (
        f"{ALICE}/statuses/1"
    )


def test_follow_accept_reject_undo() -> None:
    follow = follow_activity(f"{BASE}/activities/7", ALICE, GROUP)
    assert follow["type"] == "Follow" and follow["object"] == GROUP and follow["to"] == [GROUP]
    accept = accept_activity(f"{BASE}/activities/8", GROUP, follow)
    assert accept["type"] == "Accept"
    assert accept["object"] == {k: v for k, v in follow.items() if k != "@context"}
    assert accept["to"] == [ALICE]
    assert reject_activity(f"{BASE}/activities/9", GROUP, follow)["type"] == "Reject"
    undo = undo_activity(f"{BASE}/activities/10", ALICE, follow)
    assert undo["type"] == "Undo" and undo["object"]["id"] == follow["id"] and undo["to"] == [GROUP]
    with pytest.raises(DocumentError, match="no actor"):
        accept_activity(f"{BASE}/activities/11", GROUP, {"id": "x", "type": "Follow"})


def test_like_block_flag() -> None:
    like = like_activity(f"{BASE}/activities/12", ALICE, f"{BASE}/users/bob/statuses/2", audience=GROUP)
    assert like["type"] == "Like" and like["audience"] == GROUP
    block = block_activity(f"{BASE}/activities/13", GROUP, BOB, target=GROUP)
    assert block["type"] == "Block" and block["target"] == GROUP and block["object"] == BOB
    flag = flag_activity(f"{BASE}/activities/14", f"{BASE}/actor", [BOB, f"{BOB}/statuses/3"], "spam")
    assert flag["object"] == [BOB, f"{BOB}/statuses/3"] and flag["content"] == "spam" and flag["to"] == [BOB]
    with pytest.raises(DocumentError):
        flag_activity(f"{BASE}/activities/15", f"{BASE}/actor", [], "x")


def test_every_activity_carries_context() -> None:
    follow = follow_activity("https://h/a/1", ALICE, GROUP)
    built = [
        create_activity("https://h/a/2", ALICE, note(), [], [], MOMENT),
        update_activity("https://h/a/3", ALICE, note(), [], [], MOMENT),
        delete_activity("https://h/a/4", ALICE, "https://h/x", [], []),
        announce_activity("https://h/a/5", GROUP, "https://h/x", [], [], MOMENT),
        follow,
        accept_activity("https://h/a/6", GROUP, follow),
        reject_activity("https://h/a/7", GROUP, follow),
        undo_activity("https://h/a/8", ALICE, follow),
        like_activity("https://h/a/9", ALICE, "https://h/x"),
        block_activity("https://h/a/10", ALICE, BOB),
        flag_activity("https://h/a/11", ALICE, [BOB], "x"),
    ]
    for activity in built:
        assert activity["@context"][0] == AS_CONTEXT, activity["type"]


def test_tombstone_and_collections() -> None:
    stone = tombstone(ALICE, "Person", MOMENT)
    assert stone == {
        "@context": AS_CONTEXT,
        "id": ALICE,
        "type": "Tombstone",
        "formerType": "Person",
        "deleted": "2025-03-04T05:06:07Z",
    }
    collection = ordered_collection(FOLLOWERS, 12)
    assert collection["totalItems"] == 12 and "orderedItems" not in collection and "first" not in collection
    paged = ordered_collection(f"{ALICE}/outbox", 3, first=f"{ALICE}/outbox?page=true")
    assert paged["first"] == f"{ALICE}/outbox?page=true"
    page = ordered_collection_page(f"{ALICE}/outbox?page=true", f"{ALICE}/outbox", [note()], next="n")
    assert page["type"] == "OrderedCollectionPage" and page["partOf"] == f"{ALICE}/outbox"
    assert "@context" not in page["orderedItems"][0] and page["next"] == "n" and "prev" not in page


# ---------------------------------------------------------------------------- WebFinger


def parse(resource: str | None, base: str = BASE) -> WebFingerQuery:
    from urllib.parse import urlsplit

    return parse_webfinger_resource(resource, domain=urlsplit(base).netloc, base_url=base)


@pytest.mark.parametrize(
    ("resource", "expected"),
    [
        (f"acct:alice@{DOMAIN}", WebFingerQuery("acct", username="alice")),
        ("acct:Alice@HEARTH.example", WebFingerQuery("acct", username="Alice")),
        (f"alice@{DOMAIN}", WebFingerQuery("acct", username="alice")),
        (f"@alice@{DOMAIN}", WebFingerQuery("acct", username="alice")),
        (ALICE, WebFingerQuery("actor_url", username="alice", actor_type="Person")),
        (f"{BASE}/@alice", WebFingerQuery("actor_url", username="alice", actor_type="Person")),
        (GROUP, WebFingerQuery("actor_url", username="circle", actor_type="Group")),
        (f"{BASE}/g/circle", WebFingerQuery("actor_url", username="circle", actor_type="Group")),
        (f"{BASE}/", WebFingerQuery("instance")),
        (BASE, WebFingerQuery("instance")),
        (f"{BASE}/actor", WebFingerQuery("instance")),
        (f"acct:{DOMAIN}@{DOMAIN}", WebFingerQuery("instance")),
    ],
)
def test_parse_webfinger_resource__known_forms(resource: str, expected: WebFingerQuery) -> None:
    assert parse(resource) == expected


def test_parse_webfinger_resource__http_only_when_served_over_http() -> None:
    assert parse("http://127.0.0.1:8080/", base="http://127.0.0.1:8080") == WebFingerQuery("instance")
    assert parse("acct:127.0.0.1:8080@127.0.0.1:8080", base="http://127.0.0.1:8080") == WebFingerQuery("instance")
    assert parse("http://127.0.0.1:8080/users/a", base="http://127.0.0.1:8080").username == "a"
    with pytest.raises(UnknownResource):
        parse(f"http://{DOMAIN}/")  # this instance is https


@pytest.mark.parametrize(
    "resource",
    [
        f"mailto:alice@{DOMAIN}",
        f"xmpp:alice@{DOMAIN}",
        "did:web:hearth.example",
        "https://otherhost.example/",
        "https://otherhost.example/users/alice",
        "acct:alice@other.example",
        f"{BASE}/users/alice/outbox",
        f"{BASE}/about",
        f"{BASE}/users/alice?x=1",
        f"acct:bad.name@{DOMAIN}",
        f"{BASE}:8443/",
    ],
)
def test_parse_webfinger_resource__unknown_is_404(resource: str) -> None:
    with pytest.raises(UnknownResource):
        parse(resource)


@pytest.mark.parametrize(
    "resource", [None, "", "   ", "garbage", "acct:", "acct:alice", "acct:@host", "https://", "a b@c", "x" * 3000]
)
def test_parse_webfinger_resource__garbage_is_400(resource: str | None) -> None:
    with pytest.raises(BadResource):
        parse(resource)


def test_webfinger_document__self_link_and_type_property() -> None:
    person = webfinger_document(f"acct:alice@{DOMAIN}", ALICE, f"{BASE}/@alice")
    assert person["subject"] == f"acct:alice@{DOMAIN}"
    assert person["aliases"] == [ALICE, f"{BASE}/@alice"]
    (profile,) = [link for link in person["links"] if link["rel"] == "http://webfinger.net/rel/profile-page"]
    assert profile["href"] == f"{BASE}/@alice"
    (self_link,) = [link for link in person["links"] if link["rel"] == "self"]
    assert self_link["type"] == "application/activity+json" and self_link["href"] == ALICE
    assert self_link["properties"] == {"https://www.w3.org/ns/activitystreams#type": "Person"}
    group = webfinger_document(f"acct:circle@{DOMAIN}", GROUP, f"{BASE}/g/circle", actor_type="Group")
    assert group["links"][-1]["properties"] == {"https://www.w3.org/ns/activitystreams#type": "Group"}


def test_instance_webfinger_document__round_trips_preferred_username() -> None:
    doc = instance_webfinger_document(BASE, DOMAIN)
    assert doc["subject"] == f"acct:{DOMAIN}@{DOMAIN}"
    hrefs = {link["rel"]: link.get("href") for link in doc["links"]}
    assert hrefs["self"] == f"{BASE}/actor"
    assert hrefs["https://www.w3.org/ns/activitystreams#Service"] == f"{BASE}/actor"


# ---------------------------------------------------------------------------- host-meta


def test_host_meta__lrdd_template_escaped() -> None:
    from xml.etree import ElementTree

    root = ElementTree.fromstring(host_meta_xml(BASE))  # noqa: S314 - our own output
    (link,) = list(root)
    assert link.tag == "{http://docs.oasis-open.org/ns/xri/xrd-1.0}Link"
    assert link.attrib["rel"] == "lrdd"
    assert link.attrib["template"] == f"{BASE}/.well-known/webfinger?resource={{uri}}"
    assert host_meta_json(BASE)["links"][0]["template"] == link.attrib["template"]
    tricky = ElementTree.fromstring(host_meta_xml('https://a.example/"&<'))  # noqa: S314
    assert next(iter(tricky)).attrib["template"].startswith('https://a.example/"&<')


# ---------------------------------------------------------------------------- NodeInfo

# The essential subset of the NodeInfo 2.0 and 2.1 JSON schemas
# (http://nodeinfo.diaspora.software/ns/schema/2.x, jhass/nodeinfo schemas/2.x/schema.json):
# the required members, the closed objects, the patterns and enumerations.
_PROTOCOLS = ["activitypub", "buddycloud", "dfrn", "diaspora", "libertree", "ostatus", "pumpio", "tent", "xmpp", "zot"]
_INBOUND = ["atom1.0", "gnusocial", "imap", "pnut", "pop3", "pumpio", "rss2.0", "twitter"]


def nodeinfo_schema(version: str) -> dict[str, Any]:
    software_properties: dict[str, Any] = {
        "name": {"type": "string", "pattern": "^[a-z0-9-]+$"},
        "version": {"type": "string"},
    }
    if version == "2.1":
        software_properties["repository"] = {"type": "string"}
        software_properties["homepage"] = {"type": "string"}
    count = {"type": "integer", "minimum": 0}
    return {
        "$schema": "http://json-schema.org/draft-04/schema#",
        "type": "object",
        "additionalProperties": False,
        "required": ["version", "software", "protocols", "services", "openRegistrations", "usage", "metadata"],
        "properties": {
            "version": {"enum": [version]},
            "software": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name", "version"],
                "properties": software_properties,
            },
            "protocols": {"type": "array", "minItems": 1, "items": {"enum": _PROTOCOLS}},
            "services": {
                "type": "object",
                "additionalProperties": False,
                "required": ["inbound", "outbound"],
                "properties": {
                    "inbound": {"type": "array", "minItems": 0, "items": {"enum": _INBOUND}},
                    "outbound": {"type": "array", "minItems": 0, "items": {"type": "string"}},
                },
            },
            "openRegistrations": {"type": "boolean"},
            "usage": {
                "type": "object",
                "additionalProperties": False,
                "required": ["users"],
                "properties": {
                    "users": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {"total": count, "activeHalfyear": count, "activeMonth": count},
                    },
                    "localPosts": count,
                    "localComments": count,
                },
            },
            "metadata": {"type": "object", "minProperties": 0, "additionalProperties": True},
        },
    }


def build_nodeinfo(version: Any, **overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "software_version": "0.1.0",
        "open_registrations": True,
        "users_total": 5,
        "users_active_month": 3,
        "users_active_halfyear": 4,
        "local_posts": 17,
        "node_name": "Hearth",
        "node_description": "peer support",
    }
    values.update(overrides)
    return nodeinfo(version, **values)


@pytest.mark.parametrize("version", ["2.0", "2.1"])
def test_nodeinfo__validates_against_schema(version: str) -> None:
    document = build_nodeinfo(version, repository="https://code.example/hearthside", homepage="https://h.example")
    Draft4Validator(nodeinfo_schema(version)).validate(document)
    assert document["usage"] == {"users": {"total": 5, "activeMonth": 3, "activeHalfyear": 4}, "localPosts": 17}
    assert document["protocols"] == ["activitypub"]


def test_nodeinfo__schema_subset_catches_a_broken_document() -> None:
    """The schema subset used above is strict enough to fail (no test that cannot fail)."""
    broken = build_nodeinfo("2.0")
    broken["software"]["name"] = "Hearthside"  # uppercase breaks the pattern
    assert list(Draft4Validator(nodeinfo_schema("2.0")).iter_errors(broken))
    with_21_fields = build_nodeinfo("2.1", repository="https://r.example")
    with_21_fields["version"] = "2.0"
    assert list(Draft4Validator(nodeinfo_schema("2.0")).iter_errors(with_21_fields))


def test_nodeinfo__2_0_never_has_repository_and_2_1_omits_unknown() -> None:
    assert "repository" not in build_nodeinfo("2.0", repository="https://r.example")["software"]
    assert build_nodeinfo("2.1", repository="https://r.example")["software"]["repository"] == "https://r.example"
    assert "repository" not in build_nodeinfo("2.1")["software"]


def test_nodeinfo__refuses_negative_counts_and_unknown_versions() -> None:
    with pytest.raises(DocumentError, match="users_total"):
        build_nodeinfo("2.1", users_total=-1)
    with pytest.raises(DocumentError, match="version"):
        build_nodeinfo("1.0")


def test_nodeinfo_links_and_content_type() -> None:
    links = nodeinfo_links(BASE)["links"]
    assert {"rel": "http://nodeinfo.diaspora.software/ns/schema/2.1", "href": f"{BASE}/nodeinfo/2.1"} in links
    assert {"rel": "http://nodeinfo.diaspora.software/ns/schema/2.0", "href": f"{BASE}/nodeinfo/2.0"} in links
    assert (
        nodeinfo_content_type("2.1") == 'application/json; profile="http://nodeinfo.diaspora.software/ns/schema/2.1#"'
    )


# ---------------------------------------------------------------------------- negotiation


@pytest.mark.parametrize(
    ("accept", "html"),
    [
        (None, False),
        ("*/*", False),
        ("application/activity+json", False),
        ('application/ld+json; profile="https://www.w3.org/ns/activitystreams"', False),
        ("application/activity+json, application/ld+json", False),
        ("application/json", False),
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", True),
        ("text/html;q=0.5, application/activity+json", False),
        ("application/activity+json;q=0.1, text/html", True),
    ],
)
def test_prefers_html(accept: str | None, html: bool) -> None:
    assert prefers_html(accept) is html


def test_multikey_helper_agrees_with_crypto_signing() -> None:
    assert multikey_of(_ED.public_pem) == PublicKey.from_pem(_ED.public_pem).to_multibase()
