"""End-to-end encrypted messages on the server: devices, one-time keys, device inboxes, stamps,
and who may message whom. The wire contract is docs/e2ee.md; the design research/e2ee.md.

Design note
-----------
The server never encrypts or decrypts anything. It keeps, per member:

* an *identity*: the master public key and the device list the member's client signed with it.
  The server checks the signature, that the list names only devices registered by this member,
  and that ``version`` only grows. It cannot forge a list (it never holds the master private
  key), so a device it added on its own would not verify in any client (research §7.3).
* *devices*, each bound to the OAuth token that registered it: ``pending`` until a signed list
  names it, then ``active``; removing it from the list (or revoking it) makes it ``revoked``:
  its token, one-time keys and waiting ciphertexts are deleted in the same transaction, so a
  revoked device can read nothing more.
* *one-time keys*: each is handed out exactly once (deleted by the claim that takes it; one
  winner under concurrent claims on both databases); when none is left, the device's signed
  fallback key answers (research §8(b)).
* *device inboxes*: one ciphertext row per target device, deleted when that device
  acknowledges it or when ``[e2ee] message_ttl_days`` pass.
* *franking stamps*: an HMAC over the sender's commitment, both actors, the object id and the
  time, keyed with this instance's stamp key (``crypto.franking``), so a recipient can later
  prove to moderators what they were sent (research §8(c)).

Who may message a member is the member's ``dm_policy`` (``DM_POLICIES``) plus blocks both ways
and domain suspensions; one-time-key claims follow the same rule, so a refused sender cannot
even start a session.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crypto.attachments import UPLOAD_PATH
from crypto.devicelist import DeviceList, parse_device_list, verify_one_time_key
from crypto.encoding import b64decode, b64encode, parse_utc_time, utc_time
from crypto.envelope import MAX_MESSAGE_BYTES, PlainMessage, decode_message
from crypto.errors import DeviceListError, E2EEError, FrankingError, VerificationError
from crypto.franking import StampKey, check_franking_tag, stamp, verify_stamp
from server.config import Config
from server.domains import domain_block
from server.entities import account_uri
from server.errors import ApiError, Conflict, Forbidden, Unprocessable
from server.ids import new_id
from server.models import (
    Account,
    Block,
    E2EEAttachment,
    E2EEDevice,
    E2EEIdentity,
    E2EEMessage,
    E2EEOneTimeKey,
    E2EEStampKey,
    Follow,
    OAuthToken,
)
from server.ratelimit import RateLimit

log = logging.getLogger(__name__)

DM_POLICIES = ("everyone", "following_and_groups", "following", "nobody")
DEFAULT_DM_POLICY = "following_and_groups"
MAX_UNUSED_ONE_TIME_KEYS = 100
STAMP_KEY_DAYS = 90  # a new stamp key after this many days; old ones keep verifying


# ---------------------------------------------------------------------------- who may message whom


async def _blocked_either_way(session: AsyncSession, a: int, b: int) -> bool:
    found = await session.scalar(
        select(Block.id)
        .where(
            or_(
                (Block.account_id == a) & (Block.target_account_id == b),
                (Block.account_id == b) & (Block.target_account_id == a),
            )
        )
        .limit(1)
    )
    return found is not None


async def _follows(session: AsyncSession, follower_id: int, followed_id: int) -> bool:
    found = await session.scalar(
        select(Follow.id).where(
            Follow.account_id == follower_id, Follow.target_account_id == followed_id, Follow.state == "accepted"
        )
    )
    return found is not None


async def _share_a_group(session: AsyncSession, a: int, b: int) -> bool:
    mine = (
        select(Follow.target_account_id)
        .join(Account, Account.id == Follow.target_account_id)
        .where(Follow.account_id == a, Follow.state == "accepted", Account.actor_type == "Group")
    )
    found = await session.scalar(
        select(Follow.id)
        .where(Follow.account_id == b, Follow.state == "accepted", Follow.target_account_id.in_(mine))
        .limit(1)
    )
    return found is not None


async def knows(session: AsyncSession, recipient_id: int, sender_id: int | None) -> bool:
    """Whether ``recipient`` knows the sender of a message: it is themselves, someone they
    follow, or someone sharing a group with them (clients show other senders' messages as
    message requests)."""
    if sender_id is None:
        return False
    if sender_id == recipient_id:
        return True
    return await _follows(session, recipient_id, sender_id) or await _share_a_group(session, recipient_id, sender_id)


async def refusal(session: AsyncSession, sender: Account, recipient: Account) -> str | None:
    """Why ``sender`` may not message ``recipient`` (a reason code), or None when they may."""
    if recipient.deleted_at is not None or recipient.suspended_at is not None or recipient.is_group:
        return "recipient_unavailable"
    if sender.deleted_at is not None or sender.suspended_at is not None:
        return "sender_unavailable"
    if sender.id == recipient.id:
        return None
    for account in (sender, recipient):
        if not account.local:
            block = await domain_block(session, account.domain)
            if block is not None and block.severity == "suspend":
                return "domain_blocked"
    if await _blocked_either_way(session, sender.id, recipient.id):
        return "blocked"
    policy = recipient.dm_policy if recipient.local else "everyone"  # a remote server applies its own
    if policy == "everyone":
        return None
    if policy == "nobody":
        return "not_accepting_messages"
    if await _follows(session, recipient.id, sender.id):
        return None
    if policy == "following_and_groups" and await _share_a_group(session, recipient.id, sender.id):
        return None
    return "not_accepting_messages"


REFUSALS = {
    "recipient_unavailable": "this account cannot receive messages",
    "sender_unavailable": "your account cannot send messages",
    "domain_blocked": "messages between these instances are not allowed",
    "blocked": "you cannot message this account",
    "not_accepting_messages": "this member does not accept messages from you",
}


async def require_may_message(session: AsyncSession, sender: Account, recipient: Account) -> None:
    reason = await refusal(session, sender, recipient)
    if reason is not None:
        raise Forbidden(REFUSALS[reason])


# ---------------------------------------------------------------------------- identities and devices


async def identity_of(session: AsyncSession, account_id: int) -> E2EEIdentity | None:
    return await session.get(E2EEIdentity, account_id)


def signed_list(identity: E2EEIdentity | None) -> DeviceList | None:
    """The stored signed device list (verified again: the row is data, not trust)."""
    if identity is None or identity.device_list is None:
        return None
    try:
        return parse_device_list(identity.device_list)
    except DeviceListError:
        log.warning("stored device list of account %s does not verify", identity.account_id)
        return None


async def devices_of(
    session: AsyncSession, account_id: int, *, states: Sequence[str] = ("active",)
) -> list[E2EEDevice]:
    rows = await session.scalars(
        select(E2EEDevice)
        .where(E2EEDevice.account_id == account_id, E2EEDevice.state.in_(states))
        .order_by(E2EEDevice.device_id)
    )
    return list(rows)


async def device_for_token(session: AsyncSession, token_id: int) -> E2EEDevice | None:
    return await session.scalar(
        select(E2EEDevice).where(E2EEDevice.token_id == token_id, E2EEDevice.state != "revoked")
    )


async def register_device(
    session: AsyncSession,
    account: Account,
    *,
    token_id: int,
    device_id: str,
    identity_key: str,
    fingerprint_key: str,
    at: datetime,
) -> E2EEDevice:
    """Add a pending device bound to ``token_id`` (one device per token)."""
    if await device_for_token(session, token_id) is not None:
        raise Conflict("this access token already has a device; log in again to set up another")
    existing = await session.scalar(
        select(E2EEDevice).where(E2EEDevice.account_id == account.id, E2EEDevice.device_id == device_id)
    )
    if existing is not None:
        raise Conflict(f"device_id: {device_id} is taken (device ids are never reused)")
    device = E2EEDevice(
        id=new_id(),
        account_id=account.id,
        device_id=device_id,
        token_id=token_id,
        identity_key=identity_key,
        fingerprint_key=fingerprint_key,
        state="pending",
        created_at=at,
    )
    session.add(device)
    await session.flush()
    return device


async def revoke_devices(session: AsyncSession, devices: Iterable[E2EEDevice], at: datetime) -> list[int]:
    """Revoke devices: state, token, keys and waiting ciphertexts, in the caller's transaction.
    Returns the revoked tokens' ids (for the token cache)."""
    tokens: list[int] = []
    for device in devices:
        device.state = "revoked"
        device.revoked_at = at
        await session.execute(delete(E2EEOneTimeKey).where(E2EEOneTimeKey.device_pk == device.id))
        await session.execute(delete(E2EEMessage).where(E2EEMessage.device_pk == device.id))
        device.pending = 0
        if device.token_id is not None:
            tokens.append(device.token_id)
            await session.execute(
                update(OAuthToken)
                .where(OAuthToken.id == device.token_id, OAuthToken.revoked_at.is_(None))
                .values(revoked_at=at)
            )
            device.token_id = None
    return tokens


