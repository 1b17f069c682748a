"""The client API for end-to-end encrypted messages, under ``/api/v1/hearthside/e2ee``.

Design note
-----------
Everything here needs a token with the ``crypto`` scope (as Mastodon's withdrawn E2EE API did;
``read``/``write`` do not imply it, so an ordinary Mastodon app never touches a member's
messages). A device is bound to the token that registered it, so "which device is asking"
is the token. Endpoints take and give JSON (docs/e2ee.md has the shapes):

* devices: register (pending), list, publish a signed device list (activates and revokes),
  revoke a pending device; keys: upload, count, query a member's signed list (local, or
  fetched from the member's server), claim one-time keys (local claims here, remote ones by an
  HTTP-signed POST to the device's claim URL on the member's behalf);
* messages: send (one object per recipient actor, one ciphertext per device, stamped), the
  device inbox, acknowledgement (deletes);
* settings: who may message me.

Every request is one transaction: input is validated before anything is written. The one
exception is the rate-limit count of claims and sends (``e2ee.CLAIMS``, ``e2ee.SENDS``,
counted in the database so the limits hold across every web process): it is committed
first, so it holds even when the request then fails. Nothing is logged but ids and reason
codes; the server never sees a plaintext to log.

A remote member's devices are found through their actor document's ``e2ee:devices`` URL,
stored with the remote account (``accounts.devices_url``) like its inbox: refreshed whenever
the actor document is fetched (daily, ``server.remote_actors.ACTOR_TTL``) and by the actor's
own ``Update``, and shared by every process. The devices collection itself is fetched on
every request, because a revoked device must vanish from the very next answer. A stored URL
that 404s, 410s or no longer serves the actor's collection, or that is not on the actor's
host, is not used: the actor is refetched once within the same request.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import timedelta
from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crypto.devicelist import DEVICE_ID
from crypto.encoding import b64decode, utc_time
from federation.documents import DocumentError
from federation.e2ee import (
    MAX_CIPHERTEXT_BYTES,
    MAX_CIPHERTEXTS,
    ClaimedKey,
    DeviceCiphertext,
    EncryptedMessage,
    RemoteDevices,
    claim_request,
    encrypted_create,
    parse_devices_collection,
    parse_one_time_key,
)
from federation.inbound_schema import InvalidActivity
from server import e2ee
from server.auth import Viewer, forget_tokens, require_staff, require_user
from server.config import Config
from server.delivery import enqueue
from server.entities import account_uri, acct, iso
from server.errors import ApiError, BadRequest, Forbidden, NotFound, PayloadTooLarge, Unprocessable
from server.federation import FEDERATION, Federation, host_of
from server.ids import new_id
from server.models import Account, E2EEDevice, E2EEMessage, E2EEReportMessage, PlaintextMessage, Report
from server.remote_actors import ActorUnavailable, account_by_uri, local_account_by_uri, resolve_actor, resolve_handle
from server.transport import FetchError
from server.web import (
    CONFIG,
    READ_SESSIONS,
    SESSIONS,
    Routes,
    json_response,
    now,
    path_id,
    read_json_object,
    storable_text,
)

log = logging.getLogger(__name__)

BASE = "/api/v1/hearthside/e2ee"
SCOPE = "crypto"
MAX_KEYS_PER_UPLOAD = 100
MAX_INBOX_PAGE = 200

routes = Routes()


# ---------------------------------------------------------------------------- input helpers


def _text(data: dict[str, Any], name: str, *, max_len: int = 2048) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise Unprocessable(f"{name}: must be a non-empty string")
    if len(value) > max_len:
        raise Unprocessable(f"{name}: longer than {max_len} characters")
    return storable_text(value, name)


def _key(data: dict[str, Any], name: str, size: int) -> str:
    value = _text(data, name, max_len=128)
    try:
        b64decode(value, field=name, size=size)
    except ValueError as exc:
        raise Unprocessable(str(exc)) from None
    return value


def _device_id(value: Any, name: str = "device_id") -> str:
    if not isinstance(value, str) or not DEVICE_ID.fullmatch(value):
        raise Unprocessable(f"{name}: must be 4-64 characters of A-Z, a-z, 0-9, '_' or '-'")
    return value


def _key_uploads(data: dict[str, Any]) -> list[e2ee.KeyUpload]:
    keys: list[e2ee.KeyUpload] = []
    raw = data.get("one_time_keys", [])
    if not isinstance(raw, list):
        raise Unprocessable("one_time_keys: must be a list")
    if len(raw) > MAX_KEYS_PER_UPLOAD:
        raise Unprocessable(f"one_time_keys: at most {MAX_KEYS_PER_UPLOAD} per upload")
    items: list[tuple[Any, bool, str]] = [(item, False, f"one_time_keys[{i}]") for i, item in enumerate(raw)]
    if data.get("fallback_key") is not None:
        items.append((data["fallback_key"], True, "fallback_key"))
    for item, fallback, where in items:
        if not isinstance(item, dict):
            raise Unprocessable(f"{where}: must be an object with key_id, key and signature")
        key_id = item.get("key_id")
        if not isinstance(key_id, str) or not 1 <= len(key_id) <= 64:
            raise Unprocessable(f"{where}.key_id: must be a string of 1-64 characters")
        try:
            key, signature = _key(item, "key", 32), _key(item, "signature", 64)
        except Unprocessable as exc:
            raise Unprocessable(f"{where}.{exc}") from None
        keys.append(e2ee.KeyUpload(key_id=key_id, key=key, signature=signature, fallback=fallback))
    return keys


def _flag(data: dict[str, Any], name: str) -> bool:
    value = data.get(name, False)
    if not isinstance(value, bool):
        raise Unprocessable(f"{name}: must be true or false")
    return value


async def _viewer_account(session: AsyncSession, viewer: Viewer) -> Account:
    account = await session.get(Account, viewer.require_account())
    if account is None:
        raise NotFound("Record not found")
    return account


async def _current_device(session: AsyncSession, viewer: Viewer, *, active: bool = True) -> E2EEDevice:
    device = await e2ee.device_for_token(session, viewer.token_id)
    if device is None:
        raise Forbidden("this access token has no E2EE device; set one up first (POST /api/v1/hearthside/e2ee/devices)")
    if active and device.state != "active":
        raise Forbidden("this device is not yet in your signed device list; approve it from another device")
    return device


async def resolve_member(request: web.Request, ref: str) -> int:
    """The account id of an actor URI or a handle (``name``, ``name@domain``, ``@name@domain``);
    remote ones are fetched when unknown, with no database session held during the fetch.
    404 when there is no such person."""
    config = request.app[CONFIG]
    fed = request.app[FEDERATION]
    account: Account | None
    remote_uri: str | None = None
    remote_handle: tuple[str, str] | None = None
    # The query-only reader (inline on SQLite): the handler's writing session comes after, so a
    # request takes SQLite's single writer connection once, not twice.
    async with request.app[READ_SESSIONS]() as session:
        if ref.startswith(("https://", "http://")):
            account = await local_account_by_uri(session, config.base_url, ref)
            if account is None and not fed.is_local(ref):
                account = await account_by_uri(session, ref)
                if account is None or account.fetched_at is None:
                    remote_uri = ref
        else:
            name, _, domain = ref.lstrip("@").partition("@")
            if not name:
                raise Unprocessable("actor: give an actor URI or a handle such as name@example.org")
            if not domain or domain.lower() == config.domain.lower():
                account = await session.scalar(
                    select(Account).where(Account.username_lower == name.lower(), Account.domain == "")
                )
            else:
                account, remote_handle = None, (name, domain)
    try:
        if remote_uri is not None:
            account = await resolve_actor(fed, remote_uri)
        elif remote_handle is not None:
            account = await resolve_handle(fed, *remote_handle)
    except ActorUnavailable:
        account = None
    if account is None or account.deleted_at is not None or account.is_group:
        raise NotFound(f"no person {ref} was found")
    return account.id


async def _member(session: AsyncSession, account_id: int) -> Account:
    account = await session.get(Account, account_id)
    if account is None:
        raise NotFound("Record not found")
    return account


def _render_device(device: E2EEDevice, *, current: bool) -> dict[str, Any]:
    return {
        "device_id": device.device_id,
        "identity_key": device.identity_key,
        "fingerprint_key": device.fingerprint_key,
        "state": device.state,
        "current": current,
        "created_at": iso(device.created_at),
        "revoked_at": iso(device.revoked_at) if device.revoked_at else None,
    }


# ---------------------------------------------------------------------------- settings


@routes.get(BASE + "/settings")
async def get_settings(request: web.Request) -> web.Response:
    viewer = await require_user(request, SCOPE)
    async with request.app[SESSIONS]() as session:
        account = await _viewer_account(session, viewer)
        return json_response({"dm_policy": account.dm_policy, "dm_policies": list(e2ee.DM_POLICIES)})


@routes.patch(BASE + "/settings")
async def update_settings(request: web.Request) -> web.Response:
    viewer = await require_user(request, SCOPE)
    data = await read_json_object(request)
    policy = data.get("dm_policy")
    if policy not in e2ee.DM_POLICIES:
        raise Unprocessable(f"dm_policy: must be one of {', '.join(e2ee.DM_POLICIES)}")
    async with request.app[SESSIONS]() as session:
        account = await _viewer_account(session, viewer)
        account.dm_policy = policy
        await session.commit()
        return json_response({"dm_policy": account.dm_policy, "dm_policies": list(e2ee.DM_POLICIES)})


# ---------------------------------------------------------------------------- devices


@routes.post(BASE + "/devices")
async def register_device(request: web.Request) -> web.Response:
    """Register this token's device (pending until a signed device list names it), with its
    first one-time keys and fallback key."""
    viewer = await require_user(request, SCOPE)
    config = request.app[CONFIG]
    data = await read_json_object(request)
    device_id = _device_id(data.get("device_id"))
    identity_key = _key(data, "identity_key", 32)
    fingerprint_key = _key(data, "fingerprint_key", 32)
    uploads = _key_uploads(data)
    moment = now()
    async with request.app[SESSIONS]() as session:
        account = await _viewer_account(session, viewer)
        device = await e2ee.register_device(
            session,
            account,
            token_id=viewer.token_id,
            device_id=device_id,
            identity_key=identity_key,
            fingerprint_key=fingerprint_key,
            at=moment,
        )
        count = await e2ee.upload_keys(session, config, account, device, uploads, at=moment)
        published = None
        if data.get("device_list") is not None:
            published = await e2ee.publish_device_list(
                session, config, account, data["device_list"], at=moment, reset=_flag(data, "reset")
            )
        await session.commit()
        body = _render_device(device, current=True) | {"one_time_key_count": count}
    if published is not None and published.revoked_tokens:
        forget_tokens()
    log.info("e2ee device registered for account %s", viewer.account_id)
    return json_response(body, status=201)


@routes.get(BASE + "/devices")
async def list_devices(request: web.Request) -> web.Response:
    viewer = await require_user(request, SCOPE)
    async with request.app[SESSIONS]() as session:
        account = await _viewer_account(session, viewer)
        devices = await e2ee.devices_of(session, account.id, states=("pending", "active", "revoked"))
        identity = await e2ee.identity_of(session, account.id)
        return json_response(
            {
                "actor": account_uri(request.app[CONFIG], account),
                "acct": acct(account),
                "master_key": identity.master_key if identity else None,
                "version": identity.version if identity else 0,
                "device_list": identity.device_list if identity else None,
                "devices": [_render_device(d, current=d.token_id == viewer.token_id) for d in devices],
            }
        )


@routes.put(BASE + "/device_list")
async def publish_device_list(request: web.Request) -> web.Response:
    """Publish a new signed device list: devices it names become active, active devices it
    leaves out are revoked (token, keys and waiting messages deleted)."""
    viewer = await require_user(request, SCOPE)
    config = request.app[CONFIG]
    data = await read_json_object(request)
    if "device_list" not in data:
        raise BadRequest("missing required parameter: device_list")
    async with request.app[SESSIONS]() as session:
        account = await _viewer_account(session, viewer)
        await _current_device(session, viewer, active=False)
        published = await e2ee.publish_device_list(
            session, config, account, data["device_list"], at=now(), reset=_flag(data, "reset")
        )
        await session.commit()
    if published.revoked_tokens:
        forget_tokens()
    return json_response({"version": published.device_list.version, "device_list": published.device_list.to_json()})


@routes.delete(BASE + "/devices/{device_id}")
async def revoke_pending_device(request: web.Request) -> web.Response:
    """Revoke a device no signed list names yet (an active one is revoked by publishing a list
    without it, which needs the master key)."""
    viewer = await require_user(request, SCOPE)
    device_id = _device_id(request.match_info["device_id"])
    async with request.app[SESSIONS]() as session:
        account = await _viewer_account(session, viewer)
        device = await session.scalar(
            select(E2EEDevice).where(E2EEDevice.account_id == account.id, E2EEDevice.device_id == device_id)
        )
        if device is None or device.state == "revoked":
            raise NotFound("Record not found")
        if device.state == "active":
            raise ApiError(
                "this device is in your signed device list: publish a new list without it (PUT device_list)",
                status=409,
            )
        await e2ee.revoke_devices(session, [device], now())
        await session.commit()
    forget_tokens()
    return json_response({"device_id": device_id, "state": "revoked"})


# ---------------------------------------------------------------------------- keys


@routes.post(BASE + "/keys/upload")
async def upload_keys(request: web.Request) -> web.Response:
    viewer = await require_user(request, SCOPE)
    config = request.app[CONFIG]
    data = await read_json_object(request)
    uploads = _key_uploads(data)
    async with request.app[SESSIONS]() as session:
        account = await _viewer_account(session, viewer)
        device = await _current_device(session, viewer, active=False)
        count = await e2ee.upload_keys(session, config, account, device, uploads, at=now())
        await session.commit()
    return json_response({"one_time_key_count": count})


@routes.get(BASE + "/keys/count")
async def count_keys(request: web.Request) -> web.Response:
    viewer = await require_user(request, SCOPE)
    async with request.app[SESSIONS]() as session:
        device = await _current_device(session, viewer, active=False)
        return json_response({"one_time_key_count": await e2ee.count_keys(session, device.id)})


async def _local_device_answer(config: Config, session: AsyncSession, account: Account) -> dict[str, Any]:
    identity = await e2ee.identity_of(session, account.id)
    device_list = e2ee.signed_list(identity)
    actor = account_uri(config, account)
    return {
        "actor": actor,
        "acct": acct(account),
        "device_list": device_list.to_json() if device_list else None,
        "devices": [
            {"device_id": d.device_id, "claim": f"{actor}/devices/{d.device_id}/claim"}
            for d in (device_list.devices if device_list else ())
        ],
    }


#: An actor document without ``e2ee:devices`` fetched less than this long ago is not fetched again
#: to look for one (an actor that sets E2EE up announces it with an ``Update`` anyway).
ACTOR_RECHECK = timedelta(minutes=5)

# FetchError reasons meaning "this URL no longer serves the actor's devices collection" (moved
# or removed), not "the server is unreachable": only these send us back to the actor document.
_STALE_DEVICES_URL = frozenset({"not_found", "gone", "id_mismatch", "content_type", "not_object", "bad_json"})


async def _remote_devices(request: web.Request, account: Account) -> dict[str, Any]:
    """The member's signed device list and claim URLs, fetched from their server.

    The devices URL is the one stored with the account (when on the actor's host), else the
    one a fresh fetch of the actor document gives. The collection is always fetched fresh: the
    client verifies and pins the signed list, and a device revoked there must not be offered
    for encryption one request later.
    """
    fed = request.app[FEDERATION]
    actor = account.uri or ""
    stored = account.devices_url
    found = None
    if stored is not None and _on_actor_host(stored, actor):
        try:
            found = await _fetch_devices(fed, account, stored, stale_ok=True)
        except _StaleDevicesUrl:
            pass
    if found is None:
        fetched = account.fetched_at
        if stored is None and fetched is not None and now() - fetched < ACTOR_RECHECK:
            # Its actor document, read moments ago (often by this very request's lookup of the
            # handle), offers none: asking again would only load the other server.
            raise Unprocessable(f"{acct(account)} does not offer end-to-end encrypted messages")
        account = await _refreshed(fed, account)
        devices_url = account.devices_url
        if devices_url is None or not _on_actor_host(devices_url, actor):
            raise Unprocessable(f"{acct(account)} does not offer end-to-end encrypted messages")
        found = await _fetch_devices(fed, account, devices_url, stale_ok=False)
    return {
        "actor": actor,
        "acct": acct(account),
        "device_list": found.device_list.to_json() if found.device_list else None,
        "devices": [{"device_id": device_id, "claim": url} for device_id, url in sorted(found.claim_urls.items())],
    }


class _StaleDevicesUrl(Exception):
    """A remembered devices URL no longer serves the actor's collection."""


async def _fetch_devices(fed: Federation, account: Account, devices_url: str, *, stale_ok: bool) -> RemoteDevices:
    """GET and parse the member's devices collection; 502 when their server fails us. With
    ``stale_ok`` (the URL stored with the account), a URL that moved or no longer serves the collection
    raises ``_StaleDevicesUrl`` instead, so the caller can ask the actor document again."""
    try:
        document = await fed.transport.fetch_json(devices_url)
        return parse_devices_collection(document, actor_uri=account.uri or "", devices_url=devices_url)
    except FetchError as exc:
        if stale_ok and exc.reason in _STALE_DEVICES_URL:
            raise _StaleDevicesUrl from None
        raise ApiError(f"the devices of {acct(account)} could not be fetched ({exc.reason})", status=502) from None
    except InvalidActivity as exc:
        if stale_ok:
            raise _StaleDevicesUrl from None
        raise ApiError(f"the devices of {acct(account)} are malformed ({exc})", status=502) from None


def _on_actor_host(url: str, actor: str) -> bool:
    return bool(actor) and host_of(url) == host_of(actor)


async def _refreshed(fed: Federation, account: Account) -> Account:
    """The remote account after a fresh fetch of its actor document (stored, so its devices
    URL and keys follow the document)."""
    try:
        return await resolve_actor(fed, account.uri or "", refresh=True)
    except ActorUnavailable as exc:
        raise ApiError(f"{acct(account)} could not be fetched ({exc.reason})", status=502) from None


@routes.get(BASE + "/keys")
async def query_keys(request: web.Request) -> web.Response:
    """A member's signed device list (the client verifies it) and each device's claim URL."""
    viewer = await require_user(request, SCOPE)
    ref = request.query.get("actor", "")
    if not ref or len(ref) > 2048:
        raise BadRequest("missing required parameter: actor")
    account_id = await resolve_member(request, storable_text(ref, "actor"))
    async with request.app[SESSIONS]() as session:
        account = await _member(session, account_id)
        me = await _viewer_account(session, viewer)
        if account.local:
            await e2ee.require_may_message(session, me, account)
            return json_response(await _local_device_answer(request.app[CONFIG], session, account))
        await e2ee.require_may_message(session, me, account)
    return json_response(await _remote_devices(request, account))


@routes.post(BASE + "/keys/claim")
async def claim_keys(request: web.Request) -> web.Response:
    """One one-time key (else the fallback key) per named device of a member."""
    viewer = await require_user(request, SCOPE)
    config = request.app[CONFIG]
    fed = request.app[FEDERATION]
    data = await read_json_object(request)
    ref = _text(data, "actor")
    wanted = data.get("device_ids")
    if not isinstance(wanted, list) or not 1 <= len(wanted) <= MAX_CIPHERTEXTS:
        raise Unprocessable(f"device_ids: must be a list of 1-{MAX_CIPHERTEXTS} device ids")
    device_ids = list(dict.fromkeys(_device_id(d, "device_ids") for d in wanted))
    keys: dict[str, Any] = {}
    failures: dict[str, str] = {}
    target_id = await resolve_member(request, ref)
    async with request.app[SESSIONS]() as session:
        me = await _viewer_account(session, viewer)
        target = await _member(session, target_id)
        await e2ee.require_may_message(session, me, target)
        if target.local:
            # Counted and committed before the claims write, so a claim that finds no key counts too.
            await e2ee.CLAIMS.hit(
                session,
                account_uri(config, me),
                target.id,
                limit=config.get("e2ee", "claims_per_minute"),
                at=time.time(),
            )
            devices = {d.device_id: d for d in await e2ee.devices_of(session, target.id)}
            for device_id in device_ids:
                device = devices.get(device_id)
                claimed = await e2ee.claim_key(session, device.id) if device is not None else None
                if claimed is None:
                    failures[device_id] = "no_keys" if device is not None else "unknown_device"
                    continue
                keys[device_id] = _key_answer(claimed)
            await session.commit()
            return json_response({"keys": keys, "failures": failures})
        me_uri = account_uri(config, me)
        me_id = me.id
    answer = await _remote_devices(request, target)
    claim_urls = {d["device_id"]: d["claim"] for d in answer["devices"]}
    signer = await _member_signer(request, me_id)
    body = json.dumps(claim_request(actor_uri=me_uri)).encode()
    for device_id in device_ids:
        url = claim_urls.get(device_id)
        if url is None:
            failures[device_id] = "unknown_device"
            continue
        try:
            answer_key = parse_one_time_key(await fed.transport.post_json(url, body, signer=signer))
        except FetchError as exc:
            failures[device_id] = exc.reason
            continue
        except InvalidActivity:
            failures[device_id] = "malformed_key"
            continue
        keys[device_id] = _key_answer(answer_key)
    return json_response({"keys": keys, "failures": failures})


def _key_answer(key: e2ee.Claimed | ClaimedKey) -> dict[str, Any]:
    return {"key_id": key.key_id, "key": key.key, "signature": key.signature, "fallback": key.fallback}


async def _member_signer(request: web.Request, account_id: int) -> Any:
    """Sign requests with the member's own key: the claim is made on their behalf, so the
    remote server can apply the member's block list and message policy (research §8(b))."""
    from crypto.signing import PrivateKey
    from federation.httpsig import sign_request
    from server.actor_keys import local_keys

    config = request.app[CONFIG]
    async with request.app[SESSIONS]() as session:
        account = await session.get(Account, account_id)
        assert account is not None
        keys = await local_keys(session, config, account)
        await session.commit()
    key = PrivateKey.from_pem(keys.rsa_private_pem, trusted=True)

    def signer(method: str, url: str, headers: Any, body: bytes | None) -> dict[str, str]:
        return sign_request(method, url, headers=headers, body=body, key=key, key_id=keys.rsa_key_id, now=now())

    return signer


# ---------------------------------------------------------------------------- messages


def _ciphertexts(data: dict[str, Any]) -> list[tuple[str, str, int, str]]:
    raw = data.get("ciphertexts")
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_CIPHERTEXTS:
        raise Unprocessable(f"ciphertexts: must be a list of 1-{MAX_CIPHERTEXTS} items")
    out: list[tuple[str, str, int, str]] = []
    seen: set[tuple[str, str]] = set()
    for i, item in enumerate(raw):
        where = f"ciphertexts[{i}]"
        if not isinstance(item, dict):
            raise Unprocessable(f"{where}: must be an object with actor, device_id, type and body")
        actor = item.get("actor")
        if not isinstance(actor, str) or not actor:
            raise Unprocessable(f"{where}.actor: must be an actor URI")
        device_id = _device_id(item.get("device_id"), f"{where}.device_id")
        kind = item.get("type")
        if type(kind) is not int or kind not in (0, 1):
            raise Unprocessable(f"{where}.type: must be 0 (pre-key) or 1 (normal)")
        body = item.get("body")
        if not isinstance(body, str):
            raise Unprocessable(f"{where}.body: must be base64 text")
        try:
            decoded = b64decode(body, field=f"{where}.body", max_size=MAX_CIPHERTEXT_BYTES)
        except ValueError as exc:
            raise Unprocessable(str(exc)) from None
        if not decoded:
            raise Unprocessable(f"{where}.body: must not be empty")
        if (actor, device_id) in seen:
            raise Unprocessable(f"{where}: a second ciphertext for the same device")
        seen.add((actor, device_id))
        out.append((actor, device_id, kind, body))
    return out


@routes.post(BASE + "/messages")
async def send_message(request: web.Request) -> web.Response:
    """Send one encrypted message to one member: a ciphertext per device of theirs and per
    other device of yours. Stamped, queued, answered 202; nothing is stored if anything is wrong."""
    viewer = await require_user(request, SCOPE)
    config = request.app[CONFIG]
    data = await read_json_object(request)
    ref = _text(data, "to")
    tag_text = _key(data, "franking_tag", 32)
    items = _ciphertexts(data)
    moment = now()
    async with request.app[SESSIONS]() as session:  # committed alone: counts even if the send then fails
        limit = config.get("e2ee", "messages_per_minute")
        await e2ee.SENDS.hit(session, viewer.require_account(), limit=limit, at=moment.timestamp())
    recipient_id = await resolve_member(request, ref)
    async with request.app[SESSIONS]() as session:
        me = await _viewer_account(session, viewer)
        device = await _current_device(session, viewer)
        recipient = await _member(session, recipient_id)
        if recipient.id == me.id:
            raise Unprocessable("to: send messages to someone else (your own devices get copies automatically)")
        await e2ee.require_may_message(session, me, recipient)
        me_uri = account_uri(config, me)
        recipient_uri = account_uri(config, recipient)
        mine = {d.device_id: d for d in await e2ee.devices_of(session, me.id)}
        theirs = {d.device_id: d for d in await e2ee.devices_of(session, recipient.id)} if recipient.local else {}
        local: list[e2ee.Ciphertext] = []
        remote: list[DeviceCiphertext] = []
        for i, (actor, device_id, kind, body) in enumerate(items):
            if actor == me_uri:
                target = mine.get(device_id)
                if target is None or target.id == device.id:
                    raise Unprocessable(
                        f"ciphertexts[{i}].device_id: {device_id} is not another active device of yours"
                    )
                local.append(e2ee.Ciphertext(target, kind, body))
            elif actor == recipient_uri:
                if recipient.local:
                    target = theirs.get(device_id)
                    if target is None:
                        raise Unprocessable(f"ciphertexts[{i}].device_id: {device_id} is not an active device of {ref}")
                    local.append(e2ee.Ciphertext(target, kind, body))
                else:
                    remote.append(DeviceCiphertext(device_id, kind, b64decode(body, field="body")))
            else:
                raise Unprocessable(f"ciphertexts[{i}].actor: must be the recipient or you")
        if not any(c.device.account_id == recipient.id for c in local) and not remote:
            raise Unprocessable("ciphertexts: none is for the recipient")
        object_uri = f"{config.base_url}/e2ee/messages/{new_id()}"
        tag = b64decode(tag_text, field="franking_tag", size=32)
        stamp_value = await e2ee.make_stamp(
            session, tag=tag, sender=me_uri, recipient=recipient_uri, object_id=object_uri, at=moment
        )
        await e2ee.store_ciphertexts(
            session,
            config,
            object_uri=object_uri,
            sender_actor=me_uri,
            sender_device=device.device_id,
            recipient_actor=recipient_uri,
            ciphertexts=local,
            franking_tag=tag_text,
            sender_stamp=stamp_value,
            stamp_value=stamp_value,
            stamped_at=moment,
            at=moment,
        )
        if remote:
            if not config.get("federation", "enabled") or not recipient.inbox_url:
                raise Unprocessable("to: this member's server cannot be reached from here")
            message = EncryptedMessage(
                id=object_uri,
                actor=me_uri,
                recipient=recipient_uri,
                sender_device=device.device_id,
                published=moment,
                ciphertexts=tuple(remote),
                franking_tag=tag,
                franking_stamp=stamp_value,
                stamped_at=moment,
            )
            try:
                activity = encrypted_create(message, activity_id=object_uri + "/activity")
            except DocumentError as exc:
                raise Unprocessable(f"ciphertexts: {exc}") from None
            await enqueue(
                session, config.base_url, actor_account_id=me.id, activity=activity, inboxes=[recipient.inbox_url]
            )
        await session.commit()
    return json_response({"id": object_uri, "stamped_at": utc_time(moment), "stamp": stamp_value}, status=202)


def _render_message(row: E2EEMessage, known: bool) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "object_id": row.object_uri,
        "sender": {"actor": row.sender_actor, "device_id": row.sender_device, "known": known},
        "recipient_actor": row.recipient_actor,
        "type": row.message_type,
        "body": row.body,
        "franking_tag": row.franking_tag,
        "sender_stamp": row.sender_stamp,
        "stamp": row.stamp,
        "stamped_at": utc_time(row.stamped_at),
        "received_at": utc_time(row.created_at),
    }


