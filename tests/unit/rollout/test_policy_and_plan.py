"""Flags, plans and the risk policy: a plan that breaks a rule is rejected with its name."""

from datetime import UTC, datetime
from pathlib import Path

import pytest

from steadymail.errors import ValidationError
from steadymail.rollout.flag_specs import validate
from steadymail.rollout.plan import GATES, Plan, parse_duration, parse_waves
from steadymail.rollout.policy import check, load_policy

REGIONS = ["R1", "R2", "R3"]
MONDAY = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)


def _plan(waves: str = "R3,R1,R2", bake: float = 600, guard: float = 900, **kw: object) -> Plan:
    return Plan("tracking.version", "v2", parse_waves(waves), bake, guard, **kw)  # type: ignore[arg-type]


def test_flag_values_are_validated() -> None:
    assert validate("tracking.version", "v2") == "v2"
    assert validate("tracking.version", None) is None
    assert validate("fault.worker_exit", {"every": 20}) == {"every": 20.0, "after": 0.0}
    for name, bad in [
        ("tracking.version", "v9"),
        ("fault.worker_exit", {"every": 0}),
        ("fault.worker_exit", {"every": "soon"}),
        ("fault.worker_exit", {"every": 5, "extra": 1}),
        ("no.such.flag", 1),
    ]:
        with pytest.raises(ValidationError):
            validate(name, bad)


def test_durations_and_waves() -> None:
    assert parse_duration("10m") == 600 and parse_duration("90s") == 90
    assert parse_duration(2.5) == 2.5 and parse_duration("1h") == 3600
    assert parse_waves("R3,R1+R2") == [["R3"], ["R1", "R2"]]
    for bad in ("R3,,R1", "R3,R3"):
        with pytest.raises(ValidationError):
            parse_waves(bad)
    with pytest.raises(ValidationError):
        parse_duration("soon")


def test_repository_policy_file_loads(tmp_path: Path) -> None:
    policy = load_policy(Path(__file__).resolve().parents[3] / "policy.toml")
    assert policy.canary == "R3" and policy.min_bake == 300 and policy.max_regions_per_wave == 1
    assert set(policy.required_gates) == set(GATES)
    assert load_policy(tmp_path / "missing.toml").source == "defaults"


def _rules(policy_text: str, plan: Plan, tmp_path: Path, at: datetime = MONDAY) -> list[str]:
    path = tmp_path / "policy.toml"
    path.write_text(policy_text)
    return [v.rule for v in check(load_policy(path), plan, at, REGIONS)]


def test_each_rule_names_itself(tmp_path: Path) -> None:
    strict = 'canary = "R3"\nmin_bake = "5m"\nmin_guard = "10m"\nmax_regions_per_wave = 1\n'
    assert _rules(strict, _plan(), tmp_path) == []
    assert _rules(strict, _plan("R1,R3,R2"), tmp_path) == ["canary_first"]
    assert _rules(strict, _plan(bake=60), tmp_path) == ["min_bake"]
    assert _rules(strict, _plan(guard=60), tmp_path) == ["min_guard"]
    assert _rules(strict, _plan("R3,R1+R2"), tmp_path) == ["max_regions_per_wave"]
    assert _rules(strict, _plan("R3,R1,R9"), tmp_path) == ["known_regions"]
    gates = _plan(gates=["restarts", "stalls"])
    assert _rules(strict, gates, tmp_path) == ["required_gates"]


def test_freeze_windows(tmp_path: Path) -> None:
    text = (
        'min_bake = 0\nmin_guard = 0\n[[freeze]]\nreason = "year end"\n'
        'start = "2026-12-21T00:00:00Z"\nend = "2027-01-04T00:00:00Z"\n'
        '[[freeze]]\nreason = "friday"\ndays = ["fri"]\nfrom = "15:00"\nto = "23:59"\n'
    )
    assert _rules(text, _plan(), tmp_path, MONDAY) == []
    christmas = datetime(2026, 12, 25, 12, tzinfo=UTC)
    assert _rules(text, _plan(), tmp_path, christmas) == ["freeze_window"]
    friday_evening = datetime(2026, 12, 4, 16, tzinfo=UTC)
    friday_morning = datetime(2026, 12, 4, 9, tzinfo=UTC)
    assert _rules(text, _plan(), tmp_path, friday_evening) == ["freeze_window"]
    assert _rules(text, _plan(), tmp_path, friday_morning) == []


def test_revert_window(tmp_path: Path) -> None:
    assert load_policy(tmp_path / "missing.toml").revert_window == 24 * 3600
    path = tmp_path / "p.toml"
    path.write_text('revert_window = "2h"\n')
    assert load_policy(path).revert_window == 7200
    path.write_text('revert_window = "0"\n')
    assert load_policy(path).revert_window == 0


def test_hostile_durations_are_refused_whole() -> None:
    # Once quadratic: two whitespace runs around an optional unit backtracked.
    for bad in ("1" + " " * 200_000 + "x", "9" * 200_000, " " * 200_000, "1e999", "nan"):
        with pytest.raises(ValidationError):
            parse_duration(bad)
    for bad_number in (float("inf"), float("nan")):
        with pytest.raises(ValidationError, match="finite"):
            parse_duration(bad_number)
    assert parse_duration(" 1.5 m ") == 90
