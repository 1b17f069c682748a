"""FEP-8b32 ``eddsa-jcs-2022`` object integrity proofs (crypto/integrity.py).

Vector: FEP-8b32's own test scenarios (tests/vectors/integrity/, provenance in its README).
Oracle: apsig's ProofSigner/ProofVerifier, in both directions.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import base58
import pytest
from apsig import ProofSigner, ProofVerifier
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto.errors import KeyFormatError, VerificationError
from crypto.integrity import proof_method, sign_object, verify_object
from crypto.keys import generate_ed25519, generate_rsa
from crypto.signing import PrivateKey, PublicKey

VECTOR_FILE = Path(__file__).parent / "vectors" / "integrity" / "fep-8b32.json"
METHOD = "https://server.example/users/alice#ed25519-key"
CREATED = datetime(2023, 2, 24, 23, 36, 38, tzinfo=UTC)


@cache
def vector() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(VECTOR_FILE.read_text())
    return loaded


@cache
def fep_private() -> PrivateKey:
    """The FEP's multibase ed25519-priv secret (0x80 0x26 + seed) as a PEM private key."""
    raw = base58.b58decode(vector()["secret_key_multibase"][1:])
    assert raw[:2] == b"\x80\x26" and len(raw) == 34
    pem = (
        ed25519.Ed25519PrivateKey.from_private_bytes(raw[2:])
        .private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        .decode()
    )
    return PrivateKey.from_pem(pem)


@cache
def fep_public() -> PublicKey:
    return PublicKey.from_multibase(vector()["public_key_multibase"])


@cache
def other_ed25519() -> PublicKey:
    return PublicKey.from_pem(generate_ed25519().public_pem)


def signed_vector() -> dict[str, Any]:
    return copy.deepcopy(vector()["signed_document"])


# --------------------------------------------------------------------------- FEP-8b32 vector


def test_fep_8b32_vector__signing_reproduces_the_signed_document() -> None:
    assert fep_private().public_key() == fep_public()
    signed = sign_object(vector()["document"], fep_private(), METHOD, CREATED)
    assert signed == vector()["signed_document"]
    assert "proof" not in vector()["document"]  # the input is not modified


def test_fep_8b32_vector__verifies() -> None:
    verify_object(signed_vector(), fep_public())
    assert proof_method(signed_vector()) == METHOD


# --------------------------------------------------------------------------- cross-checks with apsig


def test_apsig__verifies_our_proof() -> None:
    document = {
        "@context": ["https://www.w3.org/ns/activitystreams", "https://w3id.org/security/data-integrity/v2"],
        "id": "http://127.0.0.2:8080/activities/7",
        "type": "Announce",
        "actor": "http://127.0.0.2:8080/groups/garden",
        "object": {"type": "Note", "content": "Grüße, 🌱", "n": [1, 2.5, -0.0, 1e21]},
    }
    signed = sign_object(document, fep_private(), METHOD, datetime(2026, 8, 5, 12, tzinfo=UTC))
    verifier = ProofVerifier(vector()["public_key_multibase"])
    assert verifier.verify_proof(copy.deepcopy(signed), raise_on_fail=True) == METHOD
    tampered = copy.deepcopy(signed)
    tampered["object"]["content"] = "changed"
    assert verifier.verify_proof(tampered) is None


def test_apsig__its_proof_verifies_with_ours() -> None:
    document = {
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": "http://127.0.0.3:8080/notes/1",
        "type": "Note",
        "content": "from apsig",
    }
    options = {
        "type": "DataIntegrityProof",
        "cryptosuite": "eddsa-jcs-2022",
        "verificationMethod": METHOD,
        "proofPurpose": "assertionMethod",
        "created": "2026-08-05T12:00:00Z",
    }
    signed = ProofSigner(vector()["secret_key_multibase"]).sign(document, options)
    verify_object(signed, fep_public())
    signed["content"] = "changed"
    with pytest.raises(VerificationError):
        verify_object(signed, fep_public())


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("object", "content"), "Goodbye world"),
        (("actor",), "https://evil.example/users/mallory"),
        (("object", "location", "longitude"), -71.184903),
        (("proof", "verificationMethod"), "https://evil.example/users/mallory#ed25519-key"),
        (("proof", "created"), "2023-02-24T23:36:39Z"),
    ],
)
def test_verify_object__tampered_field_refused(path: tuple[str, ...], value: Any) -> None:
    document = signed_vector()
    target = document
    for name in path[:-1]:
        target = target[name]
    target[path[-1]] = value
    with pytest.raises(VerificationError, match="did not verify"):
        verify_object(document, fep_public())


def test_verify_object__added_field_refused() -> None:
    document = signed_vector()
    document["to"] = ["https://www.w3.org/ns/activitystreams#Public"]
    with pytest.raises(VerificationError):
        verify_object(document, fep_public())


