"""Domain decisions and block-list formats (research/moderation.md §1.1, §1.2, §2.1, §3.1, §6.c 1-5).

Fixtures are in tests/vectors/moderation/ (README says where each comes from).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from moderation.decisions import (
    DomainDecision,
    DomainError,
    Severity,
    domain_digest,
    is_obfuscated,
    normalize_domain,
    obfuscate_domain,
    resolve_obfuscated,
    rule_for,
    stricter,
)
from moderation.formats import (
    MASTODON_CSV_HEADER,
    MAX_ROWS,
    FormatError,
    ImportResult,
    RowProblem,
    decode_text,
    detect_format,
    export_mastodon_csv,
    export_mastodon_json,
    import_blocklist,
    import_fediblockhole_csv,
    import_json,
    import_mastodon_csv,
    import_plain,
    resolve_obfuscated_entries,
)

VECTORS = Path(__file__).parent / "vectors" / "moderation"
HEADER = MASTODON_CSV_HEADER + "\n"
FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck))


def vector(name: str) -> str:
    return (VECTORS / name).read_bytes().decode("utf-8")


def decision(domain: str, severity: str = "suspend", **kwargs: object) -> DomainDecision:
    return DomainDecision(domain=domain, severity=Severity(severity), **kwargs)  # type: ignore[arg-type]


def without_private(result: ImportResult) -> list[DomainDecision]:
    return [replace(d, private_comment="") for d in result.rows]


#: What mastodon_domain_blocks.csv holds, written out by hand.
FIXTURE_DECISIONS = [
    decision("spam-farm.example", public_comment="Spam"),
    decision(
        "harassment.example.net", reject_media=True, reject_reports=True, public_comment="Harassment, hate speech"
    ),
    decision("lowmod.example.org", "silence", public_comment="Unmoderated; frequent spam waves"),
    decision("media-heavy.example", "noop", reject_media=True, public_comment='Large "adult" media without CW'),
    decision("xn--bcher-kva.example", "silence", reject_reports=True),
    decision(
        "crisis-baiting.example",
        obfuscate=True,
        public_comment="Targets support groups.\nSee moderation log #1423.",
    ),
    decision("nsfw.example.com", "silence", reject_media=True, public_comment="NSFW without content warnings"),
    decision("bot-swarm.example"),
    decision("pile-on.example", "silence", obfuscate=True, public_comment="Brigading of member threads — signalé 3×"),
]


# ============================================================================ domain names


@pytest.mark.parametrize(
    ("text", "normal"),
    [
        ("Example.COM", "example.com"),
        ("  example.com.  ", "example.com"),
        ("Bücher.Example", "xn--bcher-kva.example"),
        ("ＥＸＡＭＰＬＥ。com", "example.com"),
        ("straße.de", "xn--strae-oqa.de"),
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
        ("xn--i-7iq.ws", "xn--i-7iq.ws"),  # an emoji domain in punycode: IDNA 2008 refuses it, blocks must not
        ("localhost", "localhost"),
        ("192.0.2.1", "192.0.2.1"),
        ("a" * 63 + ".example", "a" * 63 + ".example"),
        (".".join(["a" * 63] * 3 + ["b" * 61]), ".".join(["a" * 63] * 3 + ["b" * 61])),  # 253 octets
    ],
)
def test_normalize_domain__normal_form(text: str, normal: str) -> None:
    assert normalize_domain(text) == normal


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("", "empty"),
        ("   ", "empty"),
        (".", "no labels"),
        ("exa mple.com", "whitespace"),
        ("*.example.com", "wildcard"),
        ("b*****.example", "obfuscated"),
        ("https://example.com", "URL"),
        ("example.com/about", "path"),
        ("example.com:8080", "port"),
        ("[::1]", "IPv6"),
        ("user@example.com", "user information"),
        ("a" * 64 + ".example", "label of 64 characters"),
        (".".join(["a" * 63] * 3 + ["b" * 62]), "254 characters"),
        ("exa_mple.com", "'_'"),
        ("exa!mple.com", "'!'"),
        ("example..com", "empty label"),
        ("example.com..", "empty label"),
        ("😀.example", "internationalised"),
        ("bad\x00.example", "control"),
    ],
)
def test_normalize_domain__refuses_with_the_reason(text: str, complaint: str) -> None:
    with pytest.raises(DomainError) as caught:
        normalize_domain(text)
    assert complaint in str(caught.value)


def test_domain_error_is_a_value_error() -> None:
    assert issubclass(DomainError, ValueError)


@FUZZ
@given(st.text())
def test_normalize_domain__fuzz_raises_only_domain_error(text: str) -> None:
    try:
        normal = normalize_domain(text)
    except DomainError:
        return
    assert normalize_domain(normal) == normal  # idempotent
    assert normal.isascii() and normal == normal.lower()


# ============================================================================== decisions


def test_severity__ordered_by_strictness_not_alphabet() -> None:
    assert Severity.SUSPEND > Severity.SILENCE > Severity.NOOP
    assert Severity.NOOP < Severity.SUSPEND
    assert sorted([Severity.SILENCE, Severity.SUSPEND, Severity.NOOP]) == [
        Severity.NOOP,
        Severity.SILENCE,
        Severity.SUSPEND,
    ]
    assert max(Severity) is Severity.SUSPEND
    assert Severity.SILENCE >= Severity.SILENCE and Severity.SILENCE <= Severity.SILENCE
    assert Severity("silence") is Severity.SILENCE and Severity.SILENCE == "silence"


def test_severity__refuses_comparison_with_plain_strings() -> None:
    with pytest.raises(TypeError):
        assert Severity.NOOP < "suspend"
    with pytest.raises(ValueError):
        Severity("limit")


def test_domain_decision__refuses_domains_not_in_normal_form() -> None:
    with pytest.raises(DomainError, match="normal form"):
        DomainDecision(domain="Example.com", severity=Severity.SUSPEND)
    with pytest.raises(DomainError, match="normal form"):
        DomainDecision(domain="bücher.example", severity=Severity.SUSPEND)
    with pytest.raises(DomainError):
        DomainDecision(domain="*.example", severity=Severity.SUSPEND)
    with pytest.raises(TypeError):
        DomainDecision(domain="example.com", severity="suspend")  # type: ignore[arg-type]
    assert DomainDecision(domain="example.com", severity=Severity.NOOP).private_comment == ""


def test_domain_decision__is_frozen() -> None:
    d = decision("example.com")
    with pytest.raises(AttributeError):
        d.severity = Severity.NOOP  # type: ignore[misc]


def _mastodon_stricter_than(a: DomainDecision, b: DomainDecision) -> bool:
    """A line-by-line transcription of Mastodon's DomainBlock#stricter_than?, as an oracle."""
    if a.severity == "suspend":
        return True
    if b.severity == "suspend" and a.severity in ("silence", "noop"):
        return False
    if b.severity == "silence" and a.severity == "noop":
        return False
    return (a.reject_media or not b.reject_media) and (a.reject_reports or not b.reject_reports)


