"""Accounts and relationships on the Mastodon-compatible client API, the admin account API,
and Hearthside's account-lifecycle extensions.

Design note
-----------
Handlers parse, check who is asking, call the rules in ``server.relationships`` and
``server.account_lifecycle``, commit once and render. Every request is one transaction; input
is validated before anything is written.

Visibility and privacy choices (Mastodon's where it has one):

* a deleted account is 404 everywhere; a suspended one is shown with ``"suspended": true`` and
  empty profile text, its followers and following lists are empty, and it cannot be followed.
* followers/following lists are empty when the account blocks the viewer (Mastodon's rule).
  A ``members_only`` group's member list (its followers) is shown to its members and to staff
  only, and such groups are left out of a person's following list for everyone but that
  person and staff: membership of a closed support group is sensitive.
* the admin API shows email addresses to admins only (sign-up is pseudonymous and moderators
  do not need them); moderators may not filter by email.
* staff cannot suspend themselves, nobody suspends an admin (demote first), and only admins
  act on moderators or change roles.

Account paths take ``{id:[0-9]+}`` so that literal siblings other modules may register
(``/api/v1/accounts/search``) are never shadowed.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from html import escape
from typing import Any

from aiohttp import web
from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from federation.content import MentionTarget, extract_mentions, render_markdown, sanitize_html
from server import account_lifecycle as lifecycle
from server import groups, outbox
from server import relationships as rel
from server.accounts import HASHER
from server.auth import (
    SCOPES_SUPPORTED,
    Viewer,
    authenticate,
    forget_tokens,
    require_staff,
    require_user,
    scope_allows,
)
from server.config import Config
from server.entities import acct, iso, render_account, render_admin_account, render_token
from server.errors import Conflict, Forbidden, NotFound, Unauthorized, Unprocessable
from server.models import Account, Block, Follow, Group, Invite, Mute, OAuthApp, OAuthToken, User
from server.pagination import Page, link_header, order_newest_first, page_params, paginate
from server.web import CONFIG, SESSIONS, Params, Routes, json_response, now, parse_id, path_id, read_params

log = logging.getLogger(__name__)
routes = Routes()

ACCOUNT = "/api/v1/accounts/{id:[0-9]+}"
ADMIN_ACCOUNT = "/api/v1/admin/accounts/{id:[0-9]+}"
HS_ADMIN_ACCOUNT = "/api/v1/hearthside/admin/accounts/{id:[0-9]+}"

MAX_DISPLAY_NAME = 100
MAX_NOTE = 500
MAX_FIELDS = 4
MAX_FIELD_CHARS = 255
MAX_NOTE_MENTIONS = 20
_PROBE_FIELD_INDEXES = 16
_URL = re.compile(r"https?://[^\s<>\"']+")


async def _commit(session: AsyncSession) -> None:
    """Commit; a unique-constraint race with a concurrent request becomes a 409 to retry."""
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        raise Conflict("This changed at the same moment in another request; try again") from None


async def _me(session: AsyncSession, viewer: Viewer) -> tuple[User, Account]:
    row = (
        await session.execute(
            select(User, Account).join(Account, Account.id == User.account_id).where(User.id == viewer.user_id)
        )
    ).one_or_none()
    if row is None:
        raise NotFound("Record not found")
    return row[0], row[1]


async def _forget_all(session: AsyncSession, user_id: int) -> None:
    """Drop every cached lookup of the user's tokens, refusals included (``forget_tokens``
    by user id only reaches lookups that succeeded)."""
    forget_tokens(user_id=user_id)
    for token_hash in (
        await session.execute(select(OAuthToken.token_hash).where(OAuthToken.user_id == user_id))
    ).scalars():
        forget_tokens(token_digest=token_hash)


async def _my_account(session: AsyncSession, viewer: Viewer) -> Account:
    return (await _me(session, viewer))[1]


async def _credential(session: AsyncSession, config: Config, account: Account, role: str) -> dict[str, Any]:
    """Mastodon's ``CredentialAccount``: the account plus ``source`` and ``role``."""
    data = render_account(config, account, source=True, role=role)
    data["source"]["fields"] = lifecycle.plain_fields(account)
    pending = await session.execute(
        select(func.count())
        .select_from(Follow)
        .where(Follow.target_account_id == account.id, Follow.state == "pending")
    )
    data["source"]["follow_requests_count"] = pending.scalar_one()
    return data


def _accounts_page(
    request: web.Request, rows: list[tuple[int, Account]], page: Page, extra: Any = None
) -> web.Response:
    """A list of accounts paginated by the id of the row that lists them (follow, block...)."""
    config = request.app[CONFIG]
    body = []
    for row_id, account in rows:
        item = render_account(config, account)
        if extra is not None:
            item.update(extra(row_id))
        body.append(item)
    return json_response(body, headers=link_header(request, [row_id for row_id, _ in rows], page))


# ---------------------------------------------------------------------------- sign-up


