"""Mastodon's admin API for domain blocks (``/api/v1/admin/domain_blocks``), so existing tools
(FediBlockHole, Mastodon.py scripts) can read and push an instance's blocklist.

Design note
-----------
Shapes, scopes and answers follow Mastodon (docs.joinmastodon.org/methods/admin/domain_blocks;
research/moderation.md §1.1, §1.3): the ``Admin::DomainBlock`` entity; ``severity`` defaults to
``silence`` on create; a domain already covered by an equal or stricter block (itself or a
parent domain) answers 422 "You have already imposed stricter limits on ..." with the existing
block; domains are stored as lower-case punycode (``moderation.decisions.normalize_domain``).
Instance staff only (admins and moderators), with ``admin:read:domain_blocks`` /
``admin:write:domain_blocks``. Every write is one transaction with its audit entry (who, what,
the new values, source ``api``); private comments are kept out of the audit details.

Each write applies the decision's effects in the same transaction (``server.domains``):
``silence`` and ``suspend`` are mirrored onto the domain's accounts (limited: hidden from
non-followers, follows become requests; suspended: hidden and refused), a new suspension severs
every follow between local members and the domain and notifies each affected member
(``severed_relationships``); lowering or deleting a block lifts exactly what it imposed
(severed follows are not restored, as in Mastodon).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from moderation.decisions import (
    DomainError,
    Severity,
    domain_digest,
    normalize_domain,
    rule_for,
    stricter,
)
from server import feeds
from server.auth import Viewer, require_staff
from server.blocklists import audit_details, decision_of
from server.domains import apply_block_changes, domain_suffixes
from server.entities import iso
from server.errors import NotFound, Unprocessable
from server.ids import new_id
from server.models import AuditEntry, DomainBlock
from server.pagination import link_header, page_params, paginate
from server.web import SESSIONS, Routes, json_response, now, path_id, read_params

routes = Routes()

BASE = "/api/v1/admin/domain_blocks"
ONE = BASE + "/{id:[0-9]+}"
SEVERITIES = tuple(s.value for s in Severity)


def render_domain_block(block: DomainBlock) -> dict[str, Any]:
    """Mastodon's ``Admin::DomainBlock`` entity."""
    return {
        "id": str(block.id),
        "domain": block.domain,
        "digest": domain_digest(block.domain),
        "created_at": iso(block.created_at),
        "severity": block.severity,
        "reject_media": block.reject_media,
        "reject_reports": block.reject_reports,
        "private_comment": block.private_comment or None,
        "public_comment": block.public_comment or None,
        "obfuscate": block.obfuscate,
    }


def audit(
    session: AsyncSession, viewer: Viewer, action: str, block: DomainBlock, *, source: str = "api", reason: str = ""
) -> None:
    session.add(
        AuditEntry(
            id=new_id(),
            actor_account_id=viewer.account_id,
            source=source,
            action=action,
            target_type="domain",
            target=block.domain,
            reason=reason,
            details=audit_details(decision_of(block)),
            created_at=now(),
        )
    )


def _severity(value: str | None, default: str) -> str:
    severity = value if value is not None else default
    if severity not in SEVERITIES:
        raise Unprocessable(f"severity: must be one of {', '.join(SEVERITIES)}")
    return severity


@routes.get(BASE)
async def list_domain_blocks(request: web.Request) -> web.Response:
    await require_staff(request, "admin:read:domain_blocks")
    page = page_params(await read_params(request), default=100, maximum=500)
    async with request.app[SESSIONS]() as session:
        rows = list(await session.scalars(paginate(select(DomainBlock), DomainBlock.id, page)))
    if page.ascending:
        rows.reverse()
    return json_response(
        [render_domain_block(b) for b in rows], headers=link_header(request, [b.id for b in rows], page)
    )


async def _block(session: AsyncSession, block_id: int) -> DomainBlock:
    block = await session.get(DomainBlock, block_id)
    if block is None:
        raise NotFound("Record not found")
    return block


