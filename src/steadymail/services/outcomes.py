"""What a run left in a region's records, read back whole to measure it: how processes ended,
and what each message of a send came to (the incident replay, sim/replay.py)."""

from sqlalchemy import Engine

from steadymail.store import events, outcomes
from steadymail.store.events import PlatformEvent
from steadymail.store.outcomes import Outcome

__all__ = ["Outcome", "message_outcomes", "process_exits", "resent_after_crash"]

# Every event of a replay's run fits: a few hundred exits and reclaims at most.
MAX_EVENTS = 100_000


def process_exits(engine: Engine) -> list[PlatformEvent]:
    """The region's recorded process exits (supervisor-seen, systemd-reported, last words),
    oldest first."""
    return [e for e in events.after(engine, 0, limit=MAX_EVENTS) if e.kind == "process_exited"]


def message_outcomes(engine: Engine, send_id: int, *, crashed_only: bool = False) -> list[Outcome]:
    """Every message of the send with its state; `crashed_only`: those a crash caught in
    flight."""
    return outcomes.outcomes(engine, send_id, crashed_only=crashed_only)


def resent_after_crash(engine: Engine, send_id: int) -> int:
    """The duplicates the send counted: messages delivered again after a crash."""
    return outcomes.resent_after_crash(engine, send_id)
