"""The control plane's console: every region at a glance, rollouts with their waves and each
gate's evidence, and the buttons that pause, resume, roll back and revert (with a reason)."""

import hmac
import json
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Form, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse

from steadymail.api.models import PathId
from steadymail.clock import Clock
from steadymail.control.regions import RegionUnreachable
from steadymail.control.service import ControlPlane
from steadymail.errors import NotFound, Unauthorized
from steadymail.web import console
from steadymail.web.session import SessionSigner
from steadymail.web.site import PREFIX, Admin, Signed, Site, Viewer, site

router = APIRouter(prefix=PREFIX, include_in_schema=False)
# The control plane has one key, an admin credential: a session made with it can do anything.
EVERY_SCOPE = {"read", "write", "send", "admin"}
GATE_KINDS = ("wave_passed", "bake_extended", "revert_withheld", "waiting")
# Pause, resume and roll back record who acted in one actor field (200 characters): the reason
# goes there after "console: ".
Reason = Annotated[str, Form(min_length=1, max_length=190)]
LongReason = Annotated[str, Form(min_length=1, max_length=2000)]


def _plane(request: Request) -> ControlPlane:
    plane: ControlPlane = request.app.state.plane
    return plane


def _by(who: Viewer, reason: str) -> str:
    # The audit log keeps one actor field: the person's channel and their reason, together.
    return f"console: {reason.strip()}"


def _overview(request: Request) -> dict[str, Any]:
    plane = _plane(request)
    urls = {r.name: r.url.rstrip("/") for r in plane.settings.control_regions}
    return {
        "regions": plane.region_views(),
        "urls": urls,
        "rollouts": plane.rollouts(30),
        "now": plane.clock.now(),
    }


@router.get("/")
def overview(request: Request, who: Viewer = Signed) -> HTMLResponse:
    return site(request).render(request, "control/overview.html", who, **_overview(request))


@router.get("/live/overview")
def overview_live(request: Request, who: Viewer = Signed) -> HTMLResponse:
    return site(request).render(request, "control/_overview.html", who, **_overview(request))


def _value(text: str) -> Any:
    """A flag value as typed: JSON when it parses (true, 2, "v2", {...}), else the text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


@router.post("/rollouts")
def start(
    request: Request,
    flag: Annotated[str, Form(min_length=1, max_length=200)],
    value: Annotated[str, Form(max_length=10_000)],
    reason: Reason,
    plan: Annotated[str, Form(max_length=200)] = "",
    bake: Annotated[str, Form(max_length=20)] = "",
    guard: Annotated[str, Form(max_length=20)] = "",
    who: Viewer = Admin,
) -> RedirectResponse:
    p = _plane(request)
    planned = p.plan(flag, _value(value), plan or None, bake or None, guard or None, None)
    rollout = p.start(planned, _by(who, reason))
    return RedirectResponse(f"{PREFIX}/rollouts/{rollout.id}", status_code=303)


def _rollout(request: Request, rollout_id: PathId) -> dict[str, Any]:
    status = _plane(request).status(rollout_id)
    events = status["events"]
    return {
        "r": status,
        "events": events,
        # What the gates decided and on what evidence: a wave passed, a bake extended while
        # inconclusive, a rollback a gate decided (its reason names the evidence).
        "gates": [
            e for e in events if e["kind"] in GATE_KINDS or str(e["actor"]).startswith("gate:")
        ],
        "now": _plane(request).clock.now(),
    }


@router.get("/rollouts/{rollout_id}")
def rollout_page(request: Request, rollout_id: PathId, who: Viewer = Signed) -> HTMLResponse:
    return site(request).render(
        request, "control/rollout.html", who, **_rollout(request, rollout_id)
    )


@router.get("/live/rollouts/{rollout_id}")
def rollout_live(request: Request, rollout_id: PathId, who: Viewer = Signed) -> HTMLResponse:
    return site(request).render(
        request, "control/_rollout.html", who, **_rollout(request, rollout_id)
    )


@router.post("/rollouts/{rollout_id}/{action}")
def steer(
    request: Request, rollout_id: PathId, action: str, reason: Reason, who: Viewer = Admin
) -> RedirectResponse:
    p = _plane(request)
    if action not in ("pause", "resume", "rollback"):
        raise NotFound(f"no action {action!r}")
    getattr(p, action)(rollout_id, _by(who, reason))
    return RedirectResponse(f"{PREFIX}/rollouts/{rollout_id}", status_code=303)


@router.post("/flags/revert")
def revert(
    request: Request,
    flag: Annotated[str, Form(min_length=1, max_length=200)],
    reason: LongReason,
    who: Viewer = Admin,
) -> RedirectResponse:
    rollout = _plane(request).revert(flag.strip(), "console", reason.strip())
    return RedirectResponse(f"{PREFIX}/rollouts/{rollout.id}", status_code=303)


Minutes = Annotated[float, Query(gt=0, le=60 * 24 * 31, allow_inf_nan=False)]


@router.get("/metrics")
def metrics_page(
    request: Request,
    name: Annotated[str, Query(max_length=200)] = "",
    minutes: Minutes = 60,
    who: Viewer = Signed,
) -> HTMLResponse:
    """One series drawn for every region, one chart each, for comparing them at a glance."""
    plane = _plane(request)
    names: set[str] = set()
    unreachable = []
    for region in plane.regions.names:
        try:
            names.update(plane.regions.series_names(region, minutes))
        except RegionUnreachable as e:
            unreachable.append(str(e))
    chosen = name or ("sent" if "sent" in names else min(names, default=""))
    return site(request).render(
        request,
        "control/metrics.html",
        who,
        names=sorted(names),
        name=chosen,
        minutes=minutes,
        regions=plane.regions.names,
        unreachable=unreachable,
    )


@router.get("/metrics/series.json")
def series_json(
    request: Request,
    region: Annotated[str, Query(max_length=50)],
    name: Annotated[str, Query(min_length=1, max_length=200)],
    minutes: Minutes = 60,
    who: Viewer = Signed,
) -> JSONResponse:
    plane = _plane(request)
    if region not in plane.regions.names:
        raise NotFound(f"no region {region!r}")
    data = plane.regions.series(region, name, minutes)
    now = plane.clock.now()
    return JSONResponse({**data, "window": [now - minutes * 60, now]})


def install(app: FastAPI, key: str, clock: Clock) -> None:
    """Serve the control plane's console, signed in with the control API key."""

    def check_key(given: str) -> str:
        if not hmac.compare_digest(given.encode(), key.encode()):
            raise Unauthorized("wrong control API key")
        return "control"

    def scopes_of(who: str) -> set[str]:
        if who != "control":
            raise Unauthorized("not a control plane session")
        return EVERY_SCOPE

    signer_key = hmac.digest(key.encode(), b"steadymail control console session", "sha256")
    console.install(
        app,
        Site(
            title="control plane",
            signer=SessionSigner(signer_key),
            scopes_of=scopes_of,
            check_key=check_key,
            nav=[("/", "Regions and rollouts"), ("/metrics", "Metrics")],
            clock=clock.now,
        ),
        [router],
    )
