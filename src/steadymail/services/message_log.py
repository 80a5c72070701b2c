"""The message log: every recipient's history, searched by address."""

from sqlalchemy import Engine

from steadymail.errors import ValidationError
from steadymail.store import message_log, sends
from steadymail.store.message_log import LoggedMessage, MessageEvent

__all__ = ["LoggedMessage", "MessageEvent"]


def search(engine: Engine, to: str, limit: int = 50, offset: int = 0) -> list[LoggedMessage]:
    """Messages to `to` (any spelling), newest first, each with its history."""
    if "@" not in to or len(to) > 320:
        raise ValidationError("'to' is an address")
    return message_log.search(engine, to, limit, offset)


def history(engine: Engine, message_id: int) -> list[MessageEvent]:
    """One message's history (NotFound if there is no such message)."""
    sends.get_message(engine, message_id)
    return message_log.history(engine, message_id)
