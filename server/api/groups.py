"""Hearthside's own group API under ``/api/v1/hearthside/groups``.

Design note
-----------
Mastodon clients already see a group as an account with ``"group": true`` (follow = join);
this extension adds what they cannot express: discovery with filters, settings, join
policies with requests and invites, group roles and bans. The rules themselves live in
``server.groups``; handlers here parse, check who is asking, call the rules, render.

Who may do what:

* anyone, even anonymous (scope ``read:groups`` when a token is sent): list local groups, show
  one, list its moderators. A ``members_only`` group shows its public description, but its
  members list answers 404 to non-members, as any invisible record does.
* any approved local user (``write:groups``): create a group (becoming its owner and first
  member), join, leave.
* the group's owners and moderators, and instance admins/moderators: settings, requests,
  bans, invites. A moderator cannot ban an owner or another moderator; owners and staff may
  ban moderators, nobody bans an owner.
* owners and instance staff: appoint and remove moderators and owners. A group always keeps
  one owner, so its only owner can neither leave nor step down (422).

Every request is one transaction: inputs are validated before anything is written, and a
failure rolls everything back. Suspended groups answer 404 to everyone but instance staff.
Groups hosted on other servers can be shown, but are managed (and joined) through federation.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from aiohttp import web
from sqlalchemy import exists, func, literal, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from crypto.tokens import new_code
from server import groups as rules
from server import outbox
from server.accounts import RESERVED, USERNAME, username_taken
from server.auth import Viewer, authenticate, require_user
from server.config import Config
from server.entities import account_url, iso, render_account
from server.errors import Forbidden, NotFound, Unauthorized, Unprocessable
from server.models import Account, Follow, Group, GroupBan, GroupInvite, GroupRole
from server.pagination import link_header, order_newest_first, page_params, paginate
from server.web import CONFIG, SESSIONS, Params, Routes, json_response, now, path_id, read_params

log = logging.getLogger(__name__)
routes = Routes()

BASE = "/api/v1/hearthside/groups"
MAX_INVITE_USES = 1000
MIN_INVITE_SECONDS = 60
MAX_INVITE_SECONDS = 90 * 24 * 3600


# ---------------------------------------------------------------------------- rendering


def render_relationship(
    group_id: int, account_id: int, *, state: str | None, role: str | None, banned: bool
) -> dict[str, Any]:
    """The ``GroupRelationship`` entity: one account's standing in one group."""
    return {
        "group_id": str(group_id),
        "account_id": str(account_id),
        "member": state == "accepted",
        "requested": state == "pending",
        "role": role,
        "banned": banned,
    }


def render_group(config: Config, view: rules.GroupView, relationship: dict[str, Any] | None) -> dict[str, Any]:
    """The ``Group`` entity (see the OpenAPI document, components.schemas.Group)."""
    account, group = view.account, view.group
    return {
        "id": str(account.id),
        "account": render_account(config, account),
        "name": account.username,
        "display_name": account.display_name,
        "description": account.note,
        "description_source": account.note_source,
        "rules": list(group.rules or []),
        "topic_tags": list(group.topic_tags or []),
        "language": group.language,
        "join_policy": group.join_policy,
        "members_only": group.members_only,
        "members_count": account.followers_count,
        "created_at": iso(account.created_at),
        "url": account_url(config, account),
        "relationship": relationship,
    }


def render_invite(config: Config, invite: GroupInvite, invitee: Account | None) -> dict[str, Any]:
    return {
        "id": str(invite.id),
        "group_id": str(invite.group_id),
        "code": invite.code,
        "account": render_account(config, invitee) if invitee is not None else None,
        "max_uses": invite.max_uses,
        "uses": invite.uses,
        "expires_at": iso(invite.expires_at),
        "created_at": iso(invite.created_at),
    }


