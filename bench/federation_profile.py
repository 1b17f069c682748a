"""``hearthside serve`` with timers around the inbox and delivery code paths, for the benchmark.

    python -m bench.federation_profile --config hearthside.toml --sections out.json [--cprofile out.prof]

Nothing in ``server/`` is edited: before the app is built, this wraps chosen functions (by
monkeypatching the names the callers look up) in timers that add up, per label, the calls, the
CPU time of the thread (``time.thread_time``) and the wall time, then runs ``hearthside serve``
unchanged. Measuring is switched by signals, so start-up and warm-up stay out: SIGUSR1 clears
the sections and starts cProfile (with ``--cprofile``), SIGUSR2 stops it and writes
``{label: [calls, cpu seconds, wall seconds, most cpu seconds of one call]}`` to the
``--sections`` file and the cProfile statistics to the ``--cprofile`` file. With ``--cprofile``
no timers are installed (they would inflate what cProfile sees); the sections file is then
empty and only marks completion.

The timers are inclusive (a label's time contains the labels called inside it). The CPU time of
an ``async`` function also counts whatever else ran on the thread while it waited, so the
figures are exact only when nothing overlaps: the benchmark drives the profiled server with one
request in flight (and one delivery at a time, ``federation.delivery_concurrency = 1``). SQLite
runs inline on the event loop thread (server/db.py), so database work is this thread's CPU
time too. CPU time does not grow when other processes compete for the cores; wall time does.
Each timer costs about two microseconds.
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import inspect
import json
import logging
import signal
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

SECTIONS: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0.0, 0.0])
_cpu = time.thread_time
_wall = time.perf_counter


def _record(label: str, cpu: float, wall: float) -> None:
    entry = SECTIONS[label]
    entry[0] += 1
    entry[1] += cpu
    entry[2] += wall
    entry[3] = max(entry[3], cpu)


def _timed(func: Callable[..., Any], label: str) -> Callable[..., Any]:
    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def timed_async(*args: Any, **kwargs: Any) -> Any:
            cpu, wall = _cpu(), _wall()
            try:
                return await func(*args, **kwargs)
            finally:
                _record(label, _cpu() - cpu, _wall() - wall)

        return timed_async

    @functools.wraps(func)
    def timed(*args: Any, **kwargs: Any) -> Any:
        cpu, wall = _cpu(), _wall()
        try:
            return func(*args, **kwargs)
        finally:
            _record(label, _cpu() - cpu, _wall() - wall)

    return timed


def count_rows(owner: Any, name: str, label: str) -> None:
    """Count the rows an async ``owner.name`` returns (calls = rows) under ``label``."""
    original = getattr(owner, name, None)
    if original is None:
        print(f"federation_profile: {owner.__name__}.{name} not found, not counted", file=sys.stderr)
        return

    @functools.wraps(original)
    async def counted(*args: Any, **kwargs: Any) -> Any:
        rows = await original(*args, **kwargs)
        SECTIONS[label][0] += len(rows)
        return rows

    setattr(owner, name, counted)


def wrap(owner: Any, name: str, label: str) -> None:
    """Replace ``owner.name`` (a module global, method or classmethod) by a timed version.

    A name the server no longer has is skipped with a note: the profile keeps working while
    the code it watches changes."""
    try:
        original = inspect.getattr_static(owner, name)
    except AttributeError:
        print(f"federation_profile: {getattr(owner, '__name__', owner)}.{name} not found, not timed", file=sys.stderr)
        return
    if isinstance(original, classmethod):
        setattr(owner, name, classmethod(_timed(original.__func__, label)))
    elif isinstance(original, staticmethod):
        setattr(owner, name, staticmethod(_timed(original.__func__, label)))
    else:
        setattr(owner, name, _timed(original, label))


class _TimedJson:
    """Stands in for the ``json`` module inside server.api.inbox (only ``loads`` is timed)."""

    def __init__(self, label: str) -> None:
        self.loads = _timed(json.loads, label)
        self.dumps = json.dumps


def instrument() -> None:
    """The labels the benchmark reports. Callers look these names up at call time, so
    patching the module attribute (or the class attribute) is enough."""
    from sqlalchemy.ext.asyncio import AsyncSession

    import crypto.signing
    import federation.httpsig
    import server.api.inbox as inbox
    import server.app
    import server.delivery as delivery
    import server.ingest
    import server.outbox as outbox
    import server.signatures as signatures
    import server.transport

    # Request path outside the inbox handler.
    wrap(server.app, "request_id_middleware", "http: middlewares + handler")
    wrap(logging.Logger, "_log", "logging (access log and others)")
    # The inbox handler (server/api/inbox.py receive) and what it calls.
    wrap(inbox, "receive", "inbox: handler total")
    wrap(inbox, "_recipient", "inbox: recipient lookup (DB)")
    inbox.json = _TimedJson("inbox: json.loads")  # type: ignore[assignment]
    wrap(inbox, "check_depth", "inbox: JSON depth check")
    wrap(inbox, "validate_activity", "inbox: schema validation (jsonschema-rs)")
    wrap(inbox, "parse_activity", "inbox: parse_activity")
    wrap(inbox, "read_pending", "inbox: signature header parse + digest")
    wrap(inbox, "authenticate", "inbox: authenticate total")
    wrap(signatures, "is_suspended", "auth: domain-block check (DB)")
    wrap(signatures, "_cached_key", "auth: key lookup (DB, 2 queries)")
    wrap(crypto.signing.PublicKey, "from_pem", "auth: PEM parse of cached key")
    wrap(federation.httpsig.PendingSignature, "verify", "auth: RSA verify")
    wrap(inbox, "check_origins", "inbox: origin check")
    wrap(inbox, "is_suspended", "inbox: domain-block check of actor (DB)")
    wrap(inbox, "json_response", "inbox: 202 response")
    wrap(AsyncSession, "commit", "db: session.commit")
    wrap(AsyncSession, "close", "db: session.close")
    wrap(AsyncSession, "execute", "db: session.execute")
    wrap(AsyncSession, "scalar", "db: session.scalar")
    wrap(AsyncSession, "scalars", "db: session.scalars")
    wrap(AsyncSession, "get", "db: session.get")
    # A group post (server/api/statuses.py -> outbox.federate_post) and its deliveries.
    wrap(outbox, "federate_post", "post: federate_post total")
    wrap(outbox, "enqueue", "post: enqueue (rows for every inbox)")
    wrap(outbox, "_sign_proof", "post: FEP-8b32 proof")
    wrap(outbox, "_group_inboxes", "post: member inboxes query")
    # The inbox worker applying a Create(Note) in a local group (server/ingest.py).
    import server.groups as groups
    import server.remote_actors as remote_actors

    count_rows(server.ingest, "claim", "apply: (rows claimed)")
    wrap(server.ingest, "claim", "apply: claim batch (DB)")
    wrap(server.ingest.InboxWorker, "process", "apply: process one item total")
    wrap(server.ingest, "resolve_actor", "apply: resolve_actor (DB)")
    wrap(remote_actors, "account_by_uri", "apply: account_by_uri (DB)")
    wrap(server.ingest, "account_by_uri", "apply: account_by_uri (DB)")
    wrap(server.ingest, "parse_activity", "apply: parse_activity")
    wrap(server.ingest, "parse_note", "apply: parse_note (sanitising HTML)")
    wrap(server.ingest, "_group_of", "apply: group of the post (DB)")
    wrap(groups, "load_group", "apply: load_group (DB)")
    wrap(groups, "is_banned", "apply: is_banned (DB)")
    wrap(groups, "is_member", "apply: is_member (DB)")
    wrap(server.ingest, "store_note", "apply: store_note (DB)")
    wrap(server.ingest, "_save_remote_tags", "apply: hashtags (DB)")
    wrap(outbox, "group_announce", "apply: group_announce (enqueue deliveries)")
    wrap(server.ingest.InboxWorker, "_finish", "apply: mark item done (UPDATE + commit)")
    server.ingest.HANDLERS["Create"] = _timed(server.ingest.HANDLERS["Create"], "apply: on_create total")
    count_rows(delivery, "claim", "delivery: (rows claimed)")
    wrap(delivery, "claim", "delivery: claim batch (DB)")
    wrap(delivery.DeliveryWorker, "deliver", "delivery: deliver total")
    wrap(delivery, "is_suspended", "delivery: domain-block check (DB)")
    wrap(delivery.DeliveryWorker, "_activity", "delivery: activity body")
    wrap(delivery._Signers, "get", "delivery: signing key")
    wrap(delivery, "sign_request", "delivery: sign_request (RSA sign)")
    wrap(server.transport.Transport, "post_activity", "delivery: HTTP POST (incl. waiting for the answer)")
    wrap(delivery, "_save_state", "delivery: domain health update")
    wrap(delivery.DeliveryWorker, "_finish", "delivery: finish (UPDATE + commit)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--sections", required=True, help="write {label: [calls, seconds]} here on exit")
    parser.add_argument("--cprofile", help="also write cProfile statistics here")
    parser.add_argument(
        "--inbox-worker-only", action="store_true", help="no delivery or job worker (time the inbox worker alone)"
    )
    args = parser.parse_args()
    if args.inbox_worker_only:
        import server.delivery
        import server.jobs

        async def idle(_self: Any, stop: Any) -> None:
            await stop.wait()

        server.delivery.DeliveryWorker.run = idle  # type: ignore[method-assign]
        server.jobs.JobWorker.run = idle  # type: ignore[method-assign]
    if args.cprofile is None:
        instrument()  # timers would show up in (and inflate) the cProfile figures
    from server.cli import main as hearthside

    profiler = cProfile.Profile() if args.cprofile else None

    def start(_signum: int, _frame: Any) -> None:
        SECTIONS.clear()
        if profiler is not None:
            profiler.enable()

    def stop(_signum: int, _frame: Any) -> None:
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(args.cprofile)
        sections = Path(args.sections)
        sections.with_suffix(".tmp").write_text(json.dumps(SECTIONS))
        sections.with_suffix(".tmp").rename(sections)  # the benchmark waits for this file

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)
    sys.exit(hearthside(["serve", "--config", args.config]))


if __name__ == "__main__":
    main()
