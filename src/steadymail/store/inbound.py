"""Inbound reports (bounces, complaints) kept, read, and applied to the message they name.

Each application is one transaction: the message's state (a hard bounce turns a `sent`
message `bounced`), its event in the message log, and the suppression, so the three never
disagree. A message takes each kind once (a bounce, a soft bounce, a complaint): the same
report resent by its server, or read again, changes nothing and raises no second event.
"""

from dataclasses import dataclass

from sqlalchemy import Connection, Engine, and_, func, insert, select, update

from steadymail.domain.states import MessageState, SendKind
from steadymail.domain.suppression import Reason, Stream, suppression_key
from steadymail.store import message_log
from steadymail.store.schema import inbound_reports, message_events, messages, sends
from steadymail.store.suppressions import add_in


@dataclass(frozen=True, slots=True)
class ReportRow:
    id: int
    received_at: float
    mail_from: str
    rcpt: str
    size: int
    kind: str
    message_id: int | None
    status: str
    detail: str


@dataclass(frozen=True, slots=True)
class Applied:
    """What applying a bounce or complaint did."""

    message_id: int
    email: str
    suppressed: Stream | None
    # A hard bounce found the message `sent` and made it `bounced`.
    state_changed: bool


def keep(engine: Engine, received_at: float, mail_from: str, rcpt: str, raw: bytes) -> int:
    """Store a report whole, before anything reads it; returns its id."""
    with engine.begin() as conn:
        return int(
            conn.execute(
                insert(inbound_reports)
                .values(
                    received_at=received_at,
                    mail_from=mail_from[:400],
                    rcpt=rcpt[:400],
                    size=len(raw),
                    raw=raw,
                    status="received",
                )
                .returning(inbound_reports.c.id)
            ).scalar_one()
        )


def settle(
    engine: Engine, report_id: int, kind: str, message_id: int | None, status: str, detail: str
) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(inbound_reports)
            .where(inbound_reports.c.id == report_id)
            .values(kind=kind, message_id=message_id, status=status, detail=detail[:2000])
        )


def reports(
    engine: Engine, status: str | None = None, limit: int = 100, offset: int = 0
) -> list[ReportRow]:
    """Reports, newest first (without their bytes); `status` narrows (`review`)."""
    cols = [c for c in inbound_reports.c if c.name != "raw"]
    q = select(*cols).order_by(inbound_reports.c.id.desc()).limit(limit).offset(offset)
    if status is not None:
        q = q.where(inbound_reports.c.status == status)
    with engine.connect() as conn:
        return [ReportRow(**r) for r in conn.execute(q).mappings()]


def report(engine: Engine, report_id: int) -> ReportRow | None:
    cols = [c for c in inbound_reports.c if c.name != "raw"]
    with engine.connect() as conn:
        r = conn.execute(select(*cols).where(inbound_reports.c.id == report_id)).mappings().first()
    return ReportRow(**r) if r is not None else None


def raw_report(engine: Engine, report_id: int) -> bytes | None:
    with engine.connect() as conn:
        raw = conn.execute(
            select(inbound_reports.c.raw).where(inbound_reports.c.id == report_id)
        ).scalar()
    return bytes(raw) if raw is not None else None


def bounce(
    engine: Engine,
    message_id: int,
    *,
    hard: bool,
    at: float,
    status: str,
    diagnostic: str,
    soft_limit: int,
    soft_window: float,
) -> Applied | None:
    """A bounce of a message we sent (None: no such message). Hard: the message is `bounced`
    (if it was `sent`) and its address suppressed everywhere. Soft: an event; past
    `soft_limit` soft bounces of the address within `soft_window` seconds, suppressed too."""
    kind = "bounced" if hard else "soft_bounce"
    code = _reply_code(status)
    with engine.begin() as conn:
        row = conn.execute(
            select(messages.c.send_id, messages.c.email).where(messages.c.id == message_id)
        ).first()
        if row is None:
            return None
        if _recorded(conn, message_id, kind):
            # The same bounce again (a report resent, or read again): nothing more to do.
            return Applied(message_id, row.email, None, False)
        message_log.record(
            conn, message_id, row.send_id, at, kind, code, _detail(status, diagnostic)
        )
        changed = False
        suppressed = None
        if hard:
            changed = bool(
                conn.execute(
                    update(messages)
                    .where(
                        messages.c.id == message_id,
                        messages.c.state == MessageState.SENT.value,
                    )
                    .values(
                        state=MessageState.BOUNCED.value,
                        smtp_code=code,
                        last_error=_detail(status, diagnostic)[:1000],
                    )
                ).rowcount
            )
            add_in(conn, row.email, Stream.ALL, Reason.HARD_BOUNCE, at, diagnostic, message_id)
            suppressed = Stream.ALL
        else:
            key = suppression_key(row.email)
            # Messages that soft-bounced, not reports: a message's repeated delay warnings
            # count once.
            soft = conn.execute(
                select(func.count(func.distinct(message_events.c.message_id)))
                .select_from(
                    message_events.join(messages, messages.c.id == message_events.c.message_id)
                )
                .where(
                    func.lower(messages.c.email) == key,
                    and_(
                        message_events.c.kind == "soft_bounce",
                        message_events.c.at >= at - soft_window,
                    ),
                )
            ).scalar_one()
            if soft >= soft_limit:
                why = f"{soft} soft bounces within {soft_window / 86400:g} days; last: {diagnostic}"
                add_in(conn, row.email, Stream.ALL, Reason.SOFT_BOUNCE, at, why, message_id)
                suppressed = Stream.ALL
    return Applied(message_id, row.email, suppressed, changed)


def complaint(engine: Engine, message_id: int, at: float, feedback: str) -> Applied | None:
    """A recipient marked a message as spam (None: no such message): an event, and the
    address suppressed in the stream the message came from (a newsletter's complaint stops
    newsletters, a receipt's stops the other mail)."""
    with engine.begin() as conn:
        row = conn.execute(
            select(messages.c.send_id, messages.c.email, messages.c.payload, sends.c.kind)
            .select_from(messages.join(sends, sends.c.id == messages.c.send_id))
            .where(messages.c.id == message_id)
        ).first()
        if row is None:
            return None
        if _recorded(conn, message_id, "complained"):
            return Applied(message_id, row.email, None, False)
        marketing = row.kind == SendKind.CAMPAIGN.value or bool(
            (row.payload or {}).get("list_unsubscribe")
        )
        stream = Stream.MARKETING if marketing else Stream.TRANSACTIONAL
        message_log.record(conn, message_id, row.send_id, at, "complained", None, feedback)
        add_in(conn, row.email, stream, Reason.COMPLAINT, at, feedback, message_id)
    return Applied(message_id, row.email, stream, False)


def _recorded(conn: Connection, message_id: int, kind: str) -> bool:
    return (
        conn.execute(
            select(message_events.c.id).where(
                message_events.c.message_id == message_id, message_events.c.kind == kind
            )
        ).first()
        is not None
    )


def _reply_code(status: str) -> int | None:
    """An enhanced status's class as a reply code (5.1.1 → 550, 4.2.2 → 450)."""
    return {"5": 550, "4": 450}.get(status[:1]) if status else None


def _detail(status: str, diagnostic: str) -> str:
    return f"{status} {diagnostic}".strip() if status and status not in diagnostic else diagnostic


def prune(engine: Engine, before: float, chunk: int, chunks: int) -> int:
    """Reports received before `before`, except those waiting for review."""
    old = (inbound_reports.c.received_at < before) & (inbound_reports.c.status != "review")
    return message_log.prune_table(engine, inbound_reports, old, chunk, chunks)
