"""The built-in SMTP capture server (aiosmtpd): accepts everything, keeps it for inspection."""

import asyncio
import email
import email.policy
import logging
import threading
import time
from typing import Any

from aiosmtpd.controller import Controller
from sqlalchemy import Engine

from steadymail.store import capture
from steadymail.store.capture import CapturedMail

log = logging.getLogger("steadymail.sink")


class CaptureHandler:
    """aiosmtpd handler that buffers messages and writes them in groups."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._pending: list[CapturedMail] = []
        # aiosmtpd runs in its own thread; flush runs in another.
        self._lock = threading.Lock()
        self.received = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        data: bytes = envelope.original_content or envelope.content
        headers = email.message_from_bytes(
            data.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n", policy=email.policy.default
        )
        mail = CapturedMail(
            received_at=time.time(),
            mail_from=envelope.mail_from or "",
            rcpt_to=",".join(envelope.rcpt_tos),
            subject=str(headers.get("Subject", "")),
            message_id=str(headers.get("Message-ID", "")),
            size=len(data),
            data=data,
        )
        with self._lock:
            self._pending.append(mail)
            self.received += 1
        return "250 2.0.0 OK: captured"

    def flush(self) -> None:
        with self._lock:
            mails, self._pending = self._pending, []
        capture.store(self._engine, mails)


def start_sink(engine: Engine, host: str, port: int) -> tuple[Controller, CaptureHandler]:
    """Start the capture server in a background thread; returns its controller and handler."""
    handler = CaptureHandler(engine)
    controller = Controller(
        handler, hostname=host, port=port, enable_SMTPUTF8=True, data_size_limit=50 * 1024 * 1024
    )
    controller.start()
    return controller, handler


async def flush_forever(handler: CaptureHandler, interval: float = 0.05) -> None:
    while True:
        await asyncio.sleep(interval)
        await asyncio.to_thread(handler.flush)
