"""REST routes of event webhooks."""

from fastapi import APIRouter
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from steadymail.api.deps import AppState, Read, Write
from steadymail.api.errors import ERROR_RESPONSES
from steadymail.api.models import In, PathId
from steadymail.domain.webhooks import EVENT_TYPES
from steadymail.services import webhooks

router = APIRouter(prefix="/v1", responses=ERROR_RESPONSES)


class WebhookIn(In):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    url: str = Field(min_length=8, max_length=2000)
    events: list[str] = Field(
        min_length=1, max_length=len(EVENT_TYPES), examples=[["sent", "bounced", "clicked"]]
    )
    secret: str | None = Field(
        default=None, max_length=200, description="whsec_...; generated when absent"
    )
    description: str = Field(default="", max_length=200)


class WebhookOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    url: str
    events: list[str]
    description: str
    enabled: bool
    disabled_reason: str
    created_at: float
    failing_since: float | None
    last_success_at: float | None
    last_error: str
    deliveries: dict[str, int] | None = Field(
        default=None, description="by state: pending, batched, delivered, dead"
    )


class WebhookCreated(WebhookOut):
    secret: str = Field(description="shown once: verify signatures with it")


class EnableIn(In):
    model_config = ConfigDict(extra="forbid")

    enabled: bool
    reason: str = Field(default="", max_length=500)


class ReplayIn(In):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    since: AwareDatetime = Field(description="ISO 8601 with an offset, or epoch seconds")


class ReplayOut(BaseModel):
    queued: int


@router.post("/webhooks", status_code=201)
def post_webhook(body: WebhookIn, st: AppState = Write) -> WebhookCreated:
    """Send the chosen events (queued, sent, deferred, bounced, failed, complained, opened,
    clicked, unsubscribed) to a URL, signed per the Standard Webhooks specification."""
    added = webhooks.add(
        st.engine, st.clock, st.settings, body.url, body.events, body.secret, body.description
    )
    out = WebhookOut.model_validate(added.webhook).model_dump()
    return WebhookCreated(**out, secret=added.secret)


@router.get("/webhooks")
def get_webhooks(st: AppState = Read) -> list[WebhookOut]:
    return [WebhookOut.model_validate(w) for w in webhooks.listing(st.engine)]


@router.get("/webhooks/{webhook_id}")
def get_webhook(webhook_id: PathId, st: AppState = Read) -> WebhookOut:
    hook, deliveries = webhooks.get(st.engine, webhook_id)
    return WebhookOut.model_validate(hook).model_copy(update={"deliveries": deliveries})


@router.post("/webhooks/{webhook_id}/enabled")
def set_enabled(webhook_id: PathId, body: EnableIn, st: AppState = Write) -> WebhookOut:
    """Enable (its open batch is retried at once) or disable (say why)."""
    hook = webhooks.set_enabled(st.engine, webhook_id, body.enabled, body.reason)
    return WebhookOut.model_validate(hook)


class RemovedOut(BaseModel):
    removed: int


@router.delete("/webhooks/{webhook_id}")
def delete_webhook(webhook_id: PathId, st: AppState = Write) -> RemovedOut:
    """Remove a webhook and its outbox (undelivered events included)."""
    webhooks.remove(st.engine, webhook_id)
    return RemovedOut(removed=webhook_id)


@router.post("/webhooks/{webhook_id}/replay")
def replay(webhook_id: PathId, body: ReplayIn, st: AppState = Write) -> ReplayOut:
    """Deliver again every event since a time (after what is pending)."""
    return ReplayOut(
        queued=webhooks.replay(st.engine, st.clock, webhook_id, body.since.timestamp())
    )
