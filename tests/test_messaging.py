"""The client core of encrypted private messages (crypto/messaging.py), played as whole
conversations in memory: Alice and Bob with two devices each (the phone holds the member's
master key, the laptop does not), Carol with one, and a stand-in for the servers' key store
(``World.claim``: the owning device uploads one signed key, the sender claims it).

Covers research/e2ee.md §8(d): 10 tamper, 11 replay, 13 unknown-key-share, 14 forward secrecy,
19 device injection and rollback, 21 "a message with a mismatched tag is never displayed",
25 padding; and the trust rules of docs/e2ee.md (pinned lists, master-key changes, signed
one-time keys). Every refusal is followed, where it matters, by a genuine message that still
opens, so a check that breaks the session would be noticed.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto.devicelist import MasterKey, sign_device_list
from crypto.encoding import canonical_json
from crypto.envelope import (
    MIN_PADDED,
    Envelope,
    Party,
    PlainMessage,
    make_envelope,
    new_message,
    padded_length,
    seal_envelope,
)
from crypto.errors import (
    CryptoError,
    DecryptionError,
    DeviceListError,
    EnvelopeError,
    FrankingError,
    MasterKeyChangedError,
    ReplayError,
    RollbackError,
    SessionSetupError,
)
from crypto.franking import new_franking_key
from crypto.messaging import ClaimedKey, DeviceState, Outgoing, OutgoingCiphertext, Target, _session_key
from crypto.olm import MESSAGE_TYPE_NORMAL, MESSAGE_TYPE_PRE_KEY, OlmAccount, OlmCiphertext, OlmSession

ALICE = "https://a.example/users/alice"
BOB = "https://b.example/users/bob"
CAROL = "https://c.example/users/carol"
NOW = datetime(2026, 11, 21, 10, 0, 0, tzinfo=UTC)
WRONG_TAG = b"\x5a" * 32


class World:
    """Three members whose devices have pinned each other's signed device lists."""

    def __init__(self) -> None:
        self.masters = {ALICE: MasterKey.generate(), BOB: MasterKey.generate(), CAROL: MasterKey.generate()}
        self.a1 = DeviceState.create(actor=ALICE, device_id="APHONE", master=self.masters[ALICE])
        self.a2 = DeviceState.create(actor=ALICE, device_id="ALAPTOP")
        self.b1 = DeviceState.create(actor=BOB, device_id="BPHONE", master=self.masters[BOB])
        self.b2 = DeviceState.create(actor=BOB, device_id="BLAPTOP")
        self.c1 = DeviceState.create(actor=CAROL, device_id="CPHONE", master=self.masters[CAROL])
        self.states = [self.a1, self.a2, self.b1, self.b2, self.c1]
        self.lists = {
            ALICE: self.publish(self.a1, [self.a1, self.a2], version=1),
            BOB: self.publish(self.b1, [self.b1, self.b2], version=1),
            CAROL: self.publish(self.c1, [self.c1], version=1),
        }
        for state in self.states:
            for actor, document in self.lists.items():
                if actor != state.actor or state.master is None:
                    state.accept_device_list(actor, document)

    def publish(self, owner: DeviceState, devices: list[DeviceState], *, version: int) -> dict[str, Any]:
        """The owner's master-key device signs a list of ``devices`` (and pins it itself)."""
        return owner.sign_own_list([d.entry for d in devices], version=version, at=NOW).to_json()

    def owner(self, target: Target) -> DeviceState:
        for state in self.states:
            if (state.actor, state.device_id) == (target.actor, target.device.device_id):
                return state
        raise LookupError(target)

    @staticmethod
    def claim(owner: DeviceState, *, fallback: bool = False) -> ClaimedKey:
        """The key store: ``owner`` uploads one signed key and a sender claims it."""
        if fallback:
            signed = owner.new_fallback_key()
        else:
            (signed,) = owner.new_one_time_keys(1)
        owner.mark_keys_published()
        return ClaimedKey(signed.key_id, signed.key, signed.signature, signed.fallback)

    def connect(self, sender: DeviceState, targets: list[Target], *, fallback: bool = False) -> None:
        for target in sender.missing_sessions(targets):
            sender.start_session(target, self.claim(self.owner(target), fallback=fallback))

    def send(
        self,
        sender: DeviceState,
        recipient: str,
        content: str = "hello",
        *,
        only: DeviceState | None = None,
        fallback: bool = False,
    ) -> Outgoing:
        """A message from ``sender`` to every target (or to the ``only`` device)."""
        targets = sender.targets(recipient)
        if only is not None:
            targets = [t for t in targets if (t.actor, t.device.device_id) == (only.actor, only.device_id)]
            assert len(targets) == 1
        self.connect(sender, targets, fallback=fallback)
        return sender.encrypt(note(sender.actor, recipient, content), targets)


def note(sender: str, recipient: str, content: str = "hello") -> PlainMessage:
    return new_message(sender=sender, recipient=recipient, content=content, now=NOW)


def copy_for(out: Outgoing, receiver: DeviceState) -> OutgoingCiphertext:
    (found,) = [c for c in out.ciphertexts if (c.actor, c.device_id) == (receiver.actor, receiver.device_id)]
    return found


def deliver(
    out: Outgoing,
    sender: DeviceState,
    receiver: DeviceState,
    *,
    ciphertext: OutgoingCiphertext | None = None,
    outer_tag: bytes | None = None,
    sender_actor: str | None = None,
    sender_device: str | None = None,
) -> Envelope:
    """What the receiver's client does with one ciphertext of ``out`` (by default its own)."""
    ciphertext = ciphertext or copy_for(out, receiver)
    return receiver.decrypt(
        sender_actor=sender.actor if sender_actor is None else sender_actor,
        sender_device=sender.device_id if sender_device is None else sender_device,
        message_type=ciphertext.message_type,
        body=ciphertext.body,
        outer_tag=out.franking_tag if outer_tag is None else outer_tag,
    )


