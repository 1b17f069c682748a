"""Captured real activities (tests/vectors/activities/, sources in its README.md) applied to a
real database through ``server.ingest.apply`` — the step the inbox worker takes after the
inbox has verified the signature and origins (tests/test_vectors.py covers parsing; the inbox
tests cover the checks before this step).

Nothing here needs the network: the remote actors each activity names are stored first as
``accounts`` rows (domain = their host, uri = their actor id, inboxes, ``fetched_at`` now so
``resolve_actor`` trusts them), as ``store_actor`` would have left them. A captured activity
concerns people on the servers it was captured between; to make one concern this instance,
some URLs are rewritten to local accounts or groups, always as whole JSON string values, and
each test says which. Everything else in the document is as captured.

Vectors that need a wrapper are wrapped the way their software does it: Lemmy's community
``Announce`` (shape of lemmy/announce_create_page.json) around another captured Lemmy
activity, since Lemmy announces the activity it received unchanged (FEP-1b12;
research/federation.md §2.4). Where no captured document exists for a case (a Mastodon
``Update``), the test derives one from a captured ``Create`` and says so.
"""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from conftest import create_user_with_token, make_config
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from test_vectors import load

from federation.inbound import parse_activity, validate_activity
from server import groups
from server.config import Config
from server.db import make_engine, make_sessionmaker
from server.devdb import free_port
from server.federation import Federation, host_of
from server.ids import new_id
from server.ingest import Context, Ignored, apply
from server.models import (
    Account,
    Delivery,
    Favourite,
    Follow,
    GroupBan,
    GroupRole,
    InboxItem,
    Mention,
    Notification,
    OutboxActivity,
    Status,
    StatusEdit,
    StatusTag,
    Tag,
)
from server.statuses import Draft, create_status
from server.web import now

PUBLIC = "https://www.w3.org/ns/activitystreams#Public"


# ---------------------------------------------------------------------------- the instance


@dataclass
class Here:
    """A Hearthside instance's database and federation context, without a web server."""

    config: Config
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    fed: Federation

    @property
    def base(self) -> str:
        return self.config.base_url

    async def rows(self, model: Any, *where: Any) -> list[Any]:
        async with self.sessions() as session:
            return list((await session.scalars(select(model).where(*where))).all())

    async def one(self, model: Any, *where: Any) -> Any:
        found = await self.rows(model, *where)
        assert len(found) == 1, f"expected one {model.__name__}, found {len(found)}"
        return found[0]

    async def status(self, uri: str) -> Status:
        return await self.one(Status, Status.uri == uri)

    async def member(self, username: str) -> Account:
        await create_user_with_token(self.engine, self.config, username)
        return await self.one(Account, Account.username == username, Account.domain == "")

    async def post(self, author: Account, text: str, **draft: Any) -> Status:
        async with self.sessions() as session:
            made = await create_status(session, self.config, author_id=author.id, draft=Draft(text=text, **draft))
            await session.commit()
            return made.status

    async def remote(self, uri: str, *, group: bool = False, username: str | None = None) -> Account:
        """A remote actor as ``store_actor`` leaves it (no keys: nothing here verifies them)."""
        origin = uri.split("/", 3)
        shared_inbox = f"{origin[0]}//{origin[2]}/inbox"
        name = username or uri.rstrip("/").rsplit("/", 1)[-1]
        moment = now()
        account = Account(
            id=new_id(),
            username=name,
            username_lower=name.lower(),
            domain=host_of(uri),
            actor_type="Group" if group else "Person",
            uri=uri,
            url=uri,
            inbox_url=f"{uri}/inbox",
            shared_inbox_url=shared_inbox,
            outbox_url=f"{uri}/outbox",
            followers_url=f"{uri}/followers",
            following_url=f"{uri}/following",
            moderators_url=f"{uri}/moderators" if group else None,
            verified_professional=False,
            followers_count=0,
            following_count=0,
            statuses_count=0,
            created_at=moment,
            updated_at=moment,
            fetched_at=moment,
        )
        async with self.sessions() as session:
            session.add(account)
            await session.commit()
        return account

    async def follows(self, follower: Account, target: Account) -> None:
        """``follower`` (local) follows ``target`` (remote), already accepted."""
        async with self.sessions() as session:
            session.add(
                Follow(
                    id=new_id(),
                    account_id=follower.id,
                    target_account_id=target.id,
                    state="accepted",
                    remote=False,
                    created_at=now(),
                )
            )
            await session.commit()

    async def group(self, owner: Account, name: str) -> Account:
        async with self.sessions() as session:
            owner_row = await session.get(Account, owner.id)
            assert owner_row is not None
            view = await groups.create_group(session, owner=owner_row, name=name)
            await session.commit()
            return view.account

    async def joins(self, group: Account, account: Account) -> None:
        async with self.sessions() as session:
            view = await groups.load_group(session, group.id)
            member = await session.get(Account, account.id)
            assert member is not None
            await groups.join(session, view, member)
            await session.commit()

    async def apply(self, document: dict[str, Any]) -> None:
        """What the inbox worker does with a verified item: parse, then ``ingest.apply``."""
        validate_activity(document)
        incoming = parse_activity(document)
        actor = await self.one(Account, Account.uri == incoming.actor)
        item = InboxItem(
            id=new_id(),
            activity_id=incoming.id,
            activity_type=incoming.type,
            actor_uri=incoming.actor,
            signer_key_id=f"{incoming.actor}#main-key",
            body=json.dumps(document),
            state="pending",
            attempts=0,
            next_attempt_at=now(),
            received_at=now(),
        )
        await apply(Context(fed=self.fed, item=item, document=document, actor=actor), incoming, document)


