"""Instance configuration: one TOML file, validated against a declared schema.

Design note
-----------
Every key Hearthside understands is declared once in ``SCHEMA`` with its type, default,
documentation and (optionally) a check. Loading a file:

* rejects unknown sections and keys (a typo must not silently fall back to a default),
* rejects values of the wrong type and values a check refuses (bad URL, bad enum value),
* names the offending key as ``section.key`` in the error message,
* lets secrets come from the environment: ``HEARTHSIDE_DATABASE_URL`` and
  ``HEARTHSIDE_SECRET_KEY`` override the file, and any string value written as
  ``"env:NAME"`` is read from the environment variable ``NAME``.

``config.example.toml`` is generated from ``SCHEMA`` (``hearthside config-example``) and a
test keeps the checked-in copy identical, so the documentation cannot drift from the code.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from server.clientaddr import parse_networks


class ConfigError(Exception):
    """The configuration file is missing, unreadable or invalid. The message names the key."""


Check = Callable[[Any], "str | None"]  # returns a problem description, or None when fine


@dataclass(frozen=True, slots=True)
class KeySpec:
    kind: type
    default: Any
    doc: str
    check: Check | None = None
    item_type: type | None = None  # for lists


def _one_of(*choices: str) -> Check:
    def check(value: Any) -> str | None:
        if value not in choices:
            return f"must be one of {', '.join(repr(c) for c in choices)}, got {value!r}"
        return None

    return check


def _http_url(value: Any) -> str | None:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"must be an absolute http(s) URL such as https://example.org, got {value!r}"
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return f"must be an origin without a path, query or fragment, got {value!r}"
    return None


def _link_or_empty(*schemes: str) -> Check:
    def check(value: Any) -> str | None:
        if value == "":
            return None
        parts = urlsplit(value)
        if parts.scheme not in schemes or not (parts.hostname or (parts.scheme == "mailto" and "@" in parts.path)):
            return f"must be empty or an absolute {' or '.join(s + ':' for s in schemes)} address, got {value!r}"
        return None

    return check


def _at_least(minimum: int) -> Check:
    def check(value: Any) -> str | None:
        return None if value >= minimum else f"must be at least {minimum}, got {value!r}"

    return check


def _db_url(value: Any) -> str | None:
    if value == "":
        return None
    scheme = value.split("://", 1)[0] if "://" in value else ""
    if scheme not in ("sqlite+aiosqlite", "postgresql+asyncpg", "sqlite", "postgresql"):
        return (
            "must be empty (SQLite in the data directory), a sqlite+aiosqlite:// URL or a "
            f"postgresql+asyncpg:// URL, got scheme {scheme or 'none'!r}"
        )
    return None


def _port(value: Any) -> str | None:
    if not 1 <= value <= 65535:
        return f"must be a TCP port between 1 and 65535, got {value}"
    return None


def _ip_networks(value: Any) -> str | None:
    try:
        parse_networks(value)
    except ValueError as exc:
        return str(exc)
    return None


def _positive(value: Any) -> str | None:
    if value <= 0:
        return f"must be a positive number, got {value}"
    return None


DEFAULT_TRIGGER_TOPICS = (
    "self-harm: en=Self-harm; ru=Самоповреждение; fr=Automutilation",
    "suicide: en=Suicide; ru=Суицид; fr=Suicide",
    "eating-disorders: en=Eating disorders; ru=Расстройства пищевого поведения; fr=Troubles alimentaires",
    "substance-use: en=Substance use; ru=Употребление веществ; fr=Consommation de substances",
    "abuse: en=Abuse; ru=Насилие и жестокое обращение; fr=Maltraitance",
    "sexual-violence: en=Sexual violence; ru=Сексуальное насилие; fr=Violences sexuelles",
    "grief: en=Grief and loss; ru=Горе и утрата; fr=Deuil et perte",
    "medical: en=Medical and hospital; ru=Медицина и больница; fr=Médical et hôpital",
    "body-image: en=Body image; ru=Образ тела; fr=Image corporelle",
    "violence: en=Violence; ru=Насилие; fr=Violence",
)


# Helplines shipped as examples (issue 6). Entries dated 2026-11-21 were checked that day against
# stored copies of public pages describing the service (number, cost, hours; the US and French
# entries against the services' own sites, the others against regional health authorities and
# news of their launch); nobody called them. The others are "unverified" and flagged to admins
# until an operator checks them. Numbers change: check every entry at its source before use.
_UNVERIFIED = "unverified"
_CHECKED = "2026-11-21"
DEFAULT_HELPLINES: tuple[dict[str, Any], ...] = (
    {"name": "988 Suicide & Crisis Lifeline", "phone": "988", "sms": "988", "chat": "https://988lifeline.org/chat/",
     "url": "https://988lifeline.org", "languages": ["en", "es"], "countries": ["US"], "hours": "24/7",
     "source": "https://988lifeline.org/", "last_verified": _CHECKED},
    {"name": "Samaritans", "phone": "116 123", "url": "https://www.samaritans.org", "languages": ["en"],
     "countries": ["GB", "IE"], "hours": "24/7",
     "source": "https://www.samaritans.org/how-we-can-help/contact-samaritan/", "last_verified": _CHECKED},
    {"name": "9-8-8 Suicide Crisis Helpline", "phone": "988", "sms": "988", "url": "https://988.ca",
     "languages": ["en", "fr"], "countries": ["CA"], "hours": "24/7", "source": "https://988.ca/",
     "last_verified": _CHECKED},
    {"name": "3114 - numéro national de prévention du suicide", "phone": "3114", "url": "https://3114.fr",
     "languages": ["fr"], "countries": ["FR"], "hours": "24/7", "source": "https://3114.fr/",
     "last_verified": _CHECKED},
    {"name": "Centre de Prévention du Suicide", "phone": "0800 32 123", "url": "https://www.preventionsuicide.be",
     "languages": ["fr"], "countries": ["BE"], "hours": "24/7", "source": "https://www.preventionsuicide.be/",
     "last_verified": _UNVERIFIED, "paired_with": "Zelfmoordlijn 1813"},
    {"name": "Zelfmoordlijn 1813", "phone": "1813", "url": "https://www.zelfmoord1813.be", "languages": ["nl"],
     "countries": ["BE"], "hours": "24/7", "source": "https://www.zelfmoord1813.be/",
     "last_verified": _UNVERIFIED, "paired_with": "Centre de Prévention du Suicide"},
    {"name": "La Main Tendue / Die Dargebotene Hand / Telefono Amico", "phone": "143", "url": "https://www.143.ch",
     "languages": ["fr", "de", "it"], "countries": ["CH"], "hours": "24/7", "source": "https://www.143.ch/",
     "last_verified": _UNVERIFIED},
    {"name": "Детский телефон доверия", "phone": "8-800-2000-122", "url": "https://telefon-doveria.ru",
     "languages": ["ru"], "countries": ["RU"], "hours": "24/7 in most regions",
     "notes": "Free, for children, teenagers and their parents", "source": "https://telefon-doveria.ru/",
     "last_verified": _CHECKED},
    {"name": "Московская служба психологической помощи населению", "phone": "051", "url": "https://msph.ru",
     "languages": ["ru"], "countries": ["RU"], "hours": "24/7",
     "notes": "Moscow: 051 from a landline, +7 495 051 from a mobile", "source": "https://msph.ru/",
     "last_verified": _UNVERIFIED},
)  # fmt: skip


def _helplines(value: Any) -> str | None:
    from server.safety import check_helplines  # late: server.safety reads Config

    return check_helplines(value)


def _country_or_empty(value: Any) -> str | None:
    if value == "" or (len(value) == 2 and value.isascii() and value.isalpha() and value.isupper()):
        return None
    return f"must be empty or an ISO 3166-1 alpha-2 code in capitals such as 'FR', got {value!r}"


DEFAULT_RUNBOOK = (
    "No escalation runbook is configured. Set [safety] escalation_runbook to this instance's steps: who is on "
    "call, when to contact emergency services and how, how to reach the member privately, and who supports "
    "the responder afterwards."
)


def _trigger_topics(value: Any) -> str | None:
    from server.topics import parse_topic  # late: server.topics reads Config

    seen: set[str] = set()
    for i, entry in enumerate(value):
        try:
            topic = parse_topic(entry)
        except ValueError as exc:
            return f"[{i}]: {exc}"
        if topic.id in seen:
            return f"[{i}]: topic id {topic.id!r} appears twice"
        seen.add(topic.id)
    return None


def _username(value: Any) -> str | None:
    if value and not (value.isascii() and value.replace("_", "").isalnum() and len(value) <= 30):
        return f"must be 1-30 ASCII letters, digits or underscores, got {value!r}"
    return None


def _crisis_patterns(*, additions: bool) -> Check:
    def check(value: Any) -> str | None:
        from moderation.crisis import check_patterns

        if not all(isinstance(v, list) and all(isinstance(p, str) for p in v) for v in value.values()):
            return "must map a language (en, ru, fr) to a list of strings"
        return check_patterns(value, additions=additions)

    return check


SCHEMA: dict[str, tuple[str, dict[str, KeySpec]]] = {
    "instance": (
        "Who this instance is. base_url is the public origin; it becomes part of every "
        "federated id, so choose it before anyone signs up.",
        {
            "base_url": KeySpec(
                str, "http://127.0.0.1:8080", "Public origin (scheme, host, optional port).", _http_url
            ),
            "name": KeySpec(str, "Hearthside", "Display name of the instance."),
            "description": KeySpec(str, "A peer-support community.", "Short description shown by /api/v1/instance."),
            "contact_email": KeySpec(str, "", "Public contact address for the operators (may be empty)."),
            "languages": KeySpec(list, ["en"], "ISO 639-1 codes of the languages the community uses.", item_type=str),
            "registrations": KeySpec(
                str,
                "approval",
                "Sign-up mode: open, approval, invite or closed.",
                _one_of("open", "approval", "invite", "closed"),
            ),
            "max_post_chars": KeySpec(int, 5000, "Longest post, in characters of Markdown source.", _positive),
            "admin_username": KeySpec(
                str, "admin", "Username of the admin account `hearthside init` creates.", _username
            ),
        },
    ),
    "server": (
        "Where the web process listens and what it accepts.",
        {
            "host": KeySpec(str, "127.0.0.1", "Listen address."),
            "port": KeySpec(int, 8080, "Listen port.", _port),
            "max_body_bytes": KeySpec(
                int, 1_048_576, "Largest request body accepted, in bytes (413 beyond).", _positive
            ),
            "workers": KeySpec(bool, True, "Run background workers inside `hearthside serve`."),
            "processes": KeySpec(
                int,
                1,
                "Web processes sharing the listen port (SO_REUSEPORT); background workers run in the first only.",
                _positive,
            ),
            "trusted_proxies": KeySpec(
                list,
                ["127.0.0.1/32", "::1/128"],
                "Reverse proxies (IP networks in CIDR form) whose X-Forwarded-For header names the client; the "
                "client is the rightmost address in it that is not one of these. A request from any other address "
                "is its own client and its header is ignored. Default: nginx on this machine. [] if nothing "
                "proxies; never a network clients can connect from, or they choose their own address.",
                _ip_networks,
                item_type=str,
            ),
        },
    ),
    "database": (
        "Storage. Empty url means SQLite (WAL) in data_dir; set a postgresql+asyncpg:// URL "
        "for PostgreSQL. Prefer HEARTHSIDE_DATABASE_URL for URLs holding a password.",
        {
            "url": KeySpec(str, "", "SQLAlchemy URL, or empty for the embedded SQLite file.", _db_url),
            "pool_size": KeySpec(int, 10, "Connections kept open (PostgreSQL).", _positive),
            "echo": KeySpec(bool, False, "Log SQL statements (never enable in production: parameters hold content)."),
        },
    ),
    "storage": (
        "Files the instance keeps: database (SQLite), keys, secrets.",
        {
            "data_dir": KeySpec(str, "data", "Data directory, relative to the config file's folder unless absolute."),
        },
    ),
    "security": (
        "Secrets and hardening.",
        {
            "secret_key": KeySpec(
                str,
                "",
                "Server secret for keyed hashes; init writes one to data_dir/secret_key. Prefer HEARTHSIDE_SECRET_KEY.",
            ),
            "oauth_token_days": KeySpec(int, 365, "Lifetime of OAuth access tokens, in days.", _positive),
            "login_attempts_per_minute": KeySpec(
                int,
                10,
                "Failed password logins allowed per minute for one login name from one client address (see "
                "server.trusted_proxies); also the password checks one member may make per minute with a valid token.",
                _positive,
            ),
            "login_attempts_per_minute_per_name": KeySpec(
                int,
                100,
                "Failed password logins allowed per minute for one login name from all addresses together, so "
                "locking a member out takes many addresses and guessing from many is still bounded.",
                _positive,
            ),
            "login_attempts_per_minute_per_address": KeySpec(
                int,
                30,
                "Failed password logins allowed per minute from one client address over all login names (an IPv6 "
                "client counts by its /64; clients sharing a NAT share this).",
                _positive,
            ),
            "known_login_address_days": KeySpec(
                int,
                30,
                "Days a client address a member logged in from stays known to their login name: attempts from a "
                "known address skip the per-name limit, so wrong passwords sent from elsewhere cannot lock them out. "
                "Kept as a keyed hash of name and address; 0 remembers nothing.",
                _at_least(0),
            ),
            "argon2_memory_kib": KeySpec(
                int, 65_536, "Argon2id memory cost per password hash, in KiB (RFC 9106 default 64 MiB).", _positive
            ),
            "argon2_time_cost": KeySpec(int, 3, "Argon2id passes per password hash.", _positive),
        },
    ),
    "federation": (
        "ActivityPub between instances (research/federation.md). Outbound requests refuse "
        "private, loopback and link-local addresses unless allow_private_addresses is set.",
        {
            "enabled": KeySpec(bool, True, "Exchange posts with other instances (inboxes, deliveries, fetches)."),
            "allow_private_addresses": KeySpec(
                bool,
                False,
                "Allow fetching from and delivering to private/loopback addresses (tests and closed networks only).",
            ),
            "delivery_concurrency": KeySpec(int, 64, "Deliveries in flight at once per worker process.", _positive),
            "request_timeout_seconds": KeySpec(int, 15, "Total time allowed for one outbound request.", _positive),
            "max_fetch_bytes": KeySpec(int, 1_048_576, "Largest remote document fetched, in bytes.", _positive),
            "thread_fetch_limit": KeySpec(
                int, 20, "Most ancestors fetched to stitch one remote thread together.", _positive
            ),
            "mode": KeySpec(
                str,
                "blocklist",
                "'blocklist': federate with every domain not suspended; 'allowlist': only with domains "
                "allowed through /api/v1/admin/domain_allows (and their subdomains).",
                _one_of("blocklist", "allowlist"),
            ),
        },
    ),
    "e2ee": (
        "End-to-end encrypted private messages (docs/e2ee.md). The server stores public keys "
        "and ciphertext only; it can never read a message.",
        {
            "enabled": KeySpec(bool, True, "Offer encrypted private messages to members."),
            "message_ttl_days": KeySpec(
                int,
                30,
                "Ciphertext a device has not fetched and acknowledged is deleted after this many days.",
                _positive,
            ),
            "max_pending_per_device": KeySpec(
                int,
                10_000,
                "Most undelivered ciphertexts one device's inbox holds (further sends are refused).",
                _positive,
            ),
            "claims_per_minute": KeySpec(
                int, 30, "One-time-key claims one actor may make per minute against one member.", _positive
            ),
            "messages_per_minute": KeySpec(
                int, 60, "Encrypted messages one member may send per minute (all recipients together).", _positive
            ),
            "max_attachment_bytes": KeySpec(
                int,
                10_485_760,
                "Largest encrypted attachment one upload may hold, in bytes (the file is up to about 12 % "
                "smaller: padding, nonce and tag).",
                _positive,
            ),
            "attachment_ttl_days": KeySpec(
                int, 30, "Encrypted attachments are deleted this many days after their upload.", _positive
            ),
            "attachment_quota_bytes": KeySpec(
                int,
                268_435_456,
                "Most bytes of encrypted attachments one member may have stored at once.",
                _positive,
            ),
            "attachments_per_minute": KeySpec(
                int,
                30,
                "Attachment uploads, and attachment fetches from other servers, one member may make per minute (each).",
                _positive,
            ),
            "revealed_retention_days": KeySpec(
                int,
                90,
                "Messages a member revealed in a report are deleted this many days after the report is resolved "
                "(open reports keep them; at least 30, so appeals are decided with them).",
                _at_least(30),
            ),
            "accept_plaintext_dms": KeySpec(
                bool,
                False,
                "Keep direct messages from software without E2EE (e.g. Mastodon) in a separate box labelled "
                "'not end-to-end encrypted' instead of refusing them.",
            ),
        },
    ),
    "moderation": (
        "Moderation decisions shared with other instances (docs/moderation.md). The signed decision "
        "feed is served at /moderation/feeds/public and, to partners only, /moderation/feeds/partners.",
        {
            "feed_enabled": KeySpec(
                bool, True, "Publish domain decisions in the signed feed (obfuscated blocks are never published)."
            ),
            "feed_name": KeySpec(str, "", "Name of the feed (empty: the instance name + 'moderation decisions')."),
            "policy_url": KeySpec(
                str, "", "Page with the federation policy (empty: {base_url}/about).", _link_or_empty("https", "http")
            ),
            "appeals_contact": KeySpec(
                str,
                "",
                "mailto: or https: address for appeals (empty: mailto:contact_email, else {base_url}/about).",
                _link_or_empty("mailto", "https", "http"),
            ),
            "feed_partners": KeySpec(
                list,
                [],
                "Domains (host[:port]) whose instances may read the partner feed (account-level entries).",
                item_type=str,
            ),
            "feed_push_to": KeySpec(
                list, [], "Domains sent an ActivityPub Update (a pull hint) when the feed changes.", item_type=str
            ),
            "threshold_drop": KeySpec(
                int, 3, "Summed trust weight of independent subscriptions needed to suspend a domain.", _at_least(1)
            ),
            "threshold_reject": KeySpec(
                int, 3, "Summed trust weight needed to reject (refuse content from) a domain.", _at_least(1)
            ),
            "threshold_filter": KeySpec(int, 2, "Summed trust weight needed to limit (filter) a domain.", _at_least(1)),
            "threshold_accept": KeySpec(
                int, 1, "Summed trust weight needed for an allow recommendation.", _at_least(1)
            ),
            "circuit_breaker_changes": KeySpec(
                int,
                25,
                "A sync changing more decisions than this (or 10 % of those subscriptions manage) becomes drafts "
                "and alerts moderators.",
                _at_least(1),
            ),
        },
    ),
    "safety": (
        "Member safety (issue 6): trigger topics, crisis signposting and the crisis queue.",
        {
            "trigger_topics": KeySpec(
                list,
                list(DEFAULT_TRIGGER_TOPICS),
                "Trigger topics members may tag posts with and choose to show, warn about or hide: "
                "'id: en=Label; ru=Метка; fr=Libellé' (id: a-z, 0-9 and '-'; labels per language).",
                _trigger_topics,
                item_type=str,
            ),
            "helplines": KeySpec(
                list,
                [dict(h) for h in DEFAULT_HELPLINES],
                "Helplines shown to a member whose post may indicate a crisis, for their country and language. "
                "CHECK EVERY ENTRY AT ITS SOURCE BEFORE USE and set last_verified (YYYY-MM-DD). The shipped "
                "entries are examples: dated ones were checked that day against public pages describing the "
                "service (nobody called them), the others are 'unverified'. Keys: name, phone, sms, chat, "
                "url (one of these at least), "
                "languages, countries (ISO 3166-1 alpha-2), hours, notes, source (required), last_verified, "
                "paired_with (the name of a service always shown with this one, or neither is shown).",
                _helplines,
            ),
            "review_period_days": KeySpec(
                int, 180, "Helplines not verified within this many days are flagged to admins.", _positive
            ),
            "default_country": KeySpec(
                str,
                "",
                "Country (ISO 3166-1 alpha-2) for members who have not set theirs (empty: none).",
                _country_or_empty,
            ),
            "helpline_directory_url": KeySpec(
                str,
                "https://findahelpline.com",
                "A directory of helplines shown with the panel, for members whose country has none here "
                "(may be empty).",
                _link_or_empty("https"),
            ),
            "response_target_minutes": KeySpec(
                int, 60, "Time within which a responder should acknowledge a crisis-queue item.", _positive
            ),
            "escalation_runbook": KeySpec(
                str, DEFAULT_RUNBOOK, "The instance's escalation steps, shown with each crisis item."
            ),
            "concerns_per_day": KeySpec(
                int, 3, "Concern reports one member may file in 24 hours (then 429).", _at_least(1)
            ),
            "concerns_per_subject_per_day": KeySpec(
                int, 1, "Concern reports one member may file about the same person in 24 hours.", _at_least(1)
            ),
            "crisis_additions": KeySpec(
                dict,
                {},
                'Extra possible-crisis phrases per language, e.g. {en = ["intent: walk into the sea"]}: '
                "words separated by spaces, a|b alternatives, word* a stem, [word] optional, .. up to three "
                "words (moderation/crisis.py); an optional 'category:' prefix (ideation, hopelessness, intent, plan, "
                "method, farewell, self_harm; '!' before it for a high level).",
                _crisis_patterns(additions=True),
            ),
            "crisis_exclusions": KeySpec(
                dict,
                {},
                "Phrases per language that cancel an overlapping crisis-lexicon match, e.g. "
                '{en = ["killing it"]} (same syntax as crisis_additions).',
                _crisis_patterns(additions=False),
            ),
        },
    ),
    "logging": (
        "Logs hold ids and reason codes only, never content, bodies, headers or tokens.",
        {
            "level": KeySpec(
                str, "INFO", "DEBUG, INFO, WARNING or ERROR.", _one_of("DEBUG", "INFO", "WARNING", "ERROR")
            ),
            "format": KeySpec(str, "text", "text or json (one JSON object per line).", _one_of("text", "json")),
        },
    ),
}


def with_overrides(config: Config, **sections: Mapping[str, Any]) -> Config:
    """A copy of ``config`` with some already-valid values replaced (no re-validation)."""
    values = {section: dict(keys) for section, keys in config.values.items()}
    for section, keys in sections.items():
        values[section].update(keys)
    return Config(path=config.path, values=values)


_ENV_OVERRIDES = {
    ("database", "url"): "HEARTHSIDE_DATABASE_URL",
    ("security", "secret_key"): "HEARTHSIDE_SECRET_KEY",
}


@dataclass(frozen=True, slots=True)
class Config:
    """Validated configuration. ``values`` maps section -> key -> value; use the accessors."""

    path: Path | None
    values: Mapping[str, Mapping[str, Any]]

    def get(self, section: str, key: str) -> Any:
        return self.values[section][key]

    @property
    def base_url(self) -> str:
        return str(self.values["instance"]["base_url"]).rstrip("/")

    @property
    def domain(self) -> str:
        """The instance's domain as it appears in handles: host[:port]."""
        return urlsplit(self.base_url).netloc

    @property
    def data_dir(self) -> Path:
        raw = Path(self.values["storage"]["data_dir"])
        if raw.is_absolute() or self.path is None:
            return raw
        return (self.path.parent / raw).resolve()

    @property
    def database_url(self) -> str:
        url = str(self.values["database"]["url"])
        if not url:
            return f"sqlite+aiosqlite:///{self.data_dir / 'hearthside.sqlite3'}"
        if url.startswith("sqlite://"):
            return "sqlite+aiosqlite://" + url[len("sqlite://") :]
        if url.startswith("postgresql://"):
            return "postgresql+asyncpg://" + url[len("postgresql://") :]
        return url