@routes.post("/api/v1/accounts")
async def register(request: web.Request) -> web.Response:
    """Mastodon sign-up. An app token (client_credentials) or no token at all is accepted."""
    viewer = await authenticate(request, "write:accounts", required=False)
    params = await read_params(request)
    form = lifecycle.SignUp(
        username=params.text("username", max_len=1000),
        password=params.text("password", max_len=10_000),
        email=params.text("email", max_len=1000),
        agreement=params.flag("agreement", False),
        locale=params.text("locale", max_len=100),
        reason=params.text("reason", max_len=10_000),
        invite_code=params.text("invite_code", max_len=200),
    )
    config = request.app[CONFIG]
    async with request.app[SESSIONS]() as session:
        scopes = lifecycle.REGISTRATION_SCOPES
        if viewer is not None and viewer.app_id is not None:
            app = await session.get(OAuthApp, viewer.app_id)
            granted = [s for s in (app.scopes if app else "").split() if s in SCOPES_SUPPORTED]
            scopes = " ".join(granted) or scopes
        app_id = viewer.app_id if viewer is not None else None
        try:
            done = await lifecycle.register(
                session, request.app[HASHER], config, form, app_id=app_id, scopes=scopes, at=now()
            )
            await session.commit()
        except IntegrityError:
            await session.rollback()
            raise Conflict("This username or email was taken at the same moment; try again") from None
    log.info("sign-up: account %s (registrations %s)", done.account.id, config.get("instance", "registrations"))
    return json_response(render_token(done.token, done.scopes, done.created_at))


# ---------------------------------------------------------------------------- own profile


@routes.get("/api/v1/accounts/verify_credentials")
async def verify_credentials(request: web.Request) -> web.Response:
    viewer = await authenticate(request)
    assert viewer is not None
    if viewer.account_id is None:
        raise Unauthorized("This method requires an authenticated user")
    if not (scope_allows(viewer.scopes, "read:accounts") or "profile" in viewer.scopes):
        raise Forbidden("This action is outside the authorized scopes")
    async with request.app[SESSIONS]() as session:
        user, account = await _me(session, viewer)
        body = await _credential(session, request.app[CONFIG], account, user.role)
    return json_response(body)


async def _profile_params(request: web.Request) -> Params:
    try:
        params = await read_params(request)
    except Unprocessable as exc:
        if exc.message.startswith(("avatar:", "header:")):
            raise Unprocessable(f"{exc.message.split(':')[0]}: media uploads are not supported yet") from None
        raise
    for name in ("avatar", "header"):
        if params.raw(name) not in (None, ""):
            raise Unprocessable(f"{name}: media uploads are not supported yet")
    return params


def _field_pairs(params: Params, problems: lifecycle.Problems) -> list[tuple[str, str]] | None:
    """``fields_attributes`` as a form (``[0][name]``) or JSON (list, or object by index)."""
    pairs: list[tuple[Any, Any]] = []
    form_style = False
    for index in range(_PROBE_FIELD_INDEXES):
        name = params.raw(f"fields_attributes[{index}][name]")
        value = params.raw(f"fields_attributes[{index}][value]")
        if name is not None or value is not None:
            form_style = True
            pairs.append((name, value))
    if not form_style:
        if "fields_attributes" not in params:
            return None
        items = params.array("fields_attributes")
        if len(items) == 1 and isinstance(items[0], dict) and all(str(k).isdigit() for k in items[0]):
            items = [items[0][k] for k in sorted(items[0], key=lambda k: int(k))]
        for item in items:
            if not isinstance(item, dict):
                problems.add("fields_attributes", "ERR_INVALID", "must be a list of {name, value} objects")
                return None
            pairs.append((item.get("name"), item.get("value")))
    fields: list[tuple[str, str]] = []
    for name, value in pairs:
        name = "" if name is None else name
        value = "" if value is None else value
        if not isinstance(name, str) or not isinstance(value, str) or "\x00" in name + value:
            problems.add("fields_attributes", "ERR_INVALID", "names and values must be text")
            return None
        name, value = name.strip(), value.strip()
        if not name and not value:
            continue
        if len(name) > MAX_FIELD_CHARS or len(value) > MAX_FIELD_CHARS:
            problems.add("fields_attributes", "ERR_TOO_LONG", f"is too long (maximum is {MAX_FIELD_CHARS} characters)")
            return None
        fields.append((name, value))
    if len(fields) > MAX_FIELDS:
        problems.add("fields_attributes", "ERR_TOO_LONG", f"has too many fields (maximum is {MAX_FIELDS})")
        return None
    return fields


def _has_control_chars(text: str) -> bool:
    return any(unicodedata.category(c) == "Cc" for c in text)


def _field_html(value: str) -> str:
    """A field value as Mastodon shows it: escaped text with its http(s) URLs linked."""
    parts: list[str] = []
    position = 0
    for match in _URL.finditer(value):
        url = match.group(0).rstrip(".,;:!?)")
        end = match.start() + len(url)
        parts.append(escape(value[position : match.start()]))
        parts.append(f'<a href="{escape(url)}" rel="nofollow noopener noreferrer me">{escape(url)}</a>')
        position = end
    parts.append(escape(value[position:]))
    return sanitize_html("".join(parts))


