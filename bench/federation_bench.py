"""Federation benchmark (issue 3): inbox ingest and group fan-out, against a bare handler and Fedify.

    python -m bench.federation_bench [--seconds 15] [--concurrency 64] [--actors 200]
        [--remote-hosts 4] [--fanout 1000] [--fanout-posts 3] [--backends sqlite,postgres]
        [--no-fedify] [--no-wrk] [--no-workers-phase] [--profile] [--keep] [--json]

Run it under ``flock /tmp/bench.lock`` so that two benchmarks never share the machine.

What runs where (each server is its own process, so on a 2-core machine the server under test
has a core while the load generator uses the other):

* Hearthside: ``hearthside init`` + ``hearthside serve`` on 127.0.0.2 with
  ``federation.allow_private_addresses = true``, SQLite (and PostgreSQL via
  ``server.devdb.DevPostgres`` when asked). The config is rewritten between runs to switch
  ``server.workers`` on or off.
* Simulated remote instances (bench/federation_peers.py ``remotes``): ``--actors`` Person actors
  spread over ``--remote-hosts`` hosts 127.0.1.1 ... , each serving its actor documents
  (RSA-2048 keys; 8 keys shared round-robin, because generating 200 costs more than it teaches)
  and accepting POSTs to its inboxes.
* The load generators: this process (aiohttp client, ``--concurrency`` connections) and wrk
  with bench/federation_inbox.lua (C, one thread: far less CPU than Python, so it shows what
  the server can do when the generator is not the limit). Every request is signed before the
  timed phase (draft-cavage ``rsa-sha256`` via ``federation.httpsig.sign_request``, on all
  cores), every activity id is new, and each request is sent once. Each target first gets a
  warm-up of one activity per actor; its rate sizes the timed phases to last about
  ``--seconds`` (between ``--min-activities`` and ``--max-activities``).

Measured:

(a) ingest. Setup: every simulated actor joins the public group ``bench_group`` with a signed
    ``Follow`` through the real group inbox (the worker applies it and delivers the ``Accept``),
    which also puts every actor's key in Hearthside's key cache. Then signed ``Create(Note)``
    activities addressed to the group (``to``/``audience``) are POSTed to the shared inbox
    ``/inbox``. "Durably recorded" is the 202: the inbox commits the ``inbox_items`` row before
    answering (server/api/inbox.py; SQLite WAL with ``synchronous=NORMAL`` survives a crash of
    the process, not of the machine; the PostgreSQL of server/devdb.py runs with ``fsync=off``).
    Afterwards the number of rows of the phase must equal the
    number of 202s. Two server modes: workers off (``server.workers = false``: the inbox alone,
    the headline figure) and workers on (the inbox worker applies each post, which makes the
    group announce it to every member instance, while the load runs; its drain time is shown).
(b) fan-out. 1,000 remote accounts on 1,000 hosts (127.0.2.1 ...; one receiver process binds all
    of them) are inserted as members of ``fanout_group`` (``accounts`` + ``follows`` rows with
    ``remote = true`` and a shared inbox: setup, not measured). A local member posts in the
    group through the client API; the time from that POST to the 1,000th receipt is measured,
    and every receiver must have got exactly one signed ``Announce`` of that post's ``Create``.
    The first post opens 1,000 new connections; later posts may reuse them.
(c) the same ingest load against a bare aiohttp handler (the ceiling) and against the Fedify
    peer (tests/peers/fedify.py, Fedify 2.3.6 on Node 22; it fetches and caches the simulated
    actors' keys during a warm-up, then verifies each HTTP signature before it answers).
    Fedify's 202 means "signature verified, activity parsed and put in its in-process queue"
    (memory only); its listener then runs in the same process. The ratios Hearthside/bare and
    Hearthside/Fedify are taken between runs driven by the same generator.

Server CPU per activity is read from /proc (user + system time of the server process over the
timed phase); the load average before each phase is noted, since other work on the machine
slows everything. p50/p99 are at saturation (``--concurrency`` requests in flight), so they are
mostly queueing; the profile shows the latency of one request alone.

``--profile`` (first backend) adds where Hearthside's time goes, from bench/federation_profile.py:
timers around each step of the inbox with one request in flight; cProfile of the inbox under
load; timers around each step of the inbox worker applying what those phases recorded (delivery
and job workers off); timers around each step of a fan-out delivered one at a time; cProfile of
a fan-out at the default concurrency.

Targets (issue 3): ingest >= 2,000 activities/s and >= 2x the Fedify peer; fan-out of 1,000
deliveries <= 2 s. A missed target prints ``TARGET MISSED``; the exit status is non-zero only
when something went wrong (an unexpected answer, rows that do not match, a server that died).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import pstats
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import func, insert, select, text, update

from crypto.keys import generate_rsa
from crypto.signing import PrivateKey
from crypto.tokens import digest, new_token
from federation.httpsig import sign_request
from server.accounts import create_local_user, password_hasher
from server.actor_keys import local_keys
from server.config import load_config, render_toml
from server.db import make_engine, make_sessionmaker
from server.devdb import DevPostgres
from server.groups import create_group
from server.ids import new_id
from server.models import Account, Delivery, Follow, InboxItem, OAuthToken, Status

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PYTHON = sys.executable
HEARTHSIDE_HOST = "127.0.0.2"
BARE_HOST = "127.0.0.3"
FEDIFY_HOST = "127.0.0.4"
REMOTE_FIRST_HOST = "127.0.1.1"
RECEIVER_FIRST_HOST = "127.0.2.1"
SHARED_KEYS = 8
AS_PUBLIC = "https://www.w3.org/ns/activitystreams#Public"
AS_CONTEXT = "https://www.w3.org/ns/activitystreams"
INGEST_TARGET = 2000.0
FEDIFY_FACTOR = 2.0
FANOUT_TARGET_S = 2.0
CLK_TCK = os.sysconf("SC_CLK_TCK")
LOAD_PROCESSES: set[subprocess.Popen[str]] = set()  # wrk runs, ended on SIGTERM
# About what a Mastodon post says: a paragraph of text.
TEXT = (
    "Checking in after a hard week. I went for a walk every morning like we talked about, and it "
    "helped more than I expected. Still not sleeping well, but I wrote down three things each "
    "night. Thank you all for being here; reading your posts makes the evenings easier."
)


class BenchError(RuntimeError):
    """Something went wrong (not a missed target): the run's figures cannot be trusted."""


