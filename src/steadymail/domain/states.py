"""States of sends, batches and messages, and the transitions a user may ask for."""

from enum import StrEnum


class SendState(StrEnum):
    DRAFT = "draft"
    RUNNING = "running"
    PAUSED = "paused"
    CANCELLED = "cancelled"
    COMPLETED = "completed"


class SendKind(StrEnum):
    CAMPAIGN = "campaign"
    # A transactional stream never completes: messages keep arriving through the API.
    STREAM = "stream"


class BatchState(StrEnum):
    PENDING = "pending"
    LEASED = "leased"
    DONE = "done"


class MessageState(StrEnum):
    QUEUED = "queued"
    # Handed to SMTP under a lease and not yet checkpointed: a crash here may duplicate it.
    INFLIGHT = "inflight"
    DEFERRED = "deferred"
    SENT = "sent"
    BOUNCED = "bounced"
    FAILED = "failed"
    CANCELLED = "cancelled"
    QUARANTINED = "quarantined"
    SUPPRESSED = "suppressed"


_ACTIONS: dict[str, tuple[frozenset[SendState], SendState]] = {
    "start": (frozenset({SendState.DRAFT}), SendState.RUNNING),
    "pause": (frozenset({SendState.RUNNING}), SendState.PAUSED),
    "resume": (frozenset({SendState.PAUSED}), SendState.RUNNING),
    "cancel": (
        frozenset({SendState.DRAFT, SendState.RUNNING, SendState.PAUSED}),
        SendState.CANCELLED,
    ),
}


class TransitionError(Exception):
    """An action that the send's current state does not allow."""


def send_transition(current: SendState, action: str) -> SendState:
    """The state a send moves to when `action` is applied, or TransitionError."""
    if action not in _ACTIONS:
        raise TransitionError(f"unknown action {action!r}")
    allowed, target = _ACTIONS[action]
    if current not in allowed:
        raise TransitionError(f"cannot {action} a send that is {current.value}")
    return target
