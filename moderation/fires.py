"""FIRES snapshots in, FIRES's three-file Mastodon CSV set out (research/moderation.md §2.6, §6.b
"Interop", §6.c test 6).

How it works. :func:`import_fires_snapshot` reads a FIRES snapshot (a ``Collection`` of the
latest change per entity, :func:`moderation.feed.parse_snapshot`), parses each change, keeps the
newest per domain, and turns it into what a Mastodon-style server would do:

================================  ==========================================================
FIRES change                      result
================================  ==========================================================
Recommendation ``drop``/``reject``  ``Decision(severity="suspend")`` (Mastodon has no reject)
Recommendation ``filter``          ``silence`` when the filters hold :data:`SILENCE_FILTERS`
                                   or are empty; otherwise ``noop``; ``reject-media`` sets
                                   ``reject_media``, ``reject-reports``/``ignore-reports`` set
                                   ``reject_reports``
Recommendation ``accept``          ``Decision(allow=True)`` (an allow-list entry)
Retraction, Tombstone              ``Removal``
expired entry (``now`` given)      ``Removal`` (inert: no opinion any more)
Advisory                           nothing (an early warning, not a decision)
actor entities                     nothing (this bridge is for domains)
================================  ==========================================================

A ``mastodon`` hint on our own entries wins over the table (it is the publisher's exact CSV
row). An empty filter list meaning ``silence`` departs from §6.b's table on purpose: the FIRES
reference server imports a Mastodon ``silence`` as ``filter`` with no filters
(``import_file_service.ts``), so that is what an empty list most often means, and reading it as
``noop`` would drop the limit.

:func:`export_fires_csv_set` writes the FIRES reference server's export set
(``export_dataset_service.ts``): ``domain-denylist.csv`` with Mastodon's exact header
``#domain,#severity,#reject_media,#reject_reports,#public_comment,#obfuscate`` and booleans
``true``/``false``; ``domain-allowlist.csv`` with the header ``#domain``; and
``domain-retractions.csv`` with the header ``domain,comment``. Rows are sorted by domain, lines end
in ``\\n``, fields are quoted only when CSV needs it (Mastodon's Ruby CSV does the same). All
three files are always present, header-only when empty (FIRES leaves empty ones out of its zip).
More than :data:`MAX_CSV_ROWS` rows in one file is refused, Mastodon's import limit.

:func:`policy_for_decision` is the other direction of §6.b "Interop" (Mastodon → feed), for
publishing local decisions as Recommendations.

Everything raises :class:`moderation.feed.FeedError`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, TypeAlias

from moderation.feed import (
    SILENCE_FILTERS,
    Entry,
    FeedError,
    Policy,
    normalize_domain,
    parse_entry,
    parse_snapshot,
)
from moderation.formats import MASTODON_CSV_HEADER

__all__ = [
    "DENYLIST_HEADER",
    "MAX_CSV_ROWS",
    "Decision",
    "Removal",
    "decisions_from_entries",
    "export_fires_csv_set",
    "import_fires_snapshot",
    "policy_for_decision",
]

Severity: TypeAlias = Literal["suspend", "silence", "noop"]

DENYLIST_HEADER = tuple(MASTODON_CSV_HEADER.split(","))  # the deny list is Mastodon's CSV
ALLOWLIST_HEADER = ("#domain",)
RETRACTIONS_HEADER = ("domain", "comment")
DENYLIST_FILE = "domain-denylist.csv"
ALLOWLIST_FILE = "domain-allowlist.csv"
RETRACTIONS_FILE = "domain-retractions.csv"
MAX_CSV_ROWS = 20_000


@dataclass(frozen=True, slots=True)
class Decision:
    """A domain decision as Mastodon holds it; ``allow`` marks an allow-list entry instead."""

    domain: str
    severity: Severity
    reject_media: bool = False
    reject_reports: bool = False
    allow: bool = False
    public_comment: str = ""
    obfuscate: bool = False

    def __post_init__(self) -> None:
        if normalize_domain(self.domain, name="domain") != self.domain:
            raise FeedError("domain: not in normal form (see moderation.feed.normalize_domain)")
        if self.severity not in ("suspend", "silence", "noop"):
            raise FeedError("severity: must be suspend, silence or noop")


@dataclass(frozen=True, slots=True)
class Removal:
    """The source withdrew its decision about ``domain`` (Retraction, Tombstone or expiry)."""

    domain: str
    comment: str = ""

    def __post_init__(self) -> None:
        if normalize_domain(self.domain, name="domain") != self.domain:
            raise FeedError("domain: not in normal form (see moderation.feed.normalize_domain)")


def _public_text(texts: Mapping[str, str], locale: str) -> str:
    for tag in (locale, "und", *sorted(texts)):
        if tag in texts:
            return texts[tag]
    return ""


def _decision_for(entry: Entry, locale: str) -> Decision:
    comment = _public_text(entry.reason, locale)
    if entry.mastodon is not None:
        hint = entry.mastodon
        return Decision(
            domain=entry.entity_key,
            severity=hint.severity,
            reject_media=hint.reject_media,
            reject_reports=hint.reject_reports,
            public_comment=comment,
            obfuscate=hint.obfuscate,
        )
    filters = set(entry.filters)
    reject_media = "reject-media" in filters
    reject_reports = bool(filters & {"reject-reports", "ignore-reports"})
    if entry.policy == "accept":
        return Decision(domain=entry.entity_key, severity="noop", allow=True, public_comment=comment)
    if entry.policy in ("drop", "reject"):
        severity: Severity = "suspend"
    elif not filters or SILENCE_FILTERS <= filters:
        severity = "silence"
    else:
        severity = "noop"
    return Decision(
        domain=entry.entity_key,
        severity=severity,
        reject_media=reject_media,
        reject_reports=reject_reports,
        public_comment=comment,
    )


def decisions_from_entries(
    entries: Iterable[Entry], *, now: datetime | None = None, locale: str = "en"
) -> list[Decision | Removal]:
    """The newest entry per domain, mapped as the module table says; sorted by domain.

    ``now``: when given, an expired newest entry becomes a ``Removal``. ``locale`` picks the
    reason or comment text that becomes the public comment.
    """
    newest: dict[str, Entry] = {}
    for entry in entries:
        if entry.entity_kind != "domain":
            continue
        current = newest.get(entry.entity_key)
        if current is None or entry.change_id > current.change_id:
            newest[entry.entity_key] = entry
    results: list[Decision | Removal] = []
    for domain in sorted(newest):
        entry = newest[domain]
        if entry.type in ("Retraction", "Tombstone"):
            results.append(Removal(domain=domain, comment=_public_text(entry.comment, locale)))
        elif now is not None and not entry.active(now):
            results.append(Removal(domain=domain))
        elif entry.type == "Recommendation":
            results.append(_decision_for(entry, locale))
    return results


def import_fires_snapshot(doc: object, *, now: datetime | None = None, locale: str = "en") -> list[Decision | Removal]:
    """Map a FIRES snapshot document to domain decisions and removals (see the module table).

    One malformed change fails the whole import with ``FeedError`` naming it
    (``orderedItems[3].entityKey: ...``), so an import preview never shows half a list.
    """
    snapshot = parse_snapshot(doc)
    entries: list[Entry] = []
    for index, item in enumerate(snapshot.entry_documents):
        try:
            entries.append(parse_entry(item))
        except FeedError as exc:
            raise FeedError(f"orderedItems[{index}].{exc}") from None
    return decisions_from_entries(entries, now=now, locale=locale)


def _csv(header: Sequence[str], rows: Sequence[Sequence[str]], name: str) -> str:
    if len(rows) > MAX_CSV_ROWS:
        raise FeedError(f"{name}: {len(rows)} rows, more than the {MAX_CSV_ROWS} a Mastodon import accepts")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def _bool(value: bool) -> str:
    return "true" if value else "false"


def export_fires_csv_set(items: Iterable[Decision | Removal]) -> dict[str, str]:
    """The FIRES export set: ``domain-denylist.csv``, ``domain-allowlist.csv`` and
    ``domain-retractions.csv`` (file name -> text). One row per domain; a domain given twice
    is refused, since the files could not say which one holds."""
    deny: list[list[str]] = []
    allow: list[list[str]] = []
    retract: list[list[str]] = []
    seen: set[str] = set()
    for item in sorted(items, key=lambda item: item.domain):
        if item.domain in seen:
            raise FeedError(f"domain: {item.domain} appears twice")
        seen.add(item.domain)
        if isinstance(item, Removal):
            retract.append([item.domain, item.comment])
        elif item.allow:
            allow.append([item.domain])
        else:
            deny.append(
                [
                    item.domain,
                    item.severity,
                    _bool(item.reject_media),
                    _bool(item.reject_reports),
                    item.public_comment,
                    _bool(item.obfuscate),
                ]
            )
    return {
        DENYLIST_FILE: _csv(DENYLIST_HEADER, deny, DENYLIST_FILE),
        ALLOWLIST_FILE: _csv(ALLOWLIST_HEADER, allow, ALLOWLIST_FILE),
        RETRACTIONS_FILE: _csv(RETRACTIONS_HEADER, retract, RETRACTIONS_FILE),
    }


def policy_for_decision(decision: Decision) -> tuple[Policy, tuple[str, ...]] | None:
    """§6.b "Mastodon CSV → MDF": the ``(recommendedPolicy, recommendedFilters)`` for a
    decision, or ``None`` for a bare ``noop`` (no opinion). ``suspend`` -> ``drop``;
    ``silence`` -> ``filter`` + the silence set; ``noop`` with flags -> ``filter`` + the flags;
    an allow -> ``accept``."""
    if decision.allow:
        return ("accept", ())
    if decision.severity == "suspend":
        return ("drop", ())
    filters: list[str] = sorted(SILENCE_FILTERS) if decision.severity == "silence" else []
    if decision.reject_media:
        filters.append("reject-media")
    if decision.reject_reports:
        filters.append("reject-reports")
    if not filters:
        return None
    return ("filter", tuple(filters))
