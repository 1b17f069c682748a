"""OpenAPI description of trigger topics and wellbeing (``server.api.topics``,
``server.api.wellbeing``): the topic taxonomy and members' choices, break reminders and quiet
mode, and moderators' media reveals and exposure counts."""

from __future__ import annotations

from typing import Any

from server.openapi import DATETIME, ID, _body, _nullable, _object, _operation, _ref

TAG = "moderation"

MODE = {"type": "string", "enum": ["show", "warn", "hide"]}
TOPIC = _object(
    {
        "id": {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]*$"},
        "label": {"type": "string", "description": "The English label"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}, "description": "Language -> label"},
    },
    description="A trigger topic of the instance's taxonomy ([safety] trigger_topics).",
)
PREFERENCES = _object(
    {"preferences": {"type": "object", "additionalProperties": MODE, "description": "Topic id -> your choice"}},
    description="Your choice per trigger topic. warn: posts tagged with the topic, or whose content warning "
    "names it, are marked sensitive with a content warning naming the topics; hide: they are left out of "
    "timelines, threads, search and notifications (opened by id, they are collapsed). Your own posts are never "
    "changed for you.",
)
WELLBEING = _object(
    {
        "break_reminder_minutes": {"type": ["integer", "null"], "minimum": 15, "maximum": 480},
        "quiet_mode": {"type": "boolean"},
        "quiet_until": _nullable(DATETIME),
        "active_minutes": {"type": "integer", "description": "Minutes of the current activity session"},
        "session_started_at": _nullable(DATETIME),
        "take_a_break": {"type": "boolean", "description": "The session is longer than your reminder"},
    },
    description="Break reminder and quiet mode. The session counts authenticated API requests; a gap of more "
    "than 10 minutes starts a new one. While quiet, new notifications are held back (not listed or counted) "
    "and appear when quiet mode ends.",
)
WELLBEING_BODY = _object(
    {
        "break_reminder_minutes": {"type": ["integer", "null"], "minimum": 15, "maximum": 480},
        "quiet_mode": {"type": "boolean"},
        "quiet_until": _nullable(DATETIME),
    },
    required=[],
)
DISPLAY = _ref("MediaDisplay")
REVEAL = _object(
    {
        "report_id": ID,
        "status_id": ID,
        "attachment": {
            "type": "integer",
            "minimum": 0,
            "description": "Instead of status_id: the index of a file revealed in an E2EE report",
        },
        "reveal": {"type": "string", "enum": ["unblur", "colour", "unmute"]},
    },
    required=["report_id", "reveal"],
)
EXPOSURE = _object(
    {
        "since": DATETIME,
        "moderators": {
            "type": "array",
            "items": _object(
                {
                    "account_id": ID,
                    "username": {"type": "string"},
                    "reports_opened": {"type": "integer"},
                    "reveals": {"type": "integer"},
                    "by_kind": {"type": "object", "additionalProperties": {"type": "integer"}},
                }
            ),
        },
    },
    description="Reported items opened and media revealed since Monday 00:00 UTC: moderators see their own, "
    "admins everyone's.",
)


def paths() -> dict[str, Any]:
    h = "/api/v1/hearthside"
    e = ("401", "403", "422")
    return {
        h + "/topics": {
            "get": _operation(
                "listTriggerTopics",
                "The instance's trigger topics",
                tag=TAG,
                scope="read:accounts",
                anonymous=True,
                response={"type": "array", "items": TOPIC},
                errors=(),
            )
        },
        h + "/topics/preferences": {
            "get": _operation(
                "getTopicPreferences",
                "Your choice per trigger topic",
                tag=TAG,
                scope="read:accounts",
                response=PREFERENCES,
                errors=("401", "403"),
            ),
            "put": _operation(
                "updateTopicPreferences",
                "Choose show, warn or hide for some topics",
                tag=TAG,
                scope="write:accounts",
                body=_body(PREFERENCES),
                response=PREFERENCES,
                errors=e,
                description="Topics not named keep their choice; an unknown topic or mode: 422.",
            ),
        },
        h + "/wellbeing": {
            "get": _operation(
                "getWellbeing",
                "Your break reminder, activity and quiet mode",
                tag=TAG,
                scope="read:accounts",
                response=WELLBEING,
                errors=("401", "403"),
            ),
            "put": _operation(
                "updateWellbeing",
                "Set your break reminder and quiet mode",
                tag=TAG,
                scope="write:accounts",
                body=_body(WELLBEING_BODY),
                response=WELLBEING,
                errors=e,
            ),
        },
        h + "/admin/media_reveal": {
            "post": _operation(
                "revealReportedMedia",
                "Reveal one reported post's media, or one file of an E2EE report, for yourself",
                tag=TAG,
                scope="admin:write:reports",
                body=_body(REVEAL),
                response=_object(
                    {
                        "report_id": ID,
                        "status_id": ID,
                        "attachment": {"type": "integer", "minimum": 0},
                        "hearthside_media_display": DISPLAY,
                    },
                    required=["report_id", "hearthside_media_display"],
                ),
                errors=e,
                description="unblur, colour and unmute are separate actions, each audited and counted. Give "
                "status_id (a reported post) or attachment (a file of an E2EE report, as GET "
                "/api/v1/hearthside/e2ee/reports/{id} numbers them); the answer names the same one.",
            )
        },
        h + "/admin/exposure": {
            "get": _operation(
                "getModeratorExposure",
                "This week's exposure counts",
                tag=TAG,
                scope="admin:read:reports",
                response=EXPOSURE,
                errors=("401", "403"),
            )
        },
    }
