"""Shared send limits (a relay's or a domain's rate, a warm-up cap), one window row a key.

Workers take tokens in small grants, so the database sees one write per grant, not per message.
The row is shared by design (the limit is the relay's), but nobody ever waits on its lock: a
take that finds it locked says so, and the caller (sending/throttle.py) tries again soon.
"""

from sqlalchemy import Engine, select, update

from steadymail.store.db import insert_ignore, is_sqlite
from steadymail.store.schema import relay_windows


def take(
    engine: Engine, relay: str, limit: int, want: int, now: float, period: float = 1.0
) -> int | None:
    """Grant up to `want` sends for the key `relay` in the current window of `period` seconds
    (0: its limit is spent); None when another worker holds the window row this moment."""
    window = int(now // period)
    with engine.begin() as conn:
        insert_ignore(
            conn, relay_windows, [{"relay": relay, "window": window, "used": 0}], ["relay"]
        )
        q = select(relay_windows.c.window, relay_windows.c.used).where(
            relay_windows.c.relay == relay
        )
        if not is_sqlite(conn):
            # Never wait on the row: a worker frozen holding it (until PostgreSQL ends its
            # session) would otherwise hold every other worker's sends here. Locked is "wait".
            q = q.with_for_update(skip_locked=True)
        row = conn.execute(q).first()
        if row is None:
            return None
        if row.window > window:
            # Another host's clock is ahead: its window is the current one; never move back.
            return 0
        used = row.used if row.window == window else 0
        grant = max(0, min(want, limit - used))
        conn.execute(
            update(relay_windows)
            .where(relay_windows.c.relay == relay)
            .values(window=window, used=used + grant)
        )
    return grant