def converse(world: World, sender: DeviceState, receiver: DeviceState, content: str = "hello") -> Envelope:
    """One message from ``sender`` to the ``receiver`` device only, delivered."""
    out = world.send(sender, receiver.actor, content, only=receiver)
    return deliver(out, sender, receiver)


def established(world: World) -> None:
    """Alice's phone and Bob's phone have a round trip behind them: both send normal messages."""
    converse(world, world.a1, world.b1, "first")
    converse(world, world.b1, world.a1, "reply")


def pinned_json(state: DeviceState, actor: str) -> dict[str, Any]:
    found = state.pinned(actor)
    assert found is not None
    return found.to_json()


def sessions(state: DeviceState, peer: DeviceState) -> list[OlmSession]:
    return state.sessions.get(_session_key(peer.actor, peer.device_id), [])


def crafted(sender: DeviceState, receiver: DeviceState, envelope: Envelope) -> OlmCiphertext:
    """A hand-made envelope sent over ``sender``'s real session with ``receiver``: it decrypts,
    so only the envelope checks stand between it and the screen."""
    (session, *_) = sessions(sender, receiver)
    return session.encrypt(seal_envelope(envelope))


def open_crafted(sender: DeviceState, receiver: DeviceState, ciphertext: OlmCiphertext, tag: bytes) -> Envelope:
    return receiver.decrypt(
        sender_actor=sender.actor,
        sender_device=sender.device_id,
        message_type=ciphertext.message_type,
        body=ciphertext.body,
        outer_tag=tag,
    )


def flipped(ciphertext: OutgoingCiphertext, position: int) -> OutgoingCiphertext:
    body = bytearray(ciphertext.body)
    body[position] ^= 0x01
    return ciphertext._replace(body=bytes(body))


@pytest.fixture
def world() -> World:
    return World()


# ------------------------------------------------------------------------------ conversations


def test_messaging__reaches_every_recipient_device_and_the_senders_other_devices(world: World) -> None:
    out = world.send(world.a1, BOB, "hello Bob")
    assert {(c.actor, c.device_id) for c in out.ciphertexts} == {
        (BOB, "BPHONE"),
        (BOB, "BLAPTOP"),
        (ALICE, "ALAPTOP"),
    }
    assert {c.message_type for c in out.ciphertexts} == {MESSAGE_TYPE_PRE_KEY}
    for receiver in (world.b1, world.b2, world.a2):
        envelope = deliver(out, world.a1, receiver)
        assert envelope.message == out.message
        assert envelope.message.content == "hello Bob"
        assert (envelope.message.sender, envelope.message.recipient) == (ALICE, BOB)
        assert envelope.sender == world.a1.me
        assert envelope.recipient == receiver.me
        assert envelope.franking_tag == out.franking_tag
        assert envelope.franking_key == out.franking_key


def test_messaging__pre_key_then_normal_messages_in_both_directions(world: World) -> None:
    a1, a2, b1, b2 = world.a1, world.a2, world.b1, world.b2
    first = world.send(a1, BOB, "one")
    for receiver in (b1, b2, a2):
        assert deliver(first, a1, receiver).message.content == "one"

    # Bob's phone answers over the session Alice's pre-key message started: no key claimed.
    targets = b1.targets(ALICE)
    assert {(t.actor, t.device.device_id) for t in b1.missing_sessions(targets)} == {
        (ALICE, "ALAPTOP"),
        (BOB, "BLAPTOP"),
    }
    reply = world.send(b1, ALICE, "two")
    assert copy_for(reply, a1).message_type == MESSAGE_TYPE_NORMAL
    assert [s.session_id for s in sessions(b1, a1)] == [s.session_id for s in sessions(a1, b1)]
    for receiver in (a1, a2, b2):
        assert deliver(reply, b1, receiver).message.content == "two"
    assert len(sessions(a1, b1)) == 1

    # Both directions between the phones are now normal messages, and keep opening.
    for n in range(3):
        forth = world.send(a1, BOB, f"three {n}")
        assert copy_for(forth, b1).message_type == MESSAGE_TYPE_NORMAL
        assert deliver(forth, a1, b1).message.content == f"three {n}"
        assert deliver(forth, a1, b2).message.content == f"three {n}"
        assert deliver(forth, a1, a2).message.content == f"three {n}"
        back = world.send(b1, ALICE, f"four {n}")
        assert copy_for(back, a1).message_type == MESSAGE_TYPE_NORMAL
        assert deliver(back, b1, a1).message.content == f"four {n}"
        assert deliver(back, b1, a2).message.content == f"four {n}"


def test_messaging__refuses_to_send_without_a_pinned_list_or_a_session(world: World) -> None:
    stranger = DeviceState.create(actor="https://d.example/users/dan", device_id="DPHONE")
    with pytest.raises(EnvelopeError):
        world.a1.targets(stranger.actor)
    with pytest.raises(SessionSetupError):
        world.a1.encrypt(note(ALICE, BOB), world.a1.targets(BOB))
    with pytest.raises(EnvelopeError):  # no device at all
        world.a1.encrypt(note(ALICE, BOB), [])
    with pytest.raises(EnvelopeError):  # a message in someone else's name
        world.a1.encrypt(note(BOB, ALICE), world.a1.targets(BOB))


# ------------------------------------------------------------------------------ 13: unknown-key-share


def test_messaging__rejects_a_ciphertext_for_another_device_of_the_recipient(world: World) -> None:
    a1, b1, b2 = world.a1, world.b1, world.b2
    out = world.send(a1, BOB)
    with pytest.raises(SessionSetupError):  # a pre-key message on b1's one-time key
        deliver(out, a1, b2, ciphertext=copy_for(out, b1))
    assert deliver(out, a1, b2).message == out.message
    assert deliver(out, a1, b1).message == out.message
    converse(world, b1, a1)
    converse(world, b2, a1)

    later = world.send(a1, BOB, "later")
    assert copy_for(later, b1).message_type == MESSAGE_TYPE_NORMAL
    with pytest.raises(DecryptionError):  # a normal message of b1's session
        deliver(later, a1, b2, ciphertext=copy_for(later, b1))
    assert deliver(later, a1, b2).message.content == "later"


