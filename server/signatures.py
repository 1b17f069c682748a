"""Authenticate signed requests: the server half of ``federation.httpsig``.

``read_signature`` (pure) parses the header, checks the covered components, the time window
and the body digest; here we find the key by its id — from the key cache (``actor_keys``),
else by fetching its actor — and verify. When verification fails with a cached key we fetch
the actor once more and retry (the key may have rotated; research/federation.md §2.6, §3.6).
The result is the authenticated signer, or an error: 401 for a bad or missing signature,
403 when the signer's domain is suspended.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from aiohttp import web
from sqlalchemy import select

from crypto.errors import KeyFormatError
from crypto.signing import PublicKey
from federation.httpsig import PendingSignature, RequestToVerify, SignatureError, VerifiedSignature, read_signature
from server.domains import suspended_domain
from server.entities import account_uri
from server.errors import ApiError, Forbidden, Unauthorized
from server.federation import FEDERATION, Federation, host_of
from server.models import Account, ActorKey
from server.remote_actors import ActorUnavailable, resolve_actor, strip_fragment
from server.web import now

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Signer:
    """Who signed a request: the key, its owning actor and that actor's account row."""

    key_id: str
    actor_uri: str
    account_id: int
    signature: VerifiedSignature


def request_to_verify(fed: Federation, request: web.Request, body: bytes | None) -> RequestToVerify:
    # The target URI as the sender addressed it: our public origin plus the raw path and query.
    return RequestToVerify(
        method=request.method,
        url=fed.config.base_url + request.raw_path,
        headers=request.headers,
        body=body,
    )


KEY_CACHE_SECONDS = 300.0  # how long a verified key is trusted without asking the database


def forget_keys_of(fed: Federation, account_id: int) -> None:
    """Drop cached keys of an account (it was deleted, or its keys were replaced)."""
    for key_id in [k for k, v in fed.keys.items() if v[2] == account_id]:
        fed.keys.pop(key_id, None)


async def _cached_key(fed: Federation, key_id: str) -> tuple[PublicKey, str, int] | None:
    """The key from memory, else from ``actor_keys`` (then remembered for a while)."""
    hit = fed.keys.get(key_id)
    if hit is not None and hit[3] > time.monotonic():
        return hit[0], hit[1], hit[2]
    async with fed.sessions() as session:
        row = await session.scalar(select(ActorKey).where(ActorKey.key_id == key_id, ActorKey.revoked_at.is_(None)))
        if row is None:
            return None
        account = await session.get(Account, row.account_id)
        if account is None or account.deleted_at is not None:
            return None
        owner = account_uri(fed.config, account)
        try:
            key = PublicKey.from_pem(row.public_pem)
        except KeyFormatError:
            return None
    if len(fed.keys) > 20_000:
        fed.keys.clear()
    fed.keys[key_id] = (key, owner, account.id, time.monotonic() + KEY_CACHE_SECONDS)
    return key, owner, account.id


async def _fetched_key(fed: Federation, key_id: str) -> tuple[PublicKey, str, int]:
    fed.keys.pop(key_id, None)
    try:
        await resolve_actor(fed, strip_fragment(key_id), refresh=True)
    except ActorUnavailable as exc:
        raise Unauthorized(f"signature key {key_id} could not be fetched ({exc.reason})") from None
    found = await _cached_key(fed, key_id)
    if found is None:
        raise Unauthorized(f"signature key {key_id} is not a key of the actor it names")
    return found


REFETCH_COOLDOWN = 60.0  # seconds between refetches of one key: forged floods cost one fetch
_last_refetch: dict[str, float] = {}


def _may_refetch(key_id: str) -> bool:
    """At most one refetch per key per cooldown (Mastodon guards this path the same way)."""
    moment = time.monotonic()
    last = _last_refetch.get(key_id)
    if last is not None and moment - last < REFETCH_COOLDOWN:
        return False
    if len(_last_refetch) > 10_000:
        _last_refetch.clear()
    _last_refetch[key_id] = moment
    return True


async def authenticate(fed: Federation, pending: PendingSignature, *, domain_checked_later: bool = False) -> Signer:
    """Find the key of ``pending`` and verify it, refetching the actor once on failure.

    A suspended signer domain is refused (403) before anything is fetched from it.
    ``domain_checked_later``: the caller checks the domain itself afterwards (the inbox does it
    for a whole batch of rows in the transaction that stores them); then the check here runs
    only when a fetch is about to happen.
    """
    domain = host_of(pending.key_id)
    checked = False

    async def refuse_suspended() -> None:
        nonlocal checked
        if not checked:
            checked = True
            if await suspended_domain(fed, domain):
                raise Forbidden(f"requests from {domain} are refused by this instance")

    cached = await _cached_key(fed, pending.key_id)
    if cached is None or not domain_checked_later:
        await refuse_suspended()
    if cached is not None:
        key, owner, account_id = cached
        try:
            return Signer(pending.key_id, owner, account_id, pending.verify(key))
        except SignatureError as exc:
            if fed.is_local(pending.key_id) or not _may_refetch(pending.key_id):
                raise Unauthorized(str(exc)) from None
            log.info("signature failed with cached key; refetching actor")
    await refuse_suspended()
    key, owner, account_id = await _fetched_key(fed, pending.key_id)
    try:
        return Signer(pending.key_id, owner, account_id, pending.verify(key))
    except SignatureError as exc:
        raise Unauthorized(str(exc)) from None


def read_pending(fed: Federation, request: web.Request, body: bytes | None) -> PendingSignature:
    try:
        return read_signature(request_to_verify(fed, request, body), now=now())
    except SignatureError as exc:
        raise ApiError(str(exc), status=exc.status) from None


async def verify_request(fed: Federation, request: web.Request, body: bytes | None) -> Signer:
    return await authenticate(fed, read_pending(fed, request, body))


def is_signed(request: web.Request) -> bool:
    return "Signature" in request.headers or "Signature-Input" in request.headers


async def fetch_signer(request: web.Request) -> str | None:
    """The authenticated actor behind a signed GET, or None when the request is unsigned.

    A present but invalid signature is an error (401), never silently "unsigned".
    """
    if not is_signed(request):
        return None
    fed = request.app[FEDERATION]
    signer = await verify_request(fed, request, None)
    return signer.actor_uri
