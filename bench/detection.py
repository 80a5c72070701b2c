"""Detection benchmark: how fast faults become alerts and sends resume, with default settings.

Runs one region (two supervised workers, the monitor) against Postfix's smtp-sink, with a
rate-limited send that lasts the whole run, and injects faults one at a time:
  sigkill   SIGKILL a worker (the supervisor restarts it)
  sigstop   SIGSTOP a worker past its lease, then SIGCONT
  alldown   SIGKILL every worker, restart them after a pause
  poison    a message that kills every worker that sends it
For each kind it prints the median and maximum seconds from injection to the first alert and to
resumed delivery: the first message delivered (`sent_at`), after the injection, of the work the
fault stopped:
  sigkill, sigstop  a message of a batch the faulted worker held when it was hit
  alldown           any message (nothing can be delivered until a worker is back)
  poison            any message after the poison message was quarantined (until then it kills
                    whichever worker picks it up)
An injection whose worker held no batch when hit is counted on a `_held_nothing` line, not timed.
Then the number of alerts raised during a fault-free stretch. One figure a line.

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

from sqlalchemy import and_, func, or_, select

from steadymail.cli.supervisor import Child, Supervisor, exit_reporter, steadymail_argv
from steadymail.clock import SystemClock
from steadymail.config import Settings
from steadymail.services import campaigns, csv_import, templates, transactional
from steadymail.store import alerts, instances
from steadymail.store.db import make_engine, migrate
from steadymail.store.schema import batches, messages

sys.path.insert(0, str(Path(__file__).parent))
from net import free_port, start_sink

CLOCK = SystemClock()
POISON = "poison@example.com"


def wait(cond: Callable[[], Any], timeout: float) -> Any:
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.05)
    raise TimeoutError("condition not met")


class Bench:
    def __init__(
        self, workdir: Path, smtp_port: int, rate: int, extra_env: dict[str, str] | None = None
    ) -> None:
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
                **(extra_env or {}),
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
            on_exit=exit_reporter(self.engine, CLOCK),
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

    def start_send(self, n: int, links: int = 0) -> None:
        """A campaign of n messages to a list of n contacts, started now: plain text, or HTML
        with `links` tracked links."""
        rows = "email,name\n" + "".join(f"r{i}@example.com,R{i}\n" for i in range(n))
        csv_import.import_contacts(self.engine, CLOCK, rows.encode(), "bench")
        html = "".join(
            f'<p><a href="https://example.com/item/{i}">Item {i}</a></p>' for i in range(links)
        )
        body = f"<html><body><p>Hello {{{{ name }}}}</p>{html}</body></html>" if links else ""
        templates.create_template(
            self.engine, CLOCK, "b", "Hi {{ name }}", body, "Hello {{ name }}"
        )
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

    def held_by(self, pid: int) -> list[tuple[int, int]]:
        """(send, seq) of the batches the worker running as `pid` holds now."""
        instance = instances.instance_of_pid(self.engine, pid, socket.gethostname())
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(batches.c.send_id, batches.c.seq).where(
                    batches.c.lease_owner == instance, batches.c.state == "leased"
                )
            )
            return [(int(r.send_id), int(r.seq)) for r in rows]

    def first_delivery(self, after: float, of: list[tuple[int, int]] | None = None) -> float | None:
        """When the first message (of the batches `of`, or any) was delivered after `after`."""
        query = select(func.min(messages.c.sent_at)).where(messages.c.sent_at > after)
        if of is not None:
            query = query.where(
                or_(
                    *(
                        and_(messages.c.send_id == send, messages.c.batch_seq == seq)
                        for send, seq in of
                    )
                )
            )
        with self.engine.connect() as conn:
            first = conn.execute(query).scalar()
        return float(first) if first is not None else None

    def quarantined(self, message_id: int) -> float | None:
        """Now, if the message is quarantined (from then on it kills no worker)."""
        with self.engine.connect() as conn:
            state = conn.execute(
                select(messages.c.state).where(messages.c.id == message_id)
            ).scalar()
        return time.time() if state == "quarantined" else None

    def all_quiet(self) -> bool:
        """Both workers running (a restart may still be backing off) and no alert open."""
        if not all(c.proc is not None and c.proc.poll() is None for c in self.sup.children):
            return False
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


def inject(bench: Bench, kind: str) -> tuple[float, float | None]:
    """Seconds from the injection to the first alert and to resumed delivery (None: the faulted
    worker held no batch, so no work of its had to resume)."""
    wait(bench.all_quiet, 120)
    time.sleep(2)  # the bench's pace between injections: a settled region, not a wait on it
    held: list[tuple[int, int]] | None = None
    t = time.time()
    if kind == "sigkill":
        pid = bench.pid("worker-1")
        held = bench.held_by(pid)
        os.kill(pid, signal.SIGKILL)
        names = {"service_restarted", "service_died"}
    elif kind == "sigstop":
        pid = bench.pid("worker-1")
        held = bench.held_by(pid)
        os.kill(pid, signal.SIGSTOP)
        names = {"service_died"}
    elif kind == "alldown":
        bench.paused = True
        for name in ("worker-1", "worker-2"):
            os.kill(bench.pid(name), signal.SIGKILL)
        names = {"no_live_worker"}
    else:
        poison = transactional.enqueue(
            bench.engine, CLOCK, bench.settings, to=[POISON], subject="x", text="poison"
        )["message_ids"][0]
        names = {"service_restarted", "service_died", "crash_loop"}
    alerted = wait(lambda: bench.first_alert(t, names), 120)
    if kind == "sigstop":
        time.sleep(max(0.0, t + bench.settings.lease_ttl + 3 - time.time()))
        os.kill(pid, signal.SIGCONT)
    if kind == "alldown":
        time.sleep(2)  # the outage lasts 2 s before the supervisor may restart them
        bench.paused = False
    if held == []:
        return alerted - t, None
    after = wait(lambda: bench.quarantined(poison), 180) if kind == "poison" else t
    resumed = wait(lambda: bench.first_delivery(after, held), 180)
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
    sink = start_sink(port, 256)
    bench = Bench(workdir, port, args.rate)
    try:
        kinds = args.kinds.split(",")
        minutes = args.quiet_minutes + len(kinds) * args.injections * 1.5 + 5
        bench.start_send(int(args.rate * 60 * minutes))
        time.sleep(15)
        for kind in kinds:
            results = [inject(bench, kind) for _ in range(args.injections)]
            alert_s = [a for a, _ in results]
            resume_s = [r for _, r in results if r is not None]
            print(f"{kind}_alert_median_s {statistics.median(alert_s):.2f}")
            print(f"{kind}_alert_max_s {max(alert_s):.2f}")
            if resume_s:
                print(f"{kind}_resumed_median_s {statistics.median(resume_s):.2f}")
                print(f"{kind}_resumed_max_s {max(resume_s):.2f}")
            print(f"{kind}_held_nothing {len(results) - len(resume_s)}", flush=True)
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