async def _relationships(session: AsyncSession, group_ids: list[int], account_id: int) -> dict[int, dict[str, Any]]:
    """The viewer's relationship with each group, in three queries whatever the count."""
    if not group_ids:
        return {}
    states_rows = await session.execute(
        select(Follow.target_account_id, Follow.state).where(
            Follow.account_id == account_id, Follow.target_account_id.in_(group_ids)
        )
    )
    states = {gid: state for gid, state in states_rows}
    role_rows = await session.execute(
        select(GroupRole.group_id, GroupRole.role).where(
            GroupRole.account_id == account_id, GroupRole.group_id.in_(group_ids)
        )
    )
    roles = {gid: role for gid, role in role_rows}
    banned = set(
        (
            await session.execute(
                select(GroupBan.group_id).where(GroupBan.account_id == account_id, GroupBan.group_id.in_(group_ids))
            )
        ).scalars()
    )
    return {
        gid: render_relationship(gid, account_id, state=states.get(gid), role=roles.get(gid), banned=gid in banned)
        for gid in group_ids
    }


async def _relationship(session: AsyncSession, group_id: int, account_id: int) -> dict[str, Any]:
    return (await _relationships(session, [group_id], account_id))[group_id]


async def _viewer_relationship(session: AsyncSession, group_id: int, viewer: Viewer | None) -> dict[str, Any] | None:
    if viewer is None or viewer.account_id is None:
        return None
    return await _relationship(session, group_id, viewer.account_id)


# ---------------------------------------------------------------------------- loading and checks


async def _visible_group(session: AsyncSession, request: web.Request, viewer: Viewer | None) -> rules.GroupView:
    """The group named in the path; suspended groups exist for instance staff only."""
    view = await rules.load_group(session, path_id(request))
    if view.account.suspended_at is not None and not (viewer is not None and viewer.is_staff):
        raise NotFound("Record not found")
    return view


async def _local_group(session: AsyncSession, request: web.Request, viewer: Viewer | None) -> rules.GroupView:
    view = await _visible_group(session, request, viewer)
    if not view.account.local:
        raise Unprocessable("this group is hosted on another server; manage it there")
    return view


async def _load_account(session: AsyncSession, account_id: int) -> Account:
    account = await session.get(Account, account_id)
    if account is None or account.deleted_at is not None:
        raise NotFound("Record not found")
    return account


async def _viewer_account(session: AsyncSession, viewer: Viewer) -> Account:
    return await _load_account(session, viewer.require_account())


async def _require_moderator(session: AsyncSession, view: rules.GroupView, viewer: Viewer) -> str | None:
    """The viewer's group role; 403 unless they moderate the group or are instance staff."""
    await rules.require_group_moderator(
        session, view.account.id, viewer.require_account(), instance_staff=viewer.is_staff
    )
    return await rules.role_in(session, view.account.id, viewer.require_account())


async def _require_owner(session: AsyncSession, view: rules.GroupView, viewer: Viewer) -> None:
    if viewer.is_staff:
        return
    if await rules.role_in(session, view.account.id, viewer.require_account()) != "owner":
        raise Forbidden("only the group's owners may do this")


async def _require_members_visible(session: AsyncSession, view: rules.GroupView, viewer: Viewer | None) -> None:
    """Members of a members-only group are shown to members and staff; to others it is 404."""
    if not view.group.members_only or (viewer is not None and viewer.is_staff):
        return
    if not await rules.is_member(session, view.account.id, viewer.account_id if viewer else None):
        raise NotFound("Record not found")


# ---------------------------------------------------------------------------- input


def _text_list(params: Params, name: str) -> list[Any]:
    """An array parameter; a lone empty string (``rules[]=`` in a form) means the empty list."""
    values = params.array(name)
    return [] if values == [""] else values


def _tags(params: Params) -> list[Any]:
    return [t[1:] if isinstance(t, str) and t.startswith("#") else t for t in _text_list(params, "topic_tags")]


def _check_group_name(name: str) -> None:
    if not USERNAME.match(name):
        raise Unprocessable("name: must be 1-30 letters, digits or underscores")
    if name.lower() in RESERVED:
        raise Unprocessable("name: is reserved")


