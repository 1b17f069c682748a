"""The inner envelope of encrypted private messages, version 2 (crypto/envelope.py): the franked
message as exact JSON bytes and its strict reader, the binary frame, Padmé padding, the
unknown-key-share and sender checks, and the franking tag inside and outside.

Frames are written here by an independent builder (``frame``) that follows the layout in the
module note, so a test can forge exactly the frame it needs: a wrong byte, a wrong length, a
message with a tag that does (or does not) recompute.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

from crypto.encoding import b64encode
from crypto.envelope import (
    ENVELOPE_VERSION,
    MAX_CONTENT_CHARS,
    MAX_ENVELOPE_BYTES,
    MAX_MESSAGE_BYTES,
    MIN_PADDED,
    Envelope,
    Party,
    PlainMessage,
    decode_message,
    make_envelope,
    new_message,
    open_envelope,
    padded_length,
    seal_envelope,
)
from crypto.errors import EnvelopeError, FrankingError
from crypto.franking import franking_tag, new_franking_key

ALICE = "https://a.example/users/alice"
BOB = "https://b.example/users/bob"
CAROL = "https://c.example/users/carol"
NOW = datetime(2026, 11, 21, 10, 0, 0, tzinfo=UTC)
NOW_SECONDS = 1_795_255_200  # NOW as whole Unix seconds
LAST_DATETIME_SECOND = 253_402_300_799  # 9999-12-31T23:59:59Z, the last second datetime holds
OUR_ERRORS = (EnvelopeError, FrankingError)


def fingerprint() -> str:
    return b64encode(bytes(SigningKey.generate().verify_key))


ALICE_PHONE = Party(actor=ALICE, device="K7QX", ed25519=fingerprint())
ALICE_LAPTOP = Party(actor=ALICE, device="Q9RT", ed25519=fingerprint())
BOB_PHONE = Party(actor=BOB, device="P2ZM", ed25519=fingerprint())
CAROL_PHONE = Party(actor=CAROL, device="C4RL", ed25519=fingerprint())


def note(content: str = "hello Bob", *, sender: str = ALICE, recipient: str = BOB, **kwargs: Any) -> PlainMessage:
    return new_message(sender=sender, recipient=recipient, content=content, now=NOW, **kwargs)


def envelope(
    message: PlainMessage | None = None, *, sender: Party = ALICE_PHONE, recipient: Party = BOB_PHONE
) -> Envelope:
    return make_envelope(sender=sender, recipient=recipient, message=message or note(), franking_key=new_franking_key())


def open_as(plaintext: bytes, me: Party = BOB_PHONE, *, sender: Party = ALICE_PHONE, outer_tag: bytes) -> Envelope:
    return open_envelope(plaintext, me=me, sender_actor=sender.actor, sender_device=sender.device, outer_tag=outer_tag)


# ----------------------------------------------------------------------------- an independent frame writer


def short(text: str | bytes) -> bytes:
    data = text.encode("utf-8") if isinstance(text, str) else text
    return struct.pack(">H", len(data)) + data


def frame(
    *,
    sender: tuple[str | bytes, str | bytes, bytes],
    recipient: tuple[str | bytes, str | bytes, bytes],
    franking_key: bytes,
    tag: bytes,
    message: bytes,
    version: int = 2,
    message_length: int | None = None,
) -> bytes:
    """The unpadded frame of the module note, written field by field."""
    return (
        bytes([version])
        + short(sender[0])
        + short(sender[1])
        + sender[2]
        + short(recipient[0])
        + short(recipient[1])
        + recipient[2]
        + franking_key
        + tag
        + struct.pack(">I", len(message) if message_length is None else message_length)
        + message
    )


def pad(unpadded: bytes) -> bytes:
    return unpadded + bytes(padded_length(len(unpadded)) - len(unpadded))


def parts(party: Party) -> tuple[str, str, bytes]:
    return party.actor, party.device, party.key


def frame_of(env: Envelope, *, message: bytes | None = None, **changes: Any) -> bytes:
    """``env``'s frame (unpadded), with ``message`` bytes or other fields replaced."""
    fields: dict[str, Any] = {
        "sender": parts(env.sender),
        "recipient": parts(env.recipient),
        "franking_key": env.franking_key,
        "tag": env.franking_tag,
        "message": env.message.encoded if message is None else message,
    }
    return frame(**(fields | changes))


def signed_frame(message: bytes, *, sender: Party = ALICE_PHONE, recipient: Party = BOB_PHONE) -> tuple[bytes, bytes]:
    """A padded frame of ``message`` bytes with a tag that recomputes, and that tag."""
    key = new_franking_key()
    tag = franking_tag(key, message)
    plaintext = pad(frame(sender=parts(sender), recipient=parts(recipient), franking_key=key, tag=tag, message=message))
    return plaintext, tag


