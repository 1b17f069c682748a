"""The inner envelope of encrypted private messages (crypto/envelope.py): its shape, padding to
buckets, the unknown-key-share and sender checks, and the franking tag inside and outside.
"""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

from crypto.encoding import b64decode, b64encode, canonical_json
from crypto.envelope import (
    BUCKETS,
    MAX_CONTENT_CHARS,
    Envelope,
    Party,
    PlainMessage,
    make_envelope,
    new_message,
    open_envelope,
    padded_length,
    parse_message,
    seal_envelope,
)
from crypto.errors import E2EEError, EnvelopeError, FrankingError, KeyFormatError
from crypto.franking import franking_tag, new_franking_key

ALICE = "https://a.example/users/alice"
BOB = "https://b.example/users/bob"
CAROL = "https://c.example/users/carol"
NOW = datetime(2026, 11, 21, 10, 0, 0, tzinfo=UTC)


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


def open_as(plaintext: bytes, me: Party, *, sender: Party = ALICE_PHONE, outer_tag: bytes) -> Envelope:
    return open_envelope(plaintext, me=me, sender_actor=sender.actor, sender_device=sender.device, outer_tag=outer_tag)


def pad_to_bucket(doc: dict[str, Any], dumps: Any = canonical_json) -> bytes:
    """``doc`` written by ``dumps`` with ``pad`` set so the result is exactly a bucket long."""
    doc = {**doc, "pad": ""}
    base = len(dumps(doc))
    doc["pad"] = "=" * (padded_length(base) - base)
    data: bytes = dumps(doc)
    assert len(data) in BUCKETS
    return data


def sealed_doc(env: Envelope) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(seal_envelope(env))
    return loaded


# ----------------------------------------------------------------------------- messages


def test_new_message__has_the_documented_shape() -> None:
    message = note(expires_in=timedelta(days=7), extra={"summary": "cw"})
    doc = message.to_json()
    assert set(doc) == {"id", "from", "to", "created", "expires", "body"}
    assert doc["from"] == ALICE and doc["to"] == BOB
    assert doc["created"] == "2026-11-21T10:00:00Z"
    assert doc["expires"] == "2026-11-28T10:00:00Z"
    assert doc["body"] == {"type": "Note", "content": "hello Bob", "summary": "cw"}
    assert message.canonical() == canonical_json(doc)
    assert message.content == "hello Bob"
    assert parse_message(json.loads(message.canonical())) == message
    assert note().id != note().id


def test_new_message__without_expiry_writes_null() -> None:
    assert note().to_json()["expires"] is None
    assert b'"expires":null' in note().canonical()


def test_plain_message__body_is_read_only_and_not_in_repr() -> None:
    message = note("a secret")
    with pytest.raises(TypeError):
        message.body["content"] = "changed"  # type: ignore[index]
    message.to_json()["body"]["content"] = "changed"
    assert message.content == "a secret"
    assert "a secret" not in repr(message)


@pytest.mark.parametrize("content", ["", "x" * (MAX_CONTENT_CHARS + 1)])
def test_new_message__rejects_empty_or_too_long_content(content: str) -> None:
    with pytest.raises(EnvelopeError, match="content"):
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
        {"extra": {"x": 2**60}},
        {"sender": "not an actor"},
    ],
)
def test_new_message__rejects_malformed_parts(kwargs: dict[str, Any]) -> None:
    with pytest.raises(EnvelopeError):
        note(**kwargs)


def valid_message_doc() -> dict[str, Any]:
    return note(expires_in=timedelta(hours=1)).to_json()


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d.update(id=d["id"].upper()), "id"),
        (lambda d: d.update(id="1b4e28ba-2fa1-11d2-883f-0016d3cca427"), "id"),  # a UUID1
        (lambda d: d.update(id=7), "id"),
        (lambda d: d.update(**{"from": ""}), "from"),
        (lambda d: d.update(to=None), "to"),
        (lambda d: d.update(created="2026-11-21T10:00:00+00:00"), "created"),
        (lambda d: d.update(created=1732183200), "created"),
        (lambda d: d.update(expires="2026-11-21T10:00:00Z"), "expires"),
        (lambda d: d.update(expires="2026-11-21T09:00:00Z"), "expires"),
        (lambda d: d.update(body="hello"), "body"),
        (lambda d: d["body"].pop("type"), "body.type"),
        (lambda d: d["body"].update(type=""), "body.type"),
        (lambda d: d["body"].pop("content"), "body.content"),
        (lambda d: d["body"].update(content=""), "body.content"),
        (lambda d: d["body"].update(content=["a"]), "body.content"),
        (lambda d: d["body"].update(x={1: 2}), "body"),
        (lambda d: d["body"].update(x={"a": {"b": [[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]}}), "body"),
        (lambda d: d["body"].update(x=float("inf")), "body"),
        (lambda d: d["body"].update(x="\ud800"), "body"),
        (lambda d: d["body"].update(x={"a", "b"}), "body"),
        (lambda d: d.update(extra=1), "unknown field 'extra'"),
        (lambda d: d.pop("expires"), "missing field 'expires'"),
    ],
)
def test_parse_message__rejects_malformed_fields(mutate: Any, field: str) -> None:
    doc = valid_message_doc()
    mutate(doc)
    with pytest.raises(EnvelopeError, match=field):
        parse_message(doc)


