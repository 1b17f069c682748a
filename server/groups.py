"""Group membership rules, shared by the Mastodon-compatible API (follow = join, mention =
post) and the Hearthside group extension.

Design note
-----------
A group is an ``accounts`` row with ``actor_type == "Group"`` plus a ``groups`` row. A member
is an accepted ``follows`` row towards the group; a membership request is a pending one.

* join policy ``open``: joining is immediate; ``approval``: a pending request a group moderator
  approves or rejects; ``invite``: only with a valid invite (a code, or one naming the account).
* banned accounts can neither join nor post; a ban ends the membership.
* ``members_only`` groups show their posts to members only, and those posts are never public.
* group owners and moderators (``group_roles``) manage requests, bans and settings; instance
  admins and moderators may act on any local group.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from server.accounts import check_username, new_account, username_taken
from server.errors import Forbidden, NotFound, Unprocessable
from server.ids import new_id
from server.models import Account, Follow, Group, GroupBan, GroupInvite, GroupRole
from server.web import now

JOIN_POLICIES = ("open", "approval", "invite")
MAX_RULES = 20
MAX_TOPIC_TAGS = 10


@dataclass(frozen=True, slots=True)
class GroupView:
    account: Account
    group: Group


async def load_group(session: AsyncSession, group_id: int) -> GroupView:
    row = (
        await session.execute(
            select(Account, Group).join(Group, Group.account_id == Account.id).where(Account.id == group_id)
        )
    ).one_or_none()
    return found_group(*row) if row is not None else found_group(None, None)


def found_group(account: Account | None, group: Group | None) -> GroupView:
    """The group from its loaded rows; 404 when it does not exist or was deleted."""
    if account is None or group is None or account.deleted_at is not None:
        raise NotFound("Record not found")
    return GroupView(account, group)


async def create_group(
    session: AsyncSession,
    *,
    owner: Account,
    name: str,
    display_name: str = "",
    description: str = "",
    rules: list[str] | None = None,
    topic_tags: list[str] | None = None,
    language: str = "en",
    join_policy: str = "open",
    members_only: bool = False,
) -> GroupView:
    """Add a group owned (and joined) by ``owner``; the caller commits."""
    check_username(name)
    if await username_taken(session, name):
        raise Unprocessable("name: is already taken")
    validate_settings(join_policy=join_policy, rules=rules, topic_tags=topic_tags, language=language)
    account = new_account(name, actor_type="Group", display_name=display_name or name)
    account.note_source = description
    account.note = _plain_html(description)
    account.locked = join_policy != "open"
    group = Group(
        account_id=account.id,
        rules=list(rules or []),
        topic_tags=[t.lower() for t in topic_tags or []],
        language=language,
        join_policy=join_policy,
        members_only=members_only,
        created_by_account_id=owner.id,
    )
    session.add(account)
    await session.flush()
    session.add(group)
    session.add(GroupRole(id=new_id(), group_id=account.id, account_id=owner.id, role="owner", created_at=now()))
    await add_member(session, account, owner)
    return GroupView(account, group)


def _plain_html(text: str) -> str:
    from html import escape

    paragraphs = [p for p in text.replace("\r\n", "\n").split("\n\n") if p.strip()]
    return "".join(f"<p>{escape(p).replace(chr(10), '<br>')}</p>" for p in paragraphs)


def _storable(text: str) -> bool:
    """PostgreSQL text holds neither NUL nor lone surrogates (which JSON bodies can carry)."""
    return "\x00" not in text and not any("\ud800" <= c <= "\udfff" for c in text)


def validate_settings(
    *,
    join_policy: str | None = None,
    rules: list[str] | None = None,
    topic_tags: list[str] | None = None,
    language: str | None = None,
) -> None:
    if join_policy is not None and join_policy not in JOIN_POLICIES:
        raise Unprocessable(f"join_policy: must be one of {', '.join(JOIN_POLICIES)}")
    if rules is not None:
        if len(rules) > MAX_RULES:
            raise Unprocessable(f"rules: at most {MAX_RULES} rules")
        for rule in rules:
            if not isinstance(rule, str) or not rule.strip() or len(rule) > 500 or not _storable(rule):
                raise Unprocessable("rules: each rule must be 1-500 characters of text")
    if topic_tags is not None:
        if len(topic_tags) > MAX_TOPIC_TAGS:
            raise Unprocessable(f"topic_tags: at most {MAX_TOPIC_TAGS} tags")
        for tag in topic_tags:
            if (
                not isinstance(tag, str)
                or not tag
                or len(tag) > 50
                or not tag.replace("_", "").replace("-", "").isalnum()
            ):
                raise Unprocessable("topic_tags: each tag must be 1-50 letters, digits, '-' or '_'")
    if language is not None and not (2 <= len(language) <= 8 and language.replace("-", "").isalpha()):
        raise Unprocessable("language: must be a language code such as en or pt-BR")


async def role_in(session: AsyncSession, group_id: int, account_id: int) -> str | None:
    """``owner``, ``moderator`` or None."""
    return (
        await session.execute(
            select(GroupRole.role).where(GroupRole.group_id == group_id, GroupRole.account_id == account_id)
        )
    ).scalar_one_or_none()


async def membership(session: AsyncSession, group_id: int, account_id: int) -> str | None:
    """``accepted``, ``pending`` or None."""
    return (
        await session.execute(
            select(Follow.state).where(Follow.account_id == account_id, Follow.target_account_id == group_id)
        )
    ).scalar_one_or_none()


async def is_member(session: AsyncSession, group_id: int, account_id: int | None) -> bool:
    return account_id is not None and await membership(session, group_id, account_id) == "accepted"


async def is_banned(session: AsyncSession, group_id: int, account_id: int) -> bool:
    found = await session.execute(
        select(GroupBan.id).where(GroupBan.group_id == group_id, GroupBan.account_id == account_id)
    )
    return found.first() is not None


async def require_group_moderator(
    session: AsyncSession, group_id: int, account_id: int, *, instance_staff: bool = False
) -> None:
    """Raise 403 unless the account moderates the group (or is instance staff)."""
    if instance_staff:
        return
    if await role_in(session, group_id, account_id) is None:
        raise Forbidden("only the group's moderators may do this")


async def add_member(session: AsyncSession, group: Account, account: Account, *, state: str = "accepted") -> Follow:
    """Insert or upgrade a membership row and keep counters in step."""
    existing = (
        await session.execute(
            select(Follow).where(Follow.account_id == account.id, Follow.target_account_id == group.id)
        )
    ).scalar_one_or_none()
    if existing is not None:
        if existing.state != "accepted" and state == "accepted":
            existing.state = "accepted"
            await _bump(session, group.id, account.id, +1)
        return existing
    follow = Follow(
        id=new_id(),
        account_id=account.id,
        target_account_id=group.id,
        state=state,
        remote=not account.local,
        created_at=now(),
    )
    session.add(follow)
    await session.flush()
    if state == "accepted":
        await _bump(session, group.id, account.id, +1)
    return follow


async def remove_member(session: AsyncSession, group_id: int, account_id: int) -> bool:
    """Delete a membership or request; True when there was one."""
    state = await membership(session, group_id, account_id)
    if state is None:
        return False
    await session.execute(delete(Follow).where(Follow.account_id == account_id, Follow.target_account_id == group_id))
    if state == "accepted":
        await _bump(session, group_id, account_id, -1)
    return True


async def _bump(session: AsyncSession, group_id: int, account_id: int, delta: int) -> None:
    await session.execute(
        update(Account).where(Account.id == group_id).values(followers_count=Account.followers_count + delta)
    )
    await session.execute(
        update(Account).where(Account.id == account_id).values(following_count=Account.following_count + delta)
    )


async def _consume_invite(session: AsyncSession, group_id: int, account_id: int, code: str | None) -> bool:
    moment = now()
    query = select(GroupInvite).where(GroupInvite.group_id == group_id)
    if code:
        query = query.where(GroupInvite.code == code)
    else:
        query = query.where(GroupInvite.account_id == account_id)
    for invite in (await session.execute(query)).scalars():
        if invite.account_id is not None and invite.account_id != account_id:
            continue
        if invite.expires_at is not None and invite.expires_at <= moment:
            continue
        if invite.max_uses is not None and invite.uses >= invite.max_uses:
            continue
        invite.uses += 1
        return True
    return False


async def join(session: AsyncSession, view: GroupView, account: Account, *, invite_code: str | None = None) -> Follow:
    """Apply the group's join policy for ``account``; returns the (accepted or pending) row."""
    if account.id == view.account.id or account.is_group:
        raise Unprocessable("a group cannot join a group")
    if await is_banned(session, view.account.id, account.id):
        raise Forbidden("you are banned from this group")
    state = await membership(session, view.account.id, account.id)
    if state == "accepted":
        return await add_member(session, view.account, account)
    policy = view.group.join_policy
    if policy == "invite" or invite_code:
        if not await _consume_invite(session, view.account.id, account.id, invite_code):
            if policy == "invite":
                raise Forbidden("this group is invite-only: ask a moderator for an invite")
            raise Unprocessable("invite_code: is not valid for this group")
        return await add_member(session, view.account, account)
    if policy == "approval":
        # An invite naming the account is an approval given in advance.
        if await _consume_invite(session, view.account.id, account.id, None):
            return await add_member(session, view.account, account)
        return await add_member(session, view.account, account, state="pending")
    return await add_member(session, view.account, account)