def message_doc(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(note(expires_in=timedelta(hours=1)).encoded)
    return doc | changes


def dumps(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def padme(size: int) -> int:
    """Padmé as the PURBs paper writes it (Nikitin et al., PETS 2019, Algorithm 1), with logs."""
    exponent = math.floor(math.log2(size))
    bits = math.floor(math.log2(exponent)) + 1
    last_bits = exponent - bits
    mask = (1 << last_bits) - 1
    return (size + mask) & ~mask


# ----------------------------------------------------------------------------- new_message


def test_new_message__writes_the_documented_json_bytes() -> None:
    message = note('héllo "Bob"', expires_in=timedelta(days=7), extra={"summary": "cw"})
    doc = json.loads(message.encoded)
    assert list(doc) == ["id", "from", "to", "created", "expires", "body"]
    assert doc["from"] == ALICE and doc["to"] == BOB
    assert doc["created"] == NOW_SECONDS
    assert doc["expires"] == NOW_SECONDS + 7 * 86400
    assert doc["body"] == {"type": "Note", "content": 'héllo "Bob"', "summary": "cw"}
    assert "héllo".encode() in message.encoded  # UTF-8, not \u escapes
    assert b": " not in message.encoded and b", " not in message.encoded
    assert (message.sender, message.recipient, message.content) == (ALICE, BOB, 'héllo "Bob"')
    assert (message.created, message.expires) == (NOW, NOW + timedelta(days=7))
    assert decode_message(message.encoded) == message
    assert note().id != note().id


def test_new_message__display_form_uses_rfc3339_times() -> None:
    message = note(expires_in=timedelta(minutes=5))
    doc = message.to_json()
    assert doc["created"] == "2026-11-21T10:00:00Z"
    assert doc["expires"] == "2026-11-21T10:05:00Z"
    assert doc["body"] == {"type": "Note", "content": "hello Bob"}


def test_new_message__without_expiry_writes_null() -> None:
    message = note()
    assert message.expires is None
    assert b'"expires":null' in message.encoded
    assert message.to_json()["expires"] is None


def test_new_message__drops_fractions_of_a_second() -> None:
    message = new_message(sender=ALICE, recipient=BOB, content="x", now=NOW + timedelta(microseconds=999_999))
    assert message.created == NOW
    assert json.loads(message.encoded)["created"] == NOW_SECONDS


def test_new_message__accepts_content_of_the_maximum_length() -> None:
    message = note("x" * MAX_CONTENT_CHARS)
    assert len(message.content) == MAX_CONTENT_CHARS
    env = envelope(message)
    assert open_as(seal_envelope(env), outer_tag=env.franking_tag).message == message


def test_plain_message__body_is_read_only_and_not_in_repr() -> None:
    message = note("a secret")
    with pytest.raises(TypeError):
        message.body["content"] = "changed"  # type: ignore[index]
    message.to_json()["body"]["content"] = "changed"
    assert message.content == "a secret"
    assert "a secret" not in repr(message)
    assert "a secret" not in repr(envelope(message))


@pytest.mark.parametrize(
    "content",
    ["", "x" * (MAX_CONTENT_CHARS + 1), "😀" * MAX_CONTENT_CHARS, "bad \ud800 surrogate", "\udc00", None],
)
def test_new_message__rejects_empty_too_long_or_unencodable_content(content: Any) -> None:
    with pytest.raises(EnvelopeError):
        note(content)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"extra": {"type": "Question"}},
        {"extra": {"content": "other"}},
        {"expires_in": timedelta(0)},
        {"expires_in": timedelta(seconds=-1)},
        {"extra": {"x": b"bytes"}},
        {"extra": {"x": float("nan")}},
        {"extra": {"x": float("inf")}},
        {"extra": {"x": 2**60}},
        {"extra": {"x": "\ud800"}},
        {"extra": {"\udfff": 1}},
        {"extra": {"x": {"a": [[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]}}},
        {"sender": "not an actor"},
        {"recipient": ""},
    ],
)
def test_new_message__rejects_malformed_parts(kwargs: dict[str, Any]) -> None:
    with pytest.raises(EnvelopeError):
        note(**kwargs)


@pytest.mark.parametrize("expires_in", [timedelta(milliseconds=500), timedelta(microseconds=1)])
def test_new_message__refuses_an_expiry_that_rounds_to_the_creation_second(expires_in: timedelta) -> None:
    with pytest.raises(EnvelopeError, match="expires"):
        note(expires_in=expires_in)


@settings(max_examples=150, deadline=None)
@given(
    content=st.text(min_size=1, max_size=40),
    now=st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)),
    expires_in=st.none() | st.timedeltas(min_value=timedelta(seconds=1), max_value=timedelta(days=36_500)),
    extra=st.dictionaries(st.text(max_size=8), st.none() | st.booleans() | st.integers() | st.floats() | st.text()),
)
def test_new_message__writes_only_what_decode_message_reads_back(
    content: str, now: datetime, expires_in: timedelta | None, extra: dict[str, Any]
) -> None:
    try:
        message = new_message(sender=ALICE, recipient=BOB, content=content, now=now, expires_in=expires_in, extra=extra)
    except EnvelopeError:
        return
    assert decode_message(message.encoded) == message
    assert dict(message.body) == {"type": "Note", "content": content, **extra}


# ----------------------------------------------------------------------------- decode_message


def test_decode_message__keeps_the_exact_bytes_without_a_canonical_form() -> None:
    doc = message_doc()
    spaced = json.dumps(dict(reversed(list(doc.items()))), indent=1, ensure_ascii=True).encode()
    message = decode_message(spaced)
    assert message.encoded == spaced
    assert (message.id, message.sender, message.content) == (doc["id"], ALICE, "hello Bob")
    # Two spellings of one message are two commitments: the tag is over the bytes.
    key = new_franking_key()
    assert franking_tag(key, spaced) != franking_tag(key, dumps(doc))


