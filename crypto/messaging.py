"""The client core of end-to-end encrypted messages: one device's keys, sessions and trust,
with no I/O. ``server/dm`` moves its inputs and outputs over HTTP and keeps it in an encrypted
store; docs/e2ee.md is the wire contract.

How it works
------------
A :class:`DeviceState` holds this device's Olm account (``crypto.olm``), the master key when
this device holds it, one Olm session list per (actor, device) it talks to, the *pinned*
signed device list of every contact (and of the member's own account), and the ids of
messages already received.

* **Trust.** :meth:`DeviceState.accept_device_list` verifies a list (master-key signature),
  refuses a rollback or an equivocating list (``crypto.devicelist.check_successor``) and pins
  it. A changed master key is a "safety number changed" event: for a contact the member never
  verified it is accepted and reported; for a verified contact it raises
  ``MasterKeyChangedError`` until the member accepts the new key (and the contact becomes
  unverified). Only devices in a pinned list are ever encrypted to or believed as senders, so
  a device the server injected, or one its owner revoked, never is (research/e2ee.md §7.3).
* **Sending.** :meth:`DeviceState.encrypt` makes one franked message (``crypto.envelope``,
  ``crypto.franking``) and seals it once per target device: every device in the recipient's
  pinned list and every other device in the member's own list. A target without a session
  needs a claimed one-time key first (:meth:`DeviceState.missing_sessions`,
  :meth:`DeviceState.start_session`, which checks the key's signature by that device).
* **Receiving.** :meth:`DeviceState.decrypt` finds the session (or creates the inbound one a
  pre-key message starts), decrypts, and accepts the envelope only if it names this device as
  recipient (unknown-key-share), names the sender device the server said and that device is in
  the sender's pinned list with the fingerprint key the envelope names and the identity key
  the Olm session was made with, the tags agree and recompute, and the message id is new
  (replay). Nothing of a message that fails a check is shown or remembered as received.

What it guarantees: a refused message leaves the pinned lists and the replay cache as they
were. Olm state is the exception, by choice: a message that authenticates under Olm (so it did
come from that device: an existing session's MAC, or for a pre-key message the 3DH with the
listed identity key) but then fails an envelope check still spends its ratchet step, and the
session a refused pre-key message started is kept and its one-time key used up. Restoring them
would cost a pickle of the session or the whole account per message (the account's grows with
its unused one-time keys), would keep a used one-time key's private half alive, and the only
party that could make a genuine message fail (a server altering the outer tag) could as well
have dropped it; the sender's later messages in that session still open. What it refuses:
sending to a contact whose pinned list is missing, or whose master key changed after
verification; any message not passing every check above.
"""

from __future__ import annotations

import base64
import hmac
import secrets
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from crypto.devicelist import (
    DeviceEntry,
    DeviceList,
    MasterKey,
    check_successor,
    one_time_key_payload,
    parse_device_list,
    sign_device_list,
    verify_one_time_key,
)
from crypto.encoding import b64decode
from crypto.envelope import Envelope, Link, Party, PlainMessage, open_envelope, seal
from crypto.errors import (
    DecryptionError,
    E2EEError,
    EnvelopeError,
    MasterKeyChangedError,
    ReplayError,
    SessionSetupError,
    VerificationError,
)
from crypto.franking import franking_tag, new_franking_key
from crypto.olm import OlmAccount, OlmCiphertext, OlmSession, OneTimeKey, first_match, read_pre_key
from crypto.safety import safety_number

STATE_VERSION = 1
MAX_SESSIONS_PER_DEVICE = 4  # older sessions are dropped (Matrix keeps a handful the same way)
MAX_SEEN_IDS = 20_000
PICKLE_KEY_BYTES = 32


@dataclass(frozen=True, slots=True)
class SignedKey:
    """A one-time or fallback key with this device's signature, ready to upload."""

    key_id: str
    key: str
    signature: str
    fallback: bool

    def to_json(self) -> dict[str, Any]:
        return {"key_id": self.key_id, "key": self.key, "signature": self.signature}


@dataclass(frozen=True, slots=True)
class ClaimedKey:
    """A one-time (or fallback) key claimed for a contact's device."""

    key_id: str
    key: str
    signature: str
    fallback: bool


