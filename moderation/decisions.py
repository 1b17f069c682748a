"""Domain decisions: Mastodon's severities, normalised domains, and which rule covers a host.

How it works. A :class:`DomainDecision` is one instance-level decision about a remote domain,
with exactly the fields of Mastodon's ``DomainBlock`` (research/moderation.md §1.1): a
:class:`Severity` (``suspend`` > ``silence`` > ``noop``), the ``reject_media`` /
``reject_reports`` / ``obfuscate`` flags and a public and a private comment. Its domain is
always in normal form (:func:`normalize_domain`), so two decisions about one domain cannot
disagree on spelling. A decision covers its domain and every subdomain; :func:`rule_for` picks
the most specific one, as Mastodon's ``DomainBlock.rule_for`` does (suffixes, longest first).
:func:`stricter` is Mastodon's ``stricter_than?``.

Normal form. Stripped, lowercased, one trailing dot removed, internationalised names turned
into punycode with UTS 46 mapping (the ``idna`` package, IDNA 2008, non-transitional), at most
63 octets per label and 253 in all. ASCII labels follow Mastodon's ``DomainValidator``: letters,
digits and hyphens (hyphens anywhere, like Mastodon, so every name Mastodon exports is
accepted); ``xn--`` labels are taken as given, so a punycode name IDNA 2008 would refuse (emoji
domains exist in the fediverse) can still be blocked. What is refused, with a
:class:`DomainError` naming the problem: empty text, spaces, URLs (scheme, path, port,
user info), wildcards, characters outside those rules, over-long labels or names.

Obfuscated names. Mastodon shows a block with ``obfuscate`` as its ``public_domain``: roughly
the middle half of the characters, dots excepted, replaced by ``*``, with the SHA-256 hex
``digest`` of the real name beside it (``app/models/domain_block.rb``, ``public_domain`` and
``domain_digest``, mastodon/mastodon commit cee49d3a04e18ca893546a4e58c28d6cd087e0b8). Such a
pattern is not a domain: :func:`is_obfuscated` recognises it, :func:`obfuscate_domain`
reproduces Mastodon's algorithm, and :func:`resolve_obfuscated` turns a pattern back into a
known peer only when the digest matches *and* every visible character agrees. A leading
``*`` is a wildcard, never an obfuscation: Mastodon's algorithm always keeps the first
character.
"""

from __future__ import annotations

import enum
import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import idna

__all__ = [
    "MAX_DOMAIN_LENGTH",
    "MAX_LABEL_LENGTH",
    "DomainDecision",
    "DomainError",
    "Severity",
    "domain_digest",
    "is_obfuscated",
    "normalize_domain",
    "obfuscate_domain",
    "resolve_obfuscated",
    "rule_for",
    "stricter",
]

#: Longest domain name accepted, in octets of the punycode form without the trailing dot (RFC 1035).
MAX_DOMAIN_LENGTH = 253

#: Longest label accepted, in octets (RFC 1035).
MAX_LABEL_LENGTH = 63


class DomainError(ValueError):
    """A text is not a domain name this package accepts; the message says why."""


class Severity(enum.StrEnum):
    """Mastodon's domain-block severities, ordered ``suspend`` > ``silence`` > ``noop``.

    ``silence`` is what Mastodon's interface calls "Limit". Comparisons are by strictness, not
    alphabetically, and only between severities (comparing with a plain string is a TypeError).
    """

    SUSPEND = "suspend"
    SILENCE = "silence"
    NOOP = "noop"

    @property
    def rank(self) -> int:
        """0 for ``noop``, 1 for ``silence``, 2 for ``suspend``."""
        return _RANK[self]

    def _other_rank(self, other: object) -> int:
        if not isinstance(other, Severity):
            raise TypeError(f"cannot compare a Severity with {type(other).__name__}")
        return other.rank

    def __lt__(self, other: object) -> bool:
        return self.rank < self._other_rank(other)

    def __le__(self, other: object) -> bool:
        return self.rank <= self._other_rank(other)

    def __gt__(self, other: object) -> bool:
        return self.rank > self._other_rank(other)

    def __ge__(self, other: object) -> bool:
        return self.rank >= self._other_rank(other)


_RANK: dict[Severity, int] = {Severity.NOOP: 0, Severity.SILENCE: 1, Severity.SUSPEND: 2}


