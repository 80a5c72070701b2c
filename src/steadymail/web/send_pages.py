"""Sends: create a campaign (now or scheduled), steer it, watch its progress and engagement."""

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse

from steadymail.api.deps import state
from steadymail.api.models import PathId
from steadymail.errors import NotFound, ValidationError
from steadymail.services import campaigns, engagement, lists, sends, templates
from steadymail.web.site import PREFIX, Signed, Viewer, Write, site

router = APIRouter(prefix=PREFIX, include_in_schema=False)
PAGE = 50
ACTIONS = ("start", "pause", "resume", "cancel")


@router.get("/sends")
def sends_page(request: Request, who: Viewer = Signed) -> HTMLResponse:
    st = state(request)
    return site(request).render(
        request,
        "sends.html",
        who,
        sends=sends.newest(st.engine, PAGE),
        lists=lists.listing(st.engine, 200),
        templates=templates.listing(st.engine, 200),
        default_from=st.settings.default_from,
    )


@router.post("/sends")
def create_send(
    request: Request,
    name: Annotated[str, Form(min_length=1, max_length=200)],
    list_name: Annotated[str, Form(alias="list", min_length=1, max_length=200)],
    template: Annotated[int, Form(ge=1)],
    from_addr: Annotated[str, Form(alias="from", max_length=320)] = "",
    when: Annotated[str, Form(max_length=10)] = "draft",
    at: Annotated[str, Form(max_length=40)] = "",
    tz: Annotated[str, Form(max_length=64)] = "UTC",
    who: Viewer = Write,
) -> RedirectResponse:
    """A draft campaign, then started now or scheduled, as `when` says (draft, now, later)."""
    st = state(request)
    if when not in ("draft", "now", "later"):
        raise ValidationError("when: draft, now or later")
    local = None
    if when == "later":
        # Checked before the draft exists: a bad time leaves nothing behind to retry over.
        try:
            local = datetime.fromisoformat(at)
        except ValueError as e:
            raise ValidationError(f"not a date and time: {at!r}") from e
        campaigns.check_start_time(st.clock, local, tz or "UTC")
    send_id = campaigns.create_campaign(
        st.engine,
        st.clock,
        st.settings,
        name=name.strip(),
        list_name=list_name,
        template=template,
        from_addr=from_addr.strip() or None,
    )
    if when == "now":
        campaigns.start(st.engine, st.clock, st.settings, send_id)
    elif local is not None:
        campaigns.schedule(st.engine, st.clock, send_id, local, tz or "UTC")
    return RedirectResponse(f"{PREFIX}/sends/{send_id}", status_code=303)


def _send(request: Request, send_id: PathId) -> dict[str, Any]:
    st = state(request)
    progress = campaigns.status(st.engine, send_id)
    return {
        "s": progress,
        "counts": sorted((str(k), v) for k, v in progress.counts.items()),
        "stats": engagement.send_stats(st.engine, send_id),
    }


@router.get("/sends/{send_id}")
def send_page(request: Request, send_id: PathId, who: Viewer = Signed) -> HTMLResponse:
    return site(request).render(request, "send.html", who, **_send(request, send_id))


@router.get("/live/sends/{send_id}")
def send_live(request: Request, send_id: PathId, who: Viewer = Signed) -> HTMLResponse:
    return site(request).render(request, "_send.html", who, **_send(request, send_id))


@router.get("/sends/{send_id}/engagement.json")
def send_engagement(request: Request, send_id: PathId, who: Viewer = Signed) -> JSONResponse:
    st = state(request)
    return JSONResponse(engagement.over_time(st.engine, send_id, st.clock.now()))


@router.post("/sends/{send_id}/{action}")
def steer(request: Request, send_id: PathId, action: str, who: Viewer = Write) -> HTMLResponse:
    st = state(request)
    if action not in ACTIONS:
        raise NotFound(f"no action {action!r}")
    if action == "start":
        campaigns.start(st.engine, st.clock, st.settings, send_id)
    else:
        campaigns.change(st.engine, st.clock, send_id, action)
    return site(request).render(request, "_send.html", who, **_send(request, send_id))
