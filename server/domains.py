"""Domain-level rules federation enforces: blocks (with subdomains) and delivery health.

A block on ``example.com`` covers ``example.com`` and every ``*.example.com`` but not
``notexample.com`` (Mastodon's rule, research/moderation.md). Ports are not part of a
domain decision: ``host:port`` is reduced to the host.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import DomainBlock


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


async def suspended_domain(fed: Any, domain: str) -> bool:
    """Whether ``domain`` (or a parent) is suspended, for per-request checks: one prepared statement, run inline
    on SQLite's query-only connection (tens of microseconds instead of an ORM round trip)."""
    suffixes = domain_suffixes(domain)
    params = {f"d{i}": s for i, s in enumerate(suffixes)}
    sql = _SUSPENDED_SQL.format(", ".join(f":d{i}" for i in range(len(suffixes))))
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
    """Which of ``domains`` are suspended (themselves or a parent): one query for all."""
    if not domains:
        return set()
    suffixes = {domain: domain_suffixes(domain) for domain in domains}
    wanted = {s for all_ in suffixes.values() for s in all_}
    rows = await session.execute(
        select(DomainBlock.domain).where(DomainBlock.domain.in_(wanted), DomainBlock.severity == "suspend")
    )
    blocked = {r[0] for r in rows}
    return {domain for domain, all_ in suffixes.items() if blocked.intersection(all_)}