@dataclass(frozen=True, slots=True)
class DomainDecision:
    """One instance-level decision about a domain and its subdomains (Mastodon's ``DomainBlock``).

    ``domain`` must already be in normal form (:func:`normalize_domain`); anything else raises
    :class:`DomainError`, so a decision never carries a spelling the rest of the system would
    not match. ``private_comment`` is for moderators only and never leaves the instance in an
    export or feed.
    """

    domain: str
    severity: Severity
    reject_media: bool = False
    reject_reports: bool = False
    obfuscate: bool = False
    public_comment: str = ""
    private_comment: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.severity, Severity):
            raise TypeError(f"severity: a Severity is required, got {self.severity!r}")
        normal = normalize_domain(self.domain)
        if normal != self.domain:
            raise DomainError(f"domain: {self.domain!r} is not in normal form (expected {normal!r})")

    @property
    def has_limitations(self) -> bool:
        """Whether Mastodon's ``with_limitations`` scope (and so its CSV export) includes it:
        ``silence`` or ``suspend``, or ``reject_media``."""
        return self.severity is not Severity.NOOP or self.reject_media


# ------------------------------------------------------------------------------ domain names

# Mastodon's DomainValidator: labels of letters, digits and hyphens (app/validators/domain_validator.rb).
_LABEL = re.compile(r"[a-z0-9-]{1,63}\Z")
_ASCII_PRINTABLE = re.compile(r"[\x21-\x7e]*\Z")
# A name already in normal form: what normalize_domain returns unchanged (checked by a test).
_NORMAL = re.compile(r"(?=.{1,253}\Z)[a-z0-9-]{1,63}(?:\.[a-z0-9-]{1,63})*\Z")
_WHITESPACE = re.compile(r"\s")
# Unicode dots UTS 46 maps to "." (full stop variants); a trailing one is a root dot too.
_DOTS = ".\u3002\uff0e\uff61"


def _refuse_shapes(text: str, original: str) -> None:
    """Refuse the shapes that are clearly not a bare host name, with a useful message."""
    if not text:
        raise DomainError("domain: empty")
    if _WHITESPACE.search(text):
        raise DomainError(f"domain: {original!r} contains whitespace")
    if "://" in text or re.match(r"[a-z][a-z0-9+.-]*:(?!\d+\Z)", text):
        raise DomainError(f"domain: {original!r} is a URL; give only the host name")
    if "/" in text or "?" in text or "#" in text:
        raise DomainError(f"domain: {original!r} has a path; give only the host name")
    if "@" in text:
        raise DomainError(f"domain: {original!r} has user information; give only the host name")
    if ":" in text or text.startswith("["):
        raise DomainError(f"domain: {original!r} has a port or is an IPv6 literal; give only the host name")
    if text.startswith("*"):
        raise DomainError(f"domain: {original!r} is a wildcard; a decision on a domain already covers its subdomains")
    if "*" in text:
        raise DomainError(f"domain: {original!r} is obfuscated; it must be resolved to a known domain first")


def normalize_domain(text: str) -> str:
    """The normal form of a domain name: lowercase punycode, no trailing dot.

    Raises :class:`DomainError` naming the problem for anything that is not a bare host name.
    """
    if not isinstance(text, str):
        raise DomainError(f"domain: text is required, got {type(text).__name__}")
    if _NORMAL.match(text):
        return text  # already normal (the common case: lists and the database hold normal forms)
    stripped = text.strip()
    _refuse_shapes(stripped.lower(), text)
    if stripped[-1] in _DOTS:
        stripped = stripped[:-1]
    if not stripped:
        raise DomainError(f"domain: {text!r} has no labels")
    if stripped.isascii():
        name = stripped.lower()
        if not _ASCII_PRINTABLE.match(name):
            raise DomainError(f"domain: {text!r} contains control characters")
    else:
        try:
            name = idna.encode(stripped, uts46=True, std3_rules=True, transitional=False).decode("ascii")
        except (idna.IDNAError, UnicodeError, ValueError) as exc:
            raise DomainError(f"domain: {text!r} is not a valid internationalised domain name: {exc}") from None
        name = name.lower()
    if len(name) > MAX_DOMAIN_LENGTH:
        raise DomainError(f"domain: {text!r} is {len(name)} characters long, the limit is {MAX_DOMAIN_LENGTH}")
    for label in name.split("."):
        if not label:
            raise DomainError(f"domain: {text!r} has an empty label")
        if len(label) > MAX_LABEL_LENGTH:
            raise DomainError(
                f"domain: {text!r} has a label of {len(label)} characters, the limit is {MAX_LABEL_LENGTH}"
            )
        if not _LABEL.match(label):
            bad = next(ch for ch in label if not ("a" <= ch <= "z" or "0" <= ch <= "9" or ch == "-"))
            raise DomainError(f"domain: {text!r} contains the character {bad!r}, not allowed in a host name")
    return name


