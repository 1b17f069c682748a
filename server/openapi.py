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

from crypto.devicelist import KEY_ID
from crypto.encoding import KEY_BASE64, SIGNATURE_BASE64

OAUTH = "OAuth2"
JSON = "application/json"
BINARY = "application/octet-stream"
FORM = "application/x-www-form-urlencoded"

SCOPE_DESCRIPTIONS = {
    "read:groups": "See groups, their members, requests, bans and invites",
    "write:groups": "Create, join, leave and moderate groups",
    "read:statuses": "See posts, including group timelines",
    "write:statuses": "Write posts, and check a draft for the author-only support panel",
    "read:accounts": "See accounts, and export your own data",
    "write:accounts": "Change your password or delete your account",
    "admin:read:accounts": "See accounts and instance invites as instance staff",
    "admin:write:accounts": "Change roles, verification and instance invites as instance staff",
    "crypto": "End-to-end encrypted messages: devices, keys, ciphertext",
    "admin:read:reports": "See reports, including revealed encrypted messages, as instance staff",
    "write:reports": "File reports and follow the outcome of your own reports",
    "admin:write:reports": "Handle reports as instance staff: assign, resolve, notes, forwarding",
    "admin:read": "See everything staff may see, including server rules and the audit log",
    "admin:write": "Change everything staff may change, including server rules",
    "admin:read:domain_blocks": "See domain blocks, subscriptions and drafts as instance staff",
    "admin:write:domain_blocks": "Change domain blocks, subscriptions and drafts as instance staff",
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

# E2EE encodings (docs/e2ee.md "Encodings"): standard base64, unpadded as written, padded accepted.
# Keys and signatures have exactly the canonical spellings the server's decoder accepts
# (crypto.encoding): a pattern of any base64 of the right length would admit spellings it refuses.
BASE64 = {"type": "string", "pattern": "^[A-Za-z0-9+/]*={0,2}$", "description": "Standard base64"}
KEY = {
    "type": "string",
    "pattern": f"^{KEY_BASE64}$",
    "minLength": 43,
    "maxLength": 44,
    "description": "A 32-byte public key, standard base64",
}
SIGNATURE = {
    "type": "string",
    "pattern": f"^{SIGNATURE_BASE64}$",
    "minLength": 86,
    "maxLength": 88,
    "description": "A 64-byte Ed25519 signature, base64",
}
DEVICE_ID = {
    "type": "string",
    "pattern": "^[A-Za-z0-9_-]{4,64}$",
    "description": "Chosen by the client (random); never a human-readable name",
}
UTC_TIME = {"type": "string", "format": "date-time", "pattern": "^[0-9-]{10}T[0-9:]{8}Z$"}
# The longest actor documented in a query string (not the 2048 characters of actor URIs in
# bodies): percent-encoded, a character can take 12 bytes, and the server reads at most 8190
# bytes of request target (aiohttp's limit); 600 leave room for the path.
ACTOR_QUERY_MAX = 600
STAMP = {"type": "string", "maxLength": 200, "description": "A franking stamp: <key id>.<base64 HMAC>"}
DM_POLICY = {"type": "string", "enum": ["everyone", "following_and_groups", "following", "nobody"]}


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
    "E2EESettings": _object(
        {
            "dm_policy": {
                **DM_POLICY,
                "description": "Who may message you (and claim your one-time keys): everyone, following "
                "(people you follow), following_and_groups (the default: also members of groups you share), "
                "nobody. Blocks either way always refuse.",
            },
            "dm_policies": {"type": "array", "items": DM_POLICY, "description": "Every accepted value"},
        },
        description="Who may send you end-to-end encrypted messages.",
    ),
    "SignedKey": _object(
        {
            "key_id": {"type": "string", "pattern": f"^{KEY_ID.pattern}$"},
            "key": {**KEY, "description": "The Curve25519 public key"},
            "signature": {
                **SIGNATURE,
                "description": 'By the device\'s fingerprint key over JCS of {"actor", "deviceId", "keyId", '
                '"key", "fallback"} (docs/e2ee.md)',
            },
        },
        description="A one-time or fallback key, signed by the device that owns it.",
    ),
    "ClaimedKey": _object(
        {
            "key_id": {"type": "string"},
            "key": KEY,
            "signature": SIGNATURE,
            "fallback": {
                "type": "boolean",
                "description": "true: the device's reusable fallback key (its one-time keys ran out)",
            },
        },
        description="A key handed out by a claim; verify its signature against the signed device list.",
    ),
    "SignedDeviceList": _object(
        {
            "actor": {
                "type": "string",
                "minLength": 1,
                "maxLength": 2048,
                "pattern": "^\\S+$",
                "description": "The member's actor id; in a list you publish, your own (the server checks it)",
            },
            "version": {"type": "integer", "minimum": 1, "maximum": 2**53},
            "signedAt": UTC_TIME,
            "masterKey": {**KEY, "description": "The member's Ed25519 master public key"},
            "devices": {
                "type": "array",
                "maxItems": 100,
                "items": _object(
                    {
                        "deviceId": DEVICE_ID,
                        "identityKey": {**KEY, "description": "Curve25519 (Olm identity key)"},
                        "fingerprintKey": {**KEY, "description": "Ed25519 (signs one-time keys)"},
                        "protocols": {**TEXT_LIST, "minItems": 1, "maxItems": 8},
                    },
                    additionalProperties=False,
                ),
                "description": "Sorted by deviceId, ids unique",
            },
            "signature": {**SIGNATURE, "description": "By the master key over JCS of the object without signature"},
        },
        additionalProperties=False,
        description='A member\'s device list, signed by their master key (docs/e2ee.md "The signed device list"). '
        "The server checks the signature, the actor, that the version grows and that every device is registered; "
        "clients check it again and pin the master key.",
    ),
    "Device": _object(
        {
            "device_id": DEVICE_ID,
            "identity_key": KEY,
            "fingerprint_key": KEY,
            "state": {
                "type": "string",
                "enum": ["pending", "active", "revoked"],
                "description": "pending: not yet in a signed list (nobody encrypts to it); active: listed; "
                "revoked: dropped from the list (its token, keys and waiting messages are gone)",
            },
            "current": {"type": "boolean", "description": "The device of the token making the request"},
            "created_at": DATETIME,
            "revoked_at": {**DATETIME, "type": ["string", "null"]},
            "one_time_key_count": {
                "type": "integer",
                "minimum": 0,
                "description": "Unused one-time keys held (in the answer to registration only)",
            },
        },
        required=["device_id", "identity_key", "fingerprint_key", "state", "current", "created_at", "revoked_at"],
        description="One of your devices (an Olm account on one of your clients), bound to the token that "
        "registered it.",
    ),
    "DeviceRegistration": _object(
        {
            "device_id": DEVICE_ID,
            "identity_key": {**KEY, "description": "Curve25519 (Olm identity key)"},
            "fingerprint_key": {**KEY, "description": "Ed25519 (fingerprint key)"},
            "one_time_keys": {"type": "array", "maxItems": 100, "items": _ref("SignedKey")},
            "fallback_key": _ref("SignedKey"),
            "device_list": {
                **_ref("SignedDeviceList"),
                "description": "The first device (holding the master key) publishes its list at once",
            },
            "reset": {"type": "boolean", "description": "Replace the master key (with device_list)"},
        },
        required=["device_id", "identity_key", "fingerprint_key"],
        description="Register the token's device; it stays pending until a signed device list names it. "
        "One device per token, device ids are never reused.",
    ),
    "DeviceListing": _object(
        {
            "master_key": {**KEY, "type": ["string", "null"]},
            "version": {"type": "integer", "minimum": 0, "description": "0 before the first list"},
            "device_list": _nullable(_ref("SignedDeviceList")),
            "devices": {"type": "array", "items": _ref("Device"), "description": "Pending, active and revoked"},
        },
        description="Your identity: the master key, your signed device list, and every device you registered.",
    ),
    "DeviceListPublish": _object(
        {
            "device_list": _ref("SignedDeviceList"),
            "reset": {
                "type": "boolean",
                "description": "Accept a different master key (you lost every device): devices the new list "
                "does not name are revoked",
            },
        },
        required=["device_list"],
        description="A new signed device list: listed devices become active, active devices it leaves out are "
        "revoked. Refused (nothing written): a signature that does not verify or a list of another actor "
        "(422), a device never registered or with other keys (422), a version not above the stored one or a "
        "different master key without reset (409).",
    ),
    "PublishedDeviceList": _object(
        {"version": {"type": "integer", "minimum": 1}, "device_list": _ref("SignedDeviceList")}
    ),
    "RevokedDevice": _object({"device_id": DEVICE_ID, "state": {"const": "revoked"}}),
    "OneTimeKeyUpload": _object(
        {
            "one_time_keys": {"type": "array", "maxItems": 100, "items": _ref("SignedKey")},
            "fallback_key": {**_ref("SignedKey"), "description": "Replaces the device's fallback key"},
        },
        required=[],
        description="Signed one-time keys for the token's device (at most 100 unused per device; key ids are "
        "never reused).",
    ),
    "OneTimeKeyCount": _object(
        {"one_time_key_count": {"type": "integer", "minimum": 0, "description": "Unused one-time keys held"}}
    ),
    "MemberDevices": _object(
        {
            "actor": {"type": "string"},
            "acct": {"type": "string"},
            "device_list": _nullable(_ref("SignedDeviceList")),
            "devices": {
                "type": "array",
                "items": _object({"device_id": DEVICE_ID, "claim": {"type": "string", "description": "Claim URL"}}),
                "description": "The devices of the signed list (verify it yourself and pin the master key)",
            },
        },
        description="A member's signed device list, local or fetched from their server.",
    ),
    "ClaimRequest": _object(
        {
            "actor": {"type": "string", "description": "An actor URI or a handle (name@domain)"},
            "device_ids": {"type": "array", "minItems": 1, "maxItems": 64, "items": DEVICE_ID},
        },
    ),
    "ClaimAnswer": _object(
        {
            "keys": {"type": "object", "additionalProperties": _ref("ClaimedKey"), "description": "By device id"},
            "failures": {
                "type": "object",
                "additionalProperties": {"type": "string"},
                "description": "Device id -> reason code (unknown_device, no_keys, or a fetch failure)",
            },
        },
        description="One key per device: a one-time key (each handed out once), else the fallback key.",
    ),
    "Ciphertext": _object(
        {
            "actor": {"type": "string", "description": "The recipient's actor URI, or yours (your other devices)"},
            "device_id": DEVICE_ID,
            "type": {"type": "integer", "enum": [0, 1], "description": "Olm: 0 pre-key message, 1 normal"},
            "body": {
                **BASE64,
                "minLength": 2,
                "maxLength": 131072,
                "description": "The Olm ciphertext (1 byte to 96 KiB), base64",
            },
        },
    ),
    "SendMessage": _object(
        {
            "to": {"type": "string", "minLength": 1, "description": "The recipient: an actor URI or a handle"},
            "franking_tag": {**KEY, "description": "HMAC-SHA256(franking key, message), 32 bytes, base64"},
            "ciphertexts": {
                "type": "array",
                "minItems": 1,
                "maxItems": 64,
                "items": _ref("Ciphertext"),
                "description": "One per active device of the recipient and per other active device of yours",
            },
        },
        description="One encrypted message to one member. Refused with nothing stored unless the token's device is "
        "active (403), the recipient accepts messages from you (403), and every ciphertext names an active device "
        "of the recipient or another active device of yours (422).",
    ),
    "SentMessage": _object(
        {
            "id": {"type": "string", "description": "The message's object id (a URI)"},
            "stamped_at": UTC_TIME,
            "stamp": STAMP,
        },
        description="The server's franking stamp binds the tag to both actors, the object id and stamped_at.",
    ),
    "DeviceInboxMessage": _object(
        {
            "id": ID,
            "object_id": {"type": "string"},
            "sender": _object(
                {
                    "actor": {"type": "string"},
                    "device_id": DEVICE_ID,
                    "known": {
                        "type": "boolean",
                        "description": "You follow the sender, share a group with them, or are them: clients show "
                        "messages from anyone else as message requests",
                    },
                }
            ),
            "recipient_actor": {"type": "string"},
            "type": {"type": "integer", "enum": [0, 1]},
            "body": {**BASE64, "description": "The Olm ciphertext for this device"},
            "franking_tag": KEY,
            "sender_stamp": {**STAMP, "description": "The sending server's stamp"},
            "stamp": {**STAMP, "description": "This server's stamp (keep it to report the message)"},
            "stamped_at": UTC_TIME,
            "received_at": UTC_TIME,
        },
        description="One ciphertext waiting for the token's device; acknowledge it to delete it.",
    ),
    "DeviceInbox": _object({"messages": {"type": "array", "items": _ref("DeviceInboxMessage")}}),
    "Acknowledge": _object(
        {"ids": {"type": "array", "maxItems": 1000, "items": ID, "description": "DeviceInboxMessage ids"}}
    ),
    "Acknowledged": _object({"deleted": {"type": "integer", "minimum": 0}}),
    "E2EEAttachmentStored": _object(
        {
            "id": ID,
            "url": {"type": "string", "description": "Put it in the message with the key, digest and size"},
            "size": {"type": "integer", "minimum": 0},
            "expires_at": DATETIME,
        },
        description="An attachment's ciphertext kept by this server until expires_at ([e2ee] attachment_ttl_days).",
    ),
    "E2EEAttachmentDeleted": _object({"id": ID, "deleted": {"type": "boolean"}}),
    "RevealedMessage": _object(
        {
            "message": {
                **BASE64,
                "contentEncoding": "base64",
                "minLength": 2,
                "maxLength": 80_000,
                "description": "The franked message's exact bytes, as decrypted, in base64 (the binary record of "
                'docs/e2ee.md "Messages"; the tag commits to these bytes)',
            },
            "franking_key": {**KEY, "description": "The message's 32-byte franking key"},
            "franking_tag": KEY,
            "object_id": {"type": "string", "maxLength": 2048},
            "stamp": {
                **STAMP,
                "description": "This server's stamp, as received in the device inbox (or, for your own message, "
                "as the send returned it)",
            },
            "sender_stamp": {**STAMP, "description": "The sending server's stamp, as received (yours: the same)"},
            "stamped_at": UTC_TIME,
        },
        description="A message revealed to moderators; the tag must recompute and this server's stamp verify.",
    ),
    "E2EEReport": _object(
        {
            "comment": {"type": "string", "maxLength": 1000},
            "forward": {
                "type": "boolean",
                "description": "Also send a Flag with the sender's stamps to the sender's instance",
            },
            "messages": {"type": "array", "minItems": 1, "maxItems": 20, "items": _ref("RevealedMessage")},
        },
        required=["messages"],
        description="Report encrypted messages of one conversation: what the reported member sent you and, as "
        "context, what you sent them. Only what is revealed here is shown to moderators.",
    ),
    "E2EEReportFiled": _object(
        {
            "id": ID,
            "messages": {"type": "integer", "minimum": 1},
            "forwarded": {"type": "boolean"},
        }
    ),
    "MediaDisplay": _object(
        {"blur": {"type": "boolean"}, "greyscale": {"type": "boolean"}, "muted": {"type": "boolean"}},
        description="How reported media is shown to this staff member (all true until revealed with POST "
        "/api/v1/hearthside/admin/media_reveal).",
    ),
    "E2EEReportedMessage": _object(
        {
            "object_id": {"type": "string", "description": "The encrypted message's object id"},
            "message_id": {
                "type": "string",
                "description": "The message's own id, as replies, edits and reactions name it",
            },
            "type": {
                "type": "string",
                "description": "Note (a message) or Reaction (one emoji on another message; content is empty)",
            },
            "from": {"type": "string", "description": "The sender's actor URI"},
            "to": {"type": "string", "description": "The recipient's (the reporter's) actor URI"},
            "created": DATETIME,
            "content": {"type": "string", "description": "The text as the sender wrote it (not HTML)"},
            "verified": {
                "type": "boolean",
                "description": "The franking tag recomputed and this server's stamp verified when the report was filed",
            },
            "in_reply_to": {"type": "string", "description": "A reply: the message_id of the message it answers"},
            "edit_of": {"type": "string", "description": "An edit: the message_id of the message it corrects"},
            "reaction": {"type": "string", "description": "A reaction: the emoji"},
            "reaction_to": {"type": "string", "description": "A reaction: the message_id of the message it is on"},
            "error": {"const": "cannot be opened", "description": "Only when the sealed copy does not open"},
            "attachments": {
                "type": "array",
                "description": "Files the message carried (only when it has some): GET "
                "/api/v1/hearthside/e2ee/reports/{id}/attachments/{index} opens one",
                "items": _object(
                    {
                        "index": {"type": "integer", "minimum": 0},
                        "name": {"type": "string"},
                        "size": {"type": "integer", "minimum": 0},
                        "media_type": {"type": "string"},
                        "hearthside_media_display": _ref("MediaDisplay"),
                    }
                ),
            },
        },
        required=["object_id", "verified"],
        description="A message the reporter revealed, as GET /api/v1/hearthside/e2ee/reports/{id} shows it. A "
        "message that cannot be opened has only object_id, verified (false) and error.",
    ),
    "E2EEReportView": _object(
        {
            "id": ID,
            "category": {"type": "string"},
            "origin_domain": {"type": ["string", "null"]},
            "target": {"type": ["string", "null"], "description": "The reported sender's actor URI"},
            "comment": {"type": "string"},
            "created_at": DATETIME,
            "messages": {
                "type": "array",
                "items": _ref("E2EEReportedMessage"),
            },
            "messages_deleted_at": {
                **_nullable(DATETIME),
                "description": "When retention deleted the revealed messages ([e2ee] revealed_retention_days after "
                "the report was resolved); null while they are kept",
            },
        },
        description="The messages a reporter revealed, each with whether its franking verified. Each viewing is "
        "on record in the audit log (report.e2ee_viewed; at most one entry per moderator, report and hour).",
    ),
    "PlaintextMessageBox": _object(
        {
            "label": {"const": "not end-to-end encrypted"},
            "messages": {
                "type": "array",
                "items": _object(
                    {
                        "id": ID,
                        "uri": {"type": "string"},
                        "from": {"type": "string", "description": "The sender's acct"},
                        "content": {"type": "string", "description": "Sanitized HTML"},
                        "created_at": DATETIME,
                        "end_to_end_encrypted": {"const": False},
                    }
                ),
            },
        },
        description="Direct messages from software without end-to-end encryption, kept apart (only when the "
        "instance sets [e2ee] accept_plaintext_dms).",
    ),
}