@routes.get(BASE + "/messages")
async def device_inbox(request: web.Request) -> web.Response:
    """Ciphertexts waiting for this token's device, oldest first (acknowledge to delete)."""
    viewer = await require_user(request, SCOPE)
    try:
        limit = min(max(int(request.query.get("limit", "100")), 1), MAX_INBOX_PAGE)
    except ValueError:
        raise BadRequest("limit: must be an integer") from None
    async with request.app[SESSIONS]() as session:
        device = await _current_device(session, viewer, active=False)
        rows = list(
            await session.scalars(
                select(E2EEMessage)
                .where(E2EEMessage.device_pk == device.id, E2EEMessage.expires_at > now())
                .order_by(E2EEMessage.id)
                .limit(limit)
            )
        )
        config = request.app[CONFIG]
        known: dict[str, bool] = {}
        for uri in {r.sender_actor for r in rows}:
            sender = await local_account_by_uri(session, config.base_url, uri) or await account_by_uri(session, uri)
            known[uri] = await e2ee.knows(session, device.account_id, sender.id if sender else None)
        return json_response({"messages": [_render_message(r, known[r.sender_actor]) for r in rows]})


@routes.post(BASE + "/messages/ack")
async def acknowledge(request: web.Request) -> web.Response:
    """Delete received ciphertexts from this device's inbox."""
    viewer = await require_user(request, SCOPE)
    data = await read_json_object(request)
    raw = data.get("ids")
    if not isinstance(raw, list) or len(raw) > 1000:
        raise Unprocessable("ids: must be a list of at most 1000 message ids")
    try:
        ids = [int(x) for x in raw if not isinstance(x, bool | float)]
    except (TypeError, ValueError):
        raise Unprocessable("ids: must be message ids (strings of digits)") from None
    if len(ids) != len(raw) or not all(0 < i < 2**63 for i in ids):
        raise Unprocessable("ids: must be message ids (strings of digits)")
    async with request.app[SESSIONS]() as session:
        device = await _current_device(session, viewer, active=False)
        gone = await e2ee.acknowledge(session, device, ids)
        await session.commit()
    return json_response({"deleted": gone})


