"""A per-relay message rate shared by every worker, kept as a one-second window in the DB.

Workers take tokens in small grants, so the database sees one write per grant, not per message.
"""

from sqlalchemy import Engine, select, update

from steadymail.store.db import insert_ignore
from steadymail.store.schema import relay_windows


def take(engine: Engine, relay: str, limit: int, want: int, now: float) -> int:
    """Grant up to `want` sends through `relay` in the current second; 0 means wait."""
    window = int(now)
    with engine.begin() as conn:
        insert_ignore(
            conn, relay_windows, [{"relay": relay, "window": window, "used": 0}], ["relay"]
        )
        q = select(relay_windows.c.window, relay_windows.c.used).where(
            relay_windows.c.relay == relay
        )
        if conn.dialect.name != "sqlite":
            q = q.with_for_update()
        row = conn.execute(q).one()
        used = row.used if row.window == window else 0
        grant = max(0, min(want, limit - used))
        conn.execute(
            update(relay_windows)
            .where(relay_windows.c.relay == relay)
            .values(window=window, used=used + grant)
        )
    return grant
