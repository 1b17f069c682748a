"""API benchmark: a group with 100,000 posts, on SQLite and on PostgreSQL.

    python -m bench.api_bench [--posts 100000] [--reads 20000] [--creates 3000]
                              [--concurrency 16] [--backends sqlite,postgres]

For each backend: ``hearthside init`` a fresh instance, seed one group with ``--posts`` posts
straight into the database (seeding is not what is measured), start one ``hearthside serve``
process, then drive it over HTTP on 127.0.0.1 from this process:

* reading a group timeline page of 20 (``GET /api/v1/hearthside/groups/:id/timeline``) as a
  logged-in member, half first pages and half deeper pages (``max_id`` at random), and
* creating posts in the group (``POST /api/v1/statuses`` with ``group_id``).

It prints throughput, p50/p99 latency and the server process's peak resident memory (VmHWM).
Targets (issue 2): timeline p99 <= 20 ms and >= 2,000 pages/s on SQLite; >= 500 posts/s.
Every run is bounded by its request counts and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import insert, update

from crypto.tokens import digest, new_token
from server.accounts import create_local_user, password_hasher
from server.config import load_config
from server.db import make_engine, make_sessionmaker
from server.devdb import DevPostgres, free_port
from server.groups import add_member, create_group
from server.ids import id_at, new_id
from server.models import Account, OAuthToken, Status

HEARTHSIDE = [sys.executable, "-m", "server"]


async def seed(config_path: Path, posts: int) -> tuple[str, int]:
    """Create a member, a group and ``posts`` posts in it; return (token, group id)."""
    config = load_config(config_path)
    engine = make_engine(config.database_url)
    sessions = make_sessionmaker(engine)
    async with sessions() as session:
        user, account = await create_local_user(
            session, password_hasher(config), username="bench", password="bench password"
        )
        view = await create_group(session, owner=account, name="bench_group", description="Benchmark group")
        token = new_token()
        session.add(
            OAuthToken(
                id=new_id(),
                token_hash=digest(token),
                user_id=user.id,
                scopes="read write follow",
                created_at=datetime.now(UTC),
            )
        )
        authors = [account]
        for i in range(20):
            _u, other = await create_local_user(
                session, password_hasher(config), username=f"member{i}", password="bench password"
            )
            await add_member(session, view.account, other)
            authors.append(other)
        await session.commit()
        group_id = view.account.id
    start_ms = int(time.time() * 1000) - posts * 10
    batch: list[dict[str, Any]] = []
    async with engine.begin() as conn:
        for n in range(posts):
            author = authors[n % len(authors)]
            moment = datetime.fromtimestamp((start_ms + n * 10) / 1000, UTC)
            text = f"Seed post {n}: a day at a time. #checkin"
            batch.append(
                {
                    # Ids carry their own timestamps (server.ids) so max_id pages land on real posts.
                    "id": id_at(start_ms + n * 10) + 1,
                    "account_id": author.id,
                    "group_id": group_id,
                    "visibility": "public",
                    "text": text,
                    "content": f"<p>{text}</p>",
                    "spoiler_text": "",
                    "sensitive": False,
                    "language": "en",
                    "local": True,
                    "replies_count": 0,
                    "reblogs_count": 0,
                    "favourites_count": 0,
                    "created_at": moment,
                }
            )
            if len(batch) == 5000:
                await conn.execute(insert(Status), batch)
                batch.clear()
        if batch:
            await conn.execute(insert(Status), batch)
        per_author = posts // len(authors)
        await conn.execute(update(Account).where(Account.actor_type == "Person").values(statuses_count=per_author))
    await engine.dispose()
    return token, group_id


@contextlib.contextmanager
def server(config_path: Path, port: int) -> Iterator[int]:
    log = config_path.parent / "serve.log"
    with log.open("w") as sink:
        proc = subprocess.Popen([*HEARTHSIDE, "serve", "--config", str(config_path)], stdout=sink, stderr=sink)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                import socket

                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            time.sleep(0.1)
        yield proc.pid
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def drive(count: int, concurrency: int, call: Callable[[int], Awaitable[None]]) -> tuple[float, list[float]]:
    """Run ``call(i)`` ``count`` times with ``concurrency`` in flight; (seconds, latencies)."""
    latencies: list[float] = []
    next_index = 0

    async def worker() -> None:
        nonlocal next_index
        while next_index < count:
            i = next_index
            next_index += 1
            started = time.perf_counter()
            await call(i)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started, latencies


def summary(name: str, seconds: float, latencies: list[float]) -> dict[str, Any]:
    ordered = sorted(latencies)
    return {
        "measure": name,
        "requests": len(ordered),
        "per_second": round(len(ordered) / seconds, 1),
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p99_ms": round(ordered[int(len(ordered) * 0.99) - 1] * 1000, 2),
    }


async def load(base: str, token: str, group_id: int, args: argparse.Namespace) -> list[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"}
    results = []
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    async with aiohttp.ClientSession(base, headers=headers, connector=connector) as http:
        timeline = f"/api/v1/hearthside/groups/{group_id}/timeline"
        async with http.get(timeline, params={"limit": "20"}) as first:
            assert first.status == 200, await first.text()
            page = await first.json()
            assert len(page) == 20
        newest = int(page[0]["id"])
        oldest_ms = (newest >> 16) - args.posts * 10
        rng = random.Random(7)
        sampled: list[int] = []

        async def read(i: int) -> None:
            params = {"limit": "20"}
            if i % 2:
                params["max_id"] = str(rng.randint(oldest_ms + 200 * 10, newest >> 16) << 16)
            async with http.get(timeline, params=params) as response:
                body = await response.read()
                if response.status != 200 or body[:1] != b"[":
                    raise RuntimeError(f"timeline answered {response.status}")
            if i % 50 == 0:  # sample: every page must be a full page of 20 posts
                sampled.append(len(json.loads(body)))

        await drive(500, args.concurrency, read)  # warm-up, not counted
        results.append(summary("group timeline page of 20", *await drive(args.reads, args.concurrency, read)))
        if sampled.count(20) != len(sampled):
            raise RuntimeError(f"sampled timeline pages were not all full: {sorted(set(sampled))}")
        if args.wrk_seconds and shutil.which("wrk"):
            row = await asyncio.to_thread(
                wrk_timeline, base, timeline, token, newest >> 16, args.posts * 10 - 2000, args
            )
            results.append(row)

        async def create(i: int) -> None:
            data = {"status": f"Checking in, day {i}. Small steps.", "group_id": str(group_id)}
            async with http.post("/api/v1/statuses", data=data) as response:
                if response.status != 200:
                    raise RuntimeError(f"create answered {response.status}: {await response.text()}")
                await response.read()

        results.append(summary("create post in group", *await drive(args.creates, args.concurrency, create)))
    return results


def wrk_timeline(
    base: str, path: str, token: str, newest_ms: int, span_ms: int, args: argparse.Namespace
) -> dict[str, Any]:
    """The same timeline reads driven by wrk (C, one thread): it needs far less CPU than the
    Python generator, which on a 2-core machine competes with the server it measures."""
    env = {**os.environ, "HS_TOKEN": token, "HS_PATH": path, "HS_NEWEST_MS": str(newest_ms), "HS_SPAN_MS": str(span_ms)}
    script = Path(__file__).with_name("timeline.lua")
    command = [
        "wrk",
        "-t1",
        f"-c{args.concurrency}",
        f"-d{args.wrk_seconds}s",
        "--latency",
        "-s",
        str(script),
        base + path,
    ]
    out = subprocess.run(
        command, env=env, capture_output=True, text=True, check=True, timeout=args.wrk_seconds + 60
    ).stdout
    if "Non-2xx" in out:
        raise RuntimeError("wrk saw error answers: " + out)

    def millis(text: str) -> float:
        value = float(text.rstrip("umsµ"))
        return (
            value / 1000
            if text.endswith("us")
            else value * 1000
            if text.endswith("s") and not text.endswith("ms")
            else value
        )

    percentiles = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] in ("50%", "99%"):
            percentiles[parts[0]] = millis(parts[1])
        if line.strip().startswith("Requests/sec:"):
            rate = float(line.split(":")[1])
        if "requests in" in line:
            count = int(line.split()[0])
    return {
        "measure": "group timeline page of 20 (wrk)",
        "requests": count,
        "per_second": round(rate, 1),
        "p50_ms": round(percentiles["50%"], 2),
        "p99_ms": round(percentiles["99%"], 2),
    }


async def run_backend(backend: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    work = Path(tempfile.mkdtemp(prefix=f"hearthside-bench-{backend}-"))
    port = free_port()
    pg: DevPostgres | None = None
    extra: list[str] = []
    if backend == "postgres":
        pg = DevPostgres().start()
        from sqlalchemy import text

        engine = make_engine(pg.url())
        async with engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("CREATE DATABASE bench"))
        await engine.dispose()
        extra = ["--database-url", pg.url("bench")]
    try:
        subprocess.run(
            [*HEARTHSIDE, "init", "--data-dir", str(work / "inst"), "--port", str(port), *extra],
            check=True,
            capture_output=True,
        )
        config_path = work / "inst" / "hearthside.toml"
        started = time.perf_counter()
        token, group_id = await seed(config_path, args.posts)
        print(f"[{backend}] seeded {args.posts} posts in {time.perf_counter() - started:.1f}s", file=sys.stderr)
        with server(config_path, port) as pid:
            results = await load(f"http://127.0.0.1:{port}", token, group_id, args)
            rss = peak_rss_mib(pid)
        for row in results:
            row["backend"] = backend
        results.append({"backend": backend, "measure": "server peak RSS (MiB)", "value": round(rss, 1)})
        return results
    finally:
        if pg is not None:
            pg.stop()
        shutil.rmtree(work, ignore_errors=True)


def render(rows: list[dict[str, Any]]) -> str:
    lines = ["| backend | measure | requests | per second | p50 ms | p99 ms |", "|---|---|---|---|---|---|"]
    for row in rows:
        if "value" in row:
            lines.append(f"| {row['backend']} | {row['measure']} | | {row['value']} | | |")
        else:
            lines.append(
                f"| {row['backend']} | {row['measure']} | {row['requests']} | {row['per_second']} "
                f"| {row['p50_ms']} | {row['p99_ms']} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--posts", type=int, default=100_000)
    parser.add_argument("--reads", type=int, default=20_000)
    parser.add_argument("--creates", type=int, default=3_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--json", action="store_true", help="print JSON rows instead of a table")
    parser.add_argument(
        "--wrk-seconds", type=int, default=20, help="also drive the timeline with wrk for this long (0: skip)"
    )
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    for backend in args.backends.split(","):
        rows.extend(asyncio.run(run_backend(backend, args)))
    cpu = os.cpu_count()
    print(f"machine: {cpu} cores, Python {sys.version.split()[0]}, one server process, load from this process")
    print(json.dumps(rows, indent=1) if args.json else render(rows))


if __name__ == "__main__":
    main()