ALL_SHAPES = [
    decision("x.example", severity, reject_media=media, reject_reports=reports)
    for severity, media, reports in itertools.product(("suspend", "silence", "noop"), (False, True), (False, True))
]


def test_stricter__matches_mastodon_for_every_pair() -> None:
    for a, b in itertools.product(ALL_SHAPES, repeat=2):
        assert stricter(a, b) is _mastodon_stricter_than(a, b), (a, b)


def test_stricter__examples() -> None:
    assert stricter(decision("x.example"), decision("x.example", "noop", reject_media=True, reject_reports=True))
    assert not stricter(decision("x.example", "silence"), decision("x.example"))
    assert not stricter(decision("x.example", "noop", reject_media=True), decision("x.example", "silence"))
    assert not stricter(decision("x.example", "silence"), decision("x.example", "noop", reject_media=True))
    assert stricter(
        decision("x.example", "silence", reject_media=True), decision("x.example", "noop", reject_media=True)
    )
    assert stricter(decision("x.example", "silence"), decision("x.example", "silence"))  # equal counts


def test_rule_for__most_specific_of_domain_and_parents() -> None:
    parent = decision("example.org", "silence")
    child = decision("bad.example.org")
    rules = {d.domain: d for d in (parent, child)}
    assert rule_for("example.org", rules) is parent
    assert rule_for("a.b.example.org", rules) is parent
    assert rule_for("bad.example.org", rules) is child
    assert rule_for("x.bad.example.org", rules) is child
    assert rule_for("EXAMPLE.org.", rules) is parent


def test_rule_for__no_match_on_partial_labels_or_other_domains() -> None:
    rules = {"example.org": decision("example.org")}
    assert rule_for("notexample.org", rules) is None
    assert rule_for("example.org.evil", rules) is None
    assert rule_for("org", rules) is None


def test_rule_for__idn_and_ip_addresses() -> None:
    rules = {"xn--bcher-kva.example": decision("xn--bcher-kva.example"), "2.0.1": decision("2.0.1")}
    assert rule_for("shop.Bücher.example", rules) is rules["xn--bcher-kva.example"]
    assert rule_for("192.2.0.1", rules) is None  # an IPv4 address has no parent domains
    with pytest.raises(DomainError):
        rule_for("https://example.org/", rules)


# ======================================================================= obfuscated names


@pytest.mark.parametrize(
    ("domain", "public"),
    [
        # Worked by hand from Mastodon's public_domain: n = size, v = n / 4, star i when v < i < n - v.
        ("mastodon.social", "mast****.***ial"),  # n=15, v=3: i 4..11
        ("bad.example", "bad.*****le"),  # n=11, v=2: i 3..8
        ("crisis-baiting.example", "crisis********.**ample"),  # n=22, v=5: i 6..16
        ("a.b", "a.*"),  # n=3, v=0: i 1..2
        ("ab", "a*"),
        ("x", "x"),
        ("Bücher.example", "xn--bc*******.**ample"),  # the stored punycode, n=21, v=5: i 6..15
    ],
)
def test_obfuscate_domain__mastodon_public_domain(domain: str, public: str) -> None:
    assert obfuscate_domain(domain) == public


@FUZZ
@given(st.from_regex(r"[a-z0-9]{1,20}(\.[a-z0-9]{1,12}){0,3}", fullmatch=True))
def test_obfuscate_domain__keeps_length_dots_and_edges(domain: str) -> None:
    public = obfuscate_domain(domain)
    assert len(public) == len(domain) and public[0] == domain[0]
    assert [i for i, ch in enumerate(public) if ch == "."] == [i for i, ch in enumerate(domain) if ch == "."]
    visible = len(domain) // 4
    assert public[len(domain) - visible :] == domain[len(domain) - visible :]
    assert resolve_obfuscated(public, domain_digest(domain), ["other.example", domain]) == domain or "*" not in public


