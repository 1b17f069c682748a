"""The federation context of a running instance: transport, instance keys, worker wake-ups.

One ``Federation`` object lives in the app (``FEDERATION``) and in ``hearthside worker``. It
owns the outbound ``Transport`` (whose signed GETs are signed by the instance actor, so
fetches never depend on a member's key; research/federation.md §3.4, FEP-2677) and the events
that wake the inbox and delivery workers when new rows are committed.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from urllib.parse import urlsplit

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crypto.signing import PrivateKey, PublicKey
from federation.delivery import domain_of
from federation.httpsig import sign_request
from server.actor_keys import LocalKeys, instance_keys
from server.config import Config
from server.db import ReadSessions
from server.domains import register_mode, suspended_domain
from server.transport import FetchError, Transport, TransportLimits

USER_AGENT = "Hearthside/0.1 (+{base})"


def host_of(url: str) -> str:
    """``host[:port]`` of a URL (lowercase, punycode, default port dropped): the unit of
    domain rules, delivery health and remote account domains."""
    try:
        return domain_of(url)
    except ValueError:
        parts = urlsplit(url)
        return (parts.hostname or "").lower()


class Federation:
    """Shared by the web handlers and the workers of one process."""

    #: Inline query-only reads on SQLite (``server.db.ReadSessions``), set by the web app; the
    #: inbox's per-request checks use it. None in ``hearthside worker``: sessions are used.
    reads: ReadSessions | None = None

    def __init__(self, config: Config, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.config = config
        self.sessions = sessions
        self.instance: LocalKeys = instance_keys(config)
        # key id -> (public key, owner actor, account id, monotonic expiry): the verified-key
        # cache in front of ``actor_keys`` (refetched keys replace entries; see signatures.py).
        self.keys: dict[str, tuple[PublicKey, str, int, float]] = {}
        self._instance_key = PrivateKey.from_pem(self.instance.rsa_private_pem)
        self.transport = Transport(
            user_agent=USER_AGENT.format(base=config.base_url),
            allow_private_addresses=config.get("federation", "allow_private_addresses"),
            limits=TransportLimits(
                total_timeout=config.get("federation", "request_timeout_seconds"),
                max_body=config.get("federation", "max_fetch_bytes"),
            ),
            signer=self.sign_as_instance,
        )
        # The federation mode and the domain rules for every outbound fetch (server.domains).
        register_mode(sessions.kw.get("bind"), str(config.get("federation", "mode")))
        self.transport.domain_gate = self.refuse_domain

    async def refuse_domain(self, host: str) -> None:
        """Raise ``FetchError("refused_domain")`` when ``host`` is suspended or, in allowlist
        mode, not allowed: nothing is fetched from such a domain."""
        if host and not self.is_local("http://" + host) and await suspended_domain(self, host):
            raise FetchError("refused_domain", f"{host} does not federate with this instance")

    @property
    def enabled(self) -> bool:
        return bool(self.config.get("federation", "enabled"))

    def sign_as_instance(self, method: str, url: str, headers: Mapping[str, str], body: bytes | None) -> dict[str, str]:
        return sign_request(
            method,
            url,
            headers=headers,
            body=body,
            key=self._instance_key,
            key_id=self.instance.rsa_key_id,
            now=datetime.now(UTC),
        )

    def is_local(self, url: str) -> bool:
        return host_of(url) == host_of(self.config.base_url)

    async def start(self) -> None:
        await self.transport.start()

    async def close(self) -> None:
        await self.transport.close()


FEDERATION = web.AppKey("federation", Federation)