@pytest.fixture
async def here(tmp_path: Path, db_url: str) -> AsyncIterator[Here]:
    config = make_config(tmp_path, db_url, federation={"allow_private_addresses": True, "request_timeout_seconds": 5})
    engine = make_engine(db_url)
    sessions = make_sessionmaker(engine)
    fed = Federation(config, sessions)
    await fed.start()  # the transport is used only by the Mbin fetch test (a local server)
    try:
        yield Here(config, engine, sessions, fed)
    finally:
        await fed.close()
        await engine.dispose()


def rewrite(document: dict[str, Any], mapping: dict[str, str]) -> dict[str, Any]:
    """Replace whole JSON string values (never parts of longer strings); each must occur."""
    text = json.dumps(document)
    for old, new in mapping.items():
        quoted = json.dumps(old)
        assert quoted in text, f"{old} does not occur in the document"
        text = text.replace(quoted, json.dumps(new))
    result: dict[str, Any] = json.loads(text)
    return result


def status_uri(here: Here, author: Account, status: Status) -> str:
    return f"{here.base}/users/{author.username}/statuses/{status.id}"


async def notifications(here: Here, account: Account, kind: str) -> list[Notification]:
    return await here.rows(Notification, Notification.account_id == account.id, Notification.type == kind)


async def tag_names(here: Here, status: Status) -> list[str]:
    async with here.sessions() as session:
        found = await session.scalars(
            select(Tag.name).join(StatusTag, StatusTag.tag_id == Tag.id).where(StatusTag.status_id == status.id)
        )
        return sorted(found)


async def announces_of(here: Here, activity_id: str) -> list[OutboxActivity]:
    found = await here.rows(OutboxActivity, OutboxActivity.activity_type == "Announce")
    return [row for row in found if activity_id in row.body]


# ---------------------------------------------------------------------------- Mastodon

MASTODON_FELIX = "https://mastodon.madrid/users/felix"
MAMOT_RETIOLUS = "https://mamot.fr/users/retiolus"


def felix_create(here: Here, retiolus: Account, parent: Status) -> dict[str, Any]:
    """mastodon/create_note.json, with the person it replies to and mentions living here.

    Rewrites: ``https://mamot.fr/users/retiolus`` (cc and the Mention tag) becomes the local
    member retiolus; ``inReplyTo`` becomes a post of retiolus here.
    """
    return rewrite(
        load("mastodon/create_note.json"),
        {
            MAMOT_RETIOLUS: f"{here.base}/users/retiolus",
            "https://mamot.fr/users/retiolus/statuses/107224244380204526": status_uri(here, retiolus, parent),
        },
    )


async def felix_replies_to_retiolus(here: Here) -> tuple[Account, Account, Status, Status]:
    felix = await here.remote(MASTODON_FELIX)
    retiolus = await here.member("retiolus")
    parent = await here.post(retiolus, "Which laptop should I get?")
    document = felix_create(here, retiolus, parent)
    await here.apply(document)
    return felix, retiolus, parent, await here.status(document["object"]["id"])


