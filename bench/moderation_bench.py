"""Moderation benchmarks (issue 5): importing a 20,000-row Mastodon CSV, and merging
10 subscribed feeds of 50,000 entries each.

    python -m bench.moderation_bench [--rows 20000] [--feeds 10] [--entries 50000] [--runs 3]

(1) Import: a generated Mastodon ``domain_blocks.csv`` of ``--rows`` rows (mixed severities,
    flags, comments with commas and quotes, some IDN domains) is parsed
    (``moderation.formats``), compared with the instance's blocklist (``server.blocklists.preview``:
    already covered, made stricter, follows a suspension would sever) and applied (bulk insert and
    one audit entry per block) into a fresh database, committed. Timed end to end, in process,
    on a SQLite file and on PostgreSQL (a throwaway cluster this script starts and stops).
    Target: <= 1 s.
(2) Merge: ``--feeds`` subscriptions of ``--entries`` current opinions each over overlapping
    domains (so most domains have several supporters, some sources derived from others), merged
    by ``moderation.merge`` into decisions. Entries are already parsed and verified (a sync
    verifies each entry once, when it arrives). Target: <= 2 s.

Figures are wall-clock on this machine, median of ``--runs``.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from moderation.formats import MASTODON_CSV_HEADER, import_mastodon_csv

TARGET_IMPORT = 1.0
TARGET_MERGE = 2.0


def generate_csv(rows: int, seed: int = 7) -> str:
    rng = random.Random(seed)
    lines = [MASTODON_CSV_HEADER]
    for i in range(rows):
        severity = rng.choice(["suspend", "suspend", "silence", "noop"])
        reject_media = "true" if severity == "noop" or rng.random() < 0.2 else "false"
        comment = rng.choice(["", "spam", '"harassment, slurs"', '"said ""hi"" then spammed"'])
        domain = f"bücher{i}.example" if i % 50 == 0 else f"bad{i}.example"
        lines.append(f"{domain},{severity},{reject_media},false,{comment},false")
    return "\n".join(lines) + "\n"


async def import_once(url: str, text: str) -> tuple[float, int]:
    from server.blocklists import apply, preview
    from server.db import make_engine, make_sessionmaker
    from server.migrate import upgrade
    from server.web import now

    engine = make_engine(url)
    try:
        await upgrade(engine)
        started = time.perf_counter()
        result = import_mastodon_csv(text)
        async with make_sessionmaker(engine)() as session:
            plan = await preview(session, result.rows)
            written = await apply(session, plan, actor_account_id=None, source="import:bench.csv", at=now())
            await session.commit()
        return time.perf_counter() - started, written
    finally:
        await engine.dispose()


async def import_phase(rows: int, runs: int, postgres: bool) -> list[tuple[str, float, int]]:
    text = generate_csv(rows)
    results: list[tuple[str, float, int]] = []
    with tempfile.TemporaryDirectory(prefix="hearthside-modbench-") as folder:
        timings: list[float] = []
        written = 0
        for i in range(runs):
            seconds, written = await import_once(f"sqlite+aiosqlite:///{Path(folder) / f'run{i}.sqlite3'}", text)
            timings.append(seconds)
        results.append(("SQLite", statistics.median(timings), written))
    if postgres:
        from server.devdb import DevPostgres

        server = DevPostgres().start()
        try:
            timings = []
            for i in range(runs):
                name = f"modbench{i}"
                await _create_database(server.url(), name)
                seconds, written = await import_once(server.url(name), text)
                timings.append(seconds)
            results.append(("PostgreSQL", statistics.median(timings), written))
        finally:
            server.stop()
    return results


async def _create_database(admin_url: str, name: str) -> None:
    from sqlalchemy import text

    from server.db import make_engine

    engine = make_engine(admin_url)
    try:
        async with engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(f"CREATE DATABASE {name}"))
    finally:
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--feeds", type=int, default=10)
    parser.add_argument("--entries", type=int, default=50_000)
    parser.add_argument("--no-postgres", dest="postgres", action="store_false")
    args = parser.parse_args()
    rows = asyncio.run(import_phase(args.rows, args.runs, args.postgres))
    print(f"### Import of a {args.rows:,}-row Mastodon CSV (parse + preview + apply + commit; median of {args.runs})")
    print("| database | seconds | blocks written | target |")
    print("|---|---|---|---|")
    for name, seconds, written in rows:
        verdict = "met" if seconds <= TARGET_IMPORT else "MISSED"
        print(f"| {name} | {seconds:.3f} | {written:,} | <= {TARGET_IMPORT} s: {verdict} |")
    seconds, published = asyncio.run(publish_phase(args.rows))
    print("\n### Publishing the imported decisions to the signed feed (the job after the import; SQLite, once)")
    print("| seconds | entries signed and stored | per entry |")
    print("|---|---|---|")
    print(f"| {seconds:.2f} | {published:,} | {seconds / max(published, 1) * 1e3:.2f} ms |")
    merge_rows = merge_phase(args.feeds, args.entries, args.runs)
    if merge_rows is not None:
        seconds, decided = merge_rows
        verdict = "met" if seconds <= TARGET_MERGE else "MISSED"
        print(f"\n### Merge of {args.feeds} feeds x {args.entries:,} entries (median of {args.runs})")
        print("| seconds | entities decided | target |")
        print("|---|---|---|")
        print(f"| {seconds:.3f} | {decided:,} | <= {TARGET_MERGE} s: {verdict} |")


async def publish_phase(rows: int) -> tuple[float, int]:
    """What the import leaves to the job worker: signing and storing one feed entry per new
    decision (``server.feeds.run_publish_job``), on SQLite, once. No target: it runs after the
    import has committed."""
    from pathlib import Path as _Path

    from server import feeds
    from server.config import parse_config
    from server.db import make_engine, make_sessionmaker
    from server.web import now

    with tempfile.TemporaryDirectory(prefix="hearthside-modbench-") as folder:
        url = f"sqlite+aiosqlite:///{_Path(folder) / 'publish.sqlite3'}"
        await import_once(url, generate_csv(rows))
        config = parse_config(
            {"instance": {"base_url": "https://bench.example"}, "storage": {"data_dir": folder}}, env={}
        )
        engine = make_engine(url)
        try:
            started = time.perf_counter()
            published = await feeds.run_publish_job(make_sessionmaker(engine), config, at=now())
            return time.perf_counter() - started, published
        finally:
            await engine.dispose()


def merge_phase(feeds: int, entries: int, runs: int) -> tuple[float, int] | None:
    try:
        from bench.moderation_merge_input import build_inputs, run_merge
    except ImportError:
        print("\n(merge: moderation.merge is not built yet)", file=sys.stderr)
        return None
    inputs: Any = build_inputs(feeds, entries)
    timings: list[float] = []
    decided = 0
    for _ in range(runs):
        started = time.perf_counter()
        decided = run_merge(inputs)
        timings.append(time.perf_counter() - started)
    return statistics.median(timings), decided


if __name__ == "__main__":
    main()