# ---------------------------------------------------------------------------- attachments

ATTACHMENT_TYPE = "application/octet-stream"
_CHUNK = 65536


@routes.post(BASE + "/attachments")
async def upload_attachment(request: web.Request) -> web.Response:
    """Store an attachment's ciphertext, encrypted by the member's device (crypto/attachments.py;
    the key travels only inside the encrypted message); answered with the URL to put in it."""
    from crypto.attachments import OVERHEAD

    viewer = await require_user(request, SCOPE)
    config = request.app[CONFIG]
    if request.content_type != ATTACHMENT_TYPE:
        raise ApiError(f"attachment: the body must be {ATTACHMENT_TYPE} (the encrypted bytes)", status=415)
    cap = int(config.get("e2ee", "max_attachment_bytes"))
    too_large = f"attachment: larger than this server's limit of {cap} bytes"
    if request.content_length is not None and request.content_length > cap:
        raise PayloadTooLarge(too_large)
    data = bytearray()  # read here, not with request.read(): its cap is the JSON API's
    async for chunk in request.content.iter_chunked(_CHUNK):
        data += chunk
        if len(data) > cap:
            raise PayloadTooLarge(too_large)
    if len(data) < OVERHEAD:
        raise Unprocessable(f"attachment: {len(data)} bytes cannot be an encrypted attachment (at least {OVERHEAD})")
    moment = now()
    async with request.app[SESSIONS]() as session:
        await _current_device(session, viewer)
        limit = config.get("e2ee", "attachments_per_minute")
        await e2ee.UPLOADS.hit(session, viewer.require_account(), limit=limit, at=moment.timestamp())
        row, url = await e2ee.store_attachment(session, config, viewer.require_account(), bytes(data), moment)
        await session.commit()
    log.info("e2ee attachment %s stored (%s bytes)", row.id, row.size)
    body = {"id": str(row.id), "url": url, "size": row.size, "expires_at": iso(row.expires_at)}
    return json_response(body, status=201)


