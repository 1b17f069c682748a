"""Olm sessions, SAS and safety numbers (crypto/olm.py, crypto/safety.py).

research/e2ee.md §8(d): 5 (interop with libolm, an independent implementation, through
python-olm: a test-only dependency), 9 (one-time keys are single use), 10 (tamper), 11 (replay),
12 (out of order), 14 (forward secrecy), 15 (post-compromise security), 16 (non-contributory
keys), 17 (pickles), 20 (SAS against a man in the middle), and safety numbers (with libsignal's
own vector, tests/vectors/e2ee/libsignal-fingerprint.json).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import nacl.bindings
import nacl.exceptions
import olm
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto.encoding import b64decode, b64encode
from crypto.errors import DecryptionError, KeyFormatError, SessionSetupError, VerificationError
from crypto.olm import (
    MESSAGE_TYPE_NORMAL,
    MESSAGE_TYPE_PRE_KEY,
    SAS_EMOJI,
    OlmAccount,
    OlmCiphertext,
    OlmSession,
    OneTimeKey,
    SasSession,
    verify_ed25519,
)
from crypto.safety import _digits, _fingerprint, safety_number, short_fingerprint

VECTORS = Path(__file__).parent / "vectors" / "e2ee"
PICKLE_KEY = bytes(range(32))
ALICE = "https://a.example/users/alice"
BOB = "https://b.example/users/bob"

# Curve25519 points of small order (and non-canonical spellings of them): a DH with one gives
# a value the attacker knows. The seven encodings libsodium's small-order blocklist holds;
# test_non_contributory__the_points_are_low_order checks that libsodium refuses each.
LOW_ORDER_POINTS = [
    "0000000000000000000000000000000000000000000000000000000000000000",  # 0
    "0100000000000000000000000000000000000000000000000000000000000000",  # 1
    "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",  # order 8
    "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",  # order 8
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # p - 1
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # p (= 0)
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # p + 1 (= 1)
]


def low_order_keys() -> list[str]:
    return [b64encode(bytes.fromhex(point)) for point in LOW_ORDER_POINTS]


def published_key(account: OlmAccount) -> OneTimeKey:
    (key,) = account.generate_one_time_keys(1)
    account.mark_published()
    return key


def pair() -> tuple[OlmAccount, OlmAccount, OlmSession, OlmSession]:
    """Alice and Bob with a session each, after one pre-key message and one reply."""
    alice, bob = OlmAccount.create(), OlmAccount.create()
    alice_session = alice.outbound_session(bob.identity_key, published_key(bob).key)
    bob_session, plaintext = bob.inbound_session(alice.identity_key, alice_session.encrypt(b"hello Bob"))
    assert plaintext == b"hello Bob"
    assert alice_session.decrypt(bob_session.encrypt(b"hello Alice")) == b"hello Alice"
    return alice, bob, alice_session, bob_session


def flipped(ciphertext: OlmCiphertext, position: int, mask: int) -> OlmCiphertext:
    body = bytearray(ciphertext.body)
    body[position] ^= mask
    return OlmCiphertext(message_type=ciphertext.message_type, body=bytes(body))


def replace_pre_key_field(ciphertext: OlmCiphertext, tag: int, value: bytes) -> OlmCiphertext:
    """Swap one 32-byte key field of a pre-key message (version byte, then protobuf fields:
    0x0a one-time key, 0x12 base key, 0x1a identity key, 0x22 inner message)."""
    body = ciphertext.body
    assert body[0] == 3
    at = 1
    while at < len(body):
        field, length = body[at], body[at + 1]
        assert length < 0x80  # the key fields are 32 bytes; the message (last) may be longer
        if field == tag:
            assert length == len(value) == 32
            start = at + 2
            return OlmCiphertext(MESSAGE_TYPE_PRE_KEY, body[:start] + value + body[start + 32 :])
        at += 2 + length
    raise AssertionError(f"field {tag:#x} not found")


# --------------------------------------------------------------------------- accounts and keys


def test_account__keys_are_unpadded_base64_of_32_bytes() -> None:
    account = OlmAccount.create()
    for key in (account.identity_key, account.fingerprint_key):
        assert "=" not in key
        assert len(b64decode(key, field="key", size=32)) == 32
    assert account.identity_key != OlmAccount.create().identity_key
    assert account.max_one_time_keys == 50


def test_account__one_time_keys_accumulate_until_published() -> None:
    account = OlmAccount.create()
    first = account.generate_one_time_keys(2)
    both = account.generate_one_time_keys(3)
    assert len(first) == 2 and len(both) == 5
    assert set(first) <= set(both)
    assert len({key.key_id for key in both}) == 5 and len({key.key for key in both}) == 5
    account.mark_published()
    fresh = account.generate_one_time_keys(1)
    assert len(fresh) == 1 and fresh[0] not in both


@pytest.mark.parametrize("count", [0, -1, 51, True])
def test_account__refuses_a_one_time_key_count_out_of_range(count: int) -> None:
    with pytest.raises(ValueError, match="count"):
        OlmAccount.create().generate_one_time_keys(count)


def test_account__fallback_key_is_returned_and_rotates() -> None:
    account = OlmAccount.create()
    first = account.generate_fallback_key()
    assert len(b64decode(first.key, field="key", size=32)) == 32
    account.mark_published()
    second = account.generate_fallback_key()
    assert second.key != first.key and second.key_id != first.key_id


def test_account__signature_verifies_and_binds_the_message() -> None:
    account = OlmAccount.create()
    signature = account.sign(b"device list v3")
    assert verify_ed25519(account.fingerprint_key, b"device list v3", signature) is None
    with pytest.raises(VerificationError):
        verify_ed25519(account.fingerprint_key, b"device list v4", signature)


# ------------------------------------------------------------------ 5: interop with libolm


def libolm_identity(account: olm.Account) -> str:
    key: str = account.identity_keys["curve25519"]
    return key


def libolm_one_time_key(account: olm.Account) -> str:
    account.generate_one_time_keys(1)
    (key,) = account.one_time_keys["curve25519"].values()
    account.mark_keys_as_published()
    assert isinstance(key, str)
    return key


def test_interop__vodozemac_to_libolm_pre_key_and_normal_both_ways() -> None:
    ours, theirs = OlmAccount.create(), olm.Account()
    session = ours.outbound_session(libolm_identity(theirs), libolm_one_time_key(theirs))

    first = session.encrypt(b"pre-key from vodozemac")
    assert first.message_type == MESSAGE_TYPE_PRE_KEY
    prekey = olm.OlmPreKeyMessage(b64encode(first.body))
    their_session = olm.InboundSession(theirs, prekey, ours.identity_key)
    assert their_session.decrypt(prekey) == "pre-key from vodozemac"
    assert their_session.id == session.session_id

    reply = their_session.encrypt("normal from libolm")
    assert isinstance(reply, olm.OlmMessage)
    assert session.decrypt(OlmCiphertext(MESSAGE_TYPE_NORMAL, b64decode(reply.ciphertext, field="c"))) == (
        b"normal from libolm"
    )

    second = session.encrypt(b"normal from vodozemac")
    assert second.message_type == MESSAGE_TYPE_NORMAL
    assert their_session.decrypt(olm.OlmMessage(b64encode(second.body))) == "normal from vodozemac"


def test_interop__libolm_to_vodozemac_pre_key_and_normal_both_ways() -> None:
    theirs, ours = olm.Account(), OlmAccount.create()
    their_session = olm.OutboundSession(theirs, ours.identity_key, published_key(ours).key)

    first = their_session.encrypt("pre-key from libolm")
    assert isinstance(first, olm.OlmPreKeyMessage)
    session, plaintext = ours.inbound_session(
        libolm_identity(theirs), OlmCiphertext(MESSAGE_TYPE_PRE_KEY, b64decode(first.ciphertext, field="c"))
    )
    assert plaintext == b"pre-key from libolm"
    assert session.session_id == their_session.id

    reply = session.encrypt(b"normal from vodozemac")
    assert reply.message_type == MESSAGE_TYPE_NORMAL
    assert their_session.decrypt(olm.OlmMessage(b64encode(reply.body))) == "normal from vodozemac"

    second = their_session.encrypt("normal from libolm")
    assert isinstance(second, olm.OlmMessage)
    assert session.decrypt(OlmCiphertext(MESSAGE_TYPE_NORMAL, b64decode(second.ciphertext, field="c"))) == (
        b"normal from libolm"
    )


def test_interop__signatures_verify_across_implementations() -> None:
    ours, theirs = OlmAccount.create(), olm.Account()
    olm.ed25519_verify(ours.fingerprint_key, "signed by vodozemac", ours.sign(b"signed by vodozemac"))
    their_signature = theirs.sign("signed by libolm")
    assert verify_ed25519(theirs.identity_keys["ed25519"], b"signed by libolm", their_signature) is None
    with pytest.raises(VerificationError):
        verify_ed25519(theirs.identity_keys["ed25519"], b"signed by someone else", their_signature)


# ------------------------------------------------------------ 9: one-time and fallback keys


def test_session__one_time_key_serves_one_session_only() -> None:
    alice, bob = OlmAccount.create(), OlmAccount.create()
    session = alice.outbound_session(bob.identity_key, published_key(bob).key)
    prekey = session.encrypt(b"first")
    bob.inbound_session(alice.identity_key, prekey)
    with pytest.raises(SessionSetupError):
        bob.inbound_session(alice.identity_key, prekey)
    # Also for a different sender racing for the same key.
    carol = OlmAccount.create()
    claimed = published_key(bob)
    carol_prekey = carol.outbound_session(bob.identity_key, claimed.key).encrypt(b"carol")
    alice_prekey = alice.outbound_session(bob.identity_key, claimed.key).encrypt(b"alice")
    bob.inbound_session(carol.identity_key, carol_prekey)
    with pytest.raises(SessionSetupError):
        bob.inbound_session(alice.identity_key, alice_prekey)


def test_session__one_time_key_stays_used_after_a_pickle_round_trip() -> None:
    alice, bob = OlmAccount.create(), OlmAccount.create()
    prekey = alice.outbound_session(bob.identity_key, published_key(bob).key).encrypt(b"first")
    bob.inbound_session(alice.identity_key, prekey)
    restored = OlmAccount.from_pickle(bob.pickle(PICKLE_KEY), PICKLE_KEY)
    with pytest.raises(SessionSetupError):
        restored.inbound_session(alice.identity_key, prekey)


def test_session__fallback_key_serves_two_sessions() -> None:
    alice, carol, bob = OlmAccount.create(), OlmAccount.create(), OlmAccount.create()
    fallback = bob.generate_fallback_key()
    bob.mark_published()
    from_alice = alice.outbound_session(bob.identity_key, fallback.key)
    from_carol = carol.outbound_session(bob.identity_key, fallback.key)
    bob_alice, text_alice = bob.inbound_session(alice.identity_key, from_alice.encrypt(b"from alice"))
    bob_carol, text_carol = bob.inbound_session(carol.identity_key, from_carol.encrypt(b"from carol"))
    assert (text_alice, text_carol) == (b"from alice", b"from carol")
    assert bob_alice.session_id != bob_carol.session_id


def test_session__fallback_pre_key_message_can_start_a_second_session() -> None:
    """Recorded behaviour: a pre-key message made with the (reusable) fallback key is accepted
    again, so Olm does not stop its replay; the message-id replay cache above it must
    (docs/e2ee.md, "Messages")."""
    alice, bob = OlmAccount.create(), OlmAccount.create()
    fallback = bob.generate_fallback_key()
    prekey = alice.outbound_session(bob.identity_key, fallback.key).encrypt(b"once")
    first, _ = bob.inbound_session(alice.identity_key, prekey)
    second, plaintext = bob.inbound_session(alice.identity_key, prekey)
    assert plaintext == b"once" and second.session_id == first.session_id


def test_session__inbound_refuses_a_normal_message_and_a_wrong_sender_key() -> None:
    alice, bob, alice_session, _ = pair()
    normal = alice_session.encrypt(b"normal")
    assert normal.message_type == MESSAGE_TYPE_NORMAL
    with pytest.raises(SessionSetupError):
        bob.inbound_session(alice.identity_key, normal)
    with pytest.raises(SessionSetupError):
        bob.inbound_session(alice.identity_key, OlmCiphertext(MESSAGE_TYPE_PRE_KEY, normal.body))

    carol = OlmAccount.create()
    prekey = alice.outbound_session(bob.identity_key, published_key(bob).key).encrypt(b"hi")
    with pytest.raises(SessionSetupError):
        bob.inbound_session(carol.identity_key, prekey)  # the message names Alice's key, not Carol's
    session, _ = bob.inbound_session(alice.identity_key, prekey)  # the key was not spent by the failure
    assert session.matches(prekey)


def test_session__matches_only_its_own_pre_key_messages() -> None:
    alice, bob = OlmAccount.create(), OlmAccount.create()
    first = alice.outbound_session(bob.identity_key, published_key(bob).key)
    other = alice.outbound_session(bob.identity_key, published_key(bob).key)
    prekey, other_prekey = first.encrypt(b"a"), other.encrypt(b"b")
    session, _ = bob.inbound_session(alice.identity_key, prekey)
    assert session.session_id == first.session_id
    assert session.matches(prekey) and session.matches(first.encrypt(b"again"))
    assert not session.matches(other_prekey)
    first.decrypt(session.encrypt(b"reply"))
    normal = first.encrypt(b"normal")
    assert not session.matches(normal)
    assert not session.matches(OlmCiphertext(MESSAGE_TYPE_PRE_KEY, b"\x03garbage"))
    assert not session.matches(OlmCiphertext(7, prekey.body))


# ------------------------------------------------------------------------------ 10: tamper


def test_tamper__every_flipped_bit_of_a_normal_message_fails() -> None:
    _, _, alice_session, bob_session = pair()
    message = alice_session.encrypt(b"short")
    assert message.message_type == MESSAGE_TYPE_NORMAL
    for position in range(len(message.body)):
        for bit in range(8):
            with pytest.raises(DecryptionError):
                bob_session.decrypt(flipped(message, position, 1 << bit))
    # None of the failures damaged the session: the genuine message still opens.
    assert bob_session.decrypt(message) == b"short"


def test_tamper__every_flipped_bit_of_a_pre_key_message_fails() -> None:
    alice, bob = OlmAccount.create(), OlmAccount.create()
    prekey = alice.outbound_session(bob.identity_key, published_key(bob).key).encrypt(b"short")
    assert prekey.message_type == MESSAGE_TYPE_PRE_KEY
    for position in range(len(prekey.body)):
        for bit in range(8):
            with pytest.raises(SessionSetupError):
                bob.inbound_session(alice.identity_key, flipped(prekey, position, 1 << bit))
    _, plaintext = bob.inbound_session(alice.identity_key, prekey)
    assert plaintext == b"short"


def test_tamper__refuses_another_spelling_of_the_same_message() -> None:
    """vodozemac alone opens these to the original plaintext (it MACs its re-encoding, and
    X25519 ignores a key's top bit); the wrapper refuses them so each message has one spelling."""
    _, _, alice_session, bob_session = pair()
    normal = alice_session.encrypt(b"index zero of a new chain")
    # Byte 35 is the chain-index tag (field 2, varint); as field 3 it is skipped and the
    # index defaults to the same 0.
    assert normal.body[35] == 0x10 and normal.body[36] == 0x00
    for other_field in (0x18, 0x30, 0x50):
        respelled = normal.body[:35] + bytes([other_field]) + normal.body[36:]
        with pytest.raises(DecryptionError):
            bob_session.decrypt(OlmCiphertext(MESSAGE_TYPE_NORMAL, respelled))
    assert bob_session.decrypt(normal) == b"index zero of a new chain"

    alice, bob = OlmAccount.create(), OlmAccount.create()
    prekey = alice.outbound_session(bob.identity_key, published_key(bob).key).encrypt(b"hi")
    for last_byte_of_key in (34, 68, 102):  # one-time key, base key, identity key
        with pytest.raises(SessionSetupError):
            bob.inbound_session(alice.identity_key, flipped(prekey, last_byte_of_key, 0x80))
    session, _ = bob.inbound_session(alice.identity_key, prekey)
    assert not session.matches(flipped(prekey, 68, 0x80))


@settings(max_examples=60, deadline=None)
@given(
    body=st.binary(max_size=300),
    message_type=st.one_of(st.sampled_from([0, 1]), st.integers(min_value=-(2**70), max_value=2**70)),
)
def test_tamper__garbage_is_only_ever_a_decryption_error(body: bytes, message_type: int) -> None:
    _, _, _, bob_session = pair()
    with pytest.raises(DecryptionError):
        bob_session.decrypt(OlmCiphertext(message_type, body))


@settings(max_examples=40, deadline=None)
@given(plaintext=st.binary(min_size=1, max_size=64), data=st.data())
def test_tamper__any_flipped_bit_of_any_message_fails(plaintext: bytes, data: st.DataObject) -> None:
    _, _, alice_session, bob_session = pair()
    message = alice_session.encrypt(plaintext)
    position = data.draw(st.integers(min_value=0, max_value=len(message.body) - 1))
    mask = 1 << data.draw(st.integers(min_value=0, max_value=7))
    with pytest.raises(DecryptionError):
        bob_session.decrypt(flipped(message, position, mask))
    truncated = OlmCiphertext(message.message_type, message.body[:position])
    with pytest.raises(DecryptionError):
        bob_session.decrypt(truncated)
    assert bob_session.decrypt(message) == plaintext


# ------------------------------------------------------------------------------ 11: replay


def test_replay__a_normal_message_opens_once() -> None:
    _, _, alice_session, bob_session = pair()
    message = alice_session.encrypt(b"once")
    assert bob_session.decrypt(message) == b"once"
    with pytest.raises(DecryptionError):
        bob_session.decrypt(message)


def test_replay__a_pre_key_message_opens_once_in_its_session() -> None:
    alice, bob = OlmAccount.create(), OlmAccount.create()
    alice_session = alice.outbound_session(bob.identity_key, published_key(bob).key)
    first, second = alice_session.encrypt(b"one"), alice_session.encrypt(b"two")
    bob_session, _ = bob.inbound_session(alice.identity_key, first)
    assert bob_session.decrypt(second) == b"two"
    for message in (first, second):
        with pytest.raises(DecryptionError):
            bob_session.decrypt(message)


# ------------------------------------------------------------------------- 12: out of order


def test_order__messages_within_the_skip_window_open_in_any_order() -> None:
    _, _, alice_session, bob_session = pair()
    messages = [alice_session.encrypt(f"message {n}".encode()) for n in range(6)]
    for n in (5, 2, 0, 4, 1, 3):
        assert bob_session.decrypt(messages[n]) == f"message {n}".encode()


def test_order__out_of_order_across_a_ratchet_step() -> None:
    _, _, alice_session, bob_session = pair()
    late = alice_session.encrypt(b"sent before the round trip")
    early = alice_session.encrypt(b"also before")
    assert bob_session.decrypt(early) == b"also before"
    assert alice_session.decrypt(bob_session.encrypt(b"reply")) == b"reply"
    after = alice_session.encrypt(b"after the round trip")
    assert bob_session.decrypt(after) == b"after the round trip"
    assert bob_session.decrypt(late) == b"sent before the round trip"


def test_order__beyond_the_skip_window_is_a_decryption_error_not_a_crash() -> None:
    # vodozemac keeps 40 skipped message keys; older ones are dropped.
    _, _, alice_session, bob_session = pair()
    messages = [alice_session.encrypt(f"{n}".encode()) for n in range(60)]
    assert bob_session.decrypt(messages[-1]) == b"59"
    with pytest.raises(DecryptionError):
        bob_session.decrypt(messages[0])
    assert bob_session.decrypt(messages[30]) == b"30"


# ---------------------------------------------------------------------- 14: forward secrecy


def test_forward_secrecy__a_persisted_session_cannot_reopen_a_read_message() -> None:
    _, _, alice_session, bob_session = pair()
    messages = [alice_session.encrypt(f"secret {n}".encode()) for n in range(3)]
    before = bob_session.pickle(PICKLE_KEY)
    for n, message in enumerate(messages):
        assert bob_session.decrypt(message) == f"secret {n}".encode()
    after = OlmSession.from_pickle(bob_session.pickle(PICKLE_KEY), PICKLE_KEY)
    for message in messages:
        with pytest.raises(DecryptionError):
            after.decrypt(message)
    # The state from before reading could (so the check above is about the deleted keys).
    assert OlmSession.from_pickle(before, PICKLE_KEY).decrypt(messages[1]) == b"secret 1"


# ------------------------------------------------------------ 15: post-compromise security


def test_post_compromise__a_stolen_pickle_is_locked_out_after_one_round_trip() -> None:
    _, _, alice_session, bob_session = pair()
    stolen = bob_session.pickle(PICKLE_KEY)

    # Before the round trip the copy reads what Alice sends: the compromise is real.
    before = alice_session.encrypt(b"before healing")
    assert OlmSession.from_pickle(stolen, PICKLE_KEY).decrypt(before) == b"before healing"
    assert bob_session.decrypt(before) == b"before healing"

    # Bob replies, Alice receives (a fresh DH ratchet step on both sides), then Alice sends.
    assert alice_session.decrypt(bob_session.encrypt(b"reply")) == b"reply"
    after = alice_session.encrypt(b"after healing")
    with pytest.raises(DecryptionError):
        OlmSession.from_pickle(stolen, PICKLE_KEY).decrypt(after)
    assert bob_session.decrypt(after) == b"after healing"


# -------------------------------------------------------------- 16: non-contributory keys


def test_non_contributory__the_points_are_low_order() -> None:
    scalar = bytes(range(1, 33))
    for point in LOW_ORDER_POINTS:
        with pytest.raises(nacl.exceptions.RuntimeError):
            nacl.bindings.crypto_scalarmult(scalar, bytes.fromhex(point))


@pytest.mark.parametrize("bad_key", low_order_keys(), ids=LOW_ORDER_POINTS)
def test_non_contributory__outbound_refuses_low_order_identity_or_one_time_key(bad_key: str) -> None:
    alice, bob = OlmAccount.create(), OlmAccount.create()
    good_otk = published_key(bob).key
    with pytest.raises(SessionSetupError):
        alice.outbound_session(bad_key, good_otk)
    with pytest.raises(SessionSetupError):
        alice.outbound_session(bob.identity_key, bad_key)


@pytest.mark.parametrize("bad_key", low_order_keys(), ids=LOW_ORDER_POINTS)
def test_non_contributory__inbound_refuses_a_low_order_base_or_identity_key(bad_key: str) -> None:
    alice, bob = OlmAccount.create(), OlmAccount.create()
    prekey = alice.outbound_session(bob.identity_key, published_key(bob).key).encrypt(b"hi")
    raw = b64decode(bad_key, field="key", size=32)
    with pytest.raises(SessionSetupError):
        bob.inbound_session(alice.identity_key, replace_pre_key_field(prekey, 0x12, raw))
    with pytest.raises(SessionSetupError):
        bob.inbound_session(bad_key, replace_pre_key_field(prekey, 0x1A, raw))
    _, plaintext = bob.inbound_session(alice.identity_key, prekey)  # the genuine one still works
    assert plaintext == b"hi"


@pytest.mark.parametrize(
    "bad_key",
    ["", "AAAA", "not base64!", b64encode(bytes(31)), b64encode(bytes(33)), b64encode(b"\x09" + bytes(31)) + "=="],
)
def test_session_setup__refuses_malformed_keys(bad_key: str) -> None:
    alice, bob = OlmAccount.create(), OlmAccount.create()
    with pytest.raises(SessionSetupError):
        alice.outbound_session(bad_key, published_key(bob).key)
    with pytest.raises(SessionSetupError):
        alice.outbound_session(bob.identity_key, bad_key)
    with pytest.raises(SessionSetupError):
        SasSession.create().establish(bad_key)


def test_session_setup__refuses_non_canonical_key_spellings() -> None:
    alice, bob = OlmAccount.create(), OlmAccount.create()
    otk = published_key(bob).key
    raw_otk, raw_identity = b64decode(otk, field="k", size=32), b64decode(bob.identity_key, field="k", size=32)
    top_bit_otk = b64encode(raw_otk[:31] + bytes([raw_otk[31] | 0x80]))
    top_bit_identity = b64encode(raw_identity[:31] + bytes([raw_identity[31] | 0x80]))
    base_point_plus_p = b64encode((2**255 - 19 + 9).to_bytes(32, "little"))  # 9 spelled as p + 9
    with pytest.raises(SessionSetupError):
        alice.outbound_session(bob.identity_key, top_bit_otk)
    with pytest.raises(SessionSetupError):
        alice.outbound_session(top_bit_identity, otk)
    with pytest.raises(SessionSetupError):
        alice.outbound_session(bob.identity_key, base_point_plus_p)
    with pytest.raises(SessionSetupError):
        SasSession.create().establish(top_bit_otk)
    assert alice.outbound_session(bob.identity_key, otk).session_id  # the canonical spelling works


def test_session_setup__accepts_padded_base64_keys() -> None:
    alice, bob = OlmAccount.create(), OlmAccount.create()
    otk = published_key(bob).key
    session = alice.outbound_session(bob.identity_key + "=", otk + "=")
    _, plaintext = bob.inbound_session(alice.identity_key + "=", session.encrypt(b"padded"))
    assert plaintext == b"padded"


# --------------------------------------------------------------------------- 17: pickles


def test_pickle__account_and_session_round_trip() -> None:
    alice, bob, alice_session, bob_session = pair()
    restored_bob = OlmAccount.from_pickle(bob.pickle(PICKLE_KEY), PICKLE_KEY)
    assert (restored_bob.identity_key, restored_bob.fingerprint_key) == (bob.identity_key, bob.fingerprint_key)
    assert verify_ed25519(bob.fingerprint_key, b"m", restored_bob.sign(b"m")) is None

    restored_session = OlmSession.from_pickle(bob_session.pickle(PICKLE_KEY), PICKLE_KEY)
    assert restored_session.session_id == bob_session.session_id
    assert restored_session.decrypt(alice_session.encrypt(b"after restore")) == b"after restore"
    assert alice_session.decrypt(restored_session.encrypt(b"and back")) == b"and back"
    # The pickle is encrypted: not even the public keys show.
    assert bob.identity_key not in bob.pickle(PICKLE_KEY)
    assert alice.identity_key not in alice.pickle(PICKLE_KEY)


def test_pickle__wrong_key_tampered_or_garbage_is_a_decryption_error() -> None:
    _, bob, _, bob_session = pair()
    wrong = bytes(32)
    for restore, pickled in (
        (OlmAccount.from_pickle, bob.pickle(PICKLE_KEY)),
        (OlmSession.from_pickle, bob_session.pickle(PICKLE_KEY)),
    ):
        with pytest.raises(DecryptionError, match="pickle key does not open this state"):
            restore(pickled, wrong)
        tampered = pickled[:40] + ("A" if pickled[40] != "A" else "B") + pickled[41:]
        with pytest.raises(DecryptionError):
            restore(tampered, PICKLE_KEY)
        for garbage in ("", "not a pickle", pickled[:-10]):
            with pytest.raises(DecryptionError):
                restore(garbage, PICKLE_KEY)


@pytest.mark.parametrize("key", [b"", bytes(31), bytes(33), "k" * 32])
def test_pickle__key_must_be_exactly_32_bytes(key: Any) -> None:
    _, bob, _, bob_session = pair()
    for action in (
        lambda: bob.pickle(key),
        lambda: bob_session.pickle(key),
        lambda: OlmAccount.from_pickle(bob.pickle(PICKLE_KEY), key),
        lambda: OlmSession.from_pickle(bob_session.pickle(PICKLE_KEY), key),
    ):
        with pytest.raises(ValueError, match="32 bytes"):
            action()


# ------------------------------------------------------------------------------- 20: SAS


INFO = "HEARTHSIDE_SAS|alice|K7QX|bob|P2ZM"


def test_sas__both_sides_see_the_same_emoji_and_decimals() -> None:
    alice, bob = SasSession.create(), SasSession.create()
    alice_sas, bob_sas = alice.establish(bob.public_key), bob.establish(alice.public_key)
    emoji = alice_sas.emoji(INFO)
    assert emoji == bob_sas.emoji(INFO)
    assert len(emoji) == 7 and all(pair_ in SAS_EMOJI for pair_ in emoji)
    decimals = alice_sas.decimals(INFO)
    assert decimals == bob_sas.decimals(INFO)
    assert all(1000 <= number <= 9191 for number in decimals)
    assert alice_sas.emoji(INFO + "|other") != emoji  # info binds the strings


def test_sas__mac_verifies_on_the_other_side() -> None:
    alice, bob = SasSession.create(), SasSession.create()
    alice_sas, bob_sas = alice.establish(bob.public_key), bob.establish(alice.public_key)
    key = OlmAccount.create().fingerprint_key
    mac = alice_sas.calculate_mac(key, INFO + "|ed25519:K7QX")
    assert bob_sas.verify_mac(key, INFO + "|ed25519:K7QX", mac) is None
    for bad in (
        (OlmAccount.create().fingerprint_key, INFO + "|ed25519:K7QX", mac),  # another key
        (key, INFO + "|ed25519:XXXX", mac),  # another info
        (key, INFO + "|ed25519:K7QX", mac[:-2] + ("AA" if mac[-2:] != "AA" else "BB")),  # altered MAC
        (key, INFO + "|ed25519:K7QX", "not base64!"),
        (key, INFO + "|ed25519:K7QX", ""),
    ):
        with pytest.raises(VerificationError):
            bob_sas.verify_mac(*bad)


def test_sas__a_man_in_the_middle_is_seen() -> None:
    alice, bob = SasSession.create(), SasSession.create()
    mallory_to_alice, mallory_to_bob = SasSession.create(), SasSession.create()
    # Mallory replaces each side's public key with one of her own.
    alice_sas = alice.establish(mallory_to_alice.public_key)
    bob_sas = bob.establish(mallory_to_bob.public_key)
    mallory_alice_side = mallory_to_alice.establish(alice.public_key)
    mallory_bob_side = mallory_to_bob.establish(bob.public_key)
    # Mallory shares a secret with each side, but the two sides' strings differ.
    assert mallory_alice_side.emoji(INFO) == alice_sas.emoji(INFO)
    assert alice_sas.emoji(INFO) != bob_sas.emoji(INFO)
    assert alice_sas.decimals(INFO) != bob_sas.decimals(INFO)
    # And a MAC sent across the substitution does not verify.
    key = OlmAccount.create().fingerprint_key
    with pytest.raises(VerificationError):
        bob_sas.verify_mac(key, INFO, alice_sas.calculate_mac(key, INFO))
    with pytest.raises(VerificationError):
        alice_sas.verify_mac(key, INFO, bob_sas.calculate_mac(key, INFO))
    assert mallory_bob_side.emoji(INFO) == bob_sas.emoji(INFO)


def test_sas__refuses_a_low_order_key_and_a_second_use() -> None:
    for bad_key in low_order_keys():
        with pytest.raises(SessionSetupError):
            SasSession.create().establish(bad_key)
    sas = SasSession.create()
    sas.establish(SasSession.create().public_key)
    with pytest.raises(SessionSetupError):
        sas.establish(SasSession.create().public_key)


def test_sas__emoji_table_is_the_matrix_specification_table() -> None:
    spec = json.loads((VECTORS / "sas-emoji.json").read_text(encoding="utf-8"))
    assert [(entry["emoji"], entry["description"]) for entry in spec] == list(SAS_EMOJI)
    assert [entry["number"] for entry in spec] == list(range(64))


# ------------------------------------------------------------------------- safety numbers


def test_safety_number__reproduces_libsignal_vector() -> None:
    vector = json.loads((VECTORS / "libsignal-fingerprint.json").read_text(encoding="utf-8"))
    alice = _fingerprint(bytes.fromhex(vector["alice_identity"]), vector["alice_stable_id"].encode())
    bob = _fingerprint(bytes.fromhex(vector["bob_identity"]), vector["bob_stable_id"].encode())
    assert "".join(sorted((_digits(alice), _digits(bob)))) == vector["displayable"]
    scannable = bytes.fromhex(vector["alice_scannable_v1"])
    assert scannable[6:38] == alice[:32] and scannable[42:74] == bob[:32]


def test_safety_number__same_from_both_sides_and_well_formed() -> None:
    alice_key, bob_key = OlmAccount.create().fingerprint_key, OlmAccount.create().fingerprint_key
    number = safety_number(ALICE, alice_key, BOB, bob_key)
    assert number == safety_number(BOB, bob_key, ALICE, alice_key)
    assert re.fullmatch(r"[0-9]{5}( [0-9]{5}){11}", number)


def test_safety_number__changes_when_either_key_or_actor_changes() -> None:
    alice_key, bob_key, mallory_key = (OlmAccount.create().fingerprint_key for _ in range(3))
    number = safety_number(ALICE, alice_key, BOB, bob_key)
    assert safety_number(ALICE, mallory_key, BOB, bob_key) != number
    assert safety_number(ALICE, alice_key, BOB, mallory_key) != number
    assert safety_number(ALICE, alice_key, "https://b.example/users/bobby", bob_key) != number
    # Each half is one party's: substituting Bob's key leaves Alice's half in place.
    halves = set(number.replace(" ", "")[i : i + 30] for i in (0, 30))
    substituted = safety_number(ALICE, alice_key, BOB, mallory_key).replace(" ", "")
    assert len(halves & {substituted[:30], substituted[30:]}) == 1


@pytest.mark.parametrize("bad_key", ["", "AAAA", b64encode(bytes(31)), b64encode(bytes(33)), "not base64!"])
def test_safety_number__refuses_malformed_master_keys(bad_key: str) -> None:
    good = OlmAccount.create().fingerprint_key
    with pytest.raises(KeyFormatError):
        safety_number(ALICE, bad_key, BOB, good)
    with pytest.raises(KeyFormatError):
        safety_number(ALICE, good, BOB, bad_key)
    with pytest.raises(KeyFormatError):
        short_fingerprint(bad_key)


def test_safety_number__refuses_an_empty_actor() -> None:
    key = OlmAccount.create().fingerprint_key
    with pytest.raises(ValueError, match="actor"):
        safety_number("", key, BOB, key)


def test_short_fingerprint__eight_groups_of_sha256_hex() -> None:
    key = b64encode(bytes(range(32)))
    # SHA-256 of 00 01 .. 1f
    assert short_fingerprint(key) == "630d cd29 66c4 3366 9112 5448 bbb2 5b4f"
    assert re.fullmatch(r"[0-9a-f]{4}( [0-9a-f]{4}){7}", short_fingerprint(OlmAccount.create().fingerprint_key))
