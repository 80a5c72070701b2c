"""Public tracking routes: click redirect, open pixel, unsubscribe page and RFC 8058 one-click.

A token that does not verify, is expired, or is of the wrong kind, is a 404: the click route
can only ever redirect to a URL that is inside a token we signed. Repeats are cheap: an open or
unsubscribe is written once a message, and events wait in a bounded buffer (tracking/events.py).
"""

import base64
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment

from steadymail.api.deps import state
from steadymail.api.responses import GifResponse
from steadymail.errors import NotFound
from steadymail.services import unsubscribes
from steadymail.tracking.rewrite import is_http
from steadymail.tracking.tokens import InvalidToken, Kind, TokenData

router = APIRouter(include_in_schema=False)

GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
_NO_STORE = {"Cache-Control": "no-store, private", "Pragma": "no-cache"}
_NOT_FOUND = Response("not found\n", status_code=404, media_type="text/plain")
# What a route answers for a token that does not verify (the schema is not published: the
# declarations say what each route returns, for the reader and the route test).
_NOT_FOUND_DOC: dict[int | str, dict[str, Any]] = {
    404: {"description": "the token does not verify", "content": {"text/plain": {}}}
}
_PAGES = Environment(autoescape=True)
_CONFIRM = _PAGES.from_string("""<!doctype html><html><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width"><title>Unsubscribe</title></head>
<body><main><h1>Unsubscribe</h1>
{% if done %}<p>You will not receive these emails any more.</p>
{% else %}<p>Stop receiving these emails?</p>
<form method="post"><button type="submit" name="List-Unsubscribe" value="One-Click">
Unsubscribe</button></form>{% endif %}</main></body></html>""")


def _verify(request: Request, token: str, kind: Kind) -> TokenData | None:
    try:
        data: TokenData = state(request).signer.verify(token)
    except InvalidToken:
        return None
    return data if data.kind == kind else None


def safe_location(url: str) -> str:
    """The URL as ASCII for a Location header: IDNA host, percent-encoded non-ASCII."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        ascii_host = host.encode("idna").decode("ascii") if not host.isascii() else host
    except UnicodeError:
        ascii_host = host
    netloc = parts.netloc.replace(host, ascii_host, 1) if host else parts.netloc
    keep = "/%:@!$&'()*+,;=-._~?#[]"
    return urlunsplit(
        (
            parts.scheme,
            netloc,
            quote(parts.path, safe=keep),
            quote(parts.query, safe=keep),
            quote(parts.fragment, safe=keep),
        )
    )


def _count(request: Request, kind: str, found: bool) -> None:
    st = state(request)
    st.metrics.tracking(kind, "ok" if found else "not_found", st.clock.now())


def _client(request: Request) -> tuple[str, str]:
    ip = request.client.host if request.client else ""
    return request.headers.get("user-agent", ""), ip


@router.api_route(
    "/t/c/{token}",
    methods=["GET", "HEAD"],
    response_class=RedirectResponse,
    status_code=302,
    responses=_NOT_FOUND_DOC,
)
async def click(token: str, request: Request) -> Response:
    data = _verify(request, token, Kind.CLICK)
    _count(request, "click", data is not None)
    if data is None or not is_http(data.url):
        return _NOT_FOUND
    ua, ip = _client(request)
    state(request).recorder.record(data, request.method, ua, ip)
    return RedirectResponse(safe_location(data.url), status_code=302, headers=_NO_STORE)


@router.get("/t/o/{token}", response_class=GifResponse, responses=_NOT_FOUND_DOC)
async def open_pixel(token: str, request: Request) -> Response:
    data = _verify(request, token, Kind.OPEN)
    _count(request, "open", data is not None)
    if data is None:
        return _NOT_FOUND
    ua, ip = _client(request)
    state(request).recorder.record(data, request.method, ua, ip)
    return GifResponse(GIF, headers=_NO_STORE)


@router.get("/u/{token}", response_class=HTMLResponse, responses=_NOT_FOUND_DOC)
async def unsubscribe_page(token: str, request: Request) -> Response:
    if _verify(request, token, Kind.UNSUBSCRIBE) is None:
        return _NOT_FOUND
    return HTMLResponse(_CONFIRM.render(done=False), headers=_NO_STORE)


@router.post("/u/{token}", response_class=HTMLResponse, responses=_NOT_FOUND_DOC)
def unsubscribe(token: str, request: Request) -> Response:
    """RFC 8058 one-click (and the page's button): suppress the address from newsletters now,
    then record it."""
    data = _verify(request, token, Kind.UNSUBSCRIBE)
    _count(request, "unsubscribe", data is not None)
    if data is None:
        return _NOT_FOUND
    st = state(request)
    # A repeat (mail clients retry, people click twice) costs no database call at all here;
    # one another process saw first costs a read and writes nothing.
    if not st.recorder.already(data):
        try:
            unsubscribes.by_link(st.engine, st.clock, data.message_id)
        except NotFound:
            return _NOT_FOUND
        ua, ip = _client(request)
        st.recorder.record(data, "POST", ua, ip)
    return HTMLResponse(_CONFIRM.render(done=True), headers=_NO_STORE)
