"""Cross-validation by file: sources kept together, folds even and deterministic, constants and
thresholds chosen on the training folds only."""

from datetime import datetime, timedelta

import pytest

from steadymail.errors import ValidationError
from steadymail.monitor.nab.corpus import Profile, Series
from steadymail.monitor.nab.crossval import (
    Candidate,
    assign_folds,
    cross_validate,
    source_groups,
)

STANDARD = Profile("standard", 1.0, 0.11, 1.0)
LOW_FN = Profile("reward_low_FN_rate", 1.0, 0.11, 2.0)
T0 = datetime(2026, 1, 1)


def test_files_of_one_source_are_grouped() -> None:
    keys = [
        "realAWSCloudwatch/ec2_cpu_utilization_24ae8d.csv",
        "realAWSCloudwatch/ec2_cpu_utilization_5f5533.csv",
        "realAWSCloudwatch/rds_cpu_utilization_e47b3b.csv",
        "realTraffic/occupancy_6005.csv",
        "realTraffic/speed_6005.csv",
        "realTraffic/speed_t4013.csv",
        "realTraffic/TravelTime_387.csv",
        "realTweets/Twitter_volume_AAPL.csv",  # one measure, two tickers
        "realTweets/Twitter_volume_FB.csv",
        "realKnownCause/nyc_taxi.csv",
        "artificialWithAnomaly/art_daily_jumpsup.csv",
        "artificialWithAnomaly/art_daily_jumpsdown.csv",
        # The same words in another category are another source.
        "otherCategory/nyc_taxi.csv",
    ]
    groups = source_groups(keys)
    assert sorted(keys) == sorted(k for g in groups for k in g)
    assert [
        "realTraffic/occupancy_6005.csv",  # the same sensor as speed_6005
        "realTraffic/speed_6005.csv",
        "realTraffic/speed_t4013.csv",  # the same measure as speed_6005
    ] in groups
    assert ["realTraffic/TravelTime_387.csv"] in groups
    assert keys[:2] in groups and [keys[2]] in groups
    assert ["realTweets/Twitter_volume_AAPL.csv", "realTweets/Twitter_volume_FB.csv"] in groups
    assert ["realKnownCause/nyc_taxi.csv"] in groups and ["otherCategory/nyc_taxi.csv"] in groups
    assert keys[11:9:-1] in groups  # one generator: art_daily_*
    assert len(groups) == 8


def test_folds_keep_groups_whole_and_even() -> None:
    groups = [["a1", "a2", "a3"], ["b1", "b2"], ["c"], ["d"], ["e"], ["f"]]
    folds = assign_folds(groups, 3)
    assert folds == assign_folds(list(reversed(groups)), 3)  # order of input does not matter
    assert sorted(len(f) for f in folds) == [3, 3, 3]
    for g in groups:
        assert sum(set(g) <= set(f) for f in folds) == 1
    with pytest.raises(ValidationError):
        assign_folds(groups, 1)
    with pytest.raises(ValidationError):
        assign_folds(groups, 7)


class Spikes:
    """Scores 1 at a value above 5, else 0."""

    def update(self, timestamp: object, value: float) -> float:
        return 1.0 if value > 5 else 0.0


class Never:
    def update(self, timestamp: object, value: float) -> float:
        return 0.0


def series(key: str, spikes: list[int], windows: list[int], n: int = 400) -> Series:
    """n points of 0 with a spike (10) at each index in ``spikes`` and a window of 21 points
    centred on each index in ``windows``."""
    ts = [T0 + timedelta(minutes=i) for i in range(n)]
    values = [10.0 if i in spikes else 0.0 for i in range(n)]
    return Series(key, ts, values, [(ts[c - 10], ts[c + 10]) for c in windows])


def test_constants_and_thresholds_are_chosen_on_the_other_folds() -> None:
    # Source a: the spikes are the anomalies. Source b: spikes outside its windows.
    corpus = [
        series("cat/a_1.csv", spikes=[200, 300], windows=[200, 300]),
        series("cat/a_2.csv", spikes=[250], windows=[250]),
        series("cat/b_1.csv", spikes=[100, 150, 200, 250, 300], windows=[350]),
        series("cat/b_2.csv", spikes=[120, 220, 320], windows=[370]),
    ]
    candidates = [Candidate("never", Never), Candidate("spikes", Spikes)]
    result = cross_validate("toy", corpus, candidates, [STANDARD, LOW_FN], 2, 0.5)
    by_fold = {f.fold: f for f in result.folds}
    # Fold 1 holds source a: trained on b, where spikes only cost, "never" is chosen, and a's
    # perfectly detectable windows are missed: no peeking at the held-out files.
    assert [by_fold[1].candidate, by_fold[2].candidate] == ["never", "spikes"]
    assert by_fold[1].files == 2 and by_fold[1].windows == 3
    assert by_fold[1].score == pytest.approx(0.0)  # the null detector's score
    assert by_fold[2].score is not None and by_fold[2].score < 0  # false alarms, windows missed
    standard = result.profiles[0]
    assert standard.profile == "standard"
    assert standard.mean == pytest.approx((by_fold[1].score + by_fold[2].score) / 2)
    assert standard.spread > 0
    # Pooled over all five windows: b's raw (five false alarms, missed windows) adds to a's -3.
    assert standard.pooled < 0
    # The default ("never") at the production threshold detects nothing: 0 on every profile.
    assert result.fixed == [("standard", 0.0), ("reward_low_FN_rate", 0.0)]


def test_the_best_candidate_wins_when_every_source_agrees() -> None:
    # Each spike at the first point of its window: a detection there earns the full reward.
    corpus = [
        series(f"cat/s{i}x.csv", spikes=[150 + 20 * i], windows=[160 + 20 * i]) for i in range(4)
    ]
    candidates = [Candidate("never", Never), Candidate("spikes", Spikes)]
    result = cross_validate("toy", corpus, candidates, [STANDARD], 4)
    assert {f.candidate for f in result.folds} == {"spikes"}
    assert all(f.score == pytest.approx(100.0) for f in result.folds)
    assert result.profiles[0].pooled == pytest.approx(100.0)
    assert result.fixed == []
