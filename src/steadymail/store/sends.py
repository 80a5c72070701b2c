"""Sends: creation, materialisation into batches and messages, state changes, progress."""

from typing import Any

from sqlalchemy import Connection, Engine, func, insert, literal, select, update
from sqlalchemy.sql import over

from steadymail.domain.states import (
    BatchState,
    MessageState,
    SendKind,
    SendState,
    TransitionError,
    send_transition,
)
from steadymail.errors import Conflict, NotFound
from steadymail.store.db import is_sqlite
from steadymail.store.queue import insert_batches
from steadymail.store.schema import batches, contacts, messages, sends, suppressions


def create_send(
    engine: Engine,
    *,
    name: str,
    kind: SendKind,
    list_id: int | None,
    template_id: int | None,
    from_addr: str,
    now: float,
    state: SendState = SendState.DRAFT,
) -> int:
    with engine.begin() as conn:
        result = conn.execute(
            insert(sends)
            .values(
                name=name,
                kind=kind.value,
                state=state.value,
                list_id=list_id,
                template_id=template_id,
                from_addr=from_addr,
                created_at=now,
                started_at=now if state == SendState.RUNNING else None,
            )
            .returning(sends.c.id)
        )
        return int(result.scalar_one())


def get_send(engine: Engine, send_id: int) -> dict[str, Any]:
    with engine.connect() as conn:
        return _get(conn, send_id)


def _get(conn: Connection, send_id: int) -> dict[str, Any]:
    row = conn.execute(select(sends).where(sends.c.id == send_id)).first()
    if row is None:
        raise NotFound(f"no send {send_id}")
    out = dict(row._mapping)
    # Workers record progress on their batches (see queue.apply_checkpoints): the send's is
    # the newest of those and its own (set on start, resume and completion).
    batch = conn.execute(
        select(func.max(batches.c.progress_at)).where(batches.c.send_id == send_id)
    ).scalar()
    if batch is not None and (out["last_progress_at"] or 0) < batch:
        out["last_progress_at"] = batch
    return out


def all_sends(engine: Engine, limit: int | None = None, offset: int = 0) -> list[dict[str, Any]]:
    """Sends, oldest first; ``limit``/``offset`` page through them."""
    q = select(sends).order_by(sends.c.id).limit(limit).offset(offset)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(q)]