async def test_mastodon__reply_mentioning_a_member_is_stored_threaded_and_notifies(here: Here) -> None:
    felix, retiolus, parent, reply = await felix_replies_to_retiolus(here)
    assert (reply.account_id, reply.local) == (felix.id, False)
    assert reply.in_reply_to_id == parent.id and reply.in_reply_to_account_id == retiolus.id
    assert reply.thread_root_id == parent.id
    # to: followers, cc: Public → unlisted (Mastodon's rule, research/federation.md §2.5).
    assert reply.visibility == "unlisted"
    assert reply.url == "https://mastodon.madrid/@felix/107224289116410645"
    assert reply.text.startswith("@retiolus i have never been disappointed by a thinkpad.")
    assert reply.content.startswith(
        '<p><span class="h-card"><a href="https://mamot.fr/@retiolus" class="u-url mention"'
    )
    assert 'rel="nofollow noopener noreferrer"' in reply.content  # the sanitizer's rel, as for every link
    assert [m.account_id for m in await here.rows(Mention, Mention.status_id == reply.id)] == [retiolus.id]
    [mention] = await notifications(here, retiolus, "mention")
    assert (mention.from_account_id, mention.status_id) == (felix.id, reply.id)
    assert (await here.one(Status, Status.id == parent.id)).replies_count == 1
    assert (await here.one(Account, Account.id == felix.id)).statuses_count == 1

    # Delivered twice (to two inboxes, or retried): stored once, notified once.
    await here.apply(felix_create(here, retiolus, parent))
    assert len(await here.rows(Status, Status.uri == reply.uri)) == 1
    assert len(await notifications(here, retiolus, "mention")) == 1


async def test_mastodon__note_concerning_nobody_here_is_ignored(here: Here) -> None:
    """The same Create without the rewrites: it names nobody here, and nobody follows felix."""
    await here.remote(MASTODON_FELIX)
    with pytest.raises(Ignored, match="not_addressed_to_anyone_here"):
        await here.apply(load("mastodon/create_note.json"))
    assert await here.rows(Status) == []


async def test_mastodon__like_then_undo_counts_and_uncounts_a_local_post(here: Here) -> None:
    """mastodon/like_page.json and undo_like_page.json; rewrite: the liked object
    (``https://ds9.lemmy.ml/post/147``) becomes a local post. The Undo names a Like id other
    than the captured Like's (both are real captures): the like is found by (actor, post)."""
    felix = await here.remote(MASTODON_FELIX)
    alice = await here.member("alice")
    post = await here.post(alice, "Small wins today.")
    local = {"https://ds9.lemmy.ml/post/147": status_uri(here, alice, post)}

    await here.apply(rewrite(load("mastodon/like_page.json"), local))
    assert (await here.one(Status, Status.id == post.id)).favourites_count == 1
    [favourite] = await here.rows(Favourite, Favourite.status_id == post.id)
    assert (favourite.account_id, favourite.uri) == (felix.id, "https://mastodon.madrid/users/felix#likes/212340")
    assert [n.from_account_id for n in await notifications(here, alice, "favourite")] == [felix.id]
    await here.apply(rewrite(load("mastodon/like_page.json"), local))  # a repeat changes nothing
    assert (await here.one(Status, Status.id == post.id)).favourites_count == 1

    await here.apply(rewrite(load("mastodon/undo_like_page.json"), local))
    assert (await here.one(Status, Status.id == post.id)).favourites_count == 0
    assert await here.rows(Favourite) == []
    assert await notifications(here, alice, "favourite") == []


async def test_mastodon__like_of_a_post_unknown_here_is_ignored(here: Here) -> None:
    await here.remote(MASTODON_FELIX)
    with pytest.raises(Ignored, match="like_of_unknown_post"):
        await here.apply(load("mastodon/like_page.json"))


async def test_mastodon__delete_by_its_author_removes_the_post(here: Here) -> None:
    """mastodon/delete.json; rewrite: the deleted status id (and its atomUri) becomes felix's
    reply stored from mastodon/create_note.json (the captures are of two different posts)."""
    felix, _retiolus, parent, reply = await felix_replies_to_retiolus(here)
    deleted = "https://mastodon.madrid/users/felix/statuses/107773559874184870"
    await here.apply(rewrite(load("mastodon/delete.json"), {deleted: reply.uri or ""}))
    gone = await here.status(reply.uri or "")
    assert gone.deleted_at is not None
    assert (await here.one(Status, Status.id == parent.id)).replies_count == 0
    timeline = await here.rows(Status, Status.deleted_at.is_(None), Status.account_id == felix.id)
    assert timeline == []


async def test_mastodon__delete_by_someone_else_is_ignored(here: Here) -> None:
    """The same Delete sent by another actor than the post's author changes nothing."""
    _felix, _retiolus, _parent, reply = await felix_replies_to_retiolus(here)
    await here.remote("https://mastodon.madrid/users/mallory")
    deleted = "https://mastodon.madrid/users/felix/statuses/107773559874184870"
    document = rewrite(
        load("mastodon/delete.json"),
        {deleted: reply.uri or "", MASTODON_FELIX: "https://mastodon.madrid/users/mallory"},
    )
    with pytest.raises(Ignored, match="delete_by_non_author"):
        await here.apply(document)
    assert (await here.status(reply.uri or "")).deleted_at is None


