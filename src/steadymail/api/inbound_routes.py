"""REST routes of the reports `steadymail inbound` kept: list (those waiting for review among
them), the raw report, and reading one again."""

from dataclasses import asdict

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

from steadymail.api.deps import Admin, AppState, Read
from steadymail.api.errors import ERROR_RESPONSES, ERROR_RESPONSES_BESIDE_NON_JSON
from steadymail.api.limits import Page, Paged
from steadymail.api.models import PathId
from steadymail.services import inbound_reports

router = APIRouter(prefix="/v1", responses=ERROR_RESPONSES)


class InboundReportOut(BaseModel):
    id: int
    received_at: float
    mail_from: str
    rcpt: str
    size: int
    kind: str = Field(description="hard_bounce, soft_bounce, complaint, autoreply, unknown")
    message_id: int | None
    status: str = Field(description="received, applied, ignored, review")
    detail: str


class ReprocessedOut(BaseModel):
    id: int
    kind: str
    status: str
    message_id: int | None
    detail: str


@router.get("/inbound-reports")
def get_reports(
    status: str | None = Query(default=None, max_length=20, description="e.g. review"),
    page: Page = Paged,
    st: AppState = Read,
) -> list[InboundReportOut]:
    """Bounces, complaints and unreadable mail the inbound server kept, newest first."""
    rows = inbound_reports.listing(st.engine, status, page.limit, page.offset)
    return [InboundReportOut(**asdict(r)) for r in rows]


@router.get(
    "/inbound-reports/{report_id}/raw",
    response_class=Response,
    responses={200: {"content": {"message/rfc822": {}}}, **ERROR_RESPONSES_BESIDE_NON_JSON},
)
def get_raw(report_id: PathId, st: AppState = Admin) -> Response:
    """The report as received, byte for byte (admin: the original a report quotes carries its
    recipient's tracking and unsubscribe links)."""
    return Response(inbound_reports.raw(st.engine, report_id), media_type="message/rfc822")


@router.post("/inbound-reports/{report_id}/reprocess")
def reprocess(report_id: PathId, st: AppState = Admin) -> ReprocessedOut:
    """Read a kept report again and apply it (a repeat of an applied one changes nothing)."""
    out = inbound_reports.reprocess(st.engine, st.clock, st.settings, report_id)
    return ReprocessedOut(
        id=out.report_id,
        kind=out.kind.value,
        status=out.status,
        message_id=out.message_id,
        detail=out.detail,
    )