async def _note_html(session: AsyncSession, config: Config, source: str) -> str:
    wanted = extract_mentions(source)[:MAX_NOTE_MENTIONS]
    ours = config.domain.lower()
    found: dict[tuple[str, str | None], MentionTarget] = {}
    for username, domain in wanted:
        on_domain = "" if domain is None or domain == ours else domain
        account = (
            await session.execute(
                select(Account).where(
                    Account.username_lower == username.lower(),
                    Account.domain == on_domain,
                    Account.deleted_at.is_(None),
                )
            )
        ).scalar_one_or_none()
        if account is not None:
            found[(username.lower(), domain)] = MentionTarget(
                account.id, account.username, acct(account), render_account(config, account)["url"]
            )
    rendered = render_markdown(
        source,
        resolve_mention=lambda username, domain: found.get((username.lower(), domain)),
        tag_url=lambda tag: f"{config.base_url}/tags/{tag}",
    )
    return rendered.html


@routes.patch("/api/v1/accounts/update_credentials")
async def update_credentials(request: web.Request) -> web.Response:
    viewer = await require_user(request, "write:accounts")
    params = await _profile_params(request)
    problems = lifecycle.Problems()
    display_name = params.text("display_name", max_len=100_000)
    if display_name is not None:
        display_name = display_name.strip()
        if len(display_name) > MAX_DISPLAY_NAME:
            problems.add("display_name", "ERR_TOO_LONG", f"is too long (maximum is {MAX_DISPLAY_NAME} characters)")
        elif _has_control_chars(display_name):
            problems.add("display_name", "ERR_INVALID", "must not contain control characters")
    note = params.text("note", max_len=100_000)
    if note is not None and len(note) > MAX_NOTE:
        problems.add("note", "ERR_TOO_LONG", f"is too long (maximum is {MAX_NOTE} characters)")
    locked = params.flag("locked")
    bot = params.flag("bot")
    discoverable = params.flag("discoverable")
    fields = _field_pairs(params, problems)
    problems.raise_if_any()
    config = request.app[CONFIG]
    async with request.app[SESSIONS]() as session:
        user, account = await _me(session, viewer)
        if display_name is not None:
            account.display_name = display_name
        if note is not None:
            account.note_source = note
            account.note = await _note_html(session, config, note)
        if locked is not None:
            if account.locked and not locked:
                pending = await rel.pending_request_ids(session, account.id)
                await rel.authorize_all_requests(session, account)
                for follower_id in pending:
                    await outbox.answer_follow(session, config, account, follower_id, accepted=True)
            account.locked = locked
        if bot is not None:
            account.bot = bot
        if discoverable is not None:
            account.discoverable = discoverable
        if fields is not None:
            account.fields = [{"name": n, "value": _field_html(v), "verified_at": None} for n, v in fields]
        account.updated_at = now()
        await outbox.federate_profile(session, config, account)
        await _commit(session)
        body = await _credential(session, config, account, user.role)
    return json_response(body)


# ---------------------------------------------------------------------------- showing accounts


@routes.get("/api/v1/accounts/lookup")
async def lookup(request: web.Request) -> web.Response:
    """``acct`` is ``name``, ``@name``, ``name@ourdomain`` or a known remote ``name@domain``."""
    await authenticate(request, "read:accounts", required=False)
    params = await read_params(request)
    handle = params.required_str("acct", max_len=400).strip().removeprefix("@")
    config = request.app[CONFIG]
    username, _, domain = handle.partition("@")
    domain = domain.lower()
    if domain == config.domain.lower():
        domain = ""
    if not username or "@" in domain:
        raise NotFound("Record not found")
    async with request.app[SESSIONS]() as session:
        account = (
            await session.execute(
                select(Account).where(
                    Account.username_lower == username.lower(), Account.domain == domain, Account.deleted_at.is_(None)
                )
            )
        ).scalar_one_or_none()
    if account is None:
        raise NotFound("Record not found")
    return json_response(render_account(config, account))


@routes.get("/api/v1/accounts/relationships")
async def relationships(request: web.Request) -> web.Response:
    viewer = await require_user(request, "read:follows")
    params = await read_params(request)
    ids = [parse_id(value, "id[]") for value in params.array("id")]
    with_suspended = params.flag("with_suspended", False)
    async with request.app[SESSIONS]() as session:
        query = select(Account.id).where(Account.id.in_(ids), Account.deleted_at.is_(None))
        if not with_suspended:
            query = query.where(Account.suspended_at.is_(None))
        existing = set((await session.execute(query)).scalars()) if ids else set()
        body = await rel.relationships(session, viewer.require_account(), [i for i in ids if i in existing], at=now())
    return json_response(body)


