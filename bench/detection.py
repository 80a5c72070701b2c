"""Detection benchmark: how fast faults become alerts and sends resume, with default settings.

Runs one region (two supervised workers, the monitor) against Postfix's smtp-sink, with a
rate-limited send that lasts the whole run, and injects faults one at a time:
  sigkill   SIGKILL a worker (the supervisor restarts it)
  sigstop   SIGSTOP a worker past its lease, then SIGCONT
  alldown   SIGKILL every worker, restart them after a pause
  poison    a message that kills every worker that sends it
For each kind it prints the median and maximum seconds from injection to the first alert and to
resumed progress (the first lease reclaim or quarantine after it), then the number of alerts
raised during a fault-free stretch. One figure a line.

Usage: python bench/detection.py [--injections 20] [--quiet-minutes 10] [--kinds ...]
"""

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from steadymail.cli.supervisor import Child, Supervisor, exit_reporter, steadymail_argv
from steadymail.clock import SystemClock
from steadymail.config import Settings
from steadymail.services import campaigns, csv_import, templates, transactional
from steadymail.store import alerts, events
from steadymail.store.db import make_engine, migrate

CLOCK = SystemClock()
POISON = "poison@example.com"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait(cond: Callable[[], Any], timeout: float) -> Any:
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.05)
    raise TimeoutError("condition not met")


class Bench:
    def __init__(self, workdir: Path, smtp_port: int, rate: int) -> None:
        self.url = f"sqlite:///{workdir / 'region.db'}"
        migrate(self.url)
        self.engine = make_engine(self.url)
        self.settings = Settings(database_url=self.url, data_dir=workdir / "data")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("STEADYMAIL_")}
        self.env.update(
            {
                "STEADYMAIL_DATABASE_URL": self.url,
                "STEADYMAIL_DATA_DIR": str(workdir / "data"),
                "STEADYMAIL_CONFIG": str(workdir / "none.toml"),
                "STEADYMAIL_FAULT_CRASH_ON": POISON,
                "STEADYMAIL_RELAYS": json.dumps(
                    [{"host": "127.0.0.1", "port": smtp_port, "rate_per_second": rate}]
                ),
            }
        )
        log = open(workdir / "monitor.log", "wb")  # noqa: SIM115
        self.monitor = subprocess.Popen(
            [sys.executable, "-m", "steadymail", "monitor"],
            env={**self.env, "STEADYMAIL_SLOT": "monitor"},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.sup = Supervisor(
            [Child(f"worker-{i}", steadymail_argv("worker")) for i in (1, 2)],
            env=self.env,
            on_exit=exit_reporter(self.engine, "R1", CLOCK),
        )
        self.sup.start_all()
        self.paused = False
        self._stop = threading.Event()
        threading.Thread(target=self._tick, daemon=True).start()

    def _tick(self) -> None:
        while not self._stop.is_set():
            if not self.paused:
                self.sup.tick()
            time.sleep(0.1)

    def pid(self, name: str) -> int:
        proc = next(c for c in self.sup.children if c.name == name).proc
        assert proc is not None
        return proc.pid

    def start_send(self, n: int) -> None:
        rows = "email,name\n" + "".join(f"r{i}@example.com,R{i}\n" for i in range(n))
        csv_import.import_contacts(self.engine, CLOCK, rows.encode(), "bench")
        templates.create_template(self.engine, CLOCK, "b", "Hi {{ name }}", "", "Hello {{ name }}")
        sid = campaigns.create_campaign(
            self.engine, CLOCK, self.settings, name="b", list_name="bench", template="b"
        )
        campaigns.start(self.engine, CLOCK, self.settings, sid)

    def first_alert(self, after: float, names: set[str]) -> float | None:
        times = [
            a.started_at
            for a in alerts.listing(self.engine, limit=500)
            if a.name in names and a.started_at > after
        ]
        return min(times) if times else None

    def first_event(self, after: float, kinds: set[str]) -> float | None:
        times = [
            e.at for e in events.between(self.engine, after, time.time() + 1) if e.kind in kinds
        ]
        return min(times) if times else None

    def all_quiet(self) -> bool:
        return not [
            a
            for a in alerts.listing(self.engine, "firing")
            if a.name in {"service_restarted", "service_died", "no_live_worker"}
        ]

    def close(self) -> None:
        self._stop.set()
        self.sup.stop_all(grace=20)
        self.monitor.terminate()
        self.monitor.wait(30)


def inject(bench: Bench, kind: str) -> tuple[float, float]:
    wait(bench.all_quiet, 120)
    time.sleep(2)
    t = time.time()
    if kind == "sigkill":
        os.kill(bench.pid("worker-1"), signal.SIGKILL)
        names = {"service_restarted", "service_died"}
    elif kind == "sigstop":
        pid = bench.pid("worker-1")
        os.kill(pid, signal.SIGSTOP)
        names = {"service_died"}
    elif kind == "alldown":
        bench.paused = True
        for name in ("worker-1", "worker-2"):
            os.kill(bench.pid(name), signal.SIGKILL)
        names = {"no_live_worker"}
    else:
        transactional.enqueue(
            bench.engine, CLOCK, bench.settings, to=[POISON], subject="x", text="poison"
        )
        names = {"service_restarted", "service_died", "crash_loop"}
    alerted = wait(lambda: bench.first_alert(t, names), 120)
    if kind == "sigstop":
        time.sleep(max(0.0, t + bench.settings.lease_ttl + 3 - time.time()))
        os.kill(pid, signal.SIGCONT)
    if kind == "alldown":
        time.sleep(2)
        bench.paused = False
    marks = {"lease_reclaimed"} | ({"message_quarantined"} if kind == "poison" else set())
    resumed = wait(lambda: bench.first_event(t, marks), 180)
    return alerted - t, resumed - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--injections", type=int, default=20)
    ap.add_argument("--quiet-minutes", type=float, default=10)
    ap.add_argument("--kinds", default="sigkill,sigstop,alldown,poison")
    ap.add_argument("--rate", type=int, default=40)
    args = ap.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="steadymail-detect-"))
    port = free_port()
    sink = subprocess.Popen(["smtp-sink", "-u", "nobody", f"127.0.0.1:{port}", "256"])
    bench = Bench(workdir, port, args.rate)
    try:
        kinds = args.kinds.split(",")
        minutes = args.quiet_minutes + len(kinds) * args.injections * 1.5 + 5
        bench.start_send(int(args.rate * 60 * minutes))
        time.sleep(15)
        for kind in kinds:
            results = [inject(bench, kind) for _ in range(args.injections)]
            alert_s = [a for a, _ in results]
            resume_s = [r for _, r in results]
            print(f"{kind}_alert_median_s {statistics.median(alert_s):.2f}")
            print(f"{kind}_alert_max_s {max(alert_s):.2f}")
            print(f"{kind}_resumed_median_s {statistics.median(resume_s):.2f}")
            print(f"{kind}_resumed_max_s {max(resume_s):.2f}", flush=True)
        wait(bench.all_quiet, 180)
        time.sleep(30)
        start = time.time()
        time.sleep(args.quiet_minutes * 60)
        false = [a for a in alerts.listing(bench.engine, limit=1000) if a.started_at >= start]
        print(f"false_alerts_in_{args.quiet_minutes:g}_min {len(false)}")
    finally:
        bench.close()
        sink.terminate()


if __name__ == "__main__":
    main()
