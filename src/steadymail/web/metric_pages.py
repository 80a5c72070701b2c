"""Metrics: the region's series, each drawn with its anomaly marks and the flag changes."""

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse

from steadymail.api.deps import state
from steadymail.services import metrics
from steadymail.web.site import PREFIX, Signed, Viewer, site

router = APIRouter(prefix=PREFIX, include_in_schema=False)

Minutes = Annotated[float, Query(gt=0, le=60 * 24 * 31, allow_inf_nan=False)]
Name = Annotated[str, Query(min_length=1, max_length=200)]


@router.get("/metrics")
def metrics_page(request: Request, minutes: Minutes = 60, who: Viewer = Signed) -> HTMLResponse:
    st = state(request)
    names = metrics.series_names(st.engine, st.clock, st.settings, minutes, "raw", 500, 0)
    return site(request).render(request, "metrics.html", who, names=names, minutes=minutes)


@router.get("/metrics/series")
def series_page(
    request: Request, name: Name, minutes: Minutes = 60, who: Viewer = Signed
) -> HTMLResponse:
    st = state(request)
    data = metrics.series(st.engine, st.clock, st.settings, name, minutes)
    return site(request).render(request, "metric.html", who, name=name, minutes=minutes, data=data)


@router.get("/metrics/series.json")
def series_json(
    request: Request, name: Name, minutes: Minutes = 60, who: Viewer = Signed
) -> JSONResponse:
    st = state(request)
    data = metrics.series(st.engine, st.clock, st.settings, name, minutes)
    now = st.clock.now()
    # The chart spans the whole window asked for, however few points it has yet.
    return JSONResponse({**data, "window": [now - minutes * 60, now]})
