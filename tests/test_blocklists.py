"""Importing and exporting the blocklist against the instance's database (SQLite and
PostgreSQL): the preview (added, made stricter, already covered, follows a suspension would
sever), applying it with an audit entry per change, Mastodon's CSV export, and the
`hearthside blocklist` commands (research/moderation.md §1.2, §6.c tests 1-3)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from test_cli import init_instance, run

from moderation.decisions import DomainDecision, Severity
from moderation.formats import MASTODON_CSV_HEADER, import_mastodon_csv
from server import blocklists
from server.db import make_sessionmaker
from server.ids import new_id
from server.models import Account, AuditEntry, DomainBlock, Follow
from server.web import now


async def _remote_account(session: Any, username: str, domain: str) -> Account:
    moment = now()
    account = Account(
        id=new_id(),
        username=username,
        username_lower=username,
        domain=domain,
        uri=f"https://{domain}/users/{username}",
        created_at=moment,
        updated_at=moment,
    )
    session.add(account)
    await session.flush()
    return account


async def test_preview_and_apply(engine: Any, config: Any, make_user: Any) -> None:
    alice = await make_user("alice")
    sessions = make_sessionmaker(engine)
    async with sessions() as session:
        for domain, severity in (("silenced.example", "silence"), ("gone.example", "suspend")):
            moment = now()
            session.add(
                DomainBlock(id=new_id(), domain=domain, severity=severity, created_at=moment, updated_at=moment)
            )
        friend = await _remote_account(session, "friend", "sub.new-bad.example")
        session.add(Follow(id=new_id(), account_id=alice.account_id, target_account_id=friend.id, created_at=now()))
        await session.commit()
    csv = "\n".join(
        [
            MASTODON_CSV_HEADER,
            "new-bad.example,suspend,false,false,harassment,false",
            "silenced.example,suspend,true,false,,false",  # made stricter
            "a.gone.example,silence,false,false,,false",  # covered by the parent's suspension
            "gone.example,silence,false,false,,false",  # weaker than what is there: never weakened
            "",
        ]
    )
    imported = import_mastodon_csv(csv)
    async with sessions() as session:
        plan = await blocklists.preview(session, imported.rows)
        assert [d.domain for d in plan.added] == ["new-bad.example"]
        assert [(b.severity, a.severity) for b, a in plan.changed] == [(Severity.SILENCE, Severity.SUSPEND)]
        assert sorted(by for _d, by in plan.covered) == ["gone.example", "gone.example"]
        assert plan.severed_follows == {"new-bad.example": 1}
        # A preview writes nothing.
        assert len(list(await session.scalars(select(DomainBlock)))) == 2
        assert (
            await blocklists.apply(session, plan, actor_account_id=alice.account_id, source="import:x.csv", at=now())
            == 2
        )
        await session.commit()
    async with sessions() as session:
        blocks = {b.domain: b for b in await session.scalars(select(DomainBlock))}
        assert blocks["new-bad.example"].severity == "suspend"
        assert blocks["new-bad.example"].public_comment == "harassment"
        assert blocks["new-bad.example"].private_comment.startswith("Imported from x.csv on ")
        assert (blocks["silenced.example"].severity, blocks["silenced.example"].reject_media) == ("suspend", True)
        assert blocks["gone.example"].severity == "suspend"
        audit = [
            (e.action, e.target, e.source) for e in await session.scalars(select(AuditEntry).order_by(AuditEntry.id))
        ]
        assert sorted(audit) == [
            ("domain_block.create", "new-bad.example", "import:x.csv"),
            ("domain_block.update", "silenced.example", "import:x.csv"),
        ]
        exported = await blocklists.export(session)
    assert exported.splitlines()[0] == MASTODON_CSV_HEADER
    again = import_mastodon_csv(exported)
    assert {d.domain for d in again.rows} == {"silenced.example", "gone.example", "new-bad.example"}
    assert "Imported from" not in exported  # private comments never leave


async def test_import_is_idempotent(engine: Any) -> None:
    rows = [DomainDecision(domain="spam.example", severity=Severity.SUSPEND)]
    sessions = make_sessionmaker(engine)
    for expected in (1, 0):
        async with sessions() as session:
            plan = await blocklists.preview(session, rows)
            assert await blocklists.apply(session, plan, actor_account_id=None, source="import:a", at=now()) == expected
            await session.commit()


@pytest.fixture(params=["sqlite", "postgres"])
async def instance(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    return (await init_instance(request, tmp_path))[0]


def test_hearthside_blocklist__preview_apply_export(instance: Path, tmp_path: Path) -> None:
    cfg = ["--config", str(instance)]
    source = tmp_path / "partner.csv"
    source.write_text(
        MASTODON_CSV_HEADER + '\nspam.example,suspend,false,false,"spam, scams",false\nbücher.example,silence,true,'
        "false,,false\nnot a domain,suspend,false,false,,false\n"
    )
    preview = json.loads(run("blocklist", "import", str(source), "--json", *cfg).stdout)
    assert preview["added"] == ["spam.example", "xn--bcher-kva.example"]
    assert [p["line"] for p in preview["problems"]] == [4]
    assert run("blocklist", "export", *cfg).stdout == MASTODON_CSV_HEADER + "\n"  # the preview wrote nothing
    applied = run("blocklist", "import", str(source), "--apply", *cfg).stdout
    assert "2 to add" in applied and "applied" in applied
    exported = run("blocklist", "export", *cfg).stdout
    assert exported == (
        MASTODON_CSV_HEADER
        + '\nspam.example,suspend,false,false,"spam, scams",false\nxn--bcher-kva.example,silence,true,false,,false\n'
    )
    refused = run("blocklist", "import", str(tmp_path / "missing.csv"), *cfg, check=False)
    assert refused.returncode == 2 and "missing.csv" in refused.stderr
    too_many = tmp_path / "huge.txt"
    too_many.write_text("".join(f"d{i}.example\n" for i in range(20_001)))
    refused = run("blocklist", "import", str(too_many), *cfg, check=False)
    assert refused.returncode == 2 and "20,000" in refused.stderr.replace("20000", "20,000")
