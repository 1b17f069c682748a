"""The federation side of E2EE: a member's devices collection and the one-time-key claim URL.

Design note
-----------
``GET /users/{name}/devices`` serves the member's signed device list (docs/e2ee.md) to anyone,
as Mastodon served its devices collection: it shows how many devices a member uses and their
public keys, never device names. ``POST /users/{name}/devices/{id}/claim`` must be
HTTP-signed by the actor on whose behalf the claim is made (``e2ee:Claim`` names that actor):
the member's message policy, blocks and domain suspensions apply to that actor exactly as to a
local sender, claims are rate-limited per (actor, member) across every web process, and each
one-time key is handed out once; the fallback key answers when none is left. No claim is
logged: a claim says "X is about to message Y" (research/e2ee.md §8(b)).
"""

from __future__ import annotations

import json
import time

from aiohttp import web
from sqlalchemy import select

from federation.e2ee import devices_collection, one_time_key_document, parse_claim_request
from federation.inbound_schema import InvalidActivity
from server import e2ee
from server.api.activitypub import PERSON, _ap, _local_account
from server.entities import account_uri
from server.errors import ApiError, BadRequest, Forbidden, NotFound, Unauthorized
from server.federation import FEDERATION
from server.models import Account, E2EEDevice
from server.signatures import is_signed, verify_request
from server.web import CONFIG, READ_SESSIONS, SESSIONS, Routes

routes = Routes()

MAX_CLAIM_BODY = 4096


@routes.get(e2ee.ATTACHMENT_PATH + "{token}")
async def attachment(request: web.Request) -> web.Response:
    """An attachment's ciphertext, for whoever holds the URL (the capability: a 256-bit token;
    the bytes open only with the key inside an encrypted message). Servers fetch it on their
    members' behalf (``GET /api/v1/hearthside/e2ee/attachments/fetch``)."""
    from server.web import now

    config = request.app[CONFIG]
    if not config.get("e2ee", "enabled"):
        raise NotFound("Record not found")
    async with request.app[READ_SESSIONS]() as session:
        row = await e2ee.attachment_by_token(session, request.match_info["token"], now())
        if row is None:
            raise NotFound("Record not found")
        data = row.data
    return web.Response(body=data, content_type="application/octet-stream", headers={"Cache-Control": "no-store"})


@routes.get(PERSON + "/devices")
async def devices(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    if not config.get("e2ee", "enabled"):
        raise NotFound("Record not found")
    async with request.app[READ_SESSIONS]() as session:
        account = await _local_account(session, request.match_info["username"], "Person")
        if account.deleted_at is not None or account.suspended_at is not None:
            raise NotFound("Record not found")
        actor = account_uri(config, account)
        device_list = e2ee.signed_list(await e2ee.identity_of(session, account.id))
    return _ap(devices_collection(actor_uri=actor, devices_url=f"{actor}/devices", device_list=device_list))


@routes.post(PERSON + "/devices/{device_id}/claim")
async def claim(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    fed = request.app[FEDERATION]
    if not config.get("e2ee", "enabled") or not fed.enabled:
        raise NotFound("Record not found")
    if not is_signed(request):
        raise Unauthorized("request is not signed (HTTP Signatures required)")
    if request.content_length is not None and request.content_length > MAX_CLAIM_BODY:
        raise ApiError("claim request too large", status=413)
    body = await request.read()
    if len(body) > MAX_CLAIM_BODY:
        raise ApiError("claim request too large", status=413)
    signer = await verify_request(fed, request, body)
    try:
        claimant = parse_claim_request(json.loads(body))
    except (ValueError, RecursionError):
        raise BadRequest("claim: body is not JSON") from None
    except InvalidActivity as exc:
        raise BadRequest(f"claim: {exc}") from None
    if claimant != signer.actor_uri:
        raise Unauthorized("claim: the signer is not the actor the claim names")
    async with request.app[SESSIONS]() as session:
        target = await _local_account(session, request.match_info["username"], "Person")
        sender = await session.get(Account, signer.account_id)
        if sender is None:
            raise Unauthorized("claim: unknown signer")
        if await e2ee.refusal(session, sender, target) is not None:
            raise Forbidden("this member does not accept messages from you")
        # Counted and committed before the claim writes, so a claim that then fails counts too.
        await e2ee.CLAIMS.hit(
            session, signer.actor_uri, target.id, limit=config.get("e2ee", "claims_per_minute"), at=time.time()
        )
        device = await session.scalar(
            select(E2EEDevice).where(
                E2EEDevice.account_id == target.id,
                E2EEDevice.device_id == request.match_info["device_id"],
                E2EEDevice.state == "active",
            )
        )
        if device is None:
            raise NotFound("Record not found")
        claimed = await e2ee.claim_key(session, device.id)
        if claimed is None:
            raise NotFound("this device has no keys left")
        await session.commit()
    return _ap(
        one_time_key_document(
            key_id=claimed.key_id, key=claimed.key, signature=claimed.signature, fallback=claimed.fallback
        )
    )
