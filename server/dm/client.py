"""The E2EE client library: a member's device talking to their own Hearthside server.

Design note
-----------
All cryptography happens here, on the member's machine (``crypto.messaging``); the server
sees public keys and ciphertext only. :class:`DmClient` wraps one :class:`~server.dm.store.Profile`
(login, device state, history) and the server's ``/api/v1/hearthside/e2ee`` API:

* ``login`` registers an OAuth app and gets a token with the ``crypto`` scope (password grant);
* ``setup`` creates this device. The member's first device also creates the master key and
  prints a recovery code; a later device is *pending* until a device holding the master key
  approves it (``approve``), or it is set up with the recovery code and approves itself;
* ``send`` pins the recipient's signed device list (and the member's own), opens sessions with
  claimed one-time keys where none exist, encrypts one franked message for every device of the
  recipient and every other device of the member, and posts it;
* ``receive`` fetches this device's inbox, refreshes a sender's device list when a message
  comes from a device not yet pinned, decrypts and checks each message, keeps it in the
  history with its franking opening, acknowledges (the server deletes the ciphertext), and
  tops up one-time keys;
* ``revoke`` publishes a list without a device (which makes the server delete its token, keys
  and waiting messages); ``report`` reveals chosen messages to the member's own moderators;
* ``support_for`` reads a message sent or received with the instance's crisis detector, here
  on the device, and picks the support panel to show from the kit the server gives every
  member alike (docs/safety.md "Encrypted messages"): no server learns about it;
* in-band control messages, encrypted like messages and never shown as text: SAS
  verification steps (``verify_sas``), ``Delete`` (``delete_for_everyone``, honoured only
  from the message's author within a day) and ``Timer`` (``set_timer``, a conversation's
  disappearing-message time);
* ``send(..., files=)`` encrypts each attachment here (crypto/attachments.py) and uploads the
  ciphertext; ``save_attachments`` fetches through the member's own server, checks and decrypts;
* ``reply`` sends a message answering a kept one (``in_reply_to``; a device shows the quote
  from its own copy, so a reply cannot put words in anyone's mouth), and ``react`` sends a
  ``Reaction`` (one emoji per member and message, the newest wins, ``None`` takes it back);
* ``search`` looks through the messages kept on this device (no server could);
* messages from senders the member does not know wait as requests (``requests``, ``accept``,
  ``decline``); ``block``, ``concern`` and ``revoke_self``/``revoke_token`` (logout) call the
  server's ordinary endpoints.

A new device sees no history: messages sent before it joined were never encrypted to it.
docs/e2ee.md says what survives a crash ("The client's store, and crashes").
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import mimetypes
import os
import secrets
import unicodedata
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from crypto.attachments import MAX_PER_MESSAGE, safe_name
from crypto.attachments import descriptors as attachment_descriptors
from crypto.attachments import open_described as open_attachment
from crypto.attachments import seal as seal_attachment
from crypto.devicelist import DeviceEntry, MasterKey
from crypto.encoding import b64decode, b64encode, parse_utc_time, utc_time
from crypto.envelope import Envelope, PlainMessage, new_control_message, new_message
from crypto.errors import CryptoError, MasterKeyChangedError
from crypto.messaging import ClaimedKey, DeviceState, Outgoing, Target
from crypto.olm import SasSession
from server.dm.store import Profile

log = logging.getLogger(__name__)

SCOPES = "read write crypto"
SUPPORT_KIT_MAX_AGE = timedelta(hours=24)
# Deleting a sent message for everyone: within a day of sending (as Signal), and the recipient
# can still report what was deleted for a week, unseen (a deleted message is no way around a
# report); then it is gone from their device.
DELETE_FOR_EVERYONE_WITHIN = timedelta(hours=24)
REPORTABLE_AFTER_DELETION = timedelta(days=7)
MAX_TIMER = timedelta(days=365)
MAX_ATTACHMENTS = MAX_PER_MESSAGE
EDIT_WITHIN = timedelta(hours=24)
MIN_KEEP = timedelta(days=1)
MAX_KEEP = timedelta(days=3653)
# A reaction: one emoji, which may be a sequence (skin tone, ZWJ family, flag tags) of up to
# this many code points.
MAX_REACTION_CHARS = 10
QUOTE_CHARS = 60
# The other member's reactions kept, per message, so that they can be reported (a hostile
# emoji is harassment too); one taken back or replaced stays reportable for
# REPORTABLE_AFTER_DELETION, as a deleted message does.
MAX_KEPT_REACTIONS = 10
# What one report may reveal: the server's limit (MAX_REPORTED_MESSAGES, server/api/e2ee.py).
MAX_REPORTED = 20
ONE_TIME_KEYS = 50
REPLENISH_BELOW = 20
_DEVICE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


class DmError(Exception):
    """Something the member should read (the message says what and what to do)."""


def new_device_id() -> str:
    return "".join(secrets.choice(_DEVICE_ALPHABET) for _ in range(10))


@dataclass(frozen=True, slots=True)
class SetupResult:
    device_id: str
    state: str  # active | pending
    recovery_code: str | None  # only when this call created the master key


@dataclass(frozen=True, slots=True)
class Incoming:
    """A received message as the member sees it."""

    id: str
    sender: str
    recipient: str
    content: str
    created: str
    own_copy: bool  # sent by one of the member's other devices
    # A support panel this device chose to show with the message (see ``DmClient.support``).
    support: dict[str, Any] | None = None
    edits: str | None = None  # the id of the message this one corrects (shown in its place)
    # Its attachments (name, size, media_type); ``DmClient.save_attachments`` fetches them.
    attachments: tuple[dict[str, Any], ...] = ()
    # The kept message of the same conversation it answers (``DmClient.quote`` shows it).
    reply_to: str | None = None


@dataclass(frozen=True, slots=True)
class Control:
    """A received in-band protocol message (key verification), for the step waiting on it."""

    sender: str
    sender_device: str
    body: dict[str, Any]
    created: int  # unix seconds, as the sender's device wrote it


def _registration(state: DeviceState) -> dict[str, Any]:
    """The registration of ``state``'s device, with the keys it has not yet published."""
    keys, fallback = state.unpublished_keys()
    body: dict[str, Any] = {
        "device_id": state.device_id,
        "identity_key": state.account.identity_key,
        "fingerprint_key": state.account.fingerprint_key,
        "one_time_keys": [k.to_json() for k in keys],
    }
    if fallback is not None:
        body["fallback_key"] = fallback.to_json()
    return body


