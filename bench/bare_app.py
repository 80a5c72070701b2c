"""The reference for bench/tracking.py: a fixed 302, no verification, no recording."""

from fastapi import FastAPI
from fastapi.responses import RedirectResponse, Response

app = FastAPI()


@app.get("/t/c/{token}")
async def click(token: str) -> Response:
    return RedirectResponse("https://example.com/", status_code=302)