def test_parse_message__allows_other_body_types_and_extra_fields() -> None:
    doc = valid_message_doc()
    doc["body"] = {"type": "Verification", "step": "start", "methods": ["sas"], "n": 1.5}
    message = parse_message(doc)
    assert message.content == ""
    assert message.body["methods"] == ["sas"]


def test_parse_message__rejects_oversized_message() -> None:
    doc = valid_message_doc()
    doc["body"]["padding"] = "x" * 70_000
    with pytest.raises(EnvelopeError, match="longer than"):
        parse_message(doc)


# ----------------------------------------------------------------------------- sealing


def test_envelope__round_trip() -> None:
    env = envelope(note(expires_in=timedelta(minutes=5)))
    plaintext = seal_envelope(env)
    opened = open_as(plaintext, BOB_PHONE, outer_tag=env.franking_tag)
    assert opened == env
    assert opened.message.content == "hello Bob"
    assert opened.franking_tag == franking_tag(env.franking_key, env.message.canonical())


def test_envelope__has_the_documented_shape() -> None:
    env = envelope()
    plaintext = seal_envelope(env)
    doc = json.loads(plaintext)
    assert set(doc) == {"v", "sender", "recipient", "message", "frankingKey", "frankingTag", "pad"}
    assert doc["v"] == 1
    assert doc["sender"] == {"actor": ALICE, "device": "K7QX", "ed25519": ALICE_PHONE.ed25519}
    assert doc["recipient"] == {"actor": BOB, "device": "P2ZM", "ed25519": BOB_PHONE.ed25519}
    assert doc["message"] == env.message.to_json()
    assert doc["frankingKey"] == b64encode(env.franking_key)
    assert doc["frankingTag"] == b64encode(env.franking_tag)
    assert set(doc["pad"]) <= {"="}
    assert plaintext == canonical_json(doc)


def test_envelope__own_device_copy_opens_on_the_senders_other_device() -> None:
    env = envelope(recipient=ALICE_LAPTOP)
    opened = open_as(seal_envelope(env), ALICE_LAPTOP, outer_tag=env.franking_tag)
    assert opened.message.recipient == BOB


def test_padded_length__picks_the_smallest_bucket() -> None:
    assert padded_length(0) == 256
    assert padded_length(256) == 256
    assert padded_length(257) == 512
    assert padded_length(65_536) == 65_536
    with pytest.raises(EnvelopeError):
        padded_length(65_537)


def test_seal_envelope__every_length_from_1_to_4096_lands_exactly_in_the_smallest_bucket() -> None:
    env = envelope()
    seen = set()
    for size in range(1, 4097):
        message = replace(env.message, body={"type": "Note", "content": "x" * size})
        sealed = seal_envelope(replace(env, message=message))
        assert len(sealed) in BUCKETS
        unpadded = len(sealed) - len(json.loads(sealed)["pad"])
        assert padded_length(unpadded) == len(sealed)
        seen.add(len(sealed))
    assert seen == {1024, 2048, 4096, 8192}


@pytest.mark.parametrize("content", ["é" * 5000, "😀" * 3000, "\u0001" * 2000, '"\\' * 2000])
def test_seal_envelope__multibyte_and_escaped_text_is_padded_to_a_bucket(content: str) -> None:
    sealed = seal_envelope(envelope(note(content)))
    assert len(sealed) in BUCKETS
    assert open_as(sealed, BOB_PHONE, outer_tag=json_tag(sealed)).message.content == content


def json_tag(sealed: bytes) -> bytes:
    return b64decode(json.loads(sealed)["frankingTag"], field="frankingTag")


def test_seal_envelope__rejects_envelope_over_the_largest_bucket() -> None:
    with pytest.raises(EnvelopeError, match="longer than 65536"):
        seal_envelope(envelope(note("😀" * MAX_CONTENT_CHARS)))


def test_make_envelope__rejects_malformed_parties_and_keys() -> None:
    with pytest.raises(EnvelopeError, match=r"recipient\.device"):
        envelope(recipient=replace(BOB_PHONE, device="P2"))
    with pytest.raises(EnvelopeError, match=r"sender\.ed25519"):
        envelope(sender=replace(ALICE_PHONE, ed25519="short"))
    with pytest.raises(ValueError):
        make_envelope(sender=ALICE_PHONE, recipient=BOB_PHONE, message=note(), franking_key=bytes(16))


