"""Master keys, signed device lists and one-time-key signatures (crypto/devicelist.py), and the
strict wire encodings they rest on (crypto/encoding.py).

Vector: RFC 8032 §7.1 "TEST 1" (Ed25519, empty message), https://www.rfc-editor.org/rfc/rfc8032
section 7.1, written inline below. A device's fingerprint key is played by a pynacl
``SigningKey`` (what vodozemac's ``Account.sign`` produces is checked in the Olm tests).
"""

from __future__ import annotations

import base64
import copy
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

from crypto import encoding
from crypto.devicelist import (
    MAX_DEVICES,
    OLM_PROTOCOL,
    DeviceEntry,
    DeviceList,
    MasterKey,
    check_successor,
    one_time_key_payload,
    parse_device_list,
    sign_device_list,
    verify_ed25519,
    verify_one_time_key,
)
from crypto.encoding import b64decode, b64encode, canonical_json, parse_utc_time, utc_time
from crypto.errors import (
    DeviceListError,
    E2EEError,
    KeyFormatError,
    MasterKeyChangedError,
    RollbackError,
    VerificationError,
)

ALICE = "https://a.example/users/alice"
AT = datetime(2026, 11, 21, 10, 0, 0, tzinfo=UTC)

# RFC 8032 §7.1, TEST 1.
RFC8032_SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC8032_PUBLIC = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
RFC8032_SIGNATURE = bytes.fromhex(
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
)


def random_key() -> str:
    return b64encode(bytes(SigningKey.generate().verify_key))


def entry(device_id: str) -> DeviceEntry:
    return DeviceEntry(device_id=device_id, identity_key=random_key(), fingerprint_key=random_key())


def signed(master: MasterKey, *, version: int = 1, devices: list[DeviceEntry] | None = None) -> DeviceList:
    return sign_device_list(
        master,
        actor=ALICE,
        version=version,
        devices=devices if devices is not None else [entry("P2ZM"), entry("K7QX")],
        signed_at=AT,
    )


def resign(master: MasterKey, doc: dict[str, Any]) -> dict[str, Any]:
    """Sign ``doc`` exactly as given (bypassing sign_device_list's own checks)."""
    payload = {name: value for name, value in doc.items() if name != "signature"}
    return {**payload, "signature": master.sign(canonical_json(payload))}


