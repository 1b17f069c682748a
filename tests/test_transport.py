"""server.transport against real aiohttp servers on 127.0.0.1 / 127.0.0.2.

DNS is the one piece of the outside world that cannot run here, so name-based tests use a
fixed table resolver (the transport still wraps it in its address policy, exactly as it wraps
the system resolver).
"""

from __future__ import annotations

import asyncio
import gzip
import ipaddress
import json
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.test_utils import TestServer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from server.transport import (
    JRD_ACCEPT,
    JRD_JSON_TYPES,
    AddressPolicy,
    FetchError,
    PostResult,
    Transport,
    TransportLimits,
    address_allowed,
)

AP = "application/activity+json"
BIG = 64 * 1024 * 1024  # what the streaming servers offer; the cap is 1 MiB
FAST = TransportLimits(connect_timeout=1.0, total_timeout=2.0)


# ---------------------------------------------------------------------------- fixtures


@dataclass
class Hit:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Origin:
    server: TestServer
    hits: list[Hit] = field(default_factory=list)
    streamed: dict[str, int] = field(default_factory=dict)
    handler_done: dict[str, asyncio.Event] = field(default_factory=dict)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"{self.server.scheme}://{host}:{self.server.port}{path}"

    def paths(self) -> list[str]:
        return [hit.path for hit in self.hits]


def _doc(request: web.Request, **extra: Any) -> dict[str, Any]:
    return {"id": str(request.url), "type": "Note", **extra}


def _json(data: Any, content_type: str = AP, status: int = 200) -> web.Response:
    return web.Response(body=json.dumps(data).encode(), status=status, headers={"Content-Type": content_type})


def _nested(depth: int) -> str:
    """An object whose nesting depth is exactly ``depth`` (the top object counts as 1)."""
    return '{"id": "%s", "x": ' + "[" * (depth - 1) + "]" * (depth - 1) + "}"


