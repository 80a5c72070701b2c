"""From a queued message to signed bytes: render, build MIME, sign with DKIM."""

import functools
from dataclasses import dataclass
from typing import Any

from steadymail.sending.dkim_signer import DkimSigner
from steadymail.sending.mime import (
    Envelope,
    build_message,
    message_id_for,
    needs_smtputf8,
    parse_address,
)
from steadymail.sending.render import CompiledTemplate, compile_template, contact_context, render


@dataclass(frozen=True)
class SendInfo:
    """What every message of one send shares."""

    send_id: int
    kind: str
    from_addr: str
    template: CompiledTemplate | None


@dataclass(frozen=True)
class Composed:
    sender: str
    recipient: str
    data: bytes
    smtputf8: bool


@functools.lru_cache(maxsize=256)
def _inline_template(subject: str, html: str, text: str) -> CompiledTemplate:
    return compile_template(subject, html, text)


class Composer:
    """Turns (send, message) into the bytes to hand to SMTP."""

    def __init__(self, signer: DkimSigner, message_id_domain: str) -> None:
        self._signer = signer
        self._domain = message_id_domain

    def compose(
        self,
        send: SendInfo,
        message_id: int,
        email: str,
        attributes: dict[str, Any] | None,
        payload: dict[str, Any] | None,
        now: float,
    ) -> Composed:
        """Raises ValidationError (RenderError included) for a message that can never be sent."""
        template = send.template
        variables = attributes
        from_addr = send.from_addr
        headers: dict[str, str] = {}
        if payload is not None:
            if template is None:
                template = _inline_template(
                    payload["subject"], payload.get("html", ""), payload.get("text", "")
                )
            variables = payload.get("vars") or {}
            from_addr = payload.get("from") or from_addr
            headers = dict(payload.get("headers") or {})
        assert template is not None, "a campaign send always has a template"
        rendered = render(
            template, contact_context(email, variables, {"send": {"id": send.send_id}})
        )
        sender, rcpt = parse_address(from_addr), parse_address(email)
        data = build_message(
            Envelope(
                from_addr=from_addr,
                to_addr=email,
                subject=rendered.subject,
                html=rendered.html,
                text=rendered.text,
                message_id=message_id_for(send.send_id, message_id, email, self._domain),
                date=now,
                headers=headers,
            )
        )
        if self._signer:
            data = self._signer.sign(data, sender.domain)
        return Composed(
            sender.addr_spec, rcpt.addr_spec, data, needs_smtputf8(sender) or needs_smtputf8(rcpt)
        )