def test_messaging__rejects_a_ciphertext_for_another_member(world: World) -> None:
    out = world.send(world.a1, BOB)
    with pytest.raises(SessionSetupError):
        deliver(out, world.a1, world.c1, ciphertext=copy_for(out, world.b1))
    assert deliver(out, world.a1, world.b1).message == out.message


@pytest.mark.parametrize(
    ("recipient", "to"),
    [
        pytest.param("b1", BOB, id="bobs-device"),
        pytest.param("b1", CAROL, id="bobs-device-message-to-carol"),
        pytest.param("b1-key", CAROL, id="carols-id-bobs-key"),
        pytest.param("other-id", CAROL, id="carols-key-other-device-id"),
    ],
)
def test_messaging__rejects_an_envelope_naming_another_recipient_even_if_it_decrypts(
    world: World, recipient: str, to: str
) -> None:
    a1, b1, c1 = world.a1, world.b1, world.c1
    world.connect(a1, [Target(CAROL, c1.entry)])
    named = {
        "b1": b1.me,
        "b1-key": Party(CAROL, c1.device_id, b1.me.ed25519),
        "other-id": Party(CAROL, "CTABLET", c1.me.ed25519),
    }[recipient]
    message = note(ALICE, to, "meant for someone else")
    envelope = make_envelope(sender=a1.me, recipient=named, message=message, franking_key=new_franking_key())
    ciphertext = crafted(a1, c1, envelope)
    assert ciphertext.message_type == MESSAGE_TYPE_PRE_KEY
    with pytest.raises(EnvelopeError):
        open_crafted(a1, c1, ciphertext, envelope.franking_tag)
    assert not c1.seen
    # Nothing was kept: the same session's genuine pre-key message still starts the session.
    genuine = world.send(a1, CAROL, "for Carol", only=c1)
    assert deliver(genuine, a1, c1).message.content == "for Carol"


def test_messaging__rejects_a_copy_re_encrypted_by_its_recipient(world: World) -> None:
    """Bob forwards what Alice sent him to Carol over his own session: Carol refuses it."""
    a1, b1, c1 = world.a1, world.b1, world.c1
    received = deliver(world.send(a1, BOB, "secret", only=b1), a1, b1)
    world.connect(b1, [Target(CAROL, c1.entry)])
    ciphertext = crafted(b1, c1, received)
    for sender in (b1, a1):  # as Bob, and claiming to be Alice's phone
        with pytest.raises(CryptoError):
            open_crafted(sender, c1, ciphertext, received.franking_tag)
    assert not c1.seen


# ------------------------------------------------------------------------------ 10: tamper


def test_messaging__rejects_a_flipped_byte_of_a_pre_key_message(world: World) -> None:
    a1, b1 = world.a1, world.b1
    out = world.send(a1, BOB, only=b1)
    genuine = copy_for(out, b1)
    assert genuine.message_type == MESSAGE_TYPE_PRE_KEY
    for position in range(len(genuine.body)):
        with pytest.raises((SessionSetupError, DecryptionError)):
            deliver(out, a1, b1, ciphertext=flipped(genuine, position))
    assert not sessions(b1, a1)
    assert deliver(out, a1, b1).message == out.message


def test_messaging__rejects_a_flipped_byte_of_a_normal_message(world: World) -> None:
    a1, b1 = world.a1, world.b1
    established(world)
    out = world.send(a1, BOB, only=b1)
    genuine = copy_for(out, b1)
    assert genuine.message_type == MESSAGE_TYPE_NORMAL
    for position in range(len(genuine.body)):
        with pytest.raises(DecryptionError):
            deliver(out, a1, b1, ciphertext=flipped(genuine, position))
    assert deliver(out, a1, b1).message == out.message


def test_messaging__rejects_an_outer_sender_other_than_the_one_that_encrypted(world: World) -> None:
    a1, b1 = world.a1, world.b1
    out = world.send(a1, BOB, only=b1)
    for actor, device in [(ALICE, "ALAPTOP"), (CAROL, "CPHONE"), (BOB, "BLAPTOP"), (ALICE, "NOSUCH")]:
        with pytest.raises(CryptoError):
            deliver(out, a1, b1, sender_actor=actor, sender_device=device)
    assert deliver(out, a1, b1).message == out.message


@pytest.mark.parametrize("lie", ["device", "actor", "key"])
def test_messaging__rejects_an_inner_sender_that_disagrees_with_the_outer_envelope(world: World, lie: str) -> None:
    a1, a2, b1, c1 = world.a1, world.a2, world.b1, world.c1
    established(world)
    seen = list(b1.seen)
    sender, author = {
        "device": (a2.me, ALICE),  # Alice's phone says it is her laptop
        "actor": (c1.me, CAROL),  # ... says it is Carol (message from Carol too)
        "key": (Party(ALICE, a1.device_id, a2.me.ed25519), ALICE),  # ... right id, another device's key
    }[lie]
    envelope = make_envelope(sender=sender, recipient=b1.me, message=note(author, BOB), franking_key=new_franking_key())
    ciphertext = crafted(a1, b1, envelope)
    assert ciphertext.message_type == MESSAGE_TYPE_NORMAL
    with pytest.raises(EnvelopeError):
        open_crafted(a1, b1, ciphertext, envelope.franking_tag)
    assert list(b1.seen) == seen
    assert deliver(world.send(a1, BOB, "genuine", only=b1), a1, b1).message.content == "genuine"


