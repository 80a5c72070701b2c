"""Messages quarantined because of a flag change are released when the change is reverted.

A message is quarantined after `quarantine_after` workers died with it in flight. When a change
(say a link-tracking version) made them die, the message is not poison: once the change is
reverted it is sent without a human. The quarantines to release are those from the moment the
change took effect until every worker can have read the revert and every lease a worker died
holding under the old value has been reclaimed (`late_after_revert`): a worker reads flags on
every heartbeat, so it may run the old value for a beat after the revert, die, and the worker
that reclaims its lease quarantines the message then.

The flag write releases what is quarantined at that moment (so its caller sees the count); the
monitor's sweep releases the late ones on its next tick. A released message is due once every
worker has read the revert. One that is poison by itself is quarantined again after
`quarantine_after` more crashes; if that happens inside the window it is released again, which
costs a few more crashes, bounded by the window.
"""

import logging

from sqlalchemy import Engine

from steadymail.config import Settings
from steadymail.errors import Conflict
from steadymail.store import flag_values, quarantine
from steadymail.store.flag_values import FlagChange

log = logging.getLogger("steadymail.flags")

# Reverts whose window closed this long ago are still swept (a monitor down for a while).
SWEEP_HORIZON = 300.0


def late_after_revert(settings: Settings) -> float:
    """How long after a revert a quarantine can still be the reverted change's doing: a beat
    (plus its own latency) for a worker to read it, then a lease TTL for its lease to be
    reclaimed if it died, and a beat of slack."""
    return 2.5 * settings.resolved_heartbeat_interval() + settings.lease_ttl


def release_after_revert(
    engine: Engine, reverted: FlagChange, revert_at: float, now: float, until: float, settle: float
) -> int:
    """Release the messages quarantined in [``reverted.at``, ``until``] and quarantined still,
    due at ``revert_at + 1.5 x settle`` (``settle``: the heartbeat interval). Each message on
    its own: one whose send was cancelled, or that someone released meanwhile, is skipped."""
    ids = quarantine.quarantined_between(engine, reverted.at, until)
    released = 0
    for mid in ids:
        try:
            released += quarantine.release(engine, [mid], now, due=revert_at + 1.5 * settle)
        except Conflict as e:
            log.warning(
                "event=release_after_revert_skipped flag=%s message=%d error=%r",
                reverted.name,
                mid,
                str(e),
            )
    if released:
        log.warning(
            "event=released_after_revert flag=%s messages=%d ids=%s",
            reverted.name,
            released,
            ids[:20],
        )
    return released


class RevertSweep:
    """The monitor's part: every tick, the quarantines that came after a recent revert."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.late = late_after_revert(settings)
        self.settle = settings.resolved_heartbeat_interval()

    def tick(self, now: float) -> int:
        released = 0
        for reverted, revert in flag_values.reverts_since(
            self.engine, now - self.late - SWEEP_HORIZON
        ):
            released += release_after_revert(
                self.engine, reverted, revert.at, now, revert.at + self.late, self.settle
            )
        return released
