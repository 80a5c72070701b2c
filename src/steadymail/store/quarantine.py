"""On-call repairs of the queue: list and release quarantined messages, requeue stuck work.

The queue's invariants (see `queue`) hold after every function here:

- a batch is `done` only while every message of it is final, and it then has no lease;
- a campaign send is `completed` only while every batch of it is `done`;
- a `leased` batch belongs to its owner at its epoch: nothing here changes its owner or epoch
  (a claim does that), and a lease is only ever cut short when its owner is known to be gone,
  fenced on the owner and epoch that were judged gone;
- a `pending` batch is claimable from `available_at`.

Locks are taken in the queue's order, batches (by id) before their send, so a repair and a
worker's checkpoint or release wait for each other instead of deadlocking; on PostgreSQL a
worker releasing a batch at the same moment is therefore seen, never overwritten.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, and_, func, or_, select, update

from steadymail.domain.states import BatchState, MessageState, SendKind, SendState
from steadymail.errors import Conflict, NotFound
from steadymail.store.db import is_sqlite
from steadymail.store.instances import alive
from steadymail.store.schema import batches, instances, messages, platform_events, sends


@dataclass(frozen=True, slots=True)
class QuarantinedMessage:
    id: int
    send_id: int
    email: str
    # Holders that died with it in flight when it was quarantined.
    crashes: int
    last_error: str | None
    # When the worker quarantined it (its `message_quarantined` event); None if unknown.
    quarantined_at: float | None


@dataclass(frozen=True, slots=True)
class Requeued:
    """What `requeue_stuck` found and did."""

    # Leases that had already lapsed (any worker reclaims them).
    expired_leases: int
    # Leases of dead owners, expired now.
    dead_owner_leases: int
    # Leases of live owners (or of owners not in the registry), left alone.
    live_leases: int
    # Pending batches that waited for deferred messages, due now.
    batches_due: int
    # Deferred messages made due now.
    deferred: int


def quarantined(
    engine: Engine, send_id: int | None, limit: int, offset: int = 0
) -> list[QuarantinedMessage]:
    """Quarantined messages, of one send or of all, oldest message first."""
    q = (
        select(
            messages.c.id,
            messages.c.send_id,
            messages.c.email,
            messages.c.crashes,
            messages.c.last_error,
        )
        # Through sends, so that PostgreSQL can walk ix_messages_send_state send by send.
        .select_from(sends.join(messages, messages.c.send_id == sends.c.id))
        .where(messages.c.state == MessageState.QUARANTINED.value)
        .order_by(messages.c.id)
        .limit(limit)
        .offset(offset)
    )
    if send_id is not None:
        q = q.where(sends.c.id == send_id)
    with engine.connect() as conn:
        rows = conn.execute(q).all()
        when = _quarantined_at(conn, [int(r.id) for r in rows])
    return [
        QuarantinedMessage(
            int(r.id), int(r.send_id), r.email, int(r.crashes), r.last_error, when.get(int(r.id))
        )
        for r in rows
    ]


def quarantined_ids(engine: Engine, send_id: int) -> list[int]:
    """Every quarantined message of a send (few: each one killed `quarantine_after` workers)."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(messages.c.id)
            .where(
                messages.c.send_id == send_id,
                messages.c.state == MessageState.QUARANTINED.value,
            )
            .order_by(messages.c.id)
        )
        return [int(r.id) for r in rows]


def quarantined_between(engine: Engine, start: float, end: float) -> list[int]:
    """Messages quarantined still, of sends not cancelled, whose latest quarantine was in
    [start, end] (from the platform event log, which records every quarantine)."""
    with engine.connect() as conn:
        latest = conn.execute(
            select(platform_events.c.subject, func.max(platform_events.c.at).label("at"))
            .where(platform_events.c.kind == "message_quarantined", platform_events.c.at >= start)
            .group_by(platform_events.c.subject)
        )
        ids = {int(r.subject.split(":", 1)[1]) for r in latest if r.at <= end}
        if not ids:
            return []
        rows = conn.execute(
            select(messages.c.id)
            .select_from(sends.join(messages, messages.c.send_id == sends.c.id))
            .where(
                messages.c.id.in_(sorted(ids)),
                messages.c.state == MessageState.QUARANTINED.value,
                # A cancelled send's messages cannot be released.
                sends.c.state != SendState.CANCELLED.value,
            )
            .order_by(messages.c.id)
        )
        return [int(r.id) for r in rows]


