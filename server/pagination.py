"""Mastodon-style pagination: ``max_id``/``since_id``/``min_id``/``limit`` in, a ``Link``
header with ``next``/``prev`` out (https://docs.joinmastodon.org/api/guidelines/#pagination).

``max_id`` pages backwards (older), ``since_id`` returns the newest items above an id, and
``min_id`` returns the items just above an id (oldest first, then re-sorted newest first).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from sqlalchemy import Select, bindparam

from server.web import Params


@dataclass(frozen=True, slots=True)
class Page:
    max_id: int | None
    since_id: int | None
    min_id: int | None
    limit: int

    @property
    def ascending(self) -> bool:
        return self.min_id is not None


def page_params(params: Params, *, default: int = 20, maximum: int = 40) -> Page:
    """Read the pagination parameters; ``limit`` is clamped to ``maximum`` as Mastodon does."""
    limit = params.integer("limit", default, min=1)
    assert limit is not None
    return Page(
        max_id=params.id("max_id"),
        since_id=params.id("since_id"),
        min_id=params.id("min_id"),
        limit=min(limit, maximum),
    )


def paginate(query: Select[Any], column: Any, page: Page) -> Select[Any]:
    """Apply the page's bounds, order and limit to ``query`` over the id ``column``."""
    if page.max_id is not None:
        query = query.where(column < page.max_id)
    if page.since_id is not None:
        query = query.where(column > page.since_id)
    if page.min_id is not None:
        query = query.where(column > page.min_id)
        return query.order_by(column.asc()).limit(page.limit)
    return query.order_by(column.desc()).limit(page.limit)


def bounded(query: Select[Any], column: Any, *, ascending: bool) -> Select[Any]:
    """``paginate`` for a statement built once: the bounds and limit are parameters.

    Execute it with ``bound_params(page)`` (and ``ascending=page.ascending``). Absent bounds
    become the ends of the 64-bit id range, so one statement serves every page.
    """
    query = query.where(column <= bindparam("page_upper"), column > bindparam("page_lower"))
    order = column.asc() if ascending else column.desc()
    return query.order_by(order).limit(bindparam("page_limit"))


_ID_MAX = 2**63 - 1
_ID_MIN = -(2**63)


def bound_params(page: Page) -> dict[str, int]:
    """Parameters of a ``bounded`` statement: ``id < max_id``, ``id > since_id``, ``id > min_id``."""
    lower = _ID_MIN
    for bound in (page.since_id, page.min_id):
        if bound is not None and bound > lower:
            lower = bound
    upper = _ID_MAX if page.max_id is None else page.max_id - 1
    return {"page_upper": upper, "page_lower": lower, "page_limit": page.limit}


def order_newest_first(items: list[Any], page: Page, key: Any) -> list[Any]:
    """Rows fetched with ``min_id`` come oldest first; clients expect newest first."""
    return sorted(items, key=key, reverse=True) if page.ascending else items


def link_header(request: web.Request, ids: list[int], page: Page) -> dict[str, str]:
    """``Link`` header for a page whose items have ``ids`` (newest first). Empty page: none."""
    if not ids:
        return {}
    base = f"{request.scheme}://{request.host}{request.path}"
    keep = [(k, v) for k, v in request.query.items() if k not in ("max_id", "since_id", "min_id", "limit")]
    keep.append(("limit", str(page.limit)))
    query = urlencode(keep)  # ids are digits: appending them is what urlencode would do
    links = [f'<{base}?{query}&max_id={min(ids)}>; rel="next"', f'<{base}?{query}&min_id={max(ids)}>; rel="prev"']
    return {"Link": ", ".join(links)}
