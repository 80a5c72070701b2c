"""The time-of-day baseline, and the product's detector that combines it with novelty."""

import random
from datetime import UTC, datetime, timedelta, timezone

from steadymail.monitor.anomaly import make_detector
from steadymail.monitor.anomaly.combined import CombinedDetector
from steadymail.monitor.anomaly.novelty import FIRE_AT
from steadymail.monitor.anomaly.seasonal import SeasonalDetector, seconds_of_day

START = datetime(2026, 1, 5)  # naive, as NAB's timestamps: UTC
STEP = timedelta(minutes=5)


def _day_and_night(days: int, seed: int) -> list[tuple[datetime, float]]:
    """Busy by day (08:00-20:00, ~100), quiet by night (~20), with noise, every 5 minutes."""
    rng = random.Random(seed)
    out = []
    for i in range(days * 288):
        t = START + i * STEP
        level = 100.0 if 8 <= t.hour < 20 else 20.0
        out.append((t, level + rng.gauss(0.0, 3.0)))
    return out


def test_seconds_of_day_reads_naive_datetimes_and_epoch_seconds_alike() -> None:
    t = datetime(2026, 3, 1, 13, 45, 30)
    assert seconds_of_day(t) == 13 * 3600 + 45 * 60 + 30
    assert seconds_of_day(t.replace(tzinfo=UTC).timestamp()) == seconds_of_day(t)
    # An aware time in another zone is the same instant: 18:45:30 at UTC+5 is 13:45:30 UTC.
    east = datetime(2026, 3, 1, 18, 45, 30, tzinfo=timezone(timedelta(hours=5)))
    assert seconds_of_day(east) == seconds_of_day(t)
    assert seconds_of_day(t.replace(microsecond=500_000)) == seconds_of_day(t) + 0.5


def test_a_night_level_at_noon_is_flagged_where_novelty_alone_sees_nothing() -> None:
    series = _day_and_night(8, seed=1)
    # Day 8, 12:00-14:00: the night's level in the middle of the day (a dead afternoon).
    onset = 7 * 288 + 12 * 12
    for k in range(onset, onset + 24):
        t, _ = series[k]
        series[k] = (t, 20.0 + random.Random(k).gauss(0.0, 3.0))
    combined, novelty = make_detector("steadymail"), make_detector("steadymail-novelty")
    both = [combined.update(t, v) for t, v in series]
    alone = [novelty.update(t, v) for t, v in series]
    assert max(both[onset : onset + 3]) >= FIRE_AT, both[onset : onset + 3]
    # Both quiet before it (days 2-7, after learning), so the alarm is the anomaly's.
    assert max(both[2 * 288 : onset]) < FIRE_AT
    # The drop from day to night level is a daily event: a context novelty has learned.
    assert max(alone[onset : onset + 24]) < FIRE_AT


def test_the_same_value_is_usual_at_night_and_anomalous_by_day() -> None:
    det = SeasonalDetector()
    for t, v in _day_and_night(5, seed=2):
        det.update(t, v)
    night = START + timedelta(days=5, hours=2)
    day = START + timedelta(days=5, hours=14)
    assert det.update(night, 20.0) < 0.2
    assert det.update(day, 20.0) >= FIRE_AT


def test_memory_is_a_fixed_number_of_slots() -> None:
    det = SeasonalDetector(slots=48)
    rng = random.Random(3)
    for i in range(20_000):
        det.update(i * 37.0, rng.uniform(-1e6, 1e6))
    assert len(det._means) == len(det._vars) == len(det._counts) == 48


def test_one_rest_period_covers_both_parts() -> None:
    det = CombinedDetector(rest=50)
    for t, v in _day_and_night(4, seed=4):
        det.update(t, v)
    t0 = START + timedelta(days=4, hours=12)
    scores = [det.update(t0 + i * STEP, 5_000.0 + i) for i in range(60)]
    fired = [i for i, s in enumerate(scores) if s >= FIRE_AT]
    assert fired and fired[0] == 0
    assert all(s == 0.0 for s in scores[1:50]), "the series must rest after an alarm"
