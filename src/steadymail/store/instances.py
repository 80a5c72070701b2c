"""The registry of running processes (workers, api, …) and their heartbeats."""

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Engine, and_, case, func, insert, or_, select, update

from steadymail.store.queue import expire_leases_of
from steadymail.store.records import FlagRow, JsonObject
from steadymail.store.schema import flags as flag_rows
from steadymail.store.schema import instances, platform_events


@dataclass(frozen=True, slots=True)
class Instance:
    """One process start, as registered, with its heartbeat and how it ended."""

    instance_id: str
    service: str
    region: str
    host: str
    pid: int
    version: str
    started_at: float
    heartbeat_at: float
    stopped_at: float | None
    stop_reason: str | None
    # The place it fills (`worker-1`, `api`): a new instance in a slot is a restart.
    slot: str
    # How it ended, when a supervisor, a peer or its own last words said.
    exit_reason: str | None
    # The flag values it ran with at its last heartbeat (workers).
    flags: JsonObject | None
    # `boot:pidns:starttime`: which OS process it is.
    proc: str | None
    # Where the slot came from: setting, systemd, kubernetes, container or host.
    identity: str | None
    # `boot:device:inode` of the slot lock file it held.
    lock: str | None
    # A digest of each setting it ran with, by name.
    config: JsonObject | None
    last_words: str | None


@dataclass(frozen=True, slots=True)
class HostPeer:
    """What the peer watch needs of a process on its host."""

    instance_id: str
    pid: int
    proc: str | None
    exit_reason: str | None


def register(
    engine: Engine,
    *,
    instance_id: str,
    service: str,
    region: str,
    host: str,
    pid: int,
    version: str,
    now: float,
    slot: str = "",
    proc: str | None = None,
    identity: str | None = None,
    config: Mapping[str, str] | None = None,
    lock: str | None = None,
) -> None:
    """Announce a process; `slot` names the place it fills, so a successor is a restart."""
    with engine.begin() as conn:
        conn.execute(
            insert(instances).values(
                instance_id=instance_id,
                service=service,
                region=region,
                host=host,
                pid=pid,
                version=version,
                started_at=now,
                heartbeat_at=now,
                slot=slot or f"{service}@{host}:{pid}",
                proc=proc,
                identity=identity,
                config=dict(config) if config is not None else None,
                lock=lock,
            )
        )


def predecessor(
    engine: Engine, slot: str, before: float, service: str | None = None
) -> Instance | None:
    """The latest instance that filled `slot` (or, with `service`, that ran the service in any
    slot) and started before `before`."""
    where = instances.c.service == service if service is not None else instances.c.slot == slot
    with engine.connect() as conn:
        row = (
            conn.execute(
                select(instances)
                .where(where, instances.c.started_at <= before)
                .order_by(instances.c.started_at.desc())
                .limit(1)
            )
            .mappings()
            .first()
        )
    return Instance(**row) if row else None


def record_end(
    engine: Engine,
    instance_id: str,
    reason: str,
    now: float,
    *,
    last_words: str | None = None,
    overwrite: bool = False,
    expire_leases: bool = False,
    seen_by: str = "",
) -> bool:
    """Note how an instance ended and tell the monitor (a `process_exited` event), once.

    `overwrite` lets a better witness (the supervisor, with the exit code or signal) replace a
    guess; `expire_leases` lapses the dead instance's leases at once. Returns True if the end
    was recorded now (False: unknown instance, stopped gracefully, or already recorded)."""
    with engine.begin() as conn:
        row = conn.execute(select(instances).where(instances.c.instance_id == instance_id)).first()
        if row is None:
            return False
        if expire_leases:
            expire_leases_of(conn, instance_id, now)
        if row.stopped_at is not None or (row.exit_reason is not None and not overwrite):
            return False
        if overwrite and row.last_words and row.exit_reason:
            reason = f"{reason}; {row.exit_reason}"  # the witness's code, and the last words
        values: dict[str, object] = {"exit_reason": reason[:200]}
        if last_words is not None:
            values["last_words"] = last_words
        conn.execute(
            update(instances).where(instances.c.instance_id == instance_id).values(**values)
        )
        conn.execute(
            insert(platform_events).values(
                at=now,
                region=row.region,
                kind="process_exited",
                subject=row.slot,
                detail={
                    "slot": row.slot,
                    "pid": row.pid,
                    "reason": reason[:200],
                    "instance": instance_id,
                    "last_words": last_words or row.last_words,
                    "seen_by": seen_by,
                },
            )
        )
        return True