# ----------------------------------------------------------------------------- receiving


@pytest.mark.parametrize(
    "me",
    [
        replace(BOB_PHONE, actor=CAROL),
        replace(BOB_PHONE, device="P2ZN"),
        replace(BOB_PHONE, ed25519=fingerprint()),
        CAROL_PHONE,
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


@pytest.mark.parametrize(("sender_actor", "sender_device"), [(CAROL, "K7QX"), (ALICE, "Q9RT"), (ALICE.upper(), "K7QX")])
def test_open_envelope__rejects_sender_that_disagrees_with_the_outer_envelope(
    sender_actor: str, sender_device: str
) -> None:
    env = envelope()
    with pytest.raises(EnvelopeError, match="sender does not match"):
        open_envelope(
            seal_envelope(env),
            me=BOB_PHONE,
            sender_actor=sender_actor,
            sender_device=sender_device,
            outer_tag=env.franking_tag,
        )


def test_open_envelope__rejects_message_from_another_actor_than_the_sending_device() -> None:
    env = envelope(note(sender=CAROL))
    with pytest.raises(EnvelopeError, match="from"):
        open_as(seal_envelope(env), BOB_PHONE, outer_tag=env.franking_tag)


def test_open_envelope__rejects_message_addressed_to_another_member() -> None:
    env = envelope(note(recipient=CAROL))
    with pytest.raises(EnvelopeError, match="to:"):
        open_as(seal_envelope(env), BOB_PHONE, outer_tag=env.franking_tag)


def test_open_envelope__rejects_outer_tag_that_differs_from_the_inner_one() -> None:
    env = envelope()
    other = franking_tag(new_franking_key(), env.message.canonical())
    for outer in (other, env.franking_tag[:-1], b"", env.franking_tag + b"\0"):
        with pytest.raises(FrankingError, match="differs"):
            open_as(seal_envelope(env), BOB_PHONE, outer_tag=outer)


def test_open_envelope__rejects_tampered_message_with_the_original_tag() -> None:
    env = envelope()
    tampered = replace(env.message, body={"type": "Note", "content": "hello Bob, send money"})
    forged = replace(env, message=tampered)
    with pytest.raises(FrankingError, match="does not match"):
        open_as(seal_envelope(forged), BOB_PHONE, outer_tag=env.franking_tag)


def test_open_envelope__rejects_tag_under_another_franking_key() -> None:
    env = envelope()
    forged = replace(env, franking_key=new_franking_key())
    with pytest.raises(FrankingError):
        open_as(seal_envelope(forged), BOB_PHONE, outer_tag=env.franking_tag)


def test_open_envelope__rejects_tampered_expiry() -> None:
    env = envelope(note(expires_in=timedelta(minutes=5)))
    longer = replace(env.message, expires=env.message.created + timedelta(days=365))
    with pytest.raises(FrankingError):
        open_as(seal_envelope(replace(env, message=longer)), BOB_PHONE, outer_tag=env.franking_tag)


@pytest.mark.parametrize(
    "write_pad",
    [
        lambda pad: pad + "A",
        lambda pad: pad + " ",
        lambda pad: "-" + pad,
        lambda pad: pad + "\u0000",
        lambda pad: [pad],
        lambda pad: {"pad": pad},
    ],
)
def test_open_envelope__rejects_pad_of_other_characters_or_types(write_pad: Any) -> None:
    env = envelope()
    doc = {k: v for k, v in sealed_doc(env).items() if k != "pad"}
    plaintext = pad_to_bucket(doc, lambda d: canonical_json({**d, "pad": write_pad(d["pad"])}))
    with pytest.raises(EnvelopeError, match="pad"):
        open_as(plaintext, BOB_PHONE, outer_tag=env.franking_tag)


@pytest.mark.parametrize("cut", [lambda p: p[:-1], lambda p: p + b"=", lambda p: p[:255], lambda p: b""])
def test_open_envelope__rejects_lengths_that_are_not_buckets(cut: Any) -> None:
    env = envelope()
    with pytest.raises(EnvelopeError, match="bucket"):
        open_as(cut(seal_envelope(env)), BOB_PHONE, outer_tag=env.franking_tag)


def test_open_envelope__rejects_json_that_is_not_canonical() -> None:
    env = envelope()
    doc = sealed_doc(env)
    unsorted = pad_to_bucket(doc, lambda d: json.dumps(dict(reversed(list(d.items()))), separators=(",", ":")).encode())
    spaced = pad_to_bucket(doc, lambda d: json.dumps(d, sort_keys=True).encode())
    duplicate = pad_to_bucket(doc, lambda d: b'{"v":2,' + canonical_json(d)[1:])
    for plaintext in (unsorted, spaced, duplicate):
        with pytest.raises(EnvelopeError, match="canonical"):
            open_as(plaintext, BOB_PHONE, outer_tag=env.franking_tag)


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d.update(v=2), "v"),
        (lambda d: d.update(v=True), "v"),
        (lambda d: d.update(v="1"), "v"),
        (lambda d: d.update(extra="x"), "unknown field"),
        (lambda d: d.pop("frankingTag"), "missing field 'frankingTag'"),
        (lambda d: d.update(frankingKey=b64encode(bytes(16))), "frankingKey"),
        (lambda d: d.update(frankingTag="not base64!"), "frankingTag"),
        (lambda d: d["sender"].update(device="K7"), "sender.device"),
        (lambda d: d["recipient"].update(extra=1), "unknown field"),
        (lambda d: d["message"].update(id="x"), "id"),
        (lambda d: d.update(message=[]), "message"),
    ],
)
def test_open_envelope__rejects_malformed_fields(mutate: Any, field: str) -> None:
    env = envelope()
    doc = sealed_doc(env)
    mutate(doc)
    plaintext = pad_to_bucket({k: v for k, v in doc.items() if k != "pad"})
    with pytest.raises(EnvelopeError, match=field):
        open_as(plaintext, BOB_PHONE, outer_tag=env.franking_tag)


