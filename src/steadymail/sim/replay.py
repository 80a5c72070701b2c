"""`steadymail replay`: the outage behind steadymail, compressed and healed.

Three regions and the control plane start as real processes (`steadymail up --regions R1,R2,R3
--plain-restarts`: workers restarted as an orchestrator that knows nothing of steadymail would),
each region sends a steady campaign, and a faulty change to link tracking is rolled out with
the plan R3 → R1 → R2, as in the outage: ``fault.tracking_crash`` makes the link rewriter crash
the worker on some messages, from a while after the value took effect.

Modes: ``canary`` (the fault shows during the canary's bake: the gates must stop it in R3),
``after-guard`` (it shows only after the rollout completed: the revert window must catch it),
``off`` (no gates, no revert, no quarantine: the outage as it happened).

Every figure comes from what the processes recorded (region databases, the control plane's
audit log, the capture server's mailbox), measured from the first fault-caused exit.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from steadymail.clock import SystemClock
from steadymail.errors import ValidationError
from steadymail.services import database, outcomes
from steadymail.services.captured import deliveries, open_mailbox
from steadymail.services.database import Engine
from steadymail.services.watching import incident, list_alerts

REGIONS = ("R1", "R2", "R3")
PLAN = "R3,R1,R2"  # APAC first, then Europe, then North America: the outage's order
MODES = ("canary", "after-guard", "off")
FAULT = "fault.tracking_crash"
SYMPTOMS = ("service_restarted", "service_died", "crash_loop", "send_stalled", "no_live_worker")

# The outage as it was told (the mission statement and issue 10): hours, not seconds.
OUTAGE = {
    "fault starts": "0 (a link-tracking change, rolled out region after region)",
    "first alert": "≈ 5 h (sends stalled almost five hours before a monitor noticed)",
    "cause named": "≈ 5 h 33 min (33 minutes to tie the restarts to the tracking change)",
    "rolled back everywhere": "by hand, region by region",
    "every send resumed": "≈ 8 h (three more hours of manual work to find and resume)",
    "regions hit": "APAC, Europe, North America (all)",
}


@dataclass(frozen=True)
class Schedule:
    """The replay's phases in seconds, all stretched by ``time_scale``."""

    baseline: float
    bake: float
    guard: float
    fault_after: float
    observe_off: float
    rate: int
    messages: int

    @classmethod
    def for_mode(cls, mode: str, time_scale: float, rate: int) -> Schedule:
        if mode not in MODES:
            raise ValidationError(f"mode is one of {', '.join(MODES)}")
        if not 0.2 <= time_scale <= 100:
            raise ValidationError("--time-scale is between 0.2 and 100")
        baseline, bake, guard = 8.0 * time_scale, 10.0 * time_scale, 12.0 * time_scale
        # Canary: a while into R3's bake. After the guard: past completion in every region
        # (R3 has had it for three bakes and the guard by then), with 3 s more that do not
        # scale, for the waves' own overhead (at half scale it reached past the guard).
        fault_after = (
            3 * bake + guard + 6 * time_scale + 3.0 if mode == "after-guard" else 3.0 * time_scale
        )
        observe_off = 40.0 * time_scale
        if mode == "off":
            # Sending all through the observation: the outage as it ran.
            span = baseline + 3 * bake + guard + fault_after + 20 * time_scale
        elif mode == "canary":
            # Sending until the fault has armed in the canary, through its bake (the gates
            # decide there), and 10 s more to see every send resume (fault_after counts from
            # the rollout's start: the first region gets the value at once).
            span = baseline + fault_after + bake + 10 * time_scale
        else:
            # The revert window acts on the first alert after the fault arms (well within a
            # second here): 15 s more see every send resume.
            span = baseline + fault_after + 15 * time_scale
        return cls(baseline, bake, guard, fault_after, observe_off, rate, int(rate * span))


