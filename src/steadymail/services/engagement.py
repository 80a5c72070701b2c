"""What recipients did with a send: delivered, opens, clicks (people and machines apart),
unsubscribes, clicks per link. The API's `GET /v1/sends/{id}/stats` and `steadymail stats`."""

from typing import Any

from sqlalchemy import Engine

from steadymail.store import sends, tracking


def send_stats(engine: Engine, send_id: int) -> dict[str, Any]:
    """The send's engagement; NotFound if there is no such send (rather than all zeros)."""
    sends.get_send(engine, send_id)
    return tracking.send_stats(engine, send_id)