@pytest.mark.parametrize(
    "plaintext",
    [
        b"\xff" * 256,
        b"[" * 65536,
        b'{"v":NaN}' + b" " * 247,
        ("\ufeff" + "{}").encode() + b" " * 251,
        bytes(1024),
    ],
)
def test_open_envelope__rejects_bytes_that_are_not_json(plaintext: bytes) -> None:
    assert len(plaintext) in BUCKETS
    with pytest.raises(EnvelopeError):
        open_as(plaintext, BOB_PHONE, outer_tag=bytes(32))


# ----------------------------------------------------------------------------- fuzz

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=25,
)
OUR_ERRORS = (E2EEError, KeyFormatError)
FUZZ_ENVELOPE = envelope()
FUZZ_DOC = sealed_doc(FUZZ_ENVELOPE)
PATHS = [
    ("v",),
    ("sender",),
    ("sender", "actor"),
    ("sender", "ed25519"),
    ("recipient",),
    ("recipient", "device"),
    ("message",),
    ("message", "id"),
    ("message", "created"),
    ("message", "expires"),
    ("message", "body"),
    ("message", "body", "content"),
    ("message", "body", "type"),
    ("frankingKey",),
    ("frankingTag",),
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=600) | st.sampled_from(BUCKETS).flatmap(lambda n: st.binary(min_size=n, max_size=n)))
def test_open_envelope__arbitrary_bytes_raise_only_our_errors(data: bytes) -> None:
    with pytest.raises(OUR_ERRORS):
        open_as(data, BOB_PHONE, outer_tag=FUZZ_ENVELOPE.franking_tag)


@settings(max_examples=300, deadline=None)
@given(value=JSON)
def test_open_envelope__arbitrary_json_padded_to_a_bucket_raises_only_our_errors(value: object) -> None:
    try:
        text = canonical_json(value)
    except ValueError:
        return
    plaintext = text + b" " * (padded_length(len(text)) - len(text))
    with pytest.raises(OUR_ERRORS):
        open_as(plaintext, BOB_PHONE, outer_tag=FUZZ_ENVELOPE.franking_tag)


@settings(max_examples=400, deadline=None)
@given(path=st.sampled_from(PATHS), value=JSON)
def test_open_envelope__mutated_envelopes_raise_only_our_errors(path: tuple[str, ...], value: object) -> None:
    doc = copy.deepcopy(FUZZ_DOC)
    target = doc
    for name in path[:-1]:
        target = target[name]
    target[path[-1]] = value
    try:
        plaintext = pad_to_bucket({k: v for k, v in doc.items() if k != "pad"})
    except (ValueError, EnvelopeError):
        return  # no JCS form, or over the largest bucket
    try:
        open_as(plaintext, BOB_PHONE, outer_tag=FUZZ_ENVELOPE.franking_tag)
    except OUR_ERRORS:
        pass


@settings(max_examples=300, deadline=None)
@given(
    data=JSON
    | st.fixed_dictionaries({}, optional={name: JSON for name in ["id", "from", "to", "created", "expires", "body"]})
)
def test_parse_message__arbitrary_json_raises_only_envelope_errors(data: object) -> None:
    with pytest.raises(EnvelopeError):
        parse_message(data)