@dataclass(frozen=True, slots=True)
class Published:
    device_list: DeviceList
    revoked_tokens: list[int]


async def publish_device_list(
    session: AsyncSession, config: Config, account: Account, document: Any, *, at: datetime, reset: bool = False
) -> Published:
    """Store a new signed device list; activate the devices it names, revoke the ones it drops.

    Refused (422/409, nothing written) unless the signature verifies, the list is this
    member's, its version is above the stored one, and every device it names is one of this
    member's registered, unrevoked devices with the same keys. A different master key needs
    ``reset`` (all devices not in the new list are then revoked: a member who lost every device).
    """
    try:
        new = parse_device_list(document)
    except DeviceListError as exc:
        raise Unprocessable(f"device_list: {exc}") from None
    actor = account_uri(config, account)
    if new.actor != actor:
        raise Unprocessable(f"device_list.actor: must be {actor}")
    identity = await identity_of(session, account.id)
    if identity is not None and identity.master_key != new.master_key and not reset:
        raise Conflict("device_list.masterKey: differs from your master key (reset the identity to replace it)")
    if identity is not None and new.version <= identity.version:
        raise Conflict(f"device_list.version: must be above {identity.version}")
    registered = {
        d.device_id: d for d in await devices_of(session, account.id, states=("pending", "active", "revoked"))
    }
    for entry in new.devices:
        device = registered.get(entry.device_id)
        if device is None or device.state == "revoked":
            raise Unprocessable(f"device_list.devices: {entry.device_id} is not a registered device of yours")
        if (device.identity_key, device.fingerprint_key) != (entry.identity_key, entry.fingerprint_key):
            raise Unprocessable(f"device_list.devices: {entry.device_id} has other keys than the device registered")
    listed = {entry.device_id for entry in new.devices}
    for device_id in listed:
        registered[device_id].state = "active"
    dropped = [d for d in registered.values() if d.state == "active" and d.device_id not in listed]
    if reset:
        dropped += [d for d in registered.values() if d.state == "pending" and d.device_id not in listed]
    tokens = await revoke_devices(session, dropped, at)
    if identity is None:
        identity = E2EEIdentity(account_id=account.id, master_key=new.master_key, updated_at=at)
        session.add(identity)
    identity.master_key = new.master_key
    identity.version = new.version
    identity.device_list = new.to_json()
    identity.updated_at = at
    await session.flush()
    return Published(new, tokens)