def build_app(origin_ref: list[Origin]) -> web.Application:
    async def record(request: web.Request) -> None:
        origin_ref[0].hits.append(Hit(request.method, request.path, dict(request.headers), await request.read()))

    async def handle(request: web.Request) -> web.StreamResponse:
        await record(request)
        origin = origin_ref[0]
        name = request.match_info["name"]
        if name == "actor":
            return _json(_doc(request, type="Person"))
        if name == "ld":
            return _json(_doc(request), 'application/ld+json; profile="https://www.w3.org/ns/activitystreams"')
        if name == "ld-bare":
            return _json(_doc(request), "application/ld+json")
        if name == "charset":
            return _json(_doc(request), "application/activity+json; charset=utf-8")
        if name == "html":
            return _json(_doc(request), "text/html")
        if name == "no-type":
            return web.Response(body=json.dumps(_doc(request)).encode())
        if name == "jrd":
            return _json({"subject": "acct:a@example", "links": []}, "application/jrd+json")
        if name == "plain-json":
            return _json({"subject": "acct:a@example", "links": []}, "application/json; charset=utf-8")
        if name == "wrong-id":
            return _json({"id": origin.url("/o/other"), "type": "Note"})
        if name == "no-id":
            return _json({"type": "Note"})
        if name == "array":
            return _json([_doc(request)])
        if name == "nan":
            body = json.dumps(_doc(request))[:-1] + ', "x": NaN}'
            return web.Response(body=body.encode(), headers={"Content-Type": AP})
        if name == "not-json":
            return web.Response(body=b"{not json", headers={"Content-Type": AP})
        if name == "latin1":
            return web.Response(body=b'{"id": "\xe9"}', headers={"Content-Type": AP})
        if name.startswith("depth-"):
            body = _nested(int(name.removeprefix("depth-"))) % str(request.url)
            return web.Response(body=body.encode(), headers={"Content-Type": AP})
        if name == "very-deep":
            body = '{"x": ' + "[" * 200_000 + "]" * 200_000 + "}"
            return web.Response(body=body.encode(), headers={"Content-Type": AP})
        if name == "gzip":
            return web.Response(
                body=gzip.compress(json.dumps(_doc(request)).encode()),
                headers={"Content-Type": AP, "Content-Encoding": "gzip"},
            )
        if name == "gzip-bomb":
            payload = b'{"x": "' + b"0" * (32 * 1024 * 1024) + b'"}'
            return web.Response(
                body=gzip.compress(payload, compresslevel=9), headers={"Content-Type": AP, "Content-Encoding": "gzip"}
            )
        if name == "brotli":
            return web.Response(body=b"\x00", headers={"Content-Type": AP, "Content-Encoding": "br"})
        if name in ("big-chunked", "big-declared"):
            return await stream_big(request, name, declared=name == "big-declared")
        if name == "slow-headers":
            await asyncio.wait_for(origin.release.wait(), 10)
            return _json(_doc(request))
        if name == "slow-body":
            response = web.StreamResponse(headers={"Content-Type": AP})
            await response.prepare(request)
            try:
                await response.write(b'{"id": ')
                while not origin.release.is_set():
                    await asyncio.sleep(0.05)
                    await response.write(b" ")
            except ConnectionError:
                pass
            return response
        if name in ("404", "410", "500", "451"):
            return _json({"error": name}, status=int(name))
        raise web.HTTPNotFound()

    async def stream_big(request: web.Request, name: str, *, declared: bool) -> web.StreamResponse:
        origin = origin_ref[0]
        done = origin.handler_done.setdefault(name, asyncio.Event())
        response = web.StreamResponse(headers={"Content-Type": AP})
        if declared:
            response.content_length = BIG
        written = 0
        try:
            await response.prepare(request)
            await response.write(b'{"x": "')
            chunk = b"0" * 65_536
            while written < BIG:
                await response.write(chunk)
                written += len(chunk)
        except ConnectionError:
            pass
        finally:
            origin.streamed[name] = written
            done.set()
        return response

    async def redirect(request: web.Request) -> web.StreamResponse:
        await record(request)
        n = int(request.match_info["n"])
        if n == 0:
            return _json(_doc(request))
        raise web.HTTPFound(f"/r/{n - 1}")

    async def moved(request: web.Request) -> web.StreamResponse:
        await record(request)
        target = request.query["to"]
        status = int(request.query.get("status", "302"))
        if target == "none":
            return web.Response(status=status)
        return web.Response(status=status, headers={"Location": target})

    async def claims(request: web.Request) -> web.StreamResponse:
        # Serves a document claiming to be the URL that redirected here.
        await record(request)
        return _json({"id": origin_ref[0].url("/moved?to=/claims"), "type": "Note"})

    async def inbox(request: web.Request) -> web.StreamResponse:
        await record(request)
        kind = request.match_info["kind"]
        if kind == "ok":
            return web.Response(status=202)
        if kind == "busy":
            return web.Response(status=429, headers={"Retry-After": "120"})
        if kind == "gone":
            return web.Response(status=410)
        if kind == "moved":
            return web.Response(status=308, headers={"Location": "/inbox/ok"})
        if kind == "slow":
            await asyncio.wait_for(origin_ref[0].release.wait(), 10)
            return web.Response(status=202)
        if kind == "chatty":
            return web.Response(status=200, body=b"x" * (2 * 1024 * 1024))
        raise web.HTTPNotFound()

    app = web.Application()
    app.router.add_get("/o/{name}", handle)
    app.router.add_get("/r/{n}", redirect)
    app.router.add_get("/moved", moved)
    app.router.add_get("/claims", claims)
    app.router.add_post("/inbox/{kind}", inbox)
    return app


async def start_origin(aiohttp_server: Any, host: str = "127.0.0.1", **kwargs: Any) -> Origin:
    ref: list[Origin] = []
    server = await aiohttp_server(build_app(ref), host=host, **kwargs)
    ref.append(Origin(server))
    return ref[0]


@pytest.fixture
async def origin(aiohttp_server: Any) -> AsyncIterator[Origin]:
    made = await start_origin(aiohttp_server)
    yield made
    made.release.set()


@pytest.fixture
async def other_origin(aiohttp_server: Any) -> AsyncIterator[Origin]:
    """A second server, on 127.0.0.2."""
    made = await start_origin(aiohttp_server, host="127.0.0.2")
    yield made
    made.release.set()


