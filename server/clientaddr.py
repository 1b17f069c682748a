"""The address of the client behind a request, for limits counted per address.

Design note
-----------
Behind a reverse proxy every connection comes from the proxy, so the client's address is
in ``X-Forwarded-For``, which each proxy extends on the right with the address its own
connection came from. Everything to the left of what our proxies wrote is whatever the
client chose to send, so the header is read from the right:

* The peer of the TCP connection is the start. If it is not a trusted proxy
  (``server.trusted_proxies``, networks in CIDR form, loopback by default for nginx on the
  same machine), it is the client and the header is ignored: anyone can send one.
* While the address reached is a trusted proxy, the next entry to the left is the address
  that proxy saw, and becomes the candidate. The first address that is not a trusted proxy
  is the client; if every entry is one, the leftmost is.
* An entry that is not an IP address (garbage, ``unknown``, an empty item) ends the walk:
  a trusted proxy writes only addresses, so nothing at or beyond it was written by one, and
  the client is the last trusted hop reached. ``[v6]:port`` and ``v4:port`` forms are read
  as their address; IPv4-mapped IPv6 addresses (a dual-stack listener) count as IPv4, and a
  zone index is dropped, so neither spelling gives a fresh identity.

It refuses to guess: no header from an untrusted peer is read, and ``Forwarded``
(RFC 7239) and ``X-Real-IP`` are not read at all (nginx's documented set-up sends
``X-Forwarded-For``). Limits count an IPv6 client by its /64 (``address_key``), as
Mastodon does, because one subscriber is usually given a whole /64 to choose from.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

LOOPBACK = ("127.0.0.1/32", "::1/128")
IPV6_PREFIX = 64  # the share of an IPv6 address that names one subscriber, for counting
UNKNOWN = "unknown"  # the key of a connection without an IP peer (not a TCP socket)
_MAX_ENTRY_CHARS = 64  # longer than any address with a port and a zone index


def parse_networks(entries: Iterable[str]) -> tuple[IPNetwork, ...]:
    """The networks ``entries`` name in CIDR form (a bare address is a single-host network).

    Raises ``ValueError`` naming the first bad entry, its position and what is wrong.
    """
    networks: list[IPNetwork] = []
    for i, entry in enumerate(entries):
        try:
            networks.append(ipaddress.ip_network(entry, strict=True))
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"entry {i} {entry!r} is not an IP network in CIDR form such as 10.0.0.0/8 or fd00::/8 ({exc})"
            ) from None
    return tuple(networks)


def parse_address(text: str) -> IPAddress | None:
    """The address in one ``X-Forwarded-For`` entry (or a socket's peer), or None if it holds none."""
    value = text.strip()
    if not value or len(value) > _MAX_ENTRY_CHARS:
        return None
    if value.startswith("["):  # [2001:db8::1] or [2001:db8::1]:443
        inner, bracket, rest = value[1:].partition("]")
        if not bracket or (rest and not (rest.startswith(":") and _is_port(rest[1:]))):
            return None
        value = inner
    elif value.count(":") == 1:  # 203.0.113.7:443 (a bare IPv6 address has at least two colons)
        value, _colon, port = value.partition(":")
        if not _is_port(port):
            return None
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    return _canonical(address)


def client_address(peer: str | None, forwarded_for: Sequence[str], trusted: Sequence[IPNetwork]) -> IPAddress | None:
    """The client's address: ``peer`` (the connection's), or, when that is a trusted proxy, the
    rightmost ``X-Forwarded-For`` address that is not one (see the module note).

    ``forwarded_for`` holds every ``X-Forwarded-For`` header value in the order received.
    None only when ``peer`` is not an IP address (not a TCP connection).
    """
    address = parse_address(peer) if peer else None
    if address is None:
        return None
    entries = [entry for value in forwarded_for for entry in value.split(",")]
    for entry in reversed(entries):
        if not is_trusted(address, trusted):
            break
        hop = parse_address(entry)
        if hop is None:  # not written by a trusted proxy: nothing further left is either
            break
        address = hop
    return address


def is_trusted(address: IPAddress, trusted: Sequence[IPNetwork]) -> bool:
    """True when ``address`` is in one of the ``trusted`` networks (an IPv4 network never holds an IPv6 address)."""
    return any(address in network for network in trusted)


def address_key(address: IPAddress | None) -> str:
    """What limits count a client under: an IPv4 address, the /64 of an IPv6 address, or
    ``"unknown"`` for a connection without an IP peer (all such clients share one count)."""
    if address is None:
        return UNKNOWN
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((int(address), IPV6_PREFIX), strict=False))
    return str(address)


def _is_port(text: str) -> bool:
    return text.isascii() and text.isdigit() and len(text) <= 5


def _canonical(address: IPAddress) -> IPAddress:
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.scope_id is not None:
            return ipaddress.IPv6Address(int(address))
    return address
