"""`hearthside feed ...`: the feed commands, run as operators run them (a process per call)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from test_cli import run

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def instance(tmp_path: Path) -> Path:
    data = tmp_path / "inst"
    run("init", "--data-dir", str(data), "--port", "18999", "--registrations", "closed")
    return data / "hearthside.toml"


def test_feed_cli__publish_reconciles_rotate_keys_and_tombstone(instance: Path, tmp_path: Path) -> None:
    config = ["--config", str(instance)]
    csv = tmp_path / "blocks.csv"
    csv.write_text("#domain,#severity\nbad.example,suspend\nworse.example,silence\n")
    # An import leaves a durable publication job for the worker; `feed publish` does it now.
    run("blocklist", "import", str(csv), "--apply", *config)
    first = run("feed", "publish", "--json", *config).stdout.splitlines()
    assert sorted(json.loads(line)["entityKey"] for line in first) == ["bad.example", "worse.example"]
    assert "0 entries published" in run("feed", "publish", *config).stdout  # idempotent

    assert "new moderation key" in run("feed", "rotate-key", *config).stdout
    stone = run("feed", "tombstone", "bad.example", *config)
    assert "Tombstone domain bad.example" in stone.stdout

    async def stored() -> list[tuple[str, str]]:
        from sqlalchemy import select

        from server.config import load_config
        from server.db import make_engine, make_sessionmaker
        from server.models import FeedEntry

        engine = make_engine(load_config(instance).database_url)
        try:
            async with make_sessionmaker(engine)() as session:
                rows = await session.execute(
                    select(FeedEntry.entry_type, FeedEntry.entity_key).order_by(FeedEntry.change_id)
                )
                return [(t, k) for t, k in rows]
        finally:
            await engine.dispose()

    assert sorted(asyncio.run(stored())) == [("Recommendation", "worse.example"), ("Tombstone", "bad.example")]
