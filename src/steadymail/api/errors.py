"""The one place where steadymail errors become HTTP status codes."""

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from steadymail.errors import (
    Conflict,
    Forbidden,
    NotFound,
    SteadymailError,
    Unauthorized,
    ValidationError,
)

_STATUS: list[tuple[type[SteadymailError], int]] = [
    (ValidationError, 422),
    (NotFound, 404),
    (Conflict, 409),
    (Unauthorized, 401),
    (Forbidden, 403),
]

# RFC 6750: a 401 names the scheme the client should use.
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="steadymail"'}


def install(app: FastAPI) -> None:
    @app.exception_handler(SteadymailError)
    async def _handle(_request: Request, exc: SteadymailError) -> JSONResponse:
        status = next((code for cls, code in _STATUS if isinstance(exc, cls)), 400)
        return JSONResponse(
            {"error": type(exc).__name__, "detail": str(exc)},
            status_code=status,
            headers=_CHALLENGE if status == 401 else None,
        )
