"""The click redirect and the open pixel, answered before FastAPI's routing.

They are the public listener's hot path: every tracked link a reader clicks and every open.
FastAPI's router, dependency solving and response classes cost three times the whole of a
plain ASGI 302 here (bench/tracking.py), so these two GET/HEAD routes are a small ASGI
middleware instead; everything else (the unsubscribe page and its one-click POST, /healthz,
errors) goes on to the app. The rules are the routes' were: a token that does not verify, is
expired, or is of another kind is a 404, and a click only ever redirects to the http(s) URL
inside a token we signed.
"""

import base64
import re
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from steadymail.api.deps import AppState
from steadymail.tracking.rewrite import is_http
from steadymail.tracking.tokens import InvalidToken, Kind, TokenData

GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
NO_STORE = {"Cache-Control": "no-store, private", "Pragma": "no-cache"}
_NO_STORE_RAW = [(k.lower().encode(), v.encode()) for k, v in NO_STORE.items()]
_NOT_FOUND = b"not found\n"
_ROUTES = {"/t/c/": (Kind.CLICK, "click"), "/t/o/": (Kind.OPEN, "open")}
# A space, a control character or DEL in a Location would split or bend the header.
_NOT_IN_HEADER = re.compile(rb"[\x00-\x20\x7f]")


def safe_location(url: str) -> str:
    """The URL as ASCII for a Location header: IDNA host, percent-encoded non-ASCII.
    ValueError for a URL that cannot be one (``urlsplit`` refuses it)."""
    parts = urlsplit(url)
    parts.port  # noqa: B018 -- raises ValueError for a port that is not a number
    host = parts.hostname or ""
    try:
        ascii_host = host.encode("idna").decode("ascii") if not host.isascii() else host
    except UnicodeError:
        ascii_host = host
    netloc = parts.netloc.replace(host, ascii_host, 1) if host else parts.netloc
    keep = "/%:@!$&'()*+,;=-._~?#[]"
    joined = urlunsplit(
        (
            parts.scheme,
            netloc,
            quote(parts.path, safe=keep),
            quote(parts.query, safe=keep),
            quote(parts.fragment, safe=keep),
        )
    )
    # Whatever is left that is not ASCII (a host IDNA refuses, non-ASCII in the user part or
    # the port, a host in capitals the replace above missed), percent-encoded as Starlette's
    # RedirectResponse does: a header is bytes.
    return quote(joined, safe=":/%#?=@[]!$&'()*+,;~")


def verify(st: AppState, token: str, kind: Kind) -> TokenData | None:
    """The token's data if it verifies and is of `kind`; None otherwise."""
    try:
        data = st.signer.verify(token)
    except InvalidToken:
        return None
    return data if data.kind == kind else None


class TrackingHotPath:
    """ASGI middleware: GET and HEAD of ``/t/c/<token>`` and ``/t/o/<token>``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = None
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            path: str = scope["path"]
            route = _ROUTES.get(path[:5])
            # One path segment: /t/c/<token>/more is the app's 404, as a route would give.
            if route is not None and "/" in path[5:]:
                route = None
        if route is None:
            await self.app(scope, receive, send)
            return
        st: AppState = scope["app"].state.steadymail
        kind, name = route
        data = verify(st, scope["path"][5:], kind)
        location = b""
        if data is not None and kind == Kind.CLICK:
            location = _location(data.url)
            if not location:
                data = None
        st.metrics.tracking(name, "ok" if data is not None else "not_found", st.clock.now())
        if data is None:
            await _respond(
                scope, send, 404, [(b"content-type", b"text/plain; charset=utf-8")], _NOT_FOUND
            )
            return
        user_agent = ""
        for key, value in scope["headers"]:
            if key == b"user-agent":
                user_agent = value.decode("latin-1")
                break
        client = scope.get("client")
        st.recorder.record(data, scope["method"], user_agent, client[0] if client else "")
        if kind == Kind.CLICK:
            await _respond(scope, send, 302, [(b"location", location), *_NO_STORE_RAW], b"")
        else:
            await _respond(scope, send, 200, [(b"content-type", b"image/gif"), *_NO_STORE_RAW], GIF)


def _location(url: str) -> bytes:
    """The Location of a click's signed URL; empty when it is no http(s) URL a header can
    carry (the click is then a 404, like a forged token: never a 500)."""
    if not is_http(url):
        return b""
    try:
        location = safe_location(url).encode("ascii")
    except (ValueError, UnicodeError):
        return b""
    if _NOT_IN_HEADER.search(location):
        return b""
    return location


async def _respond(
    scope: Scope, send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    """One whole response; a HEAD gets the headers (its length included) and no body."""
    start: dict[str, Any] = {
        "type": "http.response.start",
        "status": status,
        "headers": [*headers, (b"content-length", str(len(body)).encode())],
    }
    await send(start)
    await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})
