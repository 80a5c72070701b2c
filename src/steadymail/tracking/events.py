"""Event recording off the request path: appended in memory, written in groups, flushed on stop.

The buffer is bounded: past `max_pending` events a new one is dropped and counted (the
`steadymail_tracking_events_dropped_total` counter), so a flood of requests or a database that
stopped taking writes costs bounded memory and never blocks a route. Opens and unsubscribes are
kept once a message (opens once per machine flag): a repeat is noticed here and never queued,
and the table's unique index skips any repeat another process or an earlier run already wrote.
"""

import asyncio
import hashlib
import hmac
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import Engine

from steadymail.clock import Clock
from steadymail.metrics import TRACKING_EVENTS_DROPPED
from steadymail.store import tracking as store
from steadymail.store.tracking import TrackingEvent
from steadymail.tracking.classify import classify_click, classify_open
from steadymail.tracking.tokens import Kind, TokenData

log = logging.getLogger("steadymail.tracking")

_KIND_NAMES = {Kind.CLICK: "click", Kind.OPEN: "open", Kind.UNSUBSCRIBE: "unsubscribe"}

EVENTS_DROPPED = TRACKING_EVENTS_DROPPED

# How many once-only events (open, unsubscribe) a process remembers having queued.
SEEN_MAX = 100_000


class Recorded(StrEnum):
    QUEUED = "queued"
    REPEAT = "repeat"
    DROPPED = "dropped"


@dataclass(frozen=True)
class _Pending:
    data: TokenData
    at: float
    method: str
    user_agent: str
    ip_hash: str


class EventRecorder:
    """`record` costs an append; `run` writes every `interval`; `close` writes the rest."""

    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        ip_key: bytes,
        scanner_window: float,
        interval: float,
        max_pending: int = 100_000,
    ) -> None:
        self._engine, self._clock, self._ip_key = engine, clock, ip_key
        self._window, self._interval = scanner_window, interval
        self._max = max_pending
        self._pending: list[_Pending] = []
        # Insertion-ordered, so the oldest key goes first when it is full.
        self._seen: OrderedDict[tuple[Kind, int, bool], None] = OrderedDict()
        self._lock = threading.Lock()
        self.dropped = 0

    def already(self, data: TokenData) -> bool:
        """True if this process already queued the once-only event `data` names (an unsubscribe
        route uses it to skip the database on a repeat)."""
        with self._lock:
            return (data.kind, data.message_id, False) in self._seen

    def record(self, data: TokenData, method: str, user_agent: str, ip: str) -> Recorded:
        """Queue one event; a repeated open or unsubscribe is not queued, nor one past the cap."""
        once = _once_key(data, user_agent)
        ip_hash = hmac.new(self._ip_key, ip.encode(), hashlib.sha256).hexdigest() if ip else ""
        item = _Pending(data, self._clock.now(), method, user_agent[:500], ip_hash)
        with self._lock:
            if once is not None and once in self._seen:
                return Recorded.REPEAT
            if len(self._pending) >= self._max:
                self._drop(data.kind, 1)
                return Recorded.DROPPED
            self._pending.append(item)
            if once is not None:
                self._seen[once] = None
                if len(self._seen) > SEEN_MAX:
                    self._seen.popitem(last=False)
        return Recorded.QUEUED

    def _drop(self, kind: Kind, n: int) -> None:
        self.dropped += n
        EVENTS_DROPPED.labels(_KIND_NAMES[kind]).inc(n)

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def flush(self) -> int:
        with self._lock:
            batch, self._pending = self._pending, []
        if not batch:
            return 0
        try:
            rows = self._rows(batch)
            store.insert_events(self._engine, rows)
        except Exception:
            with self._lock:  # keep them for the next try rather than lose them, up to the cap
                kept = (batch + self._pending)[: self._max]
                for p in (batch + self._pending)[self._max :]:
                    self._drop(p.data.kind, 1)
                self._pending = kept
            raise
        return len(rows)

    def _rows(self, batch: list[_Pending]) -> list[TrackingEvent]:
        clicks = [p.data.message_id for p in batch if p.data.kind == Kind.CLICK]
        sent = store.sent_times(self._engine, sorted(set(clicks)))
        rows = []
        for p in batch:
            if p.data.kind == Kind.CLICK:
                sent_at = sent.get(p.data.message_id)
                machine, reason = classify_click(
                    p.method,
                    p.user_agent,
                    None if sent_at is None else p.at - sent_at,
                    self._window,
                )
            elif p.data.kind == Kind.OPEN:
                machine, reason = classify_open(p.user_agent)
            else:
                machine, reason = False, ""
            rows.append(
                TrackingEvent(
                    kind=_KIND_NAMES[p.data.kind],
                    send_id=p.data.send_id,
                    message_id=p.data.message_id,
                    link=p.data.link,
                    url=p.data.url,
                    at=p.at,
                    method=p.method,
                    user_agent=p.user_agent,
                    ip_hash=p.ip_hash,
                    machine=machine,
                    reason=reason,
                )
            )
        return rows

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await asyncio.to_thread(self.flush)
            except Exception as e:
                log.error("event=tracking_flush_failed pending=%d error=%r", self.pending, str(e))

    async def close(self) -> None:
        await asyncio.to_thread(self.flush)


def _once_key(data: TokenData, user_agent: str) -> tuple[Kind, int, bool] | None:
    """The key an open or unsubscribe is kept once under (None: a click, always counted)."""
    if data.kind == Kind.OPEN:
        return data.kind, data.message_id, classify_open(user_agent)[0]
    if data.kind == Kind.UNSUBSCRIBE:
        return data.kind, data.message_id, False
    return None
