"""A reader-writer gate for in-flight windows within one worker process.

Ordinary windows run side by side. A suspect message (one that was in flight when a holder
died) runs alone, with nothing else in flight in the process: if it is a poison message and
kills the worker again, no innocent message is blamed with it.
"""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class SuspectGate:
    def __init__(self) -> None:
        self._cond = asyncio.Condition()
        self._shared = 0
        self._exclusive = False
        self._waiting = 0  # suspects waiting: new ordinary windows hold back, so they get a turn

    @asynccontextmanager
    async def ordinary(self) -> AsyncIterator[None]:
        async with self._cond:
            await self._cond.wait_for(lambda: not self._exclusive and not self._waiting)
            self._shared += 1
        try:
            yield
        finally:
            async with self._cond:
                self._shared -= 1
                self._cond.notify_all()

    @asynccontextmanager
    async def alone(self) -> AsyncIterator[None]:
        async with self._cond:
            self._waiting += 1
            try:
                await self._cond.wait_for(lambda: not self._exclusive and self._shared == 0)
            finally:
                # Also when cancelled while waiting: a count left behind would hold back every
                # ordinary window for good.
                self._waiting -= 1
                self._cond.notify_all()
            self._exclusive = True
        try:
            yield
        finally:
            async with self._cond:
                self._exclusive = False
                self._cond.notify_all()
