"""OpenAPI description of the subscription and draft endpoints (server/api/subscriptions.py)."""

from __future__ import annotations

from typing import Any

from server.openapi import (
    DATETIME,
    ID,
    SCHEMAS,
    _body,
    _object,
    _operation,
    _ref,
)
from server.subscriptions import FORMATS, MODES, POLICIES, RETRACTION_MODES

READ = "admin:read:domain_blocks"
WRITE = "admin:write:domain_blocks"
TAG = "feeds"

_NULLABLE_TEXT = {"type": ["string", "null"]}
_NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}
_STRINGS = {"type": "array", "items": {"type": "string"}}

_SUBSCRIPTION = _object(
    {
        "id": ID,
        "url": {"type": "string", "format": "uri"},
        "format": {"type": "string", "enum": list(FORMATS)},
        "name": {"type": "string"},
        "mode": {"type": "string", "enum": list(MODES)},
        "trust_weight": {"type": "integer", "minimum": 1},
        "max_policy": {"type": "string", "enum": list(POLICIES)},
        "retraction_mode": {"type": "string", "enum": list(RETRACTION_MODES)},
        "independence_group": _NULLABLE_TEXT,
        "priority": {"type": "integer"},
        "enabled": {"type": "boolean"},
        "interval_seconds": {"type": "integer", "minimum": 60},
        "feed_id": _NULLABLE_TEXT,
        "publisher": _NULLABLE_TEXT,
        "pinned_keys": {**_STRINGS, "description": "Ids of the publisher keys pinned (signed feeds)"},
        "cursor": {**_NULLABLE_TEXT, "description": "The last changeId applied"},
        "opinions_count": {"type": "integer"},
        "last_sync_at": _NULLABLE_TIME,
        "last_success_at": _NULLABLE_TIME,
        "last_error": _NULLABLE_TEXT,
        "last_result": {"oneOf": [_ref("SubscriptionSyncResult"), {"type": "null"}]},
        "next_sync_at": _NULLABLE_TIME,
        "created_at": DATETIME,
    },
    description="A subscribed moderation feed or block list (docs/moderation.md)",
)

_SYNC_RESULT = _object(
    {
        "subscription_id": ID,
        "status": {"type": "string", "enum": ["ok", "not_modified", "error"]},
        "error": _NULLABLE_TEXT,
        "entries": {"type": "integer"},
        "rejected": {"type": "integer", "description": "Entries refused (bad proof, unknown key, malformed)"},
        "rejected_entries": {
            "type": "array",
            "items": _object({"id": {"type": "string"}, "reason": {"type": "string"}}),
        },
        "updated_opinions": {"type": "integer"},
        "removed_opinions": {"type": "integer"},
        "problems": {"type": "array", "items": {"type": "object"}},
        "applied": {"type": "integer"},
        "drafts": {"type": "integer"},
        "circuit_breaker": {"type": "boolean"},
        "cursor": _NULLABLE_TEXT,
    }
)

_SUPPORTER = _object(
    {
        "subscription_id": {"type": "string"},
        "entry_id": {"type": "string"},
        "counted": {"type": "boolean"},
        "policy": {"type": "string", "enum": list(POLICIES)},
    }
)

_DRAFT = _object(
    {
        "id": ID,
        "entity_kind": {"type": "string"},
        "entity_key": {"type": "string"},
        "action": {"type": "string", "enum": ["add", "update", "remove", "orphan"]},
        "policy": {"type": ["string", "null"], "enum": [*POLICIES, None]},
        "filters": _STRINGS,
        "labels": _STRINGS,
        "previous_policy": {"type": ["string", "null"], "enum": [*POLICIES, None]},
        "subscription_id": {"type": ["string", "null"]},
        "previous_subscription_id": {"type": ["string", "null"]},
        "supporters": {"type": "array", "items": _SUPPORTER},
        "reasons": _STRINGS,
        "review": _STRINGS,
        "state": {"type": "string", "enum": ["pending", "accepted", "rejected", "superseded"]},
        "decided_by": {"type": ["string", "null"]},
        "decided_at": _NULLABLE_TIME,
        "created_at": DATETIME,
    },
    description="A change subscriptions propose; nothing changes until a moderator accepts it",
)

_SETTINGS = {
    "name": {"type": "string", "maxLength": 200},
    "mode": {"type": "string", "enum": list(MODES), "default": "draft"},
    "trust_weight": {"type": "integer", "minimum": 1, "maximum": 100, "default": 1},
    "max_policy": {"type": "string", "enum": list(POLICIES), "default": "drop"},
    "retraction_mode": {"type": "string", "enum": list(RETRACTION_MODES), "default": "remove"},
    "independence_group": {"type": "string", "maxLength": 200},
    "priority": {"type": "integer"},
    "enabled": {"type": "boolean"},
    "interval_seconds": {"type": "integer", "minimum": 60, "maximum": 604800},
}


