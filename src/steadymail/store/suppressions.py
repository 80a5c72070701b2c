"""The suppression list: who must not be mailed, in which stream, why, and since which message.

Rows are keyed by the bare, case-folded address and a stream (domain/suppression.py). Workers
add them (hard bounces), so do the tracking endpoints (unsubscribes) and the inbound server
(complaints, bounces); people add and remove them through the API and the CLI, and each of
those is written to `suppression_log` with who and why in the same transaction.

A contact whose address is suppressed for newsletters (`marketing` or `all`) is marked with the
reason, so a campaign start skips it; when its last such suppression is removed it is active
again.
"""

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import (
    Connection,
    Engine,
    RowMapping,
    Table,
    and_,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)

from steadymail.domain.suppression import Stream, blocks, stream_for, suppression_key
from steadymail.store.db import dialect_insert
from steadymail.store.schema import contacts, suppression_log, suppressions

# Streams whose suppression keeps a contact out of campaigns.
_STOPS_CAMPAIGNS = (Stream.MARKETING.value, Stream.ALL.value)


@dataclass(frozen=True, slots=True)
class Suppression:
    email: str
    stream: Stream
    reason: str
    detail: str
    created_at: float
    # The message whose bounce, complaint or unsubscribe it came from; None: added by hand.
    message_id: int | None


@dataclass(frozen=True, slots=True)
class LoggedChange:
    """One suppression a person added or removed."""

    id: int
    at: float
    email: str
    stream: Stream
    action: str  # added | removed
    reason: str
    by: str
    detail: str


def suppress(
    engine: Engine,
    email: str,
    reason: str,
    now: float,
    detail: str = "",
    *,
    stream: Stream | None = None,
    message_id: int | None = None,
) -> bool:
    """Suppress `email` (any spelling) in `stream` (default: the one `reason` implies); False
    if it already was. A repeat writes nothing."""
    with engine.begin() as conn:
        return add_in(conn, email, stream or stream_for(reason), reason, now, detail, message_id)


def add_in(
    conn: Connection,
    email: str,
    stream: Stream,
    reason: str,
    now: float,
    detail: str = "",
    message_id: int | None = None,
) -> bool:
    """`suppress` inside the caller's transaction (a bounce applied with its message state)."""
    key = suppression_key(email)
    row = {
        "email": key,
        "stream": stream.value,
        "reason": reason,
        "detail": detail,
        "created_at": now,
        "message_id": message_id,
    }
    added = _insert_once(conn, suppressions, row, ["email", "stream"])
    if stream.value in _STOPS_CAMPAIGNS:
        conn.execute(
            update(contacts)
            .where(func.lower(contacts.c.email) == key, contacts.c.status == "active")
            .values(status=reason)
        )
    return added


def add_by_hand(
    engine: Engine,
    entries: Sequence[tuple[str, Stream]],
    reason: str,
    by: str,
    why: str,
    now: float,
) -> int:
    """Suppress each (address, stream) that is not already, logged with who and why; returns
    how many were new. One transaction."""
    added = 0
    with engine.begin() as conn:
        for email, stream in entries:
            if add_in(conn, email, stream, reason, now, why, None):
                added += 1
                _log(conn, now, suppression_key(email), stream, "added", reason, by, why)
    return added


def remove(
    engine: Engine, email: str, stream: Stream | None, by: str, why: str, now: float
) -> list[Suppression]:
    """Lift the suppressions of `email` (in `stream`, or every one), logged with who and why;
    returns what was lifted. Its contacts are active again once nothing stops campaigns."""
    key = suppression_key(email)
    where = suppressions.c.email == key
    if stream is not None:
        where = and_(where, suppressions.c.stream == stream.value)
    with engine.begin() as conn:
        gone = [_row(r) for r in conn.execute(select(suppressions).where(where)).mappings()]
        if not gone:
            return []
        conn.execute(delete(suppressions).where(where))
        for s in gone:
            _log(conn, now, key, s.stream, "removed", s.reason, by, why)
        still = conn.execute(
            select(func.count())
            .select_from(suppressions)
            .where(suppressions.c.email == key, suppressions.c.stream.in_(_STOPS_CAMPAIGNS))
        ).scalar_one()
        if not still:
            lifted = [s.reason for s in gone]
            conn.execute(
                update(contacts)
                .where(func.lower(contacts.c.email) == key, contacts.c.status.in_(lifted))
                .values(status="active")
            )
    return gone