def _is_ipv4(name: str) -> bool:
    labels = name.split(".")
    return len(labels) == 4 and all(label.isdigit() for label in labels)


def rule_for(domain: str, decisions: Mapping[str, DomainDecision]) -> DomainDecision | None:
    """The decision that applies to ``domain``: the most specific among it and its parents.

    ``decisions`` is keyed by normalised domain. ``a.b.example`` is looked up as ``a.b.example``,
    then ``b.example``, then ``example`` (Mastodon's ``rule_for``); an IPv4 address only matches
    itself. Raises :class:`DomainError` when ``domain`` is not a domain name.
    """
    name = normalize_domain(domain)
    if _is_ipv4(name):
        return decisions.get(name)
    labels = name.split(".")
    for i in range(len(labels)):
        found = decisions.get(".".join(labels[i:]))
        if found is not None:
            return found
    return None


def stricter(a: DomainDecision, b: DomainDecision) -> bool:
    """Whether ``a`` imposes at least everything ``b`` does (Mastodon's ``stricter_than?``).

    ``suspend`` is stricter than anything; otherwise ``a``'s severity must not be lower than
    ``b``'s and ``a`` must reject media and reports wherever ``b`` does. Equal decisions are
    "stricter" (Mastodon uses it to refuse a new block that adds nothing).
    """
    if a.severity is Severity.SUSPEND:
        return True
    if a.severity < b.severity:
        return False
    return (a.reject_media or not b.reject_media) and (a.reject_reports or not b.reject_reports)


# ------------------------------------------------------------------------- obfuscated names


def obfuscate_domain(domain: str) -> str:
    """Mastodon's ``public_domain`` of an obfuscated block.

    With ``n`` the length and ``v = n // 4``, every character at index ``i`` with
    ``v < i < n - v`` that is not a dot becomes ``*``: ``mastodon.social`` -> ``mast****.***ial``.
    The input is normalised first (Mastodon stores normalised names).
    """
    name = normalize_domain(domain)
    length = len(name)
    visible = length // 4
    return "".join("*" if visible < i < length - visible and ch != "." else ch for i, ch in enumerate(name))


def domain_digest(domain: str) -> str:
    """SHA-256 hex digest of the normalised domain, as Mastodon's ``domain_digest``."""
    return hashlib.sha256(normalize_domain(domain).encode("ascii")).hexdigest()


def _pattern_text(text: str) -> str:
    name = text.strip().lower()
    return name[:-1] if name.endswith(".") else name


def is_obfuscated(text: str) -> bool:
    """Whether ``text`` is an obfuscated domain (``b*****.example``), not a wildcard or garbage.

    It must contain ``*`` but not start with it (a leading ``*`` is a wildcard), and with the
    stars read as letters it must be a valid domain name.
    """
    name = _pattern_text(text)
    if "*" not in name or name.startswith("*") or not name.isascii():
        return False
    try:
        normalize_domain(name.replace("*", "a"))
    except DomainError:
        return False
    return True


def _matches(pattern: str, name: str) -> bool:
    return len(pattern) == len(name) and all(p in ("*", ch) for p, ch in zip(pattern, name, strict=True))


def resolve_obfuscated(pattern: str, digest: str, known_domains: Iterable[str]) -> str | None:
    """The known domain an obfuscated entry stands for, or ``None``.

    A candidate must have the pattern's length, agree with every visible character, and have
    SHA-256 ``digest``; the digest alone is not enough, nor is the pattern alone (several peers
    can fit one pattern). Candidates that are not valid domains are ignored.
    """
    if not is_obfuscated(pattern):
        return None
    wanted = digest.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", wanted):
        return None
    shape = _pattern_text(pattern)
    for candidate in known_domains:
        try:
            name = normalize_domain(candidate)
        except DomainError:
            continue
        if _matches(shape, name) and hashlib.sha256(name.encode("ascii")).hexdigest() == wanted:
            return name
    return None
