"""Domain-level rules federation enforces: blocks and allows (with subdomains), and their effects.

A block on ``example.com`` covers ``example.com`` and every ``*.example.com`` but not
``notexample.com`` (Mastodon's rule, research/moderation.md). Ports are not part of a
domain decision: ``host:port`` is reduced to the host.

Refusing a domain. :func:`suspended_domain` (per request) and :func:`suspended_among` (a
batch, in the caller's transaction) answer "is this domain refused": suspended by a block, or,
in allowlist mode (``[federation] mode = "allowlist"``), not covered by a ``domain_allows``
row. Blocks still apply in allowlist mode (fail closed: an allowed domain that is also
suspended is refused). The mode is a property of the instance's database engine, registered by
``server.federation.Federation`` (:func:`register_mode`), so callers holding only a session
(the inbox's group commit, the delivery queue) get the same answer as those holding the
federation context.

Effects on accounts. A domain's ``silence`` and ``suspend`` are mirrored onto its accounts'
``silenced_at``/``suspended_at`` (what Mastodon's BlockDomainService does), stamped with the
block's ``created_at``; lifting or lowering the block clears exactly the stamps it wrote, so an
account limited or suspended on its own stays so. Every per-row filter (visibility, timelines,
search, notifications, follows) then reads one column of the author's row, found on its
primary key, instead of matching domains against the blocklist row by row. New remote accounts
get the stamps when they are first stored (:func:`stamp_new_account`). Statuses of suspended
domains are hidden, not purged: the visibility rule already hides suspended authors, and lifting
a block brings them back (Mastodon purges instead).

Severing. Suspending a domain ends every follow and follow request between local accounts and
accounts there (:func:`sever_domain`), in the caller's transaction, with counters kept right,
and tells each affected member with one ``severed_relationships`` notification pointing at a
``RelationshipSeveranceEvent`` (Mastodon 4.3).
"""

from __future__ import annotations

import weakref
from collections import Counter
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, insert, not_, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from server.ids import new_ids
from server.models import (
    Account,
    AccountSeveranceEvent,
    DomainAllow,
    DomainBlock,
    Follow,
    Notification,
    RelationshipSeveranceEvent,
)

MODES = ("blocklist", "allowlist")
#: Engines (async and sync) of instances running in allowlist mode; see the module note.
_ALLOWLIST_ENGINES: weakref.WeakSet[Any] = weakref.WeakSet()


def register_mode(engine: Any, mode: str) -> None:
    """Record the federation mode of the instance whose database is ``engine``."""
    assert mode in MODES, mode
    targets = [engine, getattr(engine, "sync_engine", None)]
    for target in targets:
        if target is None:
            continue
        if mode == "allowlist":
            _ALLOWLIST_ENGINES.add(target)
        else:
            _ALLOWLIST_ENGINES.discard(target)


def allowlist_session(session: Any) -> bool:
    """Whether ``session`` belongs to an instance in allowlist mode."""
    bind = getattr(session, "bind", None)
    return bind is not None and bind in _ALLOWLIST_ENGINES


def bare_host(domain: str) -> str:
    host = domain.lower().strip().rstrip(".")
    if host.startswith("["):  # IPv6 literal, maybe with a port
        return host.split("]", 1)[0] + "]"
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def domain_suffixes(domain: str) -> list[str]:
    """``a.b.example`` -> [``a.b.example``, ``b.example``, ``example``]."""
    host = bare_host(domain)
    if host.startswith("[") or host.replace(".", "").isdigit():
        return [host]  # an IP literal has no parent domains
    labels = host.split(".")
    return [".".join(labels[i:]) for i in range(len(labels))]


async def domain_block(session: AsyncSession, domain: str) -> DomainBlock | None:
    """The most specific block covering ``domain`` (itself or a parent), if any."""
    suffixes = domain_suffixes(domain)
    rows = (await session.scalars(select(DomainBlock).where(DomainBlock.domain.in_(suffixes)))).all()
    if not rows:
        return None
    return max(rows, key=lambda row: len(row.domain))


_SUSPENDED_SQL = "SELECT 1 FROM domain_blocks WHERE severity = 'suspend' AND domain IN ({}) LIMIT 1"
# Allowlist mode: refused unless allowed, and not suspended either.
_REFUSED_ALLOWLIST_SQL = (
    "SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM domain_allows WHERE domain IN ({0})) "
    "OR EXISTS (SELECT 1 FROM domain_blocks WHERE severity = 'suspend' AND domain IN ({0}))"
)


def allowlist_mode(fed: Any) -> bool:
    return bool(fed.config.get("federation", "mode") == "allowlist")