# ---------------------------------------------------------------------------- one-time keys


@dataclass(frozen=True, slots=True)
class KeyUpload:
    key_id: str
    key: str
    signature: str
    fallback: bool


async def upload_keys(
    session: AsyncSession,
    config: Config,
    account: Account,
    device: E2EEDevice,
    keys: Sequence[KeyUpload],
    *,
    at: datetime,
) -> int:
    """Store signed one-time keys (and replace the fallback key); returns unused keys now held."""
    actor = account_uri(config, account)
    for key in keys:
        try:
            verify_one_time_key(
                device.fingerprint_key,
                actor=actor,
                device_id=device.device_id,
                key_id=key.key_id,
                key=key.key,
                fallback=key.fallback,
                signature=key.signature,
            )
        except VerificationError:
            raise Unprocessable(f"one_time_keys: the signature of key {key.key_id} does not verify") from None
    fresh = [k for k in keys if not k.fallback]
    held = await count_keys(session, device.id)
    if held + len(fresh) > MAX_UNUSED_ONE_TIME_KEYS:
        raise Unprocessable(f"one_time_keys: at most {MAX_UNUSED_ONE_TIME_KEYS} unused keys per device ({held} held)")
    ids = [k.key_id for k in fresh]  # a fallback key's id is counted apart (vodozemac numbers them separately)
    if len(set(ids)) != len(ids):
        raise Unprocessable("one_time_keys: key ids must be unique")
    taken = await session.scalar(
        select(func.count())
        .select_from(E2EEOneTimeKey)
        .where(
            E2EEOneTimeKey.device_pk == device.id, E2EEOneTimeKey.key_id.in_(ids), E2EEOneTimeKey.fallback.is_(False)
        )
    )
    if taken:
        raise Conflict("one_time_keys: a key id was uploaded before (key ids are never reused)")
    fallbacks = [k for k in keys if k.fallback]
    if len(fallbacks) > 1:
        raise Unprocessable("fallback_key: one per device")
    if fallbacks:
        await session.execute(
            delete(E2EEOneTimeKey).where(E2EEOneTimeKey.device_pk == device.id, E2EEOneTimeKey.fallback.is_(True))
        )
    session.add_all(
        E2EEOneTimeKey(
            id=new_id(),
            device_pk=device.id,
            key_id=k.key_id,
            key=k.key,
            signature=k.signature,
            fallback=k.fallback,
            created_at=at,
        )
        for k in keys
    )
    await session.flush()
    return held + len(fresh)