def listing(
    engine: Engine,
    *,
    stream: Stream | None = None,
    reason: str | None = None,
    search: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[Suppression]:
    """Suppressions, newest first; `search` matches part of the address (``@gmail.com``)."""
    q = select(suppressions).order_by(
        suppressions.c.created_at.desc(), suppressions.c.email, suppressions.c.stream
    )
    if stream is not None:
        q = q.where(suppressions.c.stream == stream.value)
    if reason is not None:
        q = q.where(suppressions.c.reason == reason)
    if search:
        q = q.where(suppressions.c.email.contains(search.casefold(), autoescape=True))
    with engine.connect() as conn:
        return [_row(r) for r in conn.execute(q.limit(limit).offset(offset)).mappings()]


def every(engine: Engine, chunk: int = 5000) -> Iterator[Suppression]:
    """Every suppression in key order, read a chunk at a time (for an export of any size)."""
    after: tuple[str, str] = ("", "")
    while True:
        q = (
            select(suppressions)
            .where(
                or_(
                    suppressions.c.email > after[0],
                    and_(suppressions.c.email == after[0], suppressions.c.stream > after[1]),
                )
            )
            .order_by(suppressions.c.email, suppressions.c.stream)
            .limit(chunk)
        )
        with engine.connect() as conn:
            rows = [_row(r) for r in conn.execute(q).mappings()]
        yield from rows
        if len(rows) < chunk:
            return
        after = (rows[-1].email, rows[-1].stream.value)


def log(
    engine: Engine, email: str | None = None, limit: int = 100, offset: int = 0
) -> list[LoggedChange]:
    """Suppressions added and removed by people, newest first; `email` narrows to one address."""
    q = select(suppression_log).order_by(suppression_log.c.id.desc())
    if email is not None:
        q = q.where(suppression_log.c.email == suppression_key(email))
    with engine.connect() as conn:
        return [
            LoggedChange(**{**r, "stream": Stream(r["stream"])})
            for r in conn.execute(q.limit(limit).offset(offset)).mappings()
        ]


def is_suppressed(engine: Engine, email: str, *, marketing: bool = True) -> bool:
    """Whether a message to `email` is blocked (`marketing`: a campaign or a message with an
    unsubscribe link)."""
    with engine.connect() as conn:
        streams = suppressed_streams(conn, [email]).get(suppression_key(email), set())
    return any(blocks(s, marketing=marketing) for s in streams)


def suppressed_streams(conn: Connection, emails: Iterable[str]) -> dict[str, set[Stream]]:
    """For each suppressed key among `emails`' keys, the streams it is suppressed in."""
    keys = sorted({suppression_key(e) for e in emails})
    out: dict[str, set[Stream]] = {}
    for i in range(0, len(keys), 500):
        rows = conn.execute(
            select(suppressions.c.email, suppressions.c.stream).where(
                suppressions.c.email.in_(keys[i : i + 500])
            )
        )
        for r in rows:
            out.setdefault(r.email, set()).add(Stream(r.stream))
    return out


def _row(r: RowMapping) -> Suppression:
    return Suppression(
        r["email"],
        Stream(r["stream"]),
        r["reason"],
        r["detail"],
        float(r["created_at"]),
        None if r["message_id"] is None else int(r["message_id"]),
    )


def _log(
    conn: Connection,
    at: float,
    key: str,
    stream: Stream,
    action: str,
    reason: str,
    by: str,
    detail: str,
) -> None:
    conn.execute(
        insert(suppression_log).values(
            at=at,
            email=key,
            stream=stream.value,
            action=action,
            reason=reason,
            by=by,
            detail=detail,
        )
    )


def _insert_once(
    conn: Connection, table: Table, row: Mapping[str, object], keys: list[str]
) -> bool:
    """INSERT one row unless it clashes on `keys`; True if it was inserted."""
    stmt = (
        dialect_insert(conn, table)
        .values(**row)
        .on_conflict_do_nothing(index_elements=keys)
        .returning(*[table.c[k] for k in keys])
    )
    return conn.execute(stmt).first() is not None
