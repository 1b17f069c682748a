"""Tests for federation.content: member Markdown rendering and HTML sanitizing."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from federation.content import (
    MentionTarget,
    extract_mentions,
    extract_tags,
    html_to_text,
    normalize_hashtag,
    render_markdown,
    sanitize_html,
)

ALLOWED_TAGS = {
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
ALLOWED_ATTRIBUTES = {
    "a": {"href", "rel", "class"},
    "span": {"class"},
    "ol": {"start", "reversed"},
    "li": {"value"},
}
ALLOWED_SCHEMES = (
    "http:",
    "https:",
    "dat:",
    "dweb:",
    "ipfs:",
    "ipns:",
    "ssb:",
    "gopher:",
    "xmpp:",
    "magnet:",
    "gemini:",
)

ACCOUNTS = {
    ("bob", None): MentionTarget(1, "bob", "bob", "https://hearth.test/@bob"),
    ("alice", "remote.example"): MentionTarget(2, "alice", "alice@remote.example", "https://remote.example/@alice"),
    ("carol", "remote.example:8443"): MentionTarget(
        3, "carol", "carol@remote.example:8443", "https://remote.example:8443/users/carol"
    ),
}


class Resolver:
    """Resolves the fixed ACCOUNTS table and records every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str | None]] = []

    def __call__(self, username: str, domain: str | None) -> MentionTarget | None:
        self.calls.append((username, domain))
        return ACCOUNTS.get((username.lower(), domain))


def tag_url(name: str) -> str:
    return f"https://hearth.test/tags/{name}"


def render(source: str) -> str:
    return render_markdown(source, resolve_mention=Resolver(), tag_url=tag_url).html


