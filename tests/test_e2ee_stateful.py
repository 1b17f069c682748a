"""Model-based (stateful) testing of the E2EE server API: Hypothesis drives random sequences of
what members' devices do (register, approve, revoke, upload keys, claim, send, read, acknowledge)
against the real app on SQLite and PostgreSQL, and after every step compares the server with a
plain model of what it must hold.

The hand-written tests in test_e2ee_api.py check each rule once from a known state; the fuzz in
test_e2ee_openapi_fuzz.py checks answers to single malformed requests. What neither reaches is
a rule broken only after some history: a key handed out twice after a revocation and a new
upload, an inbox that keeps a revoked device's messages, a pending counter that drifts after
acknowledgements so a device's inbox counts as full when it is not. Here the model says, at
every step:

- a one-time key is handed out at most once, only for the device that uploaded it and signed
  by that device; a device without one hands out its newest fallback key (reusable, so again
  and again);
- a pending or revoked device is never a claim or send target (``unknown_device`` / 422), and a
  revoked device's token is refused (401) while its keys, fallback key and waiting messages are
  gone from the database;
- every device's inbox holds exactly the ciphertexts sent to it and not yet acknowledged, in
  the order sent; a send to a device whose inbox is full is refused (429) and stores nothing;
- every device's one-time-key count is its uploads minus its claims, and the database holds
  exactly those keys and one fallback key;
- each member's device listing shows every device in its modelled state.

Checked by breaking the server once per rule (a claim that does not delete its key, a revocation
that keeps messages, pending devices taken as targets, an acknowledgement that does not lower the
full-inbox count, an upload that keeps the old fallback key): each made this test fail with a
short history.

How it runs: the state machine runs in a worker thread (Hypothesis is synchronous) and every
request is a coroutine on the test's event loop, where the aiohttp test server lives. Bounded and
repeatable: derandomized, no example database, a fixed number of examples and steps; ``pytest -s``
prints what the runs met (claims of each kind, sends by status, reads).
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from sqlalchemy import func, select
from test_e2ee_api import CRYPTO_SCOPES, Device, E, Member, check_schema

from crypto.devicelist import verify_one_time_key
from crypto.encoding import b64encode
from server.app import create_app
from server.config import with_overrides
from server.models import E2EEDevice, E2EEMessage, E2EEOneTimeKey

T = TypeVar("T")

MAX_PENDING = 3  # a small inbox, so that "full" happens in a few steps
EXAMPLES = int(os.environ.get("HEARTHSIDE_STATEFUL_EXAMPLES", "40"))
STEPS = 25


@dataclass(eq=False)
class Modelled:
    """What the server must hold for one device."""

    device: Device
    state: str  # pending | active | revoked
    keys: dict[str, str] = field(default_factory=dict)  # unclaimed one-time keys: id -> key
    fallback: tuple[str, str] | None = None  # (id, key)
    inbox: list[tuple[str, str]] = field(default_factory=list)  # (object id, body) not acknowledged


@dataclass
class Person:
    member: Member
    devices: list[Modelled] = field(default_factory=list)

    def in_state(self, *states: str) -> list[Modelled]:
        return [d for d in self.devices if d.state in states]


class Servers:
    """The app under test and the loop it runs on (the machine calls it from its thread)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, client: Any, engine: Any, config: Any, make_user: Any):
        self.loop, self.client, self.engine, self.config, self.make_user = loop, client, engine, config, make_user
        self.people = 0

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=60)


SERVERS: Servers | None = None  # set by the test for the machine it runs
SEEN: Counter[str] = Counter()  # what the runs met (printed: pytest -s shows it)


def event(what: str) -> None:
    SEEN[what] += 1


