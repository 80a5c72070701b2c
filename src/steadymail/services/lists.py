"""Contact lists as the API shows them: created by name, listed with their sizes. (Contacts
arrive through services/csv_import.py.)"""

from sqlalchemy import Engine

from steadymail.clock import Clock
from steadymail.store import contacts
from steadymail.store.contacts import ListSummary


def create(engine: Engine, clock: Clock, name: str) -> int:
    """A new, empty list; Conflict if the name is taken."""
    return contacts.create_list(engine, name, clock.now())


def listing(engine: Engine, limit: int | None = None, offset: int = 0) -> list[ListSummary]:
    """Lists with their contact counts, oldest first."""
    return contacts.all_lists(engine, limit, offset)
