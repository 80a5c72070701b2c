"""The ASGI application factory."""

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import Engine

from steadymail import __version__
from steadymail.api import errors, rest
from steadymail.api.deps import AppState
from steadymail.clock import Clock, SystemClock
from steadymail.config import Settings, load_settings
from steadymail.store.db import make_engine


def create_app(settings: Settings, engine: Engine, clock: Clock | None = None) -> FastAPI:
    app = FastAPI(title="steadymail", version=__version__)
    app.state.steadymail = AppState(
        settings, engine, clock or SystemClock(), settings.resolved_capture_db()
    )
    errors.install(app)
    app.include_router(rest.router)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok", "region": settings.region, "version": __version__}

    @app.get("/metrics")
    def metrics() -> PlainTextResponse:
        return PlainTextResponse(generate_latest().decode(), media_type=CONTENT_TYPE_LATEST)

    return app


def app_from_env() -> FastAPI:
    """uvicorn factory: `uvicorn --factory steadymail.api.app:app_from_env`."""
    settings = load_settings()
    return create_app(settings, make_engine(settings.resolved_database_url()))
