"""Suspect changes: the flag changes and deploys made in a region shortly before an alert."""

import json
from typing import Any

from sqlalchemy import Connection

from steadymail.store import changes
from steadymail.store.changes import Change


def _value(v: Any) -> str:
    if v is None:
        return "unset"
    return v if isinstance(v, str) else json.dumps(v, sort_keys=True, separators=(",", ":"))


def age_text(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def describe(change: Change, now: float) -> str:
    """`tracking.version v1→v2, 13 min before`, `deploy of worker (version …), 2 min before`."""
    age = age_text(max(0.0, now - change.at))
    if change.kind == "flag":
        what = f"{change.subject} {_value(change.before)}→{_value(change.after)}"
    else:
        what = f"deploy of {change.subject}" + (f" ({change.detail})" if change.detail else "")
    return f"{what}, {age} before"


def suspects(conn: Connection, now: float, window: float, limit: int = 5) -> list[dict[str, Any]]:
    """The changes made in the window before ``now``, newest first, each with its text: as the
    JSON an alert's `suspects` label holds."""
    out = []
    for c in changes.between(conn, now - window, now, limit):
        out.append(
            {
                "id": c.id,
                "kind": c.kind,
                "subject": c.subject,
                "before": c.before,
                "after": c.after,
                "at": c.at,
                "age_s": round(now - c.at, 1),
                "text": describe(c, now),
            }
        )
    return out