async def count_keys(session: AsyncSession, device_pk: int) -> int:
    return int(
        await session.scalar(
            select(func.count())
            .select_from(E2EEOneTimeKey)
            .where(E2EEOneTimeKey.device_pk == device_pk, E2EEOneTimeKey.fallback.is_(False))
        )
        or 0
    )


@dataclass(frozen=True, slots=True)
class Claimed:
    key_id: str
    key: str
    signature: str
    fallback: bool


async def claim_key(session: AsyncSession, device_pk: int) -> Claimed | None:
    """Take one one-time key of a device (deleted in this transaction: it is handed out once),
    else its fallback key, else None.

    ``DELETE ... RETURNING`` of one row chosen with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so
    concurrent claims take different keys; SQLite runs one writer at a time.
    """
    choose = (
        select(E2EEOneTimeKey.id)
        .where(E2EEOneTimeKey.device_pk == device_pk, E2EEOneTimeKey.fallback.is_(False))
        .order_by(E2EEOneTimeKey.id)
        .limit(1)
    )
    if session.get_bind().dialect.name == "postgresql":
        choose = choose.with_for_update(skip_locked=True)
    taken = (
        await session.execute(
            delete(E2EEOneTimeKey)
            .where(E2EEOneTimeKey.id == choose.scalar_subquery())
            .returning(E2EEOneTimeKey.key_id, E2EEOneTimeKey.key, E2EEOneTimeKey.signature)
        )
    ).first()
    if taken is not None:
        return Claimed(taken[0], taken[1], taken[2], False)
    fallback = await session.scalar(
        select(E2EEOneTimeKey).where(E2EEOneTimeKey.device_pk == device_pk, E2EEOneTimeKey.fallback.is_(True))
    )
    if fallback is None:
        return None
    return Claimed(fallback.key_id, fallback.key, fallback.signature, True)


# ---------------------------------------------------------------------------- stamps


async def current_stamp_key(session: AsyncSession, at: datetime) -> StampKey:
    """This instance's newest stamp key, creating one when there is none or it is old."""
    row = await session.scalar(
        select(E2EEStampKey).where(E2EEStampKey.retired_at.is_(None)).order_by(E2EEStampKey.created_at.desc()).limit(1)
    )
    if row is not None and row.created_at > at - timedelta(days=STAMP_KEY_DAYS):
        return StampKey(row.key_id, base64.b64decode(row.secret))
    if row is not None:
        row.retired_at = at
    fresh = StampKey.generate(secrets.token_hex(6))
    session.add(E2EEStampKey(key_id=fresh.key_id, secret=base64.b64encode(fresh.secret).decode(), created_at=at))
    await session.flush()
    return fresh


async def stamp_keys(session: AsyncSession) -> dict[str, bytes]:
    """Every stamp key this instance ever used (old stamps keep verifying after rotation)."""
    rows = await session.scalars(select(E2EEStampKey))
    return {row.key_id: base64.b64decode(row.secret) for row in rows}


async def make_stamp(
    session: AsyncSession, *, tag: bytes, sender: str, recipient: str, object_id: str, at: datetime
) -> str:
    key = await current_stamp_key(session, at)
    return stamp(key, tag=tag, sender=sender, recipient=recipient, object_id=object_id, at=at)


# ---------------------------------------------------------------------------- device inboxes


@dataclass(frozen=True, slots=True)
class Ciphertext:
    device: E2EEDevice
    message_type: int
    body: str  # base64, as received


