"""Delivery policy: when to retry, what an answer means, and when a destination is left alone.

How it works. Each outgoing activity becomes one delivery per inbox (shared inboxes
deduplicated by :func:`dedupe_inboxes`). The worker that owns a delivery asks
:func:`may_attempt` whether the destination domain may be contacted now, POSTs, turns the
answer into an :class:`Outcome` with :func:`classify`, updates the domain's
:class:`DomainState` with :func:`after_attempt`, and for ``RETRY`` schedules the next try with
:func:`next_attempt`. Everything here is pure: times, jitter and answers are parameters, so the
same inputs always give the same decision.

Retry schedule (research/federation.md §4, Mastodon's ``retry: 16`` with Sidekiq's
``count^4 + 15`` seconds plus up to ``0.5 * count^4`` jitter). ``attempts`` counts the attempts
already made, so a delivery gets 1 + 16 tries; after the 17th failure it is given up::

    | failed attempts | c  | delay c^4+15 | jitter 0  | jitter ~1 | total (j=0) | total (j~1) |
    |-----------------|----|--------------|-----------|-----------|-------------|-------------|
    |  1              |  0 |     15 s     |    15 s   |    15 s   |    0.0 h    |    0.0 h    |
    |  2              |  1 |     16 s     |    16 s   |    16 s   |    0.0 h    |    0.0 h    |
    |  3              |  2 |     31 s     |    31 s   |    39 s   |    0.0 h    |    0.0 h    |
    |  4              |  3 |     96 s     |    96 s   |   2.3 min |    0.0 h    |    0.1 h    |
    |  5              |  4 |    271 s     |   4.5 min |   6.7 min |    0.1 h    |    0.2 h    |
    |  6              |  5 |    640 s     |  10.7 min |  15.9 min |    0.3 h    |    0.4 h    |
    |  7              |  6 |   1311 s     |  21.9 min |  32.6 min |    0.7 h    |    1.0 h    |
    |  8              |  7 |   2416 s     |  40.3 min |  60.3 min |    1.3 h    |    2.0 h    |
    |  9              |  8 |   4111 s     |  68.5 min | 102.7 min |    2.5 h    |    3.7 h    |
    | 10              |  9 |   6576 s     |   1.8 h   |   2.7 h   |    4.3 h    |    6.4 h    |
    | 11              | 10 |  10015 s     |   2.8 h   |   4.2 h   |    7.1 h    |   10.6 h    |
    | 12              | 11 |  14656 s     |   4.1 h   |   6.1 h   |   11.2 h    |   16.7 h    |
    | 13              | 12 |  20751 s     |   5.8 h   |   8.6 h   |   16.9 h    |   25.4 h    |
    | 14              | 13 |  28576 s     |   7.9 h   |  11.9 h   |   24.9 h    |   37.3 h    |
    | 15              | 14 |  38431 s     |  10.7 h   |  16.0 h   |   35.5 h    |   53.3 h    |
    | 16              | 15 |  50640 s     |  14.1 h   |  21.1 h   |   49.6 h    |   74.4 h    |
    | 17              |  - |  given up    |           |           |             |             |

The whole horizon is about two to three days (49.6 h without jitter, 74.4 h with maximal
jitter), DESIGN "Delivery". A ``Retry-After`` answer moves the next try later, never earlier,
and never more than :data:`RETRY_AFTER_CAP` ahead (GoToSocial also caps it, research §2.7).

Answers (research/federation.md §8.3 item 18, Mastodon's ``response_error_unsalvageable?``):
2xx is delivered; 401, 408, 429, every 5xx except 501, 3xx and network errors are retried; any
other 4xx and 501 are permanent. 3xx is retried because we never follow redirects on POST (a
signed POST re-sent elsewhere would go to a party the recipient did not name); Mastodon also
treats it as a failure to retry, and the schedule bounds the cost. Transport errors that cannot
get better by waiting (``bad_url``, ``refused_address``, ``too_large``) are permanent.

Domain health (research/federation.md §2.7 and §4, Mastodon's ``DeliveryFailureTracker`` and
Stoplight): a per-domain :class:`DomainState`.

* Circuit breaker: after :data:`CIRCUIT_THRESHOLD` consecutive failures the domain is left
  alone for :data:`CIRCUIT_BASE_COOL_OFF`, doubling with each further failure up to
  :data:`CIRCUIT_MAX_COOL_OFF`. When the cool-off ends attempts simply resume (no single
  half-open probe: that would need a shared lock; concurrent workers that fail again only
  lengthen the next cool-off). Deliveries that meet an open circuit are postponed, not failed,
  and do not use up an attempt.
* Unavailable: failures on :data:`UNAVAILABLE_AFTER_DAYS` distinct UTC days with no success in
  between mark the domain unavailable; its deliveries are skipped. Many failures on one day never
  do this. There are no delivery probes: like Mastodon, the mark is cleared by any successful
  contact (:func:`after_success`, e.g. from a fetch or a scheduled NodeInfo probe) or by a
  verified inbound request from the domain (:func:`after_inbound`).

Blocking: :func:`is_blocked` matches a domain and all its subdomains, on label boundaries, after
normalising both sides (lowercase, no trailing dot, IDNA punycode).
"""

