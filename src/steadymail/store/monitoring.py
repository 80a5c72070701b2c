"""The few indexed reads the stall detector needs per tick."""

from typing import Any

from sqlalchemy import Engine, and_, or_, select

from steadymail.store.schema import batches, sends


def running_sends(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                sends.c.id, sends.c.name, sends.c.kind, sends.c.last_progress_at, sends.c.started_at
            ).where(sends.c.state == "running")
        )
        return [dict(r._mapping) for r in rows]


def due_work(engine: Engine, send_id: int, now: float) -> dict[str, int]:
    """Open batches of a send that could be worked on now: pending and due, or leased."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(batches.c.state, batches.c.lease_expires_at).where(
                batches.c.send_id == send_id,
                or_(
                    and_(batches.c.state == "pending", batches.c.available_at <= now),
                    batches.c.state == "leased",
                ),
            )
        ).all()
    expired = sum(1 for r in rows if r.state == "leased" and (r.lease_expires_at or 0) < now)
    waiting = sum(1 for r in rows if r.state == "pending")
    return {"due": len(rows), "expired_leases": expired, "waiting": waiting}