def test_messaging__rejects_an_outer_tag_that_differs_from_the_inner_one(world: World) -> None:
    a1, b1 = world.a1, world.b1
    established(world)
    seen = list(b1.seen)
    for wrong in (lambda _: WRONG_TAG, lambda _: b"", lambda t: t[:-1], lambda t: t + b"\x00"):
        out = world.send(a1, BOB, only=b1)
        with pytest.raises(FrankingError):
            deliver(out, a1, b1, outer_tag=wrong(out.franking_tag))
    assert list(b1.seen) == seen
    assert deliver(world.send(a1, BOB, "next", only=b1), a1, b1).message.content == "next"


@pytest.mark.parametrize("forge", ["tag", "key"])
def test_messaging__never_returns_a_message_whose_franking_tag_does_not_recompute(world: World, forge: str) -> None:
    """§8(d) 21: the inner and outer tags agree, but they do not commit to this message."""
    a1, b1 = world.a1, world.b1
    established(world)
    seen = list(b1.seen)
    honest = make_envelope(sender=a1.me, recipient=b1.me, message=note(ALICE, BOB), franking_key=new_franking_key())
    if forge == "tag":
        forged = honest._replace(franking_tag=bytes(32))
    else:
        forged = honest._replace(franking_key=new_franking_key())
    ciphertext = crafted(a1, b1, forged)
    with pytest.raises(FrankingError):
        open_crafted(a1, b1, ciphertext, forged.franking_tag)
    assert list(b1.seen) == seen
    assert deliver(world.send(a1, BOB, "next", only=b1), a1, b1).message.content == "next"


# ------------------------------------------------------------------------------ 11: replay


def test_messaging__refuses_a_replayed_normal_message(world: World) -> None:
    a1, b1 = world.a1, world.b1
    established(world)
    out = world.send(a1, BOB, only=b1)
    assert copy_for(out, b1).message_type == MESSAGE_TYPE_NORMAL
    assert deliver(out, a1, b1).message == out.message
    with pytest.raises(DecryptionError):
        deliver(out, a1, b1)
    assert deliver(world.send(a1, BOB, "next", only=b1), a1, b1).message.content == "next"


def test_messaging__refuses_a_replayed_pre_key_message_on_a_one_time_key(world: World) -> None:
    a1, b1 = world.a1, world.b1
    out = world.send(a1, BOB, only=b1)
    assert deliver(out, a1, b1).message == out.message
    with pytest.raises(CryptoError):
        deliver(out, a1, b1)
    assert len(sessions(b1, a1)) == 1
    second = world.send(a1, BOB, "second pre-key message", only=b1)
    assert copy_for(second, b1).message_type == MESSAGE_TYPE_PRE_KEY
    assert deliver(second, a1, b1).message.content == "second pre-key message"


def test_messaging__refuses_a_replayed_pre_key_message_on_a_fallback_key(world: World) -> None:
    """Olm lets a fallback-key pre-key message start a session again; the id cache stops it."""
    a1, b1 = world.a1, world.b1
    out = world.send(a1, BOB, only=b1, fallback=True)
    assert copy_for(out, b1).message_type == MESSAGE_TYPE_PRE_KEY
    assert deliver(out, a1, b1).message == out.message
    before = b1.to_json()

    with pytest.raises(ReplayError):
        deliver(out, a1, b1)
    # The refusal changed nothing: same sessions, same ids, and the conversation goes on.
    assert [s.session_id for s in sessions(b1, a1)] == [
        s.session_id for s in DeviceState.from_json(before).sessions[_session_key(ALICE, "APHONE")]
    ]
    assert [str(uuid.UUID(bytes=raw)) for raw in b1.seen] == before["seen"]
    second = world.send(a1, BOB, "second", only=b1)
    assert deliver(second, a1, b1).message.content == "second"

    # ... and only the id cache stood in the way: without it, the replay opens again.
    forgetful = DeviceState.from_json({**before, "seen": []})
    assert deliver(out, a1, forgetful).message == out.message
    # A restored state still remembers the id.
    with pytest.raises(ReplayError):
        deliver(out, a1, DeviceState.from_json(before))


def test_messaging__refuses_a_replayed_own_copy(world: World) -> None:
    out = world.send(world.a1, BOB)
    assert deliver(out, world.a1, world.a2).message == out.message
    with pytest.raises(CryptoError):
        deliver(out, world.a1, world.a2)


# ------------------------------------------------------------------------------ 19: device lists


def test_messaging__rejects_a_device_list_with_a_device_the_master_key_did_not_sign(world: World) -> None:
    a1 = world.a1
    injected = DeviceState.create(actor=BOB, device_id="EVIL0")
    document = json.loads(json.dumps(world.lists[BOB]))
    document["devices"].append(injected.entry.to_json())
    document["devices"].sort(key=lambda d: d["deviceId"])
    with pytest.raises(DeviceListError):
        a1.accept_device_list(BOB, document)
    document["version"] = 2
    with pytest.raises(DeviceListError):
        a1.accept_device_list(BOB, document)
    assert a1.pinned(BOB) is not None
    assert pinned_json(a1, BOB) == world.lists[BOB]
    assert {t.device.device_id for t in a1.targets(BOB)} == {"BPHONE", "BLAPTOP", "ALAPTOP"}


def test_messaging__rejects_a_device_list_given_for_another_actor(world: World) -> None:
    with pytest.raises(EnvelopeError):
        world.a1.accept_device_list(BOB, world.lists[CAROL])
    assert pinned_json(world.a1, BOB) == world.lists[BOB]