async def test_mastodon__update_replaces_the_text_and_keeps_history(here: Here) -> None:
    """No Mastodon ``Update`` is captured in tests/vectors; this one is derived from
    mastodon/create_note.json the way Mastodon builds it (app/serializers/activitypub/
    update_note_serializer.rb: id ``{status}#updates/{epoch}``, ``published`` = edit time,
    the Note with ``updated`` and its new content)."""
    felix, _retiolus, _parent, reply = await felix_replies_to_retiolus(here)
    created = load("mastodon/create_note.json")
    note = copy.deepcopy(created["object"])
    note["content"] = "<p>Edited: any ThinkPad from the last five years <script>alert(1)</script>will do.</p>"
    note.pop("contentMap")
    note["updated"] = "2021-11-05T12:00:00Z"
    update = {
        "@context": created["@context"],
        "id": f"{note['id']}#updates/1636113600",
        "type": "Update",
        "actor": felix.uri,
        "published": "2021-11-05T12:00:00Z",
        "to": created["to"],
        "cc": created["cc"],
        "object": note,
    }
    await here.apply(update)
    edited = await here.status(reply.uri or "")
    assert edited.content == "<p>Edited: any ThinkPad from the last five years will do.</p>"
    assert edited.text == "Edited: any ThinkPad from the last five years will do."
    assert edited.edited_at is not None
    history = sorted(await here.rows(StatusEdit, StatusEdit.status_id == edited.id), key=lambda e: e.created_at)
    assert [e.text for e in history] == [reply.text, edited.text]

    # An Update of felix's post from another actor is refused.
    await here.remote("https://mastodon.madrid/users/mallory")
    forged = {**update, "id": f"{note['id']}#updates/2", "actor": "https://mastodon.madrid/users/mallory"}
    with pytest.raises(Ignored, match="update_of_unknown_post"):
        await here.apply(forged)
    assert (await here.status(reply.uri or "")).text == edited.text


# ---------------------------------------------------------------------------- Misskey


async def test_misskey__reply_with_mention_is_unlisted_threaded_and_notifies(here: Here) -> None:
    """misskey/hideout_create_note.json; rewrites: the mentioned calckey.jp account becomes the
    local member trapezial, and the note it replies to becomes one of trapezial's posts."""
    author = await here.remote("https://misskey.usbharu.dev/users/97ws8y3rj6", username="usbharu")
    trapezial = await here.member("trapezial")
    parent = await here.post(trapezial, "Which state should I trust?")
    document = rewrite(
        load("misskey/hideout_create_note.json"),
        {
            "https://calckey.jp/users/9bu1xzwjyb": f"{here.base}/users/trapezial",
            "https://calckey.jp/notes/9f2i7ymf1d": status_uri(here, trapezial, parent),
        },
    )
    await here.apply(document)
    note = await here.status(document["object"]["id"])
    assert (note.account_id, note.visibility, note.in_reply_to_id) == (author.id, "unlisted", parent.id)
    assert note.text.startswith("@trapezial@calckey.jp いやそういうことじゃなくて")
    assert note.content.startswith('<p><a href="https://calckey.jp/@trapezial" class="u-url mention"')
    [mention] = await notifications(here, trapezial, "mention")
    assert mention.status_id == note.id


# ---------------------------------------------------------------------------- Lemmy

ENTERPRISE_MAIN = "http://enterprise.lemmy.ml/c/main"
LEMMY_BETA = "http://enterprise.lemmy.ml/u/lemmy_beta"
LEMMY_ALPHA = "http://ds9.lemmy.ml/u/lemmy_alpha"


def lemmy_announce(inner: dict[str, Any], number: int) -> dict[str, Any]:
    """The community's Announce as in lemmy/announce_create_page.json, around ``inner``."""
    envelope = load("lemmy/announce_create_page.json")
    inner = {key: value for key, value in inner.items() if key != "@context"}
    return {**envelope, "id": f"http://enterprise.lemmy.ml/activities/announce/test-{number}", "object": inner}


async def lemmy_community_followed_here(here: Here) -> tuple[Account, Account, Account, Account]:
    community = await here.remote(ENTERPRISE_MAIN, group=True)
    beta = await here.remote(LEMMY_BETA)
    alpha = await here.remote(LEMMY_ALPHA)
    reader = await here.member("reader")
    await here.follows(reader, community)  # a member here joined the Lemmy community
    return community, beta, alpha, reader


