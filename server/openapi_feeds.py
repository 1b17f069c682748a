"""OpenAPI description of the Hearthside feed extension routes (``server.api.feeds``).

The feed documents themselves (``/moderation/feeds/...``) are FIRES/ActivityStreams documents,
not part of the client API, and are described by the feed contract instead.
"""

from __future__ import annotations

from typing import Any

from server.openapi import _object, _operation


def paths() -> dict[str, Any]:
    tombstone = _object(
        {
            "change_id": {"type": "string", "description": "UUIDv7 changeId of the Tombstone entry"},
            "entity_kind": {"type": "string", "enum": ["domain", "actor"]},
            "entity_key": {"type": "string"},
            "url": {"type": "string", "format": "uri"},
        },
        ["change_id", "entity_kind", "entity_key", "url"],
    )
    body = _object(
        {"entity": {"type": "string", "description": "A domain, or an actor URI (https://...)", "maxLength": 2048}},
        ["entity"],
    )
    return {
        "/api/v1/hearthside/feed/tombstones": {
            "post": _operation(
                "createFeedTombstone",
                "Withdraw a domain or actor from the published decision feed",
                tag="feeds",
                scope="admin:write",
                description=(
                    "Publishes a FIRES Tombstone and deletes every earlier entry about the entity, with its "
                    "reasons. Admins only; audited. 404 when the feed never mentioned the entity."
                ),
                body={
                    "required": True,
                    "content": {
                        "application/json": {"schema": body},
                        "application/x-www-form-urlencoded": {"schema": body},
                    },
                },
                response=tombstone,
                errors=("400", "401", "403", "404", "422"),
            )
        }
    }
