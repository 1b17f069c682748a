"""Block-list file formats: Mastodon CSV and JSON, FediBlockHole CSV, GoToSocial JSON, plain lists.

How it works. Every importer takes text and returns an :class:`ImportResult`: the decisions it
could read (:class:`~moderation.decisions.DomainDecision`, domains normalised to punycode), one
:class:`RowProblem` per row it had to skip (the other rows are kept), and the obfuscated
entries (``b*****.example``) that only a caller who knows its peers can resolve
(:func:`resolve_obfuscated_entries`). A problem with the whole file (not CSV, not JSON, no
``domain`` column, too many rows) raises :class:`FormatError` instead, whose message names the
line or the limit. Nothing here raises anything else for any input text.
:func:`detect_format` and :func:`import_blocklist` pick the importer for a fetched document.

Mastodon CSV (research/moderation.md §1.2; read in mastodon/mastodon:
``app/controllers/admin/export_domain_blocks_controller.rb`` at 2dd35bbf5d5e and
``app/models/admin/import.rb``, the version with ``csv_rows``):

* Export: the header ``#domain,#severity,#reject_media,#reject_reports,#public_comment,#obfuscate``
  then one row per decision in Mastodon's ``with_limitations`` scope (``silence`` or ``suspend``,
  or ``reject_media``; a ``noop`` with only ``reject_reports`` is not exported), in the order
  given: Mastodon orders by id, so callers pass decisions in creation order. The private comment
  is never written. Fields are written as Ruby's ``CSV.generate`` writes them (ruby/csv
  ``lib/csv/writer.rb``): quoted only when they contain ``,``, ``"``, CR or LF, quotes doubled,
  ``"\\n"`` after every row, booleans ``true``/``false``, UTF-8 without a BOM. An empty public
  comment is written as an empty field (Ruby writes ``nil`` so; it would write ``""`` for an
  empty string, a distinction we do not store and no importer makes).
* Import: the first non-blank row is a header when its first cell is ``#domain``; otherwise the
  file is a headerless list whose rows' first cells are domains (Mastodon re-reads it with the
  single header ``#domain``). Header names are matched case-insensitively after stripping. A
  missing ``#severity`` column, or an empty cell, means ``suspend``. Booleans: ``true``/``false``
  (also ``t``/``f``, ``1``/``0``, ``yes``/``no``, ``on``/``off``), any case; empty means false.
  ``#domain`` and ``#public_comment`` are stripped of ASCII whitespace and NUL, as Ruby's
  ``strip`` does. ``private_comment`` is never read from a Mastodon CSV (Mastodon replaces it
  with a note naming the file; the caller writes its own). At most :data:`MAX_ROWS` (Mastodon's
  ``ROWS_PROCESSING_LIMIT``) non-blank data rows.

Where we differ from Mastodon, on purpose: an unknown boolean (``maybe``) is a row problem,
where Rails would read it as true; a header that starts with ``#`` but not ``#domain``, or
FediBlockHole's ``domain`` header, is a :class:`FormatError` instead of a row of garbage
domains; rows whose cells are all blank are ignored and not counted; a byte-order mark is
dropped; a domain given twice keeps its first row and reports the others (Mastodon's import
does the same in effect: the second save fails its uniqueness check). Parsing is Python's
``csv`` module in strict mode, so a stray quote inside an unquoted field is kept as text where
Ruby would refuse the file.

FediBlockHole CSV (``eigenmagic/fediblockhole`` ``blocklists.py`` at ba400847): a header of
unprefixed names (``#`` prefixes are tolerated), in any order; only ``domain`` is required.
``private_comment`` is read. As in FediBlockHole, a missing ``severity`` column means
``suspend`` and an empty cell means ``noop``; booleans as above (FediBlockHole writes
``True``/``False``). Duplicates: first row kept, as for Mastodon (FediBlockHole keeps the last).

Plain lists (RapidBlock, GoToSocial ``text/plain``): one domain per line, ``#`` starts a comment,
blank lines ignored, every domain ``suspend``. A line with commas keeps its first cell
(Mastodon's headerless rule).

JSON: an array of objects, each read on its own: Mastodon's public
``/api/v1/instance/domain_blocks`` (``domain``, ``digest``, ``severity``, ``comment``), its admin
``/api/v1/admin/domain_blocks`` (``severity``, the flags, ``public_comment``,
``private_comment``, ``obfuscate``, ``digest``) and GoToSocial's
``/api/v1/instance/peers?filter=suspended`` (``domain``, ``suspended_at``, ``public_comment``
or ``comment``): no ``severity`` means ``suspend``. A non-obfuscated entry whose ``digest``
is not the SHA-256 of its domain is a row problem (the list is corrupt or lying). JSON
problems name the 1-based item number in :attr:`RowProblem.line`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from moderation.decisions import (
    DomainDecision,
    DomainError,
    Severity,
    domain_digest,
    is_obfuscated,
    normalize_domain,
    resolve_obfuscated,
)

__all__ = [
    "MASTODON_CSV_HEADER",
    "MAX_ROWS",
    "BlocklistFormat",
    "FormatError",
    "ImportResult",
    "ObfuscatedEntry",
    "RowProblem",
    "decode_text",
    "detect_format",
    "export_mastodon_csv",
    "export_mastodon_json",
    "import_blocklist",
    "import_fediblockhole_csv",
    "import_json",
    "import_mastodon_csv",
    "import_plain",
    "resolve_obfuscated_entries",
]

#: Mastodon's ``ROWS_PROCESSING_LIMIT``: data rows (or JSON items) one import may hold.
MAX_ROWS = 20_000

#: The header of Mastodon's domain-block export, byte for byte.
MASTODON_CSV_HEADER = "#domain,#severity,#reject_media,#reject_reports,#public_comment,#obfuscate"

BlocklistFormat = Literal["mastodon_csv", "fediblockhole_csv", "plain", "json"]


class FormatError(ValueError):
    """A whole document cannot be imported (not CSV or JSON, no domain column, too many rows)."""


@dataclass(frozen=True, slots=True)
class RowProblem:
    """A row that was skipped: its 1-based line (CSV, plain) or item number (JSON), and why."""

    line: int
    message: str


@dataclass(frozen=True, slots=True)
class ObfuscatedEntry:
    """An entry whose domain is partly hidden (``b*****.example``); ``digest`` when the source gave one."""

    line: int
    pattern: str
    digest: str | None
    severity: Severity
    reject_media: bool = False
    reject_reports: bool = False
    public_comment: str = ""
    private_comment: str = ""

    def resolved(self, domain: str) -> DomainDecision:
        """The decision for the peer this entry turned out to be; it stays obfuscated when shown."""
        return DomainDecision(
            domain=normalize_domain(domain),
            severity=self.severity,
            reject_media=self.reject_media,
            reject_reports=self.reject_reports,
            obfuscate=True,
            public_comment=self.public_comment,
            private_comment=self.private_comment,
        )


@dataclass(frozen=True, slots=True)
class ImportResult:
    """What an import produced: decisions in file order, skipped rows, unresolved obfuscated entries."""

    format: BlocklistFormat
    rows: list[DomainDecision] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)
    obfuscated: list[ObfuscatedEntry] = field(default_factory=list)


# ------------------------------------------------------------------------------ shared parts

# Ruby's String#strip: NUL, HT, LF, VT, FF, CR, space.
_RUBY_WHITESPACE = "\0\t\n\v\f\r "

_TRUE = frozenset({"true", "t", "1", "yes", "y", "on"})
_FALSE = frozenset({"false", "f", "0", "no", "n", "off", ""})


class _RowError(Exception):
    """One row cannot be read; becomes a RowProblem."""


def _parse_bool(value: str, name: str) -> bool:
    text = value.strip(_RUBY_WHITESPACE).lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise _RowError(f"{name}: {value!r} is not true or false")


def _parse_severity(value: str, name: str) -> Severity:
    text = value.strip(_RUBY_WHITESPACE).lower()
    try:
        return Severity(text)
    except ValueError:
        raise _RowError(f"{name}: unknown severity {value!r} (expected suspend, silence or noop)") from None


def _check_row_count(count: int, what: str, max_rows: int) -> None:
    if count > max_rows:
        raise FormatError(
            f"too many {what}: the file has {count}, the limit is {max_rows} "
            "(Mastodon's import limit); split it into smaller files"
        )


class _Collector:
    """Accumulates decisions, keeping the first row of each domain and reporting later ones."""

    def __init__(self) -> None:
        self.rows: dict[str, tuple[int, DomainDecision]] = {}
        self.problems: list[RowProblem] = []
        self.obfuscated: list[ObfuscatedEntry] = []

    def problem(self, line: int, message: str) -> None:
        self.problems.append(RowProblem(line, message))

    def add(
        self,
        line: int,
        domain_text: str,
        *,
        severity: Severity,
        reject_media: bool = False,
        reject_reports: bool = False,
        obfuscate: bool = False,
        public_comment: str = "",
        private_comment: str = "",
        digest: str | None = None,
    ) -> None:
        if not domain_text:
            self.problem(line, "domain: empty")
            return
        if is_obfuscated(domain_text):
            self.obfuscated.append(
                ObfuscatedEntry(
                    line=line,
                    pattern=domain_text.strip().lower(),
                    digest=digest.strip().lower() if digest else None,
                    severity=severity,
                    reject_media=reject_media,
                    reject_reports=reject_reports,
                    public_comment=public_comment,
                    private_comment=private_comment,
                )
            )
            return
        try:
            domain = normalize_domain(domain_text)
        except DomainError as exc:
            self.problem(line, str(exc))
            return
        if digest is not None and digest.strip().lower() != hashlib.sha256(domain.encode("ascii")).hexdigest():
            self.problem(line, f"digest: does not match the SHA-256 of {domain!r}; entry skipped")
            return
        if domain in self.rows:
            first = self.rows[domain][0]
            self.problem(line, f"domain: {domain!r} already given on line {first}; the first one is kept")
            return
        self.rows[domain] = (
            line,
            DomainDecision(
                domain=domain,
                severity=severity,
                reject_media=reject_media,
                reject_reports=reject_reports,
                obfuscate=obfuscate,
                public_comment=public_comment,
                private_comment=private_comment,
            ),
        )

    def result(self, fmt: BlocklistFormat) -> ImportResult:
        return ImportResult(
            format=fmt,
            rows=[decision for _, decision in self.rows.values()],
            problems=self.problems,
            obfuscated=self.obfuscated,
        )


def _without_bom(text: str) -> str:
    return text[1:] if text.startswith("\ufeff") else text


def _csv_records(text: str) -> list[tuple[int, list[str]]]:
    """Non-blank CSV records with the line each starts on; a CSV syntax error is a FormatError."""
    reader = csv.reader(io.StringIO(_without_bom(text), newline=""), strict=True)
    records: list[tuple[int, list[str]]] = []
    previous_end = 0
    try:
        for cells in reader:
            start = previous_end + 1
            previous_end = reader.line_num
            if any(cell.strip(_RUBY_WHITESPACE) for cell in cells):
                records.append((start, cells))
    except csv.Error as exc:
        raise FormatError(f"line {reader.line_num}: not valid CSV: {exc}") from None
    return records


def _cell(cells: Sequence[str], index: int | None) -> str | None:
    """The cell at ``index``; ``None`` when the column is absent, ``""`` when the row is short."""
    if index is None:
        return None
    return cells[index] if index < len(cells) else ""


def _flags(cells: Sequence[str], columns: Mapping[str, int], prefix: str) -> tuple[bool, bool, bool]:
    """``reject_media``, ``reject_reports`` and ``obfuscate`` of a CSV row (absent or empty: false)."""
    values = []
    for name in ("reject_media", "reject_reports", "obfuscate"):
        column = prefix + name
        values.append(_parse_bool(_cell(cells, columns.get(column)) or "", column))
    return values[0], values[1], values[2]


def _looks_like_fbh_header(cells: Sequence[str]) -> bool:
    """A header row of plain words (``domain,severity,...``, ``#`` prefixes tolerated) naming ``domain``."""
    names = [_header_cell(cell).lstrip("#") for cell in cells]
    return "domain" in names and all(re.fullmatch(r"[a-z_]*", name) for name in names)


def _column_index(header: Sequence[str], names: Iterable[str]) -> dict[str, int]:
    index: dict[str, int] = {}
    for position, name in enumerate(header):
        if name in names and name not in index:
            index[name] = position
    return index


# ------------------------------------------------------------------------------ Mastodon CSV


def _ruby_csv_field(value: str) -> str:
    if value == "" or any(ch in value for ch in ',"\r\n'):
        return '"' + value.replace('"', '""') + '"'
    return value


def _ruby_bool(value: bool) -> str:
    return "true" if value else "false"


def export_mastodon_csv(decisions: Iterable[DomainDecision]) -> str:
    """Mastodon's ``domain_blocks.csv`` for ``decisions`` (pass them in creation order).

    Only decisions with limitations are written (``silence``, ``suspend`` or ``reject_media``),
    private comments never; the result encoded as UTF-8 is byte-identical to Mastodon's export of
    the same blocks.
    """
    lines = [MASTODON_CSV_HEADER]
    for decision in decisions:
        if not decision.has_limitations:
            continue
        comment = _ruby_csv_field(decision.public_comment) if decision.public_comment else ""
        lines.append(
            ",".join(
                (
                    _ruby_csv_field(decision.domain),
                    decision.severity.value,
                    _ruby_bool(decision.reject_media),
                    _ruby_bool(decision.reject_reports),
                    comment,
                    _ruby_bool(decision.obfuscate),
                )
            )
        )
    return "\n".join(lines) + "\n"


_MASTODON_COLUMNS = tuple(MASTODON_CSV_HEADER.split(","))


def _header_cell(cell: str) -> str:
    return cell.strip(_RUBY_WHITESPACE).lower()


def import_mastodon_csv(text: str, *, max_rows: int = MAX_ROWS) -> ImportResult:
    """Read a Mastodon domain-block CSV (with the ``#domain`` header, or a headerless list).

    Raises :class:`FormatError` for text that is not CSV, a header that is not Mastodon's, or
    more than ``max_rows`` data rows; rows that cannot be read become problems.
    """
    records = _csv_records(text)
    collector = _Collector()
    if not records:
        return collector.result("mastodon_csv")
    first_line, first_cells = records[0]
    first = _header_cell(first_cells[0])
    if first != "#domain":
        if first.startswith("#"):
            raise FormatError(
                f"line {first_line}: a Mastodon CSV header begins with #domain, this one begins with "
                f"{first_cells[0]!r} (a list with '#' comments is a plain list)"
            )
        if _looks_like_fbh_header(first_cells):
            raise FormatError(
                f"line {first_line}: this header has no '#' prefixes: it is a FediBlockHole CSV, not a Mastodon one"
            )
        _check_row_count(len(records), "rows", max_rows)
        for line, cells in records:
            collector.add(line, cells[0].strip(_RUBY_WHITESPACE), severity=Severity.SUSPEND)
        return collector.result("mastodon_csv")

    columns = _column_index([_header_cell(cell) for cell in first_cells], _MASTODON_COLUMNS)
    data = records[1:]
    _check_row_count(len(data), "rows", max_rows)
    for line, cells in data:
        try:
            severity_cell = _cell(cells, columns.get("#severity"))
            severity = _parse_severity(severity_cell, "#severity") if severity_cell else Severity.SUSPEND
            reject_media, reject_reports, obfuscate = _flags(cells, columns, "#")
        except _RowError as exc:
            collector.problem(line, str(exc))
            continue
        collector.add(
            line,
            (_cell(cells, columns["#domain"]) or "").strip(_RUBY_WHITESPACE),
            severity=severity,
            reject_media=reject_media,
            reject_reports=reject_reports,
            obfuscate=obfuscate,
            public_comment=(_cell(cells, columns.get("#public_comment")) or "").strip(_RUBY_WHITESPACE),
        )
    return collector.result("mastodon_csv")


# ------------------------------------------------------------------------- FediBlockHole CSV

_FBH_COLUMNS = (
    "domain",
    "severity",
    "reject_media",
    "reject_reports",
    "public_comment",
    "private_comment",
    "obfuscate",
)


def import_fediblockhole_csv(text: str, *, max_rows: int = MAX_ROWS) -> ImportResult:
    """Read a FediBlockHole CSV (``domain,severity,...`` header without ``#``, any column order).

    Raises :class:`FormatError` for text that is not CSV, a header without a ``domain`` column,
    or more than ``max_rows`` data rows; rows that cannot be read become problems.
    """
    records = _csv_records(text)
    collector = _Collector()
    if not records:
        return collector.result("fediblockhole_csv")
    header_line, header = records[0]
    columns = _column_index([_header_cell(cell).lstrip("#") for cell in header], _FBH_COLUMNS)
    if "domain" not in columns:
        raise FormatError(f"line {header_line}: the header has no 'domain' column")
    data = records[1:]
    _check_row_count(len(data), "rows", max_rows)
    for line, cells in data:
        try:
            severity_cell = _cell(cells, columns.get("severity"))
            if severity_cell is None:
                severity = Severity.SUSPEND
            elif not severity_cell.strip(_RUBY_WHITESPACE):
                severity = Severity.NOOP
            else:
                severity = _parse_severity(severity_cell, "severity")
            reject_media, reject_reports, obfuscate = _flags(cells, columns, "")
        except _RowError as exc:
            collector.problem(line, str(exc))
            continue
        collector.add(
            line,
            (_cell(cells, columns["domain"]) or "").strip(_RUBY_WHITESPACE),
            severity=severity,
            reject_media=reject_media,
            reject_reports=reject_reports,
            obfuscate=obfuscate,
            public_comment=(_cell(cells, columns.get("public_comment")) or "").strip(_RUBY_WHITESPACE),
            private_comment=(_cell(cells, columns.get("private_comment")) or "").strip(_RUBY_WHITESPACE),
        )
    return collector.result("fediblockhole_csv")


# ------------------------------------------------------------------------------ plain lists

_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def import_plain(text: str, *, max_rows: int = MAX_ROWS) -> ImportResult:
    """Read a plain list: one domain per line, ``#`` comments, every domain ``suspend``.

    Raises :class:`FormatError` for more than ``max_rows`` domains.
    """
    entries: list[tuple[int, str]] = []
    for number, raw in enumerate(_LINE_BREAK.split(_without_bom(text)), start=1):
        content = raw.split("#", 1)[0].split(",", 1)[0].strip(_RUBY_WHITESPACE)
        if content:
            entries.append((number, content))
    _check_row_count(len(entries), "domains", max_rows)
    collector = _Collector()
    for number, content in entries:
        collector.add(number, content, severity=Severity.SUSPEND)
    return collector.result("plain")


# ------------------------------------------------------------------------------------- JSON


def _json_text(item: Mapping[str, Any], name: str) -> str | None:
    value = item.get(name)
    if value is None or isinstance(value, str):
        return value
    raise _RowError(f"{name}: a string is expected, got {type(value).__name__}")


def _json_bool(item: Mapping[str, Any], name: str) -> bool:
    value = item.get(name)
    if value is None or isinstance(value, bool):
        return bool(value)
    raise _RowError(f"{name}: true or false is expected, got {value!r}")


def _read_json_item(collector: _Collector, number: int, item: object) -> None:
    if not isinstance(item, dict):
        raise _RowError(f"item {number}: an object is expected, got {type(item).__name__}")
    domain = _json_text(item, "domain")
    if not domain:
        raise _RowError(f"item {number}: domain: missing")
    severity_text = _json_text(item, "severity")
    severity = Severity.SUSPEND if severity_text is None else _parse_severity(severity_text, "severity")
    public = _json_text(item, "public_comment") if "public_comment" in item else _json_text(item, "comment")
    digest = _json_text(item, "digest")
    if digest is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", digest.strip()):
        raise _RowError(f"item {number}: digest: not a SHA-256 hex digest")
    collector.add(
        number,
        domain.strip(_RUBY_WHITESPACE),
        severity=severity,
        reject_media=_json_bool(item, "reject_media"),
        reject_reports=_json_bool(item, "reject_reports"),
        obfuscate=_json_bool(item, "obfuscate"),
        public_comment=(public or "").strip(_RUBY_WHITESPACE),
        private_comment=(_json_text(item, "private_comment") or "").strip(_RUBY_WHITESPACE),
        digest=digest,
    )


def import_json(text: str, *, max_rows: int = MAX_ROWS) -> ImportResult:
    """Read a JSON array of Mastodon (public or admin) or GoToSocial domain-block entries.

    The shape is recognised per item. Raises :class:`FormatError` for text that is not JSON, a
    document that is not an array, or more than ``max_rows`` items.
    """
    try:
        document = json.loads(_without_bom(text))
    except RecursionError:
        raise FormatError("not valid JSON: nested too deeply") from None
    except ValueError as exc:
        raise FormatError(f"not valid JSON: {exc}") from None
    if not isinstance(document, list):
        raise FormatError(f"a JSON array of domain entries is expected, got {type(document).__name__}")
    _check_row_count(len(document), "entries", max_rows)
    collector = _Collector()
    for number, item in enumerate(document, start=1):
        try:
            _read_json_item(collector, number, item)
        except _RowError as exc:
            message = str(exc)
            collector.problem(number, message if message.startswith("item ") else f"item {number}: {message}")
    return collector.result("json")


def export_mastodon_json(decisions: Iterable[DomainDecision], *, include_private_comment: bool = False) -> str:
    """A JSON array in the shape of Mastodon's ``/api/v1/admin/domain_blocks`` (without ids or dates).

    Every decision is written, ``noop`` included. ``private_comment`` is ``null`` unless
    ``include_private_comment`` is set: the file may leave the moderators' hands.
    """
    items = [
        {
            "domain": decision.domain,
            "digest": domain_digest(decision.domain),
            "severity": decision.severity.value,
            "reject_media": decision.reject_media,
            "reject_reports": decision.reject_reports,
            "private_comment": (decision.private_comment or None) if include_private_comment else None,
            "public_comment": decision.public_comment or None,
            "obfuscate": decision.obfuscate,
        }
        for decision in decisions
    ]
    return json.dumps(items, ensure_ascii=False, indent=2) + "\n"


# ------------------------------------------------------------------------ detection, dispatch

_JSON_TYPES = frozenset({"application/json", "text/json"})
_TEXT_TYPES = frozenset(
    {
        "text/plain",
        "text/csv",
        "text/x-csv",
        "application/csv",
        "application/x-csv",
        "application/vnd.ms-excel",
        "application/octet-stream",
    }
)


def decode_text(data: bytes) -> str:
    """``data`` as UTF-8 text without a byte-order mark; :class:`FormatError` when it is not UTF-8."""
    try:
        return _without_bom(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise FormatError(f"not UTF-8 text (byte {exc.start})") from None


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def detect_format(data: bytes, content_type: str | None) -> BlocklistFormat:
    """Which importer reads a fetched block list: ``mastodon_csv``, ``fediblockhole_csv``, ``plain`` or ``json``.

    JSON when the media type says so or the body starts with ``[`` or ``{``; otherwise the first
    non-blank line decides: ``#domain`` first -> Mastodon CSV, a header naming ``domain``
    without it -> FediBlockHole CSV, anything else -> a plain list. Raises :class:`FormatError`
    for text that is not UTF-8, HTML, and media types that are not a list (``text/html``...).
    """
    media = _media_type(content_type)
    is_json_type = media in _JSON_TYPES or media.endswith("+json")
    if media and not is_json_type and media not in _TEXT_TYPES:
        raise FormatError(f"content type {media!r} is not a block list (expected CSV, JSON or plain text)")
    body = decode_text(data).lstrip()
    if body.startswith("<"):
        raise FormatError("the document looks like HTML, not a block list")
    if is_json_type or body[:1] in ("[", "{"):
        return "json"
    first_line = next((line for line in _LINE_BREAK.split(body) if line.strip()), "")
    cells = [_header_cell(cell.strip().strip('"')) for cell in first_line.split(",")]
    if cells and cells[0] == "#domain":
        return "mastodon_csv"
    if _looks_like_fbh_header(cells):
        return "fediblockhole_csv"
    return "plain"


_IMPORTERS: dict[BlocklistFormat, Callable[..., ImportResult]] = {
    "mastodon_csv": import_mastodon_csv,
    "fediblockhole_csv": import_fediblockhole_csv,
    "plain": import_plain,
    "json": import_json,
}


def import_blocklist(data: bytes, content_type: str | None = None, *, max_rows: int = MAX_ROWS) -> ImportResult:
    """Detect the format of a fetched or uploaded list (:func:`detect_format`) and import it."""
    fmt = detect_format(data, content_type)
    return _IMPORTERS[fmt](decode_text(data), max_rows=max_rows)


def resolve_obfuscated_entries(result: ImportResult, known_domains: Iterable[str]) -> ImportResult:
    """Turn obfuscated entries into decisions where a known peer matches, report the rest.

    A peer matches when its SHA-256 digest equals the entry's and its name fits the pattern
    character by character (:func:`~moderation.decisions.resolve_obfuscated`). Entries without a
    digest or without a match become problems; a resolved domain already decided in the file
    keeps the file's row.
    """
    by_digest: dict[str, str] = {}
    for candidate in known_domains:
        try:
            name = normalize_domain(candidate)
        except DomainError:
            continue
        by_digest.setdefault(hashlib.sha256(name.encode("ascii")).hexdigest(), name)
    rows = list(result.rows)
    decided = {decision.domain for decision in rows}
    problems = list(result.problems)
    for entry in result.obfuscated:
        match = None
        if entry.digest is not None and entry.digest in by_digest:
            match = resolve_obfuscated(entry.pattern, entry.digest, [by_digest[entry.digest]])
        if match is None:
            reason = "no digest to match" if entry.digest is None else "no known peer matches its digest"
            problems.append(RowProblem(entry.line, f"domain: obfuscated entry {entry.pattern!r} skipped: {reason}"))
        elif match in decided:
            problems.append(RowProblem(entry.line, f"domain: {entry.pattern!r} is {match!r}, already in the list"))
        else:
            rows.append(entry.resolved(match))
            decided.add(match)
    problems.sort(key=lambda problem: problem.line)
    return replace(result, rows=rows, problems=problems, obfuscated=[])
