"""Watching with real processes: kills, a region without workers, a poison message, and
no false alarms; alerts reach a real webhook receiver."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from steadymail.cli.supervisor import Child, Supervisor, exit_reporter, steadymail_argv
from steadymail.clock import SystemClock
from steadymail.store import alerts, events, sends
from tests.conftest import Recorder
from tests.helpers import make_campaign, wait_until
from tests.integration.monitor.test_alerts import Receiver

pytestmark = pytest.mark.e2e

FAST = {
    "lease_ttl": 2.0,
    "monitor_interval": 0.3,
    "dead_after_beats": 3,
    "poll_interval": 0.1,
    "restart_resolve_after": 3.0,
    "stall_floor": 4.0,
    "worker_concurrency": 2,
    "inflight_window": 8,
    "batch_size": 50,
}


class Region:
    """Workers under the real supervisor plus a monitor process, on one database."""

    def __init__(self, db_url: str, smtp_port: int, tmp: Path, hook: str, **extra: Any) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("STEADYMAIL_")}
        settings = {**FAST, **extra}
        env.update({f"STEADYMAIL_{k.upper()}": str(v) for k, v in settings.items()})
        env.update(
            {
                "STEADYMAIL_DATABASE_URL": db_url,
                "STEADYMAIL_DATA_DIR": str(tmp / "data"),
                "STEADYMAIL_CONFIG": str(tmp / "none.toml"),
                "STEADYMAIL_RELAYS": json.dumps(
                    [{"host": "127.0.0.1", "port": smtp_port, **extra.pop("relay", {})}]
                ),
                "STEADYMAIL_NOTIFIERS": json.dumps(
                    [{"name": "hook", "kind": "webhook", "url": hook}]
                ),
            }
        )
        self.env = env
        self.logs = tmp
        self.supervisor: Supervisor | None = None
        self.spawned: list[subprocess.Popen[bytes]] = []
        self.monitor = self._spawn("monitor", "monitor")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _spawn(self, what: str, slot: str) -> subprocess.Popen[bytes]:
        log = open(self.logs / f"{slot}.{time.monotonic_ns()}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "steadymail", what],
            env={**self.env, "STEADYMAIL_SLOT": slot},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.spawned.append(proc)
        return proc

    def supervise(self, engine: Engine, workers: int) -> None:
        children = [Child(f"worker-{i + 1}", steadymail_argv("worker")) for i in range(workers)]
        self.supervisor = Supervisor(
            children, env=self.env, on_exit=exit_reporter(engine, SystemClock())
        )
        self.supervisor.start_all()

        def loop() -> None:
            while not self._stop.is_set():
                assert self.supervisor is not None
                self.supervisor.tick()
                time.sleep(0.1)

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()

    def worker_pid(self, name: str) -> int:
        assert self.supervisor is not None
        child = next(c for c in self.supervisor.children if c.name == name)
        assert child.proc is not None
        return child.proc.pid

    def close(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(5)
        if self.supervisor:
            self.supervisor.stop_all(grace=15)
        for proc in self.spawned:  # the monitor and any worker a test started by hand
            if proc.poll() is None:
                proc.terminate()
        for proc in self.spawned:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture
def region(tmp_path: Path, db_url: str, smtp_server: tuple[Recorder, int]) -> Iterator[Any]:
    made: list[Region] = []
    hook = Receiver()

    def make(**extra: Any) -> tuple[Region, Receiver]:
        r = Region(db_url, smtp_server[1], tmp_path, hook.url, **extra)
        made.append(r)
        return r, hook

    yield make
    for r in made:
        r.close()
    hook.close()


def firing(engine: Engine, name: str) -> list[dict[str, Any]]:
    return [a for a in alerts.listing(engine) if a["name"] == name]


def test_sigkill_raises_a_restart_alert_and_the_send_resumes(
    engine: Engine,
    db_url: str,
    smtp_server: tuple[Recorder, int],
    settings_for: Any,
    region: Any,
) -> None:
    recorder, port = smtp_server
    send_id = make_campaign(
        engine,
        settings_for(db_url, port, batch_size=50),
        3000,
        html="",
        text="Hello {{ first_name }}",
    )
    r, hook = region()
    r.supervise(engine, 2)
    wait_until(lambda: recorder.count() >= 300, timeout=60)
    killed_at = time.time()
    os.kill(r.worker_pid("worker-1"), signal.SIGKILL)
    wait_until(
        lambda: any(a["state"] == "firing" for a in firing(engine, "service_restarted")), timeout=30
    )
    alert = firing(engine, "service_restarted")[0]
    wait_until(
        lambda: any(
            e["kind"] == "lease_reclaimed" and e["at"] > killed_at for e in events.after(engine, 0)
        ),
        timeout=30,
    )
    resumed = min(
        e["at"]
        for e in events.after(engine, 0)
        if e["kind"] == "lease_reclaimed" and e["at"] > killed_at
    )
    wait_until(lambda: sends.get_send(engine, send_id)["state"] == "completed", timeout=120)
    wait_until(lambda: alerts.get(engine, alert["id"])["state"] == "resolved", timeout=30)
    print(
        f"SIGKILL: alert after {alert['started_at'] - killed_at:.2f}s, "
        f"resumed (batch reclaimed) after {resumed - killed_at:.2f}s"
    )
    assert alert["labels"]["slot"] == "worker-1"
    assert "SIGKILL" in alert["labels"]["reason"]
    assert alert["started_at"] > killed_at
    assert len({m.rcpt for m in recorder.messages}) == 3000
    wait_until(
        lambda: (
            [p["event"] for p in hook.posts if p["name"] == "service_restarted"]
            == ["firing", "resolved"]
        ),
        timeout=15,
    )
    timeline = [e["kind"] for e in alerts.get(engine, alert["id"])["timeline"]]
    assert (
        timeline[0] == "fired"
        and "mitigation" in timeline
        and timeline[-1] in ("resolved", "notified")
    )


def test_no_live_worker_then_one_starts(
    engine: Engine,
    db_url: str,
    smtp_server: tuple[Recorder, int],
    settings_for: Any,
    region: Any,
) -> None:
    recorder, port = smtp_server
    send_id = make_campaign(
        engine,
        settings_for(db_url, port, batch_size=50),
        1500,
        html="",
        text="Hello {{ first_name }}",
    )
    r, _ = region()
    worker = r._spawn("worker", "worker-1")
    wait_until(lambda: recorder.count() >= 200, timeout=60)
    worker.kill()
    worker.wait()
    killed_at = time.time()
    wait_until(lambda: len(firing(engine, "no_live_worker")) == 1, timeout=30)
    alert = firing(engine, "no_live_worker")[0]
    print(f"all workers down: alert after {alert['started_at'] - killed_at:.2f}s")
    r._spawn("worker", "worker-1")
    wait_until(lambda: sends.get_send(engine, send_id)["state"] == "completed", timeout=120)
    wait_until(lambda: alerts.get(engine, alert["id"])["state"] == "resolved", timeout=30)
    assert len({m.rcpt for m in recorder.messages}) == 1500


def test_poison_message_is_quarantined_and_the_rest_completes(
    engine: Engine,
    db_url: str,
    smtp_server: tuple[Recorder, int],
    settings_for: Any,
    region: Any,
) -> None:
    recorder, port = smtp_server
    send_id = make_campaign(
        engine,
        settings_for(db_url, port, batch_size=50),
        400,
        html="",
        text="Hello {{ first_name }}",
    )
    r, _ = region(fault_crash_on="user77@example.com", quarantine_after=3, crash_loop_restarts=3)
    r.supervise(engine, 2)
    wait_until(lambda: sends.get_send(engine, send_id)["state"] == "completed", timeout=180)
    rows = {m["email"]: m for m in sends.message_rows(engine, send_id, 1000)}
    assert rows["user77@example.com"]["state"] == "quarantined"
    others = {
        e: (m["state"], m["crashes"], m["last_error"])
        for e, m in rows.items()
        if m["state"] != "sent" and e != "user77@example.com"
    }
    assert others == {}
    assert "user77@example.com" not in {m.rcpt for m in recorder.messages}
    wait_until(lambda: len(firing(engine, "message_quarantined")) == 1, timeout=30)
    assert "user77@example.com" in firing(engine, "message_quarantined")[0]["summary"]
    # Three deaths, three restarts (the last after its backoff): a crash loop.
    wait_until(lambda: len(firing(engine, "crash_loop")) == 1, timeout=30)


def test_paused_and_rate_limited_sends_raise_no_stall(
    engine: Engine,
    db_url: str,
    smtp_server: tuple[Recorder, int],
    settings_for: Any,
    region: Any,
) -> None:
    recorder, port = smtp_server
    paused = make_campaign(engine, settings_for(db_url, port), 200, list_name="paused")
    sends.change_state(engine, paused, "pause", time.time())
    slow = make_campaign(engine, settings_for(db_url, port), 200, list_name="slow")
    r, _ = region(relay={"rate_per_second": 4}, stall_floor=4.0)
    r.supervise(engine, 1)
    time.sleep(12)  # three times the stall floor, for a send that moves 4 messages a second
    assert 20 < recorder.count() < 200  # the limit held and the send kept moving
    assert firing(engine, "send_stalled") == []
    assert firing(engine, "no_live_worker") == []
    assert sends.get_send(engine, slow)["state"] == "running"
