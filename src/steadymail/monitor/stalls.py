"""Stalled sends: due work and no progress for far longer than this send usually takes.

Each send's usual gap between progress is learned from its own history (the median of the last
gaps the detector observed: a few slow moments under load must not stretch it), so a throttled
send that moves slowly but steadily is not stalled, while a fast send that stops is caught
quickly. Progress seen at two ticks in a row says only that the gap is shorter than a tick, so
it counts as no gap: a monitor slowed down by a busy database must not learn its own tick
length as the send's rhythm (that once put a frozen region's stall alert at 13 s instead of the
6 s floor). A stall is not learned either. Paused and scheduled sends are not running; deferred
work is not due; neither can stall.
"""

from collections import deque
from dataclasses import dataclass, field
from statistics import median

from sqlalchemy import Engine

from steadymail.config import Settings
from steadymail.monitor.signals import Signal
from steadymail.store import instances, monitoring

GAPS_KEPT = 25


@dataclass
class _Learned:
    last_progress: float
    gaps: deque[float] = field(default_factory=lambda: deque(maxlen=GAPS_KEPT))
    stalled: bool = False
    # Ticks since progress was last seen: 0 when the previous tick saw progress too.
    quiet_ticks: int = 0


class StallDetector:
    def __init__(self, engine: Engine, settings: Settings) -> None:
        self._engine, self._s = engine, settings
        self._sends: dict[int, _Learned] = {}
        self._no_worker = False
        self._born: float | None = None
        # Batches due right now, and those of them no worker holds yet (a backlog), summed over
        # running sends at the last tick: the series keeper samples them.
        self.due_batches = 0
        self.waiting_batches = 0

    def stalled_count(self) -> int:
        return sum(1 for learned in self._sends.values() if learned.stalled)

    def threshold(self, learned: _Learned) -> float:
        gap = median(learned.gaps) if learned.gaps else 0.0
        return max(self._s.stall_floor, self._s.stall_factor * gap)

    def tick(self, now: float) -> list[Signal]:
        out: list[Signal] = []
        running = monitoring.running_sends(self._engine)
        any_due = False
        seen = set()
        due_batches = waiting = 0
        for send in running:
            sid = send.id
            seen.add(sid)
            last = send.last_progress_at or send.started_at or now
            learned = self._sends.setdefault(sid, _Learned(last))
            if last > learned.last_progress:
                gap = last - learned.last_progress if learned.quiet_ticks else 0.0
                if not learned.stalled:  # a stall is not the send's usual rhythm
                    learned.gaps.append(gap)
                learned.last_progress = last
                learned.quiet_ticks = 0
                if learned.stalled:
                    learned.stalled = False
                    out.append(
                        Signal(
                            f"stall:send:{sid}",
                            "send_stalled",
                            resolve=True,
                            detail=f"send {sid} resumed: progress at {last:.3f}",
                        )
                    )
            else:
                learned.quiet_ticks += 1
            work = monitoring.due_work(self._engine, sid, now)
            any_due |= work.due > 0
            due_batches += work.due
            waiting += work.waiting
            idle = now - learned.last_progress
            if work.due and idle > self.threshold(learned) and not learned.stalled:
                learned.stalled = True
                out.append(
                    Signal(
                        f"stall:send:{sid}",
                        "send_stalled",
                        "critical",
                        f"send {sid} ({send.name}) has made no progress for {idle:.0f}s "
                        f"with {work.due} batches due ({work.expired_leases} expired leases)",
                        {"send": sid, "region": self._s.region},
                    )
                )
        for sid in set(self._sends) - seen:
            if self._sends.pop(sid).stalled:
                out.append(
                    Signal(
                        f"stall:send:{sid}",
                        "send_stalled",
                        resolve=True,
                        detail=f"send {sid} is no longer running",
                    )
                )
        self.due_batches, self.waiting_batches = due_batches, waiting
        out += self._workers(now, any_due)
        return out

    def _workers(self, now: float, any_due: bool) -> list[Signal]:
        max_age = self._s.dead_age()
        if self._born is None:
            self._born = now
        if now - self._born < max_age:
            # Workers starting beside the monitor have not had time to register yet.
            return []
        live = instances.live(self._engine, "worker", now, max_age)
        fp = f"noworker:{self._s.region}"
        if any_due and not live and not self._no_worker:
            self._no_worker = True
            return [
                Signal(
                    fp,
                    "no_live_worker",
                    "critical",
                    f"region {self._s.region} has due work and no live worker",
                    {"region": self._s.region},
                )
            ]
        if live and self._no_worker:
            self._no_worker = False
            return [
                Signal(
                    fp, "no_live_worker", resolve=True, detail=f"{len(live)} worker(s) live again"
                )
            ]
        return []
