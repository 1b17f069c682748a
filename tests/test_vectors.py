"""Captured documents from real servers through federation/inbound.py.

Every file under tests/vectors/activities/ (sources in its README.md) must either parse, or be
refused for the reason listed in REFUSED below; nothing else may happen. Then each software
family gets the checks that matter for it: Lemmy and Mbin group shapes, Mastodon visibility,
mentions and keys, Misskey addressing, sanitized HTML from everyone.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from federation.content import sanitize_html
from federation.inbound import (
    AS_PUBLIC,
    Incoming,
    InvalidActivity,
    RemoteActor,
    RemoteNote,
    check_origins,
    parse_activity,
    parse_actor,
    parse_jrd,
    parse_note,
    validate_activity,
    validate_object,
)

VECTORS = Path(__file__).parent / "vectors" / "activities"
# What Lemmy puts around every document it sends (crates/utils/src/lib.rs FEDERATION_CONTEXT);
# its test assets are stored without it.
LEMMY_CONTEXT = ["https://join-lemmy.org/context.json", "https://www.w3.org/ns/activitystreams"]
ACTOR_TYPES = {"Person", "Service", "Organization", "Application", "Group"}
POST_TYPES = {"Note", "Question", "Article", "Page", "Image", "Audio", "Video", "Event"}
ACTIVITY_TYPES = {
    "Accept",
    "Add",
    "Announce",
    "Block",
    "Create",
    "Delete",
    "Dislike",
    "Flag",
    "Follow",
    "Like",
    "Lock",
    "Move",
    "Reject",
    "Remove",
    "Resolve",
    "Undo",
    "Update",
    "Warn",
}

# file -> (reason, path) of the refusal. Each is a real document that a careful server refuses.
REFUSED: dict[str, tuple[str, str]] = {
    # Documentation fragment: the example Question has no author.
    "mastodon/docs_question.json": ("missing", "attributedTo"),
    # GNU social group actor/21 whose only key is owned by actor/2.
    "gnusocial/group.json": ("key_owner", "publicKey.owner"),
    # Mbin's instance actor names only its own context document, not ActivityStreams.
    "mbin/instance.json": ("bad_context", "@context"),
    # Mbin's snapshot of a user deletion was taken before the context was added.
    "mbin/DeleteTest__testDeleteUser__1.json": ("missing", "@context"),
    # Pleroma chat messages are not posts; Hearthside's private messages are E2EE only.
    "pleroma/chat_message.json": ("unsupported_type", "type"),
    "lemmy/tombstone.json": ("unsupported_type", "type"),
    "lotide/tombstone.json": ("unsupported_type", "type"),
    # fediverse-pasture inputs that probe what a server refuses.
    "pasture/context_4.json": ("bad_context", "@context"),  # "@context": null
    "pasture/context_5.json": ("bad_context", "@context"),
    "pasture/in_reply_to_5.json": ("bad_value", "object.inReplyTo"),
    "pasture/necessary_properties_1.json": ("bad_value", "object"),
    "pasture/necessary_properties_3.json": ("bad_value", "object.attributedTo"),
}
# Activities that parse, whose embedded object is refused by parse_note.
OBJECT_REFUSED: dict[str, tuple[str, str]] = {
    "pasture/necessary_properties_4.json": ("bad_value", "type"),  # "type": null
    "pasture/object_types_7.json": ("unsupported_type", "type"),  # a Place
    "lemmy/create_private_message_0.19.json": ("unsupported_type", "type"),  # ChatMessage
    "mbin/CreateTest__testCreateMessage__1.json": ("unsupported_type", "type"),  # ChatMessage
    "mbin/AnnounceTest__testAnnounceCreateMessage__1.json": ("unsupported_type", "type"),  # ChatMessage
}
# Activities that parse but whose signer (their own actor) may not do what they claim.
ORIGIN_REFUSED: dict[str, str] = {
    # pasture's actor is http://actor.example; these posts claim another author.
    "pasture/attributed_to_0.json": "attribution",
    "pasture/attributed_to_1.json": "attribution",
    "pasture/attributed_to_3.json": "attribution",
    # Lemmy moderator actions on another instance's objects (moderator_action is set).
    "lemmy/remove_note.json": "object_origin",
    "lemmy/undo_remove_note.json": "inner.object_origin",
    "lemmy/update_community.json": "object_origin",
}


def vector_files() -> list[str]:
    return sorted(str(path.relative_to(VECTORS)) for path in VECTORS.rglob("*.json"))


def load(name: str) -> Any:
    """A vector as sent on the wire (see README: Lemmy's context, Mbin's scrubbed ids)."""
    text = (VECTORS / name).read_text(encoding="utf-8")
    if name.startswith("mbin/") and "SCRUBBED" in text:
        counter = itertools.count(1)
        text = re.sub(r'"SCRUBBED_ID"', lambda _: f'"https://kbin.test/scrubbed/{next(counter)}"', text)
        text = text.replace('"SCRUBBED_DATE"', '"2024-01-01T00:00:00+00:00"')
    doc = json.loads(text)
    if name.startswith("lemmy/") and isinstance(doc, dict) and "@context" not in doc:
        doc = {"@context": LEMMY_CONTEXT, **doc}
    return doc


def types_of(doc: Mapping[str, Any]) -> set[str]:
    value = doc.get("type")
    return set(value) if isinstance(value, list) else {value}


def parse_vector(name: str) -> Incoming | RemoteNote | RemoteActor | tuple[str, str]:
    """Validate and parse a vector the way the server would, by what the document is."""
    doc = load(name)
    if "subject" in doc:
        return parse_jrd(doc)
    if types_of(doc) & ACTOR_TYPES:
        return parse_actor(doc, fetched_from=doc["id"])
    if not types_of(doc) & ACTIVITY_TYPES:  # Pleroma puts "actor" on its notes too
        validate_object(doc)
        return parse_note(doc)
    validate_activity(doc)
    return parse_activity(doc)


def assert_safe_html(value: str) -> None:
    lowered = value.lower()
    for forbidden in ("<script", "<style", "onclick", "onerror", "style=", "javascript:", "<img", "<iframe"):
        assert forbidden not in lowered
    assert sanitize_html(value) == value  # already a fixed point of the sanitizer


def embedded_posts(incoming: Incoming) -> list[Mapping[str, Any]]:
    """The objects the server would read as posts: whatever a Create carries, and post-typed
    objects inside Update and Announce, at any level of wrapping."""
    found: list[Mapping[str, Any]] = []
    current: Incoming | None = incoming
    while current is not None:
        embedded = current.object
        if embedded is not None and (current.type == "Create" or types_of(embedded) & POST_TYPES):
            found.append(embedded)
        current = current.inner
    return found


@pytest.mark.parametrize("name", vector_files())
def test_vectors__every_document_parses_or_is_refused_for_its_listed_reason(name: str) -> None:
    if name in REFUSED:
        reason, path = REFUSED[name]
        with pytest.raises(InvalidActivity) as refused:
            parse_vector(name)
        assert (refused.value.reason, refused.value.path) == (reason, path)
        assert str(refused.value).startswith(f"{path}: ")
        return
    parsed = parse_vector(name)
    if isinstance(parsed, RemoteNote):
        assert_safe_html(parsed.content_html)
    elif isinstance(parsed, RemoteActor):
        assert_safe_html(parsed.summary_html)
        assert parsed.public_key_owner in (None, parsed.id)
    elif isinstance(parsed, Incoming):
        verdict = check_origins(parsed, parsed.actor)
        assert (verdict.ok, verdict.reason) == (
            (False, ORIGIN_REFUSED[name]) if name in ORIGIN_REFUSED else (True, "ok")
        ), verdict
        posts = embedded_posts(parsed)
        assert posts or name not in OBJECT_REFUSED
        for post in posts:
            if name in OBJECT_REFUSED:
                reason, path = OBJECT_REFUSED[name]
                with pytest.raises(InvalidActivity) as refused:
                    parse_note(post)
                assert (refused.value.reason, refused.value.path) == (reason, path)
            else:
                assert_safe_html(parse_note(post).content_html)


def test_vectors__every_listed_expectation_names_an_existing_file() -> None:
    files = set(vector_files())
    for listed in (REFUSED, OBJECT_REFUSED, ORIGIN_REFUSED):
        assert set(listed) <= files


def test_vectors__every_file_has_its_source_in_the_readme() -> None:
    readme = (VECTORS / "README.md").read_text(encoding="utf-8")
    missing = [name for name in vector_files() if f"| `{name}` |" not in readme]
    assert missing == []
    pasture = [name for name in vector_files() if name.startswith("pasture/")]
    assert 40 <= len(pasture) <= 70  # a representative selection, not the whole set


# --- Lemmy and Mbin: group shapes (research/federation.md §8.4 item 24) -----------------------


def activity(name: str) -> Incoming:
    parsed = parse_vector(name)
    assert isinstance(parsed, Incoming)
    return parsed


def test_lemmy__announce_create_page_gives_the_create_and_the_titled_page() -> None:
    announce = activity("lemmy/announce_create_page.json")
    assert (announce.type, announce.actor) == ("Announce", "http://enterprise.lemmy.ml/c/main")
    assert announce.cc == ("http://enterprise.lemmy.ml/c/main/followers",)
    create = announce.inner
    assert create is not None and create.type == "Create"
    assert create.actor == "http://enterprise.lemmy.ml/u/lemmy_beta"
    assert create.object is not None
    page = parse_note(create.object)
    assert (page.type, page.name, page.id) == ("Page", "post 4", "http://enterprise.lemmy.ml/post/7")
    assert page.content_html == "<p><strong>post 4</strong></p>"
    assert page.audience == "http://enterprise.lemmy.ml/u/main"  # as in the asset
    assert page.published == datetime(2021, 11, 1, 12, 11, 22, 871846, tzinfo=UTC)
    assert page.visibility == "public"
    # The group and its member are on one origin: the group vouches for the Create.
    assert check_origins(announce, announce.actor).needs_proof_or_fetch is None


def test_lemmy__page_has_title_audience_language_mention_and_link() -> None:
    page = parse_vector("lemmy/page.json")
    assert isinstance(page, RemoteNote)
    assert page.audience == "https://enterprise.lemmy.ml/c/tenforward"
    assert page.content_html == (
        "<p><strong>Post title</strong></p><p>This is a post in the /c/tenforward community</p>"
    )
    assert page.text == "Post title\n\nThis is a post in the /c/tenforward community"
    assert page.mentions == ("https://enterprise.lemmy.ml/c/tenforward",)
    assert page.language == "fr"
    assert [attachment.url for attachment in page.attachments] == [
        "https://enterprise.lemmy.ml/pictrs/image/eOtYb9iEiB.png"
    ]


def test_lemmy__comment_reply_in_a_community() -> None:
    create = activity("lemmy/create_comment.json")
    assert create.audience == "https://enterprise.lemmy.ml/c/main"
    assert create.object is not None
    comment = parse_note(create.object)
    assert comment.in_reply_to == "http://ds9.lemmy.ml/post/1"
    assert (comment.visibility, comment.text) == ("public", "hello")


def test_lemmy__group_actor_has_moderators_shared_inbox_and_sanitized_summary() -> None:
    group = parse_vector("lemmy/group.json")
    assert isinstance(group, RemoteActor)
    assert group.type == "Group"
    assert group.moderators == "https://enterprise.lemmy.ml/c/tenforward/moderators"
    assert group.shared_inbox == "https://enterprise.lemmy.ml/inbox"
    assert group.public_key_id == "https://enterprise.lemmy.ml/c/tenforward#main-key"
    assert group.public_key_pem is not None and group.public_key_pem.startswith("-----BEGIN PUBLIC KEY-----")
    assert "<hr" not in group.summary_html and "Welcome to the Enterprise!" in group.summary_html
    assert group.posting_restricted_to_mods is False


def test_lemmy__ban_carries_target_reason_expiry_and_remove_data() -> None:
    block = activity("lemmy/block_user.json")
    assert (block.type, block.object_id, block.target) == (
        "Block",
        "http://ds9.lemmy.ml/u/lemmy_alpha",
        "http://enterprise.lemmy.ml/c/main",
    )
    assert (block.summary, block.remove_data) == ("spam post", True)
    assert block.end_time == datetime(2021, 11, 1, 12, 23, 50, 151874, tzinfo=UTC)


def test_lemmy__account_deletion_names_the_actor_itself() -> None:
    delete = activity("lemmy/delete_user.json")
    assert delete.object_id == delete.actor
    assert check_origins(delete, delete.actor).ok


def test_lemmy__moderator_removal_of_a_remote_comment_is_flagged_as_a_moderator_claim() -> None:
    removal = activity("lemmy/remove_note.json")
    verdict = check_origins(removal, removal.actor)
    assert (verdict.ok, verdict.moderator_action) == (False, True)
    assert removal.audience == "https://enterprise.lemmy.ml/c/main"


def test_lemmy__undo_of_a_vote_parses_the_vote() -> None:
    undo = activity("lemmy/undo_like_note.json")
    assert undo.inner is not None and undo.inner.type == "Like"
    assert undo.inner.actor == undo.actor


def test_mbin__announce_of_a_thread_keeps_magazine_audience_and_title() -> None:
    announce = activity("mbin/AnnounceTest__testAnnounceCreateEntry__1.json")
    assert announce.audience == "https://kbin.test/m/test"
    assert announce.inner is not None and announce.inner.object is not None
    entry = parse_note(announce.inner.object)
    assert (entry.type, entry.name, entry.audience) == ("Page", "test", "https://kbin.test/m/test")
    assert entry.hashtags == ("test",)
    assert entry.in_reply_to is None  # Mbin sends "inReplyTo": null


def test_mbin__announce_of_undo_of_like_is_parsed_two_levels_deep() -> None:
    announce = activity("mbin/AnnounceTest__testAnnounceUndoLikePost__1.json")
    assert announce.inner is not None and announce.inner.inner is not None
    assert (announce.inner.type, announce.inner.inner.type) == ("Undo", "Like")
    assert check_origins(announce, announce.actor).ok


def test_mbin__announce_of_a_ban_has_its_target() -> None:
    announce = activity("mbin/AnnounceTest__testAnnounceBlockUser__1.json")
    assert announce.inner is not None
    assert (announce.inner.type, announce.inner.target) == ("Block", "https://kbin.test/m/test")
    assert announce.inner.summary == "some test"


def test_mbin__magazine_boost_references_the_post_by_id() -> None:
    boost = activity("mbin/AnnounceTest__testMagazineBoostEntry__1.json")
    assert boost.object is None and boost.inner is None
    assert boost.object_id is not None and boost.object_id.startswith("https://kbin.test/")


def test_mbin__report_names_the_post_and_the_account() -> None:
    flag = activity("mbin/flag.json")
    assert flag.object_ids == ("https://lemmy-test/post/4", "https://lemmy-test/u/BentiGorlich")
    assert flag.content == "dikjhgasdpas dsaü"


# --- Mastodon ---------------------------------------------------------------------------------


def test_mastodon__public_note_with_mentions_hashtags_and_language() -> None:
    note = parse_vector("mastodon/note_2.json")
    assert isinstance(note, RemoteNote)
    assert note.visibility == "public"
    assert note.mentions == ("https://lemmy.kde.social/c/kde",)
    assert note.language == "en"
    assert note.in_reply_to == "https://floss.social/users/kde/statuses/113306824627995724"
    assert note.url == "https://floss.social/@kde/113306831140126616"
    # Mastodon's link markup survives the sanitizer; translate= and target= do not.
    assert '<span class="invisible">https://</span>' in note.content_html
    assert "translate=" not in note.content_html and "target=" not in note.content_html


def test_mastodon__reply_to_followers_with_public_cc_is_unlisted_and_names_its_mention() -> None:
    create = activity("mastodon/create_note.json")
    assert create.object is not None
    note = parse_note(create.object)
    assert note.to == ("https://mastodon.madrid/users/felix/followers",)
    assert note.visibility == "unlisted"
    assert note.mentions == ("https://mamot.fr/users/retiolus",)


def test_mastodon__direct_message_is_direct() -> None:
    note = parse_vector("mastodon/private_message.json")
    assert isinstance(note, RemoteNote)
    assert note.to == ("https://ds9.lemmy.ml/u/nutomic",)
    assert note.visibility == "direct"


def test_mastodon__unlisted_note_has_public_in_cc() -> None:
    note = parse_vector("mastodon/note_1.json")
    assert isinstance(note, RemoteNote)
    assert AS_PUBLIC in note.cc and note.visibility == "unlisted"


def test_mastodon__person_has_key_fields_aliases_and_shared_inbox() -> None:
    person = parse_vector("mastodon/hideout_person_gargron.json")
    assert isinstance(person, RemoteActor)
    assert person.public_key_id == "https://mastodon.social/users/Gargron#main-key"
    assert person.shared_inbox == "https://mastodon.social/inbox"
    assert person.also_known_as == ("https://tooting.ai/users/Gargron",)
    assert [name for name, _ in person.fields] == ["Patreon", "GitHub"]
    assert all("target=" not in value for _, value in person.fields)
    assert person.discoverable is True and person.manually_approves_followers is False


def test_mastodon__move_flag_and_block_from_the_documentation() -> None:
    move = activity("mastodon/docs_move.json")
    assert (move.object_id, move.target) == (move.actor, "https://alice.com/users/109835986274379")
    flag = activity("mastodon/docs_flag.json")
    assert len(flag.object_ids) == 3
    assert flag.content == "Please take a look at this user and their posts"
    block = activity("mastodon/docs_block.json")
    assert block.to == ("https://example.com/~mallory",)  # "to" as a single string


def test_mastodon__poll_vote_is_a_note_with_a_name() -> None:
    vote = activity("mastodon/docs_vote_orange.json")
    assert vote.object is not None
    note = parse_note(vote.object)
    assert (note.name, note.in_reply_to) == ("orange", "https://mastodon.example/users/alice/statuses/1009947848598745")
    # Addressed to alice without a Mention tag: "limited" by Mastodon's documented rule.
    assert note.visibility == "limited"


def test_mastodon__webfinger_answer_gives_the_actor() -> None:
    answer = parse_vector("mastodon/docs_webfinger_gargron.json")
    assert answer == ("acct:Gargron@mastodon.social", "https://mastodon.social/users/Gargron")


# --- Misskey, Pleroma, Mitra and others -------------------------------------------------------


def test_misskey__followers_to_public_cc_is_unlisted_reply_with_mention() -> None:
    create = activity("misskey/hideout_create_note.json")
    assert create.object is not None
    note = parse_note(create.object)
    assert note.visibility == "unlisted"
    assert note.mentions == ("https://calckey.jp/users/9bu1xzwjyb",)
    assert note.in_reply_to == "https://calckey.jp/notes/9f2i7ymf1d"
    assert note.content_html.startswith(
        '<p><a href="https://calckey.jp/@trapezial" class="u-url mention" rel="nofollow noopener noreferrer">'
    )


def test_misskey__person_with_null_name_and_locked_account() -> None:
    person = parse_vector("misskey/hideout_person.json")
    assert isinstance(person, RemoteActor)
    assert (person.name, person.summary_html, person.icon_url) == (None, "", None)
    assert person.manually_approves_followers is True
    assert person.shared_inbox == "https://misskey.usbharu.dev/inbox"


def test_pleroma__note_html_is_sanitized() -> None:
    note = parse_vector("pleroma/note.json")
    assert isinstance(note, RemoteNote)
    assert_safe_html(note.content_html)
    assert note.visibility == "unlisted"


def test_mitra__accept_keeps_its_integrity_proof_for_verification() -> None:
    accept = activity("mitra/accept.json")
    proof = accept.raw["proof"]
    assert proof["cryptosuite"] == "eddsa-jcs-2022"
    assert proof["verificationMethod"] == "https://mitra.social/users/localtestgroup#ed25519-key"


def test_peertube__video_author_is_the_account_not_the_channel() -> None:
    video = parse_vector("peertube/video.json")
    assert isinstance(video, RemoteNote)
    assert video.type == "Video"
    assert video.attributed_to == "https://tilvids.com/accounts/thelinuxexperiment"
    assert video.content_html.startswith("<p><strong>")


# --- fediverse-pasture inputs -----------------------------------------------------------------


def pasture_note(number_name: str) -> RemoteNote:
    create = activity(f"pasture/{number_name}.json")
    assert create.object is not None
    return parse_note(create.object)


@pytest.mark.parametrize(
    ("name", "expected_html"),
    [
        ("html_tags_0", "<b>bold</b>"),
        ("html_tags_5", "<del>old</del>new"),
        ("html_tags_11", "<p><strong>h1</strong></p>"),
        ("html_tags_20", "line<br>break"),
        ("html_tags_26", ""),  # <script>alert('hi');</script>
        ("html_tags_27", ""),  # <img>
        ("html_bad_5", "&lt;$script&gt;$script"),
        ("html_anchor_2", '<a href="https://funfedi.dev" rel="nofollow noopener noreferrer">target _self</a>'),
    ],
)
def test_pasture__html_is_reduced_to_mastodons_allowlist(name: str, expected_html: str) -> None:
    assert pasture_note(name).content_html == expected_html


def test_pasture__every_spelling_of_public_is_public() -> None:
    for number in range(3):  # the full IRI, "as:Public", "Public"
        note = pasture_note(f"public_addressing_{number}")
        assert (note.to, note.visibility) == ((AS_PUBLIC, "http://remote.example/"), "public")


@pytest.mark.parametrize("name", ["in_reply_to_0", "in_reply_to_2", "in_reply_to_3", "in_reply_to_4", "in_reply_to_6"])
def test_pasture__in_reply_to_as_url_list_link_or_embedded_note(name: str) -> None:
    assert pasture_note(name).in_reply_to == "http://pasture-one-actor/assets/note1.jsonap"


def test_pasture__mentions_hashtags_language_url_quote_and_cw() -> None:
    assert pasture_note("mentions_1").mentions == ("http://pasture-one-actor/actor",)  # tag as one object
    assert pasture_note("mentions_7").mentions == ("http://pasture-one-actor/actor",)  # as:Mention
    assert pasture_note("mentions_8").mentions == ()  # no type: not a mention (as Mastodon)
    assert pasture_note("hashtags_8").hashtags == ("umlautss",)  # #ümläütß, ASCII-folded
    assert pasture_note("hashtags_11").hashtags == ("牛",)
    assert pasture_note("hashtag_jsonld_1").hashtags == ("test",)  # as:Hashtag
    assert pasture_note("language_3").language == "en"
    assert (pasture_note("language_5").language, pasture_note("language_5").text) == ("de", "Deutsch")
    assert pasture_note("url_4").url == "http://html.example/objects/123"
    assert pasture_note("quotes_4").quote_of == "http://pasture-one-actor/assets/note1.jsonap"
    warned = pasture_note("content_warnings_2")
    assert (warned.summary, warned.sensitive) == ("summary", True)
    assert pasture_note("html_tags_summary_3").summary == "italic with. See Issue 142"


def test_pasture__data_url_attachment_is_dropped() -> None:
    assert pasture_note("image_attachments_16").attachments == ()


def test_pasture__article_title_comes_first() -> None:
    article = pasture_note("object_types_0")
    assert (article.type, article.name, article.content_html) == (
        "Article",
        "name",
        "<p><strong>name</strong></p>content",
    )
