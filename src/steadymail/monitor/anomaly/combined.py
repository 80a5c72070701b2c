"""The product's NAB detector: contextual novelty and a time-of-day baseline, the higher wins.

Written by hand (it is the product's core). The two see different anomalies: the novelty
detector (``novelty.py``) a sequence or a level it has not met, the seasonal one
(``seasonal.py``) a familiar value at an unfamiliar time of day. Each scores on its own; the
point's score is the larger (the seasonal one weighted by ``seasonal_weight``), and one
refractory period (``rest`` points after a score at or above ``fire_at``) covers both, so an
episode alarms once whichever part saw it. Chosen under cross-validation by file on the NAB
subset (docs/design-notes.md, "Anomaly detection"): the pooled held-out score went from 57.13
(novelty alone, its grid) to 67.00 (this, its grid).
"""

from __future__ import annotations

from datetime import datetime

from steadymail.monitor.anomaly import seasonal
from steadymail.monitor.anomaly.novelty import FIRE_AT, REST, WARMUP, NoveltyDetector
from steadymail.monitor.anomaly.seasonal import SeasonalDetector

SEASONAL_WEIGHT = 1.0


class CombinedDetector:
    """Novelty and time-of-day baseline under one refractory period; see the module docstring."""

    __slots__ = ("_fire_at", "_hold", "_n", "_novelty", "_quiet", "_rest", "_seasonal", "_weight")

    def __init__(
        self,
        warmup: int = WARMUP,
        rest: int = REST,
        fire_at: float = FIRE_AT,
        *,
        seasonal_weight: float = SEASONAL_WEIGHT,
        slots: int = seasonal.SLOTS,
        alpha: float = seasonal.ALPHA,
    ) -> None:
        # The novelty part keeps no rest of its own: the refractory period is decided here.
        self._novelty = NoveltyDetector(warmup, rest=0, fire_at=fire_at)
        self._seasonal = SeasonalDetector(slots, alpha)
        self._weight, self._rest, self._fire_at = seasonal_weight, rest, fire_at
        self._hold = 2 * warmup  # as the novelty part: range learned, then contexts
        self._n = 0
        self._quiet = rest

    def update(self, timestamp: datetime | float, value: float) -> float:
        self._n += 1
        novelty = self._novelty.update(timestamp, value)
        usual = self._seasonal.update(timestamp, value)
        score = max(novelty, self._weight * usual)
        self._quiet += 1
        if self._n < self._hold or self._quiet < self._rest:
            return 0.0
        if score >= self._fire_at:
            self._quiet = 0
        return score