async def test_lemmy__community_announce_of_a_page_stores_it_in_the_group_with_its_title(here: Here) -> None:
    """lemmy/announce_create_page.json as captured (a local member follows the community)."""
    community, beta, _alpha, _reader = await lemmy_community_followed_here(here)
    await here.apply(load("lemmy/announce_create_page.json"))
    page = await here.status("http://enterprise.lemmy.ml/post/7")
    assert (page.account_id, page.group_id, page.visibility) == (beta.id, community.id, "public")
    # A Page's title becomes the first line (research/federation.md §2.4, Lemmy posts).
    assert page.text == "post 4"
    assert page.content == "<p><strong>post 4</strong></p>"


async def test_lemmy__community_announce_without_a_member_here_is_ignored(here: Here) -> None:
    await here.remote(ENTERPRISE_MAIN, group=True)
    await here.remote(LEMMY_BETA)
    with pytest.raises(Ignored, match="group_without_local_members"):
        await here.apply(load("lemmy/announce_create_page.json"))
    assert await here.rows(Status) == []


async def test_lemmy__community_thread_comment_vote_undo_edit_delete(here: Here) -> None:
    """lemmy/create_page, create_comment, like_note, undo_like_note, update_page and
    delete_page, each inside the community's Announce (see ``lemmy_announce``)."""
    community, _beta, alpha, _reader = await lemmy_community_followed_here(here)
    await here.apply(lemmy_announce(load("lemmy/create_page.json"), 1))
    post = await here.status("http://ds9.lemmy.ml/post/1")
    assert (post.account_id, post.group_id, post.language) == (alpha.id, community.id, "ko")
    assert post.text == "test post\n\ntest body"
    assert post.content == "<p><strong>test post</strong></p><p>test body</p>"

    await here.apply(lemmy_announce(load("lemmy/create_comment.json"), 2))
    comment = await here.status("http://ds9.lemmy.ml/comment/1")
    assert (comment.in_reply_to_id, comment.group_id, comment.text) == (post.id, community.id, "hello")
    assert (await here.status(post.uri or "")).replies_count == 1

    await here.apply(lemmy_announce(load("lemmy/like_note.json"), 3))
    assert (await here.status(comment.uri or "")).favourites_count == 1
    await here.apply(lemmy_announce(load("lemmy/undo_like_note.json"), 4))
    assert (await here.status(comment.uri or "")).favourites_count == 0

    await here.apply(lemmy_announce(load("lemmy/update_page.json"), 5))
    edited = await here.status(post.uri or "")
    assert edited.text == "test post 1\n\ntest body" and edited.edited_at is not None

    await here.apply(lemmy_announce(load("lemmy/delete_page.json"), 6))
    assert (await here.status(post.uri or "")).deleted_at is not None


async def test_lemmy__comment_arriving_before_its_post_is_stitched_when_the_post_arrives(here: Here) -> None:
    """Announces reach us out of order: the comment first (its parent is remembered by uri and
    a fetch of it is scheduled as a job), then the post, which adopts the waiting comment."""
    from server.models import Job

    community, _beta, _alpha, _reader = await lemmy_community_followed_here(here)
    await here.apply(lemmy_announce(load("lemmy/create_comment.json"), 1))
    early = await here.status("http://ds9.lemmy.ml/comment/1")
    assert (early.in_reply_to_id, early.in_reply_to_uri) == (None, "http://ds9.lemmy.ml/post/1")
    [job] = await here.rows(Job, Job.kind == "fetch_ancestor")
    assert job.payload["uri"] == "http://ds9.lemmy.ml/post/1"

    await here.apply(lemmy_announce(load("lemmy/create_page.json"), 2))
    post = await here.status("http://ds9.lemmy.ml/post/1")
    stitched = await here.status("http://ds9.lemmy.ml/comment/1")
    assert (stitched.in_reply_to_id, stitched.in_reply_to_uri, stitched.thread_root_id) == (post.id, None, post.id)
    assert stitched.group_id == community.id


async def test_lemmy__stitched_comment_counts_as_a_reply_of_its_post(here: Here) -> None:
    await lemmy_community_followed_here(here)
    await here.apply(lemmy_announce(load("lemmy/create_comment.json"), 1))
    await here.apply(lemmy_announce(load("lemmy/create_page.json"), 2))
    assert (await here.status("http://ds9.lemmy.ml/post/1")).replies_count == 1