def resign_if_possible(master: MasterKey, doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` signed as given, or unchanged when JCS cannot write it (e.g. version 2**53)."""
    try:
        return resign(master, doc)
    except ValueError:
        return doc


@pytest.fixture
def master() -> MasterKey:
    return MasterKey.generate()


# ----------------------------------------------------------------------------- encodings


def test_b64decode__accepts_padded_and_unpadded_standard_base64() -> None:
    assert b64decode("QQ", field="f") == b"A"
    assert b64decode("QQ==", field="f") == b"A"
    assert b64decode("+/8", field="f") == b"\xfb\xff"
    assert b64encode(b"\xfb\xff") == "+/8"


@pytest.mark.parametrize(
    "text",
    ["QQ=", "Q", "QR", "QQ=\n", " QQ", "Q Q", "-_8", "QQ==QQ", "QQ===", "=", "Ｑ Ｑ", "QQ\u200b"],
)
def test_b64decode__rejects_anything_but_canonical_standard_base64(text: str) -> None:
    with pytest.raises(ValueError, match="masterKey"):
        b64decode(text, field="masterKey")


B64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def fixed_size_texts(size: int) -> st.SearchStrategy[str]:
    raw = st.binary(min_size=size, max_size=size)
    return (
        raw.map(lambda data: base64.b64encode(data).decode())
        | raw.map(b64encode)
        # A valid text whose last character (the slack bits) or padding is anything.
        | st.tuples(raw, st.sampled_from(B64_ALPHABET + "=-_ "), st.sampled_from(["", "=", "=="])).map(
            lambda parts: b64encode(parts[0])[:-1] + parts[1] + parts[2]
        )
        | st.text(alphabet=B64_ALPHABET + "=-_ \n", min_size=len(b64encode(bytes(size))) - 3, max_size=size * 2)
    )


@settings(max_examples=400, deadline=None)
@given(data=st.data(), size=st.sampled_from([32, 64]))
def test_b64decode__the_fixed_size_fast_path_agrees_with_the_general_reader(data: st.DataObject, size: int) -> None:
    """b64decode(size=32 or 64) takes a one-pattern path for keys and signatures: it must accept
    exactly what the general reader accepts at that size, and decode it the same."""
    text = data.draw(fixed_size_texts(size))
    try:
        general: bytes | None = b64decode(text, field="k")
    except ValueError:
        general = None
    try:
        fast: bytes | None = b64decode(text, field="k", size=size)
    except ValueError:
        fast = None
    assert fast == (general if general is not None and len(general) == size else None)


def test_b64decode__checks_exact_and_maximum_size() -> None:
    with pytest.raises(ValueError, match="identityKey: expected 32 bytes"):
        b64decode(b64encode(bytes(31)), field="identityKey", size=32)
    with pytest.raises(ValueError, match="longer than 4"):
        b64decode(b64encode(bytes(5)), field="x", max_size=4)
    assert b64decode(b64encode(bytes(4)), field="x", max_size=4) == bytes(4)


def test_b64decode__bounds_the_text_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def must_not_decode(*args: object, **kwargs: object) -> bytes:
        raise AssertionError("decoded an oversized field")

    monkeypatch.setattr(encoding.base64, "b64decode", must_not_decode)
    with pytest.raises(ValueError, match="longer than 32"):
        b64decode("A" * 10_000_000, field="key", size=32)


def test_utc_time__second_precision_z_suffix() -> None:
    moment = datetime(2026, 11, 21, 11, 0, 0, 999_999, tzinfo=timezone(timedelta(hours=1)))
    assert utc_time(moment) == "2026-11-21T10:00:00Z"
    assert parse_utc_time("2026-11-21T10:00:00Z", field="t") == datetime(2026, 11, 21, 10, tzinfo=UTC)
    with pytest.raises(ValueError):
        utc_time(datetime(2026, 11, 21))  # naive


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-21T10:00:00+00:00",
        "2026-11-21T10:00:00.5Z",
        "2026-11-21t10:00:00z",
        "2026-11-21 10:00:00Z",
        "2026-02-30T10:00:00Z",
        "2026-11-21T24:00:00Z",
        "２０２６-11-21T10:00:00Z",
        "2026-11-21T10:00:00Z\n",
        "",
    ],
)
def test_parse_utc_time__rejects_other_spellings(text: str) -> None:
    with pytest.raises(ValueError, match="signedAt"):
        parse_utc_time(text, field="signedAt")


# ----------------------------------------------------------------------------- master key


def test_master_key__signs_like_rfc8032_test_1() -> None:
    master = MasterKey.from_seed(RFC8032_SEED)
    assert b64decode(master.public_key, field="k") == RFC8032_PUBLIC
    assert b64decode(master.sign(b""), field="s") == RFC8032_SIGNATURE
    verify_ed25519(b64encode(RFC8032_PUBLIC), b"", b64encode(RFC8032_SIGNATURE))
    with pytest.raises(VerificationError):
        verify_ed25519(b64encode(RFC8032_PUBLIC), b"x", b64encode(RFC8032_SIGNATURE))


def test_master_key__repr_hides_the_seed(master: MasterKey) -> None:
    assert master.public_key in repr(master)
    assert b64encode(master.seed) not in repr(master)
    assert master.seed.hex() not in repr(master)


def test_master_key__rejects_wrong_seed_length() -> None:
    with pytest.raises(KeyFormatError):
        MasterKey.from_seed(bytes(31))


def test_verify_ed25519__bad_key_is_key_format_error_bad_signature_is_verification_error() -> None:
    with pytest.raises(KeyFormatError):
        verify_ed25519("not-a-key", b"", b64encode(RFC8032_SIGNATURE))
    with pytest.raises(VerificationError):
        verify_ed25519(b64encode(RFC8032_PUBLIC), b"", "AAAA")


def test_recovery_code__round_trip_and_format(master: MasterKey) -> None:
    code = master.recovery_code()
    groups = code.split("-")
    assert [len(group) for group in groups] == [4] * 13 + [3]
    assert set(code.replace("-", "")) <= set("0123456789ABCDEFGHJKMNPQRSTVWXYZ")
    assert MasterKey.from_recovery_code(code).seed == master.seed


def test_recovery_code__forgives_case_spaces_dashes_and_lookalikes() -> None:
    master = MasterKey.from_seed(bytes(range(32)))
    code = master.recovery_code()
    assert MasterKey.from_recovery_code(code.lower().replace("-", " ")).seed == master.seed
    assert MasterKey.from_recovery_code(code.replace("-", "")).seed == master.seed
    sloppy = code.replace("0", "o").replace("1", "l")
    assert sloppy != code
    assert MasterKey.from_recovery_code(sloppy).seed == master.seed


def test_recovery_code__every_single_character_typo_is_detected() -> None:
    master = MasterKey.from_seed(bytes.fromhex("5c" * 32))
    compact = master.recovery_code().replace("-", "")
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    for position, original in enumerate(compact):
        for replacement in alphabet:
            if replacement == original:
                continue
            typo = compact[:position] + replacement + compact[position + 1 :]
            with pytest.raises(KeyFormatError):
                MasterKey.from_recovery_code(typo)


def test_recovery_code__swapped_neighbours_are_detected() -> None:
    master = MasterKey.from_seed(bytes.fromhex("5c" * 32))
    compact = master.recovery_code().replace("-", "")
    for position in range(len(compact) - 1):
        if compact[position] == compact[position + 1]:
            continue
        swapped = compact[:position] + compact[position + 1] + compact[position] + compact[position + 2 :]
        with pytest.raises(KeyFormatError):
            MasterKey.from_recovery_code(swapped)


@pytest.mark.parametrize("mangle", [lambda c: c[:-1], lambda c: c + "0", lambda c: "U" + c[1:], lambda c: ""])
def test_recovery_code__rejects_wrong_length_and_letters(master: MasterKey, mangle: Any) -> None:
    with pytest.raises(KeyFormatError):
        MasterKey.from_recovery_code(mangle(master.recovery_code()))


# ----------------------------------------------------------------------------- device lists


def test_device_list__round_trip_in_the_documented_shape(master: MasterKey) -> None:
    device_list = signed(master, version=3)
    doc = json.loads(json.dumps(device_list.to_json()))
    assert list(doc) == ["actor", "version", "signedAt", "masterKey", "devices", "signature"]
    assert doc["signedAt"] == "2026-11-21T10:00:00Z"
    assert doc["masterKey"] == master.public_key
    assert [device["deviceId"] for device in doc["devices"]] == ["K7QX", "P2ZM"]
    assert set(doc["devices"][0]) == {"deviceId", "identityKey", "fingerprintKey", "protocols"}
    assert doc["devices"][0]["protocols"] == [OLM_PROTOCOL]
    parsed = parse_device_list(doc)
    assert parsed == device_list
    assert parsed.device("K7QX") == device_list.devices[0]
    assert parsed.device("NOPE") is None


def test_device_list__signature_covers_the_jcs_payload(master: MasterKey) -> None:
    doc = signed(master).to_json()
    payload = canonical_json({name: value for name, value in doc.items() if name != "signature"})
    verify_ed25519(master.public_key, payload, doc["signature"])


def test_device_list__keys_are_written_unpadded(master: MasterKey) -> None:
    padded = base64.b64encode(bytes(SigningKey.generate().verify_key)).decode()
    assert padded.endswith("=")
    device_list = signed(master, devices=[DeviceEntry("K7QX", padded, padded)])
    assert device_list.devices[0].identity_key == padded.rstrip("=")


def test_device_list__rejects_signature_by_another_key(master: MasterKey) -> None:
    doc = signed(master).to_json()
    forged = resign(MasterKey.generate(), doc)
    forged["masterKey"] = doc["masterKey"]
    with pytest.raises(DeviceListError, match="signature does not verify"):
        parse_device_list(forged)


def test_device_list__rejects_device_injected_without_resigning(master: MasterKey) -> None:
    doc = signed(master).to_json()
    doc["devices"].append(entry("ZZZZ").to_json())
    with pytest.raises(DeviceListError, match="signature does not verify"):
        parse_device_list(doc)


@pytest.mark.parametrize("field", ["identityKey", "fingerprintKey"])
def test_device_list__rejects_modified_device_key(master: MasterKey, field: str) -> None:
    doc = signed(master).to_json()
    doc["devices"][1][field] = random_key()
    with pytest.raises(DeviceListError, match="signature does not verify"):
        parse_device_list(doc)


@pytest.mark.parametrize(
    ("field", "value"),
    [("version", 2), ("actor", "https://a.example/users/mallory"), ("signedAt", "2026-11-21T10:00:01Z")],
)
def test_device_list__rejects_modified_header(master: MasterKey, field: str, value: object) -> None:
    doc = signed(master).to_json()
    doc[field] = value
    with pytest.raises(DeviceListError, match="signature does not verify"):
        parse_device_list(doc)


def test_device_list__rejects_removed_device(master: MasterKey) -> None:
    doc = signed(master).to_json()
    del doc["devices"][0]
    with pytest.raises(DeviceListError, match="signature does not verify"):
        parse_device_list(doc)


@pytest.mark.parametrize("signature", ["!", "", b64encode(bytes(63)), b64encode(bytes(64)), None, 7])
def test_device_list__rejects_malformed_signature(master: MasterKey, signature: object) -> None:
    doc = signed(master).to_json()
    doc["signature"] = signature
    with pytest.raises(DeviceListError, match="signature"):
        parse_device_list(doc)


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d.update(extra=1), "unknown field 'extra'"),
        (lambda d: d["devices"][0].update(name="Alice's phone"), "unknown field 'name'"),
        (lambda d: d.pop("signedAt"), "missing field 'signedAt'"),
        (lambda d: d["devices"][0].pop("protocols"), "missing field 'protocols'"),
        (lambda d: d.update(version=0), "version"),
        (lambda d: d.update(version=2**53), "version"),
        (lambda d: d.update(version=True), "version"),
        (lambda d: d.update(version=1.0), "version"),
        (lambda d: d.update(version="1"), "version"),
        (lambda d: d.update(actor=""), "actor"),
        (lambda d: d.update(actor="https://a.example/users/al ice"), "actor"),
        (lambda d: d.update(signedAt="2026-11-21T10:00:00.000Z"), "signedAt"),
        (lambda d: d.update(masterKey=b64encode(bytes(31))), "masterKey"),
        (lambda d: d.update(devices={}), "devices"),
        (lambda d: d["devices"][0].update(identityKey=b64encode(bytes(33))), r"devices\[0\].identityKey"),
        (lambda d: d["devices"][0].update(fingerprintKey=7), r"devices\[0\].fingerprintKey"),
        (lambda d: d["devices"][0].update(deviceId="K7Q"), r"devices\[0\].deviceId"),
        (lambda d: d["devices"][0].update(deviceId="K7 QX"), r"devices\[0\].deviceId"),
        (lambda d: d["devices"][0].update(protocols=[]), r"devices\[0\].protocols"),
        (lambda d: d["devices"][0].update(protocols=[OLM_PROTOCOL, OLM_PROTOCOL]), r"devices\[0\].protocols"),
        (lambda d: d["devices"][0].update(protocols=["has space"]), r"devices\[0\].protocols"),
    ],
)
def test_device_list__rejects_malformed_fields_even_when_signed(master: MasterKey, mutate: Any, field: str) -> None:
    doc = signed(master).to_json()
    mutate(doc)
    with pytest.raises(DeviceListError, match=field):
        parse_device_list(resign_if_possible(master, doc))


def test_device_list__rejects_duplicate_device_ids(master: MasterKey) -> None:
    doc = signed(master).to_json()
    doc["devices"][1]["deviceId"] = doc["devices"][0]["deviceId"]
    with pytest.raises(DeviceListError, match="duplicate deviceId"):
        parse_device_list(resign(master, doc))
    with pytest.raises(DeviceListError, match="duplicate deviceId"):
        signed(master, devices=[entry("K7QX"), entry("K7QX")])


def test_device_list__rejects_unsorted_devices(master: MasterKey) -> None:
    doc = signed(master).to_json()
    doc["devices"].reverse()
    with pytest.raises(DeviceListError, match="not sorted"):
        parse_device_list(resign(master, doc))


def test_device_list__rejects_more_than_the_maximum_devices(master: MasterKey) -> None:
    devices = [entry(f"D{index:04d}") for index in range(MAX_DEVICES + 1)]
    with pytest.raises(DeviceListError, match="at most 100"):
        signed(master, devices=devices)
    doc = signed(master, devices=devices[:MAX_DEVICES]).to_json()
    assert len(parse_device_list(doc).devices) == MAX_DEVICES
    doc["devices"].append(devices[-1].to_json())
    with pytest.raises(DeviceListError, match="at most 100"):
        parse_device_list(resign(master, doc))


def test_device_list__accepts_padded_keys_it_was_signed_with(master: MasterKey) -> None:
    doc = signed(master).to_json()
    doc["devices"][0]["identityKey"] += "="
    parsed = parse_device_list(resign(master, doc))
    assert parsed.devices[0].identity_key.endswith("=")


@pytest.mark.parametrize("doc", [None, [], "list", 3, {"actor": ALICE}])
def test_device_list__rejects_non_documents(doc: object) -> None:
    with pytest.raises(DeviceListError):
        parse_device_list(doc)


@pytest.mark.parametrize(
    "devices",
    [
        [DeviceEntry("K7Q", random_key(), random_key())],
        [DeviceEntry("K7QX", "not base64", random_key())],
        [DeviceEntry("K7QX", random_key(), b64encode(bytes(16)))],
        [DeviceEntry("K7QX", random_key(), random_key(), protocols=())],
    ],
)
def test_sign_device_list__refuses_malformed_entries(master: MasterKey, devices: list[DeviceEntry]) -> None:
    with pytest.raises(DeviceListError):
        signed(master, devices=devices)


def test_sign_device_list__refuses_bad_version_and_actor(master: MasterKey) -> None:
    with pytest.raises(DeviceListError, match="version"):
        signed(master, version=0)
    with pytest.raises(DeviceListError, match="actor"):
        sign_device_list(master, actor="", version=1, devices=[], signed_at=AT)


# ----------------------------------------------------------------------------- successors


def test_check_successor__trusts_first_list_and_accepts_newer(master: MasterKey) -> None:
    first = signed(master, version=3)
    check_successor(None, first)
    check_successor(first, signed(master, version=4, devices=[*first.devices, entry("ZZZZ")]))
    check_successor(first, parse_device_list(copy.deepcopy(first.to_json())))


def test_check_successor__rejects_rollback_to_older_version(master: MasterKey) -> None:
    pinned = signed(master, version=3)
    older = signed(master, version=2, devices=list(pinned.devices))
    with pytest.raises(RollbackError, match="older"):
        check_successor(pinned, older)


def test_check_successor__rejects_same_version_with_other_content(master: MasterKey) -> None:
    pinned = signed(master, version=3)
    equivocation = signed(master, version=3, devices=[*pinned.devices, entry("ZZZZ")])
    with pytest.raises(RollbackError, match="different list"):
        check_successor(pinned, equivocation)
    retimed = sign_device_list(
        master, actor=ALICE, version=3, devices=pinned.devices, signed_at=AT + timedelta(seconds=1)
    )
    with pytest.raises(RollbackError):
        check_successor(pinned, retimed)


def test_check_successor__rejects_changed_master_key_unless_accepted(master: MasterKey) -> None:
    pinned = signed(master, version=3)
    other = MasterKey.generate()
    replaced = signed(other, version=9, devices=list(pinned.devices))
    with pytest.raises(MasterKeyChangedError):
        check_successor(pinned, replaced)
    check_successor(pinned, replaced, accept_new_master_key=True)
    # A member who reset their master key starts again at version 1.
    check_successor(pinned, signed(other, version=1), accept_new_master_key=True)


def test_check_successor__rejects_another_actor(master: MasterKey) -> None:
    pinned = signed(master)
    mallory = sign_device_list(
        master, actor="https://a.example/users/mallory", version=2, devices=pinned.devices, signed_at=AT
    )
    with pytest.raises(DeviceListError, match="another actor") as raised:
        check_successor(pinned, mallory)
    assert type(raised.value) is DeviceListError


# ----------------------------------------------------------------------------- one-time keys


OTK = {"actor": ALICE, "device_id": "K7QX", "key_id": "AAAAAQ", "key": b64encode(bytes(range(32))), "fallback": False}


def test_one_time_key_payload__is_jcs_of_the_documented_fields() -> None:
    expected = (
        '{"actor":"https://a.example/users/alice","deviceId":"K7QX","fallback":false,'
        '"key":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8","keyId":"AAAAAQ"}'
    )
    assert one_time_key_payload(**OTK) == expected.encode()


@settings(max_examples=300, deadline=None)
@given(
    actor=st.text(min_size=1, max_size=60).map(lambda tail: "https://a.example/u/" + tail),
    device_id=st.from_regex(r"[A-Za-z0-9_-]{4,64}", fullmatch=True),
    key_id=st.from_regex(r"[A-Za-z0-9_+/=-]{1,64}", fullmatch=True),
    raw_key=st.binary(min_size=32, max_size=32),
    fallback=st.booleans(),
)
def test_one_time_key_payload__equals_rfc8785_on_arbitrary_values(
    actor: str, device_id: str, key_id: str, raw_key: bytes, fallback: bool
) -> None:
    """The payload is written by hand for speed; it must be exactly what JCS writes, quotes,
    backslashes, non-ASCII and astral characters in the actor included."""
    fields = {"actor": actor, "device_id": device_id, "key_id": key_id, "key": b64encode(raw_key), "fallback": fallback}
    try:
        payload = one_time_key_payload(**fields)  # type: ignore[arg-type]
    except ValueError:
        return  # not an actor id (whitespace, unprintable): nothing is signed
    reference = {"actor": actor, "deviceId": device_id, "keyId": key_id, "key": fields["key"], "fallback": fallback}
    assert payload == canonical_json(reference)


def test_one_time_key_payload__escapes_like_jcs() -> None:
    actor = 'https://a.example/users/"al\\ice"/é/😀'
    payload = one_time_key_payload(**{**OTK, "actor": actor})
    assert payload == canonical_json(
        {
            **{k: v for k, v in OTK.items() if k in ("key", "fallback")},
            "actor": actor,
            "deviceId": "K7QX",
            "keyId": "AAAAAQ",
        }
    )


def test_one_time_key__signature_by_fingerprint_key_verifies() -> None:
    device = SigningKey.generate()
    signature = b64encode(device.sign(one_time_key_payload(**OTK)).signature)
    verify_one_time_key(b64encode(bytes(device.verify_key)), signature=signature, **OTK)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("actor", "https://a.example/users/mallory"),
        ("device_id", "P2ZM"),
        ("key_id", "AAAAAg"),
        ("key", b64encode(bytes(32))),
        ("fallback", True),
    ],
)
def test_one_time_key__signature_is_bound_to_every_field(field: str, value: object) -> None:
    device = SigningKey.generate()
    signature = b64encode(device.sign(one_time_key_payload(**OTK)).signature)
    with pytest.raises(VerificationError):
        verify_one_time_key(b64encode(bytes(device.verify_key)), signature=signature, **{**OTK, field: value})


def test_one_time_key__rejects_signature_by_another_device() -> None:
    signature = b64encode(SigningKey.generate().sign(one_time_key_payload(**OTK)).signature)
    with pytest.raises(VerificationError):
        verify_one_time_key(random_key(), signature=signature, **OTK)


@pytest.mark.parametrize(
    ("field", "value"),
    [("key_id", ""), ("key_id", "a.b"), ("key", b64encode(bytes(31))), ("device_id", "x"), ("fallback", 0)],
)
def test_one_time_key__malformed_claims_do_not_verify(field: str, value: object) -> None:
    with pytest.raises(VerificationError):
        verify_one_time_key(random_key(), signature=b64encode(bytes(64)), **{**OTK, field: value})
    with pytest.raises(ValueError):
        one_time_key_payload(**{**OTK, field: value})


def test_one_time_key__bad_fingerprint_key_is_a_key_format_error() -> None:
    with pytest.raises(KeyFormatError):
        verify_one_time_key(b64encode(bytes(31)), signature=b64encode(bytes(64)), **OTK)


# ----------------------------------------------------------------------------- fuzz

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)
FIELDS = ["actor", "version", "signedAt", "masterKey", "devices", "signature"]
DEVICE_FIELDS = ["deviceId", "identityKey", "fingerprintKey", "protocols"]
FUZZ_MASTER = MasterKey.from_seed(bytes(range(32)))
FUZZ_LIST = signed(FUZZ_MASTER).to_json()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=JSON)
def test_parse_device_list__arbitrary_json_raises_only_device_list_errors(doc: object) -> None:
    with pytest.raises(DeviceListError):
        parse_device_list(doc)


@settings(max_examples=300, deadline=None)
@given(
    field=st.sampled_from(FIELDS + [f"devices.{name}" for name in DEVICE_FIELDS]),
    value=JSON,
    resign_it=st.booleans(),
)
def test_parse_device_list__mutated_documents_raise_only_our_errors(field: str, value: object, resign_it: bool) -> None:
    doc = copy.deepcopy(FUZZ_LIST)
    if field.startswith("devices."):
        doc["devices"][0][field.split(".", 1)[1]] = value
    else:
        doc[field] = value
    if resign_it:
        try:
            doc = resign(FUZZ_MASTER, doc)
        except ValueError:
            pass  # not canonicalizable: parse must refuse it anyway
    try:
        parse_device_list(doc)
    except (E2EEError, KeyFormatError):
        pass
