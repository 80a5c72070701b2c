"""A send's progress as the console draws it: finished messages, percent, average rate."""

from dataclasses import dataclass

from steadymail.domain.states import MessageState
from steadymail.services.sends import SendProgress

# Messages that will not be tried again: what a progress bar counts as done.
FINISHED = (
    MessageState.SENT,
    MessageState.BOUNCED,
    MessageState.FAILED,
    MessageState.CANCELLED,
    MessageState.SUPPRESSED,
)


@dataclass(frozen=True, slots=True)
class Progress:
    done: int
    total: int
    percent: float
    # Finished messages a second between the start and the last progress, None before any.
    rate: float | None


def progress_of(s: SendProgress) -> Progress:
    done = sum(s.counts.get(state, 0) for state in FINISHED)
    percent = round(100 * done / s.total, 1) if s.total else 0.0
    rate = None
    if s.started_at and s.last_progress_at and s.last_progress_at > s.started_at:
        rate = round(done / (s.last_progress_at - s.started_at), 1)
    return Progress(done, s.total, percent, rate)
