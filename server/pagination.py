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
from sqlalchemy import Select

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
    newer = urlencode([*keep, ("min_id", str(max(ids)))])
    older = urlencode([*keep, ("max_id", str(min(ids)))])
    links = [f'<{base}?{older}>; rel="next"', f'<{base}?{newer}>; rel="prev"']
    return {"Link": ", ".join(links)}