_ERRORS = {
    "400": "The request is malformed (bad JSON, missing required parameter)",
    "401": "No valid access token",
    "403": "The token lacks the scope, or the account may not do this",
    "404": "No such record, or not visible to the viewer",
    "409": "Conflicts with the stored state (a taken id, an old version)",
    "413": "The request body is too large",
    "415": "The request body has the wrong media type (application/json; an attachment's is application/octet-stream)",
    "422": "Validation failed; the message names the field",
    "429": "Too many attempts; retry after the Retry-After header's seconds",
    "502": "Another instance could not be reached or answered wrongly",
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


def _json_body(schema: dict[str, Any], *, required: bool = True) -> dict[str, Any]:
    """A body accepted as JSON only (nested input: the E2EE API answers 415 to anything else)."""
    return {"required": required, "content": {JSON: {"schema": schema}}}


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
    status: str = "200",
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
    op["responses"] = {status: ok, **{code: {"$ref": f"#/components/responses/E{code}"} for code in errors}}
    return op


def _binary_answer(op: dict[str, Any]) -> dict[str, Any]:
    """``op`` answering bytes (application/octet-stream) on success."""
    op["responses"]["200"] = {
        "description": "The bytes",
        "content": {BINARY: {"schema": {"type": "string", "format": "binary"}}},
    }
    return op


def _also_answers(op: dict[str, Any], status: str, description: str) -> dict[str, Any]:
    """``op`` with a second success status answering the same content."""
    success = next(v for k, v in op["responses"].items() if k.startswith("2"))
    op["responses"][status] = {**success, "description": description}
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


def _e2ee_paths() -> dict[str, Any]:
    e = "/api/v1/hearthside/e2ee"
    t = "e2ee"
    scope = "crypto"
    device_param = {
        "name": "device_id",
        "in": "path",
        "required": True,
        "schema": DEVICE_ID,
        "description": "A device id of yours",
    }
    needs_device = " The token must have registered a device (403 otherwise)."
    return {
        e + "/settings": {
            "get": _operation(
                "getE2EESettings",
                "Who may message you",
                tag=t,
                scope=scope,
                response=_ref("E2EESettings"),
                errors=("401", "403"),
            ),
            "patch": _operation(
                "updateE2EESettings",
                "Choose who may message you",
                tag=t,
                scope=scope,
                body=_json_body(_object({"dm_policy": DM_POLICY})),
                response=_ref("E2EESettings"),
                errors=("400", "401", "403", "415", "422"),
            ),
        },
        e + "/devices": {
            "get": _operation(
                "listE2EEDevices",
                "Your master key, signed device list and devices",
                tag=t,
                scope=scope,
                response=_ref("DeviceListing"),
                errors=("401", "403"),
            ),
            "post": _operation(
                "registerE2EEDevice",
                "Register this token's device",
                tag=t,
                scope=scope,
                description="With its first signed one-time keys and fallback key. Pending until a signed "
                "device list names it: the first device sends its list along (device_list), later ones are "
                "approved by a device holding the master key. One device per token and device ids are never "
                "reused (409). Malformed keys or signatures: 422 naming the field, nothing stored.",
                body=_json_body(_ref("DeviceRegistration")),
                response=_ref("Device"),
                errors=("400", "401", "403", "409", "415", "422"),
                status="201",
            ),
        },
        e + "/devices/{device_id}": {
            "delete": _operation(
                "revokePendingE2EEDevice",
                "Revoke a pending device",
                tag=t,
                scope=scope,
                description="Only a device no signed list names yet; an active device is revoked by publishing "
                "a list without it (409). Its token, keys and waiting messages are deleted.",
                parameters=[device_param],
                response=_ref("RevokedDevice"),
                errors=("401", "403", "404", "409", "422"),
            ),
        },
        e + "/device_list": {
            "put": _operation(
                "publishE2EEDeviceList",
                "Publish a new signed device list",
                tag=t,
                scope=scope,
                description="Devices it names become active; active devices it leaves out are revoked at once "
                "(their tokens stop working, their one-time keys and waiting messages are deleted)." + needs_device,
                body=_json_body(_ref("DeviceListPublish")),
                response=_ref("PublishedDeviceList"),
                errors=("400", "401", "403", "409", "415", "422"),
            ),
        },
        e + "/keys/upload": {
            "post": _operation(
                "uploadE2EEKeys",
                "Upload one-time keys and the fallback key",
                tag=t,
                scope=scope,
                description="Every key must be signed by this device's fingerprint key (422 otherwise; nothing "
                "stored). A reused key id: 409." + needs_device,
                body=_json_body(_ref("OneTimeKeyUpload")),
                response=_ref("OneTimeKeyCount"),
                errors=("400", "401", "403", "409", "415", "422"),
            ),
        },
        e + "/keys/count": {
            "get": _operation(
                "countE2EEKeys",
                "How many one-time keys this device has left",
                tag=t,
                scope=scope,
                description="Upload more when it runs low." + needs_device,
                response=_ref("OneTimeKeyCount"),
                errors=("401", "403"),
            ),
        },
        e + "/keys": {
            "get": _operation(
                "queryE2EEKeys",
                "A member's signed device list",
                tag=t,
                scope=scope,
                description="Local, or fetched from the member's server (502 when that fails). 403 when the member "
                "does not accept messages from you.",
                parameters=[
                    {
                        "name": "actor",
                        "in": "query",
                        "required": True,
                        "schema": {"type": "string", "minLength": 1, "maxLength": ACTOR_QUERY_MAX},
                        "description": f"An actor URI or a handle (name, name@domain), at most {ACTOR_QUERY_MAX} "
                        "characters: a longer one may not fit the request line",
                    }
                ],
                response=_ref("MemberDevices"),
                errors=("400", "401", "403", "404", "422", "502"),
            ),
        },
        e + "/keys/claim": {
            "post": _operation(
                "claimE2EEKeys",
                "Claim one key per device of a member",
                tag=t,
                scope=scope,
                description="Each one-time key is handed out once; when a device has none left its signed "
                "fallback key answers. Refused (403) when the member does not accept messages from you; "
                "rate-limited per claimer and member ([e2ee] claims_per_minute, 429).",
                body=_json_body(_ref("ClaimRequest")),
                response=_ref("ClaimAnswer"),
                errors=("400", "401", "403", "404", "415", "422", "429", "502"),
            ),
        },
        e + "/messages": {
            "get": _operation(
                "getE2EEDeviceInbox",
                "Ciphertexts waiting for this device",
                tag=t,
                scope=scope,
                description="Oldest first. They stay until acknowledged or until [e2ee] message_ttl_days pass."
                + needs_device,
                parameters=[
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 200},
                        "description": "Page size (100 by default); a value outside 1-200 is clamped, as Mastodon does",
                    }
                ],
                response=_ref("DeviceInbox"),
                errors=("400", "401", "403"),
            ),
            "post": _operation(
                "sendE2EEMessage",
                "Send an encrypted message",
                tag=t,
                scope=scope,
                description="Stamped (franking), stored for local devices, queued for a remote recipient's "
                "server; nothing is stored or sent if anything is refused.",
                body=_json_body(_ref("SendMessage")),
                response=_ref("SentMessage"),
                errors=("400", "401", "403", "404", "413", "415", "422", "429"),
                status="202",
            ),
        },
        e + "/messages/ack": {
            "post": _operation(
                "acknowledgeE2EEMessages",
                "Delete received ciphertexts",
                tag=t,
                scope=scope,
                description="Only this device's own inbox rows are deleted." + needs_device,
                body=_json_body(_ref("Acknowledge")),
                response=_ref("Acknowledged"),
                errors=("400", "401", "403", "415", "422"),
            ),
        },
        e + "/attachments": {
            "post": _operation(
                "uploadE2EEAttachment",
                "Store an encrypted attachment",
                tag=t,
                scope=scope,
                description="The body is the attachment's ciphertext as the device made it (crypto/attachments.py): "
                "the key only ever travels inside the encrypted message. At most [e2ee] max_attachment_bytes "
                "(413), at least 40 bytes (422), within the member's [e2ee] attachment_quota_bytes (422) and "
                "[e2ee] attachments_per_minute (429)." + needs_device,
                body={
                    "required": True,
                    "content": {BINARY: {"schema": {"type": "string", "format": "binary", "minLength": 40}}},
                },
                response=_ref("E2EEAttachmentStored"),
                errors=("401", "403", "413", "415", "422", "429"),
                status="201",
            ),
        },
        e + "/attachments/fetch": {
            "get": _binary_answer(
                _operation(
                    "fetchE2EEAttachment",
                    "An attachment's ciphertext, from this server or the sender's",
                    tag=t,
                    scope=scope,
                    description="An attachment URL from a message (https://server/e2ee/attachments/TOKEN, nothing "
                    "else: 422): this server's own, or fetched from the sender's server on your behalf, so it never "
                    "sees your address. The bytes are as stored; your device checks the digest and decrypts."
                    + needs_device,
                    parameters=[
                        {
                            "name": "url",
                            "in": "query",
                            "required": True,
                            "schema": {"type": "string", "maxLength": 2048},
                            "description": "The attachment's URL, as the message gives it",
                        }
                    ],
                    errors=("401", "403", "404", "422", "429", "502"),
                )
            ),
        },
        e + "/attachments/{id}": {
            "delete": _operation(
                "deleteE2EEAttachment",
                "Delete an attachment you uploaded",
                tag=t,
                scope=scope,
                parameters=[_path_param("id", "The attachment's id, as the upload answered")],
                response=_ref("E2EEAttachmentDeleted"),
            ),
        },
        e + "/reports": {
            "post": _also_answers(
                _operation(
                    "reportE2EEMessages",
                    "Report encrypted messages of one conversation",
                    tag=t,
                    scope=scope,
                    description="Reveals the messages (plaintext, franking key, tag, stamps) to this instance's "
                    "moderators. Each must be between you and the member reported, at least one sent by them (your "
                    "own are context), its tag must recompute and this server's stamp verify (422 otherwise). "
                    "forward sends only their messages to their server. The same report again (same messages and "
                    "comment, the first still open) files nothing new: 200 with the first report's id.",
                    body=_json_body(_ref("E2EEReport")),
                    response=_ref("E2EEReportFiled"),
                    errors=("400", "401", "403", "415", "422"),
                    status="201",
                ),
                "200",
                "The same report was filed before and is still open",
            ),
        },
        e + "/reports/{id}": {
            "get": _operation(
                "showE2EEReport",
                "The messages revealed in a report",
                tag=t,
                scope="admin:read:reports",
                description="Instance admins and moderators.",
                parameters=[_path_param("id", "The report's id")],
                response=_ref("E2EEReportView"),
            ),
        },
        e + "/reports/{id}/attachments/{index}": {
            "get": _binary_answer(
                _operation(
                    "openReportedE2EEAttachment",
                    "A file a reported message carried, decrypted for moderators",
                    tag=t,
                    scope="admin:read:reports",
                    description="Instance admins and moderators. The reporter revealed the message and with it "
                    "the file's key; the server fetches the ciphertext (its own, or from the sender's server), "
                    "checks its digest and decrypts it. Shown as this moderator chose (hearthside_media_display, "
                    "POST /api/v1/hearthside/admin/media_reveal with attachment): an image (PNG, JPEG, GIF, WebP, "
                    "BMP) is answered as a PNG preview (image/png, inline, at most 1024 px, first frame) that is "
                    "greyscale until colour and blurred until unblur is revealed, its header "
                    "Hearthside-Media-Display naming what it applies; with both revealed, the file itself as a "
                    "download (application/octet-stream, Content-Disposition: attachment), never inline. A file "
                    "that cannot be previewed answers 409 naming what to reveal first (audio: unmute; video: "
                    "unblur, colour, unmute; an image that is not one of those formats: unblur, colour; anything "
                    "else: unblur). 404 when the report has no such file or it is no longer stored ([e2ee] "
                    "attachment_ttl_days); 422 when the stored bytes are not the ones the message named, or an "
                    "image is damaged or too large to preview (over 50 megapixels; reveal it to download it). "
                    "Each opening is logged (ids only).",
                    parameters=[
                        _path_param("id", "The report's id"),
                        {
                            "name": "index",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "integer", "minimum": 0, "maximum": 1000},
                            "description": "The attachment's index in the report's view",
                        },
                    ],
                    errors=("401", "403", "404", "409", "422", "502"),
                )
            ),
        },
        "/api/v1/hearthside/plaintext_messages": {
            "get": _operation(
                "listPlaintextMessages",
                "Direct messages that were not end-to-end encrypted",
                tag=t,
                scope="read:statuses",
                description="From software without E2EE (e.g. Mastodon's direct visibility), kept only when the "
                "instance enables [e2ee] accept_plaintext_dms, newest first, labelled as such.",
                response=_ref("PlaintextMessageBox"),
                errors=("401", "403"),
            ),
        },
    }


