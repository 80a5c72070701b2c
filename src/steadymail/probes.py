"""`/livez` and `/readyz` for processes without an HTTP server of their own (workers, monitor),
for Kubernetes probes and load balancers. A few lines of HTTP/1.0 on asyncio: the answer comes
from the process's own event loop, so a blocked loop fails the liveness probe, as it should."""

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable

from steadymail.config import Settings

log = logging.getLogger("steadymail.probes")


async def serve_probes(
    host: str, port: int, live: Callable[[], bool], ready: Callable[[], bool]
) -> asyncio.Server:
    """Start serving; the caller closes the returned server."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 5)
            parts = line.decode("latin-1").split()
            path = parts[1] if len(parts) >= 2 else ""
            check = {"/livez": live, "/readyz": ready}.get(path.split("?", 1)[0])
            if check is None:
                status, body = "404 Not Found", {"error": "no such probe; /livez or /readyz"}
            else:
                ok = check()
                status = "200 OK" if ok else "503 Service Unavailable"
                body = {"status": "ok" if ok else "failing", "probe": path}
            data = json.dumps(body).encode()
            writer.write(
                f"HTTP/1.0 {status}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode()
                + data
            )
            await writer.drain()
        except (TimeoutError, ConnectionError) as e:
            log.debug("event=probe_request_failed error=%r", str(e))
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    server = await asyncio.start_server(handle, host, port)
    log.info("event=probes_listening host=%s port=%d", host, port)
    return server


async def serve_health(settings: Settings, ready: Callable[[], bool]) -> asyncio.Server | None:
    """A process's probes on ``health_port`` (None when it is 0): live while its event loop
    answers (a database outage must not have every process restarted), ready when ``ready``
    says so. The caller closes the returned server."""
    if not settings.health_port:
        return None
    return await serve_probes(settings.health_host, settings.health_port, lambda: True, ready)
