"""E2EE benchmark (issue 4): the client envelope against raw vodozemac, and the server's send path.

    python -m bench.e2ee_bench [--messages 2000] [--setups 200] [--runs 5]
        [--profile-messages 1000] [--profile-setups 200] [--server-messages 400]
        [--concurrency 16] [--devices 10] [--server-profile 200] [--backlog 5000]
        [--no-server] [--no-remote] [--json]

Run it under ``flock /tmp/bench.lock`` so that two benchmarks never share the machine.

What is measured:

(1) Client, in this process on one core (no I/O). Alice sends to Bob's one device.

    * *raw*: vodozemac 0.10 directly (``vodozemac.Session.encrypt`` / ``decrypt``) on a plaintext
      of 1,024 random bytes, and again at the size our 1 KB message travels at (the envelope's
      padded length), so that row shows how much of the gap is the bigger plaintext.
    * *least envelope work*: the work any envelope with our guarantees must add, inlined with no
      objects, checks or error handling (random id and franking key, the message record and the
      padded frame, HMAC-SHA256 on both sides, the ciphertext to bytes and back with the
      one-spelling check, the prefix and padding comparisons, the replay set): not our code
      path, but the ceiling a Python envelope could reach.
    * *ours*: ``crypto.messaging.DeviceState``: ``new_message`` of 1,024 characters of text,
      ``encrypt`` to one target device (``Target(bob, bob's entry)``, so the sender's other
      devices are not involved) and Bob's ``decrypt`` (Olm, envelope checks, franking tag,
      pinned sender device, replay cache).
    * *conversation*: raw and ours again with each message answering the last (Alice, Bob,
      Alice, ...), so every message starts a new Olm chain with a Diffie-Hellman ratchet step,
      as in a conversation; a quarter as many messages.

    Both sides first make one round trip (Alice -> Bob, Bob -> Alice), so the timed messages are
    normal Olm messages (type 1), as in a conversation; then ``--messages`` messages go one way,
    each encrypted and at once decrypted. Rates are per CPU-second of this process
    (``time.process_time``, so other work on the machine does not lower them), the median of
    ``--runs`` runs; the variants take turns run by run, so a change in load hits all alike.

    Session setup, raw: Bob generates one one-time key; Alice makes an outbound session with it
    and encrypts a first 1 KB message; Bob makes the inbound session from the pre-key message
    and decrypts it. Ceiling: the same plus Bob signing the key's payload and Alice checking
    the signature (what signed one-time keys cannot do without). Ours: Bob makes one *signed*
    one-time key (``new_one_time_keys(1)``, what a claim hands out); Alice ``start_session``
    (checks the signature), encrypts a 1 KB message; Bob ``decrypt`` s the pre-key message.

    Target (issue 4): ours >= 80% of raw throughput, for messages and for session setups. A
    missed target prints ``TARGET MISSED``.

(2) Where our time goes for one message, and for one session setup: exclusive timers around
    writing and reading the message record, sealing the frame, the franking HMAC, reading the
    frame's parties when no link applies, actor-id checks, base64 checks, the Olm wrapper
    (``crypto.olm``; its one-spelling check apart from vodozemac's own work), Olm sessions,
    one-time-key signing and checking; the rest is our Python (validation,
    objects). Padding costs no separate step: zeros appended when sealing and the larger Olm
    plaintext (row 2 vs row 1).

(3) Server: ``hearthside init`` + ``hearthside serve`` (SQLite, one process, ``server.workers =
    false`` so nothing but the request runs) on 127.0.0.1. Alice (1 device) and Bob (``--devices``
    devices) are set up through the API as a client would: a token with the ``crypto`` scope per
    device, ``POST /api/v1/hearthside/e2ee/devices`` with signed one-time and fallback keys, a
    signed device list (``PUT .../device_list``), Bob's ``dm_policy`` set to ``everyone``. Then
    ``POST /api/v1/hearthside/e2ee/messages`` with one random 1.5 KB ciphertext per Bob device,
    until the 202 (stamped, one row per device committed): sequentially, then ``--concurrency``
    in flight. Remote variant: the recipient is a remote account (inserted in the database as if
    fetched earlier); the 202 then means the ``Create`` activity and its delivery row are queued.
    Afterwards the stored rows must match the 202s.

    ``--server-profile N``: N more sequential local sends with cProfile on in the server (run
    under bench/federation_profile.py), shown as cumulative time per step of the send path and
    the functions with the most own time. ``--backlog N``: last, sequential local sends after
    rows are inserted so that each of Bob's devices holds N unread ciphertexts (someone who has
    not opened the app for a while), since the send checks how full each inbox is.

The load generator (this process) shares the machine with the server: on 2 cores the
concurrent figure is a floor. The exit status is non-zero only when something went wrong.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import pstats
import random
import shutil
import signal
import socket
import statistics
import string
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import aiohttp
import vodozemac
from sqlalchemy import func, insert, select

import crypto.devicelist
import crypto.encoding
import crypto.envelope
import crypto.franking
import crypto.messaging
import crypto.olm
from bench.api_bench import drive
from crypto.devicelist import DeviceEntry, MasterKey, one_time_key_payload, sign_device_list
from crypto.encoding import b64encode
from crypto.envelope import Link, make_envelope, new_message, padded_length, seal_envelope
from crypto.franking import franking_tag, new_franking_key
from crypto.messaging import ClaimedKey, DeviceState, Target
from crypto.olm import OlmAccount, OlmSession
from crypto.tokens import digest, new_token
from server.accounts import create_local_user, password_hasher
from server.config import load_config, render_toml
from server.db import make_engine, make_sessionmaker
from server.devdb import free_port
from server.ids import new_id
from server.models import Account, Delivery, E2EEDevice, E2EEMessage, OAuthToken

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
HOST = "127.0.0.1"
E = "/api/v1/hearthside/e2ee"
TARGET_RATIO = 0.80
CONTENT_CHARS = 1024
CIPHERTEXT_BYTES = 1536
REMOTE = "https://remote.example"
NOW = datetime(2026, 11, 21, 10, 0, 0, tzinfo=UTC)
WARM_UP = 50


class BenchError(RuntimeError):
    """Something went wrong (not a missed target): the run's figures cannot be trusted."""


