"""From a queued message to signed bytes: render, build MIME, sign with DKIM.

``compose`` is CPU work meant to run off the event loop, under a deadline (the worker runs it
in a thread with ``deadline.within``); it touches no shared state, so its timings come back
with the result and ``record`` files them on the caller's side.
"""

import functools
from collections.abc import Callable
from dataclasses import dataclass
from time import perf_counter
from typing import Any

from steadymail.domain.headers import policy_headers
from steadymail.domain.states import SendKind
from steadymail.errors import ValidationError
from steadymail.metrics import Metrics
from steadymail.sending.deadline import RENDER_SECONDS
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
    kind: SendKind
    from_addr: str
    template: CompiledTemplate | None
    list_id: int | None = None


@dataclass(frozen=True)
class Composed:
    sender: str
    recipient: str
    data: bytes
    smtputf8: bool
    # (stage, seconds) for render, rewrite, mime and dkim.
    timings: tuple[tuple[str, float], ...] = ()


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
        deadline: float = RENDER_SECONDS,
        return_path: Callable[[int, str], str] | None = None,
    ) -> None:
        self._signer = signer
        # (message id, From domain) -> the envelope sender (a VERP address); None: the From.
        self._return_path = return_path
        self._domain = message_id_domain
        self._tracker = tracker
        # Read per message, so a change of version (a flag) takes effect without a restart.
        self._tracking_version = tracking_version
        self._metrics = metrics
        self._tracking_fault = tracking_fault
        # Seconds one message may take from render to signature (enforced by the caller).
        self.deadline = deadline

    def compose(
        self,
        send: SendInfo,
        message_id: int,
        email: str,
        attributes: dict[str, Any] | None,
        payload: dict[str, Any] | None,
        now: float,
    ) -> Composed:
        """Raises ValidationError (RenderError included) for a message that can never be sent.

        Other exceptions are possible (a signer's failure); a caller fails the message on any."""
        template = send.template
        variables = attributes
        from_addr = send.from_addr
        headers: dict[str, str] = {}
        list_unsubscribe = send.kind == SendKind.CAMPAIGN
        if payload is not None:
            if template is None:
                template = _inline_template(
                    payload["subject"], payload.get("html", ""), payload.get("text", "")
                )
            variables = payload.get("vars") or {}
            if not isinstance(variables, dict):
                raise ValidationError("message payload: vars is not an object")
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
            check_depth=not template.html_fixed_structure,
        )
        t2 = perf_counter()
        if list_unsubscribe:
            headers.update(self._tracker.list_unsubscribe(unsubscribe_url, self._domain))
        headers.update(
            policy_headers(send.kind.value, send.send_id, send.list_id, self._domain, headers)
        )
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
        timings = [("render", t1 - t0), ("rewrite", t2 - t1), ("mime", t3 - t2)]
        if self._signer:
            timings.append(("dkim", perf_counter() - t3))
        envelope_from = (
            self._return_path(message_id, sender.domain) if self._return_path else sender.addr_spec
        )
        return Composed(
            envelope_from,
            rcpt.addr_spec,
            data,
            needs_smtputf8(sender) or needs_smtputf8(rcpt),
            tuple(timings),
        )

    def record(self, composed: Composed, now: float) -> None:
        """File one composition's stage timings (on the thread that owns the metrics)."""
        if self._metrics:
            for stage, seconds in composed.timings:
                self._metrics.observe(stage, seconds, now)
