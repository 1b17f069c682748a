"""Crisis-language detection (moderation/crisis.py): the labelled evaluation set and each rule.

The evaluation set is tests/crisis_eval/{en,ru,fr}.jsonl (see tests/crisis_eval/README.md for
how it was written and labelled). The issue's target is precision >= 0.8 and recall >= 0.9 per
language on the set; the holdout part (written before any tuning and never used to tune) is
held to a lower regression floor, and bench/crisis_bench.py prints both figures.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from moderation.crisis import (
    Detection,
    Detector,
    Match,
    PatternError,
    check_patterns,
    compile_pattern,
    detect_language,
)

EVAL_DIR = Path(__file__).parent / "crisis_eval"
LANGS = ("en", "ru", "fr")
DETECTOR = Detector.default()


def load_eval(lang: str) -> list[dict[str, Any]]:
    with (EVAL_DIR / f"{lang}.jsonl").open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def scores(rows: list[dict[str, Any]], lang: str) -> tuple[float, float]:
    tp = fp = fn = 0
    for row in rows:
        flagged = DETECTOR.detect(row["text"], lang).crisis
        tp += flagged and row["label"]
        fp += flagged and not row["label"]
        fn += (not flagged) and row["label"]
    return tp / (tp + fp), tp / (tp + fn)


def flagged(text: str, lang: str | None = None) -> bool:
    return DETECTOR.detect(text, lang).crisis


# --- the evaluation set ----------------------------------------------------------------------------


@pytest.mark.parametrize("lang", LANGS)
def test_eval_set__is_well_formed_with_enough_hard_negatives_and_a_holdout(lang: str) -> None:
    rows = load_eval(lang)
    assert len(rows) >= 80
    for row in rows:
        assert set(row) == {"text", "label", "kind", "note", "split"}, row
        assert row["kind"] in ("positive", "hard_negative", "negative")
        assert row["label"] is (row["kind"] == "positive")
        assert row["split"] in ("dev", "holdout")
        assert isinstance(row["text"], str) and 0 < len(row["text"]) < 300
    assert len({r["text"] for r in rows}) == len(rows), "duplicate texts"
    assert sum(r["kind"] == "hard_negative" for r in rows) * 3 >= len(rows)
    # The holdout is the first quarter written (26 lines per language); later dev batches grew the
    # files, so it is now a smaller share of each (README.md in tests/crisis_eval/).
    holdout_count = sum(r["split"] == "holdout" for r in rows)
    assert holdout_count >= 25 and holdout_count * 100 >= len(rows) * 15
    holdout = [r for r in rows if r["split"] == "holdout"]
    assert {r["kind"] for r in holdout} == {"positive", "hard_negative", "negative"}


@pytest.mark.parametrize("lang", LANGS)
def test_eval_set__meets_the_issue_target_precision_and_recall(lang: str) -> None:
    precision, recall = scores(load_eval(lang), lang)
    assert precision >= 0.8, f"{lang} precision {precision:.2f}"
    assert recall >= 0.9, f"{lang} recall {recall:.2f}"


@pytest.mark.parametrize("lang", LANGS)
def test_eval_set__holdout_stays_above_its_regression_floor(lang: str) -> None:
    # The holdout was written before tuning and is not used to tune; its figures are reported
    # as they are (lower than the whole set's). This floor catches regressions only.
    precision, recall = scores([r for r in load_eval(lang) if r["split"] == "holdout"], lang)
    assert precision >= 0.8, f"{lang} holdout precision {precision:.2f}"
    assert recall >= 0.7, f"{lang} holdout recall {recall:.2f}"


@pytest.mark.parametrize("lang", LANGS)
def test_eval_set__matches_without_the_language_given(lang: str) -> None:
    rows = load_eval(lang)
    same = sum(DETECTOR.detect(r["text"]).crisis == DETECTOR.detect(r["text"], lang).crisis for r in rows)
    assert same == len(rows)


# --- the interface ----------------------------------------------------------------------------------


def test_detect__returns_level_matches_offsets_and_explanation() -> None:
    text = "Honestly... I want to die."
    d = DETECTOR.detect(text, "en")
    assert isinstance(d, Detection)
    assert (d.crisis, d.level, d.lang, d.method_detail) == (True, "low", "en", False)
    assert len(d.matched) == 1
    m = d.matched[0]
    assert isinstance(m, Match)
    assert m.category == "ideation"
    assert text[m.start : m.end] == m.phrase == "I want to die"
    assert "matched 'I want to die' (ideation" in d.explanation


def test_detect__no_match_is_level_none() -> None:
    d = DETECTOR.detect("Went for a walk, the weather was lovely", "en")
    assert (d.crisis, d.level, d.matched, d.method_detail) == (False, "none", (), False)
    assert d.explanation == "no crisis-lexicon match"


@pytest.mark.parametrize(
    ("text", "lang", "category"),
    [
        ("I'm going to kill myself tonight", "en", "intent"),
        ("I bought a rope today", "en", "method"),
        ("goodbye everyone, this is my last post", "en", "farewell"),
        ("I cut myself again", "en", "self_harm"),
        ("I have a plan to end it", "en", "plan"),
        ("Я решила покончить с собой", "ru", "intent"),
        ("Хочу спрыгнуть с крыши", "ru", "method"),
        ("Прощайте все", "ru", "farewell"),
        ("J'ai envie d'en finir", "fr", "intent"),
        ("Je vais avaler toutes mes pilules", "fr", "method"),
        ("Adieu à tous", "fr", "farewell"),
    ],
)
def test_level__high_for_intent_plan_method_farewell_self_harm(text: str, lang: str, category: str) -> None:
    d = DETECTOR.detect(text, lang)
    assert d.level == "high", d.explanation
    assert category in d.categories


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("I wish I was dead", "en"),
        ("I feel so hopeless", "en"),
        ("Я обуза для всех", "ru"),
        ("Хочу исчезнуть навсегда", "ru"),
        ("Je suis un fardeau pour ma famille", "fr"),
        ("J'en ai marre de la vie", "fr"),
    ],
)
def test_level__low_for_passive_ideation_and_hopelessness(text: str, lang: str) -> None:
    d = DETECTOR.detect(text, lang)
    assert (d.crisis, d.level) == (True, "low"), d.explanation


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("how many pills would it take to die", "en"),
        ("I've been stockpiling my meds", "en"),
        ("Сколько таблеток нужно, чтобы не проснуться", "ru"),
        ("Коплю таблетки", "ru"),
        ("Quelle est la dose mortelle de paracétamol", "fr"),
    ],
)
def test_method_detail__is_set_for_method_and_means_language(text: str, lang: str) -> None:
    d = DETECTOR.detect(text, lang)
    assert d.method_detail and d.level == "high", d.explanation


def test_method_detail__not_set_without_method_language() -> None:
    assert not DETECTOR.detect("I want to die", "en").method_detail
    assert not DETECTOR.detect("I take my pills every morning", "en").method_detail


def test_explanation__names_matches_and_ignored_phrases_and_makes_no_clinical_claim() -> None:
    d = DETECTOR.detect("I don't want to die. But some days I wish I was dead.", "en")
    assert d.crisis
    assert "matched 'wish I was dead' (ideation, low)" in d.explanation
    assert "ignored 'want to die' (ideation: negated)" in d.explanation
    for text in ("I want to die", "je veux mourir", "хочу умереть", "hello"):
        explanation = DETECTOR.detect(text).explanation.lower()
        for word in ("diagnos", "suicidal person", "detects suicide", "is at risk"):
            assert word not in explanation


def test_default__is_shared_and_detect_many_loops() -> None:
    assert Detector.default() is Detector.default()
    results = DETECTOR.detect_many(["I want to die", "hello"])
    assert [r.crisis for r in results] == [True, False]


# --- negation -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("I don't want to die", "en"),
        ("I do not want to die, I want help", "en"),
        ("I would never hurt myself", "en"),
        ("I'm not going to kill myself, I just need to talk", "en"),
        ("не хочу умирать", "ru"),
        ("Я вовсе не хочу умирать", "ru"),
        ("Не режусь уже год", "ru"),
        ("Je ne veux pas mourir", "fr"),
        ("J'ai pas envie de mourir", "fr"),
        ("Je ne vais pas me tuer", "fr"),
        ("Я не хочу, чтобы меня не стало", "ru"),
    ],
)
def test_negation__is_not_a_match(text: str, lang: str) -> None:
    d = DETECTOR.detect(text, lang)
    assert not d.crisis, d.explanation
    assert all(i.reason == "negated" for i in d.ignored)


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("I don't want to live anymore", "en"),
        ("I dont want to be alive", "en"),
        ("I don't see any reason to go on", "en"),
        ("Не хочу жить", "ru"),
        ("Жить не хочется", "ru"),
        ("Лучше бы я не родилась", "ru"),
        ("Je ne veux plus vivre", "fr"),
        ("J'veux plus vivre", "fr"),
        ("Je ne vois plus aucune raison de vivre", "fr"),
    ],
)
def test_negation__inside_the_phrase_is_still_a_match(text: str, lang: str) -> None:
    assert flagged(text, lang), DETECTOR.detect(text, lang).explanation


def test_negation__in_another_clause_does_not_cancel() -> None:
    assert flagged("I don't know why, but I want to die", "en")
    assert flagged("Не знаю, что делать, хочу умереть", "ru")
    assert flagged("Je sais pas, je veux mourir", "fr")


# --- quotation, reported speech, past and recovery ---------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "the book says 'I want to die'",
        'The lyrics "I want to end it all" always make me cry',
        "Книга начинается словами «я хочу умереть»",
        "La chanson dit « je veux mourir »",
        "Песня “Хочу умереть” — моя любимая",
    ],
)
def test_quotation__is_not_a_match(text: str) -> None:
    d = DETECTOR.detect(text)
    assert not d.crisis, d.explanation
    assert any(i.reason == "quoted" for i in d.ignored)


def test_quotation__text_outside_the_quotes_still_matches() -> None:
    assert flagged('He said "hi" and honestly I want to die', "en")
    assert flagged("Il a dit « salut ». J'ai envie de mourir", "fr")


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("she said she wanted to die", "en"),
        ("my friend told me she wants to kill herself", "en"),
        ("In the song he sings want to die", "en"),
        ("Она сказала, что хочет умереть", "ru"),
        ("Elle m'a dit qu'elle voulait mourir", "fr"),
    ],
)
def test_reported_speech__is_not_a_match(text: str, lang: str) -> None:
    assert not flagged(text, lang), DETECTOR.detect(text, lang).explanation


def test_reported_speech__first_person_report_of_own_words_still_matches() -> None:
    assert flagged("I told my therapist I want to die", "en")
    assert flagged("Я сказала маме, что хочу умереть", "ru")


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("I used to want to die every day. Now I'm three years into recovery.", "en"),
        ("Years ago I tried to kill myself. Today I volunteer.", "en"),
        ("Когда-то я резала себя, теперь всё хорошо", "ru"),
        ("Пять лет назад я пыталась покончить с собой", "ru"),
        ("Autrefois je me scarifiais, aujourd'hui ça va", "fr"),
        ("Avant, j'avais envie de mourir", "fr"),
    ],
)
def test_past_and_recovery__is_not_a_match(text: str, lang: str) -> None:
    d = DETECTOR.detect(text, lang)
    assert not d.crisis, d.explanation


def test_past__cancelled_by_now_or_again() -> None:
    assert flagged("I used to be happy but now I want to die", "en")
    assert flagged("I used to cut myself and now I cut myself again", "en")
    assert flagged("Раньше было легче, а теперь хочу умереть", "ru")


# --- hyperbole and idioms ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("this exam is killing me", "en"),
        ("I could die of embarrassment", "en"),
        ("I want to die of embarrassment", "en"),
        ("I'm killing myself at work for this deadline", "en"),
        ("these shoes are to die for", "en"),
        ("I cut myself shaving", "en"),
        ("Goodbye everyone, see you after the holidays!", "en"),
        ("умираю со смеху", "ru"),
        ("Жара такая, хоть вешайся", "ru"),
        ("Сдохнуть можно от этой жары", "ru"),
        ("je meurs de rire", "fr"),
        ("J'ai envie de mourir de rire", "fr"),
        ("Ce boulot va me tuer", "fr"),
        ("Je vais me couper les cheveux", "fr"),
        ("Je vais en finir avec ce dossier", "fr"),
    ],
)
def test_hyperbole__is_not_a_match(text: str, lang: str) -> None:
    assert not flagged(text, lang), DETECTOR.detect(text, lang).explanation


def test_hyperbole__only_cancels_the_phrase_it_overlaps() -> None:
    assert flagged("I want to die. That video was funny, I was dying laughing earlier.", "en")
    assert flagged("Je meurs de rire mais en vrai j'ai envie de mourir", "fr")


# --- morphology, elision, spelling -------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "хочу умереть",
        "Мне хочется умереть",
        "Хочу умирать",
        "покончу с собой",
        "думаю о самоубийстве",
        "мысли о суициде",
        "я устала жить",
        "я устал жить",
        "Я ОБУЗА",
        "Всё безнадёжно",
        "Все безнадежно",
    ],
)
def test_russian__inflection_case_and_yo(text: str) -> None:
    assert flagged(text, "ru"), DETECTOR.detect(text, "ru").explanation


def test_russian__third_person_forms_are_not_first_person_matches() -> None:
    assert not flagged("Он хочет умереть", "ru")
    assert not flagged("В новостях: мужчина покончил с собой", "ru")


@pytest.mark.parametrize(
    "text",
    [
        "j'veux mourir",
        "J’ai envie de mourir",
        "j ai envie de mourir",
        "J'AI ENVIE D'EN FINIR",
        "je veux en finir",
        "Je veux me suicider",
        "jveux mourir",
        "j'ai envi de mourrir",
        "à quoi bon vivre",
        "A QUOI BON VIVRE",
    ],
)
def test_french__elision_contractions_case_and_accents(text: str) -> None:
    assert flagged(text, "fr"), DETECTOR.detect(text, "fr").explanation


@pytest.mark.parametrize(
    ("text", "phrase"),
    [
        ("i wanna diiiiie", "wanna diiiiie"),
        ("I WANT TO DIE", "I WANT TO DIE"),
        ("I want to kiiiiill myself", "kiiiiill myself"),
        ("Хочууу умереееть", "Хочууу умереееть"),
        ("im suicdal", "im suicdal"),
    ],
)
def test_spelling__repeated_letters_case_and_misspellings_keep_offsets(text: str, phrase: str) -> None:
    d = DETECTOR.detect(text)
    assert d.crisis, d.explanation
    m = d.matched[0]
    assert phrase in m.phrase
    assert text[m.start : m.end] == m.phrase


@pytest.mark.parametrize(
    ("text", "lang", "phrase"),
    [
        ("i just want to k1ll mys3lf", "en", "k1ll mys3lf"),
        ("thinking about su1c1de", "en", "su1c1de"),
        ("I'm planning my s*icide", "en", "s*icide"),
        ("Хочу уmереть", "ru", "уmереть"),  # Latin m inside a Cyrillic word
        ("Мысли о с*ициде не уходят", "ru", "с*ициде"),
        ("Je pense au su1c1de", "fr", "su1c1de"),
    ],
)
def test_disguise__leetspeak_lookalikes_and_masks_are_read(text: str, lang: str, phrase: str) -> None:
    d = DETECTOR.detect(text, lang)
    assert d.crisis, d.explanation
    assert any(phrase in m.phrase and text[m.start : m.end] == m.phrase for m in d.matched)


def test_disguise__digits_symbols_and_ambiguous_masks_are_left_alone() -> None:
    for text in ("Add 3 cups of flour and bake for 30 minutes", "mail me at d1e@example.org", "h*llo"):
        assert not flagged(text, "en"), text
    assert not flagged("I want to k*** myself", "en")  # too many masked letters to read


# --- language detection -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("I want to go home", "en"),
        ("je veux rentrer chez moi", "fr"),
        ("Я хочу домой", "ru"),
        ("J'ai faim et je suis fatiguée", "fr"),
        ("Bonjour, ça va ?", "fr"),
        ("", "en"),
        ("😀😀", "en"),
        ("Привет, how are you? Я устала", "ru"),
    ],
)
def test_language__guessed_from_script_and_stop_words(text: str, lang: str) -> None:
    assert detect_language(text) == lang
    assert DETECTOR.detect(text).lang == lang


def test_language__given_language_is_reported_but_every_script_is_scanned() -> None:
    d = DETECTOR.detect("хочу умереть", "en")  # a mislabelled post still matches
    assert d.crisis and d.lang == "en"
    assert d.matched[0].lang == "ru"
    assert DETECTOR.detect("I want to die", "de").crisis


def test_language__code_switching_matches_both_languages() -> None:
    d = DETECTOR.detect("So tired. Хочу умереть. I want to disappear")
    assert {m.lang for m in d.matched} == {"ru", "en"}


# --- per-instance additions and exclusions ---------------------------------------------------------


def test_additions__add_phrases_with_category_and_level() -> None:
    assert not flagged("I'm going to walk into the sea", "en")
    custom = Detector(additions={"en": ["intent: walk|walking into the sea", "feeling unalivey"]})
    d = custom.detect("I'm going to walk into the sea", "en")
    assert (d.crisis, d.level, d.categories) == (True, "high", ("intent",))
    d = custom.detect("feeling unalivey today", "en")
    assert (d.crisis, d.level, d.categories) == (True, "low", ("custom",))
    high = Detector(additions={"ru": ["!ideation: уйти в закат"]})
    assert high.detect("хочу уйти в закат", "ru").level == "high"
    assert not Detector.default().detect("хочу уйти в закат", "ru").crisis


def test_additions__gaps_allow_words_between_but_not_a_negator() -> None:
    custom = Detector(additions={"en": ["farewell: sold .. .. won't need"]})
    assert custom.detect("I sold my bike and my guitar, I won't need them", "en").level == "high"
    assert not custom.detect("sold", "en").crisis
    too_far = "I sold my old red bike to a neighbour last week, I won't need it"
    assert not custom.detect(too_far, "en").crisis  # more than six words between
    negated = Detector(additions={"en": ["plan: going .. to the bridge"]})
    assert negated.detect("I'm going straight to the bridge", "en").crisis
    assert not negated.detect("I'm going never to the bridge", "en").crisis


def test_additions__follow_negation_and_quotation_rules() -> None:
    custom = Detector(additions={"fr": ["self_harm: me cramer"]})
    assert custom.detect("j'ai envie de me cramer", "fr").crisis
    assert not custom.detect("je ne vais pas me cramer", "fr").crisis
    assert not custom.detect("il chante « me cramer »", "fr").crisis


def test_exclusions__cancel_overlapping_matches_only_in_their_language() -> None:
    custom = Detector(exclusions={"en": ["want to die .. spoilers"], "fr": ["dose mortelle de rire"]})
    assert not custom.detect("I want to die from these spoilers", "en").crisis
    assert custom.detect("I want to die", "en").crisis
    assert Detector.default().detect("I want to die from these spoilers", "en").crisis
    d = custom.detect("I want to die from these spoilers", "en")
    assert d.ignored[0].reason == "hyperbole or exclusion"


@pytest.mark.parametrize(
    ("additions", "exclusions", "problem"),
    [
        ({"de": ["x y"]}, None, "no lexicon"),
        (None, {"xx": ["x y"]}, "no lexicon"),
        ({"en": ["nosuch: die"]}, None, "unknown category"),
        ({"en": ["a(b)"]}, None, "cannot read"),
        ({"en": [".. die"]}, None, "cannot start"),
        ({"en": ["[maybe]"]}, None, "no required word"),
        ({"en": [""]}, None, "characters"),
        ({"en": ["x " * 200]}, None, "characters"),
    ],
)
def test_additions_and_exclusions__bad_patterns_are_refused(
    additions: dict[str, list[str]] | None, exclusions: dict[str, list[str]] | None, problem: str
) -> None:
    with pytest.raises(PatternError, match=problem):
        Detector(additions=additions, exclusions=exclusions)
    config_problem = check_patterns(additions or exclusions or {}, additions=additions is not None)
    assert config_problem is not None and problem.split()[0] in config_problem


def test_check_patterns__accepts_valid_configuration() -> None:
    assert check_patterns({"en": ["intent: walk into the sea", "!plan: bought .. ticket"]}, additions=True) is None
    assert check_patterns({"ru": ["убить|убью время"]}, additions=False) is None


def test_patterns__are_words_not_regular_expressions() -> None:
    # Operators cannot inject regex syntax: it is either escaped or refused.
    assert compile_pattern("kill* me") == compile_pattern("kill*   me")
    with pytest.raises(PatternError):
        compile_pattern("(a+)+$")
    with pytest.raises(PatternError):
        Detector(exclusions={"en": ["die.*"]})


# --- robustness -------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", " ", "\n\n", "\x00\x01", "😀" * 50, "a" * 10])
def test_robustness__empty_and_odd_text_is_no_match(text: str) -> None:
    d = DETECTOR.detect(text)
    assert not d.crisis and d.level == "none"


def test_robustness__emoji_and_mixed_scripts_do_not_hide_a_match() -> None:
    for text in ("😭😭 I want to die 😭", "i want to die💔", "ok 🙂 хочу умереть 🙂", "J'ai envie de mourir 🥀🥀"):
        d = DETECTOR.detect(text)
        assert d.crisis, text
        for m in d.matched:
            assert text[m.start : m.end] == m.phrase


def test_robustness__huge_text_is_bounded_and_fast() -> None:
    filler = "The weather was lovely and we talked about plans for the weekend. " * 20_000  # ~1.3 MB
    started = time.perf_counter()
    d = DETECTOR.detect(filler + "I want to die")
    # A backtracking blow-up would take minutes or hours; no performance target (bench/crisis_bench.py).
    assert time.perf_counter() - started < 120
    assert not d.crisis  # beyond MAX_TEXT_CHARS: only the first 100,000 characters are read
    d = DETECTOR.detect("I want to die. " + filler)
    assert d.crisis and d.matched[0].start == 0


def test_robustness__pathological_repetition_is_fast() -> None:
    started = time.perf_counter()
    texts = ("don't " * 5000, "i " * 20000 + "want", "'" * 50_000, '"' * 50_000, "a'b " * 20_000, "a1b " + "c" * 90_000)
    many = ("хочу умереть " * 3000, '"' + "I want to die " * 3000 + '"', "used to " * 10_000 + "I want to die")
    for text in (*texts, *many):
        DETECTOR.detect(text)
    # A backtracking blow-up would take minutes or hours; no performance target (bench/crisis_bench.py).
    assert time.perf_counter() - started < 120
    assert 0 < len(DETECTOR.detect(many[0]).matched) <= 100  # only the first matches are read


def test_robustness__non_string_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        DETECTOR.detect(b"I want to die")  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_robustness__any_text_gives_valid_offsets(text: str) -> None:
    d = DETECTOR.detect(text)
    assert d.level in ("none", "low", "high")
    assert d.crisis == bool(d.matched)
    for m in (*d.matched, *(i.match for i in d.ignored)):
        assert 0 <= m.start < m.end <= len(text)
        assert text[m.start : m.end] == m.phrase


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["I want to die", "хочу умереть", "j'ai envie de mourir", "I'm going to kill myself"]),
    st.text(alphabet=st.characters(blacklist_categories=("L", "N", "Cs")), max_size=5),
    st.text(alphabet=st.characters(blacklist_categories=("L", "N", "Cs")), max_size=5),
)
def test_robustness__surrounding_punctuation_and_symbols_keep_the_match(core: str, before: str, after: str) -> None:
    if any(q in before + after for q in "\"'«»“”„‟〝〞＂’‘ʼ`´′＇"):
        return  # quotation marks legitimately change the result
    d = DETECTOR.detect(f"{before} {core} {after}")
    assert d.crisis, (before, core, after, d.explanation)