def test_messaging__rejects_a_device_list_rollback_and_equivocation(world: World) -> None:
    a1, b1, b2 = world.a1, world.b1, world.b2
    v2 = world.publish(b1, [b1], version=2)
    assert not a1.accept_device_list(BOB, v2).master_key_changed
    with pytest.raises(RollbackError):
        a1.accept_device_list(BOB, world.lists[BOB])
    other_v2 = sign_device_list(world.masters[BOB], actor=BOB, version=2, devices=[b1.entry, b2.entry], signed_at=NOW)
    with pytest.raises(RollbackError):
        a1.accept_device_list(BOB, other_v2.to_json())
    assert pinned_json(a1, BOB)["version"] == 2
    assert {(t.actor, t.device.device_id) for t in a1.targets(BOB)} == {(BOB, "BPHONE"), (ALICE, "ALAPTOP")}
    assert a1.accept_device_list(BOB, v2).device_list.version == 2  # the same list again is fine


def test_messaging__never_encrypts_to_or_believes_an_unlisted_device(world: World) -> None:
    a1 = world.a1
    injected = DeviceState.create(actor=BOB, device_id="EVIL0")
    injected.accept_device_list(ALICE, world.lists[ALICE])
    assert all(t.device.device_id != "EVIL0" for t in a1.targets(BOB))
    assert not a1.knows_device(BOB, "EVIL0")
    out = world.send(a1, BOB)
    assert (BOB, "EVIL0") not in {(c.actor, c.device_id) for c in out.ciphertexts}

    world.states.append(injected)
    forged = world.send(injected, ALICE, "hi from Bob", only=a1)
    with pytest.raises(EnvelopeError):
        deliver(forged, injected, a1)
    with pytest.raises(CryptoError):  # passing itself off as Bob's phone: not its identity key
        deliver(forged, injected, a1, sender_device="BPHONE")
    assert not a1.seen


def test_messaging__stops_encrypting_to_a_revoked_device_and_refuses_its_messages(world: World) -> None:
    a1, b1, b2 = world.a1, world.b1, world.b2
    out = world.send(a1, BOB)
    deliver(out, a1, b2)
    a1.accept_device_list(BOB, world.publish(b1, [b1], version=2))
    assert {(t.actor, t.device.device_id) for t in a1.targets(BOB)} == {(BOB, "BPHONE"), (ALICE, "ALAPTOP")}
    later = world.send(a1, BOB, "after the revocation")
    assert (BOB, "BLAPTOP") not in {(c.actor, c.device_id) for c in later.ciphertexts}

    from_revoked = b2.encrypt(note(BOB, ALICE, "still here"), [Target(ALICE, a1.entry)])
    with pytest.raises(EnvelopeError):
        deliver(from_revoked, b2, a1)
    assert from_revoked.message.raw_id not in a1.seen


def test_messaging__refuses_messages_from_keys_the_owner_replaced(world: World) -> None:
    """Bob re-installs his laptop under the same device id: the old keys' messages are refused."""
    a1, b1, b2 = world.a1, world.b1, world.b2
    deliver(world.send(a1, BOB), a1, b2)
    reinstalled = DeviceState.create(actor=BOB, device_id=b2.device_id)
    a1.accept_device_list(BOB, world.publish(b1, [b1, reinstalled], version=2))
    old = b2.encrypt(note(BOB, ALICE, "from the old keys"), [Target(ALICE, a1.entry)])
    with pytest.raises(CryptoError):
        deliver(old, b2, a1)
    assert old.message.raw_id not in a1.seen


def test_messaging__never_encrypts_with_a_session_to_keys_the_list_replaced(world: World) -> None:
    a1, b1, b2 = world.a1, world.b1, world.b2
    deliver(world.send(a1, BOB), a1, b2)
    reinstalled = DeviceState.create(actor=BOB, device_id=b2.device_id)
    reinstalled.accept_device_list(ALICE, world.lists[ALICE])
    a1.accept_device_list(BOB, world.publish(b1, [b1, reinstalled], version=2))
    world.states.remove(b2)
    world.states.append(reinstalled)
    targets = a1.targets(BOB)
    (laptop,) = [t for t in targets if t.device.device_id == b2.device_id]
    assert laptop.device.identity_key == reinstalled.account.identity_key
    assert laptop in a1.missing_sessions(targets)
    out = world.send(a1, BOB, "for the new laptop")
    assert deliver(out, a1, reinstalled).message.content == "for the new laptop"
    with pytest.raises(CryptoError):
        deliver(out, a1, b2)


# ------------------------------------------------------------------------------ master key changes


def reinstalled_bob(world: World) -> tuple[MasterKey, dict[str, Any]]:
    """Bob lost everything and starts again: a new master key signs a new list (version 1)."""
    master = MasterKey.generate()
    phone = DeviceState.create(actor=BOB, device_id="BPHONE2", master=master)
    return master, world.publish(phone, [phone], version=1)


def test_messaging__accepts_and_reports_a_new_master_key_of_an_unverified_contact(world: World) -> None:
    a1 = world.a1
    number = a1.safety_number(BOB)
    master, document = reinstalled_bob(world)
    pinned = a1.accept_device_list(BOB, document)
    assert pinned.master_key_changed
    assert pinned_json(a1, BOB)["masterKey"] == master.public_key
    assert not a1.is_verified(BOB)
    assert a1.safety_number(BOB) != number
    assert {t.device.device_id for t in a1.targets(BOB)} == {"BPHONE2", "ALAPTOP"}


def test_messaging__refuses_a_new_master_key_of_a_verified_contact_until_accepted(world: World) -> None:
    a1 = world.a1
    a1.mark_verified(BOB)
    number = a1.safety_number(BOB)
    master, document = reinstalled_bob(world)
    with pytest.raises(MasterKeyChangedError):
        a1.accept_device_list(BOB, document)
    assert pinned_json(a1, BOB) == world.lists[BOB]
    assert a1.is_verified(BOB)
    assert a1.safety_number(BOB) == number
    assert {t.device.device_id for t in a1.targets(BOB)} == {"BPHONE", "BLAPTOP", "ALAPTOP"}

    pinned = a1.accept_device_list(BOB, document, accept_new_master_key=True)
    assert pinned.master_key_changed
    assert pinned_json(a1, BOB)["masterKey"] == master.public_key
    assert not a1.is_verified(BOB)
    assert a1.safety_number(BOB) != number


