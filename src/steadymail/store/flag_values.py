"""Flag values of this region and their history."""

from dataclasses import dataclass

from sqlalchemy import Engine, delete, insert, select, update

from steadymail.store import changes
from steadymail.store.records import FlagRow, JsonValue
from steadymail.store.schema import flag_history, flags


@dataclass(frozen=True, slots=True)
class FlagChange:
    """One entry of a flag's history."""

    id: int
    name: str
    value: JsonValue  # None: unset
    previous: JsonValue
    at: float
    by: str
    reason: str


def current(engine: Engine) -> dict[str, JsonValue]:
    """Every flag that is set: {name: value}."""
    with engine.connect() as conn:
        return {r.name: r.value for r in conn.execute(select(flags.c.name, flags.c.value))}


def detailed(engine: Engine) -> list[FlagRow]:
    """Every flag that is set, by name."""
    with engine.connect() as conn:
        rows = conn.execute(select(flags).order_by(flags.c.name)).mappings()
        return [FlagRow(**r) for r in rows]


def set_value(
    engine: Engine,
    name: str,
    value: JsonValue,
    by: str,
    reason: str,
    now: float,
    region: str = "",
) -> JsonValue:
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
) -> list[FlagChange]:
    """Changes, newest first."""
    q = select(flag_history).order_by(flag_history.c.id.desc()).limit(limit).offset(offset)
    if name is not None:
        q = q.where(flag_history.c.name == name)
    with engine.connect() as conn:
        return [FlagChange(**r) for r in conn.execute(q).mappings()]


def reverts_since(engine: Engine, since: float) -> list[tuple[FlagChange, FlagChange]]:
    """(reverted, revert) for every change at or after ``since`` that set a flag back to its
    value before the change it follows (a rollback, the revert window, a human), oldest first."""
    with engine.connect() as conn:
        recent = [
            FlagChange(**r)
            for r in conn.execute(
                select(flag_history).where(flag_history.c.at >= since).order_by(flag_history.c.id)
            ).mappings()
        ]
        out = []
        for change in recent:
            before = (
                conn.execute(
                    select(flag_history)
                    .where(flag_history.c.name == change.name, flag_history.c.id < change.id)
                    .order_by(flag_history.c.id.desc())
                    .limit(1)
                )
                .mappings()
                .first()
            )
            if before is not None and is_revert(FlagChange(**before), change.value):
                out.append((FlagChange(**before), change))
        return out


def is_revert(latest: FlagChange, value: JsonValue) -> bool:
    """Whether setting ``value`` after ``latest`` puts the flag back as it was before it."""
    return bool(latest.value != value and latest.previous == value)
