"""A scheduled send's time: a wall time in a named zone, or a time with its offset; clock
changes refused rather than guessed."""

from datetime import UTC, datetime

import pytest

from steadymail.domain.schedule import GRACE, parse_local, resolve, start_time, zone
from steadymail.errors import ValidationError


def test_a_wall_time_in_a_zone_is_that_zones_instant() -> None:
    # Berlin is UTC+1 in winter, UTC+2 in summer.
    assert (
        resolve(parse_local("2026-12-01 09:00"), "Europe/Berlin")
        == datetime(2026, 12, 1, 8, 0, tzinfo=UTC).timestamp()
    )
    assert (
        resolve(parse_local("2026-07-01T09:00:30"), "Europe/Berlin")
        == datetime(2026, 7, 1, 7, 0, 30, tzinfo=UTC).timestamp()
    )
    assert (
        resolve(parse_local("2026-12-01 09:00"), "UTC")
        == datetime(2026, 12, 1, 9, 0, tzinfo=UTC).timestamp()
    )


def test_a_time_with_its_offset_needs_no_zone_and_refuses_one() -> None:
    at = parse_local("2026-12-01T09:00:00-05:00")
    assert resolve(at, None) == datetime(2026, 12, 1, 14, 0, tzinfo=UTC).timestamp()
    with pytest.raises(ValidationError, match="offset and a time zone"):
        resolve(at, "Europe/Berlin")


def test_a_wall_time_without_a_zone_is_refused() -> None:
    with pytest.raises(ValidationError, match="which time zone"):
        resolve(parse_local("2026-12-01 09:00"), None)


def test_the_hour_skipped_when_clocks_go_forward_is_refused() -> None:
    # Europe/Berlin, 29 March 2026: 02:00 becomes 03:00.
    with pytest.raises(ValidationError, match="does not exist in Europe/Berlin"):
        resolve(parse_local("2026-03-29 02:30"), "Europe/Berlin")
    # The minutes around it are fine.
    assert (
        resolve(parse_local("2026-03-29 03:00"), "Europe/Berlin")
        == datetime(2026, 3, 29, 1, 0, tzinfo=UTC).timestamp()
    )


def test_the_hour_repeated_when_clocks_go_back_is_refused_with_both_offsets() -> None:
    # Europe/Berlin, 25 October 2026: 03:00 becomes 02:00 again.
    with pytest.raises(ValidationError, match=r"happens twice .*\+02:00 and \+01:00"):
        resolve(parse_local("2026-10-25 02:30"), "Europe/Berlin")
    # Said with the offset, it is one instant.
    assert (
        resolve(parse_local("2026-10-25 02:30+01:00"), None)
        == datetime(2026, 10, 25, 1, 30, tzinfo=UTC).timestamp()
    )


@pytest.mark.parametrize(
    "name", ["Mars/Olympus", "", "../../etc/passwd", "/etc/localtime", "x" * 80]
)
def test_unknown_zones_are_refused(name: str) -> None:
    with pytest.raises(ValidationError, match="unknown time zone"):
        zone(name)


@pytest.mark.parametrize("text", ["tomorrow", "2026-13-01 09:00", "", "2026-12-01 25:00"])
def test_what_is_not_a_time_is_refused(text: str) -> None:
    with pytest.raises(ValidationError, match="is not a time"):
        parse_local(text)


def test_a_past_time_is_refused_and_a_moment_ago_starts_now() -> None:
    now = datetime(2026, 12, 1, 9, 0, tzinfo=UTC).timestamp()
    with pytest.raises(ValidationError, match="in the past"):
        start_time(parse_local("2026-12-01 08:00"), "UTC", now)
    just = datetime.fromtimestamp(now - GRACE / 2, UTC).replace(tzinfo=None)
    assert start_time(just, "UTC", now) == now
    assert start_time(parse_local("2026-12-01 10:00"), "UTC", now) == now + 3600
