"""Gates: the rank test, inconclusive data, hard gates."""

import itertools
import random

from steadymail.rollout.gates import (
    Evidence,
    judge_hard,
    judge_rates,
    mann_whitney_greater,
)


def _exact_p_greater(x: list[float], y: list[float]) -> float:
    """P(U >= u_observed) over every way to split the pooled values (no ties here)."""
    pooled = x + y

    def u(a: list[float], b: list[float]) -> float:
        return sum(1.0 if p > q else 0.5 if p == q else 0.0 for p in a for q in b)

    observed = u(x, y)
    count = total = 0
    for chosen in itertools.combinations(range(len(pooled)), len(x)):
        a = [pooled[i] for i in chosen]
        b = [pooled[i] for i in range(len(pooled)) if i not in chosen]
        total += 1
        count += u(a, b) >= observed
    return count / total


def test_rank_test_agrees_with_the_exact_distribution() -> None:
    rng = random.Random(4)
    for shift in (0.0, 0.5, 1.0, 2.0):
        x = [rng.gauss(shift, 1) for _ in range(7)]
        y = [rng.gauss(0, 1) for _ in range(7)]
        assert abs(mann_whitney_greater(x, y) - _exact_p_greater(x, y)) < 0.03


def test_rank_test_edge_cases() -> None:
    assert mann_whitney_greater([], [1.0]) == 1.0
    assert mann_whitney_greater([0.0] * 8, [0.0] * 8) == 1.0
    assert mann_whitney_greater([1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12]) > 0.99


def test_rates_fail_pass_and_inconclusive() -> None:
    rng = random.Random(2)
    base = Evidence("R3", rates={"deferral_rate": [rng.gauss(0.05, 0.01) for _ in range(30)]})
    worse = Evidence("R3", rates={"deferral_rate": [rng.gauss(0.15, 0.01) for _ in range(10)]})
    same = Evidence("R3", rates={"deferral_rate": [rng.gauss(0.05, 0.01) for _ in range(10)]})
    for ev in (base, worse, same):
        ev.rates["failure_rate"] = [0.0] * len(ev.rates["deferral_rate"])
    fail = [v for v in judge_rates(worse, base, []) if v.status == "fail"]
    assert fail and "deferral_rate" in fail[0].reason and "Mann-Whitney" in fail[0].reason
    assert all(v.status == "pass" for v in judge_rates(same, base, []))
    thin = Evidence("R3", rates={"deferral_rate": [0.3, 0.4], "failure_rate": [0.0, 0.0]})
    assert {v.status for v in judge_rates(thin, base, [])} == {"inconclusive"}
    # Against a control region still on the old value, with no baseline change of its own.
    control = Evidence("R1", rates=dict(base.rates))
    assert [v for v in judge_rates(worse, same, [control]) if v.status == "fail"]


def test_one_restart_fails_the_wave() -> None:
    ev = Evidence(
        "R3",
        alerts=[
            {
                "id": 4,
                "name": "service_restarted",
                "summary": "R3-worker-1 restarted",
                "started_at": 5,
            },
            {"id": 5, "name": "metric_anomaly", "summary": "throughput", "started_at": 6},
        ],
    )
    verdicts = {v.gate: v for v in judge_hard(["restarts", "stalls", "anomalies"], ev)}
    assert verdicts["restarts"].status == "fail" and verdicts["restarts"].alert_id == 4
    assert verdicts["stalls"].status == "pass"
    assert verdicts["anomalies"].status == "fail"