@routes.get("/api/v1/accounts")
async def show_many(request: web.Request) -> web.Response:
    """Several accounts at once (``id[]``), skipping unknown and deleted ones."""
    await authenticate(request, "read:accounts", required=False)
    params = await read_params(request)
    ids = list(dict.fromkeys(parse_id(value, "id[]") for value in params.array("id")))
    async with request.app[SESSIONS]() as session:
        found = {
            a.id: a
            for a in (
                await session.execute(select(Account).where(Account.id.in_(ids), Account.deleted_at.is_(None)))
            ).scalars()
        }
    config = request.app[CONFIG]
    return json_response([render_account(config, found[i]) for i in ids if i in found])


@routes.get(ACCOUNT)
async def show(request: web.Request) -> web.Response:
    await authenticate(request, "read:accounts", required=False)
    async with request.app[SESSIONS]() as session:
        account = await rel.load_account(session, path_id(request))
    return json_response(render_account(request.app[CONFIG], account))


async def _collections_hidden(session: AsyncSession, account: Account, viewer: Viewer | None) -> bool:
    if account.suspended_at is not None:
        return True
    if viewer is not None and viewer.account_id == account.id:
        return False
    if viewer is not None and viewer.account_id is not None:
        if await rel.is_blocking(session, account.id, viewer.account_id):
            return True
    if account.is_group and not (viewer is not None and viewer.is_staff):
        settings = await session.get(Group, account.id)
        viewer_account = viewer.account_id if viewer is not None else None
        if (
            settings is not None
            and settings.members_only
            and not await groups.is_member(session, account.id, viewer_account)
        ):
            return True
    return False


@routes.get(ACCOUNT + "/followers")
async def followers(request: web.Request) -> web.Response:
    viewer = await authenticate(request, "read:accounts", required=False)
    params = await read_params(request)
    page = page_params(params, default=40, maximum=80)
    async with request.app[SESSIONS]() as session:
        account = await rel.load_account(session, path_id(request))
        if await _collections_hidden(session, account, viewer):
            return json_response([])
        query: Any = (
            select(Follow.id, Account)
            .join(Account, Account.id == Follow.account_id)
            .where(
                Follow.target_account_id == account.id,
                Follow.state == "accepted",
                Account.deleted_at.is_(None),
                Account.suspended_at.is_(None),
            )
        )
        rows = list((await session.execute(paginate(query, Follow.id, page))).all())
    return _accounts_page(request, order_newest_first(rows, page, key=lambda r: r[0]), page)


@routes.get(ACCOUNT + "/following")
async def following(request: web.Request) -> web.Response:
    viewer = await authenticate(request, "read:accounts", required=False)
    params = await read_params(request)
    page = page_params(params, default=40, maximum=80)
    async with request.app[SESSIONS]() as session:
        account = await rel.load_account(session, path_id(request))
        if await _collections_hidden(session, account, viewer):
            return json_response([])
        query: Any = (
            select(Follow.id, Account)
            .join(Account, Account.id == Follow.target_account_id)
            .outerjoin(Group, Group.account_id == Account.id)
            .where(
                Follow.account_id == account.id,
                Follow.state == "accepted",
                Account.deleted_at.is_(None),
                Account.suspended_at.is_(None),
            )
        )
        own = viewer is not None and (viewer.account_id == account.id or viewer.is_staff)
        if not own:
            query = query.where(or_(Group.account_id.is_(None), Group.members_only.is_(False)))
        rows = list((await session.execute(paginate(query, Follow.id, page))).all())
    return _accounts_page(request, order_newest_first(rows, page, key=lambda r: r[0]), page)


# ---------------------------------------------------------------------------- relationship actions


async def _act(request: web.Request, scope: str, action: Any, *, allow_suspended: bool = True) -> web.Response:
    """Load viewer and target, run ``action(session, me, target, params)``, answer the
    ``Relationship`` afterwards."""
    viewer = await require_user(request, scope)
    params = await read_params(request)
    target_id = path_id(request)
    async with request.app[SESSIONS]() as session:
        me = await _my_account(session, viewer)
        target = await rel.load_account(session, target_id, allow_suspended=allow_suspended)
        try:
            await action(session, me, target, params)
            await session.commit()
        except IntegrityError:
            await session.rollback()
            raise Conflict("This changed at the same moment in another request; try again") from None
        body = await rel.relationship(session, me.id, target.id, at=now())
    return json_response(body)


@routes.post(ACCOUNT + "/follow")
async def follow(request: web.Request) -> web.Response:
    from server.domains import bare_host, suspended_domain
    from server.federation import FEDERATION

    async def action(session: AsyncSession, me: Account, target: Account, params: Params) -> None:
        if not target.local and await suspended_domain(request.app[FEDERATION], target.domain):
            # A suspended domain, or one not allowed in allowlist mode: nothing would reach it.
            raise Forbidden(f"{bare_host(target.domain)} does not federate with this instance")
        await rel.follow(
            session,
            me,
            target,
            at=now(),
            reblogs=params.flag("reblogs"),
            notify_posts=params.flag("notify"),
            invite_code=(params.text("invite_code", max_len=64) or "").strip() or None,
        )
        await outbox.federate_follow(session, request.app[CONFIG], me, target)

    return await _act(request, "write:follows", action)


