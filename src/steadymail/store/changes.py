"""The region's change log: flag changes and deploys, newest first; alerts name recent ones."""

from dataclasses import dataclass

from sqlalchemy import Connection, Engine, insert, select

from steadymail.store.records import JsonValue
from steadymail.store.schema import changes


@dataclass(frozen=True, slots=True)
class Change:
    id: int
    at: float
    region: str
    kind: str  # flag | deploy
    subject: str  # the flag's or the service's name
    # The flag's values (None: unset), or a deploy's {"version", "config" digest}.
    before: JsonValue
    after: JsonValue
    by: str
    detail: str


def add(
    conn: Connection,
    *,
    at: float,
    region: str,
    kind: str,
    subject: str,
    before: JsonValue,
    after: JsonValue,
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


def between(conn: Connection, start: float, end: float, limit: int = 50) -> list[Change]:
    """Changes made in [start, end], newest first."""
    rows = conn.execute(
        select(changes)
        .where(changes.c.at >= start, changes.c.at <= end)
        .order_by(changes.c.at.desc(), changes.c.id.desc())
        .limit(limit)
    ).mappings()
    return [Change(**r) for r in rows]


def latest(engine: Engine, kind: str, subject: str) -> Change | None:
    with engine.connect() as conn:
        row = (
            conn.execute(
                select(changes)
                .where(changes.c.kind == kind, changes.c.subject == subject)
                .order_by(changes.c.id.desc())
                .limit(1)
            )
            .mappings()
            .first()
        )
    return Change(**row) if row else None


def listing(
    engine: Engine, limit: int = 100, since: float | None = None, offset: int = 0
) -> list[Change]:
    """Newest first; ``since``: only changes made at or after it."""
    q = select(changes).order_by(changes.c.id.desc()).limit(limit).offset(offset)
    if since is not None:
        q = q.where(changes.c.at >= since)
    with engine.connect() as conn:
        return [Change(**r) for r in conn.execute(q).mappings()]
