"""The mailto half of List-Unsubscribe: an SMTP endpoint for `unsubscribe@<domain>` mail.

Point the MX (or a relay rule) for that address here. The subject carries the signed token the
message's `List-Unsubscribe` header gave; a valid one suppresses the recipient at once, like the
one-click POST. Anything else is refused with a permanent error, never silently dropped.
"""

import email
import email.policy
import logging
import time
from typing import Any

from aiosmtpd.controller import Controller
from sqlalchemy import Engine

from steadymail.errors import NotFound
from steadymail.store import tracking as store
from steadymail.tracking.tokens import InvalidToken, Kind, TokenSigner

log = logging.getLogger("steadymail.inbound")


class UnsubscribeHandler:
    def __init__(self, engine: Engine, signer: TokenSigner, domain: str) -> None:
        self._engine, self._signer = engine, signer
        self._address = f"unsubscribe@{domain}".lower()
        self.processed = 0

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
        data: bytes = envelope.original_content or envelope.content
        msg = email.message_from_bytes(data, policy=email.policy.default)
        words = str(msg.get("Subject", "")).split()
        token = words[-1] if words and words[0].lower() == "unsubscribe" else ""
        try:
            parsed = self._signer.verify(token)
            if parsed.kind != Kind.UNSUBSCRIBE:
                raise InvalidToken("not an unsubscribe token")
            store.unsubscribe(self._engine, parsed.message_id, time.time())
        except (InvalidToken, NotFound):
            return "550 5.7.1 not a valid unsubscribe request"
        store.insert_events(
            self._engine,
            [
                {
                    "kind": "unsubscribe",
                    "send_id": parsed.send_id,
                    "message_id": parsed.message_id,
                    "link": 0,
                    "url": "",
                    "at": time.time(),
                    "method": "MAIL",
                    "user_agent": "",
                    "ip_hash": "",
                    "machine": 0,
                    "reason": "",
                }
            ],
        )
        self.processed += 1
        log.info("event=unsubscribed_by_mail send=%d message=%d", parsed.send_id, parsed.message_id)
        return "250 2.0.0 unsubscribed"


def start_inbound(
    engine: Engine, signer: TokenSigner, domain: str, host: str, port: int
) -> tuple[Controller, UnsubscribeHandler]:
    handler = UnsubscribeHandler(engine, signer, domain)
    controller = Controller(handler, hostname=host, port=port)
    controller.start()
    return controller, handler