def test_domain_digest__sha256_of_the_normalised_domain() -> None:
    assert domain_digest("example.com") == "a379a6f6eeafb9a55e378c118034e2751e682fab9f2d30ab13d2125586ce1947"
    assert domain_digest("EXAMPLE.com.") == domain_digest("example.com")
    assert domain_digest("bücher.example") == hashlib.sha256(b"xn--bcher-kva.example").hexdigest()
    with pytest.raises(DomainError):
        domain_digest("b****.example")


def test_is_obfuscated__patterns_not_wildcards_or_garbage() -> None:
    assert is_obfuscated("b*****.example")
    assert is_obfuscated("crisis********.**ample")
    assert is_obfuscated("a.*")
    assert not is_obfuscated("*.example.com")  # a wildcard: Mastodon never hides the first character
    assert not is_obfuscated("example.com")
    assert not is_obfuscated("b**/x.example")
    assert not is_obfuscated("b** .example")
    assert not is_obfuscated("bü**.example")


KNOWN_PEERS = ["good.example", "baddie.example", "biddie.example", "social.example"]


def test_resolve_obfuscated__digest_and_pattern_find_the_peer() -> None:  # §6.c test 5
    assert resolve_obfuscated("b*****.example", domain_digest("baddie.example"), KNOWN_PEERS) == "baddie.example"
    assert resolve_obfuscated("B*****.EXAMPLE", domain_digest("baddie.example").upper(), KNOWN_PEERS) == (
        "baddie.example"
    )


def test_resolve_obfuscated__no_match_without_both() -> None:
    digest = domain_digest("baddie.example")
    assert resolve_obfuscated("b*****.example", domain_digest("unknown.example"), KNOWN_PEERS) is None
    assert resolve_obfuscated("c*****.example", digest, KNOWN_PEERS) is None  # digest right, pattern wrong
    assert resolve_obfuscated("b****.example", digest, KNOWN_PEERS) is None  # one star short
    assert resolve_obfuscated("b*****.example", "not-a-digest", KNOWN_PEERS) is None
    assert resolve_obfuscated("*.example", digest, KNOWN_PEERS) is None
    assert resolve_obfuscated("b*****.example", digest, ["not a domain", "biddie.example"]) is None


# ================================================================= Mastodon CSV: export


def test_csv_export__header_booleans_and_no_private_comment() -> None:  # §6.c test 1
    decisions = [
        decision("a.example", private_comment="SECRET-NOTE reporter was @alice"),
        decision("b.example", "silence", reject_media=True, obfuscate=True, private_comment="SECRET-NOTE 2"),
    ]
    text = export_mastodon_csv(decisions)
    assert text.split("\n", 1)[0] == "#domain,#severity,#reject_media,#reject_reports,#public_comment,#obfuscate"
    assert text.splitlines()[1:] == ["a.example,suspend,false,false,,false", "b.example,silence,true,false,,true"]
    assert "SECRET-NOTE" not in text and "alice" not in text


def test_csv_export__empty_list_is_just_the_header() -> None:
    assert export_mastodon_csv([]) == HEADER


def test_csv_export__only_decisions_with_limitations() -> None:
    decisions = [
        decision("suspended.example"),
        decision("silenced.example", "silence"),
        decision("media.example", "noop", reject_media=True),
        decision("reports-only.example", "noop", reject_reports=True),
        decision("nothing.example", "noop", public_comment="watching"),
    ]
    text = export_mastodon_csv(decisions)
    assert [line.split(",")[0] for line in text.splitlines()[1:]] == [
        "suspended.example",
        "silenced.example",
        "media.example",
    ]


def test_csv_export__keeps_the_given_order() -> None:
    decisions = [decision("z.example"), decision("a.example", "silence"), decision("m.example")]
    assert [line.split(",")[0] for line in export_mastodon_csv(decisions).splitlines()[1:]] == [
        "z.example",
        "a.example",
        "m.example",
    ]


def test_csv_export__byte_exact_against_hand_checked_file() -> None:
    decisions = [
        decision("a.example", private_comment="private: never exported"),
        decision(
            "b.example", "silence", reject_media=True, reject_reports=True, obfuscate=True, public_comment="comma, here"
        ),
        decision("c.example", "noop", reject_media=True, public_comment='she said "no"'),
        decision("left-out.example", "noop", reject_reports=True, public_comment="not exported"),
        decision("xn--bcher-kva.example", public_comment="line one\nline two"),
        decision("e.example", "silence", public_comment="=HYPERLINK(x);#1 ünïcödé 'single'"),
        decision("noop.example", "noop"),
    ]
    expected = (VECTORS / "expected_export.csv").read_bytes()
    assert export_mastodon_csv(decisions).encode("utf-8") == expected


def test_csv_export__quotes_carriage_returns_like_ruby() -> None:
    text = export_mastodon_csv(
        [decision("a.example", public_comment="one\r\ntwo"), decision("b.example", public_comment="tab\there")]
    )
    assert text.splitlines(keepends=True)[1:] == [
        'a.example,suspend,false,false,"one\r\n',
        'two",false\n',
        "b.example,suspend,false,false,tab\there,false\n",
    ]


