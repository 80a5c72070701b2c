"""Fault injection, in one place: what tests and drills make a worker do, at the named points of
its loop where it calls `Faults.at` (and as it is about to send to a recipient).

- ``fault.worker_exit`` (flag, ``{"every": s, "after": s}``): once the flag has been in force
  ``after`` seconds and the worker has run ``every`` seconds, it leaves its reason as last words
  and exits with code 70; looked at before each heartbeat and each claim.
- ``fault.tracking_crash`` (flag, ``{"one_in": n, "after": s}``): once armed, one message in n
  crashes the link rewriter. The crash is raised inside tracking/rewrite.py, where the outage
  the drill replays happened (the last words name that frame); the composer asks
  `tracking_crash_one_in` for each message.
- ``fault_crash_on`` (setting): the worker SIGKILLs itself about to send to that recipient.
- ``fault_freeze_dir`` (setting): the freeze drill (freeze_drill.py) stops the worker at a named
  point, or inside a SQL statement.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine

from steadymail.clock import Clock
from steadymail.config import Settings
from steadymail.sending.flag_view import FlagView
from steadymail.sending.freeze_drill import FreezeDrill

log = logging.getLogger("steadymail.faults")
FAULT_EXIT_CODE = 70  # a worker that exits on the fault flag (EX_SOFTWARE)
# The points at which an armed ``fault.worker_exit`` ends the worker.
EXIT_POINTS = frozenset({"beating", "claiming"})


class Faults:
    def __init__(self, settings: Settings, flags: FlagView, clock: Clock) -> None:
        self._crash_on = settings.fault_crash_on
        self._freeze_dir = settings.fault_freeze_dir
        self._flags, self._clock = flags, clock
        self._started_at = clock.now()
        self._drill: FreezeDrill | None = None
        # Called with the reason just before an injected exit (the worker leaves last words).
        self.before_exit: Callable[[str], None] | None = None

    def start(self, engine: Engine, started_at: float) -> None:
        """The worker starts now; the freeze drill, when set, hooks the engine's statements."""
        self._started_at = started_at
        if self._freeze_dir is not None:
            self._drill = FreezeDrill(self._freeze_dir)
            self._drill.install(engine)

    def at(self, point: str) -> None:
        """The worker is at ``point`` of its loop: whatever fault is due there happens."""
        if point in EXIT_POINTS:
            self._exit_if_due()
        if self._drill is not None:
            self._drill.at(point)

    def sending_to(self, email: str) -> None:
        """The worker is about to send to ``email``."""
        if self._crash_on and email == self._crash_on:
            log.error("event=fault_injected kind=crash_on_recipient")
            os.kill(os.getpid(), signal.SIGKILL)

    def tracking_crash_one_in(self) -> int:
        """The armed ``fault.tracking_crash``'s one message in N (0: off)."""
        return int((self._armed("fault.tracking_crash") or {}).get("one_in", 0))

    def _exit_if_due(self) -> None:
        """``fault.worker_exit``: exit once armed and run long enough."""
        fault = self._flags.get("fault.worker_exit")
        if not fault:
            return
        now = self._clock.now()
        started_at = self._started_at
        armed_at = self._flags.applied_at("fault.worker_exit", now) + float(fault.get("after", 0))
        if now >= armed_at and now - started_at >= float(fault["every"]):
            why = (
                f"fault.worker_exit injected: exit {FAULT_EXIT_CODE} after "
                f"{now - started_at:.0f}s (every {fault['every']:g}s)"
            )
            log.error("event=fault_injected kind=worker_exit every=%s", fault["every"])
            if self.before_exit is not None:
                self.before_exit(why)
            logging.shutdown()
            os._exit(FAULT_EXIT_CODE)

    def _armed(self, name: str) -> dict[str, Any] | None:
        """A fault flag's value once its ``after`` delay has passed since it took effect."""
        fault = self._flags.get(name)
        if not fault:
            return None
        now = self._clock.now()
        if now < self._flags.applied_at(name, now) + float(fault.get("after", 0)):
            return None
        return dict(fault)
