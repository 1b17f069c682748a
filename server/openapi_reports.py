"""OpenAPI description of the Hearthside moderation endpoints for reports, strikes, appeals,
notes, rules and the audit log (``server.api.reports``, ``server.api.admin_reports``).

Mastodon's own endpoints (``/api/v1/reports``, ``/api/v1/admin/reports``, account actions,
``/api/v1/instance/rules``) are documented by Mastodon and not repeated here; the fields
Hearthside adds to Mastodon's ``Admin::Report`` entity (state, outcome, forwarding, revealed
encrypted messages, the ``e2ee_message`` category) are described by ``ADMIN_REPORT``, the answer
of the forward endpoint, which is the same entity.
"""

from __future__ import annotations

from typing import Any

from server.openapi import (
    DATETIME,
    ID,
    TEXT_LIST,
    _body,
    _nullable,
    _object,
    _operation,
    _path_param,
    _ref,
)

TAG = "moderation"

ACCOUNT = {"type": "object", "description": "Mastodon's Account entity"}
OUTCOME = {"type": "string", "enum": ["received", "actioned", "declined"]}
MEMBER_REPORT = _object(
    {
        "id": ID,
        "outcome": OUTCOME,
        "category": {"type": "string"},
        "comment": {"type": "string"},
        "status_ids": TEXT_LIST,
        "rule_ids": TEXT_LIST,
        "forward_requested": {"type": "boolean"},
        "created_at": DATETIME,
        "resolved_at": _nullable(DATETIME),
        "target_account": ACCOUNT,
    },
    description="Your report and its outcome. Moderators' notes, assignee and action text are never shown.",
)
APPEAL = _object(
    {
        "id": ID,
        "text": {"type": "string"},
        "state": {"type": "string", "enum": ["pending", "approved", "rejected"]},
        "created_at": DATETIME,
        "decided_at": _nullable(DATETIME),
    }
)
STRIKE = _object(
    {
        "id": ID,
        "action": {
            "type": "string",
            "enum": ["none", "sensitive", "disable", "silence", "suspend", "delete_statuses", "ban_from_group"],
        },
        "text": {"type": "string"},
        "status_ids": TEXT_LIST,
        "target_account": ACCOUNT,
        "appeal": {"oneOf": [APPEAL, {"type": "null"}]},
        "created_at": DATETIME,
        "overruled_at": _nullable(DATETIME),
        "appeal_deadline": DATETIME,
    },
    description="Mastodon's AccountWarning (a strike), with when it was overruled and until when it may be appealed.",
)
ADMIN_APPEAL = {
    **APPEAL,
    "properties": {**APPEAL["properties"], "account_warning": STRIKE, "account": ACCOUNT},
}
NOTE = _object(
    {
        "id": ID,
        "content": {"type": "string"},
        "report_id": _nullable(ID),
        "target_account_id": _nullable(ID),
        "account": {"type": ["object", "null"]},
        "created_at": DATETIME,
    },
    description="A staff-only note; never shown to members or federated.",
)
RULE = _object({"id": ID, "text": {"type": "string"}, "hint": {"type": "string"}}, description="Mastodon's Rule")
AUDIT = _object(
    {
        "id": ID,
        "action": {"type": "string"},
        "target_type": {"type": "string"},
        "target": {"type": "string"},
        "reason": {"type": "string"},
        "details": {"type": "object"},
        "source": {"type": "string"},
        "account_id": _nullable(ID),
        "created_at": DATETIME,
    }
)
ADMIN_REPORT = _object(
    {
        "id": ID,
        "category": {
            "type": "string",
            "enum": ["spam", "legal", "violation", "other", "e2ee_message"],
            "description": "Mastodon's four, or Hearthside's e2ee_message for a report of revealed end-to-end "
            "encrypted messages. e2ee_message is never filed by members; an update keeps it unless the "
            "moderator changes it to one of Mastodon's four, and can set it back, but only on a report "
            "with revealed encrypted messages.",
        },
        "statuses": {
            "type": "array",
            "items": {
                "type": "object",
                "description": "Mastodon's Status, with hearthside_media_display (this moderator's reveal state)",
            },
        },
        "state": {"type": "string", "enum": ["open", "resolved"]},
        "outcome": {"type": ["string", "null"], "enum": ["actioned", "declined", None]},
        "origin_domain": {"type": ["string", "null"], "description": "The instance a forwarded report came from"},
        "forward_requested": {"type": "boolean"},
        "forward_to_domains": TEXT_LIST,
        "forwarded_at": _nullable(DATETIME),
        "forwarded_to": TEXT_LIST,
        "hearthside_encrypted_messages": {
            "type": "array",
            "items": _ref("E2EEReportedMessage"),
            "description": "The end-to-end encrypted messages the reporter revealed (only those), each with "
            "whether its franking verified; empty for other reports. Staff only; each viewing is on record in "
            "the audit log (report.e2ee_viewed, at most one entry per moderator, report and hour).",
        },
        "hearthside_encrypted_messages_deleted_at": {
            **_nullable(DATETIME),
            "description": "When retention deleted the revealed messages ([e2ee] revealed_retention_days after "
            "resolving); null while they are kept, and for other reports",
        },
    },
    required=[
        "id", "category", "statuses", "state", "outcome", "origin_domain", "forward_requested",
        "forward_to_domains", "forwarded_at", "forwarded_to", "hearthside_encrypted_messages",
    ],
    description="Mastodon's Admin::Report (as GET /api/v1/admin/reports and /api/v1/admin/reports/{id} also "
    "answer), with Hearthside's state, outcome, forwarding and revealed encrypted messages.",
)  # fmt: skip

