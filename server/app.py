"""The aiohttp application factory and the middlewares every request passes through.

Order (outermost first): request id -> metrics and access log -> errors -> handler.
Errors raised anywhere become one JSON shape: Mastodon's ``{"error": "..."}`` (with
``error_description`` on OAuth endpoints). Unexpected exceptions become a 500 whose body
names the request id and nothing else; the log records the exception type, never its text.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from server.accounts import HASHER, password_hasher
from server.config import Config
from server.db import ReadSessions, make_engine, make_sessionmaker
from server.errors import ApiError, TooManyRequests, ValidationFailed
from server.federation import FEDERATION
from server.logs import request_id_var
from server.metrics import METRICS, Metrics
from server.runner import running_federation
from server.web import CONFIG, READ_SESSIONS, REQUEST_ID, SESSIONS, Handler, json_response

log = logging.getLogger(__name__)
access_log = logging.getLogger("hearthside.access")

ENGINE = web.AppKey("engine", AsyncEngine)
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def _route_name(request: web.Request) -> str:
    info = request.match_info
    route = info.route if info is not None else None
    resource = getattr(route, "resource", None)
    if resource is None:
        return "unmatched"
    return str(resource.canonical).replace("{_trailing_slash}", "")


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    incoming = request.headers.get("X-Request-Id", "")
    rid = incoming if _REQUEST_ID.match(incoming) else secrets.token_hex(8)
    request[REQUEST_ID] = rid
    token = request_id_var.set(rid)
    try:
        response = await handler(request)
        response.headers["X-Request-Id"] = rid
        return response
    except web.HTTPException as exc:
        exc.headers["X-Request-Id"] = rid
        raise
    finally:
        request_id_var.reset(token)


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    metrics = request.app[METRICS]
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        elapsed = time.perf_counter() - started
        route = _route_name(request)
        metrics.observe(request.method, route, status, elapsed)
        access_log.info("%s %s %d %.1fms", request.method, route, status, elapsed * 1000)


def _is_oauth(request: web.Request) -> bool:
    return request.path.startswith("/oauth/")


def _error_body(request: web.Request, status: int, message: str, oauth_error: str | None) -> dict[str, Any]:
    if _is_oauth(request) or oauth_error:
        return {"error": oauth_error or _OAUTH_DEFAULT.get(status, "invalid_request"), "error_description": message}
    return {"error": message}


_OAUTH_DEFAULT = {400: "invalid_request", 401: "invalid_client", 403: "access_denied"}


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        headers = {}
        if isinstance(exc, TooManyRequests):
            headers["Retry-After"] = str(exc.retry_after)
        if exc.status == 401 and request.path.startswith(("/api/", "/oauth/")):
            headers["WWW-Authenticate"] = 'Bearer realm="hearthside", error="invalid_token"'
        body = _error_body(request, exc.status, exc.message, exc.oauth_error)
        if isinstance(exc, ValidationFailed):
            body["details"] = exc.details
        body.update({k: v for k, v in exc.extra.items() if k not in body})
        return json_response(body, status=exc.status, headers=headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        messages = {
            404: "Record not found",
            405: "Method not allowed",
            413: "Request body too large",
        }
        message = messages.get(exc.status, exc.reason)
        headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow",)}
        return json_response(_error_body(request, exc.status, message, None), status=exc.status, headers=headers)
    except Exception as exc:
        log.exception("unhandled %s in %s %s", type(exc).__name__, request.method, _route_name(request))
        return json_response(
            {"error": f"Internal server error (request id {request.get(REQUEST_ID, '-')})"}, status=500
        )


@web.middleware
async def security_headers_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if request.path.startswith(("/api/", "/oauth/token", "/oauth/revoke")):
        response.headers.setdefault("Cache-Control", "private, no-store")
        response.headers.setdefault("Access-Control-Allow-Origin", "*")
    return response


@web.middleware
async def preflight_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer CORS preflights for every path (browser clients of the client API)."""
    if request.method != "OPTIONS":
        return await handler(request)
    return web.Response(
        status=204,
        headers={
            "Access-Control-Allow-Origin": "*",
            "Access-Control-Allow-Methods": "GET, POST, PUT, PATCH, DELETE, OPTIONS",
            "Access-Control-Allow-Headers": "Authorization, Content-Type, Idempotency-Key",
            "Access-Control-Max-Age": "86400",
        },
    )


def create_app(config: Config, *, engine: AsyncEngine | None = None) -> web.Application:
    """Build the web application. Opens the database in ``cleanup_ctx``; does no I/O now."""
    app = web.Application(
        client_max_size=config.get("server", "max_body_bytes"),
        middlewares=[
            request_id_middleware,
            metrics_middleware,
            security_headers_middleware,
            error_middleware,
            preflight_middleware,
        ],
    )
    app[CONFIG] = config
    app[METRICS] = Metrics()
    app[HASHER] = password_hasher(config)

    async def database(app: web.Application) -> AsyncIterator[None]:
        own = engine is None
        eng = engine or make_engine(
            config.database_url,
            pool_size=config.get("database", "pool_size"),
            echo=config.get("database", "echo"),
        )
        app[ENGINE] = eng
        app[SESSIONS] = make_sessionmaker(eng)
        app[READ_SESSIONS] = reads = ReadSessions(eng.url.render_as_string(hide_password=False), app[SESSIONS])
        async with running_federation(config, app[SESSIONS], workers=config.get("server", "workers")) as fed:
            app[FEDERATION] = fed
            fed.reads = reads
            yield
        reads.dispose()
        if own:
            await eng.dispose()

    app.cleanup_ctx.append(database)

    from server.api import install_all

    install_all(app)
    return app
