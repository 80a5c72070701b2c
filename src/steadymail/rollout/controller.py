"""The rollout controller: apply a wave, bake, judge, then promote or roll back; after the last
wave, guard. A state machine stepped by the control plane; it talks to regions only through
``RegionPort`` (the regions' HTTP APIs in production).

Hard gates (restarts, stalls, anomalies) are judged on every step while a wave bakes and while
the guard watches, so a fault rolls back within a step of its alert; rate gates are judged when
the bake ends, and inconclusive data extends the bake (up to ``MAX_EXTENSIONS`` times, then the
rollout is rolled back as unproven: never promoted on no evidence).

After the guard, ``watch_after`` keeps tying faults to the change for the policy's revert window:
restarts, crash loops or stalls that start in regions with the new value, and not in regions
that kept the old one, revert it everywhere.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from steadymail.domain.states import RolloutState, WavePhase
from steadymail.rollout.gates import Evidence, Verdict, hard_alerts, judge_hard, judge_rates
from steadymail.rollout.plan import Plan

log = logging.getLogger("steadymail.rollout")

MAX_EXTENSIONS = 4
# The rollouts the control plane steps.
ACTIVE = (RolloutState.RUNNING, RolloutState.ROLLING_BACK)
# What still ties a fault to a completed change: the hard gates without anomalies.
AFTER_GATES = ("restarts", "stalls")


class RegionPort(Protocol):
    def get_flag(self, region: str, flag: str) -> Any: ...

    def set_flag(self, region: str, flag: str, value: Any, by: str, reason: str) -> None: ...

    def evidence(
        self, region: str, since: float, until: float, with_rates: bool = True
    ) -> Evidence: ...

    def note(self, region: str, alert_id: int, text: str) -> None: ...

    def alert(
        self, region: str, fingerprint: str, summary: str, labels: dict[str, Any], detail: str
    ) -> None: ...

    def resolve(self, region: str, fingerprint: str, detail: str) -> None: ...


@dataclass
class Rollout:
    """A rollout's whole state; stored as JSON by the control plane."""

    id: int
    flag: str
    value: Any
    waves: list[list[str]]
    bake: float
    guard: float
    gates: list[str]
    created_by: str
    created_at: float
    state: RolloutState = RolloutState.RUNNING
    phase: WavePhase = WavePhase.APPLY
    wave: int = 0
    phase_until: float = 0.0
    extensions: int = 0
    applied: dict[str, float] = field(default_factory=dict)  # region -> when it got the value
    previous: dict[str, Any] = field(default_factory=dict)  # region -> value before
    pending_rollback: list[str] = field(default_factory=list)
    paused_left: float = 0.0
    decision: str = ""
    kind: str = "rollout"  # rollout | revert (a person's revert of a flag everywhere)
    completed_at: float = 0.0
    # Alerts judged after completion and found in old-value regions too: not the change's.
    cleared_alerts: list[str] = field(default_factory=list)

    @classmethod
    def start(cls, rollout_id: int, plan: Plan, by: str, now: float) -> Rollout:
        return cls(
            rollout_id,
            plan.flag,
            plan.value,
            plan.waves,
            plan.bake,
            plan.guard,
            list(plan.gates),
            by,
            now,
        )

    def to_dict(self) -> dict[str, Any]:
        """As JSON holds it: the state and phase as their strings."""
        return {**asdict(self), "state": self.state.value, "phase": self.phase.value}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Rollout:
        r = cls(**raw)
        r.state, r.phase = RolloutState(r.state), WavePhase(r.phase)
        return r


@dataclass(frozen=True)
class Event:
    """An audit entry: what happened, where, decided by whom, why."""

    kind: str
    detail: str
    region: str = ""
    actor: str = "controller"