class E2EEServerModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        event("example")
        assert SERVERS is not None
        self.s = SERVERS
        self.people = [self._person(), self._person()]
        self.sent = 0

    # ------------------------------------------------------------------ helpers

    def _person(self) -> Person:
        s = self.s
        s.people += 1
        user = s.run(s.make_user(f"m{s.people}", scopes=CRYPTO_SCOPES))
        person = Person(Member(s.client, s.engine, s.config, user))
        device = s.run(person.member.new_device())
        document = person.member.device_list([device])
        first = self._register(person, device, 2, device_list=document)
        assert first.state == "active"
        person.member.version, person.member.listed, person.member.document = document["version"], [device], document
        response = s.run(s.client.patch(f"{E}/settings", json={"dm_policy": "everyone"}, headers=user.headers))
        assert response.status == 200
        return person

    def _register(self, person: Person, device: Device, one_time: int, **extra: Any) -> Modelled:
        """POST the device's registration (its first keys and fallback key); its model."""
        body = device.registration(one_time, **extra)
        status, answer = self._call("POST", f"{E}/devices", device, json=body)
        assert status == 201, answer
        assert answer["one_time_key_count"] == one_time
        modelled = Modelled(device, answer["state"])
        modelled.keys = {item["key_id"]: item["key"] for item in body.get("one_time_keys", [])}
        modelled.fallback = (body["fallback_key"]["key_id"], body["fallback_key"]["key"])
        person.devices.append(modelled)
        return modelled

    def _call(self, method: str, path: str, device: Device, **kwargs: Any) -> tuple[int, Any]:
        async def go() -> tuple[int, Any]:
            response = await self.s.client.request(method, path, headers=device.headers, **kwargs)
            body = await response.json() if response.content_type == "application/json" else None
            return response.status, body

        return self.s.run(go())

    def _publish(self, person: Person, by: Modelled, listed: list[Modelled]) -> None:
        response = self.s.run(person.member.publish(by.device, [d.device for d in listed]))
        assert response.status == 200, self.s.run(response.text())

    # ------------------------------------------------------------------ rules

    @rule(who=st.integers(0, 1), one_time=st.integers(0, 3), approve=st.booleans())
    def add_device(self, who: int, one_time: int, approve: bool) -> None:
        person = self.people[who]
        if len(person.in_state("pending", "active")) >= 4:
            return
        device = self.s.run(person.member.new_device())
        modelled = self._register(person, device, one_time)
        assert modelled.state == "pending"
        if approve:
            self._approve(person, modelled)

    def _approve(self, person: Person, modelled: Modelled) -> None:
        active = person.in_state("active")
        self._publish(person, active[0], [*active, modelled])
        modelled.state = "active"

    @rule(who=st.integers(0, 1), pick=st.integers(0, 7))
    def approve_pending(self, who: int, pick: int) -> None:
        person = self.people[who]
        pending = person.in_state("pending")
        if pending:
            self._approve(person, pending[pick % len(pending)])

    @rule(who=st.integers(0, 1), pick=st.integers(0, 7), busy=st.booleans())
    def revoke(self, who: int, pick: int, busy: bool) -> None:
        """A pending device by DELETE, an active one by a list without it (never the last).
        ``busy``: one with waiting messages, if any."""
        person = self.people[who]
        candidates = person.in_state("pending") + person.in_state("active")[1:]
        candidates = [d for d in candidates if d.inbox] if busy else []
        candidates = candidates or person.in_state("pending") + person.in_state("active")[1:]
        if not candidates:
            return
        gone = candidates[pick % len(candidates)]
        event(f"revoke: {gone.state} device, {'with' if gone.inbox else 'no'} messages waiting")
        active = person.in_state("active")
        if gone.state == "pending":
            status, body = self._call("DELETE", f"{E}/devices/{gone.device.device_id}", active[0].device)
            assert (status, body) == (200, {"device_id": gone.device.device_id, "state": "revoked"})
        else:
            self._publish(person, active[0], [d for d in active if d is not gone])
        gone.state = "revoked"
        gone.keys.clear()
        gone.fallback = None
        gone.inbox.clear()

    @rule(who=st.integers(0, 1), pick=st.integers(0, 7), count=st.integers(1, 4), new_fallback=st.booleans())
    def upload(self, who: int, pick: int, count: int, new_fallback: bool) -> None:
        devices = self.people[who].in_state("pending", "active")
        modelled = devices[pick % len(devices)]
        body = modelled.device.keys(count, fallback=new_fallback)
        status, answer = self._call("POST", f"{E}/keys/upload", modelled.device, json=body)
        for item in body["one_time_keys"]:
            modelled.keys[item["key_id"]] = item["key"]
        if new_fallback:
            modelled.fallback = (body["fallback_key"]["key_id"], body["fallback_key"]["key"])
        assert (status, answer) == (200, {"one_time_key_count": len(modelled.keys)})

    @rule(who=st.integers(0, 1), picks=st.lists(st.integers(0, 9), min_size=1, max_size=4))
    def claim(self, who: int, picks: list[int]) -> None:
        claimer, target = self.people[who], self.people[1 - who]
        everyone = target.devices
        wanted = [everyone[p % len(everyone)] for p in picks]
        ids = list(dict.fromkeys(d.device.device_id for d in wanted))
        by = claimer.in_state("active")[0].device
        status, answer = self._call(
            "POST", f"{E}/keys/claim", by, json={"actor": target.member.actor, "device_ids": ids}
        )
        assert status == 200, answer
        check_schema(answer, "ClaimAnswer")
        assert set(answer["keys"]) | set(answer["failures"]) == set(ids)
        assert not set(answer["keys"]) & set(answer["failures"])
        for device_id in ids:
            (modelled,) = [d for d in target.devices if d.device.device_id == device_id]
            event(f"claim: {modelled.state} device" if modelled.state != "active" else "claim: active device")
            if modelled.state != "active":
                assert answer["failures"].get(device_id) == "unknown_device", (modelled.state, answer)
                continue
            if not modelled.keys and modelled.fallback is None:
                assert answer["failures"].get(device_id) == "no_keys", answer
                continue
            key = answer["keys"][device_id]
            verify_one_time_key(
                modelled.device.olm.fingerprint_key,
                actor=target.member.actor,
                device_id=device_id,
                key_id=key["key_id"],
                key=key["key"],
                fallback=key["fallback"],
                signature=key["signature"],
            )
            event("claim: one-time key" if modelled.keys else "claim: fallback key")
            if modelled.keys:
                assert key["fallback"] is False, key
                assert modelled.keys.pop(key["key_id"]) == key["key"]  # handed out once, then gone
            else:
                assert key["fallback"] is True
                assert (key["key_id"], key["key"]) == modelled.fallback

    @rule(
        who=st.integers(0, 1),
        by_pick=st.integers(0, 7),
        everyone=st.booleans(),
        picks=st.lists(st.integers(0, 9), min_size=1, max_size=5),
        stray=st.booleans(),
    )
    def send(self, who: int, by_pick: int, everyone: bool, picks: list[int], stray: bool) -> None:
        """``everyone``: as a client sends, to every active device of the recipient and every other
        active device of the sender; else to the devices ``picks`` names (``stray``: pending and
        revoked ones too, which the server must refuse)."""
        sender, recipient = self.people[who], self.people[1 - who]
        mine = sender.in_state("active")
        by = mine[by_pick % len(mine)]
        if everyone:
            targets = recipient.in_state("active") + [d for d in mine if d is not by]
        else:
            pool = recipient.devices + [d for d in sender.devices if d is not by]
            targets = list({id(d): d for d in (pool[p % len(pool)] for p in picks)}.values())
            if not stray:
                targets = [d for d in targets if d.state == "active"]
        if not targets:
            return
        self.sent += 1
        bodies = {id(d): b64encode(os.urandom(24) + self.sent.to_bytes(8, "big")) for d in targets}
        status, answer = self._call(
            "POST",
            f"{E}/messages",
            by.device,
            json={
                "to": recipient.member.actor,
                "franking_tag": b64encode(os.urandom(32)),
                "ciphertexts": [
                    {
                        "actor": (recipient if d in recipient.devices else sender).member.actor,
                        "device_id": d.device.device_id,
                        "type": 1,
                        "body": bodies[id(d)],
                    }
                    for d in targets
                ],
            },
        )
        event(f"send: {status}")
        if any(d.state != "active" for d in targets):
            assert status == 422 and "device_id" in answer["error"], (status, answer)
        elif not any(d in recipient.devices for d in targets):
            assert (status, answer) == (422, {"error": "ciphertexts: none is for the recipient"})
        elif any(len(d.inbox) >= MAX_PENDING for d in targets):
            assert status == 429 and "inbox is full" in answer["error"], (status, answer)
        else:
            assert status == 202, answer
            for d in targets:
                d.inbox.append((answer["id"], bodies[id(d)]))

    @rule(who=st.integers(0, 1), pick=st.integers(0, 9), keep=st.lists(st.booleans(), max_size=MAX_PENDING))
    def read_and_acknowledge(self, who: int, pick: int, keep: list[bool]) -> None:
        """Read one device's inbox (it must equal the model) and acknowledge some of it."""
        person = self.people[who]
        pool = [d for d in person.devices if d.inbox] or person.devices  # one with messages, if any
        modelled = pool[pick % len(pool)]
        status, answer = self._call("GET", f"{E}/messages", modelled.device)
        if modelled.state == "revoked":
            assert status == 401, (status, answer)
            return
        assert status == 200, answer
        rows = answer["messages"]
        assert [(r["object_id"], r["body"]) for r in rows] == modelled.inbox
        done = [r["id"] for r, kept in zip(rows, keep, strict=False) if not kept]
        event(f"read: {len(rows)} waiting, {len(done)} acknowledged")
        done += ["4611686018427387904"]  # an id that is no one's: deletes nothing
        status, answer = self._call("POST", f"{E}/messages/ack", modelled.device, json={"ids": done})
        assert (status, answer) == (200, {"deleted": len(done) - 1})
        gone = set(done)
        modelled.inbox = [item for item, row in zip(modelled.inbox, rows, strict=True) if row["id"] not in gone]

    # ------------------------------------------------------------------ invariants

    @invariant()
    def each_device_as_modelled(self) -> None:
        """Every device's key count and inbox, through the API; a revoked device's token gets 401."""
        for person in self.people:
            for modelled in person.devices:
                counted = self._call("GET", f"{E}/keys/count", modelled.device)
                waiting = self._call("GET", f"{E}/messages", modelled.device)
                if modelled.state == "revoked":
                    assert (counted[0], waiting[0]) == (401, 401), (counted, waiting)
                    continue
                assert counted == (200, {"one_time_key_count": len(modelled.keys)})
                assert waiting[0] == 200
                check_schema(waiting[1], "DeviceInbox")
                assert [(r["object_id"], r["body"]) for r in waiting[1]["messages"]] == modelled.inbox

    @invariant()
    def stored_rows(self) -> None:
        """In the database: each device's waiting ciphertexts and unused one-time keys are the
        model's, so a revoked device keeps none (its token is refused, so only here can one see
        that nothing was left behind), and its fallback key is gone with it."""
        stored = self.s.run(self._stored())
        for person in self.people:
            for modelled in person.devices:
                messages, keys, fallbacks = stored.get((person.member.actor, modelled.device.device_id), (0, 0, 0))
                assert messages == len(modelled.inbox), (modelled.state, messages, modelled.inbox)
                assert keys == len(modelled.keys), (modelled.state, keys, len(modelled.keys))
                assert fallbacks == (modelled.fallback is not None), (modelled.state, fallbacks)

    async def _stored(self) -> dict[tuple[str, str], tuple[int, int, int]]:
        found: dict[tuple[str, str], tuple[int, int, int]] = {}
        actors = {p.member.user.account_id: p.member.actor for p in self.people}
        async with self.s.engine.connect() as conn:
            devices = (
                await conn.execute(
                    select(E2EEDevice.id, E2EEDevice.account_id, E2EEDevice.device_id).where(
                        E2EEDevice.account_id.in_(list(actors))
                    )
                )
            ).all()
            for pk, account_id, device_id in devices:
                messages = await conn.scalar(select(func.count()).where(E2EEMessage.device_pk == pk))
                keys = (
                    await conn.execute(
                        select(E2EEOneTimeKey.fallback, func.count())
                        .where(E2EEOneTimeKey.device_pk == pk)
                        .group_by(E2EEOneTimeKey.fallback)
                    )
                ).all()
                by_kind = {bool(kind): int(n) for kind, n in keys}
                found[(actors[account_id], device_id)] = (
                    int(messages or 0),
                    by_kind.get(False, 0),
                    by_kind.get(True, 0),
                )
        return found

    @invariant()
    def listed_devices(self) -> None:
        """The member's own view of their devices is the model's."""
        for person in self.people:
            status, answer = self._call("GET", f"{E}/devices", person.in_state("active")[0].device)
            assert status == 200
            assert {d["device_id"]: d["state"] for d in answer["devices"]} == {
                d.device.device_id: d.state for d in person.devices
            }


# A passing run takes ~20 s per database; a failing one spends minutes shrinking to the shortest
# history that fails, which the suite's two-minute limit would cut off without that history.
@pytest.mark.timeout(900)
async def test_e2ee_server__matches_its_model_after_any_history(
    aiohttp_client: Any, engine: Any, config: Any, make_user: Any
) -> None:
    global SERVERS
    limited = with_overrides(
        config,
        e2ee={"max_pending_per_device": MAX_PENDING, "claims_per_minute": 100_000, "messages_per_minute": 100_000},
    )
    client = await aiohttp_client(create_app(limited, engine=engine))
    SERVERS = Servers(asyncio.get_running_loop(), client, engine, limited, make_user)

    def hunt() -> None:
        run_state_machine_as_test(
            E2EEServerModel,
            settings=settings(
                max_examples=EXAMPLES,
                stateful_step_count=STEPS,
                derandomize=True,
                database=None,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            ),
        )

    SEEN.clear()
    try:
        await asyncio.to_thread(hunt)
    finally:
        SERVERS = None
    print(sorted(SEEN.items()))
