"""Machine or person? Rules for opens and clicks, pure functions of what a request shows."""

# Opens fetched by mail-privacy proxies and prefetchers, not by a person looking at the mail.
_PROXY_OPEN_AGENTS = (
    "googleimageproxy",
    "yahoomailproxy",
    "ymailproxy",
    "outlook-proxy",
    "mail.ru-proxy",
    "feedfetcher",
)
# Security gateways and link scanners that follow every link of incoming mail.
_SCANNER_AGENTS = (
    "barracuda",
    "mimecast",
    "proofpoint",
    "symantec",
    "messagelabs",
    "trendmicro",
    "trend micro",
    "forcepoint",
    "sophos",
    "fireeye",
    "cisco",
    "microsoft office existence discovery",
    "safelinks",
    "bingpreview",
    "python-requests",
    "python-urllib",
    "curl/",
    "wget/",
    "go-http-client",
    "okhttp",
    "java/",
    "libwww",
    "headlesschrome",
    "phantomjs",
    "bot",
    "spider",
    "crawler",
    "scanner",
    "preview",
)


def classify_open(user_agent: str) -> tuple[bool, str]:
    """(machine?, reason) for an open-pixel fetch."""
    ua = user_agent.strip().lower()
    if not ua:
        return True, "no-user-agent"
    # Apple Mail Privacy Protection prefetches every image with this bare agent.
    if ua == "mozilla/5.0":
        return True, "apple-privacy-proxy"
    if any(p in ua for p in _PROXY_OPEN_AGENTS):
        return True, "privacy-proxy"
    if any(s in ua for s in _SCANNER_AGENTS):
        return True, "scanner"
    return False, ""


def classify_click(
    method: str, user_agent: str, seconds_after_delivery: float | None, window: float
) -> tuple[bool, str]:
    """(machine?, reason) for a click; `window` is how soon after delivery no person clicks."""
    if method.upper() == "HEAD":
        return True, "head-request"
    ua = user_agent.strip().lower()
    if not ua:
        return True, "no-user-agent"
    if any(s in ua for s in _SCANNER_AGENTS):
        return True, "scanner-agent"
    if seconds_after_delivery is not None and seconds_after_delivery < window:
        return True, "too-soon-after-delivery"
    return False, ""
