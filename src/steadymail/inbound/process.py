"""One inbound report read and applied: classified, tied to the message its return path names
(a VERP address whose signature verifies), then the bounce or complaint applied to it.

What cannot be tied to a message we sent, or cannot be read, is kept with `status = review`
and logged: nothing is guessed from an unsigned header, since a forged bounce would otherwise
suppress whoever it names.
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Engine

from steadymail.config import Settings
from steadymail.domain.verp import message_of
from steadymail.inbound.classify import Kind, Report, classify
from steadymail.store import inbound

log = logging.getLogger("steadymail.inbound")


@dataclass(frozen=True)
class Outcome:
    report_id: int
    kind: Kind
    status: str  # applied | ignored | review
    message_id: int | None
    detail: str


def process(
    engine: Engine,
    settings: Settings,
    keys: Sequence[bytes],
    report_id: int,
    rcpt: str,
    raw: bytes,
    now: float,
) -> Outcome:
    """Read and apply the kept report `report_id` (received for `rcpt`)."""
    report = classify(raw)
    message_id = message_of(rcpt, keys)
    if message_id is None and report.original_return_path:
        message_id = message_of(report.original_return_path, keys)
    status, detail = _apply(engine, settings, report, message_id, now)
    inbound.settle(engine, report_id, report.kind.value, message_id, status, detail)
    log.log(
        logging.WARNING if status == "review" else logging.INFO,
        "event=inbound_report id=%d kind=%s status=%s message=%s how=%s detail=%r",
        report_id,
        report.kind.value,
        status,
        message_id,
        report.how,
        detail[:200],
    )
    return Outcome(report_id, report.kind, status, message_id, detail)


def _apply(
    engine: Engine, settings: Settings, report: Report, message_id: int | None, now: float
) -> tuple[str, str]:
    if report.kind == Kind.AUTOREPLY:
        return "ignored", "an auto-reply, not a bounce"
    if report.kind == Kind.UNKNOWN:
        return "review", "; ".join(report.notes) or "not recognised"
    if message_id is None:
        return "review", f"a {report.kind.value} that names no message of ours (no valid VERP)"
    if report.kind == Kind.COMPLAINT:
        done = inbound.complaint(engine, message_id, now, report.diagnostic)
    else:
        done = inbound.bounce(
            engine,
            message_id,
            hard=report.kind == Kind.HARD_BOUNCE,
            at=now,
            status=report.status,
            diagnostic=report.diagnostic,
            soft_limit=settings.soft_bounce_limit,
            soft_window=settings.soft_bounce_window,
        )
    if done is None:
        return "review", f"message {message_id} does not exist (any more)"
    stream = done.suppressed.value if done.suppressed else "none"
    return "applied", f"{done.email}: suppressed in {stream}" + (
        "; sent -> bounced" if done.state_changed else ""
    )