def text_of(chars: int, seed: int) -> str:
    rng = random.Random(seed)
    return "".join(rng.choice(string.ascii_letters + string.digits + "    .,") for _ in range(chars))


#: A run: does its operations and returns (operations, CPU seconds of this process).
Run = Callable[[], tuple[int, float]]
clock = time.process_time  # CPU time: other work on the machine does not count against us


def interleaved(runs: int, variants: dict[str, Run]) -> dict[str, float]:
    """One warm-up run each, then ``runs`` rounds taking one run of every variant in turn (so a
    change in the machine's load hits all of them alike); the median rate of each."""
    for once in variants.values():
        once()
    rates: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(runs):
        for name, once in variants.items():
            count, seconds = once()
            rates[name].append(count / seconds)
    return {name: statistics.median(found) for name, found in rates.items()}


# ---------------------------------------------------------------------------- (1) raw vodozemac


def pre_key(message: vodozemac.AnyOlmMessage) -> vodozemac.PreKeyMessage:
    found = message.to_pre_key()
    if found is None:
        raise BenchError("a new session's first message is not a pre-key message")
    return found


def raw_pair() -> tuple[vodozemac.Session, vodozemac.Session]:
    """A vodozemac session pair after one round trip (so messages are normal ones)."""
    alice, bob = vodozemac.Account(), vodozemac.Account()
    bob.generate_one_time_keys(1)
    otk = next(iter(bob.one_time_keys.values()))
    bob.mark_keys_as_published()
    a = alice.create_outbound_session(bob.curve25519_key, otk)
    first = a.encrypt(b"hello")
    b, _ = bob.create_inbound_session(alice.curve25519_key, pre_key(first))
    a.decrypt(b.encrypt(b"hi"))
    return a, b


def raw_messages(size: int, count: int) -> Run:
    a, b = raw_pair()
    plaintext = os.urandom(size)

    def once() -> tuple[int, float]:
        started = clock()
        for _ in range(count):
            if b.decrypt(a.encrypt(plaintext)) != plaintext:
                raise BenchError("raw vodozemac round trip changed the plaintext")
        return count, clock() - started

    return once


def wrapper_messages(size: int, count: int) -> Run:
    """The same through crypto/olm.py's OlmSession (its one-spelling check on decrypt)."""
    a_raw, b_raw = raw_pair()
    a, b = OlmSession(_session=a_raw), OlmSession(_session=b_raw)
    plaintext = os.urandom(size)

    def once() -> tuple[int, float]:
        started = clock()
        for _ in range(count):
            if b.decrypt(a.encrypt(plaintext)) != plaintext:
                raise BenchError("OlmSession round trip changed the plaintext")
        return count, clock() - started

    return once


def raw_setups(count: int) -> Run:
    alice, bob = vodozemac.Account(), vodozemac.Account()
    plaintext = os.urandom(CONTENT_CHARS)

    def once() -> tuple[int, float]:
        started = clock()
        for _ in range(count):
            bob.generate_one_time_keys(1)
            otk = next(iter(bob.one_time_keys.values()))
            bob.mark_keys_as_published()
            session = alice.create_outbound_session(bob.curve25519_key, otk)
            message = session.encrypt(plaintext)
            _, opened = bob.create_inbound_session(alice.curve25519_key, pre_key(message))
            if opened != plaintext:
                raise BenchError("raw session setup changed the plaintext")
        return count, clock() - started

    return once


def raw_ping_pong(size: int, count: int) -> Run:
    """Raw, each message answering the last (Alice, Bob, Alice, ...): every message then starts
    a new Olm chain with a Diffie-Hellman ratchet step, as in a conversation."""
    a, b = raw_pair()
    plaintext = os.urandom(size)

    def once() -> tuple[int, float]:
        started = clock()
        for i in range(count):
            sender, receiver = (a, b) if i % 2 == 0 else (b, a)
            if receiver.decrypt(sender.encrypt(plaintext)) != plaintext:
                raise BenchError("raw vodozemac ping-pong changed the plaintext")
        return count, clock() - started

    return once


def least_work_messages(count: int) -> Run:
    """The least any envelope with our guarantees must do around raw vodozemac, inlined with no
    objects, checks or error handling: 48 random bytes (message id and franking key), the
    message record and the frame with its padding (same sizes as ours: our Link header and
    message prefix), HMAC-SHA256 on both sides, the ciphertext to bytes and back with the
    one-spelling check, the header and padding comparisons, the text decoded, the replay set.
    Not our code path: the ceiling a Python envelope could reach."""
    a, b = raw_pair()
    pair = Pair()
    link = Link(pair.alice.me, pair.bob.me)
    header, prefix = link.header, link.message_prefix
    content = pair.content.encode()
    times = struct.pack(">QQ", int(NOW.timestamp()), 0)
    after = len(header) + 68
    seen: dict[bytes, None] = {}

    def once() -> tuple[int, float]:
        seen.clear()
        started = clock()
        for _ in range(count):
            fresh = os.urandom(48)
            message = b"".join((prefix, fresh[:16], times, b"\x01", content))
            key = fresh[16:]
            tag = franking_tag(key, message)
            frame = b"".join((header, key, tag, struct.pack(">I", len(message)), message))
            padded = padded_length(len(frame))
            kind, body = a.encrypt(frame + bytes(padded - len(frame))).to_parts()
            received = vodozemac.AnyOlmMessage.from_parts(kind, body)
            if received.to_parts()[1] != body:
                raise BenchError("respelled")
            plaintext = b.decrypt(received)
            end = after + len(message)
            opened = plaintext[after:end]
            if (
                not plaintext.startswith(header)
                or plaintext.count(0, end) != padded - end
                or plaintext[len(header) + 32 : len(header) + 64] != tag
                or franking_tag(plaintext[len(header) : len(header) + 32], opened) != tag
                or not opened.startswith(prefix)
            ):
                raise BenchError("the least-work envelope did not open")
            message_id = opened[len(prefix) : len(prefix) + 16]
            if message_id in seen or not opened[len(prefix) + 33 :].decode():
                raise BenchError("replayed or empty")
            seen[message_id] = None
        return count, clock() - started

    return once


