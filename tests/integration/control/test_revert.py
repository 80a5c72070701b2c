"""A person's revert through the control plane: every region back to its previous value at
once, inside a freeze window and without bake rules, audited with who and why; a rollout of the
flag still in progress is rolled back instead."""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from steadymail.clock import FakeClock
from steadymail.config import Settings
from steadymail.control.regions import RegionUnreachable
from steadymail.control.service import ControlPlane, PolicyViolation
from steadymail.errors import ValidationError
from steadymail.rollout.controller import Controller, Rollout
from steadymail.rollout.plan import Plan, parse_waves
from steadymail.services import control_plane as store
from tests.unit.rollout.test_controller import InMemoryRegions, _traffic

FREEZE_ALWAYS = """
canary = "R3"
min_bake = "1s"
min_guard = "1s"
[[freeze]]
reason = "year-end freeze"
days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
"""


@dataclass
class Regions(InMemoryRegions):
    """In-memory regions that keep each flag's history, newest first, as the region API does."""

    history: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return ["R1", "R2", "R3"]

    def set_flag(self, region: str, flag: str, value: Any, by: str, reason: str) -> None:
        previous = self.get_flag(region, flag)
        super().set_flag(region, flag, value, by, reason)
        self.history.setdefault(region, []).insert(
            0, {"name": flag, "value": value, "previous": previous, "by": by}
        )

    def flag_values(self, region: str) -> dict[str, Any]:
        if region in self.down:
            raise RegionUnreachable(region)
        return dict(self.flags.get(region, {}))

    def flag_history(self, region: str, flag: str) -> list[dict[str, Any]]:
        return [h for h in self.history.get(region, []) if h["name"] == flag]


def _plane(tmp_path: Path) -> tuple[ControlPlane, Regions]:
    (tmp_path / "policy.toml").write_text(FREEZE_ALWAYS)
    settings = Settings(
        data_dir=tmp_path, control_db=tmp_path / "control.db", policy_file=tmp_path / "policy.toml"
    )
    engine = store.open_database(settings)
    plane = ControlPlane(settings, engine, FakeClock(1_800_000_000.0))
    regions = Regions()
    plane.regions = regions  # type: ignore[assignment]
    plane.controller = Controller(regions, regions.names)
    return plane, regions


def test_a_revert_restores_every_region_in_a_freeze_and_is_audited(tmp_path: Path) -> None:
    plane, regions = _plane(tmp_path)
    for r in ("R3", "R1"):
        regions.set_flag(r, "tracking.version", "v1", "ops", "")
        regions.set_flag(r, "tracking.version", "v2", "rollout 1", "")
    # A new rollout is refused in the freeze ...
    with pytest.raises(PolicyViolation, match="freeze_window"):
        plane.start(plane.plan("tracking.version", "off", "R3,R1,R2", 1, 1), "bob")
    # ... a revert is not: R3 and R1 go back to v1, R2 (never changed) is left alone.
    r = plane.revert("tracking.version", "alice", "clicks 404 since v2")
    assert r.kind == "revert" and r.state == "rolled_back"
    assert regions.flags["R3"]["tracking.version"] == "v1"
    assert regions.flags["R1"]["tracking.version"] == "v1"
    assert "tracking.version" not in regions.flags.get("R2", {})
    trail = store.events(plane.engine, r.id)
    asked = trail[0]
    assert (asked["kind"], asked["actor"], asked["detail"]) == (
        "revert_asked",
        "alice",
        "clicks 404 since v2",
    )
    assert {e["region"] for e in trail if e["kind"] == "rolled_back"} == {"R1", "R3"}
    # Each region that had the value gets an incident saying who and why.
    assert {(reg, fp) for reg, fp, _ in regions.raised} == {
        ("R1", f"rollout:{r.id}"),
        ("R3", f"rollout:{r.id}"),
    }
    assert all("alice" in summary for _, _, summary in regions.raised)


def test_a_revert_needs_a_known_flag_a_person_and_a_reason(tmp_path: Path) -> None:
    plane, _ = _plane(tmp_path)
    with pytest.raises(ValidationError, match="unknown flag"):
        plane.revert("no.such", "alice", "x")
    with pytest.raises(ValidationError, match="who asks"):
        plane.revert("tracking.version", "alice", " ")
    with pytest.raises(ValidationError, match="nothing to revert"):
        plane.revert("tracking.version", "alice", "why not")


def _completed_rollout(plane: ControlPlane, regions: Regions) -> int:
    """tracking.version v2 rolled out to R3 then R1 (R2 never got it) and completed."""
    _traffic(regions)
    plan = Plan("tracking.version", "v2", parse_waves("R3,R1"), 60, 60)
    r = Rollout.start(store.next_id(plane.engine), plan, "bob", 1000.0)
    store.insert_rollout(plane.engine, r, 1000.0)
    t = 1000.0
    while r.state == "running":
        assert t < 1000.0 + 3600, "the rollout ran an hour of steps without ending"
        plane.controller.step(r, t)
        t += 1
    assert r.state == "completed"
    store.save(plane.engine, r, [], t)
    return r.id


def test_a_revert_undoes_the_latest_rollout_only_where_its_value_still_is(tmp_path: Path) -> None:
    plane, regions = _plane(tmp_path)
    rid = _completed_rollout(plane, regions)
    regions.set_flag("R1", "tracking.version", "off", "carol", "by hand since")
    regions.down.add("R3")  # R3 does not answer: rolled back as soon as it does
    r = plane.revert("tracking.version", "alice", "clicks 404")
    assert r.id == rid and r.state == "rolling_back"
    kinds = [(e["kind"], e["region"]) for e in store.events(plane.engine, rid)]
    assert ("revert_skipped", "R1") in kinds and ("rollback_retry", "R3") in kinds
    assert regions.flags["R1"]["tracking.version"] == "off"  # carol's value stays
    regions.down.clear()
    plane.tick()  # the driver retries
    assert store.load(plane.engine, rid).state == "rolled_back"  # type: ignore[union-attr]
    assert regions.flags["R3"]["tracking.version"] is None
    # Nothing left to undo: a second revert is refused instead of re-applying v2.
    with pytest.raises(ValidationError, match="already rolled_back"):
        plane.revert("tracking.version", "alice", "again")
