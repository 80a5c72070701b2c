"""What the person on call asks of the queue: quarantined messages, releasing them, and
requeueing a send's stuck work. The API and the CLI both call these."""

from typing import Any

from sqlalchemy import Engine

from steadymail.clock import Clock
from steadymail.config import Settings
from steadymail.domain.states import SendState
from steadymail.errors import Conflict, ValidationError
from steadymail.store import quarantine, sends
from steadymail.store.quarantine import QuarantinedMessage, Requeued

MAX_LIST = 1000
MAX_RELEASE = 10_000


def listing(
    engine: Engine, send_id: int | None = None, limit: int = 100, offset: int = 0
) -> list[QuarantinedMessage]:
    """Quarantined messages of one send (NotFound if there is no such send) or of all."""
    if not 1 <= limit <= MAX_LIST:
        raise ValidationError(f"limit must be between 1 and {MAX_LIST}")
    if send_id is not None:
        sends.get_send(engine, send_id)
    return quarantine.quarantined(engine, send_id, limit, offset)


def release(
    engine: Engine,
    clock: Clock,
    *,
    messages: list[int] | None = None,
    send_id: int | None = None,
) -> dict[str, Any]:
    """Release the given quarantined messages, or every one of `send_id`: back in the queue,
    due now. A message that does not exist, or is not quarantined, refuses the whole release."""
    if (messages is None) == (send_id is None):
        raise ValidationError("give either message ids or a send (all its quarantined messages)")
    if messages is not None:
        if not messages:
            raise ValidationError("give at least one message id")
        if len(messages) > MAX_RELEASE:
            raise ValidationError(f"at most {MAX_RELEASE} messages at a time")
        ids = sorted(set(messages))
    else:
        assert send_id is not None
        sends.get_send(engine, send_id)
        ids = quarantine.quarantined_ids(engine, send_id)
        if not ids:
            return {"released": 0, "messages": []}
    released = quarantine.release(engine, ids, clock.now())
    return {"released": released, "messages": ids}


def requeue(engine: Engine, clock: Clock, settings: Settings, send_id: int) -> Requeued:
    """Make a send's stuck work claimable now: leases of dead owners expire at once (a live
    worker reclaims them, fencing the old holder off), deferred messages are due now."""
    state = sends.get_send(engine, send_id).state
    if state not in (SendState.RUNNING, SendState.PAUSED):
        raise Conflict(
            f"send {send_id} is {state}: only a running or paused send can be stuck"
            " (quarantined messages are released, not requeued)"
        )
    return quarantine.requeue_stuck(engine, send_id, clock.now(), settings.dead_age())