def least_work_setups(count: int) -> Run:
    """Raw session setup plus what signed one-time keys cannot do without: Bob signs the key's
    payload and Alice checks the signature (vodozemac's Ed25519, the faster of the two here)."""
    alice, bob = vodozemac.Account(), vodozemac.Account()
    plaintext = os.urandom(CONTENT_CHARS)
    signer = bob.ed25519_key

    def once() -> tuple[int, float]:
        started = clock()
        for _ in range(count):
            bob.generate_one_time_keys(1)
            key_id, otk = next(iter(bob.one_time_keys.items()))
            bob.mark_keys_as_published()
            payload = one_time_key_payload(
                actor=BOB, device_id="BOB0001", key_id=key_id, key=otk.to_base64(), fallback=False
            )
            signer.verify_signature(payload, bob.sign(payload))
            session = alice.create_outbound_session(bob.curve25519_key, otk)
            message = session.encrypt(plaintext)
            _, opened = bob.create_inbound_session(alice.curve25519_key, pre_key(message))
            if opened != plaintext:
                raise BenchError("least-work session setup changed the plaintext")
        return count, clock() - started

    return once


# ---------------------------------------------------------------------------- (1) ours


ALICE = "https://a.example/users/alice"
BOB = "https://b.example/users/bob"


class Pair:
    """Alice's and Bob's devices, each having pinned the other's signed device list."""

    def __init__(self) -> None:
        self.alice = DeviceState.create(actor=ALICE, device_id="ALICE01", master=MasterKey.generate())
        self.bob = DeviceState.create(actor=BOB, device_id="BOB0001", master=MasterKey.generate())
        for state in (self.alice, self.bob):
            state.sign_own_list([state.entry], version=1, at=NOW)
        self.alice.accept_device_list(BOB, self.bob.pinned(BOB).to_json())  # type: ignore[union-attr]
        self.bob.accept_device_list(ALICE, self.alice.pinned(ALICE).to_json())  # type: ignore[union-attr]
        self.to_bob = Target(BOB, self.bob.entry)
        self.to_alice = Target(ALICE, self.alice.entry)
        self.content = text_of(CONTENT_CHARS, 4)

    def claim_bob(self) -> ClaimedKey:
        """What a claim hands Alice: one of Bob's signed one-time keys."""
        (key,) = self.bob.new_one_time_keys(1)
        self.bob.mark_keys_published()
        return ClaimedKey(key.key_id, key.key, key.signature, key.fallback)

    def send(self, sender: DeviceState, receiver: DeviceState, target: Target, content: str) -> int:
        """One message sender -> receiver; returns the Olm ciphertext length."""
        message = new_message(sender=sender.actor, recipient=receiver.actor, content=content, now=NOW)
        out = sender.encrypt(message, [target])
        (sealed,) = out.ciphertexts
        envelope = receiver.decrypt(
            sender_actor=sender.actor,
            sender_device=sender.device_id,
            message_type=sealed.message_type,
            body=sealed.body,
            outer_tag=out.franking_tag,
        )
        if envelope.message.content != content:
            raise BenchError("our round trip changed the message")
        return len(sealed.body)

    def converse(self) -> None:
        """Start a session and make one round trip, so later messages are normal ones."""
        self.alice.start_session(self.to_bob, self.claim_bob())
        self.send(self.alice, self.bob, self.to_bob, "hello")
        self.send(self.bob, self.alice, self.to_alice, "hi")

    def envelope_size(self) -> int:
        message = new_message(sender=ALICE, recipient=BOB, content=self.content, now=NOW)
        envelope = make_envelope(
            sender=self.alice.me, recipient=self.bob.me, message=message, franking_key=new_franking_key()
        )
        return len(seal_envelope(envelope))


def our_messages(count: int, sizes: list[int]) -> Run:
    """Ours; each message's Olm ciphertext length goes to ``sizes``."""
    pair = Pair()
    pair.converse()

    def once() -> tuple[int, float]:
        # A fresh replay cache per run, so every run does the same work (the cache is bounded).
        pair.bob.seen.clear()
        started = clock()
        for _ in range(count):
            sizes.append(pair.send(pair.alice, pair.bob, pair.to_bob, pair.content))
        return count, clock() - started

    return once


def our_ping_pong(count: int) -> Run:
    """Ours, each message answering the last (see raw_ping_pong)."""
    pair = Pair()
    pair.converse()

    def once() -> tuple[int, float]:
        pair.alice.seen.clear()
        pair.bob.seen.clear()
        started = clock()
        for i in range(count):
            if i % 2 == 0:
                pair.send(pair.alice, pair.bob, pair.to_bob, pair.content)
            else:
                pair.send(pair.bob, pair.alice, pair.to_alice, pair.content)
        return count, clock() - started

    return once


def our_setups(count: int) -> Run:
    pair = Pair()

    def once() -> tuple[int, float]:
        started = clock()
        for _ in range(count):
            pair.alice.start_session(pair.to_bob, pair.claim_bob())
            pair.send(pair.alice, pair.bob, pair.to_bob, pair.content)
        return count, clock() - started

    return once


# ---------------------------------------------------------------------------- (2) where the time goes


class Timers:
    """Exclusive timers: a wrapped call's time minus the time of wrapped calls inside it."""

    def __init__(self) -> None:
        self.seconds: defaultdict[str, float] = defaultdict(float)
        self.calls: Counter[str] = Counter()
        self._stack: list[float] = []

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            self._stack.append(0.0)
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - started
                inner = self._stack.pop()
                self.seconds[name] += elapsed - inner
                self.calls[name] += 1
                if self._stack:
                    self._stack[-1] += elapsed

        return timed


