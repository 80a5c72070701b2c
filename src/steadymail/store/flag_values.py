"""Flag values of this region and their history."""

from typing import Any

from sqlalchemy import Engine, delete, insert, select, update

from steadymail.store import changes
from steadymail.store.schema import flag_history, flags


def current(engine: Engine) -> dict[str, Any]:
    """Every flag that is set: {name: value}."""
    with engine.connect() as conn:
        return {r.name: r.value for r in conn.execute(select(flags.c.name, flags.c.value))}


def detailed(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(select(flags).order_by(flags.c.name))
        return [dict(r._mapping) for r in rows]


def set_value(
    engine: Engine, name: str, value: Any, by: str, reason: str, now: float, region: str = ""
) -> Any:
    """Set (``value`` not None) or unset a flag; returns the previous value. One transaction,
    which also records the change in the region's change log."""
    with engine.begin() as conn:
        previous = conn.execute(
            select(flags.c.value).where(flags.c.name == name).with_for_update()
        ).scalar()
        if value is None:
            conn.execute(delete(flags).where(flags.c.name == name))
        elif previous is None:
            conn.execute(
                insert(flags).values(name=name, value=value, updated_at=now, updated_by=by)
            )
        else:
            conn.execute(
                update(flags)
                .where(flags.c.name == name)
                .values(value=value, updated_at=now, updated_by=by)
            )
        conn.execute(
            insert(flag_history).values(
                name=name, value=value, previous=previous, at=now, by=by, reason=reason
            )
        )
        changes.add(
            conn,
            at=now,
            region=region,
            kind="flag",
            subject=name,
            before=previous,
            after=value,
            by=by,
            detail=reason,
        )
    return previous


def history(
    engine: Engine, name: str | None = None, limit: int = 100, offset: int = 0
) -> list[dict[str, Any]]:
    """Changes, newest first."""
    q = select(flag_history).order_by(flag_history.c.id.desc()).limit(limit).offset(offset)
    if name is not None:
        q = q.where(flag_history.c.name == name)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(q)]