def test_messaging__keeps_verification_across_a_list_update_under_the_same_master_key(world: World) -> None:
    a1, b1 = world.a1, world.b1
    a1.mark_verified(BOB)
    pinned = a1.accept_device_list(BOB, world.publish(b1, [b1], version=2))
    assert not pinned.master_key_changed
    assert a1.is_verified(BOB)


def test_messaging__refuses_a_server_signed_list_for_a_verified_contact(world: World) -> None:
    """The server injects a device by signing a whole list with a master key of its own."""
    a1, b1 = world.a1, world.b1
    a1.mark_verified(BOB)
    injected = DeviceState.create(actor=BOB, device_id="EVIL0")
    forged = sign_device_list(
        MasterKey.generate(), actor=BOB, version=99, devices=[b1.entry, injected.entry], signed_at=NOW
    )
    with pytest.raises(MasterKeyChangedError):
        a1.accept_device_list(BOB, forged.to_json())
    assert all(t.device.device_id != "EVIL0" for t in a1.targets(BOB))


def test_messaging__refuses_an_own_list_signed_by_another_master_key(world: World) -> None:
    a1 = world.a1
    forged = sign_device_list(MasterKey.generate(), actor=ALICE, version=9, devices=[a1.entry], signed_at=NOW)
    with pytest.raises(MasterKeyChangedError):
        a1.accept_device_list(ALICE, forged.to_json())
    with pytest.raises(MasterKeyChangedError):
        a1.accept_device_list(ALICE, forged.to_json(), accept_new_master_key=True)
    assert pinned_json(a1, ALICE) == world.lists[ALICE]


def test_messaging__a_device_without_the_master_key_cannot_sign_the_list(world: World) -> None:
    with pytest.raises(MasterKeyChangedError):
        world.a2.sign_own_list([world.a1.entry, world.a2.entry], version=2, at=NOW)


def test_messaging__the_same_master_key_in_another_base64_spelling_is_not_a_change(world: World) -> None:
    a1, b1, b2 = world.a1, world.b1, world.b2
    a1.mark_verified(BOB)
    master = world.masters[BOB]
    payload = {
        "actor": BOB,
        "version": 2,
        "signedAt": "2026-11-21T10:00:00Z",
        "masterKey": master.public_key + "=",
        "devices": [e.to_json() for e in sorted([b1.entry, b2.entry], key=lambda e: e.device_id)],
    }
    document = {**payload, "signature": master.sign(canonical_json(payload))}
    pinned = a1.accept_device_list(BOB, document)
    assert not pinned.master_key_changed
    assert a1.is_verified(BOB)


# ------------------------------------------------------------------------------ claimed keys


def test_messaging__start_session_refuses_a_key_not_signed_by_that_device(world: World) -> None:
    a1, b1 = world.a1, world.b1
    (target,) = [t for t in a1.targets(BOB) if t.device.device_id == "BPHONE"]
    # The server's own key, signed by an account of its own over exactly the right payload.
    impostor = DeviceState(
        actor=BOB, device_id="BPHONE", account=OlmAccount.create(), master=None, pickle_key=bytes(32)
    )
    forged = World.claim(impostor)
    genuine = World.claim(b1)
    for key in (
        forged,
        replace(genuine, key=forged.key),  # Bob's signature, the server's key
        replace(genuine, signature=forged.signature),
        replace(genuine, signature=impostor.account.sign(b"anything")),
        replace(genuine, signature=""),
        replace(genuine, key="not base64!"),
    ):
        with pytest.raises(SessionSetupError):
            a1.start_session(target, key)
        assert a1.missing_sessions([target]) == [target]
    a1.start_session(target, genuine)
    assert a1.missing_sessions([target]) == []


@pytest.mark.parametrize("move", ["other-device", "other-member", "fallback-as-one-time", "one-time-as-fallback", "id"])
def test_messaging__start_session_refuses_a_key_signed_for_something_else(world: World, move: str) -> None:
    a1, b1, b2, c1 = world.a1, world.b1, world.b2, world.c1
    (target,) = [t for t in a1.targets(BOB) if t.device.device_id == "BPHONE"]
    key = {
        "other-device": lambda: World.claim(b2),
        "other-member": lambda: World.claim(c1),
        "fallback-as-one-time": lambda: replace(World.claim(b1, fallback=True), fallback=False),
        "one-time-as-fallback": lambda: replace(World.claim(b1), fallback=True),
        "id": lambda: replace(World.claim(b1), key_id="changed-id"),
    }[move]()
    with pytest.raises(SessionSetupError):
        a1.start_session(target, key)
    assert a1.missing_sessions([target]) == [target]


# ------------------------------------------------------------------------------ 14: forward secrecy


def test_messaging__a_persisted_state_cannot_reopen_a_read_normal_message(world: World) -> None:
    a1, b1 = world.a1, world.b1
    established(world)
    read = world.send(a1, BOB, "read once", only=b1)
    unread = world.send(a1, BOB, "not read yet", only=b1)
    assert copy_for(read, b1).message_type == MESSAGE_TYPE_NORMAL
    assert deliver(read, a1, b1).message.content == "read once"

    # Take the id cache out of the picture: only Olm's deleted message keys are left.
    stored = {**json.loads(json.dumps(b1.to_json())), "seen": []}
    restored = DeviceState.from_json(stored)
    with pytest.raises(DecryptionError):
        deliver(read, a1, restored)
    ciphertext = copy_for(read, b1)
    for session in DeviceState.from_json(stored).sessions[_session_key(ALICE, "APHONE")]:
        with pytest.raises(DecryptionError):
            session.decrypt(OlmCiphertext(ciphertext.message_type, ciphertext.body))
    assert deliver(unread, a1, restored).message.content == "not read yet"


