"""The lease queue: claim a batch, keep its lease alive, checkpoint under a fence, release it.

Every state change of a batch is one function here, in the order a batch lives through them.
A claim bumps `lease_epoch`; every later write for the batch first checks, under a row lock,
that owner and epoch still match. A worker that was paused past its lease therefore changes
nothing once another worker has claimed the batch: its writes are fenced off.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    and_,
    bindparam,
    insert,
    or_,
    select,
    text,
    update,
)

from steadymail.domain.states import BatchState, MessageState, SendKind, SendState
from steadymail.domain.suppression import Stream, blocks, suppression_key
from steadymail.store.db import insert_ignore, is_sqlite
from steadymail.store.records import JsonObject
from steadymail.store.schema import (
    batches,
    contacts,
    message_events,
    messages,
    sends,
    suppressions,
)
from steadymail.store.suppressions import suppressed_streams


@dataclass(frozen=True, slots=True)
class Claim:
    """A batch held under lease by one owner at one epoch."""

    batch_id: int
    send_id: int
    seq: int
    epoch: int
    owner: str
    reclaimed: bool


@dataclass(frozen=True, slots=True)
class QueuedMessage:
    id: int
    email: str
    contact_id: int | None
    # A transactional message's variables and content (the worker checks them as it renders).
    payload: JsonObject | None
    attempts: int
    first_attempt_at: float | None
    # The contact's attributes (its CSV columns), for a campaign message.
    attributes: JsonObject | None
    # Suppressed since the send was created (bounced or unsubscribed elsewhere): never send.
    suppressed: bool
    # True when a previous holder had handed it to SMTP without checkpointing the result.
    at_risk: bool
    # Holders that died with this message in flight, this claim's finding included.
    crashes: int = 0


@dataclass(frozen=True, slots=True)
class Result:
    """The outcome of one delivery attempt, to be checkpointed."""

    message_id: int
    state: MessageState
    attempts: int
    # None: never attempted yet (a message held by a warm-up cap is not aged).
    first_attempt_at: float | None
    next_attempt_at: float | None = None
    sent_at: float | None = None
    smtp_code: int | None = None
    error: str | None = None
    suppress_email: str | None = None


@dataclass
class Checkpoint:
    """One fenced write for one claim: mark a window in flight, and/or record results."""

    claim: Claim
    inflight_ids: Sequence[int] = ()
    results: Sequence[Result] = ()
    accepted: bool = field(default=False, init=False)


_CLAIM_SQL = f"""
UPDATE batches SET
    state = '{BatchState.LEASED}',
    lease_owner = :owner,
    lease_expires_at = :expires,
    lease_epoch = lease_epoch + 1,
    claims = claims + 1,
    reclaims = reclaims + CASE WHEN state = '{BatchState.LEASED}' THEN 1 ELSE 0 END,
    reclaimed = CASE WHEN state = '{BatchState.LEASED}' THEN 1 ELSE 0 END
