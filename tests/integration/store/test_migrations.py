"""The hand-written Alembic migrations build exactly the schema the code declares.

Each chain is migrated from nothing to its head on a fresh database of each kind, and Alembic's
autogenerate comparison (`compare_metadata`: tables, columns, types, nullability, server
defaults, indexes, unique and foreign keys) must find nothing to change. A second chain (another
metadata with its own migrations) is one more `Chain` in `CHAINS`."""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Column, DefaultClause, Integer, MetaData, create_engine

from steadymail.store.control_plane import VERSION_TABLE as CONTROL_VERSION_TABLE
from steadymail.store.control_plane import migrate_control
from steadymail.store.control_schema import metadata as control_metadata
from steadymail.store.db import migrate, normalise_url
from steadymail.store.schema import metadata as region_metadata


@dataclass(frozen=True)
class Chain:
    """One metadata and the migrations that must build it."""

    name: str
    metadata: MetaData
    upgrade: Callable[[str], None]  # brings the database at this URL to the chain's head
    version_table: str = "alembic_version"


CONTROL = Chain("control", control_metadata, migrate_control, CONTROL_VERSION_TABLE)
CHAINS = [Chain("region", region_metadata, migrate), CONTROL]


def _sqlite_literal_default(
    context: MigrationContext,
    inspected_column: Column[Any],
    metadata_column: Column[Any],
    inspected_default: str | None,
    metadata_default: Any,
    rendered_metadata_default: str | None,
) -> bool | None:
    """Compare a constant string default on SQLite by its value.

    Dialect noise, not a difference: a column declared `server_default=""` is `DEFAULT ''` in
    SQLite's DDL, and Alembic's SQLite support takes only non-empty quoted literals for
    constants (its patterns are `'(.+)'`): it reads `''` back as the expression `('')` and
    reports every empty-string default as changed. Constant strings are compared here by the
    literal they are in the DDL; anything else (other dialects, non-string or SQL expression
    defaults) goes to Alembic's own comparison (None)."""
    if context.dialect.name != "sqlite" or inspected_default is None:
        return None
    arg = getattr(metadata_default, "arg", None)
    if not isinstance(arg, str):
        return None
    literal = "'" + arg.replace("'", "''") + "'"
    return inspected_default not in (literal, f"({literal})")


def differences(url: str, chain: Chain) -> list[Any]:
    engine = create_engine(normalise_url(url))
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn,
                opts={
                    "compare_type": True,
                    "compare_server_default": _sqlite_literal_default,
                    "include_name": lambda name, kind, _parents: (
                        kind != "table" or name != chain.version_table
                    ),
                },
            )
            return list(compare_metadata(context, chain.metadata))
    finally:
        engine.dispose()


@pytest.mark.parametrize("chain", CHAINS, ids=lambda c: c.name)
def test_migrations_build_exactly_the_declared_schema(empty_url: str, chain: Chain) -> None:
    chain.upgrade(empty_url)
    found = differences(empty_url, chain)
    assert found == [], f"{chain.name}: the migrations and the metadata differ: {found}"


def test_the_comparison_sees_a_difference(tmp_path: Path) -> None:
    """The check itself can fail: a column the migrations never made, and a string default
    they made otherwise, are both reported (the SQLite default rule above hides only noise)."""
    url = f"sqlite:///{tmp_path / 'drift.db'}"
    migrate(url)
    drifted = MetaData()
    for table in region_metadata.tables.values():
        table.to_metadata(drifted)
    drifted.tables["sends"].append_column(Column("drift", Integer, nullable=True))
    drifted.tables["changes"].c.by.server_default = DefaultClause("nobody")
    found = differences(url, Chain("drifted", drifted, migrate))
    # Column changes come as a list of changes per column.
    flat = [d for group in found for d in (group if isinstance(group, list) else [group])]
    assert sorted((d[0], d[2] if d[0] == "add_column" else d[3]) for d in flat) == [
        ("add_column", "sends"),
        ("modify_default", "by"),
    ], found


def _expression_indexes(metadata: MetaData) -> set[tuple[str, str]]:
    return {
        (t.name, str(i.name))
        for t in metadata.tables.values()
        for i in t.indexes
        if any(not isinstance(e, Column) for e in i.expressions)
    }


@pytest.mark.parametrize("chain", CHAINS, ids=lambda c: c.name)
def test_expression_indexes_the_comparison_skips_exist(empty_url: str, chain: Chain) -> None:
    """Alembic cannot reflect an index on an expression (`lower(email)`), so it skips them: each
    one declared must exist by name after the migrations."""
    chain.upgrade(empty_url)
    engine = create_engine(normalise_url(empty_url))
    try:
        with engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                q = "SELECT tbl_name, name FROM sqlite_master WHERE type = 'index'"
            else:
                q = "SELECT tablename, indexname FROM pg_indexes WHERE schemaname = 'public'"
            present = {(str(r[0]), str(r[1])) for r in conn.exec_driver_sql(q)}
    finally:
        engine.dispose()
    declared = _expression_indexes(chain.metadata)
    assert declared - present == set(), f"{chain.name}: missing {declared - present}"
