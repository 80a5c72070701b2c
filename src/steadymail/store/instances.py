"""The registry of running processes (workers, api, …) and their heartbeats."""

from typing import Any

from sqlalchemy import Engine, insert, select, update

from steadymail.store.schema import instances


def register(
    engine: Engine,
    *,
    instance_id: str,
    service: str,
    region: str,
    host: str,
    pid: int,
    version: str,
    now: float,
) -> None:
    with engine.begin() as conn:
        conn.execute(
            insert(instances).values(
                instance_id=instance_id,
                service=service,
                region=region,
                host=host,
                pid=pid,
                version=version,
                started_at=now,
                heartbeat_at=now,
            )
        )


def heartbeat(engine: Engine, instance_id: str, now: float) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(instances).where(instances.c.instance_id == instance_id).values(heartbeat_at=now)
        )


def stopped(engine: Engine, instance_id: str, reason: str, now: float) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(instances)
            .where(instances.c.instance_id == instance_id)
            .values(stopped_at=now, stop_reason=reason)
        )


def live(engine: Engine, service: str, now: float, max_age: float) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(instances).where(
                instances.c.service == service,
                instances.c.stopped_at.is_(None),
                instances.c.heartbeat_at >= now - max_age,
            )
        )
        return [dict(r._mapping) for r in rows]
