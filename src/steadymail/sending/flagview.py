"""A worker's view of the region's flags: read when it starts, then refreshed by every
heartbeat's transaction (every lease_ttl / 3), and consulted at claim time and per message."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine

from steadymail.clock import Clock
from steadymail.store import flags
from steadymail.store.records import FlagRow

log = logging.getLogger("steadymail.flags")
FAULT_EXIT_CODE = 70  # a worker that exits on the fault flag (EX_SOFTWARE)


class FlagView:
    def __init__(self, engine: Engine, clock: Clock) -> None:
        self._engine, self._clock = engine, clock
        self.values: dict[str, Any] = {}
        self._applied: dict[str, float] = {}
        # Called with the reason just before an injected exit (the worker leaves last words).
        self.before_exit: Callable[[str], None] | None = None

    def get(self, name: str, default: Any = None) -> Any:
        return self.values.get(name, default)

    def snapshot(self) -> dict[str, Any]:
        return dict(self.values)

    def refresh(self) -> None:
        self.update(flags.detailed(self._engine))

    def update(self, rows: list[FlagRow]) -> None:
        """New values from flag rows (read by the heartbeat's transaction)."""
        self.values = {r.name: r.value for r in rows}
        self._applied = {r.name: float(r.updated_at) for r in rows}

    async def load(self) -> None:
        """The first read, when the worker starts (later ones ride on heartbeats)."""
        try:
            await asyncio.to_thread(self.refresh)
        except Exception as e:
            log.warning("event=flags_read_failed error=%r", str(e))

    def check_fault(self, started_at: float) -> None:
        """Fault injection (``fault.worker_exit``): exit once armed and run long enough."""
        fault = self.values.get("fault.worker_exit")
        if not fault:
            return
        now = self._clock.now()
        armed_at = self._applied.get("fault.worker_exit", now) + float(fault.get("after", 0))
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

    def armed(self, name: str) -> dict[str, Any] | None:
        """A fault flag's value once its ``after`` delay has passed since it took effect."""
        fault = self.values.get(name)
        if not fault:
            return None
        now = self._clock.now()
        if now < self._applied.get(name, now) + float(fault.get("after", 0)):
            return None
        return dict(fault)
