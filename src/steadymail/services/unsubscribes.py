"""An unsubscribe by its signed link (the page's button or RFC 8058 one-click)."""

from sqlalchemy import Engine

from steadymail.clock import Clock
from steadymail.store import tracking


def by_link(engine: Engine, clock: Clock, message_id: int) -> str:
    """Suppress the message's recipient from newsletters (never from transactional mail), now;
    returns the address. NotFound for an unknown message; a repeat writes nothing."""
    return tracking.unsubscribe(engine, message_id, clock.now())