@dataclass(frozen=True, slots=True)
class Target:
    """A device to encrypt to: who, which device, and its keys from a pinned list."""

    actor: str
    device: DeviceEntry


class OutgoingCiphertext(NamedTuple):
    actor: str
    device_id: str
    message_type: int
    body: bytes


class Outgoing(NamedTuple):
    """One message ready to send: the franking opening stays with the sender's history.
    (Named tuples, like the envelope's: one is made per message.)"""

    message: PlainMessage
    franking_key: bytes
    franking_tag: bytes
    ciphertexts: tuple[OutgoingCiphertext, ...]

    def __repr__(self) -> str:  # not the franking key
        return f"Outgoing(message={self.message!r}, ciphertexts={len(self.ciphertexts)})"


@dataclass(frozen=True, slots=True)
class Pinned:
    """What accepting a device list did: the list now pinned and whether the master key changed."""

    device_list: DeviceList
    master_key_changed: bool


@dataclass
class Contact:
    device_list: DeviceList
    verified: bool = False


def _same_key(a: str, b: str) -> bool:
    """Compare two base64 keys as bytes (one may be padded, the other not)."""
    try:
        return hmac.compare_digest(b64decode(a, field="key", size=32), b64decode(b, field="key", size=32))
    except ValueError:
        return False


def _session_key(actor: str, device_id: str) -> str:
    return f"{actor}\n{device_id}"


