"""Link rewriting: HTML through a real HTML5 parser (Lexbor, via selectolax), text by URL scan.

`track(url)` decides per link: it returns the tracking URL to put in its place, or None to
leave the link as it is. Which links are tracked is the caller's policy (see tracker.py).
"""

import re
from collections.abc import Callable

from selectolax.lexbor import LexborHTMLParser

Track = Callable[[str], str | None]

_WHOLE_DOCUMENT = re.compile(r"<html[\s>]", re.IGNORECASE)
# Plain text only: URLs end at whitespace or angle brackets; trailing punctuation is prose.
_TEXT_URL = re.compile(r"https?://[^\s<>\"']+", re.IGNORECASE)
_TRAILING = ".,;:!?)]}'\""


def rewrite_html(html: str, track: Track, pixel_url: str | None = None) -> str:
    """Replace tracked `<a href>` values; append an open pixel when `pixel_url` is given."""
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
