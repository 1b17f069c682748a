"""Possible crisis language in posts: a lexicon- and pattern-based triage aid for people.

What it is for. :class:`Detector` marks posts that *may* contain crisis language (wishes to
die, intent, plans or means, farewells, self-harm, hopelessness) so that the author can be
shown support and trained responders can look. It assesses no one, never removes anything
and never contacts anyone by itself; its output must never leave the instance or
appear in logs (docs: research/moderation.md §5.4).

How it works.

1. Normalise (length-preserving, one C-level ``str.translate``): lower case, diacritics
   stripped (``é`` -> ``e``), ``ё`` -> ``е``, typographic apostrophes and quotes unified
   (``’`` -> ``'``, ``«»“”„`` -> ``"``). Then runs of a repeated letter collapse to one letter
   (``diiiie`` -> ``die``; ``kill`` -> ``kil``), and the lexicon is collapsed the same way when
   compiled, so stretched words and doubled-letter misspellings match. Disguised words are read
   too, still one character for one: leetspeak between letters ("k1ll", "su1c1de"), Latin
   lookalikes inside Cyrillic words ("уmереть"), and letters masked with ``*`` when exactly one
   lexicon word fits ("s*icide"). Offsets in :class:`Match` are mapped back to the original text.
2. Prefilter: each pattern has anchors, prefixes (up to six letters) of the least common of its
   required words; one compiled trie of all anchors (letters may repeat) is searched in the
   text. Most posts stop here, which is what makes well over 5,000 posts/s on one core possible
   (bench/crisis_bench.py); only the patterns whose anchors occur are run.
3. Match the chosen patterns, each compiled once per detector. Patterns use a small word
   syntax (see :func:`compile_pattern`) that also serves the per-instance
   ``crisis_additions``/``crisis_exclusions``; operators never write raw regular expressions,
   so configuration cannot introduce catastrophic backtracking.
4. Each candidate is checked in context and *suppressed* (kept in ``Detection.ignored`` with
   the reason, shown in the explanation) when it is

   * negated: a negator among the three words before it in the same clause ("I don't want to
     die", "не хочу умирать", "j'ai pas envie de mourir"), unless the phrase itself carries the
     negation ("I don't want to live", "не хочу жить", "je ne veux plus vivre" are patterns);
   * quoted: inside double quotes, guillemets, or single quotes used as quotation marks;
   * reported: looking back through the sentence, a third person or a speech/media word
     ("she said", "the song", "по словам", "selon") comes before any first-person word;
   * past: the sentence places it in the past or in recovery ("I used to want to die",
     "years ago", "раньше", "autrefois") with no "now"/"again" between marker and phrase;
   * hyperbole or an instance exclusion: it overlaps a hyperbole pattern ("die of
     embarrassment", "умираю со смеху", "je meurs de rire") or an exclusion.

5. Level: ``high`` when an unsuppressed match is intent, plan, method, farewell or self-harm
   (or an entry marked high, such as "want to kill myself"); ``low`` for passive ideation and
   hopelessness; ``none`` otherwise. ``method_detail`` is true when a method/means pattern
   matched (moderators confirm before anything is hidden: research §6.c test 29).

Languages: English, Russian and French lexicons (moderation/crisis_lexicon/). When the caller
gives no language, :func:`detect_language` guesses from the script (Cyrillic -> ru) and from
stop-word counts (en vs fr, with diacritics as a hint); that heuristic is enough for these three
languages and nothing more. Matching does not depend on the guess: every lexicon whose script
appears in the text is applied, so code-switched posts and mislabelled languages still match.

Limits (documented, not hidden): no syntax parsing, so long-distance negation, sarcasm and dark
humour ("kms lol" still matches), self-quoted thoughts ("I keep thinking 'I want to die'" reads as
a quotation) and euphemisms outside the lexicon are missed or mis-read. Recall on phrasing the
lexicon has not seen is low (tests/crisis_eval/README.md): instances extend it with
``crisis_additions`` as their communities' language shows.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Final

from moderation.crisis_lexicon import en as _en
from moderation.crisis_lexicon import fr as _fr
from moderation.crisis_lexicon import ru as _ru

LEVELS: Final = ("none", "low", "high")
CATEGORY_LEVEL: Final[Mapping[str, str]] = {
    "ideation": "low",
    "hopelessness": "low",
    "intent": "high",
    "plan": "high",
    "method": "high",
    "farewell": "high",
    "self_harm": "high",
    "custom": "low",
}
SUPPORTED_LANGUAGES: Final = ("en", "ru", "fr")
MAX_TEXT_CHARS: Final = 100_000
"""Longer texts are scanned up to this many characters (a post limit is far below it)."""
MAX_PATTERN_CHARS: Final = 1000
MAX_CANDIDATES: Final = 100
"""Per language, only the first this-many phrase matches of a text are read in context."""
MAX_CONFIG_PATTERN_CHARS: Final = 200
"""Per-instance additions and exclusions are limited to this length (each)."""


class PatternError(ValueError):
    """An addition or exclusion pattern that cannot be compiled; the message names it."""


@dataclass(frozen=True, slots=True)
class Match:
    """One lexicon match: ``phrase`` is the text as written, ``start``/``end`` its offsets."""

    phrase: str
    category: str
    start: int
    end: int
    level: str = "low"
    lang: str = "en"


@dataclass(frozen=True, slots=True)
class Ignored:
    """A match that context suppressed, and why (negated, quoted, reported, past, hyperbole, excluded)."""

    match: Match
    reason: str


@dataclass(frozen=True, slots=True)
class Detection:
    """The result for one text. ``crisis`` means possible crisis language, for a person to look at."""

    crisis: bool
    level: str
    lang: str
    matched: tuple[Match, ...]
    explanation: str
    method_detail: bool
    ignored: tuple[Ignored, ...] = field(default=())

    @property
    def categories(self) -> tuple[str, ...]:
        """The distinct categories matched, in order of first appearance."""
        return tuple(dict.fromkeys(m.category for m in self.matched))


# --- normalisation -----------------------------------------------------------------------------

_QUOTES = '"“”„‟«»〝〞＂'
_APOSTROPHES = "'’‘ʼ`´′＇"


def _build_table() -> dict[int, str]:
    table: dict[int, str] = {}
    ranges = [range(0x41, 0x5B), range(0xC0, 0x250), range(0x370, 0x400), range(0x400, 0x530), range(0x1E00, 0x1F00)]
    for r in ranges:
        for code in r:
            ch = chr(code)
            low = ch.lower()
            if len(low) != 1:
                low = ch
            base = unicodedata.normalize("NFD", low)[0]
            if base != low and base.isalpha() and len(unicodedata.normalize("NFD", low)) > 1:
                low = base
            if low != ch:
                table[code] = low
    for ch in ("ё", "Ё"):
        table[ord(ch)] = "е"
    for ch in ("й", "Й"):
        table[ord(ch)] = "й"  # й is a letter of its own in Russian, not и + breve
    table[ord("œ")] = "o"  # "cœur" -> "cor": collapsed consistently in lexicon and text
    table[ord("Œ")] = "o"
    table[ord("æ")] = "a"
    for ch in _QUOTES:
        table[ord(ch)] = '"'
    for ch in _APOSTROPHES:
        table[ord(ch)] = "'"
    for ch in "‐‑‒–—―":
        table[ord(ch)] = "-"
    table[ord("…")] = "."
    table[0x00A0] = " "
    table[0x200B] = " "
    return table


_TABLE: Final = _build_table()
_RUN: Final = re.compile(r"([^\W\d_])\1+")
_WORD: Final = re.compile(r"\w+(?:'\w+)*")
_PLAIN_WORD: Final = re.compile(r"\w+")


def _first(m: re.Match[str]) -> str:
    return m.group(1)


def _collapse(translated: str) -> str:
    return _RUN.sub(_first, translated)


def normalize(text: str) -> str:
    """Lower case, strip diacritics, unify quotes, collapse repeated letters (not length-preserving)."""
    return _collapse(text.translate(_TABLE))


def _trie_regex(words: Sequence[str]) -> str:
    """A regular expression matching any of ``words`` (collapsed) with each letter possibly repeated."""
    trie: dict[str, Any] = {}
    for word in words:
        node = trie
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}

    def emit(node: dict[str, Any]) -> str:
        branches = [re.escape(ch) + "+" + emit(child) for ch, child in sorted(node.items()) if ch]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        if "" in node:
            body = f"(?:{body})?"
        return body

    return emit(trie)


def _collapse_map(translated: str) -> list[int] | None:
    """For each index of the collapsed text, its index in the (length-preserving) translated text."""
    runs = list(_RUN.finditer(translated))
    if not runs:
        return None
    index: list[int] = []
    pos = 0
    for run in runs:
        index.extend(range(pos, run.start() + 1))
        pos = run.end()
    index.extend(range(pos, len(translated) + 1))
    return index


# --- the pattern language --------------------------------------------------------------------------

_SEP: Final = r"[^\w.!?\n]+"
_GAP: Final = r"((?:[^\w.!?\n]+\w+){0,3}?)"  # captured: negators in a gap cancel the match
_TOKEN_OK: Final = re.compile(r"^[\w'*|\-]+$")


def _alt(alternative: str) -> str:
    stem = alternative.endswith("*")
    body = alternative[:-1] if stem else alternative
    parts = [re.escape(normalize(p)) for p in body.split("_") if p]
    if not parts:
        raise PatternError(f"empty word in {alternative!r}")
    return _SEP.join(parts) + (r"\w*" if stem else "")


def compile_pattern(pattern: str) -> str:
    """Turn a lexicon pattern into a regular expression (over normalised text).

    Syntax: words separated by spaces; ``a|b`` alternatives for one word; ``_`` joins several
    words inside one alternative (``do_not``); ``word*`` a stem (any ending: ``хоч*``);
    ``[word]`` an optional word; ``..`` up to three arbitrary words (``.. ..`` up to six). Apostrophes and hyphens
    count as word separators, so ``j veux`` matches "j'veux" and "je veux" needs ``je|j``.
    """
    text = pattern.strip()
    if not text or len(text) > MAX_PATTERN_CHARS:
        raise PatternError(f"pattern {pattern!r} must have 1 to {MAX_PATTERN_CHARS} characters")
    pieces: list[str] = []
    pending_gap = 0
    leading = True  # only optional words so far: the next word needs no separator before it
    for raw in text.split():
        if raw == "..":
            pending_gap += 1
            continue
        optional = raw.startswith("[") and raw.endswith("]")
        token = raw[1:-1] if optional else raw
        if not token or not _TOKEN_OK.match(token) or "**" in token:
            raise PatternError(f"pattern {pattern!r}: cannot read the word {raw!r}")
        body = "(?:" + "|".join(_alt(a) for a in token.split("|") if a) + ")"
        if pending_gap and not pieces:
            raise PatternError(f"pattern {pattern!r} cannot start with '..'")
        if leading:
            piece = f"(?:{body}{_SEP})?" if optional else body
            leading = optional
        else:
            lead = _GAP * pending_gap + _SEP
            piece = f"(?:{lead}{body})?" if optional else f"{lead}{body}"
        pending_gap = 0
        pieces.append(piece)
    if leading:
        raise PatternError(f"pattern {pattern!r} has no required word")
    last = text.split()[-1]
    tail = "" if last.endswith("*") or last.endswith("*]") else r"(?!\w)"
    return r"(?<!\w)" + "".join(pieces) + tail


_COMMON: Final = frozenset(
    normalize(w)
    for w in (
        # Frequent words that make poor anchors (they would send most posts past the prefilter).
        "i to my me a the be am im i'm i'll i'd and of on in so just want wanna do not don't dont no it is all "
        "with this that have what when will time long longer ever every everything going how get got take "
        "made make way over down still read plan plans set save eat ate go good day back about more one "
        "think thought feel feeling really people much like know need now then than there here life "
        "я не мне меня и в на с что это так уже бы все всех хочу хочется больше лучше есть себя руки "
        "сделать сделаю скоро завтра после просто думаю очень когда "
        "je j me m de d la le les un une en et pas ne n a au mes ma mon tout plus ai sans pour suis "
        "fait faire fais soir demain aujourd'hui aujourd hui quand comme sens peux dire cette ce est "
        "plan temps encore veux vie aujourd soir demain vais pourquoi сегодня этой ночью вечером "
        "you your anyone someone somebody everyone better tomorrow mind walk sleep tenir comment pense dormir"
    ).split()
)


def _anchors(pattern: str) -> set[str]:
    """Word prefixes (2-6 letters) one of which every match of ``pattern`` contains.

    One required word position is chosen, the one whose alternatives are the least common
    (longest, not in a small list of frequent words); for each alternative its longest word
    counts, cut to six letters. The prefilter then only runs the patterns on texts holding
    one of these prefixes as the start of a word.
    """
    best: set[str] | None = None
    best_score = -(10**9)
    for raw in pattern.split():
        if raw == ".." or raw.startswith("["):
            continue
        picks: set[str] = set()
        score = 10**9
        for alt in raw.rstrip("*").split("|"):
            words = [normalize(w) for w in re.split(r"[_'\-]+", alt.rstrip("*")) if w]
            if not words:
                continue
            word = max(words, key=lambda w: (w not in _COMMON, len(w)))
            score = min(score, len(word) - (10 if word in _COMMON else 0))
            picks.add(word[:6])
        if picks and score > best_score:
            best, best_score = picks, score
    if not best:
        raise PatternError(f"pattern {pattern!r} has no required word")
    if any(len(a) < 2 for a in best):
        raise PatternError(f"pattern {pattern!r} needs a required word of at least two letters")
    return best


# --- lexicons ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Rules:
    lang: str
    patterns: tuple[tuple[str, str, bool, re.Pattern[str]], ...]  # (category, level, has a '..' gap, regex)
    by_anchor: Mapping[str, tuple[int, ...]]  # anchor -> indices into patterns
    suppressors: re.Pattern[str] | None
    negators: frozenset[str]
    first_person: frozenset[str]
    third_person: frozenset[str]
    speech: frozenset[str]
    past: re.Pattern[str]
    now: re.Pattern[str]
    clause_break: re.Pattern[str]


def _words(items: Iterable[str]) -> frozenset[str]:
    return frozenset(normalize(w) for w in items)


def _union(patterns: Sequence[str]) -> re.Pattern[str] | None:
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{compile_pattern(p)})" for p in patterns))


def _build_rules(lex: ModuleType, additions: Sequence[str], exclusions: Sequence[str]) -> _Rules:
    patterns: list[tuple[str, str, bool, re.Pattern[str]]] = []
    by_anchor: dict[str, list[int]] = {}
    entries: list[tuple[str, str]] = [(cat, p) for cat, pats in lex.LEXICON.items() for p in pats]
    for item in additions:
        cat, _, pat = item.partition(":") if ":" in item else ("custom", "", item)
        cat = cat.strip()
        if cat.lstrip("!") not in CATEGORY_LEVEL:
            raise PatternError(f"addition {item!r}: unknown category {cat!r} (one of {', '.join(CATEGORY_LEVEL)})")
        if not pat.strip() or len(pat.strip()) > MAX_CONFIG_PATTERN_CHARS:
            raise PatternError(f"addition {item!r} must have 1 to {MAX_CONFIG_PATTERN_CHARS} characters")
        entries.append((cat.lstrip("!"), ("!" if cat.startswith("!") else "") + pat.strip()))
    for cat, pat in entries:
        high = pat.startswith("!")
        body = pat[1:] if high else pat
        level = "high" if high else CATEGORY_LEVEL[cat]
        for anchor in _anchors(body):
            by_anchor.setdefault(anchor, []).append(len(patterns))
        patterns.append((cat, level, ".." in body.split(), re.compile(compile_pattern(body))))
    return _Rules(
        lang=lex.LANG,
        patterns=tuple(patterns),
        by_anchor={a: tuple(i) for a, i in by_anchor.items()},
        suppressors=_union([*lex.HYPERBOLE, *exclusions]),
        negators=_words(lex.NEGATORS),
        first_person=_words(lex.FIRST_PERSON),
        third_person=_words(lex.THIRD_PERSON) | _words(lex.SPEECH),
        speech=_words(lex.SPEECH),
        past=re.compile("|".join(f"(?:{compile_pattern(p)})" for p in lex.PAST)),
        now=re.compile("|".join(f"(?:{compile_pattern(p)})" for p in lex.NOW)),
        clause_break=re.compile(r"[,;:.!?()\n\"]|" + "|".join(f"(?:{compile_pattern(p)})" for p in lex.CLAUSE_BREAKS)),
    )


_LEXICONS: Final[Mapping[str, ModuleType]] = {"en": _en, "ru": _ru, "fr": _fr}


def _lexicon_words(lex: ModuleType) -> set[str]:
    """Normalised words of at least four letters in a lexicon (``word*`` for stems): for unmasking."""
    words: set[str] = set()
    for pattern in (p for pats in lex.LEXICON.values() for p in pats):
        for raw in pattern.lstrip("!").split():
            for alt in raw.strip("[]").split("|"):
                for part in re.split(r"[_'\-]+", alt):
                    star = part.endswith("*")
                    word = normalize(part.rstrip("*"))
                    if len(word) >= 4 and word.isalpha():
                        words.add(word + ("*" if star else ""))
    return words


_DISGUISE_CHARS: Final = re.compile(r"[0-9@$*]")
_SUSPECT: Final = re.compile(r"[^\W\d_][0-9@$*]+[^\W\d_]|[a-z][а-я]|[а-я][a-z]")
_TOKEN: Final = re.compile(r"[\w@$*]+")
_LEET_LATIN: Final = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s"})
_LEET_CYRILLIC: Final = str.maketrans({"0": "о", "3": "е", "@": "а"})
_HOMOGLYPHS: Final = str.maketrans("aeopcxykmthb", "аеорсхукмтнв")
_SENTENCE_END: Final = re.compile(r"[.!?\n]+")
_QUOTED: Final = re.compile(r"\"[^\"\n]{1,400}\"|(?<!\w)'[^'\n]{1,200}'(?!\w)")
_CYRILLIC: Final = re.compile(r"[\u0400-\u04ff]")
_LATIN: Final = re.compile(r"[a-z]")
_FR_MARKS: Final = re.compile(r"[éèêàâçùûîôœ]")


def _word_regex(words: Iterable[str], before: str) -> re.Pattern[str]:
    alternation = "|".join(sorted(map(re.escape, words), key=len, reverse=True))
    return re.compile(f"(?<!{before})(?:{alternation})(?![\\w'’])")


_EN_STOP: Final = _word_regex(_en.STOPWORDS, r"[\w'’]")
_FR_STOP: Final = _word_regex(_fr.STOPWORDS, r"\w")


def detect_language(text: str) -> str:
    """Guess en, ru or fr from script and stop words (a heuristic for these three languages only)."""
    low = text[:2000].lower()
    if _CYRILLIC.search(low):
        cyr = len(_CYRILLIC.findall(low))
        lat = len(_LATIN.findall(low))
        if cyr >= lat:
            return "ru"
    en = len(_EN_STOP.findall(low))
    fr = len(_FR_STOP.findall(low)) + len(_FR_MARKS.findall(low)) // 2
    return "fr" if fr > en else "en"


def check_patterns(patterns: Mapping[str, Sequence[str]], *, additions: bool) -> str | None:
    """The first problem with per-language ``crisis_additions``/``crisis_exclusions``, or None."""
    for lang, items in patterns.items():
        if lang not in _LEXICONS:
            return f"language {lang!r} has no lexicon (one of {', '.join(SUPPORTED_LANGUAGES)})"
        for i, item in enumerate(items):
            body = item
            if additions:
                cat, colon, rest = item.partition(":")
                if colon:
                    if cat.strip().lstrip("!") not in CATEGORY_LEVEL:
                        return f"{lang}[{i}]: unknown category {cat.strip()!r} (one of {', '.join(CATEGORY_LEVEL)})"
                    body = rest
            if len(body.strip()) > MAX_CONFIG_PATTERN_CHARS:
                return f"{lang}[{i}]: longer than {MAX_CONFIG_PATTERN_CHARS} characters"
            try:
                compile_pattern(body)
                _anchors(body)
            except PatternError as exc:
                return f"{lang}[{i}]: {exc}"
    return None


class Detector:
    """Finds possible crisis language in English, Russian and French text.

    ``additions`` and ``exclusions`` map a language code to patterns in the lexicon syntax
    (:func:`compile_pattern`); an addition may start with ``category:`` (``intent: going to
    jump``; ``!category:`` makes it high). Exclusions suppress any match they overlap. Raises
    :class:`PatternError` for a pattern it cannot read.
    """

    _default: Detector | None = None

    def __init__(
        self,
        additions: Mapping[str, Sequence[str]] | None = None,
        exclusions: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        additions = additions or {}
        exclusions = exclusions or {}
        for lang in (*additions, *exclusions):
            if lang not in _LEXICONS:
                raise PatternError(f"language {lang!r} has no lexicon (one of {', '.join(SUPPORTED_LANGUAGES)})")
        self._rules: dict[str, _Rules] = {
            lang: _build_rules(lex, tuple(additions.get(lang, ())), tuple(exclusions.get(lang, ())))
            for lang, lex in _LEXICONS.items()
        }
        vocab = {w for lex in _LEXICONS.values() for w in _lexicon_words(lex) if not w.endswith("*")}
        self._vocab: dict[int, frozenset[str]] = {
            n: frozenset(w for w in vocab if len(w) == n) for n in {len(w) for w in vocab}
        }
        self._stems = frozenset(w[:-1] for lex in _LEXICONS.values() for w in _lexicon_words(lex) if w.endswith("*"))
        every = sorted(set().union(*(r.by_anchor for r in self._rules.values())))
        self._prefilter = re.compile(r"(?<!\w)" + _trie_regex(every))
        # An anchor found in a text also stands for every shorter anchor that is its prefix.
        self._closure: dict[str, dict[str, tuple[int, ...]]] = {
            lang: {
                a: tuple(sorted({i for b, idx in r.by_anchor.items() if a.startswith(b) for i in idx})) for a in every
            }
            for lang, r in self._rules.items()
        }

    def _undisguise(self, translated: str) -> str:
        """Read leetspeak, Latin lookalikes in Cyrillic words and masked letters, length-preserving.

        "k1ll", "su1c1de" -> "kill", "suicide"; "уmереть" (Latin m) -> "умереть"; "s*icide" ->
        "suicide" when exactly one lexicon word fits the mask. Offsets stay valid because every
        character is replaced by exactly one character.
        """

        def fix(m: re.Match[str]) -> str:
            token = m.group(0)
            if not _SUSPECT.search(token):
                return token
            cyr = len(_CYRILLIC.findall(token))
            if cyr and cyr >= len(_LATIN.findall(token)):
                token = token.translate(_HOMOGLYPHS).translate(_LEET_CYRILLIC)
            else:
                token = token.translate(_LEET_LATIN)
            if "*" in token and not _RUN.search(token):
                token = self._unmask(token)
            return token

        return _TOKEN.sub(fix, translated)

    def _unmask(self, token: str) -> str:
        core = token.strip("*")
        if not core or core.count("*") > 2:
            return token
        parts = [r"\w" if c == "*" else re.escape(c) for c in core]
        whole = re.compile("".join(parts))
        fits = {w for w in self._vocab.get(len(core), ()) if whole.fullmatch(w)}
        for stem in self._stems:
            n = len(stem)
            if n <= len(core) and "*" in core[:n] and re.fullmatch("".join(parts[:n]), stem):
                fits.add(stem + core[n:])
        if len(fits) != 1:
            return token
        restored = fits.pop()
        return token.replace(core, restored, 1) if "*" not in restored else token

    @classmethod
    def default(cls) -> Detector:
        """A shared detector with the built-in lexicons only."""
        if cls._default is None:
            cls._default = cls()
        return cls._default

    def detect_many(self, texts: Iterable[str], lang: str | None = None) -> list[Detection]:
        """:meth:`detect` for each text."""
        return [self.detect(t, lang) for t in texts]

    def detect(self, text: str, lang: str | None = None) -> Detection:
        """Possible crisis language in ``text``; ``lang`` is the post's language if known."""
        if not isinstance(text, str):
            raise TypeError("text must be a string")
        text = text[:MAX_TEXT_CHARS]
        language = lang if lang else detect_language(text)
        translated = text.translate(_TABLE)
        if (_DISGUISE_CHARS.search(translated) or (_CYRILLIC.search(translated) and _LATIN.search(translated))) and (
            _SUSPECT.search(translated)
        ):
            translated = self._undisguise(translated)
        hits = self._prefilter.findall(translated)
        if not hits:
            return Detection(False, "none", language, (), "no crisis-lexicon match", False)
        present = {_collapse(h) for h in hits}
        norm = _collapse(translated)
        base = language.split("-")[0].split("_")[0].lower()  # "en-GB" reads with the English lexicon first
        order = [base] if base in self._rules else []
        has_cyr = _CYRILLIC.search(norm) is not None
        has_lat = _LATIN.search(norm) is not None
        for code in ("en", "fr", "ru"):
            if code not in order and ((code == "ru" and has_cyr) or (code != "ru" and has_lat)):
                order.append(code)
        found: list[tuple[int, int, str, str, str]] = []
        ignored_raw: list[tuple[int, int, str, str, str, str]] = []
        quotes: list[tuple[int, int]] | None = None
        for code in order:
            rules = self._rules[code]
            closure = self._closure[code]
            chosen: set[int] = set()
            for anchor in present:
                chosen.update(closure.get(anchor, ()))
            if not chosen:
                continue
            candidates: list[tuple[int, int, str, str, str]] = []
            for i in sorted(chosen):
                cat, level, gap, rx = rules.patterns[i]
                for m in rx.finditer(norm):
                    gap_text = " ".join(g for g in m.groups() if g) if gap else ""
                    candidates.append((m.start(), m.end(), cat, level, gap_text))
            if not candidates:
                continue
            # A text full of matches needs only its first few read in context (bounded work).
            candidates = sorted(candidates)[:MAX_CANDIDATES]
            spans = [(m.start(), m.end()) for m in rules.suppressors.finditer(norm)] if rules.suppressors else []
            if quotes is None:
                quotes = [(m.start(), m.end()) for m in _QUOTED.finditer(norm)] if ('"' in norm or "'" in norm) else []
            for s, e, cat, level, gap_text in candidates:
                reason = _context(norm, s, e, gap_text, rules, spans, quotes)
                if reason:
                    ignored_raw.append((s, e, cat, level, code, reason))
                else:
                    found.append((s, e, cat, level, code))
        index = _collapse_map(translated) if (found or ignored_raw) else None

        def to_match(s: int, e: int, cat: str, level: str, code: str) -> Match:
            os_, oe = (index[s], index[e - 1] + 1) if index else (s, e)
            if index and e < len(index) and index[e] > oe:
                oe = index[e]  # include the whole collapsed run ("diiie")
            return Match(text[os_:oe], cat, os_, oe, level, code)

        matched = tuple(to_match(*f) for f in _dedupe(found))
        ignored = tuple(Ignored(to_match(s, e, c, lv, lg), why) for s, e, c, lv, lg, why in sorted(set(ignored_raw)))
        level = "high" if any(m.level == "high" for m in matched) else ("low" if matched else "none")
        return Detection(
            crisis=bool(matched),
            level=level,
            lang=language,
            matched=matched,
            explanation=_explain(matched, ignored),
            method_detail=any(m.category == "method" for m in matched),
            ignored=ignored,
        )


