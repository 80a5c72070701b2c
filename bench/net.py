"""What the benchmarks share: free ports, Postfix's smtp-sink and fresh databases (one copy,
not one per bench)."""

import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listened on a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_sink(port: int, backlog: int = 1024) -> subprocess.Popen[bytes]:
    """Postfix's smtp-sink on `port`, once it accepts connections (within 5 s)."""
    sink = subprocess.Popen(["smtp-sink", "-u", "nobody", f"127.0.0.1:{port}", str(backlog)])
    deadline = time.monotonic() + 5
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return sink
        except OSError:
            if time.monotonic() > deadline:
                sink.kill()
                raise RuntimeError("smtp-sink did not start") from None
            time.sleep(0.05)


@contextmanager
def fresh_database(kind: str, workdir: Path) -> Iterator[str]:
    """The URL of a new, empty database: a SQLite file in `workdir`, or a PostgreSQL database
    on 127.0.0.1 dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{workdir / f'bench-{uuid.uuid4().hex[:8]}.db'}"
        return
    name = f"sm_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def sink_and_workdir(prefix: str) -> Iterator[tuple[int, Path]]:
    """smtp-sink on a free port and a scratch directory, both gone afterwards."""
    port = free_port()
    sink = start_sink(port)
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield port, workdir
    finally:
        sink.terminate()
        sink.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)