# ---------------------------------------------------------------------------- groups


@routes.get(BASE)
async def list_groups(request: web.Request) -> web.Response:
    """Discover local groups, newest first; ``member=true`` lists only the viewer's groups."""
    viewer = await authenticate(request, "read:groups", required=False)
    params = await read_params(request)
    page = page_params(params)
    q = params.text("q", max_len=100)
    tag = params.text("tag", max_len=100)
    language = params.text("language", max_len=16)
    mine = params.flag("member", False)
    if mine and (viewer is None or viewer.account_id is None):
        raise Unauthorized("The access token is invalid")
    query: Any = (
        select(Account, Group)
        .join(Group, Group.account_id == Account.id)
        .where(Account.domain == "", Account.deleted_at.is_(None))
    )
    if not (viewer is not None and viewer.is_staff):
        query = query.where(Account.suspended_at.is_(None))
    if q:
        needle = q.strip().lower()
        query = query.where(
            or_(
                func.lower(Account.username).contains(needle, autoescape=True),
                func.lower(Account.display_name).contains(needle, autoescape=True),
            )
        )
    if language:
        query = query.where(func.lower(Group.language) == language.strip().lower())
    async with request.app[SESSIONS]() as session:
        if tag:
            query = query.where(_has_tag(session, tag.strip().lstrip("#").lower()))
        if mine and viewer is not None:
            query = query.join(
                Follow,
                (Follow.target_account_id == Account.id)
                & (Follow.account_id == viewer.account_id)
                & (Follow.state == "accepted"),
            )
        rows = (await session.execute(paginate(query, Account.id, page))).all()
        views = order_newest_first([rules.GroupView(a, g) for a, g in rows], page, key=lambda v: v.account.id)
        ids = [v.account.id for v in views]
        relations = await _relationships(session, ids, viewer.account_id) if viewer and viewer.account_id else {}
    config = request.app[CONFIG]
    body = [render_group(config, v, relations.get(v.account.id)) for v in views]
    return json_response(body, headers=link_header(request, ids, page))


