"""Hearthside's group API (/api/v1/hearthside/groups): creation and settings, join policies,
requests, invites, roles, bans and members-only groups, on SQLite and PostgreSQL.

Real responses are validated against the OpenAPI document's schemas, so the document cannot
drift from what the endpoints return.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from sqlalchemy import func, select, text

from server.models import Follow, Group, GroupInvite
from server.openapi import build_document

G = "/api/v1/hearthside/groups"
DOCUMENT = build_document()


def check_schema(instance: Any, name: str, *, many: bool = False) -> None:
    """Validate ``instance`` against ``components.schemas[name]`` (JSON Schema 2020-12)."""
    ref = {"$ref": f"#/components/schemas/{name}"}
    schema = {"components": DOCUMENT["components"], **({"type": "array", "items": ref} if many else ref)}
    Draft202012Validator(schema).validate(instance)


async def new_group(client: Any, owner: Any, name: str = "calm_minds", **fields: Any) -> dict[str, Any]:
    response = await client.post(G, json={"name": name, **fields}, headers=owner.headers)
    assert response.status == 200, await response.text()
    group: dict[str, Any] = await response.json()
    return group


async def expect_error(response: Any, status: int, contains: str = "") -> str:
    assert response.status == status, await response.text()
    body = await response.json()
    assert set(body) == {"error"}
    assert contains in body["error"]
    message: str = body["error"]
    return message


async def count(engine: Any, query: Any) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(query)).scalar_one())


# ---------------------------------------------------------------------------- create and show


async def test_create__creator_becomes_owner_and_member(client: Any, make_user: Any) -> None:
    alice = await make_user("alice")
    group = await new_group(
        client,
        alice,
        display_name="Calm Minds",
        description="A place to breathe.\n\nBe kind.",
        rules=["Be kind", "No medical advice"],
        topic_tags=["#Anxiety", "grief", "anxiety"],
        language="en",
        join_policy="approval",
    )
    check_schema(group, "Group")
    assert group["name"] == "calm_minds"
    assert group["account"]["group"] is True
    assert group["account"]["locked"] is True  # approval: not open
    assert group["description"] == "<p>A place to breathe.</p><p>Be kind.</p>"
    assert group["description_source"] == "A place to breathe.\n\nBe kind."
    assert group["topic_tags"] == ["anxiety", "grief"]
    assert group["members_count"] == 1
    assert group["relationship"]["member"] is True
    assert group["relationship"]["role"] == "owner"
    assert group["url"].endswith("/g/calm_minds")


async def test_show__anonymous_sees_group_without_relationship(client: Any, make_user: Any) -> None:
    alice = await make_user("alice")
    group = await new_group(client, alice)
    response = await client.get(f"{G}/{group['id']}")
    assert response.status == 200
    shown = await response.json()
    check_schema(shown, "Group")
    assert shown["relationship"] is None
    await expect_error(await client.get(f"{G}/12345"), 404, "Record not found")
    await expect_error(await client.get(f"{G}/not-an-id"), 404, "Record not found")
    # A person's account id is not a group.
    await expect_error(await client.get(f"{G}/{alice.account_id}"), 404)


async def test_create__needs_a_token_with_write_groups(client: Any, make_user: Any) -> None:
    reader = await make_user("reader", scopes="read")
    await expect_error(await client.post(G, json={"name": "nope"}), 401)
    await expect_error(await client.post(G, json={"name": "nope"}, headers=reader.headers), 403, "scopes")
    granular = await make_user("granular", scopes="write:groups")
    assert (await client.post(G, json={"name": "yes"}, headers=granular.headers)).status == 200


async def test_show__token_without_read_groups_is_403(client: Any, make_user: Any) -> None:
    alice = await make_user("alice")
    writer = await make_user("writer", scopes="write:statuses")
    group = await new_group(client, alice)
    await expect_error(await client.get(f"{G}/{group['id']}", headers=writer.headers), 403)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"join_policy": "whenever"}, "join_policy:"),
        ({"rules": [f"rule {i}" for i in range(21)]}, "rules:"),
        ({"rules": ["fine", "   "]}, "rules:"),
        ({"topic_tags": ["has space"]}, "topic_tags:"),
        ({"topic_tags": [f"t{i}" for i in range(11)]}, "topic_tags:"),
        ({"language": "english!"}, "language:"),
        ({"name": "bad name"}, "name:"),
        ({"name": "API"}, "name:"),  # reserved
        ({"members_only": "perhaps"}, "members_only:"),
        ({"display_name": "x" * 101}, "display_name:"),
    ],
)
async def test_create__invalid_input_is_422_naming_the_field_and_writes_nothing(
    client: Any, make_user: Any, engine: Any, fields: dict[str, Any], field: str
) -> None:
    alice = await make_user("alice")
    body = {"name": "circle", **fields}
    await expect_error(await client.post(G, json=body, headers=alice.headers), 422, field)
    assert await count(engine, select(func.count()).select_from(Group)) == 0
    assert await count(engine, text("SELECT count(*) FROM accounts")) == 1


async def test_create__name_taken_case_insensitively_by_a_person_or_group(
    client: Any, make_user: Any, engine: Any
) -> None:
    alice = await make_user("alice")
    await make_user("Bob")
    await expect_error(await client.post(G, json={"name": "bob"}, headers=alice.headers), 422, "name: is already taken")
    await new_group(client, alice, "Circle")
    await expect_error(await client.post(G, json={"name": "CIRCLE"}, headers=alice.headers), 422, "name:")
    assert await count(engine, select(func.count()).select_from(Group)) == 1


async def test_create__text_no_database_can_store_is_422(client: Any, make_user: Any, engine: Any) -> None:
    """JSON escapes can carry NUL and lone surrogates; PostgreSQL would fail on them (500)."""
    alice = await make_user("alice")
    headers = {**alice.headers, "Content-Type": "application/json"}
    for raw, field in (
        ('{"name": "x1", "rules": ["ok", "\\ud800"]}', "rules:"),
        ('{"name": "x1", "rules": ["a\\u0000b"]}', "rules:"),
        ('{"name": "x1", "display_name": "\\udfff"}', "display_name:"),
        ('{"name": "x1", "description": "\\u0000"}', "description:"),
        ('{"name": "x1", "topic_tags": ["\\ud800"]}', "topic_tags:"),
        ('{"name": "x1", "language": "e\\ud800"}', "language:"),
    ):
        await expect_error(await client.post(G, data=raw, headers=headers), 422, field)
    assert await count(engine, select(func.count()).select_from(Group)) == 0
    group = await new_group(client, alice)
    raw = '{"invite_code": "\\ud800"}'
    response = await client.post(f"{G}/{group['id']}/join", data=raw, headers=headers)
    await expect_error(response, 422, "invite_code:")


async def test_create__form_encoded_arrays(client: Any, make_user: Any) -> None:
    alice = await make_user("alice")
    response = await client.post(
        G,
        data=[("name", "formed"), ("rules[]", "One"), ("rules[]", "Two"), ("topic_tags[]", "sleep")],
        headers=alice.headers,
    )
    assert response.status == 200
    group = await response.json()
    assert group["rules"] == ["One", "Two"]
    assert group["topic_tags"] == ["sleep"]


# ---------------------------------------------------------------------------- settings


async def test_patch__only_group_moderators_and_staff(client: Any, make_user: Any) -> None:
    alice = await make_user("alice")
    mallory = await make_user("mallory")
    reader = await make_user("reader", scopes="read")
    staff = await make_user("staff", role="moderator")
    group = await new_group(client, alice)
    url = f"{G}/{group['id']}"
    await expect_error(await client.patch(url, json={"display_name": "Mine"}, headers=mallory.headers), 403)
    # Even a member who is not a group moderator.
    await client.post(f"{url}/join", headers=mallory.headers)
    await expect_error(await client.patch(url, json={"display_name": "Mine"}, headers=mallory.headers), 403)
    await expect_error(await client.patch(url, json={"display_name": "Mine"}, headers=reader.headers), 403, "scopes")
    await expect_error(await client.patch(url, json={"display_name": "Mine"}), 401)
    response = await client.patch(url, json={"display_name": "Owned"}, headers=alice.headers)
    assert response.status == 200
    check_schema(await response.json(), "Group")
    response = await client.patch(url, json={"display_name": "Staffed"}, headers=staff.headers)
    assert response.status == 200
    shown = await (await client.get(url)).json()
    assert shown["display_name"] == "Staffed"


async def test_patch__join_policy_locks_account_and_open_accepts_nobody(client: Any, make_user: Any) -> None:
    alice = await make_user("alice")
    bob = await make_user("bob")
    group = await new_group(client, alice, join_policy="approval")
    url = f"{G}/{group['id']}"
    relationship = await (await client.post(f"{url}/join", headers=bob.headers)).json()
    assert relationship["requested"] is True
    response = await client.patch(url, json={"join_policy": "open"}, headers=alice.headers)
    updated = await response.json()
    assert updated["join_policy"] == "open"
    assert updated["account"]["locked"] is False
    # The pending request stays pending until a moderator decides.
    shown = await (await client.get(url, headers=bob.headers)).json()
    assert shown["relationship"]["requested"] is True
    assert shown["relationship"]["member"] is False
    response = await client.patch(url, json={"join_policy": "invite"}, headers=alice.headers)
    assert (await response.json())["account"]["locked"] is True


async def test_patch__settings_change_and_lists_can_be_cleared(client: Any, make_user: Any) -> None:
    alice = await make_user("alice")
    group = await new_group(client, alice, rules=["Old"], topic_tags=["old"])
    url = f"{G}/{group['id']}"
    response = await client.patch(
        url,
        json={"description": "New <b>words</b>", "rules": [], "topic_tags": ["Sleep", "sleep"], "language": "pt-BR"},
        headers=alice.headers,
    )
    updated = await response.json()
    assert updated["description"] == "<p>New &lt;b&gt;words&lt;/b&gt;</p>"
    assert updated["rules"] == []
    assert updated["topic_tags"] == ["sleep"]
    assert updated["language"] == "pt-BR"
    # Parameters not sent stay as they were.
    response = await client.patch(url, json={"display_name": "Renamed"}, headers=alice.headers)
    assert (await response.json())["topic_tags"] == ["sleep"]


async def test_patch__members_only_can_be_switched_on_but_not_off(client: Any, make_user: Any) -> None:
    alice = await make_user("alice")
    group = await new_group(client, alice)
    url = f"{G}/{group['id']}"
    response = await client.patch(url, json={"members_only": True}, headers=alice.headers)
    assert (await response.json())["members_only"] is True
    await expect_error(
        await client.patch(url, json={"members_only": False}, headers=alice.headers), 422, "members_only:"
    )


async def test_patch__invalid_input_changes_nothing(client: Any, make_user: Any) -> None:
    alice = await make_user("alice")
    group = await new_group(client, alice, rules=["Keep"])
    url = f"{G}/{group['id']}"
    body = {"rules": ["Replaced"], "display_name": "Changed", "join_policy": "sometimes"}
    await expect_error(await client.patch(url, json=body, headers=alice.headers), 422, "join_policy:")
    body = {"rules": ["Replaced"], "topic_tags": ["no way"]}
    await expect_error(await client.patch(url, json=body, headers=alice.headers), 422, "topic_tags:")
    shown = await (await client.get(url)).json()
    assert shown["rules"] == ["Keep"]
    assert shown["display_name"] == "calm_minds"
    assert shown["join_policy"] == "open"


# ---------------------------------------------------------------------------- joining


async def test_join__open_group_is_immediate_and_leave_undoes_it(client: Any, make_user: Any) -> None:
    alice = await make_user("alice")
    bob = await make_user("bob")
    group = await new_group(client, alice)
    url = f"{G}/{group['id']}"
    response = await client.post(f"{url}/join", headers=bob.headers)
    relationship = await response.json()
    check_schema(relationship, "GroupRelationship")
    assert relationship["member"] is True
    assert relationship["role"] is None
    assert (await (await client.get(url)).json())["members_count"] == 2
    # Joining twice changes nothing.
    await client.post(f"{url}/join", headers=bob.headers)
    assert (await (await client.get(url)).json())["members_count"] == 2
    relationship = await (await client.post(f"{url}/leave", headers=bob.headers)).json()
    assert relationship["member"] is False
    assert (await (await client.get(url)).json())["members_count"] == 1


async def test_join__needs_write_groups(client: Any, make_user: Any) -> None:
    alice = await make_user("alice")
    reader = await make_user("reader", scopes="read")
    group = await new_group(client, alice)
    await expect_error(await client.post(f"{G}/{group['id']}/join", headers=reader.headers), 403)
    await expect_error(await client.post(f"{G}/{group['id']}/join"), 401)


async def test_join__approval_request_then_approve(client: Any, make_user: Any) -> None:
    alice = await make_user("alice")
    bob = await make_user("bob")
    carol = await make_user("carol")
    group = await new_group(client, alice, join_policy="approval")
    url = f"{G}/{group['id']}"
    relationship = await (await client.post(f"{url}/join", headers=bob.headers)).json()
    assert relationship == {
        "group_id": group["id"],
        "account_id": str(bob.account_id),
        "member": False,
        "requested": True,
        "role": None,
        "banned": False,
    }
    # Neither the requester nor another member may see or decide requests.
    await expect_error(await client.get(f"{url}/requests", headers=bob.headers), 403)
    await expect_error(await client.post(f"{url}/requests/{bob.account_id}/approve", headers=carol.headers), 403)
    response = await client.get(f"{url}/requests", headers=alice.headers)
    pending = await response.json()
    check_schema(pending, "Account", many=True)
    assert [a["id"] for a in pending] == [str(bob.account_id)]
    response = await client.post(f"{url}/requests/{bob.account_id}/approve", headers=alice.headers)
    assert (await response.json())["member"] is True
    assert (await (await client.get(f"{url}/requests", headers=alice.headers)).json()) == []
    # No request left to decide.
    await expect_error(await client.post(f"{url}/requests/{bob.account_id}/approve", headers=alice.headers), 404)


async def test_join__approval_request_rejected(client: Any, make_user: Any, engine: Any) -> None:
    alice = await make_user("alice")
    bob = await make_user("bob")
    group = await new_group(client, alice, join_policy="approval")
    url = f"{G}/{group['id']}"
    await client.post(f"{url}/join", headers=bob.headers)
    response = await client.post(f"{url}/requests/{bob.account_id}/reject", headers=alice.headers)
    relationship = await response.json()
    assert relationship["requested"] is False and relationship["member"] is False
    assert await count(engine, select(func.count()).select_from(Follow).where(Follow.account_id == bob.account_id)) == 0
    await expect_error(await client.post(f"{url}/requests/{bob.account_id}/reject", headers=alice.headers), 404)


async def test_join__invite_only_with_code(client: Any, make_user: Any) -> None:
    alice = await make_user("alice")
    bob = await make_user("bob")
    carol = await make_user("carol")
    dave = await make_user("dave")
    group = await new_group(client, alice, join_policy="invite")
    url = f"{G}/{group['id']}"
    await expect_error(await client.post(f"{url}/join", headers=bob.headers), 403, "invite-only")
    await expect_error(await client.post(f"{url}/join", json={"invite_code": "wrong"}, headers=bob.headers), 403)
    # Members who are not moderators cannot make invites.
    await expect_error(await client.post(f"{url}/invites", json={}, headers=bob.headers), 403)
    response = await client.post(f"{url}/invites", json={"max_uses": 2, "expires_in": 3600}, headers=alice.headers)
    invite = await response.json()
    check_schema(invite, "GroupInvite")
    assert invite["account"] is None and invite["max_uses"] == 2 and invite["expires_at"] is not None
    for user in (bob, carol):
        response = await client.post(f"{url}/join", json={"invite_code": invite["code"]}, headers=user.headers)
        assert (await response.json())["member"] is True
    # Used up.
    await expect_error(
        await client.post(f"{url}/join", json={"invite_code": invite["code"]}, headers=dave.headers), 403
    )
    listed = await (await client.get(f"{url}/invites", headers=alice.headers)).json()
    assert listed == []


async def test_join__invite_for_one_account(client: Any, make_user: Any) -> None:
    alice = await make_user("alice")
    bob = await make_user("bob")
    carol = await make_user("carol")
    group = await new_group(client, alice, join_policy="invite")
    url = f"{G}/{group['id']}"
    response = await client.post(f"{url}/invites", json={"account_id": str(bob.account_id)}, headers=alice.headers)
    invite = await response.json()
    check_schema(invite, "GroupInvite")
    assert invite["code"] is None and invite["account"]["id"] == str(bob.account_id)
    await expect_error(await client.post(f"{url}/join", headers=carol.headers), 403)
    assert (await (await client.post(f"{url}/join", headers=bob.headers)).json())["member"] is True
    # Inviting a member again is pointless and said so.
    response = await client.post(f"{url}/invites", json={"account_id": str(bob.account_id)}, headers=alice.headers)
    await expect_error(response, 422, "account_id:")


async def test_join__named_invite_skips_approval(client: Any, make_user: Any) -> None:
    alice = await make_user("alice")
    bob = await make_user("bob")
    group = await new_group(client, alice, join_policy="approval")
    url = f"{G}/{group['id']}"
    await client.post(f"{url}/invites", json={"account_id": str(bob.account_id)}, headers=alice.headers)
    assert (await (await client.post(f"{url}/join", headers=bob.headers)).json())["member"] is True


async def test_join__expired_and_revoked_codes_fail(client: Any, make_user: Any, engine: Any) -> None:
    alice = await make_user("alice")
    bob = await make_user("bob")
    group = await new_group(client, alice, join_policy="invite")
    url = f"{G}/{group['id']}"
    expired = await (await client.post(f"{url}/invites", json={}, headers=alice.headers)).json()
    async with engine.begin() as conn:
        await conn.execute(
            GroupInvite.__table__.update()
            .where(GroupInvite.id == int(expired["id"]))
            .values(expires_at=__import__("datetime").datetime(2000, 1, 1, tzinfo=__import__("datetime").UTC))
        )
    body = {"invite_code": expired["code"]}
    await expect_error(await client.post(f"{url}/join", json=body, headers=bob.headers), 403)
    revoked = await (await client.post(f"{url}/invites", json={}, headers=alice.headers)).json()
    response = await client.delete(f"{url}/invites/{revoked['id']}", headers=alice.headers)
    assert response.status == 200
    body = {"invite_code": revoked["code"]}
    await expect_error(await client.post(f"{url}/join", json=body, headers=bob.headers), 403)


async def test_invites__bad_parameters_are_422(client: Any, make_user: Any) -> None:
    alice = await make_user("alice")
    group = await new_group(client, alice, join_policy="invite")
    url = f"{G}/{group['id']}/invites"
    await expect_error(await client.post(url, json={"max_uses": 0}, headers=alice.headers), 422, "max_uses:")
    await expect_error(await client.post(url, json={"expires_in": 5}, headers=alice.headers), 422, "expires_in:")
    await expect_error(await client.post(url, json={"account_id": "x"}, headers=alice.headers), 422, "account_id:")
    await expect_error(await client.post(url, json={"account_id": "99999"}, headers=alice.headers), 404)


async def test_join__wrong_code_on_open_group_is_422(client: Any, make_user: Any) -> None:
    alice = await make_user("alice")
    bob = await make_user("bob")
    group = await new_group(client, alice)
    body = {"invite_code": "nonsense"}
    await expect_error(
        await client.post(f"{G}/{group['id']}/join", json=body, headers=bob.headers), 422, "invite_code:"
    )


# ---------------------------------------------------------------------------- members-only


async def test_members_only__members_hidden_from_non_members(client: Any, make_user: Any) -> None:
    alice = await make_user("alice")
    bob = await make_user("bob")
    outsider = await make_user("outsider")
    staff = await make_user("staff", role="admin")
    group = await new_group(client, alice, members_only=True, description="Closed circle for carers.")
    url = f"{G}/{group['id']}"
    await client.post(f"{url}/join", headers=bob.headers)
    # The group itself, with its public description, is visible to anyone.
    shown = await (await client.get(url)).json()
    assert shown["description"] == "<p>Closed circle for carers.</p>"
    assert shown["members_only"] is True
    await expect_error(await client.get(f"{url}/members"), 404, "Record not found")
    await expect_error(await client.get(f"{url}/members", headers=outsider.headers), 404, "Record not found")
    for viewer in (bob, staff):
        response = await client.get(f"{url}/members", headers=viewer.headers)
        members = await response.json()
        check_schema(members, "GroupMember", many=True)
        assert {m["account"]["username"] for m in members} == {"alice", "bob"}


async def test_members__public_group_lists_roles(client: Any, make_user: Any) -> None:
    alice = await make_user("alice")
    bob = await make_user("bob")
    group = await new_group(client, alice)
    url = f"{G}/{group['id']}"
    await client.post(f"{url}/join", headers=bob.headers)
    members = await (await client.get(f"{url}/members?limit=1")).json()
    assert [m["account"]["username"] for m in members] == ["bob"]
    response = await client.get(f"{url}/members?limit=1")
    assert 'rel="next"' in response.headers["Link"]
    older = await (await client.get(f"{url}/members?limit=1&max_id=" + _next_max_id(response))).json()
    assert [(m["account"]["username"], m["role"]) for m in older] == [("alice", "owner")]


def _next_max_id(response: Any) -> str:
    link = response.headers["Link"]
    return link.split("max_id=")[1].split(">")[0]


# ---------------------------------------------------------------------------- roles


async def test_moderators__owner_appoints_and_removes(client: Any, make_user: Any) -> None:
    alice = await make_user("alice")
    bob = await make_user("bob")
    carol = await make_user("carol")
    group = await new_group(client, alice, join_policy="approval")
    url = f"{G}/{group['id']}"
    # Not a member yet.
    body = {"account_id": str(bob.account_id)}
    await expect_error(await client.post(f"{url}/moderators", json=body, headers=alice.headers), 422, "account_id:")
    await client.post(f"{url}/join", headers=bob.headers)
    await client.post(f"{url}/requests/{bob.account_id}/approve", headers=alice.headers)
    response = await client.post(f"{url}/moderators", json=body, headers=alice.headers)
    entry = await response.json()
    check_schema(entry, "GroupMember")
    assert entry["role"] == "moderator"
    listed = await (await client.get(f"{url}/moderators")).json()
    check_schema(listed, "GroupMember", many=True)
    assert [(m["account"]["username"], m["role"]) for m in listed] == [("alice", "owner"), ("bob", "moderator")]
    # The moderator now handles requests and settings, but cannot appoint others.
    await client.post(f"{url}/join", headers=carol.headers)
    assert (await client.get(f"{url}/requests", headers=bob.headers)).status == 200
    assert (await client.patch(url, json={"rules": ["Be gentle"]}, headers=bob.headers)).status == 200
    body = {"account_id": str(carol.account_id)}
    await expect_error(await client.post(f"{url}/moderators", json=body, headers=bob.headers), 403)
    await expect_error(await client.delete(f"{url}/moderators/{alice.account_id}", headers=bob.headers), 403)
    response = await client.delete(f"{url}/moderators/{bob.account_id}", headers=alice.headers)
    assert (await response.json())["role"] is None
    await expect_error(await client.get(f"{url}/requests", headers=bob.headers), 403)
    await expect_error(await client.delete(f"{url}/moderators/{bob.account_id}", headers=alice.headers), 404)


async def test_leave__only_owner_cannot_leave_until_a_co_owner_exists(client: Any, make_user: Any) -> None:
    alice = await make_user("alice")
    bob = await make_user("bob")
    group = await new_group(client, alice)
    url = f"{G}/{group['id']}"
    await expect_error(await client.post(f"{url}/leave", headers=alice.headers), 422, "only owner")
    await expect_error(await client.delete(f"{url}/moderators/{alice.account_id}", headers=alice.headers), 422)
    await client.post(f"{url}/join", headers=bob.headers)
    body = {"account_id": str(bob.account_id), "role": "owner"}
    assert (await client.post(f"{url}/moderators", json=body, headers=alice.headers)).status == 200
    relationship = await (await client.post(f"{url}/leave", headers=alice.headers)).json()
    assert relationship["member"] is False and relationship["role"] is None
    shown = await (await client.get(url, headers=bob.headers)).json()
    assert shown["relationship"]["role"] == "owner"
    assert shown["members_count"] == 1


# ---------------------------------------------------------------------------- bans


async def test_ban__removes_member_who_cannot_rejoin_until_unbanned(client: Any, make_user: Any) -> None:
    alice = await make_user("alice")
    bob = await make_user("bob")
    group = await new_group(client, alice)
    url = f"{G}/{group['id']}"
    await client.post(f"{url}/join", headers=bob.headers)
    response = await client.post(
        f"{url}/bans", json={"account_id": str(bob.account_id), "reason": "harassment"}, headers=alice.headers
    )
    ban = await response.json()
    check_schema(ban, "GroupBan")
    assert ban["reason"] == "harassment"
    shown = await (await client.get(url, headers=bob.headers)).json()
    assert shown["members_count"] == 1
    assert shown["relationship"] == {
        "group_id": group["id"],
        "account_id": str(bob.account_id),
        "member": False,
        "requested": False,
        "role": None,
        "banned": True,
    }
    await expect_error(await client.post(f"{url}/join", headers=bob.headers), 403, "banned")
    listed = await (await client.get(f"{url}/bans", headers=alice.headers)).json()
    check_schema(listed, "GroupBan", many=True)
    assert [b["account"]["id"] for b in listed] == [str(bob.account_id)]
    await expect_error(await client.get(f"{url}/bans", headers=bob.headers), 403)
    await expect_error(await client.delete(f"{url}/bans/{bob.account_id}", headers=bob.headers), 403)
    assert (await client.delete(f"{url}/bans/{bob.account_id}", headers=alice.headers)).status == 200
    assert (await (await client.post(f"{url}/join", headers=bob.headers)).json())["member"] is True
    await expect_error(await client.delete(f"{url}/bans/{bob.account_id}", headers=alice.headers), 404)


async def test_ban__a_banned_account_cannot_use_an_invite(client: Any, make_user: Any) -> None:
    alice = await make_user("alice")
    bob = await make_user("bob")
    group = await new_group(client, alice, join_policy="invite")
    url = f"{G}/{group['id']}"
    invite = await (await client.post(f"{url}/invites", json={}, headers=alice.headers)).json()
    await client.post(f"{url}/bans", json={"account_id": str(bob.account_id)}, headers=alice.headers)
    body = {"invite_code": invite["code"]}
    await expect_error(await client.post(f"{url}/join", json=body, headers=bob.headers), 403, "banned")


async def test_ban__moderators_cannot_ban_owners_or_moderators(client: Any, make_user: Any) -> None:
    alice = await make_user("alice")
    bob = await make_user("bob")
    carol = await make_user("carol")
    dave = await make_user("dave")
    group = await new_group(client, alice)
    url = f"{G}/{group['id']}"
    for user in (bob, carol, dave):
        await client.post(f"{url}/join", headers=user.headers)
    for user in (bob, carol):
        await client.post(f"{url}/moderators", json={"account_id": str(user.account_id)}, headers=alice.headers)
    for target in (alice, carol):
        body = {"account_id": str(target.account_id)}
        await expect_error(await client.post(f"{url}/bans", json=body, headers=bob.headers), 403)
    # Plain members cannot ban anyone; nobody bans themselves.
    body = {"account_id": str(bob.account_id)}
    await expect_error(await client.post(f"{url}/bans", json=body, headers=dave.headers), 403)
    await expect_error(await client.post(f"{url}/bans", json=body, headers=bob.headers), 422, "account_id:")
    # A moderator may ban a member; the owner may ban a moderator, which ends the role.
    body = {"account_id": str(dave.account_id)}
    assert (await client.post(f"{url}/bans", json=body, headers=bob.headers)).status == 200
    body = {"account_id": str(carol.account_id)}
    assert (await client.post(f"{url}/bans", json=body, headers=alice.headers)).status == 200
    moderators = await (await client.get(f"{url}/moderators")).json()
    assert [m["account"]["username"] for m in moderators] == ["alice", "bob"]
    # Nobody bans the owner, not even instance staff.
    staff = await make_user("staff", role="admin")
    body = {"account_id": str(alice.account_id)}
    await expect_error(await client.post(f"{url}/bans", json=body, headers=staff.headers), 403)


# ---------------------------------------------------------------------------- discovery


async def test_list__filters_and_pagination(client: Any, make_user: Any) -> None:
    alice = await make_user("alice")
    bob = await make_user("bob")
    await new_group(
        client, alice, "grief_circle", display_name="Grief Circle", topic_tags=["grief", "deuil_père"], language="en"
    )
    await new_group(client, alice, "sleep_club", display_name="Night Owls", topic_tags=["sleep_issues"], language="de")
    third = await new_group(client, alice, "anxious_100", topic_tags=["anxiety", "sleep"], language="en")
    await client.post(f"{G}/{third['id']}/join", headers=bob.headers)

    async def names(query: str, headers: dict[str, str] | None = None) -> list[str]:
        response = await client.get(f"{G}{query}", headers=headers or {})
        assert response.status == 200, await response.text()
        body = await response.json()
        check_schema(body, "Group", many=True)
        return [g["name"] for g in body]

    assert await names("") == ["anxious_100", "sleep_club", "grief_circle"]
    assert await names("?q=OWL") == ["sleep_club"]
    assert await names("?q=circle") == ["grief_circle"]
    assert await names("?q=_1") == ["anxious_100"]  # LIKE wildcards are literal
    assert await names("?tag=sleep") == ["anxious_100"]  # exact tag, not a substring
    assert await names("?tag=%23Sleep_Issues") == ["sleep_club"]
    assert await names("?tag=DEUIL_P%C3%88RE") == ["grief_circle"]  # non-ASCII tags match exactly
    assert await names("?language=EN") == ["anxious_100", "grief_circle"]
    assert await names("?member=true", bob.headers) == ["anxious_100"]
    await expect_error(await client.get(f"{G}?member=true"), 401)
    response = await client.get(f"{G}?limit=2")
    assert [g["name"] for g in await response.json()] == ["anxious_100", "sleep_club"]
    older = await (await client.get(f"{G}?limit=2&max_id={_next_max_id(response)}")).json()
    assert [g["name"] for g in older] == ["grief_circle"]


async def test_list__suspended_groups_hidden_except_from_staff(client: Any, make_user: Any, engine: Any) -> None:
    alice = await make_user("alice")
    staff = await make_user("staff", role="moderator")
    group = await new_group(client, alice)
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE accounts SET suspended_at = created_at WHERE id = :id"), {"id": int(group["id"])}
        )
    assert await (await client.get(G, headers=alice.headers)).json() == []
    await expect_error(await client.get(f"{G}/{group['id']}", headers=alice.headers), 404)
    assert len(await (await client.get(G, headers=staff.headers)).json()) == 1


# ---------------------------------------------------------------------------- properties

_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.text(max_size=40),
    st.lists(st.text(max_size=12), max_size=25),
    st.lists(st.one_of(st.integers(), st.booleans(), st.none()), max_size=3),
    st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2),
    st.sampled_from(["open", "approval", "invite", "en", "pt-BR", "", "\x00", "a" * 600]),
)
_BODIES = st.dictionaries(
    st.sampled_from(
        ["name", "display_name", "description", "rules", "topic_tags", "language", "join_policy", "members_only"]
    ),
    _VALUES,
    max_size=6,
)


# Hypothesis reuses one client (one database) for all examples of a test run; the owner and
# group are made on the first example of each run and remembered here.
_property_state: dict[str, Any] = {}


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=_BODIES)
async def test_create_and_patch__random_input_never_500(client: Any, make_user: Any, body: dict[str, Any]) -> None:
    if _property_state.get("client") is not client:
        owner = await make_user("prop_owner")
        group = await new_group(client, owner, "prop_group")
        _property_state.update(client=client, owner=owner, group_id=group["id"])
    owner, group_id = _property_state["owner"], _property_state["group_id"]
    for response in (
        await client.post(G, json=body, headers=owner.headers),
        await client.patch(f"{G}/{group_id}", json=body, headers=owner.headers),
    ):
        assert response.status < 500, await response.text()
        payload = await response.json()
        if response.status >= 400:
            assert set(payload) == {"error"}
        else:
            check_schema(payload, "Group")
