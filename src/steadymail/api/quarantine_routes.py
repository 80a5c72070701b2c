"""REST routes for the person on call: quarantined messages, releasing them, requeueing a send."""

from dataclasses import asdict

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from steadymail.api.deps import Admin, AppState, Read
from steadymail.api.errors import ERROR_RESPONSES
from steadymail.api.limits import Page, Paged
from steadymail.api.models import BodyId, In, PathId, QueryId
from steadymail.services import quarantine

router = APIRouter(prefix="/v1", responses=ERROR_RESPONSES)


class QuarantinedOut(BaseModel):
    id: int
    send: int
    email: str
    crashes: int = Field(description="workers that died with it in flight")
    last_error: str | None
    quarantined_at: float | None = Field(description="epoch seconds; null if unknown")


class ReleaseIn(In):
    """Either ``messages`` (ids) or ``send`` (every quarantined message of that send)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    messages: list[BodyId] | None = Field(default=None, max_length=quarantine.MAX_RELEASE)
    send: BodyId | None = None


class ReleaseOut(BaseModel):
    released: int
    messages: list[int]


class RequeueOut(BaseModel):
    send: int
    dead_owner_leases: int = Field(description="leases of dead workers, expired now")
    expired_leases: int = Field(description="leases that had already lapsed")
    live_leases: int = Field(description="leases of live workers, left alone")
    deferred: int = Field(description="deferred messages made due now")
    batches_due: int = Field(description="batches that waited for them, due now")


@router.get("/quarantine")
def get_quarantine(
    send: QueryId = None, page: Page = Paged, st: AppState = Read
) -> list[QuarantinedOut]:
    """Quarantined messages, oldest first; ``send`` narrows to one send."""
    return [
        QuarantinedOut(
            id=m.id,
            send=m.send_id,
            email=m.email,
            crashes=m.crashes,
            last_error=m.last_error,
            quarantined_at=m.quarantined_at,
        )
        for m in quarantine.listing(st.engine, send, page.limit, page.offset)
    ]


@router.post("/quarantine/release")
def post_release(body: ReleaseIn, st: AppState = Admin) -> ReleaseOut:
    """Back in the queue, due now; refused whole if any message is not quarantined."""
    out = quarantine.release(st.engine, st.clock, messages=body.messages, send_id=body.send)
    return ReleaseOut(released=out["released"], messages=out["messages"])


@router.post("/sends/{send_id}/requeue")
def post_requeue(send_id: PathId, st: AppState = Admin) -> RequeueOut:
    """Leases of dead workers expire now (a live worker reclaims them), deferred messages are
    due now; leases of live workers are left alone."""
    requeued = quarantine.requeue(st.engine, st.clock, st.settings, send_id)
    return RequeueOut(send=send_id, **asdict(requeued))
