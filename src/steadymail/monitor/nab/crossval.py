"""Cross-validation by file: a detector's score on NAB files it was not tuned on.

Scoring a detector on the files its constants were chosen on says little about the next
series it meets (66 on the shared subset, 53 on unseen NAB files, for the same detector). Here
the files are split into K folds, files of one source always in the same fold; for each fold,
every constant of the detector (one candidate of its grid) and every profile's threshold are
chosen on the other folds only, then the held-out fold is scored at that threshold. Reported:
each fold's held-out score, their mean and spread, and the pooled held-out score (every
fold's raw score summed, normalised over all windows: comparable with a whole-corpus score).

Each candidate runs once over every file (a fresh detector per file, so a file's scores do not
depend on the fold); only the choosing and the scoring are per fold.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from steadymail.errors import ValidationError
from steadymail.monitor.anomaly.base import Detector
from steadymail.monitor.nab.corpus import Profile, Series
from steadymail.monitor.nab.scoring import (
    Point,
    normalise,
    raw_at,
    scorable_points,
    sweep,
)

# A name token with this many digits is an id (a sensor, an instance): specific enough that
# two files sharing one come from one source.
_ID_DIGITS = 3
# The first words of a name say what was measured (``Twitter_volume``, ``ec2_cpu``).
_PREFIX_WORDS = 2
_TOKEN = re.compile(r"[^_\-.]+")


@dataclass(frozen=True)
class Candidate:
    """One setting of a detector's constants: a label for the report and a fresh detector."""

    label: str
    make: Callable[[], Detector]


@dataclass(frozen=True)
class FoldScore:
    fold: int
    files: int
    windows: int
    candidate: str  # the candidate chosen on the other folds
    threshold: float  # the standard profile's threshold chosen on the other folds
    # The held-out fold's standard score at that threshold; None for a fold without a labelled
    # window (no score is defined: its false alarms still count in the pooled score).
    score: float | None


@dataclass(frozen=True)
class ProfileCv:
    profile: str
    pooled: float  # every fold's held-out raw score summed, normalised over all windows
    mean: float  # of the folds' held-out scores (folds with a labelled window)
    spread: float  # their standard deviation (0 with one such fold)


@dataclass(frozen=True)
class CvResult:
    detector: str
    folds: list[FoldScore]
    profiles: list[ProfileCv]
    # The default constants at the production threshold, every file (nothing is chosen).
    fixed_threshold: float | None
    fixed: list[tuple[str, float]]


def _source_marks(name: str) -> list[str]:
    """What marks a data file's source: its first words (numbers and ids left out), its ids."""
    tokens = _TOKEN.findall(name.rsplit(".", 1)[0].lower())
    ids = sorted({t for t in tokens if sum(c.isdigit() for c in t) >= _ID_DIGITS})
    words = [t for t in tokens if not t.isdigit() and t not in ids][:_PREFIX_WORDS]
    return (["words:" + "_".join(words)] if words else []) + ["id:" + i for i in ids]


def source_groups(keys: Sequence[str]) -> list[list[str]]:
    """Files of one source, grouped: in one category, the same first two words of the name
    (``ec2_cpu_utilization_24ae8d`` and ``…_5f5533``, ``Twitter_volume_AAPL`` and ``…_FB``,
    ``art_daily_jumpsup`` and ``art_daily_nojump``: one generator) or a shared id
    (``speed_6005`` and ``occupancy_6005``: one sensor). Groups and files in sorted order."""
    parent = {k: k for k in keys}

    def find(k: str) -> str:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    first_by: dict[tuple[str, str], str] = {}
    for key in sorted(keys):
        category, _, name = key.partition("/")
        for mark in _source_marks(name):
            seen = first_by.setdefault((category, mark), key)
            parent[find(key)] = find(seen)
    groups: dict[str, list[str]] = {}
    for key in sorted(keys):
        groups.setdefault(find(key), []).append(key)
    return sorted(groups.values())


def assign_folds(groups: Sequence[Sequence[str]], folds: int) -> list[list[str]]:
    """Whole groups into ``folds`` folds, largest group first into the fold with the fewest
    files (ties: the lowest fold): deterministic, and as even as whole groups allow."""
    if folds < 2:
        raise ValidationError("cross-validation needs at least 2 folds")
    if folds > len(groups):
        raise ValidationError(f"{folds} folds for {len(groups)} sources: use at most {len(groups)}")
    out: list[list[str]] = [[] for _ in range(folds)]
    for group in sorted(groups, key=lambda g: (-len(g), g)):
        smallest = min(range(folds), key=lambda i: (len(out[i]), i))
        out[smallest].extend(group)
    return [sorted(f) for f in out]