LOCAL_GROUP_REWRITES = ("http://enterprise.lemmy.ml/c/main", "https://enterprise.lemmy.ml/c/main")


def to_local_group(here: Here, document: dict[str, Any], group: str = "main") -> dict[str, Any]:
    """Rewrite: the Lemmy community (both spellings the captures use, http and https, and
    the ``c/tenforward`` audience of the vote captures) becomes the local group."""
    text = json.dumps(document)
    local = f"{here.base}/groups/{group}"
    names = [*LOCAL_GROUP_REWRITES, "https://enterprise.lemmy.ml/c/tenforward"]
    return rewrite(document, {name: local for name in names if json.dumps(name) in text})


async def lemmy_members_of_local_group(here: Here) -> tuple[Account, Account, Account]:
    owner = await here.member("owner")
    group = await here.group(owner, "main")
    alpha = await here.remote(LEMMY_ALPHA)
    beta = await here.remote(LEMMY_BETA)
    await here.joins(group, alpha)  # lemmy_alpha joined (its Follow was accepted)
    return group, alpha, beta


async def test_lemmy__member_posts_and_comments_in_a_local_group_which_announces_each(here: Here) -> None:
    """lemmy/create_page.json and create_comment.json sent by a Lemmy member to a local group
    (rewrite: ``to_local_group``). The group stores each and Announces it unchanged to its
    members' instances (FEP-1b12)."""
    group, alpha, _beta = await lemmy_members_of_local_group(here)
    page = to_local_group(here, load("lemmy/create_page.json"))
    await here.apply(page)
    post = await here.status("http://ds9.lemmy.ml/post/1")
    assert (post.group_id, post.account_id, post.text) == (group.id, alpha.id, "test post\n\ntest body")
    [announce] = await announces_of(here, page["id"])
    body = json.loads(announce.body)
    assert (body["actor"], body["object"]["id"]) == (f"{here.base}/groups/main", page["id"])
    assert body["object"]["object"]["content"] == page["object"]["content"]  # unchanged, not re-rendered
    assert [d.inbox_url for d in await here.rows(Delivery, Delivery.activity_id == announce.id)] == [
        "http://ds9.lemmy.ml/inbox"
    ]

    comment = to_local_group(here, load("lemmy/create_comment.json"))
    await here.apply(comment)
    reply = await here.status("http://ds9.lemmy.ml/comment/1")
    assert (reply.group_id, reply.in_reply_to_id) == (group.id, post.id)
    assert len(await announces_of(here, comment["id"])) == 1

    deletion = to_local_group(here, load("lemmy/delete_page.json"))
    await here.apply(deletion)
    assert (await here.status(post.uri or "")).deleted_at is not None
    assert len(await announces_of(here, deletion["id"])) == 1


async def test_lemmy__post_to_a_local_group_by_a_non_member_is_refused(here: Here) -> None:
    owner = await here.member("owner")
    await here.group(owner, "main")
    await here.remote(LEMMY_ALPHA)
    page = to_local_group(here, load("lemmy/create_page.json"))
    with pytest.raises(Ignored, match="not_a_member_of_group"):
        await here.apply(page)
    assert await here.rows(Status, Status.local.is_(False)) == []
    assert await announces_of(here, page["id"]) == []


async def test_lemmy__vote_on_a_members_comment_in_a_local_group_is_counted(here: Here) -> None:
    """lemmy/like_note.json (rewrite: ``to_local_group``) on a comment stored in the local group."""
    _group, _alpha, _beta = await lemmy_members_of_local_group(here)
    await here.apply(to_local_group(here, load("lemmy/create_page.json")))
    await here.apply(to_local_group(here, load("lemmy/create_comment.json")))
    vote = to_local_group(here, load("lemmy/like_note.json"))
    await here.apply(vote)
    assert (await here.status("http://ds9.lemmy.ml/comment/1")).favourites_count == 1
    assert len(await announces_of(here, vote["id"])) == 1


async def moderated_local_group(here: Here) -> tuple[Account, Account, Account]:
    group, alpha, beta = await lemmy_members_of_local_group(here)
    async with here.sessions() as session:
        # lemmy_beta moderates the local group (as if the owner had named them moderator).
        session.add(GroupRole(id=new_id(), group_id=group.id, account_id=beta.id, role="moderator", created_at=now()))
        await session.commit()
    return group, alpha, beta


