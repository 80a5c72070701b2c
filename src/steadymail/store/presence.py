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


def new_instance_id(service: str) -> str:
    """Unique per process start: `<service>-<host>-<pid>-<random>`."""
    return f"{service}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


async def register_self(
    engine: Engine, settings: Settings, service: str, instance_id: str, now: float, slot: str = ""
) -> None:
    """Announce this process in the registry (off the event loop)."""
    await asyncio.to_thread(
        instances.register,
        engine,
        instance_id=instance_id,
        service=service,
        region=settings.region,
        host=socket.gethostname(),
        pid=os.getpid(),
        version=__version__,
        now=now,
        slot=settings.slot or slot,
    )


class ServicePresence:
    """For processes without a lease loop of their own (api, control)."""

    def __init__(self, engine: Engine, clock: Clock, settings: Settings, service: str) -> None:
        self._engine, self._clock, self._settings, self._service = engine, clock, settings, service
        self.instance_id = new_instance_id(service)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await register_self(
            self._engine,
            self._settings,
            self._service,
            self.instance_id,
            self._clock.now(),
            slot=self._service,
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
