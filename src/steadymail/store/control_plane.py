"""The control plane's database: its migrations, and its rollouts (each one's whole state as a
JSON document, which the control plane's services read and write as a `Rollout`) with their
audit log."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, create_engine, func, insert, inspect, select, update

from steadymail.store.control_schema import audit, rollouts
from steadymail.store.db import alembic_config, normalise_url
from steadymail.store.records import JsonObject

_MIGRATIONS = Path(__file__).parent / "control_migrations"
# The revision whose schema the control plane created in place before it had migrations.
FIRST_REVISION = "c0001"
# Its own version table: a control chain's revision can never be mistaken for a region's, even
# in a database that holds both.
VERSION_TABLE = "control_alembic_version"


@dataclass(frozen=True)
class AuditEntry:
    """What a rollout did, to be written: what happened, where, decided by whom, why."""

    kind: str
    detail: str
    region: str
    actor: str


@dataclass(frozen=True)
class AuditRecord:
    """An audit log row as written."""

    id: int
    rollout_id: int
    at: float
    kind: str
    region: str
    actor: str
    detail: str


def migrate_control(url: str) -> None:
    """Bring the control plane's database at `url` to the newest schema. A database created
    before the control plane had migrations (its tables, no version) is first stamped at the
    revision that describes it, so its rollouts and audit log are kept."""
    from alembic import command  # only here: see store.db.alembic_config

    cfg = alembic_config(url, _MIGRATIONS)
    engine = create_engine(normalise_url(url))
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    if VERSION_TABLE not in tables and {rollouts.name, audit.name} <= tables:
        command.stamp(cfg, FIRST_REVISION)
    command.upgrade(cfg, "head")


def next_id(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.coalesce(func.max(rollouts.c.id), 0))).scalar_one()) + 1


def insert_rollout(
    engine: Engine, rollout_id: int, state: str, data: JsonObject, now: float
) -> None:
    with engine.begin() as conn:
        conn.execute(
            insert(rollouts).values(
                id=rollout_id, state=state, data=data, created_at=now, updated_at=now
            )
        )


def save(
    engine: Engine,
    rollout_id: int,
    state: str,
    data: JsonObject,
    entries: list[AuditEntry],
    now: float,
) -> None:
    """The rollout's new state and what it did, in one transaction."""
    with engine.begin() as conn:
        conn.execute(
            update(rollouts)
            .where(rollouts.c.id == rollout_id)
            .values(state=state, data=data, updated_at=now)
        )
        if entries:
            conn.execute(
                insert(audit),
                [
                    {
                        "rollout_id": rollout_id,
                        "at": now,
                        "kind": e.kind,
                        "region": e.region,
                        "actor": e.actor,
                        "detail": e.detail,
                    }
                    for e in entries
                ],
            )


def load(engine: Engine, rollout_id: int) -> JsonObject | None:
    """The rollout's state document, or None."""
    with engine.connect() as conn:
        row = conn.execute(select(rollouts.c.data).where(rollouts.c.id == rollout_id)).first()
    return dict(row.data) if row else None


def active(engine: Engine, states: tuple[str, ...]) -> list[JsonObject]:
    """State documents of the rollouts in `states`, oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(rollouts.c.data).where(rollouts.c.state.in_(states)).order_by(rollouts.c.id)
        )
        return [dict(r.data) for r in rows]


def listing(engine: Engine, limit: int = 50, offset: int = 0) -> list[JsonObject]:
    """State documents of rollouts, newest first."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(rollouts.c.data).order_by(rollouts.c.id.desc()).limit(limit).offset(offset)
        )
        return [dict(r.data) for r in rows]


def events(engine: Engine, rollout_id: int) -> list[AuditRecord]:
    """The rollout's audit log, oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(audit).where(audit.c.rollout_id == rollout_id).order_by(audit.c.id)
        )
        return [
            AuditRecord(
                int(r.id), int(r.rollout_id), float(r.at), r.kind, r.region, r.actor, r.detail
            )
            for r in rows
        ]