class DmClient:
    """One device of one member. Call :meth:`close` (or use ``async with``) when done."""

    def __init__(
        self,
        profile: Profile,
        *,
        session: aiohttp.ClientSession | None = None,
        persist: Callable[[Profile], None] | None = None,
    ) -> None:
        self.profile = profile
        self._session = session
        self._own_session = session is None
        self._persist_hook = persist
        self.notices: list[str] = []
        # Support panels to show the member (see ``support_for``): for what they sent, as the
        # ``send`` that made it returns; for what they received, on each ``Incoming``.
        self.support: list[dict[str, Any]] = []
        # Kept messages the other member reacted to since the last ``receive`` (ids, in order).
        self.reacted: list[str] = []
        self._control: list[Control] = []
        # ``_item``'s index: message id -> kept message, for the history list it was built from.
        self._index: dict[str, dict[str, Any]] = {}
        self._indexed: list[dict[str, Any]] | None = None
        self._indexed_length = 0

    def _persist(self) -> None:
        """Write the profile to its store (``persist``, e.g. ``Store.save``) now: called before
        any request that lets the server act on state only this device holds. Ciphertexts are
        acknowledged (and deleted by the server) only after the messages they opened are kept;
        a message is posted only after the ratchet steps it used are kept (a device restored to
        an older state would otherwise use the same message keys again, which the recipient
        refuses as replays); one-time keys are uploaded only after their private halves are
        kept. A crash then costs at most a message already kept arriving again, which
        ``receive`` recognises and skips."""
        if self._persist_hook is not None:
            self._persist_hook(self.profile)

    async def __aenter__(self) -> DmClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    # ------------------------------------------------------------------ HTTP

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
        return self._session

    async def _call(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: dict[str, str] | None = None,
        raw_body: bytes | None = None,
        raw_answer: bool = False,
    ) -> Any:
        """One API request: a JSON body (``json_body``) or bytes (``raw_body``, sent as
        application/octet-stream); the JSON answer, or its bytes with ``raw_answer``."""
        url = self.profile.server.rstrip("/") + path
        headers = {"Authorization": f"Bearer {self.profile.token}"}
        if raw_body is not None:
            headers["Content-Type"] = "application/octet-stream"
        async with self._http().request(
            method, url, json=json_body, data=raw_body, params=params, headers=headers
        ) as resp:
            if raw_answer and resp.status < 400:
                return await resp.read()
            data = await resp.json(content_type=None) if resp.content_length != 0 else {}
            if resp.status >= 400:
                message = data.get("error") if isinstance(data, dict) else None
                raise DmError(f"{method} {path}: {resp.status} {message or resp.reason}")
            return data

    @staticmethod
    async def login(
        server: str, username: str, password: str, *, session: aiohttp.ClientSession | None = None
    ) -> Profile:
        """Register an app and log in with the password grant; returns a new profile."""
        own = session is None
        http = session or aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
        base = server.rstrip("/")
        try:
            async with http.post(
                base + "/api/v1/apps",
                data={"client_name": "hearthside dm", "redirect_uris": "urn:ietf:wg:oauth:2.0:oob", "scopes": SCOPES},
            ) as resp:
                app = await resp.json(content_type=None)
                if resp.status >= 400:
                    raise DmError(f"app registration failed: {resp.status} {app.get('error', '')}")
            async with http.post(
                base + "/oauth/token",
                data={
                    "grant_type": "password",
                    "username": username,
                    "password": password,
                    "client_id": app["client_id"],
                    "client_secret": app["client_secret"],
                    "scope": SCOPES,
                },
            ) as resp:
                token = await resp.json(content_type=None)
                if resp.status >= 400:
                    raise DmError(f"login failed: {token.get('error_description') or token.get('error', resp.status)}")
            headers = {"Authorization": f"Bearer {token['access_token']}"}
            async with http.get(base + "/api/v1/hearthside/e2ee/devices", headers=headers) as resp:
                listing = await resp.json(content_type=None)
                if resp.status >= 400:
                    raise DmError(f"this server does not offer encrypted messages ({resp.status})")
        finally:
            if own:
                await http.close()
        return Profile(
            server=base,
            token=token["access_token"],
            actor=listing["actor"],
            acct=listing["acct"],
            client_id=app["client_id"],
            client_secret=app["client_secret"],
        )

    async def revoke_token(self) -> bool:
        """Revoke this profile's access token at the server (RFC 7009). False when the profile
        predates keeping its app's credentials."""
        if not self.profile.client_id or not self.profile.client_secret:
            return False
        data = {
            "token": self.profile.token,
            "client_id": self.profile.client_id,
            "client_secret": self.profile.client_secret,
        }
        async with self._http().post(self.profile.server.rstrip("/") + "/oauth/revoke", data=data) as resp:
            if resp.status >= 400:
                raise DmError(f"the server did not revoke the token ({resp.status})")
        return True

    # ------------------------------------------------------------------ devices

    @property
    def device(self) -> DeviceState:
        if self.profile.device is None:
            raise DmError("this device is not set up yet: run `hearthside dm setup`")
        return self.profile.device

    async def setup(self, *, recovery_code: str | None = None, new_identity: bool = False) -> SetupResult:
        """Create this device's keys and register them (see the module note).

        ``new_identity``: for a member who lost every device and the recovery code: a new master
        key; every other device is revoked and contacts see their safety number change.

        The new keys are kept in the store before the server is asked to register them, so a
        setup that stopped midway (the device died, the connection broke) is finished by running
        it again: the same keys are registered if the server never took them, and the
        recovery code is shown again."""
        listing = await self._call("GET", "/api/v1/hearthside/e2ee/devices")
        if self.profile.device is not None:
            return await self._resume_setup(self.profile.device, listing)
        existing_master = listing.get("master_key")
        master: MasterKey | None = None
        created_code: str | None = None
        if new_identity:
            if recovery_code:
                raise DmError("give either a recovery code or a new identity, not both")
            master = MasterKey.generate()
            created_code = master.recovery_code()
        elif recovery_code:
            try:
                master = MasterKey.from_recovery_code(recovery_code)
            except CryptoError:
                raise DmError("that recovery code is not valid (check for typos)") from None
            if existing_master and master.public_key != existing_master:
                raise DmError("that recovery code belongs to another master key")
        elif not existing_master:
            master = MasterKey.generate()
            created_code = master.recovery_code()
        state = DeviceState.create(actor=self.profile.actor, device_id=new_device_id(), master=master)
        state.account.generate_one_time_keys(ONE_TIME_KEYS)
        state.account.generate_fallback_key()
        body = _registration(state)
        if master is not None:
            if listing.get("device_list") and not new_identity:
                state.accept_device_list(self.profile.actor, listing["device_list"])
            current = state.pinned(self.profile.actor)
            devices = [*(current.devices if current else ()), state.entry]
            version = (listing.get("version") or 0) + 1
            body["device_list"] = state.sign_own_list(devices, version=version, at=_now()).to_json()
            body["reset"] = new_identity
        self.profile.device = state
        self._persist()
        await self._register(body)
        if master is None and listing.get("device_list"):
            state.accept_device_list(self.profile.actor, listing["device_list"])
        return SetupResult(state.device_id, "active" if master is not None else "pending", created_code)

    async def _register(self, body: dict[str, Any]) -> None:
        """POST the registration. Refused by the server: nothing to finish later (the device is
        dropped from the profile); no answer: the kept keys let ``setup`` try again."""
        try:
            await self._call("POST", "/api/v1/hearthside/e2ee/devices", json_body=body)
        except DmError:
            self.profile.device = None
            self._persist()
            raise
        self.device.mark_keys_published()

    async def _resume_setup(self, state: DeviceState, listing: dict[str, Any]) -> SetupResult:
        """``setup`` again after one that stopped midway: done already, or register again."""
        known = {d["device_id"]: d["state"] for d in listing.get("devices", [])}
        master = state.master
        code = master.recovery_code() if master is not None else None
        if state.device_id in known:
            if known[state.device_id] == "revoked":
                raise DmError("this device was revoked; log in again to set up a new one")
            if state.has_unpublished_keys():
                # The server took the registration but the answer was lost.
                state.mark_keys_published()
                return SetupResult(state.device_id, known[state.device_id], code)
            raise DmError("this device is already set up")
        body = _registration(state)
        own = state.pinned(self.profile.actor)
        if master is not None and own is not None:
            # The very list signed the first time (its version is the one the server expects).
            body["device_list"] = own.to_json()
            body["reset"] = listing.get("master_key") not in (None, master.public_key)
        await self._register(body)
        return SetupResult(state.device_id, "active" if master is not None else "pending", code)

    async def devices(self) -> dict[str, Any]:
        return dict(await self._call("GET", "/api/v1/hearthside/e2ee/devices"))

    async def _publish_own(
        self, listing: dict[str, Any], keep: list[str] | None = None, add: str | None = None
    ) -> dict[str, Any]:
        state = self.device
        current = state.pinned(self.profile.actor)
        entries = {d.device_id: d for d in (current.devices if current else ())}
        if add is not None:
            device = {d["device_id"]: d for d in listing["devices"]}[add]
            entries[add] = DeviceEntry(add, device["identity_key"], device["fingerprint_key"])
        if keep is not None:
            entries = {k: v for k, v in entries.items() if k in keep}
        version = int(listing.get("version") or 0) + 1
        signed = state.sign_own_list(list(entries.values()), version=version, at=_now(), pin=False)
        body = {"device_list": signed.to_json()}
        answer = await self._call("PUT", "/api/v1/hearthside/e2ee/device_list", json_body=body)
        state.pin_own_list(signed)  # only now: a list the server refused must not stay pinned here
        return dict(answer)

    async def _own_listing(self) -> tuple[dict[str, Any], dict[str, str]]:
        """The server's view of our devices, its signed list checked and pinned here, and each
        device's state by id."""
        listing = await self.devices()
        if listing.get("device_list"):
            self.device.accept_device_list(self.profile.actor, listing["device_list"])
        return listing, {d["device_id"]: d["state"] for d in listing.get("devices", [])}

    async def approve(self, device_id: str) -> bool:
        """Add a pending device of the member to the signed list (needs the master key here).
        False if it is already approved (in the signed list): an approval whose answer was
        lost is done, and doing it again changes nothing."""
        listing, states = await self._own_listing()
        if states.get(device_id) == "active" and self._in_own_list(device_id):
            return False
        if states.get(device_id) != "pending":
            raise DmError(f"{device_id} is not a pending device of yours")
        await self._publish_own(listing, add=device_id)
        return True

    async def revoke(self, device_id: str) -> bool:
        """Remove a device: it can read nothing sent from now on, and the server deletes its
        token, keys and waiting messages. False if it is already revoked (a revocation whose
        answer was lost is done)."""
        listing, states = await self._own_listing()
        if states.get(device_id) == "pending":
            await self._call("DELETE", f"/api/v1/hearthside/e2ee/devices/{device_id}")
            return True
        if states.get(device_id) == "revoked":
            return False
        if states.get(device_id) != "active":
            raise DmError(f"{device_id} is not an active or pending device of yours")
        if device_id == self.device.device_id:
            raise DmError("revoke this device from another one (or use `hearthside dm logout` here)")
        current = [d["device_id"] for d in listing["devices"] if d["state"] == "active" and d["device_id"] != device_id]
        await self._publish_own(listing, keep=current)
        return True

    async def revoke_self(self) -> None:
        """Revoke this device (``hearthside dm logout``): it signs a list without itself, so it
        needs the master key and another active device to leave the member with."""
        state = self.device
        listing, states = await self._own_listing()
        others = [d for d, st in states.items() if st == "active" and d != state.device_id]
        if state.master is None:
            raise DmError(
                "only a device holding your master key can revoke this one: run "
                f"`hearthside dm devices revoke {state.device_id}` there"
            )
        if not others:
            raise DmError(
                "this is your only device: revoking it would leave you none. Set up another device first "
                "(with your recovery code, or approved from here)"
            )
        await self._publish_own(listing, keep=others)

    def _in_own_list(self, device_id: str) -> bool:
        own = self.device.pinned(self.profile.actor)
        return own is not None and own.device(device_id) is not None

    # ------------------------------------------------------------------ contacts

    async def _pin(self, ref: str, *, accept_new_key: bool = False) -> str:
        """Fetch and pin ``ref``'s signed device list; returns their actor URI. A verified
        contact's new master key is refused unless ``accept_new_key`` (they become unverified)."""
        answer = await self._call("GET", "/api/v1/hearthside/e2ee/keys", params={"actor": ref})
        actor = answer["actor"]
        if not answer.get("device_list"):
            raise DmError(f"{ref} has not set up encrypted messages yet")
        try:
            pinned = self.device.accept_device_list(actor, answer["device_list"], accept_new_master_key=accept_new_key)
        except MasterKeyChangedError:
            raise DmError(
                f"the safety number with {ref} changed since you verified it. Check with them that they started "
                f"over, then run `hearthside dm verify {ref} --accept-new-key` and compare the new number."
            ) from None
        except CryptoError as exc:
            raise DmError(f"the device list of {ref} was refused: {exc}") from None
        if pinned.master_key_changed:
            self.notices.append(f"The safety number with {ref} changed (a new master key). Compare it if you can.")
        return str(actor)

    @property
    def _own_domain(self) -> str:
        """This member's instance as names show it: the actor URL's host and port."""
        return urlsplit(self.profile.actor).netloc.lower()

    async def account(self, ref: str) -> dict[str, Any]:
        """The server's Account entity of ``ref`` (``name@host`` or an actor URL), found
        through search; only an exact match counts (a search's first hit may be someone else)."""
        wanted = ref.removeprefix("@").lower()
        found = await self._call(
            "GET", "/api/v2/search", params={"q": ref, "resolve": "true", "type": "accounts", "limit": "5"}
        )
        for account in found.get("accounts", []):
            if wanted in _names(account, self._own_domain):
                return dict(account)
        raise DmError(f"{ref} was not found (give name@server or their profile's URL)")

    async def account_id(self, ref: str) -> str:
        return str((await self.account(ref))["id"])

    # ------------------------------------------------------------------ message requests

    def _knows(self, peer: str) -> bool:
        """Whether messages from ``peer`` go straight to the member: they accepted them, or
        wrote to them first (the server's ``known`` covers follows and shared groups)."""
        return peer in self.profile.accepted or any(
            item["peer"] == peer and item["direction"] == "out" and not item.get("request")
            for item in self.profile.history
        )

    def requests(self) -> list[dict[str, Any]]:
        """Message requests: senders the member does not know (see ``_open``), each with their
        messages, oldest first. Nothing is shown to the member until they accept."""
        senders: dict[str, dict[str, Any]] = {}
        for item in self.profile.history:
            if item.get("request"):
                entry = senders.setdefault(item["peer"], {"peer": item["peer"], "messages": []})
                entry["messages"].append(item)
        return list(senders.values())

    async def _request_peer(self, ref: str) -> str:
        """The actor of a sender with requests waiting, named by actor URI or handle."""
        waiting = {r["peer"] for r in self.requests()}
        if ref in waiting:
            return ref
        uri = str((await self.account(ref)).get("uri", ""))
        if uri not in waiting:
            raise DmError(f"no message requests from {ref} (see `hearthside dm requests`)")
        return uri

    async def accept(self, ref: str) -> int:
        """Accept ``ref``'s message requests: their messages are handed over by the next
        ``receive`` and later ones arrive as any contact's. Returns how many were waiting."""
        peer = await self._request_peer(ref)
        count = 0
        for item in self.profile.history:
            if item["peer"] == peer and item.pop("request", False):
                count += 1
        if peer not in self.profile.accepted:
            self.profile.accepted.append(peer)
        return count

    async def decline(self, ref: str) -> int:
        """Delete ``ref``'s message requests unseen (blocking or reporting is separate)."""
        peer = await self._request_peer(ref)
        before = len(self.profile.history)
        self.profile.history = [i for i in self.profile.history if not (i["peer"] == peer and i.get("request"))]
        return before - len(self.profile.history)

    async def block(self, ref: str) -> None:
        """Block ``ref``: from now on neither can message the other (the servers refuse it both
        ways) and follows between them end, as any block does."""
        await self._call("POST", f"/api/v1/accounts/{await self.account_id(ref)}/block")

    async def concern(self, ref: str, comment: str = "") -> dict[str, Any]:
        """Tell this instance's trained responders the member is worried about ``ref`` (a member
        of the same instance): they learn who, and the comment, never any message; nothing
        is sent to ``ref`` (docs/safety.md "Concern reports")."""
        account_id = await self.account_id(ref)
        body = {"account_id": account_id, "comment": comment}
        return dict(await self._call("POST", "/api/v1/hearthside/concerns", json_body=body))

    async def unblock(self, ref: str) -> None:
        """Unblock ``ref``, found in the member's block list (search leaves blocked accounts out)."""
        wanted = ref.removeprefix("@").lower()
        base = self.profile.server.rstrip("/")
        url: str | None = base + "/api/v1/blocks?limit=80"
        headers = {"Authorization": f"Bearer {self.profile.token}"}
        while url is not None:
            async with self._http().get(url, headers=headers) as resp:
                page = await resp.json(content_type=None)
                if resp.status >= 400 or not isinstance(page, list):
                    raise DmError(f"GET /api/v1/blocks: {resp.status} {resp.reason}")
                following = resp.links.get("next")
            for account in page:
                if wanted in _names(account, self._own_domain):
                    await self._call("POST", f"/api/v1/accounts/{account['id']}/unblock")
                    return
            url = str(following["url"]) if following and page else None
            if url is not None and not url.startswith(base + "/"):
                url = None  # a Link to anywhere but our own server is not followed
        raise DmError(f"{ref} is not in your block list")

    async def _refresh_own(self) -> None:
        listing = await self.devices()
        if listing.get("device_list"):
            self.device.accept_device_list(self.profile.actor, listing["device_list"])

    async def _open_sessions(self, targets: list[Target]) -> set[str]:
        """Claim keys and start sessions where none exist; returns why claims failed (the
        server's codes, e.g. ``no_keys``, or ``http_403`` from a recipient's server that
        refused us)."""
        failed: set[str] = set()
        missing = self.device.missing_sessions(targets)
        by_actor: dict[str, list[Target]] = {}
        for target in missing:
            by_actor.setdefault(target.actor, []).append(target)
        for actor, wanted in by_actor.items():
            answer = await self._call(
                "POST",
                "/api/v1/hearthside/e2ee/keys/claim",
                json_body={"actor": actor, "device_ids": [t.device.device_id for t in wanted]},
            )
            failed.update(str(reason) for reason in answer.get("failures", {}).values())
            for target in wanted:
                key = answer.get("keys", {}).get(target.device.device_id)
                if key is None:
                    continue
                self.device.start_session(
                    target, ClaimedKey(key["key_id"], key["key"], key["signature"], bool(key.get("fallback")))
                )
        return failed

    async def send(
        self,
        to: str,
        text: str,
        *,
        expires_in: timedelta | None = None,
        extra: dict[str, Any] | None = None,
        files: Sequence[Path] = (),
    ) -> str:
        """Encrypt ``text`` for every device of ``to`` and every other device of ours; returns
        the message id. ``expires_in``: a disappearing message; the timer travels inside the
        ciphertext (the server cannot change it) and every device deletes it when it passes,
        though a recipient can always have copied it first. ``extra``: more body fields (an
        edit's ``edit_of``). ``files``: attachments, each encrypted here under its own key and
        uploaded as ciphertext (crypto/attachments.py); the message carries their keys."""
        if len(files) > MAX_ATTACHMENTS:
            raise DmError(f"at most {MAX_ATTACHMENTS} attachments per message")
        actor = await self._pin(to)
        await self._refresh_support_kit()
        if expires_in is None:
            expires_in = self.timer(actor)
        uploads: list[str] = []
        if files:
            described = []
            for path in files:
                descriptor, upload_id = await self._upload(Path(path))
                described.append(descriptor)
                uploads.append(upload_id)
            extra = {**(extra or {}), "attachments": described}
            text = text or "📎 " + ", ".join(d["name"] for d in described)
        try:
            message = new_message(
                sender=self.profile.actor, recipient=actor, content=text, now=_now(), expires_in=expires_in, extra=extra
            )
            outgoing, answer = await self._deliver(actor, message, shown_as=to)
        except CryptoError as exc:
            await self._forget_uploads(uploads)
            raise DmError(str(exc)) from None
        except DmError:
            await self._forget_uploads(uploads)  # the message never left: its files need not stay
            raise
        edits = self._supersede(message, own=True)
        self.profile.history.append(
            {
                "id": message.id,
                "direction": "out",
                "peer": actor,
                "edits": edits,
                "reply_to": self._reply_target(message, actor),
                "uploads": uploads,
                "message": message.to_json(),
                "message_bytes": b64encode(message.encoded),
                "object_id": answer["id"],
                "franking_key": b64encode(outgoing.franking_key),
                "franking_tag": b64encode(outgoing.franking_tag),
                "stamp": answer.get("stamp"),
                "stamped_at": answer.get("stamped_at"),
            }
        )
        panel = self.support_for(text, sent=True)
        if panel is not None:
            self.support.append(panel)
        return message.id

    async def _deliver(self, actor: str, message: PlainMessage, *, shown_as: str) -> tuple[Outgoing, dict[str, Any]]:
        """Encrypt ``message`` for every device of ``actor`` (already pinned) and our other
        devices, opening sessions where needed, and post it."""
        state = self.device
        await self._refresh_own()
        own = state.pinned(self.profile.actor)
        if own is None or own.device(state.device_id) is None:
            raise DmError("this device is not approved yet: approve it from your first device")
        targets = state.targets(actor)
        failed = await self._open_sessions(targets)
        reachable = [t for t in targets if not state.missing_sessions([t])]
        if not any(t.actor == actor for t in reachable):
            if "http_403" in failed:
                why = "their server refused: they may have blocked you, or accept messages only from people they know"
            elif failed <= {"no_keys"}:
                why = "no keys left"
            else:
                why = ", ".join(sorted(failed))
            raise DmError(f"none of the devices of {shown_as} could be reached ({why})")
        outgoing = state.encrypt(message, reachable)
        self._persist()
        answer = await self._call(
            "POST",
            "/api/v1/hearthside/e2ee/messages",
            json_body={
                "to": actor,
                "franking_tag": b64encode(outgoing.franking_tag),
                "ciphertexts": [
                    {"actor": c.actor, "device_id": c.device_id, "type": c.message_type, "body": b64encode(c.body)}
                    for c in outgoing.ciphertexts
                ],
            },
        )
        return outgoing, dict(answer)

    def purge_expired(self, now: datetime | None = None) -> int:
        """Delete disappearing messages whose time has passed from this device's history,
        messages their sender deleted once they can no longer be reported, and messages older
        than the member keeps (``keep``)."""
        current = now or _now()
        moment = utc_time(current)
        keep = self.profile.keep_seconds
        oldest = utc_time(current - timedelta(seconds=keep)) if keep else ""
        before = len(self.profile.history)
        self.profile.history = [
            item
            for item in self.profile.history
            if not (item["message"].get("expires") or "9") <= moment
            and not (item.get("purge_at") or "9") <= moment
            and not item["message"]["created"] < oldest
        ]
        for item in self.profile.history:
            if "reaction_openings" in item:  # reactions taken back or replaced: a week, then gone
                item["reaction_openings"] = self._reaction_openings(item, current)
        return before - len(self.profile.history)

    def keep(self, period: timedelta | None) -> int:
        """Keep messages on this device for ``period`` after they were written (None: until
        deleted), as Signal's "keep messages": older ones, sent or received, are deleted here
        now and from then on. Only this device: the member's others and the other side keep
        their own setting. Returns how many were deleted now."""
        if period is not None and not MIN_KEEP <= period <= MAX_KEEP:
            raise DmError("messages are kept for between 1 day and 10 years (or forever)")
        self.profile.keep_seconds = int(period.total_seconds()) if period is not None else None
        return self.purge_expired()

    def delete(self, message_id: str) -> None:
        """Delete a message from this device's history (no other device is told)."""
        kept = [item for item in self.profile.history if item["id"] != message_id]
        if len(kept) == len(self.profile.history):
            raise DmError(f"no message {message_id} on this device (see `hearthside dm read --all`)")
        self.profile.history = kept

    async def delete_for_everyone(self, message_id: str) -> None:
        """Delete a message this member sent, within a day of sending, from every device it
        went to: the recipient's and the member's own. The request travels encrypted like a
        message and only the sender can make it (each device checks it came from the author).
        The recipient's devices no longer show it; they keep it, unseen, for a week so that it
        can still be reported, then drop it."""
        item = self._own_recent(
            self._item(message_id),
            DELETE_FOR_EVERYONE_WITHIN,
            "a message can be deleted for everyone within 24 hours of sending; "
            f"`hearthside dm delete {message_id}` deletes it from this device",
        )
        peer = item["peer"]
        await self._pin(peer)
        retract = new_control_message(
            sender=self.profile.actor, recipient=peer, body={"type": "Delete", "id": message_id}, now=_now()
        )
        await self._deliver(peer, retract, shown_as=peer)
        # Its attachments stay stored until [e2ee] attachment_ttl_days: the recipient can still
        # report the message for a week, and its moderators must be able to open the files.
        self.delete(message_id)

    async def _forget_uploads(self, uploads: Sequence[str]) -> None:
        """Delete uploads whose message was never sent (best effort: they expire anyway)."""
        for upload in uploads:
            try:
                await self._call("DELETE", f"/api/v1/hearthside/e2ee/attachments/{upload}")
            except (DmError, aiohttp.ClientError):
                log.info("an unsent attachment could not be deleted; it expires on the server")

    async def _upload(self, path: Path) -> tuple[dict[str, Any], str]:
        """Encrypt and upload one file; its descriptor for the message, and the upload's id."""
        try:
            data = await asyncio.to_thread(path.read_bytes)
        except OSError as exc:
            raise DmError(f"{path}: cannot be read ({exc.strerror or type(exc).__name__})") from None
        sealed = seal_attachment(data)
        answer = await self._call("POST", "/api/v1/hearthside/e2ee/attachments", raw_body=sealed.ciphertext)
        descriptor = {
            "url": answer["url"],
            "key": b64encode(sealed.key),
            "digest": b64encode(sealed.digest),
            "size": sealed.size,
            "name": safe_name(path.name),
            "media_type": mimetypes.guess_type(path.name)[0] or "application/octet-stream",
        }
        return descriptor, str(answer["id"])

    def attachments(self, message_id: str) -> list[dict[str, Any]]:
        """The attachments a kept message names that this device will fetch: well-formed, and
        stored on the sender's own server (a message naming anything else is not followed)."""
        item = self._item(message_id)
        if item is None:
            raise DmError(f"no message {message_id} on this device (see `hearthside dm read --all`)")
        return valid_attachments(item["message"])

    async def save_attachments(self, message_id: str, directory: Path) -> list[Path]:
        """Fetch (through this member's server), check and decrypt a message's attachments and
        write them into ``directory`` (never over an existing file); returns the paths."""
        found = self.attachments(message_id)
        if not found:
            raise DmError(f"message {message_id} has no attachments this device can fetch")
        written = []
        for descriptor in found:
            ciphertext = await self._call(
                "GET", "/api/v1/hearthside/e2ee/attachments/fetch", params={"url": descriptor["url"]}, raw_answer=True
            )
            try:
                data = open_attachment(ciphertext, descriptor)
            except CryptoError as exc:
                raise DmError(f"{descriptor['name']}: {exc}") from None
            written.append(await asyncio.to_thread(_write_new, directory, descriptor["name"], data))
        return written

    async def edit(self, message_id: str, text: str) -> str:
        """Correct a message this member sent, within a day of sending: the new text goes as a
        new message naming the one it replaces (``edit_of``), franked like any other, to every
        device the first went to. Devices show the new text, marked edited, in its place; the
        recipient's keep the first text unseen for a week so that it can still be reported."""
        found = self._item(message_id)
        if found is not None and found.get("replaced_by"):
            found = None  # edit the message that replaced it
        item = self._own_recent(
            found, EDIT_WITHIN, "a message can be edited within 24 hours of sending; send a new one instead"
        )
        extra = {"edit_of": message_id}
        if item.get("reply_to"):
            extra["in_reply_to"] = item["reply_to"]  # the correction answers what the first did
        return await self.send(item["peer"], text, extra=extra)

    async def reply(
        self, message_id: str, text: str, *, expires_in: timedelta | None = None, files: Sequence[Path] = ()
    ) -> str:
        """Answer a kept message: a message to the same conversation naming it (``in_reply_to``).
        Each device shows the quote from its own copy of that message, never from the reply, so
        a reply cannot make anyone appear to have written what they did not."""
        item = self._current(message_id)
        return await self.send(
            item["peer"], text, expires_in=expires_in, files=files, extra={"in_reply_to": item["id"]}
        )

    async def react(self, message_id: str, emoji: str | None) -> str:
        """React to a kept message with one emoji (``None``: take the reaction back). The
        ``Reaction`` travels encrypted like a message to the other member's devices and ours;
        each member has at most one reaction per message, the newest wins. Returns the id of
        the message reacted to (an edited message's reactions go to its corrected text)."""
        if emoji is not None and not valid_reaction(emoji):
            raise DmError(f"a reaction is one emoji (at most {MAX_REACTION_CHARS} characters, no letters or spaces)")
        item = self._current(message_id)
        if item.get("deleted_at"):
            raise DmError("its sender deleted that message")
        peer = item["peer"]
        await self._pin(peer)
        moment = _now()
        change = new_control_message(
            sender=self.profile.actor,
            recipient=peer,
            body={"type": "Reaction", "of": item["id"], "emoji": emoji or ""},
            now=moment,
        )
        await self._deliver(peer, change, shown_as=peer)
        self._set_reaction(item, self.profile.actor, emoji or "", int(moment.timestamp()))
        return str(item["id"])

    def _current(self, message_id: str) -> dict[str, Any]:
        """The kept message shown for ``message_id`` (an edited one's correction), not a
        request; DmError otherwise."""
        item = self._latest(message_id)
        if item is None:
            raise DmError(f"no message {message_id} on this device (see `hearthside dm read --all`)")
        if item.get("request"):
            raise DmError("accept their message request first (`hearthside dm requests accept NAME`)")
        return item

    def _latest(self, message_id: object) -> dict[str, Any] | None:
        """The kept message with this id, or the edit that replaced it (and so on)."""
        item = self._item(message_id)
        for _ in range(100):  # an edit of an edit...; bounded, though ids never repeat
            if item is None or not item.get("replaced_by"):
                break
            item = self._item(item["replaced_by"])
        return item

    def quote(self, message_id: str) -> str:
        """What a reply answers, as this device kept it: the start of its text."""
        item = self._latest(message_id)
        if item is None:
            return "(no longer on this device)"
        if item.get("deleted_at"):
            return "(deleted by the sender)"
        text = " ".join(str(item["message"]["body"].get("content", "")).split())
        return text if len(text) <= QUOTE_CHARS else text[: QUOTE_CHARS - 1] + "…"

    def reactions(self, message_id: str) -> dict[str, str]:
        """The reactions to a kept message: actor -> emoji."""
        item = self._item(message_id)
        found = item.get("reactions", {}) if item is not None else {}
        return {actor: emoji for actor, (emoji, _) in found.items() if emoji}

    def _reply_target(self, message: PlainMessage, peer: str) -> str | None:
        """The message ``message`` answers, when it is kept here and of the same conversation
        (anything else is not shown: a reply cannot reach into another conversation)."""
        target = message.body.get("in_reply_to")
        item = self._item(target) if isinstance(target, str) else None
        return target if item is not None and item["peer"] == peer else None

    def _reacted(self, message: PlainMessage, own: bool, peer: str, opening: dict[str, Any]) -> None:
        """A ``Reaction`` from the other member (or from one of our devices): kept on the
        message when it is one of this conversation and still shown; anything else is ignored.
        The other member's reactions keep their franking opening, so they can be reported
        (``report``): the one shown, and for a week one taken back or replaced."""
        target, emoji = message.body.get("of"), message.body.get("emoji")
        if not isinstance(emoji, str) or (emoji and not valid_reaction(emoji)):
            return
        item = self._item(target)
        if item is None or item["peer"] != peer or item.get("deleted_at"):
            return
        if not self._set_reaction(item, message.sender, emoji, message.created_at) or own:
            return
        item["reaction_unread"] = True  # `receive` tells the member once
        kept = item.setdefault("reaction_openings", [])
        moment = utc_time(_now())
        for earlier in kept:
            earlier.setdefault("replaced_at", moment)
        if emoji:
            kept.append({**opening, "emoji": emoji})
        del kept[:-MAX_KEPT_REACTIONS]

    @staticmethod
    def _set_reaction(item: dict[str, Any], actor: str, emoji: str, at: int) -> bool:
        """One reaction per member and message, the newest wins ("" takes it back)."""
        reactions = item.setdefault("reactions", {})
        current = reactions.get(actor)
        if current is not None and current[1] > at:
            return False
        reactions[actor] = [emoji, at]
        return True

    def _item(self, message_id: object) -> dict[str, Any] | None:
        """The kept message with this id, or None. Looked up in an index of the history (each
        line `read --all` shows asks for its reactions and quote: a scan each would make
        showing n messages cost n^2). The client only appends to the history or replaces the
        list, so the index is extended when the list grew and rebuilt when it was replaced."""
        history = self.profile.history
        if self._indexed is not history or self._indexed_length > len(history):
            self._index, self._indexed, self._indexed_length = {}, history, 0
        for item in history[self._indexed_length :]:
            self._index.setdefault(item["id"], item)  # the first with an id, as a scan finds
        self._indexed_length = len(history)
        return self._index.get(message_id) if isinstance(message_id, str) else None

    @staticmethod
    def _own_recent(item: dict[str, Any] | None, window: timedelta, late: str) -> dict[str, Any]:
        """``item`` if it is a message this member sent less than ``window`` ago; DmError
        otherwise (``late`` when only the time is wrong)."""
        if item is None or item["direction"] != "out":
            raise DmError("that is not a message you sent (see `hearthside dm read --all`)")
        if not _within(item, _now(), window):
            raise DmError(late)
        return item

    def _authored(self, target: object, message: PlainMessage, window: timedelta) -> dict[str, Any] | None:
        """The kept message ``target`` when ``message`` (its edit or Delete) comes from the
        same author less than ``window`` after it; None otherwise (ignored)."""
        item = self._item(target)
        if item is None or item["message"]["from"] != message.sender:
            return None
        return item if _within(item, message.created, window) else None

    def _supersede(self, message: PlainMessage, *, own: bool) -> str | None:
        """An edit (``edit_of``) of an earlier message: that message is replaced when it is the
        same author's, from within the window. The member's own devices drop the first text; a
        recipient's keep it unseen while it can be reported. Returns the replaced message's id,
        or None when nothing was replaced (the edit is then shown as a message of its own)."""
        target = message.body.get("edit_of")
        if not isinstance(target, str):
            return None
        item = self._authored(target, message, EDIT_WITHIN)
        if item is None or item.get("deleted_at"):
            return None
        item.pop("unread", None)
        item["replaced_by"] = message.id
        if own:
            item.pop("message_bytes", None)  # no copy of the first text kept by its author
            item["message"] = {**item["message"], "body": {"type": "Note", "content": ""}}
        else:
            item["purge_at"] = utc_time(_now() + REPORTABLE_AFTER_DELETION)
        return target

    def timer(self, actor: str) -> timedelta | None:
        """The conversation's disappearing-message timer, or None (off)."""
        seconds = self.profile.timers.get(actor, [0, 0])[0]
        return timedelta(seconds=seconds) if seconds else None

    async def set_timer(self, ref: str, after: timedelta | None) -> str:
        """Make messages in the conversation with ``ref`` disappear ``after`` sending (None:
        off), for both: the setting travels, encrypted, to their devices and our others, whose
        messages then carry it too (as Signal's disappearing messages). Returns their actor."""
        if after is not None and not timedelta(seconds=1) <= after <= MAX_TIMER:
            raise DmError("a disappearing-message timer is between 1 second and 365 days")
        actor = await self._pin(ref)
        seconds = int(after.total_seconds()) if after is not None else 0
        moment = _now()
        change = new_control_message(
            sender=self.profile.actor, recipient=actor, body={"type": "Timer", "seconds": seconds}, now=moment
        )
        await self._deliver(actor, change, shown_as=ref)
        self.profile.timers[actor] = [seconds, int(moment.timestamp())]
        return actor

    def _timer_changed(self, message: PlainMessage, own: bool) -> None:
        """A ``Timer`` from the other side (or from one of our devices): the newest wins."""
        seconds = message.body.get("seconds")
        if not isinstance(seconds, int) or isinstance(seconds, bool) or not 0 <= seconds <= MAX_TIMER.total_seconds():
            return
        peer = message.recipient if own else message.sender
        if self.profile.timers.get(peer, [0, 0])[1] > message.created_at:
            return  # an older change arriving late
        self.profile.timers[peer] = [seconds, message.created_at]
        who = "You" if own else peer
        self.notices.append(
            f"{who} turned disappearing messages off with {peer}."
            if not seconds
            else f"{who} set messages with {peer} to disappear {spoken(seconds)} after sending."
        )

    def _deleted_by_sender(self, message: PlainMessage, own: bool) -> None:
        """A ``Delete`` of an earlier message: honoured only from that message's author and
        within the window; a recipient keeps it unseen while it can be reported."""
        target = message.body.get("id")
        item = self._authored(target, message, DELETE_FOR_EVERYONE_WITHIN)
        if item is None:
            return  # not here (expired, never came), not theirs to delete, or too late
        if own:  # the member deleted it from another of their devices
            self.delete(str(target))
            return
        item.pop("unread", None)
        item["deleted_at"] = utc_time(_now())
        item["purge_at"] = utc_time(_now() + REPORTABLE_AFTER_DELETION)

    async def receive(self) -> list[Incoming]:
        """Fetch, decrypt, keep and acknowledge everything waiting for this device; returns
        what the member has not been shown yet (this time, or opened before a crash or while a
        verification was waiting for its next step)."""
        await self.fetch()
        return self._hand_over()

    async def fetch(self) -> None:
        """Open, keep and acknowledge everything waiting; top up one-time keys. What was opened
        stays unread in the history until :meth:`receive` hands it over (so listing
        conversations, or a verification polling for its next step, shows nothing as read).

        A ciphertext this device already opened is never opened again: the second attempt
        would fail as a replay (the ratchet step is spent). That happens when the device died
        between opening a page and the server taking its acknowledgement; such ciphertexts are
        recognised by their object id, in the history (messages) or in
        ``Profile.unacknowledged`` (everything opened, kept with the profile before the
        acknowledgement: verification steps and refused ciphertexts too), and acknowledged
        again without being counted twice."""
        state = self.device
        self.purge_expired()
        await self._refresh_support_kit()
        while True:
            page = await self._call("GET", "/api/v1/hearthside/e2ee/messages", params={"limit": "100"})
            rows = page.get("messages", [])
            if not rows:
                # Everything opened so far was acknowledged: nothing can come back.
                self.profile.unacknowledged = []
                break
            done: list[str] = []
            seen = {item.get("object_id") for item in self.profile.history}
            seen.update(self.profile.unacknowledged)
            for row in rows:
                done.append(row["id"])
                object_id = row.get("object_id")
                if object_id in seen:
                    continue  # opened before a crash stopped its acknowledgement
                await self._open(row)
                if isinstance(object_id, str):
                    self.profile.unacknowledged.append(object_id)
            self._persist()
            await self._call("POST", "/api/v1/hearthside/e2ee/messages/ack", json_body={"ids": done})
            acknowledged = {row.get("object_id") for row in rows}
            self.profile.unacknowledged = [o for o in self.profile.unacknowledged if o not in acknowledged]
        count = await self._call("GET", "/api/v1/hearthside/e2ee/keys/count")
        if int(count.get("one_time_key_count", 0)) < REPLENISH_BELOW:
            keys = state.new_one_time_keys(ONE_TIME_KEYS - int(count.get("one_time_key_count", 0)))
            # Marked published and kept before the upload: keys lost in transit are never
            # offered again (the next top-up makes new ones), and none is uploaded unkept.
            state.mark_keys_published()
            self._persist()
            await self._call(
                "POST", "/api/v1/hearthside/e2ee/keys/upload", json_body={"one_time_keys": [k.to_json() for k in keys]}
            )

    def _hand_over(self) -> list[Incoming]:
        """What was opened and not yet handed to the member (kept, marked unread, in the
        history): handed over once, in the order received."""
        received: list[Incoming] = []
        self.reacted = []
        for item in self.profile.history:
            if item.pop("reaction_unread", False) and not item.get("request") and not item.get("unread"):
                self.reacted.append(item["id"])
            if not item.get("request") and item.pop("unread", False):
                message = item["message"]
                own = item["direction"] == "out"
                content = message["body"].get("content", "")
                panel = None if own else self.support_for(content, sent=False)
                files = tuple({k: a[k] for k in ("name", "size", "media_type")} for a in valid_attachments(message))
                received.append(
                    Incoming(
                        item["id"],
                        message["from"],
                        message["to"],
                        content,
                        item["stamped_at"],
                        own,
                        panel,
                        item.get("edits"),
                        files,
                        item.get("reply_to"),
                    )
                )
                if panel is not None:
                    self.support.append(panel)
        return received

    # ------------------------------------------------------------------ support panels

    async def _refresh_support_kit(self) -> None:
        """Fetch the support kit when this device has none or it is a day old. Called at the
        start of every send and fetch, before any message is read, so when it is fetched
        depends on time alone and says nothing about what was written."""
        if not self.profile.support_panels:
            return
        fetched = self.profile.support_kit_at
        if fetched is not None and _now() - datetime.fromisoformat(fetched) < SUPPORT_KIT_MAX_AGE:
            return
        try:
            kit = await self._call("GET", "/api/v1/hearthside/safety/support_kit")
        except (TimeoutError, DmError, aiohttp.ClientError) as exc:
            log.info("the support kit could not be fetched: %s", type(exc).__name__)
            return  # the old kit (if any) stays; tried again next time
        self.profile.support_kit, self.profile.support_kit_at = dict(kit), _now().isoformat()

    def support_for(self, text: str, *, sent: bool) -> dict[str, Any] | None:
        """The panel to show the member with ``text`` (a message they sent, or received), or
        None: the instance's crisis detector (moderation/crisis.py, with the instance's own
        additions and exclusions from the kit), run here on the device. Whatever it finds
        stays here: nothing is sent, stored or logged (docs/safety.md "Encrypted messages")."""
        kit = self.profile.support_kit
        if not self.profile.support_panels or not kit or not text:
            return None
        found = _detector(kit).detect(text)
        if not found.crisis or found.level not in ("low", "high"):
            return None
        panels = kit.get("panels", {})
        language = found.lang if found.lang in panels else "en"
        try:
            return dict(panels[language][found.level]["sent" if sent else "received"])
        except (KeyError, TypeError):
            return None

    async def _open(self, row: dict[str, Any]) -> None:
        """Decrypt and check one ciphertext; a message is kept in the history, marked unread
        (``receive`` hands it over), a protocol step queued, anything refused counted."""
        state = self.device
        sender = row["sender"]["actor"]
        sender_device = row["sender"]["device_id"]
        try:
            if not state.knows_device(sender, sender_device):
                if sender == self.profile.actor:
                    await self._refresh_own()
                else:
                    await self._pin(sender)
            envelope = state.decrypt(
                sender_actor=sender,
                sender_device=sender_device,
                message_type=int(row["type"]),
                body=b64decode(row["body"], field="body"),
                outer_tag=b64decode(row["franking_tag"], field="franking_tag", size=32),
            )
        except (CryptoError, DmError, ValueError) as exc:
            self.profile.undecryptable += 1
            log.info("a message could not be opened: %s", type(exc).__name__)
            return
        message = envelope.message
        own = message.sender == self.profile.actor
        peer = message.recipient if own else message.sender
        if message.body.get("type") == "Delete":
            self._deleted_by_sender(message, own)
            return
        if message.body.get("type") == "Timer":
            self._timer_changed(message, own)
            return
        if message.body.get("type") == "Reaction":
            self._reacted(message, own, peer, _opening(row, envelope))
            return
        if message.body.get("type") != "Note":
            # An in-band protocol step (key verification): never shown, never kept as history.
            if not own:
                self._queue_control(Control(sender, sender_device, dict(message.body), message.created_at))
            return
        edits = self._supersede(message, own=own)
        self.profile.history.append(
            {
                "id": message.id,
                "edits": edits,
                "reply_to": self._reply_target(message, peer),
                "direction": "out" if own else "in",
                "peer": peer,
                "message": message.to_json(),
                **_opening(row, envelope),
                "sender_device": sender_device,
                "unread": True,
            }
        )
        if not own and not row["sender"].get("known", True) and not self._knows(peer):
            self.profile.history[-1]["request"] = True  # from a stranger: waits for `accept`
        self.purge_expired()

    # ------------------------------------------------------------------ history and trust

    def conversations(self) -> list[dict[str, Any]]:
        """One entry per contact: last message time, count and how many not yet read (newest first)."""
        peers: dict[str, dict[str, Any]] = {}
        for item in self.profile.history:
            if item.get("request") or item.get("replaced_by"):
                continue  # see `requests`; an edited message counts once
            entry = peers.setdefault(
                item["peer"],
                {
                    "peer": item["peer"],
                    "messages": 0,
                    "unread": 0,
                    "last": "",
                    "timer_seconds": self.profile.timers.get(item["peer"], [0, 0])[0] or None,
                },
            )
            entry["messages"] += 1
            entry["unread"] += bool(item.get("unread"))
            entry["last"] = max(entry["last"], item["message"]["created"])
        return sorted(peers.values(), key=lambda e: e["last"], reverse=True)

    def history_with(self, peer: str) -> list[dict[str, Any]]:
        return [item for item in self.profile.history if item["peer"] == peer]

    def search(self, text: str, *, peer: str | None = None) -> list[dict[str, Any]]:
        """Kept messages whose text or file names contain ``text`` (any case), oldest first:
        what ``read --all`` shows, so not requests, not the first text of an edited message,
        not messages their sender deleted. Only on this device: no server can search."""
        needle = " ".join(text.split()).casefold()
        if not needle:
            raise DmError("give some text to search for")
        found = []
        for item in self.profile.history:
            if item.get("request") or item.get("replaced_by") or item.get("deleted_at"):
                continue
            if peer is not None and item["peer"] != peer:
                continue
            message = item["message"]
            words = [str(message["body"].get("content", ""))]
            words += [str(a.get("name", "")) for a in valid_attachments(message)]
            if any(needle in " ".join(w.split()).casefold() for w in words):
                found.append(item)
        return found

    async def resolve(self, ref: str) -> str:
        """The actor URI of a handle or URI (pins their device list on the way)."""
        return await self._pin(ref)

    async def safety_number(self, ref: str, *, accept_new_key: bool = False) -> str:
        actor = await self._pin(ref, accept_new_key=accept_new_key)
        await self._refresh_own()
        return self.device.safety_number(actor)

    async def mark_verified(self, ref: str) -> None:
        actor = await self._pin(ref)
        self.device.mark_verified(actor)

    async def report(
        self, message_ids: Sequence[str], *, comment: str, forward: bool, reactions_on: Sequence[str] = ()
    ) -> dict[str, Any]:
        """Reveal chosen messages of one conversation (and their franking openings) to your
        moderators: messages the other member sent you and, as their context, messages you sent
        them. ``reactions_on``: the other member's reactions to these kept messages (yours or
        theirs), the one shown and any taken back or replaced in the last week, with the
        message itself. At least one message or reaction must be theirs. ``forward`` sends only
        theirs to their server."""
        wanted = set(message_ids) | set(reactions_on)
        if not wanted:
            raise DmError("give the ids of messages in one conversation, or --reactions-on ID")
        chosen = [item for item in self.profile.history if item["id"] in wanted]
        missing = wanted - {item["id"] for item in chosen}
        if missing:
            raise DmError(f"no message {', '.join(sorted(missing))} on this device (see `hearthside dm read --all`)")
        # A message of ours that we edited keeps no copy of its first text: its current version
        # is revealed in its place (a recipient's device keeps their first texts; see _supersede).
        current = (i if "message_bytes" in i else self._latest(i["id"]) or i for i in chosen)
        chosen = list({id(i): i for i in current}.values())
        for message_id in dict.fromkeys(reactions_on):
            openings = self.reportable_reactions(message_id)
            if not openings:
                raise DmError(f"the other member's reactions to {message_id} are not kept on this device")
            chosen += openings
        if len({item["peer"] for item in chosen if "peer" in item}) != 1:
            raise DmError("a report reveals one conversation: choose messages with one member")
        if all(item.get("direction") == "out" for item in chosen):
            raise DmError("your own messages are context only: choose a message or reaction of theirs too")
        if any(not item.get("stamp") or not item.get("message_bytes") for item in chosen):
            raise DmError("a chosen message was kept without its franking opening and cannot be revealed")
        if len(chosen) > MAX_REPORTED:
            raise DmError(f"a report reveals at most {MAX_REPORTED} messages and reactions; choose fewer")
        body = {
            "comment": comment,
            "forward": forward,
            "messages": [revealed(item) for item in chosen],
        }
        return dict(await self._call("POST", "/api/v1/hearthside/e2ee/reports", json_body=body))

    def reportable_reactions(self, message_id: str) -> list[dict[str, Any]]:
        """The other member's reactions to a kept message and to its earlier and later
        versions (edits), that can still be reported: their franking openings, with ``emoji``."""
        item = self._item(message_id)
        if item is None:
            return []
        versions = [item]
        for _ in range(100):  # bounded, as ``_latest``
            earlier = self._item(versions[0].get("edits"))
            if earlier is None or earlier.get("replaced_by") != versions[0]["id"]:
                break
            versions.insert(0, earlier)
        for _ in range(100):
            later = self._item(versions[-1].get("replaced_by"))
            if later is None:
                break
            versions.append(later)
        return [opening for version in versions for opening in self._reaction_openings(version)]

    @staticmethod
    def _reaction_openings(item: dict[str, Any], now: datetime | None = None) -> list[dict[str, Any]]:
        """The other member's reactions to ``item`` that can still be reported, oldest first."""
        moment = utc_time((now or _now()) - REPORTABLE_AFTER_DELETION)
        return [o for o in item.get("reaction_openings", ()) if o.get("replaced_at", "9") > moment]

    # ------------------------------------------------------------------ SAS verification

    async def _send_control(self, actor: str, body: dict[str, Any]) -> None:
        message = new_control_message(sender=self.profile.actor, recipient=actor, body=body, now=_now())
        await self._deliver(actor, message, shown_as=actor)

    def _queue_control(self, item: Control) -> None:
        """Keep a verification step for the attempt that may want it. Bounded: a long-lived
        client (or a contact sending steps nobody waits for) must not grow without end, so
        steps older than an hour (plus clock skew) go, and at most MAX_QUEUED_CONTROL stay."""
        oldest = int(_now().timestamp() - SAS_STEP_LIFETIME.total_seconds() - SAS_CLOCK_SKEW.total_seconds())
        self._control = [c for c in self._control if c.created >= oldest][-(MAX_QUEUED_CONTROL - 1) :]
        self._control.append(item)

    async def _wait_control(
        self,
        actor: str,
        kinds: tuple[str, ...],
        *,
        ours: str,
        current: Control | None,
        deadline: float,
        since: int,
    ) -> Control:
        """The next verification step from ``actor`` of one of ``kinds`` in this attempt: ours
        is transaction ``ours``, theirs the one their commitment ``current`` started (None
        until it is known).

        A key or MAC counts when it carries their transaction and answers ours (``for``); a
        commitment when it is another than ``current`` and not older (the newest wins: they
        started over). Anything else stays queued, unused (a step of an attempt whose
        commitment is still to be read, or of one that ended: a crash or a timeout leaves such
        steps behind), until it is older than ``since`` (unix seconds), when no attempt it
        belongs to can still be running. Their cancellation of their attempt ends this one."""
        theirs = current.body.get("txn") if current is not None else None
        loop = asyncio.get_running_loop()
        while True:
            commits: list[Control] = []
            found: Control | None = None
            for item in list(self._control):
                if item.sender != actor:
                    continue
                if item.created < since:
                    self._control.remove(item)
                    continue
                step, txn = item.body.get("type"), item.body.get("txn")
                if step == "SasCommit":
                    if step in kinds and txn != theirs and (current is None or item.created >= current.created):
                        commits.append(item)
                elif txn != theirs:
                    continue
                elif step == "SasCancel":
                    self._control.remove(item)
                    raise DmError("the other side cancelled the verification")
                elif step in kinds and item.body.get("for") == ours and found is None:
                    found = item
            if commits:  # they started over: before any step of the attempt they left
                found = max(commits, key=lambda c: c.created)
            if found is not None:
                self._control.remove(found)
                return found
            if loop.time() >= deadline:
                raise DmError("the other side did not answer in time; both must run the verification together")
            await self.fetch()  # messages opened meanwhile stay unread for the next `receive`
            await asyncio.sleep(SAS_POLL_SECONDS)

    async def verify_sas(
        self,
        ref: str,
        confirm: Callable[[tuple[tuple[str, str], ...], tuple[int, int, int]], Awaitable[bool]],
        *,
        within: float = 300.0,
    ) -> bool:
        """Interactive verification with a contact who runs it at the same time: both devices
        commit to a short-authentication-string key, reveal it, show the same 7 emoji and 3
        numbers, and after both members confirm they match, exchange MACs over their master
        keys (vodozemac SAS; commit-then-reveal as Matrix does, so a man in the middle cannot
        choose keys that make the emoji agree). True marks the contact verified; False means
        the member said they differ (the other side is told).

        Each key and MAC names the attempt it answers, so steps left over from an attempt that
        ended (one side crashed or gave up) are never mistaken for this one's; a side that
        starts over while the other still waits sends a new commitment, and the waiting side
        answers it again."""
        actor = await self._pin(ref)
        theirs = self.device.pinned(actor)
        mine = self.device.pinned(self.profile.actor)
        if theirs is None or mine is None:
            raise DmError("set up this device first")
        sas = SasSession.create()
        txn = str(uuid.uuid4())
        commit = {"type": "SasCommit", "txn": txn, "commitment": _sas_commitment(sas.public_key, txn)}
        deadline = asyncio.get_running_loop().time() + within
        # The other side started at most `within` ago, or its attempt has ended; their clock
        # may run behind ours by up to SAS_CLOCK_SKEW (the newest commitment wins anyway).
        since = int(_now().timestamp() - within - SAS_CLOCK_SKEW.total_seconds())
        await self._send_control(actor, commit)
        their_commit = await self._wait_control(
            actor, ("SasCommit",), ours=txn, current=None, deadline=deadline, since=since
        )
        while True:
            their_txn = str(their_commit.body.get("txn", ""))
            await self._send_control(actor, {"type": "SasKey", "txn": txn, "for": their_txn, "key": sas.public_key})
            step = await self._wait_control(
                actor,
                ("SasKey", "SasCommit"),
                ours=txn,
                current=their_commit,
                deadline=deadline,
                since=since,
            )
            if step.body.get("type") == "SasKey":
                their_key_msg = step
                break
            # A newer commitment: they started over and need ours again (then our key).
            their_commit = step
            await self._send_control(actor, commit)
        their_key = str(their_key_msg.body.get("key", ""))
        if not hmac.compare_digest(_sas_commitment(their_key, their_txn), str(their_commit.body.get("commitment", ""))):
            await self._send_control(actor, {"type": "SasCancel", "txn": txn, "reason": "commitment"})
            raise DmError("the other side's key does not match its commitment: someone is interfering")
        try:
            established = sas.establish(their_key)
        except CryptoError:
            raise DmError("the other side sent an unusable key") from None
        sides = sorted(
            [
                f"{self.profile.actor}|{self.device.device_id}|{sas.public_key}|{txn}",
                f"{actor}|{their_key_msg.sender_device}|{their_key}|{their_txn}",
            ]
        )
        info = "HEARTHSIDE_SAS_V1|" + "|".join(sides)
        if not await confirm(established.emoji(info), established.decimals(info)):
            await self._send_control(actor, {"type": "SasCancel", "txn": txn, "reason": "mismatch"})
            return False
        mac = established.calculate_mac(mine.master_key, f"{info}|MAC|{self.profile.actor}")
        await self._send_control(actor, {"type": "SasMac", "txn": txn, "for": their_txn, "mac": mac})
        their_mac = await self._wait_control(
            actor, ("SasMac",), ours=txn, current=their_commit, deadline=deadline, since=since
        )
        try:
            established.verify_mac(theirs.master_key, f"{info}|MAC|{actor}", str(their_mac.body.get("mac", "")))
        except CryptoError:
            raise DmError("the verification failed: the master key is not the one the other side has") from None
        self.device.mark_verified(actor)
        return True