async def test_lemmy__ban_by_a_moderator_of_a_local_group_bans_and_announces(here: Here) -> None:
    """lemmy/block_user.json (rewrite: ``to_local_group`` on ``target`` and ``cc``): a
    moderator bans lemmy_alpha from the group."""
    group, alpha, beta = await moderated_local_group(here)
    await here.joins(group, await here.remote(MASTODON_FELIX))  # a member on another instance
    block = to_local_group(here, load("lemmy/block_user.json"))
    await here.apply(block)
    [ban] = await here.rows(GroupBan, GroupBan.group_id == group.id)
    assert (ban.account_id, ban.created_by_account_id) == (alpha.id, beta.id)
    assert await here.rows(Follow, Follow.account_id == alpha.id, Follow.target_account_id == group.id) == []
    [announce] = await announces_of(here, block["id"])
    assert [d.inbox_url for d in await here.rows(Delivery, Delivery.activity_id == announce.id)] == [
        "https://mastodon.madrid/inbox"
    ]
    # Banned: the next post from lemmy_alpha to the group is refused.
    with pytest.raises(Ignored, match="not_a_member_of_group"):
        await here.apply(to_local_group(here, load("lemmy/create_page.json")))


async def test_lemmy__ban_by_someone_who_is_not_a_moderator_is_ignored(here: Here) -> None:
    group, alpha, _beta = await lemmy_members_of_local_group(here)  # lemmy_beta holds no role
    with pytest.raises(Ignored, match="moderation_by_non_moderator"):
        await here.apply(to_local_group(here, load("lemmy/block_user.json")))
    assert await here.rows(GroupBan) == []
    assert await here.rows(Follow, Follow.account_id == alpha.id, Follow.target_account_id == group.id)


async def test_lemmy__ban_keeps_the_moderators_reason(here: Here) -> None:
    group, _alpha, _beta = await moderated_local_group(here)
    await here.apply(to_local_group(here, load("lemmy/block_user.json")))
    [ban] = await here.rows(GroupBan, GroupBan.group_id == group.id)
    assert ban.reason == "spam post"


# ---------------------------------------------------------------------------- Mbin

MBIN_MAGAZINE = "https://kbin.test/m/test"
MBIN_USER = "https://kbin.test/u/user"


async def mbin_magazine_followed_here(here: Here, origin: str = "https://kbin.test") -> tuple[Account, Account]:
    magazine = await here.remote(MBIN_MAGAZINE.replace("https://kbin.test", origin), group=True)
    user = await here.remote(MBIN_USER.replace("https://kbin.test", origin))
    reader = await here.member("reader")
    await here.follows(reader, magazine)
    return magazine, user


async def test_mbin__magazine_announce_of_an_entry_stores_it_with_title_and_hashtag(here: Here) -> None:
    """mbin/AnnounceTest__testAnnounceCreateEntry__1.json (ids scrubbed by Mbin's snapshot
    tests become https://kbin.test/scrubbed/N, see tests/test_vectors.py ``load``)."""
    magazine, user = await mbin_magazine_followed_here(here)
    document = load("mbin/AnnounceTest__testAnnounceCreateEntry__1.json")
    await here.apply(document)
    entry = await here.status(document["object"]["object"]["id"])
    assert (entry.account_id, entry.group_id, entry.visibility) == (user.id, magazine.id, "public")
    assert entry.text == "test" and entry.content == "<p><strong>test</strong></p>"
    assert await tag_names(here, entry) == ["test"]


async def test_mbin__user_boost_of_a_known_entry_is_a_reblog(here: Here) -> None:
    """mbin/AnnounceTest__testUserBoostEntry__1.json; rewrite: its (scrubbed) object id
    becomes the entry stored from the magazine's announce above."""
    _magazine, user = await mbin_magazine_followed_here(here)
    created = load("mbin/AnnounceTest__testAnnounceCreateEntry__1.json")
    await here.apply(created)
    entry = await here.status(created["object"]["object"]["id"])
    boost = load("mbin/AnnounceTest__testUserBoostEntry__1.json")
    boost = rewrite(boost, {boost["object"]: entry.uri or ""})
    await here.apply(boost)
    [reblog] = await here.rows(Status, Status.reblog_of_id == entry.id)
    assert (reblog.account_id, reblog.uri, reblog.visibility) == (user.id, boost["id"], "public")
    assert (await here.status(entry.uri or "")).reblogs_count == 1
    await here.apply(boost)  # delivered again: still one boost
    assert len(await here.rows(Status, Status.reblog_of_id == entry.id)) == 1


