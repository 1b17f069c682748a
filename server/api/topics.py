"""Trigger topics: the instance's taxonomy and a member's show/warn/hide choices
(``server.topics``)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from server import topics
from server.auth import authenticate, require_user
from server.errors import Unprocessable
from server.web import CONFIG, SESSIONS, Routes, json_response, read_json_object, read_params

routes = Routes()

TAXONOMY = "/api/v1/hearthside/topics"
PREFERENCES = "/api/v1/hearthside/topics/preferences"


@routes.get(PREFERENCES)
async def show_preferences(request: web.Request) -> web.Response:
    viewer = await require_user(request, "read:accounts")
    async with request.app[SESSIONS]() as session:
        choices = await topics.load_choices(session, viewer.require_account())
    return json_response(topics.render_preferences(request.app[CONFIG], choices))


async def _wanted(request: web.Request) -> dict[str, Any]:
    """``{"preferences": {id: mode}}`` as JSON, or ``preferences[id]=mode`` form fields."""
    if request.content_type == "application/json":
        body = await read_json_object(request)
        wanted = body.get("preferences")
        if not isinstance(wanted, dict):
            raise Unprocessable("preferences: must be an object of topic id to show, warn or hide")
        return wanted
    params = await read_params(request)
    wanted = {}
    for key in params._data:
        if key.startswith("preferences[") and key.endswith("]"):
            wanted[key[len("preferences[") : -1]] = params.text(key, max_len=8)
    if not wanted:
        raise Unprocessable("preferences: is required")
    return wanted


@routes.put(PREFERENCES)
async def update_preferences(request: web.Request) -> web.Response:
    viewer = await require_user(request, "write:accounts")
    wanted = await _wanted(request)
    config = request.app[CONFIG]
    async with request.app[SESSIONS]() as session:
        choices = await topics.save_preferences(session, config, viewer.require_account(), wanted)
        await session.commit()
    return json_response(topics.render_preferences(config, choices))


@routes.get(TAXONOMY)
async def taxonomy(request: web.Request) -> web.Response:
    """The instance's trigger topics; public, like the server rules."""
    await authenticate(request, "read:accounts", required=False)
    return json_response([t.as_json() for t in topics.taxonomy(request.app[CONFIG]).topics])
