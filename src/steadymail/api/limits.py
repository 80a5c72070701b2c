"""Request limits enforced before a handler runs: body size, and the pagination every list takes."""

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

DEFAULT_PAGE = 100
MAX_PAGE = 1000
MAX_OFFSET = 1_000_000

_IMPORT_PATH = re.compile(r"/v1/lists/[^/]+/import|/ui/lists/.+/import|/v1/suppressions/import")


class BodyTooLarge(HTTPException):
    """Raised from `receive` so that FastAPI's body parsing passes it on unchanged (a 413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than {limit} bytes")


def body_limit_for(max_request: int, max_import: int) -> Callable[[str], int]:
    """The byte limit for a request path: CSV imports get their own, larger one."""

    def limit(path: str) -> int:
        return max_import if _IMPORT_PATH.fullmatch(path) else max_request

    return limit


class BodyLimit:
    """ASGI middleware: a body past its path's limit is a 413, whether or not it declares its
    length. A declared Content-Length past the limit is refused before any of it is read."""

    def __init__(self, app: ASGIApp, limit_for: Callable[[str], int]) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared = _content_length(scope)
        total = 0

        async def limited() -> Message:
            nonlocal total
            if declared is not None and declared > limit:
                raise BodyTooLarge(limit)
            message = await receive()
            if message["type"] == "http.request":
                total += len(message.get("body", b""))
                if total > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, limited, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


@dataclass(frozen=True)
class Page:
    """One page of a list: at most ``limit`` items after skipping ``offset``."""

    limit: int
    offset: int


def _page(
    limit: Annotated[
        int, Query(ge=1, le=MAX_PAGE, description=f"items per page, at most {MAX_PAGE}")
    ] = DEFAULT_PAGE,
    offset: Annotated[
        int, Query(ge=0, le=MAX_OFFSET, description="items to skip (the previous pages)")
    ] = 0,
) -> Page:
    return Page(limit, offset)


Paged = Depends(_page)
