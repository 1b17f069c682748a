"""Trigger topics (issue 6 item 6; research/moderation.md §6.c test 31): the taxonomy, authors'
tags, members' show/warn/hide choices across every list, content-warning matches (remote
posts too), and the federation mapping both ways."""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import make_config

from federation.inbound_objects import parse_note
from server.config import ConfigError
from server.db import make_sessionmaker
from server.ids import new_id
from server.models import Account, Status
from server.notes import load_related, note_and_create
from server.topics import known_topics
from server.web import now

API = "/api/v1"
TOPICS = "/api/v1/hearthside/topics"
PREFS = "/api/v1/hearthside/topics/preferences"


async def _post(client: Any, user: Any, text: str, **extra: Any) -> dict[str, Any]:
    response = await client.post(f"{API}/statuses", json={"status": text, **extra}, headers=user.headers)
    assert response.status == 200, await response.text()
    return dict(await response.json())


async def _choose(client: Any, user: Any, **choices: str) -> dict[str, Any]:
    response = await client.put(PREFS, json={"preferences": choices}, headers=user.headers)
    assert response.status == 200, await response.text()
    return dict(await response.json())


async def _ids(client: Any, user: Any, path: str) -> list[str]:
    response = await client.get(path, headers=user.headers)
    assert response.status == 200, await response.text()
    return [s["id"] for s in await response.json()]


async def _remote_post(engine: Any, spoiler: str, *, topics: list[str] | None = None) -> int:
    """A remote author's public post as ingest stores one."""
    moment = now()
    name = f"far{new_id()}"
    async with make_sessionmaker(engine)() as session:
        author = Account(
            id=new_id(),
            username=name,
            username_lower=name,
            domain="remote.invalid",
            uri=f"https://remote.invalid/users/{name}",
            inbox_url=f"https://remote.invalid/users/{name}/inbox",
            created_at=moment,
            updated_at=moment,
        )
        session.add(author)
        await session.flush()
        status = Status(
            id=new_id(),
            account_id=author.id,
            visibility="public",
            text="words",
            content="<p>words</p>",
            spoiler_text=spoiler,
            sensitive=bool(spoiler),
            uri=f"https://remote.invalid/notes/{new_id()}",
            local=False,
            topics=topics or [],
            created_at=moment,
        )
        session.add(status)
        await session.commit()
        return status.id


async def test_topics__taxonomy_has_defaults_in_three_languages(client: Any) -> None:
    response = await client.get(TOPICS)
    assert response.status == 200
    topics = await response.json()
    ids = [t["id"] for t in topics]
    assert {"self-harm", "suicide", "eating-disorders", "substance-use", "grief", "violence"} <= set(ids)
    for topic in topics:
        assert set(topic["labels"]) >= {"en", "ru", "fr"}, topic
    assert next(t for t in topics if t["id"] == "self-harm")["labels"]["ru"] == "Самоповреждение"


async def test_topics__unknown_topic_on_a_post_is_refused_naming_it(client: Any, make_user: Any) -> None:
    author = await make_user("author")
    response = await client.post(
        f"{API}/statuses", json={"status": "hi", "hearthside_topics": ["suicide", "nonsense"]}, headers=author.headers
    )
    assert response.status == 422
    error = (await response.json())["error"]
    assert error.startswith("hearthside_topics") and "nonsense" in error


async def test_topics__author_tags_a_post_and_edits_its_topics(client: Any, make_user: Any) -> None:
    author = await make_user("author")
    posted = await _post(client, author, "a hard week", hearthside_topics=["grief", "suicide", "grief"])
    assert posted["hearthside_topics"] == ["grief", "suicide"]
    url = f"{API}/statuses/{posted['id']}"
    edited = await client.put(
        url, json={"status": "a hard week", "hearthside_topics": ["medical"]}, headers=author.headers
    )
    assert edited.status == 200
    assert (await edited.json())["hearthside_topics"] == ["medical"]
    # Leaving the field out keeps the topics; an empty list clears them.
    kept = await client.put(url, json={"status": "a hard week!"}, headers=author.headers)
    assert (await kept.json())["hearthside_topics"] == ["medical"]
    cleared = await client.put(url, json={"status": "a hard week!", "hearthside_topics": []}, headers=author.headers)
    assert (await cleared.json())["hearthside_topics"] == []
    refused = await client.put(url, json={"status": "x", "hearthside_topics": ["bogus"]}, headers=author.headers)
    assert refused.status == 422