def test_csv_fixture__imports_as_written_and_exports_byte_for_byte() -> None:
    text = vector("mastodon_domain_blocks.csv")
    result = import_mastodon_csv(text)
    assert result.problems == [] and result.obfuscated == []
    assert result.rows == FIXTURE_DECISIONS
    assert export_mastodon_csv(result.rows).encode("utf-8") == (VECTORS / "mastodon_domain_blocks.csv").read_bytes()


# ============================================================= Mastodon CSV: round trip


COMMENTS = [
    "",
    "plain",
    "spam, harassment",
    'a "quoted" word',
    "line one\nline two",
    "crlf\r\nline",
    "ünïcödé ✓ 日本語",
]


def test_csv_round_trip__every_exported_combination() -> None:  # §6.c test 2
    decisions = [
        decision(
            f"d{i}.xn--bcher-kva.example" if i % 2 else f"d{i}.example",
            severity,
            reject_media=media,
            reject_reports=reports,
            obfuscate=obfuscate,
            public_comment=COMMENTS[i % len(COMMENTS)],
        )
        for i, (severity, media, reports, obfuscate) in enumerate(
            itertools.product(("suspend", "silence", "noop"), (False, True), (False, True), (False, True))
        )
    ]
    exported = [d for d in decisions if d.severity is not Severity.NOOP or d.reject_media]
    result = import_mastodon_csv(export_mastodon_csv(decisions))
    assert result.problems == []
    assert result.rows == exported
    assert len(exported) == 20  # 2 severities x 8 flag sets + noop with reject_media x 4


def test_csv_round_trip__idn_is_stored_as_punycode() -> None:
    result = import_mastodon_csv(HEADER + "Bücher.example,suspend,false,false,,false\n")
    assert [d.domain for d in result.rows] == ["xn--bcher-kva.example"]
    assert import_mastodon_csv(export_mastodon_csv(result.rows)).rows == result.rows


_ruby_ws = "\0\t\n\v\f\r "
_comment = (
    st.lists(
        st.characters(blacklist_categories=("Cs",)) | st.sampled_from([",", '"', "\n", "\r", "\r\n", " "]), max_size=40
    )
    .map("".join)
    .map(lambda text: text.strip(_ruby_ws))
)
_ascii_domain = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?(\.[a-z0-9]{1,10}){1,3}", fullmatch=True)
_idn_domain = st.builds(
    lambda label, tld: f"{label}.{tld}",
    st.text(alphabet="abcdéüßñøçåæ日本語кий", min_size=1, max_size=12),
    st.sampled_from(["example", "org", "рф"]),
)


def _normal_or_none(text: str) -> str | None:
    try:
        return normalize_domain(text)
    except DomainError:
        return None


_decision = st.builds(
    DomainDecision,
    domain=(_ascii_domain | _idn_domain).map(_normal_or_none).filter(lambda d: d is not None),
    severity=st.sampled_from(list(Severity)),
    reject_media=st.booleans(),
    reject_reports=st.booleans(),
    obfuscate=st.booleans(),
    public_comment=_comment,
    private_comment=_comment,
)


@FUZZ
@given(st.lists(_decision, max_size=12, unique_by=lambda d: d.domain))
def test_csv_round_trip__property(decisions: list[DomainDecision]) -> None:
    exported = [replace(d, private_comment="") for d in decisions if d.severity is not Severity.NOOP or d.reject_media]
    result = import_mastodon_csv(export_mastodon_csv(decisions))
    assert result.problems == []
    assert result.rows == exported


@FUZZ
@given(st.lists(_decision, max_size=12, unique_by=lambda d: d.domain))
def test_json_round_trip__property(decisions: list[DomainDecision]) -> None:
    assert import_json(export_mastodon_json(decisions, include_private_comment=True)).rows == decisions
    assert import_json(export_mastodon_json(decisions)).rows == [replace(d, private_comment="") for d in decisions]


# ================================================================= Mastodon CSV: import


def test_csv_import__only_domain_column_means_suspend() -> None:  # §6.c test 3
    result = import_mastodon_csv("#domain\nspam.example\nbücher.example\n")
    assert result.rows == [decision("spam.example"), decision("xn--bcher-kva.example")]


def test_csv_import__missing_severity_means_suspend() -> None:
    result = import_mastodon_csv("#domain,#reject_media,#public_comment\nspam.example,true,hi\n")
    assert result.rows == [decision("spam.example", reject_media=True, public_comment="hi")]


def test_csv_import__empty_severity_cell_means_suspend() -> None:
    result = import_mastodon_csv(HEADER + "spam.example,,false,false,,false\n")
    assert result.rows == [decision("spam.example")]


def test_csv_import__headerless_list_one_domain_per_line() -> None:
    result = import_mastodon_csv("spam.example\nBücher.example\r\nthird.example,ignored,cells\n")
    assert result.format == "mastodon_csv"
    assert [d.domain for d in result.rows] == ["spam.example", "xn--bcher-kva.example", "third.example"]
    assert all(d.severity is Severity.SUSPEND for d in result.rows)


def test_csv_import__blank_lines_ignored() -> None:
    result = import_mastodon_csv(
        "\n\n" + HEADER + "\na.example,silence,false,false,,false\n\n   \n,,,,,\nb.example\n\n"
    )
    assert [d.domain for d in result.rows] == ["a.example", "b.example"]
    assert result.problems == []


