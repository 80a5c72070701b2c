"""The product's detector: contextual novelty plus a level-shift score, with a refractory period.

Written by hand (it is the product's core). What it learns from the published NAB detectors:
- from contextual anomaly detection (CAD OSE): quantise the value coarsely (8 bins over the range
  seen while warming up, padded by 20 %) and treat *contexts never seen before* - a new bin, a new
  pair, a new triple of consecutive bins - as the anomaly signal, so a pattern is anomalous once
  and then learned;
- from HTM and ARTime: a refractory ("rest") period after a detection, because NAB, like an
  on-call engineer, rewards the first alarm of an episode and charges for every repeat;
- from HTM's anomaly likelihood: what matters is surprise relative to the series' own habits, so
  novelty is discounted by how often this series has produced novelty lately (a noisy series
  invents contexts all the time; a clean one almost never);
- a continuous level score (an exponentially smoothed value against a slow exponentially weighted
  mean and variance) breaks ties and catches shifts inside the learned range.

It is strictly causal: the range comes from the first ``warmup`` points only; values beyond it
fall into new bins (which is itself novel). Memory is bounded: contexts live in an LRU map of at
most ``max_contexts`` entries. Nothing depends on the timestamp, only on the order of points.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from datetime import datetime

from steadymail.monitor.anomaly.moments import bounded, ew_step

# Chosen on the NAB subset in ../shared/data/nab (see docs/design-notes.md, "Anomaly detection").
WARMUP = 150
BINS = 8
PAD = 0.2
ORDER = 3
REST = 200
FIRE_AT = 0.6  # a score at or above this starts the rest period
NOVELTY_WEIGHT = 0.6
LEVEL_SCALE = 6.0
LEVEL_ALPHA = 0.005
SMOOTH = 0.3
MAX_CONTEXTS = 4096
OPS_CLIP = 4.0  # the ops preset clips level updates at this many standard deviations
RESOLUTION = 1e-3  # relative to the level: finer differences are noise
OPS_SMOOTHING = 1.0
OPS_NOVELTY_WEIGHT = 0.3
# Chosen under cross-validation on the platform's own incidents (data/platform-corpus): level
# scale 3 in four folds of five, rest 50 in four (the monitor itself runs rest 0: an open alert
# is its refractory period; the rest here is what NAB's scoring of the preset sees).
OPS_LEVEL_SCALE = 3.0
OPS_REST = 50
OPS_LEVEL_ALPHA = 0.02  # forgets a start-up outlier within a few minutes of 5 s intervals
RATE_ALPHA = 0.001  # how fast the recent novelty rate follows
RATE_DISCOUNT = 10.0  # novelty x exp(-rate x this)


class NoveltyDetector:
    """Contextual novelty detector; see the module docstring. The defaults are the NAB-tuned
    ones; ``operations()`` is the preset the monitor runs on the platform's own metrics."""

    __slots__ = (
        "_clip",
        "_fire_at",
        "_hi",
        "_level_alpha",
        "_level_scale",
        "_lo",
        "_max_contexts",
        "_mean",
        "_n",
        "_novelty_weight",
        "_quiet",
        "_rate",
        "_recent",
        "_rest",
        "_seen",
        "_smooth",
        "_smoothing",
        "_step",
        "_var",
        "_warmup",
    )

    def __init__(
        self,
        warmup: int = WARMUP,
        rest: int = REST,
        fire_at: float = FIRE_AT,
        max_contexts: int = MAX_CONTEXTS,
        *,
        smoothing: float = SMOOTH,
        novelty_weight: float = NOVELTY_WEIGHT,
        level_scale: float = LEVEL_SCALE,
        level_alpha: float = LEVEL_ALPHA,
        clip: float | None = None,
    ) -> None:
        self._warmup, self._rest, self._fire_at = warmup, rest, fire_at
        self._smoothing, self._novelty_weight = smoothing, novelty_weight
        self._level_scale, self._level_alpha = level_scale, level_alpha
        self._clip = clip
        self._max_contexts = max_contexts
        self._n = 0
        self._lo = math.inf
        self._hi = -math.inf
        self._step = 0.0
        self._recent: tuple[int, ...] = ()
        self._seen: OrderedDict[tuple[int, ...], None] = OrderedDict()
        self._quiet = rest  # points since the last detection
        self._mean = self._var = self._smooth = 0.0
        self._rate = 0.0  # exponentially weighted mean of past novelty

    def update(self, timestamp: datetime | float, value: float) -> float:
        self._n += 1
        value = bounded(value)
        level = self._level(value)
        if self._step == 0.0:
            self._lo = min(self._lo, value)
            self._hi = max(self._hi, value)
            if self._n < self._warmup:
                return 0.0
            self._fix_bins()
        novelty = self._novelty(math.floor((value - self._lo) / self._step))
        rate = self._rate
        self._rate += RATE_ALPHA * (novelty - rate)
        novelty *= math.exp(-rate * RATE_DISCOUNT)
        score = self._novelty_weight * novelty + (1.0 - self._novelty_weight) * level
        self._quiet += 1
        # Learning goes on through the first 2 x warmup points and every rest period; only the
        # output is held back, so a detection never repeats within ``rest`` points.
        if self._n < 2 * self._warmup or self._quiet < self._rest:
            return 0.0
        if score >= self._fire_at:
            self._quiet = 0
        return score

    def _level(self, value: float) -> float:
        if self._n == 1:
            self._mean = self._smooth = value
        self._smooth += self._smoothing * (value - self._smooth)
        d = self._smooth - self._mean
        # Movements below a thousandth of the level are rounding, not signal; a series that
        # never moved otherwise makes any movement as surprising as it gets.
        floor = RESOLUTION * abs(self._mean)
        if self._var > 0.0 or floor > 0.0:
            z = abs(d) / max(math.sqrt(self._var), floor)
        else:
            z = math.inf if abs(d) > 1e-12 else 0.0
        a = self._level_alpha if self._n > 20 else 0.1
        # Winsorised: one outlier must not blind the level score for the next hundred points.
        clip = self._clip if self._n > 5 else None
        self._mean, self._var = ew_step(self._mean, self._var, d, a, clip)
        return 1.0 - math.exp(-z / self._level_scale)

    def _fix_bins(self) -> None:
        span = self._hi - self._lo
        pad = span * PAD
        self._lo -= pad
        span += 2 * pad
        self._step = max(span / BINS, RESOLUTION * abs(self._hi), 1e-12)

    def _novelty(self, bin_: int) -> float:
        recent = (*self._recent, bin_)[-ORDER:]
        self._recent = recent
        seen = self._seen
        new = 0
        for length in range(1, len(recent) + 1):
            context = recent[-length:]
            if context in seen:
                seen.move_to_end(context)
            else:
                new += 1
                seen[context] = None
                if len(seen) > self._max_contexts:
                    seen.popitem(last=False)
        return new / len(recent)


def operations(
    warmup: int = WARMUP,
    rest: int = OPS_REST,
    fire_at: float = FIRE_AT,
    level_scale: float = OPS_LEVEL_SCALE,
) -> NoveltyDetector:
    """The preset for the platform's own 5-second metrics: unsmoothed and weighted towards the
    level, so a halved throughput or a tripled deferral rate scores high within two intervals
    even on a noisy series, whose novelty the rate discount mostly cancels."""
    return NoveltyDetector(
        warmup,
        rest,
        fire_at,
        smoothing=OPS_SMOOTHING,
        novelty_weight=OPS_NOVELTY_WEIGHT,
        level_scale=level_scale,
        level_alpha=OPS_LEVEL_ALPHA,
        clip=OPS_CLIP,
    )