async def test_topics__preferences_default_to_show_and_refuse_unknowns(client: Any, make_user: Any) -> None:
    member = await make_user("member")
    response = await client.get(PREFS, headers=member.headers)
    assert response.status == 200
    assert set((await response.json())["preferences"].values()) == {"show"}
    chosen = await _choose(client, member, suicide="hide", grief="warn")
    assert chosen["preferences"]["suicide"] == "hide" and chosen["preferences"]["grief"] == "warn"
    back = await _choose(client, member, grief="show")
    assert back["preferences"]["grief"] == "show" and back["preferences"]["suicide"] == "hide"
    bad_topic = await client.put(PREFS, json={"preferences": {"nope": "hide"}}, headers=member.headers)
    assert bad_topic.status == 422 and "nope" in (await bad_topic.json())["error"]
    bad_mode = await client.put(PREFS, json={"preferences": {"grief": "mute"}}, headers=member.headers)
    assert bad_mode.status == 422 and (await bad_mode.json())["error"].startswith("preferences")
    anonymous = await client.get(PREFS)
    assert anonymous.status == 401


async def test_topics__warn_collapses_the_post_everywhere_for_that_member_only(client: Any, make_user: Any) -> None:
    author = await make_user("author")
    wary = await make_user("wary")
    other = await make_user("other")
    for member in (wary, other):
        await client.post(f"{API}/accounts/{author.account_id}/follow", headers=member.headers)
    post = await _post(client, author, "it has been a hard year", hearthside_topics=["suicide"])
    await _choose(client, wary, suicide="warn")

    def collapsed(entity: dict[str, Any]) -> bool:
        return entity["sensitive"] is True and "Suicide" in entity["spoiler_text"]

    home = await (await client.get(f"{API}/timelines/home", headers=wary.headers)).json()
    public = await (await client.get(f"{API}/timelines/public", headers=wary.headers)).json()
    own = await (await client.get(f"{API}/accounts/{author.account_id}/statuses", headers=wary.headers)).json()
    single = await (await client.get(f"{API}/statuses/{post['id']}", headers=wary.headers)).json()
    for entity in (home[0], public[0], own[0], single):
        assert entity["id"] == post["id"]
        assert collapsed(entity), entity
        assert entity["hearthside_topics"] == ["suicide"]
    # The timeline's row renderer and the status endpoint give the same entity.
    assert home[0] == single
    # Someone who chose nothing, and the author, see the post as written.
    plain = await (await client.get(f"{API}/timelines/home", headers=other.headers)).json()
    mine = await (await client.get(f"{API}/statuses/{post['id']}", headers=author.headers)).json()
    anonymous = await (await client.get(f"{API}/statuses/{post['id']}")).json()
    for entity in (plain[0], mine, anonymous):
        assert entity["sensitive"] is False and entity["spoiler_text"] == ""


async def test_topics__warn_in_russian_names_topics_in_the_members_language(
    client: Any, make_user: Any, engine: Any
) -> None:
    author = await make_user("author")
    reader = await make_user("reader")
    from sqlalchemy import update

    from server.models import User

    async with make_sessionmaker(engine)() as session:
        await session.execute(update(User).where(User.id == reader.user_id).values(locale="ru"))
        await session.commit()
    post = await _post(client, author, "тяжело", hearthside_topics=["self-harm"], spoiler_text="личное")
    await _choose(client, reader, **{"self-harm": "warn"})
    entity = await (await client.get(f"{API}/statuses/{post['id']}", headers=reader.headers)).json()
    assert entity["sensitive"] is True
    assert "Самоповреждение" in entity["spoiler_text"] and "личное" in entity["spoiler_text"]