WHERE id = (
    SELECT b.id FROM batches b JOIN sends s ON s.id = b.send_id
    -- Live leases per send (few rows: one per busy worker slot, ix_batches_leased).
    LEFT JOIN (
        SELECT send_id, count(*) AS held FROM batches
        WHERE state = '{BatchState.LEASED}' AND lease_expires_at >= :now
        GROUP BY send_id
    ) l ON l.send_id = b.send_id
    WHERE s.state = '{SendState.RUNNING}'
      AND ({{due}})
    -- Transactional streams first: a receipt must not queue behind a bulk campaign. Then the
    -- send that holds the fewest leases: the worker slots are shared out between running sends,
    -- so a short send started behind a long one is not left waiting for the long one's end.
    ORDER BY CASE WHEN s.kind = '{SendKind.STREAM}' THEN 0 ELSE 1 END, COALESCE(l.held, 0),
        b.available_at, b.id
    LIMIT 1 {{lock}}
)
RETURNING id, send_id, seq, lease_epoch, reclaimed
"""


_EXPIRED = f"b.state = '{BatchState.LEASED}' AND b.lease_expires_at < :now"
_DUE = f"(b.state = '{BatchState.PENDING}' AND b.available_at <= :now) OR ({_EXPIRED})"


def claim_batch(
    engine: Engine, owner: str, ttl: float, now: float, *, expired_only: bool = False
) -> Claim | None:
    """Lease a due batch of a running send, or an expired lease; None if none is due.

    Which one: transactional streams first, then the send holding the fewest live leases (fair
    share of the worker slots between sends), then the oldest.

    `expired_only` claims only batches whose holder's lease lapsed: a rescuer's claim.
    """
    lock = "" if is_sqlite(engine) else "FOR UPDATE OF b SKIP LOCKED"
    sql = _CLAIM_SQL.format(lock=lock, due=_EXPIRED if expired_only else _DUE)
    with engine.begin() as conn:
        row = conn.execute(text(sql), {"owner": owner, "expires": now + ttl, "now": now}).first()
    if row is None:
        return None
    return Claim(row.id, row.send_id, row.seq, row.lease_epoch, owner, bool(row.reclaimed))


def extend_leases(conn: Connection, owner: str, ttl: float, now: float) -> int:
    """Heartbeat: push out every live lease `owner` holds; returns how many it still holds."""
    result = conn.execute(
        update(batches)
        .where(batches.c.lease_owner == owner, batches.c.state == BatchState.LEASED.value)
        .values(lease_expires_at=now + ttl)
    )
    return int(result.rowcount)


def expire_leases_of(conn: Connection, owner: str, now: float) -> int:
    """The owner is known to be dead (its PID is gone, or its slot's lock was freed): lapse its
    leases now instead of after their TTL. The next claim reclaims them as from any dead holder
    (epoch bumped, in-flight messages counted at risk), so nothing about fencing changes."""
    result = conn.execute(
        update(batches)
        .where(
            batches.c.lease_owner == owner,
            batches.c.state == BatchState.LEASED.value,
            batches.c.lease_expires_at >= now,
        )
        .values(lease_expires_at=now - 0.001)
    )
    return int(result.rowcount)


def lapse_claim(engine: Engine, claim: Claim, now: float) -> bool:
    """The holder gives up on a batch it could not finish (a database error mid-batch): its
    lease lapses now, so the next claim takes it over as from a dead holder (messages it left in
    flight are counted at risk). Fenced: a claim already lost changes nothing."""
    with engine.begin() as conn:
        result = conn.execute(
            update(batches)
            .where(
                batches.c.id == claim.batch_id,
                batches.c.lease_owner == claim.owner,
                batches.c.lease_epoch == claim.epoch,
                batches.c.state == BatchState.LEASED.value,
            )
            # No owner: the holder's heartbeat (which extends by owner) must not revive it.
            .values(lease_expires_at=now - 0.001, lease_owner=None)
        )
    return bool(result.rowcount)


def load_messages(engine: Engine, claim: Claim, now: float) -> list[QueuedMessage]:
    """The due messages of a claimed batch; those a dead holder left in flight are counted."""
    due = (
        select(
            messages.c.id,
            messages.c.email,
            messages.c.contact_id,
            messages.c.payload,
            messages.c.attempts,
            messages.c.first_attempt_at,
            messages.c.state,
            messages.c.crashes,
            contacts.c.attributes,
        )
        .select_from(messages.outerjoin(contacts, contacts.c.id == messages.c.contact_id))
        .where(
            messages.c.send_id == claim.send_id,
            messages.c.batch_seq == claim.seq,
            or_(
                messages.c.state.in_([MessageState.QUEUED.value, MessageState.INFLIGHT.value]),
                and_(
                    messages.c.state == MessageState.DEFERRED.value,
                    messages.c.next_attempt_at <= now,
                ),
            ),
        )
        .order_by(messages.c.id)
    )
    with engine.begin() as conn:
        if not _fence(conn, claim):
            return []
        rows = conn.execute(due).all()
        blocked = _blocked(conn, claim.send_id, rows)
        out = [
            QueuedMessage(
                r.id,
                r.email,
                r.contact_id,
                r.payload,
                r.attempts,
                r.first_attempt_at,
                r.attributes,
                r.id in blocked,
                at_risk=r.state == MessageState.INFLIGHT.value,
                crashes=r.crashes + (r.state == MessageState.INFLIGHT.value),
            )
            for r in rows
        ]
        at_risk = [m.id for m in out if m.at_risk]
        if at_risk:
            conn.execute(
                update(sends)
                .where(sends.c.id == claim.send_id)
                .values(resent_after_crash=sends.c.resent_after_crash + len(at_risk))
            )
            conn.execute(
                update(messages)
                .where(messages.c.id.in_(at_risk))
                # Back to queued: only what this holder marks in flight again is at risk if it
                # dies too, so innocent neighbours of a poison message do not gather crashes.
                .values(crashes=messages.c.crashes + 1, state=MessageState.QUEUED.value)
            )
    return out


def _fence(conn: Connection, claim: Claim) -> bool:
    """Lock the batch row and check that `claim` still holds it."""
    q = select(batches.c.id).where(
        batches.c.id == claim.batch_id,
        batches.c.lease_owner == claim.owner,
        batches.c.lease_epoch == claim.epoch,
        batches.c.state == BatchState.LEASED.value,
    )
    if not is_sqlite(conn):
        q = q.with_for_update()
    return conn.execute(q).first() is not None


_RESULT_UPDATE = (
    update(messages)
    .where(messages.c.id == bindparam("b_id"))
    .values(
        state=bindparam("b_state"),
        attempts=bindparam("b_attempts"),
        first_attempt_at=bindparam("b_first"),
        next_attempt_at=bindparam("b_next"),
        sent_at=bindparam("b_sent"),
        smtp_code=bindparam("b_code"),
        last_error=bindparam("b_error"),
        epoch=bindparam("b_epoch"),
    )
)


def apply_checkpoints(
    engine: Engine,
    items: Sequence[Checkpoint],
    now: float,
    extend: Callable[[Connection], object] | None = None,
) -> None:
    """Group commit: write every checkpoint whose fence holds, in one transaction.

    Sets `accepted` on each item; a rejected item means its claim was lost to another worker.
    `extend`, when given, runs first in the same transaction (the lease heartbeat).
    """
    ordered = sorted(items, key=lambda c: c.claim.batch_id)
    progressed: set[int] = set()  # batch ids
    with engine.begin() as conn:
        if extend is not None:
            extend(conn)
        for item in ordered:
            if not _fence(conn, item.claim):
                continue
            item.accepted = True
            if item.inflight_ids:
                conn.execute(
                    update(messages)
                    .where(messages.c.id.in_(list(item.inflight_ids)))
                    .values(state=MessageState.INFLIGHT.value, epoch=item.claim.epoch)
                )
            if item.results:
                _write_results(conn, item, now)
                progressed.add(item.claim.batch_id)
        if progressed:
            # The batch rows the fence just locked, never the send's row that every worker of
            # the send would write (one frozen worker would hold all the others there).
            conn.execute(
                update(batches).where(batches.c.id.in_(sorted(progressed))).values(progress_at=now)
            )


def _write_results(conn: Connection, item: Checkpoint, now: float) -> None:
    conn.execute(
        _RESULT_UPDATE,
        [
            {
                "b_id": r.message_id,
                "b_state": r.state.value,
                "b_attempts": r.attempts,
                "b_first": r.first_attempt_at,
                "b_next": r.next_attempt_at,
                "b_sent": r.sent_at,
                "b_code": r.smtp_code,
                "b_error": r.error,
                "b_epoch": item.claim.epoch,
            }
            for r in item.results
        ],
    )
    # The message log, in the same transaction: each attempt's outcome with its SMTP reply.
    conn.execute(
        insert(message_events),
        [
            {
                "message_id": r.message_id,
                "send_id": item.claim.send_id,
                "at": now,
                "kind": r.state.value,
                "smtp_code": r.smtp_code,
                "detail": (r.error or "")[:1000],
            }
            for r in item.results
        ],
    )
    bounced = {
        suppression_key(r.suppress_email): r.message_id for r in item.results if r.suppress_email
    }
    if bounced:
        insert_ignore(
            conn,
            suppressions,
            [
                {
                    "email": key,
                    "stream": Stream.ALL.value,
                    "reason": "hard_bounce",
                    "detail": "",
                    "created_at": now,
                    "message_id": message_id,
                }
                for key, message_id in sorted(bounced.items())
            ],
            ["email", "stream"],
        )


def _blocked(conn: Connection, send_id: int, rows: Sequence[Any]) -> set[int]:
    """Ids of the messages a suppression blocks, matched on the bare, case-folded address (in
    Python: SQL's lower() is neither casefold nor display-name aware). Campaign messages and
    messages offering an unsubscribe link heed newsletter unsubscribes; the rest only bounces
    and complaints."""
    streams = suppressed_streams(conn, [r.email for r in rows])
    if not streams:
        return set()
    kind = conn.execute(select(sends.c.kind).where(sends.c.id == send_id)).scalar_one()
    out = set()
    for r in rows:
        marketing = kind == SendKind.CAMPAIGN.value or bool(
            (r.payload or {}).get("list_unsubscribe")
        )
        if any(blocks(s, marketing=marketing) for s in streams.get(suppression_key(r.email), ())):
            out.add(r.id)
    return out


def release_batch(engine: Engine, claim: Claim, now: float) -> bool:
    """Give the batch back: done if every message is final, else pending until the next due one.

    Completes the send when this was its last open batch. Returns False if the claim was lost.
    """
    open_states = [
        MessageState.QUEUED.value,
        MessageState.INFLIGHT.value,
        MessageState.DEFERRED.value,
    ]
    with engine.begin() as conn:
        if not _fence(conn, claim):
            return False
        rows = conn.execute(
            select(messages.c.state, messages.c.next_attempt_at).where(
                messages.c.send_id == claim.send_id,
                messages.c.batch_seq == claim.seq,
                messages.c.state.in_(open_states),
            )
        ).all()
        values: dict[str, object] = {"lease_owner": None, "lease_expires_at": None}
        send = None
        if rows:
            due = [r.next_attempt_at or now for r in rows]
            values.update(state=BatchState.PENDING.value, available_at=min(due))
        else:
            values.update(state=BatchState.DONE.value)
            # Lock the send before judging completion, so two workers finishing its last two
            # batches at once cannot both see the other's batch as still open. Only a finished
            # batch takes this lock: the send's row is not on every release's path.
            send = _lock_send(conn, claim.send_id)
        conn.execute(update(batches).where(batches.c.id == claim.batch_id).values(**values))
        if send is not None and send.kind == SendKind.CAMPAIGN.value:
            _complete_if_done(conn, claim.send_id, now)
    return True


def _lock_send(conn: Connection, send_id: int) -> Any:
    q = select(sends.c.id, sends.c.kind, sends.c.state).where(sends.c.id == send_id)
    if not is_sqlite(conn):
        q = q.with_for_update()
    return conn.execute(q).first()


def _complete_if_done(conn: Connection, send_id: int, now: float) -> None:
    open_batch = conn.execute(
        select(batches.c.id)
        .where(batches.c.send_id == send_id, batches.c.state != BatchState.DONE.value)
        .limit(1)
    ).first()
    if open_batch is None:
        conn.execute(
            update(sends)
            .where(sends.c.id == send_id, sends.c.state == SendState.RUNNING.value)
            .values(state=SendState.COMPLETED.value, completed_at=now, last_progress_at=now)
        )


def insert_batches(conn: Connection, send_id: int, count: int, start_seq: int, now: float) -> None:
    """Create `count` pending batches for a send, numbered from `start_seq`."""
    if count <= 0:
        return
    conn.execute(
        insert(batches),
        [
            {
                "send_id": send_id,
                "seq": start_seq + i,
                "state": BatchState.PENDING.value,
                "available_at": now,
            }
            for i in range(count)
        ],
    )
