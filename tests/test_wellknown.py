"""Discovery on the live app: WebFinger, host-meta and NodeInfo (research/federation.md §2.1,
§8.1 item 1), on SQLite and PostgreSQL.
"""

from __future__ import annotations

from typing import Any
from xml.etree import ElementTree

from jsonschema import Draft4Validator
from test_ap_documents import nodeinfo_schema

WF = "/.well-known/webfinger"
BASE = "http://127.0.0.1:8080"
DOMAIN = "127.0.0.1:8080"
AS_TYPE = "https://www.w3.org/ns/activitystreams#type"


async def jrd(client: Any, resource: str) -> dict[str, Any]:
    response = await client.get(WF, params={"resource": resource})
    assert response.status == 200, await response.text()
    assert response.headers["Content-Type"] == "application/jrd+json"
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    body: dict[str, Any] = await response.json(content_type=None)
    return body


def self_link(document: dict[str, Any]) -> dict[str, Any]:
    (link,) = [link for link in document["links"] if link["rel"] == "self"]
    return link


async def new_group(client: Any, owner: Any, name: str, **fields: Any) -> dict[str, Any]:
    response = await client.post("/api/v1/hearthside/groups", json={"name": name, **fields}, headers=owner.headers)
    assert response.status == 200, await response.text()
    group: dict[str, Any] = await response.json()
    return group


async def test_webfinger__person_by_acct_round_trips(client: Any, make_user: Any) -> None:
    await make_user("alice")
    body = await jrd(client, f"acct:alice@{DOMAIN}")
    assert body["subject"] == f"acct:alice@{DOMAIN}"
    link = self_link(body)
    assert link["href"] == f"{BASE}/users/alice"
    assert link["type"] == "application/activity+json"
    assert link["properties"] == {AS_TYPE: "Person"}
    assert f"{BASE}/@alice" in body["aliases"]
    # The actor it names answers to the same handle (Mastodon's round-trip check).
    actor = await (await client.get("/users/alice", headers={"Accept": "application/activity+json"})).json(
        content_type=None
    )
    assert f"acct:{actor['preferredUsername']}@{DOMAIN}" == body["subject"]


async def test_webfinger__case_insensitive_and_by_actor_url(client: Any, make_user: Any) -> None:
    await make_user("alice")
    assert (await jrd(client, f"acct:ALICE@{DOMAIN}"))["subject"] == f"acct:alice@{DOMAIN}"
    by_url = await jrd(client, f"{BASE}/users/alice")
    assert by_url["subject"] == f"acct:alice@{DOMAIN}"
    assert (await jrd(client, f"{BASE}/@alice"))["subject"] == f"acct:alice@{DOMAIN}"


async def test_webfinger__group_has_group_type_property(client: Any, make_user: Any) -> None:
    owner = await make_user("owner")
    await new_group(client, owner, "circle")
    body = await jrd(client, f"acct:circle@{DOMAIN}")
    link = self_link(body)
    assert link["href"] == f"{BASE}/groups/circle"
    assert link["properties"] == {AS_TYPE: "Group"}
    assert (await jrd(client, f"{BASE}/groups/circle"))["subject"] == f"acct:circle@{DOMAIN}"


async def test_webfinger__actor_url_of_the_wrong_kind_is_404(client: Any, make_user: Any) -> None:
    owner = await make_user("owner")
    await new_group(client, owner, "circle")
    assert (await client.get(WF, params={"resource": f"{BASE}/users/circle"})).status == 404
    assert (await client.get(WF, params={"resource": f"{BASE}/groups/owner"})).status == 404


async def test_webfinger__instance_actor_fep_d556(client: Any) -> None:
    for resource in (f"{BASE}/", BASE, f"acct:{DOMAIN}@{DOMAIN}"):
        body = await jrd(client, resource)
        assert self_link(body)["href"] == f"{BASE}/actor"
        assert body["subject"] == f"acct:{DOMAIN}@{DOMAIN}"


async def test_webfinger__unknown_other_domain_and_other_schemes_are_404(client: Any, make_user: Any) -> None:
    await make_user("alice")
    for resource in (
        f"acct:nobody@{DOMAIN}",
        "acct:alice@other.example",
        "https://otherhost.example/",
        f"mailto:alice@{DOMAIN}",
        f"xmpp:alice@{DOMAIN}",
        f"{BASE}/users/nobody",
    ):
        response = await client.get(WF, params={"resource": resource})
        assert response.status == 404, resource
        assert response.headers["Access-Control-Allow-Origin"] == "*"
        assert "error" in await response.json()


async def test_webfinger__missing_or_garbage_resource_is_400(client: Any) -> None:
    for params in ({}, {"resource": ""}, {"resource": "garbage"}, {"resource": "acct:nohost"}):
        response = await client.get(WF, params=params)
        assert response.status == 400, params
        assert response.headers["Access-Control-Allow-Origin"] == "*"
    twice = await client.get(f"{WF}?resource=acct:a@{DOMAIN}&resource=acct:b@{DOMAIN}")
    assert twice.status == 400


async def test_webfinger__deleted_account_is_410(client: Any, make_user: Any) -> None:
    alice = await make_user("alice")
    deleted = await client.post(
        "/api/v1/hearthside/account/delete", json={"password": alice.password}, headers=alice.headers
    )
    assert deleted.status == 200, await deleted.text()
    response = await client.get(WF, params={"resource": f"acct:alice@{DOMAIN}"})
    assert response.status == 410


async def test_host_meta__xml_and_json(client: Any) -> None:
    response = await client.get("/.well-known/host-meta")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("application/xrd+xml")
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    root = ElementTree.fromstring(await response.text())  # noqa: S314 - our own server's output
    (link,) = list(root)
    assert link.attrib["template"] == f"{BASE}/.well-known/webfinger?resource={{uri}}"
    as_json = await (await client.get("/.well-known/host-meta.json")).json()
    assert as_json["links"][0]["template"] == link.attrib["template"]


async def test_nodeinfo__discovery_and_both_versions_validate(client: Any, make_user: Any) -> None:
    await make_user("alice")
    alice_post = await make_user("bob")
    posted = await client.post("/api/v1/statuses", json={"status": "hello"}, headers=alice_post.headers)
    assert posted.status == 200
    index = await client.get("/.well-known/nodeinfo")
    assert index.status == 200
    assert index.headers["Access-Control-Allow-Origin"] == "*"
    links = {link["rel"]: link["href"] for link in (await index.json())["links"]}
    for version in ("2.0", "2.1"):
        href = links[f"http://nodeinfo.diaspora.software/ns/schema/{version}"]
        assert href == f"{BASE}/nodeinfo/{version}"
        response = await client.get(f"/nodeinfo/{version}")
        assert response.status == 200
        assert (
            response.headers["Content-Type"]
            == f'application/json; profile="http://nodeinfo.diaspora.software/ns/schema/{version}#"'
        )
        document = await response.json(content_type=None)
        Draft4Validator(nodeinfo_schema(version)).validate(document)
        assert document["version"] == version
        assert document["software"]["name"] == "hearthside"
        assert document["openRegistrations"] is True  # the test config's registrations = "open"
        assert document["usage"]["users"]["total"] >= 2
        assert document["usage"]["users"]["activeHalfyear"] >= 1
    assert links["https://www.w3.org/ns/activitystreams#Application"] == f"{BASE}/actor"
