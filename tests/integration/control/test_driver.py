"""A broken rollout driver is never silent: a tick that raises is logged with its traceback and
the loop goes on; a rollout that fails to step is logged with its id and the others still step;
a region call that fails during a rollback is logged with the rollout and the region."""

import logging
import threading
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from steadymail.clock import FakeClock
from steadymail.config import Settings
from steadymail.control.app import create_control_app
from steadymail.control.service import ControlPlane
from steadymail.rollout.controller import Controller, Event, Rollout
from steadymail.rollout.plan import Plan, parse_waves
from steadymail.services import control_plane as records
from tests.helpers import wait_until
from tests.unit.rollout.test_controller import InMemoryRegions, _traffic

KEY = "k" * 32


def test_a_tick_that_raises_is_logged_and_the_driver_keeps_going(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(data_dir=tmp_path, control_api_key=KEY, control_interval=0.01)
    app = create_control_app(settings)
    ticks = []
    lock = threading.Lock()

    def tick() -> None:
        with lock:
            ticks.append(len(ticks) + 1)
            n = len(ticks)
        if n <= 3:
            raise RuntimeError(f"driver broken on tick {n}")

    app.state.plane.tick = tick
    caplog.set_level(logging.ERROR, logger="steadymail.control")
    with TestClient(app):
        # It went on ticking after the failures, and recovered.
        wait_until(lambda: len(ticks) >= 6, timeout=10)
    failed = [r for r in caplog.records if "control_tick_failed" in r.getMessage()]
    assert len(failed) == 3
    assert [r.getMessage().rsplit("=", 1)[1] for r in failed] == ["1", "2", "3"]
    for n, record in enumerate(failed, start=1):
        assert record.exc_info is not None
        assert str(record.exc_info[1]) == f"driver broken on tick {n}"


def _plane(tmp_path: Path) -> tuple[ControlPlane, InMemoryRegions]:
    settings = Settings(data_dir=tmp_path, control_db=tmp_path / "control.db")
    plane = ControlPlane(settings, records.open_database(settings), FakeClock(1000.0))
    regions = InMemoryRegions()
    _traffic(regions)
    plane.regions = regions  # type: ignore[assignment]
    plane.controller = Controller(regions, ["R1", "R2", "R3"])
    return plane, regions


def _started(plane: ControlPlane, flag: str) -> Rollout:
    r = Rollout.start(
        records.next_id(plane.engine), Plan(flag, "v2", parse_waves("R3,R1"), 60, 60), "bob", 1000
    )
    records.insert_rollout(plane.engine, r, 1000.0)
    return r


def test_a_rollout_that_fails_to_step_is_logged_with_its_id_and_the_others_step(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    plane, regions = _plane(tmp_path)
    broken = _started(plane, "tracking.version")
    healthy = _started(plane, "fault.worker_exit")
    step = plane.controller.step

    def step_or_fail(r: Rollout, now: float) -> list[Event]:
        if r.id == broken.id:
            raise KeyError("a bug in the controller")
        return step(r, now)

    monkeypatch.setattr(plane.controller, "step", step_or_fail)
    caplog.set_level(logging.WARNING, logger="steadymail.control")
    plane.tick()
    plane.tick()  # and again next tick: every tick it lasts is in the log

    failed = [r for r in caplog.records if "rollout_step_failed" in r.getMessage()]
    assert len(failed) == 2
    assert all(f"id={broken.id} flag=tracking.version" in r.getMessage() for r in failed)
    assert all(r.exc_info is not None and r.exc_info[0] is KeyError for r in failed)
    # The other rollout was stepped: its first wave applied and recorded.
    assert regions.flags["R3"]["fault.worker_exit"] == "v2"
    kinds = [e["kind"] for e in records.events(plane.engine, healthy.id)]
    assert "applied" in kinds
    assert records.events(plane.engine, broken.id) == []


def test_a_region_call_that_fails_during_a_rollback_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Failing(InMemoryRegions):
        def alert(self, region: str, *args: object) -> None:
            raise ConnectionError(f"{region} refused the incident")

    regions = Failing()
    controller = Controller(regions, ["R1", "R3"])
    r = Rollout.start(7, Plan("tracking.version", "v2", parse_waves("R3,R1"), 60, 60), "bob", 0)
    controller.step(r, 0.0)  # R3 gets v2
    caplog.set_level(logging.WARNING, logger="steadymail.rollout")
    controller.roll_back(r, 1.0, "asked", "alice")
    assert r.state == "rolled_back"  # the rollback itself went on
    assert regions.flags["R3"]["tracking.version"] is None
    [record] = [x for x in caplog.records if "call=alert" in x.getMessage()]
    assert "region_call_failed" in record.getMessage()
    assert "rollout=7 flag=tracking.version region=R3" in record.getMessage()
    assert "R3 refused the incident" in record.getMessage()
