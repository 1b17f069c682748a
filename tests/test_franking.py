"""Message franking: the sender's tag and the servers' stamps (crypto/franking.py).

The expected values are recomputed with pyca/cryptography's HMAC over byte strings laid out by
hand from docs/e2ee.md "Franking", so the tests check the documented layout, not our own code
against itself.
"""

from __future__ import annotations

import struct
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto.encoding import b64decode, b64encode
from crypto.errors import FrankingError
from crypto.franking import (
    StampKey,
    check_franking_tag,
    franking_tag,
    new_franking_key,
    stamp,
    verify_stamp,
)

MESSAGE = b'{"body":{"content":"hello","type":"Note"},"id":"..."}'
ALICE = "https://a.example/users/alice"
BOB = "https://b.example/users/bob"
OBJECT = "https://a.example/e2ee/messages/123"
AT = datetime(2026, 11, 21, 10, 0, 0, tzinfo=UTC)


def reference_hmac(key: bytes, data: bytes) -> bytes:
    mac = crypto_hmac.HMAC(key, hashes.SHA256())
    mac.update(data)
    return mac.finalize()


def framed(*parts: bytes) -> bytes:
    return b"".join(struct.pack(">I", len(part)) + part for part in parts)


@pytest.fixture
def key() -> StampKey:
    return StampKey(key_id="2026-11", secret=bytes(range(32)))


@pytest.fixture
def tag() -> bytes:
    return franking_tag(bytes(32), MESSAGE)


def make_stamp(key: StampKey, tag: bytes) -> str:
    return stamp(key, tag=tag, sender=ALICE, recipient=BOB, object_id=OBJECT, at=AT)


# ----------------------------------------------------------------------------- tags


def test_new_franking_key__is_32_fresh_random_bytes() -> None:
    keys = {new_franking_key() for _ in range(16)}
    assert len(keys) == 16
    assert all(len(key) == 32 for key in keys)


def test_franking_tag__is_hmac_sha256_of_the_message() -> None:
    key = bytes(range(32, 64))
    assert franking_tag(key, MESSAGE) == reference_hmac(key, MESSAGE)
    check_franking_tag(key, MESSAGE, reference_hmac(key, MESSAGE))


@settings(max_examples=300, deadline=None)
@given(key=st.binary(min_size=32, max_size=32), message=st.binary(max_size=5000))
def test_franking_tag__equals_pyca_hmac_sha256_on_any_key_and_message(key: bytes, message: bytes) -> None:
    """franking_tag builds HMAC from SHA-256 by RFC 2104 (for speed); it must be HMAC exactly:
    empty and block-sized messages, keys with every byte value."""
    assert franking_tag(key, message) == reference_hmac(key, message)


@pytest.mark.parametrize("size", [0, 1, 55, 56, 63, 64, 65, 119, 120, 128, 1024, 65536])
def test_franking_tag__equals_pyca_hmac_sha256_at_block_boundaries(size: int) -> None:
    for key in (bytes(32), b"\xff" * 32, bytes(range(32)), new_franking_key()):
        message = bytes((i * 7) % 256 for i in range(size))
        assert franking_tag(key, message) == reference_hmac(key, message)


def test_check_franking_tag__rejects_altered_message() -> None:
    key = new_franking_key()
    tag = franking_tag(key, MESSAGE)
    with pytest.raises(FrankingError):
        check_franking_tag(key, MESSAGE.replace(b"hello", b"hellO"), tag)


def test_check_franking_tag__rejects_wrong_key() -> None:
    tag = franking_tag(new_franking_key(), MESSAGE)
    with pytest.raises(FrankingError):
        check_franking_tag(new_franking_key(), MESSAGE, tag)


@pytest.mark.parametrize("bad", [b"", bytes(31), bytes(33)])
def test_check_franking_tag__rejects_keys_that_are_not_32_bytes(bad: bytes) -> None:
    tag = reference_hmac(bad or b"\0", MESSAGE)
    with pytest.raises(FrankingError, match="32 bytes"):
        check_franking_tag(bad, MESSAGE, tag)
    with pytest.raises(ValueError):
        franking_tag(bad, MESSAGE)


