"""Test helpers: wait on conditions with deadlines, run a worker until a condition holds, say
what a run needs, free ports, campaigns."""

import asyncio
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest
from sqlalchemy import Engine

from steadymail.clock import SystemClock
from steadymail.config import RelaySettings, Settings
from steadymail.sending.transport import SmtpPool
from steadymail.sending.worker import Worker
from steadymail.services import campaigns, csv_import, templates
from steadymail.services.runtime import build_worker
from steadymail.store import sends

CLOCK = SystemClock()
T = TypeVar("T")

# The start of every skip reason `need` gives: the summary counts these skips apart.
MISSING = "missing requirement"


def need(name: str, present: bool, missing: str) -> None:
    """Go on only if a requirement of the test is present. Missing: the test fails when
    STEADYMAIL_REQUIRE_<NAME>=1 (`make test` and CI set PG, PROMTOOL, SYSTEMD and NAB), and is
    skipped otherwise."""
    if present:
        return
    if os.environ.get(f"STEADYMAIL_REQUIRE_{name}") == "1":
        pytest.fail(f"{missing}; STEADYMAIL_REQUIRE_{name}=1 requires it (make test sets it)")
    pytest.skip(f"{MISSING}: {missing} (STEADYMAIL_REQUIRE_{name}=1 would fail instead)")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listened on a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _what(predicate: Callable[..., object], what: str) -> str:
    if what:
        return what
    code = getattr(predicate, "__code__", None)
    if code is None:
        return repr(predicate)
    return f"{predicate.__name__} ({os.path.basename(code.co_filename)}:{code.co_firstlineno})"


def wait_until(
    predicate: Callable[[], T], timeout: float = 30.0, what: str = "", interval: float = 0.05
) -> T:
    """Poll `predicate` until it returns something truthy, and return that; past `timeout`
    seconds, fail, naming what was awaited (`what`; by default the predicate and its place)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {_what(predicate, what)}")
        time.sleep(interval)


async def wait_until_async(
    predicate: Callable[[], T],
    timeout: float = 30.0,
    what: str = "",
    interval: float = 0.05,
    alive: Callable[[], None] | None = None,
) -> T:
    """`wait_until` inside an event loop: the predicate runs in a thread (it may query the
    database), the loop keeps running. `alive`, called each round, may raise to end the wait
    early (a worker task that exited)."""
    deadline = time.monotonic() + timeout
    while True:
        value = await asyncio.to_thread(predicate)
        if value:
            return value
        if alive is not None:
            alive()
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {_what(predicate, what)}")
        await asyncio.sleep(interval)


def running(task: "asyncio.Task[None]", what: str = "worker") -> Callable[[], None]:
    """An `alive` check for wait_until_async: raises the task's error, or that it ended."""

    def check() -> None:
        if task.done():
            task.result()
            raise AssertionError(f"{what} exited early")

    return check


async def run_worker_until(worker: Worker, cond: Callable[[], bool], timeout: float = 30.0) -> None:
    """Run `worker` in this loop until `cond` holds, then stop it and wait for it to end."""
    task = asyncio.create_task(worker.run())
    try:
        await wait_until_async(cond, timeout, alive=running(task))
    finally:
        worker.stop()
        await asyncio.wait_for(task, 30)


def make_campaign(
    engine: Engine,
    settings: Settings,
    n: int,
    *,
    list_name: str = "news",
    html: str = "<p>Hello {{ first_name }}</p>",
    text: str = "Hello {{ first_name }}",
    subject: str = "Hi {{ first_name }}",
    extra_rows: str = "",
    from_addr: str = "News <news@example.com>",
) -> int:
    rows = "email,first_name\n" + "".join(f"user{i}@example.com,User{i}\n" for i in range(n))
    csv_import.import_contacts(engine, CLOCK, (rows + extra_rows).encode(), list_name)
    tname = f"t-{list_name}"
    templates.create_template(engine, CLOCK, tname, subject, html, text)
    send_id = campaigns.create_campaign(
        engine,
        CLOCK,
        settings,
        name=f"c-{list_name}",
        list_name=list_name,
        template=tname,
        from_addr=from_addr,
    )
    campaigns.start(engine, CLOCK, settings, send_id)
    return send_id


def text_campaign(engine: Engine, settings: Settings, n: int, list_name: str = "news") -> int:
    """A started campaign of `n` plain-text messages (no HTML part, so no link rewriting): the
    cheapest message, for tests about delivery rather than content."""
    return make_campaign(
        engine, settings, n, list_name=list_name, html="", text="Hello {{ first_name }}"
    )


def send_state(engine: Engine, send_id: int) -> str:
    return str(sends.get_send(engine, send_id).state)


def worker_for(settings: Settings, engine: Engine) -> Worker:
    return build_worker(settings, engine, CLOCK, seed=1)


def lone_pool(relay: RelaySettings) -> SmtpPool:
    """An SMTP pool of one connection to one relay: no retries, no cooldown, no rate limit."""
    return SmtpPool(
        [relay],
        size=1,
        timeout=5.0,
        retries=0,
        cooldown=0.0,
        clock=SystemClock(),
        take=lambda _key, _limit, want, _now, _period: want,
    )


def cli_against(
    monkeypatch: pytest.MonkeyPatch, db_url: str, data_dir: Path, tmp_path: Path
) -> None:
    """Point `steadymail` commands run in this test at its region: its database and data
    directory, and no configuration file."""
    monkeypatch.setenv("STEADYMAIL_DATABASE_URL", db_url)
    monkeypatch.setenv("STEADYMAIL_DATA_DIR", str(data_dir))
    monkeypatch.setenv("STEADYMAIL_CONFIG", str(tmp_path / "none.toml"))
