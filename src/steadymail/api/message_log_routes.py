"""REST routes of the message log: every recipient's history, searched by address."""

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from steadymail.api.deps import AppState, Read
from steadymail.api.errors import ERROR_RESPONSES
from steadymail.api.limits import Page, Paged
from steadymail.api.models import PathId
from steadymail.domain.states import MessageState
from steadymail.services import message_log
from steadymail.services.message_log import LoggedMessage, MessageEvent

router = APIRouter(prefix="/v1", responses=ERROR_RESPONSES)


class EventOut(BaseModel):
    at: float = Field(description="epoch seconds")
    kind: str = Field(
        description="queued, sent, deferred, bounced, failed, suppressed, quarantined, "
        "complained, opened, clicked, unsubscribed"
    )
    smtp_code: int | None = None
    detail: str = Field(description="the SMTP reply, the bounce's diagnostic, the link clicked")
    machine: bool = Field(description="an open or click by a proxy or scanner, not a person")

    @classmethod
    def of(cls, e: MessageEvent) -> "EventOut":
        return cls(at=e.at, kind=e.kind, smtp_code=e.smtp_code, detail=e.detail, machine=e.machine)


class LoggedMessageOut(BaseModel):
    id: int
    send_id: int
    send_name: str
    email: str
    state: MessageState
    attempts: int
    sent_at: float | None
    smtp_code: int | None
    last_error: str | None
    events: list[EventOut]

    @classmethod
    def of(cls, m: LoggedMessage) -> "LoggedMessageOut":
        return cls(
            id=m.id,
            send_id=m.send_id,
            send_name=m.send_name,
            email=m.email,
            state=m.state,
            attempts=m.attempts,
            sent_at=m.sent_at,
            smtp_code=m.smtp_code,
            last_error=m.last_error,
            events=[EventOut.of(e) for e in m.events],
        )


@router.get("/messages")
def search_messages(
    to: str = Query(min_length=3, max_length=320, description="the recipient, any spelling"),
    page: Page = Paged,
    st: AppState = Read,
) -> list[LoggedMessageOut]:
    """Messages to an address, newest first, each with its history: queued, every attempt with
    its SMTP reply, a later bounce or complaint, opens, clicks, unsubscribes."""
    rows = message_log.search(st.engine, to, page.limit, page.offset)
    return [LoggedMessageOut.of(m) for m in rows]


@router.get("/messages/{message_id}/events")
def message_events(message_id: PathId, st: AppState = Read) -> list[EventOut]:
    """One message's history, in time order."""
    return [EventOut.of(e) for e in message_log.history(st.engine, message_id)]