def test_verify_object__wrong_key_refused() -> None:
    with pytest.raises(VerificationError, match="did not verify"):
        verify_object(signed_vector(), other_ed25519())
    with pytest.raises(VerificationError, match="Ed25519 keys only"):
        verify_object(signed_vector(), PublicKey.from_pem(generate_rsa().public_pem))


def test_verify_object__missing_proof_refused() -> None:
    document = signed_vector()
    del document["proof"]
    with pytest.raises(VerificationError, match="no proof"):
        verify_object(document, fep_public())
    with pytest.raises(VerificationError, match="no proof"):
        proof_method(document)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("type", "Ed25519Signature2020", "proof type"),
        ("cryptosuite", "eddsa-rdfc-2022", "cryptosuite"),
        ("proofPurpose", "authentication", "purpose"),
        ("verificationMethod", None, "verificationMethod"),
        ("proofValue", "u" + "A" * 86, "base58btc"),
        ("proofValue", "z" + "2" * 20, "Ed25519 signature"),
        ("proofValue", "z0OIl", "base58btc"),
        ("created", "yesterday", "created"),
    ],
)
def test_verify_object__malformed_proof_refused(name: str, value: Any, message: str) -> None:
    document = signed_vector()
    if value is None:
        del document["proof"][name]
    else:
        document["proof"][name] = value
    with pytest.raises(VerificationError, match=message):
        verify_object(document, fep_public())


def test_verify_object__more_than_one_proof_refused() -> None:
    document = signed_vector()
    document["proof"] = [document["proof"], document["proof"]]
    with pytest.raises(VerificationError, match="exactly one proof"):
        verify_object(document, fep_public())
    document["proof"] = document["proof"][:1]
    verify_object(document, fep_public())


def test_verify_object__context_must_start_with_the_proof_context() -> None:
    document = signed_vector()
    document["@context"] = ["https://www.w3.org/ns/activitystreams"]
    with pytest.raises(VerificationError, match="@context"):
        verify_object(document, fep_public())
    # Data Integrity lets later contexts be appended; the proof still covers its own.
    extended = signed_vector()
    extended["@context"] = [*extended["@context"], "https://w3id.org/security/multikey/v1"]
    verify_object(extended, fep_public())


def test_verify_object__expiry_needs_now_and_is_honoured() -> None:
    document = {"@context": "https://www.w3.org/ns/activitystreams", "type": "Note", "content": "x"}
    # sign_object never sets expires; apsig signs proof options that carry one.
    signed = ProofSigner(vector()["secret_key_multibase"]).sign(
        document,
        {
            "type": "DataIntegrityProof",
            "cryptosuite": "eddsa-jcs-2022",
            "verificationMethod": METHOD,
            "proofPurpose": "assertionMethod",
            "created": "2023-02-24T23:36:38Z",
            "expires": "2023-02-25T23:36:38Z",
        },
    )
    verify_object(signed, fep_public(), now=CREATED + timedelta(hours=1))
    with pytest.raises(VerificationError, match="expired"):
        verify_object(signed, fep_public(), now=CREATED + timedelta(days=2))
    with pytest.raises(VerificationError, match="no current time"):
        verify_object(signed, fep_public())


def test_verify_object__legacy_ld_signature_is_ignored() -> None:
    """FEP-8b32: an LD signature is added after the proof and removed before verifying it."""
    document = signed_vector()
    document["signature"] = {"type": "RsaSignature2017", "creator": "x", "signatureValue": "AAAA"}
    verify_object(document, fep_public())


def test_sign_object__refuses_rsa_key_and_existing_proof() -> None:
    with pytest.raises(KeyFormatError):
        sign_object({"type": "Note"}, PrivateKey.from_pem(generate_rsa().private_pem), METHOD, CREATED)
    with pytest.raises(ValueError, match="already carries a proof"):
        sign_object(signed_vector(), fep_private(), METHOD, CREATED)
    with pytest.raises(ValueError, match="timezone"):
        sign_object({"type": "Note"}, fep_private(), METHOD, datetime(2026, 1, 1))


def test_sign_object__without_context_has_no_proof_context() -> None:
    signed = sign_object({"type": "Note", "content": "x"}, fep_private(), METHOD, CREATED)
    assert "@context" not in signed["proof"]
    assert signed["proof"]["created"] == "2023-02-24T23:36:38Z"
    verify_object(signed, fep_public())


# --------------------------------------------------------------------------- properties

_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=15,
)


@settings(max_examples=40, deadline=None)
@given(
    document=st.dictionaries(st.text(max_size=8).filter(lambda k: k not in ("proof", "signature")), _json, max_size=6),
    data=st.data(),
)
def test_property__sign_verify_round_trip_and_any_change_fails(document: dict[str, Any], data: st.DataObject) -> None:
    signed = sign_object(document, fep_private(), METHOD, CREATED)
    verify_object(signed, fep_public())
    changed = copy.deepcopy(signed)
    key = data.draw(st.text(max_size=8).filter(lambda k: k not in ("proof", "signature") and k not in document))
    changed[key] = data.draw(_json)
    with pytest.raises(VerificationError):
        verify_object(changed, fep_public())
