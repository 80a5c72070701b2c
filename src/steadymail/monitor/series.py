"""The region's time series: fold every process's interval sums into points, derive rates,
roll up to minutes and drop what is past retention.

An interval is folded half an interval after it ends (processes flush four times an interval),
so one tick's read covers every worker of the region, on any host. Throughput is only
meaningful while work waits for a worker, so each interval also records the smallest backlog
the monitor saw in it; the anomaly detectors are fed throughput only from backlogged intervals
(the tail of a campaign is not a slowdown).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sqlalchemy import Engine

from steadymail.config import Settings
from steadymail.store import metric_series
from steadymail.store.metric_series import ROLLUP


@dataclass(frozen=True)
class Interval:
    """One folded interval: its start, its raw sums and derived values."""

    start: float
    values: dict[str, float]
    backlogged: bool


def derive(raw: dict[str, float], interval: float) -> dict[str, float]:
    """Rates from sums; a rate whose denominator is zero is left out, not reported as 0."""
    out = dict(raw)
    attempts = sum(raw.get(k, 0.0) for k in ("sent", "deferred", "bounced", "failed"))
    out["attempts"] = attempts
    out["throughput"] = raw.get("sent", 0.0) / interval
    if attempts:
        out["deferral_rate"] = raw.get("deferred", 0.0) / attempts
        out["failure_rate"] = (raw.get("bounced", 0.0) + raw.get("failed", 0.0)) / attempts
    for stage in ("smtp", "render"):
        count = raw.get(f"{stage}_count", 0.0)
        if count:
            out[f"{stage}_latency_ms"] = 1000.0 * raw.get(f"{stage}_seconds", 0.0) / count
    return out


class SeriesKeeper:
    def __init__(self, engine: Engine, settings: Settings) -> None:
        self._engine, self._s = engine, settings
        self.interval = settings.metrics_interval
        self._folded: int | None = None  # the last bucket folded
        self._rolled = -math.inf  # the end of the last minute rolled up
        self._pruned = -math.inf
        # Per open bucket: the smallest backlog and the largest due count seen by a tick.
        self._queue: dict[int, tuple[int, int]] = {}
        # The last tick's observation, for a bucket no tick saw (a tick slowed by a busy
        # database): the queue changes slowly, an interval without a look is not an idle one.
        self._last_seen: tuple[int, int] = (0, 0)

    def bucket(self, now: float) -> int:
        return math.floor(now / self.interval)

    def observe_queue(self, now: float, due: int, waiting: int) -> None:
        b = self.bucket(now)
        lo, hi = self._queue.get(b, (waiting, due))
        self._queue[b] = (min(lo, waiting), max(hi, due))
        self._last_seen = (waiting, due)

    def tick(self, now: float) -> list[Interval]:
        """Fold every interval that ended half an interval ago; returns them, oldest first."""
        ready = self.bucket(now - self.interval / 2) - 1
        if self._folded is None:
            # The monitor just started: the interval in progress was only partly watched.
            self._folded = ready
            metric_series.fold_deltas(self._engine, self._s.region, ready)  # stale sums
            return []
        if ready <= self._folded:
            return []
        sums = metric_series.fold_deltas(self._engine, self._s.region, ready)
        out: list[Interval] = []
        points: list[tuple[float, str, float]] = []
        for b in range(self._folded + 1, ready + 1):
            waiting, due = self._queue.pop(b, self._last_seen)
            raw = sums.get(b, {})
            if not raw and not due:
                continue  # idle: nothing to say
            values = derive(raw, self.interval)
            values["queue_due"] = float(due)
            values["backlog_min"] = float(waiting)
            start = b * self.interval
            out.append(Interval(start, values, waiting > 0))
            points += [(start, name, v) for name, v in values.items()]
        # Sums of an interval folded earlier (a flush that came very late) are dropped here.
        self._folded = ready
        metric_series.put_points(self._engine, self._s.region, self.interval, points)
        self._housekeep(now)
        return out

    def _housekeep(self, now: float) -> None:
        done_until = (self._folded + 1) * self.interval if self._folded is not None else 0.0
        minute_end = math.floor(done_until / ROLLUP) * ROLLUP
        if minute_end > self._rolled:
            start = max(self._rolled, minute_end - ROLLUP * 10)
            metric_series.roll_up(self._engine, self._s.region, self.interval, start, minute_end)
            self._rolled = minute_end
        if now - self._pruned >= ROLLUP:
            self._pruned = now
            metric_series.prune(self._engine, self.interval, now - self._s.metrics_retention)
            metric_series.prune(self._engine, ROLLUP, now - self._s.metrics_rollup_retention)

    def history(self, names: list[str], since: float) -> dict[float, dict[str, float]]:
        """Stored raw points since ``since``: {interval start: {series: value}}."""
        out: dict[float, dict[str, float]] = {}
        for name in names:
            for ts, v in metric_series.read(
                self._engine, self._s.region, name, self.interval, since, limit=100_000
            ):
                out.setdefault(ts, {})[name] = v
        return dict(sorted(out.items()))
