"""Olm sessions, device accounts and SAS verification: a thin typed wrapper over vodozemac.

Why vodozemac (research/e2ee.md §3, §8(a)1): Olm is the Double Ratchet over a 3DH handshake
with one-time keys; vodozemac is Matrix's Rust implementation, audited (Least Authority, 2022),
deployed at scale, and interoperable with libolm (tests/test_olm.py checks both directions).
We do not write our own ratchet. This is the only module that imports ``vodozemac``, pinned to
0.10.x, so that it could be replaced behind this interface.

What it guarantees:

- Forward secrecy (a message key is deleted once used) and post-compromise security (every
  round trip runs a fresh Diffie-Hellman ratchet step), deniability (no signatures on
  messages).
- Non-contributory keys are refused: an all-zero or low-order identity key or one-time key
  fails session setup (vodozemac 0.10 makes ``diffie_hellman`` fallible), as does a reused or
  unknown one-time key and a pre-key message whose identity key is not the claimed one.
- One opaque error per operation an attacker can probe: ``SessionSetupError`` for setup,
  ``DecryptionError`` for any tampered, replayed, truncated or foreign ciphertext and for a
  pickle the key does not open. Which check failed is never said.
- Public keys, signatures and pickles are vodozemac's standard base64 without padding
  (docs/e2ee.md, "Encodings"); keys given to us are read with ``crypto.encoding.b64decode``
  (padded or unpadded, canonical only).
- **One spelling per message.** vodozemac 0.10 checks the MAC over its own re-encoding of a
  message, not over the bytes received, and keeps Curve25519 keys as sent though X25519 ignores
  their top bit. So some altered ciphertexts would open to the *same* plaintext: a normal
  message whose zero chain index is moved to an unknown protobuf field, or a pre-key message
  with the top bit of a key set (the exhaustive bit-flip tests in tests/test_olm.py found
  both; libolm refuses the first). No plaintext can be changed that way, but a ciphertext
  would not be unique. We refuse any message whose bytes differ from vodozemac's encoding of
  it, and any Curve25519 key that is not canonical (top bit set, or not below 2^255 - 19), in
  messages and in the keys callers pass.

What to know (recorded on purpose):

- **Olm v1 truncates the message MAC to 8 bytes** (the libolm spec). The Python binding
  cannot select vodozemac's v2 session config (full MACs); Signal's Double Ratchet spec §6.6
  accepts truncated tags: a forged message has a 2^-64 chance per attempt, and each attempt
  is an online delivery the recipient sees fail.
- **No associated data.** ``encrypt`` takes only the plaintext, so nothing outside the
  ciphertext is authenticated by Olm. The envelope fields a recipient relies on (sender and
  recipient actor, device and key; message id) are repeated inside the plaintext and compared
  after decryption (docs/e2ee.md, "Messages"; the Olm spec requires the identifiers against
  unknown-key-share).
- **Fallback keys are reusable by design**: when the one-time-key pool is empty a claim returns
  the signed fallback key, and every session started from it shares that key until it is
  rotated (weaker forward secrecy for the first message only). It also means a pre-key message
  made with the fallback key can start a session again when replayed: Olm does not stop that
  replay, the message-id cache above it does (docs/e2ee.md). One-time keys are single use.
- Creating an inbound session consumes the one-time key inside the account: pickle the account
  before acknowledging the message, or a crash would make the key usable again.
- ``PkEncryption`` is never used: vodozemac's changelog (0.8.0) says it "contains a critical
  flaw". Reports are sealed with pynacl elsewhere.

SAS (Short Authentication String): ``SasSession`` / ``EstablishedSas`` wrap vodozemac's ``Sas``;
the seven emoji come from the Matrix specification's table (below).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import NamedTuple

import vodozemac

from crypto.encoding import b64decode, b64encode
from crypto.errors import DecryptionError, SessionSetupError, VerificationError

MESSAGE_TYPE_PRE_KEY = 0
MESSAGE_TYPE_NORMAL = 1
PICKLE_KEY_SIZE = 32
KEY_SIZE = 32
SIGNATURE_SIZE = 64

_CURVE25519_P = 2**255 - 19
# Where the keys sit in a pre-key message as vodozemac (and libolm) encode it: version byte 3,
# then protobuf fields 1 (one-time key), 2 (base key) and 3 (identity key), each a 32-byte
# string (tag byte, length 0x20, key), then field 4 (the inner message).
_PRE_KEY_KEY_FIELDS = ((1, b"\x0a\x20"), (35, b"\x12\x20"), (69, b"\x1a\x20"))

# The SAS emoji table, numbers 0..63 (emoji, English description), from the Matrix
# Client-Server API, "SAS method: emoji": matrix-org/matrix-spec, data-definitions/sas-emoji.json
# at commit d0ba2aaef801e0134a4e5c6054a2c2f41bb55531 (a copy is kept in
# tests/vectors/e2ee/sas-emoji.json and the tests compare the two).
SAS_EMOJI: tuple[tuple[str, str], ...] = (
    ("\U0001f436", "Dog"),
    ("\U0001f431", "Cat"),
    ("\U0001f981", "Lion"),
    ("\U0001f40e", "Horse"),
    ("\U0001f984", "Unicorn"),
    ("\U0001f437", "Pig"),
    ("\U0001f418", "Elephant"),
    ("\U0001f430", "Rabbit"),
    ("\U0001f43c", "Panda"),
    ("\U0001f413", "Rooster"),
    ("\U0001f427", "Penguin"),
    ("\U0001f422", "Turtle"),
    ("\U0001f41f", "Fish"),
    ("\U0001f419", "Octopus"),
    ("\U0001f98b", "Butterfly"),
    ("\U0001f337", "Flower"),
    ("\U0001f333", "Tree"),
    ("\U0001f335", "Cactus"),
    ("\U0001f344", "Mushroom"),
    ("\U0001f30f", "Globe"),
    ("\U0001f319", "Moon"),
    ("\u2601\ufe0f", "Cloud"),
    ("\U0001f525", "Fire"),
    ("\U0001f34c", "Banana"),
    ("\U0001f34e", "Apple"),
    ("\U0001f353", "Strawberry"),
    ("\U0001f33d", "Corn"),
    ("\U0001f355", "Pizza"),
    ("\U0001f382", "Cake"),
    ("\u2764\ufe0f", "Heart"),
    ("\U0001f600", "Smiley"),
    ("\U0001f916", "Robot"),
    ("\U0001f3a9", "Hat"),
    ("\U0001f453", "Glasses"),
    ("\U0001f527", "Spanner"),
    ("\U0001f385", "Santa"),
    ("\U0001f44d", "Thumbs Up"),
    ("\u2602\ufe0f", "Umbrella"),
    ("\u231b", "Hourglass"),
    ("\u23f0", "Clock"),
    ("\U0001f381", "Gift"),
    ("\U0001f4a1", "Light Bulb"),
    ("\U0001f4d5", "Book"),
    ("\u270f\ufe0f", "Pencil"),
    ("\U0001f4ce", "Paperclip"),
    ("\u2702\ufe0f", "Scissors"),
    ("\U0001f512", "Lock"),
    ("\U0001f511", "Key"),
    ("\U0001f528", "Hammer"),
    ("\u260e\ufe0f", "Telephone"),
    ("\U0001f3c1", "Flag"),
    ("\U0001f682", "Train"),
    ("\U0001f6b2", "Bicycle"),
    ("\u2708\ufe0f", "Aeroplane"),
    ("\U0001f680", "Rocket"),
    ("\U0001f3c6", "Trophy"),
    ("\u26bd", "Ball"),
    ("\U0001f3b8", "Guitar"),
    ("\U0001f3ba", "Trumpet"),
    ("\U0001f514", "Bell"),
    ("\u2693", "Anchor"),
    ("\U0001f3a7", "Headphones"),
    ("\U0001f4c1", "Folder"),
    ("\U0001f4cc", "Pin"),
)


@dataclass(frozen=True, slots=True)
class OneTimeKey:
    """A one-time or fallback key to publish: vodozemac's key id and the Curve25519 public key."""

    key_id: str
    key: str


