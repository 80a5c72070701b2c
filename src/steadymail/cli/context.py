"""Shared CLI plumbing: settings, engine and clock built once per command; logging."""

import logging
import sys
from dataclasses import dataclass
from functools import cached_property

from rich.console import Console
from sqlalchemy import Engine, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from steadymail.clock import SystemClock
from steadymail.config import Settings, load_settings
from steadymail.store.db import engine_for, migrate

console = Console()
err_console = Console(stderr=True)


@dataclass
class Ctx:
    settings: Settings
    clock: SystemClock

    @cached_property
    def engine(self) -> Engine:
        url = self.settings.resolved_database_url()
        engine = engine_for(self.settings, url)
        # A newcomer's first command may come before `up` or `migrate`: create the schema
        # rather than fail on a missing table. Existing databases are left to `migrate`.
        if not inspect(engine).has_table("alembic_version"):
            migrate(url)
        return engine


def shown_url(url: str) -> str:
    """A database URL fit to print or log: its password, if any, masked."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):  # not a URL SQLAlchemy can parse: show nothing of it
        return "<database url>"


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
