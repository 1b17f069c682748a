"""The OpenAPI 3.1 document of Hearthside's extension endpoints: well-formed, served, and in
step with the router (every route under /api/v1/hearthside/ is described, and the security
it declares is the security the endpoints enforce).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from server.auth import SCOPES_SUPPORTED
from server.openapi import OAUTH, build_document

PREFIX = "/api/v1/hearthside/"
METHODS = ("get", "post", "put", "patch", "delete")
DOCUMENT = build_document()


def declared_scopes(document: dict[str, Any]) -> list[str]:
    flows = document["components"]["securitySchemes"][OAUTH]["flows"]
    return sorted({scope for flow in flows.values() for scope in flow["scopes"]})


def structure(scopes: list[str]) -> dict[str, Any]:
    """What we expect of the document's shape (a strict subset of the OpenAPI 3.1 rules)."""
    return {
        "type": "object",
        "required": ["openapi", "info", "paths", "components"],
        "properties": {
            "openapi": {"const": "3.1.0"},
            "info": {"type": "object", "required": ["title", "version"]},
            "paths": {
                "type": "object",
                "minProperties": 1,
                "propertyNames": {"pattern": "^/api/v1/hearthside/[A-Za-z0-9_./{}-]+$"},
                "additionalProperties": {"$ref": "#/$defs/pathItem"},
            },
            "components": {
                "type": "object",
                "required": ["schemas", "securitySchemes"],
                "properties": {
                    "schemas": {"type": "object", "required": ["Group", "GroupRelationship", "Error"]},
                    "securitySchemes": {
                        "type": "object",
                        "required": [OAUTH],
                        "properties": {
                            OAUTH: {
                                "type": "object",
                                "required": ["type", "flows"],
                                "properties": {"type": {"const": "oauth2"}},
                            }
                        },
                    },
                },
            },
        },
        "$defs": {
            "pathItem": {
                "type": "object",
                "minProperties": 1,
                "propertyNames": {"enum": list(METHODS)},
                "additionalProperties": {"$ref": "#/$defs/operation"},
            },
            "operation": {
                "type": "object",
                "required": ["operationId", "summary", "responses", "security"],
                "properties": {
                    "responses": {
                        "type": "object",
                        "minProperties": 1,
                        "propertyNames": {"pattern": "^[1-5][0-9][0-9]$"},
                        "additionalProperties": {
                            "type": "object",
                            "anyOf": [{"required": ["$ref"]}, {"required": ["description"]}],
                        },
                    },
                    "parameters": {"type": "array", "items": {"$ref": "#/$defs/parameter"}},
                    "security": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "maxProperties": 1,
                            "propertyNames": {"const": OAUTH},
                            "additionalProperties": {"type": "array", "minItems": 1, "items": {"enum": scopes}},
                        },
                    },
                },
            },
            "parameter": {
                "type": "object",
                "required": ["name", "in", "schema"],
                "properties": {"in": {"enum": ["query", "path", "header"]}},
                "if": {"properties": {"in": {"const": "path"}}},
                "then": {"required": ["required"], "properties": {"required": {"const": True}}},
            },
        },
    }


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, op)
        for path, item in document["paths"].items()
        for method, op in item.items()
        if method in METHODS
    ]


def app_routes(app: Any) -> set[tuple[str, str]]:
    """(method, OpenAPI-style path) of every route the app serves under the prefix."""
    found = set()
    for route in app.router.routes():
        if route.method in ("HEAD", "OPTIONS", "*") or route.resource is None:
            continue
        path = str(route.resource.canonical).replace("{_trailing_slash}", "")
        path = re.sub(r"\{([A-Za-z_][A-Za-z0-9_]*):[^}]*\}", r"{\1}", path)  # {id:\d+} -> {id}
        if path.startswith(PREFIX):
            found.add((route.method.lower(), path))
    return found


# ---------------------------------------------------------------------------- the document


def test_document__has_the_expected_structure() -> None:
    validator = Draft202012Validator(structure(declared_scopes(DOCUMENT)))
    errors = sorted(validator.iter_errors(DOCUMENT), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:10])


def test_document__structure_check_can_fail() -> None:
    """The structural schema rejects what it should (a check that cannot fail is a defect)."""
    validator = Draft202012Validator(structure(declared_scopes(DOCUMENT)))
    broken = build_document()
    broken["openapi"] = "3.0.3"
    del broken["paths"]["/api/v1/hearthside/groups"]["get"]["responses"]
    broken["paths"]["/api/v1/hearthside/groups"]["post"]["security"] = [{OAUTH: ["write:everything"]}]
    messages = [e.message for e in validator.iter_errors(broken)]
    assert any("3.1.0" in m for m in messages)
    assert any("'responses' is a required property" in m for m in messages)
    assert any("write:everything" in m for m in messages)


def test_document__operation_ids_are_unique_and_path_parameters_declared() -> None:
    ids = [op["operationId"] for _m, _p, op in operations(DOCUMENT)]
    assert len(ids) == len(set(ids))
    for method, path, op in operations(DOCUMENT):
        in_template = set(re.findall(r"\{([^}]+)\}", path))
        declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
        assert in_template == declared, (method, path)


def test_document__scopes_are_ones_tokens_can_carry() -> None:
    assert set(declared_scopes(DOCUMENT)) <= set(SCOPES_SUPPORTED)
    for method, path, op in operations(DOCUMENT):
        if path.startswith(PREFIX + "groups") and path != PREFIX + "groups/{id}/timeline":
            scopes = {s for requirement in op["security"] for s in requirement.get(OAUTH, [])}
            expected = "read:groups" if method == "get" else "write:groups"
            assert scopes == {expected}, (method, path)


