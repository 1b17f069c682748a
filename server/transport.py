"""The outbound HTTP client every federation request goes through: SSRF-safe, capped, signed.

How it works. One :class:`aiohttp.ClientSession` per :class:`Transport` (connection pooling,
at most ``limit_per_host`` connections to one host). Its connector resolves names through
:class:`SafeResolver`, which checks every address a name resolves to *at connect time*, so the
address we vet is the address we connect to and DNS rebinding between a check and the connect
cannot happen. IP-literal hosts never reach a resolver, so :meth:`Transport._check_url` vets
them before the request. Each URL, including every redirect target, must be ``http`` or
``https``, without userinfo, with a valid port (DESIGN "Outbound fetches").

``fetch_json`` GETs an ActivityPub document (or, with other ``accept_types``, a WebFinger or
NodeInfo document): signed through the injected :data:`Signer` when ``sign=True`` (each hop is
signed for its own URL), redirects followed by hand at most ``max_redirects`` times, never
from https down to http, the response ``Content-Type`` checked (research/federation.md §8.2
item 7), the body streamed and cut off at ``max_body`` bytes (decompressed gzip counted, so a
compression bomb stops at the cap too), JSON parsed with a nesting limit, required to be an
object, and its ``id`` required to equal the final URL (research §8.2 item 8). Deleted (410)
and missing (404) documents raise :class:`FetchError` with reasons ``gone`` and ``not_found``.

``post_activity`` POSTs one signed activity to one inbox (research §8.3 items 11, 16, 17): it
never follows redirects and never raises for an HTTP status or a network failure; it returns a
:class:`PostResult` that ``federation.delivery.classify`` turns into an outcome.

What it refuses (fail closed): private, loopback, link-local, CGNAT, multicast, reserved and
unspecified addresses, IPv4-mapped, 6to4 and NAT64 forms of them, names that resolve to any
such address, unless ``allow_private_addresses`` (tests, private deployments); legacy numeric
IPv4 spellings (``2130706433``); non-http(s) schemes; userinfo; bodies over the cap; JSON
nested deeper than ``max_json_depth``; ``NaN``/``Infinity``; content encodings other than gzip.

Logs carry reason codes and hosts only, never URLs' paths, headers or bodies.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import socket
import ssl
import zlib
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, Self
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

__all__ = [
    "ACTIVITY_JSON_TYPES",
    "AP_ACCEPT",
    "JRD_ACCEPT",
    "JRD_JSON_TYPES",
    "AddressPolicy",
    "FetchError",
    "PostResult",
    "SafeResolver",
    "Signer",
    "Transport",
    "TransportLimits",
    "address_allowed",
]

logger = logging.getLogger(__name__)

#: ``signer(method, url, headers, body) -> headers to add`` (Date, Digest, Signature, maybe Host).
#: It must sign the URL exactly as given; if it covers ``host`` it should return the ``Host``
#: header it signed (we send what it returns), or derive it as aiohttp does (host, plus
#: ``:port`` when not the scheme default).
Signer = Callable[[str, str, Mapping[str, str], bytes | None], Mapping[str, str]]

#: Accept header of ActivityPub GETs (research/federation.md §8.2 item 6, AP §3.2).
AP_ACCEPT = 'application/activity+json, application/ld+json; profile="https://www.w3.org/ns/activitystreams"'
#: Accept header for WebFinger / NodeInfo style documents.
JRD_ACCEPT = "application/jrd+json, application/json"

#: Media types accepted for ActivityPub documents (``ld+json`` with or without a profile).
ACTIVITY_JSON_TYPES: frozenset[str] = frozenset({"application/activity+json", "application/ld+json"})
#: Media types accepted for WebFinger (RFC 7033 JRD) and NodeInfo documents.
JRD_JSON_TYPES: frozenset[str] = frozenset({"application/jrd+json", "application/json"})

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_CHUNK = 65_536
_POST_RESPONSE_CAP = 65_536  # how much of an inbox's answer we read before dropping the connection


@dataclass(frozen=True)
class TransportLimits:
    connect_timeout: float = 5.0  # seconds for the TCP (and TLS) connect
    total_timeout: float = 15.0  # seconds for a whole request, redirects and body included
    max_body: int = 1_048_576  # bytes, after decompression (Mastodon and Lemmy: 1 MB, research §2.7)
    max_redirects: int = 3
    max_json_depth: int = 32
    limit_per_host: int = 8  # pooled connections to one host


class FetchError(Exception):
    """A fetch failed. ``reason`` is a stable code for callers and logs; ``status`` the HTTP status if any.

    Reasons: ``bad_url``, ``refused_address``, ``dns``, ``connect``, ``tls``, ``timeout``,
    ``disconnected``, ``protocol``, ``bad_redirect``, ``too_many_redirects``, ``not_found``
    (404), ``gone`` (410, callers treat the object as deleted), ``http_<status>``,
    ``content_type``, ``content_encoding``, ``too_large``, ``bad_json``, ``too_deep``,
    ``not_object``, ``id_mismatch``.
    """

    def __init__(self, reason: str, message: str, *, status: int | None = None) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message
        self.status = status


@dataclass(frozen=True)
class Fetched:
    """A fetched document: ``body`` is None when the server answered 304 Not Modified."""

    url: str
    body: bytes | None
    content_type: str
    etag: str | None
    last_modified: str | None


@dataclass(frozen=True)
class PostResult:
    """What an inbox answered: ``status`` and ``Retry-After``, or ``error`` when nothing usable came back.

    ``error`` codes are those of :class:`FetchError` (``timeout``, ``connect``, ``dns``, ``tls``,
    ``refused_address``, ``bad_url``, ``too_large``, ``disconnected``, ``protocol``).
    """

    status: int | None
    retry_after: str | None = None
    error: str | None = None


# ---------------------------------------------------------------------------- addresses

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def address_allowed(address: IPAddress) -> bool:
    """Whether an outbound request may connect to ``address``: globally routable unicast only.

    Refuses private (10/8, 172.16/12, 192.168/16, fc00::/7), loopback, link-local
    (169.254/16, fe80::/10), CGNAT (100.64/10), multicast, reserved, unspecified, documentation
    and site-local ranges. IPv6 forms that embed an IPv4 address (IPv4-mapped ``::ffff:a.b.c.d``,
    6to4 ``2002::/16``, NAT64 ``64:ff9b::/96``) are judged by that IPv4 address.
    """
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address_allowed(address.ipv4_mapped)
        if address in _NAT64:
            return address_allowed(ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF))
        if address.sixtofour is not None and not address_allowed(address.sixtofour):
            return False
        if address.is_site_local or address.teredo is not None:
            return False
    return address.is_global and not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


@dataclass(frozen=True)
class AddressPolicy:
    """Which addresses outbound requests may connect to.

    Public addresses (:func:`address_allowed`) always; every address when
    ``allow_private_addresses`` (tests, private deployments); otherwise also the addresses in
    ``allowed_networks`` (e.g. a partner instance on a private network).
    """

    allow_private_addresses: bool = False
    allowed_networks: tuple[IPNetwork, ...] = ()

    def permits(self, address: IPAddress) -> bool:
        return (
            self.allow_private_addresses
            or address_allowed(address)
            or any(address in network for network in self.allowed_networks)
        )


class _RefusedAddress(OSError):
    """A name resolved to an address the policy refuses."""


class SafeResolver(AbstractResolver):
    """Wraps a resolver and refuses names that resolve to any address the policy refuses.

    Used as the connector's resolver, so the check runs on the very addresses the connection is
    made to. A name with one bad address among good ones is refused outright (fail closed).
    """

    def __init__(self, inner: AbstractResolver, policy: AddressPolicy) -> None:
        self._inner = inner
        self._policy = policy

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        if not results:
            raise OSError(f"no addresses for {host}")
        for result in results:
            try:
                address = ipaddress.ip_address(result["host"])
            except ValueError:
                raise _RefusedAddress(f"{host} resolved to an unparsable address") from None
            if not self._policy.permits(address):
                raise _RefusedAddress(f"{host} resolves to a refused address")
        return results

    async def close(self) -> None:
        await self._inner.close()


# ---------------------------------------------------------------------------- transport


class Transport:
    """The aiohttp client for outbound federation requests. Open with :meth:`start` (or ``async with``)."""

    def __init__(
        self,
        *,
        user_agent: str,
        allow_private_addresses: bool,
        limits: TransportLimits | None = None,
        signer: Signer | None = None,
        allowed_networks: Collection[IPNetwork] = (),
        resolver: AbstractResolver | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        """Set up; nothing is opened before :meth:`start`.

        ``allowed_networks`` are exceptions to the address policy (e.g. a partner instance on a
        private network) when ``allow_private_addresses`` is false. ``resolver`` is the name
        resolver to wrap (default :class:`aiohttp.ThreadedResolver`). ``ssl_context`` replaces the
        default verifying context (a private CA); certificates are always verified.
        """
        self._user_agent = user_agent
        self._policy = AddressPolicy(allow_private_addresses, tuple(allowed_networks))
        self._limits = limits or TransportLimits()
        self._signer = signer
        self._inner_resolver = resolver
        self._ssl_context = ssl_context
        self._session: aiohttp.ClientSession | None = None
        self._resolver: SafeResolver | None = None
        #: Called with the host (``host[:port]``) of every GET hop and JSON POST before it is
        #: sent; raises :class:`FetchError` (``refused_domain``) for a domain this instance
        #: does not federate with (suspended, or not allowed in allowlist mode). Set by
        #: ``server.federation.Federation``; None: no domain rule.
        self.domain_gate: Callable[[str], Awaitable[None]] | None = None

    @property
    def limits(self) -> TransportLimits:
        return self._limits

    async def start(self) -> None:
        if self._session is not None:
            raise RuntimeError("Transport.start: already started")
        limits = self._limits
        self._resolver = SafeResolver(self._inner_resolver or aiohttp.ThreadedResolver(), self._policy)
        connector = aiohttp.TCPConnector(
            limit=100,
            limit_per_host=limits.limit_per_host,
            resolver=self._resolver,
            ttl_dns_cache=60,
            ssl=self._ssl_context if self._ssl_context is not None else True,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=limits.total_timeout, sock_connect=limits.connect_timeout),
            headers={"User-Agent": self._user_agent},
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,  # we decompress ourselves, under the body cap
            trust_env=False,  # no proxies from the environment: the address checks must hold
        )

    async def close(self) -> None:
        session, resolver = self._session, self._resolver
        self._session = self._resolver = None
        if session is not None:
            await session.close()
        if resolver is not None:
            await resolver.close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # ------------------------------------------------------------------------ GET

    async def fetch_json(
        self,
        url: str,
        *,
        sign: bool = True,
        accept: str = AP_ACCEPT,
        accept_types: Collection[str] | None = None,
        check_id: bool = True,
        signer: Signer | None = None,
    ) -> dict[str, Any]:
        """GET a JSON object, following at most ``max_redirects`` redirects; raise :class:`FetchError`.

        ``accept`` is the Accept header; the response's media type must be in ``accept_types``,
        by default the types ``accept`` names (``application/jrd+json`` also admits
        ``application/json``, which many WebFinger servers send). A fragment in ``url`` is not
        sent (look it up inside the document). ``check_id=False`` for documents without an
        ``id`` naming their URL (WebFinger, NodeInfo, GoToSocial-style key documents).
        ``signer`` overrides the transport's signer for this call (e.g. a member's key).
        """
        signer = signer or self._signer
        if sign and signer is None:
            raise ValueError("fetch_json: sign=True needs a signer (the Transport's or the call's)")
        if accept_types is None:
            accept_types = _media_types(accept)
        final, fetched = await self._get(
            url, accept=accept, accept_types=accept_types, signer=signer if sign else None, gated=True
        )
        assert fetched.body is not None  # no conditional headers were sent
        try:
            document = self._parse_json(fetched.body)
            if check_id:
                self._check_id(document, final)
        except FetchError as exc:
            raise self._refused(exc, final) from None
        return document

    async def fetch_document(
        self,
        url: str,
        *,
        accept: str,
        accept_types: Collection[str],
        etag: str | None = None,
        last_modified: str | None = None,
        max_body: int | None = None,
        sign: bool = True,
        gated: bool = False,
    ) -> Fetched:
        """GET any document as bytes (a decision feed, a CSV block list), conditionally when
        ``etag``/``last_modified`` are given (``Fetched.body`` is None on 304), with the same
        address checks, redirects, signing, decompression and body cap (``max_body``, default
        the transport's) as :meth:`fetch_json`. Not gated by domain decisions unless ``gated``
        (the operator chose a feed's URL; a member's message named an attachment's). Raises
        :class:`FetchError`."""
        conditional = {}
        if etag:
            conditional["If-None-Match"] = etag
        if last_modified:
            conditional["If-Modified-Since"] = last_modified
        _final, fetched = await self._get(
            url,
            accept=accept,
            accept_types=accept_types,
            signer=self._signer if sign else None,
            gated=gated,
            conditional=conditional,
            max_body=max_body,
        )
        if fetched.body is None:  # 304: what we had is still current
            return Fetched(fetched.url, None, "", etag, last_modified)
        return fetched

    async def _get(
        self,
        url: str,
        *,
        accept: str,
        accept_types: Collection[str],
        signer: Signer | None,
        gated: bool,
        conditional: Mapping[str, str] | None = None,
        max_body: int | None = None,
    ) -> tuple[URL, Fetched]:
        """The GET both fetches share: address checks, the domain gate (``gated``), at most
        ``max_redirects`` redirects each signed anew, the total timeout, the media-type check
        and the body cap. With ``conditional`` headers a 304 answers ``body=None``."""
        session = self._require_session()
        current = self._check_url(url)
        try:
            async with asyncio.timeout(self._limits.total_timeout):
                for _hop in range(self._limits.max_redirects + 1):
                    if gated and self.domain_gate is not None:
                        await self.domain_gate(_host(current))
                    headers = {"Accept": accept, **(conditional or {})}
                    if signer is not None:
                        headers.update(signer("GET", str(current), dict(headers), None))
                    async with session.get(current, headers=headers, allow_redirects=False) as resp:
                        if resp.status in _REDIRECTS:
                            current = self._redirect_target(current, resp.headers.get("Location"))
                            continue
                        if resp.status == 304 and conditional:
                            return current, Fetched(str(current), None, "", None, None)
                        body = await self._read_document(resp, accept_types, max_body)
                        return current, Fetched(
                            str(current),
                            body,
                            resp.headers.get("Content-Type", ""),
                            resp.headers.get("ETag"),
                            resp.headers.get("Last-Modified"),
                        )
                raise FetchError("too_many_redirects", f"more than {self._limits.max_redirects} redirects")
        except TimeoutError:
            raise self._refused(
                FetchError("timeout", f"no complete answer within {self._limits.total_timeout} s"), current
            ) from None
        except FetchError as exc:
            raise self._refused(exc, current) from None
        except (aiohttp.ClientError, OSError) as exc:
            code = _error_code(exc)
            raise self._refused(FetchError(code, f"request failed ({type(exc).__name__})"), current) from exc

    def _redirect_target(self, current: URL, location: str | None) -> URL:
        if not location:
            raise FetchError("bad_redirect", "redirect without a Location header")
        try:
            joined = current.join(URL(location))
        except (ValueError, TypeError) as exc:
            raise FetchError("bad_redirect", "unparsable Location header") from exc
        target = self._check_url(str(joined))
        if current.scheme == "https" and target.scheme != "https":
            raise FetchError("bad_redirect", "redirect from https to http")
        return target

    async def _read_document(
        self, resp: aiohttp.ClientResponse, accept_types: Collection[str], cap: int | None = None
    ) -> bytes:
        status = resp.status
        if status == 404:
            raise FetchError("not_found", "404 Not Found", status=status)
        if status == 410:
            raise FetchError("gone", "410 Gone", status=status)
        if not 200 <= status < 300:
            raise FetchError(f"http_{status}", f"unexpected status {status}", status=status)
        media_type = resp.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
        if media_type not in accept_types:
            raise FetchError("content_type", f"Content-Type {media_type or '(none)'!r} is not accepted", status=status)
        return await self._read_capped(resp, cap)

    async def _read_capped(self, resp: aiohttp.ClientResponse, cap: int | None = None) -> bytes:
        cap = cap or self._limits.max_body
        encoding = resp.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding in ("gzip", "x-gzip"):
            decoder: Any = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        elif encoding in ("", "identity"):
            decoder = None
        else:
            raise FetchError("content_encoding", f"Content-Encoding {encoding!r} is not supported", status=resp.status)
        if resp.content_length is not None and resp.content_length > cap:
            resp.close()
            raise FetchError("too_large", f"Content-Length over {cap} bytes", status=resp.status)
        received = 0
        body = bytearray()
        async for chunk in resp.content.iter_chunked(_CHUNK):
            received += len(chunk)
            if decoder is not None:
                body += decoder.decompress(chunk, cap + 1 - len(body))
                overflow = len(body) > cap or bool(decoder.unconsumed_tail)
            else:
                body += chunk
                overflow = len(body) > cap
            if received > cap or overflow:
                resp.close()  # drop the connection instead of draining the rest
                raise FetchError("too_large", f"body over {cap} bytes", status=resp.status)
        if decoder is not None:
            body += decoder.flush(cap + 1 - len(body))
            if len(body) > cap:
                raise FetchError("too_large", f"body over {cap} bytes", status=resp.status)
            if not decoder.eof:
                raise FetchError("content_encoding", "truncated gzip body", status=resp.status)
        return bytes(body)

    def _parse_json(self, body: bytes) -> dict[str, Any]:
        try:
            text = body.decode("utf-8")
            document = json.loads(text, parse_constant=_reject_constant)
        except RecursionError:
            raise FetchError("too_deep", f"JSON nested deeper than {self._limits.max_json_depth}") from None
        except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            raise FetchError("bad_json", f"body is not UTF-8 JSON ({type(exc).__name__})") from None
        if _depth_exceeds(document, self._limits.max_json_depth):
            raise FetchError("too_deep", f"JSON nested deeper than {self._limits.max_json_depth}")
        if not isinstance(document, dict):
            raise FetchError("not_object", f"JSON document is a {type(document).__name__}, not an object")
        return document

    @staticmethod
    def _check_id(document: Mapping[str, Any], final: URL) -> None:
        value = document.get("id")
        if not isinstance(value, str):
            raise FetchError("id_mismatch", "document has no string id")
        try:
            same = _same_url(URL(value), final)
        except (ValueError, TypeError):
            same = False
        if not same:
            raise FetchError("id_mismatch", "document id is not the URL it was fetched from")

    # ------------------------------------------------------------------------ POST

    async def post_activity(self, inbox_url: str, body: bytes, *, signer: Signer | None = None) -> PostResult:
        """POST a signed activity (``application/activity+json``) to an inbox; never raises for answers.

        ``signer`` (the key of the activity's actor, research §8.3 item 14) overrides the
        transport's signer. Redirects are not followed (a 3xx is returned as is). The answer's
        body is read up to a small cap and discarded.
        """
        session = self._require_session()
        signer = signer or self._signer
        if signer is None:
            raise ValueError("post_activity: needs a signer (the Transport's or the call's)")
        try:
            url = self._check_url(inbox_url)
        except FetchError as exc:
            self._refused(exc, None)
            return PostResult(status=None, error=exc.reason)
        if len(body) > self._limits.max_body:
            return PostResult(status=None, error="too_large")
        headers = {"Content-Type": "application/activity+json"}
        headers.update(signer("POST", str(url), dict(headers), body))
        status: int | None = None
        retry_after: str | None = None
        try:
            async with asyncio.timeout(self._limits.total_timeout):
                async with session.post(url, data=body, headers=headers, allow_redirects=False) as resp:
                    status, retry_after = resp.status, resp.headers.get("Retry-After")
                    await _discard(resp)
        except TimeoutError:
            if status is None:
                logger.debug("delivery to %s: timeout", url.host)
                return PostResult(status=None, error="timeout")
        except (aiohttp.ClientError, OSError) as exc:
            if status is None:
                code = _error_code(exc)
                self._refused(FetchError(code, type(exc).__name__), url)
                return PostResult(status=None, error=code)
        return PostResult(status=status, retry_after=retry_after)

    async def post_json(self, url: str, body: bytes, *, signer: Signer) -> dict[str, Any]:
        """POST a signed JSON document and read a JSON object back (an E2EE one-time-key
        claim); raise :class:`FetchError`. No redirects; the answer is capped like a fetch."""
        session = self._require_session()
        target = self._check_url(url)
        if self.domain_gate is not None:
            await self.domain_gate(_host(target))
        if len(body) > self._limits.max_body:
            raise FetchError("too_large", "request body too large")
        headers = {"Content-Type": "application/activity+json", "Accept": AP_ACCEPT}
        headers.update(signer("POST", str(target), dict(headers), body))
        try:
            async with asyncio.timeout(self._limits.total_timeout):
                async with session.post(target, data=body, headers=headers, allow_redirects=False) as resp:
                    answer = await self._read_document(resp, _media_types(AP_ACCEPT))
            return self._parse_json(answer)
        except TimeoutError:
            raise self._refused(
                FetchError("timeout", f"no complete answer within {self._limits.total_timeout} s"), target
            ) from None
        except FetchError as exc:
            raise self._refused(exc, target) from None
        except (aiohttp.ClientError, OSError) as exc:
            code = _error_code(exc)
            raise self._refused(FetchError(code, f"request failed ({type(exc).__name__})"), target) from exc

    # ------------------------------------------------------------------------ helpers

    def _require_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("Transport: call start() (or use 'async with') first")
        return self._session

    def _check_url(self, raw: str) -> URL:
        """Parse and vet one URL (the first or a redirect target); raise ``bad_url``/``refused_address``."""
        try:
            netloc = urlsplit(raw).netloc
            url = URL(raw)
            port = url.port
        except (ValueError, TypeError) as exc:
            raise FetchError("bad_url", "unparsable URL") from exc
        if url.scheme not in ("http", "https"):
            raise FetchError("bad_url", f"scheme {url.scheme!r} is not http or https")
        host = url.host
        if not host:
            raise FetchError("bad_url", "URL has no host")
        if "@" in netloc or url.raw_user is not None or url.raw_password is not None:
            raise FetchError("bad_url", "URL carries userinfo")
        if port is None or not 0 < port < 65536:
            raise FetchError("bad_url", "URL has an invalid port")
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            if host.replace(".", "").isdigit():
                raise FetchError("bad_url", "host is a non-canonical numeric IPv4 address") from None
        else:
            if not self._policy.permits(literal):
                raise FetchError("refused_address", "host is a non-public address")
        return url.with_fragment(None)

    @staticmethod
    def _refused(exc: FetchError, url: URL | None) -> FetchError:
        level = logging.INFO if exc.reason == "refused_address" else logging.DEBUG
        logger.log(level, "outbound request to %s failed: %s", url.host if url is not None else "-", exc.reason)
        return exc


async def _discard(resp: aiohttp.ClientResponse) -> None:
    read = 0
    async for chunk in resp.content.iter_chunked(_CHUNK):
        read += len(chunk)
        if read > _POST_RESPONSE_CAP:
            resp.close()
            return


def _error_code(exc: BaseException) -> str:
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return "refused_address" if isinstance(exc.os_error, _RefusedAddress) else "dns"
    if isinstance(exc, aiohttp.ClientSSLError):
        return "tls"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "disconnected"
    if isinstance(exc, aiohttp.InvalidURL):
        return "bad_url"
    if isinstance(exc, aiohttp.ClientPayloadError | aiohttp.ClientResponseError):
        return "protocol"
    if isinstance(exc, OSError):  # ClientConnectorError, ClientOSError, resets
        return "connect"
    return "protocol"


def _same_url(a: URL, b: URL) -> bool:
    return (
        a.scheme == b.scheme
        and a.host == b.host
        and a.port == b.port
        and a.raw_user is None
        and a.raw_path == b.raw_path
        and a.raw_query_string == b.raw_query_string
        and a.raw_fragment == b.raw_fragment
    )


def _media_types(accept: str) -> frozenset[str]:
    types = {part.split(";", 1)[0].strip().lower() for part in accept.split(",")} - {""}
    if "application/jrd+json" in types:
        types.add("application/json")
    return frozenset(types)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


def _depth_exceeds(document: Any, limit: int) -> bool:
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def _host(url: URL) -> str:
    """``host[:port]`` of a checked URL (default ports dropped), the unit of domain rules."""
    host = (url.host or "").lower()
    return f"{host}:{url.port}" if url.port is not None and not url.is_default_port() else host
