"""Detector contract: scores in [0, 1], strictly causal, bounded memory, and they do detect."""

import math
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from steadymail.monitor.anomaly import make_detector, names
from steadymail.monitor.anomaly.novelty import FIRE_AT, NoveltyDetector

finite = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(st.lists(finite, min_size=1, max_size=800), st.sampled_from(names()))
def test_scores_are_in_unit_interval(values: list[float], name: str) -> None:
    det = make_detector(name)
    for i, v in enumerate(values):
        score = det.update(float(i), v)
        assert 0.0 <= score <= 1.0 and not math.isnan(score)


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=700),
    st.sampled_from(names()),
)
def test_extreme_values_score_in_unit_interval(values: list[float], name: str) -> None:
    # Squares of differences near the float range overflow: no NaN, no exception, ever.
    det = make_detector(name)
    for i, v in enumerate(values):
        score = det.update(float(i * 300), v)
        assert 0.0 <= score <= 1.0 and not math.isnan(score)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(finite, min_size=400, max_size=700),
    st.lists(finite, min_size=1, max_size=100),
    st.sampled_from(names()),
)
def test_strictly_causal(prefix: list[float], futures: list[float], name: str) -> None:
    # A detector that has seen the future first (sharing no state with the second one) scores
    # the prefix exactly as one that never sees it.
    a = make_detector(name)
    seen_all = [a.update(float(i), v) for i, v in enumerate(prefix + futures)]
    b = make_detector(name)
    prefix_only = [b.update(float(i), v) for i, v in enumerate(prefix)]
    assert seen_all[: len(prefix)] == prefix_only


def test_context_memory_is_bounded() -> None:
    det = NoveltyDetector(max_contexts=256)
    rng = random.Random(7)
    for i in range(50_000):
        det.update(float(i), rng.uniform(-1e6, 1e6) * (1 + i / 100))  # ever-new bins
    assert len(det._seen) <= 256


def _steady(n: int, seed: int, level: float = 100.0, noise: float = 5.0) -> list[float]:
    rng = random.Random(seed)
    return [level + rng.gauss(0.0, noise) + 10 * math.sin(i / 20) for i in range(n)]


def test_flags_a_halved_level_and_stays_quiet_on_noise() -> None:
    det = NoveltyDetector(warmup=100, rest=50)
    quiet = [det.update(float(i), v) for i, v in enumerate(_steady(1000, seed=1))]
    assert max(quiet[300:]) < FIRE_AT, "false alarm on a steady noisy series"
    after = [det.update(float(1000 + i), v / 2) for i, v in enumerate(_steady(5, seed=2))]
    assert after[0] >= FIRE_AT or after[1] >= FIRE_AT, after


def test_refractory_period_after_a_detection() -> None:
    det = NoveltyDetector(warmup=100, rest=50)
    for i, v in enumerate(_steady(600, seed=3)):
        det.update(float(i), v)
    scores = [det.update(float(600 + i), 10_000.0 + i) for i in range(60)]
    fired = [i for i, s in enumerate(scores) if s >= FIRE_AT]
    assert fired and fired[0] == 0
    assert all(s == 0.0 for s in scores[1:50]), "the series must rest after an alarm"