@dataclass
class Tls:
    server: ssl.SSLContext
    client: ssl.SSLContext


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    """A self-signed certificate for 127.0.0.1, and a client context that trusts only it."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory = tmp_path_factory.mktemp("tls")
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cafile=str(cert_file))
    return Tls(server, client)


@pytest.fixture
async def tls_origin(aiohttp_server: Any, tls: Tls) -> AsyncIterator[Origin]:
    made = await start_origin(aiohttp_server, ssl=tls.server)
    yield made
    made.release.set()


class RecordingSigner:
    """Stands in for federation.httpsig.sign_request: records each call, returns marker headers."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, str], bytes | None]] = []

    def __call__(self, method: str, url: str, headers: Mapping[str, str], body: bytes | None) -> Mapping[str, str]:
        self.calls.append((method, url, dict(headers), body))
        return {"Signature": f"sig-{len(self.calls)}", "X-Signed-Url": url}


class TableResolver(AbstractResolver):
    """A fixed DNS table: name -> addresses."""

    def __init__(self, table: Mapping[str, list[str]]) -> None:
        self.table = table
        self.asked: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.asked.append(host)
        if host not in self.table:
            raise OSError(f"no such name {host}")
        return [
            {
                "hostname": host,
                "host": address,
                "port": port,
                "family": socket.AF_INET6 if ":" in address else socket.AF_INET,
                "proto": 0,
                "flags": 0,
            }
            for address in self.table[host]
        ]

    async def close(self) -> None:
        return None


MakeTransport = Callable[..., Awaitable[Transport]]


@pytest.fixture
async def make_transport() -> AsyncIterator[MakeTransport]:
    made: list[Transport] = []

    async def make(**kwargs: Any) -> Transport:
        kwargs.setdefault("user_agent", "Hearthside-test/1.0")
        kwargs.setdefault("allow_private_addresses", True)
        kwargs.setdefault("limits", FAST)
        transport = Transport(**kwargs)
        await transport.start()
        made.append(transport)
        return transport

    yield make
    for transport in made:
        await transport.close()


@pytest.fixture
async def transport(make_transport: MakeTransport) -> Transport:
    return await make_transport()


async def fetch_error(call: Awaitable[Any]) -> FetchError:
    with pytest.raises(FetchError) as info:
        await call
    return info.value


# ---------------------------------------------------------------------------- fetch_json: success


async def test_fetch_json__returns_document_with_ap_headers(origin: Origin, transport: Transport) -> None:
    url = origin.url("/o/actor")
    document = await transport.fetch_json(url, sign=False)
    assert document == {"id": url, "type": "Person"}
    (hit,) = origin.hits
    assert hit.headers["Accept"].startswith("application/activity+json, application/ld+json")
    assert hit.headers["User-Agent"] == "Hearthside-test/1.0"
    assert "Signature" not in hit.headers


@pytest.mark.parametrize("name", ["ld", "ld-bare", "charset", "gzip"])
async def test_fetch_json__accepts_activitypub_media_types_and_gzip(
    origin: Origin, transport: Transport, name: str
) -> None:
    url = origin.url(f"/o/{name}")
    assert (await transport.fetch_json(url, sign=False))["id"] == url


async def test_fetch_json__fragment_is_not_sent(origin: Origin, transport: Transport) -> None:
    document = await transport.fetch_json(origin.url("/o/actor#main-key"), sign=False)
    assert document["id"] == origin.url("/o/actor")


async def test_fetch_json__webfinger_style_without_id(origin: Origin, transport: Transport) -> None:
    document = await transport.fetch_json(
        origin.url("/o/jrd"), sign=False, accept=JRD_ACCEPT, accept_types=JRD_JSON_TYPES, check_id=False
    )
    assert document["subject"] == "acct:a@example"
    assert origin.hits[0].headers["Accept"] == JRD_ACCEPT


