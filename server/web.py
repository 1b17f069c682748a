"""Small helpers every handler uses: routes that tolerate a trailing slash, typed request
parameters, JSON responses and database sessions.

Mastodon clients send parameters as a query string, a form (urlencoded or multipart) or a
JSON object, and arrays as repeated ``name[]`` keys; ``Params`` reads all of them the same
way and raises a 400/422 naming the parameter when one is missing or malformed.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from multidict import MultiDict
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.config import Config
from server.db import ReadSessions
from server.errors import ApiError, BadRequest, PayloadTooLarge, Unprocessable

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

CONFIG = web.AppKey("config", Config)
SESSIONS = web.AppKey("sessions", async_sessionmaker[AsyncSession])
REQUEST_ID = web.RequestKey("request_id", str)
# Sessions for handlers that only read: same API subset as AsyncSession (execute, scalar,
# scalars, get); inline SQLite reads on the embedded default (server.db.InlineReadSession).
READ_SESSIONS = web.AppKey("read_sessions", ReadSessions)

MAX_JSON_DEPTH = 32
MAX_ARRAY_ITEMS = 100


def now() -> datetime:
    return datetime.now(UTC)


class Routes:
    """A route table whose every path also answers with a trailing slash.

    Mastodon.py asks for ``/api/v1/instance/`` with the slash and recurses forever on a 404,
    so tolerance is global rather than per-route (research/interop-peers.md, Mastodon.py).
    """

    def __init__(self) -> None:
        self._routes: list[tuple[str, str, Handler]] = []

    def _add(self, method: str, path: str) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self._routes.append((method, path, handler))
            return handler

        return register

    def get(self, path: str) -> Callable[[Handler], Handler]:
        return self._add("GET", path)

    def post(self, path: str) -> Callable[[Handler], Handler]:
        return self._add("POST", path)

    def put(self, path: str) -> Callable[[Handler], Handler]:
        return self._add("PUT", path)

    def patch(self, path: str) -> Callable[[Handler], Handler]:
        return self._add("PATCH", path)

    def delete(self, path: str) -> Callable[[Handler], Handler]:
        return self._add("DELETE", path)

    def __iter__(self) -> Iterator[tuple[str, str, Handler]]:
        return iter(self._routes)

    def install(self, app: web.Application) -> None:
        for method, path, handler in self._routes:
            slashed = path if path.endswith("/") else path + "{_trailing_slash:/?}"
            app.router.add_route(method, slashed, handler)


def json_response(data: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode(),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def _depth(value: Any, limit: int) -> int:
    stack: list[tuple[Any, int]] = [(value, 1)]
    deepest = 0
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if deepest > limit:
            return deepest
        if isinstance(item, dict):
            stack.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, level + 1) for v in item)
    return deepest


def _flatten_json(data: dict[str, Any]) -> MultiDict[Any]:
    out: MultiDict[Any] = MultiDict()
    for key, value in data.items():
        if isinstance(value, list):
            for item in value:
                out.add(key, item)
            if not value:
                out.add(key + "__empty", True)
        else:
            out.add(key, value)
    return out


async def read_json_object(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object, for endpoints whose input is nested JSON (the E2EE
    API): 415 for another content type, 400 for malformed JSON, a non-object or deep nesting."""
    if request.content_type != "application/json":
        raise ApiError("request body must be application/json", status=415)
    return await _json_body(request)


