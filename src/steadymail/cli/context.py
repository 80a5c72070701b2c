"""Shared CLI plumbing: settings, engine and clock built once per command; logging."""

import logging
import sys
import time
from dataclasses import dataclass
from functools import cached_property

from rich.console import Console

from steadymail.clock import SystemClock
from steadymail.config import Settings, load_settings
from steadymail.services import database
from steadymail.services.database import Engine

console = Console()
err_console = Console(stderr=True)


@dataclass
class Ctx:
    settings: Settings
    clock: SystemClock

    @cached_property
    def engine(self) -> Engine:
        # A newcomer's first command may come before `up` or `migrate`: the schema is created
        # rather than failing on a missing table. Existing databases are left to `migrate`.
        return database.open_region_created(self.settings)


def make_ctx() -> Ctx:
    return Ctx(load_settings(), SystemClock())


def setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="ts=%(asctime)s level=%(levelname)s logger=%(name)s pid=%(process)d %(message)s",
    )
    # aiosmtpd logs every SMTP line, bodies' sizes and addresses included: keep it quiet.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    # httpx logs every request at INFO: the control plane polls regions several times a second.
    logging.getLogger("httpx").setLevel(logging.WARNING)


def local_time(t: float | None) -> str:
    """An epoch time as the local date and time a table shows ("—" for none)."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t else "—"
