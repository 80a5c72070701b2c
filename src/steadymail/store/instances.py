"""The registry of running processes (workers, api, …) and their heartbeats."""

from typing import Any

from sqlalchemy import Engine, and_, insert, or_, select, update

from steadymail.store.schema import flags as flag_rows
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
    slot: str = "",
) -> None:
    """Announce a process; `slot` names the place it fills, so a successor is a restart."""
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
                slot=slot or f"{service}@{host}:{pid}",
            )
        )


def heartbeat(
    engine: Engine,
    instance_id: str,
    now: float,
    flags: dict[str, Any] | None = None,
    read_flags: bool = False,
) -> list[dict[str, Any]]:
    """Beat; ``flags``, when given, are the flag values the process runs with now. With
    ``read_flags``, returns the region's flag rows read in the same transaction (a worker learns
    of a change at its next beat without a transaction of its own)."""
    values: dict[str, Any] = {"heartbeat_at": now}
    if flags is not None:
        values["flags"] = flags
    with engine.begin() as conn:
        conn.execute(
            update(instances).where(instances.c.instance_id == instance_id).values(**values)
        )
        if not read_flags:
            return []
        return [dict(r._mapping) for r in conn.execute(select(flag_rows))]


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
                # A supervisor saw it end: dead now, whatever its last heartbeat says.
                instances.c.exit_reason.is_(None),
                instances.c.heartbeat_at >= now - max_age,
            )
        )
        return [dict(r._mapping) for r in rows]


def record_exit(engine: Engine, pid: int, host: str, reason: str) -> str | None:
    """A supervisor saw `pid` end: note how, on the instance it ran. Returns its instance id."""
    with engine.begin() as conn:
        row = conn.execute(
            select(instances.c.instance_id)
            .where(instances.c.pid == pid, instances.c.host == host)
            .order_by(instances.c.started_at.desc())
            .limit(1)
        ).first()
        if row is None:
            return None
        conn.execute(
            update(instances)
            .where(instances.c.instance_id == row.instance_id)
            .values(exit_reason=reason)
        )
        return str(row.instance_id)


def changed_since(engine: Engine, since: float, stale_before: float) -> list[dict[str, Any]]:
    """Instances that started or stopped after `since`, or whose heartbeat went stale."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(instances).where(
                or_(
                    instances.c.started_at > since,
                    instances.c.stopped_at > since,
                    and_(
                        instances.c.stopped_at.is_(None),
                        # A supervisor saw it end: dead now, whatever its last heartbeat says.
                        instances.c.exit_reason.is_(None),
                        instances.c.heartbeat_at < stale_before,
                        instances.c.heartbeat_at >= since - 3600,
                    ),
                )
            )
        )
        return [dict(r._mapping) for r in rows]


def all_live(engine: Engine, now: float, max_age: float) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(instances)
            .where(
                instances.c.stopped_at.is_(None),
                # A supervisor saw it end: dead now, whatever its last heartbeat says.
                instances.c.exit_reason.is_(None),
                instances.c.heartbeat_at >= now - max_age,
            )
            .order_by(instances.c.service, instances.c.slot)
        )
        return [dict(r._mapping) for r in rows]


def by_ids(engine: Engine, instance_ids: list[str]) -> list[dict[str, Any]]:
    if not instance_ids:
        return []
    with engine.connect() as conn:
        rows = conn.execute(select(instances).where(instances.c.instance_id.in_(instance_ids)))
        return [dict(r._mapping) for r in rows]
