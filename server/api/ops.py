"""Operations endpoints: liveness, readiness and Prometheus metrics.

``/healthz`` answers while the process runs. ``/readyz`` answers 200 only when the database
answers and its schema is at the newest migration, 503 otherwise (with a reason code).
``/metrics`` is the Prometheus text format; put it behind the reverse proxy's access rules.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web
from sqlalchemy import text

from server.metrics import METRICS
from server.web import SESSIONS, Routes, json_response

routes = Routes()


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    from server.migrate import head_revision

    try:
        async with request.app[SESSIONS]() as session:
            current = (await session.execute(text("SELECT version_num FROM alembic_version"))).scalar_one_or_none()
    except Exception:  # any database failure means "not ready"; the reason code says which
        return json_response({"status": "unavailable", "reason": "database_unreachable"}, status=503)
    if current != head_revision():
        return json_response({"status": "unavailable", "reason": "migrations_pending"}, status=503)
    return json_response({"status": "ok"})


_STATIC = Path(__file__).resolve().parent.parent / "static"
_STATIC_FILES = {"avatar.png", "header.png", "thumbnail.png"}


@routes.get("/static/{name}")
async def static_file(request: web.Request) -> web.StreamResponse:
    """Default avatar, header and instance thumbnail (media uploads arrive later)."""
    name = request.match_info["name"]
    if name not in _STATIC_FILES:
        raise web.HTTPNotFound()
    return web.FileResponse(_STATIC / name, headers={"Cache-Control": "public, max-age=86400"})


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    body = request.app[METRICS].render()
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})
