"""The OpenAPI 3.1 document for Hearthside's extension endpoints (``/api/v1/hearthside/...``).

Design note
-----------
Mastodon's own endpoints are documented by Mastodon (docs.joinmastodon.org); this document
covers only what Hearthside adds. It is built here in Python rather than kept as a JSON file
so that the repeated parts (error answers, pagination parameters, id parameters, request
bodies accepted as JSON or as a form) are written once. ``build_document()`` is pure and
cached; the handler in ``server.api.openapi`` adds the instance's ``servers`` entry.

Schemas are JSON Schema 2020-12 (what OpenAPI 3.1 uses), so tests validate real responses
against ``components.schemas`` with ``jsonschema``. Entities allow additional properties:
clients must ignore fields they do not know, as with Mastodon's entities.

``tests/test_openapi.py`` keeps the document and the router in step: every route the app
serves under ``/api/v1/hearthside/`` must be described here.
"""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

OAUTH = "OAuth2"
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"

SCOPE_DESCRIPTIONS = {
    "read:groups": "See groups, their members, requests, bans and invites",
    "write:groups": "Create, join, leave and moderate groups",
    "read:statuses": "See posts, including group timelines",
    "read:accounts": "See accounts, and export your own data",
    "write:accounts": "Change your password or delete your account",
    "admin:read:accounts": "See accounts and instance invites as instance staff",
    "admin:write:accounts": "Change roles, verification and instance invites as instance staff",
}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in schema:
        return {"oneOf": [schema, {"type": "null"}]}
    kind = schema["type"]
    return {**schema, "type": [kind, "null"] if isinstance(kind, str) else [*kind, "null"]}


ID = {"type": "string", "pattern": "^[0-9]+$", "description": "A 64-bit id, as a string of digits"}
DATETIME = {"type": "string", "format": "date-time"}
ROLE = {"type": ["string", "null"], "enum": ["owner", "moderator", None]}
TEXT_LIST = {"type": "array", "items": {"type": "string"}}


