"""The message log: each message's history, found by recipient.

`message_events` holds what the pipeline did (queued, each attempt's outcome with its SMTP
reply) and what came back later (a bounce, a complaint); `tracking_events` what the recipient
did (opens, clicks, unsubscribes). A message's history is both, in time order. Events older
than the retention (`message_log_days`) are pruned a chunk at a time.
"""

from dataclasses import dataclass

from sqlalchemy import ColumnElement, Connection, Engine, Table, delete, func, insert, select

from steadymail.domain.states import MessageState
from steadymail.domain.suppression import suppression_key
from steadymail.store.schema import message_events, messages, sends, tracking_events


@dataclass(frozen=True, slots=True)
class MessageEvent:
    at: float
    kind: str
    smtp_code: int | None = None
    detail: str = ""
    # Opens and clicks: a mail-privacy proxy, prefetcher or link scanner, not a person.
    machine: bool = False


@dataclass(frozen=True, slots=True)
class LoggedMessage:
    id: int
    send_id: int
    send_name: str
    email: str
    state: MessageState
    attempts: int
    sent_at: float | None
    smtp_code: int | None
    last_error: str | None
    events: list[MessageEvent]


def record(
    conn: Connection,
    message_id: int,
    send_id: int,
    at: float,
    kind: str,
    smtp_code: int | None = None,
    detail: str = "",
) -> None:
    """One event on a message (a bounce or complaint that came back later)."""
    conn.execute(
        insert(message_events).values(
            message_id=message_id,
            send_id=send_id,
            at=at,
            kind=kind,
            smtp_code=smtp_code,
            detail=detail[:1000],
        )
    )


def search(engine: Engine, to: str, limit: int = 50, offset: int = 0) -> list[LoggedMessage]:
    """Messages to `to` (any spelling of the address), newest first, each with its history."""
    key = suppression_key(to)
    q = (
        select(
            messages.c.id,
            messages.c.send_id,
            sends.c.name,
            messages.c.email,
            messages.c.state,
            messages.c.attempts,
            messages.c.sent_at,
            messages.c.smtp_code,
            messages.c.last_error,
        )
        .select_from(messages.join(sends, sends.c.id == messages.c.send_id))
        .where(func.lower(messages.c.email) == key)
        .order_by(messages.c.id.desc())
        .limit(limit)
        .offset(offset)
    )
    with engine.connect() as conn:
        rows = conn.execute(q).all()
        history = _events(conn, [int(r.id) for r in rows])
    return [
        LoggedMessage(
            int(r.id),
            int(r.send_id),
            r.name,
            r.email,
            MessageState(r.state),
            int(r.attempts),
            r.sent_at,
            r.smtp_code,
            r.last_error,
            history.get(int(r.id), []),
        )
        for r in rows
    ]


def history(engine: Engine, message_id: int) -> list[MessageEvent]:
    with engine.connect() as conn:
        return _events(conn, [message_id]).get(message_id, [])


def _events(conn: Connection, ids: list[int]) -> dict[int, list[MessageEvent]]:
    out: dict[int, list[tuple[float, int, MessageEvent]]] = {}
    if not ids:
        return {}
    for r in conn.execute(
        select(message_events).where(message_events.c.message_id.in_(ids))
    ).mappings():
        out.setdefault(int(r["message_id"]), []).append(
            (r["at"], 0, MessageEvent(r["at"], r["kind"], r["smtp_code"], r["detail"]))
        )
    tracked = select(
        tracking_events.c.message_id,
        tracking_events.c.at,
        tracking_events.c.kind,
        tracking_events.c.url,
        tracking_events.c.machine,
        tracking_events.c.reason,
    ).where(tracking_events.c.message_id.in_(ids))
    for t in conn.execute(tracked):
        detail = t.url or t.reason or ""
        event = MessageEvent(t.at, _TRACKED.get(t.kind, t.kind), None, detail, bool(t.machine))
        out.setdefault(int(t.message_id), []).append((t.at, 1, event))
    return {mid: [e for _, _, e in sorted(evs, key=lambda x: x[:2])] for mid, evs in out.items()}


# Tracking kinds as the log (and webhooks) name them.
_TRACKED = {"open": "opened", "click": "clicked", "unsubscribe": "unsubscribed"}


def prune(engine: Engine, before: float, chunk: int = 10000, chunks: int = 10) -> int:
    """Delete message events older than `before`, a chunk per transaction and at most `chunks`
    chunks (the caller comes back for the rest); returns how many."""
    return prune_table(engine, message_events, message_events.c.at < before, chunk, chunks)


def prune_table(
    engine: Engine, table: Table, old: ColumnElement[bool], chunk: int, chunks: int
) -> int:
    """Delete the rows `old` selects, by id, a chunk per transaction, at most `chunks`."""
    total = 0
    for _ in range(chunks):
        with engine.begin() as conn:
            ids = select(table.c.id).where(old).limit(chunk)
            gone = conn.execute(delete(table).where(table.c.id.in_(ids))).rowcount
        total += gone
        if gone < chunk:
            break
    return total