class OlmCiphertext(NamedTuple):
    """One Olm message: type 0 = pre-key (starts a session), 1 = normal; ``body`` is raw bytes.
    (A named tuple: one is made per message each way, and a tuple is the cheapest to build.)"""

    message_type: int
    body: bytes


def _check_pickle_key(key: bytes) -> None:
    if not isinstance(key, bytes) or len(key) != PICKLE_KEY_SIZE:
        raise ValueError(f"pickle key must be exactly {PICKLE_KEY_SIZE} bytes")


def _canonical_curve25519(raw: bytes) -> bool:
    """RFC 7748 §5: a u-coordinate below p, top bit clear (which "below p" implies). A last
    byte under 0x7f already puts it below 2^255 - 2^248 < p: only the rest need the full test."""
    return len(raw) == KEY_SIZE and (raw[-1] < 0x7F or int.from_bytes(raw, "little") < _CURVE25519_P)


def _curve25519(value: str, field: str) -> vodozemac.Curve25519PublicKey:
    """A canonical Curve25519 public key from base64; anything else is a ``SessionSetupError``."""
    found = _read_curve25519(value) if isinstance(value, str) else "is not a Curve25519 public key"
    if isinstance(found, str):
        raise SessionSetupError(f"{field} {found}")
    return found


@functools.lru_cache(maxsize=4096)
def _read_curve25519(value: str) -> vodozemac.Curve25519PublicKey | str:
    """The key, or why ``value`` is not one. Remembered: a device meets the same identity keys
    again and again (the key objects are immutable)."""
    try:
        raw = b64decode(value, field="key", size=KEY_SIZE)
    except ValueError:
        return "is not a Curve25519 public key"
    if not _canonical_curve25519(raw):
        return "is not a canonical Curve25519 public key"
    try:
        return vodozemac.Curve25519PublicKey.from_bytes(raw)
    except ValueError:
        return "is not a Curve25519 public key"