class _Elements(HTMLParser):
    """Every element and attribute in a fragment, as a browser's tokenizer would see them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))


def elements(fragment: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Elements()
    parser.feed(fragment)
    parser.close()
    return parser.elements


def links(fragment: str) -> list[dict[str, str | None]]:
    return [attrs for tag, attrs in elements(fragment) if tag == "a"]


def assert_safe(fragment: str) -> None:
    """Only allowlisted elements and attributes; hrefs absolute with an allowed scheme."""
    assert "<script" not in fragment.lower()
    for tag, attrs in elements(fragment):
        assert tag in ALLOWED_TAGS, (tag, fragment)
        for name, value in attrs.items():
            assert not name.startswith("on"), (name, fragment)
            assert name in ALLOWED_ATTRIBUTES.get(tag, set()), (tag, name, fragment)
            if name == "href":
                assert value is not None
                assert value.lower().startswith(ALLOWED_SCHEMES), (value, fragment)
        if tag == "a":
            assert "nofollow" in (attrs.get("rel") or "").split(), fragment


# --- XSS ---------------------------------------------------------------------------------------


def test_render__escapes_raw_html() -> None:
    html = render('<script>alert(1)</script> <b onmouseover="x">bold</b>')

    assert html == ('<p>&lt;script&gt;alert(1)&lt;/script&gt; &lt;b onmouseover="x"&gt;bold&lt;/b&gt;</p>')
    assert_safe(html)


def test_render__escapes_raw_html_blocks() -> None:
    html = render('<div onclick="steal()">\n<img src=x onerror=alert(1)>\n</div>')

    assert elements(html) == [("p", {}), ("br", {}), ("br", {})]
    assert "&lt;img src=x onerror=alert(1)&gt;" in html


def test_render__drops_javascript_markdown_links() -> None:
    for source in [
        "[click](javascript:alert(1))",
        "[click](JaVaScRiPt:alert(1))",
        "[click](java&#x09;script:alert(1))",
        "[click](&#106;avascript:alert(1))",
        "[click](vbscript:msgbox(1))",
        "[click](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
        "[click][ref]\n\n[ref]: javascript:alert(1)",
        "<javascript:alert(1)>",
    ]:
        html = render(source)
        assert_safe(html)
        assert all(not (attrs.get("href") or "") for attrs in links(html)), (source, html)


def test_render__markdown_image_is_a_link_not_an_img() -> None:
    html = render("look ![a *cat*](https://img.example/cat.png) here")

    assert "<img" not in html
    assert links(html) == [{"href": "https://img.example/cat.png", "rel": "nofollow noopener noreferrer"}]
    assert ">a cat</a>" in html


def test_render__data_uri_image_becomes_text() -> None:
    html = render("![x](data:image/png;base64,iVBORw0KGgo=) and ![y](javascript:alert(1))")

    assert "<img" not in html
    assert links(html) == []
    assert_safe(html)


def test_render__image_inside_link_does_not_nest_links() -> None:
    html = render("[![badge](https://img.example/b.svg)](https://ci.example/)")

    assert html == ('<p><a href="https://ci.example/" rel="nofollow noopener noreferrer">badge</a></p>')


def test_sanitize__removes_scripts_and_styles_with_their_content() -> None:
    assert sanitize_html("<p>hi<script>alert(1)</script><style>p{}</style></p>") == "<p>hi</p>"


def test_sanitize__removes_event_handlers_and_unknown_attributes() -> None:
    html = sanitize_html(
        '<p onclick="x()" style="color:red" id="a" title="t">'
        '<a href="https://ok.example" onmouseover="x()" target="_blank">ok</a></p>'
    )

    assert html == ('<p><a href="https://ok.example" rel="nofollow noopener noreferrer">ok</a></p>')


def test_sanitize__drops_img_and_embedded_documents() -> None:
    html = sanitize_html(
        '<img src=x onerror="alert(1)"><iframe src="https://evil.example"></iframe>'
        "<svg><script>alert(1)</script></svg><math><mi>x</mi></math>"
        '<object data="x"></object><embed src="x">text'
    )

    assert html == "text"


def test_sanitize__drops_dangerous_and_relative_hrefs() -> None:
    for href in [
        "javascript:alert(1)",
        " javascript:alert(1)",
        "JAVASCRIPT:alert(1)",
        "java&#x09;script:alert(1)",
        "&#106;&#97;vascript:alert(1)",
        "jav\nascript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "vbscript:msgbox(1)",
        "file:///etc/passwd",
        "/relative/path",
        "//evil.example/protocol-relative",
        "mailto:someone@example.com",
    ]:
        html = sanitize_html(f'<a href="{href}">x</a>')
        assert links(html) == [{"rel": "nofollow noopener noreferrer"}], (href, html)


def test_sanitize__keeps_mastodon_schemes() -> None:
    for href in [
        "https://a.example/",
        "http://a.example/",
        "gemini://a.example/",
        "magnet:?xt=urn:btih:abc",
        "xmpp:someone@a.example",
        "ipfs://bafy",
    ]:
        assert links(sanitize_html(f'<a href="{href}">x</a>'))[0]["href"] == href


def test_sanitize__neutralises_nested_and_malformed_tricks() -> None:
    for attack in [
        "<scr<script>ipt>alert(1)</scr</script>ipt>",
        "<<script>script>alert(1)<</script>/script>",
        '<noscript><p title="</noscript><img src=x onerror=alert(1)>"></noscript>',
        "<!--<script>alert(1)</script>-->",
        "<![CDATA[<script>alert(1)</script>]]>",
        '<a href="https://ok.example"<img src=x onerror=alert(1)>>x</a>',
        '<p><svg><a xlink:href="javascript:alert(1)">x</a></svg></p>',
        '<form><button formaction="javascript:alert(1)">x</button></form>',
        "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
        '<div style="background:url(javascript:alert(1))">x</div>',
        '<a href="https://ok.example" onclick=alert(1)//>x</a>',
        '<p><b><i><u><span class="invisible" onfocus=alert(1) autofocus>x</span></u></i></b>',
    ]:
        assert_safe(sanitize_html(attack))


def test_sanitize__script_split_by_tags_leaves_only_text() -> None:
    # "<scr<script>" is one unknown tag named "scr<script", so what is left is inert text.
    assert sanitize_html("<scr<script>ipt>alert(1)</scr</script>ipt>") == "ipt&gt;alert(1)ipt&gt;"
    assert sanitize_html("<!--<script>alert(1)</script>-->ok") == "ok"


def test_sanitize__filters_classes_to_microformats_and_mastodon_names() -> None:
    html = sanitize_html(
        '<span class="h-card evil p-name btn-danger invisible">x</span>'
        '<a href="https://a.example" class="u-url mention hashtag dt-x e-y ellipsis x">y</a>'
        '<p class="h-entry">z</p>'
    )

    assert html == (
        '<span class="h-card p-name invisible">x</span>'
        '<a href="https://a.example" class="u-url mention hashtag dt-x e-y ellipsis" '
        'rel="nofollow noopener noreferrer">y</a>'
        "<p>z</p>"
    )


def test_sanitize__rel_is_forced_and_only_tag_survives() -> None:
    html = sanitize_html(
        '<a href="https://a.example" rel="opener">a</a><a href="https://a.example/tags/x" rel="tag">b</a>'
    )

    assert [attrs["rel"] for attrs in links(html)] == [
        "nofollow noopener noreferrer",
        "tag nofollow noopener noreferrer",
    ]


# --- Formatting --------------------------------------------------------------------------------


def test_render__keeps_allowed_formatting() -> None:
    html = render(
        "*em* **strong** `code`\n\n> quoted\n\n- one\n- two\n\n3. three\n4. four\n\n```python\nprint('<hi>')\n```"
    )

    assert html == (
        "<p><em>em</em> <strong>strong</strong> <code>code</code></p>"
        "<blockquote><p>quoted</p></blockquote>"
        "<ul><li>one</li><li>two</li></ul>"
        '<ol start="3"><li>three</li><li>four</li></ol>'
        "<pre><code>print('&lt;hi&gt;')\n</code></pre>"
    )


def test_render__single_newline_is_a_line_break() -> None:
    assert render("roses are red\nviolets are blue") == ("<p>roses are red<br>violets are blue</p>")


def test_render__converts_headings() -> None:
    assert render("# Big\n\n###### small\n\nSetext\n===") == (
        "<p><strong>Big</strong></p><p><strong>small</strong></p><p><strong>Setext</strong></p>"
    )


def test_render__drops_horizontal_rules() -> None:
    assert render("a\n\n---\n\nb") == "<p>a</p><p>b</p>"


def test_sanitize__keeps_allowed_elements_and_attributes() -> None:
    source = (
        "<p>a<br><del>d</del> <b>b</b> <i>i</i> <u>u</u> <em>e</em> <strong>s</strong></p>"
        '<ol start="5" reversed=""><li value="7">x</li></ol>'
        "<blockquote><p>q</p></blockquote><pre><code>c</code></pre>"
    )

    assert sanitize_html(source) == source


def test_sanitize__converts_headings_and_drops_their_attributes() -> None:
    html = sanitize_html('<h1 onclick="x()" class="h-entry">Title <em>here</em></h1><h3>Sub</h3>')

    assert html == ("<p><strong>Title <em>here</em></strong></p><p><strong>Sub</strong></p>")


def test_sanitize__heading_text_that_looks_like_a_tag_stays_text() -> None:
    html = sanitize_html('<h2>&lt;h1&gt;not a tag&lt;/h1&gt;</h2><a href="https://a.example/&lt;h1&gt;">x</a>')

    assert html.startswith("<p><strong>&lt;h1&gt;not a tag&lt;/h1&gt;</strong></p>")
    assert links(html)[0]["href"] == "https://a.example/<h1>"


def test_sanitize__rejects_non_numeric_list_numbers() -> None:
    assert sanitize_html('<ol start="x"><li value="1e9">a</li></ol>') == "<ol><li>a</li></ol>"


def test_sanitize__empty_and_whitespace() -> None:
    assert sanitize_html("") == ""
    assert sanitize_html("  \n ") == ""


def test_render__empty_and_whitespace_only_sources_render_to_nothing() -> None:
    for source in ["", "   ", "\n\n\t \n"]:
        rendered = render_markdown(source, resolve_mention=Resolver(), tag_url=tag_url)
        assert rendered.html == ""
        assert rendered.mentions == ()
        assert rendered.tags == ()


# --- Mentions ----------------------------------------------------------------------------------


def test_render__links_local_and_remote_mentions() -> None:
    rendered = render_markdown(
        "hi @bob and @alice@remote.example, also @carol@REMOTE.example:8443!",
        resolve_mention=Resolver(),
        tag_url=tag_url,
    )

    assert rendered.html == (
        '<p>hi <span class="h-card"><a href="https://hearth.test/@bob" class="u-url mention" '
        'rel="nofollow noopener noreferrer">@<span>bob</span></a></span> and '
        '<span class="h-card"><a href="https://remote.example/@alice" class="u-url mention" '
        'rel="nofollow noopener noreferrer">@<span>alice</span></a></span>, also '
        '<span class="h-card"><a href="https://remote.example:8443/users/carol" '
        'class="u-url mention" rel="nofollow noopener noreferrer">@<span>carol</span></a>'
        "</span>!</p>"
    )
    assert [m.account_id for m in rendered.mentions] == [1, 2, 3]


def test_render__unresolved_mention_stays_text() -> None:
    html = render("hello @nobody and @nobody@nowhere.example")

    assert html == "<p>hello @nobody and @nobody@nowhere.example</p>"


def test_render__resolves_each_distinct_mention_once_and_dedupes() -> None:
    resolver = Resolver()
    rendered = render_markdown(
        "@bob @Bob @bob @alice@remote.example @nobody @nobody",
        resolve_mention=resolver,
        tag_url=tag_url,
    )

    assert resolver.calls == [("bob", None), ("alice", "remote.example"), ("nobody", None)]
    assert [m.acct for m in rendered.mentions] == ["bob", "alice@remote.example"]
    assert rendered.html.count('class="u-url mention"') == 4


def test_render__no_mentions_in_code_links_or_urls() -> None:
    resolver = Resolver()
    rendered = render_markdown(
        "`@bob` [@bob](https://x.example) https://x.example/@bob <https://y.example/@bob>\n\n"
        "```\n@bob\n```\n\n    @bob indented",
        resolve_mention=resolver,
        tag_url=tag_url,
    )

    assert resolver.calls == []
    assert rendered.mentions == ()
    assert "mention" not in rendered.html


def test_render__email_addresses_and_escapes_are_not_mentions() -> None:
    resolver = Resolver()
    html = render_markdown("mail bob@remote.example or \\@bob", resolve_mention=resolver, tag_url=tag_url).html

    assert resolver.calls == []
    assert html == "<p>mail bob@remote.example or @bob</p>"


def test_render__mention_username_limits() -> None:
    resolver = Resolver()
    render_markdown(
        "@" + "a" * 30 + " @" + "b" * 31 + " @bob-x @bob.",
        resolve_mention=resolver,
        tag_url=tag_url,
    )

    assert resolver.calls == [("a" * 30, None), ("bob", None)]


def test_render__escapes_what_the_resolver_returns() -> None:
    def hostile(username: str, domain: str | None) -> MentionTarget:
        return MentionTarget(9, '<b onclick="x">', "x", 'https://a.example/"onclick="x')

    html = render_markdown("@bob", resolve_mention=hostile, tag_url=tag_url).html

    assert_safe(html)
    assert '&lt;b onclick="x"&gt;' in html


def test_extract_mentions__matches_rendering() -> None:
    assert extract_mentions("@bob @BOB @alice@Remote.Example `@code` [@link](https://l.example) \\@esc") == (
        ("bob", None),
        ("alice", "remote.example"),
    )


# --- Hashtags ----------------------------------------------------------------------------------


def test_render__links_hashtags() -> None:
    rendered = render_markdown("feeling #Hopeful today", resolve_mention=Resolver(), tag_url=tag_url)

    assert rendered.html == (
        '<p>feeling <a href="https://hearth.test/tags/hopeful" class="mention hashtag" '
        'rel="tag nofollow noopener noreferrer">#<span>Hopeful</span></a> today</p>'
    )
    assert rendered.tags == ("hopeful",)
    assert rendered.tag_display == ("Hopeful",)


def test_render__normalises_tags_like_mastodon() -> None:
    rendered = render_markdown(
        "#Café #CAFÉ #cafe #Cafe\u0301 #ｆｕｌｌ #Straße",
        resolve_mention=Resolver(),
        tag_url=tag_url,
    )

    assert rendered.tags == ("cafe", "full", "strasse")
    assert rendered.tag_display == ("Café", "ｆｕｌｌ", "Straße")
    assert rendered.html.count('href="https://hearth.test/tags/cafe"') == 4


def test_normalize_hashtag__keeps_non_latin_scripts() -> None:
    assert normalize_hashtag("東京") == "東京"
    assert normalize_hashtag("हिन्दी") == "हिन्दी"
    assert normalize_hashtag("Ελλάδα") == "ελλάδα"


def test_render__not_hashtags() -> None:
    html = render(
        "#123 C#x issue#4 https://x.example/#frag #" + "a" * 101 + " `#code` [#link](https://l.example) \\#escaped #"
    )

    assert "hashtag" not in html


def test_render__hashtag_limits() -> None:
    assert extract_tags("#" + "a" * 100) == ("a" * 100,)
    assert extract_tags("#2024 #2024_goals #_x") == ("2024_goals", "_x")
    assert extract_tags("#日本語 #tag-rest #tag's") == ("日本語", "tag")


def test_render__hashtag_in_heading_and_list() -> None:
    assert extract_tags("# About #recovery\n\n- #peer\n- #support") == (
        "recovery",
        "peer",
        "support",
    )


# --- Autolinks ---------------------------------------------------------------------------------


def test_render__autolinks_urls_without_trailing_punctuation() -> None:
    html = render(
        "see https://a.example/path. or https://b.example/q?x=1&y=2, "
        "(https://c.example/x) https://d.example/wiki/Foo_(bar)! https://e.example/?!"
    )

    assert [attrs["href"] for attrs in links(html)] == [
        "https://a.example/path",
        "https://b.example/q?x=1&y=2",
        "https://c.example/x",
        "https://d.example/wiki/Foo_(bar)",
        "https://e.example/",
    ]
    assert "path</a>. or" in html
    assert "x</a>) " in html


def test_render__autolink_needs_a_host_and_a_word_boundary() -> None:
    html = render("https:// and xhttps://a.example and `https://code.example`")

    assert links(html) == []


def test_render__autolink_escapes_quotes() -> None:
    html = render('go to https://a.example/"onmouseover="alert(1)')

    assert_safe(html)
    assert links(html)[0]["href"] == "https://a.example/"


# --- Plain text --------------------------------------------------------------------------------


def test_html_to_text__paragraphs_breaks_and_entities() -> None:
    text = html_to_text(
        "<p>one &amp; <b>two</b><br>three</p>\n<p>four &lt;5&gt;</p>"
        "<ul><li>a</li><li>b</li></ul><pre><code>x\n  y</code></pre>"
    )

    assert text == "one & two\nthree\n\nfour <5>\n\na\nb\n\nx\n  y"


def test_html_to_text__of_rendered_mentions_and_tags() -> None:
    html = render("hi @bob #Hope\nbye")

    assert html_to_text(html) == "hi @bob #Hope\nbye"


def test_html_to_text__skips_script_content_and_collapses_whitespace() -> None:
    assert html_to_text("<p>a\n   b<script>x()</script></p>") == "a b"


# --- Properties --------------------------------------------------------------------------------

MARKDOWNISH = st.lists(
    st.one_of(
        st.text(max_size=20),
        st.sampled_from(
            [
                "<script>",
                "</script>",
                "javascript:",
                "JaVaScRiPt:",
                "data:text/html,",
                "onerror=",
                "<img src=x ",
                '"',
                "'",
                "<",
                ">",
                "&",
                "&#106;",
                "[",
                "]",
                "(",
                ")",
                "![",
                "](",
                "`",
                "```\n",
                "*",
                "_",
                "#",
                "# ",
                "@bob",
                "@alice@remote.example",
                "@",
                "\\",
                "https://",
                "http://a.example/",
                "<https://",
                "\n",
                "\n\n",
                "    ",
                "> ",
                "- ",
                "1. ",
                "---",
                "<h1>",
                "<a href=",
                "<p onclick=",
                "#tag",
                "\u0000",
                "\u202e",
            ]
        ),
    ),
    max_size=30,
).map("".join)


@settings(max_examples=300, deadline=None, database=None)
@given(MARKDOWNISH)
def test_render__output_is_safe_and_a_sanitizer_fixed_point(source: str) -> None:
    rendered = render_markdown(source, resolve_mention=Resolver(), tag_url=tag_url)

    assert sanitize_html(rendered.html) == rendered.html
    assert_safe(rendered.html)
    assert render_markdown(source, resolve_mention=Resolver(), tag_url=tag_url) == rendered


@settings(max_examples=200, deadline=None, database=None)
@given(st.text())
def test_render__arbitrary_text_is_safe(source: str) -> None:
    html = render(source)

    assert sanitize_html(html) == html
    assert_safe(html)


HTMLISH = st.lists(
    st.one_of(
        st.text(max_size=5),
        st.sampled_from(
            [
                "<p>",
                "</p>",
                "<h1>",
                "</h1>",
                '<h2 class="h-x" onclick="x()">',
                "</h2>",
                "<button>",
                '<a href="https://a.example">',
                '<a href="javascript:alert(1)">',
                "</a>",
                "<li>",
                '<ol start="2">',
                "<ul>",
                "<blockquote>",
                "<pre>",
                "\n",
                "<code>",
                "<b>",
                "</b>",
                "<table>",
                "<td>",
                "<div>",
                "<br>",
                '<span class="h-card x">',
                "</span>",
                "<img src=x onerror=alert(1)>",
                "<svg>",
                "<math>",
                "<select>",
                "<textarea>",
                "<script>",
                "</script>",
                "<style>",
                "<!--",
                "-->",
                "&amp;",
                "&lt;h1&gt;",
                '"',
                "<",
            ]
        ),
    ),
    max_size=40,
).map("".join)


@pytest.mark.parametrize(
    "source", ["\ufeff\ufeff\ufeff", "\ufeff", " \ufeff x", "\ufeff\ufeff<p>x</p>", "a\ufeff", "<p>\ufeff</p>"]
)
def test_sanitize__leading_byte_order_marks_do_not_break_the_fixed_point(source: str) -> None:
    once = sanitize_html(source)
    assert not once.startswith("\ufeff")
    assert sanitize_html(once) == once


@settings(max_examples=300, deadline=None, database=None)
@given(st.one_of(HTMLISH, MARKDOWNISH))
def test_sanitize__arbitrary_html_is_safe_and_a_fixed_point(source: str) -> None:
    once = sanitize_html(source)

    assert_safe(once)
    assert sanitize_html(once) == once