def _patches(timers: Timers) -> list[Any]:
    """Timers around the parts of our message and setup paths (the names callers look up)."""
    b64 = "base64 encode/decode + checks"
    hmac_name = "franking HMAC-SHA256"
    olm_check = "Olm wrapper: parse + one-spelling check"
    patches: list[Any] = [
        mock.patch.object(crypto.envelope, "franking_tag", timers.wrap(hmac_name, crypto.franking.franking_tag)),
        mock.patch.object(crypto.messaging, "franking_tag", timers.wrap(hmac_name, crypto.franking.franking_tag)),
        mock.patch.object(
            crypto.envelope,
            "_encode_message",
            timers.wrap("write the message record", crypto.envelope._encode_message),
        ),
        mock.patch.object(
            crypto.envelope,
            "_decode_message",
            timers.wrap("read the message record", crypto.envelope._decode_message),
        ),
        mock.patch.object(
            crypto.envelope,
            "_read_frame",
            timers.wrap("read the frame's parties (no link)", crypto.envelope._read_frame),
        ),
        mock.patch.object(crypto.messaging, "seal", timers.wrap("seal: frame + padding", crypto.envelope.seal)),
        mock.patch.object(
            crypto.envelope, "valid_actor", timers.wrap("actor id checks", crypto.devicelist.valid_actor)
        ),
        mock.patch.object(crypto.olm, "_olm_message", timers.wrap(olm_check, crypto.olm._olm_message)),
        mock.patch.object(crypto.olm, "_pre_key_message", timers.wrap(olm_check, crypto.olm._pre_key_message)),
        mock.patch.object(OlmSession, "encrypt", timers.wrap("Olm encrypt (vodozemac)", OlmSession.encrypt)),
        mock.patch.object(OlmSession, "decrypt", timers.wrap("Olm decrypt (vodozemac)", OlmSession.decrypt)),
        mock.patch.object(
            crypto.messaging,
            "first_match",
            timers.wrap("pre-key message vs known sessions", crypto.olm.first_match),
        ),
        mock.patch.object(
            OlmAccount,
            "outbound_session",
            timers.wrap("Olm outbound session (vodozemac 3DH)", OlmAccount.outbound_session),
        ),
        mock.patch.object(
            OlmAccount,
            "inbound_session",
            timers.wrap("Olm inbound session (vodozemac 3DH)", OlmAccount.inbound_session),
        ),
        mock.patch.object(
            OlmAccount,
            "generate_one_time_keys",
            timers.wrap("generate a one-time key", OlmAccount.generate_one_time_keys),
        ),
        mock.patch.object(
            OlmAccount, "sign", timers.wrap("sign the one-time key (vodozemac Ed25519)", OlmAccount.sign)
        ),
        mock.patch.object(
            crypto.olm,
            "verify_ed25519",
            timers.wrap("check the one-time key signature (vodozemac Ed25519)", crypto.olm.verify_ed25519),
        ),
    ]
    for module in (crypto.envelope, crypto.olm, crypto.devicelist):
        patches.append(mock.patch.object(module, "b64encode", timers.wrap(b64, crypto.encoding.b64encode)))
        patches.append(mock.patch.object(module, "b64decode", timers.wrap(b64, crypto.encoding.b64decode)))
    return patches


