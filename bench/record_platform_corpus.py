"""Records the platform's own incidents as a labelled corpus in NAB's layout (not a benchmark).

Each scenario is a real region (two supervised workers and the monitor, SQLite) sending a
rate-limited campaign through an SMTP relay this script controls (aiosmtpd: a per-message
delay, a fraction of 451 deferrals), with one fault injected at known times:

  restarts        a worker SIGKILLed every `--restart-every` seconds (the outage's sawtooth)
  tracking_crash  the replay's fault (`steadymail replay`, the outage's cause): the flag
                  fault.tracking_crash set in the region, so one message in 40 crashes the
                  link rewriter and its worker, until the flag is unset (or the poison
                  messages are quarantined)
  stall           every worker SIGSTOPped, then resumed (a stalled send's flat line)
  deferrals       the relay defers half the messages (a deferral surge)
  slow_relay      the relay answers slowly enough to halve the throughput
  latency         the relay takes 0.1 s over each message, several times its usual answer,
                  the throughput kept (more connections busy at once)
  quiet           no fault (long stretches without one)

Each fault starts at every fraction of the run in `--onsets` and lasts `--fault-seconds`.

The region's metric series (the monitor's folded intervals, `--interval` seconds each) are
written as `<out>/data/platform_<scenario>/<series>_run<id>.csv` (the run id names one region's
run, so that `nab cv` keeps a run's series in one fold); each fault's onset is labelled in
`<out>/labels/combined_windows.json` on the series it shows in, with a window of NAB's size
(a tenth of the file over its anomalies) centred on the onset, as NAB labels; NAB's three
profiles go to `<out>/config/profiles.json`. Scenarios run side by side (each is light).

Usage: python bench/record_platform_corpus.py --out data/platform-corpus [--minutes 12]
       [--interval 1] [--onsets 0.6] [--scenarios restarts,stall,deferrals,slow_relay,quiet]
Then:  steadymail nab cv --corpus data/platform-corpus --folds 5
"""

import argparse
import asyncio
import contextlib
import csv
import json
import os
import random
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

from steadymail.clock import SystemClock
from steadymail.services.flag_admin import set_flag
from steadymail.store import metric_series

sys.path.insert(0, str(Path(__file__).parent))
from detection import Bench
from net import free_port

CLOCK = SystemClock()
TRACKING_CRASH = "fault.tracking_crash"
RATE = 30  # messages a second the relay's limit allows: the baseline throughput
SERIES = ("throughput", "deferral_rate", "smtp_latency_ms")
# Which series each scenario's fault is labelled on.
SHOWS_IN = {
    "restarts": ("throughput",),
    "tracking_crash": ("throughput",),
    "stall": ("throughput",),
    "deferrals": ("deferral_rate",),
    "slow_relay": ("throughput", "smtp_latency_ms"),
    "latency": ("smtp_latency_ms",),
    "quiet": (),
}
PROFILES = {
    "standard": {"CostMatrix": {"tpWeight": 1.0, "fnWeight": 1.0, "fpWeight": 0.11}},
    "reward_low_FP_rate": {"CostMatrix": {"tpWeight": 1.0, "fnWeight": 1.0, "fpWeight": 0.22}},
    "reward_low_FN_rate": {"CostMatrix": {"tpWeight": 1.0, "fnWeight": 2.0, "fpWeight": 0.11}},
}


class Relay:
    """An SMTP relay whose speed and deferrals the scenario sets while it runs."""

    def __init__(self, seed: int) -> None:
        self.delay = 0.0
        self.defer = 0.0
        self._rng = random.Random(seed)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.delay:
            await asyncio.sleep(self.delay)
        if self._rng.random() < self.defer:
            return "451 4.3.0 try again later"
        return "250 2.0.0 OK"


@dataclass
class Run:
    name: str
    bench: Bench
    relay: Relay
    onsets: list[float] = field(default_factory=list)


def faults(run: Run, args: argparse.Namespace, stop: threading.Event, started: float) -> None:
    """At each onset, the scenario's fault for `--fault-seconds`, then undone."""
    for at in sorted(args.onsets):
        onset = started + args.minutes * 60 * at
        while time.time() < onset:
            if stop.wait(0.2):
                return
        fault(run, args, stop)


def fault(run: Run, args: argparse.Namespace, stop: threading.Event) -> None:
    end = time.time() + args.fault_seconds
    run.onsets.append(time.time())
    if run.name == "restarts":
        while time.time() < end:
            # A worker still being restarted is killed on the next beat instead.
            with contextlib.suppress(AssertionError, ProcessLookupError):
                os.kill(run.bench.pid("worker-1"), signal.SIGKILL)
            stop.wait(args.restart_every)
    elif run.name == "stall":
        pids = [run.bench.pid(w) for w in ("worker-1", "worker-2")]
        run.bench.paused = True  # the supervisor must not see them as hung and kill them
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        stop.wait(args.fault_seconds)
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
        run.bench.paused = False
    elif run.name == "tracking_crash":
        set_flag(run.bench.engine, CLOCK, TRACKING_CRASH, {"one_in": 40, "after": 0}, "corpus", "")
        stop.wait(args.fault_seconds)
        set_flag(run.bench.engine, CLOCK, TRACKING_CRASH, None, "corpus", "")
    elif run.name == "deferrals":
        run.relay.defer = 0.5
        stop.wait(args.fault_seconds)
        run.relay.defer = 0.0
    elif run.name == "slow_relay":
        # Every connection of both workers busy for this long a message: RATE / 2 a second.
        run.relay.delay = 2 * run.bench.settings.worker_concurrency / (RATE / 2)
        stop.wait(args.fault_seconds)
        run.relay.delay = 0.0
    elif run.name == "latency":
        # Several times the usual answer; both workers' connections still carry RATE.
        run.relay.delay = 0.1
        stop.wait(args.fault_seconds)
        run.relay.delay = 0.0