def test_messaging__a_persisted_state_cannot_reopen_a_read_pre_key_message(world: World) -> None:
    a1, b1 = world.a1, world.b1
    read = world.send(a1, BOB, "read once", only=b1)
    assert deliver(read, a1, b1).message.content == "read once"
    restored = DeviceState.from_json({**b1.to_json(), "seen": []})
    with pytest.raises(CryptoError):
        deliver(read, a1, restored)


# ------------------------------------------------------------------------------ persistence


def test_messaging__persistence_keeps_sessions_contacts_and_seen_ids(world: World) -> None:
    a1, b1 = world.a1, world.b1
    established(world)
    a1.mark_verified(BOB)
    restored_a = DeviceState.from_json(json.loads(json.dumps(a1.to_json())))
    restored_b = DeviceState.from_json(json.loads(json.dumps(b1.to_json())))

    assert (restored_a.actor, restored_a.device_id) == (ALICE, "APHONE")
    assert restored_a.entry == a1.entry
    assert restored_a.is_verified(BOB)
    assert not restored_a.is_verified(CAROL)
    assert restored_a.pinned(BOB) == a1.pinned(BOB)
    assert restored_a.pinned(ALICE) == a1.pinned(ALICE)
    assert list(restored_b.seen) == list(b1.seen) and len(b1.seen) == 1
    assert [s.session_id for s in sessions(restored_a, b1)] == [s.session_id for s in sessions(a1, b1)]
    assert restored_a.master is not None and restored_a.master.public_key == world.masters[ALICE].public_key
    assert restored_a.safety_number(BOB) == a1.safety_number(BOB)

    # The restored devices carry on the conversation (normal messages, no new keys claimed).
    world.states[world.states.index(a1)] = restored_a
    world.states[world.states.index(b1)] = restored_b
    for n in range(2):
        out = world.send(restored_a, BOB, f"after restore {n}", only=restored_b)
        assert copy_for(out, restored_b).message_type == MESSAGE_TYPE_NORMAL
        assert deliver(out, restored_a, restored_b).message.content == f"after restore {n}"
        back = world.send(restored_b, ALICE, f"back {n}", only=restored_a)
        assert copy_for(back, restored_a).message_type == MESSAGE_TYPE_NORMAL
        assert deliver(back, restored_b, restored_a).message.content == f"back {n}"
    restored_a.sign_own_list([restored_a.entry], version=2, at=NOW)
    assert DeviceState.from_json(world.a2.to_json()).master is None


def test_messaging__from_json_refuses_an_unknown_version(world: World) -> None:
    with pytest.raises(EnvelopeError):
        DeviceState.from_json({**world.a1.to_json(), "v": 2})


def test_messaging__a_restored_state_opens_a_one_time_key_message_sent_before(world: World) -> None:
    """Keys published, then the state persisted: a pre-key message arriving later still opens."""
    a1, b1 = world.a1, world.b1
    out = world.send(a1, BOB, "while you were away", only=b1)
    restored = DeviceState.from_json(b1.to_json())
    assert deliver(out, a1, restored).message.content == "while you were away"


# ------------------------------------------------------------------------------ 25: padding


def frame_length(envelope: Envelope) -> int:
    """The unpadded length of an envelope's frame, from the layout in crypto/envelope.py."""
    sender, recipient = envelope.sender, envelope.recipient
    texts = (sender.actor, sender.device, recipient.actor, recipient.device)
    return 1 + sum(2 + len(t.encode()) for t in texts) + 32 + 32 + 32 + 32 + 4 + len(envelope.message.encoded)


def test_messaging__normal_message_length_depends_only_on_the_padded_length() -> None:
    world = World()
    a1, b1 = world.a1, world.b1
    lengths: dict[int, set[int]] = {}
    sealed_lengths, padded_lengths = set(), set()
    for size in range(1, 4097):
        out = world.send(a1, BOB, "x" * size, only=b1)
        (ciphertext,) = out.ciphertexts
        envelope = make_envelope(sender=a1.me, recipient=b1.me, message=out.message, franking_key=out.franking_key)
        sealed = len(seal_envelope(envelope))
        sealed_lengths.add(sealed)
        padded_lengths.add(padded_length(frame_length(envelope)))
        if ciphertext.message_type == MESSAGE_TYPE_NORMAL:
            lengths.setdefault(sealed, set()).add(len(ciphertext.body))
        if size % 64 == 1:
            # Bob reads and answers, so Alice's chain restarts: a steady state, as in any
            # conversation, where the chain index keeps to one byte.
            deliver(out, a1, b1)
            reply = world.send(b1, ALICE, "ok", only=a1)
            deliver(reply, b1, a1)
    assert sealed_lengths == padded_lengths
    assert min(sealed_lengths) >= MIN_PADDED
    assert len(sealed_lengths) >= 20
    # Each padded length gives one ciphertext length, a different one for each.
    assert set(lengths) == sealed_lengths
    assert all(len(found) == 1 for found in lengths.values()), lengths
    by_length = [next(iter(lengths[padded])) for padded in sorted(lengths)]
    assert len(set(by_length)) == len(padded_lengths)
    assert by_length == sorted(by_length)


# ------------------------------------------------------------------------------ safety numbers


def test_messaging__safety_number_is_the_same_on_both_sides(world: World) -> None:
    number = world.a1.safety_number(BOB)
    assert len(number.replace(" ", "")) == 60
    assert world.b1.safety_number(ALICE) == number
    assert world.a2.safety_number(BOB) == number
    assert world.b2.safety_number(ALICE) == number
    assert world.a1.safety_number(CAROL) == world.c1.safety_number(ALICE) != number
    stranger = DeviceState.create(actor=ALICE, device_id="AFRESH")
    with pytest.raises(EnvelopeError):
        stranger.safety_number(BOB)


# ------------------------------------------------------------------------------ bugs found


