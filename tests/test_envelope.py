"""The inner envelope of encrypted private messages, version 3 (crypto/envelope.py): the franked
message as a binary record and its strict reader, the binary frame, Padmé padding, the
unknown-key-share and sender checks, the franking tag inside and outside, and the ``Link`` fast
path, which must accept and refuse exactly what the part-by-part path does.

Messages and frames are written here by independent writers (``record`` and ``frame``) that
follow the layouts in the module note field by field, so the tests check the documented bytes
rather than the encoder against itself, and can forge exactly the input they need: a wrong byte,
a wrong length, a message with a tag that does (or does not) recompute.
"""

from __future__ import annotations

import json
import math
import re
import struct
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
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
    MAX_TIME,
    MESSAGE_VERSION,
    MIN_PADDED,
    Envelope,
    Link,
    Party,
    PlainMessage,
    decode_message,
    make_envelope,
    new_control_message,
    new_message,
    open_envelope,
    padded_length,
    seal,
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
UUID4 = uuid.UUID("1b4e28ba-2fa1-41d2-883f-0016d3cca427").bytes
UUID_TEXT = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


def fingerprint() -> str:
    return b64encode(bytes(SigningKey.generate().verify_key))


ALICE_PHONE = Party(actor=ALICE, device="K7QX", ed25519=fingerprint())
ALICE_LAPTOP = Party(actor=ALICE, device="Q9RT", ed25519=fingerprint())
BOB_PHONE = Party(actor=BOB, device="P2ZM", ed25519=fingerprint())
CAROL_PHONE = Party(actor=CAROL, device="C4RL", ed25519=fingerprint())
ALICE_TO_BOB = Link(ALICE_PHONE, BOB_PHONE)


def note(content: str = "hello Bob", *, sender: str = ALICE, recipient: str = BOB, **kwargs: Any) -> PlainMessage:
    return new_message(sender=sender, recipient=recipient, content=content, now=NOW, **kwargs)


def envelope(
    message: PlainMessage | None = None, *, sender: Party = ALICE_PHONE, recipient: Party = BOB_PHONE
) -> Envelope:
    return make_envelope(sender=sender, recipient=recipient, message=message or note(), franking_key=new_franking_key())


def open_as(
    plaintext: bytes,
    me: Party = BOB_PHONE,
    *,
    sender: Party = ALICE_PHONE,
    outer_tag: bytes,
    link: Link | None = None,
) -> Envelope:
    return open_envelope(
        plaintext, me=me, sender_actor=sender.actor, sender_device=sender.device, outer_tag=outer_tag, link=link
    )


# ----------------------------------------------------------------------------- independent writers


def utf8(text: str | bytes) -> bytes:
    return text.encode("utf-8") if isinstance(text, str) else text


def short(text: str | bytes) -> bytes:
    data = utf8(text)
    return struct.pack(">H", len(data)) + data


def record(
    body: str | bytes = "hello Bob",
    *,
    kind: int = 1,
    sender: str | bytes = ALICE,
    recipient: str | bytes = BOB,
    raw_id: bytes = UUID4,
    created: int = NOW_SECONDS,
    expires: int = 0,
    version: int = 3,
) -> bytes:
    """The message of the module note, written field by field: version, from, to, id, created,
    expires (0 = never), kind and body."""
    return (
        bytes([version])
        + short(sender)
        + short(recipient)
        + raw_id
        + struct.pack(">Q", created)
        + struct.pack(">Q", expires)
        + bytes([kind])
        + utf8(body)
    )


