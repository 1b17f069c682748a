"""Conformance of the primitives under the private messages (research/e2ee.md §8(d) items 1-4).

Vectors (tests/vectors/e2ee/, provenance in its README):

- RFC 7748 §5.2 and §6.1 X25519, with pynacl (libsodium) and ``cryptography`` (OpenSSL);
  vodozemac's public-key derivation agrees with libsodium's.
- RFC 8032 §7.1 Ed25519 TEST 1, 2, 3 and SHA(abc), with pynacl and ``cryptography``; our Olm
  account's signatures verify under pynacl and ``verify_ed25519`` agrees with pynacl.
- RFC 5869 Appendix A.1-A.3 HKDF-SHA-256 with ``cryptography``.
- Wycheproof (C2SP) X25519, Ed25519, HKDF-SHA-256, HMAC-SHA-256 and XChaCha20-Poly1305, every
  vector against the primitive we call directly, parametrized by tcId.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from functools import cache
from pathlib import Path
from typing import Any

import nacl.bindings
import nacl.exceptions
import nacl.signing
import pytest
import vodozemac
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, x25519
from cryptography.hazmat.primitives.hmac import HMAC
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from crypto.encoding import b64decode, b64encode
from crypto.errors import VerificationError
from crypto.olm import OlmAccount, verify_ed25519

VECTORS = Path(__file__).parent / "vectors" / "e2ee"
WYCHEPROOF = VECTORS / "wycheproof"


@cache
def load(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((VECTORS / name).read_text(encoding="utf-8"))
    return loaded


def wycheproof_cases(name: str) -> list[Any]:
    """(group, test) pairs of a Wycheproof file, each with id ``tc<tcId>-<result>``."""
    data = json.loads((WYCHEPROOF / name).read_text(encoding="utf-8"))
    return [
        pytest.param(group, test, id=f"tc{test['tcId']}-{test['result']}")
        for group in data["testGroups"]
        for test in group["tests"]
    ]


def raw_x25519_public(private: x25519.X25519PrivateKey) -> bytes:
    return private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def x25519_cryptography(scalar: bytes, u: bytes) -> bytes:
    return x25519.X25519PrivateKey.from_private_bytes(scalar).exchange(x25519.X25519PublicKey.from_public_bytes(u))


def x25519_nacl(scalar: bytes, u: bytes) -> bytes:
    # libsodium clamps the scalar and masks the top bit of u exactly as RFC 7748 §5 says.
    return nacl.bindings.crypto_scalarmult(scalar, u)


# ------------------------------------------------------------------------------ RFC 7748


@pytest.mark.parametrize("case", load("rfc7748-x25519.json")["scalar_mult"], ids=lambda case: case["name"])
@pytest.mark.parametrize("implementation", [x25519_nacl, x25519_cryptography], ids=["pynacl", "cryptography"])
def test_x25519__rfc7748_scalar_mult_vectors(case: dict[str, str], implementation: Any) -> None:
    scalar, u = bytes.fromhex(case["scalar"]), bytes.fromhex(case["u"])
    assert implementation(scalar, u).hex() == case["output"]


@pytest.mark.parametrize("implementation", [x25519_nacl, x25519_cryptography], ids=["pynacl", "cryptography"])
def test_x25519__rfc7748_iterated_vectors_1_and_1000(implementation: Any) -> None:
    iterated = load("rfc7748-x25519.json")["iterated"]
    k = u = bytes.fromhex(iterated["start"])
    for step in range(1, 1001):
        k, u = implementation(k, u), k
        if str(step) in iterated["after"]:
            assert k.hex() == iterated["after"][str(step)], f"after {step} iterations"


def test_x25519__rfc7748_diffie_hellman_with_pynacl_and_cryptography() -> None:
    dh = load("rfc7748-x25519.json")["diffie_hellman"]
    alice, bob = bytes.fromhex(dh["alice_private"]), bytes.fromhex(dh["bob_private"])
    for name in ("alice", "bob"):
        private = bytes.fromhex(dh[f"{name}_private"])
        assert nacl.bindings.crypto_scalarmult_base(private).hex() == dh[f"{name}_public"]
        assert raw_x25519_public(x25519.X25519PrivateKey.from_private_bytes(private)).hex() == dh[f"{name}_public"]
    for implementation in (x25519_nacl, x25519_cryptography):
        assert implementation(alice, bytes.fromhex(dh["bob_public"])).hex() == dh["shared"]
        assert implementation(bob, bytes.fromhex(dh["alice_public"])).hex() == dh["shared"]


def test_x25519__vodozemac_public_key_equals_libsodium() -> None:
    dh = load("rfc7748-x25519.json")["diffie_hellman"]
    for name in ("alice", "bob"):
        private = bytes.fromhex(dh[f"{name}_private"])
        derived = vodozemac.Curve25519SecretKey.from_bytes(private).public_key().to_bytes()
        assert derived == nacl.bindings.crypto_scalarmult_base(private)
        assert derived.hex() == dh[f"{name}_public"]
    for case in load("rfc7748-x25519.json")["scalar_mult"]:
        scalar = bytes.fromhex(case["scalar"])
        assert vodozemac.Curve25519SecretKey.from_bytes(scalar).public_key().to_bytes() == (
            nacl.bindings.crypto_scalarmult_base(scalar)
        )


# ------------------------------------------------------------------------------ RFC 8032


@pytest.mark.parametrize("case", load("rfc8032-ed25519.json")["tests"], ids=lambda case: case["name"])
def test_ed25519__rfc8032_vectors_with_pynacl(case: dict[str, str]) -> None:
    signing = nacl.signing.SigningKey(bytes.fromhex(case["secret_key"]))
    message = bytes.fromhex(case["message"])
    assert bytes(signing.verify_key).hex() == case["public_key"]
    assert signing.sign(message).signature.hex() == case["signature"]
    nacl.signing.VerifyKey(bytes.fromhex(case["public_key"])).verify(message, bytes.fromhex(case["signature"]))


@pytest.mark.parametrize("case", load("rfc8032-ed25519.json")["tests"], ids=lambda case: case["name"])
def test_ed25519__rfc8032_vectors_with_cryptography(case: dict[str, str]) -> None:
    private = ed25519.Ed25519PrivateKey.from_private_bytes(bytes.fromhex(case["secret_key"]))
    message = bytes.fromhex(case["message"])
    public = private.public_key()
    assert public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex() == case["public_key"]
    assert private.sign(message).hex() == case["signature"]
    public.verify(bytes.fromhex(case["signature"]), message)


@pytest.mark.parametrize("case", load("rfc8032-ed25519.json")["tests"], ids=lambda case: case["name"])
def test_ed25519__rfc8032_vectors_with_verify_ed25519(case: dict[str, str]) -> None:
    key = b64encode(bytes.fromhex(case["public_key"]))
    message = bytes.fromhex(case["message"])
    signature = bytes.fromhex(case["signature"])
    assert verify_ed25519(key, message, b64encode(signature)) is None
    with pytest.raises(VerificationError):
        verify_ed25519(key, message + b"x", b64encode(signature))


def test_ed25519__olm_account_signature_verifies_under_pynacl() -> None:
    account = OlmAccount.create()
    message = b'{"actor":"https://a.example/users/alice","deviceId":"K7QX"}'
    signature = b64decode(account.sign(message), field="signature", size=64)
    verify_key = nacl.signing.VerifyKey(b64decode(account.fingerprint_key, field="key", size=32))
    assert verify_key.verify(message, signature) == message
    with pytest.raises(nacl.exceptions.BadSignatureError):
        verify_key.verify(message + b" ", signature)


def test_ed25519__verify_ed25519_agrees_with_pynacl_on_a_tampered_signature() -> None:
    account = OlmAccount.create()
    message = b"one-time key AAAAAAAAAAA"
    good = b64decode(account.sign(message), field="signature", size=64)
    verify_key = nacl.signing.VerifyKey(b64decode(account.fingerprint_key, field="key", size=32))
    assert verify_ed25519(account.fingerprint_key, message, b64encode(good)) is None
    for position in (0, 31, 32, 63):
        tampered = bytearray(good)
        tampered[position] ^= 0x01
        with pytest.raises(nacl.exceptions.BadSignatureError):
            verify_key.verify(message, bytes(tampered))
        with pytest.raises(VerificationError):
            verify_ed25519(account.fingerprint_key, message, b64encode(bytes(tampered)))


def test_ed25519__verify_ed25519_refuses_malformed_keys_and_signatures() -> None:
    account = OlmAccount.create()
    message = b"hello"
    signature = account.sign(message)
    for key, sig in [
        (account.fingerprint_key[:-2], signature),  # 31-byte key
        (account.fingerprint_key, signature[:-3]),  # 62-byte signature
        (account.fingerprint_key.replace("+", "-").replace("/", "_") + "!", signature),  # not base64
        (account.fingerprint_key, signature + "AAAA"),  # 67 bytes: garbage after the signature
        (OlmAccount.create().fingerprint_key, signature),  # someone else's key
    ]:
        with pytest.raises(VerificationError):
            verify_ed25519(key, message, sig)


# ------------------------------------------------------------------------------ RFC 5869


@pytest.mark.parametrize("case", load("rfc5869-hkdf-sha256.json")["tests"], ids=lambda case: case["name"])
def test_hkdf__rfc5869_vectors(case: dict[str, Any]) -> None:
    ikm, salt, info = (bytes.fromhex(case[field]) for field in ("ikm", "salt", "info"))
    # Extract by hand (HMAC-SHA-256 keyed with the salt, zeros when empty: RFC 5869 §2.2).
    assert hmac.new(salt or bytes(32), ikm, hashlib.sha256).hexdigest() == case["prk"]
    okm = HKDF(algorithm=hashes.SHA256(), length=case["length"], salt=salt or None, info=info).derive(ikm)
    assert okm.hex() == case["okm"]


# ------------------------------------------------------------------------------ Wycheproof


@pytest.mark.parametrize(("group", "test"), wycheproof_cases("x25519_test.json"))
def test_wycheproof__x25519_with_pynacl(group: dict[str, Any], test: dict[str, Any]) -> None:
    assert group["curve"] == "curve25519"
    private, public, shared = (bytes.fromhex(test[field]) for field in ("private", "public", "shared"))
    try:
        output: bytes | None = x25519_nacl(private, public)
    except nacl.exceptions.RuntimeError:
        output = None  # libsodium refuses an all-zero result (low-order point)
    if test["result"] == "valid":
        assert output == shared
    elif shared == bytes(32):
        # A low-order public point gives an all-zero secret: libsodium must refuse it, which is
        # what keeps non-contributory keys out of every DH we do with pynacl.
        assert output is None
    else:
        # "acceptable" (non-canonical or twist points): the file permits refusing; if libsodium
        # computes, the value must be RFC 7748's.
        assert output is None or output == shared
    if output is not None:
        assert output != bytes(32)


@pytest.mark.parametrize(("group", "test"), wycheproof_cases("ed25519_test.json"))
def test_wycheproof__ed25519_with_pynacl_and_verify_ed25519(group: dict[str, Any], test: dict[str, Any]) -> None:
    public = bytes.fromhex(group["publicKey"]["pk"])
    message, signature = bytes.fromhex(test["msg"]), bytes.fromhex(test["sig"])
    try:
        nacl.signing.VerifyKey(public).verify(message, signature)
        nacl_accepts = True
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError):
        nacl_accepts = False
    try:
        verify_ed25519(b64encode(public), message, b64encode(signature))
        ours_accepts = True
    except VerificationError:
        ours_accepts = False
    expected = test["result"] == "valid"
    assert (nacl_accepts, ours_accepts) == (expected, expected)


@pytest.mark.parametrize(("group", "test"), wycheproof_cases("hkdf_sha256_test.json"))
def test_wycheproof__hkdf_sha256_with_cryptography(group: dict[str, Any], test: dict[str, Any]) -> None:
    ikm, salt, info = (bytes.fromhex(test[field]) for field in ("ikm", "salt", "info"))
    try:
        okm: bytes | None = HKDF(algorithm=hashes.SHA256(), length=test["size"], salt=salt or None, info=info).derive(
            ikm
        )
    except ValueError:
        okm = None  # more than 255 blocks of output (RFC 5869 §2.3)
    if test["result"] == "valid":
        assert okm == bytes.fromhex(test["okm"])
    else:
        assert test["size"] > 255 * 32
        assert okm is None


@pytest.mark.parametrize(("group", "test"), wycheproof_cases("hmac_sha256_test.json"))
def test_wycheproof__hmac_sha256_with_stdlib_and_cryptography(group: dict[str, Any], test: dict[str, Any]) -> None:
    key, message, tag = (bytes.fromhex(test[field]) for field in ("key", "msg", "tag"))
    tag_bytes = group["tagSize"] // 8
    stdlib = hmac.new(key, message, hashlib.sha256).digest()
    mac = HMAC(key, hashes.SHA256())
    mac.update(message)
    assert mac.finalize() == stdlib
    matches = hmac.compare_digest(stdlib[:tag_bytes], tag)
    assert matches is (test["result"] == "valid")
    if tag_bytes == 32:
        full = HMAC(key, hashes.SHA256())
        full.update(message)
        if test["result"] == "valid":
            full.verify(tag)
        else:
            with pytest.raises(InvalidSignature):
                full.verify(tag)


@pytest.mark.parametrize(("group", "test"), wycheproof_cases("xchacha20_poly1305_test.json"))
def test_wycheproof__xchacha20_poly1305_with_pynacl(group: dict[str, Any], test: dict[str, Any]) -> None:
    key, nonce, aad, message = (bytes.fromhex(test[field]) for field in ("key", "iv", "aad", "msg"))
    sealed = bytes.fromhex(test["ct"] + test["tag"])
    if test["result"] == "valid":
        assert nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(message, aad, nonce, key) == sealed
        assert nacl.bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(sealed, aad, nonce, key) == message
    else:
        with pytest.raises((nacl.exceptions.CryptoError, nacl.exceptions.ValueError, nacl.exceptions.TypeError)):
            nacl.bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(sealed, aad, nonce, key)


def test_wycheproof__files_are_the_vendored_versions() -> None:
    """Each vendored file is whole: its declared test count matches what it holds."""
    for name in (
        "x25519_test.json",
        "ed25519_test.json",
        "hkdf_sha256_test.json",
        "hmac_sha256_test.json",
        "xchacha20_poly1305_test.json",
    ):
        data = json.loads((WYCHEPROOF / name).read_text(encoding="utf-8"))
        assert data["numberOfTests"] == sum(len(group["tests"]) for group in data["testGroups"]), name


def test_wycheproof__aead_invalid_vectors_include_tag_and_nonce_tampering() -> None:
    """The invalid XChaCha20-Poly1305 vectors exercise what we rely on (tag checks, nonce size)."""
    data = json.loads((WYCHEPROOF / "xchacha20_poly1305_test.json").read_text(encoding="utf-8"))
    flags = {
        flag
        for group in data["testGroups"]
        for test in group["tests"]
        if test["result"] == "invalid"
        for flag in test["flags"]
    }
    assert {"ModifiedTag", "InvalidNonceSize"} <= flags