class DeviceState:
    """One device's E2EE state. Not thread-safe; persist with :meth:`to_json` after each change."""

    def __init__(
        self,
        *,
        actor: str,
        device_id: str,
        account: OlmAccount,
        master: MasterKey | None,
        pickle_key: bytes,
    ) -> None:
        self.actor = actor
        self.device_id = device_id
        self.account = account
        self.master = master
        self._pickle_key = pickle_key
        self.sessions: dict[str, list[OlmSession]] = {}
        self._me: Party | None = None
        self._links_out: dict[tuple[str, str, str], Link] = {}
        self._links_in: dict[tuple[str, str, str], Link] = {}
        # (actor, device id) -> the pinned list it was found in, its entry there and the link
        # from it; used only while that very list is still the one pinned.
        self._senders: dict[tuple[str, str], tuple[DeviceList, DeviceEntry, Link]] = {}
        self.contacts: dict[str, Contact] = {}
        # Ids of messages received (the 16 bytes of each UUID4), oldest first.
        self.seen: OrderedDict[bytes, None] = OrderedDict()

    def __repr__(self) -> str:
        return f"DeviceState(actor={self.actor!r}, device_id={self.device_id!r})"

    # ------------------------------------------------------------------ creation and identity

    @classmethod
    def create(cls, *, actor: str, device_id: str, master: MasterKey | None = None) -> DeviceState:
        """A new device (with a new Olm account). ``master``: the member's master key when this
        device holds it (the first device, or one set up with the recovery code)."""
        return cls(
            actor=actor,
            device_id=device_id,
            account=OlmAccount.create(),
            master=master,
            pickle_key=secrets.token_bytes(PICKLE_KEY_BYTES),
        )

    @property
    def me(self) -> Party:
        if self._me is None:
            self._me = Party(actor=self.actor, device=self.device_id, ed25519=self.account.fingerprint_key)
        return self._me

    def _link(self, actor: str, device: DeviceEntry, *, outgoing: bool) -> Link:
        """This device and a listed one, each way (cached: the frame header they share is
        computed once per pair)."""
        links = self._links_out if outgoing else self._links_in
        key = (actor, device.device_id, device.fingerprint_key)
        link = links.get(key)
        if link is None:
            if len(links) > 10_000:
                links.clear()
            other = Party(*key)
            link = links[key] = Link(self.me, other) if outgoing else Link(other, self.me)
        return link

    @property
    def entry(self) -> DeviceEntry:
        """This device as its signed device list names it."""
        return DeviceEntry(
            device_id=self.device_id,
            identity_key=self.account.identity_key,
            fingerprint_key=self.account.fingerprint_key,
        )

    def _sign_key(self, key: OneTimeKey, *, fallback: bool) -> SignedKey:
        payload = one_time_key_payload(
            actor=self.actor, device_id=self.device_id, key_id=key.key_id, key=key.key, fallback=fallback
        )
        return SignedKey(key.key_id, key.key, self.account.sign(payload), fallback)

    def new_one_time_keys(self, count: int) -> list[SignedKey]:
        """Generate and sign one-time keys to upload (call :meth:`mark_keys_published` after)."""
        return [self._sign_key(key, fallback=False) for key in self.account.generate_one_time_keys(count)]

    def new_fallback_key(self) -> SignedKey:
        return self._sign_key(self.account.generate_fallback_key(), fallback=True)

    def mark_keys_published(self) -> None:
        self.account.mark_published()

    def has_unpublished_keys(self) -> bool:
        return bool(self.account.unpublished_one_time_keys()) or self.account.unpublished_fallback_key() is not None

    def unpublished_keys(self) -> tuple[list[SignedKey], SignedKey | None]:
        """The keys generated but not yet marked published (an upload that may not have arrived),
        signed again: Ed25519 signatures are deterministic, so these are the same uploads."""
        fallback = self.account.unpublished_fallback_key()
        return (
            [self._sign_key(key, fallback=False) for key in self.account.unpublished_one_time_keys()],
            self._sign_key(fallback, fallback=True) if fallback is not None else None,
        )

    def sign_own_list(
        self, devices: Iterable[DeviceEntry], *, version: int, at: datetime, pin: bool = True
    ) -> DeviceList:
        """Sign the member's device list (needs the master key on this device). ``pin=False``:
        not pinned yet, for a list the server may still refuse (:meth:`pin_own_list` once it
        took it); pinned at once, a refused list would leave this device ahead of the server,
        refusing the server's list as a rollback from then on."""
        if self.master is None:
            raise MasterKeyChangedError("this device does not hold the master key; approve it from one that does")
        signed = sign_device_list(self.master, actor=self.actor, version=version, devices=devices, signed_at=at)
        if pin:
            self.pin_own_list(signed)
        return signed

    def pin_own_list(self, signed: DeviceList) -> None:
        """Pin a list this device signed (after the server published it)."""
        self.accept_device_list(self.actor, signed.to_json(), accept_new_master_key=True)

    # ------------------------------------------------------------------ trust

    def accept_device_list(self, actor: str, document: Any, *, accept_new_master_key: bool = False) -> Pinned:
        """Verify and pin ``actor``'s signed device list (see the module note)."""
        new = parse_device_list(document)
        if new.actor != actor:
            raise EnvelopeError(f"device list of {new.actor} given for {actor}")
        contact = self.contacts.get(actor)
        pinned = contact.device_list if contact is not None else None
        changed = pinned is not None and not _same_key(pinned.master_key, new.master_key)
        if actor == self.actor and self.master is not None and not _same_key(new.master_key, self.master.public_key):
            raise MasterKeyChangedError("your own device list is signed by another master key")
        # The member's own account counts as verified: a new master key for it is never taken
        # silently (a device without the master key would otherwise copy messages to whatever
        # device a forged list names).
        verified = (contact is not None and contact.verified) or actor == self.actor
        check_successor(pinned, new, accept_new_master_key=accept_new_master_key or (changed and not verified))
        if changed:
            verified = False
        if pinned is not None:
            # Sessions with devices that left the list, or came back with other keys, are dropped:
            # nothing is ever encrypted to keys their owner replaced.
            for old in pinned.devices:
                current = new.device(old.device_id)
                if current is None or not (
                    _same_key(current.identity_key, old.identity_key)
                    and _same_key(current.fingerprint_key, old.fingerprint_key)
                ):
                    self.sessions.pop(_session_key(actor, old.device_id), None)
        self.contacts[actor] = Contact(new, verified=verified and actor != self.actor)
        return Pinned(new, changed)

    def pinned(self, actor: str) -> DeviceList | None:
        contact = self.contacts.get(actor)
        return contact.device_list if contact is not None else None

    def mark_verified(self, actor: str) -> None:
        if actor not in self.contacts:
            raise EnvelopeError(f"no device list of {actor} is pinned yet")
        self.contacts[actor].verified = True

    def is_verified(self, actor: str) -> bool:
        contact = self.contacts.get(actor)
        return contact is not None and contact.verified

    def safety_number(self, actor: str) -> str:
        """The 60-digit number both members see when neither key was substituted."""
        mine, theirs = self.pinned(self.actor), self.pinned(actor)
        if mine is None or theirs is None:
            raise EnvelopeError("both device lists must be pinned to compute a safety number")
        return safety_number(self.actor, mine.master_key, actor, theirs.master_key)

    # ------------------------------------------------------------------ sessions

    def targets(self, recipient: str) -> list[Target]:
        """Every device a message to ``recipient`` goes to: theirs, and our other devices."""
        theirs = self.pinned(recipient)
        if theirs is None:
            raise EnvelopeError(f"no device list of {recipient} is pinned; fetch it first")
        found = [Target(recipient, d) for d in theirs.devices]
        mine = self.pinned(self.actor)
        if mine is not None:
            found += [Target(self.actor, d) for d in mine.devices if d.device_id != self.device_id]
        return found

    def missing_sessions(self, targets: Sequence[Target]) -> list[Target]:
        return [t for t in targets if not self.sessions.get(_session_key(t.actor, t.device.device_id))]

    def start_session(self, target: Target, key: ClaimedKey) -> None:
        """Open an outbound session with a claimed key, after checking the device signed it."""
        try:
            verify_one_time_key(
                target.device.fingerprint_key,
                actor=target.actor,
                device_id=target.device.device_id,
                key_id=key.key_id,
                key=key.key,
                fallback=key.fallback,
                signature=key.signature,
            )
        except VerificationError:
            raise SessionSetupError("the claimed key is not signed by that device") from None
        session = self.account.outbound_session(target.device.identity_key, key.key)
        self._remember(target.actor, target.device.device_id, session, new=True)

    def _remember(self, actor: str, device_id: str, session: OlmSession, *, new: bool = False) -> None:
        """Make ``session`` the newest with that device. ``new``: it was just made (started here,
        or by a pre-key message no known session matched), so it is none of the known ones; a
        new session whose id is already known (a fallback-key pre-key message made it again)
        is not kept, so a session that went on is never put back to its start."""
        key = _session_key(actor, device_id)
        current = self.sessions.get(key)
        if not current:
            self.sessions[key] = [session]
        elif new:
            if session.session_id not in {s.session_id for s in current}:
                self.sessions[key] = [session, *current[: MAX_SESSIONS_PER_DEVICE - 1]]
        elif current[0] is not session:  # an older session carried on: it becomes the newest
            self.sessions[key] = [session, *(s for s in current if s is not session)]

    # ------------------------------------------------------------------ encrypt

    def encrypt(self, message: PlainMessage, targets: Sequence[Target]) -> Outgoing:
        """Franked ciphertexts of ``message`` for every target (all need sessions)."""
        if message.sender != self.actor:
            raise EnvelopeError("a message is sent by this device's actor")
        sessions = [self.sessions.get(_session_key(t.actor, t.device.device_id)) for t in targets]
        missing = sum(1 for found in sessions if not found)
        if missing:
            raise SessionSetupError(f"no session with {missing} device(s); claim keys first")
        franking_key = new_franking_key()
        tag = franking_tag(franking_key, message.encoded)
        sealed: list[OutgoingCiphertext] = []
        for target, found in zip(targets, sessions, strict=True):
            assert found
            link = self._link(target.actor, target.device, outgoing=True)
            ciphertext = found[0].encrypt(seal(link, message, franking_key, tag))
            sealed.append(
                OutgoingCiphertext(target.actor, target.device.device_id, ciphertext.message_type, ciphertext.body)
            )
        if not sealed:
            raise EnvelopeError("no device to encrypt to")
        return Outgoing(message, franking_key, tag, tuple(sealed))

    # ------------------------------------------------------------------ decrypt

    def knows_device(self, actor: str, device_id: str) -> bool:
        pinned = self.pinned(actor)
        return pinned is not None and pinned.device(device_id) is not None

    def decrypt(
        self, *, sender_actor: str, sender_device: str, message_type: int, body: bytes, outer_tag: bytes
    ) -> Envelope:
        """Decrypt and check one ciphertext addressed to this device (see the module note)."""
        pinned = self.pinned(sender_actor)
        found = self._senders.get((sender_actor, sender_device))
        if found is None or found[0] is not pinned:
            listed = pinned.device(sender_device) if pinned is not None else None
            if pinned is None or listed is None:
                raise EnvelopeError("the sender device is not in the sender's signed device list")
            if len(self._senders) > 10_000:
                self._senders.clear()
            found = (pinned, listed, self._link(sender_actor, listed, outgoing=False))
            self._senders[(sender_actor, sender_device)] = found
        _, entry, link = found
        ciphertext = OlmCiphertext(message_type, body)
        key = _session_key(sender_actor, sender_device)
        plaintext: bytes | None = None
        used: OlmSession | None = None
        candidates = self.sessions.get(key, [])
        pre_key = read_pre_key(ciphertext) if message_type == 0 else None
        if message_type == 0:
            # A pre-key message goes only to the session it started, if that is known.
            matched = first_match(candidates, pre_key) if pre_key is not None else None
            candidates = [matched] if matched is not None else []
        for session in candidates:
            # Decrypting advances the ratchet even if the envelope is then refused: harmless,
            # the ciphertext authenticated as that device's, and Olm itself refuses replays.
            try:
                plaintext = session.decrypt(ciphertext)
            except DecryptionError:
                continue
            used = session
            break
        started = False
        if plaintext is None:
            started = True
            if message_type != 0:
                raise DecryptionError("no session decrypts this message")
            used, plaintext = self.account.inbound_session(
                entry.identity_key, pre_key if pre_key is not None else ciphertext
            )
        try:
            envelope = open_envelope(
                plaintext,
                me=self.me,
                sender_actor=sender_actor,
                sender_device=sender_device,
                outer_tag=outer_tag,
                link=link,
            )
            if not hmac.compare_digest(envelope.sender.key, link.sender.key):
                raise EnvelopeError("the envelope's sender key is not the listed key of that device")
            message_id = envelope.message.raw_id
            if message_id in self.seen:
                raise ReplayError("this message was received before")
        except (E2EEError, VerificationError):
            if started:
                # The pre-key message authenticated as that device (Olm's 3DH with its listed
                # identity key), so the session it started is kept, as a refused normal message
                # spends its step (module note): the sender's next messages, which name the same
                # one-time key, still open, and that key's private half is gone at once.
                assert used is not None
                self._remember(sender_actor, sender_device, used, new=True)
            raise
        assert used is not None
        self._remember(sender_actor, sender_device, used, new=started)
        self.seen[message_id] = None
        if len(self.seen) > MAX_SEEN_IDS:
            self.seen.popitem(last=False)
        return envelope

    # ------------------------------------------------------------------ persistence

    def to_json(self) -> dict[str, Any]:
        """Everything, for the encrypted local store (pickles are encrypted again with a
        random pickle key kept beside them; the store's own encryption protects both)."""
        key = self._pickle_key
        return {
            "v": STATE_VERSION,
            "actor": self.actor,
            "device_id": self.device_id,
            "pickle_key": base64.b64encode(key).decode(),
            "account": self.account.pickle(key),
            "master_seed": base64.b64encode(self.master.seed).decode() if self.master is not None else None,
            "sessions": {k: [s.pickle(key) for s in v] for k, v in self.sessions.items()},
            "contacts": {
                actor: {"device_list": c.device_list.to_json(), "verified": c.verified}
                for actor, c in self.contacts.items()
            },
            "seen": [str(uuid.UUID(bytes=raw)) for raw in self.seen],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DeviceState:
        if data.get("v") != STATE_VERSION:
            raise EnvelopeError("unsupported device state version")
        key = base64.b64decode(data["pickle_key"])
        seed = data.get("master_seed")
        state = cls(
            actor=data["actor"],
            device_id=data["device_id"],
            account=OlmAccount.from_pickle(data["account"], key),
            master=MasterKey.from_seed(base64.b64decode(seed)) if seed else None,
            pickle_key=key,
        )
        state.sessions = {k: [OlmSession.from_pickle(p, key) for p in v] for k, v in data.get("sessions", {}).items()}
        state.contacts = {
            actor: Contact(parse_device_list(c["device_list"]), bool(c.get("verified", False)))
            for actor, c in data.get("contacts", {}).items()
        }
        state.seen = OrderedDict((uuid.UUID(text).bytes, None) for text in data.get("seen", []))
        return state
