"""OpenAPI description of the member-safety endpoints (``server.api.safety``): the draft check,
helplines, the country setting, concern reports, the crisis queue, safe-messaging hides, the
responder flag and the helpline review list. Texts make no clinical claims: a match "may
indicate" a crisis; it is never a diagnosis.
"""

from __future__ import annotations

from typing import Any

from server.openapi import DATETIME, ID, TEXT_LIST, _body, _object, _operation, _path_param

TAG = "moderation"
TEXT = {"type": "string"}
NTEXT = {"type": ["string", "null"]}
ACCOUNT = {"type": "object", "description": "Mastodon's Account entity"}
HELPLINE = _object(
    {
        "name": TEXT,
        "phone": NTEXT,
        "sms": NTEXT,
        "chat": NTEXT,
        "url": NTEXT,
        "hours": NTEXT,
        "notes": NTEXT,
        "languages": TEXT_LIST,
        "paired_with": NTEXT,
    },
    description="A helpline from the instance's directory; paired services are listed together or not at all.",
)
SUPPORT = _object(
    {
        "kind": {"type": "string", "enum": ["signpost", "post_hidden", "supporter"]},
        "level": {"type": "string", "enum": ["low", "high"]},
        "language": TEXT,
        "country": NTEXT,
        "message": TEXT,
        "emergency": NTEXT,
        "helplines": {"type": "array", "items": HELPLINE},
        "directory_url": NTEXT,
    },
    description="A supportive panel shown to the author only (never to other viewers, never federated). "
    "Also the `hearthside_support` field of the author's own POST /api/v1/statuses answer, and of a "
    "`hearthside.safety_support` notification.",
)
SETTINGS = _object({"country": NTEXT, "default_country": NTEXT})
STATE = {"type": "string", "enum": ["open", "acknowledged", "escalated", "resolved", "dismissed"]}
CRISIS_ITEM = _object(
    {
        "id": ID,
        "kind": {"type": "string", "enum": ["post", "concern"]},
        "state": STATE,
        "state_reason": NTEXT,
        "level": {"type": "string", "enum": ["low", "high", "concern"]},
        "priority": {"type": "integer", "description": "0 (method detail) first, then 1 (high, concerns), 2"},
        "method_detail": {"type": "boolean"},
        "explanation": {"type": "string", "description": "What matched, for responders only; never leaves them"},
        "comment": NTEXT,
        "account": {"type": ["object", "null"], "description": "The member the item is about"},
        "reporter": {"type": ["object", "null"], "description": "A concern's reporter (responders only)"},
        "assignee": {"type": ["object", "null"]},
        "status": {"type": ["object", "null"], "description": "The post, even when private, hidden or deleted"},
        "created_at": DATETIME,
        "due_at": DATETIME,
        "overdue": {"type": "boolean", "description": "Still open after its response-time target"},
        "runbook": {"type": "string", "description": "The instance's escalation runbook"},
    },
    description="A crisis-queue item: a post that may indicate a crisis, or a member's concern.",
)
ADMIN_HELPLINE = {
    **HELPLINE,
    "properties": {
        **HELPLINE["properties"],
        "countries": TEXT_LIST,
        "source": TEXT,
        "last_verified": {"type": "string", "description": "YYYY-MM-DD or 'unverified'"},
        "stale": {"type": "boolean"},
        "stale_reason": NTEXT,
    },
}


