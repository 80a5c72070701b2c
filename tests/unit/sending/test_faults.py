"""Fault injection: each fault fires at its own point, once armed, and nowhere else."""

import signal
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from steadymail.clock import FakeClock
from steadymail.config import Settings
from steadymail.sending import faults as faults_module
from steadymail.sending.faults import FAULT_EXIT_CODE, Faults
from steadymail.sending.flag_view import FlagView
from steadymail.store.records import FlagRow


class Exited(Exception):
    pass


def _faults(tmp_path: Path, clock: FakeClock, **settings: object) -> tuple[Faults, FlagView]:
    flags = FlagView(create_engine("sqlite://"))
    s = Settings(data_dir=tmp_path, **settings)  # type: ignore[arg-type]
    return Faults(s, flags, clock), flags


def _set(flags: FlagView, name: str, value: object, at: float) -> None:
    flags.update([FlagRow(name=name, value=value, updated_at=at, updated_by="test")])


def test_worker_exit_waits_for_its_delay_and_the_workers_age(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exits: list[int] = []

    def fake_exit(code: int) -> None:
        exits.append(code)
        raise Exited

    monkeypatch.setattr(faults_module.os, "_exit", fake_exit)
    monkeypatch.setattr(faults_module.logging, "shutdown", lambda: None)
    clock = FakeClock(1000.0)
    faults, flags = _faults(tmp_path, clock)
    faults.start(create_engine("sqlite://"), clock.now())
    said: list[str] = []
    faults.before_exit = said.append
    _set(flags, "fault.worker_exit", {"every": 10, "after": 5}, at=1000.0)
    clock.advance(7)  # armed, but the worker is younger than `every`
    faults.at("beating")
    clock.advance(4)
    faults.at("window")  # not a point where it exits
    assert exits == []
    with pytest.raises(Exited):
        faults.at("claiming")
    assert exits == [FAULT_EXIT_CODE]
    assert said and said[0].startswith("fault.worker_exit injected: exit 70 after 11s")


def test_tracking_crash_is_armed_after_its_delay(tmp_path: Path) -> None:
    clock = FakeClock(1000.0)
    faults, flags = _faults(tmp_path, clock)
    assert faults.tracking_crash_one_in() == 0
    _set(flags, "fault.tracking_crash", {"one_in": 40, "after": 30}, at=1000.0)
    clock.advance(29)
    assert faults.tracking_crash_one_in() == 0
    clock.advance(1)
    assert faults.tracking_crash_one_in() == 40


def test_crash_on_recipient_kills_only_on_that_recipient(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kills: list[tuple[int, int]] = []
    monkeypatch.setattr(faults_module.os, "kill", lambda pid, sig: kills.append((pid, sig)))
    faults, _ = _faults(tmp_path, FakeClock(), fault_crash_on="poison@example.com")
    faults.sending_to("someone@example.com")
    assert kills == []
    faults.sending_to("poison@example.com")
    assert [sig for _, sig in kills] == [signal.SIGKILL]