async def _json_body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    try:
        data = json.loads(raw) if raw.strip() else {}
    except (ValueError, RecursionError):
        raise BadRequest("request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise BadRequest("request body must be a JSON object")
    if _depth(data, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        raise BadRequest(f"request body nests deeper than {MAX_JSON_DEPTH} levels")
    return data


async def read_params(request: web.Request) -> Params:
    """Collect parameters from the query string and the body, whatever its encoding."""
    merged: MultiDict[Any] = MultiDict(request.query)
    if request.method in ("POST", "PUT", "PATCH", "DELETE") and request.body_exists:
        ctype = request.content_type
        if ctype == "application/json":
            merged.extend(_flatten_json(await _json_body(request)))
        elif ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
            try:
                form = await request.post()
            except ValueError as exc:
                if "Maximum request body size" in str(exc):
                    raise PayloadTooLarge("request body too large") from None
                raise BadRequest("request body is not a valid form") from None
            for key, value in form.items():
                if isinstance(value, web.FileField):
                    raise Unprocessable(f"{key}: file uploads are not accepted here")
                merged.add(key, value)
        elif ctype not in ("", "application/octet-stream", "text/plain"):
            raise BadRequest(f"unsupported Content-Type {ctype!r}: send JSON or a form")
    return Params(merged)


_TRUE = {"true", "1", "on", "yes", "t"}
_FALSE = {"false", "0", "off", "no", "f", ""}


def storable_text(value: str, name: str) -> str:
    """``value`` if a database can hold it, else ``Unprocessable`` naming ``name``: PostgreSQL
    text refuses a NUL, and JSON's "\\ud800" decodes to a lone surrogate no UTF-8 column stores."""
    if "\x00" in value:
        raise Unprocessable(f"{name}: must not contain NUL characters")
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            raise Unprocessable(f"{name}: is not valid UTF-8 text") from None
    return value


class Params:
    """Typed access to request parameters; every failure names the parameter."""

    def __init__(self, data: MultiDict[Any]) -> None:
        self._data = data

    def __contains__(self, name: str) -> bool:
        return name in self._data or f"{name}[]" in self._data or f"{name}__empty" in self._data

    def raw(self, name: str) -> Any:
        return self._data.get(name)

    def text(
        self, name: str, default: str | None = None, *, max_len: int = 10_000, required: bool = False
    ) -> str | None:
        value = self._data.get(name)
        if value is None:
            if required:
                raise BadRequest(f"missing required parameter: {name}")
            return default
        if isinstance(value, bool | int | float) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            raise Unprocessable(f"{name}: must be a string")
        storable_text(value, name)
        if len(value) > max_len:
            raise Unprocessable(f"{name}: longer than {max_len} characters")
        return value

    def required_str(self, name: str, *, max_len: int = 10_000) -> str:
        value = self.text(name, max_len=max_len, required=True)
        assert value is not None
        return value

    def flag(self, name: str, default: bool | None = None) -> bool | None:
        value = self._data.get(name)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _TRUE:
            return True
        if isinstance(value, str) and value.lower() in _FALSE:
            return False
        raise Unprocessable(f"{name}: must be a boolean (true or false)")

    def integer(
        self,
        name: str,
        default: int | None = None,
        *,
        min: int | None = None,
        max: int | None = None,
    ) -> int | None:
        value = self._data.get(name)
        if value is None or value == "":
            return default
        if isinstance(value, bool):
            raise Unprocessable(f"{name}: must be an integer")
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise Unprocessable(f"{name}: must be an integer") from None
        if min is not None and number < min:
            raise Unprocessable(f"{name}: must be at least {min}")
        if max is not None and number > max:
            raise Unprocessable(f"{name}: must be at most {max}")
        return number

    def id(self, name: str) -> int | None:
        """An id parameter (string of digits, as Mastodon sends them)."""
        value = self._data.get(name)
        if value is None or value == "":
            return None
        return parse_id(value, name)

    def array(self, name: str, *, max_items: int = MAX_ARRAY_ITEMS) -> list[Any]:
        values = self._data.getall(f"{name}[]", []) + self._data.getall(name, [])
        if len(values) > max_items:
            raise Unprocessable(f"{name}: more than {max_items} items")
        for value in values:
            if isinstance(value, str):
                storable_text(value, name)
        return list(values)


def parse_id(value: Any, name: str = "id") -> int:
    if isinstance(value, bool):
        raise Unprocessable(f"{name}: must be an id")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
        number = int(value)
    else:
        raise Unprocessable(f"{name}: must be an id (a string of digits)")
    if not 0 < number < 2**63:
        raise Unprocessable(f"{name}: out of range")
    return number


def path_id(request: web.Request, name: str = "id") -> int:
    """An id from the URL path; a malformed one is a 404, as for any unknown resource."""
    from server.errors import NotFound

    value = request.match_info.get(name, "")
    if not (value.isascii() and value.isdigit() and 0 < len(value) <= 19) or int(value) >= 2**63:
        raise NotFound("Record not found")
    return int(value)