_RANK: Final = {"none": 0, "low": 1, "high": 2}


def _dedupe(found: Sequence[tuple[int, int, str, str, str]]) -> list[tuple[int, int, str, str, str]]:
    """Drop a match inside a longer (or equal) one of at least its level, except method matches."""
    ordered = sorted(set(found), key=lambda f: (f[0], -f[1], -_RANK[f[3]], f[2]))
    kept: list[tuple[int, int, str, str, str]] = []
    for f in ordered:
        covered = any(
            k[0] <= f[0] and f[1] <= k[1] and _RANK[k[3]] >= _RANK[f[3]] and (f[2] != "method" or k[2] == "method")
            for k in kept
        )
        if not covered:
            kept.append(f)
    return kept


def _explain(matched: Sequence[Match], ignored: Sequence[Ignored]) -> str:
    parts = [f"matched '{m.phrase}' ({m.category}, {m.level})" for m in matched]
    parts += [f"ignored '{i.match.phrase}' ({i.match.category}: {i.reason})" for i in ignored]
    if not parts:
        return "no crisis-lexicon match"
    head = "possible crisis language: " if matched else "no match counted: "
    return head + "; ".join(parts)


def _split_words(text: str, rules: _Rules) -> list[str]:
    # English keeps contractions whole ("don't"); French and Russian split at apostrophes ("j'ai").
    return (_WORD if rules.lang == "en" else _PLAIN_WORD).findall(text)


