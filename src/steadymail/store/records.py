"""What more than one store module hands out: the JSON aliases and the flag row.

Every public function of the store returns frozen records (or scalars), never a row mapping;
each record lives next to the function that builds it, and here only when two modules share it.

JSON columns are the one place where a record holds something the store does not type: a
value there is free-form by design (a flag's value, a change's before and after, a message's
payload checked by the worker that renders it, an event's detail). These aliases name them, so
a reader sees at once which fields are JSON and which are columns.
"""

from dataclasses import dataclass
from typing import Any, TypeAlias

# A value of a JSON column, as json.loads gives it back.
JsonValue: TypeAlias = Any
# A JSON column that holds an object.
JsonObject: TypeAlias = dict[str, Any]


@dataclass(frozen=True, slots=True)
class FlagRow:
    """A flag set in the region (flags.detailed, and the worker's heartbeat read)."""

    name: str
    value: JsonValue
    updated_at: float
    updated_by: str
