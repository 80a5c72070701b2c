"""The control plane's records: its own database, opened and migrated when it starts (as a
region's is by `steadymail up` and `migrate`), and its rollouts with their audit log, read and
written as `Rollout`s and `Event`s. control/ reaches its database only through here."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from sqlalchemy import Engine

from steadymail.config import Settings
from steadymail.rollout.controller import Event, Rollout
from steadymail.store import control_plane as records
from steadymail.store.db import make_engine


def open_database(settings: Settings) -> Engine:
    """The control plane's database (`control_db`), brought to the newest schema."""
    url = f"sqlite:///{settings.resolved_control_db()}"
    engine = make_engine(url)  # creates the file's directory
    records.migrate_control(url)
    return engine


def next_id(engine: Engine) -> int:
    return records.next_id(engine)


def insert_rollout(engine: Engine, r: Rollout, now: float) -> None:
    records.insert_rollout(engine, r.id, r.state, r.to_dict(), now)


def save(engine: Engine, r: Rollout, events: list[Event], now: float) -> None:
    """The rollout's new state and what it did, in one transaction."""
    entries = [records.AuditEntry(e.kind, e.detail, e.region, e.actor) for e in events]
    records.save(engine, r.id, r.state, r.to_dict(), entries, now)


def load(engine: Engine, rollout_id: int) -> Rollout | None:
    data = records.load(engine, rollout_id)
    return Rollout.from_dict(data) if data is not None else None


def active(engine: Engine, states: tuple[str, ...]) -> list[Rollout]:
    """Rollouts in `states`, oldest first."""
    return [Rollout.from_dict(d) for d in records.active(engine, states)]


def listing(engine: Engine, limit: int = 50, offset: int = 0) -> list[Rollout]:
    """Rollouts, newest first."""
    return [Rollout.from_dict(d) for d in records.listing(engine, limit, offset)]


def events(engine: Engine, rollout_id: int) -> list[dict[str, Any]]:
    """The rollout's audit log, oldest first, as the control API shows it."""
    return [asdict(e) for e in records.events(engine, rollout_id)]
