"""The platform event log: appended by any process, tailed by the monitor."""

from dataclasses import dataclass

from sqlalchemy import Engine, insert, select

from steadymail.store.records import JsonObject
from steadymail.store.schema import platform_events


@dataclass(frozen=True, slots=True)
class PlatformEvent:
    id: int
    at: float
    region: str
    kind: str  # process_exited | lease_reclaimed | message_quarantined
    subject: str
    # What the kind says about it (the slot and reason of an exit, the batch of a reclaim, …).
    detail: JsonObject


def append(
    engine: Engine, *, region: str, kind: str, subject: str, detail: JsonObject, now: float
) -> None:
    with engine.begin() as conn:
        conn.execute(
            insert(platform_events).values(
                at=now, region=region, kind=kind, subject=subject, detail=detail
            )
        )


def after(engine: Engine, last_id: int, limit: int = 1000) -> list[PlatformEvent]:
    """Events with an id above `last_id`, oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(platform_events)
            .where(platform_events.c.id > last_id)
            .order_by(platform_events.c.id)
            .limit(limit)
        ).mappings()
        return [PlatformEvent(**r) for r in rows]


def last_id(engine: Engine) -> int:
    with engine.connect() as conn:
        row = conn.execute(
            select(platform_events.c.id).order_by(platform_events.c.id.desc()).limit(1)
        ).first()
    return int(row.id) if row else 0


def between(engine: Engine, start: float, end: float) -> list[PlatformEvent]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(platform_events)
            .where(platform_events.c.at >= start, platform_events.c.at <= end)
            .order_by(platform_events.c.id)
        ).mappings()
        return [PlatformEvent(**r) for r in rows]