def test_csv_import__empty_file_is_empty() -> None:
    assert import_mastodon_csv("") == ImportResult("mastodon_csv")
    assert import_mastodon_csv(HEADER) == ImportResult("mastodon_csv")


def _many_rows(count: int, header: bool = True) -> str:
    rows = "".join(f"host{i}.example,suspend,false,false,,false\n" for i in range(count))
    return (HEADER if header else "") + rows


def test_csv_import__20000_rows_accepted() -> None:
    result = import_mastodon_csv(_many_rows(MAX_ROWS))  # its speed is the bench's (no timing here)
    assert len(result.rows) == 20_000 and result.problems == []


def test_csv_import__20001_rows_refused_with_the_limit_and_count() -> None:
    with pytest.raises(FormatError) as caught:
        import_mastodon_csv(_many_rows(MAX_ROWS + 1))
    assert "20001" in str(caught.value) and "20000" in str(caught.value)
    with pytest.raises(FormatError, match="20001"):
        import_mastodon_csv(_many_rows(MAX_ROWS + 1, header=False).replace(",suspend,false,false,,false", ""))


def test_csv_import__blank_lines_do_not_count_toward_the_limit() -> None:
    text = _many_rows(MAX_ROWS).replace("\n", "\n\n")
    assert len(import_mastodon_csv(text).rows) == MAX_ROWS


def test_csv_import__limit_is_adjustable() -> None:
    with pytest.raises(FormatError, match="the file has 3, the limit is 2"):
        import_mastodon_csv(_many_rows(3), max_rows=2)


def test_csv_import__booleans_case_insensitive_and_empty_false() -> None:
    result = import_mastodon_csv(
        HEADER + "a.example,silence,TRUE,True,,tRuE\nb.example,silence,FALSE,,,False\nc.example,silence,1,0,,\n"
    )
    assert result.rows == [
        decision("a.example", "silence", reject_media=True, reject_reports=True, obfuscate=True),
        decision("b.example", "silence"),
        decision("c.example", "silence", reject_media=True),
    ]


def test_csv_import__unknown_boolean_is_a_row_problem() -> None:
    result = import_mastodon_csv(
        HEADER + "a.example,silence,maybe,false,,false\nb.example,silence,false,false,,false\n"
    )
    assert [d.domain for d in result.rows] == ["b.example"]
    assert result.problems == [RowProblem(2, "#reject_media: 'maybe' is not true or false")]


def test_csv_import__unknown_severity_skips_only_that_row() -> None:
    result = import_mastodon_csv(
        HEADER + "a.example,limit,false,false,,false\nb.example,SILENCE,false,false,,false\nc.example,bogus\n"
    )
    assert result.rows == [decision("b.example", "silence")]
    assert [p.line for p in result.problems] == [2, 4]
    assert "unknown severity 'limit'" in result.problems[0].message


def test_csv_import__invalid_domains_are_row_problems() -> None:
    result = import_mastodon_csv(
        HEADER + "ok.example\nhttps://bad.example/\n*.wild.example\nexa_mple.com\n,silence\n" + "a" * 64 + ".example\n"
    )
    assert [d.domain for d in result.rows] == ["ok.example"]
    assert [p.line for p in result.problems] == [3, 4, 5, 6, 7]
    assert "URL" in result.problems[0].message and "wildcard" in result.problems[1].message
    assert "empty" in result.problems[3].message and "64" in result.problems[4].message


def test_csv_import__duplicate_domains_first_row_wins() -> None:
    result = import_mastodon_csv(
        HEADER
        + "dup.example,suspend,false,false,first,false\n"
        + "xn--bcher-kva.example,silence,false,false,,false\n"
        + "DUP.example.,silence,false,false,second,false\n"
        + "bücher.example,suspend,false,false,,false\n"
    )
    assert result.rows == [
        decision("dup.example", public_comment="first"),
        decision("xn--bcher-kva.example", "silence"),
    ]
    assert result.problems == [
        RowProblem(4, "domain: 'dup.example' already given on line 2; the first one is kept"),
        RowProblem(5, "domain: 'xn--bcher-kva.example' already given on line 3; the first one is kept"),
    ]


def test_csv_import__strips_domain_and_comment_like_mastodon() -> None:
    result = import_mastodon_csv(HEADER + '  a.example  ,suspend,false,false," keep inner  space ",false\n')
    assert result.rows == [decision("a.example", public_comment="keep inner  space")]


def test_csv_import__ignores_private_comment_and_unknown_columns() -> None:
    text = "#domain,#severity,#private_comment,#extra\na.example,silence,do not trust,x\n"
    assert import_mastodon_csv(text).rows == [decision("a.example", "silence")]


def test_csv_import__header_case_and_column_order() -> None:
    text = "#Domain,#obfuscate,#SEVERITY\na.example,true,noop\n"
    assert import_mastodon_csv(text).rows == [decision("a.example", "noop", obfuscate=True)]


def test_csv_import__short_rows_take_defaults_and_extra_cells_are_ignored() -> None:
    result = import_mastodon_csv(HEADER + "a.example,silence\nb.example,noop,true,false,,false,extra,cells\n")
    assert result.rows == [decision("a.example", "silence"), decision("b.example", "noop", reject_media=True)]


def test_csv_import__byte_order_mark_is_dropped() -> None:
    assert import_mastodon_csv("\ufeff" + HEADER + "a.example,silence\n").rows == [decision("a.example", "silence")]