def test_decode_message__allows_other_body_types_and_extra_fields() -> None:
    body = {"type": "e2ee:Verification", "step": "start", "methods": ["sas"], "n": 1.5, "deep": [[{"a": None}]]}
    message = decode_message(dumps(message_doc(body=body)))
    assert message.content == ""
    assert message.body["methods"] == ["sas"]
    assert decode_message(dumps(message_doc(body={"type": "Ping"}))).body == {"type": "Ping"}


@pytest.mark.parametrize("seconds", [0, 1, NOW_SECONDS, LAST_DATETIME_SECOND])
def test_decode_message__accepts_whole_seconds_in_range(seconds: int) -> None:
    message = decode_message(dumps(message_doc(created=seconds, expires=None)))
    assert message.created == datetime.fromtimestamp(seconds, UTC)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"id": "x"}, "id"),
        ({"id": 7}, "id"),
        ({"id": None}, "id"),
        ({"id": "1b4e28ba-2fa1-11d2-883f-0016d3cca427"}, "id"),  # a UUID1
        ({"id": "1B4E28BA-2FA1-41D2-883F-0016D3CCA427"}, "id"),  # upper case
        ({"id": "1b4e28ba-2fa1-41d2-c83f-0016d3cca427"}, "id"),  # not the RFC 4122 variant
        ({"id": "1b4e28ba2fa141d2883f0016d3cca427"}, "id"),
        ({"id": "{1b4e28ba-2fa1-41d2-883f-0016d3cca427}"}, "id"),
        ({"id": "1b4e28ba-2fa1-41d2-883f-0016d3cca427\n"}, "id"),
        ({"from": ""}, "from"),
        ({"from": "https://a.example/users/al ice"}, "from"),
        ({"from": ["https://a.example/users/alice"]}, "from"),
        ({"to": None}, "to"),
        ({"to": "x" * 2049}, "to"),
        ({"created": "2026-11-21T10:00:00Z"}, "created"),
        ({"created": float(NOW_SECONDS)}, "created"),
        ({"created": True}, "created"),
        ({"created": False}, "created"),
        ({"created": None}, "created"),
        ({"created": -1}, "created"),
        ({"created": 2**40}, "created"),
        ({"created": 2**64}, "created"),
        ({"expires": "2026-11-21T11:00:00Z"}, "expires"),
        ({"expires": True}, "expires"),
        ({"expires": NOW_SECONDS + 0.5}, "expires"),
        ({"expires": NOW_SECONDS}, "expires"),  # not after created
        ({"expires": NOW_SECONDS - 1}, "expires"),
        ({"expires": 0}, "expires"),
        ({"body": "hello"}, "body"),
        ({"body": None}, "body"),
        ({"body": [{"type": "Note", "content": "x"}]}, "body"),
        ({"body": {"content": "x"}}, "body.type"),
        ({"body": {"type": ""}}, "body.type"),
        ({"body": {"type": 1}}, "body.type"),
        ({"body": {"type": "1Note"}}, "body.type"),
        ({"body": {"type": "Note Note"}}, "body.type"),
        ({"body": {"type": "Note\n"}}, "body.type"),
        ({"body": {"type": "N" * 65}}, "body.type"),
        ({"body": {"type": "Note"}}, "body.content"),
        ({"body": {"type": "Note", "content": ""}}, "body.content"),
        ({"body": {"type": "Note", "content": ["a"]}}, "body.content"),
        ({"body": {"type": "Note", "content": None}}, "body.content"),
        ({"body": {"type": "Note", "content": "x" * (MAX_CONTENT_CHARS + 1)}}, "body.content"),
        ({"body": {"type": "Ping", "content": ""}}, "body.content"),  # content is checked on any type
        ({"body": {"type": "Note", "content": "x", "n": 2**60}}, "body"),
        ({"body": {"type": "Note", "content": "x", "n": -(2**53)}}, "body"),
        ({"body": {"type": "Note", "content": "x", "x": {"a": [[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]}}}, "body"),
    ],
)
def test_decode_message__rejects_malformed_fields(changes: dict[str, Any], field: str) -> None:
    doc = message_doc(**changes)
    with pytest.raises(EnvelopeError, match=f"^{field}:"):
        decode_message(dumps(doc))


@pytest.mark.parametrize(
    "doc",
    [
        {k: v for k, v in message_doc().items() if k != "expires"},
        message_doc(extra=1),
        message_doc(Id="x"),
        [message_doc()],
        "message",
        None,
        {},
    ],
)
def test_decode_message__rejects_other_than_exactly_the_six_keys(doc: Any) -> None:
    with pytest.raises(EnvelopeError, match="exactly"):
        decode_message(dumps(doc))


def with_body(raw_body: bytes) -> bytes:
    """A valid message's bytes with its body object replaced by ``raw_body`` verbatim."""
    message = note()
    plain = b'{"type":"Note","content":"hello Bob"}'
    assert message.encoded.endswith(plain + b"}")
    return message.encoded[: -len(plain) - 1] + raw_body + b"}"


