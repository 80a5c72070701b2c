"""Gates: judge a wave's regions against their own pre-change baseline and against regions still
on the old value. Pure functions over evidence fetched from the regions' APIs.

- ``restarts``: any restart, death or crash loop of a service after the change fails the wave
  (slow, periodic faults count: one unexpected restart is enough);
- ``stalls``: any stalled send or region without a live worker;
- ``anomalies``: any anomaly alert from the region's detectors (throughput, latency, rates);
- ``error_rate``: deferral and failure rates after the change are compared with the region's
  baseline and with the old-value regions by a one-sided Mann-Whitney U test; fewer than
  ``min_points`` intervals on either side is *inconclusive* (the bake is extended, never passed).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

HARD_GATES = {
    "restarts": ("service_restarted", "service_died", "crash_loop"),
    "stalls": ("send_stalled", "no_live_worker"),
    "anomalies": ("metric_anomaly",),
}
RATE_SERIES = ("deferral_rate", "failure_rate")


@dataclass
class Evidence:
    """What one region showed over a span: alerts that fired in it and rate points."""

    region: str
    alerts: list[dict[str, Any]] = field(default_factory=list)
    rates: dict[str, list[float]] = field(default_factory=dict)
    reachable: bool = True


@dataclass(frozen=True)
class Verdict:
    gate: str
    region: str
    status: str  # pass | fail | inconclusive
    reason: str
    alert_id: int | None = None


def mann_whitney_greater(x: Sequence[float], y: Sequence[float]) -> float:
    """One-sided p-value that ``x`` tends to be larger than ``y`` (normal approximation of U
    with tie and continuity corrections). 1.0 when there is nothing to compare."""
    n1, n2 = len(x), len(y)
    if n1 == 0 or n2 == 0:
        return 1.0
    pooled = sorted([(v, 0) for v in x] + [(v, 1) for v in y])
    ranks = [0.0] * len(pooled)
    ties = 0.0
    i = 0
    while i < len(pooled):
        j = i
        while j + 1 < len(pooled) and pooled[j + 1][0] == pooled[i][0]:
            j += 1
        rank = (i + j) / 2 + 1
        for k in range(i, j + 1):
            ranks[k] = rank
        t = j - i + 1
        ties += t**3 - t
        i = j + 1
    r1 = sum(r for r, (_, group) in zip(ranks, pooled, strict=True) if group == 0)
    u = r1 - n1 * (n1 + 1) / 2
    n = n1 + n2
    var = n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1))) if n > 1 else 0.0
    if var <= 0:
        return 1.0
    z = (u - n1 * n2 / 2 - 0.5) / math.sqrt(var)
    return 0.5 * math.erfc(z / math.sqrt(2))


def _median(v: Sequence[float]) -> float:
    s = sorted(v)
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2


def hard_alerts(gates: Sequence[str], evidence: Evidence) -> list[dict[str, Any]]:
    """The alerts that fail any of ``gates``, oldest first. A restart after a graceful stop (a
    deploy, an operator's restart) is planned, and fails nothing."""
    names = {n for g in gates for n in HARD_GATES.get(g, ())}
    hits = [
        a
        for a in evidence.alerts
        if a.get("name") in names and not (a.get("labels") or {}).get("planned")
    ]
    return sorted(hits, key=lambda a: float(a.get("started_at", 0)))


def judge_hard(gates: Sequence[str], evidence: Evidence) -> list[Verdict]:
    """Alert-based gates: a single matching alert fails the region."""
    out: list[Verdict] = []
    for gate in gates:
        if gate not in HARD_GATES:
            continue
        hits = hard_alerts([gate], evidence)
        if hits:
            first = min(hits, key=lambda a: float(a.get("started_at", 0)))
            out.append(
                Verdict(gate, evidence.region, "fail", str(first.get("summary")), first.get("id"))
            )
        else:
            out.append(Verdict(gate, evidence.region, "pass", "no alert"))
    return out


def judge_rates(
    after: Evidence,
    baseline: Evidence,
    controls: Sequence[Evidence],
    min_points: int = 5,
    alpha: float = 0.01,
    min_increase: float = 0.02,
) -> list[Verdict]:
    """Rates after the change against the region's baseline and the old-value regions."""
    out: list[Verdict] = []
    for series in RATE_SERIES:
        now = after.rates.get(series, [])
        before = baseline.rates.get(series, [])
        if len(now) < min_points or len(before) < min_points:
            out.append(
                Verdict(
                    "error_rate",
                    after.region,
                    "inconclusive",
                    f"{series}: {len(now)} intervals after, {len(before)} before "
                    f"(need {min_points} each)",
                )
            )
            continue
        comparisons = [("its baseline", before)] + [
            (f"{c.region} (old value)", c.rates.get(series, []))
            for c in controls
            if len(c.rates.get(series, [])) >= min_points
        ]
        failed = None
        for label, other in comparisons:
            p = mann_whitney_greater(now, other)
            increase = _median(now) - _median(other)
            if p < alpha and increase >= min_increase:
                failed = (
                    f"{series} {_median(now):.1%} against {_median(other):.1%} in {label} "
                    f"(Mann-Whitney p={p:.2g})"
                )
                break
        out.append(
            Verdict(
                "error_rate",
                after.region,
                "fail" if failed else "pass",
                failed or f"{series} not higher than {len(comparisons)} reference(s)",
            )
        )
    return out
