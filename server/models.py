"""SQLAlchemy models: the one schema both SQLite and PostgreSQL hold.

Design note
-----------
* Ids are 64-bit, time-ordered integers (``server.ids``): ordering by id is ordering by
  creation, which is what every paginated Mastodon endpoint needs (``max_id``/``min_id``).
  The API shows them as strings, as Mastodon does.
* People and groups are both rows of ``accounts`` (``actor_type`` Person or Group): Mastodon
  clients see a group as an account with ``"group": true``, following one is joining it, and
  a membership is a row of ``follows``. Group-only settings live in ``groups``.
* Local accounts have ``domain == ""`` (not NULL) so the unique index on
  ``(username_lower, domain)`` also holds for local names on every database.
* Counters (followers, statuses, favourites, ...) are denormalised and kept in the same
  transaction as the rows they count, so timelines never run ``COUNT(*)``.
* Secrets are never stored in clear: passwords as Argon2id hashes, OAuth tokens, codes and
  client secrets as SHA-256 digests.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON(), list[Any]: JSON()}  # noqa: RUF012


def _fk(target: str, *, nullable: bool = False, ondelete: str = "CASCADE", index: bool = False) -> Any:
    return mapped_column(BigInteger, ForeignKey(target, ondelete=ondelete), nullable=nullable, index=index)


class Account(Base):
    __tablename__ = "accounts"
    __table_args__ = (UniqueConstraint("username_lower", "domain"), UniqueConstraint("uri"))

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    username: Mapped[str] = mapped_column(String(64))
    username_lower: Mapped[str] = mapped_column(String(64))
    domain: Mapped[str] = mapped_column(String(255), default="")
    actor_type: Mapped[str] = mapped_column(String(16), default="Person")  # Person | Group
    display_name: Mapped[str] = mapped_column(String(100), default="")
    note: Mapped[str] = mapped_column(Text, default="")  # sanitized HTML
    note_source: Mapped[str] = mapped_column(Text, default="")
    fields: Mapped[list[Any]] = mapped_column(default=list)
    locked: Mapped[bool] = mapped_column(Boolean, default=False)
    bot: Mapped[bool] = mapped_column(Boolean, default=False)
    discoverable: Mapped[bool] = mapped_column(Boolean, default=True)
    verified_professional: Mapped[bool] = mapped_column(Boolean, default=False)
    uri: Mapped[str | None] = mapped_column(String(2048), default=None)
    url: Mapped[str | None] = mapped_column(String(2048), default=None)
    followers_count: Mapped[int] = mapped_column(Integer, default=0)
    following_count: Mapped[int] = mapped_column(Integer, default=0)
    statuses_count: Mapped[int] = mapped_column(Integer, default=0)
    last_status_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    suspended_at: Mapped[datetime | None] = mapped_column(default=None)
    # Moderation (docs/moderation.md): "limit" (Mastodon's silence) hides the account from people
    # who do not follow it and turns new follows into requests; "sensitive" marks its media.
    silenced_at: Mapped[datetime | None] = mapped_column(default=None)
    sensitized_at: Mapped[datetime | None] = mapped_column(default=None)
    deleted_at: Mapped[datetime | None] = mapped_column(default=None)
    # Remote actors only (None for local accounts, whose URLs derive from base_url):
    # what their actor document said when last fetched (research/federation.md §8.1).
    inbox_url: Mapped[str | None] = mapped_column(String(2048), default=None)
    shared_inbox_url: Mapped[str | None] = mapped_column(String(2048), default=None)
    outbox_url: Mapped[str | None] = mapped_column(String(2048), default=None)
    followers_url: Mapped[str | None] = mapped_column(String(2048), default=None)
    following_url: Mapped[str | None] = mapped_column(String(2048), default=None)
    moderators_url: Mapped[str | None] = mapped_column(String(2048), default=None)
    # The actor's e2ee:devices collection (end-to-end encrypted messages; Mastodon keeps a
    # devices_url the same way), refreshed with the actor document and by its Update.
    devices_url: Mapped[str | None] = mapped_column(String(2048), default=None)
    avatar_remote_url: Mapped[str | None] = mapped_column(String(2048), default=None)
    header_remote_url: Mapped[str | None] = mapped_column(String(2048), default=None)
    also_known_as: Mapped[list[Any]] = mapped_column(default=list)
    moved_to_account_id: Mapped[int | None] = _fk("accounts.id", nullable=True, ondelete="SET NULL")
    fetched_at: Mapped[datetime | None] = mapped_column(default=None)
    # Who may send this member end-to-end encrypted messages (server.e2ee.DM_POLICIES).
    dm_policy: Mapped[str] = mapped_column(String(24), default="following_and_groups")

    @property
    def local(self) -> bool:
        return self.domain == ""

    @property
    def is_group(self) -> bool:
        return self.actor_type == "Group"


class User(Base):
    """A local login. Pseudonymous: email is optional."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    account_id: Mapped[int] = _fk("accounts.id")
    email: Mapped[str | None] = mapped_column(String(320), default=None, unique=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(16), default="member")  # admin|moderator|member
    approved: Mapped[bool] = mapped_column(Boolean, default=True)
    registration_reason: Mapped[str] = mapped_column(Text, default="")
    invite_id: Mapped[int | None] = _fk("invites.id", nullable=True, ondelete="SET NULL")
    locale: Mapped[str] = mapped_column(String(16), default="en")
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False)
    # Log-in disabled by a moderator (Mastodon's "freeze"): the account stays visible.
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]
    last_login_at: Mapped[datetime | None] = mapped_column(default=None)
    trained_responder: Mapped[bool] = mapped_column(Boolean, default=False)  # sees the crisis queue (server/safety.py)
    country: Mapped[str | None] = mapped_column(String(2), default=None)  # ISO 3166-1 alpha-2, for helplines

    __table_args__ = (UniqueConstraint("account_id"),)


