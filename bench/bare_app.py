"""The references for bench/tracking.py: a fixed 302 with no verification and no recording,
as a FastAPI route (`app`) and as a plain ASGI callable (`asgi`, what the click hot path is)."""

from typing import Any

from fastapi import FastAPI
from fastapi.responses import RedirectResponse, Response

app = FastAPI()


@app.get("/t/c/{token}")
async def click(token: str) -> Response:
    return RedirectResponse("https://example.com/", status_code=302)


async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    headers = [(b"location", b"https://example.com/"), (b"content-length", b"0")]
    await send({"type": "http.response.start", "status": 302, "headers": headers})
    await send({"type": "http.response.body", "body": b""})