@routes.delete(BASE + "/attachments/{id}")
async def delete_attachment(request: web.Request) -> web.Response:
    """Delete an attachment this member uploaded (a message deleted for everyone)."""
    from server.models import E2EEAttachment

    viewer = await require_user(request, SCOPE)
    attachment_id = path_id(request)
    async with request.app[SESSIONS]() as session:
        row = await session.get(E2EEAttachment, attachment_id)
        if row is None or row.account_id != viewer.require_account():
            raise NotFound("Record not found")
        await session.delete(row)
        await session.commit()
    return json_response({"id": str(attachment_id), "deleted": True})


def _attachment_url(raw: str) -> str:
    """``raw`` if it is an attachment URL (``crypto.attachments.upload_host``): the fetch must
    not become a way to make this server fetch anything else."""
    from crypto.attachments import upload_host

    if upload_host(raw) is None:
        raise Unprocessable("url: must be an attachment URL (https://server/e2ee/attachments/TOKEN)")
    return raw


@routes.get(BASE + "/attachments/fetch")
async def fetch_attachment(request: web.Request) -> web.Response:
    """An attachment's ciphertext for the member's device: this server's own, or fetched from
    the sender's server on the member's behalf (so that server never sees the member's
    address). The bytes are served as stored; the device checks the digest and decrypts."""
    viewer = await require_user(request, SCOPE)
    config = request.app[CONFIG]
    url = _attachment_url(request.query.get("url", ""))
    moment = now()
    async with request.app[SESSIONS]() as session:
        await _current_device(session, viewer)
        if not url.startswith(config.base_url + e2ee.ATTACHMENT_PATH):
            limit = config.get("e2ee", "attachments_per_minute")
            await e2ee.FETCHES.hit(session, viewer.require_account(), limit=limit, at=moment.timestamp())
    data = await _attachment_bytes(request, url)
    return web.Response(body=data, content_type=ATTACHMENT_TYPE, headers={"Cache-Control": "no-store"})


