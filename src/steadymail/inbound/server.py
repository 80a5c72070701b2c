"""`steadymail inbound`: the SMTP endpoint for what comes back.

Three kinds of recipient, everything else refused at RCPT (550), so it is never an open relay
and never a source of backscatter:

- `bounces+<id>-<mac>@<any domain>`, a message's VERP return path (domain/verp.py; the mac
  must verify): delivery status notifications and other bounces. Each is kept whole, then read
  and applied (inbound/process.py): a hard bounce fails the message and suppresses the address,
  a soft one is counted, an auto-reply is ignored, what cannot be read waits for review.
- `<complaints_local_part>@<any domain>` (`fbl@`): feedback-loop complaints (ARF), tied to
  the message by the return path of the original they quote.
- `unsubscribe@<message_id_domain>`: the mailto half of List-Unsubscribe. The subject carries
  the signed token the message's `List-Unsubscribe` header gave; a valid one suppresses the
  recipient from newsletters at once, like the one-click POST; anything else is refused.

Point the MX of the bounce domain (and the feedback loops and the unsubscribe address) here.

The listener faces the internet: a message over `max_size` bytes is refused (552) before it is
buffered whole, database work runs in a thread so one slow write never stalls other sessions,
and an error tells the client only a generic 451 (the detail goes to our log).
"""

import asyncio
import email
import email.policy
import logging
import time
from collections.abc import Sequence
from typing import Any

from aiosmtpd.controller import Controller
from sqlalchemy import Engine

from steadymail.config import Settings
from steadymail.domain.verp import message_of
from steadymail.errors import NotFound
from steadymail.inbound.process import process
from steadymail.store import inbound as store_inbound
from steadymail.store import tracking as store
from steadymail.store.tracking import TrackingEvent
from steadymail.tracking.tokens import InvalidToken, Kind, TokenData, TokenSigner

log = logging.getLogger("steadymail.inbound")

# A bounce quotes the original message: a megabyte is plenty.
DEFAULT_MAX_SIZE = 1024 * 1024
_TRY_LATER = "451 4.3.0 temporary failure, try again later"
_REFUSED = "550 5.7.1 not a valid unsubscribe request"


class InboundHandler:
    def __init__(
        self,
        engine: Engine,
        signer: TokenSigner,
        domain: str,
        settings: Settings | None = None,
        verp_keys: Sequence[bytes] = (),
    ) -> None:
        self._engine, self._signer = engine, signer
        self._address = f"unsubscribe@{domain}".lower()
        self._settings = settings
        self._keys = tuple(verp_keys)
        self._complaints = (settings.complaints_local_part if settings else "fbl").lower()
        self.processed = 0
        self.errors = 0
        self.reports = 0

    def _reports_to(self, address: str) -> bool:
        """A return path whose mac verifies, or the complaints mailbox."""
        if self._settings is None:
            return False
        local = address.rpartition("@")[0].lower()
        return local == self._complaints or message_of(address, self._keys) is not None

    async def handle_RCPT(
        self,
        server: Any,
        session: Any,
        envelope: Any,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if address.lower() != self._address and not self._reports_to(address):
            return "550 5.1.1 no such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        data = envelope.original_content or envelope.content
        try:
            reply = "250 2.0.0 received"
            for rcpt in envelope.rcpt_tos:
                if rcpt.lower() == self._address:
                    reply = await self._unsubscribe(data)
                else:
                    await self._report(str(envelope.mail_from or ""), rcpt, data)
            return reply
        except Exception:
            return self._failed("handle_DATA")

    async def _report(self, mail_from: str, rcpt: str, data: bytes) -> None:
        """Kept first (a failure here is a 451: the sender tries again, nothing is lost), then
        read; a failure to read leaves it kept for review and still answers 250."""
        assert self._settings is not None
        now = time.time()
        report_id = await asyncio.to_thread(
            store_inbound.keep, self._engine, now, mail_from, rcpt, data
        )
        self.reports += 1
        try:
            await asyncio.to_thread(
                process, self._engine, self._settings, self._keys, report_id, rcpt, data, now
            )
        except Exception:
            self.errors += 1
            log.exception("event=inbound_report_failed id=%d", report_id)
            await asyncio.to_thread(
                store_inbound.settle, self._engine, report_id, "", None, "review", "failed to apply"
            )

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
    settings: Settings | None = None,
    verp_keys: Sequence[bytes] = (),
) -> tuple[Controller, InboundHandler]:
    """Start the listener. Without `settings` it takes only unsubscribe mail."""
    handler = InboundHandler(engine, signer, domain, settings, verp_keys)
    controller = Controller(handler, hostname=host, port=port, data_size_limit=max_size)
    controller.start()
    return controller, handler