@pytest.mark.parametrize(
    "encoded",
    [
        # Duplicate keys, at the top and inside the body, the later one winning in most readers.
        note().encoded[:-1] + b',"to":"https://c.example/users/carol"}',
        b'{"from":"https://c.example/users/carol",' + note().encoded[1:],
        note().encoded[:-1] + b',"expires":null}',
        with_body(b'{"type":"Note","content":"hello Bob","content":"send money"}'),
        with_body(b'{"type":"Note","type":"Note","content":"hello Bob"}'),
        with_body(b'{"type":"Note","content":"x","a":{"b":[{"c":1,"c":2}]}}'),
        # Not UTF-8, or not JSON.
        with_body(b'{"type":"Note","content":"\xff"}'),
        with_body(b'{"type":"Note","content":"\xc3"}'),
        with_body(b'{"type":"Note","content":"\xed\xa0\x80"}'),  # a surrogate encoded in UTF-8
        "\ufeff".encode() + note().encoded,
        with_body(b'{"type":"Note","content":"x","n":NaN}'),
        with_body(b'{"type":"Note","content":"x","n":Infinity}'),
        with_body(b'{"type":"Note","content":"x","n":-Infinity}'),
        with_body(b'{"type":"Note","content":"x","n":1e400}'),
        with_body(b'{"type":"Note","content":"x","n":' + b"9" * 5000 + b"}"),
        with_body(b"{'type':'Note','content':'x'}"),
        note().encoded[:-1],
        note().encoded + b"}",
        note().encoded + b"\0",
        b"[" * 5000,
        b"",
        b"null",
    ],
)
def test_decode_message__rejects_bytes_that_are_not_strict_json(encoded: bytes) -> None:
    with pytest.raises(EnvelopeError):
        decode_message(encoded)


def test_decode_message__rejects_an_oversized_message() -> None:
    doc = message_doc(body={"type": "Ping", "filler": ""})
    doc["body"]["filler"] = "x" * (MAX_MESSAGE_BYTES - len(dumps(doc)) + 1)
    encoded = dumps(doc)
    assert len(encoded) == MAX_MESSAGE_BYTES + 1
    with pytest.raises(EnvelopeError, match=f"at most {MAX_MESSAGE_BYTES} bytes"):
        decode_message(encoded)
    assert decode_message(encoded.replace(b'"x', b'"', 1)).body["type"] == "Ping"


@pytest.mark.parametrize("encoded", [note().encoded.decode(), bytearray(note().encoded), None, 7])
def test_decode_message__rejects_what_is_not_bytes(encoded: Any) -> None:
    with pytest.raises(EnvelopeError):
        decode_message(encoded)


# Bugs found in crypto/envelope.py (reported; these pass once they are fixed).


@pytest.mark.parametrize("field", ["created", "expires"])
def test_decode_message__rejects_times_past_year_9999_with_envelope_error(field: str) -> None:
    doc = message_doc(created=0) | {field: LAST_DATETIME_SECOND + 1}
    with pytest.raises(EnvelopeError, match=field):
        decode_message(dumps(doc))


@pytest.mark.parametrize(
    "raw_body",
    [
        b'{"type":"Ping","n":1e400}',
        b'{"type":"Ping","n":1152921504606846976}',
        b'{"type":"Ping","n":' + b"[" * 20 + b"1" + b"]" * 20 + b"}",
    ],
)
def test_decode_message__checks_every_value_of_a_two_key_body(raw_body: bytes) -> None:
    with pytest.raises(EnvelopeError, match="body"):
        decode_message(with_body(raw_body))


@pytest.mark.parametrize(
    "raw_body",
    [
        b'{"type":"Note","content":"\\ud800"}',
        b'{"type":"Note","content":"x\\udfffy","summary":"cw"}',
        b'{"type":"Note","content":"x","summary":"\\ud83d"}',
        b'{"type":"Note","content":"x","\\udc00":1}',
    ],
)
def test_decode_message__rejects_escaped_lone_surrogates(raw_body: bytes) -> None:
    with pytest.raises(EnvelopeError, match="body"):
        decode_message(with_body(raw_body))


def test_decode_message__accepts_an_escaped_surrogate_pair() -> None:
    # The counterpart of the test above: a fix must not refuse ensure_ascii JSON of an emoji.
    assert decode_message(with_body(b'{"type":"Note","content":"\\ud83d\\ude00"}')).content == "😀"


# ----------------------------------------------------------------------------- Party


@pytest.mark.parametrize(
    "changes",
    [
        {"actor": ""},
        {"actor": "https://b.example/users/b ob"},
        {"actor": "https://b.example/users/bob\n"},
        {"actor": "x" * 2049},
        {"actor": None},
        {"device": "P2"},
        {"device": "P" * 65},
        {"device": "P2 ZM"},
        {"device": "P2ZM\n"},
        {"device": "P2ZM/"},
        {"device": 1234},
        {"ed25519": ""},
        {"ed25519": "short"},
        {"ed25519": b64encode(bytes(31))},
        {"ed25519": b64encode(bytes(33))},
        {"ed25519": b64encode(b"\xfb\xff" * 16).replace("+", "-").replace("/", "_")},  # URL-safe alphabet
        {"ed25519": " " + b64encode(bytes(32))},
        {"ed25519": bytes(32)},
        {"ed25519": None},
    ],
)
def test_party__rejects_bad_actor_device_or_key(changes: dict[str, Any]) -> None:
    fields = {"actor": BOB, "device": "P2ZM", "ed25519": BOB_PHONE.ed25519} | changes
    with pytest.raises(EnvelopeError):
        Party(**fields)


def test_party__decodes_its_key_and_compares_keys_as_bytes() -> None:
    raw = BOB_PHONE.key
    assert len(raw) == 32 and b64encode(raw) == BOB_PHONE.ed25519
    padded = Party(actor=BOB, device="P2ZM", ed25519=BOB_PHONE.ed25519 + "=")
    assert padded.key == raw
    assert padded.same(BOB_PHONE) and BOB_PHONE.same(padded)
    assert not BOB_PHONE.same(replace(BOB_PHONE, actor=CAROL))
    assert not BOB_PHONE.same(replace(BOB_PHONE, device="P2ZN"))
    assert not BOB_PHONE.same(replace(BOB_PHONE, ed25519=fingerprint()))


