"""A process's presence in the registry: register, heartbeat, say goodbye."""

import asyncio
import contextlib
import os
import socket
import uuid

from sqlalchemy import Engine

from steadymail import __version__
from steadymail.clock import Clock
from steadymail.config import Settings
from steadymail.store import instances


class ServicePresence:
    """For processes without a lease loop of their own (api, control)."""

    def __init__(self, engine: Engine, clock: Clock, settings: Settings, service: str) -> None:
        self._engine, self._clock, self._settings, self._service = engine, clock, settings, service
        self.instance_id = f"{service}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await asyncio.to_thread(
            instances.register,
            self._engine,
            instance_id=self.instance_id,
            service=self._service,
            region=self._settings.region,
            host=socket.gethostname(),
            pid=os.getpid(),
            version=__version__,
            now=self._clock.now(),
            slot=self._settings.slot or self._service,
        )
        self._task = asyncio.create_task(self._beat())

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self._settings.resolved_heartbeat_interval())
            with contextlib.suppress(Exception):
                await asyncio.to_thread(
                    instances.heartbeat, self._engine, self.instance_id, self._clock.now()
                )

    async def stop(self, reason: str) -> None:
        if self._task:
            self._task.cancel()
        await asyncio.to_thread(
            instances.stopped, self._engine, self.instance_id, reason, self._clock.now()
        )
