"""The rollout state machine over in-memory regions (the e2e drives real ones over HTTP)."""

import logging
import random
from dataclasses import dataclass, field
from typing import Any

import pytest

from steadymail.rollout.controller import MAX_EXTENSIONS, Controller, Rollout
from steadymail.rollout.gates import Evidence
from steadymail.rollout.plan import Plan, parse_waves


@dataclass
class InMemoryRegions:
    """Regions as plain state: flags, alerts with start times, rate points with times."""

    flags: dict[str, dict[str, Any]] = field(default_factory=dict)
    alerts: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    rates: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    notes: list[tuple[str, int, str]] = field(default_factory=list)
    down: set[str] = field(default_factory=set)
    raised: list[tuple[str, str, str]] = field(default_factory=list)
    resolved: list[tuple[str, str]] = field(default_factory=list)

    def get_flag(self, region: str, flag: str) -> Any:
        return self.flags.setdefault(region, {}).get(flag)

    def set_flag(self, region: str, flag: str, value: Any, by: str, reason: str) -> None:
        if region in self.down:
            raise ConnectionError(region)
        self.flags.setdefault(region, {})[flag] = value

    def evidence(
        self, region: str, since: float, until: float, with_rates: bool = True
    ) -> Evidence:
        if region in self.down:
            return Evidence(region, reachable=False)
        alerts = [a for a in self.alerts.get(region, []) if since <= a["started_at"] <= until]
        points = [v for t, v in self.rates.get(region, []) if since <= t <= until]
        return Evidence(
            region, alerts, {"deferral_rate": points, "failure_rate": [0.0] * len(points)}
        )

    def note(self, region: str, alert_id: int, text: str) -> None:
        self.notes.append((region, alert_id, text))

    def alert(
        self, region: str, fingerprint: str, summary: str, labels: dict[str, Any], detail: str
    ) -> None:
        self.raised.append((region, fingerprint, summary))

    def resolve(self, region: str, fingerprint: str, detail: str) -> None:
        self.resolved.append((region, fingerprint))


def _traffic(regions: InMemoryRegions, rate: float = 0.05, until: float = 2000.0) -> None:
    rng = random.Random(1)
    for r in ("R1", "R2", "R3"):
        regions.rates[r] = [(t, max(0.0, rng.gauss(rate, 0.01))) for t in range(0, int(until), 5)]


def _run(c: Controller, r: Rollout, start: float, end: float, step: float = 1.0) -> None:
    t = start
    while t <= end and r.state in ("running", "rolling_back"):
        c.step(r, t)
        t += step


def _rollout(bake: float = 60, guard: float = 120) -> Rollout:
    plan = Plan("tracking.version", "v2", parse_waves("R3,R1,R2"), bake, guard)
    return Rollout.start(1, plan, "alice", 1000.0)


def test_healthy_value_promotes_through_every_wave_then_guards() -> None:
    regions = InMemoryRegions()
    _traffic(regions)
    c, r = Controller(regions, ["R1", "R2", "R3"]), _rollout()
    _run(c, r, 1000, 1400)
    assert r.state == "completed"
    assert all(regions.flags[x]["tracking.version"] == "v2" for x in ("R1", "R2", "R3"))
    assert list(r.applied) == ["R3", "R1", "R2"]
    assert r.applied["R1"] >= r.applied["R3"] + 60 and r.applied["R2"] >= r.applied["R1"] + 60


def test_restart_in_the_canary_rolls_it_back_and_halts() -> None:
    regions = InMemoryRegions()
    _traffic(regions)
    regions.flags["R3"] = {"tracking.version": "v1"}
    regions.alerts["R3"] = [
        {
            "id": 9,
            "name": "service_restarted",
            "summary": "R3-worker-1 restarted",
            "started_at": 1020,
        }
    ]
    c, r = Controller(regions, ["R1", "R2", "R3"]), _rollout()
    _run(c, r, 1000, 1400)
    assert r.state == "rolled_back" and "gate:restarts" in r.decision
    assert regions.flags["R3"]["tracking.version"] == "v1"  # the previous value, restored
    assert "tracking.version" not in regions.flags.get("R1", {})
    assert "tracking.version" not in regions.flags.get("R2", {})
    assert regions.notes and regions.notes[0][:2] == ("R3", 9)
    assert [x[:2] for x in regions.raised] == [("R3", "rollout:1")]
    assert regions.resolved == [("R3", "rollout:1")]


