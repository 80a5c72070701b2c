"""Rollout plans: which regions get a flag value in which wave, how long each wave bakes."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from steadymail.errors import ValidationError

GATES = ("restarts", "stalls", "error_rate", "anomalies")
MAX_DURATION = 366 * 24 * 3600.0


# Bounded digit runs, and no two whitespace runs side by side: "1" + " " * n + "x" made the
# old pattern (\s* on both sides of an optional unit) backtrack quadratically.
_DURATION = re.compile(r"(\d{1,12}(?:\.\d{1,9})?)\s*([smh]?)")


def parse_duration(text: str | float | int) -> float:
    """``90``, ``"90s"``, ``"10m"``, ``"1h"`` -> seconds."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        seconds = float(text)
    else:
        m = _DURATION.fullmatch(str(text).strip())
        if not m:
            raise ValidationError(f"not a duration: {str(text)[:40]!r} (use 30s, 10m, 1h)")
        seconds = float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]
    if not math.isfinite(seconds):
        raise ValidationError("a duration must be a finite number")
    if not 0 <= seconds <= MAX_DURATION:
        raise ValidationError(f"a duration is between 0 and {MAX_DURATION:.0f} seconds (a year)")
    return seconds


def parse_waves(text: str) -> list[list[str]]:
    """``"R3,R1,R2"`` -> one region per wave; ``"R3,R1+R2"`` -> R1 and R2 together."""
    waves = [[r.strip() for r in part.split("+") if r.strip()] for part in text.split(",")]
    if not waves or any(not w for w in waves):
        raise ValidationError(f"bad plan {text!r}: regions separated by ',' (waves) or '+'")
    seen: set[str] = set()
    for wave in waves:
        for region in wave:
            if region in seen:
                raise ValidationError(f"bad plan {text!r}: {region} appears twice")
            seen.add(region)
    return waves


@dataclass(frozen=True)
class Plan:
    flag: str
    value: Any
    waves: list[list[str]]
    bake: float
    guard: float
    gates: list[str] = field(default_factory=lambda: list(GATES))

    @property
    def regions(self) -> list[str]:
        return [r for wave in self.waves for r in wave]
