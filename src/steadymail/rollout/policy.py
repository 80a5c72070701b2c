"""The risk policy (``policy.toml``): checked before a rollout starts; a plan that breaks a
rule is rejected with the rule's name."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any

from steadymail.errors import ValidationError
from steadymail.rollout.plan import GATES, Plan, parse_duration

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class Freeze:
    """No rollout may start inside: a fixed span (``start``/``end``), or weekly (``days`` with
    ``from``/``to`` times of day, UTC)."""

    reason: str
    start: datetime | None = None
    end: datetime | None = None
    days: tuple[int, ...] = ()
    from_time: time = time(0, 0)
    to_time: time = time(23, 59, 59)

    def covers(self, at: datetime) -> bool:
        if self.start is not None and self.end is not None:
            return self.start <= at < self.end
        return at.weekday() in self.days and self.from_time <= at.time() <= self.to_time


@dataclass(frozen=True)
class Policy:
    canary: str | None = "R3"
    min_bake: float = 300.0
    max_regions_per_wave: int = 1
    min_guard: float = 600.0
    required_gates: tuple[str, ...] = GATES
    freezes: tuple[Freeze, ...] = ()
    # After the guard, restarts, crash loops and stalls in regions with the value (and not in
    # those without) still revert it for this long; 0 turns the automatic revert off.
    revert_window: float = 24 * 3600.0
    source: str = "defaults"


@dataclass(frozen=True)
class Violation:
    rule: str
    message: str

    def __str__(self) -> str:
        return f"policy rule '{self.rule}': {self.message}"


def _when(value: Any, what: str) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError as e:
        raise ValidationError(f"policy: {what} is not a date-time: {value!r}") from e
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _freeze(raw: dict[str, Any]) -> Freeze:
    reason = str(raw.get("reason", "freeze window"))
    if "start" in raw or "end" in raw:
        return Freeze(reason, _when(raw.get("start"), "start"), _when(raw.get("end"), "end"))
    days = tuple(_DAYS.index(str(d).lower()[:3]) for d in raw.get("days", []))
    if not days:
        raise ValidationError("policy: a freeze needs start/end, or days (mon..sun)")
    return Freeze(
        reason,
        days=days,
        from_time=time.fromisoformat(str(raw.get("from", "00:00"))),
        to_time=time.fromisoformat(str(raw.get("to", "23:59:59"))),
    )


def _count(path: Path, value: Any, key: str = "max_regions_per_wave") -> int:
    # TOML has nan and inf; int() of them (or of a string) is a traceback, not an answer.
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationError(f"{path}: {key} is a whole number >= 1, not {value!r}")
    return value


def load_policy(path: Path) -> Policy:
    """Read ``policy.toml``; a missing file gives the defaults (canary R3, 5 min bake …)."""
    if not path.is_file():
        return Policy()
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ValidationError(f"{path}: {e}") from e
    gates = tuple(raw.get("required_gates", GATES))
    unknown = set(gates) - set(GATES)
    if unknown:
        raise ValidationError(f"{path}: unknown gates {sorted(unknown)}; known: {GATES}")
    return Policy(
        canary=raw.get("canary", "R3") or None,
        min_bake=parse_duration(raw.get("min_bake", 300)),
        max_regions_per_wave=_count(path, raw.get("max_regions_per_wave", 1)),
        min_guard=parse_duration(raw.get("min_guard", 600)),
        required_gates=gates,
        freezes=tuple(_freeze(f) for f in raw.get("freeze", [])),
        revert_window=parse_duration(raw.get("revert_window", 24 * 3600)),
        source=str(path),
    )


def check(policy: Policy, plan: Plan, now: datetime, known_regions: list[str]) -> list[Violation]:
    """Every rule the plan breaks (empty: the plan may start now)."""
    out: list[Violation] = []
    unknown = [r for r in plan.regions if r not in known_regions]
    if unknown:
        out.append(Violation("known_regions", f"no such region {unknown}; known {known_regions}"))
    if policy.canary and plan.waves and plan.waves[0] != [policy.canary]:
        out.append(
            Violation(
                "canary_first",
                f"the first wave must be {policy.canary} alone, not {'+'.join(plan.waves[0])}",
            )
        )
    if plan.bake < policy.min_bake:
        out.append(
            Violation("min_bake", f"bake {plan.bake:g}s is under the minimum {policy.min_bake:g}s")
        )
    if plan.guard < policy.min_guard:
        out.append(
            Violation(
                "min_guard", f"guard {plan.guard:g}s is under the minimum {policy.min_guard:g}s"
            )
        )
    for wave in plan.waves:
        if len(wave) > policy.max_regions_per_wave:
            out.append(
                Violation(
                    "max_regions_per_wave",
                    f"wave {'+'.join(wave)} has {len(wave)} regions; at most "
                    f"{policy.max_regions_per_wave}",
                )
            )
    missing = [g for g in policy.required_gates if g not in plan.gates]
    if missing:
        out.append(Violation("required_gates", f"the plan leaves out required gates {missing}"))
    for freeze in policy.freezes:
        if freeze.covers(now):
            out.append(Violation("freeze_window", f"{freeze.reason}: no rollout starts now"))
    return out
