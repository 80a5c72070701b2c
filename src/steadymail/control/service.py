"""The control plane's work: start rollouts after the policy check, step them, record it all."""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from steadymail.clock import Clock
from steadymail.config import Settings
from steadymail.control.regions import HttpRegions, RegionUnreachable
from steadymail.domain.states import RolloutState, WavePhase
from steadymail.errors import NotFound, ValidationError
from steadymail.rollout.controller import ACTIVE, Controller, Event, Rollout
from steadymail.rollout.flag_specs import FLAGS, validate
from steadymail.rollout.plan import GATES, Plan, parse_duration, parse_waves
from steadymail.rollout.policy import check, load_policy
from steadymail.services import control_plane as records
from steadymail.services.database import Engine

log = logging.getLogger("steadymail.control")


WATCH_INTERVAL = 2.0
_UNREACHABLE = object()


def json_key(value: Any) -> Any:
    """A hashable stand-in for a flag value (dicts and lists are not)."""
    return value if isinstance(value, str | int | float | bool | None) else repr(value)


def compare_regions(
    region: str,
    symptom: str,
    suspect: dict[str, Any],
    values: dict[str, dict[str, Any]],
    firing: dict[str, list[dict[str, Any]]],
) -> str:
    """Whether the regions without a suspect change show the same symptom, in one sentence."""
    flag, after = suspect["subject"], suspect["after"]
    others = [o for o in values if o != region]
    without = [o for o in others if values[o].get(flag) != after]
    having = [o for o in others if o not in without]
    if not without:
        return f"{suspect['text']}: every other region has it too ({', '.join(others) or 'none'})"
    same = [o for o in without if any(x["name"] == symptom for x in firing.get(o, []))]
    if same:
        return (
            f"{suspect['text']}: {', '.join(same)} without it show {symptom} too, "
            f"so it is probably not this change"
        )
    tail = f"; {', '.join(having)} have it" if having else ""
    return f"{suspect['text']}: regions without it ({', '.join(without)}) show no {symptom}{tail}"


class PolicyViolation(ValidationError):
    """A plan the risk policy rejects; the message names every broken rule."""