@routes.get(ONE)
async def show_domain_block(request: web.Request) -> web.Response:
    await require_staff(request, "admin:read:domain_blocks")
    async with request.app[SESSIONS]() as session:
        return json_response(render_domain_block(await _block(session, path_id(request))))


@routes.post(BASE)
async def create_domain_block(request: web.Request) -> web.Response:
    viewer = await require_staff(request, "admin:write:domain_blocks")
    params = await read_params(request)
    try:
        domain = normalize_domain(params.required_str("domain", max_len=300))
    except DomainError as exc:
        raise Unprocessable(f"domain: {exc}") from None
    moment = now()
    block = DomainBlock(
        id=new_id(),
        domain=domain,
        severity=_severity(params.text("severity", max_len=16), "silence"),
        reject_media=bool(params.flag("reject_media", False)),
        reject_reports=bool(params.flag("reject_reports", False)),
        private_comment=params.text("private_comment", "", max_len=5000) or "",
        public_comment=params.text("public_comment", "", max_len=5000) or "",
        obfuscate=bool(params.flag("obfuscate", False)),
        created_at=moment,
        updated_at=moment,
    )
    async with request.app[SESSIONS]() as session:
        existing = {
            b.domain: b
            for b in await session.scalars(select(DomainBlock).where(DomainBlock.domain.in_(domain_suffixes(domain))))
        }
        ruling = rule_for(domain, {d: decision_of(b) for d, b in existing.items()})
        if ruling is not None and not stricter(decision_of(block), ruling):
            # Mastodon's answer (ExistingDomainBlockErrorSerializer), for tools that read it.
            raise Unprocessable(
                f"You have already imposed stricter limits on {ruling.domain}.",
                extra={"existing_domain_block": render_domain_block(existing[ruling.domain])},
            )
        if domain in existing:
            raise Unprocessable("Validation failed: Domain has already been taken (update the existing block)")
        session.add(block)
        audit(session, viewer, "domain_block.create", block)
        await session.flush()
        await apply_block_changes(session, [(domain, None, block.severity, block.created_at)], at=moment)
        await feeds.record_decision(
            session, kind="domain", key=domain, decision=decision_of(block), source="api", at=moment
        )
        await session.commit()
        return json_response(render_domain_block(block))


@routes.put(ONE)
async def update_domain_block(request: web.Request) -> web.Response:
    viewer = await require_staff(request, "admin:write:domain_blocks")
    params = await read_params(request)
    async with request.app[SESSIONS]() as session:
        block = await _block(session, path_id(request))
        before = block.severity
        if "severity" in params:
            block.severity = _severity(params.text("severity", max_len=16), block.severity)
        for name in ("reject_media", "reject_reports", "obfuscate"):
            if name in params:
                setattr(block, name, bool(params.flag(name, False)))
        for name in ("private_comment", "public_comment"):
            if name in params:
                setattr(block, name, params.text(name, "", max_len=5000) or "")
        block.updated_at = now()
        audit(session, viewer, "domain_block.update", block)
        await session.flush()
        await apply_block_changes(session, [(block.domain, before, block.severity, block.created_at)], at=now())
        await feeds.record_decision(
            session, kind="domain", key=block.domain, decision=decision_of(block), source="api", at=now()
        )
        await session.commit()
        return json_response(render_domain_block(block))


@routes.delete(ONE)
async def delete_domain_block(request: web.Request) -> web.Response:
    viewer = await require_staff(request, "admin:write:domain_blocks")
    async with request.app[SESSIONS]() as session:
        block = await _block(session, path_id(request))
        audit(session, viewer, "domain_block.delete", block)
        await session.delete(block)
        await session.flush()
        await apply_block_changes(session, [(block.domain, block.severity, None, block.created_at)], at=now())
        await feeds.record_decision(session, kind="domain", key=block.domain, decision=None, source="api", at=now())
        await session.commit()
    return json_response({})
