"""Creating notifications, with the rules every kind shares: never notify yourself, and never
notify someone who blocks or mutes (with notifications hidden) the actor."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.ids import new_id
from server.models import Account, Block, Mute, Notification
from server.web import now

TYPES = ("mention", "status", "reblog", "follow", "follow_request", "favourite", "update", "admin.sign_up")


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
