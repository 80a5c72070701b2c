"""Every route of every app declares what it returns: a response model (so /docs documents the
JSON), or a response class that is not JSON (a redirect, a page, a pixel, a raw message)."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.datastructures import DefaultPlaceholder
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from steadymail.api.app import create_app, create_public_app
from steadymail.config import Settings
from steadymail.control.app import create_control_app
from steadymail.services import database


def _api_routes(routes: list[BaseRoute]) -> Iterator[APIRoute]:
    """The app's API routes, those of included routers too (newer FastAPI keeps an included
    router as one entry that holds the router); the console's pages (HTML, out of the schema)
    are not API routes."""
    for route in routes:
        if isinstance(route, APIRoute):
            if not route.path.startswith("/ui"):
                yield route
        elif (router := getattr(route, "original_router", None)) is not None:
            yield from _api_routes(router.routes)


@pytest.fixture
def apps(tmp_path: Path) -> Iterator[dict[str, FastAPI]]:
    settings = Settings(
        data_dir=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'steadymail.db'}",
        control_api_key="k" * 32,
    )
    engine = database.open_region(settings)
    yield {
        "admin": create_app(settings, engine),
        "public": create_public_app(settings, engine),
        "control": create_control_app(settings),
    }
    engine.dispose()


def test_every_route_declares_what_it_returns(apps: dict[str, FastAPI]) -> None:
    undeclared = []
    counted = {}
    for name, app in apps.items():
        routes = list(_api_routes(app.routes))
        counted[name] = len(routes)
        for route in routes:
            json_default = isinstance(route.response_class, DefaultPlaceholder) or issubclass(
                route.response_class, JSONResponse
            )
            if route.response_model is None and json_default:
                undeclared.append(f"{name}: {sorted(route.methods)} {route.path}")
    assert undeclared == []
    # The walk saw the routers' routes, not just the app's own few (the public app: /healthz and
    # the unsubscribe router's two; clicks and opens are its ASGI hot path, not routes).
    assert counted["admin"] > 30 and counted["public"] >= 3 and counted["control"] >= 9


def _success_without_schema(schema: dict[str, Any]) -> list[str]:
    missing = []
    for path, operations in schema["paths"].items():
        for method, op in operations.items():
            for status, response in op["responses"].items():
                if not status.startswith("2"):
                    continue
                content = response.get("content", {})
                documented = content.get("application/json", {}).get("schema") or any(
                    media != "application/json" for media in content
                )
                if not documented:
                    missing.append(f"{method.upper()} {path} {status}")
    return missing


@pytest.mark.parametrize("name", ["admin", "control"])
def test_docs_show_what_every_success_returns(apps: dict[str, FastAPI], name: str) -> None:
    """In /openapi.json every 2xx answer has a schema, or names a media type other than JSON."""
    schema = apps[name].openapi()
    assert _success_without_schema(schema) == []
    # Not an empty object: the models' fields are there.
    if name == "control":
        rollout = schema["components"]["schemas"]["Rollout"]
        assert {"id", "flag", "state", "waves", "decision"} <= set(rollout["properties"])
    else:
        stats = schema["components"]["schemas"]["StatsOut"]
        assert {"send_id", "delivered", "links"} <= set(stats["properties"])
