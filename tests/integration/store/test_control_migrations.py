"""The control plane's migrations build exactly `store/control_schema.py` on SQLite and on
PostgreSQL, and a control database that the control plane created before it had migrations
(`data_dir/control.db` outlives `steadymail up --regions` runs) keeps its rollouts and audit log
when it is brought under them."""

from pathlib import Path

from alembic.migration import MigrationContext
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
    insert,
    select,
)

from steadymail.config import Settings
from steadymail.rollout.controller import Event, Rollout
from steadymail.rollout.plan import Plan
from steadymail.services import control_plane
from steadymail.store.control_plane import VERSION_TABLE, migrate_control
from steadymail.store.db import make_engine
from tests.integration.store.test_migrations import CONTROL, differences


def _revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        return context.get_current_revision()


def _tables_before_migrations() -> MetaData:
    """The two tables as `control/store.py` created them in place (create_all), before the
    control plane had migrations."""
    old = MetaData()
    Table(
        "rollouts",
        old,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("state", String(20), nullable=False),
        Column("data", JSON, nullable=False),
        Column("created_at", Float, nullable=False),
        Column("updated_at", Float, nullable=False),
    )
    Table(
        "rollout_audit",
        old,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("rollout_id", Integer, nullable=False, index=True),
        Column("at", Float, nullable=False),
        Column("kind", String(40), nullable=False),
        Column("region", String(40), nullable=False, server_default=""),
        Column("actor", String(200), nullable=False),
        Column("detail", Text, nullable=False),
    )
    return old


def test_a_control_database_from_before_migrations_keeps_its_rollouts(empty_url: str) -> None:
    old = _tables_before_migrations()
    engine = make_engine(empty_url)
    try:
        old.create_all(engine)
        rollout = Rollout.start(
            1, Plan("tracking.version", "v2", [["R3"], ["R1"]], 60, 60), "bob", 5
        )
        with engine.begin() as conn:
            conn.execute(
                insert(old.tables["rollouts"]).values(
                    id=1, state="running", data=rollout.to_dict(), created_at=5, updated_at=5
                )
            )
            conn.execute(
                insert(old.tables["rollout_audit"]).values(
                    rollout_id=1, at=5, kind="started", actor="bob", detail="tracking.version"
                )
            )

        migrate_control(empty_url)  # what the control plane now does when it starts

        assert differences(empty_url, CONTROL) == []
        assert _revision(engine) is not None
        kept = control_plane.load(engine, 1)
        assert kept == rollout
        # It goes on working: the next rollout, and the audit log as written and as it grows.
        assert control_plane.next_id(engine) == 2
        control_plane.save(engine, rollout, [Event("applied", "R3 has v2", "R3")], 6)
        trail = control_plane.events(engine, 1)
        assert [(e["kind"], e["region"], e["actor"]) for e in trail] == [
            ("started", "", "bob"),
            ("applied", "R3", "controller"),
        ]
        with engine.connect() as conn:
            assert conn.execute(select(old.tables["rollouts"].c.state)).scalar_one() == "running"
    finally:
        engine.dispose()


def test_the_control_plane_migrates_its_database_when_it_starts(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, control_db=tmp_path / "control" / "control.db")
    engine = control_plane.open_database(settings)
    try:
        assert differences(str(engine.url), CONTROL) == []
        assert control_plane.next_id(engine) == 1
    finally:
        engine.dispose()