def start_campaign(engine: Engine, send_id: int, batch_size: int, now: float) -> dict[str, int]:
    """Materialise one message per eligible contact, grouped into batches, and start sending.

    Suppressed and unsubscribed contacts are skipped and counted. One transaction: a send is
    either fully materialised and running, or untouched.
    """
    with engine.begin() as conn:
        send = _get(conn, send_id)
        _check(SendState(send["state"]), "start")
        list_id = send["list_id"]
        # Any stream blocks a campaign. Contacts hold bare addresses (the import validates them),
        # so lower() finds every ASCII spelling; the worker's casefold check catches the rest.
        suppressed_email = select(suppressions.c.email).where(
            suppressions.c.email == func.lower(contacts.c.email)
        )
        eligible = contacts.c.list_id == list_id
        ok = (contacts.c.status == "active") & ~suppressed_email.exists()
        total_contacts = conn.execute(select(func.count()).where(eligible)).scalar_one()
        rn = over(func.row_number(), order_by=contacts.c.id)
        picked = select(
            literal(send_id).label("send_id"),
            ((rn - 1) // batch_size).label("batch_seq"),
            contacts.c.id.label("contact_id"),
            contacts.c.email,
            literal(MessageState.QUEUED.value).label("state"),
        ).where(eligible, ok)
        conn.execute(
            insert(messages).from_select(
                ["send_id", "batch_seq", "contact_id", "email", "state"], picked
            )
        )
        total = conn.execute(
            select(func.count()).select_from(messages).where(messages.c.send_id == send_id)
        ).scalar_one()
        nbatches = (total + batch_size - 1) // batch_size
        insert_batches(conn, send_id, nbatches, 0, now)
        conn.execute(
            update(sends)
            .where(sends.c.id == send_id)
            .values(
                state=SendState.RUNNING.value,
                total=total,
                batch_count=nbatches,
                suppressed=total_contacts - total,
                started_at=now,
                last_progress_at=now,
            )
        )
    return {"messages": total, "batches": nbatches, "suppressed": total_contacts - total}


def enqueue_stream_messages(
    engine: Engine, send_id: int, items: list[tuple[str, dict[str, Any]]], now: float
) -> list[int]:
    """Append transactional messages to a stream send as one new batch; returns message ids."""
    with engine.begin() as conn:
        # Row lock on the stream serialises concurrent appends' batch numbering on PostgreSQL;
        # SQLite's IMMEDIATE transaction already does.
        q = select(sends.c.batch_count).where(sends.c.id == send_id)
        if not is_sqlite(conn):
            q = q.with_for_update()
        seq = conn.execute(q).scalar_one()
        ids = []
        for email, payload in items:
            r = conn.execute(
                insert(messages)
                .values(
                    send_id=send_id,
                    batch_seq=seq,
                    email=email,
                    payload=payload,
                    state=MessageState.QUEUED.value,
                )
                .returning(messages.c.id)
            )
            ids.append(int(r.scalar_one()))
        insert_batches(conn, send_id, 1, seq, now)
        conn.execute(
            update(sends)
            .where(sends.c.id == send_id)
            .values(batch_count=seq + 1, total=sends.c.total + len(items))
        )
    return ids


def stream_send_id(engine: Engine, name: str, from_addr: str, now: float) -> int:
    """The running stream send called `name`, created on first use."""
    with engine.connect() as conn:
        row = conn.execute(
            select(sends.c.id).where(sends.c.name == name, sends.c.kind == SendKind.STREAM.value)
        ).first()
    if row:
        return int(row.id)
    return create_send(
        engine,
        name=name,
        kind=SendKind.STREAM,
        list_id=None,
        template_id=None,
        from_addr=from_addr,
        now=now,
        state=SendState.RUNNING,
    )


def change_state(engine: Engine, send_id: int, action: str, now: float) -> SendState:
    """Pause, resume or cancel a send; cancelling gives up every message not yet handed to SMTP."""
    with engine.begin() as conn:
        send = _get(conn, send_id)
        target = _check(SendState(send["state"]), action)
        values: dict[str, Any] = {"state": target.value}
        if target == SendState.RUNNING:
            values["last_progress_at"] = now
        if target == SendState.CANCELLED:
            values["completed_at"] = now
            conn.execute(
                update(messages)
                .where(
                    messages.c.send_id == send_id,
                    messages.c.state.in_([MessageState.QUEUED.value, MessageState.DEFERRED.value]),
                )
                .values(state=MessageState.CANCELLED.value)
            )
        conn.execute(update(sends).where(sends.c.id == send_id).values(**values))
    return target


def _check(current: SendState, action: str) -> SendState:
    try:
        return send_transition(current, action)
    except TransitionError as e:
        raise Conflict(str(e)) from e


def progress(engine: Engine, send_id: int) -> dict[str, Any]:
    """A send with its message counts by state and its open batch count."""
    with engine.connect() as conn:
        send = _get(conn, send_id)
        counts = {
            str(r.state): int(r.n)
            for r in conn.execute(
                select(messages.c.state, func.count().label("n"))
                .where(messages.c.send_id == send_id)
                .group_by(messages.c.state)
            )
        }
        open_batches = conn.execute(
            select(func.count())
            .select_from(batches)
            .where(batches.c.send_id == send_id, batches.c.state != BatchState.DONE.value)
        ).scalar_one()
    send["counts"] = counts
    send["open_batches"] = int(open_batches)
    return send


def message_rows(
    engine: Engine, send_id: int, limit: int = 100, offset: int = 0
) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(messages)
            .where(messages.c.send_id == send_id)
            .order_by(messages.c.id)
            .limit(limit)
            .offset(offset)
        )
        return [dict(r._mapping) for r in rows]