class Invite(Base):
    """An instance invite code (registration mode ``invite``)."""

    __tablename__ = "invites"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    created_by_account_id: Mapped[int | None] = _fk("accounts.id", nullable=True, ondelete="SET NULL")
    max_uses: Mapped[int | None] = mapped_column(Integer, default=None)
    uses: Mapped[int] = mapped_column(Integer, default=0)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime]


class Group(Base):
    """Settings of a group; its identity, name and counters live in its ``accounts`` row."""

    __tablename__ = "groups"

    account_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    rules: Mapped[list[Any]] = mapped_column(default=list)
    topic_tags: Mapped[list[Any]] = mapped_column(default=list)
    language: Mapped[str] = mapped_column(String(16), default="en")
    join_policy: Mapped[str] = mapped_column(String(16), default="open")  # open|approval|invite
    members_only: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by_account_id: Mapped[int | None] = _fk("accounts.id", nullable=True, ondelete="SET NULL")


class GroupRole(Base):
    """Owner and moderators of a group."""

    __tablename__ = "group_roles"
    __table_args__ = (UniqueConstraint("group_id", "account_id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    group_id: Mapped[int] = _fk("accounts.id")
    account_id: Mapped[int] = _fk("accounts.id", index=True)
    role: Mapped[str] = mapped_column(String(16))  # owner|moderator
    created_at: Mapped[datetime]


class GroupBan(Base):
    __tablename__ = "group_bans"
    __table_args__ = (UniqueConstraint("group_id", "account_id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    group_id: Mapped[int] = _fk("accounts.id")
    account_id: Mapped[int] = _fk("accounts.id", index=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    created_by_account_id: Mapped[int | None] = _fk("accounts.id", nullable=True, ondelete="SET NULL")
    created_at: Mapped[datetime]


class GroupInvite(Base):
    """Entry to an invite-only group: a code anyone holding it may use, or one named account."""

    __tablename__ = "group_invites"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    group_id: Mapped[int] = _fk("accounts.id", index=True)
    code: Mapped[str | None] = mapped_column(String(64), unique=True, default=None)
    account_id: Mapped[int | None] = _fk("accounts.id", nullable=True)
    created_by_account_id: Mapped[int | None] = _fk("accounts.id", nullable=True, ondelete="SET NULL")
    max_uses: Mapped[int | None] = mapped_column(Integer, default=None)
    uses: Mapped[int] = mapped_column(Integer, default=0)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime]


class Follow(Base):
    """A follow, a follow request (``state == "pending"``), or a group membership."""

    __tablename__ = "follows"
    __table_args__ = (
        UniqueConstraint("account_id", "target_account_id"),
        Index("ix_follows_target_state", "target_account_id", "state", "id"),
        Index("ix_follows_target_remote", "target_account_id", "remote", "state"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    account_id: Mapped[int] = _fk("accounts.id")
    target_account_id: Mapped[int] = _fk("accounts.id")
    state: Mapped[str] = mapped_column(String(16), default="accepted")  # accepted|pending
    show_reblogs: Mapped[bool] = mapped_column(Boolean, default=True)
    notify: Mapped[bool] = mapped_column(Boolean, default=False)
    uri: Mapped[str | None] = mapped_column(String(2048), default=None, index=True)
    # The follower is a remote account: deliveries to a group's or person's followers find
    # their remote inboxes on an index, never scanning thousands of local members.
    remote: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]


class Block(Base):
    __tablename__ = "blocks"
    __table_args__ = (UniqueConstraint("account_id", "target_account_id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    account_id: Mapped[int] = _fk("accounts.id")
    target_account_id: Mapped[int] = _fk("accounts.id", index=True)
    created_at: Mapped[datetime]


class Mute(Base):
    __tablename__ = "mutes"
    __table_args__ = (UniqueConstraint("account_id", "target_account_id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    account_id: Mapped[int] = _fk("accounts.id")
    target_account_id: Mapped[int] = _fk("accounts.id", index=True)
    hide_notifications: Mapped[bool] = mapped_column(Boolean, default=True)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime]


class Status(Base):
    """A post, reply or boost (``reblog_of_id``), on a profile or in a group (``group_id``)."""

    __tablename__ = "statuses"
    __table_args__ = (
        Index("ix_statuses_account_id_id", "account_id", "id"),
        Index("ix_statuses_group_id_id", "group_id", "id"),
        Index("ix_statuses_thread_root_id", "thread_root_id", "id"),
        Index("ix_statuses_visibility_id", "visibility", "id"),
        UniqueConstraint("uri"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    account_id: Mapped[int] = _fk("accounts.id")
    group_id: Mapped[int | None] = _fk("accounts.id", nullable=True)
    in_reply_to_id: Mapped[int | None] = _fk("statuses.id", nullable=True, ondelete="SET NULL", index=True)
    in_reply_to_account_id: Mapped[int | None] = _fk("accounts.id", nullable=True, ondelete="SET NULL")
    # A remote parent not (yet) fetched: the thread is stitched when it arrives.
    in_reply_to_uri: Mapped[str | None] = mapped_column(String(2048), default=None, index=True)
    thread_root_id: Mapped[int | None] = mapped_column(BigInteger, default=None)
    reblog_of_id: Mapped[int | None] = _fk("statuses.id", nullable=True, index=True)
    visibility: Mapped[str] = mapped_column(String(16), default="public")  # public|unlisted|private
    text: Mapped[str] = mapped_column(Text, default="")  # Markdown source as written
    content: Mapped[str] = mapped_column(Text, default="")  # sanitized HTML
    spoiler_text: Mapped[str] = mapped_column(Text, default="")
    sensitive: Mapped[bool] = mapped_column(Boolean, default=False)
    language: Mapped[str | None] = mapped_column(String(16), default=None)
    uri: Mapped[str | None] = mapped_column(String(2048), default=None)
    url: Mapped[str | None] = mapped_column(String(2048), default=None)
    local: Mapped[bool] = mapped_column(Boolean, default=True)
    application_id: Mapped[int | None] = _fk("oauth_apps.id", nullable=True, ondelete="SET NULL")
    replies_count: Mapped[int] = mapped_column(Integer, default=0)
    reblogs_count: Mapped[int] = mapped_column(Integer, default=0)
    favourites_count: Mapped[int] = mapped_column(Integer, default=0)
    # A group moderator closed the thread to new replies (Lemmy's Lock, FEP-1b12 moderation).
    replies_locked: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]
    edited_at: Mapped[datetime | None] = mapped_column(default=None)
    deleted_at: Mapped[datetime | None] = mapped_column(default=None)
    hidden_at: Mapped[datetime | None] = mapped_column(default=None)  # hidden pending review (server/safety.py)
    hidden_reason: Mapped[str | None] = mapped_column(String(32), default=None)
    topics: Mapped[list[Any]] = mapped_column(default=list)  # trigger topic ids (server/topics.py)


class StatusEdit(Base):
    """One version of a status: the original is version 0, each edit appends one."""

    __tablename__ = "status_edits"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    status_id: Mapped[int] = _fk("statuses.id", index=True)
    account_id: Mapped[int] = _fk("accounts.id")
    text: Mapped[str] = mapped_column(Text, default="")
    content: Mapped[str] = mapped_column(Text, default="")
    spoiler_text: Mapped[str] = mapped_column(Text, default="")
    sensitive: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]


class Mention(Base):
    __tablename__ = "mentions"

    status_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("statuses.id", ondelete="CASCADE"), primary_key=True)
    account_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class Tag(Base):
    __tablename__ = "tags"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(100), unique=True)  # normalised lowercase
    display_name: Mapped[str] = mapped_column(String(100))


class StatusTag(Base):
    __tablename__ = "status_tags"
    __table_args__ = (Index("ix_status_tags_tag_id_status_id", "tag_id", "status_id"),)

    status_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("statuses.id", ondelete="CASCADE"), primary_key=True)
    tag_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True)


class Favourite(Base):
    __tablename__ = "favourites"
    __table_args__ = (UniqueConstraint("account_id", "status_id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    account_id: Mapped[int] = _fk("accounts.id")
    status_id: Mapped[int] = _fk("statuses.id", index=True)
    uri: Mapped[str | None] = mapped_column(String(2048), default=None, index=True)  # a remote Like's id
    created_at: Mapped[datetime]


class Notification(Base):
    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_account_id_id", "account_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    account_id: Mapped[int] = _fk("accounts.id")  # recipient
    from_account_id: Mapped[int] = _fk("accounts.id", index=True)
    type: Mapped[str] = mapped_column(String(32))
    status_id: Mapped[int | None] = _fk("statuses.id", nullable=True, index=True)
    created_at: Mapped[datetime]


class StatusIdempotencyKey(Base):
    """A client's ``Idempotency-Key`` for ``POST /api/v1/statuses``, honoured for an hour.

    The key is stored as a SHA-256 digest: clients choose it freely, the digest bounds it.
    """

    __tablename__ = "status_idempotency_keys"
    __table_args__ = (UniqueConstraint("account_id", "key_digest"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    account_id: Mapped[int] = _fk("accounts.id")
    key_digest: Mapped[str] = mapped_column(String(64))
    status_id: Mapped[int] = _fk("statuses.id")
    created_at: Mapped[datetime]


class OAuthApp(Base):
    __tablename__ = "oauth_apps"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(200))
    website: Mapped[str | None] = mapped_column(String(2048), default=None)
    redirect_uris: Mapped[list[Any]] = mapped_column(default=list)
    scopes: Mapped[str] = mapped_column(String(1024), default="read")
    client_id: Mapped[str] = mapped_column(String(64), unique=True)
    client_secret_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]


class OAuthCode(Base):
    __tablename__ = "oauth_codes"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    app_id: Mapped[int] = _fk("oauth_apps.id")
    user_id: Mapped[int] = _fk("users.id")
    scopes: Mapped[str] = mapped_column(String(1024))
    redirect_uri: Mapped[str] = mapped_column(String(2048))
    code_challenge: Mapped[str | None] = mapped_column(String(128), default=None)
    code_challenge_method: Mapped[str | None] = mapped_column(String(16), default=None)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None] = mapped_column(default=None)


class OAuthToken(Base):
    __tablename__ = "oauth_tokens"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    app_id: Mapped[int | None] = _fk("oauth_apps.id", nullable=True, index=True)
    user_id: Mapped[int | None] = _fk("users.id", nullable=True, index=True)
    scopes: Mapped[str] = mapped_column(String(1024))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    # The authorization code this token was exchanged for: a replayed code revokes it (RFC 6749 §4.1.2).
    code_id: Mapped[int | None] = _fk("oauth_codes.id", nullable=True, ondelete="SET NULL", index=True)


class RateLimitHits(Base):
    """Events counted against one security rate limit in one fixed window (server/ratelimit.py).

    The primary key leads with ``(bucket, window_start)`` so that pruning a bucket's old
    windows is a range of the key, and a key's two live windows are two point lookups.
    ``key`` is a SHA-256 digest, never the login name, user or actor it stands for.
    """

    __tablename__ = "rate_limit_hits"

    bucket: Mapped[str] = mapped_column(String(32), primary_key=True)
    window_start: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)  # unix seconds
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    hits: Mapped[int] = mapped_column(Integer)


class KnownLoginAddress(Base):
    """A client address a login name recently logged in from with the right password
    (server/oauth.py ``LoginThrottle``): attempts from it are not held to the per-name limit,
    so failed logins sent from elsewhere cannot lock the member out of their usual places.

    ``key`` is an HMAC, under a key derived from the instance secret, of the login name and the
    address (an IPv6 address by its /64), never either in the clear; rows older than
    ``security.known_login_address_days`` are deleted.
    """

    __tablename__ = "known_login_addresses"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_login_at: Mapped[datetime] = mapped_column(index=True)


# --- Federation -----------------------------------------------------------------------------


class ActorKey(Base):
    """A signing key of an actor (research/federation.md §8.1 item 4, FEP-521a).

    Local actors get an RSA-2048 key (``actor#main-key``, draft-cavage signatures, the single
    ``publicKey`` object) and an Ed25519 key (``actor#ed25519-key``, ``assertionMethod``,
    FEP-8b32 proofs) on first use; the private PEM lives only on local rows. Remote rows are
    the key cache: refetched once when a signature fails to verify. A rotated key keeps its
    row with ``revoked_at`` set so old proofs can be explained, never verified.
    """

    __tablename__ = "actor_keys"
    __table_args__ = (Index("ix_actor_keys_account_id_kind", "account_id", "kind"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    account_id: Mapped[int] = _fk("accounts.id")
    key_id: Mapped[str] = mapped_column(String(2048), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # rsa|ed25519
    public_pem: Mapped[str] = mapped_column(Text)
    private_pem: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class InboxItem(Base):
    """A received, signature-verified activity awaiting (or done with) processing.

    The inbox answers 202 once this row is committed; a worker applies it. ``activity_id`` is
    unique: the same activity delivered twice (to two personal inboxes, or retried by its
    sender) is stored and applied once. The body is cleared when processing finishes; the row
    stays for deduplication until pruned.
    States: pending -> done | failed (after ``attempts`` reach the limit); a claimed row has
    ``locked_until`` in the future so a crashed worker's claim expires.
    """

    __tablename__ = "inbox_items"
    __table_args__ = (Index("ix_inbox_items_state_next_attempt_at", "state", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    activity_id: Mapped[str] = mapped_column(String(2048), unique=True)
    activity_type: Mapped[str] = mapped_column(String(32))
    actor_uri: Mapped[str] = mapped_column(String(2048))
    signer_key_id: Mapped[str] = mapped_column(String(2048))
    recipient_account_id: Mapped[int | None] = _fk("accounts.id", nullable=True, ondelete="SET NULL")
    # An embedded object from another origin without a valid FEP-8b32 proof: the worker
    # fetches this id from its origin and uses that copy (FEP-fe34, research §8.4 item 23).
    refetch_uri: Mapped[str | None] = mapped_column(String(2048), default=None)
    body: Mapped[str | None] = mapped_column(Text, default=None)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    locked_until: Mapped[datetime | None] = mapped_column(default=None)
    error: Mapped[str | None] = mapped_column(String(255), default=None)  # a reason code, never content
    received_at: Mapped[datetime]
    processed_at: Mapped[datetime | None] = mapped_column(default=None)


class OutboxActivity(Base):
    """An activity we sent (or will send): the exact JSON every delivery of it carries."""

    __tablename__ = "outbox_activities"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    uri: Mapped[str] = mapped_column(String(2048), unique=True)
    account_id: Mapped[int | None] = _fk("accounts.id", nullable=True, index=True)  # None: instance actor
    activity_type: Mapped[str] = mapped_column(String(32))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]


class Delivery(Base):
    """One (activity, inbox) delivery: the unit the delivery worker claims, retries and ends.

    States: pending -> delivered | failed (permanent 4xx, or retries exhausted) | skipped
    (destination blocked or unavailable when due). The retry schedule and the meaning of each
    answer are pure rules in ``federation.delivery``.
    """

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("activity_id", "inbox_url"),
        Index("ix_deliveries_state_next_attempt_at", "state", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    activity_id: Mapped[int] = _fk("outbox_activities.id")
    inbox_url: Mapped[str] = mapped_column(String(2048))
    domain: Mapped[str] = mapped_column(String(255), index=True)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    locked_until: Mapped[datetime | None] = mapped_column(default=None)
    last_status: Mapped[int | None] = mapped_column(Integer, default=None)
    last_error: Mapped[str | None] = mapped_column(String(255), default=None)
    created_at: Mapped[datetime]
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class DomainHealth(Base):
    """Delivery health of a remote domain: circuit breaker and the 7-distinct-days rule."""

    __tablename__ = "domain_health"

    domain: Mapped[str] = mapped_column(String(255), primary_key=True)
    failure_days: Mapped[list[Any]] = mapped_column(default=list)  # ISO dates (UTC) with failures
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    circuit_open_until: Mapped[datetime | None] = mapped_column(default=None)
    unavailable_since: Mapped[datetime | None] = mapped_column(default=None)
    last_success_at: Mapped[datetime | None] = mapped_column(default=None)


class DomainBlock(Base):
    """An instance-level decision about a remote domain, with Mastodon's severities.

    Applies to the domain and its subdomains. The moderation issue builds the tools around
    it (import/export, feeds, admin API); federation enforces it: a suspended domain's
    requests are refused and nothing is delivered to it.
    """

    __tablename__ = "domain_blocks"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    domain: Mapped[str] = mapped_column(String(255), unique=True)  # lowercase, punycode
    severity: Mapped[str] = mapped_column(String(16), default="suspend")  # suspend|silence|noop
    reject_media: Mapped[bool] = mapped_column(Boolean, default=False)
    reject_reports: Mapped[bool] = mapped_column(Boolean, default=False)
    obfuscate: Mapped[bool] = mapped_column(Boolean, default=False)
    private_comment: Mapped[str] = mapped_column(Text, default="")
    public_comment: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    # Provenance (server/subscriptions.py): the subscription managing this decision (None: a
    # moderator's own, "manual") and the merged feed result it enforces (FIRES policy/filters).
    managed_by: Mapped[int | None] = mapped_column(BigInteger, default=None, index=True)
    managed_policy: Mapped[str | None] = mapped_column(String(8), default=None)
    managed_filters: Mapped[list[Any]] = mapped_column(default=list)
    managed_labels: Mapped[list[Any]] = mapped_column(default=list)


class Job(Base):
    """Other durable background work (remote fetches for thread stitching, actor refreshes).

    ``unique_key`` collapses duplicates (e.g. one fetch per URL in flight).
    """

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_state_next_attempt_at", "state", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(32))
    unique_key: Mapped[str | None] = mapped_column(String(2048), unique=True, default=None)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    locked_until: Mapped[datetime | None] = mapped_column(default=None)
    error: Mapped[str | None] = mapped_column(String(255), default=None)
    created_at: Mapped[datetime]


class Report(Base):
    """A report for moderators: from a member, or from another instance's ``Flag``.

    Federation files remote ``Flag``s here (reporter unknown: ``reporter_account_id`` is
    None and ``origin_domain`` says where it came from); the moderation issue builds the
    queue, assignment, actions and outcomes around it.
    """

    __tablename__ = "reports"
    __table_args__ = (Index("ix_reports_state_id", "state", "id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    uri: Mapped[str | None] = mapped_column(String(2048), default=None, unique=True)  # a Flag's id
    reporter_account_id: Mapped[int | None] = _fk("accounts.id", nullable=True, ondelete="SET NULL")
    origin_domain: Mapped[str] = mapped_column(String(255), default="")  # "" for local reports
    target_account_id: Mapped[int] = _fk("accounts.id", index=True)
    status_ids: Mapped[list[Any]] = mapped_column(default=list)
    comment: Mapped[str] = mapped_column(Text, default="")
    category: Mapped[str] = mapped_column(String(32), default="other")
    state: Mapped[str] = mapped_column(String(16), default="open")  # open|resolved
    created_at: Mapped[datetime]
    # The queue (server/reports.py): outcome of a resolved report, actioned or declined.
    outcome: Mapped[str] = mapped_column(String(16), default="")
    rule_ids: Mapped[list[Any]] = mapped_column(default=list)
    assigned_account_id: Mapped[int | None] = _fk("accounts.id", nullable=True, ondelete="SET NULL")
    action_taken_at: Mapped[datetime | None] = mapped_column(default=None)
    action_taken_by_account_id: Mapped[int | None] = _fk("accounts.id", nullable=True, ondelete="SET NULL")
    updated_at: Mapped[datetime | None] = mapped_column(default=None)
    # A member's request to forward (recorded only: a moderator decides) and what was sent.
    forward_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    forward_to_domains: Mapped[list[Any]] = mapped_column(default=list)
    forwarded_at: Mapped[datetime | None] = mapped_column(default=None)
    forwarded_to: Mapped[list[Any]] = mapped_column(default=list)


# --- End-to-end encrypted messages (docs/e2ee.md) ---------------------------------------------


class E2EEIdentity(Base):
    """A member's E2EE identity: the master public key and the device list it signed.

    ``device_list`` is the signed document exactly as the member's client uploaded it; the
    server checks the signature and that ``version`` only grows, but cannot forge one (it
    never holds the master private key), so it cannot add a device unnoticed.
    """

    __tablename__ = "e2ee_identities"

    account_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    master_key: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(BigInteger, default=0)
    device_list: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    updated_at: Mapped[datetime]


class E2EEDevice(Base):
    """One device (an Olm account on a member's client), bound to the OAuth token it registered
    with. States: pending (registered, not yet in a signed list: nobody encrypts to it) ->
    active (in the signed list) -> revoked (removed; its token, keys and inbox are gone)."""

    __tablename__ = "e2ee_devices"
    __table_args__ = (UniqueConstraint("account_id", "device_id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    account_id: Mapped[int] = _fk("accounts.id", index=True)
    device_id: Mapped[str] = mapped_column(String(64))
    token_id: Mapped[int | None] = _fk("oauth_tokens.id", nullable=True, ondelete="SET NULL", index=True)
    identity_key: Mapped[str] = mapped_column(String(64))
    fingerprint_key: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), default="pending")
    # Ciphertexts waiting in this device's inbox (kept with the rows, so "is it full" is one read).
    pending: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class E2EEOneTimeKey(Base):
    """A signed one-time key (handed out once, then deleted) or the device's fallback key."""

    __tablename__ = "e2ee_one_time_keys"
    __table_args__ = (UniqueConstraint("device_pk", "fallback", "key_id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    device_pk: Mapped[int] = _fk("e2ee_devices.id")
    key_id: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(String(128))
    fallback: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]


class E2EEMessage(Base):
    """One ciphertext waiting in a device's inbox; deleted on acknowledgement or at expiry.

    Holds ciphertext, routing and the franking values only: never plaintext.
    """

    __tablename__ = "e2ee_messages"
    __table_args__ = (
        UniqueConstraint("device_pk", "object_uri"),
        Index("ix_e2ee_messages_expires_at", "expires_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    device_pk: Mapped[int] = _fk("e2ee_devices.id")
    object_uri: Mapped[str] = mapped_column(String(2048))
    sender_actor: Mapped[str] = mapped_column(String(2048))
    sender_device: Mapped[str] = mapped_column(String(64))
    recipient_actor: Mapped[str] = mapped_column(String(2048))
    message_type: Mapped[int] = mapped_column(Integer)
    body: Mapped[str] = mapped_column(Text)  # base64 Olm ciphertext
    franking_tag: Mapped[str] = mapped_column(String(64))
    sender_stamp: Mapped[str] = mapped_column(String(200))  # the sending server's stamp
    stamp: Mapped[str] = mapped_column(String(200))  # ours (the same as sender_stamp for local senders)
    stamped_at: Mapped[datetime]
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]


class E2EEStampKey(Base):
    """A franking stamp key of this instance (HMAC); old keys stay so old stamps verify."""

    __tablename__ = "e2ee_stamp_keys"

    key_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    secret: Mapped[str] = mapped_column(String(64))  # base64
    created_at: Mapped[datetime]
    retired_at: Mapped[datetime | None] = mapped_column(default=None)


class E2EEReportMessage(Base):
    """A message a reporter chose to reveal to moderators, with its franking verification.

    ``sealed`` is the revealed JSON encrypted with a key derived from the instance secret, so a
    database dump alone does not show it.
    """

    __tablename__ = "e2ee_report_messages"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    report_id: Mapped[int] = _fk("reports.id", index=True)
    object_uri: Mapped[str] = mapped_column(String(2048))
    sealed: Mapped[str] = mapped_column(Text)
    verified: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]


class E2EEAttachment(Base):
    """An attachment's ciphertext (crypto/attachments.py), uploaded by the sending member's
    device. Only its sender and whoever holds the URL's token can fetch it, and it opens only
    with the key inside the encrypted message. The token is stored as its SHA-256 digest, so a
    database dump does not hand out working URLs."""

    __tablename__ = "e2ee_attachments"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    token_digest: Mapped[str] = mapped_column(String(64), unique=True)
    account_id: Mapped[int] = _fk("accounts.id", index=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    size: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)


class PlaintextMessage(Base):
    """A direct message from software without E2EE, kept only when the instance opts in
    (``[e2ee] accept_plaintext_dms``) and shown apart, labelled "not end-to-end encrypted"."""

    __tablename__ = "plaintext_messages"
    __table_args__ = (Index("ix_plaintext_messages_recipient_account_id_id", "recipient_account_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    uri: Mapped[str] = mapped_column(String(2048), unique=True)
    recipient_account_id: Mapped[int] = _fk("accounts.id")
    sender_account_id: Mapped[int] = _fk("accounts.id", index=True)
    content: Mapped[str] = mapped_column(Text)  # sanitized HTML
    created_at: Mapped[datetime]


# --- Moderation --------------------------------------------------------------------------------


class AuditEntry(Base):
    """One moderation action: who (a staff account, or none for the instance's own automation),
    what (``action`` on ``target_type``/``target``), why (``reason``), from where (``source``:
    ``api``, ``import``, ``subscription:<id>``, ...), and the resulting values (``details``).
    Append-only; never holds message content or reporter identities."""

    __tablename__ = "audit_entries"
    __table_args__ = (Index("ix_audit_entries_target_type_target", "target_type", "target"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    actor_account_id: Mapped[int | None] = _fk("accounts.id", nullable=True, ondelete="SET NULL", index=True)
    source: Mapped[str] = mapped_column(String(64), default="api")
    action: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str] = mapped_column(String(32))
    target: Mapped[str] = mapped_column(String(2048))
    reason: Mapped[str] = mapped_column(Text, default="")
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime]


# --- Reports, account actions, strikes, appeals, rules, notes (server/reports.py) -----------
# (section: reports)


class Rule(Base):
    """A server rule (Mastodon's ``Rule``): reports cite them; soft-deleted so old reports keep
    their meaning."""

    __tablename__ = "rules"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    text: Mapped[str] = mapped_column(Text)
    hint: Mapped[str] = mapped_column(Text, default="")
    position: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    deleted_at: Mapped[datetime | None] = mapped_column(default=None)


class ModerationNote(Base):
    """A staff-only note on a report or on an account; never shown to members, never federated."""

    __tablename__ = "moderation_notes"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    report_id: Mapped[int | None] = _fk("reports.id", nullable=True, index=True)
    target_account_id: Mapped[int | None] = _fk("accounts.id", nullable=True, index=True)
    account_id: Mapped[int | None] = _fk("accounts.id", nullable=True, ondelete="SET NULL")  # the author
    content: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]


class AccountWarning(Base):
    """A strike (Mastodon's ``AccountWarning``): one per moderation action on an account."""

    __tablename__ = "account_warnings"
    __table_args__ = (Index("ix_account_warnings_target_account_id_id", "target_account_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    target_account_id: Mapped[int] = _fk("accounts.id")
    account_id: Mapped[int | None] = _fk("accounts.id", nullable=True, ondelete="SET NULL")  # the moderator
    action: Mapped[str] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(Text, default="")
    status_ids: Mapped[list[Any]] = mapped_column(default=list)
    report_id: Mapped[int | None] = _fk("reports.id", nullable=True, ondelete="SET NULL")
    # Extra facts the action needs to be undone (e.g. the group of a group ban).
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime]
    overruled_at: Mapped[datetime | None] = mapped_column(default=None)


class Appeal(Base):
    """A member's one appeal against a strike: pending -> approved | rejected."""

    __tablename__ = "appeals"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    account_warning_id: Mapped[int] = _fk("account_warnings.id")
    account_id: Mapped[int] = _fk("accounts.id", index=True)
    text: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    decided_by_account_id: Mapped[int | None] = _fk("accounts.id", nullable=True, ondelete="SET NULL")
    decided_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime]

    __table_args__ = (UniqueConstraint("account_warning_id"),)


class ModerationNotificationLink(Base):
    """What a moderation notification is about (its report, strike or appeal), for rendering."""

    __tablename__ = "moderation_notification_links"

    notification_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("notifications.id", ondelete="CASCADE"), primary_key=True
    )
    report_id: Mapped[int | None] = _fk("reports.id", nullable=True)
    account_warning_id: Mapped[int | None] = _fk("account_warnings.id", nullable=True)
    appeal_id: Mapped[int | None] = _fk("appeals.id", nullable=True)


# --- Domain allows and federation mode (server/domains.py) ----------------------------------
# (section: domain-allows)


class DomainAllow(Base):
    """A domain this instance federates with in allowlist mode (``[federation] mode``), itself
    and its subdomains; in blocklist mode an allow means "never block this" to subscriptions."""

    __tablename__ = "domain_allows"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    domain: Mapped[str] = mapped_column(String(255), unique=True)  # lowercase, punycode
    created_at: Mapped[datetime]


class RelationshipSeveranceEvent(Base):
    """Follows cut by a moderation decision (Mastodon 4.3): a domain suspended (``domain_block``)."""

    __tablename__ = "relationship_severance_events"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    type: Mapped[str] = mapped_column(String(32))  # domain_block | user_domain_block | account_suspension
    target_name: Mapped[str] = mapped_column(String(255))
    purged: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]


class AccountSeveranceEvent(Base):
    """What one local member lost in a severance event. Its id is also the id of the member's
    ``severed_relationships`` notification, which is how the notification finds its event."""

    __tablename__ = "account_severance_events"
    __table_args__ = (Index("ix_account_severance_events_account_id_id", "account_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    account_id: Mapped[int] = _fk("accounts.id")
    event_id: Mapped[int] = _fk("relationship_severance_events.id", index=True)
    followers_count: Mapped[int] = mapped_column(Integer, default=0)
    following_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]


# --- Published decision feed (server/feeds.py) ----------------------------------------------
# (section: feeds)


class ModerationKey(Base):
    """An Ed25519 key that signs this instance's moderation feed entries (research/moderation.md
    §6.b). Separate from the HTTP-signature keys. Rotation sets ``revoked_at`` and clears the
    private half; the row stays so the key is still published and old entries still verify."""

    __tablename__ = "moderation_keys"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    key_id: Mapped[str] = mapped_column(String(2048), unique=True)
    public_multibase: Mapped[str] = mapped_column(String(128))
    private_pem: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class FeedEntry(Base):
    """One published, signed entry of the decision feed; append-only (a Tombstone deletes the
    earlier rows about its entity). ``audience`` is ``public`` (both feeds) or ``partners``.
    ``state`` is a digest of what a Recommendation says, so an unchanged decision publishes
    nothing."""

    __tablename__ = "feed_entries"
    __table_args__ = (Index("ix_feed_entries_entity_kind_entity_key", "entity_kind", "entity_key"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    change_id: Mapped[str] = mapped_column(String(36), unique=True)
    entry_id: Mapped[str] = mapped_column(String(2048), unique=True)
    entity_kind: Mapped[str] = mapped_column(String(16))
    entity_key: Mapped[str] = mapped_column(String(2048))
    entry_type: Mapped[str] = mapped_column(String(16))
    audience: Mapped[str] = mapped_column(String(16))
    key_id: Mapped[str] = mapped_column(String(2048))
    state: Mapped[str] = mapped_column(String(64), default="")
    source: Mapped[str] = mapped_column(String(64), default="")
    document: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime | None] = mapped_column(default=None)


class FeedState(Base):
    """The one row writers of the feed lock (UPDATE) so change ids are handed out, and committed,
    in increasing order; ``last_change_id`` seeds the UUIDv7 generator."""

    __tablename__ = "feed_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_change_id: Mapped[str] = mapped_column(String(36), default="")
    updated_at: Mapped[datetime]


# --- Subscriptions to other instances' decisions (server/subscriptions.py) ------------------
# (section: subscriptions)


class Subscription(Base):
    """A subscribed moderation feed or legacy block list (server/subscriptions.py).

    ``format``: ``signed`` (our feed, entries with proofs), ``fires`` (an unsigned FIRES dataset),
    ``mastodon_csv``, ``fediblockhole_csv``, ``gotosocial_json``, ``mastodon_json``. Signed feeds
    keep the publisher keys pinned at subscribe time (``pinned_keys``: id and multibase) and a
    ``cursor`` (last changeId applied); ``etag``/``last_modified`` belong to ``etag_url``.
    """

    __tablename__ = "subscriptions"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    url: Mapped[str] = mapped_column(String(2048))
    format: Mapped[str] = mapped_column(String(24))
    name: Mapped[str] = mapped_column(String(200), default="")
    mode: Mapped[str] = mapped_column(String(8), default="draft")  # draft | auto
    trust_weight: Mapped[int] = mapped_column(Integer, default=1)
    max_policy: Mapped[str] = mapped_column(String(8), default="drop")
    retraction_mode: Mapped[str] = mapped_column(String(8), default="remove")  # remove | orphan
    independence_group: Mapped[str | None] = mapped_column(String(200), default=None)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    interval_seconds: Mapped[int] = mapped_column(Integer, default=3600)
    feed_id: Mapped[str | None] = mapped_column(String(2048), default=None)  # the dataset's id
    publisher: Mapped[str | None] = mapped_column(String(2048), default=None)
    snapshot_url: Mapped[str | None] = mapped_column(String(2048), default=None)
    changes_url: Mapped[str | None] = mapped_column(String(2048), default=None, index=True)
    pinned_keys: Mapped[list[Any]] = mapped_column(default=list)
    cursor: Mapped[str | None] = mapped_column(String(64), default=None)
    etag_url: Mapped[str | None] = mapped_column(String(2048), default=None)
    etag: Mapped[str | None] = mapped_column(String(512), default=None)
    last_modified: Mapped[str | None] = mapped_column(String(128), default=None)
    last_sync_at: Mapped[datetime | None] = mapped_column(default=None)
    last_success_at: Mapped[datetime | None] = mapped_column(default=None)
    last_result: Mapped[dict[str, Any]] = mapped_column(default=dict)
    last_error: Mapped[str | None] = mapped_column(String(255), default=None)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    next_sync_at: Mapped[datetime | None] = mapped_column(default=None, index=True)
    sync_locked_until: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class SubscriptionOpinion(Base):
    """A subscription's current entry about one entity (its latest non-retracted one).

    Legacy lists count ``absences``: consecutive successful fetches without the entity; at two
    the opinion is dropped (implicit retraction).
    """

    __tablename__ = "subscription_opinions"
    __table_args__ = (UniqueConstraint("subscription_id", "entity_kind", "entity_key"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    subscription_id: Mapped[int] = _fk("subscriptions.id")
    entity_kind: Mapped[str] = mapped_column(String(16))
    entity_key: Mapped[str] = mapped_column(String(2048))
    policy: Mapped[str] = mapped_column(String(8))
    filters: Mapped[list[Any]] = mapped_column(default=list)
    labels: Mapped[list[Any]] = mapped_column(default=list)
    entry_id: Mapped[str] = mapped_column(String(2048))
    change_id: Mapped[str | None] = mapped_column(String(64), default=None)
    derived_from: Mapped[list[Any]] = mapped_column(default=list)
    expires: Mapped[datetime | None] = mapped_column(default=None)
    reason: Mapped[dict[str, Any]] = mapped_column(default=dict)
    absences: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime]


class ModerationDraft(Base):
    """A change the subscriptions propose and a moderator accepts or rejects.

    ``state``: pending, accepted, rejected, or superseded (a later sync no longer proposes it).
    ``supporters`` and ``reasons`` are the merge's provenance (entry ids, never reason texts).
    """

    __tablename__ = "moderation_drafts"
    __table_args__ = (Index("ix_moderation_drafts_state_id", "state", "id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    entity_kind: Mapped[str] = mapped_column(String(16))
    entity_key: Mapped[str] = mapped_column(String(2048))
    action: Mapped[str] = mapped_column(String(16))  # add | update | remove | orphan
    policy: Mapped[str | None] = mapped_column(String(8), default=None)
    filters: Mapped[list[Any]] = mapped_column(default=list)
    labels: Mapped[list[Any]] = mapped_column(default=list)
    previous_policy: Mapped[str | None] = mapped_column(String(8), default=None)
    owner_subscription_id: Mapped[int | None] = mapped_column(BigInteger, default=None)
    previous_owner_subscription_id: Mapped[int | None] = mapped_column(BigInteger, default=None)
    supporters: Mapped[list[Any]] = mapped_column(default=list)
    reasons: Mapped[list[Any]] = mapped_column(default=list)
    review: Mapped[list[Any]] = mapped_column(default=list)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    decided_by_account_id: Mapped[int | None] = _fk("accounts.id", nullable=True, ondelete="SET NULL")
    decided_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


# --- Member safety: crisis queue, concern reports (server/safety.py) --------------------------


class CrisisItem(Base):
    """An item of the crisis queue, seen by trained responders and admins only.

    ``kind``: ``post`` (a local post whose text may indicate a crisis) or ``concern`` (a member
    worried about another). ``state``: open -> acknowledged -> escalated -> resolved | dismissed
    (``server.safety.TRANSITIONS``). ``explanation`` is for responders only: never logged,
    federated, exported or put in an audit entry.
    """

    __tablename__ = "crisis_items"
    __table_args__ = (
        Index("ix_crisis_items_state_priority_due_at", "state", "priority", "due_at"),
        Index("ix_crisis_items_reporter_account_id_created_at", "reporter_account_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(16))  # post | concern
    account_id: Mapped[int] = _fk("accounts.id", index=True)  # the member the item is about
    status_id: Mapped[int | None] = _fk("statuses.id", nullable=True, ondelete="SET NULL", index=True)
    reporter_account_id: Mapped[int | None] = _fk("accounts.id", nullable=True, ondelete="SET NULL")
    level: Mapped[str] = mapped_column(String(16))  # low | high | concern
    method_detail: Mapped[bool] = mapped_column(Boolean, default=False)
    priority: Mapped[int] = mapped_column(Integer)  # 0 first
    explanation: Mapped[str] = mapped_column(Text, default="")
    comment: Mapped[str] = mapped_column(Text, default="")
    state: Mapped[str] = mapped_column(String(16), default="open")
    state_reason: Mapped[str] = mapped_column(Text, default="")
    assignee_account_id: Mapped[int | None] = _fk("accounts.id", nullable=True, ondelete="SET NULL")
    created_at: Mapped[datetime]
    due_at: Mapped[datetime]
    updated_at: Mapped[datetime]


# --- Trigger topics and wellbeing (server/topics.py, server/wellbeing.py) ---


class TopicPreference(Base):
    """A member's choices per trigger topic: ``choices`` maps a topic id to ``warn`` or ``hide``
    (``show``, the default, is not stored)."""

    __tablename__ = "topic_preferences"

    account_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    choices: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[datetime]


class MediaExposure(Base):
    """A staff member opened a reported item (``open``) or revealed its media (``unblur``,
    ``colour``, ``unmute``): the reveal state of their renderings and their exposure counts."""

    __tablename__ = "media_exposures"
    __table_args__ = (Index("ix_media_exposures_account_id_created_at", "account_id", "created_at"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    account_id: Mapped[int] = _fk("accounts.id")
    report_id: Mapped[int] = _fk("reports.id", index=True)
    status_id: Mapped[int | None] = mapped_column(BigInteger, default=None)
    # Or a file revealed in an E2EE report: its index (GET .../e2ee/reports/{id}/attachments/{index}).
    attachment: Mapped[int | None] = mapped_column(Integer, default=None)
    kind: Mapped[str] = mapped_column(String(16))  # open | unblur | colour | unmute
    created_at: Mapped[datetime]


class WellbeingSetting(Base):
    """A member's break reminder and quiet mode, and the crude activity session the reminder
    counts: ``session_started_at`` to ``last_active_at``, a gap over ten minutes starts anew."""

    __tablename__ = "wellbeing_settings"

    account_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    break_reminder_minutes: Mapped[int | None] = mapped_column(Integer, default=None)
    quiet_mode: Mapped[bool] = mapped_column(Boolean, default=False)
    quiet_until: Mapped[datetime | None] = mapped_column(default=None)
    session_started_at: Mapped[datetime | None] = mapped_column(default=None)
    last_active_at: Mapped[datetime | None] = mapped_column(default=None)
    updated_at: Mapped[datetime]


class QuietNotification(Base):
    """A notification held back while its recipient is in quiet mode; it becomes a
    ``Notification`` when quiet mode ends (server/wellbeing.py)."""

    __tablename__ = "quiet_notifications"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    account_id: Mapped[int] = _fk("accounts.id", index=True)
    from_account_id: Mapped[int] = _fk("accounts.id")
    type: Mapped[str] = mapped_column(String(32))
    status_id: Mapped[int | None] = _fk("statuses.id", nullable=True)
    created_at: Mapped[datetime]


class CrisisNotificationLink(Base):
    """The crisis-queue item a responder's ``hearthside.admin.crisis`` notification is about."""

    __tablename__ = "crisis_notification_links"

    notification_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("notifications.id", ondelete="CASCADE"), primary_key=True
    )
    crisis_item_id: Mapped[int] = _fk("crisis_items.id")
