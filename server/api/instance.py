"""Instance metadata: ``/api/v1/instance``, ``/api/v2/instance`` and their small companions.

Design note
-----------
Clients decide what they may do from these documents: Mastodon.py refuses to work with a
``version`` below 4 and needs ``api_versions.mastodon == 2``; apps read character limits and
registration mode from them. Values come from the configuration (``[instance]``) and a few
cheap counts; nothing here needs authentication (Mastodon answers both versions publicly).

Hearthside has no media attachments and no polls yet, so their limits say zero; the
streaming API is not implemented yet, but ``urls.streaming_api`` names where it will live.
"""

from __future__ import annotations

import time
from datetime import timedelta
from html import escape
from typing import Any

from aiohttp import web
from sqlalchemy import distinct, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.config import Config
from server.entities import render_account
from server.models import Account, Status, User
from server.web import CONFIG, READ_SESSIONS, Routes, json_response, now

routes = Routes()

HEARTHSIDE_VERSION = "0.1.0"
MASTODON_VERSION = "4.3.0"
VERSION = f"{MASTODON_VERSION} (compatible; Hearthside {HEARTHSIDE_VERSION})"
# Where the source of the running server is published (AGPL §13). Empty until the project
# has a public repository.
SOURCE_URL = ""
CHARACTERS_RESERVED_PER_URL = 23


def _streaming_url(config: Config) -> str:
    base = config.base_url
    return ("wss://" + base[len("https://") :]) if base.startswith("https://") else ("ws://" + base[len("http://") :])


def _registrations(config: Config) -> tuple[bool, bool, bool]:
    """(open to sign-ups, approval required, invites enabled) for the configured mode."""
    mode = config.get("instance", "registrations")
    return mode in ("open", "approval"), mode == "approval", mode == "invite"


def _statuses_config(config: Config) -> dict[str, Any]:
    return {
        "max_characters": config.get("instance", "max_post_chars"),
        "max_media_attachments": 0,
        "characters_reserved_per_url": CHARACTERS_RESERVED_PER_URL,
    }


_MEDIA_CONFIG: dict[str, Any] = {
    "supported_mime_types": [],
    "image_size_limit": 0,
    "image_matrix_limit": 0,
    "video_size_limit": 0,
    "video_frame_rate_limit": 0,
    "video_matrix_limit": 0,
}
_POLLS_CONFIG: dict[str, Any] = {
    "max_options": 0,
    "max_characters_per_option": 0,
    "min_expiration": 0,
    "max_expiration": 0,
}


def _active_users() -> Any:
    return (
        select(func.count(User.id))
        .join(Account, Account.id == User.account_id)
        .where(User.approved.is_(True), Account.suspended_at.is_(None), Account.deleted_at.is_(None))
    )


async def _contact_account(session: AsyncSession, config: Config) -> dict[str, Any] | None:
    """The first admin still in good standing, as Mastodon's ``contact_account``."""
    account = (
        await session.execute(
            select(Account)
            .join(User, User.account_id == Account.id)
            .where(User.role == "admin", Account.suspended_at.is_(None), Account.deleted_at.is_(None))
            .order_by(User.id)
            .limit(1)
        )
    ).scalar_one_or_none()
    return render_account(config, account) if account is not None else None


STATS_SECONDS = 60.0
_stats_cache: dict[str, tuple[float, dict[str, int]]] = {}


async def _stats(request: web.Request) -> dict[str, int]:
    """Instance counts, recomputed at most once a minute per database (as Mastodon caches them):
    counting every post on each ``/api/v1/instance`` call would make a public endpoint slow."""
    config = request.app[CONFIG]
    key = config.database_url
    cached = _stats_cache.get(key)
    if cached is not None and cached[0] > time.monotonic():
        return cached[1]
    since = now() - timedelta(days=30)
    async with request.app[READ_SESSIONS]() as session:
        stats = {
            "user_count": (await session.execute(_active_users())).scalar_one(),
            "status_count": (
                await session.execute(
                    select(func.count(Status.id)).where(Status.local.is_(True), Status.deleted_at.is_(None))
                )
            ).scalar_one(),
            "domain_count": (
                await session.execute(select(func.count(distinct(Account.domain))).where(Account.domain != ""))
            ).scalar_one(),
            "active_month": (
                await session.execute(
                    _active_users().where(or_(User.last_login_at >= since, Account.last_status_at >= since))
                )
            ).scalar_one(),
        }
    _stats_cache[key] = (time.monotonic() + STATS_SECONDS, stats)
    return stats


