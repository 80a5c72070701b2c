"""NAB's scoring rules, re-implemented from NAB's sweeper (github.com/numenta/NAB).

Per file: the first 15 % of rows (at most 750) are probationary and never scored. A detection is
a score at or above the threshold. The earliest detection in a labelled window earns a scaled
sigmoid of its position (1 at the window's start, ~0 at its end); a window with no detection costs
``fn_weight``; a detection outside every window costs ``fp_weight`` times a scaled sigmoid of its
distance past the previous window (cheap right after a window, the full weight further on). One
threshold per profile is chosen over the whole corpus by sweeping every distinct score; ties go to
the higher threshold. Scores are normalised so the null detector gets 0 and a perfect one 100.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import groupby

from steadymail.monitor.nab.corpus import Profile

PROBATION_PERCENT = 0.15
NO_DETECTION = 1.1  # a threshold above every score: the null detector


def scaled_sigmoid(position: float) -> float:
    """NAB's reward/cost curve: 2·sigmoid(-5x) - 1, and -1 well past a window."""
    if position > 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * position)) - 1.0


def probation_length(rows: int) -> float:
    return min(math.floor(PROBATION_PERCENT * rows), PROBATION_PERCENT * 5000)


@dataclass(frozen=True)
class Point:
    """One scorable row: its anomaly score, the window it is in (or None) and its weight."""

    score: float
    window: str | None
    tp_value: float  # the unweighted reward if it is the earliest detection in its window
    fp_value: float  # the unweighted (negative) cost if it is outside every window


def scorable_points(
    key: str,
    timestamps: Sequence[datetime],
    scores: Sequence[float],
    windows: Sequence[tuple[datetime, datetime]],
) -> tuple[list[Point], list[str]]:
    """The rows past probation with their window and sigmoid values, and the window names."""
    if len(timestamps) != len(scores):
        raise ValueError(f"{key}: {len(scores)} scores for {len(timestamps)} rows")
    index = {t: i for i, t in enumerate(timestamps)}
    max_tp = scaled_sigmoid(-1.0)
    probation = probation_length(len(timestamps))
    pending = list(windows)
    points: list[Point] = []
    names: list[str] = []
    cur_name: str | None = None
    cur_right = -1
    cur_width = 0.0
    prev_right: int | None = None
    prev_width = 0.0
    for i, (t, score) in enumerate(zip(timestamps, scores, strict=True)):
        if pending and t == pending[0][0]:
            start, end = pending.pop(0)
            cur_name = f"{key}|{start.isoformat()}"
            cur_right = index[end]
            cur_width = float(cur_right - index[start] + 1)
        tp_value = fp_value = 0.0
        if cur_name is not None:
            tp_value = scaled_sigmoid(-(cur_right - i + 1) / cur_width) / max_tp
        elif prev_right is None:
            fp_value = -1.0
        else:
            fp_value = scaled_sigmoid(abs(prev_right - i) / (prev_width - 1.0))
        if i >= probation:
            points.append(Point(score, cur_name, tp_value, fp_value))
            if cur_name is not None and cur_name not in names:
                names.append(cur_name)
        if cur_name is not None and i == cur_right:
            prev_right, prev_width = i, cur_width
            cur_name = None
    return points, names


@dataclass(frozen=True)
class ThresholdScore:
    threshold: float
    raw: float


def sweep(
    points: Sequence[Point], windows: Sequence[str], profile: Profile
) -> list[ThresholdScore]:
    """The raw score at every distinct threshold, from 1.1 (detect nothing) downwards."""
    parts: dict[str, float] = {name: -profile.fn_weight for name in windows}
    total = sum(parts.values())
    out = [ThresholdScore(NO_DETECTION, total)]
    ordered = sorted(points, key=lambda p: p.score, reverse=True)
    for threshold, group in groupby(ordered, key=lambda p: p.score):
        for p in group:
            if p.window is None:
                total += p.fp_value * profile.fp_weight
            else:
                credit = p.tp_value * profile.tp_weight
                if credit > parts[p.window]:
                    total += credit - parts[p.window]
                    parts[p.window] = credit
        out.append(ThresholdScore(threshold, total))
    return out


def raw_at(
    points: Sequence[Point], windows: Sequence[str], profile: Profile, threshold: float
) -> float:
    """The raw score with detections at or above ``threshold``."""
    parts: dict[str, float] = {name: -profile.fn_weight for name in windows}
    fp_total = 0.0
    for p in points:
        if p.score < threshold:
            continue
        if p.window is None:
            fp_total += p.fp_value * profile.fp_weight
        else:
            parts[p.window] = max(parts[p.window], p.tp_value * profile.tp_weight)
    return fp_total + sum(parts.values())


@dataclass(frozen=True)
class ProfileResult:
    profile: str
    threshold: float
    raw: float
    score: float  # normalised: null 0, perfect 100


def normalise(raw: float, windows: int, profile: Profile) -> float:
    null = -profile.fn_weight * windows
    perfect = profile.tp_weight * windows
    return 100.0 * (raw - null) / (perfect - null)


def score_corpus(
    points: Sequence[Point],
    windows: Sequence[str],
    profile: Profile,
    threshold: float | None = None,
) -> ProfileResult:
    """Score the pooled points of a corpus: at ``threshold``, or at the best one for ``profile``."""
    if threshold is None:
        best = max(sweep(points, windows, profile), key=lambda s: s.raw)  # first max: higher
        threshold, raw = best.threshold, best.raw
    else:
        raw = raw_at(points, windows, profile, threshold)
    return ProfileResult(profile.name, threshold, raw, normalise(raw, len(windows), profile))
