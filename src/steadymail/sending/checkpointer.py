"""Group commit: every batch task's fenced writes of a few milliseconds go in one transaction."""

import asyncio
import logging

from sqlalchemy import Engine

from steadymail.clock import Clock
from steadymail.store.queue import Checkpoint, apply_checkpoints, extend_leases

log = logging.getLogger("steadymail.checkpoint")


class Checkpointer:
    """Collects checkpoints and writes them from one thread, in order, a group at a time.

    The heartbeat's lease extension goes through the same writer (`extend_leases`), so a worker
    never holds two transactions that lock its own batch rows in different orders (a deadlock
    on PostgreSQL).
    """

    def __init__(
        self, engine: Engine, clock: Clock, interval: float, owner: str, lease_ttl: float
    ) -> None:
        self._engine, self._clock, self._interval = engine, clock, interval
        self._owner, self._ttl = owner, lease_ttl
        # None: extend this worker's leases in the group's transaction.
        self._queue: asyncio.Queue[tuple[Checkpoint | None, asyncio.Future[bool]]] = asyncio.Queue()

    async def submit(self, item: Checkpoint) -> bool:
        """Write `item` with the next group; True if its fence held."""
        return await self._put(item)

    async def extend_leases(self) -> bool:
        """Extend every lease this worker holds, in the next group's transaction."""
        return await self._put(None)

    async def _put(self, item: Checkpoint | None) -> bool:
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        await self._queue.put((item, fut))
        return await fut

    async def run(self) -> None:
        while True:
            group = [await self._queue.get()]
            if self._interval > 0:
                await asyncio.sleep(self._interval)
            while not self._queue.empty():
                group.append(self._queue.get_nowait())
            try:
                await asyncio.to_thread(self._write, group)
            except Exception as e:
                log.error(
                    "event=checkpoint_failed instance=%s items=%d error=%r",
                    self._owner,
                    len(group),
                    str(e),
                )
                for _, fut in group:
                    if not fut.done():
                        fut.set_exception(e)

    def _write(self, group: list[tuple[Checkpoint | None, asyncio.Future[bool]]]) -> None:
        now = self._clock.now()
        items = [item for item, _ in group if item is not None]
        extend = any(item is None for item, _ in group)
        apply_checkpoints(
            self._engine,
            items,
            now,
            extend=(lambda conn: extend_leases(conn, self._owner, self._ttl, now))
            if extend
            else None,
        )
        for item, fut in group:
            ok = True if item is None else item.accepted
            fut.get_loop().call_soon_threadsafe(_resolve, fut, ok)


def _resolve(fut: asyncio.Future[bool], ok: bool) -> None:
    if not fut.done():
        fut.set_result(ok)
