"""The control plane's HTTP API: regions, rollouts (start, status, pause, resume, rollback)."""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel, ConfigDict, Field

from steadymail import __version__
from steadymail.api import errors
from steadymail.api.deps import bearer, bearer_token
from steadymail.api.limits import Page, Paged
from steadymail.api.models import JsonValue, PathId
from steadymail.clock import Clock, SystemClock
from steadymail.config import Settings, load_settings
from steadymail.control import console_pages
from steadymail.control.service import ControlPlane
from steadymail.errors import Unauthorized, ValidationError
from steadymail.rollout.controller import Rollout
from steadymail.services import control_plane

log = logging.getLogger("steadymail.control")

# A shorter key could be guessed; `steadymail control` generates 32 random bytes.
MIN_KEY_LENGTH = 16


class RolloutIn(BaseModel):
    model_config = ConfigDict(allow_inf_nan=False)

    flag: str
    value: JsonValue = None
    plan: str | None = None  # "R3,R1,R2"; default: the canary first
    bake: str | float | None = None  # "10m"; default: the policy's minimum
    guard: str | float | None = None
    gates: list[str] | None = None
    by: str = Field(min_length=1, max_length=200)


class ActorIn(BaseModel):
    model_config = ConfigDict(allow_inf_nan=False)

    by: str = Field(min_length=1, max_length=200)


class RevertIn(BaseModel):
    model_config = ConfigDict(allow_inf_nan=False)

    by: str = Field(min_length=1, max_length=200)
    reason: str = Field(min_length=1, max_length=2000)


class ServiceHealthOut(BaseModel):
    status: str
    service: str
    version: str


class FiringAlertOut(BaseModel):
    id: int
    name: str
    summary: str


class RegionOut(BaseModel):
    """A region as the control plane sees it; the fields after `reachable` are there only when
    it answered, `error` only when it did not."""

    region: str
    reachable: bool
    error: str | None = None
    version: str | None = None
    flags: dict[str, JsonValue] | None = Field(default=None, description="flags set, by name")
    firing_alerts: list[FiringAlertOut] | None = None


class AuditEventOut(BaseModel):
    id: int
    rollout_id: int
    at: float = Field(description="epoch seconds")
    kind: str
    region: str = Field(description="empty for the rollout as a whole")
    actor: str
    detail: str


@dataclass
class RolloutStatusOut(Rollout):
    """A rollout's whole state with its audit log, oldest first."""

    events: list[AuditEventOut] = field(default_factory=list)


async def drive(plane: ControlPlane, interval: float) -> None:
    """Step the rollouts every `interval` seconds while the app runs. A tick that fails is
    logged with its traceback and how many ticks in a row have failed, and the loop goes on: a
    broken driver is in the log every tick, never silent, and recovers when its cause does.
    (A rollout that fails to step is logged with its id by `ControlPlane.tick`; the others
    still step.)"""
    failed = 0
    while True:
        try:
            await asyncio.to_thread(plane.tick)
            failed = 0
        except Exception:
            failed += 1
            log.exception("event=control_tick_failed failed_in_a_row=%d", failed)
        await asyncio.sleep(interval)


def create_control_app(settings: Settings, clock: Clock | None = None) -> FastAPI:
    """The control plane's app; refuses to exist without a control API key (ValidationError):
    it steers every region, so it is never open."""
    key = settings.control_api_key.get_secret_value() if settings.control_api_key else ""
    if len(key) < MIN_KEY_LENGTH:
        raise ValidationError(
            f"the control plane needs control_api_key (STEADYMAIL_CONTROL_API_KEY), at least "
            f"{MIN_KEY_LENGTH} characters; `steadymail control` generates one into "
            f"<data_dir>/control-api-key"
        )
    clock = clock or SystemClock()
    engine = control_plane.open_database(settings)  # migrated, as a region's database is
    plane = ControlPlane(settings, engine, clock)

    def authorised(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        # The one key is an admin credential: it starts, pauses and rolls back rollouts.
        given = bearer_token(credentials)
        if not hmac.compare_digest(given.encode(), key.encode()):
            raise Unauthorized("wrong control API key")

    auth = Depends(authorised)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        driver = asyncio.create_task(drive(plane, settings.control_interval))
        try:
            yield
        finally:
            driver.cancel()
            plane.regions.close()

    app = FastAPI(title="steadymail control plane", version=__version__, lifespan=lifespan)
    app.state.plane = plane
    errors.install(app)

    @app.get("/healthz")
    def healthz() -> ServiceHealthOut:
        return ServiceHealthOut(status="ok", service="control", version=__version__)

    # What a route returns as a dict is checked against (and documented by) its model; fields a
    # dict leaves out stay out.
    @app.get(
        "/v1/regions",
        dependencies=[auth],
        response_model=list[RegionOut],
        response_model_exclude_unset=True,
    )
    def regions() -> list[dict[str, Any]]:
        return plane.region_views()

    @app.post("/v1/rollouts", status_code=201, dependencies=[auth], response_model=Rollout)
    def start(body: RolloutIn) -> dict[str, Any]:
        plan = plane.plan(body.flag, body.value, body.plan, body.bake, body.guard, body.gates)
        return plane.start(plan, body.by).to_dict()

    @app.get("/v1/rollouts", dependencies=[auth], response_model=list[Rollout])
    def listing(page: Page = Paged) -> list[dict[str, Any]]:
        """Rollouts, newest first, a page at a time (`limit`, `offset`)."""
        return plane.rollouts(page.limit, page.offset)

    @app.get("/v1/rollouts/{rollout_id}", dependencies=[auth], response_model=RolloutStatusOut)
    def status(rollout_id: PathId) -> dict[str, Any]:
        return plane.status(rollout_id)

    @app.post("/v1/rollouts/{rollout_id}/pause", dependencies=[auth], response_model=Rollout)
    def pause(rollout_id: PathId, body: ActorIn) -> dict[str, Any]:
        return plane.pause(rollout_id, body.by).to_dict()

    @app.post("/v1/rollouts/{rollout_id}/resume", dependencies=[auth], response_model=Rollout)
    def resume(rollout_id: PathId, body: ActorIn) -> dict[str, Any]:
        return plane.resume(rollout_id, body.by).to_dict()

    @app.post(
        "/v1/flags/{flag}/revert", status_code=201, dependencies=[auth], response_model=Rollout
    )
    def revert(flag: str, body: RevertIn) -> dict[str, Any]:
        """Every region back to its previous value of the flag, now, freeze or not (audited)."""
        return plane.revert(flag, body.by, body.reason).to_dict()

    @app.post("/v1/rollouts/{rollout_id}/rollback", dependencies=[auth], response_model=Rollout)
    def rollback(rollout_id: PathId, body: ActorIn) -> dict[str, Any]:
        return plane.rollback(rollout_id, body.by).to_dict()

    console_pages.install(app, key, clock)
    return app


def control_app_from_env() -> FastAPI:
    """uvicorn factory: `uvicorn --factory steadymail.control.app:control_app_from_env`."""
    return create_control_app(load_settings())