def _canonical_pre_key_keys(body: bytes) -> bool:
    if len(body) < _PRE_KEY_KEY_FIELDS[-1][0] + 2 + KEY_SIZE:
        return False
    for at, tag in _PRE_KEY_KEY_FIELDS:
        if body[at : at + 2] != tag:
            return False
        # Below 0x7f in the last byte is canonical (see _canonical_curve25519); else the full test.
        if body[at + 1 + KEY_SIZE] >= 0x7F and not _canonical_curve25519(body[at + 2 : at + 2 + KEY_SIZE]):
            return False
    return True


def _olm_message(ciphertext: OlmCiphertext) -> vodozemac.AnyOlmMessage | None:
    """The vodozemac message, or ``None`` when the parts do not parse or are not spelled the
    one way vodozemac spells them (see "One spelling per message" above)."""
    if not isinstance(ciphertext, OlmCiphertext) or not isinstance(ciphertext.body, bytes):
        return None
    if ciphertext.message_type not in (MESSAGE_TYPE_PRE_KEY, MESSAGE_TYPE_NORMAL):
        return None
    try:
        message = vodozemac.AnyOlmMessage.from_parts(ciphertext.message_type, ciphertext.body)
    except (ValueError, OverflowError):
        return None
    if message.to_parts()[1] != ciphertext.body:
        return None
    if ciphertext.message_type == MESSAGE_TYPE_PRE_KEY and not _canonical_pre_key_keys(ciphertext.body):
        return None
    return message


class PreKey:
    """A pre-key message read once (and checked for its one spelling), to compare with known
    sessions and then start a new one without reading it again."""

    __slots__ = ("_message",)

    def __init__(self, *, _message: vodozemac.PreKeyMessage) -> None:
        self._message = _message


