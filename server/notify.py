"""Creating notifications, with the rules every kind shares: never notify yourself, never
notify someone who blocks or mutes (with notifications hidden) the actor, and (as Mastodon's
default notification policy filters them) never notify a member of a mention, favourite,
boost, follow or post from a limited account (``silenced_at``: the account's own limit or its
domain's) that the member does not follow. Follow requests from limited accounts still notify:
the member has to approve or reject them."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.ids import new_id
from server.models import Account, Block, Follow, Mute, Notification
from server.web import now

TYPES: tuple[str, ...] = (
    "mention",
    "status",
    "reblog",
    "follow",
    "follow_request",
    "favourite",
    "update",
    "admin.sign_up",
    "severed_relationships",
)
#: Kinds filtered when they come from a limited account the recipient does not follow.
FILTERED_WHEN_LIMITED = ("mention", "status", "reblog", "follow", "favourite", "update")
# Notices from the instance itself (server/subscriptions.py), shown as from the recipient's own
# account as Mastodon does for ``severed_relationships``: staff alerts (a subscription sync
# tripped the circuit breaker) and members' notices (a proposed domain decision would cut follows).
SYSTEM_TYPES = ("admin.moderation_alert", "moderation.follows_at_risk")
TYPES += SYSTEM_TYPES
# Moderation notices (server/reports.py writes them itself: they may come "from" the recipient).
MODERATION_TYPES = (
    "admin.report",
    "moderation_warning",
    "hearthside.report_resolved",
    "hearthside.appeal_decided",
    "hearthside.admin.appeal",
)
TYPES += MODERATION_TYPES
# Member safety (server/safety.py): a responder's new crisis item; the author's private support.
SAFETY_TYPES = ("hearthside.admin.crisis", "hearthside.safety_support")
TYPES += SAFETY_TYPES


async def notify(
    session: AsyncSession, *, recipient_id: int, from_account_id: int, type: str, status_id: int | None = None
) -> Notification | None:
    """Add a notification unless a rule above suppresses it; the caller commits."""
    assert type in TYPES, type
    if recipient_id == from_account_id:
        return None
    recipient = await session.get(Account, recipient_id)
    if recipient is None or not recipient.local or recipient.is_group:
        return None
    blocked = await session.execute(
        select(Block.id).where(Block.account_id == recipient_id, Block.target_account_id == from_account_id)
    )
    if blocked.first() is not None:
        return None
    muted = await session.execute(
        select(Mute.id).where(
            Mute.account_id == recipient_id,
            Mute.target_account_id == from_account_id,
            Mute.hide_notifications.is_(True),
        )
    )
    if muted.first() is not None:
        return None
    if type in FILTERED_WHEN_LIMITED:
        sender = await session.get(Account, from_account_id)
        if sender is not None and sender.silenced_at is not None:
            follows = await session.execute(
                select(Follow.id).where(
                    Follow.account_id == recipient_id,
                    Follow.target_account_id == from_account_id,
                    Follow.state == "accepted",
                )
            )
            if follows.first() is None:
                return None
    from server.wellbeing import hold_if_quiet  # late: server.wellbeing audits through server.reports

    if await hold_if_quiet(
        session, recipient_id=recipient_id, from_account_id=from_account_id, type=type, status_id=status_id
    ):
        return None  # quiet mode: held back, added when quiet mode ends
    note = Notification(
        id=new_id(),
        account_id=recipient_id,
        from_account_id=from_account_id,
        type=type,
        status_id=status_id,
        created_at=now(),
    )
    session.add(note)
    return note


def notify_system(session: AsyncSession, *, recipient_id: int, type: str) -> Notification:
    """A notice from the instance itself (one of ``SYSTEM_TYPES``); the caller commits."""
    assert type in SYSTEM_TYPES, type
    note = Notification(id=new_id(), account_id=recipient_id, from_account_id=recipient_id, type=type, created_at=now())
    session.add(note)
    return note
