"""The built-in capture server's mailbox: its own small SQLite file, apart from the region DB.

It is a development inbox, not platform state, so it has no migrations: the one table is
created on open.
"""

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from sqlalchemy import (
    Column,
    Engine,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    delete,
    func,
    insert,
    select,
)

from steadymail.errors import NotFound
from steadymail.store.db import make_engine

_meta = MetaData()
captured = Table(
    "captured",
    _meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("received_at", Float, nullable=False),
    Column("mail_from", String(400), nullable=False),
    Column("rcpt_to", Text, nullable=False),
    Column("subject", Text, nullable=False),
    Column("message_id", String(400), nullable=False),
    Column("size", Integer, nullable=False),
    Column("data", LargeBinary, nullable=False),
)


@dataclass(frozen=True, slots=True)
class CapturedMail:
    """A message as the capture server received it, to be stored."""

    received_at: float
    mail_from: str
    # The envelope recipients, comma-separated.
    rcpt_to: str
    subject: str
    message_id: str
    size: int
    data: bytes


@dataclass(frozen=True, slots=True)
class CapturedSummary:
    """A stored message without its bytes."""

    id: int
    received_at: float
    mail_from: str
    rcpt_to: str
    subject: str
    message_id: str
    size: int


def open_capture(path: Path) -> Engine:
    engine = make_engine(f"sqlite:///{path}")
    _meta.create_all(engine)
    return engine


def store(engine: Engine, mails: Sequence[CapturedMail]) -> None:
    if mails:
        with engine.begin() as conn:
            conn.execute(insert(captured), [asdict(m) for m in mails])


def recent(
    engine: Engine, limit: int = 50, to: str | None = None, offset: int = 0
) -> list[CapturedSummary]:
    q = (
        select(
            captured.c.id,
            captured.c.received_at,
            captured.c.mail_from,
            captured.c.rcpt_to,
            captured.c.subject,
            captured.c.message_id,
            captured.c.size,
        )
        .order_by(captured.c.id.desc())
        .limit(limit)
        .offset(offset)
    )
    if to:
        q = q.where(captured.c.rcpt_to.contains(to))
    with engine.connect() as conn:
        return [CapturedSummary(**r) for r in conn.execute(q).mappings()]


def raw(engine: Engine, capture_id: int) -> bytes:
    with engine.connect() as conn:
        row = conn.execute(select(captured.c.data).where(captured.c.id == capture_id)).first()
    if row is None:
        raise NotFound(f"no captured message {capture_id}")
    return bytes(row.data)


def count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(captured)).scalar_one())


def clear(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(delete(captured))


def deliveries(engine: Engine) -> list[tuple[str, float]]:
    """(recipient, received at) of every message in the mailbox."""
    with engine.connect() as conn:
        return [
            (str(r.rcpt_to), float(r.received_at))
            for r in conn.execute(select(captured.c.rcpt_to, captured.c.received_at))
        ]
