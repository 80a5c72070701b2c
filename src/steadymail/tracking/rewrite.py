"""Link rewriting: HTML through a real HTML5 parser (Lexbor, via selectolax), text by URL scan.

`track(url)` decides per link: it returns the tracking URL to put in its place, or None to
leave the link as it is. Which links are tracked is the caller's policy (see tracker.py).
"""

import re
from collections import Counter
from collections.abc import Callable

from selectolax.lexbor import LexborHTMLParser

from steadymail.errors import ValidationError

Track = Callable[[str], str | None]

_WHOLE_DOCUMENT = re.compile(r"<html[\s>]", re.IGNORECASE)
# Plain text only: URLs end at whitespace or angle brackets; trailing punctuation is prose.
_TEXT_URL = re.compile(r"https?://[^\s<>\"']+", re.IGNORECASE)
_TRAILING = ".,;:!?)]}'\""


# An HTML5 parser walks its stack of open elements for many start tags (``<div>`` looks for an
# open ``<p>``), so parsing is quadratic in the nesting: 200,000 ``<div>`` took Lexbor minutes,
# in C, where no deadline can stop it. Real mail nests a few dozen deep.
MAX_HTML_DEPTH = 512
# As an HTML tokenizer reads a tag: its name runs to whitespace, "/" or ">" ("<" included).
_TAG = re.compile(r"<(/?)([A-Za-z][^\t\n\f\r />]*)[^>]*?(/?)>")
_VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "keygen", "link", "meta"}
    | {"param", "source", "track", "wbr"}
)
# End tags a parser implies when the next sibling starts; they never pile up on its stack.
_IMPLIED_END = frozenset(
    {"p", "li", "dt", "dd", "option", "optgroup", "tr", "td", "th", "thead", "tbody", "tfoot"}
    | {"colgroup", "caption", "rb", "rt", "rp", "rtc", "html", "head", "body"}
)


def html_depth(html: str) -> int:
    """How deep elements nest in ``html``, estimated as a parser would stack them (linear time).

    End tags close back to the element they name, if it is open (each element is pushed and
    popped once); stray end tags are ignored, as parsers do. ``/>`` closes only inside SVG and
    MathML: on an HTML element the parser ignores it."""
    stack: list[str] = []
    open_names: Counter[str] = Counter()
    deepest = 0
    # Scanning stops at the last ">": past it no tag can end, and trying each "<" there to the
    # end of the text would be quadratic.
    for m in _TAG.finditer(html, 0, html.rfind(">") + 1):
        closing, name, self_closing = m.group(1), m.group(2).lower(), m.group(3)
        if name in _VOID or name in _IMPLIED_END:
            continue
        if closing:
            if open_names[name]:
                while stack:
                    top = stack.pop()
                    open_names[top] -= 1
                    if top == name:
                        break
        elif not (self_closing and (open_names["svg"] or open_names["math"])):
            stack.append(name)
            open_names[name] += 1
            deepest = max(deepest, len(stack))
    return deepest


def check_html_depth(html: str) -> None:
    """Refuse HTML nested deeper than MAX_HTML_DEPTH, before any parser sees it."""
    depth = html_depth(html)
    if depth > MAX_HTML_DEPTH:
        raise ValidationError(
            f"HTML part nests {depth} elements deep (limit {MAX_HTML_DEPTH}); close your tags"
        )


def rewrite_html(
    html: str, track: Track, pixel_url: str | None = None, check_depth: bool = True
) -> str:
    """Replace tracked `<a href>` values; append an open pixel when `pixel_url` is given.
    ``check_depth=False`` only for HTML whose nesting is known to be bounded already (a
    template of fixed structure, see sending/render.py)."""
    if check_depth:
        check_html_depth(html)
    tree = LexborHTMLParser(html)
    for a in tree.css("a[href]"):
        if "data-notrack" in a.attributes:
            continue
        href = a.attributes.get("href")
        if not href:
            continue
        new = track(href.strip())
        if new is not None:
            a.attrs["href"] = new
    whole = bool(_WHOLE_DOCUMENT.search(html))
    body = tree.body
    out = (tree.html if whole or body is None else body.inner_html) or ""
    if pixel_url:
        pixel = f'<img src="{pixel_url}" width="1" height="1" alt="" style="display:none">'
        cut = out.rfind("</body>")
        out = out[:cut] + pixel + out[cut:] if cut >= 0 else out + pixel
    return out


def rewrite_text(text: str, track: Track) -> str:
    """Replace tracked URLs in a plain-text part (linear in the text's length)."""

    def swap(m: re.Match[str]) -> str:
        url = m.group(0)
        end = _url_end(url)
        new = track(url[:end])
        return (new if new is not None else url[:end]) + url[end:]

    return _TEXT_URL.sub(swap, text)


def _url_end(url: str) -> int:
    """Where the trailing prose punctuation of a matched URL begins.

    Counts brackets once and walks back once: counting per stripped character made a URL
    followed by a long run of ``)`` quadratic."""
    opens, closes = url.count("("), url.count(")")
    end = len(url)
    while end and url[end - 1] in _TRAILING:
        if url[end - 1] == ")":
            # A closing bracket belongs to the URL when it has its opening one inside.
            if opens >= closes:
                break
            closes -= 1
        end -= 1
    return end


class RewriterCrash(BaseException):
    """The link rewriter's crash, injected by the ``fault.tracking_crash`` drill.

    A BaseException, as a crash below Python would be: no per-message guard (they catch
    Exception) keeps the worker alive through it, which is the outage the drill replays."""


def crash_if_chosen(message_id: int, one_in: int) -> None:
    """The drill's fault: one message in ``one_in`` (by id, so the same message every time)."""
    if one_in > 0 and message_id % one_in == 0:
        raise RewriterCrash(
            f"link rewriter crashed on message {message_id} (fault.tracking_crash 1 in {one_in})"
        )


def is_http(url: str) -> bool:
    return url[:7].lower() == "http://" or url[:8].lower() == "https://"
