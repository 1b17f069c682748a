"""Errors raised by the crypto layer.

One opaque error per operation an attacker could probe (``VerificationError``): callers learn
*that* something failed, never which byte or check, so no oracle is offered.
"""


class CryptoError(Exception):
    """Base class of everything this package raises on purpose."""


class VerificationError(CryptoError):
    """A password, signature, proof or digest did not verify."""


class KeyFormatError(CryptoError):
    """A key could not be parsed or is of an unsupported type or size."""
