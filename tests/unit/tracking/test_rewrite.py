import re
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from selectolax.lexbor import LexborHTMLParser

from steadymail.errors import ValidationError
from steadymail.tracking.rewrite import MAX_HTML_DEPTH, html_depth, rewrite_text
from steadymail.tracking.tokens import Kind, TokenSigner
from steadymail.tracking.tracker import Tracker

SIGNER = TokenSigner({"k1": b"s"}, "k1")
BASE = "https://t.example.net"
TRACKER = Tracker(SIGNER, BASE)


def hrefs(html: str) -> list[str]:
    return [a.attributes.get("href") or "" for a in LexborHTMLParser(html).css("a")]


def resolve(url: str) -> str:
    assert url.startswith(BASE + "/t/c/"), url
    data = SIGNER.verify(url.rsplit("/", 1)[1])
    assert data.kind == Kind.CLICK
    return data.url


DOC = """<p>Caf&eacute; &amp; more &nbsp;</p>
<a href="https://example.com/a?x=1&amp;y=2#frag">one</a>
<a href="HTTP://b\u00fccher.de/\u00fcber?q=\u00e4">idn</a>
<a href="mailto:hi@example.com">mail</a> <a href="tel:+123">tel</a> <a href="#top">top</a>
<a href="/relative/path">rel</a> <a href="https://example.com/skip" data-notrack>skip</a>
<a href="https://t.example.net/u/abc">unsubscribe</a>
<a href="https://example.com/a?x=1&amp;y=2#frag">one again</a>"""


def test_what_is_tracked_and_what_is_left_alone() -> None:
    html, _ = TRACKER.rewrite("v1", 5, 9, DOC, "")
    got = hrefs(html)
    assert resolve(got[0]) == "https://example.com/a?x=1&y=2#frag"  # entity decoded once
    assert resolve(got[1]) == "HTTP://b\u00fccher.de/\u00fcber?q=\u00e4"
    assert got[2:8] == [
        "mailto:hi@example.com",
        "tel:+123",
        "#top",
        "/relative/path",
        "https://example.com/skip",
        "https://t.example.net/u/abc",
    ]
    assert got[8] == got[0]  # one link number per distinct URL
    assert '<img src="https://t.example.net/t/o/' in html
    tree = LexborHTMLParser(html)
    assert tree.body is not None and "Café & more" in tree.body.text()


def test_text_part_urls_are_rewritten_and_punctuation_kept() -> None:
    _, text = TRACKER.rewrite(
        "v1", 5, 9, "", "See https://example.com/a?b=1. Or (https://x.org/p)."
    )
    words = text.split()
    assert resolve(words[1].rstrip(".")) == "https://example.com/a?b=1"
    assert words[1].endswith(".") and words[3].startswith("(") and words[3].endswith(").")
    assert resolve(words[3][1:-2]) == "https://x.org/p"


def test_versions() -> None:
    assert TRACKER.rewrite("off", 1, 1, DOC, "https://a.b/") == (DOC, "https://a.b/")
    html, _ = TRACKER.rewrite("v2", 7, 1, '<a href="https://e.com/?utm_source=me&k=v">x</a>', "")
    dest = resolve(hrefs(html)[0])
    q = parse_qs(urlsplit(dest).query)
    assert q["utm_source"] == ["me"] and q["utm_campaign"] == ["send-7"] and q["k"] == ["v"]


urls = st.builds(
    lambda scheme, host, path, query: f"{scheme}://{host}/{path}" + (f"?{query}" if query else ""),
    st.sampled_from(["http", "https", "HTTPS"]),
    st.from_regex(r"[a-z]{1,10}\.(com|org|de)", fullmatch=True),
    st.text(
        st.characters(
            blacklist_categories=("Cc", "Cs", "Zs", "Zl", "Zp"), blacklist_characters="\"<>'&#?"
        ),
        max_size=20,
    ),
    st.text(st.sampled_from("abc=&xyz1%"), max_size=15),
)
others = st.sampled_from(["mailto:a@b.c", "tel:123", "#x", "/rel", "ftp://x.org/f"])
words = st.text(
    st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="<>&"), max_size=15
)


TRACKED = re.compile(re.escape(BASE) + r"/t/c/[\w-]+\.[\w-]+\.[\w-]+")


def link_number(url: str) -> int:
    assert url.startswith(BASE + "/t/c/"), url
    return SIGNER.verify(url.rsplit("/", 1)[1]).link