def dumps(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def json_record(doc: Any, **fields: Any) -> bytes:
    """A kind-2 record of ``doc`` as compact JSON."""
    return record(dumps(doc), kind=2, **fields)


def with_length(encoded: bytes, at: int, length: int) -> bytes:
    """``encoded`` with the 2-byte length at ``at`` replaced."""
    return encoded[:at] + struct.pack(">H", length) + encoded[at + 2 :]


# Offsets in a record from ALICE to BOB (both ASCII).
FROM_LENGTH_AT = 1
TO_LENGTH_AT = 1 + 2 + len(ALICE)
ID_AT = TO_LENGTH_AT + 2 + len(BOB)
CREATED_AT = ID_AT + 16
EXPIRES_AT = CREATED_AT + 8
KIND_AT = EXPIRES_AT + 8
BODY_AT = KIND_AT + 1


def frame(
    *,
    sender: tuple[str | bytes, str | bytes, bytes],
    recipient: tuple[str | bytes, str | bytes, bytes],
    franking_key: bytes,
    tag: bytes,
    message: bytes,
    version: int = 3,
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


def padme(size: int) -> int:
    """Padmé as the PURBs paper writes it (Nikitin et al., PETS 2019, Algorithm 1), with logs."""
    exponent = math.floor(math.log2(size))
    bits = math.floor(math.log2(exponent)) + 1
    last_bits = exponent - bits
    mask = (1 << last_bits) - 1
    return (size + mask) & ~mask


def nested(levels: int, inner: str = "1") -> str:
    return "[" * levels + inner + "]" * levels


def test_record__writes_the_layout_of_the_module_note() -> None:
    # The writers above are what the other tests trust: pin them to the documented layout once.
    encoded = record("hi", expires=NOW_SECONDS + 1)
    assert encoded[0] == MESSAGE_VERSION == 3
    assert encoded[FROM_LENGTH_AT : FROM_LENGTH_AT + 2] == len(ALICE).to_bytes(2, "big")
    assert encoded[TO_LENGTH_AT + 2 : ID_AT] == BOB.encode()
    assert encoded[ID_AT:CREATED_AT] == UUID4
    assert int.from_bytes(encoded[CREATED_AT:EXPIRES_AT], "big") == NOW_SECONDS
    assert int.from_bytes(encoded[EXPIRES_AT:KIND_AT], "big") == NOW_SECONDS + 1
    assert encoded[KIND_AT:] == b"\x01hi"
    assert len(record("")) == BODY_AT


# ----------------------------------------------------------------------------- new_message


def test_new_message__writes_the_documented_bytes_for_a_plain_note() -> None:
    message = note('héllo "Bob"', expires_in=timedelta(days=7))
    assert message.encoded == record('héllo "Bob"', raw_id=message.raw_id, expires=NOW_SECONDS + 7 * 86400)
    assert (message.sender, message.recipient, message.content) == (ALICE, BOB, 'héllo "Bob"')
    assert (message.created_at, message.expires_at) == (NOW_SECONDS, NOW_SECONDS + 7 * 86400)
    assert (message.created, message.expires) == (NOW, NOW + timedelta(days=7))
    assert dict(message.body) == {"type": "Note", "content": 'héllo "Bob"'}
    assert decode_message(message.encoded) == message


def test_new_message__with_extra_fields_writes_a_compact_json_body() -> None:
    extra = {"summary": "cw ✓", "tags": ["a", 1, None], "n": 2**53 - 1}
    message = note('héllo "Bob"', extra=extra)
    body = {"type": "Note", "content": 'héllo "Bob"'} | extra
    assert message.encoded == json_record(body, raw_id=message.raw_id)
    assert "héllo".encode() in message.encoded and b"\\u" not in message.encoded  # UTF-8, not escapes
    assert dict(message.body) == body
    assert message.content == 'héllo "Bob"'
    assert decode_message(message.encoded) == message


def test_new_message__does_not_share_the_callers_extra() -> None:
    extra: dict[str, Any] = {"tags": ["a"]}
    message = note(extra=extra)
    extra["tags"].append("b")
    extra["more"] = 1
    assert dict(message.body) == {"type": "Note", "content": "hello Bob", "tags": ["a"]}


def test_new_message__without_expiry_writes_zero() -> None:
    message = note()
    assert message.encoded[EXPIRES_AT:KIND_AT] == bytes(8)
    assert message.expires_at == 0 and message.expires is None
    assert message.to_json()["expires"] is None


def test_new_message__display_form_uses_rfc3339_times() -> None:
    message = note(expires_in=timedelta(minutes=5), extra={"summary": "cw"})
    assert message.to_json() == {
        "id": message.id,
        "from": ALICE,
        "to": BOB,
        "created": "2026-11-21T10:00:00Z",
        "expires": "2026-11-21T10:05:00Z",
        "body": {"type": "Note", "content": "hello Bob", "summary": "cw"},
    }


@pytest.mark.parametrize(
    "now",
    [
        NOW + timedelta(microseconds=999_999),
        NOW.astimezone(timezone(timedelta(hours=-5))),
        (NOW + timedelta(microseconds=1)).astimezone(timezone(timedelta(hours=5, minutes=30))),
    ],
)
def test_new_message__writes_whole_utc_seconds_dropping_fractions(now: datetime) -> None:
    message = new_message(sender=ALICE, recipient=BOB, content="x", now=now, expires_in=timedelta(seconds=1.9))
    assert message.created == NOW and message.created_at == NOW_SECONDS
    assert message.encoded[CREATED_AT:KIND_AT] == struct.pack(">QQ", NOW_SECONDS, NOW_SECONDS + 1)


@pytest.mark.parametrize(
    ("now", "seconds"),
    [
        (datetime(1970, 1, 1, tzinfo=UTC), 0),
        (datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC), LAST_DATETIME_SECOND),
    ],
)
def test_new_message__accepts_the_first_and_last_second(now: datetime, seconds: int) -> None:
    message = new_message(sender=ALICE, recipient=BOB, content="x", now=now)
    assert message.created_at == seconds
    assert decode_message(message.encoded) == message


def test_new_message__ids_are_random_uuid4_text() -> None:
    messages = [note() for _ in range(200)]
    assert len({m.id for m in messages}) == len({m.raw_id for m in messages}) == 200
    for message in messages:
        assert UUID_TEXT.fullmatch(message.id)
        assert message.id == str(uuid.UUID(bytes=message.raw_id))
        assert message.encoded[ID_AT:CREATED_AT] == message.raw_id


def test_new_message__accepts_content_of_the_maximum_length() -> None:
    message = note("x" * MAX_CONTENT_CHARS)
    assert len(message.content) == MAX_CONTENT_CHARS
    env = envelope(message)
    assert open_as(seal_envelope(env), outer_tag=env.franking_tag).message == message


def test_plain_message__body_is_read_only_and_no_text_in_repr() -> None:
    message = note("a secret", extra={"summary": "a warning"})
    with pytest.raises(TypeError):
        message.body["content"] = "changed"  # type: ignore[index]
    message.to_json()["body"]["content"] = "changed"
    assert message.content == "a secret"
    env = envelope(message)
    for text in (repr(message), repr(env), str(env)):
        assert "a secret" not in text and "a warning" not in text
    assert repr(env.franking_key) not in repr(env) and env.franking_key.hex() not in repr(env)
    assert "a secret" not in repr(note("a secret"))


@pytest.mark.parametrize(
    "content",
    ["", "x" * (MAX_CONTENT_CHARS + 1), "😀" * MAX_CONTENT_CHARS, "bad \ud800 surrogate", "\udc00", None, b"bytes"],
)
def test_new_message__rejects_empty_too_long_or_unencodable_content(content: Any) -> None:
    with pytest.raises(EnvelopeError):
        note(content)
    with pytest.raises(EnvelopeError):
        note(content, extra={"summary": "cw"})


@pytest.mark.parametrize(
    "kwargs",
    [
        {"extra": {"type": "Question"}},
        {"extra": {"content": "other"}},
        {"expires_in": timedelta(0)},
        {"expires_in": timedelta(seconds=-1)},
        {"expires_in": 60},
        {"expires_in": timedelta(days=3_000_000)},  # past the year 9999
        {"extra": {"x": b"bytes"}},
        {"extra": {"x": {1, 2}}},
        {"extra": {"x": float("nan")}},
        {"extra": {"x": float("inf")}},
        {"extra": {"x": 2**53}},
        {"extra": {"x": -(2**60)}},
        {"extra": {"x": "\ud800"}},
        {"extra": {"\udfff": 1}},
        {"extra": {"x": {"a": [[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]}}},
        {"sender": "not an actor"},
        {"sender": "x" * 2049},
        {"recipient": ""},
        {"recipient": None},
    ],
)
def test_new_message__rejects_malformed_parts(kwargs: dict[str, Any]) -> None:
    with pytest.raises(EnvelopeError):
        note(**kwargs)


@pytest.mark.parametrize("expires_in", [timedelta(milliseconds=500), timedelta(microseconds=1)])
def test_new_message__refuses_an_expiry_that_rounds_to_the_creation_second(expires_in: timedelta) -> None:
    with pytest.raises(EnvelopeError, match=r"^expires"):
        note(expires_in=expires_in)


@pytest.mark.parametrize("now", [datetime(2026, 11, 21, 10), "2026-11-21T10:00:00Z", NOW_SECONDS, None])
def test_new_message__requires_a_timezone_aware_now(now: Any) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        new_message(sender=ALICE, recipient=BOB, content="x", now=now)


@pytest.mark.parametrize(
    "now",
    [
        datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC),
        datetime(1970, 1, 1, tzinfo=timezone(timedelta(hours=1))),  # 1969 in UTC
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=-1))),  # 10000 in UTC
    ],
)
def test_new_message__refuses_a_time_before_1970_or_from_the_year_10000(now: datetime) -> None:
    with pytest.raises(EnvelopeError, match=r"^now:"):
        new_message(sender=ALICE, recipient=BOB, content="x", now=now)


def test_new_control_message__writes_a_kind_2_body_and_is_not_a_note() -> None:
    body = {"type": "e2ee:Verification", "step": "start", "methods": ["sas"]}
    message = new_control_message(sender=ALICE, recipient=BOB, body=body, now=NOW)
    assert message.encoded == json_record(body, raw_id=message.raw_id)
    assert message.content == "" and message.expires is None
    for not_control in ({"type": "Note", "content": "x"}, {"type": "Note", "content": "x", "summary": "cw"}, {}):
        with pytest.raises(EnvelopeError, match=r"^body"):
            new_control_message(sender=ALICE, recipient=BOB, body=not_control, now=NOW)


EXTRA_VALUE = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)