def test_guard_rolls_back_every_region_on_a_late_fault() -> None:
    regions = InMemoryRegions()
    _traffic(regions)
    regions.alerts["R3"] = [
        {
            "id": 3,
            "name": "service_restarted",
            "summary": "R3-worker-2 restarted",
            "started_at": 1250,
        }
    ]
    c, r = Controller(regions, ["R1", "R2", "R3"]), _rollout()
    _run(c, r, 1000, 1400)
    assert r.state == "rolled_back" and r.phase == "guard"
    assert all(regions.flags[x]["tracking.version"] is None for x in ("R1", "R2", "R3"))


def test_too_little_traffic_extends_the_bake_and_never_promotes() -> None:
    regions = InMemoryRegions()
    c, r = Controller(regions, ["R1", "R2", "R3"]), _rollout()
    _run(c, r, 1000, 1000 + 60 + 30 * (MAX_EXTENSIONS + 2))
    assert list(r.applied) == ["R3"]
    assert r.state == "rolled_back" and "inconclusive" in r.decision


def test_deferral_rate_regression_fails_the_wave() -> None:
    regions = InMemoryRegions()
    _traffic(regions)
    rng = random.Random(3)
    regions.rates["R3"] = [(t, v) for t, v in regions.rates["R3"] if t < 1000] + [
        (t, rng.gauss(0.2, 0.01)) for t in range(1000, 2000, 5)
    ]
    c, r = Controller(regions, ["R1", "R2", "R3"]), _rollout()
    _run(c, r, 1000, 1400)
    assert r.state == "rolled_back" and "deferral_rate" in r.decision


def test_unreachable_region_during_rollback_is_retried() -> None:
    regions = InMemoryRegions(flags={"R3": {"tracking.version": "v1"}})
    _traffic(regions)
    c, r = Controller(regions, ["R1", "R2", "R3"]), _rollout()
    c.step(r, 1000)  # applies to R3
    assert regions.flags["R3"]["tracking.version"] == "v2"
    regions.down.add("R3")
    c.roll_back(r, 1001, "asked by alice", "alice")
    assert r.state == "rolling_back" and r.pending_rollback == ["R3"]
    regions.down.discard("R3")
    c.step(r, 1002)
    assert r.state == "rolled_back" and regions.flags["R3"]["tracking.version"] == "v1"
    assert "alice" in r.decision


def test_unreachable_region_is_never_promoted() -> None:
    regions = InMemoryRegions()
    _traffic(regions)
    c, r = Controller(regions, ["R1", "R2", "R3"]), _rollout()
    c.step(r, 1000)
    regions.down.add("R3")
    _run(c, r, 1001, 1300)
    assert list(r.applied) == ["R3"] and r.state == "running"


def _completed_in_r3(regions: InMemoryRegions) -> tuple[Controller, Rollout]:
    """A rollout of R3 alone that passed its bake and guard."""
    _traffic(regions)
    plan = Plan("tracking.version", "v2", parse_waves("R3"), 60, 60)
    c, r = Controller(regions, ["R1", "R2", "R3"]), Rollout.start(1, plan, "alice", 1000.0)
    _run(c, r, 1000, 1300)
    assert r.state == "completed" and r.completed_at > 0
    return c, r


def _restart(region: str, at: float, alert_id: int, planned: bool = False) -> dict[str, Any]:
    return {
        "id": alert_id,
        "name": "service_restarted",
        "started_at": at,
        "summary": f"worker-1 restarted in {region}",
        "labels": {"planned": planned},
    }


def test_after_the_guard_a_restart_only_where_the_value_is_reverts_it() -> None:
    regions = InMemoryRegions()
    c, r = _completed_in_r3(regions)
    assert c.watch_after(r, r.completed_at + 60, 3600) == []  # nothing yet
    regions.alerts["R3"] = [_restart("R3", r.completed_at + 100, 9)]
    events = c.watch_after(r, r.completed_at + 101, 3600)
    assert r.state == "rolled_back" and r.decision.startswith("rolled back by revert_window")
    assert "regions on the old value (R1, R2) show none" in r.decision
    assert events[0].kind == "rollback_decided"
    assert regions.flags["R3"]["tracking.version"] is None
    assert regions.notes and regions.notes[0][:2] == ("R3", 9)


