"""A worker's view of the region's flags: read when it starts, then refreshed by every
heartbeat's transaction (every lease_ttl / 3), and consulted at claim time and per message."""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from sqlalchemy import Engine

from steadymail.clock import Clock
from steadymail.store import flags

log = logging.getLogger("steadymail.flags")
FAULT_EXIT_CODE = 70  # a worker that exits on the fault flag (EX_SOFTWARE)


class FlagView:
    def __init__(self, engine: Engine, clock: Clock) -> None:
        self._engine, self._clock = engine, clock
        self.values: dict[str, Any] = {}
        self._applied: dict[str, float] = {}

    def get(self, name: str, default: Any = None) -> Any:
        return self.values.get(name, default)

    def snapshot(self) -> dict[str, Any]:
        return dict(self.values)

    def refresh(self) -> None:
        self.update(flags.detailed(self._engine))

    def update(self, rows: list[dict[str, Any]]) -> None:
        """New values from flag rows (read by the heartbeat's transaction)."""
        self.values = {r["name"]: r["value"] for r in rows}
        self._applied = {r["name"]: float(r["updated_at"]) for r in rows}

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
            log.error("event=fault_injected kind=worker_exit every=%s", fault["every"])
            logging.shutdown()
            os._exit(FAULT_EXIT_CODE)
