"""Alembic environment of a region's database: runs its migrations against the URL set by
steadymail.store.db."""

from steadymail.store.migration_env import run_migrations
from steadymail.store.schema import metadata

run_migrations(metadata)