async def _attachment_bytes(request: web.Request, url: str) -> bytes:
    """The ciphertext an attachment URL names: from this server's store, or fetched from its
    server (domain decisions apply, at most ``[e2ee] max_attachment_bytes``)."""
    config = request.app[CONFIG]
    prefix = config.base_url + e2ee.ATTACHMENT_PATH
    if url.startswith(prefix):
        async with request.app[SESSIONS]() as session:
            row = await e2ee.attachment_by_token(session, url.removeprefix(prefix), now())
            if row is None:
                raise NotFound("attachment: not found (expired, deleted, or never stored here)")
            return bytes(row.data)
    fed = request.app[FEDERATION]
    if not fed.enabled:
        raise Unprocessable("url: attachments on other servers cannot be fetched (federation is off)")
    try:
        fetched = await fed.transport.fetch_document(
            url,
            accept=ATTACHMENT_TYPE,
            accept_types=(ATTACHMENT_TYPE,),
            max_body=int(config.get("e2ee", "max_attachment_bytes")),
            sign=False,
            gated=True,
        )
    except FetchError as exc:
        if exc.reason in ("not_found", "gone"):
            raise NotFound("attachment: not found on its server (expired or deleted)") from None
        if exc.reason.startswith("refused") or exc.reason == "bad_url":
            raise Unprocessable(f"url: that server is not reachable from here ({exc.reason})") from None
        raise ApiError(f"attachment: its server did not hand it over ({exc.reason})", status=502) from None
    return fetched.body or b""