@settings(max_examples=150, deadline=None)
@given(
    content=st.text(min_size=1, max_size=40),
    now=st.datetimes(
        min_value=datetime(1969, 12, 31),
        max_value=datetime(9999, 12, 31, 23, 59, 59),
        timezones=st.just(UTC) | st.builds(timezone, st.timedeltas(timedelta(hours=-23), timedelta(hours=23))),
    ),
    expires_in=st.none() | st.timedeltas(min_value=timedelta(seconds=1), max_value=timedelta(days=36_500)),
    extra=st.dictionaries(st.text(max_size=8), EXTRA_VALUE | st.lists(EXTRA_VALUE, max_size=3), max_size=3),
)
def test_new_message__writes_the_documented_bytes_and_reads_them_back(
    content: str, now: datetime, expires_in: timedelta | None, extra: dict[str, Any]
) -> None:
    try:
        message = new_message(sender=ALICE, recipient=BOB, content=content, now=now, expires_in=expires_in, extra=extra)
    except EnvelopeError:
        return
    created = (now - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(seconds=1)
    expires = 0 if expires_in is None else created + expires_in // timedelta(seconds=1)
    body = {"type": "Note", "content": content} | extra
    fields: dict[str, Any] = {"raw_id": message.raw_id, "created": created, "expires": expires}
    assert message.encoded == (json_record(body, **fields) if extra else record(content, **fields))
    assert decode_message(message.encoded) == message
    assert dict(message.body) == body


# ----------------------------------------------------------------------------- decode_message


def test_decode_message__reads_every_field_of_a_plain_note() -> None:
    message = decode_message(record("héllo", expires=NOW_SECONDS + 60))
    assert message.encoded == record("héllo", expires=NOW_SECONDS + 60)
    assert (message.sender, message.recipient, message.raw_id) == (ALICE, BOB, UUID4)
    assert message.id == "1b4e28ba-2fa1-41d2-883f-0016d3cca427"
    assert (message.created, message.expires) == (NOW, NOW + timedelta(minutes=1))
    assert dict(message.body) == {"type": "Note", "content": "héllo"}
    with pytest.raises(TypeError):
        message.body["content"] = "changed"  # type: ignore[index]


def test_decode_message__keeps_the_exact_bytes_without_a_canonical_form() -> None:
    spaced = record('{ "summary" : "cw", "content": "h\\u00e9llo",\n "type": "Note" }', kind=2)
    compact = json_record({"type": "Note", "content": "héllo", "summary": "cw"})
    for encoded in (spaced, compact):
        message = decode_message(encoded)
        assert message.encoded == encoded
        assert dict(message.body) == {"type": "Note", "content": "héllo", "summary": "cw"}
    assert decode_message(spaced) != decode_message(compact)
    # Two spellings of one message are two commitments: the tag is over the bytes.
    key = new_franking_key()
    assert franking_tag(key, spaced) != franking_tag(key, compact)


@pytest.mark.parametrize(
    "body",
    [
        {"type": "e2ee:Verification", "step": "start", "methods": ["sas"], "n": 1.5, "deep": [[{"a": None}]]},
        {"type": "Ping"},
        {"type": "Ping", "content": "text on another type"},
        {"type": "Note", "content": "x", "summary": "cw"},
        {"type": "Ping", "n": 2**53 - 1, "m": -(2**53 - 1)},
        {"type": "Ping", "x": json.loads(nested(15))},  # 16 levels with the body itself
        {"type": "N" * 64},
        {"type": "a-b_c:D9"},
    ],
)
def test_decode_message__accepts_other_body_types_and_extra_fields(body: dict[str, Any]) -> None:
    message = decode_message(json_record(body))
    assert dict(message.body) == body
    assert message.content == body.get("content", "")


@pytest.mark.parametrize(
    ("created", "expires"),
    [
        (0, 0),
        (1, 0),
        (NOW_SECONDS, 0),
        (LAST_DATETIME_SECOND, 0),
        (0, 1),
        (NOW_SECONDS, NOW_SECONDS + 1),
        (0, LAST_DATETIME_SECOND),
        (LAST_DATETIME_SECOND - 1, LAST_DATETIME_SECOND),
    ],
)
def test_decode_message__accepts_whole_seconds_in_range(created: int, expires: int) -> None:
    message = decode_message(record(created=created, expires=expires))
    assert message.created == datetime.fromtimestamp(created, UTC)
    assert message.expires == (datetime.fromtimestamp(expires, UTC) if expires else None)
    assert message.to_json()["created"].endswith("Z")


def test_decode_message__accepts_an_escaped_surrogate_pair() -> None:
    # ensure_ascii JSON of an emoji is a pair of escapes: only lone ones are refused.
    encoded = record('{"type":"Note","content":"\\ud83d\\ude00","summary":"\\ud83d\\ude00"}', kind=2)
    message = decode_message(encoded)
    assert message.content == "😀" and message.body["summary"] == "😀"


A_RECORD = record()
UUID1 = uuid.UUID("1b4e28ba-2fa1-11d2-883f-0016d3cca427").bytes


def id_with(at: int, value: int) -> bytes:
    raw = bytearray(UUID4)
    raw[at] = value
    return bytes(raw)


BAD_TYPES: list[dict[str, Any]] = [
    {},
    {"type": ""},
    {"type": 1},
    {"type": None},
    {"type": ["Note"]},
    {"type": "1Note"},
    {"type": "Note Note"},
    {"type": "Note\n"},
    {"type": "N" * 65},
    {"type": "Nöte"},
]

MALFORMED_MESSAGES = [
    # The version byte.
    *(pytest.param(record(version=v), "message", id=f"version-{v}") for v in (0, 1, 2, 4, 0x7B, 0xFF)),
    pytest.param(dumps({"id": str(uuid.UUID(bytes=UUID4)), "from": ALICE, "to": BOB}), "message", id="v2-json"),
    # Actors: a length past the end, not UTF-8, not an actor id.
    pytest.param(with_length(A_RECORD, FROM_LENGTH_AT, 0xFFFF), "message", id="from-length-ffff"),
    pytest.param(with_length(A_RECORD, FROM_LENGTH_AT, len(A_RECORD) - 2), "message", id="from-length-past-end"),
    pytest.param(with_length(A_RECORD, TO_LENGTH_AT, 0xFFFF), "message", id="to-length-ffff"),
    pytest.param(
        with_length(A_RECORD, TO_LENGTH_AT, len(A_RECORD) - TO_LENGTH_AT - 1), "message", id="to-length-past-end"
    ),
    pytest.param(record(sender=b"\xff" + ALICE.encode()), "from", id="from-not-utf8"),
    pytest.param(record(sender=ALICE.encode() + b"\xc3"), "from", id="from-cut-utf8"),
    pytest.param(record(recipient=b"https://b.example/\xed\xa0\x80"), "to", id="to-surrogate"),
    pytest.param(record(sender=""), "from", id="from-empty"),
    pytest.param(record(sender="https://a.example/users/al ice"), "from", id="from-space"),
    pytest.param(record(sender=ALICE + "\n"), "from", id="from-newline"),
    pytest.param(record(recipient=""), "to", id="to-empty"),
    pytest.param(record(recipient="https://b.example/users/b ob"), "to", id="to-space"),
    pytest.param(record(recipient="x" * 2049), "to", id="to-2049-chars"),
    pytest.param(record(recipient="\u200b"), "to", id="to-not-printable"),
    # The id: version 4, variant 10.
    pytest.param(record(raw_id=UUID1), "id", id="id-uuid1"),
    pytest.param(record(raw_id=bytes(16)), "id", id="id-zeros"),
    pytest.param(record(raw_id=b"\xff" * 16), "id", id="id-ones"),
    pytest.param(record(raw_id=id_with(6, 0x51)), "id", id="id-version-5"),
    pytest.param(record(raw_id=id_with(8, 0xC8)), "id", id="id-variant-11"),
    pytest.param(record(raw_id=id_with(8, 0x48)), "id", id="id-variant-01"),
    pytest.param(record(raw_id=id_with(8, 0x08)), "id", id="id-variant-00"),
    # The times: created before the year 10000, expires after created and before 10000.
    pytest.param(record(created=MAX_TIME), "created", id="created-year-10000"),
    pytest.param(record(created=2**63), "created", id="created-2^63"),
    pytest.param(record(created=2**64 - 1), "created", id="created-max"),
    pytest.param(record(expires=NOW_SECONDS), "expires", id="expires-equals-created"),
    pytest.param(record(expires=NOW_SECONDS - 1), "expires", id="expires-before-created"),
    pytest.param(record(created=1, expires=1), "expires", id="expires-1-created-1"),
    pytest.param(record(expires=MAX_TIME), "expires", id="expires-year-10000"),
    pytest.param(record(created=LAST_DATETIME_SECOND, expires=MAX_TIME), "expires", id="expires-after-last"),
    pytest.param(record(expires=2**64 - 1), "expires", id="expires-max"),
    # The kind.
    *(pytest.param(record(kind=k), "kind", id=f"kind-{k}") for k in (0, 3, 255)),
    *(pytest.param(record(dumps({"type": "Ping"}), kind=k), "kind", id=f"kind-{k}-json") for k in (0, 3, 255)),
    # Kind 1: 1 to MAX_CONTENT_CHARS characters of UTF-8.
    pytest.param(record(""), "body.content", id="note-empty"),
    pytest.param(record("x" * (MAX_CONTENT_CHARS + 1)), "body.content", id="note-too-long"),
    pytest.param(record(b"\xff"), "body", id="note-ff"),
    pytest.param(record(b"\xc3"), "body", id="note-cut-utf8"),
    pytest.param(record(b"hello \xed\xa0\x80"), "body", id="note-utf8-surrogate"),
    pytest.param(record(b"\xf4\x90\x80\x80"), "body", id="note-past-unicode"),
    pytest.param(record(b"\xc0\xaf"), "body", id="note-overlong"),
    # Kind 2: not JSON.
    *(
        pytest.param(record(raw, kind=2), "body", id=f"json-not-json-{i}")
        for i, raw in enumerate(
            [
                b"",
                b"hello",
                b"{'type':'Ping'}",
                b'{"type":"Ping"',
                b'{"type":"Ping"}}',
                b'{"type":"Ping"}\0',
                b'{"type":"Ping"} {"type":"Ping"}',
                "\ufeff".encode() + b'{"type":"Ping"}',
                b'{"type":"Ping","x":"\xff"}',
                b'{"type":"Ping","x":"\xed\xa0\x80"}',
                b'{"type":"Ping",}',
            ]
        )
    ),
    # Kind 2: duplicate keys, at the top of the body and inside it.
    pytest.param(record(b'{"type":"Ping","type":"Pong"}', kind=2), "body", id="json-duplicate-type"),
    pytest.param(
        record(b'{"type":"Note","content":"hello Bob","content":"send money","summary":"x"}', kind=2),
        "body",
        id="json-duplicate-content",
    ),
    pytest.param(
        record(b'{"type":"Note","type":"Note","content":"hello Bob"}', kind=2), "body", id="json-duplicate-plain"
    ),
    pytest.param(record(b'{"type":"Ping","a":{"b":[{"c":1,"c":2}]}}', kind=2), "body", id="json-duplicate-nested"),
    # Kind 2: numbers JSON does not have or cannot carry exactly.
    *(
        pytest.param(record(b'{"type":"Ping","n":' + n + b"}", kind=2), "body", id=f"json-{n[:12].decode()}")
        for n in (b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-1e400", b"9007199254740992", b"-9007199254740992")
    ),
    pytest.param(record(b'{"type":"Ping","n":1152921504606846976}', kind=2), "body", id="json-2^60"),
    pytest.param(record(b'{"type":"Ping","n":' + b"9" * 5000 + b"}", kind=2), "body", id="json-5000-digits"),
    pytest.param(record(b'{"type":"Ping","n":[1,[2,NaN]]}', kind=2), "body", id="json-nested-nan"),
    # Kind 2: nesting.
    pytest.param(json_record({"type": "Ping", "x": json.loads(nested(16))}), "body", id="json-17-levels"),
    pytest.param(record(b'{"type":"Ping","x":' + nested(5000).encode() + b"}", kind=2), "body", id="json-5000-levels"),
    pytest.param(record(nested(5000), kind=2), "body", id="json-5000-brackets"),
    # Kind 2: not an object.
    *(
        pytest.param(record(raw, kind=2), "body", id=f"json-not-object-{i}")
        for i, raw in enumerate([b'[{"type":"Note","content":"x"}]', b'"hello"', b"null", b"1", b"true"])
    ),
    # Kind 2: the type.
    *(
        pytest.param(json_record({"content": "x", **t}), "body.type", id=f"json-type-{i}")
        for i, t in enumerate(BAD_TYPES)
    ),
    # Kind 2: content, checked on any type.
    pytest.param(json_record({"type": "Note"}), "body.content", id="json-note-without-content"),
    pytest.param(json_record({"type": "Note", "summary": "cw"}), "body.content", id="json-note-summary-only"),
    pytest.param(json_record({"type": "Note", "content": "", "summary": "cw"}), "body.content", id="json-empty"),
    pytest.param(json_record({"type": "Note", "content": ["a"], "x": 1}), "body.content", id="json-content-list"),
    pytest.param(json_record({"type": "Note", "content": None, "x": 1}), "body.content", id="json-content-null"),
    pytest.param(json_record({"type": "Ping", "content": ""}), "body.content", id="json-ping-empty-content"),
    pytest.param(json_record({"type": "Ping", "content": 7}), "body.content", id="json-ping-number-content"),
    pytest.param(
        json_record({"type": "Note", "content": "x" * (MAX_CONTENT_CHARS + 1), "x": 1}),
        "body.content",
        id="json-content-too-long",
    ),
    # Kind 2: escaped lone surrogates.
    pytest.param(
        record(b'{"type":"Note","content":"\\ud800","summary":"cw"}', kind=2), "body.content", id="json-surrogate"
    ),
    pytest.param(record(b'{"type":"Ping","content":"x\\udfffy"}', kind=2), "body.content", id="json-low-surrogate"),
    pytest.param(record(b'{"type":"Note","content":"\\ud800"}', kind=2), "body.content", id="json-surrogate-plain"),
    pytest.param(
        record(b'{"type":"Note","content":"x","summary":"\\ud83d"}', kind=2), "body", id="json-surrogate-summary"
    ),
    pytest.param(record(b'{"type":"Ping","\\udc00":1}', kind=2), "body", id="json-surrogate-key"),
    pytest.param(record(b'{"type":"Ping","x":["\\ude00\\ud83d"]}', kind=2), "body", id="json-surrogates-reversed"),
    # A plain Note has one spelling: kind 1.
    pytest.param(json_record({"type": "Note", "content": "hello Bob"}), "body", id="plain-note-as-json"),
    pytest.param(json_record({"content": "hello Bob", "type": "Note"}), "body", id="plain-note-reordered"),
    pytest.param(
        record(b'{ "type" : "Note", "content" : "h\\u00e9llo" }', kind=2), "body", id="plain-note-spaced-escaped"
    ),
]


@pytest.mark.parametrize(("encoded", "part"), MALFORMED_MESSAGES)
def test_decode_message__rejects_a_malformed_part_naming_it(encoded: bytes, part: str) -> None:
    with pytest.raises(EnvelopeError, match=f"^{re.escape(part)}:"):
        decode_message(encoded)


def test_decode_message__rejects_truncation_anywhere_with_envelope_error() -> None:
    structured = json_record({"type": "Note", "content": "héllo 😀", "summary": "cw"}, expires=NOW_SECONDS + 5)
    for cut in range(len(structured)):
        with pytest.raises(EnvelopeError):
            decode_message(structured[:cut])
    plain = record("héllo 😀", expires=NOW_SECONDS + 5)
    for cut in range(BODY_AT + 1):
        with pytest.raises(EnvelopeError):
            decode_message(plain[:cut])
    # Inside a plain Note's text a cut is a shorter text, or a cut character.
    for cut in range(BODY_AT + 1, len(plain)):
        try:
            text = plain[BODY_AT:cut].decode("utf-8")
        except UnicodeDecodeError:
            with pytest.raises(EnvelopeError, match=r"^body:"):
                decode_message(plain[:cut])
        else:
            assert decode_message(plain[:cut]).content == text


def test_decode_message__rejects_an_oversized_message() -> None:
    filler = "x" * (MAX_MESSAGE_BYTES - len(json_record({"type": "Ping", "filler": ""})))
    largest = json_record({"type": "Ping", "filler": filler})
    assert len(largest) == MAX_MESSAGE_BYTES
    assert decode_message(largest).body["filler"] == filler
    for encoded in (
        json_record({"type": "Ping", "filler": filler + "x"}),
        record("字" * MAX_CONTENT_CHARS),  # few enough characters, too many bytes
        largest + b" ",
    ):
        assert len(encoded) > MAX_MESSAGE_BYTES
        with pytest.raises(EnvelopeError, match=f"^message:.*at most {MAX_MESSAGE_BYTES}"):
            decode_message(encoded)


@pytest.mark.parametrize(
    "encoded", [A_RECORD.decode("latin-1"), bytearray(A_RECORD), memoryview(A_RECORD), None, 7, [3]]
)
def test_decode_message__rejects_what_is_not_bytes(encoded: Any) -> None:
    with pytest.raises(EnvelopeError, match=r"^message:"):
        decode_message(encoded)


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
        encoded = record("x" * size)
        sealed = seal_envelope(env._replace(message=decode_message(encoded)))
        unpadded = frame_of(env, message=encoded)
        assert sealed == pad(unpadded)
        assert len(sealed) == padded_length(len(unpadded)) >= MIN_PADDED
        seen.add(len(sealed))
        expected.add(padded_length(len(unpadded)))
    assert seen == expected
    assert min(seen) == MIN_PADDED and len(seen) > 20


@pytest.mark.parametrize("content", ["é" * 5000, "😀" * 3000, "\u0001" * 2000, '"\\' * 2000, "字" * 19_000])
def test_seal_envelope__multibyte_and_control_text_is_padded_and_opens(content: str) -> None:
    env = envelope(note(content))
    sealed = seal_envelope(env)
    assert len(sealed) == padded_length(len(frame_of(env)))
    assert open_as(sealed, outer_tag=env.franking_tag).message.content == content
    assert open_as(sealed, outer_tag=env.franking_tag, link=ALICE_TO_BOB).message.content == content


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
    assert plaintext[0] == ENVELOPE_VERSION == 3
    assert plaintext == pad(frame_of(env))
    assert len(plaintext) == MIN_PADDED
    assert env.message.encoded in plaintext and b"hello Bob" in plaintext


def test_envelope__own_device_copy_opens_on_the_senders_other_device() -> None:
    env = envelope(recipient=ALICE_LAPTOP)
    opened = open_as(seal_envelope(env), ALICE_LAPTOP, outer_tag=env.franking_tag)
    assert opened == env
    assert opened.message.recipient == BOB


def test_open_envelope__compares_the_recipient_key_as_bytes() -> None:
    env = envelope()
    me = Party(actor=BOB, device="P2ZM", ed25519=BOB_PHONE.ed25519 + "=")
    assert open_as(seal_envelope(env), me, outer_tag=env.franking_tag).message == env.message


def test_make_envelope__rejects_a_franking_key_that_is_not_32_bytes() -> None:
    for key in (bytes(16), bytes(33), b"", "k" * 32):
        with pytest.raises(ValueError):
            make_envelope(sender=ALICE_PHONE, recipient=BOB_PHONE, message=note(), franking_key=key)  # type: ignore[arg-type]


OTHER_ME = [
    replace(BOB_PHONE, actor=CAROL),
    replace(BOB_PHONE, actor=BOB + "/"),
    replace(BOB_PHONE, device="P2ZN"),
    replace(BOB_PHONE, device="p2zm"),
    replace(BOB_PHONE, ed25519=fingerprint()),
    CAROL_PHONE,
    ALICE_LAPTOP,
]


def links_for(me: Party) -> list[Link | None]:
    """No link, the link of the envelope's real devices, and a link that names ``me``."""
    return [None, ALICE_TO_BOB, Link(ALICE_PHONE, me)]


@pytest.mark.parametrize("me", OTHER_ME)
def test_open_envelope__rejects_envelope_for_another_device_unknown_key_share(me: Party) -> None:
    env = envelope()
    for link in links_for(me):
        with pytest.raises(EnvelopeError, match="not addressed to this device"):
            open_as(seal_envelope(env), me, outer_tag=env.franking_tag, link=link)


def test_open_envelope__rejects_reencrypted_message_for_a_third_party() -> None:
    # Bob decrypts Alice's envelope and re-encrypts it to Carol's device as if it were his.
    env = envelope()
    for link in (None, Link(BOB_PHONE, CAROL_PHONE), ALICE_TO_BOB, Link(ALICE_PHONE, CAROL_PHONE)):
        with pytest.raises(EnvelopeError, match="not addressed to this device"):
            open_envelope(
                seal_envelope(env),
                me=CAROL_PHONE,
                sender_actor=BOB,
                sender_device="P2ZM",
                outer_tag=env.franking_tag,
                link=link,
            )


@pytest.mark.parametrize(
    ("sender_actor", "sender_device"),
    [(CAROL, "K7QX"), (ALICE, "Q9RT"), (ALICE.upper(), "K7QX"), (ALICE, "k7qx"), (ALICE + " ", "K7QX"), ("", "")],
)
@pytest.mark.parametrize("link", [None, ALICE_TO_BOB, Link(ALICE_LAPTOP, BOB_PHONE), Link(CAROL_PHONE, BOB_PHONE)])
def test_open_envelope__rejects_sender_that_disagrees_with_the_outer_envelope(
    sender_actor: str, sender_device: str, link: Link | None
) -> None:
    env = envelope()
    with pytest.raises(EnvelopeError, match="sender disagrees"):
        open_envelope(
            seal_envelope(env),
            me=BOB_PHONE,
            sender_actor=sender_actor,
            sender_device=sender_device,
            outer_tag=env.franking_tag,
            link=link,
        )


@pytest.mark.parametrize("link", [None, ALICE_TO_BOB, Link(CAROL_PHONE, BOB_PHONE)])
def test_open_envelope__rejects_message_from_another_actor_than_the_sending_device(link: Link | None) -> None:
    env = envelope(note(sender=CAROL))  # the tag recomputes: only the author is wrong
    with pytest.raises(EnvelopeError, match=r"^message\.from"):
        open_as(seal_envelope(env), outer_tag=env.franking_tag, link=link)


@pytest.mark.parametrize(("author", "addressee"), [(ALICE, CAROL), (ALICE, ALICE)])
@pytest.mark.parametrize("link", [None, ALICE_TO_BOB])
def test_open_envelope__rejects_message_involving_neither_party(author: str, addressee: str, link: Link | None) -> None:
    env = envelope(note(sender=author, recipient=addressee))
    with pytest.raises(EnvelopeError, match="neither"):
        open_as(seal_envelope(env), outer_tag=env.franking_tag, link=link)


@pytest.mark.parametrize(
    "encoded",
    [
        pytest.param(record(raw_id=UUID1), id="uuid1"),
        pytest.param(record(version=2), id="message-version-2"),
        pytest.param(record(kind=0), id="kind-0"),
        pytest.param(record(""), id="empty-text"),
        pytest.param(record(expires=NOW_SECONDS), id="expires-equals-created"),
        pytest.param(json_record({"type": "Note", "content": "hello Bob"}), id="plain-note-as-json"),
        pytest.param(record(b'{"type":"Ping","type":"Pong"}', kind=2), id="duplicate-key"),
        pytest.param(record(sender="https://a.example/users/al ice"), id="from-not-an-actor"),
        pytest.param(record(recipient=b"\xff"), id="to-not-utf8"),
        pytest.param(with_length(A_RECORD, TO_LENGTH_AT, 0xFFFF), id="to-length-past-end"),
        pytest.param(A_RECORD[:BODY_AT], id="no-body"),
        pytest.param(A_RECORD[: ID_AT + 3], id="cut-id"),
        pytest.param(dumps({"id": str(uuid.UUID(bytes=UUID4)), "from": ALICE, "to": BOB}), id="v2-json"),
        pytest.param(b"", id="empty"),
    ],
)
@pytest.mark.parametrize("link", [None, ALICE_TO_BOB])
def test_open_envelope__rejects_a_malformed_message_even_with_a_tag_that_recomputes(
    encoded: bytes, link: Link | None
) -> None:
    plaintext, tag = signed_frame(encoded)
    with pytest.raises(EnvelopeError):
        open_as(plaintext, outer_tag=tag, link=link)


def test_open_envelope__rejects_a_sender_device_id_that_is_not_one() -> None:
    # The outer envelope and the frame agree on "K7", which no device id can be.
    key = new_franking_key()
    message = note().encoded
    tag = franking_tag(key, message)
    sender = (ALICE, "K7", ALICE_PHONE.key)
    plaintext = pad(frame(sender=sender, recipient=parts(BOB_PHONE), franking_key=key, tag=tag, message=message))
    for link in (None, ALICE_TO_BOB):
        with pytest.raises(EnvelopeError, match="device"):
            open_envelope(plaintext, me=BOB_PHONE, sender_actor=ALICE, sender_device="K7", outer_tag=tag, link=link)


@pytest.mark.parametrize("link", [None, ALICE_TO_BOB])
def test_open_envelope__refuses_a_sender_actor_that_decode_message_refuses(link: Link | None) -> None:
    # The frame, the message and the outer envelope agree on a sender that is not an actor id:
    # a moderator's decode_message would refuse the revealed bytes, so the receiver must too.
    bad = "https://a.example/users/al ice"
    encoded = record(sender=bad)
    with pytest.raises(EnvelopeError, match=r"^from:"):
        decode_message(encoded)
    key = new_franking_key()
    tag = franking_tag(key, encoded)
    sender = (bad, "K7QX", ALICE_PHONE.key)
    plaintext = pad(frame(sender=sender, recipient=parts(BOB_PHONE), franking_key=key, tag=tag, message=encoded))
    with pytest.raises(EnvelopeError, match=r"^from:"):
        open_envelope(plaintext, me=BOB_PHONE, sender_actor=bad, sender_device="K7QX", outer_tag=tag, link=link)


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
    for link in (None, ALICE_TO_BOB):
        with pytest.raises(FrankingError, match="differs"):
            open_as(seal_envelope(OUTER_ENVELOPE), outer_tag=outer, link=link)


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
    assert original == record(raw_id=env.message.raw_id, expires=NOW_SECONDS + 300)

    def at(offset: int, data: bytes) -> bytes:
        return original[:offset] + data + original[offset + len(data) :]

    for forged in (
        original.replace(b"hello Bob", b"hello Bub"),
        original + b"!",
        at(EXPIRES_AT, struct.pack(">Q", NOW_SECONDS + 300 * 86400)),  # a later expiry
        at(EXPIRES_AT, bytes(8)),  # never expires
        at(CREATED_AT, struct.pack(">Q", NOW_SECONDS - 86400)),
        at(ID_AT, UUID4),  # another id: a replay under a fresh id
        original[:KIND_AT] + b"\x02" + dumps({"type": "Note", "content": "hello Bob", "summary": "cw"}),
    ):
        assert forged != original
        decode_message(forged)  # each forgery is a well-formed message: only the tag can refuse it
        for link in (None, ALICE_TO_BOB):
            with pytest.raises(FrankingError, match="does not recompute"):
                open_as(pad(frame_of(env, message=forged)), outer_tag=env.franking_tag, link=link)


def test_open_envelope__rejects_tag_under_another_franking_key() -> None:
    env = envelope()
    plaintext = pad(frame_of(env, franking_key=new_franking_key()))
    with pytest.raises(FrankingError, match="does not recompute"):
        open_as(plaintext, outer_tag=env.franking_tag)


@pytest.mark.parametrize("version", [0, 1, 2, 4, 0x7B, 0xFF])
def test_open_envelope__rejects_another_version_byte(version: int) -> None:
    env = envelope()
    plaintext = bytes([version]) + seal_envelope(env)[1:]
    for link in (None, ALICE_TO_BOB):
        with pytest.raises(EnvelopeError, match="not a version 3 envelope"):
            open_as(plaintext, outer_tag=env.franking_tag, link=link)


def test_open_envelope__rejects_a_version_2_frame() -> None:
    env = envelope()
    with pytest.raises(EnvelopeError, match="not a version 3 envelope"):
        open_as(pad(frame_of(env, version=2)), outer_tag=env.franking_tag)


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
    for link in (None, ALICE_TO_BOB):
        with pytest.raises(EnvelopeError, match="padding"):
            open_as(change(seal_envelope(env)), outer_tag=env.franking_tag, link=link)


def test_open_envelope__rejects_an_envelope_longer_than_its_padded_length() -> None:
    # 1,099 bytes of frame pad to 1,152; the same frame padded to 2,048 (a padded length,
    # and zeros to the end) still says too much.
    env = envelope(note("x" * 800))
    unpadded = frame_of(env)
    assert 1024 < len(unpadded) <= 2048
    with pytest.raises(EnvelopeError, match="padding"):
        open_as(unpadded + bytes(2048 - len(unpadded)), outer_tag=env.franking_tag)


def test_open_envelope__rejects_truncation_anywhere_with_envelope_error() -> None:
    env = envelope()
    sealed = seal_envelope(env)
    unpadded = frame_of(env)
    for link in (None, ALICE_TO_BOB):
        for cut in range(len(sealed)):
            with pytest.raises(EnvelopeError):
                open_as(sealed[:cut], outer_tag=env.franking_tag, link=link)
        for cut in range(len(unpadded)):
            # Cut inside the frame, then zero-padded again: the zeros now read as frame bytes.
            with pytest.raises(OUR_ERRORS):
                open_as(pad(unpadded[:cut]), outer_tag=env.franking_tag, link=link)


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
    changes: dict[str, Any] = {field: (actor, device, BOB_PHONE.key)}
    plaintext = pad(frame_of(env, **changes))
    with pytest.raises(EnvelopeError, match="not UTF-8"):
        open_as(plaintext, outer_tag=env.franking_tag)


@pytest.mark.parametrize("plaintext", [b"", b"\x03", bytes(1024), b"\x03" + bytes(1023), b"\x03\xff\xff" + bytes(1021)])
def test_open_envelope__rejects_short_or_empty_frames(plaintext: bytes) -> None:
    for link in (None, ALICE_TO_BOB):
        with pytest.raises(EnvelopeError):
            open_as(plaintext, outer_tag=bytes(32), link=link)


@pytest.mark.parametrize("plaintext", [bytearray(seal_envelope(envelope())), "text", None])
def test_open_envelope__rejects_what_is_not_bytes(plaintext: Any) -> None:
    for link in (None, ALICE_TO_BOB):
        with pytest.raises(EnvelopeError):
            open_as(plaintext, outer_tag=bytes(32), link=link)


# ----------------------------------------------------------------------------- Link


@pytest.mark.parametrize(("sender", "recipient"), [(ALICE_PHONE, BOB_PHONE), (ALICE_PHONE, ALICE_LAPTOP)])
def test_link__header_is_the_start_of_every_frame_between_the_two_devices(sender: Party, recipient: Party) -> None:
    link = Link(sender, recipient)
    bare = frame(sender=parts(sender), recipient=parts(recipient), franking_key=b"", tag=b"", message=b"")
    assert link.header == bare[:-4]
    env = envelope(sender=sender, recipient=recipient)
    encoded = env.message.encoded
    assert frame_of(env) == (
        link.header + env.franking_key + env.franking_tag + struct.pack(">I", len(encoded)) + encoded
    )


def test_link__message_prefix_is_how_a_message_between_the_two_actors_begins() -> None:
    assert ALICE_TO_BOB.message_prefix == bytes([3]) + short(ALICE) + short(BOB) == A_RECORD[:ID_AT]
    assert note().encoded.startswith(ALICE_TO_BOB.message_prefix)
    own = Link(ALICE_PHONE, ALICE_LAPTOP)
    assert own.message_prefix == bytes([3]) + short(ALICE) + short(ALICE)
    assert not note().encoded.startswith(own.message_prefix)  # a copy for Alice's laptop is to Bob


def test_link__joins_two_parties_and_keeps_bytes_out_of_repr() -> None:
    with pytest.raises(TypeError):
        Link(ALICE, BOB_PHONE)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Link(ALICE_PHONE, None)  # type: ignore[arg-type]
    assert Link(ALICE_PHONE, BOB_PHONE) == ALICE_TO_BOB
    assert repr(ALICE_TO_BOB.header) not in repr(ALICE_TO_BOB)


def test_seal__is_seal_envelope_for_a_franked_message() -> None:
    env = envelope(note(expires_in=timedelta(minutes=5)))
    sealed = seal(ALICE_TO_BOB, env.message, env.franking_key, env.franking_tag)
    assert sealed == seal_envelope(env) == pad(frame_of(env))
    for key, tag in ((bytes(31), env.franking_tag), (env.franking_key, env.franking_tag[:-1]), (b"", b"")):
        with pytest.raises(ValueError):
            seal(ALICE_TO_BOB, env.message, key, tag)


@pytest.mark.parametrize(
    "message",
    [
        note(),
        note(expires_in=timedelta(minutes=5), extra={"summary": "cw"}),
        note("😀" * 100),
        new_control_message(sender=ALICE, recipient=BOB, body={"type": "Ping"}, now=NOW),
    ],
)
@pytest.mark.parametrize(
    ("sender", "recipient", "link"),
    [
        (ALICE_PHONE, BOB_PHONE, ALICE_TO_BOB),
        (ALICE_PHONE, BOB_PHONE, Link(replace(ALICE_PHONE), replace(BOB_PHONE))),  # equal, not the same objects
        (ALICE_PHONE, ALICE_LAPTOP, Link(ALICE_PHONE, ALICE_LAPTOP)),  # the own-device copy
    ],
)
def test_open_envelope__with_a_link_opens_what_it_opens_without(
    message: PlainMessage, sender: Party, recipient: Party, link: Link
) -> None:
    env = envelope(message, sender=sender, recipient=recipient)
    sealed = seal(link, message, env.franking_key, env.franking_tag)
    without = open_as(sealed, recipient, sender=sender, outer_tag=env.franking_tag)
    with_link = open_as(sealed, recipient, sender=sender, outer_tag=env.franking_tag, link=link)
    assert with_link == without == env
    assert with_link.sender.same(sender) and with_link.message.encoded == message.encoded


@pytest.mark.parametrize(
    "link",
    [
        Link(ALICE_LAPTOP, BOB_PHONE),  # another of Alice's devices
        Link(replace(ALICE_PHONE, ed25519=fingerprint()), BOB_PHONE),  # Alice's phone with another key
        Link(CAROL_PHONE, BOB_PHONE),
        Link(ALICE_PHONE, replace(BOB_PHONE, ed25519=fingerprint())),  # a recipient that is not me
        Link(ALICE_PHONE, ALICE_LAPTOP),
    ],
)
def test_open_envelope__a_link_for_other_devices_falls_back_to_the_checks(link: Link) -> None:
    env = envelope()
    sealed = seal_envelope(env)
    opened = open_as(sealed, outer_tag=env.franking_tag, link=link)
    assert opened == open_as(sealed, outer_tag=env.franking_tag) == env
    # The frame's own sender comes back, for the caller to compare with the pinned device.
    assert opened.sender.same(ALICE_PHONE)


def test_open_envelope__a_link_does_not_vouch_for_a_forged_sender_key() -> None:
    # Alice's actor and device id, another key: the link's header does not match, and the
    # envelope opens with the key it names, which the caller then refuses.
    forged = replace(ALICE_PHONE, ed25519=fingerprint())
    env = envelope(sender=forged)
    opened = open_as(seal_envelope(env), outer_tag=env.franking_tag, link=ALICE_TO_BOB)
    assert opened.sender.same(forged) and not opened.sender.same(ALICE_PHONE)


def opening(plaintext: bytes, link: Link | None, *, me: Party, sender: Party, outer_tag: bytes) -> object:
    """What ``open_envelope`` does with ``plaintext``: the envelope, or the error's type and text."""
    try:
        return open_as(plaintext, me, sender=sender, outer_tag=outer_tag, link=link)
    except OUR_ERRORS as exc:
        return type(exc), str(exc)


# ----------------------------------------------------------------------------- fuzz

FUZZ_ENVELOPE = envelope(note(expires_in=timedelta(days=1)))
FUZZ_SEALED = seal_envelope(FUZZ_ENVELOPE)
FUZZ_FRAME_END = len(frame_of(FUZZ_ENVELOPE))
# Where the sender's Ed25519 key sits: open_envelope returns it for the caller to check against
# the device list, so an envelope with another key there may open (with that other key).
SENDER_KEY_AT = 1 + 2 + len(ALICE.encode()) + 2 + len(ALICE_PHONE.device)
SENDER_KEY = range(SENDER_KEY_AT, SENDER_KEY_AT + 32)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FUZZ_LINKS = [
    ALICE_TO_BOB,
    Link(replace(ALICE_PHONE), replace(BOB_PHONE)),
    Link(ALICE_LAPTOP, BOB_PHONE),
    Link(replace(ALICE_PHONE, ed25519=fingerprint()), BOB_PHONE),
    Link(CAROL_PHONE, BOB_PHONE),
    Link(ALICE_PHONE, CAROL_PHONE),
]


def mutate(data: st.DataObject, sealed: bytes, frame_end: int) -> bytes:
    mutated = bytearray(sealed)
    # Mostly inside the frame, where the parsing happens; sometimes in the padding.
    at = data.draw(st.integers(0, frame_end - 1) | st.integers(0, len(mutated) - 1))
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
    return bytes(mutated)


@FUZZ
@given(
    data=st.binary(max_size=600)
    | st.binary(min_size=1023, max_size=1023).map(lambda b: b"\x03" + b)
    | st.binary(max_size=400).map(lambda b: b"\x03" + b + bytes(padded_length(len(b) + 1) - len(b) - 1))
)
def test_open_envelope__arbitrary_bytes_raise_only_our_errors(data: bytes) -> None:
    for link in (None, ALICE_TO_BOB):
        with pytest.raises(OUR_ERRORS):
            open_as(data, outer_tag=FUZZ_ENVELOPE.franking_tag, link=link)


@FUZZ
@given(data=st.data())
def test_open_envelope__mutated_envelopes_raise_only_our_errors(data: st.DataObject) -> None:
    mutated = mutate(data, FUZZ_SEALED, FUZZ_FRAME_END)
    if mutated == FUZZ_SEALED:
        return
    try:
        opened = open_as(mutated, outer_tag=FUZZ_ENVELOPE.franking_tag)
    except OUR_ERRORS:
        return
    # Anything that still opens changed only the sender key, which the caller checks.
    assert len(mutated) == len(FUZZ_SEALED)
    assert [i for i in range(len(mutated)) if mutated[i] != FUZZ_SEALED[i]] == [
        i for i in SENDER_KEY if mutated[i] != FUZZ_SEALED[i]
    ]
    assert opened.message == FUZZ_ENVELOPE.message
    assert not opened.sender.same(FUZZ_ENVELOPE.sender)


OWN_COPY = envelope(FUZZ_ENVELOPE.message, recipient=ALICE_LAPTOP)
SCENARIOS = [
    (FUZZ_ENVELOPE, BOB_PHONE, ALICE_TO_BOB),
    (OWN_COPY, ALICE_LAPTOP, Link(ALICE_PHONE, ALICE_LAPTOP)),
    *((FUZZ_ENVELOPE, BOB_PHONE, link) for link in FUZZ_LINKS[1:]),
]


@FUZZ
@given(data=st.data(), scenario=st.sampled_from(SCENARIOS))
def test_open_envelope__mutated_envelopes_open_the_same_with_a_link(
    data: st.DataObject, scenario: tuple[Envelope, Party, Link]
) -> None:
    env, me, link = scenario
    sealed = seal_envelope(env)
    mutated = mutate(data, sealed, len(frame_of(env)))
    kwargs: dict[str, Any] = {"me": me, "sender": ALICE_PHONE, "outer_tag": env.franking_tag}
    assert opening(mutated, link, **kwargs) == opening(mutated, None, **kwargs)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=25,
)
BODY_DOC = (
    st.fixed_dictionaries(
        {"type": st.sampled_from(["Note", "Ping", "e2ee:Verification"]) | JSON},
        optional={"content": st.text(max_size=20) | JSON, "summary": JSON, "x": JSON},
    )
    | JSON
)


def spell(doc: Any, ensure_ascii: bool, indent: int | None) -> bytes:
    return json.dumps(doc, ensure_ascii=ensure_ascii, indent=indent).encode("utf-8")


JSON_BODY = st.builds(spell, BODY_DOC, st.booleans(), st.none() | st.integers(0, 2))
VALID_ACTOR = st.sampled_from([ALICE, BOB, CAROL]) | st.text("abé字😀:/.", min_size=1, max_size=20).map(
    lambda path: "https://x.example/" + path
)
ANY_ACTOR = VALID_ACTOR | st.text(max_size=20) | st.binary(max_size=20)
ANY_SECONDS = st.sampled_from([0, 1, NOW_SECONDS, LAST_DATETIME_SECOND, MAX_TIME]) | st.integers(0, 2**64 - 1)
ANY_FIELD = {
    "sender": ANY_ACTOR,
    "recipient": ANY_ACTOR,
    "raw_id": st.binary(min_size=16, max_size=16),
    "created": ANY_SECONDS,
    "expires": st.just(0) | ANY_SECONDS,
    "kind": st.integers(0, 255),
    "body": st.text(max_size=40) | st.binary(max_size=40) | JSON_BODY,
}


VALID_BODY_DOC = st.fixed_dictionaries(
    {"type": st.sampled_from(["Note", "Ping", "e2ee:Verification"])},
    optional={"content": st.text(min_size=1, max_size=20), "summary": JSON, "x": JSON},
)


@st.composite
def record_fields(
    draw: st.DrawFn, sender: st.SearchStrategy[str] = VALID_ACTOR, recipient: st.SearchStrategy[str] = VALID_ACTOR
) -> dict[str, Any]:
    """The fields of a valid record, then none, one or two of them replaced by anything."""
    created = draw(st.sampled_from([0, NOW_SECONDS, LAST_DATETIME_SECOND]) | st.integers(0, MAX_TIME - 1))
    later = st.integers(created + 1, MAX_TIME - 1) if created < MAX_TIME - 1 else st.nothing()
    kind, body = draw(
        st.tuples(st.just(1), st.text(min_size=1, max_size=40))
        | st.tuples(st.just(2), st.builds(spell, VALID_BODY_DOC, st.booleans(), st.none() | st.integers(0, 2)))
    )
    fields = {
        "sender": draw(sender),
        "recipient": draw(recipient),
        "raw_id": draw(st.uuids(version=4)).bytes,
        "created": created,
        "expires": draw(st.just(0) | later),
        "kind": kind,
        "body": body,
    }
    for name in draw(st.sets(st.sampled_from(sorted(ANY_FIELD)), max_size=2)):
        fields[name] = draw(ANY_FIELD[name])
    return fields


RECORD_FIELDS = record_fields()


@FUZZ
@given(data=st.binary(max_size=400) | st.binary(max_size=400).map(lambda b: b"\x03" + b))
def test_decode_message__arbitrary_bytes_raise_only_envelope_errors(data: bytes) -> None:
    try:
        message = decode_message(data)
    except EnvelopeError:
        return
    assert message.encoded == data


@FUZZ
@given(fields=RECORD_FIELDS)
def test_decode_message__arbitrary_fields_raise_only_envelope_errors_or_read_back(fields: dict[str, Any]) -> None:
    encoded = record(**fields)
    try:
        message = decode_message(encoded)
    except EnvelopeError:
        return
    assert message.encoded == encoded
    assert utf8(message.sender) == utf8(fields["sender"]) and utf8(message.recipient) == utf8(fields["recipient"])
    assert message.raw_id == fields["raw_id"] and uuid.UUID(bytes=message.raw_id).version == 4
    assert (message.created_at, message.expires_at) == (fields["created"], fields["expires"])
    assert message.created_at < (message.expires_at or MAX_TIME) <= MAX_TIME
    text = utf8(fields["body"]).decode("utf-8")
    if fields["kind"] == 1:
        assert dict(message.body) == {"type": "Note", "content": text}
    else:
        assert fields["kind"] == 2
        assert dict(message.body) == json.loads(text)
        assert set(message.body) != {"type", "content"} or message.body["type"] != "Note"


@FUZZ
@given(body=JSON_BODY | st.builds(spell, VALID_BODY_DOC, st.booleans(), st.none() | st.integers(0, 2)) | st.binary())
def test_decode_message__arbitrary_json_bodies_raise_only_envelope_errors_or_read_back(body: bytes) -> None:
    encoded = record(body, kind=2, expires=NOW_SECONDS + 1)
    try:
        message = decode_message(encoded)
    except EnvelopeError:
        return
    assert message.encoded == encoded
    doc = json.loads(body)
    assert dict(message.body) == doc and isinstance(doc["type"], str)
    assert doc.keys() != {"type", "content"} or doc["type"] != "Note"


@FUZZ
@given(
    fields=record_fields(sender=st.just(ALICE), recipient=st.sampled_from([ALICE, BOB, CAROL])),
    scenario=st.sampled_from(SCENARIOS),
)
def test_open_envelope__arbitrary_messages_open_the_same_with_a_link(
    fields: dict[str, Any], scenario: tuple[Envelope, Party, Link]
) -> None:
    _, me, link = scenario
    plaintext, tag = signed_frame(record(**fields), recipient=me)
    kwargs: dict[str, Any] = {"me": me, "sender": ALICE_PHONE, "outer_tag": tag}
    assert opening(plaintext, link, **kwargs) == opening(plaintext, None, **kwargs)


# ----------------------------------------------------------------------------- one key spelling


def test_open_envelope__with_a_padded_key_spelling_in_the_link_opens_the_same() -> None:
    # Device lists may publish a key as padded base64, which Party accepts and writes unpadded, as
    # the part-by-part path reads it from the frame: both paths return equal parties.
    padded = Party(actor=ALICE, device="K7QX", ed25519=ALICE_PHONE.ed25519 + "=")
    env = envelope()
    sealed = seal_envelope(env)
    with_link = open_as(sealed, outer_tag=env.franking_tag, link=Link(padded, BOB_PHONE))
    assert with_link.sender.same(ALICE_PHONE)
    assert with_link == open_as(sealed, outer_tag=env.franking_tag)
    assert padded.ed25519 == ALICE_PHONE.ed25519