def test_messaging__a_pre_key_message_refused_for_its_tag_keeps_its_session_and_the_next_ones_open(
    world: World,
) -> None:
    """The documented exception (module note) for a session's first message: refused, it still
    started the session (so its one-time key is used up, and the message is not opened again),
    and the sender's next messages, pre-key messages naming that key until Bob replies, open."""
    a1, b1 = world.a1, world.b1
    out = world.send(a1, BOB, only=b1)
    with pytest.raises(FrankingError):
        deliver(out, a1, b1, outer_tag=WRONG_TAG)
    assert [s.session_id for s in sessions(b1, a1)] == [sessions(a1, b1)[0].session_id]
    assert b1.seen == {}
    with pytest.raises(CryptoError):
        deliver(out, a1, b1)
    for content in ("second", "third"):
        later = world.send(a1, BOB, content, only=b1)
        assert copy_for(later, b1).message_type == MESSAGE_TYPE_PRE_KEY
        assert deliver(later, a1, b1).message.content == content
    assert len(sessions(b1, a1)) == 1
    reply = world.send(b1, ALICE, "reply", only=a1)
    assert deliver(reply, b1, a1).message.content == "reply"


def test_messaging__a_refused_pre_key_message_made_on_a_forged_identity_keeps_nothing(world: World) -> None:
    """Only a pre-key message that authenticates as the listed device keeps a session: one from
    another device, sent under the listed device's name, starts none."""
    a1, b1, c1 = world.a1, world.b1, world.c1
    out = world.send(c1, BOB, only=b1)
    with pytest.raises(CryptoError):
        deliver(out, c1, b1, sender_actor=ALICE, sender_device="APHONE")
    assert sessions(b1, a1) == [] and b1.seen == {}
    assert deliver(out, c1, b1).message == out.message


def test_messaging__a_refused_normal_message_spends_its_step_and_the_session_goes_on(world: World) -> None:
    """The documented exception (module note): a message that authenticates under the session but
    fails an envelope check is dropped and its ratchet step spent; the conversation continues."""
    a1, b1 = world.a1, world.b1
    established(world)
    out = world.send(a1, BOB, only=b1)
    with pytest.raises(FrankingError):
        deliver(out, a1, b1, outer_tag=WRONG_TAG)
    with pytest.raises(CryptoError):
        deliver(out, a1, b1)
    later = world.send(a1, BOB, only=b1)
    assert deliver(later, a1, b1).message == later.message


# ------------------------------------------------------------------------------ fuzz


class Fuzz:
    """One conversation shared by the fuzz examples: nothing they send may change it."""

    def __init__(self) -> None:
        self.world = World()
        a1, b1 = self.world.a1, self.world.b1
        pre_key = self.world.send(a1, BOB, only=b1)
        self.pre_key, self.pre_key_tag = copy_for(pre_key, b1), pre_key.franking_tag
        # A second pair that has a round trip behind it, for normal messages.
        a2, b2 = self.world.a2, self.world.b2
        converse(self.world, a2, b2, "first")
        converse(self.world, b2, a2, "reply")
        normal = self.world.send(a2, BOB, only=b2)
        self.normal, self.normal_tag = copy_for(normal, b2), normal.franking_tag
        assert self.pre_key.message_type == MESSAGE_TYPE_PRE_KEY
        assert self.normal.message_type == MESSAGE_TYPE_NORMAL


@pytest.fixture(scope="module")
def fuzz() -> Fuzz:
    return Fuzz()


@settings(max_examples=150, deadline=None)
@given(
    body=st.binary(max_size=400),
    message_type=st.one_of(st.sampled_from([0, 1]), st.integers(min_value=-(2**70), max_value=2**70)),
    sender=st.one_of(
        st.sampled_from([(ALICE, "APHONE"), (ALICE, "ALAPTOP"), (BOB, "BLAPTOP")]),
        st.tuples(st.text(max_size=40), st.text(max_size=20)),
    ),
    outer_tag=st.binary(max_size=40),
)
def test_messaging__decrypt_of_arbitrary_input_raises_only_crypto_errors(
    fuzz: Fuzz, body: bytes, message_type: int, sender: tuple[str, str], outer_tag: bytes
) -> None:
    for receiver in (fuzz.world.b1, fuzz.world.b2):
        with pytest.raises(CryptoError):
            receiver.decrypt(
                sender_actor=sender[0],
                sender_device=sender[1],
                message_type=message_type,
                body=body,
                outer_tag=outer_tag,
            )


@settings(max_examples=150, deadline=None)
@given(which=st.sampled_from(["pre_key", "normal"]), data=st.data())
def test_messaging__decrypt_of_a_mutated_genuine_message_raises_only_crypto_errors(
    fuzz: Fuzz, which: str, data: st.DataObject
) -> None:
    genuine: OutgoingCiphertext = getattr(fuzz, which)
    body = bytearray(genuine.body)
    edit = data.draw(st.sampled_from(["flip", "truncate", "insert", "splice"]))
    at = data.draw(st.integers(min_value=0, max_value=len(body) - 1))
    if edit == "flip":
        body[at] ^= data.draw(st.integers(min_value=1, max_value=255))
    elif edit == "truncate":
        del body[at:]
    elif edit == "insert":
        body[at:at] = data.draw(st.binary(min_size=1, max_size=8))
    else:
        body[at : at + 8] = data.draw(st.binary(max_size=16))
    if bytes(body) == genuine.body:
        return
    sender, receiver = (fuzz.world.a1, fuzz.world.b1) if which == "pre_key" else (fuzz.world.a2, fuzz.world.b2)
    message_type = data.draw(st.sampled_from([genuine.message_type, 1 - genuine.message_type]))
    with pytest.raises(CryptoError):
        receiver.decrypt(
            sender_actor=sender.actor,
            sender_device=sender.device_id,
            message_type=message_type,
            body=bytes(body),
            outer_tag=getattr(fuzz, f"{which}_tag"),  # the right tag: only the body is wrong
        )