def windows_for(timestamps: list[datetime], onsets: list[float]) -> list[tuple[datetime, datetime]]:
    """NAB's labelling: a window a tenth of the file long (over its anomalies) centred on each
    onset, cut to the file."""
    if not onsets or not timestamps:
        return []
    half = len(timestamps) * 0.1 / len(onsets) / 2
    out = []
    for onset in onsets:
        at = min(range(len(timestamps)), key=lambda i: abs(timestamps[i].timestamp() - onset))
        lo, hi = max(0, round(at - half)), min(len(timestamps) - 1, round(at + half))
        out.append((timestamps[lo], timestamps[hi]))
    return out


def fmt(t: datetime) -> str:
    return t.strftime("%Y-%m-%d %H:%M:%S")


def write_corpus(out: Path, runs: list[Run], started: float, interval: float) -> None:
    labels_path = out / "labels" / "combined_windows.json"
    # Scenarios recorded by an earlier run of this script stay (their files and labels).
    labels: dict[str, list[list[str]]] = (
        json.loads(labels_path.read_text()) if labels_path.is_file() else {}
    )
    for index, run in enumerate(runs):
        folder = out / "data" / f"platform_{run.name}"
        folder.mkdir(parents=True, exist_ok=True)
        for name in SERIES:
            points = metric_series.read(
                run.bench.engine, run.bench.settings.region, name, interval, started, 100_000
            )
            if not points:
                continue
            key = f"platform_{run.name}/{name}_run{int(started)}{index}.csv"
            timestamps = [
                datetime.fromtimestamp(round(ts), UTC).replace(tzinfo=None) for ts, _ in points
            ]
            with (out / "data" / key).open("w", newline="") as fh:
                writer = csv.writer(fh)
                writer.writerow(["timestamp", "value"])
                for t, (_, value) in zip(timestamps, points, strict=True):
                    writer.writerow([fmt(t), repr(float(value))])
            onsets = run.onsets if name in SHOWS_IN[run.name] else []
            labels[key] = [
                [fmt(a) + ".000000", fmt(b) + ".000000"] for a, b in windows_for(timestamps, onsets)
            ]
    (out / "labels").mkdir(parents=True, exist_ok=True)
    labels_path.write_text(json.dumps(labels, indent=2, sort_keys=True) + "\n")
    (out / "config").mkdir(parents=True, exist_ok=True)
    (out / "config" / "profiles.json").write_text(json.dumps(PROFILES, indent=2) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--minutes", type=float, default=12)
    ap.add_argument("--interval", type=float, default=1.0)
    ap.add_argument(
        "--onsets",
        type=lambda v: [float(x) for x in v.split(",")],
        default=[0.6],
        help="fault onsets, fractions of the run (comma-separated)",
    )
    ap.add_argument("--fault-seconds", type=float, default=90)
    ap.add_argument("--restart-every", type=float, default=15)
    ap.add_argument("--scenarios", default=",".join(SHOWS_IN))
    args = ap.parse_args()
    names = args.scenarios.split(",")
    unknown = set(names) - set(SHOWS_IN)
    if unknown:
        raise SystemExit(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    runs: list[Run] = []
    controllers: list[Controller] = []
    stop = threading.Event()
    started = time.time()
    contacts = int(RATE * args.minutes * 60 * 1.2)
    try:
        for i, name in enumerate(names):
            relay = Relay(seed=i)
            port = free_port()
            controller = Controller(relay, hostname="127.0.0.1", port=port)
            controller.start()
            controllers.append(controller)
            workdir = Path(tempfile.mkdtemp(prefix=f"steadymail-corpus-{name}-"))
            env = {"STEADYMAIL_METRICS_INTERVAL": str(args.interval)}
            bench = Bench(workdir, port, RATE, extra_env=env)
            bench.start_send(contacts, links=5 if name == "tracking_crash" else 0)
            runs.append(Run(name, bench, relay))
        threads = [threading.Thread(target=faults, args=(r, args, stop, started)) for r in runs]
        for t in threads:
            t.start()
        deadline = started + args.minutes * 60
        while time.time() < deadline:
            time.sleep(1)
            elapsed = (time.time() - started) / 60
            print(f"\r{elapsed:5.1f} / {args.minutes} min", end="", file=sys.stderr, flush=True)
        print(file=sys.stderr)
        stop.set()
        for t in threads:
            t.join()
        time.sleep(args.interval * 2)  # the last intervals folded
        write_corpus(args.out, runs, started, args.interval)
    finally:
        stop.set()
        for run in runs:
            run.bench.close()
        for controller in controllers:
            controller.stop()
    for run in runs:
        if SHOWS_IN[run.name]:
            print(
                f"{run.name}: onsets {[round(o - started) for o in run.onsets]} s after the start"
            )


if __name__ == "__main__":
    main()
