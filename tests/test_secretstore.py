"""At-rest encryption of the client key store (crypto/secretstore.py).

All derivations use ``TEST_PARAMS`` (libsodium's minimum Argon2id cost), so the whole file runs
in well under a second of key derivation.
"""

from __future__ import annotations

import json
import unicodedata

import nacl.pwhash.argon2id
import pytest

from crypto.encoding import b64encode, canonical_json
from crypto.errors import StoreError, WrongPassphraseError
from crypto.secretstore import (
    DEFAULT_PARAMS,
    MAGIC,
    MAX_MEMLIMIT,
    MAX_OPSLIMIT,
    TEST_PARAMS,
    KdfParams,
    StoreKey,
    open_store,
    seal_store,
)

PASSPHRASE = "correct horse battery staple"
PLAINTEXT = b'{"account":"pickled olm account","sessions":[]}'


def split(blob: bytes) -> tuple[dict[str, object], bytes]:
    header_line, _, box = blob[len(MAGIC) :].partition(b"\n")
    header: dict[str, object] = json.loads(header_line)
    return header, box


def with_header(blob: bytes, header: dict[str, object], *, raw: bytes | None = None) -> bytes:
    _, box = split(blob)
    return MAGIC + (raw if raw is not None else canonical_json(header)) + b"\n" + box


@pytest.fixture(scope="module")
def blob() -> bytes:
    return seal_store(PASSPHRASE, PLAINTEXT, params=TEST_PARAMS)


def test_store__round_trip(blob: bytes) -> None:
    assert open_store(PASSPHRASE, blob) == PLAINTEXT
    assert open_store("x", seal_store("x", b"", params=TEST_PARAMS)) == b""


def test_store__has_the_documented_format(blob: bytes) -> None:
    assert blob.startswith(b"HEARTHSIDE-STORE-1\n")
    header, box = split(blob)
    assert header == {
        "kdf": "argon2id13",
        "opslimit": TEST_PARAMS.opslimit,
        "memlimit": TEST_PARAMS.memlimit,
        "salt": header["salt"],
    }
    assert canonical_json(header) in blob
    assert len(box) == 24 + len(PLAINTEXT) + 16
    assert PLAINTEXT not in blob


def test_store__each_seal_uses_a_fresh_salt_and_nonce() -> None:
    one = seal_store(PASSPHRASE, PLAINTEXT, params=TEST_PARAMS)
    two = seal_store(PASSPHRASE, PLAINTEXT, params=TEST_PARAMS)
    assert split(one)[0]["salt"] != split(two)[0]["salt"]
    assert split(one)[1][:24] != split(two)[1][:24]


def test_store__rejects_wrong_passphrase(blob: bytes) -> None:
    for wrong in ("correct horse battery stapl", "Correct horse battery staple", PASSPHRASE + " "):
        with pytest.raises(WrongPassphraseError):
            open_store(wrong, blob)


def test_store__rejects_empty_passphrase(blob: bytes) -> None:
    with pytest.raises(ValueError):
        seal_store("", PLAINTEXT, params=TEST_PARAMS)
    with pytest.raises(ValueError):
        open_store("", blob)


def test_store__passphrase_is_nfc_normalised() -> None:
    composed = "café ünïcode"
    decomposed = unicodedata.normalize("NFD", composed)
    assert composed != decomposed
    assert open_store(decomposed, seal_store(composed, PLAINTEXT, params=TEST_PARAMS)) == PLAINTEXT


def test_store__rejects_every_flipped_bit_of_every_byte(blob: bytes) -> None:
    for position in range(len(blob)):
        for bit in (0x01, 0x80):
            altered = bytearray(blob)
            altered[position] ^= bit
            with pytest.raises(StoreError):
                open_store(PASSPHRASE, bytes(altered))


def test_store__rejects_every_truncation(blob: bytes) -> None:
    for length in range(len(blob)):
        with pytest.raises(StoreError):
            open_store(PASSPHRASE, blob[:length])


def test_store__rejects_appended_bytes(blob: bytes) -> None:
    with pytest.raises(WrongPassphraseError):
        open_store(PASSPHRASE, blob + b"\0")