@routes.get("/api/v1/instance")
async def instance_v1(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    stats = await _stats(request)
    async with request.app[READ_SESSIONS]() as session:
        contact = await _contact_account(session, config)
    open_, approval, invites = _registrations(config)
    return json_response(
        {
            "uri": config.domain,
            "title": config.get("instance", "name"),
            "short_description": config.get("instance", "description"),
            "description": config.get("instance", "description"),
            "email": config.get("instance", "contact_email"),
            "version": VERSION,
            "urls": {"streaming_api": _streaming_url(config)},
            "stats": {k: stats[k] for k in ("user_count", "status_count", "domain_count")},
            "thumbnail": f"{config.base_url}/static/thumbnail.png",
            "languages": list(config.get("instance", "languages")),
            "registrations": open_,
            "approval_required": approval,
            "invites_enabled": invites,
            "configuration": {
                "accounts": {"max_featured_tags": 0},
                "statuses": _statuses_config(config),
                "media_attachments": dict(_MEDIA_CONFIG),
                "polls": dict(_POLLS_CONFIG),
            },
            "contact_account": contact,
            "rules": await _rules(request),
        }
    )


@routes.get("/api/v2/instance")
async def instance_v2(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    stats = await _stats(request)
    async with request.app[READ_SESSIONS]() as session:
        contact = await _contact_account(session, config)
    open_, approval, _invites = _registrations(config)
    return json_response(
        {
            "domain": config.domain,
            "title": config.get("instance", "name"),
            "version": VERSION,
            "source_url": SOURCE_URL,
            "description": config.get("instance", "description"),
            "usage": {"users": {"active_month": stats["active_month"]}},
            "thumbnail": {"url": f"{config.base_url}/static/thumbnail.png"},
            "icon": [],
            "languages": list(config.get("instance", "languages")),
            "configuration": {
                "urls": {
                    "streaming": _streaming_url(config),
                    "status": None,
                    "about": config.base_url,
                    "privacy_policy": None,
                    "terms_of_service": None,
                },
                "vapid": {"public_key": ""},
                "accounts": {"max_featured_tags": 0, "max_pinned_statuses": 0},
                "statuses": _statuses_config(config),
                "media_attachments": {**_MEDIA_CONFIG, "description_limit": 0},
                "polls": dict(_POLLS_CONFIG),
                "translation": {"enabled": False},
            },
            "registrations": {"enabled": open_, "approval_required": approval, "message": None, "url": None},
            "api_versions": {"mastodon": 2},
            "contact": {"email": config.get("instance", "contact_email"), "account": contact},
            "rules": await _rules(request),
        }
    )


async def _rules(request: web.Request) -> list[dict[str, Any]]:
    """The server rules (Mastodon's ``Rule`` entities), in their order."""
    from server.reports import active_rules, render_rule

    async with request.app[READ_SESSIONS]() as session:
        return [render_rule(rule) for rule in await active_rules(session)]


@routes.get("/api/v1/instance/rules")
async def instance_rules(request: web.Request) -> web.Response:
    return json_response(await _rules(request))


@routes.get("/api/v1/instance/peers")
async def instance_peers(request: web.Request) -> web.Response:
    # No federation yet, so no known peers.
    return json_response([])


@routes.get("/api/v1/instance/extended_description")
async def extended_description(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    return json_response({"updated_at": None, "content": f"<p>{escape(config.get('instance', 'description'))}</p>"})