def test_check_franking_tag__rejects_truncated_tag() -> None:
    key = new_franking_key()
    with pytest.raises(FrankingError):
        check_franking_tag(key, MESSAGE, franking_tag(key, MESSAGE)[:16])


# ----------------------------------------------------------------------------- stamps


def test_stamp__is_key_id_and_length_prefixed_hmac(key: StampKey, tag: bytes) -> None:
    expected = reference_hmac(
        key.secret, framed(tag, ALICE.encode(), BOB.encode(), OBJECT.encode(), b"2026-11-21T10:00:00Z")
    )
    assert make_stamp(key, tag) == "2026-11." + b64encode(expected)


def test_verify_stamp__accepts_authentic_stamp(key: StampKey, tag: bytes) -> None:
    verify_stamp(
        {key.key_id: key.secret}, make_stamp(key, tag), tag=tag, sender=ALICE, recipient=BOB, object_id=OBJECT, at=AT
    )


def test_verify_stamp__time_has_second_precision(key: StampKey, tag: bytes) -> None:
    made = stamp(key, tag=tag, sender=ALICE, recipient=BOB, object_id=OBJECT, at=AT + timedelta(microseconds=900))
    verify_stamp({key.key_id: key.secret}, made, tag=tag, sender=ALICE, recipient=BOB, object_id=OBJECT, at=AT)


@pytest.mark.parametrize(
    "change",
    [
        {"tag": franking_tag(bytes(32), MESSAGE + b" ")},
        {"sender": "https://a.example/users/mallory"},
        {"recipient": "https://b.example/users/carol"},
        {"object_id": "https://a.example/e2ee/messages/124"},
        {"at": AT + timedelta(seconds=1)},
        {"sender": BOB, "recipient": ALICE},
    ],
)
def test_verify_stamp__rejects_altered_inputs(key: StampKey, tag: bytes, change: dict[str, object]) -> None:
    inputs: dict[str, object] = {"tag": tag, "sender": ALICE, "recipient": BOB, "object_id": OBJECT, "at": AT}
    made = make_stamp(key, tag)
    with pytest.raises(FrankingError, match="does not match"):
        verify_stamp({key.key_id: key.secret}, made, **{**inputs, **change})  # type: ignore[arg-type]


def test_stamp__length_prefixes_keep_field_boundaries(key: StampKey, tag: bytes) -> None:
    one = stamp(key, tag=tag, sender="https://x/ab", recipient="c", object_id=OBJECT, at=AT)
    other = stamp(key, tag=tag, sender="https://x/a", recipient="bc", object_id=OBJECT, at=AT)
    assert one != other
    with pytest.raises(FrankingError):
        verify_stamp(
            {key.key_id: key.secret}, one, tag=tag, sender="https://x/a", recipient="bc", object_id=OBJECT, at=AT
        )


def test_verify_stamp__rejects_stamp_from_another_instance_with_the_same_key_id(key: StampKey, tag: bytes) -> None:
    theirs = StampKey(key_id=key.key_id, secret=bytes(range(1, 33)))
    with pytest.raises(FrankingError, match="does not match"):
        verify_stamp(
            {key.key_id: key.secret},
            make_stamp(theirs, tag),
            tag=tag,
            sender=ALICE,
            recipient=BOB,
            object_id=OBJECT,
            at=AT,
        )


def test_verify_stamp__rejects_unknown_key_id(key: StampKey, tag: bytes) -> None:
    other = StampKey.generate("2027-01")
    with pytest.raises(FrankingError, match="unknown key"):
        verify_stamp(
            {key.key_id: key.secret},
            make_stamp(other, tag),
            tag=tag,
            sender=ALICE,
            recipient=BOB,
            object_id=OBJECT,
            at=AT,
        )


