"""Member content: Markdown in, Mastodon-shaped safe HTML out.

How it works. Member Markdown is parsed with markdown-it-py (CommonMark, raw HTML off, so
``<b>`` in a post is shown as text, never interpreted). Before rendering we walk the token
stream and rewrite only plain ``text`` tokens that sit outside links: bare http(s) URLs become
links, ``@user`` / ``@user@domain`` become Mastodon ``h-card`` mentions (when the caller's
resolver knows the account) and ``#tag`` becomes a ``mention hashtag`` link. Code spans, code
blocks, link text, URLs and backslash-escaped characters (``\\@bob``, ``\\#tag``) are never
touched. Images are turned into plain links. The rendered HTML then goes through
:func:`sanitize_html`, the same path that remote HTML takes.

:func:`sanitize_html` is Mastodon's allowlist (research/federation.md §2.5) on nh3 (ammonia):
an nh3 pass that also keeps ``h1``-``h6``, a structural re-serialisation of that already
well-formed output (HTMLParser, no regexes) that turns headings into ``<p><strong>`` and gives
every link its ``rel``, and a final nh3 pass with the strict allowlist. nh3 is always last.

What it guarantees: only ``p span br a del pre code em strong b i u ul ol li blockquote``
survive; attributes are limited to ``a[href rel class]``, ``span[class]``, ``ol[start
reversed]``, ``li[value]``; classes are microformats (``h- p- u- dt- e-``) or ``mention
hashtag ellipsis invisible``; ``href`` must be absolute with one of Mastodon's schemes, every
link carries ``rel="nofollow noopener noreferrer"`` (plus ``tag`` when the source said so);
the output is deterministic and a fixed point of :func:`sanitize_html`.

What it refuses: raw HTML in Markdown, scripts, styles, event handlers, ``javascript:``,
``data:`` and relative or protocol-relative URLs, images, ``target``, ``style`` and ``id``.

Deliberate choice: ``breaks`` is on, so a single newline in a post is a line break. Mastodon
clients send plain text with newlines through the same API, and folding a poem or an address
into one line would surprise members; everything else is CommonMark.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html.parser import HTMLParser

import nh3
from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict

__all__ = [
    "MentionTarget",
    "RenderedContent",
    "extract_mentions",
    "extract_tags",
    "html_to_text",
    "normalize_hashtag",
    "render_markdown",
    "sanitize_html",
]


@dataclass(frozen=True, slots=True)
class MentionTarget:
    """An account a mention resolved to; ``url`` is its profile page (the link target)."""

    account_id: int
    username: str
    acct: str
    url: str


@dataclass(frozen=True, slots=True)
class RenderedContent:
    """Safe HTML plus what it mentions and tags.

    ``mentions`` are distinct accounts in order of first appearance; ``tags`` are normalised
    names (see :func:`normalize_hashtag`) in order of first appearance, and ``tag_display``
    holds, at the same index, the spelling the member first used.
    """

    html: str
    mentions: tuple[MentionTarget, ...]
    tags: tuple[str, ...]
    tag_display: tuple[str, ...]


MentionResolver = Callable[[str, str | None], MentionTarget | None]
TagUrl = Callable[[str], str]

# --- The allowlist (Mastodon's, research/federation.md §2.5) ---------------------------------

_ALLOWED_TAGS = frozenset(
    {
        "p",
        "span",
        "br",
        "a",
        "del",
        "pre",
        "code",
        "em",
        "strong",
        "b",
        "i",
        "u",
        "ul",
        "ol",
        "li",
        "blockquote",
    }
)
_HEADING_TAGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
_ALLOWED_ATTRIBUTES: dict[str, set[str]] = {
    "*": set(),  # without this, nh3 keeps its default lang and title everywhere
    "a": {"href", "rel", "class"},
    "span": {"class"},
    "ol": {"start", "reversed"},
    "li": {"value"},
}
_URL_SCHEMES = frozenset({"http", "https", "dat", "dweb", "ipfs", "ipns", "ssb", "gopher", "xmpp", "magnet", "gemini"})
_CLASS_PREFIXES = ("h-", "p-", "u-", "dt-", "e-")
_CLASS_NAMES = frozenset({"mention", "hashtag", "ellipsis", "invisible"})
_LINK_REL = "nofollow noopener noreferrer"
# Removed together with their content, not unwrapped.
_DROP_CONTENT_TAGS = frozenset(
    {
        "script",
        "style",
        "template",
        "noscript",
        "iframe",
        "object",
        "embed",
        "textarea",
        "title",
        "svg",
        "math",
        "select",
    }
)

_HTML_SPACE_RE = re.compile(r"[\t\n\f\r ]+")
_INTEGER_RE = re.compile(r"-?[0-9]{1,9}")
_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")


def _normalise_rel(value: str) -> str:
    """Every link gets our fixed ``rel``; ``tag`` is the one source value worth keeping."""
    return ("tag " if "tag" in _HTML_SPACE_RE.split(value) else "") + _LINK_REL


def _filter_attribute(tag: str, attribute: str, value: str) -> str | None:
    # nh3 drops attributes outside _ALLOWED_ATTRIBUTES whatever this returns (the tests send
    # onclick, style, id and title); this checks the values of the allowed ones.
    if attribute == "class":
        kept = [
            name for name in _HTML_SPACE_RE.split(value) if name in _CLASS_NAMES or name.startswith(_CLASS_PREFIXES)
        ]
        return " ".join(dict.fromkeys(kept)) or None
    if attribute == "rel":
        return _normalise_rel(value)
    if attribute == "href":
        # Relative and protocol-relative URLs point nowhere useful in federated content;
        # anything without a scheme fails closed here, and nh3 checks the scheme itself.
        return value if _SCHEME_RE.match(value) else None
    if attribute in ("start", "value"):
        stripped = value.strip()
        return stripped if _INTEGER_RE.fullmatch(stripped) else None
    if attribute == "reversed":
        return ""
    return value


def _cleaner(tags: frozenset[str]) -> nh3.Cleaner:
    return nh3.Cleaner(
        tags=tags,
        clean_content_tags=_DROP_CONTENT_TAGS,
        attributes=_ALLOWED_ATTRIBUTES,
        attribute_filter=_filter_attribute,
        strip_comments=True,
        link_rel=None,  # ``rel`` is ours: set in _Reserializer, normalised by the filter
        url_schemes=_URL_SCHEMES,
        generic_attribute_prefixes=set(),
    )


_FIRST_PASS = _cleaner(_ALLOWED_TAGS | _HEADING_TAGS)
_FINAL_PASS = _cleaner(_ALLOWED_TAGS)


class _Reserializer(HTMLParser):
    """Re-emits nh3 output, turning headings into ``<p><strong>`` and adding ``rel`` to links.

    Only ever fed the output of an nh3 pass, which is a well-formed serialisation of an
    allowlisted tree, and its own output is cleaned by nh3 again, so a mistake here can change
    formatting but cannot let anything through.
    """

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HEADING_TAGS:
            self.parts.append("<p><strong>")
            return
        if tag == "a":
            rel = next((value or "" for name, value in attrs if name == "rel"), "")
            attrs = [(name, value) for name, value in attrs if name != "rel"]
            attrs.append(("rel", _normalise_rel(rel)))
        rendered = "".join(f' {name}="{html.escape(value or "", quote=True)}"' for name, value in attrs)
        self.parts.append(f"<{tag}{rendered}>")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        self.parts.append("</strong></p>" if tag in _HEADING_TAGS else f"</{tag}>")

    def handle_data(self, data: str) -> None:
        self.parts.append(html.escape(data, quote=False))


def sanitize_html(source: str) -> str:
    """Clean HTML from anywhere (remote posts, our own renderer) to Mastodon's allowlist.

    Headings become ``<p><strong>…</strong></p>``; everything outside the allowlist is
    unwrapped, or removed with its content for scripts, styles and embedded documents.
    """
    if not source.strip():
        return ""
    reserializer = _Reserializer()
    reserializer.feed(_FIRST_PASS.clean(_trim(source)))
    reserializer.close()
    return _trim(_FINAL_PASS.clean("".join(reserializer.parts)))


def _trim(text: str) -> str:
    """Without surrounding whitespace or leading byte-order marks: the HTML parser drops one
    U+FEFF at the very start of its input, so a result that began with one would lose it when
    cleaned again (found by the fixed-point test: three BOMs came back as one, then none)."""
    trimmed = text.strip()
    while trimmed.startswith("\ufeff"):
        trimmed = trimmed.lstrip("\ufeff").strip()
    return trimmed


# --- Plain text -------------------------------------------------------------------------------

_PARAGRAPH_TAGS = frozenset({"p", "div", "blockquote", "pre", "ul", "ol", "table"} | _HEADING_TAGS)
_LINE_TAGS = frozenset({"br", "li", "tr"})
_SKIP_TEXT_TAGS = frozenset({"script", "style", "template"})


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._pre_depth = 0
        self._skip_depth = 0

    def _break(self, newlines: str) -> None:
        if not self._pre_depth and self.parts:
            self.parts[-1] = self.parts[-1].rstrip(" ")
        self.parts.append(newlines)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _PARAGRAPH_TAGS:
            self._break("\n\n")
        elif tag in _LINE_TAGS:
            self._break("\n")
        if tag in _SKIP_TEXT_TAGS:
            self._skip_depth += 1
        elif tag == "pre":
            self._pre_depth += 1

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _LINE_TAGS:
            self._break("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TEXT_TAGS:
            self._skip_depth = max(0, self._skip_depth - 1)
        elif tag == "pre":
            self._pre_depth = max(0, self._pre_depth - 1)
        if tag in _PARAGRAPH_TAGS:
            self._break("\n\n")

    def handle_data(self, data: str) -> None:
        if self._skip_depth:
            return
        if not self._pre_depth:
            # Outside <pre>, HTML whitespace (newlines included) is just a space, and a
            # space at the start of a line is not shown.
            data = _HTML_SPACE_RE.sub(" ", data)
            if not self.parts or self.parts[-1].endswith("\n"):
                data = data.lstrip(" ")
        if data:
            self.parts.append(data)

    def text(self) -> str:
        joined = re.sub(r" +\n", "\n", "".join(self.parts))
        return re.sub(r"\n{3,}", "\n\n", joined).strip()


def html_to_text(source: str) -> str:
    """Plain text for search and notifications.

    Tags are dropped and entities decoded; ``<br>`` and list items start a new line,
    paragraphs and other blocks are separated by a blank line (as Mastodon does).
    """
    extractor = _TextExtractor()
    extractor.feed(source)
    extractor.close()
    return extractor.text()


# --- Mentions, hashtags, URLs -----------------------------------------------------------------

_MENTION_RE = re.compile(
    r"(?<![\w/=@.+\-])@(?P<username>[A-Za-z0-9_]{1,30})"
    r"(?:@(?P<domain>[^\W_](?:[\w\-]{0,61}[^\W_])?(?:\.[^\W_](?:[\w\-]{0,61}[^\W_])?)*"
    r"(?::[0-9]{1,5})?))?"
    r"(?![\w@])",
)
_URL_RE = re.compile(r"(?<![\w/@.])https?://[^\s<>\"]+", re.IGNORECASE)
_URL_TRAILING = ".,;:!?'\")]"
_MAX_TAG_LENGTH = 100
_TAG_PRECEDING = frozenset("/=)&#@")
# Mastodon folds Latin letters with diacritics to ASCII; these have no decomposition.
_ASCII_FOLD = {
    "ß": "ss",
    "æ": "ae",
    "œ": "oe",
    "ø": "o",
    "đ": "d",
    "ł": "l",
    "þ": "th",
    "ð": "d",
    "ı": "i",
    "ħ": "h",
    "ŧ": "t",
}


def _is_tag_char(char: str) -> bool:
    return char == "_" or unicodedata.category(char)[0] in "LM" or unicodedata.category(char) == "Nd"


def normalize_hashtag(name: str) -> str:
    """Mastodon's hashtag normalisation: NFKC, lowercase, Latin diacritics folded to ASCII.

    ``Café``, ``CAFÉ`` and ``cafe`` are the same tag; non-Latin scripts are kept as written.
    """
    lowered = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).lower())
    folded: list[str] = []
    for char in lowered:
        if char in _ASCII_FOLD:
            folded.append(_ASCII_FOLD[char])
            continue
        decomposed = unicodedata.normalize("NFD", char)
        if (
            len(decomposed) > 1
            and decomposed[0].isascii()
            and all(unicodedata.category(mark) == "Mn" for mark in decomposed[1:])
        ):
            folded.append(decomposed[0])
        else:
            folded.append(char)
    return "".join(char for char in "".join(folded) if _is_tag_char(char))


def _match_hashtag(text: str, position: int) -> str | None:
    """The tag name if ``text[position]`` (a ``#``) starts a hashtag, else None."""
    if position > 0:
        before = text[position - 1]
        if _is_tag_char(before) or unicodedata.category(before)[0] == "N" or (before in _TAG_PRECEDING):
            return None
    end = position + 1
    while end < len(text) and _is_tag_char(text[end]):
        end += 1
    name = text[position + 1 : end]
    if not name or len(name) > _MAX_TAG_LENGTH:
        return None
    if not any(unicodedata.category(char)[0] == "L" for char in name):
        return None  # "#1", "#2024", "#___" are numbers and lines, not tags
    return name


def _trim_url(url: str) -> str:
    """Drop trailing punctuation, keeping a closing bracket that closes one in the URL."""
    opening = {")": url.count("("), "]": url.count("[")}
    closing = {")": url.count(")"), "]": url.count("]")}
    end = len(url)
    while end and url[end - 1] in _URL_TRAILING:
        last = url[end - 1]
        if last in closing:
            if opening[last] >= closing[last]:
                break
            closing[last] -= 1
        end -= 1
    return url[:end]


@dataclass(frozen=True, slots=True)
class _Url:
    url: str


@dataclass(frozen=True, slots=True)
class _Mention:
    text: str
    username: str
    domain: str | None


@dataclass(frozen=True, slots=True)
class _Hashtag:
    name: str


_Segment = str | _Url | _Mention | _Hashtag


def _scan_words(text: str) -> list[_Segment]:
    """Split URL-free text into plain strings, mentions and hashtags."""
    segments: list[_Segment] = []
    start = 0
    position = 0
    while position < len(text):
        char = text[position]
        found: _Segment | None = None
        end = position
        if char == "@":
            match = _MENTION_RE.match(text, position)
            if match:
                domain = match.group("domain")
                found = _Mention(match.group(0), match.group("username"), domain.lower() if domain else None)
                end = match.end()
        elif char == "#":
            name = _match_hashtag(text, position)
            if name is not None:
                found = _Hashtag(name)
                end = position + 1 + len(name)
        if found is None:
            position += 1
            continue
        if start < position:
            segments.append(text[start:position])
        segments.append(found)
        start = position = end
    if start < len(text):
        segments.append(text[start:])
    return segments


def _scan_text(text: str) -> list[_Segment]:
    """Split one text token into plain strings, URLs, mentions and hashtags."""
    segments: list[_Segment] = []
    start = 0
    for match in _URL_RE.finditer(text):
        url = _trim_url(match.group(0))
        host_start = url[url.index("://") + 3 :][:1]
        if not (host_start.isalnum() or host_start == "["):
            continue  # "https://", "https://#x": no host, so not a link
        segments.extend(_scan_words(text[start : match.start()]))
        segments.append(_Url(url))
        start = match.start() + len(url)
    segments.extend(_scan_words(text[start:]))
    return segments


# --- Markdown ---------------------------------------------------------------------------------


class _CompactRenderer(RendererHTML):
    """CommonMark HTML without cosmetic newlines between blocks (Mastodon's shape)."""

    def renderToken(self, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
        return super().renderToken(tokens, idx, options, env).strip("\n")

    def code_block(self, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
        return f"<pre><code>{escapeHtml(tokens[idx].content)}</code></pre>"

    def fence(self, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
        return f"<pre><code>{escapeHtml(tokens[idx].content)}</code></pre>"

    def hardbreak(self, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
        return "<br>"

    def softbreak(self, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
        return "<br>" if options["breaks"] else "\n"

    def text_special(self, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
        return escapeHtml(tokens[idx].content)

    def image(self, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
        # Images are rewritten before rendering; this is the fallback, never an <img>.
        return escapeHtml(_inline_text(tokens[idx].children or []))


# "text_join" would merge backslash escapes into plain text; keeping them apart is what lets
# "\@bob" and "\#tag" opt out of linking.
_MARKDOWN = MarkdownIt("commonmark", {"html": False, "breaks": True}, renderer_cls=_CompactRenderer).disable(
    "text_join"
)


def _inline_text(tokens: Sequence[Token]) -> str:
    parts: list[str] = []
    for token in tokens:
        if token.type in ("text", "text_special", "code_inline"):
            parts.append(token.content)
        elif token.type == "image":
            parts.append(_inline_text(token.children or []))
        elif token.type in ("softbreak", "hardbreak"):
            parts.append(" ")
    return "".join(parts)


def _text_token(content: str) -> Token:
    return Token("text", "", 0, content=content)


def _link_tokens(href: str, text: str) -> list[Token]:
    return [
        Token("link_open", "a", 1, attrs={"href": href}),
        _text_token(text),
        Token("link_close", "a", -1),
    ]


class _Collector:
    """Turns scanned segments into tokens, resolving each distinct mention once."""

    def __init__(self, resolve_mention: MentionResolver | None, tag_url: TagUrl | None) -> None:
        self._resolve = resolve_mention
        self._tag_url = tag_url
        self._resolved: dict[tuple[str, str | None], MentionTarget | None] = {}
        self.raw_mentions: list[tuple[str, str | None]] = []
        self.mentions: dict[int, MentionTarget] = {}
        self.tags: dict[str, str] = {}

    def _mention_target(self, mention: _Mention) -> MentionTarget | None:
        key = (mention.username.lower(), mention.domain)
        if key not in self._resolved:
            self.raw_mentions.append((mention.username, mention.domain))
            target = self._resolve(mention.username, mention.domain) if self._resolve else None
            self._resolved[key] = target
        return self._resolved[key]

    def rewrite_text(self, text: str) -> list[Token]:
        tokens: list[Token] = []
        for segment in _scan_text(text):
            if isinstance(segment, str):
                tokens.append(_text_token(segment))
            elif isinstance(segment, _Url):
                tokens.extend(_link_tokens(_MARKDOWN.normalizeLink(segment.url), segment.url))
            elif isinstance(segment, _Mention):
                target = self._mention_target(segment)
                if target is None:
                    tokens.append(_text_token(segment.text))
                    continue
                self.mentions.setdefault(target.account_id, target)
                tokens.append(
                    Token(
                        "html_inline",
                        "",
                        0,
                        content=(
                            '<span class="h-card"><a href="'
                            f'{html.escape(target.url, quote=True)}" class="u-url mention">'
                            f"@<span>{html.escape(target.username, quote=False)}</span></a></span>"
                        ),
                    )
                )
            else:
                normalised = normalize_hashtag(segment.name)
                if not normalised:
                    tokens.append(_text_token("#" + segment.name))
                    continue
                self.tags.setdefault(normalised, segment.name)
                href = self._tag_url(normalised) if self._tag_url else ""
                tokens.append(
                    Token(
                        "html_inline",
                        "",
                        0,
                        content=(
                            f'<a href="{html.escape(href, quote=True)}" class="mention hashtag" '
                            f'rel="tag">#<span>{html.escape(segment.name, quote=False)}</span></a>'
                        ),
                    )
                )
        return tokens


def _rewrite_inline(children: Sequence[Token], collector: _Collector) -> list[Token]:
    rewritten: list[Token] = []
    link_depth = 0
    for token in children:
        if token.type == "link_open":
            link_depth += 1
            rewritten.append(token)
        elif token.type == "link_close":
            link_depth = max(0, link_depth - 1)
            rewritten.append(token)
        elif token.type == "image":
            alt = _inline_text(token.children or [])
            src = str(token.attrGet("src") or "")
            if link_depth or not src.lower().startswith(("http://", "https://")):
                rewritten.append(_text_token(alt))
            else:
                rewritten.extend(_link_tokens(src, alt or src))
        elif token.type == "text" and link_depth == 0:
            rewritten.extend(collector.rewrite_text(token.content))
        else:
            rewritten.append(token)
    return rewritten


def _parse(source: str, collector: _Collector) -> list[Token]:
    tokens = _MARKDOWN.parse(source)
    for token in tokens:
        if token.type == "inline" and token.children:
            token.children = _rewrite_inline(token.children, collector)
    return tokens


def render_markdown(
    source: str,
    *,
    resolve_mention: MentionResolver,
    tag_url: TagUrl,
) -> RenderedContent:
    """Render member Markdown to sanitized, Mastodon-shaped HTML.

    ``resolve_mention(username, domain)`` is called once per distinct mention (``domain`` is
    None for ``@user``, lowercased otherwise); a mention it returns None for stays plain text.
    ``tag_url`` receives the normalised tag name. Empty or whitespace-only input gives "".
    """
    if not source.strip():
        return RenderedContent(html="", mentions=(), tags=(), tag_display=())
    collector = _Collector(resolve_mention, tag_url)
    tokens = _parse(source, collector)
    rendered = _MARKDOWN.renderer.render(tokens, _MARKDOWN.options, {})
    return RenderedContent(
        html=sanitize_html(rendered),
        mentions=tuple(collector.mentions.values()),
        tags=tuple(collector.tags),
        tag_display=tuple(collector.tags.values()),
    )


def extract_mentions(source: str) -> tuple[tuple[str, str | None], ...]:
    """Distinct ``(username, domain)`` mentions in member Markdown, as render_markdown sees them.

    Case-insensitive on the username; the spelling returned is the first one used.
    """
    collector = _Collector(None, None)
    _parse(source, collector)
    return tuple(collector.raw_mentions)


def extract_tags(source: str) -> tuple[str, ...]:
    """Distinct normalised hashtags in member Markdown, in order of first appearance."""
    collector = _Collector(None, None)
    _parse(source, collector)
    return tuple(collector.tags)