def read_pre_key(ciphertext: OlmCiphertext) -> PreKey | None:
    """The pre-key message in ``ciphertext``, or ``None`` (a normal message, or one that does
    not parse or is not spelled the one way)."""
    message = _pre_key_message(ciphertext)
    return None if message is None else PreKey(_message=message)


def _pre_key_message(ciphertext: OlmCiphertext) -> vodozemac.PreKeyMessage | None:
    if ciphertext.message_type != MESSAGE_TYPE_PRE_KEY:
        return None
    message = _olm_message(ciphertext)
    return None if message is None else message.to_pre_key()


def _ciphertext(message: vodozemac.AnyOlmMessage) -> OlmCiphertext:
    message_type, body = message.to_parts()
    return OlmCiphertext(message_type, bytes(body))


class OlmAccount:
    """A device's long-term Olm identity: Curve25519 identity key, Ed25519 fingerprint key,
    one-time and fallback keys. Mutable (keys are generated and consumed): pickle it after
    every change."""

    __slots__ = ("_account",)

    def __init__(self, *, _account: vodozemac.Account) -> None:
        # Not for callers: use create() or from_pickle().
        self._account = _account

    def __repr__(self) -> str:
        return f"OlmAccount(identity_key={self.identity_key!r})"

    @classmethod
    def create(cls) -> OlmAccount:
        """A new account with fresh random keys."""
        return cls(_account=vodozemac.Account())

    @property
    def identity_key(self) -> str:
        """The Curve25519 identity key (base64)."""
        return self._account.curve25519_key.to_base64()

    @property
    def fingerprint_key(self) -> str:
        """The Ed25519 fingerprint (signing) key (base64)."""
        return self._account.ed25519_key.to_base64()

    @property
    def max_one_time_keys(self) -> int:
        """How many unpublished one-time keys the account keeps."""
        return self._account.max_number_of_one_time_keys

    def sign(self, message: bytes) -> str:
        """An Ed25519 signature of ``message`` by the fingerprint key (base64)."""
        return self._account.sign(message).to_base64()

    def unpublished_one_time_keys(self) -> list[OneTimeKey]:
        """The one-time keys generated and not yet marked published."""
        keys = self._account.one_time_keys
        return [OneTimeKey(key_id=key_id, key=keys[key_id].to_base64()) for key_id in sorted(keys)]

    def generate_one_time_keys(self, count: int) -> list[OneTimeKey]:
        """Make ``count`` new one-time keys; returns every unpublished one (earlier ones too)."""
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= self.max_one_time_keys:
            raise ValueError(f"count must be between 1 and {self.max_one_time_keys}")
        self._account.generate_one_time_keys(count)
        return self.unpublished_one_time_keys()

    def mark_published(self) -> None:
        """Record that the unpublished one-time and fallback keys were uploaded."""
        self._account.mark_keys_as_published()

    def unpublished_fallback_key(self) -> OneTimeKey | None:
        """The fallback key generated and not yet marked published, if any."""
        fallback: dict[str, vodozemac.Curve25519PublicKey] = self._account.fallback_key  # type: ignore[attr-defined]
        for key_id, key in fallback.items():
            return OneTimeKey(key_id=key_id, key=key.to_base64())
        return None

    def generate_fallback_key(self) -> OneTimeKey:
        """Make a new fallback key and return it (unpublished). The previous one stays usable
        until the next rotation, so messages in flight still open."""
        # generate_fallback_key / fallback_key exist at runtime but not in vodozemac's stub.
        self._account.generate_fallback_key()  # type: ignore[attr-defined]
        fallback: dict[str, vodozemac.Curve25519PublicKey] = self._account.fallback_key  # type: ignore[attr-defined]
        ((key_id, key),) = fallback.items()
        return OneTimeKey(key_id=key_id, key=key.to_base64())

    def outbound_session(self, identity_key: str, one_time_key: str) -> OlmSession:
        """Start a session to a device from its identity key and a claimed one-time (or
        fallback) key. The caller has already checked the key's signature."""
        identity = _curve25519(identity_key, "identity key")
        one_time = _curve25519(one_time_key, "one-time key")
        try:
            session = self._account.create_outbound_session(identity, one_time)
        except ValueError:
            raise SessionSetupError("no session can be made with these keys") from None
        return OlmSession(_session=session)

    def inbound_session(self, identity_key: str, ciphertext: OlmCiphertext | PreKey) -> tuple[OlmSession, bytes]:
        """Accept a pre-key message from the device with ``identity_key``: the new session and
        the first plaintext. Consumes the one-time key (pickle the account afterwards)."""
        identity = _curve25519(identity_key, "identity key")
        message = ciphertext._message if isinstance(ciphertext, PreKey) else _pre_key_message(ciphertext)
        if message is None:
            raise SessionSetupError("not a pre-key message")
        try:
            session, plaintext = self._account.create_inbound_session(identity, message)
        except ValueError:
            raise SessionSetupError("the pre-key message does not start a session") from None
        return OlmSession(_session=session), bytes(plaintext)

    def pickle(self, key: bytes) -> str:
        """The account encrypted under the 32-byte ``key`` (for the local key store)."""
        _check_pickle_key(key)
        return self._account.pickle(key)

    @classmethod
    def from_pickle(cls, pickled: str, key: bytes) -> OlmAccount:
        """Restore an account; ``DecryptionError`` if ``key`` does not open ``pickled``."""
        _check_pickle_key(key)
        try:
            return cls(_account=vodozemac.Account.from_pickle(pickled, key))
        except (ValueError, TypeError):
            raise DecryptionError("pickle key does not open this state") from None


