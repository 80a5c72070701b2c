"""Sends as people read them: the listing, one send, and its messages. (Creating and steering
a campaign: services/campaigns.py; its engagement: services/engagement.py.)"""

from typing import Any

from sqlalchemy import Engine

from steadymail.store import sends


def listing(engine: Engine, limit: int | None = None, offset: int = 0) -> list[dict[str, Any]]:
    """Sends, oldest first."""
    return sends.all_sends(engine, limit, offset)


def get(engine: Engine, send_id: int) -> dict[str, Any]:
    """One send; NotFound if there is none."""
    return sends.get_send(engine, send_id)


def messages(
    engine: Engine, send_id: int, limit: int = 100, offset: int = 0
) -> list[dict[str, Any]]:
    """A send's messages in the order they were queued, without their payloads."""
    rows = sends.message_rows(engine, send_id, limit, offset)
    for r in rows:
        r.pop("payload", None)
    return rows