@routes.get(BASE + "/reports/{id}/attachments/{index}")
async def open_reported_attachment(request: web.Request) -> web.Response:
    """For instance moderators: a file a reported message carried, decrypted with the key the
    reporter revealed. Shown as the moderator chose (docs/safety.md "Moderator and member
    wellbeing"): an image greyscale and blurred (a PNG preview) until they reveal each, then
    the file as a download; a file that cannot be previewed only once revealed (409 says what
    to reveal). Never the original inline: moderators choose when to look."""
    from urllib.parse import quote

    from crypto.attachments import AttachmentError, open_described
    from server.media_preview import HeldBack, PreviewError, shown_async
    from server.reports import DOWNLOADED_FILE, VIEWED_FILE, audit_revealed_views, revealed_attachment
    from server.wellbeing import attachment_display, hidden_display

    viewer = await require_staff(request, "admin:read:reports")
    config = request.app[CONFIG]
    report_id = path_id(request)
    raw_index = request.match_info["index"]
    if not raw_index.isdigit() or len(raw_index) > 4:
        raise NotFound("Record not found")
    index = int(raw_index)
    async with request.app[SESSIONS]() as session:
        described = await revealed_attachment(session, config, report_id, index)
        display = (await attachment_display(session, viewer.account_id, [report_id])).get((report_id, index))
    if described is None:
        raise NotFound("attachment: this report has no such file")
    ciphertext = await _attachment_bytes(request, described["url"])
    try:
        data = open_described(ciphertext, described)
    except AttachmentError as exc:
        raise Unprocessable(str(exc)) from None
    try:
        shown = await shown_async(data, described["media_type"], display or hidden_display())
    except HeldBack as held:
        raise ApiError(
            f"attachment: this file cannot be shown blurred; reveal it first ({', '.join(held.needed)}: "
            f"POST /api/v1/hearthside/admin/media_reveal with report_id and attachment={index})",
            status=409,
        ) from None
    except PreviewError as exc:
        raise Unprocessable(f"attachment: {exc}") from None
    async with request.app[SESSIONS]() as session:
        seen = {f"{report_id}/{index}": {"media_type": described["media_type"]}}
        action = VIEWED_FILE if shown.preview else DOWNLOADED_FILE
        await audit_revealed_views(session, viewer.account_id, action, seen)
        await session.commit()
    headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}
    if shown.preview:
        headers["Content-Disposition"] = "inline; filename=preview.png"
        headers["Hearthside-Media-Display"] = ", ".join(shown.applied)
        return web.Response(body=shown.body, content_type="image/png", headers=headers)
    headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(described['name'], safe='')}"
    return web.Response(body=shown.body, content_type=ATTACHMENT_TYPE, headers=headers)