class OlmSession:
    """One Olm session between two devices (both directions). Mutable: every encrypt and
    decrypt advances the ratchet, so pickle it after each."""

    __slots__ = ("_id", "_session")

    def __init__(self, *, _session: vodozemac.Session) -> None:
        # Not for callers: sessions come from OlmAccount or from_pickle().
        self._session = _session
        self._id: str | None = None

    def __repr__(self) -> str:
        return f"OlmSession(session_id={self.session_id!r})"

    @property
    def session_id(self) -> str:
        """A stable id of the session, the same on both sides (derived from the keys that
        started it, so it is read from vodozemac once)."""
        if self._id is None:
            self._id = self._session.session_id
        return self._id

    def encrypt(self, plaintext: bytes) -> OlmCiphertext:
        """Encrypt ``plaintext`` (pre-key messages until the other side has replied)."""
        if not isinstance(plaintext, bytes):
            raise TypeError("plaintext must be bytes")
        return _ciphertext(self._session.encrypt(plaintext))

    def decrypt(self, ciphertext: OlmCiphertext) -> bytes:
        """The plaintext; ``DecryptionError`` for anything tampered, replayed or not ours."""
        message = _olm_message(ciphertext)
        if message is None:
            raise DecryptionError("the message does not decrypt")
        try:
            return bytes(self._session.decrypt(message))
        except ValueError:
            raise DecryptionError("the message does not decrypt") from None

    def matches(self, ciphertext: OlmCiphertext) -> bool:
        """Whether a pre-key message belongs to this session (False for normal messages)."""
        pre_key = read_pre_key(ciphertext)
        return pre_key is not None and first_match([self], pre_key) is self

    def pickle(self, key: bytes) -> str:
        """The session encrypted under the 32-byte ``key``."""
        _check_pickle_key(key)
        return self._session.pickle(key)

    @classmethod
    def from_pickle(cls, pickled: str, key: bytes) -> OlmSession:
        """Restore a session; ``DecryptionError`` if ``key`` does not open ``pickled``."""
        _check_pickle_key(key)
        try:
            return cls(_session=vodozemac.Session.from_pickle(pickled, key))
        except (ValueError, TypeError):
            raise DecryptionError("pickle key does not open this state") from None


def first_match(sessions: list[OlmSession], pre_key: PreKey) -> OlmSession | None:
    """The first of ``sessions`` a pre-key message belongs to, or ``None``."""
    for session in sessions:
        if session._session.session_matches(pre_key._message):
            return session
    return None