def _quarantined_at(conn: Connection, ids: list[int]) -> dict[int, float]:
    """The latest quarantine of each message, from the platform event log (a short table of
    exits, reclaims and quarantines; read on demand only, never per monitor tick)."""
    if not ids:
        return {}
    subjects = {f"message:{i}": i for i in ids}
    rows = conn.execute(
        select(platform_events.c.subject, func.max(platform_events.c.at).label("at"))
        .where(
            platform_events.c.kind == "message_quarantined",
            platform_events.c.subject.in_(list(subjects)),
        )
        .group_by(platform_events.c.subject)
    )
    return {subjects[r.subject]: float(r.at) for r in rows}


def release(
    engine: Engine, message_ids: Iterable[int], now: float, due: float | None = None
) -> int:
    """Put quarantined messages back in the queue: queued, no crashes counted, due now (or at
    `due`, when that is later).

    All or nothing: an unknown message is NotFound, one that is not quarantined (or whose send
    was cancelled) a Conflict naming it. Each message's batch becomes claimable now unless a
    worker holds it: `done` → `pending`; `pending` → due now; `leased` is left to its holder,
    whose release finds the message open and makes the batch pending again (or, if the holder
    is dead, whoever reclaims the lease loads the message). A campaign that had completed
    because its only open work was quarantined runs again.
    """
    ids = sorted(set(message_ids))
    if not ids:
        return 0
    at = max(now, due if due is not None else now)
    with engine.begin() as conn:
        rows = {
            int(r.id): r
            for r in conn.execute(
                select(
                    messages.c.id, messages.c.send_id, messages.c.batch_seq, messages.c.state
                ).where(messages.c.id.in_(ids))
            )
        }
        missing = [i for i in ids if i not in rows]
        if missing:
            raise NotFound(f"no message {', '.join(map(str, missing))}")
        wrong = [
            f"message {i} is {rows[i].state}"
            for i in ids
            if rows[i].state != MessageState.QUARANTINED.value
        ]
        if wrong:
            raise Conflict(f"{'; '.join(wrong)}, not quarantined: nothing released")
        send_ids = sorted({int(r.send_id) for r in rows.values()})
        keys = {(int(r.send_id), int(r.batch_seq)) for r in rows.values()}
        held = _lock_batches(conn, keys)
        for send_id in send_ids:
            send = _lock_send(conn, send_id)
            if send.state == SendState.CANCELLED.value:
                raise Conflict(f"send {send_id} is cancelled: its messages cannot be released")
        released = conn.execute(
            update(messages)
            .where(
                messages.c.id.in_(ids),
                # Re-checked under the locks: a concurrent release of the same message loses.
                messages.c.state == MessageState.QUARANTINED.value,
            )
            .values(
                # Due later: deferred until then (the claim loads queued messages at once).
                state=(MessageState.DEFERRED if at > now else MessageState.QUEUED).value,
                crashes=0,
                next_attempt_at=at if at > now else None,
                # A fresh deferral window: the old one may have run out while it sat here.
                first_attempt_at=None,
            )
        ).rowcount
        if released != len(ids):
            raise Conflict("some of these messages were released meanwhile: nothing released")
        for b in held:
            if b.state == BatchState.DONE.value:
                conn.execute(
                    update(batches)
                    .where(batches.c.id == b.id, batches.c.state == BatchState.DONE.value)
                    .values(
                        state=BatchState.PENDING.value,
                        available_at=at,
                        lease_owner=None,
                        lease_expires_at=None,
                    )
                )
            elif b.state == BatchState.PENDING.value and b.available_at > at:
                conn.execute(
                    update(batches)
                    .where(batches.c.id == b.id, batches.c.state == BatchState.PENDING.value)
                    .values(available_at=at)
                )
        for send_id in send_ids:
            _reopen(conn, send_id, now)
    return len(ids)


def _lock_batches(conn: Connection, keys: set[tuple[int, int]]) -> list[Any]:
    """The batches `(send_id, seq)`, row-locked in id order (the queue's lock order)."""
    by_send: dict[int, set[int]] = {}
    for send_id, seq in keys:
        by_send.setdefault(send_id, set()).add(seq)
    q = (
        select(batches.c.id, batches.c.state, batches.c.available_at)
        .where(
            or_(
                *(
                    and_(batches.c.send_id == s, batches.c.seq.in_(sorted(seqs)))
                    for s, seqs in sorted(by_send.items())
                )
            )
        )
        .order_by(batches.c.id)
    )
    if not is_sqlite(conn):
        q = q.with_for_update()
    return list(conn.execute(q).all())


