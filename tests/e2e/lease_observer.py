"""Who holds which batch, read from a region's database while workers run (and freeze)."""

import sqlite3
import time
from typing import Any

from sqlalchemy import Engine, text


class Observer:
    """Reads the region's database without ever waiting on a writer's lock."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.path = engine.url.database if engine.dialect.name == "sqlite" else None

    def rows(self, sql: str, **params: Any) -> list[tuple[Any, ...]]:
        if self.path:
            # A plain WAL reader: the engine's connections begin IMMEDIATE (a writer's lock).
            # Even a reader can be held by a writer stopped at the wrong instant (resetting the
            # WAL): it waits until the peer watch has killed that writer.
            deadline = time.monotonic() + 10
            while True:
                conn = sqlite3.connect(self.path, timeout=1, isolation_level=None)
                try:
                    return list(conn.execute(sql, params).fetchall())
                except sqlite3.OperationalError:
                    if time.monotonic() > deadline:
                        raise
                finally:
                    conn.close()
        with self.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql), params)]

    def instance_of(self, pid: int) -> str | None:
        rows = self.rows(
            "SELECT instance_id FROM instances WHERE pid = :pid ORDER BY started_at DESC",
            pid=pid,
        )
        return str(rows[0][0]) if rows else None

    def held_by(self, owner: str) -> dict[int, int]:
        rows = self.rows(
            "SELECT id, lease_epoch FROM batches WHERE lease_owner = :o AND state = 'leased'",
            o=owner,
        )
        return {int(r[0]): int(r[1]) for r in rows}

    def epochs(self, ids: list[int]) -> dict[int, int]:
        rows = self.rows("SELECT id, lease_epoch FROM batches")
        return {int(r[0]): int(r[1]) for r in rows if int(r[0]) in ids}
