"""How processes ended and what changed: systemd's exit report, and the region's change log."""

import contextlib
import os
import socket
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from steadymail import identity
from steadymail.clock import Clock
from steadymail.errors import ValidationError
from steadymail.store import changes, instances
from steadymail.store.changes import Change

# systemd's $EXIT_STATUS for a signal is its short name (KILL); ours say SIGKILL.
_CODES = {
    "exited": "exit code {status}",
    "killed": "signal SIG{status}",
    "dumped": "signal SIG{status} (core dumped)",
}


def systemd_reason(service_result: str, exit_code: str, exit_status: str) -> str | None:
    """The exit as systemd reports it to ExecStopPost; None for a clean, successful stop."""
    if (
        service_result in ("", "success")
        and exit_code in ("", "exited")
        and exit_status
        in (
            "",
            "0",
        )
    ):
        return None
    how = _CODES.get(exit_code, "{status}").format(status=exit_status or "?")
    return f"{how} (systemd: {service_result or 'unknown'})"


def report_exit(
    engine: Engine,
    clock: Clock,
    environ: dict[str, str],
    slot: str | None = None,
) -> dict[str, Any]:
    """Record how the last process of a slot ended, from systemd's ExecStopPost environment
    (`$SERVICE_RESULT`, `$EXIT_CODE`, `$EXIT_STATUS`). The slot is the unit's, or ``slot``."""
    if slot is None:
        cgroup = ""
        with contextlib.suppress(OSError):
            cgroup = Path("/proc/self/cgroup").read_text()
        unit = identity.systemd_unit(environ, cgroup)
        if unit is None:
            raise ValidationError(
                "report-exit runs as systemd's ExecStopPost (or give --slot): no unit found"
            )
        slot = f"{unit.removesuffix('.service')} on {socket.gethostname()}"
    reason = systemd_reason(
        environ.get("SERVICE_RESULT", ""),
        environ.get("EXIT_CODE", ""),
        environ.get("EXIT_STATUS", ""),
    )
    now = clock.now()
    pred = instances.predecessor(engine, slot, now)
    if pred is None or pred.host != socket.gethostname():
        return {"slot": slot, "recorded": False, "why": "no instance of this host filled it"}
    if pred.exit_reason and "without last words" not in pred.exit_reason:
        # Already told (last words, or a process that ended before it could register and
        # left its predecessor's record as it was): systemd's word would only repeat it.
        iid = pred.instance_id
        return {"slot": slot, "recorded": False, "why": "already recorded", "instance": iid}
    if reason is None:
        return {
            "slot": slot,
            "recorded": False,
            "why": "clean stop",
            "instance": pred.instance_id,
        }
    recorded = instances.record_end(
        engine,
        pred.instance_id,
        reason,
        now,
        overwrite=True,
        expire_leases=True,
        seen_by=f"systemd pid {os.getpid()}",
    )
    return {"slot": slot, "recorded": recorded, "reason": reason, "instance": pred.instance_id}


def record_supervised_exit(engine: Engine, clock: Clock, pid: int, reason: str) -> str | None:
    """Record the end (exit code or signal) that a supervisor saw of its child `pid` on this
    host's instance for the monitor, and lapse its leases at once: its batches can resume now.
    Returns the instance, or None when no instance of this host had that PID."""
    instance = instances.instance_of_pid(engine, pid, socket.gethostname())
    if instance is None:
        return None
    instances.record_end(
        engine,
        instance,
        reason,
        clock.now(),
        overwrite=True,
        expire_leases=True,
        seen_by="supervisor",
    )
    return instance


def change_log(
    engine: Engine, limit: int = 100, since: float | None = None, offset: int = 0
) -> list[Change]:
    if not 1 <= limit <= 1000:
        raise ValidationError("limit is between 1 and 1000")
    return changes.listing(engine, limit, since, offset)
