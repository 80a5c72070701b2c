"""The ASGI application factory."""

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import Engine, text

from steadymail import __version__
from steadymail.api import (
    errors,
    flag_routes,
    quarantine_routes,
    rest,
    tracking_routes,
    watch_routes,
)
from steadymail.api.deps import AppState
from steadymail.clock import Clock, SystemClock
from steadymail.config import Settings, load_settings
from steadymail.metrics import Metrics, SeriesFlusher
from steadymail.store.db import make_engine
from steadymail.store.presence import ServicePresence
from steadymail.tracking.events import EventRecorder
from steadymail.tracking.keys import load_tracking_secrets


def create_app(settings: Settings, engine: Engine, clock: Clock | None = None) -> FastAPI:
    clock = clock or SystemClock()
    secrets = load_tracking_secrets(settings)
    recorder = EventRecorder(
        engine,
        clock,
        secrets.ip_hash_key,
        settings.scanner_click_window,
        settings.tracking_flush_interval,
        max_pending=settings.tracking_buffer_max,
    )

    metrics = Metrics(settings.region, settings.metrics_interval)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        writer = asyncio.create_task(recorder.run())
        presence = ServicePresence(engine, clock, settings, "api")
        await presence.start()
        flusher = SeriesFlusher(metrics, engine, clock, presence.instance_id)
        flushing = asyncio.create_task(flusher.run())
        try:
            yield
        finally:
            flushing.cancel()
            await flusher.flush(final=True)
            writer.cancel()
            # A clean shutdown loses no recorded click, open or unsubscribe.
            await recorder.close()
            await presence.stop("graceful")

    app = FastAPI(title="steadymail", version=__version__, lifespan=lifespan)
    app.state.steadymail = AppState(
        settings,
        engine,
        clock,
        settings.resolved_capture_db(),
        secrets.signer,
        recorder,
        metrics,
    )
    errors.install(app)
    # Tracking first: its public routes are the hot path, and routes match in order.
    app.include_router(tracking_routes.router)
    # Before rest's catch-all `POST /v1/sends/{id}/{action}`, which would answer requeue 404.
    app.include_router(quarantine_routes.router)
    app.include_router(rest.router)
    app.include_router(watch_routes.router)
    app.include_router(flag_routes.router)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok", "region": settings.region, "version": __version__}

    @app.get("/readyz")
    def readyz() -> JSONResponse:
        """Ready when the region database answers (a load balancer's or kubelet's probe)."""
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as e:
            return JSONResponse({"status": "failing", "error": type(e).__name__}, status_code=503)
        return JSONResponse({"status": "ok", "region": settings.region})

    @app.get("/metrics")
    def prometheus_metrics() -> PlainTextResponse:
        registry = REGISTRY
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            # Every process of this host that wrote to the directory: workers included.
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return PlainTextResponse(generate_latest(registry).decode(), media_type=CONTENT_TYPE_LATEST)

    return app


def app_from_env() -> FastAPI:
    """uvicorn factory: `uvicorn --factory steadymail.api.app:app_from_env`."""
    settings = load_settings()
    return create_app(settings, make_engine(settings.resolved_database_url()))