def on_host(engine: Engine, host: str, since: float) -> list[HostPeer]:
    """Instances on `host` that have not stopped gracefully and beat after `since`."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                instances.c.instance_id,
                instances.c.pid,
                instances.c.proc,
                instances.c.exit_reason,
            ).where(
                instances.c.host == host,
                instances.c.stopped_at.is_(None),
                instances.c.heartbeat_at >= since,
            )
        ).mappings()
        return [HostPeer(**r) for r in rows]


def heartbeat(
    engine: Engine,
    instance_id: str,
    now: float,
    flags: JsonObject | None = None,
    read_flags: bool = False,
) -> list[FlagRow]:
    """Beat; ``flags``, when given, are the flag values the process runs with now. With
    ``read_flags``, returns the region's flag rows read in the same transaction (a worker learns
    of a change at its next beat without a transaction of its own)."""
    values: dict[str, object] = {"heartbeat_at": now}
    if flags is not None:
        values["flags"] = flags
    with engine.begin() as conn:
        conn.execute(
            update(instances).where(instances.c.instance_id == instance_id).values(**values)
        )
        if not read_flags:
            return []
        return [FlagRow(**r) for r in conn.execute(select(flag_rows)).mappings()]


def stopped(engine: Engine, instance_id: str, reason: str, now: float) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(instances)
            .where(instances.c.instance_id == instance_id)
            .values(stopped_at=now, stop_reason=reason)
        )


def _not_ended() -> ColumnElement[bool]:
    """Neither stopped nor seen ending (a supervisor saw it end: dead now, whatever its last
    heartbeat says)."""
    return and_(instances.c.stopped_at.is_(None), instances.c.exit_reason.is_(None))


def alive(now: float, max_age: float) -> ColumnElement[bool]:
    """The dead-age rule in SQL: an instance lives while it has not ended and has beaten within
    ``max_age`` (``Settings.dead_age``)."""
    return and_(_not_ended(), instances.c.heartbeat_at >= now - max_age)


def live(engine: Engine, service: str, now: float, max_age: float) -> list[Instance]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(instances).where(instances.c.service == service, alive(now, max_age))
        )
        return [Instance(**r) for r in rows.mappings()]


def instance_of_pid(engine: Engine, pid: int, host: str) -> str | None:
    """The latest instance that ran as `pid` on `host`."""
    with engine.connect() as conn:
        row = conn.execute(
            select(instances.c.instance_id)
            .where(instances.c.pid == pid, instances.c.host == host)
            .order_by(instances.c.started_at.desc())
            .limit(1)
        ).first()
    return str(row.instance_id) if row else None


def changed_since(engine: Engine, since: float, stale_before: float) -> list[Instance]:
    """Instances that started or stopped after `since`, or whose heartbeat went stale."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(instances).where(
                or_(
                    instances.c.started_at > since,
                    instances.c.stopped_at > since,
                    and_(
                        _not_ended(),
                        instances.c.heartbeat_at < stale_before,
                        instances.c.heartbeat_at >= since - 3600,
                    ),
                )
            )
        )
        return [Instance(**r) for r in rows.mappings()]


def all_live(engine: Engine, now: float, max_age: float) -> list[Instance]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(instances)
            .where(alive(now, max_age))
            .order_by(instances.c.service, instances.c.slot)
        )
        return [Instance(**r) for r in rows.mappings()]


def by_ids(engine: Engine, instance_ids: list[str]) -> list[Instance]:
    if not instance_ids:
        return []
    with engine.connect() as conn:
        rows = conn.execute(select(instances).where(instances.c.instance_id.in_(instance_ids)))
        return [Instance(**r) for r in rows.mappings()]


@dataclass(frozen=True, slots=True)
class SlotHistory:
    """A slot seen since a moment: its restarts then, and how its latest ended instance ended
    (the one a restart replaced, or the last one of a slot now down)."""

    slot: str
    service: str
    restarts: int
    last_started_at: float
    last_stop_reason: str | None


def slots_since(engine: Engine, since: float) -> list[SlotHistory]:
    """Every named slot with an instance started or alive since ``since``: a new instance in a
    slot that had one before is a restart."""
    started_after = func.sum(case((instances.c.started_at > since, 1), else_=0))
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                instances.c.slot,
                func.max(instances.c.service).label("service"),
                started_after.label("n"),
                func.min(instances.c.started_at).label("first"),
                func.max(instances.c.started_at).label("last"),
            )
            .where(instances.c.slot != "")
            .group_by(instances.c.slot)
            .having(func.max(instances.c.heartbeat_at) > since)
        ).all()
        out = []
        for r in rows:
            newest = conn.execute(
                select(instances.c.stopped_at, instances.c.stop_reason, instances.c.exit_reason)
                .where(instances.c.slot == r.slot)
                .order_by(instances.c.started_at.desc())
                .limit(2)
            ).all()
            # The newest instance if it ended, else the one it replaced (a silent death has
            # no reason: said so rather than left blank).
            ended = [i for i in newest if i.stopped_at is not None or i.exit_reason]
            if ended:
                reason = ended[0].exit_reason or ended[0].stop_reason or "ended without a word"
            elif len(newest) == 2:
                reason = "ended without a word"
            else:
                reason = None
            # The slot's first instance ever, started in the span, is a start, not a restart.
            restarts = int(r.n) - (1 if float(r.first) > since else 0)
            out.append(SlotHistory(r.slot, r.service, max(0, restarts), float(r.last), reason))
        return out
