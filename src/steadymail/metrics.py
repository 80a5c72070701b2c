"""The platform's own metrics: Prometheus instruments and per-interval sums for the monitor.

Two consumers, one call site. Every ``Metrics`` method updates a prometheus-client instrument
(exported at ``/metrics``; in multiprocess mode when ``PROMETHEUS_MULTIPROC_DIR`` is set, which
the CLI does before anything imports prometheus-client) and adds the same figure to a
``SeriesBuffer``: sums per fixed interval that the process writes to the region database, where
the monitor folds them into per-region time series for the anomaly detectors and the dashboard.
Prometheus only sees one host; the database sees every worker of the region.

A neutral top-level module (like ``config`` and ``clock``) because sending, tracking, the API
and the monitor all record into it.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import defaultdict

from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy import Engine

from steadymail.clock import Clock
from steadymail.store import metric_series

log = logging.getLogger("steadymail.metrics")

STAGES = ("claim", "render", "rewrite", "mime", "dkim", "smtp", "checkpoint")
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

MESSAGES = Counter(
    "steadymail_messages_total", "Messages finished, by outcome", ["region", "outcome"]
)
SMTP_REPLIES = Counter(
    "steadymail_smtp_replies_total",
    "SMTP transactions by reply class (2xx, 4xx, 5xx, conn for no reply)",
    ["region", "reply_class"],
)
STAGE_SECONDS = Histogram(
    "steadymail_stage_seconds",
    "Time spent per pipeline stage",
    ["region", "stage"],
    buckets=_LATENCY_BUCKETS,
)
CLAIMS = Counter(
    "steadymail_claims_total", "Batches claimed, fresh or reclaimed", ["region", "kind"]
)
LEASE_RECLAIMS = Counter(
    "steadymail_lease_reclaims_total", "Batches taken over from a dead holder", ["region"]
)
RESTARTS = Counter(
    "steadymail_service_restarts_total",
    "Service restarts seen by the monitor",
    ["region", "service"],
)
STALLED_SENDS = Gauge(
    "steadymail_stalled_sends", "Sends stalled right now", ["region"], multiprocess_mode="livemax"
)
QUEUE_DUE = Gauge(
    "steadymail_queue_due_batches",
    "Batches that could be worked on now (pending and due, or leased)",
    ["region"],
    multiprocess_mode="livemax",
)
TRACKING_REQUESTS = Counter(
    "steadymail_tracking_requests_total",
    "Tracking requests by kind (click, open, unsubscribe) and result",
    ["region", "kind", "result"],
)
TRACKING_EVENTS_DROPPED = Counter(
    "steadymail_tracking_events_dropped_total",
    "Tracking events dropped because the in-memory buffer was full",
    ["kind"],
)
ANOMALY_SCORE = Gauge(
    "steadymail_anomaly_score",
    "Latest anomaly score per series",
    ["region", "series"],
    multiprocess_mode="livemax",
)

FLAG_INFO = Gauge(
    "steadymail_flag_info",
    "1 for the value of each flag in force in the region (0 for a value no longer in force); "
    "join on region to tie any metric to the flags it ran with",
    ["region", "flag", "value"],
    multiprocess_mode="livemax",
)


class SeriesBuffer:
    """Sums per (interval bucket, series) of what this process recorded; drained to the DB."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._sums: defaultdict[tuple[int, str], float] = defaultdict(float)

    def bucket(self, now: float) -> int:
        return math.floor(now / self.interval)

    def add(self, name: str, value: float, now: float) -> None:
        self._sums[(self.bucket(now), name)] += value

    def drain(self, now: float | None = None) -> list[tuple[int, str, float]]:
        """Sums of buckets that ended before ``now`` (all of them when ``now`` is None)."""
        limit = math.inf if now is None else self.bucket(now)
        done = [(b, n, v) for (b, n), v in self._sums.items() if b < limit]
        for b, n, _ in done:
            del self._sums[(b, n)]
        return done


class Metrics:
    """One process's recorder, bound to its region; cheap enough for every message."""

    def __init__(self, region: str, interval: float) -> None:
        self.region = region
        self.buffer = SeriesBuffer(interval)
        self._stage = {s: STAGE_SECONDS.labels(region, s) for s in STAGES}
        self._outcome = {
            o: MESSAGES.labels(region, o)
            for o in ("sent", "deferred", "bounced", "failed", "suppressed", "quarantined")
        }
        self._reply = {c: SMTP_REPLIES.labels(region, c) for c in ("2xx", "4xx", "5xx", "conn")}

    def observe(self, stage: str, seconds: float, now: float) -> None:
        self._stage[stage].observe(seconds)
        if stage in ("smtp", "render"):
            self.buffer.add(f"{stage}_seconds", seconds, now)
            self.buffer.add(f"{stage}_count", 1.0, now)

    def outcome(self, outcome: str, now: float) -> None:
        counter = self._outcome.get(outcome)
        if counter is None:
            return
        counter.inc()
        if outcome in ("sent", "deferred", "bounced", "failed"):
            self.buffer.add(outcome, 1.0, now)

    def smtp_transaction(self, seconds: float, code: int, now: float) -> None:
        """One SMTP transaction: its duration and its reply class (code 0: no reply)."""
        self.observe("smtp", seconds, now)
        key = "conn" if code <= 0 else f"{code // 100}xx"
        self._reply.get(key, self._reply["conn"]).inc()

    def claim(self, reclaimed: bool, now: float) -> None:
        CLAIMS.labels(self.region, "reclaimed" if reclaimed else "fresh").inc()
        self.buffer.add("claims", 1.0, now)
        if reclaimed:
            LEASE_RECLAIMS.labels(self.region).inc()
            self.buffer.add("reclaims", 1.0, now)

    def tracking(self, kind: str, result: str, now: float) -> None:
        TRACKING_REQUESTS.labels(self.region, kind, result).inc()
        self.buffer.add("tracking_requests", 1.0, now)


class SeriesFlusher:
    """Writes a process's finished interval sums to the region database, several times an interval
    (the monitor folds an interval half an interval after it ends)."""

    def __init__(self, metrics: Metrics, engine: Engine, clock: Clock, instance_id: str) -> None:
        self._metrics, self._engine, self._clock = metrics, engine, clock
        self._instance_id = instance_id

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._metrics.buffer.interval / 4)
            await self.flush()

    async def flush(self, final: bool = False) -> None:
        """Write the finished intervals (every interval, the current one too, when ``final``)."""
        rows = self._metrics.buffer.drain(None if final else self._clock.now())
        try:
            await asyncio.to_thread(
                metric_series.add_deltas,
                self._engine,
                self._metrics.region,
                self._instance_id,
                rows,
            )
        except Exception as e:
            log.warning(
                "event=metrics_flush_failed instance=%s rows=%d error=%r",
                self._instance_id,
                len(rows),
                str(e),
            )