@dataclass
class ReplayResult:
    mode: str
    database: str
    detected_s: float | None = None
    cause_named_s: float | None = None
    rolled_back_s: float | None = None
    resumed_s: float | None = None
    regions_hit: list[str] = field(default_factory=list)
    lost: int = 0
    quarantined: int = 0
    undelivered: int = 0
    duplicates: int = 0
    # What the platform itself counted as re-sent after a crash (at most the in-flight window).
    duplicates_counted: int = 0
    sent: int = 0
    decision: str = ""
    rollout: int | None = None
    total_s: float = 0.0
    incident_file: str = ""
    first_alert: str = ""
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


class Stack:
    """`steadymail up --regions R1,R2,R3 --plain-restarts` in a work directory of its own."""

    def __init__(self, workdir: Path, database_url: str, schedule: Schedule, mode: str) -> None:
        self.workdir, self.mode = workdir, mode
        self.data = workdir / ".steadymail"
        # Consecutive API ports (up gives region i the port api_port + i, and public_port + i).
        self.api_base = self._port_block(len(REGIONS))
        self.public_base = self._port_block(len(REGIONS))
        self.sink, self.control_port = _free_ports(2)
        self.database_url = database_url
        self.proc: subprocess.Popen[bytes] | None = None
        env = {k: v for k, v in os.environ.items() if not k.startswith(("STEADYMAIL_", "PROM"))}
        env.update(
            {
                "STEADYMAIL_API_PORT": str(self.api_base),
                "STEADYMAIL_PUBLIC_PORT": str(self.public_base),
                "STEADYMAIL_SINK_PORT": str(self.sink),
                "STEADYMAIL_CONTROL_PORT": str(self.control_port),
                "STEADYMAIL_CONTROL_URL": f"http://127.0.0.1:{self.control_port}",
                "STEADYMAIL_RELAYS": json.dumps(
                    [{"host": "127.0.0.1", "port": self.sink, "rate_per_second": schedule.rate}]
                ),
                "STEADYMAIL_WORKERS": "2",
                "STEADYMAIL_METRICS_INTERVAL": "1",
                "STEADYMAIL_MONITOR_INTERVAL": "0.5",
                "STEADYMAIL_LEASE_TTL": "6",
                "STEADYMAIL_RESTART_RESOLVE_AFTER": "8",
                "STEADYMAIL_STALL_FLOOR": "10",
                "STEADYMAIL_POLICY_FILE": str(workdir / "policy.toml"),
                "STEADYMAIL_CONFIG": str(workdir / "steadymail.toml"),
                "STEADYMAIL_DATA_DIR": str(self.data),
            }
        )
        if database_url:
            env["STEADYMAIL_DATABASE_URL"] = database_url
        if mode == "off":
            # The outage as it happened: nothing set a poison message aside.
            env["STEADYMAIL_QUARANTINE_AFTER"] = "1000000"
        self.env = env

    @staticmethod
    def _port_block(n: int) -> int:
        for _ in range(200):
            base = int.from_bytes(secrets.token_bytes(2), "big") % 20000 + 20000
            socks: list[socket.socket] = []
            try:
                for p in range(base, base + n):
                    s = socket.socket()
                    socks.append(s)
                    s.bind(("127.0.0.1", p))
                return base
            except OSError:
                continue
            finally:
                for s in socks:
                    s.close()
        raise RuntimeError("no free block of ports")

    def url(self, region: str) -> str:
        return f"http://127.0.0.1:{self.api_base + REGIONS.index(region)}"

    def key(self, region: str) -> str:
        return (self.data / "regions" / region / "dev-api-key").read_text().strip()

    def control_key(self) -> str:
        return (self.data / "control-api-key").read_text().strip()

    def region_url(self, region: str) -> str:
        if not self.database_url:
            return f"sqlite:///{self.data / 'regions' / region / 'steadymail.db'}"
        return self.database_url.replace("{region}", region.lower())

    def start(self) -> None:
        log = open(self.workdir / "up.log", "ab")  # noqa: SIM115 - the child writes to it
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "steadymail",
                "up",
                "--regions",
                ",".join(REGIONS),
                "--plain-restarts",
            ],
            cwd=self.workdir,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def call(self, region: str, method: str, path: str, **kw: Any) -> Any:
        r = httpx.request(
            method,
            self.url(region) + path,
            headers={"Authorization": f"Bearer {self.key(region)}"},
            timeout=10,
            **kw,
        )
        if r.status_code >= 400:
            raise RuntimeError(f"{region} {method} {path}: {r.status_code} {r.text[:300]}")
        return r.json()

    def control(self, method: str, path: str, **kw: Any) -> Any:
        r = httpx.request(
            method,
            f"http://127.0.0.1:{self.control_port}{path}",
            headers={"Authorization": f"Bearer {self.control_key()}"},
            timeout=10,
            **kw,
        )
        if r.status_code >= 400:
            raise RuntimeError(f"control {method} {path}: {r.status_code} {r.text[:300]}")
        return r.json()

    def ready(self) -> bool:
        try:
            if not (self.data / "control-api-key").exists():
                return False
            for region in REGIONS:
                workers = [
                    w for w in self.call(region, "GET", "/v1/workers") if w["service"] == "worker"
                ]
                if len(workers) < 2:
                    return False
            health = httpx.get(f"http://127.0.0.1:{self.control_port}/healthz", timeout=2)
            return health.status_code == 200
        except (httpx.HTTPError, RuntimeError, OSError):
            return False

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def _wait(cond: Callable[[], bool], timeout: float, what: str, interval: float = 0.25) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(interval)
    raise TimeoutError(f"replay: {what} not within {timeout:.0f}s")


