"""Tracking events, unsubscribes and engagement statistics."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, Engine, case, cast, distinct, func, select, text

from steadymail.domain.states import MessageState
from steadymail.domain.suppression import Stream
from steadymail.errors import NotFound
from steadymail.store.db import dialect_insert
from steadymail.store.schema import TRACKED_ONCE, messages, tracking_events
from steadymail.store.suppressions import suppress


@dataclass(frozen=True, slots=True)
class TrackingEvent:
    """A click, an open or an unsubscribe, to be recorded."""

    kind: str  # click | open | unsubscribe
    send_id: int
    message_id: int
    at: float
    method: str  # the HTTP method, or MAIL for an unsubscribe by mail
    link: int = 0
    url: str = ""
    user_agent: str = ""
    # HMAC-SHA256 of the client address with a secret: countable, never reversible to the IP.
    ip_hash: str = ""
    # A mail-privacy proxy, a prefetcher or a link scanner: kept out of human stats.
    machine: bool = False
    reason: str = ""


@dataclass(frozen=True, slots=True)
class LinkStats:
    link: int
    url: str
    clicks_total: int
    clicks_unique: int
    clicks_machine: int


@dataclass(frozen=True, slots=True)
class SendStats:
    """Delivered, human opens and clicks (total, unique) and machine ones, unsubscribes."""

    send_id: int
    delivered: int
    opens_total: int
    opens_unique: int
    opens_machine: int
    clicks_total: int
    clicks_unique: int
    clicks_machine: int
    unsubscribes: int
    links: tuple[LinkStats, ...]


def sent_times(engine: Engine, message_ids: list[int]) -> dict[int, float | None]:
    if not message_ids:
        return {}
    with engine.connect() as conn:
        rows = conn.execute(
            select(messages.c.id, messages.c.sent_at).where(messages.c.id.in_(message_ids))
        )
        return {int(r.id): r.sent_at for r in rows}


def insert_events(engine: Engine, events: Sequence[TrackingEvent]) -> None:
    """Append events; an open or unsubscribe a message already has is skipped, not rewritten."""
    rows = [
        {
            "kind": e.kind,
            "send_id": e.send_id,
            "message_id": e.message_id,
            "link": e.link,
            "url": e.url,
            "at": e.at,
            "method": e.method,
            "user_agent": e.user_agent,
            "ip_hash": e.ip_hash,
            "machine": int(e.machine),
            "reason": e.reason,
        }
        for e in events
    ]
    if rows:
        with engine.begin() as conn:
            stmt = dialect_insert(conn, tracking_events).on_conflict_do_nothing(
                index_elements=["message_id", "kind", "machine"],
                index_where=text(TRACKED_ONCE),
            )
            conn.execute(stmt, rows)


def unsubscribe(engine: Engine, message_id: int, now: float) -> str:
    """Suppress the message's recipient from newsletters (never from transactional mail), at
    once; returns the address. A repeat writes nothing."""
    with engine.connect() as conn:
        row = conn.execute(select(messages.c.email).where(messages.c.id == message_id)).first()
    if row is None:
        raise NotFound("unknown message")
    suppress(engine, row.email, "unsubscribed", now, stream=Stream.MARKETING, message_id=message_id)
    return str(row.email)


def _engagement(kind: str) -> list[Any]:
    is_kind = tracking_events.c.kind == kind
    human = is_kind & (tracking_events.c.machine == 0)
    machine = is_kind & (tracking_events.c.machine == 1)
    msg = tracking_events.c.message_id
    return [
        func.sum(case((human, 1), else_=0)).label(f"{kind}s_total"),
        func.count(distinct(case((human, msg)))).label(f"{kind}s_unique"),
        func.sum(case((machine, 1), else_=0)).label(f"{kind}s_machine"),
    ]


def send_stats(engine: Engine, send_id: int) -> SendStats:
    """Delivered, opens and clicks (human total/unique, machine), unsubscribes, per link."""
    with engine.connect() as conn:
        delivered = conn.execute(
            select(func.count()).where(
                messages.c.send_id == send_id, messages.c.state == MessageState.SENT.value
            )
        ).scalar_one()
        ev = tracking_events.c
        row = conn.execute(
            select(
                *_engagement("open"),
                *_engagement("click"),
                func.count(distinct(case((ev.kind == "unsubscribe", ev.message_id)))).label(
                    "unsubscribes"
                ),
            ).where(ev.send_id == send_id)
        ).one()
        links = conn.execute(
            select(
                ev.link,
                ev.url,
                func.sum(case((ev.machine == 0, 1), else_=0)).label("clicks_total"),
                func.count(distinct(case((ev.machine == 0, ev.message_id)))).label("clicks_unique"),
                func.sum(case((ev.machine == 1, 1), else_=0)).label("clicks_machine"),
            )
            .where(ev.send_id == send_id, ev.kind == "click")
            .group_by(ev.link, ev.url)
            .order_by(ev.link)
        ).all()
    stats = {k: int(v or 0) for k, v in row._mapping.items()}
    return SendStats(
        send_id=send_id,
        delivered=int(delivered),
        **stats,
        links=tuple(
            LinkStats(
                int(r.link),
                r.url,
                int(r.clicks_total or 0),
                int(r.clicks_unique or 0),
                int(r.clicks_machine or 0),
            )
            for r in links
        ),
    )


def engagement_over_time(
    engine: Engine, send_id: int, bucket: float
) -> list[tuple[float, int, int]]:
    """Human opens and clicks of a send per ``bucket`` seconds: (bucket start, opens, clicks),
    oldest first, empty buckets left out."""
    ev = tracking_events.c
    # SQLite has no floor() unless built with its math functions; its integer cast truncates,
    # which for positive times is the floor (PostgreSQL's cast would round).
    index = (
        func.floor(ev.at / bucket)
        if engine.dialect.name == "postgresql"
        else cast(ev.at / bucket, BigInteger)
    )
    start = index * bucket
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                start.label("at"),
                func.sum(case((ev.kind == "open", 1), else_=0)).label("opens"),
                func.sum(case((ev.kind == "click", 1), else_=0)).label("clicks"),
            )
            .where(ev.send_id == send_id, ev.machine == 0)
            .group_by(start)
            .order_by(start)
        ).all()
    return [(float(r.at), int(r.opens), int(r.clicks)) for r in rows]
