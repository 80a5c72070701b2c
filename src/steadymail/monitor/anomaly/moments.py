"""The exponentially weighted mean and variance, one step at a time: the detectors' level
(``ewma``, ``novelty``) and the monitor's usual band of a series (``anomaly_watch``) all learn
with it."""

from __future__ import annotations

import math


def ew_step(
    mean: float, var: float, d: float, alpha: float, clip: float | None = None
) -> tuple[float, float]:
    """The mean and variance after one point that deviates ``d`` from ``mean``, weighted
    ``alpha``. With ``clip`` (once there is a variance), ``d`` is first winsorised to ``clip``
    standard deviations, so one odd point does not widen the variance for long."""
    if clip and var > 0.0:
        limit = clip * math.sqrt(var)
        d = max(-limit, min(limit, d))
    return mean + alpha * d, (1.0 - alpha) * (var + alpha * d * d)


# No metric comes near this; past it, a value counts as this, so that squares of differences
# (the variances) stay finite instead of turning into inf and then NaN.
LIMIT = 1e150


def bounded(value: float) -> float:
    """``value`` clamped to ±``LIMIT``."""
    return max(-LIMIT, min(LIMIT, value))
