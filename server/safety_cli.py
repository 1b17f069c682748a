"""``hearthside safety scan``: operators try the crisis-language detector on their own sample texts.

    hearthside safety scan [--config FILE] [--lang LANG] [--country CC] < samples.jsonl

Reads JSON lines ``{"text": "...", "lang": "en"}`` (``lang`` optional: guessed when missing or
null; ``id`` optional, echoed back) on standard input and writes one JSON line per input::

    {"crisis": true, "level": "low", "matched": ["want to die"], "categories": ["ideation"],
     "lang": "en", "method_detail": false, "explanation": "possible crisis language: ..."}

With ``--country`` each result that matched also carries ``support``: the panel the author of
such a post would see (the supportive message and the configured helplines for the text's
language and that country), as the API gives it to the author only.

Blank lines are skipped. A line that is not a JSON object with a string ``text`` gets
``{"line": N, "error": "line N: ..."}`` instead, the other lines are still scanned, and the exit
status is 1 at the end. With ``--config`` the instance's ``[safety] crisis_additions`` and
``crisis_exclusions`` apply; without it, only the built-in lexicons (the command never reads a
configuration implicitly, so a sample run cannot pick up another instance's settings).

Nothing is stored or logged: the output goes to standard output only. The results are possible
crisis language for a person to read, never a diagnosis.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from moderation.crisis import Detection, Detector, PatternError

MAX_LINE_CHARS = 1_000_000


def _config(args: argparse.Namespace) -> Any:
    """The instance configuration named by ``--config``, else the defaults (shipped helplines)."""
    from server.config import load_config, parse_config

    return load_config(Path(args.config)) if args.config else parse_config({}, env={})


def _detector(args: argparse.Namespace) -> Detector:
    from server.cli import CliError

    if not args.config:
        return Detector.default()
    config = _config(args)
    try:
        return Detector(
            additions=config.get("safety", "crisis_additions"), exclusions=config.get("safety", "crisis_exclusions")
        )
    except PatternError as exc:  # the configuration check normally catches these first
        raise CliError(f"{args.config}: [safety]: {exc}") from None


def result_json(detection: Detection) -> dict[str, Any]:
    """The JSON object printed for one scanned text."""
    return {
        "crisis": detection.crisis,
        "level": detection.level,
        "matched": [m.phrase for m in detection.matched],
        "categories": list(detection.categories),
        "lang": detection.lang,
        "method_detail": detection.method_detail,
        "explanation": detection.explanation,
    }


def _problem(line: str) -> tuple[str | None, dict[str, Any] | None]:
    """(problem, parsed object): exactly one of them is None."""
    if len(line) > MAX_LINE_CHARS:
        return f"longer than {MAX_LINE_CHARS} characters", None
    try:
        item = json.loads(line)
    except json.JSONDecodeError as exc:
        return f"not JSON ({exc.msg} at column {exc.colno})", None
    if not isinstance(item, dict):
        return f"must be a JSON object, got {type(item).__name__}", None
    if "text" not in item:
        return "text is missing", None
    if not isinstance(item["text"], str):
        return "text must be a string", None
    lang = item.get("lang")
    if lang is not None and (not isinstance(lang, str) or not 0 < len(lang) <= 35):
        return "lang must be a language code (e.g. en, ru, fr) or null", None
    return None, item


def scan(
    detector: Detector,
    source: TextIO,
    out: TextIO,
    default_lang: str | None = None,
    panel: Any = None,
) -> int:
    """Scan JSON lines from ``source`` to ``out``; 1 if any line was bad, else 0. ``panel``
    (detection -> dict), when given, adds the author's support panel to matching results."""
    status = 0
    for number, raw in enumerate(source, start=1):
        line = raw.strip()
        if not line:
            continue
        problem, item = _problem(line)
        if item is None:
            status = 1
            out.write(json.dumps({"line": number, "error": f"line {number}: {problem}"}) + "\n")
            continue
        lang = item.get("lang") or default_lang
        detection = detector.detect(item["text"], lang)
        result = result_json(detection)
        if panel is not None and detection.crisis:
            result["support"] = panel(detection)
        if "id" in item:
            result = {"id": item["id"], **result}
        out.write(json.dumps(result, ensure_ascii=False) + "\n")
        out.flush()
    return status


def cmd_scan(args: argparse.Namespace) -> int:
    from server.cli import CliError

    detector = _detector(args)
    panel = None
    if args.country:
        from server.safety import support_panel

        country = args.country.upper()
        if not (len(country) == 2 and country.isascii() and country.isalpha()):
            raise CliError(f"--country: {args.country!r} is not an ISO 3166-1 alpha-2 code (e.g. FR)")
        config = _config(args)

        def panel(detection: Detection) -> dict[str, Any]:
            level, lang = detection.level, detection.lang
            return support_panel(config, kind="signpost", level=level, language=lang, country=country)

    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(encoding="utf-8")
    with open(sys.stdin.fileno(), encoding="utf-8", errors="replace", closefd=False) as source:
        return scan(detector, source, sys.stdout, args.lang, panel)


def add_parser(sub: Any) -> None:
    safety = sub.add_parser("safety", help="member-safety tools").add_subparsers(dest="safety_command", required=True)
    p = safety.add_parser(
        "scan",
        help="try the crisis-language detector on JSON lines {text, lang} from standard input",
        description='Reads JSON lines {"text": ..., "lang": ...} and writes one JSON result per line.',
    )
    p.add_argument("--config", help="use this instance's [safety] crisis_additions and crisis_exclusions")
    p.add_argument("--lang", help="language for lines without one (default: guessed per line)")
    p.add_argument("--country", help="also show the author's support panel with helplines for this country (e.g. FR)")
    p.set_defaults(fn=cmd_scan)