async def suspended_domain(fed: Any, domain: str) -> bool:
    """Whether requests to or from ``domain`` are refused: it (or a parent) is suspended, or, in
    allowlist mode, not allowed. For per-request checks: one prepared statement, run inline
    on SQLite's query-only connection (tens of microseconds instead of an ORM round trip)."""
    suffixes = domain_suffixes(domain)
    params = {f"d{i}": s for i, s in enumerate(suffixes)}
    template = _REFUSED_ALLOWLIST_SQL if allowlist_mode(fed) else _SUSPENDED_SQL
    sql = template.format(", ".join(f":d{i}" for i in range(len(suffixes))))
    reads = fed.reads
    if reads is not None:
        async with reads() as session:
            if hasattr(session, "fetch_sql"):
                return bool(await session.fetch_sql(sql, params))
    # PostgreSQL: one autocommit round trip (no BEGIN/ROLLBACK around a single SELECT).
    engine = fed.sessions.kw["bind"]
    async with engine.connect() as connection:
        connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
        return (await connection.execute(text(sql), params)).first() is not None


async def suspended_among(session: AsyncSession, domains: set[str]) -> set[str]:
    """Which of ``domains`` are refused: suspended (themselves or a parent), or, when the
    session's instance runs in allowlist mode, not allowed. One query for all (two in
    allowlist mode)."""
    if not domains:
        return set()
    suffixes = {domain: domain_suffixes(domain) for domain in domains}
    wanted = {s for all_ in suffixes.values() for s in all_}
    rows = await session.execute(
        select(DomainBlock.domain).where(DomainBlock.domain.in_(wanted), DomainBlock.severity == "suspend")
    )
    blocked = {r[0] for r in rows}
    refused = {domain for domain, all_ in suffixes.items() if blocked.intersection(all_)}
    if allowlist_session(session):
        allowed = set((await session.scalars(select(DomainAllow.domain).where(DomainAllow.domain.in_(wanted)))).all())
        refused |= {domain for domain, all_ in suffixes.items() if not allowed.intersection(all_)}
    return refused


async def allowed_domains(session: AsyncSession) -> set[str]:
    """Every domain in ``domain_allows`` (each also covers its subdomains)."""
    return set((await session.scalars(select(DomainAllow.domain))).all())


async def is_allowed(session: AsyncSession, domain: str) -> bool:
    """Whether ``domain`` or a parent of it is in ``domain_allows``."""
    found = await session.scalar(select(DomainAllow.id).where(DomainAllow.domain.in_(domain_suffixes(domain))).limit(1))
    return found is not None


# ---------------------------------------------------------------------------- effects on accounts

_ESCAPE = "!"


def _like(text_: str) -> str:
    return text_.replace(_ESCAPE, _ESCAPE * 2).replace("%", _ESCAPE + "%").replace("_", _ESCAPE + "_")


def covers(column: Any, domain: str) -> ColumnElement[bool]:
    """SQL: the account domain in ``column`` (``host`` or ``host:port``) is ``domain`` or a
    subdomain of it."""
    d = _like(domain)
    return or_(
        column == domain,
        column.like(f"{d}:%", escape=_ESCAPE),
        column.like(f"%.{d}", escape=_ESCAPE),
        column.like(f"%.{d}:%", escape=_ESCAPE),
    )


async def _own_accounts(session: AsyncSession, domain: str) -> ColumnElement[bool]:
    """Accounts ``domain``'s own rule governs: on it or a subdomain, minus subdomains that have
    a more specific block of their own (the most specific rule wins)."""
    d = _like(domain)
    inner = (
        await session.scalars(select(DomainBlock.domain).where(DomainBlock.domain.like(f"%.{d}", escape=_ESCAPE)))
    ).all()
    return and_(Account.domain != "", covers(Account.domain, domain), *(not_(covers(Account.domain, x)) for x in inner))


async def stamp_accounts(session: AsyncSession, domain: str, severity: str | None, stamp: datetime) -> None:
    """Mirror the rule ``severity`` (None: no block) for ``domain`` onto its accounts.

    ``stamp`` is the block's ``created_at``: set where the column is empty, cleared only where it
    holds this stamp. When the block is gone, the rule of a parent domain (if any) takes over.
    """
    where = await _own_accounts(session, domain)
    if severity is not None:  # this rule replaces what a parent domain's rule stamped here
        parents = await session.scalars(
            select(DomainBlock.created_at).where(DomainBlock.domain.in_(domain_suffixes(domain)[1:]))
        )
        for parent_stamp in parents.all():
            for column in (Account.silenced_at, Account.suspended_at):
                await session.execute(update(Account).where(where, column == parent_stamp).values({column.key: None}))
    if severity in ("silence", "suspend"):
        column = Account.silenced_at if severity == "silence" else Account.suspended_at
        await session.execute(update(Account).where(where, column.is_(None)).values({column.key: stamp}))
    if severity != "suspend":
        await session.execute(update(Account).where(where, Account.suspended_at == stamp).values(suspended_at=None))
    if severity not in ("silence", "suspend"):
        await session.execute(update(Account).where(where, Account.silenced_at == stamp).values(silenced_at=None))
    if severity is None:
        parent = await domain_block(session, domain)
        if parent is not None and parent.domain != domain and parent.severity in ("silence", "suspend"):
            column = Account.silenced_at if parent.severity == "silence" else Account.suspended_at
            await session.execute(
                update(Account).where(where, column.is_(None)).values({column.key: parent.created_at})
            )


