"""``server.db.bulk_insert``: rows written through the driver's executemany read back exactly as
the ORM would have written them, on SQLite and PostgreSQL (types, defaults, JSON, times)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from server.db import bulk_insert, make_sessionmaker
from server.models import AuditEntry, DomainBlock


async def test_bulk_insert__reads_back_what_was_written(engine: Any) -> None:
    at = datetime(2026, 11, 21, 12, 30, 15, 123456, tzinfo=UTC)
    later = at + timedelta(hours=1)
    blocks = [
        {
            "id": 10 + i,
            "domain": f"b{i}.example",
            "severity": ("suspend", "silence", "noop")[i % 3],
            "reject_media": i % 2 == 0,
            "reject_reports": False,
            "obfuscate": i == 1,
            "private_comment": 'with "quotes", commas\nand a newline',
            "public_comment": "",
            "created_at": at,  # the same object for every row: bound once
            "updated_at": later if i == 2 else at,
        }
        for i in range(3)
    ]
    audits = [
        {
            "id": 100 + i,
            "actor_account_id": None,
            "source": "import:x.csv",
            "action": "domain_block.create",
            "target_type": "domain",
            "target": f"b{i}.example",
            "reason": "",
            "details": {"severity": "suspend", "n": i, "nested": {"ok": True}},
            "created_at": at,
        }
        for i in range(3)
    ]
    async with make_sessionmaker(engine)() as session:
        await bulk_insert(session, DomainBlock.__table__, blocks)  # type: ignore[arg-type]
        await bulk_insert(session, AuditEntry.__table__, audits)  # type: ignore[arg-type]
        await bulk_insert(session, AuditEntry.__table__, [])  # nothing to do
        await session.commit()
    async with make_sessionmaker(engine)() as session:
        found = list(await session.scalars(select(DomainBlock).order_by(DomainBlock.id)))
        entries = list(await session.scalars(select(AuditEntry).order_by(AuditEntry.id)))
    for row, want in zip(found, blocks, strict=True):
        for name, value in want.items():
            assert getattr(row, name) == value, name
        assert row.managed_by is None and row.managed_filters == [] and row.managed_labels == []  # defaults
    assert [e.details for e in entries] == [a["details"] for a in audits]
    assert all(e.created_at == at and e.created_at.tzinfo is not None for e in entries)


async def test_bulk_insert__a_failed_insert_writes_nothing(engine: Any) -> None:
    row = {
        "id": 1,
        "domain": "dup.example",
        "severity": "suspend",
        "reject_media": False,
        "reject_reports": False,
        "obfuscate": False,
        "private_comment": "",
        "public_comment": "",
        "created_at": datetime.now(UTC),
        "updated_at": datetime.now(UTC),
    }
    async with make_sessionmaker(engine)() as session:
        with pytest.raises(Exception, match=r"(?i)unique|duplicate"):
            await bulk_insert(session, DomainBlock.__table__, [row, {**row, "id": 2}])  # type: ignore[arg-type]
        await session.rollback()
    async with make_sessionmaker(engine)() as session:
        assert list(await session.scalars(select(DomainBlock))) == []
