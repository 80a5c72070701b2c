"""What the admin and public apps of one process share, started once and stopped once.

Both listeners of the `api` service record to one event buffer, export one set of metrics and
register one service instance; whichever app starts first starts them, the last to stop stops
them (so a clean shutdown still flushes every click, open and unsubscribe)."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy import Engine

from steadymail.api.deps import AppState
from steadymail.clock import Clock
from steadymail.config import Settings
from steadymail.metrics import Metrics, SeriesFlusher
from steadymail.presence import ServicePresence
from steadymail.tracking.events import EventRecorder
from steadymail.tracking.keys import load_tracking_secrets


class ApiRuntime:
    """The shared state of the `api` service's apps and the lifecycle of its side tasks."""

    def __init__(self, settings: Settings, engine: Engine, clock: Clock) -> None:
        secrets = load_tracking_secrets(settings)
        recorder = EventRecorder(
            engine,
            clock,
            secrets.ip_hash_key,
            settings.scanner_click_window,
            settings.tracking_flush_interval,
            max_pending=settings.tracking_buffer_max,
        )
        self.state = AppState(
            settings,
            engine,
            clock,
            settings.resolved_capture_db(),
            secrets.signer,
            recorder,
            Metrics(settings.region, settings.metrics_interval),
        )
        self._users = 0
        self._lock = asyncio.Lock()
        self._stop: list[asyncio.Task[None]] = []
        self._presence: ServicePresence | None = None
        self._flusher: SeriesFlusher | None = None

    async def _start(self) -> None:
        st = self.state
        self._stop = [asyncio.create_task(st.recorder.run())]
        self._presence = ServicePresence(st.engine, st.clock, st.settings, "api")
        await self._presence.start()
        self._flusher = SeriesFlusher(st.metrics, st.engine, st.clock, self._presence.instance_id)
        self._stop.append(asyncio.create_task(self._flusher.run()))

    async def _end(self) -> None:
        for task in reversed(self._stop):
            task.cancel()
        if self._flusher is not None:
            await self._flusher.flush(final=True)
        # A clean shutdown loses no recorded click, open or unsubscribe.
        await self.state.recorder.close()
        if self._presence is not None:
            await self._presence.stop("graceful")

    @asynccontextmanager
    async def lifespan(self, _app: FastAPI) -> AsyncIterator[None]:
        """An app's lifespan: the first app up starts the side tasks, the last one down ends
        them."""
        async with self._lock:
            if self._users == 0:
                try:
                    await self._start()
                except BaseException:
                    for task in self._stop:  # the process is going down: leave nothing running
                        task.cancel()
                    raise
            self._users += 1
        try:
            yield
        finally:
            async with self._lock:
                self._users -= 1
                if self._users == 0:
                    await self._end()