# ---------------------------------------------------------------------------- plaintext box


@routes.get("/api/v1/hearthside/plaintext_messages")
async def plaintext_messages(request: web.Request) -> web.Response:
    """Direct messages from software without end-to-end encryption (only kept when the
    instance enables ``[e2ee] accept_plaintext_dms``), each labelled as such."""
    viewer = await require_user(request, "read:statuses")
    async with request.app[SESSIONS]() as session:
        rows = (
            await session.execute(
                select(PlaintextMessage, Account)
                .join(Account, Account.id == PlaintextMessage.sender_account_id)
                .where(PlaintextMessage.recipient_account_id == viewer.require_account())
                .order_by(PlaintextMessage.id.desc())
                .limit(100)
            )
        ).all()
        return json_response(
            {
                "label": "not end-to-end encrypted",
                "messages": [
                    {
                        "id": str(m.id),
                        "uri": m.uri,
                        "from": acct(a),
                        "content": m.content,
                        "created_at": iso(m.created_at),
                        "end_to_end_encrypted": False,
                    }
                    for m, a in rows
                ],
            }
        )


# ---------------------------------------------------------------------------- reports


MAX_REPORTED_MESSAGES = 20


@routes.post(BASE + "/reports")
async def report_messages(request: web.Request) -> web.Response:
    """Reveal messages of one conversation to this instance's moderators (docs/e2ee.md
    "Reports").

    What is revealed is messages (and reactions) the reported member sent to this member and,
    as their context, messages this member sent to them. Each must recompute its franking tag
    and carry our stamp binding it to its sender, recipient and time (made when we received
    it, or when our member sent it): moderators see only what was revealed, and know it is
    what was sent. ``forward`` also sends a ``Flag`` (from the instance actor) to the
    sender's instance with the sender's stamps on the reported member's messages, which that
    instance can verify in turn; the member's own messages are never forwarded.
    """
    viewer = await require_user(request, SCOPE)
    config = request.app[CONFIG]
    data = await read_json_object(request)
    comment = data.get("comment", "")
    if not isinstance(comment, str) or len(comment) > 1000:
        raise Unprocessable("comment: must be text of at most 1000 characters")
    storable_text(comment, "comment")
    forward = data.get("forward", False)
    if not isinstance(forward, bool):
        raise Unprocessable("forward: must be true or false")
    raw = data.get("messages")
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_REPORTED_MESSAGES:
        raise Unprocessable(f"messages: must be a list of 1-{MAX_REPORTED_MESSAGES} revealed messages")
    parsed = [e2ee.parse_revealed(item, f"messages[{i}]") for i, item in enumerate(raw)]
    sender_stamps: list[str] = []
    for i, item in enumerate(raw):
        value = item.get("sender_stamp")
        if not isinstance(value, str) or not value or len(value) > 200:
            raise Unprocessable(f"messages[{i}].sender_stamp: must be the sending server's stamp")
        sender_stamps.append(value)
    moment = now()
    async with request.app[SESSIONS]() as session:
        me = await _viewer_account(session, viewer)
        me_uri = account_uri(config, me)
        sender_uri = _reported_member(me_uri, [revealed for revealed, *_ in parsed])
        for i, (revealed, key, tag, at) in enumerate(parsed):
            if not await e2ee.verify_revealed(session, revealed, key, tag, at):
                raise Unprocessable(f"messages[{i}]: the franking tag or this server's stamp does not verify")
        sender = await local_account_by_uri(session, config.base_url, sender_uri) or await account_by_uri(
            session, sender_uri
        )
        if sender is None:
            raise Unprocessable("messages: the sender is unknown here")
        again = await _same_open_report(session, me.id, sender.id, comment, {r.object_id for r, *_ in parsed})
        if again is not None:
            # The same report sent again (its answer was lost, or the member pressed twice):
            # the moderators get one report, the member the same answer.
            log.info("e2ee report %s filed again; kept once", again.id)
            forwarded = again.forwarded_at is not None
            return json_response({"id": str(again.id), "messages": len(parsed), "forwarded": forwarded})
        report = Report(
            id=new_id(),
            reporter_account_id=me.id,
            origin_domain="",
            target_account_id=sender.id,
            status_ids=[],
            comment=comment,
            category="e2ee_message",
            state="open",
            created_at=moment,
            forward_requested=forward,
        )
        session.add(report)
        await session.flush()
        # The sending server's stamp is kept only on the reported member's messages: it is what
        # a forwarded Flag carries, and our member's own messages are never forwarded.
        theirs = [i for i, (revealed, *_) in enumerate(parsed) if revealed.message.sender == sender_uri]
        for i, (revealed, *_) in enumerate(parsed):
            stamp_kept = sender_stamps[i] if i in theirs else None
            e2ee.keep_revealed(session, config, report.id, revealed, verified=True, at=moment, sender_stamp=stamp_kept)
        forwarded = False
        if forward and not sender.local and config.get("federation", "enabled"):
            inbox = sender.shared_inbox_url or sender.inbox_url
            if inbox:
                from server.reports import queue_flag

                stamped = [{**parsed[i][0].to_json(), "stamp": sender_stamps[i]} for i in theirs]
                await queue_flag(session, config, [sender_uri], comment, [inbox], extra={"e2ee:revealed": stamped})
                forwarded = True
                report.forwarded_at, report.forwarded_to = moment, [sender.domain]
        from server.reports import notify_staff_of_report

        await notify_staff_of_report(session, report)  # like every other report (docs/moderation.md)
        await session.commit()
    log.info("e2ee report %s filed (%s messages)", report.id, len(parsed))
    return json_response({"id": str(report.id), "messages": len(parsed), "forwarded": forwarded}, status=201)