async def can_view(session: AsyncSession, view: GroupView, viewer_account_id: int | None) -> bool:
    """Whether posts in the group may be shown to the viewer."""
    if not view.group.members_only:
        return True
    return await is_member(session, view.account.id, viewer_account_id)


async def check_can_post(session: AsyncSession, view: GroupView, account_id: int) -> None:
    """Raise 403 unless ``account_id`` may post in the group (an unbanned member)."""
    refuse_posting(
        view,
        banned=await is_banned(session, view.account.id, account_id),
        member=await is_member(session, view.account.id, account_id),
    )


def refuse_posting(view: GroupView, *, banned: bool, member: bool) -> None:
    """``check_can_post`` over facts already loaded: 403 unless an unbanned member may post."""
    if view.account.suspended_at is not None:
        raise Forbidden("this group is suspended")
    if banned:
        raise Forbidden("you are banned from this group")
    if not member:
        raise Forbidden("join the group before posting in it")


async def member_group_ids(session: AsyncSession, account_id: int) -> list[int]:
    """Groups the account is an accepted member of."""
    rows = await session.execute(
        select(Follow.target_account_id)
        .join(Account, Account.id == Follow.target_account_id)
        .where(Follow.account_id == account_id, Follow.state == "accepted", Account.actor_type == "Group")
    )
    return [r[0] for r in rows]


