"""Run a detector over a NAB corpus and score a detector's result files."""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from steadymail.errors import ValidationError
from steadymail.monitor.anomaly import Detector, make_detector
from steadymail.monitor.nab.corpus import (
    iter_series,
    read_profiles,
    read_scores,
    result_path,
)
from steadymail.monitor.nab.scoring import Point, ProfileResult, scorable_points, score_corpus


def run_detector(
    corpus: Path,
    out: Path,
    detector: str,
    factory: Callable[[], Detector] | None = None,
    progress: Callable[[str], None] | None = None,
) -> int:
    """Write ``out/<detector>/<category>/<detector>_<file>.csv`` for every file; returns rows."""
    make = factory or (lambda: make_detector(detector))
    rows = 0
    for series in iter_series(corpus):
        det = make()  # one fresh detector per file: nothing carries over between series
        path = result_path(out, detector, series.key)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["timestamp", "value", "anomaly_score"])
            for t, v in zip(series.timestamps, series.values, strict=True):
                writer.writerow([t.strftime("%Y-%m-%d %H:%M:%S"), repr(v), det.update(t, v)])
        rows += len(series.values)
        if progress:
            progress(series.key)
    return rows


@dataclass(frozen=True)
class CorpusScore:
    detector: str
    files: int
    windows: int
    optimised: list[ProfileResult]
    fixed: list[ProfileResult] | None


def score_results(
    corpus: Path, results: Path, detector: str, fixed_threshold: float | None = None
) -> CorpusScore:
    """Score ``results/<detector>/…`` against the corpus's labels with every profile."""
    points: list[Point] = []
    windows: list[str] = []
    files = 0
    for series in iter_series(corpus):
        path = result_path(results, detector, series.key)
        if not path.is_file():
            raise ValidationError(f"no result file for {series.key}: {path}")
        p, w = scorable_points(series.key, series.timestamps, read_scores(path), series.windows)
        points += p
        windows += w
        files += 1
    profiles = read_profiles(corpus)
    optimised = [score_corpus(points, windows, pr) for pr in profiles]
    fixed = None
    if fixed_threshold is not None:
        fixed = [score_corpus(points, windows, pr, fixed_threshold) for pr in profiles]
    return CorpusScore(detector, files, len(windows), optimised, fixed)