# ----------------------------------------------------------------------------- padding


@pytest.mark.parametrize(
    ("size", "padded"),
    [
        (0, 1024),
        (1, 1024),
        (1023, 1024),
        (1024, 1024),
        # 1025..2047: E = 10, S = 4, 6 low bits cleared -> multiples of 64.
        (1025, 1088),
        (1088, 1088),
        (1089, 1152),
        (2047, 2048),
        (2048, 2048),
        # 2048..4095: E = 11, S = 4, 7 bits -> multiples of 128.
        (2049, 2176),
        (4097, 4352),  # E = 12: multiples of 256
        (32769, 34816),  # E = 15, S = 4: multiples of 2048
        (63488, 63488),
        (63489, 65536),
        (65536, 65536),  # E = 16, S = 5: multiples of 2048, the largest envelope
    ],
)
def test_padded_length__known_values(size: int, padded: int) -> None:
    assert padded_length(size) == padded


@pytest.mark.parametrize("size", [65_537, 67_584, 100_000, 2**32])
def test_padded_length__refuses_more_than_the_largest_envelope(size: int) -> None:
    with pytest.raises(EnvelopeError, match=f"longer than {MAX_ENVELOPE_BYTES}"):
        padded_length(size)


def test_padded_length__refuses_a_negative_size() -> None:
    with pytest.raises(ValueError):
        padded_length(-1)


def test_padded_length__is_padme_above_1024_monotonic_and_at_most_12_percent() -> None:
    previous = MIN_PADDED
    for size in range(0, MAX_ENVELOPE_BYTES + 1):
        padded = padded_length(size)
        assert padded >= max(size, MIN_PADDED)
        assert padded >= previous
        assert padded_length(padded) == padded
        if size > MIN_PADDED:
            assert padded == padme(size)
            assert padded - size <= 0.12 * size
        previous = padded
    distinct = {padded_length(size) for size in range(0, MAX_ENVELOPE_BYTES + 1)}
    assert len(distinct) < 128  # what the length of any envelope leaks: under 7 bits


def test_seal_envelope__every_length_from_1_to_4096_is_the_padded_length_of_the_frame() -> None:
    env = envelope()
    seen, expected = set(), set()
    for size in range(1, 4097):
        content = "x" * size
        encoded = env.message.encoded.replace(b'"hello Bob"', json.dumps(content).encode())
        message = replace(env.message, body={"type": "Note", "content": content}, encoded=encoded)
        sealed = seal_envelope(replace(env, message=message))
        unpadded = frame_of(env, message=encoded)
        assert sealed == pad(unpadded)
        assert len(sealed) == padded_length(len(unpadded)) >= MIN_PADDED
        seen.add(len(sealed))
        expected.add(padded_length(len(unpadded)))
    assert seen == expected
    assert min(seen) == MIN_PADDED and len(seen) > 20


@pytest.mark.parametrize("content", ["é" * 5000, "😀" * 3000, "\u0001" * 2000, '"\\' * 2000, "字" * 19_000])
def test_seal_envelope__multibyte_and_escaped_text_is_padded_and_opens(content: str) -> None:
    env = envelope(note(content))
    sealed = seal_envelope(env)
    assert len(sealed) == padded_length(len(frame_of(env)))
    assert open_as(sealed, outer_tag=env.franking_tag).message.content == content


def test_seal_envelope__rejects_an_envelope_over_the_largest_padded_length() -> None:
    long_actor = "https://a.example/users/" + "😀" * 2000  # 8,000 bytes, a valid actor id
    sender = Party(actor=long_actor, device="K7QX", ed25519=fingerprint())
    recipient = Party(actor=long_actor, device="Q9RT", ed25519=fingerprint())
    message = note("字" * 17_000, sender=long_actor, recipient=BOB)
    assert len(message.encoded) <= MAX_MESSAGE_BYTES
    with pytest.raises(EnvelopeError, match=f"longer than {MAX_ENVELOPE_BYTES}"):
        seal_envelope(envelope(message, sender=sender, recipient=recipient))


# ----------------------------------------------------------------------------- sealing and opening


def test_envelope__round_trip() -> None:
    env = envelope(note(expires_in=timedelta(minutes=5)))
    plaintext = seal_envelope(env)
    opened = open_as(plaintext, outer_tag=env.franking_tag)
    assert opened == env
    assert opened.sender.same(ALICE_PHONE) and opened.recipient is BOB_PHONE
    assert opened.message.encoded == env.message.encoded
    assert opened.message.content == "hello Bob"
    assert opened.message.expires == NOW + timedelta(minutes=5)
    assert opened.franking_key == env.franking_key
    assert opened.franking_tag == franking_tag(env.franking_key, env.message.encoded)


def test_envelope__has_the_documented_frame() -> None:
    env = envelope()
    plaintext = seal_envelope(env)
    assert plaintext[0] == ENVELOPE_VERSION == 2
    assert plaintext == pad(frame_of(env))
    assert len(plaintext) == MIN_PADDED
    assert env.message.encoded in plaintext and b"hello Bob" in plaintext


