"""A worker's view of the region's flags: read when it starts, then refreshed by every
heartbeat's transaction (every lease_ttl / 3, heartbeat.py), and consulted at claim time and per
message. What the ``fault.*`` flags do is faults.py's."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from sqlalchemy import Engine

from steadymail.store import flag_values
from steadymail.store.records import FlagRow

log = logging.getLogger("steadymail.flags")


class FlagView:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self.values: dict[str, Any] = {}
        self._applied: dict[str, float] = {}

    def get(self, name: str, default: Any = None) -> Any:
        return self.values.get(name, default)

    def applied_at(self, name: str, default: float) -> float:
        """When the flag's current value took effect (``default`` if it is not set)."""
        return self._applied.get(name, default)

    def snapshot(self) -> dict[str, Any]:
        return dict(self.values)

    def refresh(self) -> None:
        self.update(flag_values.detailed(self._engine))

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