def _reported_member(me_uri: str, revealed: list[e2ee.Revealed]) -> str:
    """The member a report is about: every revealed message is between the reporter and that
    one member, and at least one was sent by them (the reporter's own are context only).
    ``Unprocessable`` naming the message otherwise."""
    others: set[str] = set()
    for i, item in enumerate(revealed):
        sender, recipient = item.message.sender, item.message.recipient
        if sender == recipient or me_uri not in (sender, recipient):
            raise Unprocessable(
                f"messages[{i}]: you can only report messages sent to you, and your own to the same member as context"
            )
        others.add(sender if recipient == me_uri else recipient)
    if len(others) != 1:
        raise Unprocessable("messages: report one conversation at a time (messages between you and one member)")
    (other,) = others
    if all(item.message.sender == me_uri for item in revealed):
        raise Unprocessable(
            "messages: reveal at least one message or reaction from the member you report; your own are context only"
        )
    return other


async def _same_open_report(
    session: AsyncSession, reporter_id: int, target_id: int, comment: str, object_ids: set[str]
) -> Report | None:
    """An open report by ``reporter_id`` about ``target_id`` with this comment revealing
    exactly these messages, or None."""
    candidates = select(Report.id).where(
        Report.reporter_account_id == reporter_id,
        Report.target_account_id == target_id,
        Report.category == "e2ee_message",
        Report.state == "open",
        Report.comment == comment,
    )
    revealed: dict[int, set[str]] = {}
    rows = await session.execute(
        select(E2EEReportMessage.report_id, E2EEReportMessage.object_uri).where(
            E2EEReportMessage.report_id.in_(candidates)
        )
    )
    for report_id, object_uri in rows:
        revealed.setdefault(report_id, set()).add(object_uri)
    for report_id, uris in revealed.items():
        if uris == object_ids:
            return await session.get(Report, report_id)
    return None


@routes.get(BASE + "/reports/{id}")
async def show_report(request: web.Request) -> web.Response:
    """For instance moderators: the messages revealed in a report, each with whether its
    franking tag and this server's stamp verified. Only what the reporter chose to reveal."""
    from server.models import Report
    from server.reports import VIEWED_MESSAGES, audit_revealed_views, expired_revealed, revealed_messages

    viewer = await require_staff(request, "admin:read:reports")
    config = request.app[CONFIG]
    report_id = path_id(request)
    async with request.app[SESSIONS]() as session:
        report = await session.get(Report, report_id)
        if report is None:
            raise NotFound("Record not found")
        # The same view as the admin report queue's hearthside_encrypted_messages.
        messages = (await revealed_messages(session, config, [report.id], viewer.account_id)).get(report.id, [])
        target = await session.get(Account, report.target_account_id)
        deleted_at = (await expired_revealed(session, [report.id])).get(report.id)
        if messages:
            seen = {str(report.id): {"messages": len(messages), "via": "e2ee_report"}}
            await audit_revealed_views(session, viewer.account_id, VIEWED_MESSAGES, seen)
            await session.commit()
    return json_response(
        {
            "id": str(report.id),
            "category": report.category,
            "origin_domain": report.origin_domain or None,
            "target": account_uri(config, target) if target is not None else None,
            "comment": report.comment,
            "created_at": iso(report.created_at),
            "messages": messages,
            "messages_deleted_at": iso(deleted_at),
        }
    )