@routes.post(ACCOUNT + "/unfollow")
async def unfollow(request: web.Request) -> web.Response:
    async def action(session: AsyncSession, me: Account, target: Account, params: Params) -> None:
        follow_uri = await rel.follow_uri(session, me.id, target.id)
        await rel.unfollow(session, me, target)
        if follow_uri is not None or not target.local:
            await outbox.federate_unfollow(session, request.app[CONFIG], me, target, follow_uri)

    return await _act(request, "write:follows", action)


@routes.post(ACCOUNT + "/block")
async def block(request: web.Request) -> web.Response:
    async def action(session: AsyncSession, me: Account, target: Account, params: Params) -> None:
        await rel.block(session, me, target, at=now())
        await outbox.federate_block(session, request.app[CONFIG], me, target, undo=False)

    return await _act(request, "write:blocks", action)


@routes.post(ACCOUNT + "/unblock")
async def unblock(request: web.Request) -> web.Response:
    async def action(session: AsyncSession, me: Account, target: Account, params: Params) -> None:
        if await rel.is_blocking(session, me.id, target.id):
            await outbox.federate_block(session, request.app[CONFIG], me, target, undo=True)
        await rel.unblock(session, me, target)

    return await _act(request, "write:blocks", action)


@routes.post(ACCOUNT + "/mute")
async def mute(request: web.Request) -> web.Response:
    async def action(session: AsyncSession, me: Account, target: Account, params: Params) -> None:
        notifications = params.flag("notifications", True)
        duration = params.integer("duration", 0, min=0, max=rel.MAX_MUTE_SECONDS)
        assert notifications is not None and duration is not None
        await rel.mute(session, me, target, notifications=notifications, duration=duration, at=now())

    return await _act(request, "write:mutes", action)


@routes.post(ACCOUNT + "/unmute")
async def unmute(request: web.Request) -> web.Response:
    async def action(session: AsyncSession, me: Account, target: Account, params: Params) -> None:
        await rel.unmute(session, me, target)

    return await _act(request, "write:mutes", action)


@routes.post(ACCOUNT + "/remove_from_followers")
async def remove_from_followers(request: web.Request) -> web.Response:
    async def action(session: AsyncSession, me: Account, target: Account, params: Params) -> None:
        await outbox.answer_follow(session, request.app[CONFIG], me, target.id, accepted=False)
        await rel.remove_from_followers(session, me, target.id)

    return await _act(request, "write:follows", action)


@routes.post("/api/v1/follow_requests/{id:[0-9]+}/authorize")
async def authorize_follow_request(request: web.Request) -> web.Response:
    async def action(session: AsyncSession, me: Account, target: Account, params: Params) -> None:
        await rel.authorize_request(session, me, target.id)
        await outbox.answer_follow(session, request.app[CONFIG], me, target.id, accepted=True)

    return await _act(request, "write:follows", action)


@routes.post("/api/v1/follow_requests/{id:[0-9]+}/reject")
async def reject_follow_request(request: web.Request) -> web.Response:
    async def action(session: AsyncSession, me: Account, target: Account, params: Params) -> None:
        await outbox.answer_follow(session, request.app[CONFIG], me, target.id, accepted=False)
        await rel.reject_request(session, me, target.id)

    return await _act(request, "write:follows", action)


@routes.get("/api/v1/follow_requests")
async def follow_requests(request: web.Request) -> web.Response:
    viewer = await require_user(request, "read:follows")
    params = await read_params(request)
    page = page_params(params, default=40, maximum=80)
    async with request.app[SESSIONS]() as session:
        query: Any = (
            select(Follow.id, Account)
            .join(Account, Account.id == Follow.account_id)
            .where(
                Follow.target_account_id == viewer.require_account(),
                Follow.state == "pending",
                Account.deleted_at.is_(None),
                Account.suspended_at.is_(None),
            )
        )
        rows = list((await session.execute(paginate(query, Follow.id, page))).all())
    return _accounts_page(request, order_newest_first(rows, page, key=lambda r: r[0]), page)


@routes.get("/api/v1/blocks")
async def blocks(request: web.Request) -> web.Response:
    viewer = await require_user(request, "read:blocks")
    params = await read_params(request)
    page = page_params(params, default=40, maximum=80)
    async with request.app[SESSIONS]() as session:
        query: Any = (
            select(Block.id, Account)
            .join(Account, Account.id == Block.target_account_id)
            .where(Block.account_id == viewer.require_account(), Account.deleted_at.is_(None))
        )
        rows = list((await session.execute(paginate(query, Block.id, page))).all())
    return _accounts_page(request, order_newest_first(rows, page, key=lambda r: r[0]), page)


