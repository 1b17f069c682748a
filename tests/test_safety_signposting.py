"""Author-only signposting and the helpline directory (research/moderation.md §6.c tests 27 and
33): a draft or post that may indicate a crisis shows its author, and no one else, a localized
panel with the helplines for their country; the post is not removed; the directory keeps a
source and a last-verified date per entry, flags entries past review to admins, and shows
paired services together or not at all."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import make_config
from test_crisis_queue import CRISIS, HARMLESS, STAFF, add_remote_follower, call, post, rows, safety_config

from server.app import create_app
from server.config import Config, ConfigError, parse_config, with_overrides
from server.models import Notification, OutboxActivity
from server.safety import helpline_warnings, select_helplines

CHECK = "/api/v1/hearthside/safety/check"
SETTINGS = "/api/v1/hearthside/safety/settings"
MESSAGE_START = {"en": "It sounds like", "ru": "Похоже", "fr": "On dirait"}
EXPECTED_LINE = {"en": ("US", "988"), "ru": ("RU", "8-800-2000-122"), "fr": ("FR", "3114")}


@pytest.fixture
def config(tmp_path: Path, db_url: str) -> Config:
    return safety_config(tmp_path, db_url)


def line(name: str, countries: list[str], languages: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "name": name, "phone": "000", "countries": countries, "languages": languages,
        "source": "https://example.org/" + name, "last_verified": date.today().isoformat(), **extra,
    }  # fmt: skip


@pytest.mark.parametrize("lang", ["en", "ru", "fr"])
async def test_signposting__draft_shows_the_author_a_localized_panel(client: Any, make_user: Any, lang: str) -> None:
    """§6.c test 27, the draft: the author's language and country choose message and helplines."""
    author = await make_user("author")
    country, phone = EXPECTED_LINE[lang]
    await call(client, "PATCH", SETTINGS, author, json={"country": country.lower()})
    assert (await call(client, "GET", SETTINGS, author))["country"] == country
    body = await call(client, "POST", CHECK, author, json={"text": CRISIS[lang]})  # language detected
    support = body["support"]
    assert support["message"].startswith(MESSAGE_START[lang])
    assert support["language"] == lang and support["country"] == country
    assert phone in [h["phone"] for h in support["helplines"]]
    assert all("last_verified" not in h for h in support["helplines"])  # bookkeeping is for admins
    for text in (HARMLESS, "Had a good day with my sister"):
        assert (await call(client, "POST", CHECK, author, json={"text": text, "language": "en"}))["support"] is None


async def test_signposting__draft_check_validates_and_stores_nothing(client: Any, make_user: Any, engine: Any) -> None:
    author = await make_user("author")
    error = await call(client, "POST", CHECK, author, expect=422, json={})
    assert error["error"].startswith("text")
    await call(client, "POST", CHECK, author, json={"text": CRISIS["en"]})
    assert await rows(engine, Notification) == []
    response = await client.post(CHECK, json={"text": CRISIS["en"]})
    assert response.status == 401


async def test_signposting__created_post_shows_the_panel_to_its_author_only(
    client: Any, make_user: Any, engine: Any
) -> None:
    """§6.c test 27, the post: in the author's answer only; others see the post, unchanged."""
    author = await make_user("author")
    other = await make_user("other")
    await add_remote_follower(engine, author.account_id)
    await call(client, "PATCH", SETTINGS, author, json={"country": "GB"})
    status = await post(client, author, CRISIS["en"], language="en")
    support = status["hearthside_support"]
    assert support["helplines"][0]["name"] == "Samaritans" and support["helplines"][0]["phone"] == "116 123"
    # Not removed or hidden; and nowhere else carries the panel.
    for viewer in (author, other):
        shown = await call(client, "GET", f"/api/v1/statuses/{status['id']}", viewer)
        assert "hearthside_support" not in shown and shown["content"] == status["content"]
    public = await client.get("/api/v1/timelines/public")
    assert status["id"] in [s["id"] for s in await public.json()]
    assert "hearthside_support" not in await public.text()
    account_page = await call(client, "GET", f"/api/v1/accounts/{author.account_id}/statuses", other)
    assert [s["id"] for s in account_page] == [status["id"]] and "hearthside_support" not in str(account_page)
    # No one is notified; the federated Create carries none of it.
    assert await rows(engine, Notification) == []
    [create] = await rows(engine, OutboxActivity, OutboxActivity.activity_type == "Create")
    assert "hearthside_support" not in create.body and support["message"][:20] not in create.body
    # An ordinary post's answer is exactly what GET shows: no field at all.
    assert "hearthside_support" not in await post(client, author, "Tea and a book tonight")


