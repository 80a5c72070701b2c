"""The control plane's own database: rollouts (state as JSON) and their audit log."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
    insert,
    select,
    update,
)

from steadymail.rollout.controller import Event, Rollout

metadata = MetaData()

rollouts = Table(
    "rollouts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("state", String(20), nullable=False),
    Column("data", JSON, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

audit = Table(
    "rollout_audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("rollout_id", Integer, nullable=False, index=True),
    Column("at", Float, nullable=False),
    Column("kind", String(40), nullable=False),
    Column("region", String(40), nullable=False, server_default=""),
    Column("actor", String(200), nullable=False),
    Column("detail", Text, nullable=False),
)


def create_schema(engine: Engine) -> None:
    # Two tables that only the control plane uses; created in place (no Alembic history yet).
    metadata.create_all(engine)


def next_id(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.coalesce(func.max(rollouts.c.id), 0))).scalar_one()) + 1


def insert_rollout(engine: Engine, r: Rollout, now: float) -> None:
    with engine.begin() as conn:
        conn.execute(
            insert(rollouts).values(
                id=r.id, state=r.state, data=r.to_dict(), created_at=now, updated_at=now
            )
        )


def save(engine: Engine, r: Rollout, events: list[Event], now: float) -> None:
    """The rollout's new state and what it did, in one transaction."""
    with engine.begin() as conn:
        conn.execute(
            update(rollouts)
            .where(rollouts.c.id == r.id)
            .values(state=r.state, data=r.to_dict(), updated_at=now)
        )
        if events:
            conn.execute(
                insert(audit),
                [
                    {
                        "rollout_id": r.id,
                        "at": now,
                        "kind": e.kind,
                        "region": e.region,
                        "actor": e.actor,
                        "detail": e.detail,
                    }
                    for e in events
                ],
            )


def load(engine: Engine, rollout_id: int) -> Rollout | None:
    with engine.connect() as conn:
        row = conn.execute(select(rollouts.c.data).where(rollouts.c.id == rollout_id)).first()
    return Rollout.from_dict(row.data) if row else None


def active(engine: Engine, states: tuple[str, ...]) -> list[Rollout]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(rollouts.c.data).where(rollouts.c.state.in_(states)).order_by(rollouts.c.id)
        )
        return [Rollout.from_dict(r.data) for r in rows]


def listing(engine: Engine, limit: int = 50, offset: int = 0) -> list[Rollout]:
    """Rollouts, newest first."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(rollouts.c.data).order_by(rollouts.c.id.desc()).limit(limit).offset(offset)
        )
        return [Rollout.from_dict(r.data) for r in rows]


def events(engine: Engine, rollout_id: int) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(audit).where(audit.c.rollout_id == rollout_id).order_by(audit.c.id)
        )
        return [dict(r._mapping) for r in rows]
