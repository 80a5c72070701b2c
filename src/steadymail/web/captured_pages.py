"""Captured mail, as a development inbox shows it: the list, a message's headers and source,
and its HTML in a sandboxed frame."""

import email
import functools
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, PlainTextResponse

from steadymail.api.deps import state
from steadymail.api.models import PathId
from steadymail.services import captured
from steadymail.services.database import Engine
from steadymail.web.site import PREFIX, PREVIEW_CSP, Signed, Viewer, site

router = APIRouter(prefix=PREFIX, include_in_schema=False)
PAGE = 50
# The source shown in the page; the whole of it is one link away.
SHOWN_BYTES = 256 * 1024


@functools.cache
def _mailbox(path: Path) -> Engine:
    return captured.open_mailbox(path)


def _parsed(request: Request, capture_id: PathId) -> tuple[bytes, EmailMessage]:
    data = captured.raw(_mailbox(state(request).capture_path), capture_id)
    message = email.message_from_bytes(data, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return data, message


def _content(part: EmailMessage) -> str:
    """A part's text; a charset Python does not know is read as UTF-8 with replacements."""
    try:
        text = part.get_content()
    except (LookupError, UnicodeError):
        raw = part.get_payload(decode=True)
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else ""
    return str(text)


@router.get("/captured")
def captured_page(
    request: Request,
    to: Annotated[str, Query(max_length=320)] = "",
    page: Annotated[int, Query(ge=0, le=100_000)] = 0,
    who: Viewer = Signed,
) -> HTMLResponse:
    box = _mailbox(state(request).capture_path)
    rows = captured.recent(box, PAGE + 1, to.strip() or None, page * PAGE)
    return site(request).render(
        request, "captured.html", who, rows=rows[:PAGE], more=len(rows) > PAGE, page=page, to=to
    )


@router.get("/captured/{capture_id}")
def captured_one(request: Request, capture_id: PathId, who: Viewer = Signed) -> HTMLResponse:
    data, message = _parsed(request, capture_id)
    # The header block ends at the first empty line, CRLF or (from a lax sender) bare LF.
    ends = [i for i in (data.find(b"\r\n\r\n"), data.find(b"\n\n")) if i >= 0]
    head = data[: min(ends)] if ends else data
    return site(request).render(
        request,
        "captured_one.html",
        who,
        capture_id=capture_id,
        subject=str(message.get("subject", "")),
        headers=head.decode("utf-8", "replace"),
        source=data[:SHOWN_BYTES].decode("utf-8", "replace"),
        truncated=len(data) > SHOWN_BYTES,
        has_html=message.get_body(preferencelist=("html",)) is not None,
        size=len(data),
    )


@router.get("/captured/{capture_id}/html")
def captured_html(request: Request, capture_id: PathId, who: Viewer = Signed) -> HTMLResponse:
    """The HTML part for a sandboxed frame: its own styles, nothing that runs or loads."""
    _, message = _parsed(request, capture_id)
    part = message.get_body(preferencelist=("html", "plain"))
    body = _content(part) if isinstance(part, EmailMessage) else ""
    if part is not None and part.get_content_type() == "text/plain":
        body = site(request).templates.from_string("<pre>{{ t }}</pre>").render(t=body)
    return HTMLResponse(
        body, headers={"Content-Security-Policy": PREVIEW_CSP, "X-Frame-Options": "SAMEORIGIN"}
    )


@router.get("/captured/{capture_id}/raw")
def captured_raw(request: Request, capture_id: PathId, who: Viewer = Signed) -> PlainTextResponse:
    """The bytes as received (as text/plain: a browser shows them, never renders them)."""
    data = captured.raw(_mailbox(state(request).capture_path), capture_id)
    return PlainTextResponse(data.decode("utf-8", "replace"))
