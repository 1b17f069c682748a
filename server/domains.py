"""Domain-level rules federation enforces: blocks (with subdomains) and delivery health.

A block on ``example.com`` covers ``example.com`` and every ``*.example.com`` but not
``notexample.com`` (Mastodon's rule, research/moderation.md). Ports are not part of a
domain decision: ``host:port`` is reduced to the host.
"""

from __future__ import annotations

from sqlalchemy import select
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


async def is_suspended(session: AsyncSession, domain: str) -> bool:
    block = await domain_block(session, domain)
    return block is not None and block.severity == "suspend"
