"""REST routes of the message log: every recipient's history, searched by address."""

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from steadymail.api.deps import AppState, Read
from steadymail.api.errors import ERROR_RESPONSES
from steadymail.api.limits import Page, Paged
from steadymail.api.models import PathId
from steadymail.domain.states import MessageState
from steadymail.services import message_log

router = APIRouter(prefix="/v1", responses=ERROR_RESPONSES)


class EventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    at: float = Field(description="epoch seconds")
    kind: str = Field(
        description="queued, sent, deferred, bounced, failed, suppressed, quarantined, "
        "complained, opened, clicked, unsubscribed"
    )
    smtp_code: int | None = None
    detail: str = Field(description="the SMTP reply, the bounce's diagnostic, the link clicked")
    machine: bool = Field(description="an open or click by a proxy or scanner, not a person")


class LoggedMessageOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

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


@router.get("/messages")
def search_messages(
    to: str = Query(min_length=3, max_length=320, description="the recipient, any spelling"),
    page: Page = Paged,
    st: AppState = Read,
) -> list[LoggedMessageOut]:
    """Messages to an address, newest first, each with its history: queued, every attempt with
    its SMTP reply, a later bounce or complaint, opens, clicks, unsubscribes."""
    rows = message_log.search(st.engine, to, page.limit, page.offset)
    return [LoggedMessageOut.model_validate(m) for m in rows]


@router.get("/messages/{message_id}/events")
def message_events(message_id: PathId, st: AppState = Read) -> list[EventOut]:
    """One message's history, in time order."""
    return [EventOut.model_validate(e) for e in message_log.history(st.engine, message_id)]
