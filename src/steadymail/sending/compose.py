"""From a queued message to signed bytes: render, build MIME, sign with DKIM."""

import functools
from collections.abc import Callable
from dataclasses import dataclass
from time import perf_counter
from typing import Any

from steadymail.metrics import Metrics
from steadymail.sending.dkim_signer import DkimSigner
from steadymail.sending.mime import (
    Envelope,
    build_message,
    message_id_for,
    needs_smtputf8,
    parse_address,
)
from steadymail.sending.render import CompiledTemplate, compile_template, contact_context, render
from steadymail.tracking.tracker import Tracker


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

    def __init__(
        self,
        signer: DkimSigner,
        message_id_domain: str,
        tracker: Tracker,
        tracking_version: Callable[[], str],
        metrics: Metrics | None = None,
        tracking_fault: Callable[[], int] | None = None,
    ) -> None:
        self._signer = signer
        self._domain = message_id_domain
        self._tracker = tracker
        # Read per message, so a change of version (a flag) takes effect without a restart.
        self._tracking_version = tracking_version
        self._metrics = metrics
        self._tracking_fault = tracking_fault

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
        list_unsubscribe = send.kind == "campaign"
        if payload is not None:
            if template is None:
                template = _inline_template(
                    payload["subject"], payload.get("html", ""), payload.get("text", "")
                )
            variables = payload.get("vars") or {}
            from_addr = payload.get("from") or from_addr
            headers = dict(payload.get("headers") or {})
            list_unsubscribe = bool(payload.get("list_unsubscribe"))
        assert template is not None, "a campaign send always has a template"
        unsubscribe_url = self._tracker.unsubscribe_url(send.send_id, message_id)
        context = contact_context(
            email, variables, {"send": {"id": send.send_id}, "unsubscribe_url": unsubscribe_url}
        )
        t0 = perf_counter()
        rendered = render(template, context)
        t1 = perf_counter()
        html, text = self._tracker.rewrite(
            self._tracking_version(),
            send.send_id,
            message_id,
            rendered.html,
            rendered.text,
            self._tracking_fault() if self._tracking_fault else 0,
        )
        t2 = perf_counter()
        if list_unsubscribe:
            headers.update(self._tracker.list_unsubscribe(unsubscribe_url, self._domain))
        sender, rcpt = parse_address(from_addr), parse_address(email)
        data = build_message(
            Envelope(
                from_addr=from_addr,
                to_addr=email,
                subject=rendered.subject,
                html=html,
                text=text,
                message_id=message_id_for(send.send_id, message_id, email, self._domain),
                date=now,
                headers=headers,
            )
        )
        t3 = perf_counter()
        if self._signer:
            data = self._signer.sign(data, sender.domain)
        if self._metrics:
            m = self._metrics
            m.observe("render", t1 - t0, now)
            m.observe("rewrite", t2 - t1, now)
            m.observe("mime", t3 - t2, now)
            if self._signer:
                m.observe("dkim", perf_counter() - t3, now)
        return Composed(
            sender.addr_spec, rcpt.addr_spec, data, needs_smtputf8(sender) or needs_smtputf8(rcpt)
        )
