"""Sends as people read them: the listing, one send, and its messages. (Creating and steering
a campaign: services/campaigns.py; its engagement: services/engagement.py.)"""

from sqlalchemy import Engine

from steadymail.domain.states import SendState
from steadymail.store import sends
from steadymail.store.sends import Message, Send, SendProgress

__all__ = ["Message", "Send", "SendProgress", "active", "get", "listing", "messages", "newest"]

# What the console's overview calls active: work that is, or will be, under way.
ACTIVE = (SendState.RUNNING, SendState.PAUSED, SendState.SCHEDULED)


def listing(engine: Engine, limit: int | None = None, offset: int = 0) -> list[Send]:
    """Sends, oldest first."""
    return sends.all_sends(engine, limit, offset)


def get(engine: Engine, send_id: int) -> Send:
    """One send; NotFound if there is none."""
    return sends.get_send(engine, send_id)


def messages(engine: Engine, send_id: int, limit: int = 100, offset: int = 0) -> list[Message]:
    """A send's messages in the order they were queued (payloads are not for display: the
    API's MessageOut leaves them out)."""
    return sends.message_rows(engine, send_id, limit, offset)


def newest(engine: Engine, limit: int = 50, offset: int = 0) -> list[Send]:
    """Sends, newest first."""
    return sends.newest_sends(engine, limit, offset)


def active(engine: Engine, limit: int = 20) -> list[SendProgress]:
    """Running, paused and scheduled sends, newest first, each with its message counts."""
    return [sends.progress(engine, s.id) for s in sends.sends_in_states(engine, ACTIVE, limit)]
