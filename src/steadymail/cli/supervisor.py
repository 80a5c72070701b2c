"""A tiny process supervisor for `steadymail up`: starts children, restarts the ones that die.

In production systemd (or Kubernetes) plays this part; on one box this keeps a SIGKILLed worker
from staying dead, with a growing delay for a child that keeps crashing.
"""

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from steadymail.clock import Clock
from steadymail.services import exits
from steadymail.services.database import Engine

log = logging.getLogger("steadymail.supervisor")


@dataclass
class Child:
    name: str
    argv: list[str]
    restart: bool = True
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0
    next_start: float = 0.0
    backoff: float = 0.5
    exits: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)  # over the supervisor's environment
    # False: restart it as a plain `Restart=always` would, naming no slot and reporting no
    # exit; the platform recognises the restart by itself (identity.py, presence.py).
    named: bool = True


def describe_exit(code: int) -> str:
    if code < 0:
        return f"signal {signal.Signals(-code).name}"
    return f"exit code {code}"


class Supervisor:
    def __init__(
        self,
        children: list[Child],
        env: dict[str, str] | None = None,
        on_exit: Callable[[Child, int, str], None] | None = None,
    ) -> None:
        self.children = children
        self.env = {**os.environ, **(env or {})}
        # Tells the platform how a child ended (the monitor cannot see a signal number).
        self._on_exit = on_exit
        self._stopping = False

    def _start(self, child: Child) -> None:
        # Each child fills a named slot, so the monitor can tell a restart from a new process.
        env = {**self.env, **child.env}
        if child.named:
            env["STEADYMAIL_SLOT"] = child.name
        else:
            env.pop("STEADYMAIL_SLOT", None)
        child.proc = subprocess.Popen(child.argv, env=env)
        child.started_at = time.monotonic()
        log.info("event=child_started name=%s pid=%d", child.name, child.proc.pid)

    def start_all(self) -> None:
        for child in self.children:
            self._start(child)

    def tick(self) -> None:
        """Restart children that exited; call every few hundred milliseconds."""
        now = time.monotonic()
        for child in self.children:
            if child.proc is None:
                if now >= child.next_start and not self._stopping:
                    self._start(child)
                continue
            code = child.proc.poll()
            if code is None or self._stopping:
                continue
            why = describe_exit(code)
            child.exits.append(why)
            pid = child.proc.pid
            child.proc = None
            _forget_gauges(pid, {**self.env, **child.env}.get("PROMETHEUS_MULTIPROC_DIR"))
            if self._on_exit is not None and child.named:
                try:
                    self._on_exit(child, pid, why)
                except Exception as e:
                    log.error("event=exit_report_failed name=%s error=%r", child.name, str(e))
            if not child.restart:
                log.error("event=child_exited name=%s reason=%r", child.name, why)
                continue
            # A child that lived a while gets restarted at once; a crash loop backs off.
            lived = now - child.started_at
            child.backoff = 0.5 if lived > 30 else min(child.backoff * 2, 10.0)
            child.next_start = now + (0.0 if lived > 30 else child.backoff)
            child.restarts += 1
            log.warning(
                "event=child_died name=%s reason=%r restart_in=%.1fs",
                child.name,
                why,
                child.next_start - now,
            )

    def stop_all(self, grace: float = 20.0) -> None:
        self._stopping = True
        live = [c.proc for c in self.children if c.proc is not None and c.proc.poll() is None]
        for p in live:
            p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for p in live:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def run_forever(self) -> None:
        stop = {"now": False}

        def _on_signal(_sig: int, _frame: object) -> None:
            stop["now"] = True

        signal.signal(signal.SIGINT, _on_signal)
        signal.signal(signal.SIGTERM, _on_signal)
        self.start_all()
        try:
            while not stop["now"]:
                self.tick()
                time.sleep(0.2)
        finally:
            self.stop_all()


def _forget_gauges(pid: int, directory: str | None) -> None:
    # A dead process's live gauges (queue depth, stalled sends) must not be exported any more.
    if directory:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid, directory)


def steadymail_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "steadymail", *args]


def exit_reporter(engine: Engine, clock: Clock) -> Callable[[Child, int, str], None]:
    """Record a child's end (exit code or signal) on its instance for the monitor, and lapse its
    leases at once: the supervisor saw the process end, so its batches can resume now."""

    def report(child: Child, pid: int, reason: str) -> None:
        if exits.record_supervised_exit(engine, clock, pid, reason) is None:
            log.warning(
                "event=exit_of_unknown_child name=%s pid=%d reason=%r", child.name, pid, reason
            )

    return report
