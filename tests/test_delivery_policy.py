"""federation.delivery: retry schedule, answer classification, domain health, inboxes, blocking."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from federation.delivery import (
    CIRCUIT_BASE_COOL_OFF,
    CIRCUIT_MAX_COOL_OFF,
    CIRCUIT_THRESHOLD,
    MAX_ATTEMPTS,
    RETRY_AFTER_CAP,
    RETRY_DELAYS,
    Decision,
    DecisionKind,
    DomainState,
    InvalidDomainError,
    Outcome,
    after_attempt,
    after_failure,
    after_inbound,
    after_success,
    classify,
    dedupe_inboxes,
    domain_of,
    is_blocked,
    may_attempt,
    next_attempt,
    normalize_domain,
    parse_retry_after,
)

NOW = datetime(2026, 3, 2, 12, 0, 0, tzinfo=UTC)
ALMOST_ONE = 0.999_999


# ---------------------------------------------------------------------------- schedule


def test_retry_delays__follow_mastodon_c4_plus_15() -> None:
    assert len(RETRY_DELAYS) == 16
    assert MAX_ATTEMPTS == 17
    assert RETRY_DELAYS[0] == timedelta(seconds=15)
    assert RETRY_DELAYS[1] == timedelta(seconds=16)
    assert RETRY_DELAYS[2] == timedelta(seconds=31)
    assert RETRY_DELAYS[3] == timedelta(seconds=96)
    assert RETRY_DELAYS[15] == timedelta(seconds=50_640)
    assert list(RETRY_DELAYS) == sorted(RETRY_DELAYS)


def _horizon(jitter: float) -> timedelta:
    moment = NOW
    for attempts in range(1, MAX_ATTEMPTS):
        following = next_attempt(attempts, moment, jitter=jitter, retry_after=None)
        assert following is not None, attempts
        assert following > moment
        moment = following
    assert next_attempt(MAX_ATTEMPTS, moment, jitter=jitter, retry_after=None) is None
    return moment - NOW


@pytest.mark.parametrize("jitter", [0.0, 0.5, ALMOST_ONE])
def test_next_attempt__horizon_is_two_to_three_days(jitter: float) -> None:
    horizon = _horizon(jitter)
    assert timedelta(hours=48) <= horizon <= timedelta(hours=80)


def test_next_attempt__jitter_widens_horizon_by_half_of_c4() -> None:
    extra = _horizon(ALMOST_ONE) - _horizon(0.0)
    expected = timedelta(seconds=0.5 * sum(c**4 for c in range(16)))
    assert abs(extra - expected) < timedelta(seconds=1)


def test_next_attempt__jitter_bounds_per_step() -> None:
    for attempts in range(1, MAX_ATTEMPTS):
        c = attempts - 1
        low = next_attempt(attempts, NOW, jitter=0.0, retry_after=None)
        high = next_attempt(attempts, NOW, jitter=ALMOST_ONE, retry_after=None)
        assert low == NOW + RETRY_DELAYS[c]
        assert high is not None
        assert NOW + RETRY_DELAYS[c] <= high <= NOW + RETRY_DELAYS[c] + timedelta(seconds=0.5 * c**4)


@pytest.mark.parametrize("jitter", [-0.1, 1.0, 2.0])
def test_next_attempt__rejects_jitter_outside_unit_interval(jitter: float) -> None:
    with pytest.raises(ValueError, match="jitter"):
        next_attempt(1, NOW, jitter=jitter, retry_after=None)


def test_next_attempt__rejects_zero_attempts_and_naive_now() -> None:
    with pytest.raises(ValueError, match="attempts"):
        next_attempt(0, NOW, jitter=0.0, retry_after=None)
    with pytest.raises(ValueError, match="timezone"):
        next_attempt(1, NOW.replace(tzinfo=None), jitter=0.0, retry_after=None)


def test_next_attempt__retry_after_later_than_schedule_wins() -> None:
    asked = NOW + timedelta(minutes=10)
    assert next_attempt(1, NOW, jitter=0.0, retry_after=asked) == asked


def test_next_attempt__retry_after_earlier_than_schedule_is_ignored() -> None:
    scheduled = NOW + RETRY_DELAYS[9]
    assert next_attempt(10, NOW, jitter=0.0, retry_after=NOW + timedelta(seconds=5)) == scheduled


def test_next_attempt__far_future_retry_after_is_capped() -> None:
    far = NOW + timedelta(days=365)
    assert next_attempt(1, NOW, jitter=0.0, retry_after=far) == NOW + RETRY_AFTER_CAP


def test_next_attempt__exhausted_even_with_retry_after() -> None:
    assert next_attempt(MAX_ATTEMPTS, NOW, jitter=0.0, retry_after=NOW + timedelta(minutes=1)) is None


# ---------------------------------------------------------------------------- Retry-After


def test_parse_retry_after__delta_seconds() -> None:
    assert parse_retry_after("120", NOW) == NOW + timedelta(seconds=120)
    assert parse_retry_after(" 0 ", NOW) == NOW


def test_parse_retry_after__http_dates() -> None:
    expected = datetime(2026, 3, 2, 13, 0, 0, tzinfo=UTC)
    assert parse_retry_after("Mon, 02 Mar 2026 13:00:00 GMT", NOW) == expected
    assert parse_retry_after("Monday, 02-Mar-26 13:00:00 GMT", NOW) == expected
    assert parse_retry_after("Mon Mar  2 13:00:00 2026", NOW) == expected


@pytest.mark.parametrize("value", [None, "", "soon", "-5", "1.5", "+30", "１２０", "Mon, 99 Foo 2026", "0x10"])
def test_parse_retry_after__garbage_is_none(value: str | None) -> None:
    assert parse_retry_after(value, NOW) is None


def test_parse_retry_after__huge_delta_does_not_overflow_and_is_capped_later() -> None:
    moment = parse_retry_after("9" * 40, NOW)
    assert moment is not None and moment > NOW + RETRY_AFTER_CAP
    assert next_attempt(1, NOW, jitter=0.0, retry_after=moment) == NOW + RETRY_AFTER_CAP


# ---------------------------------------------------------------------------- classification


@pytest.mark.parametrize(
    ("status", "error", "outcome"),
    [
        (200, None, Outcome.DELIVERED),
        (202, None, Outcome.DELIVERED),
        (204, None, Outcome.DELIVERED),
        (301, None, Outcome.RETRY),
        (308, None, Outcome.RETRY),
        (400, None, Outcome.PERMANENT),
        (401, None, Outcome.RETRY),
        (403, None, Outcome.PERMANENT),
        (404, None, Outcome.PERMANENT),
        (408, None, Outcome.RETRY),
        (410, None, Outcome.PERMANENT),
        (413, None, Outcome.PERMANENT),
        (422, None, Outcome.PERMANENT),
        (429, None, Outcome.RETRY),
        (500, None, Outcome.RETRY),
        (501, None, Outcome.PERMANENT),
        (502, None, Outcome.RETRY),
        (503, None, Outcome.RETRY),
        (None, "timeout", Outcome.RETRY),
        (None, "connect", Outcome.RETRY),
        (None, "dns", Outcome.RETRY),
        (None, None, Outcome.RETRY),
        (None, "refused_address", Outcome.PERMANENT),
        (None, "bad_url", Outcome.PERMANENT),
        (None, "too_large", Outcome.PERMANENT),
        (500, "refused_address", Outcome.RETRY),  # a status always wins over an error code
    ],
)
def test_classify__table(status: int | None, error: str | None, outcome: Outcome) -> None:
    assert classify(status, error=error) is outcome


# ---------------------------------------------------------------------------- domain health


def _fail(state: DomainState, times: int, now: datetime = NOW) -> DomainState:
    for _ in range(times):
        state = after_failure(state, now)
    return state


def test_domain__fresh_state_may_attempt() -> None:
    assert may_attempt(DomainState(), NOW) == Decision(DecisionKind.ATTEMPT)


def test_domain__circuit_opens_after_threshold_consecutive_failures() -> None:
    below = _fail(DomainState(), CIRCUIT_THRESHOLD - 1)
    assert may_attempt(below, NOW).kind is DecisionKind.ATTEMPT
    opened = after_failure(below, NOW)
    assert may_attempt(opened, NOW) == Decision(DecisionKind.WAIT, NOW + CIRCUIT_BASE_COOL_OFF)
    assert may_attempt(opened, NOW + CIRCUIT_BASE_COOL_OFF).kind is DecisionKind.ATTEMPT


def test_domain__decision_kinds_compare_as_strings() -> None:
    opened = _fail(DomainState(), CIRCUIT_THRESHOLD)
    assert may_attempt(opened, NOW).kind == "wait"
    assert may_attempt(DomainState(), NOW).kind == "attempt"
    assert may_attempt(DomainState(unavailable_since=NOW), NOW).kind == "unavailable"


def test_domain__circuit_cool_off_grows_and_is_capped() -> None:
    state = _fail(DomainState(), CIRCUIT_THRESHOLD)
    cool_offs = []
    for _ in range(12):
        assert state.circuit_open_until is not None
        cool_offs.append(state.circuit_open_until - NOW)
        state = after_failure(state, NOW)
    assert cool_offs[:3] == [CIRCUIT_BASE_COOL_OFF, 2 * CIRCUIT_BASE_COOL_OFF, 4 * CIRCUIT_BASE_COOL_OFF]
    assert cool_offs == sorted(cool_offs)
    assert cool_offs[-1] == CIRCUIT_MAX_COOL_OFF


def test_domain__many_failures_on_one_day_never_make_it_unavailable() -> None:
    state = _fail(DomainState(), 500)
    assert state.unavailable_since is None
    assert len(state.failure_days) == 1
    assert may_attempt(state, NOW + CIRCUIT_MAX_COOL_OFF).kind is DecisionKind.ATTEMPT


def test_domain__six_distinct_days_still_attempt_seventh_makes_unavailable() -> None:
    state = DomainState()
    for day in range(6):
        state = after_failure(state, NOW + timedelta(days=day))
    later = NOW + timedelta(days=6)
    assert state.unavailable_since is None
    assert may_attempt(state, later).kind is DecisionKind.ATTEMPT
    state = after_failure(state, later)
    assert state.unavailable_since == later
    assert may_attempt(state, later + timedelta(days=30)) == Decision(DecisionKind.UNAVAILABLE)


def test_domain__failure_days_are_utc_days() -> None:
    # Both moments fall on 3 March in +02:00, but on 2 and 3 March in UTC: two failure days.
    plus_two = timezone(timedelta(hours=2))
    first = datetime(2026, 3, 3, 1, 30, tzinfo=plus_two)
    second = datetime(2026, 3, 3, 2, 30, tzinfo=plus_two)
    state = after_failure(after_failure(DomainState(), first), second)
    assert state.failure_days == {date(2026, 3, 2), date(2026, 3, 3)}


def test_domain__success_resets_everything() -> None:
    state = DomainState()
    for day in range(7):
        state = _fail(state, CIRCUIT_THRESHOLD, NOW + timedelta(days=day))
    assert may_attempt(state, NOW).kind is DecisionKind.UNAVAILABLE
    later = NOW + timedelta(days=8)
    healthy = after_success(state, later)
    assert healthy == DomainState(last_success_at=later)
    assert may_attempt(healthy, later).kind is DecisionKind.ATTEMPT
    # and counting starts again from nothing
    again = DomainState(last_success_at=later)
    for day in range(6):
        again = after_failure(again, later + timedelta(days=day))
    assert may_attempt(again, later + timedelta(days=6)).kind is DecisionKind.ATTEMPT


def test_domain__inbound_clears_unavailability_but_not_circuit() -> None:
    state = DomainState()
    for day in range(7):
        state = after_failure(state, NOW + timedelta(days=day))
    state = _fail(state, CIRCUIT_THRESHOLD, NOW + timedelta(days=7))
    assert may_attempt(state, NOW + timedelta(days=7)).kind is DecisionKind.UNAVAILABLE
    revived = after_inbound(state, NOW + timedelta(days=7))
    assert revived.unavailable_since is None and revived.failure_days == frozenset()
    assert may_attempt(revived, NOW + timedelta(days=7)).kind is DecisionKind.WAIT


def test_domain__after_attempt_routes_outcomes() -> None:
    failing = _fail(DomainState(), 3)
    assert after_attempt(failing, NOW, status=503, outcome=Outcome.RETRY).consecutive_failures == 4
    assert after_attempt(failing, NOW, status=None, outcome=Outcome.RETRY).consecutive_failures == 4
    # an answered 404 proves the domain is alive
    assert after_attempt(failing, NOW, status=404, outcome=Outcome.PERMANENT) == DomainState(last_success_at=NOW)
    assert after_attempt(failing, NOW, status=202, outcome=Outcome.DELIVERED) == DomainState(last_success_at=NOW)
    # a refusal before any contact says nothing about the domain
    assert after_attempt(failing, NOW, status=None, outcome=Outcome.PERMANENT) == failing


def test_domain__rejects_naive_times() -> None:
    with pytest.raises(ValueError, match="timezone"):
        after_failure(DomainState(), NOW.replace(tzinfo=None))
    with pytest.raises(ValueError, match="timezone"):
        may_attempt(DomainState(), NOW.replace(tzinfo=None))


# ---------------------------------------------------------------------------- inboxes


def test_dedupe_inboxes__prefers_shared_inbox_and_sorts() -> None:
    recipients = [
        ("https://b.example/users/1/inbox", "https://b.example/inbox"),
        ("https://a.example/users/x/inbox", None),
        ("https://b.example/users/2/inbox", "https://b.example/inbox"),
        ("https://a.example/users/x/inbox", None),
        ("https://c.example/users/y/inbox", ""),
    ]
    expected = ["https://a.example/users/x/inbox", "https://b.example/inbox", "https://c.example/users/y/inbox"]
    assert dedupe_inboxes(recipients) == expected
    assert dedupe_inboxes(reversed(recipients)) == expected


def test_dedupe_inboxes__ignores_shared_inbox_on_another_host() -> None:
    recipients = [("https://victim.example/users/1/inbox", "https://attacker.example/inbox")]
    assert dedupe_inboxes(recipients) == ["https://victim.example/users/1/inbox"]


def test_dedupe_inboxes__rejects_empty_personal_inbox() -> None:
    with pytest.raises(ValueError, match="empty personal inbox"):
        dedupe_inboxes([("", "https://a.example/inbox")])


# ---------------------------------------------------------------------------- domains and blocks


@pytest.mark.parametrize(
    ("url", "domain"),
    [
        ("https://Example.COM/users/a", "example.com"),
        ("https://example.com:443/inbox", "example.com"),
        ("http://example.com:80/inbox", "example.com"),
        ("http://127.0.0.2:8080/inbox", "127.0.0.2:8080"),
        ("https://example.com:8443/inbox", "example.com:8443"),
        ("https://example.com./inbox", "example.com"),
        ("https://bücher.example/inbox", "xn--bcher-kva.example"),
        ("http://[::1]:8080/inbox", "[::1]:8080"),
        ("http://[0:0::1]/inbox", "[::1]"),
    ],
)
def test_domain_of__normalises(url: str, domain: str) -> None:
    assert domain_of(url) == domain


@pytest.mark.parametrize("url", ["not a url", "https:///inbox", "mailto:someone", "https://a..b/inbox"])
def test_domain_of__rejects_urls_without_usable_host(url: str) -> None:
    with pytest.raises(InvalidDomainError):
        domain_of(url)


@pytest.mark.parametrize(
    ("domain", "blocked"),
    [
        ("example.com", {"example.com"}),
        ("a.example.com", {"example.com"}),
        ("a.b.example.com", {"b.example.com"}),
        ("a.b.example.com", {"example.com"}),
        ("A.B.Example.COM.", {"example.com"}),
        ("a.example.com:8443", {"example.com"}),
        ("social.example.com", {"*.example.com"}),
        ("xn--bcher-kva.example", {"bücher.example"}),
        ("sub.bücher.example", {"xn--bcher-kva.example"}),
        ("[::1]:8080", {"::1"}),
        ("10.0.0.1", {"10.0.0.1"}),
    ],
)
def test_is_blocked__domain_and_subdomains(domain: str, blocked: set[str]) -> None:
    assert is_blocked(domain, blocked)


@pytest.mark.parametrize(
    ("domain", "blocked"),
    [
        ("notexample.com", {"example.com"}),
        ("example.com.evil.net", {"example.com"}),
        ("example.com", {"a.example.com"}),
        ("b.example.com", {"a.b.example.com"}),
        ("example.co", {"example.com"}),
        ("1.2.3.4", {"3.4"}),
        ("example.com", set()),
    ],
)
def test_is_blocked__look_alikes_and_parents_are_not_blocked(domain: str, blocked: set[str]) -> None:
    assert not is_blocked(domain, blocked)


def test_is_blocked__corrupt_entry_fails_closed_with_error() -> None:
    with pytest.raises(InvalidDomainError):
        is_blocked("example.com", ["a..b"])


def test_normalize_domain__forms() -> None:
    assert normalize_domain(" Example.COM. ") == "example.com"
    assert normalize_domain("*.Example.com") == "example.com"
    assert normalize_domain("[::1]") == "::1"
    with pytest.raises(InvalidDomainError):
        normalize_domain("")
    with pytest.raises(InvalidDomainError):
        normalize_domain("x" * 64 + ".example")