def test_document__every_reference_resolves_and_schemas_are_valid_2020_12() -> None:
    def refs(node: Any) -> list[str]:
        if isinstance(node, dict):
            found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
            return found + [r for value in node.values() for r in refs(value)]
        if isinstance(node, list):
            return [r for value in node for r in refs(value)]
        return []

    resource = Resource.from_contents(DOCUMENT, default_specification=DRAFT202012)
    resolver = Registry().with_resource("urn:hearthside:openapi", resource).resolver("urn:hearthside:openapi")
    for ref in set(refs(DOCUMENT)):
        assert ref.startswith("#/components/")
        resolver.lookup(ref)  # raises when the pointer leads nowhere
    for schema in DOCUMENT["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)


def test_document__error_schema_matches_the_error_middleware() -> None:
    schema = {"components": DOCUMENT["components"], "$ref": "#/components/schemas/Error"}
    Draft202012Validator(schema).validate({"error": "Record not found"})
    assert not Draft202012Validator(schema).is_valid({"message": "nope"})


# ---------------------------------------------------------------------------- served, and in step with the app


async def test_openapi_json__served_without_a_token(client: Any, config: Any) -> None:
    response = await client.get("/api/v1/hearthside/openapi.json")
    assert response.status == 200
    assert response.content_type == "application/json"
    served = await response.json()
    assert served["openapi"] == "3.1.0"
    assert served["servers"] == [{"url": config.base_url}]
    assert served["paths"] == DOCUMENT["paths"]
    assert (await client.get("/api/v1/hearthside/openapi.json/")).status == 200


async def test_document__describes_every_route_the_app_serves(client: Any) -> None:
    served = app_routes(client.app)
    described = {(m, p) for m, p, _op in operations(DOCUMENT)}
    assert served, "no routes under the prefix: is the group module installed?"
    assert served - described == set(), "routes missing from the OpenAPI document"
    missing = described - served
    assert missing == set(), "documented operations the app does not serve"


async def test_document__declared_security_is_enforced(client: Any, make_user: Any) -> None:
    """Operations needing a token answer 401 without one; any operation answers 403 to a
    token lacking its scope; anonymous-friendly ones do not ask for a token."""
    owner = await make_user("owner")
    stranger = await make_user("stranger", scopes="push")
    response = await client.post(PREFIX + "groups", json={"name": "sec_group"}, headers=owner.headers)
    group_id = (await response.json())["id"]
    values = {
        "id": group_id,
        "account_id": str(owner.account_id),
        "invite_id": "1",
        "device_id": "ABCD1234",
        "index": "0",
    }
    served = app_routes(client.app)
    checked = 0
    for method, path, op in operations(DOCUMENT):
        if (method, path) not in served or not op["security"]:
            continue
        url = re.sub(r"\{([^}]+)\}", lambda m: values[m.group(1)], path)
        anonymous = {} in op["security"]
        response = await client.request(method.upper(), url)
        if anonymous:
            assert response.status != 401, (method, path)
        else:
            assert response.status == 401, (method, path, response.status)
        response = await client.request(method.upper(), url, headers=stranger.headers)
        assert response.status == 403, (method, path, response.status)
        assert "scopes" in (await response.json())["error"]
        checked += 1
    assert checked >= 20


@pytest.mark.parametrize("path", ["/api/v1/hearthside/groups", "/api/v1/hearthside/groups/{id}"])
def test_document__group_responses_reference_the_group_schema(path: str) -> None:
    op = DOCUMENT["paths"][path]["get"]
    schema = op["responses"]["200"]["content"]["application/json"]["schema"]
    assert "Group" in str(schema)


def _validate(instance: Any, name: str, *, many: bool = False) -> None:
    ref = {"$ref": f"#/components/schemas/{name}"}
    schema = {"components": DOCUMENT["components"], **({"type": "array", "items": ref} if many else ref)}
    Draft202012Validator(schema).validate(instance)


async def test_document__matches_the_account_and_admin_endpoints(client: Any, make_user: Any) -> None:
    """The endpoints other modules serve answer in the shapes described here."""
    admin = await make_user("boss", role="admin", scopes="read write admin:read admin:write")
    person = await make_user("helper")
    response = await client.post(PREFIX + "admin/invites", json={"max_uses": 3}, headers=admin.headers)
    assert response.status == 200, await response.text()
    _validate(await response.json(), "InstanceInvite")
    response = await client.get(PREFIX + "admin/invites", headers=admin.headers)
    _validate(await response.json(), "InstanceInvite", many=True)
    response = await client.post(f"{PREFIX}admin/accounts/{person.account_id}/verify", headers=admin.headers)
    assert response.status == 200, await response.text()
    _validate(await response.json(), "AdminAccount")
    response = await client.post(f"{PREFIX}admin/accounts/{person.account_id}/role", json={}, headers=admin.headers)
    _validate(await response.json(), "Error")
    group = await (await client.post(PREFIX + "groups", json={"name": "doc_group"}, headers=admin.headers)).json()
    await client.post("/api/v1/statuses", json={"status": "hello", "group_id": group["id"]}, headers=admin.headers)
    response = await client.get(f"{PREFIX}groups/{group['id']}/timeline")
    assert response.status == 200, await response.text()
    assert len(await response.json()) == 1
    _validate(await response.json(), "Status", many=True)
