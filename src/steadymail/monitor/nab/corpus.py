"""Reading a NAB-layout corpus: ``data/<category>/<file>.csv``, ``labels/``, ``config/``."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from steadymail.errors import ValidationError


@dataclass(frozen=True)
class Profile:
    """A NAB cost matrix: what a true positive earns and a miss or false alarm costs."""

    name: str
    tp_weight: float
    fp_weight: float
    fn_weight: float


@dataclass(frozen=True)
class Series:
    """One labelled data file: ``key`` is ``<category>/<file>.csv`` as in NAB's labels."""

    key: str
    timestamps: list[datetime]
    values: list[float]
    windows: list[tuple[datetime, datetime]]

    @property
    def category(self) -> str:
        return self.key.split("/", 1)[0]

    @property
    def name(self) -> str:
        return self.key.split("/", 1)[1]


def parse_timestamp(text: str) -> datetime:
    """NAB writes ``2014-02-19 10:50:00`` in data and ``…:00.000000`` in labels."""
    return datetime.fromisoformat(text.strip())


def read_csv(path: Path) -> tuple[list[datetime], list[float]]:
    """The ``timestamp,value`` columns of a NAB data file."""
    timestamps: list[datetime] = []
    values: list[float] = []
    with path.open(newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None or header[:2] != ["timestamp", "value"]:
            raise ValidationError(f"{path}: expected a header 'timestamp,value'")
        for line, row in enumerate(reader, start=2):
            try:
                timestamps.append(parse_timestamp(row[0]))
                values.append(float(row[1]))
            except (IndexError, ValueError) as exc:
                raise ValidationError(f"{path}:{line}: {exc}") from exc
    return timestamps, values


def read_scores(path: Path) -> list[float]:
    """The ``anomaly_score`` column of a result file (rows pair with data rows by position)."""
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None or "anomaly_score" not in reader.fieldnames:
            raise ValidationError(f"{path}: no anomaly_score column")
        return [float(row["anomaly_score"]) for row in reader]


def read_profiles(corpus: Path) -> list[Profile]:
    """``config/profiles.json``, in the file's order (standard, low FP, low FN)."""
    raw = json.loads((corpus / "config" / "profiles.json").read_text())
    return [
        Profile(
            name=name,
            tp_weight=float(body["CostMatrix"]["tpWeight"]),
            fp_weight=float(body["CostMatrix"]["fpWeight"]),
            fn_weight=float(body["CostMatrix"]["fnWeight"]),
        )
        for name, body in raw.items()
    ]


def read_windows(corpus: Path) -> dict[str, list[tuple[datetime, datetime]]]:
    """``labels/combined_windows.json``: the labelled windows of every file."""
    raw = json.loads((corpus / "labels" / "combined_windows.json").read_text())
    return {
        key: [(parse_timestamp(a), parse_timestamp(b)) for a, b in windows]
        for key, windows in raw.items()
    }


def iter_series(corpus: Path) -> Iterator[Series]:
    """Every labelled data file that exists under ``data/``, sorted by key."""
    if not (corpus / "data").is_dir():
        raise ValidationError(f"{corpus}: not a NAB corpus (no data/ directory)")
    windows = read_windows(corpus)
    for key in sorted(windows):
        path = corpus / "data" / key
        if not path.is_file():
            continue
        timestamps, values = read_csv(path)
        yield Series(key=key, timestamps=timestamps, values=values, windows=windows[key])


def result_path(results: Path, detector: str, key: str) -> Path:
    """Where NAB keeps a detector's output for ``key``: ``<det>/<cat>/<det>_<file>``."""
    category, name = key.split("/", 1)
    return results / detector / category / f"{detector}_{name}"