@settings(max_examples=150)
@given(st.lists(st.tuples(words, st.one_of(urls, others)), min_size=1, max_size=8), words)
def test_property_html_links_are_tracked_and_all_else_kept(
    parts: list[tuple[str, str]], tail: str
) -> None:
    """Rewriting replaces each http(s) href with a tracking URL whose token verifies back to
    that href (one link number per distinct URL), leaves every other href, every other
    attribute and all the text as they were, and adds one open pixel."""
    from html import escape

    doc = "".join(
        f'<p>{escape(w)}<a class="c{i}" href="{escape(u)}">{escape(w)}</a></p>'
        for i, (w, u) in enumerate(parts)
    )
    doc += f"<p>{escape(tail)}</p>"
    html, _ = TRACKER.rewrite("v1", 1, 1, doc, "")
    before, after = LexborHTMLParser(doc), LexborHTMLParser(html)
    assert (after.body.text() if after.body else "") == (before.body.text() if before.body else "")
    assert [a.attributes.get("class") for a in after.css("a")] == [
        f"c{i}" for i in range(len(parts))
    ]
    numbers: dict[str, int] = {}
    for original, new in zip(hrefs(doc), hrefs(html), strict=True):
        if original.strip().lower().startswith(("http://", "https://")):
            assert resolve(new) == original.strip()
            assert numbers.setdefault(original.strip(), link_number(new)) == link_number(new)
        else:
            assert new == original
    assert sorted(numbers.values()) == list(range(len(numbers)))  # distinct URLs, distinct numbers
    assert len(after.css('img[src^="' + BASE + '/t/o/"]')) == 1


# Prose without ":" cannot contain a URL: every URL of the text part is one of `urls`.
prose = st.text(st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters=":"))


@settings(max_examples=150)
@given(st.lists(st.one_of(urls.map(lambda u: (True, u)), prose.map(lambda p: (False, p)))))
def test_property_text_part_urls_are_tracked_and_all_else_kept(
    parts: list[tuple[bool, str]],
) -> None:
    """In the text part each URL becomes a tracking URL whose token verifies back to it (less
    trailing prose punctuation, which stays after it), and nothing else changes: putting the
    verified URLs back gives the text as it was."""
    text = " ".join(p for _, p in parts)
    _, out = TRACKER.rewrite("v1", 1, 1, "", text)
    found = TRACKED.findall(out)
    url_parts = [p for is_url, p in parts if is_url]
    assert len(found) == len(url_parts), out
    assert TRACKED.sub(lambda m: resolve(m.group(0)), out) == text
    for original, tracked in zip(url_parts, found, strict=True):
        dest = resolve(tracked)
        assert original.startswith(dest) and dest.lower().startswith("http")
        assert all(c in ".,;:!?)]}'\"" for c in original[len(dest) :]), (original, dest)


def test_a_long_run_of_closing_brackets_after_a_url() -> None:
    # Once quadratic: each stripped ")" recounted the brackets of the whole URL.
    closes = ")" * 200_000
    assert rewrite_text("see http://a" + closes + " now", lambda u: f"<{u}>") == (
        "see <http://a>" + closes + " now"
    )
    # Brackets the URL opened stay in it; the rest is prose.
    text = "(see http://a/(b)" + closes + "."
    assert rewrite_text(text, lambda u: f"<{u}>") == "(see <http://a/(b)>" + closes + "."


def test_a_long_hostile_text_part_is_rewritten_whole() -> None:
    text = ("http://x.io/" + "(" * 50 + "." * 50 + ")" * 99 + " ") * 1000
    out = rewrite_text(text, lambda u: "T")
    assert out == ("T" + ")" * 49 + " ") * 1000


def test_html_nesting_is_measured_as_a_parser_would_stack_it() -> None:
    assert html_depth("<div><p>a<p>b<ul><li>x<li>y</ul><br><img src=x></div>") == 2
    assert html_depth("<div></span></div>" * 1000) == 1  # stray end tags are ignored
    assert html_depth("<svg>" + "<path d='x'/>" * 1000 + "</svg>") == 1
    assert html_depth("<div/>" * 600) == 600  # "/>" closes nothing on an HTML element
    assert html_depth("<x<>" * 600) == 600  # a tag name runs to whitespace, "/" or ">"
    assert html_depth("<a" * 100_000) == 0


def test_html_nested_past_the_limit_is_refused_before_parsing() -> None:
    # Lexbor parses 200,000 nested <div> in minutes (quadratic, in C, past any deadline).
    with pytest.raises(ValidationError, match="200000 elements deep"):
        TRACKER.rewrite("v1", 5, 9, "<div>" * 200_000, "")
    ok = "<div>" * (MAX_HTML_DEPTH - 1) + '<a href="https://example.com/">x</a>'
    html, _ = TRACKER.rewrite("v1", 5, 9, ok, "")
    assert resolve(hrefs(html)[0]) == "https://example.com/"


def test_without_the_open_pixel_links_are_still_tracked() -> None:
    html, text = Tracker(SIGNER, BASE, open_pixel=False).rewrite(
        "v1", 1, 2, '<p><a href="https://example.com/x">x</a></p>', "https://example.com/x"
    )
    assert "/t/o/" not in html and "<img" not in html
    assert BASE + "/t/c/" in html and BASE + "/t/c/" in text