@pytest.mark.parametrize("name", ["jrd", "plain-json"])
async def test_fetch_json__accepted_types_default_to_the_accept_header(
    origin: Origin, transport: Transport, name: str
) -> None:
    document = await transport.fetch_json(
        origin.url(f"/o/{name}"), sign=False, check_id=False, accept="application/jrd+json"
    )
    assert document["subject"] == "acct:a@example"
    assert origin.hits[0].headers["Accept"] == "application/jrd+json"


async def test_fetch_json__explicit_accept_types_win(origin: Origin, transport: Transport) -> None:
    error = await fetch_error(
        transport.fetch_json(
            origin.url("/o/plain-json"),
            sign=False,
            check_id=False,
            accept=JRD_ACCEPT,
            accept_types={"application/jrd+json"},
        )
    )
    assert error.reason == "content_type"


# ---------------------------------------------------------------------------- fetch_json: refusals


@pytest.mark.parametrize("name", ["html", "no-type", "jrd", "plain-json"])
async def test_fetch_json__rejects_wrong_content_type(origin: Origin, transport: Transport, name: str) -> None:
    error = await fetch_error(transport.fetch_json(origin.url(f"/o/{name}"), sign=False, check_id=False))
    assert error.reason == "content_type"


async def test_fetch_json__rejects_id_other_than_url(origin: Origin, transport: Transport) -> None:
    error = await fetch_error(transport.fetch_json(origin.url("/o/wrong-id"), sign=False))
    assert error.reason == "id_mismatch"
    error = await fetch_error(transport.fetch_json(origin.url("/o/no-id"), sign=False))
    assert error.reason == "id_mismatch"
    # the same documents pass when the caller opts out of the id rule
    assert (await transport.fetch_json(origin.url("/o/wrong-id"), sign=False, check_id=False))["type"] == "Note"


async def test_fetch_json__rejects_non_object_json(origin: Origin, transport: Transport) -> None:
    error = await fetch_error(transport.fetch_json(origin.url("/o/array"), sign=False))
    assert error.reason == "not_object"


@pytest.mark.parametrize("name", ["nan", "not-json", "latin1"])
async def test_fetch_json__rejects_malformed_json(origin: Origin, transport: Transport, name: str) -> None:
    error = await fetch_error(transport.fetch_json(origin.url(f"/o/{name}"), sign=False))
    assert error.reason == "bad_json"


async def test_fetch_json__depth_limit_is_exact(origin: Origin, transport: Transport) -> None:
    limit = FAST.max_json_depth
    url = origin.url(f"/o/depth-{limit}")
    assert (await transport.fetch_json(url, sign=False))["id"] == url
    error = await fetch_error(transport.fetch_json(origin.url(f"/o/depth-{limit + 1}"), sign=False))
    assert error.reason == "too_deep"


async def test_fetch_json__rejects_pathologically_deep_json(origin: Origin, transport: Transport) -> None:
    error = await fetch_error(transport.fetch_json(origin.url("/o/very-deep"), sign=False))
    assert error.reason == "too_deep"


@pytest.mark.parametrize(
    ("name", "reason"), [("404", "not_found"), ("410", "gone"), ("500", "http_500"), ("451", "http_451")]
)
async def test_fetch_json__status_reasons(origin: Origin, transport: Transport, name: str, reason: str) -> None:
    error = await fetch_error(transport.fetch_json(origin.url(f"/o/{name}"), sign=False))
    assert (error.reason, error.status) == (reason, int(name))


@pytest.mark.parametrize("name", ["big-chunked", "big-declared"])
async def test_fetch_json__stops_reading_oversized_body(origin: Origin, transport: Transport, name: str) -> None:
    started = time.monotonic()
    error = await fetch_error(transport.fetch_json(origin.url(f"/o/{name}"), sign=False))
    assert error.reason == "too_large"
    assert time.monotonic() - started < FAST.total_timeout
    done = origin.handler_done[name]
    await asyncio.wait_for(done.wait(), 5)
    # The server could not push the whole body: the client hung up instead of draining it.
    assert origin.streamed[name] < BIG


