"""What the API and CLI ask of a region's flags: read, set with validation, history."""

import logging
from typing import Any

from sqlalchemy import Engine

from steadymail.alerts.manager import AlertManager
from steadymail.clock import Clock
from steadymail.config import Settings
from steadymail.errors import ValidationError
from steadymail.monitor.after_revert import release_after_revert
from steadymail.rollout.flag_specs import FLAGS, validate
from steadymail.store import alerts, flag_values
from steadymail.store.flag_values import FlagChange
from steadymail.store.records import JsonObject

log = logging.getLogger("steadymail.flags")


def listing(engine: Engine, region: str) -> dict[str, Any]:
    return {
        "region": region,
        "flags": flag_values.current(engine),
        "known": {name: spec.description for name, spec in FLAGS.items()},
    }


def set_flag(
    engine: Engine,
    clock: Clock,
    name: str,
    value: Any,
    by: str,
    reason: str,
    region: str = "",
    settle: float = 0.0,
) -> dict[str, Any]:
    """Validate and set (``value`` None: unset); returns the new and the previous value, and
    how many quarantined messages a revert released. ``settle``: how long a worker may still
    run the old value (its flag refresh, the heartbeat interval)."""
    if not by.strip():
        raise ValidationError("say who sets the flag ('by')")
    normalised = validate(name, value)
    latest = flag_values.history(engine, name, limit=1)
    now = clock.now()
    previous = flag_values.set_value(engine, name, normalised, by.strip(), reason, now, region)
    out: dict[str, Any] = {"name": name, "value": normalised, "previous": previous}
    if latest and flag_values.is_revert(latest[0], normalised):
        # What is quarantined now; the monitor's sweep releases what is quarantined later by
        # workers that still ran the old value (after_revert.py).
        out["released"] = release_after_revert(engine, latest[0], now, now, now, settle)
    return out


def history(
    engine: Engine, name: str | None = None, limit: int = 100, offset: int = 0
) -> list[FlagChange]:
    """Flag changes, newest first; ``name`` narrows to one flag."""
    return flag_values.history(engine, name, limit, offset)


def note_alert(engine: Engine, clock: Clock, alert_id: int, by: str, text: str) -> None:
    """A timeline entry from outside the region (the control plane's rollout decisions)."""
    alerts.get(engine, alert_id)  # NotFound if there is no such alert
    with engine.begin() as conn:
        alerts.add_event(conn, alert_id, clock.now(), "note", f"{by}: {text}")


def external_alert(
    engine: Engine,
    clock: Clock,
    settings: Settings,
    fingerprint: str,
    summary: str,
    labels: JsonObject,
    detail: str,
    resolve: bool = False,
) -> dict[str, Any]:
    """An alert raised (or resolved) from outside the region: the control plane's rollbacks.
    It goes through the region's alert manager, so its notifiers and incident export see it."""
    if not fingerprint.startswith("rollout:"):
        raise ValidationError("external alerts use fingerprints 'rollout:<id>'")
    manager = AlertManager(
        engine, clock, [n.name for n in settings.notifiers], settings.suspect_window
    )
    if resolve:
        alert_id = manager.resolve(fingerprint, detail)
        return {"id": alert_id, "resolved": alert_id is not None}
    labels = {**labels, "region": settings.region, "flags": flag_values.current(engine)}
    alert_id, opened = manager.fire(
        fingerprint, "rollout_rolled_back", "critical", summary, labels, detail
    )
    if not opened:
        manager.note(fingerprint, "note", detail)
    return {"id": alert_id, "opened": opened}
