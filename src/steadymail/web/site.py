"""What every console page shares: who is signed in, the page renderer, the security headers.

A `Site` is one console (a region's, or the control plane's): its session signer, how it turns
a session into scopes, its navigation. Pages depend on `viewer` (signed in, any scope) and, to
change anything, on `changer(scope)`, which also checks the CSRF token and the request's origin.
"""

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import Depends, Request, Response
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint

from steadymail.errors import Forbidden, SteadymailError, Unauthorized
from steadymail.web.progress import progress_of
from steadymail.web.session import Session, SessionSigner

HERE = Path(__file__).parent
PREFIX = "/ui"

# No inline script or style anywhere; frames only for our own sandboxed previews.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; "
    "object-src 'none'"
)
# An email's HTML, shown in a sandboxed frame: its own inline styles and nothing that runs or
# loads (remote images would tell the sender the message was opened).
PREVIEW_CSP = (
    "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "frame-ancestors 'self'; form-action 'none'"
)


@dataclass(frozen=True, slots=True)
class Viewer:
    """The signed-in person: their session and the scopes of the key they signed in with."""

    session: Session
    scopes: frozenset[str]

    def can(self, scope: str) -> bool:
        return scope in self.scopes

    @property
    def csrf(self) -> str:
        return self.session.csrf


@dataclass
class Site:
    """One console: how sessions are made and judged, and what its pages link to."""

    title: str
    signer: SessionSigner
    # The scopes of a session's key (Unauthorized when revoked); `check_key` signs in.
    scopes_of: Callable[[str], set[str]]
    check_key: Callable[[str], str]
    nav: list[tuple[str, str]]
    clock: Callable[[], float] = time.time
    templates: Environment = field(init=False)

    def __post_init__(self) -> None:
        self.templates = Environment(
            loader=FileSystemLoader(HERE / "templates"),
            autoescape=select_autoescape(default=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.templates.filters["when"] = when
        self.templates.filters["ago"] = lambda t: ago(t, self.clock())
        # A name as one path segment: `/` and `?` in a list's name stay inside it.
        self.templates.filters["segment"] = lambda v: quote(str(v), safe="")
        self.templates.globals["prefix"] = PREFIX
        self.templates.globals["progress_of"] = progress_of

    def render(
        self,
        request: Request,
        template: str,
        viewer: Viewer | None,
        http_status: int = 200,
        /,
        **ctx: Any,
    ) -> HTMLResponse:
        """A page or fragment, with the site's navigation and the viewer's CSRF token."""
        html = self.templates.get_template(template).render(
            site=self, viewer=viewer, path=request.url.path, **ctx
        )
        return HTMLResponse(html, status_code=http_status)


def site(request: Request) -> Site:
    s: Site = request.app.state.console
    return s


def when(t: float | None) -> str:
    """Epoch seconds as UTC, to the second."""
    if t is None:
        return ""
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S")


def ago(t: float | None, now: float) -> str:
    if t is None:
        return ""
    s = max(0.0, now - t)
    if s < 90:
        return f"{s:.0f} s ago"
    if s < 5400:
        return f"{s / 60:.0f} min ago"
    if s < 2 * 86400:
        return f"{s / 3600:.1f} h ago"
    return f"{s / 86400:.0f} d ago"


class NotSignedIn(SteadymailError):
    """No valid session: a page redirects to sign-in, a fragment asks htmx to."""


def viewer(request: Request) -> Viewer:
    """The signed-in viewer; NotSignedIn without a valid, unexpired, unrevoked session."""
    s = site(request)
    session = s.signer.verify(request.cookies.get(s.signer.cookie, ""), s.clock())
    if session is None:
        raise NotSignedIn("sign in")
    try:
        scopes = s.scopes_of(session.who)
    except Unauthorized as e:
        raise NotSignedIn(str(e)) from e
    return Viewer(session, frozenset(scopes))


Signed = Depends(viewer)


def same_origin(request: Request) -> bool:
    """A browser's POST names its origin; one from another site is refused before the CSRF
    check (SameSite=Strict already keeps the cookie off it)."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return request.headers.get("sec-fetch-site", "same-origin") == "same-origin"
    return urlsplit(origin).netloc == request.headers.get("host", "")


def changer(scope: str) -> Callable[..., Awaitable[Viewer]]:
    """A dependency for a form post: signed in, the key has `scope`, the CSRF token matches."""

    async def check(request: Request, who: Viewer = Signed) -> Viewer:
        if not same_origin(request):
            raise Forbidden("a form of another site")
        given = request.headers.get("x-csrf-token")
        if given is None:
            form = await request.form()
            value = form.get("csrf")
            given = value if isinstance(value, str) else None
        if not who.session.csrf or not SessionSigner.csrf_ok(who.session, given):
            raise Forbidden("the form's CSRF token is missing or stale: reload the page")
        if not who.can(scope):
            raise Forbidden(f"this API key lacks the {scope!r} scope")
        return who

    return check


# A post that changes nothing (a template preview) still carries the token: it renders data.
ReadPost = Depends(changer("read"))
Write = Depends(changer("write"))
Admin = Depends(changer("admin"))


def login_redirect(request: Request) -> Response:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    target = f"{PREFIX}/login?next={quote(here, safe='')}"
    if request.headers.get("hx-request"):
        # htmx swaps what a 401 returns nowhere; this header makes it load the sign-in page.
        return Response(status_code=401, headers={"HX-Redirect": target})
    return Response(status_code=303, headers={"Location": target})


class SecurityHeaders(BaseHTTPMiddleware):
    """The console's headers on every /ui response; previews of email HTML get their own."""

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        if not request.url.path.startswith(PREFIX):
            return response
        if "content-security-policy" not in response.headers:
            response.headers["Content-Security-Policy"] = CSP
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        if not request.url.path.startswith(f"{PREFIX}/static/"):
            response.headers["Cache-Control"] = "no-store"
        return response
