"""Sends: creation, materialisation into batches and messages, state changes, progress."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, RowMapping, func, insert, literal, select, update
from sqlalchemy.sql import over

from steadymail.domain.states import (
    BatchState,
    MessageState,
    SendKind,
    SendState,
    TransitionError,
    send_transition,
)
from steadymail.domain.suppression import Stream
from steadymail.errors import Conflict, NotFound
from steadymail.store.db import is_sqlite
from steadymail.store.queue import insert_batches
from steadymail.store.records import JsonObject
from steadymail.store.schema import (
    batches,
    contacts,
    message_events,
    messages,
    sends,
    suppressions,
)


@dataclass(frozen=True, slots=True)
class Send:
    """A send as stored, with `last_progress_at` the newest of its own and its batches'."""

    id: int
    name: str
    kind: SendKind
    state: SendState
    list_id: int | None
    template_id: int | None
    from_addr: str
    total: int
    suppressed: int
    batch_count: int
    # Messages re-sent after their previous holder died mid-window: the duplicate bound.
    resent_after_crash: int
    created_at: float
    started_at: float | None
    completed_at: float | None
    last_progress_at: float | None
    scheduled_at: float | None


@dataclass(frozen=True, slots=True)
class SendProgress(Send):
    """A send with its message counts by state and its open batch count."""

    counts: dict[MessageState, int]
    open_batches: int


@dataclass(frozen=True, slots=True)
class CampaignStart:
    """What starting a campaign materialised."""

    messages: int
    batches: int
    # Contacts skipped: suppressed or unsubscribed.
    suppressed: int


@dataclass(frozen=True, slots=True)
class Message:
    """One recipient's message of a send, as stored."""

    id: int
    send_id: int
    batch_seq: int
    contact_id: int | None
    email: str
    # Variables and content of a transactional message (checked when it is rendered); None
    # for campaign messages.
    payload: JsonObject | None
    state: MessageState
    attempts: int
    first_attempt_at: float | None
    next_attempt_at: float | None
    sent_at: float | None
    smtp_code: int | None
    last_error: str | None
    epoch: int
    crashes: int


def _send_values(m: RowMapping) -> dict[str, Any]:
    return {**m, "kind": SendKind(m["kind"]), "state": SendState(m["state"])}


def _message(m: RowMapping) -> Message:
    return Message(**{**m, "state": MessageState(m["state"])})


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


def get_send(engine: Engine, send_id: int) -> Send:
    with engine.connect() as conn:
        return Send(**_get(conn, send_id))


def _get(conn: Connection, send_id: int, lock: bool = False) -> dict[str, Any]:
    """The send's fields (NotFound if there is none), for `Send` or `SendProgress`. ``lock``:
    row-locked on PostgreSQL (SQLite's writers are serialised already), for a state change
    that must see the state it replaces (two starts of one send materialise it once)."""
    q = select(sends).where(sends.c.id == send_id)
    if lock and not is_sqlite(conn):
        q = q.with_for_update()
    row = conn.execute(q).mappings().first()
    if row is None:
        raise NotFound(f"no send {send_id}")
    out = _send_values(row)
    # Workers record progress on their batches (see queue.apply_checkpoints): the send's is
    # the newest of those and its own (set on start, resume and completion).
    batch = conn.execute(
        select(func.max(batches.c.progress_at)).where(batches.c.send_id == send_id)
    ).scalar()
    if batch is not None and (out["last_progress_at"] or 0) < batch:
        out["last_progress_at"] = batch
    return out


def all_sends(engine: Engine, limit: int | None = None, offset: int = 0) -> list[Send]:
    """Sends, oldest first; ``limit``/``offset`` page through them.

    Their `last_progress_at` is the send row's own (`get_send` folds in the batches')."""
    q = select(sends).order_by(sends.c.id).limit(limit).offset(offset)
    with engine.connect() as conn:
        return [Send(**_send_values(r)) for r in conn.execute(q).mappings()]


def sends_in_states(engine: Engine, states: tuple[SendState, ...], limit: int = 50) -> list[Send]:
    """The newest ``limit`` sends in one of ``states`` (a console's running sends)."""
    q = (
        select(sends)
        .where(sends.c.state.in_([s.value for s in states]))
        .order_by(sends.c.id.desc())
        .limit(limit)
    )
    with engine.connect() as conn:
        return [Send(**_send_values(r)) for r in conn.execute(q).mappings()]


def newest_sends(engine: Engine, limit: int = 50, offset: int = 0) -> list[Send]:
    """Sends, newest first."""
    q = select(sends).order_by(sends.c.id.desc()).limit(limit).offset(offset)
    with engine.connect() as conn:
        return [Send(**_send_values(r)) for r in conn.execute(q).mappings()]


