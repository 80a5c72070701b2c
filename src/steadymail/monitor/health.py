"""Service health: started, stopped, died, restarted and crash-looping processes.

Reads only what changed since the last tick (instances by start/stop/heartbeat time, platform
events by id), so a tick costs the same however long the region has run.
"""

from collections import deque
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from steadymail.config import Settings
from steadymail.domain.states import SlotState
from steadymail.monitor.signals import Signal
from steadymail.store import events, instances
from steadymail.store.events import PlatformEvent
from steadymail.store.instances import Instance


@dataclass
class _Slot:
    instance: str = ""
    service: str = ""
    # None until an instance is seen starting in it.
    state: SlotState | None = None
    since: float = 0.0
    restart_open: bool = False
    last_reason: str = ""
    last_words: str = ""


class HealthWatcher:
    def __init__(self, engine: Engine, settings: Settings) -> None:
        self._engine, self._s = engine, settings
        self._slots: dict[str, _Slot] = {}
        self._known: set[str] = set()
        # Per service, not per slot: one poison message can kill a different worker each time.
        self._restarts: dict[str, deque[float]] = {}
        self._event_id = 0
        self._last = 0.0
        # Recent automatic mitigations, so a restart alert opened after them still shows them.
        self._mitigations: deque[tuple[float, str]] = deque(maxlen=100)

    def prime(self, now: float) -> None:
        """Learn what runs now without alerting on it (a monitor restart is not an incident)."""
        for row in instances.all_live(self._engine, now, self._s.dead_age()):
            self._slots[row.slot] = _Slot(
                row.instance_id, row.service, SlotState.LIVE, row.started_at
            )
            self._known.add(row.instance_id)
        self._event_id = events.last_id(self._engine)
        self._last = now

    def tick(self, now: float) -> list[Signal]:
        out: list[Signal] = []
        fresh = events.after(self._engine, self._event_id)
        if fresh:
            self._event_id = fresh[-1].id
        # Exits first, so a restart seen in the same tick knows how its predecessor ended;
        # mitigations last, so they land on the alerts this tick opens.
        out += self._from_events([e for e in fresh if e.kind == "process_exited"])
        # A margin for clocks and commit delays between processes; repeats are ignored.
        rows = instances.changed_since(self._engine, self._last - 5.0, now - self._s.dead_age())
        for row in sorted(rows, key=lambda r: r.started_at):
            out += self._instance(row, now)
        out += self._from_events([e for e in fresh if e.kind != "process_exited"])
        out += self._housekeeping(now)
        self._last = now
        return out

    def _instance(self, row: Instance, now: float) -> list[Signal]:
        iid, slot_name = row.instance_id, row.slot
        slot = self._slots.setdefault(slot_name, _Slot())
        out: list[Signal] = []
        if iid not in self._known:
            self._known.add(iid)
            if row.stopped_at is None:
                out += self._started(slot_name, slot, row, now)
        if slot.instance != iid:
            return out
        labels = self._labels(slot_name, row)
        if row.stopped_at is not None and slot.state == SlotState.LIVE:
            slot.state, slot.since = SlotState.STOPPED, row.stopped_at
            slot.last_reason = row.stop_reason or "stopped"
            out.append(
                Signal(
                    f"stopped:{slot_name}",
                    "service_stopped",
                    "info",
                    f"{slot_name} stopped ({slot.last_reason})",
                    labels,
                    detail=slot.last_reason,
                )
            )
        elif (
            row.stopped_at is None
            and row.heartbeat_at < now - self._s.dead_age()
            and slot.state == SlotState.LIVE
        ):
            slot.state, slot.since = SlotState.DEAD, now
            slot.last_reason = row.exit_reason or "missed heartbeats"
            slot.last_words = row.last_words or ""
            out.append(
                Signal(
                    f"died:{slot_name}",
                    "service_died",
                    "critical",
                    f"{slot_name} died ({slot.last_reason})",
                    labels,
                    detail=slot.last_reason,
                )
            )
        return out

    def _started(self, slot_name: str, slot: _Slot, row: Instance, now: float) -> list[Signal]:
        labels = self._labels(slot_name, row)
        replaced = f"replaced by {row.instance_id}"
        out = [
            Signal(f"died:{slot_name}", "service_died", resolve=True, detail=replaced),
            Signal(f"stopped:{slot_name}", "service_stopped", resolve=True, detail=replaced),
        ]
        if slot.instance:
            reason = slot.last_reason or "it went without a word"
            # After a graceful stop (a deploy, an operator's restart) a new instance is planned:
            # still reported, but gates and reverts do not count it as a fault.
            planned = slot.state == SlotState.STOPPED
            out.append(
                Signal(
                    f"restarted:{slot_name}",
                    "service_restarted",
                    "info" if planned else "critical",
                    f"{slot_name} restarted (previous instance: {reason})",
                    {
                        **labels,
                        "previous_instance": slot.instance,
                        "reason": reason,
                        "planned": planned,
                        "identity": row.identity or "",
                    },
                    detail=f"new instance {row.instance_id} pid {row.pid}"
                    + (f"; last words: {slot.last_words}" if slot.last_words else ""),
                )
            )
            slot.restart_open = True
            out += [
                Signal(f"restarted:{slot_name}", "service_restarted", note=note)
                for at, note in self._mitigations
                if at >= now - 60
            ]
            if not planned:
                out += self._count_restart(row.service, row.region, slot_name, now)
        slot.instance, slot.service, slot.state = row.instance_id, row.service, SlotState.LIVE
        slot.since, slot.last_reason, slot.last_words = row.started_at, "", ""
        return out

    def _count_restart(self, service: str, region: str, slot_name: str, now: float) -> list[Signal]:
        restarts = self._restarts.setdefault(service, deque())
        restarts.append(now)
        while restarts and restarts[0] < now - self._s.crash_loop_window:
            restarts.popleft()
        if len(restarts) < self._s.crash_loop_restarts:
            return []
        return [
            Signal(
                f"crashloop:{service}",
                "crash_loop",
                "critical",
                f"{service} restarted {len(restarts)} times in "
                f"{self._s.crash_loop_window:.0f}s (last: {slot_name})",
                {"service": service, "region": region},
            )
        ]

    def _labels(self, slot_name: str, row: Instance) -> dict[str, Any]:
        return {
            "slot": slot_name,
            "service": row.service,
            "region": row.region,
            "instance": row.instance_id,
            "host": row.host,
            "version": row.version,
        }

    def _from_events(self, fresh: list[PlatformEvent]) -> list[Signal]:
        out: list[Signal] = []
        for ev in fresh:
            d = ev.detail
            if ev.kind == "process_exited":
                slot = self._slots.get(d.get("slot", ""))
                if slot is None or slot.instance != d.get("instance"):
                    continue
                # A later witness (the supervisor's exit code after a peer saw the PID gone)
                # tells more: the restart alert uses the last word on it.
                slot.last_reason = d["reason"]
                slot.last_words = d.get("last_words") or slot.last_words
                if slot.state == SlotState.LIVE:
                    slot.state = SlotState.DEAD
                    out.append(
                        Signal(
                            f"died:{d['slot']}",
                            "service_died",
                            "critical",
                            f"{d['slot']} died ({d['reason']})",
                            {
                                "slot": d["slot"],
                                "region": ev.region,
                                "instance": d.get("instance"),
                                "reason": d["reason"],
                            },
                            detail=d.get("last_words") or d["reason"],
                        )
                    )
            elif ev.kind == "message_quarantined":
                out.append(
                    Signal(
                        f"quarantine:{d['message']}",
                        "message_quarantined",
                        "warning",
                        f"message {d['message']} to {d['email']} quarantined: {d['reason']}",
                        {"message": d["message"], "region": ev.region},
                    )
                )
            elif ev.kind == "lease_reclaimed":
                note = (
                    f"mitigation: batch {d['batch']} of send {d['send']} reclaimed by "
                    f"{d['by']} ({d['at_risk']} messages re-sent)"
                )
                self._mitigations.append((ev.at, note))
                for name, slot in self._slots.items():
                    if slot.service == "worker":
                        out.append(Signal(f"restarted:{name}", "service_restarted", note=note))
                        out.append(Signal(f"died:{name}", "service_died", note=note))
        return out

    def _revived(self, now: float) -> list[Signal]:
        """A process declared dead that beats again (it was frozen, not killed) is back."""
        dead = {
            slot.instance: name
            for name, slot in self._slots.items()
            if slot.state == SlotState.DEAD
        }
        out: list[Signal] = []
        for row in instances.by_ids(self._engine, list(dead)):
            if row.stopped_at is None and row.heartbeat_at >= now - self._s.dead_age():
                slot = self._slots[dead[row.instance_id]]
                slot.state = SlotState.LIVE
                out.append(
                    Signal(
                        f"died:{dead[row.instance_id]}",
                        "service_died",
                        resolve=True,
                        detail=f"{slot.instance} is beating again",
                    )
                )
        return out

    def _housekeeping(self, now: float) -> list[Signal]:
        out: list[Signal] = self._revived(now)
        for name, slot in self._slots.items():
            healthy_for = now - slot.since
            if (
                slot.restart_open
                and slot.state == SlotState.LIVE
                and healthy_for >= self._s.restart_resolve_after
            ):
                slot.restart_open = False
                out.append(
                    Signal(
                        f"restarted:{name}",
                        "service_restarted",
                        resolve=True,
                        detail=f"{slot.instance} healthy for {healthy_for:.0f}s",
                    )
                )
        for service, restarts in self._restarts.items():
            if restarts and restarts[-1] < now - self._s.crash_loop_window:
                restarts.clear()
                out.append(
                    Signal(
                        f"crashloop:{service}",
                        "crash_loop",
                        resolve=True,
                        detail="no restart for a whole window",
                    )
                )
        return out