class ControlPlane:
    def __init__(self, settings: Settings, engine: Engine, clock: Clock) -> None:
        self.settings, self.engine, self.clock = settings, engine, clock
        self.regions = HttpRegions(settings.control_regions)
        self.controller = Controller(self.regions, self.regions.names)
        self._lock = threading.Lock()  # API calls and the driver loop change rollouts
        self._last_watch = 0.0
        self._correlated: set[str] = set()  # region:alert already given a cross-region note

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
                r
                for r in records.active(self.engine, (*ACTIVE, RolloutState.PAUSED))
                if r.flag == plan.flag
            ]
            if busy:
                raise ValidationError(
                    f"rollout {busy[0].id} of {plan.flag} is still {busy[0].state}"
                )
            rollout = Rollout.start(records.next_id(self.engine), plan, by, now)
            records.insert_rollout(self.engine, rollout, now)
            records.save(
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
        """Step every active rollout once (the driver loop calls this); every couple of seconds
        also watch completed rollouts in their revert window and compare regions' symptoms."""
        with self._lock:
            for rollout in records.active(self.engine, ACTIVE):
                now = self.clock.now()
                try:
                    self._record(rollout, self.controller.step(rollout, now), now)
                except RegionUnreachable as e:  # a region down mid-apply: try again next tick
                    log.warning("event=rollout_step_failed id=%d error=%r", rollout.id, str(e))
                except Exception:
                    # Anything else is a fault of ours or of the database: logged with the
                    # rollout and its traceback every tick it lasts; the other rollouts step.
                    log.exception(
                        "event=rollout_step_failed id=%d flag=%s", rollout.id, rollout.flag
                    )
        now = self.clock.now()
        if now - self._last_watch < WATCH_INTERVAL:
            return
        self._last_watch = now
        try:
            self.watch_completed(now)
        except Exception:
            log.exception("event=revert_watch_failed")
        try:
            self.correlate()
        except Exception:
            log.exception("event=correlate_failed")

    def _record(self, rollout: Rollout, events: list[Event], now: float) -> None:
        if not events:
            return
        records.save(self.engine, rollout, events, now)
        for ev in events:
            log.info(
                "event=rollout_%s id=%d region=%s detail=%r",
                ev.kind,
                rollout.id,
                ev.region,
                ev.detail,
            )

    def watch_completed(self, now: float) -> None:
        """The newest completed rollout of each flag, inside the policy's revert window: revert
        it on a fault tied to it (``Controller.watch_after``). A rollout that a newer one of the
        same flag superseded is no longer watched."""
        window = load_policy(self.settings.policy_file).revert_window
        if window <= 0:
            return
        with self._lock:
            newest: dict[str, Rollout] = {}
            for r in records.listing(self.engine, limit=200):  # newest first
                newest.setdefault(r.flag, r)
            for rollout in newest.values():
                if rollout.state != RolloutState.COMPLETED or rollout.kind != "rollout":
                    continue
                if now > rollout.completed_at + window:
                    continue
                self._record(rollout, self.controller.watch_after(rollout, now, window), now)

    def revert(self, flag: str, by: str, reason: str) -> Rollout:
        """Undo the latest change of ``flag`` everywhere, in parallel and at once: no policy
        check (freeze windows, bakes), audited with who and why.

        - a rollout of the flag in progress, or completed, is rolled back: each region it gave
          the value to, and that still has it, gets its previous value (a region that does not
          answer is retried by the driver until it does);
        - the latest rollout already rolled back (or reverted): refused, nothing to undo;
        - no rollout of the flag: each region's own latest change (made by hand) is undone."""
        if flag not in FLAGS:
            raise ValidationError(f"unknown flag {flag!r}; known: {', '.join(sorted(FLAGS))}")
        if not by.strip() or not reason.strip():
            raise ValidationError("a revert says who asks ('by') and why ('reason')")
        why = f"reverted by {by}: {reason}"
        asked = Event("revert_asked", reason, actor=by)
        with self._lock:
            now = self.clock.now()
            latest = next((r for r in records.listing(self.engine, 200) if r.flag == flag), None)
            if latest is not None:
                return self._revert_rollout(latest, now, why, by, asked)
            return self._revert_by_hand(flag, now, why, by, asked)

    def _revert_rollout(self, r: Rollout, now: float, why: str, by: str, asked: Event) -> Rollout:
        if r.state in (RolloutState.ROLLED_BACK, RolloutState.ROLLING_BACK):
            raise ValidationError(
                f"the latest change of {r.flag} ({r.kind} {r.id}) is already {r.state}: "
                "nothing to revert"
            )
        names = list(r.applied)
        with ThreadPoolExecutor(max_workers=max(1, len(names))) as pool:
            values = dict(zip(names, pool.map(self._value_of(r.flag), names), strict=True))
        # A region whose value changed since (by hand, or another change) keeps it.
        moved = [n for n, v in values.items() if v is not _UNREACHABLE and v != r.value]
        targets = [n for n in names if n not in moved]
        events = [asked] + [
            Event("revert_skipped", f"has {values[n]!r} now, not {r.value!r}", n) for n in moved
        ]
        if not targets:
            raise ValidationError(f"no region still has {r.flag}={r.value!r}: nothing to revert")
        events += self.controller.roll_back(r, now, why, by, regions=targets)
        self._record(r, events, now)
        log.info("event=flag_reverted flag=%s by=%s rollout=%d", r.flag, by, r.id)
        return r

    def _value_of(self, flag: str) -> Callable[[str], Any]:
        def read(region: str) -> Any:
            try:
                return self.regions.flag_values(region).get(flag)
            except RegionUnreachable:
                return _UNREACHABLE  # rolled back anyway: the driver retries it

        return read

    def _revert_by_hand(self, flag: str, now: float, why: str, by: str, asked: Event) -> Rollout:
        names = self.regions.names
        with ThreadPoolExecutor(max_workers=max(1, len(names))) as pool:
            read = pool.map(lambda n: self._history(n, flag), names)
            histories = dict(zip(names, read, strict=True))
        previous = {n: h[0]["previous"] for n, h in histories.items() if h}
        current = [json_key(h[0]["value"]) for h in histories.values() if h]
        if not previous:
            raise ValidationError(f"no region has changed {flag}: nothing to revert")
        r = Rollout(
            records.next_id(self.engine),
            flag,
            Counter(current).most_common(1)[0][0] if current else None,
            [list(previous)],
            0.0,
            0.0,
            [],
            by,
            now,
            phase=WavePhase.GUARD,
            kind="revert",
            applied=dict.fromkeys(previous, now),
            previous=previous,
        )
        records.insert_rollout(self.engine, r, now)
        events = [asked]
        events += [
            Event("revert_unreachable", "its history could not be read: not reverted", n)
            for n, h in histories.items()
            if h is None
        ]
        events += self.controller.roll_back(r, now, why, by)
        self._record(r, events, now)
        log.info("event=flag_reverted flag=%s by=%s revert=%d", flag, by, r.id)
        return r

    def _history(self, region: str, flag: str) -> list[dict[str, Any]] | None:
        try:
            return self.regions.flag_history(region, flag)
        except RegionUnreachable:
            return None

    def correlate(self) -> None:
        """On each firing alert that names a flag change as a suspect, say once whether the
        regions without that change show the same symptom."""
        firing: dict[str, list[dict[str, Any]]] = {}
        values: dict[str, dict[str, Any]] = {}
        for name in self.regions.names:
            try:
                firing[name] = self.regions.firing(name)
                values[name] = self.regions.flag_values(name)
            except RegionUnreachable:
                continue
        for region, alerts in firing.items():
            for a in alerts:
                key = f"{region}:{a['id']}"
                named = [
                    s for s in (a.get("labels") or {}).get("suspects", []) if s["kind"] == "flag"
                ]
                if key in self._correlated or not named:
                    continue
                self._correlated.add(key)
                text = "; ".join(
                    compare_regions(region, a["name"], s, values, firing) for s in named[:3]
                )
                try:
                    self.regions.note(region, int(a["id"]), f"cross-region: {text}")
                except RegionUnreachable as e:
                    log.warning("event=correlate_note_failed region=%s error=%r", region, str(e))

    def _act(self, rollout_id: int, action: str, by: str) -> Rollout:
        with self._lock:
            rollout = records.load(self.engine, rollout_id)
            if rollout is None:
                raise NotFound(f"no rollout {rollout_id}")
            now = self.clock.now()
            if action == "pause":
                events = self.controller.pause(rollout, now, by)
            elif action == "resume":
                events = self.controller.resume(rollout, now, by)
            else:
                if rollout.state not in (RolloutState.RUNNING, RolloutState.PAUSED):
                    raise ValidationError(f"rollout {rollout_id} is {rollout.state}")
                events = self.controller.roll_back(rollout, now, f"asked by {by}", by)
            if not events:
                raise ValidationError(f"rollout {rollout_id} is {rollout.state}: cannot {action}")
            records.save(self.engine, rollout, events, now)
            return rollout

    def pause(self, rollout_id: int, by: str) -> Rollout:
        return self._act(rollout_id, "pause", by)

    def resume(self, rollout_id: int, by: str) -> Rollout:
        return self._act(rollout_id, "resume", by)

    def rollback(self, rollout_id: int, by: str) -> Rollout:
        return self._act(rollout_id, "rollback", by)

    def status(self, rollout_id: int) -> dict[str, Any]:
        rollout = records.load(self.engine, rollout_id)
        if rollout is None:
            raise NotFound(f"no rollout {rollout_id}")
        return {**rollout.to_dict(), "events": records.events(self.engine, rollout_id)}

    def rollouts(self, limit: int = 50, offset: int = 0) -> list[dict[str, Any]]:
        return [r.to_dict() for r in records.listing(self.engine, limit, offset)]

    def region_views(self) -> list[dict[str, Any]]:
        return [self.regions.health(name) for name in self.regions.names]