SAS_POLL_SECONDS = 0.5
SAS_CLOCK_SKEW = timedelta(minutes=10)
SAS_STEP_LIFETIME = timedelta(hours=1)
MAX_QUEUED_CONTROL = 100


def revealed(item: dict[str, Any]) -> dict[str, Any]:
    """A kept message or reaction as a report reveals it (``POST /e2ee/reports``)."""
    return {
        "object_id": item["object_id"],
        "message": item["message_bytes"],
        "franking_key": item["franking_key"],
        "franking_tag": item["franking_tag"],
        "stamp": item["stamp"],
        # Kept on what this device sent, the stamp our server made is the sender's.
        "sender_stamp": item.get("sender_stamp") or item["stamp"],
        "stamped_at": item["stamped_at"],
    }


def _opening(row: dict[str, Any], envelope: Envelope) -> dict[str, Any]:
    """What a report reveals of a received message or reaction (its franking opening and the
    servers' stamps), as kept with it."""
    return {
        "object_id": row["object_id"],
        "message_bytes": b64encode(envelope.message.encoded),
        "franking_key": b64encode(envelope.franking_key),
        "franking_tag": b64encode(envelope.franking_tag),
        "stamp": row["stamp"],
        "sender_stamp": row["sender_stamp"],
        "stamped_at": row["stamped_at"],
    }


