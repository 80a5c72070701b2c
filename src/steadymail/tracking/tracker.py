"""Per-message tracking: which links are tracked, how (by version), and the unsubscribe headers."""

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from steadymail.tracking.rewrite import crash_if_chosen, is_http, rewrite_html, rewrite_text
from steadymail.tracking.tokens import Kind, TokenData, TokenSigner

VERSIONS = ("off", "v1", "v2")


def add_utm(url: str, campaign: str) -> str:
    """v2: tag the destination for analytics, keeping any utm_* the author already set."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    present = {k for k, _ in query}
    extra = [
        (k, v)
        for k, v in (
            ("utm_source", "steadymail"),
            ("utm_medium", "email"),
            ("utm_campaign", campaign),
        )
        if k not in present
    ]
    if not extra:
        return url
    return urlunsplit(parts._replace(query=urlencode(query + extra)))


class Tracker:
    """Builds one message's tracking URLs and rewrites its parts."""

    def __init__(self, signer: TokenSigner, public_url: str, open_pixel: bool = True) -> None:
        self._signer = signer
        self._base = public_url.rstrip("/")
        # The open pixel is an <img>: in a message with little text, content filters count it
        # against the message (SpamAssassin's HTML_IMAGE_ONLY_*), so it can be left out.
        self._open_pixel = open_pixel

    def unsubscribe_url(self, send_id: int, message_id: int) -> str:
        token = self._signer.sign(TokenData(Kind.UNSUBSCRIBE, send_id, message_id))
        return f"{self._base}/u/{token}"

    def list_unsubscribe(self, unsubscribe_url: str, mailto_domain: str) -> dict[str, str]:
        """RFC 2369 + RFC 8058 headers: the HTTPS one-click URL and a mailto fallback."""
        token = unsubscribe_url.rsplit("/", 1)[1]
        return {
            "List-Unsubscribe": f"<{unsubscribe_url}>, "
            f"<mailto:unsubscribe@{mailto_domain}?subject=unsubscribe%20{token}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        }

    def rewrite(
        self,
        version: str,
        send_id: int,
        message_id: int,
        html: str,
        text: str,
        crash_one_in: int = 0,
        check_depth: bool = True,
    ) -> tuple[str, str]:
        """Rewrite both parts of one message; each distinct URL gets one link number.
        ``crash_one_in`` is the ``fault.tracking_crash`` drill (0: off)."""
        if version == "off":
            return html, text
        crash_if_chosen(message_id, crash_one_in)
        if version not in VERSIONS:
            raise ValueError(f"unknown tracking version {version!r}")
        links: dict[str, str] = {}
        own = (self._base + "/t/", self._base + "/u/")

        def track(url: str) -> str | None:
            if not is_http(url) or url.startswith(own):
                return None
            if url not in links:
                dest = add_utm(url, f"send-{send_id}") if version == "v2" else url
                token = self._signer.sign(
                    TokenData(Kind.CLICK, send_id, message_id, len(links), dest)
                )
                links[url] = f"{self._base}/t/c/{token}"
            return links[url]

        pixel = None
        if html and self._open_pixel:
            pixel = f"{self._base}/t/o/" + self._signer.sign(
                TokenData(Kind.OPEN, send_id, message_id)
            )
        new_html = rewrite_html(html, track, pixel, check_depth) if html else html
        return new_html, rewrite_text(text, track) if text else text
