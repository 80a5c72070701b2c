"""Lists, contacts and the suppression list."""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, Table, func, insert, select, update

from steadymail.domain.suppression import Stream, blocks, stream_for, suppression_key
from steadymail.errors import Conflict, NotFound
from steadymail.store.db import dialect_insert, insert_ignore
from steadymail.store.records import JsonObject
from steadymail.store.schema import contacts, lists, suppressions

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


def all_lists(engine: Engine, limit: int | None = None, offset: int = 0) -> list[ListSummary]:
    """Lists with their contact counts, oldest first; ``limit``/``offset`` page through them."""
    q = (
        select(lists.c.id, lists.c.name, func.count(contacts.c.id).label("contacts"))
        .select_from(lists.outerjoin(contacts, contacts.c.list_id == lists.c.id))
        .group_by(lists.c.id, lists.c.name)
        .order_by(lists.c.id)
        .limit(limit)
        .offset(offset)
    )
    with engine.connect() as conn:
        return [ListSummary(int(r.id), r.name, int(r.contacts)) for r in conn.execute(q)]


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


def suppress(engine: Engine, email: str, reason: str, now: float, detail: str = "") -> bool:
    """Suppress `email` (any spelling) in the stream `reason` implies; False if it already was.

    A repeat writes nothing: the insert skips the existing row and only still-active contacts
    are updated.
    """
    key = suppression_key(email)
    with engine.begin() as conn:
        added = _insert_once(
            conn,
            suppressions,
            {
                "email": key,
                "stream": stream_for(reason).value,
                "reason": reason,
                "detail": detail,
                "created_at": now,
            },
            ["email", "stream"],
        )
        conn.execute(
            update(contacts)
            .where(func.lower(contacts.c.email) == key, contacts.c.status == "active")
            .values(status=reason)
        )
    return added


def is_suppressed(engine: Engine, email: str, *, marketing: bool = True) -> bool:
    """Whether a message to `email` is blocked (`marketing`: a campaign or a message with an
    unsubscribe link, which newsletter unsubscribes block too)."""
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
