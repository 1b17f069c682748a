"""FEP-8b32 object integrity proofs with the ``eddsa-jcs-2022`` cryptosuite.

How it works (W3C Data Integrity EdDSA Cryptosuites, §3.3 eddsa-jcs-2022; FEP-8b32; research/
federation.md §2.6 "Object integrity proofs"):

- proof options = ``type: DataIntegrityProof``, ``cryptosuite: eddsa-jcs-2022``,
  ``verificationMethod``, ``proofPurpose: assertionMethod``, ``created``, and the document's
  ``@context`` copied in when the document has one;
- hash data = SHA-256(JCS(proof options)) || SHA-256(JCS(document without ``proof``));
- ``proofValue`` = ``z`` + base58btc(Ed25519 signature over the hash data).

Verification follows the same spec's "Verify Proof": the proof (without ``proofValue``) is the
proof configuration; when it carries ``@context``, the document's ``@context`` must start with
those values in order and the hashed document uses the proof's ``@context``. A legacy LD
signature (``signature`` object) is removed before hashing, as FEP-8b32 requires.

What it refuses (always ``VerificationError``, one opaque class): a missing proof, more than one
proof, any other proof type / cryptosuite / purpose, a malformed ``proofValue``, an expired proof
(``expires`` in the past, or ``expires`` present when no ``now`` is given: a check that cannot be
done fails closed), a key that is not Ed25519, and any signature that does not verify.

Who signed it is the caller's business: ``proof_method`` names the verification method; the
caller resolves it (FEP-521a ``assertionMethod`` of the owner actor, FEP-fe34 origin rules) and
passes the key to ``verify_object``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import base58
import rfc8785

from crypto.errors import KeyFormatError, VerificationError
from crypto.signing import PrivateKey, PublicKey, sha256

PROOF_TYPE = "DataIntegrityProof"
CRYPTOSUITE = "eddsa-jcs-2022"
PROOF_PURPOSE = "assertionMethod"


def _jcs(value: Any) -> bytes:
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, TypeError) as exc:
        raise ValueError(f"document cannot be canonicalized with JCS (RFC 8785): {exc}") from None


def _xsd_datetime(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("created must be a timezone-aware datetime")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _hash_data(proof_options: Mapping[str, Any], unsecured: Mapping[str, Any]) -> bytes:
    return sha256(_jcs(dict(proof_options))) + sha256(_jcs(dict(unsecured)))


def sign_object(
    document: Mapping[str, Any], key: PrivateKey, verification_method: str, created: datetime
) -> dict[str, Any]:
    """Return a copy of ``document`` with an ``eddsa-jcs-2022`` ``proof`` made with ``key``.

    ``key`` must be Ed25519 (the actor's FEP-521a ``assertionMethod`` key, whose id is
    ``verification_method``). A document that already has a ``proof`` is refused: FEP-8b32 says
    objects should not carry more than one.
    """
    if key.kind != "ed25519":
        raise KeyFormatError("eddsa-jcs-2022 proofs need an Ed25519 key")
    if "proof" in document:
        raise ValueError("document already carries a proof")
    unsecured = copy.deepcopy(dict(document))
    proof: dict[str, Any] = {}
    if "@context" in unsecured:
        proof["@context"] = copy.deepcopy(unsecured["@context"])
    proof.update(
        {
            "type": PROOF_TYPE,
            "cryptosuite": CRYPTOSUITE,
            "verificationMethod": verification_method,
            "proofPurpose": PROOF_PURPOSE,
            "created": _xsd_datetime(created),
        }
    )
    signature = key.sign(_hash_data(proof, unsecured))
    proof["proofValue"] = "z" + base58.b58encode(signature).decode()
    return {**unsecured, "proof": proof}


def _single_proof(document: Mapping[str, Any]) -> dict[str, Any]:
    """The one well-formed eddsa-jcs-2022 proof of ``document``, or ``VerificationError``."""
    proof = document.get("proof")
    if isinstance(proof, list):
        if len(proof) != 1:
            raise VerificationError(f"expected exactly one proof, found {len(proof)}")
        proof = proof[0]
    if proof is None:
        raise VerificationError("document has no proof")
    if not isinstance(proof, dict):
        raise VerificationError("proof is not an object")
    if proof.get("type") != PROOF_TYPE:
        raise VerificationError(f"proof type must be {PROOF_TYPE}")
    if proof.get("cryptosuite") != CRYPTOSUITE:
        raise VerificationError(f"proof cryptosuite must be {CRYPTOSUITE}")
    if proof.get("proofPurpose") != PROOF_PURPOSE:
        raise VerificationError(f"proof purpose must be {PROOF_PURPOSE}")
    method = proof.get("verificationMethod")
    if not isinstance(method, str) or not method:
        raise VerificationError("proof has no verificationMethod")
    value = proof.get("proofValue")
    if not isinstance(value, str) or not value.startswith("z"):
        raise VerificationError("proofValue must be a base58btc multibase string")
    for name in ("created", "expires"):
        if name in proof:
            _parse_xsd_datetime(proof[name], name)
    return proof


def _parse_xsd_datetime(value: object, name: str) -> datetime:
    if not isinstance(value, str):
        raise VerificationError(f"proof {name} is not a date-time string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise VerificationError(f"proof {name} is not a valid date-time") from None
    if parsed.tzinfo is None:
        raise VerificationError(f"proof {name} has no time zone")
    return parsed


def proof_method(document: Mapping[str, Any]) -> str:
    """The ``verificationMethod`` of the document's single well-formed proof.

    Raises ``VerificationError`` if there is no such proof. Nothing is verified here: the caller
    uses the answer to find the key, then calls ``verify_object``.
    """
    method: str = _single_proof(document)["verificationMethod"]
    return method


def _as_list(context: object) -> list[Any]:
    return list(context) if isinstance(context, list) else [context]


def verify_object(document: Mapping[str, Any], key: PublicKey, *, now: datetime | None = None) -> None:
    """Check the document's ``eddsa-jcs-2022`` proof with the Ed25519 ``key``.

    Returns nothing or raises ``VerificationError``. ``now`` is only needed for proofs that carry
    ``expires``; without it such proofs are refused.
    """
    if key.kind != "ed25519":
        raise VerificationError("eddsa-jcs-2022 proofs are verified with Ed25519 keys only")
    proof = _single_proof(document)
    if "expires" in proof:
        if now is None:
            raise VerificationError("proof has an expiry and no current time was given to check it")
        if _parse_xsd_datetime(proof["expires"], "expires") < now:
            raise VerificationError("proof has expired")
    try:
        signature = base58.b58decode(proof["proofValue"][1:])
    except ValueError:
        raise VerificationError("proofValue is not valid base58btc") from None
    if len(signature) != 64:
        raise VerificationError("proofValue does not hold an Ed25519 signature")

    options = {name: value for name, value in proof.items() if name != "proofValue"}
    unsecured = {name: value for name, value in document.items() if name != "proof"}
    legacy_signature = unsecured.get("signature")
    if isinstance(legacy_signature, dict) and isinstance(legacy_signature.get("type"), str):
        # FEP-8b32 "Backward compatibility": an LD signature is added after the proof.
        del unsecured["signature"]
    if "@context" in options:
        wanted = _as_list(options["@context"])
        if "@context" not in unsecured or _as_list(unsecured["@context"])[: len(wanted)] != wanted:
            raise VerificationError("document @context does not start with the proof's @context")
        unsecured["@context"] = options["@context"]
    try:
        hash_data = _hash_data(options, unsecured)
    except ValueError:
        raise VerificationError("document cannot be canonicalized with JCS") from None
    key.verify(signature, hash_data)
