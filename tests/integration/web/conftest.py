"""A region's console served by real uvicorn listeners, as `steadymail api` serves it."""

import asyncio
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import Engine

from steadymail.api.serve import Listeners
from steadymail.clock import SystemClock
from steadymail.config import Settings
from steadymail.store import apikeys
from steadymail.web import region
from tests.conftest import Recorder
from tests.helpers import free_port, wait_until

CSRF = re.compile(r'name="csrf" value="([0-9a-f]+)"')


@dataclass
class Console:
    url: str
    settings: Settings
    engine: Engine
    keys: dict[str, str]  # "all" (every scope), "read"

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10, follow_redirects=False)

    def signed_in(self, key: str = "all") -> tuple[httpx.Client, str]:
        """A client with a session of the key, and the CSRF token its forms carry."""
        c = self.client()
        r = c.post("/ui/login", data={"api_key": self.keys[key]}, headers=self.origin)
        assert r.status_code == 303, r.text
        page = c.get("/ui/")
        assert page.status_code == 200, page.text
        return c, csrf_of(page.text)

    @property
    def origin(self) -> dict[str, str]:
        return {"Origin": self.url}


def csrf_of(html: str) -> str:
    m = CSRF.search(html)
    assert m, "the page carries a CSRF token"
    return m.group(1)


@pytest.fixture
def console(
    db_url: str,
    engine: Engine,
    smtp_server: tuple[Recorder, int],
    settings_for: Callable[..., Settings],
) -> Iterator[Console]:
    port = free_port()
    settings: Settings = settings_for(
        db_url, smtp_server[1], api_port=port, public_port=free_port()
    )
    clock = SystemClock()
    listeners = Listeners(
        settings,
        engine,
        clock,
        which="admin",
        extend=lambda app: region.install(app, settings, engine, clock),
    )
    thread = threading.Thread(target=lambda: asyncio.run(listeners.serve()), daemon=True)
    thread.start()
    wait_until(lambda: listeners.started or not thread.is_alive(), 10, "the console starting")
    keys = {
        "all": apikeys.create_key(engine, "all", set(apikeys.SCOPES), clock.now()),
        "read": apikeys.create_key(engine, "reader", {"read"}, clock.now()),
    }
    yield Console(f"http://127.0.0.1:{port}", settings, engine, keys)
    listeners.stop()
    thread.join(10)
