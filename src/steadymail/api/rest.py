"""REST routes under /v1. Handlers translate HTTP to service calls and nothing more."""

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from steadymail.api.deps import AppState, Read, Send, Write
from steadymail.services import campaigns, csv_import, templates, transactional
from steadymail.store import capture, contacts, sends, tracking
from steadymail.store import templates as template_store

router = APIRouter(prefix="/v1")


class ListIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)


class TemplateIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    subject: str
    html: str = ""
    text: str = ""


class CampaignIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    list: str
    template: int | str
    from_addr: str | None = Field(default=None, alias="from")


class MessageIn(BaseModel):
    to: list[str] | str
    template: int | str | None = None
    subject: str | None = None
    html: str = ""
    text: str = ""
    vars: dict[str, Any] = Field(default_factory=dict)
    from_addr: str | None = Field(default=None, alias="from")
    headers: dict[str, str] = Field(default_factory=dict)
    list_unsubscribe: bool = False


@router.get("/lists")
def get_lists(st: AppState = Read) -> list[dict[str, Any]]:
    return contacts.all_lists(st.engine)


@router.post("/lists", status_code=201)
def post_list(body: ListIn, st: AppState = Write) -> dict[str, Any]:
    return {"id": contacts.create_list(st.engine, body.name, st.clock.now()), "name": body.name}


@router.post("/lists/{name}/import")
async def import_csv(name: str, request: Request, st: AppState = Write) -> dict[str, Any]:
    """Import a CSV body (`email` column plus attributes); bad rows are reported by line."""
    raw = await request.body()
    report = await asyncio.to_thread(csv_import.import_contacts, st.engine, st.clock, raw, name)
    return {
        "list": report.list_name,
        "imported": report.imported,
        "skipped_existing": report.skipped_existing,
        "errors": [{"line": e.line, "reason": e.reason} for e in report.errors],
    }


@router.get("/templates")
def get_templates(st: AppState = Read) -> list[dict[str, Any]]:
    return template_store.all_templates(st.engine)


@router.post("/templates", status_code=201)
def post_template(body: TemplateIn, st: AppState = Write) -> dict[str, Any]:
    tid = templates.create_template(
        st.engine, st.clock, body.name, body.subject, body.html, body.text
    )
    return {"id": tid, "name": body.name}


@router.post("/campaigns", status_code=201)
def post_campaign(body: CampaignIn, st: AppState = Write) -> dict[str, Any]:
    send_id = campaigns.create_campaign(
        st.engine,
        st.clock,
        st.settings,
        name=body.name,
        list_name=body.list,
        template=body.template,
        from_addr=body.from_addr,
    )
    return sends.get_send(st.engine, send_id)


@router.get("/sends")
def get_sends(st: AppState = Read) -> list[dict[str, Any]]:
    return sends.all_sends(st.engine)


@router.get("/sends/{send_id}")
def get_send(send_id: int, st: AppState = Read) -> dict[str, Any]:
    return campaigns.status(st.engine, send_id)


@router.get("/sends/{send_id}/stats")
def get_send_stats(send_id: int, st: AppState = Read) -> dict[str, Any]:
    """Delivered, opens, clicks (human and machine apart), unsubscribes, and per-link clicks."""
    sends.get_send(st.engine, send_id)
    return tracking.send_stats(st.engine, send_id)


@router.post("/sends/{send_id}/start")
def start_send(send_id: int, st: AppState = Write) -> dict[str, Any]:
    return {"send_id": send_id, **campaigns.start(st.engine, st.clock, st.settings, send_id)}


@router.post("/sends/{send_id}/{action}")
def steer_send(send_id: int, action: str, st: AppState = Write) -> dict[str, Any]:
    if action not in {"pause", "resume", "cancel"}:
        return Response(status_code=404)  # type: ignore[return-value]
    return {"send_id": send_id, "state": campaigns.change(st.engine, st.clock, send_id, action)}


@router.post("/messages", status_code=202)
def post_message(body: MessageIn, st: AppState = Send) -> dict[str, Any]:
    """Queue a transactional message to one or more recipients."""
    to = [body.to] if isinstance(body.to, str) else body.to
    return transactional.enqueue(
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


@router.get("/messages/{send_id}")
def get_messages(send_id: int, limit: int = 100, st: AppState = Read) -> list[dict[str, Any]]:
    rows = sends.message_rows(st.engine, send_id, limit)
    for r in rows:
        r.pop("payload", None)
    return rows


@router.get("/captured")
def get_captured(
    limit: int = 50, to: str | None = None, st: AppState = Read
) -> list[dict[str, Any]]:
    """Messages received by the built-in capture server, newest first."""
    return capture.recent(capture.open_capture(st.capture_path), limit, to)


@router.get("/captured/{capture_id}/raw")
def get_captured_raw(capture_id: int, st: AppState = Read) -> Response:
    data = capture.raw(capture.open_capture(st.capture_path), capture_id)
    return Response(content=data, media_type="message/rfc822")