async def test_fetch_json__body_cap_counts_decompressed_bytes(origin: Origin, transport: Transport) -> None:
    error = await fetch_error(transport.fetch_json(origin.url("/o/gzip-bomb"), sign=False))
    assert error.reason == "too_large"


async def test_fetch_json__rejects_unsupported_content_encoding(origin: Origin, transport: Transport) -> None:
    error = await fetch_error(transport.fetch_json(origin.url("/o/brotli"), sign=False))
    assert error.reason == "content_encoding"


async def test_fetch_json__slow_server_times_out_within_bounds(origin: Origin, make_transport: MakeTransport) -> None:
    transport = await make_transport(limits=TransportLimits(connect_timeout=0.3, total_timeout=0.4))
    for name in ("slow-headers", "slow-body"):
        started = time.monotonic()
        error = await fetch_error(transport.fetch_json(origin.url(f"/o/{name}"), sign=False))
        elapsed = time.monotonic() - started
        assert error.reason == "timeout", name
        assert 0.3 <= elapsed < 1.5, (name, elapsed)


async def test_fetch_json__connection_refused(make_transport: MakeTransport) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    transport = await make_transport()
    error = await fetch_error(transport.fetch_json(f"http://127.0.0.1:{port}/o/actor", sign=False))
    assert error.reason == "connect"


# ---------------------------------------------------------------------------- redirects


async def test_fetch_json__follows_redirects_up_to_limit(origin: Origin, transport: Transport) -> None:
    document = await transport.fetch_json(origin.url(f"/r/{FAST.max_redirects}"), sign=False)
    assert document["id"] == origin.url("/r/0")
    assert origin.paths() == [f"/r/{n}" for n in range(FAST.max_redirects, -1, -1)]


async def test_fetch_json__refuses_redirects_beyond_limit(origin: Origin, transport: Transport) -> None:
    error = await fetch_error(transport.fetch_json(origin.url(f"/r/{FAST.max_redirects + 1}"), sign=False))
    assert error.reason == "too_many_redirects"
    assert len(origin.hits) == FAST.max_redirects + 1  # the last Location is never requested


async def test_fetch_json__redirect_target_id_is_the_final_url(origin: Origin, transport: Transport) -> None:
    # /moved -> /o/actor: accepted, and the document names its real URL (callers key on it).
    document = await transport.fetch_json(origin.url("/moved?to=/o/actor&status=301"), sign=False)
    assert document["id"] == origin.url("/o/actor")
    # /moved -> /claims whose document claims to be /moved: refused (research §8.2 item 8).
    error = await fetch_error(transport.fetch_json(origin.url("/moved?to=/claims"), sign=False))
    assert error.reason == "id_mismatch"


@pytest.mark.parametrize(
    ("location", "reason"),
    [
        ("none", "bad_redirect"),
        ("file:///etc/passwd", "bad_url"),
        ("ftp://127.0.0.1/x", "bad_url"),
        ("http://user:pw@127.0.0.1/o/actor", "bad_url"),
    ],
)
async def test_fetch_json__refuses_bad_redirect_targets(
    origin: Origin, transport: Transport, location: str, reason: str
) -> None:
    error = await fetch_error(transport.fetch_json(origin.url(f"/moved?to={location}"), sign=False))
    assert error.reason == reason


async def test_fetch_json__rechecks_address_of_each_hop(
    origin: Origin, other_origin: Origin, make_transport: MakeTransport
) -> None:
    transport = await make_transport(
        allow_private_addresses=False, allowed_networks=[ipaddress.ip_network("127.0.0.1/32")]
    )
    assert (await transport.fetch_json(origin.url("/o/actor"), sign=False))["type"] == "Person"
    target = other_origin.url("/o/actor", host="127.0.0.2")
    error = await fetch_error(transport.fetch_json(origin.url(f"/moved?to={target}"), sign=False))
    assert error.reason == "refused_address"
    assert other_origin.hits == []


async def test_fetch_json__https_with_trusted_certificate(
    tls_origin: Origin, make_transport: MakeTransport, tls: Tls
) -> None:
    transport = await make_transport(ssl_context=tls.client)
    url = tls_origin.url("/o/actor")
    assert url.startswith("https://")
    assert (await transport.fetch_json(url, sign=False))["id"] == url