def _object(properties: dict[str, Any], required: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required is None:
        required = list(properties)
    if required:
        schema["required"] = required
    schema.update(extra)
    return schema


SCHEMAS: dict[str, Any] = {
    "Error": _object(
        {
            "error": {"type": "string", "description": "What went wrong; validation errors name the field"},
            "details": {
                "type": "object",
                "description": "Per-field problems, on some validation failures (Mastodon's shape)",
                "additionalProperties": {
                    "type": "array",
                    "items": _object({"error": {"type": "string"}, "description": {"type": "string"}}),
                },
            },
        },
        required=["error"],
        description="Every error answer (Mastodon's shape).",
    ),
    "Account": _object(
        {
            "id": ID,
            "username": {"type": "string"},
            "acct": {"type": "string"},
            "display_name": {"type": "string"},
            "locked": {"type": "boolean"},
            "bot": {"type": "boolean"},
            "group": {"type": "boolean"},
            "created_at": DATETIME,
            "note": {"type": "string", "description": "HTML"},
            "url": {"type": "string"},
            "avatar": {"type": "string"},
            "header": {"type": "string"},
            "followers_count": {"type": "integer"},
            "following_count": {"type": "integer"},
            "statuses_count": {"type": "integer"},
        },
        description="Mastodon's Account entity (https://docs.joinmastodon.org/entities/Account/); only the "
        "fields Hearthside clients rely on are listed.",
    ),
    "Status": _object(
        {
            "id": ID,
            "created_at": DATETIME,
            "content": {"type": "string", "description": "HTML"},
            "visibility": {"type": "string"},
            "account": _ref("Account"),
        },
        description="Mastodon's Status entity (https://docs.joinmastodon.org/entities/Status/).",
    ),
    "GroupRelationship": _object(
        {
            "group_id": ID,
            "account_id": ID,
            "member": {"type": "boolean", "description": "An accepted member"},
            "requested": {"type": "boolean", "description": "A membership request awaits a moderator"},
            "role": {**ROLE, "description": "The account's role in the group"},
            "banned": {"type": "boolean"},
        },
        description="One account's standing in one group.",
    ),
    "Group": _object(
        {
            "id": ID,
            "account": {**_ref("Account"), "description": "The group's account (``group: true``)"},
            "name": {"type": "string", "description": "The group's username: @name@domain"},
            "display_name": {"type": "string"},
            "description": {"type": "string", "description": "HTML"},
            "description_source": {"type": "string", "description": "The description as written"},
            "rules": TEXT_LIST,
            "topic_tags": TEXT_LIST,
            "language": {"type": "string"},
            "join_policy": {"type": "string", "enum": ["open", "approval", "invite"]},
            "members_only": {
                "type": "boolean",
                "description": "Posts are shown to members only; the group itself stays discoverable",
            },
            "members_count": {"type": "integer", "minimum": 0},
            "created_at": DATETIME,
            "url": {"type": "string"},
            "relationship": {
                **_nullable(_ref("GroupRelationship")),
                "description": "The viewer's standing; null for anonymous requests",
            },
        },
        description="A Hearthside group.",
    ),
    "GroupMember": _object(
        {
            "account": _ref("Account"),
            "role": ROLE,
            "joined_at": {**DATETIME, "type": ["string", "null"]},
        },
        description="A member (or an owner/moderator) of a group.",
    ),
    "GroupBan": _object(
        {"id": ID, "account": _ref("Account"), "reason": {"type": "string"}, "created_at": DATETIME},
    ),
    "GroupInvite": _object(
        {
            "id": ID,
            "group_id": ID,
            "code": {"type": ["string", "null"], "description": "The code to share; null for a named invite"},
            "account": {**_nullable(_ref("Account")), "description": "The invited account; null for a code"},
            "max_uses": {"type": ["integer", "null"]},
            "uses": {"type": "integer"},
            "expires_at": {**DATETIME, "type": ["string", "null"]},
            "created_at": DATETIME,
        },
    ),
    "GroupSettings": _object(
        {
            "display_name": {"type": "string", "maxLength": 100},
            "description": {"type": "string", "maxLength": 5000, "description": "Plain text; paragraphs kept"},
            "rules": {**TEXT_LIST, "maxItems": 20, "items": {"type": "string", "minLength": 1, "maxLength": 500}},
            "topic_tags": {
                **TEXT_LIST,
                "maxItems": 10,
                "items": {"type": "string", "pattern": "^#?[\\w-]{1,50}$"},
            },
            "language": {"type": "string", "description": "A language code such as en or pt-BR"},
            "join_policy": {"type": "string", "enum": ["open", "approval", "invite"]},
            "members_only": {"type": "boolean"},
        },
        required=[],
        description="Group settings. Arrays may also be sent as repeated ``rules[]`` form fields; an empty "
        "JSON array (or one empty ``rules[]`` form field) clears the list.",
    ),
    "GroupCreate": {
        "allOf": [
            _ref("GroupSettings"),
            _object(
                {"name": {"type": "string", "pattern": "^[A-Za-z0-9_]{1,30}$", "description": "Unique username"}},
            ),
        ]
    },
    "Empty": {"type": "object", "maxProperties": 0},
    "AccountExport": {
        "type": "object",
        "description": "Everything the instance holds about the account, as one JSON document.",
    },
    "AdminAccount": _object(
        {
            "id": ID,
            "username": {"type": "string"},
            "domain": {"type": ["string", "null"]},
            "created_at": DATETIME,
            "email": {"type": ["string", "null"], "description": "Shown to admins only"},
            "role": {"type": "object", "required": ["id", "name"]},
            "approved": {"type": "boolean"},
            "suspended": {"type": "boolean"},
            "account": _ref("Account"),
        },
        description="Mastodon's Admin::Account entity (https://docs.joinmastodon.org/entities/Admin_Account/).",
    ),
    "InstanceInvite": _object(
        {
            "id": ID,
            "code": {"type": "string"},
            "url": {"type": "string"},
            "max_uses": {"type": ["integer", "null"]},
            "uses": {"type": "integer"},
            "expires_at": {**DATETIME, "type": ["string", "null"]},
            "revoked_at": {**DATETIME, "type": ["string", "null"]},
            "created_at": DATETIME,
        },
        description="An invite to register on this instance.",
    ),
}

_ERRORS = {
    "400": "The request is malformed (bad JSON, missing required parameter)",
    "401": "No valid access token",
    "403": "The token lacks the scope, or the account may not do this",
    "404": "No such record, or not visible to the viewer",
    "422": "Validation failed; the message names the field",
    "429": "Too many attempts; retry after the Retry-After header's seconds",
}

PAGINATION = [
    {"name": "max_id", "in": "query", "schema": ID, "description": "Items older than this id"},
    {"name": "since_id", "in": "query", "schema": ID, "description": "Items newer than this id"},
    {"name": "min_id", "in": "query", "schema": ID, "description": "Items immediately newer than this id"},
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1}, "description": "Page size"},
]


