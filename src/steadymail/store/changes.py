"""The region's change log: flag changes and deploys, newest first; alerts name recent ones."""

from typing import Any

from sqlalchemy import Connection, Engine, insert, select

from steadymail.store.schema import changes


def add(
    conn: Connection,
    *,
    at: float,
    region: str,
    kind: str,
    subject: str,
    before: Any,
    after: Any,
    by: str = "",
    detail: str = "",
) -> None:
    """Record one change inside the caller's transaction (the change itself is in it too)."""
    conn.execute(
        insert(changes).values(
            at=at,
            region=region,
            kind=kind,
            subject=subject,
            before=before,
            after=after,
            by=by,
            detail=detail,
        )
    )


def between(conn: Connection, start: float, end: float, limit: int = 50) -> list[dict[str, Any]]:
    """Changes made in [start, end], newest first."""
    rows = conn.execute(
        select(changes)
        .where(changes.c.at >= start, changes.c.at <= end)
        .order_by(changes.c.at.desc(), changes.c.id.desc())
        .limit(limit)
    )
    return [dict(r._mapping) for r in rows]


def latest(engine: Engine, kind: str, subject: str) -> dict[str, Any] | None:
    with engine.connect() as conn:
        row = conn.execute(
            select(changes)
            .where(changes.c.kind == kind, changes.c.subject == subject)
            .order_by(changes.c.id.desc())
            .limit(1)
        ).first()
    return dict(row._mapping) if row else None


def listing(
    engine: Engine, limit: int = 100, since: float | None = None, offset: int = 0
) -> list[dict[str, Any]]:
    q = select(changes).order_by(changes.c.id.desc()).limit(limit).offset(offset)
    if since is not None:
        q = q.where(changes.c.at >= since)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(q)]