def test_a_symptom_the_old_regions_share_or_a_planned_restart_reverts_nothing() -> None:
    regions = InMemoryRegions()
    c, r = _completed_in_r3(regions)
    at = r.completed_at + 100
    regions.alerts["R3"] = [_restart("R3", at, 9), _restart("R3", at + 1, 10, planned=True)]
    regions.alerts["R1"] = [_restart("R1", at + 5, 3)]
    events = c.watch_after(r, at + 10, 3600)
    assert [e.kind for e in events] == ["revert_withheld"]
    assert c.watch_after(r, at + 12, 3600) == []  # judged once
    assert r.state == "completed" and regions.flags["R3"]["tracking.version"] == "v2"


def test_outside_the_revert_window_nothing_is_watched() -> None:
    regions = InMemoryRegions()
    c, r = _completed_in_r3(regions)
    regions.alerts["R3"] = [_restart("R3", r.completed_at + 7200, 9)]
    assert c.watch_after(r, r.completed_at + 7201, 3600) == []
    assert r.state == "completed"


def test_a_later_change_named_on_the_alert_takes_the_blame() -> None:
    regions = InMemoryRegions()
    c, r = _completed_in_r3(regions)
    later = {"kind": "flag", "subject": "fault.worker_exit", "text": "fault.worker_exit set"}
    mine = {"kind": "flag", "subject": "tracking.version", "text": "tracking.version v1→v2"}
    alert = _restart("R3", r.completed_at + 100, 9)
    alert["labels"]["suspects"] = [later, mine]
    regions.alerts["R3"] = [alert]
    events = c.watch_after(r, r.completed_at + 101, 3600)
    assert [e.kind for e in events] == ["revert_withheld"] and "later change" in events[0].detail
    assert r.state == "completed"
    # Named first, it is this change's.
    alert2 = _restart("R3", r.completed_at + 200, 10)
    alert2["labels"]["suspects"] = [mine, later]
    regions.alerts["R3"].append(alert2)
    c.watch_after(r, r.completed_at + 201, 3600)
    assert r.state == "rolled_back"


def test_with_every_region_on_the_value_only_an_alert_naming_the_change_reverts_it() -> None:
    regions = InMemoryRegions()
    _traffic(regions)
    c, r = Controller(regions, ["R1", "R2", "R3"]), _rollout(bake=60, guard=60)
    _run(c, r, 1000, 1400)
    assert r.state == "completed" and list(r.applied) == ["R3", "R1", "R2"]
    # An OOM kill a day later names no change: nothing to compare with, nothing reverted.
    regions.alerts["R1"] = [_restart("R1", r.completed_at + 100, 4)]
    events = c.watch_after(r, r.completed_at + 101, 86400)
    assert [e.kind for e in events] == ["revert_withheld"] and r.state == "completed"
    # A restart whose latest suspect is this change does revert it, in every region.
    alert = _restart("R2", r.completed_at + 200, 5)
    alert["labels"]["suspects"] = [{"kind": "flag", "subject": "tracking.version", "text": "t"}]
    regions.alerts["R2"] = [alert]
    c.watch_after(r, r.completed_at + 201, 86400)
    assert r.state == "rolled_back" and "names tracking.version" in r.decision
    assert all(regions.flags[x]["tracking.version"] is None for x in ("R1", "R2", "R3"))


class _Unreachable(InMemoryRegions):
    """Regions whose alert and timeline endpoints fail (flags still go through)."""

    def note(self, region: str, alert_id: int, text: str) -> None:
        raise ConnectionError(f"{region} timed out")

    def alert(
        self, region: str, fingerprint: str, summary: str, labels: dict[str, Any], detail: str
    ) -> None:
        raise ConnectionError(f"{region} timed out")


def test_a_region_call_that_fails_during_a_rollback_is_logged_not_fatal(
    caplog: pytest.LogCaptureFixture,
) -> None:
    regions = _Unreachable()
    _traffic(regions)
    regions.alerts["R3"] = [
        {"id": 9, "name": "service_restarted", "summary": "restarted", "started_at": 1020}
    ]
    c, r = Controller(regions, ["R1", "R2", "R3"]), _rollout()
    with caplog.at_level(logging.WARNING, logger="steadymail.rollout"):
        _run(c, r, 1000, 1400)
    assert r.state == "rolled_back"  # the rollback went on
    failed = [m for m in caplog.messages if "region_call_failed" in m]
    assert any("call=note rollout=1" in m and "region=R3" in m for m in failed), failed
    assert any("call=alert rollout=1 flag=tracking.version region=R3" in m for m in failed)
    assert all("ConnectionError: R3 timed out" in m for m in failed)