async def stamp_new_account(session: AsyncSession, account: Account) -> DomainBlock | None:
    """Give a newly stored remote account its domain's limit or suspension; returns the block."""
    block = await domain_block(session, account.domain)
    if block is not None:
        if block.severity == "silence" and account.silenced_at is None:
            account.silenced_at = block.created_at
        elif block.severity == "suspend" and account.suspended_at is None:
            account.suspended_at = block.created_at
    return block


async def sever_domain(session: AsyncSession, domain: str, *, at: datetime) -> RelationshipSeveranceEvent | None:
    """End every follow (and request) between local accounts and accounts on ``domain`` or its
    subdomains, keep counters right, and notify each local person who lost one (the caller
    commits). Returns the event, or None when there was nothing to sever."""
    remote_ids = select(Account.id).where(Account.domain != "", covers(Account.domain, domain))
    local = select(Account.id).where(Account.domain == "")
    rows = (
        await session.execute(
            select(Follow.id, Follow.account_id, Follow.target_account_id, Follow.state).where(
                or_(
                    and_(Follow.account_id.in_(local), Follow.target_account_id.in_(remote_ids)),
                    and_(Follow.account_id.in_(remote_ids), Follow.target_account_id.in_(local)),
                )
            )
        )
    ).all()
    if not rows:
        return None
    local_ids = set(
        (
            await session.scalars(
                select(Account.id).where(
                    Account.domain == "", Account.id.in_({r[1] for r in rows} | {r[2] for r in rows})
                )
            )
        ).all()
    )
    following: Counter[int] = Counter()  # accepted follows lost, by follower
    followers: Counter[int] = Counter()  # accepted followers lost, by followed
    requests = []
    for _id, follower, followed, state in rows:
        if state == "accepted":
            following[follower] += 1
            followers[followed] += 1
        else:
            requests.append((follower, followed))
    await session.execute(delete(Follow).where(Follow.id.in_([r[0] for r in rows])))
    for account_id, lost in following.items():
        await session.execute(
            update(Account).where(Account.id == account_id).values(following_count=Account.following_count - lost)
        )
    for account_id, lost in followers.items():
        await session.execute(
            update(Account).where(Account.id == account_id).values(followers_count=Account.followers_count - lost)
        )
    for follower, followed in requests:
        await session.execute(
            delete(Notification).where(
                Notification.account_id == followed,
                Notification.from_account_id == follower,
                Notification.type == "follow_request",
            )
        )
    in_requests = {a for pair in requests for a in pair}
    affected = [a for a in sorted(local_ids) if following[a] or followers[a] or a in in_requests]
    people = set(
        (
            await session.scalars(select(Account.id).where(Account.id.in_(affected), Account.actor_type == "Person"))
        ).all()
    )
    event = RelationshipSeveranceEvent(
        id=new_ids(1)[0], type="domain_block", target_name=domain, purged=False, created_at=at
    )
    session.add(event)
    await session.flush()
    members = [a for a in affected if a in people]
    if members:
        ids = new_ids(len(members))
        await session.execute(
            insert(AccountSeveranceEvent.__table__),  # type: ignore[arg-type]
            [
                {
                    "id": ids[i],
                    "account_id": member,
                    "event_id": event.id,
                    "followers_count": followers[member],
                    "following_count": following[member],
                    "created_at": at,
                }
                for i, member in enumerate(members)
            ],
        )
        await session.execute(
            insert(Notification.__table__),  # type: ignore[arg-type]
            [
                {
                    "id": ids[i],
                    "account_id": member,
                    "from_account_id": member,
                    "type": "severed_relationships",
                    "status_id": None,
                    "created_at": at,
                }
                for i, member in enumerate(members)
            ],
        )
    return event


BlockChange = tuple[str, str | None, str | None, datetime]  # (domain, before, after, block's created_at)


async def apply_block_changes(
    session: AsyncSession, changes: list[BlockChange], *, at: datetime
) -> list[RelationshipSeveranceEvent]:
    """Everything blocks changing severity (``before`` -> ``after``; None: no block) do, in the
    caller's transaction: accounts stamped or cleared, follows severed on a new suspension.

    The blocklist may hold tens of thousands of domains and an import may change them all, so
    the domains of known remote accounts are read once and only changes that cover one of them
    touch the accounts and follows tables.
    """
    changes = [c for c in changes if c[1] != c[2]]
    if not changes:
        return []
    known = set((await session.scalars(select(Account.domain).where(Account.domain != "").distinct())).all())
    present = set()
    for host in known:
        present.update(domain_suffixes(host))
    events = []
    for domain, _before, after, stamp in changes:
        if domain not in present:
            continue
        await stamp_accounts(session, domain, after, stamp)
        if after == "suspend":
            event = await sever_domain(session, domain, at=at)
            if event is not None:
                events.append(event)
    return events