def _has_tag(session: AsyncSession, tag: str) -> Any:
    """``tag`` is one of the group's topic tags (a JSON array), on either database."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy import cast
        from sqlalchemy.dialects.postgresql import JSONB

        return cast(Group.topic_tags, JSONB).contains([tag])
    each = func.json_each(Group.topic_tags).table_valued("value")
    return exists(select(literal(1)).select_from(each).where(each.c.value == tag))


@routes.post(BASE)
async def create(request: web.Request) -> web.Response:
    """Create a group; the creator becomes its owner and first member."""
    viewer = await require_user(request, "write:groups")
    params = await read_params(request)
    name = params.required_str("name", max_len=30).strip()
    _check_group_name(name)
    display_name = params.text("display_name", max_len=rules.MAX_DISPLAY_NAME) or ""
    description = params.text("description", max_len=rules.MAX_DESCRIPTION) or ""
    join_policy = params.text("join_policy", "open", max_len=16) or "open"
    language = params.text("language", "en", max_len=16) or "en"
    members_only = bool(params.flag("members_only", False))
    rule_list = _text_list(params, "rules")
    tags = _tags(params)
    rules.validate_settings(join_policy=join_policy, rules=rule_list, topic_tags=tags, language=language)
    async with request.app[SESSIONS]() as session:
        if await username_taken(session, name):
            raise Unprocessable("name: is already taken")
        owner = await _viewer_account(session, viewer)
        view = await rules.create_group(
            session,
            owner=owner,
            name=name,
            display_name=display_name.strip(),
            description=description,
            rules=[r.strip() for r in rule_list],
            topic_tags=list(dict.fromkeys(t.lower() for t in tags)),
            language=language,
            join_policy=join_policy,
            members_only=members_only,
        )
        try:
            await session.commit()
        except IntegrityError:
            raise Unprocessable("name: is already taken") from None  # a concurrent create won
        relationship = await _relationship(session, view.account.id, owner.id)
    log.info("group %s created by account %s", view.account.id, owner.id)
    return json_response(render_group(request.app[CONFIG], view, relationship))


@routes.get(BASE + "/{id}")
async def show(request: web.Request) -> web.Response:
    viewer = await authenticate(request, "read:groups", required=False)
    async with request.app[SESSIONS]() as session:
        view = await _visible_group(session, request, viewer)
        relationship = await _viewer_relationship(session, view.account.id, viewer)
    return json_response(render_group(request.app[CONFIG], view, relationship))


@routes.patch(BASE + "/{id}")
async def update(request: web.Request) -> web.Response:
    """Change settings (moderators, owners, staff). Switching to ``open`` accepts no requests."""
    viewer = await require_user(request, "write:groups")
    params = await read_params(request)
    changes: dict[str, Any] = {
        "display_name": params.text("display_name", max_len=rules.MAX_DISPLAY_NAME),
        "description": params.text("description", max_len=rules.MAX_DESCRIPTION),
        "language": params.text("language", max_len=16),
        "join_policy": params.text("join_policy", max_len=16),
        "members_only": params.flag("members_only"),
        "rules": _text_list(params, "rules") if "rules" in params else None,
        "topic_tags": _tags(params) if "topic_tags" in params else None,
    }
    async with request.app[SESSIONS]() as session:
        view = await _local_group(session, request, viewer)
        await _require_moderator(session, view, viewer)
        await rules.update_settings(session, view, **changes)
        await session.flush()
        await outbox.federate_profile(session, request.app[CONFIG], view.account)
        await session.commit()
        relationship = await _viewer_relationship(session, view.account.id, viewer)
    log.info("group %s settings changed by account %s", view.account.id, viewer.account_id)
    return json_response(render_group(request.app[CONFIG], view, relationship))


# ---------------------------------------------------------------------------- membership


@routes.post(BASE + "/{id}/join")
async def join(request: web.Request) -> web.Response:
    """Join (open), request to join (approval), or join with an invite (invite-only)."""
    viewer = await require_user(request, "write:groups")
    params = await read_params(request)
    code = params.text("invite_code", max_len=64)
    async with request.app[SESSIONS]() as session:
        view = await _local_group(session, request, viewer)
        if view.account.suspended_at is not None:
            raise Forbidden("this group is suspended")
        account = await _viewer_account(session, viewer)
        await rules.join(session, view, account, invite_code=(code or "").strip() or None)
        await session.commit()
        relationship = await _relationship(session, view.account.id, account.id)
    return json_response(relationship)


@routes.post(BASE + "/{id}/leave")
async def leave(request: web.Request) -> web.Response:
    """Leave, or withdraw a pending request. The group's only owner cannot leave (422)."""
    viewer = await require_user(request, "write:groups")
    async with request.app[SESSIONS]() as session:
        view = await _local_group(session, request, viewer)
        account_id = viewer.require_account()
        await rules.leave(session, view, account_id)
        await session.commit()
        relationship = await _relationship(session, view.account.id, account_id)
    return json_response(relationship)


def _member_entry(config: Config, account: Account, role: str | None, since: Any) -> dict[str, Any]:
    return {"account": render_account(config, account), "role": role, "joined_at": iso(since)}


@routes.get(BASE + "/{id}/members")
async def members(request: web.Request) -> web.Response:
    viewer = await authenticate(request, "read:groups", required=False)
    params = await read_params(request)
    page = page_params(params, default=40, maximum=80)
    async with request.app[SESSIONS]() as session:
        view = await _visible_group(session, request, viewer)
        await _require_members_visible(session, view, viewer)
        query: Any = (
            select(Follow, Account, GroupRole.role)
            .join(Account, Account.id == Follow.account_id)
            .outerjoin(
                GroupRole, (GroupRole.group_id == Follow.target_account_id) & (GroupRole.account_id == Account.id)
            )
            .where(
                Follow.target_account_id == view.account.id,
                Follow.state == "accepted",
                Account.deleted_at.is_(None),
            )
        )
        rows = (await session.execute(paginate(query, Follow.id, page))).all()
        rows = order_newest_first(list(rows), page, key=lambda r: r[0].id)
    config = request.app[CONFIG]
    body = [_member_entry(config, account, role, follow.created_at) for follow, account, role in rows]
    return json_response(body, headers=link_header(request, [r[0].id for r in rows], page))