class Controller:
    def __init__(self, regions: RegionPort, all_regions: list[str]) -> None:
        self._regions = regions
        self._all = all_regions

    def step(self, r: Rollout, now: float) -> list[Event]:
        """Advance ``r`` as far as ``now`` allows; returns what it did."""
        if r.state == RolloutState.ROLLING_BACK:
            return self._finish_rollback(r)
        if r.state != RolloutState.RUNNING:
            return []
        if r.phase == WavePhase.APPLY:
            return self._apply(r, now)
        hard, unreachable = self._hard_failures(r, now)
        if hard:
            return self.roll_back(r, now, hard[0].reason, f"gate:{hard[0].gate}", hard)
        if now < r.phase_until:
            return []
        if unreachable:
            # No evidence is not good evidence: wait for the region rather than promote.
            r.phase_until = now + max(r.bake / 4, 1.0)
            return [Event("waiting", "region unreachable; phase extended", unreachable[0])]
        if r.phase == WavePhase.BAKE:
            return self._judge_bake(r, now)
        r.state, r.decision, r.completed_at = RolloutState.COMPLETED, "guard passed", now
        return [Event("completed", f"{r.flag}={r.value!r} in {', '.join(r.applied)}")]

    def _apply(self, r: Rollout, now: float) -> list[Event]:
        wave = r.waves[r.wave]
        out = []
        for region in wave:
            if region in r.applied:
                continue
            r.previous[region] = self._regions.get_flag(region, r.flag)
            self._regions.set_flag(
                region, r.flag, r.value, f"rollout {r.id}", f"wave {r.wave + 1} of {len(r.waves)}"
            )
            r.applied[region] = now
            out.append(
                Event("applied", f"{r.flag}={r.value!r} (was {r.previous[region]!r})", region)
            )
        r.phase, r.phase_until, r.extensions = WavePhase.BAKE, now + r.bake, 0
        out.append(Event("baking", f"wave {r.wave + 1}: {'+'.join(wave)} for {r.bake:g}s"))
        return out

    def _hard_failures(self, r: Rollout, now: float) -> tuple[list[Verdict], list[str]]:
        fails: list[Verdict] = []
        unreachable: list[str] = []
        for region, since in r.applied.items():
            ev = self._regions.evidence(region, since, now)
            if not ev.reachable:
                unreachable.append(region)
            fails += [v for v in judge_hard(r.gates, ev) if v.status == "fail"]
        return fails, unreachable

    def _judge_bake(self, r: Rollout, now: float) -> list[Event]:
        wave = r.waves[r.wave]
        verdicts: list[Verdict] = []
        if "error_rate" in r.gates:
            old = [x for x in self._all if x not in r.applied]
            for region in wave:
                since = r.applied[region]
                after = self._regions.evidence(region, since, now)
                span = max(now - since, 60.0)
                baseline = self._regions.evidence(region, since - span, since)
                controls = [self._regions.evidence(c, since, now) for c in old]
                verdicts += judge_rates(after, baseline, [c for c in controls if c.reachable])
        failed = [v for v in verdicts if v.status == "fail"]
        if failed:
            return self.roll_back(r, now, failed[0].reason, "gate:error_rate", failed)
        unsure = [v for v in verdicts if v.status == "inconclusive"]
        if unsure:
            if r.extensions >= MAX_EXTENSIONS:
                why = f"still inconclusive after {r.extensions} extensions: {unsure[0].reason}"
                return self.roll_back(r, now, why, "gate:error_rate", unsure)
            r.extensions += 1
            r.phase_until = now + r.bake / 2
            return [Event("bake_extended", f"inconclusive: {unsure[0].reason}", unsure[0].region)]
        passed = [Event("wave_passed", f"wave {r.wave + 1}: {'+'.join(wave)}")]
        if r.wave + 1 < len(r.waves):
            r.wave += 1
            r.phase = WavePhase.APPLY
            return passed + self._apply(r, now)
        r.phase, r.phase_until = WavePhase.GUARD, now + r.guard
        return [*passed, Event("guarding", f"every region watched for {r.guard:g}s")]

    def roll_back(
        self,
        r: Rollout,
        now: float,
        why: str,
        decided_by: str,
        verdicts: list[Verdict] | None = None,
        regions: list[str] | None = None,
    ) -> list[Event]:
        """Restore the previous value in every region that has the new one (or in ``regions``
        of them), in parallel."""
        r.state = RolloutState.ROLLING_BACK
        r.pending_rollback = list(r.applied) if regions is None else list(regions)
        r.decision = f"rolled back by {decided_by}: {why}"
        out = [Event("rollback_decided", why, actor=decided_by)]
        for v in verdicts or []:
            if v.alert_id is not None:
                text = f"rollout {r.id} of {r.flag} rolled back: {why}"
                self._best_effort(r, self._regions.note, v.region, v.alert_id, text)
        # Each region that had the value gets an incident of its own, with the rollout's story.
        story = "; ".join(
            f"{region} got {r.flag}={r.value!r} at {at:.3f} (wave {self._wave_of(r, region)})"
            for region, at in r.applied.items()
        )
        for region in r.pending_rollback:
            self._best_effort(
                r,
                self._regions.alert,
                region,
                f"rollout:{r.id}",
                f"rollout {r.id} of {r.flag}={r.value!r} rolled back by {decided_by}: {why}",
                {"rollout": r.id, "flag": r.flag, "value": r.value, "decided_by": decided_by},
                f"{story}; decided by {decided_by}: {why}",
            )
        return out + self._finish_rollback(r)

    @staticmethod
    def _wave_of(r: Rollout, region: str) -> int:
        return next(i + 1 for i, wave in enumerate(r.waves) if region in wave)

    @staticmethod
    def _best_effort(r: Rollout, call: Callable[..., None], region: str, *args: Any) -> None:
        """``call(region, *args)``, a region call the rollout does not wait on (an alert, a
        timeline note, a resolve): a failure is logged and not retried, where the rollback
        itself is retried until it is done."""
        try:
            call(region, *args)
        except Exception as e:
            log.warning(
                "event=region_call_failed call=%s rollout=%d flag=%s region=%s error=%r",
                getattr(call, "__name__", repr(call)),
                r.id,
                r.flag,
                region,
                f"{type(e).__name__}: {e}",
            )

    def _finish_rollback(self, r: Rollout) -> list[Event]:
        def restore(region: str) -> tuple[str, str]:
            try:
                self._regions.set_flag(
                    region, r.flag, r.previous.get(region), f"rollout {r.id}", r.decision
                )
                return region, ""
            except Exception as e:
                return region, str(e)

        with ThreadPoolExecutor(max_workers=max(1, len(r.pending_rollback))) as pool:
            results = list(pool.map(restore, r.pending_rollback))
        out = []
        r.pending_rollback = [region for region, err in results if err]
        for region, err in results:
            if err:
                out.append(Event("rollback_retry", err, region))
                continue
            restored = f"{r.flag}={r.previous.get(region)!r}"
            out.append(Event("rolled_back", restored, region))
            self._best_effort(
                r,
                self._regions.resolve,
                region,
                f"rollout:{r.id}",
                f"previous value restored: {restored}",
            )
        if not r.pending_rollback:
            r.state = RolloutState.ROLLED_BACK
        return out

    def watch_after(self, r: Rollout, now: float, window: float) -> list[Event]:
        """Within ``window`` after completion, tie new restarts, crash loops and stalls to the
        change and revert it everywhere when the evidence says it is the cause:

        - regions that kept the old value exist and show no alert of that kind; or
        - every region has the value, and the alert names this change as the latest one made
          in its region before it fired (its suspects).

        An alert whose latest suspect is another change, or whose kind the old-value regions
        show too, is recorded once as ``revert_withheld``."""
        if (
            r.state != RolloutState.COMPLETED
            or r.kind != "rollout"
            or now > r.completed_at + window
        ):
            return []
        old = [x for x in self._all if x not in r.applied]
        old_names: set[str] | None = None
        for region in r.applied:
            ev = self._regions.evidence(region, r.completed_at, now, with_rates=False)
            for alert in hard_alerts(AFTER_GATES, ev):
                key = f"{region}:{alert.get('id')}"
                if key in r.cleared_alerts:
                    continue
                if old_names is None:
                    old_names = {
                        str(a.get("name"))
                        for c in old
                        for a in hard_alerts(
                            AFTER_GATES,
                            self._regions.evidence(c, r.completed_at, now, with_rates=False),
                        )
                    }
                verdict = self._attribute(r, alert, region, old, old_names, now)
                if verdict.status == "fail":
                    return self.roll_back(r, now, verdict.reason, "revert_window", [verdict])
                r.cleared_alerts.append(key)
                return [Event("revert_withheld", verdict.reason, region)]
        return []

    @staticmethod
    def _attribute(
        r: Rollout,
        alert: dict[str, Any],
        region: str,
        old: list[str],
        old_names: set[str],
        now: float,
    ) -> Verdict:
        name, summary = str(alert.get("name")), str(alert.get("summary"))
        suspects = (alert.get("labels") or {}).get("suspects") or []
        newest = suspects[0] if suspects else None
        names_this = (
            newest is not None and newest.get("kind") == "flag" and newest.get("subject") == r.flag
        )
        age = f"{now - r.completed_at:.0f}s after the rollout completed"
        if newest is not None and not names_this:
            later = newest.get("text") or newest.get("subject")
            return Verdict("revert_window", region, "pass", f"{summary}: a later change ({later})")
        if old:
            if name in old_names:
                why = f"{summary}: regions on the old value show {name} too"
                return Verdict("revert_window", region, "pass", why)
            why = (
                f"{name} in {region} {age} ({summary}); regions on the old value "
                f"({', '.join(old)}) show none"
            )
            return Verdict("revert_window", region, "fail", why, alert.get("id"))
        if not names_this:
            why = f"{summary}: every region has the value and the alert does not name the change"
            return Verdict("revert_window", region, "pass", why)
        why = (
            f"{name} in {region} {age} ({summary}); the alert names {r.flag} as the latest "
            f"change, and every region has the value"
        )
        return Verdict("revert_window", region, "fail", why, alert.get("id"))

    def pause(self, r: Rollout, now: float, by: str) -> list[Event]:
        if r.state != RolloutState.RUNNING:
            return []
        r.state, r.paused_left = RolloutState.PAUSED, max(0.0, r.phase_until - now)
        return [Event("paused", f"{r.paused_left:.0f}s of the {r.phase} left", actor=by)]

    def resume(self, r: Rollout, now: float, by: str) -> list[Event]:
        if r.state != RolloutState.PAUSED:
            return []
        r.state, r.phase_until = RolloutState.RUNNING, now + r.paused_left
        return [Event("resumed", f"{r.phase} goes on for {r.paused_left:.0f}s", actor=by)]
