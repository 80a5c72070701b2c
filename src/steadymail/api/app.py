"""The ASGI application factories: the admin API and the public (tracking) listener.

The admin app (`/v1`, `/docs`, `/openapi.json`, `/metrics`, `/healthz`, `/readyz`) binds to
`api_host:api_port`, loopback by default. The public app (`/t/…`, `/u/…`, `/healthz`) is the only
one that should face the internet, on `public_host:public_port`. Neither serves the other's
routes.
"""

import os
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from steadymail import __version__
from steadymail.api import (
    domain_routes,
    errors,
    flag_routes,
    inbound_routes,
    message_log_routes,
    quarantine_routes,
    rest,
    suppression_routes,
    tracking_routes,
    watch_routes,
    webhook_routes,
)
from steadymail.api.limits import BodyLimit, body_limit_for
from steadymail.api.models import HealthOut, ReadyOut, StatusOut
from steadymail.api.responses import PrometheusResponse
from steadymail.api.runtime import ApiRuntime
from steadymail.api.tracking_hot_path import TrackingHotPath
from steadymail.clock import Clock, SystemClock
from steadymail.config import Settings, load_settings
from steadymail.services import database
from steadymail.services.database import Engine


def _app(runtime: ApiRuntime, limit_for: Callable[[str], int], **fastapi: Any) -> FastAPI:
    """What both listeners' apps share: the runtime's lifespan and state, the error shape and
    the body limit."""
    app = FastAPI(lifespan=runtime.lifespan, **fastapi)
    app.state.steadymail = runtime.state
    errors.install(app)
    app.add_middleware(BodyLimit, limit_for=limit_for)
    return app


def create_app(
    settings: Settings,
    engine: Engine,
    clock: Clock | None = None,
    runtime: ApiRuntime | None = None,
) -> FastAPI:
    """The admin API; pass the `runtime` of `create_public_app` to share one process's state."""
    runtime = runtime or ApiRuntime(settings, engine, clock or SystemClock())
    app = _app(
        runtime,
        body_limit_for(settings.max_request_bytes, settings.max_import_bytes),
        title="steadymail",
        version=__version__,
    )
    # Before rest's catch-all `POST /v1/sends/{id}/{action}`, which would answer requeue 404.
    app.include_router(quarantine_routes.router)
    app.include_router(suppression_routes.router)
    app.include_router(message_log_routes.router)
    app.include_router(webhook_routes.router)
    app.include_router(inbound_routes.router)
    app.include_router(rest.router)
    app.include_router(watch_routes.router)
    app.include_router(flag_routes.router)
    app.include_router(domain_routes.router)

    @app.get("/healthz")
    def healthz() -> HealthOut:
        return HealthOut(status="ok", region=settings.region, version=__version__)

    @app.get(
        "/readyz",
        response_model=ReadyOut,
        responses={503: {"model": ReadyOut, "description": "the region database does not answer"}},
    )
    def readyz() -> JSONResponse:
        """Ready when the region database answers (a load balancer's or kubelet's probe)."""
        error = database.ready(engine)
        if error is not None:
            return JSONResponse({"status": "failing", "error": error}, status_code=503)
        return JSONResponse({"status": "ok", "region": settings.region})

    @app.get("/metrics", response_class=PrometheusResponse)
    def prometheus_metrics() -> PrometheusResponse:
        registry = REGISTRY
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            # Every process of this host that wrote to the directory: workers included.
            registry = CollectorRegistry()
            MultiProcessCollector(registry)
        return PrometheusResponse(generate_latest(registry).decode())

    return app


def create_public_app(
    settings: Settings,
    engine: Engine,
    clock: Clock | None = None,
    runtime: ApiRuntime | None = None,
) -> FastAPI:
    """The public listener: click, open and unsubscribe routes and a liveness probe only."""
    runtime = runtime or ApiRuntime(settings, engine, clock or SystemClock())
    app = _app(
        runtime,
        # Nothing here takes an upload: every body is held to the ordinary request limit.
        body_limit_for(settings.max_request_bytes, settings.max_request_bytes),
        # No schema, no docs: nothing here describes the admin API to the internet.
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.include_router(tracking_routes.router)
    app.add_middleware(TrackingHotPath)

    @app.get("/healthz")
    def healthz() -> StatusOut:
        return StatusOut(status="ok")

    return app


def create_apps(
    settings: Settings, engine: Engine, clock: Clock | None = None
) -> tuple[FastAPI, FastAPI]:
    """The admin and public apps of one process, sharing one runtime (see api/runtime.py)."""
    runtime = ApiRuntime(settings, engine, clock or SystemClock())
    return (
        create_app(settings, engine, runtime=runtime),
        create_public_app(settings, engine, runtime=runtime),
    )


def app_from_env() -> FastAPI:
    """uvicorn factory, the admin API alone: `uvicorn --factory steadymail.api.app:app_from_env`."""
    settings = load_settings()
    return create_app(settings, database.open_region(settings))


def public_app_from_env() -> FastAPI:
    """uvicorn factory for the public listener alone (`…:public_app_from_env`)."""
    settings = load_settings()
    return create_public_app(settings, database.open_region(settings))
