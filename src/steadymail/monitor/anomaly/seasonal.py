"""Time-of-day baselines: a value judged against what this hour of the day usually brings.

Written by hand (it is the product's core). The novelty detector sees only the order of values,
so a quiet night-time level at noon, a missing daily peak or a holiday's traffic (values well
inside the learned range, in familiar sequences) look ordinary to it. Here the day is cut into
``slots`` equal parts by the timestamp (UTC); each slot keeps an exponentially weighted mean and
variance of the (lightly smoothed) value, and a point scores by how many of its slot's standard
deviations it lies from the slot's mean. Memory is two floats and a count per slot; nothing
looks ahead. A slot scores only once it has seen ``min_seen`` points, so a series scores on
this only from its second or third day; a series sampled many times a slot (seconds apart)
makes each slot a plain level baseline for its hour.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

from steadymail.monitor.anomaly.moments import bounded, ew_step

SLOTS = 24
ALPHA = 0.05  # per point of the slot: with 5-minute data, a slot's memory is a few days
SCALE = 6.0  # score = 1 - exp(-z / SCALE)
MIN_SEEN = 3
SMOOTHING = 0.3
# The whole series' spread, slowly learned, bounds a slot's deviation from below: a slot that
# happened to see the same value three times must not call the next small wiggle an anomaly.
GLOBAL_ALPHA = 0.01
GLOBAL_FLOOR = 0.1
RESOLUTION = 1e-3  # relative to the slot's mean: finer differences are rounding
DAY = 86400.0


def seconds_of_day(timestamp: datetime | float) -> float:
    """Seconds since midnight UTC: of a datetime (a naive one is taken as UTC, as NAB's are;
    an aware one is converted) or of seconds since the epoch. Not finite: 0."""
    if isinstance(timestamp, datetime):
        t = timestamp.astimezone(UTC) if timestamp.tzinfo is not None else timestamp
        return t.hour * 3600 + t.minute * 60 + t.second + t.microsecond / 1e6
    return timestamp % DAY if math.isfinite(timestamp) else 0.0


class SeasonalDetector:
    """Scores each point against its time-of-day slot's usual value; see the module docstring."""

    __slots__ = (
        "_alpha",
        "_counts",
        "_g_mean",
        "_g_var",
        "_means",
        "_min_seen",
        "_scale",
        "_slots",
        "_smooth",
        "_smoothing",
        "_vars",
    )

    def __init__(
        self,
        slots: int = SLOTS,
        alpha: float = ALPHA,
        scale: float = SCALE,
        min_seen: int = MIN_SEEN,
        smoothing: float = SMOOTHING,
    ) -> None:
        if slots < 1:
            raise ValueError("slots must be at least 1")
        self._slots, self._alpha, self._scale = slots, alpha, scale
        self._min_seen, self._smoothing = min_seen, smoothing
        self._means = [0.0] * slots
        self._vars = [0.0] * slots
        self._counts = [0] * slots
        self._smooth: float | None = None
        self._g_mean: float | None = None
        self._g_var = 0.0

    def update(self, timestamp: datetime | float, value: float) -> float:
        slot = min(int(seconds_of_day(timestamp) / DAY * self._slots), self._slots - 1)
        value = bounded(value)
        if self._smooth is None:
            self._smooth = value
        self._smooth += self._smoothing * (value - self._smooth)
        x = self._smooth
        if self._g_mean is None:
            self._g_mean = x
        self._g_mean, self._g_var = ew_step(
            self._g_mean, self._g_var, x - self._g_mean, GLOBAL_ALPHA
        )
        n, mean, var = self._counts[slot], self._means[slot], self._vars[slot]
        score = 0.0
        if n >= self._min_seen:
            sd = max(
                math.sqrt(var),
                GLOBAL_FLOOR * math.sqrt(self._g_var),
                RESOLUTION * abs(mean),
                1e-9,
            )
            score = 1.0 - math.exp(-abs(x - mean) / sd / self._scale)
        # The first points of a slot set its mean as their average; then it forgets slowly.
        a = self._alpha if n > 2 else 1.0 / (n + 1)
        self._means[slot], self._vars[slot] = ew_step(mean, var, x - mean, a)
        self._counts[slot] = n + 1
        return score
