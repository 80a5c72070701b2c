"""The mailto half of List-Unsubscribe: an SMTP endpoint for `unsubscribe@<domain>` mail.

Point the MX (or a relay rule) for that address here. The subject carries the signed token the
message's `List-Unsubscribe` header gave; a valid one suppresses the recipient from newsletters
at once, like the one-click POST. Anything else is refused with a permanent error, never
silently dropped.

The listener faces the internet: a message over `max_size` bytes is refused (552) before it is
buffered whole, database work runs in a thread so one slow write never stalls other sessions,
and an error tells the client only a generic 451 (the detail goes to our log).
"""

import asyncio
import email
import email.policy
import logging
import time
from typing import Any

from aiosmtpd.controller import Controller
from sqlalchemy import Engine

from steadymail.errors import NotFound
from steadymail.store import tracking as store
from steadymail.store.tracking import TrackingEvent
from steadymail.tracking.tokens import InvalidToken, Kind, TokenData, TokenSigner

log = logging.getLogger("steadymail.inbound")

# Unsubscribe requests are a subject line; nothing legitimate comes near this.
DEFAULT_MAX_SIZE = 64 * 1024
_TRY_LATER = "451 4.3.0 temporary failure, try again later"
_REFUSED = "550 5.7.1 not a valid unsubscribe request"


class UnsubscribeHandler:
    def __init__(self, engine: Engine, signer: TokenSigner, domain: str) -> None:
        self._engine, self._signer = engine, signer
        self._address = f"unsubscribe@{domain}".lower()
        self.processed = 0
        self.errors = 0

    async def handle_RCPT(
        self,
        server: Any,
        session: Any,
        envelope: Any,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if address.lower() != self._address:
            return "550 5.1.1 no such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        try:
            return await self._unsubscribe(envelope.original_content or envelope.content)
        except Exception:
            return self._failed("handle_DATA")

    async def handle_exception(self, error: Exception) -> str:
        """aiosmtpd's default would echo the exception's text to the client."""
        return self._failed("session", error)

    def _failed(self, where: str, error: BaseException | None = None) -> str:
        self.errors += 1
        log.error("event=inbound_error where=%s", where, exc_info=error or True)
        return _TRY_LATER

    async def _unsubscribe(self, data: bytes) -> str:
        msg = email.message_from_bytes(data, policy=email.policy.default)
        words = str(msg.get("Subject", "")).split()
        token = words[-1] if words and words[0].lower() == "unsubscribe" else ""
        try:
            parsed = self._signer.verify(token)
            if parsed.kind != Kind.UNSUBSCRIBE:
                raise InvalidToken("not an unsubscribe token")
            await asyncio.to_thread(self._record, parsed)
        except (InvalidToken, NotFound):
            return _REFUSED
        self.processed += 1
        log.info("event=unsubscribed_by_mail send=%d message=%d", parsed.send_id, parsed.message_id)
        return "250 2.0.0 unsubscribed"

    def _record(self, parsed: TokenData) -> None:
        now = time.time()
        store.unsubscribe(self._engine, parsed.message_id, now)
        store.insert_events(
            self._engine,
            [
                TrackingEvent(
                    kind="unsubscribe",
                    send_id=parsed.send_id,
                    message_id=parsed.message_id,
                    at=now,
                    method="MAIL",
                )
            ],
        )


def start_inbound(
    engine: Engine,
    signer: TokenSigner,
    domain: str,
    host: str,
    port: int,
    max_size: int = DEFAULT_MAX_SIZE,
) -> tuple[Controller, UnsubscribeHandler]:
    handler = UnsubscribeHandler(engine, signer, domain)
    controller = Controller(handler, hostname=host, port=port, data_size_limit=max_size)
    controller.start()
    return controller, handler
