"""Public tracking routes: the unsubscribe page and RFC 8058 one-click (the click redirect and
the open pixel are the hot path, api/tracking_hot_path.py).

A token that does not verify, is expired, or is of the wrong kind, is a 404: the click route
can only ever redirect to a URL that is inside a token we signed. Repeats are cheap: an open or
unsubscribe is written once a message, and events wait in a bounded buffer (tracking/events.py).
"""

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment

from steadymail.api.deps import state
from steadymail.api.tracking_hot_path import NO_STORE, verify
from steadymail.errors import NotFound
from steadymail.services import unsubscribes
from steadymail.tracking.tokens import Kind, TokenData

router = APIRouter(include_in_schema=False)

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
    return verify(state(request), token, kind)


def _count(request: Request, kind: str, found: bool) -> None:
    st = state(request)
    st.metrics.tracking(kind, "ok" if found else "not_found", st.clock.now())


def _client(request: Request) -> tuple[str, str]:
    ip = request.client.host if request.client else ""
    return request.headers.get("user-agent", ""), ip


@router.get("/u/{token}", response_class=HTMLResponse, responses=_NOT_FOUND_DOC)
async def unsubscribe_page(token: str, request: Request) -> Response:
    if _verify(request, token, Kind.UNSUBSCRIBE) is None:
        return _NOT_FOUND
    return HTMLResponse(_CONFIRM.render(done=False), headers=NO_STORE)


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
    return HTMLResponse(_CONFIRM.render(done=True), headers=NO_STORE)