async def test_signposting__idempotent_replay_shows_the_panel_and_queues_once(
    client: Any, make_user: Any, engine: Any
) -> None:
    from server.models import CrisisItem

    author = await make_user("author")
    headers = {**author.headers, "Idempotency-Key": "k1"}
    bodies = []
    for _ in range(2):
        response = await client.post("/api/v1/statuses", json={"status": CRISIS["fr"]}, headers=headers)
        bodies.append(await response.json())
    assert bodies[0]["id"] == bodies[1]["id"]
    assert bodies[0]["hearthside_support"] == bodies[1]["hearthside_support"] is not None
    assert len(await rows(engine, CrisisItem)) == 1


async def test_signposting__country_falls_back_to_the_instance_default(
    aiohttp_client: Any, config: Config, engine: Any, make_user: Any
) -> None:
    french = with_overrides(config, safety={"default_country": "FR"})
    client = await aiohttp_client(create_app(french, engine=engine))
    author = await make_user("author")
    support = (await call(client, "POST", CHECK, author, json={"text": CRISIS["fr"]}))["support"]
    assert support["country"] == "FR" and [h["phone"] for h in support["helplines"]] == ["3114"]
    # The member's own setting wins; clearing it returns to the default.
    await call(client, "PATCH", SETTINGS, author, json={"country": "CA"})
    support = (await call(client, "POST", CHECK, author, json={"text": CRISIS["fr"]}))["support"]
    assert [h["phone"] for h in support["helplines"]] == ["988"]
    await call(client, "PATCH", SETTINGS, author, json={"country": None})
    assert (await call(client, "GET", SETTINGS, author))["country"] is None


async def test_signposting__unknown_country_points_to_the_directory(client: Any, make_user: Any) -> None:
    author = await make_user("author")
    support = (await call(client, "POST", CHECK, author, json={"text": CRISIS["en"]}))["support"]
    assert support["country"] is None and support["helplines"] == []
    assert support["directory_url"] == "https://findahelpline.com"
    for bad in ("France", "F1", 7):
        error = await call(client, "PATCH", SETTINGS, author, expect=422, json={"country": bad})
        assert error["error"].startswith("country")
    mine = await call(client, "GET", "/api/v1/hearthside/safety/helplines", author)
    assert mine == {"country": None, "helplines": [], "directory_url": "https://findahelpline.com"}


async def test_support_kit__the_panels_a_device_needs_and_the_instance_lexicon(
    aiohttp_client: Any, config: Config, engine: Any, make_user: Any
) -> None:
    """GET /api/v1/hearthside/safety/support_kit: for encrypted messages, which no server sees,
    the member's device shows the panels itself (docs/safety.md). The kit has, for every
    message language and level, the panel for a message sent (as a post's) and for one
    received (the supporter's), with the member's helplines, and the instance's lexicon
    changes; it is the same on every request (its fetching says nothing about a message)."""
    changes = with_overrides(
        config, safety={"crisis_additions": {"en": ["intent: walk into the sea"]}, "crisis_exclusions": {}}
    )
    client = await aiohttp_client(create_app(changes, engine=engine))
    member = await make_user("member")
    await call(client, "PATCH", SETTINGS, member, json={"country": "FR"})
    kit = await call(client, "GET", "/api/v1/hearthside/safety/support_kit", member)
    assert kit == await call(client, "GET", "/api/v1/hearthside/safety/support_kit", member)
    assert kit["country"] == "FR" and kit["crisis_additions"] == {"en": ["intent: walk into the sea"]}
    assert sorted(kit["panels"]) == ["en", "fr", "ru"]
    for lang, levels in kit["panels"].items():
        assert sorted(levels) == ["high", "low"]
        for level, both in levels.items():
            sent, received = both["sent"], both["received"]
            assert (sent["kind"], received["kind"]) == ("signpost", "supporter")
            assert sent["message"].startswith(MESSAGE_START[lang]) and received["message"] != sent["message"]
            assert sent["language"] == lang and sent["level"] == level
            assert [h["phone"] for h in sent["helplines"]] == [h["phone"] for h in received["helplines"]] == ["3114"]
            assert (sent["emergency"] is not None) == (level == "high")
    # As a post would: the draft check gives the same panel the kit holds for its level.
    drafted = (await call(client, "POST", CHECK, member, json={"text": CRISIS["fr"]}))["support"]
    assert drafted == kit["panels"]["fr"][drafted["level"]]["sent"]
    assert (await client.get("/api/v1/hearthside/safety/support_kit")).status == 401


# ---------------------------------------------------------------------------- the directory (§6.c test 33)


