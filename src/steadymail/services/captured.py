"""The built-in capture server's mailbox (a development inbox in its own SQLite file): opened
for the sink, read by the API and `steadymail captured`."""

from pathlib import Path

from sqlalchemy import Engine

from steadymail.store import capture
from steadymail.store.capture import CapturedSummary


def open_mailbox(path: Path) -> Engine:
    """The mailbox at `path`, its table created if new."""
    return capture.open_capture(path)


def recent(
    mailbox: Engine, limit: int = 50, to: str | None = None, offset: int = 0
) -> list[CapturedSummary]:
    """Messages received, newest first (without their raw source); `to` narrows by recipient."""
    return capture.recent(mailbox, limit, to, offset)


def raw(mailbox: Engine, capture_id: int) -> bytes:
    """One message as received; NotFound if there is none."""
    return capture.raw(mailbox, capture_id)


def count(mailbox: Engine) -> int:
    return capture.count(mailbox)


def deliveries(mailbox: Engine) -> list[tuple[str, float]]:
    """(recipient, received at) of every message received."""
    return capture.deliveries(mailbox)
