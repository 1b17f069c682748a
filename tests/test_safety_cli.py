"""`hearthside safety scan`, run as operators run it: a real process per call."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

HEARTHSIDE = [sys.executable, "-m", "server"]


def run(*args: str, stdin: str, config_env: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "HEARTHSIDE_CONFIG"}
    if config_env:
        env["HEARTHSIDE_CONFIG"] = config_env
    return subprocess.run(
        [*HEARTHSIDE, "safety", "scan", *args], capture_output=True, text=True, input=stdin, timeout=60, env=env
    )


def lines(*items: object) -> str:
    return "".join((item if isinstance(item, str) else json.dumps(item, ensure_ascii=False)) + "\n" for item in items)


def outputs(result: subprocess.CompletedProcess[str]) -> list[dict[str, object]]:
    return [json.loads(line) for line in result.stdout.splitlines()]


def write_config(path: Path, safety: str) -> Path:
    path.write_text(f'[instance]\nbase_url = "https://safety.example"\n\n[safety]\n{safety}\n', encoding="utf-8")
    return path


def test_safety_scan__one_result_per_line_with_language_guessed() -> None:
    result = run(
        stdin=lines(
            {"text": "I want to die", "lang": "en"},
            {"text": "Хочу умереть"},
            {"text": "j'ai envie d'en finir", "lang": None},
            {"text": "this exam is killing me"},
            {"text": "How many pills would it take to die", "id": "post-7"},
        )
    )
    assert result.returncode == 0, result.stderr
    out = outputs(result)
    assert len(out) == 5
    assert out[0] == {
        "crisis": True,
        "level": "low",
        "matched": ["I want to die"],
        "categories": ["ideation"],
        "lang": "en",
        "method_detail": False,
        "explanation": "possible crisis language: matched 'I want to die' (ideation, low)",
    }
    assert (out[1]["crisis"], out[1]["lang"], out[1]["matched"]) == (True, "ru", ["Хочу умереть"])
    assert (out[2]["crisis"], out[2]["level"], out[2]["lang"]) == (True, "high", "fr")
    assert (out[3]["crisis"], out[3]["level"], out[3]["matched"]) == (False, "none", [])
    assert out[4]["id"] == "post-7" and out[4]["method_detail"] is True and out[4]["level"] == "high"


def test_safety_scan__bad_lines_get_an_error_naming_the_line_and_exit_1() -> None:
    result = run(
        stdin=lines(
            "not json",
            {"text": "I want to die"},
            "",
            [1, 2],
            {"lang": "en"},
            {"text": 5},
            {"text": "hello", "lang": 3},
            {"text": "goodbye everyone, this is my last post"},
        )
    )
    assert result.returncode == 1
    out = outputs(result)
    assert len(out) == 7  # the blank line is skipped, every other line answered in order
    assert out[0]["line"] == 1 and str(out[0]["error"]).startswith("line 1: not JSON")
    assert out[1]["crisis"] is True
    assert out[2] == {"line": 4, "error": "line 4: must be a JSON object, got list"}
    assert out[3] == {"line": 5, "error": "line 5: text is missing"}
    assert out[4] == {"line": 6, "error": "line 6: text must be a string"}
    assert out[5]["line"] == 7 and "lang must be" in str(out[5]["error"])
    assert out[6]["level"] == "high"


def test_safety_scan__empty_input_is_no_output_and_success() -> None:
    result = run(stdin="")
    assert (result.returncode, result.stdout) == (0, "")


def test_safety_scan__config_additions_and_exclusions_apply(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "hearthside.toml",
        'crisis_additions = {en = ["intent: walk|walking into the sea"]}\n'
        'crisis_exclusions = {fr = ["envie de mourir .. concert"]}',
    )
    stdin = lines(
        {"text": "I'm going to walk into the sea", "lang": "en"},
        {"text": "J'ai envie de mourir avant ce concert", "lang": "fr"},
    )
    out = outputs(run("--config", str(config), stdin=stdin))
    assert (out[0]["crisis"], out[0]["level"], out[0]["categories"]) == (True, "high", ["intent"])
    assert out[1]["crisis"] is False
    # Without --config the built-in lexicon alone applies, even when $HEARTHSIDE_CONFIG is set.
    out = outputs(run(stdin=stdin, config_env=str(config)))
    assert out[0]["crisis"] is False
    assert out[1]["crisis"] is True


def test_safety_scan__bad_config_pattern_is_refused_naming_the_key(tmp_path: Path) -> None:
    config = write_config(tmp_path / "hearthside.toml", 'crisis_additions = {en = ["nosuch: die"]}')
    result = run("--config", str(config), stdin=lines({"text": "hello"}))
    assert result.returncode == 2
    assert "safety.crisis_additions" in result.stderr and "unknown category" in result.stderr
    assert result.stdout == ""


def test_safety_scan__lang_option_is_the_default_for_lines_without_one() -> None:
    out = outputs(run("--lang", "fr", stdin=lines({"text": "hello"}, {"text": "hello", "lang": "en"})))
    assert [o["lang"] for o in out] == ["fr", "en"]


def test_safety_scan__country_shows_the_authors_support_panel_for_matches_only() -> None:
    result = run(
        "--country",
        "fr",
        stdin=lines({"text": "je veux mourir", "lang": "fr"}, {"text": "je meurs de rire", "lang": "fr"}),
    )
    assert result.returncode == 0, result.stderr
    matched, laughing = outputs(result)
    panel = matched["support"]
    assert isinstance(panel, dict) and panel["country"] == "FR" and panel["language"] == "fr"
    assert [h["phone"] for h in panel["helplines"]] == ["3114"]  # the French entry only
    assert "support" not in laughing
    refused = run("--country", "France", stdin=lines({"text": "x"}))
    assert refused.returncode != 0 and "--country" in refused.stderr