async def ban(session: AsyncSession, view: GroupView, target: Account, *, by: Account, reason: str = "") -> None:
    if await role_in(session, view.account.id, target.id) == "owner":
        raise Forbidden("the group's owner cannot be banned")
    if not await is_banned(session, view.account.id, target.id):
        session.add(
            GroupBan(
                id=new_id(),
                group_id=view.account.id,
                account_id=target.id,
                reason=reason,
                created_by_account_id=by.id,
                created_at=now(),
            )
        )
    await session.execute(
        delete(GroupRole).where(GroupRole.group_id == view.account.id, GroupRole.account_id == target.id)
    )
    await remove_member(session, view.account.id, target.id)


# ---------------------------------------------------------------------------- management
# Used by the Hearthside group API (server/api/groups.py). Permission checks that depend on
# who is asking (owner, moderator, instance staff) stay in the handlers; these functions hold
# the invariants that must hold whoever asks: a group always keeps at least one owner, roles
# belong to members, and nothing is written before every input has been validated.

GROUP_ROLES = ("owner", "moderator")
MAX_DESCRIPTION = 5000
MAX_DISPLAY_NAME = 100


async def owner_count(session: AsyncSession, group_id: int) -> int:
    rows = await session.execute(select(GroupRole.id).where(GroupRole.group_id == group_id, GroupRole.role == "owner"))
    return len(rows.all())


async def _drop_role(session: AsyncSession, group_id: int, account_id: int) -> str | None:
    """Remove the account's role; refuses (422) to remove the group's last owner."""
    role = await role_in(session, group_id, account_id)
    if role == "owner" and await owner_count(session, group_id) <= 1:
        raise Unprocessable("account_id: is the group's only owner; make another member an owner first")
    if role is not None:
        await session.execute(
            delete(GroupRole).where(GroupRole.group_id == group_id, GroupRole.account_id == account_id)
        )
    return role


async def leave(session: AsyncSession, view: GroupView, account_id: int) -> None:
    """End a membership or withdraw a request; the only owner cannot leave (422)."""
    if (
        await role_in(session, view.account.id, account_id) == "owner"
        and await owner_count(session, view.account.id) <= 1
    ):
        raise Unprocessable("the group's only owner cannot leave: make another member an owner first")
    await _drop_role(session, view.account.id, account_id)
    await remove_member(session, view.account.id, account_id)


async def set_role(session: AsyncSession, view: GroupView, account_id: int, role: str) -> None:
    """Make a member a moderator or an owner (demoting an owner keeps one owner at least)."""
    if role not in GROUP_ROLES:
        raise Unprocessable("role: must be owner or moderator")
    if not await is_member(session, view.account.id, account_id):
        raise Unprocessable("account_id: must be a member of the group")
    current = await role_in(session, view.account.id, account_id)
    if current == role:
        return
    if current is not None:
        await _drop_role(session, view.account.id, account_id)
    session.add(GroupRole(id=new_id(), group_id=view.account.id, account_id=account_id, role=role, created_at=now()))
    await session.flush()