def _type_name(t: type) -> str:
    names = {str: "a string", int: "an integer", bool: "true or false", list: "a list", float: "a number"}
    return {**names, dict: "a table"}[t]


def _validate_value(where: str, spec: KeySpec, value: Any, env: Mapping[str, str]) -> Any:
    if isinstance(value, str) and value.startswith("env:"):
        name = value[4:]
        if name not in env:
            raise ConfigError(f"{where}: environment variable {name} is not set")
        value = env[name]
        if spec.kind is int:
            try:
                value = int(value)
            except ValueError:
                raise ConfigError(f"{where}: environment variable {name} must hold an integer") from None
    ok = isinstance(value, spec.kind) and not (spec.kind is int and isinstance(value, bool))
    if not ok:
        raise ConfigError(f"{where}: must be {_type_name(spec.kind)}, got {type(value).__name__} {value!r}")
    if spec.item_type is not None:
        for i, item in enumerate(value):
            if not isinstance(item, spec.item_type):
                raise ConfigError(f"{where}[{i}]: must be {_type_name(spec.item_type)}, got {item!r}")
    if spec.check is not None:
        problem = spec.check(value)
        if problem:
            raise ConfigError(f"{where}: {problem}")
    return value


def parse_config(raw: Mapping[str, Any], path: Path | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Validate a parsed TOML mapping against ``SCHEMA``; raise ``ConfigError`` naming the key."""
    env = os.environ if env is None else env
    for section, body in raw.items():
        if section not in SCHEMA:
            raise ConfigError(f"{section}: unknown section (known: {', '.join(SCHEMA)})")
        if not isinstance(body, dict):
            raise ConfigError(f"{section}: must be a table ([{section}])")
        for key in body:
            if key not in SCHEMA[section][1]:
                raise ConfigError(
                    f"{section}.{key}: unknown key (known in [{section}]: {', '.join(SCHEMA[section][1])})"
                )
    values: dict[str, dict[str, Any]] = {}
    for section, (_doc, keys) in SCHEMA.items():
        given = raw.get(section, {})
        values[section] = {}
        for key, spec in keys.items():
            where = f"{section}.{key}"
            value = given.get(key, spec.default)
            override = _ENV_OVERRIDES.get((section, key))
            if override and env.get(override):
                value = env[override]
            values[section][key] = _validate_value(where, spec, value, env)
    return Config(path=path, values=values)


def load_config(path: Path | str, env: Mapping[str, str] | None = None) -> Config:
    """Read and validate a TOML configuration file."""
    path = Path(path).resolve()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: configuration file not found (create one with `hearthside init`)") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read configuration file ({exc.strerror})") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse_config(raw, path=path, env=env)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list) and value and isinstance(value[0], dict):  # one table per line
        return "[\n" + "".join(f"  {_toml_value(v)},\n" for v in value) + "]"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    escaped = str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def render_toml(overrides: Mapping[str, Mapping[str, Any]] | None = None, *, commented_defaults: bool = True) -> str:
    """Render a documented TOML file: every key with its doc and default.

    Keys in ``overrides`` are written as active settings; the others stay commented out at
    their defaults, so the file documents everything while setting only what differs.
    """
    overrides = overrides or {}
    lines = [
        "# Hearthside configuration. Every key is listed with its default value.",
        "# Unknown keys are an error. Secrets may come from the environment:",
        '#   HEARTHSIDE_DATABASE_URL, HEARTHSIDE_SECRET_KEY, or any string value "env:NAME".',
        "",
    ]
    for section, (doc, keys) in SCHEMA.items():
        lines.append(f"# {doc}")
        lines.append(f"[{section}]")
        for key, spec in keys.items():
            lines.append(f"# {spec.doc}")
            if key in overrides.get(section, {}):
                lines.append(f"{key} = {_toml_value(overrides[section][key])}")
            elif commented_defaults:
                lines.append(f"# {key} = {_toml_value(spec.default)}".replace("\n", "\n# "))
            else:
                lines.append(f"{key} = {_toml_value(spec.default)}")
        lines.append("")
    return "\n".join(lines)
