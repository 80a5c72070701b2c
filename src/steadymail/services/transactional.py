"""Transactional messages: one API call, one or more recipients, the same durable pipeline."""

import time
from typing import Any

from sqlalchemy import Engine

from steadymail.clock import Clock
from steadymail.config import Settings
from steadymail.domain.headers import BadHeader, check_custom_headers
from steadymail.errors import ValidationError
from steadymail.sending.deadline import RENDER_SECONDS
from steadymail.sending.mime import parse_address
from steadymail.sending.render import (
    RenderError,
    check_template,
    check_variables,
    contact_context,
    render_within,
)
from steadymail.services import domains
from steadymail.store import sends, templates
from steadymail.tracking.rewrite import check_html_depth

STREAM = "transactional"
# The time one request may spend rendering its recipients' messages, all together.
REQUEST_RENDER_SECONDS = 10.0


def enqueue(
    engine: Engine,
    clock: Clock,
    settings: Settings,
    *,
    to: list[str],
    template: int | str | None = None,
    subject: str | None = None,
    html: str = "",
    text: str = "",
    variables: dict[str, Any] | None = None,
    from_addr: str | None = None,
    headers: dict[str, str] | None = None,
    stream: str = STREAM,
    list_unsubscribe: bool = False,
) -> dict[str, Any]:
    """Validate everything a worker would need, then queue one message per recipient."""
    if not to:
        raise ValidationError("at least one recipient is required")
    if template is not None:
        t = templates.get_template(engine, template)
        subject, html, text = t.subject, t.html, t.text
    if subject is None:
        raise ValidationError("give either a template or a subject with html and/or text")
    compiled = check_template(subject, html, text)
    variables = variables or {}
    check_variables(compiled, set(variables))
    sender = from_addr or settings.default_from
    domains.check_sender(engine, settings, parse_address(sender).domain)
    try:
        check_custom_headers(headers or {}, list_unsubscribe=list_unsubscribe)
    except BadHeader as e:
        raise ValidationError(str(e)) from e
    items = []
    # One budget for the whole request, not one per recipient: a thousand recipients of a
    # template just under the per-render deadline must not hold an API thread for half an hour.
    deadline = time.monotonic() + REQUEST_RENDER_SECONDS
    for rcpt in to:
        addr = parse_address(rcpt)
        left = deadline - time.monotonic()
        if left <= 0:
            raise RenderError(
                f"rendering this request's {len(to)} recipients took over "
                f"{REQUEST_RENDER_SECONDS:.0f} s: send fewer per request, or a lighter template"
            )
        # Render once now so that a recipient-independent error is a 422, not a failed message.
        # Within the render budget: any failure is a RenderError, so the API answers 422.
        rendered = render_within(
            compiled, contact_context(addr.addr_spec, variables), min(RENDER_SECONDS, left)
        )
        check_html_depth(rendered.html)
        items.append(
            (
                rcpt,
                {
                    "subject": subject,
                    "html": html,
                    "text": text,
                    "vars": variables,
                    "from": sender,
                    "headers": headers or {},
                    "list_unsubscribe": list_unsubscribe,
                },
            )
        )
    now = clock.now()
    send_id = sends.stream_send_id(engine, stream, sender, now)
    ids = sends.enqueue_stream_messages(engine, send_id, items, now)
    return {"send_id": send_id, "message_ids": ids}