from __future__ import annotations

import enum
import ipaddress
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

__all__ = [
    "CIRCUIT_BASE_COOL_OFF",
    "CIRCUIT_MAX_COOL_OFF",
    "CIRCUIT_THRESHOLD",
    "MAX_ATTEMPTS",
    "PERMANENT_ERRORS",
    "RETRY_AFTER_CAP",
    "RETRY_DELAYS",
    "UNAVAILABLE_AFTER_DAYS",
    "Decision",
    "DecisionKind",
    "DomainState",
    "InvalidDomainError",
    "Outcome",
    "after_attempt",
    "after_failure",
    "after_inbound",
    "after_success",
    "classify",
    "dedupe_inboxes",
    "domain_of",
    "is_blocked",
    "may_attempt",
    "next_attempt",
    "normalize_domain",
    "parse_retry_after",
]

# ---------------------------------------------------------------------------- retry schedule

#: Delay before retry number ``c + 1`` (``c^4 + 15`` seconds, c = 0..15), Mastodon's schedule.
RETRY_DELAYS: tuple[timedelta, ...] = tuple(timedelta(seconds=c**4 + 15) for c in range(16))

#: Attempts a delivery gets in all: the first one plus one per entry of :data:`RETRY_DELAYS`.
MAX_ATTEMPTS = 1 + len(RETRY_DELAYS)

#: How far ahead a ``Retry-After`` answer may push the next attempt.
RETRY_AFTER_CAP = timedelta(days=1)

# Largest delta-seconds value parse_retry_after turns into a time; anything above is the same
# to callers (they cap far lower) and would overflow ``datetime`` arithmetic.
_RETRY_AFTER_MAX_SECONDS = 365 * 24 * 3600

_JITTER_SHARE = 0.5  # jitter adds up to half of c^4 (research/federation.md §2.7)


def _aware(now: datetime, name: str = "now") -> datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"{name}: a timezone-aware datetime is required, got a naive one")
    return now


def next_attempt(attempts: int, now: datetime, *, jitter: float, retry_after: datetime | None) -> datetime | None:
    """When to try again after ``attempts`` failed attempts, or ``None`` when retries are exhausted.

    ``jitter`` in [0, 1) is drawn by the caller (so tests are deterministic) and adds up to half
    of ``c^4`` seconds. ``retry_after`` (from :func:`parse_retry_after`) is honoured when it is
    later than the schedule, capped at ``now + RETRY_AFTER_CAP``.
    """
    _aware(now)
    if attempts < 1:
        raise ValueError(f"attempts: at least one attempt must have failed before a retry, got {attempts}")
    if not 0.0 <= jitter < 1.0:
        raise ValueError(f"jitter: must be in [0, 1), got {jitter!r}")
    if attempts > len(RETRY_DELAYS):
        return None
    c = attempts - 1
    scheduled = now + RETRY_DELAYS[c] + timedelta(seconds=_JITTER_SHARE * c**4 * jitter)
    if retry_after is not None:
        _aware(retry_after, "retry_after")
        asked = min(retry_after, now + RETRY_AFTER_CAP)
        if asked > scheduled:
            return asked
    return scheduled


_DELTA_SECONDS = re.compile(r"[0-9]+", re.ASCII)


def parse_retry_after(value: str | None, now: datetime) -> datetime | None:
    """The time a ``Retry-After`` header names (RFC 9110 §10.2.3), or ``None`` if absent or garbage.

    Accepts delta-seconds (``120``) and HTTP-dates (IMF-fixdate, and the obsolete RFC 850 and
    asctime forms). A date in the past is returned as is (the caller's schedule wins over it).
    """
    _aware(now)
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if _DELTA_SECONDS.fullmatch(text):
        return now + timedelta(seconds=min(int(text), _RETRY_AFTER_MAX_SECONDS))
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if moment.tzinfo is None:
        # RFC 9110: HTTP-dates are always GMT; email.utils leaves "-0000" style dates naive.
        moment = moment.replace(tzinfo=UTC)
    return moment


# ---------------------------------------------------------------------------- classification


class Outcome(enum.Enum):
    """What an attempt's answer means for the delivery."""

    DELIVERED = "delivered"
    RETRY = "retry"
    PERMANENT = "permanent"


