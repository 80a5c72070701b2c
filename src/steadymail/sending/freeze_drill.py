"""The freeze drill's hook: a worker stops itself (SIGSTOP) where the drill tells it to.

Enabled only by the ``fault_freeze_dir`` setting (drills and tests). The drill writes an order
into ``<dir>/<pid>``: ``at:<point>`` freezes at a named point of the worker's loop (between
transactions), ``sql:<text>`` right after the first SQL statement containing ``<text>`` (inside
its transaction, holding whatever locks it took). The order is used once; the drill thaws the
process with SIGCONT when it has seen what it wanted to see.
"""

import os
import signal
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event


class FreezeDrill:
    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self._order = directory / str(os.getpid())

    def at(self, point: str) -> None:
        """A named point of the worker's loop."""
        order = self._read()
        if order == f"at:{point}":
            self._freeze()

    def install(self, engine: Engine) -> None:
        """Freeze after a matching statement, before its transaction ends."""

        @event.listens_for(engine, "after_cursor_execute")
        def _after(_conn: Any, _cur: Any, statement: str, *_args: Any) -> None:
            order = self._read()
            if order and order.startswith("sql:") and order[4:] in statement:
                self._freeze()

    def _read(self) -> str | None:
        try:
            return self._order.read_text().strip()
        except FileNotFoundError:
            return None

    def _freeze(self) -> None:
        try:
            self._order.unlink()  # once: another thread may have taken this order
        except FileNotFoundError:
            return
        os.kill(os.getpid(), signal.SIGSTOP)
