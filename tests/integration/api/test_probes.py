"""Probes for orchestrators: the API's /healthz and /readyz, and the /livez and /readyz that
workers (and the monitor) serve on `health_port`, over real HTTP."""

import asyncio
import socket
import subprocess
import sys
from typing import Any

import httpx
from sqlalchemy import Engine

from steadymail.probes import serve_probes
from steadymail.services import exits
from steadymail.store import instances
from tests.conftest import CLOCK, LiveApi, Recorder
from tests.helpers import free_port, make_campaign, run_worker_until, worker_for


def test_the_api_is_ready_when_its_database_answers(live_api: LiveApi) -> None:
    assert httpx.get(live_api.url + "/healthz").status_code == 200
    r = httpx.get(live_api.url + "/readyz")
    assert r.status_code == 200 and r.json()["status"] == "ok"


def test_probe_answers_follow_their_checks() -> None:
    async def scenario() -> list[tuple[int, str]]:
        port = free_port()
        server = await serve_probes("127.0.0.1", port, lambda: False, lambda: True)
        out = []
        async with httpx.AsyncClient() as client:
            for path in ("/livez", "/readyz", "/nope"):
                r = await client.get(f"http://127.0.0.1:{port}{path}")
                out.append((r.status_code, r.json().get("status", r.json().get("error", ""))))
        server.close()
        return out

    assert asyncio.run(scenario()) == [
        (503, "failing"),
        (200, "ok"),
        (404, "no such probe; /livez or /readyz"),
    ]


def test_a_running_worker_is_live_and_ready_on_its_health_port(
    engine: Engine, db_url: str, smtp_server: tuple[Recorder, int], settings_for: Any
) -> None:
    recorder, port = smtp_server
    health = free_port()
    settings = settings_for(db_url, port, health_port=health, health_host="127.0.0.1")
    make_campaign(engine, settings, 50)
    seen: list[int] = []

    def probed() -> bool:
        try:
            r = httpx.get(f"http://127.0.0.1:{health}/livez", timeout=2)
            ready = httpx.get(f"http://127.0.0.1:{health}/readyz", timeout=2)
        except httpx.TransportError:
            return False
        seen.extend([r.status_code, ready.status_code])
        return recorder.count() >= 50

    asyncio.run(run_worker_until(worker_for(settings, engine), probed))
    assert seen[-2:] == [200, 200]


def test_report_exit_records_what_systemd_saw(engine: Engine, db_url: str) -> None:
    instances.register(
        engine,
        instance_id="w2",
        service="worker",
        region="R1",
        host=socket.gethostname(),
        pid=4242,
        version="t",
        now=CLOCK.now(),
        slot="steadymail-worker@2",
    )
    env = {"SERVICE_RESULT": "oom-kill", "EXIT_CODE": "killed", "EXIT_STATUS": "KILL"}
    out = exits.report_exit(engine, CLOCK, env, slot="steadymail-worker@2")
    assert out["recorded"] and out["instance"] == "w2"
    [row] = instances.by_ids(engine, ["w2"])
    assert row.exit_reason == "signal SIGKILL (systemd: oom-kill)"
    # Told once: a second report (or one after last words) does not repeat it.
    assert not exits.report_exit(engine, CLOCK, env, slot="steadymail-worker@2")["recorded"]
    # A clean stop records nothing.
    clean = {"SERVICE_RESULT": "success", "EXIT_CODE": "exited", "EXIT_STATUS": "0"}
    assert not exits.report_exit(engine, CLOCK, clean, slot="steadymail-worker@2")["recorded"]


def test_report_exit_outside_systemd_says_what_it_needs(tmp_path: Any) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "steadymail", "report-exit"],
        capture_output=True,
        text=True,
        env={"STEADYMAIL_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    assert out.returncode == 2 and "ExecStopPost" in out.stderr, out.stderr