def test_csv_import__header_must_begin_with_domain() -> None:
    with pytest.raises(FormatError, match="line 1: a Mastodon CSV header begins with #domain"):
        import_mastodon_csv("#severity,#domain\nsuspend,a.example\n")


def test_csv_import__refuses_fediblockhole_header() -> None:
    with pytest.raises(FormatError, match="FediBlockHole"):
        import_mastodon_csv("domain,severity\na.example,suspend\n")


def test_csv_import__malformed_csv_is_a_format_error_naming_the_line() -> None:
    with pytest.raises(FormatError, match="line 3: not valid CSV"):
        import_mastodon_csv(HEADER + 'a.example,suspend\nb.example,suspend,false,false,"open"x,false\n')
    with pytest.raises(FormatError, match="not valid CSV"):
        import_mastodon_csv(HEADER + 'a.example,suspend,false,false,"never closed\n')


def test_csv_import__obfuscated_rows_kept_apart() -> None:
    result = import_mastodon_csv(HEADER + "b*****.example,silence,true,false,why,true\nok.example\n")
    assert [d.domain for d in result.rows] == ["ok.example"]
    assert len(result.obfuscated) == 1
    entry = result.obfuscated[0]
    assert (entry.line, entry.pattern, entry.digest, entry.severity, entry.reject_media) == (
        2,
        "b*****.example",
        None,
        Severity.SILENCE,
        True,
    )


# ===================================================================== FediBlockHole CSV


def test_fediblockhole_csv__same_decisions_as_mastodon_csv() -> None:  # §6.c test 4
    result = import_fediblockhole_csv(vector("fediblockhole_blocklist.csv"))
    assert result.problems == [] and result.format == "fediblockhole_csv"
    assert without_private(result) == import_mastodon_csv(vector("mastodon_domain_blocks.csv")).rows


def test_fediblockhole_csv__reads_private_comment() -> None:
    result = import_fediblockhole_csv(vector("fediblockhole_blocklist.csv"))
    assert result.rows[0].private_comment == "seen in 4 reports"
    assert all(d.private_comment == "" for d in result.rows[1:])


def test_fediblockhole_csv__only_domain_required_and_means_suspend() -> None:
    assert import_fediblockhole_csv("domain\na.example\n").rows == [decision("a.example")]


def test_fediblockhole_csv__empty_severity_is_noop_as_in_fediblockhole() -> None:
    result = import_fediblockhole_csv("severity,domain,reject_media\n,a.example,yes\nsilence,b.example,no\n")
    assert result.rows == [decision("a.example", "noop", reject_media=True), decision("b.example", "silence")]


def test_fediblockhole_csv__hash_prefixed_names_tolerated() -> None:
    assert import_fediblockhole_csv("#severity,#domain\nsilence,a.example\n").rows == [decision("a.example", "silence")]


def test_fediblockhole_csv__requires_a_domain_column() -> None:
    with pytest.raises(FormatError, match="line 1: the header has no 'domain' column"):
        import_fediblockhole_csv("host,severity\na.example,suspend\n")


def test_fediblockhole_csv__row_problems_and_limit() -> None:
    result = import_fediblockhole_csv("domain,severity,obfuscate\na.example,harsh,False\nb.example,suspend,perhaps\n")
    assert result.rows == [] and [p.line for p in result.problems] == [2, 3]
    with pytest.raises(FormatError, match="limit is 1"):
        import_fediblockhole_csv("domain\na.example\nb.example\n", max_rows=1)


# ============================================================================= plain lists


def test_plain__one_domain_per_line_with_comments() -> None:
    result = import_plain(vector("plain_blocklist.txt"))
    assert result.rows == [
        decision("spam-farm.example"),
        decision("harassment.example.net"),
        decision("xn--bcher-kva.example"),
        decision("bot-swarm.example"),
    ]
    assert result.problems == []


def test_plain__problems_name_their_line() -> None:
    result = import_plain("ok.example\n\n*.wild.example\nfine.example\nhttp://x.example\n")
    assert [d.domain for d in result.rows] == ["ok.example", "fine.example"]
    assert [p.line for p in result.problems] == [3, 5]


def test_plain__limit() -> None:
    text = "".join(f"h{i}.example\n# comment\n\n" for i in range(MAX_ROWS + 1))
    with pytest.raises(FormatError, match="too many domains: the file has 20001, the limit is 20000"):
        import_plain(text)


# ==================================================================================== JSON


def test_json_admin_shape__same_decisions_as_mastodon_csv() -> None:  # §6.c test 4
    result = import_json(vector("mastodon_admin_domain_blocks.json"))
    assert result.problems == [] and result.obfuscated == []
    assert without_private(result) == import_mastodon_csv(vector("mastodon_domain_blocks.csv")).rows
    assert result.rows[0].private_comment == "seen in 4 reports"


def test_json_public_shape__comment_severity_and_obfuscated_entries() -> None:
    result = import_json(vector("mastodon_public_domain_blocks.json"))
    assert result.problems == []
    assert decision("lowmod.example.org", "silence", public_comment="Unmoderated; frequent spam waves") in result.rows
    assert "media-heavy.example" not in {d.domain for d in result.rows}  # noop is not public
    assert [(e.pattern, e.severity) for e in result.obfuscated] == [
        ("crisis********.**ample", Severity.SUSPEND),
        ("pile***.****ple", Severity.SILENCE),
    ]
    assert result.obfuscated[0].digest == domain_digest("crisis-baiting.example")


