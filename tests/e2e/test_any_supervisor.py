"""Workers run the way systemd `Restart=always`, a container restart policy or Kubernetes run
them — here a plain `while true; do steadymail worker; done` per worker, no STEADYMAIL_SLOT,
no steadymail supervisor — and a monitor process. A SIGKILLed worker is a restart of its own
slot, alerted within seconds; repeated kills are a crash loop; a worker that dies of an
exception leaves last words that the restart alert shows."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from steadymail.services import flag_admin, quarantine
from steadymail.store import alerts, instances, sends
from tests.conftest import CLOCK, Recorder
from tests.e2e.conftest import region_env
from tests.helpers import make_campaign, text_campaign, wait_until

pytestmark = pytest.mark.e2e

SETTINGS = {
    "lease_ttl": 4.0,
    "monitor_interval": 0.3,
    "poll_interval": 0.1,
    "restart_resolve_after": 3.0,
    "worker_concurrency": 2,
    "inflight_window": 8,
    "batch_size": 50,
    "crash_loop_restarts": 3,
    # Above 10 x the sends' own gaps between progress here (~0.5-0.9 s on this machine), so the
    # floor is what decides: the alert must come within it.
    "stall_floor": 10.0,
}


class PlainLoops:
    """Each worker in its own shell restart loop, as an orchestrator that knows nothing of
    steadymail would run it; plus one monitor process."""

    def __init__(self, db_url: str, smtp_port: int, tmp: Path) -> None:
        self.env, self.tmp = region_env(db_url, smtp_port, tmp, **SETTINGS), tmp
        self.groups: list[subprocess.Popen[bytes]] = []

    def _start(self, command: str, name: str) -> None:
        log = open(self.tmp / f"{name}.log", "ab")  # noqa: SIM115
        self.groups.append(
            subprocess.Popen(
                ["bash", "-c", command],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: the loop and its worker
            )
        )

    def worker_loop(self, name: str) -> None:
        self._start(f'while true; do "{sys.executable}" -m steadymail worker; done', name)

    def monitor(self) -> None:
        self._start(f'exec "{sys.executable}" -m steadymail monitor', "monitor")

    def start(self, workers: int) -> None:
        """The monitor and ``workers`` restart loops."""
        self.monitor()
        for i in range(workers):
            self.worker_loop(f"loop-{i + 1}")

    def close(self) -> None:
        for p in self.groups:
            # SIGTERM to the whole group: the worker stops gracefully, the loop ends with it.
            os.killpg(p.pid, signal.SIGTERM)
        for p in self.groups:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


@pytest.fixture
def loops(tmp_path: Path, db_url: str, smtp_server: tuple[Recorder, int]) -> Iterator[PlainLoops]:
    made = PlainLoops(db_url, smtp_server[1], tmp_path)
    yield made
    made.close()


def live_workers(engine: Engine) -> dict[str, instances.Instance]:
    rows = instances.all_live(engine, CLOCK.now(), 5.0)
    return {r.slot: r for r in rows if r.service == "worker"}


def restart_alerts(engine: Engine, slot: str) -> list[alerts.Alert]:
    return [
        a
        for a in alerts.listing(engine, limit=500)
        if a.name == "service_restarted" and a.labels.get("slot") == slot
    ]


def test_a_killed_worker_under_a_plain_loop_is_a_restart_of_its_slot(
    engine: Engine,
    db_url: str,
    smtp_server: tuple[Recorder, int],
    settings_for: Any,
    loops: PlainLoops,
) -> None:
    recorder, port = smtp_server
    send_id = text_campaign(engine, settings_for(db_url, port, batch_size=50), 3000)
    loops.start(2)
    wait_until(lambda: len(live_workers(engine)) == 2, timeout=60)
    slots = set(live_workers(engine))
    # Both resolved from the host: one `worker@<host>`, the other `worker@<host>#2`.
    assert all(s.startswith("worker@") for s in slots), slots
    # (This machine may itself be a container: then the name is the container's hostname.)
    assert {r.identity for r in live_workers(engine).values()} <= {"host", "container"}
    wait_until(lambda: recorder.count() >= 300, timeout=60)

    delays = []
    victim = sorted(slots)[0]
    for n in range(3):
        old = live_workers(engine)[victim]
        killed_at = time.time()
        os.kill(int(old.pid), signal.SIGKILL)
        wait_until(lambda n=n: len(restart_alerts(engine, victim)) == n + 1, timeout=20)
        alert = restart_alerts(engine, victim)[0]
        delays.append(alert.started_at - killed_at)
        assert alert.labels["previous_instance"] == old.instance_id
        assert "without last words" in alert.labels["reason"], alert.labels["reason"]
        assert alert.labels["planned"] is False
        # The new process fills the same slot: no other slot appeared.
        wait_until(lambda: set(live_workers(engine)) == slots, timeout=20)
        # A restart alert resolves once the new instance was healthy a while; wait for that
        # before the next kill, so each kill opens an alert of its own.
        wait_until(lambda: all(a.state == "resolved" for a in restart_alerts(engine, victim)), 30)
    print(f"\nplain loop, SIGKILL -> restart alert: {', '.join(f'{d:.2f}s' for d in delays)}")
    assert max(delays) <= 5.0, delays
    # Three restarts of the service in the window: a crash loop.
    wait_until(lambda: any(a.name == "crash_loop" for a in alerts.listing(engine, limit=500)), 10)
    # The killed worker's batches resumed at once (its PID was seen gone), and nothing is lost.
    wait_until(lambda: sends.get_send(engine, send_id).state == "completed", timeout=120)
    assert len({m.rcpt for m in recorder.messages}) == 3000
    # No `service_died` for an old instance was left firing after its slot was taken over.
    firing = [a for a in alerts.listing(engine, "firing") if a.name == "service_died"]
    assert firing == [], firing


def test_a_worker_that_dies_of_an_exception_leaves_last_words_on_the_restart_alert(
    engine: Engine,
    db_url: str,
    smtp_server: tuple[Recorder, int],
    settings_for: Any,
    loops: PlainLoops,
) -> None:
    recorder, port = smtp_server
    send_id = make_campaign(
        engine,
        settings_for(db_url, port, batch_size=50),
        600,
        html='<p>Hi {{ first_name }} <a href="https://example.com/x">x</a></p>',
        text="Hi {{ first_name }}",
    )
    # The rewriter crashes on one message in 250 (ids 250, 500): the worker dies of it.
    flag_admin.set_flag(
        engine, CLOCK, "fault.tracking_crash", {"one_in": 250}, "test", "drill", "R1"
    )
    loops.start(1)
    wait_until(
        lambda: any(a.name == "service_restarted" for a in alerts.listing(engine, limit=500)),
        timeout=60,
    )
    alert = next(a for a in alerts.listing(engine, limit=500) if a.name == "service_restarted")
    print(f"\nrestart alert: {alert.summary}")
    assert "tracking/rewrite.py" in alert.summary and "raised RewriterCrash" in alert.summary
    # The change that preceded it is named on it.
    assert "fault.tracking_crash" in alert.summary, alert.summary
    assert alert.labels["suspects"][0]["subject"] == "fault.tracking_crash"
    timeline = alerts.get(engine, alert.id).timeline
    assert any("tracking/rewrite.py" in e.detail for e in timeline)
    # Take the fault away. A message that crashed three workers meanwhile was quarantined:
    # the person on call releases it, and the send completes with everything delivered.
    flag_admin.set_flag(engine, CLOCK, "fault.tracking_crash", None, "test", "over", "R1")
    wait_until(lambda: sends.get_send(engine, send_id).state == "completed", timeout=120)
    quarantine.release(engine, CLOCK, send_id=send_id)
    wait_until(lambda: sends.get_send(engine, send_id).state == "completed", timeout=120)
    rows = sends.message_rows(engine, send_id, 1000)
    assert {m.state for m in rows} == {"sent"}, {m.state for m in rows}
    assert len({m.rcpt for m in recorder.messages}) == 600


def _stall_after(engine: Engine, send_id: int) -> tuple[alerts.Alert, float]:
    """The send_stalled alert, and how long after the send's last progress it fired."""
    wait_until(
        lambda: any(a.name == "send_stalled" for a in alerts.listing(engine, "firing")),
        timeout=40,
    )
    stall = next(a for a in alerts.listing(engine, "firing") if a.name == "send_stalled")
    row = sends.get_send(engine, send_id)
    last = float(row.last_progress_at or row.started_at)
    assert f"send {send_id}" in stall.summary
    return stall, stall.started_at - last


