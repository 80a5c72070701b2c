"""Test helpers: run a worker until a condition holds, wait on conditions with deadlines."""

import asyncio
import time
from collections.abc import Callable

from sqlalchemy import Engine

from steadymail.clock import SystemClock
from steadymail.config import RelaySettings, Settings
from steadymail.sending.transport import SmtpPool
from steadymail.sending.worker import Worker
from steadymail.services import campaigns, csv_import, templates
from steadymail.services.runtime import build_worker
from steadymail.store import sends

CLOCK = SystemClock()


def wait_for(cond: Callable[[], bool], timeout: float = 30.0, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


async def run_worker_until(worker: Worker, cond: Callable[[], bool], timeout: float = 30.0) -> None:
    task = asyncio.create_task(worker.run())
    deadline = time.monotonic() + timeout
    try:
        while not await asyncio.to_thread(cond):
            if task.done():
                task.result()
                raise AssertionError("worker exited early")
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met within {timeout}s")
            await asyncio.sleep(0.05)
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
        from_addr="News <news@example.com>",
    )
    campaigns.start(engine, CLOCK, settings, send_id)
    return send_id


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
        take=lambda relay, limit, window, n: n,
    )