@cache
def _moderation_paths() -> dict[str, Any]:
    """Paths of the moderation areas, each described next to its handlers' area in a module
    ``server.openapi_<area>`` with a ``paths()`` function (imported here, late: they use this
    module's helpers)."""
    import importlib

    paths: dict[str, Any] = {}
    for area in ("reports", "feeds", "subscriptions", "safety", "topics"):
        try:
            module = importlib.import_module(f"server.openapi_{area}")
        except ModuleNotFoundError as exc:
            if exc.name == f"server.openapi_{area}":
                continue  # area not built yet
            raise
        paths.update(module.paths())
    return paths


def _document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {
            "title": "Hearthside extension API",
            "version": "0.1.0",
            "description": "Endpoints Hearthside adds to the Mastodon client API: groups, account "
            "self-service, administration and end-to-end encrypted messages (docs/e2ee.md). Errors are "
            'Mastodon\'s {"error": "..."}; validation '
            "errors (422) start with the field's name. Ids are strings of digits.",
            "license": {"name": "AGPL-3.0-or-later", "identifier": "AGPL-3.0-or-later"},
        },
        "tags": [
            {"name": "groups", "description": "Support groups"},
            {"name": "account", "description": "Your own account"},
            {"name": "admin", "description": "Instance administration"},
            {"name": "e2ee", "description": "End-to-end encrypted private messages (docs/e2ee.md)"},
            {"name": "moderation", "description": "Reports, account actions, appeals and rules (docs/moderation.md)"},
            {"name": "feeds", "description": "Signed moderation decision feeds and subscriptions (docs/moderation.md)"},
            {"name": "meta", "description": "About this API"},
        ],
        "paths": {**_group_paths(), **_account_paths(), **_e2ee_paths(), **_moderation_paths()},
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