def _policy(mode: str) -> str:
    gates = "[]" if mode == "off" else '["restarts", "stalls", "error_rate", "anomalies"]'
    return (
        'canary = "R3"\nmin_bake = "1s"\nmin_guard = "1s"\nmax_regions_per_wave = 1\n'
        f"required_gates = {gates}\n"
        f'revert_window = "{"0" if mode == "off" else "1h"}"\n'
    )


def _campaign(stack: Stack, region: str, n: int) -> int:
    domain = f"{region.lower()}.replay.example"
    rows = "email,first_name\n" + "".join(f"reader{i}@{domain},Reader{i}\n" for i in range(n))
    stack.call(region, "POST", "/v1/lists/steady/import", content=rows.encode())
    html = (
        "<p>Hi {{ first_name }}, this week: <a href='https://example.com/news'>news</a>, "
        "<a href='https://example.com/offers?ref=mail'>offers</a>.</p>"
    )
    stack.call(
        region,
        "POST",
        "/v1/templates",
        json={"name": "weekly", "subject": "The week", "html": html, "text": "Hi {{ first_name }}"},
    )
    send = stack.call(
        region,
        "POST",
        "/v1/campaigns",
        json={
            "name": "steady",
            "list": "steady",
            "template": "weekly",
            "from": "News <news@example.com>",
        },
    )
    stack.call(region, "POST", f"/v1/sends/{send['id']}/start")
    return int(send["id"])


def _pg_databases(url: str, create: bool) -> None:
    for region in REGIONS:
        target = url.replace("{region}", region.lower())
        if create:
            database.create_database(target)
        else:
            database.drop_database(target)


