"""Whole databases: created and dropped by name (PostgreSQL), probed, checked for a schema, and
their URLs shown without passwords. What `steadymail up --regions`, the replay, `/readyz` and
the CLI's first command need of a database as a whole, apart from its tables."""

import psycopg
from sqlalchemy import Engine, inspect, text
from sqlalchemy.engine import make_url


def _server_and_name(url: str) -> tuple[str, str]:
    """`postgresql://…/name` as the URL of the server's `postgres` database, and `name`."""
    base, name = url.rsplit("/", 1)
    return base + "/postgres", name


def is_postgres_url(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


def create_database(url: str, *, exist_ok: bool = False) -> None:
    """Create the PostgreSQL database that `url` names; with `exist_ok`, one that exists is
    left as it is."""
    server, name = _server_and_name(url)
    with psycopg.connect(server, autocommit=True) as conn:
        if (
            exist_ok
            and conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        ):
            return
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(url: str) -> None:
    """Drop the PostgreSQL database that `url` names, if it exists, its sessions ended."""
    server, name = _server_and_name(url)
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def ping(engine: Engine) -> None:
    """One round trip; raises whatever the driver raises when the database does not answer."""
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))


def has_schema(engine: Engine) -> bool:
    """Whether Alembic ever migrated this database."""
    return inspect(engine).has_table("alembic_version")


def shown_url(url: str) -> str:
    """A database URL fit to print or log: its password, if any, masked."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy can parse: show nothing of it
        return "<database url>"
