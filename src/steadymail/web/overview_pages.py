"""The region's overview: its services, active sends and firing alerts, refreshed live."""

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from steadymail.api.deps import state
from steadymail.domain.states import AlertState
from steadymail.services import sends, watching
from steadymail.web.site import PREFIX, Signed, Viewer, site

router = APIRouter(prefix=PREFIX, include_in_schema=False)


def _overview(request: Request) -> dict[str, Any]:
    st = state(request)
    firing = watching.list_alerts(st.engine, AlertState.FIRING.value, None, 50, 0)
    return {
        "region": st.settings.region,
        "services": watching.services(st.engine, st.clock, st.settings),
        "active": sends.active(st.engine),
        "firing": firing,
        "stalled": {a.labels.get("send") for a in firing if a.name == "send_stalled"},
        "now": st.clock.now(),
    }


@router.get("/")
def overview(request: Request, who: Viewer = Signed) -> HTMLResponse:
    return site(request).render(request, "overview.html", who, **_overview(request))


@router.get("/live/overview")
def overview_live(request: Request, who: Viewer = Signed) -> HTMLResponse:
    return site(request).render(request, "_overview.html", who, **_overview(request))