async def store_ciphertexts(
    session: AsyncSession,
    config: Config,
    *,
    object_uri: str,
    sender_actor: str,
    sender_device: str,
    recipient_actor: str,
    ciphertexts: Sequence[Ciphertext],
    franking_tag: str,
    sender_stamp: str,
    stamp_value: str,
    stamped_at: datetime,
    at: datetime,
    refuse_when_full: bool = True,
) -> int:
    """Queue ciphertexts in local devices' inboxes (idempotent per device and object). A full
    inbox refuses the send (429) or, for messages from other servers, skips that device."""
    if not ciphertexts:
        return 0
    limit = config.get("e2ee", "max_pending_per_device")
    full = {c.device.id for c in ciphertexts if c.device.pending >= limit}
    if full and refuse_when_full:
        raise ApiError("a recipient device's inbox is full; try again later", status=429)
    ciphertexts = [c for c in ciphertexts if c.device.id not in full]
    pks = [c.device.id for c in ciphertexts]
    existing = set(
        await session.scalars(
            select(E2EEMessage.device_pk).where(E2EEMessage.device_pk.in_(pks), E2EEMessage.object_uri == object_uri)
        )
    )
    expires = at + timedelta(days=config.get("e2ee", "message_ttl_days"))
    rows = [
        E2EEMessage(
            id=new_id(),
            device_pk=c.device.id,
            object_uri=object_uri,
            sender_actor=sender_actor,
            sender_device=sender_device,
            recipient_actor=recipient_actor,
            message_type=c.message_type,
            body=c.body,
            franking_tag=franking_tag,
            sender_stamp=sender_stamp,
            stamp=stamp_value,
            stamped_at=stamped_at,
            created_at=at,
            expires_at=expires,
        )
        for c in ciphertexts
        if c.device.id not in existing
    ]
    session.add_all(rows)
    if rows:
        await session.execute(
            update(E2EEDevice)
            .where(E2EEDevice.id.in_([row.device_pk for row in rows]))
            .values(pending=E2EEDevice.pending + 1)
        )
    await session.flush()
    return len(rows)


async def acknowledge(session: AsyncSession, device: E2EEDevice, ids: Sequence[int]) -> int:
    """Delete ciphertexts the device received; returns how many went."""
    result = await session.execute(
        delete(E2EEMessage).where(E2EEMessage.device_pk == device.id, E2EEMessage.id.in_(ids))
    )
    gone = int(getattr(result, "rowcount", 0) or 0)
    if gone:
        await _uncount(session, device.id, gone)
    return gone


async def _uncount(session: AsyncSession, device_pk: int, gone: int) -> None:
    await session.execute(
        update(E2EEDevice)
        .where(E2EEDevice.id == device_pk)
        .values(pending=case((E2EEDevice.pending > gone, E2EEDevice.pending - gone), else_=0))
    )


async def prune(session: AsyncSession, config: Config, at: datetime) -> int:
    """Delete expired ciphertexts, and sent encrypted activities whose deliveries ended."""
    from server.models import Delivery, OutboxActivity

    expired = (
        await session.execute(
            select(E2EEMessage.device_pk, func.count())
            .where(E2EEMessage.expires_at <= at)
            .group_by(E2EEMessage.device_pk)
        )
    ).all()
    gone = getattr(await session.execute(delete(E2EEMessage).where(E2EEMessage.expires_at <= at)), "rowcount", 0)
    for device_pk, count in expired:
        await _uncount(session, device_pk, int(count))
    unfinished = select(Delivery.activity_id).where(Delivery.state == "pending")
    sent = getattr(
        await session.execute(
            delete(OutboxActivity).where(
                OutboxActivity.uri.startswith(f"{config.base_url}/e2ee/"),
                OutboxActivity.id.not_in(unfinished),
            )
        ),
        "rowcount",
        0,
    )
    attachments = getattr(
        await session.execute(delete(E2EEAttachment).where(E2EEAttachment.expires_at <= at)), "rowcount", 0
    )
    return int(gone or 0) + int(sent or 0) + int(attachments or 0)


# ---------------------------------------------------------------------------- attachments

ATTACHMENT_PATH = UPLOAD_PATH  # where attachment URLs point (crypto/attachments.py checks them)
_TOKEN_BYTES = 32


def attachment_token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


