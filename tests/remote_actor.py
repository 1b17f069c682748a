"""A simulated remote ActivityPub server for inbox tests: actors with real keys, on a real socket.

``RemoteServer`` is a small aiohttp app on its own loopback address (127.0.0.5, 127.0.0.6, ...)
so that its origin differs from the Hearthside instance under test, as a real peer's would
(research/interop-peers.md). It serves actor documents (``Person`` or ``Group``, with an RSA
``publicKey`` and a FEP-521a Ed25519 ``assertionMethod``), any object a test puts in
``objects``, and accepts POSTs to inboxes. Every request it receives is recorded, so tests can
assert how many times Hearthside fetched an actor (the key refetch-once rule) or that it fetched
nothing at all.

``KeyRing`` holds the keys a test module needs, generated once per module (RSA generation is the
slow part). ``sign``/``sign_custom`` build the signed headers of a delivery: the former with
``federation.httpsig`` as a well-behaved peer does, the latter by hand, for the forged variants
(missing components, odd parameters) that the library refuses to produce.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

from aiohttp import web

from crypto.keys import generate_ed25519, generate_rsa
from crypto.signing import PrivateKey, sha256
from federation.httpsig import RequestToVerify, sign_request, sign_request_rfc9421, signature_base
from server.devdb import free_port

AS_CONTEXT = "https://www.w3.org/ns/activitystreams"
AS_PUBLIC = "https://www.w3.org/ns/activitystreams#Public"
ACTIVITY_JSON = "application/activity+json"


@dataclass(frozen=True)
class KeyRing:
    """RSA and Ed25519 private keys for simulated actors; ``rsa[i]``/``ed25519[i]``."""

    rsa: tuple[PrivateKey, ...]
    ed25519: tuple[PrivateKey, ...]

    @classmethod
    def generate(cls, rsa: int = 4, ed25519: int = 3) -> KeyRing:
        return cls(
            rsa=tuple(PrivateKey.from_pem(generate_rsa().private_pem) for _ in range(rsa)),
            ed25519=tuple(PrivateKey.from_pem(generate_ed25519().private_pem) for _ in range(ed25519)),
        )


@dataclass
class RemoteActor:
    """An actor on a :class:`RemoteServer`. ``rsa`` is the key its document publishes now
    (assign another to rotate it); ``ed25519`` its FEP-521a assertion key."""

    server: RemoteServer
    username: str
    rsa: PrivateKey
    ed25519: PrivateKey
    kind: str = "Person"

    @property
    def uri(self) -> str:
        folder = "groups" if self.kind == "Group" else "users"
        return f"{self.server.base_url}/{folder}/{self.username}"

    @property
    def path(self) -> str:
        return self.uri.removeprefix(self.server.base_url)

    @property
    def key_id(self) -> str:
        return f"{self.uri}#main-key"

    @property
    def assertion_key_id(self) -> str:
        return f"{self.uri}#ed25519-key"

    def document(self) -> dict[str, Any]:
        return {
            "@context": [AS_CONTEXT, "https://w3id.org/security/v1", "https://w3id.org/security/multikey/v1"],
            "id": self.uri,
            "type": self.kind,
            "preferredUsername": self.username,
            "name": self.username.title(),
            "inbox": f"{self.uri}/inbox",
            "outbox": f"{self.uri}/outbox",
            "followers": f"{self.uri}/followers",
            "following": f"{self.uri}/following",
            "endpoints": {"sharedInbox": f"{self.server.base_url}/inbox"},
            "publicKey": {"id": self.key_id, "owner": self.uri, "publicKeyPem": self.rsa.public_key().to_pem()},
            "assertionMethod": [
                {
                    "id": self.assertion_key_id,
                    "type": "Multikey",
                    "controller": self.uri,
                    "publicKeyMultibase": self.ed25519.public_key().to_multibase(),
                }
            ],
        }

    def sign(
        self,
        url: str,
        body: bytes,
        *,
        rfc9421: bool = False,
        key: PrivateKey | None = None,
        key_id: str | None = None,
        now: datetime | None = None,
        method: str = "POST",
    ) -> dict[str, str]:
        """Headers of a correctly signed delivery of ``body`` to ``url`` (by default with the
        actor's published key, at the current time)."""
        signer = sign_request_rfc9421 if rfc9421 else sign_request
        return signer(
            method,
            url,
            headers={"Content-Type": ACTIVITY_JSON},
            body=body,
            key=key or self.rsa,
            key_id=key_id or self.key_id,
            now=now or datetime.now(UTC),
        )


@dataclass
class Seen:
    method: str
    path: str


@dataclass
class RemoteServer:
    """A fake ActivityPub server on ``host``; see the module docstring."""

    host: str
    port: int = field(default_factory=free_port)
    actors: dict[str, RemoteActor] = field(default_factory=dict)
    objects: dict[str, dict[str, Any]] = field(default_factory=dict)  # path -> document
    requests: list[Seen] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)  # bodies POSTed to inboxes
    _runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def actor(self, username: str, rsa: PrivateKey, ed25519: PrivateKey, *, kind: str = "Person") -> RemoteActor:
        actor = RemoteActor(self, username, rsa, ed25519, kind)
        self.actors[actor.path] = actor
        return actor

    def gets(self, path: str) -> int:
        """How many GETs of ``path`` this server has answered (or refused)."""
        return sum(1 for seen in self.requests if seen.method == "GET" and seen.path == path)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(Seen(request.method, request.path))
        if request.method == "POST" and request.path.endswith("/inbox"):
            self.received.append(json.loads(await request.read()))
            return web.Response(status=202)
        if request.method != "GET":
            return web.Response(status=405)
        actor = self.actors.get(request.path)
        document = actor.document() if actor is not None else self.objects.get(request.path)
        if document is None:
            return web.json_response({"error": "Record not found"}, status=404)
        return web.Response(body=json.dumps(document).encode(), content_type=ACTIVITY_JSON)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


def http_date(moment: datetime) -> str:
    return format_datetime(moment.astimezone(UTC), usegmt=True)


def digest_header(body: bytes) -> str:
    return "SHA-256=" + base64.b64encode(sha256(body)).decode()


def content_digest_header(body: bytes) -> str:
    return "sha-256=:" + base64.b64encode(sha256(body)).decode() + ":"


def sign_custom(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes | None,
    *,
    key: PrivateKey,
    signature_params: str,
    rfc9421: bool = False,
) -> dict[str, str]:
    """Sign exactly what ``headers`` and ``signature_params`` describe, with no policy at all.

    ``signature_params`` is the draft-cavage parameter list without ``signature=`` (e.g.
    ``keyId="...",algorithm="rsa-sha256",headers="(request-target) host"``) or, with
    ``rfc9421``, the ``sig1`` inner list (e.g. ``("@method");created=...;keyid="..."``). The
    base is rebuilt by ``federation.httpsig.signature_base``, the one function that applies no
    rule, so this produces validly signed requests that break a rule on purpose.
    """
    out = dict(headers)
    if rfc9421:
        out["Signature-Input"] = f"sig1={signature_params}"
        out["Signature"] = "sig1=:AAAA:"
    else:
        out["Signature"] = f'{signature_params},signature="AAAA"'
    base = signature_base(RequestToVerify(method=method, url=url, headers=out, body=body))
    value = base64.b64encode(key.sign(base)).decode()
    if rfc9421:
        out["Signature"] = f"sig1=:{value}:"
    else:
        out["Signature"] = f'{signature_params},signature="{value}"'
    return out