@routes.get(BASE + "/{id}/requests")
async def requests(request: web.Request) -> web.Response:
    """Pending membership requests, as Mastodon's follow requests: a list of accounts."""
    viewer = await require_user(request, "read:groups")
    params = await read_params(request)
    page = page_params(params, default=40, maximum=80)
    async with request.app[SESSIONS]() as session:
        view = await _local_group(session, request, viewer)
        await _require_moderator(session, view, viewer)
        query: Any = (
            select(Follow.id, Account)
            .join(Account, Account.id == Follow.account_id)
            .where(
                Follow.target_account_id == view.account.id,
                Follow.state == "pending",
                Account.deleted_at.is_(None),
            )
        )
        rows = (await session.execute(paginate(query, Follow.id, page))).all()
        rows = order_newest_first(list(rows), page, key=lambda r: r[0])
    config = request.app[CONFIG]
    body = [render_account(config, account) for _id, account in rows]
    return json_response(body, headers=link_header(request, [r[0] for r in rows], page))


async def _decide_request(request: web.Request, *, approve: bool) -> web.Response:
    viewer = await require_user(request, "write:groups")
    async with request.app[SESSIONS]() as session:
        view = await _local_group(session, request, viewer)
        await _require_moderator(session, view, viewer)
        target = await _load_account(session, path_id(request, "account_id"))
        if approve:
            await rules.approve_request(session, view, target)
            await outbox.answer_follow(session, request.app[CONFIG], view.account, target.id, accepted=True)
        else:
            await outbox.answer_follow(session, request.app[CONFIG], view.account, target.id, accepted=False)
            await rules.reject_request(session, view, target.id)
        await session.commit()
        relationship = await _relationship(session, view.account.id, target.id)
    log.info(
        "group %s request %s by account %s", view.account.id, "approved" if approve else "rejected", viewer.account_id
    )
    return json_response(relationship)


@routes.post(BASE + "/{id}/requests/{account_id}/approve")
async def approve(request: web.Request) -> web.Response:
    return await _decide_request(request, approve=True)


@routes.post(BASE + "/{id}/requests/{account_id}/reject")
async def reject(request: web.Request) -> web.Response:
    return await _decide_request(request, approve=False)


# ---------------------------------------------------------------------------- roles


async def _role_entries(session: AsyncSession, config: Config, group_id: int) -> list[dict[str, Any]]:
    rows = await session.execute(
        select(GroupRole, Account, Follow.created_at)
        .join(Account, Account.id == GroupRole.account_id)
        .outerjoin(
            Follow, (Follow.target_account_id == GroupRole.group_id) & (Follow.account_id == GroupRole.account_id)
        )
        .where(GroupRole.group_id == group_id, Account.deleted_at.is_(None))
        .order_by(GroupRole.id)
    )
    return [_member_entry(config, account, role.role, since) for role, account, since in rows]


@routes.get(BASE + "/{id}/moderators")
async def moderators(request: web.Request) -> web.Response:
    """Owners and moderators: public, so people can see who runs a group before joining it."""
    viewer = await authenticate(request, "read:groups", required=False)
    async with request.app[SESSIONS]() as session:
        view = await _visible_group(session, request, viewer)
        body = await _role_entries(session, request.app[CONFIG], view.account.id)
    return json_response(body)