async def test_fetch_json__untrusted_certificate_is_tls_error(tls_origin: Origin, transport: Transport) -> None:
    error = await fetch_error(transport.fetch_json(tls_origin.url("/o/actor"), sign=False))
    assert error.reason == "tls"
    assert tls_origin.hits == []


async def test_fetch_json__refuses_redirect_from_https_to_http(
    tls_origin: Origin, origin: Origin, make_transport: MakeTransport, tls: Tls
) -> None:
    transport = await make_transport(ssl_context=tls.client)
    target = origin.url("/o/actor")
    error = await fetch_error(transport.fetch_json(tls_origin.url(f"/moved?to={target}"), sign=False))
    assert error.reason == "bad_redirect"
    assert origin.hits == []


# ---------------------------------------------------------------------------- signing


async def test_fetch_json__signs_every_hop_and_sends_the_signature(
    origin: Origin, make_transport: MakeTransport
) -> None:
    signer = RecordingSigner()
    transport = await make_transport(signer=signer)
    await transport.fetch_json(origin.url("/r/2"))
    urls = [origin.url(f"/r/{n}") for n in (2, 1, 0)]
    assert [(method, url) for method, url, _, _ in signer.calls] == [("GET", url) for url in urls]
    assert all(headers["Accept"].startswith(AP) and body is None for _, _, headers, body in signer.calls)
    assert [(hit.headers["Signature"], hit.headers["X-Signed-Url"]) for hit in origin.hits] == [
        (f"sig-{i}", url) for i, url in enumerate(urls, start=1)
    ]


async def test_fetch_json__unsigned_fetch_does_not_call_signer(origin: Origin, make_transport: MakeTransport) -> None:
    signer = RecordingSigner()
    transport = await make_transport(signer=signer)
    await transport.fetch_json(origin.url("/o/actor"), sign=False)
    assert signer.calls == []
    assert "Signature" not in origin.hits[0].headers


async def test_fetch_json__call_signer_overrides_transport_signer(
    origin: Origin, make_transport: MakeTransport
) -> None:
    default, member = RecordingSigner(), RecordingSigner()
    transport = await make_transport(signer=default)
    await transport.fetch_json(origin.url("/o/actor"), signer=member)
    assert (len(default.calls), len(member.calls)) == (0, 1)
    assert origin.hits[0].headers["Signature"] == "sig-1"


async def test_fetch_json__sign_without_signer_is_a_programming_error(origin: Origin, transport: Transport) -> None:
    with pytest.raises(ValueError, match="signer"):
        await transport.fetch_json(origin.url("/o/actor"))
    assert origin.hits == []


# ---------------------------------------------------------------------------- SSRF


@pytest.mark.parametrize(
    "url",
    [
        "http://[::1]/",
        "http://169.254.169.254/latest/meta-data/",
        "http://0.0.0.0/",
        "http://10.0.0.1/",
        "http://192.168.1.1/",
        "http://172.16.0.1/",
        "http://100.64.0.1/",
        "http://224.0.0.1/",
        "http://255.255.255.255/",
        "http://[fe80::1]/",
        "http://[fc00::1]/",
        "http://[fd12:3456::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:7f00:1]/",
        "http://[fe80::1%25eth0]/",
        "http://[::ffff:169.254.169.254]/",
        "http://[64:ff9b::a00:1]/",
        "http://[2002:7f00:1::]/",
        "http://[::]/",
    ],
)
async def test_fetch_json__refuses_private_literal_addresses(make_transport: MakeTransport, url: str) -> None:
    transport = await make_transport(allow_private_addresses=False)
    error = await fetch_error(transport.fetch_json(url, sign=False))
    assert error.reason == "refused_address"


async def test_fetch_json__refuses_loopback_server(origin: Origin, make_transport: MakeTransport) -> None:
    transport = await make_transport(allow_private_addresses=False)
    error = await fetch_error(transport.fetch_json(origin.url("/o/actor"), sign=False))
    assert error.reason == "refused_address"
    assert origin.hits == []


