"""REST routes of the suppression list: list and search, add, remove (audited), import, export,
and the log of who added and removed what."""

import asyncio
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from steadymail.api.deps import Admin, AppState, Read, Write
from steadymail.api.errors import ERROR_RESPONSES, ERROR_RESPONSES_BESIDE_NON_JSON
from steadymail.api.limits import Page, Paged
from steadymail.api.models import In
from steadymail.domain.suppression import Reason, Stream
from steadymail.services import suppressions

router = APIRouter(prefix="/v1", responses=ERROR_RESPONSES)

MAX_ADD = 1000
Address = Annotated[str, Field(min_length=3, max_length=320)]


class SuppressionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    email: str
    stream: Stream
    reason: str
    detail: str
    created_at: float = Field(description="epoch seconds")
    message_id: int | None = Field(description="the message it came from; null: by hand")


class SuppressIn(In):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    emails: list[Address] = Field(min_length=1, max_length=MAX_ADD)
    stream: Stream = Stream.ALL
    reason: Reason = Reason.MANUAL
    by: str = Field(min_length=1, max_length=200, description="who adds them")
    note: str = Field(default="", max_length=1000)


class AddedOut(BaseModel):
    added: int = Field(description="addresses not suppressed in that stream before")


class RemovedOut(BaseModel):
    removed: list[SuppressionOut]


class LogOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    at: float
    email: str
    stream: Stream
    action: str = Field(description="added or removed")
    reason: str
    by: str
    detail: str


class SuppressionImportOut(BaseModel):
    added: int
    already: int = Field(description="rows already suppressed in their stream")
    errors: list[dict[str, int | str]] = Field(description="the first 1000 refused rows")
    rejected: int = Field(description="every refused row")


@router.get("/suppressions")
def get_suppressions(
    stream: Stream | None = None,
    reason: Reason | None = None,
    q: str | None = Query(default=None, max_length=320, description="part of the address"),
    page: Page = Paged,
    st: AppState = Read,
) -> list[SuppressionOut]:
    """Suppressions, newest first: by stream, reason, or part of the address (``@gmail.com``)."""
    rows = suppressions.listing(
        st.engine,
        None if stream is None else stream.value,
        None if reason is None else reason.value,
        q,
        page.limit,
        page.offset,
    )
    return [SuppressionOut.model_validate(s) for s in rows]


@router.post("/suppressions", status_code=201)
def post_suppressions(body: SuppressIn, st: AppState = Write) -> AddedOut:
    """Suppress addresses by hand (all or none: a bad address refuses the request); logged."""
    added = suppressions.add(
        st.engine, st.clock, body.emails, body.stream.value, body.by, body.note, body.reason.value
    )
    return AddedOut(added=added)


@router.delete("/suppressions/{email}")
def delete_suppression(
    email: str,
    by: str = Query(min_length=1, max_length=200, description="who lifts it"),
    reason: str = Query(min_length=1, max_length=1000, description="why"),
    stream: Stream | None = None,
    st: AppState = Admin,
) -> RemovedOut:
    """Lift an address's suppressions (one stream, or all): mail may reach it again, so it
    takes the admin scope and is logged with who and why."""
    gone = suppressions.remove(
        st.engine, st.clock, email, None if stream is None else stream.value, by, reason
    )
    return RemovedOut(removed=[SuppressionOut.model_validate(s) for s in gone])


@router.get("/suppressions/log")
def get_suppression_log(
    email: str | None = Query(default=None, max_length=320),
    page: Page = Paged,
    st: AppState = Read,
) -> list[LogOut]:
    """Suppressions people added and removed, newest first."""
    return [
        LogOut.model_validate(c)
        for c in suppressions.log(st.engine, email, page.limit, page.offset)
    ]


@router.post(
    "/suppressions/import",
    openapi_extra={
        "requestBody": {"required": True, "content": {"text/csv": {"schema": {"type": "string"}}}}
    },
)
async def import_suppressions(
    request: Request,
    by: str = Query(min_length=1, max_length=200),
    stream: Stream = Stream.ALL,
    reason: Reason = Reason.MANUAL,
    st: AppState = Write,
) -> SuppressionImportOut:
    """A CSV body with an `email` column (and optional `stream` and `reason` columns); bad rows
    are reported by line, good rows kept. The import body limit applies (413 past it)."""
    raw = b"".join([chunk async for chunk in request.stream()])
    report = await asyncio.to_thread(
        suppressions.import_csv, st.engine, st.clock, raw, by, stream.value, reason.value
    )
    return SuppressionImportOut(
        added=report.added,
        already=report.already,
        errors=[{"line": e.line, "reason": e.reason} for e in report.errors],
        rejected=report.rejected,
    )


@router.get(
    "/suppressions/export",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}}, **ERROR_RESPONSES_BESIDE_NON_JSON},
)
def export_suppressions(st: AppState = Read) -> StreamingResponse:
    """The whole list as CSV: email, stream, reason, detail, created_at, message_id."""
    return StreamingResponse(
        suppressions.export_csv(st.engine),
        media_type="text/csv",
        headers={"Content-Disposition": 'attachment; filename="suppressions.csv"'},
    )
