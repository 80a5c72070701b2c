"""The region's console: served by the region's admin API process under /ui."""

from fastapi import FastAPI

from steadymail.clock import Clock
from steadymail.config import Settings
from steadymail.services import apikeys
from steadymail.services.database import Engine
from steadymail.tracking.keys import load_tracking_secrets
from steadymail.web import (
    alert_pages,
    captured_pages,
    console,
    list_pages,
    metric_pages,
    overview_pages,
    send_pages,
    template_pages,
)
from steadymail.web.session import SessionSigner
from steadymail.web.site import Site

NAV = [
    ("/", "Overview"),
    ("/sends", "Sends"),
    ("/lists", "Lists"),
    ("/suppressions", "Suppressions"),
    ("/templates", "Templates"),
    ("/captured", "Captured mail"),
    ("/alerts", "Alerts"),
    ("/metrics", "Metrics"),
]


def region_site(settings: Settings, engine: Engine, clock: Clock) -> Site:
    """Sessions signed with a key derived from the region's tracking keys (every API process
    of the region shares them); a session lasts while its API key is unrevoked."""

    def check_key(key: str) -> str:
        apikeys.authenticate(engine, key)
        return apikeys.prefix_of(key)

    return Site(
        title=f"region {settings.region}",
        signer=SessionSigner(load_tracking_secrets(settings).console_key),
        scopes_of=lambda prefix: apikeys.scopes_of(engine, prefix),
        check_key=check_key,
        nav=NAV,
        clock=clock.now,
    )


def install(app: FastAPI, settings: Settings, engine: Engine, clock: Clock) -> None:
    """Serve the region's console on its admin app."""
    console.install(
        app,
        region_site(settings, engine, clock),
        [
            overview_pages.router,
            send_pages.router,
            list_pages.router,
            template_pages.router,
            captured_pages.router,
            alert_pages.router,
            metric_pages.router,
        ],
    )