@dataclass(frozen=True)
class _Layout:
    """What scoring needs of a file that does not depend on the detector."""

    timestamps: list[datetime]
    windows: list[tuple[datetime, datetime]]
    window_names: list[str]


def _run(make: Callable[[], Detector], series: Series) -> list[float]:
    det = make()
    return [det.update(t, v) for t, v in zip(series.timestamps, series.values, strict=True)]


def _points(series: Series, scores: list[float]) -> list[Point]:
    points, _ = scorable_points(series.key, series.timestamps, scores, series.windows)
    return points


def _window_names(series: Series) -> list[str]:
    _, names = scorable_points(
        series.key, series.timestamps, [0.0] * len(series.values), series.windows
    )
    return names


def _best(points: list[Point], windows: list[str], profile: Profile) -> tuple[float, float]:
    """(threshold, raw) that maximise the raw score; ties go to the higher threshold."""
    best = max(sweep(points, windows, profile), key=lambda s: s.raw)
    return best.threshold, best.raw


def cross_validate(
    detector: str,
    series: Sequence[Series],
    candidates: Sequence[Candidate],
    profiles: Sequence[Profile],
    folds: int,
    fixed_threshold: float | None = None,
    progress: Callable[[str], None] | None = None,
) -> CvResult:
    """K-fold cross-validation by source; ``candidates[0]`` is the detector's default."""
    if not candidates:
        raise ValidationError("no candidate to cross-validate")
    if not profiles:
        raise ValidationError("no scoring profile")
    by_key = {s.key: s for s in series}
    names = {s.key: _window_names(s) for s in series}
    points: list[dict[str, list[Point]]] = []
    for c in candidates:
        points.append({s.key: _points(s, _run(c.make, s)) for s in series})
        if progress:
            progress(c.label)
    parts = assign_folds(source_groups(list(by_key)), folds)
    standard = profiles[0]
    fold_scores: list[FoldScore] = []
    held_raw = {p.name: 0.0 for p in profiles}
    per_fold: dict[str, list[float]] = {p.name: [] for p in profiles}
    total_windows = 0
    for i, held in enumerate(parts):
        train = [k for j, part in enumerate(parts) if j != i for k in part]
        train_windows = [w for k in train for w in names[k]]
        held_windows = [w for k in held for w in names[k]]
        total_windows += len(held_windows)

        def pooled(c: int, keys: list[str]) -> list[Point]:
            return [p for k in keys for p in points[c][k]]

        # The candidate that scores best on the training folds (standard profile; ties: the
        # earlier candidate, the default first).
        chosen = max(
            range(len(candidates)),
            key=lambda c: (_best(pooled(c, train), train_windows, standard)[1], -c),
        )
        train_points, held_points = pooled(chosen, train), pooled(chosen, held)
        for profile in profiles:
            threshold, _ = _best(train_points, train_windows, profile)
            raw = raw_at(held_points, held_windows, profile, threshold)
            held_raw[profile.name] += raw
            score = normalise(raw, len(held_windows), profile) if held_windows else None
            if score is not None:
                per_fold[profile.name].append(score)
            if profile is standard:
                fold_scores.append(
                    FoldScore(
                        i + 1,
                        len(held),
                        len(held_windows),
                        candidates[chosen].label,
                        threshold,
                        score,
                    )
                )
    if not total_windows:
        raise ValidationError("the corpus has no labelled window: nothing to score")
    summary = [
        ProfileCv(
            p.name,
            normalise(held_raw[p.name], total_windows, p),
            statistics.fmean(per_fold[p.name]),
            statistics.pstdev(per_fold[p.name]) if len(per_fold[p.name]) > 1 else 0.0,
        )
        for p in profiles
    ]
    fixed: list[tuple[str, float]] = []
    if fixed_threshold is not None:
        every = [p for k in by_key for p in points[0][k]]
        windows = [w for k in by_key for w in names[k]]
        fixed = [
            (p.name, normalise(raw_at(every, windows, p, fixed_threshold), len(windows), p))
            for p in profiles
        ]
    return CvResult(detector, fold_scores, summary, fixed_threshold, fixed)
