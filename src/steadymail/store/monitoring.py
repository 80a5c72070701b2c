"""The few indexed reads the stall detector needs per tick."""

from typing import Any

from sqlalchemy import Engine, and_, func, or_, select

from steadymail.store.schema import batches, sends


def running_sends(engine: Engine) -> list[dict[str, Any]]:
    """Running sends with `last_progress_at`: the newest progress of the send or its batches."""
    newest = (
        select(batches.c.send_id, func.max(batches.c.progress_at).label("batch_progress"))
        .group_by(batches.c.send_id)
        .subquery()
    )
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                sends.c.id,
                sends.c.name,
                sends.c.kind,
                sends.c.last_progress_at,
                sends.c.started_at,
                newest.c.batch_progress,
            )
            .select_from(sends.outerjoin(newest, newest.c.send_id == sends.c.id))
            .where(sends.c.state == "running")
        )
        out = []
        for r in rows:
            row = dict(r._mapping)
            batch = row.pop("batch_progress")
            if batch is not None and (row["last_progress_at"] or 0) < batch:
                row["last_progress_at"] = batch
            out.append(row)
        return out


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
