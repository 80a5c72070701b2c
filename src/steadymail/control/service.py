"""The control plane's work: start rollouts after the policy check, step them, record it all."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine

from steadymail.clock import Clock
from steadymail.config import Settings
from steadymail.control import store
from steadymail.control.regions import HttpRegions
from steadymail.errors import NotFound, ValidationError
from steadymail.rollout.controller import ACTIVE, Controller, Event, Rollout
from steadymail.rollout.flags import validate
from steadymail.rollout.plan import GATES, Plan, parse_duration, parse_waves
from steadymail.rollout.policy import check, load_policy

log = logging.getLogger("steadymail.control")


class PolicyViolation(ValidationError):
    """A plan the risk policy rejects; the message names every broken rule."""


class ControlPlane:
    def __init__(self, settings: Settings, engine: Engine, clock: Clock) -> None:
        self.settings, self.engine, self.clock = settings, engine, clock
        self.regions = HttpRegions(settings.control_regions)
        self.controller = Controller(self.regions, self.regions.names)
        self._lock = threading.Lock()  # API calls and the driver loop change rollouts

    def plan(
        self,
        flag: str,
        value: Any,
        plan: str | None = None,
        bake: str | float | None = None,
        guard: str | float | None = None,
        gates: list[str] | None = None,
    ) -> Plan:
        policy = load_policy(self.settings.policy_file)
        chosen = list(gates) if gates is not None else list(GATES)
        unknown = set(chosen) - set(GATES)
        if unknown:
            raise ValidationError(f"unknown gates {sorted(unknown)}; known: {list(GATES)}")
        return Plan(
            flag=flag,
            value=validate(flag, value),
            waves=parse_waves(plan or ",".join(self._default_order(policy.canary))),
            bake=parse_duration(bake) if bake is not None else policy.min_bake,
            guard=parse_duration(guard) if guard is not None else policy.min_guard,
            gates=chosen,
        )

    def _default_order(self, canary: str | None) -> list[str]:
        names = self.regions.names
        preferred = [r for r in ("R3", "R1", "R2") if r in names]
        rest = [r for r in names if r not in preferred]
        order = preferred + rest
        if canary in order:
            order.remove(canary)
            order.insert(0, canary)
        return order

    def start(self, plan: Plan, by: str) -> Rollout:
        """Check the policy, then start; a broken rule raises ``PolicyViolation``."""
        policy = load_policy(self.settings.policy_file)
        now = self.clock.now()
        violations = check(policy, plan, datetime.fromtimestamp(now, UTC), self.regions.names)
        if violations:
            raise PolicyViolation("; ".join(str(v) for v in violations))
        with self._lock:
            busy = [
                r for r in store.active(self.engine, (*ACTIVE, "paused")) if r.flag == plan.flag
            ]
            if busy:
                raise ValidationError(
                    f"rollout {busy[0].id} of {plan.flag} is still {busy[0].state}"
                )
            rollout = Rollout.start(store.next_id(self.engine), plan, by, now)
            store.insert_rollout(self.engine, rollout, now)
            store.save(
                self.engine,
                rollout,
                [
                    Event(
                        "started",
                        f"{plan.flag}={plan.value!r} waves {plan.waves} bake {plan.bake:g}s "
                        f"guard {plan.guard:g}s gates {plan.gates} (policy {policy.source})",
                        actor=by,
                    )
                ],
                now,
            )
        log.info("event=rollout_started id=%d flag=%s by=%s", rollout.id, plan.flag, by)
        return rollout

    def tick(self) -> None:
        """Step every active rollout once (the driver loop calls this)."""
        with self._lock:
            for rollout in store.active(self.engine, ACTIVE):
                now = self.clock.now()
                try:
                    events = self.controller.step(rollout, now)
                except Exception as e:  # a region down mid-apply: try again next tick
                    log.warning("event=rollout_step_failed id=%d error=%r", rollout.id, str(e))
                    continue
                if events:
                    store.save(self.engine, rollout, events, now)
                    for ev in events:
                        log.info(
                            "event=rollout_%s id=%d region=%s detail=%r",
                            ev.kind,
                            rollout.id,
                            ev.region,
                            ev.detail,
                        )

    def _act(self, rollout_id: int, action: str, by: str) -> Rollout:
        with self._lock:
            rollout = store.load(self.engine, rollout_id)
            if rollout is None:
                raise NotFound(f"no rollout {rollout_id}")
            now = self.clock.now()
            if action == "pause":
                events = self.controller.pause(rollout, now, by)
            elif action == "resume":
                events = self.controller.resume(rollout, now, by)
            else:
                if rollout.state not in ("running", "paused"):
                    raise ValidationError(f"rollout {rollout_id} is {rollout.state}")
                events = self.controller.roll_back(rollout, now, f"asked by {by}", by)
            if not events:
                raise ValidationError(f"rollout {rollout_id} is {rollout.state}: cannot {action}")
            store.save(self.engine, rollout, events, now)
            return rollout

    def pause(self, rollout_id: int, by: str) -> Rollout:
        return self._act(rollout_id, "pause", by)

    def resume(self, rollout_id: int, by: str) -> Rollout:
        return self._act(rollout_id, "resume", by)

    def rollback(self, rollout_id: int, by: str) -> Rollout:
        return self._act(rollout_id, "rollback", by)

    def status(self, rollout_id: int) -> dict[str, Any]:
        rollout = store.load(self.engine, rollout_id)
        if rollout is None:
            raise NotFound(f"no rollout {rollout_id}")
        return {**rollout.to_dict(), "events": store.events(self.engine, rollout_id)}

    def rollouts(self) -> list[dict[str, Any]]:
        return [r.to_dict() for r in store.listing(self.engine)]

    def region_views(self) -> list[dict[str, Any]]:
        return [self.regions.health(name) for name in self.regions.names]
