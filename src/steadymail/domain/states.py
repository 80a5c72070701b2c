"""States of sends, batches, messages, alerts, rollouts and service slots, and the transitions a
user may ask of a send.

Each state is a `StrEnum`: its members are the very strings the database columns and the JSON
responses hold, so the store converts a column to its enum when it builds a record and nothing
else changes."""

from enum import StrEnum


class SendState(StrEnum):
    DRAFT = "draft"
    # Waiting for its `scheduled_at`: a worker starts it then (messages taken from the list then).
    SCHEDULED = "scheduled"
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
    "start": (frozenset({SendState.DRAFT, SendState.SCHEDULED}), SendState.RUNNING),
    # Also a change of time: a scheduled send can be scheduled again until it starts.
    "schedule": (frozenset({SendState.DRAFT, SendState.SCHEDULED}), SendState.SCHEDULED),
    "pause": (frozenset({SendState.RUNNING}), SendState.PAUSED),
    "resume": (frozenset({SendState.PAUSED}), SendState.RUNNING),
    "cancel": (
        frozenset({SendState.DRAFT, SendState.SCHEDULED, SendState.RUNNING, SendState.PAUSED}),
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


class AlertState(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


class RolloutState(StrEnum):
    """Where a rollout stands (stored in its JSON by the control plane)."""

    RUNNING = "running"
    PAUSED = "paused"
    # The decision is made; some regions still have the new value (retried every step).
    ROLLING_BACK = "rolling_back"
    ROLLED_BACK = "rolled_back"
    COMPLETED = "completed"


class WavePhase(StrEnum):
    """What a running rollout does in its current wave: apply the value, bake, or (after the
    last wave) guard every region."""

    APPLY = "apply"
    BAKE = "bake"
    GUARD = "guard"


class SlotState(StrEnum):
    """A service slot as the health watcher sees it."""

    LIVE = "live"
    # Ended gracefully: a successor is a planned restart.
    STOPPED = "stopped"
    # Died (missed heartbeats, or an exit seen by a supervisor or a peer).
    DEAD = "dead"
