"""What the API and CLI ask of the watching side: alerts, silences, workers, stalls, incidents."""

from typing import Any

from sqlalchemy import Engine

from steadymail.alerts.incident import export_markdown
from steadymail.clock import Clock
from steadymail.config import Settings
from steadymail.errors import ValidationError
from steadymail.store import alerts, instances


def list_alerts(
    engine: Engine,
    state: str | None = None,
    since: float | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Newest first; without ``limit``, 100 (500 when asking ``since`` a time)."""
    if limit is None:
        limit = 500 if since is not None else 100
    return alerts.listing(engine, state, limit=limit, since=since, offset=offset)


def alert(engine: Engine, alert_id: int) -> dict[str, Any]:
    return alerts.get(engine, alert_id)


def ack(engine: Engine, clock: Clock, alert_id: int, by: str) -> None:
    alerts.ack(engine, alert_id, by, clock.now())


def silence(
    engine: Engine, clock: Clock, name: str, labels: dict[str, Any], minutes: float, reason: str
) -> int:
    if not 0 < minutes <= 60 * 24 * 30:  # written so that NaN fails it too
        raise ValidationError("a silence lasts between 1 minute and 30 days")
    now = clock.now()
    return alerts.add_silence(engine, name, labels, now + minutes * 60, reason, now)


def workers(
    engine: Engine, clock: Clock, settings: Settings, limit: int | None = None, offset: int = 0
) -> list[dict[str, Any]]:
    """Every live process of the region, with the seconds since its last heartbeat."""
    now = clock.now()
    # Live processes are few (a region's workers, api and monitor): paged after the query.
    rows = instances.all_live(engine, now, settings.dead_age())[offset:][:limit]
    for r in rows:
        r["heartbeat_age"] = round(now - r["heartbeat_at"], 1)
        # Digests of its settings and its lock's inode: internal, and no help to a reader.
        r.pop("config", None)
        r.pop("lock", None)
    return rows


def stalls(engine: Engine, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
    """Firing stall alerts, newest first."""
    return alerts.listing(engine, "firing", limit=limit, offset=offset, name="send_stalled")


def incident(engine: Engine, clock: Clock, alert_id: int) -> str:
    return export_markdown(engine, alert_id, clock.now())