def test_verify_stamp__old_keys_still_verify_after_rotation(key: StampKey, tag: bytes) -> None:
    old_stamp = make_stamp(key, tag)
    current = StampKey.generate("2027-01")
    keys = {current.key_id: current.secret, key.key_id: key.secret}
    verify_stamp(keys, old_stamp, tag=tag, sender=ALICE, recipient=BOB, object_id=OBJECT, at=AT)
    verify_stamp(keys, make_stamp(current, tag), tag=tag, sender=ALICE, recipient=BOB, object_id=OBJECT, at=AT)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda s: s.replace(".", ""),
        lambda s: s.replace(".", ".."),
        lambda s: s.split(".", 1)[1],
        lambda s: "." + s.split(".", 1)[1],
        lambda s: s + "A",
        lambda s: s[:-1],
        lambda s: s.replace("+", "-").replace("/", "_") if ("+" in s or "/" in s) else s + "!",
        lambda s: "2026 11." + s.split(".", 1)[1],
        lambda s: "k" * 200 + "." + s.split(".", 1)[1],
        lambda s: s + " ",
        lambda s: "",
    ],
)
def test_verify_stamp__rejects_malformed_stamps(key: StampKey, tag: bytes, mangle: object) -> None:
    bad = mangle(make_stamp(key, tag))  # type: ignore[operator]
    with pytest.raises(FrankingError):
        verify_stamp(
            {key.key_id: key.secret, "2026 11": key.secret},
            bad,
            tag=tag,
            sender=ALICE,
            recipient=BOB,
            object_id=OBJECT,
            at=AT,
        )


@pytest.mark.parametrize("bad", [None, 7, b"2026-11.AAAA"])
def test_verify_stamp__rejects_non_text_stamps(key: StampKey, tag: bytes, bad: object) -> None:
    with pytest.raises(FrankingError):
        verify_stamp(
            {key.key_id: key.secret},
            bad,
            tag=tag,
            sender=ALICE,
            recipient=BOB,  # type: ignore[arg-type]
            object_id=OBJECT,
            at=AT,
        )


def test_verify_stamp__rejects_tag_of_wrong_length(key: StampKey, tag: bytes) -> None:
    with pytest.raises(FrankingError):
        verify_stamp(
            {key.key_id: key.secret},
            make_stamp(key, tag),
            tag=tag[:31],
            sender=ALICE,
            recipient=BOB,
            object_id=OBJECT,
            at=AT,
        )
    with pytest.raises(ValueError):
        stamp(key, tag=tag[:31], sender=ALICE, recipient=BOB, object_id=OBJECT, at=AT)


def test_verify_stamp__rejects_naive_time_and_broken_text(key: StampKey, tag: bytes) -> None:
    made = make_stamp(key, tag)
    with pytest.raises(FrankingError):
        verify_stamp(
            {key.key_id: key.secret},
            made,
            tag=tag,
            sender=ALICE,
            recipient=BOB,
            object_id=OBJECT,
            at=AT.replace(tzinfo=None),
        )
    with pytest.raises(FrankingError):
        verify_stamp({key.key_id: key.secret}, made, tag=tag, sender="\ud800", recipient=BOB, object_id=OBJECT, at=AT)


def test_stamp_key__repr_hides_the_secret(key: StampKey) -> None:
    assert "2026-11" in repr(key)
    assert repr(key.secret) not in repr(key)
    assert key.secret.hex() not in repr(key)


@pytest.mark.parametrize(("key_id", "secret"), [("a.b", bytes(32)), ("", bytes(32)), ("ok", bytes(16))])
def test_stamp_key__rejects_bad_id_or_short_secret(key_id: str, secret: bytes) -> None:
    with pytest.raises(ValueError):
        StampKey(key_id=key_id, secret=secret)


def test_stamp__mac_is_32_bytes(key: StampKey, tag: bytes) -> None:
    key_id, _, mac = make_stamp(key, tag).partition(".")
    assert key_id == key.key_id
    assert len(b64decode(mac, field="stamp")) == 32
