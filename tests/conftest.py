"""Fixtures for real servers: SQLite files, the PostgreSQL on 127.0.0.1:5432, aiosmtpd."""

import asyncio
import os
import queue
import shutil
import tempfile
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import Engine

from steadymail.clock import SystemClock
from steadymail.config import RelaySettings, Settings
from steadymail.store.db import make_engine, migrate
from tests.helpers import MISSING, free_port, need, wait_until

# The suite's relays are aiosmtpd servers and smtp-sinks, not the built-in capture server, and
# its senders are example domains nobody verified: unverified From domains are allowed here
# (the tests of that gate say false; subprocesses inherit it).
os.environ.setdefault("STEADYMAIL_ALLOW_UNVERIFIED_DOMAINS", "true")
PG_ADMIN = os.environ.get("STEADYMAIL_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def _pg_available() -> bool:
    try:
        with psycopg.connect(PG_ADMIN, connect_timeout=3):
            return True
    except psycopg.OperationalError:
        return False


PG_UP = _pg_available()


def need_pg() -> None:
    """Skip without PostgreSQL, or fail when STEADYMAIL_REQUIRE_PG=1 (`make test`)."""
    need("PG", PG_UP, f"PostgreSQL at {PG_ADMIN} does not answer")


def create_pg_database(template: str | None = None) -> str:
    """A new PostgreSQL database (a copy of `template`, if named); its URL."""
    name = f"sm_test_{uuid.uuid4().hex[:10]}"
    copy = f' TEMPLATE "{template}"' if template else ""
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"{copy}')
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + name


def drop_pg_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class _Migrated:
    """One database of each kind migrated once per run; each test gets a copy of it (a file
    copy, or CREATE DATABASE ... TEMPLATE), the same schema and data as running every migration
    again, in a fraction of the time. Dropped when the run ends.

    A PostgreSQL copy takes ~0.2 s (measured: CREATE DATABASE ... TEMPLATE on PostgreSQL 15,
    either strategy), mostly waiting on the server: the next copies are made by a thread while
    the current test runs, so a test finds its database ready."""

    AHEAD = 2

    def __init__(self) -> None:
        self._sqlite: Path | None = None
        self._pg: str | None = None
        self._ready: queue.Queue[str] = queue.Queue()
        self._wanted = threading.Semaphore(0)
        self._filler: threading.Thread | None = None
        self._closing = False
        self._discarded: queue.Queue[str | None] = queue.Queue()
        self._dropper: threading.Thread | None = None

    def sqlite(self, dest: Path) -> str:
        if self._sqlite is None:
            path = Path(tempfile.mkdtemp(prefix="steadymail-template-")) / "migrated.db"
            migrate(f"sqlite:///{path}")
            self._sqlite = path
        shutil.copyfile(self._sqlite, dest)
        return f"sqlite:///{dest}"

    def pg(self) -> str:
        need_pg()
        if self._pg is None:
            url = create_pg_database()
            migrate(url)  # its connections are closed when it returns: a template must be idle
            self._pg = url
            self._filler = threading.Thread(target=self._fill, daemon=True)
            self._filler.start()
            for _ in range(self.AHEAD):
                self._wanted.release()
        self._wanted.release()  # one more for the next test, made while this one runs
        return self._ready.get(timeout=60)

    def discard(self, url: str) -> None:
        """Drop a test's copy on a thread of its own: the next test need not wait for it."""
        if self._dropper is None:
            self._dropper = threading.Thread(target=self._drop_discarded, daemon=True)
            self._dropper.start()
        self._discarded.put(url)

    def _drop_discarded(self) -> None:
        while (url := self._discarded.get()) is not None:
            drop_pg_database(url)

    def _fill(self) -> None:
        assert self._pg is not None
        template = self._pg.rsplit("/", 1)[1]
        while True:
            self._wanted.acquire()
            if self._closing:
                return
            self._ready.put(create_pg_database(template=template))

    def drop(self) -> None:
        if self._sqlite is not None:
            shutil.rmtree(self._sqlite.parent, ignore_errors=True)
        if self._dropper is not None:
            self._discarded.put(None)
            self._dropper.join(120)
        if self._pg is not None:
            self._closing = True
            self._wanted.release()
            if self._filler is not None:
                self._filler.join(30)
            while not self._ready.empty():
                drop_pg_database(self._ready.get_nowait())
            drop_pg_database(self._pg)


MIGRATED = _Migrated()


def pytest_sessionfinish(session: pytest.Session) -> None:
    MIGRATED.drop()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated database: a SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield MIGRATED.sqlite(tmp_path / "steadymail.db")
        return
    with fresh_pg_database() as url:
        yield url


@contextmanager
def unmigrated_pg_database() -> Iterator[str]:
    """A new, empty PostgreSQL database, dropped afterwards; skips (or fails, when
    STEADYMAIL_REQUIRE_PG=1) if PostgreSQL does not answer."""
    need_pg()
    url = create_pg_database()
    try:
        yield url
    finally:
        drop_pg_database(url)


@contextmanager
def fresh_pg_database() -> Iterator[str]:
    """A new PostgreSQL database at the newest schema, dropped afterwards."""
    url = MIGRATED.pg()
    try:
        yield url
    finally:
        MIGRATED.discard(url)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


@dataclass
class Received:
    mail_from: str
    rcpt: str
    data: bytes
    message_id: str


@dataclass
class Recorder:
    """An aiosmtpd handler that records messages and can be scripted to fail."""

    messages: list[Received] = field(default_factory=list)
    # script(rcpt, nth_attempt_for_rcpt) -> None to accept, or an SMTP reply line to refuse.
    rcpt_script: Callable[[str, int], str | None] | None = None
    data_script: Callable[[str, int], str | None] | None = None
    attempts: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # A relay's own latency per message (seconds), so that a send lasts through a drill.
    data_delay: float = 0.0

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        with self.lock:
            n = self.attempts.get(address, 0) + 1
            self.attempts[address] = n
        if self.rcpt_script:
            reply = self.rcpt_script(address, n)
            if reply:
                return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        rcpt = envelope.rcpt_tos[0]
        if self.data_delay:
            await asyncio.sleep(self.data_delay)
        if self.data_script:
            reply = self.data_script(rcpt, self.attempts.get(rcpt, 0))
            if reply == "DROP":
                server.transport.close()
                return "421 closing"
            if reply:
                return reply
        data: bytes = envelope.original_content or envelope.content
        mid = ""
        for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
            if line.lower().startswith(b"message-id:"):
                mid = line.split(b":", 1)[1].strip().decode()
        with self.lock:
            self.messages.append(Received(envelope.mail_from, rcpt, data, mid))
        return "250 2.0.0 queued"

    def count(self) -> int:
        with self.lock:
            return len(self.messages)

    def copies(self) -> tuple[int, int]:
        """(distinct messages by Message-ID, extra copies received): what was sent twice."""
        with self.lock:
            per_id = Counter(m.message_id for m in self.messages)
        return len(per_id), sum(n - 1 for n in per_id.values())


@pytest.fixture
def smtp_server() -> Iterator[tuple[Recorder, int]]:
    recorder = Recorder()
    port = free_port()
    controller = Controller(recorder, hostname="127.0.0.1", port=port, enable_SMTPUTF8=True)
    controller.start()
    yield recorder, port
    controller.stop()


@pytest.fixture
def settings_for(tmp_path: Path) -> Callable[..., Settings]:
    def make(db_url: str, port: int, **kw: Any) -> Settings:
        base: dict[str, Any] = dict(
            data_dir=tmp_path / "data",
            database_url=db_url,
            relays=[RelaySettings(host="127.0.0.1", port=port)],
            poll_interval=0.05,
            lease_ttl=3.0,
            worker_concurrency=2,
            batch_size=10,
            inflight_window=4,
            defer_base=0.2,
            defer_max=1.0,
            defer_jitter=0.0,
            smtp_timeout=5.0,
        )
        base.update(kw)
        return Settings(**base)

    return make


CLOCK = SystemClock()


@dataclass
class LiveApi:
    """Both listeners of one `api` process: the admin API at `url`, tracking at `public_url`."""

    url: str
    public_url: str
    key: str
    settings: Settings
    listeners: Any
    thread: threading.Thread

    @property
    def state(self) -> Any:
        """The shared AppState (signer, event recorder, metrics)."""
        return self.listeners.runtime.state

    def stop(self) -> None:
        """A clean shutdown, as SIGTERM to the api process would do."""
        self.listeners.stop()
        self.thread.join(10)


@pytest.fixture
def live_api(
    db_url: str,
    engine: Engine,
    smtp_server: tuple[Recorder, int],
    settings_for: Callable[..., Settings],
) -> Iterator[LiveApi]:
    """The admin and public apps served by real uvicorn servers on free ports, in one event
    loop as `steadymail api` runs them, with a key of every scope."""
    from steadymail.api.serve import Listeners
    from steadymail.store import apikeys

    port, public_port = free_port(), free_port()
    settings = settings_for(
        db_url,
        smtp_server[1],
        api_port=port,
        public_port=public_port,
        public_url=f"http://127.0.0.1:{public_port}",
        scanner_click_window=0.0,
        tracking_flush_interval=0.05,
    )
    listeners = Listeners(settings, engine)
    thread = threading.Thread(target=lambda: asyncio.run(listeners.serve()), daemon=True)
    thread.start()
    wait_until(lambda: listeners.started or not thread.is_alive(), 10, "the api listeners starting")
    assert listeners.started, "the api listeners ended before they started"
    key = apikeys.create_key(engine, "test", set(apikeys.SCOPES), CLOCK.now())
    yield LiveApi(
        f"http://127.0.0.1:{port}",
        f"http://127.0.0.1:{public_port}",
        key,
        settings,
        listeners,
        thread,
    )
    listeners.stop()
    thread.join(10)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Say loudly when the run was not a full one: tests skipped for a missing requirement."""
    missing = [
        r
        for r in terminalreporter.stats.get("skipped", [])
        if isinstance(r.longrepr, tuple) and MISSING in str(r.longrepr[2])
    ]
    if missing:
        reasons = sorted({str(r.longrepr[2]).split(": ", 2)[-1] for r in missing})
        terminalreporter.write_sep(
            "!", f"NOT A FULL RUN: {len(missing)} tests skipped for a missing requirement"
        )
        for reason in reasons:
            terminalreporter.write_line(f"  {reason}")
        terminalreporter.write_line("  `make test` requires them all (see README, Tests).")