class Replay:
    def __init__(
        self,
        mode: str = "canary",
        time_scale: float = 1.0,
        database_url: str = "",
        workdir: Path | None = None,
        rate: int = 25,
        one_in: int = 40,
        log: Callable[[str], None] = lambda _line: None,
    ) -> None:
        self.mode, self.log = mode, log
        self.schedule = Schedule.for_mode(mode, time_scale, rate)
        if not 2 <= one_in <= 100000:
            raise ValidationError("one_in is between 2 and 100000")
        self.one_in = one_in
        self._own_dir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="steadymail-replay-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._pg = ""
        if database_url:
            if "{region}" not in database_url or not database_url.startswith(("postgres",)):
                raise ValidationError(
                    "--database-url is a PostgreSQL URL with {region} in the database name"
                )
            # A database per region and per run: a replay never mixes with earlier data.
            token = secrets.token_hex(3)
            self._pg = database_url.replace("{region}", f"{{region}}_{token}")
        self.stack = Stack(self.workdir, self._pg, self.schedule, mode)

    def run(self) -> ReplayResult:
        if self._pg:
            _pg_databases(self._pg, create=True)
        started = time.time()
        try:
            return self._run(started)
        finally:
            self.stack.stop()
            if self._pg:
                _pg_databases(self._pg, create=False)

    def _run(self, started: float) -> ReplayResult:
        s, stack = self.schedule, self.stack
        (self.workdir / "policy.toml").write_text(_policy(self.mode))
        stack.start()
        self.log(f"starting R1, R2, R3 and the control plane in {self.workdir}")
        _wait(stack.ready, 120, "the three regions and the control plane up")
        sends = {r: _campaign(stack, r, s.messages) for r in REGIONS}
        self.log(
            f"steady campaigns: {s.messages} messages per region at {s.rate}/s; baseline "
            f"{s.baseline:.0f}s"
        )
        time.sleep(s.baseline)
        # The rate gate compares with a baseline of at least 5 intervals: have them everywhere.
        _wait(
            lambda: all(
                len(stack.call(r, "GET", "/v1/metrics/series/deferral_rate")["points"]) >= 6
                for r in REGIONS
            ),
            60,
            "a baseline of rate points in every region",
            interval=0.5,
        )
        body = {
            "flag": FAULT,
            "value": {"one_in": self.one_in, "after": s.fault_after},
            "plan": PLAN,
            "bake": s.bake,
            "guard": s.guard,
            "gates": [] if self.mode == "off" else None,
            "by": "replay",
        }
        rollout = stack.control("POST", "/v1/rollouts", json=body)
        rid = int(rollout["id"])
        self.log(
            f"rollout {rid}: {FAULT}={body['value']} plan {PLAN}, bake {s.bake:.0f}s, guard "
            f"{s.guard:.0f}s; the rewriter crashes from {s.fault_after:.0f}s after each region "
            "gets it"
        )
        if self.mode == "off":
            # Nothing will heal it: watch the outage for a while, then count.
            time.sleep(3 * s.bake + s.fault_after + s.observe_off)
        else:
            _wait(
                lambda: stack.control("GET", f"/v1/rollouts/{rid}")["state"] == "rolled_back",
                3 * s.bake + s.guard + s.fault_after + 90,
                "the rollback",
            )
            self.log("rolled back; waiting for every send to finish")
            _wait(
                lambda: all(
                    stack.call(r, "GET", f"/v1/sends/{sid}")["state"] == "completed"
                    for r, sid in sends.items()
                ),
                s.messages / s.rate + 120,
                "every send completed",
                interval=1.0,
            )
        result = self._measure(rid, sends)
        result.total_s = round(time.time() - started, 1)
        return result

    def _measure(self, rid: int, sends: dict[str, int]) -> ReplayResult:
        stack = self.stack
        result = ReplayResult(self.mode, "postgresql" if self._pg else "sqlite", rollout=rid)
        engines = {r: database.open_url(stack.region_url(r)) for r in REGIONS}
        try:
            return self._from_records(result, rid, sends, engines)
        finally:
            for e in engines.values():
                e.dispose()

    def _from_records(
        self, result: ReplayResult, rid: int, sends: dict[str, int], engines: dict[str, Engine]
    ) -> ReplayResult:
        exits: dict[str, float] = {}
        for region, engine in engines.items():
            crashed = [
                e.at for e in outcomes.process_exits(engine) if "RewriterCrash" in str(e.detail)
            ]
            if crashed:
                exits[region] = min(crashed)
        result.regions_hit = sorted(exits, key=lambda r: exits[r])
        status = self.stack.control("GET", f"/v1/rollouts/{rid}")
        result.decision = status["decision"]
        if not exits:
            result.notes.append("no fault-caused exit was recorded")
            return result
        t0 = min(exits.values())
        symptoms = []
        named = []
        for region, engine in engines.items():
            for a in list_alerts(engine, since=t0 - 1, limit=500):
                if a.name not in SYMPTOMS:
                    continue
                symptoms.append((a.started_at, region, a.summary))
                if any(x["subject"] == FAULT for x in a.labels.get("suspects", [])):
                    named.append(a.started_at)
        if symptoms:
            first = min(symptoms)
            result.detected_s = round(first[0] - t0, 2)
            result.first_alert = f"{first[1]}: {first[2]}"
        if named:
            result.cause_named_s = round(min(named) - t0, 2)
        captured = self._captured()  # the capture mailbox, read once
        rolled = [e["at"] for e in status["events"] if e["kind"] == "rolled_back"]
        if status["state"] == "rolled_back" and rolled:
            back = float(max(rolled))
            result.rolled_back_s = round(back - t0, 2)
            # Resumed: each hit region delivering again after the rollback, and every message
            # that was in a crashed worker's hands (crashes > 0) delivered since.
            resumed = [
                _first_delivery_after(captured, region, back) for region in result.regions_hit
            ]
            hit = [
                self._hit_messages_delivered(engines[region], sends[region])
                for region in result.regions_hit
            ]
            marks = resumed + hit
            if marks and all(x is not None for x in marks):
                result.resumed_s = round(max(x for x in marks if x is not None) - t0, 2)
        self._count(result, sends, engines, captured)
        result.incident_file = self._export_incident(engines, result.regions_hit)
        return result

    @staticmethod
    def _hit_messages_delivered(engine: Engine, send_id: int) -> float | None:
        """When the last message that a crash caught in flight was delivered; None while one
        of them is not."""
        rows = outcomes.message_outcomes(engine, send_id, crashed_only=True)
        if any(m.state != "sent" for m in rows):
            return None
        return max((float(m.sent_at) for m in rows if m.sent_at is not None), default=0.0)

    def _captured(self) -> list[tuple[str, float]]:
        mailbox = open_mailbox(self.stack.data / "capture.db")
        try:
            return deliveries(mailbox)
        finally:
            mailbox.dispose()

    def _count(
        self,
        result: ReplayResult,
        sends: dict[str, int],
        engines: dict[str, Engine],
        mailbox: list[tuple[str, float]],
    ) -> None:
        captured = [rcpt for rcpt, _ in mailbox]
        distinct = set(captured)
        result.duplicates = len(captured) - len(distinct)
        result.sent = len(distinct)
        for region, engine in engines.items():
            result.duplicates_counted += outcomes.resent_after_crash(engine, sends[region])
            for m in outcomes.message_outcomes(engine, sends[region]):
                if m.email in distinct:
                    continue
                if m.state == "quarantined":
                    result.quarantined += 1
                elif m.state in ("sent", "bounced", "failed"):
                    result.lost += 1  # the platform thinks it is done, and it never arrived
                else:
                    result.undelivered += 1

    def _export_incident(self, engines: dict[str, Engine], hit: list[str]) -> str:
        for region in hit:
            found = [
                a
                for a in list_alerts(engines[region], limit=500)
                if a.name == "rollout_rolled_back"
            ]
            if found:
                path = self.workdir / f"replay-incident-{region}.md"
                path.write_text(incident(engines[region], SystemClock(), found[0].id))
                return str(path)
        return ""

    def cleanup(self) -> None:
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)


