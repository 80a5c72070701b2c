"""REST routes under /v1. Handlers translate HTTP to service calls and nothing more."""

import asyncio
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Request
from pydantic import Field, model_validator

from steadymail.api.deps import AppState, Read, Send, Write
from steadymail.api.errors import ERROR_RESPONSES, ERROR_RESPONSES_BESIDE_NON_JSON
from steadymail.api.limits import Page, Paged
from steadymail.api.models import (
    Address,
    BodyId,
    CapturedOut,
    Created,
    CustomHeaders,
    ImportOut,
    In,
    ListOut,
    MessageOut,
    Part,
    PathId,
    QueuedOut,
    ScheduledOut,
    ScheduleIn,
    SendOut,
    StartedOut,
    StatsOut,
    SteeredOut,
    Subject,
    TemplateOut,
    Variables,
)
from steadymail.api.responses import Rfc822Response
from steadymail.domain.headers import BadHeader, check_custom_headers
from steadymail.domain.states import SendState
from steadymail.errors import NotFound, ValidationError
from steadymail.services import (
    campaigns,
    captured,
    csv_import,
    engagement,
    lists,
    sends,
    templates,
    transactional,
)

router = APIRouter(prefix="/v1", responses=ERROR_RESPONSES)


class ListIn(In):
    name: str = Field(min_length=1, max_length=200)


class TemplateIn(In):
    name: str = Field(min_length=1, max_length=200)
    subject: Subject
    html: Part = ""
    text: Part = ""


class CampaignIn(In):
    name: str = Field(min_length=1, max_length=200)
    list: str = Field(min_length=1, max_length=200)
    template: BodyId | str
    from_addr: Address | None = Field(default=None, alias="from")


class MessageIn(In):
    to: list[Address] | Address = Field(description="one address or a list of them")
    template: BodyId | str | None = None
    subject: Subject | None = None
    html: Part = ""
    text: Part = ""
    vars: Variables = Field(default_factory=dict)
    from_addr: Address | None = Field(default=None, alias="from")
    headers: CustomHeaders = Field(
        default_factory=dict,
        description="extra headers; names the platform sets (From, To, Cc, Bcc, Subject, Date,"
        " Message-ID, MIME-Version, Content-*, Return-Path, Received, DKIM-Signature, ...)"
        " are refused",
    )
    list_unsubscribe: bool = False

    @model_validator(mode="after")
    def _no_second_list_unsubscribe(self) -> "MessageIn":
        try:
            check_custom_headers(self.headers, list_unsubscribe=self.list_unsubscribe)
        except BadHeader as e:
            raise ValueError(str(e)) from e
        return self


@router.get("/lists")
def get_lists(page: Page = Paged, st: AppState = Read) -> list[ListOut]:
    """Contact lists with their sizes, oldest first."""
    return [ListOut(**asdict(r)) for r in lists.listing(st.engine, page.limit, page.offset)]


@router.post("/lists", status_code=201)
def post_list(body: ListIn, st: AppState = Write) -> Created:
    return Created(id=lists.create(st.engine, st.clock, body.name), name=body.name)


@router.post(
    "/lists/{name}/import",
    openapi_extra={
        "requestBody": {"required": True, "content": {"text/csv": {"schema": {"type": "string"}}}}
    },
)
async def import_csv(name: str, request: Request, st: AppState = Write) -> ImportOut:
    """Import a CSV body (`email` column plus attributes); bad rows are reported by line, good
    rows kept. A body past `max_import_bytes` is refused whole (413) before it is parsed."""
    # The body limit (api/limits.py) raises as the stream passes it: memory stays bounded.
    chunks = [chunk async for chunk in request.stream()]
    raw = b"".join(chunks)
    report = await asyncio.to_thread(csv_import.import_contacts, st.engine, st.clock, raw, name)
    return ImportOut.model_validate(
        {
            "list": report.list_name,
            "imported": report.imported,
            "skipped_existing": report.skipped_existing,
            "errors": [{"line": e.line, "reason": e.reason} for e in report.errors],
            "rejected": report.rejected,
        }
    )


@router.get("/templates")
def get_templates(page: Page = Paged, st: AppState = Read) -> list[TemplateOut]:
    """Templates (without their bodies), oldest first."""
    return [TemplateOut(**asdict(r)) for r in templates.listing(st.engine, page.limit, page.offset)]


@router.post("/templates", status_code=201)
def post_template(body: TemplateIn, st: AppState = Write) -> Created:
    tid = templates.create_template(
        st.engine, st.clock, body.name, body.subject, body.html, body.text
    )
    return Created(id=tid, name=body.name)


