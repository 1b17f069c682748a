"""``hearthside serve`` with timers around the inbox and delivery code paths, for the benchmark.

    python -m bench.federation_profile --config hearthside.toml --sections out.json [--cprofile out.prof]

Nothing in ``server/`` is edited: before the app is built, this wraps chosen functions (by
monkeypatching the names the callers look up) in timers that add up wall time and calls per
label, then runs ``hearthside serve`` unchanged. On exit (SIGINT) it writes
``{label: [calls, seconds]}`` to the ``--sections`` file, and with ``--cprofile`` the
cProfile statistics of the whole serve.

The timers are inclusive (a label's time contains the labels called inside it). They measure
wall time, so they are exact costs only when requests do not overlap: the benchmark drives the
profiled server with one request in flight (and one delivery at a time,
``federation.delivery_concurrency = 1``); SQLite runs inline on the event loop thread
(server/db.py), so its time is this process's CPU too. Each timer costs about a microsecond.
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import inspect
import json
import logging
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

SECTIONS: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])


def _record(label: str, seconds: float) -> None:
    entry = SECTIONS[label]
    entry[0] += 1
    entry[1] += seconds


def _timed(func: Callable[..., Any], label: str) -> Callable[..., Any]:
    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def timed_async(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await func(*args, **kwargs)
            finally:
                _record(label, time.perf_counter() - started)

        return timed_async

    @functools.wraps(func)
    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return func(*args, **kwargs)
        finally:
            _record(label, time.perf_counter() - started)

    return timed


def wrap(owner: Any, name: str, label: str) -> None:
    """Replace ``owner.name`` (a module global, method or classmethod) by a timed version."""
    original = inspect.getattr_static(owner, name)
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
    wrap(inbox, "validate_activity", "inbox: schema validation (jsonschema)")
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
    wrap(server.ingest, "claim", "inbox worker: claim batch (DB)")
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
    args = parser.parse_args()
    instrument()
    from server.cli import main as hearthside

    profiler = cProfile.Profile() if args.cprofile else None
    if profiler is not None:
        profiler.enable()
    try:
        code = hearthside(["serve", "--config", args.config])
    finally:
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(args.cprofile)
        Path(args.sections).write_text(json.dumps(SECTIONS))
    sys.exit(code)


if __name__ == "__main__":
    main()