def test_when_every_worker_crash_loops_the_send_stalled_alert_fires_within_the_floor(
    engine: Engine,
    db_url: str,
    smtp_server: tuple[Recorder, int],
    settings_for: Any,
    loops: PlainLoops,
) -> None:
    recorder, port = smtp_server
    send_id = text_campaign(engine, settings_for(db_url, port, batch_size=50), 500)
    # Every message crashes the rewriter, and nothing is set aside: every worker crash-loops.
    flag_admin.set_flag(engine, CLOCK, "fault.tracking_crash", {"one_in": 1}, "t", "", "R1")
    loops.env["STEADYMAIL_QUARANTINE_AFTER"] = "1000000"
    loops.start(2)
    stall, waited = _stall_after(engine, send_id)
    print(f"\nevery worker crash-looping: send_stalled {waited:.1f}s after the last progress")
    assert waited <= SETTINGS["stall_floor"] + 2.0, waited
    assert any(a.name == "crash_loop" for a in alerts.listing(engine, limit=500))
    # The fault taken away, the same workers finish the send and the stall resolves.
    flag_admin.set_flag(engine, CLOCK, "fault.tracking_crash", None, "t", "", "R1")
    wait_until(lambda: sends.get_send(engine, send_id).state == "completed", timeout=120)
    wait_until(lambda: alerts.get(engine, stall.id).state == "resolved", timeout=30)
    assert len({m.rcpt for m in recorder.messages}) == 500