def _is_negator(word: str, rules: _Rules) -> bool:
    return word in rules.negators


def _context(
    norm: str,
    s: int,
    e: int,
    gap_text: str,
    rules: _Rules,
    spans: Sequence[tuple[int, int]],
    quotes: Sequence[tuple[int, int]],
) -> str:
    """Why the candidate at ``norm[s:e]`` does not count, or '' when it does."""
    for a, b in spans:
        if a < e and s < b:
            return "hyperbole or exclusion"
    for a, b in quotes:
        if a < s and e <= b:
            return "quoted"
    # Clause window: negation among the last three words before the phrase.
    lo = max(0, s - 160)
    clause_start = lo
    for m in rules.clause_break.finditer(norm, lo, s):
        clause_start = m.end()
    # A phrase that opens with its own negator carries it ("don't want to live", "не хочу жить",
    # "plus aucune raison de vivre"); a negator before it still cancels any other phrase
    # ("я не хочу, чтобы меня не стало"), and one in a '..' gap cancels ("je ne vais pas me tuer").
    inside = _split_words(norm[s:e], rules)
    if any(_is_negator(w, rules) for w in _split_words(gap_text, rules)):
        return "negated"
    if not any(_is_negator(w, rules) for w in inside[:2]):
        words = _split_words(norm[clause_start:s], rules)[-3:]
        if any(_is_negator(w, rules) for w in words):
            return "negated"
    # Sentence window: reported speech and past/recovery framing.
    sent_start = 0
    for m in _SENTENCE_END.finditer(norm, max(0, s - 300), s):
        sent_start = m.end()
    end_m = _SENTENCE_END.search(norm, e, e + 300)
    sent_end = end_m.start() if end_m else min(len(norm), e + 300)
    # Whose words: the nearest person word looking back decides, unless the phrase has its own
    # first person ("she said hi and I want to die"); a speech verb right after a first person
    # ("I told my therapist", "я сказала маме") reports the author's own words.
    if not any(w in rules.first_person for w in inside):
        before = _split_words(norm[sent_start:s], rules)
        for i in range(len(before) - 1, -1, -1):
            w = before[i]
            if w in rules.first_person:
                break
            if w in rules.third_person:
                if w in rules.speech and any(p in rules.first_person for p in before[max(0, i - 2) : i]):
                    break
                return "reported or third person"
    for pm in rules.past.finditer(norm, sent_start, sent_end):
        between = norm[pm.end() : s] if pm.start() < s else norm[e : pm.start()]
        if not rules.now.search(between):
            return "past or recovery"
    return ""