@routes.post(BASE + "/{id}/moderators")
async def add_moderator(request: web.Request) -> web.Response:
    """Appoint a member as moderator (or, with ``role=owner``, co-owner). Owners and staff."""
    viewer = await require_user(request, "write:groups")
    params = await read_params(request)
    account_id = params.id("account_id")
    if account_id is None:
        raise Unprocessable("account_id: is required")
    role = params.text("role", "moderator", max_len=16) or "moderator"
    if role not in rules.GROUP_ROLES:
        raise Unprocessable("role: must be owner or moderator")
    async with request.app[SESSIONS]() as session:
        view = await _local_group(session, request, viewer)
        await _require_owner(session, view, viewer)
        target = await _load_account(session, account_id)
        await rules.set_role(session, view, target.id, role)
        await session.commit()
        since = await session.scalar(
            select(Follow.created_at).where(Follow.account_id == target.id, Follow.target_account_id == view.account.id)
        )
    log.info("group %s: account %s given role %s by account %s", view.account.id, target.id, role, viewer.account_id)
    return json_response(_member_entry(request.app[CONFIG], target, role, since))


@routes.delete(BASE + "/{id}/moderators/{account_id}")
async def remove_moderator(request: web.Request) -> web.Response:
    """Remove a role (owners and staff; anyone may step down). The last owner stays (422)."""
    viewer = await require_user(request, "write:groups")
    async with request.app[SESSIONS]() as session:
        view = await _local_group(session, request, viewer)
        target_id = path_id(request, "account_id")
        if target_id != viewer.account_id:
            await _require_owner(session, view, viewer)
        if await rules.remove_role(session, view, target_id) is None:
            raise NotFound("Record not found")
        await session.commit()
        relationship = await _relationship(session, view.account.id, target_id)
    log.info("group %s: account %s role removed by account %s", view.account.id, target_id, viewer.account_id)
    return json_response(relationship)


# ---------------------------------------------------------------------------- bans


def _ban_entry(config: Config, ban: GroupBan, account: Account) -> dict[str, Any]:
    return {
        "id": str(ban.id),
        "account": render_account(config, account),
        "reason": ban.reason,
        "created_at": iso(ban.created_at),
    }


@routes.get(BASE + "/{id}/bans")
async def bans(request: web.Request) -> web.Response:
    viewer = await require_user(request, "read:groups")
    params = await read_params(request)
    page = page_params(params, default=40, maximum=80)
    async with request.app[SESSIONS]() as session:
        view = await _local_group(session, request, viewer)
        await _require_moderator(session, view, viewer)
        query: Any = (
            select(GroupBan, Account)
            .join(Account, Account.id == GroupBan.account_id)
            .where(GroupBan.group_id == view.account.id)
        )
        rows = (await session.execute(paginate(query, GroupBan.id, page))).all()
        rows = order_newest_first(list(rows), page, key=lambda r: r[0].id)
    config = request.app[CONFIG]
    body = [_ban_entry(config, ban, account) for ban, account in rows]
    return json_response(body, headers=link_header(request, [r[0].id for r in rows], page))


@routes.post(BASE + "/{id}/bans")
async def add_ban(request: web.Request) -> web.Response:
    """Ban an account: ends its membership, roles and requests; it cannot join again."""
    viewer = await require_user(request, "write:groups")
    params = await read_params(request)
    account_id = params.id("account_id")
    if account_id is None:
        raise Unprocessable("account_id: is required")
    reason = params.text("reason", max_len=1000) or ""
    async with request.app[SESSIONS]() as session:
        view = await _local_group(session, request, viewer)
        actor_role = await _require_moderator(session, view, viewer)
        if account_id == viewer.account_id:
            raise Unprocessable("account_id: you cannot ban yourself")
        target = await _load_account(session, account_id)
        if target.id == view.account.id or target.is_group:
            raise Unprocessable("account_id: a group cannot be banned from a group")
        target_role = await rules.role_in(session, view.account.id, target.id)
        if target_role == "moderator" and actor_role != "owner" and not viewer.is_staff:
            raise Forbidden("only the group's owners may ban a moderator")
        actor = await _viewer_account(session, viewer)
        await outbox.answer_follow(session, request.app[CONFIG], view.account, target.id, accepted=False)
        await rules.ban(session, view, target, by=actor, reason=reason)
        await session.commit()
        ban = (
            await session.execute(
                select(GroupBan).where(GroupBan.group_id == view.account.id, GroupBan.account_id == target.id)
            )
        ).scalar_one()
    log.info("group %s: account %s banned by account %s", view.account.id, target.id, viewer.account_id)
    return json_response(_ban_entry(request.app[CONFIG], ban, target))


