"""Lists and contacts."""

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, Select, func, insert, select

from steadymail.errors import Conflict, NotFound
from steadymail.store.db import insert_ignore
from steadymail.store.records import JsonObject
from steadymail.store.schema import contacts, lists

_CHUNK = 5000


@dataclass(frozen=True, slots=True)
class ListSummary:
    id: int
    name: str
    # How many contacts it holds.
    contacts: int


@dataclass(frozen=True, slots=True)
class Contact:
    email: str
    # Its CSV columns other than `email`, by column name.
    attributes: JsonObject


def create_list(engine: Engine, name: str, now: float) -> int:
    with engine.begin() as conn:
        if conn.execute(select(lists.c.id).where(lists.c.name == name)).first():
            raise Conflict(f"list {name!r} exists")
        new = insert(lists).values(name=name, created_at=now).returning(lists.c.id)
        return int(conn.execute(new).scalar_one())


def get_or_create_list(engine: Engine, name: str, now: float) -> int:
    with engine.begin() as conn:
        row = conn.execute(select(lists.c.id).where(lists.c.name == name)).first()
        if row:
            return int(row.id)
    return create_list(engine, name, now)


def list_id_by_name(conn: Connection, name: str) -> int:
    row = conn.execute(select(lists.c.id).where(lists.c.name == name)).first()
    if row is None:
        raise NotFound(f"no list named {name!r}")
    return int(row.id)


def _summaries() -> Select[tuple[int, str, int]]:
    return (
        select(lists.c.id, lists.c.name, func.count(contacts.c.id).label("contacts"))
        .select_from(lists.outerjoin(contacts, contacts.c.list_id == lists.c.id))
        .group_by(lists.c.id, lists.c.name)
    )


def all_lists(engine: Engine, limit: int | None = None, offset: int = 0) -> list[ListSummary]:
    """Lists with their contact counts, oldest first; ``limit``/``offset`` page through them."""
    q = _summaries().order_by(lists.c.id).limit(limit).offset(offset)
    with engine.connect() as conn:
        return [ListSummary(int(r.id), r.name, int(r.contacts)) for r in conn.execute(q)]


def list_summary(engine: Engine, name: str) -> ListSummary:
    """One list with its contact count (counting only its own contacts); NotFound if none."""
    with engine.connect() as conn:
        r = conn.execute(_summaries().where(lists.c.name == name)).first()
    if r is None:
        raise NotFound(f"no list named {name!r}")
    return ListSummary(int(r.id), r.name, int(r.contacts))


def existing_emails(engine: Engine, list_id: int) -> set[str]:
    with engine.connect() as conn:
        return {
            r.email
            for r in conn.execute(select(contacts.c.email).where(contacts.c.list_id == list_id))
        }


def insert_contacts(
    engine: Engine, list_id: int, rows: Iterable[tuple[str, dict[str, str]]], now: float
) -> int:
    """Insert (email, attributes) rows in chunks; rows already on the list are skipped."""
    count = 0
    chunk: list[dict[str, object]] = []
    for email, attrs in rows:
        chunk.append(
            {
                "list_id": list_id,
                "email": email,
                "attributes": attrs,
                "status": "active",
                "created_at": now,
            }
        )
        if len(chunk) >= _CHUNK:
            count += _flush(engine, chunk)
            chunk = []
    if chunk:
        count += _flush(engine, chunk)
    return count


def _flush(engine: Engine, chunk: list[dict[str, object]]) -> int:
    with engine.begin() as conn:
        insert_ignore(conn, contacts, chunk, ["list_id", "email"])
    return len(chunk)


def attribute_names(engine: Engine, list_id: int) -> set[str]:
    """The attribute names the list's contacts carry (sampled from the first contacts)."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(contacts.c.attributes).where(contacts.c.list_id == list_id).limit(50)
        ).all()
    names: set[str] = set()
    for r in rows:
        names.update((r.attributes or {}).keys())
    return names


def first_contacts(engine: Engine, list_id: int, limit: int) -> list[Contact]:
    """The list's first ``limit`` contacts, in the order they came."""
    q = (
        select(contacts.c.email, contacts.c.attributes)
        .where(contacts.c.list_id == list_id)
        .order_by(contacts.c.id)
        .limit(limit)
    )
    with engine.connect() as conn:
        return [Contact(r.email, dict(r.attributes or {})) for r in conn.execute(q)]


def contacts_page(
    engine: Engine, list_id: int, limit: int, offset: int = 0, email_prefix: str = ""
) -> list[Contact]:
    """A page of the list's contacts in the order they came, optionally those whose address
    starts with ``email_prefix`` (case-folded as stored)."""
    q = select(contacts.c.email, contacts.c.attributes).where(contacts.c.list_id == list_id)
    if email_prefix:
        q = q.where(func.lower(contacts.c.email).startswith(email_prefix.lower(), autoescape=True))
    q = q.order_by(contacts.c.id).limit(limit).offset(offset)
    with engine.connect() as conn:
        return [Contact(r.email, dict(r.attributes or {})) for r in conn.execute(q)]


def find_contact(engine: Engine, list_id: int, email: str) -> Contact | None:
    q = select(contacts.c.email, contacts.c.attributes).where(
        contacts.c.list_id == list_id, func.lower(contacts.c.email) == email.strip().lower()
    )
    with engine.connect() as conn:
        r = conn.execute(q.limit(1)).first()
    return Contact(r.email, dict(r.attributes or {})) if r else None
