"""What recipients did with a send: delivered, opens, clicks (people and machines apart),
unsubscribes, clicks per link. The API's `GET /v1/sends/{id}/stats` and `steadymail stats`."""

from sqlalchemy import Engine

from steadymail.store import sends, tracking
from steadymail.store.tracking import SendStats


def send_stats(engine: Engine, send_id: int) -> SendStats:
    """The send's engagement; NotFound if there is no such send (rather than all zeros)."""
    sends.get_send(engine, send_id)
    return tracking.send_stats(engine, send_id)
