"""The one place where steadymail errors become HTTP status codes, in one error shape."""

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from steadymail.errors import (
    Conflict,
    Forbidden,
    NotFound,
    SteadymailError,
    TooLarge,
    Unauthorized,
    ValidationError,
)

_STATUS: list[tuple[type[SteadymailError], int]] = [
    (ValidationError, 422),
    (NotFound, 404),
    (Conflict, 409),
    (TooLarge, 413),
    (Unauthorized, 401),
    (Forbidden, 403),
]

# RFC 6750: a 401 names the scheme the client should use.
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="steadymail"'}


class FieldError(BaseModel):
    loc: list[str | int] = Field(description="where in the request: body, query, path, ...")
    msg: str


class ErrorOut(BaseModel):
    """Every error the API answers with."""

    error: str = Field(description="the error's kind, e.g. ValidationError, NotFound, TooLarge")
    detail: str = Field(description="what was wrong, for a person to read")
    errors: list[FieldError] | None = Field(
        default=None, description="each invalid field, when the request failed validation"
    )


def _doc(text: str) -> dict[str, Any]:
    return {"model": ErrorOut, "description": text}


# The error answers every /v1 route documents in its OpenAPI schema.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _doc("the body could not be parsed (not UTF-8 JSON)"),
    401: _doc("missing or unknown API key"),
    403: _doc("the API key lacks the scope the route needs"),
    404: _doc("no such object"),
    409: _doc("the request clashes with the object's current state"),
    413: _doc("the request body is larger than the configured limit"),
    422: _doc("the request is invalid; `errors` names each bad field"),
}

# The same for a route whose success is not JSON (a raw message, a markdown draft): FastAPI
# would document each error model in the route's own media type; these say what the errors
# are, JSON in the one error shape.
ERROR_RESPONSES_BESIDE_NON_JSON: dict[int | str, dict[str, Any]] = {
    code: {
        "description": doc["description"],
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}},
    }
    for code, doc in ERROR_RESPONSES.items()
}


def _body(error: str, detail: str, errors: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"error": error, "detail": detail}
    if errors is not None:
        out["errors"] = errors
    return out


def _field_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    # Only location and message: `input` and `ctx` may hold what the client sent, or objects
    # that JSON cannot carry (a NaN, an exception).
    return [
        {"loc": [p if isinstance(p, int) else str(p) for p in e.get("loc", ())], "msg": e["msg"]}
        for e in exc.errors()
    ]


def _http_name(status: int) -> str:
    if status == 413:
        return TooLarge.__name__
    try:
        return HTTPStatus(status).phrase.replace(" ", "").replace("-", "")
    except ValueError:
        return "HTTPError"


def status_of(exc: SteadymailError) -> int:
    """The HTTP status an error of ours answers with (the console uses it too)."""
    return next((code for cls, code in _STATUS if isinstance(exc, cls)), 400)


def error_response(exc: SteadymailError) -> JSONResponse:
    """The API's JSON answer to an error of ours."""
    status = status_of(exc)
    return JSONResponse(
        _body(type(exc).__name__, str(exc)),
        status_code=status,
        headers=_CHALLENGE if status == 401 else None,
    )


def install(app: FastAPI) -> None:
    @app.exception_handler(SteadymailError)
    async def _handle(_request: Request, exc: SteadymailError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _field_errors(exc)
        detail = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors[:5])
        return JSONResponse(_body("ValidationError", detail, errors), status_code=422)

    @app.exception_handler(HTTPException)
    async def _http(_request: Request, exc: HTTPException) -> JSONResponse:
        name = _http_name(exc.status_code)
        return JSONResponse(
            _body(name, str(exc.detail)), status_code=exc.status_code, headers=exc.headers
        )