#: Transport error codes that waiting cannot fix (see ``server.transport.PostResult.error``).
PERMANENT_ERRORS = frozenset({"bad_url", "refused_address", "too_large"})

_RETRYABLE_4XX = frozenset({401, 408, 429})


def classify(status: int | None, *, error: str | None) -> Outcome:
    """Turn an HTTP status (or a transport error when there was no answer) into an :class:`Outcome`.

    2xx delivered; 4xx except 401/408/429, and 501, permanent (research/federation.md §8.3
    item 18); everything else, including 3xx and ``status=None`` network errors, retried.
    ``error`` only matters without a status: codes in :data:`PERMANENT_ERRORS` are permanent.
    """
    if status is None:
        return Outcome.PERMANENT if error in PERMANENT_ERRORS else Outcome.RETRY
    if 200 <= status < 300:
        return Outcome.DELIVERED
    if 400 <= status < 500:
        return Outcome.RETRY if status in _RETRYABLE_4XX else Outcome.PERMANENT
    if status == 501:
        return Outcome.PERMANENT
    return Outcome.RETRY


# ---------------------------------------------------------------------------- domain health

#: Consecutive failures that open a domain's circuit (Mastodon's Stoplight threshold).
CIRCUIT_THRESHOLD = 10
#: First cool-off once the circuit opens (Mastodon: 60 s); doubles with each further failure.
CIRCUIT_BASE_COOL_OFF = timedelta(seconds=60)
#: Longest cool-off (Fedify probes an open circuit after 30 min, research §2.7).
CIRCUIT_MAX_COOL_OFF = timedelta(minutes=30)
#: Distinct UTC days with failures, without a success between, that make a domain unavailable.
UNAVAILABLE_AFTER_DAYS = 7


@dataclass(frozen=True)
class DomainState:
    """Delivery health of one remote domain (stored in ``DomainHealth``)."""

    failure_days: frozenset[date] = field(default_factory=frozenset)
    consecutive_failures: int = 0
    circuit_open_until: datetime | None = None
    unavailable_since: datetime | None = None
    last_success_at: datetime | None = None


class DecisionKind(enum.StrEnum):
    """What :func:`may_attempt` allows (a ``str`` enum: ``kind == "wait"`` works too)."""

    ATTEMPT = "attempt"  # deliver now
    WAIT = "wait"  # circuit open: postpone to Decision.until, without using an attempt
    UNAVAILABLE = "unavailable"  # domain unavailable: end the delivery as skipped


@dataclass(frozen=True)
class Decision:
    kind: DecisionKind
    until: datetime | None = None  # set exactly when kind is WAIT


def may_attempt(state: DomainState, now: datetime) -> Decision:
    """Whether a delivery to this domain may be attempted at ``now``."""
    _aware(now)
    if state.unavailable_since is not None:
        return Decision(DecisionKind.UNAVAILABLE)
    if state.circuit_open_until is not None and now < state.circuit_open_until:
        return Decision(DecisionKind.WAIT, state.circuit_open_until)
    return Decision(DecisionKind.ATTEMPT)


def after_success(state: DomainState, now: datetime) -> DomainState:
    """The domain answered: clear failures, circuit and unavailability (Mastodon ``track_success!``)."""
    _aware(now)
    return DomainState(last_success_at=now)


def after_failure(state: DomainState, now: datetime) -> DomainState:
    """The domain failed to answer usefully: count it, maybe open the circuit or mark it unavailable."""
    _aware(now)
    days = state.failure_days | {now.astimezone(UTC).date()}
    failures = state.consecutive_failures + 1
    circuit_open_until = state.circuit_open_until
    if failures >= CIRCUIT_THRESHOLD:
        doublings = min(failures - CIRCUIT_THRESHOLD, 16)  # 2^16 minutes is far past the cap
        circuit_open_until = now + min(CIRCUIT_BASE_COOL_OFF * 2**doublings, CIRCUIT_MAX_COOL_OFF)
    unavailable_since = state.unavailable_since
    if unavailable_since is None and len(days) >= UNAVAILABLE_AFTER_DAYS:
        unavailable_since = now
    return replace(
        state,
        failure_days=days,
        consecutive_failures=failures,
        circuit_open_until=circuit_open_until,
        unavailable_since=unavailable_since,
    )


def after_inbound(state: DomainState, now: datetime) -> DomainState:
    """A verified (signed) request arrived from the domain: it is alive, so clear unavailability.

    Like Mastodon's inbox controller resetting ``DeliveryFailureTracker``: the failure days and
    the unavailable mark go; the circuit breaker stays, because it is about *our* requests to
    their inbox failing, which an inbound request says nothing about.
    """
    _aware(now)
    return replace(state, failure_days=frozenset(), unavailable_since=None)