async def test_helplines__admins_see_entries_past_review_flagged(
    aiohttp_client: Any, config: Config, engine: Any, make_user: Any
) -> None:
    today = date.today()
    entries = [
        line("fresh", ["FR"], ["fr"], last_verified=(today - timedelta(days=10)).isoformat()),
        line("old", ["FR"], ["fr"], last_verified=(today - timedelta(days=200)).isoformat()),
        line("never", ["FR"], ["fr"], last_verified="unverified"),
    ]
    client = await aiohttp_client(create_app(with_overrides(config, safety={"helplines": entries}), engine=engine))
    admin = await make_user("admin", role="admin", scopes=STAFF)
    body = await call(client, "GET", "/api/v1/hearthside/admin/safety/helplines", admin)
    assert body["review_period_days"] == 180
    flags = {h["name"]: (h["stale"], h["source"], h["last_verified"]) for h in body["helplines"]}
    assert flags["fresh"][0] is False and flags["old"][0] is True and flags["never"][0] is True
    assert flags["never"][2] == "unverified" and flags["old"][1] == "https://example.org/old"
    moderator = await make_user("mod", role="moderator", scopes=STAFF)
    await call(client, "GET", "/api/v1/hearthside/admin/safety/helplines", moderator, expect=403)
    member = await make_user("member", scopes=STAFF)
    await call(client, "GET", "/api/v1/hearthside/admin/safety/helplines", member, expect=403)


def test_helplines__warnings_name_each_stale_entry(tmp_path: Path) -> None:
    today = date(2026, 11, 21)
    entries = [
        line("fresh", ["FR"], ["fr"], last_verified="2026-10-01"),
        line("old", ["FR"], ["fr"], last_verified="2026-01-01"),
    ]
    config = make_config(tmp_path, safety={"helplines": entries, "review_period_days": 90})
    [warning] = helpline_warnings(config, today)
    assert "'old'" in warning and "https://example.org/old" in warning
    shipped = make_config(tmp_path)
    unverified = [e for e in shipped.get("safety", "helplines") if e["last_verified"] == "unverified"]
    assert unverified and len(helpline_warnings(shipped, today)) == len(unverified)
    # the checked ones become stale once the review period has passed
    later = today.replace(year=2027, month=6)
    assert len(helpline_warnings(shipped, later)) == len(shipped.get("safety", "helplines"))


def test_helplines__shipped_entries_have_sources_and_say_they_must_be_checked() -> None:
    root = Path(__file__).resolve().parent.parent
    text = (root / "config.example.toml").read_text()
    assert "CHECK EVERY ENTRY AT ITS SOURCE BEFORE USE" in text
    config = parse_config({}, env={})
    entries = config.get("safety", "helplines")
    countries = {c for e in entries for c in e["countries"]}
    assert {"US", "GB", "CA", "FR", "BE", "CH", "RU"} <= countries
    assert all(e["source"].startswith("https://") for e in entries)
    # dated entries carry the day they were checked; the rest say they were not
    assert {e["last_verified"] for e in entries} == {"2026-11-21", "unverified"}


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([{"name": "x", "phone": "1", "countries": ["FR"]}], "source must be"),
        ([line("x", ["FR"], ["fr"], last_verified="last week")], "last_verified must be a date"),
        ([line("x", ["FR"], ["fr"], paired_with="y")], "paired_with names 'y'"),
        ([line("x", ["France"], ["fr"])], "not an ISO 3166-1"),
        ([{**line("x", ["FR"], ["fr"]), "phone": ""}], "needs at least one of"),
        ([line("x", ["FR"], ["fr"]), line("x", ["FR"], ["fr"])], "appears twice"),
        ([line("x", ["FR"], ["fr"], email="a@b")], "unknown key 'email'"),
    ],
)
def test_helplines__bad_entries_are_refused_naming_the_key(entries: list[Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"safety": {"helplines": entries}}, env={})
    assert "safety.helplines" in str(caught.value) and message in str(caught.value)


def test_helplines__paired_services_together_or_not_at_all(tmp_path: Path) -> None:
    shipped = make_config(tmp_path)
    belgium = [h.name for h in select_helplines(shipped, "fr", "BE")]
    assert belgium == ["Centre de Prévention du Suicide", "Zelfmoordlijn 1813"]
    assert [h.name for h in select_helplines(shipped, "nl", "BE")] == belgium  # both, whichever language
    assert select_helplines(shipped, "fr", "FR")[0].name.startswith("3114")
    # A pair whose partner does not serve the country is shown nowhere there: not half of it.
    entries = [
        line("youth", ["XA", "XB"], ["en"], paired_with="adults"),
        line("adults", ["XA"], ["en"]),
        line("other", ["XB"], ["en"]),
    ]
    config = make_config(tmp_path, safety={"helplines": entries})
    assert [h.name for h in select_helplines(config, "en", "XA")] == ["youth", "adults"]
    assert [h.name for h in select_helplines(config, "en", "XB")] == ["other"]
    # Services in the member's language come first, pairs kept adjacent.
    entries = [line("fr-line", ["XC"], ["fr"]), line("en-line", ["XC"], ["en"])]
    config = make_config(tmp_path, safety={"helplines": entries})
    assert [h.name for h in select_helplines(config, "en", "XC")] == ["en-line", "fr-line"]
    assert select_helplines(config, "en", None) == []
