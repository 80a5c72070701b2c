"""NaN and infinities are refused wherever a rollout takes a number."""

import math
from pathlib import Path

import pytest
import typer

from steadymail.cli.numbers import finite, loads_finite
from steadymail.errors import ValidationError
from steadymail.rollout.flag_specs import validate
from steadymail.rollout.plan import parse_duration
from steadymail.rollout.policy import load_policy


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, "9" * 400, 10**12])
def test_durations_must_be_finite_and_bounded(value: object) -> None:
    with pytest.raises(ValidationError, match="duration"):
        parse_duration(value)  # type: ignore[arg-type]


def test_ordinary_durations_still_parse() -> None:
    assert [parse_duration(v) for v in (90, "90s", "10m", "1h", 0)] == [90, 90, 600, 3600, 0]


@pytest.mark.parametrize("key", ["min_bake", "min_guard", "revert_window"])
@pytest.mark.parametrize("literal", ["nan", "inf", "-inf"])
def test_policy_durations_refuse_toml_nan_and_inf(tmp_path: Path, key: str, literal: str) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(f"{key} = {literal}\n")
    with pytest.raises(ValidationError):
        load_policy(path)


@pytest.mark.parametrize("literal", ["nan", "inf", "0", "1.5", '"two"'])
def test_policy_regions_per_wave_is_a_whole_number(tmp_path: Path, literal: str) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(f"max_regions_per_wave = {literal}\n")
    with pytest.raises(ValidationError, match="max_regions_per_wave"):
        load_policy(path)


@pytest.mark.parametrize(
    "value",
    [
        {"every": math.nan},
        {"every": math.inf},
        {"every": 10, "after": math.nan},
        {"every": 10, "after": math.inf},
    ],
)
def test_fault_flags_refuse_non_finite_seconds(value: dict[str, float]) -> None:
    with pytest.raises(ValidationError):
        validate("fault.worker_exit", value)


def test_tracking_crash_refuses_non_finite_after() -> None:
    with pytest.raises(ValidationError):
        validate("fault.tracking_crash", {"one_in": 3, "after": math.nan})


def test_cli_numbers_refuse_nan_and_inf() -> None:
    assert finite(2.5) == 2.5 and finite(None) is None
    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises(typer.BadParameter):
            finite(bad)
    assert loads_finite('{"every": 20}') == {"every": 20}
    for text in ("NaN", '{"every": Infinity}', "-Infinity"):
        with pytest.raises(typer.BadParameter):
            loads_finite(text)
