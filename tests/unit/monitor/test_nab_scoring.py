"""The NAB scorer against the published figures in ../shared/data/nab/SCOREBOARD.md."""

import math
import os
import re
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from steadymail.monitor.nab.corpus import Profile
from steadymail.monitor.nab.runner import score_results
from steadymail.monitor.nab.scoring import scaled_sigmoid, scorable_points, score_corpus
from tests.helpers import need

REPO = Path(__file__).resolve().parents[3]


def _find_corpus() -> Path:
    """STEADYMAIL_NAB_CORPUS, else ../shared/data/nab beside the checkout (or beside one of its
    parents, for a clone made elsewhere), else /work/shared/data/nab (this machine kind's)."""
    if os.environ.get("STEADYMAIL_NAB_CORPUS"):
        return Path(os.environ["STEADYMAIL_NAB_CORPUS"])
    candidates = [p / "shared" / "data" / "nab" for p in REPO.parents]
    candidates.append(Path("/work/shared/data/nab"))
    return next((c for c in candidates if (c / "SCOREBOARD.md").is_file()), candidates[0])


CORPUS = _find_corpus()
STANDARD = Profile("standard", 1.0, 0.11, 1.0)


def _scoreboard() -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Normalised scores per detector, and thresholds + raw scores where published."""
    normalised: dict[str, list[float]] = {}
    raw: dict[str, list[float]] = {}
    for line in (CORPUS / "SCOREBOARD.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not cells or not re.fullmatch(r"[A-Za-z]+", cells[0]):
            continue
        numbers = [float(c) for c in cells[1:] if re.fullmatch(r"-?\d+(\.\d+)?", c)]
        if len(numbers) == 3:
            normalised[cells[0]] = numbers
        elif len(numbers) == 6:
            raw[cells[0]] = numbers
    return normalised, raw


@pytest.mark.parametrize(
    "detector", ["ARTime", "contextOSE", "numenta", "windowedGaussian", "null"]
)
def test_scorer_reproduces_the_published_scores(detector: str) -> None:
    need(
        "NAB",
        (CORPUS / "SCOREBOARD.md").is_file(),
        f"no NAB subset at {CORPUS} (set STEADYMAIL_NAB_CORPUS)",
    )
    normalised, raw = _scoreboard()
    assert detector in normalised and detector in raw, "SCOREBOARD.md changed shape"
    result = score_results(CORPUS, CORPUS / "results", detector)
    assert result.files == 36 and result.windows == 60
    for i, r in enumerate(result.optimised):
        assert r.score == pytest.approx(normalised[detector][i], abs=0.1), r.profile
        threshold, raw_score = raw[detector][2 * i], raw[detector][2 * i + 1]
        assert r.threshold == pytest.approx(threshold, abs=1e-6), r.profile
        assert r.raw == pytest.approx(raw_score, abs=1e-3), r.profile


def _day(n: int) -> list[datetime]:
    start = datetime(2020, 1, 1)
    return [start + timedelta(minutes=5 * i) for i in range(n)]


def test_earliest_detection_in_a_window_earns_the_most() -> None:
    ts = _day(1000)
    window = [(ts[500], ts[599])]
    early = [0.0] * 1000
    early[500] = 1.0
    late = [0.0] * 1000
    late[590] = 1.0
    (pe, we), (pl, wl) = (scorable_points("a/b.csv", ts, s, window) for s in (early, late))
    e = score_corpus(pe, we, STANDARD, threshold=0.5).raw
    lt = score_corpus(pl, wl, STANDARD, threshold=0.5).raw
    assert e == pytest.approx(1.0)
    assert 0.0 < lt < e


def test_probation_false_positives_and_misses() -> None:
    ts = _day(1000)
    window = [(ts[500], ts[599])]
    scores = [0.0] * 1000
    scores[10] = 1.0  # in probation (first 150 rows): free
    scores[300] = 1.0  # no window before it: the full false-positive cost
    points, windows = scorable_points("a/b.csv", ts, scores, window)
    raw = score_corpus(points, windows, STANDARD, threshold=0.5).raw
    assert raw == pytest.approx(-1.0 - 0.11)  # the missed window and one false positive
    best = score_corpus(points, windows, STANDARD)
    assert best.threshold == 1.1 and best.raw == pytest.approx(-1.0)


def test_false_positive_right_after_a_window_is_cheap() -> None:
    assert scaled_sigmoid(0.01) > -0.05
    assert scaled_sigmoid(2.0) < -0.99
    assert scaled_sigmoid(3.5) == -1.0
    assert math.isclose(scaled_sigmoid(0.0), 0.0)
