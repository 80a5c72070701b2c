"""What both Alembic environments (the region's chain and the control plane's) run: the
migrations against the URL their caller set, in batch mode on SQLite (which cannot ALTER most
things in place)."""

from alembic import context
from sqlalchemy import MetaData, create_engine

from steadymail.store.db import is_sqlite


def run_migrations(metadata: MetaData, version_table: str = "alembic_version") -> None:
    """Run the chain of the current Alembic context up to its target, online or offline."""
    url = context.config.get_main_option("sqlalchemy.url")
    assert url is not None
    if context.is_offline_mode():
        context.configure(
            url=url, target_metadata=metadata, literal_binds=True, version_table=version_table
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(url)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            version_table=version_table,
            render_as_batch=is_sqlite(connection),
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()