@routes.delete(BASE + "/{id}/bans/{account_id}")
async def remove_ban(request: web.Request) -> web.Response:
    viewer = await require_user(request, "write:groups")
    async with request.app[SESSIONS]() as session:
        view = await _local_group(session, request, viewer)
        await _require_moderator(session, view, viewer)
        target_id = path_id(request, "account_id")
        if not await rules.unban(session, view.account.id, target_id):
            raise NotFound("Record not found")
        await session.commit()
        relationship = await _relationship(session, view.account.id, target_id)
    log.info("group %s: account %s unbanned by account %s", view.account.id, target_id, viewer.account_id)
    return json_response(relationship)


# ---------------------------------------------------------------------------- invites


@routes.post(BASE + "/{id}/invites")
async def create_invite(request: web.Request) -> web.Response:
    """A shareable code (``max_uses``, ``expires_in`` seconds) or an invite naming ``account_id``."""
    viewer = await require_user(request, "write:groups")
    params = await read_params(request)
    account_id = params.id("account_id")
    max_uses = params.integer("max_uses", None, min=1, max=MAX_INVITE_USES)
    expires_in = params.integer("expires_in", None, min=MIN_INVITE_SECONDS, max=MAX_INVITE_SECONDS)
    expires_at = now() + timedelta(seconds=expires_in) if expires_in is not None else None
    async with request.app[SESSIONS]() as session:
        view = await _local_group(session, request, viewer)
        await _require_moderator(session, view, viewer)
        actor = await _viewer_account(session, viewer)
        invitee = await _load_account(session, account_id) if account_id is not None else None
        invite = await rules.create_invite(
            session,
            view,
            by=actor,
            code=None if invitee is not None else new_code(12),
            account_id=invitee.id if invitee is not None else None,
            max_uses=max_uses,
            expires_at=expires_at,
        )
        await session.commit()
    log.info("group %s: invite %s created by account %s", view.account.id, invite.id, viewer.account_id)
    return json_response(render_invite(request.app[CONFIG], invite, invitee))


@routes.get(BASE + "/{id}/invites")
async def invites(request: web.Request) -> web.Response:
    """Invites still usable (not expired, not used up), newest first (moderators)."""
    viewer = await require_user(request, "read:groups")
    async with request.app[SESSIONS]() as session:
        view = await _local_group(session, request, viewer)
        await _require_moderator(session, view, viewer)
        moment = now()
        rows = await session.execute(
            select(GroupInvite, Account)
            .outerjoin(Account, Account.id == GroupInvite.account_id)
            .where(
                GroupInvite.group_id == view.account.id,
                or_(GroupInvite.expires_at.is_(None), GroupInvite.expires_at > moment),
                or_(GroupInvite.max_uses.is_(None), GroupInvite.uses < GroupInvite.max_uses),
            )
            .order_by(GroupInvite.id.desc())
            .limit(200)
        )
        body = [render_invite(request.app[CONFIG], invite, invitee) for invite, invitee in rows]
    return json_response(body)


@routes.delete(BASE + "/{id}/invites/{invite_id}")
async def revoke_invite(request: web.Request) -> web.Response:
    viewer = await require_user(request, "write:groups")
    async with request.app[SESSIONS]() as session:
        view = await _local_group(session, request, viewer)
        await _require_moderator(session, view, viewer)
        invite = await session.get(GroupInvite, path_id(request, "invite_id"))
        if invite is None or invite.group_id != view.account.id:
            raise NotFound("Record not found")
        await session.delete(invite)
        await session.commit()
    log.info("group %s: invite %s revoked by account %s", view.account.id, invite.id, viewer.account_id)
    return json_response({})
