"""The region's database as a process opens it: the engine (with the session bounds the
settings imply), its migrations, whether it answers, and a PostgreSQL database created on first
use. (The control plane's own database: services/control_plane.py.)

The API, the CLI and the replay open, create, migrate and probe databases only through here and
never import the store, SQLAlchemy or a driver themselves (import contract "doors" in
pyproject.toml). `Engine` is the handle they hand back to services; they run nothing on it."""

from sqlalchemy import Engine

from steadymail.config import Settings
from steadymail.store import databases, db
from steadymail.store.databases import shown_url

__all__ = [
    "Engine",
    "create_database",
    "drop_database",
    "ensure_database",
    "migrate_region",
    "open_region",
    "open_region_created",
    "open_url",
    "ready",
    "shown_url",
]


def open_region(settings: Settings, url: str | None = None) -> Engine:
    """The engine for the region's database (or `url`), with the session bounds its lease TTL
    implies: how every service and command should open it."""
    return db.engine_for(settings, url)


def open_region_created(settings: Settings) -> Engine:
    """`open_region`, creating the schema of a database that has none yet: a newcomer's first
    command may come before `up` or `migrate`. Existing databases are left to `migrate`."""
    url = settings.resolved_database_url()
    engine = db.engine_for(settings, url)
    if not databases.has_schema(engine):
        db.migrate(url)
    return engine


def open_url(url: str) -> Engine:
    """An engine for `url` with the default session bounds (tools reading a region's records)."""
    return db.make_engine(url)


def migrate_region(url: str) -> None:
    """Bring the region database at `url` to the newest schema."""
    db.migrate(url)


def ensure_database(url: str) -> None:
    """Create the PostgreSQL database `url` names unless it exists (a SQLite file is created
    when first opened)."""
    if databases.is_postgres_url(url):
        databases.create_database(url, exist_ok=True)


def create_database(url: str) -> None:
    """Create the PostgreSQL database `url` names; it must not exist yet."""
    databases.create_database(url)


def drop_database(url: str) -> None:
    """Drop the PostgreSQL database `url` names, if it exists."""
    databases.drop_database(url)


def ready(engine: Engine) -> str | None:
    """None when the database answers; otherwise the kind of error it gave (a readiness
    probe's answer names no more than that)."""
    try:
        databases.ping(engine)
    except Exception as e:
        return type(e).__name__
    return None