@router.post("/campaigns", status_code=201)
def post_campaign(body: CampaignIn, st: AppState = Write) -> SendOut:
    send_id = campaigns.create_campaign(
        st.engine,
        st.clock,
        st.settings,
        name=body.name,
        list_name=body.list,
        template=body.template,
        from_addr=body.from_addr,
    )
    return SendOut(**asdict(sends.get(st.engine, send_id)))


@router.get("/sends")
def get_sends(page: Page = Paged, st: AppState = Read) -> list[SendOut]:
    """Sends, oldest first."""
    return [SendOut(**asdict(r)) for r in sends.listing(st.engine, page.limit, page.offset)]


@router.get("/sends/{send_id}")
def get_send(send_id: PathId, st: AppState = Read) -> SendOut:
    """A send with its progress: messages by state."""
    return SendOut(**asdict(campaigns.status(st.engine, send_id)))


@router.get("/sends/{send_id}/stats", response_model=StatsOut)
def get_send_stats(send_id: PathId, st: AppState = Read) -> dict[str, Any]:
    """Delivered, opens, clicks (human and machine apart), unsubscribes, and per-link clicks."""
    return asdict(engagement.send_stats(st.engine, send_id))


@router.post("/sends/{send_id}/start", response_model=StartedOut)
def start_send(send_id: PathId, st: AppState = Write) -> dict[str, Any]:
    """Materialise the messages (suppressed contacts skipped and counted) and start sending."""
    started = campaigns.start(st.engine, st.clock, st.settings, send_id)
    return {"send_id": send_id, **asdict(started)}


@router.post("/sends/{send_id}/schedule", response_model=ScheduledOut)
def schedule_send(send_id: PathId, body: ScheduleIn, st: AppState = Write) -> dict[str, Any]:
    """Schedule a draft campaign, or move a scheduled one, to start at a time (checked now as
    a start would be). A local time that does not exist or happens twice (clock changes) is
    refused; give the offset then. Cancel it with ``/cancel`` before it starts."""
    when = campaigns.schedule(st.engine, st.clock, send_id, body.at, body.tz)
    return {"send_id": send_id, "state": SendState.SCHEDULED, "scheduled_at": when}


@router.post("/sends/{send_id}/{action}", response_model=SteeredOut)
def steer_send(send_id: PathId, action: str, st: AppState = Write) -> dict[str, Any]:
    """``action``: pause, resume or cancel (a scheduled send too)."""
    if action not in {"pause", "resume", "cancel"}:
        raise NotFound(f"no action {action!r}: pause, resume or cancel")
    return {"send_id": send_id, "state": campaigns.change(st.engine, st.clock, send_id, action)}


@router.post("/messages", status_code=202)
def post_message(body: MessageIn, st: AppState = Send) -> QueuedOut:
    """Queue a transactional message to one or more recipients (`max_recipients` at most)."""
    to = [body.to] if isinstance(body.to, str) else body.to
    if len(to) > st.settings.max_recipients:
        raise ValidationError(
            f"{len(to)} recipients; one request takes at most {st.settings.max_recipients}"
        )
    return QueuedOut(
        **transactional.enqueue(
            st.engine,
            st.clock,
            st.settings,
            to=to,
            template=body.template,
            subject=body.subject,
            html=body.html,
            text=body.text,
            variables=body.vars,
            from_addr=body.from_addr,
            headers=body.headers,
            list_unsubscribe=body.list_unsubscribe,
        )
    )


@router.get("/messages/{send_id}")
def get_messages(send_id: PathId, page: Page = Paged, st: AppState = Read) -> list[MessageOut]:
    """A send's messages, in the order they were queued (without their payloads)."""
    rows = sends.messages(st.engine, send_id, page.limit, page.offset)
    return [MessageOut(**{k: v for k, v in asdict(m).items() if k != "payload"}) for m in rows]


@router.get("/captured")
def get_captured(
    page: Page = Paged, to: str | None = None, st: AppState = Read
) -> list[CapturedOut]:
    """Messages received by the built-in capture server, newest first."""
    mailbox = captured.open_mailbox(st.capture_path)
    return [CapturedOut(**asdict(r)) for r in captured.recent(mailbox, page.limit, to, page.offset)]


@router.get(
    "/captured/{capture_id}/raw",
    response_class=Rfc822Response,
    responses={
        **ERROR_RESPONSES_BESIDE_NON_JSON,
        200: {"description": "the message as received"},
    },
)
def get_captured_raw(capture_id: PathId, st: AppState = Read) -> Rfc822Response:
    data = captured.raw(captured.open_mailbox(st.capture_path), capture_id)
    return Rfc822Response(content=data)