def test_json_gotosocial_shape__suspend_with_either_comment_field() -> None:
    result = import_json(vector("gotosocial_suspended_peers.json"))
    assert result.rows == [
        decision("spam-farm.example", public_comment="Spam"),
        decision("harassment.example.net", public_comment="Harassment, hate speech"),
        decision("bot-swarm.example"),
    ]


def test_json_import__digest_must_match_a_plain_domain() -> None:
    items = [
        {"domain": "a.example", "digest": domain_digest("b.example"), "severity": "suspend"},
        {"domain": "b.example", "digest": domain_digest("b.example"), "severity": "suspend"},
        {"domain": "c.example", "digest": "zz", "severity": "suspend"},
    ]
    result = import_json(json.dumps(items))
    assert [d.domain for d in result.rows] == ["b.example"]
    assert [p.line for p in result.problems] == [1, 3]
    assert "digest" in result.problems[0].message and "digest" in result.problems[1].message


def test_json_import__bad_items_are_problems_others_kept() -> None:
    items: list[object] = [
        "a.example",
        {"severity": "suspend"},
        {"domain": 7},
        {"domain": "d.example", "severity": "harsh"},
        {"domain": "e.example", "reject_media": "yes"},
        {"domain": "f.example", "public_comment": ["x"]},
        {"domain": "g.example", "severity": "noop", "reject_reports": True, "public_comment": None, "obfuscate": None},
    ]
    result = import_json(json.dumps(items))
    assert result.rows == [decision("g.example", "noop", reject_reports=True)]
    assert [p.line for p in result.problems] == [1, 2, 3, 4, 5, 6]
    assert all(p.message.startswith(f"item {p.line}: ") for p in result.problems)


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("", "not valid JSON"),
        ("{'domain': 1}", "not valid JSON"),
        ('{"domain": "a.example"}', "array"),
        ('"a.example"', "array"),
        ("[" * 100_000 + "]" * 100_000, "JSON"),
        ("[1" + "0" * 5000 + "]", "not valid JSON"),
    ],
)
def test_json_import__whole_file_problems(text: str, complaint: str) -> None:
    with pytest.raises(FormatError, match=complaint):
        import_json(text)


def test_json_import__limit() -> None:
    with pytest.raises(FormatError, match="too many entries: the file has 20001, the limit is 20000"):
        import_json(json.dumps([{"domain": f"h{i}.example"} for i in range(MAX_ROWS + 1)]))


def test_json_export__admin_shape_private_comment_only_on_request() -> None:
    d = decision("a.example", "noop", reject_reports=True, public_comment="pub", private_comment="secret")
    [item] = json.loads(export_mastodon_json([d]))
    assert item == {
        "domain": "a.example",
        "digest": domain_digest("a.example"),
        "severity": "noop",
        "reject_media": False,
        "reject_reports": True,
        "private_comment": None,
        "public_comment": "pub",
        "obfuscate": False,
    }
    assert json.loads(export_mastodon_json([d], include_private_comment=True))[0]["private_comment"] == "secret"


# =========================================================== detection and dispatch


@pytest.mark.parametrize(
    ("name", "content_type", "fmt"),
    [
        ("mastodon_domain_blocks.csv", "text/csv; charset=utf-8", "mastodon_csv"),
        ("mastodon_domain_blocks.csv", "text/plain", "mastodon_csv"),  # raw.githubusercontent.com serves CSV so
        ("fediblockhole_blocklist.csv", "text/csv", "fediblockhole_csv"),
        ("plain_blocklist.txt", "text/plain", "plain"),
        ("plain_blocklist.txt", None, "plain"),
        ("mastodon_admin_domain_blocks.json", "application/json; charset=utf-8", "json"),
        ("mastodon_public_domain_blocks.json", None, "json"),
        ("gotosocial_suspended_peers.json", "application/octet-stream", "json"),
    ],
)
def test_detect_format__fixtures(name: str, content_type: str | None, fmt: str) -> None:
    assert detect_format((VECTORS / name).read_bytes(), content_type) == fmt


def test_detect_format__sniffs_headers() -> None:
    assert detect_format(b"\xef\xbb\xbf#domain\na.example\n", None) == "mastodon_csv"
    assert detect_format(b'"domain","severity"\n', None) == "fediblockhole_csv"
    assert detect_format(b"domain\na.example\n", None) == "fediblockhole_csv"
    assert detect_format(b"#severity,#domain\nsuspend,a.example\n", None) == "fediblockhole_csv"
    assert detect_format(b"\n\na.example\nb.example\n", None) == "plain"
    assert detect_format(b"", None) == "plain"
    assert detect_format(b"a.example", "application/activity+json") == "json"


@pytest.mark.parametrize(
    ("data", "content_type", "complaint"),
    [
        (b"a.example\n", "text/html", "content type 'text/html'"),
        (b"a.example\n", "image/png", "content type"),
        (b"  <!doctype html><html>login</html>", None, "HTML"),
        (b"a.example\n\xff\xfe", None, "not UTF-8"),
    ],
)
def test_detect_format__refuses_what_is_not_a_list(data: bytes, content_type: str | None, complaint: str) -> None:
    with pytest.raises(FormatError, match=complaint):
        detect_format(data, content_type)