def _first_delivery_after(
    captured: list[tuple[str, float]], region: str, at: float
) -> float | None:
    domain = f"@{region.lower()}.replay.example"
    times = [t for rcpt, t in captured if rcpt.endswith(domain) and t > at]
    return min(times) if times else None


def timeline_rows(result: ReplayResult) -> list[tuple[str, str, str]]:
    """(event, the outage as told, this replay) for the side-by-side table."""

    def at(v: float | None, none: str) -> str:
        return none if v is None else f"{v:.1f} s"

    never = "never (nothing acts)" if result.mode == "off" else "not seen"
    return [
        ("fault starts", OUTAGE["fault starts"], "0 s (first worker killed by the rewriter)"),
        ("first alert", OUTAGE["first alert"], at(result.detected_s, never)),
        ("cause named", OUTAGE["cause named"], at(result.cause_named_s, never)),
        (
            "rolled back everywhere",
            OUTAGE["rolled back everywhere"],
            at(result.rolled_back_s, never),
        ),
        ("every send resumed", OUTAGE["every send resumed"], at(result.resumed_s, never)),
        ("regions hit", OUTAGE["regions hit"], ", ".join(result.regions_hit) or "none"),
        ("messages lost", "not told", str(result.lost)),
        ("duplicates", "not told", str(result.duplicates)),
    ]