async def test_fetch_json__refuses_names_resolving_to_loopback(origin: Origin, make_transport: MakeTransport) -> None:
    transport = await make_transport(allow_private_addresses=False)
    for host in ("localhost", "0x7f.0.0.1"):
        error = await fetch_error(transport.fetch_json(origin.url("/o/actor", host=host), sign=False))
        assert error.reason == "refused_address", host
    assert origin.hits == []


async def test_fetch_json__checks_resolved_addresses_at_connect_time(
    origin: Origin, other_origin: Origin, make_transport: MakeTransport
) -> None:
    resolver = TableResolver(
        {
            "good.test": ["127.0.0.1"],
            "evil.test": ["127.0.0.2"],
            "mixed.test": ["127.0.0.1", "127.0.0.2"],
        }
    )
    transport = await make_transport(
        allow_private_addresses=False, allowed_networks=[ipaddress.ip_network("127.0.0.1/32")], resolver=resolver
    )
    # The name is resolved by the transport's resolver and the connection goes to that address.
    good = origin.url("/o/actor", host="good.test")
    assert (await transport.fetch_json(good, sign=False))["id"] == good
    for host in ("evil.test", "mixed.test"):
        error = await fetch_error(transport.fetch_json(f"http://{host}:{other_origin.server.port}/o/actor", sign=False))
        assert error.reason == "refused_address", host
    assert other_origin.hits == []
    assert {"good.test", "evil.test", "mixed.test"} <= set(resolver.asked)


async def test_fetch_json__unknown_name_is_dns_error(make_transport: MakeTransport) -> None:
    transport = await make_transport(resolver=TableResolver({}))
    error = await fetch_error(transport.fetch_json("http://nowhere.test/", sign=False))
    assert error.reason == "dns"


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://127.0.0.1/x",
        "gopher://127.0.0.1/",
        "http://user@127.0.0.1/",
        "http://user:secret@127.0.0.1/",
        "http://@127.0.0.1/",
        "http://2130706433/",
        "http://127.1/",
        "http://127.0.0.1:0/",
        "http:///nohost",
        "not a url",
        "/relative/path",
    ],
)
async def test_fetch_json__refuses_bad_urls_even_when_private_allowed(transport: Transport, url: str) -> None:
    error = await fetch_error(transport.fetch_json(url, sign=False))
    assert error.reason == "bad_url"


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("93.184.216.34", True),
        ("2606:4700::1111", True),
        ("::ffff:93.184.216.34", True),
        ("64:ff9b::5db8:d822", True),  # NAT64 of 93.184.216.34 (IPv6-only hosts with DNS64)
        ("127.0.0.1", False),
        ("100.127.255.254", False),
        ("198.18.0.1", False),
        ("192.0.2.1", False),
        ("240.0.0.1", False),
        ("ff02::1", False),
        ("fec0::1", False),
        ("2001:db8::1", False),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", False),  # Teredo
        ("::127.0.0.1", False),
    ],
)
def test_address_allowed__table(address: str, allowed: bool) -> None:
    assert address_allowed(ipaddress.ip_address(address)) is allowed


def test_address_policy__exceptions_and_allow_all() -> None:
    loopback = ipaddress.ip_address("127.0.0.1")
    assert not AddressPolicy().permits(loopback)
    assert AddressPolicy(allowed_networks=(ipaddress.ip_network("127.0.0.0/8"),)).permits(loopback)
    assert not AddressPolicy(allowed_networks=(ipaddress.ip_network("127.0.0.0/8"),)).permits(
        ipaddress.ip_address("10.0.0.1")
    )
    assert AddressPolicy(allow_private_addresses=True).permits(loopback)


# ---------------------------------------------------------------------------- post_activity


async def test_post_activity__signed_post_returns_status(origin: Origin, make_transport: MakeTransport) -> None:
    signer = RecordingSigner()
    transport = await make_transport(signer=signer)
    body = b'{"type": "Create"}'
    url = origin.url("/inbox/ok")
    assert await transport.post_activity(url, body) == PostResult(status=202)
    ((method, signed_url, headers, signed_body),) = signer.calls
    assert (method, signed_url, signed_body) == ("POST", url, body)
    assert headers["Content-Type"] == AP
    (hit,) = origin.hits
    assert (hit.method, hit.body) == ("POST", body)
    assert hit.headers["Content-Type"] == AP
    assert (hit.headers["Signature"], hit.headers["X-Signed-Url"]) == ("sig-1", url)