def test_decode_text__utf8_only() -> None:
    assert decode_text("\ufeffbücher".encode()) == "bücher"
    with pytest.raises(FormatError, match="byte 1"):
        decode_text(b"a\x80")


def test_import_blocklist__dispatches_on_detected_format() -> None:
    for name in ("mastodon_domain_blocks.csv", "fediblockhole_blocklist.csv", "mastodon_admin_domain_blocks.json"):
        result = import_blocklist((VECTORS / name).read_bytes(), None)
        assert without_private(result) == FIXTURE_DECISIONS, name
    assert import_blocklist((VECTORS / "plain_blocklist.txt").read_bytes(), "text/plain").format == "plain"
    with pytest.raises(FormatError):
        import_blocklist(b"a.example\n", "application/json")
    with pytest.raises(FormatError, match="limit is 1"):
        import_blocklist(b"a.example\nb.example\n", max_rows=1)


# ========================================================== resolving obfuscated entries


def test_resolve_obfuscated_entries__known_peer_resolves_else_reported() -> None:  # §6.c test 5
    items = [
        {"domain": "b*****.example", "digest": domain_digest("baddie.example"), "severity": "suspend", "comment": "c"},
        {"domain": "x****.example", "digest": domain_digest("xenon.example"), "severity": "silence"},
        {"domain": "ok.example", "severity": "silence"},
    ]
    parsed = import_json(json.dumps(items))
    assert len(parsed.obfuscated) == 2
    resolved = resolve_obfuscated_entries(parsed, KNOWN_PEERS)
    assert resolved.rows == [
        decision("ok.example", "silence"),
        decision("baddie.example", obfuscate=True, public_comment="c"),
    ]
    assert resolved.obfuscated == []
    assert resolved.problems == [
        RowProblem(2, "domain: obfuscated entry 'x****.example' skipped: no known peer matches its digest")
    ]


def test_resolve_obfuscated_entries__needs_digest_and_keeps_file_rows() -> None:
    parsed = import_mastodon_csv(HEADER + "b*****.example,silence\nbaddie.example,noop,true\n")
    resolved = resolve_obfuscated_entries(parsed, KNOWN_PEERS)
    assert resolved.rows == [decision("baddie.example", "noop", reject_media=True)]
    assert resolved.problems == [RowProblem(2, "domain: obfuscated entry 'b*****.example' skipped: no digest to match")]
    items = [
        {"domain": "baddie.example", "severity": "noop"},
        {"domain": "b*****.example", "digest": domain_digest("baddie.example"), "severity": "suspend"},
    ]
    resolved = resolve_obfuscated_entries(import_json(json.dumps(items)), KNOWN_PEERS)
    assert resolved.rows == [decision("baddie.example", "noop")]
    assert "already in the list" in resolved.problems[0].message


# ======================================================================================= fuzz

_csvish = st.text(alphabet=st.sampled_from(list(',"\r\n #*.:/abcxé-_01\t\x00\ufeff')) | st.characters(), max_size=300)


@FUZZ
@given(_csvish)
def test_fuzz__csv_and_plain_importers_raise_only_format_error(text: str) -> None:
    for importer in (import_mastodon_csv, import_fediblockhole_csv, import_plain):
        try:
            result = importer(text)
        except FormatError:
            continue
        assert all(isinstance(d, DomainDecision) for d in result.rows)
        assert len({d.domain for d in result.rows}) == len(result.rows)


@FUZZ
@given(st.text(max_size=200) | st.builds(lambda s: '[{"domain": ' + s + "}]", st.text(max_size=60)))
def test_fuzz__json_importer_raises_only_format_error(text: str) -> None:
    try:
        import_json(text)
    except FormatError:
        pass


_json_value = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
_json_item = st.fixed_dictionaries(
    {},
    optional={
        key: _json_value | st.sampled_from(["a.example", "b*****.example", "suspend", "noop", "", "0" * 64])
        for key in ("domain", "severity", "digest", "comment", "public_comment", "reject_media", "obfuscate")
    },
)


@FUZZ
@given(st.lists(_json_item | _json_value, max_size=6))
def test_fuzz__json_items_of_any_shape(items: list[object]) -> None:
    result = import_json(json.dumps(items))
    assert len(result.rows) + len(result.problems) + len(result.obfuscated) == len(items)


@FUZZ
@given(st.binary(max_size=300), st.sampled_from([None, "text/csv", "application/json", "text/html", "text/plain"]))
def test_fuzz__fetched_bytes_raise_only_format_error(data: bytes, content_type: str | None) -> None:
    try:
        import_blocklist(data, content_type)
    except FormatError:
        pass


@settings(max_examples=300, deadline=None)
@given(text=st.from_regex(r"[a-z0-9-]{1,63}(\.[a-z0-9-]{1,63}){0,3}", fullmatch=True) | st.text(max_size=80))
def test_normalize_domain__fast_path_agrees_with_the_full_rules(text: str) -> None:
    """The already-normal fast path returns exactly what the full rules would."""
    import moderation.decisions as decisions

    try:
        fast = decisions.normalize_domain(text)
    except decisions.DomainError:
        fast = None
    original = decisions._NORMAL
    decisions._NORMAL = re.compile(r"(?!)")  # never matches: the full rules only
    try:
        try:
            full = decisions.normalize_domain(text)
        except decisions.DomainError:
            full = None
    finally:
        decisions._NORMAL = original
    assert fast == full
