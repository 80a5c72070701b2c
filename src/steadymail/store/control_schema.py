"""The control plane's own database (`control_db`, apart from every region's): rollouts, each
one's whole state as JSON, and their audit log. Migrated by its own Alembic chain
(store/control_migrations/, `control_plane.migrate_control`)."""

from sqlalchemy import JSON, Column, Float, Integer, MetaData, String, Table, Text

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
