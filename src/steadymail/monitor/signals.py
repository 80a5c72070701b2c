"""What the watchers report to the monitor; plain data, no I/O."""

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Signal:
    """Fire (or resolve, when `resolve`) the alert `fingerprint`, or add a note to it."""

    fingerprint: str
    name: str
    severity: str = "warning"
    summary: str = ""
    labels: dict[str, Any] = field(default_factory=dict)
    resolve: bool = False
    note: str = ""
    detail: str = ""