FORWARD = {"comment": {"type": "string"}, "status_ids": TEXT_LIST, "domains": TEXT_LIST}
GROUP_BAN = {"group_id": ID, "reason": {"type": "string"}, "report_id": ID}


def _list(schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": schema}


def paths() -> dict[str, Any]:
    h = "/api/v1/hearthside"
    a = h + "/admin"
    report = _path_param("id", "A report's id")
    account = _path_param("id", "An account's id")
    strike = _path_param("id", "A strike's id")
    appeal = _path_param("id", "An appeal's id")
    rule = _path_param("id", "A rule's id")
    note_body = _body(_object({"content": {"type": "string", "maxLength": 5000}}))
    rule_body = _body(
        _object(
            {"text": {"type": "string"}, "hint": {"type": "string"}, "position": {"type": "integer"}}, required=["text"]
        )
    )
    e = ("401", "403", "404", "422")
    return {
        h + "/reports": {
            "get": _operation(
                "listMyReports", "Your reports and their outcome", tag=TAG, scope="write:reports",
                response=_list(MEMBER_REPORT), errors=("401", "403"), paginated=True,
            )
        },
        h + "/reports/{id}": {
            "get": _operation(
                "getMyReport", "One of your reports and its outcome", tag=TAG, scope="write:reports",
                parameters=[report], response=MEMBER_REPORT,
            )
        },
        h + "/strikes": {
            "get": _operation(
                "listMyStrikes", "Moderation decisions about your account", tag=TAG, scope="read:accounts",
                response=_list(STRIKE), errors=("401", "403"), paginated=True,
            )
        },
        h + "/strikes/{id}/appeal": {
            "post": _operation(
                "appealStrike", "Appeal a strike (once, within 20 days)", tag=TAG, scope="write:accounts",
                description="A second appeal of the same strike, or one after 20 days: 422.",
                parameters=[strike], body=_body(_object({"text": {"type": "string", "maxLength": 2000}})),
                response=APPEAL, errors=e,
            )
        },
        a + "/reports/{id}/notes": {
            "get": _operation(
                "listReportNotes", "Moderators' notes on a report", tag=TAG, scope="admin:read:reports",
                parameters=[report], response=_list(NOTE),
            ),
            "post": _operation(
                "addReportNote", "Add a note to a report", tag=TAG, scope="admin:write:reports",
                parameters=[report], body=note_body, response=NOTE, errors=e,
            ),
        },
        a + "/reports/{id}/forward": {
            "post": _operation(
                "forwardReport", "Forward a report to the reported account's instance", tag=TAG,
                scope="admin:write:reports",
                description="Sends a Flag from the instance actor with the moderator's comment and the chosen "
                "posts (default: all of the report's); never the reporter. Only remote targets; domains other "
                "than the target's: 422.",
                parameters=[report],
                body=_body(_object(FORWARD, required=[])),
                response=ADMIN_REPORT, errors=e,
            )
        },
        a + "/accounts/{id}/notes": {
            "get": _operation(
                "listAccountNotes", "Moderators' notes on an account", tag=TAG, scope="admin:read:accounts",
                parameters=[account], response=_list(NOTE),
            ),
            "post": _operation(
                "addAccountNote", "Add a note to an account", tag=TAG, scope="admin:write:accounts",
                parameters=[account], body=note_body, response=NOTE, errors=e,
            ),
        },
        a + "/notes/{id}": {
            "delete": _operation(
                "deleteModerationNote", "Delete your note (admins: any note)", tag=TAG,
                scope="admin:write:reports", parameters=[_path_param("id", "A note's id")], response={"type": "object"},
            )
        },
        a + "/statuses/{id}/remove": {
            "post": _operation(
                "removeStatus", "Remove a post (federated as a Delete) with a strike", tag=TAG,
                scope="admin:write:accounts", parameters=[_path_param("id", "A post's id")],
                body=_body(_object({"reason": {"type": "string"}, "report_id": ID}, required=[]), required=False),
                response=STRIKE, errors=e,
            )
        },
        a + "/accounts/{id}/group_ban": {
            "post": _operation(
                "staffBanFromGroup", "Ban an account from a local group, with a strike", tag=TAG,
                scope="admin:write:accounts", parameters=[account],
                body=_body(_object(GROUP_BAN, required=["group_id"])),
                response=STRIKE, errors=e,
            )
        },
        a + "/appeals": {
            "get": _operation(
                "listAppeals", "Appeals against strikes", tag=TAG, scope="admin:read:accounts",
                parameters=[{"name": "state", "in": "query", "schema": APPEAL["properties"]["state"]}],
                response=_list(ADMIN_APPEAL), errors=("401", "403", "422"), paginated=True,
            )
        },
        a + "/appeals/{id}/approve": {
            "post": _operation(
                "approveAppeal", "Approve: overrule the strike and undo its action", tag=TAG,
                scope="admin:write:accounts",
                description="Unsuspends, unlimits, unmarks sensitive, re-enables or unbans; a removed post stays "
                "removed (its Delete has federated).",
                parameters=[appeal], response=ADMIN_APPEAL, errors=e,
            )
        },
        a + "/appeals/{id}/reject": {
            "post": _operation(
                "rejectAppeal", "Reject an appeal", tag=TAG, scope="admin:write:accounts",
                parameters=[appeal], response=ADMIN_APPEAL, errors=e,
            )
        },
        a + "/rules": {
            "get": _operation(
                "listRules", "Server rules", tag=TAG, scope="admin:read", response=_list(RULE), errors=("401", "403")
            ),
            "post": _operation(
                "createRule", "Add a server rule", tag=TAG, scope="admin:write", body=rule_body, response=RULE,
                errors=("401", "403", "422"),
            ),
        },
        a + "/rules/{id}": {
            "put": _operation(
                "updateRule", "Change a server rule", tag=TAG, scope="admin:write", parameters=[rule],
                body=rule_body, response=RULE, errors=e,
            ),
            "delete": _operation(
                "deleteRule", "Delete a server rule (reports citing it keep it)", tag=TAG, scope="admin:write",
                parameters=[rule], response={"type": "object"},
            ),
        },
        a + "/audit": {
            "get": _operation(
                "listAuditEntries", "The audit log, newest first", tag=TAG, scope="admin:read",
                parameters=[
                    {"name": n, "in": "query", "schema": {"type": "string"}}
                    for n in ("action", "target_type", "target", "account_id")
                ],
                response=_list(AUDIT), errors=("401", "403", "422"), paginated=True,
            )
        },
    }  # fmt: skip
