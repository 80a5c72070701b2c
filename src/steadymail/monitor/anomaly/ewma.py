"""A plain exponentially weighted z-score: the reference our detector is measured against."""

from __future__ import annotations

import math
from datetime import datetime

from steadymail.monitor.anomaly.moments import bounded, ew_step


class EwmaDetector:
    """Score = 1 - exp(-|z| / 4) of each value against an EW mean and variance."""

    __slots__ = ("_alpha", "_mean", "_n", "_var")

    def __init__(self, alpha: float = 0.01) -> None:
        self._alpha = alpha
        self._mean = 0.0
        self._var = 0.0
        self._n = 0

    def update(self, timestamp: datetime | float, value: float) -> float:
        self._n += 1
        value = bounded(value)
        if self._n == 1:
            self._mean = value
            return 0.0
        d = value - self._mean
        z = abs(d) / math.sqrt(self._var) if self._var > 0.0 else 0.0
        self._mean, self._var = ew_step(self._mean, self._var, d, self._alpha)
        return 1.0 - math.exp(-z / 4.0)
