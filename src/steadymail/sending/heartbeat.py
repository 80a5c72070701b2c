"""A worker's heartbeat, every ``lease_ttl / 3``: extend the leases it holds, then beat its
instance row, whose transaction also reads the region's flags (the worker's flag refresh).

While beats go through, the worker's leases are good until ``valid_until``; once they have not
for a whole TTL, its leases may already be someone else's and it stops working on its batches.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import Engine

from steadymail.clock import Clock
from steadymail.sending.checkpointer import Checkpointer
from steadymail.sending.faults import Faults
from steadymail.sending.flag_view import FlagView
from steadymail.store import instances

log = logging.getLogger("steadymail.worker")


class Heartbeat:
    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        checkpointer: Checkpointer,
        flags: FlagView,
        faults: Faults,
        owner: str,
        lease_ttl: float,
        interval: float,
    ) -> None:
        self._engine, self._clock = engine, clock
        self._checkpointer, self._flags, self._faults = checkpointer, flags, faults
        self._owner, self._ttl, self._interval = owner, lease_ttl, interval
        self.valid_until = 0.0

    def start(self, now: float) -> None:
        """Leases claimed from ``now`` on are good for a TTL before the first beat."""
        self.valid_until = now + self._ttl

    def valid(self) -> bool:
        """Whether the last beat went through less than a lease TTL ago."""
        return self._clock.now() < self.valid_until

    async def run(self) -> None:
        while True:
            started = self._clock.now()
            self._faults.at("beating")
            try:
                await self.beat()
                self.valid_until = started + self._ttl
                self._faults.at("beat")
            except Exception as e:
                log.warning("event=heartbeat_failed instance=%s error=%r", self._owner, str(e))
            await asyncio.sleep(self._interval)

    async def beat(self) -> None:
        """Extend the leases (through the checkpointer: one writer locks this worker's batch
        rows, always in one order), then beat the instance row with the flag values in force
        and read the region's flags in the same transaction."""
        await self._checkpointer.extend_leases()
        rows = await asyncio.to_thread(
            instances.heartbeat,
            self._engine,
            self._owner,
            self._clock.now(),
            self._flags.snapshot(),
            read_flags=True,
        )
        self._flags.update(rows)
