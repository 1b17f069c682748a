"""Importing and exporting the instance's domain blocklist (issue 5, item 3).

Design note
-----------
The formats are pure (``moderation.formats``); this module compares an imported list with the
instance's ``domain_blocks`` and applies it:

* :func:`preview` says what an import would do without writing: blocks added, blocks changed
  (only ever made stricter: an import never weakens a decision, as Mastodon's import skips
  domains already covered), domains skipped because an equal or stricter rule (the domain's
  own or a parent's) already covers them, and for every suspension the number of follow
  relationships between local members and accounts there, which it would sever (Mastodon's
  import warns about exactly these).
* :func:`apply` writes the preview in one transaction: bulk inserts and updates, the effects
  of each new or stricter severity (``server.domains.apply_block_changes``: accounts limited
  or suspended, follows severed with a notice to each affected member), and one audit
  entry per changed domain with the source (``import:<file name>``). Private comments of
  imported blocks name the file and date, as Mastodon's import does; an existing private
  comment is kept.
* :func:`export` writes Mastodon's CSV (``moderation.formats.export_mastodon_csv``) in
  creation order, as Mastodon's export does.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from moderation.decisions import DomainDecision, Severity, rule_for, stricter
from moderation.formats import export_mastodon_csv
from server import feeds
from server.db import bulk_insert
from server.domains import apply_block_changes
from server.ids import new_ids
from server.models import Account, AuditEntry, DomainBlock, Follow


@dataclass
class Preview:
    added: list[DomainDecision] = field(default_factory=list)
    changed: list[tuple[DomainDecision, DomainDecision]] = field(default_factory=list)  # (before, after)
    covered: list[tuple[DomainDecision, str]] = field(default_factory=list)  # (imported, covering domain)
    severed_follows: dict[str, int] = field(default_factory=dict)  # domain -> follow rows a suspension ends

    def to_json(self) -> dict[str, object]:
        return {
            "added": [d.domain for d in self.added],
            "changed": [
                {"domain": a.domain, "from": b.severity.value, "to": a.severity.value} for b, a in self.changed
            ],
            "covered": [{"domain": d.domain, "by": by} for d, by in self.covered],
            "severed_follows": self.severed_follows,
        }


def decision_of(block: DomainBlock) -> DomainDecision:
    return DomainDecision(
        domain=block.domain,
        severity=Severity(block.severity),
        reject_media=block.reject_media,
        reject_reports=block.reject_reports,
        obfuscate=block.obfuscate,
        public_comment=block.public_comment,
        private_comment=block.private_comment,
    )


def audit_details(decision: DomainDecision) -> dict[str, object]:
    """What an audit entry about a domain decision records (never its private comment)."""
    return {
        "severity": decision.severity.value,
        "reject_media": decision.reject_media,
        "reject_reports": decision.reject_reports,
        "obfuscate": decision.obfuscate,
    }


async def current(session: AsyncSession) -> dict[str, DomainDecision]:
    rows = await session.scalars(select(DomainBlock).order_by(DomainBlock.id))
    return {row.domain: decision_of(row) for row in rows}


async def _follow_counts(session: AsyncSession, domains: Sequence[str]) -> dict[str, int]:
    """Follow rows between local accounts and accounts on each domain or its subdomains."""
    if not domains:
        return {}
    remote = Account.__table__.alias("remote")
    local = Account.__table__.alias("local")
    counts: dict[str, int] = {}
    for domain, count in await session.execute(
        select(remote.c.domain, func.count())
        .select_from(Follow.__table__)
        .join(
            remote,
            (remote.c.id == Follow.target_account_id) | (remote.c.id == Follow.account_id),
        )
        .join(local, (local.c.id == Follow.account_id) | (local.c.id == Follow.target_account_id))
        .where(remote.c.domain != "", local.c.domain == "")
        .group_by(remote.c.domain)
    ):
        for target in domains:
            if domain == target or domain.endswith("." + target):
                counts[target] = counts.get(target, 0) + int(count)
    return counts


async def preview(session: AsyncSession, imported: Iterable[DomainDecision]) -> Preview:
    existing = await current(session)
    result = Preview()
    for decision in imported:
        own = existing.get(decision.domain)
        if own is not None:
            if stricter(decision, own) and decision != own and not stricter(own, decision):
                result.changed.append((own, decision))
            else:
                result.covered.append((decision, own.domain))
            continue
        ruling = rule_for(decision.domain, existing)
        if ruling is not None and not stricter(decision, ruling):
            result.covered.append((decision, ruling.domain))
            continue
        result.added.append(decision)
    suspensions = [d.domain for d in result.added if d.severity is Severity.SUSPEND]
    suspensions += [after.domain for before, after in result.changed if after.severity is Severity.SUSPEND]
    result.severed_follows = {d: n for d, n in (await _follow_counts(session, suspensions)).items() if n}
    return result


async def apply(
    session: AsyncSession, plan: Preview, *, actor_account_id: int | None, source: str, at: datetime
) -> int:
    """Write ``plan`` (the caller commits). Returns how many blocks were added or changed."""
    stamp = f"Imported from {source.removeprefix('import:')} on {at.date().isoformat()}"
    if plan.added:
        ids = iter(new_ids(len(plan.added)))
        await bulk_insert(
            session,
            DomainBlock.__table__,  # type: ignore[arg-type]
            [
                {
                    "id": next(ids),
                    "domain": d.domain,
                    "severity": d.severity.value,
                    "reject_media": d.reject_media,
                    "reject_reports": d.reject_reports,
                    "obfuscate": d.obfuscate,
                    "private_comment": d.private_comment or stamp,
                    "public_comment": d.public_comment,
                    "created_at": at,
                    "updated_at": at,
                }
                for d in plan.added
            ],
        )
    for before, after in plan.changed:
        await session.execute(
            update(DomainBlock)
            .where(DomainBlock.domain == before.domain)
            .values(
                severity=after.severity.value,
                reject_media=after.reject_media,
                reject_reports=after.reject_reports,
                obfuscate=after.obfuscate,
                public_comment=after.public_comment or before.public_comment,
                updated_at=at,
            )
        )
    stamps: dict[str, datetime] = {}
    if plan.changed:  # added blocks were created at ``at``
        stamps = {
            domain: created
            for domain, created in await session.execute(
                select(DomainBlock.domain, DomainBlock.created_at).where(
                    DomainBlock.domain.in_([b.domain for b, _a in plan.changed])
                )
            )
        }
    await apply_block_changes(
        session,
        [(d.domain, None, d.severity.value, at) for d in plan.added]
        + [(b.domain, b.severity.value, a.severity.value, stamps[b.domain]) for b, a in plan.changed],
        at=at,
    )
    entries = [("domain_block.create", d) for d in plan.added] + [("domain_block.update", a) for _b, a in plan.changed]
    if entries:
        # An import may hold 20,000 decisions: signing each feed entry here would take a minute.
        # A durable job in this same transaction publishes them (the worker reconciles the feed).
        await feeds.schedule_publish(session, at=at)
    if entries:
        audit_ids = iter(new_ids(len(entries)))
        await bulk_insert(
            session,
            AuditEntry.__table__,  # type: ignore[arg-type]
            [
                {
                    "id": next(audit_ids),
                    "actor_account_id": actor_account_id,
                    "source": source[:64],
                    "action": action,
                    "target_type": "domain",
                    "target": d.domain,
                    "reason": "",
                    "details": audit_details(d),
                    "created_at": at,
                }
                for action, d in entries
            ],
        )
    return len(entries)


async def export(session: AsyncSession) -> str:
    return export_mastodon_csv((await current(session)).values())