def test_when_every_worker_is_frozen_the_send_stalled_alert_fires_within_the_floor(
    engine: Engine,
    db_url: str,
    smtp_server: tuple[Recorder, int],
    settings_for: Any,
    loops: PlainLoops,
) -> None:
    if db_url.startswith("sqlite"):
        # SQLite has one writer: a process frozen inside its write transaction holds every
        # other process of the region, the monitor included, until it thaws (README, "SQLite").
        pytest.skip("a frozen writer holds a SQLite region; PostgreSQL is the multi-process store")
    recorder, port = smtp_server
    send_id = text_campaign(engine, settings_for(db_url, port, batch_size=50), 3000)
    loops.start(2)
    wait_until(lambda: len(live_workers(engine)) == 2, timeout=60)
    wait_until(lambda: recorder.count() >= 300, timeout=60)
    frozen = [int(w.pid) for w in live_workers(engine).values()]
    for pid in frozen:  # a paused VM, a long GC: alive, holding its leases, doing nothing
        os.kill(pid, signal.SIGSTOP)
    try:
        stall, waited = _stall_after(engine, send_id)
        print(f"\nevery worker frozen: send_stalled {waited:.1f}s after the last progress")
        print(stall.summary)
        assert waited <= SETTINGS["stall_floor"] + 2.0, waited
    finally:
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)
    # Thawed: the send completes and the stall resolves.
    wait_until(lambda: sends.get_send(engine, send_id).state == "completed", timeout=120)
    wait_until(lambda: alerts.get(engine, stall.id).state == "resolved", timeout=30)
    assert len({m.rcpt for m in recorder.messages}) == 3000