def _write_new(directory: Path, name: str, data: bytes) -> Path:
    """Write ``data`` to a new file (mode 0600) named after ``name`` in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    target = _free_path(directory, name)
    with os.fdopen(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as handle:
        handle.write(data)
    return target


def _free_path(directory: Path, name: str) -> Path:
    """``directory/name``, or ``name (1)``, ``name (2)``... when taken."""
    stem, dot, suffix = safe_name(name).rpartition(".")
    if not stem:
        stem, dot, suffix = suffix, "", ""
    for n in range(10_000):
        candidate = directory / (f"{stem}{dot}{suffix}" if n == 0 else f"{stem} ({n}){dot}{suffix}")
        if not candidate.exists():
            return candidate
    raise DmError(f"{directory}: too many files named {name}")


def valid_reaction(text: object) -> bool:
    """One emoji: 1 to MAX_REACTION_CHARS code points, and no words: no letters or digits of
    any script (a digit only as a keycap emoji, "1️⃣"), no spaces, controls, unassigned or
    private-use characters; of the invisible format characters only the zero-width joiner and
    the tag characters emoji sequences use (family emoji, subdivision flags). A reaction must
    not be able to carry a message: words go in messages, where the support notes see them."""
    if not isinstance(text, str) or not 0 < len(text) <= MAX_REACTION_CHARS:
        return False
    for at, char in enumerate(text):
        kind = unicodedata.category(char)
        if kind[0] in "ZC" and not (char == "\u200d" or "\U000e0020" <= char <= "\U000e007f"):
            return False
        if kind[0] == "L":
            return False
        if kind[0] == "N" and not (char in "0123456789" and text[at + 1 : at + 3] in ("\ufe0f\u20e3", "\u20e3")):
            return False
    return True


def valid_attachments(message: dict[str, Any]) -> list[dict[str, Any]]:
    """A message's attachments this device will fetch (``crypto.attachments.descriptors``)."""
    return attachment_descriptors(message)