@routes.get("/api/v1/mutes")
async def mutes(request: web.Request) -> web.Response:
    """Muted accounts, each with Mastodon's ``mute_expires_at``."""
    viewer = await require_user(request, "read:mutes")
    params = await read_params(request)
    page = page_params(params, default=40, maximum=80)
    moment = now()
    async with request.app[SESSIONS]() as session:
        query: Any = (
            select(Mute.id, Account, Mute.expires_at)
            .join(Account, Account.id == Mute.target_account_id)
            .where(Mute.account_id == viewer.require_account(), Account.deleted_at.is_(None), rel.active_mute(moment))
        )
        rows = list((await session.execute(paginate(query, Mute.id, page))).all())
    rows = order_newest_first(rows, page, key=lambda r: r[0])
    expiry = {mute_id: expires for mute_id, _a, expires in rows}
    return _accounts_page(
        request,
        [(mute_id, account) for mute_id, account, _e in rows],
        page,
        extra=lambda mute_id: {"mute_expires_at": iso(expiry[mute_id])},
    )


# ---------------------------------------------------------------------------- lifecycle (Hearthside)


@routes.post("/api/v1/hearthside/account/delete")
async def delete_own_account(request: web.Request) -> web.Response:
    """Delete one's own account (``password`` required). The username stays reserved."""
    viewer = await require_user(request, "write:accounts")
    params = await read_params(request)
    password = params.text("password", max_len=10_000)
    config = request.app[CONFIG]
    async with request.app[SESSIONS]() as session:
        user, account = await _me(session, viewer)
        await lifecycle.verify_password(session, config, request.app[HASHER], user, password)
        # Tell remote followers and followees first: the deletion severs those follows.
        await outbox.federate_account_deleted(session, config, account)
        await lifecycle.delete_account(session, user, account, at=now())
        await _commit(session)
    forget_tokens(user_id=user.id)
    log.info("account %s deleted by its owner", account.id)
    return json_response({})