async def remove_role(session: AsyncSession, view: GroupView, account_id: int) -> str | None:
    """Take the account's owner or moderator role away; None when it had none."""
    return await _drop_role(session, view.account.id, account_id)


async def approve_request(session: AsyncSession, view: GroupView, account: Account) -> None:
    """Accept a pending request (404 when there is none); a banned account cannot be accepted."""
    if await membership(session, view.account.id, account.id) != "pending":
        raise NotFound("Record not found")
    if await is_banned(session, view.account.id, account.id):
        raise Forbidden("this account is banned from the group")
    await add_member(session, view.account, account)


async def reject_request(session: AsyncSession, view: GroupView, account_id: int) -> None:
    if await membership(session, view.account.id, account_id) != "pending":
        raise NotFound("Record not found")
    await remove_member(session, view.account.id, account_id)


async def unban(session: AsyncSession, group_id: int, account_id: int) -> bool:
    """Lift a ban; True when there was one. The account may then join again."""
    result = await session.execute(
        delete(GroupBan).where(GroupBan.group_id == group_id, GroupBan.account_id == account_id)
    )
    return bool(getattr(result, "rowcount", 0))


def description_html(source: str) -> str:
    """The HTML shown for a group description (plain text paragraphs, escaped)."""
    return _plain_html(source)


async def update_settings(
    session: AsyncSession,
    view: GroupView,
    *,
    display_name: str | None = None,
    description: str | None = None,
    rules: list[str] | None = None,
    topic_tags: list[str] | None = None,
    language: str | None = None,
    join_policy: str | None = None,
    members_only: bool | None = None,
) -> None:
    """Validate every given setting, then apply them all (None leaves a setting unchanged).

    Switching ``join_policy`` to ``open`` does not accept pending requests: moderators still
    decide on them. ``members_only`` can be switched on but never off: members wrote their
    earlier posts for members only, and opening the group would publish them.
    """
    validate_settings(join_policy=join_policy, rules=rules, topic_tags=topic_tags, language=language)
    if display_name is not None and (len(display_name) > MAX_DISPLAY_NAME or not _storable(display_name)):
        raise Unprocessable(f"display_name: at most {MAX_DISPLAY_NAME} characters of text")
    if description is not None and (len(description) > MAX_DESCRIPTION or not _storable(description)):
        raise Unprocessable(f"description: at most {MAX_DESCRIPTION} characters of text")
    if members_only is False and view.group.members_only:
        raise Unprocessable("members_only: cannot be switched off; posts written for members would become public")
    account, group = view.account, view.group
    if display_name is not None:
        account.display_name = display_name.strip() or account.username
    if description is not None:
        account.note_source = description
        account.note = _plain_html(description)
    if rules is not None:
        group.rules = [r.strip() for r in rules]
    if topic_tags is not None:
        group.topic_tags = list(dict.fromkeys(t.lower() for t in topic_tags))
    if language is not None:
        group.language = language
    if join_policy is not None:
        group.join_policy = join_policy
        account.locked = join_policy != "open"
    if members_only is not None:
        group.members_only = members_only
    account.updated_at = now()


async def create_invite(
    session: AsyncSession,
    view: GroupView,
    *,
    by: Account,
    code: str | None = None,
    account_id: int | None = None,
    max_uses: int | None = None,
    expires_at: datetime | None = None,
) -> GroupInvite:
    """An invite: a code anyone holding it may use, or an invite naming ``account_id``."""
    if (code is None) == (account_id is None):
        raise Unprocessable("account_id: give either an account to invite or none for a code")
    if account_id is not None:
        if account_id == view.account.id:
            raise Unprocessable("account_id: a group cannot join a group")
        if await is_banned(session, view.account.id, account_id):
            raise Unprocessable("account_id: is banned from this group")
        if await is_member(session, view.account.id, account_id):
            raise Unprocessable("account_id: is already a member")
    invite = GroupInvite(
        id=new_id(),
        group_id=view.account.id,
        code=code,
        account_id=account_id,
        created_by_account_id=by.id,
        max_uses=1 if account_id is not None else max_uses,
        uses=0,
        expires_at=expires_at,
        created_at=now(),
    )
    session.add(invite)
    await session.flush()
    return invite
