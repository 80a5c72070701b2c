"""The few indexed reads the stall detector needs per tick."""

from dataclasses import dataclass

from sqlalchemy import Engine, and_, func, or_, select

from steadymail.domain.states import BatchState, SendKind, SendState
from steadymail.store.schema import batches, sends


@dataclass(frozen=True, slots=True)
class RunningSend:
    id: int
    name: str
    kind: SendKind
    # The newest progress of the send or of its batches.
    last_progress_at: float | None
    started_at: float | None


@dataclass(frozen=True, slots=True)
class DueWork:
    """A send's open batches that could be worked on now."""

    # Pending and due, or leased.
    due: int
    # Leased, and the lease has lapsed.
    expired_leases: int
    # Pending and due.
    waiting: int


def running_sends(engine: Engine) -> list[RunningSend]:
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
            .where(sends.c.state == SendState.RUNNING.value)
        )
        out = []
        for r in rows:
            progress = r.last_progress_at
            if r.batch_progress is not None and (progress or 0) < r.batch_progress:
                progress = r.batch_progress
            out.append(RunningSend(r.id, r.name, SendKind(r.kind), progress, r.started_at))
        return out


def due_work(engine: Engine, send_id: int, now: float) -> DueWork:
    """Open batches of a send that could be worked on now: pending and due, or leased."""
    pending, leased = BatchState.PENDING.value, BatchState.LEASED.value
    with engine.connect() as conn:
        rows = conn.execute(
            select(batches.c.state, batches.c.lease_expires_at).where(
                batches.c.send_id == send_id,
                or_(
                    and_(batches.c.state == pending, batches.c.available_at <= now),
                    batches.c.state == leased,
                ),
            )
        ).all()
    expired = sum(1 for r in rows if r.state == leased and (r.lease_expires_at or 0) < now)
    waiting = sum(1 for r in rows if r.state == pending)
    return DueWork(len(rows), expired, waiting)
