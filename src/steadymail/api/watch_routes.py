"""REST routes for watching: alerts, acknowledgements, silences, workers, stalls, incidents."""

from dataclasses import asdict

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from steadymail.api.deps import AppState, Read, Write
from steadymail.api.errors import ERROR_RESPONSES, ERROR_RESPONSES_BESIDE_NON_JSON
from steadymail.api.limits import MAX_PAGE, Page, Paged
from steadymail.api.models import (
    AlertOut,
    ChangeOut,
    In,
    Labels,
    PathId,
    SeriesOut,
    WorkerOut,
)
from steadymail.api.responses import MarkdownResponse
from steadymail.services import exits, metrics, watching

router = APIRouter(prefix="/v1", responses=ERROR_RESPONSES)

# Time windows in minutes: above 0, at most 31 days; finite.
Minutes = Query(default=60.0, gt=0, le=60 * 24 * 31, allow_inf_nan=False)
Since = Query(default=None, allow_inf_nan=False, description="epoch seconds")


class AckIn(In):
    by: str = Field(min_length=1, max_length=200)


class SilenceIn(In):
    name: str = Field(min_length=1, max_length=100)
    labels: Labels = Field(default_factory=dict)
    minutes: float = Field(default=60, gt=0, le=60 * 24 * 30, description="1 minute to 30 days")
    reason: str = Field(default="", max_length=2000)


class SilenceOut(BaseModel):
    id: int


@router.get("/alerts")
def get_alerts(
    state: str | None = Query(default=None, max_length=20),
    since: float | None = Since,
    limit: int | None = Query(
        default=None, ge=1, le=MAX_PAGE, description="default 100; 500 with `since`"
    ),
    offset: int = Query(default=0, ge=0, le=1_000_000),
    st: AppState = Read,
) -> list[AlertOut]:
    """Newest first; ``state`` (firing, resolved), ``since`` (epoch seconds of start)."""
    rows = watching.list_alerts(st.engine, state, since, limit, offset)
    return [AlertOut(**asdict(a)) for a in rows]


@router.get("/alerts/{alert_id}")
def get_alert(alert_id: PathId, st: AppState = Read) -> AlertOut:
    """An alert with its timeline."""
    return AlertOut(**asdict(watching.alert(st.engine, alert_id)))


@router.post("/alerts/{alert_id}/ack")
def ack_alert(alert_id: PathId, body: AckIn, st: AppState = Write) -> AlertOut:
    watching.ack(st.engine, st.clock, alert_id, body.by)
    return AlertOut(**asdict(watching.alert(st.engine, alert_id)))


@router.post("/silences", status_code=201)
def post_silence(body: SilenceIn, st: AppState = Write) -> SilenceOut:
    sid = watching.silence(st.engine, st.clock, body.name, body.labels, body.minutes, body.reason)
    return SilenceOut(id=sid)


@router.get("/workers")
def get_workers(page: Page = Paged, st: AppState = Read) -> list[WorkerOut]:
    """Live processes of the region, with the seconds since their last heartbeat."""
    out = []
    for w in watching.workers(st.engine, st.clock, st.settings, page.limit, page.offset):
        fields = asdict(w.instance)
        # Digests of its settings and its lock's inode: internal, and no help to a reader.
        del fields["config"], fields["lock"]
        out.append(WorkerOut(**fields, heartbeat_age=w.heartbeat_age))
    return out


@router.get("/stalls")
def get_stalls(page: Page = Paged, st: AppState = Read) -> list[AlertOut]:
    """Firing stall alerts, newest first."""
    return [AlertOut(**asdict(a)) for a in watching.stalls(st.engine, page.limit, page.offset)]


@router.get(
    "/incidents/{alert_id}",
    response_class=MarkdownResponse,
    responses={**ERROR_RESPONSES_BESIDE_NON_JSON, 200: {"description": "the postmortem draft"}},
)
def get_incident(alert_id: PathId, st: AppState = Read) -> MarkdownResponse:
    return MarkdownResponse(watching.incident(st.engine, st.clock, alert_id))


@router.get("/metrics/series")
def get_series_names(
    minutes: float = Minutes,
    resolution: str = "raw",
    page: Page = Paged,
    st: AppState = Read,
) -> list[str]:
    """The region's series with points in the last ``minutes``, sorted by name."""
    return metrics.series_names(
        st.engine, st.clock, st.settings, minutes, resolution, page.limit, page.offset
    )


@router.get("/metrics/series/{name}")
def get_series(
    name: str, minutes: float = Minutes, resolution: str = "raw", st: AppState = Read
) -> SeriesOut:
    """Points ``[ts, value]`` of one series, with the anomaly alerts raised on it."""
    return SeriesOut(**metrics.series(st.engine, st.clock, st.settings, name, minutes, resolution))


@router.get("/changes")
def get_changes(
    since: float | None = Since, page: Page = Paged, st: AppState = Read
) -> list[ChangeOut]:
    """Changes made in this region (flag values, deploys), newest first."""
    rows = exits.change_log(st.engine, page.limit, since, page.offset)
    return [ChangeOut(**asdict(c)) for c in rows]