def test_envelope__own_device_copy_opens_on_the_senders_other_device() -> None:
    env = envelope(recipient=ALICE_LAPTOP)
    opened = open_as(seal_envelope(env), ALICE_LAPTOP, outer_tag=env.franking_tag)
    assert opened.message.recipient == BOB


def test_open_envelope__compares_the_recipient_key_as_bytes() -> None:
    env = envelope()
    me = Party(actor=BOB, device="P2ZM", ed25519=BOB_PHONE.ed25519 + "=")
    assert open_as(seal_envelope(env), me, outer_tag=env.franking_tag).message == env.message


def test_make_envelope__rejects_a_franking_key_that_is_not_32_bytes() -> None:
    for key in (bytes(16), bytes(33), b"", "k" * 32):
        with pytest.raises(ValueError):
            make_envelope(sender=ALICE_PHONE, recipient=BOB_PHONE, message=note(), franking_key=key)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "me",
    [
        replace(BOB_PHONE, actor=CAROL),
        replace(BOB_PHONE, actor=BOB + "/"),
        replace(BOB_PHONE, device="P2ZN"),
        replace(BOB_PHONE, device="p2zm"),
        replace(BOB_PHONE, ed25519=fingerprint()),
        CAROL_PHONE,
        ALICE_LAPTOP,
    ],
)
def test_open_envelope__rejects_envelope_for_another_device_unknown_key_share(me: Party) -> None:
    env = envelope()
    with pytest.raises(EnvelopeError, match="not addressed to this device"):
        open_as(seal_envelope(env), me, outer_tag=env.franking_tag)


def test_open_envelope__rejects_reencrypted_message_for_a_third_party() -> None:
    # Bob decrypts Alice's envelope and re-encrypts it to Carol's device as if it were his.
    env = envelope()
    with pytest.raises(EnvelopeError, match="not addressed to this device"):
        open_envelope(
            seal_envelope(env), me=CAROL_PHONE, sender_actor=BOB, sender_device="P2ZM", outer_tag=env.franking_tag
        )


@pytest.mark.parametrize(
    ("sender_actor", "sender_device"),
    [(CAROL, "K7QX"), (ALICE, "Q9RT"), (ALICE.upper(), "K7QX"), (ALICE, "k7qx"), (ALICE + " ", "K7QX"), ("", "")],
)
def test_open_envelope__rejects_sender_that_disagrees_with_the_outer_envelope(
    sender_actor: str, sender_device: str
) -> None:
    env = envelope()
    with pytest.raises(EnvelopeError, match="sender disagrees"):
        open_envelope(
            seal_envelope(env),
            me=BOB_PHONE,
            sender_actor=sender_actor,
            sender_device=sender_device,
            outer_tag=env.franking_tag,
        )


def test_open_envelope__rejects_message_from_another_actor_than_the_sending_device() -> None:
    env = envelope(note(sender=CAROL))  # the tag recomputes: only the author is wrong
    with pytest.raises(EnvelopeError, match=r"^message\.from"):
        open_as(seal_envelope(env), outer_tag=env.franking_tag)


@pytest.mark.parametrize(("author", "addressee"), [(ALICE, CAROL), (ALICE, ALICE)])
def test_open_envelope__rejects_message_involving_neither_party(author: str, addressee: str) -> None:
    env = envelope(note(sender=author, recipient=addressee))
    with pytest.raises(EnvelopeError, match="neither"):
        open_as(seal_envelope(env), outer_tag=env.franking_tag)


def test_open_envelope__rejects_a_malformed_message_even_with_a_tag_that_recomputes() -> None:
    for encoded in (dumps(message_doc(id="x")), b"{}", note().encoded[:-1] + b',"to":"' + CAROL.encode() + b'"}'):
        plaintext, tag = signed_frame(encoded)
        with pytest.raises(EnvelopeError):
            open_as(plaintext, outer_tag=tag)


def test_open_envelope__rejects_a_sender_device_id_that_is_not_one() -> None:
    # The outer envelope and the frame agree on "K7", which no device id can be.
    key = new_franking_key()
    message = note().encoded
    tag = franking_tag(key, message)
    sender = (ALICE, "K7", ALICE_PHONE.key)
    plaintext = pad(frame(sender=sender, recipient=parts(BOB_PHONE), franking_key=key, tag=tag, message=message))
    with pytest.raises(EnvelopeError, match="device"):
        open_envelope(plaintext, me=BOB_PHONE, sender_actor=ALICE, sender_device="K7", outer_tag=tag)


OUTER_ENVELOPE = envelope()


@pytest.mark.parametrize(
    "outer",
    [
        franking_tag(OUTER_ENVELOPE.franking_key, b"another message"),
        franking_tag(new_franking_key(), OUTER_ENVELOPE.message.encoded),
        OUTER_ENVELOPE.franking_tag[:-1],
        OUTER_ENVELOPE.franking_tag + b"\0",
        bytes(32),
        b"",
        bytearray(OUTER_ENVELOPE.franking_tag),
        b64encode(OUTER_ENVELOPE.franking_tag),
        None,
    ],
)
def test_open_envelope__rejects_outer_tag_that_differs_from_the_inner_one(outer: Any) -> None:
    with pytest.raises(FrankingError, match="differs"):
        open_as(seal_envelope(OUTER_ENVELOPE), outer_tag=outer)


