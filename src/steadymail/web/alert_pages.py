"""Alerts: firing and recent ones, live; one alert's timeline and suspects; acknowledge and
silence."""

from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse

from steadymail.api.deps import state
from steadymail.api.models import PathId
from steadymail.domain.states import AlertState
from steadymail.services import watching
from steadymail.web.list_pages import actor
from steadymail.web.site import PREFIX, Signed, Viewer, Write, site

router = APIRouter(prefix=PREFIX, include_in_schema=False)
PAGE = 100


def _alerts(request: Request, show: str) -> dict[str, Any]:
    st = state(request)
    firing = watching.list_alerts(st.engine, AlertState.FIRING.value, None, PAGE, 0)
    recent = [] if show == "firing" else watching.list_alerts(st.engine, None, None, PAGE, 0)
    return {"firing": firing, "recent": recent, "show": show}


Show = Annotated[str, Query(pattern="^(firing|all)$")]


@router.get("/alerts")
def alerts_page(request: Request, show: Show = "all", who: Viewer = Signed) -> HTMLResponse:
    return site(request).render(request, "alerts.html", who, **_alerts(request, show))


@router.get("/live/alerts")
def alerts_live(request: Request, show: Show = "all", who: Viewer = Signed) -> HTMLResponse:
    return site(request).render(request, "_alerts.html", who, **_alerts(request, show))


@router.get("/alerts/{alert_id}")
def alert_page(request: Request, alert_id: PathId, who: Viewer = Signed) -> HTMLResponse:
    a = watching.alert(state(request).engine, alert_id)
    suspects = a.labels.get("suspects")
    labels = {k: v for k, v in a.labels.items() if k != "suspects"}
    return site(request).render(
        request,
        "alert.html",
        who,
        a=a,
        labels=labels,
        suspects=suspects if isinstance(suspects, list) else [],
    )


@router.get("/alerts/{alert_id}/incident.md")
def incident(request: Request, alert_id: PathId, who: Viewer = Signed) -> PlainTextResponse:
    """The postmortem draft of the alert's incident."""
    st = state(request)
    return PlainTextResponse(watching.incident(st.engine, st.clock, alert_id))


@router.post("/alerts/{alert_id}/ack")
def ack(request: Request, alert_id: PathId, who: Viewer = Write) -> RedirectResponse:
    st = state(request)
    watching.ack(st.engine, st.clock, alert_id, actor(who))
    return RedirectResponse(f"{PREFIX}/alerts/{alert_id}", status_code=303)


@router.post("/alerts/{alert_id}/silence")
def silence(
    request: Request,
    alert_id: PathId,
    minutes: Annotated[float, Form(gt=0, le=60 * 24 * 30)],
    reason: Annotated[str, Form(max_length=2000)] = "",
    who: Viewer = Write,
) -> RedirectResponse:
    """Silence alerts with this one's name and labels (suspects aside) for `minutes`."""
    st = state(request)
    a = watching.alert(st.engine, alert_id)
    labels = {k: v for k, v in a.labels.items() if k != "suspects"}
    why = f"{reason} ({actor(who)})".strip()
    watching.silence(st.engine, st.clock, a.name, labels, minutes, why)
    return RedirectResponse(f"{PREFIX}/alerts/{alert_id}?silenced=1", status_code=303)
