"""Presence under any supervisor, against real databases and real processes: a successor takes
its dead predecessor's slot, records its end and frees its leases; host peers notice a killed
process within a check; deploys and flag changes are recorded and named on alerts."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from steadymail.alerts.manager import AlertManager
from steadymail.config import Settings
from steadymail.presence import PeerWatch, register_self_sync
from steadymail.services import flag_admin
from steadymail.store import alerts, changes, events, instances, queue
from tests.conftest import CLOCK
from tests.helpers import make_campaign

# The child lives until the test kills it (or closes its stdin): it waits on stdin, not a clock.
_REGISTER = """
import sys
from steadymail.config import Settings
from steadymail.clock import SystemClock
from steadymail.store.db import make_engine
from steadymail.store import queue
from steadymail.presence import register_self_sync
s = Settings(database_url=sys.argv[1], data_dir=sys.argv[2], region="R1")
engine = make_engine(sys.argv[1])
now = SystemClock().now()
ident = register_self_sync(engine, s, "worker", sys.argv[3], now)
claim = queue.claim_batch(engine, sys.argv[3], 600.0, now)
print(ident.slot, claim.batch_id if claim else 0, flush=True)
sys.stdin.read()
"""


def _spawn(db_url: str, data_dir: Path, instance_id: str) -> tuple[subprocess.Popen[str], str, int]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEADYMAIL_")}
    p = subprocess.Popen(
        [sys.executable, "-c", _REGISTER, db_url, str(data_dir), instance_id],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert p.stdout is not None
    slot, batch = p.stdout.readline().split()
    return p, slot, int(batch)


def _settings(db_url: str, tmp_path: Path, **kw: Any) -> Settings:
    return Settings(database_url=db_url, data_dir=tmp_path / "data", region="R1", **kw)


def test_a_successor_takes_the_slot_of_a_killed_process_and_frees_its_leases(
    engine: Engine, db_url: str, tmp_path: Path, settings_for: Any
) -> None:
    make_campaign(engine, settings_for(db_url, 25), 30)
    proc, slot, batch = _spawn(db_url, tmp_path / "data", "old-worker")
    assert batch > 0
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    now = CLOCK.now()
    ident = register_self_sync(
        engine, _settings(db_url, tmp_path, lease_ttl=7.0), "worker", "new", now
    )
    assert ident.slot == slot and ident.certain_successor
    [old] = instances.by_ids(engine, ["old-worker"])
    assert "ended without last words" in old.exit_reason
    [ended] = [e for e in events.after(engine, 0) if e.kind == "process_exited"]
    assert ended.detail["instance"] == "old-worker" and ended.detail["seen_by"] == "new"
    # Its 600 s lease was lapsed at once: any worker reclaims the batch now.
    claim = queue.claim_batch(engine, "rescuer", 10.0, CLOCK.now(), expired_only=True)
    assert claim is not None and claim.batch_id == batch and claim.reclaimed
    # The successor runs another configuration: a deploy, recorded once, naming what changed.
    [deploy] = changes.listing(engine)
    assert deploy.kind == "deploy" and deploy.subject == "worker"
    assert "lease_ttl" in deploy.detail, deploy


def test_a_host_peer_notices_a_killed_process_at_its_next_check(
    engine: Engine, db_url: str, tmp_path: Path
) -> None:
    proc, _slot, _ = _spawn(db_url, tmp_path / "data", "victim")
    watch = PeerWatch(engine, CLOCK, "watcher")
    assert watch.check() == []
    proc.kill()
    proc.wait()
    assert watch.check() == ["victim"]
    assert watch.check() == []  # once
    [row] = instances.by_ids(engine, ["victim"])
    assert row.exit_reason and "pid" in row.exit_reason


def test_alerts_name_the_changes_made_before_them(engine: Engine, db_url: str) -> None:
    flag_admin.set_flag(engine, CLOCK, "tracking.version", "v2", "alice", "faster", "R1")
    manager = AlertManager(engine, CLOCK, [], suspect_window=600)
    alert_id, opened = manager.fire("f", "service_restarted", "critical", "w restarted", {})
    assert opened
    a = alerts.get(engine, alert_id)
    assert "suspect: tracking.version unset→v2" in a.summary
    [s] = a.labels["suspects"]
    assert (s["kind"], s["subject"], s["after"]) == ("flag", "tracking.version", "v2")
    assert 0 <= json.loads(json.dumps(s))["age_s"] < 60  # made just now, and JSON as stored
    # Outside the window, nothing is named.
    quiet = AlertManager(engine, CLOCK, [], suspect_window=0)
    other, _ = quiet.fire("g", "service_restarted", "critical", "x restarted", {})
    assert "suspects" not in alerts.get(engine, other).labels


def test_a_process_of_another_host_in_the_same_slot_is_never_ended_from_here(
    engine: Engine, db_url: str, tmp_path: Path
) -> None:
    now = CLOCK.now()
    # Another host that happens to share the slot's name (a cloned VM, pods on one node's
    # network): alive as far as anyone here can tell.
    instances.register(
        engine,
        instance_id="elsewhere",
        service="worker",
        region="R1",
        host="other-host",
        pid=os.getpid(),
        version="t",
        now=now - 5,
        slot="worker@shared",
        proc="other-boot:1:1",
        lock="other-boot:1:1",
    )
    s = _settings(db_url, tmp_path, slot="worker@shared")
    register_self_sync(engine, s, "worker", "here", now)
    [row] = instances.by_ids(engine, ["elsewhere"])
    assert row.exit_reason is None
    assert [e for e in events.after(engine, 0) if e.kind == "process_exited"] == []
