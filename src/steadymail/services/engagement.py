"""What recipients did with a send: delivered, opens, clicks (people and machines apart),
unsubscribes, clicks per link. The API's `GET /v1/sends/{id}/stats` and `steadymail stats`."""

import math

from sqlalchemy import Engine

from steadymail.store import sends, tracking
from steadymail.store.tracking import SendStats


def send_stats(engine: Engine, send_id: int) -> SendStats:
    """The send's engagement; NotFound if there is no such send (rather than all zeros)."""
    sends.get_send(engine, send_id)
    return tracking.send_stats(engine, send_id)


def over_time(engine: Engine, send_id: int, now: float, points: int = 120) -> dict[str, object]:
    """Human opens and clicks per interval from the send's start until `now`, in about
    `points` intervals of whole minutes: what the console's chart draws."""
    send = sends.get_send(engine, send_id)
    start = send.started_at or send.created_at
    span = max(0.0, now - start)
    bucket = 60.0 * max(1, math.ceil(span / points / 60))
    rows = tracking.engagement_over_time(engine, send_id, bucket)
    return {
        "bucket": bucket,
        # Whole intervals, so the first one (begun before the send) is inside the chart.
        "window": [math.floor(start / bucket) * bucket, math.ceil(now / bucket) * bucket],
        "t": [r[0] for r in rows],
        "opens": [r[1] for r in rows],
        "clicks": [r[2] for r in rows],
    }