def verify_ed25519(public_key: str, message: bytes, signature: str) -> None:
    """Check an Ed25519 signature (strict RFC 8032 verification: canonical ``S``, no
    small-order key or ``R``). Returns ``None``; ``VerificationError`` for a bad signature and
    for a malformed key or signature."""
    key = _read_ed25519(public_key) if isinstance(public_key, str) else None
    if key is None:
        raise VerificationError("Ed25519 signature does not verify")
    try:
        raw = b64decode(signature, field="signature", size=SIGNATURE_SIZE)
        # vodozemac reads unpadded base64: a canonical unpadded text goes as it is.
        sig = vodozemac.Ed25519Signature.from_base64(signature if "=" not in signature else b64encode(raw))
        key.verify_signature(message, sig)
    except ValueError:
        raise VerificationError("Ed25519 signature does not verify") from None


@functools.lru_cache(maxsize=4096)
def _read_ed25519(value: str) -> vodozemac.Ed25519PublicKey | None:
    """A public key from strict base64, or ``None``. Remembered: the same device keys sign every
    one-time key and device list a member meets (the key objects are immutable)."""
    try:
        return vodozemac.Ed25519PublicKey.from_base64(b64encode(b64decode(value, field="key", size=KEY_SIZE)))
    except ValueError:
        return None


class EstablishedSas:
    """A SAS exchange after both public keys are known: the short strings to compare out of
    band, and MACs over the keys being verified. ``info`` must bind both parties (the caller
    builds it from both actors, devices and SAS public keys) and be the same on both sides."""

    __slots__ = ("_sas",)

    def __init__(self, *, _sas: vodozemac.EstablishedSas) -> None:
        self._sas = _sas

    def __repr__(self) -> str:
        return "EstablishedSas()"

    def emoji(self, info: str) -> tuple[tuple[str, str], ...]:
        """Seven (emoji, English name) pairs from the Matrix SAS emoji table."""
        return tuple(SAS_EMOJI[index] for index in self._sas.bytes(info).emoji_indices)

    def decimals(self, info: str) -> tuple[int, int, int]:
        """Three numbers between 1000 and 9191 (the decimal SAS method)."""
        first, second, third = self._sas.bytes(info).decimals
        return (first, second, third)

    def calculate_mac(self, message: str, info: str) -> str:
        """A MAC of ``message`` (e.g. a key being verified) under the SAS secret (base64)."""
        return self._sas.calculate_mac(message, info)

    def verify_mac(self, message: str, info: str, mac: str) -> None:
        """Check a MAC from the other side (vodozemac compares in constant time);
        ``VerificationError`` if it does not match."""
        if not isinstance(mac, str):
            raise VerificationError("SAS MAC does not verify")
        try:
            self._sas.verify_mac(message, info, mac)
        except ValueError:
            raise VerificationError("SAS MAC does not verify") from None


class SasSession:
    """One side of a SAS verification: an ephemeral Curve25519 key pair, usable once."""

    __slots__ = ("_sas",)

    def __init__(self, *, _sas: vodozemac.Sas) -> None:
        self._sas = _sas

    def __repr__(self) -> str:
        return f"SasSession(public_key={self.public_key!r})"

    @classmethod
    def create(cls) -> SasSession:
        """A new SAS exchange with a fresh ephemeral key."""
        return cls(_sas=vodozemac.Sas())

    @property
    def public_key(self) -> str:
        """Our ephemeral public key (base64), sent to the other side."""
        return self._sas.public_key.to_base64()

    def establish(self, their_public_key: str) -> EstablishedSas:
        """Combine with the other side's key; ``SessionSetupError`` for a malformed,
        non-contributory or second use."""
        key = _curve25519(their_public_key, "SAS public key")
        try:
            return EstablishedSas(_sas=self._sas.diffie_hellman(key))
        except ValueError:
            raise SessionSetupError("no SAS can be established with this key") from None