def profile(count: int, step: Callable[[defaultdict[str, float]], None]) -> list[dict[str, Any]]:
    """Per-operation µs by part: exclusive wall-clock timers give each part's share, which is
    applied to the CPU time of the whole loop (other load on the machine does not count)."""
    timers = Timers()
    sides: defaultdict[str, float] = defaultdict(float)
    with contextlib.ExitStack() as stack:
        for patch in _patches(timers):
            stack.enter_context(patch)
        for _ in range(max(1, count // 10)):  # warm-up
            step(sides)
        timers.seconds.clear()
        timers.calls.clear()
        sides.clear()
        cpu, started = clock(), time.perf_counter()
        for _ in range(count):
            step(sides)
        total, cpu = time.perf_counter() - started, clock() - cpu
    per_op = cpu / count * 1e6
    rows = []
    accounted = 0.0
    for name, seconds in sorted(timers.seconds.items(), key=lambda item: -item[1]):
        accounted += seconds
        share = seconds / total
        rows.append({"part": name, "us": share * per_op, "calls": timers.calls[name] / count, "of": share})
    rest = (total - accounted) / total
    rows.append({"part": "our Python (validation, objects, rest)", "us": rest * per_op, "calls": None, "of": rest})
    rows.append({"part": "total (timers on)", "us": per_op, "calls": None, "of": 1.0})
    for name, seconds in sides.items():
        share = seconds / total
        rows.append({"part": f"  of which {name}", "us": share * per_op, "calls": None, "of": share})
    return rows


def profile_messages(count: int) -> list[dict[str, Any]]:
    """Ours, one 1 KB message encrypted and decrypted."""
    pair = Pair()
    pair.converse()

    def step(sides: defaultdict[str, float]) -> None:
        t0 = time.perf_counter()
        message = new_message(sender=ALICE, recipient=BOB, content=pair.content, now=NOW)
        out = pair.alice.encrypt(message, [pair.to_bob])
        t1 = time.perf_counter()
        (sealed,) = out.ciphertexts
        pair.bob.decrypt(
            sender_actor=ALICE,
            sender_device=pair.alice.device_id,
            message_type=sealed.message_type,
            body=sealed.body,
            outer_tag=out.franking_tag,
        )
        sides["encrypt side (new_message + encrypt)"] += t1 - t0
        sides["decrypt side"] += time.perf_counter() - t1

    return profile(count, step)


def profile_setups(count: int) -> list[dict[str, Any]]:
    """Ours, one session setup with its first 1 KB message."""
    pair = Pair()

    def step(sides: defaultdict[str, float]) -> None:
        t0 = time.perf_counter()
        claimed = pair.claim_bob()
        t1 = time.perf_counter()
        pair.alice.start_session(pair.to_bob, claimed)
        t2 = time.perf_counter()
        pair.send(pair.alice, pair.bob, pair.to_bob, pair.content)
        sides["Bob: make + sign a one-time key"] += t1 - t0
        sides["Alice: start_session"] += t2 - t1
        sides["first message, encrypt + decrypt"] += time.perf_counter() - t2

    return profile(count, step)


# ---------------------------------------------------------------------------- (3) server


@contextlib.contextmanager
def serve(config_path: Path, port: int, profile: tuple[Path, Path] | None) -> Iterator[subprocess.Popen[bytes]]:
    """``hearthside serve``; with ``profile`` = (sections, cprofile) under bench/federation_profile.py,
    whose cProfile SIGUSR1 starts and SIGUSR2 stops and writes."""
    log = config_path.parent / "serve.log"
    command = [PYTHON, "-m", "server", "serve", "--config", str(config_path)]
    if profile is not None:
        command = [PYTHON, "-m", "bench.federation_profile", "--config", str(config_path)]
        command += ["--sections", str(profile[0]), "--cprofile", str(profile[1])]
    with log.open("ab") as sink:
        proc = subprocess.Popen(command, stdout=sink, stderr=sink, cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise BenchError(f"hearthside serve exited with {proc.returncode}; see {log}")
            with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=1):
                break
            if time.monotonic() > deadline:
                raise BenchError(f"nothing listens on {HOST}:{port}")
            time.sleep(0.05)
        yield proc
        if proc.poll() is not None:
            raise BenchError(f"hearthside serve exited with {proc.returncode} during the run; see {log}")
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def seed(config_path: Path, devices: int) -> tuple[str, list[str], str, str]:
    """Alice (one token), Bob (``devices`` tokens) and a remote account; the tokens and URIs."""
    config = load_config(config_path)
    engine = make_engine(config.database_url)
    moment = datetime.now(UTC)

    def token_for(user_id: int) -> tuple[str, OAuthToken]:
        token = new_token()
        row = OAuthToken(
            id=new_id(), token_hash=digest(token), user_id=user_id, scopes="read write crypto", created_at=moment
        )
        return token, row

    async with make_sessionmaker(engine)() as session:
        hasher = password_hasher(config)
        alice_user, _ = await create_local_user(session, hasher, username="alice", password="bench password 1")
        bob_user, _ = await create_local_user(session, hasher, username="bob", password="bench password 2")
        alice_token, row = token_for(alice_user.id)
        session.add(row)
        bob_tokens = []
        for _ in range(devices):
            token, row = token_for(bob_user.id)
            session.add(row)
            bob_tokens.append(token)
        await session.commit()
    remote_uri = f"{REMOTE}/users/carol"
    async with engine.begin() as conn:
        await conn.execute(
            insert(Account),
            [
                {
                    "id": new_id(),
                    "username": "carol",
                    "username_lower": "carol",
                    "domain": "remote.example",
                    "uri": remote_uri,
                    "url": f"{REMOTE}/@carol",
                    "inbox_url": f"{remote_uri}/inbox",
                    "shared_inbox_url": f"{REMOTE}/inbox",
                    "followers_url": f"{remote_uri}/followers",
                    "fetched_at": moment,
                    "created_at": moment,
                    "updated_at": moment,
                }
            ],
        )
    await engine.dispose()
    return alice_token, bob_tokens, f"{config.base_url}/users/bob", remote_uri


class ClientDevice:
    """A device as a client sets it up: an Olm account, signed keys, its token."""

    def __init__(self, actor: str, token: str, device_id: str) -> None:
        self.actor = actor
        self.device_id = device_id
        self.headers = {"Authorization": f"Bearer {token}"}
        self.olm = OlmAccount.create()

    @property
    def entry(self) -> DeviceEntry:
        return DeviceEntry(self.device_id, self.olm.identity_key, self.olm.fingerprint_key)

    def _signed(self, key_id: str, key: str, *, fallback: bool) -> dict[str, str]:
        payload = one_time_key_payload(
            actor=self.actor, device_id=self.device_id, key_id=key_id, key=key, fallback=fallback
        )
        return {"key_id": key_id, "key": key, "signature": self.olm.sign(payload)}

    def registration(self, one_time: int = 5) -> dict[str, Any]:
        keys = [self._signed(k.key_id, k.key, fallback=False) for k in self.olm.generate_one_time_keys(one_time)]
        fallback = self.olm.generate_fallback_key()
        self.olm.mark_published()
        return {
            "device_id": self.device_id,
            "identity_key": self.olm.identity_key,
            "fingerprint_key": self.olm.fingerprint_key,
            "one_time_keys": keys,
            # vodozemac numbers fallback keys from zero like one-time keys: keep the ids apart.
            "fallback_key": self._signed(f"fb-{fallback.key_id}", fallback.key, fallback=True),
        }


async def expect(response: aiohttp.ClientResponse, status: int) -> Any:
    if response.status != status:
        raise BenchError(f"{response.method} {response.url.path} answered {response.status}: {await response.text()}")
    return await response.json()


async def set_up_member(http: aiohttp.ClientSession, actor: str, tokens: list[str], prefix: str) -> list[ClientDevice]:
    """Register one device per token and publish a signed list naming all of them."""
    devices = [ClientDevice(actor, token, f"{prefix}{i:04d}") for i, token in enumerate(tokens)]
    for device in devices:
        async with http.post(f"{E}/devices", json=device.registration(), headers=device.headers) as response:
            await expect(response, 201)
    signed = sign_device_list(
        MasterKey.generate(), actor=actor, version=1, devices=[d.entry for d in devices], signed_at=datetime.now(UTC)
    )
    async with http.put(
        f"{E}/device_list", json={"device_list": signed.to_json()}, headers=devices[0].headers
    ) as response:
        await expect(response, 200)
    return devices


def summary(name: str, concurrency: int, seconds: float, latencies: list[float]) -> dict[str, Any]:
    ordered = sorted(latencies)
    return {
        "measure": name,
        "in_flight": concurrency,
        "requests": len(ordered),
        "per_second": round(len(ordered) / seconds, 1),
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p99_ms": round(ordered[max(0, int(len(ordered) * 0.99) - 1)] * 1000, 2),
    }


async def server_phase(args: argparse.Namespace) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(latency rows, server profile rows: empty unless ``--server-profile``)."""
    work = Path(tempfile.mkdtemp(prefix="hearthside-bench-e2ee-"))
    port = free_port()
    try:
        inst = work / "inst"
        subprocess.run(
            [PYTHON, "-m", "server", "init", "--data-dir", str(inst), "--host", HOST, "--port", str(port)],
            check=True,
            capture_output=True,
            cwd=ROOT,
        )
        config_path = inst / "hearthside.toml"
        overrides: dict[str, dict[str, Any]] = {
            "instance": {"base_url": f"http://{HOST}:{port}"},
            "server": {"host": HOST, "port": port, "workers": False},
            "storage": {"data_dir": "."},
            # One sender sends every measured message: lift the per-member flood limit.
            "e2ee": {"messages_per_minute": 1_000_000},
        }
        config_path.write_text(render_toml(overrides))
        alice_token, bob_tokens, bob_uri, remote_uri = await seed(config_path, args.devices)
        profile = (work / "sections.json", work / "send.prof") if args.server_profile else None
        rows: list[dict[str, Any]] = []
        profiled: list[dict[str, Any]] = []
        sent: Counter[str] = Counter()
        with serve(config_path, port, profile) as proc:
            connector = aiohttp.TCPConnector(limit=args.concurrency)
            async with aiohttp.ClientSession(f"http://{HOST}:{port}", connector=connector) as http:
                (alice,) = await set_up_member(http, f"http://{HOST}:{port}/users/alice", [alice_token], "ALICE")
                bob_devices = await set_up_member(http, bob_uri, bob_tokens, "BOB")
                async with http.patch(
                    f"{E}/settings", json={"dm_policy": "everyone"}, headers=bob_devices[0].headers
                ) as response:
                    await expect(response, 200)
                rng = random.Random(5)
                headers = {**alice.headers, "Content-Type": "application/json"}

                def bodies_for(count: int, to: str, device_ids: list[str]) -> list[bytes]:
                    """Request bodies, made before the timed phases: only the server's work is timed."""
                    return [
                        json.dumps(
                            {
                                "to": to,
                                "franking_tag": b64encode(rng.randbytes(32)),
                                "ciphertexts": [
                                    {
                                        "actor": to,
                                        "device_id": d,
                                        "type": 1,
                                        "body": b64encode(rng.randbytes(CIPHERTEXT_BYTES)),
                                    }
                                    for d in device_ids
                                ],
                            }
                        ).encode()
                        for _ in range(count)
                    ]

                async def phase(bodies: list[bytes], concurrency: int) -> tuple[float, list[float]]:
                    async def send(i: int) -> None:
                        async with http.post(f"{E}/messages", data=bodies[i], headers=headers) as response:
                            if response.status != 202:
                                raise BenchError(f"send answered {response.status}: {await response.text()}")
                            await response.read()

                    return await drive(len(bodies), concurrency, send)

                variants = [("local", bob_uri, [d.device_id for d in bob_devices])]
                if args.remote:
                    variants.append(("remote", remote_uri, [f"CAROL{i:04d}" for i in range(args.devices)]))
                for kind, to, device_ids in variants:
                    label = f"send to {len(device_ids)} {kind} devices"
                    await phase(bodies_for(WARM_UP, to, device_ids), 1)  # caches, the stamp key
                    sequential = bodies_for(args.server_messages // 2, to, device_ids)
                    rows.append(summary(label, 1, *await phase(sequential, 1)))
                    concurrent = bodies_for(args.server_messages, to, device_ids)
                    rows.append(summary(label, args.concurrency, *await phase(concurrent, args.concurrency)))
                    sent[kind] += WARM_UP + len(sequential) + len(concurrent)
                if profile is not None:
                    bodies = bodies_for(args.server_profile, bob_uri, [d.device_id for d in bob_devices])
                    proc.send_signal(signal.SIGUSR1)
                    await asyncio.sleep(0.2)
                    await phase(bodies, 1)
                    proc.send_signal(signal.SIGUSR2)
                    sent["local"] += len(bodies)
                    deadline = time.monotonic() + 30
                    while not profile[0].exists():
                        if time.monotonic() > deadline:
                            raise BenchError("the profiled server wrote no statistics")
                        await asyncio.sleep(0.1)
                    profiled = server_profile_rows(profile[1], len(bodies))
                if args.backlog:
                    bob_ids = [d.device_id for d in bob_devices]
                    pending = sent["local"]  # every local send so far left one row per Bob device
                    sent["backlog"] = await fill_inboxes(config_path, bob_uri, bob_ids, args.backlog - pending)
                    label = f"send to {args.devices} local devices, {args.backlog:,} unread each"
                    sequential = bodies_for(args.server_messages // 2, bob_uri, bob_ids)
                    rows.append(summary(label, 1, *await phase(sequential, 1)))
                    sent["local"] += len(sequential)
        await check_rows(config_path, sent, args.devices)
        return rows, profiled
    finally:
        shutil.rmtree(work, ignore_errors=True)


#: (file suffix, function name, label) of the send path, for the server profile (cumulative times).
SEND_PATH = (
    ("server/api/e2ee.py", "send_message", "send_message handler, total"),
    ("server/auth.py", "require_user", "token check (require_user)"),
    ("server/web.py", "read_json_object", "read + json.loads the body"),
    ("server/api/e2ee.py", "_ciphertexts", "validate ciphertexts (strict base64 of 10 bodies)"),
    ("server/api/e2ee.py", "_current_device", "sender's device (DB)"),
    ("server/api/e2ee.py", "resolve_member", "resolve the recipient (DB)"),
    ("server/e2ee.py", "require_may_message", "may message? blocks, policy (DB)"),
    ("server/e2ee.py", "devices_of", "active devices of both (DB)"),
    ("server/e2ee.py", "make_stamp", "stamp key + HMAC stamp"),
    ("server/e2ee.py", "store_ciphertexts", "inbox-full check + 10 rows (DB)"),
    ("sqlalchemy/ext/asyncio/session.py", "commit", "session.commit"),
)


def server_profile_rows(path: Path, requests: int) -> list[dict[str, Any]]:
    """Cumulative µs per request of the send path's steps, then the top functions by own time."""
    stats = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
    rows = []
    for suffix, name, label in SEND_PATH:
        cumulative = sum(
            v[3] for (file, _line, function), v in stats.items() if function == name and file.endswith(suffix)
        )
        rows.append({"part": label, "us": cumulative / requests * 1e6})
    own = sorted(stats.items(), key=lambda item: -item[1][2])[:8]
    for (file, line, function), v in own:
        where = "/".join(Path(file).parts[-2:]) if file != "~" else "builtin"
        rows.append({"part": f"own time: {function} ({where}:{line})", "us": v[2] / requests * 1e6})
    return rows


async def fill_inboxes(config_path: Path, recipient: str, device_ids: list[str], per_device: int) -> int:
    """Insert ``per_device`` unread ciphertext rows for each device (a member who has not
    fetched for a while); returns the rows added."""
    if per_device <= 0:
        return 0
    engine = make_engine(load_config(config_path).database_url)
    moment = datetime.now(UTC)
    try:
        async with engine.begin() as conn:
            pks = list(
                (await conn.execute(select(E2EEDevice.id).where(E2EEDevice.device_id.in_(device_ids)))).scalars()
            )
            rows = [
                {
                    "id": new_id(),
                    "device_pk": pk,
                    "object_uri": f"{REMOTE}/e2ee/messages/backlog-{pk}-{i}",
                    "sender_actor": f"{REMOTE}/users/carol",
                    "sender_device": "CAROL0000",
                    "recipient_actor": recipient,
                    "message_type": 1,
                    "body": "AAAA",
                    "franking_tag": "AAAA",
                    "sender_stamp": "k.AAAA",
                    "stamp": "k.AAAA",
                    "stamped_at": moment,
                    "created_at": moment,
                    "expires_at": moment + timedelta(days=30),
                }
                for pk in pks
                for i in range(per_device)
            ]
            for start in range(0, len(rows), 5000):
                await conn.execute(insert(E2EEMessage), rows[start : start + 5000])
    finally:
        await engine.dispose()
    return len(rows)


async def check_rows(config_path: Path, sent: Counter[str], devices: int) -> None:
    """Every 202 left one row per device (local) or one delivery (remote)."""
    engine = make_engine(load_config(config_path).database_url)
    try:
        async with engine.connect() as conn:
            stored = int((await conn.execute(select(func.count()).select_from(E2EEMessage))).scalar_one())
            queued = int((await conn.execute(select(func.count()).select_from(Delivery))).scalar_one())
    finally:
        await engine.dispose()
    if stored != sent["local"] * devices + sent["backlog"]:
        raise BenchError(f"{sent['local']} local sends answered 202 but {stored} rows are stored (want x{devices})")
    if queued != sent["remote"]:
        raise BenchError(f"{sent['remote']} remote sends answered 202 but {queued} deliveries are queued")


# ---------------------------------------------------------------------------- report


def client_rows(args: argparse.Namespace) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    envelope_bytes = Pair().envelope_size()
    sizes: list[int] = []
    raw_1k, raw_env, wrapped, least, ours = "raw 1k", "raw padded", "wrapper", "least", "ours"
    messages = interleaved(
        args.runs,
        {
            raw_1k: raw_messages(CONTENT_CHARS, args.messages),
            raw_env: raw_messages(envelope_bytes, args.messages),
            wrapped: wrapper_messages(envelope_bytes, args.messages),
            least: least_work_messages(args.messages),
            ours: our_messages(args.messages, sizes),
        },
    )
    # Fewer messages: each one is a Diffie-Hellman ratchet step.
    conversation = interleaved(
        args.runs, {"raw": raw_ping_pong(CONTENT_CHARS, args.messages // 4), "ours": our_ping_pong(args.messages // 4)}
    )
    setups = interleaved(
        args.runs,
        {"raw": raw_setups(args.setups), "least": least_work_setups(args.setups), "ours": our_setups(args.setups)},
    )
    base = messages[raw_1k]
    rows = [
        {"measure": f"raw vodozemac, {CONTENT_CHARS} B plaintext", "per_second": base, "ratio": None},
        {
            "measure": f"raw vodozemac, {envelope_bytes} B plaintext (our padded size)",
            "per_second": messages[raw_env],
            "ratio": messages[raw_env] / base,
        },
        {
            "measure": f"crypto/olm.py OlmSession, {envelope_bytes} B",
            "per_second": messages[wrapped],
            "ratio": messages[wrapped] / base,
        },
        {
            "measure": "least envelope work, inlined (the ceiling for Python; not our code)",
            "per_second": messages[least],
            "ratio": messages[least] / base,
        },
        {
            "measure": f"ours: DeviceState, {CONTENT_CHARS}-char Note",
            "per_second": messages[ours],
            "ratio": messages[ours] / base,
        },
        {
            "measure": f"raw vodozemac, conversation (each message answers the last), {CONTENT_CHARS} B",
            "per_second": conversation["raw"],
            "ratio": None,
        },
        {
            "measure": "ours, conversation",
            "per_second": conversation["ours"],
            "ratio": conversation["ours"] / conversation["raw"],
        },
        {"measure": "session setup, raw vodozemac", "per_second": setups["raw"], "ratio": None},
        {
            "measure": "session setup, raw + signing and checking the one-time key (the ceiling)",
            "per_second": setups["least"],
            "ratio": setups["least"] / setups["raw"],
        },
        {
            "measure": "session setup, ours (signed OTK)",
            "per_second": setups["ours"],
            "ratio": setups["ours"] / setups["raw"],
        },
    ]
    low, high = min(sizes), max(sizes)  # the chain index is a varint in the ciphertext
    facts = {
        "envelope_bytes": envelope_bytes,
        "ciphertext_bytes": str(low) if low == high else f"{low}-{high}",
        "message_ratio": messages[ours] / base,
        "message_ratio_vs_padded_raw": messages[ours] / messages[raw_env],
        "least_message_ratio": messages[least] / base,
        "conversation_ratio": conversation["ours"] / conversation["raw"],
        "setup_ratio": setups["ours"] / setups["raw"],
        "least_setup_ratio": setups["least"] / setups["raw"],
    }
    return rows, facts


def _profile_table(title: str, unit: str, rows: list[dict[str, Any]]) -> list[str]:
    out = ["", title, "", f"| part | µs per {unit} | calls per {unit} | share |", "|---|---|---|---|"]
    for row in rows:
        calls = "" if row["calls"] is None else f"{row['calls']:g}"
        out.append(f"| {row['part']} | {row['us']:.1f} | {calls} | {row['of']:.0%} |")
    return out


def _verdict(ratio: float) -> str:
    return "  met" if ratio >= TARGET_RATIO else "  TARGET MISSED"


def render(report: dict[str, Any], args: argparse.Namespace) -> str:
    facts = report["facts"]
    out = [
        f"### Client, one core: encrypt + decrypt of one message (per CPU-second of this process; median of "
        f"{args.runs} interleaved runs of {args.messages} messages / {args.setups} setups)",
        "",
        "| measure | per second | µs each | ratio to raw |",
        "|---|---|---|---|",
    ]
    for row in report["client"]:
        ratio = "" if row["ratio"] is None else f"{row['ratio']:.2f}"
        out.append(f"| {row['measure']} | {row['per_second']:,.0f} | {1e6 / row['per_second']:.1f} | {ratio} |")
    out += [
        "",
        f"Our 1,024-character Note makes a {facts['envelope_bytes']} B envelope (padded to the bucket) and a "
        f"{facts['ciphertext_bytes']} B Olm ciphertext.",
        f"messages one way: ours / raw 1 KB = {facts['message_ratio']:.2f} (ours / raw at the padded size: "
        f"{facts['message_ratio_vs_padded_raw']:.2f}; the least-work ceiling: {facts['least_message_ratio']:.2f}); "
        f"target >= {TARGET_RATIO:.2f}" + _verdict(facts["message_ratio"]),
        f"messages in a conversation: ours / raw = {facts['conversation_ratio']:.2f}; target >= {TARGET_RATIO:.2f}"
        + _verdict(facts["conversation_ratio"]),
        f"session setups: ours / raw = {facts['setup_ratio']:.2f} (the ceiling with signed one-time keys: "
        f"{facts['least_setup_ratio']:.2f}); target >= {TARGET_RATIO:.2f}" + _verdict(facts["setup_ratio"]),
    ]
    note = "exclusive wall-clock timers give the shares, applied to the loop's CPU time; timers add a little"
    if report["message_profile"]:
        out += _profile_table(
            f"### Where our time goes: one 1 KB message encrypted and decrypted ({args.profile_messages}; {note})",
            "message",
            report["message_profile"],
        )
    if report["setup_profile"]:
        out += _profile_table(
            f"### Where our time goes: one session setup with its first 1 KB message ({args.profile_setups})",
            "setup",
            report["setup_profile"],
        )
    if report["server"]:
        out += [
            "",
            f"### Server: POST {E}/messages until 202 (SQLite, one server process, workers off; "
            f"{CIPHERTEXT_BYTES} B ciphertexts; wall-clock latency)",
            "",
            "| measure | in flight | requests | per second | p50 ms | p99 ms |",
            "|---|---|---|---|---|---|",
        ]
        for row in report["server"]:
            out.append(
                f"| {row['measure']} | {row['in_flight']} | {row['requests']} | {row['per_second']} "
                f"| {row['p50_ms']} | {row['p99_ms']} |"
            )
    if report["server_profile"]:
        out += [
            "",
            f"### Server: where one send to {args.devices} local devices goes (cProfile, one request in flight, "
            f"{args.server_profile} requests; cumulative per step, then own time; cProfile slows Python more than C)",
            "",
            "| part | µs per request |",
            "|---|---|",
        ]
        out += [f"| {row['part']} | {row['us']:.0f} |" for row in report["server_profile"]]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000, help="client messages per run")
    parser.add_argument("--setups", type=int, default=200, help="client session setups per run")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--profile-messages", type=int, default=1000, help="messages timed part by part (0: skip)")
    parser.add_argument("--profile-setups", type=int, default=200, help="setups timed part by part (0: skip)")
    parser.add_argument("--server-messages", type=int, default=400, help="concurrent sends (sequential: half)")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--devices", type=int, default=10, help="recipient devices per message")
    parser.add_argument("--no-server", dest="server", action="store_false")
    parser.add_argument("--no-remote", dest="remote", action="store_false", help="skip the remote-recipient variant")
    parser.add_argument(
        "--server-profile", type=int, default=200, metavar="N", help="cProfile N sequential local sends (0: skip)"
    )
    parser.add_argument(
        "--backlog",
        type=int,
        default=5000,
        metavar="N",
        help="last, sequential sends when each recipient device has N unread ciphertexts (0: skip)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    client, facts = client_rows(args)
    report: dict[str, Any] = {
        "client": client,
        "facts": facts,
        "message_profile": profile_messages(args.profile_messages) if args.profile_messages else [],
        "setup_profile": profile_setups(args.profile_setups) if args.profile_setups else [],
    }
    report["server"], report["server_profile"] = asyncio.run(server_phase(args)) if args.server else ([], [])
    print(
        f"machine: {os.cpu_count()} cores ({platform.processor() or platform.machine()}), Python "
        f"{sys.version.split()[0]}, vodozemac 0.10; load average {load:.2f} at start, "
        f"{os.getloadavg()[0]:.2f} at end; client figures in CPU time on one core of this process; the server "
        "shares the machine with this load generator"
    )
    print(json.dumps(report, indent=1) if args.json else render(report, args))


if __name__ == "__main__":
    try:
        main()
    except BenchError as exc:
        print(f"bench error: {exc}", file=sys.stderr)
        sys.exit(1)