def using_template(engine: Engine, template_id: int, states: tuple[SendState, ...]) -> list[int]:
    """Ids of the sends in ``states`` that render from the template."""
    q = select(sends.c.id).where(
        sends.c.template_id == template_id, sends.c.state.in_([s.value for s in states])
    )
    with engine.connect() as conn:
        return [int(r.id) for r in conn.execute(q)]


def start_campaign(
    engine: Engine, send_id: int, batch_size: int, now: float, *, when_due: bool = False
) -> CampaignStart:
    """Materialise one message per eligible contact, grouped into batches, and start sending.

    Suppressed and unsubscribed contacts are skipped and counted. One transaction: a send is
    either fully materialised and running, or untouched. `when_due` (the scheduler's start):
    only a send still scheduled for `now` or earlier, judged under the row lock, so a send
    moved later a moment ago is not started at its old time (Conflict).
    """
    with engine.begin() as conn:
        send = _get(conn, send_id, lock=True)
        if when_due and (
            send["state"] != SendState.SCHEDULED or (send["scheduled_at"] or now) > now
        ):
            raise Conflict(f"send {send_id} is not due")
        _check(send["state"], "start")
        list_id = send["list_id"]
        # Every stream but the transactional one blocks a campaign. Contacts hold bare addresses
        # (the import validates them), so lower() finds every ASCII spelling; the worker's
        # casefold check catches the rest.
        suppressed_email = select(suppressions.c.email).where(
            suppressions.c.email == func.lower(contacts.c.email),
            suppressions.c.stream != Stream.TRANSACTIONAL.value,
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
        # The message log's first line for each (one statement, in the same transaction).
        conn.execute(
            insert(message_events).from_select(
                ["message_id", "send_id", "at", "kind"],
                select(
                    messages.c.id,
                    messages.c.send_id,
                    literal(now).label("at"),
                    literal("queued").label("kind"),
                ).where(messages.c.send_id == send_id),
            )
        )
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
    return CampaignStart(total, nbatches, total_contacts - total)


def enqueue_stream_messages(
    engine: Engine, send_id: int, items: Sequence[tuple[str, JsonObject]], now: float
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
        conn.execute(
            insert(message_events),
            [{"message_id": i, "send_id": send_id, "at": now, "kind": "queued"} for i in ids],
        )
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


def schedule(engine: Engine, send_id: int, at: float) -> None:
    """Schedule a draft campaign to start at ``at``, or move a scheduled one to ``at``."""
    with engine.begin() as conn:
        send = _get(conn, send_id, lock=True)
        if send["kind"] != SendKind.CAMPAIGN:
            raise Conflict("only a campaign can be scheduled")
        _check(send["state"], "schedule")
        conn.execute(
            update(sends)
            .where(sends.c.id == send_id)
            .values(state=SendState.SCHEDULED.value, scheduled_at=at)
        )


def unschedule(engine: Engine, send_id: int) -> None:
    """A scheduled send back to draft (its template no longer renders): Conflict if it is not
    scheduled any more."""
    with engine.begin() as conn:
        send = _get(conn, send_id, lock=True)
        if send["state"] != SendState.SCHEDULED:
            raise Conflict(f"send {send_id} is {send['state'].value}, not scheduled")
        conn.execute(
            update(sends)
            .where(sends.c.id == send_id)
            .values(state=SendState.DRAFT.value, scheduled_at=None)
        )


def due_scheduled(engine: Engine, now: float) -> list[int]:
    """Scheduled sends whose time has come, earliest first."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(sends.c.id)
            .where(sends.c.state == SendState.SCHEDULED.value, sends.c.scheduled_at <= now)
            .order_by(sends.c.scheduled_at, sends.c.id)
        )
        return [int(r.id) for r in rows]


def change_state(engine: Engine, send_id: int, action: str, now: float) -> SendState:
    """Pause, resume or cancel a send; cancelling gives up every message not yet handed to SMTP."""
    with engine.begin() as conn:
        send = _get(conn, send_id, lock=True)
        target = _check(send["state"], action)
        values: dict[str, object] = {"state": target.value}
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


def progress(engine: Engine, send_id: int) -> SendProgress:
    """A send with its message counts by state and its open batch count."""
    with engine.connect() as conn:
        send = _get(conn, send_id)
        counts = {
            MessageState(r.state): int(r.n)
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
    return SendProgress(**send, counts=counts, open_batches=int(open_batches))


def message_rows(engine: Engine, send_id: int, limit: int = 100, offset: int = 0) -> list[Message]:
    """A send's messages, in the order they were queued."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(messages)
            .where(messages.c.send_id == send_id)
            .order_by(messages.c.id)
            .limit(limit)
            .offset(offset)
        ).mappings()
        return [_message(r) for r in rows]


def get_message(engine: Engine, message_id: int) -> Message:
    with engine.connect() as conn:
        row = conn.execute(select(messages).where(messages.c.id == message_id)).mappings().first()
    if row is None:
        raise NotFound(f"no message {message_id}")
    return _message(row)