def _id_param(what: str) -> dict[str, Any]:
    return {"name": "id", "in": "path", "required": True, "schema": ID, "description": what}


def paths() -> dict[str, Any]:
    SCHEMAS.setdefault("Subscription", _SUBSCRIPTION)
    SCHEMAS.setdefault("SubscriptionSyncResult", _SYNC_RESULT)
    SCHEMAS.setdefault("ModerationDraft", _DRAFT)
    s = "/api/v1/hearthside/admin/subscriptions"
    d = "/api/v1/hearthside/admin/moderation_drafts"
    sub_id = _id_param("A subscription's id")
    draft_id = _id_param("A draft's id")
    staff = " Instance staff (admins and moderators) only."
    return {
        s: {
            "get": _operation(
                "listSubscriptions",
                "Subscribed feeds and block lists",
                tag=TAG,
                scope=READ,
                description="Newest first, with the last sync's result." + staff,
                response={"type": "array", "items": _ref("Subscription")},
                errors=("401", "403", "422"),
                paginated=True,
            ),
            "post": _operation(
                "createSubscription",
                "Subscribe to a feed or block list",
                tag=TAG,
                scope=WRITE,
                description="The URL is fetched once: the format is detected when not given and a signed "
                "feed's publisher keys are pinned. New subscriptions are in draft mode unless mode=auto. "
                "A URL that cannot be read answers 422 naming url." + staff,
                body=_body(
                    _object(
                        {
                            "url": {"type": "string", "format": "uri"},
                            "format": {"type": "string", "enum": list(FORMATS)},
                            **_SETTINGS,
                        },
                        required=["url"],
                    )
                ),
                response=_ref("Subscription"),
                errors=("400", "401", "403", "422"),
            ),
        },
        s + "/{id}": {
            "get": _operation(
                "getSubscription",
                "Show a subscription",
                tag=TAG,
                scope=READ,
                parameters=[sub_id],
                response=_ref("Subscription"),
            ),
            "patch": _operation(
                "updateSubscription",
                "Change a subscription's settings",
                tag=TAG,
                scope=WRITE,
                description="The merge runs again at once with the new settings.",
                parameters=[sub_id],
                body=_body(_object(dict(_SETTINGS), required=[])),
                response=_ref("Subscription"),
                errors=("400", "401", "403", "404", "422"),
            ),
            "delete": _operation(
                "deleteSubscription",
                "Unsubscribe",
                tag=TAG,
                scope=WRITE,
                description="What this subscription alone supported is removed or kept unmanaged, per its "
                "retraction mode, in the same transaction.",
                parameters=[sub_id],
                response={"type": "object"},
            ),
        },
        s + "/{id}/sync": {
            "post": _operation(
                "syncSubscription",
                "Sync a subscription now",
                tag=TAG,
                scope=WRITE,
                description="Fetches, verifies, merges and applies (or drafts); a failed fetch is reported in "
                "the result (status error) and changes nothing. 409 while another sync of it runs.",
                parameters=[sub_id],
                response=_ref("SubscriptionSyncResult"),
                errors=("401", "403", "404", "409"),
            ),
        },
        d: {
            "get": _operation(
                "listModerationDrafts",
                "Changes waiting for a moderator",
                tag=TAG,
                scope=READ,
                parameters=[
                    {
                        "name": "state",
                        "in": "query",
                        "schema": {"type": "string", "enum": ["pending", "accepted", "rejected", "superseded"]},
                        "description": "Default pending",
                    }
                ],
                response={"type": "array", "items": _ref("ModerationDraft")},
                errors=("401", "403", "422"),
                paginated=True,
            ),
        },
        d + "/{id}/accept": {
            "post": _operation(
                "acceptModerationDraft",
                "Accept a draft",
                tag=TAG,
                scope=WRITE,
                description="Applies the change with an audit entry naming the moderator and the supporting "
                "feeds' entries. 409 when it is no longer pending or no longer applies.",
                parameters=[draft_id],
                response=_ref("ModerationDraft"),
                errors=("401", "403", "404", "409"),
            ),
        },
        d + "/{id}/reject": {
            "post": _operation(
                "rejectModerationDraft",
                "Reject a draft",
                tag=TAG,
                scope=WRITE,
                description="The same change is not proposed again.",
                parameters=[draft_id],
                response=_ref("ModerationDraft"),
                errors=("401", "403", "404", "409"),
            ),
        },
    }
