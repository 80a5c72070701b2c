"""`steadymail report-exit` (systemd's ExecStopPost) and `steadymail changes`."""

import json
import os
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated

import typer

from steadymail.alerts.suspects import describe
from steadymail.cli.context import console, make_ctx
from steadymail.cli.numbers import finite
from steadymail.services import exits


def report_exit_cmd(
    slot: Annotated[
        str | None, typer.Option(help="the slot, when not run by systemd as ExecStopPost")
    ] = None,
) -> None:
    """Record how this unit's process ended ($SERVICE_RESULT, $EXIT_CODE, $EXIT_STATUS)."""
    c = make_ctx()
    out = exits.report_exit(c.engine, c.clock, dict(os.environ), slot)
    console.print(json.dumps(out), highlight=False)


def changes_cmd(
    limit: Annotated[int, typer.Option(help="at most this many")] = 50,
    minutes: Annotated[
        float | None, typer.Option(help="only the last N minutes", callback=finite)
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON array")] = False,
) -> None:
    """Changes made in this region, newest first: flag values and deploys."""
    c = make_ctx()
    now = c.clock.now()
    rows = exits.change_log(c.engine, limit, now - minutes * 60 if minutes else None)
    if as_json:
        console.print_json(json.dumps([asdict(r) for r in rows]))
        return
    for r in rows:
        when = datetime.fromtimestamp(r.at, UTC).strftime("%Y-%m-%d %H:%M:%S")
        by = f" by {r.by}" if r.by else ""
        why = f" ({r.detail})" if r.detail and r.kind == "flag" else ""
        console.print(f"{when} {r.kind:<6} {describe(r, now)}{by}{why}", highlight=False)