# ---------------------------------------------------------------------------- processes


def wait_port(host: str, port: int, proc: subprocess.Popen[bytes] | None = None, within: float = 60) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise BenchError(f"process {proc.args!r} exited with {proc.returncode} before listening on {host}:{port}")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1):
            return
        time.sleep(0.05)
    raise BenchError(f"nothing listens on {host}:{port} after {within}s")


def free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def process(command: list[str], log: Path, host: str, port: int) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``command`` (its output to ``log``) until it listens on host:port; SIGINT it on exit."""
    with log.open("ab") as sink:
        proc = subprocess.Popen(command, stdout=sink, stderr=sink, cwd=ROOT)
    try:
        wait_port(host, port, proc)
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process and its live children (``serve --processes``),
    from /proc (resolution 1/CLK_TCK)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    total = (int(fields[11]) + int(fields[12])) / CLK_TCK
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        for child in children.read_text().split():
            total += cpu_seconds(int(child))
    return total


#: Hearthside web processes for this run (``--processes``), read by ``Hearthside.configure``.
PROCESSES = [1]


# ---------------------------------------------------------------------------- signing

_SIGNING_KEYS: list[PrivateKey] = []


def _load_signing_keys(pems: list[str]) -> None:
    _SIGNING_KEYS[:] = [PrivateKey.from_pem(pem) for pem in pems]


def _sign(job: tuple[str, bytes, int, str, float]) -> dict[str, str]:
    url, body, key_index, key_id, moment = job
    return sign_request(
        "POST",
        url,
        headers=None,
        body=body,
        key=_SIGNING_KEYS[key_index],
        key_id=key_id,
        now=datetime.fromtimestamp(moment, UTC),
    )


@dataclass(frozen=True)
class Prepared:
    """One signed POST, ready to send."""

    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Remotes:
    """The simulated remote instances: where actor ``i`` lives and which key it signs with."""

    hosts: list[str]
    port: int
    actors: int
    private_pems: list[str]
    pool: ProcessPoolExecutor

    def actor(self, i: int) -> str:
        return f"http://{self.hosts[i % len(self.hosts)]}:{self.port}/users/actor{i}"

    def key_index(self, i: int) -> int:
        return i % len(self.private_pems)

    def sign(self, base: str, inbox_path: str, activities: Sequence[tuple[int, dict[str, Any]]]) -> list[Prepared]:
        """Serialise and sign ``(actor index, activity)`` pairs for POSTs to ``base + inbox_path``."""
        moment = time.time()
        bodies = [json.dumps(activity, separators=(",", ":")).encode() for _, activity in activities]
        jobs = [
            (base + inbox_path, body, self.key_index(i), f"{self.actor(i)}#main-key", moment)
            for (i, _), body in zip(activities, bodies, strict=True)
        ]
        headers = list(self.pool.map(_sign, jobs, chunksize=256))
        return [Prepared(inbox_path, h, body) for h, body in zip(headers, bodies, strict=True)]

    def create_notes(self, phase: str, count: int, *, audience: str) -> list[tuple[int, dict[str, Any]]]:
        """``count`` Create(Note) activities, actors taken round-robin, ids unique to ``phase``."""
        published = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        out = []
        for n in range(count):
            i = n % self.actors
            actor = self.actor(i)
            note_id = f"{actor}/statuses/{phase}-{n}"
            addressing = {"to": [AS_PUBLIC, audience], "cc": [f"{actor}/followers"], "audience": audience}
            note = {
                "id": note_id,
                "type": "Note",
                "attributedTo": actor,
                "content": f"<p>{TEXT} ({phase} {n})</p>",
                "published": published,
                "url": note_id,
                "attachment": [],
                "tag": [],
                **addressing,
            }
            activity = {
                "@context": AS_CONTEXT,
                "id": f"{note_id}/activity",
                "type": "Create",
                "actor": actor,
                "published": published,
                **addressing,
                "object": note,
            }
            out.append((i, activity))
        return out

    def follows(self, target: str) -> list[tuple[int, dict[str, Any]]]:
        return [
            (
                i,
                {
                    "@context": AS_CONTEXT,
                    "id": f"{self.actor(i)}/follows/bench-{i}",
                    "type": "Follow",
                    "actor": self.actor(i),
                    "object": target,
                },
            )
            for i in range(self.actors)
        ]


# ---------------------------------------------------------------------------- load generators


@dataclass
class Run:
    """The outcome of one timed phase."""

    target: str
    generator: str
    sent: int
    seconds: float
    statuses: Counter[int]
    p50_ms: float
    p99_ms: float
    server_cpu_s: float = 0.0
    generator_cpu_s: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def accepted(self) -> int:
        return self.statuses.get(202, 0)

    @property
    def per_second(self) -> float:
        return self.accepted / self.seconds if self.seconds else 0.0

    def row(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "generator": self.generator,
            "activities": self.sent,
            "accepted_202": self.accepted,
            "seconds": round(self.seconds, 2),
            "per_second": round(self.per_second, 1),
            "p50_ms": round(self.p50_ms, 2),
            "p99_ms": round(self.p99_ms, 2),
            "server_cpu_us_per_activity": round(self.server_cpu_s / max(1, self.accepted) * 1e6),
            "server_cpu_percent": round(self.server_cpu_s / self.seconds * 100) if self.seconds else 0,
            "generator_cpu_percent": round(self.generator_cpu_s / self.seconds * 100) if self.seconds else 0,
            "notes": "; ".join(self.notes),
        }


def percentile(ordered: list[float], fraction: float) -> float:
    return ordered[min(len(ordered) - 1, max(0, round(len(ordered) * fraction) - 1))]


async def send_python(base: str, prepared: list[Prepared], concurrency: int) -> tuple[float, Counter[int], list[float]]:
    """POST every request once with ``concurrency`` in flight; (seconds, statuses, latencies)."""
    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    next_index = 0
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(base, connector=connector, timeout=timeout) as http:

        async def worker() -> None:
            nonlocal next_index
            while next_index < len(prepared):
                item = prepared[next_index]
                next_index += 1
                started = time.perf_counter()
                async with http.post(item.path, data=item.body, headers=item.headers) as response:
                    await response.read()
                    statuses[response.status] += 1
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started, statuses, latencies


async def drive_python(
    target: str, base: str, prepared: list[Prepared], concurrency: int, server_pid: int | None
) -> Run:
    load = os.getloadavg()[0]
    cpu_before = cpu_seconds(server_pid) if server_pid else 0.0
    own_before = time.process_time()
    seconds, statuses, latencies = await send_python(base, prepared, concurrency)
    own = time.process_time() - own_before
    server_cpu = cpu_seconds(server_pid) - cpu_before if server_pid else 0.0
    ordered = sorted(latencies)
    return Run(
        target,
        f"python aiohttp c={concurrency}",
        len(prepared),
        seconds,
        statuses,
        statistics.median(ordered) * 1000,
        percentile(ordered, 0.99) * 1000,
        server_cpu,
        own,
        [f"load avg {load:.1f} before"],
    )


def raw_requests(prepared: list[Prepared], path: Path) -> None:
    """The wrk script's input: each raw HTTP/1.1 request preceded by its length and a newline."""
    with path.open("wb") as out:
        for item in prepared:
            head = f"POST {item.path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in item.headers.items())
            raw = head.encode() + f"Content-Length: {len(item.body)}\r\n\r\n".encode() + item.body
            out.write(f"{len(raw)}\n".encode() + raw)


