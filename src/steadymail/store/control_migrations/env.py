"""Alembic environment of the control plane's database: runs its migrations against the URL
set by steadymail.store.control_plane (a chain apart from the region's, with its own version
table)."""

from steadymail.store.control_plane import VERSION_TABLE
from steadymail.store.control_schema import metadata
from steadymail.store.migration_env import run_migrations

run_migrations(metadata, VERSION_TABLE)
