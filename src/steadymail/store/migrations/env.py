"""Alembic environment: runs migrations against the URL set by steadymail.store.db."""

from alembic import context
from sqlalchemy import create_engine

from steadymail.store.db import is_sqlite
from steadymail.store.schema import metadata

config = context.config


def run_migrations() -> None:
    url = config.get_main_option("sqlalchemy.url")
    assert url is not None
    if context.is_offline_mode():
        context.configure(url=url, target_metadata=metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(url)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            render_as_batch=is_sqlite(connection),
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations()