@routes.get("/api/v1/hearthside/account/export")
async def export_own_account(request: web.Request) -> web.Response:
    viewer = await require_user(request, "read:accounts")
    config = request.app[CONFIG]
    moment = now()
    async with request.app[SESSIONS]() as session:
        user, account = await _me(session, viewer)
        archive = await lifecycle.export_account(session, config, user, account, at=moment)
    filename = f"hearthside-export-{account.username}-{moment.strftime('%Y%m%d')}.json"
    return json_response(archive, headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@routes.post("/api/v1/hearthside/account/change_password")
async def change_password(request: web.Request) -> web.Response:
    """Change one's password; every other token of the account is revoked."""
    viewer = await require_user(request, "write:accounts")
    params = await read_params(request)
    current = params.text("current_password", max_len=10_000)
    new = params.text("new_password", max_len=10_000)
    config = request.app[CONFIG]
    async with request.app[SESSIONS]() as session:
        user, _account = await _me(session, viewer)
        await lifecycle.verify_password(session, config, request.app[HASHER], user, current, field="current_password")
        await lifecycle.change_password(
            session, request.app[HASHER], user, new, keep_token_id=viewer.token_id, at=now()
        )
        await _commit(session)
    forget_tokens(user_id=user.id)
    log.info("password changed for user %s", user.id)
    return json_response({})


# ---------------------------------------------------------------------------- admin


async def admin_target(session: AsyncSession, account_id: int) -> tuple[Account, User | None]:
    """The account an admin endpoint names, with its user when local; 404 when gone."""
    row = (
        await session.execute(
            select(Account, User).outerjoin(User, User.account_id == Account.id).where(Account.id == account_id)
        )
    ).one_or_none()
    if row is None or row[0].deleted_at is not None:
        raise NotFound("Record not found")
    return row[0], row[1]


async def _inviters(session: AsyncSession, users: list[User | None]) -> dict[int, int | None]:
    invite_ids = {u.invite_id for u in users if u is not None and u.invite_id is not None}
    if not invite_ids:
        return {}
    rows = await session.execute(select(Invite.id, Invite.created_by_account_id).where(Invite.id.in_(invite_ids)))
    return {invite_id: inviter for invite_id, inviter in rows}


def _admin_entity(
    config: Config, viewer: Viewer, account: Account, user: User | None, inviters: dict[int, int | None]
) -> dict[str, Any]:
    inviter = inviters.get(user.invite_id) if user is not None and user.invite_id is not None else None
    return render_admin_account(config, account, user, show_email=viewer.role == "admin", invited_by_account_id=inviter)


async def _admin_answer(request: web.Request, session: AsyncSession, viewer: Viewer, account_id: int) -> web.Response:
    account, user = await admin_target(session, account_id)
    inviters = await _inviters(session, [user])
    return json_response(_admin_entity(request.app[CONFIG], viewer, account, user, inviters))


@routes.get("/api/v1/admin/accounts")
async def admin_accounts(request: web.Request) -> web.Response:
    """Mastodon's v1 admin account list with its filters (``pending``, ``active``,
    ``suspended``, ``local``, ``remote``, ``by_domain``, ``staff``, ``username``, ``email``)."""
    viewer = await require_staff(request, "admin:read:accounts")
    params = await read_params(request)
    page = page_params(params, default=100, maximum=200)
    query: Any = (
        select(Account, User).outerjoin(User, User.account_id == Account.id).where(Account.deleted_at.is_(None))
    )
    if params.flag("local", False):
        query = query.where(Account.domain == "")
    if params.flag("remote", False):
        query = query.where(Account.domain != "")
    by_domain = params.text("by_domain", max_len=255)
    if by_domain:
        query = query.where(Account.domain == by_domain.strip().lower())
    if params.flag("pending", False):
        query = query.where(User.approved.is_(False))
    if params.flag("active", False):
        query = query.where(Account.suspended_at.is_(None), or_(User.id.is_(None), User.approved.is_(True)))
    if params.flag("suspended", False):
        query = query.where(Account.suspended_at.is_not(None))
    if params.flag("disabled", False):
        query = query.where(User.disabled.is_(True))
    if params.flag("silenced", False):
        query = query.where(Account.silenced_at.is_not(None))
    if params.flag("sensitized", False):
        query = query.where(Account.sensitized_at.is_not(None))
    if params.flag("staff", False):
        query = query.where(User.role.in_(("admin", "moderator")))
    username = params.text("username", max_len=64)
    if username:
        query = query.where(Account.username_lower.startswith(username.lower(), autoescape=True))
    display_name = params.text("display_name", max_len=100)
    if display_name:
        query = query.where(func.lower(Account.display_name).contains(display_name.lower(), autoescape=True))
    email = params.text("email", max_len=320)
    if email:
        if viewer.role != "admin":
            raise Forbidden("Only admins may search by email")
        query = query.where(User.email == email.strip().lower())
    async with request.app[SESSIONS]() as session:
        rows = list((await session.execute(paginate(query, Account.id, page))).all())
        rows = order_newest_first(rows, page, key=lambda r: r[0].id)
        inviters = await _inviters(session, [u for _a, u in rows])
    config = request.app[CONFIG]
    body = [_admin_entity(config, viewer, a, u, inviters) for a, u in rows]
    return json_response(body, headers=link_header(request, [a.id for a, _u in rows], page))


@routes.get(ADMIN_ACCOUNT)
async def admin_account(request: web.Request) -> web.Response:
    viewer = await require_staff(request, "admin:read:accounts")
    async with request.app[SESSIONS]() as session:
        return await _admin_answer(request, session, viewer, path_id(request))


def _pending_user(user: User | None) -> User:
    if user is None or user.approved:
        raise Forbidden("This account is not waiting for approval")
    return user


@routes.post(ADMIN_ACCOUNT + "/approve")
async def admin_approve(request: web.Request) -> web.Response:
    viewer = await require_staff(request, "admin:write:accounts")
    async with request.app[SESSIONS]() as session:
        _account, user = await admin_target(session, path_id(request))
        pending = _pending_user(user)
        pending.approved = True
        await _commit(session)
        await _forget_all(session, pending.id)
        log.info("staff account %s approved user %s", viewer.account_id, pending.id)
        return await _admin_answer(request, session, viewer, path_id(request))


@routes.post(ADMIN_ACCOUNT + "/reject")
async def admin_reject(request: web.Request) -> web.Response:
    """Reject a pending sign-up: the account is deleted and its username is free again."""
    viewer = await require_staff(request, "admin:write:accounts")
    async with request.app[SESSIONS]() as session:
        account, user = await admin_target(session, path_id(request))
        pending = _pending_user(user)
        body = _admin_entity(request.app[CONFIG], viewer, account, pending, {})
        hashes = list(
            (await session.execute(select(OAuthToken.token_hash).where(OAuthToken.user_id == pending.id))).scalars()
        )
        await lifecycle.reject_sign_up(session, pending, account)
        await _commit(session)
    forget_tokens(user_id=pending.id)
    for token_hash in hashes:
        forget_tokens(token_digest=token_hash)
    log.info("staff account %s rejected sign-up of account %s", viewer.account_id, account.id)
    return json_response(body)


@routes.post(ADMIN_ACCOUNT + "/action")
async def admin_action(request: web.Request) -> web.Response:
    """Mastodon's account action (``server.reports.take_action``): a strike, a notification,
    an audit entry, and the reports it settles."""
    from server.reports import ACTIONS, take_action

    viewer = await require_staff(request, "admin:write:accounts")
    params = await read_params(request)
    kind = params.required_str("type", max_len=32)
    if kind not in ACTIONS:
        raise Unprocessable("type: must be one of none, sensitive, disable, silence, suspend")
    text = params.text("text", "", max_len=5000) or ""
    report_id = params.id("report_id")
    params.id("warning_preset_id")  # accepted, ignored (no presets)
    params.flag("send_email_notification")  # accepted, ignored (no e-mail)
    async with request.app[SESSIONS]() as session:
        account, user = await admin_target(session, path_id(request))
        await take_action(session, viewer, account, user, kind, text=text, report_id=report_id)
        await _commit(session)
    if user is not None:
        forget_tokens(user_id=user.id)
    log.info("staff account %s: action %s on account %s", viewer.account_id, kind, account.id)
    return json_response({})


async def _admin_undo(request: web.Request, verb: str) -> web.Response:
    from server.reports import undo_action

    viewer = await require_staff(request, "admin:write:accounts")
    async with request.app[SESSIONS]() as session:
        account, user = await admin_target(session, path_id(request))
        await undo_action(session, viewer, account, user, verb)
        await _commit(session)
        if user is not None:
            await _forget_all(session, user.id)
        log.info("staff account %s: %s on account %s", viewer.account_id, verb, account.id)
        return await _admin_answer(request, session, viewer, account.id)


@routes.post(ADMIN_ACCOUNT + "/unsuspend")
async def admin_unsuspend(request: web.Request) -> web.Response:
    return await _admin_undo(request, "unsuspend")


@routes.post(ADMIN_ACCOUNT + "/unsilence")
async def admin_unsilence(request: web.Request) -> web.Response:
    return await _admin_undo(request, "unsilence")


@routes.post(ADMIN_ACCOUNT + "/unsensitive")
async def admin_unsensitive(request: web.Request) -> web.Response:
    return await _admin_undo(request, "unsensitive")


@routes.post(ADMIN_ACCOUNT + "/enable")
async def admin_enable(request: web.Request) -> web.Response:
    return await _admin_undo(request, "enable")


@routes.post(HS_ADMIN_ACCOUNT + "/role")
async def admin_set_role(request: web.Request) -> web.Response:
    """Admins only: make a local user ``admin``, ``moderator`` or ``member``."""
    viewer = await require_staff(request, "admin:write:accounts")
    if viewer.role != "admin":
        raise Forbidden("Only admins may change roles")
    params = await read_params(request)
    role = params.required_str("role", max_len=32)
    if role not in ("admin", "moderator", "member"):
        raise Unprocessable("role: must be admin, moderator or member")
    async with request.app[SESSIONS]() as session:
        account, user = await admin_target(session, path_id(request))
        if user is None:
            raise Unprocessable("only local people have instance roles")
        if account.id == viewer.account_id:
            raise Forbidden("You cannot change your own role")
        user.role = role
        await _commit(session)
        forget_tokens(user_id=user.id)
        log.info("admin account %s set the role of account %s to %s", viewer.account_id, account.id, role)
        return await _admin_answer(request, session, viewer, account.id)


@routes.post(HS_ADMIN_ACCOUNT + "/verify")
async def admin_verify(request: web.Request) -> web.Response:
    """Give (``verified=true``, the default) or take away the verified-professional badge."""
    viewer = await require_staff(request, "admin:write:accounts")
    params = await read_params(request)
    verified = params.flag("verified", True)
    async with request.app[SESSIONS]() as session:
        account, user = await admin_target(session, path_id(request))
        if user is None or account.is_group:
            raise Unprocessable("only local people can be verified professionals")
        account.verified_professional = bool(verified)
        account.updated_at = now()
        await _commit(session)
        log.info("staff account %s set verified=%s on account %s", viewer.account_id, verified, account.id)
        return await _admin_answer(request, session, viewer, account.id)


@routes.post("/api/v1/hearthside/admin/invites")
async def admin_create_invite(request: web.Request) -> web.Response:
    """A sign-up invite: ``max_uses`` (default unlimited), ``expires_in`` seconds (default never)."""
    viewer = await require_staff(request, "admin:write:accounts")
    params = await read_params(request)
    max_uses = params.integer("max_uses", None, min=1, max=100_000)
    expires_in = params.integer("expires_in", None, min=1, max=rel.MAX_MUTE_SECONDS)
    async with request.app[SESSIONS]() as session:
        invite = await lifecycle.create_invite(
            session, by_account_id=viewer.require_account(), max_uses=max_uses, expires_in=expires_in, at=now()
        )
        await _commit(session)
    log.info("staff account %s created invite %s", viewer.account_id, invite.id)
    return json_response(lifecycle.render_invite(request.app[CONFIG], invite))


@routes.get("/api/v1/hearthside/admin/invites")
async def admin_list_invites(request: web.Request) -> web.Response:
    await require_staff(request, "admin:read:accounts")
    params = await read_params(request)
    page = page_params(params, default=40, maximum=80)
    async with request.app[SESSIONS]() as session:
        rows = list((await session.execute(paginate(select(Invite), Invite.id, page))).scalars())
    rows = order_newest_first(rows, page, key=lambda i: i.id)
    config = request.app[CONFIG]
    body = [lifecycle.render_invite(config, invite) for invite in rows]
    return json_response(body, headers=link_header(request, [i.id for i in rows], page))


@routes.delete("/api/v1/hearthside/admin/invites/{id}")
async def admin_revoke_invite(request: web.Request) -> web.Response:
    """Revoke an instance invite (a leaked code); the row stays, with ``revoked_at`` set."""
    viewer = await require_staff(request, "admin:write:accounts")
    invite_id = path_id(request)
    async with request.app[SESSIONS]() as session:
        invite = await session.get(Invite, invite_id)
        if invite is None:
            raise NotFound("Record not found")
        if invite.revoked_at is None:
            invite.revoked_at = now()
            await _commit(session)
    log.info("staff account %s revoked invite %s", viewer.account_id, invite_id)
    return json_response(lifecycle.render_invite(request.app[CONFIG], invite))