def _list(schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": schema}


def paths() -> dict[str, Any]:
    m = "/api/v1/hearthside/safety"
    a = "/api/v1/hearthside/admin"
    item = _path_param("id", "A crisis item's id")
    e = ("401", "403", "404", "422")
    reason_body = _body(_object({"reason": {"type": "string", "maxLength": 1000}}, required=[]), required=False)
    ops: dict[str, Any] = {
        m + "/check": {
            "post": _operation(
                "checkDraft", "Check a draft: a support panel for you, or null", tag=TAG, scope="write:statuses",
                description="Nothing is stored, shown to anyone else or federated.",
                body=_body(_object({"text": TEXT, "language": TEXT}, required=["text"])),
                response=_object({"support": {"oneOf": [SUPPORT, {"type": "null"}]}}), errors=("401", "403", "422"),
            )
        },
        m + "/helplines": {
            "get": _operation(
                "myHelplines", "Helplines for your country and language", tag=TAG, scope="read:accounts",
                parameters=[{"name": "language", "in": "query", "schema": TEXT}],
                response=_object({"country": NTEXT, "helplines": _list(HELPLINE), "directory_url": NTEXT}),
                errors=("401", "403"),
            )
        },
        m + "/support_kit": {
            "get": _operation(
                "mySupportKit", "What your device needs to show support panels for encrypted messages", tag=TAG,
                scope="read:accounts",
                description="The panels for each message language (en, ru, fr) and level, for a message you "
                "send ('sent', kind signpost) and one you receive ('received', kind supporter), with your "
                "country's helplines; and the instance's crisis_additions and crisis_exclusions. Your device "
                "reads your encrypted messages with the same detector and shows a panel itself: the server "
                "never sees the messages, nor learns when a panel is shown.",
                response=_object(
                    {
                        "country": NTEXT,
                        "crisis_additions": {"type": "object"},
                        "crisis_exclusions": {"type": "object"},
                        "panels": {
                            "type": "object",
                            "additionalProperties": {
                                "type": "object",
                                "additionalProperties": _object({"sent": SUPPORT, "received": SUPPORT}),
                            },
                        },
                    }
                ),
                errors=("401", "403"),
            )
        },
        m + "/settings": {
            "get": _operation(
                "getSafetySettings", "Your safety settings", tag=TAG, scope="read:accounts", response=SETTINGS,
                errors=("401", "403"),
            ),
            "patch": _operation(
                "updateSafetySettings", "Change your safety settings", tag=TAG, scope="write:accounts",
                body=_body(_object({"country": NTEXT}, required=[])), response=SETTINGS,
                errors=("401", "403", "422"),
            ),
        },
        "/api/v1/hearthside/concerns": {
            "post": _operation(
                "raiseConcern", "Tell trained responders you are worried about a member", tag=TAG,
                scope="write:reports",
                description="Nothing is sent to the member concerned. Local members only. At most 3 a day, and "
                "one a day about the same member (429).",
                body=_body(_object({"account_id": ID, "status_id": ID, "comment": TEXT}, required=["account_id"])),
                response=_object({"id": ID, "created_at": DATETIME, "message": TEXT}),
                errors=("401", "403", "404", "422", "429"),
            )
        },
        a + "/crisis": {
            "get": _operation(
                "listCrisisItems", "The crisis queue (trained responders and admins)", tag=TAG,
                scope="admin:read:reports",
                parameters=[
                    {"name": "state", "in": "query", "schema": STATE},
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 200}},
                ],
                response=_list(CRISIS_ITEM), errors=("401", "403", "422"),
            )
        },
        a + "/crisis/{id}": {
            "get": _operation(
                "getCrisisItem", "One crisis item", tag=TAG, scope="admin:read:reports", parameters=[item],
                response=CRISIS_ITEM,
            )
        },
        a + "/crisis/{id}/hide": {
            "post": _operation(
                "hideCrisisPost", "Hide the item's post pending review", tag=TAG, scope="admin:write:reports",
                description="For method detail or graphic self-harm. Not deleted and not federated; its author "
                "and staff still see it; the author gets a private supportive notification with helplines.",
                parameters=[item],
                body=_body(
                    _object(
                        {"reason": {"type": "string", "enum": ["method_detail", "graphic_self_harm"]}, "comment": TEXT},
                        required=["reason"],
                    )
                ),
                response=CRISIS_ITEM, errors=e,
            )
        },
        a + "/crisis/{id}/unhide": {
            "post": _operation(
                "unhideCrisisPost", "Show the item's post again", tag=TAG, scope="admin:write:reports",
                parameters=[item], response=CRISIS_ITEM, errors=e,
            )
        },
        a + "/accounts/{id}/responder": {
            "post": _operation(
                "setTrainedResponder", "Set or clear a staff member's trained-responder flag (admins)", tag=TAG,
                scope="admin:write:accounts", parameters=[_path_param("id", "An account's id")],
                body=_body(_object({"trained": {"type": "boolean"}})),
                response=_object({"account_id": ID, "role": TEXT, "trained_responder": {"type": "boolean"}}),
                errors=e,
            )
        },
        a + "/safety/helplines": {
            "get": _operation(
                "listHelplinesForReview", "The helpline directory with entries past review flagged (admins)",
                tag=TAG, scope="admin:read",
                response=_object({"review_period_days": {"type": "integer"}, "helplines": _list(ADMIN_HELPLINE)}),
                errors=("401", "403"),
            )
        },
    }  # fmt: skip
    summaries = {
        "acknowledge": "Acknowledge a crisis item (you become its assignee)",
        "escalate": "Escalate a crisis item (follow the runbook)",
        "resolve": "Resolve a crisis item",
        "dismiss": "Dismiss a crisis item (a reason is required)",
    }
    for action, summary in summaries.items():
        ops[f"{a}/crisis/{{id}}/{action}"] = {
            "post": _operation(
                f"{action}CrisisItem", summary, tag=TAG, scope="admin:write:reports", parameters=[item],
                body=reason_body, response=CRISIS_ITEM, errors=e,
            )
        }  # fmt: skip
    return ops


__all__ = ["paths"]