def test_open_envelope__rejects_a_flipped_message_byte_with_the_original_tag() -> None:
    env = envelope()
    unpadded = frame_of(env)
    start = len(unpadded) - len(env.message.encoded)
    for at in (start, start + 1, start + len(env.message.encoded) // 2, len(unpadded) - 2, len(unpadded) - 1):
        tampered = bytearray(pad(unpadded))
        tampered[at] ^= 0x01
        with pytest.raises(FrankingError, match="does not recompute"):
            open_as(bytes(tampered), outer_tag=env.franking_tag)


def test_open_envelope__rejects_tampered_text_or_expiry_with_the_original_tag() -> None:
    env = envelope(note(expires_in=timedelta(minutes=5)))
    original = env.message.encoded
    for forged in (
        original.replace(b"hello Bob", b"hello Bub"),
        original.replace(str(NOW_SECONDS + 300).encode(), str(NOW_SECONDS + 300 * 86400).encode()),
        original.replace(b'"expires":' + str(NOW_SECONDS + 300).encode(), b'"expires":null'),
        original.replace(b'"hello Bob"}', b'"hello Bob","summary":"cw"}'),
        original.replace(b'{"id"', b'{ "id"'),  # the same JSON, other bytes
    ):
        assert forged != original
        with pytest.raises(FrankingError, match="does not recompute"):
            open_as(pad(frame_of(env, message=forged)), outer_tag=env.franking_tag)


def test_open_envelope__rejects_tag_under_another_franking_key() -> None:
    env = envelope()
    plaintext = pad(frame_of(env, franking_key=new_franking_key()))
    with pytest.raises(FrankingError, match="does not recompute"):
        open_as(plaintext, outer_tag=env.franking_tag)


@pytest.mark.parametrize("version", [0, 1, 3, 0x7B, 0xFF])
def test_open_envelope__rejects_another_version_byte(version: int) -> None:
    env = envelope()
    plaintext = bytes([version]) + seal_envelope(env)[1:]
    with pytest.raises(EnvelopeError, match="not a version 2 envelope"):
        open_as(plaintext, outer_tag=env.franking_tag)


def test_open_envelope__rejects_a_version_1_json_envelope() -> None:
    old = json.dumps({"v": 1, "pad": "=" * 1000}).encode()
    with pytest.raises(EnvelopeError, match="version"):
        open_as(old, outer_tag=bytes(32))


@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_open_envelope__rejects_a_non_zero_padding_byte(where: str) -> None:
    env = envelope()
    end = len(frame_of(env))
    plaintext = bytearray(seal_envelope(env))
    at = {"first": end, "middle": (end + len(plaintext)) // 2, "last": len(plaintext) - 1}[where]
    for value in (1, 0x20, 0x3D, 0xFF):
        plaintext[at] = value
        with pytest.raises(EnvelopeError, match="padding"):
            open_as(bytes(plaintext), outer_tag=env.franking_tag)


@pytest.mark.parametrize(
    "change",
    [
        lambda p: p + b"\0",
        lambda p: p + b"\1",
        lambda p: p + bytes(1024),  # the next padded length, with too much padding for the frame
        lambda p: p + bytes(64),
        lambda p: p[:-1],
        lambda p: p[:-64],
    ],
)
def test_open_envelope__rejects_extra_or_missing_padding(change: Any) -> None:
    env = envelope()
    with pytest.raises(EnvelopeError, match="padding"):
        open_as(change(seal_envelope(env)), outer_tag=env.franking_tag)


def test_open_envelope__rejects_an_envelope_longer_than_its_padded_length() -> None:
    # 1,100 bytes of frame pad to 1,152; the same frame padded to 2,048 (a padded length,
    # and zeros to the end) still says too much.
    env = envelope(note("x" * 700))
    unpadded = frame_of(env)
    assert 1024 < len(unpadded) <= 2048
    with pytest.raises(EnvelopeError, match="padding"):
        open_as(unpadded + bytes(2048 - len(unpadded)), outer_tag=env.franking_tag)


def test_open_envelope__rejects_truncation_anywhere_with_envelope_error() -> None:
    env = envelope()
    sealed = seal_envelope(env)
    unpadded = frame_of(env)
    for cut in range(len(sealed)):
        with pytest.raises(EnvelopeError):
            open_as(sealed[:cut], outer_tag=env.franking_tag)
    for cut in range(len(unpadded)):
        # Cut inside the frame, then zero-padded again: the zeros now read as frame bytes.
        with pytest.raises(OUR_ERRORS):
            open_as(pad(unpadded[:cut]), outer_tag=env.franking_tag)


@pytest.mark.parametrize("length", [2**32 - 1, MAX_MESSAGE_BYTES + 1])
def test_open_envelope__rejects_a_message_length_over_the_limit(length: int) -> None:
    env = envelope()
    plaintext = pad(frame_of(env, message_length=length))
    with pytest.raises(EnvelopeError, match="too long"):
        open_as(plaintext, outer_tag=env.franking_tag)


@pytest.mark.parametrize("delta", [-1, 1, 500])
def test_open_envelope__rejects_a_message_length_that_is_off(delta: int) -> None:
    env = envelope()
    plaintext = pad(frame_of(env, message_length=len(env.message.encoded) + delta))
    with pytest.raises(OUR_ERRORS):
        open_as(plaintext, outer_tag=env.franking_tag)


@pytest.mark.parametrize("field", ["sender", "recipient"])
@pytest.mark.parametrize(("actor", "device"), [(b"\xff" + BOB.encode(), "P2ZM"), (BOB, b"P2\xc3M")])
def test_open_envelope__rejects_actor_or_device_text_that_is_not_utf8(
    field: str, actor: bytes | str, device: bytes | str
) -> None:
    env = envelope()
    plaintext = pad(frame_of(env, **{field: (actor, device, BOB_PHONE.key)}))
    with pytest.raises(EnvelopeError, match="not UTF-8"):
        open_as(plaintext, outer_tag=env.franking_tag)


@pytest.mark.parametrize("plaintext", [b"", b"\x02", bytes(1024), b"\x02" + bytes(1023), b"\x02\xff\xff" + bytes(1021)])
def test_open_envelope__rejects_short_or_empty_frames(plaintext: bytes) -> None:
    with pytest.raises(EnvelopeError):
        open_as(plaintext, outer_tag=bytes(32))


@pytest.mark.parametrize("plaintext", [bytearray(seal_envelope(envelope())), "text", None])
def test_open_envelope__rejects_what_is_not_bytes(plaintext: Any) -> None:
    with pytest.raises(EnvelopeError):
        open_as(plaintext, outer_tag=bytes(32))


# ----------------------------------------------------------------------------- fuzz

FUZZ_ENVELOPE = envelope(note(expires_in=timedelta(days=1)))
FUZZ_SEALED = seal_envelope(FUZZ_ENVELOPE)
FUZZ_FRAME_END = len(frame_of(FUZZ_ENVELOPE))
# Where the sender's Ed25519 key sits: open_envelope returns it for the caller to check against
# the device list, so an envelope with another key there may open (with that other key).
SENDER_KEY_AT = 1 + 2 + len(ALICE.encode()) + 2 + len(ALICE_PHONE.device)
SENDER_KEY = range(SENDER_KEY_AT, SENDER_KEY_AT + 32)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(
    data=st.binary(max_size=600)
    | st.binary(min_size=1023, max_size=1023).map(lambda b: b"\x02" + b)
    | st.binary(max_size=400).map(lambda b: b"\x02" + b + bytes(padded_length(len(b) + 1) - len(b) - 1))
)
def test_open_envelope__arbitrary_bytes_raise_only_our_errors(data: bytes) -> None:
    with pytest.raises(OUR_ERRORS):
        open_as(data, outer_tag=FUZZ_ENVELOPE.franking_tag)


@FUZZ
@given(data=st.data())
def test_open_envelope__mutated_envelopes_raise_only_our_errors(data: st.DataObject) -> None:
    mutated = bytearray(FUZZ_SEALED)
    # Mostly inside the frame, where the parsing happens; sometimes in the padding.
    at = data.draw(st.integers(0, FUZZ_FRAME_END - 1) | st.integers(0, len(mutated) - 1))
    edit = data.draw(st.sampled_from(["flip", "set", "truncate", "insert", "delete", "splice"]))
    if edit == "flip":
        mutated[at] ^= 1 << data.draw(st.integers(0, 7))
    elif edit == "set":
        mutated[at] = data.draw(st.integers(0, 255))
    elif edit == "truncate":
        del mutated[at:]
    elif edit == "insert":
        mutated[at:at] = data.draw(st.binary(min_size=1, max_size=8))
    elif edit == "delete":
        del mutated[at : at + data.draw(st.integers(1, 8))]
    else:
        mutated[at : at + 4] = data.draw(st.binary(max_size=8))
    if bytes(mutated) == FUZZ_SEALED:
        return
    try:
        opened = open_as(bytes(mutated), outer_tag=FUZZ_ENVELOPE.franking_tag)
    except OUR_ERRORS:
        return
    # Anything that still opens changed only the sender key, which the caller checks.
    assert len(mutated) == len(FUZZ_SEALED)
    assert [i for i in range(len(mutated)) if mutated[i] != FUZZ_SEALED[i]] == [
        i for i in SENDER_KEY if mutated[i] != FUZZ_SEALED[i]
    ]
    assert opened.message == FUZZ_ENVELOPE.message
    assert not opened.sender.same(FUZZ_ENVELOPE.sender)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=25,
)
# Every integer, including the years past 9999 that datetime cannot hold, and any JSON value.
TIME = st.integers(min_value=-(2**70), max_value=2**70) | JSON
MESSAGE_LIKE = st.fixed_dictionaries(
    {},
    optional={
        "id": st.uuids(version=4).map(str) | JSON,
        "from": st.sampled_from([ALICE, BOB]) | JSON,
        "to": st.sampled_from([ALICE, BOB]) | JSON,
        "created": TIME,
        "expires": TIME,
        "body": st.fixed_dictionaries({"type": st.sampled_from(["Note", "Ping"]) | JSON}, optional={"content": JSON})
        | JSON,
    },
)


@FUZZ
@given(data=st.binary(max_size=400))
def test_decode_message__arbitrary_bytes_raise_only_envelope_errors(data: bytes) -> None:
    with pytest.raises(EnvelopeError):
        decode_message(data)


@FUZZ
@given(doc=MESSAGE_LIKE | JSON)
def test_decode_message__arbitrary_json_raises_only_envelope_errors(doc: Any) -> None:
    try:
        encoded = json.dumps(doc).encode()
    except (ValueError, TypeError):
        return
    try:
        message = decode_message(encoded)
    except EnvelopeError:
        return
    assert message.encoded == encoded
    assert set(doc) == {"id", "from", "to", "created", "expires", "body"}
    assert message.created < (message.expires or datetime.max.replace(tzinfo=UTC))