async def test_topics__hide_leaves_posts_out_of_lists_but_collapses_them_when_opened(
    client: Any, make_user: Any
) -> None:
    author = await make_user("author")
    reader = await make_user("reader")
    await client.post(f"{API}/accounts/{author.account_id}/follow", headers=reader.headers)
    root = await _post(client, author, "an ordinary post about tea")
    hidden = await _post(
        client, author, "@reader relapse story", hearthside_topics=["substance-use"], in_reply_to_id=root["id"]
    )
    visible = await _post(client, author, "a walk in the park")
    await _choose(client, reader, **{"substance-use": "hide"})
    lists = [
        f"{API}/timelines/home",
        f"{API}/timelines/public",
        f"{API}/accounts/{author.account_id}/statuses",
    ]
    for path in lists:
        ids = await _ids(client, reader, path)
        assert hidden["id"] not in ids and visible["id"] in ids, path
    context = await (await client.get(f"{API}/statuses/{root['id']}/context", headers=reader.headers)).json()
    assert hidden["id"] not in [s["id"] for s in context["descendants"]]
    many = await (
        await client.get(f"{API}/statuses?id[]={hidden['id']}&id[]={visible['id']}", headers=reader.headers)
    ).json()
    assert [s["id"] for s in many] == [visible["id"]]
    notes = await (await client.get(f"{API}/notifications", headers=reader.headers)).json()
    assert all((n.get("status") or {}).get("id") != hidden["id"] for n in notes)
    found = await (
        await client.get("/api/v2/search?q=relapse&type=statuses&resolve=false", headers=reader.headers)
    ).json()
    assert hidden["id"] not in [s["id"] for s in found.get("statuses", [])]
    opened = await client.get(f"{API}/statuses/{hidden['id']}", headers=reader.headers)
    assert opened.status == 200
    entity = await opened.json()
    assert entity["sensitive"] is True and "Substance use" in entity["spoiler_text"]
    # Choosing "show" again brings it back.
    await _choose(client, reader, **{"substance-use": "show"})
    assert hidden["id"] in await _ids(client, reader, f"{API}/timelines/home")
    # Negative: other members are unaffected (search included).
    other = await make_user("other")
    assert hidden["id"] in await _ids(client, other, f"{API}/accounts/{author.account_id}/statuses")
    theirs = await client.get("/api/v2/search?q=relapse&type=statuses&resolve=false", headers=other.headers)
    assert hidden["id"] in [s["id"] for s in (await theirs.json())["statuses"]]


async def test_topics__matching_content_warning_collapses_remote_posts(
    client: Any, make_user: Any, engine: Any
) -> None:
    reader = await make_user("reader")
    await _choose(client, reader, **{"self-harm": "warn", "grief": "hide"})
    cw_en = await _remote_post(engine, "CW: self-harm mention")
    cw_ru = await _remote_post(engine, "самоповреждение")
    tagged = await _remote_post(engine, "", topics=["self-harm"])
    griefers = await _remote_post(engine, "griefers in my game again")  # not a whole word: no match
    unrelated = await _remote_post(engine, "food")
    grief = await _remote_post(engine, "Grief and loss")
    public = await (await client.get(f"{API}/timelines/public", headers=reader.headers)).json()
    by_id = {int(s["id"]): s for s in public}
    assert by_id[cw_en]["sensitive"] is True and by_id[cw_en]["spoiler_text"] == "CW: self-harm mention"
    assert by_id[cw_ru]["sensitive"] is True and by_id[cw_ru]["spoiler_text"] == "самоповреждение"
    assert by_id[tagged]["sensitive"] is True and "Self-harm" in by_id[tagged]["spoiler_text"]
    assert by_id[griefers]["spoiler_text"] == "griefers in my game again"
    assert by_id[unrelated]["spoiler_text"] == "food"
    assert grief not in by_id and griefers in by_id
    # Another member without choices sees the remote post as sent (its own warning respected).
    other = await make_user("other")
    plain = {int(s["id"]): s for s in await (await client.get(f"{API}/timelines/public", headers=other.headers)).json()}
    assert plain[cw_en]["sensitive"] is True and plain[tagged]["sensitive"] is False and grief in plain


