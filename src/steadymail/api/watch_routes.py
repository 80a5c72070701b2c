"""REST routes for watching: alerts, acknowledgements, silences, workers, stalls, incidents."""

from typing import Any

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field

from steadymail.api.deps import AppState, Read, Write
from steadymail.services import exits, metrics, watching

router = APIRouter(prefix="/v1")


class AckIn(BaseModel):
    by: str = Field(min_length=1, max_length=200)


class SilenceIn(BaseModel):
    name: str
    labels: dict[str, Any] = Field(default_factory=dict)
    minutes: float = 60
    reason: str = ""


@router.get("/alerts")
def get_alerts(
    state: str | None = None, since: float | None = None, st: AppState = Read
) -> list[dict[str, Any]]:
    """Newest first; ``state`` (firing, resolved), ``since`` (epoch seconds of start)."""
    return watching.list_alerts(st.engine, state, since)


@router.get("/alerts/{alert_id}")
def get_alert(alert_id: int, st: AppState = Read) -> dict[str, Any]:
    return watching.alert(st.engine, alert_id)


@router.post("/alerts/{alert_id}/ack")
def ack_alert(alert_id: int, body: AckIn, st: AppState = Write) -> dict[str, Any]:
    watching.ack(st.engine, st.clock, alert_id, body.by)
    return watching.alert(st.engine, alert_id)


@router.post("/silences", status_code=201)
def post_silence(body: SilenceIn, st: AppState = Write) -> dict[str, Any]:
    sid = watching.silence(st.engine, st.clock, body.name, body.labels, body.minutes, body.reason)
    return {"id": sid}


@router.get("/workers")
def get_workers(st: AppState = Read) -> list[dict[str, Any]]:
    return watching.workers(st.engine, st.clock, st.settings)


@router.get("/stalls")
def get_stalls(st: AppState = Read) -> list[dict[str, Any]]:
    return watching.stalls(st.engine)


@router.get("/incidents/{alert_id}")
def get_incident(alert_id: int, st: AppState = Read) -> PlainTextResponse:
    return PlainTextResponse(
        watching.incident(st.engine, st.clock, alert_id), media_type="text/markdown"
    )


@router.get("/metrics/series")
def get_series_names(
    minutes: float = 60, resolution: str = "raw", st: AppState = Read
) -> list[str]:
    """The region's series with points in the last ``minutes``."""
    return metrics.series_names(st.engine, st.clock, st.settings, minutes, resolution)


@router.get("/metrics/series/{name}")
def get_series(
    name: str, minutes: float = 60, resolution: str = "raw", st: AppState = Read
) -> dict[str, Any]:
    """Points ``[ts, value]`` of one series, with the anomaly alerts raised on it."""
    return metrics.series(st.engine, st.clock, st.settings, name, minutes, resolution)


@router.get("/changes")
def get_changes(
    limit: int = 100, since: float | None = None, st: AppState = Read
) -> list[dict[str, Any]]:
    """Changes made in this region (flag values, deploys), newest first."""
    return exits.change_log(st.engine, limit, since)
