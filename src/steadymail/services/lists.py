"""Contact lists as the API shows them: created by name, listed with their sizes. (Contacts
arrive through services/csv_import.py.)"""

from sqlalchemy import Engine

from steadymail.clock import Clock
from steadymail.store import contacts
from steadymail.store.contacts import Contact, ListSummary


def create(engine: Engine, clock: Clock, name: str) -> int:
    """A new, empty list; Conflict if the name is taken."""
    return contacts.create_list(engine, name, clock.now())


def listing(engine: Engine, limit: int | None = None, offset: int = 0) -> list[ListSummary]:
    """Lists with their contact counts, oldest first."""
    return contacts.all_lists(engine, limit, offset)


def summary(engine: Engine, name: str) -> ListSummary:
    """One list with its contact count; NotFound for no such list."""
    return contacts.list_summary(engine, name)


def contacts_of(
    engine: Engine, name: str, limit: int = 50, offset: int = 0, email_prefix: str = ""
) -> list[Contact]:
    """A page of a list's contacts in the order they came; NotFound for no such list."""
    with engine.connect() as conn:
        list_id = contacts.list_id_by_name(conn, name)
    return contacts.contacts_page(engine, list_id, limit, offset, email_prefix)


def contact(engine: Engine, name: str, email: str) -> Contact | None:
    """The contact with `email` (any case) on list `name`, or None."""
    with engine.connect() as conn:
        list_id = contacts.list_id_by_name(conn, name)
    return contacts.find_contact(engine, list_id, email)
