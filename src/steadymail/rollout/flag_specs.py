"""The flags a region knows: typed, validated, with a value per region (``null`` = not set).

A flag that is not set leaves the matching setting in force (``tracking.version`` falls back to
``tracking_version``). Workers read flags at claim time and report them in their heartbeat.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from steadymail.errors import ValidationError


@dataclass(frozen=True)
class FlagSpec:
    name: str
    description: str
    check: Callable[[Any], Any]  # returns the normalised value or raises ValidationError


def _tracking_version(value: Any) -> Any:
    if value not in ("off", "v1", "v2"):
        raise ValidationError("tracking.version is one of 'off', 'v1', 'v2'")
    return value


def _worker_exit(value: Any) -> Any:
    if not isinstance(value, dict) or set(value) - {"every", "after"} or "every" not in value:
        raise ValidationError('fault.worker_exit is {"every": seconds, "after": seconds}')
    every, after = value["every"], value.get("after", 0)
    for key, v in (("every", every), ("after", after)):
        if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v < 1e9:
            raise ValidationError(f"fault.worker_exit.{key} must be a number of seconds >= 0")
    if every <= 0:
        raise ValidationError("fault.worker_exit.every must be above 0")
    return {"every": float(every), "after": float(after)}


def _tracking_crash(value: Any) -> Any:
    if not isinstance(value, dict) or set(value) - {"one_in", "after"} or "one_in" not in value:
        raise ValidationError('fault.tracking_crash is {"one_in": messages, "after": seconds}')
    one_in, after = value["one_in"], value.get("after", 0)
    if isinstance(one_in, bool) or not isinstance(one_in, int) or one_in < 1:
        raise ValidationError("fault.tracking_crash.one_in must be a whole number >= 1")
    if isinstance(after, bool) or not isinstance(after, int | float) or not 0 <= after < 1e9:
        raise ValidationError("fault.tracking_crash.after must be a number of seconds >= 0")
    return {"one_in": one_in, "after": float(after)}


FLAGS: dict[str, FlagSpec] = {
    spec.name: spec
    for spec in (
        FlagSpec(
            "tracking.version",
            "link and open tracking: off, v1 or v2 (unset: the tracking_version setting)",
            _tracking_version,
        ),
        FlagSpec(
            "fault.worker_exit",
            "fault injection for tests and drills: each worker exits once it has run `every` "
            "seconds, starting `after` seconds after the value took effect",
            _worker_exit,
        ),
        FlagSpec(
            "fault.tracking_crash",
            "fault injection for drills (`steadymail replay`): the link rewriter crashes the "
            "worker on one message in `one_in` (the same ones every time), from `after` seconds "
            "after the value took effect",
            _tracking_crash,
        ),
    )
}


def validate(name: str, value: Any) -> Any:
    """The normalised value; ``None`` unsets the flag. Unknown flags and bad values raise."""
    spec = FLAGS.get(name)
    if spec is None:
        raise ValidationError(f"unknown flag {name!r}; known: {', '.join(sorted(FLAGS))}")
    return None if value is None else spec.check(value)
