"""Mastodon API entity shapes built from our rows (https://docs.joinmastodon.org/entities/).

Only plain data goes in and out: the callers load what is needed; nothing here queries.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from server.config import Config
from server.models import Account, AccountSeveranceEvent, RelationshipSeveranceEvent, User


def iso(moment: datetime | None) -> str | None:
    """Mastodon's timestamp format: ISO 8601 in UTC with milliseconds and ``Z``."""
    if moment is None:
        return None
    if moment.year >= 1000:
        # Same text as the strftime form below at half the cost: isoformat's first 23
        # characters are "YYYY-MM-DDTHH:MM:SS.mmm", milliseconds truncated.
        return moment.isoformat(timespec="milliseconds")[:23] + "Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def acct(account: Account) -> str:
    return account.username if account.local else f"{account.username}@{account.domain}"


def account_url(config: Config, account: Account) -> str:
    if not account.local:
        return account.url or account.uri or ""
    prefix = "/g/" if account.is_group else "/@"
    return f"{config.base_url}{prefix}{account.username}"


def account_uri(config: Config, account: Account) -> str:
    if not account.local:
        return account.uri or ""
    kind = "groups" if account.is_group else "users"
    return f"{config.base_url}/{kind}/{account.username}"


def render_account(
    config: Config, account: Account, *, source: bool = False, role: str | None = None
) -> dict[str, Any]:
    """The Mastodon ``Account`` entity (``CredentialAccount`` when ``source`` is set).

    Groups carry ``"group": true``. Verified professionals carry the Hearthside extension
    ``hearthside.verified_professional`` and a Mastodon-style role badge in ``roles``.
    """
    avatar = f"{config.base_url}/static/avatar.png"
    header = f"{config.base_url}/static/header.png"
    suspended = account.suspended_at is not None
    data: dict[str, Any] = {
        "id": str(account.id),
        "username": account.username,
        "acct": acct(account),
        "display_name": "" if suspended else account.display_name,
        "locked": account.locked,
        "bot": account.bot,
        "discoverable": account.discoverable,
        "indexable": False,
        "group": account.is_group,
        "created_at": iso(account.created_at.replace(hour=0, minute=0, second=0, microsecond=0)),
        "note": "" if suspended else account.note,
        "url": account_url(config, account),
        "uri": account_uri(config, account),
        "avatar": avatar,
        "avatar_static": avatar,
        "header": header,
        "header_static": header,
        "followers_count": account.followers_count,
        "following_count": account.following_count,
        "statuses_count": account.statuses_count,
        "last_status_at": account.last_status_at.date().isoformat() if account.last_status_at else None,
        "hide_collections": False,
        "noindex": True,
        "emojis": [],
        "roles": [],
        "fields": [] if suspended else list(account.fields or []),
        "hearthside": {"verified_professional": account.verified_professional},
    }
    if suspended:
        data["suspended"] = True
        data["limited"] = False
    if account.verified_professional:
        data["roles"].append({"id": "verified_professional", "name": "Verified professional", "color": "#2b7a78"})
    if source:
        data["source"] = {
            "privacy": "public",
            "sensitive": False,
            "language": None,
            "note": account.note_source,
            "fields": list(account.fields or []),
            "follow_requests_count": 0,
            "hide_collections": False,
            "discoverable": account.discoverable,
            "indexable": False,
        }
        if role is not None:
            data["role"] = {
                "id": role,
                "name": role.capitalize(),
                "permissions": "0",
                "color": "",
                "highlighted": role != "member",
            }
    return data


def render_role(role: str) -> dict[str, Any]:
    """Mastodon's ``Role`` entity for one of our three instance roles."""
    return {
        "id": role,
        "name": role.capitalize(),
        "permissions": "0",
        "color": "",
        "highlighted": role != "member",
    }


def render_relationship(
    account_id: int,
    *,
    following: bool = False,
    requested: bool = False,
    showing_reblogs: bool = False,
    notifying: bool = False,
    followed_by: bool = False,
    requested_by: bool = False,
    blocking: bool = False,
    blocked_by: bool = False,
    muting: bool = False,
    muting_notifications: bool = False,
) -> dict[str, Any]:
    """Mastodon's ``Relationship`` entity, seen from the viewer towards ``account_id``."""
    return {
        "id": str(account_id),
        "following": following,
        "showing_reblogs": showing_reblogs,
        "notifying": notifying,
        "languages": None,
        "followed_by": followed_by,
        "blocking": blocking,
        "blocked_by": blocked_by,
        "muting": muting,
        "muting_notifications": muting_notifications,
        "requested": requested,
        "requested_by": requested_by,
        "domain_blocking": False,
        "endorsed": False,
        "note": "",
    }


def render_token(token: str, scopes: str, created_at: datetime) -> dict[str, Any]:
    """Mastodon's ``Token`` entity (``created_at`` is a Unix timestamp there)."""
    return {"access_token": token, "token_type": "Bearer", "scope": scopes, "created_at": int(created_at.timestamp())}


def render_admin_account(
    config: Config,
    account: Account,
    user: User | None,
    *,
    show_email: bool,
    invited_by_account_id: int | None = None,
) -> dict[str, Any]:
    """Mastodon's ``Admin::Account`` entity. ``email`` only when ``show_email`` (admins)."""
    return {
        "id": str(account.id),
        "username": account.username,
        "domain": account.domain or None,
        "created_at": iso(account.created_at),
        "email": user.email if user is not None and show_email else None,
        "ip": None,
        "ips": [],
        "locale": user.locale if user is not None else None,
        "invite_request": (user.registration_reason or None) if user is not None else None,
        "role": render_role(user.role if user is not None else "member"),
        "confirmed": user is not None,
        "approved": bool(user.approved) if user is not None else True,
        "disabled": bool(user.disabled) if user is not None else False,
        "silenced": account.silenced_at is not None,
        "sensitized": account.sensitized_at is not None,
        "suspended": account.suspended_at is not None,
        "account": render_account(config, account),
        "created_by_application_id": None,
        "invited_by_account_id": str(invited_by_account_id) if invited_by_account_id is not None else None,
    }


def render_severance_event(mine: AccountSeveranceEvent, event: RelationshipSeveranceEvent) -> dict[str, Any]:
    """Mastodon's ``RelationshipSeveranceEvent`` as one member sees it (4.3): what that member
    lost (``followers_count``, ``following_count``) in an event cutting follows."""
    return {
        "id": str(mine.id),
        "type": event.type,
        "purged": event.purged,
        "target_name": event.target_name,
        "followers_count": mine.followers_count,
        "following_count": mine.following_count,
        "created_at": iso(event.created_at),
    }
