"""The `api` service: the admin and public listeners, two uvicorn servers in one event loop."""

import asyncio
import contextlib
import signal
from collections.abc import Callable, Iterator
from typing import Literal

import uvicorn
from fastapi import FastAPI

from steadymail.api.app import create_app, create_public_app
from steadymail.api.runtime import ApiRuntime
from steadymail.clock import Clock, SystemClock
from steadymail.config import Settings
from steadymail.services.database import Engine

Which = Literal["both", "admin", "public"]


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signals to `Listeners`: uvicorn's own handler would stop
    one server of two, then re-raise the signal and kill the process mid-shutdown."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class Listeners:
    """The listeners of one `api` process, sharing one runtime (events, metrics, presence)."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        clock: Clock | None = None,
        which: Which = "both",
        extend: Callable[[FastAPI], None] | None = None,
    ) -> None:
        """`extend` adds to the admin app before it serves (the CLI mounts the console)."""
        self.runtime = ApiRuntime(settings, engine, clock or SystemClock())
        self.servers: list[uvicorn.Server] = []
        if which in ("both", "admin"):
            admin = create_app(settings, engine, runtime=self.runtime)
            if extend is not None:
                extend(admin)
            self.servers.append(_server(admin, settings.api_host, settings.api_port))
        if which in ("both", "public"):
            public = create_public_app(settings, engine, runtime=self.runtime)
            self.servers.append(_server(public, settings.public_host, settings.public_port))

    @property
    def started(self) -> bool:
        return all(s.started for s in self.servers)

    def stop(self) -> None:
        """Stop every listener gracefully; a second call forces them (a second Ctrl-C)."""
        for s in self.servers:
            if s.should_exit:
                s.force_exit = True
            s.should_exit = True

    async def serve(self) -> None:
        """Serve until `stop`, or until any one listener ends (then the others stop too)."""
        tasks = [asyncio.create_task(s.serve()) for s in self.servers]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for s in self.servers:  # gracefully: only a second signal forces them
                s.should_exit = True
            await asyncio.gather(*tasks)

    async def serve_until_signalled(self) -> None:
        """`serve`, stopping gracefully on SIGTERM or SIGINT (the main thread only)."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)
        await self.serve()


def _server(app: FastAPI, host: str, port: int) -> uvicorn.Server:
    return _Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