def after_attempt(state: DomainState, now: datetime, *, status: int | None, outcome: Outcome) -> DomainState:
    """Update domain health after one attempt, as the delivery worker should.

    Any HTTP answer classified DELIVERED or PERMANENT is a sign of life (Mastodon tracks success
    for unsalvageable 4xx too); RETRY is a failure; a permanent transport refusal without an
    answer (``bad_url``, ``refused_address``) says nothing about the domain and changes nothing.
    """
    if outcome is Outcome.RETRY:
        return after_failure(state, now)
    if status is None:
        _aware(now)
        return state
    return after_success(state, now)


# ---------------------------------------------------------------------------- inboxes and domains


class InvalidDomainError(ValueError):
    """A URL has no usable host, or a domain name cannot be normalised."""


def _host_of(url: str) -> tuple[str, int | None, str]:
    try:
        parts = urlsplit(url)
        host = parts.hostname
        port = parts.port
    except ValueError as exc:
        raise InvalidDomainError(f"url: cannot parse host and port of {url!r}: {exc}") from exc
    if not host:
        raise InvalidDomainError(f"url: no host in {url!r}")
    return host, port, parts.scheme.lower()


def normalize_domain(domain: str) -> str:
    """Lowercase, no trailing dot, no leading ``*.`` wildcard, IDNA punycode; IP literals as is.

    Raises :class:`InvalidDomainError` for names that cannot be encoded (empty labels, labels
    longer than 63 octets).
    """
    text = domain.strip().lower()
    if text.startswith("*."):
        text = text[2:]
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    text = text.rstrip(".")
    if not text:
        raise InvalidDomainError(f"domain: empty domain name {domain!r}")
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        pass
    try:
        encoded = text.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise InvalidDomainError(f"domain: {domain!r} is not a valid domain name: {exc}") from exc
    return encoded.lower()


_DEFAULT_PORTS = {"http": 80, "https": 443}


def domain_of(url: str) -> str:
    """The delivery domain of a URL: normalised host, plus ``:port`` when not the scheme's default.

    IPv6 literals are bracketed (``[::1]:8080``). Raises :class:`InvalidDomainError` without a host.
    """
    host, port, scheme = _host_of(url)
    name = normalize_domain(host)
    if ":" in name:
        name = f"[{name}]"
    if port is not None and port != _DEFAULT_PORTS.get(scheme):
        return f"{name}:{port}"
    return name


def _bare_host(domain: str) -> str:
    text = domain.strip()
    if text.startswith("["):
        return text[1 : text.index("]")] if "]" in text else text
    if text.count(":") == 1:  # host:port (a bare IPv6 literal has several colons)
        return text.split(":", 1)[0]
    return text


def is_blocked(domain: str, blocked: Collection[str]) -> bool:
    """Whether ``domain`` (a host, optionally ``:port``, as from :func:`domain_of`) is blocked.

    An entry blocks itself and every subdomain on a label boundary: ``example.com`` blocks
    ``a.b.example.com`` but not ``notexample.com``. IP literals only match exactly. Both sides
    are normalised with :func:`normalize_domain`; an entry that cannot be normalised raises
    (the blocklist is corrupt; delivering anyway would fail open). Cost is linear in the list.
    """
    host = normalize_domain(_bare_host(domain))
    entries = {normalize_domain(_bare_host(entry)) for entry in blocked}
    if host in entries:
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return False
    labels = host.split(".")
    return any(".".join(labels[i:]) in entries for i in range(1, len(labels)))


def dedupe_inboxes(recipients: Iterable[tuple[str, str | None]]) -> list[str]:
    """The inbox URLs to deliver to for (personal inbox, shared inbox or None) pairs, sorted.

    A recipient's shared inbox is preferred, so one POST reaches every recipient on that server.
    A shared inbox on a different host than the personal inbox is ignored (an actor must not be
    able to send its followers' deliveries to a third party); the personal inbox is used instead.

    Whether a shared inbox is acceptable at all is the caller's decision: for members-only,
    followers-only or direct content the receiving server fans the activity out by its own
    reading of the addressing, so callers that cannot rely on that pass ``None`` as the shared
    inbox and each recipient gets its own delivery.
    """
    inboxes: set[str] = set()
    for personal, shared in recipients:
        if not personal:
            raise ValueError("recipients: a recipient has an empty personal inbox")
        if shared and _same_host(personal, shared):
            inboxes.add(shared)
        else:
            inboxes.add(personal)
    return sorted(inboxes)


def _same_host(a: str, b: str) -> bool:
    try:
        return domain_of(a) == domain_of(b)
    except InvalidDomainError:
        return False