@pytest.mark.parametrize(
    "change",
    [
        {"memlimit": 2**40},
        {"memlimit": MAX_MEMLIMIT + 1},
        {"opslimit": MAX_OPSLIMIT + 1},
        {"opslimit": 2**32},
        {"opslimit": 0},
        {"memlimit": 1024},
        {"memlimit": 8193},
        {"memlimit": True},
        {"opslimit": 1.5},
        {"memlimit": "8192"},
    ],
)
def test_store__refuses_crafted_kdf_cost_before_deriving(
    blob: bytes, change: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    def must_not_derive(*args: object, **kwargs: object) -> bytes:
        raise AssertionError("derived a key with crafted parameters")

    monkeypatch.setattr(nacl.pwhash.argon2id, "kdf", must_not_derive)
    header, _ = split(blob)
    try:
        crafted = with_header(blob, {**header, **change})
    except ValueError:  # e.g. 2**60 has no JCS form: write it by hand
        crafted = with_header(blob, header, raw=json.dumps({**header, **change}, sort_keys=True).encode())
    with pytest.raises(StoreError, match="out of bounds"):
        open_store(PASSPHRASE, crafted)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"kdf": "scrypt"}, "unsupported KDF"),
        ({"extra": 1}, "exactly the fields"),
        ({"salt": b64encode(bytes(15))}, "salt"),
        ({"salt": "not base64!"}, "salt"),
        ({"salt": None}, "salt"),
    ],
)
def test_store__rejects_malformed_header(blob: bytes, change: dict[str, object], message: str) -> None:
    header, _ = split(blob)
    with pytest.raises(StoreError, match=message):
        open_store(PASSPHRASE, with_header(blob, {**header, **change}))


def test_store__rejects_header_that_is_not_canonical(blob: bytes) -> None:
    header, _ = split(blob)
    for raw in (json.dumps(header).encode(), json.dumps(header, sort_keys=True, indent=None).encode(), b"[]", b"{"):
        with pytest.raises(StoreError):
            open_store(PASSPHRASE, with_header(blob, header, raw=raw))


@pytest.mark.parametrize(
    "bad",
    [b"", b"HEARTHSIDE-STORE-2\n", b"hearthside-store-1\n" + b"x" * 100, MAGIC + b"x" * 1000, MAGIC + b"\n"],
)
def test_store__rejects_other_files(bad: bytes) -> None:
    with pytest.raises(StoreError):
        open_store(PASSPHRASE, bad)


def test_kdf_params__are_bounded() -> None:
    assert DEFAULT_PARAMS == KdfParams(opslimit=3, memlimit=64 * 1024 * 1024)
    with pytest.raises(ValueError):
        KdfParams(opslimit=MAX_OPSLIMIT + 1, memlimit=DEFAULT_PARAMS.memlimit)
    with pytest.raises(ValueError):
        KdfParams(opslimit=3, memlimit=MAX_MEMLIMIT + 1)
    with pytest.raises(ValueError):
        KdfParams(opslimit=3, memlimit=DEFAULT_PARAMS.memlimit + 1)


# ----------------------------------------------------------------------------- StoreKey


def test_store_key__derives_once_and_seals_many_times(monkeypatch: pytest.MonkeyPatch) -> None:
    key = StoreKey.create(PASSPHRASE, TEST_PARAMS)
    calls = []
    real_kdf = nacl.pwhash.argon2id.kdf

    def counting_kdf(*args: object, **kwargs: object) -> bytes:
        calls.append(1)
        return real_kdf(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(nacl.pwhash.argon2id, "kdf", counting_kdf)
    first = key.seal(b"one")
    second = key.seal(b"two")
    assert key.unseal(first) == b"one"
    assert key.unseal(second) == b"two"
    assert calls == []
    assert split(first)[0] == split(second)[0]
    assert open_store(PASSPHRASE, second) == b"two"
    assert calls == [1]


def test_store_key__open_returns_a_key_for_the_same_file(blob: bytes) -> None:
    key, plaintext = StoreKey.open(PASSPHRASE, blob)
    assert plaintext == PLAINTEXT
    resealed = key.seal(b"updated")
    assert split(resealed)[0] == split(blob)[0]
    assert open_store(PASSPHRASE, resealed) == b"updated"


def test_store_key__derive_matches_the_file_key(blob: bytes) -> None:
    salt = StoreKey.open(PASSPHRASE, blob)[0].salt
    assert StoreKey.derive(PASSPHRASE, salt, TEST_PARAMS).unseal(blob) == PLAINTEXT
    with pytest.raises(WrongPassphraseError):
        StoreKey.derive("wrong", salt, TEST_PARAMS).unseal(blob)


def test_store_key__refuses_file_sealed_under_another_salt(blob: bytes) -> None:
    other = StoreKey.create(PASSPHRASE, TEST_PARAMS)
    with pytest.raises(StoreError, match="another key"):
        other.unseal(blob)


def test_store_key__repr_hides_the_key(blob: bytes) -> None:
    key, _ = StoreKey.open(PASSPHRASE, blob)
    assert repr(key) == f"StoreKey(params={TEST_PARAMS!r})"


def test_store_key__rejects_bad_salt() -> None:
    with pytest.raises(ValueError):
        StoreKey.derive(PASSPHRASE, bytes(8), TEST_PARAMS)
