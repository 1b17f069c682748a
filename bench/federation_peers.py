"""The other side of the federation benchmark: servers that stand in for the rest of the network.

Each runs as its own process (``python -m bench.federation_peers KIND ...``) so that on a
2-core machine it does not share an event loop with the load generator:

``remotes``  simulated remote instances, one aiohttp site per host (127.0.1.1, 127.0.1.2 ...),
             each serving the actor documents of its share of the simulated actors
             (``/users/actor{i}``, RSA key ``#main-key``, ``application/activity+json`` with the
             ActivityStreams and security contexts, so Hearthside and Fedify can both fetch
             the keys) and accepting anything POSTed to ``/inbox`` or ``/users/*/inbox`` (202).
``bare``     the ceiling: a bare aiohttp handler that reads the body and answers 202.
``receivers`` the fan-out targets: one site per host (127.0.2.1 ... 1,000 of them) on one
             port, each answering 202 to ``POST /inbox`` and recording what it got: the
             activity's type, id and inner object id, whether a ``Signature`` header came, and
             when (``time.monotonic()``: CLOCK_MONOTONIC, the same clock in every process on
             Linux, so the benchmark process can compare it with its own).
             ``GET /_receipts`` (on any site) returns how many arrived, with ``?full=1`` the
             records too; ``POST /_reset`` clears them.

Every process prints ``ready`` on stdout once all its sites listen.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from aiohttp import web

AS_CONTEXT = "https://www.w3.org/ns/activitystreams"
SECURITY_CONTEXT = "https://w3id.org/security/v1"
ACTIVITY_JSON = "application/activity+json"


def hosts_from(first: str, count: int) -> list[str]:
    """``count`` consecutive IPv4 loopback addresses from ``first`` (127.0.2.1 -> 127.0.2.1 ... 127.0.5.232)."""
    a, b, c, d = (int(part) for part in first.split("."))
    start = (a << 24) | (b << 16) | (c << 8) | d
    out = []
    n = start
    while len(out) < count:
        if n & 0xFF not in (0, 255):  # skip .0 and .255: not usable as host addresses everywhere
            out.append(f"{n >> 24}.{(n >> 16) & 0xFF}.{(n >> 8) & 0xFF}.{n & 0xFF}")
        n += 1
    return out


def actor_document(base: str, index: int, public_pem: str) -> dict[str, Any]:
    """A Mastodon-shaped Person (what both Hearthside's parser and Fedify's accept)."""
    actor = f"{base}/users/actor{index}"
    return {
        "@context": [AS_CONTEXT, SECURITY_CONTEXT],
        "id": actor,
        "type": "Person",
        "preferredUsername": f"actor{index}",
        "name": f"Simulated actor {index}",
        "summary": "",
        "url": actor,
        "inbox": f"{actor}/inbox",
        "outbox": f"{actor}/outbox",
        "followers": f"{actor}/followers",
        "following": f"{actor}/following",
        "manuallyApprovesFollowers": False,
        "endpoints": {"sharedInbox": f"{base}/inbox"},
        "publicKey": {"id": f"{actor}#main-key", "owner": actor, "publicKeyPem": public_pem},
    }


async def serve_until_signalled(runner: web.AppRunner, sites: list[tuple[str, int]]) -> None:
    await runner.setup()
    for host, port in sites:
        await web.TCPSite(runner, host, port, backlog=1024, reuse_address=True).start()
    print("ready", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


# ---------------------------------------------------------------------------- remotes


def remotes_app(hosts: list[str], port: int, actors: int, public_pems: list[str]) -> web.Application:
    """Actor ``i`` lives on ``hosts[i % len(hosts)]`` and uses key ``i % len(public_pems)``."""
    documents: dict[tuple[str, int], bytes] = {}
    for i in range(actors):
        host = hosts[i % len(hosts)]
        base = f"http://{host}:{port}"
        documents[(host, i)] = json.dumps(actor_document(base, i, public_pems[i % len(public_pems)])).encode()
    received: Counter[str] = Counter()
    fetched: Counter[str] = Counter()

    def local_host(request: web.Request) -> str:
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        return str(sockname[0]) if sockname else ""

    async def actor(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if not name.startswith("actor") or not name[5:].isdigit():
            raise web.HTTPNotFound()
        body = documents.get((local_host(request), int(name[5:])))
        if body is None:
            raise web.HTTPNotFound()
        fetched["actor"] += 1
        return web.Response(body=body, content_type=ACTIVITY_JSON)

    async def inbox(request: web.Request) -> web.Response:
        body = await request.read()
        try:
            kind = str(json.loads(body).get("type"))
        except (ValueError, AttributeError):
            kind = "unparsable"
        received[kind] += 1
        received["signed" if "Signature" in request.headers else "unsigned"] += 1
        return web.Response(status=202)

    async def stats(_request: web.Request) -> web.Response:
        return web.json_response({"received": dict(received), "fetched": dict(fetched)})

    app = web.Application(client_max_size=4 * 1024 * 1024)
    app.router.add_get("/users/{name}", actor)
    app.router.add_post("/users/{name}/inbox", inbox)
    app.router.add_post("/inbox", inbox)
    app.router.add_get("/_stats", stats)
    return app


# ---------------------------------------------------------------------------- bare


def bare_app() -> web.Application:
    async def inbox(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=202)

    app = web.Application()
    app.router.add_post("/inbox", inbox)
    app.router.add_post("/groups/{name}/inbox", inbox)
    return app


# ---------------------------------------------------------------------------- receivers


def receivers_app() -> web.Application:
    records: list[list[Any]] = []

    async def inbox(request: web.Request) -> web.Response:
        body = await request.read()
        arrived = time.monotonic()
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        kind = activity_id = inner_id = None
        with contextlib.suppress(ValueError, AttributeError):
            document = json.loads(body)
            kind, activity_id = document.get("type"), document.get("id")
            inner = document.get("object")
            inner_id = inner.get("id") if isinstance(inner, dict) else inner
        records.append(
            [sockname[0] if sockname else None, kind, activity_id, inner_id, "Signature" in request.headers, arrived]
        )
        return web.Response(status=202)

    async def receipts(request: web.Request) -> web.Response:
        if request.query.get("full") == "1":
            return web.json_response({"count": len(records), "records": records})
        return web.json_response({"count": len(records)})

    async def reset(_request: web.Request) -> web.Response:
        records.clear()
        return web.json_response({"count": 0})

    app = web.Application(client_max_size=4 * 1024 * 1024)
    app.router.add_post("/inbox", inbox)
    app.router.add_get("/_receipts", receipts)
    app.router.add_post("/_reset", reset)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", choices=["remotes", "bare", "receivers"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--first-host", default="127.0.1.1")
    parser.add_argument("--hosts", type=int, default=1)
    parser.add_argument("--actors", type=int, default=0)
    parser.add_argument("--keys", help="JSON file: list of public PEMs (remotes)")
    args = parser.parse_args()
    hosts = hosts_from(args.first_host, args.hosts)
    if args.kind == "remotes":
        pems = json.loads(Path(args.keys).read_text())
        app = remotes_app(hosts, args.port, args.actors, pems)
    elif args.kind == "bare":
        app = bare_app()
    else:
        app = receivers_app()
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    asyncio.run(serve_until_signalled(runner, [(host, args.port) for host in hosts]))
    sys.exit(0)


if __name__ == "__main__":
    main()