async def store_attachment(
    session: AsyncSession, config: Config, account_id: int, data: bytes, at: datetime
) -> tuple[E2EEAttachment, str]:
    """Keep an uploaded attachment ciphertext; returns the row and its URL. 422 when the
    member's stored attachments would pass ``[e2ee] attachment_quota_bytes``; the caller
    checked the size and commits."""
    quota = int(config.get("e2ee", "attachment_quota_bytes"))
    stored = await session.scalar(
        select(func.coalesce(func.sum(E2EEAttachment.size), 0)).where(
            E2EEAttachment.account_id == account_id, E2EEAttachment.expires_at > at
        )
    )
    if int(stored or 0) + len(data) > quota:
        raise Unprocessable(
            f"attachment: your stored attachments would pass this server's limit of {quota} bytes; "
            "older ones are deleted after [e2ee] attachment_ttl_days"
        )
    token = secrets.token_urlsafe(_TOKEN_BYTES)
    row = E2EEAttachment(
        id=new_id(),
        token_digest=attachment_token_digest(token),
        account_id=account_id,
        data=data,
        size=len(data),
        created_at=at,
        expires_at=at + timedelta(days=int(config.get("e2ee", "attachment_ttl_days"))),
    )
    session.add(row)
    return row, f"{config.base_url}{ATTACHMENT_PATH}{token}"


async def attachment_by_token(session: AsyncSession, token: str, at: datetime) -> E2EEAttachment | None:
    """The live attachment a URL's token names, or None."""
    if not 20 <= len(token) <= 64:
        return None
    return await session.scalar(
        select(E2EEAttachment).where(
            E2EEAttachment.token_digest == attachment_token_digest(token), E2EEAttachment.expires_at > at
        )
    )


# ---------------------------------------------------------------------------- rate limits

# Both are counted in the database (server.ratelimit), so they hold in total across every web
# process; nothing about the events is logged.
#
# One-time-key claims per (claiming actor, member): claims are what an attacker would repeat to
# drain a member's one-time keys, after which sessions fall back to the reusable fallback key
# (weaker forward secrecy; research/e2ee.md §8(b) "rate-limits per requesting actor").
CLAIMS = RateLimit("e2ee-claim", "too many key claims; try again in a minute", retry_after=60)
# Messages sent per account (all recipients together): a flood of private messages is
# harassment the recipient cannot even show to moderators without reporting each one.
SENDS = RateLimit("e2ee-send", "too many messages; wait a minute", retry_after=60)
# Attachment uploads, and fetches of other servers' attachments, per account: storage and
# outgoing requests are what a flood would cost the instance.
UPLOADS = RateLimit("e2ee-upload", "too many attachments; wait a minute", retry_after=60)
FETCHES = RateLimit("e2ee-attachment-fetch", "too many attachment downloads; wait a minute", retry_after=60)


# ---------------------------------------------------------------------------- retention worker

RETENTION = "e2ee-retention"
RETENTION_POLL_SECONDS = 600.0


class RetentionWorker:
    """Deletes expired ciphertexts and finished encrypted deliveries every few minutes, and
    the messages revealed in reports resolved more than ``[e2ee] revealed_retention_days`` ago."""

    def __init__(self, sessions: Any, config: Config) -> None:
        self.sessions = sessions
        self.config = config

    async def step(self) -> int:
        from server.reports import expire_revealed  # late: server.reports imports this module
        from server.web import now

        async with self.sessions() as session:
            moment = now()
            removed = await prune(session, self.config, moment)
            removed += await expire_revealed(session, self.config, moment)
            await session.commit()
        if removed:
            log.info("e2ee retention removed %s rows", removed)
        return 0

    async def run(self, stop: Any) -> None:
        from server.workers import run_loop

        await run_loop(RETENTION, self.step, stop, poll=RETENTION_POLL_SECONDS)


# ---------------------------------------------------------------------------- report sealing key

REPORT_KEY_FILE = "e2ee-reports.key"


_report_keys: dict[str, bytes] = {}


def report_key(config: Config) -> bytes:
    """The key sealing revealed report messages at rest: a file in the data directory (not the
    database, so a database dump alone does not show them), created on first use and read once
    per process."""
    import os

    from crypto.sealing import KEY_BYTES, new_sealing_key

    path = config.data_dir / "keys" / REPORT_KEY_FILE
    cached = _report_keys.get(str(path))
    if cached is not None:
        return cached
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(descriptor, "w") as handle:
                handle.write(base64.b64encode(new_sealing_key()).decode() + "\n")
    key = base64.b64decode(path.read_text().strip())
    if len(key) != KEY_BYTES:
        raise ValueError(f"{path} does not hold a {KEY_BYTES}-byte key")
    _report_keys[str(path)] = key
    return key