async def test_mbin__magazine_boost_by_id_fetches_and_stores_the_entry(here: Here) -> None:
    """mbin/AnnounceTest__testMagazineBoostEntry__1.json; rewrites: ``https://kbin.test``
    becomes a local server on 127.0.0.5 that serves the entry (Mbin's own Page from
    AnnounceTest__testAnnounceCreateEntry__1.json) at the boosted id."""
    app = web.Application()
    origin = ""
    entry_doc: dict[str, Any] = {}

    async def serve_entry(_request: web.Request) -> web.Response:
        return web.json_response(entry_doc, content_type="application/activity+json")

    app.router.add_get("/scrubbed/{n}", serve_entry)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.5", port).start()
    try:
        origin = f"http://127.0.0.5:{port}"
        magazine, user = await mbin_magazine_followed_here(here, origin)
        created = load("mbin/AnnounceTest__testAnnounceCreateEntry__1.json")
        page = json.loads(json.dumps(created["object"]["object"]).replace("https://kbin.test", origin))
        entry_doc.update({"@context": created["@context"], **page})
        boost = load("mbin/AnnounceTest__testMagazineBoostEntry__1.json")
        boost = json.loads(json.dumps(boost).replace("https://kbin.test", origin))
        boost["object"] = page["id"]
        await here.apply(boost)
        entry = await here.status(page["id"])
        assert (entry.account_id, entry.group_id) == (user.id, magazine.id)
    finally:
        await runner.cleanup()


# ---------------------------------------------------------------------------- fediverse-pasture

PASTURE_ACTOR = "http://actor.example"
PASTURE_MENTIONED = "http://pasture-one-actor/actor"


async def pasture_followed_here(here: Here) -> tuple[Account, Account]:
    """The pasture's sending actor, followed by a local member (so its posts concern us)."""
    actor = await here.remote(PASTURE_ACTOR, username="actor")
    reader = await here.member("reader")
    await here.follows(reader, actor)
    return actor, reader


@pytest.mark.parametrize(
    ("name", "mentioned"),
    [("mentions_1", True), ("mentions_7", True), ("mentions_3", True), ("mentions_8", False)],
)
async def test_pasture__mentions_notify_the_local_member(here: Here, name: str, mentioned: bool) -> None:
    """Rewrite: the mentioned ``http://pasture-one-actor/actor`` becomes the local member
    pasture. mentions_8's tag has no type: not a Mention, as for Mastodon (stored, no notification)."""
    actor, _reader = await pasture_followed_here(here)
    pasture = await here.member("pasture")
    document = rewrite(load(f"pasture/{name}.json"), {PASTURE_MENTIONED: f"{here.base}/users/pasture"})
    await here.apply(document)
    note = await here.status(document["object"]["id"])
    assert note.account_id == actor.id
    expected = [pasture.id] if mentioned else []
    assert [m.account_id for m in await here.rows(Mention, Mention.status_id == note.id)] == expected
    assert [n.status_id for n in await notifications(here, pasture, "mention")] == ([note.id] if mentioned else [])


@pytest.mark.parametrize(
    ("name", "tags"),
    [
        ("hashtags_0", ["test"]),  # "#test"
        ("hashtags_1", ["nohash"]),  # a name without "#"
        ("hashtags_8", ["umlautss"]),  # "#ümläütß", ASCII-folded
        ("hashtags_11", ["牛"]),
        ("hashtag_jsonld_1", ["test"]),  # "as:Hashtag"
        ("hashtag_jsonld_2", []),  # no type: not a hashtag
    ],
)
async def test_pasture__hashtags_are_saved_normalised(here: Here, name: str, tags: list[str]) -> None:
    await pasture_followed_here(here)
    document = load(f"pasture/{name}.json")
    await here.apply(document)
    note = await here.status(document["object"]["id"])
    assert await tag_names(here, note) == tags


@pytest.mark.parametrize(
    ("name", "content", "spoiler"),
    [
        ("html_tags_0", "<b>bold</b>", ""),
        ("html_tags_26", "", ""),  # <script>alert('hi');</script>
        ("html_tags_27", "", ""),  # <img>
        ("html_bad_5", "&lt;$script&gt;$script", ""),
        ("html_anchor_2", '<a href="https://funfedi.dev" rel="nofollow noopener noreferrer">target _self</a>', ""),
        ("content_warnings_2", "text", "summary"),
    ],
)
async def test_pasture__html_is_stored_sanitized_with_its_warning(
    here: Here, name: str, content: str, spoiler: str
) -> None:
    await pasture_followed_here(here)
    document = load(f"pasture/{name}.json")
    await here.apply(document)
    note = await here.status(document["object"]["id"])
    assert (note.content, note.spoiler_text, note.sensitive) == (content, spoiler, bool(spoiler))
    assert "<script" not in note.content and "<img" not in note.content