async def test_post_activity__returns_retry_after_and_error_statuses(
    origin: Origin, make_transport: MakeTransport
) -> None:
    transport = await make_transport(signer=RecordingSigner())
    assert await transport.post_activity(origin.url("/inbox/busy"), b"{}") == PostResult(status=429, retry_after="120")
    assert await transport.post_activity(origin.url("/inbox/gone"), b"{}") == PostResult(status=410)
    assert await transport.post_activity(origin.url("/inbox/chatty"), b"{}") == PostResult(status=200)


async def test_post_activity__does_not_follow_redirects(origin: Origin, make_transport: MakeTransport) -> None:
    transport = await make_transport(signer=RecordingSigner())
    assert await transport.post_activity(origin.url("/inbox/moved"), b"{}") == PostResult(status=308)
    assert origin.paths() == ["/inbox/moved"]


async def test_post_activity__network_failures_are_results(origin: Origin, make_transport: MakeTransport) -> None:
    transport = await make_transport(
        signer=RecordingSigner(), limits=TransportLimits(connect_timeout=0.3, total_timeout=0.4)
    )
    started = time.monotonic()
    assert await transport.post_activity(origin.url("/inbox/slow"), b"{}") == PostResult(None, error="timeout")
    assert time.monotonic() - started < 1.5
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert await transport.post_activity(f"http://127.0.0.1:{port}/inbox", b"{}") == PostResult(None, error="connect")


async def test_post_activity__refusals_never_reach_the_network(origin: Origin, make_transport: MakeTransport) -> None:
    signer = RecordingSigner()
    strict = await make_transport(signer=signer, allow_private_addresses=False)
    assert await strict.post_activity(origin.url("/inbox/ok"), b"{}") == PostResult(None, error="refused_address")
    assert await strict.post_activity(origin.url("/inbox/ok", host="localhost"), b"{}") == PostResult(
        None, error="refused_address"
    )
    assert await strict.post_activity("ftp://example.com/inbox", b"{}") == PostResult(None, error="bad_url")
    lenient = await make_transport(signer=signer)
    oversized = b"x" * (FAST.max_body + 1)
    assert await lenient.post_activity(origin.url("/inbox/ok"), oversized) == PostResult(None, error="too_large")
    assert origin.hits == []


async def test_post_activity__call_signer_overrides_transport_signer(
    origin: Origin, make_transport: MakeTransport
) -> None:
    default, actor = RecordingSigner(), RecordingSigner()
    transport = await make_transport(signer=default)
    assert await transport.post_activity(origin.url("/inbox/ok"), b"{}", signer=actor) == PostResult(202)
    assert (len(default.calls), len(actor.calls)) == (0, 1)
    # and a transport without a signer of its own works with a per-call one
    bare = await make_transport()
    assert await bare.post_activity(origin.url("/inbox/ok"), b"{}", signer=actor) == PostResult(202)
    assert [hit.headers["Signature"] for hit in origin.hits] == ["sig-1", "sig-2"]


async def test_post_activity__needs_a_signer(origin: Origin, transport: Transport) -> None:
    with pytest.raises(ValueError, match="signer"):
        await transport.post_activity(origin.url("/inbox/ok"), b"{}")
    assert origin.hits == []


# ---------------------------------------------------------------------------- lifecycle


async def test_transport__must_be_started() -> None:
    transport = Transport(user_agent="x", allow_private_addresses=True)
    with pytest.raises(RuntimeError, match="start"):
        await transport.fetch_json("http://127.0.0.1/", sign=False)
    async with transport:
        with pytest.raises(RuntimeError, match="already"):
            await transport.start()
    with pytest.raises(RuntimeError, match="start"):
        await transport.post_activity("http://127.0.0.1/", b"{}")
