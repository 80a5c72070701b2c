"""When a scheduled send starts: a wall-clock time in a named time zone, resolved to an instant.

A local time that does not exist (the hour skipped when clocks go forward) or that happens
twice (the hour repeated when they go back) is refused with what to write instead, rather than
guessed: a newsletter sent an hour early or late is the kind of error nobody notices until the
replies come in.
"""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from steadymail.errors import ValidationError

# A send scheduled a moment ago (a form submitted slowly) starts now rather than being refused.
GRACE = 60.0


def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name`` (``Europe/Berlin``, ``UTC``), or a clear error."""
    if not name or len(name) > 64 or name.startswith(("/", ".")) or ".." in name:
        raise ValidationError(f"unknown time zone {name[:64]!r} (e.g. Europe/Berlin, UTC)")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise ValidationError(f"unknown time zone {name!r} (e.g. Europe/Berlin, UTC)") from e


def parse_local(text: str) -> datetime:
    """``2026-12-01 09:00`` (seconds and a ``T`` separator allowed, an offset too)."""
    try:
        return datetime.fromisoformat(text.strip())
    except ValueError as e:
        raise ValidationError(
            f"{text[:40]!r} is not a time: write it as 2026-12-01 09:00 (with --tz)"
        ) from e


def resolve(at: datetime, tz: str | None) -> float:
    """The instant (epoch seconds) of ``at``: its own offset if it has one, else its wall time
    in ``tz``. Exactly one of the two must say which zone is meant."""
    if at.tzinfo is not None:
        if tz:
            raise ValidationError("the time has an offset and a time zone: give one of them")
        return at.timestamp()
    if not tz:
        raise ValidationError(
            "say which time zone the time is in (--tz Europe/Berlin, or an offset like +01:00)"
        )
    z = zone(tz)
    first, second = at.replace(tzinfo=z, fold=0), at.replace(tzinfo=z, fold=1)
    back = first.astimezone(UTC).astimezone(z).replace(tzinfo=None)
    if back != at:
        raise ValidationError(
            f"{at:%Y-%m-%d %H:%M} does not exist in {tz} (the clocks go forward then)"
        )
    if first.utcoffset() != second.utcoffset():
        raise ValidationError(
            f"{at:%Y-%m-%d %H:%M} happens twice in {tz} (offsets {_offset(first)} and "
            f"{_offset(second)}): give the time with the offset meant"
        )
    return first.timestamp()


def start_time(at: datetime, tz: str | None, now: float) -> float:
    """``resolve`` for a send to be scheduled: not in the past (beyond a moment's grace)."""
    when = resolve(at, tz)
    if when < now - GRACE:
        raise ValidationError(f"{at.isoformat(sep=' ')} is in the past")
    return max(when, now)


def _offset(d: datetime) -> str:
    off = d.utcoffset() or timedelta(0)
    sign = "-" if off < timedelta(0) else "+"
    minutes = abs(int(off.total_seconds())) // 60
    return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"
