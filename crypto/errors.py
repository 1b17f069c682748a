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


# --- End-to-end encrypted messages (docs/e2ee.md) --------------------------------------------


class E2EEError(CryptoError):
    """A private-message protocol step failed; the message is not shown or not sent."""


class SessionSetupError(E2EEError):
    """An Olm session could not be created: a reused or forged one-time key, a
    non-contributory (all-zero or low-order) key, or a malformed pre-key message."""


class DecryptionError(E2EEError):
    """A ciphertext did not decrypt: tampered, replayed at the Olm layer, or not for us."""


class EnvelopeError(E2EEError):
    """A decrypted inner envelope is malformed or disagrees with its outer envelope
    (wrong recipient: unknown-key-share; sender, id or tag mismatch)."""


class ReplayError(E2EEError):
    """A message id that was already received."""


class FrankingError(E2EEError):
    """A franking tag or server stamp does not verify."""


class DeviceListError(E2EEError):
    """A device list is malformed or its master-key signature does not verify."""


class RollbackError(DeviceListError):
    """A device list older than (or conflicting with) one already seen."""


class MasterKeyChangedError(DeviceListError):
    """A contact's master key differs from the pinned one ("safety number changed")."""


class StoreError(CryptoError):
    """An encrypted local store is malformed."""


class WrongPassphraseError(StoreError):
    """The passphrase does not open this store (or the store was altered)."""
