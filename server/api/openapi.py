"""``GET /api/v1/hearthside/openapi.json``: the OpenAPI 3.1 document of Hearthside's extension
endpoints (built by ``server.openapi``), public and without authentication.

The document is rendered once per process (per public origin) and served as bytes; ``servers``
names this instance's origin so tools such as Swagger UI send requests to the right place.
"""

from __future__ import annotations

import json
from functools import cache

from aiohttp import web

from server.openapi import build_document
from server.web import CONFIG, Routes

routes = Routes()


@cache
def _rendered(base_url: str) -> bytes:
    return json.dumps(build_document(base_url), ensure_ascii=False, separators=(",", ":")).encode()


@routes.get("/api/v1/hearthside/openapi.json")
async def openapi_document(request: web.Request) -> web.Response:
    return web.Response(
        body=_rendered(request.app[CONFIG].base_url),
        content_type="application/json",
        headers={"Cache-Control": "public, max-age=3600"},
    )
