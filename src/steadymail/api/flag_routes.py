"""REST routes for a region's flags, and notes on its alerts' timelines (the control plane's)."""

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Query
from pydantic import Field

from steadymail.api.deps import Admin, AppState, Read, Write
from steadymail.api.errors import ERROR_RESPONSES
from steadymail.api.limits import Page, Paged
from steadymail.api.models import (
    ExternalAlertOut,
    FlagChangeOut,
    FlagSetOut,
    FlagsOut,
    In,
    JsonValue,
    Labels,
    NotedOut,
    PathId,
)
from steadymail.services import flag_admin

router = APIRouter(prefix="/v1", responses=ERROR_RESPONSES)


class FlagIn(In):
    value: JsonValue = None  # null unsets the flag
    by: str = Field(min_length=1, max_length=200)
    reason: str = Field(default="", max_length=2000)


class ExternalAlertIn(In):
    fingerprint: str = Field(min_length=1, max_length=300)
    summary: str = Field(default="", max_length=2000)
    labels: Labels = Field(default_factory=dict)
    detail: str = Field(default="", max_length=4000)
    resolve: bool = False


class NoteIn(In):
    by: str = Field(min_length=1, max_length=200)
    text: str = Field(min_length=1, max_length=4000)


@router.get("/flags", response_model=FlagsOut)
def get_flags(st: AppState = Read) -> dict[str, Any]:
    """Flags set in this region, and every flag the region knows."""
    return flag_admin.listing(st.engine, st.settings.region)


@router.get("/flags/history")
def get_flag_history(
    name: str | None = Query(default=None, max_length=100),
    page: Page = Paged,
    st: AppState = Read,
) -> list[FlagChangeOut]:
    """Flag changes, newest first; ``name`` narrows to one flag."""
    rows = flag_admin.history(st.engine, name, page.limit, page.offset)
    return [FlagChangeOut(**asdict(c)) for c in rows]


@router.put("/flags/{name}", response_model=FlagSetOut)
def put_flag(name: str, body: FlagIn, st: AppState = Admin) -> dict[str, Any]:
    """Set (or, with a null value, unset) a flag; workers pick it up within a second."""
    return flag_admin.set_flag(
        st.engine,
        st.clock,
        name,
        body.value,
        body.by,
        body.reason,
        st.settings.region,
        st.settings.resolved_heartbeat_interval(),
    )


@router.post("/alerts/{alert_id}/notes", status_code=201, response_model=NotedOut)
def post_note(alert_id: PathId, body: NoteIn, st: AppState = Write) -> dict[str, str]:
    flag_admin.note_alert(st.engine, st.clock, alert_id, body.by, body.text)
    return {"status": "noted"}


@router.post("/alerts", response_model=ExternalAlertOut)
def post_alert(body: ExternalAlertIn, st: AppState = Write) -> dict[str, Any]:
    """Raise or resolve an alert from outside (``rollout:<id>``: the control plane's rollbacks)."""
    return flag_admin.external_alert(
        st.engine,
        st.clock,
        st.settings,
        body.fingerprint,
        body.summary,
        body.labels,
        body.detail,
        body.resolve,
    )
