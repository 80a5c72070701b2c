"""What the API and CLI ask of the watching side: alerts, silences, workers, stalls, incidents."""

from typing import Any

from sqlalchemy import Engine

from steadymail.alerts.incident import export_markdown
from steadymail.clock import Clock
from steadymail.config import Settings
from steadymail.errors import ValidationError
from steadymail.store import alerts, instances


def list_alerts(
    engine: Engine, state: str | None = None, since: float | None = None
) -> list[dict[str, Any]]:
    return alerts.listing(engine, state, limit=500 if since is not None else 100, since=since)


def alert(engine: Engine, alert_id: int) -> dict[str, Any]:
    return alerts.get(engine, alert_id)


def ack(engine: Engine, clock: Clock, alert_id: int, by: str) -> None:
    alerts.ack(engine, alert_id, by, clock.now())


def silence(
    engine: Engine, clock: Clock, name: str, labels: dict[str, Any], minutes: float, reason: str
) -> int:
    if minutes <= 0 or minutes > 60 * 24 * 30:
        raise ValidationError("a silence lasts between 1 minute and 30 days")
    now = clock.now()
    return alerts.add_silence(engine, name, labels, now + minutes * 60, reason, now)


def workers(engine: Engine, clock: Clock, settings: Settings) -> list[dict[str, Any]]:
    """Every live process of the region, with the seconds since its last heartbeat."""
    now = clock.now()
    max_age = settings.resolved_heartbeat_interval() * settings.dead_after_beats
    rows = instances.all_live(engine, now, max_age)
    for r in rows:
        r["heartbeat_age"] = round(now - r["heartbeat_at"], 1)
        # Digests of its settings and its lock's inode: internal, and no help to a reader.
        r.pop("config", None)
        r.pop("lock", None)
    return rows


def stalls(engine: Engine) -> list[dict[str, Any]]:
    return [a for a in alerts.listing(engine, "firing") if a["name"] == "send_stalled"]


def incident(engine: Engine, clock: Clock, alert_id: int) -> str:
    return export_markdown(engine, alert_id, clock.now())