async def test_topics__outgoing_note_names_topics_in_summary_and_extension(
    client: Any, make_user: Any, engine: Any, config: Any
) -> None:
    author = await make_user("author")
    tagged = await _post(client, author, "hard day", hearthside_topics=["grief", "medical"], language="en")
    with_cw = await _post(client, author, "x", hearthside_topics=["grief"], spoiler_text="grief, long post")
    plain = await _post(client, author, "sunny")
    async with make_sessionmaker(engine)() as session:
        notes = {}
        for post in (tagged, with_cw, plain):
            status = await session.get(Status, int(post["id"]))
            account = await session.get(Account, author.account_id)
            assert status is not None and account is not None
            related = await load_related(session, [status])
            notes[post["id"]] = note_and_create(config, status, account, related)[0]
    note = notes[tagged["id"]]
    assert note["sensitive"] is True
    assert note["summary"] == "Topics: Grief and loss, Medical and hospital"
    assert note["hearthside:topics"] == ["grief", "medical"]
    assert any(isinstance(c, dict) and c.get("hearthside") == "urn:hearthside:ns#" for c in note["@context"])
    assert notes[with_cw["id"]]["summary"] == "grief, long post"  # already names the topic
    assert "hearthside:topics" not in notes[plain["id"]] and notes[plain["id"]]["sensitive"] is False
    assert "summary" not in notes[plain["id"]]


def test_topics__incoming_extension_is_read_back_and_unknown_ids_dropped(config: Any) -> None:
    document = {
        "id": "https://remote.invalid/notes/1",
        "type": "Note",
        "attributedTo": "https://remote.invalid/users/far",
        "content": "<p>hi</p>",
        "summary": "Topics: Suicide",
        "sensitive": True,
        "to": ["https://www.w3.org/ns/activitystreams#Public"],
        "hearthside:topics": ["suicide", "not-ours", "BAD ID", 7],
    }
    note = parse_note(document)
    assert note.topics == ("suicide", "not-ours")
    assert known_topics(config, note.topics) == ["suicide"]
    assert note.summary == "Topics: Suicide" and note.sensitive is True
    assert parse_note({k: v for k, v in document.items() if k != "hearthside:topics"}).topics == ()
    single = parse_note({**document, "hearthside:topics": "grief"})
    assert single.topics == ("grief",)


@pytest.mark.parametrize(
    "entry",
    ["no colon here", "Bad Id: en=x", "ok: en=", "ok: english=Label", "ok:"],
)
def test_topics__config_refuses_malformed_taxonomy(entry: str, tmp_path: Any) -> None:
    with pytest.raises(ConfigError, match=r"safety\.trigger_topics"):
        make_config(tmp_path, safety={"trigger_topics": [entry]})


def test_topics__config_refuses_duplicate_ids(tmp_path: Any) -> None:
    with pytest.raises(ConfigError, match="twice"):
        make_config(tmp_path, safety={"trigger_topics": ["a: en=A", "a: en=B"]})


def test_topics__stored_value_round_trips_as_json(config: Any) -> None:
    assert json.loads(json.dumps(known_topics(config, ["grief", "x"]))) == ["grief"]


async def test_topics__moderators_choices_never_hide_reported_posts(client: Any, make_user: Any) -> None:
    author = await make_user("author")
    reporter = await make_user("reporter")
    mod = await make_user("mod", role="moderator", scopes="read write follow admin:read admin:write")
    post = await _post(client, author, "a fight on the bus", hearthside_topics=["violence"])
    await _choose(client, mod, violence="hide")
    response = await client.post(
        f"{API}/reports",
        json={"account_id": str(author.account_id), "status_ids": [post["id"]]},
        headers=reporter.headers,
    )
    report = await (
        await client.get(f"{API}/admin/reports/{(await response.json())['id']}", headers=mod.headers)
    ).json()
    [shown] = report["statuses"]
    assert shown["id"] == post["id"] and shown["sensitive"] is False and shown["hearthside_topics"] == ["violence"]
    assert post["id"] not in await _ids(client, mod, f"{API}/timelines/public")  # their own timelines still obey
