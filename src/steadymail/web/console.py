"""Mounting a console on an app: static files, sign-in and sign-out, errors as pages."""

from collections.abc import Iterable
from typing import Annotated

from fastapi import APIRouter, FastAPI, Form, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from steadymail.api.errors import error_response, status_of
from steadymail.errors import SteadymailError, Unauthorized
from steadymail.web.session import SESSION_SECONDS
from steadymail.web.site import (
    HERE,
    PREFIX,
    NotSignedIn,
    ReadPost,
    SecurityHeaders,
    Site,
    Viewer,
    login_redirect,
    same_origin,
    site,
)

auth = APIRouter(prefix=PREFIX, include_in_schema=False)


def _safe_next(target: str) -> str:
    """Only a path of this console: never another host (`//evil`, `/\\evil`) after sign-in."""
    if (
        target.startswith(f"{PREFIX}/")
        and not target.startswith(("//", "/\\"))
        and ("\\" not in target)
    ):
        return target
    return f"{PREFIX}/"


@auth.get("/login")
def login_page(request: Request, next: str = f"{PREFIX}/") -> HTMLResponse:
    return site(request).render(request, "login.html", None, next=_safe_next(next), error="")


@auth.post("/login")
def login(
    request: Request,
    api_key: Annotated[str, Form(max_length=300)],
    next: Annotated[str, Form(max_length=500)] = f"{PREFIX}/",
) -> Response:
    s = site(request)
    target = _safe_next(next)
    if not same_origin(request):
        return s.render(request, "login.html", None, 403, next=target, error="another site")
    try:
        who = s.check_key(api_key.strip())
    except Unauthorized:
        # The same words for a malformed, unknown or revoked key: nothing to probe.
        return s.render(request, "login.html", None, 401, next=target, error="invalid API key")
    response = Response(status_code=303, headers={"Location": target})
    response.set_cookie(
        s.signer.cookie,
        s.signer.issue(who, s.clock()),
        max_age=SESSION_SECONDS,
        path=PREFIX,
        httponly=True,
        samesite="strict",
        # uvicorn takes the scheme from X-Forwarded-Proto when a trusted proxy (by default
        # 127.0.0.1: --forwarded-allow-ips) terminates TLS in front of it.
        secure=request.url.scheme == "https",
    )
    return response


@auth.post("/logout")
def logout(request: Request, who: Viewer = ReadPost) -> Response:
    response = Response(status_code=303, headers={"Location": f"{PREFIX}/login"})
    response.delete_cookie(site(request).signer.cookie, path=PREFIX)
    return response


def install(app: FastAPI, console: Site, routers: Iterable[APIRouter]) -> None:
    """Serve `console` under /ui on `app`, with its page `routers`."""
    app.state.console = console
    app.add_middleware(SecurityHeaders)
    app.mount(f"{PREFIX}/static", StaticFiles(directory=HERE / "static"), name="console-static")
    app.include_router(auth)
    for r in routers:
        app.include_router(r)

    @app.exception_handler(NotSignedIn)
    async def _signed_out(request: Request, _exc: NotSignedIn) -> Response:
        return login_redirect(request)

    @app.exception_handler(SteadymailError)
    async def _error(request: Request, exc: SteadymailError) -> Response:
        if not request.url.path.startswith(PREFIX):
            return error_response(exc)
        return _error_page(request, status_of(exc), str(exc))

    api_invalid = app.exception_handlers[RequestValidationError]

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        if not request.url.path.startswith(PREFIX):
            answer: JSONResponse = await api_invalid(request, exc)  # type: ignore[misc]
            return answer
        fields = "; ".join(f"{e['loc'][-1]}: {e['msg']}" for e in exc.errors()[:5] if e.get("loc"))
        return _error_page(request, 422, fields or "the form is not valid")


def _error_page(request: Request, status: int, message: str) -> HTMLResponse:
    s = site(request)
    if request.headers.get("hx-request"):
        # Shown where the form's result would have gone.
        return s.render(request, "error_fragment.html", None, status, message=message)
    return s.render(request, "error.html", None, status, message=message, status=status)