def _path_param(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": ID, "description": description}


GROUP_ID = _path_param("id", "The group's id")
ACCOUNT_ID = _path_param("account_id", "An account's id")


def _body(schema: dict[str, Any], *, required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {JSON: {"schema": schema}, FORM: {"schema": schema}}}


def _operation(
    operation_id: str,
    summary: str,
    *,
    tag: str,
    scope: str | None,
    anonymous: bool = False,
    description: str | None = None,
    parameters: list[dict[str, Any]] | None = None,
    body: dict[str, Any] | None = None,
    response: dict[str, Any] | None = None,
    errors: tuple[str, ...] = ("401", "403", "404"),
    paginated: bool = False,
) -> dict[str, Any]:
    op: dict[str, Any] = {"operationId": operation_id, "summary": summary, "tags": [tag]}
    if description:
        op["description"] = description
    if scope is None:
        op["security"] = []
    elif anonymous:
        op["security"] = [{}, {OAUTH: [scope]}]
    else:
        op["security"] = [{OAUTH: [scope]}]
    params = list(parameters or [])
    if paginated:
        params.extend(PAGINATION)
    if params:
        op["parameters"] = params
    if body is not None:
        op["requestBody"] = body
    ok: dict[str, Any] = {"description": "Success"}
    if response is not None:
        ok["content"] = {JSON: {"schema": response}}
    if paginated:
        ok["headers"] = {"Link": {"$ref": "#/components/headers/Link"}}
    op["responses"] = {"200": ok, **{code: {"$ref": f"#/components/responses/E{code}"} for code in errors}}
    return op


def _list_of(name: str) -> dict[str, Any]:
    return {"type": "array", "items": _ref(name)}


def _group_paths() -> dict[str, Any]:
    g = "/api/v1/hearthside/groups"
    t = "groups"
    moderators_only = "Group owners and moderators, and instance admins and moderators."
    return {
        g: {
            "get": _operation(
                "listGroups",
                "Discover local groups",
                tag=t,
                scope="read:groups",
                anonymous=True,
                description="Local groups, newest first. Suspended groups are listed for instance staff only.",
                parameters=[
                    {"name": "q", "in": "query", "schema": {"type": "string"}, "description": "Name substring"},
                    {"name": "tag", "in": "query", "schema": {"type": "string"}, "description": "A topic tag"},
                    {"name": "language", "in": "query", "schema": {"type": "string"}},
                    {
                        "name": "member",
                        "in": "query",
                        "schema": {"type": "boolean"},
                        "description": "Only groups the viewer is a member of (needs a token)",
                    },
                ],
                response=_list_of("Group"),
                errors=("401", "403", "422"),
                paginated=True,
            ),
            "post": _operation(
                "createGroup",
                "Create a group",
                tag=t,
                scope="write:groups",
                description="Any approved local user may create a group; they become its owner and first "
                "member. The name shares the namespace of usernames (case-insensitively).",
                body=_body(_ref("GroupCreate")),
                response=_ref("Group"),
                errors=("400", "401", "403", "422"),
            ),
        },
        g + "/{id}": {
            "get": _operation(
                "getGroup",
                "Show a group",
                tag=t,
                scope="read:groups",
                anonymous=True,
                description="Members-only groups are shown too, with their public description.",
                parameters=[GROUP_ID],
                response=_ref("Group"),
            ),
            "patch": _operation(
                "updateGroup",
                "Change a group's settings",
                tag=t,
                scope="write:groups",
                description=moderators_only + " Switching join_policy to open does not accept pending "
                "requests. members_only can be switched on but not off (422): earlier posts were written "
                "for members only. The group account is locked unless join_policy is open.",
                parameters=[GROUP_ID],
                body=_body(_ref("GroupSettings")),
                response=_ref("Group"),
                errors=("400", "401", "403", "404", "422"),
            ),
        },
        g + "/{id}/join": {
            "post": _operation(
                "joinGroup",
                "Join a group, or ask to",
                tag=t,
                scope="write:groups",
                description="open: joined at once. approval: a pending request (unless an invite names the "
                "account). invite: needs a valid invite_code or an invite naming the account (403 "
                "otherwise). Banned accounts get 403.",
                parameters=[GROUP_ID],
                body=_body(_object({"invite_code": {"type": "string", "maxLength": 64}}, required=[]), required=False),
                response=_ref("GroupRelationship"),
                errors=("401", "403", "404", "422"),
            ),
        },
        g + "/{id}/leave": {
            "post": _operation(
                "leaveGroup",
                "Leave a group or withdraw a request",
                tag=t,
                scope="write:groups",
                description="The group's only owner cannot leave (422).",
                parameters=[GROUP_ID],
                response=_ref("GroupRelationship"),
                errors=("401", "403", "404", "422"),
            ),
        },
        g + "/{id}/timeline": {
            "get": _operation(
                "groupTimeline",
                "Posts in a group",
                tag=t,
                scope="read:statuses",
                anonymous=True,
                description="Newest first. Members-only groups answer 404 to non-members.",
                parameters=[GROUP_ID],
                response=_list_of("Status"),
                paginated=True,
            ),
        },
        g + "/{id}/members": {
            "get": _operation(
                "listGroupMembers",
                "List members",
                tag=t,
                scope="read:groups",
                anonymous=True,
                description="Members-only groups answer 404 to non-members.",
                parameters=[GROUP_ID],
                response=_list_of("GroupMember"),
                paginated=True,
            ),
        },
        g + "/{id}/requests": {
            "get": _operation(
                "listGroupRequests",
                "List pending membership requests",
                tag=t,
                scope="read:groups",
                description=moderators_only,
                parameters=[GROUP_ID],
                response=_list_of("Account"),
                paginated=True,
            ),
        },
        g + "/{id}/requests/{account_id}/approve": {
            "post": _operation(
                "approveGroupRequest",
                "Approve a membership request",
                tag=t,
                scope="write:groups",
                description=moderators_only,
                parameters=[GROUP_ID, ACCOUNT_ID],
                response=_ref("GroupRelationship"),
            ),
        },
        g + "/{id}/requests/{account_id}/reject": {
            "post": _operation(
                "rejectGroupRequest",
                "Reject a membership request",
                tag=t,
                scope="write:groups",
                description=moderators_only,
                parameters=[GROUP_ID, ACCOUNT_ID],
                response=_ref("GroupRelationship"),
            ),
        },
        g + "/{id}/moderators": {
            "get": _operation(
                "listGroupModerators",
                "List owners and moderators",
                tag=t,
                scope="read:groups",
                anonymous=True,
                description="Public, so people can see who runs a group before joining.",
                parameters=[GROUP_ID],
                response=_list_of("GroupMember"),
            ),
            "post": _operation(
                "addGroupModerator",
                "Appoint a moderator or co-owner",
                tag=t,
                scope="write:groups",
                description="Group owners and instance staff. The account must be a member.",
                parameters=[GROUP_ID],
                body=_body(
                    _object(
                        {"account_id": ID, "role": {"type": "string", "enum": ["moderator", "owner"]}},
                        required=["account_id"],
                    )
                ),
                response=_ref("GroupMember"),
                errors=("400", "401", "403", "404", "422"),
            ),
        },
        g + "/{id}/moderators/{account_id}": {
            "delete": _operation(
                "removeGroupModerator",
                "Remove an owner's or moderator's role",
                tag=t,
                scope="write:groups",
                description="Group owners and instance staff; anyone may step down themselves. The last "
                "owner cannot be removed (422).",
                parameters=[GROUP_ID, ACCOUNT_ID],
                response=_ref("GroupRelationship"),
                errors=("401", "403", "404", "422"),
            ),
        },
        g + "/{id}/bans": {
            "get": _operation(
                "listGroupBans",
                "List banned accounts",
                tag=t,
                scope="read:groups",
                description=moderators_only,
                parameters=[GROUP_ID],
                response=_list_of("GroupBan"),
                paginated=True,
            ),
            "post": _operation(
                "banFromGroup",
                "Ban an account",
                tag=t,
                scope="write:groups",
                description=moderators_only + " Ends the account's membership, role and request; it "
                "cannot join again. Moderators cannot ban owners or other moderators.",
                parameters=[GROUP_ID],
                body=_body(
                    _object(
                        {"account_id": ID, "reason": {"type": "string", "maxLength": 1000}}, required=["account_id"]
                    )
                ),
                response=_ref("GroupBan"),
                errors=("400", "401", "403", "404", "422"),
            ),
        },
        g + "/{id}/bans/{account_id}": {
            "delete": _operation(
                "unbanFromGroup",
                "Lift a ban",
                tag=t,
                scope="write:groups",
                description=moderators_only,
                parameters=[GROUP_ID, ACCOUNT_ID],
                response=_ref("GroupRelationship"),
            ),
        },
        g + "/{id}/invites": {
            "get": _operation(
                "listGroupInvites",
                "List usable invites",
                tag=t,
                scope="read:groups",
                description=moderators_only,
                parameters=[GROUP_ID],
                response=_list_of("GroupInvite"),
            ),
            "post": _operation(
                "createGroupInvite",
                "Create an invite",
                tag=t,
                scope="write:groups",
                description=moderators_only + " Without account_id: a code to share (max_uses, expires_in "
                "seconds). With account_id: an invite only that account can use, once.",
                parameters=[GROUP_ID],
                body=_body(
                    _object(
                        {
                            "account_id": ID,
                            "max_uses": {"type": "integer", "minimum": 1, "maximum": 1000},
                            "expires_in": {"type": "integer", "minimum": 60, "maximum": 7776000},
                        },
                        required=[],
                    ),
                    required=False,
                ),
                response=_ref("GroupInvite"),
                errors=("401", "403", "404", "422"),
            ),
        },
        g + "/{id}/invites/{invite_id}": {
            "delete": _operation(
                "revokeGroupInvite",
                "Revoke an invite",
                tag=t,
                scope="write:groups",
                description=moderators_only,
                parameters=[GROUP_ID, _path_param("invite_id", "The invite's id")],
                response=_ref("Empty"),
            ),
        },
    }


def _account_paths() -> dict[str, Any]:
    a = "/api/v1/hearthside"
    admin_account = _path_param("id", "The account's id")
    staff = "Instance admins and moderators."
    return {
        a + "/account/delete": {
            "post": _operation(
                "deleteOwnAccount",
                "Delete your account",
                tag="account",
                scope="write:accounts",
                description="Needs the current password (422 naming password otherwise; 429 after many "
                "misses). Tokens are revoked at once; the username stays reserved.",
                body=_body(_object({"password": {"type": "string"}})),
                response=_ref("Empty"),
                errors=("401", "403", "422", "429"),
            ),
        },
        a + "/account/export": {
            "get": _operation(
                "exportOwnAccount",
                "Export your data",
                tag="account",
                scope="read:accounts",
                description="A JSON document, sent as an attachment (Content-Disposition).",
                response=_ref("AccountExport"),
                errors=("401", "403"),
            ),
        },
        a + "/account/change_password": {
            "post": _operation(
                "changeOwnPassword",
                "Change your password",
                tag="account",
                scope="write:accounts",
                description="Every other token of the account is revoked.",
                body=_body(_object({"current_password": {"type": "string"}, "new_password": {"type": "string"}})),
                response=_ref("Empty"),
                errors=("401", "403", "422", "429"),
            ),
        },
        a + "/admin/accounts/{id}/role": {
            "post": _operation(
                "setAccountRole",
                "Set a local person's instance role",
                tag="admin",
                scope="admin:write:accounts",
                description="Admins only; nobody changes their own role.",
                parameters=[admin_account],
                body=_body(_object({"role": {"type": "string", "enum": ["admin", "moderator", "member"]}})),
                response=_ref("AdminAccount"),
                errors=("400", "401", "403", "404", "422"),
            ),
        },
        a + "/admin/accounts/{id}/verify": {
            "post": _operation(
                "verifyProfessional",
                "Give or take away the verified-professional badge",
                tag="admin",
                scope="admin:write:accounts",
                description=staff + " verified defaults to true. Local people only (422 otherwise).",
                parameters=[admin_account],
                body=_body(_object({"verified": {"type": "boolean"}}, required=[]), required=False),
                response=_ref("AdminAccount"),
                errors=("401", "403", "404", "422"),
            ),
        },
        a + "/admin/invites": {
            "get": _operation(
                "listInstanceInvites",
                "List instance invites",
                tag="admin",
                scope="admin:read:accounts",
                description=staff,
                response=_list_of("InstanceInvite"),
                errors=("401", "403"),
                paginated=True,
            ),
            "post": _operation(
                "createInstanceInvite",
                "Create an instance invite",
                tag="admin",
                scope="admin:write:accounts",
                description=staff + " expires_in is in seconds.",
                body=_body(
                    _object(
                        {
                            "max_uses": {"type": "integer", "minimum": 1},
                            "expires_in": {"type": "integer", "minimum": 60},
                        },
                        required=[],
                    ),
                    required=False,
                ),
                response=_ref("InstanceInvite"),
                errors=("401", "403", "422"),
            ),
        },
        a + "/admin/invites/{id}": {
            "delete": _operation(
                "revokeInstanceInvite",
                "Revoke an instance invite",
                tag="admin",
                scope="admin:write:accounts",
                description=staff + " The invite is kept, with revoked_at set.",
                parameters=[_path_param("id", "The invite's id")],
                response=_ref("InstanceInvite"),
            ),
        },
        a + "/openapi.json": {
            "get": _operation(
                "getOpenApiDocument",
                "This document",
                tag="meta",
                scope=None,
                response={"type": "object"},
                errors=(),
            ),
        },
    }


@cache
def _document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {
            "title": "Hearthside extension API",
            "version": "0.1.0",
            "description": "Endpoints Hearthside adds to the Mastodon client API: groups, account "
            'self-service and administration. Errors are Mastodon\'s {"error": "..."}; validation '
            "errors (422) start with the field's name. Ids are strings of digits.",
            "license": {"name": "AGPL-3.0-or-later", "identifier": "AGPL-3.0-or-later"},
        },
        "tags": [
            {"name": "groups", "description": "Support groups"},
            {"name": "account", "description": "Your own account"},
            {"name": "admin", "description": "Instance administration"},
            {"name": "meta", "description": "About this API"},
        ],
        "paths": {**_group_paths(), **_account_paths()},
        "components": {
            "schemas": SCHEMAS,
            "responses": {
                f"E{code}": {"description": text, "content": {JSON: {"schema": _ref("Error")}}}
                for code, text in _ERRORS.items()
            },
            "headers": {
                "Link": {
                    "description": 'Pagination links: rel="next" (older) and rel="prev" (newer)',
                    "schema": {"type": "string"},
                }
            },
            "securitySchemes": {
                OAUTH: {
                    "type": "oauth2",
                    "description": "Mastodon-compatible OAuth 2 (register an app with POST /api/v1/apps).",
                    "flows": {
                        "authorizationCode": {
                            "authorizationUrl": "/oauth/authorize",
                            "tokenUrl": "/oauth/token",
                            "scopes": SCOPE_DESCRIPTIONS,
                        },
                        "clientCredentials": {"tokenUrl": "/oauth/token", "scopes": SCOPE_DESCRIPTIONS},
                    },
                }
            },
        },
    }


def build_document(base_url: str | None = None) -> dict[str, Any]:
    """The document, with ``servers`` naming ``base_url`` when given (a fresh copy each call)."""
    document = copy.deepcopy(_document())
    if base_url:
        document["servers"] = [{"url": base_url}]
    return document