# ---------------------------------------------------------------------------- revealed messages


@dataclass(frozen=True, slots=True)
class Revealed:
    """A message a recipient revealed, checked against the franking tag and our stamp."""

    object_id: str
    message: PlainMessage
    franking_key: str
    franking_tag: str
    stamp: str
    stamped_at: str

    def to_json(self) -> dict[str, Any]:
        return {
            "object_id": self.object_id,
            "message": b64encode(self.message.encoded),
            "franking_key": self.franking_key,
            "franking_tag": self.franking_tag,
            "stamp": self.stamp,
            "stamped_at": self.stamped_at,
        }


def parse_revealed(item: Any, where: str) -> tuple[Revealed, bytes, bytes, datetime]:
    """Shape-check one revealed message (``Unprocessable`` naming the field)."""
    if not isinstance(item, dict):
        raise Unprocessable(f"{where}: must be an object")
    try:
        encoded = b64decode(str(item.get("message", "")), field=f"{where}.message", max_size=MAX_MESSAGE_BYTES)
        message = decode_message(encoded)
        key = b64decode(str(item.get("franking_key", "")), field=f"{where}.franking_key", size=32)
        tag = b64decode(str(item.get("franking_tag", "")), field=f"{where}.franking_tag", size=32)
        at = parse_utc_time(str(item.get("stamped_at", "")), field=f"{where}.stamped_at")
    except (E2EEError, ValueError) as exc:
        raise Unprocessable(f"{where}: {exc}") from None
    object_id, stamp_value = item.get("object_id"), item.get("stamp")
    if not isinstance(object_id, str) or not object_id or len(object_id) > 2048:
        raise Unprocessable(f"{where}.object_id: must be the message's object id")
    if not isinstance(stamp_value, str) or not stamp_value or len(stamp_value) > 200:
        raise Unprocessable(f"{where}.stamp: must be the server's stamp")
    revealed = Revealed(object_id, message, b64encode(key), b64encode(tag), stamp_value, utc_time(at))
    return revealed, key, tag, at


async def verify_revealed(session: AsyncSession, revealed: Revealed, key: bytes, tag: bytes, at: datetime) -> bool:
    """True when the tag recomputes from the revealed message and our stamp binds that tag to
    its sender, recipient, object id and time (research/e2ee.md §8(c) step 5)."""
    try:
        check_franking_tag(key, revealed.message.encoded, tag)
        verify_stamp(
            await stamp_keys(session),
            revealed.stamp,
            tag=tag,
            sender=revealed.message.sender,
            recipient=revealed.message.recipient,
            object_id=revealed.object_id,
            at=at,
        )
    except FrankingError:
        return False
    return True


async def forget_member(session: AsyncSession, account_id: int, at: datetime) -> None:
    """A member deleted their account: every device is revoked (keys and waiting ciphertext
    deleted) and the identity goes, so nobody can start a session with them again; plaintext
    messages kept for them go too."""
    from server.models import PlaintextMessage

    await revoke_devices(session, await devices_of(session, account_id, states=("pending", "active")), at)
    await session.execute(delete(E2EEIdentity).where(E2EEIdentity.account_id == account_id))
    await session.execute(delete(PlaintextMessage).where(PlaintextMessage.recipient_account_id == account_id))
    await session.execute(delete(E2EEAttachment).where(E2EEAttachment.account_id == account_id))


def keep_revealed(
    session: AsyncSession,
    config: Config,
    report_id: int,
    revealed: Revealed,
    *,
    verified: bool,
    at: datetime,
    sender_stamp: str | None = None,
) -> None:
    """File one revealed message with a report, sealed at rest (``report_key``). A member's
    report also keeps the sending server's stamp, so a moderator can forward the report later
    and that server can check its own stamp (``server.reports.forward_report``)."""
    import json

    from crypto.sealing import seal
    from server.models import E2EEReportMessage

    kept = revealed.to_json() | ({"sender_stamp": sender_stamp} if sender_stamp else {})
    session.add(
        E2EEReportMessage(
            id=new_id(),
            report_id=report_id,
            object_uri=revealed.object_id,
            sealed=seal(report_key(config), json.dumps(kept).encode()),
            verified=verified,
            created_at=at,
        )
    )