def drive_wrk(
    target: str, base: str, prepared: list[Prepared], concurrency: int, server_pid: int | None, work: Path
) -> Run:
    requests_file = work / "wrk-requests.bin"
    raw_requests(prepared, requests_file)
    env = {**os.environ, "HS_REQUESTS": str(requests_file)}
    # -d bounds a run that never completes (wrk sleeps until then unless we SIGINT it).
    bound = max(60, len(prepared) // 50)
    script = str(BENCH / "federation_inbox.lua")
    command = ["wrk", "-t1", f"-c{concurrency}", f"-d{bound}s", "--timeout", "30s", "-s", script, base + "/"]
    load = os.getloadavg()[0]
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_before = cpu_seconds(server_pid) if server_pid else 0.0
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    LOAD_PROCESSES.add(proc)
    assert proc.stdout is not None
    done_line = ""
    for line in proc.stdout:
        if line.startswith("WRK_DONE"):
            done_line = line
            break
    server_cpu = cpu_seconds(server_pid) - cpu_before if server_pid else 0.0
    proc.send_signal(signal.SIGINT)
    rest, errors = proc.communicate(timeout=60)
    LOAD_PROCESSES.discard(proc)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    requests_file.unlink()
    if not done_line:
        raise BenchError(f"wrk did not finish against {target}: {rest[-2000:]} {errors[-2000:]}")
    _, _answered, accepted, other, first, last = done_line.split()
    latency = next((line for line in rest.splitlines() if line.startswith("WRK_LATENCY")), None)
    if latency is None:
        raise BenchError(f"wrk printed no latency line: {rest[-2000:]}")
    _, p50_us, p99_us, _max_us, socket_errors, timeouts = latency.split()
    statuses: Counter[int] = Counter({202: int(accepted)})
    if int(other):
        statuses[0] = int(other)  # wrk's script counts non-202 answers without their codes
    run = Run(
        target,
        f"wrk c={concurrency}",
        len(prepared),
        float(last) - float(first),
        statuses,
        int(p50_us) / 1000,
        int(p99_us) / 1000,
        server_cpu,
        (children.ru_utime + children.ru_stime) - (children_before.ru_utime + children_before.ru_stime),
        [f"load avg {load:.1f} before"],
    )
    if int(socket_errors) or int(timeouts):
        run.notes.append(f"wrk socket errors {socket_errors}, timeouts {timeouts}")
    return run


# ---------------------------------------------------------------------------- Hearthside


class Hearthside:
    """One Hearthside instance (data directory, database) that is served several times."""

    def __init__(self, backend: str, work: Path) -> None:
        self.backend = backend
        self.dir = work / f"hearthside-{backend}"
        self.port = free_port(HEARTHSIDE_HOST)
        self.base = f"http://{HEARTHSIDE_HOST}:{self.port}"
        self.pg: DevPostgres | None = None
        self.db_url = ""
        self.token = ""
        self.group_uri = f"{self.base}/groups/bench_group"
        self.fanout_group_id = 0
        self.serve_count = 0

    async def init(self) -> None:
        if self.backend == "postgres":
            self.pg = DevPostgres().start()
            engine = make_engine(self.pg.url())
            async with engine.connect() as conn:
                conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
                await conn.execute(text("CREATE DATABASE bench"))
            await engine.dispose()
            self.db_url = self.pg.url("bench")
        extra = ["--database-url", self.db_url] if self.db_url else []
        command = [PYTHON, "-m", "server", "init", "--data-dir", str(self.dir), "--host", HEARTHSIDE_HOST]
        subprocess.run([*command, "--port", str(self.port), *extra], check=True, capture_output=True, cwd=ROOT)

    def close(self) -> None:
        if self.pg is not None:
            self.pg.stop()

    @property
    def config_path(self) -> Path:
        return self.dir / "hearthside.toml"

    def configure(self, *, workers: bool, delivery_concurrency: int | None = None) -> None:
        federation: dict[str, Any] = {"allow_private_addresses": True}
        if delivery_concurrency is not None:
            federation["delivery_concurrency"] = delivery_concurrency
        overrides: dict[str, dict[str, Any]] = {
            "instance": {"base_url": self.base, "registrations": "open"},
            "server": {"host": HEARTHSIDE_HOST, "port": self.port, "workers": workers, "processes": PROCESSES[0]},
            "storage": {"data_dir": "."},
            "federation": federation,
        }
        if self.db_url:
            overrides["database"] = {"url": self.db_url}
        self.config_path.write_text(render_toml(overrides))

    @contextlib.contextmanager
    def serve(
        self,
        *,
        workers: bool,
        delivery_concurrency: int | None = None,
        profile: tuple[Path, Path | None] | None = None,
        inbox_worker_only: bool = False,
    ) -> Iterator[int]:
        """Serve until the block ends; yields the server's pid. ``profile``: (sections, cprofile)."""
        self.configure(workers=workers, delivery_concurrency=delivery_concurrency)
        self.serve_count += 1
        log = self.dir / f"serve-{self.serve_count}.log"
        if profile is None:
            command = [PYTHON, "-m", "server", "serve", "--config", str(self.config_path)]
        else:
            sections, cprofile = profile
            command = [PYTHON, "-m", "bench.federation_profile", "--config", str(self.config_path)]
            command += ["--sections", str(sections), *(["--cprofile", str(cprofile)] if cprofile else [])]
            command += ["--inbox-worker-only"] if inbox_worker_only else []
        with process(command, log, HEARTHSIDE_HOST, self.port) as proc:
            yield proc.pid
            if proc.poll() is not None:
                raise BenchError(f"Hearthside exited with {proc.returncode} during the run; see {log}")

    def engine(self) -> Any:
        return make_engine(load_config(self.config_path).database_url)

    async def seed(self, receivers: list[str], receiver_port: int) -> None:
        """Groups, the posting member's token, and the fan-out group's 1,000 remote members."""
        self.configure(workers=False)
        config = load_config(self.config_path)
        engine = self.engine()
        sessions = make_sessionmaker(engine)
        moment = datetime.now(UTC)
        async with sessions() as session:
            hasher = password_hasher(config)
            _, owner = await create_local_user(session, hasher, username="owner", password="bench password 1")
            await create_group(session, owner=owner, name="bench_group", description="Ingest benchmark")
            user, poster = await create_local_user(session, hasher, username="poster", password="bench password 2")
            fanout = await create_group(session, owner=poster, name="fanout_group", description="Fan-out benchmark")
            # The group and the poster have keys before the measurement, as they would after any
            # earlier activity (the first Accept); creating them is not what fan-out measures.
            await local_keys(session, config, fanout.account)
            await local_keys(session, config, poster)
            self.token = new_token()
            session.add(
                OAuthToken(
                    id=new_id(),
                    token_hash=digest(self.token),
                    user_id=user.id,
                    scopes="read write follow",
                    created_at=moment,
                )
            )
            await session.commit()
            self.fanout_group_id = fanout.account.id
        accounts, follows = [], []
        for host in receivers:
            origin = f"http://{host}:{receiver_port}"
            account_id = new_id()
            accounts.append(
                {
                    "id": account_id,
                    "username": "member",
                    "username_lower": "member",
                    "domain": f"{host}:{receiver_port}",
                    "uri": f"{origin}/users/member",
                    "url": f"{origin}/users/member",
                    "inbox_url": f"{origin}/users/member/inbox",
                    "shared_inbox_url": f"{origin}/inbox",
                    "followers_url": f"{origin}/users/member/followers",
                    "fetched_at": moment,
                    "created_at": moment,
                    "updated_at": moment,
                }
            )
            follows.append(
                {
                    "id": new_id(),
                    "account_id": account_id,
                    "target_account_id": self.fanout_group_id,
                    "state": "accepted",
                    "remote": True,
                    "created_at": moment,
                }
            )
        async with engine.begin() as conn:
            await conn.execute(insert(Account), accounts)
            await conn.execute(insert(Follow), follows)
            await conn.execute(
                update(Account)
                .where(Account.id == self.fanout_group_id)
                .values(followers_count=Account.followers_count + len(receivers))
            )
        await engine.dispose()

    async def query(self, statement: Any) -> Any:
        engine = self.engine()
        try:
            async with engine.connect() as conn:
                return (await conn.execute(statement)).all()
        finally:
            await engine.dispose()

    async def count_pending(self) -> int:
        rows = await self.query(select(func.count()).select_from(InboxItem).where(InboxItem.state == "pending"))
        return int(rows[0][0])

    async def count_phase(self, phase: str, *, state: str | None = None) -> int:
        where = [InboxItem.activity_id.like(f"%/statuses/{phase}-%")]
        if state is not None:
            where.append(InboxItem.state == state)
        rows = await self.query(select(func.count()).select_from(InboxItem).where(*where))
        return int(rows[0][0])


async def eventually(check: Any, *, within: float, what: str, every: float = 0.1) -> Any:
    deadline = time.monotonic() + within
    last = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(every)
    raise BenchError(f"timed out after {within}s waiting for {what} (last: {last!r})")


async def join_group(inst: Hearthside, remotes: Remotes) -> float:
    """Every simulated actor follows bench_group through the real group inbox; seconds taken."""
    prepared = remotes.sign(inst.base, "/groups/bench_group/inbox", remotes.follows(inst.group_uri))
    started = time.monotonic()
    _, statuses, _ = await send_python(inst.base, prepared, 16)
    if statuses != Counter({202: remotes.actors}):
        raise BenchError(f"Follow activities answered {dict(statuses)}")

    async def members() -> bool:
        rows = await inst.query(
            select(func.count())
            .select_from(Follow)
            .join(Account, Account.id == Follow.target_account_id)
            .where(Account.username == "bench_group", Follow.remote.is_(True), Follow.state == "accepted")
        )
        return int(rows[0][0]) == remotes.actors

    await eventually(members, within=120, what="the simulated actors' memberships")

    async def accepts_delivered() -> bool:
        rows = await inst.query(select(Delivery.state, func.count()).group_by(Delivery.state))
        states = dict(rows)
        return states.get("delivered", 0) >= remotes.actors and not states.get("pending")

    await eventually(accepts_delivered, within=120, what="the Accept deliveries")
    return time.monotonic() - started


async def check_rows(inst: Hearthside, phase: str, run: Run) -> None:
    rows = await inst.count_phase(phase)
    run.notes.append(f"inbox_items rows {rows}")
    if rows != run.accepted:
        raise BenchError(f"{run.target} {run.generator}: {run.accepted} answers 202 but {rows} inbox_items rows")
    if run.accepted != run.sent:
        raise BenchError(f"{run.target} {run.generator}: answers {dict(run.statuses)} for {run.sent} activities")


# ---------------------------------------------------------------------------- fan-out


@dataclass
class FanoutResult:
    backend: str
    post: int
    deliveries: int
    seconds: float
    api_ms: float
    first_ms: float
    server_cpu_s: float
    receivers_cpu_s: float

    def row(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "post": self.post,
            "deliveries": self.deliveries,
            "end_to_end_s": round(self.seconds, 3),
            "deliveries_per_second": round(self.deliveries / self.seconds, 1),
            "api_answer_ms": round(self.api_ms, 1),
            "first_receipt_ms": round(self.first_ms, 1),
            "server_cpu_ms": round(self.server_cpu_s * 1000),
            "receivers_cpu_ms": round(self.receivers_cpu_s * 1000),
        }


async def fanout_post(plan: Plan, inst: Hearthside, number: int, pid: int) -> FanoutResult:
    """One post in fanout_group; seconds from the POST to the last of the receipts, checked."""
    receiver_port, expected = plan.receiver_port, len(plan.receivers)
    control = f"http://{RECEIVER_FIRST_HOST}:{receiver_port}"
    async with aiohttp.ClientSession() as http:
        async with http.post(control + "/_reset") as response:
            response.raise_for_status()
        headers = {"Authorization": f"Bearer {inst.token}"}
        data = {
            "status": f"Fan-out benchmark post {number}: we meet on Thursday.",
            "group_id": str(inst.fanout_group_id),
        }
        cpu_before, receivers_before = cpu_seconds(pid), cpu_seconds(plan.receivers_pid)
        started = time.monotonic()
        async with http.post(inst.base + "/api/v1/statuses", data=data, headers=headers) as response:
            body = await response.json()
            if response.status != 200:
                raise BenchError(f"posting in the fan-out group answered {response.status}: {body}")
        answered = time.monotonic()
        create_id = body["uri"] + "/activity"

        async def all_received() -> bool:
            async with http.get(control + "/_receipts") as response:
                return int((await response.json())["count"]) >= expected

        await eventually(all_received, within=300, what=f"{expected} fan-out receipts", every=0.02)
        server_cpu = cpu_seconds(pid) - cpu_before
        receivers_cpu = cpu_seconds(plan.receivers_pid) - receivers_before
        async with http.get(control + "/_receipts", params={"full": "1"}) as response:
            got = await response.json()
    records = got["records"]
    per_host = Counter(r[0] for r in records)
    wrong = [r for r in records if r[1] != "Announce" or r[3] != create_id or not r[4]]
    if len(per_host) != expected or set(per_host.values()) != {1} or wrong:
        raise BenchError(
            f"fan-out post {number}: {len(records)} receipts on {len(per_host)} hosts, "
            f"{sum(1 for v in per_host.values() if v > 1)} hosts got more than one, {len(wrong)} not a signed "
            f"Announce of {create_id} (first: {wrong[:1]})"
        )
    times = [r[5] for r in records]
    return FanoutResult(
        inst.backend,
        number,
        len(records),
        max(times) - started,
        (answered - started) * 1000,
        (min(times) - started) * 1000,
        server_cpu,
        receivers_cpu,
    )


# ---------------------------------------------------------------------------- phases


@dataclass
class Plan:
    args: argparse.Namespace
    work: Path
    remotes: Remotes
    receivers: list[str]
    receiver_port: int
    receivers_pid: int
    runs: list[Run] = field(default_factory=list)
    fanouts: list[FanoutResult] = field(default_factory=list)
    facts: list[str] = field(default_factory=list)
    profile_lines: list[str] = field(default_factory=list)
    # Signed Create(Note) requests of a Hearthside phase, sent again (cyclically) to the bare
    # handler, which checks nothing.
    bare_requests: list[Prepared] = field(default_factory=list)

    def size(self, rate: float) -> int:
        """Activities for a timed phase: about ``--seconds`` at ``rate``, within the bounds."""
        return int(min(self.args.max_activities, max(self.args.min_activities, rate * self.args.seconds)))


def log(message: str) -> None:
    print(f"[federation-bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


Requests = Callable[[str, int], list[Prepared]]  # (phase, count) -> signed requests
Check = Callable[[str, Run], Awaitable[None]]  # raises BenchError, or adds notes to the run


async def ingest(
    plan: Plan,
    target: str,
    base: str,
    pid: int,
    requests: Requests,
    check: Check,
    *,
    phase: str,
    generators: Sequence[str],
) -> None:
    """A warm-up of one activity per actor (its rate sizes the timed phases), then one timed
    phase per generator, each with new activities, each checked by ``check``."""
    args = plan.args
    warm = requests(f"warm-{phase}", plan.remotes.actors)
    seconds, statuses, _ = await send_python(base, warm, args.concurrency)
    if statuses.get(202, 0) != len(warm):
        raise BenchError(f"{target}: warm-up answered {dict(statuses)}")
    rate = len(warm) / seconds
    for generator in generators:
        name = f"{phase}-{generator}"
        prepared = requests(name, plan.size(rate))
        log(f"{target}: {generator} generator, {len(prepared)} activities")
        if generator == "python":
            run = await drive_python(target, base, prepared, args.concurrency, pid)
        else:
            run = await asyncio.to_thread(drive_wrk, target, base, prepared, args.concurrency, pid, plan.work)
        await check(name, run)
        plan.runs.append(run)
        rate = max(rate, run.per_second)


def hearthside_requests(plan: Plan, inst: Hearthside) -> Requests:
    def make(phase: str, count: int) -> list[Prepared]:
        notes = plan.remotes.create_notes(phase, count, audience=inst.group_uri)
        return plan.remotes.sign(inst.base, "/inbox", notes)

    return make


async def hearthside_phases(plan: Plan, backend: str) -> None:
    args = plan.args
    inst = Hearthside(backend, plan.work)
    try:
        await inst.init()
        await inst.seed(plan.receivers, plan.receiver_port)
        requests = hearthside_requests(plan, inst)
        with inst.serve(workers=True) as pid:
            seconds = await join_group(inst, plan.remotes)
            plan.facts.append(
                f"[{backend}] {plan.remotes.actors} Follow activities (through the group inbox) applied "
                f"and their Accepts delivered in {seconds:.1f}s"
            )
            log(f"{backend}: members joined in {seconds:.1f}s; fan-out")
            for number in range(1, args.fanout_posts + 1):
                result = await fanout_post(plan, inst, number, pid)
                plan.fanouts.append(result)
                log(f"{backend}: fan-out post {number}: {result.seconds:.2f}s")
            if args.workers_phase:

                async def applied(phase: str, run: Run) -> None:
                    await check_rows(inst, phase, run)
                    last_202 = time.monotonic()
                    await eventually(
                        lambda: _none_pending(inst, phase), within=900, what="the inbox worker to apply the phase"
                    )
                    drain = time.monotonic() - last_202
                    stored = await inst.query(
                        select(func.count()).select_from(Status).where(Status.uri.like(f"%/statuses/{phase}-%"))
                    )
                    failed = await inst.count_phase(phase, state="failed")
                    run.notes.append(
                        f"worker applied all (stored {stored[0][0]} group posts, {failed} failed) "
                        f"{drain:.1f}s after the last 202"
                    )

                await ingest(
                    plan,
                    f"Hearthside ({backend}), workers on",
                    inst.base,
                    pid,
                    requests,
                    applied,
                    phase=f"{backend}-on",
                    generators=["python"],
                )
        with inst.serve(workers=False) as pid:

            async def recorded(phase: str, run: Run) -> None:
                await check_rows(inst, phase, run)

            def keep_for_bare(phase: str, count: int) -> list[Prepared]:
                prepared = requests(phase, count)
                if not phase.startswith("warm-") and not plan.bare_requests:
                    plan.bare_requests = prepared
                return prepared

            await ingest(
                plan,
                f"Hearthside ({backend}), workers off",
                inst.base,
                pid,
                keep_for_bare,
                recorded,
                phase=f"{backend}-off",
                generators=["python", "wrk"] if args.wrk else ["python"],
            )
        if args.profile and backend == args.backends.split(",")[0]:
            await profile_hearthside(plan, inst)
    finally:
        inst.close()


async def _none_pending(inst: Hearthside, phase: str) -> bool:
    return await inst.count_phase(phase, state="pending") == 0


async def bare_phases(plan: Plan) -> None:
    port = free_port(BARE_HOST)
    base = f"http://{BARE_HOST}:{port}"
    command = [PYTHON, "-m", "bench.federation_peers", "bare", "--first-host", BARE_HOST, "--port", str(port)]
    stored = plan.bare_requests

    def again(_phase: str, count: int) -> list[Prepared]:
        return [stored[i % len(stored)] for i in range(count)]

    async def all_accepted(_phase: str, run: Run) -> None:
        if run.accepted != run.sent:
            raise BenchError(f"bare handler answered {dict(run.statuses)}")

    with process(command, plan.work / "bare.log", BARE_HOST, port) as proc:
        await ingest(
            plan,
            "bare aiohttp handler",
            base,
            proc.pid,
            again,
            all_accepted,
            phase="bare",
            generators=["python", "wrk"] if plan.args.wrk else ["python"],
        )


def fedify_inbox_events(path: Path, phase: str) -> int:
    marker = f"/statuses/{phase}-"
    count = 0
    with path.open("r", encoding="utf-8", errors="replace") as events:
        for line in events:
            if line.startswith('{"event":"inbox"') and marker in line:
                count += 1
    return count


async def fedify_phases(plan: Plan) -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    from peers.fedify import FedifyPeer, node_available

    if not node_available():
        raise BenchError("the Fedify peer is not installed: run `make peers` (or pass --no-fedify)")
    peer = await FedifyPeer.start(FEDIFY_HOST, None, "draft-cavage-http-signatures-12", plan.work / "fedify")
    try:
        pid = peer.process.pid if peer.process else 0

        def requests(phase: str, count: int) -> list[Prepared]:
            notes = plan.remotes.create_notes(phase, count, audience=peer.actor_url)
            return plan.remotes.sign(peer.origin, "/inbox", notes)

        async def processed(phase: str, run: Run) -> None:
            if run.accepted != run.sent:
                raise BenchError(f"Fedify answered {dict(run.statuses)}; see {peer.state_dir}/stderr.log")
            last_202 = time.monotonic()

            async def listener_done() -> bool:
                return await asyncio.to_thread(fedify_inbox_events, peer.events_path, phase) >= run.accepted

            await eventually(listener_done, within=600, what="Fedify to process its queue", every=0.5)
            run.notes.append(f"listener ran for all {time.monotonic() - last_202:.1f}s after the last 202")

        # The warm-up makes Fedify fetch and cache every simulated actor's key before timing.
        await ingest(
            plan,
            "Fedify 2.3.6 peer",
            peer.origin,
            pid,
            requests,
            processed,
            phase="fedify",
            generators=["python", "wrk"] if plan.args.wrk else ["python"],
        )
    finally:
        peer.stop()


# ---------------------------------------------------------------------------- profile


def _sections_table(path: Path, per: int | str, what: str) -> list[str]:
    """Timer totals per unit of work; ``per`` is a count, or the label whose calls count it."""
    sections = json.loads(path.read_text())
    if isinstance(per, str):
        per = max(1, int(sections.get(per, [0])[0]))
    lines = [
        f"| label | calls per {what} | CPU µs per call | CPU µs per {what} | wall µs per {what} "
        "| most CPU µs in one call |",
        "|---|---|---|---|---|---|",
    ]
    for label, (calls, cpu, wall, most) in sorted(sections.items(), key=lambda kv: kv[0]):
        if calls == 0:
            continue
        cells = [f"{calls / per:.2f}", f"{cpu / calls * 1e6:.0f}", f"{cpu / per * 1e6:.0f}", f"{wall / per * 1e6:.0f}"]
        lines.append(f"| {label} | {' | '.join(cells)} | {most * 1e6:.0f} |")
    return lines


def _cprofile_top(path: Path, per: int, what: str, limit: int = 30) -> list[str]:
    stats = pstats.Stats(str(path))
    entries = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:limit]  # type: ignore[attr-defined]
    lines = [f"| function | calls per {what} | own µs per {what} | cumulative µs per {what} |", "|---|---|---|---|"]
    for (filename, line, name), (_cc, calls, own, cumulative, _callers) in entries:
        where = filename.replace(str(ROOT) + "/", "")
        if "site-packages/" in where:
            where = where.split("site-packages/", 1)[1]
        lines.append(
            f"| {where}:{line} {name} | {calls / per:.1f} | {own / per * 1e6:.1f} | {cumulative / per * 1e6:.1f} |"
        )
    return lines


@contextlib.asynccontextmanager
async def measuring(pid: int, sections: Path) -> AsyncIterator[None]:
    """SIGUSR1/SIGUSR2 to bench/federation_profile.py around the block; waits for its files."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(sections)
    os.kill(pid, signal.SIGUSR1)
    yield
    os.kill(pid, signal.SIGUSR2)

    async def written() -> bool:
        return await asyncio.to_thread(sections.exists)

    await eventually(written, within=60, what=f"{sections.name} from the profiled server")


async def settle_backlog(inst: Hearthside) -> None:
    """Mark what earlier phases left pending as done, so a workers-on profile sees only its own work."""
    engine = inst.engine()
    try:
        async with engine.begin() as conn:
            await conn.execute(update(InboxItem).where(InboxItem.state == "pending").values(state="done", body=None))
            await conn.execute(update(Delivery).where(Delivery.state == "pending").values(state="skipped"))
    finally:
        await engine.dispose()


async def profile_hearthside(plan: Plan, inst: Hearthside) -> None:
    """Where the time goes: timers with one request (or delivery) in flight, then cProfile under load."""
    args = plan.args
    out = plan.profile_lines
    work = plan.work
    count = args.profile_activities
    requests = hearthside_requests(plan, inst)
    await settle_backlog(inst)
    # (1) ingest, one request in flight, timers.
    sections = work / "sections-ingest.json"
    with inst.serve(workers=False, profile=(sections, None)) as pid:
        await send_python(inst.base, requests("warm-profile-1", plan.remotes.actors), 1)
        prepared = requests("profile-1", count)
        async with measuring(pid, sections):
            run = await drive_python("Hearthside, timers", inst.base, prepared, 1, pid)
    out.append(
        f"### Ingest, one request in flight ({count} activities, workers off, timers on): {run.per_second:.0f}/s, "
        f"client-side latency p50 {run.p50_ms:.2f} ms, p99 {run.p99_ms:.2f} ms, "
        f"server process CPU {run.server_cpu_s / count * 1e6:.0f} µs per activity (/proc)"
    )
    out.extend(_sections_table(sections, count, "activity"))
    # (2) ingest under load, cProfile.
    sections, stats = work / "sections-ingest-load.json", work / "ingest.prof"
    with inst.serve(workers=False, profile=(sections, stats)) as pid:
        await send_python(inst.base, requests("warm-profile-2", plan.remotes.actors), args.concurrency)
        prepared = requests("profile-2", count)
        async with measuring(pid, sections):
            run = await drive_python("Hearthside, cProfile", inst.base, prepared, args.concurrency, pid)
    out += [
        "",
        f"### Ingest under load (c={args.concurrency}, {count} activities, workers off, cProfile on: "
        f"{run.per_second:.0f}/s), top functions by own time",
        *_cprofile_top(stats, count, "activity"),
    ]
    # (3) the inbox worker applying what (1) and (2) recorded, without deliveries or jobs.
    sections = work / "sections-apply.json"
    pending = await inst.count_pending()
    with inst.serve(workers=True, profile=(sections, None), inbox_worker_only=True) as pid:
        started = time.monotonic()
        async with measuring(pid, sections):

            async def drained() -> bool:
                return await inst.count_pending() == 0

            await eventually(drained, within=900, what="the inbox worker to apply the profile phases", every=0.2)
        seconds = time.monotonic() - started
    out += [
        "",
        f"### Inbox worker applying {pending} recorded group posts (Create(Note) to bench_group; delivery and job "
        f"workers off, timers on): about {pending / seconds:.0f}/s; each enqueues an Announce to the "
        f"{len(plan.remotes.hosts)} member instances",
        *_sections_table(sections, "apply: process one item total", "applied activity"),
    ]
    # (3) fan-out, one delivery at a time, timers.
    await settle_backlog(inst)
    fanout = len(plan.receivers)
    sections = work / "sections-fanout.json"
    with inst.serve(workers=True, delivery_concurrency=1, profile=(sections, None)) as pid:
        async with measuring(pid, sections):
            result = await fanout_post(plan, inst, 90, pid)
    out += [
        "",
        f"### Fan-out, one delivery at a time (delivery_concurrency = 1, timers on): {result.seconds:.2f}s for "
        f"{result.deliveries}, server process CPU {result.server_cpu_s / result.deliveries * 1e6:.0f} µs per "
        "delivery (/proc)",
        *_sections_table(sections, fanout, "delivery"),
    ]
    # (4) fan-out at the configured concurrency, cProfile.
    sections, stats = work / "sections-fanout-load.json", work / "fanout.prof"
    with inst.serve(workers=True, profile=(sections, stats)) as pid:
        async with measuring(pid, sections):
            result = await fanout_post(plan, inst, 91, pid)
    out += [
        "",
        f"### Fan-out at the default delivery_concurrency with cProfile on ({result.seconds:.2f}s for "
        f"{result.deliveries}), top functions by own time",
        *_cprofile_top(stats, fanout, "delivery"),
    ]


# ---------------------------------------------------------------------------- report


def render(plan: Plan) -> str:
    lines = [
        "| target | generator | activities | 202s | seconds | per second | p50 ms | p99 ms "
        "| server CPU µs/activity | server CPU % | generator CPU % | notes |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in plan.runs:
        r = run.row()
        lines.append(
            f"| {r['target']} | {r['generator']} | {r['activities']} | {r['accepted_202']} | {r['seconds']} "
            f"| {r['per_second']} | {r['p50_ms']} | {r['p99_ms']} | {r['server_cpu_us_per_activity']} "
            f"| {r['server_cpu_percent']} | {r['generator_cpu_percent']} | {r['notes']} |"
        )
    if plan.fanouts:
        lines += [
            "",
            "| backend | fan-out post | deliveries | end-to-end s | deliveries/s | API answer ms | first receipt ms "
            "| server CPU ms | receivers CPU ms |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for f in plan.fanouts:
            r = f.row()
            lines.append(
                f"| {r['backend']} | {r['post']}{' (cold)' if f.post == 1 else ''} | {r['deliveries']} "
                f"| {r['end_to_end_s']} | {r['deliveries_per_second']} | {r['api_answer_ms']} "
                f"| {r['first_receipt_ms']} | {r['server_cpu_ms']} | {r['receivers_cpu_ms']} |"
            )
    return "\n".join(lines)


def verdicts(plan: Plan) -> list[str]:
    """Ratios and targets, compared within one generator (the faster one for each pair)."""
    out: list[str] = []

    def find(prefix: str, generator: str) -> Run | None:
        return next((r for r in plan.runs if r.target.startswith(prefix) and r.generator.startswith(generator)), None)

    for backend in plan.args.backends.split(","):
        for generator in ("wrk", "python"):
            ours = find(f"Hearthside ({backend}), workers off", generator)
            if ours is None:
                continue
            bare = find("bare aiohttp", generator)
            fedify = find("Fedify", generator)
            head = f"{backend}, {generator}: Hearthside {ours.per_second:.0f}/s"
            parts = [head]
            if bare is not None:
                parts.append(f"bare {bare.per_second:.0f}/s, Hearthside/bare = {ours.per_second / bare.per_second:.2f}")
            if fedify is not None:
                ratio = ours.per_second / fedify.per_second
                parts.append(f"Fedify {fedify.per_second:.0f}/s, Hearthside/Fedify = {ratio:.2f}")
            out.append("; ".join(parts))
            if ours.per_second < INGEST_TARGET:
                out.append(
                    f"TARGET MISSED: ingest ({backend}, {generator}) {ours.per_second:.0f}/s < {INGEST_TARGET:.0f}/s"
                )
            if fedify is not None and ours.per_second < FEDIFY_FACTOR * fedify.per_second:
                out.append(
                    f"TARGET MISSED: ingest ({backend}, {generator}) is {ours.per_second / fedify.per_second:.2f}x "
                    f"Fedify < {FEDIFY_FACTOR:.0f}x"
                )
    for f in plan.fanouts:
        if f.seconds > FANOUT_TARGET_S:
            out.append(
                f"TARGET MISSED: fan-out ({f.backend}, post {f.post}) {f.seconds:.2f}s for {f.deliveries} "
                f"deliveries > {FANOUT_TARGET_S:.0f}s"
            )
    return out


# ---------------------------------------------------------------------------- main


@contextlib.asynccontextmanager
async def network(args: argparse.Namespace, work: Path) -> AsyncIterator[Plan]:
    """Keys, the simulated remote instances and the fan-out receivers, for the whole run."""
    from bench.federation_peers import hosts_from

    keys = [generate_rsa() for _ in range(SHARED_KEYS)]
    (work / "public-keys.json").write_text(json.dumps([k.public_pem for k in keys]))
    remote_hosts = hosts_from(REMOTE_FIRST_HOST, args.remote_hosts)
    receivers = hosts_from(RECEIVER_FIRST_HOST, args.fanout)
    remote_port = free_port(REMOTE_FIRST_HOST)
    receiver_port = free_port(RECEIVER_FIRST_HOST)
    peers = [PYTHON, "-m", "bench.federation_peers"]
    remotes_command = [*peers, "remotes", "--first-host", REMOTE_FIRST_HOST, "--hosts", str(args.remote_hosts)]
    remotes_command += [
        "--port",
        str(remote_port),
        "--actors",
        str(args.actors),
        "--keys",
        str(work / "public-keys.json"),
    ]
    receivers_command = [*peers, "receivers", "--first-host", RECEIVER_FIRST_HOST, "--hosts", str(args.fanout)]
    receivers_command += ["--port", str(receiver_port)]
    with (
        ProcessPoolExecutor(
            max_workers=os.cpu_count(), initializer=_load_signing_keys, initargs=([k.private_pem for k in keys],)
        ) as pool,
        process(remotes_command, work / "remotes.log", remote_hosts[-1], remote_port),
        process(receivers_command, work / "receivers.log", receivers[-1], receiver_port) as receiving,
    ):
        remotes = Remotes(remote_hosts, remote_port, args.actors, [k.private_pem for k in keys], pool)
        yield Plan(args, work, remotes, receivers, receiver_port, receiving.pid)


async def run(args: argparse.Namespace) -> tuple[Plan, list[str]]:
    work = Path(tempfile.mkdtemp(prefix="hearthside-federation-bench-"))
    problems: list[str] = []
    main_task = asyncio.current_task()
    assert main_task is not None

    def terminate() -> None:  # SIGTERM (e.g. from timeout): stop wrk, unwind, stop every server
        for proc in list(LOAD_PROCESSES):
            proc.kill()
        main_task.cancel()

    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, terminate)
    try:
        async with network(args, work) as plan:
            for backend in args.backends.split(","):
                try:
                    await hearthside_phases(plan, backend)
                except (BenchError, OSError, subprocess.SubprocessError, aiohttp.ClientError) as exc:
                    problems.append(f"Hearthside {backend}: {exc}")
            if plan.bare_requests:
                try:
                    await bare_phases(plan)
                except (BenchError, OSError, aiohttp.ClientError) as exc:
                    problems.append(f"bare: {exc}")
            if args.fedify:
                try:
                    await fedify_phases(plan)
                except (BenchError, OSError, aiohttp.ClientError) as exc:
                    problems.append(f"Fedify: {exc}")
            return plan, problems
    finally:
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def machine() -> str:
    cpu = os.cpu_count()
    model = ""
    with contextlib.suppress(OSError):
        model = next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if "model name" in line
            ),
            "",
        )
    return (
        f"machine: {cpu} cores ({model or platform.processor()}), Python {platform.python_version()}, "
        f"aiohttp {aiohttp.__version__}; one server process per target, load from this process or wrk"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=15, help="aim of each timed ingest phase (sized by warm-up)")
    parser.add_argument("--min-activities", type=int, default=2_000)
    parser.add_argument("--max-activities", type=int, default=40_000)
    parser.add_argument(
        "--no-workers-phase", dest="workers_phase", action="store_false", help="skip ingest with workers on"
    )
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument(
        "--processes", type=int, default=1, help="Hearthside web processes (server.processes); Fedify runs one"
    )
    parser.add_argument("--actors", type=int, default=200)
    parser.add_argument("--remote-hosts", type=int, default=4)
    parser.add_argument("--fanout", type=int, default=1000, help="remote member instances of the fan-out group")
    parser.add_argument("--fanout-posts", type=int, default=3)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--no-fedify", dest="fedify", action="store_false")
    parser.add_argument("--no-wrk", dest="wrk", action="store_false")
    parser.add_argument("--profile", action="store_true", help="add the breakdown of Hearthside's time (first backend)")
    parser.add_argument("--profile-activities", type=int, default=2000)
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, profiles)")
    parser.add_argument("--json", action="store_true", help="print JSON rows instead of tables")
    args = parser.parse_args()
    PROCESSES[0] = args.processes
    if args.wrk and shutil.which("wrk") is None:
        log("wrk not found (make bench-tools): python generator only")
        args.wrk = False
    plan, problems = asyncio.run(run(args))
    print(machine())
    print(
        f"simulated network: {args.actors} actors on {args.remote_hosts} remote hosts, "
        f"{SHARED_KEYS} shared RSA-2048 keys; fan-out to {args.fanout} hosts"
    )
    for fact in plan.facts:
        print(fact)
    if args.json:
        rows = {"ingest": [r.row() for r in plan.runs], "fanout": [f.row() for f in plan.fanouts]}
        print(json.dumps({**rows, "facts": plan.facts, "verdicts": verdicts(plan)}, indent=1))
    else:
        print(render(plan))
    print()
    for line in verdicts(plan):
        print(line)
    if plan.profile_lines:
        print()
        print("\n".join(plan.profile_lines))
    for problem in problems:
        print(f"ERROR: {problem}")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