def _within(item: dict[str, Any], moment: datetime, window: timedelta) -> bool:
    """Whether ``moment`` is less than ``window`` after the kept message was written."""
    return moment - parse_utc_time(item["message"]["created"], field="created") <= window


def spoken(seconds: int) -> str:
    """``90`` -> "1 minute 30 seconds"-like text, largest units first (days to seconds)."""
    parts = []
    for size, name in ((86400, "day"), (3600, "hour"), (60, "minute"), (1, "second")):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count} {name}{'s' if count != 1 else ''}")
    return " ".join(parts)


def _names(account: dict[str, Any], own_domain: str) -> set[str]:
    """Every way a member may name this Mastodon Account entity: acct, name@domain, actor URI
    and profile URL (lower case)."""
    acct = str(account.get("acct", "")).lower()
    full = acct if "@" in acct else f"{acct}@{own_domain}"
    return {acct, full, str(account.get("uri", "")).lower(), str(account.get("url", "")).lower()}


_DETECTORS: dict[str, Any] = {}


def _detector(kit: dict[str, Any]) -> Any:
    """The crisis detector for a kit's lexicon changes (built once per process: ~0.1-0.3 s)."""
    from moderation.crisis import Detector  # late: only a device with a kit needs it

    additions, exclusions = kit.get("crisis_additions") or None, kit.get("crisis_exclusions") or None
    key = repr((additions, exclusions))
    found = _DETECTORS.get(key)
    if found is None:
        try:
            found = Detector(additions=additions, exclusions=exclusions) if additions or exclusions else None
        except (ValueError, TypeError) as exc:  # a kit this version cannot read: the shipped lexicon
            log.info("the instance's lexicon changes could not be used: %s", type(exc).__name__)
            found = None
        found = found or Detector.default()
        _DETECTORS.clear()
        _DETECTORS[key] = found
    return found


def _sas_commitment(key: str, txn: str) -> str:
    return b64encode(hashlib.sha256(f"{key}|{txn}".encode()).digest())


def _now() -> datetime:
    return datetime.now(UTC)
