"""Engines: SQLite in WAL mode with IMMEDIATE transactions, or PostgreSQL through psycopg 3."""

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
from sqlalchemy import Connection, Engine, Table, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.pool import NullPool

from steadymail.config import Settings

if TYPE_CHECKING:
    from alembic.config import Config

_MIGRATIONS = Path(__file__).parent / "migrations"


def normalise_url(url: str) -> str:
    """Accept plain postgresql:// URLs and pick the psycopg 3 driver for them."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def is_sqlite(bind: Engine | Connection) -> bool:
    """The one dialect check: SQLite, or else PostgreSQL."""
    return bind.dialect.name == "sqlite"


# PostgreSQL session bounds when the caller names none (seconds). A session frozen inside a
# transaction (SIGSTOP, a long GC pause, a paused VM) is ended by the server after the first, so
# its row locks cannot hold other workers past a lease; a statement waiting on a lock gives up
# after the second, so the waiter's own heartbeat (same writer thread) keeps its leases alive.
DEFAULT_IDLE_IN_TRANSACTION_TIMEOUT = 5.0
DEFAULT_LOCK_TIMEOUT = 2.0


def pg_session_options(idle_in_transaction_timeout: float, lock_timeout: float) -> str:
    """The libpq `options` string that sets this platform's session bounds."""
    idle_ms = max(1, round(idle_in_transaction_timeout * 1000))
    lock_ms = max(1, round(lock_timeout * 1000))
    return f"-c idle_in_transaction_session_timeout={idle_ms} -c lock_timeout={lock_ms}"


def make_engine(
    url: str,
    *,
    idle_in_transaction_timeout: float = DEFAULT_IDLE_IN_TRANSACTION_TIMEOUT,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
) -> Engine:
    """An engine for `url`; SQLite gets WAL, a busy timeout and write-locking transactions;
    PostgreSQL sessions get an idle-in-transaction and a lock-wait bound."""
    url = normalise_url(url)
    if not url.startswith("sqlite"):
        return create_engine(
            url,
            pool_size=10,
            max_overflow=10,
            pool_pre_ping=True,
            connect_args={
                "options": pg_session_options(idle_in_transaction_timeout, lock_timeout),
                "cursor_factory": _UnpipelinedCursor,
            },
        )
    path = url.split("///", 1)[1] if "///" in url else ""
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    engine = create_engine(
        url, connect_args={"check_same_thread": False, "timeout": 30}, poolclass=NullPool
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Autocommit at the driver level, so that BEGIN below is the only transaction start.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # IMMEDIATE takes the write lock up front: a deferred transaction that upgrades to a
        # writer fails at once with "database is locked" instead of waiting out busy_timeout.
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


class _UnpipelinedCursor(psycopg.Cursor[Any]):
    """executemany as plain extended-protocol round trips, never in pipeline mode.

    After a pipelined executemany, PostgreSQL 15 often left the idle-in-transaction timer
    unarmed (measured: a session idle in transaction for 3.5 s against a 0.75 s timeout, its
    process frozen by another thread's SIGSTOP): the frozen process's row locks then held
    every other worker. A batch of a few rows costs a few more round trips instead."""

    def executemany(
        self, query: Any, params_seq: Iterable[Any], *, returning: bool = False
    ) -> None:
        gen = getattr(self, "_executemany_gen_no_pipeline", None)
        if gen is None and returning:
            super().executemany(query, params_seq, returning=True)
            return
        if gen is None:  # another psycopg: one execute per row, same effect
            total = 0
            for params in params_seq:
                self.execute(query, params)
                total += max(self.rowcount, 0)
            self._rowcount = total
            return
        with self._conn.lock:
            self._conn.wait(gen(query, params_seq, returning))


def engine_for(settings: Settings, url: str | None = None) -> Engine:
    """The engine for the region's database (or `url`), with the session bounds its lease TTL
    implies: how every service and command should open it."""
    return make_engine(url or settings.resolved_database_url(), **settings.resolved_pg_timeouts())


def alembic_config(url: str, script_location: Path = _MIGRATIONS) -> "Config":
    """Alembic's configuration for the chain at `script_location` (the region's by default)
    against `url`."""
    # Imported here: a worker or API process never migrates, and alembic costs every process
    # ~0.15 s of start-up (a restart's resume time).
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(script_location))
    cfg.set_main_option("sqlalchemy.url", normalise_url(url).replace("%", "%%"))
    return cfg


def migrate(url: str) -> None:
    """Bring the database at `url` to the newest schema."""
    from alembic import command

    command.upgrade(alembic_config(url), "head")


def dialect_insert(conn: Connection, table: Table) -> sqlite.Insert | postgresql.Insert:
    """An INSERT with ON CONFLICT support for the connection's dialect (SQLite or PostgreSQL)."""
    if is_sqlite(conn):
        return sqlite.insert(table)
    return postgresql.insert(table)


def insert_ignore(
    conn: Connection, table: Table, rows: Sequence[Mapping[str, object]], keys: list[str]
) -> None:
    """INSERT rows, skipping any that clash on `keys` (SQLite and PostgreSQL alike)."""
    if not rows:
        return
    conn.execute(dialect_insert(conn, table).on_conflict_do_nothing(index_elements=keys), rows)
