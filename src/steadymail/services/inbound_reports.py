"""Reports `steadymail inbound` kept (bounces, complaints, what it could not read): listed,
shown whole, and read again after a fix (a message released, a key restored)."""

from sqlalchemy import Engine

from steadymail.clock import Clock
from steadymail.config import Settings
from steadymail.errors import NotFound, ValidationError
from steadymail.inbound.process import Outcome, process
from steadymail.store import inbound
from steadymail.store.inbound import ReportRow
from steadymail.tracking.keys import load_tracking_secrets

__all__ = ["Outcome", "ReportRow"]

STATUSES = ("received", "applied", "ignored", "review")


def listing(
    engine: Engine, status: str | None = None, limit: int = 100, offset: int = 0
) -> list[ReportRow]:
    if status is not None and status not in STATUSES:
        raise ValidationError(f"status is one of {', '.join(STATUSES)}")
    return inbound.reports(engine, status, limit, offset)


def raw(engine: Engine, report_id: int) -> bytes:
    data = inbound.raw_report(engine, report_id)
    if data is None:
        raise NotFound(f"no inbound report {report_id}")
    return data


def reprocess(engine: Engine, clock: Clock, settings: Settings, report_id: int) -> Outcome:
    """Read a kept report again and apply it (a repeat of an applied one changes nothing)."""
    row = inbound.report(engine, report_id)
    if row is None:
        raise NotFound(f"no inbound report {report_id}")
    data = raw(engine, report_id)
    rcpt = row.rcpt
    keys = load_tracking_secrets(settings).verp_keys
    return process(engine, settings, keys, report_id, rcpt, data, clock.now())