def _lock_send(conn: Connection, send_id: int) -> Any:
    q = select(sends.c.id, sends.c.kind, sends.c.state).where(sends.c.id == send_id)
    if not is_sqlite(conn):
        q = q.with_for_update()
    row = conn.execute(q).first()
    if row is None:
        raise NotFound(f"no send {send_id}")
    return row


def _reopen(conn: Connection, send_id: int, now: float) -> None:
    """A campaign completed while its only open work sat in quarantine runs again.

    `last_progress_at` restarts now, as on resume, so the stall detector does not count the
    time the send spent completed against it.
    """
    conn.execute(
        update(sends)
        .where(
            sends.c.id == send_id,
            sends.c.kind == SendKind.CAMPAIGN.value,
            sends.c.state == SendState.COMPLETED.value,
        )
        .values(state=SendState.RUNNING.value, completed_at=None, last_progress_at=now)
    )


def requeue_stuck(engine: Engine, send_id: int, now: float, dead_age: float) -> Requeued:
    """Make a send's stuck work claimable now.

    Leases that lapsed are left as they are (any worker reclaims them already). Leases whose
    owner is gone — stopped, seen exiting by a supervisor, or silent for more than `dead_age`
    seconds — expire now, fenced on the owner and epoch judged gone, so a live worker takes
    them over at once through the ordinary reclaim: the claim bumps the epoch (the old holder
    is fenced off) and the messages it left in flight are counted in `resent_after_crash`.
    Leases of live owners, and of owners not in the registry, are not touched. Deferred
    messages become due now, and the pending batches that waited for them too.
    """
    expired = dead = live = 0
    owner = instances.c.instance_id == batches.c.lease_owner
    with engine.begin() as conn:
        if conn.execute(select(sends.c.id).where(sends.c.id == send_id)).first() is None:
            raise NotFound(f"no send {send_id}")
        # Only batch rows are locked (the send row is not written): the queue's lock order.
        deferred_seqs = select(messages.c.batch_seq).where(
            messages.c.send_id == send_id, messages.c.state == MessageState.DEFERRED.value
        )
        locked = select(batches.c.id).where(
            batches.c.send_id == send_id,
            or_(batches.c.state == BatchState.LEASED.value, batches.c.seq.in_(deferred_seqs)),
        )
        if not is_sqlite(conn):
            locked = locked.order_by(batches.c.id).with_for_update()
        conn.execute(locked).all()
        leased = conn.execute(
            select(
                batches.c.id,
                batches.c.lease_owner,
                batches.c.lease_epoch,
                batches.c.lease_expires_at,
                instances.c.instance_id,
                alive(now, dead_age).label("alive"),
            )
            .select_from(batches.outerjoin(instances, owner))
            .where(batches.c.send_id == send_id, batches.c.state == BatchState.LEASED.value)
            .order_by(batches.c.id)
        ).all()
        for b in leased:
            if (b.lease_expires_at or 0) < now:
                expired += 1
                continue
            gone = b.instance_id is not None and not b.alive
            if not gone:
                live += 1
                continue
            dead += conn.execute(
                update(batches)
                .where(
                    batches.c.id == b.id,
                    batches.c.state == BatchState.LEASED.value,
                    batches.c.lease_owner == b.lease_owner,
                    batches.c.lease_epoch == b.lease_epoch,
                )
                # Just before now: a claim at `now` or later already sees it lapsed.
                .values(lease_expires_at=now - 0.001)
            ).rowcount
        batches_due = conn.execute(
            update(batches)
            .where(
                batches.c.send_id == send_id,
                batches.c.state == BatchState.PENDING.value,
                batches.c.available_at > now,
                batches.c.seq.in_(deferred_seqs),
            )
            .values(available_at=now)
        ).rowcount
        deferred = conn.execute(
            update(messages)
            .where(
                messages.c.send_id == send_id,
                messages.c.state == MessageState.DEFERRED.value,
                messages.c.next_attempt_at > now,
            )
            .values(next_attempt_at=now)
        ).rowcount
    return Requeued(expired, dead, live, batches_due, deferred)
